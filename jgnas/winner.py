"""A finished run's winner, loaded (`load_winner`): what `jgnas export` and the HTTP service serve.

The loader rebuilds the experiment's data and graph from the run's config.yaml, restores
best_model/ with orbax and computes the winner's representations with `model.embeddings`, as
`jgnas.serve.load` does.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgnas import config as config_lib
from jgnas import data as data_lib
from jgnas import model as model_lib
from jgnas.space import FEATURES, Arch
from jgnas.train import init_member


@dataclasses.dataclass
class Winner:
    """A finished run's winner, loaded: its experiment context, arch, parameters, representations.

    ctx: `experiment.Context` (dataset, space, graph and text inputs). arch: numpy `Arch`.
    params: numpy pytree (`model.init_params` layout). user_emb [U, d], item_emb [I, d]: float32.
    version: a short hash of best_arch.json and the parameters (the model version served).
    """

    run_dir: pathlib.Path
    ctx: Any
    arch: Arch
    params: dict
    user_emb: np.ndarray
    item_emb: np.ndarray
    describe: str
    version: str
    _cold_fn: Any = dataclasses.field(default=None, init=False, repr=False)

    @property
    def features(self) -> str:
        """The input-feature gene: "id", "text" or "id+text"."""
        return FEATURES[int(self.arch.features)]

    @property
    def uses_text(self) -> bool:
        return self.features != "id"

    def cold_item_vectors(self, text_vecs: np.ndarray) -> np.ndarray:
        """Final representations of new items from their frozen text vectors [m, D_text].

        A new item is what the model makes of a node without interactions: the winner runs on a
        graph where the m items are isolated (with the run's self-loop and edge-weight options),
        with a zero ID embedding (nothing was learned for it) and its text through the learned
        projection. Adding an isolated node changes no other node's degree, so every existing
        representation stays as it is. Only meaningful when the winner reads text (`uses_text`).
        """
        text_vecs = np.asarray(text_vecs, np.float32)
        m = text_vecs.shape[0]
        train_cfg = self.ctx.cfg.train
        empty = data_lib.Interactions(
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
        )
        from jgnas.graph import build

        graph = build(
            empty, 1, m, self_loops=train_cfg.self_loops, edge_weight=train_cfg.edge_weight
        )
        text = np.concatenate([np.zeros((1, text_vecs.shape[1]), np.float32), text_vecs])
        params = dict(self.params, emb=np.zeros((1 + m, self.params["emb"].shape[1]), np.float32))
        if self._cold_fn is None:
            # A static arch (Python-int genes): only its own layers are traced, so this compiles
            # in a fraction of the supernet's time.
            arch, space = jax.tree.map(np.asarray, self.arch), self.ctx.space
            self._cold_fn = jax.jit(
                lambda p, i: model_lib.embeddings(p, arch, i, space=space, mode="switch")
            )
        inputs = model_lib.Inputs(graph, jnp.asarray(text))
        if self.ctx.space.side:  # a new item has text but no side values: its side input is 0
            none = jnp.zeros((1 + m, 1), jnp.int32)
            inputs = inputs.replace(side_ids=none, side_w=jnp.zeros((1 + m, 1), jnp.float32))
        _, items = self._cold_fn(params, inputs)
        return np.asarray(items)


@functools.cache
def _embeddings_fn(space):
    return jax.jit(lambda p, a, i: model_lib.embeddings(p, a, i, space=space, mode="switch"))


def _version(arch_text: str, params: dict) -> str:
    h = hashlib.sha256(arch_text.encode())
    for leaf in jax.tree.leaves(params):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:12]


def load_winner(run_dir: str | pathlib.Path, log=None) -> Winner:
    """Loads config.yaml, best_arch.json and best_model/ of a finished run directory.

    Raises `DataError` (one line) when a file is missing."""
    import orbax.checkpoint as ocp

    from jgnas import experiment

    run_dir = pathlib.Path(run_dir)
    for name in ("config.yaml", "best_arch.json", "best_model"):
        if not (run_dir / name).exists():
            raise data_lib.DataError(f"{run_dir}: no {name}; is the search finished?")
    cfg = config_lib.load(run_dir / "config.yaml")
    ctx = experiment.prepare(cfg, log=log or experiment.quiet)
    arch_text = (run_dir / "best_arch.json").read_text()
    arch = ctx.space.from_json(arch_text, where="best_arch.json")
    template = init_member(jax.random.key(0), ctx.space, ctx.data.inputs)
    abstract = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), template)
    with ocp.StandardCheckpointer() as ckpt:
        params = ckpt.restore((run_dir / "best_model").absolute(), abstract)
    params = jax.tree.map(np.asarray, params)
    user, item = _embeddings_fn(ctx.space)(params, jax.tree.map(jnp.asarray, arch), ctx.data.inputs)
    return Winner(
        run_dir=run_dir,
        ctx=ctx,
        arch=arch,
        params=params,
        user_emb=np.asarray(user),
        item_emb=np.asarray(item),
        describe=ctx.space.describe(arch),
        version=_version(arch_text, params),
    )
