"""jgnas.export: the export of a finished tiny run reloads to the run's own ranking."""

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import CONFIGS

from jgnas import export, serve
from jgnas.cli import main
from jgnas.data import DataError

K = 7


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["search", "--config", str(CONFIGS / "tiny.yaml"), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    manifest = export.main(run_dir, out, k=K)
    return out, manifest


def test_topk_equals_the_runs_ranking(run_dir, exported):
    out, _ = exported
    rec = serve.load(run_dir)
    top = pq.read_table(out / "topk.parquet").to_pydict()
    by_user: dict[str, list] = {}
    for u, rank, item, score in zip(top["user_id"], top["rank"], top["item_id"], top["score"]):
        by_user.setdefault(u, []).append((rank, item, score))
    assert set(by_user) == set(rec.dataset.user_ids.astype(str))
    for u, rows in by_user.items():
        expect = rec.recommend(u, k=K)
        assert [r[0] for r in rows] == list(range(1, K + 1))
        assert [r[1] for r in rows] == [e["item"] for e in expect], u
        np.testing.assert_allclose([r[2] for r in rows], [e["score"] for e in expect], rtol=1e-5)


def test_export_round_trips(run_dir, exported):
    out, manifest = exported
    rec = serve.load(run_dir)
    ds = rec.dataset
    cat = export.read(out)
    np.testing.assert_array_equal(cat.user_emb, rec.user_emb)  # bit-exact through Parquet
    np.testing.assert_array_equal(cat.item_emb, rec.item_emb)
    assert cat.user_ids.tolist() == ds.user_ids.astype(str).tolist()
    assert cat.item_ids.tolist() == ds.item_ids.astype(str).tolist()
    for u in range(ds.n_users):
        assert set(cat.seen(u)) == set(ds.train.items[ds.train.users == u])
    assert manifest["describe"] == rec.describe and manifest["k"] == K
    assert manifest["n_users"] == ds.n_users and manifest["dim"] == rec.item_emb.shape[1]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # The CSV files hold the same rows as the Parquet ones.
    for name in ("users", "items", "topk"):
        table = pq.read_table(out / f"{name}.parquet").drop_columns(
            [c for c in ("embedding",) if name != "topk"]
        )
        with open(out / f"{name}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == table.num_rows
        for col in table.column_names:
            got = [r[col] for r in rows]
            want = table[col].to_pylist()
            if isinstance(want[0], float):
                np.testing.assert_allclose(np.array(got, float), want, rtol=1e-6)
            else:
                assert got == [str(v) for v in want], (name, col)


def _catalog(user_emb, item_emb, seen):
    n_users = len(user_emb)
    users = [u for u, items in enumerate(seen) for _ in items]
    indptr, items = export.seen_matrix(
        np.array(users, np.int64), np.array([i for s in seen for i in s], np.int64), n_users
    )
    return export.Catalog(
        np.array([f"u{u}" for u in range(n_users)]),
        np.array([f"i{i}" for i in range(len(item_emb))]),
        np.asarray(user_emb, np.float32),
        np.asarray(item_emb, np.float32),
        indptr,
        items,
        {"title": np.array([f"t{i}" for i in range(len(item_emb))], dtype=object)},
        {},
    )


def test_topk_ties_and_short_lists():
    # Items 0, 2 and 3 tie: lower index first. User 1 has seen 3 of 4 items: one row only.
    cat = _catalog([[1.0], [2.0]], [[1.0], [0.5], [1.0], [1.0]], [[2], [0, 2, 3]])
    scores, idx = export.topk(cat, k=4, block=1)
    assert idx[0, :3].tolist() == [0, 3, 1] and scores[0, 3] == -np.inf
    assert idx[1, 0] == 1 and np.isneginf(scores[1, 1:]).all()


def test_write_drops_missing_rows(tmp_path):
    cat = _catalog([[1.0], [2.0]], [[1.0], [0.5], [1.0]], [[2], [0, 2]])
    export.write(cat, tmp_path, k=3)
    top = pq.read_table(tmp_path / "topk.parquet").to_pydict()
    assert list(zip(top["user_id"], top["item_id"])) == [("u0", "i0"), ("u0", "i1"), ("u1", "i1")]
    assert export.read(tmp_path).item_meta["title"].tolist() == ["t0", "t1", "t2"]


def test_export_needs_a_finished_run(tmp_path):
    with pytest.raises(DataError, match="no config.yaml"):
        export.main(tmp_path, tmp_path / "out")
    with pytest.raises(DataError, match="not an export folder"):
        export.read(tmp_path)


def test_seen_mask_matches_the_interactions():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 300), rng.integers(0, 50, 300)
    indptr, seen = export.seen_matrix(users, items, 20)
    picked = [3, 0, 19, 3]
    mask = export.seen_mask(indptr, seen, picked, 6, 50)
    for r, u in enumerate(picked):
        assert set(np.flatnonzero(mask[r])) == set(items[users == u])
    assert not mask[4:].any()
    assert not export.seen_mask(indptr, seen, [], 2, 50).any()
