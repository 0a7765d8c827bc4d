import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, json, glob, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'tests', 'corpus'))
import qdrant_edge as qe
from rest import filter_in
from perturb import tree_hash

FILTERS = []
for v in ["red", "blue", "green", "x", "nope", ""]:
    FILTERS.append({"must": [{"key": "k", "match": {"value": v}}]})
for v in [0, 1, 5, 7, 3, 4, 150, -3, 9007199254740993, 424242]:
    FILTERS.append({"must": [{"key": "n", "match": {"value": v}}]})
for i in [0, 1, 17, 162, 200]:
    FILTERS.append({"must": [{"key": "ou", "match": {"value": f"00000000-0000-0000-0000-{i:012d}"}}]})
FILTERS.append({"must": [{"key": "u", "match": {"value": "12345678-1234-5678-1234-567812345678"}}]})
for i in [0, 5, 150, 299, 1000]:
    FILTERS.append({"must": [{"key": "big", "match": {"value": f"key-{i}"}}]})
for v in ["m1", "m2", "m3", "m4"]:
    FILTERS.append({"must": [{"key": "meta.tag", "match": {"value": v}}]})
for v in ["d0", "d5", "d12", "d13"]:
    FILTERS.append({"must": [{"key": "kd", "match": {"value": v}}]})
FILTERS.append({"must": [{"key": "k", "match": {"any": ["red", "x", "zzz"]}}]})
FILTERS.append({"must": [{"key": "k", "match": {"except": ["red"]}}]})
for v in ["alpha", "beta gamma", "theta", "nothing", "eta"]:
    FILTERS.append({"must": [{"key": "t", "match": {"text": v}}]})
for v in ["gamma delta", "alpha beta", "eta", "zeta zeta"]:
    FILTERS.append({"must": [{"key": "tp", "match": {"phrase": v}}]})
    FILTERS.append({"must": [{"key": "ts", "match": {"text": v}}]})

def run(path):
    seg = [s for s in glob.glob(path + '/segments/*') if 'immutable' in open(s + '/payload_index/config.json').read()][0]
    before = tree_hash(seg + '/payload_index')
    shard = qe.EdgeShard.load(path)
    res = []
    for f in FILTERS:
        try:
            pts = shard.scroll(qe.ScrollRequest(filter=filter_in(f), limit=1000, with_payload=False))
            ids = sorted(p.id for p in pts[0])
            cnt = shard.count(qe.CountRequest(filter=filter_in(f), exact=True))
            res.append((cnt, ids))
        except Exception as e:
            res.append(('ERR', str(e)[:100]))
    facet = shard.facet(qe.FacetRequest(key="k", limit=100, exact=True))
    res.append(sorted((str(h.value), h.count) for h in facet.hits))
    shard.close()
    after = tree_hash(seg + '/payload_index')
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return res, changed

if __name__ == '__main__':
    a, ca = run(WORK + '/exp/base')
    b, cb = run(WORK + '/exp/mod')
    print('filters', len(FILTERS), 'identical answers:', a == b)
    print('nonzero answers:', sum(1 for r in a[:-1] if r[0] not in (0, 'ERR')), 'errors:', [r for r in a if r[0] == 'ERR'][:3])
    print('files changed by load (base):', ca)
    print('files changed by load (mod):', cb)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y: print('DIFF', FILTERS[i] if i < len(FILTERS) else 'facet', x[0], y[0])
