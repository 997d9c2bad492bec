"""The format registry: every registered format is detected and loads, and a plugin outside the
package adds a format with one registration."""

import importlib
import sys

import numpy as np
import pytest

from jgnas import data
from jgnas.data import DataConfig, DataError, Format, readers, register_format

# format -> (fixture folder under tests/fixtures/data, a file in it, config overrides to load it).
CASES = {
    "recbole": ("presplit", "tiny.train.inter", {}),
    "movielens": ("ml100k_raw", "u.data", {}),
    "lightgcn": ("lightgcn", "train.txt", {}),
    "csv": (
        "csv",
        "ratings.csv",
        {
            "user_col": "userId",
            "item_col": "movieId",
            "rating_col": "rating",
            "timestamp_col": "ts",
        },
    ),
}


def _example(glob: str) -> str:
    """A file name the glob matches."""
    return glob.replace("*", "x").replace("?", "x")


def _arrays(ds):
    return [
        getattr(getattr(ds, p), f) for p in ("train", "valid", "test") for f in ("users", "items")
    ]


@pytest.mark.parametrize("name", list(readers.FORMATS))
def test_every_format_is_detected_and_round_trips(name, data_fixtures, tmp_path):
    if name not in CASES:
        pytest.fail(
            f"format {name!r} has no test case: add a tiny fixture folder under "
            "tests/fixtures/data/ and an entry to CASES in tests/test_data_registry.py"
        )
    fmt = readers.FORMATS[name]
    folder_name, file_name, overrides = CASES[name]
    folder = data_fixtures / folder_name
    assert readers.detect(folder) is fmt and readers.detect(folder / file_name) is fmt
    # Each glob alone selects this format: no format registered earlier shadows it.
    for k, glob in enumerate(fmt.folder_globs):
        alone = tmp_path / f"folder{k}"
        alone.mkdir()
        (alone / _example(glob)).touch()
        assert readers.detect(alone) is fmt, glob
    for glob in fmt.file_globs:
        (tmp_path / _example(glob)).touch()
        assert readers.detect(tmp_path / _example(glob)) is fmt, glob
    assert DataConfig(format=name).format == name
    kw = dict(name="t", path=str(folder), split="loo", **overrides)
    auto = data.load(DataConfig(**kw), cache=False)
    named = data.load(DataConfig(format=name, **kw), cache=False)
    assert auto.stats["format"] == named.stats["format"] == name
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(auto), _arrays(named), strict=True))


def test_builtins_come_first_in_the_old_detection_order():
    assert list(readers.FORMATS)[:4] == ["recbole", "movielens", "lightgcn", "csv"]
    assert data.format_names()[:5] == ("auto", "recbole", "movielens", "lightgcn", "csv")


@pytest.mark.parametrize(
    "files, expected",
    [
        (["a.inter", "u.data", "train.txt", "r.csv"], "recbole"),
        (["u.data", "train.txt", "r.csv"], "movielens"),
        (["ratings.dat", "r.tsv"], "movielens"),
        (["train.txt", "test.txt", "r.csv"], "lightgcn"),
        (["r.tsv"], "csv"),
    ],
)
def test_folder_detection_order(tmp_path, files, expected):
    for f in files:
        (tmp_path / f).touch()
    assert readers.detect(tmp_path).name == expected


@pytest.mark.parametrize(
    "file, expected",
    [("u1.base", "movielens"), ("u.data", "movielens"), ("a.b.inter", "recbole"),
     ("test.txt", "lightgcn"), ("r.tsv", "csv")],
)  # fmt: skip
def test_file_detection(tmp_path, file, expected):
    (tmp_path / file).touch()
    assert readers.detect(tmp_path / file).name == expected


def test_undetectable_names_the_clues(tmp_path):
    (tmp_path / "notes.md").touch()
    with pytest.raises(DataError, match=r"no \*\.inter, u\.data, ratings\.dat, train\.txt, \*\.csv or \*\.tsv\); set data\.format$"):  # fmt: skip
        readers.detect(tmp_path)
    with pytest.raises(DataError, match=r"notes\.md: cannot detect the format from the file name"):
        readers.detect(tmp_path / "notes.md")


def test_unknown_format_lists_the_registered_ones_in_one_line():
    with pytest.raises(DataError) as exc:
        DataConfig(format="parquet")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.endswith("use one of auto, recbole, movielens, lightgcn, csv")


def test_duplicate_name_is_refused():
    before = dict(readers.FORMATS)
    with pytest.raises(ValueError, match=r"format 'csv' is already registered"):
        register_format(readers.FORMATS["csv"])
    with pytest.raises(ValueError, match=r"register_format takes a Format"):
        register_format("csv")
    assert readers.FORMATS == before


_BASE = dict(
    name="psv", read=lambda path, cfg: None, folder_globs=("*.psv",), file_globs=("*.psv",),
    loose=("*.psv",),
)  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "auto"}, r"name must be an identifier other than 'auto'"),
        ({"name": "my format"}, r"name must be an identifier"),
        ({"read": None}, r"add read=fn\(path, cfg\) -> RawInteractions"),
        ({"folder_globs": ()}, r"add folder_globs, the file names that mark a folder"),
        ({"file_globs": ()}, r"add file_globs"),
        ({"loose": ()}, r"add whole, split or loose"),
        ({"split": ("train.psv",)}, r"split name 'train.psv' needs \{part\}"),
        ({"whole": ("{part}.psv",)}, r"whole name '\{part\}.psv' uses \{part\}"),
        ({"user_file": ("u.psv",)}, r"add read_users=fn\(path\) -> Features"),
        ({"item_file": ("{stem}.items",)}, r"add read_items="),
    ],
)
def test_incomplete_format_says_what_to_add(change, message):
    with pytest.raises(ValueError, match=rf"^format '[^']*': {message}"):
        Format(**{**_BASE, **change})


def test_unregistered_format_at_load_time_is_a_data_error():
    with pytest.raises(DataError, match=r"data\.format: 'psv' is not registered; use one of"):
        readers.get_format("psv")


# ----------------------------------------------------------------------------- a plugin

PLUGIN = '''
"""Pipe-separated `user|item|rating` files (*.psv): a format registered outside jgnas."""

import numpy as np

from jgnas.data import Format, RawInteractions, register_format


def read_psv(path, cfg):
    rows = [(n, s.split("|")) for n, s in enumerate(path.read_text().split("\\n"), 1) if s.strip()]
    return RawInteractions(
        users=np.array([r[0] for _, r in rows]),
        items=np.array([r[1] for _, r in rows]),
        ratings=np.array([float(r[2]) for _, r in rows]),
        timestamps=None,
        lines=np.array([n for n, _ in rows], np.int64),
        path=str(path),
    )


PSV = register_format(
    Format("psv", read=read_psv, folder_globs=("*.psv",), file_globs=("*.psv",), loose=("*.psv",))
)
'''
ROWS = [("alice", "apple", 5.0), ("alice", "pear", 3.0), ("bob", "apple", 4.0), ("bob", "fig", 2.0),
        ("carol", "pear", 1.0), ("carol", "fig", 4.0), ("alice", "fig", 2.0), ("dan", "kiwi", 5.0)]  # fmt: skip


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """Name of a plugin module written to a folder on sys.path; the registry is restored after."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "psv_format_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    before = dict(readers.FORMATS)
    yield "psv_format_plugin"
    sys.modules.pop("psv_format_plugin", None)
    readers.FORMATS.clear()
    readers.FORMATS.update(before)


@pytest.fixture()
def shop(tmp_path):
    """A folder holding one .psv file."""
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "orders.psv").write_text("".join(f"{u}|{i}|{r:g}\n" for u, i, r in ROWS))
    return folder


def _triples(ds):
    out = set()
    for p in ("train", "valid", "test"):
        x = getattr(ds, p)
        for u, i, r in zip(x.users, x.items, x.ratings, strict=True):
            out.add((str(ds.user_ids[u]), str(ds.item_ids[i]), float(r)))
    return out


def test_plugin_format_loads_detects_and_refuses_a_second_registration(plugin, shop, tmp_path):
    with pytest.raises(DataError, match=r"data\.format: 'psv' is not allowed"):
        DataConfig(name="shop", path=str(shop), format="psv")
    module = importlib.import_module(plugin)
    assert list(readers.FORMATS)[-1] == "psv" and data.format_names()[-1] == "psv"

    cache = tmp_path / "cache"
    named = data.load(DataConfig(name="shop", path=str(shop), format="psv", split="loo"), cache)
    assert named.stats["format"] == "psv" and named.stats["files"] == ["orders.psv"]
    assert (named.n_users, named.n_items) == (4, 4)
    assert list(named.user_ids) == ["alice", "bob", "carol", "dan"]
    assert list(named.item_ids) == ["apple", "fig", "kiwi", "pear"]
    # dan's only row is his train row; every row of the file is in exactly one part.
    assert _triples(named) == set(ROWS) and named.stats["eval_dropped_no_train_user"] == 0
    for path in (shop, shop / "orders.psv"):  # auto-detection, folder and single file
        auto = data.load(DataConfig(name="shop", path=str(path), split="loo"), cache)
        assert auto.stats["format"] == "psv"
        assert all(np.array_equal(a, b) for a, b in zip(_arrays(auto), _arrays(named), strict=True))

    info = data.info(DataConfig(name="shop", path=str(shop)), cache, cache=False)
    assert (info["users"], info["items"], info["interactions"]) == (4, 4, len(ROWS))
    assert info["stats"]["format"] == "psv" and info["stats"]["raw_interactions"] == len(ROWS)

    # Built-ins are tried first; the plugin's clue joins the detection error.
    (shop / "extra.csv").touch()
    assert readers.detect(shop).name == "csv" and readers.detect(shop / "orders.psv") is module.PSV
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").touch()
    with pytest.raises(DataError, match=r"\*\.csv, \*\.tsv or \*\.psv\); set data\.format"):
        readers.detect(tmp_path / "empty")

    with pytest.raises(ValueError, match=r"format 'psv' is already registered"):
        importlib.reload(module)
    with pytest.raises(ValueError, match=r"format 'psv' is already registered"):
        register_format(module.PSV)
