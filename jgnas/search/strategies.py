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
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from evosax import algorithms as _evosax_algorithms
from evosax.algorithms.distribution_based.base import DistributionBasedAlgorithm
from evosax.algorithms.population_based.base import PopulationBasedAlgorithm
from evosax.core import fitness_shaping as _shaping
from flax import struct

__all__ = [
    "GenomeSpec",
    "Strategy",
    "STRATEGIES",
    "EVOSAX_ALGORITHMS",
    "make_evosax",
    "make_random_search",
    "make_regularized_evolution",
    "make_strategy",
]

PyTree = Any

# Step of the Gaussian mutation of a continuous gene, in genome units.
_CONTINUOUS_STEP = 0.1


# --------------------------------------------------------------------------------------------
# Genome specification
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GenomeSpec:
    """Cardinalities of the genes of a genome.

    Attributes:
      sizes: one int per gene: ``k >= 1`` for a discrete gene with ``k`` choices, 0 for a
        continuous gene. Hashable, so a spec can be a static argument of ``jax.jit``.
    """

    sizes: tuple[int, ...]

    def __post_init__(self):
        sizes = tuple(self.sizes)
        if not sizes:
            raise ValueError("GenomeSpec.sizes is empty: a genome needs at least one gene")
        for g, s in enumerate(sizes):
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
                raise ValueError(
                    f"GenomeSpec.sizes[{g}] = {s!r}: expected an int >= 1 (discrete) or 0 "
                    "(continuous)"
                )
        object.__setattr__(self, "sizes", tuple(int(s) for s in sizes))

    @property
    def n_genes(self) -> int:
        """Number of genes G."""
        return len(self.sizes)

    def random(self, key: jax.Array, n: int) -> jax.Array:
        """Uniform genomes.

        Args:
          key: PRNG key.
          n: number of genomes.

        Returns:
          float32 ``[n, G]`` uniform in [0, 1).
        """
        return jax.random.uniform(key, (n, self.n_genes), jnp.float32)

    def bins(self, genomes: jax.Array) -> jax.Array:
        """Bin index of every discrete gene (the decoding rule); 0 for continuous genes.

        Args:
          genomes: ``[..., G]`` float genomes.

        Returns:
          int32 ``[..., G]``: ``clip(floor(x * size), 0, size - 1)`` per discrete gene.
        """
        sizes = np.asarray(self.sizes)
        safe = np.maximum(sizes, 1).astype(np.float32)
        b = jnp.floor(jnp.asarray(genomes, jnp.float32) * safe).astype(jnp.int32)
        b = jnp.clip(b, 0, np.maximum(sizes - 1, 0))
        return jnp.where(sizes > 0, b, 0)

    def canonical(self, genomes: jax.Array) -> jax.Array:
        """Snap discrete genes to their bin centre ``(k + 0.5) / size``; keep continuous genes.

        Two genomes with the same canonical form decode to the same architecture, so this is the
        key for de-duplication. Idempotent.

        Args:
          genomes: ``[..., G]`` float genomes.

        Returns:
          float32 ``[..., G]``.
        """
        genomes = jnp.asarray(genomes, jnp.float32)
        sizes = np.asarray(self.sizes)
        safe = np.maximum(sizes, 1).astype(np.float32)
        centre = (self.bins(genomes).astype(jnp.float32) + 0.5) / safe
        return jnp.where(sizes > 0, centre, genomes)

    def mutate_one(self, key: jax.Array, genome: jax.Array) -> jax.Array:
        """Change exactly one gene.

        The gene is chosen uniformly among genes of size != 1 (a gene with a single choice
        cannot change; if every gene has size 1 the genome is returned unchanged). A discrete
        gene moves to a *different* bin chosen uniformly, placed at that bin's centre. A
        continuous gene is, with probability 1/2 each, resampled uniformly in [0, 1) (escapes
        a bad region) or moved by a Gaussian step of std 0.1 clipped to [0, 1] (refines a good
        value).

        Args:
          key: PRNG key.
          genome: ``[G]`` float genome.

        Returns:
          float32 ``[G]`` genome.
        """
        genome = jnp.asarray(genome, jnp.float32)
        sizes_np = np.asarray(self.sizes)
        mutable = sizes_np != 1
        if not mutable.any():
            return genome
        key_gene, key_bin, key_mode, key_uniform, key_step = jax.random.split(key, 5)
        g = jax.random.choice(key_gene, self.n_genes, p=jnp.asarray(mutable / mutable.sum()))
        size = jnp.asarray(sizes_np, jnp.int32)[g]
        x = genome[g]

        safe = jnp.maximum(size, 2)  # keeps randint and the modulo defined for size 0
        current = jnp.clip(jnp.floor(x * size).astype(jnp.int32), 0, safe - 1)
        shift = jax.random.randint(key_bin, (), 1, safe)  # in [1, size - 1]: a different bin
        x_discrete = ((current + shift) % safe + 0.5) / safe

        x_uniform = jax.random.uniform(key_uniform, ())
        x_step = jnp.clip(x + _CONTINUOUS_STEP * jax.random.normal(key_step, ()), 0.0, 1.0)
        x_continuous = jnp.where(jax.random.bernoulli(key_mode), x_uniform, x_step)

        x_new = jnp.where(size == 0, x_continuous, x_discrete).astype(jnp.float32)
        return genome.at[g].set(x_new)


# --------------------------------------------------------------------------------------------
# Strategy interface
# --------------------------------------------------------------------------------------------

InitFn = Callable[[jax.Array], PyTree]
AskFn = Callable[[jax.Array, PyTree], tuple[jax.Array, PyTree]]
TellFn = Callable[[jax.Array, jax.Array, jax.Array, PyTree], PyTree]


class Strategy(NamedTuple):
    """A search strategy as a bundle of pure, jittable functions.

    Attributes:
      init: ``init(key) -> state``. The state is a pytree of arrays (checkpointable with orbax).
      ask: ``ask(key, state) -> (genomes [P, G] float32 in [0, 1], state)``.
      tell: ``tell(key, genomes [P, G], fitness [P], state) -> state``. Fitness is higher is
        better; non-finite entries mark failed candidates. ``genomes`` must be the ones the
        preceding ``ask`` returned, in the same order (the evosax adapter also accepts other
        genomes, see ``make_evosax``).
      population_size: P, the number of genomes per ``ask``.
      name: registry name of the strategy.
    """

    init: InitFn
    ask: AskFn
    tell: TellFn
    population_size: int
    name: str


def _check_population_size(population_size: int) -> int:
    if isinstance(population_size, bool) or not isinstance(population_size, (int, np.integer)):
        raise ValueError(f"population_size must be an int, got {population_size!r}")
    if population_size < 1:
        raise ValueError(f"population_size must be >= 1, got {population_size}")
    return int(population_size)


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
    population_size = _check_population_size(population_size)

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
) -> Strategy:
    """Regularized (aging) evolution, Real et al. 2019, batched.

    The living population is a queue of ``history_size`` evaluated genomes. While it is not
    full, ``ask`` returns uniform genomes. Afterwards each of the ``population_size`` children
    is ``spec.mutate_one`` of the fittest of ``tournament_size`` members sampled without
    replacement. ``tell`` appends the children and drops as many of the oldest members, so a
    genome survives ``history_size / population_size`` generations however fit it is: this
    aging is the regulariser against lucky noisy evaluations.

    Args:
      spec: genome specification.
      population_size: children per generation, P.
      history_size: size H of the living population, ``H >= P``. Default ``4 * P`` (with
        P = 16 that is 64, close to the paper's 100 while still refreshing a quarter of the
        population per generation).
      tournament_size: sample size S, ``1 <= S <= H``. Default ``max(2, H // 4)``, the ratio of
        the paper (S = 25 of 100).

    Returns:
      A ``Strategy`` named ``"regularized_evolution"``.
    """
    population_size = _check_population_size(population_size)
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
            idx = jax.random.choice(key_sample, history, (tournament,), replace=False)
            parent = state.genomes[idx[jnp.argmax(state.fitness[idx])]]
            return spec.mutate_one(key_mutate, parent)

        children = jax.vmap(child)(jax.random.split(key_children, population_size))
        random = spec.random(key_random, population_size)
        genomes = jnp.where(state.count >= history, children, random)
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
# evosax adapter
# --------------------------------------------------------------------------------------------

#: evosax's registry (name -> class), e.g. "CMA_ES", "SimpleGA", "DES", "LGA".
EVOSAX_ALGORITHMS: dict[str, type] = dict(_evosax_algorithms.algorithms)

# Algorithms whose interface does not fit one population of P members per generation.
_UNSUPPORTED = {
    "SV_CMA_ES": "runs num_populations coupled sub-populations (Stein variational): "
    "not one population of P genomes",
    "SV_Open_ES": "runs num_populations coupled sub-populations (Stein variational): "
    "not one population of P genomes",
}

# Class names that differ from the registry keys are accepted too.
_EVOSAX_ALIASES = {
    cls.__name__: name for name, cls in EVOSAX_ALGORITHMS.items() if cls.__name__ != name
}

# Gradient-following ESs whose default optimiser step (1e-3) is sized for neural-network
# weights; in our z space (|z| ~ 2 spans the genome) it would barely move the mean.
_DEFAULT_OPTIMIZER = {
    name: (lambda: optax.adam(learning_rate=0.1))
    for name in ("Open_ES", "ARS", "ASEBO", "GuidedES", "PersistentES", "NoiseReuseES")
}

_FITNESS_SHAPING = {
    "centered_rank": _shaping.centered_rank_fitness_shaping_fn,
    "z_score": _shaping.standardize_fitness_shaping_fn,
    "normalize": _shaping.normalize_fitness_shaping_fn,
    "identity": _shaping.identity_fitness_shaping_fn,
}

# Std of the logistic distribution: sigmoid(N(0, 1.8^2)) is close to uniform on (0, 1).
DEFAULT_STD_INIT = 1.8
# Genomes are clipped to [_EPS, 1 - _EPS] before the logit so that z stays finite.
_EPS = 1e-6


@struct.dataclass
class EvosaxState:
    """State of an evosax strategy.

    Attributes:
      algo_state: the evosax algorithm's own state (a flax struct of arrays).
      z: ``[P, G]`` float32 latent population of the last ``ask`` (for population-based
        algorithms, before the first ``ask``: the initial population).
      generation: int32 scalar, number of ``tell`` calls so far.
      fitness_lo: float32 scalar, lowest finite fitness seen (``+inf`` if none yet).
      fitness_hi: float32 scalar, highest finite fitness seen (``-inf`` if none yet).
    """

    algo_state: PyTree
    z: jax.Array
    generation: jax.Array
    fitness_lo: jax.Array
    fitness_hi: jax.Array


def _sanitize(fitness, lo, hi):
    """Replace failed (non-finite) fitness by a finite value worse than any finite one seen.

    The replacement is ``lo' - 1 - (hi' - lo')`` where ``lo'``/``hi'`` are the lowest/highest
    finite fitness over this generation and all earlier ones: strictly below every finite
    value, and below what earlier generations stored too (population-based algorithms compare a
    child with the parent it would replace). Using the spread keeps it on the scale of the
    data (identity-shaped algorithms use fitness magnitudes). If no finite fitness was ever
    seen, every candidate gets 0: no information, but no NaN either.

    Returns:
      ``(fitness [P] float32 finite, new lo, new hi)``.
    """
    fitness = jnp.asarray(fitness, jnp.float32)
    finite = jnp.isfinite(fitness)
    lo = jnp.minimum(lo, jnp.min(jnp.where(finite, fitness, jnp.inf)))
    hi = jnp.maximum(hi, jnp.max(jnp.where(finite, fitness, -jnp.inf)))
    penalty = jnp.where(jnp.isfinite(lo), lo - 1.0 - (hi - lo), 0.0)
    return jnp.where(finite, fitness, penalty), lo, hi


def _resolve_evosax_name(name: str) -> str:
    name = _EVOSAX_ALIASES.get(name, name)
    if name not in EVOSAX_ALGORITHMS:
        valid = ", ".join(sorted(n for n in EVOSAX_ALGORITHMS if n not in _UNSUPPORTED))
        raise ValueError(f"unknown evosax algorithm {name!r}; valid: {valid}")
    if name in _UNSUPPORTED:
        raise ValueError(f"evosax algorithm {name!r} is not supported: {_UNSUPPORTED[name]}")
    return name


def make_evosax(
    name: str,
    spec: GenomeSpec,
    population_size: int,
    fitness_shaping: str = "default",
    std_init: float | None = DEFAULT_STD_INIT,
    params: dict[str, Any] | None = None,
    **algo_kwargs: Any,
) -> Strategy:
    """Adapt an evosax algorithm to the ``Strategy`` interface.

    Mapping. evosax searches ``z`` in R^G (it minimises, so fitness is negated) and the genome
    is ``sigmoid(z)``. Distribution-based algorithms start at mean ``z = 0`` (genome 0.5) with
    ``std_init`` (default 1.8, the std of the logistic distribution, so first samples are close
    to uniform in [0, 1]). Population-based algorithms start from ``logit`` of uniform genomes
    (the same distribution); their first ``ask`` returns that population and their first
    ``tell`` calls evosax's ``init(population, fitness)``. The sigmoid never saturates a gene
    at a bound, has no flat region outside [0, 1] (a clip would let the mean drift away with
    no signal) and keeps step sizes meaningful: a unit step in z moves a central gene by
    about 0.25, an extreme one less, so bins at the edges of a gene need larger |z| and are
    slightly harder to leave than to reach.

    Exact hand-back: ``ask`` keeps the latent ``z`` in the state and ``tell`` hands evosax that
    same ``z`` for every genome that equals ``sigmoid(z)`` (to 1e-6); any other genome (e.g. a
    preset injected by the caller) is inverted with ``logit(clip(genome, 1e-6, 1 - 1e-6))``.

    Args:
      name: evosax registry name (``EVOSAX_ALGORITHMS``) or class name.
      spec: genome specification.
      population_size: genomes per generation.
      fitness_shaping: ``"default"`` keeps the algorithm's own shaping (required by the
        weight-based ones: CMA_ES, SNES, xNES, ...); or one of ``"centered_rank"``,
        ``"z_score"``, ``"normalize"``, ``"identity"``.
      std_init: initial std in z space for algorithms whose params have ``std_init`` and are
        distribution-based; None keeps evosax's default (1.0). Population-based algorithms
        keep their mutation scales.
      params: overrides of fields of the algorithm's default params (e.g.
        ``{"crossover_rate": 0.5}`` for SimpleGA).
      **algo_kwargs: keyword arguments of the evosax algorithm's constructor. Gradient ESs
        (Open_ES, ARS, ASEBO, GuidedES, PersistentES, NoiseReuseES) get
        ``optimizer=optax.adam(0.1)`` unless one is given.

    Returns:
      A ``Strategy`` named ``name``.
    """
    name = _resolve_evosax_name(name)
    population_size = _check_population_size(population_size)
    cls = EVOSAX_ALGORITHMS[name]
    signature = inspect.signature(cls.__init__)
    accepted = [p for p in signature.parameters if p not in ("self", "population_size", "solution")]
    unknown = sorted(set(algo_kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for evosax {name}; valid: {accepted}")
    if "fitness_shaping_fn" in algo_kwargs:
        raise ValueError("pass fitness_shaping by name, not fitness_shaping_fn")

    kwargs = dict(algo_kwargs)
    if fitness_shaping != "default":
        if fitness_shaping not in _FITNESS_SHAPING:
            valid = ", ".join(["default", *_FITNESS_SHAPING])
            raise ValueError(f"unknown fitness_shaping {fitness_shaping!r}; valid: {valid}")
        native = signature.parameters["fitness_shaping_fn"].default
        if native is _shaping.weights_fitness_shaping_fn:
            raise ValueError(
                f"evosax {name} turns ranks into recombination weights itself; use "
                f"fitness_shaping='default', not {fitness_shaping!r}"
            )
        kwargs["fitness_shaping_fn"] = _FITNESS_SHAPING[fitness_shaping]
    if name in _DEFAULT_OPTIMIZER and "optimizer" not in kwargs:
        kwargs["optimizer"] = _DEFAULT_OPTIMIZER[name]()

    n_genes = spec.n_genes
    try:
        algo = cls(population_size=population_size, solution=jnp.zeros(n_genes), **kwargs)
    except (TypeError, AssertionError, ValueError) as e:
        raise ValueError(
            f"cannot build evosax {name} with population_size={population_size}, "
            f"{n_genes} genes, {sorted(kwargs)}: {e}"
        ) from None

    algo_params = algo.default_params
    if name == "LM_MA_ES" and population_size > 2 * n_genes:
        # evosax 0.3.2 sets c_c[0] = P / G; above 2 its sqrt(c_c (2 - c_c)) is NaN.
        raise ValueError(
            f"evosax LM_MA_ES needs population_size <= 2 * genes ({2 * n_genes}), "
            f"got {population_size}: its path rates turn NaN otherwise"
        )
    fields = {f.name for f in dataclasses.fields(algo_params)}
    overrides = dict(params or {})
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown params {unknown} for evosax {name}; valid: {sorted(fields)}")
    population_based = isinstance(algo, PopulationBasedAlgorithm)
    if not population_based and not isinstance(algo, DistributionBasedAlgorithm):
        raise ValueError(f"evosax {name} is neither distribution- nor population-based")
    if std_init is not None and not population_based and "std_init" in fields:
        overrides.setdefault("std_init", std_init)
    algo_params = algo_params.replace(
        **{k: jnp.asarray(v, jnp.float32) if k == "std_init" else v for k, v in overrides.items()}
    )

    def init(key):
        key_algo, key_population = jax.random.split(key)
        if population_based:
            z = jax.scipy.special.logit(
                jnp.clip(spec.random(key_population, population_size), _EPS, 1 - _EPS)
            )
            # A placeholder with the right structure; the first tell re-inits from fitness.
            algo_state = algo.init(key_algo, z, jnp.zeros(population_size), algo_params)
        else:
            z = jnp.zeros((population_size, n_genes), jnp.float32)
            algo_state = algo.init(key_algo, jnp.zeros(n_genes), algo_params)
        return EvosaxState(
            algo_state=algo_state,
            z=z.astype(jnp.float32),
            generation=jnp.zeros((), jnp.int32),
            fitness_lo=jnp.asarray(jnp.inf, jnp.float32),
            fitness_hi=jnp.asarray(-jnp.inf, jnp.float32),
        )

    def _cast_like(tree, like):
        return jax.tree.map(lambda a, b: jnp.asarray(a, jnp.result_type(b)), tree, like)

    def ask(key, state):
        def algo_ask():
            z, algo_state = algo.ask(key, state.algo_state, algo_params)
            return jnp.asarray(z, jnp.float32), _cast_like(algo_state, state.algo_state)

        if population_based:
            z, algo_state = jax.lax.cond(
                state.generation == 0, lambda: (state.z, state.algo_state), algo_ask
            )
        else:
            z, algo_state = algo_ask()
        genomes = jax.nn.sigmoid(z)
        return genomes, state.replace(algo_state=algo_state, z=z)

    def tell(key, genomes, fitness, state):
        genomes = jnp.asarray(genomes, jnp.float32)
        fitness, lo, hi = _sanitize(fitness, state.fitness_lo, state.fitness_hi)
        same = jnp.abs(jax.nn.sigmoid(state.z) - genomes) <= 1e-6
        z = jnp.where(same, state.z, jax.scipy.special.logit(jnp.clip(genomes, _EPS, 1 - _EPS)))
        loss = -fitness  # evosax minimises

        def algo_tell():
            algo_state, _ = algo.tell(key, z, loss, state.algo_state, algo_params)
            return _cast_like(algo_state, state.algo_state)

        if population_based:
            algo_state = jax.lax.cond(
                state.generation == 0,
                lambda: _cast_like(algo.init(key, z, loss, algo_params), state.algo_state),
                algo_tell,
            )
        else:
            algo_state = algo_tell()
        return EvosaxState(
            algo_state=algo_state,
            z=z,
            generation=state.generation + 1,
            fitness_lo=lo,
            fitness_hi=hi,
        )

    return Strategy(init, ask, tell, population_size, name)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

#: Strategy name -> factory ``(spec, population_size, **kwargs) -> Strategy``.
STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "random": make_random_search,
    "regularized_evolution": make_regularized_evolution,
    "aging": make_regularized_evolution,
    **{
        name: functools.partial(make_evosax, name)
        for name in EVOSAX_ALGORITHMS
        if name not in _UNSUPPORTED
    },
}


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
