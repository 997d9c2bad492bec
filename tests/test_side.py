"""jgnas.side: categorical side features of users and items (value ids, pooling weights, columns)."""

from __future__ import annotations

import dataclasses
import re
import time

import numpy as np
import pytest

from jgnas.data import DataConfig, load
from jgnas.data.types import DataError, Dataset, Interactions
from jgnas.side import SideConfig, node_side_features


def _inter(users, items) -> Interactions:
    n = len(users)
    return Interactions(
        np.array(users, np.int32), np.array(items, np.int32), np.ones(n, np.float32),
        np.zeros(n, np.int64),
    )  # fmt: skip


def _dataset(user_features, item_features, n_users=None, n_items=None, name="tiny", **kw):
    n_users = n_users or len(next(iter(user_features.values())))
    n_items = n_items or len(next(iter(item_features.values())))
    return Dataset(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=_inter([0, 1], [0, 1]),
        valid=Interactions.empty(),
        test=Interactions.empty(),
        user_ids=np.arange(n_users).astype(str),
        item_ids=np.arange(n_items).astype(str),
        user_features={k: np.array(v) for k, v in user_features.items()},
        item_features={k: np.array(v) for k, v in item_features.items()},
        **kw,
    )


USERS = {  # 6 users
    "age": ["17", "18", "24", "25", "61", ""],
    "gender": ["M", "F", "M", "F", "M", ""],
    "occupation": ["student", "student", "artist", "writer", "writer", "student"],
}
ITEMS = {  # 7 items
    "title": ["Toy Story", "Heat", "Casino", "Babe", "Se7en", "Fargo", "Up"],
    "year": ["1995", "1995", "1987", "1982", "unknown", "", "1961"],
    "genres": ["Animation, Comedy, Family", "Action|Crime", "Crime, Drama", "Comedy", "Crime",
               "", "Comedy, Comedy"],
}  # fmt: skip
# The vocabulary the rules give for USERS/ITEMS with min_count=2, written out by hand: ages
# 17 | 18 24 | 25 | 61 -> <18, 18-24 (x2), 25-34, 56+; artist is alone: <other>; genres
# Animation, Family, Action, Drama are alone: <other>; 1960s alone: <other>.
VOCAB = [
    "<pad>",
    "user.age=18-24", "user.age=<other>",
    "user.gender=F", "user.gender=M",
    "user.occupation=student", "user.occupation=writer", "user.occupation=<other>",
    "item.genres=Comedy", "item.genres=Crime", "item.genres=<other>",
    "item.year=1980s", "item.year=1990s", "item.year=<other>",
]  # fmt: skip


def _age_band(a: int) -> str:
    for hi, label in ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49")):
        if a < hi:
            return label
    return "50-55" if a < 56 else "56+"


def _brute(user_features, item_features, min_count):
    """Row value sets by plain Python (no jgnas code): [(side, column, label)] per node."""
    rows = []
    for side, table in (("user", user_features), ("item", item_features)):
        n = len(next(iter(table.values())))
        for r in range(n):
            vals = []
            for col, values in table.items():
                v = values[r].strip()
                if col == "title" or not v:
                    continue
                if col == "age":
                    vals.append((side, col, _age_band(int(v))))
                elif col == "year":
                    if v.isdigit():
                        vals.append((side, col, f"{int(v) // 10 * 10}s"))
                elif col == "genres":
                    vals += [(side, col, g) for g in set(re.split(r"\s*\|\s*|\s*,\s+", v))]
                else:
                    vals.append((side, col, v))
            rows.append(vals)
    counts = {}
    for vals in rows:
        for v in vals:
            counts[v] = counts.get(v, 0) + 1
    # A column none of whose values is common enough says nothing but "present": dropped.
    kept = {v[:2] for v, c in counts.items() if c >= min_count}
    folded = [
        sorted(
            {v if counts[v] >= min_count else (*v[:2], "<other>") for v in vals if v[:2] in kept}
        )
        for vals in rows
    ]
    return [[f"{s}.{c}={label}" for s, c, label in vals] for vals in folded]


def _check_rows(sf, expected):
    """ids / weights of each row are exactly the expected value names, ascending, then padding."""
    assert sf.ids.shape[0] == len(expected) and sf.ids.dtype == np.int32
    assert sf.weights.dtype == np.float32
    assert sf.ids.shape[1] == max(len(e) for e in expected)
    for r, names in enumerate(expected):
        want = sorted(sf.vocabulary.index(n) for n in names)
        pad = sf.ids.shape[1] - len(want)
        np.testing.assert_array_equal(sf.ids[r], want + [0] * pad)
        w = [np.float32(1 / len(want))] * len(want) if want else []
        np.testing.assert_array_equal(sf.weights[r], np.array(w + [0] * pad, np.float32))


def test_tiny_matches_hand_vocabulary_and_brute_force():
    sf = node_side_features(_dataset(USERS, ITEMS))
    assert sf.vocabulary == VOCAB and sf.n_values == len(VOCAB)
    expected = _brute(USERS, ITEMS, min_count=2)
    _check_rows(sf, expected)
    # A few rows by hand too: Heat is Action|Crime from 1995 (Action alone -> <other>).
    heat = 6 + 1
    assert [sf.vocabulary[i] for i in sf.ids[heat] if i] == [
        "item.genres=Crime", "item.genres=<other>", "item.year=1990s",
    ]  # fmt: skip
    assert sf.ids.shape[1] == 3
    # Two rare genres of one row (Toy Story: Animation, Family) fold into one <other>, not two.
    toy = len(USERS["age"])
    assert [sf.vocabulary[i] for i in sf.ids[toy]] == [
        "item.genres=Comedy", "item.genres=<other>", "item.year=1990s",
    ]  # fmt: skip
    cols = sf.columns
    assert cols["item"]["title"] == {"kind": "skipped", "reason": "free text"}
    assert cols["item"]["genres"]["kind"] == "multi-valued"
    assert cols["item"]["year"]["kind"] == "bucketed" and cols["item"]["year"]["unparsed"] == 1
    assert cols["user"]["age"]["buckets"].startswith("age bands <18, 18-24, 25-34")
    assert cols["user"]["occupation"] == {
        "kind": "categorical", "n_values": 3, "folded": 1, "missing": 0, "ids": [5, 8],
    }  # fmt: skip
    for side in ("user", "item"):  # each used column is one contiguous id range
        for name, info in cols[side].items():
            if info["kind"] != "skipped":
                a, b = info["ids"]
                assert all(v.startswith(f"{side}.{name}=") for v in sf.vocabulary[a:b])


def test_min_count_one_keeps_every_value_and_larger_folds_more():
    sf = node_side_features(_dataset(USERS, ITEMS), SideConfig(min_count=1))
    assert not any(v.endswith("=<other>") for v in sf.vocabulary)
    assert "user.occupation=artist" in sf.vocabulary and "item.genres=Animation" in sf.vocabulary
    assert "item.year=1960s" in sf.vocabulary
    _check_rows(sf, _brute(USERS, ITEMS, min_count=1))
    sf3 = node_side_features(_dataset(USERS, ITEMS), SideConfig(min_count=3))
    _check_rows(sf3, _brute(USERS, ITEMS, min_count=3))
    assert "user.gender=M" in sf3.vocabulary and "user.gender=F" not in sf3.vocabulary
    # No decade is in 3 items: the year column says nothing but "present" and is dropped.
    assert "every value is in fewer than" in sf3.columns["item"]["year"]["reason"]


def test_padding_and_weights_pool_to_a_mean():
    sf = node_side_features(_dataset(USERS, ITEMS))
    real = sf.ids > 0
    np.testing.assert_array_equal(real, sf.weights > 0)
    sums = sf.weights.sum(axis=1)
    has = real.any(axis=1)
    np.testing.assert_allclose(sums[has], 1.0, rtol=1e-6)
    # Mean pooling: weights @ one-hot equals the mean of the row's value indicators.
    onehot = np.eye(sf.n_values, dtype=np.float32)[sf.ids]  # [N, F, V]
    pooled = (sf.weights[..., None] * onehot).sum(axis=1)
    assert pooled[:, 0].max() == 0.0  # padding never contributes
    # "Fargo" (no year, no genre) has no values: all zeros.
    fargo = len(USERS["age"]) + 5
    assert not real[fargo].any() and sf.weights[fargo].sum() == 0


def test_numeric_bucketing_rules():
    ages = ["1", "17", "18", "24", "25", "34", "35", "44", "45", "49", "50", "55", "56", "73"]
    n = len(ages)
    price = [str(p) for p in np.arange(n) * 1.5 + 2]  # 14 distinct numbers: quantiles
    stars = [str(s) for s in [1, 2, 3, 4, 5] * 2 + [5, 4, 3, 2]]  # <= 10 distinct: categorical
    ds = _dataset(
        {"age": ages, "score": np.r_[np.linspace(0, 1, n - 1), np.nan]},
        {"year": ["1899", "1900", "1909", "1910", "2001", "2009", "1995.0"] * 2,
         "price": price[:14], "stars": stars},
        n_items=14,
    )  # fmt: skip
    sf = node_side_features(ds, SideConfig(min_count=1, numeric_buckets=4))
    got = [v.split("=")[1] for v in sf.vocabulary if v.startswith("user.age=")]
    assert got == ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
    for r, a in enumerate(ages):
        assert f"user.age={_age_band(int(a))}" in [sf.vocabulary[i] for i in sf.ids[r]]
    years = [v.split("=")[1] for v in sf.vocabulary if v.startswith("item.year=")]
    assert years == ["1890s", "1900s", "1910s", "1990s", "2000s"]  # numeric order, no empties
    # Quantile buckets of price, in value order; a higher price never gets a lower bucket.
    assert sf.columns["item"]["price"]["buckets"] == "4 quantile buckets"
    lo, hi = sf.columns["item"]["price"]["ids"]
    assert hi - lo == 4
    bucket = [int(next(i for i in sf.ids[ds.n_users + r] if lo <= i < hi)) for r in range(14)]
    assert bucket == sorted(bucket) and len(set(bucket)) == 4
    assert sf.vocabulary[lo].startswith("item.price=<") and ">=" in sf.vocabulary[hi - 1]
    assert sf.columns["item"]["stars"]["kind"] == "categorical"
    score = sf.columns["user"]["score"]  # a float array, not str; NaN is missing
    assert score["kind"] == "bucketed" and score["missing"] == 1
    # ml-1m stores age band codes: they land in the same bands.
    ml1m = _dataset({"age": ["1", "18", "25", "35", "45", "50", "56"] * 2}, {"g": ["a", "b"]})
    sf = node_side_features(ml1m, SideConfig(min_count=1))
    assert [v for v in sf.vocabulary if v.startswith("user.age=")] == [
        f"user.age={b}" for b in ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
    ]


def test_id_like_constant_and_code_columns_are_skipped():
    n = 30
    ds = _dataset(
        {"zip_code": [f"{90000 + 7 * u}" for u in range(n)],  # numbers, but a code: not bucketed
         "member_no": [str(3 * u + 100) for u in range(n)],  # distinct integers: an ID
         "country": ["US"] * n, "gender": ["M", "F"] * (n // 2)},
        {"brand": ["acme", "zeta"] * 2, "sku": ["a1", "b2", "c3", "d4"]},
    )  # fmt: skip
    sf = node_side_features(ds)
    user, item = sf.columns["user"], sf.columns["item"]
    assert user["zip_code"] == {
        "kind": "skipped", "reason": "id-like (30 distinct values in 30 (row, value) pairs)",
    }  # fmt: skip
    assert user["member_no"] == {
        "kind": "skipped", "reason": "id-like (30 distinct integers in 30 rows)",
    }  # fmt: skip
    assert user["country"] == {"kind": "skipped", "reason": "constant"}
    assert user["gender"]["kind"] == "categorical"
    # 4 distinct values in 4 rows is too few to call ID-like; min_count folds them all.
    assert item["sku"]["kind"] == "skipped" and "min_count" in item["sku"]["reason"]
    assert [v for v in sf.vocabulary if v.startswith("item.")] == [
        "item.brand=acme", "item.brand=zeta",
    ]  # fmt: skip
    with pytest.raises(DataError) as err:
        node_side_features(ds, SideConfig(max_values_per_column=1))
    assert "gender (too many values (2 > side.max_values_per_column=1))" in str(err.value)


def test_namespaces_keep_user_and_item_values_apart():
    ds = _dataset({"kind": ["x", "x", "y", "y"]}, {"kind": ["x", "y", "y", "x"]})
    sf = node_side_features(ds)
    assert sf.vocabulary == ["<pad>", "user.kind=x", "user.kind=y", "item.kind=x", "item.kind=y"]
    np.testing.assert_array_equal(sf.ids[:, 0], [1, 1, 2, 2, 3, 4, 4, 3])


def test_deterministic_and_independent_of_column_order():
    a = node_side_features(_dataset(USERS, ITEMS))
    rev = _dataset(dict(reversed(USERS.items())), dict(reversed(ITEMS.items())))
    b = node_side_features(rev)
    assert a.vocabulary == b.vocabulary and a.columns == b.columns
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_selected_columns_and_their_errors():
    ds = _dataset(USERS, ITEMS)
    sf = node_side_features(ds, SideConfig(user_columns=("gender",), item_columns=()))
    assert sf.vocabulary == ["<pad>", "user.gender=F", "user.gender=M"]
    assert set(sf.columns["user"]) == {"gender"} and sf.columns["item"] == {}
    assert sf.ids.shape == (13, 1) and not sf.ids[6:].any() and not sf.ids[5].any()
    with pytest.raises(DataError, match=r"^side\.user_columns: data tiny has no user column 'zip'"):
        node_side_features(ds, SideConfig(user_columns=("zip",)))
    with pytest.raises(
        DataError, match=r"^side\.item_columns: item column 'title' of data tiny is unusable: free"
    ):
        node_side_features(ds, SideConfig(item_columns=("title",)))


def test_no_usable_column_is_one_line_data_error():
    ds = _dataset({}, {}, n_users=3, n_items=4, name="gowalla")
    msg = (
        "data gowalla: side features requested but the dataset has no usable user or item "
        "attribute columns (user: [], item: []); use features without side"
    )
    with pytest.raises(DataError) as err:
        node_side_features(ds)
    assert str(err.value) == msg
    ds = _dataset({"name": ["a", "b"]}, {"title": ["x", "y", "z"]}, name="books")
    with pytest.raises(DataError, match=r"\(user: \[name \(free text\)\], item: \[title \(free"):
        node_side_features(ds)
    ds = _dataset({"g": ["a", "b"]}, {"g": ["a", "b", "c"]})
    with pytest.raises(DataError, match="has shape"):
        node_side_features(dataclasses.replace(ds, n_items=4))


def test_cold_items_keep_their_side_features():
    # Item 3 never appears in any interaction (a cold-start item): its features still come in.
    ds = _dataset(USERS, ITEMS, cold_items=np.array([3], np.int32))
    assert 3 not in ds.train.items
    sf = node_side_features(ds)
    babe = ds.n_users + 3
    assert [sf.vocabulary[i] for i in sf.ids[babe] if i] == [
        "item.genres=Comedy",
        "item.year=1980s",
    ]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"min_count": 0}, r"^side\.min_count: must be an integer >= 1, got 0$"),
        ({"min_count": 2.0}, r"^side\.min_count: must be an integer"),
        ({"min_count": True}, r"^side\.min_count: must be an integer"),
        ({"max_values_per_column": 0}, r"^side\.max_values_per_column: must be an integer >= 1"),
        ({"numeric_buckets": 1}, r"^side\.numeric_buckets: must be an integer >= 2"),
        ({"user_columns": "age"}, r"^side\.user_columns: must be a list of column names or null"),
        ({"item_columns": ("genres", "")}, r"^side\.item_columns: column names must be non-empty"),
        ({"item_columns": ("year", "year")}, r"^side\.item_columns: duplicate column names"),
        ({"enabled": "yes"}, r"^side\.enabled: must be true or false"),
    ],
)
def test_side_config_validation(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        SideConfig(**kw)
    assert "\n" not in str(err.value)


def test_side_config_lists_become_tuples():
    cfg = SideConfig(user_columns=["age", "gender"])
    assert cfg.user_columns == ("age", "gender") and hash(cfg)


def test_ml100k(ml100k_dir, tmp_path):
    ds = load(DataConfig(name="ml-100k", path=str(ml100k_dir)), cache_dir=tmp_path / "cache")
    start = time.perf_counter()
    sf = node_side_features(ds)
    seconds = time.perf_counter() - start
    assert seconds < 0.5, seconds
    assert sf.ids.shape == (943 + 1682, 7) and sf.n_values == 58
    user_vals = [[sf.vocabulary[i] for i in row if i] for row in sf.ids[: ds.n_users]]
    for col in ("age", "gender", "occupation"):
        assert all(any(v.startswith(f"user.{col}=") for v in vals) for vals in user_vals), col
    assert sf.columns["user"]["zip_code"]["kind"] == "skipped"
    assert sf.columns["item"]["title"]["kind"] == "skipped"
    assert sf.columns["user"]["occupation"]["n_values"] == 21
    assert sf.columns["item"]["genres"]["n_values"] == 19
    toy = ds.n_users + list(ds.item_ids).index("1")
    assert [sf.vocabulary[i] for i in sf.ids[toy] if i] == [
        "item.genres=Animation", "item.genres=Children's", "item.genres=Comedy", "item.year=1990s",
    ]  # fmt: skip
    user1 = [sf.vocabulary[i] for i in sf.ids[0] if i]  # 24, M, technician
    assert user1 == ["user.age=18-24", "user.gender=M", "user.occupation=technician"]
