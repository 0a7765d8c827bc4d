import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, struct, os, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_map import parse_hashmap
from check_all import read_bits

def unpack4x(block, b):
    """BitPacker4x: 128 numbers, lane k%4, position k//4; each lane LSB-first stream of 32*b bits in b u32 words; word w of lane j at byte 16w+4j"""
    out = [0] * 128
    if b == 0: return out
    for j in range(4):
        words = [struct.unpack_from('<I', block, 16 * w + 4 * j)[0] for w in range(b)]
        bits = 0
        for w in reversed(words): bits = (bits << 32) | w
        for p in range(32):
            out[4 * p + j] = (bits >> (p * b)) & ((1 << b) - 1)
    return out

def parse_postings(path, positions=False):
    b = open(path, 'rb').read()
    cnt, total_tokens = struct.unpack_from('<QQ', b, 0)
    assert b[16:40] == bytes(24)
    value_size = 4 if positions else 0
    chunk_size = 8 + 128 * value_size
    rem_size = 4 + value_size
    lists = []; pos = 40 + 24 * cnt
    for t in range(cnt):
        off, chunks, idb, align, remc, r0, r1, varb = struct.unpack_from('<QIIBBBBI', b, 40 + 24 * t)
        assert off == pos, ('offset', t, off, pos)
        assert (r0, r1) == (0, 0)
        p = off
        last_id = struct.unpack_from('<I', b, p)[0]; p += 4
        chs = []
        for c in range(chunks):
            init, coff = struct.unpack_from('<II', b, p)
            vals = struct.unpack_from('<%dI' % (128 if positions else 0), b, p + 8)
            chs.append((init, coff, vals)); p += chunk_size
        id_data = b[p:p + idb]; p += idb
        var = b[p:p + varb]; p += varb
        assert (idb + varb + align) % 4 == 0 and align < 4 and b[p:p + align] == bytes(align)
        p += align
        ids = []; voffs = []
        for c, (init, coff, vals) in enumerate(chs):
            end = chs[c + 1][1] if c + 1 < len(chs) else idb
            nb = (end - coff) * 8 // 128
            deltas = unpack4x(id_data[coff:end], nb)
            x = init
            assert deltas[0] == 0
            for d in deltas: x += d; ids.append(x)
            voffs += list(vals)
        for r in range(remc):
            rid = struct.unpack_from('<I', b, p)[0]
            if positions: voffs.append(struct.unpack_from('<I', b, p + 4)[0])
            ids.append(rid); p += rem_size
        assert ids == sorted(set(ids)) and ids[-1] == last_id
        posl = None
        if positions:
            posl = []
            for k, o in enumerate(voffs):
                e = voffs[k + 1] if k + 1 < len(voffs) else len(var)
                posl.append(list(struct.unpack_from('<%dI' % ((e - o) // 4), var, o)))
        lists.append((ids, posl, dict(chunks=chunks, idb=idb, align=align, rem=remc, varb=varb)))
        pos = p
    assert pos == len(b), ('trailing', pos, len(b))
    return total_tokens, lists

def check_text_dir(d, positions):
    total_tokens, lists = parse_postings(os.path.join(d, 'postings.dat'), positions)
    m = parse_hashmap(os.path.join(d, 'vocab.dat'))
    vocab = {k: ids for _, k, ids in m['entries']}
    assert all(len(v) == 1 for v in vocab.values())
    tid = {k: v[0] for k, v in vocab.items()}
    assert sorted(tid.values()) == list(range(len(lists))), 'token ids'
    ptc = open(os.path.join(d, 'point_to_tokens_count.dat'), 'rb').read()
    counts = struct.unpack('<%dQ' % (len(ptc) // 8), ptc)
    n = len(counts)
    exp = [0] * n
    for ids, _, _ in lists:
        for i in ids: exp[i] += 1
    assert list(counts) == exp, 'tokens count'
    raw, bits = read_bits(os.path.join(d, 'deleted_points.dat'))
    assert len(raw) == -(-(-(-n // 8)) // 8) * 8
    assert [bits[i] for i in range(n)] == [1 if c == 0 else 0 for c in counts] and not any(bits[n:])
    firsts = [lists[tid[k]][0][0] for k in sorted(tid, key=lambda k: tid[k])]
    first_appearance_ok = firsts == sorted(firsts)
    return f"text: tokens={len(lists)} points={n} total_tokens_hdr={total_tokens} first_appearance_order={first_appearance_ok} files={sorted(os.listdir(d))} lists0={lists[0][2] if lists else None}"

if __name__ == '__main__':
    for d in sys.argv[1:]:
        seg = d.split('/payload_index/')[0]
        cfg = json.load(open(seg + '/payload_index/config.json'))
        pm = any(isinstance(s, dict) and s.get('phrase_matching') for f, s in cfg['indexed_fields'].items() if d.endswith('-' + f.replace('.', '_') + '-text'))
        try: print(d.split('payload_index/')[1], check_text_dir(d, pm))
        except Exception as e:
            import traceback; traceback.print_exc(); print(d, 'FAIL', repr(e))
