//! Update request bodies of Qdrant's REST API, strict, turned into typed
//! [`UpdateOperation`]s.
//!
//! | command | REST endpoint | body |
//! |---|---|---|
//! | `upsert` | `PUT /collections/{c}/points` | `{"points": [...]}` or `{"batch": {...}}`, optional `update_filter`, `update_mode` |
//! | `update` | `POST /collections/{c}/points/batch` | `{"operations": [{"upsert": …}, {"delete": …}, {"set_payload": …}, {"overwrite_payload": …}, {"delete_payload": …}, {"clear_payload": …}, {"update_vectors": …}, {"delete_vectors": …}]}` |
//! | `delete` | `POST /points/delete` | `{"points": [ids]}` or `{"filter": …}` |
//! | `set_payload` / `overwrite_payload` | `POST`/`PUT /points/payload` | `{"payload", "points"? , "filter"?, "key"?}` |
//! | `delete_payload` | `POST /points/payload/delete` | `{"keys", "points"?, "filter"?}` |
//! | `clear_payload` | `POST /points/payload/clear` | `{"points"}` or `{"filter"}` |
//! | `update_vectors` | `PUT /points/vectors` | `{"points": [{"id", "vector"}], "update_filter"?}` |
//! | `delete_vectors` | `POST /points/vectors/delete` | `{"points"? , "filter"?, "vector": [names]}` |
//! | `create_index` | `PUT /collections/{c}/index` | `{"field_name", "field_schema"}` |

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::requests::{parse, parse_filter_opt};
use crate::error::{Error, Result};
use crate::operations::{PointStruct, PointsSelector, UpdateMode, UpdateOperation};
use crate::types::{Payload, PointId, SparseVector, VectorValue};

/// A vector value in a request: dense, multi or sparse.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum VectorIn {
    Dense(Vec<f32>),
    Multi(Vec<Vec<f32>>),
    Sparse(SparseVector),
}

impl From<VectorIn> for VectorValue {
    fn from(v: VectorIn) -> Self {
        match v {
            VectorIn::Dense(d) => VectorValue::Dense(d),
            VectorIn::Multi(m) => VectorValue::Multi(m),
            VectorIn::Sparse(s) => VectorValue::Sparse(s),
        }
    }
}

/// `vector` of a point: a bare vector (the default vector `""`) or a map of named vectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum VectorStruct {
    Single(VectorIn),
    Named(BTreeMap<String, VectorIn>),
}

impl VectorStruct {
    fn into_named(self) -> BTreeMap<String, VectorValue> {
        match self {
            VectorStruct::Single(v) => BTreeMap::from([(String::new(), v.into())]),
            VectorStruct::Named(m) => m.into_iter().map(|(k, v)| (k, v.into())).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointIn {
    id: PointId,
    #[serde(default)]
    vector: Option<VectorStruct>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    ids: Vec<PointId>,
    #[serde(default)]
    vectors: Option<BatchVectors>,
    #[serde(default)]
    payloads: Option<Vec<Option<Payload>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum BatchVectors {
    Single(Vec<VectorIn>),
    Named(BTreeMap<String, Vec<VectorIn>>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertBody {
    #[serde(default)]
    points: Option<Vec<PointIn>>,
    #[serde(default)]
    batch: Option<Batch>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    _shard_key: Option<Value>,
    #[serde(default)]
    update_filter: Option<Value>,
    #[serde(default)]
    update_mode: Option<UpdateMode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorBody {
    #[serde(default)]
    points: Option<Vec<PointId>>,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    _shard_key: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadBody {
    payload: Payload,
    #[serde(default)]
    points: Option<Vec<PointId>>,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    _shard_key: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeletePayloadBody {
    keys: Vec<String>,
    #[serde(default)]
    points: Option<Vec<PointId>>,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    _shard_key: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointVectorsIn {
    id: PointId,
    vector: VectorStruct,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateVectorsBody {
    points: Vec<PointVectorsIn>,
    #[serde(default)]
    update_filter: Option<Value>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    _shard_key: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteVectorsBody {
    #[serde(default)]
    points: Option<Vec<PointId>>,
    #[serde(default)]
    filter: Option<Value>,
    vector: Vec<String>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    _shard_key: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIndexBody {
    field_name: String,
    #[serde(default)]
    field_schema: Option<Value>,
}

/// The body of `POST /points/batch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    operations: Vec<Value>,
}

fn prefixed(e: Error, prefix: &str) -> Error {
    match e {
        Error::InvalidArgument { field, message } => Error::InvalidArgument {
            field: Some(match field {
                Some(f) if !f.is_empty() => format!("{prefix}{f}"),
                _ => prefix.trim_end_matches('.').to_string(),
            }),
            message,
        },
        other => other,
    }
}

fn selector(points: Option<Vec<PointId>>, filter: &Option<Value>, prefix: &str) -> Result<PointsSelector> {
    match (points, filter) {
        (Some(ids), None) => Ok(PointsSelector::Ids(ids)),
        (None, Some(f)) => {
            parse_filter_opt(&Some(f.clone()), &format!("{prefix}filter"))?;
            Ok(PointsSelector::Filter(f.clone()))
        }
        (Some(_), Some(_)) => {
            Err(Error::invalid_field(format!("{prefix}points"), "give either `points` or `filter`, not both"))
        }
        (None, None) => Err(Error::invalid_field(format!("{prefix}points"), "`points` or `filter` is required")),
    }
}

fn upsert(body: &Value, prefix: &str) -> Result<UpdateOperation> {
    let b: UpsertBody = parse(body).map_err(|e| prefixed(e, prefix))?;
    let points = match (b.points, b.batch) {
        (Some(points), None) => points
            .into_iter()
            .map(|p| PointStruct {
                id: p.id,
                vectors: p.vector.map(VectorStruct::into_named).unwrap_or_default(),
                payload: p.payload,
            })
            .collect::<Vec<_>>(),
        (None, Some(batch)) => expand_batch(batch, prefix)?,
        _ => return Err(Error::invalid_field(format!("{prefix}points"), "give either `points` or `batch`")),
    };
    if let Some(f) = &b.update_filter {
        parse_filter_opt(&Some(f.clone()), &format!("{prefix}update_filter"))?;
    }
    Ok(match (b.update_filter, b.update_mode) {
        (None, None) | (None, Some(UpdateMode::Upsert)) => UpdateOperation::UpsertPoints(points),
        (condition, mode) => UpdateOperation::UpsertConditional {
            points,
            condition: condition.unwrap_or_else(|| serde_json::json!({})),
            update_mode: mode,
        },
    })
}

fn expand_batch(b: Batch, prefix: &str) -> Result<Vec<PointStruct>> {
    let n = b.ids.len();
    let bad =
        |f: &str| Error::invalid_field(format!("{prefix}batch.{f}"), format!("must have {n} entries, one per id"));
    let mut vectors: Vec<BTreeMap<String, VectorValue>> = vec![BTreeMap::new(); n];
    match b.vectors {
        None => {}
        Some(BatchVectors::Single(list)) => {
            if list.len() != n {
                return Err(bad("vectors"));
            }
            for (slot, v) in vectors.iter_mut().zip(list) {
                slot.insert(String::new(), v.into());
            }
        }
        Some(BatchVectors::Named(map)) => {
            for (name, list) in map {
                if list.len() != n {
                    return Err(bad(&format!("vectors.{name}")));
                }
                for (slot, v) in vectors.iter_mut().zip(list) {
                    slot.insert(name.clone(), v.into());
                }
            }
        }
    }
    let payloads = match b.payloads {
        None => vec![None; n],
        Some(p) if p.len() == n => p,
        Some(_) => return Err(bad("payloads")),
    };
    Ok(b.ids
        .into_iter()
        .zip(vectors)
        .zip(payloads)
        .map(|((id, vectors), payload)| PointStruct { id, vectors, payload })
        .collect())
}

/// Parse one update command body into operations.
pub fn parse_update(command: &str, body: &Value) -> Result<Vec<UpdateOperation>> {
    parse_one(command, body, "")
}

fn parse_one(command: &str, body: &Value, prefix: &str) -> Result<Vec<UpdateOperation>> {
    let p = |e: Error| prefixed(e, prefix);
    Ok(vec![match command {
        "upsert" => upsert(body, prefix)?,
        "delete" => {
            let b: SelectorBody = parse(body).map_err(p)?;
            match selector(b.points, &b.filter, prefix)? {
                PointsSelector::Ids(ids) => UpdateOperation::DeletePoints(ids),
                PointsSelector::Filter(f) => UpdateOperation::DeleteByFilter(f),
            }
        }
        "set_payload" | "overwrite_payload" => {
            let b: PayloadBody = parse(body).map_err(p)?;
            let selector = selector(b.points, &b.filter, prefix)?;
            if command == "set_payload" {
                UpdateOperation::SetPayload { payload: b.payload, selector, key: b.key }
            } else {
                UpdateOperation::OverwritePayload { payload: b.payload, selector, key: b.key }
            }
        }
        "delete_payload" => {
            let b: DeletePayloadBody = parse(body).map_err(p)?;
            UpdateOperation::DeletePayload { keys: b.keys, selector: selector(b.points, &b.filter, prefix)? }
        }
        "clear_payload" => {
            let b: SelectorBody = parse(body).map_err(p)?;
            UpdateOperation::ClearPayload(selector(b.points, &b.filter, prefix)?)
        }
        "update_vectors" => {
            let b: UpdateVectorsBody = parse(body).map_err(p)?;
            if let Some(f) = &b.update_filter {
                parse_filter_opt(&Some(f.clone()), &format!("{prefix}update_filter"))?;
            }
            UpdateOperation::UpdateVectors {
                points: b.points.into_iter().map(|pv| (pv.id, pv.vector.into_named())).collect(),
                update_filter: b.update_filter,
            }
        }
        "delete_vectors" => {
            let b: DeleteVectorsBody = parse(body).map_err(p)?;
            UpdateOperation::DeleteVectors { selector: selector(b.points, &b.filter, prefix)?, names: b.vector }
        }
        "create_index" => {
            let b: CreateIndexBody = parse(body).map_err(p)?;
            UpdateOperation::CreateIndex { field_name: b.field_name, field_schema: b.field_schema }
        }
        "batch" => {
            let b: BatchBody = parse(body).map_err(p)?;
            let mut out = Vec::new();
            for (i, op) in b.operations.iter().enumerate() {
                let pre = format!("{prefix}operations[{i}].");
                let Some(obj) = op.as_object().filter(|o| o.len() == 1) else {
                    return Err(Error::invalid_field(
                        pre.trim_end_matches('.'),
                        "each operation is an object with one key",
                    ));
                };
                let (k, v) = obj.iter().next().expect("one key");
                let cmd = match k.as_str() {
                    "upsert" => "upsert",
                    "delete" => "delete",
                    "set_payload" => "set_payload",
                    "overwrite_payload" => "overwrite_payload",
                    "delete_payload" => "delete_payload",
                    "clear_payload" => "clear_payload",
                    "update_vectors" => "update_vectors",
                    "delete_vectors" => "delete_vectors",
                    other => return Err(Error::invalid_field(format!("{pre}{other}"), "unknown operation")),
                };
                out.extend(parse_one(cmd, v, &format!("{pre}{k}."))?);
            }
            return Ok(out);
        }
        other => return Err(Error::invalid(format!("unknown update command `{other}`"))),
    }])
}
