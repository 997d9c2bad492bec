"""How the contrastive term and the ranking loss train together: one lightgcn variant, epoch by epoch.

    python scripts/ssl_dynamics.py [--ssl 0.2] [--epochs 40] [--variant bpr] [--lr 3e-3]
        [--noise 0.1] [--views both|users|items] [--config configs/ml100k.yaml] [--set K=V ...]
        [--grad-scales 1,4,16] [--out F.json] [-q]

Trains the `lightgcn` preset with the genes of a `scripts/lightgcn_variants.py` variant and the
contrastive weight --ssl (no early stopping, the config's final batch size), with the training
step of the objective (`jgnas.objective.loss_terms`: the ranking loss and L2 on the training
forward, and --ssl times the InfoNCE over
the batch's distinct users and positive items), and prints per epoch: the mean ranking loss with
L2, the mean InfoNCE term (unweighted; 0 at weight 0, where training skips it), the mean row norms of the input embeddings, of the first
layer's output and of the scored representation, and validation NDCG@20. --noise sets the
perturbation radius (`jgnas.model.NOISE_EPS`, 0: views without noise); --views keeps the user or
the item term only. --grad-scales first prints, on one batch at initialisation with the ID
embeddings scaled by each factor, the norms of the embedding table's gradient from the ranking
loss + L2 and from --ssl times the InfoNCE term. It changes nothing in the library: a probe of one
model's training dynamics.
Takes: about 1 s per epoch on ml-100k on a 2-core CPU.
"""

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgnas import config as config_lib
from jgnas import experiment, objective
from jgnas import model as model_lib
from jgnas import train as train_lib
from jgnas.sampler import n_batches_per_epoch, sample_member_batch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from lightgcn_variants import VARIANTS, variant_dict  # noqa: E402


def _views(batch, n_users: int, views: str) -> tuple:
    users, items = objective.contrastive_nodes(batch, n_users)
    return {"users": (users,), "items": (items,), "both": (users, items)}[views]


def grad_norms(ctx, arch, scales, views: str, seed: int = 0) -> list[dict]:
    """Per scale: the embedding table's gradient norm from the ranking loss + L2 and from
    arch.ssl x InfoNCE, on one batch, at the initialisation with the ID embeddings x scale."""
    cfg, space, data = ctx.cfg, ctx.space, ctx.data
    tcfg = experiment.final_train_config(cfg.train, cfg.final)
    k_init, k_batch, k_noise = jax.random.split(jax.random.key(seed), 3)
    params = train_lib.init_member(k_init, space, data.inputs)
    batch = sample_member_batch(
        k_batch, data.sampler, tcfg.batch_size, space.max_negatives, arch.sampler
    )

    nodes = _views(batch, data.inputs.graph.n_users, views)

    def part(i, p):  # 0: ranking loss + L2, 1: arch.ssl x the contrastive term (training forward)
        total, term, _ = objective.loss_terms(
            p, arch, data.inputs, batch, k_noise, space=space, nodes=nodes
        )
        return (total, float(arch.ssl) * term)[i]

    rows = []
    for scale in scales:
        p = {**params, "emb": params["emb"] * scale}
        g_rank = float(jnp.linalg.norm(jax.grad(lambda p: part(0, p))(p)["emb"]))
        g_term = float(jnp.linalg.norm(jax.grad(lambda p: part(1, p))(p)["emb"]))
        rows.append({"scale": scale, "rank": g_rank, "term": g_term, "ratio": g_term / g_rank})
    return rows


def run(ctx, arch, epochs: int, views: str, seed: int = 0, log=print) -> list[dict]:
    """Per epoch: {"epoch", "rank_loss", "infonce", "h0", "first", "out", "valid_ndcg"}."""
    cfg, space, data = ctx.cfg, ctx.space, ctx.data
    tcfg = experiment.final_train_config(cfg.train, cfg.final)
    k = tcfg.ks.index(20) if 20 in tcfg.ks else -1
    n_users = data.inputs.graph.n_users
    evaluate = train_lib.make_evaluate(tcfg, space)
    opt = optax.scale_by_adam()
    ssl = float(arch.ssl)

    def loss(p, batch, key):  # the library's training loss, its terms kept apart
        nodes = _views(batch, n_users, views)
        total, term, fwd = objective.loss_terms(
            p, arch, data.inputs, batch, key, space=space, nodes=nodes
        )
        norms = [jnp.mean(jnp.linalg.norm(x, axis=1)) for x in (fwd.h0, fwd.first, fwd.out)]
        return total + ssl * term, (total, jnp.asarray(term, jnp.float32), *norms)

    @jax.jit
    def step(p, st, key):
        kb, kd = jax.random.split(key)
        batch = sample_member_batch(
            kb, data.sampler, tcfg.batch_size, space.max_negatives, arch.sampler
        )
        (_, aux), g = jax.value_and_grad(loss, has_aux=True)(p, batch, kd)
        up, st = opt.update(g, st)
        return jax.tree.map(lambda a, u: a - arch.lr * u, p, up), st, jnp.stack(aux)

    valid = jax.jit(lambda p: evaluate(p, arch, data.inputs, data.valid)["ndcg"][k])
    key_init, key_run = jax.random.split(jax.random.key(seed))
    params = train_lib.init_member(key_init, space, data.inputs)
    st = opt.init(params)
    steps = n_batches_per_epoch(data.sampler, tcfg.batch_size)
    rows = []
    for e in range(epochs):
        aux = []
        for s in range(steps):
            params, st, a = step(params, st, jax.random.fold_in(key_run, e * steps + s))
            aux.append(a)
        a = np.mean(np.asarray(jnp.stack(aux)), axis=0)
        names = ("rank_loss", "infonce", "h0", "first", "out")
        row = {
            "epoch": e + 1,
            **dict(zip(names, map(float, a))),
            "valid_ndcg": float(valid(params)),
        }
        rows.append(row)
        log(
            f"| {row['epoch']} | {row['rank_loss']:.4f} | {row['infonce']:.3f} | {row['h0']:.3f} | "
            f"{row['first']:.3f} | {row['out']:.3f} | {row['valid_ndcg']:.4f} |"
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k.yaml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--variant", default="bpr", help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("--ssl", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--noise", type=float, default=model_lib.NOISE_EPS)
    p.add_argument("--views", choices=("both", "users", "items"), default="both")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grad-scales", default="", help="e.g. 1,4,16 (see above)")
    p.add_argument("--out", default="")
    p.add_argument("-q", "--quiet", action="store_true", help="no table on stdout")
    args = p.parse_args(argv)
    if args.variant not in VARIANTS:
        raise SystemExit(f"--variant: unknown {args.variant!r}; known: {list(VARIANTS)}")
    if args.epochs < 1 or args.ssl < 0 or args.noise < 0:
        raise SystemExit("--epochs must be >= 1, --ssl and --noise >= 0")
    cfg = config_lib.load(args.config, args.set)
    ctx = experiment.prepare(cfg, experiment.quiet)
    arch_d = {**variant_dict(args.variant, args.lr), "ssl": args.ssl}
    try:
        arch = ctx.space.from_dict(arch_d, where=f"--variant {args.variant} --ssl {args.ssl}")
    except ValueError as e:  # e.g. a weight outside space.ssl_weights: one line
        raise SystemExit(str(e)) from None
    model_lib.NOISE_EPS = args.noise  # read when the step is traced
    log = (lambda s: None) if args.quiet else print
    scales = [float(x) for x in args.grad_scales.split(",") if x]
    grads = grad_norms(ctx, arch, scales, args.views, args.seed) if scales else []
    if grads:
        log("| embeddings x | ‖grad‖ ranking loss + L2 | ‖grad‖ ssl x InfoNCE | ratio |")
        log("|---|---|---|---|")
        for g in grads:
            log(f"| {g['scale']:g} | {g['rank']:.3e} | {g['term']:.3e} | {g['ratio']:.1f} |")
        log("")
    log("| epoch | ranking loss + L2 | InfoNCE | ‖h0‖ | ‖layer 1‖ | ‖scored‖ | valid NDCG@20 |")
    log("|---|---|---|---|---|---|---|")
    rows = run(ctx, arch, args.epochs, args.views, args.seed, log)
    if args.out:
        pathlib.Path(args.out).write_text(
            json.dumps({"args": vars(args), "grads": grads, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
