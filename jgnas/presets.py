"""The published models as points of the search space: arch dicts by name (`Space.preset`).

Published hyperparameters: embedding 64, lr 1e-3, L2 1e-4 (LightGCN's and NGCF's papers and
RecBole's defaults) and the published objective: BPR with one uniform negative, no contrastive
term. NGCF as published (and in RecBole 1.2.1): each layer's output L2-normalised, the layers
concatenated for scoring. `Space.preset` builds the `Arch` and fails when the space cannot hold it.
"""

from __future__ import annotations


def _layers(n: int, op: str, transform: str, act: str, norm: str = "none") -> list[dict]:
    return [{"op": op, "transform": transform, "act": act, "residual": False, "norm": norm}] * n


def _preset(layers: list[dict], combine: str, dropout: float = 0.0, features: str = "id") -> dict:
    return {
        "depth": len(layers),
        "layers": layers,
        "combine": combine,
        "dim": 64,
        "dropout": dropout,
        "lr": 1e-3,
        "l2": 1e-4,
        "features": features,
        **BPR,
    }


#: The published objective: BPR, one uniform negative per positive, no contrastive term.
BPR = {"loss": "bpr", "negatives": 1, "temperature": 1.0, "sampler": "uniform", "ssl": 0.0}


PRESETS: dict[str, dict] = {
    "mf": _preset([], "last"),
    "lightgcn": _preset(_layers(3, "lightgcn", "identity", "identity"), "mean"),
    "ngcf": _preset(_layers(3, "ngcf", "linear", "leaky_relu", norm="l2"), "concat", dropout=0.1),
    "gcn": _preset(_layers(2, "gcn", "linear", "relu"), "mean"),
    "gat": _preset(_layers(2, "gat", "linear", "elu"), "mean"),
    "sage": _preset(_layers(2, "sage", "linear", "relu"), "mean"),
    "mf+text": _preset([], "last", features="id+text"),
    "lightgcn+text": _preset(
        _layers(3, "lightgcn", "identity", "identity"), "mean", features="id+text"
    ),
    "lightgcn-textonly": _preset(
        _layers(3, "lightgcn", "identity", "identity"), "mean", features="text"
    ),
}
