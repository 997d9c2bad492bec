"""Every results table and figure of the README, regenerated into one folder.

`scripts/reproduce.py` is the entry point.

Targets (`TARGETS`) call the library's entry points at the README's budgets, or at tiny ones
(`Env.quick`: the same data and code path, to check the pipeline). Each writes Markdown, CSV and
LaTeX tables and PNG figures (`tables`), and every number it reports is checked against an
expected range (`checks`).
"""

from jgnas.reproduce.checks import Check, check, report_lines, table_lines
from jgnas.reproduce.runner import Outcome, TargetResult, run
from jgnas.reproduce.tables import Table, check_files, csv_text, latex, markdown
from jgnas.reproduce.targets import TARGETS, Env, Output, Target

__all__ = [
    "TARGETS",
    "Check",
    "Env",
    "Outcome",
    "Output",
    "Table",
    "Target",
    "TargetResult",
    "check",
    "check_files",
    "csv_text",
    "latex",
    "markdown",
    "report_lines",
    "run",
    "table_lines",
]
