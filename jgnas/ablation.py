"""Where a searched model's gain comes from: architecture, input features, training objective.

From a winner W and the published baseline B (lightgcn: 3 LightGCN layers, mean, id features,
BPR), the ablation builds every mix of the three parts, each part taken from W or from B:

    architecture (layers, combination, dim, dropout) x features x objective (loss, negatives,
    temperature, sampler, contrastive term)

and trains all of them under one protocol (`jgnas.experiment.tune` over the same lr x L2 grid,
then `retrain_and_test` over seeds). Row "B + objective of W" is the baseline retrained with the
winner's objective, so the table shows what the architecture itself adds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from jgnas import experiment
from jgnas.archio import OBJECTIVE_KEYS
from jgnas.experiment import Context, Log
from jgnas.progress import Progress
from jgnas.space import Arch

PARTS = ("architecture", "features", "objective")
ARCH_KEYS = ("depth", "layers", "combine", "dim", "dropout")


def variants(ctx: Context, winner: Arch, baseline: str = "lightgcn") -> list[tuple[str, Arch]]:
    """The 2^3 mixes of (architecture, features, objective) from the winner or the baseline, as
    (label, arch); labels name what comes from the winner ("baseline", "+objective", ...,
    "winner"). Mixes equal to another (a part the two share) are kept once."""
    space = ctx.space
    w, b = space.to_dict(winner), space.to_dict(space.preset(baseline))
    keys = {"architecture": ARCH_KEYS, "features": ("features",), "objective": OBJECTIVE_KEYS}
    out, seen = [], set()
    for mask in itertools.product((False, True), repeat=3):
        d = dict(b)
        for part, from_winner in zip(PARTS, mask):
            if from_winner:
                d.update({k: w[k] for k in keys[part]})
        label = (
            "baseline"
            if not any(mask)
            else "winner"
            if all(mask)
            else "baseline + " + " + ".join(p for p, m in zip(PARTS, mask) if m) + " of winner"
        )
        key = repr(sorted(d.items()))
        if key in seen:
            continue
        seen.add(key)
        out.append((label, space.from_dict(d, where=f"ablation {label}")))
    return out


def run(
    ctx: Context,
    winner: Arch,
    *,
    baseline: str = "lightgcn",
    lrs: Sequence[float] = (),
    l2s: Sequence[float] = (),
    tune_seeds: int = 1,
    seeds: int = 3,
    train_cfg=None,
    seed: int = 0,
    chunk_size: int | None = None,
    log: Log = experiment.stderr_log,
    progress: Progress | None = None,
) -> list[dict]:
    """Tunes and retrains every variant under one protocol; rows as `retrain_and_test`'s, each
    with its `tuned` grid when a grid is given. `progress`: the phases tune, retrain and test
    (`jgnas.progress`; default: none)."""
    cands = variants(ctx, winner, baseline)
    cfg = train_cfg or experiment.final_train_config(ctx.cfg.train, ctx.cfg.final)
    tuned = None
    if lrs or l2s:
        tuned = experiment.tune(ctx, cands, lrs=lrs, l2s=l2s, seeds=tune_seeds, train_cfg=cfg,
                                seed=seed, chunk_size=chunk_size, log=log,
                                progress=progress)  # fmt: skip
        cands = tuned.candidates
    out = experiment.retrain_and_test(ctx, cands, seeds=seeds, train_cfg=cfg, seed=seed,
                                      chunk_size=chunk_size, log=log, progress=progress)  # fmt: skip
    for row in out.rows:
        if tuned is not None:
            row["tuned"] = tuned.grid[row["label"]]
    return out.rows


def table(rows: Sequence[dict], metric: str = "ndcg@20") -> str:
    """The ablation as Markdown: test metric mean ± std and the change against the baseline."""
    base = next(r for r in rows if r["label"] == "baseline")["test"][metric]["mean"]
    lines = [
        f"| variant | model | lr, L2 | test {metric} | vs baseline |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["test"][metric]
        t = r.get("tuned")
        hp = f"{t['lr']:g}, {t['l2']:g}" if t else f"{r['arch']['lr']:g}, {r['arch']['l2']:g}"
        gain = m["mean"] / base - 1 if base > 0 else float("nan")
        lines.append(
            f"| {r['label']} | {r['describe']} | {hp} | {experiment.format_mean_std(m)} | "
            f"{gain:+.1%} |"
        )
    return "\n".join(lines) + "\n"
