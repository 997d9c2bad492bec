"""Expected ranges: every number a target reports is checked against a range the script writes.

A target reports its numbers as {name: value} (e.g. "lightgcn test ndcg@20": 0.331). The expected
ranges are {pattern: (lo, hi)} with shell-style wildcards (`fnmatch`: "*" and "?"; the first
pattern that matches a name gives its range). Outcomes:
- ok: lo <= value <= hi;
- OUT-OF-RANGE: outside the range, or not a finite number (a failed run);
- NO RANGE: a number no pattern matches (every number is checked, so the script must say);
- MISSING: a pattern no number matches (an expected row was not produced, or was renamed).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Mapping, Sequence

Range = tuple[float, float]
OK, OUT, NO_RANGE, MISSING = "ok", "OUT-OF-RANGE", "NO RANGE", "MISSING"


@dataclasses.dataclass(frozen=True)
class Check:
    target: str
    name: str
    value: float | None
    lo: float | None
    hi: float | None
    status: str

    @property
    def failed(self) -> bool:
        return self.status != OK


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check(target: str, values: Mapping[str, float | None],
          expected: Mapping[str, Range]) -> list[Check]:  # fmt: skip
    """One Check per reported number (in order), then one MISSING per unused pattern."""
    out, used = [], set()
    for name, v in values.items():
        pat = next((p for p in expected if fnmatch.fnmatchcase(name, p)), None)
        if pat is None:
            out.append(Check(target, name, v, None, None, NO_RANGE))
            continue
        used.add(pat)
        lo, hi = expected[pat]
        ok = _finite(v) and lo <= v <= hi
        out.append(Check(target, name, v, lo, hi, OK if ok else OUT))
    for pat, (lo, hi) in expected.items():
        if pat not in used:
            out.append(Check(target, pat, None, lo, hi, MISSING))
    return out


def _value(v) -> str:
    return "–" if v is None else f"{v:.4g}" if _finite(v) else str(v)


def table_lines(checks: Sequence[Check]) -> list[str]:
    """Markdown lines: one row per check (target, number, value, range, status)."""
    lines = ["| target | number | value | expected | status |", "|---|---|---|---|---|"]
    for c in checks:
        rng = "–" if c.lo is None else f"[{c.lo:g}, {c.hi:g}]"
        lines.append(f"| {c.target} | {c.name} | {_value(c.value)} | {rng} | {c.status} |")
    return lines


def report_lines(checks: Sequence[Check]) -> list[str]:
    """The verdict: a count, then the table of the failed checks only (empty when none failed)."""
    bad = [c for c in checks if c.failed]
    head = f"expected ranges: {len(checks) - len(bad)} of {len(checks)} numbers in range"
    if not bad:
        return [head + "."]
    return [head + f"; {len(bad)} not:", "", *table_lines(bad)]
