#!/usr/bin/env python3
"""Oracle side of tests/gridstore_roundtrip.rs: qdrant-edge-py 0.9.0 makes, reads and updates
shards whose payload Gridstore the Rust writer also changes.

    python tests/corpus/gridstore_roundtrip.py make DIR N       create a shard, upsert N points
                                                               with payloads, flush, close
    python tests/corpus/gridstore_roundtrip.py retrieve DIR    stdin: JSON list of point ids
    python tests/corpus/gridstore_roundtrip.py update DIR      stdin: JSON plan (below)

Every command prints one JSON document on stdout. Point ids are JSON numbers or UUID strings.
``retrieve`` prints ``[[id, payload], ...]`` (payload ``{}`` when the point has none).
``update`` applies, in order, ``set_payload`` (``{"py_set": true, "n": 42}``) to ``set``,
``overwrite_payload`` (``{"py": "overwritten", "big": <3000 chars>}``) to ``overwrite``,
``clear_payload`` to ``clear`` and ``delete_payload(["name"])`` to ``delete_key``, then flushes
and closes.

No optimizer runs, so all points stay in the appendable segment and its ``payload_storage/``.
"""

import json
import sys
import uuid

from qdrant_edge import Distance, EdgeConfig, EdgeShard, EdgeVectorParams, Point, UpdateOperation


def id_json(pid):
    return pid if isinstance(pid, int) else str(pid)


def id_py(v):
    return v if isinstance(v, int) else uuid.UUID(v)


def make(path, n):
    shard = EdgeShard.create(path, EdgeConfig(vectors={"": EdgeVectorParams(size=2, distance=Distance.Dot)}))
    points, ids = [], []
    for i in range(n):
        pid = str(uuid.UUID(int=0x5EED0000 + i)) if i % 10 == 3 else 1000 + 7 * i
        payload = {
            "i": i,
            "name": f"point {i}",
            "tags": [f"t{i % 5}", "all"],
            "nested": {"x": i * 3, "even": i % 2 == 0, "list": [{"k": i}]},
        }
        if i % 50 == 0:
            payload["text"] = "lorem ipsum dolor " * 60
        points.append(Point(id_py(pid), [1.0, float(i)], payload))
        ids.append(pid)
    for start in range(0, n, 100):
        shard.update(UpdateOperation.upsert_points(points[start : start + 100]))
    shard.flush()
    shard.close()
    return {"ids": ids}


def retrieve(path, ids):
    shard = EdgeShard.load(path)
    records = shard.retrieve([id_py(i) for i in ids], with_payload=True, with_vector=False)
    out = [[id_json(r.id), r.payload or {}] for r in records]
    shard.close()
    return out


def update(path, plan):
    shard = EdgeShard.load(path)
    ids = lambda name: [id_py(i) for i in plan.get(name, [])]
    if plan.get("set"):
        shard.update(UpdateOperation.set_payload(ids("set"), {"py_set": True, "n": 42}))
    if plan.get("overwrite"):
        shard.update(UpdateOperation.overwrite_payload(ids("overwrite"), {"py": "overwritten", "big": "y" * 3000}))
    if plan.get("clear"):
        shard.update(UpdateOperation.clear_payload(ids("clear")))
    if plan.get("delete_key"):
        shard.update(UpdateOperation.delete_payload(ids("delete_key"), ["name"]))
    shard.flush()
    shard.close()
    return {"ok": True}


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "make":
        out = make(path, int(sys.argv[3]))
    elif cmd == "retrieve":
        out = retrieve(path, json.load(sys.stdin))
    elif cmd == "update":
        out = update(path, json.load(sys.stdin))
    else:
        raise SystemExit(f"unknown command {cmd}")
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
