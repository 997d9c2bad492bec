"""`jgnas report`: the HTML run report of a tiny search, rendered in headless Chromium.

Chromium comes from the system (`apt-get install chromium` on Debian; `.ci/run` installs it). Under
CI=true a missing Chromium fails the test; elsewhere it skips with the reason.
"""

import importlib.util
import io
import json
import os
import pathlib
import shutil
import types

import numpy as np
import pytest
from browser import find_chromium, render
from conftest import CONFIGS

from jgnas.cli import main
from jgnas.viz import arch as arch_viz
from jgnas.viz import page, results, search, users

# The tiny config, smaller still, with a cost objective so that the run has a Pareto front.
TINY = ["--config", str(CONFIGS / "tiny.yaml"), "--set", "search.generations=2",
        "--set", "final.seeds=1", "--set", "search.cost=params",
        "--set", "search.cost_weight=0.1"]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["search", *TINY, "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def report(run_dir) -> pathlib.Path:
    assert main(["report", str(run_dir), "--users", "2", "--k", "5", "-q"]) == 0
    return run_dir / "report" / "index.html"


def test_report_is_static_and_complete(run_dir, report):
    text = report.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    srcs = [s.split('"', 1)[0] for s in text.split('<img src="')[1:]]
    assert {"search_curve.png", "fitness_per_generation.png", "genes_top10.png",
            "pareto_front.png", "best_arch.png", "ego_graph.png"} <= set(srcs)  # fmt: skip
    for src in srcs:
        assert (report.parent / src).stat().st_size > 1000, src
    final = json.loads((run_dir / "final_metrics.json").read_text())
    assert final["pareto_front"], "the cost objective gives a front"
    has_curves = any(r.get("valid_curve") for r in final["rows"])
    assert ("learning_curves.png" in srcs) == has_curves
    assert (page.NO_CURVES in text) != has_curves
    for r in final["rows"]:
        assert f"<code>{r['describe']}</code>" in text
    assert "best baseline" in text  # the mf row is the reference of the last column
    assert text.count("<div class='card'>") == 2


def test_report_renders_in_chromium(report, tmp_path):
    chromium = find_chromium()
    reason = None
    if chromium is None:
        reason = "chromium not found (apt-get install chromium); the HTML report is not rendered"
    elif importlib.util.find_spec("websocket") is None:
        reason = "websocket-client (a dev dependency) is missing: pip install -e '.[dev]'"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    page_ = render(report.as_uri(), chromium)
    assert page_.errors == []
    assert all(url.startswith("file://") for url in page_.resources), page_.resources
    assert len(page_.images) >= 6
    for img in page_.images:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
        assert img["shown"] and img["width"] > 100 and img["height"] > 100, img
    assert "Final results" in page_.text and "Recommendations" in page_.text
    shot = tmp_path / "report_screenshot.png"
    shot.write_bytes(page_.png)
    print(f"screenshot: {shot}")
    from PIL import Image

    gray = np.asarray(Image.open(io.BytesIO(page_.png)).convert("L"), float)
    assert gray.shape[1] >= 1000 and gray.shape[0] > 2000  # the whole page, not the viewport
    background = np.bincount(gray.astype(int).ravel()).argmax()
    assert (gray != background).mean() > 0.05 and gray.std() > 10  # drawn, not blank


def test_report_errors_are_one_line(run_dir, tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run_dir / "config.yaml", partial)
    assert main(["report", str(partial)]) == 2
    assert main(["report", str(run_dir), "--user", "no-such-user", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "no such run directory" in err[0]
    assert "history.jsonl: missing" in err[1]
    assert "'no-such-user' is not in dataset" in err[2]


def test_learning_curves_tolerate_missing_rounds(tmp_path):
    curve = {"eval_every": 5, "metric": "ndcg@20", "mean": [0.1, 0.2, None, float("nan")],
             "std": [0.01, 0.02, None, None]}  # fmt: skip
    rows = [{"label": "search#1", "valid_curve": curve}, {"label": "mf", "valid_curve": curve}]
    assert results.plot_curves(rows, tmp_path / "c.png") == "c.png"
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert results.plot_curves([{"label": "mf"}], tmp_path / "d.png") is None


def test_relative_difference_to_the_best_baseline():
    def row(label, v):
        return {"label": label, "test": {"ndcg@20": {"mean": v, "std": 0.0}}}

    rows = [row("search#1", 0.2906), row("lightgcn", 0.3), row("mf", 0.25)]
    base, diffs = results.relative_to_best_baseline(rows, "ndcg@20")
    assert base == "lightgcn"
    assert [results.signed_percent(d) for d in diffs] == ["−3.1 %", "+0.0 %", "−16.7 %"]
    assert results.relative_to_best_baseline(rows[:1], "ndcg@20") == (None, [None])
    tuned = {"lr": 0.001, "l2": 1e-4, "grid": [{"lr": 0.001, "l2": 1e-4}]}
    assert results.tuned_text({"tuned": tuned}) == "lr 0.001, l2 0.0001"


def test_genes_are_read_generically(tmp_path):
    # `norm` and `sampler` stand for genes added after this module was written.
    def arch(op, norm, sampler):
        return {"depth": 1, "layers": [{"op": op, "residual": False, "norm": norm}],
                "combine": "mean", "features": "id", "sampler": sampler}  # fmt: skip

    history = [{"key": [n], "fitness": f, "failed": False, "arch": arch(op, norm, s)}
               for n, (f, op, norm, s) in enumerate([(0.9, "gcn", "l2", "hard"),
                                                     (0.1, "gat", "none", "uniform")] * 5)]  # fmt: skip
    genes, n_top, n_all = search.gene_shares(history)
    by_name = {g["gene"]: g for g in genes}
    assert n_all == 10 and n_top == 1
    assert set(by_name) == {"layer op", "layer norm", "sampler"}  # one-valued genes left out
    assert by_name["layer norm"]["top"] == [1.0, 0.0] and by_name["layer norm"]["all"] == [0.5, 0.5]
    boxes, rest = arch_viz.boxes(arch("gcn", "l2", "hard"))
    assert [b["title"] for b in boxes] == ["input", "layer 1", "combination", "score"]
    assert "norm: l2" in boxes[1]["lines"] and rest == {"sampler": "hard"}
    assert search.plot_genes(genes, n_top, n_all, tmp_path / "g.png") == "g.png"
    assert arch_viz.draw(arch("gcn", "l2", "hard"), tmp_path / "a.png") == "a.png"


def test_median_user_and_spread_users():
    counts = [5, 1, 3, 0, 9]  # user 3 has no training interaction
    ds = types.SimpleNamespace(
        n_users=5,
        user_ids=np.asarray(["a", "b", "c", "d", "e"]),
        train=types.SimpleNamespace(users=np.repeat(np.arange(5), counts)),
    )
    assert users.pick_users(ds, 1) == ["c"]  # counts 1, 3, 5, 9: the lower median
    assert users.pick_users(ds, 3) == ["c", "b", "a"]
    assert users.pick_users(ds, 2, first="e") == ["e", "b"]
