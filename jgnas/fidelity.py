"""Fidelity study: does a short screening budget rank architectures the way full training does?

Each architecture (a sample of the space plus the presets) is trained once per learning rate to
convergence (early stopping on validation, evaluated every `eval_every` epochs). Training has no
budget-dependent schedule (constant-step Adam, per-step keys `fold_in(key, step)`), so the
validation score after b epochs of that run *is* the fitness a b-epoch screening run reports
(tested in `tests/test_fidelity.py`): one long run gives every budget.

Two "truths" are compared against the budgets' rankings:
- converged: the best validation score of the run at the arch's own learning rate;
- tuned: the best converged validation score over the learning-rate grid (what retraining with
  equal tuning would find), and its test score at that learning rate.
Rank agreement is Spearman's rho and Kendall's tau-b (scipy), over the architectures that did not
fail.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import numpy as np
from scipy import stats

from jgnas import experiment, metrics
from jgnas import progress as progress_lib
from jgnas.progress import Progress
from jgnas.space import Arch, stack, take
from jgnas.train import Engine


@dataclasses.dataclass(frozen=True)
class FidelityConfig:
    """n_archs: architectures sampled from the space (distinct, canonical), plus `presets`.
    budgets: screening budgets in epochs (multiples of eval_every). lrs: the learning rates every
    arch is trained at (empty: each arch's own lr gene only). max_epochs, eval_every, patience: the
    convergence run (patience >= max(budgets) / eval_every, so no run stops before the largest
    budget). seed: the sample and the training keys."""

    n_archs: int = 24
    presets: tuple[str, ...] = ("mf", "lightgcn", "ngcf")
    budgets: tuple[int, ...] = (5, 15, 45)
    lrs: tuple[float, ...] = ()
    max_epochs: int = 400
    eval_every: int = 5
    patience: int = 9
    seed: int = 0

    def __post_init__(self):
        if any(b % self.eval_every or b <= 0 for b in self.budgets):
            raise ValueError(f"budgets {self.budgets} must be positive multiples of eval_every")
        if max(self.budgets) > self.max_epochs or self.max_epochs % self.eval_every:
            raise ValueError("max_epochs must be a multiple of eval_every and >= every budget")
        if (self.patience + 1) * self.eval_every < max(self.budgets):
            raise ValueError("patience too small: a run could stop before the largest budget")


def sample_archs(ctx: experiment.Context, fcfg: FidelityConfig) -> list[tuple[str, Arch]]:
    """`n_archs` distinct canonical archs of the space (seeded), then the presets."""
    space = ctx.space
    key = jax.random.key(fcfg.seed)
    out, seen = [], set()
    for attempt in range(100):
        archs = space.canonical(space.sample(jax.random.fold_in(key, attempt), 4 * fcfg.n_archs))
        for i, k in enumerate(space.keys(archs)):
            if k not in seen and len(out) < fcfg.n_archs:
                seen.add(k)
                out.append((f"sample#{len(out) + 1}", take(archs, i)))
        if len(out) == fcfg.n_archs:
            break
    return out + [(name, space.preset(name)) for name in fcfg.presets]


def _with_lr(arch: Arch, lr: float | None) -> Arch:
    return arch if lr is None else arch.replace(lr=np.float32(lr))


def run(
    ctx: experiment.Context,
    fcfg: FidelityConfig,
    log=experiment.stderr_log,
    progress: Progress | None = None,
) -> dict:
    """Trains every arch at every lr to convergence; returns per-arch curves and the correlations.
    `progress`: its phases "train" and "test", one step per run (`jgnas.progress`; default: none).
    """
    progress = progress_lib.as_progress(progress)
    candidates = sample_archs(ctx, fcfg)
    lrs: Sequence[float | None] = fcfg.lrs or (None,)
    cfg = dataclasses.replace(
        ctx.cfg.train,
        epochs=fcfg.max_epochs,
        eval_every=fcfg.eval_every,
        patience=fcfg.patience,
    )
    k_idx = cfg.ks.index(cfg.metric_k)
    members = [(label, _with_lr(a, lr), lr) for label, a in candidates for lr in lrs]
    archs = stack([a for _, a, _ in members])
    keys = jax.numpy.stack(
        [jax.random.fold_in(jax.random.key(fcfg.seed), i) for i in range(len(members))]
    )
    engine = Engine(cfg, ctx.space, ctx.data, chunk_size=ctx.cfg.search.chunk_size)
    t0 = time.perf_counter()
    with progress.phase("train", total=len(members)) as update:
        engine.on_progress = update
        res = engine.train(keys, archs)
    log(f"fidelity: trained {len(members)} runs in {time.perf_counter() - t0:.0f} s")
    with progress.phase("test", total=len(members)) as update:
        engine.on_progress = update
        test_set = metrics.test_eval_set(ctx.dataset, cfg.eval_block)
        test = engine.evaluate(res.params, archs, test_set)
    curve = np.asarray(res.valid[cfg.metric])[:, :, k_idx]  # [M, rounds]
    test_fit = np.asarray(test[cfg.metric])[:, k_idx]
    rows = []
    for m, (label, arch, _) in enumerate(members):
        rows.append(
            {
                "label": label,
                "describe": ctx.space.describe(arch),
                "lr": float(arch.lr),
                "failed": bool(np.asarray(res.failed)[m]),
                "budgets": {
                    str(b): _finite(curve[m, b // fcfg.eval_every - 1]) for b in fcfg.budgets
                },
                "converged": _finite(np.asarray(res.fitness)[m]),
                "best_epoch": int(np.asarray(res.best_epoch)[m]),
                "test": _finite(test_fit[m]),
                "curve": [_finite(x) for x in curve[m]],
            }
        )
    return {
        "metric": f"{cfg.metric}@{cfg.metric_k}",
        "config": dataclasses.asdict(fcfg),
        "rows": rows,
        "correlations": correlations(rows, fcfg.budgets),
    }


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _rank_corr(x: Sequence[float], y: Sequence[float]) -> dict:
    rho = stats.spearmanr(x, y).statistic
    tau = stats.kendalltau(x, y).statistic  # tau-b: ties in either ranking are accounted for
    return {"spearman": float(rho), "kendall": float(tau), "n": len(x)}


def tuned(rows: list[dict]) -> dict[str, dict]:
    """Per architecture, the row of its best converged validation over the lr grid."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["converged"] is None:
            continue
        if r["label"] not in best or r["converged"] > best[r["label"]]["converged"]:
            best[r["label"]] = r
    return best


def correlations(rows: list[dict], budgets: Sequence[int]) -> dict:
    """Rank correlations of each budget's validation score with converged validation (same run),
    with the tuned validation (best over lrs), and of converged validation with test."""
    ok = [r for r in rows if r["converged"] is not None and r["test"] is not None]
    best = tuned(ok)
    out: dict[str, dict] = {}
    for b in map(str, budgets):
        runs = [r for r in ok if r["budgets"][b] is not None]
        out[f"valid@{b} vs converged valid"] = _rank_corr(
            [r["budgets"][b] for r in runs], [r["converged"] for r in runs]
        )
        # Screening picks an arch by its best short-budget score over the lrs it was run at.
        short = {}
        for r in runs:
            short[r["label"]] = max(short.get(r["label"], -np.inf), r["budgets"][b])
        labels = sorted(set(short) & set(best))
        out[f"valid@{b} (best lr) vs tuned valid"] = _rank_corr(
            [short[x] for x in labels], [best[x]["converged"] for x in labels]
        )
    out["converged valid vs test"] = _rank_corr(
        [r["converged"] for r in ok], [r["test"] for r in ok]
    )
    labels = sorted(best)
    out["tuned valid vs tuned test"] = _rank_corr(
        [best[x]["converged"] for x in labels], [best[x]["test"] for x in labels]
    )
    return out


def table(result: dict) -> list[str]:
    """Markdown lines: one row per comparison."""
    lines = ["| comparison | Spearman ρ | Kendall τ | archs |", "|---|---|---|---|"]
    for name, c in result["correlations"].items():
        lines.append(f"| {name} | {c['spearman']:.3f} | {c['kendall']:.3f} | {c['n']} |")
    return lines


def plot(result: dict, path) -> None:
    """Scatter of each budget's validation score against the converged one (one panel a budget)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = result["config"]["budgets"]
    rows = [r for r in result["rows"] if r["converged"] is not None]
    fig, axes = plt.subplots(1, len(budgets) + 1, figsize=(4 * (len(budgets) + 1), 3.6))
    for ax, b in zip(axes, budgets):
        pts = [
            (r["budgets"][str(b)], r["converged"], r)
            for r in rows
            if r["budgets"][str(b)] is not None
        ]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14,
                   c=["C3" if not p[2]["label"].startswith("sample") else "C0" for p in pts])  # fmt: skip
        c = result["correlations"][f"valid@{b} vs converged valid"]
        ax.set_title(f"{b} epochs: ρ={c['spearman']:.2f}, τ={c['kendall']:.2f}")
        ax.set_xlabel(f"valid {result['metric']} after {b} epochs")
        ax.set_ylabel("converged valid")
    ok = [r for r in rows if r["test"] is not None]
    axes[-1].scatter([r["converged"] for r in ok], [r["test"] for r in ok], s=14)
    c = result["correlations"]["converged valid vs test"]
    axes[-1].set_title(f"valid vs test: ρ={c['spearman']:.2f}")
    axes[-1].set_xlabel("converged valid")
    axes[-1].set_ylabel(f"test {result['metric']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
