"""The HTTP service (jgnas.service), explanations (jgnas.explain) and the ANN index (jgnas.ann).

Two run directories, each built once for the module:
- `run_dir`: `jgnas search` on configs/tiny.yaml, as the default job makes it (an ID-only winner).
- `text_run`: a LightGCN over text features only, trained here on a small catalogue with two
  tastes (action fans, comedy fans) and encoded by the tiny random BERT of tests/text_utils.py.
The real server runs on a free loopback port, in a thread, driven by httpx.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import yaml
from conftest import CONFIGS
from text_utils import TINY, write_model

from jgnas import config as config_lib
from jgnas import experiment, explain, export, serve, service
from jgnas import model as model_lib
from jgnas.ann import AnnIndex, recall_at_k
from jgnas.cli import main
from jgnas.graph import dense
from jgnas.train import init_member

ACTION = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
COMEDY = ["alpha", "beta", "gamma", "delta", "cat", "dog", "word", "number", "sentence", "writer"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    # Regularized evolution with its uniform phase as long as the queue (the paper's schedule,
    # initial_size = history = 4 x 4): the tiny search's winner these tests explain is then the
    # nonlinear gcn/gat arch they were written for (gradient x input).
    argv = ["search", "--config", str(CONFIGS / "tiny.yaml"), "--out", str(out), "-q",
            "--set", "search.strategy_kwargs={initial_size: 16}"]  # fmt: skip
    assert main(argv) == 0
    return out


def _write_shop(folder):
    """40 users, 20 items: users 1-20 like action films, users 21-40 comedies (one stray each)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    items = ["item_id:token\ttitle:token_seq\tyear:token\tgenres:token_seq"]
    items += [f"a{i}\tHeat {w}\t1995\tAction Crime" for i, w in enumerate(ACTION)]
    items += [f"c{i}\tToy Story {w}\t2001\tComedy Romance" for i, w in enumerate(COMEDY)]
    (folder / "shop.item").write_text("\n".join(items) + "\n")
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, 41):
        mine, other = ("a", "c") if u <= 20 else ("c", "a")
        picks = [f"{mine}{i}" for i in rng.choice(10, 6, replace=False)]
        picks.append(f"{other}{rng.integers(10)}")
        rows += [f"{u}\t{it}\t1\t{t}" for t, it in enumerate(picks)]
    (folder / "shop.inter").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A finished run directory whose winner is `2L[lightgcn, lightgcn] mean d16 ... text`."""
    root = tmp_path_factory.mktemp("text_run")
    _write_shop(root / "shop")
    bert = write_model(root / "bert", TINY)
    cfg_dict = {
        "name": "shop",
        "data": {"name": "shop", "path": str(root / "shop"), "split": "ratio", "seed": 0},
        "text": {
            "enabled": True,
            "model_path": str(bert),
            "user_template": None,
            "cache_dir": str(root / "cache"),
        },
        "space": {"max_layers": 2, "dims": [16], "ops": ["lightgcn", "gcn"]},
        "train": {"epochs": 1, "batch_size": 64, "ks": [5, 10], "metric_k": 10, "eval_block": 16},
        "final": {"seeds": 1, "epochs": 60, "eval_every": 0, "baselines": []},
    }
    run = root / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg_dict))
    cfg = config_lib.load(run / "config.yaml")
    ctx = experiment.prepare(cfg, log=experiment.quiet)
    arch = ctx.space.from_dict(
        {
            "depth": 2,
            "combine": "mean",
            "dim": 16,
            "dropout": 0.0,
            "lr": 0.01,
            "l2": 0.0001,
            "features": "text",
            "layers": [{"op": "lightgcn"}, {"op": "lightgcn"}],
        }
    )
    retrained = experiment.retrain_and_test(
        ctx,
        [("shop", arch)],
        seeds=1,
        train_cfg=experiment.final_train_config(cfg.train, cfg.final),
        log=experiment.quiet,
    )
    params = experiment.best_member_params(retrained, 0, 1)
    with contextlib.closing(ocp.StandardCheckpointer()) as ckpt:
        ckpt.save((run / "best_model").absolute(), params, force=True)
        ckpt.wait_until_finished()
    (run / "best_arch.json").write_text(ctx.space.to_json(arch))
    return run


@pytest.fixture(scope="module")
def backend(run_dir):
    return service.load_backend(run_dir, max_batch=8)


@pytest.fixture(scope="module")
def text_backend(text_run):
    return service.load_backend(text_run, max_batch=8)


@contextlib.contextmanager
def serving(backend):
    """The real uvicorn server on a free loopback port (bound here: no race for the port)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(service.create_app(backend), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _metric(text: str, name: str, **labels) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return 0.0


# ---- the service over HTTP ----------------------------------------------------------------------------


def test_every_endpoint_over_http(run_dir, backend):
    rec = serve.load(run_dir)
    users = [str(u) for u in rec.dataset.user_ids[:3]]
    with serving(backend) as http:
        r = http.get("/recommend", params={"user": users[0], "k": 5})
        assert r.status_code == 200
        body = r.json()
        expect = rec.recommend(users[0], k=5)
        assert [x["item"] for x in body["items"]] == [x["item"] for x in expect]
        np.testing.assert_allclose(
            [x["score"] for x in body["items"]], [x["score"] for x in expect], rtol=1e-5
        )
        assert body["model_version"] == backend.version and body["search"] == "exact"

        r = http.get("/recommend", params={"user": users[0], "k": 5, "exclude_seen": "false"})
        scores = rec.item_emb @ rec.user_emb[0]
        assert [x["item"] for x in r.json()["items"]] == [
            str(rec.dataset.item_ids[i]) for i in np.argsort(-scores, kind="stable")[:5]
        ]

        r = http.post("/recommend", json={"users": users, "k": 4})
        assert r.status_code == 200
        for u, res in zip(users, r.json()["results"]):
            assert res["user"] == u
            assert [x["item"] for x in res["items"]] == [x["item"] for x in rec.recommend(u, k=4)]

        item = str(rec.dataset.item_ids[3])
        r = http.get("/similar", params={"item": item, "k": 3})
        unit = rec.item_emb / np.linalg.norm(rec.item_emb, axis=1, keepdims=True)
        cos = unit @ unit[3]
        cos[3] = -np.inf
        assert [x["item"] for x in r.json()["items"]] == [
            str(rec.dataset.item_ids[i]) for i in np.argsort(-cos, kind="stable")[:3]
        ]

        top_item = body["items"][0]["item"]
        r = http.get("/explain", params={"user": users[0], "item": top_item, "top": 5})
        assert r.status_code == 200
        ex = r.json()
        assert ex["method"] == explain.GRAD_X_INPUT and ex["exact"] is False
        assert ex["score"] == pytest.approx(body["items"][0]["score"], rel=1e-5)
        assert len(ex["user_side"]["top"]) == 5 and len(ex["item_side"]["top"]) == 5
        seen = set(rec.dataset.train.items[rec.dataset.train.users == 0].astype(str))
        assert {x["id"] for x in ex["interactions"]["top"]} <= {
            str(rec.dataset.item_ids[int(i)]) for i in seen
        }

        health = http.get("/healthz").json()
        assert health["status"] == "ok" and health["items"] == len(rec.dataset.item_ids)

        text = http.get("/metrics").text
        assert (
            _metric(text, "jgnas_requests_total", endpoint="/recommend", method="GET", status="200")
            == 2
        )
        assert (
            _metric(
                text, "jgnas_requests_total", endpoint="/recommend", method="POST", status="200"
            )
            == 1
        )
        assert _metric(text, "jgnas_request_duration_seconds_count", endpoint="/explain") == 1
        assert _metric(text, "jgnas_catalog_items") == len(rec.dataset.item_ids)
        assert _metric(text, "jgnas_catalog_users") == len(rec.dataset.user_ids)
        info = [ln for ln in text.splitlines() if ln.startswith("jgnas_model_info{")]
        assert len(info) == 1 and f'version="{backend.version}"' in info[0]
        assert info[0].endswith(" 1.0")


BAD = [
    ("get", "/recommend", {"params": {"user": "no-such-user"}}, 404, "unknown user"),
    ("get", "/similar", {"params": {"item": "no-such-item"}}, 404, "unknown item"),
    ("get", "/explain", {"params": {"user": "0", "item": "no-such-item"}}, 404, "unknown item"),
    ("get", "/recommend", {"params": {"user": "0", "k": 0}}, 422, "k"),
    ("get", "/recommend", {"params": {"user": "0", "k": "ten"}}, 422, "k"),
    ("get", "/recommend", {"params": {"user": "0", "k": 10**6}}, 422, "k"),
    ("get", "/recommend", {"params": {"user": "0", "exclude_seen": "maybe"}}, 422, "exclude_seen"),
    ("get", "/recommend", {}, 422, "user"),
    (
        "post",
        "/recommend",
        {"content": b'{"users": ["0",', "headers": {"content-type": "application/json"}},
        422,
        "JSON",
    ),
    ("post", "/recommend", {"json": {"users": "0"}}, 422, "users"),
    ("post", "/recommend", {"json": {"users": [["0"]]}}, 422, "users"),
    ("post", "/recommend", {"json": {"users": ["0"], "k": "5"}}, 422, "k"),
    ("post", "/recommend", {"json": {"users": ["0"], "kk": 5}}, 422, "kk"),
    ("post", "/recommend", {"json": {"users": []}}, 422, "users"),
    ("post", "/recommend", {"json": {"users": ["0"], "new_items": -1}}, 422, "new_items"),
    ("post", "/recommend", {"json": {"users": ["0", "no-such-user"]}}, 404, "no-such-user"),
    ("post", "/recommend", {"json": {"users": ["0"] * 9}}, 413, "at most 8"),
    (
        "post",
        "/recommend",
        {"content": b" " * (2 << 20), "headers": {"content-type": "application/json"}},
        413,
        "bytes",
    ),
    ("post", "/items", {"json": {"item_id": "new", "title": "Heat"}}, 409, "ID embeddings only"),
    ("post", "/items", {"json": {"title": "Heat"}}, 422, "item_id"),
    ("get", "/nowhere", {}, 404, "Not Found"),
]


def test_bad_requests_are_json_errors_and_change_nothing(backend):
    with serving(backend) as http:
        before = http.get("/recommend", params={"user": "0", "k": 10}).json()
        for method, path, kwargs, status, needle in BAD:
            r = getattr(http, method)(path, **kwargs)
            assert r.status_code == status, (path, kwargs, r.text)
            assert needle in r.json()["detail"], (path, r.json())
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/recommend", params={"user": "0", "k": 10}).json() == before
        text = http.get("/metrics").text
        for status in ("404", "413", "422"):
            assert (
                _metric(
                    text,
                    "jgnas_requests_total",
                    endpoint="/recommend",
                    method="POST",
                    status=status,
                )
                >= 1
            )
        assert (
            _metric(text, "jgnas_requests_total", endpoint="other", method="GET", status="404") == 1
        )
        assert _metric(text, "jgnas_catalog_items") == backend.n_items


def test_an_internal_error_is_a_json_500_and_the_server_goes_on(backend, monkeypatch):
    with serving(backend) as http:
        monkeypatch.setattr(backend, "similar", lambda i, k: 1 / 0)
        r = http.get("/similar", params={"item": backend.item_ids[0]})
        assert r.status_code == 500 and r.json()["detail"] == "internal error: ZeroDivisionError"
        monkeypatch.undo()
        assert http.get("/similar", params={"item": backend.item_ids[0]}).status_code == 200
        text = http.get("/metrics").text
        assert (
            _metric(text, "jgnas_requests_total", endpoint="/similar", method="GET", status="500")
            == 1
        )


def test_new_item_from_text_is_recommended_at_once(text_backend):
    b = text_backend
    ds = b.winner.ctx.dataset
    fan = {str(u): "a" if int(u) <= 20 else "c" for u in ds.user_ids}  # raw id -> taste
    with serving(b) as http:
        n0 = http.get("/healthz").json()["items"]
        r = http.post(
            "/items",
            json={
                "item_id": "a-new",
                "title": "Heat Eleven",
                "year": 1996,
                "genres": ["Action", "Crime"],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["text"] == "Heat Eleven (1996). Genres: Action, Crime."
        assert r.json()["catalog_size"] == n0 + 1
        r = http.post(
            "/items",
            json={
                "item_id": "c-new",
                "title": "Toy Story Eleven",
                "year": "2001",
                "genres": "Comedy, Romance",
            },
        )
        assert r.status_code == 201, r.text

        # At once, for every user: one place kept for new items goes to the one that fits.
        users = list(fan)
        results = []
        for start in range(0, len(users), 8):  # max_batch = 8
            r = http.post(
                "/recommend", json={"users": users[start : start + 8], "k": 5, "new_items": 1}
            )
            results += r.json()["results"]
        hits = 0
        for res in results:
            new = [x["item"] for x in res["items"] if x["new"]]
            assert len(new) == 1 and len(res["items"]) == 5
            hits += new[0] == f"{fan[res['user']]}-new"
        assert hits >= 0.9 * len(users), hits
        # Without reserved places the scores are the same: the fitting new item still ranks
        # above the other new one, but warm items (with propagated vectors) come first.
        full = http.get("/recommend", params={"user": users[0], "k": 1000}).json()["items"]
        ranked = [x["item"] for x in full]
        assert ranked.index("a-new") < ranked.index("c-new")
        similar = http.get("/similar", params={"item": "a-new", "k": 5}).json()["items"]
        assert len(similar) == 5 and "a-new" not in [x["item"] for x in similar]

        ex = http.get("/explain", params={"user": users[0], "item": "a-new"}).json()
        assert ex["method"] == explain.EXACT_PATHS
        assert ex["user_side"]["sum"] == pytest.approx(ex["score"], abs=1e-4)
        assert ex["score"] == pytest.approx(full[ranked.index("a-new")]["score"], rel=1e-5)

        assert http.post("/items", json={"item_id": "a-new", "title": "Heat"}).status_code == 409
        assert http.post("/items", json={"item_id": "x", "director": "nobody"}).status_code == 422
        r = http.post("/items", json={"item_id": "x", "title": {"nested": 1}})
        assert r.status_code == 422 and "title" in r.json()["detail"]
        text = http.get("/metrics").text
        assert _metric(text, "jgnas_catalog_items") == n0 + 2
        assert _metric(text, "jgnas_items_added_total") == 2


def test_catalog_grows_past_its_buffer(text_run):
    b = service.load_backend(text_run, warmup=False)
    n0, cap = b.n_items, len(b._items)
    before = b.recommend([0], 5)
    for j in range(cap - n0 + 1):
        b.add_item(f"g{j}", {"title": f"Toy Story {COMEDY[j % 10]}", "genres": "Comedy"})
    assert len(b._items) > cap and b.n_items == cap + 1
    assert b.item(f"g{cap - n0}") == cap
    vec = b._items[cap]
    ranked = b.recommend([0], b.n_items, exclude_seen=False)[0]
    assert {x["item"] for x in ranked} == set(b.item_ids)
    np.testing.assert_allclose(
        [x["score"] for x in ranked if x["item"] == f"g{cap - n0}"],
        [b.user_emb[0] @ vec],
        rtol=1e-5,
    )
    assert b.recommend([0], 5)[0][0]["item"] in {x["item"] for x in before[0]} | set(
        b.item_ids[n0:]
    )


def test_serving_an_export_folder(run_dir, backend, tmp_path):
    export.main(run_dir, tmp_path / "exp", k=5)
    b = service.load_backend(tmp_path / "exp", max_batch=8)
    assert b.version == backend.version and b.winner is None
    assert b.recommend([0, 1, 2], 7) == backend.recommend([0, 1, 2], 7)
    with pytest.raises(service.ServiceError, match="run directory"):
        b.explain(0, 0)
    with pytest.raises(service.ServiceError, match="run directory"):
        b.add_item("new", {"title": "x"})


def test_ann_backend_agrees_with_exact(run_dir, backend):
    b = service.Backend(export.catalog_from_winner(backend.winner), ann="on", warmup=False)
    assert b.health()["search"] == "ann"
    users = list(range(backend.n_users))
    exact = backend.recommend(users, 10)
    approx = b.recommend(users, 10)
    assert (
        recall_at_k(
            np.array([[x["item"] for x in r] for r in approx]),
            np.array([[x["item"] for x in r] for r in exact]),
        )
        >= 0.99
    )
    for u, rows in zip(users, approx):
        seen = {str(i) for i in b._seen_items[b._seen_indptr[u] : b._seen_indptr[u + 1]]}
        assert not seen & {x["item"] for x in rows}


def test_ann_index_excludes_and_adds():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)).astype(np.float32)
    index = AnnIndex(x, m=8, ef_search=500)
    q = rng.normal(size=8).astype(np.float32)
    exact = np.argsort(-(x @ q), kind="stable")[:10]
    _, ids = index.search(q, 10, exclude=exact[:3])
    assert not set(ids[0]) & set(exact[:3].tolist())
    assert recall_at_k(ids, exact[None, 3:13]) >= 0.9
    index.add(q[None] * 100)
    assert index.search(q, 1)[1][0, 0] == 500


@pytest.mark.slow
def test_run_serves_until_interrupted(run_dir):
    """`service.run` (what `jgnas serve` calls) in its own process: up, answering, stops on SIGINT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"from jgnas import service; service.run({str(run_dir)!r}, '127.0.0.1', {port}, max_batch=4)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "no answer within 180 s"
                time.sleep(0.5)
        assert r.json()["status"] == "ok"
        assert (
            httpx.get(f"http://127.0.0.1:{port}/recommend", params={"user": "0"}).status_code == 200
        )
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


# ---- explanations -------------------------------------------------------------------------------------


def test_exact_decomposition_for_a_linear_arch(text_backend):
    ex = text_backend.explainer
    w = ex.winner
    assert ex.method == explain.EXACT_PATHS
    g, n_users = ex.inputs.graph, ex.n_users
    sym = dense(g.sym, g.n_node)
    transfer = sum(np.linalg.matrix_power(sym, l) for l in range(3)) / 3  # 2 layers, mean
    for u, i in [(0, 0), (5, 12), (30, 3)]:
        score = float(w.user_emb[u] @ w.item_emb[i])
        s, c_u, c_i = ex.contributions(u, n_users + i)
        assert s == pytest.approx(score, rel=1e-6)
        assert c_u.sum() == pytest.approx(score, abs=1e-4)
        assert c_i.sum() == pytest.approx(score, abs=1e-4)
        np.testing.assert_allclose(ex.transfer_row(u), transfer[u], atol=1e-6)
        # The autodiff VJP (the linear-Jacobian method) gives the same split.
        _, a_u, a_i = ex.contributions(u, n_users + i, via="autodiff")
        np.testing.assert_allclose(a_u, c_u, atol=1e-5)
        np.testing.assert_allclose(a_i, c_i, atol=1e-5)

    label = lambda n: {"kind": "user" if n < n_users else "item", "id": str(n)}
    out = ex.explain(0, n_users + 1, label, top=20)
    seen = set((ex._adj[0].indices).tolist())
    assert {int(x["id"]) for x in out["interactions"]["top"]} <= seen
    assert out["interactions"]["count"] == len(seen)
    h0 = ex._h0
    assert out["user_side"]["top"]
    for row in out["user_side"]["top"]:
        assert row["walks"]
        if row["interaction"]:  # 2 layers, bipartite: the one walk from an interaction is the edge
            (walk,) = row["walks"]
            assert walk["length"] == 1
            assert walk["contribution"] == pytest.approx(row["contribution"], rel=1e-6)
        for walk in row["walks"]:
            path = [int(p.split(":")[1]) for p in walk["path"]]
            assert [p.split(":")[0] for p in walk["path"]] == [label(n)["kind"] for n in path]
            assert path[0] == int(row["id"]) and path[-1] == 0
            weight = np.prod([sym[b, a] for a, b in zip(path, path[1:])]) / 3
            assert walk["weight"] == pytest.approx(weight, rel=1e-5)
            dot = float(h0[path[0]] @ w.item_emb[1, : h0.shape[1]])  # mean: the first d columns
            assert walk["contribution"] == pytest.approx(weight * dot, rel=1e-4, abs=1e-9)
            assert walk["length"] == len(path) - 1 >= row["hops"]


def _with_arch(w, arch_dict, seed=0):
    """The winner's data and graph with another arch and random parameters."""
    space = w.ctx.space
    arch = space.from_dict(arch_dict)
    params = init_member(jax.random.key(seed), space, w.ctx.data.inputs)
    params = jax.tree.map(np.asarray, params)
    user, item = export._embeddings_fn(space)(
        params, jax.tree.map(jnp.asarray, arch), w.ctx.data.inputs
    )
    return export.Winner(
        w.run_dir,
        w.ctx,
        arch,
        params,
        np.asarray(user),
        np.asarray(item),
        space.describe(arch),
        "test",
    )


def _directional(w, u, i_vec):
    """d/dα [h_u(α h0) · h_i] at α = 1: the derivative along one scalar (the explainer takes a
    VJP per node and sums; the CSR kernel has no forward mode, so this is jax.grad too)."""
    space, inputs = w.ctx.space, w.ctx.data.inputs
    arch = jax.tree.map(jnp.asarray, w.arch)

    def f(alpha):
        p = dict(w.params, emb=alpha * w.params["emb"])
        user, _ = model_lib.embeddings(p, arch, inputs, space=space)
        return user[u] @ i_vec

    return float(jax.grad(f)(1.0))


def test_gradient_x_input_for_nonlinear_archs(backend):
    w = backend.winner
    ex = backend.explainer
    assert ex.method == explain.GRAD_X_INPUT  # gcn/elu, gat/leaky_relu: not linear
    n_users = ex.n_users
    for u, i in [(0, 1), (7, 40)]:
        score, c_u, c_i = ex.contributions(u, n_users + i)
        assert c_u.sum() == pytest.approx(_directional(w, u, w.item_emb[i]), rel=1e-3, abs=1e-5)
        assert score == pytest.approx(float(w.user_emb[u] @ w.item_emb[i]), rel=1e-6)
    # A positively homogeneous model (linear ops, relu, leaky_relu): the sum is the score.
    relu = _with_arch(
        w,
        {
            "depth": 2,
            "combine": "mean",
            "dim": 16,
            "dropout": 0.0,
            "lr": 0.01,
            "l2": 0.0,
            "features": "id",
            "layers": [
                {"op": "gcn", "transform": "linear", "act": "relu"},
                {"op": "lightgcn", "act": "leaky_relu", "residual": True},
            ],
        },
    )
    ex2 = explain.Explainer(relu)
    assert ex2.method == explain.GRAD_X_INPUT
    score, c_u, c_i = ex2.contributions(3, n_users + 5)
    assert c_u.sum() == pytest.approx(score, rel=1e-4, abs=1e-6)
    assert c_i.sum() == pytest.approx(score, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "layers, combine, method",
    [
        ([{"op": "lightgcn"}, {"op": "gcn", "residual": True}], "learned", explain.EXACT_PATHS),
        ([{"op": "gcn", "transform": "linear"}], "sum", explain.EXACT_LINEAR),
        ([{"op": "lightgcn"}, {"op": "lightgcn"}], "concat", explain.EXACT_LINEAR),
        ([{"op": "gat"}], "mean", explain.GRAD_X_INPUT),
        ([], "last", explain.EXACT_PATHS),
    ],
)
def test_linear_archs_are_exact(backend, layers, combine, method):
    w = _with_arch(
        backend.winner,
        {
            "depth": len(layers),
            "combine": combine,
            "dim": 16,
            "dropout": 0.0,
            "lr": 0.01,
            "l2": 0.0,
            "features": "id",
            "layers": layers,
        },
    )
    ex = explain.Explainer(w)
    assert ex.method == method
    score, c_u, c_i = ex.contributions(2, ex.n_users + 9)
    if method != explain.GRAD_X_INPUT:
        assert c_u.sum() == pytest.approx(score, abs=1e-4)
        assert c_i.sum() == pytest.approx(score, abs=1e-4)
    if method == explain.EXACT_PATHS:
        _, a_u, a_i = ex.contributions(2, ex.n_users + 9, via="autodiff")
        np.testing.assert_allclose(a_u, c_u, atol=1e-5)


def test_metrics_are_prometheus_text(backend):
    from prometheus_client.parser import text_string_to_metric_families

    with serving(backend) as http:
        http.get("/healthz")
        text = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["jgnas_requests"].type == "counter"
    assert families["jgnas_request_duration_seconds"].type == "histogram"
    assert {"jgnas_model_info", "jgnas_catalog_items", "jgnas_catalog_users"} <= set(families)
    assert json.loads(json.dumps(backend.health()))["model_version"] == backend.version
