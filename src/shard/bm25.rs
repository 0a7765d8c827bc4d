//! BM25 text queries: `{"query": {"text": "…"}, "using": "<field>"}` ranks the points by BM25
//! over the full-text index of a payload field created with `"scoring": true` (qdrant-edge
//! 0.9's `TextQuery`).
//!
//! **Statistics** (`N` documents, `df` per term, the total length behind `avgdl`) are gathered
//! over the whole shard before any segment scores, as Qdrant does, and follow what each of
//! Qdrant's text indexes counts:
//! * a segment whose index was read from its immutable index files (an optimized segment)
//!   counts what the index held **when it was built**: `N` from `point_to_tokens_count.dat`, `df`
//!   from `postings.dat`'s list lengths, the total from its header. A point deleted or updated
//!   since then still counts there (an update counts again where its new copy lives), until
//!   the segment is rebuilt;
//! * any other segment (appendable, or an index built here from payloads) and the points held
//!   in memory since load count their live, visible points;
//! * with `params.idf.corpus` every segment counts the live points passing that filter instead.
//!
//! A document is a point whose field yields at least one token (string values, tokenized as the
//! index tokenizes a document, an array's strings one after another); its length is its token
//! count with repeats, rounded as Qdrant stores lengths; `tf` counts a token in that stream.
//! A query's terms are its tokens, each counted once; a term no document holds adds nothing.
//!
//! **Score**, in `f32` as Qdrant: `idf = max(0, ln((N - df + 0.5) / (df + 0.5) + 1))`, per term
//! `idf · tf · (k1 + 1) / (tf + k1 · (1 - b + b · len / avgdl))` (no length normalization when
//! `b = 0` or there are no documents), summed as Qdrant sums it, since the order of the
//! additions decides a score's last bit: the query's terms in ascending `idf` (ties in the
//! segment's token order); an optimized segment whose query lists hold at least half an entry
//! per point of its table is scored term at a time, any other segment document at a time with
//! Qdrant's MaxScore pruning ([`max_score`]), which adds a point's weaker terms last, strongest
//! first, and only while they could still lift it into the top `limit`. (Points held in memory
//! since load are scored term at a time with their segment.)
//!
//! **Order**: each segment keeps its best `limit` points as Qdrant's top-k does (points offered
//! in internal order, one enters only above the current `limit`-th score), best first, equal
//! scores by internal id; the lists are merged in Qdrant's segment order through Qdrant's
//! fixed-length queue, as a plain vector search. So on a shard qdrant-edge wrote, equal scores
//! come out in its order; a batch it numbered in a hash map's random order cannot be replayed
//! with the same internal ids, so there the order of equal scores may differ.
//!
//! `filter` narrows the points scored, not the statistics; `score_threshold` keeps the scores
//! above it. A text query cannot rescore prefetches (as Qdrant), and a field whose text index
//! uses tokenizer settings this engine does not reproduce (stemmers, language stopwords,
//! `multilingual`/`code` tokenizers, ASCII folding) is refused rather than scored differently.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::hnsw::{Nearest, Sp};
use super::prefilter::Bits;
use super::read::QueryHit;
use super::{schema_type, EdgeShard, Loc, PointRef};
use crate::error::{Error, Result};
use crate::format::field_index_write::text_scoring;
use crate::format::immutable_index::{read_text_build_stats, read_text_scoring, round_doc_len, TextBuildStats};
use crate::format::payload_index::{IndexMutability, PayloadIndexType};
use crate::query::filter::{flat, Filter};
use crate::query::json_path::JsonPath;
use crate::query::text::{TextKind, TextParams};
use crate::types::{Payload, PointId};

/// BM25 parameters of a query, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25 {
    /// Term frequency saturation (`k`), finite and non-negative.
    pub k1: f32,
    /// Document length normalization, within `[0, 1]`.
    pub b: f32,
}

impl Bm25 {
    /// Qdrant's defaults: `k` 1.2, `b` 0.75.
    pub const DEFAULT: Bm25 = Bm25 { k1: 1.2, b: 0.75 };

    /// The parameters of a request (`None` takes the default), with Qdrant's checks.
    pub fn new(k: Option<f32>, b: Option<f32>) -> Result<Bm25> {
        let (k1, b) = (k.unwrap_or(Self::DEFAULT.k1), b.unwrap_or(Self::DEFAULT.b));
        if !(k1.is_finite() && k1 >= 0.0) {
            return Err(Error::invalid(format!("BM25 k1 must be finite and non-negative, got {k1}")));
        }
        if !(b.is_finite() && (0.0..=1.0).contains(&b)) {
            return Err(Error::invalid(format!("BM25 b must be finite and within [0, 1], got {b}")));
        }
        Ok(Bm25 { k1, b })
    }
}

/// The documents of one segment's field: built from the payloads of its live points on first
/// use, kept for the segment's life (a later delete or update only hides a point).
#[derive(Debug, Default)]
pub(crate) struct SegmentDocs {
    /// Per internal id its stored (rounded) length; 0 for a point that is no document.
    lens: Vec<u32>,
    /// Token → its order of first appearance and its `(internal id, tf)` list, ascending ids.
    postings: HashMap<String, (u32, Vec<(u32, u32)>)>,
    /// The index's build statistics where they come from its files.
    built: Option<TextBuildStats>,
}

/// A point held in the overlay that is a document of the field.
struct OverlayDoc {
    id: PointId,
    r: PointRef,
    /// Stored (rounded) length.
    len: u32,
    /// Its tokens with their frequencies, in order of first appearance.
    tf: Vec<(String, u32)>,
}

/// A scored point: score, id, where it lives.
type Hit = (f32, PointId, PointRef);

/// A document's length and term frequencies.
fn document(tp: &TextParams, payload: &Payload, path: &JsonPath) -> (u32, Vec<(String, u32)>) {
    let vals = path.value_get(payload);
    let mut tf: Vec<(String, u32)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut len = 0u32;
    for s in flat(&vals, Value::as_str) {
        for t in tp.tokenize(TextKind::Document, s) {
            len = len.saturating_add(1);
            match index.get(&t) {
                Some(&i) => tf[i].1 += 1,
                None => {
                    index.insert(t.clone(), tf.len());
                    tf.push((t, 1));
                }
            }
        }
    }
    (round_doc_len(len), tf)
}

/// Corpus statistics of a query's terms.
#[derive(Debug, Default)]
struct Stats {
    documents: usize,
    total_tokens: Option<u64>,
    df: HashMap<String, usize>,
}

impl Stats {
    fn add(&mut self, documents: usize, total: Option<u64>) {
        self.documents += documents;
        self.total_tokens = match (self.total_tokens, total) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }

    fn idf(&self, term: &str) -> f32 {
        let df = self.df.get(term).copied().unwrap_or(0);
        crate::spaces::idf(self.documents as f32, df as f32).max(0.0)
    }

    fn avg_doc_len(&self) -> Option<f32> {
        let total = self.total_tokens?;
        (self.documents > 0).then(|| total as f32 / self.documents as f32)
    }
}

/// A scorer with the shard-wide statistics.
struct Scoring<'a> {
    bm25: Bm25,
    avg: Option<f32>,
    /// The query's terms with their IDF.
    idf: &'a HashMap<String, f32>,
}

impl Scoring<'_> {
    fn norm(&self, len: u32) -> f32 {
        let Bm25 { k1, b } = self.bm25;
        match self.avg {
            Some(avg) if b > 0.0 && avg > 0.0 => k1 * ((1.0 - b) + (b * len as f32) / avg),
            _ => k1,
        }
    }

    fn term(&self, idf: f32, tf: u32, norm: f32) -> f32 {
        let tf = tf as f32;
        ((idf * tf) * (self.bm25.k1 + 1.0)) / (tf + norm)
    }

    /// The query's terms a list of postings holds, in the order their contributions are summed:
    /// ascending IDF, ties by the token order `rank` gives.
    fn order<'t>(&self, mut terms: Vec<(&'t str, u32)>) -> Vec<(&'t str, f32)> {
        terms.sort_by(|a, b| self.idf[a.0].total_cmp(&self.idf[b.0]).then(a.1.cmp(&b.1)));
        terms.into_iter().map(|(t, _)| (t, self.idf[t])).collect()
    }
}

impl EdgeShard {
    /// Check a text query's field and parameters, in Qdrant's order: a text index without
    /// scoring, then `k`/`b`, then a field without an index or with another kind of index.
    pub fn check_text_query(&self, field: &str, k: Option<f32>, b: Option<f32>) -> Result<Bm25> {
        let schema = self.indexed_fields.get(field);
        let is_text = schema.and_then(schema_type) == Some("text");
        if is_text && !schema.is_some_and(|s| text_scoring(s).unwrap_or(false)) {
            return Err(Error::invalid(format!(
                "The text index on `{field}` does not score: set `scoring` on it to query it"
            )));
        }
        let bm25 = Bm25::new(k, b)?;
        match schema.and_then(schema_type) {
            None => Err(Error::invalid(format!("BM25 requires a text index on field {field}, which has none"))),
            Some("text") => {
                let path = JsonPath::parse(field)
                    .ok_or_else(|| Error::invalid_field("using", format!("`{field}` is not a valid payload path")))?;
                let tp = self
                    .filter_ctx
                    .text_params(&path)
                    .ok_or_else(|| Error::Internal(format!("text index on `{field}` without tokenizer settings")))?;
                if !tp.unsupported.is_empty() {
                    return Err(Error::Unsupported(format!(
                        "BM25 on `{field}`: text index settings not reproduced by this engine: {}",
                        tp.unsupported.join(", ")
                    )));
                }
                Ok(bm25)
            }
            Some(other) => Err(Error::invalid(format!(
                "BM25 requires a text index on field {field}, which is indexed as {}",
                schema_kind_name(other)
            ))),
        }
    }

    /// The best `want` points for a BM25 query on `field` (module docs), scoring only points
    /// passing `filter`, with statistics over `corpus` (every point when `None`), keeping
    /// scores above `score_threshold`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn text_hits(
        &self,
        field: &str,
        text: &str,
        bm25: Bm25,
        filter: Option<&Filter>,
        corpus: Option<&Filter>,
        want: usize,
        score_threshold: Option<f32>,
    ) -> Result<Vec<QueryHit>> {
        self.check_open()?;
        let path = JsonPath::parse(field)
            .ok_or_else(|| Error::invalid_field("using", format!("`{field}` is not a valid payload path")))?;
        let Some(tp) = self.filter_ctx.text_params(&path) else {
            return Err(Error::invalid(format!("BM25 requires a text index on field {field}, which has none")));
        };
        let mut terms: Vec<String> = Vec::new();
        for t in tp.tokenize(TextKind::Query, text) {
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        if want == 0 || terms.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<Arc<SegmentDocs>> =
            (0..self.segments.len() as u32).map(|s| self.segment_docs(s, &path, tp)).collect::<Result<_>>()?;
        let overlay = self.overlay_docs(&path, tp);

        // Statistics over the shard.
        let mut stats = Stats { total_tokens: Some(0), ..Stats::default() };
        for t in &terms {
            stats.df.insert(t.clone(), 0);
        }
        for (si, d) in docs.iter().enumerate() {
            let counted = match (corpus, &d.built) {
                (Some(c), _) => self.corpus_bits(si as u32, d, c)?,
                (None, None) => self.visible_bits(si as u32),
                (None, Some(built)) => {
                    // Qdrant's legacy files record no total: it then scores without lengths.
                    let total = (built.total_tokens > 0 || built.documents == 0).then_some(built.total_tokens);
                    stats.add(built.documents, total);
                    for (t, c) in stats.df.iter_mut() {
                        *c += built.tokens.get(t).map_or(0, |x| x.1);
                    }
                    continue;
                }
            };
            let (mut n, mut total) = (0usize, 0u64);
            for id in counted.iter() {
                let len = d.lens.get(id as usize).copied().unwrap_or(0);
                if len > 0 {
                    n += 1;
                    total += u64::from(len);
                }
            }
            if n == 0 {
                continue;
            }
            stats.add(n, Some(total));
            for (t, c) in stats.df.iter_mut() {
                if let Some((_, list)) = d.postings.get(t) {
                    *c += list.iter().filter(|(id, _)| counted.get(*id)).count();
                }
            }
        }
        let mut n = 0usize;
        let mut total = 0u64;
        for OverlayDoc { id, r, len, tf } in &overlay {
            if let Some(c) = corpus {
                let ctx = self.point_context(*id, r.loc)?;
                if !c.check(&ctx, &self.filter_ctx) {
                    continue;
                }
            }
            n += 1;
            total += u64::from(*len);
            for (t, _) in tf {
                if let Some(c) = stats.df.get_mut(t) {
                    *c += 1;
                }
            }
        }
        if n > 0 {
            stats.add(n, Some(total));
        }
        let idf: HashMap<String, f32> = terms.iter().map(|t| (t.clone(), stats.idf(t))).collect();
        let scoring = Scoring { bm25, avg: stats.avg_doc_len(), idf: &idf };

        // Score segment by segment, in Qdrant's order (optimized first, then appendable, each by
        // directory name); the overlay's points belong to the appendable segment.
        let order = self.merge_order();
        let home = self.segments.iter().position(|s| s.appendable);
        let mut table: Vec<(PointId, PointRef)> = Vec::new();
        let mut merged = Nearest::new(want);
        let mut take = |table: &mut Vec<_>, list: Vec<Hit>| {
            for (score, id, r) in list {
                if score_threshold.is_some_and(|t| score <= t) {
                    continue;
                }
                merged.push(Sp { idx: table.len() as u32, score });
                table.push((id, r));
            }
        };
        let mut overlay_done = false;
        for si in order {
            let with_overlay = home == Some(si);
            overlay_done |= with_overlay;
            let ov: &[_] = if with_overlay { &overlay } else { &[] };
            let list = self.score_segment(Some((si as u32, &docs[si])), ov, &terms, &scoring, filter, want)?;
            take(&mut table, list);
        }
        if !overlay_done {
            let list = self.score_segment(None, &overlay, &terms, &scoring, filter, want)?;
            take(&mut table, list);
        }
        Ok(merged
            .into_sorted_vec()
            .into_iter()
            .map(|sp| {
                let (id, r) = table[sp.idx as usize];
                QueryHit { id, r, score: sp.score, order_value: None }
            })
            .collect())
    }

    /// The visible points of segment `seg` that pass the corpus filter.
    fn corpus_bits(&self, seg: u32, d: &SegmentDocs, corpus: &Filter) -> Result<Bits> {
        let c = self.segment_candidates(seg, Some(corpus))?;
        if !c.check {
            return Ok(c.bits);
        }
        let mut bits = c.bits.clone();
        for id in c.bits.iter() {
            let doc = d.lens.get(id as usize).is_some_and(|&l| l > 0);
            if doc && self.segment_point(seg, id, Some(corpus), true)?.is_none() {
                bits.unset(id);
            }
        }
        Ok(bits)
    }

    /// The best `want` scored points of segment `seg` passing `filter` and, with `overlay`, of
    /// the overlay's points (which Qdrant holds in the appendable segment: a point it had
    /// keeps its place there, a new one comes after its stored points). As Qdrant's top-k:
    /// the points are offered in internal order, one enters only above the current `want`-th
    /// score (so the first of equal scores stays), and the kept ones come out best first,
    /// equal scores by internal id.
    fn score_segment(
        &self,
        seg: Option<(u32, &SegmentDocs)>,
        overlay: &[OverlayDoc],
        terms: &[String],
        scoring: &Scoring<'_>,
        filter: Option<&Filter>,
        want: usize,
    ) -> Result<Vec<Hit>> {
        // (place in the segment, score, point)
        let mut offered: Vec<(u64, f32, PointId, PointRef)> = Vec::new();
        if let Some((seg, d)) = seg {
            let present: Vec<(&str, u32)> = terms
                .iter()
                .filter_map(|t| {
                    let built_rank = d.built.as_ref().and_then(|b| b.tokens.get(t).map(|x| x.0));
                    d.postings.get(t).map(|(rank, _)| (t.as_str(), built_rank.unwrap_or(*rank)))
                })
                .collect();
            if !present.is_empty() {
                let c = self.segment_candidates(seg, filter)?;
                let segment = &self.segments[seg as usize];
                let n = segment.id_tracker.total_point_count() as usize;
                let ordered = scoring.order(present);
                // Qdrant's choice: an appendable segment's index is always walked document at a
                // time with MaxScore pruning; an optimized one's too, unless the query's lists
                // hold at least half an entry per point, when it is scored term at a time.
                let entries: usize = ordered.iter().map(|(t, _)| d.postings[*t].1.len()).sum();
                // (Qdrant counts the points of its per-point table, which ends at the last
                // point holding a token.)
                let table = match &d.built {
                    Some(b) => b.points,
                    None => d.lens.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1),
                };
                let dense = !segment.appendable && entries as f32 >= 0.5 * table as f32;
                if overlay.is_empty() && !dense {
                    let lists: Vec<(&[(u32, u32)], f32)> =
                        ordered.iter().map(|(t, idf)| (&d.postings[*t].1[..], *idf)).collect();
                    let accept = |doc: u32| -> Result<bool> {
                        Ok(c.bits.get(doc) && (!c.check || self.segment_point(seg, doc, filter, true)?.is_some()))
                    };
                    let kept = max_score(&lists, &d.lens, scoring, want, accept)?;
                    let mut out = Vec::with_capacity(kept.len());
                    for (internal, score) in kept {
                        if let Some((id, r)) = self.segment_point(seg, internal, None, false)? {
                            out.push((score, id, r));
                        }
                    }
                    return Ok(out);
                }
                // Term at a time into one score per point (a point's terms still add up in
                // the query's term order).
                let mut acc = vec![0.0f32; n];
                let mut touched = Bits::new(n);
                for &(t, idf) in &ordered {
                    for &(id, tf) in &d.postings[t].1 {
                        if !c.bits.get(id) || id as usize >= n {
                            continue;
                        }
                        let norm = scoring.norm(d.lens.get(id as usize).copied().unwrap_or(0));
                        acc[id as usize] += scoring.term(idf, tf, norm);
                        touched.set(id);
                    }
                }
                for internal in touched.iter() {
                    if let Some((id, r)) = self.segment_point(seg, internal, filter, c.check)? {
                        offered.push((u64::from(internal), acc[internal as usize], id, r));
                    }
                }
            }
        }
        let home = seg.map(|(s, _)| &self.segments[s as usize].id_tracker);
        let end = home.map_or(0, |t| t.total_point_count());
        for (k, OverlayDoc { id, r, len, tf }) in overlay.iter().enumerate() {
            let present: Vec<(&str, u32)> = terms
                .iter()
                .filter_map(|t| tf.iter().position(|(x, _)| x == t).map(|p| (t.as_str(), p as u32)))
                .collect();
            if present.is_empty() {
                continue;
            }
            if let Some(f) = filter {
                let ctx = self.point_context(*id, r.loc)?;
                if !f.check(&ctx, &self.filter_ctx) {
                    continue;
                }
            }
            let norm = scoring.norm(*len);
            let mut score = 0.0f32;
            for (t, idf) in scoring.order(present) {
                let f = tf.iter().find(|(x, _)| x == t).map_or(0, |x| x.1);
                score += scoring.term(idf, f, norm);
            }
            let place = home.and_then(|t| t.internal_id(*id)).map_or(end + k as u64, u64::from);
            offered.push((place, score, *id, *r));
        }
        offered.sort_by_key(|o| o.0);
        let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<Sp>> = std::collections::BinaryHeap::new();
        let mut threshold = f32::NEG_INFINITY;
        for (i, o) in offered.iter().enumerate() {
            if o.1 <= threshold {
                continue;
            }
            heap.push(std::cmp::Reverse(Sp { idx: i as u32, score: o.1 }));
            if heap.len() > want {
                heap.pop();
            }
            if heap.len() == want {
                threshold = heap.peek().map_or(threshold, |m| m.0.score);
            }
        }
        let mut kept: Vec<Sp> = heap.into_iter().map(|r| r.0).collect();
        kept.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then(offered[a.idx as usize].0.cmp(&offered[b.idx as usize].0))
        });
        Ok(kept
            .into_iter()
            .map(|sp| {
                let o = &offered[sp.idx as usize];
                (o.1, o.2, o.3)
            })
            .collect())
    }

    /// The documents of `path` in segment `seg`, built on first use.
    fn segment_docs(&self, seg: u32, path: &JsonPath, tp: &TextParams) -> Result<Arc<SegmentDocs>> {
        let Some(cache) = self.postings.get(seg as usize) else {
            return Ok(Arc::new(self.build_segment_docs(seg, path, tp)?));
        };
        if let Some(d) = cache.bm25.lock().get(path) {
            return Ok(d.clone());
        }
        let built = Arc::new(self.build_segment_docs(seg, path, tp)?);
        cache.bm25.lock().insert(path.clone(), built.clone());
        Ok(built)
    }

    /// A segment's documents: read from its text index files where they are its build's
    /// (an optimized segment; the points deleted since stay in the lists, hidden when scored),
    /// else tokenized from the payloads of its live points.
    fn build_segment_docs(&self, seg: u32, path: &JsonPath, tp: &TextParams) -> Result<SegmentDocs> {
        use crate::format::field_index_write::ARRAY_BOUNDARY_TOKEN;
        let segment = &self.segments[seg as usize];
        let n = segment.id_tracker.total_point_count();
        let mut d = SegmentDocs { lens: vec![0; n as usize], ..SegmentDocs::default() };
        if let Some(dir) = self.scoring_index_dir(seg, path, tp)? {
            d.built = read_text_build_stats(&*self.storage, &dir)?;
            if let Some(data) = read_text_scoring(&*self.storage, &dir, tp.phrase_matching, n)? {
                for (i, len) in data.lens.into_iter().enumerate() {
                    d.lens[i] = round_doc_len(len);
                }
                for t in data.tokens {
                    if t.token != ARRAY_BOUNDARY_TOKEN {
                        d.postings.insert(t.token, (t.token_id, t.postings));
                    }
                }
                return Ok(d);
            }
        }
        // In internal order: the lists ascend, and tokens are numbered as the index met them.
        let mut live: Vec<u32> = segment.id_tracker.iter_live().map(|(_, internal)| internal).collect();
        live.sort_unstable();
        for internal in live {
            let payload = segment.payload(internal)?;
            let (len, tf) = document(tp, &payload, path);
            if tf.is_empty() {
                continue;
            }
            if let Some(l) = d.lens.get_mut(internal as usize) {
                *l = len;
            }
            for (t, f) in tf {
                let next = d.postings.len() as u32;
                d.postings.entry(t).or_insert_with(|| (next, Vec::new())).1.push((internal, f));
            }
        }
        Ok(d)
    }

    /// The directory of an optimized segment's full-text index on `path`, when its files were
    /// written with scoring and with the tokenizer settings of the current schema.
    fn scoring_index_dir(&self, seg: u32, path: &JsonPath, tp: &TextParams) -> Result<Option<String>> {
        let segment = &self.segments[seg as usize];
        if segment.appendable {
            return Ok(None);
        }
        let found = segment.payload_index.indexed_types.iter().find(|(k, types)| {
            JsonPath::parse(k).as_ref() == Some(path)
                && types.iter().any(|t| {
                    t.index_type == PayloadIndexType::FullTextIndex && t.mutability == IndexMutability::Immutable
                })
        });
        let Some((field, _)) = found else { return Ok(None) };
        let Some(schema) = segment.payload_index.indexed_fields.get(field.as_str()) else { return Ok(None) };
        if TextParams::from_schema(schema) != *tp || !text_scoring(schema).unwrap_or(false) {
            return Ok(None);
        }
        let dir = crate::format::field_index_write::sub_index_dir(
            &segment.dir,
            field,
            PayloadIndexType::FullTextIndex.dir_suffix(),
        );
        Ok(self.storage.is_file(&crate::storage::join(&dir, "point_to_doc_len.dat"))?.then_some(dir))
    }

    /// The overlay's winning points that are documents of `path`.
    fn overlay_docs(&self, path: &JsonPath, tp: &TextParams) -> Vec<OverlayDoc> {
        let mut out = Vec::new();
        for (idx, o) in self.overlay.iter().enumerate() {
            let Some(r) = self.points.get(&o.id) else { continue };
            if r.loc != Loc::Overlay(idx) {
                continue;
            }
            let (len, tf) = document(tp, &o.payload, path);
            if !tf.is_empty() {
                out.push(OverlayDoc { id: o.id, r: *r, len, tf });
            }
        }
        out
    }
}

/// Document at a time with MaxScore pruning, as Qdrant walks a text index whose query lists
/// are short next to its point count: `lists` (ascending points, `(point, tf)`) in the query's
/// term order (ascending IDF, so ascending bound `idf · (k1 + 1)`). The next candidate is the
/// smallest point under the *essential* terms' cursors; `accept` decides whether it is scored
/// at all (visible, passing the filter). Its essential hits are summed in term order, then the
/// other terms, strongest first, are looked up while they could still lift it above the
/// threshold (the `want`-th best score so far); a term whose bound, with all weaker ones, can no
/// longer reach the threshold stops producing candidates. The sums, and so the last bit of a
/// score, follow that order, as Qdrant's do. Returns the kept points best first, equal scores
/// by internal id.
fn max_score(
    lists: &[(&[(u32, u32)], f32)],
    lens: &[u32],
    scoring: &Scoring<'_>,
    want: usize,
    mut accept: impl FnMut(u32) -> Result<bool>,
) -> Result<Vec<(u32, f32)>> {
    use std::cmp::Reverse;
    let terms = lists.len();
    if terms == 0 || want == 0 {
        return Ok(Vec::new());
    }
    let mut prefix = Vec::with_capacity(terms);
    let mut running = 0.0f32;
    for &(_, idf) in lists {
        running += idf * (scoring.bm25.k1 + 1.0);
        prefix.push(running);
    }
    let mut at = vec![0usize; terms];
    let current = |at: &[usize], t: usize| lists[t].0.get(at[t]).map(|x| x.0);
    let mut heap: std::collections::BinaryHeap<Reverse<Sp>> = std::collections::BinaryHeap::new();
    let mut threshold = f32::NEG_INFINITY;
    let mut first_essential = 0;
    let mut hits: Vec<(usize, u32)> = Vec::with_capacity(terms);
    while first_essential < terms {
        let Some(doc) = (first_essential..terms).filter_map(|t| current(&at, t)).min() else { break };
        let accepted = accept(doc)?;
        hits.clear();
        for t in first_essential..terms {
            if current(&at, t) == Some(doc) {
                if accepted {
                    hits.push((t, lists[t].0[at[t]].1));
                }
                at[t] += 1;
            }
        }
        if !accepted {
            continue;
        }
        let norm = scoring.norm(lens.get(doc as usize).copied().unwrap_or(0));
        let mut score = 0.0f32;
        for &(t, tf) in &hits {
            score += scoring.term(lists[t].1, tf, norm);
        }
        for t in (0..first_essential).rev() {
            if score + prefix[t] <= threshold {
                break;
            }
            // Seek: the first entry at or past `doc` (the cursor only moves forward).
            let list = lists[t].0;
            at[t] += list[at[t]..].partition_point(|x| x.0 < doc);
            if let Some(&(p, tf)) = list.get(at[t]) {
                if p == doc {
                    score += scoring.term(lists[t].1, tf, norm);
                }
            }
        }
        if score > threshold {
            heap.push(Reverse(Sp { idx: doc, score }));
            if heap.len() > want {
                heap.pop();
            }
            if heap.len() == want {
                threshold = heap.peek().map_or(threshold, |m| m.0.score);
                while first_essential < terms && prefix[first_essential] <= threshold {
                    first_essential += 1;
                }
            }
        }
    }
    let mut kept: Vec<(u32, f32)> = heap.into_iter().map(|r| (r.0.idx, r.0.score)).collect();
    kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(kept)
}

/// Qdrant's name of a payload schema type, as its errors print it.
fn schema_kind_name(t: &str) -> String {
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
