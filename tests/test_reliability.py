"""Reliability (issue 13): one run per directory, no result from nothing, Ctrl-C that always
works, self-healing caches and checkpoints, and one-line errors instead of tracebacks.

The subprocess tests run real `jgnas search` processes through tests/interrupt_driver.py, which
marks events on stderr (`@compile`, `@chunk`, `@checkpoint`, `@write NAME`) so the signals land at
chosen points. Every point comes from a seeded RNG. They share the persistent XLA cache of the
in-process tests (conftest.py), passed on through JAX_COMPILATION_CACHE_DIR.

"Byte-identical" final files: every file of a resumed run equals the uninterrupted run's byte for
byte, except the wall-clock measurements (history.jsonl `train_seconds`, final_metrics.json
`search_seconds`/`final_seconds`/`tune_seconds`, the two durations in summary.md's first line), which are masked,
and best_model/, whose orbax files carry timestamps and random names: its restored arrays are
compared exactly instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
from conftest import CONFIGS

from jgnas import config as config_lib
from jgnas import data as data_lib
from jgnas import experiment, interrupt, rundir
from jgnas.cli import main
from jgnas.config import ConfigError
from jgnas.data import DataConfig, DataError
from jgnas.executor import Executor
from jgnas.search import checkpoints, loop
from jgnas.space import Space

TINY = str(CONFIGS / "tiny.yaml")
ROOT = CONFIGS.parent
DRIVER = pathlib.Path(__file__).parent / "interrupt_driver.py"
# The subprocess runs: the tiny config at 3 x 3 candidates, retrained over one seed (mf included).
# Solo members (chunk_size 1): every member is an executor call, so the interruption tests have
# enough points between chunks to aim at (the CPU default groups same-op members into fewer).
SMALL = ["--set", "search.generations=3", "--set", "search.population_size=3",
         "--set", "final.seeds=1", "--set", "search.chunk_size=1"]  # fmt: skip
POPULATION = 3


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---- 1. one run per directory ---------------------------------------------------------------


def test_new_search_refuses_a_non_empty_run_dir(tmp_path, capsys):
    run = tmp_path / "reuse"
    (run / "checkpoints" / "2").mkdir(parents=True)
    (run / "config.yaml").write_text("name: old\n")
    assert main(["search", "--config", TINY, "--set", "search.seed=1", "--out", str(run)]) == 2
    line = _error_line(capsys)
    assert f"{run}: not empty" in line and rundir.resume_command(run) in line
    assert "--overwrite" in line
    assert (run / "config.yaml").read_text() == "name: old\n"  # untouched


def test_overwrite_empties_the_directory_first(tmp_path):
    run = tmp_path / "reuse"
    (run / "checkpoints" / "2").mkdir(parents=True)
    (run / "history.jsonl").write_text("old\n")
    with rundir.claim(run, resume=False, overwrite=True) as claim:
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK]
        assert not claim.created
    # Leftovers of a run killed before it wrote config.yaml do not make a run: no --overwrite.
    (run / "config.yaml.tmp").write_text("x")
    with rundir.claim(run, resume=False):
        assert not (run / "config.yaml.tmp").exists()


def test_search_loop_refuses_a_directory_with_checkpoints(tmp_path):
    cfg = config_lib.load(TINY)
    ctx = experiment.prepare(cfg, log=experiment.quiet)
    (tmp_path / "checkpoints" / "0").mkdir(parents=True)
    with pytest.raises(rundir.RunDirError, match="holds the checkpoints of an earlier search"):
        loop.search(ctx, tmp_path, log=experiment.quiet)


def test_a_run_directory_is_locked_while_written(tmp_path, capsys):
    run = tmp_path / "run"
    # Another process holds the directory: neither a new search nor a resume may write it.
    holder = (
        "import sys, time\n"
        "from jgnas import rundir\n"
        "with rundir.claim(sys.argv[1], resume=False):\n"
        "    open(sys.argv[1] + '/config.yaml', 'w').write('name: tiny\\n')\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", holder, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "held"
        for argv in (["search", "--config", TINY, "--out", str(run), "--overwrite"],
                     ["search", "--resume", str(run)]):  # fmt: skip
            assert main(argv) == 2
            line = _error_line(capsys)
            assert "another jgnas process is writing this run directory" in line
            assert f"{run / rundir.LOCK} is locked" in line
        assert (run / "config.yaml").read_text() == "name: tiny\n"  # --overwrite cleared nothing
    finally:
        p.kill()
        p.wait()
    with rundir.claim(run, resume=True):  # released when its holder is gone
        with pytest.raises(rundir.RunDirError, match="another jgnas process"):
            with rundir.claim(run, resume=True):  # flock: a second open file is a second holder
                pass


def test_a_search_failing_before_its_first_checkpoint_removes_its_directory(tmp_path, capsys):
    bad = ["--set", "data.ratios=[0.9, 0.0, 0.1]"]  # no validation part
    new = tmp_path / "new"
    assert main(["search", "--config", TINY, *bad, "--out", str(new), "-q"]) == 2
    assert "the valid split is empty" in _error_line(capsys)
    assert not new.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["search", "--config", TINY, *bad, "--out", str(empty), "-q"]) == 2
    capsys.readouterr()
    assert empty.is_dir() and not list(empty.iterdir())  # left as it was found


# ---- 2. no result from nothing --------------------------------------------------------------


@pytest.fixture()
def one_per_user(tmp_path) -> pathlib.Path:
    """A csv where every user has exactly one interaction."""
    path = tmp_path / "one.csv"
    path.write_text("user_id,item_id\n" + "".join(f"{u},{u % 7}\n" for u in range(40)))
    return path


def test_no_held_out_interactions_fail_early_naming_split_and_counts(
    one_per_user, tmp_path, capsys
):
    argv = ["search", "--config", TINY, "--set", "data.name=one", "--set",
            f"data.path={one_per_user}", "--out", str(tmp_path / "run"), "-q"]  # fmt: skip
    assert main(argv) == 2
    line = _error_line(capsys)
    assert (
        "data one: the valid split is empty (train/valid/test = 40/0/0 interactions, 40 users)"
        in line
    )
    assert "every user has fewer than 3 interactions" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "ratios, part", [("[0.9, 0.1, 0.0]", "test"), ("[1.0, 0.0, 0.0]", "valid")]
)
def test_an_empty_held_out_part_fails_whatever_the_reason(ratios, part):
    cfg = config_lib.load(TINY, [f"data.ratios={ratios}"])
    with pytest.raises(
        DataError, match=rf"the {part} split is empty \(train/valid/test = \d+/\d+/0"
    ):
        experiment.prepare(cfg, log=experiment.quiet)


def test_a_zero_baseline_gives_no_relative_gain():
    from jgnas import report

    def row(label, v):
        stat = {"mean": v, "std": 0.0}
        return {"label": label, "describe": label, "valid": {"ndcg@20": stat},
                "test": {"recall@20": stat, "ndcg@20": stat}}  # fmt: skip

    summary = {"name": "x", "dataset": "x", "fitness": "ndcg@20", "strategy": "random",
               "candidates_evaluated": 1, "candidates_trained": 1, "failed": 0,
               "search_seconds": 1.0, "final_seconds": 1.0, "device": "cpu", "winner": "search#1",
               "rows": [row("search#1", 0.1), row("mf", 0.0)],
               "vs_best_baseline": {"baseline": "mf", "metric": "ndcg@20", "relative_gain": None}}  # fmt: skip
    md = report.summary_markdown(summary, [20], 1)
    assert "Winner vs best baseline (mf) on test ndcg@20: n/a (the baseline scores 0)." in md


# ---- 3. invalid values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("space.lrs=[-0.01]", "space.lrs: learning rates must be finite and > 0"),
        ("space.lrs=[0]", "space.lrs: learning rates must be finite and > 0"),
        ("space.l2s=[-1e-4]", "space.l2s: L2 coefficients must be finite and >= 0"),
        ("space.dims=[0, 8]", "space.dims: dimensions must be positive"),
        ("name=../../x", "name: '../../x' must be a plain file name"),
        ("name=a/b", "name: 'a/b' must be a plain file name"),
        ("final.epochs=0", "final.epochs: must be >= 1, got 0"),
        ("final.eval_every=3", "final.eval_every: must divide final.epochs=2"),
        ("final.patience=-1", "final.patience: must be >= 0"),
        ("space.lrs=[1e-3, fast]", "space.lrs[1]: expected a number, got 'fast'"),
    ],
)
def test_invalid_values_fail_at_load_naming_the_key(override, message, tmp_path, capsys):
    with pytest.raises(ConfigError) as e:
        config_lib.load(TINY, [override])
    assert message in str(e.value) and "\n" not in str(e.value)
    # Through the CLI: one line, before any work (no run directory, no data loaded).
    out = tmp_path / "run"
    assert main(["search", "--config", TINY, "--set", override, "--out", str(out)]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_numbers_in_overrides_are_numbers():
    cfg = config_lib.load(TINY, ["space.lrs=[1e-3, 1e-2]", "data.rating_threshold=1e0",
                                 "search.cost_weight=5e-1"])  # fmt: skip
    assert cfg.space.lrs == (1e-3, 1e-2)
    assert cfg.data.rating_threshold == 1.0 and cfg.search.cost_weight == 0.5
    with pytest.raises(ConfigError, match="search.population_size: expected an integer"):
        config_lib.load(TINY, ["search.population_size=1e3"])  # only number fields coerce


def test_presets_keep_their_published_hyperparameters():
    # Grids without the published lr 1e-3, L2 1e-4 or dim 64 (the supernet is 16 wide).
    space = Space(ops=("lightgcn", "ngcf"), dims=(8, 16), lrs=(1e-2,), l2s=(0.0,))
    mf = space.preset("mf")
    assert float(mf.lr) == pytest.approx(1e-3) and float(mf.l2) == pytest.approx(1e-4)
    assert int(mf.dim) == 16  # the one change: wider than the supernet
    assert space.preset_changes("mf") == ("dim 64 -> 16 (the largest of space.dims)",)
    assert space.describe(mf) == "MF d16 drop0 lr1e-03 l2 1e-04 id"
    assert space.preset_changes("ngcf") == ("dim 64 -> 16 (the largest of space.dims)",)
    assert float(space.preset("ngcf").dropout) == pytest.approx(0.1)
    assert not space.is_on_grid(mf)
    with pytest.raises(ValueError, match=r"lr=0.001 is not in the space's lr grid"):
        space.keys(mf)  # not a point of the search: no genome, no canonical key
    assert Space(ops=("lightgcn",)).preset_changes("lightgcn") == ()  # the default grids hold it
    # On-grid archs keep their keys and canonical forms.
    on_grid = Space(ops=("lightgcn",), dims=(16, 64), lrs=(1e-3,), l2s=(1e-4,))
    lgc = on_grid.preset("lightgcn")
    assert on_grid.is_on_grid(lgc) and on_grid.keys(lgc) == on_grid.keys(on_grid.canonical(lgc))


def test_off_grid_archs_round_trip_and_describe_their_values():
    space = Space(ops=("lightgcn",), dims=(16, 64))
    d = {**space.to_dict(space.preset("lightgcn")), "lr": 0.0015, "l2": 2.5e-5, "dim": 48}
    arch = space.from_dict(d)
    assert space.to_dict(arch) == d
    assert "d48 drop0 lr1.5e-03 l2 2.5e-05" in space.describe(arch)
    for key, value, rule in [("dim", 65, r"1\.\.64"), ("lr", -0.01, "> 0"), ("lr", float("inf"), "> 0"),
                             ("l2", -1.0, ">= 0"), ("dropout", 1.0, r"\[0, 1\)")]:  # fmt: skip
        with pytest.raises(ValueError, match=rf"{key}={value!r} must be .*{rule}"):
            space.from_dict({**d, key: value}, where="a.json")


def test_train_takes_an_off_grid_arch_file_and_a_preset(tmp_path, capsys):
    cfg = config_lib.load(TINY)
    layer = {"op": "lightgcn", "transform": "identity", "act": "identity", "residual": False}
    arch = {**cfg.space.to_dict(cfg.space.preset("mf")), "depth": 1, "layers": [layer],
            "combine": "mean", "lr": 0.0015, "l2": 2.5e-5}  # fmt: skip
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    argv = ["train", "--config", TINY, "--arch", str(tmp_path / "arch.json"), "--preset", "mf",
            "--seeds", "1"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "lr1.5e-03 l2 2.5e-05" in out and "| mf (MF d16 drop0 lr1e-03 l2 1e-04 id)" in out
    assert "note: preset mf: dim 64 -> 16 (the largest of space.dims)" in err


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", TINY, "--preset", "mf", "--seeds", "0"], "--seeds: must be >= 1, got 0"),
    (["train", "--config", TINY, "--preset", "mf", "--seeds", "-2"], "--seeds: must be >= 1, got -2"),
    (["recommend", "/nonexistent", "--user", "1", "-k", "-5"], "-k: must be >= 1, got -5"),
])  # fmt: skip
def test_bad_counts_are_refused(argv, message, capsys):
    assert main(argv) == 2
    assert message in _error_line(capsys)


def test_recommend_refuses_k_below_one():
    from jgnas import serve

    ds = data_lib.load(DataConfig(name="synthetic", synthetic_users=5, synthetic_items=8,
                                  synthetic_interactions=30))  # fmt: skip
    rec = serve.Recommender(ds, np.ones((5, 2)), np.ones((8, 2)), "x")
    assert len(rec.recommend("0", k=3)) == 3
    with pytest.raises(ValueError, match="k: must be >= 1"):
        rec.recommend("0", k=-5)


def _inter(path: pathlib.Path, ratings, encoding="utf-8", bom=False) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{u}\t{i}\t{r}\n" for u, i, r in ratings)
    text = "user_id:token\titem_id:token\trating:float\n" + rows
    (path / f"{path.name}.inter").write_bytes((("\ufeff" if bom else "") + text).encode(encoding))
    return path


NEGATIVE = [(u, i, -1.0 if (u + i) % 4 == 0 else 4.0) for u in range(6) for i in range(5)]


def test_negative_ratings_are_reported_and_the_threshold_honoured(tmp_path, capsys):
    folder = _inter(tmp_path / "neg", NEGATIVE)
    n_neg = sum(r < 0 for _, _, r in NEGATIVE)
    cache = ["--cache-dir", str(tmp_path / "c")]
    assert main(["data", "info", str(folder), "--json", *cache]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert info["stats"]["negative_ratings"] == n_neg and info["interactions"] == len(NEGATIVE)
    assert f"warning: {n_neg} interactions have negative ratings and are kept as positives" in err
    assert "data.rating_threshold" in err
    assert main(["data", "info", str(folder), "--json", "--rating-threshold", "0", *cache]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert info["stats"]["negative_ratings"] == 0 and info["stats"]["below_threshold"] == n_neg
    assert info["interactions"] == len(NEGATIVE) - n_neg and "warning" not in err


# ---- 5. Ctrl-C (unit level; the subprocess tests are at the end) ------------------------------


def test_the_executor_stops_between_chunks():
    ran = []

    def fn(x):
        return x * 2

    ex = Executor(fn, fn, 1, chunk_size=1, should_stop=lambda: len(ran) >= 2)
    ex.on_chunk = lambda done, total: ran.append(done)
    with pytest.raises(interrupt.Interrupted):
        ex((jax.numpy.arange(5.0),), ())
    assert ran == [1, 2]  # two whole chunks, then the stop: nothing cut inside XLA
    assert issubclass(interrupt.Interrupted, KeyboardInterrupt)


def test_sigint_sets_the_flag_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with interrupt.catch_sigint(lambda: "msg", grace_s=30.0) as should_stop:
        assert not should_stop()
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # delivered between bytecodes
            if should_stop():
                break
            time.sleep(0.01)
        assert should_stop()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_run_stuck_in_native_code_is_exited_after_the_grace():
    # The main thread never reaches a check: the watchdog exits with 130 and the message.
    code = (
        "import sys, time\n"
        "from jgnas.interrupt import catch_sigint\n"
        "with catch_sigint(lambda: 'interrupted; resume hint', grace_s=0.5):\n"
        "    print('ready', flush=True)\n"
        "    while True: time.sleep(1)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    assert p.stdout.readline().strip() == "ready"
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err == "interrupted; resume hint\n"
    assert time.monotonic() - t < 30
    # A second Ctrl-C does not wait for the grace.
    code2 = code.replace("grace_s=0.5", "grace_s=60")
    p = subprocess.Popen([sys.executable, "-c", code2], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err == "interrupted; resume hint\n"


def test_the_interrupt_hint_is_the_resume_command(tmp_path):
    run = tmp_path / "run"
    assert rundir.interrupted_message(run).endswith("nothing to resume")
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    msg = rundir.interrupted_message(run)
    assert msg.endswith(f"Resume with: {rundir.resume_command(run)}")
    assert "the search starts over" in msg
    (run / "checkpoints" / "0").mkdir(parents=True)
    assert "the last finished generation is checkpointed" in rundir.interrupted_message(run)
    assert rundir.resume_command(run) == f"jgnas search --resume {run}"


# ---- 6. damaged caches ----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated npz", "empty npz", "{} json", "[] json"])
def test_a_damaged_data_cache_entry_is_rebuilt_with_one_warning(damage, tmp_path):
    cfg = DataConfig(name="synthetic", synthetic_users=20, synthetic_items=30,
                     synthetic_interactions=200)  # fmt: skip
    first = data_lib.load(cfg, cache_dir=tmp_path)
    stem = tmp_path / first.stats["cache_key"]
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    if damage == "truncated npz":
        npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    elif damage == "empty npz":
        npz.write_bytes(b"")
    else:
        js.write_text(damage.split()[0])
    lines = []
    again = data_lib.load(cfg, cache_dir=tmp_path, log=lines.append)
    assert again.stats["cache"] == "miss"
    assert len(lines) == 1 and lines[0].startswith(f"warning: damaged data cache entry {npz}")
    assert lines[0].endswith("rebuilding it")
    for p in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(again, p).items, getattr(first, p).items)
    assert data_lib.load(cfg, cache_dir=tmp_path, log=lines.append).stats["cache"] == "hit"
    assert len(lines) == 1


def test_a_damaged_text_cache_is_rebuilt_with_one_warning(tmp_path):
    from text_utils import TINY as TINY_BERT
    from text_utils import counting, write_model

    from jgnas.text import encode_cached, load_encoder

    enc, calls = counting(load_encoder(write_model(tmp_path / "bert", TINY_BERT)))
    first = encode_cached(enc, ["a cat", "a dog"], tmp_path / "c")
    (shard,) = (tmp_path / "c").rglob("*.npz")
    shard.write_bytes(shard.read_bytes()[:100])  # truncated zip
    (tmp_path / "c" / "checkpoints.json").write_text("[]")  # valid JSON, wrong shape
    calls.clear()
    lines = []
    again = encode_cached(enc, ["a cat", "a dog"], tmp_path / "c", log=lines.append)
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert sum(calls) == 2
    assert len(lines) == 1 and lines[0].startswith(f"warning: damaged text cache shard {shard}")


# ---- 7. one line, not a traceback -----------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ({"layers": [{"act": "relu"}], "depth": 1}, "layers[0] has no 'op'"),
        ({"layers": None, "depth": 1}, "layers=None must be a list of 1 layer objects"),
        (3, "an arch is a JSON object"),
        ({"layers": ["gcn"], "depth": 1}, "layers[0]='gcn' must be an object"),
        ({"depth": "two"}, "depth='two' must be an integer in 0..2"),
    ],
)
def test_bad_arch_files_fail_in_one_line_naming_the_file(content, message, tmp_path, capsys):
    cfg = config_lib.load(TINY)
    base = cfg.space.to_dict(cfg.space.preset("mf"))
    d = {**base, **content} if isinstance(content, dict) else content
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(d))
    assert main(["train", "--config", TINY, "--arch", str(path)]) == 2
    line = _error_line(capsys)
    assert f"{path}: " in line and message in line
    path.write_bytes(b"\xff\xfe\x00binary")
    assert main(["train", "--config", TINY, "--arch", str(path)]) == 2
    assert f"{path}: not a UTF-8 text file" in _error_line(capsys)


def test_cache_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["data", "info", "synthetic", "--cache-dir", str(f)]) == 2
    assert f"{f}: the data cache folder is a file" in _error_line(capsys)


def test_every_candidate_failing_ends_cleanly_and_keeps_the_history(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "search",
        "--config",
        TINY,
        *SMALL,
        "--set",
        "space.lrs=[1e30]",
        "--out",
        str(run),
        "-q",
    ]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert "every candidate failed, nothing to retrain: 9 of 9 candidates failed" in line
    assert "their learning rates: 1e+30" in line and str(run / "history.jsonl") in line
    history = (run / "history.jsonl").read_text().splitlines()
    assert len(history) == 9 and all(json.loads(h)["failed"] for h in history)
    assert not (run / "final_metrics.json").exists()


# ---- 8. damaged checkpoints -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx():
    cfg = config_lib.load(TINY, ["search.generations=3", "search.population_size=3"])
    return experiment.prepare(cfg, log=experiment.quiet)


def _damage(step_dir: pathlib.Path, item: str) -> None:
    """Truncates the item's data files (orbax's ocdbt chunks of the state; the meta's json)."""
    files = [p for p in (step_dir / item).rglob("*") if p.is_file() and p.parent.name == "d"]
    for p in files or [step_dir / item / "metadata"]:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])


def _records(archive, space):
    return [{k: v for k, v in r.to_json(space).items() if k != "train_seconds"} for r in archive]


@pytest.mark.slow  # ~10-20 s: four tiny searches, three of them resumed
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(ctx, tmp_path, monkeypatch):
    noise = []  # "Exception ignored" reports (tensorstore calling into orbax's closed loop)
    monkeypatch.setattr(sys, "unraisablehook", noise.append)
    full = loop.search(ctx, tmp_path / "full", log=experiment.quiet)
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", cut)
    ckpts = cut / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.name.isdigit()) == ["1", "2"]
    # A truncated state or metadata file is found by the checkpoint's manifest and named; without
    # a manifest (killed right after orbax's commit), orbax's own error is reported in one line.
    for case in ("state", "meta", "state, no manifest"):
        item = case.split(",")[0]
        run = tmp_path / case.replace(", ", "-").replace(" ", "-")
        shutil.copytree(cut, run)
        _damage(run / "checkpoints" / "2", item)
        if "no manifest" in case:
            (run / "checkpoints" / "2" / checkpoints.MANIFEST).unlink()
        lines = []
        resumed = loop.search(ctx, run, resume=True, log=lines.append)
        where = run / "checkpoints" / "2" / item
        assert lines[0].startswith(f"warning: {where}") and "damaged checkpoint (" in lines[0]
        assert len(lines[0]) < 300, lines[0]
        assert "resumed after generation 2/3" in lines[1]
        assert _records(resumed, ctx.space) == _records(full, ctx.space)  # generation 3 again
        assert len((run / "history.jsonl").read_text().splitlines()) == 9
    # Every checkpoint damaged: one short line naming the file, not a tensorstore dump.
    _damage(ckpts / "2", "state")
    _damage(ckpts / "1", "state")
    with pytest.raises(rundir.RunDirError) as e:
        loop.search(ctx, cut, resume=True, log=lambda m: None)
    msg = str(e.value)
    assert msg.startswith(f"{ckpts / '2' / 'state'}") and ": damaged checkpoint; no intact" in msg
    assert len(msg) < 300 and "\n" not in msg
    # A clean resume warns of nothing.
    lines = []
    loop.search(ctx, tmp_path / "full", resume=True, log=lines.append)
    assert lines == ["resumed after generation 3/3 (9 candidates archived)"]
    assert noise == []


# ---- smaller ones ----------------------------------------------------------------------------


def test_a_bom_is_stripped_and_the_encoding_honoured_for_inter_files(tmp_path):
    rows = [(u, i, 4.0) for u in range(5) for i in range(6)]
    bom = _inter(tmp_path / "bom", rows, bom=True)
    ds = data_lib.load(DataConfig(name="bom", path=str(bom)), cache=False)
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 30
    csv = tmp_path / "bom.csv"
    csv.write_bytes("\ufeffuser_id,item_id\n".encode() + b"".join(b"%d,%d\n" % r[:2] for r in rows))
    ds = data_lib.load(DataConfig(name="bom", path=str(csv)), cache=False)  # the header is found
    assert ds.n_users == 5 and ds.n_items == 6
    latin = tmp_path / "latin"
    _inter(latin, rows)
    text = (latin / "latin.inter").read_text().replace("\t0\t", "\té0\t")  # an id with é
    (latin / "latin.inter").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.inter:\d+: not valid utf-8 text"):
        data_lib.load(DataConfig(name="latin", path=str(latin)), cache=False)
    ds = data_lib.load(DataConfig(name="latin", path=str(latin), encoding="latin-1"), cache=False)
    assert "é0" in set(ds.item_ids)


def test_a_binary_config_names_the_file(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"name: x\n\x89PNG\x00\xff")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(p))}:2: not a UTF-8 text file"):
        config_lib.load(p)
    p.write_bytes(b"name: x\n\x00\x01")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(p))}.*not valid YAML") as e:
        config_lib.load(p)
    assert "\n" not in str(e.value)


def test_ks_above_the_number_of_items_names_train_ks():
    cfg = config_lib.load(TINY, ["data.synthetic_items=15"])
    with pytest.raises(DataError, match=r"train\.ks: \[10, 20\] has a cut-off above the 15 items"):
        experiment.prepare(cfg, log=experiment.quiet)


# ---- Ctrl-C and SIGKILL on real processes ----------------------------------------------------


class _Proc:
    """A `jgnas` subprocess through the event-marking driver; stderr is read line by line."""

    def __init__(self, argv: list[str], cache: pathlib.Path | None = None, limit_s: float = 300):
        env = dict(os.environ)  # JGNAS_DATA (conftest) included
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache or jax.config.jax_compilation_cache_dir)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
        self.p = subprocess.Popen([sys.executable, str(DRIVER), *argv], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)  # fmt: skip
        self.lines: list[str] = []
        self._timer = threading.Timer(limit_s, self.p.kill)  # never hang the suite
        self._timer.start()

    def events(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("@"):
                yield line[1:].strip()

    def finish(self) -> int:
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
        rc = self.p.wait()
        self._timer.cancel()
        return rc

    def tail(self) -> str:
        return "\n".join(self.lines[-15:])


def _cache_without_training(dest: pathlib.Path) -> pathlib.Path:
    """The shared XLA cache without its training programs (hard links, so it costs nothing):
    a process using it compiles the training program for real, everything else from the cache."""
    dest.mkdir()
    for f in pathlib.Path(jax.config.jax_compilation_cache_dir).iterdir():
        if f.is_file() and not f.name.startswith("jit_train-"):
            try:
                os.link(f, dest / f.name)
            except OSError:
                shutil.copy2(f, dest / f.name)
    return dest


def _fresh(run: pathlib.Path) -> list[str]:
    return ["search", "--config", TINY, *SMALL, "--out", str(run)]


def _resume(run: pathlib.Path) -> list[str]:
    return ["search", "--resume", str(run)]


def _chunk_calls(events: list[str]) -> list[int]:
    """Positions of the executor calls (first calls compile) in an event list."""
    return [i for i, e in enumerate(events) if e in ("compile", "chunk")]


def _generations_done(run: pathlib.Path) -> int:
    folder = run / "checkpoints"
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return max(steps, default=-1) + 1


@dataclasses.dataclass
class _Reference:
    path: pathlib.Path
    events: list[str]

    def calls_after(self, generations: int) -> int:
        """How many executor calls a run resumed after `generations` generations makes."""
        checkpoints = [i for i, e in enumerate(self.events) if e == "checkpoint"]
        start = checkpoints[generations - 1] if generations else -1
        return sum(1 for i in _chunk_calls(self.events) if i > start)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> _Reference:
    """An uninterrupted run of the small config (it also warms the XLA cache)."""
    path = tmp_path_factory.mktemp("reference") / "run"
    proc = _Proc(_fresh(path))
    events = list(proc.events())
    assert proc.finish() == 0, proc.tail()
    return _Reference(path, events)


def _mask(name: str, data: bytes) -> bytes:
    """Blanks the wall-clock measurements (see the module docstring)."""
    if name == "history.jsonl":
        return re.sub(rb'"train_seconds": [0-9.e+-]+', b'"train_seconds": T', data)
    if name == "final_metrics.json":
        return re.sub(rb'"(search|final|tune)_seconds": [0-9.e+-]+', rb'"\1_seconds": T', data)
    if name == "summary.md":
        return re.sub(rb"in \d+ s; retraining \d+ s", b"in T s; retraining T s", data)
    return data


def _final_files(run: pathlib.Path) -> dict[str, bytes]:
    import orbax.checkpoint as ocp

    names = sorted(p.name for p in run.iterdir())
    out = {"(listing)": "\n".join(names).encode()}
    for p in sorted(run.iterdir()):
        if p.is_file() and p.name != rundir.LOCK:
            out[p.name] = _mask(p.name, p.read_bytes())
    params = ocp.StandardCheckpointer().restore((run / "best_model").absolute())
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        out[f"best_model{jax.tree_util.keystr(path)}"] = np.asarray(leaf).tobytes()
    return out


def _assert_same_files(run: pathlib.Path, reference: _Reference) -> None:
    got, want = _final_files(run), _final_files(reference.path)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], f"{name} differs from the uninterrupted run's"


def _assert_clean_interrupt(proc: _Proc, rc: int, run: pathlib.Path, what: str) -> None:
    text = "\n".join(proc.lines)
    assert rc == 130, f"{what}: exit {rc}, not 130\n{proc.tail()}"
    for bad in ("Traceback", "pure virtual", "Fatal Python error", "core dumped"):
        assert bad not in text, f"{what}: {bad!r} on stderr\n{proc.tail()}"
    last = proc.lines[-1]
    assert last.startswith("interrupted; ") and last.endswith(
        f"Resume with: {rundir.resume_command(run)}"
    ), f"{what}: last line {last!r}"


@pytest.mark.slow  # ~1-2 min on 2 cores: 10 interrupted processes and a resume
def test_ctrl_c_during_compilation_and_training_then_resume(reference, tmp_path):
    """SIGINT to a real `jgnas search`: 5 times while XLA compiles the training program (a cache
    without it), then 5 times while it trains (after a seeded executor call that is not among the run's last three,
    so a boundary check follows). Each process resumes the previous one's run directory; each
    must exit 130 within 30 s with the resume hint; the last resume must reproduce the
    uninterrupted run's files."""
    rng = np.random.default_rng(13)
    run = tmp_path / "run"
    for i in range(10):
        compiling = i < 5
        argv = _fresh(run) if i == 0 else _resume(run)
        if compiling:
            target, delay = 1, float(rng.uniform(0.5, 2.0))  # into the first compilation
        else:
            n_calls = reference.calls_after(_generations_done(run))
            target, delay = int(rng.integers(1, n_calls - 3 + 1)), 0.0
        proc = _Proc(
            argv, cache=_cache_without_training(tmp_path / f"xla{i}") if compiling else None
        )
        calls = 0
        for event in proc.events():
            calls += event in ("compile", "chunk")
            if calls == target:
                time.sleep(delay)
                proc.p.send_signal(signal.SIGINT)
                sent = time.monotonic()
                break
        rc = proc.finish()
        what = f"SIGINT {i + 1} ({'compiling' if compiling else f'executor call {target}'})"
        assert calls == target, f"{what}: the run ended first\n{proc.tail()}"
        elapsed = time.monotonic() - sent
        assert elapsed < 30, (
            f"{what}: took {elapsed:.1f} s to stop; Ctrl-C must stop a run in seconds"
        )
        _assert_clean_interrupt(proc, rc, run, what)
    proc = _Proc(_resume(run))
    assert proc.finish() == 0, proc.tail()
    _assert_same_files(run, reference)


@pytest.mark.slow  # ~1 min on 2 cores: 5 killed processes and a resume
def test_sigkill_at_random_points_then_resume_gives_the_same_files(reference, tmp_path):
    """SIGKILL at 5 seeded points (an event of the process, plus a seeded delay of up to 0.1 s
    into what follows it: a compilation, a chunk, a checkpoint or a file write). Each process
    resumes the previous one's run directory; the last one finishes it, and every final file
    equals the uninterrupted run's."""
    rng = np.random.default_rng(9)
    run = tmp_path / "run"
    for i in range(5):
        # Every process has at least 6 events after writing config.yaml (a resume of a finished
        # search: history, 2 compilations, 2 chunks, 3 file writes), so the point is reached.
        target, delay = int(rng.integers(1, 7)), float(rng.uniform(0.0, 0.1))
        proc = _Proc(_fresh(run) if i == 0 else _resume(run))
        seen = 0
        for event in proc.events():
            if event == "write config.yaml":
                continue
            seen += 1
            if seen == target:
                time.sleep(delay)
                proc.p.kill()
                break
        rc = proc.finish()
        assert rc == -signal.SIGKILL, (
            f"kill {i + 1}: exit {rc} before event {target}\n{proc.tail()}"
        )
    proc = _Proc(_resume(run))
    assert proc.finish() == 0, proc.tail()
    _assert_same_files(run, reference)
