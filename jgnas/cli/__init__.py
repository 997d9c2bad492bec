"""The `jgnas` command line. Each subcommand group is one `_<name>_parser(subparsers)` function."""

# The wiring: `build_parser` and `main`. Each group's commands live in a module of this package:
# data_cmds (data), job_cmds (search, train), run_cmds (recommend, report, export, serve) and
# config_cmds (config, list); common holds what they share.

from __future__ import annotations

import argparse
import sys

from jgnas.cli.config_cmds import _config_parser
from jgnas.cli.data_cmds import _data_parser
from jgnas.cli.job_cmds import _join_processes, _search_parser, _train_parser
from jgnas.cli.job_cmds import _processes as _processes  # re-exported: tests call it
from jgnas.cli.run_cmds import _recommend_parser, _report_parser, _serve_parser


def build_parser() -> argparse.ArgumentParser:
    """The full parser; a new subcommand group is one more `_<name>_parser(sub)` call here.

    Every command takes `--import MODULE` (repeatable): plugin modules imported before anything
    is built, as a config's `plugins:` list is."""
    parser = argparse.ArgumentParser(prog="jgnas", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _data_parser(sub)
    _search_parser(sub)
    _train_parser(sub)
    _recommend_parser(sub)
    _report_parser(sub)
    _serve_parser(sub)
    _config_parser(sub)
    for p in _all_parsers(parser):
        p.add_argument(
            "--import",
            dest="imports",
            action="append",
            metavar="MODULE",
            help="import a plugin module (ops, strategies, data formats) first; repeatable",
        )
    return parser


def _all_parsers(parser: argparse.ArgumentParser):
    """The leaf subcommand parsers (those that run a command)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for child in dict.fromkeys(subs[0].choices.values()):
        yield from _all_parsers(child)


# Seconds from Ctrl-C to the forced exit when the run has not reached a chunk boundary by then.
INTERRUPT_GRACE_S = 5.0


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI. Returns the exit code: 0 ok, 2 bad input (one `error:` line on stderr),
    130 interrupted (Ctrl-C; one line on stderr, for a search with the command that resumes it).

    Ctrl-C (`jgnas.interrupt.catch_sigint`): `search` and `train` stop at the next chunk or
    generation boundary; any command that has not stopped INTERRUPT_GRACE_S seconds later, or
    gets a second Ctrl-C, exits at once with 130 (safe: a run survives being killed anywhere).

    Args:
      argv: arguments without the program name (None: sys.argv[1:]).
    """
    from jgnas import interrupt

    args = build_parser().parse_args(argv)
    args.on_interrupt = lambda: "interrupted"  # a command may say more (search: how to resume)
    try:
        with interrupt.catch_sigint(
            lambda: args.on_interrupt(),
            grace_s=INTERRUPT_GRACE_S,
            cooperative=args.cmd in ("search", "train"),
        ) as should_stop:
            args.should_stop = should_stop
            from jgnas import plugins

            if args.cmd == "search":  # jax.distributed first: some imports start a backend
                args.process_id = _join_processes(args)
            plugins.import_all(args.imports or ())
            return args.fn(args)
    except KeyboardInterrupt:  # jgnas.interrupt.Interrupted, or Ctrl-C in another command
        if sys.stderr.isatty():
            print(file=sys.stderr)  # off a progress bar's line
        print(args.on_interrupt(), file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # DataError, ConfigError, RunDirError, bad values, files
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
