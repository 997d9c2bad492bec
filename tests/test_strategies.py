"""Tests of jgnas.search strategies (ask/tell contract, failure handling, search quality) and
of the Pareto front."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgnas.search import (
    ALIASES,
    EVOSAX_ALGORITHMS,
    STRATEGIES,
    GenomeSpec,
    make_evosax,
    make_regularized_evolution,
    make_strategy,
    pareto_front,
)

SPEC = GenomeSpec((2, 3, 4, 5, 3, 4, 0))  # 6 discrete genes + 1 continuous
P = 16
GENERATIONS = 25
NAMES = [
    "random",
    "regularized_evolution",
    "reinforce",
    "CMA_ES",
    "Sep_CMA_ES",
    "SimpleGA",
    "DifferentialEvolution",
    "PSO",
    "Open_ES",
    "SNES",
]
EVOLVING = [n for n in NAMES if n != "random"]
# The contract (shapes, range, determinism, failures, checkpointable state) is checked for every
# registered strategy, plugins included (`python -m pytest -p my_strategies tests/...`); the
# quality tests below cover the curated NAMES. Strategies outside NAMES are marked slow.
REGISTERED = [
    pytest.param(n, marks=() if n in NAMES else pytest.mark.slow)
    for n in STRATEGIES
    if n not in ALIASES
]


# The contract tests use a population every evosax algorithm accepts (LM_MA_ES needs P <= 2 G).
P_CONTRACT = 12


@functools.cache
def _jitted(name, p=P):
    """Strategy and its jitted ask/tell, compiled once per test session."""
    strategy = make_strategy(name, SPEC, p)
    return strategy, jax.jit(strategy.ask), jax.jit(strategy.tell)


def _objective(genomes, target):
    """Higher is better; 0 at the target architecture. Mean normalised distance per gene."""
    sizes = np.asarray(SPEC.sizes)
    bins = SPEC.bins(genomes).astype(jnp.float32)
    target_bins = SPEC.bins(target).astype(jnp.float32)
    d = jnp.where(
        sizes > 0,
        jnp.abs(bins - target_bins) / np.maximum(sizes - 1, 1),
        jnp.abs(genomes - target),
    )
    return -d.mean(-1)


def _target():
    return SPEC.canonical(SPEC.random(jax.random.key(123), 1))[0]


def _run(name, key, generations, fitness_fn, p=P):
    """Run a registered strategy (jitted); see `run_strategy`."""
    strategy, ask, tell = _jitted(name, p)
    return run_strategy(strategy, ask, tell, key, generations, fitness_fn)


def run_strategy(strategy, ask, tell, key, generations, fitness_fn):
    """Returns (all genomes [T, P, G], all fitness [T, P], final state)."""
    state = strategy.init(key)
    all_genomes, all_fitness = [], []
    for t in range(generations):
        key_ask, key_tell = jax.random.split(jax.random.fold_in(key, t))
        genomes, state = ask(key_ask, state)
        fitness = fitness_fn(genomes)
        state = tell(key_tell, genomes, fitness, state)
        all_genomes.append(np.asarray(genomes))
        all_fitness.append(np.asarray(fitness))
    return np.stack(all_genomes), np.stack(all_fitness), state


def _float_leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]


# ----------------------------------------------------------------------------- GenomeSpec


def test_genome_spec_random_and_canonical_idempotent():
    g = SPEC.random(jax.random.key(0), 64)
    assert g.shape == (64, SPEC.n_genes) and g.dtype == jnp.float32
    assert bool(jnp.all((g >= 0) & (g < 1)))
    c = SPEC.canonical(g)
    np.testing.assert_array_equal(np.asarray(SPEC.canonical(c)), np.asarray(c))
    np.testing.assert_array_equal(np.asarray(SPEC.bins(c)), np.asarray(SPEC.bins(g)))
    np.testing.assert_array_equal(np.asarray(c[:, -1]), np.asarray(g[:, -1]))  # continuous kept
    sizes = np.asarray(SPEC.sizes[:-1])
    expected = (np.asarray(SPEC.bins(g))[:, :-1] + 0.5) / sizes
    np.testing.assert_allclose(np.asarray(c[:, :-1]), expected, rtol=1e-6)
    # the decoding rule at the edges: x = 1 falls in the last bin
    edges = SPEC.bins(jnp.ones((1, SPEC.n_genes)))
    np.testing.assert_array_equal(np.asarray(edges[0, :-1]), sizes - 1)


def test_mutate_one_changes_exactly_one_gene_bin():
    spec = GenomeSpec((2, 1, 5, 3, 1, 4))  # no continuous gene: every change is a bin change
    genomes = spec.random(jax.random.key(0), 300)
    keys = jax.random.split(jax.random.key(1), 300)
    mutated = jax.jit(jax.vmap(spec.mutate_one))(keys, genomes)
    changed = np.asarray(spec.bins(mutated) != spec.bins(genomes))
    np.testing.assert_array_equal(changed.sum(1), 1)
    assert not changed[:, [1, 4]].any()  # genes of size 1 are never chosen
    assert changed.any(0)[[0, 2, 3, 5]].all()  # every mutable gene gets chosen
    # genes that did not change keep their exact value
    same = np.asarray(mutated == genomes)
    np.testing.assert_array_equal(same, ~changed)


def test_mutate_one_continuous_gene_and_degenerate_spec():
    spec = GenomeSpec((0,))
    g = jnp.array([0.5], jnp.float32)
    out = jax.jit(jax.vmap(spec.mutate_one, (0, None)))(jax.random.split(jax.random.key(0), 100), g)
    assert bool(jnp.all((out >= 0) & (out <= 1))) and float(jnp.std(out)) > 0.05
    fixed = GenomeSpec((1, 1))
    g2 = jnp.array([0.3, 0.7], jnp.float32)
    np.testing.assert_array_equal(np.asarray(fixed.mutate_one(jax.random.key(0), g2)), g2)


@pytest.mark.parametrize("sizes", [(), (3, -1), (2.5,), (True,)])
def test_genome_spec_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError):
        GenomeSpec(sizes)


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", REGISTERED)
def test_shapes_range_and_determinism(name):
    target = _target()
    run = functools.partial(
        _run, name, generations=3, fitness_fn=lambda g: _objective(g, target), p=P_CONTRACT
    )
    g1, f1, s1 = run(jax.random.key(7))
    g2, _, s2 = run(jax.random.key(7))
    g3, _, _ = run(jax.random.key(8))
    assert g1.shape == (3, P_CONTRACT, SPEC.n_genes) and g1.dtype == np.float32
    assert np.all((g1 >= 0) & (g1 <= 1))
    np.testing.assert_array_equal(g1, g2)
    jax.tree.map(np.testing.assert_array_equal, s1, s2)
    assert not np.array_equal(g1, g3)
    strategy, _, _ = _jitted(name, P_CONTRACT)
    assert strategy.population_size == P_CONTRACT and strategy.name == name


@pytest.mark.parametrize("name", ["random", "regularized_evolution", "CMA_ES", "SimpleGA"])
def test_jit_matches_eager(name):
    """One of each family (the evosax adapter is the same code for every algorithm)."""
    strategy, ask, tell = _jitted(name)
    key = jax.random.key(3)
    target = _target()
    outs = []
    for ask_fn, tell_fn in ((strategy.ask, strategy.tell), (ask, tell)):
        state = strategy.init(key)
        for t in range(1):
            genomes, state = ask_fn(jax.random.fold_in(key, 2 * t), state)
            state = tell_fn(
                jax.random.fold_in(key, 2 * t + 1), genomes, _objective(genomes, target), state
            )
        outs.append(np.asarray(ask_fn(jax.random.fold_in(key, 9), state)[0]))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


@pytest.mark.parametrize("name", REGISTERED)
def test_failed_candidates_do_not_poison_state(name):
    target = _target()

    def fitness_fn(g):
        f = _objective(g, target)
        return f.at[0].set(-jnp.inf).at[1].set(jnp.nan).at[2].set(jnp.inf)

    genomes, _, state = _run(name, jax.random.key(1), 6, fitness_fn, p=P_CONTRACT)
    assert np.all(np.isfinite(genomes)) and np.all((genomes >= 0) & (genomes <= 1))
    for leaf in _float_leaves(state):
        assert not np.isnan(leaf).any()
    # a generation where every candidate failed, including the very first one
    all_failed = lambda g: jnp.full((g.shape[0],), jnp.nan)
    genomes, _, state = _run(name, jax.random.key(2), 3, all_failed, p=P_CONTRACT)
    assert np.all(np.isfinite(genomes))
    for leaf in _float_leaves(state):
        assert not np.isnan(leaf).any()


@pytest.mark.parametrize("name", REGISTERED)
def test_state_survives_numpy_round_trip(name):
    strategy, ask, tell = _jitted(name, P_CONTRACT)
    target = _target()
    _, _, state = _run(name, jax.random.key(4), 2, lambda g: _objective(g, target), p=P_CONTRACT)
    host = jax.tree.map(np.asarray, state)
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(host))
    restored = jax.tree.map(jnp.asarray, host)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    key = jax.random.key(5)
    g_a, s_a = ask(key, state)
    g_b, s_b = ask(key, restored)
    np.testing.assert_array_equal(np.asarray(g_a), np.asarray(g_b))
    f = _objective(g_a, target)
    jax.tree.map(np.testing.assert_array_equal, tell(key, g_a, f, s_a), tell(key, g_b, f, s_b))


# ----------------------------------------------------------------------------- search quality


@functools.cache
def _quality(name):
    target = _target()
    _, fitness, _ = _run(name, jax.random.key(11), GENERATIONS, lambda g: _objective(g, target))
    return fitness  # [T, P]


@pytest.mark.parametrize("name", NAMES)
def test_best_found_beats_random_mean(name):
    fitness = _quality(name)
    random_mean = _quality("random").mean()  # about -0.45 on this objective
    assert fitness.max() > random_mean + 0.25


@pytest.mark.parametrize("name", EVOLVING)
def test_population_improves_and_beats_random_search(name):
    fitness = _quality(name)
    late = fitness[-5:].mean()
    assert late > fitness[0].mean() + 0.1
    # the population concentrates on good architectures; random search does not
    assert late > _quality("random")[-5:].mean() + 0.1


# ----------------------------------------------------------------------------- specifics


def test_regularized_evolution_removes_the_oldest():
    history, pop = 6, 4
    strategy = make_regularized_evolution(SPEC, pop, history_size=history, tournament_size=2)
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    state = strategy.init(jax.random.key(0))
    told = []
    for t in range(4):
        genomes, state = ask(jax.random.key(t), state)
        fitness = jnp.arange(pop, dtype=jnp.float32) + 10 * t
        state = tell(jax.random.key(100 + t), genomes, fitness, state)
        told.append(np.asarray(genomes))
        n = min(pop * (t + 1), history)
        alive = np.concatenate(told)[-n:]  # the n most recent candidates
        births = np.asarray(state.birth)
        assert int(state.count) == pop * (t + 1)
        np.testing.assert_array_equal(
            np.sort(births[births >= 0]), np.arange(pop * (t + 1) - n, pop * (t + 1))
        )
        kept = np.asarray(state.genomes)[births >= 0]
        assert {tuple(r) for r in kept} == {tuple(r) for r in alive}


def _one_gene_from(children, parents) -> np.ndarray:
    """For each child, whether it differs from some parent in exactly one gene."""
    diff = np.asarray(children)[:, None, :] != np.asarray(parents)[None, :, :]
    return (diff.sum(-1) == 1).any(1)


def test_regularized_evolution_random_for_initial_size_then_mutants():
    pop = 4
    strategy = make_regularized_evolution(SPEC, pop, history_size=8, initial_size=8)
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    state = strategy.init(jax.random.key(0))
    told = []
    for t in range(2):
        genomes, state = ask(jax.random.key(t), state)
        if t:  # the second generation is still uniform: no child of the first
            assert not _one_gene_from(genomes, told[0]).any()
        told.append(genomes)
        state = tell(jax.random.key(t), genomes, jnp.zeros(pop), state)
    children, _ = ask(jax.random.key(9), state)
    assert _one_gene_from(children, state.genomes).all()


def test_regularized_evolution_mutates_from_the_second_generation():
    """Default initial_size = P: the second generation is mutants of the first (the queue is not
    full yet, so the tournament samples the living members only), and a tournament of all of
    them (S >= alive) always picks the fittest."""
    pop = 4
    strategy = make_regularized_evolution(SPEC, pop, history_size=16, tournament_size=8)
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    state = strategy.init(jax.random.key(0))
    genomes, state = ask(jax.random.key(1), state)
    state = tell(jax.random.key(2), genomes, jnp.array([0.1, 0.9, 0.3, jnp.nan]), state)
    children, state = ask(jax.random.key(3), state)
    diff = (np.asarray(children) != np.asarray(genomes)[1]).sum(-1)
    np.testing.assert_array_equal(diff, 1)  # all from the fittest; never an empty slot
    state = tell(jax.random.key(4), children, jnp.zeros(pop), state)
    grand, _ = ask(jax.random.key(5), state)
    alive = np.asarray(state.genomes)[np.asarray(state.birth) >= 0]
    assert len(alive) == 2 * pop and _one_gene_from(grand, alive).all()
    with pytest.raises(ValueError, match="initial_size"):
        make_regularized_evolution(SPEC, pop, history_size=16, initial_size=2)


def test_regularized_evolution_failed_never_win_tournament():
    pop = 4
    strategy = make_regularized_evolution(SPEC, pop, history_size=4, tournament_size=4)
    ask = jax.jit(strategy.ask)
    state = strategy.init(jax.random.key(0))
    genomes, state = ask(jax.random.key(1), state)
    state = strategy.tell(
        jax.random.key(2), genomes, jnp.array([-jnp.inf, 0.5, jnp.nan, -jnp.inf]), state
    )
    assert not np.isnan(np.asarray(state.fitness)).any()
    children, _ = ask(jax.random.key(3), state)
    diff = (np.asarray(children) != np.asarray(genomes)[1]).sum(-1)
    np.testing.assert_array_equal(diff, 1)  # all children come from the only finite member


def test_evosax_tell_accepts_foreign_genomes():
    strategy = make_evosax("CMA_ES", SPEC, P)
    state = strategy.init(jax.random.key(0))
    genomes, state = strategy.ask(jax.random.key(1), state)
    asked_z = np.asarray(state.z)
    injected = genomes.at[0].set(jnp.array([0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]))
    state = strategy.tell(jax.random.key(2), injected, _objective(injected, _target()), state)
    z = np.asarray(state.z)
    np.testing.assert_array_equal(z[1:], asked_z[1:])  # evosax gets back its own z exactly
    assert np.isfinite(z[0]).all() and not np.array_equal(z[0], asked_z[0])
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(z[0])), np.asarray(injected[0]), atol=1e-5)
    assert np.isfinite(np.asarray(state.algo_state.mean)).all()


def test_every_registered_name_resolves():
    for name in ("random", "regularized_evolution", "aging", "CMA_ES", "SimpleGA", "PSO"):
        assert name in STRATEGIES
    unsupported = {"SV_CMA_ES", "SV_Open_ES", "GuidedES", "RandomSearch"}
    assert set(EVOSAX_ALGORITHMS) - set(STRATEGIES) == unsupported


def test_unknown_names_and_options_fail_clearly():
    with pytest.raises(ValueError, match="unknown strategy 'cmaes'.*CMA_ES") as info:
        make_strategy("cmaes", SPEC, P)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="unknown evosax algorithm 'Nope'.*SimpleGA"):
        make_evosax("Nope", SPEC, P)
    with pytest.raises(ValueError, match="not supported"):
        make_evosax("SV_CMA_ES", SPEC, P)
    with pytest.raises(ValueError, match="unknown option"):
        make_strategy("random", SPEC, P, history_size=3)
    with pytest.raises(ValueError, match="unknown argument"):
        make_strategy("CMA_ES", SPEC, P, bogus=1)
    with pytest.raises(ValueError, match="fitness_shaping"):
        make_strategy("Open_ES", SPEC, P, fitness_shaping="ranks")
    with pytest.raises(ValueError, match="weights"):
        make_strategy("CMA_ES", SPEC, P, fitness_shaping="z_score")
    with pytest.raises(ValueError, match="even"):
        make_strategy("Open_ES", SPEC, 15)
    with pytest.raises(ValueError, match="history_size"):
        make_regularized_evolution(SPEC, 8, history_size=4)


def _run_plain(strategy, generations):
    state = strategy.init(jax.random.key(0))
    target = _target()
    for t in range(generations):
        genomes, state = strategy.ask(jax.random.key(t), state)
        state = strategy.tell(jax.random.key(t), genomes, _objective(genomes, target), state)
    return genomes, None, state


def test_fitness_shaping_override_runs():
    strategy = make_strategy("Open_ES", SPEC, P, fitness_shaping="z_score")
    _, _, state = _run_plain(strategy, 3)
    assert all(not np.isnan(leaf).any() for leaf in _float_leaves(state))


# ----------------------------------------------------------------------------- Pareto front


def _brute_force_front(obj, maximize):
    x = np.where(maximize, obj, -obj)
    n = len(x)
    front = np.zeros(n, bool)
    for i in range(n):
        if np.isnan(x[i]).any():
            continue
        front[i] = not any(
            not np.isnan(x[j]).any() and np.all(x[j] >= x[i]) and np.any(x[j] > x[i])
            for j in range(n)
        )
    return front


@pytest.mark.parametrize("seed,m", list(itertools.product(range(4), (1, 2, 3))))
def test_pareto_front_matches_brute_force(seed, m):
    rng = np.random.default_rng(seed)
    obj = rng.integers(0, 6, size=(120, m)).astype(float)  # many ties and duplicates
    obj[rng.random(120) < 0.05, rng.integers(0, m)] = np.nan
    maximize = [bool(b) for b in rng.integers(0, 2, size=m)]
    front = pareto_front(obj, maximize)
    assert front.dtype == bool and front.shape == (120,)
    np.testing.assert_array_equal(front, _brute_force_front(obj, np.array(maximize)))
    assert not front[np.isnan(obj).any(1)].any()


def test_pareto_front_small_cases():
    obj = np.array([[1.0, 5.0], [1.0, 5.0], [2.0, 1.0], [0.5, 0.5], [np.nan, 9.0]])
    np.testing.assert_array_equal(pareto_front(obj, [True, True]), [True, True, True, False, False])
    np.testing.assert_array_equal(
        pareto_front(obj, [False, False]), [False, False, False, True, False]
    )
    assert pareto_front(np.zeros((0, 2)), [True, True]).shape == (0,)
    with pytest.raises(ValueError, match="flags"):
        pareto_front(obj, [True])
