"""qdrant-edge-py side of tests/indexed_only.rs (`params.indexed_only`).

Qdrant leaves a segment searched without a graph out of an `indexed_only` search when scanning
it would read more than 10 000 KB of vectors (qdrant-edge's limit). These shards sit on both
sides of that line.

Command:
  run <dir>   makes the shards below in <dir>/<name>, runs the same REST `search` requests on
              each through qdrant-edge-py and prints
              {"shards": {name: {"answers": [[[id, score], ...], ...]}},
               "requests": [REST search body, ...], "extra_point": {"id", "vector", "payload"}}

Shards (WAL off, so each closes with all its points in segments):
  dense_10000   10 000 points, 256-dim f32 Dot (1 KiB each): exactly 10 000 KB, searched
  dense_10001   the same plus one point ("extra_point"): one byte over, left out unfiltered
  multi_below / multi_above   multivectors of 1-7 rows of 16 dims; the first has one point
                fewer than the second, the first size whose mean stored size (rounded down)
                times the count passes the limit
  graph         12 000 points optimized into an HNSW segment plus 10 001 later points left in
                the appendable segment (too large: only the graph segment answers)
Payload: "k" (indexed keyword) is "a" on odd ids, "b" on even ones; "u" (not indexed) too.
"""

import json
import os
import sys

import numpy as np
import qdrant_edge as qe

sys.path.insert(0, os.path.dirname(__file__))
import rest  # noqa: E402

LIMIT_BYTES = 10_000 * 1024
DIM = 256
MDIM = 16


def payload(i):
    v = "a" if i % 2 else "b"
    return {"k": v, "u": v}


def config(vectors, indexing_threshold):
    return qe.EdgeConfig(
        vectors=vectors,
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=indexing_threshold),
        wal_enabled=False,
        max_search_threads=1,
    )


def dense_rows(n, seed):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def make(path, cfg, points, optimize_then=None):
    shard = qe.EdgeShard.create(path, cfg)
    shard.update(qe.UpdateOperation.create_field_index("k", qe.PayloadSchemaType.Keyword))
    for i in range(0, len(points), 500):
        shard.update(qe.UpdateOperation.upsert_points(points[i:i + 500]))
    if optimize_then is not None:
        shard.optimize()
        shard.update(qe.UpdateOperation.upsert_points(optimize_then))
    return shard


def point(i, vec, name):
    return qe.Point(i, {name: vec}, payload(i))


def requests():
    q = np.random.default_rng(99).normal(size=DIM).astype(np.float32).tolist()
    mq = np.random.default_rng(98).normal(size=(2, MDIM)).astype(np.float32).tolist()
    filters = [None, {"must": [{"key": "k", "match": {"value": "a"}}]},
               {"must": [{"key": "u", "match": {"value": "a"}}]}]
    out = []
    for using, vec in (("v", q), ("m", mq)):
        for f in filters:
            for indexed_only in (True, False):
                body = {"vector": {"name": using, "vector": vec}, "limit": 5,
                        "params": {"indexed_only": indexed_only}}
                if f is not None:
                    body["filter"] = f
                out.append(body)
    return out


def run(root):
    dense = dense_rows(10_001, 1)
    shards = {}
    vparams = {"v": qe.EdgeVectorParams(DIM, qe.Distance.Dot)}
    pts = [point(i, dense[i].tolist(), "v") for i in range(10_001)]
    shards["dense_10000"] = make(f"{root}/dense_10000", config(vparams, 10**9), pts[:10_000])
    shards["dense_10001"] = make(f"{root}/dense_10001", config(vparams, 10**9), pts)

    # Multivectors: grow until the stored bytes pass the limit.
    rng = np.random.default_rng(2)
    mparams = {"m": qe.EdgeVectorParams(MDIM, qe.Distance.Cosine,
                                        multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim))}
    multi, total = [], 0
    while not multi or (total // len(multi)) * len(multi) <= LIMIT_BYTES:
        rows = rng.normal(size=(int(rng.integers(1, 8)), MDIM)).astype(np.float32)
        multi.append(point(len(multi), rows.tolist(), "m"))
        total += rows.size * 4
    shards["multi_below"] = make(f"{root}/multi_below", config(mparams, 10**9), multi[:-1])
    shards["multi_above"] = make(f"{root}/multi_above", config(mparams, 10**9), multi)

    g = dense_rows(22_001, 3)
    gpts = [point(i, g[i].tolist(), "v") for i in range(22_001)]
    shards["graph"] = make(f"{root}/graph", config(vparams, 1), gpts[:12_000], optimize_then=gpts[12_000:])

    reqs = requests()
    out = {"shards": {}, "requests": reqs,
           "extra_point": {"id": 10_000, "vector": {"v": dense[10_000].tolist()}, "payload": payload(10_000)}}
    for name, shard in shards.items():
        answers = []
        for body in reqs:
            try:
                res = shard.search(rest.search_request_in(body))
                answers.append([[rest.pid_out(p.id), rest.f32(p.score)] for p in res])
            except Exception as e:  # a vector the shard does not have
                answers.append({"error": str(e)})
        shard.close()
        out["shards"][name] = {"answers": answers}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
