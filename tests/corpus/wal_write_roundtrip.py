#!/usr/bin/env python3
"""qdrant-edge-py side of tests/wal_write_roundtrip.rs (the WAL writer against Qdrant Edge).

Run with the project's oracle venv (qdrant-edge-py 0.9.0); the Rust test drives it:

    python tests/corpus/wal_write_roundtrip.py create  SHARD OPS_JSON   # create, apply, flush, close
    python tests/corpus/wal_write_roundtrip.py fresh   SHARD CAPACITY   # empty shard, no WAL yet,
                                                                        # wal_options.segment_capacity set
    python tests/corpus/wal_write_roundtrip.py write   SHARD OPS_JSON   # load, apply, os._exit(0) (a crash)
    python tests/corpus/wal_write_roundtrip.py inspect SHARD [--crash]  # load (replays the WAL), print state

OPS_JSON is a JSON list of operations:
    {"op": "upsert", "id": 1, "vector": [f32 x4], "payload": {...} | null}
    {"op": "set_payload", "ids": [..], "payload": {...}}
    {"op": "delete", "ids": [..]}

`inspect` prints one JSON line: {"count": n, "points": {"<id>": {"vector": [...], "payload": {...}}}}
and then closes the shard (flush: `first-index` advances, old WAL segments go), or with
`--crash` exits with os._exit(0) so nothing on disk changes after the replay.
"""

import json
import os
import shutil
import sys

from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeVectorParams,
    Point,
    ScrollRequest,
    UpdateOperation,
)

DIM = 4


def config():
    return EdgeConfig(vectors={"": EdgeVectorParams(size=DIM, distance=Distance.Dot)})


def apply(shard, ops):
    for op in ops:
        kind = op["op"]
        if kind == "upsert":
            p = Point(id=op["id"], vector=op["vector"], payload=op.get("payload"))
            shard.update(UpdateOperation.upsert_points([p]))
        elif kind == "set_payload":
            shard.update(UpdateOperation.set_payload(op["ids"], op["payload"]))
        elif kind == "delete":
            shard.update(UpdateOperation.delete_points(op["ids"]))
        else:
            raise SystemExit(f"unknown op {kind!r}")


def state(shard):
    points = {}
    offset = None
    while True:
        recs, offset = shard.scroll(ScrollRequest(offset=offset, limit=1000, with_payload=True, with_vector=True))
        for r in recs:
            v = r.vector
            if isinstance(v, dict):
                v = v.get("")
            points[str(r.id)] = {"vector": v, "payload": r.payload}
        if offset is None:
            break
    return {"count": shard.count(CountRequest(exact=True)), "points": points}


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "create":
        if os.path.exists(path):
            shutil.rmtree(path)
        shard = EdgeShard.create(path, config())
        apply(shard, json.loads(sys.argv[3]))
        shard.flush()
        shard.close()
    elif cmd == "fresh":
        if os.path.exists(path):
            shutil.rmtree(path)
        shard = EdgeShard.create(path, config())
        shard.close()
        shutil.rmtree(os.path.join(path, "wal"))
        cfg_path = os.path.join(path, "edge_config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["wal_options"] = {"segment_capacity": int(sys.argv[3]), "segment_queue_len": 0, "retain_closed": 1}
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
    elif cmd == "write":
        shard = EdgeShard.load(path)
        apply(shard, json.loads(sys.argv[3]))
        sys.stdout.flush()
        os._exit(0)  # no flush, no close: the operations live only in the WAL
    elif cmd == "inspect":
        shard = EdgeShard.load(path)
        print(json.dumps(state(shard)))
        sys.stdout.flush()
        if "--crash" in sys.argv[3:]:
            os._exit(0)
        shard.close()
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
