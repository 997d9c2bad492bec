"""Tiny random datasets for the engine tests (graph, ops, model, train)."""

from __future__ import annotations

import numpy as np

from jgnas.data.types import Dataset, Interactions


def interactions(users, items, ratings=None) -> Interactions:
    """Interactions from id lists (ratings default to 1, timestamps to 0)."""
    users = np.asarray(users, np.int32)
    items = np.asarray(items, np.int32)
    ratings = (
        np.ones(len(users), np.float32) if ratings is None else np.asarray(ratings, np.float32)
    )
    return Interactions(users, items, ratings, np.zeros(len(users), np.int64))


def tiny_dataset(
    seed: int = 0,
    n_users: int = 12,
    n_items: int = 15,
    per_user: tuple[int, int] = (5, 9),
    isolated_items: int = 0,
) -> Dataset:
    """A random dataset with dense ids: each user draws 5..8 distinct items, one goes to valid,
    one to test, the rest to train (so every user trains and validates). Ratings are 1..5.

    The last `isolated_items` items are never drawn (isolated nodes of the graph).
    """
    rng = np.random.default_rng(seed)
    split = {"train": ([], [], []), "valid": ([], [], []), "test": ([], [], [])}
    pool = n_items - isolated_items
    for u in range(n_users):
        k = int(rng.integers(per_user[0], per_user[1]))
        items = rng.choice(pool, size=min(k, pool), replace=False)
        for pos, i in enumerate(items):
            part = "valid" if pos == 0 else "test" if pos == 1 else "train"
            split[part][0].append(u)
            split[part][1].append(int(i))
            split[part][2].append(float(rng.integers(1, 6)))
    parts = {name: interactions(*cols) for name, cols in split.items()}
    return Dataset(
        name=f"tiny{seed}",
        n_users=n_users,
        n_items=n_items,
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        user_ids=np.asarray([f"u{u}" for u in range(n_users)]),
        item_ids=np.asarray([f"i{i}" for i in range(n_items)]),
    )
