"""Figures of the search, from history.jsonl: fitness per generation, genes of the best, Pareto."""

from __future__ import annotations

import math
import pathlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from jgnas.search.archive import Candidate, cost_of
from jgnas.viz.common import BASELINE, HIGHLIGHT, SEARCHED, TOP, figure, save, value_label

# A gene with more distinct values than this is a number off the grids: no bar chart for it.
MAX_VALUES = 24


def ok(history: Sequence[dict]) -> list[dict]:
    """The records that trained: a fitness and no failure."""
    return [h for h in history if h.get("fitness") is not None and not h.get("failed")]


def plot_distribution(history: Sequence[dict], path: pathlib.Path, fitness_name: str) -> str:
    """Box plot of the fitness of each generation, with every candidate as a jittered dot."""
    rows = ok(history)
    gens = sorted({int(h.get("generation", 0)) for h in rows})
    data = [[h["fitness"] for h in rows if int(h.get("generation", 0)) == g] for g in gens]
    fig = figure(max(6.0, 0.45 * len(gens) + 2), 3.6)
    ax = fig.subplots()
    if gens:
        ax.boxplot(data, positions=gens, widths=0.6, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "#dce9f5", "edgecolor": SEARCHED},
                   medianprops={"color": HIGHLIGHT})  # fmt: skip
        rng = np.random.default_rng(0)  # the jitter only; fixed so reports compare byte for byte
        for g, values in zip(gens, data):
            jitter = rng.uniform(-0.18, 0.18, len(values))
            ax.scatter(g + jitter, values, s=9, alpha=0.55, color=SEARCHED, zorder=3)
        ax.set_xticks(gens)
    ax.set_xlabel("generation")
    ax.set_ylabel(f"validation {fitness_name}")
    ax.set_title("fitness of each generation (failed candidates left out)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def _plural_to_singular(key: str) -> str:
    return key[:-1] if key.endswith("s") else key


def _order(x) -> tuple:
    """Numbers (and bools) first, in value order, then names alphabetically."""
    return (0, float(x), "") if isinstance(x, (int, float)) else (1, 0.0, str(x))


def gene_values(arch: dict) -> dict[str, list]:
    """The categorical genes of an arch dict and their values: a top-level scalar once, a key of a
    list of dicts once per entry, named `layer op` for `layers[*].op` (any key, so genes added
    later show too)."""
    out: dict[str, list] = {}
    for key, v in arch.items():
        if isinstance(v, list):
            for entry in v:
                if isinstance(entry, dict):
                    for k2, v2 in entry.items():
                        if isinstance(v2, (str, int, float, bool)):
                            out.setdefault(f"{_plural_to_singular(key)} {k2}", []).append(v2)
        elif isinstance(v, (str, int, float, bool)):
            out.setdefault(key, []).append(v)
    return out


def gene_shares(history: Sequence[dict], top_frac: float = 0.1) -> tuple[list[dict], int, int]:
    """How often each value of each gene occurs among the best `top_frac` of the distinct trained
    architectures against all of them.

    Returns (genes, n_top, n_all); each gene is {"gene", "values", "all", "top"} with shares in
    [0, 1] (a layer gene: the share of the layers). Genes with one value, or with more than
    MAX_VALUES, are left out.
    """
    distinct: dict = {}
    for h in sorted(ok(history), key=lambda h: -h["fitness"]):  # stable: the first seen wins ties
        distinct.setdefault(tuple(h.get("key") or ()) or h.get("describe"), h)
    ranked = list(distinct.values())
    n_top = max(1, math.ceil(top_frac * len(ranked))) if ranked else 0
    all_v = [gene_values(h["arch"]) for h in ranked]
    top_v = all_v[:n_top]
    genes = []
    names = list(dict.fromkeys(g for v in all_v for g in v))
    for name in names:
        c_all = Counter(x for v in all_v for x in v.get(name, ()))
        c_top = Counter(x for v in top_v for x in v.get(name, ()))
        if not 2 <= len(c_all) <= MAX_VALUES:
            continue
        values = sorted(c_all, key=_order)
        n_all, n_t = sum(c_all.values()), sum(c_top.values())
        genes.append({
            "gene": name,
            "values": values,
            "all": [c_all[x] / n_all for x in values],
            "top": [c_top[x] / n_t if n_t else 0.0 for x in values],
        })  # fmt: skip
    return genes, n_top, len(ranked)


def plot_genes(genes: Sequence[dict], n_top: int, n_all: int, path: pathlib.Path) -> str | None:
    """One horizontal bar chart per gene: share among all distinct candidates and among the top."""
    if not genes:
        return None
    ncols = min(3, len(genes))
    nrows = math.ceil(len(genes) / ncols)
    tall = max(len(g["values"]) for g in genes)
    fig = figure(4.2 * ncols, nrows * (0.28 * tall + 1.3))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, g in zip(axes, genes):
        y = np.arange(len(g["values"]))
        ax.barh(y - 0.2, g["all"], height=0.4, color=BASELINE, label=f"all ({n_all})")
        ax.barh(y + 0.2, g["top"], height=0.4, color=TOP, label=f"top 10 % ({n_top})")
        ax.set_yticks(y, [value_label(v) for v in g["values"]], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(g["gene"], fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[len(genes) :]:
        ax.set_visible(False)
    fig.supxlabel("share of the distinct trained architectures (a layer gene: of the layers)",
                  fontsize=9)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=2, fontsize=9, frameon=False)
    return save(fig, path)


def cost_kind(front: Sequence[dict], fitness_name: str) -> str:
    """The cost objective named in the Pareto entries of final_metrics.json ("params" or "time")."""
    keys = [k for k in front[0] if k not in ("describe", fitness_name)]
    return keys[0] if keys else "cost"


def front_by_cost(front: Sequence[dict], fitness_name: str) -> list[dict]:
    """The Pareto entries in the order the figure numbers them: by cost, then fitness."""
    cost = cost_kind(front, fitness_name)
    return sorted(front, key=lambda p: (float(p[cost]), -float(p[fitness_name])))


def plot_pareto(
    front: Sequence[dict], archive: Sequence[Candidate], fitness_name: str, path: pathlib.Path
) -> str:
    """Every trained candidate's (cost, fitness), the front of final_metrics.json numbered by cost."""
    cost = cost_kind(front, fitness_name)
    trained = [r for r in archive if r.ok and not r.cached]
    fig = figure(7.0, 4.2)
    ax = fig.subplots()
    xs = np.asarray([cost_of(r, cost) for r in trained], float)
    ax.scatter(xs, [r.fitness for r in trained], s=12, color=BASELINE, alpha=0.5,
               label="trained candidates")  # fmt: skip
    pts = [(float(p[cost]), float(p[fitness_name])) for p in front_by_cost(front, fitness_name)]
    px, py = zip(*pts)
    ax.step(px, py, where="post", color=HIGHLIGHT, alpha=0.6)
    ax.scatter(px, py, s=36, color=HIGHLIGHT, zorder=3, label="Pareto front")
    for n, (x, y) in enumerate(pts, 1):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    positive = xs[xs > 0] if xs.size else np.asarray(px)
    if positive.size and positive.max() / max(positive.min(), 1e-12) > 20:
        ax.set_xscale("log")
    ax.set_xlabel({"params": "parameters", "time": "training seconds"}.get(cost, cost))
    ax.set_ylabel(f"validation {fitness_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)
