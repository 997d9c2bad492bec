"""Several processes through jax.distributed (`jgnas.distributed`): 2 processes on loopback, CPU.

The processes are real `jgnas search` subprocesses on 127.0.0.1 (gloo collectives between the CPU
processes). A run of 2 processes must produce the search of one process: the same history.jsonl
(except the wall-clock `train_seconds`), the same winner and final metrics, and only process 0
writes (process 1 is given its own --out, which must stay absent). The config asks for solo
members (chunk_size 1), so each member's numbers do not depend on which process trains it.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import pytest

from jgnas import cli, distributed

# A small search: 2 ops, 1 layer, 5 candidates x 2 generations, 1 retrained seed, no baselines.
CONFIG = """\
name: dist
data: {name: synthetic, synthetic_users: 40, synthetic_items: 50, synthetic_interactions: 500}
space: {max_layers: 1, dims: [8], ops: [lightgcn, gcn]}
train: {epochs: 1, batch_size: 128, ks: [10], metric_k: 10, eval_block: 32}
final: {top_k: 1, seeds: 1, epochs: 1, eval_every: 1, patience: 0, baselines: []}
search: {strategy: regularized_evolution, population_size: 5, generations: 2, seed: 3, chunk_size: 1}
"""
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: pathlib.Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JGNAS_COORD", "SLURM_"))}
    # The suite's persistent XLA cache (conftest.py): the single process's compiles hit it.
    env["JAX_COMPILATION_CACHE_DIR"] = str(jax.config.jax_compilation_cache_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "jgnas.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=env,
    )


def _wait(procs: dict[str, subprocess.Popen], logs: pathlib.Path) -> None:
    try:
        for name, p in procs.items():
            rc = p.wait(timeout=TIMEOUT_S)
            tail = (logs / f"{name}.log").read_text()[-3000:]
            assert rc == 0, f"{name} exited {rc}:\n{tail}"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()


def _history(run: pathlib.Path) -> list[dict]:
    lines = (run / "history.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "train_seconds"} for x in lines]


def _final(run: pathlib.Path) -> dict:
    out = json.loads((run / "final_metrics.json").read_text())
    return {k: v for k, v in out.items() if not k.endswith("_seconds")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> pathlib.Path:
    """One single-process search and the same search by 2 processes, all three run concurrently
    (~40-60 s on 2 idle cores, nearly all of it compiling; process 1 cannot use the persistent
    compilation cache, which jax writes from process 0 only)."""
    root = tmp_path_factory.mktemp("distributed")
    (root / "dist.yaml").write_text(CONFIG)
    search = ["search", "--config", str(root / "dist.yaml")]
    coord = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    procs = {
        "single": _start([*search, "--out", str(root / "single")], root / "single.log"),
        "p0": _start([*search, "--out", str(root / "p0"), *coord, "--process-id", "0"], root / "p0.log"),
        "p1": _start([*search, "--out", str(root / "p1"), *coord, "--process-id", "1"], root / "p1.log"),
    }  # fmt: skip
    _wait(procs, root)
    return root


def test_two_processes_search_like_one_and_only_process_0_writes(runs):
    single, p0 = runs / "single", runs / "p0"
    assert not (runs / "p1").exists()  # process 1 wrote nothing
    history = _history(p0)
    assert len(history) == 10 and history == _history(single)
    assert any(r["fitness"] for r in history)
    assert (p0 / "best_arch.json").read_text() == (single / "best_arch.json").read_text()
    assert _final(p0) == _final(single)
    names = {p.name for p in p0.iterdir()}
    assert {"config.yaml", "checkpoints", "best_model", "summary.md"} <= names
    # Process 0 speaks for the run: process 1 prints no progress lines.
    assert "gen 2/2" in (runs / "p0.log").read_text()
    assert "gen 2/2" not in (runs / "p1.log").read_text()


@pytest.mark.slow  # ~15-30 s on 2 cores: the retraining compiles again
def test_resume_by_two_processes_needs_no_files_on_process_1(runs):
    # Process 0 restores the finished search from its checkpoint and broadcasts the config, the
    # strategy state and the archive; process 1 is pointed at a folder that does not exist.
    coord = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    before = _final(runs / "p0")
    procs = {
        "r0": _start(["search", "--resume", str(runs / "p0"), *coord, "--process-id", "0"],
                     runs / "r0.log"),
        "r1": _start(["search", "--resume", str(runs / "absent"), *coord, "--process-id", "1"],
                     runs / "r1.log"),
    }  # fmt: skip
    _wait(procs, runs)
    assert not (runs / "absent").exists()
    assert "resumed after generation 2/2" in (runs / "r0.log").read_text()
    assert _final(runs / "p0") == before
    assert _history(runs / "p0") == _history(runs / "single")


def test_member_slices_cover_the_population_with_padding():
    for P in (1, 2, 5, 8):
        for n in (1, 2, 3):
            slices = [distributed.member_slice(P, n, i) for i in range(n)]
            assert len({s.size for s in slices}) == 1  # equal shapes for the all-gather
            flat = [int(x) for s in slices for x in s]
            assert flat[:P] == list(range(P)) and set(flat[P:]) <= {P - 1}


def test_one_process_needs_no_coordinator_and_bad_counts_fail(capsys, tmp_path):
    args = cli.build_parser().parse_args(["search"])
    assert cli._processes(args) == (None, 1, 0)
    for flags, message in (
        (["--num-processes", "2", "--process-id", "0"], "need --coordinator"),
        (["--num-processes", "2", "--process-id", "2"], "must be in [0,"),
    ):
        code = cli.main(["search", "--out", str(tmp_path / "x"), *flags])
        assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_environment_defaults(monkeypatch):
    args = cli.build_parser().parse_args(["search"])
    monkeypatch.setenv("JGNAS_COORDINATOR", "10.0.0.1:1234")
    monkeypatch.setenv("JGNAS_NUM_PROCESSES", "4")
    monkeypatch.setenv("JGNAS_PROCESS_ID", "3")
    assert cli._processes(args) == ("10.0.0.1:1234", 4, 3)
    for key in ("JGNAS_COORDINATOR", "JGNAS_NUM_PROCESSES", "JGNAS_PROCESS_ID"):
        monkeypatch.delenv(key)
    # Inside a SLURM step: the task count and rank; jax finds the coordinator (first node).
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node[01-02]")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert cli._processes(args) == (None, 2, 1)
    args = cli.build_parser().parse_args(["search", "--num-processes", "1", "--process-id", "0"])
    assert cli._processes(args) == (None, 1, 0)  # flags win
