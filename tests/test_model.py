"""The supernet: LightGCN against a dense reference, the two modes, static archs, masks, BPR."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from engine_utils import tiny_dataset

from jgnas import model as model_lib
from jgnas.graph import build, dense
from jgnas.ops import segment_spmm
from jgnas.space import Space, take

SPACE = Space(max_layers=3, dims=(16, 32, 64))


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset(seed=4, isolated_items=1)


@pytest.fixture(scope="module")
def inputs(dataset):
    g = build(dataset.train, dataset.n_users, dataset.n_items)
    return model_lib.Inputs(g, jnp.zeros((g.n_node, 1), jnp.float32))


@pytest.fixture(scope="module")
def params(inputs):
    return model_lib.init_params(jax.random.key(0), SPACE, inputs.graph.n_node, 1)


@pytest.fixture(scope="module")
def batch(dataset):
    rng = np.random.default_rng(0)
    b = 10
    return (
        jnp.asarray(rng.integers(0, dataset.n_users, b), jnp.int32),
        jnp.asarray(rng.integers(0, dataset.n_items, b), jnp.int32),
        jnp.asarray(rng.integers(0, dataset.n_items, b), jnp.int32),
    )


def to_jax(arch):
    return jax.tree.map(jnp.asarray, arch)


@functools.cache
def jitted(mode, what="embeddings"):
    if what == "embeddings":
        return jax.jit(functools.partial(model_lib.embeddings, space=SPACE, mode=mode))
    return jax.jit(functools.partial(model_lib.bpr_loss, space=SPACE, mode=mode))


def random_archs(n, seed, dim=None):
    archs = SPACE.sample(jax.random.key(seed), n)
    if dim is not None:
        archs = archs.replace(dim=np.full_like(archs.dim, dim))
    return archs


def test_lightgcn_preset_equals_dense_lightgcn(dataset, inputs, params):
    arch = SPACE.preset("lightgcn")
    n_users = dataset.n_users
    # Independent reference: Â from the interaction list, E^(k+1) = Â E^(k), mean of E^(0..3).
    n = dataset.n_users + dataset.n_items
    a = np.zeros((n, n))
    a[dataset.train.users, n_users + dataset.train.items] = 1.0
    a = np.maximum(a, a.T)
    d = a.sum(1)
    inv_sqrt = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0)
    a_hat = inv_sqrt[:, None] * a * inv_sqrt[None, :]
    np.testing.assert_allclose(dense(inputs.graph.sym, n), a_hat, atol=1e-7)
    e = np.asarray(params["emb"], np.float64)
    layers = [e]
    for _ in range(3):
        layers.append(a_hat @ layers[-1])
    want = np.mean(layers, axis=0)
    for mode in ("switch", "select"):
        users, items = jitted(mode)(params, to_jax(arch), inputs)
        np.testing.assert_allclose(users, want[:n_users], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(items, want[n_users:], rtol=1e-5, atol=1e-6)
    # The static (Python) path too.
    users, items = model_lib.embeddings(params, arch, inputs, space=SPACE)
    np.testing.assert_allclose(users, want[:n_users], rtol=1e-5, atol=1e-6)
    # The isolated item keeps only its E^(0) / 4 share.
    np.testing.assert_allclose(items[-1], e[-1] / 4, rtol=1e-5, atol=1e-7)


def test_switch_select_and_static_agree(inputs, params, batch):
    archs = random_archs(8, seed=1)
    key = jax.random.key(5)
    emb_switch, emb_select = jitted("switch"), jitted("select")
    loss_switch, loss_select = jitted("switch", "loss"), jitted("select", "loss")
    depths = set()
    for p in range(archs.size):
        a = take(archs, p)
        depths.add(int(a.depth))
        u1, i1 = emb_switch(params, to_jax(a), inputs)
        u2, i2 = emb_select(params, to_jax(a), inputs)
        u3, i3 = model_lib.embeddings(params, a, inputs, space=SPACE)  # static arch
        desc = SPACE.describe(a)
        assert np.all(np.isfinite(np.asarray(u1))), desc
        for u, i in ((u2, i2), (u3, i3)):
            np.testing.assert_allclose(u, u1, rtol=1e-5, atol=1e-5, err_msg=desc)
            np.testing.assert_allclose(i, i1, rtol=1e-5, atol=1e-5, err_msg=desc)
        # The loss with dropout: the same bits are drawn in both modes.
        l1 = loss_switch(params, to_jax(a), inputs, batch, key)
        l2 = loss_select(params, to_jax(a), inputs, batch, key)
        l3 = model_lib.bpr_loss(params, a, inputs, batch, key, space=SPACE)
        np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-6, err_msg=desc)
        np.testing.assert_allclose(l3, l1, rtol=1e-5, atol=1e-6, err_msg=desc)
    assert len(depths) > 1


def test_dropout_changes_training_loss_only(inputs, params, batch):
    a = SPACE.preset("ngcf")  # dropout 0.1
    assert float(a.dropout) > 0
    loss = jitted("switch", "loss")
    l_drop = loss(params, to_jax(a), inputs, batch, jax.random.key(0))
    l_drop2 = loss(params, to_jax(a), inputs, batch, jax.random.key(1))
    no_drop = to_jax(a.replace(dropout=np.float32(0.0)))
    l_plain = loss(params, no_drop, inputs, batch, jax.random.key(0))
    assert float(l_drop) != float(l_drop2)
    assert float(l_drop) != float(l_plain)
    # Evaluation (no key) never drops: the embeddings ignore the dropout rate.
    u1, i1 = jitted("switch")(params, to_jax(a), inputs)
    u2, i2 = jitted("switch")(params, no_drop, inputs)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(i1, i2)


def test_segment_kernel_agrees(inputs, params):
    # The jraph path (gather + segment_sum) and the CSR kernel, on static archs (no compile).
    archs = random_archs(6, seed=2)
    for p in range(archs.size):
        a = take(archs, p)
        u1, i1 = model_lib.embeddings(params, a, inputs, space=SPACE)
        u2, i2 = model_lib.embeddings(params, a, inputs, space=SPACE, spmm_fn=segment_spmm)
        np.testing.assert_allclose(u2, u1, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(i2, i1, rtol=1e-5, atol=1e-5)


def perturb_masked(params, dim, key):
    """Random values in every parameter entry that a member of dimension `dim` must ignore."""
    d = SPACE.d_max
    masked = np.arange(d) >= dim

    def noisy(x, k, where):
        return jnp.where(where, jax.random.normal(k, x.shape), x)

    keys = iter(jax.random.split(key, 16))
    out = dict(params)
    out["emb"] = noisy(params["emb"], next(keys), masked[None, :])
    out["text_proj"] = noisy(params["text_proj"], next(keys), masked[None, :])
    layers = {}
    for name, x in params["layers"].items():
        if x.shape[1:] == (d, d):  # w, w2 [L, d, d]: masked rows or columns
            where = masked[None, :, None] | masked[None, None, :]
        elif x.shape[-1] == d:  # e.g. gat's att [L, 2, d]
            where = np.broadcast_to(masked, x.shape)
        else:  # scalars such as eps
            where = np.zeros(x.shape, bool)
        layers[name] = noisy(x, next(keys), where)
    out["layers"] = layers
    rows = np.tile(masked, SPACE.max_layers + 1)[:, None]
    out["w_cat"] = noisy(params["w_cat"], next(keys), rows | masked[None, :])
    return out


def test_dim_mask(inputs, params, batch):
    archs = random_archs(10, seed=3, dim=16)
    noisy_params = perturb_masked(params, 16, jax.random.key(9))
    assert not np.allclose(noisy_params["emb"], params["emb"])
    key = jax.random.key(2)
    for p in range(archs.size):
        a = to_jax(take(archs, p))
        desc = SPACE.describe(take(archs, p))
        for mode in ("switch", "select"):
            u, i = jitted(mode)(params, a, inputs)
            assert not np.any(np.asarray(u)[:, 16:]) and not np.any(np.asarray(i)[:, 16:]), desc
            u2, i2 = jitted(mode)(noisy_params, a, inputs)
            np.testing.assert_allclose(u2 @ i2.T, u @ i.T, rtol=1e-5, atol=1e-5, err_msg=desc)
            l1 = jitted(mode, "loss")(params, a, inputs, batch, key)
            l2 = jitted(mode, "loss")(noisy_params, a, inputs, batch, key)
            np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-6, err_msg=desc)
    # The same member at full width does see those columns (the check above can fail).
    full = to_jax(take(archs, 0).replace(dim=np.int32(64)))
    u, i = jitted("switch")(params, full, inputs)
    u2, i2 = jitted("switch")(noisy_params, full, inputs)
    assert not np.allclose(u2 @ i2.T, u @ i.T, atol=1e-3)


@pytest.mark.parametrize("dim", [64, 16])
def test_bpr_loss_matches_numpy_for_mf(dim, dataset, inputs, params, batch):
    arch = SPACE.preset("mf").replace(dim=np.int32(dim))  # the preset's dim is 64 = d_max
    e = np.asarray(params["emb"], np.float64)[:, :dim]
    u, i, j = (np.asarray(x) for x in batch)
    n_users = dataset.n_users
    eu, ei, ej = e[u], e[n_users + i], e[n_users + j]
    x = np.sum(eu * (ei - ej), axis=1)
    bpr = np.mean(np.log1p(np.exp(-x)))
    reg = 0.5 * (np.sum(eu**2) + np.sum(ei**2) + np.sum(ej**2)) / len(u)
    want = bpr + 1e-4 * reg
    key = jax.random.key(0)
    got = model_lib.bpr_loss(params, arch, inputs, batch, key, space=SPACE)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    got = jitted("switch", "loss")(params, to_jax(arch), inputs, batch, key)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    users, items = model_lib.embeddings(params, arch, inputs, space=SPACE)
    pad = ((0, 0), (0, SPACE.d_max - dim))
    np.testing.assert_allclose(users, np.pad(e[:n_users], pad), rtol=1e-6)
    np.testing.assert_allclose(items, np.pad(e[n_users:], pad), rtol=1e-6)


def test_init_params_shapes(inputs, params):
    n, d, L = inputs.graph.n_node, SPACE.d_max, SPACE.max_layers
    assert params["emb"].shape == (n, d)
    assert params["layers"]["w"].shape == (L, d, d)
    assert params["w_cat"].shape == ((L + 1) * d, d)
    assert params["alpha"].shape == (L + 1,)
    # Layers get different weights (independent keys).
    assert not np.allclose(params["layers"]["w"][0], params["layers"]["w"][1])


# ---- the objective ------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["bpr", "softmax"])
def test_objective_with_k_negatives_matches_numpy(loss, dataset, inputs, params):
    # MF (depth 0): h = the masked ID embeddings, so the loss has a closed form in NumPy.
    arch = SPACE.from_dict({**SPACE.to_dict(SPACE.preset("mf")), "l2": 1e-4})
    rng = np.random.default_rng(3)
    B, K, tau = 12, 5, 0.3
    n_users = dataset.n_users
    u = rng.integers(0, n_users, B).astype(np.int32)
    i = rng.integers(0, dataset.n_items, B).astype(np.int32)
    j = rng.integers(0, dataset.n_items, (B, K)).astype(np.int32)
    got = model_lib.bpr_loss(params, arch, inputs, (u, i, j), None, space=SPACE, loss=loss,
                             temperature=tau)  # fmt: skip
    e = np.asarray(params["emb"], np.float64) * (np.arange(SPACE.d_max) < int(arch.dim))
    eu, ei, ej = e[u], e[i + n_users], e[j + n_users]
    sp, sn = (eu * ei).sum(-1), np.einsum("bd,bkd->bk", eu, ej)
    if loss == "bpr":
        main = np.mean(np.log1p(np.exp(-(sp[:, None] - sn))))
    else:
        logits = np.concatenate([sp[:, None], sn], 1) / tau
        main = np.mean(np.log(np.exp(logits).sum(1)) - logits[:, 0])
    reg = 0.5 * ((eu**2).sum() + (ei**2).sum() + (ej[:, 0] ** 2).sum()) / B
    np.testing.assert_allclose(float(got), main + 1e-4 * reg, rtol=1e-5)
    if loss == "bpr":  # one negative column in a [B, 1] batch is the classic triple
        one = model_lib.bpr_loss(params, arch, inputs, (u, i, j[:, 0]), None, space=SPACE)
        two = model_lib.bpr_loss(params, arch, inputs, (u, i, j[:, :1]), None, space=SPACE)
        np.testing.assert_allclose(float(one), float(two), rtol=1e-6)
