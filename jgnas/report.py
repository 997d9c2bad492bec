"""What a run directory shows a person: the summary table, the search curve, the Pareto front.

Reads finished results (archive records and retrained rows); trains nothing. Every table states
`mean ± std` over seeds with the population std (ddof = 0, `jgnas.experiment.mean_std`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

from jgnas.experiment import format_mean_std
from jgnas.search.archive import Candidate, cost_of
from jgnas.search.pareto import pareto_front


def pareto(archive: Sequence[Candidate], cost: str, fitness_name: str) -> list[dict]:
    """The trained candidates on the Pareto front of (fitness, -cost)."""
    ok = [r for r in archive if r.fitness is not None and not r.cached]
    if not ok:
        return []
    obj = np.asarray([[r.fitness, cost_of(r, cost)] for r in ok])
    mask = pareto_front(obj, maximize=[True, False])
    return [
        {"describe": r.describe, fitness_name: r.fitness, cost: cost_of(r, cost)}
        for r, keep in zip(ok, mask)
        if keep
    ]


_cell = format_mean_std


def results_table(rows: Sequence[dict], ks: Sequence[int], label_fn=None) -> list[str]:
    """Markdown lines: one row per retrained arch, test Recall/NDCG at every k (mean ± std)."""
    cols = [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks]
    label_fn = label_fn or (lambda r: f"{r['label']} ({r['describe']})")
    lines = ["| model | " + " | ".join(f"test {c}" for c in cols) + " |"]
    lines.append("|---|" + "---|" * len(cols))
    for r in rows:
        lines.append(f"| {label_fn(r)} | " + " | ".join(_cell(r["test"][c]) for c in cols) + " |")
    return lines


def strategies_table(compared: dict, fitness_name: str, k: int = 20) -> list[str]:
    """Markdown lines of `jgnas.job.compare_strategies`: one row per search's winner and baseline,
    then (with several search seeds) one row per strategy: its winners' mean ± std over the
    searches, and the signed difference of that mean to every baseline."""
    lines = [
        f"| strategy / preset | search best valid {fitness_name} | evaluated (trained) | tuned lr "
        f"| test recall@{k} | test ndcg@{k} | arch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in compared["rows"]:
        s = compared["searched"].get(r["label"])
        head = f"{s['best_valid']:.4f} | {s['evaluated']} ({s['trained']})" if s else "- | -"
        lr = f"{r['tuned']['lr']:g}" if "tuned" in r else "-"
        t = r["test"]
        lines.append(
            f"| {r['label']} | {head} | {lr} | {_cell(t[f'recall@{k}'])} | "
            f"{_cell(t[f'ndcg@{k}'])} | {r['describe']} |"
        )
    if compared.get("search_seeds", 1) > 1:
        n = compared["search_seeds"]
        base = [r for r in compared["rows"] if r["label"] not in compared["searched"]]
        metric = f"ndcg@{k}"
        lines += [
            "",
            f"| strategy | test recall@{k}, mean ± std over {n} searches | test {metric} | "
            f"{metric} per search | "
            + " | ".join(f"vs {b['label']}" for b in base)
            + " |",
            "|---|---|---|---|" + "---|" * len(base),
        ]
        for name, d in compared["by_strategy"].items():
            t = d["test"]
            vs = [
                f"{t[metric]['mean'] / b['test'][metric]['mean'] - 1:+.1%}"
                if b["test"][metric]["mean"] > 0
                else "n/a"
                for b in base
            ]
            per = ", ".join(f"{v:.4f}" for v in t[metric]["per_search"])
            lines.append(
                f"| {name} | {_cell(t[f'recall@{k}'])} | {_cell(t[metric])} | {per} | "
                + " | ".join(vs)
                + " |"
            )
    return lines


def summary_markdown(summary: dict, ks: Sequence[int], seeds: int) -> str:
    """summary.md: the table a person reads first."""
    cols = [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks]
    fit = summary["fitness"]
    lines = [
        f"# {summary['name']}: {summary['dataset']}",
        "",
        f"Search: {summary['strategy']}, {summary['candidates_evaluated']} candidates evaluated "
        f"({summary['candidates_trained']} trained, {summary['failed']} failed) in "
        f"{summary['search_seconds']:.0f} s; retraining {summary['final_seconds']:.0f} s on "
        f"{summary['device']}. Fitness: validation {fit}.",
        "",
        f"Test metrics, mean ± std over {seeds} seeds (population std; ranking over all items, "
        "train and validation items excluded):",
        "",
        "| model | architecture | " + " | ".join(f"test {c}" for c in cols) + f" | valid {fit} |",
        "|---|---|" + "---|" * (len(cols) + 1),
    ]
    for r in summary["rows"]:
        cells = " | ".join(_cell(r["test"][c]) for c in cols)
        label = f"**{r['label']}**" if r["label"] == summary["winner"] else r["label"]
        lines.append(f"| {label} | {r['describe']} | {cells} | {r['valid'][fit]['mean']:.4f} |")
    changed = [(r["label"], c) for r in summary["rows"] for c in r.get("changed", ())]
    if changed:
        lines += ["", "Presets changed to fit the space (all else as published):", ""]
        lines += [f"- {label}: {c}" for label, c in changed]
    tuned = [r for r in summary["rows"] if "tuned" in r]
    if tuned:
        g = tuned[0]["tuned"]["grid"]
        lrs = sorted({p["lr"] for p in g})
        l2s = sorted({p["l2"] for p in g})
        lines += [
            "",
            f"Every row was tuned the same way: lr in {[f'{v:g}' for v in lrs]} x L2 in "
            f"{[f'{v:g}' for v in l2s]}, the point with the best mean validation {fit} kept:",
            "",
        ]
        lines += [f"- {r['label']}: lr {r['tuned']['lr']:g}, L2 {r['tuned']['l2']:g}" for r in tuned]
    finalists = summary.get("finalists", {})
    if len(finalists) > 1:

        def best(g):
            return max((p["valid"] for p in g["grid"] if p["valid"] is not None), default=None)

        lines += [
            "",
            f"The search's {len(finalists)} finalists, tuned alike; the one with the best "
            f"validation {fit} was retrained as the winner:",
            "",
        ]
        lines += [
            f"- {label} {g.get('describe', '')}: best tuned validation {fit} "
            + (f"{best(g):.4f}" if best(g) is not None else "n/a (failed)")
            + f" at lr {g['lr']:g}, L2 {g['l2']:g}"
            for label, g in finalists.items()
        ]
    if "vs_best_baseline" in summary:
        b = summary["vs_best_baseline"]
        gain = b["relative_gain"]
        lines += [
            "",
            f"Winner vs best baseline ({b['baseline']}) on test {b['metric']}: "
            + (f"{gain:+.1%}." if gain is not None else "n/a (the baseline scores 0)."),
        ]
        others = [v for v in summary.get("vs_baselines", []) if v["baseline"] != b["baseline"]]
        lines += [
            f"Winner vs {v['baseline']}: "
            + (f"{v['relative_gain']:+.1%}." if v["relative_gain"] is not None else "n/a.")
            for v in others
        ]
    if summary.get("pareto_front"):
        lines += ["", "Pareto front (fitness vs cost):", ""]
        lines += [f"- {p}" for p in summary["pareto_front"]]
    return "\n".join(lines) + "\n"


def plot_curve(archive: Sequence[Candidate], path: pathlib.Path, fitness_name: str) -> None:
    """search_curve.png: best-so-far and per-generation median fitness against evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = np.asarray([np.nan if r.fitness is None else r.fitness for r in archive])
    best = np.fmax.accumulate(np.where(np.isnan(fit), -np.inf, fit))
    gens = np.asarray([r.generation for r in archive])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(1, len(fit) + 1)
    ax.plot(x, np.where(np.isfinite(best), best, np.nan), label="best so far")
    xs, med = [], []
    for g in np.unique(gens):
        sel = (gens == g) & ~np.isnan(fit)
        if sel.any():
            xs.append(np.nonzero(gens == g)[0].max() + 1)
            med.append(np.median(fit[sel]))
    ax.plot(xs, med, "o-", label="generation median")
    ax.scatter(x, fit, s=6, alpha=0.3, label="candidates")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"validation {fitness_name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
