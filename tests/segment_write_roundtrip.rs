//! The segment writers against qdrant-edge-py 0.9.0, in both directions.
//!
//! `tests/corpus/segment_write_roundtrip.py make` builds a shard with qdrant-edge-py (dense f32
//! Cosine, f16 Cosine, uint8 Dot, a multivector, a sparse vector; 200 points; WAL disabled so
//! loading replays nothing) and dumps every point as Qdrant returns it. The writers of
//! `format::segment_write` then change the shard's real files (overwrite vectors, delete
//! points, append new points, bump `segment.json`; or delete in an optimized segment's
//! immutable tracker; or add a brand-new appendable segment), and `... dump` loads the shard
//! again with qdrant-edge-py in a fresh process: scroll and retrieve must return exactly the
//! expected points (f16 / uint8 values as stored), and Qdrant must be able to keep writing.
//!
//! The interpreter is `QEW_PYTHON` or `.venv/bin/python` (made by `scripts/setup.sh`); if it cannot import
//! `qdrant_edge` the tests FAIL (they never skip).

mod common;

use std::collections::BTreeMap;

use qdrant_edge_wasm::format::id_tracker::{IdTracker, TrackerKind};
use qdrant_edge_wasm::format::segment_meta::{read_segment_state, SegmentState, VectorDataConfig};
use qdrant_edge_wasm::format::segment_write::{
    create_appendable_segment, write_segment_state, DenseVectorWriter, ImmutableIdTrackerUpdater, MultiVectorWriter,
    MutableIdTrackerWriter, SparseDeletedFlags, SparseStoreOp,
};
use qdrant_edge_wasm::spaces::to_stored;
use qdrant_edge_wasm::storage::{EntryKind, FsStorage, Storage};
use qdrant_edge_wasm::{Distance, PointId};
use serde_json::{json, Value};

const DENSE: [&str; 3] = ["d", "h", "u"];

fn run_py(args: &[&str]) -> Value {
    common::run_oracle_script("segment_write_roundtrip.py", args)
}

fn segment_dirs(st: &FsStorage) -> Vec<String> {
    st.list_dir("segments")
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| format!("segments/{}", e.name))
        .collect()
}

/// Deterministic vectors without a RNG crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
    }
    fn vec(&mut self, n: u64) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
    fn bytes(&mut self, n: u64) -> Vec<f32> {
        (0..n).map(|_| ((self.next() + 2.0) * 80.0).floor()).collect()
    }
}

/// Numbers equal as f32 (Qdrant returns f32 values widened to f64).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().map(|v| v as f32) == y.as_f64().map(|v| v as f32),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn assert_points(got: &Value, want: &BTreeMap<String, Value>) {
    let got = got.as_object().expect("points object");
    let gk: Vec<&String> = got.keys().collect();
    let wk: Vec<&String> = want.keys().collect();
    let mut gk_sorted = gk.clone();
    gk_sorted.sort();
    assert_eq!(gk_sorted, wk, "point ids differ");
    for (id, w) in want {
        assert!(same(&got[id], w), "point {id}:\n qdrant: {}\n wanted: {w}", got[id]);
    }
}

fn stored(cfg: &VectorDataConfig, v: &[f32]) -> Vec<f32> {
    to_stored(cfg.distance, cfg.datatype(), v)
}

/// Dense values by name (`None` = absent), the multivector, and their JSON as Qdrant returns them.
type NewVectors = (BTreeMap<&'static str, Option<Vec<f32>>>, Vec<Vec<f32>>, serde_json::Map<String, Value>);

/// New values for the vectors of one point: `(dense by name, multivector)`, already in stored
/// form, plus their JSON as Qdrant returns them.
fn new_vectors(cfgs: &BTreeMap<String, VectorDataConfig>, rng: &mut Lcg, skip_h: bool) -> NewVectors {
    let mut dense = BTreeMap::new();
    let mut js = serde_json::Map::new();
    for name in DENSE {
        let c = &cfgs[name];
        if skip_h && name == "h" {
            dense.insert(name, None);
            continue;
        }
        let raw = if name == "u" { rng.bytes(c.size) } else { rng.vec(c.size) };
        let s = stored(c, &raw);
        js.insert(name.into(), json!(s));
        dense.insert(name, Some(s));
    }
    let mc = &cfgs["m"];
    assert_eq!(mc.distance, Distance::Cosine);
    let n = 1 + (rng.next().abs() * 1.4) as usize;
    let multi: Vec<Vec<f32>> = (0..n).map(|_| stored(mc, &rng.vec(mc.size))).collect();
    js.insert("m".into(), json!(multi));
    (dense, multi, js)
}

#[test]
fn appendable_segment_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("shard");
    let initial = run_py(&["make", shard.to_str().unwrap()]);
    let mut want: BTreeMap<String, Value> =
        initial["points"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(want.len(), 200);

    let st = FsStorage::new(&shard).unwrap();
    let segs = segment_dirs(&st);
    assert_eq!(segs.len(), 1, "{segs:?}");
    let seg = &segs[0];
    let state = read_segment_state(&st, seg).unwrap();
    assert!(state.config.is_appendable());
    let cfgs = state.config.vector_data.clone();
    let op = state.version.unwrap_or(0) + 1;

    let mut tracker = MutableIdTrackerWriter::open(&st, seg).unwrap();
    assert_eq!(tracker.total_point_count(), 200);
    let mut dense: BTreeMap<&str, DenseVectorWriter> =
        DENSE.iter().map(|&n| (n, DenseVectorWriter::open(&st, seg, n, &cfgs[n]).unwrap())).collect();
    let mut multi = MultiVectorWriter::open(&st, seg, "m", &cfgs["m"]).unwrap();
    let mut sparse = SparseDeletedFlags::open(&st, seg, "s").unwrap();
    assert_eq!(sparse.next_point_offset(), 200);
    let mut rng = Lcg(42);

    // (a) overwrite the vectors of some points (3 lacked "h" and gets one; 5 loses its "h")
    for id in [0u64, 1, 3, 5, 8, 13, 77, 199] {
        let internal = tracker.internal_id(PointId::Num(id)).unwrap();
        let (dv, mv, js) = new_vectors(&cfgs, &mut rng, id == 5);
        for (name, v) in &dv {
            dense.get_mut(name).unwrap().put(internal, v.as_deref()).unwrap();
        }
        multi.put(internal, Some(&mv)).unwrap();
        tracker.set_version(internal, op).unwrap();
        let w = want.get_mut(&id.to_string()).unwrap();
        let sparse_old = w["vector"].get("s").cloned();
        let mut vec = js;
        if let Some(s) = sparse_old {
            vec.insert("s".into(), s);
        }
        w["vector"] = Value::Object(vec);
    }

    // (b) delete some points: mapping removed, version = the delete's op
    for id in (20u64..30).chain([150, 198]) {
        let internal = tracker.delete(PointId::Num(id)).unwrap().expect("mapped");
        assert_eq!(tracker.version(internal), Some(0));
        tracker.set_version(internal, op).unwrap();
        want.remove(&id.to_string());
    }
    assert_eq!(tracker.delete(PointId::Num(123_456)).unwrap(), None);

    // (c) append new points at fresh internal ids (no payload, no sparse vector)
    for id in 1000u64..1012 {
        let internal = u32::try_from(tracker.total_point_count()).unwrap();
        tracker.insert(PointId::Num(id), internal).unwrap();
        let (dv, mv, js) = new_vectors(&cfgs, &mut rng, id == 1003);
        for (name, v) in &dv {
            dense.get_mut(name).unwrap().put(internal, v.as_deref()).unwrap();
        }
        if id == 1007 {
            multi.put(internal, None).unwrap();
        } else {
            multi.put(internal, Some(&mv)).unwrap();
        }
        assert_eq!(sparse.put(internal, None).unwrap(), SparseStoreOp::Delete);
        tracker.set_version(internal, op).unwrap();
        let mut vec = js;
        if id == 1007 {
            vec.remove("m");
        }
        want.insert(id.to_string(), json!({"vector": vec, "payload": {}}));
    }
    assert_eq!(tracker.total_point_count(), 212);

    // flush in Qdrant's order: mappings → vectors → versions → segment.json
    tracker.flush_mappings().unwrap();
    for w in dense.values_mut() {
        w.flush().unwrap();
    }
    multi.flush().unwrap();
    sparse.flush().unwrap();
    tracker.flush_versions().unwrap();
    write_segment_state(&st, seg, &SegmentState { version: Some(op), ..state.clone() }).unwrap();

    // our own reader agrees before Qdrant looks
    let r = IdTracker::open(&st, seg, true).unwrap();
    assert_eq!(r.live_count(), want.len());
    assert_eq!(r.version(r.internal_id(PointId::Num(1011)).unwrap()), Some(op));

    let after = run_py(&["dump", shard.to_str().unwrap(), "--touch"]);
    assert_eq!(after["count"].as_u64(), Some(want.len() as u64));
    assert_points(&after["points"], &want);
    assert_eq!(after["touch_ok"], json!(true), "qdrant-edge could not keep writing to the segment");
    assert_eq!(after["touch_rest_unchanged"], json!(true));
}

#[test]
fn immutable_tracker_delete_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("shard");
    let initial = run_py(&["make", shard.to_str().unwrap(), "--optimize"]);
    let mut want: BTreeMap<String, Value> =
        initial["points"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();

    let st = FsStorage::new(&shard).unwrap();
    let mut optimized = None;
    let mut max_version = 0;
    for seg in segment_dirs(&st) {
        let s = read_segment_state(&st, &seg).unwrap();
        max_version = max_version.max(s.version.unwrap_or(0));
        if !s.config.is_appendable() {
            optimized = Some(seg);
        }
    }
    let seg = optimized.expect("qdrant-edge-py produced an optimized segment");
    let reader = IdTracker::open(&st, &seg, false).unwrap();
    assert_eq!(reader.kind(), TrackerKind::Immutable);
    assert_eq!(reader.live_count(), 200);
    let op = max_version + 1;

    let mut up = ImmutableIdTrackerUpdater::open(&st, &seg).unwrap();
    assert_eq!(up.count(), 200);
    for id in [7u64, 8, 140] {
        let internal = reader.internal_id(PointId::Num(id)).unwrap();
        assert!(!up.mark_deleted(internal).unwrap());
        up.set_version(internal, op).unwrap();
        want.remove(&id.to_string());
    }
    up.flush().unwrap();
    let r = IdTracker::open(&st, &seg, false).unwrap();
    assert_eq!(r.live_count(), 197);

    let after = run_py(&["dump", shard.to_str().unwrap()]);
    assert_eq!(after["count"].as_u64(), Some(197));
    assert_points(&after["points"], &want);
}

#[test]
fn new_appendable_segment_loads_in_qdrant() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("shard");
    let initial = run_py(&["make", shard.to_str().unwrap()]);
    let mut want: BTreeMap<String, Value> =
        initial["points"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();

    let st = FsStorage::new(&shard).unwrap();
    let old = segment_dirs(&st).remove(0);
    let state = read_segment_state(&st, &old).unwrap();
    let cfgs = state.config.vector_data.clone();
    let op = state.version.unwrap_or(0) + 1;
    let seg =
        create_appendable_segment(&st, "segments", "0b8c6b7e-1b47-4e55-9d4c-0123456789ab", &state.config).unwrap();

    // five new points in the new segment; point 0 moves there too (deleted in the old one)
    let mut tracker = MutableIdTrackerWriter::open(&st, &seg).unwrap();
    let mut dense: BTreeMap<&str, DenseVectorWriter> =
        DENSE.iter().map(|&n| (n, DenseVectorWriter::open(&st, &seg, n, &cfgs[n]).unwrap())).collect();
    let mut multi = MultiVectorWriter::open(&st, &seg, "m", &cfgs["m"]).unwrap();
    let mut sparse = SparseDeletedFlags::open(&st, &seg, "s").unwrap();
    let mut rng = Lcg(7);
    for (internal, id) in [2000u64, 2001, 2002, 2003, 2004, 0].into_iter().enumerate() {
        let internal = internal as u32;
        tracker.insert(PointId::Num(id), internal).unwrap();
        let (dv, mv, js) = new_vectors(&cfgs, &mut rng, false);
        for (name, v) in &dv {
            dense.get_mut(name).unwrap().put(internal, v.as_deref()).unwrap();
        }
        multi.put(internal, Some(&mv)).unwrap();
        sparse.put(internal, None).unwrap();
        tracker.set_version(internal, op).unwrap();
        want.insert(id.to_string(), json!({"vector": js, "payload": {}}));
    }
    tracker.flush_mappings().unwrap();
    for w in dense.values_mut() {
        w.flush().unwrap();
    }
    multi.flush().unwrap();
    sparse.flush().unwrap();
    tracker.flush_versions().unwrap();
    let mut new_state = read_segment_state(&st, &seg).unwrap();
    new_state.version = Some(op);
    write_segment_state(&st, &seg, &new_state).unwrap();
    // copy-on-write: the old copy of point 0 is deleted in the old segment with the same op
    let mut old_tracker = MutableIdTrackerWriter::open(&st, &old).unwrap();
    let i = old_tracker.delete(PointId::Num(0)).unwrap().unwrap();
    old_tracker.set_version(i, op).unwrap();
    old_tracker.flush().unwrap();
    write_segment_state(&st, &old, &SegmentState { version: Some(op), ..state }).unwrap();

    let after = run_py(&["dump", shard.to_str().unwrap(), "--touch"]);
    assert_eq!(after["count"].as_u64(), Some(205));
    assert_points(&after["points"], &want);
    assert_eq!(after["touch_ok"], json!(true));
}
