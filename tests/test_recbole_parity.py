"""scripts/recbole_parity.py without training or RecBole: its rows are the real presets at
RecBole's hyperparameters, the export round-trips, and the report computes the gaps."""

import pathlib
import runpy

import pytest

from jgnas.data import DataConfig

SCRIPT = pathlib.Path(__file__).parent.parent / "scripts" / "recbole_parity.py"


@pytest.fixture(scope="module")
def rp() -> dict:
    """The script's globals (imported, not run as __main__)."""
    return runpy.run_path(str(SCRIPT))


def test_no_scratch_model(rp):
    # The fixes the scratch variants tested are in jgnas: the script no longer patches the model.
    assert not (SCRIPT.parent / "recbole_scratch.py").exists()
    assert "from recbole_scratch" not in SCRIPT.read_text()
    assert "patched" not in rp and "Variant" not in rp


def test_parity_rows_are_the_presets_at_recbole_hyperparameters(rp):
    cat, space, rb = rp["rows_catalogue"](), rp["SPACE"], rp["RECBOLE_TRAIN"]
    assert (rb.epochs, rb.batch_size, rb.eval_every, rb.patience) == (300, 2048, 1, 11)
    for label, (model, arch_d, _) in cat.items():
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
    for _, arch_d, _ in (mf, lgcn, ngcf):  # the published objective
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
