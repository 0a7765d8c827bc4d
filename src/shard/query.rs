//! The universal query: prefetch stages, fusion (RRF, DBSF), rescoring and `order_by`.
//!
//! A [`QueryNode`] is one stage. Its prefetches run first (each with the parent's filter ANDed
//! into its own, as Qdrant propagates filters down); the stage's query then works on their
//! results: fusion merges the lists, a nearest query rescores the union of their points, an
//! `order_by` sorts it. A stage without prefetches searches the whole shard.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::read::{QueryHit, QueryVector, ScoredPoint};
use super::{schema_type, EdgeShard, PointRef};
use crate::api::requests::{WithPayload, WithVector};
use crate::error::{Error, Result};
use crate::query::filter::{parse_datetime, Filter};
use crate::query::json_path::JsonPath;
use crate::types::PointId;

/// Qdrant's default RRF constant.
pub const DEFAULT_RRF_K: u32 = 2;

/// Sort direction of `order_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// What a stage does.
#[derive(Debug, Clone)]
pub enum StageQuery {
    /// Nearest neighbours of a vector (`using` names the vector).
    Nearest { using: String, vector: QueryVector },
    /// Reciprocal rank fusion of the prefetch lists.
    Rrf { k: u32, weights: Option<Vec<f32>> },
    /// Distribution-based score fusion of the prefetch lists.
    Dbsf,
    /// Order by a payload field with a range index.
    OrderBy { key: String, direction: Direction, start_from: Option<f64> },
    /// BM25 over the text index of the payload field `field` ([`super::bm25`]).
    Text { field: String, text: String, bm25: super::bm25::Bm25 },
}

/// One stage of a query.
#[derive(Debug, Clone)]
pub struct QueryNode {
    pub prefetch: Vec<QueryNode>,
    pub query: Option<StageQuery>,
    pub filter: Option<Filter>,
    pub score_threshold: Option<f32>,
    /// How many results this stage keeps (for the root: limit + offset).
    pub limit: usize,
    /// `params` of the stage.
    pub params: super::hnsw::SearchOptions,
    /// `params.idf`: the points IDF statistics are gathered over, for a sparse vector with the
    /// `idf` modifier or a BM25 text query (`None`: not given, as `Global`).
    pub idf: Option<IdfScope>,
}

/// `params.idf` of a stage.
#[derive(Debug, Clone)]
pub enum IdfScope {
    /// Every point (`"global"`).
    Global,
    /// The points passing the filter (`{"corpus": …}`).
    Corpus(Filter),
}

impl IdfScope {
    pub fn corpus(&self) -> Option<&Filter> {
        match self {
            IdfScope::Global => None,
            IdfScope::Corpus(f) => Some(f),
        }
    }
}

impl EdgeShard {
    /// Run a root stage and return the page `[offset, offset + limit)`.
    pub fn query(
        &self,
        root: &QueryNode,
        offset: usize,
        with_payload: &WithPayload,
        with_vector: &WithVector,
    ) -> Result<Vec<ScoredPoint>> {
        self.check_open()?;
        let hits = self.exec_stage(root, None)?;
        let hits: Vec<QueryHit> = hits.into_iter().skip(offset).collect();
        self.materialize(&hits, with_payload, with_vector)
    }

    fn exec_stage(&self, node: &QueryNode, inherited: Option<&Filter>) -> Result<Vec<QueryHit>> {
        let filter = and_filters(inherited, node.filter.as_ref());
        let filter = filter.as_ref();
        if node.prefetch.is_empty() {
            return match &node.query {
                Some(StageQuery::Nearest { using, vector }) => self.search_hits(
                    using,
                    vector,
                    filter,
                    node.limit,
                    node.score_threshold,
                    None,
                    node.params,
                    node.idf.as_ref(),
                ),
                Some(StageQuery::Text { field, text, bm25 }) => self.text_hits(
                    field,
                    text,
                    *bm25,
                    filter,
                    node.idf.as_ref().and_then(IdfScope::corpus),
                    node.limit,
                    node.score_threshold,
                ),
                Some(StageQuery::OrderBy { key, direction, start_from }) => {
                    self.order_by_hits(key, *direction, *start_from, filter, node.limit, None)
                }
                Some(StageQuery::Rrf { .. } | StageQuery::Dbsf) => {
                    Err(Error::invalid_field("query", "fusion needs at least one prefetch"))
                }
                None => {
                    // No query: points in id order with score 1.0, as Qdrant's query API does.
                    let mut out = Vec::new();
                    for (id, r) in &self.points {
                        if out.len() >= node.limit {
                            break;
                        }
                        if self.matches_filter(filter, *id, r)? {
                            out.push(QueryHit {
                                id: *id,
                                r: PointRef { version: 0, ..*r },
                                score: 1.0,
                                order_value: None,
                            });
                        }
                    }
                    Ok(out)
                }
            };
        }
        let lists = node.prefetch.iter().map(|p| self.exec_stage(p, filter)).collect::<Result<Vec<_>>>()?;
        let mut hits = match &node.query {
            Some(StageQuery::Rrf { k, weights }) => rrf(lists, *k, weights.as_deref())?,
            Some(StageQuery::Dbsf) => dbsf(lists),
            Some(StageQuery::Nearest { using, vector }) => {
                let candidates: HashSet<PointId> = lists.iter().flatten().map(|h| h.id).collect();
                return self.search_hits(
                    using,
                    vector,
                    filter,
                    node.limit,
                    node.score_threshold,
                    Some(&candidates),
                    node.params,
                    node.idf.as_ref(),
                );
            }
            Some(StageQuery::Text { .. }) => {
                return Err(Error::invalid_field("query", "BM25 over a text index cannot rescore prefetches"))
            }
            Some(StageQuery::OrderBy { key, direction, start_from }) => {
                let candidates: HashSet<PointId> = lists.iter().flatten().map(|h| h.id).collect();
                return self.order_by_hits(key, *direction, *start_from, filter, node.limit, Some(&candidates));
            }
            None => {
                // Without a query the prefetch results pass through, best first, once per point.
                let mut seen = HashSet::new();
                let mut all: Vec<QueryHit> = lists.into_iter().flatten().filter(|h| seen.insert(h.id)).collect();
                all.sort_by(|a, b| b.score.total_cmp(&a.score));
                all
            }
        };
        if let Some(t) = node.score_threshold {
            hits.retain(|h| h.score > t);
        }
        hits.truncate(node.limit);
        Ok(hits)
    }

    fn matches_filter(&self, filter: Option<&Filter>, id: PointId, r: &PointRef) -> Result<bool> {
        match filter {
            None => Ok(true),
            Some(f) => {
                let ctx = self.point_context(id, r.loc)?;
                Ok(f.check(&ctx, &self.filter_ctx))
            }
        }
    }

    /// Points ordered by the values of an indexed numeric or datetime field; a point with
    /// several values appears once, at its first value in the order.
    pub(crate) fn order_by_hits(
        &self,
        key: &str,
        direction: Direction,
        start_from: Option<f64>,
        filter: Option<&Filter>,
        want: usize,
        candidates: Option<&HashSet<PointId>>,
    ) -> Result<Vec<QueryHit>> {
        let kind = match self.indexed_fields.get(key).and_then(schema_type) {
            Some(t @ ("integer" | "float" | "datetime")) => t.to_string(),
            _ => {
                return Err(Error::invalid_field(
                    "order_by.key",
                    format!("ordering by `{key}` needs an integer, float or datetime index on it"),
                ))
            }
        };
        let path = JsonPath::parse(key)
            .ok_or_else(|| Error::invalid_field("order_by.key", format!("`{key}` is not a valid payload path")))?;
        let mut entries: Vec<(OrderValue, PointId, PointRef)> = Vec::new();
        for (id, r) in &self.points {
            if candidates.is_some_and(|c| !c.contains(id)) || !self.matches_filter(filter, *id, r)? {
                continue;
            }
            let payload = self.payload_at(r.loc)?;
            let mut values: Vec<OrderValue> = Vec::new();
            for v in path.value_get(&payload) {
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                values.extend(items.into_iter().filter_map(|x| OrderValue::from_json(&kind, x)));
            }
            if let Some(s) = start_from {
                values.retain(|v| match direction {
                    Direction::Asc => v.as_f64() >= s,
                    Direction::Desc => v.as_f64() <= s,
                });
            }
            let best = match direction {
                Direction::Asc => values.into_iter().min_by(|a, b| a.cmp(b)),
                Direction::Desc => values.into_iter().max_by(|a, b| a.cmp(b)),
            };
            if let Some(v) = best {
                entries.push((v, *id, *r));
            }
        }
        entries.sort_by(|a, b| {
            let o = a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1));
            if direction == Direction::Desc {
                o.reverse()
            } else {
                o
            }
        });
        entries.truncate(want);
        Ok(entries
            .into_iter()
            .map(|(v, id, r)| QueryHit {
                id,
                r: PointRef { version: 0, ..r },
                score: 1.0,
                order_value: Some(v.to_json()),
            })
            .collect())
    }
}

/// A value to order by: integers stay integers, as in Qdrant's `order_value`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OrderValue {
    Int(i64),
    Float(f64),
}

impl OrderValue {
    fn from_json(kind: &str, v: &Value) -> Option<OrderValue> {
        match (kind, v) {
            ("integer", Value::Number(n)) => n.as_i64().map(OrderValue::Int),
            ("float", Value::Number(n)) => n.as_f64().map(OrderValue::Float),
            ("datetime", Value::String(s)) => parse_datetime(s).map(OrderValue::Int),
            _ => None,
        }
    }
    fn as_f64(&self) -> f64 {
        match self {
            OrderValue::Int(i) => *i as f64,
            OrderValue::Float(f) => *f,
        }
    }
    fn cmp(&self, o: &Self) -> Ordering {
        match (self, o) {
            (OrderValue::Int(a), OrderValue::Int(b)) => a.cmp(b),
            _ => self.as_f64().total_cmp(&o.as_f64()),
        }
    }
    fn to_json(self) -> Value {
        match self {
            OrderValue::Int(i) => Value::from(i),
            OrderValue::Float(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        }
    }
}

fn and_filters(a: Option<&Filter>, b: Option<&Filter>) -> Option<Filter> {
    match (a, b) {
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => Some(f.clone()),
        (Some(x), Some(y)) => Some(Filter::all_of(vec![x.clone(), y.clone()])),
    }
}

/// Reciprocal rank fusion: a point at 0-based position `p` of a list with weight `w` scores
/// `1 / ((p + 1) / w + k - 1)`; scores add up over lists. Best first.
fn rrf(lists: Vec<Vec<QueryHit>>, k: u32, weights: Option<&[f32]>) -> Result<Vec<QueryHit>> {
    if let Some(w) = weights {
        if w.len() != lists.len() {
            return Err(Error::invalid_field(
                "query.rrf.weights",
                format!("{} weights given for {} prefetches", w.len(), lists.len()),
            ));
        }
    }
    let mut acc: HashMap<PointId, QueryHit> = HashMap::new();
    let mut order: Vec<PointId> = Vec::new();
    for (li, list) in lists.into_iter().enumerate() {
        let w = weights.map_or(1.0, |w| w[li]);
        for (pos, h) in list.into_iter().enumerate() {
            let s = if w <= 0.0 { 0.0 } else { 1.0 / ((pos + 1) as f32 / w + k as f32 - 1.0) };
            match acc.get_mut(&h.id) {
                Some(e) => e.score += s,
                None => {
                    order.push(h.id);
                    acc.insert(h.id, QueryHit { score: s, ..h });
                }
            }
        }
    }
    let mut out: Vec<QueryHit> = order.into_iter().filter_map(|id| acc.remove(&id)).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(out)
}

/// Distribution-based score fusion: each list's scores are mapped from
/// `[mean - 3σ, mean + 3σ]` (sample σ) to `[0, 1]`, then added up over lists. Best first.
fn dbsf(lists: Vec<Vec<QueryHit>>) -> Vec<QueryHit> {
    let mut acc: HashMap<PointId, QueryHit> = HashMap::new();
    let mut order: Vec<PointId> = Vec::new();
    for mut list in lists {
        normalize_distribution(&mut list);
        for h in list {
            match acc.get_mut(&h.id) {
                Some(e) => e.score += h.score,
                None => {
                    order.push(h.id);
                    acc.insert(h.id, h);
                }
            }
        }
    }
    let mut out: Vec<QueryHit> = order.into_iter().filter_map(|id| acc.remove(&id)).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

fn normalize_distribution(list: &mut [QueryHit]) {
    match list.len() {
        0 => return,
        1 => {
            list[0].score = 0.5;
            return;
        }
        _ => {}
    }
    // Welford's running mean and variance, in f32 as Qdrant computes it.
    let (mut mean, mut m2) = (0.0f32, 0.0f32);
    for (k, h) in list.iter().enumerate() {
        let d = h.score - mean;
        mean += d / (k + 1) as f32;
        m2 += d * (h.score - mean);
    }
    let sd = (m2 / (list.len() as f32 - 1.0)).sqrt();
    let (lo, hi) = (mean - 3.0 * sd, mean + 3.0 * sd);
    for h in list.iter_mut() {
        h.score = if lo == hi { 0.5 } else { (h.score - lo) / (hi - lo) };
    }
}
