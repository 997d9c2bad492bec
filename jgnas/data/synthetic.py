"""Synthetic bipartite interaction graphs with power-law user activity and item popularity."""

from __future__ import annotations

import numpy as np

from jgnas.data.types import DataError, Interactions


def _zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    # Ranks are shuffled so that id order carries no popularity signal.
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return rng.permutation(w / w.sum())


def _unique(x: np.ndarray) -> np.ndarray:
    # Sort-based: numpy's default hash-based unique is several times slower on int64 here.
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if x.size else x


def _user_counts(n_users, n_items, n, alpha, min_per_user, rng) -> np.ndarray:
    """Interactions per user: min_per_user plus a power-law share of the rest, capped at n_items."""
    counts = np.full(n_users, min_per_user, np.int64)
    w = _zipf_weights(n_users, alpha, rng)
    left = n - counts.sum()
    while left > 0:  # a few rounds: only users at the cap push their overflow onward
        room = n_items - counts
        p = np.where(room > 0, w, 0.0)
        counts += np.minimum(rng.multinomial(left, p / p.sum()), room)
        left = n - counts.sum()
    return counts


def synthetic(
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 0,
    alpha: float = 0.8,
    min_per_user: int = 3,
) -> Interactions:
    """A random implicit-feedback graph with exactly `n_interactions` distinct (user, item) pairs.

    User activity and item popularity follow Zipf-like laws with exponent `alpha` (weights
    rank^-alpha, ranks shuffled). Each user first gets a count (min_per_user + a power-law share
    of the rest, at most n_items), then draws that many distinct items by popularity in a few
    vectorised rounds (oversample, dedup, trim); stubborn deficits are filled uniformly.
    Some items may end up with no interactions. Ratings are uniform in 1..5, timestamps uniform
    in [0, 10^9), so threshold, temporal and leave-one-out splits have something to work on.

    Args:
      n_users, n_items: id space sizes (users 0..n_users-1, items 0..n_items-1).
      n_interactions: number of distinct pairs; must lie in
        [n_users * min_per_user, n_users * n_items].
      seed: seed of `np.random.default_rng`.
      alpha: power-law exponent (0: uniform).
      min_per_user: interactions every user has at least.

    Returns:
      Interactions sorted by (user, item).
    """
    lo, hi = n_users * min(min_per_user, n_items), n_users * n_items
    if not lo <= n_interactions <= hi:
        raise DataError(
            f"synthetic: n_interactions={n_interactions} must be in [{lo}, {hi}] for "
            f"{n_users} users, {n_items} items, min_per_user={min_per_user}"
        )
    rng = np.random.default_rng(seed)
    counts = _user_counts(n_users, n_items, n_interactions, alpha, min(min_per_user, n_items), rng)
    pop = _zipf_weights(n_items, alpha, rng)
    have = np.zeros(n_users, np.int64)
    mass = np.zeros(n_users)  # popularity mass of each user's items so far
    keys = np.zeros(0, np.int64)  # sorted, distinct user * n_items + item
    for rnd in range(30):
        need = counts - have
        if not need.any():
            break
        # Heavy users whose popular items are taken fall back to uniform draws after a few rounds.
        uniform = rnd >= 6
        hit = 1.0 - (have / n_items if uniform else mass)  # chance a draw is new
        draw = np.ceil(need / np.clip(hit, 0.05, 1.0) * 1.2 + 2).astype(np.int64) * (need > 0)
        u = np.repeat(np.arange(n_users, dtype=np.int64), draw)
        i = rng.choice(n_items, size=u.shape[0], p=None if uniform else pop)
        new = _unique(u * n_items + i)
        if keys.size:
            pos = np.minimum(np.searchsorted(keys, new), keys.size - 1)
            new = new[keys[pos] != new]
        # Keep a random subset of each user's new pairs, as many as it still needs.
        nu = new // n_items
        order = np.lexsort((rng.random(new.shape[0]), nu))
        new, nu = new[order], nu[order]
        rank = np.arange(nu.shape[0]) - np.searchsorted(nu, nu, side="left")
        keys = np.sort(np.concatenate([keys, new[rank < need[nu]]]))
        have = np.bincount(keys // n_items, minlength=n_users)
        mass = np.bincount(keys // n_items, weights=pop[keys % n_items], minlength=n_users)
    need = counts - have
    for user in np.flatnonzero(need):  # rare fallback: one loop over short users, not pairs
        taken = keys[keys // n_items == user] % n_items
        free = np.setdiff1d(np.arange(n_items), taken)
        pick = rng.choice(free, size=need[user], replace=False)
        keys = np.concatenate([keys, user * n_items + pick])
    keys = np.sort(keys)
    n = keys.shape[0]
    return Interactions(
        users=(keys // n_items).astype(np.int32),
        items=(keys % n_items).astype(np.int32),
        ratings=rng.integers(1, 6, n).astype(np.float32),
        timestamps=rng.integers(0, 10**9, n).astype(np.int64),
    )
