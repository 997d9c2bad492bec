"""On-disk cache of sentence vectors, keyed by (checkpoint, encoder settings, namespace, text).

Layout: <cache_dir>/<model key>/<namespace key>/<shard>.npz, each shard holding `keys` (text
sha256 hex, [m]) and `vectors` (float32 [m, d]). A call reads all shards of its folder, encodes
only the texts it lacks, and writes them as one new shard. Writes go to a temporary file in the
same folder and are renamed into place, so a reader never sees a partial file and two processes
writing the same shard agree on its content. Checkpoint hashes are remembered in
<cache_dir>/checkpoints.json by (path, size, mtime), so 90 MB is hashed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jgnas.data import data_dir
from jgnas.text import encoding
from jgnas.text.loader import Encoder, checkpoint_sha256


def default_cache_dir() -> Path:
    """`jgnas.data.data_dir() / "text"`: `$JGNAS_DATA/text`, else `~/.cache/jgnas/text`."""
    return data_dir() / "text"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _atomic_write(path: Path, write_fn) -> None:
    """Runs write_fn(file object) on a temp file beside `path`, then renames it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_checkpoint_sha256(model_file: Path, cache_dir: Path) -> str:
    """sha256 of `model_file`, remembered in cache_dir/checkpoints.json by path, size and mtime."""
    stat = model_file.stat()
    entry = f"{model_file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index_file = cache_dir / "checkpoints.json"
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}  # absent or torn by hand: rebuilt below
    if not isinstance(index, dict) or not all(isinstance(v, str) for v in index.values()):
        index = {}  # valid JSON of the wrong shape: rebuilt too
    if entry not in index:
        index[entry] = checkpoint_sha256(model_file)
        payload = json.dumps(index, indent=1, sort_keys=True).encode()
        _atomic_write(index_file, lambda f: f.write(payload))
    return index[entry]


def model_key(encoder: Encoder, cache_dir: Path) -> str:
    """Folder name for vectors of this checkpoint with these settings (truncation and the
    pooling head change the vectors, so they are part of the key)."""
    sha = cached_checkpoint_sha256(encoder.path / "model.safetensors", cache_dir)
    settings = f"{sha}|max_length={encoder.max_length}|{encoder.pooling}|norm={encoder.normalize}"
    return _sha(settings)[:24]


def encode_cached(
    encoder: Encoder,
    texts: Sequence[str | None],
    cache_dir: str | os.PathLike | None = None,
    namespace: str = "",
    batch_size: int = 64,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """`encode` with an on-disk cache: texts seen before (same checkpoint, settings, namespace)
    are read back instead of encoded.

    Args:
      encoder: from `load_encoder`.
      texts: strings; None is treated as "".
      cache_dir: cache root; None means `default_cache_dir()`.
      namespace: a free label kept apart in the cache, e.g. the template the texts came from.
      batch_size: passed to `encode` for the texts not yet cached.
      log: where the one-line warning about a damaged shard goes (None: stderr); the shard is
        deleted and its texts encoded again.

    Returns:
      float32 [len(texts), encoder.dim], equal to `encode(encoder, texts)`.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / model_key(encoder, root) / _sha(namespace)[:24]
    folder.mkdir(parents=True, exist_ok=True)
    keys = [_sha("" if t is None else str(t)) for t in texts]
    known: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("*.npz")):
        try:
            with np.load(shard, allow_pickle=False) as z:
                vectors = np.asarray(z["vectors"], np.float32)
                if vectors.ndim != 2 or vectors.shape[1] != encoder.dim:
                    raise ValueError(f"vectors of shape {vectors.shape}")
                known.update(zip(z["keys"].tolist(), vectors, strict=True))
        except Exception as e:  # unreadable (truncated, empty, torn): drop it, re-encode its texts
            reason = (str(e).strip().splitlines() or [""])[0][:100]
            (log or _stderr)(
                f"warning: damaged text cache shard {shard} ({type(e).__name__}: {reason}); "
                "encoding its texts again"
            )
            shard.unlink(missing_ok=True)
    missing = sorted({k for k in keys if k not in known})
    if missing:
        first = {}
        for k, t in zip(keys, texts, strict=True):
            first.setdefault(k, "" if t is None else str(t))
        vectors = encoding.encode(encoder, [first[k] for k in missing], batch_size=batch_size)
        known.update(zip(missing, vectors, strict=True))
        shard = folder / f"{_sha('|'.join(missing))[:24]}.npz"
        _atomic_write(shard, lambda f: np.savez(f, keys=np.array(missing), vectors=vectors))
    out = np.zeros((len(keys), encoder.dim), np.float32)
    for i, k in enumerate(keys):
        out[i] = known[k]
    return out
