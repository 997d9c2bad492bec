"""The run directory of a search: one run per directory, locked while a process writes it.

A new search refuses a directory that holds anything (an earlier run's checkpoints would otherwise
be resumed in place of the new one's) unless told to overwrite it, and holds an exclusive
`fcntl.flock` on `RUN_DIR/.lock` while it writes, so two processes never write one directory.
A search that fails before its first checkpoint removes what it created. `resume_command` is the
one spelling of the resume hint, wherever it is printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import shlex
import shutil
from collections.abc import Iterator

__all__ = [
    "LOCK",
    "Claim",
    "RunDirError",
    "claim",
    "has_checkpoint",
    "interrupted_message",
    "resume_command",
]

LOCK = ".lock"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked; the message is one line."""


def resume_command(run_dir: str | os.PathLike) -> str:
    """The command that resumes `run_dir` (the same text in every hint)."""
    return f"jgnas search --resume {shlex.quote(str(run_dir))}"


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether run_dir holds a committed search checkpoint (`checkpoints/<generation>`, as
    `jgnas.search.loop` writes them with orbax; temporaries have longer names)."""
    folder = pathlib.Path(run_dir) / "checkpoints"
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def interrupted_message(run_dir: str | os.PathLike) -> str:
    """The line printed when a search is interrupted: what is kept, and how to resume."""
    path = pathlib.Path(run_dir)
    if not (path / "config.yaml").is_file():
        return "interrupted before the run directory was written; nothing to resume"
    kept = (
        "the last finished generation is checkpointed"
        if has_checkpoint(path)
        else "no generation had finished, so the search starts over"
    )
    return f"interrupted; {kept}. Resume with: {resume_command(path)}"


def _leftover(p: pathlib.Path) -> bool:
    """The lock file and the temporaries of an interrupted atomic write do not make a run."""
    return p.name == LOCK or p.name.endswith(".tmp")


def _clear(path: pathlib.Path, keep_lock: bool) -> None:
    for p in path.iterdir():
        if keep_lock and p.name == LOCK:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


class Claim:
    """A claimed run directory: `path`, and `discard()` to remove what this run created."""

    def __init__(self, path: pathlib.Path, created: bool):
        self.path = path
        self.created = created

    def discard(self) -> None:
        """Removes the directory if this run created it, else empties it (as it was found)."""
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.path.is_dir():
            _clear(self.path, keep_lock=False)


def _lock(path: pathlib.Path) -> int:
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunDirError(
            f"{path}: another jgnas process is writing this run directory ({path / LOCK} is "
            "locked); wait for it to finish or choose another --out"
        ) from None
    return fd


@contextlib.contextmanager
def claim(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool = False) -> Iterator[Claim]:
    """Claims a run directory for one process, for the duration of the block.

    Args:
      run_dir: the directory.
      resume: continue the run there (it must hold a config.yaml); else start a new one, in a
        directory that is absent or empty.
      overwrite: a new run may replace whatever the directory holds (it is emptied first).

    Yields:
      The `Claim`. Raises `RunDirError` (one line) for a non-empty directory without `overwrite`,
      a path that is a file, a directory that is not a run (resume), or one locked by another
      process.
    """
    path = pathlib.Path(run_dir)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory")
    if resume and not (path / "config.yaml").is_file():
        raise RunDirError(f"{path}: not a run directory (no config.yaml)")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"{path}: cannot create the run directory ({e.strerror})") from None
    fd = _lock(path)
    try:
        if not resume:
            found = sorted(p.name for p in path.iterdir() if not _leftover(p))
            if found and not overwrite:
                shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
                raise RunDirError(
                    f"{path}: not empty ({shown}); resume that run with `{resume_command(path)}`, "
                    "add --overwrite to replace it, or choose another --out"
                )
            _clear(path, keep_lock=True)
        yield Claim(path, created)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
