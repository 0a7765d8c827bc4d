#!/usr/bin/env python3
"""HNSW graph build: our `optimize` against qdrant-edge-py's on the same shard, then the recall of
both graphs searched by qdrant-edge-py. Writes the subsection "Graph build" of BENCHMARKS.md.

    .venv/bin/python benches/run_hnsw_build.py [--data minilm|synthetic] [--points N] [--wasm] [--relabel K]

1. qdrant-edge-py creates one shard (m=16, ef_construct=100, full_scan_threshold=10000 KB,
   one segment, indexing threshold 1000 KB) and upserts the points without optimizing; it is
   copied twice.
2. Copy A: a fresh Python process loads it and runs qdrant-edge-py's `optimize()`.
   Copy B: our native `wasi-demo <dir> optimize` (release build). With `--wasm`, copy C: the same
   CLI as wasm32-wasip1 under the PyPI wasmtime runner.
   Each is timed as a whole process (load + optimize + close) with `/usr/bin/time -v`, which also
   gives its peak RSS; qdrant-edge-py's own `optimize()` call is timed inside the process too.
3. qdrant-edge-py loads every optimized copy and answers the held-out queries at ef 64, 128, 256;
   recall@10 is against numpy's exact top-10 of the same data.
4. With `--relabel K` (K > 1), the recall of one build of either engine is not taken as the
   answer: steps 1-3 run again (native engines only) on K-1 more base shards holding the same
   vectors under seeded random permutations of the point ids, so that each engine builds K
   different graphs. (Ours is deterministic for one set of points: the optimized segment holds
   them in id order whatever the order they were upserted in, and its graph links them in that
   order; qdrant-edge-py's parallel build differs from run to run even on one base.) The table
   gains the recall of every build, both engines' means and the mean of the paired difference
   (ours minus qdrant-edge-py on the same base) with its standard error.

Data: the cached real set of benches/embed_corpus.py (`--data minilm`, default) or the synthetic
clustered set of run_hnsw.py.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import qdrant_edge as q

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches"))


def load_data(kind, n, minilm_dir):
    if kind == "minilm":
        d = minilm_dir or os.path.join(ROOT, "target", "bench", "minilm")
        x = np.load(os.path.join(d, "vectors.npy"))[:n].astype(np.float32)
        qs = np.load(os.path.join(d, "queries.npy")).astype(np.float32)
        return x, qs
    from run_hnsw import dataset  # noqa: E402

    return dataset(n, 384, 1), dataset(500, 384, 2)


def make_base(path, data, ids=None):
    cfg = q.EdgeConfig(
        vectors={"": q.EdgeVectorParams(size=data.shape[1], distance=q.Distance.Cosine)},
        hnsw_config=q.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10000),
        optimizers=q.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1000),
    )
    s = q.EdgeShard.create(path, cfg)
    """`ids[i]` is the id of `data[i]` (default: i); the points are upserted in the order of `data`."""
    for start in range(0, len(data), 1000):
        pts = [q.Point(id=i if ids is None else int(ids[i]), vector=data[i].tolist(), payload={})
               for i in range(start, min(len(data), start + 1000))]
        s.update(q.UpdateOperation.upsert_points(pts))
    s.flush()
    s.close()


def timed(cmd, cwd=ROOT):
    """Run `cmd` under /usr/bin/time -v: (wall s, peak RSS MiB, stdout)."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{r.stdout}\n{r.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    return wall, rss, r.stdout


EDGE_OPTIMIZE = """
import sys, time, qdrant_edge as q
s = q.EdgeShard.load(sys.argv[1])
t = time.perf_counter(); s.optimize(); print(time.perf_counter() - t)
s.close()
"""


def optimize_cmd(kind, path):
    """The process that optimizes the shard at `path` with engine `kind` (edge, ours or wasm)."""
    if kind == "edge":
        return [sys.executable, "-c", EDGE_OPTIMIZE, path]
    if kind == "ours":
        return [os.path.join(ROOT, "target", "release", "wasi-demo"), path, "optimize"]
    wasm = os.path.join(ROOT, "target", "wasm32-wasip1", "release", "wasi-demo.wasm")
    return [sys.executable, os.path.join(ROOT, "scripts", "wasi-runner.py"), "--dir", f"{path}::/s", wasm, "/s",
            "optimize"]


def recall(path, queries, gt, ef):
    s = q.EdgeShard.load(path)
    info = s.info()
    hits = 0
    for v, g in zip(queries, gt):
        r = s.query(q.QueryRequest(query=q.Query.Nearest(v.tolist()), limit=10, params=q.SearchParams(hnsw_ef=ef)))
        hits += len({p.id for p in r} & set(g))
    s.close()
    return hits / (10 * len(queries)), info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=["minilm", "synthetic"], default="minilm")
    ap.add_argument("--points", type=int, default=100000)
    ap.add_argument("--minilm-dir", default=None)
    ap.add_argument("--wasm", action="store_true", help="also build with wasi-demo.wasm under wasmtime")
    ap.add_argument("--relabel", type=int, default=1,
                    help="build with both native engines on this many labellings of the points (the first: id i is "
                         "vector i; the others: seeded random permutations of the ids)")
    a = ap.parse_args()
    data, queries = load_data(a.data, a.points, a.minilm_dir)
    n = len(data)
    work = os.path.join(ROOT, "target", "bench", f"hnsw-build-{a.data}-{n}")
    base = os.path.join(work, "base")
    if not os.path.isdir(os.path.join(base, "segments")):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        make_base(base, data)
    subprocess.run(["cargo", "build", "--release", "-p", "wasi-demo"], cwd=ROOT, check=True)
    runs = [("qdrant-edge-py 0.9.0 native (optimize)", "edge"), ("qdrant-edge-wasm native (wasi-demo optimize)", "ours")]
    if a.wasm:
        subprocess.run(["cargo", "build", "--release", "-p", "wasi-demo", "--target", "wasm32-wasip1"], cwd=ROOT,
                       check=True)
        runs.append(("qdrant-edge-wasm wasm32-wasip1 under wasmtime (wasi-demo optimize)", "wasm"))
    results = []
    for label, kind in runs:
        path = os.path.join(work, kind)
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(base, path)
        wall, rss, out = timed(optimize_cmd(kind, path))
        inner = float(out.strip().splitlines()[-1]) if kind == "edge" else None
        results.append((label, kind, path, wall, rss, inner))
        print(label, f"{wall:.1f} s", f"{rss:.0f} MiB", flush=True)

    # Ground truth: exact top-10 by cosine (the vectors are unit length or normalised here).
    xn = data / np.linalg.norm(data, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    gt = []
    for i in range(0, len(qn), 100):
        sims = qn[i:i + 100] @ xn.T
        gt.extend(np.argsort(-sims, axis=1)[:, :10].tolist())
    rows = []
    for label, kind, path, wall, rss, inner in results:
        recs = []
        for ef in (64, 128, 256):
            r, info = recall(path, qn, gt, ef)
            recs.append(r)
        rows.append((label, wall, rss, inner, recs, info.indexed_vectors_count if hasattr(info, "indexed_vectors_count")
                     else None))

    labellings = []  # per labelling: (edge recalls, ours recalls, edge wall s, ours wall s)
    if a.relabel > 1:
        # the first labelling is the build above
        by_kind = {res[1]: (row[4], row[1]) for res, row in zip(results, rows)}
        labellings.append((by_kind["edge"][0], by_kind["ours"][0], by_kind["edge"][1], by_kind["ours"][1]))
        for r in range(1, a.relabel):
            perm = np.random.default_rng(1000 + r).permutation(n)
            gt_r = [perm[g].tolist() for g in gt]
            base_r = os.path.join(work, f"base-relabel{r}")
            shutil.rmtree(base_r, ignore_errors=True)
            make_base(base_r, data, perm)
            got = {}
            for kind in ("edge", "ours"):
                path = os.path.join(work, f"{kind}-relabel{r}")
                shutil.rmtree(path, ignore_errors=True)
                shutil.copytree(base_r, path)
                wall, _, _ = timed(optimize_cmd(kind, path))
                got[kind] = ([recall(path, qn, gt_r, ef)[0] for ef in (64, 128, 256)], wall)
                shutil.rmtree(path)
            shutil.rmtree(base_r)
            labellings.append((got["edge"][0], got["ours"][0], got["edge"][1], got["ours"][1]))
            print(f"relabelling {r}: edge {got['edge'][0]} ours {got['ours'][0]}", flush=True)

    load = os.getloadavg()[0]
    what = ("all-MiniLM-L6-v2 embeddings of Debian description sentences (benches/embed_corpus.py)"
            if a.data == "minilm" else "synthetic clustered data (run_hnsw.py)")
    lines = [
        "### Graph build",
        "",
        f"{n} x {data.shape[1]} Cosine f32, {what}; one appendable segment written by qdrant-edge-py, then "
        "optimized into one segment with an HNSW graph (m=16, ef_construct=100) by each engine. Wall time and "
        "peak RSS are of the whole process (load, optimize, close; `/usr/bin/time -v`); qdrant-edge-py may use "
        "both cores, ours builds on one thread. Recall@10: qdrant-edge-py searches each engine's graph with the "
        f"{len(qn)} held-out queries, against numpy's exact top-10. Load average {load:.2f} after the run. "
        "Command: `.venv/bin/python benches/run_hnsw_build.py" + ("" if a.data == "minilm" else f" --data {a.data}")
        + (" --wasm" if a.wasm else "") + (f" --relabel {a.relabel}" if a.relabel > 1 else "") + "`.",
        "",
        "| engine | wall s | optimize() s | peak RSS MiB | indexed vectors | recall@10 ef 64 | ef 128 | ef 256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, wall, rss, inner, recs, indexed in rows:
        lines.append(f"| {label} | {wall:.1f} | {'' if inner is None else f'{inner:.1f}'} | {rss:.0f} | "
                     f"{'' if indexed is None else indexed} | {recs[0]:.4f} | {recs[1]:.4f} | {recs[2]:.4f} |")
    if labellings:
        k = len(labellings)
        lines += [
            "",
            f"Recall@10 over {k} labellings of the points (`--relabel {k}`): the same vectors with point id i for "
            "vector i (the build above) and under seeded random permutations of the ids, each base optimized once "
            "by each native engine and searched by qdrant-edge-py. Ours links the points of the new segment in id "
            "order, so a relabelling gives it a different graph; qdrant-edge-py's parallel build differs even "
            "between runs on one base. Difference: ours minus qdrant-edge-py on the same base; mean ± standard "
            "error over the labellings.",
            "",
            "| point ids | edge-py ef 64 | ours ef 64 | edge-py ef 128 | ours ef 128 | edge-py ef 256 | ours ef 256 "
            "| edge-py wall s | ours wall s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r, (e, o, ew, ow) in enumerate(labellings):
            name = "id i for vector i" if r == 0 else f"permuted (seed {1000 + r})"
            cells = " | ".join(f"{e[j]:.4f} | {o[j]:.4f}" for j in range(3))
            lines.append(f"| {name} | {cells} | {ew:.1f} | {ow:.1f} |")
        e = np.array([x[0] for x in labellings])
        o = np.array([x[1] for x in labellings])
        cells = " | ".join(f"{e[:, j].mean():.4f} | {o[:, j].mean():.4f}" for j in range(3))
        lines.append(f"| mean | {cells} | {np.mean([x[2] for x in labellings]):.1f} | {np.mean([x[3] for x in labellings]):.1f} |")
        d = o - e
        se = d.std(axis=0, ddof=1) / np.sqrt(k)
        cells = " | ".join(f" | {d[:, j].mean():+.4f} ± {se[j]:.4f}" for j in range(3))
        lines.append(f"| ours − edge-py | {cells} | | |")
    section = "\n".join(lines) + "\n"
    print(section)
    bm = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(bm).read()
    if "### Graph build" in text:
        text = re.sub(r"### Graph build\n.*?(?=\n##|\Z)", section.rstrip("\n") + "\n", text, flags=re.S)
    else:
        text = text.replace("\n## Browser backends", "\n" + section + "\n## Browser backends", 1)
    open(bm, "w").write(text)


if __name__ == "__main__":
    main()
