"""Shared bits of the report figures: a pyplot-free figure, saving, short labels, colours."""

from __future__ import annotations

import pathlib

from matplotlib.figure import Figure

# One colour per role, used in every figure and in the page's CSS.
SEARCHED = "#1f77b4"
BASELINE = "#7f7f7f"
HIGHLIGHT = "#d62728"
TOP = "#ff7f0e"
DPI = 110


def figure(width: float, height: float) -> Figure:
    """A matplotlib Figure without pyplot: no global state, no backend to select."""
    return Figure(figsize=(width, height), dpi=DPI)


def save(fig: Figure, path: pathlib.Path) -> str:
    """Writes `fig` as a PNG at `path`; returns the file name (the page links it relatively)."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path.name


def short(text: object, n: int = 32) -> str:
    """`text` as a string of at most n characters (an ellipsis marks the cut)."""
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def value_label(v: object) -> str:
    """A gene value for a label: floats in %g, the rest as str."""
    return f"{v:g}" if isinstance(v, float) else str(v)
