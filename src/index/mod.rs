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

use crate::spaces::{f32_values_as_row, score_query, score_query2, try_score_rows, QueryRef, RowRef};
use crate::types::{Datatype, Distance};

use hnsw_build::BuildScorer;

/// The rows, kept once. An f32 row is both the query (its `f32` values) and the stored row (its
/// little-endian bytes), so on a little-endian target one buffer serves as both; f16 rows are
/// kept as stored bytes plus their values widened to f32 for the query side.
#[derive(Debug)]
enum Rows {
    /// f32 on a little-endian target: the values, whose in-memory bytes are the stored row.
    F32(Vec<f32>),
    /// Stored bytes and the same rows widened to f32 (f16; f32 on a big-endian target).
    Widened { bytes: Vec<u8>, values: Vec<f32> },
    /// u8: the stored bytes are the query too.
    U8(Vec<u8>),
}

/// The stored vectors of one segment for one vector name, indexed by internal id.
#[derive(Debug)]
pub struct GraphVectors {
    distance: Distance,
    datatype: Datatype,
    dim: usize,
    rows: Rows,
    /// Number of rows held.
    count: u32,
    /// For each point: its range of rows (dense: exactly one; absent: empty).
    ranges: Vec<(u32, u32)>,
}

impl GraphVectors {
    /// `dim` elements per (inner) vector of `datatype`.
    pub fn new(distance: Distance, datatype: Datatype, dim: usize) -> Self {
        let rows = match datatype {
            Datatype::Uint8 => Rows::U8(Vec::new()),
            Datatype::Float32 if f32_values_as_row(&[]).is_some() => Rows::F32(Vec::new()),
            _ => Rows::Widened { bytes: Vec::new(), values: Vec::new() },
        };
        GraphVectors { distance, datatype, dim, rows, count: 0, ranges: Vec::new() }
    }

    fn row_len(&self) -> usize {
        self.dim * self.datatype.size().unwrap_or(4)
    }

    /// Append the next point: its stored rows (raw bytes of `row_len` each; none if absent).
    pub fn push<'r>(&mut self, rows: impl IntoIterator<Item = &'r [u8]>) {
        let start = self.count;
        let row_len = self.row_len();
        let datatype = self.datatype;
        for r in rows {
            debug_assert_eq!(r.len(), row_len);
            match &mut self.rows {
                Rows::F32(v) => {
                    v.extend(r.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                }
                Rows::Widened { bytes, values } => {
                    bytes.extend_from_slice(r);
                    values.extend(RowRef::new(datatype, r).to_f32());
                }
                Rows::U8(b) => b.extend_from_slice(r),
            }
            self.count += 1;
        }
        self.ranges.push((start, self.count));
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

    /// Row `k` as a stored row.
    fn row(&self, k: u32) -> RowRef<'_> {
        let k = k as usize;
        match &self.rows {
            Rows::F32(v) => f32_values_as_row(&v[k * self.dim..(k + 1) * self.dim])
                .expect("Rows::F32 is only chosen where values are rows"),
            Rows::Widened { bytes, .. } => {
                let n = self.row_len();
                RowRef::new(self.datatype, &bytes[k * n..(k + 1) * n])
            }
            Rows::U8(b) => RowRef::U8(&b[k * self.dim..(k + 1) * self.dim]),
        }
    }

    /// Row `k` as a query.
    fn query(&self, k: u32) -> QueryRef<'_> {
        let (k, d) = (k as usize, self.dim);
        match &self.rows {
            Rows::F32(v) => QueryRef::F32(&v[k * d..(k + 1) * d]),
            Rows::Widened { values, .. } if self.datatype == Datatype::Float16 => {
                QueryRef::F16(&values[k * d..(k + 1) * d])
            }
            Rows::Widened { values, .. } => QueryRef::F32(&values[k * d..(k + 1) * d]),
            Rows::U8(b) => QueryRef::U8(&b[k * d..(k + 1) * d]),
        }
    }

    /// The row of point `i` when it has exactly one (a dense vector).
    fn single_row(&self, i: u32) -> Option<u32> {
        let (start, end) = self.ranges[i as usize];
        (end - start == 1).then_some(start)
    }

    fn score_rows(&self, q: u32, r: u32) -> f32 {
        score_query(self.distance, self.query(q), self.row(r)).unwrap_or(f32::NEG_INFINITY)
    }

    /// Internal similarity of point `b` to point `a` (`a` as the query); MaxSim for
    /// multivectors.
    pub fn score(&self, a: u32, b: u32) -> f32 {
        if let (Some(ra), Some(rb)) = (self.single_row(a), self.single_row(b)) {
            return self.score_rows(ra, rb);
        }
        let ((a0, a1), (b0, b1)) = (self.ranges[a as usize], self.ranges[b as usize]);
        let mut total = 0.0f32;
        for q in a0..a1 {
            let mut best = f32::NEG_INFINITY;
            for k in b0..b1 {
                let s = self.score_rows(q, k);
                if s > best {
                    best = s;
                }
            }
            total += best;
        }
        total
    }

    /// Ask for the first row of each of `points` ahead of scoring them.
    pub fn prefetch(&self, points: &[u32]) {
        crate::spaces::prefetch_rows(points.iter().filter_map(|&b| {
            let &(b0, b1) = self.ranges.get(b as usize)?;
            (b1 > b0).then(|| self.row(b0))
        }));
    }
}

impl BuildScorer for GraphVectors {
    fn score(&self, a: u32, b: u32) -> f32 {
        GraphVectors::score(self, a, b)
    }
    fn prefetch(&self, points: &[u32]) {
        GraphVectors::prefetch(self, points)
    }
    /// Single-row points are scored in one interleaved pass ([`score_query2`], the same bits).
    fn score2(&self, a: u32, b: u32, c: u32) -> (f32, f32) {
        if let (Some(ra), Some(rb), Some(rc)) = (self.single_row(a), self.single_row(b), self.single_row(c)) {
            if let Ok(pair) = score_query2(self.distance, self.query(ra), self.row(rb), self.row(rc)) {
                return pair;
            }
        }
        (self.score(a, b), self.score(a, c))
    }
    /// Single-row points are scored in one interleaved pass ([`try_score_rows`], the same bits).
    fn score8(&self, a: u32, b: [u32; 8]) -> [f32; 8] {
        if let Some(ra) = self.single_row(a) {
            let rows = b.map(|b| self.single_row(b));
            if rows.iter().all(Option::is_some) {
                let rows = rows.map(|r| self.row(r.expect("checked above")));
                if let Some(scores) = try_score_rows(self.distance, self.query(ra), rows) {
                    return scores;
                }
            }
        }
        b.map(|b| self.score(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spaces::{encode_row, score_row, QueryVector};

    fn rows(datatype: Datatype, n: usize, dim: usize) -> Vec<Vec<u8>> {
        let mut x = 0x2545_f491u32;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        if datatype == Datatype::Uint8 {
                            (x % 256) as f32
                        } else {
                            (x % 2001) as f32 / 1000.0 - 1.0
                        }
                    })
                    .collect();
                encode_row(datatype, &v)
            })
            .collect()
    }

    /// Scores from the one-copy row buffers equal the crate's scoring of the stored row as a
    /// prepared query against the other row (what the build scored before).
    #[test]
    fn scores_equal_the_row_kernels_for_every_datatype_and_distance() {
        for datatype in [Datatype::Float32, Datatype::Float16, Datatype::Uint8] {
            for distance in [Distance::Cosine, Distance::Dot, Distance::Euclid, Distance::Manhattan] {
                let dim = 19;
                let data = rows(datatype, 6, dim);
                let mut g = GraphVectors::new(distance, datatype, dim);
                for r in &data {
                    g.push([r.as_slice()]);
                }
                g.push(std::iter::empty());
                assert_eq!(g.len(), 7);
                assert!(g.has(5) && !g.has(6) && !g.has(7));
                for a in 0..6u32 {
                    let q = match RowRef::new(datatype, &data[a as usize]) {
                        RowRef::F32(b) => QueryVector::F32(RowRef::F32(b).to_f32()),
                        RowRef::F16(b) => QueryVector::F16(RowRef::F16(b).to_f32()),
                        RowRef::U8(b) => QueryVector::U8(b.to_vec()),
                    };
                    for b in 0..6u32 {
                        g.prefetch(&[b]);
                        let want = score_row(distance, &q, RowRef::new(datatype, &data[b as usize])).unwrap();
                        let got = g.score(a, b);
                        assert_eq!(got.to_bits(), want.to_bits(), "{datatype:?} {distance:?} {a} {b}");
                        let c = (b + 1) % 6;
                        let (x, y) = BuildScorer::score2(&g, a, b, c);
                        assert_eq!((x.to_bits(), y.to_bits()), (got.to_bits(), g.score(a, c).to_bits()));
                    }
                    // eight at a time (f32 rows in one pass; a point without a vector falls back)
                    for pts in [[0, 1, 2, 3, 4, 5, 0, 1], [5, 4, 3, 2, 1, 0, 6, 2]] {
                        let got = BuildScorer::score8(&g, a, pts).map(f32::to_bits);
                        assert_eq!(got, pts.map(|b| g.score(a, b).to_bits()), "{datatype:?} {distance:?} {a} {pts:?}");
                    }
                }
                g.prefetch(&[6, 99, 0, 5]);
            }
        }
    }

    #[test]
    fn multivectors_score_with_maxsim() {
        let dim = 4;
        let data = rows(Datatype::Float32, 5, dim);
        let mut g = GraphVectors::new(Distance::Dot, Datatype::Float32, dim);
        g.push([data[0].as_slice(), data[1].as_slice()]);
        g.push([data[2].as_slice(), data[3].as_slice(), data[4].as_slice()]);
        let s = |a: usize, b: usize| {
            score_row(Distance::Dot, &QueryVector::F32(RowRef::F32(&data[a]).to_f32()), RowRef::F32(&data[b])).unwrap()
        };
        let want =
            [0, 1].iter().map(|&a| [2, 3, 4].iter().map(|&b| s(a, b)).fold(f32::NEG_INFINITY, f32::max)).sum::<f32>();
        assert_eq!(g.score(0, 1), want);
        let back =
            [2, 3, 4].iter().map(|&a| [0, 1].iter().map(|&b| s(a, b)).fold(f32::NEG_INFINITY, f32::max)).sum::<f32>();
        assert_eq!(g.score(1, 0), back);
    }

    /// The build's hints and paired scoring leave the graph exactly as plain one-at-a-time
    /// scoring builds it.
    #[test]
    fn hinted_paired_build_equals_the_plain_build() {
        use crate::index::hnsw_build::{build_hnsw, HnswBuildParams};
        let dim = 24;
        let data = rows(Datatype::Float32, 1500, dim);
        let mut g = GraphVectors::new(Distance::Euclid, Datatype::Float32, dim);
        for r in &data {
            g.push([r.as_slice()]);
        }
        let indexed = vec![true; data.len()];
        let params = HnswBuildParams { m: 8, m0: 16, ef_construct: 40, extra_entry_points: 3, seed: 7 };
        let hinted = build_hnsw(&indexed, params, &g);
        let plain = build_hnsw(&indexed, params, &|a: u32, b: u32| g.score(a, b));
        assert_eq!(hinted.links, plain.links);
        assert_eq!(hinted.entry_points, plain.entry_points);
        assert!(hinted.links.iter().filter(|l| l.len() > 1).count() > 0);
    }
}
