"""Runs targets, writes each one's files, checks them, and says what fell outside its range.

Per target TARGET, in the results folder: TARGET.md (notes, every table, a "Made by" line),
TARGET.json (the raw result), one NAME.csv and NAME.tex per table (the main one is TARGET), its
figures (PNG), and TARGET.checks.json (its time, date, problems and range checks). checks.md sums
up every target recorded in the folder, from this run or an earlier one (the full set takes
hours, so it may be made a few targets at a time): their dates, times, files and range checks.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from collections.abc import Mapping, Sequence

import jax

from jgnas.reproduce import checks as checks_lib
from jgnas.reproduce import tables as tables_lib
from jgnas.reproduce.targets import TARGETS, Env, Output


@dataclasses.dataclass
class TargetResult:
    name: str
    seconds: float
    files: list
    problems: list[str]  # an error, files not written or not parsing
    checks: list[checks_lib.Check]

    @property
    def ok(self) -> bool:
        return not self.problems and not any(c.failed for c in self.checks)

    @property
    def verdict(self) -> str:
        """The result column: ok, or how many problems and numbers out of range."""
        bad = sum(c.failed for c in self.checks)
        if self.ok:
            return "ok"
        return "; ".join(([f"{len(self.problems)} problem(s)"] if self.problems else [])
                         + ([f"{bad} number(s) not in range"] if bad else []))  # fmt: skip


@dataclasses.dataclass
class Outcome:
    results: list[TargetResult]
    quick: bool

    @property
    def exit_code(self) -> int:
        return 0 if all(r.ok for r in self.results) else 1

    def report_lines(self) -> list[str]:
        """The targets (time, files, verdict), every problem, and the OUT-OF-RANGE table."""
        lines = ["| target | seconds | files | result |", "|---|---|---|---|"]
        for r in self.results:
            lines.append(f"| {r.name} | {r.seconds:.0f} | {len(r.files)} | {r.verdict} |")
        problems = [f"- {r.name}: {p}" for r in self.results for p in r.problems]
        if problems:
            lines += ["", "Problems:", *problems]
        lines.append("")
        if self.quick:
            lines.append("--quick: files checked (written, parse); expected ranges not checked.")
        else:
            lines += checks_lib.report_lines([c for r in self.results for c in r.checks])
        return lines


def made_by(name: str, env: Env, seconds: float) -> str:
    quick = " --quick" if env.quick else ""
    dev = jax.devices()[0]
    where = (
        dev.device_kind
        if dev.device_kind == dev.platform
        else f"{dev.device_kind} ({dev.platform})"
    )
    line = (f"Made by `{env.command} {name}{quick}` ({name}.md, {name}.csv, {name}.tex) in "
            f"{seconds:.0f} s on {where}, {time.strftime('%Y-%m-%d')}.")  # fmt: skip
    if env.quick:
        line += " A --quick run checks the pipeline: its numbers mean nothing."
    return line


def write_outputs(name: str, out: Output, env: Env, seconds: float) -> list:
    """TARGET.md, TARGET.json and every table's CSV and LaTeX; returns every path (figures too)."""
    md = [f"# {TARGETS[name].title}", "", *out.notes, ""]
    files = []
    for t in out.tables:
        if len(out.tables) > 1 or t.title:
            md += [f"## {t.title or t.name}", ""]
        md += [*tables_lib.markdown(t), ""]
        files += tables_lib.write(t, env.out)
    md.append(made_by(name, env, seconds))
    (env.out / f"{name}.md").write_text("\n".join(md) + "\n")
    (env.out / f"{name}.json").write_text(json.dumps(out.raw, indent=1, default=float) + "\n")
    return [env.out / f"{name}.md", env.out / f"{name}.json", *files, *out.figures]


def _record(r: TargetResult, values: Mapping[str, float | None], env: Env) -> None:
    """TARGET.checks.json: what checks.md needs to sum the target up after later runs (its numbers,
    so that they are checked against the ranges of the day, `recorded`)."""
    rec = {"target": r.name, "date": time.strftime("%Y-%m-%d %H:%M"), "quick": env.quick,
           "seconds": r.seconds, "files": [str(f) for f in r.files], "problems": r.problems,
           "values": dict(values)}  # fmt: skip
    (env.out / f"{r.name}.checks.json").write_text(json.dumps(rec, indent=1, default=float) + "\n")


def recorded(out, expected: Mapping[str, Mapping[str, checks_lib.Range]] | None = None):
    """Every target with a TARGET.checks.json in `out`, in `TARGETS` order, as (record,
    TargetResult) with its numbers checked against `expected` now (none for a --quick record)."""
    found = []
    for name in TARGETS:
        path = out / f"{name}.checks.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        ranges = {} if rec["quick"] else (expected or {}).get(name, {})
        cs = (
            [] if rec["quick"] or rec["problems"] else checks_lib.check(name, rec["values"], ranges)
        )
        found.append((rec, TargetResult(name, rec["seconds"], rec["files"], rec["problems"], cs)))
    return found


def checks_md(out, this_run: Sequence[str], expected=None) -> str:
    """checks.md: every recorded target (date, time, files, verdict), their problems and range
    checks; the targets of this run are marked."""
    rows = recorded(out, expected)
    lines = ["# Reproduction checks", "",
             "| target | run | date | seconds | files | result |", "|---|---|---|---|---|---|"]  # fmt: skip
    for rec, r in rows:
        run_ = ("this run" if r.name in this_run else "earlier") + (
            " (--quick)" if rec["quick"] else ""
        )
        lines.append(f"| {r.name} | {run_} | {rec['date']} | {r.seconds:.0f} | {len(r.files)} | "
                     f"{r.verdict} |")  # fmt: skip
    problems = [f"- {r.name}: {p}" for _, r in rows for p in r.problems]
    if problems:
        lines += ["", "Problems:", *problems]
    every = [c for _, r in rows for c in r.checks]
    lines.append("")
    if any(rec["quick"] for rec, _ in rows):
        lines.append("--quick: files checked (written, parse); expected ranges not checked.")
    if every:
        lines += [*checks_lib.report_lines(every), "", "## Every number", "",
                  *checks_lib.table_lines(every)]  # fmt: skip
    return "\n".join(lines) + "\n"


def run(
    names: Sequence[str],
    env: Env,
    expected: Mapping[str, Mapping[str, checks_lib.Range]] | None = None,
) -> Outcome:
    """Runs the targets in `TARGETS` order. A failing target is recorded (with its traceback on
    the log) and the others still run. Unless `env.quick`, every number is checked against
    `expected[target]` (`jgnas.reproduce.checks`). Writes each target's TARGET.checks.json and
    env.out/checks.md (every target recorded there, `checks_md`)."""
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    env.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in (n for n in TARGETS if n in names):
        env.log(f"== reproduce {name}{' (quick)' if env.quick else ''}: {TARGETS[name].title}")
        t0 = time.perf_counter()
        values = {}
        try:
            out = TARGETS[name].fn(env)
            values = out.values
            files = write_outputs(name, out, env, time.perf_counter() - t0)
            problems = tables_lib.check_files(files)
            checks = (
                []
                if env.quick
                else checks_lib.check(name, out.values, (expected or {}).get(name, {}))
            )
        except Exception as e:  # one failed target must not lose the others' hours
            env.log(traceback.format_exc())
            files, problems, checks = [], [f"{type(e).__name__}: {e}"], []
        results.append(TargetResult(name, time.perf_counter() - t0, files, problems, checks))
        _record(results[-1], values, env)
        env.log(f"== {name}: {time.perf_counter() - t0:.0f} s, {len(files)} files")
    text = checks_md(env.out, [r.name for r in results], expected)
    (env.out / "checks.md").write_text(text)
    return Outcome(results, env.quick)
