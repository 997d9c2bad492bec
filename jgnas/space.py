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

from jgnas.ops import FAST_OPS, OPS
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
        """Arch -> gene indices [P, G] (int). Values must lie on the space's grids."""
        a = jax.tree.map(np.asarray, _batched(arch))
        L = self.max_layers
        P = a.depth.shape[0]

        def lookup(values, grid, name):
            grid = np.asarray(grid, np.float32)
            hit = np.isclose(np.asarray(values, np.float32)[:, None], grid[None], rtol=1e-5, atol=0)
            if not hit.any(axis=1).all():
                bad = np.asarray(values)[~hit.any(axis=1)][0]
                raise ValueError(f"{name}={bad} is not in the space's {name} grid {tuple(grid)}")
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

    # ---- people ---------------------------------------------------------------------------------
    def to_dict(self, arch: Arch) -> dict:
        """One (unbatched) arch -> a JSON-ready dict with names (inactive layers left out)."""
        a = jax.tree.map(lambda x: np.asarray(x).item() if np.ndim(x) == 0 else np.asarray(x), arch)
        if _is_batched(arch):
            raise ValueError("to_dict takes one arch; index the population first")
        layers = [
            {
                "op": self.ops[int(a.op[l])],
                "transform": TRANSFORMS[int(a.transform[l])],
                "act": ACTIVATIONS[int(a.act[l])],
                "residual": bool(a.residual[l]),
            }
            for l in range(int(a.depth))
        ]
        return {
            "depth": int(a.depth),
            "layers": layers,
            "combine": COMBINES[int(a.combine)],
            "dim": int(a.dim),
            "dropout": _short(a.dropout),
            "lr": _short(a.lr),
            "l2": _short(a.l2),
            "features": FEATURES[int(a.features)],
        }

    def from_dict(self, d: dict, where: str = "arch") -> Arch:
        """A dict from `to_dict` (or a hand-written one) -> one Arch, with clear errors."""
        keys = {"depth", "layers", "combine", "dim", "dropout", "lr", "l2", "features"}
        unknown = set(d) - keys
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(keys)}"
            )
        missing = keys - set(d) - {"layers"}
        if missing:
            raise ValueError(f"{where}: missing key(s) {sorted(missing)}")

        def choice(value, options, key):
            if value not in options:
                raise ValueError(f"{where}: {key}={value!r} is not one of {list(options)}")
            return options.index(value)

        depth = int(d["depth"])
        if not 0 <= depth <= self.max_layers:
            raise ValueError(f"{where}: depth={depth} must be in 0..{self.max_layers}")
        layers = d.get("layers", [])
        if len(layers) != depth:
            raise ValueError(f"{where}: depth={depth} but {len(layers)} layers are given")
        L = self.max_layers
        op, tf, act, res = (np.zeros(L, np.int32) for _ in range(4))
        for l, layer in enumerate(layers):
            lk = {"op", "transform", "act", "residual"}
            if set(layer) - lk:
                raise ValueError(f"{where}: layers[{l}] unknown key(s) {sorted(set(layer) - lk)}")
            op[l] = choice(layer["op"], self.ops, f"layers[{l}].op")
            tf[l] = choice(layer.get("transform", "identity"), TRANSFORMS, f"layers[{l}].transform")
            act[l] = choice(layer.get("act", "identity"), ACTIVATIONS, f"layers[{l}].act")
            res[l] = int(bool(layer.get("residual", False)))
        arch = Arch(
            depth=np.int32(depth),
            op=op,
            transform=tf,
            act=act,
            residual=res,
            combine=np.int32(choice(d["combine"], COMBINES, "combine")),
            dim=np.int32(d["dim"]),
            dropout=np.float32(d["dropout"]),
            lr=np.float32(d["lr"]),
            l2=np.float32(d["l2"]),
            features=np.int32(choice(d["features"], FEATURES, "features")),
        )
        if arch.features and not self.text:
            raise ValueError(
                f"{where}: features={d['features']!r} needs text features (text.enabled)"
            )
        self.indices(arch)  # validates dim/dropout/lr/l2 against the grids
        return arch

    def to_json(self, arch: Arch) -> str:
        return json.dumps(self.to_dict(arch), indent=2)

    def from_json(self, text: str, where: str = "arch") -> Arch:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        return self.from_dict(d, where)

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
        l2 1e-04 id` (`MF d64 ...` at depth 0). A layer reads `op[+W][/act][+res]`: `+W` when the
        transform is linear and the op uses it, `/act` unless the activation is the identity."""
        if _is_batched(arch):
            return [
                self.describe(jax.tree.map(lambda x, i=i: x[i], arch)) for i in range(arch.size)
            ]
        d = self.to_dict(arch)
        parts = []
        for layer in d["layers"]:
            s = layer["op"]
            if layer["transform"] == "linear" and OPS[layer["op"]].uses_transform:
                s += "+W"
            if layer["act"] != "identity":
                s += f"/{layer['act']}"
            if layer["residual"]:
                s += "+res"
            parts.append(s)
        body = "MF" if not parts else f"{d['depth']}L[{', '.join(parts)}] {d['combine']}"
        return (
            f"{body} d{d['dim']} drop{d['dropout']:g} lr{d['lr']:.0e} l2 {d['l2']:.0e} "
            f"{d['features']}"
        )

    # ---- presets ----------------------------------------------------------------------------------
    def preset(self, name: str) -> Arch:
        """A published model as a point of the space (embedding 64, lr 1e-3, L2 1e-4; where the
        space's grids lack one of these, the nearest grid value)."""
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
        # A space whose grids lack the published value gets the nearest one (log scale for lr, l2).
        d["dim"] = min(self.dims, key=lambda v: (abs(np.log(v / d["dim"])), v))
        d["dropout"] = min(self.dropouts, key=lambda v: (abs(v - d["dropout"]), v))
        d["lr"] = min(self.lrs, key=lambda v: abs(np.log(v / d["lr"])))
        d["l2"] = min(self.l2s, key=lambda v: abs(np.log(max(v, 1e-30) / d["l2"])))
        return self.from_dict(d, where=f"preset {name}")


def _short(x) -> float:
    """The shortest decimal that rounds to the same float32 (1e-4, not 9.99999974e-05)."""
    return float(f"{np.float32(x):.7g}")


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
