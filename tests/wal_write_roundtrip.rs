//! The WAL writer against Qdrant Edge itself (qdrant-edge-py 0.9.0), in both directions, on
//! real shard directories:
//!
//! * edge-py creates a shard; our writer appends operations to its WAL (segments untouched);
//!   edge-py loads the shard and must replay them;
//! * edge-py writes operations and "crashes" (`os._exit`); our writer continues that WAL;
//!   edge-py sees both its own and our operations;
//! * the same across many small segments (`wal_options.segment_capacity` = 4 KiB in
//!   `edge_config.json`), with rotations by both writers and acknowledgements by edge-py.
//!
//! The Python side is `tests/corpus/wal_write_roundtrip.py`, run with `$QEW_PYTHON` or the
//! oracle venv `.venv/bin/python` (made by `scripts/setup.sh`). Without it these tests fail: they never skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use qdrant_edge_wasm::format::wal::{read_wal, SegmentRole, WalContents};
use qdrant_edge_wasm::format::wal_write::{WalOptions, WalWriter};
use qdrant_edge_wasm::operations::{decode_entry, encode_record, PointStruct, PointsSelector, UpdateOperation};
use qdrant_edge_wasm::storage::FsStorage;
use qdrant_edge_wasm::{Payload, PointId, Storage, VectorValue};
use serde_json::{json, Value};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/wal_write_roundtrip.py")
}

/// Run the helper; panics with its stderr on failure. Returns stdout.
fn py(args: &[&str]) -> String {
    let out = Command::new(common::oracle_python()).arg(script()).args(args).output().expect("cannot start python");
    assert!(out.status.success(), "python {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Load the shard in edge-py (which replays the WAL) and return its points by id.
/// `crash`: exit without closing, so nothing on disk changes.
fn inspect(shard: &Path, crash: bool) -> Value {
    let s = shard.to_str().unwrap();
    let args: Vec<&str> = if crash { vec!["inspect", s, "--crash"] } else { vec!["inspect", s] };
    let out = py(&args);
    let line = out.lines().last().unwrap_or_else(|| panic!("no output from inspect: {out:?}"));
    serde_json::from_str(line).unwrap()
}

fn payload(v: Value) -> Payload {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn upsert(id: PointId, vector: [f32; 4], pl: Option<Value>) -> Vec<u8> {
    let op = UpdateOperation::UpsertPoints(vec![PointStruct {
        id,
        vectors: [(String::new(), VectorValue::Dense(vector.to_vec()))].into_iter().collect(),
        payload: pl.map(payload),
    }]);
    encode_record(&op, None)
}

fn set_payload(ids: Vec<PointId>, pl: Value) -> Vec<u8> {
    let op = UpdateOperation::SetPayload { payload: payload(pl), selector: PointsSelector::Ids(ids), key: None };
    encode_record(&op, None)
}

fn delete(ids: Vec<PointId>) -> Vec<u8> {
    encode_record(&UpdateOperation::DeletePoints(ids), None)
}

fn storage(shard: &Path) -> Arc<dyn Storage> {
    Arc::new(FsStorage::new(shard).unwrap())
}

fn wal(shard: &Path) -> WalContents {
    read_wal(&FsStorage::new(shard).unwrap(), "wal").unwrap().expect("no wal/ directory")
}

fn py_upsert(id: u64, vector: [f32; 4], pl: Value) -> Value {
    json!({"op": "upsert", "id": id, "vector": vector, "payload": pl})
}

fn point<'a>(state: &'a Value, id: &str) -> &'a Value {
    &state["points"][id]
}

const UUID: &str = "550e8400-e29b-41d4-a716-446655440000";

#[test]
fn edge_replays_what_our_writer_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("shard");
    let s = shard.to_str().unwrap();
    let ops = json!([
        py_upsert(1, [1.0, 0.0, 0.0, 0.0], json!({"city": "Berlin"})),
        py_upsert(2, [0.0, 1.0, 0.0, 0.0], json!({"city": "Paris"})),
    ]);
    py(&["create", s, &ops.to_string()]);
    let before = wal(&shard);
    assert_eq!(before.next_index, 2);
    let segments_before = std::fs::read_dir(shard.join("segments")).unwrap().count();

    let mut w = WalWriter::open(storage(&shard), "wal", WalOptions::default()).unwrap();
    assert_eq!(w.next_index(), 2);
    let uuid = PointId::Uuid(UUID.parse().unwrap());
    let records = [
        upsert(PointId::Num(10), [0.5, 0.5, 0.0, 0.0], Some(json!({"city": "Rome", "n": 7}))),
        upsert(uuid, [0.0, 0.0, 0.25, 1.5], None),
        set_payload(vec![PointId::Num(1), PointId::Num(10)], json!({"tag": "x"})),
        delete(vec![PointId::Num(2)]),
    ];
    for (k, r) in records.iter().enumerate() {
        assert_eq!(w.append(r).unwrap(), 2 + k as u64);
    }
    w.sync().unwrap();
    drop(w);

    // our reader sees exactly what was written, after edge's own entries
    let c = wal(&shard);
    assert_eq!(c.next_index, 6);
    let ours: Vec<&[u8]> = c.entries.iter().filter(|e| e.index >= 2).map(|e| &e.data[..]).collect();
    assert_eq!(ours, records.iter().map(|r| &r[..]).collect::<Vec<_>>());
    for e in &c.entries {
        decode_entry(e, "wal").unwrap();
    }
    assert_eq!(std::fs::read_dir(shard.join("segments")).unwrap().count(), segments_before);

    // edge replays them
    let st = inspect(&shard, true);
    assert_eq!(st["count"], 3, "{st}");
    assert_eq!(point(&st, "1")["payload"], json!({"city": "Berlin", "tag": "x"}));
    assert!(point(&st, "2").is_null(), "point 2 was deleted: {st}");
    assert_eq!(point(&st, "10")["payload"], json!({"city": "Rome", "n": 7, "tag": "x"}));
    assert_eq!(point(&st, "10")["vector"], json!([0.5, 0.5, 0.0, 0.0]));
    assert_eq!(point(&st, UUID)["vector"], json!([0.0, 0.0, 0.25, 1.5]));
    assert_eq!(point(&st, UUID)["payload"], json!({}));

    // edge loads again and closes (flush + ack); our writer continues after that
    let st2 = inspect(&shard, false);
    assert_eq!(st2, st);
    let c = wal(&shard);
    assert!(c.ack_index.is_some(), "edge acknowledged on close");
    let mut w = WalWriter::open(storage(&shard), "wal", WalOptions::default()).unwrap();
    assert_eq!(w.next_index(), 6);
    assert_eq!(w.first_index(), c.first_index);
    assert_eq!(w.append(&set_payload(vec![uuid], json!({"late": true}))).unwrap(), 6);
    w.sync().unwrap();
    drop(w);
    let st3 = inspect(&shard, true);
    assert_eq!(point(&st3, UUID)["payload"], json!({"late": true}));
    assert_eq!(st3["count"], 3);
}

#[test]
fn our_writer_continues_a_wal_edge_left_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("shard");
    let s = shard.to_str().unwrap();
    py(&["create", s, &json!([py_upsert(1, [1.0, 1.0, 1.0, 1.0], json!({"k": 1}))]).to_string()]);
    // edge writes three more operations and dies without flushing
    let ops = json!([
        py_upsert(2, [2.0, 0.0, 0.0, 0.0], json!({"k": 2})),
        {"op": "set_payload", "ids": [1], "payload": {"edge": "yes"}},
        py_upsert(3, [3.0, 0.0, 0.0, 0.0], json!({"k": 3})),
    ]);
    py(&["write", s, &ops.to_string()]);
    let c = wal(&shard);
    assert_eq!(c.next_index, 4);

    let mut w = WalWriter::open(storage(&shard), "wal", WalOptions::default()).unwrap();
    assert_eq!((w.next_index(), w.first_index()), (4, c.first_index));
    w.append(&delete(vec![PointId::Num(3)])).unwrap();
    w.append(&set_payload(vec![PointId::Num(2)], json!({"ours": [1, 2]}))).unwrap();
    assert_eq!(w.append(&upsert(PointId::Num(4), [0.0, 0.0, 0.0, 4.0], Some(json!({"k": 4})))).unwrap(), 6);
    w.sync().unwrap();
    drop(w);

    let c = wal(&shard);
    assert_eq!(c.next_index, 7);
    let st = inspect(&shard, true);
    assert_eq!(st["count"], 3, "{st}");
    assert_eq!(point(&st, "1")["payload"], json!({"k": 1, "edge": "yes"}));
    assert_eq!(point(&st, "2")["payload"], json!({"k": 2, "ours": [1, 2]}));
    assert!(point(&st, "3").is_null());
    assert_eq!(point(&st, "4")["vector"], json!([0.0, 0.0, 0.0, 4.0]));

    // and edge keeps appending after us in the same segment
    py(&["write", s, &json!([py_upsert(5, [5.0, 0.0, 0.0, 0.0], json!({"k": 5}))]).to_string()]);
    assert_eq!(wal(&shard).next_index, 8);
    let st = inspect(&shard, true);
    assert_eq!(st["count"], 4);
    assert_eq!(point(&st, "5")["payload"], json!({"k": 5}));
}

fn big_payload(i: u64) -> Value {
    json!({"i": i, "pad": "x".repeat(300 + (i as usize % 13))})
}

#[test]
fn rotation_round_trip_with_small_segments() {
    const CAP: u64 = 4096;
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("shard");
    let s = shard.to_str().unwrap();
    // an empty shard whose edge_config.json asks for 4 KiB WAL segments, and no WAL yet
    py(&["fresh", s, &CAP.to_string()]);
    assert!(!shard.join("wal").exists());

    let opts = WalOptions { segment_capacity: CAP, ..WalOptions::default() };
    let mut w = WalWriter::create(storage(&shard), "wal", opts.clone()).unwrap();
    for i in 0..30u64 {
        let r = upsert(PointId::Num(i), [i as f32, 1.0, 0.0, 0.0], Some(big_payload(i)));
        assert_eq!(w.append(&r).unwrap(), i);
    }
    w.sync().unwrap();
    assert!(w.closed_segments() >= 2, "{}", w.closed_segments());
    drop(w);
    let c = wal(&shard);
    let closed = c.segments.iter().filter(|s| s.role == SegmentRole::Closed).count();
    assert!(closed >= 2);
    for s in &c.segments {
        assert_eq!(std::fs::metadata(shard.join("wal").join(&s.file_name)).unwrap().len(), CAP);
    }

    let st = inspect(&shard, true);
    assert_eq!(st["count"], 30, "{st}");
    for i in [0u64, 13, 29] {
        assert_eq!(point(&st, &i.to_string())["payload"], big_payload(i));
    }

    // edge appends 30 more (rotating its own 4 KiB segments) and crashes
    let ops: Vec<Value> = (30..60u64).map(|i| py_upsert(i, [i as f32, 2.0, 0.0, 0.0], big_payload(i))).collect();
    py(&["write", s, &Value::Array(ops).to_string()]);
    let c = wal(&shard);
    assert_eq!(c.next_index, 60);
    assert!(c.segments.iter().filter(|s| s.role == SegmentRole::Closed).count() > closed);

    // we continue, rotating again
    let mut w = WalWriter::open(storage(&shard), "wal", opts.clone()).unwrap();
    assert_eq!(w.next_index(), 60);
    for i in 60..75u64 {
        assert_eq!(w.append(&upsert(PointId::Num(i), [i as f32, 3.0, 0.0, 0.0], Some(big_payload(i)))).unwrap(), i);
    }
    w.append(&delete((0..5).map(PointId::Num).collect())).unwrap();
    w.sync().unwrap();
    drop(w);

    // edge replays all of it, then closes (flush, ack: old segments removed)
    let st = inspect(&shard, false);
    assert_eq!(st["count"], 70, "{st}");
    assert!(point(&st, "4").is_null());
    assert_eq!(point(&st, "45")["payload"], big_payload(45));
    assert_eq!(point(&st, "74")["payload"], big_payload(74));
    assert_eq!(point(&st, "74")["vector"], json!([74.0, 3.0, 0.0, 0.0]));
    let c = wal(&shard);
    assert_eq!(c.first_index, 75, "edge acknowledged everything");
    assert_eq!(c.segments.iter().filter(|s| s.role == SegmentRole::Closed).count(), 1, "retain_closed = 1");

    // our writer on the acknowledged WAL: numbering continues, our ack is what edge would write
    let mut w = WalWriter::open(storage(&shard), "wal", opts).unwrap();
    assert_eq!((w.next_index(), w.first_index()), (76, 75));
    for i in 76..90u64 {
        w.append(&set_payload(vec![PointId::Num(i - 60)], json!({"round": i}))).unwrap();
    }
    w.sync().unwrap();
    w.ack(80).unwrap();
    assert_eq!(w.first_index(), 80);
    drop(w);
    let c = wal(&shard);
    assert_eq!((c.first_index, c.next_index), (80, 90));
    let st = inspect(&shard, true);
    // edge replays from our first-index (80): entries 80..89 apply; 76..79 were acknowledged as
    // persisted (falsely, on purpose), so edge skips them
    assert_eq!(point(&st, "29")["payload"], json!({"i": 29, "pad": big_payload(29)["pad"], "round": 89}));
    assert_eq!(point(&st, "20")["payload"]["round"], json!(80));
    assert!(point(&st, "16")["payload"].get("round").is_none(), "{}", point(&st, "16"));
    assert_eq!(st["count"], 70);
}
