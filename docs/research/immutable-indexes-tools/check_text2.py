import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, os, json, random, re, glob
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'tests', 'corpus'))
from field_index_roundtrip import payload
from check_map import parse_hashmap
from check_text import parse_postings

seg = [s for s in glob.glob(WORK + '/gen/rich/segments/*') if 'immutable' in open(s + '/payload_index/config.json').read()][0]
b = open(seg + '/id_tracker.mappings', 'rb').read()
n = struct.unpack_from('<Q', b)[0]; pos = 8; int2ext = {}
for _ in range(n):
    kind = b[pos]; pos += 1
    assert kind == 0
    ext = struct.unpack_from('<Q', b, pos)[0]; pos += 8
    it = struct.unpack_from('<I', b, pos)[0]; pos += 4
    int2ext[it] = ext
rng = random.Random(11)
pls = {}
for i in range(301):
    p = payload(rng, i)
    if i % 10 == 7: p = {}
    pls[i] = p

def tokens(s): return [t.lower() for t in re.findall(r'[A-Za-z0-9]+', s)]

def stream(v, phrase):
    vals = [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]
    out = []
    for k, s in enumerate(vals):
        if phrase and len(vals) > 1 and k > 0: out.append('\x00')
        out += tokens(s)
    if all(t == '\x00' for t in out): out = []
    return vals, out

for field, phrase in (('t', False), ('tp', True), ('ts', False)):
    d = glob.glob(seg + f'/payload_index/*-{field}-text')[0]
    tt, lists = parse_postings(d + '/postings.dat', phrase)
    vocab = {k: ids[0] for _, k, ids in parse_hashmap(d + '/vocab.dat')['entries']}
    order = []; exp_post = {}; exp_pos = {}; last_with_strings = -1; total = 0
    for it in range(n):
        p = pls[int2ext[it]]
        if field not in p: continue
        vals, st = stream(p[field], phrase)
        if not vals: continue
        last_with_strings = it
        for k, t in enumerate(st):
            if t not in order: order.append(t)
            exp_post.setdefault(t, set()).add(it)
            exp_pos.setdefault((t, it), []).append(k)
        total += len([t for t in st if t != '\x00'])
    ok_ids = [vocab[t] for t in order] == list(range(len(order)))
    ok_post = all(set(lists[vocab[t]][0]) == exp_post[t] for t in order)
    ok_pos = (not phrase) or all(lists[vocab[t]][1][lists[vocab[t]][0].index(i)] == exp_pos[(t, i)] for (t, i) in exp_pos)
    ptc = os.path.getsize(d + '/point_to_tokens_count.dat') // 8
    print(field, 'token ids = first appearance in document order:', ok_ids, '| postings ok:', ok_post, '| positions ok:', ok_pos,
          '| ptc len', ptc, '= last internal id with a string value + 1:', last_with_strings + 1, '| hdr total_tokens', tt, 'sum doc lens', total)

# --- term_frequencies.dat of the BM25 index ---
def bits_lsb(data):
    v = int.from_bytes(data, 'little'); return v
d = glob.glob(seg + '/payload_index/*-ts-text')[0]
tt, lists = parse_postings(d + '/postings.dat', False)
vocab = {k: ids[0] for _, k, ids in parse_hashmap(d + '/vocab.dat')['entries']}
freq = {}
for it in range(n):
    p = pls[int2ext[it]]
    if 'ts' not in p: continue
    vals, st = stream(p['ts'], False)
    for t in st: freq[(vocab[t], it)] = freq.get((vocab[t], it), 0) + 1
tf = open(d + '/term_frequencies.dat', 'rb').read()
tc = struct.unpack_from('<Q', tf)[0]
hdrs = [struct.unpack_from('<QI', tf, 8 + 12 * k) for k in range(tc)]
data = tf[8 + 12 * tc:]
from check_text import unpack4x
ok = tc == len(lists)
for t, (off, ln) in enumerate(hdrs):
    ids = lists[t][0]; assert ln == len(ids)
    nch = ln // 128; rem = ln % 128
    p = off
    bo = struct.unpack_from('<%dI' % (nch + 1), data, p); p += 4 * (nch + 1)
    vals = []
    for c in range(nch):
        w = (bo[c + 1] - bo[c]) * 8 // 128
        vals += unpack4x(data[p + bo[c]: p + bo[c + 1]], w)
    p += bo[-1]
    width = data[p]; p += 1
    nbytes = (rem * width + 7) // 8
    v = int.from_bytes(data[p:p + nbytes], 'little')
    vals += [(v >> (k * width)) & ((1 << width) - 1) for k in range(rem)]
    ok &= [x + 1 for x in vals] == [freq[(t, i)] for i in ids]
    end = p + nbytes
    nxt = hdrs[t + 1][0] if t + 1 < len(hdrs) else len(data)
    ok &= (end == nxt)
print('term_frequencies.dat decoded == per-posting token frequencies (layout confirmed):', ok)
