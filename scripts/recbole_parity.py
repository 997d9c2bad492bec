"""Parity of jgnas's `mf`, `lightgcn` and `ngcf` with RecBole 1.2.1 on one shared split (issue 9).

    python scripts/recbole_parity.py export            # the split, as RecBole benchmark files
    python scripts/recbole_parity.py recbole           # BPR, LightGCN, NGCF in /opt/recbole-venv
    python scripts/recbole_parity.py metrics           # RecBole's vectors through jgnas's metrics
    python scripts/recbole_parity.py jgnas --rows ...  # jgnas rows (presets and ablations)
    python scripts/recbole_parity.py report            # README table from results.json

Every number lands in `third_party/recbole_parity/results.json` (each command updates its part).

The split is jgnas's default protocol split (`DataConfig()`: ml-100k, 80/10/10 per user, seed 0),
written with raw ids as `ml100k_jgnas.{train,valid,test}.inter` for RecBole's
`benchmark_filename` option, so both tools train, select and test on the same interactions.
RecBole runs in a separate venv (`scripts/recbole_run.py`): torch never enters jgnas.

The jgnas rows go through the library (`experiment.prepare`, `experiment.retrain_and_test`). The
ablations that jgnas cannot express yet (RecBole's initialisation, its EmbLoss, NGCF's layer
details) are scratch copies of `jgnas.model` functions in this file, patched in for one row at
a time (`patched`); jgnas itself is unchanged. `Variant()` reproduces `jgnas.model` exactly
(checked by `check_scratch`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import time

import jax.numpy as jnp
import numpy as np
from recbole_scratch import RECBOLE_NGCF, Variant, check_scratch, patched  # noqa: E402  (scripts/)

from jgnas import config as config_lib
from jgnas import experiment
from jgnas import metrics as metrics_lib
from jgnas.data import DataConfig
from jgnas.space import Space
from jgnas.train import TrainConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "third_party" / "recbole_parity"
RESULTS = OUT / "results.json"
WORK = pathlib.Path.home() / ".cache" / "jgnas" / "recbole_parity"
DATASET = "ml100k_jgnas"  # as in scripts/recbole_run.py
RECBOLE_PY = "/opt/recbole-venv/bin/python"
MODELS = {"mf": "BPR", "lightgcn": "LightGCN", "ngcf": "NGCF"}
KS = (10, 20)

# ---------------------------------------------------------------------------- results file


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_results(update: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    res = load_results()
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(res.get(k), dict):
            res[k].update(v)
        else:
            res[k] = v
    RESULTS.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------- export


def export(data_cfg: DataConfig, folder: pathlib.Path) -> dict:
    """Writes the split as RecBole atomic files with raw ids; returns counts and sha256s."""
    from jgnas.data import load

    ds = load(data_cfg, log=lambda m: None)
    folder.mkdir(parents=True, exist_ok=True)
    info = {
        "data_config": data_cfg.to_dict(),
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "files": {},
    }
    for part in ("train", "valid", "test"):
        x = getattr(ds, part)
        path = folder / f"{DATASET}.{part}.inter"
        lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
        lines += [
            f"{ds.user_ids[u]}\t{ds.item_ids[i]}\t{r:g}\t{t}"
            for u, i, r, t in zip(x.users, x.items, x.ratings, x.timestamps)
        ]
        path.write_text("\n".join(lines) + "\n")
        info["files"][path.name] = {
            "rows": len(x),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    return info


# ---------------------------------------------------------------------------- RecBole side


def run_recbole(model: str, label: str, sets: list[str]) -> dict:
    out = WORK / "recbole" / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        RECBOLE_PY,
        str(ROOT / "scripts" / "recbole_run.py"),
        "--model",
        model,
        "--data-dir",
        str(WORK / "data"),
        "--out",
        str(out),
        "--emb-out",
        str(out.with_suffix(".npz")),
    ]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd="/tmp", env=os.environ | {"OMP_NUM_THREADS": "1"})
    res = json.loads(out.read_text())
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return res


def recbole_metrics_check(ctx: experiment.Context, label: str) -> dict:
    """Scores RecBole's best-model vectors with jgnas's metrics on the test set (train + valid
    excluded): the two tools' metric code must agree on the same scores."""
    z = np.load(WORK / "recbole" / f"{label}.npz", allow_pickle=True)
    ds = ctx.dataset
    u_pos = {u: k for k, u in enumerate(z["user_ids"])}
    i_pos = {i: k for k, i in enumerate(z["item_ids"])}
    user = z["user"][[u_pos[u] for u in ds.user_ids]]
    item = z["item"][[i_pos[i] for i in ds.item_ids]]
    test = metrics_lib.test_eval_set(ds)
    m = metrics_lib.rank_metrics(jnp.asarray(user), jnp.asarray(item), test, KS)
    return {
        f"{name}@{k}": float(m[name][j]) for name in ("recall", "ndcg") for j, k in enumerate(KS)
    }


# ---------------------------------------------------------------------------- jgnas rows

SPACE = Space(dims=(64,), dropouts=(0.0, 0.1), lrs=(1e-3,), l2s=(0.0, 1e-5, 1e-4))
# RecBole's defaults (overall.yaml, properties/model/*.yaml): batch 2048, lr 1e-3, 300 epochs,
# evaluation every epoch, stop after stopping_step + 1 = 11 evaluations without improvement.
RECBOLE_TRAIN = TrainConfig(epochs=300, batch_size=2048, eval_every=1, patience=11, ks=KS)
# jgnas's final retraining as the project runs it (FinalConfig defaults, TrainConfig batch).
JGNAS_TRAIN = TrainConfig(epochs=400, batch_size=4096, eval_every=5, patience=6, ks=KS)
RECBOLE_ARCH = {  # the presets with RecBole's model hyperparameters
    "mf": {"l2": 0.0},  # BPR.yaml: no regulariser at all
    "lightgcn": {"l2": 1e-5, "depth": 2},  # LightGCN.yaml: n_layers 2, reg_weight 1e-5
    "ngcf": {"l2": 1e-5, "dropout": 0.1},  # NGCF.yaml: reg_weight 1e-5, message_dropout 0.1
}
RB_REG = {"mf": "jgnas", "lightgcn": "emb_input", "ngcf": "emb_final"}  # mf: l2 = 0 anyway
RB_INIT = {"mf": "xavier_normal", "lightgcn": "xavier_uniform", "ngcf": "xavier_normal"}


def arch_dict(model: str, recbole_hp: bool) -> dict:
    d = SPACE.to_dict(SPACE.preset(model))
    if recbole_hp:
        over = dict(RECBOLE_ARCH[model])
        if "depth" in over:
            d["layers"] = d["layers"][: over["depth"]]
        d.update(over)
    return d


def rows_catalogue() -> dict[str, tuple[str, dict, Variant, TrainConfig]]:
    """label -> (model, arch dict, variant, train config).

    `<m>/preset`: the preset as the project runs it (its arch, FinalConfig's cadence, batch 4096).
    `<m>/rb_hp`: jgnas as it is, with RecBole's hyperparameter values (l2, depth, batch, cadence).
    `<m>/faithful`: RecBole's model as far as the scratch copies reach (init, EmbLoss, NGCF layer).
    `<m>/faithful~X`: the faithful row with factor X set back to jgnas's: the ablation.
    """
    rows = {}
    bs4096 = dataclasses.replace(RECBOLE_TRAIN, batch_size=4096)
    cadence = dataclasses.replace(RECBOLE_TRAIN, epochs=400, eval_every=5, patience=6)
    for m in MODELS:
        rb = arch_dict(m, True)
        base = RECBOLE_NGCF if m == "ngcf" else Variant(init=RB_INIT[m], reg=RB_REG[m])
        rows[f"{m}/preset"] = (m, arch_dict(m, False), Variant(), JGNAS_TRAIN)
        rows[f"{m}/rb_hp"] = (m, rb, Variant(), RECBOLE_TRAIN)
        rows[f"{m}/faithful"] = (m, rb, base, RECBOLE_TRAIN)
        rows[f"{m}/faithful~bs4096"] = (m, rb, base, bs4096)
        rows[f"{m}/faithful~cadence5x6"] = (m, rb, base, cadence)
        rows[f"{m}/faithful~init"] = (m, rb, dataclasses.replace(base, init="jgnas"), RECBOLE_TRAIN)
        preset_l2 = rb | {"l2": arch_dict(m, False)["l2"]}
        rows[f"{m}/faithful~l2"] = (  # jgnas's L2 term and the preset's 1e-4
            m,
            preset_l2,
            dataclasses.replace(base, reg="jgnas"),
            RECBOLE_TRAIN,
        )
        if m != "mf":  # jgnas's L2 term at RecBole's value
            rows[f"{m}/faithful~regterm"] = (
                m,
                rb,
                dataclasses.replace(base, reg="jgnas"),
                RECBOLE_TRAIN,
            )
    rows["lightgcn/faithful~depth3"] = (
        "lightgcn",
        arch_dict("lightgcn", True)
        | {"depth": 3, "layers": arch_dict("lightgcn", False)["layers"]},
        rows["lightgcn/faithful"][2],
        RECBOLE_TRAIN,
    )
    rb = arch_dict("ngcf", True)
    # The fix proposed for jgnas: its ngcf layer as it is, plus RecBole's normalised layer outputs
    # and the unprojected concatenation (and without them, each alone).
    rows["ngcf/rb_hp+concat"] = ("ngcf", rb, Variant(combine="concat"), RECBOLE_TRAIN)
    rows["ngcf/rb_hp+normalize"] = ("ngcf", rb, Variant(normalize=True), RECBOLE_TRAIN)
    rows["ngcf/rb_hp+normalize+concat"] = (
        "ngcf",
        rb,
        Variant(normalize=True, combine="concat"),
        RECBOLE_TRAIN,
    )
    rows["ngcf/rb_hp+normalize+concat+init"] = (
        "ngcf",
        rb,
        Variant(init="xavier_normal", normalize=True, combine="concat"),
        RECBOLE_TRAIN,
    )
    rows["ngcf/rb_hp+normalize+concat+self_term"] = (
        "ngcf",
        rb,
        Variant(self_term=True, normalize=True, combine="concat"),
        RECBOLE_TRAIN,
    )
    rows["ngcf/rb_hp+normalize+concat+init+self_term"] = (
        "ngcf",
        rb,
        Variant(init="xavier_normal", self_term=True, normalize=True, combine="concat"),
        RECBOLE_TRAIN,
    )
    for f in ("self_term", "bias", "dropout", "normalize", "combine"):
        minus = dataclasses.replace(RECBOLE_NGCF, **{f: getattr(Variant(), f)})
        rows[f"ngcf/faithful~{f}"] = ("ngcf", rb, minus, RECBOLE_TRAIN)
    return rows


def keep(d: dict) -> dict:
    return {k: v for k, v in d.items() if k.split("@")[0] in ("recall", "ndcg")}


def run_jgnas_row(ctx, label, model, arch_d, variant, train_cfg, seeds, seed=0) -> dict:
    """One row through `experiment.retrain_and_test`. seed: its root seed (0: the first seeds;
    `extend` runs more seeds with root 1 and merges them)."""
    arch = SPACE.from_dict(arch_d, where=label)
    t0 = time.perf_counter()
    with patched(variant, ctx.dataset.n_users, model == "ngcf"):
        r = experiment.retrain_and_test(
            ctx, [(label, arch)], seeds=seeds, train_cfg=train_cfg, seed=seed, log=experiment.quiet
        )
    row = r.rows[0]
    return {
        "root_seeds": [seed] * seeds,
        "test_per_seed": [keep(t) for t in row["test_per_seed"]],
        "model": model,
        "arch": arch_d,
        "describe": row["describe"],
        "variant": dataclasses.asdict(variant),
        "train": {
            k: getattr(train_cfg, k) for k in ("epochs", "batch_size", "eval_every", "patience")
        },
        "seeds": seeds,
        "best_epoch": row["best_epoch"],
        "epochs_run": [
            int(np.sum(np.isfinite(np.asarray(r.result.loss)[m]))) for m in range(seeds)
        ],
        "failed": row["failed"],
        "valid": {k: v["mean"] for k, v in keep(row["valid"]).items()},
        "test": {k: v["mean"] for k, v in keep(row["test"]).items()},
        "test_std": {k: v["std"] for k, v in keep(row["test"]).items()},
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


def extend(old: dict, new: dict) -> dict:
    """old's seeds plus new's (root seed 1): means and population stds over all of them."""
    if "test_per_seed" not in old:  # a one-seed row written before per-seed values were kept
        old = old | {"test_per_seed": [old["test"]], "root_seeds": [0]}
    per_seed = old["test_per_seed"] + new["test_per_seed"]
    out = dict(old)
    out.update(
        test_per_seed=per_seed,
        root_seeds=old["root_seeds"] + new["root_seeds"],
        seeds=len(per_seed),
        best_epoch=list(old["best_epoch"]) + list(new["best_epoch"]),
        epochs_run=list(old["epochs_run"]) + list(new["epochs_run"]),
        failed=old["failed"] + new["failed"],
        test={k: float(np.mean([t[k] for t in per_seed])) for k in per_seed[0]},
        test_std={k: float(np.std([t[k] for t in per_seed])) for k in per_seed[0]},
        wall_seconds=old["wall_seconds"] + new["wall_seconds"],
    )
    out.pop("valid", None)  # kept for the first seed only; the merged row reports test
    return out


def context() -> experiment.Context:
    cfg = config_lib.from_dict({})
    cfg = dataclasses.replace(cfg, data=DataConfig(), space=SPACE, train=RECBOLE_TRAIN)
    return experiment.prepare(cfg, log=lambda m: None)


# ---------------------------------------------------------------------------- report


def rel(a: float, b: float) -> str:
    return f"{100.0 * (a - b) / b:+.1f} %"


PARITY_ROWS = {  # model -> rows of the parity table, in order
    "mf": ["mf/preset", "mf/rb_hp", "mf/faithful"],
    "lightgcn": ["lightgcn/preset", "lightgcn/rb_hp", "lightgcn/faithful"],
    "ngcf": [
        "ngcf/preset",
        "ngcf/rb_hp",
        "ngcf/rb_hp+normalize+concat+init+self_term",
        "ngcf/faithful",
    ],
}


def report() -> str:
    """The parity table (RecBole vs jgnas rows) and the ablation table, as markdown."""
    res = load_results()
    rb, jg = res.get("recbole", {}), res.get("jgnas", {})

    def cells(row, ref):
        r, n = row["test"]["recall@20"], row["test"]["ndcg@20"]
        R, N = ref["test"]["recall@20"], ref["test"]["ndcg@20"]
        sd = row.get("test_std", {})
        pm = (lambda k: f" ± {sd[k]:.4f}") if row.get("seeds", 1) > 1 else (lambda k: "")
        return f"{r:.4f}{pm('recall@20')} | {n:.4f}{pm('ndcg@20')} | {rel(r, R)} | {rel(n, N)}"

    out = [
        "| model | row | seeds | best epoch | test Recall@20 | test NDCG@20 | ΔRecall@20 | ΔNDCG@20 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, name in MODELS.items():
        ref = rb.get(name)
        if not ref:
            continue
        out.append(
            f"| {name} | **RecBole 1.2.1** | 1 | {ref['best_epoch']} | "
            f"{ref['test']['recall@20']:.4f} | {ref['test']['ndcg@20']:.4f} | | |"
        )
        for label in PARITY_ROWS[m]:
            if label in jg:
                row = jg[label]
                out.append(
                    f"| {name} | `{label}` | {row['seeds']} | "
                    f"{'/'.join(map(str, row['best_epoch']))} | {cells(row, ref)} |"
                )
    out += [
        "",
        "| row | seeds | test Recall@20 | test NDCG@20 | vs RecBole R@20 | vs RecBole N@20 |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in sorted(jg.items()):
        if any(label in v for v in PARITY_ROWS.values()):
            continue
        ref = rb.get(MODELS[row["model"]])
        if ref:
            out.append(f"| `{label}` | {row['seeds']} | {cells(row, ref)} |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["export", "recbole", "metrics", "jgnas", "report"])
    ap.add_argument("--models", default="BPR,LightGCN,NGCF")
    ap.add_argument("--rows", default="", help="comma-separated jgnas row labels (see --list)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument(
        "--more-seeds",
        type=int,
        default=0,
        help="add this many seeds (root seed 1) to rows already in results.json",
    )
    ap.add_argument("--set", action="append", default=[], help="RecBole override KEY=VALUE")
    ap.add_argument("--label", default="", help="RecBole result label (default: the model)")
    args = ap.parse_args(argv)
    if args.command == "export":
        info = export(DataConfig(), WORK / "data" / DATASET)
        save_results({"split": info})
        print(json.dumps(info, indent=1))
    elif args.command == "recbole":
        for model in args.models.split(","):
            label = args.label or model
            save_results({"recbole": {label: run_recbole(model, label, args.set)}})
    elif args.command == "metrics":
        ctx = context()
        out = {"scratch_vs_jgnas_max_abs": check_scratch(ctx)}
        for label, ref in load_results().get("recbole", {}).items():
            mine = recbole_metrics_check(ctx, label)
            out[label] = {"recbole": {k: ref["test"][k] for k in mine}, "jgnas_metrics": mine}
        save_results({"metrics_check": out})
        print(json.dumps(out, indent=1))
    elif args.command == "jgnas":
        cat = rows_catalogue()
        if args.list:
            print("\n".join(cat))
            return
        ctx = context()
        for label in args.rows.split(","):
            model, arch_d, variant, train_cfg = cat[label]
            if args.more_seeds:
                new = run_jgnas_row(
                    ctx, label, model, arch_d, variant, train_cfg, args.more_seeds, seed=1
                )
                row = extend(load_results()["jgnas"][label], new)
            else:
                row = run_jgnas_row(ctx, label, model, arch_d, variant, train_cfg, args.seeds)
            save_results({"jgnas": {label: row}})
            print(
                label,
                json.dumps({k: row[k] for k in ("best_epoch", "test", "wall_seconds")}),
                flush=True,
            )
    else:
        print(report())


if __name__ == "__main__":
    main()
