//! The durable outbox (src/outbox.rs): what is recorded for each kind of update, refusals,
//! batches that fail half way, acknowledgements and compaction, and — with a fault injected at
//! every storage operation — that after a restart the outbox holds exactly the updates the
//! shard holds, including every acknowledged one.

use std::sync::Arc;

use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::outbox::{update_recorded, Outbox, OUTBOX_FILE};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::wrap::FaultStorage;
use qdrant_edge_wasm::storage::{MemoryStorage, Storage};
use serde_json::{json, Value};

fn config() -> EdgeConfig {
    serde_json::from_value(json!({"vectors": {"v": {"size": 4, "distance": "Dot"}}})).unwrap()
}

fn point(i: u64) -> Value {
    json!({"id": i, "vector": {"v": [i as f32, 1.0, 0.5, -(i as f32)]}, "payload": {"i": i}})
}

fn upsert(ids: &[u64]) -> Value {
    json!({"points": ids.iter().map(|&i| point(i)).collect::<Vec<_>>()})
}

/// (command, body) of every pending entry.
fn pending(ob: &Outbox) -> Vec<(String, Value)> {
    ob.pending(usize::MAX, u64::MAX).unwrap().into_iter().map(|e| (e.command, e.body)).collect()
}

fn ids(shard: &EdgeShard) -> Vec<u64> {
    let r = dispatch(shard, "scroll", &json!({"limit": 10000, "with_payload": false})).unwrap();
    r["points"].as_array().unwrap().iter().map(|p| p["id"].as_u64().unwrap()).collect()
}

fn reopen(st: &MemoryStorage) -> (EdgeShard, Outbox) {
    let mut shard = EdgeShard::load(Arc::new(st.clone()), "").unwrap();
    let ob = Outbox::open(&mut shard).unwrap();
    (shard, ob)
}

#[test]
fn records_single_updates_batches_and_refusals() {
    let st = MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(st.clone()), "", config()).unwrap();
    assert!(!Outbox::exists(&st, "").unwrap());
    let mut ob = Outbox::create(shard.storage().clone(), "").unwrap();
    assert!(Outbox::exists(&st, "").unwrap());

    let r = update_recorded(&mut shard, &mut ob, "upsert", &upsert(&[1, 2, 3])).unwrap();
    assert_eq!(r["status"], "completed");
    let sp = json!({"payload": {"tag": "x"}, "points": [1]});
    update_recorded(&mut shard, &mut ob, "set_payload", &sp).unwrap();
    update_recorded(&mut shard, &mut ob, "create_index", &json!({"field_name": "tag", "field_schema": "keyword"}))
        .unwrap();
    update_recorded(&mut shard, &mut ob, "delete_index", &json!("tag")).unwrap();

    // Refused before anything happens: malformed, unknown ids, a malformed batch item.
    let before = pending(&ob);
    assert!(update_recorded(&mut shard, &mut ob, "upsert", &json!({"points": [{"id": -1}]})).is_err());
    assert!(update_recorded(&mut shard, &mut ob, "set_payload", &json!({"payload": {}, "points": [99]})).is_err());
    let bad_batch = json!({"operations": [{"upsert": upsert(&[7])}, {"bogus": {}}]});
    assert!(update_recorded(&mut shard, &mut ob, "update", &bad_batch).is_err());
    assert_eq!(pending(&ob), before, "refused updates must not be recorded");
    assert_eq!(ids(&shard), vec![1, 2, 3]);

    // A batch is recorded as its operations; one failing half way leaves its applied prefix.
    let batch = json!({"operations": [
        {"upsert": upsert(&[4])},
        {"delete": {"points": [2]}},
        {"set_payload": {"payload": {"n": 1}, "points": [77]}},
        {"upsert": upsert(&[5])}
    ]});
    let e = update_recorded(&mut shard, &mut ob, "update", &batch).unwrap_err();
    assert_eq!(e.kind(), qdrant_edge_wasm::ErrorKind::NotFound, "{e}");
    assert_eq!(ids(&shard), vec![1, 3, 4]);
    let got = pending(&ob);
    let want: Vec<(String, Value)> = vec![
        ("upsert".into(), upsert(&[1, 2, 3])),
        ("set_payload".into(), sp.clone()),
        ("create_index".into(), json!({"field_name": "tag", "field_schema": "keyword"})),
        ("delete_index".into(), json!({"field_name": "tag"})),
        ("upsert".into(), upsert(&[4])),
        ("delete".into(), json!({"points": [2]})),
    ];
    assert_eq!(got, want);
    let seqs: Vec<u64> = ob.pending(usize::MAX, u64::MAX).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);

    // Acknowledge a prefix; a restart keeps the rest, and numbering goes on.
    ob.ack(3).unwrap();
    assert!(ob.ack(99).is_err(), "acknowledging an entry that does not exist");
    assert_eq!(pending(&ob), want[3..].to_vec());
    assert_eq!(ob.pending(2, u64::MAX).unwrap().len(), 2);
    assert_eq!(ob.pending(usize::MAX, 1).unwrap().len(), 1, "at least one entry whatever the byte limit");
    drop((shard, ob));
    let (mut shard, mut ob) = reopen(&st);
    assert_eq!(ob.acked(), 3);
    assert_eq!(pending(&ob), want[3..].to_vec());
    update_recorded(&mut shard, &mut ob, "delete", &json!({"filter": {"must": [{"key": "i", "match": {"value": 4}}]}}))
        .unwrap();
    let last = ob.pending(usize::MAX, u64::MAX).unwrap().pop().unwrap();
    assert_eq!(last.seq, 7);
    assert_eq!(last.body, json!({"filter": {"must": [{"key": "i", "match": {"value": 4}}]}}), "the request as sent");
    assert_eq!(ids(&shard), vec![1, 3]);
}

#[test]
fn an_entry_whose_update_never_reached_the_wal_is_dropped_at_open() {
    let st = MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(st.clone()), "", config()).unwrap();
    let mut ob = Outbox::create(shard.storage().clone(), "").unwrap();
    update_recorded(&mut shard, &mut ob, "upsert", &upsert(&[1])).unwrap();
    // The crash window: recorded, then the process dies before the shard logs it.
    let n = shard.next_op_num().unwrap();
    ob.record(n, "upsert", &upsert(&[2])).unwrap();
    drop((shard, ob));
    let (mut shard, ob) = reopen(&st);
    assert_eq!(pending(&ob), vec![("upsert".into(), upsert(&[1]))]);
    assert_eq!(ids(&shard), vec![1]);
    // The cut is durable and the next entry takes the next number.
    drop(ob);
    let mut ob = Outbox::open(&mut shard).unwrap();
    update_recorded(&mut shard, &mut ob, "upsert", &upsert(&[3])).unwrap();
    assert_eq!(ob.pending(usize::MAX, u64::MAX).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);

    // After a settled marker (written before a snapshot apply changes the operation numbers)
    // the same comparison no longer applies: the entry stays.
    let far = shard.next_op_num().unwrap() + 1000;
    ob.record(far, "upsert", &upsert(&[4])).unwrap();
    ob.settle().unwrap();
    drop((shard, ob));
    let (_shard, ob) = reopen(&st);
    assert_eq!(ob.pending_count(), 3);
}

#[test]
fn torn_and_corrupt_tails_are_cut() {
    let st = MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(st.clone()), "", config()).unwrap();
    let mut ob = Outbox::create(shard.storage().clone(), "").unwrap();
    for i in 1..=3 {
        update_recorded(&mut shard, &mut ob, "upsert", &upsert(&[i])).unwrap();
    }
    drop((shard, ob));
    let f = st.open(OUTBOX_FILE, qdrant_edge_wasm::storage::OpenMode::ReadWrite).unwrap();
    let len = f.len().unwrap();
    // A half-written record after the last one.
    f.write_at(len, &[200, 0, 0, 0, 1, 2, 3]).unwrap();
    let (_s, ob) = reopen(&st);
    assert_eq!(ob.pending_count(), 3);
    assert_eq!(f.len().unwrap(), len, "the torn tail is cut");
    // A flipped byte inside the last record: that record is lost (its checksum fails), and so
    // it is dropped — but then the shard has an update the outbox lacks, which is why the
    // outbox syncs before the WAL: a record can only be torn if its update was never applied.
    let mut b = [0u8; 1];
    f.read_at(len - 3, &mut b).unwrap();
    f.write_at(len - 3, &[b[0] ^ 0xff]).unwrap();
    let (_s, ob) = reopen(&st);
    assert_eq!(ob.pending_count(), 2);
    // Not an outbox at all.
    f.write_at(0, b"NOTOUTBX").unwrap();
    let mut shard = EdgeShard::load(Arc::new(st.clone()), "").unwrap();
    let e = Outbox::open(&mut shard).err().expect("bad magic must be refused");
    assert_eq!(e.kind(), qdrant_edge_wasm::ErrorKind::Corrupted, "{e}");
}

#[test]
fn compaction_keeps_pending_entries_and_numbering() {
    let st = MemoryStorage::new();
    let mut shard = EdgeShard::create(Arc::new(st.clone()), "", config()).unwrap();
    let mut ob = Outbox::create(shard.storage().clone(), "").unwrap();
    let big = |i: u64| {
        let mut p = point(i);
        p["payload"]["blob"] = json!("x".repeat(40_000));
        json!({"points": [p]})
    };
    for i in 0..60 {
        update_recorded(&mut shard, &mut ob, "upsert", &big(i)).unwrap();
    }
    let size = || st.open(OUTBOX_FILE, qdrant_edge_wasm::storage::OpenMode::Read).unwrap().len().unwrap();
    assert!(size() > 2 << 20);
    ob.ack(50).unwrap();
    assert!(size() < 600_000, "acknowledged entries are dropped by compaction ({} bytes)", size());
    let want: Vec<(String, Value)> = (50..60).map(|i| ("upsert".to_string(), big(i))).collect();
    assert_eq!(pending(&ob), want);
    update_recorded(&mut shard, &mut ob, "upsert", &big(60)).unwrap();
    drop((shard, ob));
    let (_s, ob) = reopen(&st);
    let seqs: Vec<u64> = ob.pending(usize::MAX, u64::MAX).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (51..=61).collect::<Vec<_>>());
    assert_eq!(ob.acked(), 50);
}

/// Fail every mutating storage operation in turn (whole or torn) during a workload of recorded
/// updates and acknowledgements. After a restart on the surviving bytes: every update
/// acknowledged to the caller is in the shard and pending or acknowledged in the outbox, and
/// the outbox holds exactly the updates the shard holds.
#[test]
fn faults_keep_the_outbox_equal_to_the_shard() {
    // Each step upserts one new point, so "what the shard holds" is its set of ids.
    let run = |st: Arc<dyn Storage>| -> Vec<u64> {
        let mut acked = Vec::new();
        let Ok(mut shard) = EdgeShard::create(st.clone(), "", config()) else { return acked };
        let Ok(mut ob) = Outbox::create(st, "") else { return acked };
        for i in 1..=12u64 {
            if i == 5 && shard.flush().is_err() {
                return acked;
            }
            if i == 9 && ob.ack(3).is_err() {
                return acked;
            }
            let body = if i % 4 == 0 { json!({"operations": [{"upsert": upsert(&[i])}]}) } else { upsert(&[i]) };
            let cmd = if i % 4 == 0 { "update" } else { "upsert" };
            if update_recorded(&mut shard, &mut ob, cmd, &body).is_err() {
                return acked;
            }
            acked.push(i);
        }
        acked
    };
    let counter = FaultStorage::new(MemoryStorage::new());
    assert_eq!(run(Arc::new(counter.clone())).len(), 12);
    let total = counter.ops();
    let mut checked = 0;
    for n in 0..total {
        for tear in [false, true] {
            let mem = MemoryStorage::new();
            let faulty = FaultStorage::new(mem.clone());
            faulty.fail_at(n, tear);
            let acked = run(Arc::new(faulty.clone()));
            assert!(faulty.has_failed(), "fault {n} did not trigger");
            let Ok(mut shard) = EdgeShard::load(Arc::new(mem.clone()), "") else {
                assert!(acked.is_empty(), "fault {n}: the shard does not load after acknowledged updates");
                continue;
            };
            if !Outbox::exists(&mem, "").unwrap() {
                assert!(acked.is_empty(), "fault {n}: the outbox is gone");
                continue;
            }
            let ob = Outbox::open(&mut shard).unwrap_or_else(|e| panic!("fault {n} tear {tear}: {e}"));
            let held = ids(&shard);
            for i in &acked {
                assert!(held.contains(i), "fault {n} tear {tear}: acknowledged update {i} lost by the shard");
            }
            let entries: Vec<u64> = pending(&ob)
                .iter()
                .map(|(c, b)| {
                    let p = if c == "update" { &b["operations"][0]["upsert"] } else { b };
                    p["points"][0]["id"].as_u64().unwrap()
                })
                .collect();
            let expect_pending: Vec<u64> = held.iter().copied().filter(|&i| i > ob.acked()).collect();
            assert_eq!(
                entries, expect_pending,
                "fault {n} tear {tear}: outbox vs shard (held {held:?}, acked {acked:?})"
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} fault points reopened");
}
