//! Distance kernels and Qdrant's score conventions (spec §13).
//!
//! Internal scores are "bigger is better" for every distance; public (postprocessed) scores are
//! the similarity for Cosine/Dot and the distance for Euclid/Manhattan.
//!
//! | Distance  | stored row                    | internal `s(q, v)`                | public       |
//! |-----------|-------------------------------|-----------------------------------|--------------|
//! | Cosine    | f32/f16 L2-normalised; u8 raw | `Σ q·v` (u8: `Σqv / √(Σq²·Σv²)`)  | `s`          |
//! | Dot       | raw                           | `Σ q·v`                           | `s`          |
//! | Euclid    | raw                           | `-Σ (q−v)²`                       | `√|s|`       |
//! | Manhattan | raw                           | `-Σ |q−v|`                        | `|s|`        |
//!
//! Stored rows are read from their raw little-endian bytes ([`RowRef`]): `f32` 4 bytes per
//! element, `f16` 2 bytes, `u8` 1 byte. f32 and f16 kernels widen each element to f32 (exactly)
//! and sum in sixteen f32 accumulators reduced in a fixed order ([`simd`]: the same bits on every
//! target); u8 kernels accumulate exactly in `i32` (wrapping, as Qdrant's release build) and
//! convert the sum to f32 once.
//!
//! Queries are preprocessed ([`preprocess`]: Cosine normalisation for f32/f16 storage) and then
//! converted to the storage datatype ([`QueryVector::new`]): f16 rounds to nearest, u8 uses
//! Rust's saturating `as u8` (NaN → 0, negatives → 0, fractions truncated).

pub mod simd;

use half::f16;
use simd::{F32Op, U8Op};

use crate::error::Error;
use crate::types::{Datatype, Distance, SparseVector};

pub use crate::types::RowRef;

/// Encode stored-form f32 values as the raw row bytes of `datatype`.
pub fn encode_row(datatype: Datatype, v: &[f32]) -> Vec<u8> {
    match datatype {
        Datatype::Float16 => v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
        Datatype::Uint8 => v.iter().map(|&x| x as u8).collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Whether a squared norm means "leave the vector as it is" (zero or already unit length).
pub fn is_length_zero_or_normalized(norm_sq: f32) -> bool {
    norm_sq < f32::EPSILON || (norm_sq - 1.0).abs() <= 1.0e-6
}

/// L2-normalise in place (f32 arithmetic), unless zero or already normalised, with the
/// roundings of Qdrant's Cosine preprocessing on x86-64 with AVX and FMA (what its servers and
/// qdrant-edge-py run), so the normalised values are bit for bit Qdrant's:
/// * 32 values or more: the squared norm accumulates the first `32·⌊n/32⌋` values with fused
///   multiply-adds into 32 lanes (value `i` into lane `i mod 32`), the lanes are summed as
///   Qdrant's AVX horizontal sum does ([`hsum_avx_lanes`]), the rest of the squares added one by
///   one; then every value is multiplied by `1 / sqrt(norm²)`;
/// * 16 to 31 values: 16 lanes of rounded squares (value `i` into lane `i mod 16`, first
///   `16·⌊n/16⌋` values), each group of four lanes summed as `(l0 + l2) + (l1 + l3)`, the four
///   groups added in order, then the rest of the squares; every value is divided by the norm;
/// * fewer: the squares summed in order; every value divided by the norm.
///
/// Products and sums that are not fused round as usual; these orders matter where scores are
/// compared bit for bit (product quantization lookup tables, which are linear in the query).
pub fn normalize(v: &mut [f32]) {
    let n = v.len();
    let norm_sq = if n >= 32 {
        let m = n - n % 32;
        let mut lanes = [0.0f32; 32];
        for block in v[..m].chunks_exact(32) {
            for (l, &x) in lanes.iter_mut().zip(block) {
                *l = x.mul_add(x, *l);
            }
        }
        let mut s = hsum_avx_lanes(&lanes);
        for &x in &v[m..] {
            s += x * x;
        }
        s
    } else if n >= 16 {
        let mut lanes = [0.0f32; 16];
        for (l, &x) in lanes.iter_mut().zip(&v[..16]) {
            *l += x * x;
        }
        let h = |g: &[f32]| (g[0] + g[2]) + (g[1] + g[3]);
        let mut s = h(&lanes[0..4]) + h(&lanes[4..8]) + h(&lanes[8..12]) + h(&lanes[12..16]);
        for &x in &v[16..] {
            s += x * x;
        }
        s
    } else {
        v.iter().map(|x| x * x).sum()
    };
    if is_length_zero_or_normalized(norm_sq) {
        return;
    }
    let len = norm_sq.sqrt();
    if n >= 32 {
        let inv = 1.0 / len;
        for x in v.iter_mut() {
            *x *= inv;
        }
    } else {
        for x in v.iter_mut() {
            *x /= len;
        }
    }
}

/// The sum of 32 lanes (four 8-lane registers `a`, `b`, `c`, `d`) as Qdrant's AVX code adds
/// them: `t = (a + b) + (c + d)` lane-wise, `u[k] = t[k + 4] + t[k]`, then
/// `(u0 + u1) + (u2 + u3)`.
fn hsum_avx_lanes(l: &[f32; 32]) -> f32 {
    let mut t = [0.0f32; 8];
    for (k, tk) in t.iter_mut().enumerate() {
        *tk = (l[k] + l[8 + k]) + (l[16 + k] + l[24 + k]);
    }
    let u: [f32; 4] = std::array::from_fn(|k| t[k + 4] + t[k]);
    (u[0] + u[1]) + (u[2] + u[3])
}

/// Insert/query preprocessing: Cosine vectors stored as f32 or f16 are normalised; everything
/// else is left unchanged (uint8 Cosine keeps raw values, the norm is computed when scoring).
pub fn preprocess(distance: Distance, datatype: Datatype, v: &mut [f32]) {
    if distance == Distance::Cosine && matches!(datatype, Datatype::Float32 | Datatype::Float16) {
        normalize(v);
    }
}

/// A query converted to the storage datatype of the vectors it is scored against.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryVector {
    F32(Vec<f32>),
    /// Rounded to f16 and kept widened to f32 (every value exact in f16), as the kernels use it.
    F16(Vec<f32>),
    U8(Vec<u8>),
}

impl QueryVector {
    /// Preprocess `query` for `distance` and convert it to `datatype`.
    pub fn new(distance: Distance, datatype: Datatype, query: &[f32]) -> Result<QueryVector, Error> {
        let mut q = query.to_vec();
        preprocess(distance, datatype, &mut q);
        Ok(match datatype {
            Datatype::Float32 => QueryVector::F32(q),
            Datatype::Float16 => QueryVector::F16(q.iter().map(|&x| f16::from_f32(x).to_f32()).collect()),
            // `as` saturates and maps NaN to 0
            Datatype::Uint8 => QueryVector::U8(q.iter().map(|&x| x as u8).collect()),
            other => return Err(Error::Unsupported(format!("vector datatype {other:?}"))),
        })
    }

    pub fn dim(&self) -> usize {
        self.view().dim()
    }

    /// The converted query widened back to f32 (what the kernels actually see).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            QueryVector::F32(v) => v.clone(),
            QueryVector::F16(v) => v.clone(),
            QueryVector::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
        }
    }
}

/// A borrowed prepared query ([`QueryVector`] without owning its values), for callers that keep
/// many queries in one buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueryRef<'a> {
    F32(&'a [f32]),
    /// f16 values widened to f32.
    F16(&'a [f32]),
    U8(&'a [u8]),
}

impl QueryRef<'_> {
    pub fn dim(&self) -> usize {
        match self {
            QueryRef::F32(v) | QueryRef::F16(v) => v.len(),
            QueryRef::U8(v) => v.len(),
        }
    }
}

impl QueryVector {
    pub fn view(&self) -> QueryRef<'_> {
        match self {
            QueryVector::F32(v) => QueryRef::F32(v),
            QueryVector::F16(v) => QueryRef::F16(v),
            QueryVector::U8(v) => QueryRef::U8(v),
        }
    }
}

/// Internal score of a prepared query against a stored row. Errors if the datatypes or
/// dimensions differ (a corrupt or mismatched row).
#[inline]
pub fn score_row(distance: Distance, query: &QueryVector, row: RowRef) -> Result<f32, Error> {
    score_query(distance, query.view(), row)
}

/// [`score_row`] with a borrowed query. Inlined, with the error built out of line: a plain
/// scan or a graph step calls it once per point, and a `Result` of this crate's error type
/// returned through the layers of a row lookup cost a fifth of an exact search's time in stack
/// copies; inlined, the score stays in registers.
#[inline]
pub fn score_query(distance: Distance, query: QueryRef, row: RowRef) -> Result<f32, Error> {
    try_score_query(distance, query, row).ok_or_else(|| misfit(query, row))
}

/// Why a row cannot be scored against a query.
#[cold]
#[inline(never)]
fn misfit(query: QueryRef, row: RowRef) -> Error {
    if query.dim() != row.dim() || row_len_is_ragged(row) {
        return Error::Internal(format!(
            "vector dimension mismatch: query {} vs stored row {} ({} bytes)",
            query.dim(),
            row.dim(),
            row_bytes(row).len()
        ));
    }
    Error::Internal("query and stored row datatypes differ".into())
}

/// [`score_query`] where the row fits the query; `None` where it would be an error.
#[inline]
pub fn try_score_query(distance: Distance, query: QueryRef, row: RowRef) -> Option<f32> {
    // f32 rows inline (what most segments hold); the other datatypes out of line, so that the
    // f32 path stays small enough to be inlined into scans in wasm builds too.
    if let (QueryRef::F32(q), RowRef::F32(b)) = (query, row) {
        return (b.len() == 4 * q.len()).then(|| f32_kernel(distance, q, b));
    }
    try_score_other(distance, query, row)
}

/// [`try_score_query`] for f16 and u8 rows (and mismatches; a fitting f32 row never gets here).
#[inline(never)]
fn try_score_other(distance: Distance, query: QueryRef, row: RowRef) -> Option<f32> {
    if query.dim() != row.dim() || row_len_is_ragged(row) {
        return None;
    }
    match (query, row) {
        (QueryRef::F16(q), RowRef::F16(b)) => Some(f16_kernel(distance, q, b)),
        (QueryRef::U8(q), RowRef::U8(b)) => Some(byte_kernel(distance, q, b)),
        _ => None,
    }
}

/// [`score_row`] against two rows; f32 rows are scored in one interleaved pass
/// ([`simd::f32_sum2`]) with the same results as two calls.
#[inline]
pub fn score_rows2(distance: Distance, query: &QueryVector, a: RowRef, b: RowRef) -> Result<(f32, f32), Error> {
    score_query2(distance, query.view(), a, b)
}

/// [`score_rows2`] with a borrowed query (inlined as [`score_query`]).
#[inline]
pub fn score_query2(distance: Distance, query: QueryRef, a: RowRef, b: RowRef) -> Result<(f32, f32), Error> {
    match try_score_query2(distance, query, a, b) {
        Some(scores) => Ok(scores),
        None => Ok((score_query(distance, query, a)?, score_query(distance, query, b)?)),
    }
}

/// [`score_query2`] where both rows fit the query; `None` where it would be an error.
#[inline]
pub fn try_score_query2(distance: Distance, query: QueryRef, a: RowRef, b: RowRef) -> Option<(f32, f32)> {
    if let (QueryRef::F32(q), RowRef::F32(ra), RowRef::F32(rb)) = (query, a, b) {
        if ra.len() == 4 * q.len() && rb.len() == 4 * q.len() {
            return Some(match distance {
                Distance::Cosine | Distance::Dot => simd::f32_sum2(F32Op::Dot, q, ra, rb),
                Distance::Euclid => {
                    let (x, y) = simd::f32_sum2(F32Op::L2, q, ra, rb);
                    (-x, -y)
                }
                Distance::Manhattan => {
                    let (x, y) = simd::f32_sum2(F32Op::L1, q, ra, rb);
                    (-x, -y)
                }
            });
        }
    }
    Some((try_score_query(distance, query, a)?, try_score_query(distance, query, b)?))
}

/// The scores of `N` f32 rows against an f32 query, in one interleaved pass
/// ([`simd::f32_sum_n`], the same bits as `N` [`score_query`] calls); `None` unless the query
/// and every row are f32 of the query's length (then score them one by one).
#[inline]
pub fn try_score_rows<const N: usize>(distance: Distance, query: QueryRef, rows: [RowRef; N]) -> Option<[f32; N]> {
    let QueryRef::F32(q) = query else { return None };
    let mut bytes: [&[u8]; N] = [&[]; N];
    for (b, row) in bytes.iter_mut().zip(rows) {
        match row {
            RowRef::F32(r) if r.len() == 4 * q.len() => *b = r,
            _ => return None,
        }
    }
    Some(match distance {
        Distance::Cosine | Distance::Dot => simd::f32_sum_n(F32Op::Dot, q, bytes),
        Distance::Euclid => simd::f32_sum_n(F32Op::L2, q, bytes).map(|x| -x),
        Distance::Manhattan => simd::f32_sum_n(F32Op::L1, q, bytes).map(|x| -x),
    })
}

/// f32 values held in memory viewed as their stored row, where that needs no copy: on a
/// little-endian target their bytes are the row's little-endian bytes; `None` elsewhere.
#[inline]
pub fn f32_values_as_row(v: &[f32]) -> Option<RowRef<'_>> {
    #[cfg(target_endian = "little")]
    {
        Some(RowRef::F32(bytemuck::cast_slice(v)))
    }
    #[cfg(not(target_endian = "little"))]
    {
        let _ = v;
        None
    }
}

/// Request the bytes of several rows ahead of scoring them ([`simd::prefetch_all`]).
#[inline]
pub fn prefetch_rows<'a>(rows: impl IntoIterator<Item = RowRef<'a>>) {
    simd::prefetch_all(rows.into_iter().map(row_bytes));
}

fn row_bytes(r: RowRef<'_>) -> &[u8] {
    match r {
        RowRef::F32(b) | RowRef::F16(b) | RowRef::U8(b) => b,
    }
}

fn row_len_is_ragged(r: RowRef) -> bool {
    match r {
        RowRef::F32(b) => b.len() % 4 != 0,
        RowRef::F16(b) => b.len() % 2 != 0,
        RowRef::U8(_) => false,
    }
}

/// Convenience: preprocess + convert `query` and score it against `row` of the given datatype.
pub fn score(distance: Distance, datatype: Datatype, query: &[f32], row: RowRef) -> Result<f32, Error> {
    score_row(distance, &QueryVector::new(distance, datatype, query)?, row)
}

/// f32 kernels over raw little-endian row bytes ([`simd::f32_sum`]: explicit simd128 / SSE2,
/// bit-identical to its scalar reference). Lengths are checked by the caller.
fn f32_kernel(distance: Distance, q: &[f32], b: &[u8]) -> f32 {
    match distance {
        Distance::Cosine | Distance::Dot => simd::f32_sum(F32Op::Dot, q, b),
        Distance::Euclid => -simd::f32_sum(F32Op::L2, q, b),
        Distance::Manhattan => -simd::f32_sum(F32Op::L1, q, b),
    }
}

/// f16 rows: widened exactly to f32 in the kernel ([`simd::f16_sum`]), summed like f32 rows.
fn f16_kernel(distance: Distance, q: &[f32], b: &[u8]) -> f32 {
    match distance {
        // stored Cosine rows are normalised and so is the query: a plain dot product
        Distance::Cosine | Distance::Dot => simd::f16_sum(F32Op::Dot, q, b),
        Distance::Euclid => -simd::f16_sum(F32Op::L2, q, b),
        Distance::Manhattan => -simd::f16_sum(F32Op::L1, q, b),
    }
}

/// u8 kernels: exact `i32` sums (wrapping, as Qdrant's release build) from [`simd::u8_sum`].
fn byte_kernel(distance: Distance, q: &[u8], v: &[u8]) -> f32 {
    match distance {
        Distance::Dot => simd::u8_sum(U8Op::Dot, q, v) as f32,
        Distance::Cosine => {
            let (n1, n2) = (simd::u8_sum(U8Op::Dot, q, q), simd::u8_sum(U8Op::Dot, v, v));
            if n1 == 0 || n2 == 0 {
                return 0.0;
            }
            simd::u8_sum(U8Op::Dot, q, v) as f32 / (n1 as f32 * n2 as f32).sqrt()
        }
        Distance::Euclid => -(simd::u8_sum(U8Op::L2, q, v) as f32),
        Distance::Manhattan => -(simd::u8_sum(U8Op::L1, q, v) as f32),
    }
}

/// Public score from an internal one.
pub fn postprocess(distance: Distance, internal: f32) -> f32 {
    match distance {
        Distance::Cosine | Distance::Dot => internal,
        Distance::Euclid => internal.abs().sqrt(),
        Distance::Manhattan => internal.abs(),
    }
}

/// Whether public score `a` ranks strictly before public score `b`.
pub fn is_better(distance: Distance, a: f32, b: f32) -> bool {
    match distance {
        Distance::Cosine | Distance::Dot => a > b,
        Distance::Euclid | Distance::Manhattan => a < b,
    }
}

/// `score_threshold` on public scores: kept iff strictly better than the threshold.
pub fn passes_threshold(distance: Distance, public_score: f32, threshold: f32) -> bool {
    is_better(distance, public_score, threshold)
}

/// The internal-score threshold equivalent to a public one (for filtering before
/// postprocessing): Euclid `-t²`, Manhattan `-t`, others unchanged. Kept iff `internal > result`.
pub fn internal_threshold(distance: Distance, public_threshold: f32) -> f32 {
    match distance {
        Distance::Cosine | Distance::Dot => public_threshold,
        Distance::Euclid => -(public_threshold * public_threshold),
        Distance::Manhattan => -public_threshold,
    }
}

/// Multivector `max_sim`: for each query vector the best internal score over the stored
/// vectors, summed (f32, in query order). Postprocess the sum for the public score.
pub fn max_sim(distance: Distance, query: &[QueryVector], rows: &[RowRef]) -> Result<f32, Error> {
    let mut total = 0.0f32;
    for q in query {
        let mut best = f32::NEG_INFINITY;
        for r in rows {
            let s = score_row(distance, q, *r)?;
            if s > best {
                best = s;
            }
        }
        total += best;
    }
    Ok(total)
}

/// Sparse dot product over the indices both vectors hold (missing weights count as 0). Both
/// vectors must be sorted by index (see [`SparseVector::sorted`]).
pub fn sparse_dot(a: &SparseVector, b: &SparseVector) -> f32 {
    let (mut i, mut j) = (0, 0);
    let mut sum = 0.0f32;
    while let (Some(&ia), Some(&ib)) = (a.indices.get(i), b.indices.get(j)) {
        match ia.cmp(&ib) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if let (Some(x), Some(y)) = (a.values.get(i), b.values.get(j)) {
                    sum += x * y;
                }
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// A vector as it is stored: preprocessed for `distance` (Cosine normalisation) and rounded to
/// `datatype` (f16 round-to-nearest, uint8 saturating truncation), widened back to f32.
pub fn to_stored(distance: Distance, datatype: Datatype, v: &[f32]) -> Vec<f32> {
    let mut out = v.to_vec();
    preprocess(distance, datatype, &mut out);
    match datatype {
        Datatype::Float16 => out.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
        Datatype::Uint8 => out.iter().map(|&x| f32::from(x as u8)).collect(),
        _ => out,
    }
}

/// Qdrant's IDF: `ln((n - df + 0.5) / (df + 0.5) + 1)`.
pub fn idf(n: f32, df: f32) -> f32 {
    ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn f16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect()
    }

    #[test]
    fn cosine_normalisation_rule() {
        let mut v = [1.0, 1.0, 0.0, 0.5];
        preprocess(Distance::Cosine, Datatype::Float32, &mut v);
        assert!((v[0] - 0.6666667).abs() < 1e-6 && (v[3] - 0.33333334).abs() < 1e-6);
        let mut z = [0.0, 0.0];
        preprocess(Distance::Cosine, Datatype::Float32, &mut z);
        assert_eq!(z, [0.0, 0.0]);
        let mut u = [1.0, 0.0000001];
        preprocess(Distance::Cosine, Datatype::Float32, &mut u);
        assert_eq!(u, [1.0, 0.0000001], "already normalised within 1e-6");
        let mut raw = [3.0, 4.0];
        preprocess(Distance::Cosine, Datatype::Uint8, &mut raw);
        assert_eq!(raw, [3.0, 4.0], "uint8 cosine is not normalised");
        preprocess(Distance::Dot, Datatype::Float32, &mut raw);
        assert_eq!(raw, [3.0, 4.0]);
    }

    #[test]
    fn f32_kernels_and_postprocess() {
        let row = f32_bytes(&[1.0, 2.0, 3.0]);
        let q = [2.0, 0.0, -1.0];
        let dot = score(Distance::Dot, Datatype::Float32, &q, RowRef::F32(&row)).unwrap();
        assert_eq!(dot, -1.0);
        let eu = score(Distance::Euclid, Datatype::Float32, &q, RowRef::F32(&row)).unwrap();
        assert_eq!(eu, -(1.0 + 4.0 + 16.0));
        assert!((postprocess(Distance::Euclid, eu) - 21f32.sqrt()).abs() < 1e-6);
        let mh = score(Distance::Manhattan, Datatype::Float32, &q, RowRef::F32(&row)).unwrap();
        assert_eq!(mh, -7.0);
        assert_eq!(postprocess(Distance::Manhattan, mh), 7.0);
        // cosine: stored row normalised, query normalised by `score`
        let mut stored = [1.0, 2.0, 3.0];
        normalize(&mut stored);
        let cos = score(Distance::Cosine, Datatype::Float32, &q, RowRef::F32(&f32_bytes(&stored))).unwrap();
        let expect = -1.0 / (14f32.sqrt() * 5f32.sqrt());
        assert!((cos - expect).abs() < 1e-6, "{cos} vs {expect}");
    }

    #[test]
    fn f16_query_is_rounded() {
        let row = f16_bytes(&[0.1, 0.2]);
        let s = score(Distance::Dot, Datatype::Float16, &[0.1, 0.2], RowRef::F16(&row)).unwrap();
        let r = f16::from_f32(0.1).to_f32().powi(2) + f16::from_f32(0.2).to_f32().powi(2);
        assert_eq!(s, r);
        assert_ne!(s, 0.1f32 * 0.1 + 0.2 * 0.2);
    }

    #[test]
    fn uint8_conversion_and_kernels() {
        let q = QueryVector::new(Distance::Dot, Datatype::Uint8, &[-1.0, 0.9, 1.7, 300.0, f32::NAN]).unwrap();
        assert_eq!(q, QueryVector::U8(vec![0, 0, 1, 255, 0]));
        let row = [2u8, 3, 4, 5, 6];
        assert_eq!(score_row(Distance::Dot, &q, RowRef::U8(&row)).unwrap(), (4 + 255 * 5) as f32);
        assert_eq!(score_row(Distance::Euclid, &q, RowRef::U8(&row)).unwrap(), -((4 + 9 + 9 + 250 * 250 + 36) as f32));
        assert_eq!(score_row(Distance::Manhattan, &q, RowRef::U8(&row)).unwrap(), -((2 + 3 + 3 + 250 + 6) as f32));
        let cq = QueryVector::new(Distance::Cosine, Datatype::Uint8, &[3.0, 4.0]).unwrap();
        let c = score_row(Distance::Cosine, &cq, RowRef::U8(&[4, 3])).unwrap();
        assert!((c - 24.0 / 25.0).abs() < 1e-6);
        assert_eq!(score_row(Distance::Cosine, &cq, RowRef::U8(&[0, 0])).unwrap(), 0.0);
    }

    #[test]
    fn mismatches_are_errors() {
        let q = QueryVector::new(Distance::Dot, Datatype::Float32, &[1.0, 2.0]).unwrap();
        assert!(score_row(Distance::Dot, &q, RowRef::F32(&[0u8; 12])).is_err());
        assert!(score_row(Distance::Dot, &q, RowRef::F32(&[0u8; 9])).is_err());
        assert!(score_row(Distance::Dot, &q, RowRef::F16(&[0u8; 4])).is_err());
        assert!(QueryVector::new(Distance::Dot, Datatype::Turbo4, &[1.0]).is_err());
    }

    #[test]
    fn thresholds_and_order() {
        assert!(passes_threshold(Distance::Cosine, 0.5, 0.4));
        assert!(!passes_threshold(Distance::Dot, 0.4, 0.4));
        assert!(passes_threshold(Distance::Euclid, 1.0, 1.5));
        assert!(!passes_threshold(Distance::Manhattan, 1.5, 1.5));
        assert_eq!(internal_threshold(Distance::Euclid, 3.0), -9.0);
        assert!(is_better(Distance::Euclid, 0.1, 0.2));
    }

    #[test]
    fn multivector_max_sim_manhattan() {
        let q: Vec<QueryVector> = [[0.0, 0.0], [1.0, 1.0]]
            .iter()
            .map(|v| QueryVector::new(Distance::Manhattan, Datatype::Float32, v).unwrap())
            .collect();
        let r1 = f32_bytes(&[0.5, 0.0]);
        let r2 = f32_bytes(&[1.0, 2.0]);
        let s = max_sim(Distance::Manhattan, &q, &[RowRef::F32(&r1), RowRef::F32(&r2)]).unwrap();
        // q0: best -0.5 (r1); q1: best -1.0 (r2: 0 + 1) vs r1: -1.5
        assert_eq!(s, -1.5);
        assert_eq!(postprocess(Distance::Manhattan, s), 1.5);
    }

    #[test]
    fn sparse_dot_common_indices() {
        let a = SparseVector { indices: vec![1, 3, 7], values: vec![1.0, 2.0, 3.0] };
        let b = SparseVector { indices: vec![0, 3, 7, 9], values: vec![5.0, 0.5, -1.0, 4.0] };
        assert_eq!(sparse_dot(&a, &b), 1.0 - 3.0);
        assert_eq!(sparse_dot(&a, &SparseVector::default()), 0.0);
    }
}
