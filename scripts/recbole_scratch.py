"""RecBole's training factors that jgnas does not have, as scratch patches for one parity row.

jgnas now holds every model factor of the first parity study (Xavier-normal init, the unprojected
concat, the `norm` gene, NGCF's self-connection), so the presets run unpatched. What is left here
are three factors of RecBole's LightGCN training that jgnas does not express, used to look for the
cause of LightGCN's remaining gap (`scripts/recbole_parity.py`, rows `lightgcn/rb_hp+rb_*`):

- sampler "permutation": each epoch's positives are one permutation of the train interactions
  (RecBole's shuffled `TrainDataLoader`), the last batch wrapping around to the permutation's
  start, with negatives drawn as jgnas draws them; jgnas draws positives with replacement.
- short_last: the epoch's last batch holds only the n_train - (steps - 1) · B interactions left
  over (54 of 2048 on ml-100k), as torch's `DataLoader(drop_last=False)` gives RecBole, so that
  step's loss is the mean over those few triples. The batch shape is static, so the leftover
  triples (positive and negative) are repeated to fill it, which keeps that mean to within one
  repeat in 44. With sampler "jgnas", the last batch is the first `rem` rows of jgnas's draw.
- init "xavier_uniform": RecBole LightGCN's `xavier_uniform_` ID embeddings (per table, bound
  sqrt(6 / (rows + d)): the same variance as jgnas's Xavier-normal).
- reg "emb_loss": RecBole's EmbLoss, `l2 · (‖E_u‖_F + ‖E_i‖_F + ‖E_j‖_F) / B` on the batch's
  input embeddings (norms not squared), in place of jgnas's `l2 · ½ Σ ‖e‖² / B`.

`patched(variant)` swaps the functions in for one `retrain_and_test` call and restores them after;
`Variant()` patches nothing. Nothing here is imported by jgnas. The sampler patch rewrites one call
in the source of `jgnas.train.make_train` and fails loudly if that call changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect

import jax
import jax.numpy as jnp

from jgnas import model as model_lib
from jgnas import objective as objective_lib
from jgnas import sampler as sampler_lib
from jgnas import train as train_lib


@dataclasses.dataclass(frozen=True)
class Variant:
    """What a row changes (defaults: jgnas as it is)."""

    sampler: str = "jgnas"  # "jgnas" (with replacement) | "permutation"
    init: str = "jgnas"  # "jgnas" (xavier_normal) | "xavier_uniform"
    reg: str = "jgnas"  # "jgnas" (½Σ‖e‖²/B) | "emb_loss"
    short_last: bool = False  # the epoch's last batch as short as RecBole's

    def __post_init__(self):
        for name, ok in (
            ("sampler", ("jgnas", "permutation")),
            ("init", ("jgnas", "xavier_uniform")),
            ("reg", ("jgnas", "emb_loss")),
        ):
            if getattr(self, name) not in ok:
                raise ValueError(f"Variant.{name}: one of {ok}, got {getattr(self, name)!r}")


RECBOLE_LIGHTGCN = Variant("permutation", "xavier_uniform", "emb_loss")
RECBOLE_SAMPLING = Variant(sampler="permutation", short_last=True)
ORIG = {
    "make_train": train_lib.make_train,
    "init_params": model_lib.init_params,
    "loss": objective_lib.loss,
}
_CALL = (
    "batch = sample_member_batch(\n"
    "                key_batch, data.sampler, cfg.batch_size, space.max_negatives, arch.sampler\n"
    "            )"
)


def permutation_batch(
    key_run, s, data, batch_size, k, sampler, steps, permute=True, short_last=False
):
    """Step s's batch (users, positives, negatives [B, k]). permute: positives from epoch
    s // steps's permutation (else drawn with replacement); negatives as jgnas's; short_last: the
    epoch's last batch holds only the leftover interactions, repeated (see the module docstring)."""
    n = data.users.shape[0]
    epoch, b = s // steps, s % steps
    if permute:
        perm = jax.random.permutation(jax.random.fold_in(key_run, 1_000_003 + epoch), n)
        idx = perm[(b * batch_size + jnp.arange(batch_size)) % n]
    else:
        key_pos = jax.random.fold_in(jax.random.fold_in(key_run, 3_000_003), s)
        idx = jax.random.randint(key_pos, (batch_size,), 0, n)
    users, pos = data.users[idx], data.items[idx]
    key_neg = jax.random.fold_in(jax.random.fold_in(key_run, 2_000_003), s)
    neg = sampler_lib.sample_negatives(key_neg, data, users, k, sampler)
    rem = n - (steps - 1) * batch_size  # static: the leftover of the epoch's last batch
    if short_last and rem < batch_size:
        rep, last = jnp.arange(batch_size) % rem, b == steps - 1
        users, pos = jnp.where(last, users[rep], users), jnp.where(last, pos[rep], pos)
        neg = jnp.where(last, neg[rep], neg)
    return users, pos, neg


def permutation_make_train(permute=True, short_last=False):
    """`jgnas.train.make_train` with the batch drawn by `permutation_batch`."""
    src = inspect.getsource(ORIG["make_train"])
    if _CALL not in src:
        raise RuntimeError("jgnas.train.make_train changed: update recbole_scratch._CALL")
    src = src.replace(
        _CALL,
        "batch = permutation_batch(key_run, s, data.sampler, cfg.batch_size, "
        f"space.max_negatives, arch.sampler, steps, {permute}, {short_last})",
    )
    ns = dict(vars(train_lib), permutation_batch=permutation_batch)
    exec(src, ns)
    return ns["make_train"]


def xavier_uniform_init(key, space, n_users, n_node, text_dim, side_values=1):
    p = ORIG["init_params"](key, space, n_users, n_node, text_dim, side_values)
    d = space.d_max
    k_u, k_i = jax.random.split(jax.random.fold_in(key, 12345))
    tables = []
    for k, n in ((k_u, n_users), (k_i, n_node - n_users)):
        bound = jnp.sqrt(6.0 / (n + d))
        tables.append(jax.random.uniform(k, (n, d), jnp.float32, -bound, bound))
    p["emb"] = jnp.concatenate(tables)
    return p


def emb_loss(params, arch, inputs, batch, key, *, space, mode="switch", spmm_fn=None):
    """jgnas's objective without its L2 term, plus RecBole's EmbLoss on the input embeddings."""
    kw = {"space": space, "mode": mode} | ({"spmm_fn": spmm_fn} if spmm_fn else {})
    base = ORIG["loss"](params, arch.replace(l2=jnp.zeros_like(arch.l2)), inputs, batch, key, **kw)
    h0 = model_lib.input_embeddings(params, arch, inputs, space)
    n_users = inputs.graph.n_users
    u, i = batch[0], batch[1]
    j0 = batch[2][:, 0] if len(batch) == 3 else batch[2]  # see `jgnas.objective.loss`
    rows = (u, i + n_users, j0 + n_users)
    reg = sum(jnp.sqrt(jnp.sum(h0[r] ** 2)) for r in rows) / u.shape[0]
    return base + arch.l2 * reg


@contextlib.contextmanager
def patched(v: Variant):
    """jgnas with variant v's functions, for one `retrain_and_test` call."""
    if v.sampler == "permutation" or v.short_last:
        train_lib.make_train = permutation_make_train(v.sampler == "permutation", v.short_last)
    if v.init == "xavier_uniform":
        model_lib.init_params = xavier_uniform_init
    if v.reg == "emb_loss":
        objective_lib.loss = emb_loss
    try:
        yield
    finally:
        train_lib.make_train = ORIG["make_train"]
        model_lib.init_params = ORIG["init_params"]
        objective_lib.loss = ORIG["loss"]
