//! Writing Qdrant's HNSW graph files (§9 of the format reference): `hnsw_config.json`,
//! `graph.bin` and `links_compressed.bin`. [`crate::format::hnsw`] reads them back.
//!
//! * `hnsw_config.json`: `m, m0, ef_construct, ef, full_scan_threshold (vectors),
//!   max_indexing_threads, payload_m, payload_m0, indexed_vector_count`, in that order.
//! * `graph.bin` (bincode, little endian): `m u64, m0 u64, ef_construct u64`, the entry points
//!   (`u64` count, then `point u32, level u64` each), the extra entry points (same layout) and
//!   their capacity `u64` (≥ 1).
//! * `links_compressed.bin`: 64-byte header (`point_count u64`, version
//!   `0xFFFF_FFFF_FFFF_FF01`, `levels_count u64`, `neighbors_bytes u64`, offsets parameters
//!   `length u64, base_bits u8, delta_bits u8, chunk_len_log2 u8`, `m u64`, `m0 u64`, 5 zero
//!   bytes), `level_offsets u64×levels`, `reindex u32×points` (points ordered by descending
//!   level, ties by id), the packed lists (level 0 for every point by id, then for each higher
//!   level the points reaching it in `reindex` order) and the `bitpacking_ordered` byte offsets.
//!
//! One list is an LSB-first bit stream: if non-empty, a 5-bit header `bits_s - 8`, the first
//! `min(len, S)` ids sorted and delta-coded in `bits_s = max(8, bit_length(max delta))` bits
//! each (`S` = `m0` on level 0, else `m`), then the remaining ids raw in
//! `max(8, bit_length(points - 1))` bits, padded to a byte. The offsets are compressed in
//! chunks of `2^k` values (first value in `base_bits`, the others as deltas from it in
//! `delta_bits`, a short last chunk filled with all-ones deltas), then 7 `0xFF` bytes; `k` is
//! the one giving the smallest output, as Qdrant chooses.

use serde::Serialize;

use crate::error::Error;
use crate::format::hnsw::EntryPoint;
use crate::format::hnsw::{GRAPH_FILE, HNSW_CONFIG_FILE, LINKS_COMPRESSED_FILE};
use crate::storage::{join, Storage};

const COMPRESSED_VERSION: u64 = 0xFFFF_FFFF_FFFF_FF01;
const MAX_CHUNK_LEN_LOG2: u8 = 7;
const MAX_DELTA_BITS: u8 = 56;

/// A built graph: `links[point][level]`, one level-0 list (possibly empty) for every point.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltGraph {
    pub m: usize,
    pub m0: usize,
    pub ef_construct: usize,
    pub links: Vec<Vec<Vec<u32>>>,
    pub entry_points: Vec<EntryPoint>,
    pub extra_entry_points: Vec<EntryPoint>,
    /// Capacity of the extra entry point set (written to `graph.bin`, at least 1).
    pub extra_capacity: usize,
}

/// `hnsw_config.json` as Qdrant writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HnswFileConfig {
    pub m: u64,
    pub m0: u64,
    pub ef_construct: u64,
    pub ef: u64,
    pub full_scan_threshold: u64,
    pub max_indexing_threads: u64,
    pub payload_m: Option<u64>,
    pub payload_m0: Option<u64>,
    pub indexed_vector_count: Option<u64>,
}

/// LSB-first bit writer appending to a byte vector.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, bits: 0 }
    }
    fn write(&mut self, value: u64, width: u32) {
        debug_assert!(width <= 64);
        let v = if width == 64 { value } else { value & ((1u64 << width) - 1) };
        self.acc |= u128::from(v) << self.bits;
        self.bits += width;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }
    /// Flush the last partial byte (zero padded).
    fn finish(self) {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Bits of one unsorted (raw) id for a graph of `point_count` points.
pub fn unsorted_bits(point_count: usize) -> u32 {
    bit_length(point_count.saturating_sub(1) as u64).max(8)
}

/// Append one compressed list to `out`. The first `min(len, sorted_count)` links are sorted
/// (in place) before encoding; the rest keep their order.
pub fn pack_links(out: &mut Vec<u8>, links: &mut [u32], bits_unsorted: u32, sorted_count: usize) {
    if links.is_empty() {
        return;
    }
    let k = links.len().min(sorted_count);
    links[..k].sort_unstable();
    let mut w = BitWriter::new(out);
    if k > 0 {
        let max_delta = (1..k).map(|i| links[i] - links[i - 1]).chain([links[0]]).max().unwrap_or(0);
        let bits_s = bit_length(u64::from(max_delta)).max(8);
        w.write(u64::from(bits_s - 8), 5);
        let mut prev = 0u32;
        for &v in &links[..k] {
            w.write(u64::from(v - prev), bits_s);
            prev = v;
        }
    }
    for &v in &links[k..] {
        w.write(u64::from(v), bits_unsorted);
    }
    w.finish();
}

/// `bitpacking_ordered` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderedParams {
    pub length: u64,
    pub base_bits: u8,
    pub delta_bits: u8,
    pub chunk_len_log2: u8,
}

impl OrderedParams {
    fn chunk_bytes(&self) -> usize {
        (usize::from(self.base_bits) + usize::from(self.delta_bits) * ((1usize << self.chunk_len_log2) - 1)).div_ceil(8)
    }
    fn compressed_size(&self) -> usize {
        (self.length as usize).div_ceil(1 << self.chunk_len_log2) * self.chunk_bytes() + 7
    }
}

/// Compress a non-decreasing sequence with the smallest parameters (ties: the shortest chunks).
pub fn compress_ordered(values: &[u64]) -> (Vec<u8>, OrderedParams) {
    debug_assert!(values.windows(2).all(|w| w[0] <= w[1]));
    let last = values.last().copied().unwrap_or(0);
    let base_bits = bit_length(last).max(1) as u8;
    let mut best: Option<OrderedParams> = None;
    for log2 in 0..=MAX_CHUNK_LEN_LOG2 {
        let delta_bits =
            values.chunks(1 << log2).map(|c| bit_length(c[c.len() - 1] - c[0]) as u8).max().unwrap_or(0).max(1);
        if delta_bits > MAX_DELTA_BITS {
            continue;
        }
        let p = OrderedParams { length: values.len() as u64, base_bits, delta_bits, chunk_len_log2: log2 };
        if best.is_none_or(|b| p.compressed_size() < b.compressed_size()) {
            best = Some(p);
        }
    }
    // log2 = 0 (one value per chunk, no deltas) always qualifies.
    let p = best.expect("chunk length 1 is always possible");
    let c = 1usize << p.chunk_len_log2;
    let mut out = Vec::with_capacity(p.compressed_size());
    for chunk in values.chunks(c) {
        let start = out.len();
        let mut w = BitWriter::new(&mut out);
        w.write(chunk[0], u32::from(p.base_bits));
        for &v in &chunk[1..] {
            w.write(v - chunk[0], u32::from(p.delta_bits));
        }
        for _ in chunk.len()..c {
            w.write(u64::MAX, u32::from(p.delta_bits));
        }
        w.finish();
        debug_assert_eq!(out.len() - start, p.chunk_bytes());
    }
    out.extend_from_slice(&[0xFF; 7]);
    debug_assert_eq!(out.len(), p.compressed_size());
    (out, p)
}

/// `links_compressed.bin` for `links[point][level]` (every point has at least level 0), points
/// ordered by descending level, ties by id.
pub fn serialize_links_compressed(links: &[Vec<Vec<u32>>], m: usize, m0: usize) -> Vec<u8> {
    let mut order: Vec<u32> = (0..links.len() as u32).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(links[p as usize].len()));
    serialize_links_compressed_in_order(links, m, m0, &order)
}

/// [`serialize_links_compressed`] with the points in the given `order`, which must be a
/// permutation sorted by descending level (Qdrant orders ties arbitrarily); `reindex` is the
/// position in it.
pub fn serialize_links_compressed_in_order(links: &[Vec<Vec<u32>>], m: usize, m0: usize, order: &[u32]) -> Vec<u8> {
    let n = links.len();
    assert_eq!(order.len(), n, "order is a permutation of the points");
    debug_assert!(order.windows(2).all(|w| links[w[0] as usize].len() >= links[w[1] as usize].len()));
    let bits_u = unsorted_bits(n);
    let levels = order.first().map_or(0, |&p| links[p as usize].len());
    let mut reindex = vec![0u32; n];
    for (i, &p) in order.iter().enumerate() {
        reindex[p as usize] = i as u32;
    }
    // Points reaching each level.
    let mut at_least = vec![0u64; levels];
    for l in links {
        for c in at_least.iter_mut().take(l.len()) {
            *c += 1;
        }
    }
    let mut level_offsets = Vec::with_capacity(levels);
    let mut total = 0u64;
    for &c in &at_least {
        level_offsets.push(total);
        total += c;
    }

    let mut neighbors = Vec::new();
    let mut offsets = Vec::with_capacity(total as usize + 1);
    offsets.push(0u64);
    let mut scratch = Vec::new();
    for level in 0..levels {
        let s = if level == 0 { m0 } else { m };
        let count = at_least[level] as usize;
        // Level 0 lists every point by id; higher levels the points reaching them, in `reindex` order.
        let points: Box<dyn Iterator<Item = usize>> =
            if level == 0 { Box::new(0..count) } else { Box::new(order[..count].iter().map(|&p| p as usize)) };
        for p in points {
            scratch.clear();
            scratch.extend_from_slice(&links[p][level]);
            pack_links(&mut neighbors, &mut scratch, bits_u, s);
            offsets.push(neighbors.len() as u64);
        }
    }
    let (packed_offsets, params) = compress_ordered(&offsets);

    let mut out = Vec::with_capacity(64 + levels * 8 + n * 4 + neighbors.len() + packed_offsets.len());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&COMPRESSED_VERSION.to_le_bytes());
    out.extend_from_slice(&(levels as u64).to_le_bytes());
    out.extend_from_slice(&(neighbors.len() as u64).to_le_bytes());
    out.extend_from_slice(&params.length.to_le_bytes());
    out.extend_from_slice(&[params.base_bits, params.delta_bits, params.chunk_len_log2]);
    out.extend_from_slice(&(m as u64).to_le_bytes());
    out.extend_from_slice(&(m0 as u64).to_le_bytes());
    out.extend_from_slice(&[0u8; 5]);
    debug_assert_eq!(out.len(), 64);
    for o in level_offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    for r in reindex {
        out.extend_from_slice(&r.to_le_bytes());
    }
    out.extend_from_slice(&neighbors);
    out.extend_from_slice(&packed_offsets);
    out
}

/// `graph.bin` (bincode) of a built graph.
pub fn serialize_graph_bin(g: &BuiltGraph) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [g.m, g.m0, g.ef_construct] {
        out.extend_from_slice(&(v as u64).to_le_bytes());
    }
    for list in [&g.entry_points, &g.extra_entry_points] {
        out.extend_from_slice(&(list.len() as u64).to_le_bytes());
        for e in list.iter() {
            out.extend_from_slice(&e.point.to_le_bytes());
            out.extend_from_slice(&(e.level as u64).to_le_bytes());
        }
    }
    out.extend_from_slice(&(g.extra_capacity.max(1) as u64).to_le_bytes());
    out
}

/// Write the three files of a graph into `index_dir` (created if missing).
pub fn write_hnsw_index(
    storage: &dyn Storage,
    index_dir: &str,
    graph: &BuiltGraph,
    config: &HnswFileConfig,
) -> Result<(), Error> {
    storage.create_dir_all(index_dir)?;
    let links = serialize_links_compressed(&graph.links, graph.m, graph.m0);
    crate::storage::write_file(storage, &join(index_dir, LINKS_COMPRESSED_FILE), &links)?;
    crate::storage::write_file(storage, &join(index_dir, GRAPH_FILE), &serialize_graph_bin(graph))?;
    let json = serde_json::to_vec(config).map_err(|e| Error::Internal(e.to_string()))?;
    crate::storage::write_file(storage, &join(index_dir, HNSW_CONFIG_FILE), &json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::hnsw::HnswGraph;
    use crate::index::hnsw_build::SplitMix64;
    use crate::storage::{MemoryStorage, Storage};

    fn read_bits(b: &[u8], pos: usize, width: u32) -> u64 {
        (0..width as usize).fold(0u64, |acc, j| acc | (u64::from(b[(pos + j) / 8] >> ((pos + j) % 8) & 1) << j))
    }

    /// Decode a `bitpacking_ordered` stream independently of the reader (spec §9.6.2).
    fn decode(b: &[u8], p: OrderedParams) -> Vec<u64> {
        let c = 1usize << p.chunk_len_log2;
        let cb = p.chunk_bytes();
        (0..p.length as usize)
            .map(|i| {
                let chunk = &b[(i / c) * cb..];
                let base = read_bits(chunk, 0, u32::from(p.base_bits));
                match i % c {
                    0 => base,
                    r => {
                        base + read_bits(
                            chunk,
                            usize::from(p.base_bits) + (r - 1) * usize::from(p.delta_bits),
                            u32::from(p.delta_bits),
                        )
                    }
                }
            })
            .collect()
    }

    #[test]
    fn ordered_offsets_round_trip() {
        let mut rng = SplitMix64::new(7);
        let mut seqs: Vec<Vec<u64>> = vec![vec![0], vec![5], vec![u64::MAX], vec![0, u64::MAX], vec![3, 3, 3, 3, 3]];
        for (len, max_delta) in [(1usize, 10u64), (7, 1000), (300, 40), (1000, 1 << 20), (129, 0), (2000, 3)] {
            let mut last = rng.next_u64() % 1000;
            seqs.push(
                (0..len)
                    .map(|_| {
                        last += rng.next_u64() % (max_delta + 1);
                        last
                    })
                    .collect(),
            );
        }
        for s in seqs {
            let (bytes, p) = compress_ordered(&s);
            assert_eq!(p.length as usize, s.len());
            assert_eq!(bytes.len(), s.len().div_ceil(1 << p.chunk_len_log2) * p.chunk_bytes() + 7, "{p:?}");
            assert_eq!(&bytes[bytes.len() - 7..], &[0xFF; 7]);
            assert!((1..=64).contains(&p.base_bits) && (1..=56).contains(&p.delta_bits) && p.chunk_len_log2 <= 7);
            assert_eq!(decode(&bytes, p), s, "{p:?}");
            // The chosen parameters are the smallest of all chunk lengths.
            for log2 in 0..=7u8 {
                let delta_bits =
                    s.chunks(1 << log2).map(|c| bit_length(c[c.len() - 1] - c[0]) as u8).max().unwrap().max(1);
                if delta_bits <= 56 {
                    let q = OrderedParams { delta_bits, chunk_len_log2: log2, ..p };
                    assert!(p.compressed_size() <= q.compressed_size());
                }
            }
        }
    }

    #[test]
    fn packed_list_layout() {
        // 300 points: raw ids take 9 bits. m0 = 3: [40, 7, 300-1] sorted, then 5 raw.
        let mut out = Vec::new();
        let mut links = vec![40u32, 299, 7, 5];
        pack_links(&mut out, &mut links, 9, 3);
        assert_eq!(links, [7, 40, 299, 5]);
        // header (5) + 3 sorted of max(8, bits(259)) = 9 bits + 1 raw of 9 = 41 bits -> 6 bytes
        assert_eq!(out.len(), 6);
        assert_eq!(read_bits(&out, 0, 5), 1);
        assert_eq!(read_bits(&out, 5, 9), 7);
        assert_eq!(read_bits(&out, 14, 9), 33);
        assert_eq!(read_bits(&out, 23, 9), 259);
        assert_eq!(read_bits(&out, 32, 9), 5);
        let mut empty = Vec::new();
        pack_links(&mut out, &mut empty, 9, 3);
        assert_eq!(out.len(), 6);
    }

    /// Random graphs (several levels, empty lists, lists longer than `m0`, big id widths) read
    /// back identically through the reader.
    #[test]
    fn writer_reader_round_trip() {
        let mut rng = SplitMix64::new(99);
        for (n, m) in [(1usize, 4usize), (2, 2), (37, 3), (300, 8), (1500, 16), (70_000, 5)] {
            let m0 = 2 * m;
            let mut links: Vec<Vec<Vec<u32>>> = Vec::with_capacity(n);
            for _ in 0..n {
                let r = rng.next_u64();
                let level = (r % 64).trailing_zeros().min(4) as usize; // ~1/2, 1/4, ... reach higher
                let mut lv = Vec::new();
                for l in 0..=level {
                    let cap = if l == 0 { m0 } else { m };
                    let len = match rng.next_u64() % 10 {
                        0 => 0,
                        1 => cap + 1 + (rng.next_u64() % 5) as usize, // longer than S
                        _ => (rng.next_u64() % (cap as u64 + 1)) as usize,
                    };
                    let mut list: Vec<u32> = Vec::new();
                    while list.len() < len.min(n) {
                        let v = (rng.next_u64() % n as u64) as u32;
                        if !list.contains(&v) {
                            list.push(v);
                        }
                    }
                    lv.push(list);
                }
                links.push(lv);
            }
            let levels = links.iter().map(Vec::len).max().unwrap();
            let g = BuiltGraph {
                m,
                m0,
                ef_construct: 10,
                links: links.clone(),
                entry_points: vec![EntryPoint {
                    point: links.iter().position(|l| l.len() == levels).unwrap() as u32,
                    level: levels - 1,
                }],
                extra_entry_points: vec![EntryPoint { point: 0, level: links[0].len() - 1 }],
                extra_capacity: 3,
            };
            let cfg = HnswFileConfig {
                m: m as u64,
                m0: m0 as u64,
                ef_construct: 10,
                ef: 10,
                full_scan_threshold: 77,
                max_indexing_threads: 0,
                payload_m: None,
                payload_m0: None,
                indexed_vector_count: Some(n as u64),
            };
            let st = MemoryStorage::new();
            write_hnsw_index(&st, "idx", &g, &cfg).unwrap();
            let r = HnswGraph::open(&st, "idx").unwrap().expect("graph");
            assert_eq!(r.point_count, n);
            assert_eq!(r.levels(), levels);
            assert_eq!(r.entry_points, g.entry_points);
            assert_eq!(r.extra_entry_points, g.extra_entry_points);
            assert_eq!(r.config.full_scan_threshold, 77);
            assert_eq!(r.config.indexed_vector_count, Some(n as u64));
            let mut out = Vec::new();
            for (p, lv) in links.iter().enumerate() {
                for level in 0..levels {
                    out.clear();
                    r.links(p as u32, level, &mut out);
                    let want = match lv.get(level) {
                        None => Vec::new(),
                        Some(list) => {
                            let s = if level == 0 { m0 } else { m };
                            let k = list.len().min(s);
                            let mut w = list[..k].to_vec();
                            w.sort_unstable();
                            w.extend_from_slice(&list[k..]);
                            w
                        }
                    };
                    assert_eq!(out, want, "n {n} point {p} level {level}");
                }
            }
            // The file is exactly as long as its parts (no trailing bytes).
            let bytes = st.read_all("idx/links_compressed.bin").unwrap();
            assert_eq!(u64::from_le_bytes(bytes[0..8].try_into().unwrap()), n as u64);
            assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), COMPRESSED_VERSION);
            let graph_bin = st.read_all("idx/graph.bin").unwrap();
            assert_eq!(graph_bin.len(), 24 + 8 + 12 + 8 + 12 + 8);
            assert_eq!(u64::from_le_bytes(graph_bin[graph_bin.len() - 8..].try_into().unwrap()), 3);
        }
    }

    #[test]
    fn config_json_field_order() {
        let cfg = HnswFileConfig {
            m: 8,
            m0: 16,
            ef_construct: 32,
            ef: 32,
            full_scan_threshold: 160,
            max_indexing_threads: 0,
            payload_m: None,
            payload_m0: None,
            indexed_vector_count: Some(1350),
        };
        assert_eq!(
            serde_json::to_string(&cfg).unwrap(),
            r#"{"m":8,"m0":16,"ef_construct":32,"ef":32,"full_scan_threshold":160,"max_indexing_threads":0,"payload_m":null,"payload_m0":null,"indexed_vector_count":1350}"#
        );
    }
}
