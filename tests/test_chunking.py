"""Grouped chunks (issue 12): members grouped by the ops they use, each chunk compiled for its
members' `Plan` (restricted ops and layers, fixed genes), results in the members' order and equal
to solo runs."""

import jax
import numpy as np
import pytest
from engine_utils import tiny_dataset

from jgnas import model as model_lib
from jgnas import train as train_lib
from jgnas.executor import schedule
from jgnas.graph import build
from jgnas.plan import Plan, op_signatures, used_ops
from jgnas.space import Space, stack, take
from jgnas.train import Engine, TrainConfig, make_data

CFG = TrainConfig(
    epochs=3, batch_size=16, eval_every=1, patience=1, ks=(3, 5), metric_k=5, eval_block=8
)
SPACE = Space(max_layers=2, dims=(8, 16))  # ops: gcn, lightgcn, ngcf, mean, sum, sage
GCN, LGC, NGCF, MEAN, SUM, SAGE = range(6)
CHUNK = 4


def population():
    """9 members in three op groups, interleaved: {lightgcn, mean} x4 (one width-4 chunk; acts,
    contrastive weights and dropouts differ), {lightgcn} x3 (a chunk of 2 and a solo run; every
    fixable gene shared) and depth 0 x2 (a chunk of 2). Op genes of inactive layers vary (inert)."""
    n = 9
    archs = SPACE.sample(jax.random.key(3), n)
    depth = np.asarray([2, 1, 0, 2, 2, 1, 0, 2, 2], np.int32)
    op = np.asarray(
        [[LGC, MEAN], [LGC, SAGE], [NGCF, GCN], [MEAN, LGC], [MEAN, MEAN],
         [LGC, GCN], [SUM, SUM], [LGC, MEAN], [LGC, LGC]], np.int32
    )  # fmt: skip
    op[4] = [MEAN, LGC]  # {lightgcn, mean} again, as member 0's set in another order
    op[8] = [LGC, LGC]
    lone = np.asarray([1, 5, 8])  # the {lightgcn} group: one act, no ssl, no dropout, uniform
    archs = archs.replace(
        depth=depth, op=op, lr=np.full(n, 1e-2, np.float32), negatives=archs.negatives.copy()
    )
    for field, value in (("act", 1), ("ssl", 0.0), ("dropout", 0.0), ("sampler", 0)):
        arr = np.asarray(getattr(archs, field)).copy()
        arr[lone] = value
        archs = archs.replace(**{field: arr})
    archs.negatives[lone] = 1
    archs.ssl[[0, 3]] = [0.0, SPACE.ssl_weights[-1]]  # the {lightgcn, mean} group mixes them
    return archs


@pytest.fixture(scope="module")
def data():
    return make_data(tiny_dataset(seed=5), CFG)


@pytest.fixture(scope="module")
def runs(data):
    archs = population()
    keys = jax.random.split(jax.random.key(4), archs.size)
    solo = Engine(CFG, SPACE, data, chunk_size=1)
    grouped = Engine(CFG, SPACE, data, chunk_size=CHUNK, group=True)
    return archs, keys, solo, grouped, solo.train(keys, archs), grouped.train(keys, archs)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_schedule_groups_stably_and_splits_remainders():
    labels = ["a", "b", "a", "c", "a", "b", "a", "a", "a", "a", "b"]
    chunks = schedule(labels, 4)
    # a: 4 + 2 + 1 (7 members), b: 2 + 1, c: 1; groups in order of first appearance.
    assert [c.tolist() for c in chunks] == [
        [0, 2, 4, 6], [7, 8], [9], [1, 5], [10], [3]
    ]  # fmt: skip
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(labels)))
    assert [c.tolist() for c in schedule(labels, 1)] == [[i] for i in (0, 2, 4, 6, 7, 8, 9)] + [
        [1], [5], [10], [3]
    ]  # fmt: skip


def test_used_ops_ignore_inactive_layers():
    archs = population()
    used = used_ops(SPACE, archs)
    assert used.shape == (9, len(SPACE.ops))
    sigs = op_signatures(SPACE, archs)
    assert sigs[0] == sigs[3] == sigs[4] == sigs[7] == (LGC, MEAN)
    assert sigs[1] == sigs[5] == sigs[8] == (LGC,)  # layer 2's sage / gcn is inactive: inert
    assert sigs[2] == sigs[6] == ()  # depth 0: no op at all


def test_plan_of_a_chunk():
    archs = population()
    plan = Plan.of(SPACE, take(archs, [1, 5, 8]))
    assert plan.ops == ("lightgcn",) and plan.layers == 2 and plan.negatives == 1
    fixed = dict(plan.fixed)
    assert fixed["act"] == 1 and fixed["ssl"] == 0.0 and fixed["dropout"] == 0.0
    assert fixed["sampler"] == 0 and fixed["transform"] == 0  # lightgcn ignores the transform
    assert "depth" not in fixed  # depths 1 and 2
    mixed = Plan.of(SPACE, take(archs, [0, 3, 4, 7]))
    assert mixed.ops == ("lightgcn", "mean") and "ssl" not in dict(mixed.fixed)
    mf = Plan.of(SPACE, take(archs, [2, 6]))
    assert (mf.ops, mf.layers) == ((), 0)
    assert dict(mf.fixed)["combine"] == 0  # inert at depth 0: one plan for every MF chunk
    for_eval = Plan.of(SPACE, take(archs, [1, 5, 8]), training=False)
    assert "ssl" not in dict(for_eval.fixed) and for_eval.negatives == 1
    # The restricted space and the remapped op genes (inactive layers' ops go to index 0).
    space = mixed.restrict(SPACE)
    assert space.ops == ("lightgcn", "mean") and space.max_layers == 2
    a = mixed.apply(SPACE, take(archs, 3))
    assert np.asarray(a.op).tolist() == [1, 0]  # [mean, lightgcn] in ("lightgcn", "mean")
    assert mf.restrict(SPACE).max_layers == 0


def test_grouped_chunks_equal_solo_runs(runs):
    archs, _, _, grouped, solo, res = runs
    for x, y in zip(leaves(res.params), leaves(solo.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.fitness, solo.fitness, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.loss, solo.loss, rtol=1e-5, atol=1e-5)
    for name in res.valid:
        np.testing.assert_allclose(res.valid[name], solo.valid[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(res.best_epoch, solo.best_epoch)
    assert not np.any(np.asarray(res.failed))
    # In the members' order: training moved every member differently.
    emb = np.asarray(solo.params["emb"])
    assert not np.allclose(emb[0], emb[1]) and not np.allclose(emb[2], emb[6])
    # The programs that ran: each for a strict subset of the space's ops, at the chunk's width.
    ex = grouped._executors[("train", CHUNK)]
    plans = {(p.ops, w) for p, w in ex.programs}
    assert plans == {(("lightgcn", "mean"), 4), (("lightgcn",), 2), ((), 2)}
    seconds = grouped.last_seconds
    assert seconds.shape == (9,) and np.all(seconds > 0)


def test_grouped_evaluate_equals_solo(runs, data):
    archs, _, solo_engine, grouped, solo, _ = runs
    want = solo_engine.evaluate(solo.params, archs, data.valid)
    got = grouped.evaluate(solo.params, archs, data.valid)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_a_member_does_not_depend_on_its_chunk(runs):
    # Member 8 alone, and members 1 and 8 as a chunk of 2 without member 5: the same numbers.
    archs, keys, _, grouped, _, res = runs
    for idx in ([8], [8, 1]):
        part = grouped.train(keys[np.asarray(idx)], take(archs, idx))
        np.testing.assert_allclose(part.fitness, np.asarray(res.fitness)[idx], rtol=1e-5, atol=1e-5)
        for x, y in zip(leaves(part.params), leaves(res.params), strict=True):
            np.testing.assert_allclose(x, y[idx], rtol=1e-5, atol=1e-5)


def test_no_recompilation_of_grouped_chunks(runs):
    archs, keys, _, grouped, _, _ = runs
    ex = grouped._executors[("train", CHUNK)]
    before = {k: fn._cache_size() for k, fn in ex.programs.items()}
    # New keys, new learning rates (not a plan gene): the same programs, no new compile.
    again = archs.replace(lr=np.full(archs.size, 3e-3, np.float32))
    jax.block_until_ready(grouped.train(jax.random.split(jax.random.key(9), archs.size), again))
    after = {k: fn._cache_size() for k, fn in ex.programs.items()}
    assert after == before == dict.fromkeys(before, 1)


def test_plan_mode_scores_the_combination_columns_only():
    # A plan's fixed combination other than concat returns its d columns (the first d columns
    # of the padded (L+1) d output of the other modes); concat keeps its width.
    ds = tiny_dataset(seed=4)
    g = build(ds.train, ds.n_users, ds.n_items)
    inputs = model_lib.Inputs(g, jax.numpy.zeros((g.n_node, 1), jax.numpy.float32))
    params = model_lib.init_params(jax.random.key(0), SPACE, g.n_users, g.n_node, 1)
    base = take(population(), 0)  # depth 2: lightgcn, then mean
    for combine in range(5):
        arch = base.replace(combine=np.int32(combine))
        want = model_lib.embeddings(params, jax.tree.map(jax.numpy.asarray, arch), inputs,
                                    space=SPACE)[0]  # fmt: skip
        plan = Plan.of(SPACE, stack([arch]))
        fn = jax.jit(lambda p, a, plan=plan: model_lib.embeddings(
            p, plan.apply(SPACE, a), inputs, space=plan.restrict(SPACE), mode="plan"))  # fmt: skip
        got = fn(params, jax.tree.map(jax.numpy.asarray, arch))[0]
        width = want.shape[1] if combine == 3 else SPACE.d_max
        assert got.shape[1] == width
        np.testing.assert_allclose(got, want[:, :width], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(want[:, width:], 0.0)


def test_a_lone_member_runs_its_plan(runs, data):
    # One member (a lone model): its own plan's program, not the generic solo one; same numbers.
    archs, keys, solo_engine, _, solo, _ = runs
    engine = Engine(CFG, SPACE, data)
    for i in (0, 8):
        res = engine.train(keys[i : i + 1], take(archs, [i]))
        np.testing.assert_allclose(res.fitness, np.asarray(solo.fitness)[[i]], rtol=1e-5, atol=1e-5)
        for x, y in zip(leaves(res.params), leaves(solo.params), strict=True):
            np.testing.assert_allclose(x, y[[i]], rtol=1e-5, atol=1e-5)
    ex = engine._executors[("train", 1)]
    assert {(p.ops, w) for p, w in ex.programs} == {(("lightgcn", "mean"), 1), (("lightgcn",), 1)}
    assert ex._solo._cache_size() == 0  # the generic solo program never ran


def test_long_training_runs_solo_members_under_their_plans(runs, data, monkeypatch):
    # Above SOLO_PLAN_STEPS, the member left alone in its group (member 8 of {lightgcn}: a chunk
    # of 2, then 1) runs its plan's program; below it, the generic solo program (runs fixture).
    archs, keys, _, grouped, solo, _ = runs
    assert ("lightgcn",) not in {
        p.ops for p, w in grouped._executors[("train", CHUNK)].programs if w == 1
    }
    monkeypatch.setattr(train_lib, "SOLO_PLAN_STEPS", 1)
    engine = Engine(CFG, SPACE, data, chunk_size=CHUNK, group=True)
    res = engine.train(keys, archs)
    ex = engine._executors[("train", CHUNK)]
    assert {(p.ops, w) for p, w in ex.programs if w == 1} == {(("lightgcn",), 1)}
    assert ex._solo._cache_size() == 0
    for x, y in zip(leaves(res.params), leaves(solo.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.fitness, solo.fitness, rtol=1e-5, atol=1e-5)
