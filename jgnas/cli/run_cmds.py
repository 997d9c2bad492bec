"""Commands over a finished run: `jgnas recommend`, `report`, `export` and `serve`."""

from __future__ import annotations

import argparse
import json

from jgnas import data
from jgnas.cli.common import _log


def _cmd_recommend(args: argparse.Namespace) -> int:
    from jgnas import serve

    if args.k < 1:
        raise data.DataError(f"-k: must be >= 1, got {args.k}")
    rec = serve.load(args.run_dir)
    rows = rec.recommend(args.user, k=args.k)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"top {args.k} for user {args.user} ({rec.describe}):")
    for r in rows:
        print(f"{r['rank']:>3}. {r['item']:>8}  {r['score']:8.4f}  {r['title']}")
    return 0


def _recommend_parser(subparsers) -> None:
    """Adds `jgnas recommend` (serve the winner of a run)."""
    p = subparsers.add_parser("recommend", help="top-K items for a user from a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--user", required=True, help="raw user id as in the data files")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_cmd_recommend)


def _cmd_report(args: argparse.Namespace) -> int:
    from jgnas import viz

    path = viz.build(args.run_dir, args.out, user=args.user, n_users=args.users, k=args.k,
                     log=(lambda m: None) if args.quiet else _log)  # fmt: skip
    print(path)
    return 0


def _report_parser(subparsers) -> None:
    """Adds `jgnas report` (a static HTML page of a finished run)."""
    p = subparsers.add_parser("report", help="write RUN_DIR/report/index.html and its figures")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--user", help="raw user id of the ego-graph (default: the median user)")
    p.add_argument("--users", type=int, default=3, help="users whose top-K lists are shown")
    p.add_argument("--k", type=int, default=10, help="length of the top-K lists (default 10)")
    p.add_argument("--out", help="report folder (default: RUN_DIR/report)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(fn=_cmd_report)


def _serve_extra(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise data.DataError(
            f"{module.rsplit('.', 1)[-1]} needs the serve extra ({e.name} is missing): "
            "pip install -e '.[serve]'"
        ) from None


def _cmd_export(args: argparse.Namespace) -> int:
    export = _serve_extra("jgnas.export")
    if args.k < 1:
        raise data.DataError(f"-k: must be >= 1, got {args.k}")
    export.main(args.run_dir, args.out, k=args.k, log=(lambda m: None) if args.quiet else _log)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    service = _serve_extra("jgnas.service")
    service.run(
        args.path,
        args.host,
        args.port,
        ann=args.ann,
        ann_threshold=args.ann_threshold,
        max_batch=args.max_batch,
        log=_log,
    )
    return 0


def _serve_parser(subparsers) -> None:
    """Adds `jgnas export` and `jgnas serve` (deploy a run's winner)."""
    e = subparsers.add_parser(
        "export", help="write a run's vectors, id maps, metadata and every user's top-K"
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--out", required=True, help="export folder")
    e.add_argument("-k", type=int, default=20, help="top-K per user (default 20)")
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(fn=_cmd_export)
    s = subparsers.add_parser(
        "serve", help="HTTP recommendation service over a run directory or an export"
    )
    s.add_argument("path", metavar="RUN_DIR_OR_EXPORT")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--ann",
        choices=("auto", "on", "off"),
        default="auto",
        help="HNSW index; auto: when the catalog has >= --ann-threshold items",
    )
    s.add_argument("--ann-threshold", type=int, default=100_000)
    s.add_argument("--max-batch", type=int, default=256, help="most users in one POST /recommend")
    s.set_defaults(fn=_cmd_serve)
