"""`load(cfg)`: find the files, parse, preprocess, split, and cache the result on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import tempfile

import numpy as np

from jgnas.data import readers, splits
from jgnas.data.config import KNOWN_DATASETS, DataConfig, data_dir
from jgnas.data.preprocess import collapse_duplicates, kcore_mask, sort_vocab
from jgnas.data.synthetic import synthetic
from jgnas.data.types import DataError, Dataset, Interactions

CACHE_VERSION = "jgnas-data-1"
PARTS = ("train", "valid", "test")
# Config fields that do not change the processed dataset (the file bytes are hashed instead).
_NOT_IN_KEY = ("path",)


@dataclasses.dataclass(frozen=True)
class Sources:
    """The files a config resolves to. parts: part -> interaction files ("all" unless presplit)."""

    format: str
    parts: dict[str, list[pathlib.Path]]
    user_file: pathlib.Path | None = None
    item_file: pathlib.Path | None = None

    def files(self) -> list[pathlib.Path]:
        fs = [f for p in self.parts.values() for f in p]
        return fs + [f for f in (self.user_file, self.item_file) if f is not None]


# ----------------------------------------------------------------------------- finding files


def _detect(folder: pathlib.Path) -> str:
    if any(folder.glob("*.inter")):
        return "recbole"
    if (folder / "u.data").exists() or (folder / "ratings.dat").exists():
        return "movielens"
    if (folder / "train.txt").exists():
        return "lightgcn"
    if any(folder.glob("*.csv")) or any(folder.glob("*.tsv")):
        return "csv"
    raise DataError(
        f"{folder}: cannot detect the format (no *.inter, u.data, ratings.dat, train.txt, *.csv "
        "or *.tsv); set data.format"
    )


def _detect_file(path: pathlib.Path) -> str:
    if path.suffix == ".inter":
        return "recbole"
    if path.name in ("u.data", "ratings.dat") or path.suffix in (".base", ".dat"):
        return "movielens"
    if path.suffix == ".txt":
        return "lightgcn"
    if path.suffix in (".csv", ".tsv"):
        return "csv"
    raise DataError(f"{path}: cannot detect the format from the file name; set data.format")


def _first(folder: pathlib.Path, names) -> pathlib.Path | None:
    for n in names:
        if (folder / n).exists():
            return folder / n
    return None


def _presplit_names(fmt: str, folder: pathlib.Path, stem: str) -> dict[str, pathlib.Path | None]:
    if fmt == "recbole":
        names = {p: [f"{stem}.{p}.inter"] for p in PARTS}
    elif fmt == "lightgcn":
        names = {p: [f"{p}.txt"] for p in PARTS}
    elif fmt == "csv":
        names = {p: [f"{p}.csv", f"{p}.tsv"] for p in PARTS}
    else:
        names = {p: [] for p in PARTS}
    return {p: _first(folder, n) for p, n in names.items()}


def resolve(cfg: DataConfig) -> Sources:
    """Finds the files `cfg` refers to, without parsing them.

    Args:
      cfg: the data config (not "synthetic").

    Returns:
      The detected format and the interaction / feature files.
    """
    path = pathlib.Path(cfg.path).expanduser() if cfg.path else data_dir() / cfg.name
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        if cfg.name in KNOWN_DATASETS and cfg.path is None:
            hint = KNOWN_DATASETS[cfg.name].format(dir=path)
            raise DataError(f"dataset {cfg.name} not found in {path}: {hint}")
        raise DataError(f"data.path: {path} does not exist or is empty")
    single = path if path.is_file() else None
    folder = path.parent if single else path
    fmt = cfg.format if cfg.format != "auto" else (_detect_file(path) if single else _detect(path))
    stem = single.name.split(".")[0] if single else path.name
    if fmt == "recbole" and not single and not (folder / f"{stem}.inter").exists():
        # Folder named differently from its files (e.g. a copy): take the stem of the .inter.
        stems = sorted({f.name.split(".")[0] for f in folder.glob("*.inter")})
        if len(stems) > 1:
            raise DataError(f"{folder}: .inter files with several names ({', '.join(stems)}); "
                            "set data.path to one file")  # fmt: skip
        stem = stems[0]
    user_file = item_file = None
    if fmt == "recbole":
        user_file = _first(folder, [f"{stem}.user"])
        item_file = _first(folder, [f"{stem}.item"])
    elif fmt == "movielens":
        user_file = _first(folder, ["u.user", "users.dat"])
        item_file = _first(folder, ["u.item", "movies.dat"])

    if cfg.presplit_files:
        files = [folder / f for f in cfg.presplit_files]
        for f in files:
            if not f.is_file():
                raise DataError(f"data.presplit_files: {f} not found")
        named = dict(zip(("train", "test") if len(files) == 2 else PARTS, files, strict=True))
        split_files = {p: named.get(p) for p in PARTS}
    elif single:
        split_files = {"train": None}
    else:
        split_files = _presplit_names(fmt, folder, stem)

    if cfg.split == "presplit":
        if split_files.get("train") is None or split_files.get("test") is None:
            raise DataError(
                f"data.split: presplit needs train and test files in {folder} (e.g. "
                f"{stem}.train.inter/{stem}.test.inter, train.txt/test.txt, train.csv/test.csv) "
                "or data.presplit_files"
            )
        return Sources(fmt, {p: [f] for p, f in split_files.items() if f}, user_file, item_file)

    # Not presplit: pool whatever files hold the interactions and split afresh.
    if single:
        return Sources(fmt, {"all": [single]}, user_file, item_file)
    pooled = [f for f in split_files.values() if f is not None]
    if fmt == "recbole":
        whole = _first(folder, [f"{stem}.inter"])
        others = sorted(f for f in folder.glob("*.inter") if f.name.count(".") == 1)
        whole = whole or (others[0] if len(others) == 1 else None)
        pooled = [whole] if whole else pooled
    elif fmt == "movielens":
        pooled = [f for f in [_first(folder, ["u.data", "ratings.dat"])] if f]
    elif fmt == "csv" and not pooled:
        pooled = sorted([*folder.glob("*.csv"), *folder.glob("*.tsv")])
        if len(pooled) > 1:
            raise DataError(f"{folder}: several csv/tsv files; set data.path to one of them")
    if not pooled:
        raise DataError(f"{folder}: no {fmt} interaction file found")
    return Sources(fmt, {"all": pooled}, user_file, item_file)


def _read(fmt: str, path: pathlib.Path, cfg: DataConfig) -> readers.RawInteractions:
    if fmt == "recbole":
        return readers.read_recbole_inter(path)
    if fmt == "movielens":
        return readers.read_movielens_ratings(path)
    if fmt == "lightgcn":
        return readers.read_lightgcn(path)
    return readers.read_csv(
        path, cfg.user_col, cfg.item_col, cfg.rating_col, cfg.timestamp_col,
        sep=cfg.sep, header=cfg.header, encoding=cfg.encoding,
    )  # fmt: skip


def _read_features(src: Sources) -> tuple[readers.Features | None, readers.Features | None]:
    if src.format == "recbole":
        u = readers.read_recbole_features(src.user_file, "user_id") if src.user_file else None
        i = readers.read_recbole_features(src.item_file, "item_id") if src.item_file else None
    elif src.format == "movielens":
        u = readers.read_movielens_users(src.user_file) if src.user_file else None
        i = readers.read_movielens_items(src.item_file) if src.item_file else None
    else:
        u = i = None
    return u, i


# ----------------------------------------------------------------------------- building


def _features(table: readers.Features | None, raw_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Aligns a feature table to `raw_ids`; ids without a row get ""."""
    if table is None:
        return {}
    ids = table["id"]  # unique: the readers check
    uniq, first = np.unique(ids, return_index=True)
    pos = np.searchsorted(uniq, raw_ids)
    pos_c = np.minimum(pos, max(uniq.shape[0] - 1, 0))
    found = (uniq[pos_c] == raw_ids) if uniq.shape[0] else np.zeros(raw_ids.shape, bool)
    out = {}
    for name, col in table.items():
        if name == "id":
            continue
        vals = col[first][pos_c]
        out[name] = np.where(found, vals, "").astype(str)
    return out


def _interactions(u, i, r, t) -> Interactions:
    order = np.argsort(u.astype(np.int64) * (int(i.max(initial=0)) + 1) + i, kind="stable")
    return Interactions(
        u[order].astype(np.int32),
        i[order].astype(np.int32),
        r[order].astype(np.float32),
        t[order].astype(np.int64),
    )


def _build_synthetic(cfg: DataConfig) -> Dataset:
    x = synthetic(
        cfg.synthetic_users, cfg.synthetic_items, cfg.synthetic_interactions, cfg.seed,
        alpha=cfg.synthetic_alpha,
    )  # fmt: skip
    raw = readers.RawInteractions(
        x.users.astype(np.int64), x.items.astype(np.int64), x.ratings.astype(np.float64),
        x.timestamps.astype(np.float64), np.arange(1, len(x) + 1), "<synthetic>",
    )  # fmt: skip
    return _build(cfg, {"all": [raw]}, None, None, "synthetic", {})


def _build(cfg: DataConfig, parts, user_table, item_table, fmt: str, stats: dict) -> Dataset:
    """Preprocesses and splits parsed files. parts: part -> list of RawInteractions."""
    stats = dict(stats, format=fmt, split=cfg.split)
    names = list(parts)
    raws = [(p, raw) for p in names for raw in parts[p]]
    # One string vocabulary over every file, so ids agree across train/valid/test.
    uvocab, ucode = np.unique(np.concatenate([r.users for _, r in raws]), return_inverse=True)
    ivocab, icode = np.unique(np.concatenate([r.items for _, r in raws]), return_inverse=True)
    sizes = np.cumsum([0] + [len(r) for _, r in raws])
    stats["raw_interactions"] = int(sizes[-1])
    cols: dict[str, dict[str, np.ndarray]] = {}
    below = dups = 0
    for k, (part, raw) in enumerate(raws):
        sl = slice(sizes[k], sizes[k + 1])
        n = len(raw)
        r = raw.ratings if raw.ratings is not None else np.ones(n)
        t = raw.timestamps.astype(np.int64) if raw.timestamps is not None else np.zeros(n, np.int64)
        c = {"u": ucode[sl], "i": icode[sl], "r": r, "t": t, "line": raw.lines,
             "file": np.full(n, k)}  # fmt: skip
        if cfg.rating_threshold is not None:
            if raw.ratings is None:
                raise DataError(
                    f"{raw.path}: data.rating_threshold is set but the file has no ratings"
                )
            keep = r >= cfg.rating_threshold
            below += int(n - keep.sum())
            c = {key: v[keep] for key, v in c.items()}
        prev = cols.get(part)
        cols[part] = c if prev is None else {key: np.concatenate([prev[key], c[key]]) for key in c}
    for part, c in cols.items():
        keep, r, t = collapse_duplicates(c["u"], c["i"], c["r"], c["t"])
        dups += int(c["u"].shape[0] - keep.shape[0])
        cols[part] = {**{key: v[keep] for key, v in c.items()}, "r": r, "t": t}
    stats["below_threshold"] = below
    stats["duplicates_collapsed"] = dups

    base = "train" if cfg.split == "presplit" else "all"
    if cfg.split == "presplit":
        # A pair may sit in one part only: later parts lose pairs already seen earlier.
        seen = np.zeros(0, np.int64)
        cross = 0
        n_i = int(ivocab.shape[0])
        for part in PARTS:
            if part not in cols:
                continue
            c = cols[part]
            key = c["u"].astype(np.int64) * n_i + c["i"]
            keep = ~np.isin(key, seen)
            cross += int((~keep).sum())
            cols[part] = {k: v[keep] for k, v in c.items()}
            seen = np.union1d(seen, key[keep])
        stats["cross_part_duplicates"] = cross
        known_u = np.zeros(uvocab.shape[0], bool)
        known_i = np.zeros(ivocab.shape[0], bool)
        for _, raw in [x for x in raws if x[0] == "train"]:
            known_u[np.searchsorted(uvocab, raw.users)] = True
            known_i[np.searchsorted(ivocab, raw.items)] = True
    b = cols[base]
    core = kcore_mask(b["u"], b["i"], cfg.kcore)
    stats["kcore_removed"] = int((~core).sum())
    cols[base] = b = {k: v[core] for k, v in b.items()}

    # Dense ids: the users and items left in the base part, in raw id order.
    def remap(vocab, codes):
        present = np.zeros(vocab.shape[0], bool)
        present[codes] = True
        order = sort_vocab(vocab)
        order = order[present[order]]
        dense = np.full(vocab.shape[0], -1, np.int64)
        dense[order] = np.arange(order.shape[0])
        return vocab[order], dense

    user_ids, udense = remap(uvocab, b["u"])
    item_ids, idense = remap(ivocab, b["i"])
    n_users, n_items = int(user_ids.shape[0]), int(item_ids.shape[0])
    if n_users == 0 or n_items == 0:
        raise DataError(f"{raws[0][1].path}: no interactions left after preprocessing")
    cold = np.zeros(0, np.int32)

    if cfg.split == "presplit":
        out = {"train": b}
        unknown = filtered = 0
        for part in ("valid", "test"):
            if part not in cols:
                continue
            c = cols[part]
            du, di = udense[c["u"]], idense[c["i"]]
            bad = (du < 0) | (di < 0)
            never = bad & (~known_u[c["u"]] | ~known_i[c["i"]])
            if never.any() and cfg.unknown == "fail":
                j = int(np.flatnonzero(never)[0])
                what = "user" if not known_u[c["u"][j]] else "item"
                raw_id = uvocab[c["u"][j]] if what == "user" else ivocab[c["i"][j]]
                raise DataError(
                    f"{raws[c['file'][j]][1].path}:{c['line'][j]}: {what} {str(raw_id)!r} is not in "
                    "the train file (data.unknown = fail; use drop to skip such rows)"
                )
            unknown += int(never.sum())
            filtered += int((bad & ~never).sum())
            out[part] = {k: v[~bad] for k, v in c.items()}
        stats["unknown_dropped"] = unknown
        stats["filtered_eval_dropped"] = filtered
        for part in out:
            out[part]["u"] = udense[out[part]["u"]]
            out[part]["i"] = idense[out[part]["i"]]
        if "valid" not in out and cfg.valid_from_train > 0:
            tr = out["train"]
            v = cfg.valid_from_train
            lab = splits.split_ratio(tr["u"], tr["t"], n_users, (1 - v, v, 0.0), cfg.seed)
            out["valid"] = {k: x[lab == splits.VALID] for k, x in tr.items()}
            out["train"] = {k: x[lab == splits.TRAIN] for k, x in tr.items()}
        u = np.concatenate([out[p]["u"] for p in PARTS if p in out])
        i = np.concatenate([out[p]["i"] for p in PARTS if p in out])
        r = np.concatenate([out[p]["r"] for p in PARTS if p in out])
        t = np.concatenate([out[p]["t"] for p in PARTS if p in out])
        labels = np.concatenate(
            [np.full(out[p]["u"].shape[0], k, np.int8) for k, p in enumerate(PARTS) if p in out]
        )
    else:
        u, i, r, t = udense[b["u"]], idense[b["i"]], b["r"], b["t"]
        if cfg.split == "ratio":
            labels = splits.split_ratio(u, t, n_users, cfg.ratios, cfg.seed)
        elif cfg.split == "temporal":
            labels = splits.split_ratio(u, t, n_users, cfg.ratios, cfg.seed, chronological=True)
        elif cfg.split == "loo":
            labels = splits.split_loo(u, t, n_users, cfg.seed)
        else:
            labels, cold = splits.split_cold_item(
                u, i, t, n_users, n_items, cfg.ratios, cfg.cold_item_frac, cfg.seed
            )
    labels = splits.drop_untrained(u, labels, n_users)
    dropped = labels == splits.DROPPED
    stats["eval_dropped_no_train_user"] = int(dropped.sum())
    stats["users_without_train"] = int(np.unique(u[dropped]).shape[0])
    parts_out = {
        p: _interactions(u[labels == k], i[labels == k], r[labels == k], t[labels == k])
        for k, p in enumerate(PARTS)
    }
    stats.update({f"n_{p}": len(x) for p, x in parts_out.items()})
    return Dataset(
        name=cfg.name,
        n_users=n_users,
        n_items=n_items,
        train=parts_out["train"],
        valid=parts_out["valid"],
        test=parts_out["test"],
        user_ids=user_ids.astype(str),
        item_ids=item_ids.astype(str),
        user_features=_features(user_table, user_ids),
        item_features=_features(item_table, item_ids),
        cold_items=cold,
        stats=stats,
    )


# ----------------------------------------------------------------------------- cache


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


def _save(ds: Dataset, stem: pathlib.Path) -> None:
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


def _load_cached(stem: pathlib.Path) -> Dataset | None:
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    if not (npz.exists() and js.exists()):
        return None
    try:
        meta = json.loads(js.read_text())
        with np.load(npz, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is rebuilt
    parts = {
        p: Interactions(*(a[f"{p}_{f}"] for f in ("users", "items", "ratings", "timestamps")))
        for p in PARTS
    }
    return Dataset(
        name=meta["name"], n_users=meta["n_users"], n_items=meta["n_items"], **parts,
        user_ids=a["user_ids"], item_ids=a["item_ids"],
        user_features={k: np.array(v, dtype=str) for k, v in meta["user_features"].items()},
        item_features={k: np.array(v, dtype=str) for k, v in meta["item_features"].items()},
        cold_items=a["cold_items"], stats=meta["stats"],
    )  # fmt: skip


def load(
    cfg: DataConfig, cache_dir: str | os.PathLike | None = None, cache: bool = True
) -> Dataset:
    """Loads, preprocesses and splits a dataset, through an on-disk cache.

    The cache entry (`<cache_dir>/<key>.npz` + `.json`) is keyed by the sha256 of the source
    files' bytes and of the config, and written atomically.

    Args:
      cfg: what to load.
      cache_dir: cache folder; None means `data_dir() / "cache"`.
      cache: read and write the cache.

    Returns:
      The split dataset; `stats` records the preprocessing counts and the cache key.
    """
    src = None if cfg.name == "synthetic" and cfg.path is None else resolve(cfg)
    key = cache_key(cfg, src)
    stem = pathlib.Path(cache_dir or data_dir() / "cache") / key
    if cache:
        hit = _load_cached(stem)
        if hit is not None:
            return dataclasses.replace(hit, stats={**hit.stats, "cache": "hit"})
    if src is None:
        ds = _build_synthetic(cfg)
    else:
        parts = {p: [_read(src.format, f, cfg) for f in fs] for p, fs in src.parts.items()}
        user_t, item_t = _read_features(src)
        files = [f.name for f in src.files()]
        ds = _build(cfg, parts, user_t, item_t, src.format, {"files": files})
    ds = dataclasses.replace(ds, stats={**ds.stats, "cache_key": key})
    if cache:
        _save(ds, stem)
    return dataclasses.replace(ds, stats={**ds.stats, "cache": "miss" if cache else "off"})


def info(cfg: DataConfig, cache_dir=None, cache: bool = True) -> dict:
    """Summary of a dataset: sizes, density, split sizes and preprocessing stats.

    Args:
      cfg: what to load; cache_dir, cache: as for `load`.

    Returns:
      A JSON-ready dict.
    """
    ds = load(cfg, cache_dir, cache)
    n = len(ds.train) + len(ds.valid) + len(ds.test)
    return {
        "name": ds.name,
        "users": ds.n_users,
        "items": ds.n_items,
        "interactions": n,
        "density": n / (ds.n_users * ds.n_items),
        "split": cfg.split,
        "train": len(ds.train),
        "valid": len(ds.valid),
        "test": len(ds.test),
        "cold_items": int(ds.cold_items.shape[0]),
        "user_features": sorted(ds.user_features),
        "item_features": sorted(ds.item_features),
        "stats": ds.stats,
    }
