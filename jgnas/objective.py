"""The training objective of one member, driven by its objective genes (`jgnas.space`).

For a batch of users u, positives i and K = `space.max_negatives` negatives per positive (a
member uses its first `arch.negatives` of them; the first is the positive's own, the others are
shared by the batch, `jgnas.sampler.sample_member_batch`, minus the pairs where a shared item is a
positive of the user):

- `bpr`: mean over the used negatives of `-log σ(ŷ_ui − ŷ_uj)` (Rendle et al. 2009; with one
  negative, exactly the classic BPR loss);
- `softmax`: the sampled softmax (InfoNCE) over the positive and the used negatives at temperature
  τ: `-log softmax([ŷ_ui, ŷ_uj...] / τ)[0]`;
- `dns`: BPR against the hardest of the used negatives, `-log σ(ŷ_ui − max_j ŷ_uj)` (dynamic
  negative sampling, Zhang et al. 2013: the used negatives are the candidates, the one the current
  model scores highest is the negative; with one negative, exactly BPR);
- plus `arch.ssl` times the SimGCL-style contrastive term (XSimGCL, Yu et al. 2023): the training
  forward perturbs every layer's output with noise of radius 0.1 (`jgnas.model.NOISE_EPS`), and the
  InfoNCE at τ = 0.2 pulls each node's mean-of-layers view towards its own first-layer view and
  away from the other nodes' of the batch, for the batch's distinct users and for its distinct
  positive items (`info_nce`'s ids);
- plus `arch.l2 · ½ (‖e_u‖² + ‖e_i‖² + ‖e_j‖²) / B` on the input embeddings of the user, the
  positive and the first negative, as in LightGCN.

Negatives come from the member's sampler gene (`jgnas.sampler.sample_batch`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgnas import model as model_lib
from jgnas.arch import DNS, SOFTMAX
from jgnas.ops import spmm
from jgnas.space import Arch, Space

SSL_TEMPERATURE = 0.2  # SimGCL's / XSimGCL's τ for the contrastive term
SSL_BATCH = 1024  # rows of the batch that enter the contrastive term (its cost is quadratic)


def info_nce(
    a: jax.Array, b: jax.Array, temperature: float = SSL_TEMPERATURE, ids: jax.Array | None = None
) -> jax.Array:
    """mean_n -log softmax_m(cos(a_n, b_m) / τ)[n]: row n of `a` is pulled to row n of `b` and
    pushed from the other rows of `b`.

    ids [n] (optional): the node of each row. The term is then over the distinct nodes, as SimGCL
    takes the unique users and items of a batch: only each node's first row is an anchor and a
    negative. (A batch repeats users: without this, a user's copies would be pushed away from
    itself, more so the denser the data.)"""
    a = a * jax.lax.rsqrt(jnp.maximum(jnp.sum(a * a, -1, keepdims=True), 1e-24))
    b = b * jax.lax.rsqrt(jnp.maximum(jnp.sum(b * b, -1, keepdims=True), 1e-24))
    logits = a @ b.T / temperature
    if ids is None:
        return -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=1)))
    n = ids.shape[0]
    rows = jnp.arange(n)
    same = ids[:, None] == ids[None, :]
    first = ~jnp.any(same & (rows[None, :] < rows[:, None]), axis=1)  # [n] no earlier equal row
    keep = first[None, :] | (rows[:, None] == rows[None, :])  # other nodes' first rows, and itself
    per = -jnp.diagonal(jax.nn.log_softmax(jnp.where(keep, logits, -jnp.inf), axis=1))
    return jnp.sum(jnp.where(first, per, 0.0)) / jnp.sum(first)


def ranking_loss(
    arch: Arch, s_pos: jax.Array, s_neg: jax.Array, ok: jax.Array | None = None
) -> jax.Array:
    """The main loss from the scores of the positives [B] and of the negatives [B, K]; `ok`
    [B, K] leaves pairs out (a shared negative that is a positive of the row's user)."""
    K = s_neg.shape[1]
    used = jnp.arange(K) < arch.negatives  # [K]
    if ok is not None:
        used = used & ok
    n_used = jnp.maximum(jnp.sum(jnp.broadcast_to(used, s_neg.shape), 1), 1).astype(jnp.float32)
    bpr = -jnp.sum(jnp.where(used, jax.nn.log_sigmoid(s_pos[:, None] - s_neg), 0.0), 1) / n_used
    masked = jnp.where(used, s_neg, -jnp.inf)
    logits = jnp.concatenate([s_pos[:, None], masked], axis=1)
    softmax = -jax.nn.log_softmax(logits / arch.temperature, axis=1)[:, 0]
    # a row with no usable negative (all shared ones are its positives) contributes 0, as in BPR
    hardest = jnp.max(masked, axis=1)
    dns = jnp.where(jnp.isfinite(hardest), -jax.nn.log_sigmoid(s_pos - hardest), 0.0)
    return jnp.mean(jnp.select([arch.loss == SOFTMAX, arch.loss == DNS], [softmax, dns], bpr))


def contrastive_nodes(batch: tuple, n_users: int) -> tuple[jax.Array, jax.Array]:
    """The nodes of a batch's contrastive term: the users and the positive items (node ids) of its
    first `SSL_BATCH` rows."""
    m = min(SSL_BATCH, batch[0].shape[0])
    return batch[0][:m], batch[1][:m] + n_users


def loss_terms(
    params: dict,
    arch: Arch,
    inputs: model_lib.Inputs,
    batch: tuple,
    key: jax.Array | None,
    *,
    space: Space,
    mode: str = "switch",
    spmm_fn: Callable = spmm,
    nodes: tuple | None = None,
) -> tuple[jax.Array, jax.Array | float, model_lib.Forward]:
    """(ranking loss + L2, the unweighted contrastive term, the forward) of a batch: `loss` is
    the first plus `arch.ssl` times the second. The term is 0 without a key, and for a member
    whose weight is a concrete 0 (or 0 in a lone member's `cond`). nodes: the term's node sets
    (default `contrastive_nodes`)."""
    fwd = model_lib.propagate(params, arch, inputs, key, space=space, mode=mode, spmm_fn=spmm_fn)
    h, h0 = fwd.out, fwd.h0
    n_users = inputs.graph.n_users
    u, i = batch[0], batch[1]
    hu, hi = h[u], h[i + n_users]
    s_pos = jnp.sum(hu * hi, axis=-1)  # [B]
    if len(batch) == 3:  # negatives per positive
        neg = batch[2]
        s_neg = jnp.einsum("bd,bkd->bk", hu, h[neg + n_users])  # [B, K]
        ok, j0 = None, neg[:, 0]
    else:  # one negative per positive, the rest shared by the batch
        j0, shared, ok_shared = batch[2:]
        s0 = jnp.sum(hu * h[j0 + n_users], axis=-1)
        s_neg = jnp.concatenate([s0[:, None], hu @ h[shared + n_users].T], axis=1)
        ok = jnp.concatenate([jnp.ones_like(ok_shared[:, :1]), ok_shared], axis=1)
    main = ranking_loss(arch, s_pos, s_neg, ok)
    reg = (
        0.5
        * (jnp.sum(h0[u] ** 2) + jnp.sum(h0[i + n_users] ** 2) + jnp.sum(h0[j0 + n_users] ** 2))
        / u.shape[0]
    )
    total = main + arch.l2 * reg
    if key is None:
        return total, 0.0, fwd
    nodes = contrastive_nodes(batch, n_users) if nodes is None else nodes

    def ssl():
        return sum(info_nce(fwd.mean[n], fwd.first[n], ids=n) for n in nodes)

    if not isinstance(arch.ssl, jax.Array):  # a static arch (tracers are jax.Arrays)
        term = ssl() if float(arch.ssl) > 0 else 0.0
    elif mode == "switch":  # a lone member really skips the term when it has none
        term = jax.lax.cond(arch.ssl > 0, ssl, lambda: jnp.zeros((), jnp.float32))
    else:
        term = ssl()
    return total, term, fwd


def loss(
    params: dict,
    arch: Arch,
    inputs: model_lib.Inputs,
    batch: tuple[jax.Array, jax.Array, jax.Array],
    key: jax.Array | None,
    *,
    space: Space,
    mode: str = "switch",
    spmm_fn: Callable = spmm,
) -> jax.Array:
    """The training loss of a batch (item ids from 0): (users [B], positives [B], negatives
    [B, K] per positive), or `sample_member_batch`'s (users, positives, neg0 [B], shared [K - 1],
    ok [B, K - 1]). `key`: the forward's dropout and noise key (None: neither)."""
    total, term, _ = loss_terms(
        params, arch, inputs, batch, key, space=space, mode=mode, spmm_fn=spmm_fn
    )
    return total if key is None else total + arch.ssl * term
