"""A results table in three formats (Markdown, CSV, LaTeX), and the check that written files parse.

A cell is a string, a number, None (empty) or a `mean_std` entry `{"mean": m, "std": s}`
(`jgnas.experiment.mean_std`). Markdown and LaTeX print `m ± s`; CSV keeps numbers as numbers and
splits a mean ± std column into `NAME mean` and `NAME std`, so a spreadsheet reads every value.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import pathlib
from collections.abc import Mapping, Sequence

Cell = str | int | float | Mapping | None


@dataclasses.dataclass(frozen=True)
class Table:
    """name: the file stem (`<name>.csv`, `<name>.tex`); title: a heading in the target's
    Markdown; formats: column -> format spec of its numbers (default ".4f"; ints print as is)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    title: str = ""
    formats: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        bad = [r for r in self.rows if len(r) != len(self.columns)]
        if bad:
            raise ValueError(f"table {self.name}: a row has {len(bad[0])} cells, not "
                             f"{len(self.columns)}: {bad[0]}")  # fmt: skip


def _is_stat(c: Cell) -> bool:
    return isinstance(c, Mapping) and "mean" in c


def _num(x, spec: str) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    return "nan" if math.isnan(x) else format(x, spec)


def text_cell(c: Cell, spec: str = ".4f") -> str:
    """A cell as Markdown prints it: `0.3303 ± 0.0004`, `0.1768`, `` (None)."""
    if c is None:
        return ""
    if _is_stat(c):
        return f"{_num(c['mean'], spec)} ± {_num(c['std'], spec)}"
    return _num(c, spec)


def markdown(table: Table) -> list[str]:
    """The table as Markdown lines (no title)."""
    fmt = [table.formats.get(c, ".4f") for c in table.columns]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.rows:
        lines.append("| " + " | ".join(text_cell(c, f) for c, f in zip(row, fmt)) + " |")
    return lines


def csv_text(table: Table) -> str:
    """The table as CSV: numbers unformatted, a mean ± std column split in two."""
    stat_cols = {j for j in range(len(table.columns)) if any(_is_stat(r[j]) for r in table.rows)}
    head: list[str] = []
    for j, c in enumerate(table.columns):
        head += [f"{c} mean", f"{c} std"] if j in stat_cols else [c]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in table.rows:
        out: list = []
        for j, c in enumerate(row):
            if j in stat_cols:
                out += [c["mean"], c["std"]] if _is_stat(c) else [c if c is not None else "", ""]
            else:
                out.append("" if c is None else c)
        w.writerow(out)
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "±": r"$\pm$", "×": r"$\times$", "ρ": r"$\rho$", "τ": r"$\tau$", "Δ": r"$\Delta$",
        "→": r"$\to$", "−": "$-$", "–": "--", "≥": r"$\geq$", "≤": r"$\leq$",
        "*": r"\textasteriskcentered{}", "|": r"\textbar{}", "<": r"\textless{}",
        ">": r"\textgreater{}"}  # fmt: skip


def tex_escape(s: str) -> str:
    """`s` with LaTeX's special characters escaped and the symbols the tables use as math."""
    return "".join(_TEX.get(ch, ch) for ch in s)


def latex(table: Table) -> str:
    """The table as a LaTeX `tabular` (plain \\hline rules: no package needed)."""
    fmt = [table.formats.get(c, ".4f") for c in table.columns]
    lines = [r"\begin{tabular}{" + "l" * len(table.columns) + "}", r"\hline"]
    lines.append(" & ".join(tex_escape(c) for c in table.columns) + r" \\")
    lines.append(r"\hline")
    for row in table.rows:
        cells = [tex_escape(text_cell(c, f)) for c, f in zip(row, fmt)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write(table: Table, folder: pathlib.Path) -> list[pathlib.Path]:
    """Writes `<name>.csv` and `<name>.tex` into folder; returns their paths."""
    csv_path, tex_path = folder / f"{table.name}.csv", folder / f"{table.name}.tex"
    csv_path.write_text(csv_text(table))
    tex_path.write_text(latex(table))
    return [csv_path, tex_path]


# ---- the check that what was written parses ------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def problems(path: pathlib.Path) -> list[str]:
    """What is wrong with a written output file (empty when it exists and parses as its kind):
    .md a Markdown table, .csv a header and rows of equal width, .tex a complete tabular, .png
    an image PIL reads, .json JSON."""
    if not path.is_file():
        return [f"{path.name}: not written"]
    try:
        if path.suffix == ".png":
            from PIL import Image

            if path.read_bytes()[:8] != PNG_MAGIC:
                return [f"{path.name}: not a PNG file"]
            with Image.open(path) as im:
                im.verify()
            return []
        text = path.read_text()
        if path.suffix == ".json":
            json.loads(text)
            return []
        if path.suffix == ".md":
            lines = text.splitlines()
            ok = any(line.startswith("|---") or line.startswith("| ---") for line in lines)
            return [] if ok else [f"{path.name}: no Markdown table"]
        if path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(text)))
            if len(rows) < 2:
                return [f"{path.name}: a header and no rows"]
            widths = {len(r) for r in rows}
            return [] if len(widths) == 1 else [f"{path.name}: rows of widths {sorted(widths)}"]
        if path.suffix == ".tex":
            ok = text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") >= 1
            return [] if ok and r" \\" in text else [f"{path.name}: not a complete tabular"]
    except Exception as e:  # any parse failure is the finding
        return [f"{path.name}: {type(e).__name__}: {e}"]
    return []


def check_files(paths: Sequence[pathlib.Path]) -> list[str]:
    """`problems` of every path, in order."""
    return [p for path in paths for p in problems(pathlib.Path(path))]
