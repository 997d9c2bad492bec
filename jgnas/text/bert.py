"""The BERT encoder family in flax.linen, configured from a Hugging Face `config.json` alone.

Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding", NAACL 2019. Post-LayerNorm layers, inference only (no dropout).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgnas.data.types import DataError

# `model_type` values whose checkpoints use exactly this architecture and key layout.
BERT_MODEL_TYPES = ("bert",)

_ACTIVATIONS = {
    # HF "gelu" is the exact erf form; "gelu_new"/"gelu_pytorch_tanh" are the tanh approximation.
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}

_REQUIRED_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The sizes that define a BERT encoder (the `config.json` keys of the same names)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def config_from_dict(raw: Mapping[str, Any], source: str = "config.json") -> BertConfig:
    """Validates a Hugging Face config dict and turns it into a `BertConfig`.

    Args:
      raw: the parsed `config.json`.
      source: file name used in error messages.

    Returns:
      The config. Raises `DataError` (one line naming `source` and the key) for a non-BERT
      `model_type`, a missing or non-integer size, an unknown `hidden_act`, a non-absolute
      `position_embedding_type`, or a hidden size that the heads do not divide.
    """
    model_type = raw.get("model_type")
    if model_type not in BERT_MODEL_TYPES:
        raise DataError(
            f"{source}: key 'model_type' is {model_type!r}; only BERT-family encoders "
            f"{list(BERT_MODEL_TYPES)} are supported"
        )
    for key in _REQUIRED_KEYS:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise DataError(f"{source}: key {key!r} must be a positive integer, got {value!r}")
    act = raw.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise DataError(f"{source}: key 'hidden_act' is {act!r}; supported: {sorted(_ACTIVATIONS)}")
    pos_type = raw.get("position_embedding_type", "absolute")
    if pos_type != "absolute":
        raise DataError(
            f"{source}: key 'position_embedding_type' is {pos_type!r}; only 'absolute' is supported"
        )
    if raw["hidden_size"] % raw["num_attention_heads"]:
        raise DataError(
            f"{source}: key 'hidden_size' ({raw['hidden_size']}) is not a multiple of "
            f"'num_attention_heads' ({raw['num_attention_heads']})"
        )
    return BertConfig(
        **{key: int(raw[key]) for key in _REQUIRED_KEYS},
        layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
        hidden_act=act,
        pad_token_id=int(raw.get("pad_token_id") or 0),
    )


class _Layer(nn.Module):
    """One post-LayerNorm transformer layer."""

    config: BertConfig
    precision: Any

    @nn.compact
    def __call__(self, h: jax.Array, mask_bias: jax.Array) -> jax.Array:
        cfg = self.config
        dense = lambda size, name: nn.Dense(size, precision=self.precision, name=name)
        norm = lambda name: nn.LayerNorm(epsilon=cfg.layer_norm_eps, name=name)
        b, t, _ = h.shape
        split = lambda x: x.reshape(b, t, cfg.num_attention_heads, cfg.head_dim)
        q = split(dense(cfg.hidden_size, "query")(h))  # [b, t, heads, hd]
        k = split(dense(cfg.hidden_size, "key")(h))
        v = split(dense(cfg.hidden_size, "value")(h))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=self.precision)
        scores = scores / np.sqrt(cfg.head_dim).astype(np.float32) + mask_bias  # [b, heads, t, t]
        probs = jax.nn.softmax(scores, axis=-1)
        ctx = jnp.einsum("bhqk,bkhd->bqhd", probs, v, precision=self.precision)
        ctx = ctx.reshape(b, t, cfg.hidden_size)
        h = norm("attention_norm")(h + dense(cfg.hidden_size, "attention_output")(ctx))
        ff = _ACTIVATIONS[cfg.hidden_act](dense(cfg.intermediate_size, "intermediate")(h))
        return norm("output_norm")(h + dense(cfg.hidden_size, "output")(ff))


class BertModel(nn.Module):
    """BERT encoder: token ids -> last hidden states [batch, seq, hidden].

    `precision` defaults to HIGHEST so that accelerators do not silently drop to TF32/bf16
    matmuls: the vectors are computed once and cached, so accuracy is worth more than speed.
    """

    config: BertConfig
    precision: Any = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(
        self, input_ids: jax.Array, token_type_ids: jax.Array, attention_mask: jax.Array
    ) -> jax.Array:
        """Args: int32 [b, t] each; attention_mask is 1 for real tokens, 0 for padding.

        Returns: float32 [b, t, hidden].
        """
        cfg = self.config
        t = input_ids.shape[1]
        embed = lambda n, name: nn.Embed(n, cfg.hidden_size, name=name)
        h = (
            embed(cfg.vocab_size, "word_embeddings")(input_ids)
            + embed(cfg.max_position_embeddings, "position_embeddings")(jnp.arange(t)[None, :])
            + embed(cfg.type_vocab_size, "token_type_embeddings")(token_type_ids)
        )
        h = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="embeddings_norm")(h)
        # As HF: padded keys get the most negative float, so they take no attention weight.
        neg = jnp.finfo(h.dtype).min
        mask_bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, neg).astype(h.dtype)
        for i in range(cfg.num_hidden_layers):
            h = _Layer(cfg, self.precision, name=f"layer_{i}")(h, mask_bias)
        return h


# HF key (after the optional "bert." prefix) -> (flax path, whether the array is a torch Linear
# weight [out, in] that must be transposed to a flax kernel [in, out]).
_EMBEDDING_KEYS = {
    "embeddings.word_embeddings.weight": (("word_embeddings", "embedding"), False),
    "embeddings.position_embeddings.weight": (("position_embeddings", "embedding"), False),
    "embeddings.token_type_embeddings.weight": (("token_type_embeddings", "embedding"), False),
    "embeddings.LayerNorm.weight": (("embeddings_norm", "scale"), False),
    "embeddings.LayerNorm.bias": (("embeddings_norm", "bias"), False),
}
_LAYER_KEYS = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attention_output",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "output_norm",
}
# Old TF-converted checkpoints name LayerNorm parameters gamma/beta.
_ALIASES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


def weight_names(config: BertConfig) -> dict[str, tuple[tuple[str, ...], bool]]:
    """All checkpoint keys the encoder needs: HF key -> (flax param path, transpose?)."""
    names = dict(_EMBEDDING_KEYS)
    for i in range(config.num_hidden_layers):
        for hf, ours in _LAYER_KEYS.items():
            is_norm = hf.endswith("LayerNorm")
            names[f"encoder.layer.{i}.{hf}.weight"] = (
                (f"layer_{i}", ours, "scale" if is_norm else "kernel"),
                not is_norm,
            )
            names[f"encoder.layer.{i}.{hf}.bias"] = ((f"layer_{i}", ours, "bias"), False)
    return names


def params_from_state_dict(
    config: BertConfig, tensors: Mapping[str, np.ndarray], source: str = "model.safetensors"
) -> dict:
    """Maps a Hugging Face BERT state dict onto the flax params of `BertModel(config)`.

    Keys may carry a "bert." prefix; unused keys (pooler, MLM heads, position_ids) are ignored.

    Args:
      config: the architecture the weights must fit.
      tensors: checkpoint key -> array, as `safetensors.numpy.load_file` returns.
      source: file name used in error messages.

    Returns:
      {"params": ...} ready for `BertModel(config).apply`, float32 numpy leaves. Raises
      `DataError` naming the key for a missing weight or one whose shape does not fit config.json.
    """
    stripped: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        name = key.removeprefix("bert.")
        for old, new in _ALIASES.items():
            if name.endswith(old):
                name = name[: -len(old)] + new
        stripped[name] = value
    model = BertModel(config)
    ids = jax.ShapeDtypeStruct((1, 1), jnp.int32)
    expected = jax.eval_shape(model.init, jax.random.key(0), ids, ids, ids)["params"]
    params: dict = {}
    for hf_key, (path, transpose) in weight_names(config).items():
        want = expected
        for part in path:
            want = want[part]
        want_hf = tuple(reversed(want.shape)) if transpose else tuple(want.shape)
        if hf_key not in stripped:
            raise DataError(
                f"{source}: missing weight {hf_key!r} (expected shape {list(want_hf)} from config.json)"
            )
        value = stripped[hf_key]
        if tuple(value.shape) != want_hf:
            raise DataError(
                f"{source}: weight {hf_key!r} has shape {list(value.shape)}, config.json implies "
                f"{list(want_hf)}"
            )
        value = np.asarray(value, dtype=np.float32)
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.ascontiguousarray(value.T) if transpose else value
    return {"params": params}
