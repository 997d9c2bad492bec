"""The built-in ops. Each returns the pre-activation output; the layer applies σ and the residual.

Linear ops aggregate first and transform second (`W (Â h)`, equal to `Â (W h)`), so that gcn,
lightgcn and ngcf share one `Â_sym h` and mean and sage share one `Â_mean h` in a layer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph

from jgnas.ops.registry import OpContext, Params, register

GAT_HEADS = 2


def glorot(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.nn.initializers.glorot_uniform()(key, shape, jnp.float32)


@register("gcn")
def gcn(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """The seed op: Σ_{j∈N(i)} e_ij / sqrt(d_i d_j) · W h_j (Kipf & Welling 2017)."""
    return ctx.transform(ctx.sym(h))


@register("lightgcn")
def lightgcn(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """LightGCN (He et al. 2020): the symmetric aggregation with no W (the transform is ignored)."""
    return ctx.sym(h)


@register("ngcf", init=lambda key, d: {"w2": glorot(key, (d, d))})
def ngcf(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """NGCF (Wang et al. 2019): Σ_j c_ij (W1 h_j + W2 (h_j ⊙ h_i)), W1 = the layer's transform.

    Σ_j c_ij W2 (h_j ⊙ h_i) = W2 (h_i ⊙ Σ_j c_ij h_j), so one sparse product serves both terms.
    """
    s = ctx.sym(h)
    return ctx.transform(s) + (h * s) @ p["w2"]


@register("mean")
def mean(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """Weighted mean of the neighbours, then the transform."""
    return ctx.transform(ctx.mean(h))


@register("sum", init=lambda key, d: {"eps": jnp.zeros((), jnp.float32)})
def gin_sum(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """GIN-style (Xu et al. 2019): (1 + ε) h_i + Σ_j e_ij h_j, then the transform; ε is learnt."""
    return ctx.transform((1.0 + p["eps"]) * h + ctx.adj(h))


@register("max")
def gmax(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """Element-wise max over the transformed neighbours (0 for isolated nodes). jraph path."""
    g = ctx.graph
    x = ctx.transform(h)
    return jraph.segment_max_or_constant(x[g.senders], g.receivers, h.shape[0], constant=0.0)


@register("gat", init=lambda key, d: {"att": 0.1 * jax.random.normal(key, (2, d), jnp.float32)})
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


@register("sage", init=lambda key, d: {"w2": glorot(key, (d, d))})
def sage(ctx: OpContext, h: jax.Array, p: Params) -> jax.Array:
    """GraphSAGE-mean (Hamilton et al. 2017): [h_i ‖ mean_j h_j] W = W_self h_i + W_neigh mean_j h_j.

    W_self is the layer's transform, W_neigh is `w2`.
    """
    return ctx.transform(h) + ctx.mean(h) @ p["w2"]
