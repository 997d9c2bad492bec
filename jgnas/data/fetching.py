"""Fetching datasets: ml-100k comes from the RecBole wheel on PyPI; the rest are placed by hand."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable

from jgnas.data.config import KNOWN_DATASETS, data_dir
from jgnas.data.types import DataError

RECBOLE_VERSION = "1.2.1"
_MEMBERS = tuple(
    f"recbole/dataset_example/ml-100k/ml-100k.{ext}" for ext in ("inter", "item", "user")
)


def _extract(wheel: pathlib.Path, dest: pathlib.Path, log: Callable[[str], None]) -> None:
    try:
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
            missing = [m for m in _MEMBERS if m not in names]
            if missing:
                raise DataError(f"{wheel}: wheel has no {missing[0]}")
            dest.mkdir(parents=True, exist_ok=True)
            for member in _MEMBERS:
                target = dest / pathlib.PurePosixPath(member).name
                fd, tmp = tempfile.mkstemp(dir=dest, prefix=".part-")
                try:  # atomic: no half-written file if interrupted
                    with os.fdopen(fd, "wb") as f, z.open(member) as src:
                        f.write(src.read())
                    os.replace(tmp, target)
                except BaseException:
                    pathlib.Path(tmp).unlink(missing_ok=True)
                    raise
                log(f"  {target}  {target.stat().st_size:,} bytes")
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{wheel}: cannot read wheel ({e})") from None


def fetch(
    name: str = "ml-100k",
    dest: str | os.PathLike | None = None,
    wheel: str | os.PathLike | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> pathlib.Path:
    """Fetches a dataset into `dest` (default `data_dir() / name`).

    ml-100k: the RecBole atomic files ml-100k.inter/.item/.user are extracted from the recbole
    wheel, downloaded with `pip download --no-deps` (recbole and torch are never installed), or
    from a local `wheel`. Other datasets cannot be fetched: the error says where to put them.

    Args:
      name: dataset name.
      dest: target folder.
      wheel: a local recbole wheel to extract from instead of downloading.
      force: fetch again even if the files are present.
      log: where progress lines go.

    Returns:
      The folder holding the files.
    """
    dest = pathlib.Path(dest) if dest is not None else data_dir() / name
    if name != "ml-100k":
        hint = KNOWN_DATASETS.get(name)
        if hint is None:
            raise DataError(f"fetch: unknown dataset {name!r}; known: {', '.join(KNOWN_DATASETS)}")
        raise DataError(
            f"fetch: {name} cannot be downloaded automatically; {hint.format(dir=dest)}"
        )
    targets = [dest / pathlib.PurePosixPath(m).name for m in _MEMBERS]
    if not force and all(t.exists() for t in targets):
        log(f"ml-100k already present in {dest}")
        return dest
    if wheel is not None:
        wheel = pathlib.Path(wheel)
        if not wheel.is_file():
            raise DataError(f"fetch: wheel {wheel} not found")
        log(f"Extracting ml-100k from {wheel} into {dest}")
        _extract(wheel, dest, log)
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"recbole=={RECBOLE_VERSION}", "-d", tmp, "-q"]  # fmt: skip
        log(f"Downloading recbole=={RECBOLE_VERSION} wheel from PyPI (pip download, not installed)")
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            res = None
            err = str(e)
        if res is None or res.returncode != 0:
            err = err if res is None else (res.stderr.strip().splitlines() or ["?"])[-1]
            raise DataError(
                f"fetch: pip download of recbole=={RECBOLE_VERSION} failed ({err}); without "
                f"network, place ml-100k.inter, ml-100k.item, ml-100k.user (RecBole atomic files) "
                f"or u.data, u.user, u.item into {dest}, or pass --wheel PATH to a recbole wheel"
            )
        found = sorted(pathlib.Path(tmp).glob("recbole-*.whl"))
        if not found:
            raise DataError(f"fetch: pip download left no recbole wheel in {tmp}")
        log(
            f"Extracting ml-100k from {found[0].name} ({found[0].stat().st_size:,} bytes) into {dest}"
        )
        _extract(found[0], dest, log)
    return dest
