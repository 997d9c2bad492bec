"""`resolve(cfg)`: the files a data config refers to, found through the format registry."""

from __future__ import annotations

import dataclasses
import pathlib

from jgnas.data import readers
from jgnas.data.config import KNOWN_DATASETS, DataConfig, data_dir
from jgnas.data.types import DataError

PARTS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class Sources:
    """The files a config resolves to. parts: part -> interaction files ("all" unless presplit)."""

    format: str
    parts: dict[str, list[pathlib.Path]]
    user_file: pathlib.Path | None = None
    item_file: pathlib.Path | None = None

    def files(self) -> list[pathlib.Path]:
        fs = [f for p in self.parts.values() for f in p]
        return fs + [f for f in (self.user_file, self.item_file) if f is not None]


def _first(folder: pathlib.Path, names, stem: str, part: str = "") -> pathlib.Path | None:
    """The first of the name templates `names` present in `folder`."""
    for n in names:
        f = folder / n.format(stem=stem, part=part)
        if f.exists():
            return f
    return None


def _data_path(cfg: DataConfig) -> pathlib.Path:
    """`data.path`, or the known dataset's folder; a hint on how to get it when it is missing."""
    path = pathlib.Path(cfg.path).expanduser() if cfg.path else data_dir() / cfg.name
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        if cfg.name in KNOWN_DATASETS and cfg.path is None:
            hint = KNOWN_DATASETS[cfg.name].format(dir=path)
            raise DataError(f"dataset {cfg.name} not found in {path}: {hint}")
        raise DataError(f"data.path: {path} does not exist or is empty")
    return path


def _folder_stem(fmt: readers.Format, folder: pathlib.Path) -> str:
    """The stem of a folder's files: its name, unless the format names files by stem and none
    has it; then the one stem of the files matching `folder_globs` (e.g. a renamed copy)."""
    stem = folder.name
    if not fmt.uses_stem or _first(folder, fmt.whole, stem):
        return stem
    stems = sorted({f.name.split(".")[0] for g in fmt.folder_globs for f in folder.glob(g)})
    if len(stems) > 1:
        kinds = "/".join(g.lstrip("*") for g in fmt.folder_globs)
        raise DataError(f"{folder}: {kinds} files with several names ({', '.join(stems)}); "
                        "set data.path to one file")  # fmt: skip
    return stems[0] if stems else stem


def _split_files(cfg, fmt, folder, stem, single) -> dict[str, pathlib.Path | None]:
    """part -> pre-split file (None where absent): data.presplit_files or the format's names."""
    if cfg.presplit_files:
        files = [folder / f for f in cfg.presplit_files]
        for f in files:
            if not f.is_file():
                raise DataError(f"data.presplit_files: {f} not found")
        named = dict(zip(("train", "test") if len(files) == 2 else PARTS, files, strict=True))
        return {p: named.get(p) for p in PARTS}
    if single:
        return {"train": None}
    return {p: _first(folder, fmt.split, stem, p) for p in PARTS}


def _pooled(fmt, folder, stem, split_files) -> list[pathlib.Path]:
    """The files pooled for a fresh split: the whole file, else the split files, else the one
    loose file."""
    whole = _first(folder, fmt.whole, stem)
    if whole:
        return [whole]
    pooled = [f for f in split_files.values() if f is not None]
    if not pooled and fmt.loose:
        pooled = sorted({f for g in fmt.loose for f in folder.glob(g)})
        if len(pooled) > 1:
            kinds = "/".join(g.rsplit(".", 1)[-1] for g in fmt.loose)
            raise DataError(f"{folder}: several {kinds} files; set data.path to one of them")
    if not pooled:
        raise DataError(f"{folder}: no {fmt.name} interaction file found")
    return pooled


def _presplit_hint(folder: pathlib.Path, stem: str) -> str:
    examples = [
        f"{fmt.split[0].format(stem=stem, part='train')}/"
        f"{fmt.split[0].format(stem=stem, part='test')}"
        for fmt in readers.FORMATS.values()
        if fmt.split
    ]
    return (
        f"data.split: presplit needs train and test files in {folder} (e.g. "
        f"{', '.join(examples)}) or data.presplit_files"
    )


def resolve(cfg: DataConfig) -> Sources:
    """Finds the files `cfg` refers to, without parsing them.

    Args:
      cfg: the data config (not "synthetic").

    Returns:
      The detected format and the interaction / feature files.
    """
    path = _data_path(cfg)
    single = path if path.is_file() else None
    folder = path.parent if single else path
    fmt = readers.detect(path) if cfg.format == "auto" else readers.get_format(cfg.format)
    stem = single.name.split(".")[0] if single else _folder_stem(fmt, folder)
    user_file = _first(folder, fmt.user_file, stem)
    item_file = _first(folder, fmt.item_file, stem)
    split_files = _split_files(cfg, fmt, folder, stem, single)
    if cfg.split == "presplit":
        if split_files.get("train") is None or split_files.get("test") is None:
            raise DataError(_presplit_hint(folder, stem))
        parts = {p: [f] for p, f in split_files.items() if f}
    elif single:
        parts = {"all": [single]}
    else:  # pool whatever files hold the interactions and split afresh
        parts = {"all": _pooled(fmt, folder, stem, split_files)}
    return Sources(fmt.name, parts, user_file, item_file)
