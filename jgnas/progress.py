"""Progress of long jobs: a tqdm bar per phase on stderr, a timing line per phase, a summary.

A phase is one named stretch of a job ("data", "search", "tune", "retrain", "test"):

    progress = Progress(enabled=True)
    with progress.phase("retrain", total=P, unit="member") as update:
        engine.on_progress = update  # update(done, total) after each chunk
        engine.train(keys, archs)
    progress.write(progress.summary())  # time by phase: data 0.4 s, retrain 12.0 s (total ...)

On a terminal the bar is tqdm's own, redrawn in place with the rate and the ETA. When the stream
is not a terminal (a CI log, `tee`), redrawn frames would pile up in the file, so one whole line
(tqdm's `format_meter`: the same fields, an ASCII bar) is written instead, at an update, at most
every `interval` seconds (30 s by default): a long phase shows that it moves, a short one writes
nothing but its timing line. When a phase ends it writes `phase NAME: N units in X s`.

Granularity: the engine reports after each chunk of the population (`jgnas.executor`), so per
member on a CPU (chunk_size 1) and per chunk on a GPU (chunk_size = P: one step per generation).
Nothing finer is possible inside one jitted member's training without host callbacks, which would
cost a device-host round trip per step; a chunk is the unit of progress.

The library never decides to show progress and never reads argv or the environment: the edge
(the CLI, a script) makes a `Progress` and passes it down; the default everywhere is a disabled
one, which draws and writes nothing but still times the phases (`Progress.timings`).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO

from tqdm import tqdm

__all__ = ["Phase", "Progress", "as_progress", "write"]

LOG_INTERVAL_S = 30.0  # seconds between two progress lines when the stream is not a terminal


def write(msg: str, file: IO[str] | None = None) -> None:
    """Writes one line to `file` (default: stderr as it is at the call), above any bar on it."""
    file = sys.stderr if file is None else file
    tqdm.write(msg, file=file)
    file.flush()


class Phase:
    """What `Progress.phase` yields: call it as `update(done, total=None)` after each step.

    `done` is the count finished so far in this phase (not an increment); `total`, when given,
    replaces the phase's total. The signature is `Engine.on_progress`'s, so a phase plugs in as is.
    """

    def __init__(self, progress: Progress, name: str, total, unit: str | None, initial: int):
        self.name, self.unit, self.total = name, unit, total
        self.initial = self.done = initial
        self.start = self._last_line = time.perf_counter()
        self._end: float | None = None
        self._progress, self._note = progress, ""
        self._bar = None
        if progress.enabled and progress.tty:
            fmt = "{desc} ..." if unit is None else None  # no steps: the name says what runs
            self._bar = tqdm(total=total, desc=name, unit=unit or "it", initial=initial,
                             file=progress.file, leave=False, dynamic_ncols=True,
                             bar_format=fmt)  # fmt: skip

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        self.done = done
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.update(done - self._bar.n)
        elif self._progress.enabled:
            now = time.perf_counter()
            if now - self._last_line >= self._progress.interval:
                self._last_line = now
                write(self.line(), self._progress.file)

    def note(self, text: str) -> None:
        """Shows `text` after the counts (e.g. "gen 2/10")."""
        self._note = text
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    @property
    def seconds(self) -> float:
        """Seconds since the phase began (until it ended, once it has)."""
        return (time.perf_counter() if self._end is None else self._end) - self.start

    def line(self) -> str:
        """The phase now as one line: name, bar, count, elapsed, ETA, rate, note."""
        return tqdm.format_meter(self.done, self.total, self.seconds, prefix=self.name,
                                 ascii=True, unit=self.unit or "it", initial=self.initial,
                                 postfix=self._note or None)  # fmt: skip

    def timing(self) -> str:
        """`phase NAME: N units in X s`, N counting this run's steps (a resumed phase's `initial`
        ones excluded), or `phase NAME: X s` for a phase without steps."""
        n, s = self.done - self.initial, self.seconds
        if self.unit is None:
            return f"phase {self.name}: {s:.1f} s"
        rate = f" ({s / n:.2f} s/{self.unit})" if n else ""
        return f"phase {self.name}: {n} {self.unit}{'' if n == 1 else 's'} in {s:.1f} s{rate}"

    def _close(self) -> None:
        self._end = time.perf_counter()
        if self._bar is not None:
            self._bar.close()  # leave=False: the bar's line is cleared for the timing line


class Progress:
    """Progress bars and phase timing of one job, on one stream.

    Args:
      enabled: draw bars and write timing lines; False (`-q`) writes nothing at all.
      file: the stream (default: stderr, looked up when written, so captures see it).
      tty: draw in place (a terminal) or write whole lines (a log); None: `file.isatty()`.
      interval: seconds between two lines when not drawing in place.

    `timings` holds (name, seconds) of every finished phase, enabled or not. Phases do not nest.
    """

    def __init__(
        self,
        enabled: bool = False,
        *,
        file: IO[str] | None = None,
        tty: bool | None = None,
        interval: float = LOG_INTERVAL_S,
    ):
        self.enabled = enabled
        self.interval = interval
        self.timings: list[tuple[str, float]] = []
        self._file, self._tty = file, tty

    @property
    def file(self) -> IO[str]:
        return sys.stderr if self._file is None else self._file

    @property
    def tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        isatty = getattr(self.file, "isatty", None)
        return bool(isatty and isatty())

    @contextlib.contextmanager
    def phase(
        self, name: str, total: int | None = None, unit: str | None = "member", initial: int = 0
    ) -> Iterator[Phase]:
        """A phase: yields its `update(done, total)`; on a normal exit records its time and
        writes its timing line (an exception, e.g. Ctrl-C, only closes the bar).

        Args:
          name: shown before the bar and in the timing lines.
          total: steps in the phase (None: unknown, a count without ETA).
          unit: what a step is, singular ("member", "candidate", "text"); None for a phase
            without steps (data loading): its name while it runs, then its time.
          initial: steps already done before this run (a resumed search), left out of the rate.
        """
        ph = Phase(self, name, total, unit, initial)
        try:
            yield ph
        finally:
            ph._close()
        self.timings.append((name, ph.seconds))
        self.write(ph.timing())

    def write(self, msg: str) -> None:
        """Writes `msg` as one line above any bar, when enabled and `msg` is not empty."""
        if self.enabled and msg:
            write(msg, self.file)

    def summary(self) -> str:
        """`time by phase: data 0.4 s, search 21.0 s, ... (total 30.2 s)` (a name that ran more
        than once is summed); empty before any phase has finished."""
        if not self.timings:
            return ""
        by_name: dict[str, float] = {}
        for name, s in self.timings:
            by_name[name] = by_name.get(name, 0.0) + s
        parts = ", ".join(f"{name} {s:.1f} s" for name, s in by_name.items())
        return f"time by phase: {parts} (total {sum(by_name.values()):.1f} s)"


def as_progress(progress: Progress | bool | None) -> Progress:
    """The `progress` argument of the job functions as a Progress: a Progress as is; True (the
    older boolean form) an enabled one on stderr; False or None a disabled one."""
    if isinstance(progress, Progress):
        return progress
    return Progress(enabled=bool(progress))
