"""Malformed input: every bad file gives one DataError line naming the file, line and problem."""

import re

import pytest

from jgnas.data import DataConfig, DataError, load

INTER_HEAD = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"

# name -> (files {relative path: bytes or str}, config overrides, expected message regex).
CASES = {
    "recbole_wrong_field_count": (
        {"d/d.inter": INTER_HEAD + "1\t2\t3\t4\n1\t3\t4\n"},
        {},
        r"d\.inter:3: expected 4 tab-separated fields, got 3$",
    ),
    "recbole_bad_typed_header": (
        {"d/d.inter": "user_id:token\titem_id\trating:float\n1\t2\t3\n"},
        {},
        r"d\.inter:1: bad header field 'item_id'; expected name:type",
    ),
    "recbole_unknown_type": (
        {"d/d.inter": "user_id:token\titem_id:tok\n1\t2\n"},
        {},
        r"d\.inter:1: bad header field 'item_id:tok'",
    ),
    "recbole_missing_item_column": (
        {"d/d.inter": "user_id:token\tmovie:token\n1\t2\n"},
        {},
        r"d\.inter:1: header has no item_id column \(has user_id, movie\)",
    ),
    "recbole_non_numeric_rating": (
        {"d/d.inter": INTER_HEAD + "1\t2\t3\t4\n1\t3\tfive\t5\n"},
        {},
        r"d\.inter:3: rating 'five' is not a finite number",
    ),
    "recbole_header_only": (
        {"d/d.inter": INTER_HEAD},
        {},
        r"d\.inter: no data rows after the header",
    ),
    "empty_file": ({"d/d.inter": "\n  \n"}, {}, r"d\.inter: file is empty"),
    "recbole_empty_id": (
        {"d/d.inter": INTER_HEAD + "1\t2\t3\t4\n \t3\t4\t5\n"},
        {},
        r"d\.inter:3: empty user id",
    ),
    "movielens_non_numeric_timestamp": (
        {"d/u.data": "1\t2\t3\t881250949\n1\t3\t4\t2001-01-01\n"},
        {},
        r"u\.data:2: timestamp '2001-01-01' is not a finite number",
    ),
    "movielens_bad_genre_flag": (
        {
            "d/u.data": "1\t2\t3\t4\n",
            "d/u.item": "2|T (1995)|01-Jan-1995||u|" + "|".join("0" * 18) + "|x\n",
        },
        {},
        r"u\.item:1: genre flag Western is 'x', expected 0 or 1",
    ),
    "ml1m_wrong_separator": (
        {"d/ratings.dat": "1::2::3::4\n1,2,3,4\n"},
        {},
        r"ratings\.dat:2: expected 4 ::-separated fields, got 1",
    ),
    "ml1m_bad_occupation": (
        {"d/ratings.dat": "1::2::3::4\n", "d/users.dat": "1::F::1::99::48067\n"},
        {},
        r"users\.dat:1: unknown occupation code 99",
    ),
    "lightgcn_non_integer": (
        {"d/train.txt": "0 1 2\n1 2 x3\n", "d/test.txt": "0 3\n"},
        {},
        r"train\.txt:2: 'x3' is not an integer id",
    ),
    "csv_missing_column": (
        {"d/r.csv": "user,item\n1,2\n"},
        {"rating_col": "rating", "user_col": "user", "item_col": "item"},
        r"r\.csv:1: no column 'rating' for data\.rating_col \(header has user, item\)",
    ),
    "csv_index_out_of_range": (
        {"d/r.csv": "1,2\n"},
        {"header": False, "user_col": 0, "item_col": 5},
        r"r\.csv: data\.item_col = 5 is out of range; the file has 2 columns",
    ),
    "csv_ragged_row": (
        {"d/r.csv": "user_id,item_id\n1,2\n\n3,4,5\n"},
        {},
        r"r\.csv:4: expected 2 comma-separated fields, got 3",
    ),
    "csv_bad_encoding": (
        {"d/r.csv": b"user_id,item_id\n1,2\n3,caf\xe9\n"},
        {},
        r"r\.csv:3: not valid utf-8 text \(byte 0xe9\); set the right encoding",
    ),
    "unknown_id_in_test_fail": (
        {
            "d/d.train.inter": INTER_HEAD + "1\t2\t3\t4\n2\t2\t3\t4\n",
            "d/d.test.inter": INTER_HEAD + "1\t2\t3\t4\n2\t9\t3\t4\n",
        },
        {"split": "presplit", "unknown": "fail"},
        r"d\.test\.inter:3: item '9' is not in the train file \(data\.unknown = fail",
    ),
    "threshold_without_ratings": (
        {"d/train.txt": "0 1 2\n", "d/test.txt": "0 3\n"},
        {"rating_threshold": 4.0},
        r"train\.txt: data\.rating_threshold is set but the file has no ratings",
    ),
    "duplicate_feature_ids": (
        {"d/u.data": "1\t2\t3\t4\n", "d/u.user": "1|24|M|x|1\n1|25|F|y|2\n"},
        {},
        r"u\.user:2: duplicate user id '1' \(first on line 1\)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed(tmp_path, case):
    files, overrides, pattern = CASES[case]
    for rel, content in files.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            f.write_text(content, encoding="latin-1")
        else:
            f.write_bytes(content)
    cfg = DataConfig(name="d", path=str(tmp_path / "d"), **overrides)
    with pytest.raises(DataError) as exc:
        load(cfg, cache_dir=tmp_path / "cache")
    msg = str(exc.value)
    assert "\n" not in msg
    assert re.search(pattern, msg), msg
    assert not list((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True


@pytest.mark.parametrize(
    "kw, pattern",
    [
        ({"split": "random"}, r"data\.split: 'random' is not allowed; use one of ratio, loo"),
        ({"ratios": (0.5, 0.1, 0.1)}, r"data\.ratios: .* summing to 1"),
        ({"unknown": "skip"}, r"data\.unknown: 'skip' is not allowed; use one of drop, fail"),
        ({"format": "parquet"}, r"data\.format: 'parquet'"),
        ({"cold_item_frac": 1.0}, r"data\.cold_item_frac: 1\.0 must be in \(0, 1\)"),
        ({"kcore": -1}, r"data\.kcore"),
        ({"name": "netflix"}, r"data\.name: unknown dataset 'netflix' without data\.path"),
        ({"header": False, "user_col": "user"}, r"data\.user_col: 'user' must be a 0-based"),
    ],
)
def test_config_validation(kw, pattern):
    with pytest.raises(DataError, match=pattern):
        DataConfig(**kw)


def test_config_from_dict_rejects_unknown_keys():
    # The `data:` section goes through the experiment config parser (one mechanism for all sections).
    from jgnas import config as config_lib

    with pytest.raises(
        ValueError, match=r"data: unknown key\(s\) \['splt'\]; valid keys: .*'name'.*'path'"
    ):
        config_lib.from_dict({"data": {"splt": "loo"}})
    assert config_lib.from_dict({"data": {"ratios": [0.6, 0.2, 0.2]}}).data.ratios == (
        0.6,
        0.2,
        0.2,
    )


def test_known_dataset_missing_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("JGNAS_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"run `jgnas data fetch ml-100k`"):
        load(DataConfig(name="ml-100k"))
    with pytest.raises(DataError, match=r"LightGCN repo .*data/gowalla/\) into .*gowalla"):
        load(DataConfig(name="gowalla"))
