//! `optimize`: vacuum and merge segments into Qdrant's non-appendable (optimized) formats.
//!
//! Planning follows Qdrant's optimizer thresholds from `edge_config.json` `optimizers`:
//! * **vacuum** a segment whose deleted share of points reaches `deleted_threshold` (0.2) with at
//!   least `vacuum_min_vector_number` (1000) deleted points;
//! * **merge** the smallest segments while there are more than `default_segment_number`
//!   (0 = automatic, which here means 2) and the merged size stays under `max_segment_size`;
//! * **index** an appendable segment whose largest dense vector storage reaches
//!   `indexing_threshold` KB (10 000; 0 disables indexing, as in Qdrant).
//!
//! **HNSW graphs.** When the rewritten group's largest vector storage reaches the indexing
//! threshold, every dense vector and multivector of the new segment gets `index: {type: hnsw,
//! options: …}` with the vector's own `hnsw_config`, else the shard's, else Qdrant's defaults
//! (m 16, ef_construct 100, full_scan_threshold 10 000 KB; a per-vector config replaces the
//! shard's whole, fields are not merged), and a graph in `vector_index-<name>/` built by
//! [`crate::index::hnsw_build`] over the points that have the vector (fixed seed per vector
//! name, so optimizing the same data twice writes the same files). `hnsw_config.json` holds
//! Qdrant's derived values: `full_scan_threshold` converted from KB to a number of vectors of
//! the average stored size over all points of the segment, `indexed_vector_count` = points with
//! the vector (what `info` sums), `ef = ef_construct`, `m0 = 2·m`. As in Qdrant, the graph also
//! gets payload-aware links: a small graph with `payload_m` (default `m`) over each block of
//! points sharing an indexed payload value, merged into the level-0 lists
//! ([`crate::index::payload_blocks`], [`crate::index::hnsw_build::add_payload_links`]).
//! Below the threshold the index stays plain.
//!
//! The chosen segments are rewritten as one new segment: immutable id tracker
//! (`id_tracker.mappings/.versions/.deleted`), immutable dense storage (`matrix.dat` +
//! `deleted.dat`), multivectors in their chunked layout, sparse vectors in a Gridstore with
//! Qdrant's immutable inverted index (a RAM one below the indexing threshold), payloads in a
//! Gridstore, the payload indexes in Qdrant's immutable formats, and for every vector with a
//! binary or scalar int8 `quantization_config` Qdrant's immutable quantized storage
//! ([`crate::format::binary_quantized_write::write_immutable_binary_storage`],
//! [`crate::format::scalar_quantized_write`]; product quantization is not written yet, so such
//! vectors are searched unquantized in our segments). The new segment becomes visible only when its
//! `version.info` is written; the old segments are then renamed to `<uuid>.deleted` and removed.
//! A crash in between leaves either the old segments, or both (the merge by version then shows
//! each point once), never a partial segment. A fresh appendable segment is created if none is
//! left.

use super::{EdgeShard, VectorKind};
use crate::error::{Error, Result};
use crate::format::binary_quantized_write::{write_immutable_binary_storage, QuantInput};
use crate::format::field_index_write::config_set_field;
use crate::format::gridstore_write::{GridstoreConfig, GridstoreWriter};
use crate::format::hnsw_write::{write_hnsw_index, HnswFileConfig};
use crate::format::immutable_index::build_optimized_field_index;
use crate::format::names;
use crate::format::scalar_quantized_write::write_scalar_quantized_storage;
use crate::format::segment_meta::{
    HnswConfig, Indexes, QuantizationConfig, SegmentConfig, SegmentState, SparseIndexType, VectorDataConfig,
    VectorStorageType,
};
use crate::format::segment_write::{
    create_appendable_segment, write_payload_index_config, write_segment_state, write_version_info, MultiVectorWriter,
    SparseDeletedFlags, SparseStoreOp,
};
use crate::format::sparse_index::write_immutable_sparse_index;
use crate::index::hnsw_build::{add_payload_links, build_hnsw, HnswBuildParams};
use crate::index::payload_blocks::PayloadBlocks;
use crate::index::GraphVectors;
use crate::segment::Segment;
use crate::storage::{join, Memory, Storage};
use crate::types::{Datatype, PointId, VectorValue};

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
        let indexing_kb = self.indexing_threshold_kb();
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
        let hnsw_config = |name: &str| match config.vector_data.get(name).map(|v| &v.index) {
            Some(Indexes::Hnsw(h)) => Some(*h),
            _ => None,
        };
        // The indexed payload fields of the new segment's points, for payload-aware links.
        let blocks = if self.vector_kinds.keys().any(|n| hnsw_config(n).is_some()) && !self.indexed_fields.is_empty() {
            let fields = self
                .indexed_fields
                .iter()
                .filter_map(|(path, schema)| {
                    let jp = crate::query::json_path::JsonPath::parse(path)?;
                    Some((path.clone(), (schema.clone(), self.filter_ctx.indexes(&jp).to_vec())))
                })
                .collect();
            let mut payloads = Vec::with_capacity(points.len());
            for (_, si, internal, _) in &points {
                payloads.push(self.segments[*si].payload(*internal)?);
            }
            PayloadBlocks::new(&fields, &payloads)
        } else {
            PayloadBlocks::new(&Default::default(), &[])
        };
        // Vectors.
        for (name, kind) in &self.vector_kinds {
            let vdir = join(&dir, &names::vector_storage_dir(name));
            match kind {
                VectorKind::Dense { size, datatype, distance } => {
                    st.create_dir_all(&vdir)?;
                    let row = *size * datatype.size().unwrap_or(4);
                    let mut matrix = Vec::with_capacity(4 + row * points.len());
                    matrix.extend_from_slice(b"data");
                    let mut deleted = vec![0u8; deleted_dat_len(n)];
                    deleted[..4].copy_from_slice(b"drop");
                    let mut graph = hnsw_config(name).map(|_| GraphVectors::new(*distance, *datatype, *size));
                    let vcfg = config.vector_data.get(name);
                    let mut quant = quantized_written(vcfg).then(|| Vec::with_capacity(points.len()));
                    for (k, (id, si, internal, _)) in points.iter().enumerate() {
                        match self.segments[*si].vector(name, *internal)? {
                            Some(VectorValue::Dense(v)) if v.len() == *size => {
                                let row = crate::spaces::encode_row(*datatype, &v);
                                if let Some(g) = graph.as_mut() {
                                    g.push([row.as_slice()]);
                                }
                                if let Some(q) = quant.as_mut() {
                                    q.push(QuantInput { present: true, inner: vec![stored_values(*datatype, &row)] });
                                }
                                matrix.extend_from_slice(&row)
                            }
                            Some(_) => {
                                return Err(Error::Internal(format!("point {id}: vector `{name}` has the wrong kind")))
                            }
                            None => {
                                // Absent: Qdrant writes a placeholder row and flags it deleted.
                                let row = crate::spaces::encode_row(*datatype, &vec![1.0; *size]);
                                if let Some(q) = quant.as_mut() {
                                    q.push(QuantInput { present: false, inner: vec![stored_values(*datatype, &row)] });
                                }
                                matrix.extend_from_slice(&row);
                                deleted[8 + k / 8] |= 1 << (k % 8);
                                if let Some(g) = graph.as_mut() {
                                    g.push([]);
                                }
                            }
                        }
                    }
                    write_file(st, &join(&vdir, "matrix.dat"), &matrix)?;
                    write_file(st, &join(&vdir, "deleted.dat"), &deleted)?;
                    if let (Some(q), Some(c)) = (quant, vcfg) {
                        write_quantized(st, &dir, name, c, &q)?;
                    }
                    if let (Some(g), Some(h)) = (graph, hnsw_config(name)) {
                        // Available bytes: the rows of the points that have the vector.
                        let present = (0..n).filter(|&i| g.has(i)).count() as u64;
                        let available = present * (*size * datatype.size().unwrap_or(4)) as u64;
                        write_graph(st, &join(&dir, &names::vector_index_dir(name)), name, &g, &h, available, &blocks)?;
                    }
                }
                VectorKind::Multi { size, datatype, distance } => {
                    // Multivectors keep the chunked layout in optimized segments too (§5.5).
                    let mut cfg = config
                        .vector_data
                        .get(name)
                        .cloned()
                        .ok_or_else(|| Error::Internal(format!("no config for `{name}`")))?;
                    cfg.storage_type = VectorStorageType::InRamChunkedMmap;
                    let mut w = MultiVectorWriter::create(st, &dir, name, &cfg)?;
                    let mut graph = hnsw_config(name).map(|_| GraphVectors::new(*distance, *datatype, *size));
                    // Stored inner vectors, an absent point's one-vector placeholder included.
                    let mut inner = 0u64;
                    let mut quant = quantized_written(Some(&cfg)).then(|| Vec::with_capacity(points.len()));
                    for (k, (_, si, internal, _)) in points.iter().enumerate() {
                        match self.segments[*si].vector(name, *internal)? {
                            Some(VectorValue::Multi(m)) => {
                                let rows: Vec<Vec<u8>> =
                                    m.iter().map(|v| crate::spaces::encode_row(*datatype, v)).collect();
                                if let Some(g) = graph.as_mut() {
                                    g.push(rows.iter().map(Vec::as_slice));
                                }
                                if let Some(q) = quant.as_mut() {
                                    let inner = rows.iter().map(|r| stored_values(*datatype, r)).collect();
                                    q.push(QuantInput { present: true, inner });
                                }
                                inner += m.len() as u64;
                                w.put(k as u32, Some(&m))?
                            }
                            _ => {
                                if let Some(g) = graph.as_mut() {
                                    g.push([]);
                                }
                                // Qdrant's placeholder: one all-zero inner vector.
                                if let Some(q) = quant.as_mut() {
                                    q.push(QuantInput { present: false, inner: vec![vec![0.0; *size]] });
                                }
                                inner += 1;
                                w.put(k as u32, None)?
                            }
                        }
                    }
                    w.flush()?;
                    if let Some(q) = quant {
                        write_quantized(st, &dir, name, &cfg, &q)?;
                    }
                    if let (Some(g), Some(h)) = (graph, hnsw_config(name)) {
                        // Qdrant's multivector storage reports its stored bytes scaled by the
                        // share of points that have the vector.
                        let present = (0..n).filter(|&i| g.has(i)).count() as u64;
                        let stored = inner * (*size * datatype.size().unwrap_or(4)) as u64;
                        let available =
                            if n == 0 { 0 } else { (u128::from(stored) * u128::from(present) / u128::from(n)) as u64 };
                        write_graph(st, &join(&dir, &names::vector_index_dir(name)), name, &g, &h, available, &blocks)?;
                    }
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

    /// The config of an optimized segment: immutable dense storage, the same vectors, an HNSW
    /// index for every dense vector and multivector when the group's largest vector storage
    /// reaches the indexing threshold (else plain), sparse vectors with Qdrant's index type for
    /// the segment's size.
    fn optimized_config(&self, group: &[usize]) -> SegmentConfig {
        let base =
            group.first().map(|&i| self.segments[i].state.config.clone()).unwrap_or_else(|| self.appendable_config());
        let is_big = self.group_vectors_bytes(group) >= self.indexing_threshold_kb().saturating_mul(1024);
        let mut cfg = self.appendable_config();
        cfg.payload_storage_type = base.payload_storage_type;
        for (name, v) in cfg.vector_data.iter_mut() {
            let on_disk = v.storage_type == VectorStorageType::ChunkedMmap;
            v.storage_type = if on_disk { VectorStorageType::Mmap } else { VectorStorageType::InRamMmap };
            v.index = if is_big { Indexes::Hnsw(self.vector_hnsw_config(name, &base)) } else { Indexes::Plain {} };
        }
        // Sparse vectors get Qdrant's immutable inverted index once the segment passes the
        // indexing threshold (edge has no mmap threshold): `Mmap` when the vector asks for a
        // cold or cached placement (`memory`, or `on_disk: true`), else `ImmutableRam`.
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

    /// `optimizers.indexing_threshold` in KB: 10 000 when unset, and 0 disables indexing (as in
    /// Qdrant, which then never indexes nor builds HNSW graphs).
    fn indexing_threshold_kb(&self) -> u64 {
        match self.edge_config.as_ref().and_then(|c| c.optimizers.as_ref()).and_then(|o| o.indexing_threshold) {
            None => DEFAULT_INDEXING_THRESHOLD_KB,
            Some(0) => u64::MAX,
            Some(kb) => kb,
        }
    }

    /// HNSW parameters of vector `name`: its own `hnsw_config` if set, else the shard's, else
    /// Qdrant's defaults (Qdrant replaces the whole config, it does not merge fields). Without an
    /// `edge_config.json`, the graph config of a segment being optimized is kept.
    fn vector_hnsw_config(&self, name: &str, base: &SegmentConfig) -> HnswConfig {
        if let Some(c) = &self.edge_config {
            return c
                .vectors
                .get(name)
                .and_then(|v| v.hnsw_config)
                .or(c.hnsw_config)
                .unwrap_or_else(default_hnsw_config);
        }
        match base.vector_data.get(name).map(|v| &v.index) {
            Some(Indexes::Hnsw(h)) => *h,
            _ => default_hnsw_config(),
        }
    }

    /// The largest dense vector storage of the live points of `group`, per vector name summed
    /// over the segments (what Qdrant compares with its thresholds for the merged segment).
    fn group_vectors_bytes(&self, group: &[usize]) -> u64 {
        self.largest_vector_bytes(group.iter().map(|&i| self.segments[i].id_tracker.live_count() as u64).sum())
    }
}

/// Qdrant's default HNSW parameters (`HnswConfig::default()`).
fn default_hnsw_config() -> HnswConfig {
    HnswConfig {
        m: 16,
        ef_construct: 100,
        full_scan_threshold: 10_000,
        max_indexing_threads: 0,
        on_disk: Some(false),
        memory: None,
        payload_m: None,
        inline_storage: None,
    }
}

/// Seed of a vector's graph build: fixed per vector name, so builds are reproducible.
fn graph_seed(name: &str) -> u64 {
    // FNV-1a
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Build the HNSW graph of one vector of a new segment and write its files into `index_dir`.
/// `available` is the byte size Qdrant's storage reports for the vectors present; like Qdrant,
/// `full_scan_threshold` (KB in the config) becomes a number of vectors of the average size
/// over all points, and the graph keeps `max(1, points / full_scan_threshold * 10)` extra entry
/// points; then the payload-aware links of `blocks`.
fn write_graph(
    st: &dyn Storage,
    index_dir: &str,
    name: &str,
    vectors: &GraphVectors,
    h: &HnswConfig,
    available: u64,
    blocks: &PayloadBlocks,
) -> Result<()> {
    let n = vectors.len() as u64;
    let full_scan_threshold = available
        .checked_div(n)
        .and_then(|avg| h.full_scan_threshold.saturating_mul(1024).checked_div(avg))
        .unwrap_or(1);
    let m = h.m as usize;
    let params = HnswBuildParams {
        m,
        m0: 2 * m,
        ef_construct: h.ef_construct as usize,
        extra_entry_points: (n.checked_div(full_scan_threshold).unwrap_or(0) * 10).max(1) as usize,
        seed: graph_seed(name),
    };
    let indexed: Vec<bool> = (0..vectors.len() as u32).map(|i| vectors.has(i)).collect();
    let mut graph = build_hnsw(&indexed, params, vectors);
    let payload_m = h.payload_m.unwrap_or(h.m) as usize;
    add_payload_links(
        &mut graph,
        &indexed,
        &blocks.blocks(full_scan_threshold as usize),
        payload_m,
        h.ef_construct as usize,
        full_scan_threshold as usize,
        vectors,
    );
    let file_config = HnswFileConfig {
        m: h.m,
        m0: 2 * h.m,
        ef_construct: h.ef_construct,
        ef: h.ef_construct,
        full_scan_threshold,
        max_indexing_threads: h.max_indexing_threads,
        payload_m: h.payload_m,
        payload_m0: h.payload_m.map(|p| 2 * p),
        indexed_vector_count: Some(indexed.iter().filter(|&&x| x).count() as u64),
    };
    write_hnsw_index(st, index_dir, &graph, &file_config)
}

/// Whether the vector's config asks for a quantization our optimize writes (binary, scalar;
/// product quantization is not written yet).
fn quantized_written(cfg: Option<&VectorDataConfig>) -> bool {
    matches!(
        cfg.and_then(|c| c.quantization_config.as_ref()),
        Some(QuantizationConfig::Binary { .. } | QuantizationConfig::Scalar { .. })
    )
}

/// Write the quantized storage (binary or scalar) of vector `name` of the new segment.
fn write_quantized(st: &dyn Storage, dir: &str, name: &str, cfg: &VectorDataConfig, q: &[QuantInput]) -> Result<()> {
    write_immutable_binary_storage(st, dir, name, cfg, q)?;
    write_scalar_quantized_storage(st, dir, name, cfg, q)
}

/// The values of a stored row, widened to `f32`.
fn stored_values(datatype: Datatype, row: &[u8]) -> Vec<f32> {
    match datatype {
        Datatype::Float16 => row.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Datatype::Uint8 => row.iter().map(|&b| f32::from(b)).collect(),
        _ => row.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
    }
}

/// `deleted.dat` length: 8-byte header then the bit vector rounded up to whole u64 words.
fn deleted_dat_len(n: u32) -> usize {
    8 + (n as usize).div_ceil(8).div_ceil(8) * 8
}

fn write_file(st: &dyn Storage, path: &str, data: &[u8]) -> Result<()> {
    Ok(crate::storage::write_file(st, path, data)?)
}
