//! Writing the mutable binary quantized storage of an appendable segment (§6.2, §6.7), as
//! Qdrant's segment does on every vector write.
//!
//! Inside `vector_storage[-<name>]/`, when `quantized.config.json` names a binary quantization
//! with `"storage_type": "Mutable"`: the records in the chunked directory `quantized_data/`
//! (record size = the encoded bytes) and, for multivectors, the per-point `{start: u32, count:
//! u32}` offsets in the chunked directory `quantized_offsets_data/` (8-byte elements). The
//! encoding is [`super::binary_quantized`]'s with the storage's own `quantized.meta.json` (the
//! `vector_stats` the segment was created with), applied to the stored (preprocessed) values;
//! `uint8` values are not shifted.
//!
//! What Qdrant writes, and so what this writer writes:
//! * a point written with the vector: its record at its internal id (appended, or overwritten
//!   in place when the internal id is reused), `status.dat` = the largest record index + 1;
//! * a point written without the vector, and a deleted point: nothing (old records stay);
//! * a multivector of `n` inner vectors for internal id `i`: when `i` already has an offset
//!   `(start, count)` with `n <= count`, the records go to `start..start + n` and the offset
//!   becomes `(start, n)`; otherwise they are appended after the last inner record and the
//!   offset is `(end, n)`. (Unlike the raw multivector storage, the reuse test is against the
//!   previous *count*, not a capacity.) Offsets never written read as `(0, 0)`.
//!
//! A new appendable segment gets the empty storage ([`create_mutable_binary_storage`]), as
//! Qdrant creates it with the segment: `quantized.config.json` (the vector's quantization config,
//! `vector_parameters` with Cosine recorded as `Dot` and `invert` for Euclid / Manhattan,
//! `"storage_type": "Mutable"`), `quantized.meta.json` (`encoding` unless one bit,
//! `query_encoding` when scalar, and — when either needs them — the `vector_stats` of no vectors:
//! `min` = `f32::MAX`, `max` = `−f32::MAX`, mean and stddev 0, so two-bit codes reduce to
//! `(v > 0, 0)`) and the empty chunked directories.
//!
//! Scalar and product quantizations never have mutable storages (Qdrant refuses them), so an
//! appendable segment only ever carries binary ones (TurboQuant is not read by this engine).

use crate::error::{Error, FormatError, Result};
use crate::format::binary_quantized::{is_mutable, record_size, record_size_multi, BinaryEncoder, Encoding};
use crate::format::names;
use crate::format::segment_meta::{
    BinaryQuantizationConfig, BinaryQuantizationEncoding, BinaryQuantizationQueryEncoding, QuantizationConfig,
    VectorDataConfig,
};
use crate::format::segment_write::ChunkedVectorsWriter;
use crate::storage::{join, Storage};
use crate::types::Distance;

/// Bytes of one multivector offset.
const OFFSET_SIZE: u64 = 8;

/// Writer of one vector's mutable binary quantized storage.
#[derive(Debug)]
pub struct BinaryQuantizedWriter<'s> {
    dir: String,
    encoder: BinaryEncoder,
    records: ChunkedVectorsWriter<'s>,
    /// Multivectors: the per-point offsets.
    offsets: Option<ChunkedVectorsWriter<'s>>,
}

impl<'s> BinaryQuantizedWriter<'s> {
    /// Open the mutable binary quantized storage of vector `name` in `segment_dir`; `multi`:
    /// the vector is a multivector. `None` when the vector has no such storage (no quantization,
    /// another kind, an immutable one, or files the reader ignores too).
    pub fn open(
        storage: &'s dyn Storage,
        segment_dir: &str,
        name: &str,
        multi: bool,
    ) -> Result<Option<BinaryQuantizedWriter<'s>>> {
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        let cfg_path = join(&dir, "quantized.config.json");
        if !storage.is_file(&cfg_path)? {
            return Ok(None);
        }
        let cfg: serde_json::Value = serde_json::from_slice(&storage.read_all(&cfg_path)?)
            .map_err(|e| FormatError::corrupt(&cfg_path, format!("invalid JSON: {e}")))?;
        if cfg.pointer("/quantization_config/binary").is_none() || !is_mutable(&cfg) {
            return Ok(None);
        }
        let Some(encoder) = BinaryEncoder::open(storage, &dir, multi)? else { return Ok(None) };
        let data_dir = join(&dir, "quantized_data");
        let offsets_dir = join(&dir, "quantized_offsets_data");
        // As the reader: without its directories the storage is not there.
        if !storage.is_dir(&data_dir)? || (multi && !storage.is_dir(&offsets_dir)?) {
            return Ok(None);
        }
        let record = encoder.record_size() as u64;
        let records = ChunkedVectorsWriter::open(storage, &data_dir, 1, Some(record))?;
        let offsets =
            if multi { Some(ChunkedVectorsWriter::open(storage, &offsets_dir, OFFSET_SIZE, Some(1))?) } else { None };
        Ok(Some(BinaryQuantizedWriter { dir, encoder, records, offsets }))
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Number of records (multivectors: of inner records).
    pub fn len(&self) -> u64 {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Number of points with an offset (multivectors only; 0 otherwise).
    pub fn offsets_len(&self) -> u64 {
        self.offsets.as_ref().map_or(0, |o| o.len())
    }

    fn encode(&self, v: &[f32]) -> Result<Vec<u8>> {
        self.encoder.encode(v).ok_or_else(|| {
            Error::invalid(format!("{}: vector of {} elements, expected {}", self.dir, v.len(), self.encoder.dim()))
        })
    }

    /// Store the record of `internal`'s (dense) vector, given in its stored form.
    pub fn put(&mut self, internal: u32, v: &[f32]) -> Result<()> {
        if self.offsets.is_some() {
            return Err(Error::Internal(format!("{}: a dense vector given to a multivector storage", self.dir)));
        }
        let rec = self.encode(v)?;
        self.records.put(u64::from(internal), &rec)
    }

    /// The offset `(start, count)` of `internal`, `None` past the end.
    fn offset(&self, internal: u32) -> Result<Option<(u32, u32)>> {
        let Some(offsets) = &self.offsets else { return Ok(None) };
        let Some(b) = offsets.get(u64::from(internal))? else { return Ok(None) };
        match (b.get(..4), b.get(4..8)) {
            (Some(s), Some(c)) => {
                let word = |x: &[u8]| u32::from_le_bytes([x[0], x[1], x[2], x[3]]);
                Ok(Some((word(s), word(c))))
            }
            _ => Err(FormatError::corrupt(&self.dir, "short multivector offset").into()),
        }
    }

    /// Store the records of `internal`'s multivector (inner vectors in their stored form) and
    /// its offset, reusing its previous records when they were at least as many (module docs).
    pub fn put_multi(&mut self, internal: u32, inner: &[Vec<f32>]) -> Result<()> {
        if self.offsets.is_none() {
            return Err(Error::Internal(format!("{}: a multivector given to a dense storage", self.dir)));
        }
        let count =
            u32::try_from(inner.len()).map_err(|_| Error::invalid(format!("{}: too many inner vectors", self.dir)))?;
        let start = match self.offset(internal)? {
            Some((start, old)) if count <= old => start,
            _ => u32::try_from(self.records.len())
                .map_err(|_| Error::invalid(format!("{}: more than 2^32 inner records", self.dir)))?,
        };
        if start.checked_add(count).is_none() {
            return Err(Error::invalid(format!("{}: more than 2^32 inner records", self.dir)));
        }
        let recs = inner.iter().map(|v| self.encode(v)).collect::<Result<Vec<_>>>()?;
        for (j, rec) in recs.iter().enumerate() {
            self.records.put(u64::from(start) + j as u64, rec)?;
        }
        let mut off = [0u8; OFFSET_SIZE as usize];
        off[..4].copy_from_slice(&start.to_le_bytes());
        off[4..].copy_from_slice(&count.to_le_bytes());
        if let Some(offsets) = self.offsets.as_mut() {
            offsets.put(u64::from(internal), &off)?;
        }
        Ok(())
    }

    /// Sync the records, then the offsets (each chunk before its `status.dat`).
    pub fn flush(&mut self) -> Result<()> {
        self.records.flush()?;
        if let Some(o) = self.offsets.as_mut() {
            o.flush()?;
        }
        Ok(())
    }
}

/// One element's stats of a storage calibrated on no vectors, as Qdrant writes them.
const EMPTY_STATS: &str = r#"{"min":3.4028235e+38,"max":-3.4028235e+38,"mean":0.0,"stddev":0.0}"#;

/// Qdrant's `vector_parameters` distance for a quantized storage, and whether it is inverted.
fn distance_params(distance: Distance) -> (&'static str, bool) {
    match distance {
        Distance::Cosine | Distance::Dot => ("Dot", false),
        Distance::Euclid => ("L2", true),
        Distance::Manhattan => ("L1", true),
    }
}

/// A binary storage's `quantized.meta.json`: the vector parameters, the encodings Qdrant names
/// (one bit and the default query encoding stay unnamed), and, when either is named, the
/// per-element stats `elements` gives (JSON objects).
fn binary_meta(
    params: &str,
    binary: &BinaryQuantizationConfig,
    elements: impl FnOnce() -> Result<Vec<String>>,
) -> Result<String> {
    let enc_name = match binary.encoding {
        None | Some(BinaryQuantizationEncoding::OneBit) => None,
        Some(BinaryQuantizationEncoding::TwoBits) => Some("TwoBits"),
        Some(BinaryQuantizationEncoding::OneAndHalfBits) => Some("OneAndHalfBits"),
    };
    let query_name = match binary.query_encoding {
        Some(BinaryQuantizationQueryEncoding::Scalar4Bits) => Some("Scalar4bits"),
        Some(BinaryQuantizationQueryEncoding::Scalar8Bits) => Some("Scalar8bits"),
        _ => None,
    };
    let mut meta = format!(r#"{{"vector_parameters":{params}"#);
    if let Some(e) = enc_name {
        meta.push_str(&format!(r#","encoding":"{e}""#));
    }
    if let Some(q) = query_name {
        meta.push_str(&format!(r#","query_encoding":"{q}""#));
    }
    if enc_name.is_some() || query_name.is_some() {
        meta.push_str(r#","vector_stats":{"elements_stats":["#);
        meta.push_str(&elements()?.join(","));
        meta.push_str("]}");
    }
    meta.push('}');
    Ok(meta)
}

/// Create the empty mutable binary quantized storage of vector `name` (config `cfg`) in the
/// new appendable segment `segment_dir`, when its quantization is binary (module docs).
pub fn create_mutable_binary_storage(
    storage: &dyn Storage,
    segment_dir: &str,
    name: &str,
    cfg: &VectorDataConfig,
) -> Result<()> {
    let Some(QuantizationConfig::Binary { binary }) = &cfg.quantization_config else { return Ok(()) };
    let dir = join(segment_dir, &names::vector_storage_dir(name));
    let dim = usize::try_from(cfg.size).map_err(|_| Error::invalid(format!("{dir}: vector size {}", cfg.size)))?;
    let (distance_type, invert) = distance_params(cfg.distance);
    let params = format!(r#"{{"dim":{dim},"distance_type":"{distance_type}","invert":{invert}}}"#);
    let encoding = match binary.encoding {
        None | Some(BinaryQuantizationEncoding::OneBit) => Encoding::OneBit,
        Some(BinaryQuantizationEncoding::TwoBits) => Encoding::TwoBits,
        Some(BinaryQuantizationEncoding::OneAndHalfBits) => Encoding::OneAndHalfBits,
    };
    let meta = binary_meta(&params, binary, || Ok(vec![EMPTY_STATS.to_string(); dim]))?;
    let qcfg = serde_json::to_string(&cfg.quantization_config).map_err(|e| Error::Internal(e.to_string()))?;
    let config = format!(r#"{{"quantization_config":{qcfg},"vector_parameters":{params},"storage_type":"Mutable"}}"#);

    let multi = cfg.multivector_config.is_some();
    let record = if multi { record_size_multi(dim, encoding) } else { record_size(dim, encoding) };
    ChunkedVectorsWriter::create(storage, &join(&dir, "quantized_data"), record as u64, 1)?;
    if multi {
        ChunkedVectorsWriter::create(storage, &join(&dir, "quantized_offsets_data"), 1, OFFSET_SIZE)?;
    }
    storage.write_atomic(&join(&dir, "quantized.meta.json"), meta.as_bytes())?;
    // the config last: with it, the storage exists
    storage.write_atomic(&join(&dir, "quantized.config.json"), config.as_bytes())?;
    storage.sync_dir(&dir)?;
    Ok(())
}

/// One point's vector, in internal id order, for [`write_immutable_binary_storage`].
#[derive(Debug, Clone)]
pub struct QuantInput {
    /// The point has the vector (else `inner` is the storage's placeholder, which is encoded
    /// but left out of the calibration).
    pub present: bool,
    /// The stored values (rounded to the datatype, `uint8` unshifted): one vector for a dense
    /// vector, the inner vectors of a multivector.
    pub inner: Vec<Vec<f32>>,
}

/// Per-dimension statistics as Qdrant's quantization computes them: `min` / `max` over the
/// values (as `f32`), `mean` and the sample standard deviation by Welford's streaming method in
/// `f64`, each vector in storage order, rounded to `f32` at the end (`stddev` 0 below two
/// vectors; no vectors: `min` = `f32::MAX`, `max` = `f32::MIN`).
fn vector_stats<'a>(dim: usize, vectors: impl Iterator<Item = &'a [f32]>) -> Vec<[f32; 4]> {
    let mut min = vec![f32::MAX; dim];
    let mut max = vec![f32::MIN; dim];
    let mut mean = vec![0f64; dim];
    let mut m2 = vec![0f64; dim];
    let mut count = 0u64;
    for v in vectors {
        count += 1;
        let c = count as f64;
        for (i, &x) in v.iter().enumerate().take(dim) {
            if x < min[i] {
                min[i] = x;
            }
            if x > max[i] {
                max[i] = x;
            }
            let x = f64::from(x);
            let delta = x - mean[i];
            mean[i] += delta / c;
            m2[i] += delta * (x - mean[i]);
        }
    }
    (0..dim)
        .map(|i| {
            let stddev = if count > 1 { (m2[i] / (count - 1) as f64).sqrt() as f32 } else { 0.0 };
            [min[i], max[i], mean[i] as f32, stddev]
        })
        .collect()
}

/// A float as Qdrant's JSON writes it.
fn json_f32(x: f32) -> Result<String> {
    serde_json::to_string(&x).map_err(|e| Error::Internal(e.to_string()))
}

/// Write the immutable binary quantized storage of vector `name` (config `cfg`) into the new
/// optimized segment `segment_dir`, as Qdrant's segment builder does, when the vector's
/// quantization is binary (else nothing). `points`: every point of the segment in internal id
/// order.
///
/// Files: `quantized.data` (the records back to back: one per point, or one per inner vector
/// of a multivector, placeholders included), for multivectors `quantized.offsets.data` (per
/// point `{start: u32, count: u32}`, the inner records in order), `quantized.meta.json` and
/// `quantized.config.json` (no `storage_type`; `vector_parameters` carry `count`, the number
/// of records). The values are encoded as Qdrant's quantization input: `uint8` shifted by −127.
/// Two-bit encodings and scalar query encodings get `vector_stats` calibrated on the vectors of
/// the points that have the vector ([`vector_stats`]).
pub fn write_immutable_binary_storage(
    storage: &dyn Storage,
    segment_dir: &str,
    name: &str,
    cfg: &VectorDataConfig,
    points: &[QuantInput],
) -> Result<()> {
    let Some(QuantizationConfig::Binary { binary }) = &cfg.quantization_config else { return Ok(()) };
    let dir = join(segment_dir, &names::vector_storage_dir(name));
    let dim = usize::try_from(cfg.size).map_err(|_| Error::invalid(format!("{dir}: vector size {}", cfg.size)))?;
    let multi = cfg.multivector_config.is_some();
    let shift = if cfg.datatype() == crate::types::Datatype::Uint8 { 127.0 } else { 0.0 };
    let mut inputs: Vec<(bool, Vec<f32>)> = Vec::new();
    for p in points {
        if !multi && p.inner.len() != 1 {
            return Err(Error::Internal(format!("{dir}: {} vectors for a dense point", p.inner.len())));
        }
        for v in &p.inner {
            if v.len() != dim {
                return Err(Error::invalid(format!("{dir}: vector of {} elements, expected {dim}", v.len())));
            }
            inputs.push((p.present, v.iter().map(|&x| x - shift).collect()));
        }
    }
    let (distance_type, invert) = distance_params(cfg.distance);
    let params =
        format!(r#"{{"dim":{dim},"distance_type":"{distance_type}","invert":{invert},"count":{}}}"#, inputs.len());
    let meta = binary_meta(&params, binary, || {
        let stats = vector_stats(dim, inputs.iter().filter(|(keep, _)| *keep).map(|(_, v)| v.as_slice()));
        stats
            .into_iter()
            .map(|[min, max, mean, stddev]| {
                Ok(format!(
                    r#"{{"min":{},"max":{},"mean":{},"stddev":{}}}"#,
                    json_f32(min)?,
                    json_f32(max)?,
                    json_f32(mean)?,
                    json_f32(stddev)?
                ))
            })
            .collect()
    })?;
    let meta_path = join(&dir, "quantized.meta.json");
    let encoder = BinaryEncoder::from_meta(&meta_path, meta.as_bytes(), multi)?;
    let mut data = Vec::with_capacity(inputs.len() * encoder.record_size());
    for (_, v) in &inputs {
        let rec = encoder
            .encode(v)
            .ok_or_else(|| Error::Internal(format!("{dir}: vector of {} elements, expected {dim}", v.len())))?;
        data.extend_from_slice(&rec);
    }
    let qcfg = serde_json::to_string(&cfg.quantization_config).map_err(|e| Error::Internal(e.to_string()))?;
    let config = format!(r#"{{"quantization_config":{qcfg},"vector_parameters":{params}}}"#);

    let inner_counts = multi.then(|| points.iter().map(|p| p.inner.len()));
    write_immutable_files(storage, &dir, &data, inner_counts, &meta, &config)
}

/// The files of an immutable quantized storage in `dir` (binary and scalar alike):
/// `quantized.data`, `quantized.offsets.data` for multivectors (per point: the first inner
/// record and the count, two `u32`), the meta, and the config last (with it, the storage
/// exists).
pub(crate) fn write_immutable_files(
    storage: &dyn Storage,
    dir: &str,
    data: &[u8],
    inner_counts: Option<impl Iterator<Item = usize>>,
    meta: &str,
    config: &str,
) -> Result<()> {
    storage.create_dir_all(dir)?;
    crate::storage::write_file(storage, &join(dir, "quantized.data"), data)?;
    if let Some(counts) = inner_counts {
        let mut offsets = Vec::new();
        let mut start = 0u32;
        for count in counts {
            let count = u32::try_from(count).map_err(|_| Error::invalid(format!("{dir}: too many inner vectors")))?;
            offsets.extend_from_slice(&start.to_le_bytes());
            offsets.extend_from_slice(&count.to_le_bytes());
            start = start
                .checked_add(count)
                .ok_or_else(|| Error::invalid(format!("{dir}: more than 2^32 inner records")))?;
        }
        crate::storage::write_file(storage, &join(dir, "quantized.offsets.data"), &offsets)?;
    }
    crate::storage::write_file(storage, &join(dir, "quantized.meta.json"), meta.as_bytes())?;
    crate::storage::write_file(storage, &join(dir, "quantized.config.json"), config.as_bytes())?;
    storage.sync_dir(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::binary_quantized::{open_multi, BinaryQuantized, BinaryQuery};
    use crate::storage::{Memory, MemoryStorage};

    fn seg(storage: &MemoryStorage, multi: bool, encoding: &str, dim: usize) {
        let dir = "seg/vector_storage-v";
        let cfg = format!(
            r#"{{"quantization_config":{{"binary":{{"always_ram":true,"encoding":"{encoding}"}}}},"vector_parameters":{{"dim":{dim},"distance_type":"Dot","invert":false}},"storage_type":"Mutable"}}"#
        );
        storage.create_dir_all(dir).unwrap();
        storage.write_atomic(&join(dir, "quantized.config.json"), cfg.as_bytes()).unwrap();
        let enc = match encoding {
            "two_bits" => "TwoBits",
            "one_and_half_bits" => "OneAndHalfBits",
            _ => "OneBit",
        };
        let stats = (0..dim)
            .map(|_| r#"{"min":3.4028235e+38,"max":-3.4028235e+38,"mean":0.0,"stddev":0.0}"#)
            .collect::<Vec<_>>()
            .join(",");
        let meta = format!(
            r#"{{"vector_parameters":{{"dim":{dim},"distance_type":"Dot","invert":false}},"encoding":"{enc}","query_encoding":"SameAsStorage","vector_stats":{{"elements_stats":[{stats}]}}}}"#
        );
        storage.write_atomic(&join(dir, "quantized.meta.json"), meta.as_bytes()).unwrap();
        let record = if multi {
            crate::format::binary_quantized::record_size_multi(dim, crate::format::binary_quantized::Encoding::OneBit)
        } else {
            crate::format::binary_quantized::record_size(dim, crate::format::binary_quantized::Encoding::OneBit)
        };
        ChunkedVectorsWriter::create(storage, &join(dir, "quantized_data"), record as u64, 1).unwrap();
        if multi {
            ChunkedVectorsWriter::create(storage, &join(dir, "quantized_offsets_data"), 1, OFFSET_SIZE).unwrap();
        }
    }

    fn cfg_json(storage: &MemoryStorage) -> serde_json::Value {
        serde_json::from_slice(&storage.read_all("seg/vector_storage-v/quantized.config.json").unwrap()).unwrap()
    }

    #[test]
    fn dense_records_land_at_internal_ids() {
        let st = MemoryStorage::new();
        seg(&st, false, "one_bit", 4);
        let mut w = BinaryQuantizedWriter::open(&st, "seg", "v", false).unwrap().unwrap();
        w.put(0, &[1.0, -1.0, 1.0, -1.0]).unwrap();
        w.put(2, &[-1.0, -1.0, -1.0, 1.0]).unwrap();
        assert_eq!(w.len(), 3);
        assert!(w.put(3, &[1.0]).is_err(), "wrong length");
        assert!(w.put_multi(3, &[vec![1.0; 4]]).is_err(), "a multivector to a dense storage");
        w.flush().unwrap();
        let q = BinaryQuantized::open(&st, "seg/vector_storage-v", &cfg_json(&st), Memory::Cold).unwrap().unwrap();
        assert_eq!(q.len(), 3);
        let query = BinaryQuery::Bits({
            let mut b = vec![0u8; 16];
            b[0] = 0b0101;
            b
        });
        // record 0 = the query's bits: 4 agreeing bits → score 4
        assert_eq!(q.score(&query, 0).unwrap(), Some(4.0));
        // record 1 is a gap (zeros): 2 agree, 2 differ
        assert_eq!(q.score(&query, 1).unwrap(), Some(0.0));
        // record 2 = 0b1000: differs in 3 bits
        assert_eq!(q.score(&query, 2).unwrap(), Some(-2.0));
    }

    #[test]
    fn multivector_offsets_reuse_by_count() {
        let st = MemoryStorage::new();
        seg(&st, true, "one_bit", 4);
        let mut w = BinaryQuantizedWriter::open(&st, "seg", "v", true).unwrap().unwrap();
        let v = |bits: u8| (0..4).map(|k| if bits >> k & 1 == 1 { 1.0 } else { -1.0 }).collect::<Vec<f32>>();
        w.put_multi(1, &[v(1), v(2)]).unwrap(); // (0, 2)
        w.put_multi(0, &[v(3)]).unwrap(); // (2, 1)
        w.put_multi(1, &[v(4)]).unwrap(); // fewer: (0, 1)
        w.put_multi(1, &[v(5), v(6)]).unwrap(); // more than the count 1: appended (3, 2)
        assert!(w.put(2, &v(1)).is_err(), "a dense vector to a multivector storage");
        w.flush().unwrap();
        assert_eq!((w.offsets_len(), w.len()), (2, 5));
        assert_eq!(w.offset(0).unwrap(), Some((2, 1)));
        assert_eq!(w.offset(1).unwrap(), Some((3, 2)));
        let rec = |k: u64| w.records.get(k).unwrap().unwrap()[0];
        assert_eq!([rec(0), rec(1), rec(2), rec(3), rec(4)], [4, 2, 3, 5, 6]);
        let m = open_multi(&st, "seg/vector_storage-v", &cfg_json(&st), Memory::Cold).unwrap().unwrap();
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn new_segments_get_the_empty_storage() {
        let st = MemoryStorage::new();
        let cfg: VectorDataConfig = serde_json::from_str(
            r#"{"size":3,"distance":"Euclid","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},
                "quantization_config":{"binary":{"encoding":"two_bits"}},"multivector_config":{"comparator":"max_sim"}}"#,
        )
        .unwrap();
        st.create_dir_all("seg/vector_storage-v").unwrap();
        create_mutable_binary_storage(&st, "seg", "v", &cfg).unwrap();
        let read =
            |f: &str| String::from_utf8(st.read_all(&format!("seg/vector_storage-v/{f}")).unwrap().to_vec()).unwrap();
        assert_eq!(
            read("quantized.config.json"),
            r#"{"quantization_config":{"binary":{"encoding":"two_bits"}},"vector_parameters":{"dim":3,"distance_type":"L2","invert":true},"storage_type":"Mutable"}"#
        );
        let stats = [EMPTY_STATS; 3].join(",");
        assert_eq!(
            read("quantized.meta.json"),
            format!(
                r#"{{"vector_parameters":{{"dim":3,"distance_type":"L2","invert":true}},"encoding":"TwoBits","vector_stats":{{"elements_stats":[{stats}]}}}}"#
            )
        );
        let mut w = BinaryQuantizedWriter::open(&st, "seg", "v", true).unwrap().unwrap();
        assert_eq!((w.len(), w.offsets_len()), (0, 0));
        // no stats spread: two-bit codes are (v > 0, 0)
        w.put_multi(0, &[vec![1.0, -1.0, 2.0]]).unwrap();
        assert_eq!(w.records.get(0).unwrap().unwrap(), vec![0b101]);
        // other quantizations: nothing
        let mut scalar = cfg.clone();
        scalar.quantization_config = serde_json::from_str(r#"{"scalar":{"type":"int8"}}"#).map(Some).unwrap();
        create_mutable_binary_storage(&st, "seg2", "v", &scalar).unwrap();
        assert!(!st.exists("seg2").unwrap());
    }

    #[test]
    fn optimized_segments_get_the_immutable_storage() {
        let st = MemoryStorage::new();
        let cfg: VectorDataConfig = serde_json::from_str(
            r#"{"size":2,"distance":"Dot","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},
                "quantization_config":{"binary":{"encoding":"two_bits"}},"multivector_config":{"comparator":"max_sim"},
                "datatype":"uint8"}"#,
        )
        .unwrap();
        let p = |present, inner: Vec<Vec<f32>>| QuantInput { present, inner };
        let points = [
            p(true, vec![vec![127.0, 130.0], vec![129.0, 124.0]]),
            p(false, vec![vec![0.0, 0.0]]),
            p(true, vec![vec![131.0, 127.0]]),
        ];
        write_immutable_binary_storage(&st, "seg", "v", &cfg, &points).unwrap();
        let read = |f: &str| st.read_all(&format!("seg/vector_storage-v/{f}")).unwrap().to_vec();
        // uint8 values shifted by -127; the placeholder is left out of the stats:
        // dim 0: 0, 2, 4 → mean 2, sample stddev 2; dim 1: 3, -3, 0 → mean 0, stddev 3
        let meta = String::from_utf8(read("quantized.meta.json")).unwrap();
        assert_eq!(
            meta,
            r#"{"vector_parameters":{"dim":2,"distance_type":"Dot","invert":false,"count":4},"encoding":"TwoBits","vector_stats":{"elements_stats":[{"min":0.0,"max":4.0,"mean":2.0,"stddev":2.0},{"min":-3.0,"max":3.0,"mean":0.0,"stddev":3.0}]}}"#
        );
        assert_eq!(
            String::from_utf8(read("quantized.config.json")).unwrap(),
            r#"{"quantization_config":{"binary":{"encoding":"two_bits"}},"vector_parameters":{"dim":2,"distance_type":"Dot","invert":false,"count":4}}"#
        );
        // offsets (start, count): (0, 2), (2, 1), (3, 1)
        let offsets = read("quantized.offsets.data");
        let words: Vec<u32> = offsets.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, [0, 2, 2, 1, 3, 1]);
        // one byte per inner record; z = (v - mean) / stddev against ±2/3:
        // (0, 3): dim 0 z=-1 → 00, dim 1 z=1 → 11 → bits 1 and 3
        // (2, -3): z=0 → 10, z=-1 → 00 → bit 0
        // placeholder (-127, -127): 00, 00; (4, 0): z=1 → 11, z=0 → 10 → bits 0, 1, 2
        assert_eq!(read("quantized.data"), [0b1010, 0b0001, 0, 0b0111]);
        let m = open_multi(&st, "seg/vector_storage-v", &cfg_json(&st), Memory::Cold).unwrap().unwrap();
        assert_eq!(m.len(), 3);
        // not binary: nothing
        let mut scalar = cfg.clone();
        scalar.quantization_config = serde_json::from_str(r#"{"scalar":{"type":"int8"}}"#).map(Some).unwrap();
        write_immutable_binary_storage(&st, "seg2", "v", &scalar, &points).unwrap();
        assert!(!st.exists("seg2").unwrap());
    }

    #[test]
    fn other_storages_are_not_written() {
        let st = MemoryStorage::new();
        assert!(BinaryQuantizedWriter::open(&st, "seg", "v", false).unwrap().is_none());
        seg(&st, false, "one_bit", 4);
        let immutable = r#"{"quantization_config":{"binary":{}},"vector_parameters":{"dim":4,"distance_type":"Dot","invert":false}}"#;
        st.write_atomic("seg/vector_storage-v/quantized.config.json", immutable.as_bytes()).unwrap();
        assert!(BinaryQuantizedWriter::open(&st, "seg", "v", false).unwrap().is_none());
        let scalar = r#"{"quantization_config":{"scalar":{"type":"int8"}},"storage_type":"Mutable"}"#;
        st.write_atomic("seg/vector_storage-v/quantized.config.json", scalar.as_bytes()).unwrap();
        assert!(BinaryQuantizedWriter::open(&st, "seg", "v", false).unwrap().is_none());
    }
}
