"""Quality check: the mf and lightgcn presets on ml-100k, test Recall@20 / NDCG@20 over seeds.

Protocol: per-user random 80/10/10 split (seed 0), full ranking; early stopping on validation
NDCG@20; test ranking excludes train and validation items. The seeds of one row are trained
together as a population through the Engine (same arch, different keys). A numpy popularity
baseline, scored both in numpy and through `metrics.rank_metrics`, checks the metric inputs.

Usage (needs `jgnas data fetch ml-100k` first; times on 2 shared CPU cores):
  python scripts/quality.py          # mf lr 1e-3 (published), lightgcn lr 1e-2 (tuned): ~3 min
  python scripts/quality.py --rows lightgcn:0.001:300 --seeds 2     # published lr, ~5 min
  python scripts/quality.py --rows lightgcn:0.001:400 --seeds 1 --curve  # a convergence curve
Each row is PRESET:LR:EPOCHS. Early stopping selects the parameters but does not shorten the run
(the epochs are one `lax.scan`), so a row costs seeds x epochs (~0.5 s per lightgcn epoch here).
Expected (LightGCN paper protocol on ml-100k): lightgcn Recall@20 ~0.32-0.37, NDCG@20 ~0.27-0.32.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from jgnas import data as data_lib
from jgnas import metrics
from jgnas.space import Space, stack
from jgnas.train import Engine, TrainConfig, make_data


def popularity(ds, ks=(20,)) -> dict:
    """Most-popular baseline on test, in plain numpy (stable ties: lower item index first)."""
    count = np.bincount(ds.train.items, minlength=ds.n_items).astype(np.float64)
    seen = [set() for _ in range(ds.n_users)]
    for part in (ds.train, ds.valid):
        for u, i in zip(part.users, part.items):
            seen[u].add(int(i))
    held = [set() for _ in range(ds.n_users)]
    for u, i in zip(ds.test.users, ds.test.items):
        if int(i) not in seen[u]:
            held[u].add(int(i))
    order = np.argsort(-count, kind="stable")
    k = max(ks)
    rec, ndcg = [], []
    for u in range(ds.n_users):
        if not held[u]:
            continue
        top = [i for i in order[: k + len(seen[u])] if i not in seen[u]][:k]
        hits = np.array([i in held[u] for i in top], np.float64)
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        rec.append(hits.sum() / len(held[u]))
        ndcg.append((hits * disc).sum() / disc[: min(len(held[u]), k)].sum())
    # The same scores through the library's metric code (user 1 x item popularity).
    test_set = metrics.make_eval_set(ds.n_users, ds.n_items, ds.test, [ds.train, ds.valid])
    lib = metrics.rank_metrics(np.ones((ds.n_users, 1), np.float32),
                               count[:, None].astype(np.float32), test_set, ks)  # fmt: skip
    return {"recall": float(np.mean(rec)), "ndcg": float(np.mean(ndcg)), "users": len(rec),
            "lib_recall": float(lib["recall"][-1]), "lib_ndcg": float(lib["ndcg"][-1])}  # fmt: skip


def run_preset(ds, data, test_set, preset: str, lr: float, epochs: int, args) -> dict:
    """Trains `args.seeds` copies of the preset (one population) and scores them on test."""
    ops = ("lightgcn",) if preset == "mf" else (preset,)
    space = Space(ops=ops, max_layers=3, dims=(64,))
    arch = space.preset(preset).replace(lr=np.float32(lr))
    archs = stack([arch] * args.seeds)
    cfg = TrainConfig(epochs=epochs, eval_every=args.eval_every, patience=args.patience)
    engine = Engine(cfg, space, data)
    keys = jax.random.split(jax.random.key(args.key), args.seeds)
    t = time.perf_counter()
    res = jax.block_until_ready(engine.train(keys, archs))
    train_s = time.perf_counter() - t
    test = engine.evaluate(res.params, archs, test_set)
    k = cfg.ks.index(20)
    row = {
        "preset": preset,
        "lr": lr,
        "epochs": epochs,
        "seeds": args.seeds,
        "train_s": train_s,
        "best_epoch": np.asarray(res.best_epoch).tolist(),
        "valid_ndcg20": np.asarray(res.best["ndcg"][:, k]).tolist(),
        "test_recall20": np.asarray(test["recall"][:, k]).tolist(),
        "test_ndcg20": np.asarray(test["ndcg"][:, k]).tolist(),
        "failed": np.asarray(res.failed).tolist(),
        "curve_valid_ndcg20": np.asarray(res.valid["ndcg"][:, :, k].mean(0)).tolist(),
        "curve_loss": np.asarray(res.loss.mean(0)).tolist(),
    }
    if args.curve:
        every = args.eval_every or epochs
        for r, v in enumerate(row["curve_valid_ndcg20"]):
            loss = row["curve_loss"][(r + 1) * every - 1]
            print(f"  epoch {(r + 1) * every:4d}  loss {loss:.4f}  valid ndcg@20 {v:.4f}")
    return row


def _ms(xs) -> str:
    return f"{np.mean(xs):.4f} ± {np.std(xs):.4f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", default="mf:0.001:150,lightgcn:0.01:80",
                   help="PRESET:LR:EPOCHS,... (lr 1e-3 is the published setting)")  # fmt: skip
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--key", type=int, default=0, help="PRNG seed of the members' keys")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--patience", type=int, default=5, help="evaluations without improvement")
    p.add_argument("--curve", action="store_true", help="print mean valid NDCG@20 per evaluation")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    print(f"device {jax.devices()[0].device_kind}, jax {jax.__version__}")
    ds = data_lib.load(data_lib.DataConfig(name="ml-100k", seed=args.split_seed))
    data = make_data(ds, TrainConfig())
    test_set = metrics.make_eval_set(ds.n_users, ds.n_items, ds.test, [ds.train, ds.valid])
    print(f"ml-100k: {ds.n_users} users, {ds.n_items} items, train/valid/test "
          f"{len(ds.train)}/{len(ds.valid)}/{len(ds.test)}, {test_set.n_eval} test users")  # fmt: skip
    pop = popularity(ds)
    print(f"popularity  test recall@20 {pop['recall']:.4f}  ndcg@20 {pop['ndcg']:.4f}  "
          f"(library metrics: {pop['lib_recall']:.4f} / {pop['lib_ndcg']:.4f})")  # fmt: skip
    rows = []
    for spec in args.rows.split(","):
        try:
            preset, lr, epochs = spec.split(":")
            lr, epochs = float(lr), int(epochs)
        except ValueError:
            p.error(f"--rows: {spec!r} is not PRESET:LR:EPOCHS")
        print(f"[{preset} lr={lr:g}] {args.seeds} seeds, {epochs} epochs", flush=True)
        row = run_preset(ds, data, test_set, preset, lr, epochs, args)
        rows.append(row)
        print(f"{preset:>9} lr={lr:<6g} test recall@20 {_ms(row['test_recall20'])}  "
              f"ndcg@20 {_ms(row['test_ndcg20'])}  valid ndcg@20 "
              f"{_ms(row['valid_ndcg20'])}  best epoch {row['best_epoch']}  "
              f"{row['train_s']:.0f}s", flush=True)  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "popularity": pop, "rows": rows}, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
