//! `params.acorn` against qdrant-edge-py (see `tests/corpus/acorn_oracle.py`): the same
//! filtered HNSW searches on the same graph give the same ids and scores, with ACORN on at the
//! default and a raised `max_selectivity`, at 0 (never) and off, for filters whose estimated
//! selectivity falls on both sides of the bounds (indexed, unindexed, must, should, must_not).
//!
//! The oracle's answers with ACORN differ from its answers without it on many requests, so a
//! walk that ignored `acorn`, or took it on the wrong side of the bound, fails here.

mod common;

use std::sync::Arc;

use common::ranked::{agreement, Agreement, Ties};
use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage};
use serde_json::{json, Value};

type Answer = Vec<(u64, f64)>;

fn answer(v: &Value, id: &str, score: &str) -> Answer {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let (i, s) = if id.is_empty() { (&p[0], &p[1]) } else { (&p[id], &p[score]) };
            (i.as_u64().unwrap(), s.as_f64().unwrap())
        })
        .collect()
}

#[test]
fn acorn_walk_matches_qdrant() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::run_oracle_script("acorn_oracle.py", &["run", tmp.path().to_str().unwrap()]);
    let requests = out["requests"].as_array().unwrap();
    let answers: Vec<Answer> = out["answers"].as_array().unwrap().iter().map(|a| answer(a, "", "")).collect();

    // The fixture is meaningful: ACORN changes the oracle's answer on many requests, and a
    // bound of 0 never does.
    let key = |r: &Value| json!([r["vector"], r["filter"], r["params"]["hnsw_ef"]]);
    let off = |r: &Value| {
        requests.iter().position(|o| key(o) == key(r) && o["params"]["acorn"]["enable"] == json!(false)).unwrap()
    };
    let mut changed = 0;
    for (i, r) in requests.iter().enumerate() {
        let acorn = &r["params"]["acorn"];
        if acorn["enable"] == json!(true) {
            let differs = answers[i] != answers[off(r)];
            if acorn["max_selectivity"] == json!(0.0) {
                assert!(!differs, "request {i}: a bound of 0 changed qdrant-edge-py's answer");
            }
            changed += usize::from(differs);
        }
    }
    assert!(changed >= 20, "ACORN changed only {changed} answers");

    let shard = EdgeShard::load(Arc::new(FsStorage::new(tmp.path().join("shard")).unwrap()), "").unwrap();
    let mut failed = Vec::new();
    for (i, (body, want)) in requests.iter().zip(&answers).enumerate() {
        let got = answer(&dispatch(&shard, "search", body).unwrap(), "id", "score");
        if agreement(want, &got, Ties::strict(1e-6)) != Agreement::Exactly {
            failed.push(format!(
                "request {i} (filter {}, params {}):\n  ours   {got:?}\n  theirs {want:?}",
                body["filter"], body["params"]
            ));
        }
    }
    assert!(failed.is_empty(), "{} of {} answers differ:\n{}", failed.len(), requests.len(), failed.join("\n"));
}

#[test]
fn acorn_bounds_are_validated() {
    let config = serde_json::from_value(json!({"vectors": {"": {"size": 2, "distance": "Dot"}}})).unwrap();
    let shard = EdgeShard::create(Arc::new(MemoryStorage::new()), "", config).unwrap();
    for bad in [json!(1.5), json!(-0.1)] {
        let body = json!({"vector": [1.0, 0.0], "limit": 1,
                          "params": {"acorn": {"enable": true, "max_selectivity": bad}}});
        let err = dispatch(&shard, "search", &body).unwrap_err().to_string();
        assert!(err.contains("max_selectivity"), "{err}");
    }
    let body = json!({"vector": [1.0, 0.0], "limit": 1, "params": {"quantization": {"oversampling": 0.5}}});
    let err = dispatch(&shard, "search", &body).unwrap_err().to_string();
    assert!(err.contains("oversampling"), "{err}");
}
