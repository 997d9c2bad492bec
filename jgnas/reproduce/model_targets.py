"""The reproduce targets that train fixed models: parity of the presets with RecBole, the presets
to convergence, text features and cold start, and the engine benchmark."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from jgnas import bench, studies
from jgnas import config as config_lib
from jgnas.experiment import mean_std
from jgnas.reproduce.base import Env, K, N, Output, R, _row_values
from jgnas.reproduce.tables import Table

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
