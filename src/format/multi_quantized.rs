//! Quantized multivectors (§6.7), read-only: per-point offsets into inner records, whatever
//! quantization the inner records use (binary, scalar int8, product).
//!
//! Inside `vector_storage[-<name>]/`, besides the inner records of the quantization (one record
//! per inner vector, see [`super::binary_quantized`], [`super::quantized`],
//! [`super::product_quantized`]), each point has an offset `{start: u32, count: u32}` (LE, 8
//! bytes) into the inner records: the flat file `quantized.offsets.data` (immutable storage,
//! row *i* = internal id *i*) or the chunked directory `quantized_offsets_data/` (mutable
//! storage of appendable segments, one 8-byte element per record; binary only).
//!
//! A multivector query encodes each of its inner vectors; a point's score is, summed over the
//! query's inner vectors in order, the largest score among the point's inner records (max-sim;
//! a point without inner records scores `−∞` per query vector, as in Qdrant).

use crate::error::{Error, FormatError};
use crate::format::chunked::ChunkedVectors;
use crate::storage::{join, FileSlice, Memory, Storage};

/// Bytes of one offset.
const OFFSET_SIZE: usize = 8;

/// Scoring of one inner record against one encoded inner query.
pub trait InnerScorer {
    type Query;
    /// The dimension of the inner vectors.
    fn dim(&self) -> usize;
    /// Score of inner record `k`, or `None` past the end.
    fn score_inner(&self, q: &Self::Query, k: u32) -> Result<Option<f32>, Error>;
}

#[derive(Debug)]
enum Offsets {
    Flat(bytes::Bytes),
    Chunked(ChunkedVectors),
}

/// A quantized multivector storage: inner records plus per-point offsets.
#[derive(Debug)]
pub struct MultiQuantized<S> {
    inner: S,
    offsets: Offsets,
}

impl<S: InnerScorer> MultiQuantized<S> {
    /// Read the offsets in `storage_dir` for the already opened inner records; `mutable`: the
    /// chunked directory, else the flat file. `None` when the offsets are missing.
    pub fn open(
        storage: &dyn Storage,
        storage_dir: &str,
        inner: S,
        mutable: bool,
        memory: Memory,
    ) -> Result<Option<MultiQuantized<S>>, Error> {
        let offsets = if mutable {
            let dir = join(storage_dir, "quantized_offsets_data");
            if !storage.is_dir(&dir)? {
                return Ok(None);
            }
            Offsets::Chunked(ChunkedVectors::open(storage, &dir, OFFSET_SIZE, Some(1), memory)?)
        } else {
            let path = join(storage_dir, "quantized.offsets.data");
            if !storage.is_file(&path)? {
                return Ok(None);
            }
            let data = FileSlice::open(storage, &path)?.read_bytes()?;
            if data.len() % OFFSET_SIZE != 0 {
                return Err(FormatError::corrupt(&path, format!("{} bytes is not a multiple of 8", data.len())).into());
            }
            Offsets::Flat(data)
        };
        Ok(Some(MultiQuantized { inner, offsets }))
    }

    /// The inner records.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The dimension of the inner vectors.
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Number of points (offsets).
    pub fn len(&self) -> usize {
        match &self.offsets {
            Offsets::Flat(d) => d.len() / OFFSET_SIZE,
            Offsets::Chunked(c) => c.len() as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(start, count)` of point `i`'s inner records.
    fn offset(&self, i: u32) -> Result<Option<(u32, u32)>, Error> {
        let parse = |b: &[u8]| {
            (u32::from_le_bytes(b[..4].try_into().unwrap()), u32::from_le_bytes(b[4..8].try_into().unwrap()))
        };
        match &self.offsets {
            Offsets::Flat(d) => {
                let start = (i as usize).checked_mul(OFFSET_SIZE);
                Ok(start.and_then(|s| d.get(s..s + OFFSET_SIZE)).map(parse))
            }
            Offsets::Chunked(c) => c.with_record(u64::from(i), parse),
        }
    }

    /// Approximate max-sim score of point `i`, or `None` if its offset or records are missing.
    pub fn score(&self, q: &[S::Query], i: u32) -> Result<Option<f32>, Error> {
        let Some((start, count)) = self.offset(i)? else { return Ok(None) };
        let mut best = vec![f32::NEG_INFINITY; q.len()];
        for j in 0..count {
            let Some(k) = start.checked_add(j) else { return Ok(None) };
            for (b, qi) in best.iter_mut().zip(q) {
                let Some(sim) = self.inner.score_inner(qi, k)? else { return Ok(None) };
                if *b < sim {
                    *b = sim;
                }
            }
        }
        Ok(Some(best.into_iter().sum()))
    }
}
