"""The format registry: every interaction-file format the loader reads is one `Format` entry here.

A `Format` says how to recognise its files (name globs), which files hold the whole, the pre-split
and the side-feature data, and which parsers read them. `jgnas.data.sources` and
`jgnas.data.pipeline` ask this registry and know no format by name. The built-in entries are at the
end of this module; a plugin adds one with `register_format(Format(...))` in its own module,
imported before the config is built. Detection tries formats in registration order, so built-ins
come first.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import pathlib
import string
from collections.abc import Callable
from typing import TYPE_CHECKING

from jgnas.data import movielens, parsing, recbole
from jgnas.data.parsing import Features, RawInteractions
from jgnas.data.types import DataError

if TYPE_CHECKING:
    from jgnas.data.config import DataConfig

ReadFn = Callable[[pathlib.Path, "DataConfig"], RawInteractions]
FeaturesFn = Callable[[pathlib.Path], Features]
# Placeholders a file-name template may use.
_FIELDS = {
    "whole": {"stem"},
    "split": {"stem", "part"},
    "user_file": {"stem"},
    "item_file": {"stem"},
}


@dataclasses.dataclass(frozen=True)
class Format:
    """One file format: how to find its files and how to parse them.

    File names are templates: "{stem}" stands for the dataset's stem (the folder's name, or the
    part before the first dot of the file given as `data.path`) and, in `split`, "{part}" for
    train, valid and test. Where a list gives several names, the first one present is used.

    Attributes:
      name: the value of `data.format`.
      read: `read(path, cfg) -> RawInteractions` parses one interaction file (`cfg` is the
        `DataConfig`, for formats with options such as the csv column mapping).
      folder_globs: a folder is in this format when a file matching one of these exists in it.
        When the names use "{stem}" and no whole file has the folder's name, the stem comes from
        the files matching these (a RecBole folder copied under another name).
      file_globs: a single file is in this format when its name matches one of these.
      whole: names of the file holding every interaction.
      split: names of pre-split files; pooled when there is no whole file and the split is not
        presplit.
      loose: when neither a whole nor a split file is present, the one file matching these globs
        holds every interaction (several is an error).
      user_file, item_file: names of the side-feature files.
      read_users, read_items: `fn(path) -> Features` parse them; needed when the names are given.
    """

    name: str
    read: ReadFn
    folder_globs: tuple[str, ...]
    file_globs: tuple[str, ...]
    whole: tuple[str, ...] = ()
    split: tuple[str, ...] = ()
    loose: tuple[str, ...] = ()
    user_file: tuple[str, ...] = ()
    item_file: tuple[str, ...] = ()
    read_users: FeaturesFn | None = None
    read_items: FeaturesFn | None = None

    def __post_init__(self):
        for key in ("folder_globs", "file_globs", *_FIELDS, "loose"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        _check(self)

    @property
    def uses_stem(self) -> bool:
        """Whether any file name depends on the dataset's stem."""
        names = (*self.whole, *self.split, *self.user_file, *self.item_file)
        return any("{stem}" in n for n in names)


def _placeholders(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


def _check(fmt: Format) -> None:
    """Refuses an incomplete format, saying what to add."""

    def fail(what: str) -> None:
        raise ValueError(f"format {fmt.name!r}: {what}")

    if not isinstance(fmt.name, str) or not fmt.name.isidentifier() or fmt.name == "auto":
        fail("name must be an identifier other than 'auto' (it is the value of data.format)")
    if not callable(fmt.read):
        fail("add read=fn(path, cfg) -> RawInteractions, the parser of one interaction file")
    if not fmt.folder_globs:
        fail("add folder_globs, the file names that mark a folder in this format (e.g. '*.psv')")
    if not fmt.file_globs:
        fail("add file_globs, the names of a single file in this format (e.g. '*.psv')")
    if not (fmt.whole or fmt.split or fmt.loose):
        fail("add whole, split or loose: the names of the files that hold the interactions")
    for key, allowed in _FIELDS.items():
        for template in getattr(fmt, key):
            extra = _placeholders(template) - allowed
            if extra:
                fail(f"{key} name {template!r} uses {{{extra.pop()}}}; only {sorted(allowed)}")
            if key == "split" and "part" not in _placeholders(template):
                fail(f"split name {template!r} needs {{part}}, e.g. '{{part}}.psv'")
    for files, reader in (("user_file", "read_users"), ("item_file", "read_items")):
        if getattr(fmt, files) and not callable(getattr(fmt, reader)):
            fail(f"add {reader}=fn(path) -> Features to read the {files} it names")


# The registry, in detection order. Filled below and by `register_format`; nothing else writes it.
FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Adds a format to the registry; it is detected after those registered before it.

    Args:
      fmt: the format; its name must be new.

    Returns:
      `fmt`, so a module can keep it under a name.
    """
    if not isinstance(fmt, Format):
        raise ValueError(f"register_format takes a Format, got {type(fmt).__name__}")
    if fmt.name in FORMATS:
        raise ValueError(f"format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> tuple[str, ...]:
    """The values `data.format` accepts: "auto", then every registered format in detection order."""
    return ("auto", *FORMATS)


def get_format(name: str) -> Format:
    """The registered format called `name`; a `DataError` naming the valid ones otherwise."""
    if name not in FORMATS:
        raise DataError(f"data.format: {name!r} is not registered; use one of {', '.join(FORMATS)}")
    return FORMATS[name]


def _or(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def detect(path: pathlib.Path) -> Format:
    """The first registered format whose globs match `path` (a folder's files, or a file's name).

    Args:
      path: an existing folder or file.

    Returns:
      The format.
    """
    if path.is_file():
        for fmt in FORMATS.values():
            if any(fnmatch.fnmatchcase(path.name, g) for g in fmt.file_globs):
                return fmt
        raise DataError(f"{path}: cannot detect the format from the file name; set data.format")
    for fmt in FORMATS.values():
        if any(any(path.glob(g)) for g in fmt.folder_globs):
            return fmt
    clues = [g for fmt in FORMATS.values() for g in fmt.folder_globs]
    raise DataError(f"{path}: cannot detect the format (no {_or(clues)}); set data.format")


# ----------------------------------------------------------------------------- built-in formats


def _read_csv(path: pathlib.Path, cfg: DataConfig) -> RawInteractions:
    return parsing.read_csv(
        path, cfg.user_col, cfg.item_col, cfg.rating_col, cfg.timestamp_col,
        sep=cfg.sep, header=cfg.header, encoding=cfg.encoding,
    )  # fmt: skip


register_format(
    Format(
        "recbole",
        read=lambda path, cfg: recbole.read_recbole_inter(path, cfg.encoding),
        folder_globs=("*.inter",),
        file_globs=("*.inter",),
        whole=("{stem}.inter",),
        split=("{stem}.{part}.inter",),
        user_file=("{stem}.user",),
        item_file=("{stem}.item",),
        read_users=lambda path: recbole.read_recbole_features(path, "user_id"),
        read_items=lambda path: recbole.read_recbole_features(path, "item_id"),
    )
)
register_format(
    Format(
        "movielens",
        read=lambda path, cfg: movielens.read_movielens_ratings(path),
        folder_globs=("u.data", "ratings.dat"),
        file_globs=("u.data", "ratings.dat", "*.base", "*.dat"),
        whole=("u.data", "ratings.dat"),
        user_file=("u.user", "users.dat"),
        item_file=("u.item", "movies.dat"),
        read_users=movielens.read_movielens_users,
        read_items=movielens.read_movielens_items,
    )
)
register_format(
    Format(
        "lightgcn",
        read=lambda path, cfg: parsing.read_lightgcn(path),
        folder_globs=("train.txt",),
        file_globs=("*.txt",),
        split=("{part}.txt",),
    )
)
register_format(
    Format(
        "csv",
        read=_read_csv,
        folder_globs=("*.csv", "*.tsv"),
        file_globs=("*.csv", "*.tsv"),
        split=("{part}.csv", "{part}.tsv"),
        loose=("*.csv", "*.tsv"),
    )
)
