"""Strategies at an equal budget of candidate trainings, on one config (default: ml-100k).

    python scripts/compare_strategies.py [--config configs/ml100k.yaml] [--strategies ...]
        [--search-seeds 3] [--seeds 5] [--set SECTION.KEY=VALUE ...] [--out runs/compare]
        [--overwrite] [-q]

Each strategy searches --search-seeds times (search.seed, +1, ...) with the config's population
size x generations; the finalists of every search (final.top_k each) and the config's baseline
presets get the same tuning (final.lrs x final.l2s), each search's winner is its finalist with the
best tuned validation, and the winners and the baselines are retrained together over --seeds seeds
with the final budget and tested once (`jgnas.job.compare_strategies`). Prints a markdown table
(every search's winner, then each strategy's mean ± std over its searches and its signed
difference to every baseline) and writes out/compare.json. Progress bars and timings go to stderr
(-q: none).
"""

import argparse
import json
import pathlib
import sys

from jgnas import config as config_lib
from jgnas import experiment, job, report
from jgnas.progress import Progress

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k.yaml"))
    p.add_argument(
        "--strategies",
        nargs="+",
        default=["random", "regularized_evolution", "CMA_ES", "SimpleGA", "reinforce"],
    )
    p.add_argument("--search-seeds", type=int, default=3, help="searches per strategy")
    p.add_argument("--seeds", type=int, default=5, help="retraining seeds of each winner")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--overwrite", action="store_true", help="empty out/STRATEGY run dirs first")
    p.add_argument("-q", "--quiet", action="store_true", help="no logs or progress on stderr")
    args = p.parse_args(argv)
    cfg = config_lib.load(args.config, args.set)
    out = pathlib.Path(args.out)
    compared = job.compare_strategies(
        cfg,
        args.strategies,
        args.seeds,
        out,
        log=experiment.quiet if args.quiet else experiment.stderr_log,
        overwrite=args.overwrite,
        progress=Progress(enabled=not args.quiet),
        search_seeds=args.search_seeds,
    )
    print("\n".join(report.strategies_table(compared, f"{cfg.train.metric}@{cfg.train.metric_k}")))
    (out / "compare.json").write_text(json.dumps(compared, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
