#!/usr/bin/env python3
"""Exact search, 50k x 384 Cosine: qdrant-edge-py (exact=true) vs ours natively, same shard,
same queries, same run. Writes the table into BENCHMARKS.md (section "Exact search").

    .venv/bin/python benches/run_exact.py [--points 50000] [--dim 384] [--queries 200]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import qdrant_edge as q

from bench_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--limit", type=int, default=10)
    a = ap.parse_args()
    work = os.path.join(ROOT, "target", "bench", f"exact-{a.points}x{a.dim}")
    shard_dir = os.path.join(work, "shard")
    rng = np.random.default_rng(7)
    if not os.path.isdir(os.path.join(shard_dir, "segments")):
        os.makedirs(shard_dir, exist_ok=True)
        cfg = q.EdgeConfig(vectors={"": q.EdgeVectorParams(size=a.dim, distance=q.Distance.Cosine)})
        s = q.EdgeShard.create(shard_dir, cfg)
        data = rng.standard_normal((a.points, a.dim), dtype=np.float32)
        for start in range(0, a.points, 1000):
            pts = [q.Point(id=i, vector=data[i].tolist(), payload={"n": i % 100}) for i in range(start, min(a.points, start + 1000))]
            s.update(q.UpdateOperation.upsert_points(pts))
        s.optimize()
        s.flush()
        s.close()
    queries = np.random.default_rng(11).standard_normal((a.queries, a.dim), dtype=np.float32)
    bodies = [{"query": v.tolist(), "limit": a.limit, "params": {"exact": True}} for v in queries]
    qpath = os.path.join(work, "queries.json")
    json.dump(bodies, open(qpath, "w"))

    # qdrant-edge-py
    s = q.EdgeShard.load(shard_dir)
    reqs = [q.QueryRequest(query=q.Query.Nearest(v.tolist()), limit=a.limit, params=q.SearchParams(exact=True)) for v in queries]
    for r in reqs[:5]:
        s.query(r)
    py_lat, py_ids = [], []
    t_all = time.perf_counter()
    for r in reqs:
        t = time.perf_counter()
        res = s.query(r)
        py_lat.append((time.perf_counter() - t) * 1e3)
        py_ids.append([p.id for p in res])
    py_total = time.perf_counter() - t_all
    s.close()

    # ours, native
    out = os.path.join(work, "ours.json")
    subprocess.run(["cargo", "bench", "--bench", "exact_search", "--", shard_dir, qpath, out], cwd=ROOT, check=True)
    ours = json.load(open(out))
    same = sum(1 for x, y in zip(py_ids, ours["ids"]) if x == y)

    rows = [
        ("qdrant-edge-py 0.9.0 (native, exact)", py_lat, py_total),
        ("qdrant-edge-wasm (native, exact)", ours["latencies_ms"], ours["total_s"]),
    ]
    lines = [
        "## Exact search",
        "",
        f"{a.points} x {a.dim} Cosine f32 (random normal vectors), {a.queries} queries, limit {a.limit}, same shard (built by qdrant-edge-py, optimized), same run; ours runs on one thread, qdrant-edge-py with its default search threads. "
        f"Identical id lists for {same}/{a.queries} queries. Command: `.venv/bin/python benches/run_exact.py`.",
        "",
        "| engine | p50 ms | p99 ms | QPS |",
        "|---|---|---|---|",
    ]
    for name, lat, total in rows:
        lines.append(f"| {name} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {len(lat) / total:.1f} |")
    ratio = pct(ours["latencies_ms"], 50) / pct(py_lat, 50)
    lines += ["", f"Ratio ours / qdrant-edge-py at p50: **{ratio:.2f}x**. Shard load time (ours): {ours['load_ms']:.0f} ms.", ""]
    section = "\n".join(lines)
    print(section)
    write_section(ROOT, "Exact search", section)


if __name__ == "__main__":
    main()
