"""Export a run's winner: final representations, id maps, item metadata and every user's top-K.

`jgnas export RUN_DIR --out DIR` (`main`) writes an export folder, format 1:

    manifest.json    format, run, arch (dict and describe), model version, sizes, k, files
    users.parquet    index, user_id (raw), n_train, embedding (fixed-size list of float32, [d])
    items.parquet    index, item_id (raw), the metadata columns (text), n_train, embedding
    seen.parquet     user_index, item_index: the training interactions that top-K excludes
    topk.parquet     user_index, user_id, rank, item_index, item_id, score: K rows per user
    users.csv, items.csv, topk.csv   the same rows without embeddings

Parquet keeps the float32 vectors bit-exact and typed (a reader gets [n, d] arrays without
parsing); the CSV files are for people and spreadsheets. The top-K ranks every item by
`h_u · h_i`, training items excluded, ties to the lower item index: `jgnas.serve.Recommender`'s
ranking (tests/test_export.py checks it for every user).

The loader (`load_winner`, in `jgnas.winner`) is shared with the HTTP service.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from jgnas import data as data_lib
from jgnas.winner import Winner, load_winner
from jgnas.winner import _embeddings_fn as _embeddings_fn  # re-exported: tests call it

FORMAT = 1
DEFAULT_K = 20

__all__ = [
    "Catalog",
    "Winner",
    "catalog_from_winner",
    "load_winner",
    "main",
    "read",
    "seen_mask",
    "seen_matrix",
    "topk",
    "topk_block",
    "write",
]


# ---- the catalog: what a recommender serves ---------------------------------------------------------


@dataclasses.dataclass
class Catalog:
    """Representations, id maps, metadata and seen items: what exact top-K needs, nothing more.

    user_ids, item_ids: raw ids (str) by index. user_emb [U, d], item_emb [I, d] float32.
    seen_indptr [U + 1], seen_items [nnz] int32: each user's training items (CSR, sorted).
    item_meta: column -> str array [I] (title, year, genres, ... as text).
    info: describe, arch, dataset, model_version, features, run_dir.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_emb: np.ndarray
    item_emb: np.ndarray
    seen_indptr: np.ndarray
    seen_items: np.ndarray
    item_meta: dict[str, np.ndarray]
    info: dict

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def seen(self, u: int) -> np.ndarray:
        return self.seen_items[self.seen_indptr[u] : self.seen_indptr[u + 1]]


def seen_matrix(
    users: np.ndarray, items: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Interactions -> CSR (indptr [n_users + 1], items sorted per user, duplicates merged)."""
    key = np.unique(np.asarray(users, np.int64) * (1 << 32) + np.asarray(items, np.int64))
    u, i = key >> 32, (key & 0xFFFFFFFF).astype(np.int32)
    return np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n_users))]), i


def catalog_from_winner(w: Winner) -> Catalog:
    from jgnas.text.templates import as_text

    ds = w.ctx.dataset
    indptr, items = seen_matrix(ds.train.users, ds.train.items, ds.n_users)
    meta = {
        str(k): np.array([as_text(v) for v in col], dtype=object)
        for k, col in ds.item_features.items()
    }
    info = {
        "run_dir": str(w.run_dir),
        "dataset": ds.name,
        "describe": w.describe,
        "arch": w.ctx.space.to_dict(w.arch),
        "features": w.features,
        "model_version": w.version,
    }
    return Catalog(
        np.asarray(ds.user_ids).astype(str),
        np.asarray(ds.item_ids).astype(str),
        w.user_emb,
        w.item_emb,
        indptr,
        items,
        meta,
        info,
    )


# ---- exact top-K --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("k",))
def topk_block(
    user_vecs: jax.Array, item_emb: jax.Array, n_valid: jax.Array, exclude: jax.Array, k: int
) -> tuple[jax.Array, jax.Array]:
    """Exact top-k of a block of users over the first n_valid rows of `item_emb`.

    Args:
      user_vecs: [B, d] query vectors.
      item_emb: [C, d]; rows >= n_valid (spare capacity) never rank.
      n_valid: int32 [] items in use.
      exclude: bool [B, C], True for the items a user must not get (seen ones). A dense mask
        keeps one shape per batch size whatever the users' histories (a padded list of seen
        items would need the heaviest user's length: 27k on the Gowalla-size graph).
      k: static, <= C.

    Returns:
      (scores [B, k], items [B, k]); excluded or missing items score -inf. Equal scores rank the
      lower index first (`lax.top_k` is stable).
    """
    scores = user_vecs @ item_emb.T  # [B, C]
    keep = (jnp.arange(item_emb.shape[0])[None] < n_valid) & ~exclude
    return jax.lax.top_k(jnp.where(keep, scores, -jnp.inf), k)


def bucket(n: int, least: int = 1) -> int:
    """The next power of two >= max(n, least): padded sizes keep the compiled shapes few."""
    return 1 << (max(n, least) - 1).bit_length()


def seen_mask(indptr: np.ndarray, seen: np.ndarray, users, rows: int, cols: int) -> np.ndarray:
    """bool [rows, cols]: row r marks the seen items of users[r] (rows beyond len(users) empty)."""
    out = np.zeros((rows, cols), bool)
    users = np.asarray(users, np.int64)
    counts = indptr[users + 1] - indptr[users]
    if counts.sum():
        starts = np.repeat(indptr[users] - np.cumsum(counts) + counts, counts)
        cols_of = seen[starts + np.arange(counts.sum())]
        out[np.repeat(np.arange(len(users)), counts), cols_of] = True
    return out


def topk(cat: Catalog, k: int, block: int = 512, exclude_seen: bool = True):
    """Every user's exact top-k (training items excluded): (scores [U, k], items [U, k]).

    Users run in blocks of `block` through `topk_block` (one program for every block). Excluded
    items never appear unless a user has fewer than k unseen items (those slots score -inf)."""
    k = min(k, cat.n_items)
    items = jnp.asarray(cat.item_emb)
    n = jnp.int32(cat.n_items)
    scores, idx = [], []
    for start in range(0, cat.n_users, block):
        users = np.arange(start, min(start + block, cat.n_users))
        vecs = np.zeros((block, cat.user_emb.shape[1]), np.float32)
        vecs[: len(users)] = cat.user_emb[users]
        used = users if exclude_seen else users[:0]
        mask = seen_mask(cat.seen_indptr, cat.seen_items, used, block, cat.n_items)
        s, i = topk_block(jnp.asarray(vecs), items, n, jnp.asarray(mask), k)
        scores.append(np.asarray(s)[: len(users)])
        idx.append(np.asarray(i)[: len(users)])
    return np.concatenate(scores), np.concatenate(idx)


# ---- files ------------------------------------------------------------------------------------------


def _vectors(emb: np.ndarray):
    import pyarrow as pa

    emb = np.ascontiguousarray(emb, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])


def _unvectors(column) -> np.ndarray:
    arr = column.combine_chunks()
    d = arr.type.list_size
    return np.asarray(arr.values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, d)


def write(cat: Catalog, out: str | pathlib.Path, k: int = DEFAULT_K) -> dict:
    """Writes an export folder (see the module docstring). Returns the manifest."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_seen_u = np.diff(cat.seen_indptr)
    n_seen_i = np.bincount(cat.seen_items, minlength=cat.n_items)
    users = pa.table(
        {
            "index": np.arange(cat.n_users, dtype=np.int32),
            "user_id": pa.array(cat.user_ids.tolist(), pa.string()),
            "n_train": n_seen_u.astype(np.int32),
        }
    )
    meta = {c: pa.array([str(v) for v in col], pa.string()) for c, col in cat.item_meta.items()}
    reserved = {"index", "item_id", "n_train", "embedding"} & set(meta)
    if reserved:
        raise ValueError(f"item metadata column(s) {sorted(reserved)} clash with export columns")
    items = pa.table(
        {
            "index": np.arange(cat.n_items, dtype=np.int32),
            "item_id": pa.array(cat.item_ids.tolist(), pa.string()),
            **meta,
            "n_train": n_seen_i.astype(np.int32),
        }
    )
    scores, idx = topk(cat, k)
    keep = np.isfinite(scores)  # a user with fewer than k unseen items gets fewer rows
    rows_u = np.broadcast_to(np.arange(cat.n_users)[:, None], idx.shape)[keep]
    ranks = np.broadcast_to(np.arange(1, idx.shape[1] + 1)[None], idx.shape)[keep]
    top = pa.table(
        {
            "user_index": rows_u.astype(np.int32),
            "user_id": pa.array(cat.user_ids[rows_u].tolist(), pa.string()),
            "rank": ranks.astype(np.int32),
            "item_index": idx[keep].astype(np.int32),
            "item_id": pa.array(cat.item_ids[idx[keep]].tolist(), pa.string()),
            "score": scores[keep].astype(np.float32),
        }
    )
    seen_u = np.repeat(np.arange(cat.n_users, dtype=np.int32), n_seen_u)
    seen = pa.table({"user_index": seen_u, "item_index": cat.seen_items.astype(np.int32)})
    pq.write_table(users.append_column("embedding", _vectors(cat.user_emb)), out / "users.parquet")
    pq.write_table(items.append_column("embedding", _vectors(cat.item_emb)), out / "items.parquet")
    pq.write_table(seen, out / "seen.parquet")
    pq.write_table(top, out / "topk.parquet")
    for name, table in (("users", users), ("items", items), ("topk", top)):
        pacsv.write_csv(table, out / f"{name}.csv")
    manifest = {
        "format": FORMAT,
        **cat.info,
        "n_users": cat.n_users,
        "n_items": cat.n_items,
        "dim": int(cat.item_emb.shape[1]),
        "k": int(k),
        "score": "dot product h_u . h_i; training items excluded; ties to the lower item index",
        "files": sorted(p.name for p in out.iterdir() if p.name != "manifest.json"),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read(folder: str | pathlib.Path) -> Catalog:
    """Reads an export folder back into a `Catalog` (embeddings bit-exact)."""
    import pyarrow.parquet as pq

    folder = pathlib.Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise data_lib.DataError(f"{folder}: no manifest.json; not an export folder")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise data_lib.DataError(
            f"{manifest_path}: format {manifest.get('format')!r}, this jgnas reads {FORMAT}"
        )
    users = pq.read_table(folder / "users.parquet")
    items = pq.read_table(folder / "items.parquet")
    seen = pq.read_table(folder / "seen.parquet")
    n_users = users.num_rows
    indptr, seen_items = seen_matrix(
        seen["user_index"].to_numpy(), seen["item_index"].to_numpy(), n_users
    )
    fixed = {"index", "item_id", "n_train", "embedding"}
    meta = {
        c: np.array(items[c].to_pylist(), dtype=object)
        for c in items.column_names
        if c not in fixed
    }
    keys = ("run_dir", "dataset", "describe", "arch", "features", "model_version")
    return Catalog(
        np.array(users["user_id"].to_pylist(), dtype=str),
        np.array(items["item_id"].to_pylist(), dtype=str),
        _unvectors(users["embedding"]),
        _unvectors(items["embedding"]),
        indptr,
        seen_items,
        meta,
        {k: manifest.get(k) for k in keys},
    )


def main(
    run_dir: str | pathlib.Path, out: str | pathlib.Path, k: int = DEFAULT_K, log=None
) -> dict:
    """`jgnas export RUN_DIR --out DIR [-k K]`: loads the run's winner and writes the export."""
    import pyarrow  # noqa: F401  (fail before loading the run when the serve extra is missing)

    w = load_winner(run_dir, log=log)
    manifest = write(catalog_from_winner(w), out, k)
    if log is not None:
        log(
            f"exported {manifest['n_users']} users, {manifest['n_items']} items, top-{k} "
            f"({w.describe}, version {w.version}) to {out}"
        )
    return manifest
