"""`jgnas data fetch|info|synth`: download, inspect and synthesise datasets."""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from jgnas import data
from jgnas.cli.common import _experiment, _log
from jgnas.data import synth


def _data_config(args: argparse.Namespace) -> data.DataConfig:
    """DATASET_OR_PATH plus flags -> DataConfig: a known name, "synthetic", or a file/folder."""
    target = args.dataset
    opts = {"split": args.split, "seed": args.seed, "kcore": args.kcore,
            "rating_threshold": args.rating_threshold, "format": args.format}  # fmt: skip
    if target in data.KNOWN_DATASETS or target == "synthetic":
        return data.DataConfig(name=target, **opts)
    path = pathlib.Path(target)
    if not path.exists():
        known = ", ".join([*data.KNOWN_DATASETS, "synthetic"])
        raise data.DataError(f"{target}: no such file or folder, and not a known dataset ({known})")
    name = path.name.split(".")[0] if path.is_file() else path.name
    return data.DataConfig(name=name, path=str(path), **opts)


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    data.fetch(args.name, dest=args.dest, wheel=args.wheel, force=args.force)
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    if args.config or args.set:
        if args.dataset:
            raise data.DataError("data info: give DATASET_OR_PATH or --config, not both")
        cfg = _experiment(args).data
    elif not args.dataset:
        raise data.DataError("data info: give DATASET_OR_PATH or --config FILE")
    else:
        cfg = _data_config(args)
    summary = data.info(cfg, cache_dir=args.cache_dir, cache=not args.no_cache, log=_log)
    negative = summary["stats"].get("negative_ratings", 0)
    if negative:
        _log(
            f"warning: {negative} interactions have negative ratings and are kept as positives "
            "(every kept interaction is a positive); set data.rating_threshold "
            "(--rating-threshold) to drop them"
        )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    rows = [(k, summary[k]) for k in ("name", "users", "items", "interactions")]
    rows += [("density", f"{summary['density']:.4%}"), ("split", summary["split"])]
    rows += [(k, summary[k]) for k in ("train", "valid", "test")]
    if summary["cold_items"]:
        rows.append(("cold_items", summary["cold_items"]))
    rows.append(("user_features", ", ".join(summary["user_features"]) or "-"))
    rows.append(("item_features", ", ".join(summary["item_features"]) or "-"))
    skip = {"n_train", "n_valid", "n_test", "split", "cache_key"}
    rows += [
        (k, v) for k, v in summary["stats"].items() if k not in skip and not isinstance(v, list)
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v:,}" if isinstance(v, int) else f"{k:<{width}}  {v}")
    return 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    out = (
        pathlib.Path(args.out)
        if args.out
        else data.data_dir() / synth.default_name(args.like, args.seed, args.scale)
    )
    t0 = time.perf_counter()
    meta = synth.write_stand_in(out, args.like, seed=args.seed, scale=args.scale)
    _log(
        f"wrote {out}: {meta['users']:,} users, {meta['items']:,} items, "
        f"{meta['interactions']:,} interactions (train {meta['train']:,}, test {meta['test']:,}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    _log(f"check: jgnas data info {out} --split presplit")
    return 0


def _data_parser(subparsers) -> None:
    """Adds `jgnas data fetch|info|synth`."""
    p = subparsers.add_parser("data", help="fetch and inspect datasets")
    sub = p.add_subparsers(dest="data_cmd", required=True)
    f = sub.add_parser("fetch", help="download a dataset into the data dir")
    f.add_argument("name", help="dataset name (ml-100k can be downloaded)")
    f.add_argument("--dest", help="target folder (default: <data dir>/NAME)")
    f.add_argument("--wheel", help="local recbole wheel to extract ml-100k from")
    f.add_argument("--force", action="store_true", help="fetch even if present")
    f.set_defaults(fn=_cmd_data_fetch)
    i = sub.add_parser("info", help="load a dataset and print its sizes and stats")
    i.add_argument("dataset", metavar="DATASET_OR_PATH", nargs="?")
    i.add_argument(
        "--config", help="describe the data section of an experiment config (any format, columns)"
    )
    i.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="config override")
    i.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--split", default="ratio", choices=data.config.SPLITS)
    i.add_argument("--format", default="auto", help="a registered format (default: detected)")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--kcore", type=int, default=0)
    i.add_argument("--rating-threshold", type=float, default=None)
    i.add_argument("--cache-dir", default=None)
    i.add_argument("--no-cache", action="store_true")
    i.set_defaults(fn=_cmd_data_info)
    s = sub.add_parser(
        "synth", help="write a synthetic stand-in of gowalla, yelp2018 or amazon-book (sizes only)"
    )
    s.add_argument("--like", required=True, choices=tuple(synth.LIKE))
    s.add_argument("--out", help="target folder (default: <data dir>/LIKE-synth[-sSEED][-xSCALE])")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--scale", type=float, default=1.0, help="shrink users, items, interactions")
    s.set_defaults(fn=_cmd_data_synth)
