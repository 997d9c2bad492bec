"""Seeded train/valid/test splits of deduplicated interactions.

Each split labels every interaction 0 (train), 1 (valid) or 2 (test) and so loses and duplicates
nothing; since (user, item) pairs are distinct beforehand, no pair is in two parts. All randomness
comes from `np.random.default_rng(seed)`.

Rules (per user with n interactions):
- ratio: shuffled; n_valid = round(r_valid * n), n_test = round(r_test * n), each at least 1
  when its ratio is > 0, the rest to train (at least 1). Users with n < 1 + (#parts with ratio
  > 0), i.e. n < 3 by default, keep everything in train.
- temporal: the same counts, taken chronologically: the earliest go to train, the latest to test.
- loo: the latest interaction to test, the second latest to valid; users with n < 3 keep all
  in train. Timestamp ties are broken by a seeded shuffle.
- cold_item: round(cold_item_frac * n_items) items, drawn at random, are held out of training
  entirely; the first half of them (floor) have all their interactions in valid, the rest in
  test. The remaining (warm) interactions are split by the ratio rule.
- Afterwards valid/test rows of users with no train interaction are dropped from evaluation and
  counted (this only happens in cold_item, for users who saw only cold items).
"""

from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST, DROPPED = 0, 1, 2, -1


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)  # half up: np.round's half-even is surprising here


def _positions(users: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rank of each interaction within its user along `order` (a permutation grouping users)."""
    n = users.shape[0]
    us = users[order]
    new = np.ones(n, bool)
    new[1:] = us[1:] != us[:-1]
    start = np.flatnonzero(new)
    first = np.repeat(start, np.diff(np.append(start, n)))
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n) - first
    return pos


def _order(users, timestamps, rng, chronological: bool) -> np.ndarray:
    """A permutation grouping users, random within a user (or by time, ties random)."""
    perm = rng.permutation(users.shape[0])
    if chronological:
        return perm[np.lexsort((timestamps[perm], users[perm]))]
    return perm[np.argsort(users[perm], kind="stable")]


def holdout_counts(counts: np.ndarray, ratios) -> tuple[np.ndarray, np.ndarray]:
    """Per-user numbers of valid and test interactions under the ratio rule (module docstring).

    Args:
      counts: int [U] interactions per user.
      ratios: (train, valid, test) fractions.

    Returns:
      (n_valid, n_test), int64 [U] each.
    """
    _, rv, rt = ratios
    n = counts.astype(np.int64)
    nv = np.where(rv > 0, np.maximum(1, _round(rv * n)), 0)
    nt = np.where(rt > 0, np.maximum(1, _round(rt * n)), 0)
    small = n < 1 + int(rv > 0) + int(rt > 0)
    nv, nt = np.where(small, 0, nv), np.where(small, 0, nt)
    # Keep at least one train interaction: trim the larger hold-out part first (never below 1,
    # which is always possible once n >= 1 + #hold-out parts).
    while True:
        over = nv + nt > np.maximum(n - 1, 0)
        if not over.any():
            return nv, nt
        dec_v = over & (nv >= nt) & (nv > 1)
        dec_t = over & ~dec_v & (nt > 1)
        nv, nt = nv - dec_v, nt - dec_t


def _label(users, order, n_valid, n_test, counts) -> np.ndarray:
    pos = _positions(users, order)
    n_train = (counts - n_valid - n_test)[users]
    labels = np.where(pos < n_train, TRAIN, np.where(pos < n_train + n_valid[users], VALID, TEST))
    return labels.astype(np.int8)


def split_ratio(users, timestamps, n_users: int, ratios, seed: int, chronological=False):
    """Per-user ratio split (random, or chronological for the temporal split).

    Args:
      users: int [n] dense user ids; timestamps: int64 [n].
      n_users: number of users.
      ratios: (train, valid, test).
      seed: seed of the shuffle (and of timestamp ties).
      chronological: order each user's interactions by time instead of at random.

    Returns:
      int8 [n] labels (TRAIN, VALID, TEST).
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(users, minlength=n_users)
    nv, nt = holdout_counts(counts, ratios)
    return _label(users, _order(users, timestamps, rng, chronological), nv, nt, counts)


def split_loo(users, timestamps, n_users: int, seed: int):
    """Leave-one-out: per user, latest to test, second latest to valid (n >= 3), rest train.

    Args:
      users: int [n]; timestamps: int64 [n]; n_users: number of users; seed: tie-break seed.

    Returns:
      int8 [n] labels.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(users, minlength=n_users)
    one = (counts >= 3).astype(np.int64)
    return _label(users, _order(users, timestamps, rng, True), one, one, counts)


def split_cold_item(users, items, timestamps, n_users, n_items, ratios, cold_frac, seed):
    """Cold-start items: hold out a fraction of items entirely; split the rest by ratio.

    Args:
      users, items: int [n]; timestamps: int64 [n]; n_users, n_items: id space sizes.
      ratios: (train, valid, test) for the warm interactions.
      cold_frac: fraction of items to hold out.
      seed: seed of the item draw and of the warm split.

    Returns:
      (labels int8 [n], cold_items int32 [k] sorted).
    """
    rng = np.random.default_rng(seed)
    k = int(_round(np.asarray(cold_frac * n_items)))
    k = min(max(k, 1), n_items - 1) if n_items >= 2 else 0
    cold = rng.permutation(n_items)[:k]
    part = np.full(n_items, TRAIN, np.int8)
    part[cold[: k // 2]] = VALID
    part[cold[k // 2 :]] = TEST
    labels = part[items]
    warm = np.flatnonzero(labels == TRAIN)
    key_warm = int(rng.integers(2**31))
    labels[warm] = split_ratio(users[warm], timestamps[warm], n_users, ratios, key_warm)
    return labels, np.sort(cold).astype(np.int32)


def drop_untrained(users, labels, n_users: int) -> np.ndarray:
    """Marks valid/test rows of users with no train row as DROPPED.

    Args:
      users: int [n]; labels: int8 [n]; n_users: number of users.

    Returns:
      The new labels.
    """
    has_train = np.bincount(users[labels == TRAIN], minlength=n_users) > 0
    return np.where((labels != TRAIN) & ~has_train[users], DROPPED, labels).astype(np.int8)
