//! The perfect-hash function and the persisted hash map of Qdrant's immutable payload indexes
//! (`values_to_points.bin` of a map index, `vocab.dat` of a full-text index).
//!
//! Qdrant stores the function as a fingerprint-based minimal perfect hash (FMPH): level `k` is
//! a bit array of `64·⌈m/64⌉` bits for the `m` keys still unplaced; a key's position on level
//! `k` is the multiply-shift of its 64-bit hash under seed `k` (WyHash, the final-v1 variant of
//! the `wyhash` crate 0.5), and the array holds a 1 exactly where one key landed alone. Keys that
//! collided go on to the next level. A key's value is the rank of its 1 bit over all levels.
//! Construction depends only on the key set, so this writer reproduces Qdrant's bytes exactly
//! (see `docs/research/immutable-indexes.md` §3.5–3.6, where every layout fact is checked on
//! files qdrant-edge wrote).
//!
//! Keys are hashed through the write calls Rust's std `Hash` makes: a string is two writes
//! (its UTF-8 bytes, then the single byte `0xFF`), an `i64` one write of its 8 LE bytes, a `u128`
//! one write of its 16 LE bytes. WyHash here is not streaming: each write is a separate
//! compression round, so the sequence of writes matters.
//!
//! ```text
//! persisted map:
//! 0    [u8;8] key type "str" / "i64" / "u128", NUL padded
//! 8    u64    buckets_pos (absolute)
//! 16   u64    key count
//! 24   function: VByte(levels) VByte(words of each level) words (u64 LE)
//!      zeros to a multiple of 4096, then zeros so that buckets_pos + 8·count is ALIGN-aligned
//! buckets_pos: count × u64 entry offset (relative to the data start) of the key whose value is b
//! data: entries, each ALIGN-aligned relative to the data start:
//!      key bytes (str: UTF-8 + 0xFF; i64 / u128 LE), zeros to a multiple of 4 from the entry
//!      start, u32 value count, u32 values
//! ALIGN = 1 (str), 8 (i64), 16 (u128)
//! ```

use crate::error::FormatError;
use crate::format::le;

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
const P3: u64 = 0x5899_65cc_7537_4cc3;
const P4: u64 = 0x1d8e_4e27_c47d_124f;
const P5: u64 = 0xeb44_acca_b455_d165;

fn wymum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    ((r >> 64) as u64) ^ (r as u64)
}

fn read64(d: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(d[i..i + 8].try_into().expect("8 bytes"))
}

fn read32(d: &[u8], i: usize) -> u64 {
    u64::from(u32::from_le_bytes(d[i..i + 4].try_into().expect("4 bytes")))
}

/// Two little-endian u32 halves, the first one high.
fn read64_swapped(d: &[u8], i: usize) -> u64 {
    (read32(d, i) << 32) | read32(d, i + 4)
}

/// The 1 to 8 trailing bytes of a key, mixed into one word as the wyhash crate does.
fn read_rest(d: &[u8]) -> u64 {
    let b = |i: usize| u64::from(d[i]);
    match d.len() {
        1 => b(0),
        2 => (b(1) << 8) | b(0),
        3 => (b(1) << 16) | (b(0) << 8) | b(2),
        4 => read32(d, 0),
        5 => (read32(d, 0) << 8) | b(4),
        6 => (read32(d, 0) << 16) | (b(5) << 8) | b(4),
        7 => (read32(d, 0) << 24) | (b(5) << 16) | (b(4) << 8) | b(6),
        8 => read64_swapped(d, 0),
        n => unreachable!("read_rest of {n} bytes"),
    }
}

fn wyhash_core(b: &[u8], mut seed: u64) -> u64 {
    let n = b.len();
    let full = n - n % 32;
    for i in (0..full).step_by(32) {
        seed = wymum(
            seed ^ P0,
            wymum(read64(b, i) ^ P1, read64(b, i + 8) ^ P2) ^ wymum(read64(b, i + 16) ^ P3, read64(b, i + 24) ^ P4),
        );
    }
    seed ^= P0;
    if n % 32 != 0 {
        let s = full;
        seed = match ((n - 1) & 31) / 8 {
            0 => wymum(seed, read_rest(&b[s..]) ^ P1),
            1 => wymum(read64_swapped(b, s) ^ seed, read_rest(&b[s + 8..]) ^ P2),
            2 => {
                wymum(read64_swapped(b, s) ^ seed, read64_swapped(b, s + 8) ^ P2)
                    ^ wymum(seed, read_rest(&b[s + 16..]) ^ P3)
            }
            _ => {
                wymum(read64_swapped(b, s) ^ seed, read64_swapped(b, s + 8) ^ P2)
                    ^ wymum(read64_swapped(b, s + 16) ^ seed, read_rest(&b[s + 24..]) ^ P4)
            }
        };
    }
    seed
}

/// The seeded WyHash hasher: each `write` is one compression round.
#[derive(Debug, Clone, Copy)]
pub struct WyHash {
    h: u64,
    size: u64,
}

impl WyHash {
    pub fn with_seed(seed: u64) -> WyHash {
        WyHash { h: seed, size: 0 }
    }
    pub fn write(&mut self, b: &[u8]) {
        if b.is_empty() {
            self.h ^= P0;
        } else {
            self.h = wyhash_core(b, self.h);
            self.size += b.len() as u64;
        }
    }
    pub fn finish(&self) -> u64 {
        wymum(self.h, self.size ^ P5)
    }
}

/// The key type of a persisted map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Str,
    I64,
    U128,
}

impl KeyType {
    fn tag(self) -> [u8; 8] {
        match self {
            KeyType::Str => *b"str\0\0\0\0\0",
            KeyType::I64 => *b"i64\0\0\0\0\0",
            KeyType::U128 => *b"u128\0\0\0\0",
        }
    }
    fn align(self) -> usize {
        match self {
            KeyType::Str => 1,
            KeyType::I64 => 8,
            KeyType::U128 => 16,
        }
    }
}

/// One key of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key<'a> {
    Str(&'a [u8]),
    I64(i64),
    U128(u128),
}

impl Key<'_> {
    pub fn key_type(&self) -> KeyType {
        match self {
            Key::Str(_) => KeyType::Str,
            Key::I64(_) => KeyType::I64,
            Key::U128(_) => KeyType::U128,
        }
    }

    /// The key's hash on level `level`.
    pub fn hash(&self, level: u64) -> u64 {
        let mut h = WyHash::with_seed(level);
        match self {
            Key::Str(s) => {
                h.write(s);
                h.write(&[0xFF]);
            }
            Key::I64(x) => h.write(&x.to_le_bytes()),
            Key::U128(x) => h.write(&x.to_le_bytes()),
        }
        h.finish()
    }

    /// The key as a map entry stores it.
    pub fn stored(&self) -> Vec<u8> {
        match self {
            Key::Str(s) => {
                let mut v = s.to_vec();
                v.push(0xFF);
                v
            }
            Key::I64(x) => x.to_le_bytes().to_vec(),
            Key::U128(x) => x.to_le_bytes().to_vec(),
        }
    }
}

fn multiply_shift(hash: u64, bits: u64) -> u64 {
    ((u128::from(hash) * u128::from(bits)) >> 64) as u64
}

/// A built or parsed FMPH function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// 64-bit words per level.
    levels: Vec<u64>,
    words: Vec<u64>,
    /// Number of 1 bits before each word.
    ranks: Vec<u64>,
}

impl Function {
    fn with(levels: Vec<u64>, words: Vec<u64>) -> Function {
        let mut ranks = Vec::with_capacity(words.len());
        let mut acc = 0u64;
        for w in &words {
            ranks.push(acc);
            acc += u64::from(w.count_ones());
        }
        Function { levels, words, ranks }
    }

    /// Build the function of a set of distinct keys (the order of `keys` does not matter).
    /// Duplicate keys can never be placed: an error says so.
    pub fn build(keys: &[Key<'_>]) -> Result<Function, String> {
        let mut remaining: Vec<Key<'_>> = keys.to_vec();
        let mut levels = Vec::new();
        let mut words: Vec<u64> = Vec::new();
        let mut level = 0u64;
        let mut stuck = 0;
        while !remaining.is_empty() {
            let n = remaining.len() as u64;
            let level_words = n.div_ceil(64);
            let bits = level_words * 64;
            let pos: Vec<u64> = remaining.iter().map(|k| multiply_shift(k.hash(level), bits)).collect();
            // 0 = free, 1 = one key, 2 = collision
            let mut hits = vec![0u8; bits as usize];
            for &p in &pos {
                let h = &mut hits[p as usize];
                *h = (*h + 1).min(2);
            }
            let mut array = vec![0u64; level_words as usize];
            for (i, &h) in hits.iter().enumerate() {
                if h == 1 {
                    array[i / 64] |= 1 << (i % 64);
                }
            }
            let next: Vec<Key<'_>> =
                remaining.iter().zip(&pos).filter(|(_, &p)| hits[p as usize] != 1).map(|(k, _)| *k).collect();
            if next.len() == remaining.len() {
                stuck += 1;
                if stuck == 10 {
                    return Err("keys cannot be separated (duplicate keys)".into());
                }
            } else {
                stuck = 0;
            }
            levels.push(level_words);
            words.extend(array);
            remaining = next;
            level += 1;
        }
        Ok(Function::with(levels, words))
    }

    /// The value (bucket index) of `key`, or `None` when no level places it.
    pub fn get(&self, key: &Key<'_>) -> Option<u64> {
        let mut begin = 0u64;
        for (level, &w) in self.levels.iter().enumerate() {
            let bits = w * 64;
            let i = begin + multiply_shift(key.hash(level as u64), bits);
            let word = self.words[(i / 64) as usize];
            let bit = i % 64;
            if (word >> bit) & 1 == 1 {
                let below = if bit == 0 { 0 } else { (word << (64 - bit)).count_ones() };
                return Some(self.ranks[(i / 64) as usize] + u64::from(below));
            }
            begin += bits;
        }
        None
    }

    /// Number of keys the function places (1 bits).
    pub fn len(&self) -> u64 {
        self.ranks.last().copied().unwrap_or(0) + self.words.last().map_or(0, |w| u64::from(w.count_ones()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The serialized function.
    pub fn write(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.levels.len() * 2 + self.words.len() * 8);
        vbyte_write(&mut out, self.levels.len() as u64);
        for &l in &self.levels {
            vbyte_write(&mut out, l);
        }
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Parse a serialized function at the start of `b`; returns it and the bytes it took.
    pub fn parse(b: &[u8]) -> Result<(Function, usize), String> {
        let mut pos = 0;
        let count = vbyte_read(b, &mut pos)?;
        if count > 64 {
            return Err(format!("{count} levels"));
        }
        let mut levels = Vec::with_capacity(count as usize);
        let mut total = 0u64;
        for _ in 0..count {
            let w = vbyte_read(b, &mut pos)?;
            total = total.checked_add(w).ok_or("level sizes overflow")?;
            levels.push(w);
        }
        let bytes = total
            .checked_mul(8)
            .filter(|&n| n <= (b.len() - pos) as u64)
            .ok_or_else(|| format!("levels of {total} words do not fit in {} bytes", b.len() - pos))?;
        let words = b[pos..pos + bytes as usize].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()));
        let f = Function::with(levels, words.collect());
        Ok((f, pos + bytes as usize))
    }
}

/// `binout`'s VByte: 7 bits per byte, low group first, high bit = more; a value of 2^56 or
/// more ends with a ninth byte holding its top 8 bits verbatim.
fn vbyte_write(out: &mut Vec<u8>, mut v: u64) {
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn vbyte_read(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..56).step_by(7) {
        let x = *b.get(*pos).ok_or("truncated VByte")?;
        *pos += 1;
        v |= u64::from(x & 0x7F) << shift;
        if x < 0x80 {
            return Ok(v);
        }
    }
    let x = *b.get(*pos).ok_or("truncated VByte")?;
    *pos += 1;
    Ok(v | (u64::from(x) << 56))
}

const PAGE: usize = 4096;

/// Serialize a persisted map of `entries` (distinct keys of one type; values as given). The
/// entries are written in the given order.
pub fn write_map(key_type: KeyType, entries: &[(Key<'_>, &[u32])]) -> Result<Vec<u8>, String> {
    if let Some((k, _)) = entries.iter().find(|(k, _)| k.key_type() != key_type) {
        return Err(format!("key {k:?} in a {key_type:?} map"));
    }
    let keys: Vec<Key<'_>> = entries.iter().map(|(k, _)| *k).collect();
    let f = Function::build(&keys)?;
    let count = entries.len();
    let align = key_type.align();
    let mut out = Vec::new();
    out.extend_from_slice(&key_type.tag());
    out.extend_from_slice(&[0u8; 16]); // buckets_pos and count, filled below
    out.extend_from_slice(&f.write());
    out.resize(out.len().div_ceil(PAGE) * PAGE, 0);
    // the data start (after the buckets) must be ALIGN-aligned
    let pad = (align - (out.len() + 8 * count) % align) % align;
    out.resize(out.len() + pad, 0);
    let buckets_pos = out.len();
    out[8..16].copy_from_slice(&(buckets_pos as u64).to_le_bytes());
    out[16..24].copy_from_slice(&(count as u64).to_le_bytes());
    out.resize(buckets_pos + 8 * count, 0);
    let data_start = out.len();
    for (key, values) in entries {
        let rel = (out.len() - data_start).div_ceil(align) * align;
        out.resize(data_start + rel, 0);
        let bucket = f.get(key).ok_or_else(|| format!("key {key:?} not placed by its own function"))? as usize;
        out[buckets_pos + 8 * bucket..buckets_pos + 8 * bucket + 8].copy_from_slice(&(rel as u64).to_le_bytes());
        let start = out.len();
        out.extend_from_slice(&key.stored());
        let padded = start + (out.len() - start).div_ceil(4) * 4;
        out.resize(padded, 0);
        out.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for v in *values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// A parsed persisted map: its entries in file order (stored key bytes and values) and function.
#[derive(Debug, Clone)]
pub struct ParsedMap {
    pub key_type: KeyType,
    pub buckets_pos: u64,
    pub function: Function,
    /// Stored key bytes (`str`: with the 0xFF terminator) and values, in file order.
    pub entries: Vec<(Vec<u8>, Vec<u32>)>,
    /// Entry offset per bucket.
    pub buckets: Vec<u64>,
}

impl ParsedMap {
    /// Parse and check a persisted map: every entry is where its key's bucket points.
    pub fn parse(b: &[u8], path: &str) -> Result<ParsedMap, FormatError> {
        let bad = |m: String| FormatError::corrupt(path, m);
        if b.len() < 24 {
            return Err(bad(format!("{} bytes, shorter than the header", b.len())));
        }
        let key_type = [KeyType::Str, KeyType::I64, KeyType::U128]
            .into_iter()
            .find(|t| t.tag() == b[..8])
            .ok_or_else(|| bad(format!("unknown key type {:?}", &b[..8])))?;
        let buckets_pos = le::u64_at(b, 8);
        let count = le::u64_at(b, 16);
        let (function, _) = Function::parse(&b[24..]).map_err(|e| bad(format!("function: {e}")))?;
        if function.len() != count {
            return Err(bad(format!("function places {} keys, header says {count}", function.len())));
        }
        let data_start = count
            .checked_mul(8)
            .and_then(|x| x.checked_add(buckets_pos))
            .filter(|&x| x <= b.len() as u64)
            .ok_or_else(|| bad(format!("{count} buckets at {buckets_pos} beyond the end")))?
            as usize;
        let buckets: Vec<u64> = (0..count as usize).map(|i| le::u64_at(b, buckets_pos as usize + 8 * i)).collect();
        let align = key_type.align();
        let mut entries = Vec::with_capacity(count as usize);
        let mut pos = data_start;
        for _ in 0..count {
            let rel = (pos - data_start).div_ceil(align) * align;
            pos = data_start + rel;
            let key_len = match key_type {
                KeyType::Str => {
                    b.get(pos..)
                        .and_then(|r| r.iter().position(|&c| c == 0xFF))
                        .ok_or_else(|| bad(format!("unterminated key at {pos}")))?
                        + 1
                }
                KeyType::I64 => 8,
                KeyType::U128 => 16,
            };
            let key_end = pos + key_len;
            let cnt_pos = pos + key_len.div_ceil(4) * 4;
            if cnt_pos + 4 > b.len() {
                return Err(bad(format!("entry at {pos} runs past the end")));
            }
            let n = le::u32_at(b, cnt_pos) as usize;
            let vals_end = n.checked_mul(4).map(|x| x + cnt_pos + 4).filter(|&e| e <= b.len());
            let vals_end = vals_end.ok_or_else(|| bad(format!("entry at {pos}: {n} values past the end")))?;
            let values: Vec<u32> = (0..n).map(|i| le::u32_at(b, cnt_pos + 4 + 4 * i)).collect();
            let stored = b[pos..key_end].to_vec();
            let key = parsed_key(key_type, &stored);
            let bucket = function.get(&key).ok_or_else(|| bad(format!("key {key:?} has no bucket")))?;
            if buckets[bucket as usize] != rel as u64 {
                return Err(bad(format!(
                    "bucket {bucket} of key {key:?} points to {}, not {rel}",
                    buckets[bucket as usize]
                )));
            }
            entries.push((stored, values));
            pos = vals_end;
        }
        if pos != b.len() {
            return Err(bad(format!("{} bytes after the last entry", b.len() - pos)));
        }
        Ok(ParsedMap { key_type, buckets_pos, function, entries, buckets })
    }
}

/// The key of stored key bytes (`str`: the terminator is dropped).
pub fn parsed_key(key_type: KeyType, stored: &[u8]) -> Key<'_> {
    match key_type {
        KeyType::Str => Key::Str(&stored[..stored.len().saturating_sub(1)]),
        KeyType::I64 => Key::I64(i64::from_le_bytes(stored[..8].try_into().unwrap())),
        KeyType::U128 => Key::U128(u128::from_le_bytes(stored[..16].try_into().unwrap())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vbyte_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 28, (1 << 56) - 1, 1 << 56, u64::MAX] {
            let mut out = Vec::new();
            vbyte_write(&mut out, v);
            let mut pos = 0;
            assert_eq!(vbyte_read(&out, &mut pos).unwrap(), v);
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn function_is_a_bijection() {
        let owned: Vec<String> = (0..5000).map(|i| format!("key-{i}")).collect();
        let keys: Vec<Key> = owned.iter().map(|s| Key::Str(s.as_bytes())).collect();
        let f = Function::build(&keys).unwrap();
        let mut seen = vec![false; keys.len()];
        for k in &keys {
            let b = f.get(k).unwrap() as usize;
            assert!(!seen[b], "bucket {b} twice");
            seen[b] = true;
        }
        let (g, used) = Function::parse(&f.write()).unwrap();
        assert_eq!(g, f);
        assert_eq!(used, f.write().len());
        // order does not matter
        let mut rev = keys.clone();
        rev.reverse();
        assert_eq!(Function::build(&rev).unwrap().write(), f.write());
        assert!(Function::build(&[Key::I64(1), Key::I64(1)]).is_err());
    }

    #[test]
    fn empty_map_is_one_page() {
        let b = write_map(KeyType::Str, &[]).unwrap();
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[..8], b"str\0\0\0\0\0");
        assert_eq!(le::u64_at(&b, 8), 4096);
        assert_eq!(b[24], 0);
    }

    #[test]
    fn maps_round_trip_with_alignment() {
        let ids = [1u32, 5, 9];
        for key_type in [KeyType::Str, KeyType::I64, KeyType::U128] {
            let owned: Vec<String> = (0..161).map(|i| "é".repeat(i % 4) + &i.to_string()).collect();
            let entries: Vec<(Key, &[u32])> = (0..161)
                .map(|i| {
                    let k = match key_type {
                        KeyType::Str => Key::Str(owned[i].as_bytes()),
                        KeyType::I64 => Key::I64(i as i64 * -7919),
                        KeyType::U128 => Key::U128((i as u128) << 70 | 3),
                    };
                    (k, &ids[..i % 4])
                })
                .collect();
            let b = write_map(key_type, &entries).unwrap();
            let m = ParsedMap::parse(&b, "t").unwrap();
            assert_eq!(m.entries.len(), 161);
            let data_start = m.buckets_pos as usize + 8 * 161;
            assert_eq!(data_start % key_type.align(), 0);
            for ((k, v), (stored, vals)) in entries.iter().zip(&m.entries) {
                assert_eq!(&k.stored(), stored);
                assert_eq!(*v, &vals[..]);
            }
        }
    }
}
