"""Architectures as arrays: the gene vocabularies, the `Arch` pytree and population helpers.

An `Arch` is a pytree of int/float arrays, with a leading population axis when batched; names never
enter jit (ops are indices into `Space.ops`, frozen when the space is built). `jgnas.space` decodes
genomes into it and re-exports everything here.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import struct

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "elu", "sigmoid")
TRANSFORMS = ("identity", "linear")
COMBINES = ("last", "mean", "sum", "concat", "learned")
NORMS = ("none", "l2")
#: Node inputs: FEATURES[i] uses the inputs of bit mask i + 1 (id = 1, text = 2, side = 4).
FEATURES = ("id", "text", "id+text", "side", "id+side", "text+side", "id+text+side")
LOSSES = ("bpr", "softmax", "dns")
SOFTMAX, DNS = LOSSES.index("softmax"), LOSSES.index("dns")  # `arch.loss` values
SAMPLERS = ("uniform", "popularity")
LAYER_GENES = ("op", "transform", "act", "residual", "norm")


def feature_bits(features) -> tuple:
    """(id, text, side) as booleans (numpy or traced) of a FEATURES index."""
    b = features + 1
    return (b & 1) > 0, (b & 2) > 0, (b & 4) > 0


@struct.dataclass
class Arch:
    """Architectures as arrays. Shapes are for one member; a population adds a leading [P]."""

    depth: Any  # int32 []
    op: Any  # int32 [L], index into Space.ops
    transform: Any  # int32 [L]
    act: Any  # int32 [L]
    residual: Any  # int32 [L]
    norm: Any  # int32 [L]
    combine: Any  # int32 []
    dim: Any  # int32 [], the embedding dimension itself
    dropout: Any  # float32 []
    lr: Any  # float32 []
    l2: Any  # float32 []
    features: Any  # int32 [], index into FEATURES
    loss: Any  # int32 [], index into LOSSES
    negatives: Any  # int32 []
    temperature: Any  # float32 []
    sampler: Any  # int32 [], index into SAMPLERS
    ssl: Any  # float32 []

    @property
    def size(self) -> int:
        """The population size (1 for an unbatched arch)."""
        return int(np.shape(self.depth)[0]) if np.ndim(self.depth) else 1


def _bits(i: int) -> tuple[bool, bool, bool]:
    return tuple(bool(x) for x in feature_bits(i))


def _is_batched(arch: Arch) -> bool:
    return np.ndim(arch.depth) == 1


def _batched(arch: Arch) -> Arch:
    return arch if _is_batched(arch) else jax.tree.map(lambda x: np.asarray(x)[None], arch)


def stack(archs: list[Arch]) -> Arch:
    """Stacks unbatched archs into a population."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *archs)


def take(arch: Arch, idx) -> Arch:
    """Members `idx` (an int, slice or index array) of a population."""
    return jax.tree.map(lambda x: np.asarray(x)[idx], arch)
