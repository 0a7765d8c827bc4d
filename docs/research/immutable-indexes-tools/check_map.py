import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, glob, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmph import *

def parse_hashmap(path):
    b = open(path, 'rb').read()
    kt = b[:8]; buckets_pos, count = struct.unpack_from('<QQ', b, 8)
    kind = kt.rstrip(b'\0').decode()
    align = {'str': 1, 'i64': 8, 'u128': 16}[kind]
    levels, words, fend = read_function(b, 24)
    pad = b[fend:buckets_pos]
    assert all(x == 0 for x in pad), 'nonzero pad'
    # expected padding: 24+phf -> next 4096, + bucket_align
    phf_end = fend
    p4096 = -(-phf_end // 4096) * 4096
    bsize = 8 * count
    balign = (-(bsize) % align)
    assert buckets_pos == p4096 + balign, (buckets_pos, p4096, balign)
    buckets = struct.unpack_from('<%dQ' % count, b, buckets_pos)
    data = buckets_pos + 8 * count
    assert data % align == 0
    # walk entries sequentially
    pos = 0; entries = []
    for _ in range(count):
        pos = -(-pos // align) * align
        start = pos
        a = data + pos
        if kind == 'str':
            e = b.index(b'\xff', a); key = b[a:e].decode(); ksz = e - a + 1
        elif kind == 'i64':
            key = struct.unpack_from('<q', b, a)[0]; ksz = 8
        else:
            key = int.from_bytes(b[a:a+16], 'little'); ksz = 16
        kpad = -(-ksz // 4) * 4
        assert all(x == 0 for x in b[a+ksz:a+kpad])
        n = struct.unpack_from('<I', b, a + kpad)[0]
        ids = list(struct.unpack_from('<%dI' % n, b, a + kpad + 4))
        entries.append((start, key, ids))
        pos = start + kpad + 4 + 4 * n
    assert data + pos == len(b), ('trailing', data + pos, len(b))
    return dict(kind=kind, levels=levels, words=words, fend=fend, buckets_pos=buckets_pos, buckets=buckets, entries=entries, raw=b)

def verify(path, verbose=True):
    m = parse_hashmap(path)
    kind = m['kind']
    by_off = {e[0]: e for e in m['entries']}
    ok = True
    for start, key, ids in m['entries']:
        r = fn_get(m['levels'], m['words'], kind, key)
        if r is None or m['buckets'][r] != start:
            ok = False; print('MISMATCH', key, r); break
    # rebuild the function from the key set and compare bytes
    keys = [e[1] for e in m['entries']]
    lv, wd = build_function(kind, keys)
    same = write_function(lv, wd) == m['raw'][24:m['fend']]
    sorted_ids = all(ids == sorted(ids) for _, _, ids in m['entries'])
    order = [m['buckets'].index(e[0]) for e in m['entries']]
    if verbose:
        print(f"{path.split('/segments/')[-1] if '/segments/' in path else path}: kind={kind} keys={len(keys)} levels={m['levels']} phf_bytes={m['fend']-24} buckets_pos={m['buckets_pos']} size={len(m['raw'])} lookup_ok={ok} rebuilt_phf_identical={same} ids_sorted={sorted_ids} entry_order_is_phf_order={order==sorted(order)}")
    return m, ok, same

if __name__ == '__main__':
    for p in sys.argv[1:]:
        verify(p)
