"""End-to-end smoke of the CLI on the tiny config: search, run directory, train --arch, recommend."""

import json

import pytest
from conftest import CONFIGS

from jgnas.cli import main

TINY = str(CONFIGS / "tiny.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["search", "--config", TINY, "--out", str(out), "-q"]) == 0
    return out


def test_search_writes_the_run_directory(run_dir):
    for name in ("config.yaml", "history.jsonl", "best_arch.json", "final_metrics.json",
                 "summary.md", "search_curve.png", "best_model", "checkpoints"):  # fmt: skip
        assert (run_dir / name).exists(), name
    final = json.loads((run_dir / "final_metrics.json").read_text())
    labels = [r["label"] for r in final["rows"]]
    assert labels == ["search#1", "mf"]
    for r in final["rows"]:
        assert 0.0 <= r["test"]["ndcg@20"]["mean"] <= 1.0
        assert r["seeds"] == 2 and len(r["test_per_seed"]) == 2
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert len(history) == 4 * 3  # population x generations
    assert "| **search#1** |" in (run_dir / "summary.md").read_text()


def test_train_reloads_best_arch(run_dir, tmp_path, capsys):
    arch = str(run_dir / "best_arch.json")
    rc = main(["train", "--config", TINY, "--arch", arch, "--preset", "mf", "--seeds", "1",
               "--out", str(tmp_path), "-q"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "| best_arch (" in out and "| mf (" in out
    assert json.loads((tmp_path / "final_metrics.json").read_text())["rows"][0]["seeds"] == 1


def test_recommend_serves_top_k(run_dir, capsys):
    assert main(["recommend", str(run_dir), "--user", "0", "-k", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert len({r["item"] for r in rows}) == 5
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "--config", TINY, "--set", "search.popsize=3"], "unknown key(s) ['popsize']"),
        (["search", "--config", "nope.yaml"], "nope.yaml: no such config file"),
        (["train", "--config", TINY, "--preset", "nope"], "unknown preset 'nope'"),
        (["search", "--resume", "/nonexistent/run"], "not a run directory"),
        (["recommend", "/nonexistent/run", "--user", "1"], "no config.yaml"),
    ],
)
def test_bad_input_is_one_error_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_export_writes_the_top_k(run_dir, tmp_path):
    out = tmp_path / "e"
    assert main(["export", str(run_dir), "--out", str(out), "-k", "5", "-q"]) == 0
    assert (out / "manifest.json").is_file() and (out / "topk.csv").is_file()
    assert main(["export", str(run_dir), "--out", str(out), "-k", "0", "-q"]) == 2
