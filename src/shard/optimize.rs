//! `optimize`: vacuum and merge segments into Qdrant's non-appendable (optimized) formats.
//!
//! Planning follows Qdrant's optimizer thresholds from `edge_config.json` `optimizers`:
//! * **vacuum** a segment whose deleted share of points reaches `deleted_threshold` (0.2) with at
//!   least `vacuum_min_vector_number` (1000) deleted points;
//! * **merge** the smallest segments while there are more than `default_segment_number`
//!   (0 = automatic, which here means 2) and the merged size stays under `max_segment_size`;
//! * **index** an appendable segment whose largest dense vector storage reaches
//!   `indexing_threshold` KB (10 000).
//!   HNSW building belongs to the HNSW work; until then the optimized segment keeps a plain
//!   index, and `info` counts no indexed vectors for it, as qdrant-edge reports plain indexes.
//!
//! The chosen segments are rewritten as one new segment: immutable id tracker
//! (`id_tracker.mappings/.versions/.deleted`), immutable dense storage (`matrix.dat` +
//! `deleted.dat`), multivectors in their chunked layout, sparse vectors in a Gridstore with
//! Qdrant's immutable inverted index (a RAM one below the indexing threshold), payloads in a
//! Gridstore, and the payload indexes in Qdrant's immutable formats. The new segment becomes visible only when its
//! `version.info` is written; the old segments are then renamed to `<uuid>.deleted` and removed.
//! A crash in between leaves either the old segments, or both (the merge by version then shows
//! each point once), never a partial segment. A fresh appendable segment is created if none is
//! left.

use super::{EdgeShard, VectorKind};
use crate::error::{Error, Result};
use crate::format::field_index_write::config_set_field;
use crate::format::gridstore_write::{GridstoreConfig, GridstoreWriter};
use crate::format::immutable_index::build_optimized_field_index;
use crate::format::names;
use crate::format::segment_meta::{Indexes, SegmentConfig, SegmentState, SparseIndexType, VectorStorageType};
use crate::format::segment_write::{
    create_appendable_segment, write_payload_index_config, write_segment_state, write_version_info, MultiVectorWriter,
    SparseDeletedFlags, SparseStoreOp,
};
use crate::format::sparse_index::write_immutable_sparse_index;
use crate::segment::Segment;
use crate::storage::{join, Memory, Storage};
use crate::types::{PointId, VectorValue};

const DEFAULT_INDEXING_THRESHOLD_KB: u64 = 10_000;
const DEFAULT_DELETED_THRESHOLD: f64 = 0.2;
const DEFAULT_VACUUM_MIN_VECTOR_NUMBER: u64 = 1000;
const AUTO_SEGMENT_NUMBER: usize = 2;

impl EdgeShard {
    /// Run the optimizers until none plans anything; returns whether any segment changed.
    pub fn optimize(&mut self) -> Result<bool> {
        self.check_writable()?;
        self.flush()?;
        let mut changed = false;
        // Each pass rewrites one group of segments; a handful of passes always converge.
        for _ in 0..8 {
            let plan = self.plan_optimization()?;
            if plan.is_empty() {
                break;
            }
            if let Err(e) = self.rewrite_segments(&plan) {
                return Err(self.fail(e));
            }
            changed = true;
        }
        Ok(changed)
    }

    fn plan_optimization(&self) -> Result<Vec<usize>> {
        let opts = self.edge_config.as_ref().and_then(|c| c.optimizers.clone()).unwrap_or_default();
        let deleted_threshold = opts.deleted_threshold.unwrap_or(DEFAULT_DELETED_THRESHOLD);
        let vacuum_min = opts.vacuum_min_vector_number.map_or(DEFAULT_VACUUM_MIN_VECTOR_NUMBER, |v| v);
        let indexing_kb = opts.indexing_threshold.map_or(DEFAULT_INDEXING_THRESHOLD_KB, |v| v);
        let target_segments = match opts.default_segment_number {
            Some(n) if n > 0 => n as usize,
            _ => AUTO_SEGMENT_NUMBER,
        };
        let max_segment_kb = opts.max_segment_size;

        // Vacuum.
        for (i, s) in self.segments.iter().enumerate() {
            let total = s.id_tracker.total_point_count();
            let live = s.id_tracker.live_count() as u64;
            let deleted = total.saturating_sub(live);
            if total > 0 && deleted >= vacuum_min && deleted as f64 / total as f64 >= deleted_threshold {
                return Ok(vec![i]);
            }
        }
        // Indexing: an appendable segment that grew past the threshold becomes optimized.
        for (i, s) in self.segments.iter().enumerate() {
            if s.appendable
                && self.vectors_bytes(s) >= indexing_kb.saturating_mul(1024)
                && s.id_tracker.live_count() > 0
            {
                return Ok(vec![i]);
            }
        }
        // Merge the smallest non-empty segments while there are too many.
        let mut sized: Vec<(u64, usize)> = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.id_tracker.live_count() > 0)
            .map(|(i, s)| (self.vectors_bytes(s), i))
            .collect();
        if sized.len() > target_segments {
            sized.sort();
            let mut group = Vec::new();
            let mut size = 0;
            for (kb, i) in sized {
                if group.len() >= 2 && max_segment_kb.is_some_and(|m| size + kb > m.saturating_mul(1024)) {
                    break;
                }
                size += kb;
                group.push(i);
                if self.segments.len() - group.len() < target_segments {
                    break;
                }
            }
            if group.len() >= 2 {
                return Ok(group);
            }
        }
        Ok(Vec::new())
    }

    /// Bytes of the largest dense vector storage of a segment's live points, as Qdrant's
    /// optimizers compare with their thresholds (per vector, `>=`).
    fn vectors_bytes(&self, s: &Segment) -> u64 {
        self.largest_vector_bytes(s.id_tracker.live_count() as u64)
    }

    /// Bytes of the largest dense vector storage for `live` points.
    fn largest_vector_bytes(&self, live: u64) -> u64 {
        self.vector_kinds
            .values()
            .map(|k| match k {
                VectorKind::Dense { size, datatype, .. } | VectorKind::Multi { size, datatype, .. } => {
                    live * (*size as u64) * datatype.size().unwrap_or(4) as u64
                }
                VectorKind::Sparse { .. } => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Rewrite `group` (segment indexes) as one optimized segment, then retire them.
    fn rewrite_segments(&mut self, group: &[usize]) -> Result<()> {
        let storage = self.storage.clone();
        let st = &*storage;
        let seg_root = join(&self.root, names::SEGMENTS_DIR);
        let uuid = super::write::new_uuid();
        let dir = join(&seg_root, &uuid);
        st.create_dir_all(&dir)?;

        // The points to keep: live in a grouped segment and winning the merge there.
        let mut points: Vec<(PointId, usize, u32, u64)> = Vec::new();
        for &si in group {
            for (id, internal, version) in self.segments[si].live_points() {
                let wins =
                    self.points.get(&id).is_some_and(|r| r.loc == super::Loc::Segment { seg: si as u32, internal });
                if wins {
                    points.push((id, si, internal, version));
                }
            }
        }
        points.sort_by_key(|p| p.0);
        let n = u32::try_from(points.len()).map_err(|_| Error::Internal("too many points for one segment".into()))?;

        let config = self.optimized_config(group);
        // Vectors.
        for (name, kind) in &self.vector_kinds {
            let vdir = join(&dir, &names::vector_storage_dir(name));
            match kind {
                VectorKind::Dense { size, datatype, .. } => {
                    st.create_dir_all(&vdir)?;
                    let row = *size * datatype.size().unwrap_or(4);
                    let mut matrix = Vec::with_capacity(4 + row * points.len());
                    matrix.extend_from_slice(b"data");
                    let mut deleted = vec![0u8; deleted_dat_len(n)];
                    deleted[..4].copy_from_slice(b"drop");
                    for (k, (id, si, internal, _)) in points.iter().enumerate() {
                        match self.segments[*si].vector(name, *internal)? {
                            Some(VectorValue::Dense(v)) if v.len() == *size => {
                                matrix.extend_from_slice(&crate::spaces::encode_row(*datatype, &v))
                            }
                            Some(_) => {
                                return Err(Error::Internal(format!("point {id}: vector `{name}` has the wrong kind")))
                            }
                            None => {
                                // Absent: Qdrant writes a placeholder row and flags it deleted.
                                matrix.extend_from_slice(&crate::spaces::encode_row(*datatype, &vec![1.0; *size]));
                                deleted[8 + k / 8] |= 1 << (k % 8);
                            }
                        }
                    }
                    write_file(st, &join(&vdir, "matrix.dat"), &matrix)?;
                    write_file(st, &join(&vdir, "deleted.dat"), &deleted)?;
                }
                VectorKind::Multi { .. } => {
                    // Multivectors keep the chunked layout in optimized segments too (§5.5).
                    let mut cfg = config
                        .vector_data
                        .get(name)
                        .cloned()
                        .ok_or_else(|| Error::Internal(format!("no config for `{name}`")))?;
                    cfg.storage_type = VectorStorageType::InRamChunkedMmap;
                    let mut w = MultiVectorWriter::create(st, &dir, name, &cfg)?;
                    for (k, (_, si, internal, _)) in points.iter().enumerate() {
                        match self.segments[*si].vector(name, *internal)? {
                            Some(VectorValue::Multi(m)) => w.put(k as u32, Some(&m))?,
                            _ => w.put(k as u32, None)?,
                        }
                    }
                    w.flush()?;
                }
                VectorKind::Sparse { .. } => {
                    st.create_dir_all(&vdir)?;
                    let mut store =
                        GridstoreWriter::create(st, &join(&vdir, "store"), GridstoreConfig::sparse_vectors())?;
                    let mut flags = SparseDeletedFlags::create(st, &vdir)?;
                    for (k, (_, si, internal, _)) in points.iter().enumerate() {
                        let v = match self.segments[*si].vector(name, *internal)? {
                            Some(VectorValue::Sparse(s)) => Some(s),
                            _ => None,
                        };
                        match flags.put(k as u32, v.as_ref())? {
                            SparseStoreOp::Put(b) => store.put(k as u32, &b)?,
                            SparseStoreOp::Delete => store.delete(k as u32)?,
                        }
                    }
                    store.flush(st)?;
                    flags.flush()?;
                    let idir = join(&dir, &names::vector_index_dir(name));
                    st.create_dir_all(&idir)?;
                    let index_cfg = config.sparse_vector_data.get(name).map(|c| &c.index);
                    if let Some(index_cfg) = index_cfg.filter(|c| c.index_type != SparseIndexType::MutableRam) {
                        let mut vectors = Vec::new();
                        for (k, (_, si, internal, _)) in points.iter().enumerate() {
                            if let Some(VectorValue::Sparse(v)) = self.segments[*si].vector(name, *internal)? {
                                vectors.push((k as u32, v.sorted()));
                            }
                        }
                        write_immutable_sparse_index(st, &idir, index_cfg, &vectors)?;
                    }
                }
            }
        }
        // Payloads.
        let mut payloads =
            GridstoreWriter::create(st, &join(&dir, names::PAYLOAD_STORAGE_DIR), GridstoreConfig::payload())?;
        for (k, (_, si, internal, _)) in points.iter().enumerate() {
            let p = self.segments[*si].payload(*internal)?;
            if !p.is_empty() {
                let bytes = serde_json::to_vec(&*p).map_err(|e| Error::Internal(e.to_string()))?;
                payloads.put(k as u32, &bytes)?;
            }
        }
        payloads.flush(st)?;
        write_payload_index_config(st, &dir, &Default::default())?;
        // The shard's payload indexes, built for the new segment in Qdrant's immutable formats
        // (geo and text: its mutable ones).
        for (field, schema) in self.indexed_fields.clone() {
            let mut entries = Vec::with_capacity(points.len());
            for (k, (_, si, internal, _)) in points.iter().enumerate() {
                entries.push((k as u32, (*self.segments[*si].payload(*internal)?).clone()));
            }
            let types = build_optimized_field_index(st, &dir, &field, &schema, entries)?;
            config_set_field(st, &dir, &field, &schema, &types)?;
        }

        // Immutable id tracker: mappings, versions, deleted.
        let mut mappings = Vec::with_capacity(8 + points.len() * 21);
        mappings.extend_from_slice(&(n as u64).to_le_bytes());
        let mut versions = Vec::with_capacity(points.len() * 8);
        for (k, (id, _, _, version)) in points.iter().enumerate() {
            match id {
                PointId::Num(x) => {
                    mappings.push(0);
                    mappings.extend_from_slice(&x.to_le_bytes());
                }
                PointId::Uuid(u) => {
                    mappings.push(1);
                    mappings.extend_from_slice(u.as_bytes());
                }
            }
            mappings.extend_from_slice(&(k as u32).to_le_bytes());
            versions.extend_from_slice(&version.to_le_bytes());
        }
        write_file(st, &join(&dir, "id_tracker.mappings"), &mappings)?;
        write_file(st, &join(&dir, "id_tracker.versions"), &versions)?;
        write_file(st, &join(&dir, "id_tracker.deleted"), &vec![0u8; (n as usize).div_ceil(8).div_ceil(8) * 8])?;

        let version = points
            .iter()
            .map(|p| p.3)
            .max()
            .unwrap_or(0)
            .max(group.iter().map(|&i| self.segments[i].version()).max().unwrap_or(0));
        let state = SegmentState { initial_version: Some(version), version: Some(version), config };
        write_segment_state(st, &dir, &state)?;
        st.sync_dir(&dir)?;
        // The new segment exists from here on.
        write_version_info(st, &dir)?;
        st.sync_dir(&seg_root)?;

        // Retire the old segments: rename (atomic) then remove.
        for &si in group {
            let old = self.segments[si].dir.clone();
            let gone = format!("{old}.deleted");
            st.rename(&old, &gone)?;
            st.sync_dir(&seg_root)?;
            st.remove_dir_all(&gone)?;
        }
        // Keep one appendable segment for new writes.
        let has_appendable = self.segments.iter().enumerate().any(|(i, s)| s.appendable && !group.contains(&i));
        if !has_appendable {
            create_appendable_segment(st, &seg_root, &super::write::new_uuid(), &self.appendable_config())?;
        }
        self.reload_segments()
    }

    /// The config of an optimized segment: immutable dense storage with a plain index (HNSW
    /// building comes with the HNSW work), the same vectors, sparse vectors with Qdrant's
    /// index type for the segment's size.
    fn optimized_config(&self, group: &[usize]) -> SegmentConfig {
        let base =
            group.first().map(|&i| self.segments[i].state.config.clone()).unwrap_or_else(|| self.appendable_config());
        let mut cfg = self.appendable_config();
        cfg.payload_storage_type = base.payload_storage_type;
        for v in cfg.vector_data.values_mut() {
            let on_disk = v.storage_type == VectorStorageType::ChunkedMmap;
            v.storage_type = if on_disk { VectorStorageType::Mmap } else { VectorStorageType::InRamMmap };
            v.index = Indexes::Plain {};
        }
        // Sparse vectors get Qdrant's immutable inverted index once the segment passes the
        // indexing threshold (edge has no mmap threshold): `Mmap` when the vector asks for a
        // cold or cached placement (`memory`, or `on_disk: true`), else `ImmutableRam`.
        let indexing_kb = self
            .edge_config
            .as_ref()
            .and_then(|c| c.optimizers.as_ref())
            .and_then(|o| o.indexing_threshold)
            .unwrap_or(DEFAULT_INDEXING_THRESHOLD_KB);
        let is_big = self.group_vectors_bytes(group) >= indexing_kb.saturating_mul(1024);
        for (name, s) in cfg.sparse_vector_data.iter_mut() {
            let params = self.edge_config.as_ref().and_then(|c| c.sparse_vectors.get(name));
            let memory =
                params.and_then(|p| p.memory.or(p.on_disk.map(|d| if d { Memory::Cold } else { Memory::Pinned })));
            s.index.index_type = match (is_big, memory.unwrap_or(Memory::Pinned)) {
                (false, _) => SparseIndexType::MutableRam,
                (true, Memory::Cold | Memory::Cached) => SparseIndexType::Mmap,
                (true, Memory::Pinned) => SparseIndexType::ImmutableRam,
            };
        }
        cfg
    }

    /// The largest dense vector storage of the live points of `group`, per vector name summed
    /// over the segments (what Qdrant compares with its thresholds for the merged segment).
    fn group_vectors_bytes(&self, group: &[usize]) -> u64 {
        self.largest_vector_bytes(group.iter().map(|&i| self.segments[i].id_tracker.live_count() as u64).sum())
    }
}

/// `deleted.dat` length: 8-byte header then the bit vector rounded up to whole u64 words.
fn deleted_dat_len(n: u32) -> usize {
    8 + (n as usize).div_ceil(8).div_ceil(8) * 8
}

fn write_file(st: &dyn Storage, path: &str, data: &[u8]) -> Result<()> {
    Ok(crate::storage::write_file(st, path, data)?)
}
