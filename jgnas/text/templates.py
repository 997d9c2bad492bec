"""Node texts from feature columns via str.format-style templates."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping

import numpy as np

from jgnas.data.types import DataError

ITEM_TEMPLATE = "{title} ({year}). Genres: {genres}."
# "Occupation: ..." rather than "a 24-year-old man writer" because ml-100k occupations include
# "none" and "other", which read as nonsense inside the noun phrase.
USER_TEMPLATE = "A {age}-year-old {gender}. Occupation: {occupation}."

_CLEANUPS = (
    (re.compile(r"\(\s*\)|\[\s*\]"), ""),  # "Toy Story ()" -> "Toy Story"
    (re.compile(r"(?<!\S)-[\w-]+"), ""),  # orphaned suffix: "A -year-old" -> "A"
    (re.compile(r"[^\s.,;:!?()]+:\s*(?=[.,;!?]|$)"), ""),  # label without value: "Genres: ."
    (re.compile(r"\s+"), " "),
    (re.compile(r"\s+([.,;:!?])"), r"\1"),  # "Toy Story ." -> "Toy Story."
    (re.compile(r"([.,;:!?])(?:\s*[.,;:!?])+"), r"\1"),  # ". ." -> "."
)


def template_fields(template: str) -> list[str]:
    """Field names used by a str.format-style template, in order of appearance."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise DataError(f"template {template!r}: {err}") from None
    fields = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            # Attribute/index access ({x.y}, {x[0]}) and positional fields are refused: values
            # come only from feature columns by name.
            raise DataError(f"template {template!r}: field {{{name}}} must be a plain column name")
        fields.append(name)
    return fields


def as_text(value) -> str:
    """One feature cell as text: NaN/None -> "", integral floats without ".0", bytes decoded."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if float(value).is_integer():
            return str(int(value))
    return str(value).strip()


def clean_text(text: str) -> str:
    """Tidies a rendered template whose fields were empty (see `render`)."""
    for pattern, repl in _CLEANUPS:
        text = pattern.sub(repl, text)
    return text.strip(" ,;:").strip()


def render(template: str, features: Mapping[str, np.ndarray], n: int) -> list[str]:
    """Renders one text per node from feature columns.

    Empty values (None, NaN, "", whitespace) render as "" and such a text is then cleaned: empty
    brackets are dropped, a "Label:" left without value is dropped, an orphaned "-suffix" (as in
    "A -year-old") is dropped, and spaces/punctuation are tidied. A node whose fields are all
    empty gets "" (which encodes as [CLS] [SEP]), not the bare template literals.

    Args:
      template: str.format-style, e.g. ITEM_TEMPLATE; fields are column names.
      features: column name -> array of length n.
      n: number of nodes.

    Returns:
      n strings. Raises `DataError` (one line) for a field that is not a column, naming the
      available columns, or a column whose length is not n.
    """
    fields = template_fields(template)
    for name in dict.fromkeys(fields):
        if name not in features:
            raise DataError(
                f"template {template!r}: field {{{name}}} is not a feature column; "
                f"available: {sorted(features)}"
            )
        if len(features[name]) != n:
            raise DataError(
                f"feature column {name!r} has length {len(features[name])}, expected {n}"
            )
    columns = {name: [as_text(v) for v in features[name]] for name in dict.fromkeys(fields)}
    texts = []
    for i in range(n):
        values = {name: col[i] for name, col in columns.items()}
        if fields and not any(values.values()):
            texts.append("")
        elif all(values.values()):
            texts.append(template.format(**values))  # complete rows stay verbatim
        else:
            texts.append(clean_text(template.format(**values)))
    return texts
