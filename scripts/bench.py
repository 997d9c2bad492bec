"""Throughput, compile time, memory and evaluation time of the population engine on ml-100k.

Every figure is also given as a ratio against the *straightforward path*: a Python loop over the
same candidates, each one a plain jraph / `segment_sum` model (`TrainConfig(kernel="segment")`)
with a static arch (Python-int genes; the space's d_max, or each candidate's own width with
--straight-own-dim), jitted alone as a naive user would write it.
"steady" ratios exclude compilation; "e2e" ratios include it (each straightforward candidate
compiles its own program; the engine compiles one program per population and chunk size).

Populations (seeded): `mixed` = `Space(max_layers=3).sample` (d_max = 128, every op);
`lightgcn` / `gat` = the preset repeated, in a single-op space (`Space(ops=(op,), max_layers=3,
dims=(64,))`). A vmapped chunk computes every op of its space (`jnp.select`), so in the full space a
single-op population costs exactly what a mixed one does; the narrow space shows what batching
gains when it does not.

Usage (needs `jgnas data fetch ml-100k` first):
  python scripts/bench.py --quick --out bench.json      # ~2-3 min on 2 CPU cores
  python scripts/bench.py --out bench.json              # ~10 min on 2 CPU cores
  python scripts/bench.py --full                        # + vmapped chunks of the mixed population
  python scripts/bench.py --gpu-profile --out bench.json  # P in {1, 8, 64, 128}, GPU targets

On CPU, vmapped chunks of the mixed population are skipped unless --full (or --vmap-mixed): one
chunk of 8 costs ~25x a loop of 8 solo runs (~35 s per candidate-epoch on 2 cores), because every
op (gat and max are [E, d] gathers) of every layer is computed at d=128 for every member.
A configuration whose estimated time exceeds --budget-s is extrapolated from a measured one of the
same population and chunk size (chunks run in sequence) or, failing that, skipped; the table says
which ("x" = extrapolated, "-" = skipped).

Targets (PASS/FAIL): CPU: mixed P=32 at its best chunk size >= 5x the straightforward
candidate-epochs/s (steady), compile <= 10 s, evaluating 32 trained members on valid < 1 s.
GPU: mixed P=64 at chunk 64 (one jit(vmap)) >= 20x the straightforward loop (steady).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jgnas import data as data_lib
from jgnas.ops import segment_spmm, spmm
from jgnas.space import Space, stack
from jgnas.train import Engine, TrainConfig, make_data, make_train

# jax.monitoring reports the duration of every trace, lowering and XLA compile: their sum is the
# compile time of a call, measured without a second (steady) call of an expensive program.
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_events: collections.Counter = collections.Counter()
jax.monitoring.register_event_duration_secs_listener(
    lambda name, secs, **kw: _events.update({name: secs}) if name in _COMPILE_EVENTS else None
)


def _compile_s() -> float:
    return float(sum(_events[k] for k in _COMPILE_EVENTS))


def _block(tree):
    return jax.block_until_ready(tree)


def peak_memory_mb() -> float:
    """Process peak so far: device peak on an accelerator, host max RSS on CPU."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def populations(names, p_max: int, seed: int) -> dict[str, tuple[Space, object]]:
    """name -> (space, archs [p_max]); smaller P take a prefix, so members are shared across P."""
    out = {}
    for name in names:
        if name == "mixed":
            space = Space(max_layers=3)
            out[name] = (space, space.sample(jax.random.key(seed), p_max))
        else:
            space = Space(ops=(name,), max_layers=3, dims=(64,))
            out[name] = (space, stack([space.preset(name)] * p_max))
    return out


def _prefix(archs, n):
    return jax.tree.map(lambda x: np.asarray(x)[:n], archs)


def time_engine(engine: Engine, keys, archs, steady_limit_s: float) -> dict:
    """First call (compile + run) and, when affordable, a second (steady) call."""
    c0 = _compile_s()
    t = time.perf_counter()
    res = _block(engine.train(keys, archs))
    first = time.perf_counter() - t
    compile_s = _compile_s() - c0
    out = {"first_s": first, "compile_s": compile_s, "failed": int(np.sum(res.failed))}
    if first - compile_s <= steady_limit_s:
        t = time.perf_counter()
        res = _block(engine.train(keys, archs))
        out["steady_s"] = time.perf_counter() - t
        out["steady_from"] = "second call"
    else:
        out["steady_s"] = first - compile_s
        out["steady_from"] = "first call minus compile"
    return out, res


def time_straightforward(
    cfg: TrainConfig, data, space: Space, archs, keys, n: int, own_dim: bool = False
) -> list:
    """The naive loop: each candidate its own jitted segment-path program (static arch).

    own_dim: build each candidate at its own width instead of the space's d_max (mask inside).
    """
    seg = TrainConfig(**{**cfg.__dict__, "kernel": "segment"})
    rows = []
    for i in range(n):
        arch = jax.tree.map(lambda x, i=i: np.asarray(x)[i], archs)
        if own_dim:
            space = Space(ops=space.ops, max_layers=space.max_layers, dims=(int(arch.dim),))
        train = make_train(seg, space, "switch")
        fn = jax.jit(lambda key, data, train=train, arch=arch: train(key, arch, data))
        t = time.perf_counter()
        compiled = fn.lower(keys[i], data).compile()
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        _block(compiled(keys[i], data))
        rows.append({"compile_s": compile_s, "run_s": time.perf_counter() - t})
    return rows


def micro_aggregation(data, steps: int, reps: int, d: int = 64, layers: int = 3) -> dict:
    """Seconds per candidate-epoch equivalent (steps x fwd+bwd of `layers` products, width d)."""
    g = data.inputs.graph
    m, n = g.sym, g.n_node
    indptr = np.asarray(m.indptr)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    bcoo = sparse.BCOO(
        (m.data, jnp.asarray(np.stack([rows, np.asarray(m.indices)], 1), jnp.int32)), shape=(n, n)
    )
    dense = bcoo.todense()
    products = {
        "kernel.spmm (CSR)": (lambda a, x: spmm(a, x), m),
        "segment_spmm (jraph)": (lambda a, x: segment_spmm(a, x), m),
        "BCOO": (lambda a, x: a @ x, bcoo),
        "dense matmul": (lambda a, x: a @ x, dense),
    }
    x = jax.random.normal(jax.random.key(0), (n, d), jnp.float32)
    out = {}
    for name, (prod, a) in products.items():

        def loss(x, a, prod=prod):
            for _ in range(layers):
                x = prod(a, x)
            return jnp.sum(x * x)

        fn = jax.jit(jax.grad(loss))
        _block(fn(x, a))
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            _block(fn(x, a))
            times.append(time.perf_counter() - t)
        out[name] = float(np.median(times)) * steps
    return out


def run(args) -> dict:
    dev = jax.devices()[0]
    meta = {
        "device_kind": dev.device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "args": vars(args),
    }
    print(f"device {dev.device_kind} ({meta['backend']}), jax {jax.__version__}, "
          f"load {meta['loadavg_start'][0]:.2f}", flush=True)  # fmt: skip
    ds = data_lib.load(data_lib.DataConfig(name="ml-100k", seed=args.seed))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch)
    data = make_data(ds, cfg)
    steps = -(-len(ds.train) // args.batch)
    meta.update(users=ds.n_users, items=ds.n_items, n_train=len(ds.train), steps_per_epoch=steps)
    p_max = max(args.P)
    keys = jax.random.split(jax.random.key(args.seed), p_max)
    pops = populations(args.pops, p_max, args.seed)
    results, straight, evaluation = [], {}, {}

    for pop, (space, archs_all) in pops.items():
        # The straightforward loop over the first candidates (all distinct for mixed; for a
        # repeated preset, one candidate stands for all: each naive closure compiles anew).
        n_straight = min(args.straight_max, p_max) if pop == "mixed" else 1
        t = time.perf_counter()
        rows = time_straightforward(
            cfg, data, space, archs_all, keys, n_straight, args.straight_own_dim
        )
        straight[pop] = rows
        print(f"[{pop}] straightforward: {n_straight} candidates in "
              f"{time.perf_counter() - t:.1f}s", flush=True)  # fmt: skip
        engines: dict[int, Engine] = {}
        per_chunk_s: dict[int, float] = {}  # chunk size -> steady seconds of one chunk
        compile_by_c: dict[int, float] = {}
        for P in args.P:
            archs = _prefix(archs_all, P)
            for c in sorted({P if c == 0 else c for c in args.chunks if c <= P}):
                row = {"population": pop, "P": P, "chunk": c, "epochs": args.epochs}
                n_chunks = math.ceil(P / c)
                est = per_chunk_s[c] * n_chunks if c in per_chunk_s else None
                wider = [w for w in per_chunk_s if 1 < w < c]
                if pop == "mixed" and c > 1 and meta["backend"] == "cpu" and not args.vmap_mixed:
                    row["skipped"] = "vmapped mixed chunk on CPU (use --full)"
                elif est is not None and est > args.budget_s and (c > 1 or pop != "mixed"):
                    # Chunks run in sequence, so P/c chunks cost P/c times one measured chunk.
                    row.update(steady_s=est, compile_s=compile_by_c[c], extrapolated=True)
                elif est is None and wider:
                    # A new, wider program: guess linearly from the widest measured chunk.
                    w = max(wider)
                    guess = per_chunk_s[w] * c / w
                    if guess > args.budget_s:
                        row["skipped"] = f"estimated {guess:.0f}s > --budget-s"
                if "skipped" not in row and "extrapolated" not in row:
                    if c not in engines:
                        engines[c] = Engine(cfg, space, data, chunk_size=c)
                    try:
                        timing, res = time_engine(engines[c], keys[:P], archs, args.budget_s / 2)
                    except Exception as e:  # e.g. device out of memory: record it, go on
                        row["skipped"] = f"error: {type(e).__name__}: {str(e).splitlines()[0]}"
                        results.append(row)
                        print(_fmt_row(row), flush=True)
                        continue
                    row.update(timing)
                    per_chunk_s[c] = timing["steady_s"] / n_chunks
                    # The program compiles once per search: charge it to every row that runs it.
                    compile_by_c[c] = max(compile_by_c.get(c, 0.0), timing["compile_s"])
                    row["compile_call_s"] = timing["compile_s"]
                    row["compile_s"] = compile_by_c[c]
                    name = f"{pop} chunk={c}"
                    if P >= args.eval_p and name not in evaluation:
                        evaluation[name] = time_eval(engines[c], res, archs, data, args.eval_p)
                if "skipped" not in row:
                    row.update(_ratios(row, rows, P, args.epochs))
                row["peak_mb"] = peak_memory_mb()
                row["loadavg"] = os.getloadavg()[0]
                results.append(row)
                print(_fmt_row(row), flush=True)
                _save(args.out, {"meta": meta, "results": results, "straightforward": straight,
                                 "evaluation": evaluation, "partial": True})  # fmt: skip

    micro = micro_aggregation(data, steps, args.micro_reps) if args.micro_reps else {}
    meta["loadavg_end"] = os.getloadavg()
    out = {"meta": meta, "results": results, "straightforward": straight,
           "evaluation": evaluation, "micro": micro}  # fmt: skip
    out["targets"] = targets(out)
    return out


def _save(path, out: dict) -> None:
    """Writes the JSON (after every row too, so a run cut short still leaves its results)."""
    if path:
        tmp = f"{path}.part"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1, default=float)
        os.replace(tmp, path)


def time_eval(engine: Engine, res, archs, data, n: int) -> dict:
    """Engine.evaluate of the first n trained members on the validation set: first, steady call."""
    params, archs = jax.tree.map(lambda x: x[:n], res.params), _prefix(archs, n)
    t = time.perf_counter()
    _block(engine.evaluate(params, archs, data.valid))
    first = time.perf_counter() - t
    t = time.perf_counter()
    _block(engine.evaluate(params, archs, data.valid))
    return {"P": n, "chunk": min(engine.chunk_size, n), "first_s": first,
            "steady_s": time.perf_counter() - t}  # fmt: skip


def _ratios(row: dict, straight_rows: list, P: int, epochs: int) -> dict:
    """Candidate-epochs/s of the engine and of the straightforward loop over the same P members."""
    if "steady_s" not in row:
        return {}
    n = len(straight_rows)
    run = np.array([r["run_s"] for r in straight_rows])
    comp = np.array([r["compile_s"] for r in straight_rows])
    idx = np.arange(P) % n  # beyond the measured ones: repeat them (their mean rate)
    s_run, s_comp = float(run[idx].sum()), float(comp[idx].sum())
    rate = P * epochs / row["steady_s"]
    e2e = P * epochs / (row["steady_s"] + (row.get("compile_s") or 0.0))
    return {
        "cand_epochs_per_s": rate,
        "straight_cand_epochs_per_s": P * epochs / s_run,
        "straight_e2e_s": s_run + s_comp,
        "straight_measured": min(n, P),
        "ratio_steady": rate * s_run / (P * epochs),
        "ratio_e2e": e2e * (s_run + s_comp) / (P * epochs),
    }


def _fmt_row(r: dict) -> str:
    head = f"{r['population']:>9} P={r['P']:<4d} chunk={r['chunk']:<4d}"
    if "skipped" in r:
        return f"{head} -  {r['skipped']}"
    mark = "x" if r.get("extrapolated") else " "
    return (
        f"{head}{mark} {r['cand_epochs_per_s']:8.3f} cand-ep/s  steady {r['steady_s']:7.1f}s  "
        f"compile {r['compile_s']:5.1f}s  | straight {r['straight_cand_epochs_per_s']:7.3f} "
        f"cand-ep/s  ratio steady {r['ratio_steady']:6.2f}x  e2e {r['ratio_e2e']:6.2f}x  "
        f"| peak {r['peak_mb']:6.0f}MB  load {r['loadavg']:.1f}"
    )


def targets(out: dict) -> list[dict]:
    rows = [r for r in out["results"] if "ratio_steady" in r and r["population"] == "mixed"]
    checks = []
    if out["meta"]["backend"] == "cpu":
        p32 = [r for r in rows if r["P"] == 32]
        if p32:
            best = max(p32, key=lambda r: r["cand_epochs_per_s"])
            checks.append(("mixed P=32 best chunk vs straightforward (steady) >= 5x",
                           best["ratio_steady"], best["ratio_steady"] >= 5))  # fmt: skip
            checks.append(("compile of that program <= 10 s", best["compile_s"],
                           best["compile_s"] <= 10))  # fmt: skip
        evs = [v for k, v in out["evaluation"].items() if k.startswith("mixed") and v["P"] == 32]
        ev = min(evs, key=lambda v: v["steady_s"]) if evs else None
        if ev:
            checks.append(("evaluate 32 members on valid < 1 s", ev["steady_s"],
                           ev["steady_s"] < 1))  # fmt: skip
    else:
        full = [r for r in rows if r["P"] == 64 and r["chunk"] == 64]
        if full:
            checks.append(("mixed P=64 jit(vmap) vs straightforward loop (steady) >= 20x",
                           full[0]["ratio_steady"], full[0]["ratio_steady"] >= 20))  # fmt: skip
    return [{"target": t, "value": v, "pass": bool(ok)} for t, v, ok in checks]


def print_summary(out: dict) -> None:
    print("\n== engine vs straightforward (candidate-epochs/s; x = extrapolated) ==")
    for r in out["results"]:
        print(_fmt_row(r))
    for pop, ev in out["evaluation"].items():
        print(f"evaluate [{pop}] P={ev['P']} chunk={ev['chunk']}: steady {ev['steady_s']:.3f}s "
              f"(first {ev['first_s']:.2f}s)")  # fmt: skip
    if out["micro"]:
        print("== aggregation alone: ml-100k, d=64, 3 layers, fwd+bwd, s per candidate-epoch ==")
        for k, v in out["micro"].items():
            print(f"  {k:<22} {v:8.3f} s")
    m = out["meta"]
    print(f"device {m['device_kind']} ({m['backend']}), jax {m['jax']}, "
          f"load {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}")  # fmt: skip
    for t in out["targets"]:
        print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']:.3g}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    p.add_argument("--P", type=ints, default=None, help="population sizes (default 1,8,32)")
    p.add_argument("--chunks", type=ints, default=[1, 8, 0], help="chunk sizes (0 = P)")
    p.add_argument("--eval-p", type=int, default=32, help="members in the evaluation timing")
    p.add_argument("--pops", default="mixed,lightgcn,gat", help="populations to run")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--straight-max", type=int, default=None, help="straightforward candidates")
    p.add_argument("--straight-own-dim", action="store_true", help="naive models at own width")
    p.add_argument("--budget-s", type=float, default=None, help="max seconds per configuration")
    p.add_argument("--micro-reps", type=int, default=5, help="0 skips the micro-benchmark")
    p.add_argument("--vmap-mixed", action="store_true", help="run vmapped mixed chunks on CPU")
    p.add_argument("--quick", action="store_true", help="~2-3 min CPU version")
    p.add_argument("--full", action="store_true", help="P up to 128, vmapped mixed chunks")
    p.add_argument("--gpu-profile", action="store_true", help="P in 1,8,64,128 for a GPU")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    args.pops = args.pops.split(",")
    if args.gpu_profile:
        args.P = args.P or [1, 8, 64, 128]
        args.straight_max = args.straight_max or 8
        args.budget_s = args.budget_s or 30.0
        args.pops = [p for p in args.pops if p != "gat"]
        args.micro_reps = min(args.micro_reps, 3)
        args.vmap_mixed = True
    elif args.quick:
        args.P = args.P or [1, 8]
        args.pops = [p for p in args.pops if p != "gat"]
        args.straight_max = args.straight_max or 8
        args.micro_reps = min(args.micro_reps, 3)
        args.eval_p = min(args.eval_p, 8)
    elif args.full:
        args.P = args.P or [1, 8, 32, 128]
        args.vmap_mixed = True
    args.P = args.P or [1, 8, 32]
    args.straight_max = args.straight_max or (max(args.P) if args.full else 16)
    args.budget_s = args.budget_s or (600.0 if args.full else 120.0)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    out = run(args)
    print_summary(out)
    if args.out:
        _save(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
