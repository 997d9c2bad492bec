"""The REINFORCE controller's policy: categorical genes (independent logits or a GRU controller
read gene by gene, ENAS style) and Gaussian latents for continuous genes. `jgnas.search.rl` trains
it; see that module for the references and the design."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgnas.search.base import GenomeSpec

# Masked logits: finite, so log-probs, entropies and their gradients never meet inf * 0.
_MASKED = -1e9


class _Layout(NamedTuple):
    """Static (numpy) view of a GenomeSpec: which genes are discrete, their sizes and mask."""

    discrete: np.ndarray  # [Gd] gene indices
    continuous: np.ndarray  # [C] gene indices
    sizes: np.ndarray  # [Gd] float32 choices per discrete gene
    mask: np.ndarray  # [Gd, K] bool, bin k exists for gene g


def _layout(spec: GenomeSpec) -> _Layout:
    sizes = np.asarray(spec.sizes)
    discrete = np.flatnonzero(sizes > 0)
    k_max = int(sizes[discrete].max()) if discrete.size else 1
    mask = np.arange(k_max)[None, :] < sizes[discrete][:, None]
    return _Layout(discrete, np.flatnonzero(sizes == 0), sizes[discrete].astype(np.float32), mask)


def _init_params(key, layout: _Layout, autoregressive: bool, hidden: int, std_init: float):
    """Uniform categoricals at init (zero logits / zero heads), Gaussians at N(0, std_init^2).

    Only the parts the spec needs exist: orbax refuses to save zero-size arrays.
    """
    n_disc, k_max = layout.mask.shape
    n_cont = layout.continuous.size
    params = {}
    if n_cont:
        params["mu"] = jnp.zeros((n_cont,), jnp.float32)
        params["log_std"] = jnp.full((n_cont,), math.log(std_init), jnp.float32)
    if not n_disc:
        return params
    if not autoregressive:
        params["logits"] = jnp.zeros((n_disc, k_max), jnp.float32)
        return params
    key_start, key_embed, key_wi, key_wh = jax.random.split(key, 4)
    scale = 1.0 / math.sqrt(hidden)
    params.update(
        start=jax.random.normal(key_start, (hidden,), jnp.float32),
        embed=jax.random.normal(key_embed, (n_disc, k_max, hidden), jnp.float32),
        gru={
            "wi": scale * jax.random.normal(key_wi, (hidden, 3 * hidden), jnp.float32),
            "wh": scale * jax.random.normal(key_wh, (hidden, 3 * hidden), jnp.float32),
            "b": jnp.zeros((3 * hidden,), jnp.float32),
        },
        # Zero heads: the first policy is uniform, as in the independent case.
        head_w=jnp.zeros((n_disc, hidden, k_max), jnp.float32),
        head_b=jnp.zeros((n_disc, k_max), jnp.float32),
    )
    return params


def _gru(p, h, x):
    """One GRU step. h, x: [H] -> [H]."""
    hidden = h.shape[-1]
    gi = x @ p["wi"] + p["b"]  # [3H]
    gh = h @ p["wh"]  # [3H]
    reset = jax.nn.sigmoid(gi[:hidden] + gh[:hidden])
    update = jax.nn.sigmoid(gi[hidden : 2 * hidden] + gh[hidden : 2 * hidden])
    candidate = jnp.tanh(gi[2 * hidden :] + reset * gh[2 * hidden :])
    return (1.0 - update) * candidate + update * h


def _head(h, head_w, head_b):
    """Logits of one gene from the controller state. h: [H], head_w: [H, K] -> [K].

    ``h @ head_w`` is divided by H: Adam moves each of the H weights by about ``lr`` per step,
    all in the direction of ``h``, so an unscaled head would move a logit by ``lr * sum|h|``
    (about 3 at H = 32, lr = 0.2) and collapse the policy in two generations. Measured on the
    interaction objectives of ``tests/test_rl.py``: unscaled, the policy froze on a local optimum
    in most seeds; scaled by 1/H, a conditional logit moves about as fast as the bias ``head_b``.
    """
    return (h @ head_w) / h.shape[-1] + head_b


def _masked_log_softmax(logits, mask):
    return jax.nn.log_softmax(jnp.where(mask, logits, _MASKED), axis=-1)


def _log_policy(params, layout: _Layout, choices):
    """Log-probabilities of every bin of every discrete gene given the earlier genes' choices.

    Args:
      params: policy parameters.
      layout: static gene layout.
      choices: ``[P, Gd]`` int32 bins (the autoregressive policy reads them teacher-forced).

    Returns:
      ``[P, Gd, K]`` float32; masked bins hold about -1e9 (probability 0).
    """
    if "logits" in params:
        table = _masked_log_softmax(params["logits"], layout.mask)  # [Gd, K]
        return jnp.broadcast_to(table, (choices.shape[0], *table.shape))
    n_disc = layout.mask.shape[0]

    def one(choice):  # [Gd] -> [Gd, K]
        prev = params["embed"][jnp.arange(n_disc - 1), choice[:-1]]  # [Gd - 1, H]
        inputs = jnp.concatenate([params["start"][None], prev])[:n_disc]  # [Gd, H]

        def step(h, x):
            h = _gru(params["gru"], h, x)
            return h, h

        _, hs = jax.lax.scan(step, jnp.zeros_like(params["start"]), inputs)  # [Gd, H]
        logits = jax.vmap(_head)(hs, params["head_w"], params["head_b"])  # [Gd, K]
        return _masked_log_softmax(logits, layout.mask)

    return jax.vmap(one)(choices)


def _sample_choices(key, params, layout: _Layout, n: int):
    """``n`` samples of the discrete genes. Returns ``[n, Gd]`` int32 bins."""
    n_disc = layout.mask.shape[0]
    if not n_disc:
        return jnp.zeros((n, 0), jnp.int32)
    if "logits" in params:
        logits = jnp.where(layout.mask, params["logits"], _MASKED)
        return jax.random.categorical(key, logits, shape=(n, n_disc)).astype(jnp.int32)

    def one(key_one):
        def step(carry, xs):
            h, x = carry
            key_gene, embed, head_w, head_b, mask = xs
            h = _gru(params["gru"], h, x)
            choice = jax.random.categorical(
                key_gene, jnp.where(mask, _head(h, head_w, head_b), _MASKED)
            )
            return (h, embed[choice]), choice

        xs = (
            jax.random.split(key_one, n_disc),
            params["embed"],
            params["head_w"],
            params["head_b"],
            jnp.asarray(layout.mask),
        )
        h0 = jnp.zeros_like(params["start"])
        _, choices = jax.lax.scan(step, (h0, params["start"]), xs)
        return choices.astype(jnp.int32)

    return jax.vmap(one)(jax.random.split(key, n))


def _log_prob_entropy(params, layout: _Layout, choices, z):
    """Log-probability of each genome and the entropy of its discrete genes' policy.

    Args:
      params: policy parameters.
      layout: static gene layout.
      choices: ``[P, Gd]`` int32 bins.
      z: ``[P, C]`` float32 Gaussian latents of the continuous genes (None if C = 0).

    Returns:
      ``(log_prob [P], entropy [P])``: ``log_prob`` sums the categorical log-probabilities and
      the Gaussian log-densities of z (in z space: the sigmoid's Jacobian does not depend on the
      parameters); ``entropy`` is ``sum_g H(pi_g(. | earlier choices))``, the chain-rule estimate
      of the joint entropy (exact for the independent policy).
    """
    log_prob = entropy = jnp.zeros(choices.shape[:1], jnp.float32)
    if layout.discrete.size:
        table = _log_policy(params, layout, choices)  # [P, Gd, K]
        log_prob = jnp.take_along_axis(table, choices[..., None], axis=-1)[..., 0].sum(-1)
        entropy = -(jnp.exp(table) * table).sum((-2, -1))
    if layout.continuous.size:
        std = jnp.exp(params["log_std"])
        gauss = -0.5 * jnp.square((z - params["mu"]) / std) - params["log_std"]
        log_prob += (gauss - 0.5 * math.log(2 * math.pi)).sum(-1)
    return log_prob, entropy


def _loss(params, layout: _Layout, choices, z, advantages, entropy_weight):
    """REINFORCE loss: ``-mean(A * log pi) - entropy_weight * mean(H)``."""
    log_prob, entropy = _log_prob_entropy(params, layout, choices, z)
    return -(advantages * log_prob).mean() - entropy_weight * entropy.mean()
