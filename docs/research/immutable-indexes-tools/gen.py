import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, os, random, json, shutil
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'tests', 'corpus'))
import qdrant_edge as qe
from field_index_roundtrip import payload, INDEXES, schema_in

def cfg(sparse=True):
    sp = None
    if sparse:
        sp = {"s32": qe.EdgeSparseVectorParams(),
              "s16": qe.EdgeSparseVectorParams(datatype=qe.VectorStorageDatatype.Float16),
              "s8": qe.EdgeSparseVectorParams(datatype=qe.VectorStorageDatatype.Uint8),
              "sidf": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
    return qe.EdgeConfig(
        vectors={"d": qe.EdgeVectorParams(2, qe.Distance.Dot)},
        sparse_vectors=sp,
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=32, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
        wal_enabled=False, max_search_threads=1)

EXTRA = [
    ("ek", "keyword"), ("en", "integer"), ("ef", "float"), ("eb", "bool"), ("edt", "datetime"),
    ("eu", "uuid"), ("eg", "geo"), ("et", "text"),
    ("kd", {"type": "keyword", "on_disk": True}),
    ("kp", {"type": "keyword", "prefix": True}),
    ("ou", "uuid"),
    ("big", "keyword"),
]

def make_rich(path, n=301):
    shutil.rmtree(path, ignore_errors=True)
    shard = qe.EdgeShard.create(path, cfg())
    for field, schema in INDEXES + EXTRA:
        shard.update(qe.UpdateOperation.create_field_index(field, schema_in(schema)))
    rng = random.Random(11); r2 = random.Random(5)
    pts = []
    for i in range(n):
        p = payload(rng, i)
        p["kd"] = f"d{i % 13}"; p["kp"] = ["pre" + str(i % 17), "x"]
        p["ou"] = f"00000000-0000-0000-0000-{(i % 163):012d}"  # 163 distinct (odd)
        p["big"] = f"key-{i}"
        if i % 10 == 7:
            p = {}  # no payload at all
        vec = {"d": [float(i % 7), 1.0]}
        for name in ("s32", "s16", "s8", "sidf"):
            if i % 6 != 0:
                k = r2.randint(1, 6)
                idx = r2.sample(range(1000), k)
                vec[name] = qe.SparseVector(idx, [r2.uniform(-2, 3) for _ in idx])
        pts.append(qe.Point(i, vec, p))
    shard.update(qe.UpdateOperation.upsert_points(pts))
    shard.flush()
    shard.optimize()
    shard.flush()
    shard.close()

def make_empty(path, n=200):
    shutil.rmtree(path, ignore_errors=True)
    shard = qe.EdgeShard.create(path, cfg(sparse=False))
    for field, schema in INDEXES:
        shard.update(qe.UpdateOperation.create_field_index(field, schema_in(schema)))
    pts = [qe.Point(i, {"d": [1.0, float(i)]}, {"other": i} if i % 2 else {}) for i in range(n)]
    shard.update(qe.UpdateOperation.upsert_points(pts))
    shard.flush(); shard.optimize(); shard.flush(); shard.close()

if __name__ == '__main__':
    make_rich(WORK + '/gen/rich')
    make_empty(WORK + '/gen/empty')
    print('ok')
