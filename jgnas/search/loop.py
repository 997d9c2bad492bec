"""The search loop: ask -> decode -> train and evaluate through the engine -> tell, with checkpoints.

Every random draw comes from the root key `search.seed` through `fold_in`: generation g asks with
`fold_in(fold_in(root, g), 0)` and tells with `fold_in(..., 1)`, and a candidate's training key is
`fold_in(train_root, hash(canonical arch))`, so an arch always trains the same way and a cached
duplicate equals its retraining. The strategy state, the archive and the best-so-far are
checkpointed with orbax after every generation (atomic: orbax commits a finished temporary
directory), so a resumed search ends exactly where an uninterrupted one would. A damaged
checkpoint is skipped for the previous one (orbax keeps two) with a warning; that generation is
then searched again, to the same result. `should_stop` is asked before every generation and every
training chunk (Ctrl-C, `jgnas.interrupt`).

The loop owns searching only: data preparation and retraining live in `jgnas.experiment`, the run
directory's tables and figures in `jgnas.report`, the whole job in `jgnas.job`, and the archive's
records (`Candidate`, `top_archs`, `cost_of`, `failure_summary`, re-exported here) in
`jgnas.search.archive`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pathlib
import sys
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import numpy as np

from jgnas import distributed
from jgnas import progress as progress_lib
from jgnas.interrupt import StopFn, check
from jgnas.progress import Progress
from jgnas.rundir import RunDirError, has_checkpoint, resume_command
from jgnas.search import checkpoints, seeding
from jgnas.search.archive import Candidate, cost_of
from jgnas.search.archive import failure_summary as failure_summary  # re-exported
from jgnas.search.archive import top_archs as top_archs  # re-exported
from jgnas.search.strategies import GenomeSpec, make_strategy
from jgnas.space import Arch, Space, take
from jgnas.train import Engine, TrainResult

if TYPE_CHECKING:
    from jgnas.experiment import Context
    from jgnas.search.config import SearchConfig

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    progress_lib.write(msg, sys.stderr)


def _decode(space: Space) -> Callable[[dict], tuple[int, list[Candidate]]]:
    """Checkpoint metadata -> (generation, archive of Candidates)."""
    return lambda meta: (
        int(meta["generation"]),
        [Candidate.from_json(d, space) for d in meta["archive"]],
    )


def _arch_hash(key: tuple[int, ...]) -> int:
    return zlib.crc32(np.asarray(key, np.int32).tobytes()) & 0x7FFFFFFF


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Rungs:
    """The engines of the successive-halving rungs: rung r trains `epochs * eta**r` epochs."""

    engines: dict[int, Engine]
    scfg: SearchConfig

    def train(self, keys: jax.Array, archs: Arch, on_step: Callable[[float], None] | None = None):
        """Trains the candidates with the screening budget, then promotes the top 1/eta to longer
        budgets. Returns fitness, epochs reached, seconds and the results (promoted members report
        their highest-budget result; loss curves keep the first rung's).

        on_step: called after each training chunk with the fraction of the work done, counting
        each rung as an equal share (rung r trains ~1/eta**r of the members for eta**r times the
        epochs)."""
        n_rungs = self.scfg.halving_rungs + 1
        for r, engine in self.engines.items():
            engine.on_progress = None
            if on_step is not None:
                engine.on_progress = lambda d, t, r=r: on_step((r + d / max(t, 1)) / n_rungs)
        first = self.engines[0]
        res = first.train(keys, archs)
        seconds = np.asarray(first.last_seconds, np.float64).copy()
        fit = np.asarray(res.fitness, np.float64).copy()
        budget = np.full(len(fit), first.cfg.epochs)
        for r in range(1, self.scfg.halving_rungs + 1):
            n = max(1, math.ceil(len(fit) / self.scfg.halving_eta**r))
            order = np.argsort(-np.where(np.isfinite(fit), fit, -np.inf), kind="stable")[:n]
            order = order[np.isfinite(fit[order])]
            if order.size == 0:
                break
            sub = self.engines[r].train(keys[order], take(archs, order))
            seconds[order] += np.asarray(self.engines[r].last_seconds)
            fit[order] = np.asarray(sub.fitness)
            budget[order] = self.engines[r].cfg.epochs
            res = _merge(res, order, sub)
        return fit, budget, seconds, res


def _merge(res: TrainResult, idx: np.ndarray, sub: TrainResult) -> TrainResult:
    def put(full, part):
        full = np.array(full)
        full[idx] = np.asarray(part)
        return full

    return res.replace(
        best=jax.tree.map(put, res.best, sub.best),
        best_epoch=put(res.best_epoch, sub.best_epoch),
        failed=put(res.failed, sub.failed),
        fitness=put(res.fitness, sub.fitness),
    )


def _make_rungs(ctx: Context, should_stop: StopFn | None = None) -> _Rungs:
    scfg = ctx.cfg.search
    engines = {
        r: Engine(
            dataclasses.replace(ctx.cfg.train, epochs=ctx.cfg.train.epochs * scfg.halving_eta**r),
            ctx.space,
            ctx.data,
            chunk_size=scfg.chunk_size,
            should_stop=should_stop,
        )
        for r in range(scfg.halving_rungs + 1)
    }
    return _Rungs(engines, scfg)


def _train_generation(
    ctx: Context,
    rungs: _Rungs,
    key_train,
    g: int,
    genomes: np.ndarray,
    cache: dict,
    on_step: Callable[[float], None] | None = None,
) -> list[Candidate]:
    """Decodes one generation, trains its new archs (a duplicate trains once), returns the
    generation's candidates in population order, duplicates marked cached. on_step: see
    `_Rungs.train`."""
    space, scfg, ks = ctx.space, ctx.cfg.search, ctx.cfg.train.ks
    archs = space.decode(genomes)
    keys = [tuple(k) for k in space.keys(archs)]
    fresh = scfg.retrain_duplicates
    todo: dict[tuple, int] = {}
    for i, k in enumerate(keys):  # a duplicate inside one generation trains once
        if fresh or k not in cache:
            todo.setdefault(k + ((g, i) if fresh else ()), i)
    trained: dict[int, Candidate] = {}
    if todo:
        idx = np.asarray(list(todo.values()))
        salt = [(g * 7919 + i) if fresh else 0 for i in idx]
        tkeys = jax.numpy.stack(
            [jax.random.fold_in(key_train, _arch_hash(keys[i]) ^ s) for i, s in zip(idx, salt)]
        )
        fit, budget, seconds, res = rungs.train(tkeys, take(archs, idx), on_step)
        for j, i in enumerate(idx):
            # Recorded canonical (inert genes zeroed): equal models have equal records, and the
            # record round-trips through JSON. It trains exactly as the decoded arch does.
            arch_i = space.canonical(take(archs, int(i)))
            trained[int(i)] = Candidate(
                generation=g,
                index=int(i),
                genome=tuple(float(x) for x in genomes[i]),
                key=keys[i],
                arch=arch_i,
                describe=space.describe(arch_i),
                fitness=float(fit[j]) if np.isfinite(fit[j]) else None,
                failed=bool(np.asarray(res.failed)[j]),
                valid={
                    f"{m}@{k}": float(np.asarray(v)[j, c])
                    for m, v in res.best.items()
                    for c, k in enumerate(ks)
                },
                epochs=int(budget[j]),
                best_epoch=int(np.asarray(res.best_epoch)[j]),
                train_seconds=float(seconds[j]),
                params=space.param_count(arch_i, ctx.n_node, ctx.text_dim),
            )
    out = []
    for i, k in enumerate(keys):
        if i in trained:
            cache[k] = trained[i]
            out.append(trained[i])
            continue
        src = trained.get(todo.get(k, -1)) or cache[k]
        genome = tuple(float(x) for x in genomes[i])
        out.append(dataclasses.replace(src, generation=g, index=i, genome=genome, cached=True))
    return out


def _told_fitness(gen: list[Candidate], scfg: SearchConfig) -> np.ndarray:
    """The fitness the strategy is told: failed = -inf; with a cost objective, penalised."""
    fitness = np.asarray([-np.inf if r.fitness is None else r.fitness for r in gen], np.float32)
    if scfg.cost == "none" or scfg.cost_weight <= 0:
        return fitness
    cost = np.asarray([cost_of(r, scfg.cost) for r in gen], np.float64)
    return (fitness - scfg.cost_weight * cost / max(cost.max(), 1e-12)).astype(np.float32)


def search(
    ctx: Context,
    run_dir: pathlib.Path,
    *,
    resume: bool = False,
    log: Log = _stderr,
    on_generation: Callable[[int], None] | None = None,
    progress: Progress | bool | None = None,
    should_stop: StopFn | None = None,
    writer: bool = True,
) -> list[Candidate]:
    """Runs (or resumes) the search; returns the archive, one record per evaluated candidate.

    Args:
      ctx: from `jgnas.experiment.prepare`.
      run_dir: where checkpoints and history.jsonl go. A new search refuses one that holds a
        checkpoint (it would never checkpoint its own generations); `jgnas.rundir.claim` keeps
        whole run directories apart.
      resume: continue from the latest intact checkpoint in run_dir (none yet: from the start).
      log: a line logger (stderr by default).
      on_generation: called after each generation's checkpoint with the generation index (tests use
        it to interrupt a search).
      progress: a `jgnas.progress.Progress`; the search is its phase "search", one step per
        candidate (a generation is P steps), updated after each training chunk. True: an enabled
        one on stderr; None or False (default): none.
      should_stop: asked before each generation and each training chunk; when true, the search
        raises `jgnas.interrupt.Interrupted` there (the last finished generation is checkpointed).
      writer: write checkpoints and history.jsonl; False for the other processes of a run of
        several (`jgnas.distributed`), which resume from the writer's checkpoint, broadcast.
    """
    space, scfg = ctx.space, ctx.cfg.search
    run_dir = pathlib.Path(run_dir)
    P = scfg.population_size
    strategy = make_strategy(scfg.strategy, GenomeSpec(space.gene_sizes), P, **scfg.strategy_kwargs)
    key_strategy, key_train = jax.random.split(jax.random.key(scfg.seed))
    state = strategy.init(jax.random.fold_in(key_strategy, 2**20))
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    rungs = _make_rungs(ctx, should_stop)
    seeds = seeding.preset_genomes(space, scfg.seed_presets)
    progress = progress_lib.as_progress(progress)
    fitness_name = f"{ctx.cfg.train.metric}@{ctx.cfg.train.metric_k}"

    archive: list[Candidate] = []
    start = 0
    if writer and not resume and has_checkpoint(run_dir):
        raise RunDirError(
            f"{run_dir}: holds the checkpoints of an earlier search; resume it with "
            f"`{resume_command(run_dir)}` or search into an empty directory"
        )
    # The manager's threads must not outlive the search (only the writer has a manager).
    managed = contextlib.nullcontext()
    if writer:
        managed = contextlib.closing(checkpoints.manager(run_dir))
    with managed as mngr:
        if resume:
            restored = _resume(mngr, state, ctx, run_dir, log) if writer else (state, 0, [])
            state, start, archive = _from_writer(restored, space)
        cache = {r.key: r for r in archive if not r.cached}

        # One step per candidate: a generation is P steps, however many were cached.
        phase = progress.phase(
            "search", total=scfg.generations * P, unit="candidate", initial=start * P
        )
        with phase as update:
            for g in range(start, scfg.generations):
                check(should_stop)
                update.note(f"gen {g + 1}/{scfg.generations}")
                t0 = time.perf_counter()
                key_g = jax.random.fold_in(key_strategy, g)
                genomes, state = ask(jax.random.fold_in(key_g, 0), state)
                if g == 0 and len(seeds):  # the published models join the first generation
                    genomes = genomes.at[: len(seeds)].set(seeds)
                step = lambda f, g=g: update(g * P + min(int(f * P), P))  # noqa: E731
                gen = _train_generation(ctx, rungs, key_train, g, np.asarray(genomes), cache, step)
                archive += gen
                told = _told_fitness(gen, scfg)
                state = tell(jax.random.fold_in(key_g, 1), genomes, jax.numpy.asarray(told), state)

                finite = [r.fitness for r in archive if r.fitness is not None]
                best = max(finite) if finite else float("nan")
                lines = [r.to_json(space) for r in archive]
                if writer:
                    meta = {"generation": g, "archive": lines, "best": best, "seed": scfg.seed}
                    checkpoints.save(mngr, g, state, meta)
                    checkpoints.write_history(run_dir, lines)
                update((g + 1) * P)
                gen_fit = np.asarray([r.fitness for r in gen if r.fitness is not None])
                log(
                    f"gen {g + 1}/{scfg.generations} | best {fitness_name} {best:.4f} | "
                    f"median {float(np.median(gen_fit)) if gen_fit.size else float('nan'):.4f} | "
                    f"failed {sum(r.fitness is None for r in gen)} | cached {sum(r.cached for r in gen)} | "
                    f"{time.perf_counter() - t0:.1f} s"
                )
                if on_generation is not None:
                    on_generation(g)
        return archive


def _resume(mngr, state, ctx: Context, run_dir: pathlib.Path, log: Log):
    """(state, first generation to run, archive) from the newest intact checkpoint, or the
    initial state when there is none yet."""
    space = ctx.space
    restored = checkpoints.restore(mngr, state, _decode(space), run_dir, log)
    if restored is None:
        log("no checkpoint yet: the search starts from its first generation")
        return state, 0, []
    state, last, archive = restored
    # Written again: an interruption may have come between a checkpoint and this file.
    checkpoints.write_history(run_dir, [r.to_json(space) for r in archive])
    log(
        f"resumed after generation {last + 1}/{ctx.cfg.search.generations} "
        f"({len(archive)} candidates archived)"
    )
    return state, last + 1, archive


def _from_writer(restored, space: Space):
    """The writer's resumed (state, first generation, archive) on every process of a run of
    several (`jgnas.distributed`): restored from its checkpoint, broadcast, no files read."""
    if jax.process_count() == 1:
        return restored
    state, start, archive = restored
    meta = {"start": start, "archive": [r.to_json(space) for r in archive]}
    state, meta = distributed.from_writer(state, meta)
    state = jax.tree.map(jax.numpy.asarray, state)
    return state, meta["start"], [Candidate.from_json(d, space) for d in meta["archive"]]
