"""Several processes (hosts) on JAX's own runtime: `jax.distributed`, one slice of each population
per process, results gathered to every process, one writer.

Every process runs the same search: it loads the same data, asks the same strategy state and
trains the population through `jgnas.executor.Executor`, which gives process p the members
`[p * S, (p + 1) * S)` of each population (S = ceil(P / processes); the last slice is padded by
repeating the last member) and all-gathers the results, so every process sees the whole
population's results and tells its strategy the same fitness. Only the writer (process 0) writes
the run directory (`is_writer`); a resumed run's state is restored by the writer and broadcast
(`from_writer`). Nothing is shared through files.

The collectives are XLA's: gloo between CPU processes (`jax_cpu_collectives_implementation`,
the default of recent jax), NCCL between GPUs. The coordinator, process count and process id come
to `initialize` as arguments; the command line reads them from flags or the environment.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jax
import numpy as np

__all__ = ["allgather_members", "from_writer", "initialize", "is_writer", "member_slice"]


def initialize(coordinator: str | None, num_processes: int, process_id: int) -> None:
    """Joins this process to a run of `num_processes` (a no-op for one). Call it before any other
    use of jax (a backend created earlier cannot join).

    Args:
      coordinator: "HOST:PORT" of process 0's coordination service (every process gives the same);
        None lets jax detect it (on SLURM: the first node of the step).
      num_processes: processes in the run.
      process_id: this process, in [0, num_processes).
    """
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            f"distributed: process id {process_id} is not in [0, {num_processes}) processes"
        )
    if num_processes == 1:
        return
    if _cpu_collectives() == "none":
        # CPU processes exchange results through gloo (recent jax default to it; older had none).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )


def _cpu_collectives() -> str:
    try:
        return str(jax.config.jax_cpu_collectives_implementation)
    except AttributeError:  # a jax without the option
        return "gloo"


def is_writer() -> bool:
    """Whether this process writes the run directory: process 0 (or a single process)."""
    return jax.process_index() == 0


def member_slice(n_members: int, n_processes: int, index: int) -> np.ndarray:
    """The member indices process `index` trains: `[index * S, (index + 1) * S)` with
    S = ceil(n_members / n_processes), indices past the end repeating the last member (padding, so
    every process gathers equal shapes)."""
    per = max(math.ceil(n_members / n_processes), 1)
    return np.minimum(np.arange(index * per, (index + 1) * per), max(n_members - 1, 0))


def allgather_members(tree: Any, n_members: int) -> Any:
    """Every process's slice (a pytree with a leading [S] axis, see `member_slice`) -> the whole
    population's, [n_members, ...], on every process, in member order.

    One collective for the whole tree: the leaves travel as one byte buffer.
    """
    from jax.experimental import multihost_utils

    leaves, treedef = jax.tree.flatten(tree)
    leaves = [np.ascontiguousarray(np.asarray(x)) for x in leaves]
    buf = np.concatenate([x.reshape(-1).view(np.uint8) for x in leaves] + [np.zeros(0, np.uint8)])
    everyone = np.asarray(multihost_utils.process_allgather(buf))  # [n_processes, n_bytes]
    out, offset = [], 0
    for x in leaves:
        size = x.size * x.itemsize
        parts = everyone[:, offset : offset + size]
        whole = np.ascontiguousarray(parts).view(x.dtype).reshape(-1, *x.shape[1:])
        out.append(whole[:n_members])
        offset += size
    return jax.tree.unflatten(treedef, out)


def from_writer(arrays: Any, meta: Any) -> tuple[Any, Any]:
    """The writer's `(arrays, meta)` on every process (returned as given with one process).

    Args:
      arrays: a pytree of arrays; on the other processes, one of the same shapes and dtypes
        (e.g. the initial state), whose values are replaced by the writer's.
      meta: JSON-ready data; only the writer's is used.
    """
    if jax.process_count() == 1:
        return arrays, meta
    from jax.experimental import multihost_utils

    source = is_writer()
    text = json.dumps(meta).encode() if source else b""
    # The length first: a broadcast needs the same shape on every process.
    n = int(multihost_utils.broadcast_one_to_all(np.int64(len(text)), is_source=source))
    raw = np.frombuffer(text, np.uint8) if source else np.zeros(n, np.uint8)
    raw = np.asarray(multihost_utils.broadcast_one_to_all(raw, is_source=source))
    arrays = jax.tree.map(np.asarray, arrays)
    arrays = multihost_utils.broadcast_one_to_all(arrays, is_source=source)
    return arrays, json.loads(raw.tobytes().decode())
