import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, os, shutil, struct, json, glob, hashlib, uuid
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmph import *
from check_map import parse_hashmap

def write_hashmap(path, kind, entries, rls=100, order=None):
    """entries: list of (key, [u32]). Writes the values_to_points.bin/vocab.dat layout with our own FMPH."""
    align = {'str': 1, 'i64': 8, 'u128': 16}[kind]
    keys = [k for k, _ in entries]
    levels, words = build_function(kind, keys, rls)
    phf = write_function(levels, words)
    head_len = 24 + len(phf)
    pad = (-head_len) % 4096
    bsize = 8 * len(keys)
    balign = (-bsize) % align
    buckets_pos = head_len + pad + balign
    data = bytearray(); buckets = [0] * len(keys)
    for k, ids in entries:
        data += bytes((-len(data)) % align)
        buckets[fn_get(levels, words, kind, k)] = len(data)
        if kind == 'str': kb = k.encode() + b'\xff'
        elif kind == 'i64': kb = struct.pack('<q', k)
        else: kb = k.to_bytes(16, 'little')
        data += kb + bytes((-len(kb)) % 4) + struct.pack('<I', len(ids)) + struct.pack('<%dI' % len(ids), *ids)
    out = bytearray(kind.encode().ljust(8, b'\0')) + struct.pack('<QQ', buckets_pos, len(keys)) + phf + bytes(pad + balign)
    out += struct.pack('<%dQ' % len(keys), *buckets) + data
    open(path, 'wb').write(out)

def tree_hash(d):
    h = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f); h[os.path.relpath(p, d)] = hashlib.sha256(open(p, 'rb').read()).hexdigest()
    return h

if __name__ == '__main__':
    src = WORK + '/gen/rich'
    for name in ('base', 'mod'):
        dst = WORK + f'/exp/{name}'
        shutil.rmtree(dst, ignore_errors=True); shutil.copytree(src, dst)
        seg = [s for s in glob.glob(dst + '/segments/*') if 'immutable' in open(s + '/payload_index/config.json').read()][0]
        cfgp = seg + '/payload_index/config.json'
        cfg = json.load(open(cfgp))
        for f in ('k', 'n', 'ou', 't', 'tp', 'u', 'big', 'meta.tag'):
            for t in cfg['indexed_types'][f]:
                if t['index_type'] != 'null_index' and t['index_type'] != 'int_index':
                    t['storage_type'] = {'mmap': {'is_on_disk': True}}
        json.dump(cfg, open(cfgp, 'w'), separators=(',', ':'))
        if name == 'mod':
            for p in glob.glob(seg + '/payload_index/*-map/values_to_points.bin') + glob.glob(seg + '/payload_index/*-text/vocab.dat'):
                m = parse_hashmap(p)
                ents = sorted(((k, ids) for _, k, ids in m['entries']), key=lambda e: e[0])
                write_hashmap(p, m['kind'], ents, rls=150)
                m2 = parse_hashmap(p)
                assert {k: i for _, k, i in m2['entries']} == {k: i for _, k, i in m['entries']}
                print('rewrote', p.split('payload_index/')[1], m['kind'], len(ents), 'levels', m['levels'], '->', m2['levels'])
    print('ok')
