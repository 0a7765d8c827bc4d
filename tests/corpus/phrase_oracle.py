"""qdrant-edge-py 0.9.0's answers to phrase (and all-token) conditions on given texts.

    python phrase_oracle.py '{"texts": [...], "phrases": [...]}'

Makes a shard with one 4-dim vector per point (ids 0..n-1), payload {"t": text}, a text index
on `t` with phrase matching, and prints {"phrase": {p: [ids]}, "text": {p: [ids]}} (ids
ascending) for every given phrase, asked as `phrase` and as `text`.
"""
import json
import sys
import tempfile

import qdrant_edge as q

req = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    s = q.EdgeShard.create(d + "/shard", q.EdgeConfig(vectors={"v": q.EdgeVectorParams(size=4, distance=q.Distance.Dot)}))
    s.update(q.UpdateOperation.create_field_index("t", q.TextIndexParams(phrase_matching=True)))
    s.update(q.UpdateOperation.upsert_points(
        [q.Point(id=i, vector={"v": [float(i)] * 4}, payload={"t": t}) for i, t in enumerate(req["texts"])]))
    out = {"phrase": {}, "text": {}}
    for p in req["phrases"]:
        for kind, match in (("phrase", q.MatchPhrase(p)), ("text", q.MatchText(p))):
            f = q.Filter(must=[q.FieldCondition("t", match=match)])
            points, _ = s.scroll(q.ScrollRequest(filter=f, limit=1000))
            out[kind][p] = sorted(pt.id for pt in points)
    s.close()
print(json.dumps(out))
