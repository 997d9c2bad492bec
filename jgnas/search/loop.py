"""The search loop: ask -> decode -> train and evaluate through the engine -> tell, with checkpoints.

Every random draw comes from the root key `search.seed` through `fold_in`: generation g asks with
`fold_in(fold_in(root, g), 0)` and tells with `fold_in(..., 1)`, and a candidate's training key is
`fold_in(train_root, hash(canonical arch))`, so an arch always trains the same way and a cached
duplicate equals its retraining. The strategy state, the archive and the best-so-far are
checkpointed with orbax after every generation (atomic: orbax commits a finished temporary
directory), so a resumed search ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jgnas import config as config_lib
from jgnas import data as data_lib
from jgnas import metrics as metrics_lib
from jgnas.config import ExperimentConfig
from jgnas.search.pareto import pareto_front
from jgnas.search.strategies import GenomeSpec, make_strategy
from jgnas.space import Arch, Space, stack, take
from jgnas.train import Engine, TrainConfig, make_data

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet(msg: str) -> None:
    pass


@dataclasses.dataclass
class Context:
    """What the search and the final retraining share: data, space, engine inputs."""

    cfg: ExperimentConfig
    dataset: data_lib.Dataset
    space: Space
    data: Any  # TrainData
    text_dim: int


def prepare(cfg: ExperimentConfig, log: Log = _stderr) -> Context:
    """Loads the dataset (and text vectors), builds the shared graph and the validation set."""
    t0 = time.perf_counter()
    dataset = data_lib.load(cfg.data)
    text = None
    if cfg.text.enabled:
        from jgnas.features import node_text_matrix

        text = node_text_matrix(dataset, cfg.text, log=log)
    data = make_data(dataset, cfg.train, text=text)
    log(
        f"data {dataset.name}: {dataset.n_users} users, {dataset.n_items} items, "
        f"train/valid/test {len(dataset.train)}/{len(dataset.valid)}/{len(dataset.test)} "
        f"({time.perf_counter() - t0:.1f} s) | device {jax.devices()[0].device_kind} ({jax.default_backend()})"
    )
    return Context(cfg, dataset, cfg.space, data, 0 if text is None else int(text.shape[1]))


def _arch_hash(key: tuple[int, ...]) -> int:
    return zlib.crc32(np.asarray(key, np.int32).tobytes()) & 0x7FFFFFFF


def param_count(space: Space, arch_dict: dict, n_node: int, text_dim: int) -> int:
    """Effective parameters of one arch: embeddings at its dimension, used weights only."""
    d = arch_dict["dim"]
    n = 0
    if arch_dict["features"] in ("id", "id+text"):
        n += n_node * d
    if arch_dict["features"] in ("text", "id+text"):
        n += text_dim * d
    for layer in arch_dict["layers"]:
        if layer["transform"] == "linear" and layer["op"] != "lightgcn":
            n += d * d
        n += {"ngcf": d * d, "sage": d * d, "gat": 2 * d, "sum": 1}.get(layer["op"], 0)
    L = arch_dict["depth"]
    if arch_dict["combine"] == "concat" and L:
        n += (L + 1) * d * d
    if arch_dict["combine"] == "learned" and L:
        n += L + 1
    return n


def _metrics_dict(metrics: dict, i: int, ks: tuple[int, ...]) -> dict:
    return {
        f"{m}@{k}": float(np.asarray(v)[i, j]) for m, v in metrics.items() for j, k in enumerate(ks)
    }


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def _manager(run_dir: pathlib.Path) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        (run_dir / "checkpoints").absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
    )


def _save(mngr: ocp.CheckpointManager, generation: int, state: Any, meta: dict) -> None:
    state_np = jax.tree.map(np.asarray, state)
    mngr.save(
        generation,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state_np), meta=ocp.args.JsonSave(meta)
        ),
    )
    mngr.wait_until_finished()


def _restore(mngr: ocp.CheckpointManager, template: Any) -> tuple[Any, dict] | None:
    step = mngr.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), template)
    out = mngr.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        ),
    )
    state = jax.tree.map(
        lambda t, x: jax.numpy.asarray(x, dtype=np.asarray(t).dtype), template, out["state"]
    )
    return state, out["meta"]


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


def search(
    ctx: Context,
    run_dir: pathlib.Path,
    *,
    resume: bool = False,
    log: Log = _stderr,
    on_generation: Callable[[int], None] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Runs (or resumes) the search; returns the archive, one record per evaluated candidate.

    Args:
      ctx: from `prepare`.
      run_dir: where checkpoints and history.jsonl go.
      resume: continue from the latest checkpoint in run_dir.
      log: a line logger (stderr by default).
      on_generation: called after each generation's checkpoint with the generation index (tests use
        it to interrupt a search).
      progress: draw a progress bar of the candidates trained, on stderr (a terminal only).
    """
    cfg, space = ctx.cfg, ctx.space
    scfg = cfg.search
    P = scfg.population_size
    spec = GenomeSpec(space.gene_sizes)
    strategy = make_strategy(scfg.strategy, spec, P, **scfg.strategy_kwargs)
    root = jax.random.key(scfg.seed)
    key_strategy, key_train = jax.random.split(root)
    state = strategy.init(jax.random.fold_in(key_strategy, 2**20))
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    engines = {
        r: Engine(
            dataclasses.replace(cfg.train, epochs=cfg.train.epochs * scfg.halving_eta**r),
            space,
            ctx.data,
            chunk_size=scfg.chunk_size,
        )
        for r in range(scfg.halving_rungs + 1)
    }
    if progress:
        for engine in engines.values():
            engine.on_progress = _progress_bar
    ks, k_idx = cfg.train.ks, cfg.train.ks.index(cfg.train.metric_k)
    fitness_name = f"{cfg.train.metric}@{cfg.train.metric_k}"

    archive: list[dict] = []
    start = 0
    mngr = _manager(run_dir)
    if resume:
        restored = _restore(mngr, state)
        if restored is None:
            raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from")
        state, meta = restored
        archive, start = meta["archive"], meta["generation"] + 1
        log(f"resumed from generation {meta['generation']} ({len(archive)} candidates archived)")
    cache = {tuple(r["key"]): r for r in archive if not r.get("cached")}

    for g in range(start, scfg.generations):
        t0 = time.perf_counter()
        key_g = jax.random.fold_in(key_strategy, g)
        genomes, state = ask(jax.random.fold_in(key_g, 0), state)
        genomes_np = np.asarray(genomes)
        archs = space.decode(genomes_np)
        keys = space.keys(archs)
        todo = [i for i in range(P) if scfg.retrain_duplicates or tuple(keys[i]) not in cache]
        todo_unique: dict[tuple, int] = {}
        for i in todo:  # a duplicate inside one generation trains once
            todo_unique.setdefault(tuple(keys[i]) + ((g, i) if scfg.retrain_duplicates else ()), i)
        records: dict[int, dict] = {}
        if todo_unique:
            idx = np.asarray(list(todo_unique.values()))
            sub = take(archs, idx)
            tkeys = jax.numpy.stack(
                [
                    jax.random.fold_in(
                        key_train,
                        _arch_hash(keys[i]) ^ ((g * 7919 + i) if scfg.retrain_duplicates else 0),
                    )
                    for i in idx
                ]
            )
            fit, budget, seconds, res = _train_rungs(engines, tkeys, sub, scfg, k_idx)
            for j, i in enumerate(idx):
                arch_i = take(archs, int(i))
                d = space.to_dict(arch_i)
                records[int(i)] = {
                    "key": list(keys[i]),
                    "arch": d,
                    "describe": space.describe(arch_i),
                    "fitness": float(fit[j]) if np.isfinite(fit[j]) else None,
                    "failed": bool(np.asarray(res.failed)[j]),
                    "valid": _metrics_dict(res.best, j, ks),
                    "epochs": int(budget[j]),
                    "best_epoch": int(np.asarray(res.best_epoch)[j]),
                    "train_seconds": float(seconds[j]),
                    "params": param_count(
                        space, d, ctx.dataset.n_users + ctx.dataset.n_items, ctx.text_dim
                    ),
                }
        fitness = np.full(P, -np.inf, np.float32)
        n_cached = 0
        for i in range(P):
            rec = records.get(i)
            if rec is None:
                src = records.get(todo_unique.get(tuple(keys[i]), -1)) or cache[tuple(keys[i])]
                rec = {**src, "cached": True}
                n_cached += 1
            else:
                cache[tuple(keys[i])] = rec
            rec = {**rec, "generation": g, "index": i, "genome": [float(x) for x in genomes_np[i]]}
            archive.append(rec)
            fitness[i] = -np.inf if rec["fitness"] is None else rec["fitness"]
        told = fitness
        if scfg.cost != "none" and scfg.cost_weight > 0:
            gen = archive[-P:]
            cost = np.asarray([_cost(r, scfg.cost) for r in gen], np.float64)
            told = (fitness - scfg.cost_weight * cost / max(cost.max(), 1e-12)).astype(np.float32)
        state = tell(jax.random.fold_in(key_g, 1), genomes, jax.numpy.asarray(told), state)

        finite = [r["fitness"] for r in archive if r["fitness"] is not None]
        best = max(finite) if finite else float("nan")
        gen_fit = fitness[np.isfinite(fitness)]
        meta = {"generation": g, "archive": archive, "best": best, "seed": scfg.seed}
        _save(mngr, g, state, meta)
        _write_history(run_dir, archive)
        log(
            f"gen {g + 1}/{scfg.generations} | best {fitness_name} {best:.4f} | "
            f"median {float(np.median(gen_fit)) if gen_fit.size else float('nan'):.4f} | "
            f"failed {int((~np.isfinite(fitness)).sum())} | cached {n_cached} | "
            f"{time.perf_counter() - t0:.1f} s"
        )
        if on_generation is not None:
            on_generation(g)
    return archive


def _progress_bar(done: int, total: int) -> None:
    width = 30
    fill = int(width * done / max(total, 1))
    end = "\n" if done >= total else ""
    print(
        f"\r  [{'#' * fill}{'.' * (width - fill)}] {done}/{total}",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def _cost(record: dict, kind: str) -> float:
    return float(record["params"] if kind == "params" else record["train_seconds"])


def _train_rungs(engines, keys, archs: Arch, scfg, k_idx):
    """Trains the candidates with the screening budget, then promotes the top 1/eta to longer
    budgets (successive halving). Returns fitness, epochs reached, seconds and the last results."""
    res = engines[0].train(keys, archs)
    seconds = np.asarray(engines[0].last_seconds, np.float64).copy()
    fit = np.asarray(res.fitness, np.float64).copy()
    budget = np.full(len(fit), engines[0].cfg.epochs)
    for r in range(1, scfg.halving_rungs + 1):
        n = max(1, math.ceil(len(fit) / scfg.halving_eta**r))
        order = np.argsort(-np.where(np.isfinite(fit), fit, -np.inf), kind="stable")[:n]
        order = order[np.isfinite(fit[order])]
        if order.size == 0:
            break
        sub = engines[r].train(keys[order], take(archs, order))
        seconds[order] += np.asarray(engines[r].last_seconds)
        fit[order] = np.asarray(sub.fitness)
        budget[order] = engines[r].cfg.epochs
        # Promoted members report their highest-budget result (loss curves keep the first rung's).
        res = res.replace(
            best=jax.tree.map(lambda a, b, o=order: _scatter(a, o, b), res.best, sub.best),
            best_epoch=_scatter(res.best_epoch, order, sub.best_epoch),
            failed=_scatter(res.failed, order, sub.failed),
            fitness=_scatter(res.fitness, order, sub.fitness),
        )
    return fit, budget, seconds, res


def _scatter(full, idx, part):
    full = np.array(full)
    full[idx] = np.asarray(part)
    return full


def _write_history(run_dir: pathlib.Path, archive: list[dict]) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in archive)
    _write_atomic(run_dir / "history.jsonl", lines)


# ---------------------------------------------------------------------------------------------
# Final retraining and test
# ---------------------------------------------------------------------------------------------


def top_archs(space: Space, archive: list[dict], k: int) -> list[dict]:
    """The k best distinct (canonical) archs of the archive by validation fitness."""
    seen, out = set(), []
    ranked = sorted(
        (r for r in archive if r["fitness"] is not None and not r.get("failed")),
        key=lambda r: (-r["fitness"], r["generation"], r["index"]),
    )
    for r in ranked:
        if tuple(r["key"]) in seen:
            continue
        seen.add(tuple(r["key"]))
        out.append(r)
        if len(out) == k:
            break
    return out


def retrain_and_test(
    ctx: Context,
    candidates: list[tuple[str, Arch]],
    *,
    seeds: int,
    train_cfg: TrainConfig,
    seed: int = 0,
    chunk_size: int | None = None,
    log: Log = _stderr,
) -> tuple[list[dict], Any]:
    """Trains every (label, arch) over `seeds` seeds as one population (archs x seeds), with early
    stopping on validation, then tests each member once (ranking excludes train and valid items).

    Returns:
      (rows, (result, test_metrics, archs)): per arch, valid and test metrics as mean and std over
      seeds; plus the raw population outputs.
    """
    ds = ctx.dataset
    archs = stack([a for _, a in candidates for _ in range(seeds)])
    root = jax.random.fold_in(jax.random.key(seed), 7)
    keys = jax.numpy.stack([jax.random.fold_in(root, s) for _ in candidates for s in range(seeds)])
    engine = Engine(train_cfg, ctx.space, ctx.data, chunk_size=chunk_size)
    t0 = time.perf_counter()
    res = engine.train(keys, archs)
    t_train = time.perf_counter() - t0
    test_set = metrics_lib.make_eval_set(
        ds.n_users, ds.n_items, ds.test, [ds.train, ds.valid], block_size=train_cfg.eval_block
    )
    test = engine.evaluate(res.params, archs, test_set)
    log(
        f"retrained {len(candidates)} archs x {seeds} seeds in {t_train:.1f} s "
        f"({train_cfg.epochs} epochs max, early stopping patience {train_cfg.patience})"
    )
    ks = train_cfg.ks
    rows = []
    for a, (label, arch) in enumerate(candidates):
        members = range(a * seeds, (a + 1) * seeds)
        failed = [bool(np.asarray(res.failed)[m]) for m in members]
        valid = [_metrics_dict(res.best, m, ks) for m in members]
        tested = [_metrics_dict(test, m, ks) for m in members]
        rows.append(
            {
                "label": label,
                "arch": ctx.space.to_dict(arch),
                "describe": ctx.space.describe(arch),
                "seeds": seeds,
                "failed": int(sum(failed)),
                "best_epoch": [int(np.asarray(res.best_epoch)[m]) for m in members],
                "valid": _mean_std(valid),
                "test": _mean_std(tested),
                "test_per_seed": tested,
            }
        )
    return rows, (res, test, archs)


def _mean_std(dicts: list[dict]) -> dict:
    return {
        k: {
            "mean": float(np.mean([d[k] for d in dicts])),
            "std": float(np.std([d[k] for d in dicts])),
        }
        for k in dicts[0]
    }


# ---------------------------------------------------------------------------------------------
# The whole job
# ---------------------------------------------------------------------------------------------


def run(
    cfg: ExperimentConfig,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    log: Log = _stderr,
    on_generation: Callable[[int], None] | None = None,
    progress: bool = True,
) -> dict:
    """Search, retrain the winners and the baselines, test once, write the run directory.

    Run directory: config.yaml (resolved), history.jsonl, best_arch.json, final_metrics.json,
    best_model/ (orbax checkpoint of the winner's parameters), search_curve.png, summary.md,
    checkpoints/ (for --resume).
    """
    import yaml

    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _write_atomic(
            run_dir / "config.yaml", yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False)
        )
    ctx = prepare(cfg, log)
    t0 = time.perf_counter()
    archive = search(
        ctx,
        run_dir,
        resume=resume,
        log=log,
        on_generation=on_generation,
        progress=progress and sys.stderr.isatty(),
    )
    t_search = time.perf_counter() - t0

    fcfg = cfg.final
    top = top_archs(ctx.space, archive, fcfg.top_k)
    if not top:
        raise RuntimeError("every candidate failed; nothing to retrain (see history.jsonl)")
    candidates = [(f"search#{i + 1}", ctx.space.from_dict(r["arch"])) for i, r in enumerate(top)]
    candidates += [(name, ctx.space.preset(name)) for name in fcfg.baselines]
    final_train = dataclasses.replace(
        cfg.train, epochs=fcfg.epochs, eval_every=fcfg.eval_every, patience=fcfg.patience
    )
    t1 = time.perf_counter()
    rows, (res, test, archs) = retrain_and_test(
        ctx,
        candidates,
        seeds=fcfg.seeds,
        train_cfg=final_train,
        seed=cfg.search.seed,
        chunk_size=cfg.search.chunk_size,
        log=log,
    )
    t_final = time.perf_counter() - t1
    fitness_name = f"{cfg.train.metric}@{cfg.train.metric_k}"
    searched = [r for r in rows if r["label"].startswith("search#")]
    winner = max(searched, key=lambda r: r["valid"][fitness_name]["mean"])
    baselines = [r for r in rows if not r["label"].startswith("search#")]
    w_index = rows.index(winner)
    # The winner's parameters: its seed with the best validation score.
    members = np.arange(w_index * fcfg.seeds, (w_index + 1) * fcfg.seeds)
    m = int(members[np.argmax(np.asarray(res.fitness)[members])])
    params = jax.tree.map(lambda x: np.asarray(x[m]), res.params)
    ckpt = ocp.StandardCheckpointer()
    ckpt.save((run_dir / "best_model").absolute(), params, force=True)
    ckpt.wait_until_finished()

    front = _pareto(archive, cfg.search.cost, fitness_name) if cfg.search.cost != "none" else []
    summary = {
        "name": cfg.name,
        "dataset": ctx.dataset.name,
        "fitness": fitness_name,
        "strategy": cfg.search.strategy,
        "candidates_evaluated": len(archive),
        "candidates_trained": sum(1 for r in archive if not r.get("cached")),
        "failed": sum(1 for r in archive if r.get("failed")),
        "search_seconds": t_search,
        "final_seconds": t_final,
        "winner": winner["label"],
        "rows": rows,
        "pareto_front": front,
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()})",
    }
    test_key = (
        f"ndcg@{cfg.train.metric_k}"
        if f"ndcg@{cfg.train.metric_k}" in winner["test"]
        else fitness_name
    )
    if baselines:
        best_base = max(baselines, key=lambda r: r["test"][test_key]["mean"])
        gain = (
            winner["test"][test_key]["mean"] / max(best_base["test"][test_key]["mean"], 1e-12) - 1
        )
        summary["vs_best_baseline"] = {
            "baseline": best_base["label"],
            "metric": test_key,
            "relative_gain": gain,
        }
    _write_atomic(run_dir / "final_metrics.json", json.dumps(summary, indent=2))
    _write_atomic(
        run_dir / "best_arch.json", ctx.space.to_json(ctx.space.from_dict(winner["arch"])) + "\n"
    )
    _write_atomic(run_dir / "summary.md", summary_markdown(summary, cfg))
    try:
        plot_curve(archive, run_dir / "search_curve.png", fitness_name)
    except Exception as e:  # a plot must never lose a finished search
        log(f"warning: search_curve.png not written ({type(e).__name__}: {e})")
    log(f"winner {winner['describe']} | test {test_key} {winner['test'][test_key]['mean']:.4f}")
    log(f"run directory: {run_dir}")
    return summary


def _pareto(archive: list[dict], cost: str, fitness_name: str) -> list[dict]:
    ok = [r for r in archive if r["fitness"] is not None and not r.get("cached")]
    if not ok:
        return []
    obj = np.asarray([[r["fitness"], _cost(r, cost)] for r in ok])
    mask = pareto_front(obj, maximize=[True, False])
    return [
        {"describe": r["describe"], fitness_name: r["fitness"], cost: _cost(r, cost)}
        for r, keep in zip(ok, mask)
        if keep
    ]


def summary_markdown(summary: dict, cfg: ExperimentConfig) -> str:
    """The table a person reads first."""
    ks = cfg.train.ks
    cols = [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks]
    lines = [
        f"# {summary['name']}: {summary['dataset']}",
        "",
        f"Search: {summary['strategy']}, {summary['candidates_evaluated']} candidates evaluated "
        f"({summary['candidates_trained']} trained, {summary['failed']} failed) in "
        f"{summary['search_seconds']:.0f} s; retraining {summary['final_seconds']:.0f} s on "
        f"{summary['device']}. Fitness: validation {summary['fitness']}.",
        "",
        f"Test metrics, mean ± std over {cfg.final.seeds} seeds (ranking over all items, train and "
        "validation items excluded):",
        "",
        "| model | architecture | "
        + " | ".join(f"test {c}" for c in cols)
        + f" | valid {summary['fitness']} |",
        "|---|---|" + "---|" * (len(cols) + 1),
    ]
    for r in summary["rows"]:
        cells = [f"{r['test'][c]['mean']:.4f} ± {r['test'][c]['std']:.4f}" for c in cols]
        v = r["valid"][summary["fitness"]]
        label = f"**{r['label']}**" if r["label"] == summary["winner"] else r["label"]
        lines.append(
            f"| {label} | {r['describe']} | " + " | ".join(cells) + f" | {v['mean']:.4f} |"
        )
    if "vs_best_baseline" in summary:
        b = summary["vs_best_baseline"]
        lines += [
            "",
            f"Winner vs best baseline ({b['baseline']}) on test {b['metric']}: {b['relative_gain']:+.1%}.",
        ]
    if summary.get("pareto_front"):
        lines += ["", "Pareto front (fitness vs cost):", ""]
        lines += [f"- {p}" for p in summary["pareto_front"]]
    return "\n".join(lines) + "\n"


def plot_curve(archive: list[dict], path: pathlib.Path, fitness_name: str) -> None:
    """Best-so-far and per-generation median fitness against evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = np.asarray([np.nan if r["fitness"] is None else r["fitness"] for r in archive])
    best = np.fmax.accumulate(np.where(np.isnan(fit), -np.inf, fit))
    gens = np.asarray([r["generation"] for r in archive])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(
        np.arange(1, len(fit) + 1), np.where(np.isfinite(best), best, np.nan), label="best so far"
    )
    xs, med = [], []
    for g in np.unique(gens):
        sel = (gens == g) & ~np.isnan(fit)
        if sel.any():
            xs.append(np.nonzero(gens == g)[0].max() + 1)
            med.append(np.median(fit[sel]))
    ax.plot(xs, med, "o-", label="generation median")
    ax.scatter(np.arange(1, len(fit) + 1), fit, s=6, alpha=0.3, label="candidates")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"validation {fitness_name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
