"""qdrant-edge-py side of tests/field_index_roundtrip.rs.

  make <shard_dir>              create a shard (one appendable segment, WAL disabled, vector
                                "d": 2 x Dot), create the payload indexes of INDEXES, upsert the
                                points of `points()` in one batch, flush, close
  apply <shard_dir> <ops.json>  load, apply the operations, flush, close. ops: a list of
                                {"upsert": [{"id", "vector", "payload"}]} | {"delete": [ids]} |
                                {"overwrite_payload": {"id", "payload"}} |
                                {"create_index": [field, schema]} | {"delete_index": field}
  make_optimized <shard_dir> <n> <optimize: 0|1>
                                a shard for the immutable (optimized-segment) indexes: the
                                indexes of INDEXES + EXTRA, n points (every 10th with an empty
                                payload) with the sparse vectors of SPARSE, indexing threshold
                                1 kB; optimized by qdrant-edge-py
                                when the last argument is 1
  text_scores <shard_dir>       load, print every BM25 match (id, score) of text queries
                                on "ts", sorted by score, then id
  sparse_scores <shard_dir>     load, print every match (id, score) of sparse queries on each
                                sparse vector, sorted by score, then id
  counts <shard_dir> <filters.json>
                                load, print {"total", "counts": [exact count per REST filter],
                                "schema": {field: {"type", "points"}}}

Schemas are Qdrant JSON schemas ("keyword" or {"type": "text", "phrase_matching": true, ...}).
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import qdrant_edge as qe  # noqa: E402
from rest import filter_in  # noqa: E402

INDEXES = [
    ("k", "keyword"),
    ("n", "integer"),
    ("f", "float"),
    ("b", "bool"),
    ("dt", "datetime"),
    ("u", "uuid"),
    ("g", "geo"),
    ("t", "text"),
    ("meta.tag", "keyword"),
    ("ni", {"type": "integer", "lookup": False}),
    ("tp", {"type": "text", "phrase_matching": True}),
    ("ts", {"type": "text", "scoring": True}),
]
N = 80

PARAMS = {
    "keyword": qe.KeywordIndexParams,
    "integer": qe.IntegerIndexParams,
    "float": qe.FloatIndexParams,
    "geo": qe.GeoIndexParams,
    "text": qe.TextIndexParams,
    "bool": qe.BoolIndexParams,
    "datetime": qe.DatetimeIndexParams,
    "uuid": qe.UuidIndexParams,
}
TYPES = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "geo": qe.PayloadSchemaType.Geo,
    "text": qe.PayloadSchemaType.Text,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid,
}


def schema_in(s):
    if isinstance(s, str):
        return TYPES[s]
    kw = {k: v for k, v in s.items() if k != "type"}
    if "tokenizer" in kw:
        kw["tokenizer"] = getattr(qe.TokenizerType, kw["tokenizer"].capitalize())
    return PARAMS[s["type"]](**kw)


WORDS = ["alpha", "Beta", "gamma", "delta", "eps", "zeta", "ETA", "theta"]


def payload(rng, i):
    """Deterministic, varied payloads: arrays, type mismatches, nulls, missing fields."""
    p = {}
    c = i % 9
    if c != 0:
        p["k"] = rng.choice([["red", "blue", "red"], "green", "blue", 5, None, [], [None, "red"], ["x", 3]])
    if c != 1:
        p["n"] = rng.choice([i, [i, i + 1.0], 2.5, "7", None, [3, "4", 5.5], -i, 9007199254740993])
    if c != 2:
        p["f"] = rng.choice([i / 4, [1, 2.5], "x", None, -0.0, [i * 1.5]])
    p["b"] = rng.choice([True, False, [True, False], "true", None, [None], [], 1])
    if c != 3:
        p["dt"] = rng.choice([
            f"2024-01-{1 + i % 28:02d}T10:00:00Z", "2024-02-03", ["2023-05-06 07:08:09", "bad"],
            "2024-03-04T05:06:07.123456789+02:00", 17, None,
        ])
    if c != 4:
        p["u"] = rng.choice([
            "12345678-1234-5678-1234-567812345678", f"00000000-0000-0000-0000-{i:012d}", ["bad", f"{i:032x}"],
            "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", 3,
        ])
    if c != 5:
        p["g"] = rng.choice([
            {"lon": (i % 360) - 179.5, "lat": (i % 180) - 89.5}, [{"lon": 1, "lat": 2}, {"lon": 3.5, "lat": -4}],
            {"lon": 200, "lat": 0}, {"lat": 1}, "here",
        ])
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 5)))
    p["t"] = rng.choice([text, [text, "Alpha beta"], "!!!", 12, text.upper()])
    p["tp"] = rng.choice([text, [text, "gamma delta"], ["", "eta"], "..."])
    p["ts"] = rng.choice([text, [text, "zeta zeta"], "?"])
    p["meta"] = rng.choice([{"tag": rng.choice(["m1", "m2"])}, {"tag": ["m1", "m3"]}, [{"tag": "m1"}], {}])
    p["ni"] = rng.choice([i, [1, 2], "x"])
    p["extra"] = rng.choice(["e1", "e2", ["e1", "e3"], 4, None])
    p["xi"] = rng.choice([i % 5, [1, 2], None, "q"])
    p["xb"] = rng.choice([True, False, None])
    p["xt"] = rng.choice([text, [text, "delta gamma"], None, 3])
    return p


def points():
    rng = random.Random(11)
    return [qe.Point(i, {"d": [float(i % 7), 1.0]}, payload(rng, i)) for i in range(N)]


def config():
    return qe.EdgeConfig(
        vectors={"d": qe.EdgeVectorParams(2, qe.Distance.Dot)},
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1_000_000),
        wal_enabled=False,
        max_search_threads=1,
    )


EXTRA = [
    ("kd", {"type": "keyword", "on_disk": True}),
    ("kp", {"type": "keyword", "prefix": True}),
    ("ou", "uuid"),
    ("big", "keyword"),
    ("bigi", {"type": "integer", "range": False}),
    ("fl", {"type": "float", "on_disk": True}),
    ("none", "keyword"),
]


SPARSE = {
    "s32": {},
    "s16": {"datatype": "Float16"},
    "s8": {"datatype": "Uint8"},
    "sidf": {"modifier": "Idf"},
}


def sparse_params(p):
    kw = {}
    if "datatype" in p:
        kw["datatype"] = getattr(qe.VectorStorageDatatype, p["datatype"])
    if "modifier" in p:
        kw["modifier"] = getattr(qe.Modifier, p["modifier"])
    return qe.EdgeSparseVectorParams(**kw)


def optimized_points(n):
    rng = random.Random(11)
    r2 = random.Random(5)
    pts = []
    for i in range(n):
        p = payload(rng, i)
        p["kd"] = f"d{i % 13}"
        p["kp"] = ["pre" + str(i % 17), "x", "pre" + str(i % 17)]
        p["ou"] = f"00000000-0000-0000-0000-{(i % 163):012d}"
        p["big"] = [f"key-{i}", f"alt-{i}"] if i % 4 else ["", "ÿ", f"ключ-{i}"]
        p["bigi"] = [i * 7919 - 10**12, -i]
        p["fl"] = [((i * 37) % 101) / 7.0, -0.0, 0.0, ((i * 37) % 101) / 7.0]
        if i % 10 == 7:
            p = {}
        vec = {"d": [float(i % 7), 1.0]}
        for name in SPARSE:
            if i % 6 != 0:
                k = r2.randint(1, 6)
                # a few hot dimensions give posting lists with full 128-point chunks
                idx = r2.sample(range(1000), k) + ([1000 + i % 3] if i % 2 else [])
                vec[name] = qe.SparseVector(idx, [r2.uniform(-2, 3) for _ in idx])
        pts.append(qe.Point(i, vec, p))
    return pts


def apply(shard, ops):
    for op in ops:
        if "upsert" in op:
            pts = [qe.Point(p["id"], {"d": p["vector"]}, p["payload"]) for p in op["upsert"]]
            shard.update(qe.UpdateOperation.upsert_points(pts))
        elif "delete" in op:
            shard.update(qe.UpdateOperation.delete_points(op["delete"]))
        elif "overwrite_payload" in op:
            o = op["overwrite_payload"]
            shard.update(qe.UpdateOperation.overwrite_payload([o["id"]], o["payload"]))
        elif "create_index" in op:
            field, schema = op["create_index"]
            shard.update(qe.UpdateOperation.create_field_index(field, schema_in(schema)))
        elif "delete_index" in op:
            shard.update(qe.UpdateOperation.delete_field_index(op["delete_index"]))
        else:
            raise SystemExit(f"unknown op {op}")


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "make":
        shard = qe.EdgeShard.create(path, config())
        for field, schema in INDEXES:
            shard.update(qe.UpdateOperation.create_field_index(field, schema_in(schema)))
        shard.update(qe.UpdateOperation.upsert_points(points()))
        shard.flush()
        shard.close()
        print(json.dumps({"ok": True}))
    elif cmd == "make_optimized":
        n, optimize = int(sys.argv[3]), sys.argv[4] == "1"
        cfg = qe.EdgeConfig(
            vectors={"d": qe.EdgeVectorParams(2, qe.Distance.Dot)},
            sparse_vectors={name: sparse_params(p) for name, p in SPARSE.items()},
            optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
            wal_enabled=False,
            max_search_threads=1,
        )
        shard = qe.EdgeShard.create(path, cfg)
        for field, schema in INDEXES + EXTRA:
            shard.update(qe.UpdateOperation.create_field_index(field, schema_in(schema)))
        shard.update(qe.UpdateOperation.upsert_points(optimized_points(n)))
        shard.flush()
        if optimize:
            shard.optimize()
            shard.flush()
        shard.close()
        print(json.dumps({"ok": True}))
    elif cmd == "apply":
        ops = json.load(open(sys.argv[3]))
        shard = qe.EdgeShard.load(path)
        apply(shard, ops)
        shard.flush()
        shard.close()
        print(json.dumps({"ok": True}))
    elif cmd == "text_scores":
        shard = qe.EdgeShard.load(path)
        out = []
        for text in ["alpha", "zeta", "beta gamma", "eta theta delta", "ALPHA alpha"]:
            # every match (ties come back in segment order, which optimizing changes)
            r = shard.query(qe.QueryRequest(query=qe.TextQuery("ts", text), limit=10000, with_payload=False))
            out.append(sorted([[p.id, p.score] for p in r], key=lambda x: (-x[1], x[0])))
        shard.close()
        print(json.dumps(out))
    elif cmd == "sparse_scores":
        shard = qe.EdgeShard.load(path)
        out = []
        for name in SPARSE:
            for q in ([1000, 1001, 5], [3, 77, 500, 999]):
                v = qe.SparseVector(q, [1.0, 0.5, 2.0, -1.0][: len(q)])
                r = shard.query(qe.QueryRequest(query=qe.Query.Nearest(v, using=name), limit=10000, with_payload=False))
                out.append(sorted([[p.id, round(p.score, 5)] for p in r], key=lambda x: (-x[1], x[0])))
        shard.close()
        print(json.dumps(out))
    elif cmd == "counts":
        filters = json.load(open(sys.argv[3]))
        shard = qe.EdgeShard.load(path)
        counts = [shard.count(qe.CountRequest(filter=filter_in(f), exact=True)) for f in filters]
        total = shard.count(qe.CountRequest(exact=True))
        schema = {k: {"type": str(v.data_type).split(".")[-1].lower(), "points": v.points}
                  for k, v in shard.info().payload_schema.items()}
        shard.close()
        print(json.dumps({"total": total, "counts": counts, "schema": schema}))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
