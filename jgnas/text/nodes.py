"""Frozen text vectors for the users and items of a dataset."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jgnas.data.types import Dataset
from jgnas.text.cache import encode_cached
from jgnas.text.loader import Encoder, load_encoder
from jgnas.text.templates import ITEM_TEMPLATE, USER_TEMPLATE, as_text, render

# Applied to the "gender" column by `user_features_for_text` (ml-100k stores "M"/"F").
GENDER_WORDS = {"m": "man", "f": "woman", "male": "man", "female": "woman"}


def user_features_for_text(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """User columns made readable for USER_TEMPLATE: gender codes "M"/"F" become "man"/"woman"
    (GENDER_WORDS, case-insensitive); other values and columns pass through unchanged."""
    out = dict(features)
    if "gender" in out:
        out["gender"] = np.array(
            [GENDER_WORDS.get(as_text(g).lower(), as_text(g)) for g in out["gender"]], dtype=object
        )
    return out


def node_text_features(
    dataset: Dataset,
    encoder: Encoder | None = None,
    item_template: str | None = ITEM_TEMPLATE,
    user_template: str | None = USER_TEMPLATE,
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen text vectors for every user and item of a dataset (cached on disk).

    Args:
      dataset: its `user_features` / `item_features` fill the templates; user genders pass
        through `user_features_for_text`.
      encoder: from `load_encoder`; None loads the default (all-MiniLM-L6-v2).
      item_template, user_template: see `render`; None gives zero vectors for that side (for
        datasets without such features).
      cache_dir: see `encode_cached`.

    Returns:
      (user_vecs float32 [n_users, D], item_vecs float32 [n_items, D]).
    """
    encoder = encoder if encoder is not None else load_encoder()

    def side(template, features, n, label):
        if template is None:
            return np.zeros((n, encoder.dim), np.float32)
        texts = render(template, features, n)
        return encode_cached(encoder, texts, cache_dir, namespace=f"{label}:{template}")

    users = side(
        user_template, user_features_for_text(dataset.user_features), dataset.n_users, "user"
    )
    items = side(item_template, dataset.item_features, dataset.n_items, "item")
    return users, items
