"""Jittable BPR triple sampler (Rendle et al., UAI 2009), LightGCN-style: uniform over interactions.

A triple (u, i, j) takes a training interaction (u, i) uniformly at random and a negative item j
uniformly at random, either over all items or, with `reject_positives=True`, over the items that
are *not* positives of u.

Negatives without positives are drawn exactly, with one draw and no rejection rounds: draw
r ~ U[0, n_items - deg(u)) and return the r-th non-positive item of u. With u's positives sorted,
p_0 < p_1 < ..., the number of non-positives below p_k is p_k - k (non-decreasing in k), so the
r-th non-positive is r + #{k : p_k - k <= r}, one binary search in u's CSR row. This equals
rejection sampling with unbounded rounds, so no positive can ever slip through (bounded
rejection leaves a positive with probability density^(rounds+1)). The CSR row keeps ids as
(user, item) pairs, so unlike u * n_items + i keys it does not overflow int32 on large graphs.
A user whose every item is a positive has no negative; it then gets a uniform item.

The popularity sampler (a member's `sampler` gene, `sample_negatives`) draws item j with
probability ∝ (train degree of j)^0.75 (word2vec's smoothing), by inverse CDF (one binary search),
and redraws a positive of u up to `POP_ROUNDS` times (bounded rejection: a user holding most of
the popular items can still get a positive, with small probability).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jgnas.data.types import DataError, Interactions

POP_POWER = 0.75  # popularity sampler: P(j) ∝ degree(j)^POP_POWER
POP_ROUNDS = 3  # popularity sampler: redraws of a positive


@struct.dataclass
class SamplerData:
    """Training interactions in CSR form (rows = users, items sorted within a row).

    users, items: int32 [n_train] the deduplicated interactions, sorted by (user, item).
    indptr: int32 [n_users + 1] row offsets into `items`.
    pop_cdf: float32 [n_items] the cumulative popularity distribution (degree^0.75, normalised).
    n_items, search_steps: static; search_steps = ceil(log2(max_degree + 1)) binary-search steps.
    reject_positives: static; whether negatives avoid the user's positives.
    """

    users: jax.Array
    items: jax.Array
    indptr: jax.Array
    pop_cdf: jax.Array
    n_items: int = struct.field(pytree_node=False)
    search_steps: int = struct.field(pytree_node=False)
    reject_positives: bool = struct.field(pytree_node=False)

    @property
    def n_train(self) -> int:
        return int(self.users.shape[0])


def make_sampler_data(
    train: Interactions, n_users: int, n_items: int, reject_positives: bool = True
) -> SamplerData:
    """Builds the sampler's arrays (host side). Duplicate (user, item) pairs are collapsed.

    Args:
      train: training interactions with dense ids.
      n_users, n_items: id ranges.
      reject_positives: draw negatives among each user's non-positive items only.

    Returns:
      A `SamplerData` pytree; pass it to `sample_bpr` / `epoch_batches` as a jit argument.
    """
    users = np.asarray(train.users, np.int64)
    items = np.asarray(train.items, np.int64)
    if users.size == 0:
        raise DataError("train: no interactions to sample from")
    if users.min() < 0 or users.max() >= n_users:
        raise DataError(f"train: user id out of range [0, {n_users})")
    if items.min() < 0 or items.max() >= n_items:
        raise DataError(f"train: item id out of range [0, {n_items})")
    keys = np.unique(users * n_items + items)  # sorted by (user, item)
    users, items = (keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32)
    degree = np.bincount(users, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(degree)]).astype(np.int32)
    weight = np.bincount(items, minlength=n_items).astype(np.float64) ** POP_POWER
    cdf = np.cumsum(weight) / weight.sum()
    return SamplerData(
        users=jnp.asarray(users),
        items=jnp.asarray(items),
        indptr=jnp.asarray(indptr),
        pop_cdf=jnp.asarray(cdf, jnp.float32),
        n_items=int(n_items),
        search_steps=int(np.ceil(np.log2(degree.max() + 1))),
        reject_positives=bool(reject_positives),
    )


def _nth_negative(data: SamplerData, users: jax.Array, r: jax.Array) -> jax.Array:
    """The r-th (0-based) item that is not a positive of each user. users, r: int32 [B]."""
    start, end = data.indptr[users], data.indptr[users + 1]
    # Binary search for the first k in [start, end) with items[k] - (k - start) > r.
    lo, hi = start, end
    for _ in range(data.search_steps):  # static, ~log2(max degree) steps
        mid = (lo + hi) // 2
        below = data.items[jnp.minimum(mid, data.items.shape[0] - 1)] - (mid - start) <= r
        go_right = below & (mid < hi)
        lo = jnp.where(go_right, mid + 1, lo)
        hi = jnp.where(go_right, hi, mid)
    return r + (lo - start)


def sample_bpr(
    key: jax.Array, data: SamplerData, batch_size: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draws `batch_size` BPR triples, with replacement. Jittable (batch_size static), vmappable.

    Args:
      key: PRNG key.
      data: from `make_sampler_data`.
      batch_size: static number of triples.

    Returns:
      users, pos_items, neg_items: int32 [batch_size].
    """
    key_pos, key_neg = jax.random.split(key)
    idx = jax.random.randint(key_pos, (batch_size,), 0, data.users.shape[0])
    users, pos = data.users[idx], data.items[idx]
    if not data.reject_positives:
        neg = jax.random.randint(key_neg, (batch_size,), 0, data.n_items)
        return users, pos, neg.astype(jnp.int32)
    n_neg = data.n_items - (data.indptr[users + 1] - data.indptr[users])  # [B]
    r = jax.random.randint(key_neg, (batch_size,), 0, jnp.maximum(n_neg, 1))  # per-user range
    neg = _nth_negative(data, users, r)
    # A user with every item positive has no negative: fall back to a uniform item.
    fallback = jax.random.randint(jax.random.fold_in(key_neg, 1), (batch_size,), 0, data.n_items)
    neg = jnp.where(n_neg > 0, neg, fallback)
    return users, pos, neg.astype(jnp.int32)


def sample_batch(
    key: jax.Array, data: SamplerData, batch_size: int, negatives: int = 1
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`sample_bpr` with `negatives` negatives per positive (static).

    negatives == 1 is `sample_bpr` itself (neg_items [B]); otherwise the first column is exactly
    `sample_bpr`'s negative and the others are further independent draws for the same users (with
    the same exactness: never a positive when `reject_positives`), neg_items [B, negatives].
    """
    users, pos, neg = sample_bpr(key, data, batch_size)
    if negatives == 1:
        return users, pos, neg
    keys = jax.random.split(jax.random.fold_in(key, 2), negatives - 1)
    more = jax.vmap(lambda k: _negatives(k, data, users))(keys)  # [K-1, B]
    return users, pos, jnp.concatenate([neg[:, None], more.T], axis=1)


def _negatives(key: jax.Array, data: SamplerData, users: jax.Array) -> jax.Array:
    """One negative per user, drawn as `sample_bpr` draws it."""
    if not data.reject_positives:
        return jax.random.randint(key, users.shape, 0, data.n_items).astype(jnp.int32)
    n_neg = data.n_items - (data.indptr[users + 1] - data.indptr[users])
    r = jax.random.randint(key, users.shape, 0, jnp.maximum(n_neg, 1))
    fallback = jax.random.randint(jax.random.fold_in(key, 1), users.shape, 0, data.n_items)
    return jnp.where(n_neg > 0, _nth_negative(data, users, r), fallback).astype(jnp.int32)


def _is_positive(data: SamplerData, users: jax.Array, items: jax.Array) -> jax.Array:
    """Whether each items[b, k] is a training positive of users[b] (binary search in the row)."""
    start, end = data.indptr[users][:, None], data.indptr[users + 1][:, None]
    lo, hi = jnp.broadcast_to(start, items.shape), jnp.broadcast_to(end, items.shape)
    for _ in range(data.search_steps):  # first k in [start, end) with row[k] >= item
        mid = (lo + hi) // 2
        below = (data.items[jnp.minimum(mid, data.items.shape[0] - 1)] < items) & (mid < hi)
        lo = jnp.where(below, mid + 1, lo)
        hi = jnp.where(below, hi, mid)
    found = data.items[jnp.minimum(lo, data.items.shape[0] - 1)] == items
    return found & (lo < end)


def _popular(key: jax.Array, data: SamplerData, users: jax.Array, k: int) -> jax.Array:
    """[B, k] negatives ∝ degree^0.75, positives redrawn up to POP_ROUNDS times."""

    def draw(key):
        u = jax.random.uniform(key, (users.shape[0], k), jnp.float32)
        j = jnp.searchsorted(data.pop_cdf, u, side="right")
        return jnp.minimum(j, data.n_items - 1).astype(jnp.int32)

    neg = draw(key)
    if data.reject_positives:
        for r in range(POP_ROUNDS):
            neg = jnp.where(_is_positive(data, users, neg), draw(jax.random.fold_in(key, r)), neg)
    return neg


def sample_member_batch(key: jax.Array, data: SamplerData, batch_size: int, k: int, sampler):
    """A member's batch for `k` negatives per positive (static; every member of a space draws
    `space.max_negatives` and uses its first `arch.negatives`).

    The first negative is per positive, drawn by the member's sampler gene (`sample_negatives`:
    uniform and exact, or by popularity). The other k - 1 are shared by the whole batch (drawn by
    the same sampler), which makes their scores one [B, d] x [d, k - 1] product instead of a
    [B, k - 1, d] gather; `ok[b, m]` is False where shared item m is a training positive of user
    b (when `reject_positives`), and the loss leaves those pairs out.

    Returns:
      (users [B], pos [B], neg [B, 1]) for k == 1, else
      (users [B], pos [B], neg0 [B], shared [k - 1], ok [B, k - 1]).
    """
    key_pos, key_neg, key_shared = jax.random.split(key, 3)
    idx = jax.random.randint(key_pos, (batch_size,), 0, data.users.shape[0])
    users, pos = data.users[idx], data.items[idx]
    neg0 = sample_negatives(key_neg, data, users, 1, sampler)
    if k == 1:
        return users, pos, neg0
    key_u, key_p = jax.random.split(key_shared)
    uniform = jax.random.randint(key_u, (k - 1,), 0, data.n_items).astype(jnp.int32)
    popular = jnp.searchsorted(data.pop_cdf, jax.random.uniform(key_p, (k - 1,)), side="right")
    popular = jnp.minimum(popular, data.n_items - 1).astype(jnp.int32)
    shared = uniform if isinstance(sampler, int) and sampler == 0 else jnp.where(sampler == 1, popular, uniform)
    ok = jnp.ones((batch_size, k - 1), bool)
    if data.reject_positives:
        ok = ~_is_positive(data, users, jnp.broadcast_to(shared, (batch_size, k - 1)))
    return users, pos, neg0[:, 0], shared, ok


def sample_negatives(key: jax.Array, data: SamplerData, users: jax.Array, k: int, sampler):
    """[B, k] negatives for a member: uniform (exact, as `sample_batch`) or by popularity
    (`sampler` 1; a traced gene or an int). Both are drawn and one is selected: cheap next to a
    step, and a vmapped chunk of mixed samplers needs both anyway."""
    key_uni, key_pop = jax.random.split(key)
    uniform = jax.vmap(lambda kk: _negatives(kk, data, users))(jax.random.split(key_uni, k)).T
    if isinstance(sampler, int) and sampler == 0:
        return uniform
    return jnp.where(sampler == 1, _popular(key_pop, data, users, k), uniform)


def n_batches_per_epoch(data: SamplerData, batch_size: int) -> int:
    """ceil(n_train / batch_size): the static number of batches in one epoch."""
    return -(-data.n_train // batch_size)


def epoch_batches(
    key: jax.Array, data: SamplerData, batch_size: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One epoch of triples for `lax.scan`: each int32 [n_batches, batch_size].

    Batch b equals `sample_bpr(jax.random.split(key, n_batches)[b], data, batch_size)`, so a
    caller short on memory can draw batch b inside the scan instead of stacking the epoch.
    Sampling is with replacement per batch (LightGCN-style), not a permutation.
    """
    keys = jax.random.split(key, n_batches_per_epoch(data, batch_size))
    return jax.vmap(sample_bpr, in_axes=(0, None, None))(keys, data, batch_size)
