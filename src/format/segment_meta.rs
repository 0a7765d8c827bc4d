//! Segment metadata: `version.info`, `segment.json` (`SegmentState`) and the shard's
//! `edge_config.json` (spec §2.2, §3.2, §3.3).
//!
//! All three are text files, so there is no byte table; what matters is the JSON shape:
//!
//! | File | Content |
//! |---|---|
//! | `<segment>/version.info` | ASCII semver, no newline: `0.6.0` |
//! | `<segment>/segment.json` | `{"initial_version":u64\|null,"version":u64\|null,"config":SegmentConfig}` |
//! | `<shard>/edge_config.json` | `EdgeConfig`, every optional field omitted when unset |
//!
//! The serde types below mirror Qdrant's field names and declaration order, so writing them
//! back produces the same JSON Qdrant writes (maps are `BTreeMap`s, i.e. sorted; Qdrant's own
//! maps have arbitrary order, so any order is valid). Unknown fields are ignored, as Qdrant
//! does; unknown enum variants are errors naming the file and the JSON position.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FormatError};
use crate::format::names;
use crate::storage::{join, Memory, Storage, StorageErrorKind};
use crate::types::{Datatype, Distance};

/// The segment format version this crate reads and writes.
pub const SUPPORTED_MAJOR: u64 = 0;
pub const SUPPORTED_MINOR: u64 = 6;

/// Read `<segment_dir>/version.info` (trimmed of surrounding whitespace).
pub fn read_version_info<S: Storage + ?Sized>(storage: &S, segment_dir: &str) -> Result<String, Error> {
    let path = join(segment_dir, names::VERSION_FILE);
    let bytes = storage.read_all(&path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| FormatError::corrupt(&path, "version.info is not UTF-8 text"))?;
    Ok(text.trim().to_string())
}

/// Accept `0.6.x`; refuse older (pre-0.6 layouts need migrations we do not implement) and newer
/// versions as unsupported, and anything that is not `major.minor.patch` as corrupt.
pub fn check_version(v: &str, file: &str) -> Result<(), FormatError> {
    let parts: Vec<&str> = v.split('.').collect();
    let nums: Option<Vec<u64>> = if parts.len() == 3 {
        // a pre-release/build suffix on the patch (`0.6.0-dev`) is tolerated
        let patch = parts[2].split(['-', '+']).next().unwrap_or("");
        [parts[0], parts[1], patch].iter().map(|p| p.parse::<u64>().ok()).collect()
    } else {
        None
    };
    let Some(nums) = nums else {
        return Err(FormatError::corrupt(file, format!("segment version `{v}` is not a `major.minor.patch` version")));
    };
    let (major, minor) = (nums[0], nums[1]);
    if (major, minor) == (SUPPORTED_MAJOR, SUPPORTED_MINOR) {
        Ok(())
    } else if (major, minor) > (SUPPORTED_MAJOR, SUPPORTED_MINOR) {
        Err(FormatError::unsupported(
            file,
            format!("segment format version {v} is newer than the supported {SUPPORTED_MAJOR}.{SUPPORTED_MINOR}.x"),
        ))
    } else {
        Err(FormatError::unsupported(
            file,
            format!("segment format version {v} is older than {SUPPORTED_MAJOR}.{SUPPORTED_MINOR}.x (legacy layouts are not supported)"),
        ))
    }
}

/// Parse a JSON file into `T`, mapping syntax and shape errors to a corrupt-file error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], file: &str) -> Result<T, FormatError> {
    serde_json::from_slice(bytes).map_err(|e| FormatError::corrupt(file, format!("invalid JSON: {e}")))
}

/// Read and parse a JSON file; `Ok(None)` if it does not exist.
pub(crate) fn read_json_opt<S: Storage + ?Sized, T: serde::de::DeserializeOwned>(
    storage: &S,
    path: &str,
) -> Result<Option<T>, Error> {
    match storage.read_all(path) {
        Ok(b) => Ok(Some(parse_json(&b, path)?)),
        Err(e) if e.kind == StorageErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

// ---- segment.json ---------------------------------------------------------------------------

/// `segment.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentState {
    #[serde(default)]
    pub initial_version: Option<u64>,
    /// Highest persisted operation number; `None` (or `0`) for a segment with nothing applied.
    #[serde(default)]
    pub version: Option<u64>,
    pub config: SegmentConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentConfig {
    #[serde(default)]
    pub vector_data: BTreeMap<String, VectorDataConfig>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sparse_vector_data: BTreeMap<String, SparseVectorDataConfig>,
    pub payload_storage_type: PayloadStorageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tracker_memory: Option<Memory>,
}

impl SegmentConfig {
    /// §3.1: every dense vector appendable and every sparse index `MutableRam`.
    pub fn is_appendable(&self) -> bool {
        self.vector_data.values().all(VectorDataConfig::is_appendable)
            && self.sparse_vector_data.values().all(|s| s.index.index_type == SparseIndexType::MutableRam)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorDataConfig {
    pub size: u64,
    pub distance: Distance,
    pub storage_type: VectorStorageType,
    pub index: Indexes,
    /// Always written (possibly `null`).
    #[serde(default)]
    pub quantization_config: Option<QuantizationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector_config: Option<MultiVectorConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
}

impl VectorDataConfig {
    /// Plain index and an appendable storage type (§3.1).
    pub fn is_appendable(&self) -> bool {
        matches!(self.index, Indexes::Plain {}) && self.storage_type.is_appendable()
    }
    /// The element type, `float32` when unset.
    pub fn datatype(&self) -> Datatype {
        self.datatype.unwrap_or_default()
    }
}

/// Vector storage kinds. `Memory` is the legacy RocksDB storage; `GraphInline` is edge-only;
/// `Empty` is the server 1.19 placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VectorStorageType {
    Memory,
    Mmap,
    ChunkedMmap,
    InRamChunkedMmap,
    InRamMmap,
    GraphInline,
    Empty,
}

impl VectorStorageType {
    pub fn is_appendable(self) -> bool {
        matches!(self, VectorStorageType::Memory | VectorStorageType::ChunkedMmap | VectorStorageType::InRamChunkedMmap)
    }
    /// Storages whose files are the chunked layout (`vectors/` + `deleted/`).
    pub fn is_chunked(self) -> bool {
        matches!(self, VectorStorageType::ChunkedMmap | VectorStorageType::InRamChunkedMmap)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "options")]
pub enum Indexes {
    Plain {},
    Hnsw(HnswConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswConfig {
    pub m: u64,
    pub ef_construct: u64,
    #[serde(alias = "full_scan_threshold_kb")]
    pub full_scan_threshold: u64,
    #[serde(default)]
    pub max_indexing_threads: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_m: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_storage: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiVectorComparator {
    #[default]
    MaxSim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct MultiVectorConfig {
    pub comparator: MultiVectorComparator,
}

/// Quantization settings (untagged: distinguished by the single key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuantizationConfig {
    Scalar { scalar: ScalarQuantizationConfig },
    Product { product: ProductQuantizationConfig },
    Binary { binary: BinaryQuantizationConfig },
    Turbo { turbo: TurboQuantizationConfig },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarType {
    #[default]
    Int8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalarQuantizationConfig {
    #[serde(rename = "type")]
    pub kind: ScalarType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionRatio {
    X4,
    X8,
    X16,
    X32,
    X64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductQuantizationConfig {
    pub compression: CompressionRatio,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryQuantizationEncoding {
    OneBit,
    TwoBits,
    OneAndHalfBits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryQuantizationQueryEncoding {
    Default,
    Binary,
    Scalar4Bits,
    Scalar8Bits,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BinaryQuantizationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<BinaryQuantizationEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_encoding: Option<BinaryQuantizationQueryEncoding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurboQuantBitSize {
    Bits1,
    Bits1_5,
    Bits2,
    Bits4,
    Bits8,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TurboQuantizationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<TurboQuantBitSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SparseIndexType {
    MutableRam,
    ImmutableRam,
    Mmap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseIndexConfig {
    pub full_scan_threshold: Option<u64>,
    pub index_type: SparseIndexType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseVectorStorageType {
    #[default]
    Mmap,
    /// Server 1.19 read-only placeholder: every vector absent.
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modifier {
    #[default]
    None,
    Idf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseVectorDataConfig {
    pub index: SparseIndexConfig,
    #[serde(default)]
    pub storage_type: SparseVectorStorageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifier: Option<Modifier>,
}

/// `{"type":"mmap"}` or `{"type":"in_ram_mmap"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "options")]
pub enum PayloadStorageType {
    Mmap,
    InRamMmap,
}

/// Read `<segment_dir>/segment.json`. Vector names that would escape the segment directory
/// (`/`, `\`, `..`, NUL) are refused as corrupt, as Qdrant does.
pub fn read_segment_state<S: Storage + ?Sized>(storage: &S, segment_dir: &str) -> Result<SegmentState, Error> {
    let path = join(segment_dir, names::SEGMENT_STATE_FILE);
    let bytes = storage.read_all(&path)?;
    let state: SegmentState = parse_json(&bytes, &path)?;
    for name in state.config.vector_data.keys().chain(state.config.sparse_vector_data.keys()) {
        if name.contains('/') || name.contains('\\') || name.contains('\0') || name.contains("..") {
            return Err(
                FormatError::corrupt(&path, format!("vector name `{name}` is not a valid directory suffix")).into()
            );
        }
    }
    Ok(state)
}

// ---- edge_config.json -----------------------------------------------------------------------

/// `edge_config.json` (edge only).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EdgeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk_payload: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tracker_memory: Option<Memory>,
    #[serde(default)]
    pub vectors: BTreeMap<String, EdgeVectorParams>,
    #[serde(default)]
    pub sparse_vectors: BTreeMap<String, EdgeSparseVectorParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_config: Option<HnswConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<QuantizationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizers: Option<EdgeOptimizersConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_options: Option<WalOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_search_threads: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_pool_core: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeVectorParams {
    pub size: u64,
    pub distance: Distance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector_config: Option<MultiVectorConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<QuantizationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_config: Option<HnswConfig>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EdgeSparseVectorParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_scan_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifier: Option<Modifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
}

/// Optimizer settings; every field nullable (written as `null` when unset, like Qdrant).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EdgeOptimizersConfig {
    pub deleted_threshold: Option<f64>,
    pub vacuum_min_vector_number: Option<u64>,
    pub default_segment_number: Option<u64>,
    #[serde(alias = "max_segment_size_kb")]
    pub max_segment_size: Option<u64>,
    #[serde(alias = "indexing_threshold_kb")]
    pub indexing_threshold: Option<u64>,
    pub prevent_unoptimized: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalOptions {
    pub segment_capacity: u64,
    pub segment_queue_len: u64,
    pub retain_closed: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_capacity: 32 * 1024 * 1024, segment_queue_len: 0, retain_closed: 1 }
    }
}

/// Read `<shard_dir>/edge_config.json`; `Ok(None)` when the file does not exist (a shard
/// restored from a server snapshot has none).
pub fn read_edge_config<S: Storage + ?Sized>(storage: &S, shard_dir: &str) -> Result<Option<EdgeConfig>, Error> {
    let path = join(shard_dir, names::EDGE_CONFIG_FILE);
    let cfg: Option<EdgeConfig> = read_json_opt(storage, &path)?;
    if let Some(c) = &cfg {
        if c.wal_options.as_ref().is_some_and(|w| w.retain_closed == 0) {
            return Err(FormatError::corrupt(&path, "wal_options.retain_closed must be at least 1").into());
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::storage::MemoryStorage;

    fn put(st: &MemoryStorage, path: &str, data: &[u8]) {
        st.create_dir_all(crate::storage::parent(path)).unwrap();
        st.write_atomic(path, data).unwrap();
    }

    const OPTIMIZED: &str = r#"{"initial_version":13,"version":16,"config":{"vector_data":{"d":{"size":16,"distance":"Cosine","storage_type":"InRamMmap","index":{"type":"hnsw","options":{"m":8,"ef_construct":32,"full_scan_threshold":10,"max_indexing_threads":0}},"quantization_config":{"scalar":{"type":"int8","quantile":0.99}}},"h":{"size":8,"distance":"Euclid","storage_type":"InRamMmap","index":{"type":"hnsw","options":{"m":16,"ef_construct":100,"full_scan_threshold":10000,"max_indexing_threads":0,"on_disk":false}},"quantization_config":null,"datatype":"float16"},"m":{"size":4,"distance":"Manhattan","storage_type":"InRamMmap","index":{"type":"plain","options":{}},"quantization_config":null,"multivector_config":{"comparator":"max_sim"}},"u":{"size":8,"distance":"Dot","storage_type":"InRamMmap","index":{"type":"plain","options":{}},"quantization_config":{"binary":{}},"datatype":"uint8"}},"sparse_vector_data":{"s":{"index":{"full_scan_threshold":null,"index_type":"ImmutableRam","datatype":"float16"},"storage_type":"mmap","modifier":"idf"}},"payload_storage_type":{"type":"mmap"},"unknown_future_field":1}}"#;

    #[test]
    fn versions() {
        assert!(check_version("0.6.0", "v").is_ok());
        assert!(check_version("0.6.3", "v").is_ok());
        let e = check_version("0.7.0", "seg/version.info").unwrap_err();
        assert!(e.unsupported && e.message.contains("newer") && e.file == "seg/version.info");
        assert!(check_version("1.0.0", "v").unwrap_err().unsupported);
        assert!(check_version("0.5.0", "v").unwrap_err().unsupported);
        assert!(!check_version("zero", "v").unwrap_err().unsupported);
        assert!(!check_version("0.6", "v").unwrap_err().unsupported);
    }

    #[test]
    fn parses_optimized_state_and_round_trips() {
        let st = MemoryStorage::new();
        put(&st, "segments/a/segment.json", OPTIMIZED.as_bytes());
        put(&st, "segments/a/version.info", b"0.6.0");
        assert_eq!(read_version_info(&st, "segments/a").unwrap(), "0.6.0");
        let s = read_segment_state(&st, "segments/a").unwrap();
        assert_eq!(s.initial_version, Some(13));
        assert_eq!(s.version, Some(16));
        let d = &s.config.vector_data["d"];
        assert_eq!(d.size, 16);
        assert_eq!(d.distance, Distance::Cosine);
        assert!(matches!(d.index, Indexes::Hnsw(HnswConfig { m: 8, ef_construct: 32, .. })));
        assert!(
            matches!(&d.quantization_config, Some(QuantizationConfig::Scalar { scalar }) if scalar.quantile == Some(0.99))
        );
        assert_eq!(s.config.vector_data["h"].datatype(), Datatype::Float16);
        assert!(s.config.vector_data["m"].multivector_config.is_some());
        assert!(!s.config.vector_data["m"].is_appendable()); // InRamMmap
        assert!(matches!(&s.config.vector_data["u"].quantization_config, Some(QuantizationConfig::Binary { .. })));
        let sp = &s.config.sparse_vector_data["s"];
        assert_eq!(sp.index.index_type, SparseIndexType::ImmutableRam);
        assert_eq!(sp.modifier, Some(Modifier::Idf));
        assert!(!s.config.is_appendable());
        // serialize → parse gives the same value; field order follows Qdrant's
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.starts_with(r#"{"initial_version":13,"version":16,"config":{"vector_data":{"d":{"size":16,"distance":"Cosine","storage_type":"InRamMmap","index":{"type":"hnsw","options":{"m":8,"#));
        let back: SegmentState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn appendable_state() {
        let j = r#"{"initial_version":null,"version":0,"config":{"vector_data":{"v":{"size":4,"distance":"Cosine","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},"quantization_config":null}},"sparse_vector_data":{"s":{"index":{"full_scan_threshold":null,"index_type":"MutableRam"}}},"payload_storage_type":{"type":"in_ram_mmap"}}}"#;
        let s: SegmentState = serde_json::from_str(j).unwrap();
        assert!(s.config.is_appendable());
        assert_eq!(s.config.sparse_vector_data["s"].storage_type, SparseVectorStorageType::Mmap);
        assert_eq!(s.config.payload_storage_type, PayloadStorageType::InRamMmap);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"initial_version":null,"version":0,"config":{"vector_data":{"v":{"size":4,"distance":"Cosine","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},"quantization_config":null}},"sparse_vector_data":{"s":{"index":{"full_scan_threshold":null,"index_type":"MutableRam"},"storage_type":"mmap"}},"payload_storage_type":{"type":"in_ram_mmap"}}}"#
        );
        // server-only Empty variants are accepted
        let e = j.replace("InRamChunkedMmap", "Empty");
        let s: SegmentState = serde_json::from_str(&e).unwrap();
        assert_eq!(s.config.vector_data["v"].storage_type, VectorStorageType::Empty);
    }

    #[test]
    fn unknown_variants_and_bad_names_are_errors_naming_the_file() {
        let st = MemoryStorage::new();
        for (bad, what) in [
            (OPTIMIZED.replace("\"Cosine\"", "\"Hamming\""), "Hamming"),
            (OPTIMIZED.replace("\"InRamMmap\"", "\"RocksDb\""), "RocksDb"),
            (OPTIMIZED.replace("\"float16\"", "\"bfloat16\""), "bfloat16"),
            (OPTIMIZED.replace("{\"type\":\"mmap\"}", "{\"type\":\"rocksdb\"}"), "rocksdb"),
            (OPTIMIZED[..OPTIMIZED.len() - 7].to_string(), "EOF"),
        ] {
            put(&st, "s/segment.json", bad.as_bytes());
            let e = read_segment_state(&st, "s").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupted, "{what}");
            let Error::Format(f) = &e else { panic!() };
            assert_eq!(f.file, "s/segment.json");
            assert!(e.to_string().contains(what) || what == "EOF", "{what}: {e}");
        }
        put(&st, "s/segment.json", OPTIMIZED.replace("\"h\":", "\"../h\":").as_bytes());
        assert_eq!(read_segment_state(&st, "s").unwrap_err().kind(), ErrorKind::Corrupted);
        assert_eq!(read_segment_state(&st, "missing").unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn edge_config() {
        let st = MemoryStorage::new();
        assert!(read_edge_config(&st, "").unwrap().is_none());
        put(&st, "shard/edge_config.json", br#"{"vectors":{"v":{"size":4,"distance":"Cosine"}},"sparse_vectors":{}}"#);
        let c = read_edge_config(&st, "shard").unwrap().unwrap();
        assert_eq!(c.vectors["v"].size, 4);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"vectors":{"v":{"size":4,"distance":"Cosine"}},"sparse_vectors":{}}"#
        );
        let full = r#"{"on_disk_payload":true,"payload_memory":"cold","vectors":{"h":{"size":8,"distance":"Euclid","on_disk":false,"memory":"cached","datatype":"float16","hnsw_config":{"m":16,"ef_construct":100,"full_scan_threshold":10000,"max_indexing_threads":0,"on_disk":false}}},"sparse_vectors":{"s":{"on_disk":false}},"optimizers":{"deleted_threshold":0.2,"vacuum_min_vector_number":null,"default_segment_number":null,"max_segment_size":null,"indexing_threshold":null,"prevent_unoptimized":null},"wal_options":{"segment_capacity":1024,"segment_queue_len":0,"retain_closed":1}}"#;
        let c: EdgeConfig = serde_json::from_str(full).unwrap();
        assert_eq!(c.payload_memory, Some(Memory::Cold));
        assert_eq!(c.vectors["h"].datatype, Some(Datatype::Float16));
        assert_eq!(serde_json::to_string(&c).unwrap(), full);
        put(&st, "shard/edge_config.json", br#"{"vectors":{"v":{"size":4,"distance":"Cosine","memory":"warm"}}}"#);
        assert_eq!(read_edge_config(&st, "shard").unwrap_err().kind(), ErrorKind::Corrupted);
    }
}
