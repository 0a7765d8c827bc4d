//! Building an HNSW graph the way Qdrant does (single-threaded, reproducible).
//!
//! The algorithm follows Qdrant's graph builder (edge 0.9.0, behaviour only):
//!
//! * every indexed point draws a random level `floor(-ln(u) / ln(max(m, 2)))`, `u` uniform in
//!   `(0, 1)` from a fixed-seed SplitMix64 generator, in internal-id order; points that are not
//!   indexed (deleted, or without this vector) keep a single empty level-0 list;
//! * points are inserted in internal-id order: greedy descent (beam 1) from the global entry
//!   point down to one level above the point's level, then on every level from
//!   `min(level, entry level)` down to 0 a beam search of width `ef_construct`, whose best
//!   result is the entry of the level below;
//! * the new point's list is filled from the beam results (best first) with the neighbour
//!   selection heuristic: a candidate is dropped when an already selected link is closer to it
//!   than the new point (`>`, or `>=` between candidates equidistant from the new point), at
//!   most `m0` links on level 0 and `m` above;
//! * every selected neighbour gets a back link; when that overflows its list, the list plus the
//!   new point are re-selected with the same heuristic (sorted by similarity to the neighbour);
//! * entry points: the first entry is the highest-level point (replaced when a higher one
//!   arrives); a bounded set of `extra` entries keeps the highest levels seen.
//!
//! Scores are the metric's internal similarity (bigger is better), given by the caller's
//! [`BuildScorer`] between two indexed points. Like search, a beam step first asks for the
//! vectors of all the neighbours it is about to score ([`BuildScorer::prefetch`]) and scores
//! them two at a time; neither changes a score or the graph (measured on 30k real 384-d
//! vectors: the same graph files byte for byte, ~30 % less time).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::format::hnsw::EntryPoint;
pub use crate::format::hnsw_write::BuiltGraph;

/// Build parameters.
#[derive(Debug, Clone, Copy)]
pub struct HnswBuildParams {
    pub m: usize,
    pub m0: usize,
    pub ef_construct: usize,
    /// Capacity of the extra entry points (Qdrant: `max(1, points / full_scan_threshold * 10)`).
    pub extra_entry_points: usize,
    pub seed: u64,
}

/// What the builder scores with: the internal similarity of two indexed points, and a hint to
/// start loading a point's vector before a batch of scores needs it. Any `Fn(u32, u32) -> f32`
/// is a scorer that gives no hints.
pub trait BuildScorer {
    /// Internal similarity of point `b` to point `a` (bigger is better).
    fn score(&self, a: u32, b: u32) -> f32;
    /// Start loading the vectors of `points`, all at once (a hint: no effect on results).
    fn prefetch(&self, _points: &[u32]) {}
    /// The similarities of `b` and `c` to `a`, equal to two [`score`](Self::score) calls (a
    /// scorer may compute them in one pass).
    fn score2(&self, a: u32, b: u32, c: u32) -> (f32, f32) {
        (self.score(a, b), self.score(a, c))
    }
    /// The similarities of eight points to `a`, equal to eight [`score`](Self::score) calls.
    fn score8(&self, a: u32, b: [u32; 8]) -> [f32; 8] {
        b.map(|b| self.score(a, b))
    }
}

/// `score` of `a` against each of `points` into `out` (cleared first), eight at a time where
/// there are eight, then two, then one: the same scores as one at a time.
fn score_all<S: BuildScorer + ?Sized>(score: &S, a: u32, points: &[u32], out: &mut Vec<f32>) {
    out.clear();
    let mut eights = points.chunks_exact(8);
    for c in &mut eights {
        out.extend(score.score8(a, c.try_into().expect("eight points")));
    }
    let mut pairs = eights.remainder().chunks_exact(2);
    for p in &mut pairs {
        let (x, y) = score.score2(a, p[0], p[1]);
        out.extend([x, y]);
    }
    if let [b] = *pairs.remainder() {
        out.push(score.score(a, b));
    }
}

impl<F: Fn(u32, u32) -> f32> BuildScorer for F {
    fn score(&self, a: u32, b: u32) -> f32 {
        self(a, b)
    }
}

/// SplitMix64: a tiny, well-mixed fixed-seed generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The level of a point for a uniform sample (`ml = 1 / ln(max(m, 2))`); a zero sample is
/// clamped so the level stays finite.
pub fn level_from_sample(sample: f64, m: usize) -> usize {
    let ml = 1.0 / (m.max(2) as f64).ln();
    (-sample.max(f64::MIN_POSITIVE).ln() * ml).floor() as usize
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    score: f32,
    idx: u32,
}

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.idx.cmp(&self.idx))
    }
}

/// Whether `candidate` is made redundant by an already selected link (the heuristic's test).
fn is_redundant(candidate_to_existing: f32, candidate_score: f32, existing_score: f32) -> bool {
    if candidate_score == existing_score {
        candidate_to_existing >= candidate_score
    } else {
        candidate_to_existing > candidate_score
    }
}

/// Heuristic selection from candidates sorted best first (scores relative to the list owner).
/// `known[i]` marks candidates that an earlier selection for the same owner already kept: two
/// of them are known not to shadow each other, so that pair is not scored again.
fn select_with_heuristic<S: BuildScorer + ?Sized>(
    sorted: &[Scored],
    known: Option<&[bool]>,
    level_m: usize,
    score: &S,
    out: &mut Vec<u32>,
    picked: &mut Vec<(f32, bool)>,
) {
    out.clear();
    picked.clear();
    if level_m == 0 {
        return;
    }
    'outer: for (i, c) in sorted.iter().enumerate() {
        let c_known = known.is_some_and(|k| k[i]);
        for (&e, &(es, e_known)) in out.iter().zip(picked.iter()) {
            if c_known && e_known {
                continue;
            }
            if is_redundant(score.score(c.idx, e), c.score, es) {
                continue 'outer;
            }
        }
        out.push(c.idx);
        picked.push((c.score, c_known));
        if out.len() >= level_m {
            break;
        }
    }
}

struct Visited {
    stamp: Vec<u32>,
    gen: u32,
}

impl Visited {
    fn new(n: usize) -> Self {
        Visited { stamp: vec![0; n], gen: 0 }
    }
    fn next(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.fill(0);
            self.gen = 1;
        }
    }
    /// Mark `i`; returns whether it was already marked.
    fn check_and_set(&mut self, i: u32) -> bool {
        let s = &mut self.stamp[i as usize];
        let was = *s == self.gen;
        *s = self.gen;
        was
    }
    fn is_set(&self, i: u32) -> bool {
        self.stamp[i as usize] == self.gen
    }
}

struct Builder<'a, S: BuildScorer + ?Sized> {
    p: HnswBuildParams,
    score: &'a S,
    links: Vec<Vec<Vec<u32>>>,
    ready: Vec<bool>,
    visited: Visited,
    entry_points: Vec<EntryPoint>,
    extra: Vec<EntryPoint>,
    extra_capacity: usize,
    /// Per point and level: how many leading links the last heuristic selection kept.
    processed: Vec<Vec<u32>>,
    buf: Vec<u32>,
    scores: Vec<f32>,
    picked: Vec<(f32, bool)>,
    cands: Vec<Scored>,
    known: Vec<bool>,
}

impl<S: BuildScorer + ?Sized> Builder<'_, S> {
    fn level_m(&self, level: usize) -> usize {
        if level == 0 {
            self.p.m0
        } else {
            self.p.m
        }
    }

    /// Greedy walk (beam 1) on one level.
    fn search_entry_on_level(&mut self, q: u32, mut cur: Scored, level: usize) -> Scored {
        loop {
            let mut changed = false;
            self.buf.clear();
            self.buf.extend(self.links[cur.idx as usize][level].iter().copied().filter(|&l| self.ready[l as usize]));
            self.score.prefetch(&self.buf);
            for i in 0..self.buf.len() {
                let l = self.buf[i];
                let s = self.score.score(q, l);
                if s > cur.score {
                    cur = Scored { score: s, idx: l };
                    changed = true;
                }
            }
            if !changed {
                return cur;
            }
        }
    }

    /// Beam search of width `ef` on one level; results sorted best first.
    fn search_on_level(&mut self, q: u32, entry: Scored, level: usize, ef: usize) -> Vec<Scored> {
        self.visited.next();
        let mut nearest: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
        let mut candidates: BinaryHeap<Scored> = BinaryHeap::new();
        self.visited.check_and_set(entry.idx);
        nearest.push(std::cmp::Reverse(entry));
        candidates.push(entry);
        while let Some(c) = candidates.pop() {
            let lower = nearest.peek().map_or(f32::MIN, |r| r.0.score);
            if c.score < lower {
                break;
            }
            self.buf.clear();
            for &l in &self.links[c.idx as usize][level] {
                if self.ready[l as usize] && !self.visited.is_set(l) {
                    self.buf.push(l);
                }
            }
            self.score.prefetch(&self.buf);
            let offer = |sp: Scored,
                         nearest: &mut BinaryHeap<std::cmp::Reverse<Scored>>,
                         candidates: &mut BinaryHeap<Scored>| {
                if nearest.len() < ef {
                    nearest.push(std::cmp::Reverse(sp));
                    candidates.push(sp);
                } else if nearest.peek().is_some_and(|w| w.0 < sp) {
                    nearest.pop();
                    nearest.push(std::cmp::Reverse(sp));
                    candidates.push(sp);
                }
            };
            // Scored eight at a time (same scores, offered in the same order, as one at a time).
            score_all(self.score, q, &self.buf, &mut self.scores);
            for (&l, &score) in self.buf.iter().zip(&self.scores) {
                self.visited.check_and_set(l);
                offer(Scored { score, idx: l }, &mut nearest, &mut candidates);
            }
        }
        let mut out: Vec<Scored> = nearest.into_iter().map(|r| r.0).collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    /// Add `new` to the list of `target` on `level`, re-selecting the list when it overflows.
    /// The links kept by the previous selection of this list are sorted by similarity already
    /// and do not shadow each other; only pairs involving other links are checked (same result
    /// as re-running the heuristic on everything).
    fn connect(&mut self, new: u32, target: u32, level: usize) {
        let level_m = self.level_m(level);
        if level_m == 0 {
            return;
        }
        let (t, l) = (target as usize, level);
        if self.links[t][l].len() < level_m {
            self.links[t][l].push(new);
            return;
        }
        let score = self.score;
        let processed = self.processed[t][l] as usize;
        self.cands.clear();
        self.known.clear();
        score.prefetch(&self.links[t][l]);
        score_all(score, target, &self.links[t][l], &mut self.scores);
        for (i, (&x, &s)) in self.links[t][l].iter().zip(&self.scores).enumerate() {
            self.cands.push(Scored { score: s, idx: x });
            self.known.push(i < processed);
        }
        self.cands.push(Scored { score: score.score(target, new), idx: new });
        self.known.push(false);
        let mut order: Vec<usize> = (0..self.cands.len()).collect();
        order.sort_by(|&a, &b| self.cands[b].score.total_cmp(&self.cands[a].score));
        let sorted: Vec<Scored> = order.iter().map(|&i| self.cands[i]).collect();
        let known: Vec<bool> = order.iter().map(|&i| self.known[i]).collect();
        let mut out = std::mem::take(&mut self.links[t][l]);
        select_with_heuristic(&sorted, Some(&known), level_m, score, &mut out, &mut self.picked);
        self.processed[t][l] = out.len() as u32;
        self.links[t][l] = out;
    }

    fn new_entry_point(&mut self, point: u32, level: usize) {
        let new = EntryPoint { point, level };
        let Some(first) = self.entry_points.first().copied() else {
            self.entry_points.push(new);
            return;
        };
        if first.level >= level {
            self.push_extra(new);
        } else {
            self.entry_points[0] = new;
            self.push_extra(first);
        }
    }

    /// The bounded set keeps the highest levels (a full set replaces its lowest entry by a
    /// strictly higher one).
    fn push_extra(&mut self, e: EntryPoint) {
        if self.extra.len() < self.extra_capacity {
            self.extra.push(e);
            return;
        }
        if let Some((i, low)) = self.extra.iter().enumerate().min_by_key(|(_, x)| x.level) {
            if e.level > low.level {
                self.extra[i] = e;
            }
        }
    }

    fn link_new_point(&mut self, point: u32) {
        let level = self.links[point as usize].len() - 1;
        if let Some(ep) = self.entry_points.first().copied() {
            let start = Scored { score: self.score.score(point, ep.point), idx: ep.point };
            let mut entry = start;
            if ep.level > level {
                for l in (level + 1..=ep.level).rev() {
                    entry = self.search_entry_on_level(point, entry, l);
                }
            }
            for l in (0..=level.min(ep.level)).rev() {
                let nearest = self.search_on_level(point, entry, l, self.p.ef_construct);
                if let Some(best) = nearest.first() {
                    entry = *best;
                }
                let level_m = self.level_m(l);
                let mut mine = std::mem::take(&mut self.links[point as usize][l]);
                select_with_heuristic(&nearest, None, level_m, self.score, &mut mine, &mut self.picked);
                self.processed[point as usize][l] = mine.len() as u32;
                let selected = mine.clone();
                self.links[point as usize][l] = mine;
                for other in selected {
                    self.connect(point, other, l);
                }
            }
        }
        self.ready[point as usize] = true;
        self.new_entry_point(point, level);
    }
}

impl<'s, S: BuildScorer + ?Sized> Builder<'s, S> {
    fn new(p: HnswBuildParams, score: &'s S, links: Vec<Vec<Vec<u32>>>) -> Self {
        let n = links.len();
        let processed = links.iter().map(|l| vec![0; l.len()]).collect();
        Builder {
            p,
            score,
            links,
            ready: vec![false; n],
            visited: Visited::new(n),
            entry_points: Vec::new(),
            extra: Vec::new(),
            extra_capacity: p.extra_entry_points.max(1),
            processed,
            buf: Vec::new(),
            scores: Vec::new(),
            picked: Vec::new(),
            cands: Vec::new(),
            known: Vec::new(),
        }
    }
}

/// A scorer over a subset of points, by local index.
struct Subset<'a, S: ?Sized> {
    inner: &'a S,
    points: &'a [u32],
}

impl<S: BuildScorer + ?Sized> BuildScorer for Subset<'_, S> {
    fn score(&self, a: u32, b: u32) -> f32 {
        self.inner.score(self.points[a as usize], self.points[b as usize])
    }
    fn prefetch(&self, points: &[u32]) {
        // Mapped through a small buffer on the stack: a step asks for at most a few dozen.
        let mut buf = [0u32; 64];
        for chunk in points.chunks(buf.len()) {
            for (slot, &b) in buf.iter_mut().zip(chunk) {
                *slot = self.points[b as usize];
            }
            self.inner.prefetch(&buf[..chunk.len()]);
        }
    }
    fn score2(&self, a: u32, b: u32, c: u32) -> (f32, f32) {
        let p = |i: u32| self.points[i as usize];
        self.inner.score2(p(a), p(b), p(c))
    }
    fn score8(&self, a: u32, b: [u32; 8]) -> [f32; 8] {
        self.inner.score8(self.points[a as usize], b.map(|i| self.points[i as usize]))
    }
}

/// Payload-aware links (Qdrant's "additional links"): for each block of points sharing an
/// indexed payload value ([`super::payload_blocks`]), a graph over just those points, every
/// one on level 0, linked with `payload_m` (`2·payload_m` kept per point) and
/// `ef_construct`, whose links are appended to the points' level-0 lists where missing.
///
/// Blocks are kept as Qdrant keeps them: only points with the vector (`indexed`) count; a block
/// larger than `4 · points / (mean level-0 links)` is skipped (the main graph stays connected
/// at that density), as is one of at most `full_scan_threshold / 4` points (searched without a
/// graph). Qdrant also skips blocks of later fields that its sampled connectivity estimate
/// finds already well connected; every qualifying block is linked here.
pub fn add_payload_links(
    graph: &mut BuiltGraph,
    indexed: &[bool],
    blocks: &[Vec<u32>],
    payload_m: usize,
    ef_construct: usize,
    full_scan_threshold: usize,
    score: &(impl BuildScorer + ?Sized),
) -> usize {
    if payload_m == 0 || blocks.is_empty() {
        return 0;
    }
    let present = indexed.iter().filter(|&&x| x).count();
    let level0: usize =
        graph.links.iter().zip(indexed).filter(|(_, &x)| x).map(|(l, _)| l.first().map_or(0, Vec::len)).sum();
    let mean_links = level0.checked_div(present).unwrap_or(0);
    let max_block = if graph.m > 0 { present / mean_links.max(1) * 4 } else { usize::MAX };
    let mut linked = 0;
    for block in blocks {
        if block.len() > max_block {
            continue;
        }
        let points: Vec<u32> =
            block.iter().copied().filter(|&p| indexed.get(p as usize).copied().unwrap_or(false)).collect();
        if points.len() <= full_scan_threshold / 4 {
            continue;
        }
        let local = Subset { inner: score, points: &points };
        let params = HnswBuildParams { m: payload_m, m0: 2 * payload_m, ef_construct, extra_entry_points: 1, seed: 0 };
        let mut b = Builder::new(params, &local, vec![vec![Vec::new()]; points.len()]);
        for i in 0..points.len() as u32 {
            b.link_new_point(i);
        }
        for (i, mut levels) in b.links.into_iter().enumerate() {
            let target = &mut graph.links[points[i] as usize][0];
            for l in levels.swap_remove(0) {
                let g = points[l as usize];
                if !target.contains(&g) {
                    target.push(g);
                }
            }
        }
        linked += 1;
    }
    linked
}

/// Build the graph over internal ids `0..n`; only points with `indexed[i]` are linked.
pub fn build_hnsw(indexed: &[bool], params: HnswBuildParams, score: &(impl BuildScorer + ?Sized)) -> BuiltGraph {
    let n = indexed.len();
    let mut rng = SplitMix64::new(params.seed);
    let mut links = Vec::with_capacity(n);
    for &ix in indexed {
        let level = if ix { level_from_sample(rng.next_f64(), params.m) } else { 0 };
        links.push(vec![Vec::new(); level + 1]);
    }
    let extra_capacity = params.extra_entry_points.max(1);
    let mut b = Builder::new(params, score, links);
    // `m = 0` builds no main graph (Qdrant then relies on payload links only): levels, no links.
    for (i, &ix) in indexed.iter().enumerate() {
        if ix && params.m > 0 {
            b.link_new_point(i as u32);
        }
    }
    BuiltGraph {
        m: params.m,
        m0: params.m0,
        ef_construct: params.ef_construct,
        links: b.links,
        entry_points: b.entry_points,
        extra_entry_points: b.extra,
        extra_capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clustered random points in `dim` dimensions, normalised (Cosine-like dot scores).
    fn data(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = SplitMix64::new(seed);
        let mut g = move || (rng.next_f64() * 2.0 - 1.0) as f32;
        let centers: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| g()).collect()).collect();
        (0..n)
            .map(|i| {
                let c = &centers[i % centers.len()];
                let mut v: Vec<f32> = c.iter().map(|x| x + 0.35 * g()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Plain HNSW search over the built graph (greedy descent, then a beam of `ef` on level 0).
    fn search(g: &BuiltGraph, q: &[f32], pts: &[Vec<f32>], ef: usize, k: usize) -> Vec<u32> {
        let ep = g.entry_points[0];
        let mut cur = (dot(q, &pts[ep.point as usize]), ep.point);
        for l in (1..=ep.level).rev() {
            loop {
                let best = g.links[cur.1 as usize][l]
                    .iter()
                    .map(|&x| (dot(q, &pts[x as usize]), x))
                    .fold(cur, |a, b| if b.0 > a.0 { b } else { a });
                if best.1 == cur.1 {
                    break;
                }
                cur = best;
            }
        }
        let mut seen = std::collections::HashSet::from([cur.1]);
        let mut found = vec![cur];
        let mut frontier = vec![cur];
        while let Some(c) = frontier.pop() {
            for &x in &g.links[c.1 as usize][0] {
                if seen.insert(x) {
                    let s = (dot(q, &pts[x as usize]), x);
                    found.push(s);
                    frontier.push(s);
                }
            }
            found.sort_by(|a, b| b.0.total_cmp(&a.0));
            found.truncate(ef);
            frontier.retain(|f| found.iter().any(|x| x.1 == f.1));
            frontier.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        found.iter().take(k).map(|x| x.1).collect()
    }

    fn params(m: usize) -> HnswBuildParams {
        HnswBuildParams { m, m0: 2 * m, ef_construct: 64, extra_entry_points: 10, seed: 5 }
    }

    #[test]
    fn levels_follow_the_geometric_distribution() {
        assert_eq!(level_from_sample(0.99, 8), 0);
        assert_eq!(level_from_sample(0.9 / 8.0, 8), 1);
        assert_eq!(level_from_sample(1.1 / 8.0, 8), 0);
        assert_eq!(level_from_sample(0.9 / 64.0, 8), 2);
        assert!(level_from_sample(0.0, 8) < 1100);
        let mut rng = SplitMix64::new(1);
        let n = 200_000;
        let at1 = (0..n).filter(|_| level_from_sample(rng.next_f64(), 16) >= 1).count() as f64;
        let want = n as f64 / 16.0;
        assert!((at1 - want).abs() < 5.0 * want.sqrt(), "{at1} vs {want}");
    }

    #[test]
    fn graph_invariants_and_recall() {
        let n = 3000;
        let pts = data(n, 24, 3);
        // every 7th point is not indexed (deleted or without the vector)
        let indexed: Vec<bool> = (0..n).map(|i| i % 7 != 3).collect();
        let score = |a: u32, b: u32| dot(&pts[a as usize], &pts[b as usize]);
        let p = params(8);
        let g = build_hnsw(&indexed, p, &score);
        assert_eq!(g.links.len(), n);
        let top = g.links.iter().map(Vec::len).max().unwrap() - 1;
        assert!(top >= 2, "3000 points with m=8 reach level 2 or more");
        assert_eq!(g.entry_points.len(), 1);
        assert_eq!(g.entry_points[0].level, top);
        assert_eq!(g.links[g.entry_points[0].point as usize].len() - 1, top);
        assert!(g.extra_entry_points.len() <= p.extra_entry_points);
        let mut back = 0usize;
        let mut total = 0usize;
        for (i, lv) in g.links.iter().enumerate() {
            if !indexed[i] {
                assert_eq!(lv, &vec![Vec::<u32>::new()]);
                continue;
            }
            for (l, list) in lv.iter().enumerate() {
                assert!(list.len() <= if l == 0 { p.m0 } else { p.m }, "point {i} level {l}: {}", list.len());
                let mut sorted = list.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), list.len(), "duplicate links");
                for &x in list {
                    assert_ne!(x as usize, i);
                    assert!(indexed[x as usize], "link to a point that is not indexed");
                    assert!(g.links[x as usize].len() > l, "link to a point below the level");
                    total += 1;
                    back += usize::from(g.links[x as usize][l].contains(&(i as u32)));
                }
            }
            assert!(!lv[0].is_empty(), "indexed point {i} has no level-0 links");
        }
        assert!(back * 10 > total * 6, "most links are mutual: {back}/{total}");

        // recall@10 against brute force, 100 queries that are not points (a clustered, fairly
        // hard set: 24 dims, wide clusters)
        let queries = data(100, 24, 77);
        let recall = |g: &BuiltGraph, ef: usize| {
            let mut hits = 0;
            for q in &queries {
                let mut exact: Vec<(f32, u32)> =
                    (0..n as u32).filter(|&i| indexed[i as usize]).map(|i| (dot(q, &pts[i as usize]), i)).collect();
                exact.sort_by(|a, b| b.0.total_cmp(&a.0));
                let truth: Vec<u32> = exact.iter().take(10).map(|x| x.1).collect();
                hits += search(g, q, &pts, ef, 10).iter().filter(|x| truth.contains(x)).count();
            }
            hits as f64 / (10 * queries.len()) as f64
        };
        let r = recall(&g, 128);
        assert!(r >= 0.95, "recall@10 at ef 128: {r}");
        // control: the same graph with level-0 links pointing at random points is useless
        let mut broken = g.clone();
        let mut rng = SplitMix64::new(1);
        for (i, lv) in broken.links.iter_mut().enumerate() {
            if indexed[i] {
                lv[0].iter_mut().for_each(|x| *x = (rng.next_u64() % n as u64) as u32);
            }
        }
        let rb = recall(&broken, 128);
        assert!(rb < 0.5, "random links still give recall {rb}");
    }

    #[test]
    fn builds_are_reproducible_and_seeded() {
        let pts = data(500, 8, 9);
        let score = |a: u32, b: u32| dot(&pts[a as usize], &pts[b as usize]);
        let indexed = vec![true; 500];
        let a = build_hnsw(&indexed, params(4), &score);
        let b = build_hnsw(&indexed, params(4), &score);
        assert_eq!(a, b);
        let c = build_hnsw(&indexed, HnswBuildParams { seed: 6, ..params(4) }, &score);
        assert_ne!(a.links, c.links);
    }

    #[test]
    fn degenerate_inputs() {
        let score = |_: u32, _: u32| 1.0f32;
        // no points, one point, identical points, nothing indexed
        assert!(build_hnsw(&[], params(4), &score).links.is_empty());
        let one = build_hnsw(&[true], params(4), &score);
        assert_eq!(one.entry_points.len(), 1);
        assert!(one.links[0].iter().all(Vec::is_empty));
        let same = build_hnsw(&[true; 50], params(4), &score);
        assert!(same.links.iter().all(|l| l[0].len() <= 8 && !l[0].is_empty()));
        let none = build_hnsw(&[false; 5], params(4), &score);
        assert!(none.entry_points.is_empty() && none.links.iter().all(|l| l == &vec![Vec::<u32>::new()]));
    }

    #[test]
    fn heuristic_drops_points_shadowed_by_a_closer_link() {
        // 1-D points on a line: 0.0 (owner), 1.0, 1.1, -2.0; similarity = -distance.
        let xs = [0.0f32, 1.0, 1.1, -2.0];
        let score = |a: u32, b: u32| -(xs[a as usize] - xs[b as usize]).abs();
        let sorted: Vec<Scored> =
            [1u32, 2, 3].iter().map(|&i| Scored { score: score(0, i), idx: i }).collect::<Vec<_>>();
        let (mut out, mut picked) = (Vec::new(), Vec::new());
        select_with_heuristic(&sorted, None, 3, &score, &mut out, &mut picked);
        // 1.1 is closer to 1.0 than to the owner: dropped; -2.0 lies the other way: kept.
        assert_eq!(out, [1, 3]);
        select_with_heuristic(&sorted, None, 1, &score, &mut out, &mut picked);
        assert_eq!(out, [1]);
    }
}
