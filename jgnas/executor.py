"""The one place that iterates over a population: vmapped chunks, run in sequence.

`chunk_size = P` is the single jit(vmap) program for GPUs; `chunk_size = 1` is a loop of solo jitted
runs (on CPU, where `lax.switch` truly skips unchosen ops). A chunk's population axis can be
sharded over local devices with `shard_map`.

With a grouping (`Executor.__call__`'s `group_fn`), members are first grouped (members of a group
run together, groups in order of first appearance, members in their order), and each chunk of
more than one member runs a program specialised to its members (`plan_fn`, `make_member`):
on CPU, where vmap computes every branch, a chunk then computes only what its members use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jgnas import distributed
from jgnas.interrupt import StopFn, check

__all__ = ["CPU_CHUNK", "Executor", "default_chunk_size", "schedule"]


#: The CPU chunk width: members with the same ops (seeds and tuning points of one architecture,
#: repeated genomes) run as one vmapped program of up to 8, which costs 0.29x a solo member per
#: candidate-epoch for lightgcn (README "Performance"); members with ops no other member shares
#: still run solo, since `Engine` groups by ops first.
CPU_CHUNK = 8


def default_chunk_size(population_size: int, backend: str | None = None) -> int:
    """The chunk size chosen by measurement (scripts/bench.py): the whole population on GPU/TPU,
    where batching fills the device; on CPU chunks of up to `CPU_CHUNK` members, which `Engine`
    fills only with members that use the same ops (a vmapped program computes every branch its
    members use, so a member whose ops no other shares runs solo, where `lax.switch` runs only
    its own)."""
    backend = backend or jax.default_backend()
    return min(CPU_CHUNK, population_size) if backend == "cpu" else population_size


def schedule(labels: Sequence[Hashable], chunk_size: int) -> list[np.ndarray]:
    """Chunks of member indices: members with equal labels together (groups in order of first
    appearance, members in their order), each group cut into chunks of `chunk_size` and its
    remainder into chunks of decreasing powers of two (7 left in chunks of 8 run as 4 + 2 + 1), so
    that no chunk is padded and a chunk of one is a solo run."""
    groups: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    chunks = []
    for members in groups.values():
        idx, start = np.asarray(members), 0
        while start < idx.size:
            left = idx.size - start
            width = chunk_size if left >= chunk_size else 1 << (left.bit_length() - 1)
            chunks.append(idx[start : start + width])
            start += width
    return chunks


class Executor:
    """The one place that iterates over a population: vmapped chunks, run in sequence.

    `fn_solo(*member_args, *shared)` and `fn_member` (vmapped over the leading axis of the batched
    arguments; the shared ones are broadcast) must compute the same thing; `fn_solo` is used for
    chunks of one member. With more than one local device (and a chunk width that is a multiple of
    their number), a chunk's population axis is sharded over them with `shard_map`.

    `make_member(plan)` (optional) returns `fn_member` specialised to a plan (see `__call__`); it
    must compute the same numbers for the members the plan was made for. Programs are compiled once
    per (plan, chunk width) and kept.

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
        make_member: Callable[[Hashable], Callable] | None = None,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.n_batched = n_batched
        self.should_stop = should_stop
        self.on_chunk: Callable[[int, int], None] | None = None  # progress: (done, total)
        self.last_seconds = np.zeros(0)
        self._devices = list(devices) if devices is not None else jax.local_devices()
        self._fn_member = fn_member
        self._make_member = make_member
        self.n_devices = self._n_devices(chunk_size)
        self._solo = jax.jit(fn_solo)
        self._batched = self._compile(fn_member, chunk_size)
        # (plan, width) -> program; plan None is the generic program of the whole space.
        self.programs: dict[tuple[Hashable, int], Callable] = {}

    def _n_devices(self, width: int) -> int:
        n = len(self._devices)
        return n if width > 1 and width % n == 0 else 1

    def _compile(self, fn_member: Callable, width: int) -> Callable:
        n_batched, n_devices = self.n_batched, self._n_devices(width)

        def batched(*args):
            if width == 1:  # one member: its own program, unbatched inside (no vmap of width 1)
                member = (jax.tree.map(lambda x: x[0], a) for a in args[:n_batched])
                out = fn_member(*member, *args[n_batched:])
                return jax.tree.map(lambda x: x[None], out)
            axes = (0,) * n_batched + (None,) * (len(args) - n_batched)
            return jax.vmap(fn_member, in_axes=axes)(*args)

        if n_devices == 1:
            return jax.jit(batched)
        mesh = Mesh(np.asarray(self._devices[:n_devices]), ("pop",))

        def sharded(*args):
            specs = (PartitionSpec("pop"),) * n_batched + (PartitionSpec(),) * (
                len(args) - n_batched
            )
            return jax.shard_map(
                batched, mesh=mesh, in_specs=specs, out_specs=PartitionSpec("pop"), check_vma=False
            )(*args)

        return jax.jit(sharded)

    def program(self, plan: Hashable, width: int) -> Callable:
        """The compiled program of a chunk: the generic solo one for one member and plan None, the
        generic vmapped one for plan None at the chunk size, else `make_member(plan)` at that
        width (`_compile`) (kept)."""
        if width == 1 and plan is None:
            return self._solo
        if plan is None and width == self.chunk_size:
            return self._batched
        if (plan, width) not in self.programs:
            fn = self._fn_member if plan is None else self._make_member(plan)
            self.programs[(plan, width)] = self._compile(fn, width)
        return self.programs[(plan, width)]

    def __call__(
        self,
        batched: tuple,
        shared: tuple,
        group_fn: Callable[[tuple], Sequence[Hashable]] | None = None,
        plan_fn: Callable[[tuple], Hashable] | None = None,
        solo_plans: bool = False,
    ):
        """Runs the population. batched: pytrees with a leading [P]; shared: broadcast arguments.

        group_fn (optional): batched -> one (hashable) label per member; members are grouped by
        label and chunked by `schedule`, and every chunk of more than one member runs the program
        of `plan_fn(its batched arguments)` (None: the generic one). Results come back in the
        members' order. Without group_fn, members run in order in chunks of `chunk_size` (the last
        one padded by repeating its last member) through the generic program.

        solo_plans: a chunk of one member runs its plan's program too (compiled for that plan),
        not the generic solo program that every solo member shares: worth its compile for a
        member that trains long (see `jgnas.train.SOLO_PLAN_STEPS`).
        """
        P = int(jax.tree.leaves(batched)[0].shape[0])
        if jax.process_count() == 1:
            return self._run(batched, shared, P, group_fn, plan_fn, solo_plans)
        idx = distributed.member_slice(P, jax.process_count(), jax.process_index())
        part = jax.tree.map(lambda x: x[idx], batched)
        out = self._run(part, shared, idx.size, group_fn, plan_fn, solo_plans)
        out, self.last_seconds = distributed.allgather_members((out, self.last_seconds), P)
        return jax.tree.map(jnp.asarray, out)

    def _chunks(self, batched: tuple, P: int, group_fn) -> list[np.ndarray]:
        if group_fn is None:
            c = self.chunk_size
            return [np.arange(start, min(start + c, P)) for start in range(0, P, c)]
        return schedule(group_fn(batched), self.chunk_size)

    def _run(self, batched, shared, P: int, group_fn=None, plan_fn=None, solo_plans=False):
        """This process's members, in chunks."""
        c = self.chunk_size
        outs, order = [], []
        seconds = np.zeros(P)
        done = 0
        for idx in self._chunks(batched, P, group_fn):
            check(self.should_stop)
            t0 = time.perf_counter()
            n = idx.size
            if n == 1 and not solo_plans and (c == 1 or group_fn is not None):
                member = jax.tree.map(lambda x, i=int(idx[0]): x[i], batched)
                out = jax.tree.map(lambda x: x[None], self._solo(*member, *shared))
            elif group_fn is None:
                pad = np.concatenate([idx, np.full(c - n, idx[-1])])  # repeat the last member
                chunk = jax.tree.map(lambda x, pad=pad: x[pad], batched)
                out = jax.tree.map(lambda x, n=n: x[:n], self._batched(*chunk, *shared))
            else:
                chunk = jax.tree.map(lambda x, idx=idx: x[idx], batched)
                plan = None if plan_fn is None else plan_fn(chunk)
                out = self.program(plan, n)(*chunk, *shared)
            jax.block_until_ready(out)
            seconds[idx] = (time.perf_counter() - t0) / n
            outs.append(out)
            order.append(idx)
            done += n
            if self.on_chunk is not None:
                self.on_chunk(done, P)
        self.last_seconds = seconds  # wall seconds per member (its chunk's time / chunk members)
        out = jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)
        order = np.concatenate(order)
        if np.array_equal(order, np.arange(P)):
            return out
        inverse = np.argsort(order)  # chunk order -> the members' order
        return jax.tree.map(lambda x: x[inverse], out)
