//! Request bodies of Qdrant's REST API, strict: an unknown field or a wrong type is an error
//! naming the field.
//!
//! | command | REST endpoint | type |
//! |---|---|---|
//! | `query` | `POST /collections/{c}/points/query` | [`QueryRequest`] |
//! | `query_batch` | `POST /collections/{c}/points/query/batch` | [`QueryBatchRequest`] |
//! | `search` | `POST /collections/{c}/points/search` | [`SearchRequest`] |
//! | `scroll` | `POST /collections/{c}/points/scroll` | [`ScrollRequest`] |
//! | `count` | `POST /collections/{c}/points/count` | [`CountRequest`] |
//! | `facet` | `POST /collections/{c}/facet` | [`FacetRequest`] |
//! | `retrieve` | `POST /collections/{c}/points` | [`RetrieveRequest`] |

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::query::filter::{parse_filter, Filter};
use crate::types::{PointId, SparseVector};

/// Parse a request body, reporting the JSON path of the first offending field.
pub fn parse<T: DeserializeOwned>(body: &Value) -> Result<T> {
    let r: std::result::Result<T, serde_path_to_error::Error<serde_json::Error>> =
        serde_path_to_error::deserialize(body);
    r.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json errors carry "at line x column y" which is meaningless for a Value.
        let msg = inner.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        if path == "." || path.is_empty() {
            Error::invalid(msg)
        } else {
            Error::invalid_field(path, msg)
        }
    })
}

/// Parse an optional filter held as JSON, prefixing error paths with `prefix`.
pub fn parse_filter_opt(v: &Option<Value>, prefix: &str) -> Result<Option<Filter>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_filter(v).map(Some).map_err(|e| match e {
            Error::InvalidArgument { field, message } => Error::InvalidArgument {
                field: Some(match field {
                    Some(f) if !f.is_empty() => format!("{prefix}.{f}"),
                    _ => prefix.to_string(),
                }),
                message,
            },
            other => other,
        }),
    }
}

/// `with_payload`: `true`/`false`, a list of keys, `{"include": [...]}` or `{"exclude": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WithPayload {
    Enable(bool),
    Include(Vec<String>),
    Selector(PayloadSelector),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PayloadSelector {
    Include(Vec<String>),
    Exclude(Vec<String>),
}

impl Default for WithPayload {
    fn default() -> Self {
        WithPayload::Enable(false)
    }
}

/// `with_vector`: `true`/`false` or a list of vector names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WithVector {
    Enable(bool),
    Names(Vec<String>),
}

impl Default for WithVector {
    fn default() -> Self {
        WithVector::Enable(false)
    }
}

/// Search parameters (`params`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_ef: Option<u64>,
    #[serde(default)]
    pub exact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantizationSearchParams>,
    #[serde(default)]
    pub indexed_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acorn: Option<AcornSearchParams>,
    /// `idf`: the points IDF statistics are gathered over, for a sparse vector with the `idf`
    /// modifier and for a BM25 text query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idf: Option<IdfParams>,
}

/// `params.idf`: `"global"` (statistics over every point, as without it) or
/// `{"corpus": <filter>}` (over the points passing the filter).
#[derive(Debug, Clone, PartialEq)]
pub enum IdfParams {
    Global,
    Corpus(Value),
}

impl<'de> Deserialize<'de> for IdfParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Corpus {
            corpus: Value,
        }
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(s) if s == "global" => Ok(IdfParams::Global),
            v @ Value::Object(_) => {
                let c: Corpus = serde_json::from_value(v).map_err(D::Error::custom)?;
                Ok(IdfParams::Corpus(c.corpus))
            }
            _ => Err(D::Error::custom("idf must be \"global\" or {\"corpus\": <filter>}")),
        }
    }
}

impl Serialize for IdfParams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            IdfParams::Global => "global".serialize(s),
            IdfParams::Corpus(f) => serde_json::json!({ "corpus": f }).serialize(s),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationSearchParams {
    #[serde(default)]
    pub ignore: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescore: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "at_least_one")]
    pub oversampling: Option<f64>,
}

/// Qdrant's REST validation of `quantization.oversampling`: at least 1.
fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    match v {
        Some(x) if x.is_nan() || x < 1.0 => Err(serde::de::Error::custom(format!("must be at least 1, got {x}"))),
        _ => Ok(v),
    }
}

/// Qdrant's REST validation of `acorn.max_selectivity`: between 0 and 1.
fn unit_interval<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    match v {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            Err(serde::de::Error::custom(format!("must be between 0 and 1, got {x}")))
        }
        _ => Ok(v),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcornSearchParams {
    #[serde(default)]
    pub enable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "unit_interval")]
    pub max_selectivity: Option<f64>,
}

/// A vector given in a request: dense, sparse or multi.
///
/// Read as an untagged enum would read it (dense, then multi, then sparse, then a point id;
/// [`VectorInput::from_value`]), but an array of numbers or of arrays of numbers is taken
/// straight from the JSON value instead of being buffered and tried variant by variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum VectorInput {
    Dense(Vec<f32>),
    Multi(Vec<Vec<f32>>),
    Sparse(SparseVector),
    Id(PointId),
}

/// The request vectors' variants as serde's untagged derive reads them, under the public
/// names (its errors name the enum): the general case of [`VectorInput::from_value`] and of
/// [`NamedVectorStruct`]'s reading.
mod untagged {
    use super::{NamedVector, PointId, SparseVector};
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(super) enum VectorInput {
        Dense(Vec<f32>),
        Multi(Vec<Vec<f32>>),
        Sparse(SparseVector),
        Id(PointId),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(super) enum NamedVectorStruct {
        Default(Vec<f32>),
        Named(NamedVector),
    }
}

/// A JSON number as serde reads an `f32` from it (each representation cast on its own).
fn number_f32(n: &serde_json::Number) -> f32 {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u as f32,
        (None, Some(i)) => i as f32,
        _ => n.as_f64().unwrap_or(f64::NAN) as f32,
    }
}

/// `items` as numbers, if every one is.
fn all_f32(items: &[Value]) -> Option<Vec<f32>> {
    items.iter().map(|v| v.as_number().map(number_f32)).collect()
}

impl VectorInput {
    /// A request's vector from its JSON value, with the answers (and errors) of an untagged
    /// enum of the same variants. An array of numbers is one pass here, where the derive
    /// buffers the value and copies it again. (A query request's `query` array does not even
    /// become a value: it is read element by element. Both together took a query's fixed
    /// cost in Node from 49-51 to 39-40 us.)
    pub fn from_value(v: Value) -> std::result::Result<Self, serde_json::Error> {
        if let Value::Array(items) = &v {
            if let Some(dense) = all_f32(items) {
                return Ok(VectorInput::Dense(dense));
            }
            let rows: Option<Vec<Vec<f32>>> = items.iter().map(|r| r.as_array().and_then(|r| all_f32(r))).collect();
            if let Some(rows) = rows {
                return Ok(VectorInput::Multi(rows));
            }
        }
        Ok(match serde_json::from_value::<untagged::VectorInput>(v)? {
            untagged::VectorInput::Dense(x) => VectorInput::Dense(x),
            untagged::VectorInput::Multi(x) => VectorInput::Multi(x),
            untagged::VectorInput::Sparse(x) => VectorInput::Sparse(x),
            untagged::VectorInput::Id(x) => VectorInput::Id(x),
        })
    }
}

impl<'de> Deserialize<'de> for VectorInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        VectorInput::from_value(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// The `query` field of a query request.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryInput {
    Nearest(VectorInput),
    /// `{"fusion":"rrf"}` or `{"rrf":{"k"?, "weights"?}}`
    Rrf {
        k: Option<u32>,
        weights: Option<Vec<f32>>,
    },
    /// `{"fusion":"dbsf"}`
    Dbsf,
    /// `{"order_by": "key" | {"key", "direction"?, "start_from"?}}`
    OrderBy(OrderBy),
    /// `{"text": "…"}` or `{"text": {"query": "…", "scoring"?: {"bm25": {"k"?, "b"?}}}}`: BM25
    /// over the text index of the payload field named by `using`.
    Text(TextQuery),
}

/// A BM25 text query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextQuery {
    pub query: String,
    /// `scoring.bm25.k` (term frequency saturation; default 1.2).
    pub k: Option<f32>,
    /// `scoring.bm25.b` (document length normalization; default 0.75).
    pub b: Option<f32>,
}

impl<'de> Deserialize<'de> for TextQuery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Bm25 {
            #[serde(default)]
            k: Option<f32>,
            #[serde(default)]
            b: Option<f32>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Scoring {
            bm25: Bm25,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            query: String,
            #[serde(default)]
            scoring: Option<Scoring>,
        }
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(query) => Ok(TextQuery { query, k: None, b: None }),
            v @ Value::Object(_) => {
                let f: Full = serde_json::from_value(v).map_err(D::Error::custom)?;
                let (k, b) = f.scoring.map_or((None, None), |s| (s.bm25.k, s.bm25.b));
                Ok(TextQuery { query: f.query, k, b })
            }
            _ => Err(D::Error::custom(
                "a text query is a string or {\"query\", \"scoring\": {\"bm25\": {\"k\", \"b\"}}}",
            )),
        }
    }
}

/// `order_by` of scroll and query requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderBy {
    pub key: String,
    pub direction: Option<String>,
    pub start_from: Option<Value>,
}

impl<'de> Deserialize<'de> for OrderBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            key: String,
            #[serde(default)]
            direction: Option<Direction>,
            #[serde(default)]
            start_from: Option<Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Direction {
            Asc,
            Desc,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Key(String),
            Full(Full),
        }
        use serde::de::Error as _;
        let v = Value::deserialize(d)?;
        let form: Form = serde_json::from_value(v).map_err(|_| {
            D::Error::custom("order_by must be a key or {\"key\", \"direction\": \"asc\"|\"desc\", \"start_from\"}")
        })?;
        Ok(match form {
            Form::Key(key) => OrderBy { key, direction: None, start_from: None },
            Form::Full(f) => OrderBy {
                key: f.key,
                direction: f.direction.map(|d| match d {
                    Direction::Asc => "asc".to_string(),
                    Direction::Desc => "desc".to_string(),
                }),
                start_from: f.start_from,
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RrfParams {
    #[serde(default)]
    k: Option<u32>,
    #[serde(default)]
    weights: Option<Vec<f32>>,
}

/// One prefetch stage of a query request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefetch {
    #[serde(default)]
    pub prefetch: Option<OneOrMany<Prefetch>>,
    #[serde(default)]
    pub query: Option<QueryInput>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub lookup_from: Option<Value>,
}

/// A single object or a list of them.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(Box<T>),
    Many(Vec<T>),
}

/// A JSON array is the list form, anything else the single form. (An untagged enum would try
/// the single form first, and serde reads a struct from an array too: `[p]` became one
/// object holding `p` as its own prefetch.)
impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            v @ Value::Array(_) => serde_json::from_value(v).map(OneOrMany::Many).map_err(D::Error::custom),
            v => serde_json::from_value(v).map(|x| OneOrMany::One(Box::new(x))).map_err(D::Error::custom),
        }
    }
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(x) => vec![(**x).clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// An element of a query array, read without building a JSON value: a number, an array of
/// numbers, or anything else (read to its end).
enum QueryElement {
    Number(f32),
    Row(Vec<f32>),
    Other,
}

impl<'de> Deserialize<'de> for QueryElement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        /// `inner`: an element of a row, where only a number is taken.
        struct V {
            inner: bool,
        }
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = QueryElement;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a vector element")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<QueryElement, E> {
                Ok(QueryElement::Number(v as f32))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<QueryElement, E> {
                Ok(QueryElement::Number(v as f32))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<QueryElement, E> {
                Ok(QueryElement::Number(v as f32))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<QueryElement, E> {
                Ok(QueryElement::Other)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<QueryElement, E> {
                Ok(QueryElement::Other)
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<QueryElement, E> {
                Ok(QueryElement::Other)
            }
            fn visit_none<E: serde::de::Error>(self) -> std::result::Result<QueryElement, E> {
                Ok(QueryElement::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<QueryElement, A::Error> {
                if self.inner {
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    return Ok(QueryElement::Other);
                }
                let mut row = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                let mut numbers = true;
                while let Some(x) = seq.next_element_seed(Inner)? {
                    match x {
                        QueryElement::Number(n) if numbers => row.push(n),
                        _ => numbers = false,
                    }
                }
                Ok(if numbers { QueryElement::Row(row) } else { QueryElement::Other })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<QueryElement, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(QueryElement::Other)
            }
        }
        struct Inner;
        impl<'de> serde::de::DeserializeSeed<'de> for Inner {
            type Value = QueryElement;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<QueryElement, D::Error> {
                d.deserialize_any(V { inner: true })
            }
        }
        d.deserialize_any(V { inner: false })
    }
}

/// The `query` field: an array (a dense or multi vector) is read element by element, as
/// [`VectorInput::from_value`] would read it, without first copying it into a JSON value;
/// anything else goes through [`query_from_value`].
struct QueryVisitor;

impl<'de> serde::de::Visitor<'de> for QueryVisitor {
    type Value = QueryInput;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a vector, a point id or an object with one query kind")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<QueryInput, A::Error> {
        let (mut dense, mut multi) = (Vec::with_capacity(seq.size_hint().unwrap_or(0)), Vec::new());
        let mut ok = true;
        while let Some(x) = seq.next_element::<QueryElement>()? {
            match x {
                QueryElement::Number(n) if ok && multi.is_empty() => dense.push(n),
                QueryElement::Row(r) if ok && dense.is_empty() => multi.push(r),
                _ => ok = false,
            }
        }
        if !ok {
            // what serde's untagged derive says of every such array (VectorInput::from_value)
            return Err(serde::de::Error::custom("data did not match any variant of untagged enum VectorInput"));
        }
        Ok(QueryInput::Nearest(if multi.is_empty() { VectorInput::Dense(dense) } else { VectorInput::Multi(multi) }))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<QueryInput, A::Error> {
        query_from_value(Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<QueryInput, E> {
        query_from_value(Value::from(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<QueryInput, E> {
        query_from_value(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<QueryInput, E> {
        query_from_value(Value::from(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<QueryInput, E> {
        query_from_value(Value::from(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<QueryInput, E> {
        query_from_value(Value::from(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<QueryInput, E> {
        query_from_value(Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<QueryInput, E> {
        query_from_value(Value::Null)
    }
}

impl<'de> Deserialize<'de> for QueryInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(QueryVisitor)
    }
}

/// The `query` field from its JSON value.
fn query_from_value<E: serde::de::Error>(v: Value) -> std::result::Result<QueryInput, E> {
    if let Value::Object(m) = &v {
        if m.contains_key("indices") || m.contains_key("values") {
            let s: SparseVector = serde_json::from_value(v).map_err(E::custom)?;
            return Ok(QueryInput::Nearest(VectorInput::Sparse(s)));
        }
        if m.len() != 1 {
            return Err(E::custom("query must be a vector, a point id or an object with one query kind"));
        }
        let Some((k, inner)) = m.iter().next() else { return Err(E::custom("empty query object")) };
        return match k.as_str() {
            "nearest" => {
                let vi = VectorInput::from_value(inner.clone()).map_err(E::custom)?;
                Ok(QueryInput::Nearest(vi))
            }
            "fusion" => match inner.as_str() {
                Some("rrf") => Ok(QueryInput::Rrf { k: None, weights: None }),
                Some("dbsf") => Ok(QueryInput::Dbsf),
                _ => Err(E::custom("fusion must be \"rrf\" or \"dbsf\"")),
            },
            "rrf" => {
                let p: RrfParams = serde_json::from_value(inner.clone()).map_err(E::custom)?;
                Ok(QueryInput::Rrf { k: p.k, weights: p.weights })
            }
            "order_by" => Ok(QueryInput::OrderBy(serde_json::from_value(inner.clone()).map_err(E::custom)?)),
            "text" => Ok(QueryInput::Text(serde_json::from_value(inner.clone()).map_err(E::custom)?)),
            "recommend" | "discover" | "context" | "formula" | "sample" | "mmr" => {
                Err(E::custom(format!("query kind `{k}` is not supported yet by this engine")))
            }
            other => Err(E::custom(format!("unknown query kind `{other}`"))),
        };
    }
    let vi = VectorInput::from_value(v).map_err(E::custom)?;
    Ok(QueryInput::Nearest(vi))
}

impl Serialize for QueryInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            QueryInput::Nearest(v) => v.serialize(s),
            QueryInput::Rrf { k, weights } => serde_json::json!({"rrf": {"k": k, "weights": weights}}).serialize(s),
            QueryInput::Dbsf => serde_json::json!({"fusion": "dbsf"}).serialize(s),
            QueryInput::OrderBy(o) => serde_json::json!({"order_by": o}).serialize(s),
            QueryInput::Text(t) => {
                serde_json::json!({"text": {"query": t.query, "scoring": {"bm25": {"k": t.k, "b": t.b}}}}).serialize(s)
            }
        }
    }
}

fn default_limit() -> usize {
    10
}

/// `POST /points/query`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[serde(default)]
    pub shard_key: Option<Value>,
    #[serde(default)]
    pub prefetch: Option<OneOrMany<Prefetch>>,
    #[serde(default)]
    pub query: Option<QueryInput>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub with_vector: Option<WithVector>,
    #[serde(default)]
    pub with_payload: Option<WithPayload>,
    #[serde(default)]
    pub lookup_from: Option<Value>,
}

/// `POST /points/query/batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBatchRequest {
    pub searches: Vec<QueryRequest>,
}

/// The legacy `vector` field of a search request: `[f32]`, or `{"name", "vector"}`. Read as
/// an untagged enum of the two, except that an array of numbers is taken straight from the
/// JSON value (as [`VectorInput::from_value`] does).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum NamedVectorStruct {
    Default(Vec<f32>),
    Named(NamedVector),
}

impl<'de> Deserialize<'de> for NamedVectorStruct {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = Value::deserialize(d)?;
        if let Some(dense) = v.as_array().and_then(|items| all_f32(items)) {
            return Ok(NamedVectorStruct::Default(dense));
        }
        Ok(match serde_json::from_value::<untagged::NamedVectorStruct>(v).map_err(D::Error::custom)? {
            untagged::NamedVectorStruct::Default(x) => NamedVectorStruct::Default(x),
            untagged::NamedVectorStruct::Named(x) => NamedVectorStruct::Named(x),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedVector {
    pub name: String,
    pub vector: VectorInput,
}

/// `POST /points/search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    pub shard_key: Option<Value>,
    pub vector: NamedVectorStruct,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    pub limit: usize,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub with_payload: Option<WithPayload>,
    #[serde(default)]
    pub with_vector: Option<WithVector>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
}

/// `POST /points/scroll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrollRequest {
    #[serde(default)]
    pub shard_key: Option<Value>,
    #[serde(default)]
    pub offset: Option<PointId>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub with_payload: Option<WithPayload>,
    #[serde(default)]
    pub with_vector: Option<WithVector>,
    #[serde(default)]
    pub order_by: Option<OrderBy>,
}

/// `POST /points/count`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    #[serde(default)]
    pub shard_key: Option<Value>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default = "default_true")]
    pub exact: bool,
}

fn default_true() -> bool {
    true
}

/// `POST /facet`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacetRequest {
    #[serde(default)]
    pub shard_key: Option<Value>,
    pub key: String,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub exact: bool,
}

/// `POST /points` (retrieve by ids).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    #[serde(default)]
    pub shard_key: Option<Value>,
    pub ids: Vec<PointId>,
    #[serde(default)]
    pub with_payload: Option<WithPayload>,
    #[serde(default)]
    pub with_vector: Option<WithVector>,
}

impl QueryRequest {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or_else(default_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A prefetch list of one keeps its own limit and nesting (it once read as an object
    /// holding that prefetch, with the default limit 10 in between).
    #[test]
    fn one_prefetch_in_a_list_is_a_list() {
        let q: QueryRequest = parse(&json!({"prefetch": [{"query": [1.0], "limit": 50}], "limit": 100})).unwrap();
        let Some(OneOrMany::Many(p)) = &q.prefetch else { panic!("{:?}", q.prefetch) };
        assert_eq!((p.len(), p[0].limit, p[0].prefetch.is_none()), (1, Some(50), true));
        let q: QueryRequest = parse(&json!({"prefetch": {"query": [1.0], "limit": 50}})).unwrap();
        assert!(matches!(&q.prefetch, Some(OneOrMany::One(p)) if p.limit == Some(50)));
        let e = parse::<QueryRequest>(&json!({"prefetch": [{"query": [1.0], "limt": 5}]})).unwrap_err();
        assert!(e.to_string().contains("limt"), "{e}");
        assert!(parse::<QueryRequest>(&json!({"prefetch": 5})).is_err());
    }

    fn untagged(v: &Value) -> std::result::Result<VectorInput, String> {
        Ok(match serde_json::from_value::<untagged::VectorInput>(v.clone()).map_err(|e| e.to_string())? {
            untagged::VectorInput::Dense(x) => VectorInput::Dense(x),
            untagged::VectorInput::Multi(x) => VectorInput::Multi(x),
            untagged::VectorInput::Sparse(x) => VectorInput::Sparse(x),
            untagged::VectorInput::Id(x) => VectorInput::Id(x),
        })
    }

    /// The direct reading of arrays gives what serde's untagged derive gives (values, f32
    /// rounding of every number representation, and the error), on every shape of vector.
    #[test]
    fn vector_input_reads_as_the_untagged_derive() {
        let big = u64::MAX;
        let cases = vec![
            json!([]),
            json!([1, -2, 3.5, 0.1, 1e39, -1e-50, big, i64::MIN, 16777217]),
            json!([[1, 2.5], [], [3]]),
            json!([[]]),
            json!([[1, "x"]]),
            json!([1, [2]]),
            json!([[1], 2]),
            json!([1, null]),
            json!([[1, 2], [0.5, 0.25]]),
            json!({"indices": [3, 1], "values": [0.5, 1]}),
            json!({"indices": [3], "values": [0.5], "x": 1}),
            json!(7),
            json!(-7),
            json!("550e8400-e29b-41d4-a716-446655440000"),
            json!("nope"),
            json!(true),
            json!(null),
        ];
        for v in cases.clone() {
            let ours = VectorInput::from_value(v.clone()).map_err(|e| e.to_string());
            let theirs = untagged(&v);
            // NaN-free cases: equality of the f32 bit patterns through PartialEq
            assert_eq!(ours, theirs, "{v}");
            let via_serde = serde_json::from_value::<VectorInput>(v.clone()).map_err(|e| e.to_string());
            assert_eq!(via_serde, theirs, "{v}");
        }
        // A query request's `query` reads arrays element by element: the same vectors, and
        // where an array is no vector, the same error (field and message) as any other value
        // that is none.
        let not_a_vector = parse::<QueryRequest>(&json!({"query": true})).unwrap_err().to_string();
        assert!(not_a_vector.contains("untagged enum VectorInput"), "{not_a_vector}");
        let more = [json!([[1, 2], 3, [4]]), json!([[[1]]]), json!([{"a": 1}]), json!([[1, {}]])];
        // (`"query": null` is no query at all)
        for v in cases.iter().chain(&more).filter(|v| !v.is_null()) {
            let by_value = query_from_value::<serde_json::Error>(v.clone()).map_err(|e| e.to_string());
            match (parse::<QueryRequest>(&json!({ "query": v })), by_value) {
                (Ok(q), Ok(expected)) => assert_eq!(q.query, Some(expected), "{v}"),
                (Err(e), Err(_)) if v.is_array() => assert_eq!(e.to_string(), not_a_vector, "{v}"),
                (Err(e), Err(m)) => assert!(e.to_string().contains(&m), "{v}: {e} / {m}"),
                (got, expected) => panic!("{v}: {:?} vs {expected:?}", got.map(|q| q.query)),
            }
        }
        let e = VectorInput::from_value(json!(true)).unwrap_err().to_string();
        assert!(e.contains("untagged enum VectorInput"), "{e}");
        // the search request's legacy vector field
        for v in [json!([1, 2.5, big]), json!({"name": "a", "vector": [1, 2]}), json!([1, "x"]), json!({"name": "a"})] {
            let ours = serde_json::from_value::<NamedVectorStruct>(v.clone()).map_err(|e| e.to_string());
            let theirs = serde_json::from_value::<untagged::NamedVectorStruct>(v.clone())
                .map(|x| match x {
                    untagged::NamedVectorStruct::Default(x) => NamedVectorStruct::Default(x),
                    untagged::NamedVectorStruct::Named(x) => NamedVectorStruct::Named(x),
                })
                .map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{v}");
        }
    }
}
