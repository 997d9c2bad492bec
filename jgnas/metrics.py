"""Full-ranking top-K metrics (Recall, NDCG, Precision, Hit, MRR) for a population, in user blocks.

Protocol as in LightGCN (He et al., SIGIR 2020) and RecBole: each evaluated user ranks every
candidate item except the ones it was trained on (and validated on, when testing); metrics are
averaged over users that have at least one held-out item.

Host side, `make_eval_set` turns interactions into an `EvalSet` of static-shape arrays. Device
side, `rank_metrics` scores one user block at a time (`lax.map`), so at most `[block, n_items]`
scores exist per model (`[P, block, n_items]` under vmap), never `[U, n_items]`.

Conventions (tested):
- Ties: equal scores rank the lower item index first. `lax.top_k` does this (it is stable), and
  it matches `np.argsort(-score, kind="stable")`.
- Excluded items and non-candidates score -inf. A -inf entry in the top K is never a hit, so a
  user with fewer than K rankable items simply has fewer possible hits (Precision still divides
  by K, as in RecBole).
- NaN scores (a diverged model) are treated as -inf: that item can never be a hit. A model that
  outputs NaN everywhere gets finite zeros for every metric, never an exception.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from jgnas.data.types import DataError, Dataset, Interactions

METRIC_NAMES = ("recall", "ndcg", "precision", "hit", "mrr")


@struct.dataclass
class EvalSet:
    """Static-shape description of one evaluation (valid or test) for `rank_metrics`.

    Users are grouped into `n_blocks` blocks of `block_size`. Per-block item lists are stored in
    block-COO form: entry j of block b says "row `*_row[b, j]` of the block has item
    `*_item[b, j]`"; padding entries have row == block_size and are dropped by the scatter. This
    pads each block to the largest block's total count, not each user to the heaviest user's count
    (a few heavy users would otherwise blow up a [U, max_degree] table), and it turns into a dense
    [block, n_items] mask with one scatter per block, shared by every population member.

    users: int32 [n_blocks * block_size] evaluated user ids (0 on padding).
    user_mask: bool [n_blocks * block_size] True for real evaluated users.
    n_heldout: int32 [n_blocks * block_size] held-out count per user (0 on padding).
    heldout_row, heldout_item: int32 [n_blocks, max_heldout_per_block].
    exclude_row, exclude_item: int32 [n_blocks, max_excluded_per_block].
    candidates: bool [n_items] items that may be ranked (default all).
    block_size, n_items: static ints. The number of evaluated users is deliberately not static
    (it is `user_mask.sum()`), so a new split with the same padded shapes reuses the compiled code.
    """

    users: jax.Array
    user_mask: jax.Array
    n_heldout: jax.Array
    heldout_row: jax.Array
    heldout_item: jax.Array
    exclude_row: jax.Array
    exclude_item: jax.Array
    candidates: jax.Array
    block_size: int = struct.field(pytree_node=False)
    n_items: int = struct.field(pytree_node=False)

    @property
    def n_blocks(self) -> int:
        return self.users.shape[0] // self.block_size

    @property
    def n_eval(self) -> int:
        """Number of evaluated users (host side only: it reads the mask back)."""
        return int(np.sum(np.asarray(self.user_mask)))


def _check_ids(name: str, inter: Interactions, n_users: int, n_items: int) -> None:
    users, items = np.asarray(inter.users), np.asarray(inter.items)
    if users.shape != items.shape or users.ndim != 1:
        raise DataError(f"{name}: users and items must be 1-D arrays of equal length")
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise DataError(f"{name}: user id out of range [0, {n_users})")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise DataError(f"{name}: item id out of range [0, {n_items})")


def _block_coo(
    items: np.ndarray, slot: np.ndarray, n_blocks: int, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (user slot, item) -> per-block padded (row, item) arrays [n_blocks, width]."""
    block = slot // block_size
    order = np.argsort(block, kind="stable")
    block, row, items = block[order], (slot % block_size)[order], items[order]
    counts = np.bincount(block, minlength=n_blocks)
    width = max(int(counts.max(initial=0)), 1)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(block.size) - start[block]
    out_row = np.full((n_blocks, width), block_size, np.int32)  # out of bounds -> dropped
    out_item = np.zeros((n_blocks, width), np.int32)
    out_row[block, pos] = row
    out_item[block, pos] = items
    return out_row, out_item


def make_eval_set(
    n_users: int,
    n_items: int,
    heldout: Interactions,
    exclude: Sequence[Interactions],
    block_size: int = 256,
    candidates: np.ndarray | None = None,
) -> EvalSet:
    """Builds the static-shape evaluation arrays (host side, numpy).

    (Longer than 80 lines: one validated host-side pass, kept whole so every id check precedes the
    array building it guards.)

    Held-out items are restricted to rankable ones: an item that is a non-candidate, or that is
    also excluded for that user, can never be ranked, so it is dropped from the user's held-out
    set (it would only lower Recall by a constant). Users left with no held-out item are skipped.
    Duplicate pairs are collapsed.

    Args:
      n_users, n_items: id ranges.
      heldout: the interactions to recover (valid or test split).
      exclude: interactions never ranked for their user (train; train and valid when testing).
      block_size: users per block; the device holds [block_size, n_items] scores per model.
      candidates: optional bool [n_items]; only these items are ranked (e.g. cold items).

    Returns:
      An `EvalSet` of the evaluated users, padded to a multiple of `block_size`.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    _check_ids("heldout", heldout, n_users, n_items)
    for j, inter in enumerate(exclude):
        _check_ids(f"exclude[{j}]", inter, n_users, n_items)
    if candidates is None:
        cand = np.ones(n_items, bool)
    else:
        cand = np.asarray(candidates)
        if cand.shape != (n_items,) or cand.dtype != np.bool_:
            raise DataError(f"candidates: expected bool [{n_items}], got {cand.dtype} {cand.shape}")

    n_items_i64 = np.int64(n_items)
    ex_key = np.unique(
        np.concatenate(
            [np.asarray(e.users, np.int64) * n_items_i64 + np.asarray(e.items) for e in exclude]
            + [np.zeros(0, np.int64)]
        )
    )
    ho_key = np.unique(
        np.asarray(heldout.users, np.int64) * n_items_i64 + np.asarray(heldout.items)
    )
    ho_key = ho_key[cand[ho_key % n_items_i64] & ~np.isin(ho_key, ex_key, assume_unique=True)]

    eval_users = np.unique(ho_key // n_items_i64)  # sorted
    n_eval = int(eval_users.size)
    n_blocks = max(-(-n_eval // block_size), 1)
    n_pad = n_blocks * block_size
    slot_of_user = np.full(n_users, -1, np.int64)
    slot_of_user[eval_users] = np.arange(n_eval)

    users = np.zeros(n_pad, np.int32)
    users[:n_eval] = eval_users
    user_mask = np.arange(n_pad) < n_eval
    n_heldout = np.zeros(n_pad, np.int32)
    n_heldout[:n_eval] = np.bincount(slot_of_user[ho_key // n_items_i64], minlength=n_eval)

    ho_u = ho_key // n_items_i64
    ho_row, ho_item = _block_coo(
        (ho_key % n_items_i64).astype(np.int32), slot_of_user[ho_u], n_blocks, block_size
    )
    ex_u = ex_key // n_items_i64
    keep = slot_of_user[ex_u] >= 0  # exclusions of users never evaluated are irrelevant
    ex_row, ex_item = _block_coo(
        (ex_key[keep] % n_items_i64).astype(np.int32),
        slot_of_user[ex_u[keep]],
        n_blocks,
        block_size,
    )
    return EvalSet(
        users=jnp.asarray(users),
        user_mask=jnp.asarray(user_mask),
        n_heldout=jnp.asarray(n_heldout),
        heldout_row=jnp.asarray(ho_row),
        heldout_item=jnp.asarray(ho_item),
        exclude_row=jnp.asarray(ex_row),
        exclude_item=jnp.asarray(ex_item),
        candidates=jnp.asarray(cand),
        block_size=block_size,
        n_items=n_items,
    )


def valid_eval_set(dataset: Dataset, block_size: int = 256) -> EvalSet:
    """The validation protocol: valid interactions ranked over all items, excluding each user's
    training items. The search's fitness is computed on it."""
    return make_eval_set(
        dataset.n_users, dataset.n_items, dataset.valid, [dataset.train], block_size=block_size
    )


def test_eval_set(dataset: Dataset, block_size: int = 256) -> EvalSet:
    """The test protocol: test interactions ranked over all items, excluding each user's train and
    valid items. Touched once, after retraining."""
    return make_eval_set(
        dataset.n_users,
        dataset.n_items,
        dataset.test,
        [dataset.train, dataset.valid],
        block_size=block_size,
    )


def _check_ks(ks: tuple[int, ...], n_items: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1 or max(ks) > n_items:
        raise ValueError(f"ks must be non-empty with 1 <= k <= n_items={n_items}, got {ks}")
    return ks


def _block_metrics(
    top_idx: jax.Array, top_val: jax.Array, heldout_mask: jax.Array, n_heldout: jax.Array, ks
) -> jax.Array:
    """Per-user metrics of one block from its top-k lists.

    top_idx, top_val: [B, kmax]; heldout_mask: bool [B, n_items]; n_heldout: int32 [B].
    Returns float32 [B, len(METRIC_NAMES), len(ks)].
    """
    kmax = max(ks)
    # -inf marks excluded, non-candidate and NaN items: never a hit, even if held out.
    hit = jnp.take_along_axis(heldout_mask, top_idx, axis=-1) & (top_val > -jnp.inf)
    hit = hit.astype(jnp.float32)  # [B, kmax]
    rank = jnp.arange(kmax, dtype=jnp.float32)
    discount = 1.0 / jnp.log2(rank + 2.0)
    cum_hits = jnp.cumsum(hit, axis=-1)
    cum_dcg = jnp.cumsum(hit * discount, axis=-1)
    # Reciprocal rank of the first hit within K = max over r < K of hit_r / (r + 1).
    cum_rr = lax.cummax(hit / (rank + 1.0), axis=hit.ndim - 1)
    idcg_table = jnp.concatenate([jnp.zeros(1), jnp.cumsum(discount)])  # [kmax + 1]
    n_held = n_heldout.astype(jnp.float32)
    safe_held = jnp.maximum(n_held, 1.0)  # padding users have 0; their rows are masked later
    out = []
    for k in ks:
        hits = cum_hits[:, k - 1]
        idcg = idcg_table[jnp.minimum(n_heldout, k)]
        out.append(
            jnp.stack(
                [
                    hits / safe_held,
                    cum_dcg[:, k - 1] / jnp.where(idcg > 0, idcg, 1.0),
                    hits / k,
                    (hits > 0).astype(jnp.float32),
                    cum_rr[:, k - 1],
                ],
                axis=-1,
            )
        )
    return jnp.stack(out, axis=-1)


def _rank_metrics_impl(score_block_fn, eval_set: EvalSet, ks: tuple[int, ...]):
    ks = _check_ks(ks, eval_set.n_items)
    kmax = max(ks)
    b, n_items = eval_set.block_size, eval_set.n_items
    xs = (
        eval_set.users.reshape(-1, b),
        eval_set.user_mask.reshape(-1, b),
        eval_set.n_heldout.reshape(-1, b),
        eval_set.heldout_row,
        eval_set.heldout_item,
        eval_set.exclude_row,
        eval_set.exclude_item,
    )

    def one_block(x):
        users, mask, n_held, ho_row, ho_item, ex_row, ex_item = x
        # These masks depend only on the eval set, so under vmap they are built once per block
        # and shared by the whole population.
        heldout_mask = jnp.zeros((b, n_items), bool).at[ho_row, ho_item].set(True, mode="drop")
        blocked = jnp.zeros((b, n_items), bool).at[ex_row, ex_item].set(True, mode="drop")
        blocked = blocked | ~eval_set.candidates[None, :]
        scores = score_block_fn(users)  # [B, n_items]
        scores = jnp.where(blocked | jnp.isnan(scores), -jnp.inf, scores)
        top_val, top_idx = lax.top_k(scores, kmax)
        per_user = _block_metrics(top_idx, top_val, heldout_mask, n_held, ks)
        return jnp.sum(jnp.where(mask[:, None, None], per_user, 0.0), axis=0)  # [M, len(ks)]

    sums = jnp.sum(lax.map(one_block, xs), axis=0)
    n_eval = jnp.sum(eval_set.user_mask.astype(jnp.float32))
    means = sums / jnp.maximum(n_eval, 1.0)
    return {name: means[j] for j, name in enumerate(METRIC_NAMES)}


@functools.partial(jax.jit, static_argnames="ks")
def rank_metrics(
    user_emb: jax.Array, item_emb: jax.Array, eval_set: EvalSet, ks: tuple[int, ...] = (20,)
) -> dict[str, jax.Array]:
    """Top-K metrics of the scores `user_emb @ item_emb.T`, averaged over evaluated users.

    Vmappable over a leading population axis of the embeddings with a shared eval set
    (see `population_rank_metrics`).

    Args:
      user_emb: [n_users, d] float.
      item_emb: [n_items, d] float.
      eval_set: from `make_eval_set`.
      ks: cut-offs, static; each in [1, n_items].

    Returns:
      Dict with keys `METRIC_NAMES`, each float32 [len(ks)]. All zeros if no user is evaluated.
    """

    def score_block(users):
        return user_emb[users] @ item_emb.T  # [B, n_items]

    return _rank_metrics_impl(score_block, eval_set, ks)


def rank_metrics_from_scores(
    score_fn, eval_set: EvalSet, ks: tuple[int, ...] = (20,)
) -> dict[str, jax.Array]:
    """As `rank_metrics`, for any scorer `score_fn(user_ids int32 [B]) -> [B, n_items]`.

    Not jitted itself (it takes a callable); call it inside your own jit.
    """
    return _rank_metrics_impl(score_fn, eval_set, ks)


@functools.partial(jax.jit, static_argnames="ks")
def population_rank_metrics(
    user_emb: jax.Array, item_emb: jax.Array, eval_set: EvalSet, ks: tuple[int, ...] = (20,)
) -> dict[str, jax.Array]:
    """`rank_metrics` over a population. user_emb [P, U, d], item_emb [P, I, d] -> dict of [P, len(ks)]."""
    fn = functools.partial(rank_metrics, ks=ks)
    return jax.vmap(fn, in_axes=(0, 0, None))(user_emb, item_emb, eval_set)
