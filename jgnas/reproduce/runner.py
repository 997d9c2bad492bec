"""Runs targets, writes each one's files, checks them, and says what fell outside its range.

Per target TARGET, in the results folder: TARGET.md (notes, every table, a "Made by" line),
TARGET.json (the raw result), one NAME.csv and NAME.tex per table (the main one is TARGET), and
its figures (PNG). checks.md sums up the run: the targets, their files, and every range check.
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
            bad = sum(c.failed for c in r.checks)
            verdict = ("ok" if r.ok else "; ".join(
                ([f"{len(r.problems)} problem(s)"] if r.problems else [])
                + ([f"{bad} number(s) not in range"] if bad else [])))  # fmt: skip
            lines.append(f"| {r.name} | {r.seconds:.0f} | {len(r.files)} | {verdict} |")
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


def run(
    names: Sequence[str],
    env: Env,
    expected: Mapping[str, Mapping[str, checks_lib.Range]] | None = None,
) -> Outcome:
    """Runs the targets in `TARGETS` order. A failing target is recorded (with its traceback on
    the log) and the others still run. Unless `env.quick`, every number is checked against
    `expected[target]` (`jgnas.reproduce.checks`). Writes env.out/checks.md."""
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    env.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in (n for n in TARGETS if n in names):
        env.log(f"== reproduce {name}{' (quick)' if env.quick else ''}: {TARGETS[name].title}")
        t0 = time.perf_counter()
        try:
            out = TARGETS[name].fn(env)
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
        env.log(f"== {name}: {time.perf_counter() - t0:.0f} s, {len(files)} files")
    outcome = Outcome(results, env.quick)
    every = [c for r in results for c in r.checks]
    text = ["# Reproduction checks", "", *outcome.report_lines()]
    if every:
        text += ["", "## Every number", "", *checks_lib.table_lines(every)]
    (env.out / "checks.md").write_text("\n".join(text) + "\n")
    return outcome
