//! Vector index building (above `format` and `spaces`, below `shard`).
//!
//! [`hnsw_build`] builds Qdrant-compatible HNSW graphs; [`GraphVectors`] holds the stored
//! vectors of one segment and scores pairs of them with the metric's internal similarity, as
//! Qdrant's build does: a stored row is the query (no second preprocessing, so stored Cosine
//! rows stay as normalised as they are), scored with the crate's kernels ([`crate::spaces`],
//! SIMD for f32 and u8). Multivectors score with MaxSim: for each vector of the first point, the
//! best similarity over the vectors of the second, summed.

pub mod hnsw_build;
pub mod payload_blocks;

use crate::spaces::{score_row, QueryVector, RowRef};
use crate::types::{Datatype, Distance};

/// The stored vectors of one segment for one vector name, indexed by internal id.
#[derive(Debug)]
pub struct GraphVectors {
    distance: Distance,
    datatype: Datatype,
    /// Raw row bytes of every stored (inner) vector, back to back.
    bytes: Vec<u8>,
    row_len: usize,
    /// For each point: its range of rows (dense: exactly one; absent: empty).
    ranges: Vec<(u32, u32)>,
    /// The stored rows as queries, same order as the rows.
    queries: Vec<QueryVector>,
}

impl GraphVectors {
    /// `dim` elements per (inner) vector of `datatype`.
    pub fn new(distance: Distance, datatype: Datatype, dim: usize) -> Self {
        GraphVectors {
            distance,
            datatype,
            bytes: Vec::new(),
            row_len: dim * datatype.size().unwrap_or(4),
            ranges: Vec::new(),
            queries: Vec::new(),
        }
    }

    /// Append the next point: its stored rows (raw bytes of `row_len` each; none if absent).
    pub fn push<'r>(&mut self, rows: impl IntoIterator<Item = &'r [u8]>) {
        let start = self.queries.len() as u32;
        for r in rows {
            debug_assert_eq!(r.len(), self.row_len);
            self.bytes.extend_from_slice(r);
            self.queries.push(match RowRef::new(self.datatype, r) {
                RowRef::F32(b) => {
                    QueryVector::F32(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
                }
                RowRef::F16(b) => QueryVector::F16(
                    b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                ),
                RowRef::U8(b) => QueryVector::U8(b.to_vec()),
            });
        }
        self.ranges.push((start, self.queries.len() as u32));
    }

    /// Number of points pushed.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether point `i` has a vector.
    pub fn has(&self, i: u32) -> bool {
        self.ranges.get(i as usize).is_some_and(|r| r.1 > r.0)
    }

    fn row(&self, k: u32) -> RowRef<'_> {
        let s = k as usize * self.row_len;
        RowRef::new(self.datatype, &self.bytes[s..s + self.row_len])
    }

    /// Internal similarity of point `b` to point `a` (`a` as the query); MaxSim for
    /// multivectors.
    pub fn score(&self, a: u32, b: u32) -> f32 {
        let (a0, a1) = self.ranges[a as usize];
        let (b0, b1) = self.ranges[b as usize];
        if a1 - a0 == 1 && b1 - b0 == 1 {
            return score_row(self.distance, &self.queries[a0 as usize], self.row(b0)).unwrap_or(f32::NEG_INFINITY);
        }
        let mut total = 0.0f32;
        for q in &self.queries[a0 as usize..a1 as usize] {
            let mut best = f32::NEG_INFINITY;
            for k in b0..b1 {
                let s = score_row(self.distance, q, self.row(k)).unwrap_or(f32::NEG_INFINITY);
                if s > best {
                    best = s;
                }
            }
            total += best;
        }
        total
    }
}
