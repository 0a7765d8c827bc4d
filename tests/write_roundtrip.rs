//! Write path: shards created and updated here load in qdrant-edge-py with identical answers,
//! shards from qdrant-edge-py take our updates, and a fault at any storage operation never
//! loses an acknowledged update nor half-applies an unacknowledged one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use qdrant_edge_wasm::api::{dispatch, updates::parse_update};
use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::wrap::FaultStorage;
use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage, Storage};
use serde_json::{json, Value};

fn py(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/roundtrip.py");
    let out = Command::new(common::oracle_python()).arg(script).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} (qdrant-edge-py is required; run scripts/setup.sh): {e}",
            common::oracle_python().display()
        )
    });
    assert!(out.status.success(), "roundtrip.py {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/write-tests");
    std::fs::create_dir_all(&base).unwrap();
    let d = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config() -> EdgeConfig {
    serde_json::from_value(json!({
        "vectors": {
            "d": {"size": 8, "distance": "Cosine"},
            "h": {"size": 4, "distance": "Euclid", "datatype": "float16"},
            "u": {"size": 4, "distance": "Dot", "datatype": "uint8"},
            "m": {"size": 3, "distance": "Manhattan", "multivector_config": {"comparator": "max_sim"}}
        },
        "sparse_vectors": {"s": {}}
    }))
    .unwrap()
}

fn point(i: u64) -> Value {
    let f = |k: u64| ((i * 7 + k * 13) % 17) as f64 / 4.0 - 2.0;
    let id = if i % 3 == 0 { json!(format!("{:08x}-0000-4000-8000-{:012x}", i, i)) } else { json!(i) };
    let mut vector = json!({
        "d": (0..8).map(f).collect::<Vec<_>>(),
        "h": (0..4).map(|k| f(k + 8)).collect::<Vec<_>>(),
        "u": (0..4).map(|k| ((i * 31 + k * 57) % 256) as f64).collect::<Vec<_>>(),
        "m": (0..(1 + i % 3)).map(|j| (0..3).map(|k| f(j * 3 + k)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "s": {"indices": [i % 50, 50 + i % 7, 90], "values": [0.5, 1.5, -1.0]}
    });
    if i % 5 == 0 {
        vector.as_object_mut().unwrap().remove("h");
    }
    let tag = ["a", "b", "c"][(i % 3) as usize];
    json!({"id": id, "vector": vector, "payload": {"n": i, "tag": tag, "nested": {"x": i as f64 / 2.0}}})
}

/// A workload touching every supported update operation.
fn workload() -> Vec<(&'static str, Value)> {
    vec![
        ("create_index", json!({"field_name": "tag", "field_schema": "keyword"})),
        ("upsert", json!({"points": (1..40).map(point).collect::<Vec<_>>()})),
        ("create_index", json!({"field_name": "n", "field_schema": "integer"})),
        ("delete", json!({"points": [4, 7]})),
        ("set_payload", json!({"payload": {"extra": true, "arr": [1, 2, {"k": null}]}, "points": [10, 11]})),
        ("set_payload", json!({"payload": {"deep": 1}, "points": [13], "key": "nested"})),
        ("overwrite_payload", json!({"payload": {"only": "this"}, "points": [14]})),
        ("delete_payload", json!({"keys": ["tag", "nested.x"], "points": [16, 17]})),
        ("clear_payload", json!({"points": [19]})),
        (
            "update_vectors",
            json!({"points": [{"id": 20, "vector": {"d": [1, 0, 0, 0, 0, 0, 0, 1], "s": {"indices": [3], "values": [9.0]}}}]}),
        ),
        ("delete_vectors", json!({"points": [22, 23], "vector": ["h", "m"]})),
        ("delete", json!({"filter": {"must": [{"key": "n", "range": {"gte": 35}}]}})),
        (
            "upsert",
            json!({"batch": {"ids": [100, 101], "vectors": {"d": [[1, 1, 1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1, 0, 1]], "s": [{"indices": [1], "values": [1.0]}, {"indices": [2], "values": [2.0]}]}, "payloads": [{"b": 1}, null]}}),
        ),
        (
            "set_payload",
            json!({"payload": {"by_filter": 1}, "filter": {"must": [{"key": "tag", "match": {"value": "a"}}]}}),
        ),
    ]
}

fn apply(shard: &mut EdgeShard, cmd: &str, body: &Value) -> qdrant_edge_wasm::Result<()> {
    for op in parse_update(cmd, body)? {
        shard.update(op)?;
    }
    Ok(())
}

fn state(shard: &EdgeShard) -> Value {
    dispatch(shard, "scroll", &json!({"limit": 1000000, "with_payload": true, "with_vector": true})).unwrap()["points"]
        .clone()
}

fn ours_fs(dir: &Path) -> EdgeShard {
    EdgeShard::load(Arc::new(FsStorage::new(dir).unwrap()), "").unwrap()
}

/// Floats compared with a relative tolerance; everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn assert_same(ours: &Value, theirs: &Value, what: &str) {
    if !same(ours, theirs) {
        panic!(
            "{what}: states differ\nours:   {}\ntheirs: {}",
            &ours.to_string()[..ours.to_string().len().min(3000)],
            &theirs.to_string()[..theirs.to_string().len().min(3000)]
        );
    }
}

#[test]
fn shard_made_here_loads_in_qdrant_edge_and_back() {
    let dir = tmpdir("ours");
    let mut shard = EdgeShard::create(Arc::new(FsStorage::new(&dir).unwrap()), "", config()).unwrap();
    for (cmd, body) in workload() {
        apply(&mut shard, cmd, &body).unwrap_or_else(|e| panic!("{cmd} {body}: {e}"));
    }
    let before_flush = state(&shard);
    shard.flush().unwrap();
    let after_flush = state(&shard);
    assert_same(&after_flush, &before_flush, "flush changed the visible state");
    shard.close().unwrap();

    // Reloaded here, from the segments only (the WAL is acknowledged).
    assert_same(&state(&ours_fs(&dir)), &before_flush, "reload");

    // qdrant-edge-py sees the same points, vectors and payloads.
    let theirs: Value = serde_json::from_str(&py(&["dump", dir.to_str().unwrap()])).unwrap();
    assert_eq!(theirs["count"], json!(before_flush.as_array().unwrap().len()));
    assert_same(&before_flush, &theirs["points"], "qdrant-edge-py reading our shard");
    // ... and answers filters on the indexed fields from our index files the same way.
    let reloaded = ours_fs(&dir);
    for filter in [
        json!({"must": [{"key": "tag", "match": {"value": "a"}}]}),
        json!({"must": [{"key": "n", "range": {"gte": 10, "lt": 30}}]}),
        json!({"must_not": [{"key": "tag", "match": {"any": ["b", "c"]}}]}),
        json!({"must": [{"is_empty": {"key": "tag"}}]}),
    ] {
        let body = json!({"filter": filter, "exact": true});
        let ours = dispatch(&reloaded, "count", &body).unwrap();
        let theirs: Value = serde_json::from_str(&py(&["count", dir.to_str().unwrap(), &body.to_string()])).unwrap();
        assert_eq!(ours, theirs, "count {body}");
    }
    let info_theirs: Value = serde_json::from_str(&py(&["info", dir.to_str().unwrap()])).unwrap();
    let info_ours = dispatch(&reloaded, "info", &Value::Null).unwrap();
    assert_eq!(info_ours["payload_schema"], info_theirs["payload_schema"], "payload schema");
    drop(reloaded);

    // qdrant-edge-py updates it further; we load its result and agree.
    py(&["update", dir.to_str().unwrap()]);
    let theirs: Value = serde_json::from_str(&py(&["dump", dir.to_str().unwrap()])).unwrap();
    assert_same(&state(&ours_fs(&dir)), &theirs["points"], "our reading of qdrant-edge-py's update");
}

#[test]
fn wal_only_updates_replay_in_qdrant_edge() {
    // Updates acknowledged but never flushed live only in the WAL: qdrant-edge-py replays them.
    let dir = tmpdir("walonly");
    let mut shard = EdgeShard::create(Arc::new(FsStorage::new(&dir).unwrap()), "", config()).unwrap();
    for (cmd, body) in workload() {
        apply(&mut shard, cmd, &body).unwrap();
    }
    let ours = state(&shard);
    drop(shard); // no flush: a crash right after the last acknowledged update
    let theirs: Value = serde_json::from_str(&py(&["dump", dir.to_str().unwrap()])).unwrap();
    assert_same(&ours, &theirs["points"], "qdrant-edge-py replaying our WAL");
    assert_same(&state(&ours_fs(&dir)), &ours, "our replay of our WAL");
}

#[test]
fn qdrant_edge_shard_takes_our_updates() {
    let dir = tmpdir("theirs");
    py(&["make", dir.to_str().unwrap()]);
    let mut shard = ours_fs(&dir);
    for (cmd, body) in workload().into_iter().skip(1) {
        apply(&mut shard, cmd, &body).unwrap_or_else(|e| panic!("{cmd} {body}: {e}"));
    }
    apply(&mut shard, "upsert", &json!({"points": (300..320).map(point).collect::<Vec<_>>()})).unwrap();
    let ours = state(&shard);
    shard.close().unwrap();
    let theirs: Value = serde_json::from_str(&py(&["dump", dir.to_str().unwrap()])).unwrap();
    assert_same(&ours, &theirs["points"], "qdrant-edge-py reading its shard after our updates");
}

#[test]
fn memory_backend_round_trip() {
    let mem = MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(mem.clone()), "shard", config()).unwrap();
    for (cmd, body) in workload() {
        apply(&mut shard, cmd, &body).unwrap();
    }
    let expect = state(&shard);
    shard.flush().unwrap();
    apply(&mut shard, "delete", &json!({"points": [1]})).unwrap();
    let expect2 = state(&shard);
    drop(shard);
    let reloaded = EdgeShard::load(Arc::new(mem.clone()), "shard").unwrap();
    assert_same(&state(&reloaded), &expect2, "memory reload with WAL replay");
    assert_ne!(expect, expect2);
}

/// A flush writes each point's records at consecutive offsets of the same files; they go out
/// as a few large writes, not one or more per point (on OPFS every write is a call on a sync
/// access handle: 100 000 of them made a 50 000-point flush take over a minute).
#[test]
fn flush_writes_adjoining_records_together() {
    let mem = MemoryStorage::new();
    let counter = FaultStorage::new(mem.clone());
    let mut shard = EdgeShard::create(Arc::new(counter.clone()), "", config()).unwrap();
    let n = 2000u64;
    let points: Vec<Value> = (0..n).map(point).collect();
    apply(&mut shard, "upsert", &json!({ "points": points })).unwrap();
    let expect = state(&shard);
    let before = counter.ops();
    shard.flush().unwrap();
    let flush_ops = counter.ops() - before;
    // Written one by one (as before write runs), this flush made 16 121 operations, about 8
    // per point (the vector storages, the multivector's offsets, the sparse and payload
    // blobs); with runs 129.
    assert!(flush_ops < 300, "flush of {n} points took {flush_ops} mutating storage operations");
    drop(shard);
    let reloaded = EdgeShard::load(Arc::new(mem), "").unwrap();
    assert_same(&state(&reloaded), &expect, "reload after the flush");
}

#[test]
fn create_refuses_existing_segments_and_bad_input_leaves_shard_unchanged() {
    let mem = MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(mem.clone()), "", config()).unwrap();
    apply(&mut shard, "upsert", &json!({"points": [point(1), point(2)]})).unwrap();
    shard.flush().unwrap();
    assert!(EdgeShard::create(Arc::new(mem.clone()), "", config()).is_err());
    let before = state(&shard);
    let bad = [
        json!({"points": [{"id": 9, "vector": {"d": [1, 2, 3]}}]}),
        json!({"points": [{"id": 9, "vector": {"nope": [1, 2, 3]}}]}),
        json!({"points": [{"id": -1, "vector": {}}]}),
        json!({"points": [{"id": 9, "vector": {}, "payload": [1]}]}),
        json!({"points": [{"id": "x", "vector": {}}]}),
    ];
    for b in bad {
        let e = apply(&mut shard, "upsert", &b).expect_err(&b.to_string());
        assert_eq!(e.kind(), qdrant_edge_wasm::ErrorKind::InvalidArgument, "{b}: {e}");
        assert!(e.to_json().get("field").is_some(), "{b}: error must name the field: {e}");
    }
    assert_eq!(state(&shard), before);
}

/// Fault injection: fail the Nth mutating storage operation (optionally tearing that write) for
/// every N over the workload. After a restart on the surviving bytes, the shard loads and holds
/// exactly the acknowledged updates (or, when the failing step was the one whose WAL entry was
/// complete but whose sync failed, that one too) — never a half-applied one.
#[test]
fn faults_never_lose_acknowledged_updates() {
    let steps: Vec<(&str, Value)> = {
        let mut w = workload();
        w.insert(6, ("flush", Value::Null));
        w.push(("flush", Value::Null));
        w.push(("optimize", Value::Null));
        w.push(("delete", json!({"points": [1, 2, 3]})));
        w.push(("set_payload", json!({"payload": {"late": true}, "points": [8, 10]})));
        w
    };
    let cfg: EdgeConfig = {
        let mut c = serde_json::to_value(config()).unwrap();
        c["optimizers"] = json!({"default_segment_number": 1, "indexing_threshold": 1});
        serde_json::from_value(c).unwrap()
    };
    let run = |storage: Arc<dyn Storage>| -> (usize, Vec<Value>) {
        let mut states = Vec::new();
        let mut shard = match EdgeShard::create(storage, "", cfg.clone()) {
            Ok(s) => s,
            Err(_) => return (0, states),
        };
        states.push(state(&shard));
        let mut acked = 0;
        for (cmd, body) in &steps {
            let r = match *cmd {
                "flush" => shard.flush(),
                "optimize" => shard.optimize().map(|_| ()),
                _ => apply(&mut shard, cmd, body),
            };
            if r.is_err() {
                break;
            }
            acked += 1;
            states.push(state(&shard));
        }
        (acked, states)
    };
    // Reference run without faults, counting the mutating operations.
    let mem = MemoryStorage::new();
    let counter = FaultStorage::new(mem.clone());
    let (acked, reference) = run(Arc::new(counter.clone()));
    assert_eq!(acked, steps.len());
    let total = counter.ops();
    assert!(total > 50, "workload too small: {total} ops");
    let mut checked = 0;
    for n in 0..total {
        for tear in [false, true] {
            let mem = MemoryStorage::new();
            let faulty = FaultStorage::new(mem.clone());
            faulty.fail_at(n, tear);
            let (acked, states) = run(Arc::new(faulty.clone()));
            assert!(faulty.has_failed(), "fault {n} did not trigger");
            let created = !states.is_empty();
            let reloaded = match EdgeShard::load(Arc::new(mem.clone()), "") {
                Ok(s) => s,
                Err(e) => {
                    // Only an interrupted `create` may leave something that does not load.
                    assert!(
                        !created,
                        "fault {n} (tear {tear}): shard does not load after {acked} acknowledged steps: {e}"
                    );
                    continue;
                }
            };
            let got = state(&reloaded);
            // Acknowledged steps are all there; the failing step may be there whole or not at all.
            let ok = got == reference[acked] || reference.get(acked + 1).is_some_and(|r| *r == got);
            if !ok {
                let diff = |a: &Value, b: &Value| -> String {
                    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
                    let ids = |v: &Vec<Value>| v.iter().map(|p| p["id"].to_string()).collect::<Vec<_>>();
                    let only_a: Vec<_> = a.iter().filter(|p| !b.contains(p)).map(|p| p.to_string()).collect();
                    let only_b: Vec<_> = b.iter().filter(|p| !a.contains(p)).map(|p| p.to_string()).collect();
                    format!(
                        "{} vs {} points; only in got: {:?}; only in expected: {:?} ({:?})",
                        a.len(),
                        b.len(),
                        only_a,
                        only_b,
                        ids(a).len()
                    )
                };
                panic!(
                    "fault {n} (tear {tear}) after {acked} acknowledged steps ({:?} failed): state matches neither {acked} nor {} steps\n{}",
                    steps.get(acked).map(|s| s.0),
                    acked + 1,
                    diff(&got, &reference[acked])
                );
            }
            checked += 1;
        }
    }
    assert!(checked > total as usize, "only {checked} fault points were checked");
}

#[test]
fn load_with_config_checks_compatibility() {
    let mem = MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(mem.clone()), "", config()).unwrap();
    apply(&mut shard, "upsert", &json!({"points": [point(1)]})).unwrap();
    shard.close().unwrap();
    // The same vectors with other tunables: accepted and written.
    let mut same = config();
    same.on_disk_payload = Some(false);
    let shard = EdgeShard::load_with_config(Arc::new(mem.clone()), "", same).unwrap();
    assert_eq!(dispatch(&shard, "count", &json!({})).unwrap(), json!({"count": 1}));
    let stored: Value = serde_json::from_slice(&mem.read_all("edge_config.json").unwrap()).unwrap();
    assert_eq!(stored["on_disk_payload"], json!(false));
    // A different dimension, a missing vector, or an extra one: refused, config untouched.
    for change in [
        json!({"vectors": {"d": {"size": 9, "distance": "Cosine"}}}),
        json!({"vectors": {"d": {"size": 8, "distance": "Dot"}}}),
        json!({"vectors": {"zzz": {"size": 8, "distance": "Cosine"}}}),
    ] {
        let mut v = serde_json::to_value(config()).unwrap();
        for (k, x) in change["vectors"].as_object().unwrap() {
            v["vectors"][k] = x.clone();
        }
        let bad: EdgeConfig = serde_json::from_value(v).unwrap();
        let e = EdgeShard::load_with_config(Arc::new(mem.clone()), "", bad).expect_err(&change.to_string());
        assert_eq!(e.kind(), qdrant_edge_wasm::ErrorKind::InvalidArgument, "{e}");
    }
    let mut missing = config();
    missing.vectors.remove("h");
    assert!(EdgeShard::load_with_config(Arc::new(mem.clone()), "", missing).is_err());
    let stored: Value = serde_json::from_slice(&mem.read_all("edge_config.json").unwrap()).unwrap();
    assert_eq!(stored["on_disk_payload"], json!(false), "a refused config must not be written");
}

#[test]
fn optimize_rewrites_segments_and_qdrant_edge_reads_them() {
    let dir = tmpdir("optimize");
    let mut cfg = serde_json::to_value(config()).unwrap();
    cfg["optimizers"] = json!({"deleted_threshold": 0.1, "vacuum_min_vector_number": 5, "default_segment_number": 1, "indexing_threshold": 1});
    let cfg: EdgeConfig = serde_json::from_value(cfg).unwrap();
    let mut shard = EdgeShard::create(Arc::new(FsStorage::new(&dir).unwrap()), "", cfg).unwrap();
    for (cmd, body) in workload() {
        apply(&mut shard, cmd, &body).unwrap();
    }
    let before = state(&shard);
    assert!(shard.optimize().unwrap(), "nothing was optimized");
    assert_same(&state(&shard), &before, "optimize changed the visible state");
    let info = dispatch(&shard, "info", &Value::Null).unwrap();
    assert_eq!(info["points_count"], json!(before.as_array().unwrap().len()), "{info}");
    // One optimized segment plus a fresh appendable one.
    assert_eq!(info["segments_count"], json!(2), "{info}");
    assert!(!shard.optimize().unwrap(), "a second optimize found work");
    // Writes continue after optimizing, including on points now in the optimized segment.
    apply(&mut shard, "set_payload", &json!({"payload": {"after": 1}, "points": [1, 2]})).unwrap();
    apply(&mut shard, "delete", &json!({"points": [5]})).unwrap();
    let after = state(&shard);
    shard.close().unwrap();
    assert_same(&state(&ours_fs(&dir)), &after, "reload after optimize");
    let theirs: Value = serde_json::from_str(&py(&["dump", dir.to_str().unwrap()])).unwrap();
    assert_same(&after, &theirs["points"], "qdrant-edge-py reading our optimized shard");
    py(&["update", dir.to_str().unwrap()]);
    let theirs: Value = serde_json::from_str(&py(&["dump", dir.to_str().unwrap()])).unwrap();
    assert_same(
        &state(&ours_fs(&dir)),
        &theirs["points"],
        "our reading of qdrant-edge-py's update of our optimized shard",
    );
}
