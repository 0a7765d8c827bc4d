//! Qdrant's HNSW graph files (§9 of the format reference), read-only.
//!
//! `vector_index[-<name>]/` holds:
//!
//! * `hnsw_config.json`: `m`, `m0`, `ef_construct`, `ef` (default search beam),
//!   `full_scan_threshold` (a number of vectors), `indexed_vector_count`, …
//! * `graph.bin` (bincode): `m u64, m0 u64, ef_construct u64`, then the entry points:
//!   `Vec<{point_id u32, level u64}>` (u64 length prefix) and the bounded heap of extra entry
//!   points (`Vec<…>` + `length u64`). The first entry point is the global one.
//! * the links, in one of two formats, probed in this order:
//!   - `links_compressed.bin`: 64-byte header (`point_count u64`, version `0xFFFF_FFFF_FFFF_FF01`,
//!     `levels_count u64`, `neighbors_bytes u64`, offsets `length u64, base_bits u8,
//!     delta_bits u8, chunk_len_log2 u8`, `m u64`, `m0 u64`, 5 zero bytes), then
//!     `level_offsets u64×levels`, `reindex u32×points`, the neighbour bytes and the offsets
//!     (`bitpacking_ordered`, §9.6.2). One list (§9.6.1) is an LSB-first bit stream: a 5-bit
//!     width header and up to `S` (`m0` on level 0, else `m`) delta-coded sorted ids, then raw
//!     ids of `max(8, bit_length(points-1))` bits until fewer bits than that remain.
//!   - `links.bin` (plain, legacy): 64-byte header (`point_count, levels_count,
//!     neighbors_count, offsets_count, offsets_padding` u64), `level_offsets`, `reindex`,
//!     `u32` neighbours, padding, `u64` offsets.
//!
//!   - `links_comp_vec.bin` (probed first, as Qdrant does; written when `inline_storage` is on
//!     with quantization): an 80-byte header (the compressed fields up to `m0`, then the base
//!     vector layout `size u64, align u8`, the link vector layout `size u64, align u8`, 3 zero
//!     bytes; version `0xFFFF_FFFF_FFFF_FF02`), `level_offsets`, `reindex`, zero padding to the
//!     larger alignment, the records and the offsets. A record is, on level 0 only, the point's
//!     original vector (`base.size` bytes), then a LEB128 link count `n`, the `n` links packed as
//!     above (the sorted part is `min(n, S)` long), zero padding to `link.align`, the `n`
//!     quantized vectors of the links in the same order (`link.size` each), and on level 0
//!     zero padding to `base.align`; paddings count from the start of the records.
//!
//! Links of point `p` on level `L` are entry `p` (level 0) or `level_offsets[L] + reindex[p]` of
//! the offsets table.

use serde::Deserialize;

use crate::error::{Error, FormatError};
use crate::storage::{join, Storage};

pub const HNSW_CONFIG_FILE: &str = "hnsw_config.json";
pub const GRAPH_FILE: &str = "graph.bin";
pub const LINKS_COMPRESSED_FILE: &str = "links_compressed.bin";
pub const LINKS_PLAIN_FILE: &str = "links.bin";
pub const LINKS_WITH_VECTORS_FILE: &str = "links_comp_vec.bin";

const COMPRESSED_VERSION: u64 = 0xFFFF_FFFF_FFFF_FF01;
const WITH_VECTORS_VERSION: u64 = 0xFFFF_FFFF_FFFF_FF02;

/// `hnsw_config.json` (the fields a search needs).
#[derive(Debug, Clone, Deserialize)]
pub struct HnswGraphConfig {
    pub m: u64,
    pub m0: u64,
    #[serde(default)]
    pub ef_construct: u64,
    pub ef: u64,
    #[serde(alias = "indexing_threshold")]
    pub full_scan_threshold: u64,
    #[serde(default)]
    pub payload_m: Option<u64>,
    #[serde(default)]
    pub indexed_vector_count: Option<u64>,
}

/// An entry point of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryPoint {
    pub point: u32,
    pub level: usize,
}

#[derive(Debug)]
enum Links {
    Compressed {
        neighbors: Vec<u8>,
        bits_u: u32,
    },
    Plain {
        neighbors: Vec<u32>,
    },
    /// `links_comp_vec.bin`: records with the base vector (level 0) and the links' vectors.
    WithVectors {
        neighbors: Vec<u8>,
        bits_u: u32,
        base: VectorLayout,
        link: VectorLayout,
    },
}

/// Size and alignment of the vectors inlined in `links_comp_vec.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorLayout {
    pub size: usize,
    pub align: usize,
}

/// A loaded HNSW graph.
#[derive(Debug)]
pub struct HnswGraph {
    pub config: HnswGraphConfig,
    pub point_count: usize,
    pub entry_points: Vec<EntryPoint>,
    pub extra_entry_points: Vec<EntryPoint>,
    m: usize,
    m0: usize,
    level_offsets: Vec<u64>,
    reindex: Vec<u32>,
    offsets: Vec<u64>,
    links: Links,
}

fn corrupt(path: &str, msg: impl Into<String>) -> Error {
    FormatError::corrupt(path, msg).into()
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a str,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(corrupt(self.path, format!("truncated at byte {} (need {n} more)", self.pos)));
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn count(&mut self, elem: usize) -> Result<usize, Error> {
        let n = self.u64()?;
        let left = (self.b.len() - self.pos) as u64;
        if n.checked_mul(elem as u64).is_none_or(|bytes| bytes > left) {
            return Err(corrupt(self.path, format!("count {n} exceeds the file")));
        }
        Ok(n as usize)
    }
}

/// Read `width` (≤ 64) bits at bit position `pos` of an LSB-first bit stream.
#[inline(always)]
fn read_bits(b: &[u8], pos: u64, width: u32) -> Option<u64> {
    // Fast path (every link width): one little-endian word at the field's first byte holds it.
    // In range: pos < 8·(first+1) and width ≤ 56, so the field ends within the eight bytes.
    let first = pos / 8;
    if width <= 56 && first.saturating_add(8) <= b.len() as u64 {
        let f = first as usize;
        let word = u64::from_le_bytes(b[f..f + 8].try_into().expect("eight bytes"));
        return Some((word >> (pos % 8)) & ((1u64 << width) - 1));
    }
    read_bits_slow(b, pos, width)
}

/// [`read_bits`] near the end of the stream or for fields wider than 56 bits.
#[cold]
#[inline(never)]
fn read_bits_slow(b: &[u8], pos: u64, width: u32) -> Option<u64> {
    if width == 0 {
        return Some(0);
    }
    let end = pos.checked_add(u64::from(width))?;
    if end > (b.len() as u64) * 8 {
        return None;
    }
    let first = (pos / 8) as usize;
    let shift = (pos % 8) as u32;
    let mut acc: u128 = 0;
    let nbytes = (shift + width).div_ceil(8) as usize;
    for (i, &byte) in b[first..first + nbytes].iter().enumerate() {
        acc |= u128::from(byte) << (8 * i);
    }
    let mask: u128 = if width == 64 { u128::from(u64::MAX) } else { (1u128 << width) - 1 };
    Some(((acc >> shift) & mask) as u64)
}

fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Decode a `bitpacking_ordered` sequence (§9.6.2).
fn decode_ordered(
    b: &[u8],
    length: usize,
    base_bits: u8,
    delta_bits: u8,
    log2: u8,
    path: &str,
) -> Result<Vec<u64>, Error> {
    if !(1..=64).contains(&base_bits) || !(1..=56).contains(&delta_bits) || log2 > 7 {
        return Err(corrupt(path, format!("bad offsets parameters ({base_bits}, {delta_bits}, {log2})")));
    }
    let c = 1usize << log2;
    let chunk_bits = u64::from(base_bits) + u64::from(delta_bits) * (c as u64 - 1);
    let chunk_bytes = chunk_bits.div_ceil(8) as usize;
    let chunks = length.div_ceil(c);
    if chunks.checked_mul(chunk_bytes).is_none_or(|n| n > b.len()) {
        return Err(corrupt(path, "offsets table truncated"));
    }
    let mut out = Vec::with_capacity(length);
    for i in 0..length {
        let chunk = &b[(i / c) * chunk_bytes..(i / c + 1) * chunk_bytes];
        let base = read_bits(chunk, 0, u32::from(base_bits)).unwrap();
        let r = i % c;
        let v = if r == 0 {
            base
        } else {
            let d =
                read_bits(chunk, u64::from(base_bits) + (r as u64 - 1) * u64::from(delta_bits), u32::from(delta_bits))
                    .unwrap();
            base.checked_add(d).ok_or_else(|| corrupt(path, "offset overflows"))?
        };
        out.push(v);
    }
    if out.windows(2).any(|w| w[0] > w[1]) {
        return Err(corrupt(path, "offsets are not ordered"));
    }
    Ok(out)
}

fn read_entry(c: &mut Cursor<'_>) -> Result<EntryPoint, Error> {
    let point = c.u32()?;
    let level = c.u64()?;
    if level > 64 {
        return Err(corrupt(c.path, format!("entry point level {level}")));
    }
    Ok(EntryPoint { point, level: level as usize })
}

impl HnswGraph {
    /// Open the graph in `index_dir` (`<segment>/vector_index[-<name>]`), or `None` when the
    /// directory holds no graph.
    pub fn open<S: Storage + ?Sized>(storage: &S, index_dir: &str) -> Result<Option<HnswGraph>, Error> {
        let cfg_path = join(index_dir, HNSW_CONFIG_FILE);
        let graph_path = join(index_dir, GRAPH_FILE);
        if !storage.is_file(&cfg_path)? || !storage.is_file(&graph_path)? {
            return Ok(None);
        }
        let config: HnswGraphConfig = serde_json::from_slice(&storage.read_all(&cfg_path)?)
            .map_err(|e| corrupt(&cfg_path, format!("invalid hnsw config: {e}")))?;

        let g = storage.read_all(&graph_path)?;
        let mut c = Cursor { b: &g, pos: 0, path: &graph_path };
        let (_m, _m0, _efc) = (c.u64()?, c.u64()?, c.u64()?);
        let n = c.count(12)?;
        let entry_points = (0..n).map(|_| read_entry(&mut c)).collect::<Result<Vec<_>, _>>()?;
        let n = c.count(12)?;
        let extra_entry_points = (0..n).map(|_| read_entry(&mut c)).collect::<Result<Vec<_>, _>>()?;

        let comp = join(index_dir, LINKS_COMPRESSED_FILE);
        let plain = join(index_dir, LINKS_PLAIN_FILE);
        let with_vectors = join(index_dir, LINKS_WITH_VECTORS_FILE);
        let graph = if storage.is_file(&with_vectors)? {
            let b = storage.read_all(&with_vectors)?;
            Self::read_compressed(&b, &with_vectors, config, entry_points, extra_entry_points)?
        } else if storage.is_file(&comp)? {
            Self::read_compressed(&storage.read_all(&comp)?, &comp, config, entry_points, extra_entry_points)?
        } else if storage.is_file(&plain)? {
            Self::read_plain(&storage.read_all(&plain)?, &plain, config, entry_points, extra_entry_points)?
        } else {
            return Err(corrupt(index_dir, "graph.bin without a links file"));
        };
        for e in graph.entry_points.iter().chain(&graph.extra_entry_points) {
            if e.point as usize >= graph.point_count || e.level >= graph.levels() {
                return Err(corrupt(&graph_path, format!("entry point {e:?} outside the graph")));
            }
        }
        Ok(Some(graph))
    }

    fn check_layout(&self, path: &str) -> Result<(), Error> {
        let levels = self.level_offsets.len();
        if levels == 0 || self.level_offsets[0] != 0 {
            return Err(corrupt(path, "bad level offsets"));
        }
        if levels > 1 && self.level_offsets[1] != self.point_count as u64 {
            return Err(corrupt(path, "level 1 offset differs from the point count"));
        }
        if self.level_offsets.windows(2).any(|w| w[0] > w[1])
            || self.offsets.len() as u64 <= *self.level_offsets.last().unwrap()
        {
            return Err(corrupt(path, "level offsets out of order or beyond the offsets table"));
        }
        if self.reindex.len() != self.point_count || self.reindex.iter().any(|&r| r as usize >= self.point_count.max(1))
        {
            return Err(corrupt(path, "reindex table out of range"));
        }
        let total = match &self.links {
            Links::Compressed { neighbors, .. } | Links::WithVectors { neighbors, .. } => neighbors.len() as u64,
            Links::Plain { neighbors } => neighbors.len() as u64,
        };
        if self.offsets.last().is_some_and(|&o| o > total) {
            return Err(corrupt(path, "offsets point past the neighbour data"));
        }
        Ok(())
    }

    fn read_compressed(
        b: &[u8],
        path: &str,
        config: HnswGraphConfig,
        entry_points: Vec<EntryPoint>,
        extra_entry_points: Vec<EntryPoint>,
    ) -> Result<HnswGraph, Error> {
        let mut c = Cursor { b, pos: 0, path };
        let point_count = c.u64()?;
        let version = c.u64()?;
        if version != COMPRESSED_VERSION && version != WITH_VECTORS_VERSION {
            return Err(corrupt(path, "unknown compressed links version"));
        }
        let with_vectors = version == WITH_VECTORS_VERSION;
        let levels = c.u64()?;
        let neighbors_bytes = c.u64()?;
        let off_len = c.u64()?;
        let (base_bits, delta_bits, log2) = (c.u8()?, c.u8()?, c.u8()?);
        let m = c.u64()?;
        let m0 = c.u64()?;
        let layouts = if with_vectors {
            let mut layout = |what: &str| -> Result<VectorLayout, Error> {
                let size = c.u64()?;
                let align = c.u8()?;
                if !align.is_power_of_two() || align > 64 || size > 1 << 24 || size % u64::from(align) != 0 {
                    return Err(corrupt(path, format!("implausible {what} vector layout: size {size}, align {align}")));
                }
                Ok(VectorLayout { size: size as usize, align: usize::from(align) })
            };
            let base = layout("base")?;
            let link = layout("link")?;
            c.take(3)?;
            Some((base, link))
        } else {
            c.take(5)?;
            None
        };
        if levels == 0 || levels > 64 || point_count > u64::from(u32::MAX) + 1 || m > 1 << 16 || m0 > 1 << 16 {
            return Err(corrupt(
                path,
                format!("implausible header: {point_count} points, {levels} levels, m {m}/{m0}"),
            ));
        }
        let level_offsets = (0..levels).map(|_| c.u64()).collect::<Result<Vec<_>, _>>()?;
        let reindex_bytes = c.take(point_count as usize * 4)?;
        let reindex = reindex_bytes.chunks_exact(4).map(|x| u32::from_le_bytes(x.try_into().unwrap())).collect();
        if let Some((base, link)) = layouts {
            let align = base.align.max(link.align);
            c.take(c.pos.next_multiple_of(align) - c.pos)?;
        }
        let neighbors =
            c.take(usize::try_from(neighbors_bytes).map_err(|_| corrupt(path, "neighbour size"))?)?.to_vec();
        let rest = &b[c.pos..];
        let off_len = usize::try_from(off_len).map_err(|_| corrupt(path, "offsets length"))?;
        if off_len > rest.len().saturating_mul(8) + 1 {
            return Err(corrupt(path, "offsets length exceeds the file"));
        }
        let offsets = decode_ordered(rest, off_len, base_bits, delta_bits, log2, path)?;
        let bits_u = bit_length(point_count.saturating_sub(1)).max(8);
        let g = HnswGraph {
            config,
            point_count: point_count as usize,
            entry_points,
            extra_entry_points,
            m: m as usize,
            m0: m0 as usize,
            level_offsets,
            reindex,
            offsets,
            links: match layouts {
                Some((base, link)) => Links::WithVectors { neighbors, bits_u, base, link },
                None => Links::Compressed { neighbors, bits_u },
            },
        };
        g.check_layout(path)?;
        Ok(g)
    }

    fn read_plain(
        b: &[u8],
        path: &str,
        config: HnswGraphConfig,
        entry_points: Vec<EntryPoint>,
        extra_entry_points: Vec<EntryPoint>,
    ) -> Result<HnswGraph, Error> {
        let mut c = Cursor { b, pos: 0, path };
        let point_count = c.u64()?;
        let levels = c.u64()?;
        let n_neighbors = c.u64()?;
        let n_offsets = c.u64()?;
        let padding = c.u64()?;
        c.take(24)?;
        if levels == 0 || levels > 64 || point_count > u64::from(u32::MAX) + 1 || padding > 8 {
            return Err(corrupt(path, "implausible plain links header"));
        }
        let level_offsets = (0..levels).map(|_| c.u64()).collect::<Result<Vec<_>, _>>()?;
        let reindex = c
            .take(point_count as usize * 4)?
            .chunks_exact(4)
            .map(|x| u32::from_le_bytes(x.try_into().unwrap()))
            .collect();
        let nb =
            usize::try_from(n_neighbors).ok().and_then(|n| n.checked_mul(4)).ok_or_else(|| corrupt(path, "size"))?;
        let neighbors = c.take(nb)?.chunks_exact(4).map(|x| u32::from_le_bytes(x.try_into().unwrap())).collect();
        c.take(padding as usize)?;
        let ob = usize::try_from(n_offsets).ok().and_then(|n| n.checked_mul(8)).ok_or_else(|| corrupt(path, "size"))?;
        let offsets = c.take(ob)?.chunks_exact(8).map(|x| u64::from_le_bytes(x.try_into().unwrap())).collect();
        let g = HnswGraph {
            m: config.m as usize,
            m0: config.m0 as usize,
            config,
            point_count: point_count as usize,
            entry_points,
            extra_entry_points,
            level_offsets,
            reindex,
            offsets,
            links: Links::Plain { neighbors },
        };
        g.check_layout(path)?;
        Ok(g)
    }

    /// Number of levels (1 + the highest level).
    pub fn levels(&self) -> usize {
        self.level_offsets.len()
    }

    /// `m` of a level (the bound Qdrant uses when scoring a list).
    pub fn m_of(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// Append the links of `point` on `level` to `out`. A point that does not reach `level`, or
    /// a damaged list, yields nothing beyond what decodes; ids are bounded by the point count.
    pub fn links(&self, point: u32, level: usize, out: &mut Vec<u32>) {
        let p = point as usize;
        if p >= self.point_count || level >= self.levels() {
            return;
        }
        let idx = if level == 0 { p as u64 } else { self.level_offsets[level] + u64::from(self.reindex[p]) };
        let end_level = self.level_offsets.get(level + 1).copied().unwrap_or(self.offsets.len() as u64 - 1);
        if level > 0 && idx >= end_level {
            return; // the point does not reach this level
        }
        let (Some(&a), Some(&b)) = (self.offsets.get(idx as usize), self.offsets.get(idx as usize + 1)) else {
            return;
        };
        if a > b {
            return;
        }
        let start = out.len();
        match &self.links {
            Links::WithVectors { .. } => {
                if let Some((links, _)) = self.record(point, level) {
                    out.extend(links);
                }
                return;
            }
            Links::Plain { neighbors } => {
                if let Some(s) = neighbors.get(a as usize..b as usize) {
                    out.extend_from_slice(s);
                }
            }
            Links::Compressed { neighbors, bits_u } => {
                let Some(bytes) = neighbors.get(a as usize..b as usize) else { return };
                let s = self.m_of(level);
                let mut avail = bytes.len() as u64 * 8;
                let mut pos = 0u64;
                if !bytes.is_empty() && s > 0 {
                    let Some(h) = read_bits(bytes, 0, 5) else { return };
                    let bits_s = h as u32 + 8;
                    pos = 5;
                    avail -= 5;
                    let k = (s as u64).min(avail / u64::from(bits_s));
                    let mut acc = 0u64;
                    for _ in 0..k {
                        let Some(d) = read_bits(bytes, pos, bits_s) else { return };
                        acc = acc.wrapping_add(d);
                        out.push(acc as u32);
                        pos += u64::from(bits_s);
                    }
                    avail -= k * u64::from(bits_s);
                }
                while avail >= u64::from(*bits_u) {
                    let Some(v) = read_bits(bytes, pos, *bits_u) else { break };
                    out.push(v as u32);
                    pos += u64::from(*bits_u);
                    avail -= u64::from(*bits_u);
                }
            }
        }
        let n = self.point_count as u32;
        let mut w = start;
        for r in start..out.len() {
            if out[r] < n {
                out[w] = out[r];
                w += 1;
            }
        }
        out.truncate(w);
    }

    /// The layouts of the inlined vectors (`links_comp_vec.bin`): base (original) and link
    /// (quantized) vectors.
    pub fn inline_layouts(&self) -> Option<(VectorLayout, VectorLayout)> {
        match &self.links {
            Links::WithVectors { base, link, .. } => Some((*base, *link)),
            _ => None,
        }
    }

    /// The original vector of `point` inlined in `links_comp_vec.bin` (`base.size` bytes).
    pub fn base_vector(&self, point: u32) -> Option<&[u8]> {
        let Links::WithVectors { neighbors, base, .. } = &self.links else { return None };
        let (a, b) = self.record_span(point, 0)?;
        neighbors.get(a..b)?.get(..base.size)
    }

    /// The links of `point` on `level` with their inlined quantized vectors (`n · link.size`
    /// bytes, in link order), from `links_comp_vec.bin`; `None` when the graph has no inline
    /// vectors, the point does not reach the level, or the record is damaged.
    pub fn links_with_vectors(&self, point: u32, level: usize) -> Option<(Vec<u32>, &[u8])> {
        self.record(point, level)
    }

    fn record_span(&self, point: u32, level: usize) -> Option<(usize, usize)> {
        let p = point as usize;
        if p >= self.point_count || level >= self.levels() {
            return None;
        }
        let idx = if level == 0 { p as u64 } else { self.level_offsets[level] + u64::from(self.reindex[p]) };
        let end_level = self.level_offsets.get(level + 1).copied().unwrap_or(self.offsets.len() as u64 - 1);
        if level > 0 && idx >= end_level {
            return None;
        }
        let (&a, &b) = (self.offsets.get(idx as usize)?, self.offsets.get(idx as usize + 1)?);
        (a <= b).then_some((usize::try_from(a).ok()?, usize::try_from(b).ok()?))
    }

    /// Decode one `links_comp_vec.bin` record: its links and their vectors.
    fn record(&self, point: u32, level: usize) -> Option<(Vec<u32>, &[u8])> {
        let Links::WithVectors { neighbors, bits_u, base, link } = &self.links else { return None };
        let (a, b) = self.record_span(point, level)?;
        let rec = neighbors.get(a..b)?;
        let mut pos = if level == 0 { base.size } else { 0 };
        // LEB128 link count
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *rec.get(pos)?;
            pos += 1;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let n = usize::try_from(n).ok().filter(|&n| n <= self.point_count)?;
        let packed = rec.get(pos..)?;
        let k = n.min(self.m_of(level));
        let mut links = Vec::with_capacity(n);
        let mut bit = 0u64;
        if k > 0 {
            let bits_s = read_bits(packed, 0, 5)? as u32 + 8;
            bit = 5;
            let mut acc = 0u64;
            for _ in 0..k {
                acc = acc.checked_add(read_bits(packed, bit, bits_s)?)?;
                links.push(u32::try_from(acc).ok()?);
                bit += u64::from(bits_s);
            }
        }
        for _ in k..n {
            links.push(read_bits(packed, bit, *bits_u)? as u32);
            bit += u64::from(*bits_u);
        }
        if links.iter().any(|&l| l as usize >= self.point_count) {
            return None;
        }
        pos += bit.div_ceil(8) as usize;
        // Link vectors start at the next multiple of `link.align` counted from the records' start.
        let vec_start = (a + pos).next_multiple_of(link.align) - a;
        let vecs = rec.get(vec_start..vec_start.checked_add(n.checked_mul(link.size)?)?)?;
        Some((links, vecs))
    }

    /// The first entry point passing `check`, else the highest-level passing extra entry point
    /// (the last one in file order among equal levels, as Qdrant's `max_by_key` picks).
    pub fn entry_point(&self, mut check: impl FnMut(u32) -> bool) -> Option<EntryPoint> {
        if let Some(e) = self.entry_points.iter().find(|e| check(e.point)) {
            return Some(*e);
        }
        let mut best: Option<EntryPoint> = None;
        for e in &self.extra_entry_points {
            if check(e.point) && best.is_none_or(|b| e.level >= b.level) {
                best = Some(*e);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_lsb_first() {
        let b = [0b1010_1100u8, 0b0000_0011];
        assert_eq!(read_bits(&b, 0, 4), Some(0b1100));
        assert_eq!(read_bits(&b, 4, 6), Some(0b11_1010));
        assert_eq!(read_bits(&b, 10, 7), None);
        assert_eq!(read_bits(&[0xff; 9], 3, 64), Some(u64::MAX));
        // positions far past the end (beyond u32 on wasm32) are out of range, not wrapped
        assert_eq!(read_bits(&[0xff; 16], 1 << 35, 8), None);
        assert_eq!(read_bits(&[0xff; 16], u64::MAX - 3, 5), None);
    }

    /// The word fast path and the byte loop (fields near the end) agree with a bit-by-bit read.
    #[test]
    fn bits_fast_path_equals_bitwise_read() {
        let b: Vec<u8> = (0..40u32).map(|i| (i.wrapping_mul(0x9e37_79b1) >> 11) as u8).collect();
        let bit = |i: u64| (b[(i / 8) as usize] >> (i % 8)) & 1;
        let mut checked = 0;
        for width in 1..=64u32 {
            for pos in 0..(b.len() as u64 * 8) {
                let want = (pos + u64::from(width) <= b.len() as u64 * 8)
                    .then(|| (0..u64::from(width)).fold(0u64, |acc, j| acc | u64::from(bit(pos + j)) << j));
                assert_eq!(read_bits(&b, pos, width), want, "width {width} pos {pos}");
                checked += 1;
            }
        }
        assert_eq!(checked, 64 * 320);
    }

    #[test]
    fn ordered_offsets_round_trip() {
        // base 5 bits, delta 4 bits, chunks of 2: values [3, 7, 9, 9, 12].
        let vals = [3u64, 7, 9, 9, 12];
        let mut bits: Vec<bool> = Vec::new();
        let push = |bits: &mut Vec<bool>, v: u64, w: u32| (0..w).for_each(|j| bits.push(v >> j & 1 == 1));
        let mut bytes = Vec::new();
        for ch in vals.chunks(2) {
            bits.clear();
            push(&mut bits, ch[0], 5);
            push(&mut bits, ch.get(1).map_or(15, |v| v - ch[0]), 4);
            let mut chunk = vec![0u8; 2];
            for (i, &bit) in bits.iter().enumerate() {
                if bit {
                    chunk[i / 8] |= 1 << (i % 8);
                }
            }
            bytes.extend(chunk);
        }
        bytes.extend([0xff; 7]);
        assert_eq!(decode_ordered(&bytes, 5, 5, 4, 1, "t").unwrap(), vals);
        assert!(decode_ordered(&bytes[..3], 5, 5, 4, 1, "t").is_err());
    }
}
