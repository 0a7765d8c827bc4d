//! Gridstore writer against Qdrant Edge itself (qdrant-edge-py 0.9.0, driven through
//! `tests/corpus/gridstore_roundtrip.py`): payloads our writer puts into a real shard's
//! `payload_storage/` are what `EdgeShard.retrieve` returns, and payloads qdrant-edge-py writes
//! are what our writer reads. Python is `$QEW_PYTHON`, else `.venv/bin/python` (made by `scripts/setup.sh`); the
//! tests fail (they do not skip) when it or `qdrant_edge` is missing.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qdrant_edge_wasm::format::gridstore::{read_payload, Gridstore};
use qdrant_edge_wasm::format::gridstore_write::{GridstoreConfig, GridstoreWriter};
use qdrant_edge_wasm::format::id_tracker::IdTracker;
use qdrant_edge_wasm::storage::{EntryKind, FsStorage, Storage};
use qdrant_edge_wasm::types::PointId;
use serde_json::{json, Value};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/gridstore_roundtrip.py");

/// Run the helper; panics with its stderr on failure.
fn py(args: &[&str], stdin: &Value) -> Value {
    let mut child = Command::new(common::oracle_python())
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (set QEW_PYTHON to a python with qdrant-edge-py 0.9.0): {e}",
                common::oracle_python().display()
            )
        });
    child.stdin.take().unwrap().write_all(stdin.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {SCRIPT} {args:?} failed ({}):\n{}",
        common::oracle_python().display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("helper output is not JSON: {e}"))
}

struct Shard {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    storage: FsStorage,
    segment: String,
}

impl Shard {
    fn make(n: usize) -> Shard {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("shard");
        py(&["make", root.to_str().unwrap(), &n.to_string()], &Value::Null);
        let storage = FsStorage::new(&root).unwrap();
        let segs: Vec<String> = storage
            .list_dir("segments")
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .map(|e| format!("segments/{}", e.name))
            .collect();
        assert_eq!(segs.len(), 1, "one appendable segment expected: {segs:?}");
        Shard { _tmp: tmp, root, storage, segment: segs[0].clone() }
    }
    fn payload_dir(&self) -> String {
        format!("{}/payload_storage", self.segment)
    }
    fn ids(&self) -> IdTracker {
        IdTracker::open(&self.storage, &self.segment, true).unwrap()
    }
    /// Payloads by external id, as qdrant-edge-py returns them.
    fn retrieve(&self, ids: &[PointId]) -> BTreeMap<PointId, Value> {
        let out = py(&["retrieve", self.root.to_str().unwrap()], &serde_json::to_value(ids).unwrap());
        out.as_array()
            .unwrap()
            .iter()
            .map(|r| (serde_json::from_value::<PointId>(r[0].clone()).unwrap(), r[1].clone()))
            .collect()
    }
}

/// A decoded value, `{}` when absent (what `retrieve` shows for a point without payload).
fn as_payload(v: Option<Vec<u8>>) -> Value {
    v.map_or(json!({}), |b| serde_json::from_slice(&b).expect("payload is JSON"))
}

/// `bitmask.dat` marks exactly the blocks of the live values, which never overlap, and every
/// `gaps.dat` entry matches the bitmask (§7.2).
fn assert_allocation_exact(st: &dyn Storage, dir: &str) {
    let gs = Gridstore::open(st, dir).unwrap();
    let cfg = gs.config();
    let (b, r) = (cfg.block_size_bytes.unwrap(), cfg.region_size_blocks.unwrap());
    let bpp = cfg.page_size_bytes / b;
    let bitmask = st.read_all(&format!("{dir}/bitmask.dat")).unwrap();
    let bit = |i: u64| bitmask[(i / 8) as usize] >> (i % 8) & 1 == 1;
    let mut live = vec![false; bitmask.len() * 8];
    for k in gs.keys() {
        let p = gs.pointer(k).unwrap();
        let start = u64::from(p.page_id) * bpp + u64::from(p.offset);
        for blk in start..start + u64::from(p.length).div_ceil(b) {
            assert!(!std::mem::replace(&mut live[blk as usize], true), "{dir}: key {k} overlaps at block {blk}");
        }
    }
    for (i, l) in live.iter().enumerate() {
        assert_eq!(bit(i as u64), *l, "{dir}: block {i}");
    }
    let gaps = st.read_all(&format!("{dir}/gaps.dat")).unwrap();
    assert_eq!(gaps.len() as u64, live.len() as u64 / r * 6);
    for reg in 0..live.len() as u64 / r {
        let used: Vec<bool> = (reg * r..(reg + 1) * r).map(bit).collect();
        let max = used.split(|u| *u).map(|s| s.len()).max().unwrap_or(0) as u16;
        let lead = used.iter().take_while(|u| !**u).count() as u16;
        let trail = used.iter().rev().take_while(|u| !**u).count() as u16;
        let e = &gaps[(reg * 6) as usize..(reg * 6 + 6) as usize];
        let got: Vec<u16> = e.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(got, [max, lead, trail], "{dir}: gaps of region {reg}");
    }
}

fn random_text(seed: &mut u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ALPHABET[(*seed % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// Our changes (overwrite, delete, long values over many blocks) to a store Qdrant wrote load
/// in qdrant-edge-py; a store rebuilt from scratch by `create` loads too.
#[test]
fn our_writes_load_in_qdrant_edge() {
    let shard = Shard::make(300);
    let st = &shard.storage;
    let dir = shard.payload_dir();
    let ids = shard.ids();
    assert_eq!(ids.live_count(), 300);
    assert_allocation_exact(st, &dir); // Qdrant's own allocation, journal applied
    let all: Vec<PointId> = ids.iter_live().map(|(p, _)| p).collect();
    let by_internal: BTreeMap<u32, PointId> = ids.iter_live().map(|(p, i)| (i, p)).collect();

    let mut w = GridstoreWriter::open(st, &dir).unwrap();
    let mut expected: BTreeMap<u32, Value> = BTreeMap::new();
    for &i in by_internal.keys() {
        expected.insert(i, as_payload(w.get(i).unwrap()));
    }
    // what we read from Qdrant's store is what it serves
    let before = shard.retrieve(&all);
    for (&i, v) in &expected {
        assert_eq!(&before[&by_internal[&i]], v, "internal {i} before our changes");
    }
    let mut seed = 0x1234_5678_9abc_def1u64;
    for &i in by_internal.keys() {
        let new = if i % 11 == 5 {
            w.delete(i).unwrap();
            json!({})
        } else if i % 13 == 1 {
            // ~300 blocks, or ~19500 (three regions) for one of them
            let len = if i == 14 { 2_500_000 } else { 40_000 };
            json!({"ours": "long", "i": i, "blob": random_text(&mut seed, len)})
        } else if i % 7 == 0 {
            json!({"ours": true, "i": i, "unicode": "päyload ✓", "f": 0.25, "nested": {"a": [1, 2, {"b": null}]}})
        } else {
            continue;
        };
        if new != json!({}) {
            w.put(i, &serde_json::to_vec(&new).unwrap()).unwrap();
        }
        expected.insert(i, new);
    }
    let long = w.pointer(14).unwrap();
    assert!(long.length > 128 * 8192, "{long:?}");
    for (&i, v) in &expected {
        assert_eq!(&as_payload(w.get(i).unwrap()), v, "pending {i}");
    }
    w.flush(st).unwrap();
    assert!(st.exists(&format!("{dir}/tracker_journal.dat")).unwrap());
    assert_allocation_exact(st, &dir);

    let got = shard.retrieve(&all);
    assert_eq!(got.len(), 300);
    for (&i, v) in &expected {
        assert_eq!(&got[&by_internal[&i]], v, "internal {i} = {}", by_internal[&i]);
    }
    // qdrant-edge-py replayed our journal (and removed it) without complaint
    assert!(!st.exists(&format!("{dir}/tracker_journal.dat")).unwrap());
    let w = GridstoreWriter::open(st, &dir).unwrap();
    for (&i, v) in &expected {
        assert_eq!(&as_payload(w.get(i).unwrap()), v, "after reload {i}");
    }
    drop(w);

    // a store built from nothing by `create` (same layout Qdrant creates) loads as well
    st.remove_dir_all(&dir).unwrap();
    let mut w = GridstoreWriter::create(st, &dir, GridstoreConfig::payload()).unwrap();
    for (&i, v) in expected.iter().rev() {
        if *v != json!({}) {
            w.put(i, &serde_json::to_vec(v).unwrap()).unwrap();
        }
    }
    w.flush(st).unwrap();
    assert_allocation_exact(st, &dir);
    let got = shard.retrieve(&all);
    for (&i, v) in &expected {
        assert_eq!(&got[&by_internal[&i]], v, "rebuilt store, internal {i}");
    }
}

/// Payload updates made by qdrant-edge-py (journal left behind on close) are what our writer
/// reads; our next change on top of them loads in qdrant-edge-py again.
#[test]
fn qdrant_edge_writes_open_in_our_writer() {
    let shard = Shard::make(300);
    let st = &shard.storage;
    let dir = shard.payload_dir();
    let ids = shard.ids();
    let all: Vec<PointId> = ids.iter_live().map(|(p, _)| p).collect();
    let pick = |m: usize, r: usize| -> Vec<PointId> {
        all.iter().enumerate().filter(|(k, _)| k % m == r).map(|(_, p)| *p).collect()
    };
    let plan = json!({"set": pick(5, 0), "overwrite": pick(5, 1), "clear": pick(5, 2), "delete_key": pick(5, 3)});
    py(&["update", shard.root.to_str().unwrap()], &plan);
    assert!(st.exists(&format!("{dir}/tracker_journal.dat")).unwrap(), "qdrant-edge leaves its journal on close");
    let truth = shard.retrieve(&all);
    // the python retrieve replayed the journal: write one again by updating once more
    let plan2 = json!({"set": pick(7, 6)});
    py(&["update", shard.root.to_str().unwrap()], &plan2);
    let truth2 = shard.retrieve(&all);
    assert_ne!(truth, truth2);
    py(&["update", shard.root.to_str().unwrap()], &json!({"overwrite": pick(11, 4)}));
    assert!(st.exists(&format!("{dir}/tracker_journal.dat")).unwrap());

    // our reader overlays the journal; our writer replays it
    let truth3 = {
        let gs = Gridstore::open(st, &dir).unwrap();
        let ids = shard.ids();
        ids.iter_live().map(|(p, i)| (p, Value::Object(read_payload(&gs, i).unwrap()))).collect::<BTreeMap<_, _>>()
    };
    let mut w = GridstoreWriter::open(st, &dir).unwrap();
    assert!(!st.exists(&format!("{dir}/tracker_journal.dat")).unwrap());
    assert_allocation_exact(st, &dir);
    let ids = shard.ids();
    let mut changed = 0;
    for (p, i) in ids.iter_live() {
        let ours = as_payload(w.get(i).unwrap());
        assert_eq!(ours, truth3[&p], "{p}");
        let (before, after) = (&truth[&p], &truth2[&p]);
        if all.iter().position(|x| *x == p).unwrap() % 11 == 4 {
            assert_eq!(ours, json!({"py": "overwritten", "big": "y".repeat(3000)}));
            changed += 1;
        } else {
            assert_eq!(&ours, after);
        }
        if all.iter().position(|x| *x == p).unwrap() % 5 == 2 {
            assert_eq!(before, &json!({}));
        }
    }
    assert!(changed > 20);

    // and back: our change on top of Qdrant's updates
    let target: Vec<(PointId, u32)> = ids.iter_live().filter(|(_, i)| i % 3 == 0).collect();
    for (_, i) in &target {
        w.put(*i, &serde_json::to_vec(&json!({"round": 2, "i": i})).unwrap()).unwrap();
    }
    w.flush(st).unwrap();
    assert_allocation_exact(st, &dir);
    let got = shard.retrieve(&all);
    for (p, i) in ids.iter_live() {
        let want = if i % 3 == 0 { json!({"round": 2, "i": i}) } else { truth3[&p].clone() };
        assert_eq!(got[&p], want, "{p}");
    }
}

/// `create` writes the same five files, byte for byte, as qdrant-edge-py's fresh appendable
/// segment.
#[test]
fn created_store_matches_a_fresh_qdrant_store() {
    let shard = Shard::make(0);
    let st = &shard.storage;
    let theirs = shard.payload_dir();
    let ours_root = tempfile::tempdir().unwrap();
    let ours = FsStorage::new(ours_root.path()).unwrap();
    GridstoreWriter::create(&ours, "payload_storage", GridstoreConfig::payload()).unwrap();
    let names =
        |s: &dyn Storage, d: &str| -> Vec<String> { s.list_dir(d).unwrap().into_iter().map(|e| e.name).collect() };
    assert_eq!(names(&ours, "payload_storage"), names(st, &theirs));
    for name in names(st, &theirs) {
        let a = st.read_all(&format!("{theirs}/{name}")).unwrap();
        let b = ours.read_all(&format!("payload_storage/{name}")).unwrap();
        assert_eq!(a.len(), b.len(), "{name} length");
        assert!(a == b, "{name} differs");
    }
    assert!(Path::new(&ours_root.path().join("payload_storage/page_0.dat")).exists());
}
