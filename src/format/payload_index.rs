//! `payload_index/config.json` (spec §8.1): which payload fields a segment indexes.
//!
//! ```json
//! {"indexed_fields":{"k":"keyword","t":{"type":"text","tokenizer":"word"}},
//!  "indexed_types":{"k":[{"index_type":"keyword_index","mutability":"mutable","storage_type":"gridstore"},
//!                        {"index_type":"null_index","mutability":"mutable","storage_type":{"mmap":{"is_on_disk":false}}}]}}
//! ```
//!
//! `indexed_fields` maps a JSON path to a schema: a bare type string or a params object with a
//! `"type"` key (kept verbatim as JSON so a writer can reproduce it). `indexed_types` (absent in
//! configs written before Qdrant 1.15, omitted when empty) lists the sub-indexes per field.
//! The index files themselves are not read here: filters are evaluated on payload JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FormatError};
use crate::format::names;
use crate::format::segment_meta::read_json_opt;
use crate::storage::{join, Storage};

/// The known schema type names.
pub const SCHEMA_TYPES: [&str; 8] = ["keyword", "integer", "float", "geo", "text", "bool", "datetime", "uuid"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadIndexType {
    IntIndex,
    DatetimeIndex,
    IntMapIndex,
    KeywordIndex,
    FloatIndex,
    GeoIndex,
    FullTextIndex,
    BoolIndex,
    UuidIndex,
    UuidMapIndex,
    NullIndex,
}

impl PayloadIndexType {
    /// Suffix of the directory `<field dir>-<suffix>` holding this index's files (§8.2).
    pub fn dir_suffix(self) -> &'static str {
        use PayloadIndexType::*;
        match self {
            KeywordIndex | IntMapIndex | UuidMapIndex | GeoIndex => "map",
            IntIndex | FloatIndex | DatetimeIndex | UuidIndex => "numeric",
            FullTextIndex => "text",
            BoolIndex => "bool",
            NullIndex => "null",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexMutability {
    Mutable,
    Immutable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MmapOptions {
    pub is_on_disk: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexStorageType {
    Gridstore,
    Mmap(MmapOptions),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FullPayloadIndexType {
    pub index_type: PayloadIndexType,
    pub mutability: IndexMutability,
    pub storage_type: IndexStorageType,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PayloadIndexConfig {
    /// Field path → schema (bare type string or params object), in file order.
    #[serde(default)]
    pub indexed_fields: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indexed_types: BTreeMap<String, Vec<FullPayloadIndexType>>,
}

impl PayloadIndexConfig {
    /// Read `<segment_dir>/payload_index/config.json`; a missing file means no index.
    pub fn read<S: Storage + ?Sized>(storage: &S, segment_dir: &str) -> Result<PayloadIndexConfig, Error> {
        let path = join(&join(segment_dir, names::PAYLOAD_INDEX_DIR), names::PAYLOAD_INDEX_CONFIG_FILE);
        let Some(cfg) = read_json_opt::<S, PayloadIndexConfig>(storage, &path)? else {
            return Ok(PayloadIndexConfig::default());
        };
        for (field, schema) in &cfg.indexed_fields {
            match schema_type(schema) {
                Some(t) if SCHEMA_TYPES.contains(&t) => {}
                Some(t) => {
                    return Err(
                        FormatError::corrupt(&path, format!("field `{field}`: unknown schema type `{t}`")).into()
                    )
                }
                None => {
                    return Err(FormatError::corrupt(
                        &path,
                        format!("field `{field}`: schema is neither a type name nor an object with `type`"),
                    )
                    .into())
                }
            }
        }
        Ok(cfg)
    }

    /// The schema type (`"keyword"`, `"text"`, …) of an indexed field path.
    pub fn field_type(&self, path: &str) -> Option<&str> {
        self.indexed_fields.get(path).and_then(schema_type)
    }

    /// The schema's params object, if the field was indexed with options.
    pub fn field_params(&self, path: &str) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.indexed_fields.get(path).and_then(|v| v.as_object())
    }
}

fn schema_type(v: &serde_json::Value) -> Option<&str> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(o) => o.get("type").and_then(|t| t.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::chunked::tests::put;
    use crate::storage::MemoryStorage;

    #[test]
    fn reads_schemas_and_types() {
        let st = MemoryStorage::new();
        assert!(PayloadIndexConfig::read(&st, "s").unwrap().indexed_fields.is_empty());
        let j = r#"{"indexed_fields":{"n":"integer","t":{"type":"text","tokenizer":"word","phrase_matching":true},"nested.a.b":"integer"},"indexed_types":{"n":[{"index_type":"int_map_index","mutability":"immutable","storage_type":{"mmap":{"is_on_disk":false}}},{"index_type":"null_index","mutability":"immutable","storage_type":{"mmap":{"is_on_disk":false}}}],"t":[{"index_type":"full_text_index","mutability":"mutable","storage_type":"gridstore"}]}}"#;
        put(&st, "s/payload_index/config.json", j.as_bytes());
        let c = PayloadIndexConfig::read(&st, "s").unwrap();
        assert_eq!(c.field_type("n"), Some("integer"));
        assert_eq!(c.field_type("t"), Some("text"));
        assert_eq!(c.field_type("nested.a.b"), Some("integer"));
        assert_eq!(c.field_type("x"), None);
        assert_eq!(c.field_params("t").unwrap()["phrase_matching"], true);
        assert_eq!(c.indexed_types["t"][0].storage_type, IndexStorageType::Gridstore);
        assert_eq!(c.indexed_types["n"][0].storage_type, IndexStorageType::Mmap(MmapOptions { is_on_disk: false }));
        // field order of indexed_fields is kept on write
        let out = serde_json::to_string(&c).unwrap();
        assert!(out.starts_with(r#"{"indexed_fields":{"n":"integer","t":{"type":"text","#));
        put(&st, "s/payload_index/config.json", br#"{"indexed_fields":{}}"#);
        assert_eq!(
            serde_json::to_string(&PayloadIndexConfig::read(&st, "s").unwrap()).unwrap(),
            r#"{"indexed_fields":{}}"#
        );
        for bad in [
            r#"{"indexed_fields":{"n":"integr"}}"#,
            r#"{"indexed_fields":{"n":5}}"#,
            r#"{"indexed_fields":{},"indexed_types":{"n":[{"index_type":"magic_index","mutability":"mutable","storage_type":"gridstore"}]}}"#,
            r#"{"indexed_fields":{"#,
        ] {
            put(&st, "s/payload_index/config.json", bad.as_bytes());
            assert_eq!(PayloadIndexConfig::read(&st, "s").unwrap_err().kind(), ErrorKind::Corrupted, "{bad}");
        }
    }
}
