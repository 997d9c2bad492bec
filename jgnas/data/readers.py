"""Parsers for interaction files: RecBole atomic files, raw MovieLens, LightGCN txt, CSV/TSV.

Every parser returns raw (string) ids with the line each row came from, so that later checks
(unknown ids in valid/test) can still name the file and line. Bad input raises a one-line
`DataError` of the form `path:line: what is wrong`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
import re

import numpy as np

from jgnas.data.types import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# users.dat of ml-1m stores occupations as codes; names from the ml-1m README.
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
# RecBole column name -> canonical feature name.
_CANONICAL = {
    "movie_title": "title", "title": "title", "release_year": "year", "year": "year",
    "class": "genres", "genre": "genres", "genres": "genres",
}  # fmt: skip
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


@dataclasses.dataclass(frozen=True)
class RawInteractions:
    """Interactions of one file with raw string ids.

    users, items: str [n] (int64 [n] for integer-only formats: LightGCN, synthetic); ratings, timestamps: float64 [n] or None when the file has none;
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
      The decoded text.
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
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}:{line}: not valid {encoding} text (byte 0x{data[e.start]:02x}); "
            "set the right encoding"
        ) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r}") from None


def _split_lines(text: str) -> tuple[list[str], list[int]]:
    """Non-blank lines and their 1-based numbers.

    Splits on "\\n" only: str.splitlines would also break on U+0085, which is a plain byte 0x85
    in latin-1 MovieLens files.
    """
    raw = text.split("\n")
    keep = [i for i, s in enumerate(raw) if s and not s.isspace()]
    return [raw[i].rstrip("\r") for i in keep], [i + 1 for i in keep]


def _split_rows(lines: list[str], sep: str | None) -> list[list[str]]:
    return [s.split(sep) for s in lines]


def _check_width(rows, line_nos, width: int, path, sep_name: str) -> None:
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    bad = np.flatnonzero(lens != width)
    if bad.size:
        j = int(bad[0])
        raise DataError(
            f"{path}:{line_nos[j]}: expected {width} {sep_name}-separated fields, got {lens[j]}"
        )


def _column(rows, j: int) -> np.ndarray:
    return np.array([r[j] for r in rows])


def _numeric(values: np.ndarray, line_nos, path, what: str, integer: bool = False) -> np.ndarray:
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


def _strip_ids(values: np.ndarray, line_nos, path, what: str) -> np.ndarray:
    values = np.char.strip(values)
    empty = np.flatnonzero(values == "")
    if empty.size:
        raise DataError(f"{path}:{line_nos[int(empty[0])]}: empty {what}")
    return values


def _unique_ids(ids: np.ndarray, line_nos, path, what: str) -> np.ndarray:
    """Feature files need one row per id: name the first repeated one."""
    _, first = np.unique(ids, return_index=True)
    if first.shape[0] != ids.shape[0]:
        dup = int(np.setdiff1d(np.arange(ids.shape[0]), first)[0])
        prev = line_nos[int(np.flatnonzero(ids == ids[dup])[0])]
        raise DataError(
            f"{path}:{line_nos[dup]}: duplicate {what} {str(ids[dup])!r} (first on line {prev})"
        )
    return ids


def _make(path, rows, line_nos, cols: dict[str, int | None], sep_name: str) -> RawInteractions:
    users = _strip_ids(_column(rows, cols["user"]), line_nos, path, "user id")
    items = _strip_ids(_column(rows, cols["item"]), line_nos, path, "item id")
    ratings = timestamps = None
    if cols.get("rating") is not None:
        ratings = _numeric(_column(rows, cols["rating"]), line_nos, path, "rating")
    if cols.get("timestamp") is not None:
        timestamps = _numeric(_column(rows, cols["timestamp"]), line_nos, path, "timestamp")
    return RawInteractions(
        users, items, ratings, timestamps, np.asarray(line_nos, np.int64), str(path)
    )


# ----------------------------------------------------------------------------- RecBole


def _recbole_table(path):
    """Parses a RecBole atomic file: returns (names, types, rows, line numbers, header line)."""
    lines, line_nos = _split_lines(read_text(path))
    head = lines[0].split("\t")
    names, types = [], []
    for field in head:
        name, colon, typ = field.strip().partition(":")
        if not colon or not name or typ not in RECBOLE_TYPES:
            raise DataError(
                f"{path}:{line_nos[0]}: bad header field {field!r}; expected name:type with type "
                f"in {', '.join(RECBOLE_TYPES)}"
            )
        names.append(name)
        types.append(typ)
    if len(set(names)) != len(names):
        raise DataError(f"{path}:{line_nos[0]}: duplicate column names in header")
    rows = _split_rows(lines[1:], "\t")
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    _check_width(rows, line_nos[1:], len(names), path, "tab")
    return names, types, rows, line_nos[1:], line_nos[0]


def read_recbole_inter(path) -> RawInteractions:
    """Reads a RecBole `.inter` file (tab separated, typed header `user_id:token` ...).

    Columns user_id and item_id are required; rating and timestamp are used when present.

    Args:
      path: the .inter file.

    Returns:
      Its interactions.
    """
    names, _, rows, line_nos, head_line = _recbole_table(path)
    for need in ("user_id", "item_id"):
        if need not in names:
            raise DataError(
                f"{path}:{head_line}: header has no {need} column (has {', '.join(names)})"
            )
    cols = {
        "user": names.index("user_id"),
        "item": names.index("item_id"),
        "rating": names.index("rating") if "rating" in names else None,
        "timestamp": names.index("timestamp") if "timestamp" in names else None,
    }
    return _make(path, rows, line_nos, cols, "tab")


def read_recbole_features(path, id_field: str) -> Features:
    """Reads a RecBole `.user` / `.item` file into str feature columns with canonical names.

    token_seq genre columns (class, genre) are joined with ", "; other columns keep their text.

    Args:
      path: the .user or .item file.
      id_field: "user_id" or "item_id".

    Returns:
      Column name -> str array, with the raw ids under "id".
    """
    names, types, rows, line_nos, head_line = _recbole_table(path)
    if id_field not in names:
        raise DataError(
            f"{path}:{head_line}: header has no {id_field} column (has {', '.join(names)})"
        )
    out: Features = {}
    for j, (name, typ) in enumerate(zip(names, types, strict=True)):
        col = np.char.strip(_column(rows, j))
        if name == id_field:
            out["id"] = _unique_ids(
                _strip_ids(col, line_nos, path, id_field), line_nos, path, id_field
            )
            continue
        canon = _CANONICAL.get(name, name)
        if canon == "genres" and typ == "token_seq":
            col = np.array([", ".join(s.split()) for s in col.tolist()])
        out[canon] = col
    return out


# ----------------------------------------------------------------------------- MovieLens


def _ml_table(path, sep: str, width: int, encoding: str):
    lines, line_nos = _split_lines(read_text(path, encoding))
    rows = _split_rows(lines, sep)
    _check_width(rows, line_nos, width, path, repr(sep).strip("'"))
    return rows, line_nos


def read_movielens_ratings(path) -> RawInteractions:
    """Reads MovieLens ratings: ml-100k `u.data` style (tab) or ml-1m `ratings.dat` (`::`).

    Args:
      path: u.data, u1.base, ratings.dat, ... (the separator follows the file suffix: .dat
        files use "::", others tab).

    Returns:
      Interactions with ratings and timestamps.
    """
    sep = "::" if str(path).endswith(".dat") else "\t"
    rows, line_nos = _ml_table(path, sep, 4, "latin-1")
    cols = {"user": 0, "item": 1, "rating": 2, "timestamp": 3}
    return _make(path, rows, line_nos, cols, sep)


def _title_year(titles: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """'Toy Story (1995)' -> ('Toy Story', '1995'); titles without a year keep their text."""
    out_t, out_y = [], []
    for t in titles:
        m = _TITLE_YEAR.match(t)
        out_t.append(m.group(1) if m else t.strip())
        out_y.append(m.group(2) if m else "")
    return np.array(out_t), np.array(out_y)


def read_movielens_items(path) -> Features:
    """Reads ml-100k `u.item` (pipe separated, 19 genre flags) or ml-1m `movies.dat`.

    Titles lose their trailing "(year)"; year comes from the release date (ml-100k) or the title
    (ml-1m); genres are joined with ", ".

    Args:
      path: u.item or movies.dat (latin-1).

    Returns:
      Columns id, title, year, genres.
    """
    if str(path).endswith(".dat"):
        rows, line_nos = _ml_table(path, "::", 3, "latin-1")
        title, year = _title_year([r[1] for r in rows])
        genres = np.array([", ".join(r[2].strip().split("|")) for r in rows])
    else:
        rows, line_nos = _ml_table(path, "|", 5 + len(ML100K_GENRES), "latin-1")
        title, year_t = _title_year([r[1] for r in rows])
        # Release dates look like 01-Jan-1995; fall back to the year in the title.
        year = np.array(
            [
                r[2].strip()[-4:] if r[2].strip() else y
                for r, y in zip(rows, year_t.tolist(), strict=True)
            ]
        )
        flags = np.array([r[5:] for r in rows])  # [n_items, 19] str
        bad = np.argwhere((flags != "0") & (flags != "1"))
        if bad.size:
            j, g = bad[0]
            raise DataError(
                f"{path}:{line_nos[j]}: genre flag {ML100K_GENRES[g]} is {str(flags[j, g])!r}, "
                "expected 0 or 1"
            )
        names = np.array(ML100K_GENRES)
        genres = np.array([", ".join(names[f == "1"]) for f in flags])
    ids = _unique_ids(
        _strip_ids(_column(rows, 0), line_nos, path, "item id"), line_nos, path, "item id"
    )
    return {"id": ids, "title": title, "year": year, "genres": genres}


def read_movielens_users(path) -> Features:
    """Reads ml-100k `u.user` (id|age|gender|occupation|zip) or ml-1m `users.dat`.

    Args:
      path: u.user or users.dat.

    Returns:
      Columns id, age, gender, occupation, zip_code (ml-1m occupation codes become names).
    """
    if str(path).endswith(".dat"):
        rows, line_nos = _ml_table(path, "::", 5, "latin-1")
        gender, age, occ, zip_ = 1, 2, 3, 4
        codes = _numeric(_column(rows, occ), line_nos, path, "occupation code", integer=True)
        bad = np.flatnonzero((codes < 0) | (codes >= len(ML1M_OCCUPATIONS)))
        if bad.size:
            j = int(bad[0])
            raise DataError(f"{path}:{line_nos[j]}: unknown occupation code {codes[j]}")
        occupation = np.array(ML1M_OCCUPATIONS)[codes]
    else:
        rows, line_nos = _ml_table(path, "|", 5, "latin-1")
        age, gender, occ, zip_ = 1, 2, 3, 4
        occupation = np.char.strip(_column(rows, occ))
    return {
        "id": _unique_ids(
            _strip_ids(_column(rows, 0), line_nos, path, "user id"), line_nos, path, "user id"
        ),
        "age": np.char.strip(_column(rows, age)),
        "gender": np.char.strip(_column(rows, gender)),
        "occupation": occupation,
        "zip_code": np.char.strip(_column(rows, zip_)),
    }


# ----------------------------------------------------------------------------- LightGCN


def read_lightgcn(path) -> RawInteractions:
    """Reads a LightGCN/NGCF file: each line `user item item ...` (integers, space separated).

    A line with a user and no items is allowed (it adds no interactions).

    Args:
      path: train.txt / test.txt.

    Returns:
      Interactions without ratings or timestamps.
    """
    lines, line_nos = _split_lines(read_text(path))
    rows = _split_rows(lines, None)
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
    lines, line_nos = _split_lines(read_text(path, encoding))
    if len(sep) == 1:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep, strict=True))
        except csv.Error as e:
            raise DataError(f"{path}: csv error ({e})") from None
        if len(rows) != len(lines):  # a quoted field spans lines; line numbers are approximate
            line_nos = list(range(1, len(rows) + 1))
    else:
        rows = _split_rows(lines, sep)
    sep_name = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}.get(sep, repr(sep))
    names = None
    if header:
        names = [c.strip() for c in rows[0]]
        rows, head_line, line_nos = rows[1:], line_nos[0], line_nos[1:]
        if not rows:
            raise DataError(f"{path}: no data rows after the header")
    width = len(names) if names is not None else len(rows[0])
    _check_width(rows, line_nos, width, path, sep_name)
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
    return _make(path, rows, line_nos, cols, sep_name)
