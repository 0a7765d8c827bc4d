//! Snapshot restore benchmark binary (not a test).
//!
//! `cargo bench --bench snapshot_apply -- <archive> <work-dir> <out.json>`: for the memory and
//! the filesystem backend, restores the archive into an empty shard (`SnapshotApply` fed with
//! 256 KiB chunks read from the file, then `EdgeShard::finish_unpack`: checks, preview load,
//! commit, load), and, as the baseline, writes the same number of bytes to one file of the same
//! backend in the same chunks and syncs it (before and after the restore; the mean counts). A counting global allocator records the peak heap
//! while the archive streams in (what must not grow with the archive) and during the finishing
//! step (which loads the shard, so it grows with what the shard keeps in memory).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::snapshot::{ApplyOptions, SnapshotApply};
use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage, OpenMode, Storage};
use serde_json::{json, Value};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = CURRENT.fetch_add(new - l.size(), Ordering::Relaxed) + (new - l.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHUNK: usize = 256 * 1024;

/// Start a peak measurement; returns the current heap.
fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn restore(storage: Arc<dyn Storage>, archive: &std::path::Path) -> Value {
    let mut file = std::fs::File::open(archive).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let base = reset_peak();
    let t0 = Instant::now();
    let mut apply = SnapshotApply::begin(storage.clone(), "shard", ApplyOptions::default()).unwrap();
    let mut max_buffered = 0;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        apply.push(&buf[..n]).unwrap();
        max_buffered = max_buffered.max(apply.buffered_bytes());
    }
    let push_s = t0.elapsed().as_secs_f64();
    let push_peak = PEAK.load(Ordering::Relaxed) - base;
    let after_push = CURRENT.load(Ordering::Relaxed) - base;
    let base2 = reset_peak();
    let t1 = Instant::now();
    let (shard, report) = EdgeShard::finish_unpack(apply).unwrap();
    let finish_s = t1.elapsed().as_secs_f64();
    let finish_peak = PEAK.load(Ordering::Relaxed) - base2;
    let points = qdrant_edge_wasm::api::dispatch(&shard, "count", &json!({"exact": true})).unwrap();
    drop(shard);
    json!({
        "archive_bytes": report.unpack.archive_bytes,
        "data_bytes": report.unpack.data_bytes,
        "apparent_bytes": report.unpack.apparent_bytes,
        "push_s": push_s,
        "finish_s": finish_s,
        "total_s": push_s + finish_s,
        "push_peak_heap_mib": mib(push_peak),
        "heap_held_after_push_mib": mib(after_push),
        "finish_peak_heap_mib": mib(finish_peak),
        "max_buffered_bytes": max_buffered,
        "points": points["count"],
    })
}

fn raw_write(storage: Arc<dyn Storage>, bytes: u64) -> f64 {
    let buf = vec![0x5au8; CHUNK];
    let t0 = Instant::now();
    let f = storage.open("raw.bin", OpenMode::Create).unwrap();
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(CHUNK as u64) as usize;
        f.write_at(off, &buf[..n]).unwrap();
        off += n as u64;
    }
    f.sync().unwrap();
    storage.sync_dir("").unwrap();
    t0.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() != 3 {
        eprintln!("usage: snapshot_apply <archive> <work-dir> <out.json>");
        std::process::exit(2);
    }
    let archive = std::path::PathBuf::from(&args[0]);
    let work = std::path::PathBuf::from(&args[1]);
    let mut out = serde_json::Map::new();
    for backend in ["memory", "fs"] {
        let make = |tag: &str| -> Arc<dyn Storage> {
            match backend {
                "memory" => Arc::new(MemoryStorage::new()),
                _ => {
                    let d = work.join(format!("{backend}-{tag}"));
                    let _ = std::fs::remove_dir_all(&d);
                    Arc::new(FsStorage::new(&d).unwrap())
                }
            }
        };
        // The baseline runs before and after the restore (page-cache writeback of one run
        // slows the next on the filesystem); the mean is reported.
        let bytes = std::fs::metadata(&archive).unwrap().len();
        let raw_before = raw_write(make("raw"), bytes);
        let mut r = restore(make("restore"), &archive);
        let raw_after = raw_write(make("raw2"), bytes);
        let raw_s = (raw_before + raw_after) / 2.0;
        let mb = bytes as f64 / 1e6;
        r["restore_mb_s"] = json!(mb / r["total_s"].as_f64().unwrap());
        r["stream_mb_s"] = json!(mb / r["push_s"].as_f64().unwrap());
        r["raw_write_s"] = json!(raw_s);
        r["raw_write_mb_s"] = json!(mb / raw_s);
        eprintln!("{backend}: {r}");
        out.insert(backend.to_string(), r);
        for tag in ["restore", "raw", "raw2"] {
            let _ = std::fs::remove_dir_all(work.join(format!("{backend}-{tag}")));
        }
    }
    std::fs::write(&args[2], Value::Object(out).to_string()).unwrap();
}
