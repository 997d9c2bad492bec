"""The search archive: one `Candidate` record per evaluated candidate (a line of history.jsonl)
and what is read from an archive (the best distinct archs, a candidate's cost, the failures)."""

from __future__ import annotations

import dataclasses

from jgnas.space import Arch, Space


@dataclasses.dataclass(frozen=True, eq=False)
class Candidate:
    """One evaluated candidate of the archive (a line of history.jsonl).

    key: the canonical gene indices (equal keys = equal models). arch: the member, canonical
    (`Space.canonical`: genes without effect zeroed), numpy; records compare with `to_json`.
    fitness: validation fitness, None when failed. valid: every validation metric ("ndcg@20": v).
    epochs: the budget it reached (successive halving). params: effective parameter count.
    cached: a duplicate whose result was reused from the archive, not trained again.
    """

    generation: int
    index: int
    genome: tuple[float, ...]
    key: tuple[int, ...]
    arch: Arch
    describe: str
    fitness: float | None
    failed: bool
    valid: dict[str, float]
    epochs: int
    best_epoch: int
    train_seconds: float
    params: int
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.fitness is not None and not self.failed

    def to_json(self, space: Space) -> dict:
        """A JSON-ready dict (the arch by name, as `Space.to_dict`)."""
        d = {
            "key": list(self.key),
            "arch": space.to_dict(self.arch),
            "describe": self.describe,
            "fitness": self.fitness,
            "failed": self.failed,
            "valid": self.valid,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "train_seconds": self.train_seconds,
            "params": self.params,
        }
        if self.cached:
            d["cached"] = True
        return {
            **d,
            "generation": self.generation,
            "index": self.index,
            "genome": list(self.genome),
        }

    @classmethod
    def from_json(cls, d: dict, space: Space) -> Candidate:
        """The inverse of `to_json` (the arch is validated against `space`)."""
        kw = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        kw.update(
            genome=tuple(d["genome"]),
            key=tuple(d["key"]),
            arch=space.from_dict(d["arch"], where="archive"),
        )
        return cls(**kw)


def top_archs(archive: list[Candidate], k: int) -> list[Candidate]:
    """The k best distinct (canonical) archs of the archive by validation fitness (ties: earliest)."""
    seen, out = set(), []
    ranked = sorted((r for r in archive if r.ok), key=lambda r: (-r.fitness, r.generation, r.index))
    for r in ranked:
        if r.key in seen:
            continue
        seen.add(r.key)
        out.append(r)
        if len(out) == k:
            break
    return out


def cost_of(record: Candidate, kind: str) -> float:
    """The second objective of a candidate: its parameter count or its training seconds."""
    return float(record.params if kind == "params" else record.train_seconds)


def failure_summary(archive: list[Candidate]) -> str:
    """One line on the failed candidates of an archive: how many, and at which learning rates
    (divergence, a NaN/inf loss, is the usual cause)."""
    failed = [r for r in archive if not r.ok]
    lrs = sorted({float(r.arch.lr) for r in failed if r.arch is not None})
    shown = ", ".join(f"{x:g}" for x in lrs[:6]) + (", ..." if len(lrs) > 6 else "")
    return (
        f"{len(failed)} of {len(archive)} candidates failed (the loss or the parameters became "
        f"NaN/inf){f'; their learning rates: {shown}' if lrs else ''}"
    )
