"""The population engine: vmapped chunks vs solo runs, failure isolation, compile-once, sharding,
reproducibility, early stopping and config validation."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from engine_utils import tiny_dataset

from jgnas.space import Space, stack, take
from jgnas.train import (
    Engine,
    Executor,
    TrainConfig,
    default_chunk_size,
    make_data,
)

TESTS = pathlib.Path(__file__).parent
# Early stopping on (patience 1): the vmap-vs-solo checks then also cover members that stop while
# others of their chunk go on.
CFG = TrainConfig(
    epochs=3, batch_size=16, eval_every=1, patience=1, ks=(3, 5), metric_k=5, eval_block=8
)
SPACE = Space(max_layers=2, dims=(8, 16))
P = 4


@pytest.fixture(scope="module")
def data():
    return make_data(tiny_dataset(seed=5), CFG)


@pytest.fixture(scope="module")
def engines(data):
    """Engines by chunk size, shared so that each program compiles once per module. The chunked
    one runs the whole space's vmapped program (no grouping by ops: tests/test_chunking.py)."""
    return {
        1: Engine(CFG, SPACE, data, chunk_size=1),
        P: Engine(CFG, SPACE, data, chunk_size=P, group=False),
    }


def population(seed, n=P):
    """A mixed population: random genes, depths 2, 1, 0, 2, ... and a high learning rate (so that
    training moves the parameters in a few tiny epochs)."""
    archs = SPACE.sample(jax.random.key(seed), n)
    depth = np.asarray([2, 1, 0, 2, 1, 2][:n], np.int32)
    return archs.replace(depth=depth, lr=np.full(n, 1e-2, np.float32))


def member_keys(seed, n=P):
    return jax.random.split(jax.random.key(seed), n)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_close(a, b, rtol=1e-5, atol=1e-5):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def assert_identical(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        assert np.array_equal(x, y, equal_nan=True)


@pytest.fixture(scope="module")
def solo_run(engines):
    archs, keys = population(0), member_keys(1)
    return archs, keys, engines[1].train(keys, archs)


def test_result_shapes(solo_run):
    archs, _, res = solo_run
    n_ks = len(CFG.ks)
    assert res.loss.shape == (P, CFG.epochs)
    assert res.fitness.shape == res.failed.shape == res.best_epoch.shape == (P,)
    for name, v in res.valid.items():
        assert v.shape == (P, CFG.rounds, n_ks), name
        assert res.best[name].shape == (P, n_ks)
    assert res.params["emb"].shape[0] == P
    assert not np.any(np.asarray(res.failed))
    # Losses are finite for the epochs run and NaN after an early stop (never a gap in between).
    loss = np.asarray(res.loss)
    for row in loss:
        ran = np.isfinite(row)
        assert ran[0] and not np.any(ran[np.argmin(ran) :]) if not ran.all() else True
    k = CFG.ks.index(CFG.metric_k)
    np.testing.assert_array_equal(res.fitness, res.best[CFG.metric][:, k])
    assert SPACE.describe(archs)[2].startswith("MF")


def test_vmapped_population_equals_solo_runs(engines, solo_run):
    archs, keys, solo = solo_run
    vmapped = engines[P].train(keys, archs)
    assert_close(vmapped.params, solo.params)
    np.testing.assert_allclose(vmapped.fitness, solo.fitness, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vmapped.loss, solo.loss, rtol=1e-5, atol=1e-5)
    assert_close(vmapped.valid, solo.valid)
    np.testing.assert_array_equal(vmapped.best_epoch, solo.best_epoch)
    np.testing.assert_array_equal(vmapped.failed, solo.failed)
    # Training moved the parameters away from their initialisation, differently per member.
    emb = np.asarray(solo.params["emb"])
    assert not np.allclose(emb[0], emb[3])


def test_padded_chunks_equal_solo_runs(engines):
    # 6 members in chunks of 4: the second chunk holds 2 members and 2 repeated pads.
    n = 6
    archs, keys = population(2, n), member_keys(3, n)
    chunked = engines[P].train(keys, archs)
    solo = engines[1].train(keys, archs)
    assert chunked.fitness.shape == (n,)
    assert_close(chunked.params, solo.params)
    np.testing.assert_allclose(chunked.fitness, solo.fitness, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chunked.loss, solo.loss, rtol=1e-5, atol=1e-5)
    # A member's result does not depend on its position or chunk: member 5 alone.
    one = engines[1].train(keys[5:], take(archs, slice(5, 6)))
    assert_identical(jax.tree.map(lambda x: x[5:], solo), one)


@pytest.mark.parametrize("bad_lr", [np.inf, np.nan], ids=["inf", "nan"])
def test_failure_isolation(engines, bad_lr):
    archs, keys = population(4), member_keys(5)
    bad = 1
    sick = archs.replace(lr=archs.lr.copy())
    sick.lr[bad] = bad_lr
    healthy = engines[P].train(keys, archs)
    failed = engines[P].train(keys, sick)
    assert bool(failed.failed[bad]) and float(failed.fitness[bad]) == -np.inf
    assert np.isnan(np.asarray(failed.loss[bad, -1]))
    assert not np.any(np.asarray(healthy.failed))
    others = np.asarray([p for p in range(P) if p != bad])
    assert not np.any(np.asarray(failed.failed)[others])
    # The other members are bit-identical to the all-healthy run.
    assert_identical(
        jax.tree.map(lambda x: np.asarray(x)[others], failed),
        jax.tree.map(lambda x: np.asarray(x)[others], healthy),
    )
    # The failed member's reported fitness is -inf whatever its (frozen) parameters hold.
    assert np.isfinite(float(healthy.fitness[bad]))


def test_no_recompilation(engines, data):
    keys = member_keys(6)
    for chunk in (1, P):
        engine = engines[chunk]
        engine.train(keys, population(6))
        ex = engine._executors[("train", chunk)]
        fn = ex._solo if chunk == 1 else ex._batched
        size = fn._cache_size()
        assert size == 1
        res = engine.train(member_keys(7), population(8))  # new genes, new keys, same shapes
        jax.block_until_ready(res.fitness)
        assert fn._cache_size() == size
        assert list(engine._executors) == [("train", chunk)]


def test_reproducible_and_key_dependent(engines, solo_run):
    archs, keys, first = solo_run
    again = engines[1].train(keys, archs)
    assert_identical(again, first)
    other = engines[1].train(member_keys(99), archs)
    assert not np.allclose(np.asarray(other.params["emb"]), np.asarray(first.params["emb"]))


def test_evaluate_reproduces_best_metrics(engines, data, solo_run):
    archs, _, res = solo_run
    metrics = engines[1].evaluate(res.params, archs, data.valid)
    for name in res.best:
        np.testing.assert_allclose(metrics[name], res.best[name], rtol=1e-5, atol=1e-6)


def test_early_stopping(engines, solo_run):
    archs, keys, _ = solo_run
    # Add a member with lr 0: its score never improves after round 1, so it must stop.
    frozen = take(archs, 0).replace(lr=np.float32(0.0))
    archs = stack([take(archs, p) for p in range(P)] + [frozen])
    keys = jnp.concatenate([keys, keys[:1]])
    res = engines[1].train(keys, archs)
    k = CFG.ks.index(CFG.metric_k)
    scores = np.asarray(res.valid[CFG.metric])[:, :, k]  # [P+1, rounds]
    assert scores.shape == (P + 1, CFG.rounds) == (P + 1, CFG.epochs)
    best_epoch = np.asarray(res.best_epoch)
    assert np.all((1 <= best_epoch) & (best_epoch <= CFG.epochs))
    n_stopped_learning = 0
    for p in range(P + 1):
        s = scores[p]
        # patience 1: the first evaluation without improvement stops the member, and the training
        # really ends there: later evaluations are not run (NaN), later epochs have no loss.
        stop = next((r for r in range(1, CFG.rounds) if s[r] <= s[:r].max()), None)
        last = CFG.rounds - 1 if stop is None else stop
        assert np.all(np.isfinite(s[: last + 1])) and np.all(np.isnan(s[last + 1 :]))
        assert np.all(np.isnan(np.asarray(res.loss)[p, (last + 1) * CFG.eval_every :]))
        # The best evaluation is the first maximum up to the stop (eval_every = 1 epoch).
        assert best_epoch[p] == int(np.argmax(s[: last + 1])) + 1
        assert float(res.fitness[p]) == pytest.approx(s[: last + 1].max())
        n_stopped_learning += int(p < P and stop is not None and stop < CFG.rounds - 1)
    assert best_epoch[P] == 1 and scores[P, 1] == scores[P, 0] and np.isnan(scores[P, 2:]).all()
    assert n_stopped_learning >= 1  # a learning member stopped early: the check above bites


OBJ_SPACE = Space(
    max_layers=2,
    dims=(8, 16),
    losses=("bpr", "softmax"),
    negatives=(1, 3),
    temperatures=(0.5,),
    samplers=("uniform", "popularity"),
    ssl_weights=(0.0, 0.1),
)


def test_objective_genes_vmapped_equal_solo(data):
    # Every objective gene varies across the members (loss, negatives, sampler, contrastive
    # term): a vmapped chunk equals solo runs, and the objective changes the training.
    archs = OBJ_SPACE.sample(jax.random.key(11), P)
    archs = archs.replace(
        depth=np.asarray([2, 1, 0, 2], np.int32),
        lr=np.full(P, 1e-2, np.float32),
        loss=np.asarray([1, 0, 1, 0], np.int32),
        negatives=np.asarray([3, 3, 1, 1], np.int32),
        sampler=np.asarray([0, 1, 1, 0], np.int32),
        ssl=np.asarray([0.1, 0.0, 0.1, 0.1], np.float32),
    )
    keys = member_keys(11)
    solo = Engine(CFG, OBJ_SPACE, data, chunk_size=1).train(keys, archs)
    vmapped = Engine(CFG, OBJ_SPACE, data, chunk_size=P, group=False).train(keys, archs)
    assert_close(solo.fitness, vmapped.fitness)
    assert_close(solo.params, vmapped.params)
    assert np.all(np.isfinite(np.asarray(solo.loss)[~np.asarray(solo.failed)][:, :1]))
    bpr = archs.replace(
        loss=np.zeros(P, np.int32), negatives=np.ones(P, np.int32), sampler=np.zeros(P, np.int32),
        ssl=np.zeros(P, np.float32),
    )  # fmt: skip
    plain = Engine(CFG, OBJ_SPACE, data, chunk_size=1).train(keys, bpr)
    for m in range(P):
        assert not np.allclose(
            np.asarray(plain.params["emb"][m]), np.asarray(solo.params["emb"][m])
        )


def test_train_config_validation():
    with pytest.raises(ValueError, match="eval_every"):
        TrainConfig(epochs=5, eval_every=2)
    with pytest.raises(ValueError, match="eval_every"):
        TrainConfig(epochs=4, eval_every=-1)
    with pytest.raises(ValueError, match="metric_k"):
        TrainConfig(ks=(10, 20), metric_k=5)
    with pytest.raises(ValueError, match="kernel"):
        TrainConfig(kernel="cusparse")
    with pytest.raises(ValueError, match="metric"):
        TrainConfig(metric="auc")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=-1)
    assert TrainConfig(epochs=6, eval_every=2).rounds == 3
    assert TrainConfig(epochs=6).rounds == 1


def test_chunk_size_choice():
    assert default_chunk_size(32, "cpu") == 8
    assert default_chunk_size(3, "cpu") == 3
    assert default_chunk_size(32, "gpu") == 32
    with pytest.raises(ValueError, match="chunk_size"):
        Executor(lambda x: x, lambda x: x, 1, 0)


SHARDING_SCRIPT = r"""
import json
import jax
import numpy as np
from engine_utils import tiny_dataset
from jgnas.space import Space
from jgnas.train import Engine, TrainConfig, make_data

cfg = TrainConfig(epochs=1, batch_size=16, ks=(5,), metric_k=5, eval_block=8)
space = Space(ops=("lightgcn", "gat"), max_layers=1, dims=(8,))
data = make_data(tiny_dataset(seed=6), cfg)
archs = space.sample(jax.random.key(0), 4)
archs = archs.replace(depth=np.ones(4, np.int32), lr=np.full(4, 1e-2, np.float32))
keys = jax.random.split(jax.random.key(1), 4)
sharded = Engine(cfg, space, data, chunk_size=4, group=False)
single = Engine(cfg, space, data, chunk_size=4, devices=jax.devices()[:1], group=False)
r4, r1 = sharded.train(keys, archs), single.train(keys, archs)
diff = max(
    float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    for a, b in zip(jax.tree.leaves(r4.params), jax.tree.leaves(r1.params))
)
# Grouped by ops (all lightgcn): one width-4 chunk of a plan's program, sharded too.
same = archs.replace(op=np.zeros_like(archs.op))
grouped = Engine(cfg, space, data, chunk_size=4, group=True)
g4, g1 = grouped.train(keys, same), single.train(keys, same)
g_diff = max(
    float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    for a, b in zip(jax.tree.leaves(g4.params), jax.tree.leaves(g1.params))
)
print(json.dumps({
    "grouped_diff": g_diff,
    "grouped_widths": [w for _, w in grouped._executors[("train", 4)].programs],
    "grouped_devices": len(g4.params["emb"].sharding.device_set),
    "n_local": len(jax.devices()),
    "n_devices": [sharded._executors[("train", 4)].n_devices,
                  single._executors[("train", 4)].n_devices],
    "out_devices": len(r4.params["emb"].sharding.device_set),
    "fitness": [np.asarray(r4.fitness).tolist(), np.asarray(r1.fitness).tolist()],
    "param_diff": diff,
}))
"""


def test_sharded_population_equals_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    cache = jax.config.jax_compilation_cache_dir  # share the session's compilation cache, if any
    if cache:
        env.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    proc = subprocess.run(
        [sys.executable, "-c", SHARDING_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n_local"] == 4
    assert out["n_devices"] == [4, 1]
    assert out["out_devices"] == 4
    f4, f1 = (np.asarray(f) for f in out["fitness"])
    assert np.all(np.isfinite(f4))
    np.testing.assert_allclose(f4, f1, rtol=1e-5, atol=1e-5)
    assert out["param_diff"] < 1e-5
    assert out["grouped_widths"] == [4] and out["grouped_devices"] == 4
    assert out["grouped_diff"] < 1e-5
