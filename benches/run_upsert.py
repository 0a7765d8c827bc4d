#!/usr/bin/env python3
"""Upsert throughput, 384-d Cosine, batches of 256, filesystem: qdrant-edge-py vs ours natively,
same vectors, same run. Writes the section "Upsert" of BENCHMARKS.md.

    .venv/bin/python benches/run_upsert.py [--points 50000] [--dim 384] [--batch 256]
"""
import argparse
import json
import os
import shutil
import subprocess
import time

import numpy as np
import qdrant_edge as q

from bench_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    work = os.path.join(ROOT, "target", "bench", f"upsert-{a.points}x{a.dim}")
    os.makedirs(work, exist_ok=True)
    data = np.random.default_rng(5).standard_normal((a.points, a.dim), dtype=np.float32)
    vec_path = os.path.join(work, "vectors.f32")
    data.astype("<f4").tofile(vec_path)

    # qdrant-edge-py
    py_dir = os.path.join(work, "edge-py")
    shutil.rmtree(py_dir, ignore_errors=True)
    s = q.EdgeShard.create(py_dir, q.EdgeConfig(vectors=q.EdgeVectorParams(size=a.dim, distance=q.Distance.Cosine)))
    t0 = time.perf_counter()
    for start in range(0, a.points, a.batch):
        pts = [q.Point(id=i, vector=data[i].tolist(), payload={"n": i % 100}) for i in range(start, min(a.points, start + a.batch))]
        s.update(q.UpdateOperation.upsert_points(pts))
    py_upsert = time.perf_counter() - t0
    t1 = time.perf_counter()
    s.flush()
    py_flush = time.perf_counter() - t1
    t2 = time.perf_counter()
    s.optimize()
    py_opt = time.perf_counter() - t2
    s.close()

    # ours
    out = os.path.join(work, "ours.json")
    subprocess.run(["cargo", "bench", "--bench", "upsert", "--", os.path.join(work, "ours"), vec_path, str(a.dim), str(a.batch), out],
                   cwd=ROOT, check=True)
    ours = json.load(open(out))
    n = a.points
    lines = [
        "## Upsert",
        "",
        f"{n} points x {a.dim} Cosine f32 with a small payload, batches of {a.batch} (one WAL entry each), filesystem, same vectors, same run. "
        "Command: `.venv/bin/python benches/run_upsert.py`. Times include building the points from arrays in each language: Python objects for qdrant-edge-py, the typed Rust update API for ours.",
        "",
        "| engine | upsert points/s | flush s | optimize s |",
        "|---|---|---|---|",
        f"| qdrant-edge-py 0.9.0 | {n / py_upsert:,.0f} | {py_flush:.2f} | {py_opt:.1f} (builds HNSW) |",
        f"| qdrant-edge-wasm (native) | {n / ours['upsert_s']:,.0f} | {ours['flush_s']:.2f} | {ours['optimize_s']:.1f} (plain index: HNSW building not implemented yet) |",
        "",
        f"Ratio of upsert throughput ours / qdrant-edge-py: **{(n / ours['upsert_s']) / (n / py_upsert):.2f}x**. "
        "Ours syncs the WAL before acknowledging each batch; qdrant-edge 0.9.0 appends to its WAL without a sync and makes it durable at flush.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    write_section(ROOT, "Upsert", section)


if __name__ == "__main__":
    main()
