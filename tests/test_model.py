"""The supernet: LightGCN, NGCF-style norm + concat and side inputs against dense references, the
two modes, static archs, masks; the objective (BPR, sampled softmax, the contrastive term)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from engine_utils import tiny_dataset

from jgnas import model as model_lib
from jgnas import objective
from jgnas.graph import build, dense
from jgnas.ops import segment_spmm
from jgnas.space import Space, take

SPACE = Space(max_layers=3, dims=(16, 32, 64))
W = (SPACE.max_layers + 1) * SPACE.d_max  # the width of the scored representations


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset(seed=4, isolated_items=1)


@pytest.fixture(scope="module")
def inputs(dataset):
    g = build(dataset.train, dataset.n_users, dataset.n_items)
    return model_lib.Inputs(g, jnp.zeros((g.n_node, 1), jnp.float32))


@pytest.fixture(scope="module")
def params(inputs):
    g = inputs.graph
    return model_lib.init_params(jax.random.key(0), SPACE, g.n_users, g.n_node, 1)


@pytest.fixture(scope="module")
def batch(dataset):
    rng = np.random.default_rng(0)
    b = 10
    return (
        jnp.asarray(rng.integers(0, dataset.n_users, b), jnp.int32),
        jnp.asarray(rng.integers(0, dataset.n_items, b), jnp.int32),
        jnp.asarray(rng.integers(0, dataset.n_items, (b, 1)), jnp.int32),
    )


def to_jax(arch):
    return jax.tree.map(jnp.asarray, arch)


@functools.cache
def jitted(mode, what="embeddings"):
    if what == "embeddings":
        return jax.jit(functools.partial(model_lib.embeddings, space=SPACE, mode=mode))
    return jax.jit(functools.partial(objective.loss, space=SPACE, mode=mode))


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
    want = np.pad(np.mean(layers, axis=0), ((0, 0), (0, W - SPACE.d_max)))
    for mode in ("switch", "select"):
        users, items = jitted(mode)(params, to_jax(arch), inputs)
        np.testing.assert_allclose(users, want[:n_users], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(items, want[n_users:], rtol=1e-5, atol=1e-6)
    # The static (Python) path too.
    users, items = model_lib.embeddings(params, arch, inputs, space=SPACE)
    np.testing.assert_allclose(users, want[:n_users], rtol=1e-5, atol=1e-6)
    # The isolated item keeps only its E^(0) / 4 share.
    np.testing.assert_allclose(items[-1, :64], e[-1] / 4, rtol=1e-5, atol=1e-7)


def test_norm_and_concat_equal_dense_ngcf_scoring(dataset, inputs, params):
    # 2 lightgcn layers with the l2 norm, concatenated: [h0 | n(Â h0) | n(Â n(Â h0)) | 0], where
    # n scales each row to unit length (NGCF's layer normalisation and scoring, RecBole 1.2.1).
    arch = SPACE.from_dict(
        {
            **SPACE.to_dict(SPACE.preset("lightgcn")),
            "depth": 2,
            "layers": [{"op": "lightgcn", "norm": "l2"}] * 2,
            "combine": "concat",
        }
    )
    n_users, n = dataset.n_users, dataset.n_users + dataset.n_items
    a_hat = dense(inputs.graph.sym, n)
    e = np.asarray(params["emb"], np.float64)

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    h1 = unit(a_hat @ e)
    h2 = unit(a_hat @ h1)
    want = np.concatenate([e, h1, h2, np.zeros_like(e)], axis=1)
    for mode in ("switch", "select"):
        users, items = jitted(mode)(params, to_jax(arch), inputs)
        np.testing.assert_allclose(users, want[:n_users], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(items, want[n_users:], rtol=1e-5, atol=1e-6)
    # Rows of the normalised layers have unit length (the isolated item's stays 0).
    norms = np.linalg.norm(np.asarray(users)[:, 64:128], axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_side_input_is_the_mean_of_its_value_embeddings(dataset, inputs):
    # features "side": h0_n = mean of the side table's rows of node n's values (padding 0 unused).
    space = Space(max_layers=1, dims=(8,), side=True)
    n = dataset.n_users + dataset.n_items
    rng = np.random.default_rng(1)
    ids = np.zeros((n, 3), np.int32)
    count = rng.integers(0, 4, n)
    for r in range(n):
        ids[r, : count[r]] = np.sort(rng.choice(np.arange(1, 7), count[r], replace=False))
    w = np.where(ids > 0, 1.0 / np.maximum(count, 1)[:, None], 0.0).astype(np.float32)
    side_inputs = inputs.replace(side_ids=jnp.asarray(ids), side_w=jnp.asarray(w), side_values=7)
    g = inputs.graph
    params = model_lib.init_params(jax.random.key(3), space, g.n_users, g.n_node, 1, 7)
    table = np.asarray(params["side"], np.float64)
    want_side = np.stack([table[ids[r, : count[r]]].mean(0) if count[r] else np.zeros(8)
                          for r in range(n)])  # fmt: skip
    emb = np.asarray(params["emb"], np.float64)
    for features, want in (("side", want_side), ("id+side", emb + want_side), ("id", emb)):
        arch = space.from_dict({**space.to_dict(space.preset("mf")), "features": features})
        h0 = model_lib.input_embeddings(params, to_jax(arch), side_inputs, space)
        np.testing.assert_allclose(h0, want, rtol=1e-5, atol=1e-6, err_msg=features)


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
        l3 = objective.loss(params, a, inputs, batch, key, space=SPACE)
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
    out["side"] = noisy(params["side"], next(keys), masked[None, :])
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
            slots = np.asarray(u).reshape(len(u), -1, 64), np.asarray(i).reshape(len(i), -1, 64)
            assert not any(np.any(x[..., 16:]) for x in slots), desc
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
    x = np.sum(eu * (ei - ej[:, 0]), axis=1)
    bpr = np.mean(np.log1p(np.exp(-x)))
    reg = 0.5 * (np.sum(eu**2) + np.sum(ei**2) + np.sum(ej**2)) / len(u)
    want = bpr + 1e-4 * reg
    key = jax.random.key(0)
    got = objective.loss(params, arch, inputs, batch, key, space=SPACE)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    got = jitted("switch", "loss")(params, to_jax(arch), inputs, batch, key)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    users, items = model_lib.embeddings(params, arch, inputs, space=SPACE)
    pad = ((0, 0), (0, W - dim))
    np.testing.assert_allclose(users, np.pad(e[:n_users], pad), rtol=1e-6)
    np.testing.assert_allclose(items, np.pad(e[n_users:], pad), rtol=1e-6)


def test_init_params_shapes(inputs, params):
    n, d, L = inputs.graph.n_node, SPACE.d_max, SPACE.max_layers
    assert params["emb"].shape == (n, d)
    assert params["layers"]["w"].shape == (L, d, d)
    assert params["side"].shape == (1, d)  # no side features: one (padding) row
    assert params["alpha"].shape == (L + 1,)
    # Layers get different weights (independent keys).
    assert not np.allclose(params["layers"]["w"][0], params["layers"]["w"][1])


# ---- the objective ------------------------------------------------------------------------------


OBJ = Space(max_layers=3, dims=(16, 32, 64), losses=("bpr", "softmax", "dns"), negatives=(1, 5),
            temperatures=(0.3,), ssl_weights=(0.0, 0.1))  # fmt: skip


@pytest.mark.parametrize("loss", ["bpr", "softmax", "dns"])
@pytest.mark.parametrize("k", [5, 3])
def test_objective_with_k_negatives_matches_numpy(loss, k, dataset, inputs, params):
    # MF (depth 0): h = the masked ID embeddings, so the loss has a closed form in NumPy. The
    # batch holds 5 negatives per positive; a member with k uses the first k.
    arch = OBJ.from_dict({**OBJ.to_dict(OBJ.preset("mf")), "loss": loss, "negatives": k,
                          "temperature": 0.3})  # fmt: skip
    rng = np.random.default_rng(3)
    B, K, tau = 12, 5, 0.3
    n_users = dataset.n_users
    u = rng.integers(0, n_users, B).astype(np.int32)
    i = rng.integers(0, dataset.n_items, B).astype(np.int32)
    j = rng.integers(0, dataset.n_items, (B, K)).astype(np.int32)
    got = objective.loss(params, arch, inputs, (u, i, j), None, space=OBJ)
    got_jit = jax.jit(functools.partial(objective.loss, space=OBJ))(
        params, to_jax(arch), inputs, (u, i, j), None
    )
    e = np.asarray(params["emb"], np.float64) * (np.arange(OBJ.d_max) < int(arch.dim))
    eu, ei, ej = e[u], e[i + n_users], e[j[:, :k] + n_users]
    sp, sn = (eu * ei).sum(-1), np.einsum("bd,bkd->bk", eu, ej)
    if loss == "bpr":
        main = np.mean(np.log1p(np.exp(-(sp[:, None] - sn))))
    elif loss == "dns":  # BPR against the highest-scored of the k candidates, row by row
        hardest = np.array([max(sn[b]) for b in range(B)])
        main = np.mean(np.log1p(np.exp(-(sp - hardest))))
    else:
        logits = np.concatenate([sp[:, None], sn], 1) / tau
        main = np.mean(np.log(np.exp(logits).sum(1)) - logits[:, 0])
    reg = 0.5 * ((eu**2).sum() + (ei**2).sum() + (ej[:, 0] ** 2).sum()) / B
    np.testing.assert_allclose(float(got), main + 1e-4 * reg, rtol=1e-5)
    np.testing.assert_allclose(float(got_jit), main + 1e-4 * reg, rtol=1e-5)


def test_info_nce_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    na = a / np.linalg.norm(a, axis=1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=1, keepdims=True)
    logits = na @ nb.T / 0.2
    want = np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits))
    got = objective.info_nce(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # With ids, over the distinct nodes only (SimGCL's unique batch nodes): rows 3 and 5 repeat
    # nodes 7 and 2, so the term is the plain one over rows 0, 1, 2, 4, whatever rows 3, 5 hold.
    ids = np.array([7, 2, 9, 7, 4, 2])
    keep = [0, 1, 2, 4]
    lk = na[keep] @ nb[keep].T / 0.2
    want_ids = np.mean(np.log(np.exp(lk).sum(1)) - np.diag(lk))
    b2 = b.copy()
    b2[[3, 5]] = rng.normal(size=(2, 4))
    for bb in (b, b2):
        got = objective.info_nce(jnp.asarray(a, jnp.float32), jnp.asarray(bb, jnp.float32),
                                 ids=jnp.asarray(ids))  # fmt: skip
        np.testing.assert_allclose(float(got), want_ids, rtol=1e-5)
    grad = jax.grad(lambda x: objective.info_nce(x, jnp.asarray(b, jnp.float32),
                                                 ids=jnp.asarray(ids)))(jnp.asarray(a, jnp.float32))  # fmt: skip
    assert np.isfinite(np.asarray(grad)).all() and not np.asarray(grad)[[3, 5]].any()


def test_contrastive_term(dataset, inputs, params, batch):
    # ssl > 0: the training forward is perturbed and the InfoNCE of the two views is added;
    # equal to the reference built from the same noisy forward. Evaluation (no key) has neither.
    base = OBJ.preset("lightgcn")
    ssl = base.replace(ssl=np.float32(0.1))
    key = jax.random.key(4)
    fn = functools.partial(objective.loss, space=OBJ)
    l_base, l_ssl = fn(params, base, inputs, batch, key), fn(params, ssl, inputs, batch, key)
    fwd = model_lib.propagate(params, ssl, inputs, key, space=OBJ)
    u, i, j = batch
    n_users = dataset.n_users
    h = fwd.out
    s_pos = jnp.sum(h[u] * h[i + n_users], -1)
    s_neg = jnp.einsum("bd,bkd->bk", h[u], h[j + n_users])
    main = objective.ranking_loss(ssl, s_pos, s_neg)
    h0 = fwd.h0
    reg = 0.5 * sum(float(jnp.sum(h0[x] ** 2)) for x in (u, i + n_users, j[:, 0] + n_users)) / len(u)
    term = sum(objective.info_nce(fwd.mean[x], fwd.first[x], ids=x) for x in (u, i + n_users))
    np.testing.assert_allclose(float(l_ssl), float(main + 1e-4 * reg + 0.1 * term), rtol=1e-5)
    # The noise moved the embeddings: the perturbed forward differs from the clean one.
    clean = model_lib.propagate(params, base, inputs, key, space=OBJ)
    assert not np.allclose(np.asarray(clean.out), np.asarray(h))
    assert float(l_ssl) != float(l_base)
    # Switch, select and static agree on the term (traced genes: cond / computed-and-weighted).
    for mode in ("switch", "select"):
        got = jax.jit(functools.partial(objective.loss, space=OBJ, mode=mode))(
            params, to_jax(ssl), inputs, batch, key
        )
        np.testing.assert_allclose(float(got), float(l_ssl), rtol=1e-5)
    # Evaluation: no noise, so the ssl member scores as its base model.
    e1 = model_lib.embeddings(params, ssl, inputs, space=OBJ)
    e2 = model_lib.embeddings(params, base, inputs, space=OBJ)
    np.testing.assert_array_equal(e1[0], e2[0])


@pytest.mark.parametrize("loss", ["bpr", "softmax"])
def test_objective_with_shared_negatives_matches_numpy(loss, dataset, inputs, params):
    # sample_member_batch's form: one negative per positive, 4 shared by the batch, with the
    # (user, shared item) pairs flagged as positives left out of that row (of the mean for BPR, of
    # the softmax's denominator).
    k = 5
    arch = OBJ.from_dict({**OBJ.to_dict(OBJ.preset("mf")), "loss": loss, "negatives": k,
                          "temperature": 0.3})  # fmt: skip
    rng = np.random.default_rng(5)
    B, n_users = 12, dataset.n_users
    u = rng.integers(0, n_users, B).astype(np.int32)
    i = rng.integers(0, dataset.n_items, B).astype(np.int32)
    j0 = rng.integers(0, dataset.n_items, B).astype(np.int32)
    shared = rng.integers(0, dataset.n_items, k - 1).astype(np.int32)
    ok = rng.random((B, k - 1)) > 0.3
    got = objective.loss(params, arch, inputs, (u, i, j0, shared, ok), None, space=OBJ)
    e = np.asarray(params["emb"], np.float64) * (np.arange(OBJ.d_max) < int(arch.dim))
    eu, ei = e[u], e[i + n_users]
    sp = (eu * ei).sum(-1)
    sn = np.concatenate([(eu * e[j0 + n_users]).sum(-1)[:, None], eu @ e[shared + n_users].T], 1)
    used = np.concatenate([np.ones((B, 1), bool), ok], 1)
    rows = []
    for b in range(B):
        s = sn[b, used[b]]
        if loss == "bpr":
            rows.append(np.mean(np.log1p(np.exp(-(sp[b] - s)))))
        else:
            logits = np.concatenate([[sp[b]], s]) / 0.3
            rows.append(np.log(np.exp(logits).sum()) - logits[0])
    ej0 = e[j0 + n_users]
    reg = 0.5 * ((eu**2).sum() + (ei**2).sum() + (ej0**2).sum()) / B
    np.testing.assert_allclose(float(got), np.mean(rows) + 1e-4 * reg, rtol=1e-5)
