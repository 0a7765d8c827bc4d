//! `EdgeShard`: the shard lifecycle and the merged read model.
//!
//! Loading opens every finished segment, merges them by point version (for one external id the
//! live copy with the highest version wins, tombstones hide older copies), then replays the WAL
//! entries from the logical start (`first-index`) on top, with Qdrant's version gating: a
//! point-level operation is skipped for a point whose version is greater than the operation
//! number. Replayed changes live in an in-memory overlay until the write path persists them.

mod batch_order;
pub mod bm25;
mod hnsw;
mod optimize;
mod overlay;
pub(crate) mod prefilter;
pub mod query;
pub mod read;
mod snapshot;
mod write;

pub use hnsw::SearchOptions;
pub use read::{Record, ScoredPoint};
pub(crate) use write::{config_vector_kinds, new_uuid};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::names;
use crate::format::segment_meta::{read_edge_config, EdgeConfig, Modifier};
use crate::format::wal::read_wal;
use crate::operations::decode_entry;
use crate::query::filter::FilterContext;
use crate::segment::{list_segment_dirs, MemoryPlan, Segment};
use crate::storage::{join, Memory, Storage};
use crate::types::{Datatype, Distance, Payload, PointId, PointOffset, VectorValue};

/// Where the winning copy of a point lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    Segment { seg: u32, internal: PointOffset },
    Overlay(usize),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PointRef {
    pub loc: Loc,
    pub version: u64,
}

/// A point changed by WAL replay, held in memory.
#[derive(Debug, Clone)]
pub(crate) struct OverlayPoint {
    pub id: PointId,
    pub vectors: BTreeMap<String, VectorValue>,
    pub payload: Arc<Payload>,
}

/// Kind of a named vector at the shard level.
#[derive(Debug, Clone, PartialEq)]
pub enum VectorKind {
    Dense { size: usize, distance: Distance, datatype: Datatype },
    Multi { size: usize, distance: Distance, datatype: Datatype },
    Sparse { idf: bool },
}

/// A loaded shard.
pub struct EdgeShard {
    pub(crate) storage: Arc<dyn Storage>,
    root: String,
    pub(crate) segments: Vec<Segment>,
    pub(crate) points: BTreeMap<PointId, PointRef>,
    /// Per segment, its internal ids that hold the winning copy of their point (kept in step
    /// with `points`: an overlay change hides the segment copy).
    pub(crate) visible: Vec<prefilter::Bits>,
    /// Per segment, the payload postings of indexed fields, built on first use.
    pub(crate) postings: Vec<prefilter::PostingCache>,
    pub(crate) overlay: Vec<OverlayPoint>,
    pub(crate) vector_kinds: BTreeMap<String, VectorKind>,
    /// Indexed payload fields: path → schema JSON (bare type string or params object).
    pub(crate) indexed_fields: BTreeMap<String, serde_json::Value>,
    pub(crate) filter_ctx: FilterContext,
    pub(crate) edge_config: Option<EdgeConfig>,
    /// Sparse vectors WAL replay added to the appendable segment's RAM index, per name.
    pub(crate) ram_sparse_added: BTreeMap<String, usize>,
    /// Operation number the next update gets.
    pub(crate) next_op: u64,
    /// Points changed since the last flush, with the number of the last operation on each.
    pub(crate) dirty: BTreeMap<PointId, u64>,
    /// Set by a failed write: the shard refuses further writes until it is reloaded.
    pub(crate) failed: Option<String>,
    /// The WAL writer, opened on the first update (reads never touch the WAL files).
    pub(crate) wal: Option<crate::format::wal_write::WalWriter>,
    pub(crate) memory_plan: MemoryPlan,
    closed: AtomicBool,
}

impl std::fmt::Debug for EdgeShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeShard")
            .field("root", &self.root)
            .field("segments", &self.segments.len())
            .field("points", &self.points.len())
            .finish()
    }
}

impl EdgeShard {
    /// Load the shard stored at `root` (`""` for the storage root): its segments, then the WAL
    /// entries they lack.
    pub fn load(storage: Arc<dyn Storage>, root: &str) -> Result<EdgeShard> {
        // Finish a committed snapshot apply, or drop an uncommitted one.
        if storage.is_dir(root)? {
            crate::snapshot::apply::recover(&*storage, root)?;
        }
        Self::load_unrecovered(storage, root)
    }

    /// [`load`](Self::load) without the snapshot-apply recovery step.
    pub(crate) fn load_unrecovered(storage: Arc<dyn Storage>, root: &str) -> Result<EdgeShard> {
        let mut shard = Self::load_segments_only(storage.clone(), root)?;
        // WAL replay.
        let wal_dir = join(root, names::WAL_DIR);
        if let Some(wal) = read_wal(&*storage, &wal_dir)? {
            for entry in &wal.entries {
                let (op, _clock) = decode_entry(entry, &wal_dir)?;
                shard.apply_replayed(entry.index, &op)?;
            }
            shard.next_op = shard.next_op.max(wal.next_index);
        }
        Ok(shard)
    }

    /// Open and merge the segments, without the WAL.
    pub(crate) fn load_segments_only(storage: Arc<dyn Storage>, root: &str) -> Result<EdgeShard> {
        if !storage.is_dir(root)? {
            return Err(Error::NotFound(format!("shard directory `{root}`")));
        }
        let edge_config = read_edge_config(&*storage, root)?;
        let plan = memory_plan(edge_config.as_ref());
        let mut segments = Vec::new();
        for dir in list_segment_dirs(&*storage, root)? {
            segments.push(Segment::open(&*storage, &dir, plan)?);
        }
        let vector_kinds = collect_vector_kinds(&segments, edge_config.as_ref())?;
        let mut indexed_fields = BTreeMap::new();
        for s in &segments {
            for (k, v) in &s.payload_index.indexed_fields {
                indexed_fields.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }

        // Merge: highest version wins among live copies.
        let mut points: BTreeMap<PointId, PointRef> = BTreeMap::new();
        for (si, seg) in segments.iter().enumerate() {
            for (ext, internal, version) in seg.live_points() {
                let cand = PointRef { loc: Loc::Segment { seg: si as u32, internal }, version };
                match points.get(&ext) {
                    Some(cur) if cur.version >= version => {}
                    _ => {
                        points.insert(ext, cand);
                    }
                }
            }
        }

        let mut visible: Vec<prefilter::Bits> =
            segments.iter().map(|s| prefilter::Bits::new(s.id_tracker.total_point_count() as usize)).collect();
        for r in points.values() {
            if let Loc::Segment { seg, internal } = r.loc {
                visible[seg as usize].set(internal);
            }
        }
        let postings = segments.iter().map(|_| prefilter::PostingCache::default()).collect();
        let max_seg_version = segments.iter().map(|s| s.version()).max().unwrap_or(0);
        Ok(EdgeShard {
            storage: storage.clone(),
            root: root.to_string(),
            segments,
            points,
            visible,
            postings,
            overlay: Vec::new(),
            vector_kinds,
            filter_ctx: FilterContext::new(indexed_fields.clone()),
            indexed_fields,
            edge_config,
            ram_sparse_added: BTreeMap::new(),
            next_op: max_seg_version + 1,
            dirty: BTreeMap::new(),
            failed: None,
            wal: None,
            memory_plan: plan,
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The shard's `edge_config.json`, if it has one (server snapshots have none).
    pub fn edge_config(&self) -> Option<&EdgeConfig> {
        self.edge_config.as_ref()
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Mark the shard closed: later calls fail with `ShardClosed`.
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::ShardClosed)
        } else {
            Ok(())
        }
    }

    /// Kind of the named vector, or an error naming it.
    pub(crate) fn vector_kind(&self, name: &str, field: &str) -> Result<&VectorKind> {
        self.vector_kinds.get(name).ok_or_else(|| {
            let shown =
                if name.is_empty() { "default (unnamed) vector".to_string() } else { format!("vector `{name}`") };
            Error::invalid_field(field, format!("{shown} does not exist in this shard"))
        })
    }

    /// Payload of a point by location.
    /// The segments in the order qdrant-edge merges their answers: optimized first, then
    /// appendable, each group in directory (UUID) order.
    pub(crate) fn merge_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.segments.len()).collect();
        order.sort_by(|&a, &b| {
            let (sa, sb) = (&self.segments[a], &self.segments[b]);
            sa.appendable.cmp(&sb.appendable).then_with(|| sa.id.cmp(&sb.id))
        });
        order
    }

    pub(crate) fn payload_at(&self, loc: Loc) -> Result<Arc<Payload>> {
        match loc {
            Loc::Segment { seg, internal } => self.segments[seg as usize].payload(internal),
            Loc::Overlay(i) => Ok(self.overlay[i].payload.clone()),
        }
    }

    pub(crate) fn vector_at(&self, loc: Loc, name: &str) -> Result<Option<VectorValue>> {
        match loc {
            Loc::Segment { seg, internal } => self.segments[seg as usize].vector(name, internal),
            Loc::Overlay(i) => Ok(self.overlay[i].vectors.get(name).cloned()),
        }
    }

    pub(crate) fn has_vector_at(&self, loc: Loc, name: &str) -> bool {
        match loc {
            Loc::Segment { seg, internal } => self.segments[seg as usize].has_vector(name, internal),
            Loc::Overlay(i) => self.overlay[i].vectors.contains_key(name),
        }
    }

    /// All vectors of a point.
    pub(crate) fn all_vectors_at(&self, loc: Loc) -> Result<BTreeMap<String, VectorValue>> {
        let mut out = BTreeMap::new();
        for name in self.vector_kinds.keys() {
            if let Some(v) = self.vector_at(loc, name)? {
                out.insert(name.clone(), v);
            }
        }
        Ok(out)
    }
}

fn memory_plan(cfg: Option<&EdgeConfig>) -> MemoryPlan {
    let mut plan = MemoryPlan::default();
    if let Some(c) = cfg {
        if let Some(m) = c.payload_memory {
            plan.payload = m;
        }
        // Vector memory is per vector in Qdrant Edge; the most demanding setting applies here.
        let mems: Vec<Memory> = c.vectors.values().filter_map(|v| v.memory).collect();
        if !mems.is_empty() && mems.iter().all(|m| *m == Memory::Cold) {
            plan.vectors = Memory::Cold;
        }
    }
    plan
}

pub(crate) fn collect_vector_kinds(
    segments: &[Segment],
    edge: Option<&EdgeConfig>,
) -> Result<BTreeMap<String, VectorKind>> {
    let mut kinds = BTreeMap::new();
    for s in segments {
        for (name, cfg) in &s.state.config.vector_data {
            let datatype = cfg.datatype.unwrap_or_default();
            let k = if cfg.multivector_config.is_some() {
                VectorKind::Multi { size: cfg.size as usize, distance: cfg.distance, datatype }
            } else {
                VectorKind::Dense { size: cfg.size as usize, distance: cfg.distance, datatype }
            };
            kinds.entry(name.clone()).or_insert(k);
        }
        for (name, cfg) in &s.state.config.sparse_vector_data {
            kinds.entry(name.clone()).or_insert(VectorKind::Sparse { idf: cfg.modifier == Some(Modifier::Idf) });
        }
    }
    if let Some(e) = edge {
        for (name, p) in &e.vectors {
            let datatype = p.datatype.unwrap_or_default();
            let k = if p.multivector_config.is_some() {
                VectorKind::Multi { size: p.size as usize, distance: p.distance, datatype }
            } else {
                VectorKind::Dense { size: p.size as usize, distance: p.distance, datatype }
            };
            kinds.entry(name.clone()).or_insert(k);
        }
        for (name, p) in &e.sparse_vectors {
            kinds.entry(name.clone()).or_insert(VectorKind::Sparse { idf: p.modifier == Some(Modifier::Idf) });
        }
    }
    Ok(kinds)
}

/// Indexed field map lookup helper.
pub(crate) fn schema_type(schema: &serde_json::Value) -> Option<&str> {
    match schema {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(m) => m.get("type").and_then(|t| t.as_str()),
        _ => None,
    }
}
