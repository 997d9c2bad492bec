"""Host-side (numpy) containers for interaction data. The contract between `data` and the rest."""

from __future__ import annotations

import dataclasses

import numpy as np


class DataError(ValueError):
    """Bad input data. The message is one line naming the file, line or key and what is wrong."""


@dataclasses.dataclass(frozen=True)
class Interactions:
    """A set of (user, item) interactions with dense ids. All arrays have the same length n.

    users: int32 [n] in [0, n_users); items: int32 [n] in [0, n_items);
    ratings: float32 [n] (1.0 where the source has none); timestamps: int64 [n] (0 where none).
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @classmethod
    def empty(cls) -> Interactions:
        return cls(
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
        )


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A preprocessed, split dataset. Users are 0..n_users-1 and items 0..n_items-1.

    user_ids / item_ids map dense ids back to raw ids (str arrays).
    user_features / item_features: column name -> array of length n_users / n_items (str or
    numeric; missing values are ""). Canonical names where the source has them: items "title",
    "year", "genres" (genres joined with ", "); users "age", "gender", "occupation".
    cold_items: int32 indices of items held out of training entirely (cold-start split), else empty.
    stats: counts reported by preprocessing (raw rows, duplicates collapsed, filtered, ...).
    """

    name: str
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    item_features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    cold_items: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))
    stats: dict = dataclasses.field(default_factory=dict)
