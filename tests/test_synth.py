"""Synthetic stand-ins of gowalla / yelp2018 / amazon-book (`jgnas.data.synth`, `jgnas data synth`)."""

import json

import numpy as np
import pytest

from jgnas import cli
from jgnas.data import DataConfig, DataError, load, synth

SCALE = 0.01


def _degrees(x: synth.StandIn):
    users = np.concatenate([x.train.users, x.test.users])
    items = np.concatenate([x.train.items, x.test.items])
    return np.bincount(users, minlength=x.n_users), np.bincount(items, minlength=x.n_items)


@pytest.mark.parametrize("like", list(synth.LIKE))
def test_files_load_with_the_real_loader_and_counts_match(like, tmp_path):
    meta = synth.write_stand_in(tmp_path / like, like, seed=3, scale=SCALE)
    shape = synth.LIKE[like]
    expected = tuple(round(n * SCALE) for n in (shape.users, shape.items, shape.interactions))
    assert (meta["users"], meta["items"], meta["interactions"]) == expected
    assert json.loads((tmp_path / like / "synth.json").read_text()) == meta

    ds = load(DataConfig(name=like, path=str(tmp_path / like), split="presplit"), cache=False)
    assert ds.stats["format"] == "lightgcn"
    assert (ds.n_users, ds.n_items) == expected[:2]
    assert len(ds.train) + len(ds.valid) + len(ds.test) == expected[2]
    assert len(ds.test) == meta["test"] and len(ds.train) + len(ds.valid) == meta["train"]
    assert ds.stats["unknown_dropped"] == 0 and ds.stats["duplicates_collapsed"] == 0
    # The loader's ids are the file's ids (integers sort numerically): same pairs back.
    x = synth.stand_in(like, seed=3, scale=SCALE)
    got = {(int(ds.user_ids[u]), int(ds.item_ids[i])) for u, i in zip(ds.test.users, ds.test.items)}
    assert got == set(zip(x.test.users.tolist(), x.test.items.tolist()))


def test_degrees_are_heavy_tailed_and_the_split_is_clean():
    x = synth.stand_in("gowalla", seed=0, scale=SCALE)
    d_user, d_item = _degrees(x)
    for d in (d_user, d_item):
        assert d.min() >= 10  # the real files are 10-cores
        assert d.max() >= 5 * np.median(d)
    # A heavy tail, not just a few outliers: the top 10% of items hold over twice their share.
    top_items = np.sort(d_item)[::-1][: x.n_items // 10].sum()
    assert top_items > 0.2 * d_item.sum()
    train = set(zip(x.train.users.tolist(), x.train.items.tolist()))
    test = set(zip(x.test.users.tolist(), x.test.items.tolist()))
    assert len(train) == len(x.train) and len(test) == len(x.test)  # no repeated pair
    assert not train & test
    assert np.unique(x.train.items).size == x.n_items  # every item and user trains
    assert np.unique(x.train.users).size == x.n_users
    frac = np.bincount(x.test.users, minlength=x.n_users) / d_user
    assert 0.15 < frac.mean() < 0.25


def test_deterministic_by_seed(tmp_path):
    a = synth.write_stand_in(tmp_path / "a", "yelp2018", seed=5, scale=SCALE)
    b = synth.write_stand_in(tmp_path / "b", "yelp2018", seed=5, scale=SCALE)
    c = synth.write_stand_in(tmp_path / "c", "yelp2018", seed=6, scale=SCALE)
    for name in ("train.txt", "test.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert a == b and a["interactions"] == c["interactions"]


def test_full_size_degree_sequences_are_exact():
    # The full gowalla size: the degree sums hit the published count exactly (fast: ~1 s).
    x = synth.stand_in("gowalla", seed=0)
    d_user, d_item = _degrees(x)
    assert (x.n_users, x.n_items, d_user.sum()) == (29_858, 40_981, 1_027_370)
    assert d_item.sum() == 1_027_370 and d_user.min() >= 10 and d_item.min() >= 10


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "g"
    assert (
        cli.main(["data", "synth", "--like", "gowalla", "--scale", "0.01", "--out", str(out)]) == 0
    )
    assert "299 users, 410 items, 10,274 interactions" in capsys.readouterr().err
    assert (out / "train.txt").is_file() and (out / "test.txt").is_file()
    assert (
        cli.main(["data", "synth", "--like", "gowalla", "--scale", "0.0005", "--out", str(out)])
        == 2
    )
    assert "use a larger --scale" in capsys.readouterr().err


def test_default_folder_is_not_the_real_datasets():
    assert synth.default_name("gowalla") == "gowalla-synth"
    assert synth.default_name("gowalla", 2, 0.1) == "gowalla-synth-s2-x0.1"
    with pytest.raises(DataError, match="unknown dataset"):
        synth.stand_in("netflix")


def test_bench_stand_in_is_written_once_then_reused(tmp_path, monkeypatch):
    from jgnas.bench import scale

    monkeypatch.setenv("JGNAS_DATA", str(tmp_path))
    logs = []
    folder = scale.stand_in_folder("gowalla", seed=1, size=SCALE, log=logs.append)
    assert folder == tmp_path / "gowalla-synth-s1-x0.01" and len(logs) == 1
    stamp = (folder / "train.txt").stat().st_mtime_ns
    assert scale.stand_in_folder("gowalla", seed=1, size=SCALE, log=logs.append) == folder
    assert len(logs) == 1 and (folder / "train.txt").stat().st_mtime_ns == stamp
    (folder / "synth.json").write_text("{}")  # not what is asked: written again
    scale.stand_in_folder("gowalla", seed=1, size=SCALE, log=logs.append)
    assert len(logs) == 2
