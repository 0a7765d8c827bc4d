//! Core value types shared by every layer: point ids, vectors, payloads.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// JSON payload of a point (a JSON object; key order is kept).
pub type Payload = serde_json::Map<String, serde_json::Value>;

/// Internal row number inside one segment.
pub type PointOffset = u32;

/// Operation number / point version.
pub type SeqNumber = u64;

/// A user point id: unsigned 64-bit integer or UUID.
///
/// Ordering follows Qdrant: every numeric id sorts before every UUID; UUIDs sort by their
/// 128-bit big-endian value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointId {
    Num(u64),
    Uuid(uuid::Uuid),
}

impl PointId {
    /// Parse the JSON form: a non-negative integer or a UUID string.
    pub fn from_json(v: &serde_json::Value) -> Result<PointId, String> {
        match v {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(PointId::Num)
                .ok_or_else(|| format!("point id must be an unsigned integer or a UUID, got {n}")),
            serde_json::Value::String(s) => uuid::Uuid::parse_str(s)
                .map(PointId::Uuid)
                .map_err(|_| format!("point id must be an unsigned integer or a UUID, got \"{s}\"")),
            other => Err(format!("point id must be an unsigned integer or a UUID, got {other}")),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PointId::Num(n) => serde_json::Value::from(*n),
            PointId::Uuid(u) => serde_json::Value::String(u.hyphenated().to_string()),
        }
    }
}

impl Ord for PointId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PointId::Num(a), PointId::Num(b)) => a.cmp(b),
            (PointId::Num(_), PointId::Uuid(_)) => Ordering::Less,
            (PointId::Uuid(_), PointId::Num(_)) => Ordering::Greater,
            (PointId::Uuid(a), PointId::Uuid(b)) => a.as_u128().cmp(&b.as_u128()),
        }
    }
}

impl PartialOrd for PointId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "{}", u.hyphenated()),
        }
    }
}

impl From<u64> for PointId {
    fn from(v: u64) -> Self {
        PointId::Num(v)
    }
}

impl Serialize for PointId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PointId::Num(n) => s.serialize_u64(*n),
            PointId::Uuid(u) => s.serialize_str(&u.hyphenated().to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PointId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer or a UUID string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PointId, E> {
                Ok(PointId::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PointId, E> {
                u64::try_from(v).map(PointId::Num).map_err(|_| E::custom(format!("point id must be unsigned, got {v}")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PointId, E> {
                uuid::Uuid::parse_str(v)
                    .map(PointId::Uuid)
                    .map_err(|_| E::custom(format!("point id `{v}` is not a UUID")))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<PointId, E> {
                uuid::Uuid::from_slice(v).map(PointId::Uuid).map_err(|_| E::custom("UUID bytes must be 16 long"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A sparse vector: sorted unique indices with their weights.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    /// Sort by index (weights permuted alongside), as Qdrant stores them.
    pub fn sorted(mut self) -> SparseVector {
        if self.indices.windows(2).all(|w| w[0] < w[1]) {
            return self;
        }
        let mut pairs: Vec<(u32, f32)> = self.indices.iter().copied().zip(self.values.iter().copied()).collect();
        pairs.sort_by_key(|p| p.0);
        self.indices = pairs.iter().map(|p| p.0).collect();
        self.values = pairs.iter().map(|p| p.1).collect();
        self
    }
}

/// One stored vector value of a point, as returned with `with_vector`.
#[derive(Debug, Clone, PartialEq)]
pub enum VectorValue {
    Dense(Vec<f32>),
    Sparse(SparseVector),
    Multi(Vec<Vec<f32>>),
}

/// An `f32` as a JSON number printed the way Qdrant prints it: the shortest decimal that
/// round-trips the `f32` (e.g. `0.57921398`), not the digits of its widened `f64`.
pub fn f32_json(x: f32) -> serde_json::Value {
    let mut buf = ryu::Buffer::new();
    let short = if x.is_finite() { buf.format_finite(x) } else { return serde_json::Value::Null };
    short
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

fn f32s_json(v: &[f32]) -> serde_json::Value {
    serde_json::Value::Array(v.iter().map(|x| f32_json(*x)).collect())
}

impl VectorValue {
    /// The vector with every `f32` widened exactly to `f64` — what Qdrant's WAL records hold
    /// (each float is then written in its shortest lossless CBOR width).
    pub fn to_json_exact(&self) -> serde_json::Value {
        match self {
            VectorValue::Dense(v) => serde_json::json!(v),
            VectorValue::Sparse(s) => serde_json::json!({"indices": s.indices, "values": s.values}),
            VectorValue::Multi(m) => serde_json::json!(m),
        }
    }

    /// The vector as the REST API prints it (see [`f32_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            VectorValue::Dense(v) => f32s_json(v),
            VectorValue::Sparse(s) => serde_json::json!({"indices": s.indices, "values": f32s_json(&s.values)}),
            VectorValue::Multi(m) => serde_json::Value::Array(m.iter().map(|v| f32s_json(v)).collect()),
        }
    }
}

/// Vector element type on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datatype {
    #[default]
    Float32,
    Float16,
    Uint8,
    Turbo4,
    Turbo8,
    Turbo16,
}

impl Datatype {
    /// Bytes per element; `None` for the TurboQuant types (not supported).
    pub fn size(self) -> Option<usize> {
        match self {
            Datatype::Float32 => Some(4),
            Datatype::Float16 => Some(2),
            Datatype::Uint8 => Some(1),
            _ => None,
        }
    }
}

/// Vector distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Distance {
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

/// A stored dense row as raw little-endian bytes of its datatype (zero-copy view for scoring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef<'a> {
    F32(&'a [u8]),
    F16(&'a [u8]),
    U8(&'a [u8]),
}

impl<'a> RowRef<'a> {
    /// View `bytes` as a row of `datatype` (the TurboQuant types are never stored rows here).
    pub fn new(datatype: Datatype, bytes: &'a [u8]) -> RowRef<'a> {
        match datatype {
            Datatype::Float16 => RowRef::F16(bytes),
            Datatype::Uint8 => RowRef::U8(bytes),
            _ => RowRef::F32(bytes),
        }
    }

    /// Number of elements.
    pub fn dim(&self) -> usize {
        match self {
            RowRef::F32(b) => b.len() / 4,
            RowRef::F16(b) => b.len() / 2,
            RowRef::U8(b) => b.len(),
        }
    }

    /// The row widened to `f32` (f16 widened, u8 as its integer value).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            RowRef::F32(b) => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            RowRef::F16(b) => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            RowRef::U8(b) => b.iter().map(|&x| f32::from(x)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_printed_as_qdrant_prints_it() {
        for (x, text) in
            [(0.1f32, "0.1"), (3.363954, "3.363954"), (0.579_214, "0.579214"), (-2.0, "-2.0"), (1e-8, "1e-8")]
        {
            assert_eq!(f32_json(x).to_string(), text, "{x}");
        }
        assert_eq!(f32_json(f32::NAN), serde_json::Value::Null);
        assert_eq!(VectorValue::Dense(vec![0.1, 0.2]).to_json().to_string(), "[0.1,0.2]");
    }

    #[test]
    fn point_ids_order_numbers_before_uuids() {
        let u = |s: &str| PointId::Uuid(uuid::Uuid::parse_str(s).unwrap());
        let mut ids = vec![
            u("ff000000-0000-0000-0000-000000000001"),
            PointId::Num(5),
            u("00000000-0000-0000-0000-000000000002"),
            PointId::Num(u64::MAX),
        ];
        ids.sort();
        assert_eq!(
            ids,
            vec![
                PointId::Num(5),
                PointId::Num(u64::MAX),
                u("00000000-0000-0000-0000-000000000002"),
                u("ff000000-0000-0000-0000-000000000001")
            ]
        );
    }
}
