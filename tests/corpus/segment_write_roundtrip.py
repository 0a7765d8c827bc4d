"""qdrant-edge-py side of tests/segment_write_roundtrip.rs.

  make <shard_dir> [--optimize]   create a shard (WAL disabled, so loading replays nothing),
                                  upsert 200 deterministic points, [optimize,] flush, close;
                                  print {"points": dump} as JSON
  dump <shard_dir> [--touch]      load the shard, print {"points": dump, "count": n}; with
                                  --touch, then upsert point 5000, flush, close, reload and
                                  check it is there (Qdrant appends to the files we wrote)

A dump maps str(point id) to {"vector": {name: value}, "payload": {...}}: dense and
multivectors as lists of floats (f16/u8 rows widened by Qdrant), sparse as
{"indices", "values"}. Everything is read back through scroll AND retrieve; the two must agree.
"""

import json
import random
import sys

import qdrant_edge as qe

VECTORS = {
    "d": dict(size=4, distance="Cosine", datatype=None, multi=False),
    "h": dict(size=3, distance="Cosine", datatype="Float16", multi=False),
    "u": dict(size=5, distance="Dot", datatype="Uint8", multi=False),
    "m": dict(size=2, distance="Cosine", datatype=None, multi=True),
}
N = 200


def config(optimize: bool) -> qe.EdgeConfig:
    vectors = {}
    for name, v in VECTORS.items():
        kw = {}
        if v["datatype"]:
            kw["datatype"] = getattr(qe.VectorStorageDatatype, v["datatype"])
        if v["multi"]:
            kw["multivector_config"] = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
        vectors[name] = qe.EdgeVectorParams(v["size"], getattr(qe.Distance, v["distance"]), **kw)
    return qe.EdgeConfig(
        vectors=vectors,
        sparse_vectors={"s": qe.EdgeSparseVectorParams()},
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(
            default_segment_number=1,
            indexing_threshold=1 if optimize else 1_000_000,
        ),
        wal_enabled=False,
        max_search_threads=1,
    )


def point(rng: random.Random, pid: int) -> qe.Point:
    vec = {}
    for name, v in VECTORS.items():
        if pid % 7 == 3 and name == "h":
            continue  # some points lack a named vector
        if v["datatype"] == "Uint8":
            vec[name] = [float(rng.randint(0, 255)) for _ in range(v["size"])]
        elif v["multi"]:
            vec[name] = [[round(rng.gauss(0, 1), 5) for _ in range(v["size"])] for _ in range(rng.randint(1, 3))]
        else:
            vec[name] = [round(rng.gauss(0, 1), 5) for _ in range(v["size"])]
    if pid % 5 != 0:
        idx = sorted(rng.sample(range(100), rng.randint(1, 6)))
        vec["s"] = qe.SparseVector(idx, [round(rng.uniform(0.1, 2.0), 4) for _ in idx])
    return qe.Point(pid, vec, {"i": pid})


def to_json(v):
    if isinstance(v, qe.SparseVector):
        return {"indices": list(v.indices), "values": list(v.values)}
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    return v


def record(r) -> dict:
    return {"vector": to_json(r.vector or {}), "payload": to_json(r.payload or {})}


def dump(shard) -> dict:
    out = {}
    offset = None
    while True:
        pts, offset = shard.scroll(qe.ScrollRequest(offset=offset, limit=64, with_payload=True, with_vector=True))
        for r in pts:
            out[str(r.id)] = record(r)
        if offset is None:
            break
    ids = [int(k) for k in out]
    got = {str(r.id): record(r) for r in shard.retrieve(ids, with_payload=True, with_vector=True)}
    if got != out:
        raise SystemExit("retrieve and scroll disagree")
    return out


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "make":
        optimize = "--optimize" in sys.argv[3:]
        shard = qe.EdgeShard.create(path, config(optimize))
        rng = random.Random(7)
        pts = [point(rng, pid) for pid in range(N)]
        for i in range(0, N, 50):
            shard.update(qe.UpdateOperation.upsert_points(pts[i : i + 50]))
        if optimize:
            shard.optimize()
        shard.flush()
        d = dump(shard)
        shard.close()
        print(json.dumps({"points": d}))
    elif cmd == "dump":
        shard = qe.EdgeShard.load(path)
        d = dump(shard)
        n = shard.count(qe.CountRequest(exact=True))
        out = {"points": d, "count": n}
        if "--touch" in sys.argv[3:]:
            p = point(random.Random(5000), 5000)
            shard.update(qe.UpdateOperation.upsert_points([p]))
            shard.flush()
            shard.close()
            shard = qe.EdgeShard.load(path)
            after = dump(shard)
            out["touch_ok"] = "5000" in after and shard.count(qe.CountRequest(exact=True)) == n + 1
            out["touch_rest_unchanged"] = {k: v for k, v in after.items() if k != "5000"} == d
        shard.close()
        print(json.dumps(out))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
