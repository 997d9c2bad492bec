"""The supernet: one forward for every architecture of the space, driven by `Arch` arrays.

Scoring is `ŷ_ui = h_u · h_i` on the combined layer outputs (for the concat combination, the
layers side by side, as NGCF scores them). The training objective is `jgnas.objective`.

Three execution modes, one semantics (a static argument):
- "switch": for a lone member (chunk_size = 1). `lax.switch`/`cond` on scalar genes really skip the
  ops that are not chosen and the layers beyond the depth.
- "select": for a vmapped chunk. Under vmap a switch computes every branch anyway, so every op is
  computed once, sharing the sparse aggregations between ops (see `OpContext`), and the chosen
  output is picked with `jnp.select` (never by multiplying: an unchosen inf must not leak).
- "plan": "select" for a chunk compiled for its members' `jgnas.plan.Plan` (a restricted space,
  genes fixed as Python numbers). One difference: a fixed combination other than concat scores
  its d columns only (`Forward.out` [N, d]), not the (L+1)d columns padded with zeros that every
  other path returns (only the loss and the evaluation read a plan's outputs, and zero columns
  change no score).
A Python-int gene (a static arch, used by the straightforward baseline) calls its branch directly;
so does a gene that a `Plan` fixed for its chunk (for a layer gene: one int for every layer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jgnas.graph import Graph
from jgnas.ops import OPS, OpContext, init_layer_params, spmm
from jgnas.space import ACTIVATIONS, COMBINES, Arch, Space, feature_bits

ACTIVATION_FNS: tuple[Callable[[jax.Array], jax.Array], ...] = (
    lambda x: x,
    jax.nn.relu,
    lambda x: jax.nn.leaky_relu(x, 0.2),
    jnp.tanh,
    jax.nn.elu,
    jax.nn.sigmoid,
)
assert len(ACTIVATION_FNS) == len(ACTIVATIONS)


@struct.dataclass
class Inputs:
    """What every candidate shares: the graph, the (frozen) text vectors of the nodes and their
    side features (`jgnas.side`: value ids into the side table and mean-pooling weights)."""

    graph: Graph
    text: jax.Array  # [N, D_text] float32; a zero [N, 1] when there are no text features
    side_ids: jax.Array | None = None  # [N, F] int32 (0 = padding); None without side features
    side_w: jax.Array | None = None  # [N, F] float32 (0 for padding)
    side_values: int = struct.field(pytree_node=False, default=1)  # rows of the side table


@struct.dataclass
class Forward:
    """What `propagate` returns: `out` [N, W] the scored representations (W = (L+1) d for the
    concat combination's width, the first d columns otherwise; W = d for a plan's fixed combination
    other than concat, see the module docstring), `h0` [N, d] the input embeddings,
    and the two views of the contrastive term, `mean` (the mean of the active layers) and `first`
    (the first layer's output, h0 at depth 0) [N, d]."""

    out: jax.Array
    h0: jax.Array
    mean: jax.Array
    first: jax.Array


def choose(mode: str, index, branches: Sequence[Callable], *operands):
    """Runs branch `index`: direct call for a Python int, `lax.switch` or `jnp.select`."""
    if isinstance(index, int):
        return branches[index](*operands)
    if len(branches) == 1:  # a space restricted to one op (`jgnas.plan.Plan`): nothing to choose
        return branches[0](*operands)
    if mode == "switch":
        # Rematerialise each branch: otherwise the forward switch must return the union of every
        # branch's residuals (zero-filled [E, d] buffers of gat and max), which costs far more than
        # recomputing the one branch taken.
        return jax.lax.switch(index, [jax.checkpoint(b) for b in branches], *operands)
    outs = [b(*operands) for b in branches]
    return jax.tree.map(
        lambda *xs: jnp.select([index == k for k in range(len(xs))], list(xs)), *outs
    )


def _static(x):
    """A Python int for a concrete numpy/int gene (static arch), else the array as is."""
    if isinstance(x, jax.Array):  # tracers are jax.Arrays too
        return x
    return int(x)


def _unit(x: jax.Array) -> jax.Array:
    """Each row scaled to unit length (the l2 norm gene)."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), 1e-24))


def _maybe(flag, fn: Callable, x: jax.Array) -> jax.Array:
    """fn(x) where a 0/1 gene is set: a concrete gene decides in Python, a traced one selects."""
    if isinstance(flag, int):
        return fn(x) if flag > 0 else x
    return jnp.where(flag > 0, fn(x), x)


def _is_zero(x) -> bool:
    """Whether a gene is a concrete zero (a static arch's, or one a `Plan` fixed), not a tracer."""
    return not isinstance(x, jax.Array) and float(x) == 0.0


def init_params(
    key: jax.Array, space: Space, n_users: int, n_node: int, text_dim: int, side_values: int = 1
) -> dict:
    """Parameters of one member, fixed shapes for the whole space (d = max(space.dims)).

    emb: ID embeddings [N, d], Xavier-normal per table (users and items each N(0, 2 / (rows + d)),
    as RecBole initialises `nn.Embedding`); text_proj: [D_text, d]; side: the side-value table
    [side_values, d] (row 0, the padding, is never read with a weight); layers: the transform `w`
    and the union of the ops' own weights, stacked over max_layers; alpha: learned layer weights.
    """
    d, L = space.d_max, space.max_layers
    k_user, k_item, k_text, k_side, k_layers = jax.random.split(key, 5)
    glorot = jax.nn.initializers.glorot_uniform()
    n_items = n_node - n_users

    def xavier_normal(k, rows):
        return jnp.sqrt(2.0 / (rows + d)) * jax.random.normal(k, (rows, d), jnp.float32)

    def layer(k):
        k_w, k_ops = jax.random.split(k)
        return {"w": glorot(k_w, (d, d), jnp.float32), **init_layer_params(space.ops, k_ops, d)}

    layers = jax.vmap(layer)(jax.random.split(k_layers, max(L, 1)))
    return {
        "emb": jnp.concatenate([xavier_normal(k_user, n_users), xavier_normal(k_item, n_items)]),
        "text_proj": glorot(k_text, (text_dim, d), jnp.float32),
        "side": xavier_normal(k_side, max(side_values, 1)),
        "layers": layers,
        "alpha": jnp.zeros((L + 1,), jnp.float32),
    }


NOISE_EPS = 0.1  # the SimGCL perturbation radius (Yu et al. 2022), used when arch.ssl > 0


def propagate(
    params: dict,
    arch: Arch,
    inputs: Inputs,
    key: jax.Array | None,
    *,
    space: Space,
    mode: str = "switch",
    spmm_fn: Callable = spmm,
) -> Forward:
    """Runs the architecture on the shared graph.

    (Longer than 80 lines: the layer body, the scanned layers and the combinations are closures
    over one traced member; split apart they would pass a dozen traced arguments around.)

    Args:
      params: one member's parameters (`init_params`).
      arch: one member's Arch (arrays, or Python ints for a static arch).
      inputs: the shared graph, text vectors and side features.
      key: the training forward's key (dropout, and the SimGCL noise when arch.ssl > 0), or None
        for evaluation (neither).
      space: the search space (static), or the restriction of it that a `jgnas.plan.Plan` compiles
        for a chunk: fewer ops (`arch.op` indexes into its `ops`) and fewer layers than `params`
        hold (the first `space.max_layers` are run; the others are inactive in every member).
      mode: "switch", "select" or "plan" (see the module docstring).
      spmm_fn: the sparse product (the fast kernel, or `segment_spmm` for the jraph baseline).

    Returns:
      A `Forward`: the scored representations, the input embeddings and the contrastive views.
    """
    d, L = space.d_max, space.max_layers
    mask = (jnp.arange(d) < arch.dim).astype(jnp.float32)
    h0 = input_embeddings(params, arch, inputs, space)
    op_fns = [OPS[name].fn for name in space.ops]
    keep = 1.0 - arch.dropout
    cheap = "select" if mode == "switch" else mode
    # XSimGCL's perturbation: every layer's output moves by eps in a random direction of its own
    # orthant, in the training forward of a member with a contrastive term only. Drawing it is a
    # quarter of a lone LightGCN step on CPU: a concrete 0 skips it, and so does a lone member's
    # `cond` (adding eps = 0 changes nothing).
    noisy = key is not None and not _is_zero(arch.ssl)
    eps = jnp.where(arch.ssl > 0, NOISE_EPS, 0.0) if noisy else None

    def perturb(l, out):
        noise = _unit(jax.random.uniform(jax.random.fold_in(key, 1000 + l), out.shape) * mask)
        return out + eps * jnp.sign(out) * noise

    def layer(l, h, p, op, transform, act, residual, norm):
        x = h
        if key is not None:

            def drop(h):
                bits = jax.random.bernoulli(jax.random.fold_in(key, l), keep, h.shape)
                return jnp.where(bits, h / keep, 0.0)

            if isinstance(arch.dropout, (float, np.floating)):
                x = drop(h) if arch.dropout > 0 else h
            elif mode == "switch":
                # Drawing the bits is not free on CPU: skip it for the (common) rate 0.
                x = jax.lax.cond(arch.dropout > 0, drop, lambda h: h, h)
            else:
                x = drop(h)
        ctx = OpContext(inputs.graph, p["w"], _static(transform) > 0, mask, spmm_fn)
        branches = [lambda x, p, f=f: f(ctx, x, p) for f in op_fns]
        out = choose(mode, _static(op), branches, x, p)
        out = choose(cheap, _static(act), ACTIVATION_FNS, out) * mask  # the norm sees d dims
        out = _maybe(_static(norm), _unit, out)
        out = _maybe(_static(residual), lambda o: o + h, out)
        out = out * mask
        if not noisy:
            return out
        if mode == "switch" and isinstance(arch.ssl, jax.Array):
            return jax.lax.cond(arch.ssl > 0, lambda o: perturb(l, o), lambda o: o, out)
        return perturb(l, out)

    depth = _static(arch.depth)
    # A layer gene is [L] (one value per layer) or a Python int for every layer (a `Plan`'s).
    genes = (arch.op, arch.transform, arch.act, arch.residual, arch.norm)
    per_layer = [not isinstance(g, (int, np.integer)) for g in genes]
    # A restricted space runs the first L layers of the parameters and genes (the others are
    # inactive in every member it is compiled for).
    layer_params = jax.tree.map(lambda x: x[:L], params["layers"])
    if isinstance(depth, int) or L == 0:  # a static depth: plain Python, the active layers only
        hs = [h0]
        for l in range(L):
            if l < depth:
                p = jax.tree.map(lambda x, l=l: x[l], layer_params)
                g = (g[l] if each else g for g, each in zip(genes, per_layer))
                hs.append(layer(l, hs[-1], p, *g))
            else:
                hs.append(hs[-1])
        stacked = jnp.stack(hs)  # [L+1, N, d]
    else:
        # One compiled layer body, scanned over the layers (compile time does not grow with L).
        def body(h, xs):
            l, p, *traced = xs
            it = iter(traced)
            g = [next(it) if each else g for g, each in zip(genes, per_layer)]
            if mode == "switch":
                new = jax.lax.cond(l < depth, lambda h: layer(l, h, p, *g), lambda h: h, h)
            else:
                new = jnp.where(l < depth, layer(l, h, p, *g), h)
            return new, new

        traced = (jnp.asarray(g)[:L] for g, each in zip(genes, per_layer) if each)
        _, hs = jax.lax.scan(body, h0, (jnp.arange(L), layer_params, *traced))
        stacked = jnp.concatenate([h0[None], hs])  # [L+1, N, d]

    active = jnp.arange(L + 1) <= arch.depth  # layers 0..depth take part
    depth_f = jnp.asarray(arch.depth, jnp.float32)
    n = h0.shape[0]

    combine = _static(arch.combine)
    narrow = mode == "plan" and isinstance(combine, int) and COMBINES[combine] != "concat"

    def weighted(w):
        one = jnp.tensordot(w, stacked, axes=1)
        return jnp.pad(one, ((0, 0), (0, L * d))) if L and not narrow else one

    mean = jnp.tensordot(active / (depth_f + 1.0), stacked, axes=1)
    combos = [
        lambda: weighted(jnp.arange(L + 1) == arch.depth),  # last
        lambda: weighted(active / (depth_f + 1.0)),  # mean
        lambda: weighted(active.astype(jnp.float32)),  # sum
        # concat: the active layers side by side, [h0 | h1 | ... | 0], scored as NGCF scores them
        lambda: (stacked * active[:, None, None]).transpose(1, 0, 2).reshape(n, -1),
        # learned: a softmax over the active layers' weights
        lambda: weighted(jax.nn.softmax(jnp.where(active, params["alpha"][: L + 1], -jnp.inf))),
    ]
    assert len(combos) == len(COMBINES)
    out = choose(mode, combine, combos)
    return Forward(out=out, h0=h0, mean=mean, first=stacked[min(1, L)])


def input_embeddings(params: dict, arch: Arch, inputs: Inputs, space: Space) -> jax.Array:
    """h0 [N, d]: the sum of the arch's inputs (id rows, projected text, pooled side values),
    masked to its dimension. Only the inputs the space has are computed."""
    mask = (jnp.arange(space.d_max) < arch.dim).astype(jnp.float32)
    use_id, use_text, use_side = feature_bits(arch.features)
    h0 = jnp.where(use_id, params["emb"], 0.0)
    if space.text:
        text = inputs.text @ params["text_proj"]
        h0 = h0 + jnp.where(use_text, text, 0.0)
    if space.side:
        side = jnp.einsum("nf,nfd->nd", inputs.side_w, params["side"][inputs.side_ids])
        h0 = h0 + jnp.where(use_side, side, 0.0)
    return h0 * mask


def embeddings(params, arch, inputs, *, space, mode="switch", spmm_fn=spmm):
    """Final (user [U, W], item [I, W]) representations for scoring, without dropout or noise
    (W = (max_layers + 1) d, see `Forward`)."""
    h = propagate(params, arch, inputs, None, space=space, mode=mode, spmm_fn=spmm_fn).out
    n_users = inputs.graph.n_users
    return h[:n_users], h[n_users:]
