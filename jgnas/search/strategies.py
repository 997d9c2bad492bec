"""Search strategies: pure ask/tell bundles over [0, 1] genomes, in the optax style.

A strategy proposes ``population_size`` genomes per generation and learns from their fitness.
Genomes are float32 vectors in [0, 1]; gene ``g`` with cardinality ``sizes[g] > 0`` decodes to
bin ``min(floor(x * size), size - 1)`` and a gene with size 0 is continuous (the search space
maps it to e.g. a log learning rate). Fitness is *higher is better* (validation NDCG@20, say).

Failed candidates: any non-finite fitness (``-inf``, ``+inf`` or NaN) counts as a failure. The
native strategies store it as ``-inf``; the evosax adapter replaces it by a finite value worse than
every finite fitness seen so far (see ``_sanitize``), since evosax's updates do arithmetic on
fitness and an infinity would turn the search distribution into NaN.

Strategies:
  * ``random``: uniform genomes every generation (the baseline every NAS paper must beat).
  * ``regularized_evolution`` (alias ``aging``): aging evolution, Real et al. 2019,
    https://arxiv.org/abs/1802.01548, batched to ``population_size`` children per generation.
  * every algorithm of ``evosax.algorithms`` (CMA_ES, Sep_CMA_ES, SimpleGA, PSO, ...) through
    ``make_evosax``, which maps evosax's unbounded search space R^G to [0, 1]^G with a sigmoid.
  * ``reinforce``: a policy-gradient controller (GraphNAS/ENAS style), ``jgnas.search.rl``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jgnas.search.base import GenomeSpec, Strategy, check_population_size
from jgnas.search.evosax_adapter import _UNSUPPORTED, EVOSAX_ALGORITHMS, make_evosax
from jgnas.search.rl import make_reinforce

__all__ = [
    "GenomeSpec",
    "Strategy",
    "STRATEGIES",
    "EVOSAX_ALGORITHMS",
    "make_evosax",
    "make_random_search",
    "make_regularized_evolution",
    "make_strategy",
    "register_strategy",
]


# --------------------------------------------------------------------------------------------
# Random search
# --------------------------------------------------------------------------------------------


@struct.dataclass
class RandomSearchState:
    """State of random search: only the generation counter (int32 scalar)."""

    generation: jax.Array


def make_random_search(spec: GenomeSpec, population_size: int) -> Strategy:
    """Random search: ``population_size`` uniform genomes every generation.

    Args:
      spec: genome specification.
      population_size: genomes per generation.

    Returns:
      A ``Strategy`` named ``"random"``.
    """
    population_size = check_population_size(population_size)

    def init(key):
        del key
        return RandomSearchState(generation=jnp.zeros((), jnp.int32))

    def ask(key, state):
        return spec.random(key, population_size), state

    def tell(key, genomes, fitness, state):
        del key, genomes, fitness
        return state.replace(generation=state.generation + 1)

    return Strategy(init, ask, tell, population_size, "random")


# --------------------------------------------------------------------------------------------
# Regularized (aging) evolution
# --------------------------------------------------------------------------------------------


@struct.dataclass
class EvolutionState:
    """State of regularized evolution: a ring buffer holding the living population.

    Attributes:
      genomes: ``[H, G]`` float32 members (zeros in empty slots).
      fitness: ``[H]`` float32; ``-inf`` for failed members and empty slots.
      birth: ``[H]`` int32 index of the evaluation that produced the member; -1 when empty.
        The oldest member is the one with the smallest birth.
      count: int32 scalar, number of candidates told so far. The next child goes to slot
        ``count % H``, which is the oldest member once the buffer is full.
    """

    genomes: jax.Array
    fitness: jax.Array
    birth: jax.Array
    count: jax.Array


def make_regularized_evolution(
    spec: GenomeSpec,
    population_size: int,
    history_size: int | None = None,
    tournament_size: int | None = None,
    initial_size: int | None = None,
) -> Strategy:
    """Regularized (aging) evolution, Real et al. 2019, batched.

    The living population is a queue of up to ``history_size`` evaluated genomes. The first
    ``initial_size`` genomes asked for are uniform (the paper's random initial population);
    afterwards each of the ``population_size`` children is ``spec.mutate_one`` of the fittest of
    ``tournament_size`` members sampled without replacement among the living ones (all of them
    while fewer are alive). ``tell`` appends the children and, once the queue is full, drops as
    many of the oldest members, so a genome survives ``history_size / population_size``
    generations however fit it is: this aging is the regulariser against lucky noisy
    evaluations.

    Args:
      spec: genome specification.
      population_size: children per generation, P.
      history_size: size H of the living population, ``H >= P``. Default ``4 * P`` (with
        P = 16 that is 64, close to the paper's 100 while still refreshing a quarter of the
        population per generation).
      tournament_size: sample size S, ``1 <= S <= H``. Default ``max(2, H // 4)``, the ratio of
        the paper (S = 25 of 100).
      initial_size: uniform genomes before the first mutants, ``P <= I <= H``, rounded up to
        whole generations. Default ``P``: evolution starts at the second generation, which a
        search of a few generations needs (with ``I = H = 4P`` its first four generations would
        be random search; ``initial_size=history_size`` is the paper's schedule).

    Returns:
      A ``Strategy`` named ``"regularized_evolution"``.
    """
    population_size = check_population_size(population_size)
    history = 4 * population_size if history_size is None else int(history_size)
    if history < population_size:
        raise ValueError(f"history_size ({history}) must be >= population_size ({population_size})")
    if tournament_size is None:
        tournament = min(max(2, history // 4), history)
    else:
        tournament = int(tournament_size)
    if not 1 <= tournament <= history:
        raise ValueError(
            f"tournament_size must be in [1, history_size={history}], got {tournament}"
        )
    initial = population_size if initial_size is None else int(initial_size)
    if not population_size <= initial <= history:
        raise ValueError(
            f"initial_size must be in [population_size={population_size}, "
            f"history_size={history}], got {initial}"
        )
    initial = -(-initial // population_size) * population_size  # whole generations
    n_genes = spec.n_genes

    def init(key):
        del key
        return EvolutionState(
            genomes=jnp.zeros((history, n_genes), jnp.float32),
            fitness=jnp.full((history,), -jnp.inf, jnp.float32),
            birth=jnp.full((history,), -1, jnp.int32),
            count=jnp.zeros((), jnp.int32),
        )

    def ask(key, state):
        key_random, key_children = jax.random.split(key)

        def child(key_child):
            key_sample, key_mutate = jax.random.split(key_child)
            # a uniform sample of the living members (unfilled slots have probability 0; when
            # fewer than S are alive, the tournament is all of them)
            alive = (state.birth >= 0).astype(jnp.float32)
            idx = jax.random.choice(
                key_sample, history, (tournament,), replace=False, p=alive / jnp.maximum(alive.sum(), 1.0)
            )
            fit = jnp.where(state.birth[idx] >= 0, state.fitness[idx], -jnp.inf)
            parent = state.genomes[idx[jnp.argmax(fit)]]
            return spec.mutate_one(key_mutate, parent)

        children = jax.vmap(child)(jax.random.split(key_children, population_size))
        random = spec.random(key_random, population_size)
        genomes = jnp.where(state.count >= initial, children, random)
        return genomes, state

    def tell(key, genomes, fitness, state):
        del key
        fitness = jnp.asarray(fitness, jnp.float32)
        fitness = jnp.where(jnp.isfinite(fitness), fitness, -jnp.inf)
        order = state.count + jnp.arange(population_size, dtype=jnp.int32)
        slots = order % history
        return EvolutionState(
            genomes=state.genomes.at[slots].set(jnp.asarray(genomes, jnp.float32)),
            fitness=state.fitness.at[slots].set(fitness),
            birth=state.birth.at[slots].set(order),
            count=state.count + population_size,
        )

    return Strategy(init, ask, tell, population_size, "regularized_evolution")


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

#: Strategy name -> factory ``(spec, population_size, **options) -> Strategy``. Add one with
#: ``register_strategy``; the contract tests (``tests/test_strategies.py``) run over this dict.
STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "random": make_random_search,
    "regularized_evolution": make_regularized_evolution,
    "aging": make_regularized_evolution,
    "reinforce": make_reinforce,
    **{
        name: functools.partial(make_evosax, name)
        for name in EVOSAX_ALGORITHMS
        if name not in _UNSUPPORTED
    },
}
#: Names that are another name's alias (not tested twice).
ALIASES = {"aging": "regularized_evolution"}


def register_strategy(name: str) -> Callable[[Callable[..., Strategy]], Callable[..., Strategy]]:
    """Registers a strategy factory under ``name``; duplicates are refused.

    The factory takes ``(spec: GenomeSpec, population_size: int, **options)`` and returns a
    ``Strategy(init, ask, tell, population_size, name)`` of pure, jittable functions over genomes
    in [0, 1]^G, fitness higher is better, non-finite = failed. Its keyword options are what
    ``search.strategy_kwargs`` may set. Example, in any module listed under ``plugins:``::

        @register_strategy("my_es")
        def make_my_es(spec, population_size, sigma=0.1):
            ...
            return Strategy(init, ask, tell, population_size, "my_es")
    """

    def deco(factory: Callable[..., Strategy]) -> Callable[..., Strategy]:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is already registered")
        STRATEGIES[name] = factory
        return factory

    return deco


def make_strategy(name: str, spec: GenomeSpec, population_size: int, **kwargs: Any) -> Strategy:
    """Build a registered strategy by name.

    Args:
      name: a key of ``STRATEGIES``.
      spec: genome specification.
      population_size: genomes per generation.
      **kwargs: options of that strategy's factory (for evosax algorithms: ``make_evosax``'s
        options and the algorithm's constructor arguments).

    Returns:
      The ``Strategy``.

    Raises:
      ValueError: unknown name or unknown/invalid option, in one line.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    factory = STRATEGIES[name]
    if not isinstance(factory, functools.partial):
        accepted = [
            p for p in inspect.signature(factory).parameters if p not in ("spec", "population_size")
        ]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for strategy {name!r}; valid: {accepted}"
            )
    strategy = factory(spec, population_size, **kwargs)
    return strategy._replace(name=name) if name == "aging" else strategy
