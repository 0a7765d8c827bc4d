//! One segment: its state, id tracker, vector storages and payload storage, opened through a
//! [`Storage`] from the format layer's readers.
//!
//! A segment answers point-level questions by internal id; merging segments (highest version
//! wins) is the shard's job.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, FormatError, Result};
use crate::format::dense::{DenseVectorStorage, RowRef};
use crate::format::gridstore::{read_payload, Gridstore};
use crate::format::id_tracker::IdTracker;
use crate::format::multivector::MultiVectorStorage;
use crate::format::names;
use crate::format::payload_index::PayloadIndexConfig;
use crate::format::segment_meta::{read_segment_state, read_version_info, check_version, SegmentState};
use crate::format::sparse::SparseVectorStorage;
use crate::storage::{join, Memory, Storage};
use crate::types::{Payload, PointId, PointOffset, SparseVector, VectorValue};

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
                return Err(FormatError::corrupt(join(dir, names::SEGMENT_STATE_FILE), format!("vector `{name}` is both dense and sparse")).into());
            }
            vectors.insert(name.clone(), VectorData::Sparse(SparseVectorStorage::open(storage, dir, name, cfg)?));
        }
        let id = dir.rsplit('/').next().unwrap_or(dir).to_string();
        Ok(Segment {
            id,
            dir: dir.to_string(),
            state,
            appendable,
            id_tracker,
            payload_storage,
            vectors,
            payload_index,
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
            Some(VectorData::Dense(d)) => (i as usize) < d.len() && !d.is_deleted(i),
            Some(VectorData::Multi(m)) => (i as usize) < m.len() && !m.is_deleted(i),
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
        self.id_tracker
            .iter_live()
            .filter_map(move |(ext, i)| self.id_tracker.version(i).map(|v| (ext, i, v)))
    }

    /// Number of vectors an HNSW/sparse index would hold (Qdrant's `indexed_vectors_count`):
    /// zero for appendable segments.
    pub fn indexed_vector_count(&self) -> usize {
        if self.appendable {
            return 0;
        }
        self.vectors
            .values()
            .map(|v| match v {
                VectorData::Dense(d) => (0..d.len() as u32).filter(|&i| !d.is_deleted(i)).count(),
                VectorData::Multi(m) => (0..m.len() as u32).filter(|&i| !m.is_deleted(i)).count(),
                VectorData::Sparse(s) => s.stored_count(),
            })
            .sum()
    }
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

pub(crate) fn missing(what: &str) -> Error {
    Error::NotFound(what.to_string())
}
