"""What lifts LightGCN on a dataset: one gene changed at a time (inputs, objective, width, depth).

    python scripts/lightgcn_variants.py [--config configs/ml100k.yaml] [--lr 3e-3] [--seeds 1]
        [--variants bpr,ts,ts_sm16_t0.5,...] [--set SECTION.KEY=VALUE ...] [--out F.json] [-q]

Every variant is the `lightgcn` preset (3 layers, mean, d 64, BPR with one uniform negative) with
the genes its row names changed, at one learning rate (--lr), trained with the config's final
budget (final.epochs, eval_every, patience: early stopping on validation) over --seeds seeds, all
variants as one population, then tested once (`jgnas.experiment.retrain_and_test`). It prints a
markdown table with each variant's signed difference to the `bpr` row (the preset itself) and
writes the rows to --out. It searches nothing: it maps where the search space's gains are.
Takes: about 1 minute per variant and seed on a 2-core CPU (ml-100k, lr 3e-3).
"""

import argparse
import json
import pathlib
import sys

from jgnas import config as config_lib
from jgnas import experiment
from jgnas.presets import PRESETS
from jgnas.progress import Progress

ROOT = pathlib.Path(__file__).resolve().parent.parent
SM = {"loss": "softmax", "negatives": 16}
TS = {"features": "id+text+side"}


def _norm(layers):
    return {"layers": [dict(layer, norm="l2") for layer in layers]}


#: name -> the genes changed from the lightgcn preset (dicts merged into its arch dict).
VARIANTS = {
    "bpr": {},
    "text": {"features": "id+text"},
    "side": {"features": "id+side"},
    "ts": TS,
    "d128": {"dim": 128},
    "ts_d128": {**TS, "dim": 128},
    "text_d128": {"features": "id+text", "dim": 128},
    "bpr_k16": {"negatives": 16},
    "pop": {**TS, "sampler": "popularity"},
    "ssl0.05": {"ssl": 0.05},
    "ssl0.2": {"ssl": 0.2},
    "ssl0.5": {"ssl": 0.5},
    "text_ssl0.05": {"ssl": 0.05, "features": "id+text"},
    "text_ssl0.2": {"ssl": 0.2, "features": "id+text"},
    "sm16_t0.1": {**SM, "temperature": 0.1},
    "sm16_t0.2": {**SM, "temperature": 0.2},
    "sm16_t0.5": {**SM, "temperature": 0.5},
    "text_sm16_t0.5": {**SM, "temperature": 0.5, "features": "id+text"},
    "ts_sm16_t0.5": {**SM, "temperature": 0.5, **TS},
    "ts_2L": {**TS, "depth": 2},
    "ts_sum": {**TS, "combine": "sum"},
    "ts_concat": {**TS, "combine": "concat"},
    "ts_l2n": {**TS, **_norm(PRESETS["lightgcn"]["layers"])},
    "ts_drop0.1": {**TS, "dropout": 0.1},
    "dns4": {"loss": "dns", "negatives": 4},
    "dns16": {"loss": "dns", "negatives": 16},
    "text_dns4": {"loss": "dns", "negatives": 4, "features": "id+text"},
    "text_dns16": {"loss": "dns", "negatives": 16, "features": "id+text"},
    "ts_sm16_t0.2": {**SM, "temperature": 0.2, **TS},
    "ts_sm4_t0.5": {**SM, "negatives": 4, "temperature": 0.5, **TS},
    "ts_sm16_t0.5_d128": {**SM, "temperature": 0.5, **TS, "dim": 128},
    "ts_sm16_t0.5_sum": {**SM, "temperature": 0.5, **TS, "combine": "sum"},
}


def variant_dict(name: str, lr: float) -> dict:
    d = {**PRESETS["lightgcn"], "lr": lr, **VARIANTS[name]}
    d["layers"] = d["layers"][: d["depth"]]
    return d


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k.yaml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default="")
    p.add_argument("-q", "--quiet", action="store_true", help="no logs or progress on stderr")
    args = p.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    if "bpr" not in names:
        names = ["bpr", *names]
    cfg = config_lib.load(args.config, args.set)
    progress = Progress(enabled=not args.quiet)
    log = experiment.quiet if args.quiet else experiment.stderr_log
    ctx = experiment.prepare(cfg, log, progress)
    try:
        cands = [(n, ctx.space.from_dict(variant_dict(n, args.lr), where=n)) for n in names]
    except ValueError as e:  # a variant this config's space cannot hold, in one line
        raise SystemExit(f"--variants: {e}") from None
    rows = experiment.retrain_and_test(
        ctx,
        cands,
        seeds=args.seeds,
        train_cfg=experiment.final_train_config(cfg.train, cfg.final),
        seed=args.seed,
        chunk_size=cfg.search.chunk_size,
        log=log,
        progress=progress,
    ).rows
    k = cfg.train.metric_k
    base = rows[0]["test"][f"ndcg@{k}"]["mean"]
    print(f"| variant | arch | best epoch | valid ndcg@{k} | test recall@{k} | test ndcg@{k} | vs bpr |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        t, v = r["test"], r["valid"][f"ndcg@{k}"]["mean"]
        n = t[f"ndcg@{k}"]["mean"]
        print(
            f"| {r['label']} | {r['describe']} | {'/'.join(map(str, r['best_epoch']))} | "
            f"{v:.4f} | {t[f'recall@{k}']['mean']:.4f} | {n:.4f} | {n / base - 1:+.1%} |"
        )
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
