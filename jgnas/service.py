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

The serving state is `jgnas.backend.Backend`. Scoring is `jgnas.export.topk_block`: exact, jitted, with the seen items excluded inside the
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

__all__ = ["ANN_THRESHOLD", "Backend", "ServiceError", "create_app", "load_backend", "run"]

import logging
import pathlib
import time
from collections.abc import Callable
from typing import Any

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
from jgnas.ann import ANN_THRESHOLD
from jgnas.backend import (
    ENDPOINTS,
    LATENCY_BUCKETS,
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_K,
    Backend,
    ServiceError,
)
from jgnas.data import DataError


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
