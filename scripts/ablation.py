"""Where the searched winner's gain comes from: `python scripts/ablation.py RUN_DIR [flags]`.

Trains the 2^3 mixes of (architecture, features, objective) taken from the run's winner or from the
`lightgcn` preset (`jgnas.ablation`), each tuned over the run's own lr x L2 grid (final.lrs,
final.l2s) and retrained over its final.seeds seeds, and writes ablation.md / ablation.json into
the run directory. Flags: --baseline PRESET, --seeds N, --set SECTION.KEY=VALUE (repeatable, on
top of the run's config.yaml), -q.
"""

import argparse
import json
import pathlib
import sys

from jgnas import ablation, experiment
from jgnas import config as config_lib
from jgnas.progress import Progress


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=pathlib.Path)
    ap.add_argument("--baseline", default="lightgcn")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = experiment.quiet if args.quiet else experiment.stderr_log
    progress = Progress(enabled=not args.quiet)  # a bar per phase, its time, on stderr
    cfg = config_lib.load(args.run_dir / "config.yaml", args.set)
    ctx = experiment.prepare(cfg, log, progress)
    winner = ctx.space.from_json((args.run_dir / "best_arch.json").read_text(), "best_arch.json")
    f = cfg.final
    rows = ablation.run(ctx, winner, baseline=args.baseline, lrs=f.lrs, l2s=f.l2s,
                        tune_seeds=f.tune_seeds, seeds=args.seeds or f.seeds,
                        seed=cfg.search.seed, chunk_size=cfg.search.chunk_size, log=log,
                        progress=progress)  # fmt: skip
    progress.write(progress.summary())
    metric = f"ndcg@{cfg.train.metric_k}"
    md = ablation.table(rows, metric)
    (args.run_dir / "ablation.md").write_text(md)
    (args.run_dir / "ablation.json").write_text(json.dumps(rows, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
