//! One segment: its state, id tracker, vector storages and payload storage, opened through a
//! [`Storage`] from the format layer's readers.
//!
//! A segment answers point-level questions by internal id; merging segments (highest version
//! wins) is the shard's job.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::error::{FormatError, Result};
use crate::format::dense::DenseVectorStorage;
use crate::format::gridstore::{read_payload, Gridstore};
use crate::format::id_tracker::IdTracker;
use crate::format::multivector::MultiVectorStorage;
use crate::format::names;
use crate::format::payload_index::PayloadIndexConfig;
use crate::format::segment_meta::{check_version, read_segment_state, read_version_info, Indexes, SegmentState};
use crate::format::sparse::SparseVectorStorage;
use crate::format::sparse_index::{read_quantized_weights, read_stats as read_sparse_stats, SparseIndexStats};
use crate::storage::{join, Memory, Storage};
use crate::types::{Payload, PointId, PointOffset, RowRef, SparseVector, VectorValue};

/// How a named vector is stored in a segment.
pub enum VectorData {
    Dense(DenseVectorStorage),
    Multi(MultiVectorStorage),
    Sparse(SparseVectorStorage),
}

/// A loaded segment.
pub struct Segment {
    /// The directory name (a UUID).
    pub id: String,
    /// Path relative to the storage root.
    pub dir: String,
    pub state: SegmentState,
    pub appendable: bool,
    pub id_tracker: IdTracker,
    pub payload_storage: Gridstore,
    pub vectors: BTreeMap<String, VectorData>,
    pub payload_index: PayloadIndexConfig,
    /// Per vector name, the number of vectors its on-disk index holds (HNSW:
    /// `hnsw_config.json`; immutable sparse: `inverted_index_config.json`). RAM sparse indexes
    /// keep nothing on disk; see [`Segment::sparse_idf_stats`].
    pub indexed_counts: BTreeMap<String, usize>,
    /// HNSW graphs of dense and multivector names whose index is HNSW.
    pub hnsw: BTreeMap<String, crate::format::hnsw::HnswGraph>,
    /// Quantized copies of dense vectors and multivectors: scalar and product (optimized
    /// segments) or binary (optimized segments' `quantized.data`, appendable segments'
    /// `quantized_data/`).
    pub quantized: BTreeMap<String, crate::format::quantized::Quantized>,
    /// Statistics of immutable sparse indexes, per sparse vector name.
    sparse_stats: BTreeMap<String, SparseIndexStats>,
    /// Dequantized weights of float16 / uint8 immutable sparse indexes, per internal id: what
    /// Qdrant's nearest search over the segment scores with.
    sparse_index_weights: BTreeMap<String, BTreeMap<u32, SparseVector>>,
    payload_memory: Memory,
    payload_cache: OnceLock<Vec<Option<Arc<Payload>>>>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("id", &self.id).field("appendable", &self.appendable).finish()
    }
}

/// Memory placement chosen for each component at load.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPlan {
    pub vectors: Memory,
    pub payload: Memory,
}

impl Default for MemoryPlan {
    fn default() -> Self {
        MemoryPlan { vectors: Memory::Pinned, payload: Memory::Cached }
    }
}

impl Segment {
    /// Open the segment at `dir` (e.g. `segments/<uuid>`).
    pub fn open(storage: &dyn Storage, dir: &str, plan: MemoryPlan) -> Result<Segment> {
        let version = read_version_info(storage, dir)?;
        check_version(&version, &join(dir, names::VERSION_FILE))?;
        let state = read_segment_state(storage, dir)?;
        let appendable = state.config.is_appendable();
        let id_tracker = IdTracker::open(storage, dir, appendable)?;
        let payload_storage = Gridstore::open(storage, &join(dir, names::PAYLOAD_STORAGE_DIR))?;
        let payload_index = PayloadIndexConfig::read(storage, dir)?;
        let mut vectors = BTreeMap::new();
        for (name, cfg) in &state.config.vector_data {
            let data = if cfg.multivector_config.is_some() {
                VectorData::Multi(MultiVectorStorage::open(storage, dir, name, cfg, plan.vectors)?)
            } else {
                VectorData::Dense(DenseVectorStorage::open(storage, dir, name, cfg, plan.vectors)?)
            };
            vectors.insert(name.clone(), data);
        }
        for (name, cfg) in &state.config.sparse_vector_data {
            if vectors.contains_key(name) {
                return Err(FormatError::corrupt(
                    join(dir, names::SEGMENT_STATE_FILE),
                    format!("vector `{name}` is both dense and sparse"),
                )
                .into());
            }
            vectors.insert(name.clone(), VectorData::Sparse(SparseVectorStorage::open(storage, dir, name, cfg)?));
        }
        let mut sparse_stats = BTreeMap::new();
        let mut sparse_index_weights = BTreeMap::new();
        for name in state.config.sparse_vector_data.keys() {
            let idx_dir = join(dir, &names::vector_index_dir(name));
            if let Some(st) = read_sparse_stats(storage, &idx_dir)? {
                sparse_stats.insert(name.clone(), st);
                if let Some(w) = read_quantized_weights(storage, &idx_dir)? {
                    sparse_index_weights.insert(name.clone(), w);
                }
            }
        }
        let mut indexed_counts = BTreeMap::new();
        let indexed_segment = !state.config.sparse_vector_data.is_empty()
            || state.config.vector_data.values().any(|v| matches!(v.index, Indexes::Hnsw(_)));
        if indexed_segment {
            for name in vectors.keys() {
                if let Some(st) = sparse_stats.get(name) {
                    indexed_counts.insert(name.clone(), st.vector_count);
                } else if let Some(n) = read_hnsw_count(storage, dir, name, id_tracker.total_point_count() as usize)? {
                    indexed_counts.insert(name.clone(), n);
                }
            }
        }
        let mut hnsw = BTreeMap::new();
        for (name, cfg) in &state.config.vector_data {
            if matches!(cfg.index, Indexes::Hnsw(_)) {
                let idx_dir = join(dir, &names::vector_index_dir(name));
                if let Some(g) = crate::format::hnsw::HnswGraph::open(storage, &idx_dir)? {
                    if g.point_count as u64 > id_tracker.total_point_count() {
                        return Err(FormatError::corrupt(
                            &idx_dir,
                            format!(
                                "the graph has {} points, the segment {}",
                                g.point_count,
                                id_tracker.total_point_count()
                            ),
                        )
                        .into());
                    }
                    hnsw.insert(name.clone(), g);
                }
            }
        }
        let mut quantized = BTreeMap::new();
        for (name, cfg) in &state.config.vector_data {
            if cfg.quantization_config.is_some() {
                let sdir = join(dir, &names::vector_storage_dir(name));
                let multi = cfg.multivector_config.is_some();
                if let Some(q) = crate::format::quantized::Quantized::open(storage, &sdir, plan.vectors, multi)? {
                    if q.dim() != cfg.size as usize {
                        return Err(FormatError::corrupt(&sdir, "quantized dimension differs from the vector's").into());
                    }
                    quantized.insert(name.clone(), q);
                }
            }
        }
        let id = dir.rsplit('/').next().unwrap_or(dir).to_string();
        Ok(Segment {
            hnsw,
            quantized,
            id,
            dir: dir.to_string(),
            state,
            appendable,
            id_tracker,
            payload_storage,
            vectors,
            payload_index,
            indexed_counts,
            sparse_stats,
            sparse_index_weights,
            payload_memory: plan.payload,
            payload_cache: OnceLock::new(),
        })
    }

    /// Persisted segment version (`0` for an empty segment).
    pub fn version(&self) -> u64 {
        self.state.version.unwrap_or(0)
    }

    /// The payload of internal id `i` (empty if none).
    pub fn payload(&self, i: PointOffset) -> Result<Arc<Payload>> {
        if self.payload_memory == Memory::Cold {
            return Ok(Arc::new(read_payload(&self.payload_storage, i)?));
        }
        if let Some(cache) = self.payload_cache.get() {
            return Ok(cache.get(i as usize).cloned().flatten().unwrap_or_default());
        }
        // Decode every live payload once; errors surface instead of being cached.
        let n = self.id_tracker.total_point_count() as usize;
        let mut cache = vec![None; n];
        for (_, internal) in self.id_tracker.iter_live() {
            if let Some(slot) = cache.get_mut(internal as usize) {
                *slot = Some(Arc::new(read_payload(&self.payload_storage, internal)?));
            }
        }
        let cache = self.payload_cache.get_or_init(|| cache);
        Ok(cache.get(i as usize).cloned().flatten().unwrap_or_default())
    }

    /// Whether point `i` has a value for vector `name`.
    pub fn has_vector(&self, name: &str, i: PointOffset) -> bool {
        match self.vectors.get(name) {
            Some(VectorData::Dense(d)) => u64::from(i) < d.len() && !d.is_deleted(i),
            Some(VectorData::Multi(m)) => u64::from(i) < m.len() && !m.is_deleted(i),
            Some(VectorData::Sparse(s)) => s.get(i).ok().flatten().is_some(),
            None => false,
        }
    }

    /// The stored value of vector `name` for point `i`.
    pub fn vector(&self, name: &str, i: PointOffset) -> Result<Option<VectorValue>> {
        Ok(match self.vectors.get(name) {
            Some(VectorData::Dense(d)) => d.get(i)?.map(VectorValue::Dense),
            Some(VectorData::Multi(m)) => m.get(i)?.map(VectorValue::Multi),
            Some(VectorData::Sparse(s)) => s.get(i)?.map(VectorValue::Sparse),
            None => None,
        })
    }

    /// Raw row access for scoring dense vectors without copies.
    pub fn with_dense_row<R>(&self, name: &str, i: PointOffset, f: impl FnOnce(RowRef<'_>) -> R) -> Result<Option<R>> {
        match self.vectors.get(name) {
            Some(VectorData::Dense(d)) => d.with_row(i, f),
            _ => Ok(None),
        }
    }

    /// The dense storage of vector `name`, if it is a plain dense vector here.
    pub fn dense_storage(&self, name: &str) -> Option<&DenseVectorStorage> {
        match self.vectors.get(name) {
            Some(VectorData::Dense(d)) => Some(d),
            _ => None,
        }
    }

    pub fn sparse(&self, name: &str, i: PointOffset) -> Result<Option<SparseVector>> {
        match self.vectors.get(name) {
            Some(VectorData::Sparse(s)) => s.get(i),
            _ => Ok(None),
        }
    }

    pub fn multi(&self, name: &str, i: PointOffset) -> Result<Option<Vec<Vec<f32>>>> {
        match self.vectors.get(name) {
            Some(VectorData::Multi(m)) => m.get(i),
            _ => Ok(None),
        }
    }

    /// Live points of this segment: (external id, internal id, version).
    pub fn live_points(&self) -> impl Iterator<Item = (PointId, PointOffset, u64)> + '_ {
        self.id_tracker.iter_live().filter_map(move |(ext, i)| self.id_tracker.version(i).map(|v| (ext, i, v)))
    }

    /// Vectors held by this segment's on-disk vector indexes.
    pub fn indexed_vector_count(&self) -> usize {
        self.indexed_counts.values().sum()
    }

    /// Whether Qdrant counts this segment's indexed vectors: it has an HNSW index or any
    /// sparse vector (a sparse vector always has an inverted index).
    pub fn is_indexed(&self) -> bool {
        !self.state.config.sparse_vector_data.is_empty()
            || self.state.config.vector_data.values().any(|v| matches!(v.index, Indexes::Hnsw(_)))
    }

    /// Names of sparse vectors whose index lives in RAM (rebuilt at load).
    pub fn ram_sparse_names(&self) -> impl Iterator<Item = &String> {
        self.state.config.sparse_vector_data.keys().filter(|n| !self.sparse_stats.contains_key(*n))
    }

    /// The weights the segment's immutable sparse index holds for internal id `i` when they
    /// differ from the stored vector (float16 / uint8 index datatypes); `None` otherwise.
    pub fn sparse_index_vector(&self, name: &str, i: PointOffset) -> Option<&SparseVector> {
        self.sparse_index_weights.get(name).and_then(|m| m.get(&i))
    }

    /// Sparse IDF statistics of this segment's index for `name`: adds each term's document
    /// frequency to `df` (whose keys are the query's terms) and returns the number of indexed
    /// documents. Like Qdrant's inverted indexes, an optimized segment reports its index files
    /// (every vector it was built with, points deleted since included); an appendable segment
    /// counts its live points' non-empty vectors, as its RAM index is rebuilt at load, except
    /// `superseded` ones (rewritten in place by WAL replay; the caller counts the new copy).
    pub fn sparse_idf_stats(
        &self,
        name: &str,
        df: &mut BTreeMap<u32, usize>,
        superseded: impl Fn(PointId) -> bool,
    ) -> Result<usize> {
        if let Some(st) = self.sparse_stats.get(name) {
            for (t, c) in df.iter_mut() {
                *c += st.df.get(t).copied().unwrap_or(0);
            }
            return Ok(st.vector_count);
        }
        let Some(VectorData::Sparse(s)) = self.vectors.get(name) else { return Ok(0) };
        let mut n = 0;
        for (ext, i) in self.id_tracker.iter_live() {
            if s.is_deleted(i) || superseded(ext) {
                continue;
            }
            let Some(v) = s.get(i)? else { continue };
            if v.indices.is_empty() {
                continue;
            }
            n += 1;
            for t in &v.indices {
                if let Some(c) = df.get_mut(t) {
                    *c += 1;
                }
            }
        }
        Ok(n)
    }
}

/// `indexed_vector_count` of an HNSW index (falls back to the point count, as Qdrant does).
fn read_hnsw_count(storage: &dyn Storage, dir: &str, name: &str, points: usize) -> Result<Option<usize>> {
    let path = join(&join(dir, &names::vector_index_dir(name)), "hnsw_config.json");
    if !storage.is_file(&path)? {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&storage.read_all(&path)?)
        .map_err(|e| FormatError::corrupt(&path, format!("invalid JSON: {e}")))?;
    Ok(Some(v.get("indexed_vector_count").and_then(|c| c.as_u64()).map_or(points, |c| c as usize)))
}

/// Names of the segment directories to load, per the shard rules: non-hidden directories with a
/// `version.info`, not ending in `.deleted`, sorted by name.
pub fn list_segment_dirs(storage: &dyn Storage, shard_root: &str) -> Result<Vec<String>> {
    let seg_root = join(shard_root, names::SEGMENTS_DIR);
    if !storage.is_dir(&seg_root)? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in storage.list_dir(&seg_root)? {
        if e.kind != crate::storage::EntryKind::Dir || e.name.starts_with('.') || e.name.ends_with(".deleted") {
            continue;
        }
        let dir = join(&seg_root, &e.name);
        if !storage.is_file(&join(&dir, names::VERSION_FILE))? {
            continue; // unfinished segment build
        }
        out.push(dir);
    }
    Ok(out)
}
