"""`python tests/interrupt_driver.py ARGS...` runs `jgnas ARGS...` with event markers on stderr.

For the interruption tests of tests/test_reliability.py: the parent reads the markers to send
SIGINT or SIGKILL at a chosen point of a real `jgnas search` process. Each marker is one line:

    @compile   before an executor's first call of its program (jit compiles inside that call)
    @chunk     before every later chunk (training or evaluation running in XLA)
    @checkpoint  before a generation's checkpoint
    @write NAME  before an atomic write of a run file

Nothing else changes: the command is `jgnas.cli.main`, Ctrl-C handling included.
"""

import sys

from jgnas import cli, executor
from jgnas.search import checkpoints


def _mark(event: str) -> None:
    sys.stderr.write(f"@{event}\n")
    sys.stderr.flush()


def _marked(fn):
    calls = [0]

    def call(*args):
        _mark("compile" if calls[0] == 0 else "chunk")
        calls[0] += 1
        return fn(*args)

    return call


_init = executor.Executor.__init__


def _executor_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self._solo = _marked(self._solo)
    self._batched = _marked(self._batched)


_save, _write_atomic = checkpoints.save, checkpoints.write_atomic


def _save_marked(*args, **kwargs):
    _mark("checkpoint")
    return _save(*args, **kwargs)


def _write_marked(path, text):
    _mark(f"write {path.name}")
    return _write_atomic(path, text)


executor.Executor.__init__ = _executor_init
checkpoints.save = _save_marked
checkpoints.write_atomic = _write_marked

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
