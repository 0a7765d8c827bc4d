//! The REST-shaped JSON API: request bodies in, the JSON a Qdrant server puts in `result` out.
//!
//! [`dispatch`] is the single entry point used by the CLI, the tests and (later) the JS
//! bindings. Commands and their bodies are listed in [`requests`].

pub mod requests;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::shard::read::{QueryVector, SearchSpec};
use crate::shard::EdgeShard;
use requests::*;

/// Read commands understood by [`dispatch`].
pub const READ_COMMANDS: &[&str] = &["info", "query", "query_batch", "search", "scroll", "count", "facet", "retrieve"];

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
            };
            let hits = shard.search(&spec)?;
            Ok(Value::Array(hits.iter().map(|h| h.to_json()).collect()))
        }
        "scroll" => {
            let req: ScrollRequest = parse(body)?;
            if req.order_by.is_some() {
                return Err(Error::Unsupported("scroll with `order_by` is not supported yet".into()));
            }
            let filter = parse_filter_opt(&req.filter, "filter")?;
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
    if req.prefetch.is_some() {
        return Err(Error::Unsupported("query with `prefetch` is not supported yet".into()));
    }
    if req.lookup_from.is_some() {
        return Err(Error::Unsupported("`lookup_from` needs other collections; an edge shard has none".into()));
    }
    let using = req.using.clone().unwrap_or_default();
    let filter = parse_filter_opt(&req.filter, &format!("{prefix}filter"))?;
    let with_payload = req.with_payload.clone().unwrap_or_default();
    let with_vector = req.with_vector.clone().unwrap_or_default();
    let Some(QueryInput::Nearest(input)) = &req.query else {
        // No query: points by id order, score 1.0, like Qdrant's query without `query`.
        let (recs, _) = shard.scroll(None, req.limit().saturating_add(req.offset.unwrap_or(0)), filter.as_ref(), &with_payload, &with_vector)?;
        return Ok(recs
            .into_iter()
            .skip(req.offset.unwrap_or(0))
            .map(|r| {
                let mut v = r.to_json();
                if let Value::Object(m) = &mut v {
                    let payload = m.remove("payload");
                    let vector = m.remove("vector");
                    m.insert("version".into(), json!(0));
                    m.insert("score".into(), json!(1.0));
                    if let Some(p) = payload {
                        m.insert("payload".into(), p);
                    }
                    if let Some(vv) = vector {
                        m.insert("vector".into(), vv);
                    }
                }
                v
            })
            .collect());
    };
    let spec = SearchSpec {
        vector: query_vector(shard, &using, input, &format!("{prefix}query"))?,
        using,
        filter,
        limit: req.limit(),
        offset: req.offset.unwrap_or(0),
        score_threshold: req.score_threshold,
        with_payload,
        with_vector,
    };
    Ok(shard.search(&spec)?.iter().map(|h| h.to_json()).collect())
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
