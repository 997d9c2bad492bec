"""The supernet: one forward for every architecture of the space, driven by `Arch` arrays.

Scoring is `ŷ_ui = h_u · h_i` on the combined layer outputs; the loss is BPR
(`-log σ(ŷ_ui − ŷ_uj)`) plus LightGCN's L2 term on the batch's input embeddings.

Two execution modes, one semantics (a static argument):
- "switch": for a lone member (chunk_size = 1). `lax.switch`/`cond` on scalar genes really skip the
  ops that are not chosen and the layers beyond the depth.
- "select": for a vmapped chunk. Under vmap a switch computes every branch anyway, so every op is
  computed once, sharing the sparse aggregations between ops (see `OpContext`), and the chosen
  output is picked with `jnp.select` (never by multiplying: an unchosen inf must not leak).
A Python-int gene (a static arch, used by the straightforward baseline) calls its branch directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jgnas.graph import Graph
from jgnas.ops import OPS, OpContext, init_layer_params, spmm
from jgnas.space import ACTIVATIONS, COMBINES, Arch, Space

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
    """What every candidate shares: the graph and the (frozen) text vectors of the nodes."""

    graph: Graph
    text: jax.Array  # [N, D_text] float32; a zero [N, 1] when there are no text features


def choose(mode: str, index, branches: Sequence[Callable], *operands):
    """Runs branch `index`: direct call for a Python int, `lax.switch` or `jnp.select`."""
    if isinstance(index, int):
        return branches[index](*operands)
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
    if isinstance(x, jax.core.Tracer) or isinstance(x, jax.Array):
        return x
    return int(x)


def init_params(key: jax.Array, space: Space, n_node: int, text_dim: int) -> dict:
    """Parameters of one member, fixed shapes for the whole space (d = max(space.dims)).

    emb: ID embeddings N(0, 0.1) [N, d]; text_proj: [D_text, d]; layers: the transform `w` and the
    union of the ops' own weights, stacked over max_layers; alpha: learned layer weights;
    w_cat: the concat combination's projection [(L+1) d, d].
    """
    d, L = space.d_max, space.max_layers
    k_emb, k_text, k_layers, k_cat = jax.random.split(key, 4)
    glorot = jax.nn.initializers.glorot_uniform()

    def layer(k):
        k_w, k_ops = jax.random.split(k)
        return {"w": glorot(k_w, (d, d), jnp.float32), **init_layer_params(space.ops, k_ops, d)}

    layers = jax.vmap(layer)(jax.random.split(k_layers, max(L, 1)))
    return {
        "emb": 0.1 * jax.random.normal(k_emb, (n_node, d), jnp.float32),
        "text_proj": glorot(k_text, (text_dim, d), jnp.float32),
        "layers": layers,
        "alpha": jnp.zeros((L + 1,), jnp.float32),
        "w_cat": glorot(k_cat, ((L + 1) * d, d), jnp.float32),
    }


def propagate(
    params: dict,
    arch: Arch,
    inputs: Inputs,
    key: jax.Array | None,
    *,
    space: Space,
    mode: str = "switch",
    spmm_fn: Callable = spmm,
) -> tuple[jax.Array, jax.Array]:
    """Runs the architecture on the shared graph.

    (Longer than 80 lines: the layer body, the scanned layers and the combinations are closures
    over one traced member; split apart they would pass a dozen traced arguments around.)

    Args:
      params: one member's parameters (`init_params`).
      arch: one member's Arch (arrays, or Python ints for a static arch).
      inputs: the shared graph and text vectors.
      key: dropout key, or None for evaluation (no dropout).
      space: the search space (static).
      mode: "switch" or "select" (see the module docstring).
      spmm_fn: the sparse product (the fast kernel, or `segment_spmm` for the jraph baseline).

    Returns:
      (h, h0): the combined node representations [N, d] and the input embeddings [N, d].
    """
    d, L = space.d_max, space.max_layers
    mask = (jnp.arange(d) < arch.dim).astype(jnp.float32)
    id_in = params["emb"]
    text_in = inputs.text @ params["text_proj"]
    # Cheap choices are selected, not switched: a conditional costs more than a few elementwise ops.
    cheap = "select" if mode == "switch" else mode
    h0 = choose(
        cheap, _static(arch.features), [lambda: id_in, lambda: text_in, lambda: id_in + text_in]
    )
    h0 = h0 * mask
    op_fns = [OPS[name].fn for name in space.ops]
    keep = 1.0 - arch.dropout

    def layer(l, h, p, op, transform, act, residual):
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
        ctx = OpContext(inputs.graph, p["w"], transform > 0, mask, spmm_fn)
        branches = [lambda x, p, f=f: f(ctx, x, p) for f in op_fns]
        out = choose(mode, _static(op), branches, x, p)
        out = choose(cheap, _static(act), ACTIVATION_FNS, out)
        out = jnp.where(residual > 0, out + h, out)
        return out * mask

    depth = _static(arch.depth)
    genes = (arch.op, arch.transform, arch.act, arch.residual)
    if isinstance(depth, int):  # a static arch: plain Python, only the active layers exist
        hs = [h0]
        for l in range(L):
            if l < depth:
                p = jax.tree.map(lambda x, l=l: x[l], params["layers"])
                hs.append(layer(l, hs[-1], p, *(g[l] for g in genes)))
            else:
                hs.append(hs[-1])
        stacked = jnp.stack(hs)  # [L+1, N, d]
    else:
        # One compiled layer body, scanned over the layers (compile time does not grow with L).
        def body(h, xs):
            l, p, *g = xs
            if mode == "switch":
                new = jax.lax.cond(l < depth, lambda h: layer(l, h, p, *g), lambda h: h, h)
            else:
                new = jnp.where(l < depth, layer(l, h, p, *g), h)
            return new, new

        xs = (jnp.arange(L), params["layers"], *(jnp.asarray(g) for g in genes))
        _, hs = jax.lax.scan(body, h0, xs)
        stacked = jnp.concatenate([h0[None], hs])  # [L+1, N, d]

    active = jnp.arange(L + 1) <= arch.depth  # layers 0..depth take part
    depth_f = jnp.asarray(arch.depth, jnp.float32)

    def weighted(w):
        return jnp.tensordot(w, stacked, axes=1)

    combos = [
        lambda: weighted(jnp.arange(L + 1) == arch.depth),  # last
        lambda: weighted(active / (depth_f + 1.0)),  # mean
        lambda: weighted(active.astype(jnp.float32)),  # sum
        lambda: (  # concat, projected back to d
            (stacked * active[:, None, None]).transpose(1, 0, 2).reshape(h0.shape[0], -1)
            @ params["w_cat"]
        ),
        lambda: weighted(jax.nn.softmax(jnp.where(active, params["alpha"], -jnp.inf))),  # learned
    ]
    assert len(combos) == len(COMBINES)
    out = choose(mode, _static(arch.combine), combos)
    return out * mask, h0


LOSSES = ("bpr", "softmax")


def bpr_loss(
    params: dict,
    arch: Arch,
    inputs: Inputs,
    batch: tuple[jax.Array, jax.Array, jax.Array],
    key: jax.Array | None,
    *,
    space: Space,
    mode: str = "switch",
    spmm_fn: Callable = spmm,
    loss: str = "bpr",
    temperature: float = 1.0,
) -> jax.Array:
    """The training loss of a batch (users, positive items, negative items; item ids from 0).

    One negative per positive (neg [B]), BPR: mean(-log σ(ŷ_ui − ŷ_uj)). K negatives (neg [B, K]):
    "bpr" averages that over the K pairs; "softmax" is the sampled softmax (InfoNCE) over the
    positive and its K negatives at `temperature` τ: mean(-log softmax([ŷ_ui, ŷ_uj...] / τ)[0]).
    Plus `arch.l2 · ½ (‖e_u‖² + ‖e_i‖² + ‖e_j‖²) / B` on the input embeddings of the user, the
    positive and the first negative, as in LightGCN.
    """
    h, h0 = propagate(params, arch, inputs, key, space=space, mode=mode, spmm_fn=spmm_fn)
    n_users = inputs.graph.n_users
    u, i, j = batch
    j0 = j if j.ndim == 1 else j[:, 0]
    hu, hi = h[u], h[i + n_users]
    if j.ndim == 1 and loss == "bpr":  # the classic triple, kept verbatim
        main = -jnp.mean(jax.nn.log_sigmoid(jnp.sum(hu * (hi - h[j + n_users]), axis=-1)))
    else:
        neg = j[:, None] if j.ndim == 1 else j
        s_pos = jnp.sum(hu * hi, axis=-1)  # [B]
        s_neg = jnp.einsum("bd,bkd->bk", hu, h[neg + n_users])  # [B, K]
        if loss == "bpr":
            main = -jnp.mean(jax.nn.log_sigmoid(s_pos[:, None] - s_neg))
        else:
            logits = jnp.concatenate([s_pos[:, None], s_neg], axis=1) / temperature
            main = -jnp.mean(jax.nn.log_softmax(logits, axis=1)[:, 0])
    reg = (
        0.5
        * (jnp.sum(h0[u] ** 2) + jnp.sum(h0[i + n_users] ** 2) + jnp.sum(h0[j0 + n_users] ** 2))
        / u.shape[0]
    )
    return main + arch.l2 * reg


def embeddings(params, arch, inputs, *, space, mode="switch", spmm_fn=spmm):
    """Final (user [U, d], item [I, d]) representations for scoring, without dropout."""
    h, _ = propagate(params, arch, inputs, None, space=space, mode=mode, spmm_fn=spmm_fn)
    n_users = inputs.graph.n_users
    return h[:n_users], h[n_users:]
