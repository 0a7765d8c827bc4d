"""qdrant-edge-py side of tests/binary_quant_oracle.rs (binary quantization, read and search).

Commands:
  make <shard_dir> <n> [late]   a shard (WAL off) with one dense vector per binary quantization
                                case (VECTORS: encodings one_bit / two_bits / one_and_half_bits,
                                query encodings default / binary / scalar4 / scalar8, Cosine / Dot
                                / Euclid / Manhattan, float32 / float16 / uint8, odd dimensions;
                                MULTI: max-sim multivectors of 1-3 vectors; SCALAR: one scalar
                                int8 vector, uint8 Cosine),
                                a keyword index on "g". n clustered points are upserted and the
                                shard optimized (one segment with HNSW graphs and `quantized.data`);
                                then LATE more points (new ids and overwrites of old ones) and a
                                few deletions stay in the appendable segment (`quantized_data/`).
                                Some points lack some vectors. Prints
                                {"queries": {name: [vector, ...]}, "vectors": {name: case},
                                 "multi": [name, ...], "scalar": [name, ...]}
  ops <n> <late>                the updates tests/binary_quant_oracle.rs applies (with our engine, and
                                with `apply` to a copy) to a shard made by `make <dir> n late`:
                                {"upserts": [{"id", "vector": {name: v}, "payload"}], "deletes":
                                [id, ...]}: new ids, overwrites of ids in the appendable segment and
                                of ids in the optimized one, some lacking some vectors, multivectors
                                of 1-3 inner vectors (more or fewer than before), then deletions
  raw <shard_dir> <n>           as `make <shard_dir> <n> 0`, not optimized: the n points stay in
                                the appendable segment; four more scalar int8 vectors (float32
                                Euclid without quantile, float16 Dot quantile 0.95, Manhattan
                                quantile 0.9, Cosine multivectors) (tests/optimize_quant_oracle.rs)
  optimize <shard_dir>          load, optimize, flush, close
  create <shard_dir>            an empty shard with the config of `make`
  make_turbo <shard_dir>        a shard (WAL off) whose vector "t" (32, Cosine) has TurboQuant
                                2-bit quantization, 100 random points in its appendable segment
                                (a mutable `quantized_data/` that our writes cannot keep in step)
  apply <shard_dir> <ops.json> <upserts|deletes>
                                applies that part of `ops` with qdrant-edge-py, flush, close
  query <shard_dir> <req.json>  req: [{"using", "vector", "limit", "params": {"hnsw_ef"?,
                                "exact"?, "quantization"?: {"ignore"?, "rescore"?,
                                "oversampling"?}}, "filter": null | {"g": value}}];
                                prints [[[id, score], ...], ...] from a fresh load of the shard
"""

import json
import random
import sys

import qdrant_edge as qe

BE = qe.BinaryQuantizationEncoding
BQ = qe.BinaryQuantizationQueryEncoding
D = qe.Distance
T = qe.VectorStorageDatatype

# name: (dim, distance, datatype, encoding, query encoding)
VECTORS = {
    "b1c": (40, D.Cosine, T.Float32, BE.OneBit, None),
    "b1d4": (40, D.Dot, T.Float32, BE.OneBit, BQ.Scalar4Bits),
    "b1e": (130, D.Euclid, T.Float32, BE.OneBit, BQ.Binary),
    "b2e": (24, D.Euclid, T.Float32, BE.TwoBits, None),
    "b2c8": (48, D.Cosine, T.Float32, BE.TwoBits, BQ.Scalar8Bits),
    "h15d": (35, D.Dot, T.Float32, BE.OneAndHalfBits, BQ.Binary),
    "h15e4": (35, D.Euclid, T.Float32, BE.OneAndHalfBits, BQ.Scalar4Bits),
    "l1m4": (20, D.Manhattan, T.Float32, BE.OneBit, BQ.Scalar4Bits),
    "f16c8": (32, D.Cosine, T.Float16, BE.OneAndHalfBits, BQ.Scalar8Bits),
    "u1d": (24, D.Dot, T.Uint8, BE.OneBit, None),
    "u2e8": (24, D.Euclid, T.Uint8, BE.TwoBits, BQ.Scalar8Bits),
}
# multivectors (MaxSim): name: (dim, distance, datatype, encoding, query encoding)
MULTI = {
    "m1c": (16, D.Cosine, T.Float32, BE.OneBit, None),
    "m2d8": (40, D.Dot, T.Float32, BE.TwoBits, BQ.Scalar8Bits),
    "mu15": (24, D.Euclid, T.Uint8, BE.OneAndHalfBits, BQ.Scalar4Bits),
}
VECTORS.update(MULTI)
# a scalar int8 control on uint8 Cosine (Qdrant normalises such queries before scalar encoding)
SCALAR = {"su8c": (16, D.Cosine, T.Uint8, None, None)}
VECTORS.update(SCALAR)
# scalar int8 options: name: (quantile, always_ram)
SCALAR_OPTIONS = {"su8c": (0.99, True)}


def add_raw_scalar_cases():
    """More scalar int8 cases for `raw` (tests/optimize_quant_oracle.rs)."""
    extra = {
        "sf32e": (24, D.Euclid, T.Float32, None, None),
        "sf16d": (20, D.Dot, T.Float16, None, None),
        "sl1": (12, D.Manhattan, T.Float32, None, None),
        "smc": (16, D.Cosine, T.Float32, None, None),
    }
    SCALAR.update(extra)
    VECTORS.update(extra)
    MULTI["smc"] = extra["smc"]
    SCALAR_OPTIONS.update({"sf32e": (None, False), "sf16d": (0.95, None), "sl1": (0.9, True), "smc": (0.99, False)})
CLUSTERS = 16
LATE = 240
GROUPS = ["a", "b", "c", "d"]


def config():
    vectors = {}
    for name, (dim, dist, dt, enc, qenc) in VECTORS.items():
        if name in SCALAR:
            q, ram = SCALAR_OPTIONS[name]
            bq = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=q, always_ram=ram)
        else:
            bq = qe.BinaryQuantizationConfig(always_ram=True, encoding=enc, query_encoding=qenc)
        mv = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if name in MULTI else None
        vectors[name] = qe.EdgeVectorParams(dim, dist, datatype=dt, quantization_config=bq, multivector_config=mv)
    return qe.EdgeConfig(
        vectors=vectors,
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


def late_points(g, n, late_n):
    late = [point(g, n + i, True) for i in range(late_n // 2)]
    late += [point(g, g.rng.randrange(n), True) for _ in range(late_n // 2)]
    return late


def make(path, n, late_n=LATE, optimize=True):
    g = Gen(99)
    shard = qe.EdgeShard.create(path, config())
    shard.update(qe.UpdateOperation.create_field_index("g", qe.PayloadSchemaType.Keyword))
    pts = [point(g, i, False) for i in range(n)]
    for k in range(0, n, 500):
        shard.update(qe.UpdateOperation.upsert_points(pts[k : k + 500]))
    shard.update(qe.UpdateOperation.delete_points([i for i in range(n) if i % 41 == 7]))
    shard.flush()
    if optimize:
        shard.optimize()
        shard.flush()
    # Later changes: new ids, overwritten ids, deletions (appendable segment).
    if late_n:
        late = late_points(g, n, late_n)
        shard.update(qe.UpdateOperation.upsert_points(late))
        shard.update(qe.UpdateOperation.delete_points(LATE_DELETES(n)))
    shard.flush()
    shard.close()
    q = Gen(5)
    q.centers = g.centers
    queries = {name: [q.vec(name) for _ in range(12)] for name in VECTORS}
    cases = {
        name: {"dim": d, "distance": str(dist), "datatype": str(dt), "encoding": str(e), "query_encoding": str(qe_)}
        for name, (d, dist, dt, e, qe_) in VECTORS.items()
    }
    print(json.dumps({"queries": queries, "vectors": cases, "multi": list(MULTI), "scalar": list(SCALAR)}))


LATE_DELETES = lambda n: [n + 3, n + 11, 5, 17, 2024]


def ops(n, late_n):
    """Updates on top of `make(.., n, late_n)` (module docs)."""
    g = Gen(99)
    base = [point(g, i, False) for i in range(n)]
    late = late_points(g, n, late_n) if late_n else []
    gone = {i for i in range(n) if i % 41 == 7} | set(LATE_DELETES(n))
    appendable = sorted({p.id for p in late} - gone)
    optimized = sorted({p.id for p in base} - gone - set(appendable))
    r = random.Random(7)
    o = Gen(7)
    o.centers = g.centers
    ids = [n + 1000 + i for i in range(120)]
    ids += r.sample(appendable, min(80, len(appendable)))
    ids += r.sample(optimized, 100)
    r.shuffle(ids)
    upserts = []
    for k, i in enumerate(ids):
        v = {}
        for j, name in enumerate(VECTORS):
            if (i + j + k) % 7 != 3:
                v[name] = o.vec(name)
        upserts.append({"id": i, "vector": v, "payload": {"i": i, "g": GROUPS[k % 4], "late": True, "ours": True}})
    deletes = r.sample(appendable, 10) + r.sample(optimized, 10) + r.sample(ids, 10)
    print(json.dumps({"upserts": upserts, "deletes": sorted(set(deletes))}))


def apply(path, ops_file, part):
    o = json.load(open(ops_file))
    shard = qe.EdgeShard.load(path)
    if part == "upserts":
        pts = [qe.Point(p["id"], p["vector"], p["payload"]) for p in o["upserts"]]
        shard.update(qe.UpdateOperation.upsert_points(pts))
    else:
        shard.update(qe.UpdateOperation.delete_points(o["deletes"]))
    shard.flush()
    shard.close()
    print(json.dumps({"ok": True}))


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
        make(path, int(sys.argv[3]), *(int(a) for a in sys.argv[4:5]))
    elif cmd == "raw":
        add_raw_scalar_cases()
        make(path, int(sys.argv[3]), 0, optimize=False)
    elif cmd == "optimize":
        shard = qe.EdgeShard.load(path)
        shard.optimize()
        shard.flush()
        shard.close()
        print(json.dumps({"ok": True}))
    elif cmd == "ops":
        ops(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "create":
        qe.EdgeShard.create(path, config()).close()
        print(json.dumps({"ok": True}))
    elif cmd == "make_turbo":
        rng = random.Random(7)
        cfg = qe.EdgeConfig(
            vectors={
                "t": qe.EdgeVectorParams(
                    32, D.Cosine, quantization_config=qe.TurboQuantQuantizationConfig(bits=qe.TurboQuantBitSize.Bits2)
                )
            },
            optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=100000),
            wal_enabled=False,
            max_search_threads=1,
        )
        shard = qe.EdgeShard.create(path, cfg)
        pts = [qe.Point(i, {"t": [rng.gauss(0, 1) for _ in range(32)]}, {}) for i in range(100)]
        shard.update(qe.UpdateOperation.upsert_points(pts))
        shard.flush()
        shard.close()
        print(json.dumps({"ok": True}))
    elif cmd == "apply":
        apply(path, sys.argv[3], sys.argv[4])
    elif cmd == "query":
        query(path, sys.argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
