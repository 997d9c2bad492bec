"""Vectorised preprocessing on integer-coded interactions: threshold, dedup, k-core, id remap."""

from __future__ import annotations

import numpy as np


def collapse_duplicates(
    users: np.ndarray, items: np.ndarray, ratings: np.ndarray, timestamps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapses repeated (user, item) pairs into one interaction.

    The kept row is the pair's latest one (by timestamp, then position); it gets the pair's latest
    timestamp and its maximum rating.

    Args:
      users, items: int [n] codes.
      ratings: float [n]; timestamps: int64 [n].

    Returns:
      (keep, ratings, timestamps): int64 indices of the kept rows (ascending) and their collapsed
      ratings and timestamps.
    """
    n = users.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), ratings[:0], timestamps[:0]
    key = users.astype(np.int64) * (int(items.max()) + 1) + items
    sk = np.sort(key)
    if not (sk[1:] == sk[:-1]).any():  # the common case, at a fraction of the lexsort's cost
        return np.arange(n), ratings, timestamps
    order = np.lexsort((np.arange(n), timestamps, key))  # by pair, then time, then position
    sk = key[order]
    start = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]]))
    last = np.concatenate([start[1:], [n]]) - 1
    keep = order[last]
    r = np.maximum.reduceat(ratings[order], start)
    t = timestamps[keep]
    back = np.argsort(keep)
    return keep[back], r[back], t[back]


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Iterative k-core: keeps interactions whose user and item both have >= k kept interactions.

    Args:
      users, items: int [n] codes (non-negative).
      k: minimum degree; k <= 1 keeps everything.

    Returns:
      bool [n] mask of the interactions in the k-core.
    """
    keep = np.ones(users.shape[0], bool)
    if k <= 1:
        return keep
    while True:
        du = np.bincount(users[keep], minlength=int(users.max(initial=-1)) + 1)
        di = np.bincount(items[keep], minlength=int(items.max(initial=-1)) + 1)
        new = keep & (du[users] >= k) & (di[items] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


def sort_vocab(vocab: np.ndarray) -> np.ndarray:
    """Order for raw id strings: numeric when every id is a plain integer, else lexicographic.

    Args:
      vocab: [m] distinct raw ids (str or int).

    Returns:
      int64 [m] permutation putting `vocab` in id order.
    """
    if vocab.dtype.kind in "iu":
        return np.argsort(vocab, kind="stable")
    try:
        as_int = vocab.astype(np.int64)
        if np.array_equal(as_int.astype(str), vocab):
            return np.argsort(as_int, kind="stable")
    except (ValueError, OverflowError):
        pass
    return np.arange(vocab.shape[0])
