//! Immutable sparse inverted index (`vector_index-<name>/`): document frequencies only.
//!
//! Search scores sparse vectors from the storage (exact); what the index adds is the corpus
//! statistics Qdrant's `idf` modifier uses, which count every vector the index was built with
//! (points deleted since stay counted). Files (spec §10):
//!
//! | file | content |
//! |---|---|
//! | `sparse_index_config.json` | `{"index_type", "datatype"?}` — the weight type sets the header layout |
//! | `indices_tracker.json` | `{"map": {"<dimension id>": <posting list number>}}` |
//! | `inverted_index_config.json` | `{"posting_count", "vector_count", "total_sparse_size"}` |
//! | `inverted_index.dat` | `posting_count` headers, then the bodies in the same order |
//!
//! Header (LE): `ids_start u64 | last_id u32 | ids_len u32 | chunks_count u32 | params | pad`,
//! 24 bytes for `float32`/`float16` weights, 32 for `uint8`. A body holds `ids_len` bytes of
//! packed ids, `chunks_count` chunks of 128 postings (`8 + 128 × weight` bytes each: 520, 264 or
//! 136), then 8-byte remainder elements up to the next body (or the end of the file). So a
//! posting list's length is `128 × chunks_count + remainder bytes / 8`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, FormatError};
use crate::format::le::{u32_at, u64_at};
use crate::storage::{join, Storage};

/// Document statistics of one immutable sparse index.
#[derive(Debug, Clone, Default)]
pub struct SparseIndexStats {
    /// Vectors the index was built with (`vector_count`).
    pub vector_count: usize,
    /// Posting list length per dimension id.
    pub df: BTreeMap<u32, usize>,
}

#[derive(Deserialize)]
struct IndexConfig {
    #[serde(default)]
    datatype: Option<String>,
}

#[derive(Deserialize)]
struct Tracker {
    map: BTreeMap<String, u32>,
}

#[derive(Deserialize)]
struct InvertedConfig {
    posting_count: u64,
    vector_count: u64,
}

fn json<T: serde::de::DeserializeOwned>(storage: &dyn Storage, path: &str) -> Result<T, Error> {
    let bytes = storage.read_all(path)?;
    serde_json::from_slice(&bytes).map_err(|e| FormatError::corrupt(path, format!("invalid JSON: {e}")).into())
}

/// Read the statistics of the immutable index in `index_dir`, or `None` if it has none
/// (a `MutableRam` index keeps nothing on disk).
pub fn read_stats(storage: &dyn Storage, index_dir: &str) -> Result<Option<SparseIndexStats>, Error> {
    let cfg_path = join(index_dir, "inverted_index_config.json");
    if !storage.is_file(&cfg_path)? {
        return Ok(None);
    }
    let cfg: InvertedConfig = json(storage, &cfg_path)?;
    let idx_cfg: IndexConfig = json(storage, &join(index_dir, "sparse_index_config.json"))?;
    let (header, chunk) = match idx_cfg.datatype.as_deref() {
        None | Some("float32") => (24u64, 520u64),
        Some("float16") => (24, 264),
        Some("uint8") => (32, 136),
        Some(other) => {
            return Err(FormatError::unsupported(
                join(index_dir, "sparse_index_config.json"),
                format!("sparse index datatype `{other}`"),
            )
            .into())
        }
    };
    let tracker: Tracker = json(storage, &join(index_dir, "indices_tracker.json"))?;
    let dat_path = join(index_dir, "inverted_index.dat");
    let dat = storage.read_all(&dat_path)?;
    let corrupt = |m: String| -> Error { FormatError::corrupt(&dat_path, m).into() };
    let count = usize::try_from(cfg.posting_count).map_err(|_| corrupt("posting_count too large".into()))?;
    let headers_len = (count as u64).checked_mul(header).ok_or_else(|| corrupt("posting_count overflows".into()))?;
    if headers_len > dat.len() as u64 {
        return Err(corrupt(format!("{count} headers need {headers_len} bytes, file has {}", dat.len())));
    }
    let mut starts = Vec::with_capacity(count);
    for k in 0..count {
        let h = k * header as usize;
        starts.push((u64_at(&dat, h), u32_at(&dat, h + 12) as u64, u32_at(&dat, h + 16) as u64));
    }
    let mut lens = Vec::with_capacity(count);
    for k in 0..count {
        let (start, ids_len, chunks) = starts[k];
        let end = if k + 1 < count { starts[k + 1].0 } else { dat.len() as u64 };
        let fixed =
            ids_len.checked_add(chunks.checked_mul(chunk).ok_or_else(|| corrupt("chunk count overflows".into()))?);
        let body =
            end.checked_sub(start).ok_or_else(|| corrupt(format!("posting list {k} starts after the next one")))?;
        let rest = fixed
            .and_then(|f| body.checked_sub(f))
            .ok_or_else(|| corrupt(format!("posting list {k} is shorter than its header says")))?;
        if rest % 8 != 0 || end > dat.len() as u64 || start < headers_len {
            return Err(corrupt(format!("posting list {k} has a malformed body")));
        }
        lens.push((chunks * 128 + rest / 8) as usize);
    }
    let mut df = BTreeMap::new();
    for (dim, compact) in tracker.map {
        let dim: u32 = dim.parse().map_err(|_| corrupt(format!("dimension id `{dim}` in indices_tracker.json")))?;
        let len =
            *lens.get(compact as usize).ok_or_else(|| corrupt(format!("posting list {compact} does not exist")))?;
        df.insert(dim, len);
    }
    Ok(Some(SparseIndexStats { vector_count: cfg.vector_count as usize, df }))
}
