//! Read operations over the merged view: query/search (exact), retrieve, scroll, count, facet,
//! info.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::hnsw::{Found, Nearest, SearchOptions, Sp, TopK};
use super::{schema_type, EdgeShard, Loc, PointRef, VectorKind};
use crate::api::requests::{PayloadSelector, WithPayload, WithVector};
use crate::error::{Error, Result};
use crate::format::dense::DenseVectorStorage;
use crate::query::filter::{Filter, PointContext};
use crate::query::json_path::{self, JsonPath};
use crate::spaces;
use crate::types::{Datatype, Distance, Payload, PointId, RowRef, SparseVector, VectorValue};

/// How many KB of vectors a segment without a graph may hold and still be searched with
/// `indexed_only` (qdrant-edge passes its full-scan default, 10 000, as this limit).
pub const SEARCH_OPTIMIZED_THRESHOLD_KB: u64 = 10_000;

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    pub id: PointId,
    pub version: u64,
    pub score: f32,
    pub payload: Option<Payload>,
    pub vector: Option<Value>,
    /// The value a point was ordered by (`order_by` queries).
    pub order_value: Option<Value>,
}

/// A point selected by a query stage, before payload and vectors are attached.
#[derive(Debug, Clone)]
pub(crate) struct QueryHit {
    pub id: PointId,
    pub r: PointRef,
    /// Public score.
    pub score: f32,
    pub order_value: Option<Value>,
}

impl ScoredPoint {
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.to_json());
        m.insert("version".into(), json!(self.version));
        m.insert("score".into(), crate::types::f32_json(self.score));
        if let Some(p) = &self.payload {
            m.insert("payload".into(), Value::Object(p.clone()));
        }
        if let Some(v) = &self.vector {
            m.insert("vector".into(), v.clone());
        }
        if let Some(o) = &self.order_value {
            m.insert("order_value".into(), o.clone());
        }
        Value::Object(m)
    }
}

/// A retrieved point.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: PointId,
    pub payload: Option<Payload>,
    pub vector: Option<Value>,
    /// The value a point was ordered by (scroll with `order_by`).
    pub order_value: Option<Value>,
}

impl Record {
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.to_json());
        if let Some(p) = &self.payload {
            m.insert("payload".into(), Value::Object(p.clone()));
        }
        if let Some(v) = &self.vector {
            m.insert("vector".into(), v.clone());
        }
        if let Some(o) = &self.order_value {
            m.insert("order_value".into(), o.clone());
        }
        Value::Object(m)
    }
}

/// What to score against.
#[derive(Debug, Clone)]
pub enum QueryVector {
    Dense(Vec<f32>),
    Multi(Vec<Vec<f32>>),
    Sparse(SparseVector),
}

/// A nearest-neighbour search, already validated.
#[derive(Debug, Clone)]
pub struct SearchSpec {
    pub using: String,
    pub vector: QueryVector,
    pub filter: Option<Filter>,
    pub limit: usize,
    pub offset: usize,
    pub score_threshold: Option<f32>,
    pub with_payload: WithPayload,
    pub with_vector: WithVector,
    /// `params`: `hnsw_ef`, `exact`, …
    pub params: SearchOptions,
    /// `params.idf`.
    pub idf: Option<super::query::IdfScope>,
}

/// Filter context of one point.
pub(crate) struct Ctx<'a> {
    shard: &'a EdgeShard,
    id: PointId,
    loc: Loc,
    payload: Arc<Payload>,
}

impl PointContext for Ctx<'_> {
    fn id(&self) -> PointId {
        self.id
    }
    fn payload(&self) -> &Payload {
        &self.payload
    }
    fn has_vector(&self, name: &str) -> bool {
        self.shard.has_vector_at(self.loc, name)
    }
}

/// Points a filtered plain scan scores per batch (even: the batch is scored in pairs).
const SCAN_BATCH: usize = 16;

/// Qdrant's plain-search top-k collector over shard points: remembers only the points it
/// takes (a scan of 100k points keeps a few dozen).
struct Collector {
    best: TopK,
    side: Vec<(PointId, PointRef)>,
}

impl Collector {
    fn new(want: usize) -> Collector {
        Collector { best: TopK::new(want), side: Vec::new() }
    }

    #[inline]
    fn offer(&mut self, score: f32, id: PointId, r: PointRef) {
        if self.best.takes(score) {
            self.best.push(Sp { idx: self.side.len() as u32, score });
            self.side.push((id, r));
        }
    }

    /// Offer segment point `internal` of `seg`, looking its id and version up only when the
    /// score is taken (most of a scan's points are not); a point without them is left out.
    #[inline]
    fn offer_segment_point(&mut self, shard: &EdgeShard, seg: u32, internal: u32, score: f32) -> Result<()> {
        if self.best.takes(score) {
            if let Some((id, r)) = shard.segment_point(seg, internal, None, false)? {
                self.offer(score, id, r);
            }
        }
        Ok(())
    }

    fn score(&mut self, shard: &EdgeShard, scorer: &Scorer<'_>, id: PointId, r: PointRef) -> Result<()> {
        if let Some(score) = scorer.score(shard, r.loc)? {
            self.offer(score, id, r);
        }
        Ok(())
    }

    /// Best first.
    fn into_found(self) -> Vec<Found> {
        let side = self.side;
        self.best
            .into_vec()
            .into_iter()
            .map(|sp| (sp.score, side[sp.idx as usize].0, side[sp.idx as usize].1))
            .collect()
    }
}

impl EdgeShard {
    pub(crate) fn point_context(&self, id: PointId, loc: Loc) -> Result<Ctx<'_>> {
        Ok(Ctx { shard: self, id, loc, payload: self.payload_at(loc)? })
    }

    fn matches(&self, filter: Option<&Filter>, id: PointId, r: &PointRef) -> Result<bool> {
        match filter {
            None => Ok(true),
            Some(f) => {
                let ctx = self.point_context(id, r.loc)?;
                Ok(f.check(&ctx, &self.filter_ctx))
            }
        }
    }

    /// Exact nearest-neighbour search over all visible points.
    pub fn search(&self, spec: &SearchSpec) -> Result<Vec<ScoredPoint>> {
        let hits = self.search_hits(
            &spec.using,
            &spec.vector,
            spec.filter.as_ref(),
            spec.limit.saturating_add(spec.offset),
            spec.score_threshold,
            None,
            spec.params,
            spec.idf.as_ref(),
        )?;
        let hits: Vec<QueryHit> = hits.into_iter().skip(spec.offset).collect();
        self.materialize(&hits, &spec.with_payload, &spec.with_vector)
    }

    /// The best `want` points by vector similarity (public scores, best first), among all
    /// visible points or only `candidates`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search_hits(
        &self,
        using: &str,
        vector: &QueryVector,
        filter: Option<&Filter>,
        want: usize,
        score_threshold: Option<f32>,
        candidates: Option<&HashSet<PointId>>,
        opts: SearchOptions,
        idf: Option<&super::query::IdfScope>,
    ) -> Result<Vec<QueryHit>> {
        self.check_open()?;
        let kind = self.vector_kind(using, "using")?.clone();
        // As Qdrant: the parameter changes scores, so it is refused where it cannot apply.
        if idf.is_some() && kind != (VectorKind::Sparse { idf: true }) {
            return Err(Error::invalid_field(
                "params.idf",
                format!("search param `idf` requires a sparse vector with the `idf` modifier, which vector {using:?} is not"),
            ));
        }
        let corpus = idf.and_then(super::query::IdfScope::corpus);
        let scorer = Scorer::new(self, &kind, vector, using, corpus)?;
        if want == 0 {
            return Ok(Vec::new());
        }
        // `indexed_only` leaves out the large segments without a graph of `using` (the overlay
        // counts as part of the appendable segment its points flush into).
        let mut skipped = vec![false; self.segments.len()];
        let mut skip_overlay = false;
        if opts.indexed_only && candidates.is_none() && !matches!(kind, VectorKind::Sparse { .. }) {
            let home = self.segments.iter().position(|s| s.appendable);
            for (si, seg) in self.segments.iter().enumerate() {
                if !seg.hnsw.contains_key(using) {
                    let with_overlay = home == Some(si);
                    skipped[si] =
                        self.too_big_for_unindexed_search(Some(si as u32), with_overlay, using, &kind, filter)?;
                    skip_overlay |= with_overlay && skipped[si];
                }
            }
            if home.is_none() {
                skip_overlay = self.too_big_for_unindexed_search(None, true, using, &kind, filter)?;
            }
        }
        // As qdrant-edge: each segment gives its best `want` points (its graph walk, or a plain
        // scan in internal id order through Qdrant's top-k collector), the segments taken
        // optimized first, then appendable, each group in directory (UUID) order, and the
        // lists pushed in that order into one fixed-length queue ordered by score only (so
        // equal scores fall as they fall in qdrant-edge). The points whose winning copy is in
        // the overlay count as appended to the appendable segment they flush into.
        let mut table: Vec<(PointId, PointRef)> = Vec::new();
        let mut merged = Nearest::new(want);
        let mut take = |table: &mut Vec<(PointId, PointRef)>, list: Vec<Found>| {
            for (internal, id, r) in list {
                if let Some(t) = score_threshold {
                    if !scorer.passes_threshold(scorer.postprocess(internal), t) {
                        continue;
                    }
                }
                let idx = table.len() as u32;
                table.push((id, r));
                merged.push(Sp { idx, score: internal });
            }
        };
        match candidates {
            None => {
                let home = self.segments.iter().position(|s| s.appendable);
                let order = self.merge_order();
                let graph_kind = !opts.exact && !matches!(kind, VectorKind::Sparse { .. });
                let mut overlay_done = skip_overlay;
                for si in order {
                    if skipped[si] {
                        continue;
                    }
                    let seg = &self.segments[si];
                    if graph_kind && (seg.hnsw.contains_key(using) || seg.quantized.contains_key(using)) {
                        if let Some(found) = self.segment_search(si as u32, using, &scorer, filter, want, opts)? {
                            take(&mut table, found);
                            continue;
                        }
                    }
                    let with_overlay = home == Some(si) && !overlay_done;
                    overlay_done |= with_overlay;
                    let list = self.plain_scan(si as u32, with_overlay, &scorer, filter, want)?;
                    take(&mut table, list);
                }
                if !overlay_done {
                    let list = self.plain_scan_overlay(&scorer, filter, want)?;
                    take(&mut table, list);
                }
            }
            Some(c) => {
                // A rescoring stage over the points found before: in id order, one list.
                // (qdrant-edge searches each segment with a `has_id` filter whose points come
                // in the order of a randomly seeded hash set, so its order of equal scores
                // here is not reproducible; ours is deterministic.)
                let mut ids: Vec<&PointId> = c.iter().collect();
                ids.sort_unstable();
                let mut best = Collector::new(want);
                for id in ids {
                    let Some(r) = self.points.get(id) else { continue };
                    if self.matches(filter, *id, r)? {
                        best.score(self, &scorer, *id, *r)?;
                    }
                }
                take(&mut table, best.into_found());
            }
        }
        Ok(merged
            .into_sorted_vec()
            .into_iter()
            .map(|sp| {
                let (id, r) = table[sp.idx as usize];
                QueryHit { id, r, score: scorer.postprocess(sp.score), order_value: None }
            })
            .collect())
    }

    /// The best `want` points of segment `seg` by a plain scan (internal scores, best first):
    /// its visible points narrowed by the filter's postings, in internal id order, then, with
    /// `with_overlay`, the points whose winning copy is in the overlay, through Qdrant's top-k
    /// collector ([`TopK`]). Scattered rows are scored two at a time where the scorer can
    /// (two independent memory streams).
    fn plain_scan(
        &self,
        seg: u32,
        with_overlay: bool,
        scorer: &Scorer<'_>,
        filter: Option<&Filter>,
        want: usize,
    ) -> Result<Vec<Found>> {
        let mut best = Collector::new(want);
        let c = self.segment_candidates(seg, filter)?;
        // A filtered scan scores its points in batches whose rows are requested first, so that
        // the cache misses of scattered rows overlap; an unfiltered one streams its rows in
        // pairs (batches measured 10-20 % slower there).
        let size = if filter.is_some() { SCAN_BATCH } else { 2 };
        let mut batch: Vec<u32> = Vec::with_capacity(size);
        for internal in c.bits.iter() {
            // Where the postings do not answer the filter, each point is checked against it
            // here; otherwise a point's id and version are looked up only if it is taken.
            if c.check && self.segment_point(seg, internal, filter, true)?.is_none() {
                continue;
            }
            batch.push(internal);
            if batch.len() == size {
                self.score_batch(seg, scorer, &batch, &mut best)?;
                batch.clear();
            }
        }
        self.score_batch(seg, scorer, &batch, &mut best)?;
        if with_overlay {
            self.visit_overlay(filter, |id, r| best.score(self, scorer, id, r))?;
        }
        Ok(best.into_found())
    }

    /// Offer a batch of [`plain_scan`](Self::plain_scan)'s points of segment `seg` (internal
    /// ids, ascending) to `best` in order, their rows requested first, scored two at a time
    /// where the scorer can.
    fn score_batch(&self, seg: u32, scorer: &Scorer<'_>, batch: &[u32], best: &mut Collector) -> Result<()> {
        if batch.len() > 2 {
            // Only rows that do not follow the previous one: a run of neighbouring rows is one
            // stream the hardware prefetcher follows, and hints ahead of it measured 1.7x
            // slower on a scan of every point.
            let mut prev: Option<u32> = None;
            scorer.prefetch(batch.iter().filter_map(|&internal| {
                let follows = prev.is_some_and(|p| p.wrapping_add(1) == internal);
                prev = Some(internal);
                (!follows).then_some(Loc::Segment { seg, internal })
            }));
        }
        let at = |internal: u32| Loc::Segment { seg, internal };
        let single = |internal: u32, best: &mut Collector| -> Result<()> {
            let score = match scorer.score_in_ram(seg, internal) {
                Some(s) => s,
                None => scorer.score(self, at(internal))?,
            };
            if let Some(score) = score {
                best.offer_segment_point(self, seg, internal, score)?;
            }
            Ok(())
        };
        let mut pairs = batch.chunks_exact(2);
        for pair in &mut pairs {
            let (a, b) = (pair[0], pair[1]);
            match scorer.score_pair(at(a), at(b))? {
                Some((sa, sb)) => {
                    if let Some(sa) = sa {
                        best.offer_segment_point(self, seg, a, sa)?;
                    }
                    if let Some(sb) = sb {
                        best.offer_segment_point(self, seg, b, sb)?;
                    }
                }
                None => {
                    single(a, best)?;
                    single(b, best)?;
                }
            }
        }
        if let [internal] = *pairs.remainder() {
            single(internal, best)?;
        }
        Ok(())
    }

    /// [`plain_scan`](Self::plain_scan) of the overlay alone (a shard without an appendable
    /// segment).
    fn plain_scan_overlay(&self, scorer: &Scorer<'_>, filter: Option<&Filter>, want: usize) -> Result<Vec<Found>> {
        let mut best = Collector::new(want);
        self.visit_overlay(filter, |id, r| best.score(self, scorer, id, r))?;
        Ok(best.into_found())
    }

    /// Qdrant's `indexed_only` rule for a segment searched without a graph (its plain index):
    /// left out when scanning it would read more than [`SEARCH_OPTIMIZED_THRESHOLD_KB`] of
    /// vectors, i.e. when the mean stored size of its available `using` vectors times the
    /// number of vectors (unfiltered) or the filter's cardinality (filtered) passes it.
    ///
    /// `seg` is the segment (`None`: the overlay alone, when there is no appendable segment);
    /// `with_overlay` adds the points whose winning copy is in the overlay, which Qdrant holds
    /// in its appendable segment. Qdrant takes the upper bound of its cardinality estimate;
    /// we take the segment's candidate count (exact where the payload postings answer the
    /// filter, else the points the postings leave possible, all of them when nothing narrows
    /// it) plus the overlay points: those that pass the filter when the postings answered it
    /// exactly, else all of them, as an estimate that cannot see unindexed fields would.
    /// (For a `must` of an indexed and an unindexed condition Qdrant's bound is the indexed
    /// condition's count over all points; ours counts all overlay points in that case.)
    pub(crate) fn too_big_for_unindexed_search(
        &self,
        seg: Option<u32>,
        with_overlay: bool,
        using: &str,
        kind: &VectorKind,
        filter: Option<&Filter>,
    ) -> Result<bool> {
        let (size, datatype) = match kind {
            VectorKind::Dense { size, datatype, .. } | VectorKind::Multi { size, datatype, .. } => (*size, *datatype),
            VectorKind::Sparse { .. } => return Ok(false),
        };
        let row_bytes = (size * datatype.size().unwrap_or(4)) as u64;
        let (mut vectors, mut bytes, mut cardinality) = (0u64, 0u64, 0u64);
        // Whether the filter's cardinality in the segment is exact (postings answer it all).
        let mut exact = true;
        if let Some(si) = seg {
            let segment = &self.segments[si as usize];
            for internal in self.visible_bits(si).iter() {
                let rows = match segment.vectors.get(using) {
                    Some(crate::segment::VectorData::Dense(d)) => u64::from(!d.is_deleted(internal)),
                    Some(crate::segment::VectorData::Multi(m)) => m.inner_count(internal)?.unwrap_or(0),
                    _ => 0,
                };
                if segment.has_vector(using, internal) {
                    vectors += 1;
                    bytes += rows * row_bytes;
                }
            }
            if filter.is_some() {
                let c = self.segment_candidates(si, filter)?;
                cardinality += c.bits.count() as u64;
                exact = !c.check;
            }
        }
        if with_overlay {
            let mut overlay_vectors = 0;
            for (idx, o) in self.overlay.iter().enumerate() {
                if self.points.get(&o.id).is_none_or(|r| r.loc != Loc::Overlay(idx)) {
                    continue;
                }
                let rows = match o.vectors.get(using) {
                    Some(VectorValue::Dense(_)) => 1,
                    Some(VectorValue::Multi(m)) => m.len() as u64,
                    _ => continue,
                };
                overlay_vectors += 1;
                bytes += rows * row_bytes;
            }
            vectors += overlay_vectors;
            if filter.is_some() {
                if exact {
                    self.visit_overlay(filter, |_, _| {
                        cardinality += 1;
                        Ok(())
                    })?;
                } else {
                    cardinality += overlay_vectors;
                }
            }
        }
        if vectors == 0 {
            return Ok(false);
        }
        let scan = (bytes / vectors).saturating_mul(if filter.is_some() { cardinality } else { vectors });
        Ok(scan > SEARCH_OPTIMIZED_THRESHOLD_KB * 1024)
    }

    /// Turn hits into REST scored points with the requested payload and vectors.
    pub(crate) fn materialize(
        &self,
        hits: &[QueryHit],
        with_payload: &WithPayload,
        with_vector: &WithVector,
    ) -> Result<Vec<ScoredPoint>> {
        hits.iter()
            .map(|h| {
                Ok(ScoredPoint {
                    id: h.id,
                    version: h.r.version,
                    score: h.score,
                    payload: self.select_payload(h.r.loc, with_payload)?,
                    vector: self.select_vectors(h.r.loc, with_vector)?,
                    order_value: h.order_value.clone(),
                })
            })
            .collect()
    }

    /// Points by id, in request order, without duplicates; missing ids are skipped.
    pub fn retrieve(
        &self,
        ids: &[PointId],
        with_payload: &WithPayload,
        with_vector: &WithVector,
    ) -> Result<Vec<Record>> {
        self.check_open()?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            if let Some(r) = self.points.get(id) {
                out.push(self.record(*id, r, with_payload, with_vector)?);
            }
        }
        Ok(out)
    }

    fn record(
        &self,
        id: PointId,
        r: &PointRef,
        with_payload: &WithPayload,
        with_vector: &WithVector,
    ) -> Result<Record> {
        Ok(Record {
            id,
            payload: self.select_payload(r.loc, with_payload)?,
            vector: self.select_vectors(r.loc, with_vector)?,
            order_value: None,
        })
    }

    /// Points ordered by id from `offset` (inclusive); returns the page and the next offset.
    pub fn scroll(
        &self,
        offset: Option<PointId>,
        limit: usize,
        filter: Option<&Filter>,
        with_payload: &WithPayload,
        with_vector: &WithVector,
    ) -> Result<(Vec<Record>, Option<PointId>)> {
        self.check_open()?;
        let iter: Box<dyn Iterator<Item = (&PointId, &PointRef)>> = match offset {
            Some(o) => Box::new(self.points.range(o..)),
            None => Box::new(self.points.iter()),
        };
        let mut out = Vec::new();
        let mut next = None;
        for (id, r) in iter {
            if !self.matches(filter, *id, r)? {
                continue;
            }
            if out.len() == limit {
                next = Some(*id);
                break;
            }
            out.push(self.record(*id, r, with_payload, with_vector)?);
        }
        Ok((out, next))
    }

    /// Points ordered by an indexed numeric or datetime field (scroll with `order_by`).
    #[allow(clippy::too_many_arguments)]
    pub fn scroll_ordered(
        &self,
        key: &str,
        direction: super::query::Direction,
        start_from: Option<f64>,
        limit: usize,
        filter: Option<&Filter>,
        with_payload: &WithPayload,
        with_vector: &WithVector,
    ) -> Result<Vec<Record>> {
        self.check_open()?;
        let hits = self.order_by_hits(key, direction, start_from, filter, limit, None)?;
        hits.into_iter()
            .map(|h| {
                let mut r = self.record(h.id, &h.r, with_payload, with_vector)?;
                r.order_value = h.order_value;
                Ok(r)
            })
            .collect()
    }

    /// Exact number of points matching `filter`.
    pub fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        self.check_open()?;
        if filter.is_none() {
            return Ok(self.points.len());
        }
        let mut n = 0;
        self.visit_matching_counted(filter, |k| n += k)?;
        Ok(n)
    }

    /// Counts of distinct values of an indexed field among the points matching `filter`:
    /// count descending, then value ascending; at most `limit` hits.
    pub fn facet(&self, key: &str, limit: usize, filter: Option<&Filter>) -> Result<Vec<(Value, usize)>> {
        self.check_open()?;
        let ty = self.indexed_fields.get(key).and_then(schema_type).map(str::to_string);
        let ty = match ty.as_deref() {
            Some(t @ ("keyword" | "integer" | "bool" | "uuid")) => t.to_string(),
            _ => {
                return Err(Error::invalid_field(
                    "key",
                    format!("facet needs a keyword, integer, bool or uuid index on `{key}`; none found"),
                ))
            }
        };
        let path = JsonPath::parse(key)
            .ok_or_else(|| Error::invalid_field("key", format!("`{key}` is not a valid payload path")))?;
        let mut counts: HashMap<FacetKey, usize> = HashMap::new();
        self.visit_matching(filter, |_, r| {
            let payload = self.payload_at(r.loc)?;
            let mut distinct = HashSet::new();
            for v in facet_values(path.value_get(&payload)) {
                if let Some(k) = FacetKey::from_value(&ty, v) {
                    distinct.insert(k);
                }
            }
            for k in distinct {
                *counts.entry(k).or_default() += 1;
            }
            Ok(())
        })?;
        let mut hits: Vec<(FacetKey, usize)> = counts.into_iter().collect();
        hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        hits.truncate(limit);
        Ok(hits.into_iter().map(|(k, c)| (k.to_json(), c)).collect())
    }

    /// Shard statistics, as qdrant-edge's `info()`.
    pub fn info(&self) -> Result<Value> {
        self.check_open()?;
        let mut schema = serde_json::Map::new();
        for (key, s) in &self.indexed_fields {
            let data_type = schema_type(s).unwrap_or("keyword").to_string();
            let path = JsonPath::parse(key)
                .ok_or_else(|| Error::invalid(format!("indexed field `{key}` is not a valid path")))?;
            let mut n = 0usize;
            for r in self.points.values() {
                let p = self.payload_at(r.loc)?;
                if facet_values(path.value_get(&p)).iter().any(|v| !v.is_null()) {
                    n += 1;
                }
            }
            let mut e = serde_json::Map::new();
            e.insert("data_type".into(), json!(data_type));
            if let Value::Object(params) = s {
                e.insert("params".into(), Value::Object(params.clone()));
            }
            e.insert("points".into(), json!(n));
            schema.insert(key.clone(), Value::Object(e));
        }
        let mut indexed: usize =
            self.segments.iter().filter(|s| s.is_indexed()).map(|s| s.indexed_vector_count()).sum();
        // RAM sparse indexes: the live vectors at load, plus what WAL replay added.
        for seg in self.segments.iter().filter(|s| s.is_indexed()) {
            for name in seg.ram_sparse_names() {
                let mut none = BTreeMap::new();
                indexed += seg.sparse_idf_stats(name, &mut none, |_| false)?;
                indexed += self.ram_sparse_added.get(name).copied().unwrap_or(0);
            }
        }
        Ok(json!({
            "segments_count": self.segments.len(),
            "points_count": self.points.len(),
            "indexed_vectors_count": indexed,
            "payload_schema": schema,
        }))
    }

    pub(crate) fn select_payload(&self, loc: Loc, with: &WithPayload) -> Result<Option<Payload>> {
        if matches!(with, WithPayload::Enable(false)) {
            return Ok(None);
        }
        let full = self.payload_at(loc)?;
        Ok(Some(match with {
            WithPayload::Enable(_) => (*full).clone(),
            WithPayload::Include(keys) | WithPayload::Selector(PayloadSelector::Include(keys)) => {
                json_path::select_include(&full, keys)
            }
            WithPayload::Selector(PayloadSelector::Exclude(keys)) => json_path::select_exclude(&full, keys),
        }))
    }

    pub(crate) fn select_vectors(&self, loc: Loc, with: &WithVector) -> Result<Option<Value>> {
        let names: Vec<&String> = match with {
            WithVector::Enable(false) => return Ok(None),
            WithVector::Enable(true) => self.vector_kinds.keys().collect(),
            WithVector::Names(n) => {
                for name in n {
                    self.vector_kind(name, "with_vector")?;
                }
                n.iter().collect()
            }
        };
        // A shard with only the default vector returns it bare, as Qdrant's REST API does.
        if self.vector_kinds.len() == 1 && self.vector_kinds.contains_key("") && names.len() == 1 {
            return Ok(self.vector_at(loc, "")?.map(|v| v.to_json()));
        }
        let mut m = serde_json::Map::new();
        for name in names {
            if let Some(v) = self.vector_at(loc, name)? {
                m.insert(name.clone(), v.to_json());
            }
        }
        Ok(Some(Value::Object(m)))
    }
}

/// A facet value of a typed index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum FacetKey {
    Keyword(String),
    Int(i64),
    Uuid(u128),
    Bool(bool),
}

impl FacetKey {
    fn from_value(ty: &str, v: &Value) -> Option<FacetKey> {
        match (ty, v) {
            ("keyword", Value::String(s)) => Some(FacetKey::Keyword(s.clone())),
            ("integer", Value::Number(n)) => n.as_i64().map(FacetKey::Int),
            ("bool", Value::Bool(b)) => Some(FacetKey::Bool(*b)),
            ("uuid", Value::String(s)) => uuid::Uuid::parse_str(s).ok().map(|u| FacetKey::Uuid(u.as_u128())),
            _ => None,
        }
    }
    fn to_json(&self) -> Value {
        match self {
            FacetKey::Keyword(s) => json!(s),
            FacetKey::Int(i) => json!(i),
            FacetKey::Uuid(u) => json!(uuid::Uuid::from_u128(*u).hyphenated().to_string()),
            FacetKey::Bool(b) => json!(b),
        }
    }
}

/// Prepared scoring for one query.
pub(crate) enum Scorer<'a> {
    Dense {
        q: spaces::QueryVector,
        name: String,
        distance: Distance,
        datatype: Datatype,
        /// Per segment, its storage of the vector (resolved once per query).
        stores: Vec<Option<&'a DenseVectorStorage>>,
    },
    Multi {
        q: Vec<spaces::QueryVector>,
        name: String,
        distance: Distance,
        datatype: Datatype,
    },
    Sparse {
        q: SparseVector,
        name: String,
    },
}

impl<'a> Scorer<'a> {
    fn new(
        shard: &'a EdgeShard,
        kind: &VectorKind,
        v: &QueryVector,
        name: &str,
        corpus: Option<&Filter>,
    ) -> Result<Scorer<'a>> {
        let bad = |m: &str| Error::invalid_field("query", m.to_string());
        Ok(match (kind, v) {
            (VectorKind::Dense { size, distance, datatype }, QueryVector::Dense(q)) => {
                if q.len() != *size {
                    return Err(bad(&format!("vector dimension {} does not match `{name}` ({size})", q.len())));
                }
                Scorer::Dense {
                    q: spaces::QueryVector::new(*distance, *datatype, q)?,
                    name: name.to_string(),
                    distance: *distance,
                    datatype: *datatype,
                    stores: shard.segments.iter().map(|s| s.dense_storage(name)).collect(),
                }
            }
            (VectorKind::Multi { size, distance, datatype }, QueryVector::Multi(qs)) => {
                if qs.is_empty() || qs.iter().any(|q| q.len() != *size) {
                    return Err(bad(&format!("multivector query must hold vectors of dimension {size}")));
                }
                Scorer::Multi {
                    q: qs.iter().map(|q| spaces::QueryVector::new(*distance, *datatype, q)).collect::<Result<_>>()?,
                    name: name.to_string(),
                    distance: *distance,
                    datatype: *datatype,
                }
            }
            (VectorKind::Multi { .. }, QueryVector::Dense(q)) => {
                return Scorer::new(shard, kind, &QueryVector::Multi(vec![q.clone()]), name, corpus)
            }
            (VectorKind::Sparse { idf }, QueryVector::Sparse(q)) => {
                let mut q = q.clone().sorted();
                if *idf {
                    q = shard.idf_weighted(name, q, corpus)?;
                }
                Scorer::Sparse { q, name: name.to_string() }
            }
            _ => return Err(bad(&format!("query vector kind does not match vector `{name}`"))),
        })
    }

    /// Request the starts of segment points' dense rows held in RAM, all at once
    /// ([`spaces::prefetch_rows`]); nothing for other points and scorers.
    #[inline]
    pub(crate) fn prefetch(&self, locs: impl IntoIterator<Item = Loc>) {
        if let Scorer::Dense { stores, .. } = self {
            spaces::prefetch_rows(locs.into_iter().filter_map(|loc| match loc {
                Loc::Segment { seg, internal } => stores.get(seg as usize).copied().flatten()?.ram_row(internal),
                _ => None,
            }));
        }
    }

    /// The internal scores of two segment points whose dense rows are held in RAM, in one
    /// interleaved pass ([`spaces::score_rows2`], the same bits as two [`score`](Self::score)
    /// calls); `None` where that does not apply (the caller scores them one by one).
    #[inline]
    pub(crate) fn score_pair(&self, a: Loc, b: Loc) -> Result<Option<(Option<f32>, Option<f32>)>> {
        let Scorer::Dense { q, distance, stores, .. } = self else { return Ok(None) };
        let (Loc::Segment { seg: sa, internal: ia }, Loc::Segment { seg: sb, internal: ib }) = (a, b) else {
            return Ok(None);
        };
        // Neighbouring rows stream best one after the other (interleaving them measured 2.5x
        // slower on a sequential scan); scattered rows gain from two streams in flight.
        if sa == sb && ia.abs_diff(ib) == 1 {
            return Ok(None);
        }
        let store = |seg: u32| stores.get(seg as usize).copied().flatten();
        let (Some(da), Some(db)) = (store(sa), store(sb)) else { return Ok(None) };
        if !(da.holds_rows_in_ram() && db.holds_rows_in_ram()) {
            return Ok(None);
        }
        Ok(Some(match (da.ram_row(ia), db.ram_row(ib)) {
            (Some(ra), Some(rb)) => {
                let (x, y) = spaces::score_rows2(*distance, q, ra, rb)?;
                (Some(x), Some(y))
            }
            (Some(ra), None) => (Some(spaces::score_row(*distance, q, ra)?), None),
            (None, Some(rb)) => (None, Some(spaces::score_row(*distance, q, rb)?)),
            (None, None) => (None, None),
        }))
    }

    /// [`score`](Self::score) of a point of segment `seg` whose dense rows are held in RAM,
    /// without a `Result`: `Some(None)` if the point lacks the vector, `None` where this does
    /// not apply or the row does not fit the query (then `score` answers, or says why not).
    #[inline]
    pub(crate) fn score_in_ram(&self, seg: u32, internal: u32) -> Option<Option<f32>> {
        let Scorer::Dense { q, distance, stores, .. } = self else { return None };
        let d = stores.get(seg as usize).copied().flatten()?;
        if !d.holds_rows_in_ram() {
            return None;
        }
        match d.ram_row(internal) {
            None => Some(None),
            Some(row) => spaces::try_score_query(*distance, q.view(), row).map(Some),
        }
    }

    /// Internal score (bigger is better), or `None` if the point lacks the vector.
    pub(crate) fn score(&self, shard: &EdgeShard, loc: Loc) -> Result<Option<f32>> {
        match self {
            Scorer::Dense { q, name, distance, datatype, stores } => match loc {
                Loc::Segment { seg, internal } => match stores.get(seg as usize).copied().flatten() {
                    Some(d) => d.with_row(internal, |row| spaces::score_row(*distance, q, row))?.transpose(),
                    None => Ok(None),
                },
                Loc::Overlay(i) => match shard.overlay[i].vectors.get(name) {
                    Some(VectorValue::Dense(v)) => {
                        let bytes = spaces::encode_row(*datatype, v);
                        spaces::score_row(*distance, q, RowRef::new(*datatype, &bytes)).map(Some)
                    }
                    _ => Ok(None),
                },
            },
            Scorer::Multi { q, name, distance, datatype } => {
                let Some(VectorValue::Multi(m)) = shard.vector_at(loc, name)? else { return Ok(None) };
                let bytes: Vec<Vec<u8>> = m.iter().map(|v| spaces::encode_row(*datatype, v)).collect();
                let rows: Vec<RowRef<'_>> = bytes.iter().map(|b| RowRef::new(*datatype, b)).collect();
                spaces::max_sim(*distance, q, &rows).map(Some)
            }
            Scorer::Sparse { q, name } => {
                let Some(VectorValue::Sparse(s)) = shard.vector_at(loc, name)? else { return Ok(None) };
                if !overlaps(&q.indices, &s.indices) {
                    return Ok(None);
                }
                // An immutable float16 / uint8 index scores with the weights it holds.
                if let Loc::Segment { seg, internal } = loc {
                    if let Some(w) = shard.segments[seg as usize].sparse_index_vector(name, internal) {
                        return Ok(Some(spaces::sparse_dot(q, w)));
                    }
                }
                Ok(Some(spaces::sparse_dot(q, &s)))
            }
        }
    }

    /// The prepared dense query and its distance (dense vectors only).
    pub(crate) fn dense_parts(&self) -> Option<(&spaces::QueryVector, Distance)> {
        match self {
            Scorer::Dense { q, distance, .. } => Some((q, *distance)),
            _ => None,
        }
    }

    /// The preprocessed dense query, as the quantizer sees it.
    pub(crate) fn dense_query_f32(&self) -> Option<Vec<f32>> {
        match self {
            Scorer::Dense { q, .. } => Some(q.to_f32()),
            _ => None,
        }
    }

    fn distance(&self) -> Option<Distance> {
        match self {
            Scorer::Dense { distance, .. } | Scorer::Multi { distance, .. } => Some(*distance),
            Scorer::Sparse { .. } => None,
        }
    }

    fn postprocess(&self, internal: f32) -> f32 {
        match self.distance() {
            Some(d) => spaces::postprocess(d, internal),
            None => internal,
        }
    }

    fn passes_threshold(&self, public: f32, t: f32) -> bool {
        match self.distance() {
            Some(d) => spaces::passes_threshold(d, public, t),
            None => public > t,
        }
    }
}

/// Whether two sorted index lists share an element.
fn overlaps(a: &[u32], b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Equal => return true,
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
        }
    }
    false
}

impl EdgeShard {
    fn is_overlay(&self, id: PointId) -> bool {
        matches!(self.points.get(&id), Some(PointRef { loc: Loc::Overlay(_), .. }))
    }

    /// Rescale sparse query weights by IDF over the visible points, or over those passing
    /// `corpus` (`params.idf.corpus`).
    fn idf_weighted(&self, name: &str, q: SparseVector, corpus: Option<&Filter>) -> Result<SparseVector> {
        let mut df: BTreeMap<u32, usize> = q.indices.iter().map(|&i| (i, 0)).collect();
        let mut n = 0usize;
        if let Some(c) = corpus {
            // As Qdrant: every corpus point that has the vector counts, an empty one too (the
            // global count is the index's, which holds only non-empty vectors).
            self.visit_matching(Some(c), |_, r| {
                if let Some(VectorValue::Sparse(s)) = self.vector_at(r.loc, name)? {
                    n += 1;
                    for t in &s.indices {
                        if let Some(c) = df.get_mut(t) {
                            *c += 1;
                        }
                    }
                }
                Ok(())
            })?;
            return Ok(idf_scaled(q, n, &df));
        }
        for seg in &self.segments {
            n += seg.sparse_idf_stats(name, &mut df, |id| self.is_overlay(id))?;
        }
        // Points replayed from the WAL are indexed by the appendable segment's RAM index.
        for r in self.points.values() {
            if let Loc::Overlay(i) = r.loc {
                if let Some(VectorValue::Sparse(s)) = self.overlay[i].vectors.get(name) {
                    if !s.indices.is_empty() {
                        n += 1;
                        for t in &s.indices {
                            if let Some(c) = df.get_mut(t) {
                                *c += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(idf_scaled(q, n, &df))
    }
}

/// Query weights times the IDF of their dimension among `n` vectors.
fn idf_scaled(q: SparseVector, n: usize, df: &BTreeMap<u32, usize>) -> SparseVector {
    let values = q
        .indices
        .iter()
        .zip(&q.values)
        .map(|(i, w)| {
            let d = *df.get(i).unwrap_or(&0) as f32;
            w * spaces::idf(n as f32, d)
        })
        .collect();
    SparseVector { indices: q.indices, values }
}

/// Values a path reaches, with a final array flattened one level (how field indexes see them).
fn facet_values(vals: Vec<&Value>) -> Vec<&Value> {
    let mut out = Vec::new();
    for v in vals {
        match v {
            Value::Array(a) => out.extend(a.iter()),
            other => out.push(other),
        }
    }
    out
}
