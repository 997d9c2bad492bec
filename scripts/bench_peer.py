"""`python scripts/bench.py --peer recbole`: jgnas against RecBole 1.2.1, per training epoch, in one run.

For each of `mf` (RecBole's BPR), `lightgcn` and `ngcf` on ml-100k (jgnas's default split, written
as RecBole benchmark files by `scripts/recbole_parity.py export`'s function; d 64, 3 layers, batch
2048, BPR with one uniform negative: RecBole's defaults with LightGCN at 3 layers), interleaved:

- RecBole in its own venv (`scripts/recbole_run.py --time-epochs`, a subprocess; torch never enters
  jgnas), with 1 and with 2 torch threads: seconds per `Trainer._train_epoch` (sampling, batches,
  forward, backward, Adam; no evaluation), the median of the epochs after the first;
- jgnas: the preset alone (chunk 1) and P = 8 copies of it with different keys (the CPU default
  chunk: one vmapped program), each trained `epochs` epochs at batch 2048 in a space holding only
  that model (its op, d 64, BPR); steady state (a second call, compile excluded), seconds per
  candidate-epoch. Each call also evaluates every member once on validation (0.1-0.3 s), which
  counts against jgnas.

The ratio is RecBole's best thread setting over jgnas: above 1, jgnas is faster. The issue 12
targets are printed beside them (LightGCN >= 5x, NGCF >= 4x, MF >= 2x).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import jax
import numpy as np

from jgnas import data as data_lib
from jgnas.bench import timing
from jgnas.space import BPR_ONLY, Space, stack
from jgnas.train import Engine, TrainConfig, make_data

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: jgnas preset -> (RecBole model, its overrides, the jgnas op of the single-model space, target)
MODELS = {
    "mf": ("BPR", {}, "lightgcn", 2.0),
    "lightgcn": ("LightGCN", {"n_layers": 3}, "lightgcn", 5.0),
    "ngcf": ("NGCF", {"hidden_size_list": [64, 64, 64]}, "ngcf", 4.0),
}
BATCH = 2048


def recbole_epoch_seconds(python: str, model: str, overrides: dict, data_dir: pathlib.Path,
                          epochs: int, threads: int) -> dict:  # fmt: skip
    """RecBole's seconds per training epoch (median after the first) in its venv."""
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "t.json"
        cmd = [python, str(ROOT / "scripts" / "recbole_run.py"), "--model", model,
               "--data-dir", str(data_dir), "--out", str(out), "--threads", str(threads),
               "--time-epochs", str(epochs), "--checkpoint-dir", tmp,
               "--set", f"train_batch_size={BATCH}", "--set", "embedding_size=64"]  # fmt: skip
        for k, v in overrides.items():
            cmd += ["--set", f"{k}={json.dumps(v)}"]
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"RecBole {model} ({python}) failed: {tail[0]}")
        res = json.loads(out.read_text())
    secs = res["epoch_seconds"]
    res["s_per_epoch"] = statistics.median(secs[1:] if len(secs) > 1 else secs)
    return res


def jgnas_epoch_seconds(
    preset: str, op: str, data, cfg: TrainConfig, P: int, seed: int = 0
) -> dict:
    """jgnas's steady seconds per candidate-epoch for P copies of `preset` (default chunk)."""
    space = Space(ops=(op,), max_layers=3, dims=(64,), **BPR_ONLY)
    archs = stack([space.preset(preset)] * P)
    keys = jax.random.split(jax.random.key(seed), P)
    engine = Engine(cfg, space, data)
    t, res = timing.time_engine(engine, keys, archs, steady_limit_s=float("inf"))
    if int(np.sum(res.failed)):
        raise RuntimeError(f"jgnas {preset}: {int(np.sum(res.failed))} member(s) failed")
    return {**t, "P": P, "s_per_candidate_epoch": t["steady_s"] / (P * cfg.epochs)}


def run(data_cfg, python: str, epochs: int = 3, models=tuple(MODELS), P: int = 8,
        log=print) -> dict:  # fmt: skip
    """Every model's row (see the module doc), measured interleaved in this process."""
    from recbole_parity import DATASET, export  # noqa: E402  (scripts/)

    if not pathlib.Path(python).exists():
        raise FileNotFoundError(
            f"--peer recbole: no RecBole venv at {python} (third_party/recbole_parity/README.md "
            "says how it was built; --peer-python names another)"
        )
    timing.install_compile_listener()
    ds = data_lib.load(data_cfg, log=lambda m: None)
    train_cfg = TrainConfig(epochs=epochs, batch_size=BATCH)
    data = make_data(ds, train_cfg)  # one graph and sampler for every jgnas measurement
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = pathlib.Path(tmp)
        export(data_cfg, data_dir / DATASET)
        for name in models:
            model, overrides, op, target = MODELS[name]
            row = {"model": name, "recbole_model": model, "target": target, "recbole": {}}
            for threads in (1, 2):
                log(f"[peer] RecBole {model}, {threads} thread(s), {epochs} epochs ...")
                t0 = time.perf_counter()
                r = recbole_epoch_seconds(python, model, overrides, data_dir, epochs, threads)
                r["wall_s"] = time.perf_counter() - t0
                row["recbole"][threads] = r
            for p in (1, P):
                log(f"[peer] jgnas {name}, P={p}, {epochs} epochs ...")
                row[f"jgnas_P{p}"] = jgnas_epoch_seconds(name, op, data, train_cfg, p)
            best = min(row["recbole"].values(), key=lambda r: r["s_per_epoch"])
            row["recbole_best"] = {"threads": best["threads"], "s_per_epoch": best["s_per_epoch"]}
            for p in (1, P):
                row[f"ratio_P{p}"] = best["s_per_epoch"] / row[f"jgnas_P{p}"]["s_per_candidate_epoch"]
            log(format_row(row, P))
            rows.append(row)
    return {"peer": "recbole", "python": python, "epochs": epochs, "P": P, "batch": BATCH,
            "device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "rows": rows}  # fmt: skip


def format_row(row: dict, P: int) -> str:
    rb = row["recbole"]
    cells = [
        row["model"],
        f"{rb[1]['s_per_epoch']:.2f} / {rb[2]['s_per_epoch']:.2f}",
        f"{row['jgnas_P1']['s_per_candidate_epoch']:.3f}",
        f"{row[f'jgnas_P{P}']['s_per_candidate_epoch']:.3f}",
        f"{row['ratio_P1']:.2f}×",
        f"{row[f'ratio_P{P}']:.2f}×",
        f"≥ {row['target']:g}×: solo " + _met(row["ratio_P1"], row["target"])
        + f", P = {P} " + _met(row[f"ratio_P{P}"], row["target"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _met(ratio: float, target: float) -> str:
    return "met" if ratio >= target else "not met"


def table(out: dict) -> str:
    P = out["P"]
    head = (f"| model | RecBole s/epoch (1 / 2 threads) | jgnas s/candidate-epoch, solo | "
            f"jgnas, P = {P} (per member) | ratio, solo | ratio, P = {P} | target |")  # fmt: skip
    lines = [head, "|" + "---|" * 7]
    lines += [format_row(r, P) for r in out["rows"]]
    return "\n".join(lines)
