"""Training and evaluation of whole populations: `make_train` and the one population executor.

`make_train(cfg, space, mode)` returns `train(key, arch, data) -> TrainResult`, a pure function
(purejaxrl's `make_train`): epochs run in `lax.scan`, the graph and data come in as arguments (as
closure constants XLA would constant-fold the scatters for tens of seconds), and it vmaps over
members, seeds, or both. `Engine` owns the iteration over the population: vmapped micro-populations
of `chunk_size` members run in sequence (chunk_size = P is the single jit(vmap) program for GPUs;
chunk_size = 1 is a loop of solo jitted runs, where `lax.switch` truly skips unchosen ops), and the
population axis of a chunk can be sharded over local devices. On CPU, chunks hold members that use
the same ops, and each runs a program compiled for its members' `Plan` (only their ops, layers,
negatives and shared genes), because under vmap every branch of the space would be computed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jgnas import metrics as metrics_lib
from jgnas import model as model_lib
from jgnas import objective
from jgnas.data.types import Dataset, Interactions
from jgnas.executor import Executor, default_chunk_size
from jgnas.graph import build as build_graph
from jgnas.interrupt import StopFn
from jgnas.ops import segment_spmm, spmm
from jgnas.plan import Plan, op_signatures
from jgnas.sampler import SamplerData, make_sampler_data, n_batches_per_epoch, sample_member_batch
from jgnas.space import Arch, Space

METRICS = tuple(metrics_lib.METRIC_NAMES)
KERNELS: dict[str, Callable] = {"csr": spmm, "segment": segment_spmm}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How each candidate is trained and scored.

    epochs: training epochs (one epoch = ceil(n_train / batch_size) BPR steps).
    batch_size: BPR triples per step.
    eval_every: epochs between validation evaluations (0: once, at the end). The returned
      parameters are those of the best evaluation (model selection on validation).
    patience: early stopping after this many evaluations without improvement (0: off).
    ks: the cut-offs of every reported metric. metric, metric_k: the fitness (e.g. ndcg@20).
    reject_positives: BPR negatives avoid the user's training positives.
    kernel: "csr" (the fast sparse kernel) or "segment" (jraph gather + segment_sum reference).
    self_loops, edge_weight: how the shared graph is built (see `jgnas.graph.build`).
    The objective (loss, negatives, sampler, temperature, contrastive term) is part of each
    member's arch (`jgnas.space`, `jgnas.objective`), not of this config.
    """

    epochs: int = 5
    batch_size: int = 4096
    eval_every: int = 0
    patience: int = 0
    ks: tuple[int, ...] = (10, 20)
    metric: str = "ndcg"
    metric_k: int = 20
    reject_positives: bool = True
    kernel: str = "csr"
    self_loops: bool = False
    edge_weight: str = "one"
    eval_block: int = 256

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"train.epochs: must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size: must be >= 1, got {self.batch_size}")
        every = self.eval_every or self.epochs
        if self.eval_every < 0 or self.epochs % every:
            raise ValueError(
                f"train.eval_every: must divide train.epochs={self.epochs}, got {self.eval_every}"
            )
        if self.patience < 0:
            raise ValueError(f"train.patience: must be >= 0, got {self.patience}")
        if self.metric not in METRICS:
            raise ValueError(f"train.metric: {self.metric!r} is not one of {list(METRICS)}")
        if self.metric_k not in self.ks:
            raise ValueError(f"train.metric_k: {self.metric_k} must be one of train.ks={self.ks}")
        if self.kernel not in KERNELS:
            raise ValueError(f"train.kernel: {self.kernel!r} is not one of {list(KERNELS)}")

    @property
    def rounds(self) -> int:
        return self.epochs // (self.eval_every or self.epochs)


@struct.dataclass
class TrainData:
    """Everything a candidate trains and validates on; passed to jitted functions as an argument."""

    inputs: model_lib.Inputs
    sampler: SamplerData
    valid: metrics_lib.EvalSet


@struct.dataclass
class TrainResult:
    """One member's result (a population adds a leading [P] axis to every field).

    params: the parameters at the best validation evaluation.
    loss: mean BPR loss per epoch [epochs] (NaN from the step a member failed, and for the epochs
      not run after early stopping).
    valid: metric name -> [rounds, len(ks)] validation metrics at each evaluation (NaN for rounds
      not run after early stopping or failure).
    best: metric name -> [len(ks)] validation metrics at the best evaluation.
    best_epoch: epochs trained at the best evaluation. failed: the loss became NaN/inf.
    fitness: best[metric][metric_k], or -inf when failed.
    """

    params: dict
    loss: jax.Array
    valid: dict
    best: dict
    best_epoch: jax.Array
    failed: jax.Array
    fitness: jax.Array


def make_data(
    dataset: Dataset,
    cfg: TrainConfig,
    text: np.ndarray | None = None,
    valid: Interactions | None = None,
    side=None,
) -> TrainData:
    """Builds the shared graph, the sampler arrays and the validation eval set (host side).

    Args:
      dataset: a split dataset.
      cfg: training config (graph options, eval block).
      text: optional frozen node text vectors [n_users + n_items, D_text].
      valid: held-out interactions for validation (default: dataset.valid).
      side: optional `jgnas.side.SideFeatures` of the nodes.
    """
    graph = build_graph(
        dataset.train,
        dataset.n_users,
        dataset.n_items,
        self_loops=cfg.self_loops,
        edge_weight=cfg.edge_weight,
    )
    n = dataset.n_users + dataset.n_items
    text_arr = jnp.zeros((n, 1), jnp.float32) if text is None else jnp.asarray(text, jnp.float32)
    if text_arr.shape[0] != n:
        raise ValueError(
            f"text vectors: expected {n} rows (users + items), got {text_arr.shape[0]}"
        )
    sampler = make_sampler_data(
        dataset.train, dataset.n_users, dataset.n_items, reject_positives=cfg.reject_positives
    )
    if valid is None:
        valid_set = metrics_lib.valid_eval_set(dataset, block_size=cfg.eval_block)
    else:
        valid_set = metrics_lib.make_eval_set(
            dataset.n_users, dataset.n_items, valid, [dataset.train], block_size=cfg.eval_block
        )
    inputs = model_lib.Inputs(graph, text_arr)
    if side is not None:
        if side.ids.shape[0] != n:
            raise ValueError(
                f"side features: expected {n} rows (users + items), got {side.ids.shape[0]}"
            )
        inputs = model_lib.Inputs(
            graph,
            text_arr,
            jnp.asarray(side.ids, jnp.int32),
            jnp.asarray(side.weights, jnp.float32),
            int(side.n_values),
        )
    return TrainData(inputs, sampler, valid_set)


def init_member(key: jax.Array, space: Space, inputs: model_lib.Inputs) -> dict:
    """`model.init_params` for the shared inputs (table sizes read from them)."""
    graph = inputs.graph
    side_values = int(inputs.side_values) if space.side else 1
    return model_lib.init_params(
        key, space, graph.n_users, graph.n_node, int(inputs.text.shape[1]), side_values
    )


def _where(c, a, b):
    return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)


def make_train(
    cfg: TrainConfig, space: Space, mode: str = "switch", plan: Plan | None = None
) -> Callable:
    """Returns `train(key, arch, data) -> TrainResult` for one member (vmap it for a population).

    (Longer than 80 lines, as is its `train`: the step, the evaluation round and the early-stopping
    while loop are closures of one jitted program, purejaxrl's `make_train` layout.)

    A member whose loss or gradient becomes NaN/inf is frozen from that step on (its update is
    dropped) and reported as failed; the computation of the other members never mixes with it.

    plan (optional): compile for the members of this plan only (see `Plan`); `train` still takes
    the member's arch of the whole space and returns parameters of the whole space's shapes.
    """
    spmm_fn = KERNELS[cfg.kernel]
    k_idx = cfg.ks.index(cfg.metric_k)
    every = cfg.eval_every or cfg.epochs
    opt = optax.scale_by_adam()
    # The parameters are the whole space's; the program runs the plan's restriction of it.
    full_space, space = space, plan.restrict(space) if plan is not None else space
    loss_fn = functools.partial(objective.loss, space=space, mode=mode, spmm_fn=spmm_fn)
    evaluate_on = _make_evaluate(cfg, space, mode)

    def evaluate(params, arch, data):
        return evaluate_on(params, arch, data.inputs, data.valid)

    def train(key: jax.Array, arch: Arch, data: TrainData) -> TrainResult:
        key_init, key_run = jax.random.split(key)
        params = init_member(key_init, full_space, data.inputs)
        opt_state = opt.init(params)
        steps = n_batches_per_epoch(data.sampler, cfg.batch_size)
        if plan is not None:
            arch = plan.apply(full_space, arch)

        def step(carry, s):
            params, opt_state, failed, stopped = carry
            key_batch, key_drop = jax.random.split(jax.random.fold_in(key_run, s))
            batch = sample_member_batch(
                key_batch, data.sampler, cfg.batch_size, space.max_negatives, arch.sampler
            )
            loss, grads = jax.value_and_grad(
                lambda p: loss_fn(p, arch, data.inputs, batch, key_drop)
            )(params)
            updates, new_opt_state = opt.update(grads, opt_state)
            new_params = jax.tree.map(lambda p, u: p - arch.lr * u, params, updates)
            # Checked on the new parameters too: an inf/NaN update is caught in the step it happens.
            bad = ~(
                jnp.isfinite(loss)
                & jnp.isfinite(optax.tree.norm(grads))
                & jnp.isfinite(optax.tree.norm(new_params))
            )
            failed = failed | bad
            frozen = failed | stopped
            params = _where(frozen, params, new_params)
            opt_state = _where(frozen, opt_state, new_opt_state)
            return (params, opt_state, failed, stopped), jnp.where(failed, jnp.nan, loss)

        n_rounds = cfg.rounds
        # A closure: a `Plan`'s fixed genes are Python numbers, which an argument would trace.
        m_shape = jax.eval_shape(lambda p: evaluate(p, arch, data), params)
        nan = functools.partial(jnp.full, fill_value=jnp.nan, dtype=jnp.float32)

        def round_(c):
            r = c["round"]
            step_ids = r * every * steps + jnp.arange(every * steps)
            (params, opt_state, failed, _), losses = jax.lax.scan(
                step, (c["params"], c["opt_state"], c["failed"], jnp.asarray(False)), step_ids
            )
            m = evaluate(params, arch, data)
            score = jnp.where(failed, -jnp.inf, m[cfg.metric][k_idx])
            improved = score > c["best_score"]
            since = jnp.where(improved, 0, c["since"] + 1)
            return {
                "round": r + 1,
                "params": params,
                "opt_state": opt_state,
                "failed": failed,
                "stopped": failed | ((since >= cfg.patience) if cfg.patience else False),
                "best_params": _where(improved, params, c["best_params"]),
                "best_score": jnp.where(improved, score, c["best_score"]),
                "best_epoch": jnp.where(improved, (r + 1) * every, c["best_epoch"]),
                "since": since,
                "loss": c["loss"].at[r].set(losses.reshape(every, steps).mean(axis=1)),
                "valid": jax.tree.map(lambda h, v: h.at[r].set(v), c["valid"], m),
                "score": c["score"].at[r].set(score),
            }

        init = {
            "round": jnp.asarray(0, jnp.int32),
            "params": params,
            "opt_state": opt_state,
            "failed": jnp.asarray(False),
            "stopped": jnp.asarray(False),
            "best_params": params,
            "best_score": jnp.asarray(-jnp.inf, jnp.float32),
            "best_epoch": jnp.asarray(0, jnp.int32),
            "since": jnp.asarray(0, jnp.int32),
            "loss": nan((n_rounds, every)),
            "valid": jax.tree.map(lambda s: nan((n_rounds, *s.shape)), m_shape),
            "score": jnp.full((n_rounds,), -jnp.inf, jnp.float32),
        }
        # A while loop, not a scan: early stopping (and failure) really ends the training. Under
        # vmap the loop runs while any member is active and keeps the finished members unchanged.
        c = jax.lax.while_loop(lambda c: (c["round"] < n_rounds) & ~c["stopped"], round_, init)
        best_round = jnp.argmax(c["score"])
        best = {k: v[best_round] for k, v in c["valid"].items()}
        return TrainResult(
            params=c["best_params"],
            loss=c["loss"].reshape(-1),
            valid=c["valid"],
            best=best,
            best_epoch=c["best_epoch"],
            failed=c["failed"],
            fitness=jnp.where(c["failed"], -jnp.inf, c["best_score"]),
        )

    return train


def make_evaluate(
    cfg: TrainConfig, space: Space, mode: str = "switch", plan: Plan | None = None
) -> Callable:
    """Returns `evaluate(params, arch, inputs, eval_set) -> {metric: [len(ks)]}` for one member.

    plan (optional): compile for the members of this plan only (see `Plan`)."""
    if plan is None:
        return _make_evaluate(cfg, space, mode)
    evaluate_on = _make_evaluate(cfg, plan.restrict(space), mode)

    def evaluate(params, arch, inputs, eval_set):
        return evaluate_on(params, plan.apply(space, arch), inputs, eval_set)

    return evaluate


def _make_evaluate(cfg: TrainConfig, space: Space, mode: str) -> Callable:
    """`make_evaluate` for an arch of `space` as it is (restricted, already remapped)."""
    spmm_fn = KERNELS[cfg.kernel]

    def evaluate(params, arch, inputs, eval_set):
        user, item = model_lib.embeddings(
            params, arch, inputs, space=space, mode=mode, spmm_fn=spmm_fn
        )
        return metrics_lib.rank_metrics(user, item, eval_set, cfg.ks)

    return evaluate


#: Training steps from which a member that runs alone (its ops shared by no other member of the
#: call, or the last of its group) gets a program compiled for its own `Plan` rather than the
#: generic solo program every solo member shares. Measured on ml-100k, batch 2048, 2-core CPU
#: (`Executor.program`): the plan's program takes 0.066 / 0.31 / 0.59 s per epoch for mf /
#: lightgcn / ngcf against 0.46 / 0.75 / 1.07 s for the generic one (about 10 ms less per step),
#: and compiles in 6-14 s: it pays after about 1,000 steps; from 2,000 it clearly does.
SOLO_PLAN_STEPS = 2000


class Engine:
    """Trains and evaluates populations of architectures on one dataset.

    Args:
      cfg: training config; space: the search space; data: from `make_data`.
      chunk_size: members per vmapped chunk (None: `default_chunk_size`, decided per call from P).
      should_stop: asked before each chunk; when true, `train`/`evaluate` raise
        `jgnas.interrupt.Interrupted` between chunks (Ctrl-C; see `jgnas.interrupt`).
      group: with chunks of more than one member, group the members by the ops they use (stable;
        results in the members' order) and run each chunk through a program compiled for its
        members' `Plan` (cached per plan and chunk width; a group's remainder runs in chunks of
        powers of two, one member solo). None: on CPU only, where vmap computes every branch; on
        a GPU the whole population's one program (chunk_size = P) compiles once per search.

    With chunk_size None, a call with one member (a lone model) runs its plan's program; a member
    that runs alone within a grouped call does so too when the training is `SOLO_PLAN_STEPS`
    steps or more (otherwise the generic solo program, compiled once for every solo member, is
    cheaper).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        space: Space,
        data: TrainData,
        chunk_size: int | None = None,
        devices=None,
        should_stop: StopFn | None = None,
        group: bool | None = None,
    ):
        self.cfg, self.space, self.data = cfg, space, data
        self.chunk_size = chunk_size
        self.should_stop = should_stop
        self.group = jax.default_backend() == "cpu" if group is None else group
        self._devices = devices
        self._executors: dict[tuple[str, int], Executor] = {}
        self.last_seconds = np.zeros(0)  # per-member wall seconds of the last `train`
        self.on_progress: Callable[[int, int], None] | None = None  # (members done, total)

    def _executor(self, what: str, P: int) -> Executor:
        c = min(self.chunk_size or default_chunk_size(P), P) if P else 1
        if (what, c) not in self._executors:
            make = make_train if what == "train" else make_evaluate
            self._executors[(what, c)] = Executor(
                make(self.cfg, self.space, "switch"),
                make(self.cfg, self.space, "select"),
                2,
                c,
                self._devices,
                self.should_stop,
                make_member=lambda plan: make(self.cfg, self.space, "plan", plan),
            )
        ex = self._executors[(what, c)]
        ex.on_chunk = self.on_progress
        return ex

    def _run(self, what: str, batched: tuple, shared: tuple):
        archs = batched[1]
        P = int(archs.depth.shape[0])
        ex = self._executor(what, P)
        training = what == "train"

        def plan_fn(b):
            return Plan.of(self.space, b[1], training)

        def one_group(b):  # one label per member (none on a process without members)
            return [()] * int(b[1].depth.shape[0])

        if P == 1 and self.chunk_size is None:
            # A lone model compiles a program either way: its plan's is the fast one. (An explicit
            # chunk_size = 1 keeps the generic solo program: bitwise the same as in any solo loop.)
            return ex(batched, shared, group_fn=one_group, plan_fn=plan_fn, solo_plans=True)
        if not self.group or ex.chunk_size == 1:
            return ex(batched, shared)
        steps = self.cfg.epochs * n_batches_per_epoch(self.data.sampler, self.cfg.batch_size)
        return ex(
            batched,
            shared,
            group_fn=lambda b: op_signatures(self.space, b[1]),
            plan_fn=plan_fn,
            solo_plans=training and steps >= SOLO_PLAN_STEPS,
        )

    def train(self, keys: jax.Array, archs: Arch) -> TrainResult:
        """Trains P members: keys [P] (one per member), archs with a leading [P]."""
        archs = jax.tree.map(jnp.asarray, archs)
        out = self._run("train", (keys, archs), (self.data,))
        self.last_seconds = self._executor("train", int(archs.depth.shape[0])).last_seconds
        return out

    def evaluate(self, params: dict, archs: Arch, eval_set: metrics_lib.EvalSet) -> dict:
        """Metrics of trained members on any eval set (e.g. test): name -> [P, len(ks)]."""
        archs = jax.tree.map(jnp.asarray, archs)
        return self._run("eval", (params, archs), (self.data.inputs, eval_set))
