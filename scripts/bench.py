"""Throughput, compile time, memory and evaluation time of the population engine (see jgnas.bench).

Usage (needs `jgnas data fetch ml-100k` first; --config takes the data section of a config):
  python scripts/bench.py --quick --out bench.json      # ~2-3 min on 2 CPU cores
  python scripts/bench.py --out bench.json              # ~10 min on 2 CPU cores
  python scripts/bench.py --full                        # + vmapped chunks of the mixed population
  python scripts/bench.py --pops lightgcn,default --P 8 --chunks 1,8 --vmap-mixed --straight-max 1 \
      --micro-reps 0 --eval-p 100                       # chunk of 8 vs solo (issue 12), ~3 min
  python scripts/bench.py --gpu-profile --out bench.json  # P in {1, 8, 64, 128}, GPU targets
  python scripts/bench.py --quick --config configs/tiny.yaml  # a smoke run on a tiny graph
  python scripts/bench.py --scale gowalla --out scale.json  # gowalla size: s/epoch, eval, RSS
  python scripts/bench.py --peer recbole --out peer.json  # mf/lightgcn/ngcf vs RecBole, ~6 min
"""

import argparse
import pathlib
import sys

from jgnas import bench
from jgnas import config as config_lib
from jgnas.data import synth


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ints = lambda s: tuple(int(x) for x in s.split(","))  # noqa: E731
    p.add_argument("--P", type=ints, default=None, help="population sizes (default 1,8,32)")
    p.add_argument("--chunks", type=ints, default=(1, 8, 0), help="chunk sizes (0 = P)")
    p.add_argument("--eval-p", type=int, default=32, help="members in the evaluation timing")
    p.add_argument("--pops", type=lambda s: tuple(s.split(",")), default=bench.BenchConfig.pops)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0, help="members' keys, mixed sample, data split")
    p.add_argument("--straight-max", type=int, default=None, help="straightforward candidates")
    p.add_argument("--straight-own-dim", action="store_true", help="naive models at own width")
    p.add_argument("--budget-s", type=float, default=None, help="max seconds per configuration")
    p.add_argument("--micro-reps", type=int, default=5, help="0 skips the micro-benchmark")
    p.add_argument("--vmap-mixed", action="store_true", help="run vmapped mixed chunks on CPU")
    p.add_argument("--quick", action="store_true", help="~2-3 min CPU version")
    p.add_argument("--full", action="store_true", help="P up to 128, vmapped mixed chunks")
    p.add_argument("--gpu-profile", action="store_true", help="P in 1,8,64,128 for a GPU")
    p.add_argument("--config", default=None, help="take the data section of this config")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--scale", choices=tuple(synth.LIKE), default=None,
                   help="instead: LightGCN and P=8 on that size (synthetic stand-in, jgnas.bench.scale)")  # fmt: skip
    p.add_argument("--scale-size", type=float, default=1.0, help="shrink the stand-in (smoke runs)")
    p.add_argument("--scale-pop", default="lightgcn", help="P=8 population: a preset or mixed")
    p.add_argument("--scale-chunk", type=int, default=None, help="its chunk (default: the executor's; 0 = P)")
    p.add_argument("--scale-pop-steps", type=int, default=0, help="its steps (0: one epoch)")
    p.add_argument("--peer", choices=("recbole",), default=None,
                   help="instead: mf, lightgcn, ngcf against RecBole 1.2.1 per epoch (scripts/bench_peer.py)")  # fmt: skip
    p.add_argument("--peer-python", default="/opt/recbole-venv/bin/python",
                   help="the RecBole venv's python")  # fmt: skip
    p.add_argument("--peer-epochs", type=int, default=3, help="timed epochs per run")
    p.add_argument("--peer-models", default="mf,lightgcn,ngcf", help="some of mf,lightgcn,ngcf")
    args = vars(p.parse_args(argv))
    out_path, config = args.pop("out"), args.pop("config")
    peer = {k: args.pop(f"peer_{k}") for k in ("python", "epochs", "models")}
    if args.pop("peer"):
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # scripts/
        import bench_peer

        models = tuple(m for m in peer["models"].split(",") if m)
        unknown = sorted(set(models) - set(bench_peer.MODELS))
        if unknown:
            p.error(f"--peer-models: unknown {unknown}; choose from {list(bench_peer.MODELS)}")
        data_cfg = config_lib.load(config).data
        try:
            out = bench_peer.run(data_cfg, peer["python"], peer["epochs"], models)
        except (FileNotFoundError, RuntimeError) as e:
            raise SystemExit(f"error: {e}") from None
        print(bench_peer.table(out))
        bench.save_json(out_path, out)
        return
    like = args.pop("scale")
    scale = {k: args.pop(f"scale_{k}") for k in ("size", "pop", "chunk", "pop_steps")}
    if like is not None:
        cfg = bench.ScaleConfig(like=like, epochs=args["epochs"], batch=args["batch"],
                                seed=args["seed"], **scale)  # fmt: skip
        out = bench.run_scale(cfg, log=lambda s: print(s, flush=True))
        print("\n".join(bench.scale_summary_lines(out)))
        bench.save_json(out_path, out)
        return
    data_cfg = config_lib.load(config).data  # no config: the defaults, ml-100k
    log = lambda s: print(s, flush=True)  # noqa: E731
    out = bench.run(bench.bench_config(**args), data_cfg, out_path, log=log)
    print("\n".join(bench.summary_lines(out)))
    if out_path:
        bench.save_json(out_path, out)
        print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
