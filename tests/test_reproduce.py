"""scripts/reproduce.py: expected ranges, the table formats, the runner, and --quick runs."""

import csv
import io
import json
import math
import os
import pathlib
import runpy
import subprocess
import sys

import jax
import pytest

from jgnas import reproduce
from jgnas.reproduce import checks, tables
from jgnas.reproduce.targets import Output, Target

ROOT = pathlib.Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "reproduce.py"


# ---- expected ranges -----------------------------------------------------------------------------


def test_a_number_outside_its_range_is_reported():
    expected = {"lightgcn test ndcg@20": (0.32, 0.35), "* test ndcg@20": (0.2, 0.4),
                "ngcf test ndcg@20": (0.2, 0.4)}  # fmt: skip
    values = {"lightgcn test ndcg@20": 0.31, "mf test ndcg@20": 0.29, "gat test ndcg@20": None,
              "sage test ndcg@20": math.nan, "mf compile s": 3.0}  # fmt: skip
    got = {c.name: c for c in checks.check("quality", values, expected)}
    # the first matching pattern gives the range: lightgcn's own, not the wildcard's
    assert (got["lightgcn test ndcg@20"].status, got["lightgcn test ndcg@20"].lo) == (
        checks.OUT,
        0.32,
    )
    assert got["mf test ndcg@20"].status == checks.OK and got["mf test ndcg@20"].hi == 0.4
    assert got["gat test ndcg@20"].status == got["sage test ndcg@20"].status == checks.OUT
    assert got["mf compile s"].status == checks.NO_RANGE  # every number must have a range
    assert got["ngcf test ndcg@20"].status == checks.MISSING  # a row that was not produced
    assert [c.failed for c in got.values()] == [True, False, True, True, True, True]
    lines = checks.report_lines(list(got.values()))
    assert lines[0] == "expected ranges: 1 of 6 numbers in range; 5 not:"
    assert "| quality | lightgcn test ndcg@20 | 0.31 | [0.32, 0.35] | OUT-OF-RANGE |" in lines
    assert not any("mf test ndcg@20 |" in line for line in lines)  # only the failures are listed
    ok = checks.check("quality", {"lightgcn test ndcg@20": 0.33}, {"lightgcn *": (0.32, 0.35)})
    assert checks.report_lines(ok) == ["expected ranges: 1 of 1 numbers in range."]


def test_the_scripts_expected_ranges_are_well_formed():
    expected = runpy.run_path(str(SCRIPT))["EXPECTED"]
    assert set(expected) == set(reproduce.TARGETS)
    for target, ranges in expected.items():
        for pattern, (lo, hi) in ranges.items():
            assert lo <= hi, (target, pattern)
            assert "[" not in pattern, "fnmatch would read [...] as a character class"


# ---- tables --------------------------------------------------------------------------------------


def small_table():
    return tables.Table("t", ("model", "test NDCG@20", "Δ %", "n"),
                        (("lightgcn_x", {"mean": 0.33031, "std": 0.0004}, 1.25, 3),
                         ("pop & co", 0.1555, None, 1)), formats={"Δ %": "+.1f"})  # fmt: skip


def test_table_formats():
    t = small_table()
    md = tables.markdown(t)
    assert md[:2] == ["| model | test NDCG@20 | Δ % | n |", "|---|---|---|---|"]
    assert md[2] == "| lightgcn_x | 0.3303 ± 0.0004 | +1.2 | 3 |" and md[3].endswith("|  | 1 |")
    rows = list(csv.reader(io.StringIO(tables.csv_text(t))))
    assert rows[0] == ["model", "test NDCG@20 mean", "test NDCG@20 std", "Δ %", "n"]
    assert rows[1] == ["lightgcn_x", "0.33031", "0.0004", "1.25", "3"]  # numbers unformatted
    assert rows[2] == ["pop & co", "0.1555", "", "", "1"]
    tex = tables.latex(t)
    assert r"lightgcn\_x & 0.3303 $\pm$ 0.0004 & +1.2 & 3 \\" in tex
    assert r"pop \& co" in tex and r"$\Delta$ \%" in tex and tex.count("tabular") == 2
    with pytest.raises(ValueError, match="a row has 1 cells, not 2"):
        tables.Table("bad", ("a", "b"), (("x",),))


def test_check_files_finds_what_is_missing_or_broken(tmp_path):
    written = tables.write(small_table(), tmp_path)
    assert tables.check_files(written) == []
    (tmp_path / "bad.csv").write_text("a,b\n1\n")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "bad.tex").write_text(r"\begin{tabular}{l}")
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "bad.md").write_text("no table here\n")
    names = ["bad.csv", "bad.png", "bad.tex", "bad.json", "bad.md", "absent.csv"]
    found = tables.check_files([tmp_path / n for n in names])
    assert [p.split(":")[0] for p in found] == names
    assert "absent.csv: not written" in found


# ---- the runner, on a fake target (no training) --------------------------------------------------


def test_run_writes_every_format_and_fails_on_an_out_of_range_number(tmp_path, monkeypatch):
    def fake(env):
        return Output([small_table()], {"lightgcn test ndcg@20": 0.30}, {"raw": 1})

    monkeypatch.setitem(reproduce.TARGETS, "fake", Target(fake, "A fake target"))
    env = reproduce.Env(out=tmp_path, log=lambda s: None)
    expected = {"fake": {"lightgcn test ndcg@20": (0.32, 0.35)}}
    outcome = reproduce.run(["fake"], env, expected)
    assert outcome.exit_code == 1
    (r,) = outcome.results
    assert r.problems == [] and [c.status for c in r.checks] == [checks.OUT]
    assert sorted(p.name for p in r.files) == ["fake.json", "fake.md", "t.csv", "t.tex"]
    md = (tmp_path / "fake.md").read_text()
    assert md.startswith("# A fake target") and "Made by `python scripts/reproduce.py fake`" in md
    report = "\n".join(outcome.report_lines())
    assert "| fake | lightgcn test ndcg@20 | 0.3 | [0.32, 0.35] | OUT-OF-RANGE |" in report
    assert "OUT-OF-RANGE" in (tmp_path / "checks.md").read_text()
    assert reproduce.run(["fake"], env, {"fake": {"lightgcn *": (0.2, 0.4)}}).exit_code == 0
    # --quick: ranges are not checked, files are
    quick = reproduce.run(["fake"], reproduce.Env(out=tmp_path, quick=True, log=lambda s: None))
    assert quick.exit_code == 0 and quick.results[0].checks == []


def test_checks_md_sums_up_targets_of_earlier_runs(tmp_path, monkeypatch):
    # The full set takes hours: run in pieces, checks.md still covers every target recorded.
    for name, value in (("fake", 0.33), ("other", 0.10)):
        monkeypatch.setitem(reproduce.TARGETS, name, Target(
            lambda env, v=value: Output([small_table()], {"x test ndcg@20": v}, {}), name))  # fmt: skip
    expected = {t: {"x *": (0.32, 0.35)} for t in ("fake", "other")}
    env = reproduce.Env(out=tmp_path, log=lambda s: None)
    assert reproduce.run(["fake"], env, expected).exit_code == 0
    outcome = reproduce.run(["other"], env, expected)
    assert outcome.exit_code == 1 and [r.name for r in outcome.results] == ["other"]
    md = (tmp_path / "checks.md").read_text()
    assert "| fake | earlier |" in md and "| other | this run |" in md
    assert "| fake | x test ndcg@20 | 0.33 | [0.32, 0.35] | ok |" in md
    assert "| other | x test ndcg@20 | 0.1 | [0.32, 0.35] | OUT-OF-RANGE |" in md
    assert "1 of 2 numbers in range" in md
    rec = json.loads((tmp_path / "fake.checks.json").read_text())
    assert rec["target"] == "fake" and rec["values"] == {"x test ndcg@20": 0.33}
    # rerunning a target replaces its record; recorded numbers are checked against today's ranges
    expected = {"fake": {"x *": (0.0, 0.2)}, "other": {"x *": (0.0, 0.2)}}
    reproduce.run(["other"], env, expected)
    assert "1 of 2 numbers in range" in (tmp_path / "checks.md").read_text()
    assert (
        "| fake | x test ndcg@20 | 0.33 | [0, 0.2] | OUT-OF-RANGE |"
        in (tmp_path / "checks.md").read_text()
    )


def test_a_failing_target_is_reported_and_the_others_run(tmp_path, monkeypatch):
    def broken(env):
        raise ValueError("no data")

    monkeypatch.setitem(reproduce.TARGETS, "broken", Target(broken, "Broken"))
    monkeypatch.setitem(reproduce.TARGETS, "fake", Target(
        lambda env: Output([small_table()], {}, {}), "Fake"))  # fmt: skip
    outcome = reproduce.run(["fake", "broken"], reproduce.Env(out=tmp_path, quick=True,
                                                              log=lambda s: None))  # fmt: skip
    assert [r.name for r in outcome.results] == ["broken", "fake"]  # TARGETS order
    assert outcome.results[0].problems == ["ValueError: no data"] and outcome.results[1].ok
    assert outcome.exit_code == 1
    with pytest.raises(ValueError, match="unknown targets"):
        reproduce.run(["nope"], reproduce.Env(out=tmp_path))


# ---- the script, --quick -------------------------------------------------------------------------


def run_script(args, data_dir: pathlib.Path, out: pathlib.Path) -> subprocess.CompletedProcess:
    env = os.environ | {  # the session's data, and conftest's compilation cache
        "JGNAS_DATA": str(data_dir),
        "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or "",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",
    }
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--quick", "--out", str(out), "-q"],
                          env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip


def check_outputs(out: pathlib.Path, targets) -> None:
    for t in targets:
        assert (out / f"{t}.md").is_file() and (out / f"{t}.csv").is_file(), t
        assert (out / f"{t}.tex").is_file() and (out / f"{t}.json").is_file(), t
        assert f"Made by `python scripts/reproduce.py {t} --quick`" in (out / f"{t}.md").read_text()
    written = [p for p in out.iterdir() if p.is_file()]
    assert tables.check_files(written) == []


def test_quick_quality_and_parity(ml100k_dir, tmp_path):
    """Two cheap targets end to end (~1.5 min on 2 loaded cores)."""
    proc = run_script(["quality", "parity"], ml100k_dir.parent, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    check_outputs(tmp_path, ["quality", "parity"])
    assert "| parity |" in proc.stdout and "| quality |" in proc.stdout
    quality = (tmp_path / "quality.md").read_text()
    assert "| popularity |  |  |  | 0.1768 | 0.1555 |" in quality  # exact on any machine
    parity = (tmp_path / "parity.md").read_text()
    assert "RecBole 1.2.1 (recorded)" in parity and "jgnas mf/rb_hp" in parity
    assert "--quick: files checked" in (tmp_path / "checks.md").read_text()


@pytest.mark.slow  # every target at its quick budget: several minutes on 2 CPU cores
def test_quick_everything(ml100k_dir, tmp_path):
    proc = run_script([], ml100k_dir.parent, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    check_outputs(tmp_path, list(reproduce.TARGETS))
    for png in ("search_curve.png", "fidelity.png"):
        assert (tmp_path / png).stat().st_size > 1000
    for extra in ("bench_aggregation", "bench_eval"):
        assert (tmp_path / f"{extra}.csv").is_file()
    assert (tmp_path / "runs" / "search" / "best_arch.json").is_file()
