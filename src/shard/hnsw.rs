//! Searching a segment's HNSW graph the way Qdrant does (edge 0.9.0 `HNSWIndex::search`).
//!
//! Strategy per segment:
//! * `exact: true` → plain scan.
//! * no filter: plain scan when the segment's available points are fewer than the graph's
//!   `full_scan_threshold` (a number of vectors), else the graph.
//! * with a filter: Qdrant estimates the filter's cardinality from payload indexes and samples
//!   when unsure; we count the matching points of the segment exactly: from the filter's payload
//!   postings when they answer it (see `prefilter`), else by checking the candidates' payloads
//!   until the count reaches `full_scan_threshold`. Below it the matches are scanned plainly,
//!   otherwise the graph is walked with the filter checked on every point (a bit test when the
//!   postings answer it). The choice can differ from Qdrant's only where its estimate is wrong.
//!
//! The walk: the first graph entry point that passes the checks (else the highest passing extra
//! entry point, else the first `2·max(ef, top)` matching points as level-0 seeds); greedy
//! descent with beam 1 through the upper levels; then the level-0 beam search with
//! `ef = max(hnsw_ef or the graph's ef, top)`. Each expansion scores at most `m` (level > 0) or
//! `m0` (level 0) unvisited neighbours that pass the checks, in the order Qdrant's batch filter
//! leaves the links (`batch_order`), exactly as Qdrant bounds it, and the heaps are `std` binary heaps ordered by score only, as Qdrant's, so ties
//! resolve the same way. Points are checked for: a live mapping in this segment, being the
//! winning copy of their id in the shard (a newer copy elsewhere hides this one), having the
//! vector, and the filter.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use ordered_float::OrderedFloat;

use super::batch_order::BatchOrder;
use super::prefilter::Candidates;
use super::read::Scorer;
use super::{EdgeShard, Loc, PointRef};
use crate::error::Result;
use crate::format::dense::DenseVectorStorage;
use crate::format::hnsw::HnswGraph;
use crate::format::quantized::{Quantized, QuantizedQuery};
use crate::query::filter::Filter;
use crate::spaces;
use crate::types::{Distance, PointId};

/// Search knobs of a request (`params`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SearchOptions {
    pub hnsw_ef: Option<usize>,
    pub exact: bool,
    /// `quantization.ignore`.
    pub quantization_ignore: bool,
    /// `quantization.rescore` (default as Qdrant: no rescoring for scalar and product
    /// quantization, rescoring for binary).
    pub rescore: Option<bool>,
    /// `quantization.oversampling`.
    pub oversampling: Option<f64>,
    /// `indexed_only`: leave out segments searched without a graph whose scan would be large
    /// ([`EdgeShard::too_big_for_unindexed_search`](super::EdgeShard)).
    pub indexed_only: bool,
    /// `acorn`: when enabled, its `max_selectivity`. A filtered graph search whose filter's
    /// estimated selectivity is at most this walks with ACORN-1 ([`Walk::graph_search`]).
    pub acorn: Option<f64>,
}

/// A scored point: an index (an internal id, or a position in a side table) and its score;
/// ordered by score only, as Qdrant's scored points are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sp {
    pub(crate) idx: u32,
    pub(crate) score: f32,
}
impl PartialEq for Sp {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Sp {}
impl Ord for Sp {
    fn cmp(&self, o: &Self) -> Ordering {
        OrderedFloat(self.score).cmp(&OrderedFloat(o.score))
    }
}
impl PartialOrd for Sp {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Qdrant's fixed-length queue: keeps the `cap` best, the worst on top.
pub(crate) struct Nearest {
    heap: BinaryHeap<Reverse<Sp>>,
    cap: usize,
}

impl Nearest {
    pub(crate) fn new(cap: usize) -> Nearest {
        // A huge `cap` (limit + offset) only allocates what it fills.
        Nearest { heap: BinaryHeap::with_capacity(cap.saturating_add(1).min(1 << 16)), cap }
    }

    /// Best first; equal scores come out in the order the standard heap sort leaves them,
    /// which is Qdrant's, given the same pushes.
    pub(crate) fn into_sorted_vec(self) -> Vec<Sp> {
        self.heap.into_sorted_vec().into_iter().map(|r| r.0).collect()
    }

    /// `None` if added without eviction, else the evicted or rejected element.
    pub(crate) fn push(&mut self, v: Sp) -> Option<Sp> {
        if self.heap.len() < self.cap {
            self.heap.push(Reverse(v));
            return None;
        }
        if self.heap.peek().expect("full queue").0 >= v {
            return Some(v);
        }
        let mut top = self.heap.peek_mut().expect("full queue");
        let old = std::mem::replace(&mut *top, Reverse(v));
        drop(top);
        Some(old.0)
    }
    fn lower_bound(&self) -> f32 {
        self.heap.peek().map_or(f32::MIN, |r| r.0.score)
    }
}

/// Qdrant's `process_candidate`: offer a scored point to the `ef` best; one that got in becomes
/// a candidate to expand.
fn offer(sp: Sp, nearest: &mut Nearest, candidates: &mut BinaryHeap<Sp>) {
    let added = match nearest.push(sp) {
        None => true,
        Some(removed) => removed.idx != sp.idx,
    };
    if added {
        candidates.push(sp);
    }
}

/// The plain scan's top-k collector, with Qdrant's behaviour on equal scores (edge 0.9.0
/// `TopK`): a point is taken only if it beats the current k-th score strictly. Below
/// [`SORTED_K`] the kept points form a list sorted best first in which a newcomer goes after
/// the points with an equal score (so the first seen wins among equals); from [`SORTED_K`] on,
/// points are buffered up to 2k and cut back to k by a selection on the score (descending),
/// then sorted at the end, with the standard library's unstable selection and sort.
pub(crate) struct TopK {
    k: usize,
    elements: Vec<Sp>,
    threshold: f32,
}

const SORTED_K: usize = 32;

fn descending(a: &Sp, b: &Sp) -> Ordering {
    b.score.total_cmp(&a.score)
}

impl TopK {
    pub(crate) fn new(k: usize) -> TopK {
        // A huge `k` (limit × oversampling) only allocates what it fills.
        let capacity = if k < SORTED_K { k } else { k.saturating_mul(2) }.min(1 << 20);
        TopK { k, elements: Vec::with_capacity(capacity), threshold: f32::NEG_INFINITY }
    }

    /// Whether a point with this score would be taken now.
    #[inline]
    pub(crate) fn takes(&self, score: f32) -> bool {
        score > self.threshold && !score.is_nan()
    }

    pub(crate) fn push(&mut self, p: Sp) {
        if !self.takes(p.score) {
            return;
        }
        if self.k < SORTED_K {
            if self.elements.len() < self.k {
                self.elements.push(p);
            }
            let mut pos = self.elements.len() - 1;
            while pos > 0 && self.elements[pos - 1].score < p.score {
                self.elements[pos] = self.elements[pos - 1];
                pos -= 1;
            }
            self.elements[pos] = p;
            if let Some(w) = self.elements.get(self.k - 1) {
                self.threshold = w.score;
            }
        } else {
            self.elements.push(p);
            if self.elements.len() == self.k.saturating_mul(2) {
                let (_, kth, _) = self.elements.select_nth_unstable_by(self.k - 1, descending);
                self.threshold = kth.score;
                self.elements.truncate(self.k);
            }
        }
    }

    pub(crate) fn into_vec(mut self) -> Vec<Sp> {
        if self.k >= SORTED_K {
            self.elements.sort_unstable_by(descending);
            self.elements.truncate(self.k);
        }
        self.elements
    }
}

/// One point of the segment as the walk sees it.
pub(crate) type Found = (f32, PointId, PointRef);

struct Walk<'a> {
    shard: &'a EdgeShard,
    seg: u32,
    using: &'a str,
    scorer: &'a Scorer<'a>,
    filter: Option<&'a Filter>,
    /// The visible points of the segment that may pass the filter.
    allowed: Candidates,
    /// The dense storage of `using` (other kinds check through the segment).
    dense: Option<&'a DenseVectorStorage>,
    /// Score with the quantized copy instead of the vectors.
    quantized: Option<(&'a Quantized, QuantizedQuery)>,
    /// Qdrant's order of the neighbours a filtered step keeps, where it is not the links' order.
    order: Option<BatchOrder>,
}

impl Walk<'_> {
    /// Whether an internal id is a visible point with the vector that passes the filter.
    fn check(&self, internal: u32) -> Result<bool> {
        if !self.allowed.bits.get(internal) {
            return Ok(false);
        }
        let has_vector = match self.dense {
            Some(d) => !d.is_deleted(internal),
            None => self.shard.segments[self.seg as usize].has_vector(self.using, internal),
        };
        if !has_vector {
            return Ok(false);
        }
        if let (true, Some(f)) = (self.allowed.check, self.filter) {
            let Some(ext) = self.shard.segments[self.seg as usize].id_tracker.external_id(internal) else {
                return Ok(false);
            };
            let ctx = self.shard.point_context(ext, Loc::Segment { seg: self.seg, internal })?;
            return Ok(f.check(&ctx, &self.shard.filter_ctx));
        }
        Ok(true)
    }

    /// The point behind a visible internal id.
    fn found(&self, internal: u32) -> Option<(PointId, PointRef)> {
        let ext = self.shard.segments[self.seg as usize].id_tracker.external_id(internal)?;
        let r = self.shard.points.get(&ext)?;
        (r.loc == Loc::Segment { seg: self.seg, internal }).then_some((ext, *r))
    }

    fn score(&self, internal: u32) -> Result<Option<f32>> {
        match &self.quantized {
            Some((q, eq)) => q.score(eq, internal),
            None => self.exact_score(internal),
        }
    }

    fn exact_score(&self, internal: u32) -> Result<Option<f32>> {
        self.scorer.score(self.shard, Loc::Segment { seg: self.seg, internal })
    }

    /// Whether an internal id is a visible point with the vector (Qdrant's "not deleted").
    fn exists(&self, internal: u32) -> bool {
        let visible = self.shard.visible.get(self.seg as usize).is_some_and(|b| b.get(internal));
        visible
            && match self.dense {
                Some(d) => !d.is_deleted(internal),
                None => self.shard.segments[self.seg as usize].has_vector(self.using, internal),
            }
    }

    /// Qdrant's `score_points`: keep the points passing the checks, at most `limit` (0: all),
    /// in the order its batch filter leaves them ([`BatchOrder`]), scored. `ids` is filtered in
    /// place (a step allocates nothing) and holds the points scored afterwards.
    fn score_points(&self, ids: &mut Vec<u32>, limit: usize, out: &mut Vec<Sp>) -> Result<()> {
        match &self.order {
            Some(order) => {
                ids.retain(|&p| self.exists(p));
                let n = order.apply(self.shard, ids)?;
                ids.truncate(if limit != 0 { n.min(limit) } else { n });
            }
            None => {
                let mut kept = 0;
                for i in 0..ids.len() {
                    if limit != 0 && kept >= limit {
                        break;
                    }
                    let p = ids[i];
                    if self.check(p)? {
                        ids[kept] = p;
                        kept += 1;
                    }
                }
                ids.truncate(kept);
            }
        }
        self.score_listed(ids, out)
    }

    /// Score `pass` in order (points known to pass the checks).
    fn score_listed(&self, pass: &[u32], out: &mut Vec<Sp>) -> Result<()> {
        out.clear();
        let ram = match (self.quantized.is_none(), self.dense, self.scorer.dense_parts()) {
            (true, Some(d), Some((q, distance))) => Some((d, q, distance)),
            _ => None,
        };
        let Some((d, q, distance)) = ram else {
            for &p in pass {
                if let Some(score) = self.score(p)? {
                    out.push(Sp { idx: p, score });
                }
            }
            return Ok(());
        };
        let single = |p: u32, out: &mut Vec<Sp>| -> Result<()> {
            if let Some(score) = self.score(p)? {
                out.push(Sp { idx: p, score });
            }
            Ok(())
        };
        // Ask for every row first, so that their cache misses overlap; then score them eight
        // at a time where they are f32 rows in RAM ([`spaces::f32_sum_n`]), else four, two,
        // or one by one.
        spaces::prefetch_rows(pass.iter().filter_map(|&p| d.ram_row(p)));
        for c8 in pass.chunks(8) {
            if score_group::<8>(d, q, distance, c8, out) {
                continue;
            }
            for c4 in c8.chunks(4) {
                if score_group::<4>(d, q, distance, c4, out) {
                    continue;
                }
                for c2 in c4.chunks(2) {
                    if !score_group::<2>(d, q, distance, c2, out) {
                        for &p in c2 {
                            single(p, out)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Score `ids` into `out` in one interleaved pass if they are `N` f32 rows of the query's
/// length held in RAM; whether it did.
#[inline]
fn score_group<const N: usize>(
    d: &DenseVectorStorage,
    q: &spaces::QueryVector,
    distance: Distance,
    ids: &[u32],
    out: &mut Vec<Sp>,
) -> bool {
    if ids.len() != N {
        return false;
    }
    let mut rows = [None; N];
    for (r, &p) in rows.iter_mut().zip(ids) {
        *r = d.ram_row(p);
    }
    if rows.iter().any(Option::is_none) {
        return false;
    }
    let Some(scores) = spaces::try_score_rows(distance, q.view(), rows.map(|r| r.expect("checked above"))) else {
        return false;
    };
    out.extend(ids.iter().zip(scores).map(|(&idx, score)| Sp { idx, score }));
    true
}

impl EdgeShard {
    /// The estimated share of segment `seg`'s `using` vectors that pass `filter`, as Qdrant
    /// decides on ACORN: the filter's expected cardinality over the available points, scaled
    /// by the share of them that have the vector, over the number of vectors.
    fn filter_selectivity(&self, seg: u32, using: &str, filter: &Filter) -> Result<f64> {
        let segment = &self.segments[seg as usize];
        let visible = self.visible_bits(seg);
        let points = visible.count();
        let vectors = visible.iter().filter(|&i| segment.has_vector(using, i)).count();
        if points == 0 || vectors == 0 {
            return Ok(1.0);
        }
        let est = self.estimate_filter(seg, filter, points)?;
        let share = (vectors as f64 / points as f64).min(1.0);
        let exp = (est.exp.min(points) as f64 * share).round();
        Ok(exp / vectors as f64)
    }

    /// The best `top` points of segment `seg` (internal scores, best first) by Qdrant's
    /// strategy for a segment with an HNSW graph and/or a quantization (scalar, product or binary) of `using`, or
    /// `None` when the plain exact scan applies (the caller scans the segment's points).
    pub(crate) fn segment_search(
        &self,
        seg: u32,
        using: &str,
        scorer: &Scorer<'_>,
        filter: Option<&Filter>,
        top: usize,
        opts: SearchOptions,
    ) -> Result<Option<Vec<Found>>> {
        if opts.exact {
            return Ok(None);
        }
        let segment = &self.segments[seg as usize];
        let graph = segment.hnsw.get(using);
        let quantized = if opts.quantization_ignore {
            None
        } else {
            match (segment.quantized.get(using), scorer) {
                (Some(q), Scorer::Dense { q: v, distance, .. }) if !q.is_multi() && v.dim() == q.dim() => {
                    let uint8 = matches!(v, spaces::QueryVector::U8(_));
                    scorer.dense_query_f32().map(|mut f| {
                        // Qdrant normalises a uint8 Cosine query for scalar and product
                        // quantization (its float queries are normalised already; binary
                        // shifts bytes instead).
                        if uint8 && *distance == crate::types::Distance::Cosine && !q.is_binary() {
                            spaces::normalize(&mut f);
                        }
                        (q, q.encode_query(&f, uint8))
                    })
                }
                (Some(q), Scorer::Multi { q: vs, distance, .. }) if vs.iter().all(|v| v.dim() == q.dim()) => {
                    let uint8 = vs.iter().any(|v| matches!(v, spaces::QueryVector::U8(_)));
                    let mut inner: Vec<Vec<f32>> = vs.iter().map(|v| v.to_f32()).collect();
                    // As for dense queries, inner vector by inner vector.
                    if uint8 && *distance == crate::types::Distance::Cosine && !q.is_binary() {
                        inner.iter_mut().for_each(|v| spaces::normalize(v));
                    }
                    q.encode_multi_query(&inner, uint8).map(|e| (q, e))
                }
                _ => None,
            }
        };
        let is_quantized = quantized.is_some();
        let rescore = match &quantized {
            Some((q, _)) => opts.rescore.unwrap_or(q.default_rescore()),
            None => false,
        };
        let allowed = self.segment_candidates(seg, filter)?;
        let dense = segment.dense_storage(using);
        let order = match filter {
            Some(f) if graph.is_some() => self.batch_order(seg, f)?,
            _ => None,
        };
        let mut walk = Walk { shard: self, seg, using, scorer, filter, allowed, dense, quantized, order };
        let wanted = match opts.oversampling {
            Some(o) if is_quantized && o > 1.0 => (o * top as f64) as usize,
            _ => top,
        };
        let use_graph = match graph {
            None => false,
            Some(g) => {
                let threshold = g.config.full_scan_threshold as usize;
                if filter.is_none() {
                    segment.id_tracker.live_count() >= threshold
                } else if !walk.allowed.check {
                    walk.allowed.bits.count() >= threshold
                } else {
                    let mut matched = 0usize;
                    for internal in walk.allowed.bits.iter() {
                        if walk.check(internal)? {
                            matched += 1;
                            if matched >= threshold {
                                break;
                            }
                        }
                    }
                    matched >= threshold
                }
            }
        };
        let acorn = match (opts.acorn, filter) {
            (Some(max_selectivity), Some(f)) if use_graph => self.filter_selectivity(seg, using, f)? <= max_selectivity,
            _ => false,
        };
        // A quantized, non-ACORN walk over a graph with inline vectors takes Qdrant's
        // inline-vector search: exact scores come out of it, so no rescoring follows.
        let inline = use_graph
            && is_quantized
            && !acorn
            && matches!(scorer, Scorer::Dense { .. })
            && graph.is_some_and(|g| g.inline_layouts().is_some());
        let found = match (use_graph, graph) {
            (true, Some(g)) if inline => {
                // Its link checks keep link order (a plain filter of the list).
                walk.order = None;
                let ef = opts.hnsw_ef.unwrap_or(g.config.ef as usize).max(wanted).max(top).max(1);
                walk.graph_search_inline(g, top, ef)?
            }
            (true, Some(g)) => walk.graph_search(g, wanted, opts, acorn)?,
            _ if is_quantized => walk.plain_search(wanted)?,
            _ => return Ok(None),
        };
        // Rescoring with the original vectors (by default: off for scalar and product
        // quantization, on for binary).
        let mut found = found;
        if rescore && !inline {
            let mut rescored = Vec::with_capacity(found.len());
            for sp in &found {
                if let Some(score) = walk.exact_score(sp.idx)? {
                    rescored.push(Sp { idx: sp.idx, score });
                }
            }
            rescored.sort_unstable();
            rescored.reverse();
            found = rescored;
        }
        let mut out = Vec::with_capacity(top);
        for sp in found.into_iter().take(top) {
            if let Some((id, r)) = walk.found(sp.idx) {
                out.push((sp.score, id, r));
            }
        }
        Ok(Some(out))
    }
}

impl Walk<'_> {
    /// Score every point of the segment that passes the checks, in internal id order; the best
    /// `top`, best first, chosen among equal scores as Qdrant's plain search does ([`TopK`]).
    fn plain_search(&self, top: usize) -> Result<Vec<Sp>> {
        let mut best = TopK::new(top.max(1));
        for internal in self.allowed.bits.iter() {
            if self.check(internal)? {
                if let Some(score) = self.score(internal)? {
                    best.push(Sp { idx: internal, score });
                }
            }
        }
        Ok(best.into_vec())
    }

    /// The graph walk (module docs); the best `top`, best first.
    /// Qdrant's HNSW search: a greedy descent from the entry point to level 0, then a beam of
    /// `ef` on level 0 that scores the unvisited neighbours passing the filter (at most `m0`
    /// of them per step). With `acorn` the level-0 step is ACORN-1 instead: neighbours that
    /// fail the filter are bridges whose own neighbours are collected too (see
    /// [`Walk::acorn_step`]).
    fn graph_search(&self, graph: &HnswGraph, top: usize, opts: SearchOptions, acorn: bool) -> Result<Vec<Sp>> {
        let walk = self;
        let ef = opts.hnsw_ef.unwrap_or(graph.config.ef as usize).max(top).max(1);
        let mut visited = vec![false; graph.point_count];
        let mut scored = Vec::new();
        let mut links = Vec::new();

        let Some(entries) = walk.entries(graph, ef, &mut links, &mut scored)? else { return Ok(Vec::new()) };

        // Level 0 beam search.
        let mut nearest = Nearest::new(ef);
        let mut candidates: BinaryHeap<Sp> = BinaryHeap::new();
        for e in entries {
            if (e.idx as usize) < visited.len() && !visited[e.idx as usize] {
                visited[e.idx as usize] = true;
                offer(e, &mut nearest, &mut candidates);
            }
        }
        let m0 = graph.m_of(0);
        let mut fresh = Vec::new();
        let mut acorn_state = acorn.then(|| AcornState::new(graph.point_count));
        while let Some(c) = candidates.pop() {
            if c.score < nearest.lower_bound() {
                break;
            }
            if let Some(state) = acorn_state.as_mut() {
                walk.acorn_step(graph, c.idx, &mut visited, state, &mut fresh)?;
                walk.score_listed(&fresh, &mut scored)?;
                for &sp in &scored {
                    offer(sp, &mut nearest, &mut candidates);
                }
                continue;
            }
            links.clear();
            graph.links(c.idx, 0, &mut links);
            fresh.clear();
            fresh.extend(links.iter().copied().filter(|&l| !visited[l as usize]));
            walk.score_points(&mut fresh, m0, &mut scored)?;
            for &sp in &scored {
                offer(sp, &mut nearest, &mut candidates);
                visited[sp.idx as usize] = true;
            }
        }
        Ok(nearest.into_sorted_vec().into_iter().take(top).collect())
    }

    /// Where the level-0 search starts: the entry point (the first one passing the checks,
    /// else the highest passing extra one) after a greedy descent through the upper levels, or
    /// when none passes, the first `2·ef` passing points as seeds; `None` when nothing passes.
    fn entries(
        &self,
        graph: &HnswGraph,
        ef: usize,
        links: &mut Vec<u32>,
        scored: &mut Vec<Sp>,
    ) -> Result<Option<Vec<Sp>>> {
        let walk = self;
        let mut first_err = None;
        let entry = graph.entry_point(|p| match walk.check(p) {
            Ok(x) => x,
            Err(e) => {
                first_err.get_or_insert(e);
                false
            }
        });
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(Some(match entry {
            Some(e) => {
                let Some(score) = walk.score(e.point)? else { return Ok(None) };
                let mut cur = Sp { idx: e.point, score };
                for level in (1..=e.level).rev() {
                    let mut changed = true;
                    while changed {
                        changed = false;
                        links.clear();
                        graph.links(cur.idx, level, links);
                        walk.score_points(links, graph.m_of(level), scored)?;
                        for sp in scored.iter() {
                            if sp.score > cur.score {
                                changed = true;
                                cur = *sp;
                            }
                        }
                    }
                }
                vec![cur]
            }
            None => {
                // Seeds: the first matching points in internal-id order (Qdrant reads them
                // from the filter's index postings or a scan, both ascending).
                let want = 2 * ef;
                let mut seeds = Vec::new();
                for internal in walk.allowed.bits.iter() {
                    if (internal as usize) < graph.point_count && walk.check(internal)? {
                        if let Some(score) = walk.score(internal)? {
                            seeds.push(Sp { idx: internal, score });
                            if seeds.len() >= want {
                                break;
                            }
                        }
                    }
                }
                if seeds.is_empty() {
                    return Ok(None);
                }
                seeds
            }
        }))
    }

    /// Qdrant's search over a graph with inline vectors (`links_comp_vec.bin`, used when the
    /// search is quantized): the beam walks on the quantized scores of the links, and every
    /// expanded candidate (plus the one that ends the walk) is scored exactly on its original
    /// vector into a second queue of `ef`, whose best `top` are the answer (no rescoring
    /// after). Links are checked in link order, at most `m0` kept per step.
    fn graph_search_inline(&self, graph: &HnswGraph, top: usize, ef: usize) -> Result<Vec<Sp>> {
        let mut links = Vec::new();
        let mut scored = Vec::new();
        let Some(entries) = self.entries(graph, ef, &mut links, &mut scored)? else { return Ok(Vec::new()) };
        let mut visited = vec![false; graph.point_count];
        let mut nearest = Nearest::new(ef);
        let mut base = Nearest::new(ef);
        let mut candidates: BinaryHeap<Sp> = BinaryHeap::new();
        for e in entries {
            if (e.idx as usize) < visited.len() && !visited[e.idx as usize] {
                visited[e.idx as usize] = true;
                offer(e, &mut nearest, &mut candidates);
            }
        }
        let m0 = graph.m_of(0);
        let mut fresh = Vec::new();
        while let Some(c) = candidates.pop() {
            let exact = self.exact_score(c.idx)?;
            if let Some(score) = exact {
                base.push(Sp { idx: c.idx, score });
            }
            if c.score < nearest.lower_bound() {
                break;
            }
            links.clear();
            graph.links(c.idx, 0, &mut links);
            fresh.clear();
            fresh.extend(links.iter().copied().filter(|&l| !visited[l as usize]));
            self.score_points(&mut fresh, m0, &mut scored)?;
            for &sp in &scored {
                offer(sp, &mut nearest, &mut candidates);
                visited[sp.idx as usize] = true;
            }
        }
        Ok(base.into_sorted_vec().into_iter().take(top).collect())
    }

    /// One level-0 step of ACORN-1 from `from`: fills `out` with the points to score.
    ///
    /// Walking `from`'s links in order, an unvisited link that passes the filter is taken
    /// (until `m0` are taken); one that fails is a bridge when among the first `m0` links,
    /// and past them (payload links) an evenly spaced `m0` of the failing ones are bridges.
    /// Then, per bridge, its links that are neither visited nor already seen through a bridge
    /// and pass the filter are taken, at most `m0` more per bridge. Taken points and bridges
    /// count as visited. (`m0 == 0`: no limits.) This follows Qdrant's ACORN search.
    fn acorn_step(
        &self,
        graph: &HnswGraph,
        from: u32,
        visited: &mut [bool],
        state: &mut AcornState,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let m0 = graph.m_of(0);
        let limit = if m0 == 0 { usize::MAX } else { m0 };
        out.clear();
        state.bridges.clear();
        state.tail.clear();
        state.links.clear();
        graph.links(from, 0, &mut state.links);
        for (rank, &p) in state.links.iter().enumerate() {
            let Some(seen) = visited.get_mut(p as usize) else { continue };
            if *seen {
                continue;
            }
            if self.check(p)? {
                *seen = true;
                out.push(p);
                if out.len() >= limit {
                    break;
                }
            } else if rank < limit {
                *seen = true;
                state.bridges.push(p);
            } else {
                state.tail.push(p);
            }
        }
        let picks = state.tail.len().min(limit);
        for j in 0..picks {
            let p = state.tail[j * state.tail.len() / picks];
            visited[p as usize] = true;
            state.bridges.push(p);
        }
        for b in 0..state.bridges.len() {
            let bridge = state.bridges[b];
            let cap = out.len().saturating_add(limit);
            state.links.clear();
            graph.links(bridge, 0, &mut state.links);
            for &p in &state.links {
                let i = p as usize;
                if i >= visited.len() || visited[i] || std::mem::replace(&mut state.via_bridge[i], true) {
                    continue;
                }
                if self.check(p)? {
                    visited[i] = true;
                    out.push(p);
                    if out.len() >= cap {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Scratch space of an ACORN walk.
struct AcornState {
    /// Points already reached through a bridge (a second visited list: being here does not
    /// stop a point from being taken later as a direct link).
    via_bridge: Vec<bool>,
    bridges: Vec<u32>,
    tail: Vec<u32>,
    links: Vec<u32>,
}

impl AcornState {
    fn new(n: usize) -> AcornState {
        AcornState { via_bridge: vec![false; n], bridges: Vec::new(), tail: Vec::new(), links: Vec::new() }
    }
}
