"""qdrant-edge-py 0.9.0's answers to BM25 text queries through a sequence of updates.

    python bm25_oracle.py <scenario.json> <out-dir>

The scenario: {"schema": <REST schema of the text index on "body">, "indexes": {field: schema}
(more payload indexes), "optimizers": {EdgeOptimizersConfig args}, "queries": [REST query
bodies], "steps": [...]} where a step is one of
  {"upsert": [[id, payload, sparse?], ...]}  (vector "v" [1, 0, 0, id / 1000] per point, and
                                         "s" = {"indices", "values"} where given; the
                                         scenario's "sparse": true adds that vector, with the
                                         `idf` modifier)
  {"delete": [ids]}
  {"overwrite_payload": {"ids": [...], "payload": {...}}}
  {"optimize": true}
  {"reload": true}                      (close, load again)
  {"ask": "<label>"}                    (flush, copy the shard to <out-dir>/<label>, answer
                                         every query)
Prints {label: [answer per query]}; an answer is [[id, score], ...] or {"error": message}.
"""
import json
import os
import shutil
import sys

import qdrant_edge as q

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rest  # noqa: E402

PARAMS = {
    "keyword": q.KeywordIndexParams,
    "integer": q.IntegerIndexParams,
    "text": q.TextIndexParams,
}
TYPES = {"keyword": q.PayloadSchemaType.Keyword, "integer": q.PayloadSchemaType.Integer,
         "text": q.PayloadSchemaType.Text}


def schema_in(s):
    if isinstance(s, str):
        return TYPES[s]
    kw = {k: v for k, v in s.items() if k != "type"}
    if "tokenizer" in kw:
        kw["tokenizer"] = getattr(q.TokenizerType, kw["tokenizer"].capitalize())
    if "stopwords" in kw:
        kw["stopwords"] = q.StopwordsSet(custom=kw["stopwords"]["custom"])
    return PARAMS[s["type"]](**kw)


scenario = json.load(open(sys.argv[1]))
out_dir = sys.argv[2]
path = os.path.join(out_dir, "live")
sparse = {"s": q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)} if scenario.get("sparse") else None
config = q.EdgeConfig(vectors={"v": q.EdgeVectorParams(size=4, distance=q.Distance.Dot)}, sparse_vectors=sparse,
                      optimizers=q.EdgeOptimizersConfig(**scenario.get("optimizers", {})), max_search_threads=1)
shard = q.EdgeShard.create(path, config)
shard.update(q.UpdateOperation.create_field_index("body", schema_in(scenario["schema"])))
for field, schema in scenario.get("indexes", {}).items():
    shard.update(q.UpdateOperation.create_field_index(field, schema_in(schema)))

answers = {}
for step in scenario["steps"]:
    if "upsert" in step:
        pts = []
        for i, p, *sp in step["upsert"]:
            vector = {"v": [1.0, 0.0, 0.0, i / 1000]}
            if sp:
                vector["s"] = q.SparseVector(sp[0]["indices"], sp[0]["values"])
            pts.append(q.Point(i, vector, p))
        shard.update(q.UpdateOperation.upsert_points(pts))
    elif "delete" in step:
        shard.update(q.UpdateOperation.delete_points(step["delete"]))
    elif "overwrite_payload" in step:
        o = step["overwrite_payload"]
        shard.update(q.UpdateOperation.overwrite_payload(o["ids"], o["payload"]))
    elif "optimize" in step:
        shard.optimize()
    elif "reload" in step:
        shard.close()
        shard = q.EdgeShard.load(path)
    elif "ask" in step:
        shard.flush()
        shutil.copytree(path, os.path.join(out_dir, step["ask"]))
        got = []
        for body in scenario["queries"]:
            try:
                res = rest.run(shard, "query", body)
                got.append([[p["id"], p["score"]] for p in res["points"]])
            except Exception as e:  # noqa: BLE001 - the message is the answer
                got.append({"error": str(e)})
        answers[step["ask"]] = got
    else:
        raise SystemExit(f"unknown step {step}")
shard.close()
print(json.dumps(answers))
