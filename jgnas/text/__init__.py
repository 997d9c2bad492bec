"""Frozen pretrained text encoders (BERT family, e.g. all-MiniLM-L6-v2) for node features."""

from jgnas.text.bert import BERT_MODEL_TYPES, BertConfig, BertModel, config_from_dict
from jgnas.text.cache import default_cache_dir, encode_cached
from jgnas.text.encoding import BUCKETS, encode
from jgnas.text.loader import Encoder, default_model_path, load_encoder
from jgnas.text.nodes import GENDER_WORDS, node_text_features, user_features_for_text
from jgnas.text.templates import ITEM_TEMPLATE, USER_TEMPLATE, render

__all__ = [
    "BERT_MODEL_TYPES",
    "BUCKETS",
    "GENDER_WORDS",
    "ITEM_TEMPLATE",
    "USER_TEMPLATE",
    "BertConfig",
    "BertModel",
    "Encoder",
    "config_from_dict",
    "default_cache_dir",
    "default_model_path",
    "encode",
    "encode_cached",
    "load_encoder",
    "node_text_features",
    "render",
    "user_features_for_text",
]
