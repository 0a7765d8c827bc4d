//! The order in which Qdrant's filtered graph walk keeps a node's neighbours.
//!
//! At each step of its HNSW walk Qdrant filters the unvisited neighbours of a node in one
//! batch, keeps the first `m` that pass and scores them in that order. The batch filter does
//! not keep the links' order: it partitions the list in place, condition by condition, and
//! how a condition partitions depends on the checker serving it:
//!
//! * a payload index that reads values (keyword, integer and uuid `match`, integer, float and
//!   datetime `range`, geo, full text) streams the list once: a passing id goes to the front,
//!   a failing one to the back, and the last unread id moves into its slot, so it is read next;
//! * every other checker (unindexed fields, bool and null indexes, `has_id`, nested, ...) either
//!   compacts the passing ids in order (when nothing reads the rest of the list afterwards) or
//!   swaps failing ids with passing ones taken from the back (when the next `should` branch
//!   still has to read the rest);
//! * conditions are taken in order of their estimated cardinality: `must` and `must_not`
//!   least probable first, `should` most probable first, `min_should` by its count.
//!
//! The walk visits and scores the same points either way; the order changes which points a
//! step keeps when more than `m` pass, and which enter the beam first. To give Qdrant's answers
//! exactly, [`BatchOrder::apply`] reproduces the permutation from the same pass/fail outcomes.
//! A filter made only of compacting checkers under `must` / `must_not` keeps the links'
//! order, and needs no plan ([`EdgeShard::batch_order`] returns `None`).
//!
//! Cardinality estimates come from [`EdgeShard::estimate_filter`], exact where our postings
//! answer a condition, so conditions whose Qdrant estimates (histograms, text, geo) order
//! differently from ours can be taken in another order.

use std::cmp::Reverse;

use super::prefilter::{Bits, Pre};
use super::{EdgeShard, Loc};
use crate::error::Result;
use crate::query::filter::{Condition, Filter, IndexKind};

/// How a checker partitions a batch (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    /// Index checkers that stream the batch.
    Stream,
    /// Compacting (or swapping, when the rest is kept) checkers.
    Default,
    /// A checker with one answer for every point: nothing moves.
    Constant(bool),
}

struct Leaf {
    cond: Condition,
    how: How,
    /// The exact set of points passing the condition, where the postings answer it.
    exact: Option<Bits>,
}

enum Node {
    Leaf(Box<Leaf>),
    Filter(Plan),
}

struct Plan {
    should: Vec<Node>,
    min_should: Vec<Node>,
    min_count: usize,
    must: Vec<Node>,
    must_not: Vec<Node>,
}

/// The batch-filter plan of one filter on one segment.
pub(crate) struct BatchOrder {
    seg: u32,
    root: Plan,
}

#[derive(Clone, Copy, PartialEq)]
enum Rest {
    Keep,
    Discard,
}

impl Rest {
    fn keep_if(self, more: bool) -> Rest {
        if more {
            Rest::Keep
        } else {
            self
        }
    }
}

impl EdgeShard {
    /// The plan of `filter` on segment `seg`, or `None` when Qdrant's batch filter keeps the
    /// links' order for it.
    pub(crate) fn batch_order(&self, seg: u32, filter: &Filter) -> Result<Option<BatchOrder>> {
        if self.keeps_order(filter) {
            return Ok(None);
        }
        let total = self.visible_bits(seg).count();
        let root = self.plan(seg, filter, total)?;
        Ok(Some(BatchOrder { seg, root }))
    }

    fn how(&self, c: &Condition) -> How {
        match c {
            Condition::Field(fc) => {
                let geo = fc.geo_radius.is_some() || fc.geo_bounding_box.is_some() || fc.geo_polygon.is_some();
                for kind in self.filter_ctx.indexes(&fc.key) {
                    let serves = match kind {
                        IndexKind::Geo => geo,
                        _ => crate::query::filter::index_serves(kind, fc),
                    };
                    if serves {
                        return match kind {
                            IndexKind::Bool | IndexKind::Null => How::Default,
                            _ => How::Stream,
                        };
                    }
                }
                How::Default
            }
            Condition::HasVector(name) if !self.vector_kinds.contains_key(name) => How::Constant(false),
            _ => How::Default,
        }
    }

    fn keeps_order(&self, f: &Filter) -> bool {
        f.should.as_ref().is_none_or(|s| s.is_empty())
            && f.min_should.is_none()
            && f.must.iter().chain(f.must_not.iter()).flatten().all(|c| match c {
                Condition::Filter(_) => false,
                c => self.how(c) != How::Stream,
            })
    }

    fn plan(&self, seg: u32, f: &Filter, total: usize) -> Result<Plan> {
        let n = self.segments[seg as usize].id_tracker.total_point_count() as usize;
        let convert = |conds: Option<&Vec<Condition>>| -> Result<Vec<(Node, usize)>> {
            let mut out = Vec::new();
            let several = conds.is_some_and(|v| v.len() > 1);
            for c in conds.into_iter().flatten() {
                // Only the order among several conditions needs their estimates.
                let exp = if several { self.estimate_condition(seg, c, total, n)?.exp } else { 0 };
                let node = match c {
                    Condition::Filter(inner) => Node::Filter(self.plan(seg, inner, total)?),
                    c => Node::Leaf(Box::new(Leaf {
                        cond: c.clone(),
                        how: self.how(c),
                        exact: match self.eval_condition(seg, c, n)? {
                            Pre::Exact(b) => Some(b),
                            _ => None,
                        },
                    })),
                };
                out.push((node, exp));
            }
            Ok(out)
        };
        let strip = |v: Vec<(Node, usize)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let mut should = convert(f.should.as_ref())?;
        should.sort_by_key(|(_, e)| Reverse(*e));
        let (min_should, min_count) = match &f.min_should {
            Some(ms) => {
                let mut v = convert(Some(&ms.conditions))?;
                let k = usize::try_from(ms.min_count).unwrap_or(usize::MAX);
                if k < ms.conditions.len() / 2 {
                    v.sort_by_key(|(_, e)| Reverse(*e));
                } else {
                    v.sort_by_key(|(_, e)| *e);
                }
                (v, k)
            }
            None => (Vec::new(), 0),
        };
        let mut must = convert(f.must.as_ref())?;
        must.sort_by_key(|(_, e)| *e);
        let mut must_not = convert(f.must_not.as_ref())?;
        must_not.sort_by_key(|(_, e)| *e);
        Ok(Plan {
            should: strip(should),
            min_should: strip(min_should),
            min_count,
            must: strip(must),
            must_not: strip(must_not),
        })
    }

    fn leaf_passes(&self, seg: u32, leaf: &Leaf, internal: u32) -> Result<bool> {
        if let How::Constant(v) = leaf.how {
            return Ok(v);
        }
        if let Some(b) = &leaf.exact {
            return Ok(b.get(internal));
        }
        let tracker = &self.segments[seg as usize].id_tracker;
        let Some(ext) = tracker.external_id(internal) else { return Ok(false) };
        let ctx = self.point_context(ext, Loc::Segment { seg, internal })?;
        Ok(leaf.cond.check(&ctx, &self.filter_ctx))
    }
}

impl BatchOrder {
    /// Reorder `ids` (points that exist and have the vector, in link order) the way Qdrant's
    /// batch filter does; the first `n` returned are the ones passing the filter.
    pub(crate) fn apply(&self, shard: &EdgeShard, ids: &mut [u32]) -> Result<usize> {
        let ctx = Ctx { shard, seg: self.seg };
        ctx.filter(&self.root, ids, true, Rest::Discard)
    }
}

struct Ctx<'a> {
    shard: &'a EdgeShard,
    seg: u32,
}

impl Ctx<'_> {
    fn node(&self, node: &Node, ids: &mut [u32], select: bool, rest: Rest) -> Result<usize> {
        match node {
            Node::Filter(p) => self.filter(p, ids, select, rest),
            Node::Leaf(leaf) => {
                let pred = |p: u32| self.shard.leaf_passes(self.seg, leaf, p);
                match leaf.how {
                    How::Constant(v) => Ok(if v == select { ids.len() } else { 0 }),
                    How::Stream => stream_partition(ids, select, pred),
                    How::Default => default_partition(ids, select, rest, pred),
                }
            }
        }
    }

    fn filter(&self, p: &Plan, ids: &mut [u32], select: bool, rest: Rest) -> Result<usize> {
        if select {
            let mut n = self.all_of(&p.must, ids, true, rest)?;
            n = self.all_of(&p.must_not, &mut ids[..n], false, rest)?;
            if !p.should.is_empty() {
                n = self.any_of(&p.should, &mut ids[..n], true, rest)?;
            }
            self.at_least(&p.min_should, &mut ids[..n], p.min_count, true, rest)
        } else {
            let min_should_rest = rest;
            let should_rest = min_should_rest.keep_if(p.min_count > 0);
            let must_not_rest = should_rest.keep_if(!p.should.is_empty());
            let must_rest = must_not_rest.keep_if(!p.must_not.is_empty());
            let mut n = self.any_of(&p.must, ids, false, must_rest)?;
            n += self.any_of(&p.must_not, &mut ids[n..], true, must_not_rest)?;
            if !p.should.is_empty() {
                n += self.all_of(&p.should, &mut ids[n..], false, should_rest)?;
            }
            let threshold = (p.min_should.len() + 1).saturating_sub(p.min_count);
            n += self.at_least(&p.min_should, &mut ids[n..], threshold, false, min_should_rest)?;
            Ok(n)
        }
    }

    /// Narrow the front to the ids every node selects.
    fn all_of(&self, nodes: &[Node], ids: &mut [u32], select: bool, rest: Rest) -> Result<usize> {
        let mut n = ids.len();
        for node in nodes {
            n = self.node(node, &mut ids[..n], select, rest)?;
        }
        Ok(n)
    }

    /// Grow the front with the ids some node selects, each node reading the previous rejects.
    fn any_of(&self, nodes: &[Node], ids: &mut [u32], select: bool, rest: Rest) -> Result<usize> {
        let mut n = 0;
        let last = nodes.len().wrapping_sub(1);
        for (i, node) in nodes.iter().enumerate() {
            n += self.node(node, &mut ids[n..], select, rest.keep_if(i != last))?;
        }
        Ok(n)
    }

    /// The ids selected by at least `threshold` nodes, kept in blocks by how many selected
    /// them (a selected id moves up a block).
    fn at_least(&self, nodes: &[Node], ids: &mut [u32], threshold: usize, select: bool, rest: Rest) -> Result<usize> {
        if threshold == 0 {
            return Ok(ids.len());
        }
        if threshold > nodes.len() {
            return Ok(0);
        }
        let m = ids.len();
        let mut counts = vec![0usize; threshold];
        let last = nodes.len() - 1;
        for (c, node) in nodes.iter().enumerate() {
            let child_rest = rest.keep_if(c != last);
            for i in 0..threshold {
                let start = counts[i];
                let end = if i + 1 < threshold { counts[i + 1] } else { m };
                counts[i] += self.node(node, &mut ids[start..end], select, child_rest)?;
            }
        }
        Ok(counts[0])
    }
}

/// A checker that streams the batch: read the next id; a selected one is written at the
/// front; a rejected one is written at the back, and the last unread id takes its place to be
/// read next.
fn stream_partition(ids: &mut [u32], select: bool, mut pred: impl FnMut(u32) -> Result<bool>) -> Result<usize> {
    let (mut left, mut unread, mut right) = (0usize, 0usize, ids.len());
    while unread < right {
        let v = ids[unread];
        unread += 1;
        if pred(v)? == select {
            ids[left] = v;
            left += 1;
        } else if unread < right {
            ids[unread - 1] = ids[right - 1];
            unread -= 1;
            ids[right - 1] = v;
            right -= 1;
        } else {
            ids[unread - 1] = v;
            unread -= 1;
            right -= 1;
        }
    }
    Ok(left)
}

/// The default checker: compact the selected ids in order when the rest is not needed, else
/// swap each rejected id with a selected one found from the back.
fn default_partition(
    ids: &mut [u32],
    select: bool,
    rest: Rest,
    mut pred: impl FnMut(u32) -> Result<bool>,
) -> Result<usize> {
    match rest {
        Rest::Discard => {
            let mut w = 0;
            for i in 0..ids.len() {
                let v = ids[i];
                if pred(v)? == select {
                    ids[w] = v;
                    w += 1;
                }
            }
            Ok(w)
        }
        Rest::Keep => {
            let (mut lo, mut hi) = (0usize, ids.len());
            'outer: while lo < hi {
                if pred(ids[lo])? == select {
                    lo += 1;
                    continue;
                }
                loop {
                    hi -= 1;
                    if lo == hi {
                        break 'outer;
                    }
                    if pred(ids[hi])? == select {
                        break;
                    }
                }
                ids.swap(lo, hi);
                lo += 1;
            }
            Ok(lo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_partition_reads_the_last_unread_after_a_reject() {
        // Odd ids pass. Read 0 (reject: 5 moves into its slot), read 5 (pass), read 1 (pass),
        // read 2 (reject: 4 moves in), read 4 (reject: 3 moves in), read 3 (pass).
        let mut ids = [0, 1, 2, 3, 4, 5];
        let n = stream_partition(&mut ids, true, |v| Ok(v % 2 == 1)).unwrap();
        assert_eq!(n, 3);
        assert_eq!(&ids[..n], &[5, 1, 3]);
        let mut sorted = ids;
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3, 4, 5], "a permutation");
    }

    #[test]
    fn default_partition_compacts_or_swaps() {
        let mut ids = [0, 1, 2, 3, 4, 5];
        assert_eq!(default_partition(&mut ids, true, Rest::Discard, |v| Ok(v % 2 == 1)).unwrap(), 3);
        assert_eq!(&ids[..3], &[1, 3, 5]);
        let mut ids = [0, 1, 2, 3, 4, 5];
        assert_eq!(default_partition(&mut ids, true, Rest::Keep, |v| Ok(v % 2 == 1)).unwrap(), 3);
        assert_eq!(ids, [5, 1, 3, 2, 4, 0]);
        let mut ids = [0, 1, 2, 3, 4, 5];
        assert_eq!(default_partition(&mut ids, false, Rest::Keep, |v| Ok(v % 2 == 1)).unwrap(), 3);
        assert_eq!(ids, [0, 4, 2, 3, 1, 5]);
    }
}
