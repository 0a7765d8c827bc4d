import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, os, json, bisect
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_all import read_ptv, check_deleted

class Hist:
    def __init__(self, is_float, max_bucket=10000, precision=0.01):
        self.f = is_float; self.mb = max_bucket; self.p = precision; self.total = 0
        self.keys = []; self.cnt = {}
    def cbs(self):
        b = int(self.total * self.p)
        return min(max(b, 10), self.mb)
    def absdiff(self, a, b):
        if self.f: return a - b if a > b else b - a
        d = abs(a - b) & ((1 << 64) - 1)
        return d - (1 << 64) if d >= (1 << 63) else d
    def insert(self, val, mapkeys):
        def left_nb(x):
            i = bisect.bisect_left(mapkeys, x); return mapkeys[i-1] if i > 0 else None
        def right_nb(x):
            i = bisect.bisect_right(mapkeys, x); return mapkeys[i] if i < len(mapkeys) else None
        self.total += 1
        if len(self.keys) < 2:
            if val not in self.cnt: bisect.insort(self.keys, val)
            self.cnt[val] = [0, 0]; return
        i = bisect.bisect_right(self.keys, val)  # keys[:i] <= val
        L = (self.keys[i-1], list(self.cnt[self.keys[i-1]])) if i >= 1 else None
        FL = (self.keys[i-2], list(self.cnt[self.keys[i-2]])) if i >= 2 else None
        R = (self.keys[i], list(self.cnt[self.keys[i]])) if i < len(self.keys) else None
        FR = (self.keys[i+1], list(self.cnt[self.keys[i+1]])) if i + 1 < len(self.keys) else None
        cbs = self.cbs()
        to_remove = None; to_create = None
        if L is None and R is not None:
            nc = R[1][1] + 1
            if nc > cbs: to_create = (val, [0, 0])
            else:
                if FR: FR[1][0] = nc
                to_remove = R[0]; to_create = (val, [0, nc])
        elif L is not None and R is None:
            nc = L[1][0] + 1
            if nc > cbs: to_create = (val, [0, 0])
            else:
                if FL: FL[1][1] = nc
                to_remove = L[0]; to_create = (val, [nc, 0])
        else:
            assert L[1][1] == R[1][0]
            nc = L[1][1] + 1
            if nc > cbs:
                ld = self.absdiff(val[0], L[0][0]); rd = self.absdiff(val[0], R[0][0])
                if ld < rd:
                    nb = right_nb(L[0]); nbc = [L[1][0] + 1, L[1][1]]
                    if L[1][0] < cbs and FL is not None:
                        FL[1][1] = nbc[0]; to_remove = L[0]; to_create = (nb, nbc)
                    else:
                        nbc[0] = 0; L[1][1] = 0; to_create = (nb, nbc)
                else:
                    nb = left_nb(R[0]); nbc = [R[1][0], R[1][1] + 1]
                    if R[1][1] < cbs and FR is not None:
                        FR[1][0] = nbc[1]; to_remove = R[0]; to_create = (nb, nbc)
                    else:
                        nbc[1] = 0; R[1][0] = 0; to_create = (nb, nbc)
            else:
                L[1][1] = nc; R[1][0] = nc
        for e in (L, R, FL, FR):
            if e: self.cnt[e[0]] = e[1]
        if to_remove is not None:
            self.keys.remove(to_remove); del self.cnt[to_remove]
        if to_create is not None:
            k, c = to_create
            if k not in self.cnt: bisect.insort(self.keys, k)
            self.cnt[k] = c
    def serialize(self):
        out = struct.pack('<Q', len(self.keys))
        for k in self.keys:
            v, idx = k
            out += (struct.pack('<d', v) if self.f else struct.pack('<q', v)) + struct.pack('<IQQ', idx, *self.cnt[k])
        return out

def check_numeric_dir(d, is_float):
    kind = 'f64' if is_float else 'i64'
    vals = read_ptv(os.path.join(d, 'point_to_values.bin'), kind)
    check_deleted(os.path.join(d, 'deleted.bin'), vals)
    data = open(os.path.join(d, 'data.bin'), 'rb').read()
    recs = []
    for i in range(0, len(data), 16):
        v = struct.unpack_from('<d' if is_float else '<q', data, i)[0]
        idx, pad = struct.unpack_from('<II', data, i + 8)
        assert pad == 0
        recs.append((v, idx))
    # expected: set of (value,id), sorted by (value,id)
    seen = set(); exp = []
    mapkeys = []
    h = Hist(is_float)
    for idx, v in enumerate(vals):
        for x in v:
            if (x, idx) in seen: continue
            seen.add((x, idx)); bisect.insort(mapkeys, (x, idx))
            h.insert((x, idx), mapkeys)
    exp = sorted(seen)
    assert [(float(a) if is_float else a, b) for a, b in recs] == exp, 'data.bin'
    # sidecar
    sb = open(os.path.join(d, 'data_block_index.bin'), 'rb').read()
    assert sb[:8] == b'QdrntSBI'
    ver, es, per, res, tot = struct.unpack_from('<IIIIQ', sb, 8)
    assert (ver, es, per, res, tot) == (1, 16, 1024, 0, len(recs)), (ver, es, per, res, tot)
    assert sb[32:] == b''.join(data[k*16:(k+1)*16] for k in range(0, len(recs), 1024))
    hb = open(os.path.join(d, 'histogram_borders.bin'), 'rb').read()
    hist_ok = hb == h.serialize()
    hc = open(os.path.join(d, 'histogram_config.json')).read()
    assert hc == '{"max_bucket_size":10000,"precision":0.01,"total_count":%d}' % len(recs), hc
    mc = open(os.path.join(d, 'mmap_field_index_config.json')).read()
    assert mc == '{"max_values_per_point":%d}' % max([len(v) for v in vals] + [0]), mc
    return f"numeric {kind}: points={len(vals)} pairs={len(recs)} borders={struct.unpack_from('<Q', hb)[0]} histogram_reproduced={hist_ok}"

if __name__ == '__main__':
    seg_cfg = {}
    for d in sys.argv[1:]:
        seg = d.split('/payload_index/')[0]
        cfg = json.load(open(seg + '/payload_index/config.json'))
        # detect float by index_type
        name = d.split('/payload_index/')[1]
        is_float = None
        for f, types in cfg['indexed_types'].items():
            for t in types:
                pass
        # use field directory name: map back via indexed_types is awkward; sniff from schema
        fld = None
        import hashlib, base64
        for f in cfg['indexed_fields']:
            h = hashlib.sha256(f.encode()).digest()[:15]
            n = base64.b32encode(h).decode().translate(str.maketrans('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', '0123456789abcdefghijklmnopqrstuv')).lower()
            if name.startswith(n): fld = f
        sch = cfg['indexed_fields'][fld]
        typ = sch if isinstance(sch, str) else sch['type']
        try:
            print(name, typ, check_numeric_dir(d, typ == 'float'))
        except Exception as e:
            import traceback; traceback.print_exc()
            print(name, 'FAIL', repr(e))
