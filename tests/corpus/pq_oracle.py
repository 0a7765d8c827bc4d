"""qdrant-edge-py side of tests/pq_oracle.rs (product quantization and scalar int8 quantization
of multivectors, read and search).

Commands:
  make <shard_dir> <n> [late [inline]]
                                a shard (WAL off) with one vector per case: PRODUCT (dense,
                                compressions x4 / x8 / x16 / x32 / x64, Cosine / Dot / Euclid /
                                Manhattan, float32 / float16 / uint8, dimensions that leave a
                                shorter last chunk and chunk counts that are not multiples of 4),
                                PRODUCT_MULTI and SCALAR_MULTI (max-sim multivectors of 1-3 inner
                                vectors); a keyword index on "g". n clustered points are upserted
                                and the shard optimized (one segment with HNSW graphs and
                                `quantized.data`); then LATE more points (new ids and overwrites)
                                and a few deletions stay in the appendable segment (never
                                quantized: Qdrant builds scalar and product quantization only in
                                optimized segments). Some points lack some vectors. INLINE 1:
                                `hnsw_config.inline_storage` (dense vectors' graphs carry the
                                original and the quantized vectors, `links_comp_vec.bin`). Prints
                                {"queries": {name: [vector, ...]}, "vectors": {name: case},
                                 "multi": [name, ...], "product": [name, ...],
                                 "scalar": [name, ...], "late_ids": [id, ...]}
  query <shard_dir> <req.json>  req: [{"using", "vector", "limit", "params": {"hnsw_ef"?,
                                "exact"?, "quantization"?: {"ignore"?, "rescore"?,
                                "oversampling"?}}, "filter": null | {"g": value}}];
                                prints [[[id, score], ...], ...] from a fresh load of the shard
"""

import json
import random
import sys

import qdrant_edge as qe

C = qe.CompressionRatio
D = qe.Distance
T = qe.VectorStorageDatatype

# name: (dim, distance, datatype, compression or None for scalar int8)
PRODUCT = {
    "pc16": (40, D.Cosine, T.Float32, C.X16),  # 10 chunks of 4
    "pd8": (30, D.Dot, T.Float32, C.X8),  # 15 chunks of 2
    "pe4": (13, D.Euclid, T.Float32, C.X4),  # 13 chunks of 1
    "pm32": (37, D.Manhattan, T.Float32, C.X32),  # 5 chunks, the last of 5
    "ph64": (50, D.Euclid, T.Float16, C.X64),  # 4 chunks, the last of 2
    "puc": (48, D.Cosine, T.Uint8, C.X16),  # uint8 Cosine: queries normalised
    "pud": (18, D.Dot, T.Uint8, C.X8),
}
PRODUCT_MULTI = {
    "mpc": (16, D.Cosine, T.Float32, C.X8),
    "mpe": (24, D.Euclid, T.Uint8, C.X16),
}
SCALAR_MULTI = {
    "msc": (20, D.Cosine, T.Float32, None),
    "msu": (32, D.Cosine, T.Uint8, None),
    "mse": (24, D.Euclid, T.Float16, None),
    "msm": (12, D.Manhattan, T.Float32, None),
    "msd": (33, D.Dot, T.Float32, None),
}
MULTI = {**PRODUCT_MULTI, **SCALAR_MULTI}
VECTORS = {**PRODUCT, **MULTI}
CLUSTERS = 16
LATE = 240
GROUPS = ["a", "b", "c", "d"]


def config(inline=False):
    vectors = {}
    for name, (dim, dist, dt, comp) in VECTORS.items():
        if comp is None:
            qc = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True)
        else:
            qc = qe.ProductQuantizationConfig(comp, always_ram=True)
        mv = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if name in MULTI else None
        vectors[name] = qe.EdgeVectorParams(dim, dist, datatype=dt, quantization_config=qc, multivector_config=mv)
    return qe.EdgeConfig(
        vectors=vectors,
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10, inline_storage=inline),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=64),
        wal_enabled=False,
        max_search_threads=1,
    )


class Gen:
    """Clustered vectors: a random center per cluster plus noise."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.centers = {
            name: [[self.rng.gauss(0, 1) for _ in range(v[0])] for _ in range(CLUSTERS)] for name, v in VECTORS.items()
        }

    def vec(self, name):
        if name in MULTI:
            return [self.one(name) for _ in range(self.rng.randint(1, 3))]
        return self.one(name)

    def one(self, name):
        c = self.centers[name][self.rng.randrange(CLUSTERS)]
        v = [x + self.rng.gauss(0, 0.8) for x in c]
        if VECTORS[name][2] == T.Uint8:
            return [float(max(0, min(255, int(50 * (x + 2.5))))) for x in v]
        return v


def point(g, i, late):
    v = {}
    for k, name in enumerate(VECTORS):
        if (i + k) % 9 != 4:  # some points lack some vectors
            v[name] = g.vec(name)
    r = g.rng.random()
    grp = "rare" if r < 0.015 else GROUPS[int(r * 4) % 4]
    return qe.Point(i, v, {"i": i, "g": grp, "late": late})


def make(path, n, late_n=LATE, inline=0):
    g = Gen(77)
    shard = qe.EdgeShard.create(path, config(bool(inline)))
    shard.update(qe.UpdateOperation.create_field_index("g", qe.PayloadSchemaType.Keyword))
    pts = [point(g, i, False) for i in range(n)]
    for k in range(0, n, 500):
        shard.update(qe.UpdateOperation.upsert_points(pts[k : k + 500]))
    shard.update(qe.UpdateOperation.delete_points([i for i in range(n) if i % 41 == 7]))
    shard.flush()
    shard.optimize()
    shard.flush()
    # Later changes: new ids, overwritten ids, deletions (appendable segment).
    late = []
    if late_n:
        late = [point(g, n + i, True) for i in range(late_n // 2)]
        late += [point(g, g.rng.randrange(n), True) for _ in range(late_n // 2)]
        shard.update(qe.UpdateOperation.upsert_points(late))
        shard.update(qe.UpdateOperation.delete_points([n + 3, n + 11, 5, 17, 2024]))
    shard.flush()
    shard.close()
    q = Gen(6)
    q.centers = g.centers
    queries = {name: [q.vec(name) for _ in range(12)] for name in VECTORS}
    cases = {
        name: {"dim": d, "distance": str(dist), "datatype": str(dt), "compression": str(c)}
        for name, (d, dist, dt, c) in VECTORS.items()
    }
    print(
        json.dumps(
            {
                "queries": queries,
                "vectors": cases,
                "multi": list(MULTI),
                "product": list(PRODUCT) + list(PRODUCT_MULTI),
                "scalar": list(SCALAR_MULTI),
                "late_ids": sorted({p.id for p in late}),
            }
        )
    )


def params(p):
    quant = None
    if "quantization" in p:
        qp = p["quantization"]
        quant = qe.QuantizationSearchParams(
            ignore=qp.get("ignore", False), rescore=qp.get("rescore"), oversampling=qp.get("oversampling")
        )
    return qe.SearchParams(hnsw_ef=p.get("hnsw_ef"), exact=p.get("exact", False), quantization=quant)


def query(path, req_file):
    reqs = json.load(open(req_file))
    shard = qe.EdgeShard.load(path)
    out = []
    for r in reqs:
        flt = None
        if r.get("filter"):
            flt = qe.Filter(must=[qe.FieldCondition("g", match=qe.MatchValue(r["filter"]["g"]))])
        res = shard.query(
            qe.QueryRequest(
                query=qe.Query.Nearest(r["vector"], using=r["using"]),
                limit=r["limit"],
                with_payload=False,
                filter=flt,
                params=params(r["params"]),
            )
        )
        out.append([[p.id, p.score] for p in res])
    shard.close()
    print(json.dumps(out))


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "make":
        make(path, int(sys.argv[3]), *(int(a) for a in sys.argv[4:6]))
    elif cmd == "query":
        query(path, sys.argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
