"""Benchmark of the population engine against the straightforward path (`scripts/bench.py`).

`run_scale` (`scripts/bench.py --scale gowalla`) measures a gowalla-size graph instead: seconds
per epoch, a full evaluation and peak RSS (`jgnas.bench.scale`).

Throughput, compile time, memory and evaluation time, each also as a ratio against a Python loop
over the same candidates, each a plain jraph / `segment_sum` model with a static arch jitted alone
(`TrainConfig(kernel="segment")`). "steady" ratios exclude compilation; "e2e" ratios include it.
"""

from jgnas.bench.scale import ScaleConfig
from jgnas.bench.scale import run as run_scale
from jgnas.bench.scale import summary_lines as scale_summary_lines
from jgnas.bench.suite import (
    BENCH_SPACE,
    BenchConfig,
    bench_config,
    format_row,
    populations,
    ratios,
    run,
    save_json,
    single_op_space,
    summary_lines,
    targets,
)
from jgnas.bench.timing import (
    compile_seconds,
    install_compile_listener,
    micro_aggregation,
    peak_memory_mb,
    time_engine,
    time_eval,
    time_straightforward,
)

__all__ = [
    "BENCH_SPACE",
    "BenchConfig",
    "ScaleConfig",
    "bench_config",
    "compile_seconds",
    "format_row",
    "install_compile_listener",
    "micro_aggregation",
    "peak_memory_mb",
    "populations",
    "ratios",
    "run",
    "run_scale",
    "save_json",
    "scale_summary_lines",
    "single_op_space",
    "summary_lines",
    "targets",
    "time_engine",
    "time_eval",
    "time_straightforward",
]
