"""The search space of GNN recommenders: genes, `Arch` arrays, decoding, presets, JSON.

Genome encoding (what evosax and the other strategies see): a float vector of G genes in [0, 1].
Every gene is discrete; gene g with `size` choices decodes as `min(floor(x * size), size - 1)`, and
`encode` maps a choice k back to its bin centre (k + 0.5) / size. The genes, in order:

    depth                          0..max_layers (0 = matrix factorisation)
    per layer l < max_layers:      op, transform (identity | linear), activation, residual (no | yes)
    combine                        last | mean | sum | concat (projected back to d) | learned softmax
    dim                            an embedding dimension from `dims` (a mask inside max(dims))
    dropout                        a rate from `dropouts` (on each layer's input)
    lr                             a learning rate from the log grid `lrs`
    l2                             an L2 coefficient from the log grid `l2s`
    features                       id | text | id+text (inert, decoded as id, until text exists)

An `Arch` is a pytree of int/float arrays, with a leading population axis when batched; names never
enter jit (ops are indices into `Space.ops`, frozen when the space is built).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import numpy as np
from flax import struct

from jgnas import archio
from jgnas.ops import BUILTIN_OPS, FAST_OPS, OPS
from jgnas.presets import PRESETS

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "elu", "sigmoid")
TRANSFORMS = ("identity", "linear")
COMBINES = ("last", "mean", "sum", "concat", "learned")
FEATURES = ("id", "text", "id+text")


@struct.dataclass
class Arch:
    """Architectures as arrays. Shapes are for one member; a population adds a leading [P]."""

    depth: Any  # int32 []
    op: Any  # int32 [L], index into Space.ops
    transform: Any  # int32 [L]
    act: Any  # int32 [L]
    residual: Any  # int32 [L]
    combine: Any  # int32 []
    dim: Any  # int32 [], the embedding dimension itself
    dropout: Any  # float32 []
    lr: Any  # float32 []
    l2: Any  # float32 []
    features: Any  # int32 []

    @property
    def size(self) -> int:
        """The population size (1 for an unbatched arch)."""
        return int(np.shape(self.depth)[0]) if np.ndim(self.depth) else 1


@dataclasses.dataclass(frozen=True)
class Space:
    """A search space; the defaults are the default experiment's (ml-100k on a CPU).

    The op order is frozen when the space is built. The default is the pinned tuple `FAST_OPS` (the
    built-ins on the fast sparse kernel), never the registry's order, so registering an op (a
    plugin) changes no default space or genome layout: list it in `ops` to search it.
    """

    ops: tuple[str, ...] = FAST_OPS
    max_layers: int = 3
    dims: tuple[int, ...] = (16, 32, 64)
    dropouts: tuple[float, ...] = (0.0, 0.1, 0.2)
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2)
    l2s: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3)
    text: bool = False

    def __post_init__(self):
        unknown = [o for o in self.ops if o not in OPS]
        if unknown:
            raise ValueError(f"space.ops: unknown op(s) {unknown}; registered: {list(OPS)}")
        if not self.ops:
            raise ValueError("space.ops: at least one op is needed")
        if self.max_layers < 0:
            raise ValueError(f"space.max_layers: must be >= 0, got {self.max_layers}")
        for name in ("dims", "dropouts", "lrs", "l2s"):
            if not getattr(self, name):
                raise ValueError(f"space.{name}: at least one value is needed")
        if any(d <= 0 for d in self.dims):
            raise ValueError(f"space.dims: dimensions must be positive, got {self.dims}")
        if any(not 0.0 <= r < 1.0 for r in self.dropouts):
            raise ValueError(f"space.dropouts: rates must be in [0, 1), got {self.dropouts}")
        if any(not (_finite32(r) and r > 0) for r in self.lrs):
            raise ValueError(f"space.lrs: learning rates must be finite and > 0, got {self.lrs}")
        if any(not (_finite32(r) and r >= 0) for r in self.l2s):
            raise ValueError(f"space.l2s: L2 coefficients must be finite and >= 0, got {self.l2s}")

    # ---- genes ---------------------------------------------------------------------------------
    @property
    def d_max(self) -> int:
        return max(self.dims)

    @property
    def gene_names(self) -> tuple[str, ...]:
        layer = []
        for l in range(self.max_layers):
            layer += [f"op{l}", f"transform{l}", f"act{l}", f"residual{l}"]
        return ("depth", *layer, "combine", "dim", "dropout", "lr", "l2", "features")

    @property
    def gene_sizes(self) -> tuple[int, ...]:
        layer = [len(self.ops), len(TRANSFORMS), len(ACTIVATIONS), 2] * self.max_layers
        return (
            self.max_layers + 1,
            *layer,
            len(COMBINES),
            len(self.dims),
            len(self.dropouts),
            len(self.lrs),
            len(self.l2s),
            len(FEATURES),
        )

    @property
    def n_genes(self) -> int:
        return len(self.gene_sizes)

    def decode(self, genomes) -> Arch:
        """Genomes [P, G] (or [G]) in [0, 1] -> Arch (numpy). Values outside [0, 1] are clipped."""
        g = np.asarray(genomes, np.float64)
        single = g.ndim == 1
        g = np.atleast_2d(g)
        if g.shape[1] != self.n_genes:
            raise ValueError(f"genome has {g.shape[1]} genes, the space has {self.n_genes}")
        sizes = np.asarray(self.gene_sizes)
        idx = np.minimum(np.floor(np.clip(np.nan_to_num(g, nan=0.0), 0, 1) * sizes), sizes - 1)
        idx = idx.astype(np.int32)
        arch = self._from_indices(idx)
        return jax.tree.map(lambda a: a[0], arch) if single else arch

    def _from_indices(self, idx: np.ndarray) -> Arch:
        L = self.max_layers
        layer = idx[:, 1 : 1 + 4 * L].reshape(-1, L, 4)
        rest = idx[:, 1 + 4 * L :]
        features = rest[:, 5] if self.text else np.zeros_like(rest[:, 5])
        return Arch(
            depth=idx[:, 0],
            op=layer[..., 0],
            transform=layer[..., 1],
            act=layer[..., 2],
            residual=layer[..., 3],
            combine=rest[:, 0],
            dim=np.asarray(self.dims, np.int32)[rest[:, 1]],
            dropout=np.asarray(self.dropouts, np.float32)[rest[:, 2]],
            lr=np.asarray(self.lrs, np.float32)[rest[:, 3]],
            l2=np.asarray(self.l2s, np.float32)[rest[:, 4]],
            features=features.astype(np.int32),
        )

    def indices(self, arch: Arch) -> np.ndarray:
        """Arch -> gene indices [P, G] (int). Values must lie on the space's grids: an arch off
        them (a preset with its published lr, a hand-written arch file) trains, but has no genome
        and no canonical key."""
        a = jax.tree.map(np.asarray, _batched(arch))
        L = self.max_layers
        P = a.depth.shape[0]

        def lookup(values, grid, name):
            grid = np.asarray(grid, np.float32)
            hit = np.isclose(np.asarray(values, np.float32)[:, None], grid[None], rtol=1e-5, atol=0)
            if not hit.any(axis=1).all():
                bad = np.asarray(values)[~hit.any(axis=1)][0]
                shown = tuple(_short(g) for g in grid)
                raise ValueError(
                    f"{name}={_short(bad):g} is not in the space's {name} grid {shown}: an arch "
                    "off the grids trains, but is no point of the search (no genome, no key)"
                )
            return hit.argmax(axis=1)

        layer = np.stack([a.op, a.transform, a.act, a.residual], axis=-1).reshape(P, 4 * L)
        rest = np.stack(
            [
                a.combine,
                lookup(a.dim, self.dims, "dim"),
                lookup(a.dropout, self.dropouts, "dropout"),
                lookup(a.lr, self.lrs, "lr"),
                lookup(a.l2, self.l2s, "l2"),
                a.features,
            ],
            axis=-1,
        )
        return np.concatenate([a.depth[:, None], layer, rest], axis=1).astype(np.int32)

    def encode(self, arch: Arch) -> np.ndarray:
        """Arch -> genomes [P, G] (or [G] for one arch) at the bin centres: decode(encode(a)) == a."""
        sizes = np.asarray(self.gene_sizes, np.float32)
        out = ((self.indices(arch) + 0.5) / sizes).astype(np.float32)
        return out if _is_batched(arch) else out[0]

    def canonical(self, arch: Arch) -> Arch:
        """Zeroes the genes that have no effect (inactive layers, combine and dropout at depth 0,
        text genes without text), so that equal models have equal arrays (used to cache evaluations)."""
        idx = self.indices(arch)
        L = self.max_layers
        depth = idx[:, 0]
        layer = idx[:, 1 : 1 + 4 * L].reshape(-1, L, 4)
        inactive = np.arange(L)[None, :] >= depth[:, None]
        layer = np.where(inactive[..., None], 0, layer)
        # Ops that ignore the transform gene (lightgcn) make it inert.
        uses_w = np.asarray([OPS[o].uses_transform for o in self.ops])
        layer[..., 1] = np.where(uses_w[layer[..., 0]], layer[..., 1], 0)
        rest = idx[:, 1 + 4 * L :].copy()
        rest[:, 0] = np.where(depth == 0, 0, rest[:, 0])
        # Dropout acts on each layer's input only: at depth 0 it has no effect either.
        rest[:, 2] = np.where(depth == 0, 0, rest[:, 2])
        if not self.text:
            rest[:, 5] = 0
        out = np.concatenate([depth[:, None], layer.reshape(-1, 4 * L), rest], axis=1)
        res = self._from_indices(out)
        return res if _is_batched(arch) else jax.tree.map(lambda x: x[0], res)

    def keys(self, arch: Arch) -> list[tuple[int, ...]]:
        """A hashable canonical key per member (equal keys = equal models)."""
        return [tuple(int(v) for v in row) for row in self.indices(self.canonical(arch))]

    def sample(self, key: jax.Array, n: int) -> Arch:
        """n architectures drawn uniformly from the space (every gene uniform over its choices)."""
        u = np.asarray(jax.random.uniform(key, (n, self.n_genes)))
        return self.decode(u)

    # ---- people (jgnas.archio) ----------------------------------------------------------------
    def to_dict(self, arch: Arch) -> dict:
        """One (unbatched) arch -> a JSON-ready dict with names (inactive layers left out)."""
        return archio.to_dict(self, arch)

    def from_dict(self, d: dict, where: str = "arch") -> Arch:
        """A dict from `to_dict` (or a hand-written one) -> one Arch, with one-line errors (see
        `jgnas.archio.from_dict`: numbers may lie off the grids, the grids bind only the search)."""
        return archio.from_dict(self, d, where)

    def to_json(self, arch: Arch) -> str:
        return json.dumps(self.to_dict(arch), indent=2)

    def from_json(self, text: str, where: str = "arch") -> Arch:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        return self.from_dict(d, where)

    def is_on_grid(self, arch: Arch) -> bool:
        """Whether every number of `arch` (dim, dropout, lr, l2) lies on the space's grids, i.e.
        the arch is a point of the search (it has a genome and a canonical key)."""
        try:
            self.indices(arch)
        except ValueError:
            return False
        return True

    def param_count(self, arch: Arch, n_node: int, text_dim: int) -> int:
        """Effective parameters of one arch: embeddings at its dimension and the weights its
        layers use (each op's count comes from its `OpSpec`), not the supernet's padding."""
        d = self.to_dict(arch)
        dim, depth = d["dim"], d["depth"]
        n = n_node * dim if d["features"] in ("id", "id+text") else 0
        n += text_dim * dim if d["features"] in ("text", "id+text") else 0
        for layer in d["layers"]:
            n += OPS[layer["op"]].n_params(dim, layer["transform"] == "linear")
        if depth and d["combine"] == "concat":
            n += (depth + 1) * dim * dim
        if depth and d["combine"] == "learned":
            n += depth + 1
        return n

    def describe(self, arch: Arch) -> str | list[str]:
        """A line a person can read, e.g. `3L[lightgcn, lightgcn, lightgcn] mean d64 drop0 lr1e-03
        l2 1e-04 id` (`MF d64 ...` at depth 0); see `jgnas.archio.describe`."""
        if _is_batched(arch):
            return [
                self.describe(jax.tree.map(lambda x, i=i: x[i], arch)) for i in range(arch.size)
            ]
        return archio.describe(self.to_dict(arch))

    # ---- presets ----------------------------------------------------------------------------------
    def preset(self, name: str) -> Arch:
        """A published model as a point of the model space, with its published hyperparameters
        (embedding 64, lr 1e-3, L2 1e-4) whether or not the search grids hold them. The one
        exception is a dimension above the supernet's width max(space.dims): it becomes that
        width, and `preset_changes` says so."""
        return self.from_dict(self._preset_dict(name), where=f"preset {name}")

    def preset_changes(self, name: str) -> tuple[str, ...]:
        """What `preset(name)` changed from the published model to fit the space (e.g.
        `("dim 64 -> 16 (the largest of space.dims)",)`), empty when nothing was."""
        published, fitted = PRESETS[name], self._preset_dict(name)
        return tuple(
            f"{k} {published[k]:g} -> {fitted[k]:g} (the largest of space.dims)"
            for k in ("dim",)
            if fitted[k] != published[k]
        )

    def _preset_dict(self, name: str) -> dict:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        d = json.loads(json.dumps(PRESETS[name]))
        if d["features"] != "id" and not self.text:
            raise ValueError(f"preset {name!r} needs text features (text.enabled)")
        for layer in d["layers"]:
            if layer["op"] not in self.ops:
                raise ValueError(f"preset {name!r} uses op {layer['op']!r}, not in space.ops")
        if d["depth"] > self.max_layers:
            raise ValueError(f"preset {name!r} has {d['depth']} layers > space.max_layers")
        d["dim"] = min(d["dim"], self.d_max)  # the supernet holds no wider embedding
        return d


_finite32 = archio.finite32


def _sci(x: float) -> str:
    """1e-03 for the grid's values, 1.5e-03 for a value with more digits (never rounded)."""
    return np.format_float_scientific(np.float32(x), exp_digits=2, unique=True, trim="-")


def _short(x) -> float:
    """The shortest decimal that rounds to the same float32 (1e-4, not 9.99999974e-05)."""
    return float(f"{np.float32(x):.7g}")


def _is_batched(arch: Arch) -> bool:
    return np.ndim(arch.depth) == 1


def _batched(arch: Arch) -> Arch:
    return arch if _is_batched(arch) else jax.tree.map(lambda x: np.asarray(x)[None], arch)


def wide_space(**overrides) -> Space:
    """Every built-in op (pinned order), 4 layers, d up to 128 and the wide lr / dropout grids: the
    library's `Space()` before the default job's narrower space became the default. The bench's
    mixed population, the cold-start study and tests pin it, so registering an op or changing the
    default job changes none of them. `overrides` replace fields (e.g. `max_layers=3`)."""
    fields = dict(
        ops=BUILTIN_OPS,
        max_layers=4,
        dims=(16, 32, 64, 128),
        dropouts=(0.0, 0.1, 0.2, 0.3),
        lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        l2s=(0.0, 1e-5, 1e-4, 1e-3),
    )
    return Space(**{**fields, **overrides})


def stack(archs: list[Arch]) -> Arch:
    """Stacks unbatched archs into a population."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *archs)


def take(arch: Arch, idx) -> Arch:
    """Members `idx` (an int, slice or index array) of a population."""
    return jax.tree.map(lambda x: np.asarray(x)[idx], arch)
