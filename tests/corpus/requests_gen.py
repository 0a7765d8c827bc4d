"""REST request bodies for one shard: a broad battery driven by the shard's vectors, its live
points and the payload fields of shards.make_payload (which the server fixtures share).

`battery(ctx)` yields (name, command, body). Every vector search uses params.exact = true.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

from shards import Vec


@dataclass
class Ctx:
    vectors: list  # [Vec]
    live: list  # live ids (REST form), Qdrant order
    deleted: list  # ids that existed once and are gone
    payloads: dict  # id -> payload (REST form)
    indexed: dict  # key -> data_type ("keyword", ...)
    seed: int
    default_only: bool


EXACT = {"exact": True}


def filters(ctx: Ctx, rng: random.Random) -> list:
    """(name, filter) pairs exercising every condition kind."""
    live = ctx.live
    some = rng.sample(live, min(12, len(live))) if live else []
    has_id = some + ctx.deleted[:4] + ([123456789] if not any(isinstance(x, str) for x in live) else
                                       ["00000000-0000-0000-0000-00000000beef"])
    fl = [
        ("match_keyword", {"must": [{"key": "color", "match": {"value": "red"}}]}),
        ("range_and_not_bool", {"must": [{"key": "n", "range": {"gte": 100, "lt": 900}}],
                                "must_not": [{"key": "flag", "match": {"value": True}}]}),
        ("should_any_range", {"should": [{"key": "tags", "match": {"any": ["alpha", "omega"]}},
                                         {"key": "price", "range": {"lt": 50}}]}),
        ("nested_path_int", {"must": [{"key": "nested.a.b", "match": {"value": 3}}]}),
        ("geo_radius", {"must": [{"key": "loc", "geo_radius": {"center": {"lon": 0, "lat": 50},
                                                                  "radius": 300000}}]}),
        ("geo_bbox", {"must": [{"key": "loc", "geo_bounding_box": {
            "top_left": {"lon": -5, "lat": 55}, "bottom_right": {"lon": 5, "lat": 45}}}]}),
        ("geo_polygon", {"must": [{"key": "loc", "geo_polygon": {
            "exterior": {"points": [{"lon": -8, "lat": 42}, {"lon": 8, "lat": 42},
                                    {"lon": 8, "lat": 58}, {"lon": -8, "lat": 58},
                                    {"lon": -8, "lat": 42}]},
            "interiors": [{"points": [{"lon": -3, "lat": 47}, {"lon": 3, "lat": 47},
                                      {"lon": 3, "lat": 53}, {"lon": -3, "lat": 53},
                                      {"lon": -3, "lat": 47}]}]}}]}),
        ("is_empty", {"must": [{"is_empty": {"key": "tags"}}]}),
        ("is_null", {"must": [{"is_null": {"key": "maybe"}}]}),
        ("not_is_empty_maybe", {"must_not": [{"is_empty": {"key": "maybe"}}]}),
        ("field_is_empty_flag", {"must": [{"key": "fs", "is_empty": True}]}),
        ("field_is_null_flag", {"must": [{"key": "maybe", "is_null": False}]}),
        ("has_id", {"must": [{"has_id": has_id}]}),
        ("min_should", {"min_should": {"conditions": [
            {"key": "color", "match": {"value": "blue"}}, {"key": "flag", "match": {"value": False}},
            {"key": "tags", "match": {"value": "beta"}}], "min_count": 2}}),
        ("nested_cond", {"must": [{"nested": {"key": "nested.list", "filter": {"must": [
            {"key": "k", "match": {"value": "gamma"}}, {"key": "v", "range": {"gt": 50}}]}}}]}),
        ("except_values_count", {"must": [{"key": "color", "match": {"except": ["red", "green"]}},
                                          {"key": "tags", "values_count": {"gte": 2}}]}),
        ("text", {"must": [{"key": "text", "match": {"text": "alpha beta"}}]}),
        ("text_any", {"must": [{"key": "text", "match": {"text_any": "kappa omega"}}]}),
        ("phrase", {"must": [{"key": "text", "match": {"phrase": "gamma delta"}}]}),
        ("datetime_gte", {"must": [{"key": "created", "range": {"gte": "2026-06-01T00:00:00Z"}}]}),
        ("datetime_tz_window", {"must": [{"key": "when", "range": {
            "gt": "2026-03-01T00:00:00+02:00", "lte": "2026-09-15 12:00:00"}}]}),
        ("match_any_ints", {"must": [{"key": "n", "match": {"any": [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]}}]}),
        ("except_ints", {"must": [{"key": "nested.a.b", "match": {"except": [0, 1, 2, 3, 4]}}]}),
        ("bool_false", {"must": [{"key": "flag", "match": {"value": False}}]}),
        ("bool_array", {"must": [{"key": "flags", "match": {"value": True}}]}),
        ("uuid_value", {"must": [{"key": "uid", "match": {"value": ctx.payloads[live[0]]["uid"]
                                                          if live and isinstance(ctx.payloads.get(live[0]), dict)
                                                          and "uid" in ctx.payloads[live[0]]
                                                          else "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}}]}),
        ("float_range", {"must": [{"key": "price", "range": {"gt": 250.5, "lte": 750.25}}]}),
        ("negative_float_range", {"must": [{"key": "f", "range": {"gte": -2.5, "lt": 0.5}}]}),
        ("float_array_range", {"must": [{"key": "fs", "range": {"gt": 4}}]}),
        ("big_int", {"must": [{"key": "big", "match": {"value": 9007199254740993}}]}),
        ("big_int_range", {"must": [{"key": "big", "range": {"gte": 1e18}}]}),
        ("array_of_objects_path", {"must": [{"key": "nested.list[].k", "match": {"value": "beta"}}]}),
        ("deep_path", {"must": [{"key": "deep.x.y.z[].w", "match": {"any": ["alpha", "beta", "gamma"]}}]}),
        ("nested_filter_condition", {"must": [{"should": [{"key": "color", "match": {"value": "white"}},
                                                          {"must": [{"key": "n", "range": {"lt": 200}},
                                                                    {"key": "flag", "match": {"value": True}}]}]}],
                                     "must_not": [{"key": "maybe", "match": {"value": "x"}}]}),
        ("string_number", {"must": [{"key": "n_str", "match": {"value": "7"}}]}),
        ("values_count_lt", {"must": [{"key": "nested.list", "values_count": {"lt": 1}}]}),
        ("empty_must", {"must": []}),
        ("geo_many", {"must": [{"key": "geo_many", "geo_radius": {"center": {"lon": 0, "lat": 50},
                                                                     "radius": 500000}}]}),
        ("mixed_array_value", {"must": [{"key": "mixed", "match": {"value": "a"}}]}),
        ("unicode_text", {"must": [{"key": "unicode", "match": {"text": "café"}}]}),
        ("payload_ops_fields", {"should": [{"key": "touched", "match": {"value": True}},
                                           {"key": "only", "match": {"value": "this"}},
                                           {"key": "red_marked", "match": {"value": True}},
                                           {"is_empty": {"key": "color"}}]}),
    ]
    for v in ctx.vectors:
        if v.name:
            fl.append((f"has_vector_{v.name}", {"must": [{"has_vector": v.name}]}))
    return fl


def dense_vectors(ctx: Ctx) -> list:
    return [v for v in ctx.vectors if v.kind == "dense"]


def _q(vec: Vec, rng: random.Random, **kw) -> dict:
    body: dict[str, Any] = {"query": vec.random(rng)}
    if vec.name:
        body["using"] = vec.name
    body.update(kw)
    body.setdefault("params", EXACT)
    return body


def battery(ctx: Ctx) -> Iterator[tuple]:
    rng = random.Random(ctx.seed * 7919 + 1)
    fl = filters(ctx, rng)
    primary = next((v for v in ctx.vectors if v.kind != "sparse"), ctx.vectors[0])
    first_name = primary.name

    # --- nearest queries, per vector
    for v in ctx.vectors:
        tag = f"{v.kind}:{v.name or 'default'}"
        for k in range(3):
            yield f"query/{tag}/plain{k}", "query", _q(v, rng, limit=10, with_payload=True)
        yield f"query/{tag}/vectors", "query", _q(v, rng, limit=5, with_vector=True)
        yield f"query/{tag}/vector_named", "query", _q(v, rng, limit=5, with_vector=[v.name or ""]
                                                           if v.name else True, with_payload=False)
        yield f"query/{tag}/include", "query", _q(v, rng, limit=7, with_payload=["color", "nested.a", "tags"])
        yield f"query/{tag}/include_obj", "query", _q(v, rng, limit=7, with_payload={"include": ["n", "loc"]})
        yield f"query/{tag}/exclude", "query", _q(v, rng, limit=7, with_payload={"exclude": ["text", "nested", "loc"]})
        yield f"query/{tag}/offset", "query", _q(v, rng, limit=6, offset=9, with_payload=False)
        yield f"query/{tag}/limit1", "query", _q(v, rng, limit=1)
        yield f"query/{tag}/limit200", "query", _q(v, rng, limit=200)
        yield f"query/{tag}/filter_color", "query", _q(v, rng, limit=10, with_payload=["color"],
                                                        filter=fl[0][1])
        # score_threshold is filled in by the generator from a first run (see generate.py)
        yield f"query/{tag}/threshold", "query", _q(v, rng, limit=20, score_threshold="@5")
        yield f"query/{tag}/threshold_offset", "query", _q(v, rng, limit=5, offset=3, score_threshold="@6")
        yield f"query/{tag}/nearest_obj", "query", {"query": {"nearest": v.random(rng)},
                                                    **({"using": v.name} if v.name else {}),
                                                    "limit": 4, "params": EXACT}

    # --- the filter battery on the primary vector, and through count / scroll
    for fname, f in fl:
        yield f"query/filter/{fname}", "query", _q(primary, rng, limit=10, filter=f,
                                                   with_payload=["n", "color", "flag"])
        yield f"count/{fname}", "count", {"filter": f, "exact": True}
        yield f"scroll/filter/{fname}", "scroll", {"filter": f, "limit": 3000, "with_payload": False}
    # sparse and multivector through a few filters as well
    for v in ctx.vectors:
        if v is primary:
            continue
        for fname, f in fl[:6]:
            yield f"query/filter/{v.name}/{fname}", "query", _q(v, rng, limit=8, filter=f)

    # --- legacy search
    for v in dense_vectors(ctx)[:2]:
        vec = v.random(rng)
        vbody = vec if not v.name else {"name": v.name, "vector": vec}
        yield f"search/{v.name or 'default'}/plain", "search", {"vector": vbody, "limit": 10, "params": EXACT}
        yield f"search/{v.name or 'default'}/payload_filter", "search", {
            "vector": v.random(rng) if not v.name else {"name": v.name, "vector": v.random(rng)},
            "limit": 5, "offset": 2, "filter": fl[2][1], "with_payload": True, "with_vector": True,
            "params": EXACT}
    for v in [x for x in ctx.vectors if x.kind == "sparse"][:1]:
        yield f"search/{v.name}/sparse", "search", {"vector": {"name": v.name, "vector": v.random(rng)},
                                                    "limit": 10, "with_payload": ["color"], "params": EXACT}

    # --- fusion over two prefetches (score ties are frequent; ids compared per tie rules)
    if len(ctx.vectors) >= 2:
        a, b = ctx.vectors[0], ctx.vectors[1]
        pre = [{"query": a.random(rng), "using": a.name, "limit": 20, "params": EXACT},
               {"query": b.random(rng), "using": b.name, "limit": 20, "params": EXACT}]
        yield "query/fusion/rrf", "query", {"prefetch": pre, "query": {"fusion": "rrf"}, "limit": 10}
        yield "query/fusion/dbsf", "query", {"prefetch": pre, "query": {"fusion": "dbsf"}, "limit": 10,
                                             "with_payload": ["n"]}
    # prefetch then rescore with the same vector space
    yield "query/prefetch_rescore", "query", {
        "prefetch": {"query": primary.random(rng), **({"using": first_name} if first_name else {}),
                     "limit": 50, "filter": fl[1][1], "params": EXACT},
        "query": primary.random(rng), **({"using": first_name} if first_name else {}),
        "limit": 10, "params": EXACT}

    # --- scroll
    yield "scroll/defaults", "scroll", {}
    yield "scroll/vectors", "scroll", {"limit": 25, "with_payload": True, "with_vector": True}
    for v in ctx.vectors:
        if v.name:
            yield f"scroll/vector_{v.name}", "scroll", {"limit": 15, "with_payload": False,
                                                        "with_vector": [v.name]}
    yield "scroll/include", "scroll", {"limit": 30, "with_payload": ["color", "n", "nested.list[].k"]}
    yield "scroll/exclude", "scroll", {"limit": 30, "with_payload": {"exclude": ["loc", "text", "when"]}}
    if ctx.live:
        mid = ctx.live[len(ctx.live) // 2]
        yield "scroll/offset_mid", "scroll", {"offset": mid, "limit": 11}
        yield "scroll/offset_mid_filtered", "scroll", {"offset": mid, "limit": 11, "filter": fl[0][1],
                                                       "with_payload": ["color"]}
    for j, d in enumerate(ctx.deleted[:2]):
        yield f"scroll/offset_deleted{j}", "scroll", {"offset": d, "limit": 5, "with_payload": False}
    # page through everything; the generator follows next_page_offset (marker "@next")
    yield "scroll/page", "scroll", {"limit": 97, "with_payload": True, "offset": "@start"}

    # --- count
    yield "count/all_exact", "count", {"exact": True}
    yield "count/all_default", "count", {}

    # --- facet
    for key, typ in sorted(ctx.indexed.items()):
        if typ not in ("keyword", "integer", "bool", "uuid"):
            continue
        yield f"facet/{key}", "facet", {"key": key, "exact": True}
        yield f"facet/{key}/limit3_filter", "facet", {"key": key, "limit": 3, "exact": True,
                                                      "filter": fl[2][1]}
        yield f"facet/{key}/limit1000", "facet", {"key": key, "limit": 1000, "exact": True}

    # --- order_by (needs a range index on the key)
    if ctx.indexed.get("n") == "integer":
        yield "scroll/order_by_n", "scroll", {"order_by": "n", "limit": 20, "with_payload": ["n"]}
        yield "scroll/order_by_n_desc", "scroll", {"order_by": {"key": "n", "direction": "desc"},
                                                   "limit": 20, "with_payload": ["n"]}
        yield "query/order_by_n", "query", {"query": {"order_by": {"key": "n", "direction": "desc"}},
                                            "limit": 15, "filter": fl[0][1]}
    if ctx.indexed.get("price") == "float":
        yield "scroll/order_by_price", "scroll", {"order_by": {"key": "price", "start_from": 500},
                                                  "limit": 10, "with_payload": ["price"]}

    # --- retrieve
    live = ctx.live
    pick = rng.sample(live, min(8, len(live))) if live else []
    missing = [987654321] if not any(isinstance(x, str) for x in live) else ["12345678-1234-5678-1234-567812345678"]
    yield "retrieve/mixed", "retrieve", {"ids": pick[:4] + ctx.deleted[:3] + missing + pick[4:],
                                         "with_payload": True, "with_vector": True}
    yield "retrieve/defaults", "retrieve", {"ids": pick[:5]}
    yield "retrieve/no_payload", "retrieve", {"ids": pick, "with_payload": False}
    yield "retrieve/include", "retrieve", {"ids": pick, "with_payload": ["color", "deep"],
                                           "with_vector": [ctx.vectors[-1].name] if ctx.vectors[-1].name else True}
    yield "retrieve/exclude", "retrieve", {"ids": pick + pick[:2], "with_payload": {"exclude": ["loc"]}}
    yield "retrieve/deleted_only", "retrieve", {"ids": ctx.deleted[:5]}

    yield "info", "info", {}
