"""qdrant-edge-py side of tests/hnsw_build_oracle.rs (HNSW graphs built by our optimize).

Commands:
  make <shard_dir> <n>          a shard (WAL off, one appendable segment, not optimized) with n
                                clustered points and four vectors: "c" (48 dims, Cosine, f32,
                                the shard's hnsw_config m=16/ef_construct=64), "e" (16 dims,
                                Euclid, float16, its own hnsw_config m=8/ef_construct=48), "u"
                                (24 dims, Dot, uint8) and "m" (8 dims, Cosine multivectors of
                                1-3 vectors); some points lack "e", "u" or "m"; 3% of the points
                                are deleted. Indexing threshold 64 kB. Prints the queries:
                                {"queries": {name: [vector, ...]}}
  optimize <shard_dir>          load, optimize (Qdrant builds its graphs), print {"seconds"}
  info <shard_dir>              print {"points", "indexed", "segments"}
  query <shard_dir> <req.json>  req: [{"using", "vector", "limit", "ef" | null, "exact"}];
                                prints [[[id, score], ...], ...]
"""

import json
import random
import sys
import time

import qdrant_edge as qe

DIMS = {"c": 48, "e": 16, "u": 24, "m": 8}
CLUSTERS = 24


def config():
    return qe.EdgeConfig(
        vectors={
            "c": qe.EdgeVectorParams(DIMS["c"], qe.Distance.Cosine),
            "e": qe.EdgeVectorParams(
                DIMS["e"],
                qe.Distance.Euclid,
                datatype=qe.VectorStorageDatatype.Float16,
                hnsw_config=qe.HnswIndexConfig(m=8, ef_construct=48, full_scan_threshold=4),
            ),
            "u": qe.EdgeVectorParams(DIMS["u"], qe.Distance.Dot, datatype=qe.VectorStorageDatatype.Uint8),
            "m": qe.EdgeVectorParams(
                DIMS["m"],
                qe.Distance.Cosine,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
            ),
        },
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=64),
        wal_enabled=False,
        max_search_threads=1,
    )


class Gen:
    """Clustered vectors: a random center per cluster plus noise."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.centers = {
            name: [[self.rng.gauss(0, 1) for _ in range(d)] for _ in range(CLUSTERS)] for name, d in DIMS.items()
        }

    def vec(self, name, spread=1.5):
        c = self.centers[name][self.rng.randrange(CLUSTERS)]
        v = [x + self.rng.gauss(0, spread) for x in c]
        if name == "u":
            # uint8 storage: non-negative integers
            return [float(max(0, min(255, int(40 * (x + 3))))) for x in v]
        return v

    def multi(self):
        return [self.vec("m") for _ in range(self.rng.randint(1, 3))]


def make(path, n):
    g = Gen(2024)
    shard = qe.EdgeShard.create(path, config())
    pts = []
    for i in range(n):
        v = {"c": g.vec("c")}
        if i % 5 != 1:
            v["e"] = g.vec("e")
        if i % 4 != 2:
            v["u"] = g.vec("u")
        if i % 3 != 0:
            v["m"] = g.multi()
        pts.append(qe.Point(i, v, {"i": i}))
    for k in range(0, n, 500):
        shard.update(qe.UpdateOperation.upsert_points(pts[k : k + 500]))
    shard.update(qe.UpdateOperation.delete_points([i for i in range(n) if i % 33 == 5]))
    shard.flush()
    shard.close()
    q = Gen(7)
    q.centers = g.centers  # same clusters, fresh noise
    queries = {name: [q.multi() if name == "m" else q.vec(name) for _ in range(60)] for name in DIMS}
    print(json.dumps({"queries": queries}))


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "make":
        make(path, int(sys.argv[3]))
    elif cmd == "optimize":
        shard = qe.EdgeShard.load(path)
        t = time.perf_counter()
        shard.optimize()
        dt = time.perf_counter() - t
        shard.flush()
        shard.close()
        print(json.dumps({"seconds": dt}))
    elif cmd == "info":
        shard = qe.EdgeShard.load(path)
        i = shard.info()
        shard.close()
        print(json.dumps({"points": i.points_count, "indexed": i.indexed_vectors_count, "segments": i.segments_count}))
    elif cmd == "query":
        reqs = json.load(open(sys.argv[3]))
        shard = qe.EdgeShard.load(path)
        out = []
        for r in reqs:
            params = qe.SearchParams(hnsw_ef=r["ef"], exact=r["exact"])
            res = shard.query(
                qe.QueryRequest(
                    query=qe.Query.Nearest(r["vector"], using=r["using"]),
                    limit=r["limit"],
                    with_payload=False,
                    params=params,
                )
            )
            out.append([[p.id, p.score] for p in res])
        shard.close()
        print(json.dumps(out))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
