"""The `search` section of an experiment config."""

from __future__ import annotations

import dataclasses

from jgnas.search.strategies import STRATEGIES


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The search loop.

    strategy: any key of `STRATEGIES` ("random", "regularized_evolution" (alias "aging"), every
      evosax algorithm by name, and strategies registered by plugins).
    strategy_kwargs: passed to the strategy factory (e.g. fitness_shaping, tournament_size).
    population_size, generations: candidates per generation and number of generations.
    seed: the root PRNG seed of the search (strategy, training keys).
    chunk_size: members per vmapped chunk (null: 1 on CPU, the whole population on GPU).
    cost: "none", "params" (parameter count) or "time" (measured train seconds): a second objective;
      the Pareto front of (fitness, -cost) is kept, and cost_weight > 0 also penalises the fitness
      the strategy sees by cost_weight * cost / max(cost).
    halving_rungs, halving_eta: successive halving inside each generation: the top 1/eta of the
      candidates are retrained with eta times the epochs, `halving_rungs` times; a promoted
      candidate's fitness is its highest-budget score.
    retrain_duplicates: train an arch again when it reappears (default: reuse the archived result).
    seed_presets: preset names (`jgnas.presets`) that replace the first members of generation 0,
      each moved to the nearest point of the space's grids (`jgnas.search.seeding`), so that the
      search starts from the published models instead of only random ones.
    """

    strategy: str = "regularized_evolution"
    strategy_kwargs: dict = dataclasses.field(default_factory=dict)
    population_size: int = 32
    generations: int = 8
    seed: int = 0
    chunk_size: int | None = None
    cost: str = "none"
    cost_weight: float = 0.0
    halving_rungs: int = 0
    halving_eta: int = 2
    retrain_duplicates: bool = False
    seed_presets: tuple[str, ...] = ()

    def __post_init__(self):
        # Read at validation time, so a strategy registered by a plugin is accepted.
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"search.strategy: {self.strategy!r} is not one of {sorted(STRATEGIES)}"
            )
        if self.population_size < 1:
            raise ValueError(f"search.population_size: must be >= 1, got {self.population_size}")
        if self.generations < 1:
            raise ValueError(f"search.generations: must be >= 1, got {self.generations}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"search.chunk_size: must be >= 1 or null, got {self.chunk_size}")
        if self.cost not in ("none", "params", "time"):
            raise ValueError(f"search.cost: {self.cost!r} is not one of ['none', 'params', 'time']")
        if len(self.seed_presets) > self.population_size:
            raise ValueError(
                f"search.seed_presets: {len(self.seed_presets)} presets for a population of "
                f"{self.population_size}"
            )
        if self.halving_rungs < 0 or self.halving_eta < 2:
            raise ValueError("search.halving_rungs must be >= 0 and search.halving_eta >= 2")
