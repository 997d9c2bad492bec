"""Categorical side features of users and items as padded value-id rows (host side, numpy).

`node_side_features(dataset, cfg)` turns the attribute columns of a `Dataset` (`user_features`,
`item_features`) into one row of value ids per graph node (users 0..U-1, then items U..U+I-1),
with mean-pooling weights, over one shared vocabulary. The model embeds the ids and pools them;
nothing here touches JAX. Attributes come from the feature tables, not from interactions, so an
item without training interactions (cold start) still has its features.

How a column is read (automatic choice; `SideFeatures.columns` reports it per column):
- free text, skipped: the names in `FREE_TEXT` (title, description, ...).
- "age": bucketed into the MovieLens-1M bands <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+ (so the
  ml-1m age codes 1, 18, 25, ... land in the same bands as ml-100k's ages).
- "year": bucketed into decades ("1990s").
  Both when at least half the present values are numbers; the others count as missing.
- other numeric columns (numeric arrays, NaN missing, or str columns where at least 95 % of the
  present values parse as numbers and the name is not code-like such as zip_code or *_id) with
  more than 10 distinct values: `numeric_buckets` quantile buckets, labelled by their range
  ("[9.99,14.5)"), unless they are distinct integers, one per row (an ID: skipped); with at
  most 10 distinct values, categorical.
- multi-valued: "genres", "categories", "tags", "keywords", or any column with a value holding
  "|" or ", "; split on both, one value per part.
- categorical: everything else, one value per distinct string.
Then, per column: values present in fewer than `min_count` rows fold into the column's "<other>"
value; a categorical or multi-valued column whose distinct values number more than half its
(row, value) pairs (and more than 10) is ID-like and skipped; a column keeping more than
`max_values_per_column` values, with no present value, or with one value in every row is skipped.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from jgnas.data.types import DataError, Dataset

__all__ = ["FREE_TEXT", "SideConfig", "SideFeatures", "node_side_features"]

PAD = "<pad>"
OTHER = "<other>"
FREE_TEXT = frozenset(
    {"title", "name", "description", "desc", "summary", "overview", "plot", "text", "review",
     "comment", "comments", "abstract", "content", "url", "link", "tagline"}
)  # fmt: skip
_MULTI = frozenset({"genres", "categories", "tags", "keywords"})
_SPLIT = re.compile(r"\s*\|\s*|\s*,\s+")
# Codes look like numbers but are not quantities: never bucketed by value.
_CODE_NAME = re.compile(r"zip|postal|postcode|phone|(^|_)(id|code)$")
_AGE_EDGES = np.array([18, 25, 35, 45, 50, 56], np.float64)
_AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_FEW = 10  # at most this many distinct values: categorical, and never ID-like
_NUMERIC_FRACTION = 0.95
_ID_LIKE_FRACTION = 0.5


def _is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


@dataclasses.dataclass(frozen=True)
class SideConfig:
    """Categorical side features as node inputs (the `side:` section of a config).

    Attributes:
      enabled: build the side features and make them an input (read by the edge, not here).
      user_columns, item_columns: the columns to use, in `Dataset.user_features` /
        `item_features`; None means every usable column, () none. A named column that is
        missing or unusable is a `DataError`.
      min_count: values present in fewer rows fold into the column's "<other>" value.
      max_values_per_column: a column keeping more values (after folding) is skipped.
      numeric_buckets: quantile buckets of a numeric column other than age and year.
    """

    enabled: bool = False
    user_columns: tuple[str, ...] | None = None
    item_columns: tuple[str, ...] | None = None
    min_count: int = 2
    max_values_per_column: int = 1000
    numeric_buckets: int = 8

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise ValueError(f"side.enabled: must be true or false, got {self.enabled!r}")
        for key in ("user_columns", "item_columns"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, tuple | list):
                raise ValueError(
                    f"side.{key}: must be a list of column names or null, got {value!r}"
                )
            if not all(isinstance(c, str) and c.strip() for c in value):
                raise ValueError(
                    f"side.{key}: column names must be non-empty strings, got {value!r}"
                )
            if len(set(value)) != len(value):
                raise ValueError(f"side.{key}: duplicate column names in {list(value)}")
            object.__setattr__(self, key, tuple(value))  # keep the frozen config hashable
        for key, low in (("min_count", 1), ("max_values_per_column", 1), ("numeric_buckets", 2)):
            value = getattr(self, key)
            if not _is_int(value) or value < low:
                raise ValueError(f"side.{key}: must be an integer >= {low}, got {value!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class SideFeatures:
    """Side-feature value ids of every graph node.

    Attributes:
      ids: int32 [n_users + n_items, F], value ids into `vocabulary`, ascending within a row,
        padded with 0 (id 0 is padding, never a value). F is the most values of any row (>= 1).
      weights: float32 [n_users + n_items, F], 1 / (number of values in the row) at values, 0 at
        padding: `sum(weights[..., None] * emb[ids], axis=1)` is the mean of the row's value
        embeddings, and all zeros for a row without values.
      n_values: vocabulary size, padding included.
      vocabulary: id -> "user.age=25-34", "item.genres=Comedy", "item.year=<other>", ...; id 0 is
        "<pad>". Ordered by side (users, items), column (sorted by name, or in the order `cfg`
        names them), then value (sorted; buckets and numbers in numeric order; "<other>" last),
        so a column's ids are one contiguous range.
      columns: {"user": {name: info}, "item": {name: info}} for every column seen. A used column's
        info has kind ("categorical", "multi-valued" or "bucketed"), ids ([first, stop) in the
        vocabulary), n_values, folded (distinct values folded into "<other>"), missing (rows
        without a value) and, when bucketed, buckets (how); a skipped one has kind "skipped"
        and reason.
    """

    ids: np.ndarray
    weights: np.ndarray
    n_values: int
    vocabulary: list[str]
    columns: dict


# ----------------------------------------------------------------------------- one column


def _parse(values: np.ndarray) -> np.ndarray:
    """float64 of each str (NaN where it is not a finite number)."""
    try:
        out = values.astype(np.float64)  # C speed when every value is a number
    except ValueError:
        out = np.full(values.shape[0], np.nan)
        for j, s in enumerate(values.tolist()):
            try:
                out[j] = float(s)
            except ValueError:
                continue
    return np.where(np.isfinite(out), out, np.nan)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _buckets(name: str, num: np.ndarray, counts: np.ndarray, n_buckets: int):
    """Bucket labels and the bucket of each unique value (-1 where not a number)."""
    ok = ~np.isnan(num)
    if name == "age":
        labels, how = list(_AGE_LABELS), "age bands " + ", ".join(_AGE_LABELS)
        idx = np.searchsorted(_AGE_EDGES, np.where(ok, num, 0), side="right")
    elif name == "year":
        decade = np.floor(np.where(ok, num, 0) / 10).astype(np.int64) * 10
        first = int(decade[ok].min())
        labels = [f"{d}s" for d in range(first, int(decade[ok].max()) + 10, 10)]
        idx, how = (decade - first) // 10, "decades"
    else:
        vals = np.repeat(num[ok], counts[ok])
        q = np.quantile(vals, np.linspace(0, 1, n_buckets + 1)[1:-1])
        edges = np.unique(q)
        labels = [f"<{_fmt(edges[0])}"]
        labels += [f"[{_fmt(a)},{_fmt(b)})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        labels += [f">={_fmt(edges[-1])}"]
        idx = np.searchsorted(edges, np.where(ok, num, 0), side="right")
        how = f"{len(labels)} quantile buckets"
    return labels, np.where(ok, idx, -1), how


def _expand(inv: np.ndarray, per_unique: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(row, token) pairs, sorted by row: row r gets the tokens of its unique value inv[r]."""
    lens_u = np.array([len(t) for t in per_unique], np.int64)
    flat = np.array([t for ts in per_unique for t in ts], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens_u)[:-1]])
    lens_r = lens_u[inv]
    rows = np.repeat(np.arange(inv.shape[0], dtype=np.int64), lens_r)
    ends = np.cumsum(lens_r)
    within = np.arange(rows.shape[0], dtype=np.int64) - np.repeat(ends - lens_r, lens_r)
    return rows, flat[np.repeat(offsets[inv], lens_r) + within]


def _dedupe(rows: np.ndarray, toks: np.ndarray, n_tok: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, token) pairs, sorted (a sort, not np.unique: its hash path is slow here)."""
    key = np.sort(rows * n_tok + toks)
    key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return key // n_tok, key % n_tok


def _skip(reason: str):
    return {"kind": "skipped", "reason": reason}, None, None, None


def _column(name: str, col: np.ndarray, cfg: SideConfig):
    """One column -> (info, labels, rows, local value ids), or (info, None, None, None) if skipped.

    rows / local ids: int64 (row, value) pairs, distinct, sorted by row.
    """
    n = col.shape[0]
    low = name.lower()
    if low in FREE_TEXT:
        return _skip("free text")
    if col.dtype.kind in "iuf":
        uniq, inv = np.unique(col, return_inverse=True)  # numeric order; NaN (missing) last
        num = uniq.astype(np.float64)
        num[~np.isfinite(num)] = np.nan
        present_u = ~np.isnan(num)
        multi = False
    else:
        uniq, inv = np.unique(col.astype(str), return_inverse=True)
        uniq = np.char.strip(uniq)
        present_u = uniq != ""
        multi = low in _MULTI or bool(
            ((np.char.find(uniq, "|") >= 0) | (np.char.find(uniq, ", ") >= 0)).any()
        )
        num = np.full(uniq.shape[0], np.nan)
        if not multi and not _CODE_NAME.search(low):
            num[present_u] = _parse(uniq[present_u])
    inv = inv.reshape(-1)
    counts_u = np.bincount(inv, minlength=uniq.shape[0])
    n_present = int(counts_u[present_u].sum())
    if n_present == 0:
        return _skip("no values")

    info: dict = {}
    is_num = ~np.isnan(num)
    parsed = int(counts_u[is_num].sum())
    n_distinct_num = int(is_num.sum())
    if low in ("age", "year"):
        bucketed = parsed >= 0.5 * n_present
    else:
        bucketed = parsed >= _NUMERIC_FRACTION * n_present and n_distinct_num > _FEW
        if bucketed and n_distinct_num == parsed and (num[is_num] % 1 == 0).all():
            # Distinct integers, one per row: a numeric ID, not a quantity.
            return _skip(f"id-like ({n_distinct_num} distinct integers in {parsed} rows)")
    tok_u = None  # single-valued columns: the token of each unique value, -1 for none
    if bucketed:
        labels, tok_u, how = _buckets(low, num, counts_u, cfg.numeric_buckets)
        info.update(kind="bucketed", buckets=how)
        if parsed < n_present:
            info["unparsed"] = n_present - parsed  # rows whose value is not a number: missing
    elif multi:
        parts = [[p for p in _SPLIT.split(s) if p] for s in uniq.tolist()]
        labels = sorted({p for ps in parts for p in ps})
        pos = {label: j for j, label in enumerate(labels)}
        rows, toks = _expand(inv, [[pos[p] for p in ps] for ps in parts])
        rows, toks = _dedupe(rows, toks, max(len(labels), 1))
        info["kind"] = "multi-valued"
    else:
        if col.dtype.kind in "iuf":
            text = np.array([np.format_float_positional(v, trim="-") for v in num[present_u]])
            labels, tok_present = text.tolist(), np.arange(text.shape[0])  # in numeric order
        else:  # unique again: stripping can merge values
            labels_a, tok_present = np.unique(uniq[present_u], return_inverse=True)
            labels = labels_a.tolist()
        tok_u = np.full(uniq.shape[0], -1, np.int64)
        tok_u[present_u] = tok_present.reshape(-1)
        info["kind"] = "categorical"
    if tok_u is not None:
        t = tok_u[inv]
        rows = np.flatnonzero(t >= 0)
        toks = t[rows]
    if rows.shape[0] == 0:
        return _skip("no values")

    tok_count = np.bincount(toks, minlength=len(labels))
    n_distinct = int(np.count_nonzero(tok_count))
    n_rows = int(np.count_nonzero(np.bincount(rows, minlength=n)))
    if not bucketed and n_distinct > max(_FEW, _ID_LIKE_FRACTION * rows.shape[0]):
        return _skip(
            f"id-like ({n_distinct} distinct values in {rows.shape[0]} (row, value) pairs)"
        )
    if n_distinct == 1 and n_rows == n:
        return _skip("constant")
    keep = tok_count >= cfg.min_count
    n_keep = int(keep.sum())
    if n_keep > cfg.max_values_per_column:
        limit = cfg.max_values_per_column
        return _skip(f"too many values ({n_keep} > side.max_values_per_column={limit})")
    if n_keep == 0:
        return _skip(f"every value is in fewer than side.min_count={cfg.min_count} rows")
    folded = int(((tok_count > 0) & ~keep).sum())
    new_id = np.where(keep, np.cumsum(keep) - 1, n_keep)
    out_labels = [label for label, k in zip(labels, keep.tolist(), strict=True) if k]
    if folded:
        out_labels.append(OTHER)
    vals = new_id[toks]
    if multi and folded:  # several rare values of one row fold into one <other>
        rows, vals = _dedupe(rows, vals, len(out_labels))
    info.update(n_values=len(out_labels), folded=folded, missing=n - n_rows)
    return info, out_labels, rows, vals


# ----------------------------------------------------------------------------- all nodes


def _side_columns(table: dict, wanted, n_rows: int, side: str, ds: Dataset) -> list[str]:
    for name, col in table.items():
        if np.shape(col) != (n_rows,):
            raise DataError(
                f"data {ds.name}: {side}_features[{name!r}] has shape {np.shape(col)}, "
                f"expected ({n_rows},)"
            )
    if wanted is None:
        return sorted(table)
    missing = [c for c in wanted if c not in table]
    if missing:
        raise DataError(
            f"side.{side}_columns: data {ds.name} has no {side} column {missing[0]!r}; "
            f"it has {sorted(table)}"
        )
    return list(wanted)


def node_side_features(dataset: Dataset, cfg: SideConfig = SideConfig()) -> SideFeatures:
    """Value ids and pooling weights of every node's categorical attributes.

    Args:
      dataset: its `user_features` / `item_features` give the attributes (rows in dense-id order).
      cfg: which columns, and how rare values fold.

    Returns:
      The features of the n_users + n_items graph nodes (users first).

    Raises:
      DataError: no usable column, or a column named in `cfg` is missing or unusable.
    """
    vocabulary = [PAD]
    columns: dict = {"user": {}, "item": {}}
    node_parts, id_parts = [], []
    sides = (
        ("user", dataset.user_features, cfg.user_columns, dataset.n_users, 0),
        ("item", dataset.item_features, cfg.item_columns, dataset.n_items, dataset.n_users),
    )
    for side, table, wanted, n_rows, offset in sides:
        for name in _side_columns(table, wanted, n_rows, side, dataset):
            info, labels, rows, vals = _column(name, np.asarray(table[name]), cfg)
            if labels is None and wanted is not None:
                raise DataError(
                    f"side.{side}_columns: {side} column {name!r} of data {dataset.name} is "
                    f"unusable: {info['reason']}"
                )
            if labels is not None:
                info["ids"] = [len(vocabulary), len(vocabulary) + len(labels)]
                node_parts.append(rows + offset)
                id_parts.append(vals + len(vocabulary))
                vocabulary += [f"{side}.{name}={label}" for label in labels]
            columns[side][name] = info
    if not node_parts:
        seen = {
            side: [f"{c} ({i['reason']})" for c, i in columns[side].items()]
            for side in ("user", "item")
        }
        raise DataError(
            f"data {dataset.name}: side features requested but the dataset has no usable user or "
            f"item attribute columns (user: [{', '.join(seen['user'])}], item: "
            f"[{', '.join(seen['item'])}]); use features without side"
        )
    key = np.sort(np.concatenate(node_parts) * len(vocabulary) + np.concatenate(id_parts))
    nodes, ids = key // len(vocabulary), key % len(vocabulary)
    n_nodes = dataset.n_users + dataset.n_items
    per_node = np.bincount(nodes, minlength=n_nodes)
    width = int(per_node.max())
    starts = np.cumsum(per_node) - per_node
    slot = np.arange(nodes.shape[0]) - starts[nodes]
    out_ids = np.zeros((n_nodes, width), np.int32)
    out_ids[nodes, slot] = ids
    weights = np.zeros((n_nodes, width), np.float32)
    weights[nodes, slot] = (1.0 / per_node[nodes]).astype(np.float32)
    return SideFeatures(out_ids, weights, len(vocabulary), vocabulary, columns)
