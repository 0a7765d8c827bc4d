"""qdrant-edge-py side of tests/payload_links.rs (payload-aware HNSW links built by optimize).

Commands:
  make <shard_dir> <payload_m|default>
        a shard (WAL off, one appendable segment, not optimized): 6000 clustered 32-dim Cosine
        points, HNSW m=8, ef_construct=64, full_scan_threshold 10 KB (80 vectors), payload_m as
        given ("default": unset, so m); payload "k" (keyword index), one of 40 labels at random
        (about 150 points each), "n" (integer index) = id % 1000. Prints {"queries": [...],
        "labels": [...]}
  optimize <shard_dir>      qdrant-edge-py optimizes (builds its graph)
  query <shard_dir> <req.json>
        req: [{"vector", "label", "ef" | null}]: the top 10 with filter k == label, exact when
        ef is null; prints [[[id, score], ...], ...]
"""

import json
import sys

import numpy as np
import qdrant_edge as qe

N, DIM, CLUSTERS, LABELS = 6000, 32, 30, 40


def config(payload_m):
    return qe.EdgeConfig(
        vectors={"": qe.EdgeVectorParams(DIM, qe.Distance.Cosine)},
        hnsw_config=qe.HnswIndexConfig(m=8, ef_construct=64, full_scan_threshold=10, payload_m=payload_m),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
        wal_enabled=False,
        max_search_threads=1,
    )


def make(path, payload_m):
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(CLUSTERS, DIM))
    rows = centers[rng.integers(0, CLUSTERS, N)] + rng.normal(scale=0.7, size=(N, DIM))
    labels = rng.integers(0, LABELS, N)
    shard = qe.EdgeShard.create(path, config(None if payload_m == "default" else int(payload_m)))
    shard.update(qe.UpdateOperation.create_field_index("k", qe.PayloadSchemaType.Keyword))
    shard.update(qe.UpdateOperation.create_field_index("n", qe.PayloadSchemaType.Integer))
    pts = [qe.Point(i, rows[i].astype(np.float32).tolist(), {"k": f"l{labels[i]}", "n": i % 1000}) for i in range(N)]
    for i in range(0, N, 500):
        shard.update(qe.UpdateOperation.upsert_points(pts[i:i + 500]))
    shard.close()
    queries = rng.normal(size=(8, DIM)).astype(np.float32).tolist()
    json.dump({"queries": queries, "labels": [f"l{j}" for j in range(LABELS)]}, sys.stdout)


def optimize(path):
    shard = qe.EdgeShard.load(path)
    shard.optimize()
    shard.close()
    json.dump({}, sys.stdout)


def query(path, req_file):
    shard = qe.EdgeShard.load(path)
    out = []
    for r in json.load(open(req_file)):
        flt = qe.Filter(must=[qe.FieldCondition("k", match=qe.MatchValue(r["label"]))])
        params = qe.SearchParams(exact=True) if r["ef"] is None else qe.SearchParams(hnsw_ef=r["ef"])
        res = shard.query(qe.QueryRequest(query=qe.Query.Nearest(r["vector"]), filter=flt, limit=10,
                                          params=params, with_payload=False))
        out.append([[int(p.id), float(p.score)] for p in res])
    shard.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], sys.argv[3])
    elif cmd == "optimize":
        optimize(sys.argv[2])
    elif cmd == "query":
        query(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
