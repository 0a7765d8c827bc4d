//! Mutable payload field indexes of an appendable segment (spec §8.1–8.3, §7.1, §7.5, §1.10):
//! creates, updates, flushes and deletes the files Qdrant Edge 0.9.0 keeps under
//! `<segment>/payload_index/` for one indexed field, and edits `payload_index/config.json`.
//!
//! **Directory names** (§8.2): `<name>-<suffix>` with `name` = the 24 lower-case base32hex
//! characters (`0-9a-v`, no padding) of the first 15 bytes of SHA-256 of the path's canonical
//! text, `-`, then the path text with every char outside `[A-Za-z0-9_-]` mapped to `_`, ASCII
//! lower-cased, runs of `_` collapsed, cut so that `name` is at most 33 chars.
//!
//! **Sub-indexes per schema**, in Qdrant's order (also the order of `indexed_types`):
//!
//! | Schema | Sub-indexes (`index_type`, directory suffix) |
//! |---|---|
//! | keyword | `keyword_index` `-map`, `null_index` `-null` |
//! | integer | `int_map_index` `-map` (unless `"lookup":false`), `int_index` `-numeric` (unless `"range":false`), `null_index` |
//! | float | `float_index` `-numeric`, `null_index` |
//! | datetime | `datetime_index` `-numeric`, `null_index` |
//! | uuid | `uuid_map_index` `-map`, `null_index` |
//! | geo | `geo_index` `-map`, `null_index` |
//! | text | `full_text_index` `-text`, `null_index` |
//! | bool | `bool_index` `-bool`, `null_index` |
//!
//! Gridstore sub-indexes are `{"mutability":"mutable","storage_type":"gridstore"}`; bool and null
//! are `{"mutability":"mutable","storage_type":{"mmap":{"is_on_disk":false}}}`.
//!
//! **Files.** Gridstore stores (§7.2, uncompressed, 8192 blocks per region) keyed by internal id:
//!
//! | Store | `page_size_bytes` | `block_size_bytes` | Blob of one point (all LE) |
//! |---|---|---|---|
//! | keyword `-map` | 4194304 | 16 | CBOR definite array of text strings (`83 61 61 61 62 61 61` = `["a","b","a"]`) |
//! | uuid `-map` | 4194304 | 16 | `u128` per value = `Uuid::as_u128()` LE (bytes reversed from the textual order) |
//! | geo `-map` | 4194304 | 16 | `f64 lon`, `f64 lat` per value (16 bytes) |
//! | integer `-map` / `-numeric`, datetime `-numeric` | 2097152 | 8 | `i64` per value (datetime: µs since the epoch, UTC) |
//! | float `-numeric` | 2097152 | 8 | `f64` per value |
//! | text `-text` | 33554432 | 128 | CBOR map `{"tokens":[…]}` (+ `"doc_len":n` with BM25 scoring) |
//!
//! Dynamic flags directories (§1.10; `status.dat` = `u64 len`, `u64 0`; `flags_a.dat` bits):
//! `-bool/trues`, `-bool/falses` (point has a `true` / `false` value) and `-null/has_values`,
//! `-null/is_null` (point's field holds a non-null value or a non-empty array / holds `null` or
//! an array with a `null` element). Setting or clearing any point's flag grows `len` to cover it.
//!
//! **Values** (as Qdrant extracts them): the field's JSON path is looked up in the payload
//! (`a.b` does not descend into arrays, `a[].b` does); every reached value that is an array
//! contributes its elements (one level), any other value itself; elements of the wrong type are
//! skipped. keyword: strings; integer: integers and floats with an exact `i64` value; float: any
//! number; datetime: strings Qdrant's datetime parser accepts; uuid: strings `uuid` parses;
//! geo: objects with numeric `lon` in ±180 and `lat` in ±90; bool: booleans; text: strings.
//! Duplicates and the order of values are kept. A point whose values are all skipped has no
//! blob (text: strings that yield no tokens still store `{"tokens":[]}`).
//! Text tokens: each string tokenized ([`crate::query::text`]); without phrase matching and
//! scoring the distinct tokens sorted by bytes; with phrase matching the tokens in order with a
//! `"\u{0}"` token between the strings of a multi-string value; with scoring (`true` or
//! `{"type":"bm25"}`) the tokens in order and `doc_len` = their count (boundaries excluded).
//! A document without tokens stores none (and `doc_len` 0).
//!
//! **Updates** follow Qdrant's `update_index`: a point whose path reaches nothing is removed
//! from every sub-index (blobs deleted, both flags of bool and null cleared); otherwise every
//! sub-index is re-set (blob replaced or deleted; flags set to the new state). Deleting a point
//! clears it the same way. `flush` writes the sub-indexes in order (each Gridstore with its own
//! journal protocol, each flags directory bits then status), as Qdrant's field flushers run
//! before the payload storage's.
//!
//! Not supported (refused with `Unsupported`): per-element (`nested`) indexes, text tokenizers,
//! stemmers, language stopwords and ASCII folding that [`crate::query::text`] does not
//! reproduce, and opening indexes of an optimized (immutable) segment.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, FormatError, StorageError, StorageErrorKind};
use crate::format::gridstore::{read_payload, Compression, Gridstore, CONFIG_FILE as GRIDSTORE_CONFIG};
use crate::format::gridstore_write::{GridstoreConfig, GridstoreWriter};
use crate::format::id_tracker::IdTracker;
use crate::format::names;
use crate::format::payload_index::{
    FullPayloadIndexType, IndexMutability, IndexStorageType, MmapOptions, PayloadIndexConfig, PayloadIndexType,
};
use crate::format::segment_write::{write_payload_index_config, FlagsWriter};
use crate::query::filter::parse_datetime;
use crate::query::json_path::JsonPath;
use crate::query::text::{TextKind, TextParams};
use crate::storage::{join, EntryKind, Storage};
use crate::types::Payload;

type Result<T> = std::result::Result<T, Error>;

/// Directory suffixes of the sub-indexes.
pub const SUFFIXES: [&str; 5] = ["map", "numeric", "text", "bool", "null"];
pub const TRUES_DIR: &str = "trues";
pub const FALSES_DIR: &str = "falses";
pub const HAS_VALUES_DIR: &str = "has_values";
pub const IS_NULL_DIR: &str = "is_null";
/// Qdrant's token between the strings of a multi-string text value (phrase matching).
pub const ARRAY_BOUNDARY_TOKEN: &str = "\u{0}";

const NAME_MAX: usize = 33;
const HASH_BYTES: usize = 15;
const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
const REGION_BLOCKS: u64 = 8192;
const REGIONS_PER_PAGE: u64 = 32;

// ---- names ------------------------------------------------------------------------------------

/// Canonical text of a field path (Qdrant's `JsonPath` display: keys quoted only when needed);
/// a string that is not a valid path is used as it is.
fn canonical_path(path: &str) -> String {
    JsonPath::parse(path).map(|p| p.to_string()).unwrap_or_else(|| path.to_string())
}

fn base32hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32HEX[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32HEX[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The base name of `path`'s index directories (§8.2), e.g. `color` →
/// `egk4r7ebpg4p5355qvb1gsjg-color`; the sub-indexes live in `<name>-map`, `<name>-null`, ….
pub fn field_dir_name(path: &str) -> String {
    let text = canonical_path(path);
    let digest = Sha256::digest(text.as_bytes());
    let mut name = base32hex_lower(&digest[..HASH_BYTES]);
    name.push('-');
    let mut last_underscore = false;
    for c in text.chars() {
        if name.len() >= NAME_MAX {
            break;
        }
        let m = if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '_' };
        if m == '_' && last_underscore {
            continue;
        }
        last_underscore = m == '_';
        name.push(m);
    }
    name
}

/// `<segment_dir>/payload_index`.
pub fn payload_index_dir(segment_dir: &str) -> String {
    join(segment_dir, names::PAYLOAD_INDEX_DIR)
}

/// `<segment_dir>/payload_index/<field dir name>-<suffix>`.
pub fn sub_index_dir(segment_dir: &str, field: &str, suffix: &str) -> String {
    join(&payload_index_dir(segment_dir), &format!("{}-{suffix}", field_dir_name(field)))
}

// ---- schema -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Keyword,
    IntMap,
    Int,
    Float,
    Datetime,
    Uuid,
    Geo,
    Text,
    Bool,
    Null,
}

impl Kind {
    pub(crate) fn index_type(self) -> PayloadIndexType {
        match self {
            Kind::Keyword => PayloadIndexType::KeywordIndex,
            Kind::IntMap => PayloadIndexType::IntMapIndex,
            Kind::Int => PayloadIndexType::IntIndex,
            Kind::Float => PayloadIndexType::FloatIndex,
            Kind::Datetime => PayloadIndexType::DatetimeIndex,
            Kind::Uuid => PayloadIndexType::UuidMapIndex,
            Kind::Geo => PayloadIndexType::GeoIndex,
            Kind::Text => PayloadIndexType::FullTextIndex,
            Kind::Bool => PayloadIndexType::BoolIndex,
            Kind::Null => PayloadIndexType::NullIndex,
        }
    }

    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Kind::Keyword | Kind::IntMap | Kind::Uuid | Kind::Geo => "map",
            Kind::Int | Kind::Float | Kind::Datetime => "numeric",
            Kind::Text => "text",
            Kind::Bool => "bool",
            Kind::Null => "null",
        }
    }

    /// Geometry of the Gridstore (None for the flags-based kinds), §7.1.
    fn gridstore(self) -> Option<GridstoreConfig> {
        let block = match self {
            Kind::Keyword | Kind::Uuid | Kind::Geo => 16,
            Kind::IntMap | Kind::Int | Kind::Float | Kind::Datetime => 8,
            Kind::Text => {
                return Some(GridstoreConfig { compression: Compression::None, ..GridstoreConfig::payload() })
            }
            Kind::Bool | Kind::Null => return None,
        };
        Some(GridstoreConfig {
            page_size_bytes: block * REGION_BLOCKS * REGIONS_PER_PAGE,
            block_size_bytes: block,
            region_size_blocks: REGION_BLOCKS,
            compression: Compression::None,
        })
    }

    fn full_type(self) -> FullPayloadIndexType {
        let storage_type = match self {
            Kind::Bool | Kind::Null => IndexStorageType::Mmap(MmapOptions { is_on_disk: false }),
            _ => IndexStorageType::Gridstore,
        };
        FullPayloadIndexType { index_type: self.index_type(), mutability: IndexMutability::Mutable, storage_type }
    }
}

/// Text settings that change the stored document.
#[derive(Debug, Clone)]
pub(crate) struct TextSpec {
    pub(crate) params: TextParams,
    pub(crate) scoring: bool,
}

/// A parsed field schema: the sub-indexes it creates (null last) and the text settings.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub(crate) type_name: String,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) text: Option<TextSpec>,
}

pub(crate) fn parse_schema(field: &str, schema: &Value) -> Result<Schema> {
    let bad = |m: String| Error::invalid_field("schema", format!("field `{field}`: {m}"));
    let (type_name, params) = match schema {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some(t) => (t, Some(o)),
            None => return Err(bad("a schema object needs a string `type`".into())),
        },
        _ => return Err(bad("schema must be a type name or an object with `type`".into())),
    };
    let opt_bool = |key: &str| -> Result<Option<bool>> {
        match params.and_then(|o| o.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(bad(format!("`{key}` must be a boolean, got {other}"))),
        }
    };
    let where_ = || format!("payload index of `{field}`");
    if params.and_then(|o| o.get("nested")).is_some_and(|v| !v.is_null()) {
        return Err(FormatError::unsupported(where_(), "per-element (`nested`) indexes cannot be written").into());
    }
    let mut text = None;
    let mut kinds = match type_name {
        "keyword" => vec![Kind::Keyword],
        "integer" => {
            let mut k = Vec::new();
            if opt_bool("lookup")?.unwrap_or(true) {
                k.push(Kind::IntMap);
            }
            if opt_bool("range")?.unwrap_or(true) {
                k.push(Kind::Int);
            }
            k
        }
        "float" => vec![Kind::Float],
        "datetime" => vec![Kind::Datetime],
        "uuid" => vec![Kind::Uuid],
        "geo" => vec![Kind::Geo],
        "bool" => vec![Kind::Bool],
        "text" => {
            let params = TextParams::from_schema(schema);
            if !params.unsupported.is_empty() {
                return Err(FormatError::unsupported(
                    where_(),
                    format!("text index settings not reproduced: {}", params.unsupported.join(", ")),
                )
                .into());
            }
            let scoring = text_scoring(schema).map_err(bad)?;
            text = Some(TextSpec { params, scoring });
            vec![Kind::Text]
        }
        other => return Err(bad(format!("unknown schema type `{other}`"))),
    };
    kinds.push(Kind::Null);
    Ok(Schema { type_name: type_name.to_string(), kinds, text })
}

/// Whether a `text` schema asks for BM25 scoring: `"scoring": true` or `{"type": "bm25"}`
/// (`false`, `null` or absent: no scoring).
pub(crate) fn text_scoring(schema: &Value) -> std::result::Result<bool, String> {
    match params_get(params_obj(schema), "scoring") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(false),
        Some(Value::Bool(true)) => Ok(true),
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("bm25") => Ok(true),
        Some(other) => Err(format!("unknown text `scoring` {other}")),
    }
}

fn params_obj(schema: &Value) -> Option<&serde_json::Map<String, Value>> {
    schema.as_object()
}

fn params_get<'a>(o: Option<&'a serde_json::Map<String, Value>>, key: &str) -> Option<&'a Value> {
    o.and_then(|o| o.get(key))
}

/// The `indexed_types` entries an appendable segment records for `schema`, in Qdrant's order.
pub fn mutable_index_types(field: &str, schema: &Value) -> Result<Vec<FullPayloadIndexType>> {
    Ok(parse_schema(field, schema)?.kinds.into_iter().map(Kind::full_type).collect())
}

// ---- value extraction -------------------------------------------------------------------------

/// Every value `f` extracts from `values`, arrays flattened one level.
pub(crate) fn flatten<T>(values: &[&Value], f: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    let mut out = Vec::new();
    for v in values {
        match v {
            Value::Array(items) => out.extend(items.iter().filter_map(&f)),
            other => out.extend(f(other)),
        }
    }
    out
}

/// Qdrant's integer reading: an `i64`, or a float whose `as i64` conversion round-trips.
pub(crate) fn value_to_integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?;
        let i = f as i64;
        (i as f64 == f).then_some(i)
    })
}

pub(crate) fn geo_value(v: &Value) -> Option<(f64, f64)> {
    let o = v.as_object()?;
    let lon = o.get("lon")?.as_f64()?;
    let lat = o.get("lat")?.as_f64()?;
    ((-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)).then_some((lon, lat))
}

pub(crate) fn uuid_value(v: &Value) -> Option<u128> {
    uuid::Uuid::parse_str(v.as_str()?).ok().map(|u| u.as_u128())
}

/// Whether the values hold something non-null / something null (Qdrant's null index).
pub(crate) fn classify_null(values: &[&Value]) -> (bool, bool) {
    let (mut has_values, mut is_null) = (false, false);
    for v in values {
        match v {
            Value::Null => is_null = true,
            Value::Array(a) => {
                is_null |= a.iter().any(Value::is_null);
                has_values |= !a.is_empty();
            }
            _ => has_values = true,
        }
    }
    (has_values, is_null)
}

/// The stored text document of `strings` (see the module docs).
fn text_blob(spec: &TextSpec, strings: &[String]) -> Vec<u8> {
    let phrase = spec.params.phrase_matching;
    let mut tokens: Vec<String> = Vec::new();
    let mut boundaries = 0usize;
    for (i, s) in strings.iter().enumerate() {
        if phrase && strings.len() > 1 && i > 0 {
            tokens.push(ARRAY_BOUNDARY_TOKEN.to_string());
            boundaries += 1;
        }
        tokens.extend(spec.params.tokenize(TextKind::Document, s));
    }
    let mut length = tokens.len().saturating_sub(boundaries);
    if length == 0 {
        tokens.clear();
        length = 0;
    }
    if !phrase && !spec.scoring {
        tokens.sort_unstable();
        tokens.dedup();
    }
    let mut doc = serde_json::Map::new();
    doc.insert("tokens".into(), Value::Array(tokens.into_iter().map(Value::String).collect()));
    if spec.scoring {
        doc.insert("doc_len".into(), Value::from(u32::try_from(length).unwrap_or(u32::MAX)));
    }
    crate::format::cbor::encode_json(&Value::Object(doc))
}

/// The blob one Gridstore sub-index stores for `values` (`None` = no value: delete).
fn gridstore_blob(kind: Kind, text: Option<&TextSpec>, values: &[&Value]) -> Option<Vec<u8>> {
    fn nonempty(b: Vec<u8>, n: usize) -> Option<Vec<u8>> {
        (n > 0).then_some(b)
    }
    match kind {
        Kind::Keyword => {
            let v = flatten(values, |x| x.as_str().map(str::to_string));
            let n = v.len();
            nonempty(crate::format::cbor::encode_json(&Value::Array(v.into_iter().map(Value::String).collect())), n)
        }
        Kind::IntMap | Kind::Int => {
            let v = flatten(values, value_to_integer);
            nonempty(v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len())
        }
        Kind::Datetime => {
            let v = flatten(values, |x| x.as_str().and_then(parse_datetime));
            nonempty(v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len())
        }
        Kind::Float => {
            let v = flatten(values, Value::as_f64);
            nonempty(v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len())
        }
        Kind::Uuid => {
            let v = flatten(values, uuid_value);
            nonempty(v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len())
        }
        Kind::Geo => {
            let v = flatten(values, geo_value);
            nonempty(
                v.iter().flat_map(|(lon, lat)| lon.to_le_bytes().into_iter().chain(lat.to_le_bytes())).collect(),
                v.len(),
            )
        }
        Kind::Text => {
            let strings = flatten(values, |x| x.as_str().map(str::to_string));
            if strings.is_empty() {
                return None;
            }
            text.map(|spec| text_blob(spec, &strings))
        }
        Kind::Bool | Kind::Null => None,
    }
}

// ---- the writer -------------------------------------------------------------------------------

#[derive(Debug)]
enum Store<'s> {
    Grid(GridstoreWriter),
    Flags(FlagsWriter<'s>, FlagsWriter<'s>),
}

#[derive(Debug)]
struct SubIndex<'s> {
    kind: Kind,
    dir: String,
    store: Store<'s>,
}

/// The new state of one sub-index for one point.
enum Change {
    Blob(Option<Vec<u8>>),
    Flags(bool, bool),
}

/// All mutable sub-indexes of one field in one appendable segment. See the module docs.
///
/// After a storage error every call fails (sticky), so nothing half-applied is flushed.
#[derive(Debug)]
pub struct FieldIndexWriter<'s> {
    storage: &'s dyn Storage,
    field: String,
    path: JsonPath,
    schema: Value,
    type_name: String,
    text: Option<TextSpec>,
    subs: Vec<SubIndex<'s>>,
    failed: Option<String>,
}

impl<'s> FieldIndexWriter<'s> {
    fn parse_field(field: &str) -> Result<JsonPath> {
        JsonPath::parse(field)
            .ok_or_else(|| Error::invalid_field("field", format!("`{field}` is not a valid payload path")))
    }

    /// Create empty index files for `field` in the appendable segment at `segment_dir`, as
    /// Qdrant creates them before building: first every leftover directory of the field is
    /// removed (all five suffixes), then each sub-index is created in order (Gridstore:
    /// `bitmask.dat`, `gaps.dat`, `tracker.dat`, `page_0.dat`, `config.json`; flags:
    /// `status.dat`, `flags_a.dat`). `payload_index/config.json` is not touched: record
    /// [`indexed_types`](Self::indexed_types) with [`config_set_field`] once the index is built
    /// and flushed.
    pub fn create(storage: &'s dyn Storage, segment_dir: &str, field: &str, schema: &Value) -> Result<Self> {
        let path = Self::parse_field(field)?;
        let parsed = parse_schema(field, schema)?;
        delete_field_index(storage, segment_dir, field)?;
        storage.create_dir_all(&payload_index_dir(segment_dir))?;
        let mut subs = Vec::with_capacity(parsed.kinds.len());
        for &kind in &parsed.kinds {
            let dir = sub_index_dir(segment_dir, field, kind.suffix());
            let store = match kind.gridstore() {
                Some(cfg) => Store::Grid(GridstoreWriter::create(storage, &dir, cfg)?),
                None => {
                    storage.create_dir_all(&dir)?;
                    let (a, b) = flag_dirs(kind);
                    Store::Flags(
                        FlagsWriter::create(storage, &join(&dir, a))?,
                        FlagsWriter::create(storage, &join(&dir, b))?,
                    )
                }
            };
            subs.push(SubIndex { kind, dir, store });
        }
        storage.sync_dir(&payload_index_dir(segment_dir))?;
        Ok(Self::assemble(storage, field, path, schema, parsed, subs))
    }

    /// Open the existing index files of `field` (written by Qdrant or by this writer). Every
    /// sub-index the schema implies must exist (a Gridstore's `config.json` with the expected
    /// geometry; the bool / null flags directories), else a `Corrupted` error names it — Qdrant
    /// rebuilds such an index from the payloads, which [`build_field_index`] does. If
    /// `payload_index/config.json` records other `indexed_types` for the field (immutable
    /// indexes of an optimized segment, or another schema), the open is refused as
    /// `Unsupported`.
    pub fn open(storage: &'s dyn Storage, segment_dir: &str, field: &str, schema: &Value) -> Result<Self> {
        let path = Self::parse_field(field)?;
        let parsed = parse_schema(field, schema)?;
        // an optimized segment records immutable sub-indexes: their files are another format
        let cfg = PayloadIndexConfig::read(storage, segment_dir)?;
        if let Some(types) = cfg.indexed_types.get(field) {
            let want: Vec<FullPayloadIndexType> = parsed.kinds.iter().map(|k| k.full_type()).collect();
            if *types != want {
                let cfg_path = join(&payload_index_dir(segment_dir), names::PAYLOAD_INDEX_CONFIG_FILE);
                return Err(FormatError::unsupported(
                    cfg_path,
                    format!(
                        "`{field}` is recorded with index types {} but a mutable `{}` index has {}",
                        serde_json::to_string(types).unwrap_or_default(),
                        parsed.type_name,
                        serde_json::to_string(&want).unwrap_or_default()
                    ),
                )
                .into());
            }
        }
        let mut subs = Vec::with_capacity(parsed.kinds.len());
        for &kind in &parsed.kinds {
            let dir = sub_index_dir(segment_dir, field, kind.suffix());
            if storage.entry_kind(&dir)? != Some(EntryKind::Dir) {
                return Err(FormatError::corrupt(
                    &dir,
                    format!("missing {:?} sub-index of `{field}`", kind.index_type()),
                )
                .into());
            }
            let store = match kind.gridstore() {
                Some(want) => {
                    let cfg_path = join(&dir, GRIDSTORE_CONFIG);
                    if !storage.exists(&cfg_path)? {
                        return Err(
                            FormatError::corrupt(&cfg_path, "missing: the index directory holds no Gridstore").into()
                        );
                    }
                    let w = GridstoreWriter::open(storage, &dir)?;
                    let got = *w.config();
                    if got.block_size_bytes != want.block_size_bytes || got.compression != want.compression {
                        return Err(FormatError::corrupt(
                            &cfg_path,
                            format!(
                                "block size {} / compression {:?}, expected {} / {:?} for {:?}",
                                got.block_size_bytes,
                                got.compression,
                                want.block_size_bytes,
                                want.compression,
                                kind.index_type()
                            ),
                        )
                        .into());
                    }
                    Store::Grid(w)
                }
                None => {
                    let (a, b) = flag_dirs(kind);
                    let (da, db) = (join(&dir, a), join(&dir, b));
                    for d in [&da, &db] {
                        if storage.entry_kind(d)? != Some(EntryKind::Dir) {
                            return Err(FormatError::corrupt(d, "missing flags directory").into());
                        }
                    }
                    Store::Flags(FlagsWriter::open(storage, &da)?, FlagsWriter::open(storage, &db)?)
                }
            };
            subs.push(SubIndex { kind, dir, store });
        }
        Ok(Self::assemble(storage, field, path, schema, parsed, subs))
    }

    fn assemble(
        storage: &'s dyn Storage,
        field: &str,
        path: JsonPath,
        schema: &Value,
        parsed: Schema,
        subs: Vec<SubIndex<'s>>,
    ) -> Self {
        FieldIndexWriter {
            storage,
            field: field.to_string(),
            path,
            schema: schema.clone(),
            type_name: parsed.type_name,
            text: parsed.text,
            subs,
            failed: None,
        }
    }

    /// The field path as given.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// The schema as given.
    pub fn schema(&self) -> &Value {
        &self.schema
    }
    /// The schema's type name (`"keyword"`, `"integer"`, …).
    pub fn schema_type(&self) -> &str {
        &self.type_name
    }
    /// Directories of the sub-indexes, in order.
    pub fn dirs(&self) -> Vec<&str> {
        self.subs.iter().map(|s| s.dir.as_str()).collect()
    }

    /// The sub-index types, in Qdrant's order.
    pub fn index_types(&self) -> Vec<FullPayloadIndexType> {
        self.subs.iter().map(|s| s.kind.full_type()).collect()
    }

    /// The `indexed_types[field]` list for `payload_index/config.json`.
    pub fn indexed_types(&self) -> Value {
        serde_json::to_value(self.index_types()).unwrap_or(Value::Null)
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(first) => Err(StorageError::new(
                "write",
                &self.field,
                StorageErrorKind::PreviousIo,
                format!("an earlier error made this field index writer unusable: {first}"),
            )
            .into()),
        }
    }

    fn apply(&mut self, internal: u32, changes: Vec<Change>) -> Result<()> {
        self.check()?;
        let r: Result<()> = (|| {
            for (sub, change) in self.subs.iter_mut().zip(changes) {
                match (&mut sub.store, change) {
                    (Store::Grid(g), Change::Blob(Some(b))) => g.put(internal, &b)?,
                    (Store::Grid(g), Change::Blob(None)) => g.delete(internal)?,
                    (Store::Flags(a, b), Change::Flags(x, y)) => {
                        a.set(u64::from(internal), x)?;
                        b.set(u64::from(internal), y)?;
                    }
                    _ => return Err(Error::Internal(format!("{}: change does not fit the sub-index", sub.dir))),
                }
            }
            Ok(())
        })();
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| e.to_string());
        }
        r
    }

    /// (Re)index internal id `internal` from its full payload, replacing its previous values
    /// (Qdrant's `update_index`: nothing at the path ⇒ [`remove`](Self::remove)).
    pub fn set(&mut self, internal: u32, payload: &Payload) -> Result<()> {
        self.check()?;
        if internal == u32::MAX {
            return Err(Error::invalid("internal id u32::MAX cannot be indexed"));
        }
        let values = self.path.value_get(payload);
        if values.is_empty() {
            return self.remove(internal);
        }
        let changes = self
            .subs
            .iter()
            .map(|s| match s.kind {
                Kind::Bool => {
                    let b = flatten(&values, Value::as_bool);
                    Change::Flags(b.contains(&true), b.contains(&false))
                }
                Kind::Null => {
                    let (has, null) = classify_null(&values);
                    Change::Flags(has, null)
                }
                k => Change::Blob(gridstore_blob(k, self.text.as_ref(), &values)),
            })
            .collect();
        self.apply(internal, changes)
    }

    /// Remove internal id `internal` from every sub-index (point deleted or its field gone):
    /// blobs deleted, bool and null flags cleared (growing their length to cover the id).
    pub fn remove(&mut self, internal: u32) -> Result<()> {
        self.check()?;
        if internal == u32::MAX {
            return Err(Error::invalid("internal id u32::MAX cannot be indexed"));
        }
        let changes = self
            .subs
            .iter()
            .map(|s| match s.store {
                Store::Grid(_) => Change::Blob(None),
                Store::Flags(..) => Change::Flags(false, false),
            })
            .collect();
        self.apply(internal, changes)
    }

    /// Whether a flush has anything to write.
    pub fn is_dirty(&self) -> bool {
        self.subs.iter().any(|s| match &s.store {
            Store::Grid(g) => g.has_pending(),
            Store::Flags(a, b) => a.is_dirty() || b.is_dirty(),
        })
    }

    /// Persist every sub-index, in order.
    pub fn flush(&mut self) -> Result<()> {
        self.check()?;
        let storage = self.storage;
        let r: Result<()> = (|| {
            for sub in &mut self.subs {
                match &mut sub.store {
                    Store::Grid(g) => g.flush(storage)?,
                    Store::Flags(a, b) => {
                        a.flush()?;
                        b.flush()?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| e.to_string());
        }
        r
    }

    /// The stored blob of `internal` in the sub-index of type `index_type` (pending changes
    /// included); `None` for flags-based sub-indexes or no value.
    pub fn blob(&self, index_type: PayloadIndexType, internal: u32) -> Result<Option<Vec<u8>>> {
        match self.subs.iter().find(|s| s.kind.index_type() == index_type).map(|s| &s.store) {
            Some(Store::Grid(g)) => g.get(internal),
            _ => Ok(None),
        }
    }

    /// The two flags of `internal` in the bool (`trues`, `falses`) or null (`has_values`,
    /// `is_null`) sub-index; `None` if the field has no such sub-index.
    pub fn flags(&self, index_type: PayloadIndexType, internal: u32) -> Option<(bool, bool)> {
        match self.subs.iter().find(|s| s.kind.index_type() == index_type).map(|s| &s.store) {
            Some(Store::Flags(a, b)) => Some((a.get(u64::from(internal)), b.get(u64::from(internal)))),
            _ => None,
        }
    }
}

pub(crate) fn flag_dirs(kind: Kind) -> (&'static str, &'static str) {
    if kind == Kind::Bool {
        (TRUES_DIR, FALSES_DIR)
    } else {
        (HAS_VALUES_DIR, IS_NULL_DIR)
    }
}

/// Remove every index directory of `field` in the segment (all five suffixes; absent ones are
/// skipped), as Qdrant's `wipe`. `payload_index/config.json` is not touched — remove the
/// field there first ([`config_remove_field`]) so that a crash in between leaves only
/// orphaned directories, which the next [`FieldIndexWriter::create`] wipes.
pub fn delete_field_index(storage: &dyn Storage, segment_dir: &str, field: &str) -> Result<()> {
    let mut removed = false;
    for suffix in SUFFIXES {
        let dir = sub_index_dir(segment_dir, field, suffix);
        match storage.entry_kind(&dir)? {
            None => {}
            Some(EntryKind::Dir) => {
                storage.remove_dir_all(&dir)?;
                removed = true;
            }
            Some(_) => {
                storage.remove_file(&dir)?;
                removed = true;
            }
        }
    }
    if removed {
        storage.sync_dir(&payload_index_dir(segment_dir))?;
    }
    Ok(())
}

// ---- config.json ------------------------------------------------------------------------------

/// Record `field` in `<segment_dir>/payload_index/config.json` (read, changed, replaced
/// atomically): `indexed_fields[field] = schema` (a new field goes last, an existing one keeps
/// its place) and `indexed_types[field] = types`. Qdrant keeps both maps in hash maps, so its
/// own key order is arbitrary; readers must not depend on it.
pub fn config_set_field(
    storage: &dyn Storage,
    segment_dir: &str,
    field: &str,
    schema: &Value,
    types: &[FullPayloadIndexType],
) -> Result<()> {
    let mut cfg = PayloadIndexConfig::read(storage, segment_dir)?;
    cfg.indexed_fields.insert(field.to_string(), schema.clone());
    if types.is_empty() {
        cfg.indexed_types.remove(field);
    } else {
        cfg.indexed_types.insert(field.to_string(), types.to_vec());
    }
    write_payload_index_config(storage, segment_dir, &cfg)
}

/// Remove `field` from `<segment_dir>/payload_index/config.json` (atomically). Returns whether
/// it was there.
pub fn config_remove_field(storage: &dyn Storage, segment_dir: &str, field: &str) -> Result<bool> {
    let mut cfg = PayloadIndexConfig::read(storage, segment_dir)?;
    let had = cfg.indexed_fields.shift_remove(field).is_some() | cfg.indexed_types.remove(field).is_some();
    if had {
        write_payload_index_config(storage, segment_dir, &cfg)?;
    }
    Ok(had)
}

// ---- whole-index operations -------------------------------------------------------------------

/// Build the index of `field` from `points` (internal id and full payload, ascending ids,
/// live points only), flush it. Files only: the caller records it with [`config_set_field`].
pub fn build_field_index<'s, I>(
    storage: &'s dyn Storage,
    segment_dir: &str,
    field: &str,
    schema: &Value,
    points: I,
) -> Result<FieldIndexWriter<'s>>
where
    I: IntoIterator<Item = (u32, Payload)>,
{
    let mut w = FieldIndexWriter::create(storage, segment_dir, field, schema)?;
    for (internal, payload) in points {
        w.set(internal, &payload)?;
    }
    w.flush()?;
    Ok(w)
}

/// Create the index of `field` on the flushed appendable segment at `segment_dir` as Qdrant's
/// `create_field_index` does: build it from the payload storage (every stored payload of a
/// live point, ascending internal id), flush it, then record it in `payload_index/config.json`.
/// Returns the recorded `indexed_types`.
pub fn create_field_index(
    storage: &dyn Storage,
    segment_dir: &str,
    field: &str,
    schema: &Value,
) -> Result<Vec<FullPayloadIndexType>> {
    parse_schema(field, schema)?;
    let tracker = IdTracker::open(storage, segment_dir, true)?;
    let payloads = Gridstore::open(storage, &join(segment_dir, names::PAYLOAD_STORAGE_DIR))?;
    let mut w = FieldIndexWriter::create(storage, segment_dir, field, schema)?;
    let keys: Vec<u32> = payloads.keys().collect();
    for internal in keys {
        if tracker.external_id(internal).is_none() {
            continue; // deleted point
        }
        let payload = read_payload(&payloads, internal)?;
        w.set(internal, &payload)?;
    }
    w.flush()?;
    let types = w.index_types();
    config_set_field(storage, segment_dir, field, schema, &types)?;
    Ok(types)
}

/// Drop the index of `field` from the segment: config first, then the directories. Returns
/// whether the config listed it.
pub fn drop_field_index(storage: &dyn Storage, segment_dir: &str, field: &str) -> Result<bool> {
    let had = config_remove_field(storage, segment_dir, field)?;
    delete_field_index(storage, segment_dir, field)?;
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::storage::MemoryStorage;
    use serde_json::json;

    fn payload(v: Value) -> Payload {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn dir_names_match_qdrant() {
        for (path, name) in [
            ("n", "3cbb3nqjhegirgvpfrdrgn5a-n"),
            ("k", "g9ac6ad9518fdl9prkrmui0m-k"),
            ("dt", "vrttmpt3mban1862jvb4i1sj-dt"),
            ("color", "egk4r7ebpg4p5355qvb1gsjg-color"),
            ("price", "d0tl67q1ti4a5sq5msjqvpcn-price"),
            ("created", "81nfvcf9omb75hjab662m8f3-created"),
            ("loc", "kvpi706f6cr5ih932uughck7-loc"),
            ("text", "j0mpsflpirqljphjuj8p9nnj-text"),
            ("flag", "g1ugvf5efh5i0kcd9m2mcjr8-flag"),
            ("tags", "iu62v2a16l6fakk33esbbdi8-tags"),
            ("uid", "2uroh9oetj5tobub5kmjrcgm-uid"),
            ("nested.a.b", "lgd85i3ih9gkjiher5ilcmnd-nested_a"),
            // observed in qdrant-edge-py shards made for this module
            ("u", "1fv96njgocgsfihqvhqss38c-u"),
            ("b", "7ohug5g075ckkcs99tim9odh-b"),
            ("t", "sesokjd33897qiuudp1g6fr6-t"),
            ("g", "pk5aj1b18urcbd7v5duvtpeq-g"),
            ("f", "4knh1i1m23lsk6g5jg5qt0il-f"),
        ] {
            assert_eq!(field_dir_name(path), name, "{path}");
        }
        let n = field_dir_name("a..b");
        assert!(n.len() <= 33 && n.ends_with("-a_b"), "{n}");
        assert_eq!(base32hex_lower(&[0xff; 5]), "vvvvvvvv");
        assert_eq!(base32hex_lower(&[0; 5]), "00000000");
        assert_eq!(sub_index_dir("s", "k", "map"), "s/payload_index/g9ac6ad9518fdl9prkrmui0m-k-map");
    }

    #[test]
    fn index_types_per_schema() {
        let t = |s: Value| -> Vec<String> {
            mutable_index_types("f", &s)
                .unwrap()
                .iter()
                .map(|x| serde_json::to_value(x.index_type).unwrap().as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(t(json!("integer")), ["int_map_index", "int_index", "null_index"]);
        assert_eq!(t(json!({"type":"integer","lookup":false})), ["int_index", "null_index"]);
        assert_eq!(t(json!({"type":"integer","range":false})), ["int_map_index", "null_index"]);
        assert_eq!(t(json!("uuid")), ["uuid_map_index", "null_index"]);
        assert_eq!(t(json!("bool")), ["bool_index", "null_index"]);
        assert_eq!(t(json!({"type":"text","tokenizer":"word"})), ["full_text_index", "null_index"]);
        let bad = [json!("integr"), json!(5), json!({"lookup":true}), json!({"type":"integer","lookup":"yes"})];
        for s in bad {
            assert_eq!(mutable_index_types("f", &s).unwrap_err().kind(), ErrorKind::InvalidArgument, "{s}");
        }
        for s in [json!({"type":"keyword","nested":"a"}), json!({"type":"text","tokenizer":"multilingual"})] {
            assert_eq!(mutable_index_types("f", &s).unwrap_err().kind(), ErrorKind::Unsupported, "{s}");
        }
        let types = serde_json::to_string(&mutable_index_types("f", &json!("geo")).unwrap()).unwrap();
        assert_eq!(
            types,
            r#"[{"index_type":"geo_index","mutability":"mutable","storage_type":"gridstore"},{"index_type":"null_index","mutability":"mutable","storage_type":{"mmap":{"is_on_disk":false}}}]"#
        );
    }

    #[test]
    fn blobs_as_qdrant_writes_them() {
        let v = |x: Value| x;
        let blob = |k: Kind, vals: Value| {
            let vals = [&vals];
            gridstore_blob(k, None, &vals)
        };
        // observed bytes (qdrant-edge-py 0.9.0)
        assert_eq!(blob(Kind::Keyword, v(json!(["a", "b", "a"]))).unwrap(), hex("83616161626161"));
        assert_eq!(blob(Kind::Keyword, v(json!("red"))).unwrap(), hex("8163726564"));
        assert_eq!(blob(Kind::Keyword, v(json!(5))), None);
        assert_eq!(blob(Kind::IntMap, v(json!([1, 2.0, 3.5, "x"]))).unwrap(), hex("01000000000000000200000000000000"));
        assert_eq!(blob(Kind::Float, v(json!([2, 3.25]))).unwrap(), hex("00000000000000400000000000000a40"));
        assert_eq!(blob(Kind::Datetime, v(json!("2026-01-01T22:00:00Z"))).unwrap(), hex("0058d0b65a470600"));
        assert_eq!(blob(Kind::Datetime, v(json!(["2020-01-01", "bad"]))).unwrap(), hex("0040fac1089b0500"));
        assert_eq!(
            blob(Kind::Uuid, v(json!("12345678-1234-5678-1234-567812345678"))).unwrap(),
            hex("78563412785634127856341278563412")
        );
        assert_eq!(blob(Kind::Uuid, v(json!(["bad"]))), None);
        assert_eq!(
            blob(Kind::Geo, v(json!({"lon": 10.5, "lat": -3.25}))).unwrap(),
            hex("00000000000025400000000000000ac0")
        );
        assert_eq!(blob(Kind::Geo, v(json!({"lon": 181, "lat": 0}))), None);
        // integers: i64 bounds as Qdrant's `as` conversion decides
        assert_eq!(value_to_integer(&json!(9223372036854775808u64)), Some(i64::MAX));
        assert_eq!(value_to_integer(&json!(18446744073709551615u64)), None);
        assert_eq!(value_to_integer(&json!(-3.0)), Some(-3));
        // text
        let spec = TextSpec { params: TextParams::default(), scoring: false };
        let t = |vals: Value| {
            let vals = [&vals];
            gridstore_blob(Kind::Text, Some(&spec), &vals)
        };
        assert_eq!(t(json!("Hello World hello")).unwrap(), hex("a166746f6b656e73826568656c6c6f65776f726c64"));
        assert_eq!(t(json!(["one two", "three"])).unwrap(), hex("a166746f6b656e7383636f6e656574687265656374776f"));
        assert_eq!(t(json!("!!!")).unwrap(), hex("a166746f6b656e7380"));
        assert_eq!(t(json!([1, 2])), None);
        let phrase = TextSpec { params: TextParams { phrase_matching: true, ..TextParams::default() }, scoring: true };
        let doc = text_blob(&phrase, &["b a".into(), "a".into()]);
        assert_eq!(
            crate::format::cbor::decode_to_json(&doc, "t").unwrap(),
            json!({"tokens":["b","a","\u{0}","a"],"doc_len":3})
        );
        assert_eq!(
            crate::format::cbor::decode_to_json(&text_blob(&phrase, &["!".into(), "?".into()]), "t").unwrap(),
            json!({"tokens":[],"doc_len":0})
        );
        // null classification
        assert_eq!(classify_null(&[&json!(null)]), (false, true));
        assert_eq!(classify_null(&[&json!([null, "x"])]), (true, true));
        assert_eq!(classify_null(&[&json!([])]), (false, false));
        assert_eq!(classify_null(&[&json!({})]), (true, false));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn set_remove_flush_reopen() {
        let st = MemoryStorage::new();
        let mut w = FieldIndexWriter::create(&st, "seg", "b", &json!("bool")).unwrap();
        assert_eq!(w.dirs().len(), 2);
        w.set(0, &payload(json!({"b": [true, false]}))).unwrap();
        w.set(2, &payload(json!({"b": "yes"}))).unwrap();
        w.set(3, &payload(json!({"b": [null]}))).unwrap();
        w.set(4, &payload(json!({"x": 1}))).unwrap();
        assert!(w.is_dirty());
        w.flush().unwrap();
        assert!(!w.is_dirty());
        let mut r = FieldIndexWriter::open(&st, "seg", "b", &json!("bool")).unwrap();
        assert_eq!(r.flags(PayloadIndexType::BoolIndex, 0), Some((true, true)));
        assert_eq!(r.flags(PayloadIndexType::BoolIndex, 2), Some((false, false)));
        assert_eq!(r.flags(PayloadIndexType::NullIndex, 2), Some((true, false)));
        assert_eq!(r.flags(PayloadIndexType::NullIndex, 3), Some((true, true)));
        assert_eq!(r.flags(PayloadIndexType::NullIndex, 4), Some((false, false)));
        // every touched point grows the flag length (status.dat len = 5)
        let status = st.read_all("seg/payload_index/7ohug5g075ckkcs99tim9odh-b-null/has_values/status.dat").unwrap();
        assert_eq!(&status[..8], &5u64.to_le_bytes());
        r.remove(0).unwrap();
        r.flush().unwrap();
        let r = FieldIndexWriter::open(&st, "seg", "b", &json!("bool")).unwrap();
        assert_eq!(r.flags(PayloadIndexType::BoolIndex, 0), Some((false, false)));

        let mut k = FieldIndexWriter::create(&st, "seg", "k", &json!({"type":"keyword","is_tenant":true})).unwrap();
        k.set(1, &payload(json!({"k": ["x", 1, "y"]}))).unwrap();
        k.set(2, &payload(json!({"k": 7}))).unwrap();
        assert_eq!(k.blob(PayloadIndexType::KeywordIndex, 1).unwrap().unwrap(), hex("8261786179"));
        assert_eq!(k.blob(PayloadIndexType::KeywordIndex, 2).unwrap(), None);
        k.flush().unwrap();
        let mut k = FieldIndexWriter::open(&st, "seg", "k", &json!("keyword")).unwrap();
        k.set(1, &payload(json!({"k": null}))).unwrap();
        assert_eq!(k.blob(PayloadIndexType::KeywordIndex, 1).unwrap(), None);
        assert_eq!(k.flags(PayloadIndexType::NullIndex, 1), Some((false, true)));
        // the schema must match the files
        assert_eq!(
            FieldIndexWriter::open(&st, "seg", "k", &json!("integer")).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        assert_eq!(
            FieldIndexWriter::open(&st, "seg", "zz", &json!("keyword")).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        assert_eq!(
            FieldIndexWriter::create(&st, "seg", "a[", &json!("keyword")).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        // indexes recorded as immutable (optimized segment) are not opened
        let imm: Vec<FullPayloadIndexType> = mutable_index_types("k", &json!("keyword"))
            .unwrap()
            .into_iter()
            .map(|t| FullPayloadIndexType { mutability: IndexMutability::Immutable, ..t })
            .collect();
        config_set_field(&st, "seg", "k", &json!("keyword"), &imm).unwrap();
        assert_eq!(
            FieldIndexWriter::open(&st, "seg", "k", &json!("keyword")).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        config_set_field(&st, "seg", "k", &json!("keyword"), &mutable_index_types("k", &json!("keyword")).unwrap())
            .unwrap();
        FieldIndexWriter::open(&st, "seg", "k", &json!("keyword")).unwrap();
        // delete: every directory of the field goes
        delete_field_index(&st, "seg", "k").unwrap();
        let left: Vec<String> = st.list_dir("seg/payload_index").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(left, ["7ohug5g075ckkcs99tim9odh-b-bool", "7ohug5g075ckkcs99tim9odh-b-null", "config.json"]);
    }

    /// A storage failure at any point of a flush makes the writer refuse further calls, and
    /// the files reopen with every point's entries either all old or all new per sub-index.
    #[test]
    fn flush_failure_is_sticky_and_reopens_consistently() {
        use crate::storage::wrap::FaultStorage;
        let old = |i: u32| payload(json!({"k": format!("old{i}"), "t": i}));
        let new = |i: u32| payload(json!({"k": [format!("new{i}"), "x"]}));
        let mut n = 0;
        loop {
            let fs = FaultStorage::new(MemoryStorage::new());
            let mut w = FieldIndexWriter::create(&fs, "seg", "k", &json!("keyword")).unwrap();
            for i in 0..6 {
                w.set(i, &old(i)).unwrap();
            }
            w.flush().unwrap();
            for i in 0..6 {
                match i % 3 {
                    0 => w.set(i, &new(i)).unwrap(),
                    1 => w.remove(i).unwrap(),
                    _ => {}
                }
            }
            w.set(9, &new(9)).unwrap();
            fs.fail_at(fs.ops() + n, n % 2 == 1);
            let r = w.flush();
            if !fs.has_failed() {
                r.unwrap();
                assert!(n > 10, "only {n} mutations in a flush");
                break;
            }
            assert!(r.is_err(), "fault {n} not reported");
            assert_eq!(w.set(0, &old(0)).unwrap_err().kind(), ErrorKind::ShardClosed, "fault {n}");
            assert_eq!(w.flush().unwrap_err().kind(), ErrorKind::ShardClosed);
            let r = FieldIndexWriter::open(fs.inner(), "seg", "k", &json!("keyword")).unwrap();
            let blob = |v: &Payload| {
                let vals = r.path.value_get(v);
                gridstore_blob(Kind::Keyword, None, &vals)
            };
            for i in [0u32, 1, 2, 3, 4, 5, 9] {
                let got = r.blob(PayloadIndexType::KeywordIndex, i).unwrap();
                let before = if i < 6 { blob(&old(i)) } else { None };
                let after = match i % 3 {
                    _ if i == 9 => blob(&new(9)),
                    0 => blob(&new(i)),
                    1 => None,
                    _ => before.clone(),
                };
                assert!(got == before || got == after, "fault {n}: key {i} holds {got:?}");
                let flags = r.flags(PayloadIndexType::NullIndex, i).unwrap();
                let fb = if i < 6 { (true, false) } else { (false, false) };
                let fa = if i % 3 == 1 && i < 6 {
                    (false, false)
                } else if i == 9 {
                    (true, false)
                } else {
                    fb
                };
                assert!(flags == fb || flags == fa, "fault {n}: null flags of {i} are {flags:?}");
            }
            n += 1;
        }
    }

    #[test]
    fn config_edits() {
        let st = MemoryStorage::new();
        let types = mutable_index_types("k", &json!("keyword")).unwrap();
        config_set_field(&st, "s", "k", &json!("keyword"), &types).unwrap();
        config_set_field(&st, "s", "a", &json!({"type":"integer","lookup":false}), &[]).unwrap();
        let cfg = PayloadIndexConfig::read(&st, "s").unwrap();
        assert_eq!(cfg.indexed_fields.keys().collect::<Vec<_>>(), ["k", "a"]);
        assert_eq!(cfg.indexed_types["k"], types);
        assert!(!cfg.indexed_types.contains_key("a"));
        assert!(config_remove_field(&st, "s", "k").unwrap());
        assert!(!config_remove_field(&st, "s", "k").unwrap());
        assert_eq!(
            &st.read_all("s/payload_index/config.json").unwrap()[..],
            br#"{"indexed_fields":{"a":{"type":"integer","lookup":false}}}"#
        );
    }
}
