"""The shared user-item bipartite graph: a `jraph.GraphsTuple` plus CSR views for fast aggregation.

Users are nodes `0..U-1`, items `U..U+I-1`. Every training interaction (u, i) gives the two edges
u->i and i->u (optionally self-loops). Edges are sorted by (receiver, sender), so the edge arrays of
the GraphsTuple are also the CSR arrays of the receiver-by-sender adjacency: row = receiver,
column = sender. The seed op's coefficient is `e_ij / sqrt(d_i d_j)` with `d` the weighted degree
(He et al. 2020, LightGCN; Kipf & Welling 2017).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np
from flax import struct

from jgnas.data.types import Interactions


@struct.dataclass
class CSR:
    """A sparse [n, n] matrix in CSR form, with its transpose (same arrays when symmetric)."""

    data: jax.Array  # [E] float32
    indices: jax.Array  # [E] int32, column (sender) of each entry
    indptr: jax.Array  # [n + 1] int32
    data_t: jax.Array  # transpose, CSR
    indices_t: jax.Array
    indptr_t: jax.Array


@struct.dataclass
class Graph:
    """The shared graph. Only arrays are pytree leaves; the sizes are static.

    graph: jraph.GraphsTuple with `edges` = symmetric coefficient e_ij/sqrt(d_i d_j) [E].
    weight: e_ij [E]; degree: weighted degree d [N] (self-loops included when present).
    sym: D^-1/2 A D^-1/2 ; mean: D^-1 A (row-normalised) ; adj: A (weights e_ij).
    """

    graph: jraph.GraphsTuple
    weight: jax.Array
    degree: jax.Array
    sym: CSR
    mean: CSR
    adj: CSR
    n_users: int = struct.field(pytree_node=False)
    n_items: int = struct.field(pytree_node=False)

    @property
    def n_node(self) -> int:
        return self.n_users + self.n_items

    @property
    def senders(self) -> jax.Array:
        return self.graph.senders

    @property
    def receivers(self) -> jax.Array:
        return self.graph.receivers


def build(
    train: Interactions,
    n_users: int,
    n_items: int,
    *,
    self_loops: bool = False,
    edge_weight: str = "one",
) -> Graph:
    """Builds the bipartite graph of the training interactions.

    Args:
      train: training interactions (dense ids). Duplicated pairs are merged (weights summed).
      n_users, n_items: sizes; nodes without interactions are isolated (zero coefficients).
      self_loops: add an edge (i, i) of weight 1 for every node, as in GCN's A + I.
      edge_weight: "one" (e_ij = 1) or "rating" (e_ij = the interaction's rating).

    Returns:
      A `Graph` whose arrays live on the default device.
    """
    if edge_weight not in ("one", "rating"):
        raise ValueError(f"edge_weight: expected 'one' or 'rating', got {edge_weight!r}")
    n = n_users + n_items
    u = np.asarray(train.users, np.int64)
    i = np.asarray(train.items, np.int64) + n_users
    w = (
        np.ones(len(u), np.float64)
        if edge_weight == "one"
        else np.asarray(train.ratings, np.float64)
    )
    senders = np.concatenate([u, i])
    receivers = np.concatenate([i, u])
    weights = np.concatenate([w, w])
    if self_loops:
        loops = np.arange(n, dtype=np.int64)
        senders = np.concatenate([senders, loops])
        receivers = np.concatenate([receivers, loops])
        weights = np.concatenate([weights, np.ones(n)])
    # Merge duplicate edges and sort by (receiver, sender): the CSR order.
    key = receivers * n + senders
    key, inverse = np.unique(key, return_inverse=True)
    weights = np.bincount(inverse, weights=weights, minlength=len(key))
    receivers, senders = key // n, key % n
    degree = np.bincount(receivers, weights=weights, minlength=n)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)
    inv = np.where(degree > 0, 1.0 / np.maximum(degree, 1e-300), 0.0)
    sym = weights * inv_sqrt[receivers] * inv_sqrt[senders]
    mean = weights * inv[receivers]
    # (D^-1 A)^T has entry (j, i) = e_ij / d_i: same pattern (A is symmetric), row j, column i.
    mean_t = weights * inv[senders]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(receivers, minlength=n))])

    f32 = lambda a: jnp.asarray(a, jnp.float32)
    i32 = lambda a: jnp.asarray(a, jnp.int32)
    idx, ptr = i32(senders), i32(indptr)

    def csr(data, data_t):
        return CSR(f32(data), idx, ptr, f32(data_t), idx, ptr)

    gt = jraph.GraphsTuple(
        nodes=None,
        edges=f32(sym),
        senders=idx,
        receivers=i32(receivers),
        n_node=jnp.asarray([n], jnp.int32),
        n_edge=jnp.asarray([len(senders)], jnp.int32),
        globals=None,
    )
    return Graph(
        graph=gt,
        weight=f32(weights),
        degree=f32(degree),
        sym=csr(sym, sym),
        mean=csr(mean, mean_t),
        adj=csr(weights, weights),
        n_users=n_users,
        n_items=n_items,
    )


def dense(m: CSR, n: int) -> np.ndarray:
    """The dense [n, n] numpy matrix of a CSR (for tests and small references)."""
    indptr = np.asarray(m.indptr)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    out = np.zeros((n, n), np.float64)
    np.add.at(out, (rows, np.asarray(m.indices)), np.asarray(m.data, np.float64))
    return out
