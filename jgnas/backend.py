"""The serving state behind `jgnas.service`: vectors, id maps, the item buffer, the jitted scoring
programs, the explainer, the text encoder for new items and the optional HNSW index.

`Backend` knows nothing of HTTP: the app in `jgnas.service` validates requests, calls it, and maps
`ServiceError(status, message)` to JSON responses. Batches are padded to powers of four and k to
a power of two >= 64 (`MIN_KK`), so a handful of compiled programs serve every request; new items
go into spare rows of the item buffer, so they change no shape until it grows.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from jgnas import export
from jgnas.ann import ANN_THRESHOLD, AnnIndex

MAX_K = 1000
MAX_BATCH = 256
MAX_BODY_BYTES = 1 << 20
MIN_KK = 64  # k is padded to a power of two >= this: one program for every k <= 64
ENDPOINTS = ("/recommend", "/similar", "/items", "/explain", "/healthz", "/metrics")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

__all__ = ["Backend", "ServiceError"]


class ServiceError(Exception):
    """A request the backend refuses: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Backend:
    """What the endpoints call: the catalog on device, the jitted scorer, optional ANN, the model.

    Args:
      catalog: `jgnas.export.Catalog` (from a run's winner or an export folder).
      winner: the loaded `jgnas.export.Winner`, or None when serving an export.
      ann: "auto" (an HNSW index when the catalog has >= ann_threshold items), "on" or "off".
      max_batch: most users in one POST /recommend.
      warmup: compile the scoring programs now rather than on the first requests.
    """

    def __init__(
        self,
        catalog: export.Catalog,
        winner=None,
        *,
        ann: str = "auto",
        ann_threshold: int = ANN_THRESHOLD,
        max_batch: int = MAX_BATCH,
        warmup: bool = True,
        log: Callable[[str], None] | None = None,
    ):
        if ann not in ("auto", "on", "off"):
            raise ValueError(f"ann: expected auto, on or off, got {ann!r}")
        log = log or (lambda m: None)
        self.info = dict(catalog.info)
        self.winner = winner
        self.max_batch = max_batch
        self.started = time.time()
        self.user_ids = catalog.user_ids
        self._user_index = {str(r): i for i, r in enumerate(catalog.user_ids)}
        self.user_emb = np.ascontiguousarray(catalog.user_emb, np.float32)
        self._seen_indptr, self._seen_items = catalog.seen_indptr, catalog.seen_items
        self.n_graph_items = catalog.n_items  # items with a node in the trained graph
        n, d = catalog.item_emb.shape
        self._items = np.zeros((n + _headroom(n), d), np.float32)
        self._items[:n] = catalog.item_emb
        self._unit = _normalise(self._items)
        self.item_ids: list[str] = [str(i) for i in catalog.item_ids]
        self._item_index = {r: i for i, r in enumerate(self.item_ids)}
        self._meta = {c: [str(v) for v in col] for c, col in catalog.item_meta.items()}
        self._lock = threading.Lock()
        self._publish(n)
        self.ann: AnnIndex | None = None
        if ann == "on" or (ann == "auto" and n >= ann_threshold):
            self.ann = AnnIndex(catalog.item_emb, threads=os.cpu_count())
            log(f"ANN index (faiss HNSW) over {n} items built in {self.ann.build_seconds:.1f} s")
        self.explainer = None
        self.encoder = None
        if winner is not None:
            from jgnas.explain import Explainer

            self.explainer = Explainer(winner)
            if winner.uses_text:
                from jgnas import text as text_lib

                self.encoder = text_lib.load_encoder(winner.ctx.cfg.text.model_path)
        if warmup:
            t0 = time.perf_counter()
            self.warmup()
            log(f"warm-up: scoring programs compiled in {time.perf_counter() - t0:.1f} s")

    # ---- state ----------------------------------------------------------------------------------
    def _publish(self, n: int) -> None:
        """Makes rows [0, n) of the host buffers the served catalog (one atomic assignment)."""
        self._state = (jnp.asarray(self._items), jnp.asarray(self._unit), n)

    @property
    def n_items(self) -> int:
        return self._state[2]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def version(self) -> str:
        return str(self.info.get("model_version"))

    def user(self, raw: str) -> int:
        u = self._user_index.get(str(raw))
        if u is None:
            raise ServiceError(404, f"unknown user {raw!r}")
        return u

    def unknown_users(self, raw: list[str]) -> list[str]:
        return [r for r in raw if r not in self._user_index]

    def item(self, raw: str) -> int:
        i = self._item_index.get(str(raw))
        if i is None or i >= self.n_items:
            raise ServiceError(404, f"unknown item {raw!r}")
        return i

    # ---- scoring --------------------------------------------------------------------------------
    def recommend(
        self, users: list[int], k: int, exclude_seen: bool = True, new_items: int = 0
    ) -> list[list[dict]]:
        """Top-k rows for each user index (exact, or the HNSW index above the threshold).

        new_items: reserve up to this many of the k places for items added at serving time, the
        user's best among them by the same score. A new item has no interactions, so its vector
        is its text alone; against warm items, whose vectors propagation fills with their
        neighbours', it rarely reaches the top-k by itself (the README's cold-start table: cold
        Recall@20 over all items is 0.0000 for every model). Ranked among new items only, text
        models do several times better than chance (the "cold items only" column)."""
        n = self.n_items
        if self.ann is not None:
            found = [self._search_ann(u, k, exclude_seen) for u in users]
        else:
            found = self._search_exact(users, k, exclude_seen)
        out = []
        for u, (scores, idx) in zip(users, found):
            keep = np.isfinite(scores) & (idx >= 0)
            scores, idx = scores[keep][:k], idx[keep][:k]
            if new_items and n > self.n_graph_items:
                scores, idx = self._reserve_new(u, scores, idx, k, min(new_items, k), n)
            out.append(self._rows(scores, idx))
        return out

    def _search_exact(self, users: list[int], k: int, exclude_seen: bool):
        items, _, n = self._state
        b = _batch_bucket(len(users))
        vecs = np.zeros((b, self.user_emb.shape[1]), np.float32)
        vecs[: len(users)] = self.user_emb[users]
        used = users if exclude_seen else []
        mask = export.seen_mask(self._seen_indptr, self._seen_items, used, b, items.shape[0])
        kk = min(export.bucket(k, MIN_KK), items.shape[0])
        scores, idx = export.topk_block(
            jnp.asarray(vecs), items, jnp.int32(n), jnp.asarray(mask), kk
        )
        scores, idx = np.asarray(scores), np.asarray(idx)
        return [(scores[r, :k], idx[r, :k]) for r in range(len(users))]

    def _search_ann(self, u: int, k: int, exclude_seen: bool):
        seen = self._seen_items[self._seen_indptr[u] : self._seen_indptr[u + 1]]
        scores, ids = self.ann.search(self.user_emb[u], k, exclude=seen if exclude_seen else None)
        return scores[0], ids[0]

    def _reserve_new(self, u, scores, idx, k, r, n):
        """The best r new items (indices n_graph_items..n-1) plus the best k - r others."""
        new_scores = self._items[self.n_graph_items : n] @ self.user_emb[u]
        best = np.argsort(-new_scores, kind="stable")[:r]
        pick_i, pick_s = best + self.n_graph_items, new_scores[best]
        others = ~np.isin(idx, pick_i)
        idx = np.concatenate([idx[others][: k - len(pick_i)], pick_i])
        scores = np.concatenate([scores[others][: k - len(pick_i)], pick_s])
        order = np.lexsort((idx, -scores))  # by score, ties to the lower index
        return scores[order], idx[order]

    def _rows(self, scores: np.ndarray, idx: np.ndarray, key: str = "score") -> list[dict]:
        keep = np.isfinite(scores) & (idx >= 0)
        return [
            self._row(r + 1, int(i), float(s), key)
            for r, (s, i) in enumerate(zip(scores[keep], idx[keep]))
        ]

    def _row(self, rank: int, i: int, score: float, key: str = "score") -> dict:
        title = self._meta.get("title")
        return {
            "rank": rank,
            "item": self.item_ids[i],
            "title": title[i] if title else "",
            key: score,
            "new": i >= self.n_graph_items,
        }

    def similar(self, i: int, k: int) -> list[dict]:
        """The k items with the highest cosine to item i (i itself excluded); exact."""
        _, unit, n = self._state
        kk = min(export.bucket(k, MIN_KK), unit.shape[0])
        q = jnp.asarray(self._unit[i][None])
        mask = np.zeros((1, unit.shape[0]), bool)
        mask[0, i] = True
        scores, idx = export.topk_block(q, unit, jnp.int32(n), jnp.asarray(mask), kk)
        return self._rows(np.asarray(scores)[0, :k], np.asarray(idx)[0, :k], key="similarity")

    def warmup(self) -> None:
        """Compiles the programs requests will use: every batch bucket at k <= MIN_KK, similar,
        and with a model, the explainer and the cold-item path."""
        b = 1
        while b <= _batch_bucket(self.max_batch):
            self.recommend([0] * b, 10)
            b *= 4
        if self.n_items:
            self.similar(0, 10)
        if self.encoder is not None:
            self._embed_text("warm up")
        if self.explainer is not None and self.n_items:
            self.explain(0, 0, top=3)

    # ---- new items ------------------------------------------------------------------------------
    def _embed_text(self, text: str) -> np.ndarray:
        from jgnas import text as text_lib

        vec = text_lib.encode(self.encoder, [text])
        return self.winner.cold_item_vectors(vec)[0]

    def add_item(self, item_id: str, fields: dict[str, str]) -> dict:
        """Adds an item from its text: rendered with the run's item template, encoded by the run's
        encoder, projected and propagated by the winner as a node without interactions."""
        if self.winner is None:
            raise ServiceError(
                409, "new items need the model: serve the run directory, not an export"
            )
        if not self.winner.uses_text:
            raise ServiceError(
                409,
                f"the served model ({self.info.get('describe')}) reads ID embeddings only: an item "
                "without interactions has no learned vector, so it cannot be ranked from its text. "
                "Serve a winner with text features (text.enabled, features text or id+text).",
            )
        if item_id in self._item_index:
            raise ServiceError(409, f"item {item_id!r} already exists")
        from jgnas.text import render
        from jgnas.text.templates import template_fields

        template = self.winner.ctx.cfg.text.item_template
        cols = {f: np.array([fields.get(f, "")], dtype=object) for f in template_fields(template)}
        text = render(template, cols, 1)[0]
        if not text.strip():
            raise ServiceError(
                422,
                f"no text for the item template {template!r}: give at least one of {list(cols)}",
            )
        vec = self._embed_text(text)
        with self._lock:
            if item_id in self._item_index:
                raise ServiceError(409, f"item {item_id!r} already exists")
            n = self.n_items
            if n == len(self._items):
                grown = np.zeros((n + _headroom(n), self._items.shape[1]), np.float32)
                grown[:n] = self._items
                self._items, self._unit = grown, _normalise(grown)
            self._items[n] = vec
            self._unit[n] = _normalise(vec[None])[0]
            self.item_ids.append(item_id)
            for col in set(self._meta) | set(fields):
                self._meta.setdefault(col, [""] * n).append(str(fields.get(col, "")))
            if self.ann is not None:
                self.ann.add(vec[None])
            self._publish(n + 1)
            self._item_index[item_id] = n
        return {"item": item_id, "index": n, "text": text, "catalog_size": n + 1}

    # ---- explanations -----------------------------------------------------------------------------
    def explain(self, u: int, i: int, top: int = 10) -> dict:
        if self.explainer is None:
            raise ServiceError(
                409, "explanations need the model: serve the run directory, not an export"
            )
        n_users = self.n_users
        title = self._meta.get("title")

        def label(node: int) -> dict:
            if node < n_users:
                return {"kind": "user", "id": str(self.user_ids[node])}
            j = node - n_users
            return {"kind": "item", "id": self.item_ids[j], "title": title[j] if title else ""}

        if i < self.n_graph_items:
            out = self.explainer.explain(u, n_users + i, label, top=top)
        else:
            out = self.explainer.explain(u, None, label, item_vec=self._items[i], top=top)
        return {"user": str(self.user_ids[u]), "item": self.item_ids[i], **out}

    def health(self) -> dict:
        return {
            "status": "ok",
            "model_version": self.version,
            "model": self.info.get("describe"),
            "dataset": self.info.get("dataset"),
            "users": self.n_users,
            "items": self.n_items,
            "search": "ann" if self.ann is not None else "exact",
            "explain": None if self.explainer is None else self.explainer.method,
            "new_items": self.encoder is not None,
            "uptime_s": round(time.time() - self.started, 1),
        }


def _batch_bucket(n: int) -> int:
    """Batches are padded to a power of 4 (1, 4, 16, 64, 256): five programs cover them all."""
    b = 1
    while b < n:
        b *= 4
    return b


def _headroom(n: int) -> int:
    return max(64, n // 16)


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.maximum(norm, 1e-30), 0.0).astype(np.float32)
