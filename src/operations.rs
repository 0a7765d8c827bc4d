//! Typed shard update operations: what a WAL record holds (spec §11.4) and what the update
//! API produces.
//!
//! A WAL entry is CBOR of Qdrant's `OperationWithClockTag`: a map whose keys are one
//! operation key from the table below plus an optional `clock_tag`. [`decode_entry`] turns
//! an entry into an [`UpdateOperation`] (via [`crate::format::cbor`] and [`parse_record`]);
//! [`UpdateOperation::to_json`] / [`encode_record`] produce the same shapes back, so records
//! written here are read by Qdrant.
//!
//! | WAL key                      | value shape                                                        | variant |
//! |------------------------------|--------------------------------------------------------------------|---------|
//! | `upsert_points`              | `{"points":[Point…]}` or `{"batch":{"ids","vectors","payloads"?}}` | [`UpdateOperation::UpsertPoints`] |
//! | `upsert_points_conditional`  | `{"points_op":<as above>,"condition":Filter,"update_mode"?}`       | [`UpdateOperation::UpsertConditional`] |
//! | `delete_points`              | `{"ids":[id…]}`                                                    | [`UpdateOperation::DeletePoints`] |
//! | `delete_points_by_filter`    | Filter                                                             | [`UpdateOperation::DeleteByFilter`] |
//! | `sync_points`                | `{"from_id"?,"to_id"?,"points":[Point…]}`                          | [`UpdateOperation::SyncPoints`] |
//! | `upsert_points_raw`, `sync_points_raw` | storage-native vector bytes                              | unsupported (error) |
//! | `update_vectors`             | `{"points":[{"id","vector"}…],"update_filter"?}`                   | [`UpdateOperation::UpdateVectors`] |
//! | `delete_vectors`             | `[{"points":[id…]},["name"…]]`                                     | [`UpdateOperation::DeleteVectors`] (ids) |
//! | `delete_vectors_by_filter`   | `[Filter,["name"…]]`                                               | [`UpdateOperation::DeleteVectors`] (filter) |
//! | `set_payload`                | `{"payload","points"?,"filter"?,"key"?}`                           | [`UpdateOperation::SetPayload`] |
//! | `overwrite_payload`          | same                                                               | [`UpdateOperation::OverwritePayload`] |
//! | `delete_payload`             | `{"keys":[path…],"points"?,"filter"?}`                             | [`UpdateOperation::DeletePayload`] |
//! | `clear_payload`              | `{"points":[id…]}`                                                 | [`UpdateOperation::ClearPayload`] (ids) |
//! | `clear_payload_by_filter`    | Filter                                                             | [`UpdateOperation::ClearPayload`] (filter) |
//! | `create_index`               | `{"field_name","field_schema"?}`                                   | [`UpdateOperation::CreateIndex`] |
//! | `delete_index`               | path string                                                        | [`UpdateOperation::DeleteIndex`] |
//! | `create_vector_name`         | `{"vector_name","config"}`                                         | [`UpdateOperation::CreateVectorName`] |
//! | `delete_vector_name`         | `{"vector_name"}`                                                  | [`UpdateOperation::DeleteVectorName`] |
//!
//! Points: `{"id", "vector": VectorStruct, "payload"?: object|null}`. A VectorStruct is a dense
//! vector `[f32…]` or a multivector `[[f32…]…]` for the default vector (name `""`), or a map
//! `{name: dense | {"indices","values"} | multi}`. Ids are unsigned integers or UUID strings
//! (byte-string UUIDs were already turned into strings by the CBOR layer).
//!
//! Decisions that follow Qdrant's deserializer (untagged enums, optional fields):
//! * `[]` as a vector is an empty dense vector; absent and `null` optional fields are the same.
//! * Unknown keys inside points/ops are ignored; an unknown or second operation key is an error.
//! * A `set/overwrite/delete_payload` with both `points` and `filter` uses the points (Qdrant
//!   applies the ids and ignores the filter); with neither it selects no point (Qdrant fails
//!   the op at apply time and replay skips it, which has the same effect).
//! * Batches are expanded to points; a batch whose lists disagree in length is rejected
//!   (Qdrant truncates them silently in an order that depends on hash-map iteration).
//! * Sparse vectors are kept in record order (not sorted); indices and values must have the
//!   same length. Vector elements must be finite as `f32`.
//!
//! Filters, index schemas and vector configs stay JSON here; the query and shard layers parse
//! them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::error::FormatError;
use crate::format::cbor::{self, CborValue};
use crate::format::wal::WalEntry;
use crate::types::{Payload, PointId, SparseVector, VectorValue};

/// Name of the default (unnamed) vector.
pub const DEFAULT_VECTOR_NAME: &str = "";

/// A point's vectors by name; the default vector is named `""`.
pub type NamedVectors = BTreeMap<String, VectorValue>;

/// One point of an upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct PointStruct {
    pub id: PointId,
    pub vectors: NamedVectors,
    pub payload: Option<Payload>,
}

/// How a conditional upsert treats existing and new points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    /// Insert new points, update existing ones that match the condition.
    #[default]
    Upsert,
    /// Only insert new points.
    InsertOnly,
    /// Only update existing points (that match the condition).
    UpdateOnly,
}

/// Which points an operation touches. Filters stay JSON (REST filter schema).
#[derive(Debug, Clone, PartialEq)]
pub enum PointsSelector {
    Ids(Vec<PointId>),
    Filter(Value),
}

/// A shard update operation.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOperation {
    /// Insert or replace whole points.
    UpsertPoints(Vec<PointStruct>),
    /// Upsert where existing points are only replaced if they match `condition`.
    /// `update_mode: None` (absent in the record) means [`UpdateMode::Upsert`].
    UpsertConditional {
        points: Vec<PointStruct>,
        condition: Value,
        update_mode: Option<UpdateMode>,
    },
    DeletePoints(Vec<PointId>),
    DeleteByFilter(Value),
    /// Replace the points in the id range `[from_id, to_id]` by `points` (shard transfers).
    SyncPoints {
        from_id: Option<PointId>,
        to_id: Option<PointId>,
        points: Vec<PointStruct>,
    },
    /// Set the given named vectors of existing points (others untouched); with `update_filter`
    /// only points matching it are updated.
    UpdateVectors {
        points: Vec<(PointId, NamedVectors)>,
        update_filter: Option<Value>,
    },
    DeleteVectors {
        selector: PointsSelector,
        names: Vec<String>,
    },
    /// Merge `payload` into the points' payloads (at `key` if given).
    SetPayload {
        payload: Payload,
        selector: PointsSelector,
        key: Option<String>,
    },
    /// Replace the points' payloads by `payload`. Qdrant 1.19 / edge 0.9 ignore `key` when
    /// applying this operation; it is kept for round-trips.
    OverwritePayload {
        payload: Payload,
        selector: PointsSelector,
        key: Option<String>,
    },
    DeletePayload {
        keys: Vec<String>,
        selector: PointsSelector,
    },
    ClearPayload(PointsSelector),
    CreateIndex {
        field_name: String,
        field_schema: Option<Value>,
    },
    DeleteIndex(String),
    /// `config`: `{"dense": {size, distance, multivector_config?, datatype?}}` or
    /// `{"sparse": {modifier?, datatype?}}`.
    CreateVectorName {
        name: String,
        config: Value,
    },
    DeleteVectorName {
        name: String,
    },
}

impl UpdateOperation {
    /// The WAL key this operation is written under (e.g. `"clear_payload_by_filter"`).
    pub fn kind(&self) -> &'static str {
        use UpdateOperation::*;
        match self {
            UpsertPoints(_) => "upsert_points",
            UpsertConditional { .. } => "upsert_points_conditional",
            DeletePoints(_) => "delete_points",
            DeleteByFilter(_) => "delete_points_by_filter",
            SyncPoints { .. } => "sync_points",
            UpdateVectors { .. } => "update_vectors",
            DeleteVectors { selector: PointsSelector::Ids(_), .. } => "delete_vectors",
            DeleteVectors { selector: PointsSelector::Filter(_), .. } => "delete_vectors_by_filter",
            SetPayload { .. } => "set_payload",
            OverwritePayload { .. } => "overwrite_payload",
            DeletePayload { .. } => "delete_payload",
            ClearPayload(PointsSelector::Ids(_)) => "clear_payload",
            ClearPayload(PointsSelector::Filter(_)) => "clear_payload_by_filter",
            CreateIndex { .. } => "create_index",
            DeleteIndex(_) => "delete_index",
            CreateVectorName { .. } => "create_vector_name",
            DeleteVectorName { .. } => "delete_vector_name",
        }
    }

    /// True for collection-level (schema) operations, which are versioned per segment rather
    /// than per point (spec §3.4).
    pub fn is_schema_operation(&self) -> bool {
        matches!(
            self,
            UpdateOperation::CreateIndex { .. }
                | UpdateOperation::DeleteIndex(_)
                | UpdateOperation::CreateVectorName { .. }
                | UpdateOperation::DeleteVectorName { .. }
        )
    }

    /// The point ids named explicitly by the operation (`None` for filter- and schema-based
    /// operations).
    pub fn point_ids(&self) -> Option<Vec<PointId>> {
        use UpdateOperation::*;
        let sel = |s: &PointsSelector| match s {
            PointsSelector::Ids(ids) => Some(ids.clone()),
            PointsSelector::Filter(_) => None,
        };
        match self {
            UpsertPoints(p) | UpsertConditional { points: p, .. } | SyncPoints { points: p, .. } => {
                Some(p.iter().map(|p| p.id).collect())
            }
            DeletePoints(ids) => Some(ids.clone()),
            UpdateVectors { points, .. } => Some(points.iter().map(|p| p.0).collect()),
            DeleteVectors { selector, .. }
            | SetPayload { selector, .. }
            | OverwritePayload { selector, .. }
            | DeletePayload { selector, .. }
            | ClearPayload(selector) => sel(selector),
            DeleteByFilter(_)
            | CreateIndex { .. }
            | DeleteIndex(_)
            | CreateVectorName { .. }
            | DeleteVectorName { .. } => None,
        }
    }

    /// The operation's value as Qdrant writes it under [`Self::kind`] (the JSON form of the
    /// WAL record without the outer key). Vectors are always written as a name → vector map.
    pub fn value_json(&self) -> Value {
        use UpdateOperation::*;
        match self {
            UpsertPoints(points) => json!({ "points": points_json(points) }),
            UpsertConditional { points, condition, update_mode } => {
                let mut m = Map::new();
                m.insert("points_op".into(), json!({ "points": points_json(points) }));
                m.insert("condition".into(), condition.clone());
                if let Some(mode) = update_mode {
                    m.insert("update_mode".into(), json!(mode));
                }
                Value::Object(m)
            }
            DeletePoints(ids) => json!({ "ids": ids_json(ids) }),
            DeleteByFilter(f) => f.clone(),
            SyncPoints { from_id, to_id, points } => json!({
                "from_id": from_id.map(|i| i.to_json()),
                "to_id": to_id.map(|i| i.to_json()),
                "points": points_json(points),
            }),
            UpdateVectors { points, update_filter } => {
                let pts: Vec<Value> =
                    points.iter().map(|(id, v)| json!({"id": id.to_json(), "vector": vectors_json(v)})).collect();
                let mut m = Map::new();
                m.insert("points".into(), Value::Array(pts));
                if let Some(f) = update_filter {
                    m.insert("update_filter".into(), f.clone());
                }
                Value::Object(m)
            }
            DeleteVectors { selector: PointsSelector::Ids(ids), names } => {
                json!([{ "points": ids_json(ids) }, names])
            }
            DeleteVectors { selector: PointsSelector::Filter(f), names } => json!([f, names]),
            SetPayload { payload, selector, key } | OverwritePayload { payload, selector, key } => {
                let (points, filter) = selector_json(selector);
                json!({ "payload": payload, "points": points, "filter": filter, "key": key })
            }
            DeletePayload { keys, selector } => {
                let (points, filter) = selector_json(selector);
                json!({ "keys": keys, "points": points, "filter": filter })
            }
            ClearPayload(PointsSelector::Ids(ids)) => json!({ "points": ids_json(ids) }),
            ClearPayload(PointsSelector::Filter(f)) => f.clone(),
            CreateIndex { field_name, field_schema } => {
                json!({ "field_name": field_name, "field_schema": field_schema })
            }
            DeleteIndex(name) => json!(name),
            CreateVectorName { name, config } => json!({ "vector_name": name, "config": config }),
            DeleteVectorName { name } => json!({ "vector_name": name }),
        }
    }

    /// `{kind: value}`: the JSON form of the record without a clock tag.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(self.kind().into(), self.value_json());
        Value::Object(m)
    }
}

impl Serialize for UpdateOperation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// The JSON form of a whole WAL record: the operation plus `clock_tag` when present.
pub fn record_json(op: &UpdateOperation, clock_tag: Option<&Value>) -> Value {
    let mut v = op.to_json();
    if let (Some(tag), Value::Object(m)) = (clock_tag, &mut v) {
        m.insert("clock_tag".into(), tag.clone());
    }
    v
}

/// The bytes of a WAL entry for `op` (CBOR, readable by Qdrant; see [`cbor::encode_json`]).
pub fn encode_record(op: &UpdateOperation, clock_tag: Option<&Value>) -> Vec<u8> {
    match (op, clock_tag) {
        // The hot path (bulk upserts) is encoded straight from the points, without building a
        // JSON tree first; the bytes are identical (checked by a test).
        (UpdateOperation::UpsertPoints(points), None) => encode_upsert(points),
        _ => cbor::encode_json(&record_json(op, clock_tag)),
    }
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor::head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn cbor_floats(out: &mut Vec<u8>, v: &[f32]) {
    cbor::head(out, 4, v.len() as u64);
    for x in v {
        cbor::encode_f64(f64::from(*x), out);
    }
}

fn encode_upsert(points: &[PointStruct]) -> Vec<u8> {
    let floats: usize = points
        .iter()
        .flat_map(|p| p.vectors.values())
        .map(|v| match v {
            VectorValue::Dense(d) => d.len(),
            VectorValue::Multi(m) => m.iter().map(Vec::len).sum(),
            VectorValue::Sparse(s) => s.values.len() * 2,
        })
        .sum();
    let mut out = Vec::with_capacity(32 + points.len() * 48 + floats * 5);
    cbor::head(&mut out, 5, 1);
    cbor_text(&mut out, "upsert_points");
    cbor::head(&mut out, 5, 1);
    cbor_text(&mut out, "points");
    cbor::head(&mut out, 4, points.len() as u64);
    for p in points {
        cbor::head(&mut out, 5, 3);
        cbor_text(&mut out, "id");
        match p.id {
            PointId::Num(n) => cbor::head(&mut out, 0, n),
            PointId::Uuid(u) => cbor_text(&mut out, &u.hyphenated().to_string()),
        }
        cbor_text(&mut out, "vector");
        cbor::head(&mut out, 5, p.vectors.len() as u64);
        for (name, v) in &p.vectors {
            cbor_text(&mut out, name);
            match v {
                VectorValue::Dense(d) => cbor_floats(&mut out, d),
                VectorValue::Multi(m) => {
                    cbor::head(&mut out, 4, m.len() as u64);
                    for d in m {
                        cbor_floats(&mut out, d);
                    }
                }
                VectorValue::Sparse(s) => {
                    cbor::head(&mut out, 5, 2);
                    cbor_text(&mut out, "indices");
                    cbor::head(&mut out, 4, s.indices.len() as u64);
                    for i in &s.indices {
                        cbor::head(&mut out, 0, u64::from(*i));
                    }
                    cbor_text(&mut out, "values");
                    cbor_floats(&mut out, &s.values);
                }
            }
        }
        cbor_text(&mut out, "payload");
        match &p.payload {
            Some(m) => {
                cbor::head(&mut out, 5, m.len() as u64);
                for (k, v) in m {
                    cbor_text(&mut out, k);
                    cbor::encode_into(v, &mut out);
                }
            }
            None => out.push(0xF6),
        }
    }
    out
}

fn ids_json(ids: &[PointId]) -> Value {
    Value::Array(ids.iter().map(PointId::to_json).collect())
}

fn vectors_json(v: &NamedVectors) -> Value {
    Value::Object(v.iter().map(|(k, v)| (k.clone(), v.to_json_exact())).collect())
}

fn points_json(points: &[PointStruct]) -> Value {
    Value::Array(
        points
            .iter()
            .map(|p| {
                json!({
                    "id": p.id.to_json(),
                    "vector": vectors_json(&p.vectors),
                    "payload": p.payload.clone().map(Value::Object),
                })
            })
            .collect(),
    )
}

fn selector_json(s: &PointsSelector) -> (Value, Value) {
    match s {
        PointsSelector::Ids(ids) => (ids_json(ids), Value::Null),
        PointsSelector::Filter(f) => (Value::Null, f.clone()),
    }
}

// ---- decoding ---------------------------------------------------------------------------

/// Decode one WAL entry: CBOR → JSON → operation. Errors name `file` and the entry index.
pub fn decode_entry(entry: &WalEntry, file: &str) -> Result<(UpdateOperation, Option<Value>), FormatError> {
    let at = |m: String| format!("WAL entry {}: {m}", entry.index);
    let value = cbor::decode_value(&entry.data, file).map_err(|e| FormatError { message: at(e.message), ..e })?;
    if let CborValue::Map(entries) = &value {
        for (k, _) in entries {
            if let CborValue::Text(k) = k {
                if k == "upsert_points_raw" || k == "sync_points_raw" {
                    return Err(FormatError::unsupported(
                        file,
                        at(format!("`{k}` (storage-native vector bytes) is not supported")),
                    ));
                }
            }
        }
    }
    let json = cbor::value_to_json(&value, file).map_err(|e| FormatError { message: at(e.message), ..e })?;
    parse_record(&json).map_err(|e| FormatError { file: file.to_string(), message: at(e.message), ..e })
}

/// Parse the JSON form of a WAL record (`{<op key>: value, "clock_tag"?: {...}}`).
/// Returns the operation and the clock tag (`None` when absent or null). Errors carry an
/// empty `file` and the JSON path of the offending field.
pub fn parse_record(json: &Value) -> Result<(UpdateOperation, Option<Value>), FormatError> {
    let err = |m: String| FormatError::corrupt("", m);
    let Value::Object(map) = json else {
        return Err(err(format!("record is not a map: {}", short(json))));
    };
    let mut clock_tag = None;
    let mut op: Option<(&str, &Value)> = None;
    for (k, v) in map {
        if k == "clock_tag" {
            if !v.is_null() {
                if !v.is_object() {
                    return Err(err(format!("clock_tag: expected a map, got {}", short(v))));
                }
                clock_tag = Some(v.clone());
            }
        } else if let Some((first, _)) = op {
            return Err(err(format!("record has two operations: `{first}` and `{k}`")));
        } else {
            op = Some((k, v));
        }
    }
    let Some((key, value)) = op else {
        return Err(err("record has no operation".into()));
    };
    let op = parse_op(key, value).map_err(err)?;
    Ok((op, clock_tag))
}

type R<T> = Result<T, String>;

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        let mut end = 77;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

fn obj<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| format!("{path}: expected a map, got {}", short(v)))
}

fn arr<'a>(v: &'a Value, path: &str) -> R<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| format!("{path}: expected an array, got {}", short(v)))
}

fn text<'a>(v: &'a Value, path: &str) -> R<&'a str> {
    v.as_str().ok_or_else(|| format!("{path}: expected a string, got {}", short(v)))
}

fn req<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<&'a Value> {
    m.get(key).ok_or_else(|| format!("{path}: missing field `{key}`"))
}

/// Optional field: absent and `null` are both `None`.
fn opt<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

fn point_id(v: &Value, path: &str) -> R<PointId> {
    PointId::from_json(v).map_err(|e| format!("{path}: {e}"))
}

fn point_ids(v: &Value, path: &str) -> R<Vec<PointId>> {
    arr(v, path)?.iter().enumerate().map(|(i, v)| point_id(v, &format!("{path}[{i}]"))).collect()
}

fn strings(v: &Value, path: &str) -> R<Vec<String>> {
    arr(v, path)?.iter().enumerate().map(|(i, v)| text(v, &format!("{path}[{i}]")).map(str::to_string)).collect()
}

fn filter(v: &Value, path: &str) -> R<Value> {
    obj(v, path).map(|_| v.clone())
}

fn payload(v: &Value, path: &str) -> R<Payload> {
    obj(v, path).cloned()
}

fn element(v: &Value, path: &str) -> R<f32> {
    let f = v.as_f64().ok_or_else(|| format!("{path}: expected a number, got {}", short(v)))? as f32;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(format!("{path}: {} is not a finite f32", short(v)))
    }
}

fn dense(items: &[Value], path: &str) -> R<Vec<f32>> {
    items.iter().enumerate().map(|(i, v)| element(v, &format!("{path}[{i}]"))).collect()
}

fn multi(items: &[Value], path: &str) -> R<Vec<Vec<f32>>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let p = format!("{path}[{i}]");
            dense(arr(v, &p)?, &p)
        })
        .collect()
}

/// An array vector: dense if it is empty or its first element is a number, multi otherwise
/// (Qdrant's untagged enums try dense first, then multi).
fn array_vector(items: &[Value], path: &str) -> R<VectorValue> {
    match items.first() {
        None | Some(Value::Number(_)) => dense(items, path).map(VectorValue::Dense),
        Some(Value::Array(_)) => multi(items, path).map(VectorValue::Multi),
        Some(other) => Err(format!("{path}[0]: expected a number or an array, got {}", short(other))),
    }
}

fn sparse(m: &Map<String, Value>, path: &str) -> R<SparseVector> {
    let indices = arr(req(m, "indices", path)?, &format!("{path}.indices"))?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("{path}.indices[{i}]: expected a u32, got {}", short(v)))
        })
        .collect::<R<Vec<u32>>>()?;
    let values = dense(arr(req(m, "values", path)?, &format!("{path}.values"))?, &format!("{path}.values"))?;
    if indices.len() != values.len() {
        return Err(format!("{path}: {} indices but {} values", indices.len(), values.len()));
    }
    Ok(SparseVector { indices, values })
}

/// One named vector: dense, sparse or multi.
fn vector(v: &Value, path: &str) -> R<VectorValue> {
    match v {
        Value::Array(items) => array_vector(items, path),
        Value::Object(m) => sparse(m, path).map(VectorValue::Sparse),
        other => Err(format!("{path}: expected a vector, got {}", short(other))),
    }
}

/// A VectorStruct: default dense/multi vector or a name → vector map.
fn vector_struct(v: &Value, path: &str) -> R<NamedVectors> {
    match v {
        Value::Array(items) => {
            let mut out = NamedVectors::new();
            out.insert(DEFAULT_VECTOR_NAME.to_string(), array_vector(items, path)?);
            Ok(out)
        }
        Value::Object(m) => {
            m.iter().map(|(name, v)| Ok((name.clone(), vector(v, &format!("{path}.{name}"))?))).collect()
        }
        other => Err(format!("{path}: expected vectors, got {}", short(other))),
    }
}

fn point(v: &Value, path: &str) -> R<PointStruct> {
    let m = obj(v, path)?;
    let id = point_id(req(m, "id", path)?, &format!("{path}.id"))?;
    let vectors = vector_struct(req(m, "vector", path)?, &format!("{path}.vector"))?;
    let payload = opt(m, "payload").map(|p| payload(p, &format!("{path}.payload"))).transpose()?;
    Ok(PointStruct { id, vectors, payload })
}

fn points(v: &Value, path: &str) -> R<Vec<PointStruct>> {
    arr(v, path)?.iter().enumerate().map(|(i, v)| point(v, &format!("{path}[{i}]"))).collect()
}

/// `{"points":[...]}` or `{"batch":{...}}` (an externally tagged enum: exactly one key).
fn insert_points(v: &Value, path: &str) -> R<Vec<PointStruct>> {
    let m = obj(v, path)?;
    if m.len() != 1 {
        return Err(format!("{path}: expected exactly one of `points` or `batch`, got {} keys", m.len()));
    }
    if let Some(p) = m.get("points") {
        return points(p, &format!("{path}.points"));
    }
    if let Some(b) = m.get("batch") {
        return batch(b, &format!("{path}.batch"));
    }
    let key = m.keys().next().map(String::as_str).unwrap_or("");
    Err(format!("{path}: unknown insert form `{key}`"))
}

fn batch(v: &Value, path: &str) -> R<Vec<PointStruct>> {
    let m = obj(v, path)?;
    let ids = point_ids(req(m, "ids", path)?, &format!("{path}.ids"))?;
    let n = ids.len();
    let vpath = format!("{path}.vectors");
    let check = |len: usize, what: &str| {
        if len == n {
            Ok(())
        } else {
            Err(format!("{what}: {len} entries for {n} ids"))
        }
    };
    let mut rows: Vec<NamedVectors> = vec![NamedVectors::new(); n];
    match req(m, "vectors", path)? {
        Value::Array(items) => {
            check(items.len(), &vpath)?;
            // Single (list of dense) unless the first row is itself a list of lists
            let is_multi =
                matches!(items.first(), Some(Value::Array(row)) if matches!(row.first(), Some(Value::Array(_))));
            for (i, (row, item)) in rows.iter_mut().zip(items).enumerate() {
                let p = format!("{vpath}[{i}]");
                let a = arr(item, &p)?;
                let v = if is_multi { VectorValue::Multi(multi(a, &p)?) } else { VectorValue::Dense(dense(a, &p)?) };
                row.insert(DEFAULT_VECTOR_NAME.to_string(), v);
            }
        }
        Value::Object(named) => {
            for (name, list) in named {
                let p = format!("{vpath}.{name}");
                let list = arr(list, &p)?;
                check(list.len(), &p)?;
                for (i, (row, item)) in rows.iter_mut().zip(list).enumerate() {
                    row.insert(name.clone(), vector(item, &format!("{p}[{i}]"))?);
                }
            }
        }
        other => return Err(format!("{vpath}: expected vectors, got {}", short(other))),
    }
    let payloads: Vec<Option<Payload>> = match opt(m, "payloads") {
        None => vec![None; n],
        Some(p) => {
            let ppath = format!("{path}.payloads");
            let list = arr(p, &ppath)?;
            check(list.len(), &ppath)?;
            list.iter()
                .enumerate()
                .map(|(i, v)| if v.is_null() { Ok(None) } else { payload(v, &format!("{ppath}[{i}]")).map(Some) })
                .collect::<R<_>>()?
        }
    };
    Ok(ids
        .into_iter()
        .zip(rows)
        .zip(payloads)
        .map(|((id, vectors), payload)| PointStruct { id, vectors, payload })
        .collect())
}

/// `points`/`filter` pair of the payload operations.
fn selector(m: &Map<String, Value>, path: &str) -> R<PointsSelector> {
    if let Some(p) = opt(m, "points") {
        return point_ids(p, &format!("{path}.points")).map(PointsSelector::Ids);
    }
    if let Some(f) = opt(m, "filter") {
        return filter(f, &format!("{path}.filter")).map(PointsSelector::Filter);
    }
    Ok(PointsSelector::Ids(Vec::new()))
}

/// A 2-element array (tuple variant).
fn pair<'a>(v: &'a Value, path: &str) -> R<(&'a Value, &'a Value)> {
    match arr(v, path)?.as_slice() {
        [a, b] => Ok((a, b)),
        other => Err(format!("{path}: expected 2 elements, got {}", other.len())),
    }
}

fn opt_text(m: &Map<String, Value>, key: &str, path: &str) -> R<Option<String>> {
    opt(m, key).map(|v| text(v, &format!("{path}.{key}")).map(str::to_string)).transpose()
}

fn parse_op(key: &str, v: &Value) -> R<UpdateOperation> {
    use UpdateOperation as Op;
    let path = key;
    Ok(match key {
        "upsert_points" => Op::UpsertPoints(insert_points(v, path)?),
        "upsert_points_conditional" => {
            let m = obj(v, path)?;
            let points = insert_points(req(m, "points_op", path)?, &format!("{path}.points_op"))?;
            let condition = filter(req(m, "condition", path)?, &format!("{path}.condition"))?;
            let update_mode = opt(m, "update_mode")
                .map(|u| UpdateMode::deserialize(u).map_err(|e| format!("{path}.update_mode: {e}")))
                .transpose()?;
            Op::UpsertConditional { points, condition, update_mode }
        }
        "delete_points" => {
            let m = obj(v, path)?;
            Op::DeletePoints(point_ids(req(m, "ids", path)?, &format!("{path}.ids"))?)
        }
        "delete_points_by_filter" => Op::DeleteByFilter(filter(v, path)?),
        "sync_points" => {
            let m = obj(v, path)?;
            let from_id = opt(m, "from_id").map(|i| point_id(i, &format!("{path}.from_id"))).transpose()?;
            let to_id = opt(m, "to_id").map(|i| point_id(i, &format!("{path}.to_id"))).transpose()?;
            let points = points(req(m, "points", path)?, &format!("{path}.points"))?;
            Op::SyncPoints { from_id, to_id, points }
        }
        "upsert_points_raw" | "sync_points_raw" => {
            return Err(format!("`{key}` (storage-native vector bytes) is not supported"))
        }
        "update_vectors" => {
            let m = obj(v, path)?;
            let ppath = format!("{path}.points");
            let points = arr(req(m, "points", path)?, &ppath)?
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let pp = format!("{ppath}[{i}]");
                    let pm = obj(p, &pp)?;
                    let id = point_id(req(pm, "id", &pp)?, &format!("{pp}.id"))?;
                    let vectors = vector_struct(req(pm, "vector", &pp)?, &format!("{pp}.vector"))?;
                    Ok((id, vectors))
                })
                .collect::<R<Vec<_>>>()?;
            let update_filter =
                opt(m, "update_filter").map(|f| filter(f, &format!("{path}.update_filter"))).transpose()?;
            Op::UpdateVectors { points, update_filter }
        }
        "delete_vectors" => {
            let (ids, names) = pair(v, path)?;
            let ids = point_ids(
                req(obj(ids, &format!("{path}[0]"))?, "points", &format!("{path}[0]"))?,
                &format!("{path}[0].points"),
            )?;
            Op::DeleteVectors { selector: PointsSelector::Ids(ids), names: strings(names, &format!("{path}[1]"))? }
        }
        "delete_vectors_by_filter" => {
            let (f, names) = pair(v, path)?;
            Op::DeleteVectors {
                selector: PointsSelector::Filter(filter(f, &format!("{path}[0]"))?),
                names: strings(names, &format!("{path}[1]"))?,
            }
        }
        "set_payload" | "overwrite_payload" => {
            let m = obj(v, path)?;
            let payload = payload(req(m, "payload", path)?, &format!("{path}.payload"))?;
            let selector = selector(m, path)?;
            let key_path = opt_text(m, "key", path)?;
            if path == "set_payload" {
                Op::SetPayload { payload, selector, key: key_path }
            } else {
                Op::OverwritePayload { payload, selector, key: key_path }
            }
        }
        "delete_payload" => {
            let m = obj(v, path)?;
            let keys = strings(req(m, "keys", path)?, &format!("{path}.keys"))?;
            Op::DeletePayload { keys, selector: selector(m, path)? }
        }
        "clear_payload" => {
            let m = obj(v, path)?;
            Op::ClearPayload(PointsSelector::Ids(point_ids(req(m, "points", path)?, &format!("{path}.points"))?))
        }
        "clear_payload_by_filter" => Op::ClearPayload(PointsSelector::Filter(filter(v, path)?)),
        "create_index" => {
            let m = obj(v, path)?;
            let field_name = text(req(m, "field_name", path)?, &format!("{path}.field_name"))?.to_string();
            Op::CreateIndex { field_name, field_schema: opt(m, "field_schema").cloned() }
        }
        "delete_index" => Op::DeleteIndex(text(v, path)?.to_string()),
        "create_vector_name" => {
            let m = obj(v, path)?;
            let name = text(req(m, "vector_name", path)?, &format!("{path}.vector_name"))?.to_string();
            let config = obj(req(m, "config", path)?, &format!("{path}.config"))?;
            Op::CreateVectorName { name, config: Value::Object(config.clone()) }
        }
        "delete_vector_name" => {
            let m = obj(v, path)?;
            let name = text(req(m, "vector_name", path)?, &format!("{path}.vector_name"))?.to_string();
            Op::DeleteVectorName { name }
        }
        other => return Err(format!("unknown operation `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_upsert_encoding_equals_the_general_one() {
        let p = |id: PointId, vectors: NamedVectors, payload: Option<Payload>| PointStruct { id, vectors, payload };
        let points = vec![
            p(
                PointId::Num(7),
                BTreeMap::from([(String::new(), VectorValue::Dense(vec![0.5, -1.25, 1e-8, 3.4e38]))]),
                None,
            ),
            p(
                PointId::Uuid(uuid::Uuid::from_u128(0x12345678_1234_5678_1234_567812345678)),
                BTreeMap::from([
                    ("a".to_string(), VectorValue::Multi(vec![vec![1.0, 2.0], vec![0.1, 0.2]])),
                    (
                        "s".to_string(),
                        VectorValue::Sparse(SparseVector { indices: vec![3, 1_000_000], values: vec![0.5, -2.0] }),
                    ),
                ]),
                json!({"k": [1, "x", null, {"n": -5}], "f": 1.5}).as_object().cloned(),
            ),
            p(PointId::Num(u64::MAX), BTreeMap::new(), Some(Payload::new())),
        ];
        let op = UpdateOperation::UpsertPoints(points);
        assert_eq!(encode_record(&op, None), cbor::encode_json(&record_json(&op, None)));
        let back = parse_record(&cbor::decode_to_json(&encode_record(&op, None), "t").unwrap()).unwrap().0;
        assert_eq!(back, op);
    }

    use super::*;
    use bytes::Bytes;

    const U: &str = "550e8400-e29b-41d4-a716-446655440000";

    fn parse(v: Value) -> UpdateOperation {
        parse_record(&v).unwrap().0
    }

    fn perr(v: Value) -> String {
        parse_record(&v).unwrap_err().message
    }

    #[test]
    fn upsert_list_with_all_vector_kinds() {
        let op = parse(json!({"upsert_points": {"points": [
            {"id": 7, "vector": {"mv": [[1.0, 2.0], [3.0, 4.0]], "": [0.25, -1.5],
                                  "sp": {"indices": [3, 10], "values": [0.5, 0.25]}},
             "payload": {"city": "Berlin"}},
            {"id": U, "vector": [1.0, 2.0], "payload": null},
            {"id": 8, "vector": [[1.0], [2.0]]},
            {"id": 9, "vector": []}
        ]}}));
        let UpdateOperation::UpsertPoints(p) = &op else { panic!("{op:?}") };
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].id, PointId::Num(7));
        assert_eq!(p[0].vectors[""], VectorValue::Dense(vec![0.25, -1.5]));
        assert_eq!(p[0].vectors["mv"], VectorValue::Multi(vec![vec![1.0, 2.0], vec![3.0, 4.0]]));
        assert_eq!(
            p[0].vectors["sp"],
            VectorValue::Sparse(SparseVector { indices: vec![3, 10], values: vec![0.5, 0.25] })
        );
        assert_eq!(p[0].payload.as_ref().unwrap()["city"], "Berlin");
        assert_eq!(p[1].id, PointId::Uuid(uuid::Uuid::parse_str(U).unwrap()));
        assert_eq!(p[1].payload, None);
        assert_eq!(p[2].vectors[""], VectorValue::Multi(vec![vec![1.0], vec![2.0]]));
        assert_eq!(p[3].vectors[""], VectorValue::Dense(vec![]));
        assert_eq!(op.kind(), "upsert_points");
        // round trip through JSON (vectors come back as a name map)
        assert_eq!(parse(op.to_json()), op);
    }

    #[test]
    fn upsert_batch_forms() {
        let op = parse(json!({"upsert_points": {"batch": {
            "ids": [1, 2], "vectors": {"a": [[1.0], [2.0]], "s": [{"indices": [1], "values": [1.0]}, {"indices": [], "values": []}]},
            "payloads": [{"x": 1}, null]}}}));
        let UpdateOperation::UpsertPoints(p) = op else { panic!() };
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].vectors["a"], VectorValue::Dense(vec![2.0]));
        assert_eq!(p[0].payload.as_ref().unwrap()["x"], 1);
        assert_eq!(p[1].payload, None);

        let op = parse(json!({"upsert_points": {"batch": {"ids": [1, 2], "vectors": [[1.0, 0.0], [0.0, 1.0]]}}}));
        let UpdateOperation::UpsertPoints(p) = op else { panic!() };
        assert_eq!(p[1].vectors[""], VectorValue::Dense(vec![0.0, 1.0]));
        let op =
            parse(json!({"upsert_points": {"batch": {"ids": [3], "vectors": [[[1.0], [2.0]]], "payloads": null}}}));
        let UpdateOperation::UpsertPoints(p) = op else { panic!() };
        assert_eq!(p[0].vectors[""], VectorValue::Multi(vec![vec![1.0], vec![2.0]]));
        // empty named map: points without vectors
        let op = parse(json!({"upsert_points": {"batch": {"ids": [4, 5], "vectors": {}}}}));
        let UpdateOperation::UpsertPoints(p) = op else { panic!() };
        assert!(p.iter().all(|p| p.vectors.is_empty()) && p.len() == 2);
        // mismatched lengths are rejected
        assert!(perr(json!({"upsert_points": {"batch": {"ids": [1, 2], "vectors": [[1.0]]}}}))
            .contains("1 entries for 2 ids"));
        assert!(perr(json!({"upsert_points": {"batch": {"ids": [1], "vectors": [[1.0]], "payloads": []}}}))
            .contains("payloads"));
        // both forms at once
        assert!(perr(json!({"upsert_points": {"points": [], "batch": {}}})).contains("exactly one"));
    }

    #[test]
    fn every_other_kind() {
        let f = json!({"must": [{"key": "city", "match": {"value": "Berlin"}}]});
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"upsert_points_conditional": {"points_op": {"points": [{"id": 1, "vector": [1.0]}]}, "condition": f, "update_mode": "insert_only"}}),
                "upsert_points_conditional",
            ),
            (json!({"delete_points": {"ids": [7, U]}}), "delete_points"),
            (json!({"delete_points_by_filter": f}), "delete_points_by_filter"),
            (json!({"sync_points": {"from_id": 1, "to_id": null, "points": []}}), "sync_points"),
            (json!({"update_vectors": {"points": [{"id": 7, "vector": {"": [1.0, 1.0]}}]}}), "update_vectors"),
            (json!({"update_vectors": {"points": [{"id": 7, "vector": [1.0]}], "update_filter": f}}), "update_vectors"),
            (json!({"delete_vectors": [{"points": [7]}, ["sp"]]}), "delete_vectors"),
            (json!({"delete_vectors_by_filter": [f, ["sp", "mv"]]}), "delete_vectors_by_filter"),
            (
                json!({"set_payload": {"payload": {"x": 1.5}, "points": [7], "filter": null, "key": "nested"}}),
                "set_payload",
            ),
            (json!({"set_payload": {"payload": {"x": 1.5}, "points": null, "filter": f, "key": null}}), "set_payload"),
            (
                json!({"overwrite_payload": {"payload": {"city": "Paris"}, "points": [7], "filter": null, "key": null}}),
                "overwrite_payload",
            ),
            (json!({"delete_payload": {"keys": ["city"], "points": [7], "filter": null}}), "delete_payload"),
            (json!({"clear_payload": {"points": [7]}}), "clear_payload"),
            (json!({"clear_payload_by_filter": f}), "clear_payload_by_filter"),
            (json!({"create_index": {"field_name": "city", "field_schema": "keyword"}}), "create_index"),
            (json!({"create_index": {"field_name": "t", "field_schema": null}}), "create_index"),
            (json!({"delete_index": "city"}), "delete_index"),
            (
                json!({"create_vector_name": {"vector_name": "newv", "config": {"dense": {"size": 4, "distance": "Dot"}}}}),
                "create_vector_name",
            ),
            (json!({"delete_vector_name": {"vector_name": "newv"}}), "delete_vector_name"),
        ];
        for (v, kind) in cases {
            let op = parse(v.clone());
            assert_eq!(op.kind(), kind, "{v}");
            // re-encoding gives an equivalent record
            assert_eq!(parse(op.to_json()), op, "{v}");
        }
        let op =
            parse(json!({"set_payload": {"payload": {"x": 1}, "points": [1], "filter": {"must": []}, "key": null}}));
        assert!(matches!(op, UpdateOperation::SetPayload { selector: PointsSelector::Ids(_), .. }));
        let op = parse(json!({"delete_payload": {"keys": ["a"]}}));
        assert_eq!(
            op,
            UpdateOperation::DeletePayload { keys: vec!["a".into()], selector: PointsSelector::Ids(vec![]) }
        );
        let op = parse(json!({"upsert_points_conditional": {"points_op": {"points": []}, "condition": {}}}));
        assert!(matches!(op, UpdateOperation::UpsertConditional { update_mode: None, .. }));
    }

    #[test]
    fn clock_tag_and_record_errors() {
        let tag = json!({"peer_id": 1, "clock_id": 0, "clock_tick": 10, "token": 5, "force": false});
        let (op, t) = parse_record(&json!({"delete_index": "a", "clock_tag": tag})).unwrap();
        assert_eq!(op, UpdateOperation::DeleteIndex("a".into()));
        assert_eq!(t, Some(tag.clone()));
        assert_eq!(parse_record(&json!({"delete_index": "a", "clock_tag": null})).unwrap().1, None);
        assert_eq!(parse_record(&record_json(&op, Some(&tag))).unwrap(), (op, Some(tag)));

        assert!(perr(json!({"clock_tag": {}})).contains("no operation"));
        assert!(perr(json!({"delete_index": "a", "clear_payload": {"points": []}})).contains("two operations"));
        assert!(perr(json!({"frobnicate": {}})).contains("unknown operation"));
        assert!(perr(json!([1])).contains("not a map"));
        assert!(perr(json!({"delete_points": {"ids": [-1]}})).contains("delete_points.ids[0]"));
        assert!(perr(json!({"delete_points": {"ids": ["not-a-uuid"]}})).contains("not-a-uuid"));
        assert!(perr(json!({"upsert_points": {"points": [{"id": 1}]}})).contains("missing field `vector`"));
        assert!(perr(
            json!({"upsert_points": {"points": [{"id": 1, "vector": {"s": {"indices": [1, 2], "values": [1.0]}}}]}})
        )
        .contains("2 indices but 1 values"));
        assert!(perr(json!({"upsert_points": {"points": [{"id": 1, "vector": {"s": {"indices": [4294967296u64], "values": [1.0]}}}]}})).contains("u32"));
        assert!(perr(json!({"upsert_points": {"points": [{"id": 1, "vector": [1e300]}]}})).contains("finite"));
        assert!(perr(json!({"upsert_points": {"points": [{"id": 1, "vector": [[1.0], 2.0]}]}})).contains("vector[1]"));
        assert!(perr(json!({"upsert_points": {"points": [{"id": 1, "vector": "x"}]}})).contains("expected vectors"));
        assert!(perr(json!({"delete_vectors": [{"points": [1]}]})).contains("2 elements"));
        assert!(perr(json!({"upsert_points_conditional": {"points_op": {"points": []}, "condition": {}, "update_mode": "sometimes"}})).contains("update_mode"));
        assert!(perr(json!({"upsert_points_raw": []})).contains("not supported"));
    }

    #[test]
    fn decode_entry_from_hand_built_cbor() {
        // {_ "delete_points": {"ids": [h'550e…', 7]} }  with the UUID as a byte string
        let mut b = vec![0xBF];
        cbor::head(&mut b, 3, 13);
        b.extend_from_slice(b"delete_points");
        b.push(0xA1);
        cbor::head(&mut b, 3, 3);
        b.extend_from_slice(b"ids");
        b.push(0x82);
        b.push(0x50);
        b.extend_from_slice(uuid::Uuid::parse_str(U).unwrap().as_bytes());
        b.push(0x07);
        b.push(0xFF);
        let e = WalEntry { index: 3, data: Bytes::from(b.clone()) };
        let (op, tag) = decode_entry(&e, "wal/open-1").unwrap();
        assert_eq!(
            op,
            UpdateOperation::DeletePoints(vec![PointId::Uuid(uuid::Uuid::parse_str(U).unwrap()), PointId::Num(7)])
        );
        assert_eq!(tag, None);
        // the same op written by us decodes the same
        let e2 = WalEntry { index: 4, data: Bytes::from(encode_record(&op, None)) };
        assert_eq!(decode_entry(&e2, "wal/open-1").unwrap().0, op);
        // damaged: error names the file and the entry
        let e3 = WalEntry { index: 9, data: Bytes::from(b[..b.len() - 2].to_vec()) };
        let err = decode_entry(&e3, "wal/open-1").unwrap_err();
        assert_eq!(err.file, "wal/open-1");
        assert!(err.message.contains("entry 9"), "{err}");
        // raw upsert with a byte-string vector: unsupported, not corrupt
        let mut raw = vec![0xA1];
        cbor::head(&mut raw, 3, 17);
        raw.extend_from_slice(b"upsert_points_raw");
        raw.extend_from_slice(&[0x81, 0xA1, 0x62, b'i', b'd', 0x01]);
        let err = decode_entry(&WalEntry { index: 0, data: Bytes::from(raw) }, "w").unwrap_err();
        assert!(err.unsupported, "{err}");
    }
}
