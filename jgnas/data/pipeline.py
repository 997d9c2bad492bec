"""`load(cfg)`: find the files (`sources`), parse them (`readers`), preprocess, split, and cache."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jgnas.data import readers, splits
from jgnas.data.cache import cache_key, load_cached, save
from jgnas.data.config import DataConfig, data_dir
from jgnas.data.parsing import Features, RawInteractions
from jgnas.data.preprocess import collapse_duplicates, kcore_mask, sort_vocab
from jgnas.data.sources import PARTS, Sources, resolve
from jgnas.data.synthetic import synthetic
from jgnas.data.types import DataError, Dataset, Interactions


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _read(fmt: str, path: pathlib.Path, cfg: DataConfig) -> RawInteractions:
    return readers.get_format(fmt).read(path, cfg)


def _read_features(src: Sources) -> tuple[Features | None, Features | None]:
    fmt = readers.get_format(src.format)
    u = fmt.read_users(src.user_file) if src.user_file else None
    i = fmt.read_items(src.item_file) if src.item_file else None
    return u, i


# ----------------------------------------------------------------------------- building


def _features(table: Features | None, raw_ids: np.ndarray) -> dict[str, np.ndarray]:
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
    raw = RawInteractions(
        x.users.astype(np.int64), x.items.astype(np.int64), x.ratings.astype(np.float64),
        x.timestamps.astype(np.float64), np.arange(1, len(x) + 1), "<synthetic>",
    )  # fmt: skip
    return _build(cfg, {"all": [raw]}, None, None, "synthetic", {})


class _Labelled(NamedTuple):
    """Interactions with dense ids and a part label each (index into PARTS), before the final
    drop of evaluation rows whose user has no training row."""

    u: np.ndarray
    i: np.ndarray
    r: np.ndarray
    t: np.ndarray
    labels: np.ndarray
    user_ids: np.ndarray  # raw id of each dense user id
    item_ids: np.ndarray
    cold: np.ndarray  # items held out of training (cold_item split), else empty


def _build(cfg: DataConfig, parts, user_table, item_table, fmt: str, stats: dict) -> Dataset:
    """Preprocesses and splits parsed files. parts: part -> list of RawInteractions."""
    stats = dict(stats, format=fmt, split=cfg.split)
    raws = [(p, raw) for p in parts for raw in parts[p]]
    uvocab, ivocab, cols = _columns(cfg, raws, stats)
    if cfg.split == "presplit":
        x = _label_presplit(cfg, raws, cols, uvocab, ivocab, stats)
    else:
        x = _label_pooled(cfg, cols["all"], uvocab, ivocab, raws[0][1].path, stats)
    return _dataset(cfg, x, user_table, item_table, stats)


def _columns(cfg: DataConfig, raws, stats: dict):
    """Codes every file against one vocabulary, applies the rating threshold and collapses
    duplicate pairs within each part.

    Returns:
      (user vocabulary, item vocabulary, part -> columns u, i (vocabulary codes), r, t, line,
      file (index into `raws`)).
    """
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
    # Every kept interaction is a positive, whatever its rating: say how many were negative.
    stats["negative_ratings"] = int(sum(int((c["r"] < 0).sum()) for c in cols.values()))
    return uvocab, ivocab, cols


def _remap(vocab: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids for the vocabulary entries present in `codes`, in raw id order.

    Returns:
      (the raw ids kept, in dense id order; vocabulary code -> dense id, -1 where absent).
    """
    present = np.zeros(vocab.shape[0], bool)
    present[codes] = True
    order = sort_vocab(vocab)
    order = order[present[order]]
    dense = np.full(vocab.shape[0], -1, np.int64)
    dense[order] = np.arange(order.shape[0])
    return vocab[order], dense


def _core(cfg: DataConfig, base: dict, uvocab, ivocab, where: str, stats: dict):
    """k-core filters the base part (train, or all) and gives dense ids to what is left in it.

    Returns:
      (filtered base columns, user_ids, user code -> dense id, item_ids, item code -> dense id).
    """
    core = kcore_mask(base["u"], base["i"], cfg.kcore)
    stats["kcore_removed"] = int((~core).sum())
    base = {k: v[core] for k, v in base.items()}
    user_ids, udense = _remap(uvocab, base["u"])
    item_ids, idense = _remap(ivocab, base["i"])
    if user_ids.shape[0] == 0 or item_ids.shape[0] == 0:
        raise DataError(f"{where}: no interactions left after preprocessing")
    return base, user_ids, udense, item_ids, idense


def _label_pooled(cfg: DataConfig, base: dict, uvocab, ivocab, where: str, stats: dict):
    """Pooled interactions: k-core, dense ids, then a fresh split by `cfg.split`."""
    b, user_ids, udense, item_ids, idense = _core(cfg, base, uvocab, ivocab, where, stats)
    n_users, n_items = int(user_ids.shape[0]), int(item_ids.shape[0])
    u, i, r, t = udense[b["u"]], idense[b["i"]], b["r"], b["t"]
    cold = np.zeros(0, np.int32)
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
    return _Labelled(u, i, r, t, labels, user_ids, item_ids, cold)


def _drop_cross_part(cols: dict, n_items: int, stats: dict) -> None:
    """A pair may sit in one part only: later parts lose pairs already seen earlier."""
    seen = np.zeros(0, np.int64)
    cross = 0
    for part in PARTS:
        if part not in cols:
            continue
        c = cols[part]
        key = c["u"].astype(np.int64) * n_items + c["i"]
        keep = ~np.isin(key, seen)
        cross += int((~keep).sum())
        cols[part] = {k: v[keep] for k, v in c.items()}
        seen = np.union1d(seen, key[keep])
    stats["cross_part_duplicates"] = cross


def _eval_parts(cfg, raws, cols, uvocab, ivocab, udense, idense, stats) -> dict:
    """The valid and test parts of pre-split files, without rows whose user or item is not in
    the (filtered) train part: such rows fail or are dropped by `cfg.unknown` when the id is in
    no train file at all, and are dropped when preprocessing removed it."""
    known_u = np.zeros(uvocab.shape[0], bool)
    known_i = np.zeros(ivocab.shape[0], bool)
    for _, raw in [x for x in raws if x[0] == "train"]:
        known_u[np.searchsorted(uvocab, raw.users)] = True
        known_i[np.searchsorted(ivocab, raw.items)] = True
    out = {}
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
    return out


def _label_presplit(cfg: DataConfig, raws, cols: dict, uvocab, ivocab, stats: dict):
    """Pre-split files: cross-part duplicates dropped, k-core and dense ids from train, valid
    and test checked against train, and valid carved from train when there is no valid file."""
    _drop_cross_part(cols, int(ivocab.shape[0]), stats)
    where = raws[0][1].path
    b, user_ids, udense, item_ids, idense = _core(cfg, cols["train"], uvocab, ivocab, where, stats)
    out = {"train": b, **_eval_parts(cfg, raws, cols, uvocab, ivocab, udense, idense, stats)}
    for part in out:
        out[part]["u"] = udense[out[part]["u"]]
        out[part]["i"] = idense[out[part]["i"]]
    if "valid" not in out and cfg.valid_from_train > 0:
        tr = out["train"]
        v = cfg.valid_from_train
        lab = splits.split_ratio(
            tr["u"], tr["t"], int(user_ids.shape[0]), (1 - v, v, 0.0), cfg.seed
        )
        out["valid"] = {k: x[lab == splits.VALID] for k, x in tr.items()}
        out["train"] = {k: x[lab == splits.TRAIN] for k, x in tr.items()}
    present = [p for p in PARTS if p in out]
    u, i, r, t = (np.concatenate([out[p][key] for p in present]) for key in ("u", "i", "r", "t"))
    labels = np.concatenate(
        [np.full(out[p]["u"].shape[0], k, np.int8) for k, p in enumerate(PARTS) if p in out]
    )
    return _Labelled(u, i, r, t, labels, user_ids, item_ids, np.zeros(0, np.int32))


def _dataset(cfg: DataConfig, x: _Labelled, user_table, item_table, stats: dict) -> Dataset:
    """Drops evaluation rows of users without training rows and assembles the Dataset."""
    n_users, n_items = int(x.user_ids.shape[0]), int(x.item_ids.shape[0])
    labels = splits.drop_untrained(x.u, x.labels, n_users)
    dropped = labels == splits.DROPPED
    stats["eval_dropped_no_train_user"] = int(dropped.sum())
    stats["users_without_train"] = int(np.unique(x.u[dropped]).shape[0])
    parts_out = {
        p: _interactions(x.u[labels == k], x.i[labels == k], x.r[labels == k], x.t[labels == k])
        for k, p in enumerate(PARTS)
    }
    stats.update({f"n_{p}": len(v) for p, v in parts_out.items()})
    return Dataset(
        name=cfg.name,
        n_users=n_users,
        n_items=n_items,
        train=parts_out["train"],
        valid=parts_out["valid"],
        test=parts_out["test"],
        user_ids=x.user_ids.astype(str),
        item_ids=x.item_ids.astype(str),
        user_features=_features(user_table, x.user_ids),
        item_features=_features(item_table, x.item_ids),
        cold_items=x.cold,
        stats=stats,
    )


def load(
    cfg: DataConfig,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Loads, preprocesses and splits a dataset, through an on-disk cache.

    The cache entry (`<cache_dir>/<key>.npz` + `.json`) is keyed by the sha256 of the source
    files' bytes and of the config, and written atomically. A damaged entry is rebuilt with a
    one-line warning.

    Args:
      cfg: what to load.
      cache_dir: cache folder; None means `data_dir() / "cache"`.
      cache: read and write the cache.
      log: where the one-line warnings go (None: stderr).

    Returns:
      The split dataset; `stats` records the preprocessing counts and the cache key.
    """
    log = log or _stderr
    root = pathlib.Path(cache_dir or data_dir() / "cache")
    if cache and root.exists() and not root.is_dir():
        raise DataError(f"{root}: the data cache folder is a file; give a folder (--cache-dir)")
    src = None if cfg.name == "synthetic" and cfg.path is None else resolve(cfg)
    key = cache_key(cfg, src)
    stem = root / key
    if cache:
        hit = load_cached(stem, log)
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
        save(ds, stem)
    return dataclasses.replace(ds, stats={**ds.stats, "cache": "miss" if cache else "off"})


def info(cfg: DataConfig, cache_dir=None, cache: bool = True, log=None) -> dict:
    """Summary of a dataset: sizes, density, split sizes and preprocessing stats.

    Args:
      cfg: what to load; cache_dir, cache, log: as for `load`.

    Returns:
      A JSON-ready dict.
    """
    ds = load(cfg, cache_dir, cache, log)
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
