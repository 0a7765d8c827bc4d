"""qdrant-edge-py side of tests/inline_storage.rs (`hnsw_config.inline_storage`).

With `inline_storage` and quantization, qdrant-edge's optimize moves a vector's original values
into the graph file `links_comp_vec.bin` (storage type `GraphInline`), next to the quantized
vectors of every link, and searches that graph with its inline-vector walk.

Command:
  run <dir>   makes the shards below in <dir>/<name>, runs REST `search` and `retrieve`
              requests on each through qdrant-edge-py and prints
              {"shards": {name: {"searches": [[[id, score], ...], ...], "records": [...]}},
               "searches": [REST search body, ...], "ids": [...]}

Shards (WAL off): 3000 clustered 32-dim points, HNSW m=8 / ef_construct=32 with
inline_storage, optimized into one segment, then 100 points deleted and 60 new ones upserted
(they stay in the appendable segment). Payload "k" (keyword index) = "c<id % 10>".
  scalar_cosine   int8 scalar quantization, Cosine
  scalar_euclid   int8 scalar quantization, Euclid
  binary_dot      binary quantization (one bit), Dot
"""

import json
import os
import sys

import numpy as np
import qdrant_edge as qe

sys.path.insert(0, os.path.dirname(__file__))
import rest  # noqa: E402

N, DIM = 3000, 32

SHARDS = {
    "scalar_cosine": (qe.Distance.Cosine, qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99)),
    "scalar_euclid": (qe.Distance.Euclid, qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99)),
    "binary_dot": (qe.Distance.Dot, qe.BinaryQuantizationConfig()),
}


def make(path, distance, quant, rng):
    cfg = qe.EdgeConfig(
        vectors={"": qe.EdgeVectorParams(DIM, distance, quantization_config=quant)},
        hnsw_config=qe.HnswIndexConfig(m=8, ef_construct=32, full_scan_threshold=10, inline_storage=True),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
        wal_enabled=False,
        max_search_threads=1,
    )
    centers = rng.normal(size=(20, DIM))
    rows = (centers[rng.integers(0, 20, N + 60)] + rng.normal(scale=0.8, size=(N + 60, DIM))).astype(np.float32)
    shard = qe.EdgeShard.create(path, cfg)
    shard.update(qe.UpdateOperation.create_field_index("k", qe.PayloadSchemaType.Keyword))
    pts = [qe.Point(i, rows[i].tolist(), {"k": f"c{i % 10}"}) for i in range(N + 60)]
    for i in range(0, N, 500):
        shard.update(qe.UpdateOperation.upsert_points(pts[i:min(i + 500, N)]))
    shard.optimize()
    shard.update(qe.UpdateOperation.delete_points([int(i) for i in rng.choice(N, 100, replace=False)]))
    shard.update(qe.UpdateOperation.upsert_points(pts[N:]))
    return shard


def run(root):
    rng = np.random.default_rng(21)
    queries = rng.normal(size=(10, DIM)).astype(np.float32).tolist()
    params = [{}, {"hnsw_ef": 16}, {"hnsw_ef": 64}, {"quantization": {"rescore": False}},
              {"quantization": {"rescore": True, "oversampling": 2.0}}, {"quantization": {"ignore": True}},
              {"exact": True}, {"hnsw_ef": 32, "acorn": {"enable": True, "max_selectivity": 0.5}}]
    searches = []
    for q in queries:
        for p in params:
            for flt in (None, {"must": [{"key": "k", "match": {"value": "c3"}}]}):
                body = {"vector": q, "limit": 10, "params": p}
                if flt is not None:
                    body["filter"] = flt
                searches.append(body)
    ids = [int(i) for i in rng.choice(N + 60, 40, replace=False)]
    out = {"shards": {}, "searches": searches, "ids": ids}
    for name, (distance, quant) in SHARDS.items():
        shard = make(f"{root}/{name}", distance, quant, rng)
        res = []
        for body in searches:
            r = shard.search(rest.search_request_in(body))
            res.append([[rest.pid_out(p.id), rest.f32(p.score)] for p in r])
        recs = shard.retrieve(ids, with_payload=False, with_vector=True)
        records = sorted(([rest.pid_out(r.id), rest.vector_out(r.vector)] for r in recs), key=lambda x: x[0])
        shard.close()
        out["shards"][name] = {"searches": res, "records": records}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
