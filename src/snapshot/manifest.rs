//! Snapshot manifests (§12.6): which version of every segment file a shard holds.
//!
//! A manifest is what a device sends to `POST …/snapshot/partial/create`; the server answers
//! with the files whose version is newer than the device's. Each segment contributes a
//! [`SegmentManifest`]: its `segment_version` (`segment.json` `version`, 0 when null) and a
//! `file_versions` map from the path relative to the segment directory to a number, or `null`
//! meaning "the segment version".
//!
//! Qdrant derives the versions from its in-memory components; after a load (which is the
//! state every manifest we compute describes: the shard is flushed first) they reduce to rules
//! on the files themselves, checked against qdrant-edge-py on every corpus shard and on the
//! server fixtures (`full.manifest.json`):
//!
//! | file (relative to the segment)                                   | version                  |
//! |------------------------------------------------------------------|--------------------------|
//! | `segment.json`, `version.info`, `segment_manifest.json`, journals| not listed               |
//! | `id_tracker.mappings` (immutable tracker)                        | `initial_version` or 0   |
//! | other id tracker files                                           | `null`                   |
//! | `vector_index*/indices_tracker.json`                             | `null`                   |
//! | other `vector_index*/…` files (HNSW, immutable sparse index)     | `initial_version` or 0   |
//! | `vector_storage*/matrix.dat`, `…/config.json`, `…/quantized.*`   | `initial_version` or 0   |
//! | other `vector_storage*/…` files                                  | segment version          |
//! | `payload_storage/config.json`                                    | `initial_version` or 0   |
//! | other `payload_storage/…` files                                  | segment version          |
//! | `payload_index/config.json`                                      | `null`                   |
//! | files of an *immutable* field index (per `payload_index/config.json`), except `histogram_borders.bin` | `initial_version` or 0 |
//! | files of a mutable field index, `histogram_borders.bin`          | `null`                   |
//!
//! Anything else under the segment directory is listed as `null` (Qdrant lists every file of
//! every component; a file no component owns does not occur in a shard Qdrant wrote).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FormatError, Result};
use crate::format::field_index_write::field_dir_name;
use crate::format::names;
use crate::format::payload_index::{IndexMutability, PayloadIndexConfig};
use crate::format::segment_meta::read_segment_state;
use crate::storage::{join, EntryKind, Storage};

/// Name of the per-segment manifest a partial snapshot carries.
pub const SEGMENT_MANIFEST_FILE: &str = "segment_manifest.json";

/// Version of one file: a number, or `null` (= the segment version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileVersion {
    Version(u64),
    Unversioned(()),
}

impl FileVersion {
    pub const NULL: FileVersion = FileVersion::Unversioned(());

    /// The effective version: the number, or `segment_version` for `null`.
    pub fn effective(self, segment_version: u64) -> u64 {
        match self {
            FileVersion::Version(v) => v,
            FileVersion::Unversioned(()) => segment_version,
        }
    }
}

/// One segment's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentManifest {
    pub segment_id: String,
    pub segment_version: u64,
    pub file_versions: BTreeMap<String, FileVersion>,
}

/// A shard's manifest: segment id → segment manifest.
pub type SnapshotManifest = BTreeMap<String, SegmentManifest>;

impl SegmentManifest {
    /// An empty manifest for a segment the requester does not have.
    pub fn empty(segment_id: &str) -> SegmentManifest {
        SegmentManifest { segment_id: segment_id.to_string(), segment_version: 0, file_versions: BTreeMap::new() }
    }

    /// Qdrant's validity rule: no file may be newer than its segment; every path must be a
    /// plain relative path inside the segment.
    pub fn validate(&self, origin: &str) -> Result<()> {
        for (path, v) in &self.file_versions {
            if v.effective(self.segment_version) > self.segment_version {
                return Err(FormatError::corrupt(
                    origin,
                    format!(
                        "segment {}: file `{path}` has version {} above the segment version {}",
                        self.segment_id,
                        v.effective(self.segment_version),
                        self.segment_version
                    ),
                )
                .into());
            }
            if !is_relative_path(path) {
                return Err(FormatError::corrupt(
                    origin,
                    format!(
                        "segment {}: file path `{path}` is not a relative path inside the segment",
                        self.segment_id
                    ),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Qdrant's partial-snapshot inclusion rule: would a server holding `self` send `file` to a
    /// requester whose manifest for this segment is `old`?
    pub fn would_send(&self, file: &str, old: &SegmentManifest) -> bool {
        let Some(cur) = self.file_versions.get(file) else { return false };
        let Some(prev) = old.file_versions.get(file) else { return true };
        let (c, p) = (cur.effective(self.segment_version), prev.effective(old.segment_version));
        p < c || (p == 0 && c == 0)
    }
}

fn is_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Parse a manifest (e.g. a request body) strictly: a JSON object of segment manifests whose
/// keys equal their `segment_id`, each valid.
pub fn parse_snapshot_manifest(bytes: &[u8], origin: &str) -> Result<SnapshotManifest> {
    let m: SnapshotManifest =
        serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("{origin}: not a snapshot manifest: {e}")))?;
    for (id, s) in &m {
        if *id != s.segment_id {
            return Err(Error::invalid(format!("{origin}: key `{id}` names segment `{}`", s.segment_id)));
        }
        s.validate(origin)?;
    }
    Ok(m)
}

/// Files that are never part of a manifest (nor of a snapshot).
fn excluded(rel: &str) -> bool {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    matches!(rel, names::SEGMENT_STATE_FILE | names::VERSION_FILE | SEGMENT_MANIFEST_FILE)
        || base == "tracker_journal.dat"
        || base.starts_with('.')
        || base.ends_with(".tmp")
}

/// Every file under `dir`, as paths relative to it, sorted.
pub(crate) fn list_files_rec(storage: &dyn Storage, dir: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let abs = if rel.is_empty() { dir.to_string() } else { join(dir, &rel) };
        for e in storage.list_dir(&abs)? {
            let r = if rel.is_empty() { e.name.clone() } else { format!("{rel}/{}", e.name) };
            match e.kind {
                EntryKind::Dir => stack.push(r),
                EntryKind::File => out.push(r),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The manifest of the segment stored in `segment_dir` (its directory name is its id).
pub fn segment_manifest(storage: &dyn Storage, segment_dir: &str) -> Result<SegmentManifest> {
    let segment_id = segment_dir.rsplit('/').next().unwrap_or(segment_dir).to_string();
    let state = read_segment_state(storage, segment_dir)?;
    let segment_version = state.version.unwrap_or(0);
    let initial = FileVersion::Version(state.initial_version.unwrap_or(0));
    let current = FileVersion::Version(segment_version);

    // Field-index directories whose files are immutable.
    let pic = PayloadIndexConfig::read(storage, segment_dir)?;
    let mut immutable_dirs = Vec::new();
    for (field, types) in &pic.indexed_types {
        let base = field_dir_name(field);
        for t in types {
            if t.mutability == IndexMutability::Immutable {
                immutable_dirs.push(format!("{}/{base}-{}/", names::PAYLOAD_INDEX_DIR, t.index_type.dir_suffix()));
            }
        }
    }

    let mut file_versions = BTreeMap::new();
    for rel in list_files_rec(storage, segment_dir)? {
        if excluded(&rel) {
            continue;
        }
        let (top, rest) = rel.split_once('/').unwrap_or((rel.as_str(), ""));
        let base = rel.rsplit('/').next().unwrap_or(&rel);
        let v = if rest.is_empty() {
            // Top-level files: the id trackers.
            if rel == "id_tracker.mappings" {
                initial
            } else {
                FileVersion::NULL
            }
        } else if top.starts_with("vector_index") {
            if base == "indices_tracker.json" {
                FileVersion::NULL
            } else {
                initial
            }
        } else if top.starts_with("vector_storage") {
            if base == "matrix.dat" || base == "config.json" || base.starts_with("quantized.") {
                initial
            } else {
                current
            }
        } else if top == names::PAYLOAD_STORAGE_DIR {
            if rest == "config.json" {
                initial
            } else {
                current
            }
        } else if top == names::PAYLOAD_INDEX_DIR {
            if base != "histogram_borders.bin" && immutable_dirs.iter().any(|d| rel.starts_with(d.as_str())) {
                initial
            } else {
                FileVersion::NULL
            }
        } else {
            FileVersion::NULL
        };
        file_versions.insert(rel, v);
    }
    Ok(SegmentManifest { segment_id, segment_version, file_versions })
}

/// The manifest of every segment under `<shard_root>/segments`.
pub fn shard_manifest(storage: &dyn Storage, shard_root: &str) -> Result<SnapshotManifest> {
    let mut out = SnapshotManifest::new();
    for dir in crate::segment::list_segment_dirs(storage, shard_root)? {
        let m = segment_manifest(storage, &dir)?;
        out.insert(m.segment_id.clone(), m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_version_json_is_untagged() {
        let m: SegmentManifest =
            serde_json::from_str(r#"{"segment_id":"a","segment_version":5,"file_versions":{"x":3,"y":null}}"#).unwrap();
        assert_eq!(m.file_versions["x"], FileVersion::Version(3));
        assert_eq!(m.file_versions["y"], FileVersion::NULL);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"segment_id":"a","segment_version":5,"file_versions":{"x":3,"y":null}}"#
        );
        assert_eq!(m.file_versions["y"].effective(5), 5);
    }

    #[test]
    fn validation_and_inclusion_rule() {
        let mut m = SegmentManifest::empty("s");
        m.segment_version = 4;
        m.file_versions.insert("a".into(), FileVersion::Version(5));
        assert!(m.validate("t").is_err());
        m.file_versions.insert("a".into(), FileVersion::Version(0));
        m.file_versions.insert("../x".into(), FileVersion::NULL);
        assert!(m.validate("t").is_err());
        m.file_versions.remove("../x");
        m.validate("t").unwrap();

        let mut old = SegmentManifest::empty("s");
        assert!(m.would_send("a", &old)); // absent
        old.file_versions.insert("a".into(), FileVersion::Version(0));
        assert!(m.would_send("a", &old)); // 0 == 0 is ambiguous: resent
        m.file_versions.insert("b".into(), FileVersion::NULL);
        old.segment_version = 4;
        old.file_versions.insert("b".into(), FileVersion::NULL);
        assert!(!m.would_send("b", &old));
        old.segment_version = 3;
        assert!(m.would_send("b", &old));
        assert!(!m.would_send("missing", &old));
    }

    #[test]
    fn parse_rejects_mismatched_keys_and_unknown_fields() {
        assert!(parse_snapshot_manifest(br#"{"a":{"segment_id":"b","segment_version":0,"file_versions":{}}}"#, "t")
            .is_err());
        assert!(parse_snapshot_manifest(
            br#"{"a":{"segment_id":"a","segment_version":0,"file_versions":{},"x":1}}"#,
            "t"
        )
        .is_err());
        assert_eq!(parse_snapshot_manifest(b"{}", "t").unwrap().len(), 0);
    }
}
