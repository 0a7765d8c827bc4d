//! Slot I/O counts of the OPFS layout (not a test): for `benches/run_browser.py`'s reading of
//! the OPFS row. The same upserts and flush as `fs_backend`, on a `PoolStorage` (the storage
//! the OPFS backend uses) whose slot and journal files are in-memory slots that count calls:
//! every `write_at` / `flush` here is one call on a `FileSystemSyncAccessHandle` in the browser.
//!
//! `cargo bench --bench pool_io -- <data-dir> <out.json>` (the driver's generated data).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use qdrant_edge_wasm::api::dispatch_update;
use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::pool::{MemSlot, PoolStorage, Slot};
use qdrant_edge_wasm::storage::StorageResult;
use serde_json::{json, Value};

#[derive(Default, Debug)]
struct Counts {
    writes: AtomicU64,
    bytes: AtomicU64,
    flushes: AtomicU64,
    truncates: AtomicU64,
}

#[derive(Debug)]
struct Counting(MemSlot, Arc<Counts>);

impl Slot for Counting {
    fn len(&self) -> StorageResult<u64> {
        self.0.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        self.0.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        self.1.writes.fetch_add(1, Ordering::Relaxed);
        self.1.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.0.write_at(offset, data)
    }
    fn truncate(&self, len: u64) -> StorageResult<()> {
        self.1.truncates.fetch_add(1, Ordering::Relaxed);
        self.0.truncate(len)
    }
    fn flush(&self) -> StorageResult<()> {
        self.1.flushes.fetch_add(1, Ordering::Relaxed);
        self.0.flush()
    }
}

fn snap(c: &Counts) -> [u64; 4] {
    [
        c.writes.load(Ordering::Relaxed),
        c.bytes.load(Ordering::Relaxed),
        c.flushes.load(Ordering::Relaxed),
        c.truncates.load(Ordering::Relaxed),
    ]
}

fn delta(a: [u64; 4], b: [u64; 4]) -> Value {
    json!({"write_at": b[0] - a[0], "bytes": b[1] - a[1], "flush": b[2] - a[2], "truncate": b[3] - a[3]})
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() != 2 {
        eprintln!("usage: pool_io <data-dir> <out.json>");
        std::process::exit(2);
    }
    let data_dir = std::path::Path::new(&args[0]);
    let meta: Value = serde_json::from_slice(&std::fs::read(data_dir.join("meta.json")).expect("meta.json")).unwrap();
    let (n, dim, batch) = (
        meta["points"].as_u64().unwrap() as usize,
        meta["dim"].as_u64().unwrap() as usize,
        meta["batch"].as_u64().unwrap() as usize,
    );
    let raw = std::fs::read(data_dir.join("vectors.f32")).unwrap();
    let vectors: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();

    let counts = Arc::new(Counts::default());
    let slot = || Box::new(Counting(MemSlot::new(), counts.clone())) as Box<dyn Slot>;
    let pool = PoolStorage::open([slot(), slot()], (0..64).map(|_| slot()).collect()).expect("pool");
    let pool = Arc::new(pool);
    let config: EdgeConfig =
        serde_json::from_value(json!({"vectors": {"": {"size": dim, "distance": "Cosine"}}})).unwrap();
    let mut shard = EdgeShard::create(pool.clone(), "", config).unwrap();
    let mut per_batch = Vec::new();
    let c0 = snap(&counts);
    let t0 = Instant::now();
    for start in (0..n).step_by(batch) {
        if pool.free_slots() < 16 {
            pool.add_slots((0..64).map(|_| slot()).collect());
        }
        let b0 = snap(&counts);
        let points: Vec<Value> = (start..(start + batch).min(n))
            .map(|i| json!({"id": i, "vector": &vectors[i * dim..(i + 1) * dim], "payload": {"n": i % 100, "cat": i % 10}}))
            .collect();
        dispatch_update(&mut shard, "upsert", &json!({ "points": points })).expect("upsert");
        per_batch.push(snap(&counts)[2] - b0[2]);
    }
    let upsert_s = t0.elapsed().as_secs_f64();
    let c1 = snap(&counts);
    if pool.free_slots() < 64 {
        pool.add_slots((0..128).map(|_| slot()).collect());
    }
    let t1 = Instant::now();
    shard.flush().unwrap();
    let flush_s = t1.elapsed().as_secs_f64();
    let c2 = snap(&counts);
    per_batch.sort_unstable();
    let out = json!({
        "points": n, "batches": per_batch.len(), "upsert_s": upsert_s, "flush_s": flush_s,
        "upsert": delta(c0, c1), "flush": delta(c1, c2),
        "slot_flushes_per_batch_p50": per_batch[per_batch.len() / 2],
        "slots": pool.slot_count(),
    });
    std::fs::write(&args[1], serde_json::to_vec_pretty(&out).unwrap()).expect("write out");
}
