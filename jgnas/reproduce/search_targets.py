"""The reproduce targets that run or study the search: the default search, strategies at an
equal budget, the fidelity of short screening budgets and the ablation of the search's winner."""

from __future__ import annotations

import shutil

from jgnas import ablation, experiment, fidelity, job
from jgnas import config as config_lib
from jgnas.reproduce.base import (
    QUICK_FINAL,
    QUICK_SEARCH,
    Env,
    K,
    N,
    Output,
    R,
    _row_values,
    _stat,
    _tuned,
)
from jgnas.reproduce.tables import Table

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

# The default protocol's learning rates (screening at 1e-2, tuning over {3e-3, 1e-2}) and its
# final budget (<= 200 epochs): `scripts/fidelity.py --lrs 0.01,0.003 --max-epochs 200`.
FIDELITY = fidelity.FidelityConfig(lrs=(0.01, 0.003), max_epochs=200)
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
    """Rank agreement of short budgets with convergence (`scripts/fidelity.py --lrs 0.01,0.003
    --max-epochs 200`: `jgnas.fidelity.run` on the default config)."""
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
