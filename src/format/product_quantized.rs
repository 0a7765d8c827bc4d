//! Product quantized vectors (§6.5), read-only.
//!
//! Inside `vector_storage[-<name>]/` of an optimized segment (Qdrant builds product
//! quantization only there, never in appendable segments):
//! * `quantized.config.json`: `{"quantization_config": {"product": {"compression":
//!   "x4"|"x8"|"x16"|"x32"|"x64", …}}, "vector_parameters": …}`;
//! * `quantized.meta.json`: `{"centroids": [[f32; dim]; K], "vector_division": [{"start",
//!   "end"}, …], "vector_parameters": {"dim", "distance_type", "invert"}}`. The vector is cut
//!   into sub-vectors (chunks) `start..end` of `1, 2, 4, 8, 16` values (compression `x4` …
//!   `x64`; the last one may be shorter); centroid `c` of chunk `j` is `centroids[c][start..end]`
//!   (full-width centroids, each chunk using its own slice). `K` is 256 (fewer points than that
//!   at build time: the points themselves, then zero vectors);
//! * `quantized.data`: one record per internal id (per inner vector for multivectors, with
//!   `quantized.offsets.data`, [`super::multi_quantized`]), no header: one `u8` centroid index
//!   per chunk.
//!
//! A query becomes a lookup table: for chunk `j` and centroid `c`, the distance between the
//! query's and the centroid's slices (`Σ a·b` for Dot/Cosine, `Σ |a − b|` for L1, `Σ (a − b)²`
//! for L2, summed in order), negated when `invert`. A record's score is the sum of its chunks'
//! entries, added in Qdrant's order (its SSE kernel): four running sums, chunk `j` of the first
//! `4·⌊n/4⌋` going to sum `j mod 4`, combined as `(s0 + s2) + (s1 + s3)`, then the remaining
//! chunks added one by one. It is an internal score (larger is better) post-processed like an
//! exact one. Cosine queries are normalised first (the storage's `distance_type` is `Dot`).

use serde::Deserialize;

use crate::error::{Error, FormatError};
use crate::format::multi_quantized::InnerScorer;
use crate::format::quantized::{DistanceType, VectorParameters};
use crate::storage::{join, FileSlice, Storage};

/// Lookup table entries per chunk (a code is a `u8`).
const STRIDE: usize = 256;

#[derive(Debug, Clone, Copy, Deserialize)]
struct Division {
    start: usize,
    end: usize,
}

#[derive(Debug, Deserialize)]
struct Meta {
    centroids: Vec<Vec<f32>>,
    vector_division: Vec<Division>,
    vector_parameters: VectorParameters,
}

/// A query encoded for one product-quantized storage: its lookup table, `STRIDE` entries per
/// chunk.
#[derive(Debug, Clone)]
pub struct PqQuery {
    lut: Vec<f32>,
}

/// An immutable product-quantized storage.
#[derive(Debug)]
pub struct ProductQuantized {
    params: VectorParameters,
    centroids: Vec<Vec<f32>>,
    division: Vec<Division>,
    data: bytes::Bytes,
}

impl ProductQuantized {
    /// Open the product quantization in `storage_dir` (whose `quantized.config.json` names one).
    /// `None` when its meta or data file is missing.
    pub fn open(storage: &dyn Storage, storage_dir: &str) -> Result<Option<ProductQuantized>, Error> {
        let meta_path = join(storage_dir, "quantized.meta.json");
        let data_path = join(storage_dir, "quantized.data");
        if !storage.is_file(&meta_path)? || !storage.is_file(&data_path)? {
            return Ok(None);
        }
        let meta: Meta = serde_json::from_slice(&storage.read_all(&meta_path)?)
            .map_err(|e| FormatError::corrupt(&meta_path, format!("not a product quantization meta: {e}")))?;
        let bad = |m: String| -> Error { FormatError::corrupt(&meta_path, m).into() };
        let dim = meta.vector_parameters.dim;
        if dim == 0 || dim > 65_536 {
            return Err(bad(format!("dim {dim}")));
        }
        let k = meta.centroids.len();
        if k == 0 || k > STRIDE {
            return Err(bad(format!("{k} centroids")));
        }
        if let Some(c) = meta.centroids.iter().find(|c| c.len() != dim) {
            return Err(bad(format!("a centroid of {} values for dim {dim}", c.len())));
        }
        if meta.centroids.iter().flatten().any(|x| !x.is_finite()) {
            return Err(bad("non-finite centroid values".into()));
        }
        let chunks = meta.vector_division.len();
        if chunks == 0 || chunks > dim {
            return Err(bad(format!("{chunks} chunks for dim {dim}")));
        }
        if let Some(d) = meta.vector_division.iter().find(|d| d.start >= d.end || d.end > dim) {
            return Err(bad(format!("chunk {}..{} for dim {dim}", d.start, d.end)));
        }
        let data = FileSlice::open(storage, &data_path)?.read_bytes()?;
        if data.len() % chunks != 0 {
            return Err(FormatError::corrupt(
                &data_path,
                format!("{} bytes is not a multiple of {chunks}", data.len()),
            )
            .into());
        }
        if k < STRIDE {
            if let Some(c) = data.iter().find(|&&c| usize::from(c) >= k) {
                return Err(FormatError::corrupt(&data_path, format!("centroid {c} of {k}")).into());
            }
        }
        Ok(Some(ProductQuantized {
            params: meta.vector_parameters,
            centroids: meta.centroids,
            division: meta.vector_division,
            data,
        }))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.data.len() / self.division.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dimension the storage quantizes.
    pub fn dim(&self) -> usize {
        self.params.dim
    }

    /// Encode a preprocessed query (normalised for Cosine) of `dim` values.
    pub fn encode_query(&self, q: &[f32]) -> PqQuery {
        let mut lut = vec![0.0f32; self.division.len() * STRIDE];
        for (j, d) in self.division.iter().enumerate() {
            let Some(sub) = q.get(d.start..d.end) else { continue };
            for (c, centroid) in self.centroids.iter().enumerate() {
                let part = &centroid[d.start..d.end];
                let dist: f32 = match self.params.distance_type {
                    DistanceType::Dot | DistanceType::Cosine => sub.iter().zip(part).map(|(a, b)| a * b).sum(),
                    DistanceType::L1 => sub.iter().zip(part).map(|(a, b)| (a - b).abs()).sum(),
                    DistanceType::L2 => sub.iter().zip(part).map(|(a, b)| (a - b) * (a - b)).sum(),
                };
                lut[j * STRIDE + c] = if self.params.invert { -dist } else { dist };
            }
        }
        PqQuery { lut }
    }

    /// The score of a record's codes (one per chunk), in Qdrant's order of additions.
    fn score_codes(&self, q: &PqQuery, codes: &[u8]) -> f32 {
        let entry = |j: usize| q.lut[j * STRIDE + usize::from(codes[j])];
        let full = codes.len() / 4 * 4;
        let mut lanes = [0.0f32; 4];
        for j in (0..full).step_by(4) {
            for (l, lane) in lanes.iter_mut().enumerate() {
                *lane += entry(j + l);
            }
        }
        let mut sum = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
        for j in full..codes.len() {
            sum += entry(j);
        }
        sum
    }

    /// Approximate internal score of record `i`, or `None` past the end.
    pub fn score(&self, q: &PqQuery, i: u32) -> Option<f32> {
        let n = self.division.len();
        let start = (i as usize).checked_mul(n)?;
        let codes = self.data.get(start..start + n)?;
        Some(self.score_codes(q, codes))
    }
}

impl InnerScorer for ProductQuantized {
    type Query = PqQuery;

    fn dim(&self) -> usize {
        ProductQuantized::dim(self)
    }

    fn score_inner(&self, q: &PqQuery, k: u32) -> Result<Option<f32>, Error> {
        Ok(self.score(q, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pq(dim: usize, chunk: usize, dist: DistanceType, invert: bool, centroids: Vec<Vec<f32>>) -> ProductQuantized {
        let division = (0..dim).step_by(chunk).map(|s| Division { start: s, end: (s + chunk).min(dim) }).collect();
        ProductQuantized {
            params: VectorParameters { dim, distance_type: dist, invert },
            centroids,
            division,
            data: bytes::Bytes::new(),
        }
    }

    #[test]
    fn lookup_table_per_chunk_and_centroid() {
        let s = pq(3, 2, DistanceType::L2, true, vec![vec![0.0, 0.0, 0.0], vec![1.0, 2.0, 3.0]]);
        let q = s.encode_query(&[1.0, 1.0, 1.0]);
        // chunk 0 (dims 0..2): centroid 0 → 2, centroid 1 → 0 + 1; chunk 1 (dim 2): 1, 4
        assert_eq!(&q.lut[..2], &[-2.0, -1.0]);
        assert_eq!(&q.lut[STRIDE..STRIDE + 2], &[-1.0, -4.0]);
        assert_eq!(s.score_codes(&q, &[1, 0]), -2.0);
        let d = pq(3, 2, DistanceType::Dot, false, vec![vec![0.5, 0.5, 2.0]]);
        let q = d.encode_query(&[1.0, 2.0, 3.0]);
        assert_eq!(d.score_codes(&q, &[0, 0]), 1.5 + 6.0);
    }

    #[test]
    fn sums_in_four_lanes_then_the_tail() {
        // Six chunks of one value, one centroid of ones: entries are the query values.
        let s = pq(6, 1, DistanceType::Dot, false, vec![vec![1.0; 6]]);
        let v = [1e8f32, 1.0, -1e8, 1.0, 0.5, 0.25];
        let q = s.encode_query(&v);
        // lanes: 1e8, 1, -1e8, 1 → (1e8 + -1e8) + (1 + 1) = 2, then + 0.5 + 0.25
        assert_eq!(s.score_codes(&q, &[0; 6]), 2.75);
        // a plain left-to-right sum loses the ones
        assert_ne!(v.iter().sum::<f32>(), 2.75);
    }
}
