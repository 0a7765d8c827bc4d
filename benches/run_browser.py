#!/usr/bin/env python3
"""Browser backends: upsert throughput and exact query latency of the npm package in headless
Chromium's dedicated worker (OPFS, IndexedDB, memory), against the filesystem backend natively,
the Node package's "fs" storage and qdrant-edge-py 0.9.0, on the same generated data, in the same
run. Writes the section "Browser backends" of BENCHMARKS.md.

    QEW_WASM=<built cdylib .wasm> bash scripts/build-npm.sh   # or plain scripts/build-npm.sh
    .venv/bin/python benches/run_browser.py [--points 50000] [--dim 384] [--queries 200] [--runs 1]

The dataset (target/bench/browser-<points>x<dim>/): standard-normal f32 vectors (seed 21), a
payload {"n": i % 100, "cat": i % 10} derived from the id, and held-out standard-normal queries
(seed 22), limit 10, asked exact, unfiltered and with the filter cat == 3 (10 % of the points).
Every engine creates an empty shard, upserts the points in batches of 256 (each call returns once
the batch is durable on that backend; qdrant-edge-py's WAL is not synced per call, see the
section), flushes, then asks every query one at a time on the same open shard.

Correctness is checked before anything is written: numpy's exact cosine top-10 and every engine's
must agree (ids in order, scores within 1e-4; swaps between scores closer than 1e-4 are counted as
ties); the driver exits non-zero and leaves BENCHMARKS.md alone otherwise.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import qdrant_edge as q

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def generate(work, a):
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    vectors = np.random.default_rng(21).standard_normal((a.points, a.dim), dtype=np.float32)
    queries = np.random.default_rng(22).standard_normal((a.queries, a.dim), dtype=np.float32)
    vectors.astype("<f4").tofile(os.path.join(data_dir, "vectors.f32"))
    queries.astype("<f4").tofile(os.path.join(data_dir, "queries.f32"))
    meta = {"points": a.points, "dim": a.dim, "batch": a.batch, "limit": a.limit, "queries": a.queries,
            "payload": "{n: i % 100, cat: i % 10}", "filter": "cat == 3", "seeds": {"vectors": 21, "queries": 22}}
    json.dump(meta, open(os.path.join(data_dir, "meta.json"), "w"))
    return data_dir, vectors, queries


def ground_truth(vectors, queries, limit):
    """numpy's exact cosine top-`limit` (float64), unfiltered and cat == 3."""
    vn = vectors.astype(np.float64)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True)
    qn = queries.astype(np.float64)
    qn /= np.linalg.norm(qn, axis=1, keepdims=True)
    sims = qn @ vn.T
    out = {}
    for variant, mask in (("plain", None), ("filtered", (np.arange(len(vectors)) % 10) == 3)):
        s = sims if mask is None else np.where(mask[None, :], sims, -np.inf)
        top = np.argsort(-s, axis=1, kind="stable")[:, :limit]
        out[variant] = {"ids": top.tolist(), "scores": np.take_along_axis(s, top, axis=1).tolist()}
    out["sims"] = sims  # the true score of any (query, id), to judge near-tie swaps
    return out


def run_native(work, data_dir):
    build = subprocess.run(["cargo", "build", "--release", "--bench", "fs_backend", "--message-format=json-render-diagnostics"],
                           cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    exe = [json.loads(l)["executable"] for l in build.stdout.splitlines()
           if l.startswith("{") and json.loads(l).get("reason") == "compiler-artifact" and json.loads(l).get("executable")][-1]
    out = os.path.join(work, "native-fs.json")
    subprocess.run([exe, os.path.join(work, "native-fs"), data_dir, out], check=True)
    r = json.load(open(out))
    shutil.rmtree(os.path.join(work, "native-fs"), ignore_errors=True)
    return r


def run_edge_py(work, vectors, queries, a):
    d = os.path.join(work, "edge-py")
    shutil.rmtree(d, ignore_errors=True)
    s = q.EdgeShard.create(d, q.EdgeConfig(vectors=q.EdgeVectorParams(size=a.dim, distance=q.Distance.Cosine)))
    batch_ms = []
    t0 = time.perf_counter()
    for start in range(0, a.points, a.batch):
        tb = time.perf_counter()
        pts = [q.Point(id=i, vector=vectors[i].tolist(), payload={"n": i % 100, "cat": i % 10})
               for i in range(start, min(a.points, start + a.batch))]
        s.update(q.UpdateOperation.upsert_points(pts))
        batch_ms.append((time.perf_counter() - tb) * 1e3)
    upsert_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    s.flush()
    flush_s = time.perf_counter() - t1
    res = {"points": a.points, "upsert_s": upsert_s, "flush_s": flush_s, "batch_ms": batch_ms, "queries": {}}
    flt = q.Filter(must=[q.FieldCondition("cat", match=q.MatchValue(3))])
    for variant, f in (("plain", None), ("filtered", flt)):
        reqs = [q.QueryRequest(query=q.Query.Nearest(v.tolist()), limit=a.limit, filter=f, params=q.SearchParams(exact=True))
                for v in queries]
        for r in reqs[:5]:
            s.query(r)
        lat, ids, scores = [], [], []
        t = time.perf_counter()
        for r in reqs:
            tq = time.perf_counter()
            pts = s.query(r)
            lat.append((time.perf_counter() - tq) * 1e3)
            ids.append([p.id for p in pts])
            scores.append([p.score for p in pts])
        res["queries"][variant] = {"latencies_ms": lat, "ids": ids, "scores": scores, "total_s": time.perf_counter() - t}
    s.close()
    shutil.rmtree(d, ignore_errors=True)
    return res


def run_node(work, data_dir):
    out = os.path.join(work, "node.json")
    subprocess.run(["node", os.path.join(ROOT, "benches", "browser", "run.mjs"), data_dir, out, os.path.join(work, "node-fs")],
                   cwd=ROOT, check=True)
    return json.load(open(out))


def compare(ref, got, sims):
    """(identical, ties, errors) of `got` against `ref` ({ids, scores} per query); `sims[k, id]`
    is the true score of id for query k."""
    same = ties = 0
    errors = []
    for k, (ri, rs, gi, gs) in enumerate(zip(ref["ids"], ref["scores"], got["ids"], got["scores"])):
        gi = [int(x) for x in gi]
        ri = [int(x) for x in ri]
        if len(gi) != len(ri) or any(abs(x - y) > TOL for x, y in zip(rs, gs)):
            errors.append(f"query {k}: ids {gi} scores {[round(x, 6) for x in gs]} vs {ri} {[round(x, 6) for x in rs]}")
        elif gi == ri:
            same += 1
        else:
            # same scores position by position: only near-equal scores may trade places; every id
            # must truly score what the engine said (within TOL), and ids that differ from the
            # reference must all truly score within TOL of the cut (the 10th score)
            diff = set(gi) ^ set(ri)
            cut = rs[-1]
            n = sims.shape[1]
            honest = all(0 <= x < n and abs(sims[k, x] - sc) <= TOL for x, sc in zip(gi, gs))
            at_cut = all(0 <= x < n and abs(sims[k, x] - cut) <= TOL for x in diff)
            if honest and at_cut:
                ties += 1
            else:
                errors.append(f"query {k}: ids {gi} vs {ri}")
    if len(got["ids"]) != len(ref["ids"]):
        errors.append(f"{len(got['ids'])} answers, expected {len(ref['ids'])}")
    return same, ties, errors


ROWS = [  # (key, engine, where, durability of an acknowledged upsert)
    ("native-fs", "qdrant-edge-wasm, native (Rust, release)", "filesystem (FsStorage)", "WAL fsynced per call"),
    ("edge-py", "qdrant-edge-py 0.9.0", "filesystem", "WAL written, synced at flush"),
    ("node-fs", "npm package in Node " , "storage \"fs\" (node:fs)", "fsynced per call"),
    ("chromium-memory", "npm package in Chromium worker", "storage \"memory\"", "none (reference)"),
    ("chromium-opfs", "npm package in Chromium worker", "storage \"opfs\"", "flushed per call"),
    ("chromium-idb", "npm package in Chromium worker", "storage \"idb\"", "one strict transaction per call"),
]


def one_run(work, data_dir, vectors, queries, a):
    results, load = {}, {}
    load["before"] = os.getloadavg()[0]
    print("== native fs", file=sys.stderr)
    results["native-fs"] = run_native(work, data_dir)
    print("== qdrant-edge-py", file=sys.stderr)
    results["edge-py"] = run_edge_py(work, vectors, queries, a)
    node = run_node(work, data_dir)
    results.update(node["rows"])
    for key in ("chromium-memory", "chromium-opfs", "chromium-idb"):
        # performance.now() ticks in 100 us unless the page is cross-origin isolated (5 us)
        if not results[key].get("cross_origin_isolated"):
            sys.exit(f"{key}: the bench page is not cross-origin isolated (coarse timer)")
    load["after"] = os.getloadavg()[0]
    return results, load, node


def check(results, truth):
    lines, errors = [], []
    for key, *_ in ROWS:
        for variant in ("plain", "filtered"):
            got = results[key]["queries"][variant]
            if variant == "filtered":
                bad = [ids for ids in got["ids"] if any(int(i) % 10 != 3 for i in ids)]
                if bad:
                    errors.append(f"{key} {variant}: ids outside the filter: {bad[:3]}")
            same, ties, errs = compare(truth[variant], got, truth["sims"])
            lines.append((key, variant, same, ties))
            errors += [f"{key} {variant}: {e}" for e in errs[:5]]
    return lines, errors


def summary(r):
    n = r["points"]
    out = {"ups": n / r["upsert_s"], "batch_p50": pct(r["batch_ms"], 50), "batch_p99": pct(r["batch_ms"], 99), "flush_s": r["flush_s"]}
    for v in ("plain", "filtered"):
        lat = r["queries"][v]["latencies_ms"]
        out[v] = (pct(lat, 50), pct(lat, 99), len(lat) / r["queries"][v]["total_s"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--runs", type=int, default=1, help="run everything this many times; the table shows the last run")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    a = ap.parse_args()
    work = os.path.join(ROOT, "target", "bench", f"browser-{a.points}x{a.dim}")
    os.makedirs(work, exist_ok=True)
    t_start = time.time()
    data_dir, vectors, queries = generate(work, a)
    truth = ground_truth(vectors, queries, a.limit)

    runs = []
    for k in range(a.runs):
        print(f"=== run {k + 1}/{a.runs}", file=sys.stderr)
        results, load, node = one_run(work, data_dir, vectors, queries, a)
        agreement, errors = check(results, truth)
        if errors:
            print("RESULTS DISAGREE (BENCHMARKS.md left alone):\n" + "\n".join(errors), file=sys.stderr)
            sys.exit(1)
        runs.append((results, load, node, agreement))
    minutes = (time.time() - t_start) / 60

    results, load, node, agreement = runs[-1]
    s = {key: summary(results[key]) for key, *_ in ROWS}
    nat, py = s["native-fs"], s["edge-py"]
    cpu = "unknown CPU"
    try:
        cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    rtt = {k: pct(results[k]["rtt_ms"], 50) for k in ("node-fs", "chromium-memory", "chromium-opfs", "chromium-idb")}
    lines = [
        "## Browser backends",
        "",
        f"{a.points} x {a.dim} Cosine f32 (standard normal, seed 21) with the payload `{{n: i % 100, cat: i % 10}}`; {a.queries} held-out queries (seed 22), "
        f"limit {a.limit}, exact, unfiltered and with the filter `cat == 3` (10 % of the points). Every engine creates an empty shard, upserts the points in batches of {a.batch} "
        "(awaiting each call), flushes, then asks the queries one at a time on the same open shard; the bodies are built inside the timed loops. "
        "Browser rows: the packed npm package in headless Chromium "
        f"{node.get('browser_version', '?')} (Debian), the shard in the package's dedicated module Worker, timed in the page (cross-origin isolated, so `performance.now()` ticks in 5 us) from the call to the resolved promise "
        "(so they include the structured clone to the worker and back); the wasm is the release build after `wasm-opt -Oz`, one thread. "
        f"Node rows: Node {node['node_version']}, in process. Native row: the `fs_backend` bench binary (release profile), through the same REST-shaped calls (`dispatch_update` / `dispatch`). "
        f"Machine: {os.cpu_count()} cores ({cpu}), load average {load['before']:.2f} before and {load['after']:.2f} after the run; "
        f"{a.runs} run(s) of the whole set took {minutes:.1f} min, the table shows the last. "
        f"Command: `QEW_WASM=<wasm> bash scripts/build-npm.sh` (or plain `scripts/build-npm.sh`), then `.venv/bin/python benches/run_browser.py{' --runs ' + str(a.runs) if a.runs > 1 else ''}`.",
        "",
        "Upsert (one call per batch, acknowledged = durable on that backend as the last column says):",
        "",
        "| engine | storage | acknowledged means | points/s | x native fs | x edge-py | batch p50 ms | batch p99 ms | flush s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, engine, where, dur in ROWS:
        x = s[key]
        lines.append(f"| {engine.strip()} | {where} | {dur} | {x['ups']:,.0f} | {x['ups'] / nat['ups']:.2f} | {x['ups'] / py['ups']:.2f} | "
                     f"{x['batch_p50']:.1f} | {x['batch_p99']:.1f} | {x['flush_s']:.2f} |")
    lines += [
        "",
        "Exact query latency (ms per call as the application sees it) and QPS (one query at a time); the ratios are p50 over the native fs row and over qdrant-edge-py:",
        "",
        "| engine | storage | p50 | p99 | QPS | x native | x edge-py | filtered p50 | p99 | QPS | x native | x edge-py |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, engine, where, _ in ROWS:
        x = s[key]
        cols = []
        for v in ("plain", "filtered"):
            p50, p99, qps = x[v]
            cols.append(f"{p50:.2f} | {p99:.2f} | {qps:.0f} | {p50 / nat[v][0]:.2f} | {p50 / py[v][0]:.2f}")
        lines.append(f"| {engine.strip()} | {where} | {' | '.join(cols)} |")
    agree = "; ".join(
        f"{k} {v} {same}/{a.queries}" + (f" (+{ties} near-tie swaps)" if ties else "") for k, v, same, ties in agreement)
    lines += [
        "",
        f"Correctness (checked before this table is written; the driver fails otherwise): top-{a.limit} ids identical to numpy's exact answer, scores within 1e-4: {agree}. "
        f"Round trip of a trivial call (`retrieve` of one id without payload), p50: Node in process {rtt['node-fs']:.3f} ms, Chromium worker "
        f"{rtt['chromium-memory']:.3f} ms (memory) / {rtt['chromium-opfs']:.3f} ms (opfs) / {rtt['chromium-idb']:.3f} ms (idb).",
    ]
    if len(runs) > 1:
        others = []
        for k, (r, ld, _, _) in enumerate(runs[:-1]):
            ss = {key: summary(r[key]) for key, *_ in ROWS}
            others.append(f"run {k + 1} (load {ld['before']:.2f}): " + ", ".join(
                f"{key} {ss[key]['ups']:,.0f} pts/s, p50 {ss[key]['plain'][0]:.2f} ms" for key, *_ in ROWS))
        lines += ["", "Earlier runs of the same command: " + "; ".join(others) + "."]
    lines.append("")
    section = "\n".join(lines)
    print(section)
    json.dump([r for r, *_ in runs], open(os.path.join(work, "results.json"), "w"))
    if a.no_write:
        return
    bm = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(bm).read()
    if "## Browser backends" in text:
        # keep a hand-written "Reading" paragraph that follows the generated part
        text = re.sub(r"## Browser backends\n.*?(?=\n### Reading|\n## |\Z)", lambda m: section.rstrip("\n") + "\n", text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(bm, "w").write(text)


if __name__ == "__main__":
    main()
