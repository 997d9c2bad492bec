"""The targets of `scripts/reproduce.py`: each calls one existing library entry point at the
README's budget (or a tiny one, `quick`) and returns its tables, figures and numbers.

Each full budget is the one of the script that made the README's table (named in each target's
docstring); `quick` keeps the same data and the same code path at a budget of seconds, so a quick
run checks the pipeline, never the numbers.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jgnas import ablation, bench, experiment, fidelity, job, studies
from jgnas import config as config_lib
from jgnas.experiment import Log, mean_std
from jgnas.progress import Progress
from jgnas.reproduce.tables import Table

K = 20
R, N = f"recall@{K}", f"ndcg@{K}"


@dataclasses.dataclass
class Env:
    """What every target gets.

    out: the results folder (run directories go to out/runs/). quick: tiny budgets.
    search_config: the default search's config file (configs/ml100k.yaml).
    search_run: the run directory the ablation reads (default: out/runs/search, which the
      search target writes).
    parity: the module of scripts/recbole_parity.py (its results file, rows and row runner),
      handed in by the script: the library never imports a script.
    command: how the script is called, for the "Made by" lines.
    """

    out: pathlib.Path
    quick: bool = False
    search_config: pathlib.Path | None = None
    search_run: pathlib.Path | None = None
    parity: Any = None
    command: str = "python scripts/reproduce.py"
    log: Log = experiment.stderr_log
    progress: Progress = dataclasses.field(default_factory=Progress)


@dataclasses.dataclass
class Output:
    """A target's product: tables (the first is the main one), numbers to check, the raw result
    (JSON-ready, written as out/TARGET.json), figures it wrote, notes printed above the tables."""

    tables: list[Table]
    values: dict[str, float | None]
    raw: Any
    figures: list[pathlib.Path] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


# Overrides that shrink a budget to seconds, on top of each target's full-size settings.
QUICK_FINAL = ("final.seeds=1", "final.epochs=2", "final.eval_every=1", "final.patience=1",
               "final.lrs=[0.01]", "final.tune_seeds=1")  # fmt: skip
QUICK_SEARCH = ("search.population_size=4", "search.generations=2", "train.epochs=1", *QUICK_FINAL)


def _stat(row: dict, metric: str) -> dict:
    return row["test"][metric]


def _row_values(rows: Sequence[dict], label_fn=lambda r: r["label"]) -> dict[str, float]:
    out = {}
    for r in rows:
        for m in (R, N):
            out[f"{label_fn(r)} test {m}"] = _stat(r, m)["mean"]
    return out


def _tuned(row: dict) -> str | None:
    t = row.get("tuned")
    return f"{t['lr']:g}, {t['l2']:g}" if t else f"{row['arch']['lr']:g}, {row['arch']['l2']:g}"


# ---- the default search ------------------------------------------------------------------------


def search(env: Env) -> Output:
    """The default job (`python scripts/search.py`: `jgnas.job.run` on configs/ml100k.yaml): the
    winner and the baselines, tuned alike and retrained over seeds, tested once."""
    cfg = config_lib.load(env.search_config, QUICK_SEARCH if env.quick else ())
    run_dir = env.out / "runs" / "search"
    summary = job.run(cfg, run_dir, overwrite=True, log=env.log, progress=env.progress)
    fit = summary["fitness"]
    rows = tuple(
        (r["label"] + (" (winner)" if r["label"] == summary["winner"] else ""), r["describe"],
         _tuned(r), _stat(r, R), _stat(r, N), r["valid"][fit]["mean"])
        for r in summary["rows"]
    )  # fmt: skip
    table = Table("search", ("model", "architecture", "lr, L2", f"test Recall@{K}",
                             f"test NDCG@{K}", f"valid {fit}"), rows)  # fmt: skip
    figure = env.out / "search_curve.png"
    shutil.copyfile(run_dir / "search_curve.png", figure)
    notes = [
        f"{summary['strategy']}: {summary['candidates_evaluated']} candidates evaluated "
        f"({summary['candidates_trained']} trained, {summary['failed']} failed) in "
        f"{summary['search_seconds']:.0f} s; tuning {summary['tune_seconds']:.0f} s, retraining "
        f"{summary['final_seconds']:.0f} s over {cfg.final.seeds} seed(s) on {summary['device']}. "
        f"Run directory: {run_dir}.",
    ]
    if "vs_best_baseline" in summary:
        b = summary["vs_best_baseline"]
        gain = b["relative_gain"]
        notes.append(f"Winner vs the best baseline ({b['baseline']}) on test {b['metric']}: "
                     + ("n/a" if gain is None else f"{gain:+.1%}") + ".")  # fmt: skip
    values = _row_values(summary["rows"])
    values.update({f"{r['label']} valid {fit}": r["valid"][fit]["mean"] for r in summary["rows"]})
    return Output([table], values, summary, [figure], notes)


# ---- strategies at an equal budget -------------------------------------------------------------

STRATEGIES = ("random", "regularized_evolution", "CMA_ES", "SimpleGA", "reinforce")
# The README's command: `python scripts/compare_strategies.py --search-seeds 3 --seeds 5 --set
# search.generations=6 --set search.halving_rungs=1 --set search.halving_eta=3 --set
# "final.baselines=[lightgcn, mf]"`.
STRATEGY_SETS = ("search.generations=6", "search.halving_rungs=1", "search.halving_eta=3",
                 "final.baselines=[lightgcn, mf]")  # fmt: skip
# Quick: no halving rung (a rung's longer budget compiles a second program: half the time).
QUICK_STRATEGY_SETS = ("search.population_size=4", "search.generations=1", "train.epochs=1",
                       "search.halving_rungs=0", *QUICK_FINAL)  # fmt: skip


def strategies(env: Env) -> Output:
    """Strategies at an equal budget (`scripts/compare_strategies.py`:
    `jgnas.job.compare_strategies`), then every winner and the presets retrained over seeds."""
    sets = STRATEGY_SETS + (QUICK_STRATEGY_SETS if env.quick else ())
    cfg = config_lib.load(env.search_config, sets)
    names = STRATEGIES[:2] if env.quick else STRATEGIES
    seeds = 1 if env.quick else 5
    search_seeds = 1 if env.quick else 3
    compared = job.compare_strategies(
        cfg, list(names), seeds, env.out / "runs" / "strategies", log=env.log, overwrite=True,
        progress=env.progress, search_seeds=search_seeds,
    )  # fmt: skip
    fit = f"{cfg.train.metric}@{cfg.train.metric_k}"
    rows, values = [], {}
    for r in compared["rows"]:
        s = compared["searched"].get(r["label"])
        rows.append((r["label"], s["best_valid"] if s else None,
                     f"{s['evaluated']} ({s['trained']})" if s else None,
                     _stat(r, R), _stat(r, N), r["describe"]))  # fmt: skip
        if s:
            values[f"{r['label']} best valid {fit}"] = s["best_valid"]
    values.update(_row_values(compared["rows"]))
    table = Table("strategies", ("strategy / preset", f"best valid {fit} (screening)",
                                 "evaluated (trained)", f"test Recall@{K}", f"test NDCG@{K}",
                                 "winner"), tuple(rows))  # fmt: skip
    g, p = cfg.search.generations, cfg.search.population_size
    notes = [
        f"Each strategy: {search_seeds} search(es) of {p} x {g} candidates (halving rungs "
        f"{cfg.search.halving_rungs}, eta {cfg.search.halving_eta}); finalists and presets tuned "
        f"alike, winners and presets retrained over {seeds} seed(s)."
    ]
    return Output([table], values, compared, [], notes)


# ---- fidelity of short screening budgets ---------------------------------------------------------

FIDELITY = fidelity.FidelityConfig(lrs=(0.01, 0.003, 0.001))  # `scripts/fidelity.py --lrs ...`
QUICK_FIDELITY = fidelity.FidelityConfig(
    n_archs=3,
    presets=("mf", "lightgcn"),
    budgets=(1, 2),
    lrs=(0.01,),
    max_epochs=2,
    eval_every=1,
    patience=2,
)


def fidelity_study(env: Env) -> Output:
    """Rank agreement of short budgets with convergence (`scripts/fidelity.py --lrs
    0.01,0.003,0.001`: `jgnas.fidelity.run` on the default config)."""
    fcfg = QUICK_FIDELITY if env.quick else FIDELITY
    ctx = experiment.prepare(config_lib.load(None), env.log, env.progress)
    result = fidelity.run(ctx, fcfg, env.log, env.progress)
    figure = env.out / "fidelity.png"
    fidelity.plot(result, figure)
    corr = result["correlations"]
    rows = tuple((name, c["spearman"], c["kendall"], c["n"]) for name, c in corr.items())
    table = Table("fidelity", ("comparison", "Spearman ρ", "Kendall τ", "archs"), rows,
                  formats={"Spearman ρ": ".3f", "Kendall τ": ".3f"})  # fmt: skip
    values = {f"{name} {k}": c[k] for name, c in corr.items() for k in ("spearman", "kendall")}
    n = len({r["label"] for r in result["rows"]})
    notes = [f"{n} architectures ({fcfg.n_archs} sampled + presets {', '.join(fcfg.presets)}) x "
             f"lrs {list(fcfg.lrs) or 'own'}, to convergence (<= {fcfg.max_epochs} epochs); "
             f"budgets {list(fcfg.budgets)} epochs; metric validation "
             f"{result['metric']}."]  # fmt: skip
    return Output([table], values, result, [figure], notes)


# ---- preset faithfulness: parity with RecBole ----------------------------------------------------

QUICK_PARITY_ROWS = ("mf/rb_hp",)


def parity(env: Env) -> Output:
    """jgnas's mf, lightgcn, ngcf against RecBole 1.2.1 on one split (scripts/recbole_parity.py).

    RecBole's side is read from its recorded results (third_party/recbole_parity/results.json):
    it runs in a separate venv and takes hours, so it is never rerun here (`recbole_parity.py
    recbole` does that). jgnas's rows of the parity table are rerun now, through the module's
    own row runner, on the split checked against the recorded one (a changed split fails: the
    recorded RecBole numbers would not be comparable)."""
    pm = env.parity
    if pm is None:
        raise ValueError("the parity target needs scripts/recbole_parity.py (Env.parity)")
    recorded = pm.load_results()
    rb = recorded.get("recbole", {})
    bad = pm.split_mismatch(recorded.get("split", {}))
    if bad and not env.quick:
        raise ValueError(f"the split differs from the recorded one ({', '.join(bad)}): RecBole's "
                         "recorded numbers are not comparable; rerun recbole_parity.py export and "
                         "recbole first")  # fmt: skip
    labels = QUICK_PARITY_ROWS
    if not env.quick:  # the parity table's jgnas rows: <model>/rb_hp and <model>/preset
        labels = tuple(label for m in pm.MODELS for label in pm.PARITY_ROWS[m])
    catalogue, ctx, rows = pm.rows_catalogue(), pm.context(), {}
    for label in labels:
        model, arch_d, tcfg, variant = catalogue[label]
        if env.quick:
            tcfg = dataclasses.replace(tcfg, epochs=2, eval_every=1, patience=1)
        with env.progress.phase(f"parity {label}", unit=None):
            seeds = 1 if env.quick else 3
            rows[label] = pm.run_jgnas_row(ctx, label, model, arch_d, tcfg, variant, seeds)
    version = recorded.get("versions", {}).get("recbole_venv", {}).get("recbole", "?")
    table_rows, values = [], {}
    for m, name in pm.MODELS.items():
        ref = rb.get(name)
        if not ref:
            continue
        table_rows.append((name, f"RecBole {version} (recorded)", 1, str(ref["best_epoch"]),
                           ref["test"][R], ref["test"][N], None, None, None))  # fmt: skip
        values[f"RecBole {name} test {R}"] = ref["test"][R]
        values[f"RecBole {name} test {N}"] = ref["test"][N]
        for label in (x for x in labels if x.startswith(f"{m}/")):
            row = rows[label]
            gap = {k: 100.0 * (row["test"][k] / ref["test"][k] - 1.0) for k in (R, N)}
            stat = {k: {"mean": row["test"][k], "std": row["test_std"][k]} for k in (R, N)}
            within = max(map(abs, gap.values())) <= pm.TARGET
            table_rows.append((name, f"jgnas {label}", row["seeds"],
                               "/".join(map(str, row["best_epoch"])), stat[R], stat[N],
                               gap[R], gap[N], "yes" if within else "no"))  # fmt: skip
            values.update({f"{label} test {R}": row["test"][R], f"{label} test {N}": row["test"][N],
                           f"{label} gap {R} %": gap[R], f"{label} gap {N} %": gap[N]})  # fmt: skip
    table = Table("parity", ("model", "row", "seeds", "best epoch", f"test Recall@{K}",
                             f"test NDCG@{K}", f"ΔRecall@{K} %", f"ΔNDCG@{K} %",
                             f"within ±{pm.TARGET:g} %"), tuple(table_rows),
                  formats={f"ΔRecall@{K} %": "+.1f", f"ΔNDCG@{K} %": "+.1f"})  # fmt: skip
    venv = pathlib.Path(pm.RECBOLE_PY).exists()
    notes = [
        "RecBole rows: recorded in third_party/recbole_parity/results.json, not rerun (RecBole's "
        f"venv {pm.RECBOLE_PY} is {'present' if venv else 'absent'} on this machine; "
        "`python scripts/recbole_parity.py recbole` reruns it, hours on 2 CPU cores).",
        "jgnas rows: rerun now (`recbole_parity.run_jgnas_row`), mean ± std over seeds; Δ is "
        "relative to RecBole's test value.",
        "Split: " + (f"DIFFERS from the recorded one ({', '.join(bad)})" if bad
                     else "the recorded one (sha256 of every exported file checked)") + ".",
    ]  # fmt: skip
    raw = {"recbole_recorded": rb, "jgnas": rows, "split_mismatch": bad}
    return Output([table], values, raw, [], notes)


# ---- presets to convergence ----------------------------------------------------------------------

QUALITY_ROWS, QUICK_QUALITY_ROWS = "mf:0.001:150,lightgcn:0.01:80", "lightgcn:0.01:2"


def quality(env: Env) -> Output:
    """The mf and lightgcn presets to convergence and a popularity ranking (`scripts/quality.py`:
    `jgnas.studies.quality`, 3 seeds)."""
    q = env.quick
    out = studies.quality(config_lib.load(None).data,
                          studies.parse_rows(QUICK_QUALITY_ROWS if q else QUALITY_ROWS),
                          seeds=1 if q else 3, eval_every=1 if q else 10, patience=1 if q else 5,
                          log=env.log)  # fmt: skip
    pop = out["popularity"]
    rows = [(r["preset"], f"{r['lr']:g}", r["epochs"], "/".join(map(str, r["best_epoch"])),
             r["test"][R], r["test"][N]) for r in out["rows"]]  # fmt: skip
    rows.append(("popularity", None, None, None, pop["recall"], pop["ndcg"]))
    table = Table("quality", ("preset", "lr", "epochs", "best epoch", f"test Recall@{K}",
                              f"test NDCG@{K}"), tuple(rows))  # fmt: skip
    values = _row_values(out["rows"], lambda r: r["preset"])
    values.update({f"popularity test {R}": pop["recall"], f"popularity test {N}": pop["ndcg"],
                   f"popularity {R} library - numpy": pop["lib_recall"] - pop["recall"],
                   f"popularity {N} library - numpy": pop["lib_ndcg"] - pop["ndcg"]})  # fmt: skip
    notes = [f"{out['dataset']['name']}: {out['dataset']['users']} users, "
             f"{out['dataset']['items']} items; mean ± std over seeds; popularity scored in numpy "
             "and through the library's metrics (they must agree)."]  # fmt: skip
    return Output([table], values, out, [], notes)


# ---- text features and cold start ----------------------------------------------------------------


def coldstart(env: Env) -> Output:
    """ID vs text features on warm and cold-start items (`scripts/coldstart.py`:
    `jgnas.studies.coldstart`, 3 seeds, lr 1e-2, <= 20 epochs)."""
    q = env.quick
    presets = ("mf", "lightgcn+text") if q else studies.COLDSTART_PRESETS
    epochs, lr = (2 if q else 20), 1e-2
    cfg = studies.coldstart_train_config(epochs, 2, 4)
    exp = config_lib.load(None)
    out = studies.coldstart(exp.data, exp.text, presets, seeds=1 if q else 3, lr=lr, cfg=cfg,
                            n_throughput=256 if q else 1024, log=env.log)  # fmt: skip
    res = out["results"]
    heads = [h for h, _, _ in studies.COLDSTART_COLUMNS]
    rows, values = [], {}
    for p in presets:
        cells = []
        for head, split, col in studies.COLDSTART_COLUMNS:
            st = mean_std([{"v": v} for v in res[split][p][f"{col}@{K}"]])["v"]
            cells.append(st)
            values[f"{p} {head}"] = st["mean"]
        epochs_at = "/".join(str(int(np.mean(res[s][p]["best_epoch"]))) for s in res)
        rows.append((p, *cells, epochs_at))
    values["MiniLM item texts/s"] = out["encode_sentences_per_s"]
    table = Table("coldstart", ("model", *heads, "best epoch (warm/cold)"), tuple(rows))
    notes = [f"lr {lr:g}, <= {epochs} epochs, early stopping on validation NDCG@{K}; cold split: "
             "20% of the items held out of training; MiniLM encodes "
             f"{out['encode_sentences_per_s']:.0f} item texts/s (uncached)."]  # fmt: skip
    return Output([table], values, out, [], notes)


# ---- ablation of the default search's winner -----------------------------------------------------


def ablation_study(env: Env) -> Output:
    """Architecture x features x objective of the default search's winner against lightgcn
    (`scripts/ablation.py RUN_DIR`: `jgnas.ablation.run`, the run's own tuning and seeds)."""
    run_dir = env.search_run or env.out / "runs" / "search"
    if not (run_dir / "best_arch.json").is_file():
        raise ValueError(f"{run_dir}: no finished search (best_arch.json); run the search target "
                         "first or name a run directory")  # fmt: skip
    # Quick: no tuning grid (the search target's quick run covers tuning).
    quick = (*QUICK_FINAL, "final.lrs=[]", "final.l2s=[]")
    cfg = config_lib.load(run_dir / "config.yaml", quick if env.quick else ())
    ctx = experiment.prepare(cfg, env.log, env.progress)
    winner = ctx.space.from_json((run_dir / "best_arch.json").read_text(), "best_arch.json")
    f = cfg.final
    rows = ablation.run(ctx, winner, baseline="lightgcn", lrs=f.lrs, l2s=f.l2s,
                        tune_seeds=f.tune_seeds, seeds=f.seeds, seed=cfg.search.seed,
                        chunk_size=cfg.search.chunk_size, log=env.log,
                        progress=env.progress)  # fmt: skip
    base = next(r for r in rows if r["label"] == "baseline")["test"][N]["mean"]
    out_rows, values = [], _row_values(rows)
    for r in rows:
        gain = 100.0 * (_stat(r, N)["mean"] / base - 1) if base > 0 else float("nan")
        out_rows.append((r["label"], r["describe"], _tuned(r), _stat(r, R), _stat(r, N), gain))
        values[f"{r['label']} vs baseline {N} %"] = gain
    table = Table("ablation", ("variant", "model", "lr, L2", f"test Recall@{K}", f"test NDCG@{K}",
                               f"vs baseline (NDCG@{K}) %"), tuple(out_rows),
                  formats={f"vs baseline (NDCG@{K}) %": "+.1f"})  # fmt: skip
    notes = [f"Winner of {run_dir}; each variant tuned over lr {list(f.lrs)} x L2 {list(f.l2s)} "
             f"and retrained over {f.seeds} seed(s)."]  # fmt: skip
    return Output([table], values, rows, [], notes)


# ---- the engine benchmark ------------------------------------------------------------------------


def bench_suite(env: Env) -> Output:
    """The engine against the straightforward path (`scripts/bench.py --P 1,8,32 --pops
    mixed,lightgcn`: `jgnas.bench.run` on ml-100k), and the aggregation kernels alone."""
    if env.quick:
        bcfg = bench.bench_config(quick=True, P=(2,), chunks=(0,), pops=("lightgcn",),
                                  straight_max=1, micro_reps=1, eval_p=2)  # fmt: skip
    else:
        bcfg = bench.bench_config(P=(1, 8, 32), pops=("mixed", "lightgcn"))
    out = bench.run(bcfg, config_lib.load(None).data, None, log=env.log)
    rows, values = [], {}
    for r in out["results"]:
        key = f"{r['population']} P={r['P']} chunk={r['chunk']}"
        note = r.get("skipped") or ("extrapolated" if r.get("extrapolated") else "")
        if "cand_epochs_per_s" in r:
            rows.append((r["population"], r["P"], r["chunk"], r["cand_epochs_per_s"],
                         r["ratio_steady"], r["ratio_e2e"], r["compile_s"], note))  # fmt: skip
            values.update({f"{key} candidate-epochs/s": r["cand_epochs_per_s"],
                           f"{key} ratio steady": r["ratio_steady"],
                           f"{key} ratio incl. compiles": r["ratio_e2e"],
                           f"{key} compile s": r["compile_s"]})  # fmt: skip
        else:
            rows.append((r["population"], r["P"], r["chunk"], None, None, None, None, note))
    cols = ("population", "P", "chunk", "candidate-epochs/s", "vs straightforward (steady)",
            "vs straightforward (incl. compiles)", "compile s", "note")  # fmt: skip
    fmt2 = dict.fromkeys(cols[3:7], ".2f")
    tables = [Table("bench", cols, tuple(rows), "Engine vs straightforward", fmt2)]
    micro = tuple((k, v) for k, v in out["micro"].items())
    tables.append(Table("bench_aggregation", ("kernel", "s per candidate-epoch"), micro,
                        "Aggregation alone (d = 64, 3 layers, forward and backward)",
                        {"s per candidate-epoch": ".3f"}))  # fmt: skip
    values.update({f"aggregation {k} s": v for k, v in micro})
    evals = tuple((k, v["P"], v["steady_s"]) for k, v in out["evaluation"].items())
    tables.append(
        Table(
            "bench_eval",
            ("engine", "members", "evaluation s"),
            evals,
            "Evaluating trained members on validation",
            {"evaluation s": ".3f"},
        )
    )
    values.update({f"evaluate {k} P={p} s": s for k, p, s in evals})
    targets = tuple((t["target"], t["value"], "PASS" if t["pass"] else "FAIL")
                    for t in out["targets"])  # fmt: skip
    if targets:
        tables.append(Table("bench_targets", ("target", "value", "result"), targets, "Targets",
                            {"value": ".3g"}))  # fmt: skip
    m = out["meta"]
    notes = [f"{m['dataset']}, {m['steps_per_epoch']} steps per epoch (batch {bcfg.batch}); "
             f"{m['device_kind']} ({m['backend']}), {m['cpus']} cores, jax {m['jax']}, load "
             f"{m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}. Timings depend on the "
             "machine and its load."]  # fmt: skip
    return Output(tables, values, out, [], notes)


@dataclasses.dataclass(frozen=True)
class Target:
    fn: Callable[[Env], Output]
    title: str


# In the order they run: the ablation reads the search's run directory.
TARGETS: Mapping[str, Target] = {
    "search": Target(search, "The default search (configs/ml100k.yaml)"),
    "strategies": Target(strategies, "Search strategies at an equal budget"),
    "fidelity": Target(fidelity_study, "Fidelity of short screening budgets"),
    "parity": Target(parity, "Preset faithfulness: parity with RecBole"),
    "quality": Target(quality, "The presets trained to convergence"),
    "coldstart": Target(coldstart, "Text features and cold start"),
    "ablation": Target(ablation_study, "Where the winner's gain comes from (ablation)"),
    "bench": Target(bench_suite, "Performance of the population engine"),
}
