"""Synthetic stand-ins for Gowalla, Yelp2018 and Amazon-Book at their published sizes.

The sizes are those of the LightGCN paper (He et al., SIGIR 2020, table 1): gowalla 29,858 users,
40,981 items, 1,027,370 interactions; yelp2018 31,668 / 38,048 / 1,561,406; amazon-book
52,643 / 91,599 / 2,984,108. The graphs are random: they reproduce the sizes and a heavy-tailed
degree shape, not the real data, so they measure time and memory, never quality.

Construction (vectorised numpy, deterministic by seed; the full amazon-book size takes seconds):
- degrees: every user and every item gets a degree `min_degree + lognormal share of the rest`
  (the real files are 10-cores), apportioned so that both sides sum exactly to the interaction
  count, capped at half the other side;
- edges: the configuration model. The items' degree stubs are shuffled and dealt to the users'
  stubs, so each user's items are drawn by popularity (an item's chance is its degree); the few
  repeated (user, item) pairs are swapped with random other edges until none is left, which keeps
  both degree sequences exact. So each user's items are a popularity draw without replacement;
- split: about `test_fraction` of each user's items go to test.txt, the rest to train.txt, and
  every item keeps at least one train interaction, so the loader (`split: presplit`) drops nothing
  and counts exactly the users, items and interactions asked for.

Files: `train.txt` and `test.txt` in the LightGCN format (`user item item ...` per line, the
`lightgcn` format of `jgnas.data.readers`), and `synth.json` (what was asked, and the counts).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np

from jgnas.data.types import DataError, Interactions

__all__ = ["LIKE", "Like", "StandIn", "default_name", "stand_in", "write_stand_in"]

# Written into synth.json; a change in the construction bumps it (the bench's cache checks it).
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Like:
    """The published size of a dataset, and the shape of its stand-in's degrees.

    users, items, interactions: LightGCN's table 1. min_degree: every user and item has at least
    this many interactions (the real files are 10-cores). user_sigma, item_sigma: lognormal shape
    of the degree above the minimum (larger: heavier tail). test_fraction: per-user share of test.
    """

    users: int
    items: int
    interactions: int
    min_degree: int = 10
    user_sigma: float = 1.0
    item_sigma: float = 1.2
    test_fraction: float = 0.2


LIKE: dict[str, Like] = {
    "gowalla": Like(29_858, 40_981, 1_027_370),
    "yelp2018": Like(31_668, 38_048, 1_561_406),
    "amazon-book": Like(52_643, 91_599, 2_984_108),
}


@dataclasses.dataclass(frozen=True)
class StandIn:
    """A generated stand-in: dense ids, every user and item present in train."""

    n_users: int
    n_items: int
    train: Interactions
    test: Interactions


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Non-negative ints proportional to weights that sum exactly to total (largest remainder)."""
    q = total * weights / weights.sum()
    out = np.floor(q).astype(np.int64)
    short = int(total - out.sum())
    if short:
        out[np.argsort(out - q, kind="stable")[:short]] += 1  # largest fractional parts first
    return out


def _degrees(n: int, total: int, lo: int, hi: int, sigma: float, rng) -> np.ndarray:
    """n degrees in [lo, hi] summing to total: lo plus a lognormal share of the rest."""
    w = rng.lognormal(0.0, sigma, n)
    d = lo + _apportion(total - n * lo, w)
    while (over := d > hi).any():  # water-filling: a capped degree's excess goes to the others
        excess = int((d[over] - hi).sum())
        d[over] = hi
        free = d < hi
        d[free] += _apportion(excess, w[free])
    return d


def _first_repeats(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Positions of the edges whose (user, item) pair occurs at an earlier position too."""
    key = users * n_items + items
    order = np.argsort(key, kind="stable")
    sk = key[order]
    return order[1:][sk[1:] == sk[:-1]]


def _edges(d_user, d_item, rng, max_rounds: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The configuration model with exact degrees and no repeated pair (see the module doc)."""
    n_items = d_item.shape[0]
    users = np.repeat(np.arange(d_user.shape[0], dtype=np.int64), d_user)
    items = rng.permutation(np.repeat(np.arange(n_items, dtype=np.int64), d_item))
    for _ in range(max_rounds):
        rep = _first_repeats(users, items, n_items)
        if rep.size == 0:
            return users, items
        # Swap each repeat's item with a random edge's; a partner that is itself a repeat, or is
        # drawn twice, waits for the next round (the swaps of one round must not overlap).
        partner = rng.integers(0, users.shape[0], rep.shape[0])
        ok = ~np.isin(partner, rep)
        _, first = np.unique(partner, return_index=True)
        ok &= np.isin(np.arange(rep.shape[0]), first)
        a, b = rep[ok], partner[ok]
        items[a], items[b] = items[b], items[a].copy()
    raise DataError(
        f"synth: repeated pairs left after {max_rounds} rounds of swaps; the graph is too dense "
        "for its degrees (use a larger --scale)"
    )


def _split(users, items, n_items: int, test_fraction: float, rng) -> np.ndarray:
    """Bool [E]: the test edges; about test_fraction per user, and never an item's last train edge."""
    n = users.shape[0]
    # One random edge of each item is its anchor and stays in train.
    order = np.lexsort((rng.random(n), items))
    first = np.ones(n, bool)
    first[1:] = items[order][1:] != items[order][:-1]
    anchor = np.zeros(n, bool)
    anchor[order[first]] = True
    deg = np.bincount(users, minlength=int(users.max()) + 1)
    want = np.floor(deg * test_fraction + 0.5).astype(np.int64)
    # Per user, the non-anchor edges in random order; the first `want` go to test.
    order = np.lexsort((rng.random(n), anchor, users))
    u = users[order]
    rank = np.arange(n) - np.searchsorted(u, u, side="left")
    test = np.zeros(n, bool)
    test[order] = (rank < want[u]) & ~anchor[order]
    return test


def _interactions(users: np.ndarray, items: np.ndarray) -> Interactions:
    order = np.lexsort((items, users))
    n = users.shape[0]
    return Interactions(
        users=users[order].astype(np.int32),
        items=items[order].astype(np.int32),
        ratings=np.ones(n, np.float32),
        timestamps=np.zeros(n, np.int64),
    )


def stand_in(like: str | Like, seed: int = 0, scale: float = 1.0) -> StandIn:
    """A synthetic dataset with the size and a heavy-tailed degree shape of `like`.

    Args:
      like: "gowalla", "yelp2018", "amazon-book" (`LIKE`), or a `Like`.
      seed: seed of `np.random.default_rng`; equal seeds give equal graphs.
      scale: users, items and interactions are each multiplied by it (rounded), so the mean
        degrees stay those of the real data; e.g. 0.01 for tests.

    Returns:
      The train and test interactions.
    """
    shape = _like(like)
    if not 0 < scale <= 1:
        raise DataError(f"synth: --scale must be in (0, 1], got {scale}")
    n_users = max(round(shape.users * scale), 1)
    n_items = max(round(shape.items * scale), 1)
    n = round(shape.interactions * scale)
    # At a small scale the graph gets denser; the minimum degree shrinks so that it stays drawable.
    lo = max(min(shape.min_degree, n // (2 * n_users), n // (2 * n_items)), 1)
    hi_user, hi_item = max(n_items // 2, lo), max(n_users // 2, lo)
    if not (n_users * lo <= n <= n_users * hi_user and n_items * lo <= n <= n_items * hi_item):
        raise DataError(
            f"synth: {n} interactions do not fit {n_users} users x {n_items} items at "
            f"scale {scale}; use a larger --scale"
        )
    rng = np.random.default_rng(seed)
    d_user = _degrees(n_users, n, lo, hi_user, shape.user_sigma, rng)
    d_item = _degrees(n_items, n, lo, hi_item, shape.item_sigma, rng)
    users, items = _edges(d_user, d_item, rng)
    test = _split(users, items, n_items, shape.test_fraction, rng)
    return StandIn(
        n_users=n_users,
        n_items=n_items,
        train=_interactions(users[~test], items[~test]),
        test=_interactions(users[test], items[test]),
    )


def _like(like: str | Like) -> Like:
    if isinstance(like, Like):
        return like
    if like not in LIKE:
        raise DataError(f"synth: unknown dataset {like!r}; use one of {', '.join(LIKE)}")
    return LIKE[like]


def _lightgcn_text(x: Interactions, n_users: int) -> str:
    """`user item item ...` per user with at least one interaction (x is sorted by user)."""
    cuts = np.searchsorted(x.users, np.arange(1, n_users))
    rows = np.split(x.items, cuts)
    return "".join(
        f"{u} {' '.join(map(str, row.tolist()))}\n" for u, row in enumerate(rows) if row.size
    )


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_stand_in(
    out: str | os.PathLike, like: str | Like, seed: int = 0, scale: float = 1.0
) -> dict:
    """Generates `stand_in(like, seed, scale)` and writes train.txt, test.txt and synth.json.

    Each file is written atomically; synth.json comes last, so a folder with one is complete.

    Args:
      out: the folder (created).
      like, seed, scale: as for `stand_in`.

    Returns:
      The content of synth.json: what was asked and the counts written.
    """
    x = stand_in(like, seed, scale)
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "train.txt", _lightgcn_text(x.train, x.n_users))
    _write_atomic(folder / "test.txt", _lightgcn_text(x.test, x.n_users))
    meta = {
        "like": like if isinstance(like, str) else dataclasses.asdict(like),
        "seed": seed,
        "scale": scale,
        "version": VERSION,
        "users": x.n_users,
        "items": x.n_items,
        "interactions": len(x.train) + len(x.test),
        "train": len(x.train),
        "test": len(x.test),
    }
    _write_atomic(folder / "synth.json", json.dumps(meta, indent=2) + "\n")
    return meta


def default_name(like: str, seed: int = 0, scale: float = 1.0) -> str:
    """The folder name of a stand-in under the data dir: never the real dataset's own name."""
    return f"{like}-synth" + (f"-s{seed}" if seed else "") + (f"-x{scale:g}" if scale != 1 else "")
