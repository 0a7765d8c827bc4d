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

/// Decode one BitPacker4x block of 128 numbers of `width` bits (layout of the writer).
fn unpack4x(block: &[u8], width: u32) -> Vec<u32> {
    let mut out = vec![0u32; 128];
    if width == 0 {
        return out;
    }
    let mask = if width == 32 { u32::MAX } else { (1u32 << width) - 1 };
    let word = |w: usize, lane: usize| u32_at(block, 16 * w + 4 * lane);
    for (k, o) in out.iter_mut().enumerate() {
        let (lane, bit) = (k % 4, (k / 4) as u32 * width);
        let (w, off) = ((bit / 32) as usize, bit % 32);
        let mut x = word(w, lane) >> off;
        if off + width > 32 {
            x |= word(w + 1, lane) << (32 - off);
        }
        *o = x & mask;
    }
    out
}

/// The stored (dequantized) weights of an immutable index whose datatype is `float16` or
/// `uint8`, per internal id as a sparse vector sorted by dimension id; `None` for a float32
/// index (its weights are the stored vectors' own) or no immutable index. Qdrant's nearest
/// search over such a segment scores with these weights, not with the stored vectors.
pub fn read_quantized_weights(
    storage: &dyn Storage,
    index_dir: &str,
) -> Result<Option<BTreeMap<u32, crate::types::SparseVector>>, Error> {
    let cfg_path = join(index_dir, "inverted_index_config.json");
    if !storage.is_file(&cfg_path)? {
        return Ok(None);
    }
    let idx_cfg: IndexConfig = json(storage, &join(index_dir, "sparse_index_config.json"))?;
    let (header, weight) = match idx_cfg.datatype.as_deref() {
        None | Some("float32") => return Ok(None),
        Some("float16") => (24usize, 2usize),
        Some("uint8") => (32, 1),
        Some(other) => {
            return Err(FormatError::unsupported(
                join(index_dir, "sparse_index_config.json"),
                format!("sparse index datatype `{other}`"),
            )
            .into())
        }
    };
    let cfg: InvertedConfig = json(storage, &cfg_path)?;
    let tracker: Tracker = json(storage, &join(index_dir, "indices_tracker.json"))?;
    let dat_path = join(index_dir, "inverted_index.dat");
    let dat = storage.read_all(&dat_path)?;
    let corrupt = |m: String| -> Error { FormatError::corrupt(&dat_path, m).into() };
    let count = usize::try_from(cfg.posting_count).map_err(|_| corrupt("posting_count too large".into()))?;
    if count.checked_mul(header).is_none_or(|h| h > dat.len()) {
        return Err(corrupt(format!("{count} headers do not fit in {} bytes", dat.len())));
    }
    let mut dims = vec![None; count];
    for (dim, compact) in &tracker.map {
        let d: u32 = dim.parse().map_err(|_| corrupt(format!("dimension id `{dim}` in indices_tracker.json")))?;
        *dims.get_mut(*compact as usize).ok_or_else(|| corrupt(format!("posting list {compact} does not exist")))? =
            Some(d);
    }
    let chunk_size = 8 + 128 * weight;
    let mut by_point: BTreeMap<u32, crate::types::SparseVector> = BTreeMap::new();
    for (k, dim) in dims.iter().enumerate() {
        let h = k * header;
        let start = u64_at(&dat, h) as usize;
        let ids_len = u32_at(&dat, h + 12) as usize;
        let chunks = u32_at(&dat, h + 16) as usize;
        let (min, diff) = if weight == 1 {
            (
                f32::from_le_bytes(dat[h + 20..h + 24].try_into().unwrap()),
                f32::from_le_bytes(dat[h + 24..h + 28].try_into().unwrap()),
            )
        } else {
            (0.0, 0.0)
        };
        let end = if k + 1 < count { u64_at(&dat, h + header) as usize } else { dat.len() };
        let chunks_start = start.checked_add(ids_len);
        let rem_start = chunks.checked_mul(chunk_size).and_then(|c| chunks_start.and_then(|s| s.checked_add(c)));
        let (Some(chunks_start), Some(rem_start)) = (chunks_start, rem_start) else {
            return Err(corrupt(format!("posting list {k}: sizes overflow")));
        };
        if start < count * header || rem_start > end || end > dat.len() || (end - rem_start) % 8 != 0 {
            return Err(corrupt(format!("posting list {k} has a malformed body")));
        }
        let decode = |b: &[u8]| -> f32 {
            if weight == 2 {
                half::f16::from_le_bytes([b[0], b[1]]).to_f32()
            } else {
                min + f32::from(b[0]) * diff
            }
        };
        let mut postings: Vec<(u32, f32)> = Vec::new();
        for c in 0..chunks {
            let rec = chunks_start + c * chunk_size;
            let initial = u32_at(&dat, rec);
            let off = u32_at(&dat, rec + 4) as usize;
            let next = if c + 1 < chunks { u32_at(&dat, rec + chunk_size + 4) as usize } else { ids_len };
            if off > next || next > ids_len || (next - off) % 16 != 0 || (next - off) / 16 > 32 {
                return Err(corrupt(format!("posting list {k}, chunk {c}: bad id block")));
            }
            let numbers = unpack4x(&dat[start + off..start + next], ((next - off) / 16) as u32);
            let mut x = initial.wrapping_sub(1);
            for (j, n) in numbers.iter().enumerate() {
                x = x.wrapping_add(*n).wrapping_add(1);
                let w = rec + 8 + j * weight;
                postings.push((x, decode(&dat[w..w + weight])));
            }
        }
        for e in (rem_start..end).step_by(8) {
            postings.push((u32_at(&dat, e), decode(&dat[e + 4..e + 4 + weight])));
        }
        let Some(dim) = dim else {
            if postings.is_empty() {
                continue;
            }
            return Err(corrupt(format!("posting list {k} has no dimension id")));
        };
        for (id, w) in postings {
            let v = by_point
                .entry(id)
                .or_insert_with(|| crate::types::SparseVector { indices: Vec::new(), values: Vec::new() });
            v.indices.push(*dim);
            v.values.push(w);
        }
    }
    Ok(Some(by_point.into_iter().map(|(id, v)| (id, v.sorted())).collect()))
}

// ---- writer -----------------------------------------------------------------------------------

/// `version.info` of an immutable sparse index; Qdrant rebuilds an index without it.
pub const SPARSE_INDEX_VERSION: &str = "0.2.0";

/// The strictly-sorted BitPacker4x numbers of a chunk of ascending distinct ids:
/// `x[k] − x[k−1] − 1`, with `x[−1] = x[0] − 1`.
fn strict_deltas(ids: &[u32]) -> Vec<u32> {
    let mut prev = ids[0].wrapping_sub(1);
    ids.iter()
        .map(|&x| {
            let d = x.wrapping_sub(prev).wrapping_sub(1);
            prev = x;
            d
        })
        .collect()
}

/// Write the immutable sparse index (`ImmutableRam` / `Mmap`) of one sparse vector into
/// `index_dir`, as Qdrant's segment builder does: `vectors` are the non-empty vectors of the
/// segment's live points, ascending internal id, each sorted by dimension. `config` is the
/// index config recorded in `segment.json` (written verbatim to `sparse_index_config.json`).
/// `version.info` goes last: an index without it is rebuilt by Qdrant.
///
/// Compact dimension ids are given in order of first appearance; a posting list holds the
/// points having the dimension, ascending. Weights are stored as the config's datatype:
/// float32 as is, float16 rounded to nearest even, uint8 per posting list as
/// `round((w − min) / ((max − min) / 255))` clamped to 0..=255 (Qdrant's arithmetic, in f32).
pub fn write_immutable_sparse_index(
    storage: &dyn Storage,
    index_dir: &str,
    config: &crate::format::segment_meta::SparseIndexConfig,
    vectors: &[(u32, crate::types::SparseVector)],
) -> Result<(), Error> {
    use crate::types::Datatype;
    let datatype = config.datatype.unwrap_or(Datatype::Float32);
    let header_size = match datatype {
        Datatype::Float32 => 24usize,
        Datatype::Float16 => 24,
        Datatype::Uint8 => 32,
        other => {
            return Err(FormatError::unsupported(index_dir, format!("sparse index datatype {other:?}")).into());
        }
    };
    let mut tracker: BTreeMap<u32, u32> = BTreeMap::new();
    let mut lists: Vec<Vec<(u32, f32)>> = Vec::new();
    let mut vector_count = 0u64;
    for (id, v) in vectors {
        if v.indices.is_empty() {
            continue;
        }
        vector_count += 1;
        for (&dim, &w) in v.indices.iter().zip(&v.values) {
            let compact = *tracker.entry(dim).or_insert_with(|| {
                lists.push(Vec::new());
                (lists.len() - 1) as u32
            });
            lists[compact as usize].push((*id, w));
        }
    }
    let encode = |w: f32, params: (f32, f32), out: &mut Vec<u8>| match datatype {
        Datatype::Float32 => out.extend_from_slice(&w.to_le_bytes()),
        Datatype::Float16 => out.extend_from_slice(&half::f16::from_f32(w).to_le_bytes()),
        _ => out.push(((w - params.0) / params.1).round().clamp(0.0, 255.0) as u8),
    };
    let mut headers = Vec::with_capacity(header_size * lists.len());
    let mut bodies = Vec::new();
    let base = (header_size * lists.len()) as u64;
    for list in &lists {
        let params = if datatype == Datatype::Uint8 {
            let min = list.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
            let max = list.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
            (min, (max - min) / 255.0)
        } else {
            (0.0, 0.0)
        };
        let ids: Vec<u32> = list.iter().map(|p| p.0).collect();
        let chunks = ids.len() / 128;
        let mut packed = Vec::new();
        let mut chunk_records = Vec::new();
        for c in 0..chunks {
            let block = &ids[128 * c..128 * c + 128];
            let deltas = strict_deltas(block);
            let width = deltas.iter().map(|&d| u32::BITS - d.leading_zeros()).max().unwrap_or(0);
            chunk_records.extend_from_slice(&block[0].to_le_bytes());
            chunk_records.extend_from_slice(&(packed.len() as u32).to_le_bytes());
            for &(_, w) in &list[128 * c..128 * c + 128] {
                encode(w, params, &mut chunk_records);
            }
            crate::format::immutable_index::pack4x(&deltas, width, &mut packed);
        }
        let start = base + bodies.len() as u64;
        let h0 = headers.len();
        headers.extend_from_slice(&start.to_le_bytes());
        headers.extend_from_slice(&ids.last().map_or(0, |l| l + 1).to_le_bytes());
        headers.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        headers.extend_from_slice(&(chunks as u32).to_le_bytes());
        if datatype == Datatype::Uint8 {
            headers.extend_from_slice(&params.0.to_le_bytes());
            headers.extend_from_slice(&params.1.to_le_bytes());
        }
        headers.resize(h0 + header_size, 0);
        bodies.extend_from_slice(&packed);
        bodies.extend_from_slice(&chunk_records);
        for &(id, w) in &list[128 * chunks..] {
            let e0 = bodies.len();
            bodies.extend_from_slice(&id.to_le_bytes());
            encode(w, params, &mut bodies);
            bodies.resize(e0 + 8, 0);
        }
    }
    let mut dat = headers;
    let total_sparse_size = bodies.len();
    dat.extend_from_slice(&bodies);
    let json = |v: &serde_json::Value| serde_json::to_vec(v).map_err(|e| Error::Internal(e.to_string()));
    let map: serde_json::Map<String, serde_json::Value> =
        tracker.iter().map(|(dim, c)| (dim.to_string(), serde_json::Value::from(*c))).collect();
    storage.create_dir_all(index_dir)?;
    let files: [(&str, Vec<u8>); 4] = [
        ("sparse_index_config.json", serde_json::to_vec(config).map_err(|e| Error::Internal(e.to_string()))?),
        ("inverted_index.dat", dat),
        ("indices_tracker.json", json(&serde_json::json!({ "map": map }))?),
        (
            "inverted_index_config.json",
            format!(
                "{{\"posting_count\":{},\"vector_count\":{vector_count},\"total_sparse_size\":{total_sparse_size}}}",
                lists.len()
            )
            .into_bytes(),
        ),
    ];
    for (name, data) in
        files.iter().map(|(n, d)| (*n, d.as_slice())).chain([("version.info", SPARSE_INDEX_VERSION.as_bytes())])
    {
        let f = storage.open(&join(index_dir, name), crate::storage::OpenMode::Create)?;
        f.set_len(0)?;
        f.write_at(0, data)?;
        f.sync()?;
        if name == "inverted_index_config.json" {
            storage.sync_dir(index_dir)?;
        }
    }
    storage.sync_dir(index_dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::segment_meta::{SparseIndexConfig, SparseIndexType};
    use crate::storage::MemoryStorage;
    use crate::types::Datatype;
    use crate::types::SparseVector;

    #[test]
    fn written_index_reads_back_with_its_document_frequencies() {
        for datatype in [None, Some(Datatype::Float16), Some(Datatype::Uint8)] {
            let st = MemoryStorage::new();
            let cfg = SparseIndexConfig {
                full_scan_threshold: None,
                index_type: SparseIndexType::ImmutableRam,
                datatype,
                memory: None,
            };
            // dimension 7 in every vector (3 chunks + remainder), 1000 + k in a few
            let vectors: Vec<(u32, SparseVector)> = (0..400u32)
                .map(|i| {
                    let mut indices = vec![7];
                    if i % 97 == 0 {
                        indices.push(1000 + i);
                    }
                    let values = indices.iter().map(|&d| (d as f32 + i as f32) / 50.0).collect();
                    (i * 2, SparseVector { indices, values })
                })
                .collect();
            write_immutable_sparse_index(&st, "ix", &cfg, &vectors).unwrap();
            let stats = read_stats(&st, "ix").unwrap().unwrap();
            assert_eq!(stats.vector_count, 400);
            assert_eq!(stats.df[&7], 400);
            assert_eq!(stats.df[&1000], 1);
            assert_eq!(stats.df.len(), 6);
            assert_eq!(&st.read_all("ix/version.info").unwrap()[..], b"0.2.0");
            // the stored weights decode back to the vectors (within the datatype's precision)
            match read_quantized_weights(&st, "ix").unwrap() {
                None => assert_eq!(datatype, None),
                Some(w) => {
                    assert_eq!(w.len(), 400);
                    for (id, v) in &vectors {
                        let got = &w[id];
                        assert_eq!(got.indices, v.indices);
                        for (a, b) in got.values.iter().zip(&v.values) {
                            assert!((a - b).abs() <= 0.05 * b.abs().max(1.0), "{a} vs {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn strict_deltas_of_consecutive_ids_are_zero() {
        assert_eq!(strict_deltas(&[0, 1, 2, 5]), vec![0, 0, 0, 2]);
        assert_eq!(strict_deltas(&[9, 10]), vec![0, 0]);
    }
}
