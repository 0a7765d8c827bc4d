#!/usr/bin/env python3
"""Build the filter oracle corpus with qdrant-edge-py 0.9.0.

Creates shards holding the same ~200 points (varied payloads, two named vectors, some
points lacking vector "b"), once without payload indexes and once with indexes on most fields
(incl. a text index), runs every filter of FILTERS through `scroll` and `count`, and writes

    $QEW_CORPUS/filters/cases.json = {
        "points":  [{"id", "payload", "vectors": [names present]}],
        "runs":    [{"name", "indexed_fields": {path: schema as in payload_index/config.json},
                     "cases": [{"filter": REST JSON, "expected_ids": [...]}]}],
        "skipped": [{"filter", "reason"}]
    }

Filters are written as REST JSON and converted to qdrant_edge objects here.
Usage: filter_oracle.py [--out] [out_dir]   (default $QEW_CORPUS or <crate>/target/corpus)
"""
import json
import os
import random
import shutil
import sys
import tempfile
import uuid

import qdrant_edge as q

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(os.path.dirname(HERE))


# --------------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------------

WORDS = ["apple", "Banana", "cherry", "date", "elder", "fig", "grape", "hello", "world", "the",
         "quick", "brown", "fox", "jumps", "Über", "naïve", "x", "ab", "abc"]
KEYWORDS = ["red", "green", "blue", "Red", "", "red green", "rød"]
DATES = ["2020-01-01T00:00:00Z", "2020-01-01T12:30:00+02:00", "2020-06-15", "2020-06-15 08:00:00",
         "2021-03-04T05:06:07.123456789Z", "2019-12-31T23:59:59", "2020-01-01T10:00",
         "2020-01-01T00:00:00-0500", "not a date", "2022-02-30", "1969-07-20T20:17:40Z"]


def rand_text(r):
    n = r.randint(0, 6)
    sep = r.choice([" ", ", ", "-", "  ", ". "])
    return sep.join(r.choice(WORDS) for _ in range(n))


def make_payload(i, r):
    p = {}
    c = r.random()
    # keyword-ish field with type noise
    if c < 0.55:
        p["kw"] = r.choice(KEYWORDS)
    elif c < 0.7:
        p["kw"] = [r.choice(KEYWORDS) for _ in range(r.randint(0, 3))]
    elif c < 0.75:
        p["kw"] = r.choice([5, None, True, ["red", 5], ["red", None]])
    # integer-ish
    c = r.random()
    if c < 0.4:
        p["n"] = r.randint(-5, 15)
    elif c < 0.5:
        p["n"] = r.choice([5.0, 5.5, -0.5, 10.0, 1e20, 2**62])
    elif c < 0.62:
        p["n"] = [r.randint(0, 10) for _ in range(r.randint(0, 4))]
    elif c < 0.7:
        p["n"] = r.choice(["5", None, [None], [5, "5"], {"v": 5}])
    # float
    if r.random() < 0.7:
        p["f"] = r.choice([r.uniform(-10, 10), r.randint(-3, 3), 0.5, 2.5, [1.5, 7.25]])
    # bool
    c = r.random()
    if c < 0.5:
        p["b"] = r.random() < 0.5
    elif c < 0.6:
        p["b"] = r.choice([[True, False], [False], "true", 1, None])
    # datetime
    c = r.random()
    if c < 0.6:
        p["dt"] = r.choice(DATES)
    elif c < 0.7:
        p["dt"] = [r.choice(DATES), r.choice(DATES)]
    # geo
    c = r.random()
    if c < 0.5:
        p["g"] = {"lon": round(r.uniform(-20, 40), 4), "lat": round(r.uniform(30, 60), 4)}
    elif c < 0.6:
        p["g"] = [{"lon": r.uniform(-20, 40), "lat": r.uniform(30, 60)} for _ in range(2)]
    elif c < 0.65:
        p["g"] = r.choice([{"lon": 10}, {"lon": 10, "lat": 100}, {"lat": 5, "lon": 5, "x": 1}, "10,20",
                           {"lon": 179.5, "lat": 0.5}, {"lon": -179.5, "lat": 0.5}])
    # text
    c = r.random()
    if c < 0.6:
        p["t"] = rand_text(r)
    elif c < 0.7:
        p["t"] = [rand_text(r) for _ in range(r.randint(1, 3))]
    elif c < 0.73:
        p["t"] = r.choice([5, None, ["hello", 7]])
    # uuid
    c = r.random()
    if c < 0.3:
        u = uuid.UUID(int=r.getrandbits(128))
        p["uid"] = r.choice([str(u), str(u).upper(), u.hex])
    elif c < 0.35:
        p["uid"] = "11111111-2222-3333-4444-555555555555"
    # arrays / emptiness
    c = r.random()
    if c < 0.5:
        p["tags"] = [r.choice(["a", "b", "c", "d"]) for _ in range(r.randint(0, 4))]
    elif c < 0.7:
        p["tags"] = r.choice([[], [None], ["a", None], None, "a", [[]], {}, [{}]])
    # nested array of objects
    c = r.random()
    if c < 0.6:
        p["items"] = [
            {k: v for k, v in {
                "name": r.choice(["x", "y", "z", "hello world"]),
                "qty": r.choice([0, 1, 2, 3, 2.5, None]),
                "tags": r.choice([["u"], ["u", "v"], [], None]),
                "sub": r.choice([[{"w": 1}], [{"w": 2}, {"w": 3}], None]),
            }.items() if r.random() < 0.85}
            for _ in range(r.randint(0, 3))
        ]
    elif c < 0.65:
        p["items"] = {"name": "x", "qty": 1}
    # nested objects and odd keys
    if r.random() < 0.5:
        p["obj"] = {"a": {"b": r.randint(0, 3), "c": [r.randint(0, 3)]}, "arr": [[1, 2], [3]]}
    if r.random() < 0.2:
        p["a.b"] = r.choice(["dotted", 1])
    if r.random() < 0.2:
        p["sp ace"] = r.choice(["yes", "no"])
    if r.random() < 0.3:
        p["mixed"] = [1, "1", True, None, {"x": 1}, [1], 1.5][: r.randint(0, 7)]
    if r.random() < 0.05:
        p = {}
    return p


def make_points():
    r = random.Random(20240607)
    points = []
    for i in range(200):
        pid = i if i < 180 else str(uuid.UUID(int=r.getrandbits(128)))
        payload = make_payload(i, r)
        vectors = {"a": [r.uniform(-1, 1), r.uniform(-1, 1)]}
        if i % 3 != 0:
            vectors["b"] = [r.uniform(-1, 1), r.uniform(-1, 1)]
        if i % 17 == 0:
            vectors = {"b": [1.0, 0.0]}
        points.append({"id": pid, "payload": payload, "vectors": vectors})
    # hand-made edge cases
    special = [
        {"n": 2**62, "t": "Hello World again", "kw": ["red", "blue"]},
        {"n": -(2**63), "t": ["hello", "world"], "tags": ["a", "a"]},
        {"n": 18446744073709551615, "t": "world, hello! quick brown fox", "b": [True]},
        {"dt": "2021-03-04T05:06:07.1234569Z", "f": 7, "g": {"lon": 10, "lat": 40}},
        {"dt": ["2020-01-01T05:00:00Z", "garbage"], "g": {"lon": 0, "lat": 47}, "t": "hello-world"},
        {"items": [{"name": "x", "qty": 2}, {"name": "y", "qty": 0}], "g": {"lon": 5, "lat": 47}},
        {"items": [{"name": "x", "qty": 0}, {"name": "z", "qty": 5}], "g": {"lon": 7.5, "lat": 47.5}},
        {"items": [], "tags": [], "kw": [], "n": [], "t": []},
        {"items": [{}], "tags": [None], "kw": None, "n": None, "t": None},
        {"obj": {"a": {"b": 2, "c": [2, 3]}, "arr": [[3], [1, 2]]}, "a.b": "dotted", "a": {"b": "dotted"}},
        {"mixed": [1, "1", True, None, {"x": 1}, [1], 1.5], "f": [7.25, -1]},
        {"uid": "11111111222233334444555555555555", "t": "The QUICK brown fox jumps"},
    ]
    for j, payload in enumerate(special):
        points.append({"id": 1000 + j, "payload": payload, "vectors": {"a": [0.5, 0.5]}})
    return points


# --------------------------------------------------------------------------------------------
# Filters (REST JSON)
# --------------------------------------------------------------------------------------------

def fc(key, **kw):
    d = {"key": key}
    d.update(kw)
    return d


def m(key, **match):
    return fc(key, match=match)


POLY = {"exterior": {"points": [{"lon": 0, "lat": 40}, {"lon": 20, "lat": 40}, {"lon": 20, "lat": 55},
                                 {"lon": 0, "lat": 55}, {"lon": 0, "lat": 40}]},
        "interiors": [{"points": [{"lon": 5, "lat": 45}, {"lon": 10, "lat": 45}, {"lon": 10, "lat": 50},
                                   {"lon": 5, "lat": 50}, {"lon": 5, "lat": 45}]}]}

FILTERS = [
    {},
    {"must": []},
    {"should": []},
    {"must_not": []},
    # match value
    {"must": [m("kw", value="red")]},
    {"must": m("kw", value="red")},
    {"must": [m("kw", value="")]},
    {"must": [m("kw", value=5)]},
    {"must": [m("n", value=5)]},
    {"must": [m("n", value=10)]},
    {"must": [m("n", value=-3)]},
    {"must": [m("n", value=2**62)]},
    {"must": [m("n", value=-(2**63))]},
    {"must": [fc("n", range={"gt": 1e18})]},
    {"must": [m("b", value=True)]},
    {"must": [m("b", value=False)]},
    {"must": [m("tags", value="a")]},
    {"must": [m("tags[]", value="a")]},
    {"must": [m("tags[0]", value="a")]},
    {"must": [m("items[].name", value="x")]},
    {"must": [m("items.name", value="x")]},
    {"must": [m("items[0].name", value="y")]},
    {"must": [m("obj.a.b", value=2)]},
    {"must": [m("obj.a.c", value=2)]},
    {"must": [m("obj.a.c[]", value=2)]},
    {"must": [m("obj.arr", value=3)]},
    {"must": [m("obj.arr[]", value=3)]},
    {"must": [m("obj.arr[1]", value=3)]},
    {"must": [m("\"a.b\"", value="dotted")]},
    {"must": [m("a.b", value="dotted")]},
    {"must": [m("\"sp ace\"", value="yes")]},
    {"must": [m("mixed", value=1)]},
    {"must": [m("mixed", value="1")]},
    {"must": [m("uid", value="11111111-2222-3333-4444-555555555555")]},
    {"must": [m("uid", value="11111111-2222-3333-4444-555555555555".upper())]},
    # any / except
    {"must": [m("kw", any=["red", "blue"])]},
    {"must": [m("kw", any=[])]},
    {"must": [m("n", any=[1, 2, 3, 5])]},
    {"must": [m("n", any=list(range(20)))]},
    {"must": [m("tags", any=["a", "d"])]},
    {"must": [m("kw", except_=["red"])]},
    {"must": [m("kw", except_=["red", "green", "blue"])]},
    {"must": [m("kw", except_=[])]},
    {"must": [m("n", except_=[5])]},
    {"must": [m("n", except_=list(range(-5, 16)))]},
    {"must": [m("tags", except_=["a"])]},
    {"must": [m("mixed", except_=[1])]},
    {"must": [m("mixed", except_=["1"])]},
    {"must_not": [m("kw", except_=["red"])]},
    {"must": [m("uid", any=["11111111-2222-3333-4444-555555555555"])]},
    {"must": [m("uid", except_=["11111111-2222-3333-4444-555555555555"])]},
    # prefix / substring
    {"must": [m("kw", prefix="re")]},
    {"must": [m("kw", prefix="")]},
    {"must": [m("kw", substring="ee")]},
    {"must": [m("t", substring="app")]},
    {"must": [m("tags", prefix="a")]},
    # text
    {"must": [m("t", text="hello")]},
    {"must": [m("t", text="Hello World")]},
    {"must": [m("t", text="world hello")]},
    {"must": [m("t", text="banana")]},
    {"must": [m("t", text="über")]},
    {"must": [m("t", text="x")]},
    {"must": [m("t", text="")]},
    {"must": [m("t", text="---")]},
    {"must": [m("t", text="app")]},
    {"must": [m("t", text="zzz")]},
    {"must": [m("t", text_any="hello fox")]},
    {"must": [m("t", text_any="zzz fig")]},
    {"must": [m("t", text_any="")]},
    {"must": [m("t", phrase="hello world")]},
    {"must": [m("t", phrase="world hello")]},
    {"must": [m("t", text="hello world fox")]},
    {"must": [m("t", phrase="quick brown")]},
    {"must": [m("t", phrase="brown quick")]},
    {"must": [m("t", phrase="fig")]},
    {"must": [m("t", phrase="")]},
    {"must": [m("kw", text="red")]},
    {"must": [m("items[].name", text="world")]},
    # range
    {"must": [fc("n", range={"gt": 3})]},
    {"must": [fc("n", range={"gte": 5, "lte": 5})]},
    {"must": [fc("n", range={"gt": 4.5, "lt": 5.5})]},
    {"must": [fc("n", range={"gte": 5.2})]},
    {"must": [fc("n", range={"lt": -0.2})]},
    {"must": [fc("n", range={"lte": -0.5})]},
    {"must": [fc("n", range={"gt": 1e19})]},
    {"must": [fc("n", range={})]},
    {"must": [fc("f", range={"gte": -1.5, "lt": 2.5})]},
    {"must": [fc("f", range={"gt": 7})]},
    {"must": [fc("b", range={"gte": 0})]},
    {"must": [fc("kw", range={"gte": 0})]},
    {"must": [fc("mixed", range={"gt": 1})]},
    {"must": [fc("items[].qty", range={"gte": 2})]},
    # datetime range
    {"must": [fc("dt", range={"gte": "2020-01-01T00:00:00Z"})]},
    {"must": [fc("dt", range={"gt": "2020-01-01T00:00:00Z", "lt": "2020-07-01"})]},
    {"must": [fc("dt", range={"lte": "2020-01-01"})]},
    {"must": [fc("dt", range={"gte": "2020-01-01T05:00:00Z", "lte": "2020-01-01T05:00:00Z"})]},
    {"must": [fc("dt", range={"lt": "2020-01-01T10:30:00+00:00"})]},
    {"must": [fc("dt", range={"gt": "2021-03-04T05:06:07.123456Z"})]},
    {"must": [fc("dt", range={"gte": "2021-03-04T05:06:07.123456Z"})]},
    {"must": [fc("dt", range={"lt": "1970-01-01"})]},
    {"must": [fc("dt", range={"gt": "2020-01-01 00:00:00", "lt": 100})]} if False else {"must": [fc("dt", range={"gt": "2020-01-01 00:00:00"})]},
    {"must": [fc("n", range={"gt": "2020-01-01"})]},
    {"must": [fc("f", range={"gt": "1970-01-01"})]},
    {"must": [fc("dt", range={"gt": 0})]},
    # geo
    {"must": [fc("g", geo_bounding_box={"top_left": {"lon": 0, "lat": 55}, "bottom_right": {"lon": 20, "lat": 40}})]},
    {"must": [fc("g", geo_bounding_box={"top_left": {"lon": 179, "lat": 1}, "bottom_right": {"lon": -179, "lat": 0}})]},
    {"must": [fc("g", geo_bounding_box={"top_left": {"lon": 30, "lat": 55}, "bottom_right": {"lon": 0, "lat": 40}})]},
    {"must": [fc("g", geo_radius={"center": {"lon": 10, "lat": 45}, "radius": 500000})]},
    {"must": [fc("g", geo_radius={"center": {"lon": 10, "lat": 45}, "radius": 1500000})]},
    {"must": [fc("g", geo_radius={"center": {"lon": 5, "lat": 5}, "radius": 1})]},
    {"must": [fc("g", geo_polygon=POLY)]},
    {"must": [fc("g", geo_polygon={"exterior": POLY["exterior"]})]},
    # values_count
    {"must": [fc("tags", values_count={"gt": 2})]},
    {"must": [fc("tags", values_count={"lt": 1})]},
    {"must": [fc("tags", values_count={"lte": 0})]},
    {"must": [fc("tags", values_count={"gte": 1, "lte": 2})]},
    {"must": [fc("n", values_count={"gte": 2})]},
    {"must": [fc("items[].tags", values_count={"gte": 2})]},
    {"must": [fc("missing_field", values_count={"lt": 1})]},
    # is_empty / is_null
    {"must": [{"is_empty": {"key": "tags"}}]},
    {"must_not": [{"is_empty": {"key": "tags"}}]},
    {"must": [{"is_empty": {"key": "kw"}}]},
    {"must": [{"is_empty": {"key": "n"}}]},
    {"must": [{"is_empty": {"key": "items[].tags"}}]},
    {"must": [{"is_empty": {"key": "items[].qty"}}]},
    {"must": [{"is_empty": {"key": "items.name"}}]},
    {"must": [{"is_null": {"key": "tags"}}]},
    {"must": [{"is_null": {"key": "kw"}}]},
    {"must": [{"is_null": {"key": "n"}}]},
    {"must": [{"is_null": {"key": "items[].qty"}}]},
    {"must": [{"is_null": {"key": "nope"}}]},
    {"must": [fc("tags", is_empty=True)]},
    {"must": [fc("tags", is_empty=False)]},
    {"must": [fc("items[].tags", is_empty=True)]},
    {"must": [fc("tags", is_null=True)]},
    {"must": [fc("tags", is_null=False)]},
    {"must": [fc("n", is_null=False)]},
    # has_id / has_vector
    {"must": [{"has_id": [1, 2, 3, 150, 9999]}]},
    {"must_not": [{"has_id": [0, 1]}]},
    {"must": [{"has_vector": "b"}]},
    {"must": [{"has_vector": "a"}]},
    {"must": [{"has_vector": "nope"}]},
    {"must_not": [{"has_vector": "b"}]},
    # nested
    {"must": [{"nested": {"key": "items", "filter": {"must": [m("name", value="x"), fc("qty", range={"gte": 1})]}}}]},
    {"must": [{"nested": {"key": "items[]", "filter": {"must": [m("name", value="x")]}}}]},
    {"must": [m("items[].name", value="x"), fc("items[].qty", range={"gte": 1})]},
    {"must": [{"nested": {"key": "items", "filter": {"must_not": [m("name", value="x")]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [{"is_empty": {"key": "tags"}}]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [{"is_null": {"key": "qty"}}]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"should": []}}}]},
    {"must": [{"nested": {"key": "items", "filter": {}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [{"has_id": [1, 2, 3, 4, 5, 6, 7, 8, 9]}]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [
        {"nested": {"key": "sub", "filter": {"must": [m("w", value=3)]}}}]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [m("name", text="hello")]}}}]},
    {"must": [{"nested": {"key": "items", "filter": {"must": [fc("tags", values_count={"gt": 1})]}}}]},
    # combinations
    {"should": [m("kw", value="red"), m("kw", value="blue")]},
    {"should": [m("kw", value="red")], "must_not": [fc("n", range={"gt": 5})]},
    {"must": [{"should": [m("kw", value="red"), m("n", value=5)]}, {"must_not": [{"is_empty": {"key": "tags"}}]}]},
    {"min_should": {"conditions": [m("kw", value="red"), m("tags", value="a"), fc("n", range={"gt": 5}),
                                   {"has_vector": "b"}], "min_count": 2}},
    {"min_should": {"conditions": [m("kw", value="red"), m("tags", value="a")], "min_count": 3}},
    {"should": [m("tags", value="b")], "min_should": {"conditions": [m("kw", value="green"), {"has_vector": "b"}], "min_count": 1}},
    {"must": [{"must": [{"must_not": [m("kw", value="red")]}]}]},
    {"must_not": [{"should": [m("kw", value="red"), {"is_empty": {"key": "kw"}}]}]},
    {"must": [{"should": []}]},
    {"must": [{"must": []}]},
    {"should": [{"should": []}]},
    {"must": [fc("n", match={"value": 5}, range={"gt": 10})]},
    {"must": [fc("tags", values_count={"gt": 1}, match={"value": "a"})]},
    {"must": [fc("tags", is_empty=True, match={"value": "a"})]},
]

# REST JSON keyword `except` is not a Python identifier
for f in FILTERS:
    def fix(x):
        if isinstance(x, dict):
            return {("except" if k == "except_" else k): fix(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fix(v) for v in x]
        return x
    FILTERS[FILTERS.index(f)] = fix(f)


# --------------------------------------------------------------------------------------------
# REST JSON -> qdrant_edge objects
# --------------------------------------------------------------------------------------------

class Unsupported(Exception):
    pass


def py_point_id(i):
    return i


def geo_point(d):
    return q.GeoPoint(lon=float(d["lon"]), lat=float(d["lat"]))


def py_match(d):
    (k, v), = d.items()
    if k == "value":
        if isinstance(v, bool):
            raise Unsupported("qdrant-edge-py extracts a Python bool as an integer in MatchValue")
        return q.MatchValue(v)
    if k == "text":
        return q.MatchText(v)
    if k == "text_any":
        return q.MatchTextAny(v)
    if k == "phrase":
        return q.MatchPhrase(v)
    if k == "prefix":
        return q.MatchPrefix(v)
    if k == "substring":
        return q.MatchSubstring(v)
    if k == "any":
        return q.MatchAny(v)
    if k == "except":
        return q.MatchExcept(v)
    raise ValueError(k)


def py_range(d):
    if any(isinstance(v, str) for v in d.values()):
        if not all(isinstance(v, str) for v in d.values()):
            raise Unsupported("mixed datetime range")
        return q.RangeDateTime(**d)
    return q.RangeFloat(**{k: float(v) for k, v in d.items()})


def py_line(d):
    return [geo_point(p) for p in d["points"]]


def py_condition(c):
    if "key" in c:
        kw = {}
        if "match" in c:
            kw["match"] = py_match(c["match"])
        if "range" in c:
            kw["range"] = py_range(c["range"])
        if "geo_bounding_box" in c:
            g = c["geo_bounding_box"]
            kw["geo_bounding_box"] = q.GeoBoundingBox(geo_point(g["top_left"]), geo_point(g["bottom_right"]))
        if "geo_radius" in c:
            g = c["geo_radius"]
            kw["geo_radius"] = q.GeoRadius(geo_point(g["center"]), float(g["radius"]))
        if "geo_polygon" in c:
            g = c["geo_polygon"]
            interiors = [py_line(i) for i in g["interiors"]] if g.get("interiors") is not None else None
            kw["geo_polygon"] = q.GeoPolygon(py_line(g["exterior"]), interiors)
        if "values_count" in c:
            kw["values_count"] = q.ValuesCount(**c["values_count"])
        if "is_empty" in c:
            kw["is_empty"] = c["is_empty"]
        if "is_null" in c:
            kw["is_null"] = c["is_null"]
        return q.FieldCondition(c["key"], **kw)
    if "is_empty" in c:
        return q.IsEmptyCondition(c["is_empty"]["key"])
    if "is_null" in c:
        return q.IsNullCondition(c["is_null"]["key"])
    if "has_id" in c:
        return q.HasIdCondition(set(c["has_id"]))
    if "has_vector" in c:
        return q.HasVectorCondition(c["has_vector"])
    if "nested" in c:
        return q.NestedCondition(c["nested"]["key"], py_filter(c["nested"]["filter"]))
    if "slice" in c:
        raise Unsupported("slice")
    return py_filter(c)


def py_list(v):
    if v is None:
        return None
    if isinstance(v, dict):
        v = [v]
    return [py_condition(c) for c in v]


def py_filter(f):
    ms = None
    if f.get("min_should") is not None:
        ms = q.MinShould(py_list(f["min_should"]["conditions"]), f["min_should"]["min_count"])
    return q.Filter(must=py_list(f.get("must")), should=py_list(f.get("should")),
                    must_not=py_list(f.get("must_not")), min_should=ms)


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------

INDEXES = [
    ("kw", q.PayloadSchemaType.Keyword),
    ("n", q.PayloadSchemaType.Integer),
    ("f", q.PayloadSchemaType.Float),
    ("b", q.PayloadSchemaType.Bool),
    ("dt", q.PayloadSchemaType.Datetime),
    ("g", q.PayloadSchemaType.Geo),
    ("t", q.TextIndexParams(tokenizer=q.TokenizerType.Word, phrase_matching=True)),
    ("uid", q.PayloadSchemaType.Uuid),
    ("tags", q.PayloadSchemaType.Keyword),
    ("items[].name", q.PayloadSchemaType.Keyword),
    ("items[].qty", q.PayloadSchemaType.Float),
    ("mixed", q.PayloadSchemaType.Integer),
]
INDEXES_ALT = [
    ("t", q.TextIndexParams(tokenizer=q.TokenizerType.Word, min_token_len=2, max_token_len=5, lowercase=False)),
    ("kw", q.TextIndexParams(tokenizer=q.TokenizerType.Whitespace)),
    ("n", q.IntegerIndexParams(lookup=False, range=True)),
    ("f", q.PayloadSchemaType.Integer),
    ("dt", q.PayloadSchemaType.Float),
    ("items[].name", q.TextIndexParams(tokenizer=q.TokenizerType.Prefix, max_token_len=3)),
]


def build_shard(path, points, indexes):
    cfg = q.EdgeConfig(vectors={"a": q.EdgeVectorParams(size=2, distance=q.Distance.Dot),
                                "b": q.EdgeVectorParams(size=2, distance=q.Distance.Dot)})
    shard = q.EdgeShard.create(path, cfg)
    pts = [q.Point(p["id"], p["vectors"], p["payload"]) for p in points]
    shard.update(q.UpdateOperation.upsert_points(pts))
    for field, schema in indexes:
        shard.update(q.UpdateOperation.create_field_index(field, schema))
    shard.flush()
    return shard


def indexed_fields(path):
    out = {}
    seg_root = os.path.join(path, "segments")
    for seg in sorted(os.listdir(seg_root)):
        cfg = os.path.join(seg_root, seg, "payload_index", "config.json")
        if os.path.exists(cfg):
            with open(cfg) as fh:
                out.update(json.load(fh).get("indexed_fields", {}))
    return out


def id_key(i):
    return (0, i, "") if isinstance(i, int) else (1, 0, str(i))


def run(name, points, indexes, skipped):
    tmp = tempfile.mkdtemp(prefix=f"qew-filter-{name}-")
    try:
        shard = build_shard(tmp, points, indexes)
        fields = indexed_fields(tmp)
        if name == "plain":
            stored = {}
            recs, _ = shard.scroll(q.ScrollRequest(limit=10000, with_payload=True))
            for r in recs:
                stored[r.id if isinstance(r.id, int) else str(r.id)] = r.payload
            for p in points:
                p["payload"] = stored[p["id"]]
        cases = []
        for f in FILTERS:
            try:
                pf = py_filter(f)
            except Unsupported as e:
                if name == "plain":
                    skipped.append({"filter": f, "reason": str(e)})
                continue
            recs, nxt = shard.scroll(q.ScrollRequest(limit=10000, filter=pf, with_payload=False))
            assert nxt is None
            ids = sorted((r.id if isinstance(r.id, int) else str(r.id) for r in recs), key=id_key)
            cnt = shard.count(q.CountRequest(exact=True, filter=pf))
            if cnt != len(ids):
                raise SystemExit(f"{name}: count {cnt} != scroll {len(ids)} for {json.dumps(f)}")
            cases.append({"filter": f, "expected_ids": ids})
        shard.close()
        return {"name": name, "indexed_fields": fields, "cases": cases}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    args = [a for a in sys.argv[1:] if a != "--out"]
    out_root = args[0] if args else os.environ.get("QEW_CORPUS", os.path.join(CRATE, "target", "corpus"))
    points = make_points()
    skipped = []
    runs = [run("plain", points, [], skipped), run("indexed", points, INDEXES, skipped),
            run("indexed_alt", points, INDEXES_ALT, skipped)]
    out_dir = os.path.join(out_root, "filters")
    os.makedirs(out_dir, exist_ok=True)
    doc = {
        "generator": "tests/corpus/filter_oracle.py with qdrant-edge-py " + getattr(q, "__version__", "0.9.0"),
        "points": [{"id": p["id"], "payload": p["payload"], "vectors": sorted(p["vectors"].keys())} for p in points],
        "runs": runs,
        "skipped": skipped,
    }
    with open(os.path.join(out_dir, "cases.json"), "w") as fh:
        json.dump(doc, fh, indent=1, ensure_ascii=False)
    n = sum(len(r["cases"]) for r in runs)
    print(f"wrote {out_dir}/cases.json: {len(points)} points, {n} cases in {len(runs)} runs, {len(skipped)} skipped")


if __name__ == "__main__":
    main()
