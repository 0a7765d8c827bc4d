//! The REST-shaped JSON API: request bodies in, the JSON a Qdrant server puts in `result` out.
//!
//! [`dispatch`] is the single entry point used by the CLI, the tests and (later) the JS
//! bindings. Commands and their bodies are listed in [`requests`].

pub mod requests;
pub mod updates;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::query::filter::parse_datetime;
use crate::shard::query::{Direction, IdfScope, QueryNode, StageQuery, DEFAULT_RRF_K};
use crate::shard::read::{QueryVector, SearchSpec};
use crate::shard::{EdgeShard, SearchOptions};
use requests::*;

/// Read commands understood by [`dispatch`].
pub const READ_COMMANDS: &[&str] = &["info", "query", "query_batch", "search", "scroll", "count", "facet", "retrieve"];

/// Update commands understood by [`dispatch_update`].
pub const UPDATE_COMMANDS: &[&str] = &[
    "upsert",
    "update",
    "delete",
    "set_payload",
    "overwrite_payload",
    "delete_payload",
    "clear_payload",
    "update_vectors",
    "delete_vectors",
    "create_index",
    "delete_index",
];

/// Run an update command; returns Qdrant's `UpdateResult` JSON (a list of them for `update`,
/// the body of `POST /points/batch`).
pub fn dispatch_update(shard: &mut EdgeShard, command: &str, body: &Value) -> Result<Value> {
    let ops = match command {
        "update" => updates::parse_update("batch", body)?,
        "delete_index" => {
            let field = body
                .as_str()
                .or_else(|| body.get("field_name").and_then(Value::as_str))
                .ok_or_else(|| Error::invalid_field("field_name", "the field to drop the index of"))?;
            vec![crate::operations::UpdateOperation::DeleteIndex(field.to_string())]
        }
        other => updates::parse_update(other, body)?,
    };
    let mut results = Vec::new();
    for op in ops {
        let n = shard.update(op)?;
        results.push(json!({"operation_id": n, "status": "completed"}));
    }
    if command == "update" {
        Ok(Value::Array(results))
    } else {
        Ok(results.pop().unwrap_or_else(|| json!({"operation_id": null, "status": "completed"})))
    }
}

/// The JSON of a snapshot apply or restore report (`wasi-demo apply` / `unpack` prints it).
pub fn report_json(r: &crate::snapshot::apply::ApplyReport) -> Value {
    use crate::snapshot::apply::SnapshotKind;
    json!({
        "kind": match r.kind { SnapshotKind::Full => "full", SnapshotKind::Partial => "partial" },
        "segments_added": r.segments_added,
        "segments_removed": r.segments_removed,
        "segments_merged": r.segments_merged,
        "files_written": r.files_written,
        "files_deleted": r.files_deleted,
        "archive_bytes": r.unpack.archive_bytes,
        "sha256": r.unpack.sha256,
    })
}

/// Run `command` with the REST request `body`; returns the `result` JSON.
pub fn dispatch(shard: &EdgeShard, command: &str, body: &Value) -> Result<Value> {
    match command {
        "info" => {
            if !(body.is_null() || body.as_object().is_some_and(|m| m.is_empty())) {
                return Err(Error::invalid("info takes no request body"));
            }
            shard.info()
        }
        "query" => {
            let req: QueryRequest = parse(body)?;
            let points = run_query(shard, &req, "")?;
            Ok(json!({ "points": points }))
        }
        "query_batch" => {
            let req: QueryBatchRequest = parse(body)?;
            let mut out = Vec::new();
            for (i, q) in req.searches.iter().enumerate() {
                out.push(json!({ "points": run_query(shard, q, &format!("searches[{i}].")) ? }));
            }
            Ok(Value::Array(out))
        }
        "search" => {
            let req: SearchRequest = parse(body)?;
            let (using, vector) = match &req.vector {
                NamedVectorStruct::Default(v) => (String::new(), VectorInput::Dense(v.clone())),
                NamedVectorStruct::Named(n) => (n.name.clone(), n.vector.clone()),
            };
            let spec = SearchSpec {
                vector: query_vector(shard, &using, &vector, "vector")?,
                using,
                filter: parse_filter_opt(&req.filter, "filter")?,
                limit: req.limit,
                offset: req.offset.unwrap_or(0),
                score_threshold: req.score_threshold,
                with_payload: req.with_payload.clone().unwrap_or_default(),
                with_vector: req.with_vector.clone().unwrap_or_default(),
                params: search_options(&req.params),
                idf: idf_scope(&req.params, "params.idf.corpus")?,
            };
            let hits = shard.search(&spec)?;
            Ok(Value::Array(hits.iter().map(|h| h.to_json()).collect()))
        }
        "scroll" => {
            let req: ScrollRequest = parse(body)?;
            let filter = parse_filter_opt(&req.filter, "filter")?;
            if let Some(o) = &req.order_by {
                if req.offset.is_some() {
                    return Err(Error::invalid_field("offset", "offset is not supported when ordering by a field"));
                }
                let StageQuery::OrderBy { key, direction, start_from } = order_by_stage(o, "order_by")? else {
                    unreachable!()
                };
                let points = shard.scroll_ordered(
                    &key,
                    direction,
                    start_from,
                    req.limit.unwrap_or(10),
                    filter.as_ref(),
                    &req.with_payload.clone().unwrap_or(WithPayload::Enable(true)),
                    &req.with_vector.clone().unwrap_or_default(),
                )?;
                return Ok(json!({
                    "points": points.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
                    "next_page_offset": Value::Null,
                }));
            }
            let (points, next) = shard.scroll(
                req.offset,
                req.limit.unwrap_or(10),
                filter.as_ref(),
                &req.with_payload.clone().unwrap_or(WithPayload::Enable(true)),
                &req.with_vector.clone().unwrap_or_default(),
            )?;
            Ok(json!({
                "points": points.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
                "next_page_offset": next.map(|id| id.to_json()).unwrap_or(Value::Null),
            }))
        }
        "count" => {
            let req: CountRequest = parse(body)?;
            let filter = parse_filter_opt(&req.filter, "filter")?;
            Ok(json!({ "count": shard.count(filter.as_ref())? }))
        }
        "facet" => {
            let req: FacetRequest = parse(body)?;
            let filter = parse_filter_opt(&req.filter, "filter")?;
            let hits = shard.facet(&req.key, req.limit, filter.as_ref())?;
            Ok(json!({ "hits": hits.into_iter().map(|(v, c)| json!({"value": v, "count": c})).collect::<Vec<_>>() }))
        }
        "retrieve" => {
            let req: RetrieveRequest = parse(body)?;
            let recs = shard.retrieve(
                &req.ids,
                &req.with_payload.clone().unwrap_or(WithPayload::Enable(true)),
                &req.with_vector.clone().unwrap_or_default(),
            )?;
            Ok(Value::Array(recs.iter().map(|r| r.to_json()).collect()))
        }
        other => Err(Error::invalid(format!("unknown command `{other}`"))),
    }
}

fn run_query(shard: &EdgeShard, req: &QueryRequest, prefix: &str) -> Result<Vec<Value>> {
    if req.lookup_from.is_some() {
        return Err(Error::Unsupported("`lookup_from` needs other collections; an edge shard has none".into()));
    }
    let offset = req.offset.unwrap_or(0);
    let root = build_stage(
        shard,
        Stage {
            prefetch: req.prefetch.as_ref().map(|p| p.to_vec()).unwrap_or_default(),
            query: req.query.as_ref(),
            using: req.using.as_deref(),
            filter: &req.filter,
            score_threshold: req.score_threshold,
            limit: req.limit().saturating_add(offset),
            params: &req.params,
        },
        prefix,
    )?;
    let points = shard.query(
        &root,
        offset,
        &req.with_payload.clone().unwrap_or_default(),
        &req.with_vector.clone().unwrap_or_default(),
    )?;
    Ok(points.iter().map(|p| p.to_json()).collect())
}

/// The parts of a query request or prefetch that make a stage.
struct Stage<'a> {
    prefetch: Vec<Prefetch>,
    query: Option<&'a QueryInput>,
    using: Option<&'a str>,
    filter: &'a Option<Value>,
    score_threshold: Option<f32>,
    limit: usize,
    params: &'a Option<SearchParams>,
}

/// `acorn.max_selectivity` when the request leaves it out (Qdrant's default).
const ACORN_MAX_SELECTIVITY: f64 = 0.4;

/// The engine's view of a request's `params`.
fn search_options(p: &Option<SearchParams>) -> SearchOptions {
    match p {
        None => SearchOptions::default(),
        Some(p) => SearchOptions {
            hnsw_ef: p.hnsw_ef.map(|e| e as usize),
            exact: p.exact,
            quantization_ignore: p.quantization.as_ref().is_some_and(|q| q.ignore),
            rescore: p.quantization.as_ref().and_then(|q| q.rescore),
            oversampling: p.quantization.as_ref().and_then(|q| q.oversampling),
            indexed_only: p.indexed_only,
            acorn: p.acorn.as_ref().filter(|a| a.enable).map(|a| a.max_selectivity.unwrap_or(ACORN_MAX_SELECTIVITY)),
        },
    }
}

fn build_stage(shard: &EdgeShard, st: Stage<'_>, prefix: &str) -> Result<QueryNode> {
    let mut prefetch = Vec::new();
    for (i, p) in st.prefetch.iter().enumerate() {
        if p.lookup_from.is_some() {
            return Err(Error::Unsupported("`lookup_from` needs other collections; an edge shard has none".into()));
        }
        prefetch.push(build_stage(
            shard,
            Stage {
                prefetch: p.prefetch.as_ref().map(|x| x.to_vec()).unwrap_or_default(),
                query: p.query.as_ref(),
                using: p.using.as_deref(),
                filter: &p.filter,
                score_threshold: p.score_threshold,
                limit: p.limit.unwrap_or(10),
                params: &p.params,
            },
            &format!("{prefix}prefetch[{i}]."),
        )?);
    }
    let using = st.using.unwrap_or_default().to_string();
    let query = match st.query {
        None => None,
        Some(QueryInput::Nearest(input)) => {
            Some(StageQuery::Nearest { vector: query_vector(shard, &using, input, &format!("{prefix}query"))?, using })
        }
        Some(QueryInput::Rrf { k, weights }) => {
            Some(StageQuery::Rrf { k: k.unwrap_or(DEFAULT_RRF_K), weights: weights.clone() })
        }
        Some(QueryInput::Dbsf) => Some(StageQuery::Dbsf),
        Some(QueryInput::OrderBy(o)) => Some(order_by_stage(o, &format!("{prefix}query.order_by"))?),
        Some(QueryInput::Text(t)) => {
            let bm25 = shard.check_text_query(&using, t.k, t.b)?;
            if !st.prefetch.is_empty() {
                return Err(Error::invalid_field(
                    format!("{prefix}query"),
                    "BM25 over a text index cannot rescore prefetches",
                ));
            }
            Some(StageQuery::Text { field: using, text: t.query.clone(), bm25 })
        }
    };
    Ok(QueryNode {
        prefetch,
        query,
        filter: parse_filter_opt(st.filter, &format!("{prefix}filter"))?,
        score_threshold: st.score_threshold,
        limit: st.limit,
        params: search_options(st.params),
        idf: idf_scope(st.params, &format!("{prefix}params.idf.corpus"))?,
    })
}

/// `params.idf` of a request or prefetch.
fn idf_scope(p: &Option<SearchParams>, field: &str) -> Result<Option<IdfScope>> {
    Ok(match p.as_ref().and_then(|p| p.idf.as_ref()) {
        None => None,
        Some(IdfParams::Global) => Some(IdfScope::Global),
        Some(IdfParams::Corpus(f)) => Some(IdfScope::Corpus(
            parse_filter_opt(&Some(f.clone()), field)?
                .ok_or_else(|| Error::invalid_field(field, "the IDF corpus must be a filter"))?,
        )),
    })
}

fn order_by_stage(o: &OrderBy, field: &str) -> Result<StageQuery> {
    let direction = match o.direction.as_deref() {
        None | Some("asc") => Direction::Asc,
        Some("desc") => Direction::Desc,
        Some(other) => {
            return Err(Error::invalid_field(format!("{field}.direction"), format!("unknown direction `{other}`")))
        }
    };
    let start_from = match &o.start_from {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => {
            Some(parse_datetime(s).ok_or_else(|| {
                Error::invalid_field(format!("{field}.start_from"), format!("`{s}` is not a datetime"))
            })? as f64)
        }
        Some(_) => {
            return Err(Error::invalid_field(format!("{field}.start_from"), "must be a number or a datetime string"))
        }
    };
    Ok(StageQuery::OrderBy { key: o.key.clone(), direction, start_from })
}

fn check_finite(v: &[f32], field: &str) -> Result<()> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid_field(field, "vector contains NaN or infinite values"));
    }
    Ok(())
}

fn query_vector(shard: &EdgeShard, using: &str, input: &VectorInput, field: &str) -> Result<QueryVector> {
    Ok(match input {
        VectorInput::Dense(v) => {
            check_finite(v, field)?;
            QueryVector::Dense(v.clone())
        }
        VectorInput::Multi(m) => {
            for v in m {
                check_finite(v, field)?;
            }
            QueryVector::Multi(m.clone())
        }
        VectorInput::Sparse(s) => {
            check_finite(&s.values, field)?;
            if s.indices.len() != s.values.len() {
                return Err(Error::invalid_field(field, "sparse vector indices and values differ in length"));
            }
            QueryVector::Sparse(s.clone())
        }
        VectorInput::Id(id) => {
            let r = shard.points.get(id).ok_or_else(|| Error::invalid_field(field, format!("point {id} not found")))?;
            match shard.vector_at(r.loc, using)? {
                Some(crate::types::VectorValue::Dense(v)) => QueryVector::Dense(v),
                Some(crate::types::VectorValue::Multi(m)) => QueryVector::Multi(m),
                Some(crate::types::VectorValue::Sparse(s)) => QueryVector::Sparse(s),
                None => return Err(Error::invalid_field(field, format!("point {id} has no vector `{using}`"))),
            }
        }
    })
}
