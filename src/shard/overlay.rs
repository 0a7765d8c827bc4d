//! Applying update operations to the in-memory overlay (WAL replay), with Qdrant's version
//! gating and operation semantics (spec §3.4, §11.4).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{EdgeShard, Loc, OverlayPoint, PointRef, VectorKind};
use crate::error::{Error, Result};
use crate::operations::{PointStruct, PointsSelector, UpdateMode, UpdateOperation};
use crate::query::filter::{parse_filter, FilterContext};
use crate::spaces;
use crate::types::{Payload, PointId, VectorValue};

impl EdgeShard {
    /// A point's segment copy stops being the visible one (the overlay or a delete replaced it).
    fn hide_segment_copy(&mut self, prev: Option<PointRef>) {
        if let Some(PointRef { loc: Loc::Segment { seg, internal }, .. }) = prev {
            if let Some(b) = self.visible.get_mut(seg as usize) {
                b.unset(internal);
            }
        }
    }

    /// Apply one replayed WAL operation with number `op`.
    pub(crate) fn apply_replayed(&mut self, op: u64, operation: &UpdateOperation) -> Result<()> {
        match operation {
            UpdateOperation::UpsertPoints(points) => {
                for p in points {
                    self.upsert_point(op, p)?;
                }
            }
            UpdateOperation::UpsertConditional { points, condition, update_mode } => {
                let filter = parse_filter(condition)?;
                for p in points {
                    let exists = self.points.get(&p.id).copied();
                    let go = match (update_mode.unwrap_or(UpdateMode::Upsert), exists) {
                        (UpdateMode::InsertOnly, Some(_)) => false,
                        (UpdateMode::UpdateOnly, None) => false,
                        (_, None) => true,
                        (_, Some(r)) => self.point_matches(p.id, r, &filter)?,
                    };
                    if go {
                        self.upsert_point(op, p)?;
                    }
                }
            }
            UpdateOperation::DeletePoints(ids) => {
                for id in ids {
                    self.delete_point(op, *id);
                }
            }
            UpdateOperation::DeleteByFilter(f) => {
                for id in self.select(&PointsSelector::Filter(f.clone()))? {
                    self.delete_point(op, id);
                }
            }
            UpdateOperation::SyncPoints { from_id, to_id, points } => {
                let existing: Vec<PointId> = self
                    .points
                    .keys()
                    .filter(|id| from_id.is_none_or(|f| **id >= f) && to_id.is_none_or(|t| **id < t))
                    .copied()
                    .collect();
                let keep: std::collections::HashSet<PointId> = points.iter().map(|p| p.id).collect();
                for id in existing {
                    if !keep.contains(&id) {
                        self.delete_point(op, id);
                    }
                }
                for p in points {
                    self.upsert_point(op, p)?;
                }
            }
            UpdateOperation::UpdateVectors { points, update_filter } => {
                let filter = match update_filter {
                    Some(f) => Some(parse_filter(f)?),
                    None => None,
                };
                for (id, vectors) in points {
                    let Some(r) = self.points.get(id).copied() else { continue };
                    if let Some(f) = &filter {
                        if !self.point_matches(*id, r, f)? {
                            continue;
                        }
                    }
                    let vectors = self.preprocess_vectors(vectors)?;
                    self.modify(op, *id, |p| {
                        p.vectors.extend(vectors);
                        Ok(())
                    })?;
                }
            }
            UpdateOperation::DeleteVectors { selector, names } => {
                for id in self.select(selector)? {
                    self.modify(op, id, |p| {
                        for n in names {
                            p.vectors.remove(n);
                        }
                        Ok(())
                    })?;
                }
            }
            UpdateOperation::SetPayload { payload, selector, key } => {
                for id in self.select(selector)? {
                    self.modify(op, id, |p| {
                        let target = Arc::make_mut(&mut p.payload);
                        set_payload(target, payload, key.as_deref());
                        Ok(())
                    })?;
                }
            }
            UpdateOperation::OverwritePayload { payload, selector, key } => {
                for id in self.select(selector)? {
                    self.modify(op, id, |p| {
                        let target = Arc::make_mut(&mut p.payload);
                        match key {
                            None => *target = payload.clone(),
                            Some(k) => set_payload(target, payload, Some(k)),
                        }
                        Ok(())
                    })?;
                }
            }
            UpdateOperation::DeletePayload { keys, selector } => {
                for id in self.select(selector)? {
                    self.modify(op, id, |p| {
                        let target = Arc::make_mut(&mut p.payload);
                        for k in keys {
                            crate::query::json_path::remove_path(target, k);
                        }
                        Ok(())
                    })?;
                }
            }
            UpdateOperation::ClearPayload(selector) => {
                for id in self.select(selector)? {
                    self.modify(op, id, |p| {
                        p.payload = Arc::new(Payload::new());
                        Ok(())
                    })?;
                }
            }
            UpdateOperation::CreateIndex { field_name, field_schema } => {
                let schema = field_schema.clone().unwrap_or(Value::Null);
                if !schema.is_null() {
                    self.indexed_fields.insert(field_name.clone(), schema);
                    self.filter_ctx = FilterContext::new(self.indexed_fields.clone());
                    self.postings.iter().for_each(|c| c.clear());
                }
            }
            UpdateOperation::DeleteIndex(field) => {
                self.indexed_fields.remove(field);
                self.filter_ctx = FilterContext::new(self.indexed_fields.clone());
                self.postings.iter().for_each(|c| c.clear());
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "WAL operation {} cannot be replayed by this engine",
                    other.kind()
                )));
            }
        }
        self.next_op = self.next_op.max(op + 1);
        Ok(())
    }

    pub(crate) fn point_matches(
        &self,
        id: PointId,
        r: PointRef,
        filter: &crate::query::filter::Filter,
    ) -> Result<bool> {
        let ctx = self.point_context(id, r.loc)?;
        Ok(filter.check(&ctx, &self.filter_ctx))
    }

    /// Resolve a selector to the ids of existing points.
    pub(crate) fn select(&self, selector: &PointsSelector) -> Result<Vec<PointId>> {
        match selector {
            PointsSelector::Ids(ids) => Ok(ids.iter().filter(|id| self.points.contains_key(id)).copied().collect()),
            PointsSelector::Filter(f) => {
                let filter = parse_filter(f)?;
                let mut out = Vec::new();
                for (id, r) in &self.points {
                    if self.point_matches(*id, *r, &filter)? {
                        out.push(*id);
                    }
                }
                Ok(out)
            }
        }
    }

    fn upsert_point(&mut self, op: u64, p: &PointStruct) -> Result<()> {
        if let Some(cur) = self.points.get(&p.id) {
            if already_applied(cur, op) {
                return Ok(());
            }
        }
        let vectors = self.preprocess_vectors(&p.vectors)?;
        let payload = Arc::new(p.payload.clone().unwrap_or_default());
        let prev = self.points.get(&p.id).copied();
        self.overlay.push(OverlayPoint { id: p.id, vectors, payload });
        let idx = self.overlay.len() - 1;
        self.hide_segment_copy(prev);
        self.note_ram_sparse(prev, idx)?;
        self.points.insert(p.id, PointRef { loc: Loc::Overlay(idx), version: op });
        self.dirty.insert(p.id, op);
        Ok(())
    }

    fn delete_point(&mut self, op: u64, id: PointId) {
        if let Some(cur) = self.points.get(&id) {
            if cur.version <= op {
                let cur = *cur;
                self.hide_segment_copy(Some(cur));
                self.points.remove(&id);
                self.dirty.insert(id, op);
            }
        }
    }

    /// Copy-on-write a point into the overlay and change it.
    fn modify(&mut self, op: u64, id: PointId, f: impl FnOnce(&mut OverlayPoint) -> Result<()>) -> Result<()> {
        let Some(cur) = self.points.get(&id).copied() else { return Ok(()) };
        if already_applied(&cur, op) {
            return Ok(());
        }
        let idx = match cur.loc {
            Loc::Overlay(i) => i,
            Loc::Segment { .. } => {
                let vectors = self.all_vectors_at(cur.loc)?;
                let payload = self.payload_at(cur.loc)?;
                self.overlay.push(OverlayPoint { id, vectors, payload });
                self.hide_segment_copy(Some(cur));
                self.overlay.len() - 1
            }
        };
        f(&mut self.overlay[idx])?;
        self.note_ram_sparse(Some(cur), idx)?;
        self.points.insert(id, PointRef { loc: Loc::Overlay(idx), version: op });
        self.dirty.insert(id, op);
        Ok(())
    }

    /// Keep the appendable segment's RAM sparse index count as Qdrant does: a sparse vector
    /// added for a point that the appendable segment did not hold with that vector adds one;
    /// nothing is ever subtracted until the next load.
    fn note_ram_sparse(&mut self, prev: Option<PointRef>, new_idx: usize) -> Result<()> {
        let names: Vec<String> = self.overlay[new_idx]
            .vectors
            .iter()
            .filter(|(_, v)| matches!(v, VectorValue::Sparse(s) if !s.indices.is_empty()))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let had = match prev.map(|r| r.loc) {
                Some(Loc::Overlay(i)) if i != new_idx => {
                    matches!(self.overlay[i].vectors.get(&name), Some(VectorValue::Sparse(s)) if !s.indices.is_empty())
                }
                Some(Loc::Overlay(_)) => true,
                Some(loc @ Loc::Segment { seg, .. }) if self.segments[seg as usize].appendable => {
                    matches!(self.vector_at(loc, &name)?, Some(VectorValue::Sparse(s)) if !s.indices.is_empty())
                }
                _ => false,
            };
            if !had {
                *self.ram_sparse_added.entry(name).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Convert request/WAL vectors to their stored form (normalisation, datatype rounding).
    pub(crate) fn preprocess_vectors(
        &self,
        vectors: &BTreeMap<String, VectorValue>,
    ) -> Result<BTreeMap<String, VectorValue>> {
        let mut out = BTreeMap::new();
        for (name, v) in vectors {
            let kind = self.vector_kind(name, &format!("vector.{name}"))?;
            let stored = match (kind, v) {
                (VectorKind::Dense { distance, datatype, .. }, VectorValue::Dense(d)) => {
                    VectorValue::Dense(spaces::to_stored(*distance, *datatype, d))
                }
                (VectorKind::Multi { distance, datatype, .. }, VectorValue::Multi(m)) => {
                    VectorValue::Multi(m.iter().map(|d| spaces::to_stored(*distance, *datatype, d)).collect())
                }
                (VectorKind::Multi { distance, datatype, .. }, VectorValue::Dense(d)) => {
                    VectorValue::Multi(vec![spaces::to_stored(*distance, *datatype, d)])
                }
                (VectorKind::Sparse { .. }, VectorValue::Sparse(s)) => VectorValue::Sparse(s.clone().sorted()),
                _ => {
                    return Err(Error::invalid_field(
                        format!("vector.{name}"),
                        "vector kind does not match the shard's config",
                    ))
                }
            };
            out.insert(name.clone(), stored);
        }
        Ok(out)
    }
}

/// `set_payload` semantics: merge top-level keys, or into the object at `key`.
fn set_payload(target: &mut Payload, payload: &Payload, key: Option<&str>) {
    match key {
        None => {
            for (k, v) in payload {
                target.insert(k.clone(), v.clone());
            }
        }
        Some(path) => crate::query::json_path::set_at_path(target, path, payload),
    }
}

/// Qdrant's version gate for point writes (upsert and payload/vector changes): skipped for a
/// point whose version is newer than the operation, and for a point a segment already holds at
/// the operation's version (the operation was applied and persisted before; replaying it would
/// only copy the point out of its segment). Deletes use the plain `version > op` gate.
fn already_applied(cur: &PointRef, op: u64) -> bool {
    cur.version > op || (cur.version == op && matches!(cur.loc, Loc::Segment { .. }))
}
