"""Readers and preprocessing on real ml-100k and on tiny hand-written files in every format."""

import numpy as np
import pytest

from jgnas.data import DataConfig, load
from jgnas.data.preprocess import collapse_duplicates, kcore_mask


def _load(tmp_path, **kw):
    return load(DataConfig(**kw), cache_dir=tmp_path / "cache")


def _pairs(ds, part):
    x = getattr(ds, part)
    return {(ds.user_ids[u], ds.item_ids[i]) for u, i in zip(x.users, x.items, strict=True)}


def _all(ds):
    return {p: _pairs(ds, p) for p in ("train", "valid", "test")}


def test_ml100k_recbole_files(ml100k_dir, tmp_path):
    ds = _load(tmp_path, name="ml-100k", path=str(ml100k_dir))
    assert (ds.n_users, ds.n_items) == (943, 1682)
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 100_000
    assert ds.stats["format"] == "recbole" and ds.stats["duplicates_collapsed"] == 0
    titles = ds.item_features["title"]
    assert titles[list(ds.item_ids).index("1")] == "Toy Story"
    assert ds.item_features["year"][0] == "1995"
    assert ds.item_features["genres"][0] == "Animation, Children's, Comedy"
    assert set(ds.user_features) >= {"age", "gender", "occupation"}
    assert ds.user_features["occupation"][0] == "technician"
    # Dense ids follow numeric raw id order.
    assert list(ds.user_ids[:3]) == ["1", "2", "3"] and ds.item_ids[-1] == "1682"
    # Every user has >= 20 ratings: ratio split gives everyone valid and test items.
    assert np.unique(ds.valid.users).size == 943 and np.unique(ds.test.users).size == 943


def test_ml100k_threshold_and_kcore(ml100k_dir, tmp_path):
    ds = _load(tmp_path, name="ml-100k", path=str(ml100k_dir), rating_threshold=4, kcore=10)
    assert ds.stats["below_threshold"] == 44_625  # 100k minus the 55,375 ratings of 4 or 5
    n = len(ds.train) + len(ds.valid) + len(ds.test)
    assert n == 100_000 - 44_625 - ds.stats["kcore_removed"]
    u = np.concatenate([ds.train.users, ds.valid.users, ds.test.users])
    i = np.concatenate([ds.train.items, ds.valid.items, ds.test.items])
    assert np.bincount(u).min() >= 10 and np.bincount(i).min() >= 10
    assert ds.train.ratings.min() >= 4


def test_movielens_100k_raw(data_fixtures, tmp_path):
    ds = _load(tmp_path, name="tiny", path=str(data_fixtures / "ml100k_raw"), split="loo")
    assert ds.stats["format"] == "movielens"
    assert list(ds.user_ids) == ["1", "2", "3"] and list(ds.item_ids) == ["10", "20", "30"]
    assert ds.stats["raw_interactions"] == 6 and ds.stats["duplicates_collapsed"] == 1
    # (1, 10) rated 5 then 4 later: collapsed to the latest timestamp and the max rating.
    tr = ds.train
    j = np.flatnonzero((ds.user_ids[tr.users] == "1") & (ds.item_ids[tr.items] == "10"))
    assert tr.ratings[j].tolist() == [5.0] and tr.timestamps[j].tolist() == [881250999]
    f = ds.item_features
    assert f["title"].tolist() == ["Toy Story", "Café au lait", "unknown"]
    assert f["year"].tolist() == ["1995", "1993", ""]
    assert f["genres"].tolist() == ["Animation, Children's, Comedy", "Comedy, Romance", "unknown"]
    assert ds.user_features["age"].tolist() == ["24", "53", "23"]
    assert ds.user_features["gender"].tolist() == ["M", "F", "M"]
    assert ds.user_features["occupation"].tolist() == ["technician", "other", "writer"]


def test_movielens_1m_raw(data_fixtures, tmp_path):
    ds = _load(tmp_path, name="tiny1m", path=str(data_fixtures / "ml1m_raw"), split="loo")
    assert list(ds.user_ids) == ["1", "2", "10"] and list(ds.item_ids) == ["1", "2", "3"]
    assert len(ds.train) == 5 and len(ds.valid) == len(ds.test) == 0  # everyone has < 3
    assert ds.train.ratings.tolist() == [5, 3, 4, 2, 5]
    assert ds.train.timestamps.tolist() == [978300760, 978302109, 978301968, 978300275, 978824291]
    assert ds.item_features["title"].tolist() == ["Toy Story", "Amélie", "Heat"]
    assert ds.item_features["year"].tolist() == ["1995", "2001", "1995"]
    assert ds.item_features["genres"][1] == "Comedy, Romance"
    assert ds.user_features["occupation"].tolist() == [
        "K-12 student",
        "self-employed",
        "programmer",
    ]
    assert ds.user_features["age"].tolist() == ["1", "56", "25"]


def test_lightgcn_presplit(data_fixtures, tmp_path):
    ds = _load(
        tmp_path, name="lg", path=str(data_fixtures / "lightgcn"), split="presplit",
        valid_from_train=0.0,
    )  # fmt: skip
    assert ds.stats["format"] == "lightgcn"
    assert _pairs(ds, "train") == {
        ("0", "0"), ("0", "1"), ("0", "2"), ("1", "2"), ("1", "3"),
        ("2", "0"), ("2", "3"), ("2", "4"), ("2", "5"), ("3", "1"),
    }  # fmt: skip
    assert len(ds.valid) == 0
    # test: (0,3) ok, (1,0) ok, (2,1) ok, (3,4) ok, (3,7) item 7 unknown -> dropped.
    assert _pairs(ds, "test") == {("0", "3"), ("1", "0"), ("2", "1"), ("3", "4")}
    assert ds.stats["unknown_dropped"] == 1
    assert ds.train.ratings.tolist() == [1.0] * len(ds.train)


def test_lightgcn_pooled_ratio(data_fixtures, tmp_path):
    ds = _load(tmp_path, name="lg", path=str(data_fixtures / "lightgcn"))
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 10 + 5
    assert ds.n_items == 7  # 0..5 and 7


def test_valid_from_train(data_fixtures, tmp_path):
    ds = _load(
        tmp_path, name="lg", path=str(data_fixtures / "lightgcn"), split="presplit",
        valid_from_train=0.3,
    )  # fmt: skip
    # Users with >= 2 train items move max(1, round(0.3 n)) = 1 to valid; user 3 has one.
    assert np.bincount(ds.valid.users, minlength=4).tolist() == [1, 1, 1, 0]
    assert len(ds.train) + len(ds.valid) == 10


def test_csv_mapping_and_quotes(data_fixtures, tmp_path):
    ds = _load(
        tmp_path, name="c", path=str(data_fixtures / "csv" / "ratings.csv"), user_col="userId",
        item_col="movieId", rating_col="rating", timestamp_col="ts", split="loo",
    )  # fmt: skip
    assert list(ds.user_ids) == ["u1", "u2", "u3"] and list(ds.item_ids) == ["i,1", "i2", "i3"]
    assert ds.train.ratings.tolist() == [4.5, 3.0, 5.0, 1.0]
    assert ds.train.timestamps.tolist() == [100, 200, 300, 400]
    by_index = _load(
        tmp_path, name="c", path=str(data_fixtures / "csv" / "ratings.csv"), user_col=2,
        item_col=3, rating_col=1, split="loo",
    )  # fmt: skip
    assert _all(by_index) == _all(ds) and by_index.train.timestamps.tolist() == [0] * 4
    thr = _load(
        tmp_path, name="c", path=str(data_fixtures / "csv" / "ratings.csv"), user_col=2,
        item_col=3, rating_col=1, rating_threshold=3.5, split="loo",
    )  # fmt: skip
    assert _pairs(thr, "train") == {("u1", "i,1"), ("u2", "i,1")}


def test_csv_no_header_custom_sep(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("a::x::1\nb::y::2\na::y::3\n")
    ds = _load(
        tmp_path, name="r", path=str(f), format="csv", header=False, sep="::", user_col=0,
        item_col=1, timestamp_col=2, split="loo",
    )  # fmt: skip
    assert _pairs(ds, "train") == {("a", "x"), ("b", "y"), ("a", "y")}
    assert sorted(ds.train.timestamps.tolist()) == [1, 2, 3]


def test_recbole_presplit(data_fixtures, tmp_path):
    ds = _load(tmp_path, name="tiny", path=str(data_fixtures / "presplit"), split="presplit")
    assert _pairs(ds, "train") == {("1", "a"), ("1", "b"), ("2", "a"), ("2", "c"), ("3", "b")}
    assert _pairs(ds, "valid") == {("1", "c"), ("2", "b")}
    assert _pairs(ds, "test") == {("3", "a")}  # (1,z) and (9,a) unknown, (2,a) already in train
    assert ds.stats["unknown_dropped"] == 2 and ds.stats["cross_part_duplicates"] == 1
    assert ds.item_features["title"].tolist() == ["Alpha Movie", "Beta", ""]
    assert ds.item_features["genres"].tolist() == ["Action, Sci-Fi", "Drama", ""]
    assert ds.item_features["year"].tolist() == ["1999", "2001", ""]
    assert ds.user_features == {}


def test_presplit_files_option(data_fixtures, tmp_path):
    ds = _load(
        tmp_path, name="ml", path=str(data_fixtures / "ml100k_raw"), split="presplit",
        presplit_files=("u.data", "u.data"), valid_from_train=0.0,
    )  # fmt: skip
    # The same file as train and test: every test pair is already in train, so test is empty.
    assert len(ds.train) == 5 and len(ds.test) == 0 and ds.stats["cross_part_duplicates"] == 5


def test_collapse_duplicates_and_kcore():
    u = np.array([0, 0, 1, 0, 1])
    i = np.array([1, 1, 0, 1, 1])
    r = np.array([5.0, 2.0, 3.0, 1.0, 4.0])
    t = np.array([10, 30, 5, 20, 7])
    keep, rr, tt = collapse_duplicates(u, i, r, t)
    assert (
        keep.tolist() == [1, 2, 4] and rr.tolist() == [5.0, 3.0, 4.0] and tt.tolist() == [30, 5, 7]
    )
    # A chain: removing user 2 (1 interaction) leaves item 2 with 1, which then goes too.
    u = np.array([0, 0, 1, 1, 2, 1])
    i = np.array([0, 1, 0, 1, 2, 2])
    assert kcore_mask(u, i, 2).tolist() == [True, True, True, True, False, False]


@pytest.mark.parametrize("split", ["ratio", "loo", "temporal", "cold_item"])
def test_ml100k_every_split_partitions(ml100k_dir, tmp_path, split):
    ds = _load(tmp_path, name="ml-100k", path=str(ml100k_dir), split=split)
    parts = _all(ds)
    total = sum(len(p) for p in parts.values()) + ds.stats["eval_dropped_no_train_user"]
    assert total == 100_000
    assert not (parts["train"] & parts["valid"] or parts["train"] & parts["test"])
    assert not parts["valid"] & parts["test"]
