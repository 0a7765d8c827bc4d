import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, os, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_all import read_ptv, check_deleted

def spread(x):
    x &= 0xffffffff
    x = (x | (x << 16)) & 0x0000ffff0000ffff
    x = (x | (x << 8)) & 0x00ff00ff00ff00ff
    x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0f
    x = (x | (x << 2)) & 0x3333333333333333
    x = (x | (x << 1)) & 0x5555555555555555
    return x

def f2bits(f): return struct.unpack('<Q', struct.pack('<d', f))[0]

def geohash12(lon, lat):
    lat32 = (f2bits(lat * 0.005555555555555556 + 1.5) >> 20) & 0xffffffff
    lon32 = (f2bits(lon * 0.002777777777777778 + 1.5) >> 20) & 0xffffffff
    inter = spread(lat32) | (spread(lon32) << 1)
    return (inter & ~0xF & ((1 << 64) - 1)) | 12

def truncate(h, n):
    if n == 0: return 0
    mask = ((1 << 64) - 1) ^ ((1 << (64 - 5 * n)) - 1)
    return (h & mask) | n

def check_geo_dir(d):
    vals = read_ptv(os.path.join(d, 'point_to_values.bin'), 'geo')
    check_deleted(os.path.join(d, 'deleted.bin'), vals)
    pm = open(os.path.join(d, 'points_map.bin'), 'rb').read()
    ids = open(os.path.join(d, 'points_map_ids.bin'), 'rb').read()
    cph = open(os.path.join(d, 'counts_per_hash.bin'), 'rb').read()
    # expected
    points_map = {}; vph = {}; pph = {}
    for i, v in enumerate(vals):
        hs = [geohash12(lon, lat) for lon, lat in v]
        for h in hs:
            points_map.setdefault(h, set()).add(i)
            for n in range(13): t = truncate(h, n); vph[t] = vph.get(t, 0) + 1
        seen = set()
        for h in hs:
            for n in range(13):
                t = truncate(h, n)
                if t not in seen: seen.add(t); pph[t] = pph.get(t, 0) + 1
    got_pm = []; pos = 0; sorted_within = True
    id_list = struct.unpack('<%dI' % (len(ids) // 4), ids)
    for k in range(0, len(pm), 16):
        h, s, e = struct.unpack_from('<QII', pm, k)
        assert s == pos; pos = e
        grp = list(id_list[s:e]); sorted_within &= grp == sorted(grp)
        got_pm.append((h, set(grp)))
    assert pos == len(id_list)
    assert got_pm == sorted(points_map.items()), 'points_map'
    got_c = [struct.unpack_from('<QII', cph, k) for k in range(0, len(cph), 16)]
    assert got_c == [(h, pph[h], vph[h]) for h in sorted(pph)], 'counts_per_hash'
    for name, arr in (('counts_per_hash_block_index.bin', cph), ('points_map_block_index.bin', pm)):
        sb = open(os.path.join(d, name), 'rb').read()
        ver, es, per, res, tot = struct.unpack_from('<IIIIQ', sb, 8)
        assert sb[:8] == b'QdrntSBI' and (ver, es, per, res, tot) == (1, 16, 1024, 0, len(arr) // 16)
        assert sb[32:] == b''.join(arr[k*16:(k+1)*16] for k in range(0, len(arr) // 16, 1024))
    st = open(os.path.join(d, 'mmap_field_index_stats.json')).read()
    exp = '{"points_values_count":%d,"max_values_per_point":%d}' % (sum(len(v) for v in vals), max([len(v) for v in vals] + [0]))
    assert st == exp, (st, exp)
    return f"geo: points={len(vals)} hashes={len(got_pm)} counts={len(got_c)} ids_sorted_within_hash={sorted_within} stats={st}"

if __name__ == '__main__':
    for d in sys.argv[1:]:
        try: print(d.split('payload_index/')[1], check_geo_dir(d))
        except Exception as e:
            import traceback; traceback.print_exc(); print(d, 'FAIL', repr(e))
