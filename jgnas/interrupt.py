"""Ctrl-C that always works: a stop flag checked between chunks and generations, and a watchdog.

The library never raises inside XLA. Long-running loops take an explicit `should_stop` callable
(the executor checks it before each chunk, the search loop before each generation) and raise
`Interrupted` at that boundary, where nothing is half-done. Only the edge (the CLI) turns SIGINT
into that flag, with `catch_sigint`:

- the first SIGINT sets the flag; the run stops cleanly at the next chunk or generation boundary;
- if it has not stopped `grace_s` seconds later (a long compilation or a long training chunk runs
  in C++ and cannot be interrupted), or on a second SIGINT, the process exits at once with
  `os._exit(130)`: no Python unwinding through XLA's threads, so no "pure virtual method called"
  abort and no core dump. That is as safe as SIGKILL, which a run survives by design (checkpoints
  and run files are written atomically; the fault-injection test kills runs at random points).

The watchdog is a thread that reads the signal wakeup fd (`signal.set_wakeup_fd`): the C-level
handler writes to it even while the main thread is inside a compilation, which releases the GIL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Interrupted", "StopFn", "catch_sigint", "check"]

StopFn = Callable[[], bool]
_STOP_WATCHER = 0xFF  # a byte no signal number takes


class Interrupted(KeyboardInterrupt):
    """Raised at a chunk or generation boundary after a stop was requested (a KeyboardInterrupt,
    so `except Exception` never swallows it)."""


def check(should_stop: StopFn | None) -> None:
    """Raises `Interrupted` when `should_stop` says so (None: never)."""
    if should_stop is not None and should_stop():
        raise Interrupted("stop requested")


class _Sigint:
    """The state of one `catch_sigint` block (see there)."""

    def __init__(self, grace_s: float, message: Callable[[], str], cooperative: bool):
        self.grace_s = grace_s
        self.message = message
        self.cooperative = cooperative
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._closed = False

    def requested(self) -> bool:
        return self.event.is_set()

    def handler(self, signum, frame) -> None:  # runs on the main thread, between bytecodes
        self.event.set()
        if not self.cooperative:
            raise KeyboardInterrupt

    def watch(self, sock: socket.socket) -> None:
        """Counts SIGINTs from the wakeup fd; forces the exit on a second one or after grace."""
        deadline = None
        while True:
            sock.settimeout(None if deadline is None else max(deadline - _now(), 0.0))
            try:
                data = sock.recv(64)
            except TimeoutError:
                return self.force()
            except OSError:
                return
            if _STOP_WATCHER in data or not data:
                return
            for _ in range(data.count(signal.SIGINT)):
                self.event.set()
                if deadline is not None:
                    return self.force()
                deadline = _now() + self.grace_s

    def force(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                text = self.message()
            except Exception as e:  # the exit must happen whatever the message does
                text = f"interrupted ({type(e).__name__} while describing the run)"
            os.write(2, (text.rstrip("\n") + "\n").encode(errors="replace"))
            os._exit(130)

    def close(self) -> None:
        with self._lock:
            self._closed = True


def _now() -> float:
    return time.monotonic()


@contextlib.contextmanager
def catch_sigint(
    message: Callable[[], str],
    grace_s: float = 5.0,
    cooperative: bool = True,
) -> Iterator[StopFn]:
    """Within the block, SIGINT requests a stop instead of raising KeyboardInterrupt anywhere.

    Args:
      message: called on a forced exit; its text is written to stderr before `os._exit(130)`.
      grace_s: seconds between the first SIGINT and the forced exit.
      cooperative: True: SIGINT only sets the flag (the code checks the yielded `should_stop`);
        False: it also raises KeyboardInterrupt on the main thread as usual (for code with no
        checks), and the watchdog still forces the exit when the main thread is stuck in C++.

    Yields:
      `should_stop()`: whether a SIGINT arrived. Outside the main thread (where signals cannot
      be handled) the block runs with Python's default handling and `should_stop` is always False.
    """
    state = _Sigint(grace_s, message, cooperative)
    if threading.current_thread() is not threading.main_thread():
        yield state.requested
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    old_handler = signal.signal(signal.SIGINT, state.handler)
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=state.watch, args=(reader,), daemon=True, name="sigint")
    watcher.start()
    try:
        yield state.requested
    finally:
        state.close()  # from here on the main thread reports the interruption itself
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        with contextlib.suppress(OSError):
            writer.send(bytes([_STOP_WATCHER]))
        watcher.join(timeout=1.0)
        reader.close()
        writer.close()
        sys.stderr.flush()
