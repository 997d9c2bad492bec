"""Top-K recommendations from a finished run directory (the winner's saved parameters)."""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jgnas import config as config_lib
from jgnas import data as data_lib
from jgnas import model as model_lib
from jgnas.train import init_member


@dataclasses.dataclass
class Recommender:
    """A loaded run: the dataset (for id maps, titles and seen items) and the winner's embeddings."""

    dataset: data_lib.Dataset
    user_emb: np.ndarray  # [U, d]
    item_emb: np.ndarray  # [I, d]
    describe: str

    def recommend(self, raw_user: str, k: int = 10, exclude_seen: bool = True) -> list[dict]:
        """The k highest-scored items for a raw user id (training items excluded by default)."""
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        ds = self.dataset
        hits = np.nonzero(ds.user_ids.astype(str) == str(raw_user))[0]
        if hits.size == 0:
            raise data_lib.DataError(f"user {raw_user!r} is not in dataset {ds.name}")
        u = int(hits[0])
        scores = self.item_emb @ self.user_emb[u]
        if exclude_seen:
            scores[ds.train.items[ds.train.users == u]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        titles = ds.item_features.get("title")
        return [
            {
                "rank": r + 1,
                "item": str(ds.item_ids[i]),
                "title": "" if titles is None else str(titles[i]),
                "score": float(scores[i]),
            }
            for r, i in enumerate(top)
        ]


def load(run_dir: str | pathlib.Path) -> Recommender:
    """Loads config.yaml, best_arch.json and best_model/ from a run directory."""
    from jgnas import experiment

    run_dir = pathlib.Path(run_dir)
    for name in ("config.yaml", "best_arch.json", "best_model"):
        if not (run_dir / name).exists():
            raise data_lib.DataError(f"{run_dir}: no {name}; is the search finished?")
    cfg = config_lib.load(run_dir / "config.yaml")
    ctx = experiment.prepare(cfg, log=experiment.quiet)
    arch = ctx.space.from_json((run_dir / "best_arch.json").read_text(), where="best_arch.json")
    template = init_member(jax.random.key(0), ctx.space, ctx.data.inputs)
    abstract = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), template)
    params = ocp.StandardCheckpointer().restore((run_dir / "best_model").absolute(), abstract)
    arch_j = jax.tree.map(jnp.asarray, arch)
    user, item = jax.jit(
        lambda p, a, i: model_lib.embeddings(p, a, i, space=ctx.space, mode="switch")
    )(params, arch_j, ctx.data.inputs)
    return Recommender(ctx.dataset, np.asarray(user), np.asarray(item), ctx.space.describe(arch))
