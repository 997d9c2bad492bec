"""Scratch variants of jgnas's model for the RecBole parity ablations (scripts/recbole_parity.py).

`Variant` names one setting of each factor that differs between jgnas and RecBole (embedding
init, L2 form, NGCF's self-connection, layer normalisation, dropout place, layer combination);
`patched(variant, ...)` swaps scratch copies of `jgnas.model`'s init_params, propagate and bpr_loss
in for the duration of one run, and `check_scratch` proves the default Variant equals jgnas.
Nothing here is imported by jgnas.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jgnas import experiment
from jgnas import model as model_lib


@dataclasses.dataclass(frozen=True)
class Variant:
    """What a row changes in `jgnas.model` (defaults: jgnas as it is).

    init: "jgnas" N(0, 0.1) | "xavier_normal" | "xavier_uniform" (RecBole: per table, var 2/(n+d)).
    reg: "jgnas" l2·½Σ‖e0‖²/B | "emb_input" l2·Σ‖E0‖_F/B (RecBole's EmbLoss, require_pow False, on
      the batch's input embeddings: LightGCN) | "emb_final" the same on the scoring vectors (NGCF).
    NGCF only (all False/"jgnas" = jgnas's ngcf op and layer):
      self_term: W1 (h + Âh) instead of W1 Âh (RecBole's BiGNNLayer, (L + I) E W1).
      bias: RecBole's two nn.Linear biases per layer.
      dropout: "input" (jgnas: each layer's input) | "output" (RecBole: message dropout after the
        activation, on what is propagated and concatenated; the ego embeddings never dropped).
      normalize: L2-normalise each layer's output (RecBole's F.normalize).
      combine: "project" (jgnas's concat @ w_cat back to d) | "concat" (RecBole: score with all
        (L+1)·d dimensions).
    """

    init: str = "jgnas"
    reg: str = "jgnas"
    self_term: bool = False
    bias: bool = False
    dropout: str = "input"
    normalize: bool = False
    combine: str = "project"


RECBOLE_NGCF = Variant("xavier_normal", "emb_final", True, True, "output", True, "concat")
ORIG = {n: getattr(model_lib, n) for n in ("init_params", "propagate", "bpr_loss")}


def make_scratch(v: Variant, n_users: int, is_ngcf: bool):
    """Scratch copies of jgnas.model's init_params, propagate and bpr_loss for variant v."""

    def init_params(key, space, n_node, text_dim):
        p = ORIG["init_params"](key, space, n_node, text_dim)
        d, L = space.d_max, max(space.max_layers, 1)
        if v.init != "jgnas":
            k_u, k_i = jax.random.split(jax.random.fold_in(key, 12345))
            tables = []
            for k, n in ((k_u, n_users), (k_i, n_node - n_users)):
                if v.init == "xavier_normal":
                    tables.append(jnp.sqrt(2.0 / (n + d)) * jax.random.normal(k, (n, d)))
                else:
                    b = jnp.sqrt(6.0 / (n + d))
                    tables.append(jax.random.uniform(k, (n, d), minval=-b, maxval=b))
            p["emb"] = jnp.concatenate(tables).astype(jnp.float32)
        if v.bias:
            p["b1"] = jnp.zeros((L, d), jnp.float32)
            p["b2"] = jnp.zeros((L, d), jnp.float32)
        return p

    def ngcf_propagate(params, arch, inputs, key, *, space, mode="switch", spmm_fn=None):
        spmm_fn = spmm_fn or model_lib.spmm
        keep = 1.0 - arch.dropout

        def drop(h, l):
            bits = jax.random.bernoulli(jax.random.fold_in(key, l), keep, h.shape)
            return jnp.where(bits, h / keep, 0.0)

        h0 = params["emb"]
        hs, h = [h0], h0
        concrete = isinstance(arch.depth, (int, np.integer))
        for l in range(int(arch.depth) if concrete else space.max_layers):
            w1, w2 = params["layers"]["w"][l], params["layers"]["w2"][l]
            x = drop(h, l) if (key is not None and v.dropout == "input") else h
            s = spmm_fn(inputs.graph.sym, x)
            out = ((x + s) if v.self_term else s) @ w1 + (x * s) @ w2
            if v.bias:
                out = out + params["b1"][l] + params["b2"][l]
            out = jax.nn.leaky_relu(out, 0.2)
            if key is not None and v.dropout == "output":
                out = drop(out, l)
            if v.normalize:
                # F.normalize: x / max(‖x‖, 1e-12), with a zero gradient for a zero row (a node
                # without edges and without the self term), as torch's, not NaN.
                sq = jnp.maximum(jnp.sum(out**2, axis=1, keepdims=True), 1e-24)
                out = out / jnp.sqrt(sq)
            hs.append(out)
            h = out
        cat = jnp.concatenate(hs, axis=1)  # [N, (L+1) d]
        return (cat if v.combine == "concat" else cat @ params["w_cat"]), h0

    propagate = ngcf_propagate if is_ngcf else ORIG["propagate"]

    def bpr_loss(
        params,
        arch,
        inputs,
        batch,
        key,
        *,
        space,
        mode="switch",
        spmm_fn=None,
        loss="bpr",
        temperature=1.0,
    ):
        assert loss == "bpr", "the parity rows train with BPR"
        kw = {"space": space, "mode": mode}
        if spmm_fn is not None:
            kw["spmm_fn"] = spmm_fn
        h, h0 = propagate(params, arch, inputs, key, **kw)
        n = inputs.graph.n_users
        u, i, j = batch
        hu, hi, hj = h[u], h[i + n], h[j + n]
        bpr = -jnp.mean(jax.nn.log_sigmoid(jnp.sum(hu * (hi - hj), axis=-1)))
        e = (h0[u], h0[i + n], h0[j + n])
        if v.reg == "jgnas":
            reg = 0.5 * sum(jnp.sum(x**2) for x in e) / u.shape[0]
        else:
            e = e if v.reg == "emb_input" else (hu, hi, hj)
            reg = sum(jnp.sqrt(jnp.sum(x**2)) for x in e) / u.shape[0]
        return bpr + arch.l2 * reg

    return init_params, propagate, bpr_loss


@contextlib.contextmanager
def patched(v: Variant, n_users: int, is_ngcf: bool):
    """jgnas.model with the scratch functions of variant v, for one `retrain_and_test` call."""
    init_params, propagate, bpr_loss = make_scratch(v, n_users, is_ngcf)
    model_lib.init_params, model_lib.propagate, model_lib.bpr_loss = (
        init_params,
        propagate,
        bpr_loss,
    )
    try:
        yield
    finally:
        for name, fn in ORIG.items():
            setattr(model_lib, name, fn)


def check_scratch(ctx: experiment.Context) -> float:
    """max |scratch - jgnas| of the ngcf preset's scores and loss with Variant() (no dropout)."""
    space = ctx.space
    arch = space.preset("ngcf")
    params = ORIG["init_params"](jax.random.key(0), space, ctx.n_node, 1)
    init_s, prop_s, loss_s = make_scratch(Variant(), ctx.dataset.n_users, True)
    a, _ = ORIG["propagate"](params, arch, ctx.data.inputs, None, space=space)
    b, _ = prop_s(params, arch, ctx.data.inputs, None, space=space)
    batch = tuple(jnp.arange(64, dtype=jnp.int32) % n for n in (900, 1600, 1500))
    la = ORIG["bpr_loss"](params, arch, ctx.data.inputs, batch, None, space=space)
    lb = loss_s(params, arch, ctx.data.inputs, batch, None, space=space)
    return float(max(jnp.max(jnp.abs(a - b)), jnp.abs(la - lb)))
