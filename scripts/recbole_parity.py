"""Parity of jgnas's `mf`, `lightgcn` and `ngcf` with RecBole 1.2.1 on one shared split (issue 9).

    python scripts/recbole_parity.py export            # the split, as RecBole benchmark files
    python scripts/recbole_parity.py recbole           # BPR, LightGCN, NGCF in /opt/recbole-venv
    python scripts/recbole_parity.py metrics           # RecBole's vectors through jgnas's metrics
    python scripts/recbole_parity.py jgnas --rows ...  # jgnas rows (see --list)
    python scripts/recbole_parity.py report            # README table from results.json

Every number lands in `third_party/recbole_parity/results.json` (each command updates its part).

The split is jgnas's default protocol split (`DataConfig()`: ml-100k, 80/10/10 per user, seed 0),
written with raw ids as `ml100k_jgnas.{train,valid,test}.inter` for RecBole's
`benchmark_filename` option, so both tools train, select and test on the same interactions.
RecBole runs in a separate venv (`scripts/recbole_run.py`): torch never enters jgnas.

The jgnas rows go through the library as it is (`experiment.prepare`,
`experiment.retrain_and_test`) with the presets' arch dicts: the parity rows patch nothing. jgnas
now holds every model factor the first study found (at commit 3937c3d): Xavier-normal ID
embeddings, the unprojected NGCF concatenation, the per-layer L2 `norm` gene and NGCF's
self-connection. The rows of that study stay in results.json under `jgnas_before`. Only the
`lightgcn/rb_hp+rb_*` rows patch in RecBole training factors jgnas lacks (its permutation
sampler, xavier_uniform, EmbLoss: `scripts/recbole_scratch.py`). The `jgnas` command refuses to run when the split no longer matches the exported
one (the RecBole numbers are only comparable on the same interactions).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import tempfile
import time

import jax.numpy as jnp
import numpy as np
from recbole_scratch import (  # noqa: E402  (scripts/)
    RECBOLE_LIGHTGCN,
    RECBOLE_SAMPLING,
    Variant,
    patched,
)

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

# The objective genes pinned to the presets' published BPR (one uniform negative, no contrastive
# term): every member then draws exactly one negative per positive, as RecBole does.
SPACE = Space(
    dims=(64,),
    dropouts=(0.0, 0.1),
    lrs=(1e-3,),
    l2s=(0.0, 1e-5, 1e-4),
    losses=("bpr",),
    negatives=(1,),
    temperatures=(1.0,),
    samplers=("uniform",),
    ssl_weights=(0.0,),
)
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


def arch_dict(model: str, recbole_hp: bool) -> dict:
    """The preset's arch dict, with RecBole's values of l2, depth and dropout when recbole_hp."""
    d = SPACE.to_dict(SPACE.preset(model))
    if recbole_hp:
        over = dict(RECBOLE_ARCH[model])
        if "depth" in over:
            d["layers"] = d["layers"][: over["depth"]]
        d.update(over)
    return d


def rows_catalogue() -> dict[str, tuple[str, dict, TrainConfig, Variant]]:
    """label -> (model, arch dict, train config, scratch variant). Variant() is jgnas unpatched.

    `<m>/rb_hp`: the preset at RecBole's hyperparameter values (l2, depth, dropout, batch, lr,
      epochs, cadence, patience): the parity row.
    `<m>/preset`: the preset as the project runs it (its arch, FinalConfig's cadence, batch 4096).
    `<m>/rb_hp~X`: the parity row with one factor set to the project's value (an ablation that
      the genes or the train config express).
    `lightgcn/rb_hp+rb_X`: the parity row with RecBole's training factors X patched in
      (`recbole_scratch.Variant`): sampler (one permutation per epoch), short_last (the epoch's
      last batch as short as RecBole's), init (xavier_uniform), embloss (EmbLoss).
    """
    rows = {}
    bs4096 = dataclasses.replace(RECBOLE_TRAIN, batch_size=4096)
    cadence = dataclasses.replace(RECBOLE_TRAIN, epochs=400, eval_every=5, patience=6)
    for m in MODELS:
        rb = arch_dict(m, True)
        rows[f"{m}/rb_hp"] = (m, rb, RECBOLE_TRAIN, Variant())
        rows[f"{m}/preset"] = (m, arch_dict(m, False), JGNAS_TRAIN, Variant())
        rows[f"{m}/rb_hp~bs4096"] = (m, rb, bs4096, Variant())
        rows[f"{m}/rb_hp~cadence5x6"] = (m, rb, cadence, Variant())
        rb_l2 = rb | {"l2": arch_dict(m, False)["l2"]}
        rows[f"{m}/rb_hp~l2"] = (m, rb_l2, RECBOLE_TRAIN, Variant())
    preset_lgcn = arch_dict("lightgcn", False)
    rows["lightgcn/rb_hp~depth3"] = (
        "lightgcn",
        arch_dict("lightgcn", True) | {"depth": 3, "layers": preset_lgcn["layers"]},
        RECBOLE_TRAIN,
        Variant(),
    )
    rb = arch_dict("lightgcn", True)
    for label, v in (
        ("rb_sampler+rb_init+rb_embloss", RECBOLE_LIGHTGCN),
        ("rb_sampler", Variant(sampler="permutation")),
        ("rb_init+rb_embloss", Variant(init="xavier_uniform", reg="emb_loss")),
        ("rb_sampler+rb_short_last", RECBOLE_SAMPLING),
        ("rb_short_last", Variant(short_last=True)),
    ):
        rows[f"lightgcn/rb_hp+{label}"] = ("lightgcn", rb, RECBOLE_TRAIN, v)
    rb = arch_dict("ngcf", True)
    rows["ngcf/rb_hp~norm"] = (  # no per-layer L2 normalisation
        "ngcf",
        rb | {"layers": [layer | {"norm": "none"} for layer in rb["layers"]]},
        RECBOLE_TRAIN,
        Variant(),
    )
    rows["ngcf/rb_hp~dropout0"] = ("ngcf", rb | {"dropout": 0.0}, RECBOLE_TRAIN, Variant())
    return rows


def keep(d: dict) -> dict:
    return {k: v for k, v in d.items() if k.split("@")[0] in ("recall", "ndcg")}


def run_jgnas_row(ctx, label, model, arch_d, train_cfg, variant, seeds, seed=0) -> dict:
    """One row through `experiment.retrain_and_test`, all its seeds as one population. seed: its
    root seed. variant: the scratch patches (Variant(): none)."""
    arch = SPACE.from_dict(arch_d, where=label)
    t0 = time.perf_counter()
    with patched(variant):
        r = experiment.retrain_and_test(
            ctx, [(label, arch)], seeds=seeds, train_cfg=train_cfg, seed=seed, log=experiment.quiet
        )
    row = r.rows[0]
    extra = {} if variant == Variant() else {"variant": dataclasses.asdict(variant)}
    return extra | {
        "root_seed": seed,
        "test_per_seed": [keep(t) for t in row["test_per_seed"]],
        "model": model,
        "arch": arch_d,
        "describe": row["describe"],
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
        # valid NDCG@20 per evaluation, mean over the seeds (None after every seed stopped): to
        # set beside RecBole's `valid_curve`
        "valid_curve": row["valid_curve"]["mean"],
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


def context() -> experiment.Context:
    cfg = config_lib.from_dict({})
    cfg = dataclasses.replace(cfg, data=DataConfig(), space=SPACE, train=RECBOLE_TRAIN)
    return experiment.prepare(cfg, log=lambda m: None)


def split_mismatch(recorded: dict, data_cfg: DataConfig | None = None) -> list[str]:
    """The exported files whose rows or sha256 differ from `recorded` (results.json's "split")
    when the split of `data_cfg` (default `DataConfig()`) is written again now; [] when nothing
    was recorded."""
    if not recorded.get("files"):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        now = export(data_cfg or DataConfig(), pathlib.Path(tmp))["files"]
    return sorted(k for k, v in recorded["files"].items() if now.get(k) != v)


# ---------------------------------------------------------------------------- report


def rel(a: float, b: float) -> str:
    return f"{100.0 * (a - b) / b:+.1f} %"


PARITY_ROWS = {m: [f"{m}/rb_hp", f"{m}/preset"] for m in MODELS}  # the main table, in order
TARGET = 2.0  # the issue's target: |Δ| <= 2 % on test Recall@20 and NDCG@20


def report(res: dict | None = None) -> str:
    """The parity table (RecBole vs the jgnas rows) and the other rows, as markdown."""
    res = load_results() if res is None else res
    rb, jg = res.get("recbole", {}), res.get("jgnas", {})

    def cells(row, ref):
        r, n = row["test"]["recall@20"], row["test"]["ndcg@20"]
        R, N = ref["test"]["recall@20"], ref["test"]["ndcg@20"]
        sd = row.get("test_std", {})
        pm = (lambda k: f" ± {sd[k]:.4f}") if row.get("seeds", 1) > 1 else (lambda k: "")
        return f"{r:.4f}{pm('recall@20')} | {n:.4f}{pm('ndcg@20')} | {rel(r, R)} | {rel(n, N)}"

    def within(row, ref):
        gaps = [abs(row["test"][k] / ref["test"][k] - 1.0) * 100 for k in ("recall@20", "ndcg@20")]
        return "yes" if max(gaps) <= TARGET else "no"

    out = [
        "| model | row | seeds | best epoch | test Recall@20 | test NDCG@20 | ΔRecall@20 | ΔNDCG@20 "
        f"| within ±{TARGET:g} % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, name in MODELS.items():
        ref = rb.get(name)
        if not ref:
            continue
        out.append(
            f"| {name} | **RecBole 1.2.1** | 1 | {ref['best_epoch']} | "
            f"{ref['test']['recall@20']:.4f} | {ref['test']['ndcg@20']:.4f} | | | |"
        )
        for label in PARITY_ROWS[m]:
            if label in jg:
                row = jg[label]
                out.append(
                    f"| {name} | `{label}` | {row['seeds']} | "
                    f"{'/'.join(map(str, row['best_epoch']))} | {cells(row, ref)} | "
                    f"{within(row, ref)} |"
                )
    others = {k: v for k, v in sorted(jg.items()) if not any(k in r for r in PARITY_ROWS.values())}
    if others:
        out += [
            "",
            "| row | seeds | best epoch | test Recall@20 | test NDCG@20 | vs RecBole R@20 "
            "| vs RecBole N@20 |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, row in others.items():
            ref = rb.get(MODELS[row["model"]])
            if ref:
                out.append(
                    f"| `{label}` | {row['seeds']} | {'/'.join(map(str, row['best_epoch']))} | "
                    f"{cells(row, ref)} |"
                )
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["export", "recbole", "metrics", "jgnas", "report"])
    ap.add_argument("--models", default="BPR,LightGCN,NGCF")
    ap.add_argument("--rows", default="", help="comma-separated jgnas row labels (see --list)")
    ap.add_argument("--list", action="store_true", help="jgnas: print the row labels and stop")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="jgnas: the rows' root seed")
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
        out = {}
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
        unknown = [r for r in args.rows.split(",") if r not in cat]
        if unknown:
            raise SystemExit(f"unknown rows {unknown}; see --list")
        bad = split_mismatch(load_results().get("split", {}))
        if bad:
            raise SystemExit(
                f"the split differs from the exported one ({', '.join(bad)}): the RecBole numbers "
                "in results.json are not comparable; run `export` and `recbole` again"
            )
        ctx = context()
        for label in args.rows.split(","):
            model, arch_d, train_cfg, variant = cat[label]
            row = run_jgnas_row(
                ctx, label, model, arch_d, train_cfg, variant, args.seeds, args.seed
            )
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
