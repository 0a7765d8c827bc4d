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
//! `m0` (level 0) unvisited neighbours that pass the checks, in link order, exactly as Qdrant
//! bounds it, and the heaps are `std` binary heaps ordered by score only, as Qdrant's, so ties
//! resolve the same way. Points are checked for: a live mapping in this segment, being the
//! winning copy of their id in the shard (a newer copy elsewhere hides this one), having the
//! vector, and the filter.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use ordered_float::OrderedFloat;

use super::prefilter::Candidates;
use super::read::Scorer;
use super::{EdgeShard, Loc, PointRef};
use crate::error::Result;
use crate::format::dense::DenseVectorStorage;
use crate::format::hnsw::HnswGraph;
use crate::format::quantized::{Quantized, QuantizedQuery};
use crate::query::filter::Filter;
use crate::spaces;
use crate::types::PointId;

/// Search knobs of a request (`params`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SearchOptions {
    pub hnsw_ef: Option<usize>,
    pub exact: bool,
    /// `quantization.ignore`.
    pub quantization_ignore: bool,
    /// `quantization.rescore` (default as Qdrant: no rescoring for scalar quantization,
    /// rescoring for binary).
    pub rescore: Option<bool>,
    /// `quantization.oversampling`.
    pub oversampling: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Sp {
    idx: u32,
    score: f32,
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
struct Nearest {
    heap: BinaryHeap<Reverse<Sp>>,
    cap: usize,
}

impl Nearest {
    /// `None` if added without eviction, else the evicted or rejected element.
    fn push(&mut self, v: Sp) -> Option<Sp> {
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

/// Whether Qdrant checks `filter` on a batch of links with a partitioning checker, which
/// reorders the matching links (see [`partition_order`]): the filter is one `must` condition on
/// a field whose map index (`match` on a keyword, integer or uuid index, or a text match on a
/// text index) or numeric index (`range`) serves it. Other filters are checked in link order
/// (Qdrant's default batch check keeps the order); filters of several conditions, which Qdrant
/// applies one after the other in the order of its cardinality estimates, are treated as
/// keeping the order too, so ties among their links may be walked in a different order.
fn partitioning_filter(filter: Option<&Filter>, ctx: &crate::query::filter::FilterContext) -> bool {
    use crate::query::filter::{Condition, IndexKind, Match};
    let Some(f) = filter else { return false };
    let empty = |c: &Option<Vec<Condition>>| c.as_ref().is_none_or(|v| v.is_empty());
    if !empty(&f.should) || !empty(&f.must_not) || f.min_should.is_some() {
        return false;
    }
    let Some([Condition::Field(fc)]) = f.must.as_deref() else { return false };
    let kinds = ctx.indexes(&fc.key);
    match (&fc.r#match, &fc.range) {
        (Some(Match::Text(_) | Match::TextAny(_) | Match::Phrase(_)), None) => {
            kinds.iter().any(|k| matches!(k, IndexKind::Text(_)))
        }
        (Some(_), None) => kinds.iter().any(|k| matches!(k, IndexKind::Keyword | IndexKind::IntMap | IndexKind::Uuid)),
        (None, Some(_)) => {
            kinds.iter().any(|k| matches!(k, IndexKind::IntRange | IndexKind::Float | IndexKind::Datetime))
        }
        _ => false,
    }
}

/// The matching items of `data`, in the order Qdrant's partitioning condition checkers leave
/// them (edge 0.9.0 `Partitioner`): items are read front to back; a match is appended to the
/// matches; a non-match swaps places with the last unread item, which is read next.
fn partition_order(mut data: Vec<u32>, mut pred: impl FnMut(u32) -> Result<bool>) -> Result<Vec<u32>> {
    let (mut left, mut unread, mut right) = (0usize, 0usize, data.len());
    while unread < right {
        let v = data[unread];
        unread += 1;
        if pred(v)? {
            data[left] = v;
            left += 1;
        } else {
            data[unread - 1] = data[right - 1];
            data[right - 1] = v;
            unread -= 1;
            right -= 1;
        }
    }
    data.truncate(left);
    Ok(data)
}

/// The plain scan's top-k collector, with Qdrant's behaviour on equal scores (edge 0.9.0
/// `TopK`): a point is taken only if it beats the current k-th score strictly. Below
/// [`SORTED_K`] the kept points form a list sorted best first in which a newcomer goes after
/// the points with an equal score (so the first seen wins among equals); from [`SORTED_K`] on,
/// points are buffered up to 2k and cut back to k by a selection on the score (descending),
/// then sorted at the end, with the standard library's unstable selection and sort.
struct TopK {
    k: usize,
    elements: Vec<Sp>,
    threshold: f32,
}

const SORTED_K: usize = 32;

fn descending(a: &Sp, b: &Sp) -> Ordering {
    b.score.total_cmp(&a.score)
}

impl TopK {
    fn new(k: usize) -> TopK {
        // A huge `k` (limit × oversampling) only allocates what it fills.
        let capacity = if k < SORTED_K { k } else { k.saturating_mul(2) }.min(1 << 20);
        TopK { k, elements: Vec::with_capacity(capacity), threshold: f32::NEG_INFINITY }
    }

    fn push(&mut self, p: Sp) {
        if p.score <= self.threshold || p.score.is_nan() {
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

    fn into_vec(mut self) -> Vec<Sp> {
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
    /// Whether Qdrant's check of the filter on a list of links reorders them
    /// ([`partitioning_filter`]).
    partition: bool,
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

    /// Qdrant's `score_points`: keep the points passing the checks, at most `limit`, scored.
    fn score_points(&self, ids: &[u32], limit: usize, out: &mut Vec<Sp>) -> Result<()> {
        out.clear();
        if self.partition {
            // Visible points with the vector in link order, then the filter's partition order.
            let seg = &self.shard.segments[self.seg as usize];
            let visible = self.shard.visible.get(self.seg as usize);
            let live: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&p| {
                    visible.is_some_and(|v| v.get(p))
                        && match self.dense {
                            Some(d) => !d.is_deleted(p),
                            None => seg.has_vector(self.using, p),
                        }
                })
                .collect();
            let mut pass = partition_order(live, |p| self.check(p))?;
            if limit != 0 {
                pass.truncate(limit);
            }
            for p in pass {
                if let Some(score) = self.score(p)? {
                    out.push(Sp { idx: p, score });
                }
            }
            return Ok(());
        }
        let pair = match (self.quantized.is_none(), self.dense, self.scorer.dense_parts()) {
            (true, Some(d), Some((q, distance))) => Some((d, q, distance)),
            _ => None,
        };
        let Some((d, q, distance)) = pair else {
            for &p in ids {
                if limit != 0 && out.len() >= limit {
                    break;
                }
                if self.check(p)? {
                    if let Some(score) = self.score(p)? {
                        out.push(Sp { idx: p, score });
                    }
                }
            }
            return Ok(());
        };
        // The passing points (every one has the vector: `check` saw it), then scored two rows
        // at a time where both are in RAM.
        let mut pass = Vec::with_capacity(ids.len());
        for &p in ids {
            if limit != 0 && pass.len() >= limit {
                break;
            }
            if self.check(p)? {
                pass.push(p);
            }
        }
        let single = |p: u32, out: &mut Vec<Sp>| -> Result<()> {
            if let Some(score) = self.score(p)? {
                out.push(Sp { idx: p, score });
            }
            Ok(())
        };
        let mut i = 0;
        while i + 1 < pass.len() {
            let (a, b) = (pass[i], pass[i + 1]);
            match (d.ram_row(a), d.ram_row(b)) {
                (Some(ra), Some(rb)) => {
                    let (sa, sb) = spaces::score_rows2(distance, q, ra, rb)?;
                    out.push(Sp { idx: a, score: sa });
                    out.push(Sp { idx: b, score: sb });
                }
                _ => {
                    single(a, out)?;
                    single(b, out)?;
                }
            }
            i += 2;
        }
        if i < pass.len() {
            single(pass[i], out)?;
        }
        Ok(())
    }
}

impl EdgeShard {
    /// The best `top` points of segment `seg` (internal scores, best first) by Qdrant's
    /// strategy for a segment with an HNSW graph and/or a quantization (scalar or binary) of `using`, or
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
                        // Qdrant normalises a uint8 Cosine query for scalar quantization (its
                        // float queries are normalised already; binary shifts bytes instead).
                        if uint8 && *distance == crate::types::Distance::Cosine && matches!(q, Quantized::Scalar(_)) {
                            spaces::normalize(&mut f);
                        }
                        (q, q.encode_query(&f, uint8))
                    })
                }
                (Some(q), Scorer::Multi { q: vs, .. }) if vs.iter().all(|v| v.dim() == q.dim()) => {
                    let uint8 = vs.iter().any(|v| matches!(v, spaces::QueryVector::U8(_)));
                    let inner: Vec<Vec<f32>> = vs.iter().map(|v| v.to_f32()).collect();
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
        let partition = partitioning_filter(filter, &self.filter_ctx);
        let walk = Walk { shard: self, seg, using, scorer, filter, allowed, dense, quantized, partition };
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
        let found = match (use_graph, graph) {
            (true, Some(g)) => walk.graph_search(g, wanted, opts)?,
            _ if is_quantized => walk.plain_search(wanted)?,
            _ => return Ok(None),
        };
        // Rescoring with the original vectors (by default: off for scalar quantization, on for
        // binary).
        let mut found = found;
        if rescore {
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
    fn graph_search(&self, graph: &HnswGraph, top: usize, opts: SearchOptions) -> Result<Vec<Sp>> {
        let walk = self;
        let segment = &self.shard.segments[self.seg as usize];
        let ef = opts.hnsw_ef.unwrap_or(graph.config.ef as usize).max(top).max(1);
        let mut visited = vec![false; graph.point_count];
        let mut scored = Vec::new();
        let mut links = Vec::new();

        // Entry.
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
        let entries: Vec<Sp> = match entry {
            Some(e) => {
                let Some(score) = walk.score(e.point)? else { return Ok(Vec::new()) };
                let mut cur = Sp { idx: e.point, score };
                for level in (1..=e.level).rev() {
                    let mut changed = true;
                    while changed {
                        changed = false;
                        links.clear();
                        graph.links(cur.idx, level, &mut links);
                        walk.score_points(&links, graph.m_of(level), &mut scored)?;
                        for sp in &scored {
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
                // Seeds: the first matching points.
                let want = 2 * ef;
                let mut seeds = Vec::new();
                for (_, internal) in segment.id_tracker.iter_live() {
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
                    return Ok(Vec::new());
                }
                seeds
            }
        };

        // Level 0 beam search.
        let mut nearest = Nearest { heap: BinaryHeap::with_capacity(ef + 1), cap: ef };
        let mut candidates: BinaryHeap<Sp> = BinaryHeap::new();
        let process = |sp: Sp, nearest: &mut Nearest, candidates: &mut BinaryHeap<Sp>| {
            let added = match nearest.push(sp) {
                None => true,
                Some(removed) => removed.idx != sp.idx,
            };
            if added {
                candidates.push(sp);
            }
        };
        for e in entries {
            if (e.idx as usize) < visited.len() && !visited[e.idx as usize] {
                visited[e.idx as usize] = true;
                process(e, &mut nearest, &mut candidates);
            }
        }
        let m0 = graph.m_of(0);
        let mut fresh = Vec::new();
        while let Some(c) = candidates.pop() {
            if c.score < nearest.lower_bound() {
                break;
            }
            links.clear();
            graph.links(c.idx, 0, &mut links);
            fresh.clear();
            fresh.extend(links.iter().copied().filter(|&l| !visited[l as usize]));
            walk.score_points(&fresh, m0, &mut scored)?;
            for &sp in &scored {
                process(sp, &mut nearest, &mut candidates);
                visited[sp.idx as usize] = true;
            }
        }
        Ok(nearest.heap.into_sorted_vec().into_iter().map(|r| r.0).take(top).collect())
    }
}
