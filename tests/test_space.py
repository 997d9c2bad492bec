"""The search space: genome decoding, canonical forms, JSON, presets and `describe`."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jgnas.ops import FAST_OPS
from jgnas.space import (
    ACTIVATIONS,
    BPR_ONLY,
    COMBINES,
    FEATURES,
    NORMS,
    PRESETS,
    TRANSFORMS,
    Arch,
    Space,
    stack,
    take,
    wide_space,
)

TEXT_PRESETS = sorted(n for n, p in PRESETS.items() if p["features"] != "id")
ID_PRESETS = sorted(n for n, p in PRESETS.items() if p["features"] == "id")


def arrays_equal(a: Arch, b: Arch) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    ) and jax.tree.structure(a) == jax.tree.structure(b)


def test_gene_names_and_sizes():
    space = Space(ops=("gcn", "lightgcn", "gat"), max_layers=2, dims=(8, 16, 32), **BPR_ONLY)
    n_ops = 3
    assert space.gene_names == (
        "depth",
        "op0",
        "transform0",
        "act0",
        "residual0",
        "norm0",
        "op1",
        "transform1",
        "act1",
        "residual1",
        "norm1",
        "combine",
        "dim",
        "dropout",
        "lr",
        "l2",
        "features",
        "loss",
        "negatives",
        "temperature",
        "sampler",
        "ssl",
    )
    layer = (n_ops, len(TRANSFORMS), len(ACTIVATIONS), 2, len(NORMS))
    assert space.gene_sizes == (
        3,
        *layer,
        *layer,
        len(COMBINES),
        3,
        len(space.dropouts),
        len(space.lrs),
        len(space.l2s),
        1,  # id only: the space has neither text nor side features
        1,
        1,
        1,
        1,
        1,
    )
    both = Space(text=True, side=True, **{**BPR_ONLY, "losses": ("bpr", "softmax"), "negatives": (1, 8)})
    assert both.gene_sizes[-6:] == (len(FEATURES), 2, 2, 1, 1, 1)
    assert [FEATURES[i] for i in Space(text=True).feature_choices] == ["id", "text", "id+text"]
    assert [FEATURES[i] for i in Space(side=True).feature_choices] == ["id", "side", "id+side"]
    assert space.n_genes == len(space.gene_names) == len(space.gene_sizes)
    assert space.d_max == 32
    assert Space().ops == FAST_OPS  # pinned, whatever else is registered


def test_decode_bins_and_clips():
    space = Space(max_layers=2)
    g = np.zeros(space.n_genes)
    a = space.decode(g)
    assert int(a.depth) == 0 and int(a.dim) == space.dims[0]
    assert float(a.lr) == pytest.approx(space.lrs[0])
    # 1.0 (and beyond, and NaN -> 0) are clipped into range.
    top = space.decode(np.full(space.n_genes, 1.5))
    assert int(top.depth) == space.max_layers and int(top.dim) == space.dims[-1]
    assert np.all(top.op == len(space.ops) - 1)
    nan = space.decode(np.full(space.n_genes, np.nan))
    assert arrays_equal(nan, a)
    # Gene g with s choices: x in [k/s, (k+1)/s) -> k.
    i = space.gene_names.index("lr")
    s = space.gene_sizes[i]
    for k in range(s):
        for x in (k / s + 1e-6, (k + 1) / s - 1e-6):
            g = np.zeros(space.n_genes)
            g[i] = x
            assert float(space.decode(g).lr) == pytest.approx(space.lrs[k])
    with pytest.raises(ValueError, match="genes"):
        space.decode(np.zeros(space.n_genes + 1))


@pytest.mark.parametrize("seed", range(3))
def test_encode_decode_round_trip(seed):
    space = wide_space()
    archs = space.sample(jax.random.key(seed), 16)
    assert archs.size == 16
    genomes = space.encode(archs)
    assert genomes.shape == (16, space.n_genes)
    assert np.all((genomes > 0) & (genomes < 1))
    assert arrays_equal(space.decode(genomes), archs)
    # Every gene's value lies on its grid.
    idx = space.indices(archs)
    assert np.all(idx >= 0) and np.all(idx < np.asarray(space.gene_sizes))
    # A single arch round-trips too.
    one = take(archs, 3)
    assert arrays_equal(space.decode(space.encode(one)), one)


def test_samples_cover_choices():
    space = Space(max_layers=2)
    archs = space.sample(jax.random.key(0), 400)
    assert set(np.asarray(archs.depth).tolist()) == set(range(space.max_layers + 1))
    assert set(np.asarray(archs.op).ravel().tolist()) == set(range(len(space.ops)))
    assert set(np.asarray(archs.dim).tolist()) == set(space.dims)
    assert np.all(np.asarray(archs.features) == 0)  # no text: features decode as id


def test_canonical_is_idempotent_and_zeroes_inactive_genes():
    space = wide_space()
    archs = space.sample(jax.random.key(1), 64)
    can = space.canonical(archs)
    assert arrays_equal(space.canonical(can), can)
    depth = np.asarray(can.depth)
    inactive = np.arange(space.max_layers)[None, :] >= depth[:, None]
    for gene in (can.op, can.transform, can.act, can.residual):
        assert np.all(np.asarray(gene)[inactive] == 0)
    assert np.all(np.asarray(can.combine)[depth == 0] == 0)
    # Active genes are untouched (except lightgcn's transform, which has no effect).
    active = ~inactive
    np.testing.assert_array_equal(np.asarray(can.op)[active], np.asarray(archs.op)[active])
    np.testing.assert_array_equal(np.asarray(can.act)[active], np.asarray(archs.act)[active])
    lgc = np.asarray(can.op) == space.ops.index("lightgcn")
    assert np.all(np.asarray(can.transform)[active & lgc] == 0)
    np.testing.assert_array_equal(
        np.asarray(can.transform)[active & ~lgc], np.asarray(archs.transform)[active & ~lgc]
    )
    for name in ("dim", "lr", "l2"):
        np.testing.assert_array_equal(getattr(can, name), getattr(archs, name))
    # Unbatched in, unbatched out.
    one = take(archs, 0)
    assert arrays_equal(space.canonical(one), take(can, 0))


def test_keys_equal_iff_active_genes_equal():
    space = wide_space()
    a = space.preset("gcn")  # 2 layers of 4
    b = a.replace(
        op=a.op.copy(), act=a.act.copy(), transform=a.transform.copy(), residual=a.residual.copy()
    )
    b.op[2:] = len(space.ops) - 1
    b.act[3] = 4
    b.residual[2:] = 1
    assert not arrays_equal(a, b)
    assert space.keys(stack([a, b]))[0] == space.keys(stack([a, b]))[1]
    c = a.replace(act=a.act.copy())
    c.act[1] = 0  # an active layer: a different model
    assert space.keys(a) != space.keys(c)
    # lightgcn ignores the transform gene.
    lgc = space.preset("lightgcn")
    lgc_w = lgc.replace(transform=np.ones_like(lgc.transform))
    assert space.keys(lgc) == space.keys(lgc_w)
    # Depth 0: the combination and the dropout (on layer inputs) have no effect.
    mf = space.preset("mf")
    mf_other = mf.replace(
        combine=np.int32(COMBINES.index("concat")),
        dropout=np.float32(space.dropouts[-1]),
        op=np.full_like(mf.op, 2),
    )
    assert space.keys(mf) == space.keys(mf_other)
    assert space.keys(mf) != space.keys(mf.replace(dim=np.int32(16)))


def test_json_round_trip_of_presets_and_samples():
    space, text_space = wide_space(), wide_space(text=True)
    for name in ID_PRESETS:
        a = space.preset(name)
        back = space.from_json(space.to_json(a))
        assert arrays_equal(back, a), name
        assert json.loads(space.to_json(a)) == space.to_dict(a)
    for name in TEXT_PRESETS:
        a = text_space.preset(name)
        assert arrays_equal(text_space.from_json(text_space.to_json(a)), a), name
    archs = space.sample(jax.random.key(2), 20)
    for p in range(archs.size):
        a = take(archs, p)
        back = space.from_json(space.to_json(a))
        # JSON leaves out inactive layers: the round trip keeps the model, not the dead genes.
        assert space.to_dict(back) == space.to_dict(a)
        assert space.keys(back) == space.keys(a)
        inactive = np.arange(space.max_layers) >= int(a.depth)
        assert np.all(np.asarray(back.op)[inactive] == 0)
    with pytest.raises(ValueError, match="one arch"):
        space.to_dict(archs)


def good_dict(space):
    return space.to_dict(space.preset("gcn"))


def test_from_dict_errors():
    space = wide_space()
    d = good_dict(space)
    with pytest.raises(ValueError, match="unknown key") as e:
        space.from_dict({**d, "learning_rate": 0.1}, where="cfg.arch")
    msg = str(e.value)
    assert "cfg.arch" in msg and "learning_rate" in msg
    for k in ("depth", "layers", "combine", "dim", "lr", "l2", "dropout", "features"):
        assert k in msg  # the valid keys are listed
    with pytest.raises(ValueError, match="missing"):
        space.from_dict({k: v for k, v in d.items() if k != "lr"})
    bad_op = {**d, "layers": [{**d["layers"][0], "op": "transformer"}, d["layers"][1]]}
    with pytest.raises(ValueError, match=r"layers\[0\]\.op='transformer'"):
        space.from_dict(bad_op)
    with pytest.raises(ValueError, match="depth=3 but 2 layers"):
        space.from_dict({**d, "depth": 3})
    with pytest.raises(ValueError, match="depth=9"):
        space.from_dict({**d, "depth": 9})
    # Numbers may lie off the grids (they bind only the search), within what the model holds.
    with pytest.raises(ValueError, match=r"dim=256 must be an integer in 1\.\.128"):
        space.from_dict({**d, "dim": 256})
    with pytest.raises(ValueError, match=r"lr=-0\.5 must be a finite number > 0"):
        space.from_dict({**d, "lr": -0.5})
    with pytest.raises(ValueError, match="combine"):
        space.from_dict({**d, "combine": "max"})
    with pytest.raises(ValueError, match=r"layers\[1\] unknown key"):
        space.from_dict({**d, "layers": [d["layers"][0], {**d["layers"][1], "bn": True}]})
    with pytest.raises(ValueError, match=r"layers\[1\]\.norm='bn' is not one of"):
        space.from_dict({**d, "layers": [d["layers"][0], {**d["layers"][1], "norm": "bn"}]})
    with pytest.raises(ValueError, match=r"loss='hinge' is not one of \['bpr', 'softmax', 'dns'\]"):
        space.from_dict({**d, "loss": "hinge"})
    with pytest.raises(ValueError, match=r"negatives=4 must be an integer in 1\.\.1 "):
        space.from_dict({**d, "negatives": 4})  # the space draws one negative per positive
    with pytest.raises(ValueError, match=r"temperature=0 must be a finite number > 0"):
        space.from_dict({**d, "temperature": 0})
    with pytest.raises(ValueError, match="side"):
        space.from_dict({**d, "features": "id+side"})
    # An arch file written before the objective genes existed reads as the published objective.
    old = {k: v for k, v in d.items() if k not in ("loss", "negatives", "temperature", "sampler", "ssl")}
    old["layers"] = [{k: v for k, v in layer.items() if k != "norm"} for layer in d["layers"]]
    assert arrays_equal(space.from_dict(old), space.from_dict(d))
    with pytest.raises(ValueError, match="text"):
        space.from_dict({**d, "features": "id+text"})
    with pytest.raises(ValueError, match="not valid JSON"):
        space.from_json("{depth: 1")


@pytest.mark.parametrize("name", ID_PRESETS)
def test_presets_have_published_hyperparameters(name):
    space = wide_space()
    a = space.preset(name)
    assert int(a.dim) == 64
    assert float(a.lr) == pytest.approx(1e-3)
    assert float(a.l2) == pytest.approx(1e-4)
    assert FEATURES[int(a.features)] == "id"
    d = space.to_dict(a)
    assert d["depth"] == len(d["layers"])
    if name != "mf":
        assert {layer["op"] for layer in d["layers"]} == {name}
    else:
        assert d["depth"] == 0


def test_lightgcn_and_mf_presets():
    space = wide_space()
    d = space.to_dict(space.preset("lightgcn"))
    assert d["depth"] == 3 and d["combine"] == "mean" and d["dropout"] == 0.0
    for layer in d["layers"]:
        assert layer == {
            "op": "lightgcn",
            "transform": "identity",
            "act": "identity",
            "residual": False,
            "norm": "none",
        }
    assert space.describe(space.preset("lightgcn")).startswith(
        "3L[lightgcn, lightgcn, lightgcn] mean d64"
    )
    assert space.describe(space.preset("mf")).startswith("MF d64")


def test_text_presets_need_text():
    space = wide_space()
    for name in TEXT_PRESETS:
        with pytest.raises(ValueError, match="text"):
            space.preset(name)
        a = Space(text=True).preset(name)
        assert FEATURES[int(a.features)] == PRESETS[name]["features"]
    with pytest.raises(ValueError, match="unknown preset"):
        space.preset("bert4rec")
    with pytest.raises(ValueError, match="not in space.ops"):
        Space(ops=("gcn",)).preset("lightgcn")
    with pytest.raises(ValueError, match="max_layers"):
        Space(max_layers=2).preset("lightgcn")


def test_describe_is_readable():
    space = wide_space()
    s = space.describe(space.preset("ngcf"))
    assert isinstance(s, str)
    assert (
        s
        == "3L[ngcf+W/leaky_relu+l2n, ngcf+W/leaky_relu+l2n, ngcf+W/leaky_relu+l2n] concat d64 "
        "drop0.1 lr1e-03 l2 1e-04 id"
    )
    objective = {**space.to_dict(space.preset("lightgcn")), "loss": "softmax", "sampler": "popularity",
                 "temperature": 0.2, "ssl": 0.1}  # fmt: skip
    wide = dataclasses.replace(space, negatives=(1, 16))
    assert wide.describe(wide.from_dict({**objective, "negatives": 16})).endswith(
        "id softmax k16 t0.2 pop ssl0.1"
    )
    archs = space.sample(jax.random.key(3), 5)
    lines = space.describe(archs)
    assert isinstance(lines, list) and len(lines) == 5
    for p, line in enumerate(lines):
        a = take(archs, p)
        assert line == space.describe(a)
        assert f"d{int(a.dim)}" in line
        for layer in space.to_dict(a)["layers"]:
            assert layer["op"] in line


def test_space_validation():
    with pytest.raises(ValueError, match="unknown op"):
        Space(ops=("gcn", "nope"))
    with pytest.raises(ValueError, match="at least one op"):
        Space(ops=())
    with pytest.raises(ValueError, match="dims"):
        Space(dims=())
    with pytest.raises(ValueError, match="dropouts"):
        Space(dropouts=(1.0,))
