#!/usr/bin/env python3
"""qdrant-edge-py side of the write-path round trips (tests/write_roundtrip.rs).

    roundtrip.py dump DIR          -> JSON {"count", "points": scroll of everything, REST-shaped}
    roundtrip.py query DIR BODY    -> JSON result of a REST query body (exact search)
    roundtrip.py make DIR          -> create a shard with every vector kind and apply updates
    roundtrip.py update DIR        -> apply more updates to an existing shard (ours or theirs)

Everything goes through the same REST <-> qdrant_edge conversion as the differential corpus.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import qdrant_edge as qe  # noqa: E402
import rest  # noqa: E402  (tests/corpus/rest.py)


def config():
    return qe.EdgeConfig(
        vectors={
            "d": qe.EdgeVectorParams(size=8, distance=qe.Distance.Cosine),
            "h": qe.EdgeVectorParams(size=4, distance=qe.Distance.Euclid, datatype=qe.VectorStorageDatatype.Float16),
            "u": qe.EdgeVectorParams(size=4, distance=qe.Distance.Dot, datatype=qe.VectorStorageDatatype.Uint8),
            "m": qe.EdgeVectorParams(size=3, distance=qe.Distance.Manhattan,
                                     multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)),
        },
        sparse_vectors={"s": qe.EdgeSparseVectorParams()},
    )


def point(i):
    import random
    r = random.Random(i)
    vec = {
        "d": [round(r.gauss(0, 1), 4) for _ in range(8)],
        "h": [round(r.gauss(0, 1), 3) for _ in range(4)],
        "u": [float(r.randint(0, 255)) for _ in range(4)],
        "m": [[round(r.gauss(0, 1), 3) for _ in range(3)] for _ in range(r.randint(1, 3))],
        "s": {"indices": sorted(r.sample(range(100), 3)), "values": [0.5, 1.25, 2.0]},
    }
    if i % 5 == 0:
        del vec["h"]
    pid = i if i % 3 else "%08x-0000-4000-8000-%012x" % (i, i)
    return {"id": pid, "vector": vec, "payload": {"n": i, "tag": ["a", "b", "c"][i % 3], "nested": {"x": i / 2}}}


def to_point(p):
    v = {k: (qe.SparseVector(x["indices"], x["values"]) if isinstance(x, dict) else x) for k, x in p["vector"].items()}
    return qe.Point(id=p["id"], vector=v, payload=p["payload"])


def dump(shard):
    res = rest.run(shard, "scroll", {"limit": 1000000, "with_payload": True, "with_vector": True})
    count = rest.run(shard, "count", {"exact": True})["count"]
    return {"count": count, "points": res["points"]}


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "make":
        s = qe.EdgeShard.create(d, config())
        s.update(qe.UpdateOperation.upsert_points([to_point(point(i)) for i in range(1, 60)]))
        s.update(qe.UpdateOperation.delete_points([4, 7]))
        s.update(qe.UpdateOperation.set_payload([10, 11], {"extra": True}))
        s.flush()
        s.close()
    elif cmd == "update":
        s = qe.EdgeShard.load(d)
        s.update(qe.UpdateOperation.upsert_points([to_point(point(i)) for i in range(200, 220)]))
        s.update(qe.UpdateOperation.delete_points([5, 200]))
        s.update(qe.UpdateOperation.set_payload([8, 202], {"from": "edge"}))
        s.flush()
        s.close()
    elif cmd == "dump":
        s = qe.EdgeShard.load(d)
        print(json.dumps(dump(s)))
        s.close()
    elif cmd == "info":
        s = qe.EdgeShard.load(d)
        print(json.dumps(rest.run(s, "info", {})))
        s.close()
    elif cmd == "count":
        s = qe.EdgeShard.load(d)
        print(json.dumps(rest.run(s, "count", json.loads(sys.argv[3]))))
        s.close()
    elif cmd == "query":
        s = qe.EdgeShard.load(d)
        print(json.dumps(rest.run(s, "query", json.loads(sys.argv[3]))))
        s.close()
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
