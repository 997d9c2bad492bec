"""The search loop: resume equals an uninterrupted run, diverging candidates, duplicates, halving."""

import dataclasses

import numpy as np
import pytest
from conftest import CONFIGS

from jgnas import config as config_lib
from jgnas.search import loop

TINY = CONFIGS / "tiny.yaml"


def quiet(msg):
    pass


@pytest.fixture(scope="module")
def ctx():
    cfg = config_lib.load(TINY, ["search.generations=4"])
    return loop.prepare(cfg, log=quiet)


def _with(ctx, **search):
    cfg = ctx.cfg
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, **search))
    return dataclasses.replace(ctx, cfg=cfg)


def _essence(archive):
    return [(r["generation"], r["index"], r["key"], r["genome"], r["fitness"]) for r in archive]


@pytest.mark.parametrize("strategy", ["regularized_evolution", "CMA_ES"])
def test_resume_equals_uninterrupted(ctx, tmp_path, strategy):
    c = _with(ctx, strategy=strategy)
    full = loop.search(c, tmp_path / "full", log=quiet)
    stop = int(np.random.default_rng().integers(0, c.cfg.search.generations - 1))

    def interrupt(g):
        if g == stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.search(c, tmp_path / "cut", log=quiet, on_generation=interrupt)
    resumed = loop.search(c, tmp_path / "cut", resume=True, log=quiet)
    assert _essence(resumed) == _essence(full), f"interrupted after generation {stop}"
    history = (tmp_path / "cut" / "history.jsonl").read_text().splitlines()
    assert len(history) == len(full)


def test_same_seed_same_search_other_seed_differs(ctx, tmp_path):
    a = loop.search(ctx, tmp_path / "a", log=quiet)
    b = loop.search(ctx, tmp_path / "b", log=quiet)
    c = loop.search(_with(ctx, seed=1), tmp_path / "c", log=quiet)
    assert _essence(a) == _essence(b)
    assert [r["genome"] for r in a] != [r["genome"] for r in c]


def test_duplicates_reuse_the_archive(ctx, tmp_path):
    archive = loop.search(_with(ctx, strategy="random", population_size=4), tmp_path, log=quiet)
    # A tiny space makes duplicates likely; whenever one appears it must be marked cached and
    # carry exactly the fitness of its first evaluation.
    first = {}
    for r in archive:
        k = tuple(r["key"])
        if k in first:
            assert r.get("cached") and r["fitness"] == first[k]["fitness"]
        else:
            assert not r.get("cached")
            first[k] = r


def test_diverging_candidates_fail_without_killing_the_search(ctx, tmp_path):
    space = dataclasses.replace(ctx.space, lrs=(1e-3, 1e30))
    cfg = dataclasses.replace(ctx.cfg, space=space)
    c = dataclasses.replace(_with(ctx, strategy="CMA_ES"), cfg=cfg, space=space)
    archive = loop.search(c, tmp_path, log=quiet)
    failed = [r for r in archive if r["failed"]]
    healthy = [r for r in archive if not r["failed"]]
    assert failed and healthy
    assert all(r["fitness"] is None for r in failed)
    assert all(r["arch"]["lr"] == 1e30 for r in failed)
    assert all(np.isfinite(r["fitness"]) for r in healthy)
    assert all(np.isfinite(r["genome"]).all() for r in archive)


def test_successive_halving_promotes_the_top(ctx, tmp_path):
    c = _with(ctx, halving_rungs=1, halving_eta=2, generations=1)
    archive = loop.search(c, tmp_path, log=quiet)
    epochs = sorted(r["epochs"] for r in archive if not r.get("cached"))
    base = ctx.cfg.train.epochs
    assert epochs.count(2 * base) >= 1 and epochs.count(base) >= 1


def test_top_archs_are_distinct_and_sorted():
    archive = [
        {"key": [1], "fitness": 0.3, "generation": 0, "index": 0, "arch": {}},
        {"key": [1], "fitness": 0.3, "generation": 1, "index": 0, "arch": {}, "cached": True},
        {"key": [2], "fitness": None, "generation": 0, "index": 1, "failed": True, "arch": {}},
        {"key": [3], "fitness": 0.5, "generation": 0, "index": 2, "arch": {}},
        {"key": [4], "fitness": 0.1, "generation": 0, "index": 3, "arch": {}},
    ]
    top = loop.top_archs(None, archive, 3)
    assert [r["key"] for r in top] == [[3], [1], [4]]


def test_param_count_counts_used_weights(ctx):
    space = ctx.space
    n = ctx.dataset.n_users + ctx.dataset.n_items
    mf = space.to_dict(space.preset("mf"))
    assert loop.param_count(space, mf, n, 0) == n * mf["dim"]
    d = {
        **mf,
        "depth": 1,
        "layers": [{"op": "gcn", "transform": "linear", "act": "relu", "residual": False}],
    }
    assert loop.param_count(space, d, n, 0) == n * mf["dim"] + mf["dim"] ** 2
