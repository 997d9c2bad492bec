"""The retrained finalists and baselines, from final_metrics.json: learning curves, the table."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from jgnas.experiment import format_mean_std
from jgnas.viz.common import figure, save, value_label

SEARCHED_PREFIX = "search#"
METRIC_ORDER = ("recall", "ndcg", "precision", "hit", "mrr")


def is_searched(row: dict) -> bool:
    return str(row["label"]).startswith(SEARCHED_PREFIX)


def _floats(values) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values or ()], float)


def plot_curves(rows: Sequence[dict], path: pathlib.Path) -> str | None:
    """Validation metric against epochs (mean ± std over seeds) of every row with a `valid_curve`
    ({"eval_every", "metric", "mean", "std"}; NaN or None where a round did not run). None when no
    row has one."""
    curves = [(r, r["valid_curve"]) for r in rows if r.get("valid_curve")]
    curves = [(r, c) for r, c in curves if np.isfinite(_floats(c.get("mean"))).any()]
    if not curves:
        return None
    fig = figure(7.5, 4.2)
    ax = fig.subplots()
    for r, c in curves:
        mean, std = _floats(c["mean"]), _floats(c.get("std"))
        epochs = int(c.get("eval_every") or 1) * np.arange(1, len(mean) + 1)
        style = {"ls": "-", "lw": 1.8} if is_searched(r) else {"ls": "--", "lw": 1.3}
        (line,) = ax.plot(epochs, mean, marker="o", ms=2.5, label=r["label"], **style)
        if std.shape == mean.shape:
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    metric = curves[0][1].get("metric", "metric")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric} (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="solid: searched\ndashed: baselines", title_fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    return save(fig, path)


def primary_metric(summary: dict) -> str:
    """The test metric the run compares on (`vs_best_baseline`), else the fitness."""
    return summary.get("vs_best_baseline", {}).get("metric") or summary.get("fitness", "ndcg@20")


def table_metrics(rows: Sequence[dict]) -> list[str]:
    """The test metric columns: recall and ndcg at every k the run measured (else all metrics)."""
    names = list(dict.fromkeys(m for r in rows for m in r.get("test", {})))

    def order(m: str):
        base, _, k = m.partition("@")
        rank = METRIC_ORDER.index(base) if base in METRIC_ORDER else len(METRIC_ORDER)
        return rank, base, int(k) if k.isdigit() else 0

    main = [m for m in names if m.partition("@")[0] in ("recall", "ndcg")]
    return sorted(main or names, key=order)


def signed_percent(x: float) -> str:
    """A relative difference as the table prints it: `+2.4 %`, `−3.1 %` (a true minus sign)."""
    return f"{x * 100:+.1f} %".replace("-", "−")


def relative_to_best_baseline(rows: Sequence[dict], metric: str) -> tuple[str | None, list]:
    """(the best baseline's label, each row's relative difference to it on `metric`, or None).

    The best baseline is the baseline with the highest test mean; None everywhere when the run has
    no baseline or that baseline scores 0."""
    base = [r for r in rows if not is_searched(r) and metric in r.get("test", {})]
    if not base:
        return None, [None] * len(rows)
    best = max(base, key=lambda r: r["test"][metric]["mean"])
    ref = best["test"][metric]["mean"]
    diffs = [
        r["test"][metric]["mean"] / ref - 1 if ref > 0 and metric in r.get("test", {}) else None
        for r in rows
    ]
    return best["label"], diffs


def cell(stat: dict | None) -> str:
    """`mean ± std` as every jgnas table prints it, or "–" when the metric is missing."""
    return "–" if not stat else format_mean_std(stat)


def tuned_text(row: dict) -> str:
    """A row's `tuned` hyperparameters ("lr 0.001, l2 0.0001"), or "" when it has none. Only the
    chosen values: the grid it was tuned over (a list) is left out."""
    t = row.get("tuned") or {}
    return ", ".join(f"{k} {value_label(v)}" for k, v in t.items()
                     if isinstance(v, (str, int, float, bool)))  # fmt: skip
