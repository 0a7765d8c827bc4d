//! File and directory names of a shard and a segment, in one place.

pub const SEGMENTS_DIR: &str = "segments";
pub const WAL_DIR: &str = "wal";
pub const EDGE_CONFIG_FILE: &str = "edge_config.json";
pub const SEGMENT_STATE_FILE: &str = "segment.json";
pub const VERSION_FILE: &str = "version.info";
pub const PAYLOAD_STORAGE_DIR: &str = "payload_storage";
pub const PAYLOAD_INDEX_DIR: &str = "payload_index";
pub const PAYLOAD_INDEX_CONFIG_FILE: &str = "config.json";
pub const SEGMENT_FORMAT_VERSION: &str = "0.6.0";

/// `vector_storage` for the default vector `""`, else `vector_storage-<name>`.
pub fn vector_storage_dir(name: &str) -> String {
    if name.is_empty() {
        "vector_storage".to_string()
    } else {
        format!("vector_storage-{name}")
    }
}

/// `vector_index` for the default vector `""`, else `vector_index-<name>`.
pub fn vector_index_dir(name: &str) -> String {
    if name.is_empty() {
        "vector_index".to_string()
    } else {
        format!("vector_index-{name}")
    }
}
