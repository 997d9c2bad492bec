"""The sparse kernel and every registered op against dense NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from engine_utils import tiny_dataset
from jax.experimental import sparse

from jgnas import model as model_lib
from jgnas.graph import build
from jgnas.ops import OPS, OpContext, init_layer_params, register, segment_spmm, spmm
from jgnas.space import Space, stack
from jgnas.train import Engine, TrainConfig, make_data

D = 6
NATIVE = "cpu_csr_sparse_dense"
# Frozen at collection: the parameterisation covers every registered op, plugins included
# (`python -m pytest -p my_ops tests/test_ops.py` tests the ops a module `my_ops` registers).
REGISTERED = tuple(OPS)


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset(seed=1, isolated_items=2)


@pytest.fixture(scope="module", params=[("one", False), ("rating", True)], ids=["plain", "rated"])
def graph_case(request, dataset):
    edge_weight, self_loops = request.param
    g = build(
        dataset.train,
        dataset.n_users,
        dataset.n_items,
        self_loops=self_loops,
        edge_weight=edge_weight,
    )
    return g, reference_matrices(dataset, edge_weight, self_loops)


@pytest.fixture(scope="module")
def graph(dataset):
    return build(dataset.train, dataset.n_users, dataset.n_items)


def reference_matrices(ds, edge_weight, self_loops):
    """A, D^-1/2 A D^-1/2 and D^-1 A in float64, from the interaction list alone."""
    n = ds.n_users + ds.n_items
    w = np.ones(len(ds.train)) if edge_weight == "one" else np.asarray(ds.train.ratings, float)
    a = np.zeros((n, n))
    for u, i, e in zip(ds.train.users, ds.train.items, w):
        a[u, ds.n_users + i] += e
        a[ds.n_users + i, u] += e
    if self_loops:
        a += np.eye(n)
    d = a.sum(1)
    safe = np.where(d > 0, d, 1.0)
    inv_sqrt = np.where(d > 0, safe**-0.5, 0.0)
    inv = np.where(d > 0, 1.0 / safe, 0.0)
    return {"adj": a, "sym": inv_sqrt[:, None] * a * inv_sqrt, "mean": inv[:, None] * a}


# ---- the kernel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["sym", "mean", "adj"])
def test_spmm_equals_dense_and_segment(graph_case, which):
    g, ref = graph_case
    m = getattr(g, which)
    x = jax.random.normal(jax.random.key(0), (g.n_node, D))
    want = ref[which] @ np.asarray(x, np.float64)
    np.testing.assert_allclose(np.asarray(spmm(m, x)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(segment_spmm(m, x)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(jax.jit(spmm)(m, x)), np.asarray(segment_spmm(m, x)), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("which", ["sym", "mean"])
def test_spmm_grad_is_transpose_product(graph_case, which):
    # mean is not symmetric, so a backward pass using M instead of M^T fails here.
    g, ref = graph_case
    m = getattr(g, which)
    k1, k2 = jax.random.split(jax.random.key(1))
    x = jax.random.normal(k1, (g.n_node, D))
    c = jax.random.normal(k2, (g.n_node, D))
    grad = jax.grad(lambda x: jnp.sum(spmm(m, x) * c))(x)
    want = ref[which].T @ np.asarray(c, np.float64)
    np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-5, atol=1e-6)
    seg = jax.grad(lambda x: jnp.sum(segment_spmm(m, x) * c))(x)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(seg), rtol=1e-5, atol=1e-6)


def test_spmm_vmap_equals_loop(graph):
    x = jax.random.normal(jax.random.key(2), (3, graph.n_node, D))
    got = jax.vmap(spmm, in_axes=(None, 0))(graph.mean, x)
    for p in range(3):
        np.testing.assert_allclose(got[p], spmm(graph.mean, x[p]), rtol=1e-6, atol=1e-6)
    # Nested vmap folds twice.
    x2 = x.reshape(3, 1, graph.n_node, D)
    got2 = jax.vmap(jax.vmap(spmm, in_axes=(None, 0)), in_axes=(None, 0))(graph.mean, x2)
    np.testing.assert_allclose(got2[:, 0], got, rtol=1e-6, atol=1e-6)


def test_spmm_vmap_over_matrices(graph):
    # A batched matrix (not the engine's case) still computes per-member products.
    ms = jax.tree.map(lambda a: jnp.stack([a, a]), graph.mean)
    ms = ms.replace(data=ms.data.at[1].multiply(2.0))
    x = jax.random.normal(jax.random.key(3), (graph.n_node, D))
    got = jax.vmap(spmm, in_axes=(0, None))(ms, x)
    np.testing.assert_allclose(got[0], spmm(graph.mean, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], 2 * spmm(graph.mean, x), rtol=1e-5, atol=1e-6)


def _vmap_grad(fn):
    return jax.vmap(jax.grad(fn, argnums=1), in_axes=(None, 0, 0))


def test_spmm_vmap_grad_equals_loop(graph):
    k1, k2 = jax.random.split(jax.random.key(4))
    x = jax.random.normal(k1, (3, graph.n_node, D))
    c = jax.random.normal(k2, (3, graph.n_node, D))

    def f(m, x, c):
        return jnp.sum(jnp.tanh(spmm(m, x)) * c)

    got = jax.jit(_vmap_grad(f))(graph.mean, x, c)
    for p in range(3):
        want = jax.grad(f, argnums=1)(graph.mean, x[p], c[p])
        np.testing.assert_allclose(got[p], want, rtol=1e-5, atol=1e-6)


def test_lowered_program_uses_native_csr(graph):
    if jax.default_backend() != "cpu":
        pytest.skip("the native CSR routine is XLA:CPU's")
    x = jnp.ones((graph.n_node, D))
    xs = jnp.ones((3, graph.n_node, D))

    def f(m, x, c):
        return jnp.sum(jnp.tanh(spmm(m, x)) * c)  # non-linear: the forward product is needed

    programs = {
        "plain": jax.jit(spmm).lower(graph.mean, x),
        "grad": jax.jit(jax.grad(f, argnums=1)).lower(graph.mean, x, x),
        "vmap(grad)": jax.jit(_vmap_grad(f)).lower(graph.mean, xs, xs),
    }
    for name, lowered in programs.items():
        assert NATIVE in lowered.as_text(), name
    # grad: one native call forward, one backward (the stored transpose), none replaced by gathers.
    assert programs["grad"].as_text().count(NATIVE) == 2
    assert programs["vmap(grad)"].as_text().count(NATIVE) == 2  # the population folded in
    assert NATIVE in programs["vmap(grad)"].compile().as_text()

    # Negative control: the plain BCSR product loses the native routine under vmap(grad).
    def bcsr_f(data, x, c):
        m = sparse.BCSR((data, graph.mean.indices, graph.mean.indptr), shape=(graph.n_node,) * 2)
        return jnp.sum(jnp.tanh(m @ x) * c)

    plain = jax.jit(bcsr_f).lower(graph.mean.data, x, x).as_text()
    assert NATIVE in plain  # the probe string is right
    control = jax.jit(_vmap_grad(bcsr_f)).lower(graph.mean.data, xs, xs).as_text()
    assert NATIVE not in control


# ---- every registered op --------------------------------------------------------------------


def reference(name, ref, h, p, w, use_w, mask):
    """The op's own dense float64 reference, from its OpSpec; an op without one fails here."""
    spec = OPS[name]
    if spec.reference is None:
        pytest.fail(
            f"op {name!r} has no dense NumPy reference: register it with "
            f"`@register({name!r}, reference=lambda m, h, p, t: ...)`, where m holds the dense "
            "matrices 'adj', 'sym' and 'mean', h and p are float64, and t is the layer's transform"
        )

    def t(x):
        return (x @ w) * mask if use_w else x

    return spec.reference(ref, h, p, t)


def op_inputs(key, n, d=D):
    """h, the transform w, and the union of every op's own weights (as in a model layer)."""
    k_h, k_w, k_p = jax.random.split(key, 3)
    h = jax.random.normal(k_h, (n, d))
    w = jax.random.normal(k_w, (d, d)) / np.sqrt(d)
    p = init_layer_params(tuple(OPS), k_p, d)
    if "eps" in p:
        p["eps"] = jnp.asarray(0.3, jnp.float32)  # the init is 0; make the term visible
    if "att" in p:
        p["att"] = 3.0 * p["att"]  # larger logits: softmax far from uniform
    return h, w, p


def run_op(name, graph, h, w, p, use_w, mask, spmm_fn=spmm):
    ctx = OpContext(graph, w, jnp.asarray(use_w), mask, spmm_fn)
    return OPS[name].fn(ctx, h, p)


@pytest.mark.parametrize("name", REGISTERED)
@pytest.mark.parametrize("use_w", [True, False], ids=["W", "identity"])
def test_op_matches_dense_formula(name, use_w, graph_case):
    g, ref = graph_case
    h, w, p = op_inputs(jax.random.key(5), g.n_node)
    mask = jnp.ones(D)
    out = run_op(name, g, h, w, p, use_w, mask)
    assert out.shape == (g.n_node, D) and out.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(out)))
    p64 = {k: np.asarray(v, np.float64) for k, v in p.items()}
    want = reference(
        name, ref, np.asarray(h, np.float64), p64, np.asarray(w, np.float64), use_w, np.ones(D)
    )
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-5)
    # The jraph (gather + segment_sum) path gives the same output.
    seg = run_op(name, g, h, w, p, use_w, mask, segment_spmm)
    np.testing.assert_allclose(np.asarray(seg), np.asarray(out), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", REGISTERED)
def test_op_mask_zeroes_transformed_columns(name, graph_case):
    # A member of dimension 4 inside 6: the transform's output is masked (as in the supernet,
    # where h is already masked on input).
    g, ref = graph_case
    h, w, p = op_inputs(jax.random.key(6), g.n_node)
    mask = (jnp.arange(D) < 4).astype(jnp.float32)
    h = h * mask
    out = run_op(name, g, h, w, p, True, mask)
    p64 = {k: np.asarray(v, np.float64) for k, v in p.items()}
    want = reference(
        name, ref, np.asarray(h, np.float64), p64, np.asarray(w, np.float64), True, np.asarray(mask)
    )
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", REGISTERED)
def test_op_jit_and_isolated_node_invariance(name, dataset):
    g = build(dataset.train, dataset.n_users, dataset.n_items)
    # One more item that nobody interacted with: the last node, isolated.
    g_pad = build(dataset.train, dataset.n_users, dataset.n_items + 1)
    h_pad, w, p = op_inputs(jax.random.key(7), g_pad.n_node)
    h = h_pad[:-1]
    mask = jnp.ones(D)

    @jax.jit
    def jitted(graph, h, w, p):
        return run_op(name, graph, h, w, p, True, mask)

    eager = run_op(name, g, h, w, p, True, mask)
    assert eager.shape == (g.n_node, D)
    assert np.all(np.isfinite(np.asarray(eager)))
    np.testing.assert_allclose(jitted(g, h, w, p), eager, rtol=1e-5, atol=1e-6)
    padded = jitted(g_pad, h_pad, w, p)
    assert np.all(np.isfinite(np.asarray(padded)))
    np.testing.assert_allclose(padded[:-1], eager, rtol=1e-5, atol=1e-6)
    # Gradients exist and are finite for every parameter the op uses.
    grads = jax.grad(lambda h, w, p: jnp.sum(jitted(g, h, w, p) ** 2), argnums=(0, 1, 2))(h, w, p)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(grads))


def test_aggregations_are_shared_between_ops(graph):
    calls = []

    def counting_spmm(m, x):
        calls.append(m)
        return spmm(m, x)

    h, w, p = op_inputs(jax.random.key(8), graph.n_node)
    ctx = OpContext(graph, w, jnp.asarray(True), jnp.ones(D), counting_spmm)
    for name in ("gcn", "lightgcn", "ngcf"):
        OPS[name].fn(ctx, h, p)
    assert len(calls) == 1
    for name in ("mean", "sage"):
        OPS[name].fn(ctx, h, p)
    assert len(calls) == 2
    OPS["lightgcn"].fn(ctx, h + 1.0, p)  # a different input is a new product
    assert len(calls) == 3


def test_duplicate_registration_is_refused():
    before = OPS["gcn"]
    with pytest.raises(ValueError, match="already registered"):

        @register("gcn")
        def other(ctx, h, p):
            return h

    assert OPS["gcn"] is before


def test_registered_op_is_searchable_and_trainable():
    name = "toy_scale"
    assert name not in OPS

    default = Space()

    @register(name, reference=lambda m, h, p, t: 2.0 * m["sym"] @ h, uses_transform=False)
    def toy_scale(ctx, h, p):
        """Twice the symmetric aggregation."""
        return 2.0 * ctx.sym(h)

    try:
        # Registering changes no default space or genome layout (the built-in order is pinned).
        assert Space() == default and name not in Space().ops
        assert OPS[name].formula == "Twice the symmetric aggregation."
        space = Space(ops=("lightgcn", name), max_layers=1, dims=(8,))
        one = {"op": name, "transform": "identity", "act": "identity", "residual": False}
        arch_d = {
            "depth": 1,
            "layers": [one],
            "combine": "last",
            "dim": 8,
            "dropout": 0.0,
            "lr": 1e-2,
            "l2": 1e-4,
            "features": "id",
        }
        arch = space.from_dict(arch_d)
        # Decoded from genomes, in this space and in the default one.
        decoded = space.decode(space.encode(arch))
        assert space.to_dict(decoded)["layers"][0]["op"] == name
        full = Space(ops=(*default.ops, name))
        full_arch = full.from_dict({**arch_d, "dim": 64, "lr": 1e-2})
        full_decoded = full.decode(full.encode(full_arch))
        assert full.to_dict(full_decoded)["layers"][0]["op"] == name
        assert "toy_scale" in space.describe(arch)
        # uses_transform=False: the transform gene is inert (canonical zeroes it, no "+W").
        with_w = space.from_dict({**arch_d, "layers": [{**one, "transform": "linear"}]})
        assert space.keys(with_w) == space.keys(arch)
        assert "+W" not in space.describe(with_w)
        genomes = np.full((1, space.n_genes), 0.99, np.float32)
        genomes[0, space.gene_names.index("op0")] = 0.99  # the last op of the space
        assert space.ops[int(space.decode(genomes).op[0, 0])] == name

        # The supernet really runs it: depth 1, combine last -> twice LightGCN's output.
        ds = tiny_dataset(seed=2)
        cfg = TrainConfig(epochs=1, batch_size=32, ks=(5,), metric_k=5)
        data = make_data(ds, cfg)
        params = model_lib.init_params(jax.random.key(0), space, ds.n_users, ds.n_users + ds.n_items, 1)
        lgc = space.from_dict({**arch_d, "layers": [{**one, "op": "lightgcn"}]})
        u_toy, _ = model_lib.embeddings(params, arch, data.inputs, space=space)
        u_lgc, _ = model_lib.embeddings(params, lgc, data.inputs, space=space)
        np.testing.assert_allclose(u_toy, 2 * np.asarray(u_lgc), rtol=1e-5, atol=1e-7)

        engine = Engine(cfg, space, data, chunk_size=1)
        same_key = jnp.stack([jax.random.key(1)] * 2)
        res = engine.train(same_key, stack([arch, lgc]))
        assert not np.any(np.asarray(res.failed))
        assert np.all(np.isfinite(np.asarray(res.fitness)))
        # Same key, different op: the trained embeddings differ.
        assert not np.allclose(res.params["emb"][0], res.params["emb"][1])
    finally:
        OPS.pop(name, None)
    assert name not in Space().ops


def test_op_without_reference_fails_with_what_to_add():
    @register("no_ref")
    def no_ref(ctx, h, p):
        return ctx.sym(h)

    try:
        with pytest.raises(pytest.fail.Exception, match=r"no dense NumPy reference.*reference="):
            reference("no_ref", {}, np.zeros((2, D)), {}, np.eye(D), False, np.ones(D))
    finally:
        OPS.pop("no_ref")


@pytest.mark.parametrize("name", REGISTERED)
def test_op_spec_is_complete_and_counts_its_weights(name):
    spec = OPS[name]
    assert spec.name == name and spec.formula and "\n" not in spec.formula
    d = 8
    own = init_layer_params((name,), jax.random.key(0), d)
    assert spec.own_params(d) == sum(int(np.size(v)) for v in own.values())
    assert spec.n_params(d, linear=True) == spec.own_params(d) + (
        d * d if spec.uses_transform else 0
    )
    assert spec.n_params(d, linear=False) == spec.own_params(d)


def test_builtin_order_is_pinned():
    from jgnas.ops import BUILTIN_OPS, FAST_OPS

    assert BUILTIN_OPS == ("gcn", "lightgcn", "ngcf", "mean", "sum", "max", "gat", "sage")
    assert set(FAST_OPS) <= set(BUILTIN_OPS) and Space().ops == FAST_OPS
    assert all(OPS[o].uses_transform for o in BUILTIN_OPS if o != "lightgcn")
    assert not OPS["lightgcn"].uses_transform
