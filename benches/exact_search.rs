//! Exact-search benchmark binary (not a test): loads a shard and times `query` requests.
//!
//! `cargo bench --bench exact_search -- <shard-dir> <queries.json> <out.json>`
//! `queries.json` is a list of REST query bodies; `out.json` gets the load time, the first
//! query's time right after the load, the latencies (ms) and the returned ids per query so the driver (`benches/run_exact.py`) can compare with qdrant-edge-py.

use std::sync::Arc;
use std::time::Instant;

use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::FsStorage;
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() != 3 {
        eprintln!("usage: exact_search <shard-dir> <queries.json> <out.json>");
        std::process::exit(2);
    }
    let t0 = Instant::now();
    let storage = FsStorage::new(&args[0]).expect("open shard dir");
    let shard = EdgeShard::load(Arc::new(storage), "").expect("load shard");
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let queries: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&args[1]).expect("read queries")).expect("parse queries");
    // The first query right after the load (anything the engine builds on first use, such
    // as payload postings, lands here), then a warm-up over a few queries.
    let t = Instant::now();
    if let Some(q) = queries.first() {
        dispatch(&shard, "query", q).expect("query");
    }
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    for q in queries.iter().take(5) {
        dispatch(&shard, "query", q).expect("query");
    }
    let mut lat = Vec::with_capacity(queries.len());
    let mut ids = Vec::with_capacity(queries.len());
    let total = Instant::now();
    for q in &queries {
        let t = Instant::now();
        let r = dispatch(&shard, "query", q).expect("query");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        ids.push(r["points"].as_array().unwrap().iter().map(|p| p["id"].clone()).collect::<Vec<_>>());
    }
    let total_s = total.elapsed().as_secs_f64();
    let out = json!({"load_ms": load_ms, "first_ms": first_ms, "latencies_ms": lat, "ids": ids, "total_s": total_s});
    std::fs::write(&args[2], serde_json::to_vec(&out).unwrap()).expect("write out");
}
