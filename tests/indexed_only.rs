//! `params.indexed_only` against qdrant-edge-py on shards on both sides of Qdrant's limit
//! (a segment without a graph of the searched vector is left out when scanning it would read
//! more than 10 000 KB of vectors; see `tests/corpus/indexed_only_oracle.py`).
//!
//! * Every request (dense and multivector, unfiltered, an indexed filter, an unindexed filter,
//!   `indexed_only` on and off) gives qdrant-edge-py's ids and scores on each shard.
//! * A point upserted into our overlay counts as part of the appendable segment: the 10 000
//!   point shard plus that point answers as qdrant-edge-py's 10 001 point shard.

mod common;

use std::sync::Arc;

use qdrant_edge_wasm::api::{dispatch, dispatch_update};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::FsStorage;
use serde_json::{json, Value};

type Answer = Result<Vec<(Value, f64)>, String>;

fn parse_oracle(v: &Value) -> Answer {
    match v.as_array() {
        Some(a) => Ok(a.iter().map(|p| (p[0].clone(), p[1].as_f64().unwrap())).collect()),
        None => Err(v["error"].as_str().unwrap().to_string()),
    }
}

fn ours(shard: &EdgeShard, body: &Value) -> Answer {
    match dispatch(shard, "search", body) {
        Ok(v) => Ok(v.as_array().unwrap().iter().map(|p| (p["id"].clone(), p["score"].as_f64().unwrap())).collect()),
        Err(e) => Err(e.to_string()),
    }
}

fn same(a: &Answer, b: &Answer) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() <= 1e-5 * x.1.abs().max(1.0))
        }
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

fn check(name: &str, shard: &EdgeShard, requests: &[Value], expected: &[Value]) {
    for (i, (body, want)) in requests.iter().zip(expected).enumerate() {
        let want = parse_oracle(want);
        let got = ours(shard, body);
        assert!(
            same(&got, &want),
            "{name}, request {i} ({}): ours {got:?}, qdrant-edge-py {want:?}",
            json!({"using": body["vector"]["name"], "filter": body.get("filter"), "params": body["params"]})
        );
    }
}

#[test]
fn indexed_only_leaves_out_large_unindexed_segments_as_qdrant() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::run_oracle_script("indexed_only_oracle.py", &["run", tmp.path().to_str().unwrap()]);
    let requests = out["requests"].as_array().unwrap();
    let shards = out["shards"].as_object().unwrap();
    let answers = |name: &str| shards[name]["answers"].as_array().unwrap().clone();

    // The fixture straddles the limit: the first request (dense, unfiltered, indexed_only) is
    // answered on 10 000 points and empty on 10 001; the same for the multivector pair.
    let first_dense = 0;
    let first_multi = requests.iter().position(|r| r["vector"]["name"] == "m").unwrap();
    assert!(!answers("dense_10000")[first_dense].as_array().unwrap().is_empty());
    assert!(answers("dense_10001")[first_dense].as_array().unwrap().is_empty());
    assert!(!answers("multi_below")[first_multi].as_array().unwrap().is_empty());
    assert!(answers("multi_above")[first_multi].as_array().unwrap().is_empty());

    for (name, _) in shards {
        let shard = EdgeShard::load(Arc::new(FsStorage::new(tmp.path().join(name)).unwrap()), "").unwrap();
        check(name, &shard, requests, &answers(name));
    }

    // One more point in the overlay tips the 10 000 point shard over the limit.
    let mut shard = EdgeShard::load(Arc::new(FsStorage::new(tmp.path().join("dense_10000")).unwrap()), "").unwrap();
    dispatch_update(&mut shard, "upsert", &json!({"points": [out["extra_point"]]})).unwrap();
    check("dense_10000 + overlay point", &shard, requests, &answers("dense_10001"));
}
