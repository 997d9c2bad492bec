"""scripts/recbole_parity.py and recbole_scratch.py without RecBole or a full training: the
parity rows are the real presets at RecBole's hyperparameters, unpatched; the export round-trips;
the report computes the gaps; the scratch patches do what they say and restore jgnas."""

import importlib
import pathlib
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from engine_utils import tiny_dataset

from jgnas import model as model_lib
from jgnas import objective
from jgnas import train as train_lib
from jgnas.data import DataConfig
from jgnas.sampler import n_batches_per_epoch
from jgnas.space import Space
from jgnas.train import TrainConfig, make_data

SCRIPTS = pathlib.Path(__file__).parent.parent / "scripts"
SCRIPT = SCRIPTS / "recbole_parity.py"


@pytest.fixture(scope="module")
def rp() -> dict:
    """The script's globals (imported, not run as __main__; it imports scripts/recbole_scratch)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield runpy.run_path(str(SCRIPT))
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def scratch(rp):
    return importlib.import_module("recbole_scratch")


def test_parity_rows_are_unpatched(rp, scratch):
    cat = rp["rows_catalogue"]()
    for label, (_, _, _, variant) in cat.items():
        assert (variant == scratch.Variant()) == ("+rb_" not in label), label
    assert cat["lightgcn/rb_hp+rb_sampler+rb_init+rb_embloss"][3] == scratch.RECBOLE_LIGHTGCN


def test_parity_rows_are_the_presets_at_recbole_hyperparameters(rp):
    cat, space, rb = rp["rows_catalogue"](), rp["SPACE"], rp["RECBOLE_TRAIN"]
    assert (rb.epochs, rb.batch_size, rb.eval_every, rb.patience) == (300, 2048, 1, 11)
    for label, (model, arch_d, _, _) in cat.items():
        assert label.split("/")[0] == model
        space.from_dict(arch_d, where=label)  # every row is a point jgnas can train
    mf, lgcn, ngcf = (cat[f"{m}/rb_hp"] for m in ("mf", "lightgcn", "ngcf"))
    assert all(r[2] is rb for r in (mf, lgcn, ngcf))
    assert mf[1]["depth"] == 0 and mf[1]["l2"] == 0.0  # BPR.yaml: no regulariser
    assert lgcn[1]["depth"] == len(lgcn[1]["layers"]) == 2 and lgcn[1]["l2"] == 1e-5
    assert lgcn[1]["combine"] == "mean"
    assert ngcf[1]["l2"] == 1e-5 and ngcf[1]["dropout"] == 0.1 and ngcf[1]["combine"] == "concat"
    assert [(x["op"], x["act"], x["norm"]) for x in ngcf[1]["layers"]] == [
        ("ngcf", "leaky_relu", "l2")
    ] * 3
    for _, arch_d, _, _ in (mf, lgcn, ngcf):  # the published objective
        assert (arch_d["loss"], arch_d["negatives"], arch_d["sampler"], arch_d["ssl"]) == (
            "bpr", 1, "uniform", 0.0)  # fmt: skip
    assert cat["ngcf/rb_hp~norm"][1]["layers"][0]["norm"] == "none"


def test_export_and_split_check(rp, tmp_path):
    cfg = DataConfig(
        name="synthetic", synthetic_users=30, synthetic_items=40, synthetic_interactions=400
    )
    info = rp["export"](cfg, tmp_path)
    files = sorted(info["files"])
    assert files == [f"{rp['DATASET']}.{p}.inter" for p in ("test", "train", "valid")]
    lines = (tmp_path / files[1]).read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert len(lines) - 1 == info["files"][files[1]]["rows"] > 0
    assert rp["split_mismatch"](info, cfg) == []
    assert rp["split_mismatch"]({}, cfg) == []
    info["files"][files[0]]["sha256"] = "0" * 64
    assert rp["split_mismatch"](info, cfg) == [files[0]]


def test_report_gaps(rp):
    ref = {"best_epoch": 90, "test": {"recall@20": 0.4, "ndcg@20": 0.3}}
    row = {
        "model": "mf",
        "seeds": 3,
        "best_epoch": [80, 81, 82],
        "test": {"recall@20": 0.404, "ndcg@20": 0.291},
        "test_std": {"recall@20": 0.001, "ndcg@20": 0.002},
    }
    other = row | {"seeds": 1, "test": {"recall@20": 0.36, "ndcg@20": 0.3}}
    res = {"recbole": {"BPR": ref}, "jgnas": {"mf/rb_hp": row, "mf/rb_hp~l2": other}}
    text = rp["report"](res)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]
    (main,) = [c for c in cells if c[1:2] == ["`mf/rb_hp`"]]
    assert main[2:] == ["3", "80/81/82", "0.4040 ± 0.0010", "0.2910 ± 0.0020", "+1.0 %",
                        "-3.0 %", "no"]  # fmt: skip
    (abl,) = [c for c in cells if c[0] == "`mf/rb_hp~l2`"]
    assert abl[1:] == ["1", "80/81/82", "0.3600", "0.3000", "-10.0 %", "+0.0 %"]
    ok = res | {"jgnas": {"mf/rb_hp": row | {"test": {"recall@20": 0.394, "ndcg@20": 0.297}}}}
    assert rp["report"](ok).splitlines()[3].endswith("| yes |")


# ---- recbole_scratch ------------------------------------------------------------------------------


def test_patched_restores_jgnas(scratch):
    names = ((train_lib, "make_train"), (model_lib, "init_params"), (objective, "loss"))
    before = [getattr(m, n) for m, n in names]
    with scratch.patched(scratch.Variant()):
        assert [getattr(m, n) for m, n in names] == before
    with scratch.patched(scratch.RECBOLE_LIGHTGCN):
        assert all(getattr(m, n) is not f for (m, n), f in zip(names, before))
    assert [getattr(m, n) for m, n in names] == before
    with pytest.raises(ValueError, match="Variant.sampler"):
        scratch.Variant(sampler="uniform")


def test_permutation_batches_cover_each_epoch(scratch):
    ds = tiny_dataset(seed=1)
    data = make_data(ds, TrainConfig()).sampler
    n = data.n_train
    B = next(b for b in (8, 7, 9) if n % b)  # an epoch with a short last batch
    steps = n_batches_per_epoch(data, B)
    train_pairs = sorted(zip(np.asarray(data.users).tolist(), np.asarray(data.items).tolist()))
    key = jax.random.key(0)
    for epoch in range(2):
        batches = [
            scratch.permutation_batch(key, epoch * steps + b, data, B, 2, 0, steps)
            for b in range(steps)
        ]
        users, pos, neg = (np.concatenate([np.asarray(x[i]) for x in batches]) for i in range(3))
        # One permutation: every interaction once, the last batch wrapping to the start.
        assert sorted(zip(users[:n].tolist(), pos[:n].tolist())) == train_pairs
        assert neg.shape == (steps * B, 2)
        positives = set(train_pairs)
        assert not any((u, j) in positives for u, row in zip(users, neg) for j in row)
    # RecBole's short last batch: its `rem` leftover triples, repeated to fill the static shape.
    rem = n - (steps - 1) * B
    assert 0 < rem < B
    for permute in (True, False):
        b = scratch.permutation_batch(key, steps - 1, data, B, 2, 0, steps, permute, True)
        users, pos, neg = (np.asarray(x) for x in b)
        reps = np.arange(B) % rem
        assert (users == users[reps]).all() and (pos == pos[reps]).all()
        assert (neg == neg[reps]).all()
        if permute:  # the epoch's leftover: the permutation's last rem interactions
            full = scratch.permutation_batch(key, steps - 1, data, B, 2, 0, steps)
            assert (users[:rem] == np.asarray(full[0])[:rem]).all()
        other = scratch.permutation_batch(key, steps - 2, data, B, 2, 0, steps, permute, True)
        assert len(set(zip(np.asarray(other[0]).tolist(), np.asarray(other[1]).tolist()))) > rem
    scratch.permutation_make_train()  # the source anchor in jgnas.train.make_train still exists


def test_emb_loss_and_xavier_uniform(scratch):
    ds = tiny_dataset(seed=2)
    space = Space(max_layers=3, dims=(16,), l2s=(0.0, 1e-2))
    inputs = make_data(ds, TrainConfig()).inputs
    g = inputs.graph
    params = scratch.xavier_uniform_init(jax.random.key(0), space, g.n_users, g.n_node, 1)
    emb = np.asarray(params["emb"])
    for rows in (emb[: g.n_users], emb[g.n_users :]):
        assert np.abs(rows).max() <= np.sqrt(6.0 / (rows.shape[0] + 16)) + 1e-7
    arch = jax.tree.map(jnp.asarray, space.preset("lightgcn")).replace(l2=jnp.float32(1e-2))
    u = jnp.asarray([0, 1, 2, 1], jnp.int32)
    i = jnp.asarray([3, 4, 5, 6], jnp.int32)
    neg = jnp.asarray([[7], [8], [9], [10]], jnp.int32)
    got = scratch.emb_loss(params, arch, inputs, (u, i, neg), None, space=space)
    base = objective.loss(params, arch.replace(l2=jnp.float32(0.0)), inputs, (u, i, neg), None,
                          space=space)  # fmt: skip
    h0 = np.asarray(params["emb"])
    frob = sum(np.linalg.norm(h0[r]) for r in (u, i + g.n_users, neg[:, 0] + g.n_users))
    np.testing.assert_allclose(float(got), float(base) + 1e-2 * frob / 4, rtol=1e-5)
    # sample_member_batch's form with shared negatives: the EmbLoss takes the first negative.
    shared = (u, i, neg[:, 0], jnp.asarray([11, 12], jnp.int32), jnp.ones((4, 2), bool))
    got = scratch.emb_loss(params, arch, inputs, shared, None, space=space)
    base = objective.loss(params, arch.replace(l2=jnp.float32(0.0)), inputs, shared, None,
                          space=space)  # fmt: skip
    np.testing.assert_allclose(float(got), float(base) + 1e-2 * frob / 4, rtol=1e-5)
