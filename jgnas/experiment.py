"""The experiment: prepare the data, the final training budget, retrain-and-test over seeds.

Everything that trains fixed architectures and reports test metrics goes through here: the search
job after its search, `jgnas train`, `serve`, and the scripts. It sits below the search loop and
never imports it.

Reporting convention: `mean ± std` over seeds, where std is the population standard deviation
(numpy's default, ddof = 0) of the per-seed values (`mean_std`).
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jgnas import data as data_lib
from jgnas import metrics as metrics_lib
from jgnas import progress as progress_lib
from jgnas.interrupt import StopFn
from jgnas.progress import Progress
from jgnas.space import Arch, Space, stack
from jgnas.train import Engine, TrainConfig, TrainData, TrainResult, make_data

if TYPE_CHECKING:  # the config layer imports this module, not the other way round
    from jgnas.config import ExperimentConfig

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    """The default line logger: one line to stderr (above a progress bar, if one is drawn)."""
    progress_lib.write(msg, sys.stderr)


def quiet(msg: str) -> None:
    """A logger that drops every line."""


@dataclasses.dataclass(frozen=True)
class FinalConfig:
    """Retraining after search: the top_k distinct archs (and the baseline presets) are trained with
    the full budget over `seeds` seeds, vmapped together, early-stopped on validation, then tested once.

    lrs, l2s: the tuning grid. When given, every finalist and every baseline is first trained at
    each (lr, l2) of the grid (`tune_seeds` seeds, the same budget and early stopping), and each
    keeps the point with its best mean validation fitness: finalists and baselines get exactly
    the same tuning. An empty grid keeps each arch's own value (the presets' published ones).
    """

    top_k: int = 1
    seeds: int = 3
    epochs: int = 200
    eval_every: int = 5
    patience: int = 4
    baselines: tuple[str, ...] = ("lightgcn",)
    lrs: tuple[float, ...] = (3e-3, 1e-2)
    l2s: tuple[float, ...] = (1e-4,)
    tune_seeds: int = 1

    def __post_init__(self):
        # Checked here, when the config is read, not when retraining starts after the search.
        if self.top_k < 1:
            raise ValueError(f"final.top_k: must be >= 1, got {self.top_k}")
        if self.seeds < 1:
            raise ValueError(f"final.seeds: must be >= 1, got {self.seeds}")
        if self.epochs < 1:
            raise ValueError(f"final.epochs: must be >= 1, got {self.epochs}")
        if self.eval_every < 0 or self.epochs % (self.eval_every or self.epochs):
            raise ValueError(
                f"final.eval_every: must divide final.epochs={self.epochs}, got {self.eval_every}"
            )
        if self.patience < 0:
            raise ValueError(f"final.patience: must be >= 0, got {self.patience}")
        if any(not (np.isfinite(v) and v > 0) for v in self.lrs):
            raise ValueError(f"final.lrs: learning rates must be finite and > 0, got {self.lrs}")
        if any(not (np.isfinite(v) and v >= 0) for v in self.l2s):
            raise ValueError(f"final.l2s: L2 coefficients must be finite and >= 0, got {self.l2s}")
        if self.tune_seeds < 1:
            raise ValueError(f"final.tune_seeds: must be >= 1, got {self.tune_seeds}")

    @property
    def tunes(self) -> bool:
        return bool(self.lrs or self.l2s)


def final_train_config(train: TrainConfig, final: FinalConfig) -> TrainConfig:
    """The screening config with the final budget: `final.epochs`, `eval_every` and `patience`."""
    return dataclasses.replace(
        train, epochs=final.epochs, eval_every=final.eval_every, patience=final.patience
    )


@dataclasses.dataclass
class Context:
    """What the search and the final retraining share: data, space, engine inputs."""

    cfg: ExperimentConfig
    dataset: data_lib.Dataset
    space: Space
    data: TrainData
    text_dim: int

    @property
    def n_node(self) -> int:
        return self.dataset.n_users + self.dataset.n_items


def check_dataset(dataset: data_lib.Dataset, cfg: ExperimentConfig) -> None:
    """Refuses a dataset an experiment cannot report on, in one line naming the split and the
    counts: an empty validation part (nothing to select on) or test part (nothing to report), or
    a cut-off of train.ks above the number of items."""
    counts = {p: len(getattr(dataset, p)) for p in ("train", "valid", "test")}
    for part, use in (("valid", "select architectures on"), ("test", "report")):
        if counts[part]:
            continue
        n = np.bincount(dataset.train.users, minlength=dataset.n_users)
        for p in ("valid", "test"):
            n = n + np.bincount(getattr(dataset, p).users, minlength=dataset.n_users)
        hint = f"check data.split={cfg.data.split!r} and data.ratios={list(cfg.data.ratios)}"
        if n.max(initial=0) < 3 and cfg.data.split in ("ratio", "temporal", "loo"):
            hint = (
                f"every user has fewer than 3 interactions (at most {int(n.max(initial=0))}), and "
                f"the {cfg.data.split} split keeps such users' interactions in train"
            )
        split = "/".join(str(v) for v in counts.values())
        raise data_lib.DataError(
            f"data {dataset.name}: the {part} split is empty (train/valid/test = {split} "
            f"interactions, {dataset.n_users} users), so there is nothing to {use}: {hint}"
        )
    if max(cfg.train.ks) > dataset.n_items:
        raise data_lib.DataError(
            f"train.ks: {list(cfg.train.ks)} has a cut-off above the {dataset.n_items} items of "
            f"{dataset.name}; every k must be <= the number of items"
        )


def prepare(
    cfg: ExperimentConfig, log: Log = stderr_log, progress: Progress | None = None
) -> Context:
    """Loads the dataset (and text vectors), builds the shared graph and the validation set.

    Fails early (`check_dataset`) on data the experiment cannot report on. `progress`: its phases
    "data" (load), "text" (texts encoded), "side" and "graph" (`jgnas.progress`; default: none)."""
    progress = progress_lib.as_progress(progress)
    t0 = time.perf_counter()
    with progress.phase("data", unit=None):
        dataset = data_lib.load(cfg.data, log=log)
        check_dataset(dataset, cfg)
    negative = int(dataset.stats.get("negative_ratings", 0))
    if negative:
        log(f"warning: {negative} interactions with negative ratings are kept as positives "
            "(set data.rating_threshold to drop them)")  # fmt: skip
    text = None
    if cfg.text.enabled:
        from jgnas.features import node_text_matrix

        with progress.phase("text", unit="text") as update:
            text = node_text_matrix(dataset, cfg.text, log=log, on_progress=update)
    side = None
    if cfg.side.enabled:
        from jgnas.side import node_side_features

        with progress.phase("side", unit=None):
            side = node_side_features(dataset, cfg.side)
        log(f"side features: {side.n_values - 1} values of {side.ids.shape[1]} slots per node")
    with progress.phase("graph", unit=None):
        data = make_data(dataset, cfg.train, text=text, side=side)
    log(
        f"data {dataset.name}: {dataset.n_users} users, {dataset.n_items} items, "
        f"train/valid/test {len(dataset.train)}/{len(dataset.valid)}/{len(dataset.test)} "
        f"({time.perf_counter() - t0:.1f} s) | device {jax.devices()[0].device_kind} ({jax.default_backend()})"
    )
    return Context(cfg, dataset, cfg.space, data, 0 if text is None else int(text.shape[1]))


def metrics_at(metrics: dict, i: int, ks: Sequence[int]) -> dict[str, float]:
    """Member i of population metrics {name: [P, len(ks)]} -> {"name@k": value}."""
    return {
        f"{m}@{k}": float(np.asarray(v)[i, j]) for m, v in metrics.items() for j, k in enumerate(ks)
    }


def mean_std(rows: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per key, the mean and the population std (ddof = 0) over `rows` (one row per seed)."""
    return {
        k: {
            "mean": float(np.mean([r[k] for r in rows])),
            "std": float(np.std([r[k] for r in rows])),
        }
        for k in rows[0]
    }


def format_mean_std(stat: dict[str, float]) -> str:
    """A `mean_std` entry as the tables print it: `0.3303 ± 0.0004`."""
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


@dataclasses.dataclass
class Retrained:
    """The output of `retrain_and_test`: one JSON-ready row per arch, and the raw population
    (members ordered arch-major: arch a, seed s is member a * seeds + s)."""

    rows: list[dict]
    result: TrainResult
    test: dict
    archs: Arch
    seconds: float


def _train(ctx, candidates, seeds, train_cfg, seed, chunk_size, should_stop, progress, phase):
    """Every (label, arch) over `seeds` seeds as one population (arch-major), as progress phase
    `phase`; (engine, result, archs, seconds)."""
    if seeds < 1:
        raise ValueError(f"seeds: must be >= 1, got {seeds}")
    archs = stack([a for _, a in candidates for _ in range(seeds)])
    root = jax.random.fold_in(jax.random.key(seed), 7)
    keys = jax.numpy.stack([jax.random.fold_in(root, s) for _ in candidates for s in range(seeds)])
    engine = Engine(train_cfg, ctx.space, ctx.data, chunk_size=chunk_size, should_stop=should_stop)
    t0 = time.perf_counter()
    with progress.phase(phase, total=int(keys.shape[0])) as update:
        engine.on_progress = update
        res = engine.train(keys, archs)
    engine.on_progress = None
    return engine, res, archs, time.perf_counter() - t0


def _fitness(train_cfg: TrainConfig) -> str:
    return f"{train_cfg.metric}@{train_cfg.metric_k}"


def valid_curve(res: TrainResult, members: Sequence[int], train_cfg: TrainConfig) -> dict:
    """The validation fitness at each evaluation round, mean and std over `members` (None for
    rounds not run after early stopping)."""
    k = train_cfg.ks.index(train_cfg.metric_k)
    v = np.asarray(res.valid[train_cfg.metric])[np.asarray(members), :, k]  # [S, rounds]
    ran = np.isfinite(v)
    # rounds no member ran are NaN; numpy warns about their empty slices
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.where(ran.any(0), np.nanmean(np.where(ran, v, np.nan), 0), np.nan)
        std = np.where(ran.any(0), np.nanstd(np.where(ran, v, np.nan), 0), np.nan)
    clean = lambda a: [None if not np.isfinite(x) else float(x) for x in a]  # noqa: E731
    return {
        "eval_every": train_cfg.eval_every or train_cfg.epochs,
        "metric": _fitness(train_cfg),
        "mean": clean(mean),
        "std": clean(std),
    }


@dataclasses.dataclass
class Tuned:
    """The output of `tune`: the candidates at their chosen (lr, l2), and per label the grid
    (`{"lr": .., "l2": .., "valid": mean validation fitness}` per point) and the choice."""

    candidates: list[tuple[str, Arch]]
    grid: dict[str, dict]
    seconds: float


def tune(
    ctx: Context,
    candidates: Sequence[tuple[str, Arch]],
    *,
    lrs: Sequence[float],
    l2s: Sequence[float],
    seeds: int,
    train_cfg: TrainConfig,
    seed: int = 0,
    chunk_size: int | None = None,
    log: Log = stderr_log,
    should_stop: StopFn | None = None,
    progress: Progress | None = None,
) -> Tuned:
    """Trains every candidate at every (lr, l2) of the grid (an empty axis keeps the arch's own
    value) over `seeds` seeds, as one population with early stopping on validation, and keeps
    for each the point with the best mean validation fitness. Test data is never read.
    `progress`: its phase "tune", one step per member (`jgnas.progress`; default: none)."""
    points = []
    for label, arch in candidates:
        for lr in lrs or (None,):
            for l2 in l2s or (None,):
                a = arch
                if lr is not None:
                    a = a.replace(lr=np.float32(lr))
                if l2 is not None:
                    a = a.replace(l2=np.float32(l2))
                points.append((label, a))
    progress = progress_lib.as_progress(progress)
    _, res, archs, seconds = _train(
        ctx, points, seeds, train_cfg, seed + 104729, chunk_size, should_stop, progress, "tune"
    )
    fit = np.asarray(res.fitness).reshape(len(points), seeds)
    with np.errstate(invalid="ignore"):
        score = np.where(np.isfinite(fit).all(1), fit.mean(1), -np.inf)
    tuned, grid = [], {}
    n = len(points) // len(candidates)
    for c, (label, _) in enumerate(candidates):
        rows = range(c * n, (c + 1) * n)
        best = max(rows, key=lambda r: score[r])
        arch = points[best][1]
        tuned.append((label, arch))
        grid[label] = {
            "lr": float(arch.lr),
            "l2": float(arch.l2),
            "grid": [
                {
                    "lr": float(points[r][1].lr),
                    "l2": float(points[r][1].l2),
                    "valid": float(score[r]) if np.isfinite(score[r]) else None,
                }
                for r in rows
            ],
        }
    log(
        f"tuned {len(candidates)} archs over {n} (lr, l2) points x {seeds} seed(s) in "
        f"{seconds:.1f} s: "
        + ", ".join(f"{label} lr {g['lr']:g} l2 {g['l2']:g}" for label, g in grid.items())
    )
    return Tuned(tuned, grid, seconds)


def retrain_and_test(
    ctx: Context,
    candidates: Sequence[tuple[str, Arch]],
    *,
    seeds: int,
    train_cfg: TrainConfig,
    seed: int = 0,
    chunk_size: int | None = None,
    log: Log = stderr_log,
    should_stop: StopFn | None = None,
    progress: Progress | None = None,
) -> Retrained:
    """Trains every (label, arch) over `seeds` seeds as one population (archs x seeds), with early
    stopping on validation, then tests each member once (ranking excludes train and valid items).

    Each row: label, arch (dict), describe, seeds, failed (count), best_epoch (per seed), valid and
    test (`mean_std` over seeds), test_per_seed and valid_curve (`valid_curve`). `should_stop`:
    see `jgnas.train.Engine`. `progress`: its phases "retrain" and "test", one step per member
    (`jgnas.progress`; default: none).
    """
    progress = progress_lib.as_progress(progress)
    engine, res, archs, t_train = _train(
        ctx, candidates, seeds, train_cfg, seed, chunk_size, should_stop, progress, "retrain"
    )
    with progress.phase("test", total=int(res.fitness.shape[0])) as update:
        test_set = metrics_lib.test_eval_set(ctx.dataset, block_size=train_cfg.eval_block)
        engine.on_progress = update
        test = engine.evaluate(res.params, archs, test_set)
    log(
        f"retrained {len(candidates)} archs x {seeds} seeds in {t_train:.1f} s "
        f"({train_cfg.epochs} epochs max, early stopping patience {train_cfg.patience})"
    )
    ks = train_cfg.ks
    rows = []
    for a, (label, arch) in enumerate(candidates):
        members = range(a * seeds, (a + 1) * seeds)
        tested = [metrics_at(test, m, ks) for m in members]
        rows.append(
            {
                "label": label,
                "arch": ctx.space.to_dict(arch),
                "describe": ctx.space.describe(arch),
                "seeds": seeds,
                "failed": int(sum(bool(np.asarray(res.failed)[m]) for m in members)),
                "best_epoch": [int(np.asarray(res.best_epoch)[m]) for m in members],
                "valid": mean_std([metrics_at(res.best, m, ks) for m in members]),
                "test": mean_std(tested),
                "test_per_seed": tested,
                "valid_curve": valid_curve(res, list(members), train_cfg),
            }
        )
    return Retrained(rows, res, test, archs, t_train)


def best_member_params(retrained: Retrained, row: int, seeds: int) -> Any:
    """The parameters of row `row`'s seed with the best validation fitness (numpy pytree)."""
    members = np.arange(row * seeds, (row + 1) * seeds)
    m = int(members[np.argmax(np.asarray(retrained.result.fitness)[members])])
    return jax.tree.map(lambda x: np.asarray(x[m]), retrained.result.params)
