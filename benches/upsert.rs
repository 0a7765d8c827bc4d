//! Upsert throughput benchmark binary (not a test).
//!
//! `cargo bench --bench upsert -- <shard-dir> <vectors.f32> <dim> <batch> <out.json>`: creates a
//! Cosine shard on the filesystem backend, upserts the vectors (raw little-endian f32, `dim` per
//! point) with a small payload in batches through the typed update API (each batch one WAL
//! entry, synced), then flushes.

use std::sync::Arc;
use std::time::Instant;

use std::collections::BTreeMap;

use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::operations::{PointStruct, UpdateOperation};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::FsStorage;
use qdrant_edge_wasm::{PointId, VectorValue};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() != 5 {
        eprintln!("usage: upsert <shard-dir> <vectors.f32> <dim> <batch> <out.json>");
        std::process::exit(2);
    }
    let dim: usize = args[2].parse().unwrap();
    let batch: usize = args[3].parse().unwrap();
    let raw = std::fs::read(&args[1]).unwrap();
    let data: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let n = data.len() / dim;
    let _ = std::fs::remove_dir_all(&args[0]);
    let config: EdgeConfig =
        serde_json::from_value(json!({"vectors": {"": {"size": dim, "distance": "Cosine"}}})).unwrap();
    let mut shard = EdgeShard::create(Arc::new(FsStorage::new(&args[0]).unwrap()), "", config).unwrap();
    let t0 = Instant::now();
    for start in (0..n).step_by(batch) {
        let points: Vec<PointStruct> = (start..(start + batch).min(n))
            .map(|i| PointStruct {
                id: PointId::Num(i as u64),
                vectors: BTreeMap::from([(String::new(), VectorValue::Dense(data[i * dim..(i + 1) * dim].to_vec()))]),
                payload: json!({"n": i % 100}).as_object().cloned(),
            })
            .collect();
        shard.update(UpdateOperation::UpsertPoints(points)).unwrap();
    }
    let upsert_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    shard.flush().unwrap();
    let flush_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let optimized = shard.optimize().unwrap();
    let optimize_s = t2.elapsed().as_secs_f64();
    let out = json!({"points": n, "upsert_s": upsert_s, "flush_s": flush_s, "optimize_s": optimize_s, "optimized": optimized});
    std::fs::write(&args[4], out.to_string()).unwrap();
}
