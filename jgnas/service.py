"""The HTTP recommendation service: a FastAPI app (served by uvicorn) over a run or an export.

`jgnas serve PATH [--host 127.0.0.1 --port 8000]` (`run`). PATH is a finished run directory (all
endpoints) or an export folder from `jgnas export` (recommend, similar, health and metrics: an
export holds vectors, not the model, so it can neither explain nor embed new items).

    GET  /recommend?user=RAW_ID&k=10&exclude_seen=true&new_items=0   top-k: raw ids, titles, scores
    POST /recommend  {"users": [...], "k": 10, "exclude_seen": true, "new_items": 0}   <= max_batch
    GET  /similar?item=RAW_ID&k=10                         items by cosine of their vectors
    POST /items      {"item_id": "...", "title": "...", "genres": "...", ...}   a cold-start item
    GET  /explain?user=RAW_ID&item=RAW_ID&top=10            the score split (`jgnas.explain`)
    GET  /healthz                                          status, model version, sizes
    GET  /metrics                                          Prometheus text format

Scoring is `jgnas.export.topk_block`: exact, jitted, with the seen items excluded inside the
program by a boolean mask. Batches are padded to powers of four and k to a power of two >= 64,
so five programs serve every /recommend; they are compiled at start (warm-up), with the
explainer's and the cold-item programs. Items live in a buffer with spare rows: a new item
changes no shape until the buffer grows. Above `ann_threshold` items an HNSW index (`jgnas.ann`)
answers /recommend instead. The scoring endpoints are `async` and run on the event loop (a
millisecond or a few: cheaper than a hand-off to a thread on a small CPU) and send plain JSON
types as `JSONResponse` (FastAPI's generic encoder, walking every row, cost more than the
scoring); /explain and POST /items (tens of milliseconds) run in the thread pool.

Errors are JSON `{"detail": message}`: 404 unknown user or item, 422 bad k, bad types or malformed
JSON, 413 a batch over `max_batch` users or a body over `max_body` bytes, 409 a request the served
model cannot answer (a new item for an ID-only winner, an item id already in the catalog,
/explain or /items on an export). A request never changes what the service serves, except a
successful POST /items, which adds one item.
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from jgnas import export
from jgnas.ann import ANN_THRESHOLD, AnnIndex
from jgnas.data import DataError

MAX_K = 1000
MAX_BATCH = 256
MAX_BODY_BYTES = 1 << 20
MIN_KK = 64  # k is padded to a power of two >= this: one program for every k <= 64
ENDPOINTS = ("/recommend", "/similar", "/items", "/explain", "/healthz", "/metrics")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

__all__ = ["ANN_THRESHOLD", "Backend", "ServiceError", "create_app", "load_backend", "run"]


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


class Batch(BaseModel):
    """POST /recommend: raw user ids (strings; integers are taken as their decimal text)."""

    model_config = ConfigDict(extra="forbid")
    users: list[StrictStr | StrictInt] = Field(min_length=1)
    k: StrictInt = Field(10, ge=1, le=MAX_K)
    exclude_seen: StrictBool = True
    new_items: StrictInt = Field(0, ge=0, le=MAX_K)


class NewItem(BaseModel):
    """POST /items: a new raw id and its metadata (any other keys: the item template's columns,
    e.g. title, year, genres; a list of strings is joined with ", ")."""

    model_config = ConfigDict(extra="allow")
    item_id: StrictStr = Field(min_length=1, max_length=256)


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


# ---- the ASGI app ---------------------------------------------------------------------------------


def create_app(backend: Backend, *, max_body: int = MAX_BODY_BYTES):
    """The FastAPI app over a backend, with its own Prometheus registry (no global state)."""
    registry = CollectorRegistry()
    requests = Counter(
        "jgnas_requests",
        "HTTP requests by endpoint, method and status code",
        ["endpoint", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "jgnas_request_duration_seconds",
        "Request latency by endpoint",
        ["endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    info = Gauge(
        "jgnas_model_info",
        "The served model (value 1)",
        ["version", "model", "dataset", "search"],
        registry=registry,
    )
    info.labels(
        backend.version,
        str(backend.info.get("describe")),
        str(backend.info.get("dataset")),
        "ann" if backend.ann else "exact",
    ).set(1)
    Gauge("jgnas_catalog_items", "Items that can be recommended", registry=registry).set_function(
        lambda: backend.n_items
    )
    Gauge("jgnas_catalog_users", "Known users", registry=registry).set(backend.n_users)
    added = Counter("jgnas_items_added", "Items added by POST /items", registry=registry)
    batch_users = Histogram(
        "jgnas_recommend_batch_users",
        "Users per POST /recommend",
        buckets=(1, 4, 16, 64, 256, 1024),
        registry=registry,
    )

    app = FastAPI(title="jgnas recommendation service", version=backend.version)

    app.add_middleware(_Observe, requests=requests, latency=latency, max_body=max_body)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, e: ServiceError):
        return _error(e.status, e.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        errors = [
            {
                "loc": [str(x) for x in err.get("loc", ())],
                "msg": str(err.get("msg")),
                "type": str(err.get("type")),
            }
            for err in e.errors()
        ]
        message = "; ".join(
            f"{'.'.join(x for x in err['loc'] if x != 'body') or 'body'}: {err['msg']}"
            for err in errors
        )
        return JSONResponse(status_code=422, content={"detail": message, "errors": errors})

    @app.get("/recommend")
    async def recommend(
        user: str,
        k: int = Query(10, ge=1, le=MAX_K),
        exclude_seen: bool = True,
        new_items: int = Query(0, ge=0, le=MAX_K),
    ):
        u = backend.user(user)
        items = backend.recommend([u], k, exclude_seen, new_items)[0]
        return JSONResponse(
            {"user": user, "k": k, "exclude_seen": exclude_seen, **_served(backend), "items": items}
        )

    @app.post("/recommend")
    async def recommend_batch(batch: Batch):
        if len(batch.users) > backend.max_batch:
            raise ServiceError(
                413, f"{len(batch.users)} users in one batch; at most {backend.max_batch}"
            )
        raw = [str(u) for u in batch.users]
        unknown = backend.unknown_users(raw)
        if unknown:
            raise ServiceError(404, f"unknown user(s) {unknown[:10]}")
        batch_users.observe(len(raw))
        users = [backend.user(r) for r in raw]
        lists = backend.recommend(users, batch.k, batch.exclude_seen, batch.new_items)
        results = [{"user": r, "items": x} for r, x in zip(raw, lists)]
        return JSONResponse(
            {
                "k": batch.k,
                "exclude_seen": batch.exclude_seen,
                **_served(backend),
                "results": results,
            }
        )

    @app.get("/similar")
    async def similar(item: str, k: int = Query(10, ge=1, le=MAX_K)):
        i = backend.item(item)
        items = backend.similar(i, k)
        return JSONResponse({"item": item, "k": k, **_served(backend), "items": items})

    @app.post("/items", status_code=201)
    def add_item(item: NewItem):
        fields = {}
        for key, value in (item.model_extra or {}).items():
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = ", ".join(value)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ServiceError(
                    422,
                    f"{key}: must be a string, a number or a list of strings, got {value!r:.60}",
                )
            fields[key] = str(value)
        out = backend.add_item(item.item_id, fields)
        added.inc()
        return out

    @app.get("/explain")
    def explain(user: str, item: str, top: int = Query(10, ge=1, le=100)):
        u, i = backend.user(user), backend.item(item)
        return backend.explain(u, i, top=top)

    @app.get("/healthz")
    async def healthz():
        return backend.health()

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class _Observe:
    """Plain ASGI middleware (cheaper than `@app.middleware`): counts and times every request by
    endpoint, method and status; refuses a body over `max_body` bytes (by its Content-Length)
    with 413; turns an unexpected exception into a JSON 500 (the server goes on serving)."""

    def __init__(self, app, requests, latency, max_body: int):
        self.app, self.requests, self.latency, self.max_body = app, requests, latency, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        t0 = time.perf_counter()
        status, started = 500, False

        async def send_observed(message):
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        length = dict(scope["headers"]).get(b"content-length", b"")
        try:
            if length.isdigit() and int(length) > self.max_body:
                body = f"request body of {int(length)} bytes is over {self.max_body}"
                await _error(413, body)(scope, receive, send_observed)
            else:
                await self.app(scope, receive, send_observed)
        except Exception as e:  # never let one request take the server down
            if started:
                raise
            logging.getLogger(__name__).exception("%s %s failed", scope["method"], path)
            await _error(500, f"internal error: {type(e).__name__}")(scope, receive, send_observed)
        finally:
            self.latency.labels(endpoint).observe(time.perf_counter() - t0)
            self.requests.labels(endpoint, scope["method"], str(status)).inc()


def _served(backend: Backend) -> dict[str, Any]:
    return {"model_version": backend.version, "search": "ann" if backend.ann else "exact"}


def _error(status: int, message: str):
    return JSONResponse(status_code=status, content={"detail": message})


# ---- the edge ---------------------------------------------------------------------------------------


def load_backend(
    path: str | pathlib.Path,
    *,
    ann: str = "auto",
    ann_threshold: int = ANN_THRESHOLD,
    max_batch: int = MAX_BATCH,
    warmup: bool = True,
    log: Callable[[str], None] | None = None,
) -> Backend:
    """A backend over a run directory (has best_model/) or an export folder (has manifest.json)."""
    path = pathlib.Path(path)
    kw = dict(ann=ann, ann_threshold=ann_threshold, max_batch=max_batch, warmup=warmup, log=log)
    if (path / "manifest.json").is_file():
        return Backend(export.read(path), None, **kw)
    if (path / "best_model").exists():
        winner = export.load_winner(path, log=log)
        return Backend(export.catalog_from_winner(winner), winner, **kw)
    raise DataError(f"{path}: neither a run directory (best_model/) nor an export (manifest.json)")


def run(
    path: str | pathlib.Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    ann: str = "auto",
    ann_threshold: int = ANN_THRESHOLD,
    max_batch: int = MAX_BATCH,
    log: Callable[[str], None] | None = None,
) -> None:
    """`jgnas serve PATH --host --port`: loads, warms up, then serves until interrupted."""
    import uvicorn

    backend = load_backend(path, ann=ann, ann_threshold=ann_threshold, max_batch=max_batch, log=log)
    if log is not None:
        log(
            f"serving {backend.info.get('describe')} (version {backend.version}): "
            f"{backend.n_users} users, {backend.n_items} items on http://{host}:{port}"
        )
    uvicorn.run(create_app(backend), host=host, port=port, log_level="warning", access_log=False)
