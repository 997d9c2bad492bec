"""The search space of GNN recommenders: genes, `Arch` arrays, decoding, presets, JSON.

Genome encoding (what evosax and the other strategies see): a float vector of G genes in [0, 1].
Every gene is discrete; gene g with `size` choices decodes as `min(floor(x * size), size - 1)`, and
`encode` maps a choice k back to its bin centre (k + 0.5) / size. The genes, in order:

    depth                          0..max_layers (0 = matrix factorisation)
    per layer l < max_layers:      op, transform (identity | linear), activation, residual (no | yes),
                                   norm (none | l2: each node's output scaled to unit length)
    combine                        last | mean | sum | concat (the layers side by side, as NGCF
                                   scores them) | learned softmax
    dim                            an embedding dimension from `dims` (a mask inside max(dims))
    dropout                        a rate from `dropouts` (on each layer's input)
    lr                             a learning rate from the log grid `lrs`
    l2                             an L2 coefficient from the log grid `l2s`
    features                       the node inputs among those the space has: id, text (frozen
                                   pretrained text vectors) and side (embedded categorical
                                   attributes), alone or summed (`feature_choices`)
    loss                           bpr | softmax (sampled softmax / InfoNCE) | dns (BPR against the
                                   hardest of the negatives), from `losses`
    negatives                      negatives per positive, from `negatives`
    temperature                    the softmax temperature, from `temperatures` (inert otherwise)
    sampler                        uniform | popularity (∝ degree^0.75), from `samplers`
    ssl                            the weight of the SimGCL-style contrastive term, from
                                   `ssl_weights` (0 = off)

The objective genes make the training objective part of the searched model (issue 9): a preset
keeps its published objective (BPR, one uniform negative, no contrastive term).

`Arch` (the arrays a space decodes to), the gene vocabularies and the population helpers (`stack`,
`take`) live in `jgnas.arch` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np

from jgnas import archio
from jgnas.arch import (
    ACTIVATIONS,
    COMBINES,
    FEATURES,
    LAYER_GENES,
    LOSSES,
    NORMS,
    SAMPLERS,
    SOFTMAX,
    TRANSFORMS,
    Arch,
    _batched,
    _bits,
    _is_batched,
)
from jgnas.arch import feature_bits as feature_bits  # re-exported (jgnas.archio reads it here)
from jgnas.arch import stack as stack  # re-exported: the public path is jgnas.space
from jgnas.arch import take as take
from jgnas.ops import BUILTIN_OPS, FAST_OPS, OPS
from jgnas.presets import PRESETS


@dataclasses.dataclass(frozen=True)
class Space:
    """A search space; the defaults are the default experiment's (ml-100k on a CPU): the
    architecture, the features the experiment builds (`text`, `side`, set from its `text` and
    `side` sections) and the training objective, with one screening lr and L2.

    The op order is frozen when the space is built. The default is the pinned tuple `FAST_OPS` (the
    built-ins on the fast sparse kernel), never the registry's order, so registering an op (a
    plugin) changes no default space or genome layout: list it in `ops` to search it.
    """

    ops: tuple[str, ...] = FAST_OPS
    max_layers: int = 3
    dims: tuple[int, ...] = (16, 32, 64)
    dropouts: tuple[float, ...] = (0.0, 0.1)
    # Screening decoupled from tuning: one lr and one L2 while the search ranks architectures;
    # the finalists and the baselines are then tuned over the same grid (`final.lrs`, `final.l2s`).
    lrs: tuple[float, ...] = (1e-2,)
    l2s: tuple[float, ...] = (1e-4,)
    text: bool = False
    side: bool = False
    losses: tuple[str, ...] = ("bpr", "softmax")
    negatives: tuple[int, ...] = (1, 4, 16)
    temperatures: tuple[float, ...] = (0.1, 0.2, 0.5)
    samplers: tuple[str, ...] = ("uniform", "popularity")
    ssl_weights: tuple[float, ...] = (0.0, 0.05, 0.2)

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
        for name, options in (("losses", LOSSES), ("samplers", SAMPLERS)):
            values = getattr(self, name)
            bad = [v for v in values if v not in options]
            if not values or bad:
                raise ValueError(f"space.{name}: {list(values)} must be a non-empty subset of "
                                 f"{list(options)}")  # fmt: skip
        for name in ("negatives", "temperatures", "ssl_weights"):
            if not getattr(self, name):
                raise ValueError(f"space.{name}: at least one value is needed")
        if any(isinstance(k, bool) or int(k) != k or k < 1 for k in self.negatives):
            raise ValueError(f"space.negatives: integers >= 1, got {list(self.negatives)}")
        if any(not (_finite32(t) and t > 0) for t in self.temperatures):
            raise ValueError(f"space.temperatures: must be finite and > 0, got {self.temperatures}")
        if any(not (_finite32(w) and w >= 0) for w in self.ssl_weights):
            raise ValueError(f"space.ssl_weights: must be finite and >= 0, got {self.ssl_weights}")

    # ---- genes ---------------------------------------------------------------------------------
    @property
    def d_max(self) -> int:
        return max(self.dims)

    @property
    def feature_choices(self) -> tuple[int, ...]:
        """The FEATURES indices this space can build: id always, text and side when present."""
        have = (True, self.text, self.side)
        return tuple(
            i for i in range(len(FEATURES)) if all(h or not b for h, b in zip(have, _bits(i)))
        )

    def _rest(self) -> tuple[tuple[str, tuple, type], ...]:
        """(name, values, dtype) of the genes after the layers: `values[k]` is what the Arch field
        holds for choice k (an index into COMBINES / FEATURES / LOSSES / SAMPLERS, or a number)."""
        return (
            ("combine", tuple(range(len(COMBINES))), np.int32),
            ("dim", tuple(self.dims), np.int32),
            ("dropout", tuple(self.dropouts), np.float32),
            ("lr", tuple(self.lrs), np.float32),
            ("l2", tuple(self.l2s), np.float32),
            ("features", self.feature_choices, np.int32),
            ("loss", tuple(LOSSES.index(x) for x in self.losses), np.int32),
            ("negatives", tuple(int(k) for k in self.negatives), np.int32),
            ("temperature", tuple(self.temperatures), np.float32),
            ("sampler", tuple(SAMPLERS.index(x) for x in self.samplers), np.int32),
            ("ssl", tuple(self.ssl_weights), np.float32),
        )

    @property
    def max_negatives(self) -> int:
        """Negatives drawn per positive for every member (static shape); each uses its first k."""
        return int(max(self.negatives))

    @property
    def gene_names(self) -> tuple[str, ...]:
        layer = [f"{g}{l}" for l in range(self.max_layers) for g in LAYER_GENES]
        return ("depth", *layer, *(name for name, _, _ in self._rest()))

    @property
    def gene_sizes(self) -> tuple[int, ...]:
        layer = [len(self.ops), len(TRANSFORMS), len(ACTIVATIONS), 2, len(NORMS)] * self.max_layers
        return (self.max_layers + 1, *layer, *(len(v) for _, v, _ in self._rest()))

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
        L, n = self.max_layers, len(LAYER_GENES)
        layer = idx[:, 1 : 1 + n * L].reshape(-1, L, n)
        rest = idx[:, 1 + n * L :]
        fields = {
            name: np.asarray(values, dtype)[rest[:, i]]
            for i, (name, values, dtype) in enumerate(self._rest())
        }
        genes = {g: layer[..., i] for i, g in enumerate(LAYER_GENES)}
        return Arch(depth=idx[:, 0], **genes, **fields)

    def indices(self, arch: Arch) -> np.ndarray:
        """Arch -> gene indices [P, G] (int). Values must lie on the space's grids: an arch off
        them (a preset with its published lr, a hand-written arch file) trains, but has no genome
        and no canonical key."""
        a = jax.tree.map(np.asarray, _batched(arch))
        P = a.depth.shape[0]

        def lookup(values, grid, name, dtype):
            if dtype is np.int32:
                hit = np.asarray(values)[:, None] == np.asarray(grid)[None]
            else:
                grid = np.asarray(grid, np.float32)
                v = np.asarray(values, np.float32)[:, None]
                hit = np.isclose(v, grid[None], rtol=1e-5, atol=0)
            if not hit.any(axis=1).all():
                bad = np.asarray(values)[~hit.any(axis=1)][0]
                shown = tuple(_name(name, g) for g in grid)
                raise ValueError(
                    f"{name}={_name(name, bad)} is not in the space's {name} grid {shown}: an arch "
                    "off the grids trains, but is no point of the search (no genome, no key)"
                )
            return hit.argmax(axis=1)

        layer = np.stack([getattr(a, g) for g in LAYER_GENES], axis=-1).reshape(P, -1)
        values = {n: np.asarray(getattr(a, n)) for n, _, _ in self._rest()}
        # Only softmax reads the temperature: for the others any value is the grid's first (a
        # preset's 1.0 included).
        values["temperature"] = np.where(
            values["loss"] != SOFTMAX, self.temperatures[0], values["temperature"]
        )
        rest = np.stack([lookup(values[n], v, n, t) for n, v, t in self._rest()], axis=-1)
        return np.concatenate([a.depth[:, None], layer, rest], axis=1).astype(np.int32)

    def encode(self, arch: Arch) -> np.ndarray:
        """Arch -> genomes [P, G] (or [G] for one arch) at the bin centres: decode(encode(a)) == a."""
        sizes = np.asarray(self.gene_sizes, np.float32)
        out = ((self.indices(arch) + 0.5) / sizes).astype(np.float32)
        return out if _is_batched(arch) else out[0]

    def canonical(self, arch: Arch) -> Arch:
        """Zeroes the genes that have no effect (inactive layers, combine and dropout at depth 0,
        the temperature of the losses other than softmax), so that equal models have equal arrays
        (used to cache evaluations)."""
        idx = self.indices(arch)
        L, n = self.max_layers, len(LAYER_GENES)
        depth = idx[:, 0]
        layer = idx[:, 1 : 1 + n * L].reshape(-1, L, n)
        inactive = np.arange(L)[None, :] >= depth[:, None]
        layer = np.where(inactive[..., None], 0, layer)
        # Ops that ignore the transform gene (lightgcn) make it inert.
        uses_w = np.asarray([OPS[o].uses_transform for o in self.ops])
        layer[..., 1] = np.where(uses_w[layer[..., 0]], layer[..., 1], 0)
        rest = idx[:, 1 + n * L :].copy()
        col = {name: i for i, (name, _, _) in enumerate(self._rest())}
        rest[:, col["combine"]] = np.where(depth == 0, 0, rest[:, col["combine"]])
        # Dropout acts on each layer's input only: at depth 0 it has no effect either.
        rest[:, col["dropout"]] = np.where(depth == 0, 0, rest[:, col["dropout"]])
        loss = np.asarray(self._rest()[col["loss"]][1])[rest[:, col["loss"]]]
        rest[:, col["temperature"]] = np.where(loss != SOFTMAX, 0, rest[:, col["temperature"]])
        out = np.concatenate([depth[:, None], layer.reshape(-1, n * L), rest], axis=1)
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

    def param_count(self, arch: Arch, n_node: int, text_dim: int, side_values: int = 0) -> int:
        """Effective parameters of one arch: embeddings at its dimension (id rows, the text
        projection, the side-value table) and the weights its layers use (each op's count comes
        from its `OpSpec`), not the supernet's padding."""
        d = self.to_dict(arch)
        dim, depth = d["dim"], d["depth"]
        use_id, use_text, use_side = _bits(FEATURES.index(d["features"]))
        n = n_node * dim * use_id + text_dim * dim * use_text + side_values * dim * use_side
        for layer in d["layers"]:
            n += OPS[layer["op"]].n_params(dim, layer["transform"] == "linear")
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


def _name(gene: str, value) -> str:
    """A gene value for a message: the name of a categorical choice, else the shortest number."""
    names = {"features": FEATURES, "loss": LOSSES, "sampler": SAMPLERS, "combine": COMBINES}
    if gene in names:
        return repr(names[gene][int(value)])
    return f"{_short(value):g}"


def _sci(x: float) -> str:
    """1e-03 for the grid's values, 1.5e-03 for a value with more digits (never rounded)."""
    return np.format_float_scientific(np.float32(x), exp_digits=2, unique=True, trim="-")


def _short(x) -> float:
    """The shortest decimal that rounds to the same float32 (1e-4, not 9.99999974e-05)."""
    return float(f"{np.float32(x):.7g}")


def wide_space(**overrides) -> Space:
    """Every built-in op (pinned order), 4 layers, d up to 128 and the wide lr / dropout grids: the
    library's `Space()` before the default job's narrower space became the default. The bench's
    mixed population, the cold-start study and tests pin it, so registering an op or changing the
    default job changes none of them. Its objective is the published one (BPR, `BPR_ONLY`).
    `overrides` replace fields (e.g. `max_layers=3`)."""
    fields = dict(
        ops=BUILTIN_OPS,
        max_layers=4,
        dims=(16, 32, 64, 128),
        dropouts=(0.0, 0.1, 0.2, 0.3),
        lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        l2s=(0.0, 1e-5, 1e-4, 1e-3),
        **BPR_ONLY,
    )
    return Space(**{**fields, **overrides})


#: The objective genes of a space that trains every member with the published objective.
BPR_ONLY = dict(
    losses=("bpr",), negatives=(1,), temperatures=(1.0,), samplers=("uniform",), ssl_weights=(0.0,)
)
