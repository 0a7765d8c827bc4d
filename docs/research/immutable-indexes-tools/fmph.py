import tempfile
# Independent model of ph 0.8.5 fmph::Function with seedable_hash BuildWyHash (wyhash 0.5.0)
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import struct
M64 = (1 << 64) - 1
P0 = 0xa0761d6478bd642f; P1 = 0xe7037ed1a0b428db; P2 = 0x8ebc6af09c88c6e3
P3 = 0x589965cc75374cc3; P4 = 0x1d8e4e27c47d124f; P5 = 0xeb44accab455d165

def wymum(a, b):
    r = a * b
    return ((r >> 64) ^ r) & M64

def read64(d, i=0): return int.from_bytes(d[i:i+8], 'little')
def read32(d, i=0): return int.from_bytes(d[i:i+4], 'little')
def read64_swapped(d, i=0): return ((read32(d, i) << 32) | read32(d, i+4)) & M64
def read_rest(d):
    n = len(d)
    if n == 1: return d[0]
    if n == 2: return (d[1] << 8) | d[0]
    if n == 3: return (d[1] << 16) | (d[0] << 8) | d[2]
    if n == 4: return read32(d)
    if n == 5: return (read32(d) << 8) | d[4]
    if n == 6: return (read32(d) << 16) | (d[5] << 8) | d[4]
    if n == 7: return (read32(d) << 24) | (d[5] << 16) | (d[4] << 8) | d[6]
    if n == 8: return read64_swapped(d)
    raise ValueError

def wyhash_core(b, seed):
    n = len(b)
    for i in range(0, n - n % 32, 32):
        seed = wymum(seed ^ P0, wymum(read64(b, i) ^ P1, read64(b, i+8) ^ P2) ^ wymum(read64(b, i+16) ^ P3, read64(b, i+24) ^ P4))
    seed = seed ^ P0
    rest = n & 31
    if rest:
        s = n & ~31
        k = ((n - 1) & 31) // 8
        if k == 0:
            seed = wymum(seed, read_rest(b[s:]) ^ P1)
        elif k == 1:
            seed = wymum(read64_swapped(b, s) ^ seed, read_rest(b[s+8:]) ^ P2)
        elif k == 2:
            seed = wymum(read64_swapped(b, s) ^ seed, read64_swapped(b, s+8) ^ P2) ^ wymum(seed, read_rest(b[s+16:]) ^ P3)
        else:
            seed = wymum(read64_swapped(b, s) ^ seed, read64_swapped(b, s+8) ^ P2) ^ wymum(read64_swapped(b, s+16) ^ seed, read_rest(b[s+24:]) ^ P4)
    return seed

class WyHash:
    def __init__(self, seed): self.h = seed; self.size = 0
    def write(self, b):
        if len(b) == 0: self.h ^= P0
        else:
            self.h = wyhash_core(b, self.h); self.size += len(b)
    def finish(self): return wymum(self.h, self.size ^ P5)

def key_writes(kind, key):
    """The Hasher::write calls std's Hash impl makes for each key type."""
    if kind == 'str': return [key.encode() if isinstance(key, str) else key, b'\xff']
    if kind == 'i64': return [struct.pack('<q', key)]
    if kind == 'u128': return [key.to_bytes(16, 'little')]
    raise ValueError

def hash_one(kind, key, seed):
    h = WyHash(seed)
    for w in key_writes(kind, key): h.write(w)
    return h.finish()

def map64(h, n): return (h * n) >> 64

def vbyte_read(b, pos):
    res = 0; shift = 0
    while shift < 56:
        x = b[pos]; pos += 1
        res |= (x & 0x7f) << shift
        if x < 128: return res, pos
        shift += 7
    x = b[pos]; pos += 1
    return res | (x << shift), pos

def vbyte_write(v):
    out = bytearray()
    if v >= (1 << 28):
        for s in (0, 7, 14, 21): out.append(((v >> s) & 0x7f) | 0x80)
        v >>= 28
    while True:
        if v < 128: out.append(v); return bytes(out)
        out.append((v & 0x7f) | 0x80); v >>= 7

def read_function(b, pos=0):
    n, pos = vbyte_read(b, pos)
    levels = []
    for _ in range(n):
        v, pos = vbyte_read(b, pos); levels.append(v)
    words = []
    for _ in range(sum(levels)):
        words.append(int.from_bytes(b[pos:pos+8], 'little')); pos += 8
    return levels, words, pos

def fn_get(levels, words, kind, key):
    begin = 0
    for lvl, segs in enumerate(levels):
        size = segs * 64
        i = begin + map64(hash_one(kind, key, lvl), size)
        if (words[i // 64] >> (i % 64)) & 1:
            # rank: ones before i
            r = sum(bin(w).count('1') for w in words[:i // 64]) + bin(words[i // 64] & ((1 << (i % 64)) - 1)).count('1')
            return r
        begin += size
    return None

def build_function(kind, keys, relative_level_size=100):
    keys = list(keys)
    levels = []; arrays = []
    seed = 0
    no_reduction = 0
    while keys:
        n = len(keys)
        segs = -(-(n * relative_level_size) // (64 * 100))
        size = segs * 64
        idx = [map64(hash_one(kind, k, seed), size) for k in keys]
        cnt = {}
        for i in idx: cnt[i] = cnt.get(i, 0) + 1
        arr = [0] * segs
        for i, c in cnt.items():
            if c == 1: arr[i // 64] |= 1 << (i % 64)
        keys2 = [k for k, i in zip(keys, idx) if cnt[i] != 1]
        levels.append(segs); arrays.append(arr)
        if len(keys2) == n:
            no_reduction += 1
            if no_reduction == 10: raise RuntimeError('duplicates')
        else: no_reduction = 0
        keys = keys2; seed += 1
    words = [w for a in arrays for w in a]
    return levels, words

def write_function(levels, words):
    out = bytearray(vbyte_write(len(levels)))
    for l in levels: out += vbyte_write(l)
    for w in words: out += w.to_bytes(8, 'little')
    return bytes(out)
