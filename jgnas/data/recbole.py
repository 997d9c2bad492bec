"""RecBole atomic files: `.inter` interactions and `.user` / `.item` side features."""

from __future__ import annotations

import numpy as np

from jgnas.data.parsing import (
    Features,
    RawInteractions,
    check_width,
    column,
    make_raw,
    read_text,
    split_lines,
    split_rows,
    strip_ids,
    unique_ids,
)
from jgnas.data.types import DataError

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
# RecBole column name -> canonical feature name.
_CANONICAL = {
    "movie_title": "title", "title": "title", "release_year": "year", "year": "year",
    "class": "genres", "genre": "genres", "genres": "genres",
}  # fmt: skip


def _recbole_table(path, encoding: str = "utf-8"):
    """Parses a RecBole atomic file: returns (names, types, rows, line numbers, header line)."""
    lines, line_nos = split_lines(read_text(path, encoding))
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
    rows = split_rows(lines[1:], "\t")
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    check_width(rows, line_nos[1:], len(names), path, "tab")
    return names, types, rows, line_nos[1:], line_nos[0]


def read_recbole_inter(path, encoding: str = "utf-8") -> RawInteractions:
    """Reads a RecBole `.inter` file (tab separated, typed header `user_id:token` ...).

    Columns user_id and item_id are required; rating and timestamp are used when present.

    Args:
      path: the .inter file.
      encoding: its text encoding (`data.encoding`).

    Returns:
      Its interactions.
    """
    names, _, rows, line_nos, head_line = _recbole_table(path, encoding)
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
    return make_raw(path, rows, line_nos, cols, "tab")


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
        col = np.char.strip(column(rows, j))
        if name == id_field:
            out["id"] = unique_ids(
                strip_ids(col, line_nos, path, id_field), line_nos, path, id_field
            )
            continue
        canon = _CANONICAL.get(name, name)
        if canon == "genres" and typ == "token_seq":
            col = np.array([", ".join(s.split()) for s in col.tolist()])
        out[canon] = col
    return out
