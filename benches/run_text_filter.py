#!/usr/bin/env python3
"""Search filtered by a full-text condition: qdrant-edge-py native vs ours native vs ours under
wasmtime (wasm32-wasip1), same shard, same queries, same run. Writes the section "Full-text
filtered search" of BENCHMARKS.md.

    .venv/bin/python benches/run_text_filter.py [--queries 100] [--rounds 3] [--no-write]

The shard is built once by qdrant-edge-py and cached under <bench-dir>/text-minilm-100000: the
100,000 all-MiniLM-L6-v2 vectors of Debian package description sentences that
`benches/embed_corpus.py` made (target/bench/minilm/), each point's payload
`{"text": <its sentence>, "section": <its package's Debian Section>}`, a full-text index on `text`
(word tokenizer, lowercase, phrase matching) and a keyword index on `section`, optimized into one
segment with an HNSW graph (m 16, ef_construct 100, one thread). Qdrant writes the full-text
index as `vocab.dat` + `postings.dat`; ours reads the postings from them.

Per filter (one token, two tokens, `text_any`, a phrase), the first `--queries` held-out query
vectors ask for their 10 nearest points under the filter (default ef). Every engine loads the
shard afresh for each filter and reports the first query's time right after the load (what it
builds on first use lands there), then the p50 of the queries after a five-query warm-up. The
answers are compared id for id with qdrant-edge-py's. Engines take turns, round after round;
the table holds the medians over the rounds.

`--ours-bin PATH` uses an already built `exact_search` bench binary (release) instead of
`cargo bench`; `--no-wasm` leaves wasmtime out.
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

FILTERS = [
    ("text, one token: `library`", {"text": "library"}, lambda: q.MatchText("library")),
    ("text, two tokens: `python library`", {"text": "python library"}, lambda: q.MatchText("python library")),
    ("text_any: `editor viewer`", {"text_any": "editor viewer"}, lambda: q.MatchTextAny("editor viewer")),
    ("phrase: `python library`", {"phrase": "python library"}, lambda: q.MatchPhrase("python library")),
]


def build(shard_dir, minilm, n):
    data = np.load(os.path.join(minilm, "vectors.npy"))[:n]
    rows = [json.loads(line) for line in open(os.path.join(minilm, "texts.jsonl"))][:len(data)]
    text_index = q.TextIndexParams(tokenizer=q.TokenizerType.Word, lowercase=True, phrase_matching=True)
    return build_shard(shard_dir, data, payload=lambda i: {"text": rows[i]["text"], "section": rows[i]["section"]},
                       indexes=(("text", text_index), ("section", "Keyword")), threads=1)


def run_edge_py(shard_dir, queries, match):
    flt = q.Filter(must=[q.FieldCondition("text", match=match())])
    return time_edge_py(shard_dir, [q.QueryRequest(query=q.Query.Nearest(v.tolist()), limit=10, filter=flt)
                                    for v in queries])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--points", type=int, default=100000)
    ap.add_argument("--bench-dir", default=os.environ.get("QEW_BENCH_DIR") or os.path.join(TARGET, "bench"))
    ap.add_argument("--minilm-dir")
    ap.add_argument("--ours-bin")
    ap.add_argument("--no-wasm", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    minilm = a.minilm_dir or os.path.join(a.bench_dir, "minilm")
    if not os.path.exists(os.path.join(minilm, "meta.json")):
        sys.exit(f"no {minilm}/meta.json: run benches/embed_corpus.py first (see its docstring)")
    work = os.path.join(a.bench_dir, f"text-minilm-{a.points}")
    shard_dir = os.path.join(work, "shard")
    stamp = os.path.join(work, "build.json")
    if not os.path.exists(stamp):
        if os.path.exists(shard_dir):
            subprocess.run(["rm", "-rf", shard_dir], check=True)
        os.makedirs(work, exist_ok=True)
        build_s = build(shard_dir, minilm, a.points)
        json.dump({"points": a.points, "optimize_s": build_s}, open(stamp, "w"))
    queries = np.load(os.path.join(minilm, "queries.npy"))[:a.queries]

    for i, (_, cond, _) in enumerate(FILTERS):
        bodies = [{"query": v.tolist(), "limit": 10, "filter": {"must": [{"key": "text", "match": cond}]}}
                  for v in queries]
        json.dump(bodies, open(os.path.join(work, f"queries{i}.json"), "w"))
    cmds = exact_search_engines(work, shard_dir, a.ours_bin, wasm=not a.no_wasm)
    py_name = EDGE_PY
    names, results, run_s = run_rounds(a.rounds, len(FILTERS), lambda i: run_edge_py(shard_dir, queries, FILTERS[i][2]),
                                       cmds, work)

    errors = []
    lines = [
        "## Full-text filtered search",
        "",
        f"`benches/run_text_filter.py` ({time.strftime('%Y-%m-%d')}, {a.rounds} rounds, medians): "
        f"{a.points:,} all-MiniLM-L6-v2 vectors of Debian package description sentences, payload "
        "`{\"text\", \"section\"}`, a full-text index on `text` (word tokenizer, lowercase, phrase matching) "
        "built with the HNSW graph (m 16, ef_construct 100) by qdrant-edge-py's optimize; "
        f"{a.queries} held-out query vectors, limit 10, default ef, per filter. *First* = the first query "
        "right after loading the shard; p50 after a five-query warm-up. Ours reads the text postings "
        "from Qdrant's `vocab.dat` + `postings.dat`.",
        "",
        "| filter | matching points | engine | load ms | first ms | p50 ms | p99 ms | p50 ratio | same ids |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    py_count = q.EdgeShard.load(shard_dir)
    for i, (label, _, match) in enumerate(FILTERS):
        count = py_count.count(q.CountRequest(filter=q.Filter(must=[q.FieldCondition("text", match=match())]),
                                              exact=True))
        py_p50 = statistics.median(pct(r["latencies_ms"], 50) for r in results[(py_name, i)])
        py_ids = results[(py_name, i)][0]["ids"]
        for n in names:
            rs = results[(n, i)]
            med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
            p50 = med(lambda r: pct(r["latencies_ms"], 50))
            same = sum(1 for k, ids in enumerate(rs[0]["ids"]) if [str(x) for x in ids] == [str(x) for x in py_ids[k]])
            if n != py_name and same < len(py_ids):
                errors.append(f"{n}, {label}: {len(py_ids) - same} answers differ from qdrant-edge-py's")
            lines.append(f"| {label} | {count} | {n} | {med(lambda r: r['load_ms']):.0f} | "
                         f"{med(lambda r: r['first_ms']):.2f} | {p50:.2f} | {med(lambda r: pct(r['latencies_ms'], 99)):.2f} | "
                         f"{p50 / py_p50:.2f} | {same}/{len(py_ids)} |")
    py_count.close()
    lines += [
        "",
        "Ours answers all four from the postings alone, a phrase from its tokens' positions in "
        "`postings.dat`. "
        "*First* includes reading the index files (qdrant-edge-py maps them at load).",
        "",
        f"Run time {run_s:.0f} s.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if errors:
        sys.exit("ANSWERS DIFFER (BENCHMARKS.md left alone):\n" + "\n".join(errors))
    if a.no_write:
        return
    write_section(ROOT, "Full-text filtered search", section)


if __name__ == "__main__":
    main()
