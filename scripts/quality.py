"""Quality check: the mf and lightgcn presets on ml-100k, test Recall@20 / NDCG@20 over seeds.

Protocol (see jgnas.studies): per-user random 80/10/10 split (seed 0), full ranking; early stopping
on validation NDCG@20; test ranking excludes train and validation items; mean ± population std
over seeds. A numpy popularity baseline, scored in numpy and through the library, checks the
metric inputs.

Usage (needs `jgnas data fetch ml-100k` first; times on 2 shared CPU cores):
  python scripts/quality.py          # mf lr 1e-3 (published), lightgcn lr 1e-2 (tuned): ~3 min
  python scripts/quality.py --rows lightgcn:0.001:300 --seeds 2     # published lr, ~5 min
  python scripts/quality.py --rows lightgcn:0.001:400 --seeds 1 --curve  # a convergence curve
  python scripts/quality.py --config configs/tiny.yaml --rows mf:0.01:2 --seeds 2  # smoke run
Each row is PRESET:LR:EPOCHS. Early stopping selects the parameters but does not shorten the run
(the epochs are one `lax.scan`), so a row costs seeds x epochs (~0.5 s per lightgcn epoch here).
Expected (LightGCN paper protocol on ml-100k): lightgcn Recall@20 ~0.32-0.37, NDCG@20 ~0.27-0.32.
"""

import argparse
import dataclasses
import json

import jax

from jgnas import config as config_lib
from jgnas import studies


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
    p.add_argument("--config", default=None, help="take the data section of this config")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    try:
        rows = studies.parse_rows(args.rows)
    except ValueError as e:
        p.error(str(e))
    print(f"device {jax.devices()[0].device_kind}, jax {jax.__version__}")
    data_cfg = config_lib.load(args.config).data  # no config: the defaults, ml-100k
    out = studies.quality(
        dataclasses.replace(data_cfg, seed=args.split_seed), rows, seeds=args.seeds,
        key=args.key, eval_every=args.eval_every, patience=args.patience, curve=args.curve,
        log=lambda s: print(s, flush=True),
    )  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), **out}, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
