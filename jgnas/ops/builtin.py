"""The built-in ops. Each returns the pre-activation output; the layer applies σ and the residual.

Linear ops aggregate first and transform second (`W (Â h)`, equal to `Â (W h)`), so that gcn,
lightgcn and ngcf share one `Â_sym h` and mean and sage share one `Â_mean h` in a layer.

Every op registers its dense NumPy reference beside it (float64, written from the papers'
formulas, not from the JAX code): `tests/test_ops.py` checks each registered op against its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jgnas.ops.registry import OpContext, Params, register

GAT_HEADS = 2


def glorot(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.nn.initializers.glorot_uniform()(key, shape, jnp.float32)


# ---- references (dense float64 NumPy) --------------------------------------------------------


def _neighbour_max_ref(m, h, p, t):
    a, x = m["adj"], t(h)
    out = np.zeros_like(x)
    for i in range(len(x)):
        nbrs = np.nonzero(a[i])[0]
        if len(nbrs):
            out[i] = x[nbrs].max(axis=0)
    return out


def _gat_ref(m, h, p, t):
    a, x = m["adj"], t(h)
    n, d = x.shape
    heads = GAT_HEADS if d % GAT_HEADS == 0 else 1
    xh = x.reshape(n, heads, d // heads)
    att = p["att"].reshape(2, heads, d // heads)
    a_src, a_dst = (xh * att[0]).sum(-1), (xh * att[1]).sum(-1)  # [N, H]
    out = np.zeros_like(xh)
    for i in range(n):
        nbrs = np.nonzero(a[i])[0]
        if not len(nbrs):
            continue
        logits = a_src[nbrs] + a_dst[i]
        logits = np.where(logits > 0, logits, 0.2 * logits)  # LeakyReLU(0.2), [k, H]
        alpha = np.exp(logits - logits.max(0))
        alpha /= alpha.sum(0)
        out[i] = (alpha[..., None] * xh[nbrs]).sum(0)
    return out.reshape(n, d)


# ---- ops --------------------------------------------------------------------------------------


@register(
    "gcn",
    formula="the seed op: h_i' = σ(Σ_{j∈N(i)} c_ij · W h_j)",
    reference=lambda m, h, p, t: m["sym"] @ t(h),
)
def gcn(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """The seed op: Σ_{j∈N(i)} e_ij / sqrt(d_i d_j) · W h_j (Kipf & Welling 2017)."""
    return ctx.transform(ctx.sym(h))


@register(
    "lightgcn",
    formula="Σ_j c_ij h_j (no W: the transform gene is inert)",
    reference=lambda m, h, p, t: m["sym"] @ h,
    uses_transform=False,
)
def lightgcn(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """LightGCN (He et al. 2020): the symmetric aggregation with no W (the transform is ignored)."""
    return ctx.sym(h)


@register(
    "ngcf",
    formula="W1 (h_i + Σ_j c_ij h_j) + W2 (h_i ⊙ Σ_j c_ij h_j), W1 = the transform",
    reference=lambda m, h, p, t: t(h + m["sym"] @ h) + (h * (m["sym"] @ h)) @ p["w2"],
    init=lambda key, d: {"w2": glorot(key, (d, d))},
)
def ngcf(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """NGCF (Wang et al. 2019, eq. 7 with its self-connection, as RecBole's `BiGNNLayer`):
    W1 (h_i + Σ_j c_ij h_j) + W2 (h_i ⊙ Σ_j c_ij h_j), W1 = the layer's transform.

    Σ_j c_ij W2 (h_j ⊙ h_i) = W2 (h_i ⊙ Σ_j c_ij h_j), so one sparse product serves both terms.
    """
    s = ctx.sym(h)
    return ctx.transform(h + s) + (h * s) @ p["w2"]


@register(
    "mean",
    formula="W Σ_j (e_ij / d_i) h_j (weighted neighbour mean)",
    reference=lambda m, h, p, t: t(m["mean"] @ h),
)
def mean(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """Weighted mean of the neighbours, then the transform."""
    return ctx.transform(ctx.mean(h))


@register(
    "sum",
    formula="GIN-style W((1 + ε) h_i + Σ_j e_ij h_j), ε learnt",
    reference=lambda m, h, p, t: t((1.0 + p["eps"]) * h + m["adj"] @ h),
    init=lambda key, d: {"eps": jnp.zeros((), jnp.float32)},
)
def gin_sum(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """GIN-style (Xu et al. 2019): (1 + ε) h_i + Σ_j e_ij h_j, then the transform; ε is learnt."""
    return ctx.transform((1.0 + p["eps"]) * h + ctx.adj(h))


@register(
    "max",
    formula="max_{j∈N(i)} W h_j element-wise (0 for isolated nodes; jraph segment max)",
    reference=_neighbour_max_ref,
)
def gmax(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """Element-wise max over the transformed neighbours (0 for isolated nodes). jraph path."""
    g = ctx.graph
    x = ctx.transform(h)
    return jraph.segment_max_or_constant(x[g.senders], g.receivers, h.shape[0], constant=0.0)


@register(
    "gat",
    formula=f"{GAT_HEADS}-head attention softmax_j LeakyReLU(a·[W h_j, W h_i]) · W h_j",
    reference=_gat_ref,
    init=lambda key, d: {"att": 0.1 * jax.random.normal(key, (2, d), jnp.float32)},
)
def gat(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """GAT (Veličković et al. 2018), GAT_HEADS heads splitting d, segment softmax over neighbours.

    α_ij = softmax_j LeakyReLU(a_src·Wh_j + a_dst·Wh_i) per head; out_i = ‖_heads Σ_j α_ij Wh_j.
    """
    g = ctx.graph
    n, d = h.shape
    heads = GAT_HEADS if d % GAT_HEADS == 0 else 1
    x = ctx.transform(h)
    xh = x.reshape(n, heads, d // heads)
    a_src = (xh * p["att"][0].reshape(heads, -1)).sum(-1)  # [N, H]
    a_dst = (xh * p["att"][1].reshape(heads, -1)).sum(-1)
    logits = jax.nn.leaky_relu(a_src[g.senders] + a_dst[g.receivers], 0.2)  # [E, H]
    alpha = jraph.segment_softmax(logits, g.receivers, n)
    msg = xh[g.senders] * alpha[..., None]  # [E, H, d/H]
    return jax.ops.segment_sum(msg, g.receivers, n).reshape(n, d)


@register(
    "sage",
    formula="GraphSAGE-mean: W h_i + W2 Σ_j (e_ij / d_i) h_j (W = the transform: h_i itself when identity)",
    reference=lambda m, h, p, t: t(h) + (m["mean"] @ h) @ p["w2"],
    init=lambda key, d: {"w2": glorot(key, (d, d))},
)
def sage(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """GraphSAGE-mean (Hamilton et al. 2017): [h_i ‖ mean_j h_j] W = W_self h_i + W_neigh mean_j h_j.

    W_self is the layer's transform (the identity when the gene is), W_neigh is `w2`.
    """
    return ctx.transform(h) + ctx.mean(h) @ p["w2"]


#: The built-in ops in their pinned order. `Space`'s default op list and every genome layout built
#: from it refer to ops by position, so this order never follows the registry: registering a new op
#: (a plugin) changes no default space, genome or benchmark population.
BUILTIN_OPS: tuple[str, ...] = ("gcn", "lightgcn", "ngcf", "mean", "sum", "max", "gat", "sage")
#: The built-in ops on the fast sparse kernel (gat and max use the jraph gather path, 3-7x slower
#: per epoch on CPU): the default search space.
FAST_OPS: tuple[str, ...] = ("gcn", "lightgcn", "ngcf", "mean", "sum", "sage")
