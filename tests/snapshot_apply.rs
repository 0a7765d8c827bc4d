//! Snapshots end to end, on real Qdrant 1.19 server output (`../shared/fixtures`), on the
//! memory and filesystem backends:
//!
//! * `full.snapshot` restored by us answers every recorded server request of
//!   `full.expected.json`, HNSW searches (`exact: false`, walked on the server's graph, with
//!   scalar-quantized scores where the server used them) included;
//! * our `snapshot_manifest()` of that shard equals `full.manifest.json` (qdrant-edge-py's);
//! * `partial1.snapshot` applied on top answers `partial1.expected.json`, and so do
//!   `full2.snapshot` alone and `full2.snapshot` applied over the partial state (a full
//!   snapshot replaces the shard); `full.snapshot` applied again brings the first answers back;
//! * for every shard of the differential corpus, our manifest equals qdrant-edge-py's
//!   (`manifests.json`, written by the generator).
//!
//! The server's answers come through the differential corpus (`cases.json`: `server-full:` cases
//! on `fixtures-full/<c>`, `server:` cases on `fixtures/<c>`), so the comparison rules are the
//! differential test's.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use common::cases::*;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::snapshot::{ApplyOptions, SnapshotKind};
use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage, Storage};

const COLLECTIONS: [&str; 2] = ["basic", "multi"];

fn shared_dir() -> PathBuf {
    match std::env::var_os("QEW_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("shared"),
    }
}

fn fixture(c: &str, file: &str) -> PathBuf {
    shared_dir().join("fixtures").join(c).join(file)
}

fn open(path: &Path) -> std::fs::File {
    std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Run every case of `shard_rel` against `shard`; returns (passed, of which HNSW) and panics
/// with the differences otherwise.
fn check_answers(label: &str, shard: &EdgeShard, cases: &[Case], shard_rel: &str) -> (usize, usize) {
    let mut passed = 0;
    let mut approximate = 0;
    let mut failures = Vec::new();
    let mine: Vec<&Case> = cases.iter().filter(|c| c.shard == shard_rel).collect();
    assert!(mine.len() >= 15, "{label}: only {} cases for {shard_rel}; regenerate the corpus", mine.len());
    for case in mine {
        if case.approximate {
            approximate += 1;
        }
        let got = match qdrant_edge_wasm::api::dispatch(shard, &case.command, &case.body) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: error {e}", case.name));
                continue;
            }
        };
        match result_diff(case, &case.expected, &got) {
            None => passed += 1,
            Some(reason) => {
                let edge_ok = case.edge_expected.as_ref().is_some_and(|ee| result_diff(case, ee, &got).is_none());
                if edge_ok {
                    passed += 1;
                } else {
                    failures.push(format!("{}: {reason}\n   got {}", case.name, short(&got, 400)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{label}: {} failures:\n{}", failures.len(), failures.join("\n"));
    (passed, approximate)
}

fn manifest_json(shard: &mut EdgeShard) -> Value {
    serde_json::to_value(shard.snapshot_manifest().expect("snapshot_manifest")).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Structural manifest comparison with a readable difference.
fn manifest_diff(want: &Value, got: &Value) -> Option<String> {
    if want == got {
        return None;
    }
    let (w, g) = (want.as_object()?, got.as_object()?);
    let mut out = Vec::new();
    for k in w.keys().chain(g.keys()) {
        match (w.get(k), g.get(k)) {
            (Some(a), Some(b)) if a != b => {
                if a["segment_version"] != b["segment_version"] {
                    out.push(format!("{k}: segment_version {} vs {}", a["segment_version"], b["segment_version"]));
                }
                let (fa, fb) = (a["file_versions"].as_object()?, b["file_versions"].as_object()?);
                for f in fa.keys().chain(fb.keys()) {
                    if fa.get(f) != fb.get(f) {
                        out.push(format!("{k}/{f}: expected {:?}, got {:?}", fa.get(f), fb.get(f)));
                    }
                }
            }
            (Some(_), None) => out.push(format!("segment {k} missing")),
            (None, Some(_)) => out.push(format!("unexpected segment {k}")),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    Some(out.join("\n"))
}

fn backends(tmp: &Path) -> Vec<(&'static str, Arc<dyn Storage>)> {
    let dir = tmp.join("fs");
    std::fs::create_dir_all(&dir).unwrap();
    vec![
        ("memory", Arc::new(MemoryStorage::new()) as Arc<dyn Storage>),
        ("fs", Arc::new(FsStorage::new(&dir).unwrap()) as Arc<dyn Storage>),
    ]
}

#[test]
fn server_fixtures_full_partial_full2() {
    let cases = load_cases(&common::corpus_dir());
    let tmp = tempfile::tempdir().unwrap();
    for (backend, st) in backends(tmp.path()) {
        for c in COLLECTIONS {
            let label = format!("{backend}/{c}");
            let root = format!("{c}-a");
            // full.snapshot → the server's answers at that moment, and edge's manifest.
            let (mut shard, report) = EdgeShard::unpack_snapshot(
                st.clone(),
                &root,
                open(&fixture(c, "full.snapshot")),
                ApplyOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{label}: unpack full.snapshot: {e}"));
            assert_eq!(report.kind, SnapshotKind::Full);
            assert!(!report.segments_added.is_empty());
            let (p, a) = check_answers(&format!("{label} full"), &shard, &cases, &format!("fixtures-full/{c}"));
            eprintln!("{label}: full.snapshot: {p} answers equal the server's ({a} of them HNSW searches)");
            let want = read_json(&fixture(c, "full.manifest.json"));
            if let Some(d) = manifest_diff(&want, &manifest_json(&mut shard)) {
                panic!("{label}: manifest differs from full.manifest.json:\n{d}");
            }

            // partial1.snapshot on top → the final answers.
            let report = shard
                .update_from_snapshot(open(&fixture(c, "partial1.snapshot")), ApplyOptions::default())
                .unwrap_or_else(|e| panic!("{label}: apply partial1.snapshot: {e}"));
            assert_eq!(report.kind, SnapshotKind::Partial);
            eprintln!(
                "{label}: partial1: +{:?} -{:?} merged {:?}, {} files written, {} deleted",
                report.segments_added,
                report.segments_removed,
                report.segments_merged,
                report.files_written,
                report.files_deleted
            );
            let (p, _) = check_answers(&format!("{label} partial1"), &shard, &cases, &format!("fixtures/{c}"));
            eprintln!("{label}: full + partial1: {p} answers equal");
            // No staging leftovers, and it loads again from storage the same way.
            let leftovers: Vec<String> =
                st.list_dir(&root).unwrap().into_iter().map(|e| e.name).filter(|n| n.starts_with('.')).collect();
            assert!(leftovers.is_empty(), "{label}: leftovers {leftovers:?}");
            let reloaded = EdgeShard::load(st.clone(), &root).unwrap();
            check_answers(&format!("{label} partial1 reloaded"), &reloaded, &cases, &format!("fixtures/{c}"));
            drop(reloaded);

            // A full snapshot over it replaces the shard: full2 gives the same final answers…
            let report = shard
                .update_from_snapshot(open(&fixture(c, "full2.snapshot")), ApplyOptions::default())
                .unwrap_or_else(|e| panic!("{label}: apply full2.snapshot: {e}"));
            assert_eq!(report.kind, SnapshotKind::Full);
            check_answers(&format!("{label} full2 over partial1"), &shard, &cases, &format!("fixtures/{c}"));
            // …and full.snapshot brings the first state back.
            shard
                .update_from_snapshot(open(&fixture(c, "full.snapshot")), ApplyOptions::default())
                .unwrap_or_else(|e| panic!("{label}: apply full.snapshot again: {e}"));
            check_answers(&format!("{label} full again"), &shard, &cases, &format!("fixtures-full/{c}"));
            let segs = st.list_dir(&format!("{root}/segments")).unwrap().len();
            assert_eq!(segs, report.unpack.segments.len(), "{label}: old segments were left behind");

            // full2.snapshot alone.
            let (shard2, _) = EdgeShard::unpack_snapshot(
                st.clone(),
                &format!("{c}-b"),
                open(&fixture(c, "full2.snapshot")),
                ApplyOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{label}: unpack full2.snapshot: {e}"));
            check_answers(&format!("{label} full2"), &shard2, &cases, &format!("fixtures/{c}"));
        }
    }
}

#[test]
fn manifests_equal_qdrant_edge() {
    let corpus = common::corpus_dir();
    let all = read_json(&corpus.join("manifests.json"));
    let all = all.as_object().expect("manifests.json: an object");
    assert!(all.len() >= 10, "manifests.json lists only {} shards", all.len());
    let mut failures = Vec::new();
    for (rel, want) in all {
        let st = MemoryStorage::new();
        common::copy_dir_to_storage(&corpus.join(rel), &st).unwrap();
        let mut shard = EdgeShard::load(Arc::new(st), "").unwrap_or_else(|e| panic!("{rel}: load: {e}"));
        if let Some(d) = manifest_diff(want, &manifest_json(&mut shard)) {
            failures.push(format!("{rel}:\n{d}"));
        }
    }
    assert!(failures.is_empty(), "manifests differ from qdrant-edge-py's:\n{}", failures.join("\n"));
}

/// Snapshots built per the spec from qdrant-edge-py shards (`tests/corpus/make_snapshots.py`):
/// applied by us to the same base shard, they give qdrant-edge-py's answers and manifest.
#[test]
fn edge_py_scenarios_apply_like_qdrant_edge() {
    let dir = common::corpus_dir().join("snapshots");
    let cases = load_cases(&dir);
    let summary = read_json(&dir.join("summary.json"));
    let scenarios: Vec<String> = summary.as_object().expect("summary.json").keys().cloned().collect();
    assert!(scenarios.len() >= 5, "only {} scenarios", scenarios.len());
    let tmp = tempfile::tempdir().unwrap();
    for (backend, st) in backends(tmp.path()) {
        for sc in &scenarios {
            let label = format!("{backend}/{sc}");
            let root = format!("scenario-{sc}");
            st.create_dir_all(&root).unwrap();
            common::copy_dir_to_storage(&dir.join(sc).join("base"), &RootedAt(st.clone(), root.clone())).unwrap();
            let mut shard = EdgeShard::load(st.clone(), &root).unwrap_or_else(|e| panic!("{label}: load base: {e}"));
            let report = shard
                .update_from_snapshot(open(&dir.join(sc).join("archive.snapshot")), ApplyOptions::default())
                .unwrap_or_else(|e| panic!("{label}: apply: {e}"));
            let want_kind = summary[sc]["kind"].as_str().unwrap();
            assert_eq!(report.kind == SnapshotKind::Full, want_kind == "full", "{label}: kind");
            let (p, _) = check_answers(&label, &shard, &cases, sc);
            let want = read_json(&dir.join(sc).join("after.manifest.json"));
            if let Some(d) = manifest_diff(&want, &manifest_json(&mut shard)) {
                panic!("{label}: manifest after apply differs from qdrant-edge-py's:\n{d}");
            }
            eprintln!("{label}: {p} answers and the manifest equal qdrant-edge-py's");
        }
    }
}

/// `storage` seen from `root` (the copy helper writes at the storage root).
#[derive(Debug)]
struct RootedAt(Arc<dyn Storage>, String);

impl RootedAt {
    fn p(&self, path: &str) -> String {
        if path.is_empty() {
            self.1.clone()
        } else {
            format!("{}/{path}", self.1)
        }
    }
}

impl Storage for RootedAt {
    fn open(
        &self,
        path: &str,
        mode: qdrant_edge_wasm::storage::OpenMode,
    ) -> qdrant_edge_wasm::storage::StorageResult<Arc<dyn qdrant_edge_wasm::storage::StorageFile>> {
        self.0.open(&self.p(path), mode)
    }
    fn list_dir(
        &self,
        path: &str,
    ) -> qdrant_edge_wasm::storage::StorageResult<Vec<qdrant_edge_wasm::storage::DirEntry>> {
        self.0.list_dir(&self.p(path))
    }
    fn create_dir_all(&self, path: &str) -> qdrant_edge_wasm::storage::StorageResult<()> {
        self.0.create_dir_all(&self.p(path))
    }
    fn rename(&self, from: &str, to: &str) -> qdrant_edge_wasm::storage::StorageResult<()> {
        self.0.rename(&self.p(from), &self.p(to))
    }
    fn remove_file(&self, path: &str) -> qdrant_edge_wasm::storage::StorageResult<()> {
        self.0.remove_file(&self.p(path))
    }
    fn remove_dir_all(&self, path: &str) -> qdrant_edge_wasm::storage::StorageResult<()> {
        self.0.remove_dir_all(&self.p(path))
    }
    fn entry_kind(
        &self,
        path: &str,
    ) -> qdrant_edge_wasm::storage::StorageResult<Option<qdrant_edge_wasm::storage::EntryKind>> {
        self.0.entry_kind(&self.p(path))
    }
    fn sync_dir(&self, path: &str) -> qdrant_edge_wasm::storage::StorageResult<()> {
        self.0.sync_dir(&self.p(path))
    }
    fn capabilities(&self) -> qdrant_edge_wasm::storage::Capabilities {
        self.0.capabilities()
    }
}

/// A full snapshot of other vectors replaces the shard's config too; one of the same vectors
/// keeps `edge_config.json`.
#[test]
fn full_snapshot_over_a_shard_with_another_config() {
    let cases = load_cases(&common::corpus_dir());
    for (dim, kept) in [(4, false), (32, true)] {
        let st: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let cfg: qdrant_edge_wasm::format::segment_meta::EdgeConfig =
            serde_json::from_value(serde_json::json!({"vectors": {"v": {"size": dim, "distance": "Cosine"}}})).unwrap();
        let mut shard = EdgeShard::create(st.clone(), "s", cfg).unwrap();
        let v: Vec<f32> = (0..dim).map(|i| i as f32 + 1.0).collect();
        qdrant_edge_wasm::api::dispatch_update(
            &mut shard,
            "upsert",
            &serde_json::json!({"points": [{"id": 123456789, "vector": {"v": v}}]}),
        )
        .unwrap();
        shard.update_from_snapshot(open(&fixture("basic", "full.snapshot")), ApplyOptions::default()).unwrap();
        assert_eq!(st.is_file("s/edge_config.json").unwrap(), kept, "dim {dim}");
        check_answers(&format!("config dim {dim}"), &shard, &cases, "fixtures-full/basic");
        let reloaded = EdgeShard::load(st.clone(), "s").unwrap();
        check_answers(&format!("config dim {dim} reloaded"), &reloaded, &cases, "fixtures-full/basic");
    }
}
