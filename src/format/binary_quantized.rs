//! Binary quantized vectors (§6.1, §6.2, §6.4): reading, and the encoder that
//! [`super::binary_quantized_write`] writes mutable storages with.
//!
//! Inside `vector_storage[-<name>]/`:
//! * `quantized.config.json`: `{"quantization_config": {"binary": {...}}, "vector_parameters": …,
//!   "storage_type"?: "Mutable"}`;
//! * `quantized.meta.json`: `{"vector_parameters": {"dim", "distance_type", "invert"},
//!   "encoding"?: "OneBit"|"TwoBits"|"OneAndHalfBits", "query_encoding"?:
//!   "SameAsStorage"|"Scalar4bits"|"Scalar8bits", "vector_stats"?: {"elements_stats": [{"min",
//!   "max", "mean", "stddev"}, …]}}`;
//! * the records: `quantized.data` (immutable storage: records back to back, row *i* = internal
//!   id *i*) or the chunked directory `quantized_data/` (mutable storage of appendable segments,
//!   §1.12, `dim` = record bytes).
//!
//! A record is a bit string, bit *k* in byte `k / 8` at bit `k % 8` (Qdrant stores it as
//! little-endian `u128` words, which is the same bit order), zero-padded to a whole number of
//! 16-byte words. Its length in bits before padding (the "extended" dimension) is `dim` (one
//! bit), `2·dim` (two bits) or `ceil(1.5·dim)` (one and a half bits).
//!
//! Encoding a value `v` of dimension `i`:
//! * one bit: bit `i` = `v > 0`;
//! * two bits: a pair `(lo, hi)` stored at bits `i` and `dim + i`. With the dimension's `mean`
//!   and `stddev` from `vector_stats`: `stddev < f32::EPSILON` gives `(v > 0, 0)`; otherwise with
//!   `z = (v − mean) / stddev`: `z ≤ −2/3` gives `(0, 0)`, `z < 2/3` gives `(1, 0)`, else
//!   `(1, 1)`. Without stats: `(1, 1)` if `v > 0`, else `(0, 0)`;
//! * one and a half bits: the same pair, `lo` at bit `i`, `hi` OR-ed into bit `dim + i / 2`
//!   (two neighbouring dimensions share their upper bit).
//!
//! A query is encoded per `query_encoding`:
//! * same as storage: like a stored vector; the score uses `x` = the number of differing bits
//!   (popcount of the XOR over the whole record);
//! * scalar 4 / 8 bits (`b` bits, `R = 2^b − 1`): the query is first extended like the storage
//!   (two bits: the query twice; one and a half bits: the query followed by the max of each pair
//!   of neighbouring values, the last value alone when `dim` is odd). With `m` = the largest
//!   absolute value of the extended query and `delta = (m − (−m)) / R`, each value becomes the
//!   code `c = round((v + m) / delta) mod (R + 1)` (`c = 0` when `delta ≤ f32::EPSILON`). For a
//!   record, `x = (Σ over positions of (bit ? R − c : c)) / R` (as `f32`), i.e. the
//!   per-bit-plane XOR popcounts weighted by `2^plane`, scaled back to one bit per position.
//!
//! The score, with `dim` the vector's dimension (not the extended one) and `z = dim − x`:
//! `z − x` for Dot/Cosine not inverted and for L1/L2 inverted, `x − z` otherwise. It is an
//! internal score (larger is better) that is post-processed like an exact one (Euclid's public
//! score is `sqrt(|score|)`).
//!
//! Queries of `uint8` storages are shifted by −127 before encoding (Qdrant's binary
//! quantization input for bytes); stored records are used as written, whatever their encoder did
//! (§6.2: the mutable path stores `x > 0` bits for `uint8` without the shift).
//!
//! Multivector storages ([`BinaryMultiQuantized`], §6.7) quantize every inner vector the same
//! way into records of `u8` words whose width grows with the bit count (1 byte up to 32 bits,
//! 4 up to 64, 8 up to 128, 16 beyond; the record is a whole number of words); the per-point
//! offsets and the max-sim score are [`super::multi_quantized`]'s.

use serde::Deserialize;

use crate::error::{Error, FormatError};
use crate::format::chunked::ChunkedVectors;
use crate::format::multi_quantized::{InnerScorer, MultiQuantized};
use crate::format::quantized::{DistanceType, VectorParameters};
use crate::storage::{join, FileSlice, Memory, Storage};

/// Record word size of single (non-multi) vectors, in bytes.
const WORD: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Encoding {
    #[default]
    OneBit,
    TwoBits,
    OneAndHalfBits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum QueryEncoding {
    #[default]
    SameAsStorage,
    Scalar4bits,
    Scalar8bits,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct ElementStats {
    mean: f32,
    stddev: f32,
}

#[derive(Debug, Clone, Deserialize)]
struct VectorStats {
    elements_stats: Vec<ElementStats>,
}

#[derive(Debug, Clone, Deserialize)]
struct Meta {
    vector_parameters: VectorParameters,
    #[serde(default)]
    encoding: Encoding,
    #[serde(default)]
    query_encoding: QueryEncoding,
    #[serde(default)]
    vector_stats: Option<VectorStats>,
}

/// Extended dimension (bits before padding) of an encoding.
fn extended_dim(dim: usize, encoding: Encoding) -> usize {
    match encoding {
        Encoding::OneBit => dim,
        Encoding::TwoBits => dim * 2,
        Encoding::OneAndHalfBits => (dim * 3).div_ceil(2),
    }
}

/// Record size in bytes of single vectors (16-byte words).
pub fn record_size(dim: usize, encoding: Encoding) -> usize {
    extended_dim(dim, encoding).max(1).div_ceil(WORD * 8) * WORD
}

/// Record size in bytes of multivector inner vectors (`u8` words of growing width).
pub fn record_size_multi(dim: usize, encoding: Encoding) -> usize {
    let bits = extended_dim(dim, encoding).max(1);
    let width = match bits {
        129.. => 16,
        65..=128 => 8,
        33..=64 => 4,
        _ => 1,
    };
    bits.div_ceil(width * 8) * width
}

#[derive(Debug)]
enum Records {
    Flat(bytes::Bytes),
    Chunked(ChunkedVectors),
}

/// A query encoded for one binary storage.
#[derive(Debug, Clone)]
pub enum BinaryQuery {
    /// Bits laid out like a record.
    Bits(Vec<u8>),
    /// `planes[b]` holds bit `b` of every position's code, laid out like a record; `range` = R.
    Scalar { planes: Vec<Vec<u8>>, range: u32 },
}

/// A binary quantized storage (immutable `quantized.data` or mutable `quantized_data/`).
#[derive(Debug)]
pub struct BinaryQuantized {
    meta: Meta,
    record: usize,
    records: Records,
}

impl BinaryQuantized {
    /// Open the binary quantization in `storage_dir` (whose `quantized.config.json` was read as
    /// `cfg` and names a binary quantization).
    pub fn open(
        storage: &dyn Storage,
        storage_dir: &str,
        cfg: &serde_json::Value,
        memory: Memory,
    ) -> Result<Option<BinaryQuantized>, Error> {
        Self::open_records(storage, storage_dir, cfg, memory, false)
    }

    /// As [`BinaryQuantized::open`]; `multi`: the records are multivector inner vectors.
    fn open_records(
        storage: &dyn Storage,
        storage_dir: &str,
        cfg: &serde_json::Value,
        memory: Memory,
        multi: bool,
    ) -> Result<Option<BinaryQuantized>, Error> {
        let Some((meta, record)) = read_meta(storage, storage_dir, multi)? else {
            return Ok(None);
        };
        let mutable = is_mutable(cfg);
        let records = if mutable {
            let dir = join(storage_dir, "quantized_data");
            if !storage.is_dir(&dir)? {
                return Ok(None);
            }
            Records::Chunked(ChunkedVectors::open(storage, &dir, 1, Some(record as u64), memory)?)
        } else {
            let data_path = join(storage_dir, "quantized.data");
            if !storage.is_file(&data_path)? {
                return Ok(None);
            }
            let data = FileSlice::open(storage, &data_path)?.read_bytes()?;
            if data.len() % record != 0 {
                return Err(FormatError::corrupt(
                    &data_path,
                    format!("{} bytes is not a multiple of {record}", data.len()),
                )
                .into());
            }
            Records::Flat(data)
        };
        Ok(Some(BinaryQuantized { meta, record, records }))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        match &self.records {
            Records::Flat(d) => d.len() / self.record,
            Records::Chunked(c) => c.len() as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dimension the storage quantizes.
    pub fn dim(&self) -> usize {
        self.meta.vector_parameters.dim
    }

    pub fn encoding(&self) -> Encoding {
        self.meta.encoding
    }

    pub fn query_encoding(&self) -> QueryEncoding {
        self.meta.query_encoding
    }

    /// The two-bit code `(lo, hi)` of value `v` of dimension `i`.
    fn two_bits(&self, i: usize, v: f32) -> (bool, bool) {
        let Some(stats) = &self.meta.vector_stats else { return (v > 0.0, v > 0.0) };
        let s = stats.elements_stats[i];
        if s.stddev < f32::EPSILON {
            return (v > 0.0, false);
        }
        let z = (v - s.mean) / s.stddev;
        let sigmas: f32 = 2.0 / 3.0;
        if z <= -sigmas {
            (false, false)
        } else if z < sigmas {
            (true, false)
        } else {
            (true, true)
        }
    }

    /// Encode `v` (`dim` values) as a stored vector would be.
    fn encode_bits(&self, v: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; self.record];
        let set = |out: &mut Vec<u8>, k: usize| out[k / 8] |= 1 << (k % 8);
        let dim = v.len();
        for (i, &x) in v.iter().enumerate() {
            match self.meta.encoding {
                Encoding::OneBit => {
                    if x > 0.0 {
                        set(&mut out, i);
                    }
                }
                Encoding::TwoBits | Encoding::OneAndHalfBits => {
                    let (lo, hi) = self.two_bits(i, x);
                    if lo {
                        set(&mut out, i);
                    }
                    if hi {
                        let k = if self.meta.encoding == Encoding::TwoBits { dim + i } else { dim + i / 2 };
                        set(&mut out, k);
                    }
                }
            }
        }
        out
    }

    /// Encode a query of `dim` values, preprocessed for the distance (normalised for Cosine).
    /// `uint8`: the storage's datatype is `uint8` (the values are shifted by −127 first).
    pub fn encode_query(&self, q: &[f32], uint8: bool) -> BinaryQuery {
        let shifted: Vec<f32>;
        let q = if uint8 {
            shifted = q.iter().map(|&x| x - 127.0).collect();
            &shifted[..]
        } else {
            q
        };
        let bits = match self.meta.query_encoding {
            QueryEncoding::SameAsStorage => return BinaryQuery::Bits(self.encode_bits(q)),
            QueryEncoding::Scalar4bits => 4u32,
            QueryEncoding::Scalar8bits => 8u32,
        };
        let mut ext = q.to_vec();
        match self.meta.encoding {
            Encoding::OneBit => {}
            Encoding::TwoBits => ext.extend_from_slice(q),
            Encoding::OneAndHalfBits => {
                ext.extend(q.chunks(2).map(|p| if p.len() == 2 { p[0].max(p[1]) } else { p[0] }));
            }
        }
        let range = (1u32 << bits) - 1;
        let m = ext.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        let delta = (m - (-m)) / range as f32;
        let mut planes = vec![vec![0u8; self.record]; bits as usize];
        for (k, &v) in ext.iter().enumerate() {
            let scaled = if delta > f32::EPSILON { (v - (-m)) / delta } else { 0.0 };
            let code = (scaled.round() as usize) % (range as usize + 1);
            for (b, plane) in planes.iter_mut().enumerate() {
                if (code >> b) & 1 == 1 {
                    if let Some(byte) = plane.get_mut(k / 8) {
                        *byte |= 1 << (k % 8);
                    }
                }
            }
        }
        BinaryQuery::Scalar { planes, range }
    }

    /// The score of a record's bytes (length = record size).
    fn score_record(&self, q: &BinaryQuery, rec: &[u8]) -> f32 {
        let x = match q {
            BinaryQuery::Bits(bits) => xor_popcount(rec, bits) as f32,
            BinaryQuery::Scalar { planes, range } => {
                let total: u64 = planes.iter().enumerate().map(|(b, p)| xor_popcount(rec, p) << b).sum();
                total as f32 / *range as f32
            }
        };
        let dim = self.meta.vector_parameters.dim as f32;
        let zeros = dim - x;
        let p = &self.meta.vector_parameters;
        let similarity_sign = match p.distance_type {
            DistanceType::Dot | DistanceType::Cosine => !p.invert,
            DistanceType::L1 | DistanceType::L2 => p.invert,
        };
        if similarity_sign {
            zeros - x
        } else {
            x - zeros
        }
    }

    /// Approximate internal score of record `i`, or `None` past the end.
    pub fn score(&self, q: &BinaryQuery, i: u32) -> Result<Option<f32>, Error> {
        match &self.records {
            Records::Flat(d) => {
                let start = (i as usize).checked_mul(self.record);
                Ok(start.and_then(|s| d.get(s..s + self.record)).map(|rec| self.score_record(q, rec)))
            }
            Records::Chunked(c) => c.with_record(u64::from(i), |rec| self.score_record(q, rec)),
        }
    }
}

/// Read and check `quantized.meta.json` in `storage_dir` (`None` without one): the meta and the
/// record size (`multi`: of multivector inner vectors).
fn read_meta(storage: &dyn Storage, storage_dir: &str, multi: bool) -> Result<Option<(Meta, usize)>, Error> {
    let meta_path = join(storage_dir, "quantized.meta.json");
    if !storage.is_file(&meta_path)? {
        return Ok(None);
    }
    parse_meta(&meta_path, &storage.read_all(&meta_path)?, multi).map(Some)
}

/// Parse and check the bytes of a `quantized.meta.json` (`meta_path` names it in errors): the
/// meta and the record size (`multi`: of multivector inner vectors).
fn parse_meta(meta_path: &str, bytes: &[u8], multi: bool) -> Result<(Meta, usize), Error> {
    let meta_path = meta_path.to_string();
    let meta: Meta = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::corrupt(&meta_path, format!("not a binary quantization meta: {e}")))?;
    let dim = meta.vector_parameters.dim;
    if dim == 0 || dim > 65_536 {
        return Err(FormatError::corrupt(&meta_path, format!("dim {dim}")).into());
    }
    let needs_stats = !matches!(meta.encoding, Encoding::OneBit);
    match &meta.vector_stats {
        Some(s) if s.elements_stats.len() != dim => {
            return Err(FormatError::corrupt(
                &meta_path,
                format!("{} element stats for dim {dim}", s.elements_stats.len()),
            )
            .into());
        }
        Some(s) if s.elements_stats.iter().any(|e| !(e.mean.is_finite() && e.stddev.is_finite())) => {
            return Err(FormatError::corrupt(&meta_path, "non-finite element stats").into());
        }
        None if needs_stats => {
            return Err(FormatError::corrupt(&meta_path, "two-bit encodings need vector_stats").into());
        }
        _ => {}
    }
    let record = if multi { record_size_multi(dim, meta.encoding) } else { record_size(dim, meta.encoding) };
    Ok((meta, record))
}

/// The encoder of a binary storage's records (its `quantized.meta.json`, the records not
/// opened), for the write path.
#[derive(Debug)]
pub struct BinaryEncoder(BinaryQuantized);

impl BinaryEncoder {
    /// The encoder of the storage in `storage_dir` (`None` without `quantized.meta.json`);
    /// `multi`: records of multivector inner vectors.
    pub fn open(storage: &dyn Storage, storage_dir: &str, multi: bool) -> Result<Option<BinaryEncoder>, Error> {
        Ok(read_meta(storage, storage_dir, multi)?.map(|(meta, record)| {
            BinaryEncoder(BinaryQuantized { meta, record, records: Records::Flat(bytes::Bytes::new()) })
        }))
    }

    /// The encoder of a storage whose `quantized.meta.json` holds `bytes` (`meta_path` names it
    /// in errors); `multi`: records of multivector inner vectors.
    pub fn from_meta(meta_path: &str, bytes: &[u8], multi: bool) -> Result<BinaryEncoder, Error> {
        let (meta, record) = parse_meta(meta_path, bytes, multi)?;
        Ok(BinaryEncoder(BinaryQuantized { meta, record, records: Records::Flat(bytes::Bytes::new()) }))
    }

    /// Record size in bytes.
    pub fn record_size(&self) -> usize {
        self.0.record
    }

    /// The dimension the storage quantizes.
    pub fn dim(&self) -> usize {
        self.0.dim()
    }

    /// The record of a stored vector of `dim` values, encoded as Qdrant's mutable storage does
    /// (no shift for `uint8`), or `None` for another length.
    pub fn encode(&self, v: &[f32]) -> Option<Vec<u8>> {
        (v.len() == self.dim()).then(|| self.0.encode_bits(v))
    }
}

pub(crate) fn is_mutable(cfg: &serde_json::Value) -> bool {
    cfg.get("storage_type").and_then(|s| s.as_str()) == Some("Mutable")
}

/// A binary quantized multivector storage: inner records plus per-point offsets.
pub type BinaryMultiQuantized = MultiQuantized<BinaryQuantized>;

impl InnerScorer for BinaryQuantized {
    type Query = BinaryQuery;

    fn dim(&self) -> usize {
        BinaryQuantized::dim(self)
    }

    fn score_inner(&self, q: &BinaryQuery, k: u32) -> Result<Option<f32>, Error> {
        self.score(q, k)
    }
}

/// Open the binary quantization of a multivector in `storage_dir` (see
/// [`BinaryQuantized::open`]).
pub fn open_multi(
    storage: &dyn Storage,
    storage_dir: &str,
    cfg: &serde_json::Value,
    memory: Memory,
) -> Result<Option<BinaryMultiQuantized>, Error> {
    let Some(inner) = BinaryQuantized::open_records(storage, storage_dir, cfg, memory, true)? else {
        return Ok(None);
    };
    MultiQuantized::open(storage, storage_dir, inner, is_mutable(cfg), memory)
}

/// Encode each inner vector of a multivector query (`dim` values each, preprocessed).
pub fn encode_multi_query(m: &BinaryMultiQuantized, q: &[Vec<f32>], uint8: bool) -> Vec<BinaryQuery> {
    q.iter().map(|v| m.inner().encode_query(v, uint8)).collect()
}

/// Number of differing bits of two equally long byte strings.
fn xor_popcount(a: &[u8], b: &[u8]) -> u64 {
    let mut n = 0u64;
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let x = u64::from_le_bytes(x.try_into().unwrap());
        let y = u64::from_le_bytes(y.try_into().unwrap());
        n += u64::from((x ^ y).count_ones());
    }
    for (x, y) in ra.iter().zip(rb) {
        n += u64::from((x ^ y).count_ones());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bq(
        encoding: Encoding,
        query_encoding: QueryEncoding,
        dim: usize,
        dist: DistanceType,
        invert: bool,
    ) -> BinaryQuantized {
        let stats = VectorStats { elements_stats: vec![ElementStats { mean: 0.0, stddev: 1.0 }; dim] };
        let meta = Meta {
            vector_parameters: VectorParameters { dim, distance_type: dist, invert },
            encoding,
            query_encoding,
            vector_stats: Some(stats),
        };
        let record = record_size(dim, encoding);
        BinaryQuantized { meta, record, records: Records::Flat(bytes::Bytes::new()) }
    }

    #[test]
    fn multi_record_sizes() {
        assert_eq!(record_size_multi(8, Encoding::OneBit), 1);
        assert_eq!(record_size_multi(32, Encoding::OneBit), 4);
        assert_eq!(record_size_multi(33, Encoding::OneBit), 8);
        assert_eq!(record_size_multi(100, Encoding::OneBit), 16);
        assert_eq!(record_size_multi(129, Encoding::OneBit), 32);
        assert_eq!(record_size_multi(12, Encoding::TwoBits), 3);
    }

    #[test]
    fn record_sizes() {
        assert_eq!(record_size(8, Encoding::OneBit), 16);
        assert_eq!(record_size(128, Encoding::OneBit), 16);
        assert_eq!(record_size(129, Encoding::OneBit), 32);
        assert_eq!(record_size(64, Encoding::TwoBits), 16);
        assert_eq!(record_size(65, Encoding::TwoBits), 32);
        assert_eq!(record_size(86, Encoding::OneAndHalfBits), 32); // 129 bits
        assert_eq!(record_size(85, Encoding::OneAndHalfBits), 16); // 128 bits
    }

    #[test]
    fn one_bit_scores_by_agreement() {
        let s = bq(Encoding::OneBit, QueryEncoding::SameAsStorage, 4, DistanceType::Dot, false);
        let rec = s.encode_bits(&[1.0, -1.0, 1.0, -1.0]);
        assert_eq!(rec[0], 0b0101);
        let q = s.encode_query(&[1.0, 1.0, 1.0, -1.0], false);
        // one differing bit of 4: 3 agree - 1 differs
        assert_eq!(s.score_record(&q, &rec), 2.0);
        let l2 = bq(Encoding::OneBit, QueryEncoding::SameAsStorage, 4, DistanceType::L2, true);
        assert_eq!(l2.score_record(&q, &rec), 2.0);
        let dot_inv = bq(Encoding::OneBit, QueryEncoding::SameAsStorage, 4, DistanceType::Dot, true);
        assert_eq!(dot_inv.score_record(&q, &rec), -2.0);
    }

    #[test]
    fn two_bit_layouts() {
        let s = bq(Encoding::TwoBits, QueryEncoding::SameAsStorage, 3, DistanceType::Dot, false);
        // z = -1 → 00, z = 0.1 → 10, z = 1 → 11
        let rec = s.encode_bits(&[-1.0, 0.1, 1.0]);
        assert_eq!(rec[0], 0b100110);
        let h = bq(Encoding::OneAndHalfBits, QueryEncoding::SameAsStorage, 3, DistanceType::Dot, false);
        let rec = h.encode_bits(&[-1.0, 0.1, 1.0]);
        // lo bits 0..3 = 0,1,1; hi of dims 0,1 OR-ed at bit 3 (0), of dim 2 at bit 4 (1)
        assert_eq!(rec[0], 0b10110);
    }

    #[test]
    fn scalar_query_counts_weighted_disagreement() {
        let s = bq(Encoding::OneBit, QueryEncoding::Scalar4bits, 2, DistanceType::Dot, false);
        let q = s.encode_query(&[1.0, -1.0], false);
        // codes: 15 and 0; record bits 1, 1 → (15-15) + (15-0) = 15 → x = 1
        let rec = {
            let mut r = vec![0u8; 16];
            r[0] = 0b11;
            r
        };
        assert_eq!(s.score_record(&q, &rec), 0.0);
        let rec0 = vec![0u8; 16];
        // bits 0, 0 → 15 + 0 → x = 1
        assert_eq!(s.score_record(&q, &rec0), 0.0);
        let mut rec1 = vec![0u8; 16];
        rec1[0] = 0b01;
        // bits 1, 0 → 0 + 0 → x = 0 → score 2
        assert_eq!(s.score_record(&q, &rec1), 2.0);
    }
}
