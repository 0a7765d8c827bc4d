"""REST <-> qdrant_edge conversion for the differential corpus.

`run(shard, command, body)` takes a request body exactly as Qdrant's REST API accepts it
(POST /collections/c/points/query, /points/search, /points/scroll, /points/count, /facet,
/points), turns it into qdrant_edge request objects, calls the shard and turns the answer
back into the `result` JSON a Qdrant server returns.

REST shapes produced (checked against the real server answers in
../shared/fixtures/*/full.expected.json):

* ScoredPoint: {"id", "version", "score", "payload"?, "vector"?, "order_value"?}
* Record:      {"id", "payload"?, "vector"?, "order_value"?}
  `payload` / `vector` are omitted when not requested; when requested they are always present
  (`{}` for a point with no payload / no vectors).
* ids: JSON integers (u64) or hyphenated lowercase UUID strings.
* vectors: a bare list when the only vector returned is the default unnamed one (a list of
  lists for a default multivector), otherwise {name: dense list | [[...]] | {"indices",
  "values"}}. Vector components and scores are f32 and printed as the shortest decimal that
  reads back as the same f32 (as serde_json does for f32).
* query -> {"points": [ScoredPoint]}, search -> [ScoredPoint],
  scroll -> {"points": [Record], "next_page_offset": id | null}, count -> {"count": n},
  facet -> {"hits": [{"value", "count"}]}, retrieve -> [Record], info -> see `info_json`.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import qdrant_edge as qe

COMMANDS = ("query", "search", "scroll", "count", "facet", "retrieve", "info")


class Unsupported(Exception):
    """A REST body the converter does not know how to express in qdrant_edge."""


# ---------------------------------------------------------------------------------------------
# scalars


def f32(x: float) -> float:
    """The f64 whose shortest repr is the shortest repr of `x` rounded to f32."""
    return float(str(np.float32(x)))


def pid_in(x: Any) -> Any:
    if isinstance(x, bool):
        raise Unsupported(f"bool is not a point id: {x!r}")
    if isinstance(x, int):
        return x
    if isinstance(x, str):
        return uuid.UUID(x)
    raise Unsupported(f"bad point id {x!r}")


def pid_out(x: Any) -> Any:
    if isinstance(x, bool):
        raise TypeError(f"bool id {x!r}")
    if isinstance(x, int):
        return x
    if isinstance(x, uuid.UUID):
        return str(x)
    if isinstance(x, str):
        return str(uuid.UUID(x))
    raise TypeError(f"unexpected id {x!r}")


# ---------------------------------------------------------------------------------------------
# vectors


def vector_in(v: Any) -> Any:
    """A REST query vector (dense, multi, sparse) as a qdrant_edge NamedVector."""
    if isinstance(v, dict):
        if "indices" in v:
            return qe.SparseVector(list(v["indices"]), [float(x) for x in v["values"]])
        raise Unsupported(f"vector object {sorted(v)}")
    if isinstance(v, list) and v and isinstance(v[0], list):
        return [[float(x) for x in row] for row in v]
    if isinstance(v, list):
        return [float(x) for x in v]
    raise Unsupported(f"vector {type(v).__name__}")


def _one_vector_out(v: Any) -> Any:
    if isinstance(v, qe.SparseVector):
        return {"indices": list(v.indices), "values": [f32(x) for x in v.values]}
    if isinstance(v, list) and v and isinstance(v[0], list):
        return [[f32(x) for x in row] for row in v]
    if isinstance(v, list):
        return [f32(x) for x in v]
    raise TypeError(f"unexpected vector {v!r}")


def vector_out(v: Any) -> Any:
    if isinstance(v, dict):
        # sorted: qdrant_edge hands out a HashMap, whose order changes from run to run
        return {name: _one_vector_out(v[name]) for name in sorted(v)}
    return _one_vector_out(v)


# ---------------------------------------------------------------------------------------------
# filters

_FIELD_KEYS = ("match", "range", "geo_bounding_box", "geo_radius", "geo_polygon", "values_count",
               "is_empty", "is_null")
_FILTER_KEYS = ("must", "should", "must_not", "min_should")


def _list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def filter_in(f: Any) -> qe.Filter | None:
    if f is None:
        return None
    extra = set(f) - set(_FILTER_KEYS)
    if extra:
        raise Unsupported(f"filter keys {sorted(extra)}")

    def conds(key):
        v = f.get(key)
        return None if v is None else [condition_in(c) for c in _list(v)]

    ms = f.get("min_should")
    min_should = None
    if ms is not None:
        min_should = qe.MinShould([condition_in(c) for c in ms["conditions"]], int(ms["min_count"]))
    return qe.Filter(must=conds("must"), should=conds("should"), must_not=conds("must_not"),
                     min_should=min_should)


def _geo_point(p: dict) -> qe.GeoPoint:
    return qe.GeoPoint(lon=float(p["lon"]), lat=float(p["lat"]))


def _match_in(m: dict) -> Any:
    if "value" in m:
        v = m["value"]
        # qdrant_edge reads a Python bool as an integer (bool subclasses int): MatchValue(True)
        # matches the integer 1. numpy.bool_ is not an int and reaches the bool variant.
        return qe.MatchValue(np.bool_(v) if isinstance(v, bool) else v)
    if "any" in m:
        return qe.MatchAny(list(m["any"]))
    if "except" in m:
        return qe.MatchExcept(list(m["except"]))
    if "text" in m:
        return qe.MatchText(m["text"])
    if "text_any" in m:
        return qe.MatchTextAny(m["text_any"])
    if "phrase" in m:
        return qe.MatchPhrase(m["phrase"])
    raise Unsupported(f"match {sorted(m)}")


def _range_in(r: dict) -> Any:
    keys = ("gt", "gte", "lt", "lte")
    extra = set(r) - set(keys)
    if extra:
        raise Unsupported(f"range keys {sorted(extra)}")
    vals = {k: r.get(k) for k in keys}
    if any(isinstance(v, str) for v in vals.values()):
        return qe.RangeDateTime(**vals)
    return qe.RangeFloat(**{k: (None if v is None else float(v)) for k, v in vals.items()})


def condition_in(c: dict) -> Any:
    if "key" in c:
        extra = set(c) - {"key", *_FIELD_KEYS}
        if extra:
            raise Unsupported(f"field condition keys {sorted(extra)}")
        kw: dict[str, Any] = {}
        if c.get("match") is not None:
            kw["match"] = _match_in(c["match"])
        if c.get("range") is not None:
            kw["range"] = _range_in(c["range"])
        if c.get("geo_bounding_box") is not None:
            g = c["geo_bounding_box"]
            kw["geo_bounding_box"] = qe.GeoBoundingBox(_geo_point(g["top_left"]),
                                                       _geo_point(g["bottom_right"]))
        if c.get("geo_radius") is not None:
            g = c["geo_radius"]
            kw["geo_radius"] = qe.GeoRadius(_geo_point(g["center"]), float(g["radius"]))
        if c.get("geo_polygon") is not None:
            g = c["geo_polygon"]
            ext = [_geo_point(p) for p in g["exterior"]["points"]]
            ints = g.get("interiors")
            ints = None if ints is None else [[_geo_point(p) for p in ring["points"]] for ring in ints]
            kw["geo_polygon"] = qe.GeoPolygon(ext, ints)
        if c.get("values_count") is not None:
            kw["values_count"] = qe.ValuesCount(**c["values_count"])
        if c.get("is_empty") is not None:
            kw["is_empty"] = bool(c["is_empty"])
        if c.get("is_null") is not None:
            kw["is_null"] = bool(c["is_null"])
        return qe.FieldCondition(c["key"], **kw)
    if "is_empty" in c:
        return qe.IsEmptyCondition(c["is_empty"]["key"])
    if "is_null" in c:
        return qe.IsNullCondition(c["is_null"]["key"])
    if "has_id" in c:
        return qe.HasIdCondition({pid_in(i) for i in c["has_id"]})
    if "has_vector" in c:
        return qe.HasVectorCondition(c["has_vector"])
    if "nested" in c:
        return qe.NestedCondition(c["nested"]["key"], filter_in(c["nested"]["filter"]))
    if set(c) and set(c) <= set(_FILTER_KEYS):
        return filter_in(c)
    raise Unsupported(f"condition {sorted(c)}")


# ---------------------------------------------------------------------------------------------
# selectors and params


def with_payload_in(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, list):
        return qe.PayloadSelector.Include(list(v))
    if isinstance(v, dict) and "include" in v:
        return qe.PayloadSelector.Include(_list(v["include"]))
    if isinstance(v, dict) and "exclude" in v:
        return qe.PayloadSelector.Exclude(_list(v["exclude"]))
    raise Unsupported(f"with_payload {v!r}")


def with_vector_in(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, list):
        return list(v)
    raise Unsupported(f"with_vector {v!r}")


def params_in(p: Any) -> qe.SearchParams | None:
    if p is None:
        return None
    extra = set(p) - {"hnsw_ef", "exact", "quantization", "indexed_only", "acorn", "idf"}
    if extra:
        raise Unsupported(f"params keys {sorted(extra)}")
    quant = None
    if p.get("quantization") is not None:
        q = p["quantization"]
        quant = qe.QuantizationSearchParams(ignore=bool(q.get("ignore", False)),
                                            rescore=q.get("rescore"),
                                            oversampling=q.get("oversampling"))
    acorn = None
    if p.get("acorn") is not None:
        a = p["acorn"]
        acorn = qe.AcornSearchParams(enable=bool(a.get("enable", False)), max_selectivity=a.get("max_selectivity"))
    idf = None
    if p.get("idf") is not None:
        i = p["idf"]
        # "global" or {"corpus": <filter>}
        idf = qe.IdfParams(corpus=None if i == "global" else filter_in(i["corpus"]))
    return qe.SearchParams(hnsw_ef=p.get("hnsw_ef"), exact=bool(p.get("exact", False)),
                           quantization=quant, indexed_only=bool(p.get("indexed_only", False)), acorn=acorn,
                           idf=idf)


def _direction(d: Any) -> Any:
    if d is None:
        return None
    return {"asc": qe.Direction.Asc, "desc": qe.Direction.Desc}[d]


def order_by_in(o: Any) -> qe.OrderBy:
    if isinstance(o, str):
        return qe.OrderBy(o)
    return qe.OrderBy(o["key"], _direction(o.get("direction")), o.get("start_from"))


def scoring_query_in(q: Any, using: str | None) -> Any:
    """The REST `query` field (QueryInterface) as a qdrant_edge scoring query."""
    if q is None:
        return None
    if isinstance(q, dict):
        if "nearest" in q:
            return qe.Query.Nearest(vector_in(q["nearest"]), using=using)
        if "indices" in q:
            return qe.Query.Nearest(vector_in(q), using=using)
        if "fusion" in q:
            return {"rrf": qe.Fusion.Rrf(k=2), "dbsf": qe.Fusion.Dbsf()}[q["fusion"]]
        if "rrf" in q:
            r = q["rrf"] or {}
            return qe.Fusion.Rrf(k=int(r.get("k", 2)), weights=r.get("weights"))
        if "order_by" in q:
            return order_by_in(q["order_by"])
        if "text" in q:
            # BM25: {"text": "…"} or {"text": {"query", "scoring": {"bm25": {"k", "b"}}}}, field in `using`
            t = q["text"]
            if isinstance(t, str):
                return qe.TextQuery(using, t)
            bm25 = (t.get("scoring") or {}).get("bm25")
            params = None if bm25 is None else qe.Bm25Params(k=bm25.get("k"), b=bm25.get("b"))
            return qe.TextQuery(using, t["query"], params)
        raise Unsupported(f"query object {sorted(q)}")
    if isinstance(q, list):
        return qe.Query.Nearest(vector_in(q), using=using)
    raise Unsupported(f"query {q!r} (point-id queries need a lookup)")


def prefetch_in(p: dict) -> qe.Prefetch:
    extra = set(p) - {"query", "using", "prefetch", "filter", "params", "score_threshold", "limit"}
    if extra:
        raise Unsupported(f"prefetch keys {sorted(extra)}")
    return qe.Prefetch(limit=int(p.get("limit", 10)),
                       query=scoring_query_in(p.get("query"), p.get("using")),
                       prefetches=[prefetch_in(x) for x in _list(p["prefetch"])] if p.get("prefetch") else None,
                       params=params_in(p.get("params")), filter=filter_in(p.get("filter")),
                       score_threshold=p.get("score_threshold"))


# ---------------------------------------------------------------------------------------------
# requests (REST defaults applied here, so nothing depends on qdrant_edge's own defaults)

_QUERY_KEYS = {"query", "using", "prefetch", "filter", "params", "score_threshold", "limit",
               "offset", "with_payload", "with_vector"}
_SEARCH_KEYS = {"vector", "filter", "params", "limit", "offset", "with_payload", "with_vector",
                "score_threshold"}


def query_request_in(b: dict) -> qe.QueryRequest:
    extra = set(b) - _QUERY_KEYS
    if extra:
        raise Unsupported(f"query keys {sorted(extra)}")
    return qe.QueryRequest(
        limit=int(b.get("limit", 10)),
        offset=int(b.get("offset", 0)),
        query=scoring_query_in(b.get("query"), b.get("using")),
        prefetches=[prefetch_in(x) for x in _list(b["prefetch"])] if b.get("prefetch") else None,
        with_vector=with_vector_in(b.get("with_vector", False)),
        with_payload=with_payload_in(b.get("with_payload", False)),
        filter=filter_in(b.get("filter")),
        score_threshold=b.get("score_threshold"),
        params=params_in(b.get("params")),
    )


def search_request_in(b: dict) -> qe.SearchRequest:
    extra = set(b) - _SEARCH_KEYS
    if extra:
        raise Unsupported(f"search keys {sorted(extra)}")
    v = b["vector"]
    if isinstance(v, dict) and "name" in v:
        query = qe.Query.Nearest(vector_in(v["vector"]), using=v["name"])
    else:
        query = qe.Query.Nearest(vector_in(v))
    return qe.SearchRequest(
        query=query,
        limit=int(b["limit"]),
        offset=int(b.get("offset", 0)),
        filter=filter_in(b.get("filter")),
        params=params_in(b.get("params")),
        with_vector=with_vector_in(b.get("with_vector", False)),
        with_payload=with_payload_in(b.get("with_payload", False)),
        score_threshold=b.get("score_threshold"),
    )


def scroll_request_in(b: dict) -> qe.ScrollRequest:
    extra = set(b) - {"offset", "limit", "filter", "with_payload", "with_vector", "order_by"}
    if extra:
        raise Unsupported(f"scroll keys {sorted(extra)}")
    return qe.ScrollRequest(
        offset=None if b.get("offset") is None else pid_in(b["offset"]),
        limit=int(b.get("limit", 10)),
        filter=filter_in(b.get("filter")),
        with_payload=with_payload_in(b.get("with_payload", True)),
        with_vector=with_vector_in(b.get("with_vector", False)),
        order_by=None if b.get("order_by") is None else order_by_in(b["order_by"]),
    )


def count_request_in(b: dict) -> qe.CountRequest:
    extra = set(b) - {"filter", "exact"}
    if extra:
        raise Unsupported(f"count keys {sorted(extra)}")
    return qe.CountRequest(exact=bool(b.get("exact", True)), filter=filter_in(b.get("filter")))


def facet_request_in(b: dict) -> qe.FacetRequest:
    extra = set(b) - {"key", "limit", "filter", "exact"}
    if extra:
        raise Unsupported(f"facet keys {sorted(extra)}")
    return qe.FacetRequest(key=b["key"], limit=int(b.get("limit", 10)),
                           exact=bool(b.get("exact", False)), filter=filter_in(b.get("filter")))


# ---------------------------------------------------------------------------------------------
# results


def scored_out(p: Any) -> dict:
    out: dict[str, Any] = {"id": pid_out(p.id), "version": int(p.version), "score": f32(p.score)}
    if p.payload is not None:
        out["payload"] = p.payload
    if p.vector is not None:
        out["vector"] = vector_out(p.vector)
    if p.order_value is not None:
        out["order_value"] = p.order_value
    return out


def record_out(r: Any) -> dict:
    out: dict[str, Any] = {"id": pid_out(r.id)}
    if r.payload is not None:
        out["payload"] = r.payload
    if r.vector is not None:
        out["vector"] = vector_out(r.vector)
    if r.order_value is not None:
        out["order_value"] = r.order_value
    return out


_SCHEMA_NAMES = {
    "Keyword": "keyword", "Integer": "integer", "Float": "float", "Geo": "geo", "Text": "text",
    "Bool": "bool", "Datetime": "datetime", "Uuid": "uuid",
}


def info_json(info: Any) -> dict:
    """EdgeShard.info() as JSON:
    {"segments_count": n, "points_count": n, "indexed_vectors_count": n,
     "payload_schema": {key: {"data_type": "keyword"|"integer"|..., "points": n}}}
    (`points` summed over segments, as qdrant-edge does; index params are not included)."""
    schema = {}
    for key in sorted(info.payload_schema):
        pi = info.payload_schema[key]
        schema[key] = {"data_type": _SCHEMA_NAMES[repr(pi.data_type).rsplit(".", 1)[-1]], "points": int(pi.points)}
    return {
        "segments_count": int(info.segments_count),
        "points_count": int(info.points_count),
        "indexed_vectors_count": int(info.indexed_vectors_count),
        "payload_schema": schema,
    }


def run(shard: qe.EdgeShard, command: str, body: dict) -> Any:
    """Execute one REST request against a qdrant_edge shard; returns the REST `result`."""
    if command == "query":
        return {"points": [scored_out(p) for p in shard.query(query_request_in(body))]}
    if command == "search":
        return [scored_out(p) for p in shard.search(search_request_in(body))]
    if command == "scroll":
        points, nxt = shard.scroll(scroll_request_in(body))
        return {"points": [record_out(r) for r in points],
                "next_page_offset": None if nxt is None else pid_out(nxt)}
    if command == "count":
        return {"count": int(shard.count(count_request_in(body)))}
    if command == "facet":
        resp = shard.facet(facet_request_in(body))
        return {"hits": [{"value": h.value, "count": int(h.count)} for h in resp.hits]}
    if command == "retrieve":
        extra = set(body) - {"ids", "with_payload", "with_vector"}
        if extra:
            raise Unsupported(f"retrieve keys {sorted(extra)}")
        recs = shard.retrieve([pid_in(i) for i in body["ids"]],
                              with_payload_in(body.get("with_payload", True)),
                              with_vector_in(body.get("with_vector", False)))
        return [record_out(r) for r in recs]
    if command == "info":
        return info_json(shard.info())
    raise Unsupported(f"command {command}")


# REST path (under /collections/<c>/) -> command
PATHS = {
    ("POST", "points/query"): "query",
    ("POST", "points/search"): "search",
    ("POST", "points/scroll"): "scroll",
    ("POST", "points/count"): "count",
    ("POST", "facet"): "facet",
    ("POST", "points"): "retrieve",
}
