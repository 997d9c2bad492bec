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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jgnas import data as data_lib
from jgnas import metrics as metrics_lib
from jgnas.interrupt import StopFn
from jgnas.space import Arch, Space, stack
from jgnas.train import Engine, TrainConfig, TrainData, TrainResult, make_data

if TYPE_CHECKING:  # the config layer imports this module, not the other way round
    from jgnas.config import ExperimentConfig

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    """The default line logger: one line to stderr."""
    print(msg, file=sys.stderr, flush=True)


def quiet(msg: str) -> None:
    """A logger that drops every line."""


@dataclasses.dataclass(frozen=True)
class FinalConfig:
    """Retraining after search: the top_k distinct archs (and the baseline presets) are trained with
    the full budget over `seeds` seeds, vmapped together, early-stopped on validation, then tested once.
    """

    top_k: int = 2
    seeds: int = 3
    epochs: int = 400
    eval_every: int = 5
    patience: int = 6
    baselines: tuple[str, ...] = ("lightgcn", "ngcf", "mf")

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


def prepare(cfg: ExperimentConfig, log: Log = stderr_log) -> Context:
    """Loads the dataset (and text vectors), builds the shared graph and the validation set.

    Fails early (`check_dataset`) on data the experiment cannot report on."""
    t0 = time.perf_counter()
    dataset = data_lib.load(cfg.data, log=log)
    check_dataset(dataset, cfg)
    negative = int(dataset.stats.get("negative_ratings", 0))
    if negative:
        log(f"warning: {negative} interactions with negative ratings are kept as positives "
            "(set data.rating_threshold to drop them)")  # fmt: skip
    text = None
    if cfg.text.enabled:
        from jgnas.features import node_text_matrix

        text = node_text_matrix(dataset, cfg.text, log=log)
    data = make_data(dataset, cfg.train, text=text)
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
) -> Retrained:
    """Trains every (label, arch) over `seeds` seeds as one population (archs x seeds), with early
    stopping on validation, then tests each member once (ranking excludes train and valid items).

    Each row: label, arch (dict), describe, seeds, failed (count), best_epoch (per seed), valid and
    test (`mean_std` over seeds) and test_per_seed. `should_stop`: see `jgnas.train.Engine`.
    """
    if seeds < 1:
        raise ValueError(f"seeds: must be >= 1, got {seeds}")
    archs = stack([a for _, a in candidates for _ in range(seeds)])
    root = jax.random.fold_in(jax.random.key(seed), 7)
    keys = jax.numpy.stack([jax.random.fold_in(root, s) for _ in candidates for s in range(seeds)])
    engine = Engine(train_cfg, ctx.space, ctx.data, chunk_size=chunk_size, should_stop=should_stop)
    t0 = time.perf_counter()
    res = engine.train(keys, archs)
    t_train = time.perf_counter() - t0
    test_set = metrics_lib.test_eval_set(ctx.dataset, block_size=train_cfg.eval_block)
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
            }
        )
    return Retrained(rows, res, test, archs, t_train)


def best_member_params(retrained: Retrained, row: int, seeds: int) -> Any:
    """The parameters of row `row`'s seed with the best validation fitness (numpy pytree)."""
    members = np.arange(row * seeds, (row + 1) * seeds)
    m = int(members[np.argmax(np.asarray(retrained.result.fitness)[members])])
    return jax.tree.map(lambda x: np.asarray(x[m]), retrained.result.params)
