"""The op registry: one function plus one decorator line makes a message-passing op searchable."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jgnas.graph import CSR, Graph
from jgnas.ops import kernel

Params = dict[str, jax.Array]


class OpContext:
    """What an op sees of one layer: the shared graph, memoised aggregations and the transform.

    The aggregations `sym`, `mean` and `adj` are memoised on the identity of their input, so ops
    that need the same `Â·h` in one layer (gcn, lightgcn and ngcf; mean and sage) share one sparse
    product. In a vmapped chunk every op of a layer is computed, so this sharing is real work saved.
    """

    def __init__(
        self,
        graph: Graph,
        w: jax.Array,
        use_w: jax.Array,
        mask: jax.Array,
        spmm: Callable = kernel.spmm,
    ):
        self.graph = graph
        self._w = w
        self._use_w = use_w
        self._mask = mask
        self._spmm = spmm
        self._memo: dict[tuple[str, int], tuple[jax.Array, jax.Array]] = {}

    def _cached(self, name: str, x: jax.Array, fn: Callable[[jax.Array], jax.Array]) -> jax.Array:
        # The memo holds a reference to x, so its id cannot be reused while the entry lives.
        hit = self._memo.get((name, id(x)))
        if hit is not None and hit[0] is x:
            return hit[1]
        out = fn(x)
        self._memo[(name, id(x))] = (x, out)
        return out

    def _agg(self, name: str, m: CSR, h: jax.Array) -> jax.Array:
        return self._cached(name, h, lambda x: self._spmm(m, x))

    def sym(self, h: jax.Array) -> jax.Array:
        """Σ_j e_ij / sqrt(d_i d_j) h_j   [N, d] -> [N, d]."""
        return self._agg("sym", self.graph.sym, h)

    def mean(self, h: jax.Array) -> jax.Array:
        """Σ_j e_ij / d_i h_j (weighted neighbour mean)."""
        return self._agg("mean", self.graph.mean, h)

    def adj(self, h: jax.Array) -> jax.Array:
        """Σ_j e_ij h_j (neighbour sum)."""
        return self._agg("adj", self.graph.adj, h)

    def transform(self, h: jax.Array) -> jax.Array:
        """The layer's transform gene: `h @ W` when linear, `h` when identity.

        The output is masked to the member's embedding dimension, so a member of dimension 32 inside
        a maximum of 64 behaves as a 32-dimensional model (attention logits included).
        """
        if isinstance(self._use_w, (bool, np.bool_)):  # a concrete gene: no product when identity
            if not self._use_w:
                return h
            return self._cached("transform", h, lambda x: (x @ self._w) * self._mask)
        return self._cached(
            "transform", h, lambda x: jnp.where(self._use_w, (x @ self._w) * self._mask, x)
        )


class OpFn(Protocol):
    def __call__(self, ctx: OpContext, h: jax.Array, p: Params) -> jax.Array: ...


InitFn = Callable[[jax.Array, int], Params]
# reference(mats, h, p, t) -> [N, d] in float64: `mats` holds the dense float64 matrices "adj"
# (Σ_j e_ij), "sym" (e_ij / sqrt(d_i d_j)) and "mean" (e_ij / d_i); `h` [N, d] and the op's own
# weights `p` are float64; `t(x)` is the layer's transform (x W, masked, or x).
ReferenceFn = Callable[[dict, np.ndarray, dict, Callable[[np.ndarray], np.ndarray]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """Everything the project knows about one op; `describe`, `Space`, the parameter counts, the
    README's op table (`jgnas list ops`) and the registry-driven tests all read it from here.

    Attributes:
      name: the op's name in configs, decoded genomes and `describe`.
      fn: `fn(ctx, h, p) -> [N, d]`, the pre-activation output (the layer applies σ, the residual
        and dropout).
      formula: one line for people, e.g. `Σ_j c_ij · W h_j`.
      reference: a dense NumPy formula of `fn` (see `ReferenceFn`), which the tests compare against
        on every graph case. Required by the tests: an op without one fails them.
      init: `init(key, d) -> {name: array}`, the op's own weights beyond the shared transform.
      uses_transform: whether `fn` applies the layer's transform gene (`ctx.transform`). When it
        does not, the gene is inert: `Space.canonical` zeroes it and `describe` hides it.
    """

    name: str
    fn: OpFn
    formula: str = ""
    reference: ReferenceFn | None = None
    init: InitFn | None = None
    uses_transform: bool = True

    def own_params(self, d: int) -> int:
        """Number of the op's own weights at embedding dimension d (from `init`'s shapes)."""
        if self.init is None:
            return 0
        shapes = jax.eval_shape(lambda k: self.init(k, d), jax.random.key(0))
        return int(sum(math.prod(x.shape) for x in jax.tree.leaves(shapes)))

    def n_params(self, d: int, linear: bool) -> int:
        """Weights a layer with this op uses: the transform `W` [d, d] when the transform gene is
        linear and the op uses it, plus the op's own weights."""
        return (d * d if linear and self.uses_transform else 0) + self.own_params(d)


OPS: dict[str, OpSpec] = {}


def register(
    name: str,
    *,
    formula: str = "",
    reference: ReferenceFn | None = None,
    init: InitFn | None = None,
    uses_transform: bool = True,
) -> Callable[[OpFn], OpFn]:
    """Registers `fn(ctx, h, p) -> [N, d]` (pre-activation) under `name`. Duplicates are refused.

    Args:
      name: the op's name in configs, genomes' decoding and `describe`.
      formula: a one-line formula for `describe` listings and the README (default: the first line
        of the function's docstring).
      reference: the dense NumPy formula the tests check the op against (see `ReferenceFn`).
      init: optional `init(key, d) -> {param_name: array}` for the op's own weights. Ops may share
        a weight name (for example `w2`) when the shapes agree; a layer holds the union.
      uses_transform: False when the op ignores the layer's transform gene.
    """

    def deco(fn: OpFn) -> OpFn:
        if name in OPS:
            raise ValueError(f"op {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        OPS[name] = OpSpec(
            name, fn, formula or (doc[0] if doc else ""), reference, init, uses_transform
        )
        return fn

    return deco


def init_layer_params(op_names: tuple[str, ...], key: jax.Array, d: int) -> Params:
    """The union of the own weights of `op_names` for one layer (shared names must agree in shape)."""
    params: Params = {}
    keys = jax.random.split(key, max(len(op_names), 1))
    for name, k in zip(op_names, keys):
        spec = OPS[name]
        if spec.init is None:
            continue
        for pname, value in spec.init(k, d).items():
            if pname in params and params[pname].shape != value.shape:
                raise ValueError(
                    f"op {name!r}: weight {pname!r} has shape {value.shape}, "
                    f"but another op declares {params[pname].shape}"
                )
            params.setdefault(pname, value)
    return params
