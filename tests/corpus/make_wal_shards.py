#!/usr/bin/env python3
"""Test-corpus builder: real Qdrant Edge WALs written by qdrant-edge-py 0.9.0.

Run with the project's oracle venv:

    .venv/bin/python tests/corpus/make_wal_shards.py [--out CORPUS] [NAME...]

It writes, under ``CORPUS/wal/`` (``--out``, else ``$QEW_CORPUS``, else ``<crate>/target/corpus``):

* ``<name>/``               a shard directory (its ``wal/`` is what tests/wal_real.rs reads)
* ``<name>.expected.json``  what the script did, derived from the script itself: one record
                            per WAL entry (operation key, ids, vector names, ...), the logical
                            first index, and the next index.

Each shard is produced in a child process that ends with ``os._exit(0)``: no flush, no close,
no destructors, exactly like a crash right after the last update returned. The WAL pages are
written through a shared mmap, so they are in the file even though nothing was synced.

Shards:

* ``all_ops``      every operation kind edge-py can issue, nothing flushed.
* ``flushed``      a few ops, ``flush()`` (writes ``first-index``), then more ops, crash.
* ``rollover``     enough large upserts to fill the 32 MiB open segment, so the WAL has a
                   ``closed-0`` segment followed by an open one.
"""

import argparse
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from qdrant_edge import (
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    HasIdCondition,
    KeywordIndexParams,
    MatchValue,
    Modifier,
    MultiVectorComparator,
    MultiVectorConfig,
    PayloadSchemaType,
    Point,
    PointVectors,
    SparseVector,
    UpdateMode,
    UpdateOperation,
)

CRATE = Path(__file__).resolve().parents[2]
OUT = None  # set in main(): <corpus>/wal

U1 = "550e8400-e29b-41d4-a716-446655440000"
U2 = "12345678-1234-5678-1234-567812345678"
MAXID = 18446744073709551615


def config():
    return EdgeConfig(
        vectors={
            "": EdgeVectorParams(size=4, distance=Distance.Cosine),
            "mv": EdgeVectorParams(
                size=2,
                distance=Distance.Dot,
                multivector_config=MultiVectorConfig(MultiVectorComparator.MaxSim),
            ),
        },
        sparse_vectors={"sp": EdgeSparseVectorParams(modifier=Modifier.Idf)},
    )


def city(value):
    return Filter(must=[FieldCondition(key="city", match=MatchValue(value))])


class Recorder:
    """Applies operations and records what each one must look like in the WAL."""

    def __init__(self, shard):
        self.shard = shard
        self.ops = []

    def apply(self, op, expect):
        self.shard.update(op)
        self.ops.append(expect)


def all_ops(shard):
    r = Recorder(shard)
    r.apply(
        UpdateOperation.create_field_index("city", PayloadSchemaType.Keyword),
        {"kind": "create_index", "field_name": "city", "field_schema": "keyword"},
    )
    r.apply(
        UpdateOperation.upsert_points(
            [
                Point(
                    1,
                    {
                        "": [0.25, -1.5, 0.1, 3.0],
                        "mv": [[1.0, 2.0], [3.0, 4.0]],
                        "sp": SparseVector(indices=[10, 3], values=[0.5, 0.25]),
                    },
                    {"city": "Berlin", "nested": {"a": [1, 2]}, "f": 0.1, "big": -(2**40)},
                ),
                Point(U1, {"": [1.0, 0.0, 0.0, 0.0], "mv": [[0.5, 0.5]]}, {"city": "Paris"}),
                Point(2, [0.0, 1.0, 0.0, 0.0], None),
                Point(MAXID, {"sp": SparseVector(indices=[1], values=[2.0])}, {"city": "Berlin"}),
                Point(uuid.UUID(U2), {"": [0.5, 0.5, 0.5, 0.5]}, {}),
            ]
        ),
        {
            "kind": "upsert_points",
            "ids": [1, U1, 2, MAXID, U2],
            "vector_names": [["", "mv", "sp"], ["", "mv"], [""], ["sp"], [""]],
            "vector_1": {"": [0.25, -1.5, 0.1, 3.0], "mv": [[1.0, 2.0], [3.0, 4.0]],
                         "sp": {"indices": [10, 3], "values": [0.5, 0.25]}},
            "payload_1": {"city": "Berlin", "nested": {"a": [1, 2]}, "f": 0.1, "big": -(2**40)},
        },
    )
    r.apply(
        UpdateOperation.upsert_points(
            [Point(2, [0.0, 0.0, 1.0, 0.0], {"city": "Rome"})],
            condition=city("Berlin"),
            update_mode=UpdateMode.UpdateOnly,
        ),
        {"kind": "upsert_points_conditional", "ids": [2], "update_mode": "update_only"},
    )
    r.apply(
        UpdateOperation.set_payload([1, U1], {"x": 1.5}, key="nested"),
        {"kind": "set_payload", "ids": [1, U1], "key": "nested", "payload": {"x": 1.5}},
    )
    r.apply(
        UpdateOperation.set_payload_by_filter(city("Paris"), {"y": 2}),
        {"kind": "set_payload", "filter": True, "key": None, "payload": {"y": 2}},
    )
    r.apply(
        UpdateOperation.overwrite_payload([2], {"city": "Paris"}),
        {"kind": "overwrite_payload", "ids": [2], "key": None, "payload": {"city": "Paris"}},
    )
    r.apply(
        UpdateOperation.overwrite_payload_by_filter(city("Rome"), {"z": [True, None]}),
        {"kind": "overwrite_payload", "filter": True, "key": None, "payload": {"z": [True, None]}},
    )
    r.apply(
        UpdateOperation.delete_payload([1], ["city"]),
        {"kind": "delete_payload", "ids": [1], "keys": ["city"]},
    )
    r.apply(
        UpdateOperation.delete_payload_by_filter(city("Paris"), ["y", "nested.a"]),
        {"kind": "delete_payload", "filter": True, "keys": ["y", "nested.a"]},
    )
    r.apply(UpdateOperation.clear_payload([U1]), {"kind": "clear_payload", "ids": [U1]})
    r.apply(
        UpdateOperation.clear_payload_by_filter(city("Berlin")),
        {"kind": "clear_payload_by_filter", "filter": True},
    )
    r.apply(
        UpdateOperation.update_vectors([PointVectors(1, {"": [1.0, 1.0, 1.0, 1.0]})]),
        {"kind": "update_vectors", "ids": [1], "vector_names": [[""]], "update_filter": False},
    )
    r.apply(
        UpdateOperation.update_vectors(
            [PointVectors(U1, {"mv": [[9.0, 8.0]]})], condition=Filter(must=[HasIdCondition({U1})])
        ),
        {"kind": "update_vectors", "ids": [U1], "vector_names": [["mv"]], "update_filter": True},
    )
    r.apply(
        UpdateOperation.delete_vectors([1], ["mv"]),
        {"kind": "delete_vectors", "ids": [1], "names": ["mv"]},
    )
    r.apply(
        UpdateOperation.delete_vectors_by_filter(city("Paris"), ["sp"]),
        {"kind": "delete_vectors", "filter": True, "names": ["sp"]},
    )
    r.apply(
        UpdateOperation.create_dense_vector("newv", 3, Distance.Dot),
        {"kind": "create_vector_name", "name": "newv"},
    )
    r.apply(
        UpdateOperation.create_sparse_vector("newsp", modifier=Modifier.Idf),
        {"kind": "create_vector_name", "name": "newsp"},
    )
    r.apply(UpdateOperation.delete_vector_name("newv"), {"kind": "delete_vector_name", "name": "newv"})
    r.apply(
        UpdateOperation.delete_points([2, U1]),
        {"kind": "delete_points", "ids": [2, U1]},
    )
    r.apply(
        UpdateOperation.delete_points_by_filter(city("Berlin")),
        {"kind": "delete_points_by_filter", "filter": True},
    )
    r.apply(UpdateOperation.delete_field_index("city"), {"kind": "delete_index", "field_name": "city"})
    r.apply(
        UpdateOperation.create_field_index("tenant", KeywordIndexParams(is_tenant=True)),
        {"kind": "create_index", "field_name": "tenant", "field_schema": "object"},
    )
    return {"ops": r.ops, "first_index": 0, "next_index": len(r.ops), "flushed": False}


def flushed(shard):
    r = Recorder(shard)
    for i in range(3):
        r.apply(
            UpdateOperation.upsert_points([Point(i, [1.0, float(i), 0.0, 0.0], {"i": i})]),
            {"kind": "upsert_points", "ids": [i], "vector_names": [[""]]},
        )
    shard.flush()
    for i in range(3, 5):
        r.apply(
            UpdateOperation.upsert_points([Point(i, [1.0, float(i), 0.0, 0.0], {"i": i})]),
            {"kind": "upsert_points", "ids": [i], "vector_names": [[""]]},
        )
    r.apply(UpdateOperation.delete_points([0]), {"kind": "delete_points", "ids": [0]})
    # first_index is read back from the first-index file by the test (Qdrant decides the ack).
    return {"ops": r.ops, "first_index": None, "next_index": len(r.ops), "flushed": True}


def rollover(shard):
    r = Recorder(shard)
    blob = "q" * (3 * 1024 * 1024)
    n = 14  # 14 x ~3 MiB > 32 MiB: the first open segment fills up and is closed
    for i in range(n):
        r.apply(
            UpdateOperation.upsert_points([Point(i, [1.0, 0.0, 0.0, float(i)], {"blob": blob, "i": i})]),
            {"kind": "upsert_points", "ids": [i], "vector_names": [[""]]},
        )
    return {"ops": r.ops, "first_index": 0, "next_index": n, "flushed": False, "closed_segments": True}


SHARDS = {"all_ops": all_ops, "flushed": flushed, "rollover": rollover}


def build(name):
    path = OUT / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    shard = EdgeShard.create(str(path), config())
    expected = SHARDS[name](shard)
    expected["name"] = name
    with open(OUT / f"{name}.expected.json", "w") as f:
        json.dump(expected, f, indent=1)
    sys.stdout.flush()
    os._exit(0)  # crash: no flush, no close, no destructors


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="corpus root (default $QEW_CORPUS or <crate>/target/corpus)")
    ap.add_argument("names", nargs="*", choices=[[]] + list(SHARDS), help="shards to build (default all)")
    args = ap.parse_args()
    corpus = Path(args.out or os.environ.get("QEW_CORPUS") or CRATE / "target" / "corpus")
    OUT = corpus / "wal"
    OUT.mkdir(parents=True, exist_ok=True)
    names = args.names or list(SHARDS)
    for name in names:
        pid = os.fork()
        if pid == 0:
            try:
                build(name)
            except BaseException as e:  # report and exit non-zero from the child
                print(f"{name}: {e!r}", file=sys.stderr)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            sys.exit(f"building {name} failed")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
