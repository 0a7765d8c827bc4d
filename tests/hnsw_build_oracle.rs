//! HNSW graphs built by our `optimize`, against qdrant-edge-py 0.9.0.
//!
//! `tests/corpus/hnsw_build_oracle.py make` writes a shard (one appendable segment, 4000
//! clustered points, 3% deleted) with four vectors: Cosine f32 (the shard's `hnsw_config`),
//! Euclid float16 (its own `hnsw_config`), Dot uint8, and Cosine MaxSim multivectors; some
//! points lack some vectors. Two copies: ours (optimized by our engine) and theirs (optimized by
//! qdrant-edge-py).
//!
//! 1. Our optimized segment's `segment.json` vector configs and every `hnsw_config.json` equal
//!    Qdrant's (`full_scan_threshold` in vectors, `indexed_vector_count`, m/m0/ef), and `info`'s
//!    indexed vector count is the same from our engine and from qdrant-edge-py on both copies.
//!    Our writer, given the graphs Qdrant built (decoded by our reader) and Qdrant's order of
//!    equal-level points, writes Qdrant's `links_compressed.bin` and `graph.bin` byte for byte
//!    (header, offsets compression parameters, packed lists, entry points and their capacity).
//! 2. Qdrant walks our graphs: qdrant-edge-py's `exact: false` answers (hnsw_ef 32, 64, 128)
//!    on our copy equal our engine's on the same graph (ids and order; scores to 1e-5 relative),
//!    for 60 queries per vector.
//! 3. Quality: recall@10 (against the exact answers) of Qdrant searching our graphs is at least
//!    the recall of Qdrant searching the graphs it built itself, minus `recall_tolerance(ef)`
//!    (Qdrant's build draws random levels and inserts in parallel, so its own recall varies
//!    from build to build). Both recalls are printed, with the mean list lengths per level.
//! 4. Without Python (`graph_planning_rules`): which rewrites get graphs (an indexing rewrite,
//!    a merge above the threshold) and which stay plain (a merge below it, threshold 0), the
//!    derived `hnsw_config.json` values, and byte-identical files when the same data is
//!    optimized twice.
//!
//! The interpreter is `QEW_PYTHON` or `.venv/bin/python`; without `qdrant_edge` the test FAILS.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use common::ranked::{agreement, Agreement, Ties};
use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::format::hnsw::HnswGraph;
use qdrant_edge_wasm::format::hnsw_write::{serialize_graph_bin, serialize_links_compressed_in_order, BuiltGraph};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{FsStorage, Storage};
use serde_json::{json, Value};

const N: usize = 4000;
const EFS: [usize; 3] = [32, 64, 128];
/// Allowed recall@10 shortfall of our graphs against Qdrant's own (absolute), at ef 32 and at
/// ef 64/128. Measured over 5 runs (5 seeds for ours, 5 builds of Qdrant's, which inserts in
/// parallel in a varying order): at ef 32 ours averaged 0.3-1.0 points lower and single runs
/// differed by up to 2.1 points (Qdrant's own results spread over 1.5-2 points); at ef 64 and
/// 128 the averages were within 0.5 points and single runs within 1.2 points. The insertion
/// order alone moves our ef-32 recall as much (interleaving or shuffling the ids, as Qdrant's
/// parallel build effectively does: `c` 0.963-0.980, `m` 0.902-0.930), so the gap is build
/// variance, not a difference in the algorithm.
fn recall_tolerance(ef: usize) -> f64 {
    if ef <= 32 {
        0.03
    } else {
        0.02
    }
}
const NAMES: [&str; 4] = ["c", "e", "u", "m"];

fn run_py(args: &[&str]) -> Value {
    common::run_oracle_script("hnsw_build_oracle.py", args)
}

fn read_json(st: &FsStorage, path: &str) -> Value {
    serde_json::from_slice(&st.read_all(path).unwrap()).unwrap()
}

type Answer = Vec<(u64, f64)>;
/// Per (vector, ef): Qdrant's answers on our graph, on its own graph, and the exact answers.
type Runs = (Vec<Answer>, Vec<Answer>, Vec<Answer>);

fn parse_answers(v: &Value) -> Vec<Answer> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect())
        .collect()
}

/// A graph as our writer takes it, from Qdrant's files: the lists the reader decodes, each
/// point's level from the links file's `reindex` and `level_offsets`, the extra entry point
/// capacity from Qdrant's rule `max(1, points / full_scan_threshold * 10)`.
fn rebuild(g: &HnswGraph, links_file: &[u8], cfg: &Value) -> BuiltGraph {
    let u64_at = |o: usize| u64::from_le_bytes(links_file[o..o + 8].try_into().unwrap());
    let (n, levels) = (u64_at(0) as usize, u64_at(16) as usize);
    let level_offsets: Vec<u64> = (0..levels).map(|l| u64_at(64 + 8 * l)).collect();
    let reindex_at = 64 + 8 * levels;
    // points reaching level L >= 1: level_offsets[L+1] - level_offsets[L]; for the last level,
    // the offsets count (header byte 32) minus level_offsets[last] minus 1
    let offsets_len = u64_at(32);
    let mut out = Vec::with_capacity(n);
    let mut buf = Vec::new();
    for p in 0..n {
        let r = u32::from_le_bytes(links_file[reindex_at + 4 * p..reindex_at + 4 * p + 4].try_into().unwrap()) as u64;
        // the point reaches level L >= 1 iff its reindex is below the count of points at L
        let mut top = 0;
        for l in 1..levels {
            let count = if l + 1 < levels {
                level_offsets[l + 1] - level_offsets[l]
            } else {
                offsets_len - 1 - level_offsets[l]
            };
            if r < count {
                top = l;
            }
        }
        let mut lv = Vec::new();
        for l in 0..=top {
            buf.clear();
            g.links(p as u32, l, &mut buf);
            lv.push(buf.clone());
        }
        out.push(lv);
    }
    let fst = cfg["full_scan_threshold"].as_u64().unwrap();
    BuiltGraph {
        m: g.m_of(1),
        m0: g.m_of(0),
        ef_construct: cfg["ef_construct"].as_u64().unwrap() as usize,
        links: out,
        entry_points: g.entry_points.clone(),
        extra_entry_points: g.extra_entry_points.clone(),
        extra_capacity: ((n as u64).checked_div(fst).unwrap_or(0) * 10).max(1) as usize,
    }
}

/// Mean list length per level (over the points reaching the level).
fn degrees(st: &FsStorage, dir: &str) -> Vec<f64> {
    let g = HnswGraph::open(st, dir).unwrap().unwrap();
    let mut sums = vec![(0usize, 0usize); g.levels()];
    let mut links = Vec::new();
    for p in 0..g.point_count as u32 {
        for (l, s) in sums.iter_mut().enumerate() {
            links.clear();
            g.links(p, l, &mut links);
            if !links.is_empty() {
                s.0 += links.len();
                s.1 += 1;
            }
        }
    }
    sums.iter().map(|&(a, n)| a as f64 / n.max(1) as f64).collect()
}

fn recall(got: &[Answer], truth: &[Answer]) -> f64 {
    let mut hits = 0;
    let mut total = 0;
    for (g, t) in got.iter().zip(truth) {
        total += t.len();
        hits += g.iter().filter(|(id, _)| t.iter().any(|(x, _)| x == id)).count();
    }
    hits as f64 / total as f64
}

#[test]
fn optimize_builds_graphs_qdrant_walks() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    let made = run_py(&["make", ours.to_str().unwrap(), &N.to_string()]);
    let queries = &made["queries"];
    assert!(Command::new("cp").arg("-a").arg(&ours).arg(&theirs).status().unwrap().success());

    // Our optimize.
    let st = FsStorage::new(&ours).unwrap();
    let mut shard = EdgeShard::load(Arc::new(FsStorage::new(&ours).unwrap()), "").unwrap();
    let t = Instant::now();
    assert!(shard.optimize().unwrap(), "nothing optimized");
    let our_secs = t.elapsed().as_secs_f64();
    let our_info = dispatch(&shard, "info", &json!({})).unwrap();
    // Qdrant's optimize of the other copy.
    let their_secs = run_py(&["optimize", theirs.to_str().unwrap()])["seconds"].as_f64().unwrap();
    eprintln!("optimize of {N} points, 4 vectors: ours {our_secs:.2} s, qdrant-edge-py {their_secs:.2} s");

    // 1. Configs and counts.
    let th = FsStorage::new(&theirs).unwrap();
    let (seg, their_seg) = (common::optimized_segment(&st), common::optimized_segment(&th));
    let cfg = read_json(&st, &format!("{seg}/segment.json"));
    let their_cfg = read_json(&th, &format!("{their_seg}/segment.json"));
    assert_eq!(cfg["config"]["vector_data"], their_cfg["config"]["vector_data"]);
    let mut indexed = 0;
    for name in NAMES {
        let dir = format!("{seg}/vector_index-{name}");
        let ours_cfg = read_json(&st, &format!("{dir}/hnsw_config.json"));
        let their_cfg = read_json(&th, &format!("{their_seg}/vector_index-{name}/hnsw_config.json"));
        assert_eq!(ours_cfg, their_cfg, "hnsw_config.json of `{name}`");
        indexed += ours_cfg["indexed_vector_count"].as_u64().unwrap();
        assert!(st.is_file(&format!("{dir}/links_compressed.bin")).unwrap());
        let g = HnswGraph::open(&st, &dir).unwrap().expect("our graph opens");
        assert!(g.levels() >= 2, "`{name}`: {} levels", g.levels());
        let mut links = Vec::new();
        let mut linked = 0;
        for p in 0..g.point_count as u32 {
            links.clear();
            g.links(p, 0, &mut links);
            linked += usize::from(!links.is_empty());
        }
        assert_eq!(linked as u64, ours_cfg["indexed_vector_count"].as_u64().unwrap(), "`{name}`: linked points");
    }
    for name in NAMES {
        let (a, b) = (
            degrees(&st, &format!("{seg}/vector_index-{name}")),
            degrees(&th, &format!("{their_seg}/vector_index-{name}")),
        );
        eprintln!("mean links per level of `{name}`: ours {a:.2?}, Qdrant's {b:.2?}");
    }
    let py_ours = run_py(&["info", ours.to_str().unwrap()]);
    let py_theirs = run_py(&["info", theirs.to_str().unwrap()]);
    assert_eq!(py_ours["indexed"].as_u64(), Some(indexed));
    assert_eq!(py_theirs["indexed"].as_u64(), Some(indexed));
    assert_eq!(our_info["indexed_vectors_count"].as_u64(), Some(indexed));
    assert_eq!(py_ours["points"], py_theirs["points"]);

    // Our writer reproduces Qdrant's graph files byte for byte from the graphs it built.
    for name in NAMES {
        let dir = format!("{their_seg}/vector_index-{name}");
        let (links, graph_bin) = (
            th.read_all(&format!("{dir}/links_compressed.bin")).unwrap(),
            th.read_all(&format!("{dir}/graph.bin")).unwrap(),
        );
        let cfg = read_json(&th, &format!("{dir}/hnsw_config.json"));
        let g = HnswGraph::open(&th, &dir).unwrap().unwrap();
        let rebuilt = rebuild(&g, &links, &cfg);
        // Qdrant orders points of equal level arbitrarily: use its order (from its `reindex`).
        let n = rebuilt.links.len();
        let levels = u64::from_le_bytes(links[16..24].try_into().unwrap()) as usize;
        let at = 64 + 8 * levels;
        let mut order = vec![0u32; n];
        for p in 0..n {
            let r = u32::from_le_bytes(links[at + 4 * p..at + 4 * p + 4].try_into().unwrap());
            order[r as usize] = p as u32;
        }
        let ours_links = serialize_links_compressed_in_order(&rebuilt.links, rebuilt.m, rebuilt.m0, &order);
        if ours_links != links.as_ref() {
            let first = ours_links.iter().zip(links.iter()).position(|(a, b)| a != b);
            panic!(
                "`{name}`: links_compressed.bin differs from Qdrant's: lengths {} vs {}, first difference at {first:?}, headers {:?} vs {:?}",
                ours_links.len(),
                links.len(),
                &ours_links[..64],
                &links[..64]
            );
        }
        assert!(serialize_graph_bin(&rebuilt) == graph_bin.as_ref(), "`{name}`: graph.bin differs from Qdrant's");
    }

    // 2. and 3.: the same requests on both copies, through Qdrant and our engine.
    let mut reqs = Vec::new();
    for name in NAMES {
        for q in queries[name].as_array().unwrap() {
            reqs.push(json!({"using": name, "vector": q, "limit": 10, "ef": null, "exact": true}));
            for ef in EFS {
                reqs.push(json!({"using": name, "vector": q, "limit": 10, "ef": ef, "exact": false}));
            }
        }
    }
    let req_file = tmp.path().join("reqs.json");
    std::fs::write(&req_file, serde_json::to_vec(&reqs).unwrap()).unwrap();
    let py_on_ours = parse_answers(&run_py(&["query", ours.to_str().unwrap(), req_file.to_str().unwrap()]));
    let py_on_theirs = parse_answers(&run_py(&["query", theirs.to_str().unwrap(), req_file.to_str().unwrap()]));
    let mut engine = Vec::new();
    for r in &reqs {
        let mut body = json!({"query": r["vector"], "using": r["using"], "limit": 10, "with_payload": false});
        body["params"] = if r["exact"] == json!(true) { json!({"exact": true}) } else { json!({"hnsw_ef": r["ef"]}) };
        let res = dispatch(&shard, "query", &body).unwrap();
        engine.push(
            res["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["id"].as_u64().unwrap(), p["score"].as_f64().unwrap()))
                .collect::<Answer>(),
        );
    }

    let mut mismatches = Vec::new();
    let mut tie_orders = 0;
    let mut by_key: BTreeMap<(String, usize), Runs> = BTreeMap::new();
    let mut exact = Answer::new();
    for (i, r) in reqs.iter().enumerate() {
        let name = r["using"].as_str().unwrap().to_string();
        if r["exact"] == json!(true) {
            // exact answers are the same on both copies (same points, same stored vectors)
            let ids = |a: &Answer| a.iter().map(|x| x.0).collect::<Vec<_>>();
            assert_eq!(ids(&py_on_ours[i]), ids(&py_on_theirs[i]), "exact answers differ between the copies");
            exact = py_on_ours[i].clone();
            continue;
        }
        let ef = r["ef"].as_u64().unwrap() as usize;
        let (a, b) = (&py_on_ours[i], &engine[i]);
        // Runs of exactly equal scores may come in another order; the last, which the limit
        // may cut, may hold other points of the same score.
        match agreement(a, b, Ties::strict(1e-5).cut_last_run()) {
            Agreement::Exactly => {}
            Agreement::UpToTieOrder | Agreement::UpToBoundaryChoice => tie_orders += 1,
            Agreement::No => mismatches.push(format!("{name} ef {ef}: qdrant {a:?}\n   ours {b:?}")),
        }
        let e = by_key.entry((name, ef)).or_default();
        e.0.push(py_on_ours[i].clone());
        e.1.push(py_on_theirs[i].clone());
        e.2.push(exact.clone());
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} graph searches differ between Qdrant and our engine on our graph:\n{}",
        mismatches.len(),
        reqs.len() * 3 / 4,
        mismatches.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );

    eprintln!("graph searches equal up to the order of equal scores: {tie_orders}");

    let mut worse = Vec::new();
    for ((name, ef), (on_ours, on_theirs, exact)) in &by_key {
        let (r_ours, r_theirs) = (recall(on_ours, exact), recall(on_theirs, exact));
        eprintln!("recall@10 `{name}` ef {ef:>3}: our graph {r_ours:.4}, Qdrant's graph {r_theirs:.4}");
        let tol = recall_tolerance(*ef);
        if r_ours < r_theirs - tol {
            worse.push(format!("`{name}` ef {ef}: {r_ours:.4} < {r_theirs:.4} - {tol}"));
        }
    }
    assert!(worse.is_empty(), "our graphs have lower recall than Qdrant's: {worse:?}");
}

fn shard_config(indexing_threshold: u64) -> qdrant_edge_wasm::format::segment_meta::EdgeConfig {
    serde_json::from_value(json!({
        "vectors": {
            "a": {"size": 8, "distance": "Cosine"},
            "b": {"size": 4, "distance": "Euclid",
                  "hnsw_config": {"m": 4, "ef_construct": 16, "full_scan_threshold": 1, "max_indexing_threads": 0}}
        },
        "hnsw_config": {"m": 6, "ef_construct": 20, "full_scan_threshold": 2, "max_indexing_threads": 0},
        "optimizers": {"default_segment_number": 1, "indexing_threshold": indexing_threshold},
        "wal_enabled": false
    }))
    .unwrap()
}

fn upsert(shard: &mut EdgeShard, ids: std::ops::Range<u64>) {
    use qdrant_edge_wasm::api::updates::parse_update;
    let f = |i: u64, k: u64| (((i * 7919 + k * 104_729) % 1000) as f64 / 500.0) - 1.0;
    let points: Vec<Value> = ids
        .map(|i| {
            let mut v = json!({"a": (0..8).map(|k| f(i, k)).collect::<Vec<_>>()});
            if i % 4 != 0 {
                v["b"] = json!((0..4).map(|k| f(i, k + 8)).collect::<Vec<_>>());
            }
            json!({"id": i, "vector": v})
        })
        .collect();
    for op in parse_update("upsert", &json!({"points": points})).unwrap() {
        shard.update(op).unwrap();
    }
}

/// A shard in memory with 500 points of an 8-dim Cosine vector "a" and a 4-dim Euclid vector
/// "b" (own `hnsw_config`, on 3 points of 4): 400 optimized with an indexing threshold of
/// 10 KB (12.5 KB of "a"), then 100 more; then, if `then` is given, reloaded with that
/// threshold and optimized again (a merge of both segments).
fn memory_shard(then: Option<u64>) -> (qdrant_edge_wasm::storage::MemoryStorage, EdgeShard) {
    let st = qdrant_edge_wasm::storage::MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(st.clone()), "", shard_config(10)).unwrap();
    upsert(&mut shard, 0..400);
    assert!(shard.optimize().unwrap());
    upsert(&mut shard, 400..500);
    if let Some(t) = then {
        shard.close().unwrap();
        drop(shard);
        shard = EdgeShard::load_with_config(Arc::new(st.clone()), "", shard_config(t)).unwrap();
        assert!(shard.optimize().unwrap(), "the two segments are merged");
    }
    shard.flush().unwrap();
    (st, shard)
}

fn index_files(st: &qdrant_edge_wasm::storage::MemoryStorage) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for s in st.list_dir("segments").unwrap() {
        for e in st.list_dir(&format!("segments/{}", s.name)).unwrap() {
            if e.name.starts_with("vector_index") {
                for f in st.list_dir(&format!("segments/{}/{}", s.name, e.name)).unwrap() {
                    let p = format!("segments/{}/{}/{}", s.name, e.name, f.name);
                    out.insert(format!("{}/{}", e.name, f.name), st.read_all(&p).unwrap().to_vec());
                }
            }
        }
    }
    out
}

/// Which segments get graphs, with which parameters, and that builds are reproducible.
#[test]
fn graph_planning_rules() {
    let (st, shard) = memory_shard(None);
    let files = index_files(&st);
    let mut want: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|v| {
            ["graph.bin", "hnsw_config.json", "links_compressed.bin"].map(|f| format!("vector_index-{v}/{f}"))
        })
        .collect();
    want.sort();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), want);
    let a: Value = serde_json::from_slice(&files["vector_index-a/hnsw_config.json"]).unwrap();
    let b: Value = serde_json::from_slice(&files["vector_index-b/hnsw_config.json"]).unwrap();
    // "a": the shard's config m 6; 2 KB / 32 bytes per vector = 64 vectors
    assert_eq!(
        a,
        json!({"m": 6, "m0": 12, "ef_construct": 20, "ef": 20, "full_scan_threshold": 64,
        "max_indexing_threads": 0, "payload_m": null, "payload_m0": null, "indexed_vector_count": 400})
    );
    // "b": its own config (replacing the shard's); 300 of 400 points have it: 300*16/400 = 12
    // bytes on average -> 1024/12 = 85 vectors
    assert_eq!(
        b,
        json!({"m": 4, "m0": 8, "ef_construct": 16, "ef": 16, "full_scan_threshold": 85,
        "max_indexing_threads": 0, "payload_m": null, "payload_m0": null, "indexed_vector_count": 300})
    );
    assert_eq!(dispatch(&shard, "info", &json!({})).unwrap()["indexed_vectors_count"], json!(700));
    let seg = shard_segment_json(&st);
    assert_eq!(
        seg["a"]["index"],
        json!({"type": "hnsw", "options": {"m": 6, "ef_construct": 20, "full_scan_threshold": 2, "max_indexing_threads": 0}})
    );
    assert_eq!(
        seg["b"]["index"],
        json!({"type": "hnsw", "options": {"m": 4, "ef_construct": 16, "full_scan_threshold": 1, "max_indexing_threads": 0}})
    );
    // The same data optimized again writes the same files.
    let (st2, _) = memory_shard(None);
    assert_eq!(index_files(&st2), files);

    // Merged above the threshold: one graph over all 500 points.
    let (st, _) = memory_shard(Some(10));
    let a: Value = serde_json::from_slice(&index_files(&st)["vector_index-a/hnsw_config.json"]).unwrap();
    assert_eq!(a["indexed_vector_count"], json!(500));
    // Merged below the threshold (15.6 KB < 100 KB), and with threshold 0 (indexing disabled):
    // plain indexes, no graph files.
    for threshold in [100, 0] {
        let (st, shard) = memory_shard(Some(threshold));
        assert!(index_files(&st).is_empty(), "threshold {threshold}");
        let seg = shard_segment_json(&st);
        assert_eq!(seg["a"]["index"], json!({"type": "plain", "options": {}}));
        assert_eq!(seg["b"]["index"], json!({"type": "plain", "options": {}}));
        assert_eq!(dispatch(&shard, "info", &json!({})).unwrap()["indexed_vectors_count"], json!(0));
    }
}

/// `vector_data` of the optimized segment's `segment.json`.
fn shard_segment_json(st: &qdrant_edge_wasm::storage::MemoryStorage) -> Value {
    for s in st.list_dir("segments").unwrap() {
        let dir = format!("segments/{}", s.name);
        if st.is_file(&format!("{dir}/id_tracker.mappings")).unwrap() {
            let v: Value = serde_json::from_slice(&st.read_all(&format!("{dir}/segment.json")).unwrap()).unwrap();
            return v["config"]["vector_data"].clone();
        }
    }
    panic!("no optimized segment");
}
