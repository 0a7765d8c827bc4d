import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, shutil
import qdrant_edge as qe
path = WORK + '/gen/big'
shutil.rmtree(path, ignore_errors=True)
cfg = qe.EdgeConfig(vectors={"d": qe.EdgeVectorParams(2, qe.Distance.Dot)},
    optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
    hnsw_config=qe.HnswIndexConfig(m=4, ef_construct=8, full_scan_threshold=10),
    wal_enabled=False, max_search_threads=1)
sh = qe.EdgeShard.create(path, cfg)
sh.update(qe.UpdateOperation.create_field_index("s", qe.PayloadSchemaType.Keyword))
sh.update(qe.UpdateOperation.create_field_index("i", qe.PayloadSchemaType.Integer))
N = 24001
pts = []
for i in range(N):
    p = {"s": "" if i % 1000 == 0 else f"v{i}é", "i": i * 7919 - 10**12}
    if i == 5: p["s"] = ["", "ÿ", "x" * 40]
    pts.append(qe.Point(i, {"d": [1.0, float(i % 13)]}, p))
for k in range(0, N, 6000):
    sh.update(qe.UpdateOperation.upsert_points(pts[k:k+6000]))
sh.flush(); sh.optimize(); sh.flush(); sh.close()
print('ok')
