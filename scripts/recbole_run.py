"""Runs one RecBole 1.2.1 model on an exported split and writes its metrics as JSON.

Runs in the separate RecBole venv (never in jgnas's): torch and recbole are not jgnas dependencies.
`scripts/recbole_parity.py` calls it; by hand:

    /opt/recbole-venv/bin/python scripts/recbole_run.py --model NGCF --data-dir DIR --out out.json \
        [--set train_batch_size=4096 ...]

DIR holds `ml100k_jgnas/ml100k_jgnas.{train,valid,test}.inter` (RecBole's `benchmark_filename` option), so
RecBole trains, selects and tests on exactly the interactions jgnas does. Every hyperparameter is
RecBole's own default (its `overall.yaml` and `properties/model/<MODEL>.yaml`) unless `--set`
changes it; the only protocol settings made here are the split files, full ranking, the metrics
(Recall/NDCG@10,20) and the early-stopping metric (NDCG@20, as jgnas selects on).

RecBole 1.2.1 predates the numpy, scipy and torch installed beside it; `patch()` makes the
smallest compatibility fixes as monkeypatches at run time (the installed package is untouched).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np
import yaml

# Not "ml-100k": RecBole points that name at its bundled example files, whatever data_path says.
DATASET = "ml100k_jgnas"

PATCHES = [
    "numpy 2 removed np.float_, np.complex_ and np.unicode_, which recbole's Config."
    "compatibility_settings reads to restore np.float/np.int/...: set to np.float64, np.complex128 "
    "and np.str_ first",
    "scipy >= 1.12 removed dok_matrix._update, which LightGCN/NGCF use to fill the adjacency: "
    "restored as an update of the matrix's internal dict (no value checks, as before)",
    "torch >= 2.6 defaults torch.load(weights_only=True), which refuses RecBole's checkpoints "
    "(they pickle the config): torch.load defaults to weights_only=False again",
]


def patch() -> None:
    """The compatibility monkeypatches listed in PATCHES (see the module docstring)."""
    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, value)
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = lambda self, data: self._dict.update(data)
    import torch

    load = torch.load

    def load_full(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return load(*args, **kwargs)

    torch.load = load_full


def setup(model: str, data_dir: str, overrides: dict, checkpoint_dir: str, threads: int = 1):
    """RecBole's own pipeline up to a trainer: (config, dataset, (train, valid, test), net,
    trainer)."""
    patch()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    config_dict = {
        "data_path": data_dir,
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
        "metrics": ["Recall", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "NDCG@20",
        "use_gpu": False,
        "show_progress": False,
        "checkpoint_dir": checkpoint_dir,
        "state": "WARNING",
        "metric_decimal_place": 6,
        **overrides,
    }
    config = Config(model=model, dataset=DATASET, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(threads)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    return config, dataset, (train_data, valid_data, test_data), net, trainer


def time_epochs(
    model: str, data_dir: str, overrides: dict, checkpoint_dir: str, epochs: int, threads: int
) -> dict:
    """Wall seconds of each of `epochs` training epochs (RecBole's `Trainer._train_epoch`: the
    negative sampling, the batches, forward, backward and the optimiser step; no evaluation)."""
    config, _, (train_data, _, _), _, trainer = setup(
        model, data_dir, overrides, checkpoint_dir, threads
    )
    seconds = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        seconds.append(time.perf_counter() - t0)
    keys = ("embedding_size", "train_batch_size", "n_layers", "hidden_size_list")
    return {
        "model": model,
        "threads": threads,
        "overrides": overrides,
        "config": {k: config[k] for k in keys if config[k] is not None},
        "epoch_seconds": seconds,
    }


def run(
    model: str,
    data_dir: str,
    overrides: dict,
    checkpoint_dir: str,
    emb_out: str | None = None,
    from_checkpoint: str | None = None,
    threads: int = 1,
) -> dict:
    import torch

    config, dataset, (train_data, valid_data, test_data), net, trainer = setup(
        model, data_dir, overrides, checkpoint_dir, threads
    )
    curve: list[float] = []
    t0 = time.perf_counter()
    if from_checkpoint:  # a finished run's best model: evaluate it again (no curve, no epochs run)
        trainer.saved_model_file = from_checkpoint
        best_epoch = int(torch.load(from_checkpoint, weights_only=False)["epoch"]) + 1
        valid = trainer.evaluate(valid_data, load_best_model=True, model_file=from_checkpoint)
        epochs_run = best_epoch + config["stopping_step"] + 1
    else:
        trainer.fit(
            train_data,
            valid_data,
            saved=True,
            verbose=False,
            callback_fn=lambda epoch, score: curve.append(float(score)),
        )
        valid = trainer.best_valid_result
        best = int(len(curve) - 1 - int(np.argmax(curve[::-1])))  # RecBole keeps the last tie
        best_epoch = (best + 1) * config["eval_step"]
        epochs_run = len(trainer.train_loss_dict)
    seconds = time.perf_counter() - t0
    test = trainer.evaluate(test_data, load_best_model=True, model_file=trainer.saved_model_file)
    if emb_out:  # the best model's scoring vectors, keyed by raw ids, for jgnas's metrics
        net.eval()
        with torch.no_grad():
            if model == "BPR":
                user, item = net.user_embedding.weight, net.item_embedding.weight
            else:
                user, item = net.forward()
        np.savez(
            emb_out,
            user=user.detach().numpy()[1:],
            item=item.detach().numpy()[1:],  # row 0 is RecBole's [PAD]
            user_ids=dataset.field2id_token["user_id"][1:],
            item_ids=dataset.field2id_token["item_id"][1:],
        )
    keys = (
        "model",
        "embedding_size",
        "learning_rate",
        "train_batch_size",
        "epochs",
        "eval_step",
        "stopping_step",
        "reg_weight",
        "n_layers",
        "hidden_size_list",
        "node_dropout",
        "message_dropout",
        "require_pow",
        "weight_decay",
        "seed",
        "train_neg_sample_args",
        "valid_metric",
    )
    return {
        "model": model,
        "overrides": overrides,
        "config": {k: config[k] for k in keys if config[k] is not None},
        "n_users": int(dataset.user_num - 1),
        "n_items": int(dataset.item_num - 1),
        "n_train": len(train_data._dataset),
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "from_checkpoint": from_checkpoint,
        "valid": {k: float(v) for k, v in valid.items()},
        "test": {k: float(v) for k, v in test.items()},
        "valid_curve": curve,
        "train_seconds": round(seconds, 1),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=["BPR", "LightGCN", "NGCF"])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint-dir", default="/tmp/recbole_parity_ckpt")
    ap.add_argument("--emb-out", help="write the best model's user/item vectors here (.npz)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared 2-core machine two spinning OpenMP threads "
        "ran LightGCN 4x slower)",
    )
    ap.add_argument("--from-checkpoint", help="evaluate this saved best model instead of training")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE (YAML value)")
    ap.add_argument(
        "--time-epochs",
        type=int,
        default=0,
        help="only time this many training epochs (no evaluation; scripts/bench.py --peer)",
    )
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    if args.time_epochs:
        out = time_epochs(
            args.model, args.data_dir, overrides, args.checkpoint_dir, args.time_epochs,
            args.threads,
        )  # fmt: skip
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        return
    out = run(
        args.model,
        args.data_dir,
        overrides,
        args.checkpoint_dir,
        args.emb_out,
        args.from_checkpoint,
        args.threads,
    )
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(
        json.dumps(
            {k: out[k] for k in ("model", "epochs_run", "best_epoch", "test", "train_seconds")}
        ),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
