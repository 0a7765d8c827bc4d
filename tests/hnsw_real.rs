//! Qdrant's HNSW graph and scalar-quantized files on real server bytes (the fixture shards of the
//! differential corpus, restored from Qdrant 1.19 snapshots), and damaged copies of them.
//!
//! * Every graph decodes: all lists of all levels hold ids below the point count, the number of
//!   points per level matches the level offsets, the first entry point is on the top level.
//! * Truncating or bit-flipping any graph, links, config or quantized file never panics: the
//!   shard either refuses to load with an error, or loads and answers an HNSW query (with an
//!   error or some answer).
//!
//! The answers themselves are checked against the server's in `differential.rs` and
//! `snapshot_apply.rs` (every `exact: false` request of the fixtures).

mod common;

use std::sync::Arc;

use serde_json::json;

use qdrant_edge_wasm::format::hnsw::HnswGraph;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{EntryKind, MemoryStorage, OpenMode, Storage};

fn fixture(c: &str) -> MemoryStorage {
    let st = MemoryStorage::new();
    common::copy_dir_to_storage(&common::corpus_dir().join("fixtures").join(c), &st).unwrap();
    st
}

/// `(path, len)` of every file under `dir`.
fn files(st: &MemoryStorage, dir: &str, out: &mut Vec<(String, u64)>) {
    for e in st.list_dir(dir).unwrap() {
        let p = format!("{dir}/{}", e.name);
        match e.kind {
            EntryKind::Dir => files(st, &p, out),
            EntryKind::File => {
                let len = st.open(&p, OpenMode::Read).unwrap().len().unwrap();
                out.push((p, len));
            }
        }
    }
}

fn index_dirs(st: &MemoryStorage) -> Vec<String> {
    let mut out = Vec::new();
    for s in st.list_dir("segments").unwrap() {
        for e in st.list_dir(&format!("segments/{}", s.name)).unwrap() {
            if e.kind == EntryKind::Dir && e.name.starts_with("vector_index") {
                out.push(format!("segments/{}/{}", s.name, e.name));
            }
        }
    }
    out
}

#[test]
fn server_graphs_decode_consistently() {
    let mut graphs = 0;
    for c in ["basic", "multi"] {
        let st = fixture(c);
        for dir in index_dirs(&st) {
            let Some(g) = HnswGraph::open(&st, &dir).unwrap() else { continue };
            graphs += 1;
            assert!(g.point_count > 0, "{dir}");
            assert_eq!(g.entry_points[0].level, g.levels() - 1, "{dir}: the first entry point is on the top level");
            let mut links = Vec::new();
            let mut per_level = vec![0usize; g.levels()];
            let mut total = 0usize;
            for p in 0..g.point_count as u32 {
                for (level, count) in per_level.iter_mut().enumerate() {
                    links.clear();
                    g.links(p, level, &mut links);
                    if level == 0 || !links.is_empty() {
                        *count += 1;
                    }
                    assert!(links.iter().all(|&l| (l as usize) < g.point_count && l != p), "{dir}: {p}@{level}");
                    total += links.len();
                }
            }
            assert_eq!(per_level[0], g.point_count);
            assert!(per_level.windows(2).all(|w| w[0] >= w[1]), "{dir}: {per_level:?}");
            assert!(total >= g.point_count, "{dir}: only {total} links");
            // Level-0 lists mostly reach m0 / 2 or more in a built graph.
            eprintln!("{dir}: {} points, levels {per_level:?}, {total} links", g.point_count);
        }
    }
    assert!(graphs >= 5, "only {graphs} graphs in the fixtures");
}

/// One way of damaging a copy of the shard.
type Mutation = Box<dyn Fn(&MemoryStorage)>;

#[test]
fn damaged_graph_and_quantized_files_never_panic() {
    let pristine = fixture("multi");
    let mut targets = Vec::new();
    for dir in index_dirs(&pristine) {
        files(&pristine, &dir, &mut targets);
    }
    for s in pristine.list_dir("segments").unwrap() {
        let mut fs = Vec::new();
        files(&pristine, &format!("segments/{}", s.name), &mut fs);
        targets.extend(fs.into_iter().filter(|(p, _)| p.contains("/quantized.")));
    }
    assert!(targets.iter().any(|(p, _)| p.ends_with("links_compressed.bin")));
    assert!(targets.iter().any(|(p, _)| p.ends_with("quantized.data")));
    let queries = [
        (
            "dense",
            json!({"query": [0.1, -0.2, 0.3, 0.0, 0.5, -0.1, 0.2, 0.9, 0.4, -0.3, 0.1, 0.0, 0.2, 0.2, -0.5, 0.1], "using": "dense", "limit": 5}),
        ),
        (
            "mv",
            json!({"query": [[0.1, 0.2, 0.3, 0.4]], "using": "mv", "limit": 5, "filter": {"must": [{"key": "flag", "match": {"value": true}}]}}),
        ),
    ];
    let mut mutations = 0;
    let mut load_errors = 0;
    for (path, len) in &targets {
        let mut variants: Vec<Mutation> = Vec::new();
        for cut in [0, 7, len / 2, len.saturating_sub(1)] {
            if cut < *len {
                let p = path.clone();
                variants.push(Box::new(move |st: &MemoryStorage| {
                    st.open(&p, OpenMode::ReadWrite).unwrap().set_len(cut).unwrap();
                }));
            }
        }
        let span = (*len).min(1 << 16);
        for k in 0..24u64 {
            let pos = k * span / 24 + (k % 3);
            if pos < *len {
                let p = path.clone();
                variants.push(Box::new(move |st: &MemoryStorage| {
                    let f = st.open(&p, OpenMode::ReadWrite).unwrap();
                    let mut b = [0u8];
                    f.read_at(pos, &mut b).unwrap();
                    f.write_at(pos, &[b[0] ^ [0x01, 0x80, 0xff][(k % 3) as usize]]).unwrap();
                }));
            }
        }
        for v in variants {
            let st = pristine.deep_clone();
            v(&st);
            mutations += 1;
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| EdgeShard::load(Arc::new(st), "")))
                .unwrap_or_else(|_| panic!("loading with a damaged {path} panicked"));
            let Ok(shard) = loaded else {
                load_errors += 1;
                continue;
            };
            for (name, q) in &queries {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    qdrant_edge_wasm::api::dispatch(&shard, "query", q).map(|_| ())
                }));
                assert!(r.is_ok(), "an HNSW query on `{name}` panicked with a damaged {path}");
            }
        }
    }
    eprintln!("{mutations} damaged copies, {load_errors} refused at load");
    assert!(mutations > 300 && load_errors > 0);
}
