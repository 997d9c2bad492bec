"""Every evosax algorithm behind the `Strategy` interface (evosax minimises: fitness is negated).

evosax's unbounded search space R^G maps to [0, 1]^G with a sigmoid. Failed candidates get a finite
fitness worse than every finite fitness seen so far (``_sanitize``), since evosax's updates do
arithmetic on fitness and an infinity would turn the search distribution into NaN.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import optax
from evosax import algorithms as _evosax_algorithms
from evosax.algorithms.distribution_based.base import DistributionBasedAlgorithm
from evosax.algorithms.population_based.base import PopulationBasedAlgorithm
from evosax.core import fitness_shaping as _shaping
from flax import struct

from jgnas.search.base import GenomeSpec, PyTree, Strategy, check_population_size

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
    "GuidedES": "needs a surrogate gradient in its state before every ask (an architecture "
    "search has none; without it the guided subspace is zeros and its state holds NaN sentinels)",
    "RandomSearch": "needs a user sampling_fn; use jgnas's own `random` strategy",
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

    (Longer than 80 lines: option checking for every evosax family, then the init/ask/tell closures
    over one algorithm instance; most of the length is this docstring and the checks.)

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
    population_size = check_population_size(population_size)
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
