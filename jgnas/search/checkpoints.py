"""A search's checkpoints: orbax steps with a checksum manifest, restore with fall-back.

Every generation is saved with orbax (atomic: orbax commits a finished temporary directory), and a
manifest of its files' sizes and sha256 is written into it. A restore takes the newest intact
checkpoint: a damaged one (a file differing from its manifest, or state or metadata orbax cannot
read) is reported in one line naming the file and skipped for the previous one (orbax keeps two).
Run-directory files are written atomically (`write_atomic`). Callers use these through the module
(`checkpoints.save`, `checkpoints.write_atomic`) so that fault-injection tests can wrap them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jgnas.rundir import RunDirError

Log = Callable[[str], None]


def single_writer() -> dict:
    """Orbax options for a run of several processes (`jgnas.distributed`), where only process 0
    writes: orbax must not wait for the others at its barriers. Empty for one process."""
    if jax.process_count() == 1:
        return {}
    return {
        "multiprocessing_options": ocp.options.MultiprocessingOptions(
            primary_host=0, active_processes={0}
        )
    }


def manager(run_dir: pathlib.Path) -> ocp.CheckpointManager:
    folder = (run_dir / "checkpoints").absolute()
    options = single_writer()
    if options:  # orbax creates no folder for a subset of processes
        folder.mkdir(parents=True, exist_ok=True)
    return ocp.CheckpointManager(
        folder,
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=not options, **options),
    )


# Written into each committed checkpoint: size and sha256 of its files, so that a damaged file is
# found (and named) before orbax reads it.
MANIFEST = "jgnas-files.json"


def save(mngr: ocp.CheckpointManager, generation: int, state: Any, meta: dict) -> None:
    state_np = jax.tree.map(np.asarray, state)
    mngr.save(
        generation,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state_np), meta=ocp.args.JsonSave(meta)
        ),
    )
    mngr.wait_until_finished()
    step_dir = pathlib.Path(mngr.directory) / str(generation)
    if step_dir.is_dir():
        write_atomic(step_dir / MANIFEST, json.dumps(_file_digests(step_dir)))


def _file_digests(step_dir: pathlib.Path) -> dict[str, list]:
    return {
        str(p.relative_to(step_dir)): [p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()]
        for p in sorted(step_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".tmp")
    }


def _check_files(step_dir: pathlib.Path) -> str | None:
    """The first file of a checkpoint that differs from its manifest, described; None when all
    match (or the checkpoint has no manifest: an interruption came right after the commit)."""
    try:
        manifest = json.loads((step_dir / MANIFEST).read_text())
        expected = {k: (int(v[0]), str(v[1])) for k, v in manifest.items()}
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return None
    for rel, (size, digest) in expected.items():
        p = step_dir / rel
        if not p.is_file():
            return f"{p}: damaged checkpoint (the file is missing)"
        if p.stat().st_size != size:
            return f"{p}: damaged checkpoint (truncated or altered: {p.stat().st_size} of {size} bytes)"
        if hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            return f"{p}: damaged checkpoint (its content differs from its checksum)"
    return None


def _restore_step(mngr, step: int, template: Any, decode: Callable):
    """One checkpoint -> (state, *decode(meta)); raises `_Damaged` when it cannot be read."""
    abstract = jax.tree.map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), template)
    try:
        meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        generation, archive = decode(meta)
    except Exception as e:
        raise _Damaged("meta", e) from None
    try:
        out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        state = jax.tree.map(
            lambda t, x: jax.numpy.asarray(x, dtype=np.asarray(t).dtype), template, out["state"]
        )
    except Exception as e:
        raise _Damaged("state", e) from None
    return state, generation, archive


class _Damaged(Exception):
    def __init__(self, item: str, error: Exception):
        super().__init__(item)
        self.item, self.error = item, error


@contextlib.contextmanager
def _quiet_closed_loop():
    """When orbax fails to read a checkpoint, tensorstore still calls back into the asyncio loop
    orbax has closed, and Python prints each as an "Exception ignored" traceback. Those (and
    only those) are dropped while a restore runs."""
    previous = sys.unraisablehook

    def hook(unraisable):
        e = unraisable.exc_value
        if not (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def restore(
    mngr: ocp.CheckpointManager, template: Any, decode: Callable, run_dir: pathlib.Path, log: Log
) -> tuple[Any, int, list] | None:
    """The newest intact checkpoint -> (state, generation, archive); None when there is none.
    `decode(meta) -> (generation, archive)` reads the JSON metadata (raising when it is damaged).

    A damaged one (a file that differs from the checkpoint's manifest, or state or metadata orbax
    cannot read) is reported in one line naming the file and skipped for the previous one; it is
    deleted, so that its generation can be checkpointed again. When every checkpoint is damaged,
    a one-line `RunDirError` names the first damaged file."""
    damaged: list[tuple[int, str]] = []
    with _quiet_closed_loop():
        for step in sorted(mngr.all_steps(), reverse=True):
            problem = _check_files(run_dir / "checkpoints" / str(step))
            if problem is None:
                try:
                    restored = _restore_step(mngr, step, template, decode)
                except _Damaged as e:
                    path = run_dir / "checkpoints" / str(step) / e.item
                    reason = (str(e.error).strip().splitlines() or [""])[0][:100]
                    problem = f"{path}: damaged checkpoint ({type(e.error).__name__}: {reason})"
            if problem is not None:
                damaged.append((step, problem))
                log(f"warning: {problem}; trying the previous checkpoint")
                continue
            for bad, _ in damaged:
                mngr.delete(bad)
            return restored
    if damaged:
        first = damaged[0][1].split(": damaged checkpoint")[0]
        raise RunDirError(
            f"{first}: damaged checkpoint; no intact checkpoint to resume from (orbax keeps 2)"
        )
    return None


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename (never a torn file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_history(run_dir: pathlib.Path, lines: list[dict]) -> None:
    """history.jsonl: one JSON record per line, written atomically."""
    write_atomic(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
