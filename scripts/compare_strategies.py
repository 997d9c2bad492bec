"""Strategies at an equal budget of candidate trainings, on one config (default: ml-100k).

    python scripts/compare_strategies.py [--config configs/ml100k.yaml] [--strategies ...]
        [--seeds 5] [--set SECTION.KEY=VALUE ...] [--out runs/compare]

Each strategy searches with the config's population size x generations; then every strategy's
winner (by validation fitness) and the config's baseline presets are retrained together over
--seeds seeds with the final budget and tested once. Prints a markdown table and writes JSON.
"""

import argparse
import dataclasses
import json
import pathlib
import sys

from jgnas import config as config_lib
from jgnas import experiment
from jgnas.search import loop

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k.yaml"))
    p.add_argument(
        "--strategies", nargs="+", default=["random", "regularized_evolution", "CMA_ES", "SimpleGA"]
    )
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--out", default="runs/compare")
    args = p.parse_args()
    cfg = config_lib.load(args.config, args.set)
    out = pathlib.Path(args.out)
    ctx = experiment.prepare(cfg)
    fit = f"{cfg.train.metric}@{cfg.train.metric_k}"
    searched, winners = {}, []
    for name in args.strategies:
        c = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, strategy=name))
        archive = loop.search(dataclasses.replace(ctx, cfg=c), out / name)
        best = loop.top_archs(archive, 1)[0]
        searched[name] = {
            "best_valid": best.fitness,
            "describe": best.describe,
            "trained": sum(not r.cached for r in archive),
            "evaluated": len(archive),
        }
        winners.append((name, best.arch))
    baselines = [(b, ctx.space.preset(b)) for b in cfg.final.baselines]
    rows = experiment.retrain_and_test(
        ctx,
        winners + baselines,
        seeds=args.seeds,
        train_cfg=experiment.final_train_config(cfg.train, cfg.final),
        seed=cfg.search.seed,
        chunk_size=cfg.search.chunk_size,
    ).rows
    print(
        f"| strategy / preset | search best valid {fit} | evaluated (trained) | test recall@20 | test ndcg@20 | arch |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        s = searched.get(r["label"])
        head = f"{s['best_valid']:.4f} | {s['evaluated']} ({s['trained']})" if s else "- | -"
        t = r["test"]
        print(
            f"| {r['label']} | {head} | {t['recall@20']['mean']:.4f} ± {t['recall@20']['std']:.4f} | "
            f"{t['ndcg@20']['mean']:.4f} ± {t['ndcg@20']['std']:.4f} | {r['describe']} |"
        )
    (out / "compare.json").write_text(json.dumps({"searched": searched, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
