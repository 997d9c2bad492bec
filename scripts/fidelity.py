"""Fidelity study: rank agreement of short screening budgets with training to convergence.

    python scripts/fidelity.py [--config F] [--set K=V ...] [--n-archs 24] [--budgets 5,15,45]
        [--lrs 0.01,0.003,0.001] [--max-epochs 400] [--out runs/fidelity] [-q]

Samples --n-archs architectures of the config's space (default: the default job's) plus the
presets, trains each at every --lrs value (default: each arch's own lr gene) to convergence with
early stopping, and prints the Spearman/Kendall table of `jgnas.fidelity`; writes fidelity.json and
fidelity.png to --out. Takes: about 1 hour on a 2-core CPU with the defaults and 3 lrs; a
progress bar per phase on stderr (-q: none).
"""

import argparse
import json
import pathlib
import sys

from jgnas import config as config_lib
from jgnas import experiment, fidelity
from jgnas.progress import Progress


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--n-archs", type=int, default=24)
    p.add_argument("--presets", default="mf,lightgcn,ngcf")
    p.add_argument("--budgets", default="5,15,45")
    p.add_argument("--lrs", default="", help="comma list (default: each arch's own lr)")
    p.add_argument("--max-epochs", type=int, default=400)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--patience", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/fidelity")
    p.add_argument("-q", "--quiet", action="store_true", help="no logs or progress on stderr")
    args = p.parse_args(argv)
    cfg = config_lib.load(args.config, args.set)
    fcfg = fidelity.FidelityConfig(
        n_archs=args.n_archs,
        presets=tuple(x for x in args.presets.split(",") if x),
        budgets=tuple(int(x) for x in args.budgets.split(",")),
        lrs=tuple(float(x) for x in args.lrs.split(",") if x),
        max_epochs=args.max_epochs,
        eval_every=args.eval_every,
        patience=args.patience,
        seed=args.seed,
    )
    progress = Progress(enabled=not args.quiet)
    log = experiment.quiet if args.quiet else experiment.stderr_log
    result = fidelity.run(experiment.prepare(cfg, log, progress), fcfg, log, progress)
    progress.write(progress.summary())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fidelity.json").write_text(json.dumps(result, indent=2))
    fidelity.plot(result, out / "fidelity.png")
    print("\n".join(fidelity.table(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
