"""Search strategies (ask/tell over [0, 1] genomes) and multi-objective helpers."""

from jgnas.search.pareto import pareto_front
from jgnas.search.rl import make_reinforce
from jgnas.search.strategies import (
    ALIASES,
    EVOSAX_ALGORITHMS,
    STRATEGIES,
    GenomeSpec,
    Strategy,
    make_evosax,
    make_random_search,
    make_regularized_evolution,
    make_strategy,
    register_strategy,
)

__all__ = [
    "ALIASES",
    "EVOSAX_ALGORITHMS",
    "STRATEGIES",
    "GenomeSpec",
    "Strategy",
    "make_evosax",
    "make_random_search",
    "make_reinforce",
    "make_regularized_evolution",
    "make_strategy",
    "pareto_front",
    "register_strategy",
]
