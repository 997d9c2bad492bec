"""Seeding generation 0 with the presets (`search.seed_presets`) and choosing the winner among
tuned finalists."""

import dataclasses

import numpy as np
import pytest
from conftest import CONFIGS

from jgnas import config as config_lib
from jgnas import experiment, job
from jgnas.search import loop, seeding
from jgnas.space import Space

TINY = CONFIGS / "tiny.yaml"


def test_on_grid_moves_each_number_to_the_nearest_grid_point():
    space = Space(dims=(16, 32), dropouts=(0.0, 0.1), lrs=(3e-3, 1e-2), l2s=(3e-5, 1e-3))
    d = space.to_dict(space.preset("lightgcn"))  # published: d 64, lr 1e-3, l2 1e-4
    g = seeding.on_grid(space, d)
    assert (g["dim"], g["lr"], g["dropout"]) == (32, pytest.approx(3e-3), 0.0)
    assert g["l2"] == pytest.approx(3e-5)  # log-nearest (the linear nearest would be 1e-3)
    assert seeding._nearest(0.0, (1e-5, 1e-3), log=True) == pytest.approx(1e-5)
    assert seeding._nearest(6e-3, (3e-3, 1e-2), log=True) == pytest.approx(1e-2)
    assert seeding._nearest(5e-3, (3e-3, 1e-2), log=True) == pytest.approx(3e-3)
    assert seeding._nearest(9, (1, 4, 16), log=False) == 4


def test_preset_genomes_decode_to_the_presets_on_the_grids():
    space = Space(text=True)
    genomes = seeding.preset_genomes(space, ["lightgcn", "lightgcn+text", "mf"])
    assert genomes.shape == (3, space.n_genes)
    archs = space.decode(genomes)
    got = [
        space.to_dict(space.canonical(a))
        for a in [__import__("jax").tree.map(lambda x, i=i: x[i], archs) for i in range(3)]
    ]
    assert [d["depth"] for d in got] == [3, 3, 0]
    assert {lay["op"] for lay in got[0]["layers"]} == {"lightgcn"}
    assert got[0]["combine"] == "mean" and got[0]["features"] == "id"
    assert got[1]["features"] == "id+text"
    for d in got:
        assert d["lr"] == pytest.approx(space.lrs[0]) and d["dim"] == 64
        assert d["loss"] == "bpr" and d["negatives"] == 1 and d["ssl"] == 0.0


def test_a_preset_the_space_cannot_hold_is_one_line():
    with pytest.raises(ValueError, match="search.seed_presets: preset 'ngcf' uses op 'ngcf'"):
        seeding.preset_genomes(Space(ops=("gcn", "lightgcn")), ["ngcf"])
    with pytest.raises(ValueError, match="needs text features"):
        seeding.preset_genomes(Space(), ["lightgcn+text"])
    with pytest.raises(ValueError, match="space.losss|space.losses"):
        seeding.preset_genomes(Space(losses=("softmax",)), ["lightgcn"])
    cfg = config_lib.load(TINY, ["search.seed_presets=[ngcf]"])
    with pytest.raises(config_lib.ConfigError, match="seed_presets: preset 'ngcf'"):
        config_lib.check_strategy(
            cfg.search, Space(**{k: getattr(cfg.space, k) for k in ("ops", "max_layers", "dims")})
        )
    with pytest.raises(
        config_lib.ConfigError, match="seed_presets: 5 presets for a population of 4"
    ):
        config_lib.load(TINY, ["search.seed_presets=[mf, mf, mf, mf, mf]"])


@pytest.mark.parametrize("strategy", ["regularized_evolution", "CMA_ES"])
def test_seeded_search_starts_from_the_presets(tmp_path, strategy):
    cfg = config_lib.load(
        TINY, ["search.generations=2", f"search.strategy={strategy}", "space.max_layers=3",
               "search.seed_presets=[lightgcn, mf]"]
    )  # fmt: skip
    ctx = experiment.prepare(cfg, log=experiment.quiet)
    archive = loop.search(ctx, tmp_path / "s", log=experiment.quiet)
    first = [r for r in archive if r.generation == 0]
    want = [ctx.space.keys(ctx.space.decode(g[None]))[0]
            for g in seeding.preset_genomes(ctx.space, ["lightgcn", "mf"])]  # fmt: skip
    assert [tuple(r.key) for r in first[:2]] == [tuple(w) for w in want]
    assert first[0].describe.startswith("3L[lightgcn, lightgcn, lightgcn] mean d16")
    assert first[1].describe.startswith("MF d16")
    # The unseeded search draws other first members; the rest of generation 0 is unchanged.
    plain = loop.search(
        dataclasses.replace(ctx, cfg=config_lib.load(
            TINY, ["search.generations=2", f"search.strategy={strategy}",
                   "space.max_layers=3"])),
        tmp_path / "p", log=experiment.quiet,
    )  # fmt: skip
    assert [r.key for r in plain[2:4]] == [r.key for r in first[2:4]]
    assert [r.key for r in plain[:2]] != [r.key for r in first[:2]]
    assert all(np.isfinite(r.fitness) for r in first if r.fitness is not None)


def test_the_winner_is_the_finalist_with_the_best_tuned_validation():
    grid = lambda *v: {
        "lr": 1e-2,
        "l2": 0.0,
        "grid": [{"lr": 1e-2, "l2": 0.0, "valid": x} for x in v],
    }  # noqa: E731
    tuned = experiment.Tuned(
        candidates=[("search#1", "a1"), ("search#2", "a2"), ("search#3", "a3"), ("lightgcn", "b")],
        grid={"search#1": grid(0.20, 0.21), "search#2": grid(0.19, 0.25), "search#3": grid(None),
              "lightgcn": grid(0.3)},
        seconds=0.0,
    )  # fmt: skip
    assert job._best_finalist(tuned) == [("search#2", "a2"), ("lightgcn", "b")]
    one = dataclasses.replace(tuned, candidates=tuned.candidates[:1] + tuned.candidates[3:])
    assert job._best_finalist(one) == one.candidates


def test_job_retrains_only_the_best_tuned_finalist(tmp_path):
    cfg = config_lib.load(TINY, ["final.top_k=3", "final.seeds=1", "search.seed_presets=[mf]"])
    summary = job.run(cfg, tmp_path / "run", log=experiment.quiet)
    searched = [r for r in summary["rows"] if r["label"].startswith("search#")]
    assert len(searched) == 1 and [r["label"] for r in summary["rows"]][1:] == ["mf"]
    fin = summary["finalists"]
    assert len(fin) == 3 and searched[0]["label"] in fin

    def best(g):
        return max(p["valid"] for p in g["grid"] if p["valid"] is not None)

    assert best(fin[searched[0]["label"]]) == max(best(g) for g in fin.values())
    assert searched[0]["describe"] == fin[searched[0]["label"]]["describe"]
    text = (tmp_path / "run" / "summary.md").read_text()
    assert "The search's 3 finalists, tuned alike" in text
