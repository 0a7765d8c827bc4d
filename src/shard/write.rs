//! The write path: `create`, `update` (WAL first, then the in-memory overlay), `flush`
//! (materialise the overlay into Qdrant's appendable formats, then acknowledge the WAL) and
//! `close`.
//!
//! Durability contract: when `update` returns `Ok`, its WAL entry is written and synced, so it
//! survives a crash to the degree the backend's `sync` promises (see the README's backend
//! table). Segment files change only in `flush`, in Qdrant's order — id mappings, then vectors
//! and payloads, then versions, then `segment.json` — and the WAL is acknowledged only after
//! that, so a crash at any point reloads to the acknowledged state by WAL replay. A storage
//! error makes the shard refuse further writes (sticky), so nothing half-applied is flushed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::{EdgeShard, Loc, VectorKind};
use crate::error::{Error, Result};
use crate::format::binary_quantized_write::BinaryQuantizedWriter;
use crate::format::field_index_write::{
    build_field_index, config_set_field, drop_field_index, mutable_index_types, FieldIndexWriter,
};
use crate::format::gridstore_write::GridstoreWriter;
use crate::format::immutable_index::build_optimized_field_index;
use crate::format::names;
use crate::format::quantized::drop_unwritable_mutable_storage;
use crate::format::segment_meta::{
    EdgeConfig, Indexes, PayloadStorageType, SegmentConfig, SparseIndexConfig, SparseIndexType, SparseVectorDataConfig,
    SparseVectorStorageType, VectorDataConfig, VectorStorageType,
};
use crate::format::segment_write::{
    create_appendable_segment, write_segment_state, DenseVectorWriter, ImmutableIdTrackerUpdater, MultiVectorWriter,
    MutableIdTrackerWriter, SparseDeletedFlags, SparseStoreOp,
};
use crate::format::wal_write::{WalOptions as WalWriterOptions, WalWriter};
use crate::operations::{encode_record, PointsSelector, UpdateOperation};
use crate::query::filter::parse_filter;
use crate::segment::{list_segment_dirs, Segment};
use crate::storage::{join, Storage};
use crate::types::VectorValue;

impl EdgeShard {
    /// Create a new shard at `root` with `config`. Fails if segments already exist there.
    pub fn create(storage: Arc<dyn Storage>, root: &str, config: EdgeConfig) -> Result<EdgeShard> {
        validate_config(&config)?;
        storage.create_dir_all(root)?;
        if !list_segment_dirs(&*storage, root)?.is_empty() {
            return Err(Error::invalid(format!("`{root}` already holds segments; load it instead of creating it")));
        }
        let cfg_json = serde_json::to_vec(&config).map_err(|e| Error::Internal(e.to_string()))?;
        storage.write_atomic(&join(root, names::EDGE_CONFIG_FILE), &cfg_json)?;
        let seg_root = join(root, names::SEGMENTS_DIR);
        storage.create_dir_all(&seg_root)?;
        create_appendable_segment(&*storage, &seg_root, &new_uuid(), &segment_config_from(&config))?;
        if config.wal_enabled != Some(false) {
            WalWriter::create(storage.clone(), &join(root, names::WAL_DIR), wal_options(&config))?;
        }
        storage.sync_dir(root)?;
        EdgeShard::load(storage, root)
    }

    /// Load the shard at `root`, checking that `config` describes the same vectors as the stored
    /// data (names, sizes, distances, datatypes, multivector and IDF settings), as qdrant-edge
    /// does; on success `config` replaces `edge_config.json`.
    pub fn load_with_config(storage: Arc<dyn Storage>, root: &str, config: EdgeConfig) -> Result<EdgeShard> {
        validate_config(&config)?;
        let mut shard = EdgeShard::load(storage.clone(), root)?;
        let wanted = config_vector_kinds(&config);
        if !shard.segments.is_empty() {
            for (name, kind) in &wanted {
                match shard.vector_kinds.get(name) {
                    Some(k) if k == kind => {}
                    Some(k) => {
                        return Err(Error::invalid_field(
                            format!("vectors.{name}"),
                            format!("config is incompatible with existing segments: stored {k:?}, config {kind:?}"),
                        ))
                    }
                    None => {
                        return Err(Error::invalid_field(
                            format!("vectors.{name}"),
                            "config is incompatible with existing segments: no such vector is stored",
                        ))
                    }
                }
            }
            if let Some(name) = shard.vector_kinds.keys().find(|n| !wanted.contains_key(*n)) {
                return Err(Error::invalid_field(
                    "vectors",
                    format!("config is incompatible with existing segments: it lacks the stored vector `{name}`"),
                ));
            }
        }
        let cfg_json = serde_json::to_vec(&config).map_err(|e| Error::Internal(e.to_string()))?;
        storage.write_atomic(&join(root, names::EDGE_CONFIG_FILE), &cfg_json)?;
        shard.vector_kinds = wanted;
        shard.edge_config = Some(config);
        Ok(shard)
    }

    /// Apply one update. Returns its operation number once the WAL entry is durable.
    pub fn update(&mut self, op: UpdateOperation) -> Result<u64> {
        self.check_writable()?;
        self.validate(&op)?;
        let op = self.resolve(op)?;
        let op_num = match self.wal_writer()? {
            Some(wal) => {
                let record = encode_record(&op, None);
                let n = wal.append(&record).and_then(|n| wal.sync().map(|_| n));
                match n {
                    Ok(n) => n,
                    Err(e) => return Err(self.fail(e)),
                }
            }
            None => self.next_op,
        };
        if let Err(e) = self.apply_replayed(op_num, &op) {
            // The WAL holds the operation but memory does not: refuse further writes; a reload
            // replays it.
            return Err(self.fail(e));
        }
        Ok(op_num)
    }

    /// The operation number the next successful [`update`](Self::update) returns: the WAL's
    /// next index (it never goes back, also across reloads), or the shard's counter when there
    /// is no WAL. After a reload, an operation `n` was made durable iff this is above `n`.
    pub fn next_op_num(&mut self) -> Result<u64> {
        let fallback = self.next_op;
        Ok(match self.wal_writer()? {
            Some(w) => w.next_index(),
            None => fallback,
        })
    }

    /// Persist every applied operation into the segments and acknowledge the WAL.
    pub fn flush(&mut self) -> Result<()> {
        self.check_writable()?;
        if self.dirty.is_empty() && self.segment_index_fields() == self.indexed_fields {
            return Ok(());
        }
        if let Err(e) = self.flush_inner() {
            return Err(self.fail(e));
        }
        Ok(())
    }

    /// Flush (unless an earlier write failed) and release the shard, as qdrant-edge's `close`;
    /// later calls fail with `ShardClosed`.
    pub fn close(&mut self) -> Result<()> {
        if self.failed.is_none() && !self.is_closed() {
            self.flush()?;
        }
        self.wal = None;
        self.mark_closed();
        Ok(())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if let Some(why) = &self.failed {
            return Err(Error::Storage(crate::error::StorageError::new(
                "write",
                &self.root,
                crate::error::StorageErrorKind::PreviousIo,
                format!("an earlier write failed ({why}); reload the shard"),
            )));
        }
        Ok(())
    }

    pub(crate) fn fail(&mut self, e: Error) -> Error {
        self.failed = Some(e.to_string());
        e
    }

    /// Whether the shard logs updates in a WAL (`wal_enabled` not false). Without one an
    /// acknowledged update is only durable once flushed, as in qdrant-edge.
    pub fn has_wal(&self) -> Result<bool> {
        if self.wal.is_some() {
            return Ok(true);
        }
        Ok(self.storage.is_dir(&join(&self.root, names::WAL_DIR))?)
    }

    fn wal_writer(&mut self) -> Result<Option<&mut WalWriter>> {
        let dir = join(&self.root, names::WAL_DIR);
        if self.wal.is_none() {
            if !self.storage.is_dir(&dir)? {
                return Ok(None);
            }
            let opts = self.edge_config.as_ref().map(wal_options).unwrap_or_default();
            self.wal = Some(WalWriter::open(self.storage.clone(), &dir, opts)?);
        }
        Ok(self.wal.as_mut())
    }

    /// Turn filter-selected operations into id-selected ones, evaluated now, before logging —
    /// as the Qdrant server logs deletes by filter. Replaying the log then never depends on
    /// what a partially written flush left behind. Ids that name no point are refused, as
    /// qdrant-edge refuses them, before anything is logged.
    fn resolve(&self, op: UpdateOperation) -> Result<UpdateOperation> {
        let ids = |sel: PointsSelector| -> Result<PointsSelector> {
            match sel {
                PointsSelector::Ids(ids) => {
                    if let Some(missing) = ids.iter().find(|id| !self.points.contains_key(id)) {
                        return Err(Error::NotFound(format!("no point with id {missing}")));
                    }
                    Ok(PointsSelector::Ids(ids))
                }
                f @ PointsSelector::Filter(_) => Ok(PointsSelector::Ids(self.select(&f)?)),
            }
        };
        Ok(match op {
            UpdateOperation::DeleteByFilter(f) => {
                UpdateOperation::DeletePoints(self.select(&PointsSelector::Filter(f))?)
            }
            UpdateOperation::SetPayload { payload, selector, key } => {
                UpdateOperation::SetPayload { payload, selector: ids(selector)?, key }
            }
            UpdateOperation::OverwritePayload { payload, selector, key } => {
                UpdateOperation::OverwritePayload { payload, selector: ids(selector)?, key }
            }
            UpdateOperation::DeletePayload { keys, selector } => {
                UpdateOperation::DeletePayload { keys, selector: ids(selector)? }
            }
            UpdateOperation::ClearPayload(selector) => UpdateOperation::ClearPayload(ids(selector)?),
            UpdateOperation::DeleteVectors { selector, names } => {
                UpdateOperation::DeleteVectors { selector: ids(selector)?, names }
            }
            UpdateOperation::UpdateVectors { points, update_filter } => {
                let filter = update_filter.as_ref().map(parse_filter).transpose()?;
                let mut kept = Vec::new();
                for (id, v) in points {
                    let Some(r) = self.points.get(&id).copied() else {
                        return Err(Error::NotFound(format!("no point with id {id}")));
                    };
                    if let Some(f) = &filter {
                        if !self.point_matches(id, r, f)? {
                            continue;
                        }
                    }
                    kept.push((id, v));
                }
                UpdateOperation::UpdateVectors { points: kept, update_filter: None }
            }
            UpdateOperation::UpsertConditional { points, condition, update_mode } => {
                let filter = parse_filter(&condition)?;
                let mut kept = Vec::new();
                for p in points {
                    let exists = self.points.get(&p.id).copied();
                    let go = match (update_mode.unwrap_or_default(), exists) {
                        (crate::operations::UpdateMode::InsertOnly, Some(_)) => false,
                        (crate::operations::UpdateMode::UpdateOnly, None) => false,
                        (_, None) => true,
                        (_, Some(r)) => self.point_matches(p.id, r, &filter)?,
                    };
                    if go {
                        kept.push(p);
                    }
                }
                UpdateOperation::UpsertPoints(kept)
            }
            other => other,
        })
    }

    /// Check an operation against the shard's config before it is logged.
    fn validate(&self, op: &UpdateOperation) -> Result<()> {
        let check_vectors = |vectors: &BTreeMap<String, VectorValue>, field: &str| -> Result<()> {
            for (name, v) in vectors {
                let f = if name.is_empty() { field.to_string() } else { format!("{field}.{name}") };
                let kind = self.vector_kind(name, &f)?;
                let finite = |xs: &[f32]| xs.iter().all(|x| x.is_finite());
                match (kind, v) {
                    (VectorKind::Dense { size, .. }, VectorValue::Dense(d)) => {
                        if d.len() != *size {
                            return Err(Error::invalid_field(f, format!("expected dimension {size}, got {}", d.len())));
                        }
                        if !finite(d) {
                            return Err(Error::invalid_field(f, "vector contains NaN or infinite values"));
                        }
                    }
                    (VectorKind::Multi { size, .. }, VectorValue::Multi(m)) => {
                        if m.is_empty() || m.iter().any(|d| d.len() != *size) {
                            return Err(Error::invalid_field(
                                f,
                                format!("every inner vector must have dimension {size}"),
                            ));
                        }
                        if !m.iter().all(|d| finite(d)) {
                            return Err(Error::invalid_field(f, "vector contains NaN or infinite values"));
                        }
                    }
                    (VectorKind::Multi { size, .. }, VectorValue::Dense(d)) if d.len() == *size && finite(d) => {}
                    (VectorKind::Sparse { .. }, VectorValue::Sparse(s)) => {
                        if s.indices.len() != s.values.len() {
                            return Err(Error::invalid_field(f, "sparse indices and values differ in length"));
                        }
                        if !finite(&s.values) {
                            return Err(Error::invalid_field(f, "vector contains NaN or infinite values"));
                        }
                        let mut seen = BTreeSet::new();
                        if !s.indices.iter().all(|i| seen.insert(*i)) {
                            return Err(Error::invalid_field(f, "sparse indices must be unique"));
                        }
                    }
                    _ => return Err(Error::invalid_field(f, "vector kind does not match the shard's config")),
                }
            }
            Ok(())
        };
        let check_filter = |v: &Value, field: &str| -> Result<()> {
            parse_filter(v).map(|_| ()).map_err(|e| match e {
                Error::InvalidArgument { field: f, message } => {
                    Error::InvalidArgument { field: Some(format!("{field}.{}", f.unwrap_or_default())), message }
                }
                other => other,
            })
        };
        let check_selector = |s: &PointsSelector, field: &str| match s {
            PointsSelector::Ids(_) => Ok(()),
            PointsSelector::Filter(f) => check_filter(f, field),
        };
        match op {
            UpdateOperation::UpsertPoints(points) => {
                for (i, p) in points.iter().enumerate() {
                    check_vectors(&p.vectors, &format!("points[{i}].vector"))?;
                }
            }
            UpdateOperation::UpsertConditional { points, condition, .. } => {
                check_filter(condition, "update_filter")?;
                for (i, p) in points.iter().enumerate() {
                    check_vectors(&p.vectors, &format!("points[{i}].vector"))?;
                }
            }
            UpdateOperation::UpdateVectors { points, update_filter } => {
                if let Some(f) = update_filter {
                    check_filter(f, "update_filter")?;
                }
                for (i, (_, v)) in points.iter().enumerate() {
                    check_vectors(v, &format!("points[{i}].vector"))?;
                }
            }
            UpdateOperation::DeleteVectors { selector, names } => {
                check_selector(selector, "filter")?;
                for n in names {
                    self.vector_kind(n, "vector")?;
                }
            }
            UpdateOperation::DeleteByFilter(f) => check_filter(f, "filter")?,
            UpdateOperation::SetPayload { selector, .. }
            | UpdateOperation::OverwritePayload { selector, .. }
            | UpdateOperation::DeletePayload { selector, .. }
            | UpdateOperation::ClearPayload(selector) => check_selector(selector, "filter")?,
            UpdateOperation::DeletePoints(_) => {}
            UpdateOperation::CreateIndex { field_name, field_schema } => {
                let schema = field_schema
                    .as_ref()
                    .ok_or_else(|| Error::invalid_field("field_schema", "an index needs a field schema"))?;
                if crate::query::json_path::JsonPath::parse(field_name).is_none() {
                    return Err(Error::invalid_field(
                        "field_name",
                        format!("`{field_name}` is not a valid payload path"),
                    ));
                }
                mutable_index_types(field_name, schema).map_err(|e| match e {
                    Error::InvalidArgument { message, .. } => Error::invalid_field("field_schema", message),
                    other => other,
                })?;
            }
            UpdateOperation::DeleteIndex(_) => {}
            other => return Err(Error::Unsupported(format!("update operation `{}` is not supported", other.kind()))),
        }
        Ok(())
    }

    fn flush_inner(&mut self) -> Result<()> {
        let storage = self.storage.clone();
        let st = &*storage;
        // The segment that takes the writes: an appendable one, else a new one.
        let target = match self.segments.iter().position(|s| s.appendable) {
            Some(t) => t,
            None => {
                let cfg = self.appendable_config();
                let dir = create_appendable_segment(st, &join(&self.root, names::SEGMENTS_DIR), &new_uuid(), &cfg)?;
                self.segments.push(Segment::open(st, &dir, self.memory_plan)?);
                self.segments.len() - 1
            }
        };
        let tdir = self.segments[target].dir.clone();
        let mut tracker = MutableIdTrackerWriter::open(st, &tdir)?;
        let mut payloads = GridstoreWriter::open(st, &join(&tdir, names::PAYLOAD_STORAGE_DIR))?;
        let mut dense: HashMap<String, DenseVectorWriter> = HashMap::new();
        let mut multi: HashMap<String, MultiVectorWriter> = HashMap::new();
        let mut sparse: HashMap<String, (GridstoreWriter, SparseDeletedFlags)> = HashMap::new();
        let tcfg = self.segments[target].state.config.clone();
        for name in self.vector_kinds.keys() {
            if let Some(cfg) = tcfg.vector_data.get(name) {
                if cfg.multivector_config.is_some() {
                    multi.insert(name.clone(), MultiVectorWriter::open(st, &tdir, name, cfg)?);
                } else {
                    dense.insert(name.clone(), DenseVectorWriter::open(st, &tdir, name, cfg)?);
                }
            } else if tcfg.sparse_vector_data.contains_key(name) {
                let vdir = join(&tdir, &names::vector_storage_dir(name));
                let store = GridstoreWriter::open(st, &join(&vdir, "store"))?;
                let flags = SparseDeletedFlags::open(st, &tdir, name)?;
                sparse.insert(name.clone(), (store, flags));
            } else {
                return Err(Error::Internal(format!("segment {tdir} has no storage for vector `{name}`")));
            }
        }
        // Qdrant's appendable segments keep binary quantized copies of their vectors (mutable
        // storages): every vector written gets its record, as Qdrant writes it.
        let mut quantized: HashMap<String, BinaryQuantizedWriter> = HashMap::new();
        for (name, is_multi) in dense.keys().map(|n| (n, false)).chain(multi.keys().map(|n| (n, true))) {
            match BinaryQuantizedWriter::open(st, &tdir, name, is_multi)? {
                Some(w) => {
                    quantized.insert(name.clone(), w);
                }
                // Before any vector is written: qdrant-edge rebuilds it from the vectors.
                None => {
                    drop_unwritable_mutable_storage(st, &tdir, name)?;
                }
            }
        }
        // The target's payload indexes follow every point written to it.
        let mut field_indexes: Vec<FieldIndexWriter> = Vec::new();
        for (field, schema) in &self.segments[target].payload_index.indexed_fields {
            field_indexes.push(FieldIndexWriter::open(st, &tdir, field, schema)?);
        }
        let mut next_internal = self.segments[target].id_tracker.total_point_count() as u32;
        let mut max_op: BTreeMap<usize, u64> = BTreeMap::new();
        let mut imm: HashMap<usize, ImmutableIdTrackerUpdater> = HashMap::new();
        let mut other_mut: HashMap<usize, MutableIdTrackerWriter> = HashMap::new();
        let mut versions: Vec<(u32, u64)> = Vec::new();

        let dirty = std::mem::take(&mut self.dirty);
        for (id, op) in &dirty {
            let current = self.points.get(id).copied();
            // Old copies in other segments are retired with the operation's number.
            for (si, seg) in self.segments.iter().enumerate() {
                if si == target {
                    continue;
                }
                let Some(internal) = seg.id_tracker.internal_id(*id) else { continue };
                if matches!(current, Some(r) if r.loc == (Loc::Segment { seg: si as u32, internal })) {
                    continue;
                }
                if seg.appendable {
                    let w = match other_mut.entry(si) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(MutableIdTrackerWriter::open(st, &seg.dir)?)
                        }
                    };
                    w.delete(*id)?;
                    w.set_version(internal, *op)?;
                } else {
                    let w = match imm.entry(si) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(ImmutableIdTrackerUpdater::open(st, &seg.dir)?)
                        }
                    };
                    w.mark_deleted(internal)?;
                    w.set_version(internal, *op)?;
                }
                let m = max_op.entry(si).or_default();
                *m = (*m).max(*op);
            }
            let existing = self.segments[target].id_tracker.internal_id(*id);
            match current.map(|r| (r.loc, r.version)) {
                Some((Loc::Overlay(i), version)) => {
                    let internal = match existing {
                        Some(i) => i,
                        None => {
                            let i = next_internal;
                            next_internal = next_internal
                                .checked_add(1)
                                .ok_or_else(|| Error::Internal("segment is full".into()))?;
                            tracker.insert(*id, i)?;
                            i
                        }
                    };
                    let point = &self.overlay[i];
                    // A vector absent from the point leaves its quantized record alone, as in
                    // Qdrant.
                    for (name, w) in dense.iter_mut() {
                        match point.vectors.get(name) {
                            Some(VectorValue::Dense(v)) => {
                                w.put(internal, Some(v))?;
                                if let Some(q) = quantized.get_mut(name) {
                                    q.put(internal, v)?;
                                }
                            }
                            _ => w.put(internal, None)?,
                        }
                    }
                    for (name, w) in multi.iter_mut() {
                        match point.vectors.get(name) {
                            Some(VectorValue::Multi(v)) => {
                                w.put(internal, Some(v))?;
                                if let Some(q) = quantized.get_mut(name) {
                                    q.put_multi(internal, v)?;
                                }
                            }
                            _ => w.put(internal, None)?,
                        }
                    }
                    for (name, (store, flags)) in sparse.iter_mut() {
                        let v = match point.vectors.get(name) {
                            Some(VectorValue::Sparse(v)) => Some(v),
                            _ => None,
                        };
                        match flags.put(internal, v)? {
                            SparseStoreOp::Put(bytes) => store.put(internal, &bytes)?,
                            SparseStoreOp::Delete => store.delete(internal)?,
                        }
                    }
                    for w in field_indexes.iter_mut() {
                        w.set(internal, &point.payload)?;
                    }
                    if point.payload.is_empty() {
                        payloads.delete(internal)?;
                    } else {
                        let bytes = serde_json::to_vec(&*point.payload).map_err(|e| Error::Internal(e.to_string()))?;
                        payloads.put(internal, &bytes)?;
                    }
                    versions.push((internal, version));
                    let m = max_op.entry(target).or_default();
                    *m = (*m).max(version);
                }
                Some((Loc::Segment { .. }, _)) => {}
                None => {
                    if let Some(internal) = existing {
                        tracker.delete(*id)?;
                        for w in field_indexes.iter_mut() {
                            w.remove(internal)?;
                        }
                        payloads.delete(internal)?;
                        versions.push((internal, *op));
                        let m = max_op.entry(target).or_default();
                        *m = (*m).max(*op);
                    }
                }
            }
        }

        // Data first, then mappings and versions, then the segment states.
        for w in dense.values_mut() {
            w.flush()?;
        }
        for w in multi.values_mut() {
            w.flush()?;
        }
        for w in quantized.values_mut() {
            w.flush()?;
        }
        for (store, flags) in sparse.values_mut() {
            store.flush(st)?;
            flags.flush()?;
        }
        // Field indexes before the payloads, as Qdrant flushes them.
        for w in field_indexes.iter_mut() {
            w.flush()?;
        }
        payloads.flush(st)?;
        for (internal, v) in versions {
            tracker.set_version(internal, v)?;
        }
        tracker.flush()?;
        for w in imm.values_mut() {
            w.flush()?;
        }
        for w in other_mut.values_mut() {
            w.flush()?;
        }
        for (si, op) in &max_op {
            let seg = &self.segments[*si];
            let mut state = seg.state.clone();
            state.version = Some(state.version.unwrap_or(0).max(*op));
            write_segment_state(st, &seg.dir, &state)?;
        }
        // Payload indexes created or dropped since the last flush, in every segment.
        let wanted = self.indexed_fields.clone();
        self.reload_segments()?;
        if self.reconcile_indexes(&wanted)? {
            self.reload_segments()?;
        }
        // Everything applied so far is in the segments: acknowledge the WAL.
        let last = self.next_op.saturating_sub(1);
        if let Some(wal) = self.wal_writer()? {
            wal.ack(last)?;
        }
        Ok(())
    }

    /// The union of the segments' indexed fields.
    pub(crate) fn segment_index_fields(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for s in &self.segments {
            for (k, v) in &s.payload_index.indexed_fields {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        out
    }

    /// Make every segment index exactly the `wanted` fields: build missing indexes from the
    /// stored payloads of live points, drop the others. Returns whether anything changed.
    fn reconcile_indexes(&mut self, wanted: &BTreeMap<String, Value>) -> Result<bool> {
        let storage = self.storage.clone();
        let st = &*storage;
        let mut changed = false;
        for seg in &self.segments {
            for (field, schema) in wanted {
                if seg.payload_index.indexed_fields.get(field) == Some(schema) {
                    continue;
                }
                let mut points = Vec::new();
                for (_, internal, _) in seg.live_points() {
                    points.push((internal, (*seg.payload(internal)?).clone()));
                }
                // As Qdrant: an appendable segment gets mutable index files, an optimized one
                // immutable ones.
                let types = if seg.appendable {
                    let mut w = build_field_index(st, &seg.dir, field, schema, points)?;
                    w.flush()?;
                    w.index_types()
                } else {
                    build_optimized_field_index(st, &seg.dir, field, schema, points)?
                };
                config_set_field(st, &seg.dir, field, schema, &types)?;
                changed = true;
            }
            for field in seg.payload_index.indexed_fields.keys() {
                if !wanted.contains_key(field) {
                    drop_field_index(st, &seg.dir, field)?;
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// Re-open the segments and rebuild the merged view; the overlay is empty afterwards.
    pub(crate) fn reload_segments(&mut self) -> Result<()> {
        let fresh = EdgeShard::load_segments_only(self.storage.clone(), &self.root)?;
        let next_op = self.next_op;
        let wal = self.wal.take();
        let ram = std::mem::take(&mut self.ram_sparse_added);
        *self = fresh;
        self.next_op = self.next_op.max(next_op);
        self.wal = wal;
        self.ram_sparse_added = ram;
        Ok(())
    }

    pub(crate) fn appendable_config(&self) -> SegmentConfig {
        if let Some(c) = &self.edge_config {
            return segment_config_from(c);
        }
        let mut cfg = self
            .segments
            .first()
            .map(|s| s.state.config.clone())
            .unwrap_or_else(|| segment_config_from(&EdgeConfig::default()));
        for v in cfg.vector_data.values_mut() {
            v.storage_type = VectorStorageType::InRamChunkedMmap;
            v.index = Indexes::Plain {};
        }
        for s in cfg.sparse_vector_data.values_mut() {
            s.index.index_type = SparseIndexType::MutableRam;
        }
        cfg
    }
}

/// A random (v4) UUID for a new segment directory.
/// The vectors an `EdgeConfig` describes, as the shard compares them with stored segments.
pub(crate) fn config_vector_kinds(config: &EdgeConfig) -> BTreeMap<String, VectorKind> {
    config
        .vectors
        .iter()
        .map(|(n, p)| {
            let datatype = p.datatype.unwrap_or_default();
            let size = p.size as usize;
            let k = if p.multivector_config.is_some() {
                VectorKind::Multi { size, distance: p.distance, datatype }
            } else {
                VectorKind::Dense { size, distance: p.distance, datatype }
            };
            (n.clone(), k)
        })
        .chain(config.sparse_vectors.iter().map(|(n, p)| {
            (n.clone(), VectorKind::Sparse { idf: p.modifier == Some(crate::format::segment_meta::Modifier::Idf) })
        }))
        .collect()
}

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

fn wal_options(c: &EdgeConfig) -> WalWriterOptions {
    match &c.wal_options {
        Some(w) => WalWriterOptions {
            segment_capacity: w.segment_capacity,
            segment_queue_len: w.segment_queue_len,
            retain_closed: w.retain_closed,
        },
        None => WalWriterOptions::default(),
    }
}

/// The config of an appendable segment for a shard config, as qdrant-edge derives it.
pub(crate) fn segment_config_from(c: &EdgeConfig) -> SegmentConfig {
    let vector_data = c
        .vectors
        .iter()
        .map(|(name, p)| {
            let on_disk = p.on_disk == Some(true) || p.memory == Some(crate::storage::Memory::Cold);
            (
                name.clone(),
                VectorDataConfig {
                    size: p.size,
                    distance: p.distance,
                    storage_type: if on_disk {
                        VectorStorageType::ChunkedMmap
                    } else {
                        VectorStorageType::InRamChunkedMmap
                    },
                    index: Indexes::Plain {},
                    quantization_config: p.quantization_config.clone().or_else(|| c.quantization_config.clone()),
                    multivector_config: p.multivector_config,
                    datatype: p.datatype,
                },
            )
        })
        .collect();
    let sparse_vector_data = c
        .sparse_vectors
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                SparseVectorDataConfig {
                    index: SparseIndexConfig {
                        full_scan_threshold: p.full_scan_threshold,
                        index_type: SparseIndexType::MutableRam,
                        datatype: p.datatype,
                        // only an explicitly requested placement is recorded, as Qdrant does
                        memory: p.memory,
                    },
                    storage_type: SparseVectorStorageType::Mmap,
                    modifier: p.modifier,
                },
            )
        })
        .collect();
    let payload_storage_type =
        if c.on_disk_payload == Some(false) { PayloadStorageType::InRamMmap } else { PayloadStorageType::Mmap };
    SegmentConfig { vector_data, sparse_vector_data, payload_storage_type, id_tracker_memory: None }
}

fn validate_config(c: &EdgeConfig) -> Result<()> {
    for (name, p) in &c.vectors {
        let f = format!("vectors.{name}");
        if p.size == 0 || p.size > 65536 {
            return Err(Error::invalid_field(format!("{f}.size"), "dimension must be between 1 and 65536"));
        }
        if name.contains('/') || name.contains('\\') || name.contains("..") || name.contains('\0') {
            return Err(Error::invalid_field(f, "vector names cannot contain `/`, `\\`, `..` or NUL"));
        }
        if let Some(dt) = p.datatype {
            if dt.size().is_none() {
                return Err(Error::Unsupported(format!("{f}: datatype {dt:?} is not supported")));
            }
        }
    }
    for name in c.sparse_vectors.keys() {
        if c.vectors.contains_key(name) {
            return Err(Error::invalid_field(format!("sparse_vectors.{name}"), "a dense vector has the same name"));
        }
        if name.contains('/') || name.contains('\\') || name.contains("..") || name.contains('\0') {
            return Err(Error::invalid_field(
                format!("sparse_vectors.{name}"),
                "vector names cannot contain `/`, `\\`, `..` or NUL",
            ));
        }
    }
    Ok(())
}
