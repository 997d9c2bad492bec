"""`jgnas search` and `jgnas train`: the jobs, with the flags they share and the processes of a
run of several (`jgnas.distributed`)."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

from jgnas import data
from jgnas.cli.common import _experiment, _log


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
