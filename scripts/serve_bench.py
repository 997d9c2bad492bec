"""Serving benchmark: /recommend throughput and latency over loopback, and exact vs HNSW search.

Run:   python scripts/serve_bench.py [--run RUN_DIR] [--requests 2000] [--duration 20]
Needs: the serve extra (fastapi, uvicorn, httpx, prometheus-client, pyarrow, faiss-cpu). RUN_DIR:
       a finished ml-100k run (e.g. `jgnas search`); without it only the synthetic catalog runs.
Time:  about 4 minutes on 2 CPU cores (building the Gowalla-size export and HNSW graph included).

Targets, each served by `jgnas.service.run` in its own process on 127.0.0.1 (a free port):
- the ml-100k run directory (exact search);
- a synthetic Gowalla-size export (29,858 users, 40,981 items, d = 64, `jgnas.ann.synthetic_catalog`,
  written by `jgnas.export.write`), exact and with the HNSW index (`ann=on`).
Each load is bounded: `--requests` requests or `--duration` seconds, whichever ends first, from
`--concurrency` client connections (httpx, asyncio), for GET /recommend (one user) and POST
/recommend (`--batch` users). Then `jgnas.ann.compare` measures recall@k of the HNSW index against
exact search and the per-query latency of both, in process.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

from jgnas import ann, export


def serve(path, ann_mode):
    """A `jgnas.service.run` process on a free loopback port, once /healthz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"from jgnas import service; service.run({str(path)!r}, '127.0.0.1', {port}, ann={ann_mode!r})"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    url, t0 = f"http://127.0.0.1:{port}", time.monotonic()
    while True:
        if proc.poll() is not None or time.monotonic() - t0 > 600:
            log.seek(0)
            raise SystemExit(f"server for {path} did not start:\n{log.read().decode()[-3000:]}")
        try:
            httpx.get(url + "/healthz", timeout=5).raise_for_status()
            return proc, url, time.monotonic() - t0
        except httpx.HTTPError:
            time.sleep(0.5)


async def load(url, make_request, n, duration, concurrency):
    """Sends up to n requests for at most `duration` s; returns (latencies in s, wall time)."""
    latencies, sent, start = [], 0, time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker(rng):
            nonlocal sent
            while sent < n and time.perf_counter() - start < duration:
                sent += 1
                method, path, kw = make_request(rng)
                t = time.perf_counter()
                r = await client.request(method, path, **kw)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(worker(np.random.default_rng(i)) for i in range(concurrency)))
    return np.array(latencies), time.perf_counter() - start


def bench_target(name, path, ann_mode, user_ids, args):
    proc, url, startup = serve(path, ann_mode)
    rows = []
    try:
        single = lambda rng: (
            "GET",
            "/recommend",
            {"params": {"user": str(rng.choice(user_ids)), "k": args.k}},
        )
        batch = lambda rng: (
            "POST",
            "/recommend",
            {"json": {"users": [str(u) for u in rng.choice(user_ids, args.batch)], "k": args.k}},
        )
        for kind, make, per in (("single", single, 1), (f"batch {args.batch}", batch, args.batch)):
            asyncio.run(load(url, make, 50, 30, 2))  # warm the connections and caches
            lat, wall = asyncio.run(load(url, make, args.requests, args.duration, args.concurrency))
            p50, p95, p99 = np.percentile(lat, [50, 95, 99]) * 1e3
            rows.append(
                {
                    "target": name,
                    "request": kind,
                    "requests": len(lat),
                    "seconds": round(wall, 1),
                    "qps": len(lat) / wall,
                    "users_per_s": len(lat) * per / wall,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "p99_ms": p99,
                    "startup_s": startup,
                }
            )
            print(
                f"| {name} | {kind} | {len(lat)} | {len(lat) / wall:.0f} | {len(lat) * per / wall:.0f} | {p50:.1f} | {p95:.1f} | {p99:.1f} |",
                flush=True,
            )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", help="a finished ml-100k run directory")
    ap.add_argument("--requests", type=int, default=2000, help="most requests per load")
    ap.add_argument("--duration", type=float, default=20.0, help="most seconds per load")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("--out", help="write every figure as JSON here")
    args = ap.parse_args(argv)
    print(
        f"cpu cores: {os.cpu_count()}; {args.concurrency} connections; at most {args.requests} requests or {args.duration:g} s per load"
    )
    out = {"http": [], "ann": []}
    print(
        "| target | request | requests | req/s | users/s | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|---|---|"
    )
    catalogs = []
    if args.run:
        cat = export.catalog_from_winner(export.load_winner(args.run))
        out["http"] += bench_target("ml-100k", args.run, "off", cat.user_ids, args)
        catalogs.append(("ml-100k", cat))
    with tempfile.TemporaryDirectory() as tmp:
        cat = ann.synthetic_catalog()
        t0 = time.perf_counter()
        export.write(cat, tmp, k=args.k)
        out["export_seconds"] = time.perf_counter() - t0
        out["http"] += bench_target("gowalla-size, exact", tmp, "off", cat.user_ids, args)
        out["http"] += bench_target("gowalla-size, HNSW", tmp, "on", cat.user_ids, args)
        catalogs.append(("gowalla-size", cat))
    print(
        f"\nexport of the Gowalla-size catalog (batch top-{args.k} of every user included): {out['export_seconds']:.1f} s"
    )
    print(f"\n| catalog | search | recall@{args.k} | ms/query |\n|---|---|---|---|")
    for name, cat in catalogs:
        c = ann.compare(cat, k=args.k, threads=2)
        print(f"| {name} | exact (jitted) | 1.000 | {c.exact_ms:.2f} |")
        for r in c.rows:
            print(f"| {name} | HNSW M=32, ef={r['ef']} | {r['recall']:.3f} | {r['ms']:.2f} |")
        out["ann"].append(
            {
                "catalog": name,
                "exact_ms": c.exact_ms,
                "build_s": c.build_seconds,
                "rows": c.rows,
                "queries": c.queries,
            }
        )
        print(
            f"({name}: HNSW built in {c.build_seconds:.1f} s; {c.queries} queries, seen items excluded)"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2, default=float)


if __name__ == "__main__":
    main()
