"""Gowalla-size benchmark (`scripts/bench.py --scale gowalla`): seconds per epoch, seconds of one
full-ranking evaluation over all users, and peak RSS, for one LightGCN and for a P=8 population.

Data: the synthetic stand-in of `jgnas.data.synth` at the published size (gowalla: 29,858 users,
40,981 items, 1,027,370 interactions), written once to `<data dir>/gowalla-synth` and then reused
(`synth.json` says what it holds), read by the real loader as LightGCN's pre-split files (10% of
train to validation), processed-dataset cache included.

Stages, in one process and in this order (ru_maxrss only grows, so the peak printed after a stage
is the process peak up to its end; the solo stage runs first because it is the smaller):
  solo: the lightgcn preset (d 64, 3 layers, lr 1e-3, L2 1e-4), `epochs` at batch `batch`,
    chunk 1 (solo members);
  population: P members (`pop`: a preset repeated in its single-op space, or "mixed" from the
    bench's wide space), in chunks of `chunk` (None: the executor's default, as in a
    search; 0: one vmapped chunk of P). With `pop_steps`, it trains that many steps instead of a
    whole epoch (its sampler draws from a random `pop_steps * batch` of the training pairs; the
    graph, the model and so the work of a step are unchanged) and the time of an epoch is
    extrapolated from them: `steps_per_epoch / pop_steps` times the measured time.
Each stage trains, then ranks every item for every test user (`Engine.evaluate` on the test
split, `eval_block` users per block). Compile seconds (from jax.monitoring) are measured and
subtracted from the wall time of each call. Training validates on the first block of users only,
so an epoch's time is training, not a hidden second evaluation pass.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import resource
import time

import jax
import numpy as np

from jgnas import data as data_lib
from jgnas import metrics as metrics_lib
from jgnas.bench import timing
from jgnas.bench.suite import BENCH_SPACE, single_op_space
from jgnas.data import synth
from jgnas.data.types import Interactions
from jgnas.executor import default_chunk_size
from jgnas.experiment import Log, stderr_log
from jgnas.sampler import make_sampler_data
from jgnas.space import stack
from jgnas.train import Engine, TrainConfig, TrainData, make_data


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    """What the scale benchmark measures (defaults: the issue's gowalla setting).

    like: a `jgnas.data.synth.LIKE` name. size: the stand-in's `scale` (1: the published size;
    smaller for a smoke run). seed: data and members. epochs, batch: training of every member.
    population, pop, chunk, pop_steps: the second stage (see the module doc). eval_block: users
    per evaluation block.
    """

    like: str = "gowalla"
    size: float = 1.0
    seed: int = 0
    epochs: int = 1
    batch: int = 2048
    population: int = 8
    pop: str = "lightgcn"
    chunk: int | None = None
    pop_steps: int = 0
    eval_block: int = 256


def stand_in_folder(like: str, seed: int = 0, size: float = 1.0, log: Log = stderr_log):
    """`<data dir>/<synth.default_name>`, written by `synth.write_stand_in` unless its synth.json
    says it already holds this stand-in."""
    folder = data_lib.data_dir() / synth.default_name(like, seed, size)
    want = {"like": like, "seed": seed, "scale": size, "version": synth.VERSION}
    try:
        meta = json.loads((folder / "synth.json").read_text())
    except (OSError, ValueError):
        meta = {}
    if any(meta.get(k) != v for k, v in want.items()):
        t = time.perf_counter()
        meta = synth.write_stand_in(folder, like, seed=seed, scale=size)
        log(f"wrote the {like} stand-in to {folder} in {time.perf_counter() - t:.1f} s")
    return pathlib.Path(folder)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (ru_maxrss, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _first_block(valid: Interactions, block: int) -> Interactions:
    keep = np.asarray(valid.users) < block
    return Interactions(*(np.asarray(getattr(valid, f))[keep] for f in
                          ("users", "items", "ratings", "timestamps")))  # fmt: skip


def _timed(fn):
    """(result, wall seconds minus compile seconds, compile seconds) of fn()."""
    c0, t = timing.compile_seconds(), time.perf_counter()
    out = jax.block_until_ready(fn())
    wall, comp = time.perf_counter() - t, timing.compile_seconds() - c0
    return out, wall - comp, comp


def _subsample(data: TrainData, train: Interactions, n: int, n_users: int, seed: int):
    """data with a sampler over n random training pairs: an epoch of n / batch steps."""
    pick = np.random.default_rng(seed).choice(len(train), size=n, replace=False)
    part = Interactions(*(np.asarray(getattr(train, f))[pick] for f in
                          ("users", "items", "ratings", "timestamps")))  # fmt: skip
    sampler = make_sampler_data(part, n_users, data.sampler.n_items,
                                reject_positives=data.sampler.reject_positives)  # fmt: skip
    return data.replace(sampler=sampler)


def _stage(name, space, archs, chunk, tcfg, data, test_set, cfg: ScaleConfig, log: Log,
           extrapolate: float = 1.0) -> dict:  # fmt: skip
    P = int(np.asarray(archs.depth).shape[0])
    engine = Engine(tcfg, space, data, chunk_size=chunk)
    chunk = min(chunk or default_chunk_size(P), P)
    keys = jax.random.split(jax.random.key(cfg.seed), P)
    part = f" ({1 / extrapolate:.3g} of each epoch's steps)" if extrapolate != 1 else ""
    log(f"[{name}] training {P} member(s), {cfg.epochs} epoch(s){part}, chunk {chunk} ...")
    res, train_s, train_c = _timed(lambda: engine.train(keys, archs))
    train_s *= extrapolate
    log(f"[{name}] evaluating on the test split over all users ...")
    metrics, eval_s, eval_c = _timed(lambda: engine.evaluate(res.params, archs, test_set))
    row = {
        "stage": name,
        "P": P,
        "chunk": chunk,
        "s_per_epoch": train_s / cfg.epochs,
        "extrapolated_from_fraction": 1 / extrapolate,
        "s_per_member_epoch": train_s / cfg.epochs / P,
        "train_compile_s": train_c,
        "eval_s": eval_s,
        "eval_compile_s": eval_c,
        "peak_rss_mb": peak_rss_mb(),
        "failed": int(np.sum(np.asarray(res.failed))),
        "test_recall@20": [float(x) for x in np.asarray(metrics["recall"])[:, 0]],
    }
    log(format_row(row))
    return row


def run(cfg: ScaleConfig, log: Log = stderr_log) -> dict:
    """Runs both stages on the stand-in of `cfg.like`; returns {meta, rows} (see the module doc)."""
    timing.install_compile_listener()
    folder = stand_in_folder(cfg.like, cfg.seed, cfg.size, log)
    t = time.perf_counter()
    ds = data_lib.load(data_lib.DataConfig(name=folder.name, path=str(folder), split="presplit"))
    load_s = time.perf_counter() - t
    tcfg = TrainConfig(
        epochs=cfg.epochs, batch_size=cfg.batch, eval_block=cfg.eval_block, ks=(20,), metric_k=20
    )
    t = time.perf_counter()
    data = make_data(ds, tcfg, valid=_first_block(ds.valid, cfg.eval_block))
    test_set = metrics_lib.test_eval_set(ds, block_size=cfg.eval_block)
    prep_s = time.perf_counter() - t
    meta = {
        "like": cfg.like, "folder": str(folder), "users": ds.n_users, "items": ds.n_items,
        "train": len(ds.train), "valid": len(ds.valid), "test": len(ds.test),
        "eval_users": test_set.n_eval, "steps_per_epoch": -(-len(ds.train) // cfg.batch),
        "load_s": load_s, "prepare_s": prep_s, "peak_rss_after_prepare_mb": peak_rss_mb(),
        "device_kind": jax.devices()[0].device_kind, "backend": jax.default_backend(),
        "jax": jax.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(), "args": dataclasses.asdict(cfg),
    }  # fmt: skip
    log(header(meta))
    lightgcn = single_op_space("lightgcn")
    rows = [
        _stage("lightgcn x1", lightgcn, stack([lightgcn.preset("lightgcn")]), 1, tcfg, data,
               test_set, cfg, log)
    ]  # fmt: skip
    P = cfg.population
    if cfg.pop == "mixed":
        space, archs = BENCH_SPACE, BENCH_SPACE.sample(jax.random.key(cfg.seed), P)
    else:
        space = single_op_space(cfg.pop)
        archs = stack([space.preset(cfg.pop)] * P)
    chunk, extra = (P if cfg.chunk == 0 else cfg.chunk), 1.0
    if cfg.pop_steps and cfg.pop_steps < meta["steps_per_epoch"]:
        extra = meta["steps_per_epoch"] / cfg.pop_steps
        data = _subsample(data, ds.train, cfg.pop_steps * cfg.batch, ds.n_users, cfg.seed)
    rows.append(_stage(f"{cfg.pop} x{P}", space, archs, chunk, tcfg, data, test_set, cfg, log,
                       extrapolate=extra))  # fmt: skip
    meta["loadavg_end"] = os.getloadavg()
    return {"meta": meta, "rows": rows}


def header(meta: dict) -> str:
    size = meta["args"]["size"]
    return (
        f"== {meta['like']} stand-in (synthetic, "
        f"{'published size' if size == 1 else f'scale {size:g}'}): {meta['users']:,} users, "
        f"{meta['items']:,} items, train/valid/test {meta['train']:,}/{meta['valid']:,}/"
        f"{meta['test']:,}, {meta['steps_per_epoch']} steps/epoch; {meta['eval_users']:,} users "
        f"ranked per evaluation | {meta['device_kind']} ({meta['backend']}), jax {meta['jax']} =="
    )


def format_row(r: dict) -> str:
    x = "x" if r["extrapolated_from_fraction"] < 1 else " "
    return (
        f"{r['stage']:>14} chunk={r['chunk']:<3d} {r['s_per_epoch']:8.1f}{x}s/epoch "
        f"({r['s_per_member_epoch']:7.1f} s/member-epoch, compile {r['train_compile_s']:5.1f} s) "
        f"| eval all users {r['eval_s']:6.1f} s (compile {r['eval_compile_s']:4.1f} s) "
        f"| peak RSS {r['peak_rss_mb']:7.0f} MB"
    )


def summary_lines(out: dict) -> list[str]:
    """The printed summary: the header, one row per stage, the load."""
    m = out["meta"]
    lines = ["", header(m)]
    lines += [format_row(r) for r in out["rows"]]
    for r in out["rows"]:
        if r["extrapolated_from_fraction"] < 1:
            lines.append(f"x {r['stage']}: trained {r['extrapolated_from_fraction']:.3g} of an "
                         "epoch's steps (same graph and model), time scaled to a whole epoch")  # fmt: skip
    lines.append(f"load {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}; data load "
                 f"{m['load_s']:.1f} s, graph/sampler/eval sets {m['prepare_s']:.1f} s, "
                 f"peak RSS after them {m['peak_rss_after_prepare_mb']:.0f} MB")  # fmt: skip
    return lines
