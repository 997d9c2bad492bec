"""The main job: search, retrain the winners and the baselines, test once, write the run directory.

Run directory: config.yaml (resolved), history.jsonl, best_arch.json, final_metrics.json,
best_model/ (orbax checkpoint of the winner's parameters), search_curve.png, summary.md,
checkpoints/ (for --resume), and .lock (held by the process writing it; `jgnas.rundir`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time
from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
import yaml

from jgnas import config as config_lib
from jgnas import distributed, experiment, report, rundir
from jgnas import progress as progress_lib
from jgnas.config import ExperimentConfig
from jgnas.interrupt import StopFn
from jgnas.progress import Progress
from jgnas.search import checkpoints, loop

Log = Callable[[str], None]


class SearchError(ValueError):
    """The search ended without a result to report (one line; the run directory is kept)."""


def run(
    cfg: ExperimentConfig,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Log = experiment.stderr_log,
    on_generation: Callable[[int], None] | None = None,
    progress: Progress | bool | None = None,
    should_stop: StopFn | None = None,
) -> dict:
    """Runs the whole job and returns the summary written to final_metrics.json.

    Args:
      cfg: the experiment (validated whole when it was built).
      run_dir: the run directory. A new run needs it absent or empty (`overwrite` empties it);
        it is locked while the job writes it (`jgnas.rundir.claim`).
      resume: continue the run in run_dir from its latest intact checkpoint.
      log: a line logger (the generations, the results).
      progress: a `jgnas.progress.Progress`: a bar per phase (data, search, tune, retrain, test,
        write), a timing line at the end of each and a last line of time by phase. True (the
        older form): an enabled one on stderr; None or False (default): none.
      on_generation: called after each generation's checkpoint (tests).
      should_stop: asked between generations and training chunks; when true, the job raises
        `jgnas.interrupt.Interrupted` there, and `--resume` continues it.

    A new run that fails before its first checkpoint removes what it created; an interrupted one
    keeps its directory (config.yaml included), so it can always be resumed. A search in which
    every candidate failed raises `SearchError` with a summary, keeping history.jsonl.
    """
    config_lib.check_strategy(cfg.search, cfg.space)
    progress = progress_lib.as_progress(progress)
    if not distributed.is_writer():  # another process of a run of several: it writes nothing
        return _run(cfg, pathlib.Path(run_dir), resume, log, on_generation, progress, should_stop)
    with rundir.claim(run_dir, resume=resume, overwrite=overwrite) as claim:
        try:
            summary = _run(cfg, claim.path, resume, log, on_generation, progress, should_stop)
            progress.write(progress.summary())
            return summary
        except BaseException as e:
            # Nothing to resume: a failure before the first checkpoint, or an interruption
            # before config.yaml was written.
            resumable = isinstance(e, KeyboardInterrupt) and (claim.path / "config.yaml").exists()
            if not resume and not resumable and not rundir.has_checkpoint(claim.path):
                claim.discard()
            raise


def _run(cfg, run_dir: pathlib.Path, resume, log, on_generation, progress, should_stop) -> dict:
    writer = distributed.is_writer()  # several processes: process 0 writes the run directory
    if not resume and writer:
        text = yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False)
        checkpoints.write_atomic(run_dir / "config.yaml", text)
    ctx = experiment.prepare(cfg, log, progress)
    t0 = time.perf_counter()
    archive = loop.search(
        ctx,
        run_dir,
        resume=resume,
        log=log,
        on_generation=on_generation,
        progress=progress,
        should_stop=should_stop,
        writer=writer,
    )
    t_search = time.perf_counter() - t0

    fcfg = cfg.final
    top = loop.top_archs(archive, fcfg.top_k)
    if not top:
        raise SearchError(
            f"every candidate failed, nothing to retrain: {loop.failure_summary(archive)}; "
            f"see {run_dir / 'history.jsonl'}"
        )
    candidates = [(f"search#{i + 1}", r.arch) for i, r in enumerate(top)]
    candidates += [(name, ctx.space.preset(name)) for name in fcfg.baselines]
    final_cfg = experiment.final_train_config(cfg.train, fcfg)
    tuned = _tune_alike(ctx, candidates, final_cfg, log, progress, should_stop)
    if tuned is not None:
        candidates = _best_finalist(tuned)
    retrained = experiment.retrain_and_test(
        ctx,
        candidates,
        seeds=fcfg.seeds,
        train_cfg=final_cfg,
        seed=cfg.search.seed,
        chunk_size=cfg.search.chunk_size,
        log=log,
        should_stop=should_stop,
        progress=progress,
    )
    if tuned is not None:
        for row in retrained.rows:
            row["tuned"] = tuned.grid[row["label"]]
    summary = _summary(cfg, ctx, archive, retrained, t_search)
    summary["tune_seconds"] = tuned.seconds if tuned is not None else 0.0
    if tuned is not None:  # every finalist's tuning, the ones not retrained included
        summary["finalists"] = {
            label: {**tuned.grid[label], "describe": ctx.space.describe(a)}
            for label, a in tuned.candidates
            if label.startswith("search#")
        }
    winner = next(r for r in retrained.rows if r["label"] == summary["winner"])
    params = experiment.best_member_params(retrained, retrained.rows.index(winner), fcfg.seeds)
    if not writer:
        return summary
    with progress.phase("write", unit=None):
        with contextlib.closing(ocp.StandardCheckpointer(**checkpoints.single_writer())) as ckpt:
            ckpt.save((run_dir / "best_model").absolute(), params, force=True)
            ckpt.wait_until_finished()
        _write_run_files(run_dir, cfg, ctx, archive, summary, winner, log)
    return summary


def _tune_alike(ctx, candidates, final_cfg, log, progress, should_stop=None):
    """`experiment.tune` of the finalists and the baselines over the same grid (final.lrs x
    final.l2s), or None when the grid is empty."""
    cfg = ctx.cfg
    if not cfg.final.tunes:
        return None
    return experiment.tune(
        ctx,
        candidates,
        lrs=cfg.final.lrs,
        l2s=cfg.final.l2s,
        seeds=cfg.final.tune_seeds,
        train_cfg=final_cfg,
        seed=cfg.search.seed,
        chunk_size=cfg.search.chunk_size,
        log=log,
        should_stop=should_stop,
        progress=progress,
    )


def _best_per_search(candidates, grid: dict) -> dict:
    """For each search (a finalist's label before its `#`), its finalist with the best validation
    fitness over its tuning grid (the first on ties and when untuned): {search: (label, arch)}."""
    best: dict = {}
    for label, arch in candidates:
        if "#" not in label:  # a baseline
            continue
        search = label.rsplit("#", 1)[0]
        if search not in best or _best_valid(grid.get(label)) > _best_valid(
            grid.get(best[search][0])
        ):
            best[search] = (label, arch)
    return best


def _best_finalist(tuned: experiment.Tuned) -> list:
    """The tuned candidates with only the best searched finalist (`_best_per_search`) kept: the
    winner is chosen on validation after tuning, so only it and the baselines are retrained over
    every seed."""
    keep = {label for label, _ in _best_per_search(tuned.candidates, tuned.grid).values()}
    return [c for c in tuned.candidates if "#" not in c[0] or c[0] in keep]


def _summary(cfg, ctx, archive, retrained, t_search: float) -> dict:
    fitness_name = f"{cfg.train.metric}@{cfg.train.metric_k}"
    rows = retrained.rows
    searched = [r for r in rows if r["label"].startswith("search#")]
    winner = max(searched, key=lambda r: r["valid"][fitness_name]["mean"])
    baselines = [r for r in rows if not r["label"].startswith("search#")]
    cost = cfg.search.cost
    for r in baselines:  # a preset keeps its published hyperparameters, or says what changed
        changes = ctx.space.preset_changes(r["label"])
        if changes:
            r["changed"] = list(changes)
    summary = {
        "name": cfg.name,
        "dataset": ctx.dataset.name,
        "fitness": fitness_name,
        "strategy": cfg.search.strategy,
        "candidates_evaluated": len(archive),
        "candidates_trained": sum(1 for r in archive if not r.cached),
        "failed": sum(1 for r in archive if r.failed),
        "search_seconds": t_search,
        "final_seconds": retrained.seconds,
        "winner": winner["label"],
        "rows": rows,
        "pareto_front": report.pareto(archive, cost, fitness_name) if cost != "none" else [],
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()})",
    }
    ndcg = f"ndcg@{cfg.train.metric_k}"
    test_key = ndcg if ndcg in winner["test"] else fitness_name
    if baselines:
        w = winner["test"][test_key]["mean"]

        def gain(r):
            base = r["test"][test_key]["mean"]
            return w / base - 1 if base > 0 else None

        best = max(baselines, key=lambda r: r["test"][test_key]["mean"])
        summary["vs_best_baseline"] = {
            "baseline": best["label"],
            "metric": test_key,
            "relative_gain": gain(best),
        }
        summary["vs_baselines"] = [
            {"baseline": r["label"], "metric": test_key, "relative_gain": gain(r)}
            for r in baselines
        ]
    return summary


def _write_run_files(run_dir, cfg, ctx, archive, summary, winner, log: Log) -> None:
    checkpoints.write_atomic(run_dir / "final_metrics.json", json.dumps(summary, indent=2))
    arch = ctx.space.from_dict(winner["arch"])
    checkpoints.write_atomic(run_dir / "best_arch.json", ctx.space.to_json(arch) + "\n")
    md = report.summary_markdown(summary, cfg.train.ks, cfg.final.seeds)
    checkpoints.write_atomic(run_dir / "summary.md", md)
    try:
        report.plot_curve(archive, run_dir / "search_curve.png", summary["fitness"])
    except Exception as e:  # a plot must never lose a finished search
        log(f"warning: search_curve.png not written ({type(e).__name__}: {e})")
    ndcg = summary.get("vs_best_baseline", {}).get("metric", summary["fitness"])
    log(f"winner {winner['describe']} | test {ndcg} {winner['test'][ndcg]['mean']:.4f}")
    log(f"run directory: {run_dir}")


def compare_strategies(
    cfg: ExperimentConfig,
    strategies: list[str],
    seeds: int,
    out: pathlib.Path,
    log: Log = experiment.stderr_log,
    overwrite: bool = False,
    progress: Progress | bool | None = None,
    search_seeds: int = 1,
) -> dict:
    """Strategies at an equal budget, each over `search_seeds` search seeds (search.seed, +1, ...):
    every search uses the config's population x generations (its run under out/NAME, or
    out/NAME/seedS with several seeds; absent or empty unless `overwrite`) and keeps its
    final.top_k finalists. Then, as the main job does, the finalists of every search and the
    config's baselines get the same tuning (final.lrs x final.l2s; none when the grid is empty),
    each search's winner is its finalist with the best tuned validation, and the winners and the
    baselines are retrained together over `seeds` seeds with the final budget and tested once.
    `progress`: as `run`'s (one "search" phase per search, summed in the last line).

    Returns {"searched": {label: strategy, search_seed, best valid, describe, trained, evaluated},
    "rows": [...], "by_strategy": {strategy: winners' test mean/std over search seeds},
    "search_seeds", "tune_seconds"}. A row's label is the strategy's name (one search seed) or
    NAME/sS.
    """
    if search_seeds < 1:
        raise ValueError(f"search_seeds: must be >= 1, got {search_seeds}")
    for name in strategies:
        search = dataclasses.replace(cfg.search, strategy=name)
        config_lib.check_strategy(search, cfg.space)
    progress = progress_lib.as_progress(progress)
    ctx = experiment.prepare(cfg, log, progress)
    fcfg = cfg.final
    searched, finalists = {}, []
    for name in strategies:
        for k in range(search_seeds):
            seed = cfg.search.seed + k
            label = name if search_seeds == 1 else f"{name}/s{seed}"
            c = dataclasses.replace(
                cfg, search=dataclasses.replace(cfg.search, strategy=name, seed=seed)
            )
            where = out / name if search_seeds == 1 else out / name / f"seed{seed}"
            with rundir.claim(where, resume=False, overwrite=overwrite) as claim:
                archive = loop.search(
                    dataclasses.replace(ctx, cfg=c), claim.path, log=log, progress=progress
                )
            top = loop.top_archs(archive, fcfg.top_k)
            if not top:
                raise SearchError(
                    f"{label}: every candidate failed: {loop.failure_summary(archive)}"
                )
            searched[label] = {
                "strategy": name,
                "search_seed": seed,
                "best_valid": top[0].fitness,
                "describe": top[0].describe,
                "trained": sum(not r.cached for r in archive),
                "evaluated": len(archive),
            }
            finalists += [(f"{label}#{i + 1}", r.arch) for i, r in enumerate(top)]
    baselines = [(b, ctx.space.preset(b)) for b in fcfg.baselines]
    final_cfg = experiment.final_train_config(cfg.train, fcfg)
    candidates = finalists + baselines
    tuned = _tune_alike(ctx, candidates, final_cfg, log, progress)
    if tuned is not None:
        candidates = tuned.candidates
    grid = tuned.grid if tuned is not None else {}
    best = _best_per_search(candidates, grid)
    winners = []
    for label in searched:
        searched[label]["finalist"] = best[label][0]
        winners.append((label, best[label][1]))
    picked = winners + [c for c in candidates if "#" not in c[0]]
    rows = experiment.retrain_and_test(
        ctx,
        picked,
        seeds=seeds,
        train_cfg=final_cfg,
        seed=cfg.search.seed,
        chunk_size=cfg.search.chunk_size,
        log=log,
        progress=progress,
    ).rows
    for row in rows:
        key = searched[row["label"]]["finalist"] if row["label"] in searched else row["label"]
        if key in grid:
            row["tuned"] = grid[key]
    progress.write(progress.summary())
    return {
        "searched": searched,
        "rows": rows,
        "by_strategy": _by_strategy(searched, rows),
        "search_seeds": search_seeds,
        "tune_seconds": tuned.seconds if tuned is not None else 0.0,
    }


def _best_valid(g: dict | None) -> float:
    """The best validation fitness over a tuning grid's points (-inf when none ran)."""
    vals = [p["valid"] for p in (g or {}).get("grid", []) if p["valid"] is not None]
    return max(vals) if vals else -np.inf


def _by_strategy(searched: dict, rows: list[dict]) -> dict:
    """Per strategy: its winners' test metrics (each the mean over retraining seeds), their mean
    and population std over the search seeds, and the per-search values."""
    out: dict[str, dict] = {}
    for r in rows:
        s = searched.get(r["label"])
        if s is None:
            continue
        d = out.setdefault(s["strategy"], {"labels": [], "test": {}})
        d["labels"].append(r["label"])
        for metric, stat in r["test"].items():
            d["test"].setdefault(metric, []).append(stat["mean"])
    for d in out.values():
        d["test"] = {
            m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_search": v}
            for m, v in d["test"].items()
        }
    return out
