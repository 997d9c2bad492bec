"""Split properties (hypothesis, synthetic data) and the documented small-user rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jgnas.data import DataConfig, DataError, load, synthetic
from jgnas.data.splits import holdout_counts, split_loo, split_ratio

SPLITS = ["ratio", "loo", "temporal", "cold_item"]


def _keys(x, n_items):
    return x.users.astype(np.int64) * n_items + x.items


def _check_partition(ds, src_keys):
    """Parts are disjoint, duplicate-free and (with dropped rows) add up to the source."""
    k = {p: _keys(getattr(ds, p), ds.n_items) for p in ("train", "valid", "test")}
    for p, v in k.items():
        assert np.unique(v).size == v.size, f"duplicate pair in {p}"
    assert not np.intersect1d(k["train"], k["valid"]).size
    assert not np.intersect1d(k["train"], k["test"]).size
    assert not np.intersect1d(k["valid"], k["test"]).size
    assert sum(v.size for v in k.values()) + ds.stats["eval_dropped_no_train_user"] == src_keys
    # Evaluated users all have training interactions.
    has_train = np.bincount(ds.train.users, minlength=ds.n_users) > 0
    assert has_train[ds.valid.users].all() and has_train[ds.test.users].all()


@settings(max_examples=20, deadline=None)
@given(
    n_users=st.integers(2, 30),
    n_items=st.integers(3, 30),
    fill=st.floats(0.1, 0.9),
    seed=st.integers(0, 2**16),
    split=st.sampled_from(SPLITS),
)
def test_split_properties(tmp_path_factory, n_users, n_items, fill, seed, split):
    n = max(n_users * 2, int(fill * n_users * n_items))
    n_items = max(n_items, 3)
    n = min(n, n_users * n_items)
    cfg = DataConfig(
        name="synthetic", split=split, seed=seed, synthetic_users=n_users,
        synthetic_items=n_items, synthetic_interactions=n, cold_item_frac=0.3,
    )  # fmt: skip
    src = synthetic(n_users, n_items, n, seed=seed, min_per_user=3 if n >= 3 * n_users else 1)
    if n < 3 * n_users:
        with pytest.raises(DataError, match="n_interactions"):
            load(cfg, cache=False)
        return
    assert np.unique(_keys(src, n_items)).size == n
    a = load(cfg, cache=False)
    b = load(cfg, cache=False)
    _check_partition(a, n)
    for p in ("train", "valid", "test"):  # same seed, same split
        assert np.array_equal(getattr(a, p).users, getattr(b, p).users)
        assert np.array_equal(getattr(a, p).items, getattr(b, p).items)
    if split == "cold_item":
        assert a.cold_items.size >= 1
        assert not np.isin(a.train.items, a.cold_items).any()
        held = np.concatenate([a.valid.items, a.test.items])
        # Each cold item's interactions sit wholly in valid or wholly in test.
        assert not np.intersect1d(a.valid.items[np.isin(a.valid.items, a.cold_items)],
                                  a.test.items[np.isin(a.test.items, a.cold_items)]).size  # fmt: skip
        assert np.isin(a.cold_items, held).all() or a.stats["eval_dropped_no_train_user"] > 0


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=20),
    ratios=st.sampled_from([(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.2, 0.4, 0.4), (0.9, 0.0, 0.1)]),
)
def test_holdout_counts_rule(counts, ratios):
    n = np.array(counts)
    nv, nt = holdout_counts(n, ratios)
    need = 1 + (ratios[1] > 0) + (ratios[2] > 0)
    small = n < need
    assert (nv[small] == 0).all() and (nt[small] == 0).all()
    big = ~small
    assert (n[big] - nv[big] - nt[big] >= 1).all()  # at least one train interaction
    assert ((nv[big] >= 1) == (ratios[1] > 0)).all() and ((nt[big] >= 1) == (ratios[2] > 0)).all()


def test_small_user_rule_examples():
    nv, nt = holdout_counts(np.array([1, 2, 3, 10, 20]), (0.8, 0.1, 0.1))
    assert nv.tolist() == [0, 0, 1, 1, 2] and nt.tolist() == [0, 0, 1, 1, 2]


def test_seed_changes_ratio_split():
    x = synthetic(50, 40, 600, seed=1)
    a = split_ratio(x.users, x.timestamps, 50, (0.8, 0.1, 0.1), seed=0)
    b = split_ratio(x.users, x.timestamps, 50, (0.8, 0.1, 0.1), seed=1)
    assert not np.array_equal(a, b)
    assert np.array_equal(np.bincount(a), np.bincount(b))  # counts follow the rule, not the seed


def test_loo_and_temporal_follow_time():
    users = np.array([0, 0, 0, 0, 1, 1])
    ts = np.array([40, 10, 30, 20, 5, 6])
    assert split_loo(users, ts, 2, seed=0).tolist() == [2, 0, 1, 0, 0, 0]
    x = synthetic(40, 60, 800, seed=3)
    lab = split_ratio(x.users, x.timestamps, 40, (0.6, 0.2, 0.2), seed=0, chronological=True)
    for u in range(40):  # every train time <= every valid time <= every test time, per user
        t = [x.timestamps[(x.users == u) & (lab == k)] for k in range(3)]
        assert t[0].max() <= t[1].min() and t[1].max() <= t[2].min()


def test_synthetic_shape():
    x = synthetic(300, 500, 6000, seed=0)
    assert len(x) == 6000
    assert np.unique(x.users.astype(np.int64) * 500 + x.items).size == 6000
    deg_u = np.bincount(x.users, minlength=300)
    deg_i = np.bincount(x.items, minlength=500)
    assert deg_u.min() >= 3
    # Power law: the top 10% of items hold far more than 10% of interactions.
    assert np.sort(deg_i)[-50:].sum() > 0.3 * 6000
    y = synthetic(300, 500, 6000, seed=0)
    assert np.array_equal(x.items, y.items) and np.array_equal(x.timestamps, y.timestamps)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), n_extra=st.integers(0, 10), fail=st.booleans())
def test_presplit_properties(tmp_path_factory, seed, n_extra, fail):
    """Pre-split files are used as given: rows are kept, or dropped and counted, never moved."""
    rng = np.random.default_rng(seed)
    x = synthetic(20, 30, 200, seed=seed)
    part = rng.choice(3, len(x), p=[0.7, 0.15, 0.15])
    part[np.searchsorted(x.users, np.arange(20))] = 0  # every user has a train row
    rows = [(f"u{u}", f"i{i}", p) for u, i, p in zip(x.users, x.items, part, strict=True)]
    # Extra eval rows: ids never seen in train, and pairs repeated from train.
    rows += [(f"new{k}", "i0", 2) for k in range(n_extra)]
    rows += [(u, i, 1) for u, i, p in rows[:n_extra] if p == 0]
    d = tmp_path_factory.mktemp("presplit") / "p"
    d.mkdir()
    for k, name in enumerate(("train", "valid", "test")):
        body = "".join(f"{u}\t{i}\n" for u, i, p in rows if p == k)
        (d / f"p.{name}.inter").write_text("user_id:token\titem_id:token\n" + body)
    cfg = DataConfig(name="p", path=str(d), split="presplit", unknown="fail" if fail else "drop")
    train_items = {i for _, i, p in rows if p == 0}
    if fail and (n_extra or any(p and i not in train_items for _, i, p in rows)):
        with pytest.raises(
            DataError,
            match=r"p\.(valid|test)\.inter:\d+: (user|item) '.*' is not in the train file",
        ):
            load(cfg, cache=False)
        return
    ds = load(cfg, cache=False)
    got = {
        p: {
            (ds.user_ids[u], ds.item_ids[i])
            for u, i in zip(getattr(ds, p).users, getattr(ds, p).items, strict=True)
        }
        for p in ("train", "valid", "test")
    }
    want = {
        p: {(u, i) for u, i, q in rows if q == k} for k, p in enumerate(("train", "valid", "test"))
    }
    assert got["train"] == want["train"]
    assert got["valid"] <= want["valid"] and got["test"] <= want["test"]
    assert not (
        got["train"] & got["valid"] or got["train"] & got["test"] or got["valid"] & got["test"]
    )
    lost = sum(len(want[p]) - len(got[p]) for p in ("valid", "test"))
    assert lost == ds.stats["unknown_dropped"] + ds.stats["cross_part_duplicates"]
    assert ds.stats["cross_part_duplicates"] == sum(1 for _, _, p in rows[200:] if p == 1)
