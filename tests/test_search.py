"""The search loop: resume equals an uninterrupted run, diverging candidates, duplicates, halving."""

import dataclasses
import json
import zlib

import numpy as np
import pytest
from conftest import CONFIGS

from jgnas import config as config_lib
from jgnas import experiment
from jgnas.search import loop
from jgnas.space import BPR_ONLY, Space

TINY = CONFIGS / "tiny.yaml"


@pytest.fixture(scope="module")
def ctx():
    cfg = config_lib.load(TINY, ["search.generations=4"])
    return experiment.prepare(cfg, log=experiment.quiet)


def _with(ctx, **search):
    cfg = ctx.cfg
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, **search))
    return dataclasses.replace(ctx, cfg=cfg)


def _essence(archive):
    return [(r.generation, r.index, r.key, r.genome, r.fitness) for r in archive]


def _fields(archive, space):
    return [{k: v for k, v in r.to_json(space).items() if k != "train_seconds"} for r in archive]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["regularized_evolution", "CMA_ES"])
def test_resume_equals_uninterrupted(ctx, tmp_path, strategy):
    c = _with(ctx, strategy=strategy)
    full = loop.search(c, tmp_path / "full", log=experiment.quiet)
    # The interruption point is seeded (by the strategy's name): reproducible, and different
    # strategies stop at different generations.
    rng = np.random.default_rng(zlib.crc32(strategy.encode()))
    stop = int(rng.integers(0, c.cfg.search.generations - 1))

    def interrupt(g):
        if g == stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.search(c, tmp_path / "cut", log=experiment.quiet, on_generation=interrupt)
    history = (tmp_path / "cut" / "history.jsonl").read_text().splitlines()
    assert len(history) == (stop + 1) * c.cfg.search.population_size
    resumed = loop.search(c, tmp_path / "cut", resume=True, log=experiment.quiet)
    assert _essence(resumed) == _essence(full), f"interrupted after generation {stop}"
    # Every field of every record, archs included (but the measured wall time).
    assert _fields(resumed, c.space) == _fields(full, c.space)
    history = (tmp_path / "cut" / "history.jsonl").read_text().splitlines()
    assert len(history) == len(full)


def test_same_seed_same_search_other_seed_differs(ctx, tmp_path):
    a = loop.search(ctx, tmp_path / "a", log=experiment.quiet)
    b = loop.search(ctx, tmp_path / "b", log=experiment.quiet)
    c = loop.search(_with(ctx, seed=1), tmp_path / "c", log=experiment.quiet)
    assert _essence(a) == _essence(b)
    assert [r.genome for r in a] != [r.genome for r in c]


def test_duplicates_reuse_the_archive(ctx, tmp_path):
    # A space with exactly one architecture forces duplicates: every candidate after the first is
    # the same model, so one is trained and the others reuse its result.
    one = Space(
        ops=("lightgcn",), max_layers=1, dims=(8,), dropouts=(0.0,), lrs=(1e-2,), l2s=(0.0,),
        **BPR_ONLY,
    )  # fmt: skip
    c = _with(ctx, strategy="random", generations=2)
    c = dataclasses.replace(c, cfg=dataclasses.replace(c.cfg, space=one), space=one)
    archive = loop.search(c, tmp_path, log=experiment.quiet)
    distinct = {r.key for r in archive}
    trained = [r for r in archive if not r.cached]
    assert len(archive) == 2 * ctx.cfg.search.population_size
    assert len(trained) == len(distinct) < len(archive)  # depth 0 and depth 1: at most 2
    first = {r.key: r for r in trained}
    for r in archive:
        assert r.fitness == first[r.key].fitness and r.valid == first[r.key].valid
        assert r.cached == (r is not first[r.key])


def test_diverging_candidates_fail_without_killing_the_search(ctx, tmp_path):
    space = dataclasses.replace(ctx.space, lrs=(1e-3, 1e30))
    cfg = dataclasses.replace(ctx.cfg, space=space)
    c = dataclasses.replace(_with(ctx, strategy="CMA_ES"), cfg=cfg, space=space)
    archive = loop.search(c, tmp_path, log=experiment.quiet)
    failed = [r for r in archive if r.failed]
    healthy = [r for r in archive if not r.failed]
    assert failed and healthy
    assert all(r.fitness is None for r in failed)
    assert all(r.arch.lr == np.float32(1e30) for r in failed)
    assert all(np.isfinite(r.fitness) for r in healthy)
    assert all(np.isfinite(r.genome).all() for r in archive)


def test_successive_halving_promotes_the_top(ctx, tmp_path):
    c = _with(ctx, halving_rungs=1, halving_eta=2, generations=1)
    archive = loop.search(c, tmp_path, log=experiment.quiet)
    epochs = sorted(r.epochs for r in archive if not r.cached)
    base = ctx.cfg.train.epochs
    assert epochs.count(2 * base) >= 1 and epochs.count(base) >= 1


def _record(key, fitness, generation, index, failed=False, cached=False):
    return loop.Candidate(
        generation, index, (0.5,), (key,), None, "", fitness, failed, {}, 1, 1, 0.0, 0, cached
    )


def test_top_archs_are_distinct_and_sorted():
    archive = [
        _record(1, 0.3, 0, 0),
        _record(1, 0.3, 1, 0, cached=True),
        _record(2, None, 0, 1, failed=True),
        _record(3, 0.5, 0, 2),
        _record(4, 0.1, 0, 3),
        _record(5, 0.3, 1, 1),  # ties with key 1: the earlier generation ranks first
    ]
    top = loop.top_archs(archive, 3)
    assert [r.key for r in top] == [(3,), (1,), (5,)]


def test_candidate_json_round_trip(ctx, tmp_path):
    archive = loop.search(_with(ctx, generations=1), tmp_path, log=experiment.quiet)
    space = ctx.space
    for r in archive:
        back = loop.Candidate.from_json(r.to_json(space), space)
        assert back.to_json(space) == r.to_json(space)
        np.testing.assert_array_equal(space.indices(back.arch), space.indices(r.arch))
        assert space.canonical(r.arch).op.tolist() == r.arch.op.tolist()  # stored canonical
    # history.jsonl holds the same records.
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [r.to_json(space) for r in archive]


def test_param_count_counts_used_weights(ctx):
    space = ctx.space
    n = ctx.n_node
    mf = space.preset("mf")
    dim = int(mf.dim)
    assert space.param_count(mf, n, 0) == n * dim
    d = {
        **space.to_dict(mf),
        "depth": 1,
        "layers": [{"op": "gcn", "transform": "linear", "act": "relu", "residual": False}],
    }
    assert space.param_count(space.from_dict(d), n, 0) == n * dim + dim**2
    gat = {**d, "layers": [{**d["layers"][0], "op": "gat"}], "combine": "concat"}
    want = n * dim + dim**2 + 2 * dim  # W and the attention vectors (concat has no weights)
    assert space.param_count(space.from_dict(gat), n, 0) == want
    lgc = {**d, "layers": [{**d["layers"][0], "op": "lightgcn"}]}
    assert space.param_count(space.from_dict(lgc), n, 16) == n * dim  # W is inert in lightgcn
