//! Product quantized vectors and scalar int8 quantized multivectors: our approximate searches
//! against qdrant-edge-py 0.9.0.
//!
//! `tests/corpus/pq_oracle.py make` writes a shard with one vector per case: product
//! quantization of dense vectors (compressions x4 to x64, Cosine, Dot, Euclid and Manhattan,
//! float32, float16 and uint8, dimensions that leave a shorter last chunk and chunk counts that
//! are not a multiple of four), product quantization of two max-sim multivectors, and scalar
//! int8 quantization of five max-sim multivectors (uint8 Cosine among them, whose queries Qdrant
//! normalises before encoding). N points are optimized into one segment (HNSW graphs, immutable
//! `quantized.data`, `quantized.offsets.data`); with `late` > 0 later upserts (new ids and
//! overwrites) and deletions stay in an appendable segment, which Qdrant never quantizes with
//! these kinds (exact scores there). Some points lack some vectors; a keyword index on `g`
//! serves the filters. Dimensions are chosen so that the filters' counts are far from the
//! graphs' `full_scan_threshold` (Qdrant samples the cardinality near it, so its choice between
//! the graph and a plain scan is random there).
//!
//! For every vector, 12 queries × 18 parameter sets (default, `rescore` false/true,
//! `oversampling` 2, 3 and 4, `ignore`, `exact`, `hnsw_ef` 16, filters matching ~25 % of the
//! points (graph walk with the filter) and ~1.5 % (plain scan of the matches)), limit 10, go
//! through qdrant-edge-py on a fresh load and through our engine on the same directory. The
//! answers must be equal id for id, in order, equal scores included, with the same score at
//! every position (1e-5 relative). Product quantized scores
//! are lookup-table sums added in Qdrant's order (on queries normalised with its roundings), so
//! in unrescored product answers every score of an optimized-segment point must also be
//! bit-identical to Qdrant's (counted and asserted); scalar scores may differ from Qdrant's
//! SIMD kernels in the last bit, so for them scores within the tolerance count as ties (order and
//! choice at the limit not compared).
//!
//! `…_with_inline_storage`: the same with `inline_storage` (the dense vectors' graphs carry
//! their original and product-quantized vectors, `links_comp_vec.bin`); walks over them come out
//! with exact scores, so only the other unrescored answers count for the bit and control checks.
//!
//! Negative control: the unrescored requests answered by our engine with `quantization.ignore`
//! (original vectors) must differ from Qdrant's for at least 95 %.
//! `damaged_pq_files_never_panic`: truncations and bit flips in the quantized files give a load
//! error or answers, never a panic.
//!
//! The interpreter is `QEW_PYTHON` or `.venv/bin/python`; without `qdrant_edge` the test FAILS.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::ranked::{agreement, Agreement, Run, Ties};
use common::{oracle_body, oracle_query};
use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{FsStorage, Storage};
use serde_json::{json, Value};

const N: usize = 2000;

type Answer = Vec<(u64, f64)>;

fn run_py(args: &[&str]) -> Value {
    common::run_oracle_script("pq_oracle.py", args)
}

/// Whether Qdrant's answer `a` and ours `b` agree: id for id with the same scores; with
/// `near_ties`, runs of nearly equal scores hold the same ids in any order, and the last run,
/// which the limit may cut between nearly equal scores, may hold other ids.
fn same(a: &Answer, b: &Answer, near_ties: bool) -> bool {
    let ties = Ties::strict(1e-5);
    if near_ties {
        agreement(a, b, ties.runs(Run::Close).cut_last_run()).is_same()
    } else {
        agreement(a, b, ties) == Agreement::Exactly
    }
}

fn param_sets() -> Vec<(Value, Value)> {
    let q = |v: Value| json!({"quantization": v});
    vec![
        (json!({}), Value::Null),
        (q(json!({"rescore": false})), Value::Null),
        (q(json!({"rescore": true})), Value::Null),
        (q(json!({"rescore": false, "oversampling": 2.0})), Value::Null),
        (q(json!({"rescore": true, "oversampling": 3.0})), Value::Null),
        (q(json!({"ignore": true})), Value::Null),
        (json!({"exact": true}), Value::Null),
        (json!({"hnsw_ef": 16}), Value::Null),
        (json!({"hnsw_ef": 16, "quantization": {"rescore": true}}), Value::Null),
        (json!({}), json!({"g": "a"})),
        (q(json!({"rescore": true})), json!({"g": "b"})),
        (json!({}), json!({"g": "rare"})),
        (q(json!({"rescore": true, "oversampling": 2.0})), json!({"g": "rare"})),
        (q(json!({"ignore": true})), json!({"g": "b"})),
        (json!({"exact": true}), json!({"g": "a"})),
        // 40 candidates: the top-k collector's selection path (k >= 32)
        (q(json!({"oversampling": 4.0})), json!({"g": "rare"})),
        (q(json!({"rescore": true, "oversampling": 4.0})), Value::Null),
        (q(json!({"rescore": false, "oversampling": 4.0})), json!({"g": "a"})),
    ]
}

/// Whether a request's answer keeps the quantized scores (product and scalar quantization do
/// not rescore by default).
fn unrescored(r: &Value) -> bool {
    let p = &r["params"];
    p.get("exact") != Some(&json!(true))
        && p.pointer("/quantization/ignore") != Some(&json!(true))
        && p.pointer("/quantization/rescore") != Some(&json!(true))
}

/// Make a shard (`late` later upserts kept in an appendable segment), run every request through
/// qdrant-edge-py and our engine and compare (module docs).
fn run_oracle(late: usize, inline: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shard");
    let inline_arg = if inline { "1" } else { "0" };
    let made = run_py(&["make", dir.to_str().unwrap(), &N.to_string(), &late.to_string(), inline_arg]);
    let names: Vec<String> = made["vectors"].as_object().unwrap().keys().cloned().collect();
    let product: Vec<Value> = made["product"].as_array().unwrap().clone();
    let multi: Vec<Value> = made["multi"].as_array().unwrap().clone();
    let late_ids: Vec<u64> = made["late_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(names.len() >= 12 && product.len() >= 7 && multi.len() >= 5);

    // The quantizations live in the optimized segment only.
    let st = FsStorage::new(&dir).unwrap();
    let (opt, app) = common::optimized_and_appendable(&st);
    for name in &names {
        let cfg = st.read_all(&format!("{opt}/vector_storage-{name}/quantized.config.json")).unwrap();
        let cfg: Value = serde_json::from_slice(&cfg).unwrap();
        let kind = if product.contains(&json!(name)) { "product" } else { "scalar" };
        assert!(cfg.pointer(&format!("/quantization_config/{kind}")).is_some(), "{name}: {cfg}");
        assert!(st.is_file(&format!("{opt}/vector_storage-{name}/quantized.data")).unwrap(), "{name}");
        if multi.contains(&json!(name)) {
            assert!(st.is_file(&format!("{opt}/vector_storage-{name}/quantized.offsets.data")).unwrap(), "{name}");
        }
        assert!(!st.is_file(&format!("{app}/vector_storage-{name}/quantized.config.json")).unwrap(), "{name}");
        let inline_graph = st.is_file(&format!("{opt}/vector_index-{name}/links_comp_vec.bin")).unwrap();
        assert_eq!(inline_graph, inline && !multi.contains(&json!(name)), "{name}: links_comp_vec.bin");
    }

    let reqs = common::oracle_requests(&made, &names, &param_sets());
    let theirs = common::oracle_answers("pq_oracle.py", tmp.path(), &dir, &reqs);

    let shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
    let mut mismatches = Vec::new();
    let (mut equal, mut pq_unrescored, mut pq_bit_equal) = (0, 0, 0);
    let (mut control_total, mut control_same) = (0, 0);
    for (r, a) in reqs.iter().zip(&theirs) {
        assert!(!a.is_empty(), "Qdrant found nothing for {r}");
        let b = oracle_query(&shard, r);
        let is_product = product.contains(&r["using"]);
        // Scalar scores: Qdrant's SIMD kernels may round the last bit differently, so nearly
        // equal scores are ties whose order and choice (at the limit) are not compared.
        let near_ties = !is_product;
        if same(a, &b, near_ties) {
            equal += 1;
        } else {
            mismatches
                .push(format!("{} {} filter {}: qdrant {a:?}\n   ours   {b:?}", r["using"], r["params"], r["filter"]));
        }
        // Graph walks over inline vectors give exact scores (Qdrant's inline-vector walk); the
        // rare filter's matches are scanned plainly with the quantized scores.
        let inline_walk = inline && !multi.contains(&r["using"]) && r["filter"].get("g") != Some(&json!("rare"));
        if !unrescored(r) || inline_walk {
            continue;
        }
        if is_product {
            pq_unrescored += 1;
            // Points of the appendable segment have exact scores (f32 kernels, compared within
            // the tolerance only).
            let quantized = |id: u64| late_ids.binary_search(&id).is_err();
            if a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| !quantized(x.0) || x.1 as f32 == y.1 as f32) {
                pq_bit_equal += 1;
            }
        }
        // Negative control: the same request scored with the original vectors.
        control_total += 1;
        let mut c = r.clone();
        c["params"] = json!({"quantization": {"ignore": true}});
        if same(a, &oracle_query(&shard, &c), near_ties) {
            control_same += 1;
        }
    }
    eprintln!(
        "{} requests: {equal} equal, {} differ; product unrescored: {pq_bit_equal} of {pq_unrescored} bit-identical \
         scores; negative control: {control_same} of {control_total} unrescored answers also equal without quantization",
        reqs.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} quantized searches differ between Qdrant and our engine:\n{}",
        mismatches.len(),
        reqs.len(),
        mismatches.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(pq_bit_equal, pq_unrescored, "product quantized scores not bit-identical");
    assert!(
        control_same * 20 < control_total,
        "{control_same} of {control_total} answers do not depend on the quantized data"
    );
}

#[test]
fn pq_and_multivector_scalar_searches_match_qdrant_one_segment() {
    run_oracle(0, false);
}

#[test]
fn pq_and_multivector_scalar_searches_match_qdrant_with_appendable_segment() {
    run_oracle(240, false);
}

/// Graphs with inline vectors (`inline_storage`): the dense vectors' graphs carry the original
/// and the product-quantized vectors, searched with Qdrant's inline-vector walk.
#[test]
fn pq_searches_match_qdrant_with_inline_storage() {
    run_oracle(0, true);
}

/// One way of damaging a file.
type Damage = Box<dyn Fn(&Path)>;

/// Copy `src` (a file) aside, run `f`, put it back.
fn with_damaged(path: &Path, damage: impl FnOnce(&Path), f: impl FnOnce()) {
    let saved = path.with_extension("saved");
    std::fs::copy(path, &saved).unwrap();
    damage(path);
    f();
    std::fs::rename(&saved, path).unwrap();
}

#[test]
fn damaged_pq_files_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shard");
    let made = run_py(&["make", dir.to_str().unwrap(), "600", "0"]);
    let st = FsStorage::new(&dir).unwrap();
    let (opt, _) = common::optimized_and_appendable(&st);
    let names = ["pc16", "pm32", "ph64", "mpe", "msu", "msd"];
    let mut targets = Vec::new();
    for name in names {
        for f in ["quantized.meta.json", "quantized.config.json", "quantized.data", "quantized.offsets.data"] {
            if name.starts_with('m') || !f.contains("offsets") {
                targets.push(format!("{opt}/vector_storage-{name}/{f}"));
            }
        }
    }
    let (mut mutations, mut load_errors, mut query_errors) = (0, 0, 0);
    for t in &targets {
        let path = dir.join(t);
        let len = std::fs::metadata(&path).unwrap().len();
        let using = t.split("vector_storage-").nth(1).unwrap().split('/').next().unwrap();
        let vector = made["queries"][using][0].clone();
        // Truncations, then bit flips spread over the file.
        let mut damages: Vec<Damage> = Vec::new();
        for cut in [0, 7, len / 2, len.saturating_sub(1)] {
            if cut < len {
                damages.push(Box::new(move |p: &Path| {
                    std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(cut).unwrap();
                }));
            }
        }
        for k in 0..16u64 {
            let pos = (k * len / 16 + (k % 3)) as usize;
            if (pos as u64) < len {
                damages.push(Box::new(move |p: &Path| {
                    use std::io::{Read, Seek, SeekFrom, Write};
                    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(p).unwrap();
                    let mut b = [0u8];
                    f.seek(SeekFrom::Start(pos as u64)).unwrap();
                    f.read_exact(&mut b).unwrap();
                    f.seek(SeekFrom::Start(pos as u64)).unwrap();
                    f.write_all(&[b[0] ^ [0x01, 0x80, 0xff][(k % 3) as usize]]).unwrap();
                }));
            }
        }
        for d in damages {
            mutations += 1;
            with_damaged(&path, d, || {
                let loaded = std::panic::catch_unwind(|| EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), ""))
                    .unwrap_or_else(|_| panic!("loading with a damaged {t} panicked"));
                let Ok(shard) = loaded else {
                    load_errors += 1;
                    return;
                };
                for (params, filter) in param_sets() {
                    let r = json!({"using": using, "vector": vector, "limit": 10, "params": params, "filter": filter});
                    let body = oracle_body(&r);
                    let res =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&shard, "query", &body)))
                            .unwrap_or_else(|_| panic!("a query on `{using}` panicked with a damaged {t}"));
                    if res.is_err() {
                        query_errors += 1;
                    }
                }
            });
        }
    }
    eprintln!("{mutations} damaged copies, {load_errors} refused at load, {query_errors} query errors");
    assert!(mutations > 300 && load_errors > 0);
}
