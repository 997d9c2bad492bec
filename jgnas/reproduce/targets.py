"""The targets of `scripts/reproduce.py`: each calls one existing library entry point at the
README's budget (or a tiny one, `quick`) and returns its tables, figures and numbers.

Each full budget is the one of the script that made the README's table (named in each target's
docstring); `quick` keeps the same data and the same code path at a budget of seconds, so a quick
run checks the pipeline, never the numbers.

The registry `TARGETS` lives here; `Env` and `Output` (what a target gets and returns) in
`jgnas.reproduce.base`; the targets in `jgnas.reproduce.search_targets` (search, strategies,
fidelity, ablation) and `jgnas.reproduce.model_targets` (parity, quality, coldstart, bench). All
are re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from jgnas.reproduce.base import QUICK_FINAL, QUICK_SEARCH, Env, K, N, Output, R
from jgnas.reproduce.model_targets import (
    QUALITY_ROWS,
    QUICK_PARITY_ROWS,
    QUICK_QUALITY_ROWS,
    bench_suite,
    coldstart,
    parity,
    quality,
)
from jgnas.reproduce.search_targets import (
    FIDELITY,
    QUICK_FIDELITY,
    QUICK_STRATEGY_SETS,
    STRATEGIES,
    STRATEGY_SETS,
    ablation_study,
    fidelity_study,
    search,
    strategies,
)

__all__ = [
    "FIDELITY",
    "K",
    "N",
    "QUALITY_ROWS",
    "QUICK_FIDELITY",
    "QUICK_FINAL",
    "QUICK_PARITY_ROWS",
    "QUICK_QUALITY_ROWS",
    "QUICK_SEARCH",
    "QUICK_STRATEGY_SETS",
    "R",
    "STRATEGIES",
    "STRATEGY_SETS",
    "TARGETS",
    "Env",
    "Output",
    "Target",
    "ablation_study",
    "bench_suite",
    "coldstart",
    "fidelity_study",
    "parity",
    "quality",
    "search",
    "strategies",
]


@dataclasses.dataclass(frozen=True)
class Target:
    fn: Callable[[Env], Output]
    title: str


# In the order they run: the ablation reads the search's run directory.
TARGETS: Mapping[str, Target] = {
    "search": Target(search, "The default search (configs/ml100k.yaml)"),
    "strategies": Target(strategies, "Search strategies at an equal budget"),
    "fidelity": Target(fidelity_study, "Fidelity of short screening budgets"),
    "parity": Target(parity, "Preset faithfulness: parity with RecBole"),
    "quality": Target(quality, "The presets trained to convergence"),
    "coldstart": Target(coldstart, "Text features and cold start"),
    "ablation": Target(ablation_study, "Where the winner's gain comes from (ablation)"),
    "bench": Target(bench_suite, "Performance of the population engine"),
}
