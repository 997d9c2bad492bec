"""Raw MovieLens files: ml-100k (`u.data`, `u.item`, `u.user`) and ml-1m (`*.dat`)."""

from __future__ import annotations

import re

import numpy as np

from jgnas.data.parsing import (
    Features,
    RawInteractions,
    check_width,
    column,
    make_raw,
    numeric,
    read_text,
    split_lines,
    split_rows,
    strip_ids,
    unique_ids,
)
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
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def _ml_table(path, sep: str, width: int, encoding: str):
    lines, line_nos = split_lines(read_text(path, encoding))
    rows = split_rows(lines, sep)
    check_width(rows, line_nos, width, path, repr(sep).strip("'"))
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
    return make_raw(path, rows, line_nos, cols, sep)


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
    ids = unique_ids(
        strip_ids(column(rows, 0), line_nos, path, "item id"), line_nos, path, "item id"
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
        codes = numeric(column(rows, occ), line_nos, path, "occupation code", integer=True)
        bad = np.flatnonzero((codes < 0) | (codes >= len(ML1M_OCCUPATIONS)))
        if bad.size:
            j = int(bad[0])
            raise DataError(f"{path}:{line_nos[j]}: unknown occupation code {codes[j]}")
        occupation = np.array(ML1M_OCCUPATIONS)[codes]
    else:
        rows, line_nos = _ml_table(path, "|", 5, "latin-1")
        age, gender, occ, zip_ = 1, 2, 3, 4
        occupation = np.char.strip(column(rows, occ))
    return {
        "id": unique_ids(
            strip_ids(column(rows, 0), line_nos, path, "user id"), line_nos, path, "user id"
        ),
        "age": np.char.strip(column(rows, age)),
        "gender": np.char.strip(column(rows, gender)),
        "occupation": occupation,
        "zip_code": np.char.strip(column(rows, zip_)),
    }
