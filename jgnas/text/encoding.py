"""Sentence vectors from a loaded encoder, with length bucketing so only a few shapes compile."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jgnas.text.loader import Encoder

# Token lengths are padded up to one of these (capped by, and always including, max_length).
BUCKETS = (16, 32, 64, 128, 256)


def buckets_for(max_length: int) -> tuple[int, ...]:
    """The padded lengths used for an encoder truncating at `max_length` tokens."""
    return tuple(sorted({b for b in BUCKETS if b < max_length} | {max_length}))


def tokenize(encoder: Encoder, texts: Sequence[str | None]) -> list[tuple[list[int], list[int]]]:
    """Token ids and type ids per text, truncated, unpadded. None is treated as ""."""
    encodings = encoder.tokenizer.encode_batch(["" if t is None else str(t) for t in texts])
    return [(e.ids, e.type_ids) for e in encodings]


def _batch_rows(n: int, batch_size: int) -> int:
    """Rows to pad a batch of n to: a power of two up to batch_size, so shapes stay few while a
    handful of texts does not pay for a full batch."""
    return min(batch_size, 1 << max(0, (n - 1).bit_length()))


def encode(encoder: Encoder, texts: Sequence[str | None], batch_size: int = 64) -> np.ndarray:
    """Encodes texts into (by default L2-normalised, mean-pooled) sentence vectors.

    Texts are tokenized (truncated at `encoder.max_length`), sorted by length, grouped into
    batches whose token axis is padded to the next bucket in `buckets_for(max_length)` and whose
    row axis is padded to a power of two <= batch_size, run through the jitted forward, and put
    back in input order. Padding is masked, so vectors do not depend on the batch or bucket.

    Args:
      encoder: from `load_encoder`.
      texts: strings; None and "" encode as "" ([CLS] [SEP]).
      batch_size: most rows per forward call.

    Returns:
      float32 [len(texts), encoder.dim].
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokens = tokenize(encoder, texts)
    out = np.zeros((len(tokens), encoder.dim), np.float32)
    if not tokens:
        return out
    lengths = np.array([len(ids) for ids, _ in tokens])
    order = np.argsort(lengths, kind="stable")
    buckets = np.array(buckets_for(encoder.max_length))
    bucket_of = buckets[np.searchsorted(buckets, lengths[order])]  # [n] in sorted order
    start = 0
    while start < len(order):
        t = int(bucket_of[start])
        stop = start + 1
        while stop < len(order) and stop - start < batch_size and bucket_of[stop] == t:
            stop += 1
        rows = order[start:stop]
        b = _batch_rows(len(rows), batch_size)
        ids = np.full((b, t), encoder.config.pad_token_id, np.int32)
        type_ids = np.zeros((b, t), np.int32)
        mask = np.zeros((b, t), np.int32)
        for r, i in enumerate(rows):
            n_tok = lengths[i]
            ids[r, :n_tok], type_ids[r, :n_tok] = tokens[i]
            mask[r, :n_tok] = 1
        pooled = encoder.forward_fn(encoder.params, ids, type_ids, mask)  # [b, d]
        out[rows] = np.asarray(pooled)[: len(rows)]
        start = stop
    return out
