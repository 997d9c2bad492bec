"""The fidelity study: budgets read off one long run equal short runs; correlations; the script."""

import dataclasses
import json
import runpy
import sys

import jax
import numpy as np
import pytest
from conftest import CONFIGS

from jgnas import config as config_lib
from jgnas import experiment, fidelity
from jgnas.train import Engine

TINY = CONFIGS / "tiny.yaml"


@pytest.fixture(scope="module")
def ctx():
    return experiment.prepare(config_lib.load(TINY), log=experiment.quiet)


FCFG = fidelity.FidelityConfig(
    n_archs=3, presets=("mf", "gcn"), budgets=(1, 2), lrs=(1e-2, 1e-3),
    max_epochs=4, eval_every=1, patience=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def result(ctx):
    return fidelity.run(ctx, FCFG, log=experiment.quiet)


def test_budget_scores_equal_short_screening_runs(ctx, result):
    # Member m trains with key fold_in(key(seed), m): a b-epoch run with one evaluation at its
    # end (the search's screening) reports exactly the curve's value at epoch b.
    archs = fidelity.sample_archs(ctx, FCFG)
    label, arch = archs[0]
    row = result["rows"][0]
    assert row["label"] == label and row["lr"] == pytest.approx(1e-2)
    member = arch.replace(lr=np.float32(1e-2))
    for b in FCFG.budgets:
        cfg = dataclasses.replace(ctx.cfg.train, epochs=b, eval_every=0, patience=0)
        engine = Engine(cfg, ctx.space, ctx.data, chunk_size=1)
        key = jax.random.fold_in(jax.random.key(FCFG.seed), 0)
        res = engine.train(key[None], jax.tree.map(lambda x: np.asarray(x)[None], member))
        assert float(res.fitness[0]) == pytest.approx(row["budgets"][str(b)], abs=1e-6)


def test_rows_and_correlations(result):
    rows = result["rows"]
    assert len(rows) == (3 + 2) * 2  # archs x lrs
    assert {r["label"] for r in rows} >= {"mf", "gcn", "sample#1"}
    for r in rows:
        assert len(r["curve"]) == 4 and r["best_epoch"] <= 4
        if r["converged"] is not None:
            # Converged = the best evaluation; no budget beats it.
            assert r["converged"] == pytest.approx(max(x for x in r["curve"] if x is not None))
    for name, c in result["correlations"].items():
        assert -1.0 <= c["spearman"] <= 1.0 and -1.0 <= c["kendall"] <= 1.0, name
    lines = fidelity.table(result)
    assert lines[0].startswith("| comparison") and len(lines) == 2 + len(result["correlations"])


def test_correlations_on_known_rankings():
    def row(label, lr, b5, conv, test):
        return {"label": label, "lr": lr, "budgets": {"5": b5}, "converged": conv, "test": test}

    rows = [row("a", 1, 0.1, 0.3, 0.3), row("b", 1, 0.2, 0.2, 0.2), row("c", 1, 0.3, 0.1, 0.1),
            row("a", 2, 0.0, 0.5, 0.4), row("c", 2, 0.9, 0.0, 0.0)]  # fmt: skip
    c = fidelity.correlations(rows, (5,))
    assert c["valid@5 vs converged valid"]["spearman"] == pytest.approx(-1.0)  # d² sum 40, n 5
    # Tuned: a 0.5 (lr 2), b 0.2, c 0.1; best short score per arch: a 0.1, b 0.2, c 0.9.
    assert c["valid@5 (best lr) vs tuned valid"]["spearman"] == pytest.approx(-1.0)
    assert c["tuned valid vs tuned test"]["kendall"] == pytest.approx(1.0)
    assert fidelity.tuned(rows)["a"]["lr"] == 2


def test_config_checks():
    with pytest.raises(ValueError, match="patience too small"):
        fidelity.FidelityConfig(budgets=(5, 100), patience=3)
    with pytest.raises(ValueError, match="multiples of eval_every"):
        fidelity.FidelityConfig(budgets=(7,))


@pytest.mark.slow
def test_script_writes_table_json_and_figure(tmp_path, capsys, monkeypatch):
    argv = ["fidelity.py", "--config", str(TINY), "--n-archs", "2", "--presets", "mf",
            "--budgets", "1,2", "--max-epochs", "3", "--eval-every", "1", "--patience", "2",
            "--out", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(CONFIGS.parent / "scripts" / "fidelity.py"), run_name="__main__")
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "| valid@2 vs converged valid |" in out
    result = json.loads((tmp_path / "fidelity.json").read_text())
    assert len(result["rows"]) == 3 and (tmp_path / "fidelity.png").stat().st_size > 1000
