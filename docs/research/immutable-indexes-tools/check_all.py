import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, glob, os, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmph import *
from check_map import parse_hashmap

def read_ptv(path, kind):
    b = open(path, 'rb').read()
    rs, n = struct.unpack_from('<QQ', b, 0)
    assert rs == 4096 and all(x == 0 for x in b[16:4096]), 'ptv header'
    ranges = [struct.unpack_from('<QQ', b, rs + 16 * i) for i in range(n)]
    vals = []
    pos = rs + 16 * n
    for i, (st, c) in enumerate(ranges):
        assert st == pos, ('ptv start not contiguous', i, st, pos)
        v = []
        for _ in range(c):
            if kind == 'str':
                L = struct.unpack_from('<I', b, pos)[0]; v.append(b[pos+4:pos+4+L].decode()); pos += 4 + L
            elif kind in ('i64',):
                v.append(struct.unpack_from('<q', b, pos)[0]); pos += 8
            elif kind == 'f64':
                v.append(struct.unpack_from('<d', b, pos)[0]); pos += 8
            elif kind == 'u128':
                v.append(int.from_bytes(b[pos:pos+16], 'little')); pos += 16
            elif kind == 'geo':
                v.append(struct.unpack_from('<dd', b, pos)); pos += 16
        vals.append(v)
    assert pos == len(b), ('ptv trailing', pos, len(b))
    return vals

def read_bits(path):
    b = open(path, 'rb').read()
    return b, [(b[i // 8] >> (i % 8)) & 1 for i in range(len(b) * 8)]

def check_deleted(path, vals):
    b, bits = read_bits(path)
    n = len(vals)
    exp_len = -(-n // 8)
    exp_len = -(-exp_len // 8) * 8
    assert len(b) == exp_len, ('deleted len', len(b), exp_len)
    for i in range(len(bits)):
        exp = 1 if i < n and not vals[i] else 0
        assert bits[i] == exp, ('deleted bit', i)
    return True

def check_map_dir(d):
    m = parse_hashmap(os.path.join(d, 'values_to_points.bin'))
    kind = m['kind']
    vals = read_ptv(os.path.join(d, 'point_to_values.bin'), kind)
    inv = {}
    for i, v in enumerate(vals):
        assert len(v) == len(set(v)), 'dup values in ptv'
        for x in v: inv.setdefault(x, []).append(i)
    got = {k: ids for _, k, ids in m['entries']}
    assert got == inv, 'vtp != inverse(ptv)'
    check_deleted(os.path.join(d, 'deleted.bin'), vals)
    cfg = json.load(open(os.path.join(d, 'mmap_field_index_config.json')))
    raw = open(os.path.join(d, 'mmap_field_index_config.json')).read()
    assert cfg == {'total_key_value_pairs': sum(len(v) for v in vals)}, cfg
    files = sorted(os.listdir(d))
    return f"map {kind}: keys={len(got)} points={len(vals)} files={files} cfg={raw}"

if __name__ == '__main__':
    for d in sys.argv[1:]:
        try:
            print(d.split('payload_index/')[-1], check_map_dir(d))
        except Exception as e:
            print(d.split('payload_index/')[-1], 'FAIL', repr(e))
