"""On-disk cache of processed datasets: `<cache_dir>/<key>.npz` + `.json`, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from collections.abc import Callable

import numpy as np

from jgnas.data.config import DataConfig
from jgnas.data.sources import PARTS, Sources
from jgnas.data.types import Dataset, Interactions

CACHE_VERSION = "jgnas-data-2"  # 2: stats["negative_ratings"]
# Config fields that do not change the processed dataset (the file bytes are hashed instead).
_NOT_IN_KEY = ("path",)


def cache_key(cfg: DataConfig, src: Sources | None) -> str:
    """sha256 of the source files' names and bytes and of the preprocessing config.

    Args:
      cfg: the config; src: its resolved files (None for synthetic data).

    Returns:
      A hex digest.
    """
    h = hashlib.sha256(CACHE_VERSION.encode())
    conf = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IN_KEY}
    h.update(json.dumps(conf, sort_keys=True).encode())
    if src is not None:
        h.update(src.format.encode())
        for part, files in sorted(src.parts.items()):
            h.update(part.encode())
            for f in files:
                h.update(f"\0{f.name}\0".encode())
                with open(f, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        for f in (src.user_file, src.item_file):
            h.update(b"\0features\0")
            if f is not None:
                h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _atomic_write(path: pathlib.Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def save(ds: Dataset, stem: pathlib.Path) -> None:
    arrays = {"user_ids": ds.user_ids, "item_ids": ds.item_ids, "cold_items": ds.cold_items}
    for p in PARTS:
        x = getattr(ds, p)
        for f in ("users", "items", "ratings", "timestamps"):
            arrays[f"{p}_{f}"] = getattr(x, f)
    meta = {
        "name": ds.name, "n_users": ds.n_users, "n_items": ds.n_items, "stats": ds.stats,
        "user_features": {k: v.tolist() for k, v in ds.user_features.items()},
        "item_features": {k: v.tolist() for k, v in ds.item_features.items()},
    }  # fmt: skip
    stem.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(stem.with_suffix(".npz"), lambda f: np.savez(f, **arrays))
    # The json is written last: its presence marks a complete entry.
    _atomic_write(stem.with_suffix(".json"), lambda f: f.write(json.dumps(meta).encode()))


def load_cached(stem: pathlib.Path, log: Callable[[str], None] | None = None) -> Dataset | None:
    """The cached dataset at `stem` (.npz + .json), or None when absent.

    A damaged entry (truncated or empty files, json without the expected fields) is deleted,
    reported to `log` in one line, and None is returned, so the caller rebuilds it."""
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    if not (npz.exists() and js.exists()):
        return None
    try:
        return _read_entry(npz, js)
    except Exception as e:  # anything unreadable: the entry is rebuilt
        reason = (str(e).strip().splitlines() or [""])[0][:100]
        if log is not None:
            log(
                f"warning: damaged data cache entry {npz} ({type(e).__name__}: {reason}); rebuilding it"
            )
        for f in (js, npz):  # the json first: its presence marks a complete entry
            f.unlink(missing_ok=True)
        return None


def _read_entry(npz: pathlib.Path, js: pathlib.Path) -> Dataset:
    meta = json.loads(js.read_text())
    with np.load(npz, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    parts = {
        p: Interactions(*(a[f"{p}_{f}"] for f in ("users", "items", "ratings", "timestamps")))
        for p in PARTS
    }
    ds = Dataset(
        name=meta["name"], n_users=int(meta["n_users"]), n_items=int(meta["n_items"]), **parts,
        user_ids=a["user_ids"], item_ids=a["item_ids"],
        user_features={k: np.array(v, dtype=str) for k, v in meta["user_features"].items()},
        item_features={k: np.array(v, dtype=str) for k, v in meta["item_features"].items()},
        cold_items=a["cold_items"], stats=dict(meta["stats"]),
    )  # fmt: skip
    if ds.user_ids.shape != (ds.n_users,) or ds.item_ids.shape != (ds.n_items,):
        raise ValueError("id maps do not match the sizes")
    return ds
