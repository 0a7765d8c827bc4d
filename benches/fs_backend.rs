//! Filesystem-backend benchmark binary for `benches/run_browser.py` (not a test): the native
//! reference row of the "Browser backends" table, through the same REST-shaped calls the npm
//! package makes (`dispatch_update` / `dispatch` with JSON bodies).
//!
//! `cargo bench --bench fs_backend -- <shard-dir> <data-dir> <out.json>`
//!
//! `<data-dir>` holds what the driver generated: `meta.json` (`points`, `dim`, `batch`, `limit`,
//! `queries`), `vectors.f32` and `queries.f32` (raw little-endian f32, `dim` per row). The shard is
//! created empty on `FsStorage`, the points are upserted in batches (each call synced before it
//! returns), flushed, then every query is asked once unfiltered and once with the filter
//! `cat == 3`, exact, one at a time. Payload of point `i`: `{"n": i % 100, "cat": i % 10}`.
//! `out.json` gets the timings, and the ids and scores of every answer for the driver's checks.

use std::sync::Arc;
use std::time::Instant;

use qdrant_edge_wasm::api::{dispatch, dispatch_update};
use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::FsStorage;
use serde_json::{json, Value};

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let raw = std::fs::read(path).expect("read f32 file");
    raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() != 3 {
        eprintln!("usage: fs_backend <shard-dir> <data-dir> <out.json>");
        std::process::exit(2);
    }
    let data_dir = std::path::Path::new(&args[1]);
    let meta: Value = serde_json::from_slice(&std::fs::read(data_dir.join("meta.json")).expect("meta.json")).unwrap();
    let get = |k: &str| meta[k].as_u64().unwrap_or_else(|| panic!("meta.{k}")) as usize;
    let (n, dim, batch, limit) = (get("points"), get("dim"), get("batch"), get("limit"));
    let vectors = read_f32(&data_dir.join("vectors.f32"));
    let queries = read_f32(&data_dir.join("queries.f32"));
    assert_eq!(vectors.len(), n * dim);

    let _ = std::fs::remove_dir_all(&args[0]);
    let config: EdgeConfig =
        serde_json::from_value(json!({"vectors": {"": {"size": dim, "distance": "Cosine"}}})).unwrap();
    let mut shard = EdgeShard::create(Arc::new(FsStorage::new(&args[0]).unwrap()), "", config).unwrap();

    // upsert: the REST body is built inside the timed loop, as the JS callers build theirs
    let mut batch_ms = Vec::new();
    let t0 = Instant::now();
    for start in (0..n).step_by(batch) {
        let tb = Instant::now();
        let points: Vec<Value> = (start..(start + batch).min(n))
            .map(|i| json!({"id": i, "vector": &vectors[i * dim..(i + 1) * dim], "payload": {"n": i % 100, "cat": i % 10}}))
            .collect();
        dispatch_update(&mut shard, "upsert", &json!({ "points": points })).expect("upsert");
        batch_ms.push(tb.elapsed().as_secs_f64() * 1e3);
    }
    let upsert_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    shard.flush().unwrap();
    let flush_s = t1.elapsed().as_secs_f64();

    let mut variants = serde_json::Map::new();
    for (name, filter) in
        [("plain", Value::Null), ("filtered", json!({"must": [{"key": "cat", "match": {"value": 3}}]}))]
    {
        let bodies: Vec<Value> = queries
            .chunks_exact(dim)
            .map(|q| {
                let mut b = json!({"query": q, "limit": limit, "params": {"exact": true}});
                if !filter.is_null() {
                    b["filter"] = filter.clone();
                }
                b
            })
            .collect();
        for b in bodies.iter().take(5) {
            dispatch(&shard, "query", b).expect("warm-up query");
        }
        let mut lat = Vec::with_capacity(bodies.len());
        let mut ids = Vec::with_capacity(bodies.len());
        let mut scores = Vec::with_capacity(bodies.len());
        let total = Instant::now();
        for b in &bodies {
            let t = Instant::now();
            let r = dispatch(&shard, "query", b).expect("query");
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            let pts = r["points"].as_array().unwrap();
            ids.push(pts.iter().map(|p| p["id"].clone()).collect::<Vec<_>>());
            scores.push(pts.iter().map(|p| p["score"].clone()).collect::<Vec<_>>());
        }
        let total_s = total.elapsed().as_secs_f64();
        variants.insert(name.into(), json!({"latencies_ms": lat, "ids": ids, "scores": scores, "total_s": total_s}));
    }
    let out = json!({"points": n, "upsert_s": upsert_s, "flush_s": flush_s, "batch_ms": batch_ms, "queries": variants});
    std::fs::write(&args[2], serde_json::to_vec(&out).unwrap()).expect("write out");
}
