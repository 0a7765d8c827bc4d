"""Shard recipes for the differential corpus.

Each recipe is a *plan*: a pure function of a fixed seed that returns the shard's EdgeConfig and
the list of steps to apply (qdrant_edge UpdateOperations, or the markers "flush", "optimize",
"crash"). Being pure, a plan can be recomputed by a process that did not execute it (the WAL
shard is written by a child process that dies at "crash"; the parent recomputes the plan to know
what the shard must contain).

Data are deterministic (random.Random(seed)): ids, vectors, payloads.
"""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import qdrant_edge as qe

# ---------------------------------------------------------------------------------------------
# vector specs


@dataclass
class Vec:
    name: str  # "" = the default unnamed vector
    kind: str  # "dense" | "multi" | "sparse"
    dim: int = 0
    distance: str = "Cosine"
    datatype: str = "Float32"
    idf: bool = False
    optional: float = 0.0  # fraction of points without this vector
    quantized: bool = False

    def params(self):
        if self.kind == "sparse":
            return qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if self.idf else None)
        kw: dict[str, Any] = {"datatype": getattr(qe.VectorStorageDatatype, self.datatype)}
        if self.kind == "multi":
            kw["multivector_config"] = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
        if self.quantized:
            kw["quantization_config"] = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99)
        return qe.EdgeVectorParams(self.dim, getattr(qe.Distance, self.distance), **kw)

    def random(self, rng: random.Random) -> Any:
        """A random vector in REST JSON form (list / list of lists / {"indices","values"})."""
        if self.kind == "sparse":
            nnz = rng.randint(1, 12)
            idx = sorted(rng.sample(range(0, 1000 if not self.idf else 300), nnz))
            lo = 0.05 if self.idf else -1.0
            return {"indices": idx, "values": [round(rng.uniform(lo, 2.0), 4) for _ in idx]}
        if self.kind == "multi":
            return [self._dense(rng) for _ in range(rng.randint(1, 4))]
        return self._dense(rng)

    def _dense(self, rng: random.Random) -> list:
        if self.datatype == "Uint8":
            return [float(rng.randint(0, 255)) for _ in range(self.dim)]
        return [round(rng.gauss(0, 1), 5) for _ in range(self.dim)]


def to_py_vector(v: Any) -> Any:
    if isinstance(v, dict):
        return qe.SparseVector(v["indices"], v["values"])
    return v


# ---------------------------------------------------------------------------------------------
# payloads

COLORS = ["red", "green", "blue", "white", "black", "purple"]
WORDS = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega"]
DT_FORMATS = [
    "{y}-{m:02d}-{d:02d}T{h:02d}:00:00Z",
    "{y}-{m:02d}-{d:02d}T{h:02d}:30:00+02:00",
    "{y}-{m:02d}-{d:02d}T{h:02d}:15:00.250Z",
    "{y}-{m:02d}-{d:02d} {h:02d}:00:00",
    "{y}-{m:02d}-{d:02d}",
]
BIG_INTS = [2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 9007199254740993, 0, -1]


def _dt(rng: random.Random, fmt_any: bool) -> str:
    fmt = rng.choice(DT_FORMATS) if fmt_any else DT_FORMATS[0]
    return fmt.format(y=2026, m=rng.randint(1, 12), d=rng.randint(1, 28), h=rng.randint(0, 23))


def make_payload(rng: random.Random, n: int) -> dict:
    """Payload with the fixtures' fields (color, n, price, tags, flag, loc, created, nested,
    text, maybe) plus every other JSON shape."""
    p: dict[str, Any] = {
        "color": rng.choice(COLORS[:5]) if rng.random() > 0.02 else "purple",
        "n": n,
        "price": round(rng.uniform(0, 1000), 3),
        "tags": rng.sample(WORDS, rng.randint(0, 3)),
        "flag": rng.random() < 0.5,
        "loc": {"lon": rng.uniform(-10, 10), "lat": rng.uniform(40, 60)},
        "created": _dt(rng, False),
        "nested": {"a": {"b": rng.randint(0, 9)},
                   "list": [{"k": rng.choice(WORDS), "v": rng.randint(0, 99)} for _ in range(rng.randint(0, 2))]},
        "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))),
    }
    r = rng.random()
    if r < 0.15:
        p["maybe"] = None
    elif r < 0.3:
        p["maybe"] = "x"
    elif r < 0.45:
        p["maybe"] = 1
    elif r < 0.55:
        p["maybe"] = {}
    elif r < 0.65:
        p["maybe"] = []
    elif r < 0.7:
        p["maybe"] = [None]
    # else: missing
    p["uid"] = str(uuid.UUID(int=rng.getrandbits(128)))
    p["when"] = _dt(rng, True) if rng.random() < 0.9 else [_dt(rng, True), _dt(rng, True)]
    p["big"] = rng.choice(BIG_INTS)
    p["f"] = round(rng.uniform(-5, 5), 6)
    if rng.random() < 0.3:
        p["fs"] = [round(rng.uniform(-5, 5), 2) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.2:
        p["geo_many"] = [{"lon": rng.uniform(-10, 10), "lat": rng.uniform(40, 60)} for _ in range(2)]
    if rng.random() < 0.3:
        p["deep"] = {"x": {"y": {"z": [rng.randint(0, 3), "s", {"w": rng.choice(WORDS)}]}}}
    if rng.random() < 0.2:
        p["mixed"] = [1, "a", True, None, 2.5, {"o": rng.randint(0, 2)}]
    if rng.random() < 0.1:
        p["unicode"] = rng.choice(["héllo wörld", "naïve café ✓", "日本語 テキスト"])
    p["n_str"] = str(n % 50)
    p["flags"] = [rng.random() < 0.5 for _ in range(rng.randint(0, 2))]
    return p


# ---------------------------------------------------------------------------------------------
# ids


def make_ids(rng: random.Random, n: int, kind: str) -> list:
    """REST-form ids: ints (u64) or UUID strings."""
    out: list = []
    specials = [0, 2**63, 2**64 - 1, 2**53 + 1, 2**32, 2**32 - 1]
    for i in range(n):
        if kind == "uuid" or (kind == "mixed" and i % 3 == 0):
            out.append(str(uuid.UUID(int=rng.getrandbits(128))))
        elif i < len(specials) and kind == "u64":
            out.append(specials[i])
        else:
            out.append(10 + i * 7 + rng.randint(0, 3))
    # unique, keep order
    seen, uniq = set(), []
    for x in out:
        if x not in seen:
            seen.add(x)
            uniq.append(x)
    return uniq


def py_id(x: Any) -> Any:
    return uuid.UUID(x) if isinstance(x, str) else x


# ---------------------------------------------------------------------------------------------
# shard specs and plans


@dataclass
class Spec:
    name: str
    vectors: list
    n: int
    ids: str = "u64"
    seed: int = 1
    indexes: list = field(default_factory=list)  # [(key, PayloadSchemaType name)]
    indexes_first: bool = False
    optimize: bool = True
    mutate: bool = True
    hnsw: bool = True
    wal_crash: bool = False
    payload_ops: bool = False
    delete_all: bool = False

    @property
    def default_only(self) -> bool:
        return len(self.vectors) == 1 and self.vectors[0].name == ""


@dataclass
class Plan:
    config: Any
    steps: list  # UpdateOperation | "flush" | "optimize" | "crash"
    ever_ids: list  # every id ever upserted (REST form)
    expected_live: set | None = None  # exact live id set when the plan tracks it
    after_crash_ids: list = field(default_factory=list)  # ids upserted after the last flush


def point_vector(spec: Spec, rng: random.Random) -> Any:
    if spec.default_only:
        return to_py_vector(spec.vectors[0].random(rng))
    vec = {}
    for v in spec.vectors:
        if v.optional and rng.random() < v.optional:
            continue
        vec[v.name] = to_py_vector(v.random(rng))
    return vec


def _config(spec: Spec):
    dense = {v.name: v.params() for v in spec.vectors if v.kind != "sparse"}
    sparse = {v.name: v.params() for v in spec.vectors if v.kind == "sparse"} or None
    if spec.default_only:
        vectors = spec.vectors[0].params()
    else:
        vectors = dense or None
    return qe.EdgeConfig(
        vectors=vectors,
        sparse_vectors=sparse,
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(
            default_segment_number=2,
            indexing_threshold=10 if spec.hnsw else 1_000_000,
            deleted_threshold=0.2,
            vacuum_min_vector_number=1000,
        ),
        max_search_threads=1,
    )


def _index_op(key: str, typ: str):
    return qe.UpdateOperation.create_field_index(key, getattr(qe.PayloadSchemaType, typ))


def _f(**kw) -> qe.Filter:
    return qe.Filter(**kw)


def make_plan(spec: Spec) -> Plan:
    rng = random.Random(spec.seed)
    ids = make_ids(rng, spec.n, spec.ids)
    steps: list = []
    live: set = set()
    ever: list = list(ids)
    tracked = True

    def upsert(batch_ids, payload_fn=None):
        pts = []
        for i in batch_ids:
            n = ids.index(i) if i in ids else len(ids) + ever.index(i)
            payload = payload_fn(i, n) if payload_fn else make_payload(rng, n)
            pts.append(qe.Point(py_id(i), point_vector(spec, rng), payload))
            live.add(i)
        for k in range(0, len(pts), 200):
            steps.append(qe.UpdateOperation.upsert_points(pts[k:k + 200]))

    if spec.indexes_first:
        steps += [_index_op(k, t) for k, t in spec.indexes]
    upsert(ids)
    if not spec.indexes_first:
        steps += [_index_op(k, t) for k, t in spec.indexes]

    if spec.delete_all:
        steps.append(qe.UpdateOperation.delete_points([py_id(i) for i in ids]))
        live.clear()
        steps.append("flush")
        return Plan(_config(spec), steps, ever, live)

    if spec.optimize:
        steps.append("optimize")

    if spec.wal_crash:
        steps.append("flush")

    after_crash: list = []
    if spec.mutate:
        # overwrite some points: a point in an optimized segment moves to the appendable one
        over = rng.sample(ids, max(1, len(ids) // 10))
        upsert(over)
        # update vectors only / payload only on others
        if not spec.default_only or True:
            upd = rng.sample(ids, max(1, len(ids) // 20))
            steps.append(qe.UpdateOperation.update_vectors(
                [qe.PointVectors(py_id(i), point_vector(spec, rng)) for i in upd if i in live]))
        setp = rng.sample(ids, max(1, len(ids) // 20))
        steps.append(qe.UpdateOperation.set_payload([py_id(i) for i in setp],
                                                    {"touched": True, "color": "touched"}))
        # delete some
        dele = rng.sample(ids, max(1, len(ids) // 12))
        steps.append(qe.UpdateOperation.delete_points([py_id(i) for i in dele]))
        live.difference_update(dele)
        # re-insert a few of the deleted ones (new version of a deleted id)
        back = dele[: max(1, len(dele) // 5)]
        upsert(back)
        # fresh points
        frng = random.Random(spec.seed + 1000)
        fresh = [str(uuid.UUID(int=frng.getrandbits(128))) if spec.ids == "uuid" or
                 (spec.ids == "mixed" and k % 2) else 50_000_000 + k * 13
                 for k in range(max(1, len(ids) // 13))]
        fresh = [x for x in fresh if x not in ever]
        ever += fresh
        upsert(fresh, lambda i, n: make_payload(rng, 100_000 + n))
        after_crash = list(fresh)
        # a named vector removed from some points
        named = [v for v in spec.vectors if v.name and v.kind != "sparse"]
        sparse = [v for v in spec.vectors if v.kind == "sparse"]
        if named and len(spec.vectors) > 1:
            dv = rng.sample(sorted(live, key=str), max(1, len(live) // 25))
            steps.append(qe.UpdateOperation.delete_vectors([py_id(i) for i in dv], [named[-1].name]))
        if sparse:
            dv = rng.sample(sorted(live, key=str), max(1, len(live) // 25))
            steps.append(qe.UpdateOperation.delete_vectors([py_id(i) for i in dv], [sparse[0].name]))

    if spec.payload_ops:
        tracked = False
        steps += payload_ops_steps(rng, sorted(live, key=str))

    if spec.wal_crash:
        steps.append("crash")
    else:
        steps.append("flush")
    return Plan(_config(spec), steps, ever, set(live) if tracked else None, after_crash)


EVERY_TYPE = {
    "s": "string", "i": -42, "f": 3.25, "b": True, "nul": None, "big": 2**64 - 1,
    "neg_big": -(2**63), "arr": [1, "x", None, False, 2.5, {"in": [1, 2]}],
    "obj": {"k": [1, {"z": False}], "e": {}, "ea": []},
    "geo": {"lon": 2.35, "lat": 48.85}, "dt": "2026-05-01T10:00:00Z",
    "objs": [{"k": "alpha", "v": 1}, {"k": "beta", "v": 2}],
}


def payload_ops_steps(rng: random.Random, live: list) -> list:
    U = qe.UpdateOperation
    pick = lambda k: [py_id(i) for i in rng.sample(live, min(k, len(live)))]
    color = lambda c: _f(must=[qe.FieldCondition("color", match=qe.MatchValue(c))])
    return [
        U.set_payload(pick(40), EVERY_TYPE),
        U.set_payload(pick(30), {"b": 7, "added": ["x", {"y": None}]}, key="nested.a"),
        U.set_payload(pick(20), {"fresh": 1.5}, key="newobj"),
        U.overwrite_payload(pick(30), {"only": "this", "n": -1, "flag": False, "tags": ["omega"]}),
        U.delete_payload(pick(40), ["color", "nested.a.b", "tags", "maybe"]),
        U.delete_payload(pick(20), ["nested.list[].k", "deep.x.y"]),
        U.clear_payload(pick(20)),
        U.set_payload_by_filter(color("red"), {"red_marked": True, "when": "2027-01-01T00:00:00Z"}),
        U.delete_payload_by_filter(color("green"), ["price", "loc"]),
        U.overwrite_payload_by_filter(_f(must=[qe.FieldCondition("n", range=qe.RangeFloat(lt=15))]),
                                      {"overwritten": True, "n": 7}),
        U.clear_payload_by_filter(_f(must=[qe.FieldCondition("n", range=qe.RangeFloat(gte=390, lt=395))])),
        U.delete_points_by_filter(color("purple")),
        "optimize",
        U.set_payload(pick(25), {"late": [{"lon": 1.0, "lat": 45.0}], "dt": "2026-12-31T23:59:59Z"}),
        U.delete_payload(pick(10), ["objs"]),
        qe.UpdateOperation.create_field_index("late", qe.PayloadSchemaType.Geo),
        qe.UpdateOperation.delete_field_index("price"),
    ]


def execute(path: str, plan: Plan) -> qe.EdgeShard | None:
    """Apply a plan to a new shard at `path`. Returns the open shard (None after "crash")."""
    shard = qe.EdgeShard.create(path, plan.config)
    for st in plan.steps:
        if st == "flush":
            shard.flush()
        elif st == "optimize":
            shard.optimize()
        elif st == "crash":
            # die without flushing or closing: the WAL holds operations the segments lack
            os._exit(0)
        else:
            shard.update(st)
    return shard


ALL_INDEXES = [("color", "Keyword"), ("n", "Integer"), ("price", "Float"), ("flag", "Bool"),
               ("created", "Datetime"), ("loc", "Geo"), ("text", "Text"), ("uid", "Uuid"),
               ("when", "Datetime"), ("f", "Float"), ("tags", "Keyword")]

SPECS = [
    Spec("default_cosine", [Vec("", "dense", 24, "Cosine")], 1500, ids="u64", seed=11,
         indexes=ALL_INDEXES),
    Spec("named_dot_f16", [Vec("a", "dense", 16, "Dot", "Float16", quantized=True),
                           Vec("b", "dense", 8, "Euclid", optional=0.3)], 800, ids="uuid", seed=12,
         indexes=[("color", "Keyword"), ("n", "Integer"), ("uid", "Uuid")], optimize=False,
         indexes_first=True),
    Spec("euclid_uint8", [Vec("", "dense", 16, "Euclid", "Uint8")], 600, ids="u64", seed=13),
    Spec("manhattan_mixed", [Vec("m", "dense", 12, "Manhattan"),
                             Vec("h", "dense", 10, "Manhattan", "Float16"),
                             Vec("u", "dense", 8, "Dot", "Uint8", optional=0.2)], 700, ids="mixed",
         seed=14, indexes=[("color", "Keyword"), ("price", "Float"), ("flag", "Bool")]),
    Spec("multivector", [Vec("mv", "multi", 8, "Cosine"), Vec("md", "multi", 6, "Dot", "Float16"),
                         Vec("me", "multi", 4, "Euclid", optional=0.25)], 400, ids="u64", seed=15,
         indexes=[("color", "Keyword"), ("n", "Integer")]),
    Spec("sparse", [Vec("d", "dense", 8, "Cosine"), Vec("sp", "sparse", optional=0.1),
                    Vec("idf", "sparse", idf=True, optional=0.1)], 800, ids="u64", seed=16,
         indexes=[("color", "Keyword"), ("text", "Text")]),
    Spec("payload_ops", [Vec("", "dense", 8, "Dot")], 400, ids="u64", seed=17,
         indexes=ALL_INDEXES, mutate=False, payload_ops=True, optimize=False),
    Spec("wal_replay", [Vec("v", "dense", 16, "Cosine"), Vec("s", "sparse")], 500, ids="u64",
         seed=18, indexes=[("color", "Keyword"), ("n", "Integer"), ("flag", "Bool")],
         wal_crash=True, optimize=True),
    Spec("all_deleted", [Vec("", "dense", 4, "Euclid")], 60, ids="u64", seed=19,
         indexes=[("color", "Keyword")], optimize=False, mutate=False, delete_all=True),
]

SPEC_BY_NAME: dict[str, Spec] = {s.name: s for s in SPECS}
