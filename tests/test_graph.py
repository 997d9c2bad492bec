"""The shared bipartite graph: degrees, normalisations and CSR views against dense NumPy."""

import numpy as np
import pytest
from engine_utils import interactions, tiny_dataset

from jgnas.graph import build, dense

# 3 users, 4 items; user 2 and item 3 are isolated; (0, 1) appears twice.
USERS = [0, 0, 0, 1, 1, 0]
ITEMS = [0, 1, 2, 1, 2, 1]
RATINGS = [5.0, 4.0, 1.0, 2.0, 3.0, 2.0]
N_USERS, N_ITEMS = 3, 4


def dense_adjacency(users, items, weights, n_users, n_items, self_loops=False):
    """A built from the interaction list alone (duplicates summed), both directions."""
    n = n_users + n_items
    a = np.zeros((n, n))
    for u, i, w in zip(users, items, weights):
        a[u, n_users + i] += w
        a[n_users + i, u] += w
    if self_loops:
        a += np.eye(n)
    return a


def normalised(a):
    d = a.sum(1)
    inv_sqrt = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    inv = np.where(d > 0, 1 / np.where(d > 0, d, 1), 0)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :], inv[:, None] * a


def transposed(m):
    """The stored transpose of a CSR as a CSR-shaped object for `dense`."""
    return type(m)(m.data_t, m.indices_t, m.indptr_t, m.data, m.indices, m.indptr)


CASES = [
    ("one", False),
    ("one", True),
    ("rating", False),
    ("rating", True),
]


@pytest.mark.parametrize("edge_weight,self_loops", CASES)
def test_matrices_equal_dense_formulas(edge_weight, self_loops):
    train = interactions(USERS, ITEMS, RATINGS)
    g = build(train, N_USERS, N_ITEMS, self_loops=self_loops, edge_weight=edge_weight)
    w = np.ones(len(USERS)) if edge_weight == "one" else np.asarray(RATINGS)
    a = dense_adjacency(USERS, ITEMS, w, N_USERS, N_ITEMS, self_loops)
    sym, mean = normalised(a)
    n = N_USERS + N_ITEMS
    assert g.n_node == n
    np.testing.assert_allclose(np.asarray(g.degree), a.sum(1), rtol=1e-6)
    np.testing.assert_allclose(dense(g.adj, n), a, rtol=1e-6)
    np.testing.assert_allclose(dense(g.sym, n), sym, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dense(g.mean, n), mean, rtol=1e-6, atol=1e-7)
    # The stored transposes are the transposes (mean is not symmetric).
    np.testing.assert_allclose(dense(transposed(g.mean), n), mean.T, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dense(transposed(g.sym), n), sym.T, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dense(transposed(g.adj), n), a.T, rtol=1e-6)
    assert not np.allclose(mean, mean.T)  # the case above is a real check


def test_degrees_duplicates_and_isolated_nodes():
    train = interactions(USERS, ITEMS, RATINGS)
    g = build(train, N_USERS, N_ITEMS)
    # user 0: items 0, 1 (twice, merged into weight 2), 2 -> weighted degree 4; user 1: 2.
    # items: 0 <- {0}, 1 <- {0 (x2), 1}, 2 <- {0, 1}, 3 isolated.
    np.testing.assert_array_equal(np.asarray(g.degree), [4, 2, 0, 1, 3, 2, 0])
    # Both directions, duplicates merged: 5 distinct pairs -> 10 edges.
    assert int(g.graph.n_edge[0]) == 10 == g.senders.shape[0]
    pairs = set(zip(np.asarray(g.senders).tolist(), np.asarray(g.receivers).tolist()))
    for u, i in zip(USERS, ITEMS):
        assert (u, N_USERS + i) in pairs and (N_USERS + i, u) in pairs
    n = g.n_node
    for m in (g.sym, g.mean, g.adj):
        d = dense(m, n)
        for isolated in (2, N_USERS + 3):
            assert not d[isolated].any() and not d[:, isolated].any()
    # The merged duplicate carries weight 2 in A, not two entries.
    np.testing.assert_allclose(dense(g.adj, n)[0, N_USERS + 1], 2.0)


def test_self_loops_add_identity():
    train = interactions(USERS, ITEMS)
    g0 = build(train, N_USERS, N_ITEMS)
    g1 = build(train, N_USERS, N_ITEMS, self_loops=True)
    n = g0.n_node
    np.testing.assert_allclose(dense(g1.adj, n), dense(g0.adj, n) + np.eye(n))
    np.testing.assert_allclose(np.asarray(g1.degree), np.asarray(g0.degree) + 1)
    assert g1.senders.shape[0] == g0.senders.shape[0] + n
    # An isolated node with a self-loop is its own only neighbour: coefficient 1.
    assert dense(g1.sym, n)[2, 2] == pytest.approx(1.0)


def test_rating_weights_differ_from_one():
    train = interactions(USERS, ITEMS, RATINGS)
    g = build(train, N_USERS, N_ITEMS, edge_weight="rating")
    n = g.n_node
    # (0, 1) has ratings 4 and 2 -> merged weight 6.
    assert dense(g.adj, n)[0, N_USERS + 1] == pytest.approx(6.0)
    assert dense(g.adj, n)[N_USERS + 1, 0] == pytest.approx(6.0)
    np.testing.assert_allclose(np.asarray(g.weight), np.asarray(g.adj.data))


@pytest.mark.parametrize("self_loops", [False, True])
def test_graphs_tuple_matches_csr(self_loops):
    ds = tiny_dataset(seed=3, isolated_items=2)
    g = build(ds.train, ds.n_users, ds.n_items, self_loops=self_loops)
    gt = g.graph
    senders, receivers = np.asarray(gt.senders), np.asarray(gt.receivers)
    indptr = np.asarray(g.sym.indptr)
    np.testing.assert_array_equal(senders, np.asarray(g.sym.indices))
    assert np.all(np.diff(receivers) >= 0)
    # Within a receiver, senders are sorted and distinct (duplicates merged).
    key = receivers.astype(np.int64) * g.n_node + senders
    assert np.all(np.diff(key) > 0)
    np.testing.assert_array_equal(receivers, np.repeat(np.arange(g.n_node), np.diff(indptr)))
    np.testing.assert_allclose(np.asarray(gt.edges), np.asarray(g.sym.data))
    assert int(gt.n_node[0]) == g.n_node == ds.n_users + ds.n_items
    assert int(gt.n_edge[0]) == senders.shape[0] == int(indptr[-1])
    for m in (g.sym, g.mean, g.adj):
        for idx, ptr in ((m.indices, m.indptr), (m.indices_t, m.indptr_t)):
            np.testing.assert_array_equal(np.asarray(idx), senders)
            np.testing.assert_array_equal(np.asarray(ptr), indptr)
    # Users only link to items and back (bipartite) unless self-loops.
    off = senders != receivers
    assert np.all((senders[off] < ds.n_users) != (receivers[off] < ds.n_users))
    assert np.sum(~off) == (g.n_node if self_loops else 0)


def test_bad_edge_weight():
    with pytest.raises(ValueError, match="edge_weight"):
        build(interactions([0], [0]), 1, 1, edge_weight="weird")
