"""qdrant-edge-py side of tests/acorn.rs (`params.acorn`, Qdrant's ACORN-1 filtered HNSW walk).

Command:
  run <dir>   makes the shard in <dir>/shard, runs REST `search` requests on it through
              qdrant-edge-py and prints {"requests": [body, ...], "answers": [[[id, score], ...], ...]}

The shard (WAL off): 6000 clustered 32-dim Cosine points, HNSW m=6 / ef_construct=32 built by
qdrant-edge-py's optimize (one segment), then 300 points deleted. Payload: "k" (keyword index)
one of 20 labels, "n" (integer index) = id % 100, "u" (no index) = id % 20, "b" (bool index)
= id % 3 == 0.
Requests: 12 queries x 13 filters of different estimated selectivity and structure (must,
should, min_should, must_not of a nested filter, has_id; indexed and unindexed fields, so that
Qdrant's batch filter reorders neighbours in all its ways) x params with ACORN on at
the default bound, on at 0.6 (which also takes the unindexed filter, estimated at one half),
at 0.0 (never) and off, at ef 16 and 48.
"""

import json
import os
import sys

import numpy as np
import qdrant_edge as qe

sys.path.insert(0, os.path.dirname(__file__))
import rest  # noqa: E402

N, DIM, CLUSTERS = 6000, 32, 40


def labels(i):
    return f"c{(i * 7919) % 20}"


def run(root):
    rng = np.random.default_rng(11)
    centers = rng.normal(size=(CLUSTERS, DIM))
    rows = centers[rng.integers(0, CLUSTERS, N)] + rng.normal(scale=0.6, size=(N, DIM))
    cfg = qe.EdgeConfig(
        vectors={"": qe.EdgeVectorParams(DIM, qe.Distance.Cosine)},
        hnsw_config=qe.HnswIndexConfig(m=6, ef_construct=32, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
        wal_enabled=False,
        max_search_threads=1,
    )
    shard = qe.EdgeShard.create(f"{root}/shard", cfg)
    shard.update(qe.UpdateOperation.create_field_index("k", qe.PayloadSchemaType.Keyword))
    shard.update(qe.UpdateOperation.create_field_index("n", qe.PayloadSchemaType.Integer))
    shard.update(qe.UpdateOperation.create_field_index("b", qe.PayloadSchemaType.Bool))
    pts = [qe.Point(i, rows[i].astype(np.float32).tolist(), {"k": labels(i), "n": i % 100, "u": i % 20, "b": i % 3 == 0})
           for i in range(N)]
    for i in range(0, N, 500):
        shard.update(qe.UpdateOperation.upsert_points(pts[i:i + 500]))
    shard.optimize()
    shard.update(qe.UpdateOperation.delete_points([int(i) for i in rng.choice(N, 300, replace=False)]))

    filters = [
        {"must": [{"key": "k", "match": {"value": "c3"}}]},
        {"must": [{"key": "k", "match": {"any": ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"]}}]},
        {"must": [{"key": "k", "match": {"any": ["c1", "c2", "c3", "c4"]}}, {"key": "n", "range": {"lt": 50}}]},
        {"should": [{"key": "k", "match": {"value": "c1"}}, {"key": "n", "range": {"gte": 90}}]},
        {"must_not": [{"key": "k", "match": {"any": [f"c{j}" for j in range(18)]}}]},
        {"must": [{"key": "u", "match": {"value": 3}}]},
        {"must": [{"key": "u", "match": {"value": 3}}, {"key": "k", "match": {"value": "c3"}}]},
        {"should": [{"key": "u", "match": {"value": 3}}, {"key": "k", "match": {"value": "c2"}},
                    {"key": "n", "range": {"gte": 95}}]},
        {"min_should": {"conditions": [{"key": "k", "match": {"any": ["c1", "c2", "c3", "c4", "c5"]}},
                                       {"key": "n", "range": {"lt": 30}}, {"key": "u", "match": {"value": 4}}],
                        "min_count": 2}},
        {"must": [{"key": "n", "range": {"gte": 10, "lt": 60}}],
         "must_not": [{"must": [{"key": "k", "match": {"value": "c1"}}],
                       "should": [{"key": "u", "match": {"value": 2}}, {"key": "n", "range": {"lt": 20}}]}]},
        {"must": [{"key": "b", "match": {"value": True}}, {"key": "k", "match": {"any": ["c1", "c2", "c3"]}},
                  {"key": "u", "match": {"any": [1, 2, 3, 4, 5, 6]}}]},
        {"should": [{"has_id": list(range(0, N, 7))}, {"key": "k", "match": {"value": "c9"}}]},
    ]
    params = [{"acorn": {"enable": True}}, {"acorn": {"enable": True, "max_selectivity": 0.6}},
              {"acorn": {"enable": True, "max_selectivity": 0.0}}, {"acorn": {"enable": False}}]
    requests = []
    for q in rng.normal(size=(12, DIM)):
        for f in filters:
            for p in params:
                for ef in (16, 48):
                    requests.append({"vector": q.astype(np.float32).tolist(), "filter": f, "limit": 10,
                                     "params": {"hnsw_ef": ef, **p}})
    answers = []
    for body in requests:
        res = shard.search(rest.search_request_in(body))
        answers.append([[rest.pid_out(p.id), rest.f32(p.score)] for p in res])
    shard.close()
    json.dump({"requests": requests, "answers": answers}, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
