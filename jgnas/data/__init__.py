"""Host-side data layer: read, preprocess, split and cache interaction datasets (numpy only)."""

from jgnas.data.config import KNOWN_DATASETS, DataConfig, data_dir
from jgnas.data.fetching import fetch
from jgnas.data.parsing import RawInteractions
from jgnas.data.pipeline import info, load
from jgnas.data.readers import FORMATS, Format, format_names, register_format
from jgnas.data.splits import split_cold_item, split_loo, split_ratio
from jgnas.data.synth import stand_in, write_stand_in
from jgnas.data.synthetic import synthetic
from jgnas.data.types import DataError, Dataset, Interactions

__all__ = [
    "FORMATS",
    "KNOWN_DATASETS",
    "DataConfig",
    "DataError",
    "Dataset",
    "Format",
    "Interactions",
    "RawInteractions",
    "data_dir",
    "fetch",
    "format_names",
    "info",
    "load",
    "register_format",
    "split_cold_item",
    "split_loo",
    "split_ratio",
    "stand_in",
    "synthetic",
    "write_stand_in",
]
