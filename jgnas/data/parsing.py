"""Text parsing for interaction files: shared primitives and the generic LightGCN and CSV parsers.

Every parser returns raw (string) ids with the line each row came from, so that later checks
(unknown ids in valid/test) can still name the file and line. Bad input raises a one-line
`DataError` of the form `path:line: what is wrong`. The helpers here are what a new reader builds
on (see `jgnas.data.readers` for how a reader is registered).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib

import numpy as np

from jgnas.data.types import DataError


@dataclasses.dataclass(frozen=True)
class RawInteractions:
    """Interactions of one file with raw string ids.

    users, items: str [n] (int64 [n] for integer-only formats: LightGCN, synthetic);
    ratings, timestamps: float64 [n] or None when the file has none;
    lines: int64 [n], 1-based line of each row in `path`.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    timestamps: np.ndarray | None
    lines: np.ndarray
    path: str

    def __len__(self) -> int:
        return int(self.users.shape[0])


# Side features: column name -> str array; column "id" holds the raw id of each row.
Features = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- text primitives


def read_text(path: pathlib.Path | str, encoding: str = "utf-8") -> str:
    """Reads a whole text file, with one-line errors for missing, unreadable or empty files.

    Args:
      path: the file.
      encoding: its text encoding.

    Returns:
      The decoded text, without a leading byte-order mark (U+FEFF, as Excel writes UTF-8 CSV).
    """
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not data.strip():
        raise DataError(f"{path}: file is empty")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}:{line}: not valid {encoding} text (byte 0x{data[e.start]:02x}); "
            "set the right encoding"
        ) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r}") from None
    return text[1:] if text.startswith("\ufeff") else text


def split_lines(text: str) -> tuple[list[str], list[int]]:
    """Non-blank lines and their 1-based numbers.

    Splits on "\\n" only: str.splitlines would also break on U+0085, which is a plain byte 0x85
    in latin-1 MovieLens files.
    """
    raw = text.split("\n")
    keep = [i for i, s in enumerate(raw) if s and not s.isspace()]
    return [raw[i].rstrip("\r") for i in keep], [i + 1 for i in keep]


def split_rows(lines: list[str], sep: str | None) -> list[list[str]]:
    return [s.split(sep) for s in lines]


def check_width(rows, line_nos, width: int, path, sep_name: str) -> None:
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    bad = np.flatnonzero(lens != width)
    if bad.size:
        j = int(bad[0])
        raise DataError(
            f"{path}:{line_nos[j]}: expected {width} {sep_name}-separated fields, got {lens[j]}"
        )


def column(rows, j: int) -> np.ndarray:
    return np.array([r[j] for r in rows])


def numeric(values: np.ndarray, line_nos, path, what: str, integer: bool = False) -> np.ndarray:
    """Parses a str column to float64 (or int64), naming the first bad line on failure."""
    try:
        out = values.astype(np.int64 if integer else np.float64)
        if not integer and not np.all(np.isfinite(out)):
            raise ValueError
        return out
    except (ValueError, OverflowError):
        pass
    for j, v in enumerate(values.tolist()):
        try:
            x = int(v) if integer else float(v)
            if not integer and not np.isfinite(x):
                raise ValueError
        except (ValueError, OverflowError):
            kind = "an integer" if integer else "a finite number"
            raise DataError(f"{path}:{line_nos[j]}: {what} {v!r} is not {kind}") from None
    raise AssertionError("unreachable")


def strip_ids(values: np.ndarray, line_nos, path, what: str) -> np.ndarray:
    values = np.char.strip(values)
    empty = np.flatnonzero(values == "")
    if empty.size:
        raise DataError(f"{path}:{line_nos[int(empty[0])]}: empty {what}")
    return values


def unique_ids(ids: np.ndarray, line_nos, path, what: str) -> np.ndarray:
    """Feature files need one row per id: name the first repeated one."""
    _, first = np.unique(ids, return_index=True)
    if first.shape[0] != ids.shape[0]:
        dup = int(np.setdiff1d(np.arange(ids.shape[0]), first)[0])
        prev = line_nos[int(np.flatnonzero(ids == ids[dup])[0])]
        raise DataError(
            f"{path}:{line_nos[dup]}: duplicate {what} {str(ids[dup])!r} (first on line {prev})"
        )
    return ids


def make_raw(path, rows, line_nos, cols: dict[str, int | None], sep_name: str) -> RawInteractions:
    users = strip_ids(column(rows, cols["user"]), line_nos, path, "user id")
    items = strip_ids(column(rows, cols["item"]), line_nos, path, "item id")
    ratings = timestamps = None
    if cols.get("rating") is not None:
        ratings = numeric(column(rows, cols["rating"]), line_nos, path, "rating")
    if cols.get("timestamp") is not None:
        timestamps = numeric(column(rows, cols["timestamp"]), line_nos, path, "timestamp")
    return RawInteractions(
        users, items, ratings, timestamps, np.asarray(line_nos, np.int64), str(path)
    )


# ----------------------------------------------------------------------------- LightGCN


def read_lightgcn(path) -> RawInteractions:
    """Reads a LightGCN/NGCF file: each line `user item item ...` (integers, space separated).

    A line with a user and no items is allowed (it adds no interactions).

    Args:
      path: train.txt / test.txt.

    Returns:
      Interactions without ratings or timestamps.
    """
    lines, line_nos = split_lines(read_text(path))
    rows = split_rows(lines, None)
    counts = np.fromiter((len(r) - 1 for r in rows), np.int64, len(rows))
    flat = np.array([t for r in rows for t in r])
    row_of = np.repeat(np.arange(len(rows)), counts + 1)
    try:
        flat.astype(np.int64)
    except (ValueError, OverflowError):
        for j, t in enumerate(flat.tolist()):
            try:
                int(t)
            except ValueError:
                raise DataError(
                    f"{path}:{line_nos[row_of[j]]}: {t!r} is not an integer id"
                ) from None
    is_user = np.zeros(flat.shape[0], bool)
    starts = np.concatenate([[0], np.cumsum(counts + 1)[:-1]])
    is_user[starts] = True
    # Integer ids (so "007" and "7" are one id, and the vocabulary sorts fast).
    flat = flat.astype(np.int64)
    users = np.repeat(flat[starts], counts)
    items = flat[~is_user]
    lines_arr = np.repeat(np.asarray(line_nos, np.int64), counts)
    return RawInteractions(users, items, None, None, lines_arr, str(path))


# ----------------------------------------------------------------------------- CSV


def read_csv(
    path,
    user_col: str | int,
    item_col: str | int,
    rating_col: str | int | None = None,
    timestamp_col: str | int | None = None,
    sep: str | None = None,
    header: bool = True,
    encoding: str = "utf-8",
) -> RawInteractions:
    """Reads a CSV/TSV file with a column mapping.

    Args:
      path: the file.
      user_col, item_col, rating_col, timestamp_col: header names or 0-based indices (None: the
        column is absent).
      sep: field separator; None means tab for .tsv files, "," otherwise. One-character
        separators honour csv quoting; longer ones (e.g. "::") split plainly.
      header: whether the first non-blank line is a header.
      encoding: text encoding.

    Returns:
      The file's interactions.
    """
    if sep is None:
        sep = "\t" if str(path).endswith(".tsv") else ","
    lines, line_nos = split_lines(read_text(path, encoding))
    if len(sep) == 1:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep, strict=True))
        except csv.Error as e:
            raise DataError(f"{path}: csv error ({e})") from None
        if len(rows) != len(lines):  # a quoted field spans lines; line numbers are approximate
            line_nos = list(range(1, len(rows) + 1))
    else:
        rows = split_rows(lines, sep)
    sep_name = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}.get(sep, repr(sep))
    names = None
    if header:
        names = [c.strip() for c in rows[0]]
        rows, head_line, line_nos = rows[1:], line_nos[0], line_nos[1:]
        if not rows:
            raise DataError(f"{path}: no data rows after the header")
    width = len(names) if names is not None else len(rows[0])
    check_width(rows, line_nos, width, path, sep_name)
    cols = {}
    for key, c in (
        ("user", user_col),
        ("item", item_col),
        ("rating", rating_col),
        ("timestamp", timestamp_col),
    ):
        if c is None:
            cols[key] = None
        elif isinstance(c, int) and not isinstance(c, bool):
            if not 0 <= c < width:
                raise DataError(
                    f"{path}: data.{key}_col = {c} is out of range; the file has {width} columns"
                )
            cols[key] = c
        elif names is None:
            raise DataError(f"{path}: data.{key}_col = {c!r} needs a header; give an index")
        elif c not in names:
            raise DataError(
                f"{path}:{head_line}: no column {c!r} for data.{key}_col "
                f"(header has {', '.join(names)})"
            )
        else:
            cols[key] = names.index(c)
    return make_raw(path, rows, line_nos, cols, sep_name)
