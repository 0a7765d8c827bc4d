import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, glob, shutil
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'check_text2.py')).read().split('# --- term_frequencies')[0]
_src = _src.split("for field, phrase in")[0]
exec(_src)
import qdrant_edge as qe
from perturb import tree_hash

def raw_zstd_frame(content):
    out = bytearray(b'\x28\xb5\x2f\xfd') + bytes([0xE0]) + struct.pack('<Q', len(content))
    if not content:
        out += (1).to_bytes(3, 'little')  # last, raw, size 0
    for i in range(0, len(content), 128 * 1024):
        chunk = content[i:i + 128 * 1024]
        last = 1 if i + 128 * 1024 >= len(content) else 0
        out += (last | (0 << 1) | (len(chunk) << 3)).to_bytes(3, 'little') + chunk
    return bytes(out)

def build(dst):
    shutil.rmtree(dst, ignore_errors=True); shutil.copytree(WORK + '/gen/rich', dst)
    sg = [s for s in glob.glob(dst + '/segments/*') if 'immutable' in open(s + '/payload_index/config.json').read()][0]
    d = glob.glob(sg + '/payload_index/*-ts-text')[0]
    cnt = len(open(d + '/point_to_tokens_count.dat', 'rb').read()) // 8
    lens = [0] * cnt
    for it in range(n):
        p = pls[int2ext[it]]
        if 'ts' not in p: continue
        vals, st = stream(p['ts'], False)
        if vals: lens[it] = len(st)
    planes = bytes(l.to_bytes(4, 'little')[k] for k in range(4) for l in lens)
    hdr = b'QDRANTDL' + struct.pack('<IIQ', 1, 1, cnt) + bytes(40)
    open(d + '/point_to_doc_len.dat', 'wb').write(hdr + raw_zstd_frame(planes))
    return sg

def q(path):
    sg = [s for s in glob.glob(path + '/segments/*') if 'immutable' in open(s + '/payload_index/config.json').read()][0]
    before = tree_hash(sg)
    sh = qe.EdgeShard.load(path); res = []
    for text in ['alpha', 'zeta', 'beta gamma', 'eta theta delta']:
        r = sh.query(qe.QueryRequest(query=qe.TextQuery('ts', text), limit=20, with_payload=False))
        res.append([(p.id, round(p.score, 6)) for p in r])
    sh.close()
    after = tree_hash(sg)
    return res, sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

build(WORK + '/exp/zst')
a, ca = q(WORK + '/gen/rich'); b, cb = q(WORK + '/exp/zst')
print('BM25 answers identical with raw-block zstd doc_len sidecar:', a == b, '| results non-empty:', all(a), '| changed files:', ca, cb)
print(a[0][:3])
