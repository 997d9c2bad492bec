"""The `jgnas` command line. Each subcommand group is one `_<name>_parser(subparsers)` function."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from jgnas import data


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
    summary = data.info(_data_config(args), cache_dir=args.cache_dir, cache=not args.no_cache)
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


def _data_parser(subparsers) -> None:
    """Adds `jgnas data fetch|info`."""
    p = subparsers.add_parser("data", help="fetch and inspect datasets")
    sub = p.add_subparsers(dest="data_cmd", required=True)
    f = sub.add_parser("fetch", help="download a dataset into the data dir")
    f.add_argument("name", help="dataset name (ml-100k can be downloaded)")
    f.add_argument("--dest", help="target folder (default: <data dir>/NAME)")
    f.add_argument("--wheel", help="local recbole wheel to extract ml-100k from")
    f.add_argument("--force", action="store_true", help="fetch even if present")
    f.set_defaults(fn=_cmd_data_fetch)
    i = sub.add_parser("info", help="load a dataset and print its sizes and stats")
    i.add_argument("dataset", metavar="DATASET_OR_PATH")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--split", default="ratio", choices=data.config.SPLITS)
    i.add_argument("--format", default="auto", choices=data.config.FORMATS)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--kcore", type=int, default=0)
    i.add_argument("--rating-threshold", type=float, default=None)
    i.add_argument("--cache-dir", default=None)
    i.add_argument("--no-cache", action="store_true")
    i.set_defaults(fn=_cmd_data_info)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; a new subcommand group is one more `_<name>_parser(sub)` call here."""
    parser = argparse.ArgumentParser(prog="jgnas", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _data_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI. Returns the exit code: 0 ok, 2 bad input (one `error:` line on stderr).

    Args:
      argv: arguments without the program name (None: sys.argv[1:]).
    """
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
