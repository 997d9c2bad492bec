"""Execution plans: the part of the space that one compiled chunk program computes.

`Engine` groups a population by the ops its members use and compiles each chunk for its `Plan`
(`jgnas.train`): only those ops and layers, the negatives the members draw, and the genes every
member shares compiled in as constants, so that a vmapped chunk does not compute every branch of
the space. Exact: a member's numbers do not depend on the plan it runs under.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgnas.arch import Arch
from jgnas.ops import OPS
from jgnas.space import Space

__all__ = ["Plan", "op_signatures", "used_ops"]


def used_ops(space: Space, archs: Arch) -> np.ndarray:
    """bool [P, len(space.ops)]: the ops each member runs in its active layers (the op genes of
    inactive layers are inert, as `Space.canonical` says)."""
    op = np.asarray(archs.op).reshape(-1, space.max_layers)  # [P, L]
    active = np.arange(space.max_layers)[None, :] < np.asarray(archs.depth).reshape(-1, 1)
    used = np.zeros((op.shape[0], len(space.ops)), bool)
    rows = np.broadcast_to(np.arange(op.shape[0])[:, None], op.shape)
    used[rows[active], op[active]] = True
    return used


def op_signatures(space: Space, archs: Arch) -> list[tuple[int, ...]]:
    """Each member's used ops as a tuple of indices into `space.ops` (the engine's grouping key)."""
    return [tuple(np.flatnonzero(row).tolist()) for row in used_ops(space, archs)]


def _shared(v: np.ndarray):
    """The value every entry holds (a Python int), else None."""
    return int(v[0]) if v.size and np.all(v == v[0]) else None


def _zero(v: np.ndarray):
    """0 (of the genes' kind) when every entry is 0, else None."""
    return (0.0 if v.dtype.kind == "f" else 0) if np.all(v == 0) else None


# Genes a `Plan` compiles in as constants when every member of a chunk has this value (for a layer
# gene: in every active layer where it acts): the program then skips what the value makes useless
# (model and objective take the concrete value's path, as for a static arch).
_FIXABLE: dict[str, Callable[[np.ndarray], object]] = {
    "depth": _shared,  # no masking of layers
    "dropout": _zero,  # no dropout masks drawn
    "ssl": _zero,  # no noise, no contrastive term
    "sampler": _zero,  # no popularity draws
    "combine": _shared,  # one combination computed (a plan scores its d columns only)
    # layer genes: one activation, no norm or residual branch, no transform product
    **dict.fromkeys(("transform", "act", "residual", "norm"), _shared),
}
_LAYER_GENES = ("transform", "act", "residual", "norm")
_TRAINING_ONLY = ("dropout", "ssl", "sampler")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one compiled program computes: the part of the space that a chunk's members use.

    Under vmap a program computes every branch of the space (every op, combination, the noise and
    the contrastive term of any member), so a chunk's program is compiled for a plan of its
    members instead (`Plan.of`), and `Engine` groups members by the ops they use so that a chunk
    computes only those. Exact: a member's numbers do not depend on the plan it runs under (within
    float rounding), since only work whose result no member of the chunk reads is left out; its
    parameters keep the whole space's shapes and initialisation.

    ops: the ops of the members' active layers, in the space's order (empty at depth 0 only);
      `arch.op` is remapped into them inside the program (inactive layers' genes to the first).
    layers: the members' largest depth: the layers beyond it are not computed.
    negatives: negatives drawn per positive, the members' largest (`arch.negatives`): the shared
      negatives are drawn prefix-stably (partitionable threefry), so the first k of them are
      those of a draw of more; without that, 1 when every member uses 1 (then no shared ones are
      drawn) and else the space's `max_negatives`.
    fixed: (gene, value) for the genes of `_FIXABLE` whose value every member shares.
    """

    ops: tuple[str, ...]
    layers: int
    negatives: int
    fixed: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, space: Space, archs: Arch, training: bool = True) -> Plan:
        """The plan of a chunk `archs` ([n] leading axis); `training=False`: for evaluation only
        (no sampling, dropout or noise there)."""
        used = used_ops(space, archs).any(axis=0)
        depth = int(np.max(np.asarray(archs.depth)))
        L = space.max_layers
        active = np.arange(L)[None, :] < np.asarray(archs.depth).reshape(-1, 1)  # [n, L]
        op = np.asarray(archs.op).reshape(-1, L)
        uses_w = np.asarray([OPS[o].uses_transform for o in space.ops], bool)[op]
        values = {}
        for g in _FIXABLE:
            if g in _LAYER_GENES:  # the layers where the gene acts
                v = np.asarray(getattr(archs, g)).reshape(-1, L)
                v = v[active & uses_w if g == "transform" else active]
                values[g] = v if v.size else np.zeros(1, np.int32)  # inert everywhere: any value
            else:
                values[g] = np.asarray(getattr(archs, g)).reshape(-1)
        fixed = tuple((g, v) for g, f in _FIXABLE.items() if (v := f(values[g])) is not None)
        negatives = 1
        if training:
            k = int(np.clip(np.max(np.asarray(archs.negatives)), 1, space.max_negatives))
            prefix_stable = jax.config.jax_threefry_partitionable
            negatives = k if prefix_stable or k == 1 else space.max_negatives
        else:
            fixed = tuple((g, v) for g, v in fixed if g not in _TRAINING_ONLY)
        if not used.any():  # depth 0 everywhere: the combination and the dropout are inert
            inert = {"combine": 0, "dropout": 0.0} if training else {"combine": 0}
            fixed = tuple({**dict(fixed), **inert}.items())
        return cls(
            ops=tuple(o for o, u in zip(space.ops, used) if u),
            layers=min(depth, space.max_layers) if used.any() else 0,
            negatives=negatives,
            fixed=fixed,
        )

    def restrict(self, space: Space) -> Space:
        """The space the program runs: only the plan's ops, layers and negatives (`model.propagate`
        reads the first `layers` of the whole space's parameters)."""
        return dataclasses.replace(
            space,
            ops=self.ops or space.ops[:1],
            max_layers=self.layers,
            negatives=(self.negatives,),
        )

    def apply(self, space: Space, arch: Arch) -> Arch:
        """One member's arch for the restricted space: op indices remapped, fixed genes constant."""
        lut = np.zeros(len(space.ops), np.int32)
        lut[[space.ops.index(o) for o in self.ops]] = np.arange(len(self.ops), dtype=np.int32)
        return arch.replace(op=jnp.asarray(lut)[arch.op], **dict(self.fixed))
