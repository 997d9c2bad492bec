"""The one place that iterates over a population: vmapped chunks, run in sequence.

`chunk_size = P` is the single jit(vmap) program for GPUs; `chunk_size = 1` is a loop of solo jitted
runs (on CPU, where `lax.switch` truly skips unchosen ops). A chunk's population axis can be
sharded over local devices with `shard_map`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jgnas import distributed
from jgnas.interrupt import StopFn, check

__all__ = ["Executor", "default_chunk_size"]


def default_chunk_size(population_size: int, backend: str | None = None) -> int:
    """The chunk size chosen by measurement (scripts/bench.py): the whole population on GPU/TPU,
    where batching fills the device; solo runs on CPU, where vmap spills caches and computes every
    op of the space while a lone member's `lax.switch` runs only its own."""
    backend = backend or jax.default_backend()
    return 1 if backend == "cpu" else population_size


class Executor:
    """The one place that iterates over a population: vmapped chunks, run in sequence.

    `fn_solo(*member_args, *shared)` and `fn_member` (vmapped over the leading axis of the batched
    arguments; the shared ones are broadcast) must compute the same thing; `fn_solo` is used when
    chunk_size == 1. With more than one local device (and chunk_size a multiple of their number),
    each chunk's population axis is sharded over them with `shard_map`.

    `should_stop` (optional) is asked before each chunk; when it says so, the call raises
    `jgnas.interrupt.Interrupted` there, between two chunks and never inside XLA.

    In a run of several processes (`jgnas.distributed`), each process runs its slice of the
    population (`distributed.member_slice`) in chunks and the results are all-gathered, so every
    process returns the whole population's; every process must make the same calls.
    """

    def __init__(
        self,
        fn_solo: Callable,
        fn_member: Callable,
        n_batched: int,
        chunk_size: int,
        devices=None,
        should_stop: StopFn | None = None,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.n_batched = n_batched
        self.should_stop = should_stop
        self.on_chunk: Callable[[int, int], None] | None = None  # progress: (done, total)
        self.last_seconds = np.zeros(0)
        devices = list(devices) if devices is not None else jax.local_devices()
        self.n_devices = len(devices) if chunk_size > 1 and chunk_size % len(devices) == 0 else 1
        self._solo = jax.jit(fn_solo)

        def batched(*args):
            axes = (0,) * n_batched + (None,) * (len(args) - n_batched)
            return jax.vmap(fn_member, in_axes=axes)(*args)

        if self.n_devices > 1:
            mesh = Mesh(np.asarray(devices[: self.n_devices]), ("pop",))

            def sharded(*args):
                specs = (PartitionSpec("pop"),) * n_batched + (PartitionSpec(),) * (
                    len(args) - n_batched
                )
                return jax.shard_map(
                    batched,
                    mesh=mesh,
                    in_specs=specs,
                    out_specs=PartitionSpec("pop"),
                    check_vma=False,
                )(*args)

            self._batched = jax.jit(sharded)
        else:
            self._batched = jax.jit(batched)

    def __call__(self, batched: tuple, shared: tuple):
        """Runs the population. batched: pytrees with a leading [P]; shared: broadcast arguments."""
        P = int(jax.tree.leaves(batched)[0].shape[0])
        if jax.process_count() == 1:
            return self._run(batched, shared, P)
        idx = distributed.member_slice(P, jax.process_count(), jax.process_index())
        out = self._run(jax.tree.map(lambda x: x[idx], batched), shared, idx.size)
        out, self.last_seconds = distributed.allgather_members((out, self.last_seconds), P)
        return jax.tree.map(jnp.asarray, out)

    def _run(self, batched: tuple, shared: tuple, P: int):
        """This process's members, in chunks."""
        c = self.chunk_size
        outs = []
        seconds = np.zeros(P)
        for start in range(0, P, c):
            check(self.should_stop)
            t0 = time.perf_counter()
            n = min(c, P - start)
            if c == 1:
                member = jax.tree.map(lambda x, i=start: x[i], batched)
                out = jax.tree.map(lambda x: x[None], self._solo(*member, *shared))
            else:
                idx = np.minimum(np.arange(start, start + c), P - 1)  # pad by repeating the last
                chunk = jax.tree.map(lambda x, idx=idx: x[idx], batched)
                out = jax.tree.map(lambda x, n=n: x[:n], self._batched(*chunk, *shared))
            jax.block_until_ready(out)
            seconds[start : start + n] = (time.perf_counter() - t0) / n
            outs.append(out)
            if self.on_chunk is not None:
                self.on_chunk(start + n, P)
        self.last_seconds = seconds  # wall seconds per member (its chunk's time / chunk members)
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)
