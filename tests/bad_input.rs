//! Bad input gets a typed error naming the file or field, never a panic: corrupted shard files
//! (wrong version, unknown config variant, truncated and bit-flipped files) and malformed
//! requests.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::segment::{MemoryPlan, Segment};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{EntryKind, MemoryStorage, OpenMode, Storage};
use qdrant_edge_wasm::{Error, ErrorKind};
use serde_json::json;

fn corpus() -> PathBuf {
    let p = std::env::var("QEW_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/corpus"));
    assert!(
        p.join("fixtures/multi/segments").is_dir(),
        "corpus missing at {}: run `python tests/corpus/generate.py`",
        p.display()
    );
    p
}

/// The `multi` fixture shard copied into memory.
fn multi_in_memory() -> MemoryStorage {
    let s = MemoryStorage::new();
    common::copy_dir_to_storage(&corpus().join("fixtures/multi"), &s).expect("copy shard");
    s
}

fn write(s: &MemoryStorage, path: &str, data: &[u8]) {
    let f = s.open(path, OpenMode::Create).unwrap();
    f.set_len(0).unwrap();
    f.write_at(0, data).unwrap();
}

fn load_err(s: MemoryStorage) -> Error {
    match EdgeShard::load(Arc::new(s), "") {
        Ok(_) => panic!("a corrupted shard loaded"),
        Err(e) => e,
    }
}

#[test]
fn unmodified_copy_loads() {
    let shard = EdgeShard::load(Arc::new(multi_in_memory()), "").unwrap();
    assert_eq!(dispatch(&shard, "count", &json!({})).unwrap(), json!({"count": 2568}));
}

#[test]
fn newer_segment_version_is_unsupported() {
    let s = multi_in_memory();
    let seg = &common::segment_dirs(&s)[0];
    write(&s, &format!("{seg}/version.info"), b"0.9.0");
    let e = load_err(s);
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("version.info"), "error must name the file: {e}");
}

#[test]
fn garbage_version_is_corrupted() {
    let s = multi_in_memory();
    let seg = &common::segment_dirs(&s)[0];
    write(&s, &format!("{seg}/version.info"), b"\xff\xfe");
    let e = load_err(s);
    assert!(matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported), "{e}");
    assert!(e.to_string().contains("version.info"), "{e}");
}

#[test]
fn unknown_config_variant_names_the_file() {
    let s = multi_in_memory();
    for seg in common::segment_dirs(&s) {
        let path = format!("{seg}/segment.json");
        let text = String::from_utf8(s.read_all(&path).unwrap().to_vec()).unwrap();
        assert!(text.contains("\"Euclid\""));
        write(&s, &path, text.replace("\"Euclid\"", "\"Hamming\"").as_bytes());
    }
    let e = load_err(s);
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains("segment.json"), "{e}");
}

#[test]
fn missing_segment_json_is_an_error() {
    let s = multi_in_memory();
    let seg = &common::segment_dirs(&s)[0];
    s.remove_file(&format!("{seg}/segment.json")).unwrap();
    let e = load_err(s);
    assert!(e.to_string().contains("segment.json"), "{e}");
}

#[test]
fn truncated_and_flipped_files_never_panic() {
    // Every file of the appendable segment, truncated at a few points and with a bit flipped at a
    // few offsets: load (and a scroll if it loads) returns Ok or an error, never panics.
    let base = multi_in_memory();
    let seg = common::segment_dirs(&base).into_iter().find(|d| {
        String::from_utf8_lossy(&base.read_all(&format!("{d}/segment.json")).unwrap()).contains("InRamChunkedMmap")
    });
    let seg = seg.expect("an appendable segment");
    let mut files = Vec::new();
    let mut stack = vec![seg.clone()];
    while let Some(d) = stack.pop() {
        for e in base.list_dir(&d).unwrap() {
            let p = format!("{d}/{}", e.name);
            match e.kind {
                EntryKind::Dir => stack.push(p),
                EntryKind::File => files.push(p),
            }
        }
    }
    let mut errors = 0;
    let mut runs = 0;
    for f in &files {
        let data = base.read_all(f).unwrap();
        let len = data.len() as u64;
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for cut in [0, len / 3, len.saturating_sub(1)] {
            variants.push(data[..cut as usize].to_vec());
        }
        for at in [0usize, 4, 8, 13, 20].into_iter().filter(|&a| a < data.len().min(64 * 1024)) {
            let mut d = data.to_vec();
            d[at] ^= 0x40;
            variants.push(d);
        }
        for v in variants {
            let s = base.deep_clone();
            write(&s, f, &v);
            runs += 1;
            // Open just this segment (the shard's other, large segment is not involved) and read
            // every live point's payload and vectors.
            let opened = Segment::open(&s, &seg, MemoryPlan::default()).and_then(|segment| {
                let names: Vec<String> = segment.vectors.keys().cloned().collect();
                for (_, i, _) in segment.live_points().collect::<Vec<_>>() {
                    segment.payload(i)?;
                    for n in &names {
                        segment.vector(n, i)?;
                    }
                }
                Ok(())
            });
            match opened {
                Ok(()) => {}
                Err(e) => {
                    errors += 1;
                    // Typed, and pointing at a file.
                    assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::Corrupted | ErrorKind::Unsupported | ErrorKind::Io | ErrorKind::NotFound
                        ),
                        "{e}"
                    );
                }
            }
        }
    }
    assert!(runs > 50, "only {runs} corruptions tried");
    assert!(errors > 0, "no corruption was detected at all");
}

#[test]
fn malformed_requests_name_the_field() {
    let shard = EdgeShard::load(Arc::new(multi_in_memory()), "").unwrap();
    let z16 = vec![0.0f32; 16];
    let cases = [
        ("scroll", json!({"limitt": 3}), "limitt"),
        ("scroll", json!({"limit": "ten"}), "limit"),
        ("count", json!({"filter": {"must": [{"key": "n", "range": {"gt": "x"}}]}}), "filter.must[0]"),
        ("count", json!({"filter": {"must": [{"key": "n", "matchh": {"value": 1}}]}}), "filter.must[0]"),
        ("query", json!({"query": [1.0, 2.0], "using": "dense"}), "query"),
        ("query", json!({"query": z16, "using": "nope"}), "using"),
        ("query", json!({"query": z16, "using": "dense", "with_payload": 3}), "with_payload"),
        ("query", json!({"query": {"nearest": z16, "extra": 1}, "using": "dense"}), "query"),
        ("retrieve", json!({"ids": [-1]}), "ids"),
        ("retrieve", json!({"ids": ["not-a-uuid"]}), "ids"),
        ("facet", json!({"key": "n"}), "key"),
        ("facet", json!({}), ""),
    ];
    for (cmd, body, field) in cases {
        let e = dispatch(&shard, cmd, &body).expect_err(&format!("{cmd} {body} must fail"));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{cmd} {body}: {e}");
        let got = e.to_json();
        if !field.is_empty() {
            let f = got["field"].as_str().unwrap_or_default();
            assert!(f.starts_with(field), "{cmd} {body}: field {f:?} should start with {field:?} ({e})");
        }
    }
    // 1e39 does not fit in f32: an infinite query component is refused.
    let mut v = vec![json!(0.0); 16];
    v[3] = json!(1e39);
    let e = dispatch(&shard, "query", &json!({"query": v, "using": "dense"})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("infinite"), "{e}");
    let e = dispatch(&shard, "nope", &json!({})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn closed_shard_refuses_reads() {
    let mut shard = EdgeShard::load(Arc::new(multi_in_memory()), "").unwrap();
    shard.close().unwrap();
    let e = dispatch(&shard, "count", &json!({})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ShardClosed);
}
