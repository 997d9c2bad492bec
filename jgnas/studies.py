"""Fixed-architecture studies behind the README's tables: presets trained to convergence next to a
popularity baseline (`scripts/quality.py`), and ID vs text features on warm and cold-start items
(`scripts/coldstart.py`).

Protocol: the standard splits and test sets (`metrics.test_eval_set`: test ranked over all items,
train and validation items excluded; `features.cold_eval_sets` on the cold split), early stopping
on validation NDCG@20. The seeds of one row train together as one population through the Engine
(same arch, different keys). Every `mean ± std` is `experiment.mean_std`: the population std
(ddof = 0) over seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import numpy as np

from jgnas import data as data_lib
from jgnas import experiment, features
from jgnas import metrics as metrics_lib
from jgnas import text as text_lib
from jgnas.experiment import Log, format_mean_std, mean_std, metrics_at
from jgnas.space import Space, stack, wide_space
from jgnas.train import Engine, TrainConfig, TrainData, make_data

K = 20
# The batch both studies were measured with (TrainConfig's default was 2048 then): explicit here.
BATCH_SIZE = 2048
COLDSTART_PRESETS = ("mf", "lightgcn", "lightgcn+text", "lightgcn-textonly", "mf+text")
# The cold-start space, pinned: the `Space(text=True)` of the time the README's table was measured
# (every built-in op, 4 layers, d_max 128). d_max and the layers fix the parameter shapes and so
# the initial draws; the presets pick d = 64 inside it.
COLDSTART_SPACE = wide_space(text=True)


def pm(values: Sequence[float]) -> str:
    """`mean ± std` of per-seed values, 4 decimals (`experiment.mean_std`: population std)."""
    return format_mean_std(mean_std([{"v": float(v)} for v in values])["v"])


# ---- presets to convergence ----------------------------------------------------------------------


def popularity(dataset: data_lib.Dataset, ks: Sequence[int] = (K,)) -> dict:
    """Most-popular baseline on test, in plain numpy (stable ties: lower item index first), and the
    same scores through the library's metrics (`lib_*`): a check of the metric inputs."""
    count = np.bincount(dataset.train.items, minlength=dataset.n_items).astype(np.float64)
    seen = [set() for _ in range(dataset.n_users)]
    for part in (dataset.train, dataset.valid):
        for u, i in zip(part.users, part.items):
            seen[u].add(int(i))
    held = [set() for _ in range(dataset.n_users)]
    for u, i in zip(dataset.test.users, dataset.test.items):
        if int(i) not in seen[u]:
            held[u].add(int(i))
    order = np.argsort(-count, kind="stable")
    k = max(ks)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    rec, ndcg = [], []
    for u in range(dataset.n_users):
        if not held[u]:
            continue
        top = [i for i in order[: k + len(seen[u])] if i not in seen[u]][:k]  # < k if few left
        hits = np.array([i in held[u] for i in top], np.float64)
        rec.append(hits.sum() / len(held[u]))
        ndcg.append((hits * disc[: len(hits)]).sum() / disc[: min(len(held[u]), k)].sum())
    # The same ranking through the library's metric code (user 1 x item popularity).
    lib = metrics_lib.rank_metrics(
        np.ones((dataset.n_users, 1), np.float32),
        count[:, None].astype(np.float32),
        metrics_lib.test_eval_set(dataset),
        tuple(ks),
    )
    return {"recall": float(np.mean(rec)), "ndcg": float(np.mean(ndcg)), "users": len(rec),
            "lib_recall": float(lib["recall"][-1]), "lib_ndcg": float(lib["ndcg"][-1])}  # fmt: skip


def parse_rows(spec: str) -> list[tuple[str, float, int]]:
    """ "PRESET:LR:EPOCHS,..." -> [(preset, lr, epochs)]; ValueError names a bad entry."""
    rows = []
    for entry in spec.split(","):
        try:
            preset, lr, epochs = entry.split(":")
            rows.append((preset, float(lr), int(epochs)))
        except ValueError:
            raise ValueError(f"--rows: {entry!r} is not PRESET:LR:EPOCHS") from None
    return rows


def train_preset(
    data: TrainData,
    test_set: metrics_lib.EvalSet,
    preset: str,
    lr: float,
    epochs: int,
    *,
    seeds: int,
    key: int,
    eval_every: int,
    patience: int,
) -> dict:
    """Trains `seeds` copies of the preset (one population, keys split from `key`), tests each.

    Returns:
      A JSON-ready row: per-seed test/valid values, `test`/`valid` (`mean_std` of every metric@k),
      best epochs, failures and the seed-mean curves of validation NDCG@20 and loss.
    """
    ops = ("lightgcn",) if preset == "mf" else (preset,)
    space = Space(ops=ops, max_layers=3, dims=(64,))
    archs = stack([space.preset(preset).replace(lr=np.float32(lr))] * seeds)
    cfg = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, eval_every=eval_every,
                      patience=patience)  # fmt: skip
    engine = Engine(cfg, space, data)
    t = time.perf_counter()
    res = jax.block_until_ready(engine.train(jax.random.split(jax.random.key(key), seeds), archs))
    train_s = time.perf_counter() - t
    test = engine.evaluate(res.params, archs, test_set)
    k = cfg.ks.index(K)
    return {
        "preset": preset, "lr": lr, "epochs": epochs, "seeds": seeds, "train_s": train_s,
        "best_epoch": np.asarray(res.best_epoch).tolist(),
        "valid_ndcg20": np.asarray(res.best["ndcg"][:, k]).tolist(),
        "test_recall20": np.asarray(test["recall"][:, k]).tolist(),
        "test_ndcg20": np.asarray(test["ndcg"][:, k]).tolist(),
        "test": mean_std([metrics_at(test, m, cfg.ks) for m in range(seeds)]),
        "valid": mean_std([metrics_at(res.best, m, cfg.ks) for m in range(seeds)]),
        "failed": np.asarray(res.failed).tolist(),
        "curve_valid_ndcg20": np.asarray(res.valid["ndcg"][:, :, k].mean(0)).tolist(),
        "curve_loss": np.asarray(res.loss.mean(0)).tolist(),
    }  # fmt: skip


def curve_lines(row: dict, eval_every: int) -> list[str]:
    """Mean validation NDCG@20 (and the loss of that epoch) at each evaluation of a row."""
    every = eval_every or row["epochs"]
    return [
        f"  epoch {(r + 1) * every:4d}  loss {row['curve_loss'][(r + 1) * every - 1]:.4f}  "
        f"valid ndcg@20 {v:.4f}"
        for r, v in enumerate(row["curve_valid_ndcg20"])
    ]


def quality(
    data_cfg: data_lib.DataConfig,
    rows: Sequence[tuple[str, float, int]],
    *,
    seeds: int = 3,
    key: int = 0,
    eval_every: int = 10,
    patience: int = 5,
    curve: bool = False,
    log: Log = experiment.stderr_log,
) -> dict:
    """The popularity baseline and each (preset, lr, epochs) row over seeds, on test.

    Returns:
      {dataset: sizes, popularity: `popularity`, rows: `train_preset` rows}; `log` gets one line
      per row (and its curve when `curve`).
    """
    ds = data_lib.load(data_cfg)
    data = make_data(ds, TrainConfig(batch_size=BATCH_SIZE))  # graph, sampler, valid set
    test_set = metrics_lib.test_eval_set(ds)
    sizes = {"name": ds.name, "users": ds.n_users, "items": ds.n_items, "train": len(ds.train),
             "valid": len(ds.valid), "test": len(ds.test),
             "test_users": test_set.n_eval}  # fmt: skip
    log(f"{ds.name}: {ds.n_users} users, {ds.n_items} items, train/valid/test {len(ds.train)}/"
        f"{len(ds.valid)}/{len(ds.test)}, {sizes['test_users']} test users")  # fmt: skip
    pop = popularity(ds)
    log(f"popularity  test recall@20 {pop['recall']:.4f}  ndcg@20 {pop['ndcg']:.4f}  "
        f"(library metrics: {pop['lib_recall']:.4f} / {pop['lib_ndcg']:.4f})")  # fmt: skip
    out = []
    for preset, lr, epochs in rows:
        log(f"[{preset} lr={lr:g}] {seeds} seeds, {epochs} epochs")
        row = train_preset(data, test_set, preset, lr, epochs, seeds=seeds, key=key,
                           eval_every=eval_every, patience=patience)  # fmt: skip
        for line in curve_lines(row, eval_every) if curve else ():
            log(line)
        log(f"{preset:>9} lr={lr:<6g} test recall@20 {pm(row['test_recall20'])}  ndcg@20 "
            f"{pm(row['test_ndcg20'])}  valid ndcg@20 {pm(row['valid_ndcg20'])}  best epoch "
            f"{row['best_epoch']}  {row['train_s']:.0f}s")  # fmt: skip
        out.append(row)
    return {"dataset": sizes, "popularity": pop, "rows": out}


# ---- text features and cold start ----------------------------------------------------------------


def coldstart_train_config(
    epochs: int, eval_every: int, patience: int, batch_size: int = BATCH_SIZE
) -> TrainConfig:
    """Early stopping on validation NDCG@20; Recall and NDCG at 10 and 20."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, eval_every=eval_every,
                       patience=patience, ks=(10, K), metric="ndcg", metric_k=K)  # fmt: skip


def encode_throughput(encoder, dataset, template: str, n: int, batch_size: int) -> float:
    """Sentences/s of uncached encoding of n item texts, after one warm-up pass (compiles)."""
    texts = text_lib.render(template, dataset.item_features, dataset.n_items)[:n]
    text_lib.encode(encoder, texts, batch_size=batch_size)
    start = time.perf_counter()
    text_lib.encode(encoder, texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - start)


def train_split(
    ds,
    text,
    presets: Sequence[str],
    *,
    seeds: int,
    lr: float,
    cfg: TrainConfig,
    key: jax.Array,
    negatives: str = "all",
    log: Log = experiment.stderr_log,
) -> dict:
    """Trains presets x seeds as one population on one split and tests it on the split's sets
    (the cold split: `features.cold_eval_sets`; else the standard test set, named "test").

    Returns:
      preset -> {"SET/METRIC@20": per-seed values, "valid_ndcg@20", "best_epoch", "failed"}.
    """
    space = COLDSTART_SPACE
    archs = stack(
        [space.preset(p).replace(lr=np.float32(lr)) for p in presets for _ in range(seeds)]
    )
    data = make_data(ds, cfg, text=text)
    if negatives == "warm" and ds.cold_items.size:
        data = data.replace(sampler=features.warm_negative_sampler(ds, cfg.reject_positives))
    engine = Engine(cfg, space, data)
    start = time.perf_counter()
    result = jax.block_until_ready(engine.train(jax.random.split(key, archs.size), archs))
    log(f"  trained {archs.size} members in {time.perf_counter() - start:.0f} s")
    if ds.cold_items.size:
        sets = features.cold_eval_sets(ds, cfg.eval_block)
    else:
        sets = {"test": metrics_lib.test_eval_set(ds, cfg.eval_block)}
    k = cfg.ks.index(K)
    per_seed = {}  # "name" -> [presets, seeds]
    for name, eval_set in sets.items():
        m = engine.evaluate(result.params, archs, eval_set)
        log(f"  {name}: {eval_set.n_eval} users evaluated")
        for metric in ("recall", "ndcg"):
            per_seed[f"{name}/{metric}@{K}"] = np.asarray(m[metric][:, k])
    per_seed.update({"valid_ndcg@20": result.fitness, "best_epoch": result.best_epoch,
                     "failed": result.failed})  # fmt: skip
    out: dict = {p: {} for p in presets}
    for name, arr in per_seed.items():
        for p, v in zip(presets, np.asarray(arr).reshape(len(presets), seeds), strict=True):
            out[p][name] = v.tolist()
    return out


def coldstart(
    data_cfg: data_lib.DataConfig,
    text_cfg: features.TextConfig,
    presets: Sequence[str] = COLDSTART_PRESETS,
    *,
    seeds: int = 3,
    lr: float = 1e-2,
    cfg: TrainConfig,
    negatives: str = "all",
    cold_item_frac: float = 0.2,
    n_throughput: int = 1024,
    log: Log = experiment.stderr_log,
) -> dict:
    """ID vs text features: every preset over seeds on the warm split (`ratio`) and the cold one
    (`cold_item`, `cold_item_frac` of the items out of training), with `text_cfg`'s encoder.

    negatives: "all" (the Engine's BPR negatives, cold items included) or "warm" (a strict cold
    start: training never touches a cold item).

    Returns:
      {"results": split -> `train_split`, "encode_sentences_per_s": item-text throughput}.
    """
    text_cfg = dataclasses.replace(text_cfg, enabled=True)
    encoder = text_lib.load_encoder(text_cfg.model_path)
    results, sps, key = {}, 0.0, jax.random.key(0)
    for split in ("ratio", "cold_item"):
        ds = data_lib.load(
            dataclasses.replace(data_cfg, split=split, cold_item_frac=cold_item_frac)
        )
        log(
            f"[{split}] {ds.n_users} users, {ds.n_items} items, {len(ds.train)} train, "
            f"{len(ds.valid)} valid, {len(ds.test)} test, {ds.cold_items.size} cold items"
        )
        if split == "ratio":
            sps = encode_throughput(
                encoder, ds, text_cfg.item_template, n_throughput, text_cfg.batch_size
            )
            log(f"encoding throughput: {sps:.0f} sentences/s (item texts, uncached, after warm-up)")
        text = features.node_text_matrix(ds, text_cfg, log=log, encoder=encoder)
        if negatives == "warm" and ds.cold_items.size:
            ds, text = features.cold_items_last(ds, text)
        results[split] = train_split(ds, text, presets, seeds=seeds, lr=lr, cfg=cfg,
                                     key=jax.random.fold_in(key, len(results)),
                                     negatives=negatives, log=log)  # fmt: skip
    return {"results": results, "encode_sentences_per_s": sps}


COLDSTART_COLUMNS = (
    ("warm NDCG@20", "ratio", "test/ndcg"),
    ("warm Recall@20", "ratio", "test/recall"),
    ("coldsplit warm R@20", "cold_item", "warm/recall"),
    ("cold R@20 (all)", "cold_item", "cold_all/recall"),
    ("cold N@20 (all)", "cold_item", "cold_all/ndcg"),
    ("cold R@20 (cold only)", "cold_item", "cold_only/recall"),
    ("cold N@20 (cold only)", "cold_item", "cold_only/ndcg"),
)


def coldstart_table(results: dict, presets: Sequence[str], *, lr: float, epochs: int,
                    negatives: str) -> list[str]:  # fmt: skip
    """The printed report: how models were selected, then a markdown table with one row per preset,
    `COLDSTART_COLUMNS` as `mean ± std` over seeds, and the mean best epoch on each split (and the
    failed members, if any)."""
    seeds = len(results["ratio"][presets[0]]["best_epoch"])
    lines = [
        "",
        "Model selection: validation NDCG@20. On the warm split validation holds warm "
        "interactions only; on the cold split it holds warm valid interactions plus every "
        "interaction of the valid half of the cold items (ranked over all items), so it "
        "rewards cold-item ranking too.",
        f"mean ± std (population std, ddof=0) over {seeds} seed(s), lr {lr:g}, <= {epochs} "
        f"epochs; cold-split BPR negatives over {negatives} items",
        "",
    ]
    heads = [h for h, _, _ in COLDSTART_COLUMNS]
    lines.append("| model | " + " | ".join(heads) + " | best epoch (warm/cold) |")
    lines.append("|---" * (len(heads) + 2) + "|")
    for p in presets:
        cells = [pm(results[s][p][f"{c}@{K}"]) for _, s, c in COLDSTART_COLUMNS]
        epochs_at = "/".join(
            str(int(np.mean(results[s][p]["best_epoch"]))) for s in ("ratio", "cold_item")
        )
        bad = sum(sum(results[s][p]["failed"]) for s in results)
        lines.append(f"| {p} | " + " | ".join(cells) + f" | {epochs_at}"
                     f"{f' ({bad} failed)' if bad else ''} |")  # fmt: skip
    return lines
