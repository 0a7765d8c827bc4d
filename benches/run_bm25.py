#!/usr/bin/env python3
"""BM25 text queries: qdrant-edge-py native vs ours native vs ours under wasmtime (wasm32-wasip1),
same shard, same queries, same run. Writes the section "BM25 text queries" of BENCHMARKS.md.

    .venv/bin/python benches/embed_corpus.py --texts-only     # once: the texts (no embedding)
    .venv/bin/python benches/run_bm25.py [--queries 200] [--rounds 3] [--no-write]

The shard is built once by qdrant-edge-py and cached under <bench-dir>/bm25-<points>: the first
`--points` Debian package description sentences of `benches/embed_corpus.py`'s texts.jsonl, each
point's payload `{"text": <its sentence>}` with a random 4-dimension vector, a full-text index on
`text` with BM25 scoring (word tokenizer, lowercase), optimized into one segment. Qdrant writes
the index as `vocab.dat`, `postings.dat`, `term_frequencies.dat` and `point_to_doc_len.dat`;
ours scores from the first three.

Two query sets from the held-out sentences: the whole sentence, and its first three words, limit
10. Every engine loads the shard afresh per set and reports the first query's time right after
the load, then the p50 of the queries after a five-query warm-up. Answers are compared id for
id with qdrant-edge-py's. Engines take turns, round after round; the table holds the medians.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_hnsw import (EDGE_PY, build as build_shard, exact_search_engines, pct,  # noqa: E402
                      run_rounds, time_edge_py)  # (the HNSW benchmark's)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")

SETS = [
    ("whole sentence", lambda t: t),
    ("first three words", lambda t: " ".join(t.split()[:3])),
]


def build(shard_dir, rows):
    """run_hnsw's build: random 4-dimension vectors, payload {"text"}, the scoring text index."""
    text_index = q.TextIndexParams(tokenizer=q.TokenizerType.Word, lowercase=True, scoring=True)
    data = np.random.default_rng(1).random((len(rows), 4), dtype=np.float32)
    return build_shard(shard_dir, data, payload=lambda i: {"text": rows[i]}, indexes=(("text", text_index),),
                       threads=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--points", type=int, default=100000)
    ap.add_argument("--bench-dir", default=os.environ.get("QEW_BENCH_DIR") or os.path.join(TARGET, "bench"))
    ap.add_argument("--ours-bin")
    ap.add_argument("--no-wasm", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    texts_file = os.path.join(a.bench_dir, "minilm", "texts.jsonl")
    if not os.path.exists(texts_file):
        sys.exit(f"no {texts_file}: run benches/embed_corpus.py --texts-only first")
    rows = [json.loads(line)["text"] for line in open(texts_file)]
    indexed, held_out = rows[:a.points], rows[a.points:a.points + a.queries]
    work = os.path.join(a.bench_dir, f"bm25-{a.points}")
    shard_dir = os.path.join(work, "shard")
    stamp = os.path.join(work, "build.json")
    if not os.path.exists(stamp):
        if os.path.exists(shard_dir):
            subprocess.run(["rm", "-rf", shard_dir], check=True)
        os.makedirs(work, exist_ok=True)
        build_s = build(shard_dir, indexed)
        json.dump({"points": a.points, "optimize_s": build_s}, open(stamp, "w"))

    sets = [[f(t) for t in held_out] for _, f in SETS]
    for i, texts in enumerate(sets):
        bodies = [{"query": {"text": t}, "using": "text", "limit": 10} for t in texts]
        json.dump(bodies, open(os.path.join(work, f"queries{i}.json"), "w"))
    cmds = exact_search_engines(work, shard_dir, a.ours_bin, wasm=not a.no_wasm)
    py_name = EDGE_PY
    edge_py = lambda i: time_edge_py(  # noqa: E731
        shard_dir, [q.QueryRequest(query=q.TextQuery("text", x), limit=10) for x in sets[i]])
    names, results, run_s = run_rounds(a.rounds, len(SETS), edge_py, cmds, work)

    lines = [
        "## BM25 text queries",
        "",
        f"`benches/run_bm25.py` ({time.strftime('%Y-%m-%d')}, {a.rounds} rounds, medians): "
        f"{a.points:,} Debian package description sentences (`benches/embed_corpus.py --texts-only`), "
        "payload `{\"text\"}`, a full-text index on `text` with BM25 scoring (word tokenizer, lowercase) "
        "built by qdrant-edge-py's optimize into one segment; "
        f"{a.queries} held-out sentences as queries, whole or their first three words, limit 10. "
        "*First* = the first query right after loading the shard; p50 after a five-query warm-up. "
        "Ours scores from Qdrant's `postings.dat` and `term_frequencies.dat` (document lengths are their frequencies' sums), walking the lists as Qdrant does (MaxScore where it prunes), so the scores are equal to the bit.",
        "",
        "| queries | engine | load ms | first ms | p50 ms | p99 ms | p50 ratio | same ids |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, (label, _) in enumerate(SETS):
        py_p50 = statistics.median(pct(r["latencies_ms"], 50) for r in results[(py_name, i)])
        py_ids = results[(py_name, i)][0]["ids"]
        for n in names:
            rs = results[(n, i)]
            med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
            p50 = med(lambda r: pct(r["latencies_ms"], 50))
            same = sum(1 for k, ids in enumerate(rs[0]["ids"]) if [str(x) for x in ids] == [str(x) for x in py_ids[k]])
            lines.append(f"| {label} | {n} | {med(lambda r: r['load_ms']):.0f} | "
                         f"{med(lambda r: r['first_ms']):.2f} | {p50:.3f} | {med(lambda r: pct(r['latencies_ms'], 99)):.3f} | "
                         f"{p50 / py_p50:.2f} | {same}/{len(py_ids)} |")
    lines += [
        "",
        "*First* includes reading the index files (qdrant-edge-py maps them at load: its first query "
        "costs what it reads). *Same ids*: answers whose ids, in order, equal qdrant-edge-py's.",
        "",
        f"Run time {run_s:.0f} s.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if a.no_write:
        return
    write_section(ROOT, "BM25 text queries", section)


if __name__ == "__main__":
    main()
