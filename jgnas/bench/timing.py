"""Timers of the benchmark: the engine, the straightforward loop, aggregation kernels, evaluation.

Compile time is read from jax.monitoring events (`install_compile_listener`, installed by
`jgnas.bench.run`, never at import), so an expensive program need not run twice to be measured.
"""

from __future__ import annotations

import collections
import dataclasses
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jgnas.ops import segment_spmm, spmm
from jgnas.space import Space
from jgnas.train import Engine, TrainConfig, TrainData, TrainResult, make_train

# The duration of every trace, lowering and XLA compile: their sum is the compile time of a call.
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_events: collections.Counter = collections.Counter()
_installed: list[bool] = []  # jax.monitoring cannot unregister one listener: install it once


def _on_event(name: str, secs: float, **kwargs) -> None:
    if name in _COMPILE_EVENTS:
        _compile_events.update({name: secs})


def install_compile_listener() -> None:
    """Registers the jax.monitoring listener behind `compile_seconds`; later calls do nothing."""
    if not _installed:
        jax.monitoring.register_event_duration_secs_listener(_on_event)
        _installed.append(True)


def compile_seconds() -> float:
    """Trace + lowering + compile seconds of this process since `install_compile_listener`."""
    return float(sum(_compile_events[k] for k in _COMPILE_EVENTS))


def peak_memory_mb() -> float:
    """Process peak so far: device peak on an accelerator, host max RSS on CPU."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def prefix(archs, n: int):
    """The first n members of a population (numpy)."""
    return jax.tree.map(lambda x: np.asarray(x)[:n], archs)


def time_engine(
    engine: Engine, keys: jax.Array, archs, steady_limit_s: float
) -> tuple[dict, TrainResult]:
    """First call (compile + run) and, when affordable, a second (steady) call.

    Returns:
      ({first_s, compile_s, failed, steady_s, steady_from}, the trained population).
    """
    c0 = compile_seconds()
    t = time.perf_counter()
    res = jax.block_until_ready(engine.train(keys, archs))
    first = time.perf_counter() - t
    compile_s = compile_seconds() - c0
    out = {"first_s": first, "compile_s": compile_s, "failed": int(np.sum(res.failed))}
    if first - compile_s <= steady_limit_s:
        t = time.perf_counter()
        res = jax.block_until_ready(engine.train(keys, archs))
        out["steady_s"] = time.perf_counter() - t
        out["steady_from"] = "second call"
    else:
        out["steady_s"] = first - compile_s
        out["steady_from"] = "first call minus compile"
    return out, res


def time_straightforward(
    cfg: TrainConfig,
    data: TrainData,
    space: Space,
    archs,
    keys: jax.Array,
    n: int,
    own_dim: bool = False,
) -> list[dict]:
    """The naive loop: each of the first n candidates its own jitted segment-path program.

    Args:
      own_dim: build each candidate at its own width instead of the space's d_max (mask inside).

    Returns:
      One {compile_s, run_s} per candidate.
    """
    seg = dataclasses.replace(cfg, kernel="segment")
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
        jax.block_until_ready(compiled(keys[i], data))
        rows.append({"compile_s": compile_s, "run_s": time.perf_counter() - t})
    return rows


def micro_aggregation(
    data: TrainData, steps: int, reps: int, d: int = 64, layers: int = 3
) -> dict[str, float]:
    """Seconds per candidate-epoch equivalent (steps x fwd+bwd of `layers` products, width d) of
    the CSR kernel, jraph's gather + segment_sum, BCOO and a dense matmul (median of reps)."""
    g = data.inputs.graph
    m, n = g.sym, g.n_node
    indptr = np.asarray(m.indptr)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    bcoo = sparse.BCOO(
        (m.data, jnp.asarray(np.stack([rows, np.asarray(m.indices)], 1), jnp.int32)), shape=(n, n)
    )
    products = {
        "kernel.spmm (CSR)": (lambda a, x: spmm(a, x), m),
        "segment_spmm (jraph)": (lambda a, x: segment_spmm(a, x), m),
        "BCOO": (lambda a, x: a @ x, bcoo),
        "dense matmul": (lambda a, x: a @ x, bcoo.todense()),
    }
    x = jax.random.normal(jax.random.key(0), (n, d), jnp.float32)
    out = {}
    for name, (prod, a) in products.items():

        def loss(x, a, prod=prod):
            for _ in range(layers):
                x = prod(a, x)
            return jnp.sum(x * x)

        fn = jax.jit(jax.grad(loss))
        jax.block_until_ready(fn(x, a))
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(fn(x, a))
            times.append(time.perf_counter() - t)
        out[name] = float(np.median(times)) * steps
    return out


def time_eval(engine: Engine, res: TrainResult, archs, data: TrainData, n: int) -> dict:
    """Engine.evaluate of the first n trained members on the validation set: first, steady call."""
    params, archs = jax.tree.map(lambda x: x[:n], res.params), prefix(archs, n)
    t = time.perf_counter()
    jax.block_until_ready(engine.evaluate(params, archs, data.valid))
    first = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(engine.evaluate(params, archs, data.valid))
    return {"P": n, "chunk": min(engine.chunk_size, n), "first_s": first,
            "steady_s": time.perf_counter() - t}  # fmt: skip
