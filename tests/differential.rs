//! Differential test: our engine against Qdrant.
//!
//! The corpus (`tests/corpus/generate.py`, qdrant-edge-py 0.9.0) holds shard directories
//! written by Qdrant Edge, two shards restored from real Qdrant 1.19 server snapshots, and
//! `cases.json`: REST request bodies with the `result` Qdrant returned (see generate.py's
//! docstring for every field). For each shard this test loads it twice, through `FsStorage`
//! (rooted at a sparse temporary copy, so a load that replays the WAL and flushes never alters
//! the corpus) and through `MemoryStorage` (filled from the shard directory, skipping zero
//! blocks), runs every case with `api::dispatch` and compares:
//!
//! * query / search: same ids in the same order, except that runs of equal scores (1e-6
//!   relative) may come in any order; when the generator flagged `ties_at_start` /
//!   `ties_at_end` the first / last run may also hold other ids (the offset or the limit cut
//!   through a tie, and which tied point survives is not specified). Scores within 1e-5
//!   relative (1e-6 absolute); payloads and vectors equal, floats within 1e-5 relative.
//! * everything else: the same JSON, numbers within the same tolerance, key order ignored.
//!
//! Server HNSW answers (`approximate`) are checked like the others (counted separately). A `server:` case whose
//! `edge_expected` is set passes when we match either the server or qdrant-edge-py; the
//! summary counts how often we matched only qdrant-edge-py.
//!
//! Environment: `QEW_CORPUS` (corpus dir), `QEW_CASES` (only cases whose name contains it),
//! `QEW_BACKENDS` (`fs`, `memory` or `fs,memory`, the default).

mod common;

use common::cases::*;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage, Storage};

const REPORT_MAX: usize = 20;
const SHOW_CHARS: usize = 1200;

// -------------------------------------------------------------------------------------------
// running

#[derive(Default, Clone, Copy)]
struct Tally {
    passed: usize,
    failed: usize,
    approximate: usize,
    edge_only: usize,
}

struct Failure {
    backend: &'static str,
    name: String,
    command: String,
    body: String,
    expected: String,
    got: String,
    reason: String,
}

struct Run {
    tallies: BTreeMap<(&'static str, String), Tally>,
    failures: Vec<Failure>,
}

impl Run {
    fn tally(&mut self, backend: &'static str, command: &str) -> &mut Tally {
        self.tallies.entry((backend, command.to_string())).or_default()
    }

    fn fail(&mut self, backend: &'static str, case: &Case, got: String, reason: String) {
        self.tally(backend, &case.command).failed += 1;
        self.failures.push(Failure {
            backend,
            name: case.name.clone(),
            command: case.command.clone(),
            body: short(&case.body, SHOW_CHARS),
            expected: short(&case.expected, SHOW_CHARS),
            got,
            reason,
        });
    }
}

fn open_backend(backend: &'static str, shard_dir: &Path, tmp: &Path) -> Result<Arc<dyn Storage>, String> {
    match backend {
        "fs" => {
            // a private sparse copy: loading may replay the WAL and write segments
            let copy = tmp.join(shard_dir.file_name().unwrap_or_default());
            if copy.exists() {
                std::fs::remove_dir_all(&copy).map_err(|e| format!("clean {}: {e}", copy.display()))?;
            }
            common::copy_dir_sparse(shard_dir, &copy)?;
            let fs = FsStorage::new(&copy).map_err(|e| format!("FsStorage::new: {e}"))?;
            Ok(Arc::new(fs))
        }
        "memory" => {
            let mem = MemoryStorage::new();
            common::copy_dir_to_storage(shard_dir, &mem)?;
            Ok(Arc::new(mem))
        }
        other => Err(format!("unknown backend {other}")),
    }
}

fn run_shard(run: &mut Run, backend: &'static str, shard_rel: &str, cases: &[&Case], corpus: &Path, tmp: &Path) {
    let shard_dir = corpus.join(shard_rel);
    let loaded = open_backend(backend, &shard_dir, &tmp.join(backend))
        .and_then(|storage| EdgeShard::load(storage, "").map_err(|e| format!("EdgeShard::load: {e}")));
    let shard = match loaded {
        Ok(s) => s,
        Err(e) => {
            for case in cases {
                run.fail(backend, case, "<shard not loaded>".into(), format!("{shard_rel}: {e}"));
            }
            return;
        }
    };
    for case in cases {
        if case.approximate {
            // Server HNSW answers: compared like the others (our walk on the server's graph).
            run.tally(backend, &case.command).approximate += 1;
        }
        let got = match qdrant_edge_wasm::api::dispatch(&shard, &case.command, &case.body) {
            Ok(v) => v,
            Err(e) => {
                run.fail(backend, case, format!("<error> {e}"), "dispatch returned an error".into());
                continue;
            }
        };
        match result_diff(case, &case.expected, &got) {
            None => run.tally(backend, &case.command).passed += 1,
            Some(reason) => {
                let edge_ok = case.edge_expected.as_ref().is_some_and(|ee| result_diff(case, ee, &got).is_none());
                if edge_ok {
                    let t = run.tally(backend, &case.command);
                    t.passed += 1;
                    t.edge_only += 1;
                } else {
                    run.fail(backend, case, short(&got, SHOW_CHARS), reason);
                }
            }
        }
    }
}

#[test]
fn differential_corpus() {
    let corpus = common::corpus_dir();
    let mut cases = load_cases(&corpus);
    if let Ok(filter) = std::env::var("QEW_CASES") {
        cases.retain(|c| c.name.contains(&filter));
        assert!(!cases.is_empty(), "QEW_CASES={filter} selects no case");
    }
    let backends: Vec<&'static str> = match std::env::var("QEW_BACKENDS").as_deref() {
        Ok("fs") => vec!["fs"],
        Ok("memory") => vec!["memory"],
        Ok("fs,memory") | Ok("memory,fs") | Err(_) => vec!["fs", "memory"],
        Ok(other) => panic!("QEW_BACKENDS={other}: expected fs, memory or fs,memory"),
    };

    // group by shard, keeping the corpus order
    let mut order: Vec<String> = Vec::new();
    let mut by_shard: BTreeMap<String, Vec<&Case>> = BTreeMap::new();
    for c in &cases {
        if !by_shard.contains_key(&c.shard) {
            order.push(c.shard.clone());
        }
        by_shard.entry(c.shard.clone()).or_default().push(c);
    }

    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut run = Run { tallies: BTreeMap::new(), failures: Vec::new() };
    for shard_rel in &order {
        for &backend in &backends {
            run_shard(&mut run, backend, shard_rel, &by_shard[shard_rel], &corpus, tmp.path());
        }
    }

    // summary, one line per backend and command
    let mut summary = String::new();
    let _ = writeln!(summary, "differential corpus: {} cases from {}", cases.len(), corpus.display());
    for &backend in &backends {
        for cmd in COMMANDS {
            let t = run.tallies.get(&(backend, cmd.to_string())).copied().unwrap_or_default();
            if t.passed + t.failed + t.approximate == 0 {
                continue;
            }
            let _ = writeln!(
                summary,
                "  [{backend:6}] {cmd:8} passed {:5}  failed {:5}  of them HNSW {:3}  (matched qdrant-edge-py only: {})",
                t.passed, t.failed, t.approximate, t.edge_only
            );
        }
    }
    println!("{summary}");

    if !run.failures.is_empty() {
        let mut report =
            format!("{} mismatches; the first {}:\n", run.failures.len(), run.failures.len().min(report_max()));
        for f in run.failures.iter().take(report_max()) {
            let _ = write!(
                report,
                "\n--- [{}] {} ({})\n  reason:   {}\n  body:     {}\n  expected: {}\n  got:      {}\n",
                f.backend, f.name, f.command, f.reason, f.body, f.expected, f.got
            );
        }
        let _ = write!(report, "\n{summary}");
        panic!("{report}");
    }
}

// -------------------------------------------------------------------------------------------
// the comparator itself

#[cfg(test)]
mod comparator {
    use super::*;
    use serde_json::json;

    fn case(command: &str, ties_start: bool, ties_end: bool) -> Case {
        Case {
            name: "t".into(),
            shard: "s".into(),
            command: command.into(),
            body: json!({}),
            expected: json!(null),
            edge_expected: None,
            approximate: false,
            ties_at_start: ties_start,
            ties_at_end: ties_end,
        }
    }

    fn pts(v: &[(u64, f64)]) -> Value {
        json!({"points": v.iter().map(|(id, s)| json!({"id": id, "version": 1, "score": s})).collect::<Vec<_>>()})
    }

    #[test]
    fn tie_permutation_allowed_order_otherwise_strict() {
        let c = case("query", false, false);
        let e = pts(&[(1, 0.9), (2, 0.5), (3, 0.5), (4, 0.1)]);
        assert!(result_diff(&c, &e, &pts(&[(1, 0.9), (3, 0.5), (2, 0.5), (4, 0.1)])).is_none());
        assert!(result_diff(&c, &e, &pts(&[(2, 0.9), (1, 0.5), (3, 0.5), (4, 0.1)])).is_some());
        assert!(result_diff(&c, &e, &pts(&[(1, 0.9), (2, 0.5), (3, 0.5)])).is_some());
    }

    #[test]
    fn boundary_tie_needs_flag() {
        let e = pts(&[(1, 0.9), (2, 0.5), (3, 0.5)]);
        let g = pts(&[(1, 0.9), (2, 0.5), (7, 0.5)]);
        assert!(result_diff(&case("query", false, false), &e, &g).is_some());
        assert!(result_diff(&case("query", false, true), &e, &g).is_none());
        // the flag does not excuse a different score
        let g2 = pts(&[(1, 0.9), (2, 0.5), (7, 0.4)]);
        assert!(result_diff(&case("query", false, true), &e, &g2).is_some());
    }

    #[test]
    fn score_and_float_tolerance() {
        let c = case("query", false, false);
        assert!(result_diff(&c, &pts(&[(1, 0.48480785)]), &pts(&[(1, 0.4848078)])).is_none());
        assert!(result_diff(&c, &pts(&[(1, 0.4848)]), &pts(&[(1, 0.4858)])).is_some());
        let r = case("retrieve", false, false);
        let e = json!([{"id": 1, "vector": [22.0, 0.5], "payload": {"n": 3, "big": 18446744073709551615u64}}]);
        assert!(result_diff(
            &r,
            &e,
            &json!([{"id": 1, "vector": [22, 0.5000001], "payload": {"n": 3, "big": 18446744073709551615u64}}])
        )
        .is_none());
        assert!(result_diff(
            &r,
            &e,
            &json!([{"id": 1, "vector": [22, 0.5], "payload": {"n": 3.5, "big": 18446744073709551615u64}}])
        )
        .is_some());
        assert!(result_diff(
            &r,
            &e,
            &json!([{"id": 1, "vector": [22, 0.5], "payload": {"n": 3, "big": 18446744073709551614u64}}])
        )
        .is_some());
        // ints are exact, strings and ids are not numbers
        assert!(result_diff(&r, &json!([{"id": 1}]), &json!([{"id": "1"}])).is_some());
        // a missing key is a difference
        assert!(result_diff(&r, &json!([{"id": 1, "payload": {}}]), &json!([{"id": 1}])).is_some());
    }
}

#[cfg(test)]
mod sparse_copies {
    use super::*;
    use qdrant_edge_wasm::storage::OpenMode;
    use std::io::Write;

    /// A file with data blocks, zero blocks (holes), an unaligned tail, plus an empty file.
    fn sample_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut big = vec![0u8; 5 * common::BLOCK + 123];
        big[10] = 1; // block 0
        big[3 * common::BLOCK + 7] = 2; // block 3
        big[5 * common::BLOCK + 100] = 3; // tail
        let files = vec![
            ("a/b/big.bin".to_string(), big),
            ("a/empty".to_string(), Vec::new()),
            ("top".to_string(), vec![9u8; 10]),
        ];
        for (rel, data) in &files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::File::create(&p).unwrap().write_all(data).unwrap();
        }
        std::fs::create_dir_all(dir.join("emptydir")).unwrap();
        files
    }

    #[test]
    fn memory_copy_is_faithful_and_sparse() {
        let tmp = tempfile::tempdir().unwrap();
        let files = sample_tree(tmp.path());
        let mem = MemoryStorage::new();
        let written = common::copy_dir_to_storage(tmp.path(), &mem).unwrap();
        // blocks 0 and 3 of big.bin, its tail, and `top`
        assert_eq!(written, (2 * common::BLOCK + 123 + 10) as u64);
        for (rel, data) in &files {
            let f = mem.open(rel, OpenMode::Read).unwrap();
            assert_eq!(f.len().unwrap(), data.len() as u64, "{rel}");
            let mut buf = vec![0xAAu8; data.len()];
            f.read_at(0, &mut buf).unwrap();
            assert_eq!(&buf, data, "{rel}");
        }
        assert!(mem.is_dir("emptydir").unwrap());
        assert!(mem.stored_bytes() < 5 * common::BLOCK as u64);
    }

    #[test]
    fn disk_copy_is_faithful() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let files = sample_tree(src.path());
        common::copy_dir_sparse(src.path(), &dst.path().join("copy")).unwrap();
        for (rel, data) in &files {
            assert_eq!(&std::fs::read(dst.path().join("copy").join(rel)).unwrap(), data, "{rel}");
        }
        assert!(dst.path().join("copy/emptydir").is_dir());
    }
}

/// How many mismatches the report shows (`QEW_REPORT_MAX`, default 20).
fn report_max() -> usize {
    std::env::var("QEW_REPORT_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(REPORT_MAX)
}
