"""Tests for jgnas.sampler: determinism, exact positive rejection, uniformity, jit/vmap, shapes."""

import jax
import numpy as np
import pytest

from jgnas.data.types import DataError, Interactions
from jgnas.sampler import (
    POP_POWER,
    epoch_batches,
    make_sampler_data,
    n_batches_per_epoch,
    sample_batch,
    sample_bpr,
    sample_member_batch,
    sample_negatives,
)

sample_jit = jax.jit(sample_bpr, static_argnames="batch_size")


def inter(users, items):
    users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
    n = users.size
    return Interactions(users, items, np.ones(n, np.float32), np.zeros(n, np.int64))


def dense_graph(seed=0, n_users=6, n_items=9, density=0.7):
    """Dense-ish random graph; user 0 has every item but one (item 4), user 1 has one item."""
    rng = np.random.default_rng(seed)
    adj = rng.random((n_users, n_items)) < density
    adj[0] = True
    adj[0, 4] = False
    adj[1] = False
    adj[1, 2] = True
    u, i = np.nonzero(adj)
    return adj, inter(u, i)


def test_shapes_dtypes_and_pairs_are_training_interactions():
    adj, train = dense_graph()
    data = make_sampler_data(train, *adj.shape)
    users, pos, neg = sample_jit(jax.random.key(0), data, batch_size=64)
    for a in (users, pos, neg):
        assert a.shape == (64,) and a.dtype == np.int32
    assert adj[np.asarray(users), np.asarray(pos)].all()
    assert ((np.asarray(neg) >= 0) & (np.asarray(neg) < adj.shape[1])).all()


def test_deterministic_and_key_dependent():
    adj, train = dense_graph()
    data = make_sampler_data(train, *adj.shape)
    a = sample_jit(jax.random.key(1), data, batch_size=64)
    b = sample_jit(jax.random.key(1), data, batch_size=64)
    c = sample_jit(jax.random.key(2), data, batch_size=64)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_negatives_never_positives():
    # Density 0.7, and user 0's only negative is item 4: rejection sampling with a few rounds
    # would leak positives here; the exact sampler must not, for any key.
    adj, train = dense_graph(density=0.7)
    data = make_sampler_data(train, *adj.shape)
    users, _, neg = sample_jit(jax.random.key(3), data, batch_size=20000)
    users, neg = np.asarray(users), np.asarray(neg)
    assert not adj[users, neg].any()
    assert (neg[users == 0] == 4).all() and (users == 0).sum() > 1000


def test_without_rejection_negatives_can_be_positives():
    adj, train = dense_graph(density=0.7)
    data = make_sampler_data(train, *adj.shape, reject_positives=False)
    users, _, neg = sample_jit(jax.random.key(3), data, batch_size=20000)
    assert adj[np.asarray(users), np.asarray(neg)].mean() > 0.5


def chi2(counts, expected):
    return float(np.sum((counts - expected) ** 2 / expected))


def test_uniformity():
    # Positives: uniform over the n training interactions. Negatives of a user: uniform over its
    # non-positive items. With a fixed key these are deterministic; the bound is loose (the
    # chi-square mean is the degrees of freedom, its sd sqrt(2 dof)), yet a sampler biased by
    # a few percent on any item exceeds it at these sample sizes.
    adj, train = dense_graph(seed=1, n_users=8, n_items=30, density=0.4)
    data = make_sampler_data(train, *adj.shape)
    n = len(train)
    users, pos, neg = map(np.asarray, sample_jit(jax.random.key(5), data, batch_size=200_000))
    pair_counts = np.bincount(users * adj.shape[1] + pos, minlength=adj.size)[adj.ravel()]
    assert chi2(pair_counts, 200_000 / n) < n + 6 * np.sqrt(2 * n)
    for u in range(adj.shape[0]):
        negatives = np.flatnonzero(~adj[u])
        counts = np.bincount(neg[users == u], minlength=adj.shape[1])
        assert counts[adj[u]].sum() == 0
        dof = len(negatives) - 1
        if dof > 0:
            got = counts[negatives]
            assert chi2(got, got.sum() / len(negatives)) < dof + 6 * np.sqrt(2 * dof) + 6, u
    # Without rejection: uniform over all items.
    data = make_sampler_data(train, *adj.shape, reject_positives=False)
    _, _, neg = sample_jit(jax.random.key(6), data, batch_size=60_000)
    counts = np.bincount(np.asarray(neg), minlength=adj.shape[1])
    dof = adj.shape[1] - 1
    assert chi2(counts, 60_000 / adj.shape[1]) < dof + 6 * np.sqrt(2 * dof)


def test_user_with_every_item_positive_gets_valid_item():
    train = inter([0, 0, 0, 1], [0, 1, 2, 0])
    data = make_sampler_data(train, 2, 3)
    users, _, neg = map(np.asarray, sample_jit(jax.random.key(0), data, batch_size=500))
    assert ((neg >= 0) & (neg < 3)).all()
    assert set(neg[users == 1].tolist()) == {1, 2}


def test_vmap_over_keys_and_epoch_batches():
    adj, train = dense_graph()
    data = make_sampler_data(train, *adj.shape)
    keys = jax.random.split(jax.random.key(7), 4)
    vm = jax.jit(jax.vmap(sample_bpr, in_axes=(0, None, None)), static_argnums=2)(keys, data, 64)
    for k in range(4):
        solo = sample_jit(keys[k], data, batch_size=64)
        for x, y in zip(vm, solo, strict=True):
            np.testing.assert_array_equal(x[k], y)
    n_batches = n_batches_per_epoch(data, 10)
    assert n_batches == -(-len(train) // 10)
    epoch = jax.jit(epoch_batches, static_argnames="batch_size")(
        jax.random.key(8), data, batch_size=10
    )
    for a in epoch:
        assert a.shape == (n_batches, 10) and a.dtype == np.int32
    batch_keys = jax.random.split(jax.random.key(8), n_batches)
    for x, y in zip(epoch, sample_jit(batch_keys[2], data, batch_size=10), strict=True):
        np.testing.assert_array_equal(x[2], y)
    # Usable as scan input.
    total = jax.lax.scan(lambda c, b: (c + b[0].sum(), None), 0, epoch)[0]
    assert int(total) == int(np.asarray(epoch[0]).sum())


def test_duplicates_collapsed_and_bad_input():
    data = make_sampler_data(inter([0, 0, 1], [2, 2, 0]), 2, 3)
    assert data.n_train == 2
    with pytest.raises(DataError, match="item id out of range"):
        make_sampler_data(inter([0], [3]), 2, 3)
    with pytest.raises(DataError, match="no interactions"):
        make_sampler_data(Interactions.empty(), 2, 3)


@pytest.mark.parametrize("reject", [True, False])
def test_k_negatives_extend_the_triple_and_never_hit_positives(reject):
    adj, train = dense_graph(seed=4)
    data = make_sampler_data(train, *adj.shape, reject_positives=reject)
    key = jax.random.key(9)
    f = jax.jit(sample_batch, static_argnums=(2, 3))
    users, pos, neg = f(key, data, 256, 6)
    u1, p1, n1 = sample_bpr(key, data, 256)
    assert neg.shape == (256, 6) and neg.dtype == np.int32
    # The first column is the classic triple's negative; the batch's users and positives too.
    np.testing.assert_array_equal(users, u1)
    np.testing.assert_array_equal(pos, p1)
    np.testing.assert_array_equal(neg[:, 0], n1)
    assert np.all((np.asarray(neg) >= 0) & (np.asarray(neg) < adj.shape[1]))
    hits = adj[np.asarray(users)[:, None], np.asarray(neg)]
    full = adj[np.asarray(users)].all(1)  # a user with every item positive falls back to uniform
    if reject:
        assert not hits[~full].any()
    else:
        assert hits.any()  # uniform negatives do hit positives on this dense graph
    # The columns are different draws, and K = 1 is exactly sample_bpr.
    assert not np.array_equal(neg[:, 1], neg[:, 2])
    one = sample_batch(key, data, 256, 1)
    np.testing.assert_array_equal(one[2], n1)


# ---- a member's batch: the sampler gene, shared negatives ---------------------------------------


@pytest.mark.parametrize("sampler", [0, 1])
def test_member_batch_first_negative_exact_and_shared_mask(sampler):
    # The per-positive negative of the uniform sampler is never a positive; the shared ones are
    # flagged exactly where they are a positive of the row's user (brute force over adj).
    adj, train = dense_graph(seed=3, n_users=8, n_items=12, density=0.5)
    data = make_sampler_data(train, *adj.shape)
    f = jax.jit(sample_member_batch, static_argnums=(2, 3))
    for s in range(5):
        users, pos, neg0, shared, ok = (np.asarray(x) for x in f(jax.random.key(s), data, 64, 6,
                                                                   sampler))  # fmt: skip
        assert neg0.shape == (64,) and shared.shape == (5,) and ok.shape == (64, 5)
        assert adj[users, pos].all()
        if sampler == 0:
            assert not adj[users, neg0].any()
        np.testing.assert_array_equal(ok, ~adj[users[:, None], shared[None, :]])
    one = f(jax.random.key(0), data, 64, 1, sampler)
    assert len(one) == 3 and one[2].shape == (64, 1)


def test_popularity_sampler_follows_degree_power():
    # Without rejection, item j is drawn with probability ∝ degree(j)^0.75.
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 10
    deg = np.asarray([1, 2, 4, 8, 16, 1, 3, 30, 5, 40])
    u = np.concatenate([rng.choice(n_users, d, replace=False) for d in deg])
    i = np.repeat(np.arange(n_items), deg)
    data = make_sampler_data(inter(u, i), n_users, n_items, reject_positives=False)
    users = np.zeros(20000, np.int32)
    neg = np.asarray(sample_negatives(jax.random.key(1), data, users, 1, 1))[:, 0]
    freq = np.bincount(neg, minlength=n_items) / neg.size
    want = deg**POP_POWER / (deg**POP_POWER).sum()
    np.testing.assert_allclose(freq, want, atol=0.012)
    # With rejection, a user's positives are redrawn: far rarer than their popularity share.
    data = make_sampler_data(inter(u, i), n_users, n_items, reject_positives=True)
    user = int(u[i == 9][0])  # a user of the most popular item
    neg = np.asarray(sample_negatives(jax.random.key(2), data, np.full(20000, user, np.int32), 1, 1))
    mine = np.unique(i[u == user])
    assert np.isin(neg, mine).mean() < 0.1 * want[mine].sum()
