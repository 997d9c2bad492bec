"""The data section of an experiment config, and where datasets live on disk."""

from __future__ import annotations

import dataclasses
import os
import pathlib

from jgnas.data.readers import format_names
from jgnas.data.types import DataError

# Datasets the loader knows by name, with where their files come from when they are missing.
KNOWN_DATASETS: dict[str, str] = {
    "ml-100k": "run `jgnas data fetch ml-100k` (RecBole atomic files), or place u.data, u.user, "
    "u.item from https://files.grouplens.org/datasets/movielens/ml-100k.zip into {dir}",
    "ml-1m": "place ratings.dat, users.dat, movies.dat from "
    "https://files.grouplens.org/datasets/movielens/ml-1m.zip into {dir}",
    "gowalla": "place train.txt and test.txt from the LightGCN repo "
    "(github.com/gusye1234/LightGCN-PyTorch, data/gowalla/) into {dir}",
    "yelp2018": "place train.txt and test.txt from the LightGCN repo "
    "(github.com/gusye1234/LightGCN-PyTorch, data/yelp2018/) into {dir}",
    "amazon-book": "place train.txt and test.txt from the LightGCN repo "
    "(github.com/gusye1234/LightGCN-PyTorch, data/amazon-book/) into {dir}",
}
SPLITS = ("ratio", "loo", "temporal", "cold_item", "presplit")
UNKNOWN_POLICIES = ("drop", "fail")


def data_dir() -> pathlib.Path:
    """Root folder for raw datasets and the processed cache.

    The one place in the library that reads `$JGNAS_DATA` (the text-vector cache lives under it
    too): `$JGNAS_DATA` if set, else `~/.cache/jgnas`.

    Returns:
      The folder (not created).
    """
    env = os.environ.get("JGNAS_DATA")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "jgnas"


def _one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        raise DataError(
            f"data.{key}: {value!r} is not allowed; use one of {', '.join(map(str, allowed))}"
        )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset to load and how to preprocess and split it.

    Attributes:
      name: a known dataset (ml-100k, ml-1m, gowalla, yelp2018, amazon-book), "synthetic", or any
        label for data under `path`.
      path: folder or file holding the data; None means `data_dir() / name`.
      format: a registered format (built in: recbole, movielens, lightgcn, csv; see
        `jgnas.data.readers`), or auto (detected from the files present).
      rating_threshold: keep only interactions with rating >= threshold (None keeps all).
      kcore: iteratively drop users and items with fewer than kcore interactions (0: off).
      split: ratio, loo, temporal, cold_item or presplit (see `jgnas.data.splits`).
      ratios: (train, valid, test) fractions for ratio, temporal and the warm part of cold_item.
      cold_item_frac: fraction of items held out of training entirely by the cold_item split.
      seed: seed of every random choice the split makes.
      unknown: what to do with valid/test rows of pre-split files whose user or item is not in
        train: "drop" (counted in stats) or "fail".
      valid_from_train: pre-split data without a valid file: move this per-user fraction of the
        train rows to valid (ratio rule); 0 leaves valid empty.
      presplit_files: explicit (train, test) or (train, valid, test) files, relative to `path`.
      user_col, item_col, rating_col, timestamp_col: csv columns, by header name or 0-based index.
      sep: csv field separator; None means tab for .tsv files and "," otherwise.
      header: whether csv files start with a header row.
      encoding: text encoding of csv files and RecBole `.inter` files.
      synthetic_users, synthetic_items, synthetic_interactions: size of the synthetic graph.
      synthetic_alpha: power-law exponent of synthetic item popularity and user activity.
    """

    name: str = "ml-100k"
    path: str | None = None
    format: str = "auto"
    rating_threshold: float | None = None
    kcore: int = 0
    split: str = "ratio"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    cold_item_frac: float = 0.2
    seed: int = 0
    unknown: str = "drop"
    valid_from_train: float = 0.1
    presplit_files: tuple[str, ...] = ()
    user_col: str | int = "user_id"
    item_col: str | int = "item_id"
    rating_col: str | int | None = None
    timestamp_col: str | int | None = None
    sep: str | None = None
    header: bool = True
    encoding: str = "utf-8"
    synthetic_users: int = 1000
    synthetic_items: int = 2000
    synthetic_interactions: int = 20000
    synthetic_alpha: float = 0.8

    def __post_init__(self):
        # YAML/JSON give lists; keep the frozen config hashable and comparable.
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        object.__setattr__(self, "presplit_files", tuple(str(f) for f in self.presplit_files))
        if self.path is None and self.name not in KNOWN_DATASETS and self.name != "synthetic":
            allowed = ", ".join([*KNOWN_DATASETS, "synthetic"])
            raise DataError(
                f"data.name: unknown dataset {self.name!r} without data.path; use one of {allowed} or set data.path"
            )
        _one_of("format", self.format, format_names())  # read now: plugins may have registered
        _one_of("split", self.split, SPLITS)
        _one_of("unknown", self.unknown, UNKNOWN_POLICIES)
        r = self.ratios
        if len(r) != 3 or min(r) < 0 or r[0] <= 0 or abs(sum(r) - 1.0) > 1e-6:
            raise DataError(
                f"data.ratios: {r} must be 3 fractions (train > 0, valid >= 0, test >= 0) summing to 1"
            )
        if not 0.0 < self.cold_item_frac < 1.0:
            raise DataError(f"data.cold_item_frac: {self.cold_item_frac} must be in (0, 1)")
        if not 0.0 <= self.valid_from_train < 1.0:
            raise DataError(f"data.valid_from_train: {self.valid_from_train} must be in [0, 1)")
        if not isinstance(self.kcore, int) or self.kcore < 0:
            raise DataError(f"data.kcore: {self.kcore!r} must be an integer >= 0")
        if not isinstance(self.seed, int):
            raise DataError(f"data.seed: {self.seed!r} must be an integer")
        if len(self.presplit_files) not in (0, 2, 3):
            raise DataError(
                f"data.presplit_files: {self.presplit_files} must name (train, test) or (train, valid, test)"
            )
        if not self.header:
            for key in ("user_col", "item_col", "rating_col", "timestamp_col"):
                v = getattr(self, key)
                if v is not None and not isinstance(v, int):
                    raise DataError(
                        f"data.{key}: {v!r} must be a 0-based column index when data.header is false"
                    )
        if self.sep == "":
            raise DataError(
                "data.sep: must not be empty; use None for auto, or e.g. ',', '\\t', '::'"
            )
        for key in ("synthetic_users", "synthetic_items", "synthetic_interactions"):
            if int(getattr(self, key)) < 1:
                raise DataError(f"data.{key}: {getattr(self, key)} must be >= 1")
        if self.synthetic_alpha < 0:
            raise DataError(f"data.synthetic_alpha: {self.synthetic_alpha} must be >= 0")

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }
