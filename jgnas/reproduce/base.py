"""What every reproduce target gets (`Env`) and returns (`Output`), and what the targets share:
the reported metrics, the overrides that shrink a budget to seconds, row helpers."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

from jgnas import experiment
from jgnas.experiment import Log
from jgnas.progress import Progress
from jgnas.reproduce.tables import Table

K = 20
R, N = f"recall@{K}", f"ndcg@{K}"


@dataclasses.dataclass
class Env:
    """What every target gets.

    out: the results folder (run directories go to out/runs/). quick: tiny budgets.
    search_config: the default search's config file (configs/ml100k.yaml).
    search_run: the run directory the ablation reads (default: out/runs/search, which the
      search target writes).
    parity: the module of scripts/recbole_parity.py (its results file, rows and row runner),
      handed in by the script: the library never imports a script.
    command: how the script is called, for the "Made by" lines.
    """

    out: pathlib.Path
    quick: bool = False
    search_config: pathlib.Path | None = None
    search_run: pathlib.Path | None = None
    parity: Any = None
    command: str = "python scripts/reproduce.py"
    log: Log = experiment.stderr_log
    progress: Progress = dataclasses.field(default_factory=Progress)


@dataclasses.dataclass
class Output:
    """A target's product: tables (the first is the main one), numbers to check, the raw result
    (JSON-ready, written as out/TARGET.json), figures it wrote, notes printed above the tables."""

    tables: list[Table]
    values: dict[str, float | None]
    raw: Any
    figures: list[pathlib.Path] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


# Overrides that shrink a budget to seconds, on top of each target's full-size settings.
QUICK_FINAL = ("final.seeds=1", "final.epochs=2", "final.eval_every=1", "final.patience=1",
               "final.lrs=[0.01]", "final.tune_seeds=1")  # fmt: skip
QUICK_SEARCH = ("search.population_size=4", "search.generations=2", "train.epochs=1",
                "search.halving_rungs=0", *QUICK_FINAL)  # fmt: skip


def _stat(row: dict, metric: str) -> dict:
    return row["test"][metric]


def _row_values(rows: Sequence[dict], label_fn=lambda r: r["label"]) -> dict[str, float]:
    out = {}
    for r in rows:
        for m in (R, N):
            out[f"{label_fn(r)} test {m}"] = _stat(r, m)["mean"]
    return out


def _tuned(row: dict) -> str | None:
    t = row.get("tuned")
    return f"{t['lr']:g}, {t['l2']:g}" if t else f"{row['arch']['lr']:g}, {row['arch']['l2']:g}"
