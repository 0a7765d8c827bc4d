//! Scalar (int8) quantized vectors (§6.1, §6.3), read-only.
//!
//! Inside `vector_storage[-<name>]/` of an optimized segment:
//! * `quantized.config.json`: `{"quantization_config": {"scalar": {...}}, "vector_parameters": …}`;
//! * `quantized.meta.json`: `{"actual_dim", "alpha", "offset", "multiplier",
//!   "vector_parameters": {"dim", "distance_type": "Dot"|"Cosine"|"L1"|"L2", "invert"}}`;
//! * `quantized.data`: one record per internal id, no header: `f32` LE vector offset, then
//!   `actual_dim` (dim rounded up to 16) `u8` codes.
//!
//! A value encodes as `round(clamp((v - offset) / alpha, 0, 127))`. A query is encoded the same
//! way, its padding dimensions with `0.0` (dot family) or `offset` (L1/L2); its offset is
//! `Σq·alpha·offset` (dot family), `Σq²·alpha²` (L2) or 0 (L1), negated when `invert`. The score
//! of a record is `multiplier · S + query_offset + vector_offset` with `S` the integer `Σ q·c`
//! (dot family and L2) or `Σ |q − c|` (L1).
//!
//! Multivectors keep one such record per inner vector, with per-point offsets
//! ([`super::multi_quantized`]).
//!
//! [`Quantized`] opens this, a binary ([`super::binary_quantized`]) or a product
//! ([`super::product_quantized`]) quantization, of dense vectors or multivectors. TurboQuant is
//! not read: [`Quantized::open`] returns `None` and searches use the original vectors.

use serde::Deserialize;

use crate::error::{Error, FormatError};
use crate::format::binary_quantized::{self, BinaryMultiQuantized, BinaryQuantized, BinaryQuery};
use crate::format::multi_quantized::{InnerScorer, MultiQuantized};
use crate::format::product_quantized::{PqQuery, ProductQuantized};
use crate::storage::{join, FileSlice, Memory, Storage};

const ALIGNMENT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum DistanceType {
    Dot,
    Cosine,
    L1,
    L2,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VectorParameters {
    pub(crate) dim: usize,
    pub(crate) distance_type: DistanceType,
    #[serde(default)]
    pub(crate) invert: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct Meta {
    actual_dim: usize,
    alpha: f32,
    offset: f32,
    multiplier: f32,
    vector_parameters: VectorParameters,
}

/// A query encoded for one storage.
#[derive(Debug, Clone)]
pub struct EncodedQuery {
    codes: Vec<u8>,
    offset: f32,
}

/// An immutable scalar-quantized storage.
#[derive(Debug)]
pub struct ScalarQuantized {
    meta: Meta,
    record: usize,
    count: usize,
    data: bytes::Bytes,
}

impl ScalarQuantized {
    /// Open the scalar quantization in `storage_dir`, if there is one this reader supports.
    pub fn open(storage: &dyn Storage, storage_dir: &str) -> Result<Option<ScalarQuantized>, Error> {
        let cfg_path = join(storage_dir, "quantized.config.json");
        let meta_path = join(storage_dir, "quantized.meta.json");
        let data_path = join(storage_dir, "quantized.data");
        if !storage.is_file(&cfg_path)? || !storage.is_file(&meta_path)? || !storage.is_file(&data_path)? {
            return Ok(None);
        }
        let cfg: serde_json::Value = serde_json::from_slice(&storage.read_all(&cfg_path)?)
            .map_err(|e| FormatError::corrupt(&cfg_path, format!("invalid JSON: {e}")))?;
        if cfg.pointer("/quantization_config/scalar").is_none() {
            return Ok(None);
        }
        let meta: Meta = serde_json::from_slice(&storage.read_all(&meta_path)?)
            .map_err(|e| FormatError::corrupt(&meta_path, format!("not a scalar quantization meta: {e}")))?;
        let dim = meta.vector_parameters.dim;
        if meta.actual_dim != dim.div_ceil(ALIGNMENT) * ALIGNMENT || dim == 0 || dim > 65_536 {
            return Err(
                FormatError::corrupt(&meta_path, format!("actual_dim {} for dim {dim}", meta.actual_dim)).into()
            );
        }
        if !(meta.alpha.is_finite() && meta.offset.is_finite() && meta.multiplier.is_finite()) {
            return Err(FormatError::corrupt(&meta_path, "non-finite quantization parameters").into());
        }
        let record = 4 + meta.actual_dim;
        let data = FileSlice::open(storage, &data_path)?.read_bytes()?;
        if data.len() % record != 0 {
            return Err(FormatError::corrupt(
                &data_path,
                format!("{} bytes is not a multiple of {record}", data.len()),
            )
            .into());
        }
        Ok(Some(ScalarQuantized { count: data.len() / record, record, meta, data }))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The dimension the storage quantizes.
    pub fn dim(&self) -> usize {
        self.meta.vector_parameters.dim
    }

    fn encode_value(&self, v: f32) -> u8 {
        ((v - self.meta.offset) / self.meta.alpha).clamp(0.0, 127.0).round() as u8
    }

    /// Encode a preprocessed query (normalised for Cosine) of `dim` values.
    pub fn encode_query(&self, q: &[f32]) -> EncodedQuery {
        let m = &self.meta;
        let mut codes: Vec<u8> = q.iter().map(|&v| self.encode_value(v)).collect();
        let pad = match m.vector_parameters.distance_type {
            DistanceType::Dot | DistanceType::Cosine => 0.0,
            DistanceType::L1 | DistanceType::L2 => m.offset,
        };
        while codes.len() < m.actual_dim {
            codes.push(self.encode_value(pad));
        }
        let offset = match m.vector_parameters.distance_type {
            DistanceType::Dot | DistanceType::Cosine => {
                codes.iter().map(|&x| f32::from(x)).sum::<f32>() * m.alpha * m.offset
            }
            DistanceType::L1 => 0.0,
            DistanceType::L2 => codes.iter().map(|&x| f32::from(x) * f32::from(x)).sum::<f32>() * m.alpha * m.alpha,
        };
        EncodedQuery { codes, offset: if m.vector_parameters.invert { -offset } else { offset } }
    }

    /// Approximate internal score of record `i`, or `None` past the end.
    pub fn score(&self, q: &EncodedQuery, i: u32) -> Option<f32> {
        let start = (i as usize).checked_mul(self.record)?;
        let rec = self.data.get(start..start + self.record)?;
        let voff = f32::from_le_bytes(rec[..4].try_into().unwrap());
        let codes = &rec[4..];
        let s: i64 = match self.meta.vector_parameters.distance_type {
            DistanceType::L1 => q.codes.iter().zip(codes).map(|(&a, &b)| (i64::from(a) - i64::from(b)).abs()).sum(),
            _ => q.codes.iter().zip(codes).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum(),
        };
        Some(self.meta.multiplier * s as f32 + q.offset + voff)
    }
}

impl InnerScorer for ScalarQuantized {
    type Query = EncodedQuery;

    fn dim(&self) -> usize {
        ScalarQuantized::dim(self)
    }

    fn score_inner(&self, q: &EncodedQuery, k: u32) -> Result<Option<f32>, Error> {
        Ok(self.score(q, k))
    }
}

/// A quantized copy of a dense vector or multivector that searches can score with.
#[derive(Debug)]
pub enum Quantized {
    Scalar(ScalarQuantized),
    Binary(BinaryQuantized),
    Product(ProductQuantized),
    BinaryMulti(BinaryMultiQuantized),
    ScalarMulti(MultiQuantized<ScalarQuantized>),
    ProductMulti(MultiQuantized<ProductQuantized>),
}

/// A query encoded for a [`Quantized`] storage.
#[derive(Debug, Clone)]
pub enum QuantizedQuery {
    Scalar(EncodedQuery),
    Binary(BinaryQuery),
    Product(PqQuery),
    /// One encoded query per inner vector of a multivector query.
    Multi(Vec<BinaryQuery>),
    ScalarMulti(Vec<EncodedQuery>),
    ProductMulti(Vec<PqQuery>),
}

impl Quantized {
    /// Open the quantization in `storage_dir` (a vector's storage directory; `multi`: of a
    /// multivector), if there is one this reader supports: scalar and product (immutable) or
    /// binary (immutable or mutable), of dense vectors or multivectors.
    pub fn open(
        storage: &dyn Storage,
        storage_dir: &str,
        memory: Memory,
        multi: bool,
    ) -> Result<Option<Quantized>, Error> {
        let cfg_path = join(storage_dir, "quantized.config.json");
        if !storage.is_file(&cfg_path)? {
            return Ok(None);
        }
        let cfg: serde_json::Value = serde_json::from_slice(&storage.read_all(&cfg_path)?)
            .map_err(|e| FormatError::corrupt(&cfg_path, format!("invalid JSON: {e}")))?;
        let kind = |k: &str| cfg.pointer(&format!("/quantization_config/{k}")).is_some();
        // Scalar and product storages only exist immutable (Qdrant refuses mutable ones).
        let immutable = !binary_quantized::is_mutable(&cfg);
        if kind("binary") {
            return Ok(if multi {
                binary_quantized::open_multi(storage, storage_dir, &cfg, memory)?.map(Quantized::BinaryMulti)
            } else {
                BinaryQuantized::open(storage, storage_dir, &cfg, memory)?.map(Quantized::Binary)
            });
        }
        if kind("scalar") && immutable {
            let Some(s) = ScalarQuantized::open(storage, storage_dir)? else { return Ok(None) };
            return Ok(if multi {
                MultiQuantized::open(storage, storage_dir, s, false, memory)?.map(Quantized::ScalarMulti)
            } else {
                Some(Quantized::Scalar(s))
            });
        }
        if kind("product") && immutable {
            let Some(p) = ProductQuantized::open(storage, storage_dir)? else { return Ok(None) };
            return Ok(if multi {
                MultiQuantized::open(storage, storage_dir, p, false, memory)?.map(Quantized::ProductMulti)
            } else {
                Some(Quantized::Product(p))
            });
        }
        Ok(None)
    }

    /// The dimension the storage quantizes (of the inner vectors for multivectors).
    pub fn dim(&self) -> usize {
        match self {
            Quantized::Scalar(q) => q.dim(),
            Quantized::Binary(q) => q.dim(),
            Quantized::Product(q) => q.dim(),
            Quantized::BinaryMulti(q) => q.dim(),
            Quantized::ScalarMulti(q) => q.dim(),
            Quantized::ProductMulti(q) => q.dim(),
        }
    }

    /// Number of records (points).
    pub fn len(&self) -> usize {
        match self {
            Quantized::Scalar(q) => q.len(),
            Quantized::Binary(q) => q.len(),
            Quantized::Product(q) => q.len(),
            Quantized::BinaryMulti(q) => q.len(),
            Quantized::ScalarMulti(q) => q.len(),
            Quantized::ProductMulti(q) => q.len(),
        }
    }

    pub fn is_multi(&self) -> bool {
        matches!(self, Quantized::BinaryMulti(_) | Quantized::ScalarMulti(_) | Quantized::ProductMulti(_))
    }

    /// Whether this is a binary quantization (queries of `uint8` storages are shifted by
    /// −127, not normalised for Cosine).
    pub fn is_binary(&self) -> bool {
        matches!(self, Quantized::Binary(_) | Quantized::BinaryMulti(_))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether searches rescore with the original vectors when the request does not say
    /// (Qdrant: yes for binary, no for scalar and product).
    pub fn default_rescore(&self) -> bool {
        self.is_binary()
    }

    /// Encode a query preprocessed for the distance (normalised for Cosine; `dim` values).
    /// `uint8`: the vector's datatype is `uint8`.
    pub fn encode_query(&self, q: &[f32], uint8: bool) -> QuantizedQuery {
        match self {
            Quantized::Scalar(s) => QuantizedQuery::Scalar(s.encode_query(q)),
            Quantized::Binary(b) => QuantizedQuery::Binary(b.encode_query(q, uint8)),
            Quantized::Product(p) => QuantizedQuery::Product(p.encode_query(q)),
            Quantized::BinaryMulti(m) => {
                QuantizedQuery::Multi(binary_quantized::encode_multi_query(m, &[q.to_vec()], uint8))
            }
            Quantized::ScalarMulti(m) => QuantizedQuery::ScalarMulti(vec![m.inner().encode_query(q)]),
            Quantized::ProductMulti(m) => QuantizedQuery::ProductMulti(vec![m.inner().encode_query(q)]),
        }
    }

    /// Encode a multivector query (each inner vector preprocessed, `dim` values). `None` for a
    /// storage of single vectors.
    pub fn encode_multi_query(&self, q: &[Vec<f32>], uint8: bool) -> Option<QuantizedQuery> {
        match self {
            Quantized::BinaryMulti(m) => Some(QuantizedQuery::Multi(binary_quantized::encode_multi_query(m, q, uint8))),
            Quantized::ScalarMulti(m) => {
                Some(QuantizedQuery::ScalarMulti(q.iter().map(|v| m.inner().encode_query(v)).collect()))
            }
            Quantized::ProductMulti(m) => {
                Some(QuantizedQuery::ProductMulti(q.iter().map(|v| m.inner().encode_query(v)).collect()))
            }
            _ => None,
        }
    }

    /// Approximate internal score of record `i`, or `None` past the end (or for a query
    /// encoded for the other kind).
    pub fn score(&self, q: &QuantizedQuery, i: u32) -> Result<Option<f32>, Error> {
        match (self, q) {
            (Quantized::Scalar(s), QuantizedQuery::Scalar(e)) => Ok(s.score(e, i)),
            (Quantized::Binary(b), QuantizedQuery::Binary(e)) => b.score(e, i),
            (Quantized::Product(p), QuantizedQuery::Product(e)) => Ok(p.score(e, i)),
            (Quantized::BinaryMulti(m), QuantizedQuery::Multi(e)) => m.score(e, i),
            (Quantized::ScalarMulti(m), QuantizedQuery::ScalarMulti(e)) => m.score(e, i),
            (Quantized::ProductMulti(m), QuantizedQuery::ProductMulti(e)) => m.score(e, i),
            _ => Ok(None),
        }
    }
}

/// Remove the mutable quantized storage of vector `name` in the appendable segment
/// `segment_dir` when this crate cannot keep it in step with the vectors it writes there
/// (TurboQuant, or a binary storage that
/// [`BinaryQuantizedWriter::open`](crate::format::binary_quantized_write::BinaryQuantizedWriter::open)
/// declines): left alone it would go stale, and qdrant-edge-py 0.9.0 then fails its searches
/// ("quantized vectors a..b are not readable"). qdrant-edge rebuilds a missing mutable storage from the segment's vectors
/// when it loads the segment (observed: TurboQuant, 103 records for 103 points), and our reader
/// never uses one it cannot read. The records go first and the config last: a crash in between
/// leaves a config without its files, which qdrant-edge refuses to load (and the next flush
/// finishes the removal), never a storage it would append to out of step. Returns whether
/// anything was removed.
pub fn drop_unwritable_mutable_storage(storage: &dyn Storage, segment_dir: &str, name: &str) -> crate::Result<bool> {
    let dir = join(segment_dir, &crate::format::names::vector_storage_dir(name));
    let cfg_path = join(&dir, "quantized.config.json");
    if !storage.is_file(&cfg_path)? {
        return Ok(false);
    }
    let cfg: serde_json::Value = serde_json::from_slice(&storage.read_all(&cfg_path)?)
        .map_err(|e| FormatError::corrupt(&cfg_path, format!("invalid JSON: {e}")))?;
    if !binary_quantized::is_mutable(&cfg) {
        return Ok(false);
    }
    for sub in ["quantized_data", "quantized_offsets_data"] {
        let path = join(&dir, sub);
        if storage.is_dir(&path)? {
            storage.remove_dir_all(&path)?;
        }
    }
    let meta = join(&dir, "quantized.meta.json");
    if storage.is_file(&meta)? {
        storage.remove_file(&meta)?;
    }
    storage.sync_dir(&dir)?;
    storage.remove_file(&cfg_path)?;
    storage.sync_dir(&dir)?;
    Ok(true)
}
