import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, os, json, random, glob
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_text import unpack4x

seg = [s for s in glob.glob(WORK + '/gen/rich/segments/*') if 'immutable' in open(s + '/payload_index/config.json').read()][0]
b = open(seg + '/id_tracker.mappings', 'rb').read()
n = struct.unpack_from('<Q', b)[0]; pos = 8; int2ext = {}
for _ in range(n):
    pos += 1; ext = struct.unpack_from('<Q', b, pos)[0]; pos += 8
    it = struct.unpack_from('<I', b, pos)[0]; pos += 4; int2ext[it] = ext
ext2int = {v: k for k, v in int2ext.items()}
r2 = random.Random(5); vecs = {nm: {} for nm in ("s32", "s16", "s8", "sidf")}
for i in range(301):
    for nm in ("s32", "s16", "s8", "sidf"):
        if i % 6 != 0:
            k = r2.randint(1, 6); idx = r2.sample(range(1000), k); vals = [r2.uniform(-2, 3) for _ in idx]
            vecs[nm][ext2int[i]] = (idx, vals)

PADS = set()
def f32(x): return float(np.float32(x))
def f16(x): return float(np.float16(np.float32(x)))

def parse(d, dt):
    cfg = json.load(open(d + '/inverted_index_config.json'))
    raw = open(d + '/inverted_index.dat', 'rb').read()
    hs = 32 if dt == 'uint8' else 24
    wsz = {'float32': 4, 'float16': 2, 'uint8': 1}[dt]
    csz = 8 + 128 * wsz
    P = cfg['posting_count']
    heads = []
    pads = set()
    for t in range(P):
        ids_start, last_id, ids_len, chunks = struct.unpack_from('<QIII', raw, hs * t)
        params = struct.unpack_from('<ff', raw, hs * t + 20) if dt == 'uint8' else ()
        pads.add(raw[hs * t + 20 + (8 if dt == 'uint8' else 0): hs * (t + 1)])
        heads.append((ids_start, last_id, ids_len, chunks, params))
    lists = []
    for t, (st, last, il, ch, params) in enumerate(heads):
        end = heads[t + 1][0] if t + 1 < P else len(raw)
        body = raw[st:end]
        idd = body[:il]; p = il
        chs = []
        for c in range(ch):
            init, off = struct.unpack_from('<II', body, p)
            w = body[p + 8: p + csz]; chs.append((init, off, w)); p += csz
        ids = []; ws = []
        def wdec(bs):
            if dt == 'float32': return list(struct.unpack('<%df' % (len(bs) // 4), bs))
            if dt == 'float16': return [float(x) for x in np.frombuffer(bs, dtype='<f2')]
            return [params[0] + c * params[1] for c in bs]
        for c, (init, off, w) in enumerate(chs):
            e = chs[c + 1][1] if c + 1 < len(chs) else il
            nb = (e - off) * 8 // 128
            deltas = unpack4x(idd[off:e], nb)
            x = (init - 1) & 0xffffffff
            for dd in deltas: x = (x + dd + 1) & 0xffffffff; ids.append(x)
            ws += wdec(w)
        rem = body[p:]
        assert len(rem) % 8 == 0
        for r in range(0, len(rem), 8):
            rid = struct.unpack_from('<I', rem, r)[0]; ids.append(rid)
            if dt == 'float32': ws.append(struct.unpack_from('<f', rem, r + 4)[0])
            elif dt == 'float16': ws.append(float(np.frombuffer(rem[r+4:r+6], dtype='<f2')[0])); PADS.add(rem[r+6:r+8])
            else: ws.append(params[0] + rem[r + 4] * params[1]); PADS.add(rem[r+5:r+8])
        assert last == (ids[-1] + 1 if ids else 0)
        lists.append((ids, ws, params))
    tsz = len(raw) - hs * P
    return cfg, lists, pads, tsz

for nm, dt in (("s32", "float32"), ("s16", "float16"), ("s8", "uint8"), ("sidf", "float32")):
    d = seg + '/vector_index-' + nm
    cfg, lists, pads, tsz = parse(d, dt)
    tracker = {int(k): v for k, v in json.load(open(d + '/indices_tracker.json'))['map'].items()}
    # first appearance order hypotheses
    order_given = []; order_sorted = []
    for it in sorted(vecs[nm]):
        idx, _ = vecs[nm][it]
        for x in idx:
            if x not in order_given: order_given.append(x)
        for x in sorted(idx):
            if x not in order_sorted: order_sorted.append(x)
    h_given = all(tracker[x] == k for k, x in enumerate(order_given))
    h_sorted = all(tracker[x] == k for k, x in enumerate(order_sorted))
    # postings
    exp = {}
    for it, (idx, vals) in vecs[nm].items():
        for x, v in zip(idx, vals): exp.setdefault(tracker[x], []).append((it, v))
    ok = True; maxerr = 0
    for t, (ids, ws, params) in enumerate(lists):
        e = sorted(exp[t])
        if ids != [i for i, _ in e]: ok = False
        for (i, v), w in zip(e, ws):
            ref = f32(v) if dt == 'float32' else f16(v) if dt == 'float16' else v
            maxerr = max(maxerr, abs(ref - w))
    print('remainder pad values seen:', sorted(PADS)[:8], len(PADS)); PADS.clear(); print(nm, dt, 'cfg', cfg, '| total_sparse_size == body bytes:', cfg['total_sparse_size'] == tsz, '| vector_count == nonempty vectors:', cfg['vector_count'] == len(vecs[nm]),
          '| tracker first-appearance (stored order):', h_given, '(sorted order):', h_sorted, '| postings ok:', ok, 'max weight err', maxerr, '| header pad bytes:', pads,
          '| sparse_index_config:', open(d + '/sparse_index_config.json').read(), '| version:', open(d + '/version.info').read())
