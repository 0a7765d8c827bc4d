//! The mutable payload field-index writer against qdrant-edge-py 0.9.0, in both directions.
//!
//! `tests/corpus/field_index_roundtrip.py make` builds a shard whose appendable segment has
//! payload indexes of every type (keyword, integer, float, bool, datetime, uuid, geo, text,
//! a nested path, integer without lookup, text with phrase matching, text with BM25 scoring)
//! and 80 points with varied payloads (arrays, type mismatches, nulls, missing fields).
//!
//! 1. Our `FieldIndexWriter` fed the same payloads at the same internal ids writes the same
//!    files as Qdrant: every file byte-for-byte, except `tracker_journal.dat` whose records
//!    Qdrant writes in hash order (compared as a set).
//! 2. New points, deletions and payload overwrites written with our writers (index entries,
//!    payload, id tracker, vectors) load in qdrant-edge-py and answer filtered counts exactly
//!    as a copy of the shard that qdrant-edge-py updated itself; a control shows Qdrant answers
//!    from the index entries, not from the payload.
//! 3. Creating indexes from stored payloads and dropping indexes with our functions gives the
//!    same `info().payload_schema`, counts and index files as qdrant-edge-py doing it.
//!
//! 4. Immutable indexes of optimized segments (`format::immutable_index`): rebuilt from the
//!    payloads of a segment qdrant-edge-py optimized, every file equals Qdrant's
//!    (`values_to_points.bin`: header and perfect-hash function byte for byte, entries as a
//!    set, since Qdrant writes them in hash-map order); a shard we optimized loads in
//!    qdrant-edge-py with the same filtered counts as before, without Qdrant rewriting any
//!    index file (it silently rebuilds indexes it cannot read), also with the indexes switched
//!    to Qdrant's on-disk layout, where lookups go through our hash functions (a damaged
//!    bucket array there changes the answers: the negative control).
//!
//! The interpreter is `QEW_PYTHON` or `.venv/bin/python` (made by `scripts/setup.sh`); if it cannot import
//! `qdrant_edge` the tests FAIL (they never skip).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use qdrant_edge_wasm::format::field_index_write::{
    create_field_index, drop_field_index, field_dir_name, FieldIndexWriter,
};
use qdrant_edge_wasm::format::fmph::ParsedMap;
use qdrant_edge_wasm::format::gridstore::{read_payload, Gridstore};
use qdrant_edge_wasm::format::gridstore_write::GridstoreWriter;
use qdrant_edge_wasm::format::id_tracker::IdTracker;
use qdrant_edge_wasm::format::immutable_index::build_optimized_field_index;
use qdrant_edge_wasm::format::payload_index::{IndexMutability, IndexStorageType, PayloadIndexConfig};
use qdrant_edge_wasm::format::segment_meta::read_segment_state;
use qdrant_edge_wasm::format::segment_write::{write_segment_state, DenseVectorWriter, MutableIdTrackerWriter};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{EntryKind, FsStorage, MemoryStorage, Storage};
use qdrant_edge_wasm::{Payload, PointId};
use serde_json::{json, Value};

fn run_py(args: &[&str]) -> Value {
    common::run_oracle_script("field_index_roundtrip.py", args)
}

fn run_py_json(cmd: &str, shard: &Path, arg: &Value, tmp: &Path, name: &str) -> Value {
    let f = tmp.join(name);
    std::fs::write(&f, serde_json::to_vec(arg).unwrap()).unwrap();
    run_py(&[cmd, shard.to_str().unwrap(), f.to_str().unwrap()])
}

fn make_shard(tmp: &Path, name: &str) -> PathBuf {
    let shard = tmp.join(name);
    run_py(&["make", shard.to_str().unwrap()]);
    shard
}

fn copy_shard(from: &Path, to: &Path) {
    let ok = Command::new("cp").args(["-a", "--sparse=always"]).arg(from).arg(to).status().unwrap().success();
    assert!(ok, "cp failed");
}

fn only_segment(st: &FsStorage) -> String {
    let segs = common::segment_dirs(st);
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs[0].clone()
}

/// Every live point's payload, ascending internal id.
fn stored_points(st: &dyn Storage, seg: &str) -> Vec<(u32, Payload)> {
    stored_points_of(st, seg, true)
}

fn stored_points_of(st: &dyn Storage, seg: &str, appendable: bool) -> Vec<(u32, Payload)> {
    let tracker = IdTracker::open(st, seg, appendable).unwrap();
    let gs = Gridstore::open(st, &format!("{seg}/payload_storage")).unwrap();
    (0..tracker.total_point_count() as u32)
        .filter(|&i| tracker.external_id(i).is_some())
        .map(|i| (i, read_payload(&gs, i).unwrap()))
        .collect()
}

/// Relative paths of every file under `dir`.
fn files_under(st: &dyn Storage, dir: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let full = if rel.is_empty() { dir.to_string() } else { format!("{dir}/{rel}") };
        for e in st.list_dir(&full).unwrap() {
            let r = if rel.is_empty() { e.name.clone() } else { format!("{rel}/{}", e.name) };
            match e.kind {
                EntryKind::Dir => stack.push(r),
                _ => {
                    out.insert(r);
                }
            }
        }
    }
    out
}

/// The `(key, slot)` records of a Gridstore journal.
fn journal_records(bytes: &[u8]) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let mut off = 0;
    while off + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        assert!(len > 0 && len % 20 == 0 && off + 8 + len <= bytes.len(), "journal entry at {off}");
        for r in bytes[off + 8..off + 8 + len].chunks(20) {
            out.insert(r.to_vec());
        }
        off += 8 + len;
    }
    out
}

/// Every file of the index directories of `field` in (`a`, `seg_a`) equals the one in
/// (`b`, `seg_b`); journals as record sets. Returns the number of files compared.
fn assert_same_index_files(a: &dyn Storage, seg_a: &str, b: &dyn Storage, seg_b: &str, field: &str) -> usize {
    let base = field_dir_name(field);
    let list = |st: &dyn Storage, seg: &str| -> BTreeSet<String> {
        st.list_dir(&format!("{seg}/payload_index"))
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir && e.name.starts_with(&format!("{base}-")))
            .map(|e| e.name)
            .collect()
    };
    let dirs = list(a, seg_a);
    assert!(!dirs.is_empty(), "no index directories for `{field}`");
    assert_eq!(dirs, list(b, seg_b), "index directories of `{field}`");
    let mut n = 0;
    for d in &dirs {
        let (da, db) = (format!("{seg_a}/payload_index/{d}"), format!("{seg_b}/payload_index/{d}"));
        let files = files_under(a, &da);
        assert_eq!(files, files_under(b, &db), "files of {d}");
        for f in &files {
            let (x, y) = (a.read_all(&format!("{da}/{f}")).unwrap(), b.read_all(&format!("{db}/{f}")).unwrap());
            if f == "tracker_journal.dat" {
                assert_eq!(journal_records(&x), journal_records(&y), "{d}/{f} records");
            } else if f == "points_map_ids.bin" {
                // Qdrant writes the ids of one geohash in hash-set order: compare per hash
                let pm = a.read_all(&format!("{da}/points_map.bin")).unwrap();
                assert!(pm == b.read_all(&format!("{db}/points_map.bin")).unwrap(), "{d}/points_map.bin");
                for r in pm.chunks(16) {
                    let s = u32::from_le_bytes(r[8..12].try_into().unwrap()) as usize * 4;
                    let e = u32::from_le_bytes(r[12..16].try_into().unwrap()) as usize * 4;
                    let set = |v: &[u8]| v[s..e].chunks(4).map(|c| c.to_vec()).collect::<BTreeSet<_>>();
                    assert_eq!(set(&x), set(&y), "{d}/{f}: ids of one geohash");
                }
                assert_eq!(x.len(), y.len(), "{d}/{f} length");
            } else if f == "point_to_doc_len.dat" {
                // Qdrant compresses with libzstd; ours stores raw blocks: same header, same lengths
                assert!(x[..64] == y[..64], "{d}/{f} header");
                let unzstd = |v: &[u8]| {
                    let mut out = Vec::new();
                    let mut src = &v[64..];
                    let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut src).unwrap();
                    std::io::Read::read_to_end(&mut dec, &mut out).unwrap();
                    out
                };
                assert_eq!(unzstd(&x), unzstd(&y), "{d}/{f} lengths");
            } else if f == "values_to_points.bin" || f == "vocab.dat" {
                // header and function exact; Qdrant writes the entries in hash-map order (so the
                // alignment gaps, and the length, of i64 / u128 maps vary with that order)
                let (mx, my) = (ParsedMap::parse(&x, f).unwrap(), ParsedMap::parse(&y, f).unwrap());
                assert_eq!(mx.buckets_pos, my.buckets_pos, "{d}/{f} buckets_pos");
                assert!(x[..mx.buckets_pos as usize] == y[..my.buckets_pos as usize], "{d}/{f}: function differs");
                let set = |m: &ParsedMap| m.entries.iter().cloned().collect::<BTreeMap<_, _>>();
                assert_eq!(set(&mx), set(&my), "{d}/{f} entries");
            } else {
                assert!(x == y, "{d}/{f} differs ({} vs {} bytes)", x.len(), y.len());
            }
            n += 1;
        }
    }
    n
}

#[test]
fn our_index_files_equal_qdrants() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = make_shard(tmp.path(), "a");
    let st = FsStorage::new(&shard).unwrap();
    let seg = only_segment(&st);
    let cfg = PayloadIndexConfig::read(&st, &seg).unwrap();
    assert_eq!(cfg.indexed_fields.len(), 12);
    let points = stored_points(&st, &seg);
    assert_eq!(points.len(), 80);

    let mem = MemoryStorage::new();
    let mut compared = 0;
    for (field, schema) in &cfg.indexed_fields {
        let mut w = FieldIndexWriter::create(&mem, "seg", field, schema).unwrap();
        for (i, p) in &points {
            w.set(*i, p).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.index_types(), cfg.indexed_types[field], "indexed_types of `{field}`");
        assert_eq!(w.indexed_types(), serde_json::to_value(&cfg.indexed_types[field]).unwrap());
        compared += assert_same_index_files(&mem, "seg", &st, &seg, field);
        // and what we wrote opens again with the same content
        let r = FieldIndexWriter::open(&mem, "seg", field, schema).unwrap();
        for t in r.index_types() {
            for (i, _) in points.iter().take(5) {
                let _ = r.blob(t.index_type, *i).unwrap();
            }
        }
    }
    assert!(compared > 100, "{compared} files compared");

    // a second pass that deletes and re-sets points matches a Qdrant-shaped state too:
    // deleting clears (flags) and frees; re-setting with the same payload restores the blobs
    let mut w = FieldIndexWriter::open(&mem, "seg", "k", &json!("keyword")).unwrap();
    w.remove(points[0].0).unwrap();
    w.flush().unwrap();
    assert_eq!(
        w.flags(qdrant_edge_wasm::format::payload_index::PayloadIndexType::NullIndex, points[0].0),
        Some((false, false))
    );
}

/// Payloads of new points (ids 1000..), written by us and by Qdrant.
fn new_points() -> Vec<(u64, Vec<f32>, Value)> {
    let kws = [json!("fresh"), json!(["fresh", "red"]), json!("blue"), json!(null), json!(7), json!([])];
    (0..24u64)
        .map(|j| {
            let i = 1000 + j;
            let mut p = serde_json::Map::new();
            p.insert("k".into(), kws[(j % 6) as usize].clone());
            if j % 4 != 0 {
                p.insert("n".into(), if j % 3 == 0 { json!([j, j * 2]) } else { json!(j as f64 + 0.5) });
            }
            p.insert("f".into(), json!(j as f64 / 3.0));
            p.insert(
                "b".into(),
                [json!(true), json!(false), json!([true, false]), json!(null)][(j % 4) as usize].clone(),
            );
            p.insert("dt".into(), json!(format!("2025-06-{:02}T12:00:00+01:00", 1 + j % 28)));
            p.insert("u".into(), json!(format!("aaaaaaaa-0000-4000-8000-{:012x}", j)));
            p.insert("g".into(), json!({"lon": j as f64 * 7.0 - 80.0, "lat": j as f64 * 3.0 - 40.0}));
            p.insert("t".into(), json!(format!("Fresh words number{} ALPHA", j % 3)));
            p.insert("tp".into(), json!(["fresh start", format!("phrase {j}")]));
            p.insert("ts".into(), json!("fresh fresh beta"));
            p.insert("meta".into(), json!({"tag": if j % 2 == 0 { "m9" } else { "m1" }}));
            p.insert("ni".into(), json!(j));
            p.insert("extra".into(), json!("e9"));
            (i, vec![j as f32, 1.0], Value::Object(p))
        })
        .collect()
}

fn filters() -> Value {
    json!([
        {"must": [{"key": "k", "match": {"value": "fresh"}}]},
        {"must": [{"key": "k", "match": {"value": "red"}}]},
        {"must": [{"key": "k", "match": {"any": ["blue", "green"]}}]},
        {"must": [{"key": "k", "match": {"except": ["red"]}}]},
        {"must": [{"key": "k", "is_null": true}]},
        {"must": [{"key": "k", "is_empty": true}]},
        {"must": [{"key": "k", "values_count": {"gte": 2}}]},
        {"must": [{"key": "n", "range": {"gte": 10, "lt": 1010}}]},
        {"must": [{"key": "n", "match": {"value": 5}}]},
        {"must": [{"key": "n", "match": {"any": [2, 1001, 1002]}}]},
        {"must": [{"key": "n", "is_empty": true}]},
        {"must": [{"key": "f", "range": {"gt": 2.0}}]},
        {"must": [{"key": "f", "range": {"lte": 0.0}}]},
        {"must": [{"key": "b", "match": {"value": true}}]},
        {"must": [{"key": "b", "match": {"value": false}}]},
        {"must": [{"key": "b", "is_null": true}]},
        {"must": [{"key": "dt", "range": {"gte": "2024-01-10T00:00:00Z"}}]},
        {"must": [{"key": "dt", "range": {"lt": "2024-02-03T00:00:01Z", "gt": "2023-01-01T00:00:00Z"}}]},
        {"must": [{"key": "u", "match": {"value": "12345678-1234-5678-1234-567812345678"}}]},
        {"must": [{"key": "u", "match": {"value": "aaaaaaaa-0000-4000-8000-000000000005"}}]},
        {"must": [{"key": "u", "match": {"any": ["6ba7b810-9dad-11d1-80b4-00c04fd430c8", "00000000-0000-0000-0000-000000000002"]}}]},
        {"must": [{"key": "g", "geo_bounding_box": {"top_left": {"lon": -90, "lat": 60}, "bottom_right": {"lon": 90, "lat": -60}}}]},
        {"must": [{"key": "g", "geo_radius": {"center": {"lon": 2, "lat": -1}, "radius": 500000.0}}]},
        {"must": [{"key": "t", "match": {"text": "alpha"}}]},
        {"must": [{"key": "t", "match": {"text": "fresh words"}}]},
        {"must": [{"key": "t", "match": {"text_any": "number1 theta"}}]},
        {"must": [{"key": "tp", "match": {"phrase": "gamma delta"}}]},
        {"must": [{"key": "tp", "match": {"phrase": "fresh start"}}]},
        {"must": [{"key": "tp", "match": {"text": "eta"}}]},
        {"must": [{"key": "ts", "match": {"text": "fresh"}}]},
        {"must": [{"key": "ts", "match": {"text": "zeta"}}]},
        {"must": [{"key": "meta.tag", "match": {"value": "m1"}}]},
        {"must": [{"key": "meta.tag", "match": {"value": "m9"}}]},
        {"must": [{"key": "ni", "range": {"gte": 5}}]},
        {"must": [{"key": "ni", "range": {"gte": 1}, "match": null}, {"key": "k", "match": {"value": "fresh"}}]},
        {"must": [{"key": "extra", "match": {"value": "e1"}}]},
        {"must": [{"key": "xi", "match": {"value": 1}}]},
        {"must": [{"key": "xi", "range": {"gte": 2}}]},
        {"must": [{"key": "xb", "match": {"value": true}}]},
        {"must": [{"key": "xb", "is_null": true}]},
        {"must": [{"key": "xt", "match": {"phrase": "delta gamma"}}]},
        {"must": [{"key": "xt", "match": {"text": "alpha"}}]}
    ])
}

#[test]
fn qdrant_answers_from_our_entries_for_new_points() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = make_shard(tmp.path(), "ours");
    let theirs = tmp.path().join("theirs");
    copy_shard(&ours, &theirs);

    let st = FsStorage::new(&ours).unwrap();
    let seg = only_segment(&st);
    let state = read_segment_state(&st, &seg).unwrap();
    let op = state.version.unwrap_or(0) + 1;
    let cfg = PayloadIndexConfig::read(&st, &seg).unwrap();
    let mut tracker = MutableIdTrackerWriter::open(&st, &seg).unwrap();
    let mut dense = DenseVectorWriter::open(&st, &seg, "d", &state.config.vector_data["d"]).unwrap();
    let mut payloads = GridstoreWriter::open(&st, &format!("{seg}/payload_storage")).unwrap();
    let mut fields: Vec<FieldIndexWriter> =
        cfg.indexed_fields.iter().map(|(f, s)| FieldIndexWriter::open(&st, &seg, f, s).unwrap()).collect();
    let mut ops = Vec::new();

    // (a) new points
    let news = new_points();
    for (id, v, p) in &news {
        let internal = u32::try_from(tracker.total_point_count()).unwrap();
        tracker.insert(PointId::Num(*id), internal).unwrap();
        dense.put(internal, Some(v)).unwrap();
        payloads.put(internal, &serde_json::to_vec(p).unwrap()).unwrap();
        let pl = p.as_object().unwrap();
        for w in &mut fields {
            w.set(internal, pl).unwrap();
        }
        tracker.set_version(internal, op).unwrap();
    }
    ops.push(json!({"upsert": news.iter().map(|(id, v, p)| json!({"id": id, "vector": v, "payload": p})).collect::<Vec<_>>()}));
    // (b) delete old and new points
    let deleted = [3u64, 7, 40, 1002];
    for id in deleted {
        let internal = tracker.delete(PointId::Num(id)).unwrap().expect("mapped");
        payloads.delete(internal).unwrap();
        for w in &mut fields {
            w.remove(internal).unwrap();
        }
        tracker.set_version(internal, op).unwrap();
    }
    ops.push(json!({"delete": deleted}));
    // (c) overwrite payloads in place (field removed, type changed, values changed)
    let overwrites = [
        (10u64, json!({"k": "fresh", "n": [1, 2, 3], "b": false, "t": "Alpha omega", "meta": {"tag": "m9"}})),
        (11u64, json!({"k": 11, "dt": "2024-01-15", "g": {"lon": 2.5, "lat": -1.5}, "tp": "gamma delta"})),
        (1005u64, json!({})),
    ];
    for (id, p) in &overwrites {
        let internal = tracker.internal_id(PointId::Num(*id)).unwrap();
        payloads.put(internal, &serde_json::to_vec(p).unwrap()).unwrap();
        for w in &mut fields {
            w.set(internal, p.as_object().unwrap()).unwrap();
        }
        tracker.set_version(internal, op).unwrap();
        ops.push(json!({"overwrite_payload": {"id": id, "payload": p}}));
    }
    // flush in Qdrant's order: mappings → vectors → field indexes → payload → versions → segment.json
    tracker.flush_mappings().unwrap();
    dense.flush().unwrap();
    for w in &mut fields {
        w.flush().unwrap();
    }
    payloads.flush(&st).unwrap();
    tracker.flush_versions().unwrap();
    let mut new_state = state.clone();
    new_state.version = Some(op);
    write_segment_state(&st, &seg, &new_state).unwrap();

    run_py_json("apply", &theirs, &Value::Array(ops), tmp.path(), "ops.json");
    let fl = filters();
    let a = run_py_json("counts", &ours, &fl, tmp.path(), "f.json");
    let b = run_py_json("counts", &theirs, &fl, tmp.path(), "f.json");
    assert_eq!(a["total"], json!(80 + 24 - 4));
    assert_eq!(a["total"], b["total"]);
    let (ca, cb) = (a["counts"].as_array().unwrap(), b["counts"].as_array().unwrap());
    for (i, (x, y)) in ca.iter().zip(cb).enumerate() {
        assert_eq!(x, y, "filter {i} {}: ours {x}, qdrant {y}", fl[i]);
    }
    assert_eq!(a["schema"], b["schema"]);
    // the new points are really counted: 8 new points have k = fresh (j%6 in 0,1), one is
    // deleted (1002 has "blue", so none), plus point 10's overwrite
    assert_eq!(ca[0], json!(8 + 1));
    assert!(ca.iter().filter(|c| c.as_u64().unwrap() > 0).count() > 30, "{ca:?}");

    // Qdrant keeps writing to the index files we wrote (its Gridstores and flags open them)
    let more = json!([
        {"upsert": [{"id": 5000, "vector": [1.0, 2.0], "payload": {"k": "fresh", "b": true, "t": "alpha later"}}]},
        {"delete": [1001, 12]},
        {"overwrite_payload": {"id": 1004, "payload": {"k": "blue", "n": 3}}}
    ]);
    run_py_json("apply", &ours, &more, tmp.path(), "ops2.json");
    run_py_json("apply", &theirs, &more, tmp.path(), "ops2.json");
    let a = run_py_json("counts", &ours, &fl, tmp.path(), "f.json");
    let b = run_py_json("counts", &theirs, &fl, tmp.path(), "f.json");
    assert_eq!(a["total"], json!(80 + 24 - 4 + 1 - 2));
    assert_eq!(a["counts"], b["counts"]);
    assert_eq!(a["schema"], b["schema"]);
}

#[test]
fn qdrant_filters_through_our_index_entries() {
    // control: an index entry that disagrees with the payload decides Qdrant's count, so the
    // counts above really come from our index files
    let tmp = tempfile::tempdir().unwrap();
    let shard = make_shard(tmp.path(), "s");
    let st = FsStorage::new(&shard).unwrap();
    let seg = only_segment(&st);
    let internal = IdTracker::open(&st, &seg, true).unwrap().internal_id(PointId::Num(0)).unwrap();
    let mut w = FieldIndexWriter::open(&st, &seg, "k", &json!("keyword")).unwrap();
    w.set(internal, json!({"k": "ghost"}).as_object().unwrap()).unwrap();
    w.flush().unwrap();
    let got = run_py_json(
        "counts",
        &shard,
        &json!([{"must": [{"key": "k", "match": {"value": "ghost"}}]}]),
        tmp.path(),
        "f.json",
    );
    assert_eq!(got["counts"], json!([1]), "Qdrant did not answer from the keyword index");
}

#[test]
fn create_and_drop_index_like_qdrant() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = make_shard(tmp.path(), "ours");
    let theirs = tmp.path().join("theirs");
    copy_shard(&ours, &theirs);
    let created = [
        ("extra", json!("keyword")),
        ("xi", json!("integer")),
        ("xb", json!("bool")),
        ("xt", json!({"type": "text", "tokenizer": "word", "phrase_matching": true})),
    ];
    let dropped = ["f", "meta.tag"];

    let st = FsStorage::new(&ours).unwrap();
    let seg = only_segment(&st);
    let mut ops = Vec::new();
    for (field, schema) in &created {
        let types = create_field_index(&st, &seg, field, schema).unwrap();
        assert_eq!(
            types.last().unwrap().index_type,
            qdrant_edge_wasm::format::payload_index::PayloadIndexType::NullIndex
        );
        ops.push(json!({"create_index": [field, schema]}));
    }
    for field in dropped {
        assert!(drop_field_index(&st, &seg, field).unwrap());
        assert!(!drop_field_index(&st, &seg, field).unwrap());
        ops.push(json!({"delete_index": field}));
    }
    let mut state = read_segment_state(&st, &seg).unwrap();
    state.version = Some(state.version.unwrap_or(0) + ops.len() as u64);
    write_segment_state(&st, &seg, &state).unwrap();
    run_py_json("apply", &theirs, &Value::Array(ops), tmp.path(), "ops.json");

    // same files as Qdrant's builder wrote, same config
    let th = FsStorage::new(&theirs).unwrap();
    let seg_t = only_segment(&th);
    for (field, _) in &created {
        assert_same_index_files(&st, &seg, &th, &seg_t, field);
    }
    for field in dropped {
        let base = field_dir_name(field);
        for (store, s) in [(&st as &dyn Storage, &seg), (&th as &dyn Storage, &seg_t)] {
            assert!(
                store.list_dir(&format!("{s}/payload_index")).unwrap().iter().all(|e| !e.name.starts_with(&base)),
                "directories of dropped `{field}` remain"
            );
        }
    }
    let (ca, ct) = (PayloadIndexConfig::read(&st, &seg).unwrap(), PayloadIndexConfig::read(&th, &seg_t).unwrap());
    let as_map = |c: &PayloadIndexConfig| -> BTreeMap<String, Value> {
        c.indexed_fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    // Qdrant normalises a params schema it is given (adds "tokenizer" etc.); ours stores the
    // caller's schema verbatim, so pass the normalised form
    assert_eq!(as_map(&ca), as_map(&ct));
    assert_eq!(ca.indexed_types, ct.indexed_types);

    let fl = filters();
    let a = run_py_json("counts", &ours, &fl, tmp.path(), "f.json");
    let b = run_py_json("counts", &theirs, &fl, tmp.path(), "f.json");
    assert_eq!(a["schema"], b["schema"]);
    for f in ["extra", "xi", "xb", "xt"] {
        assert!(a["schema"][f]["points"].as_u64().unwrap() > 0, "{f}: {}", a["schema"]);
    }
    assert!(a["schema"].get("f").is_none() && a["schema"].get("meta.tag").is_none());
    assert_eq!(a["counts"], b["counts"]);
    assert_eq!(a["total"], json!(80));
}

// ---- immutable indexes of optimized segments --------------------------------------------------

/// The non-appendable segment of a shard (exactly one).
fn optimized_segment(st: &FsStorage) -> String {
    let segs: Vec<String> = common::segment_dirs(st)
        .into_iter()
        .filter(|s| !read_segment_state(st, s).unwrap().config.is_appendable())
        .collect();
    assert_eq!(segs.len(), 1, "optimized segments: {segs:?}");
    segs[0].clone()
}

#[test]
fn optimized_index_files_equal_qdrants() {
    let tmp = tempfile::tempdir().unwrap();
    for n in [301usize, 12000] {
        let shard = tmp.path().join(format!("opt{n}"));
        run_py(&["make_optimized", shard.to_str().unwrap(), &n.to_string(), "1"]);
        let st = FsStorage::new(&shard).unwrap();
        let seg = optimized_segment(&st);
        let cfg = PayloadIndexConfig::read(&st, &seg).unwrap();
        assert_eq!(cfg.indexed_fields.len(), 19);
        let points = stored_points_of(&st, &seg, false);
        assert_eq!(points.len(), n);
        assert_eq!(points.iter().filter(|(_, p)| !p.is_empty()).count(), n - n / 10, "points with a payload");
        let mem = MemoryStorage::new();
        let (mut compared, mut fields, mut mutable) = (0, 0, Vec::new());
        for (field, schema) in &cfg.indexed_fields {
            let types = build_optimized_field_index(&mem, "seg", field, schema, points.clone()).unwrap();
            if types[0].mutability == IndexMutability::Mutable {
                mutable.push(field.clone());
                continue;
            }
            assert_eq!(types, cfg.indexed_types[field], "indexed_types of `{field}`");
            compared += assert_same_index_files(&mem, "seg", &st, &seg, field);
            fields += 1;
        }
        assert!(mutable.is_empty(), "n={n}: mutable indexes {mutable:?}");
        compared += assert_same_sparse_indexes(&st, &seg);
        if n > 10_000 {
            // a perfect-hash function longer than one page
            let vtp = format!("{seg}/payload_index/{}-map/values_to_points.bin", field_dir_name("big"));
            let m = ParsedMap::parse(&st.read_all(&vtp).unwrap(), &vtp).unwrap();
            assert!(m.buckets_pos >= 8192, "buckets at {}", m.buckets_pos);
        }
        assert_eq!(fields, 19, "n={n}");
        assert!(compared > 80, "n={n}: {compared} files compared");
    }
}

/// Rebuild the immutable sparse index of every sparse vector of the optimized segment `seg`
/// from its stored vectors and compare with Qdrant's files: exact bytes, except the JSON maps
/// (parsed) and the padding after float16 / uint8 remainder weights, which Qdrant leaves
/// uninitialized. Returns the number of files compared.
fn assert_same_sparse_indexes(st: &FsStorage, seg: &str) -> usize {
    use qdrant_edge_wasm::format::segment_meta::SparseIndexType;
    use qdrant_edge_wasm::format::sparse_index::write_immutable_sparse_index;
    use qdrant_edge_wasm::segment::{MemoryPlan, Segment};
    use qdrant_edge_wasm::types::VectorValue;
    let state = read_segment_state(st, seg).unwrap();
    let segment = Segment::open(st, seg, MemoryPlan::default()).unwrap();
    let n = IdTracker::open(st, seg, false).unwrap().total_point_count() as u32;
    let mut compared = 0;
    assert_eq!(state.config.sparse_vector_data.len(), 4);
    for (name, cfg) in &state.config.sparse_vector_data {
        assert_eq!(cfg.index.index_type, SparseIndexType::ImmutableRam, "`{name}`");
        let mut vectors = Vec::new();
        for i in 0..n {
            if let Some(VectorValue::Sparse(v)) = segment.vector(name, i).unwrap() {
                vectors.push((i, v.sorted()));
            }
        }
        let mem = MemoryStorage::new();
        write_immutable_sparse_index(&mem, "ix", &cfg.index, &vectors).unwrap();
        let theirs = format!("{seg}/vector_index-{name}");
        let files = files_under(&mem, "ix");
        assert_eq!(files, files_under(st, &theirs), "files of the `{name}` index");
        let weight = match cfg.index.datatype.map(|d| format!("{d:?}")).as_deref() {
            None | Some("Float32") => 4,
            Some("Float16") => 2,
            _ => 1,
        };
        for f in &files {
            let (mut x, mut y) = (
                mem.read_all(&format!("ix/{f}")).unwrap().to_vec(),
                st.read_all(&format!("{theirs}/{f}")).unwrap().to_vec(),
            );
            if f.ends_with(".json") && f != "inverted_index_config.json" {
                let p = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
                assert_eq!(p(&x), p(&y), "`{name}` {f}");
            } else {
                if f == "inverted_index.dat" {
                    let lists: Value =
                        serde_json::from_slice(&mem.read_all("ix/inverted_index_config.json").unwrap()).unwrap();
                    let count = lists["posting_count"].as_u64().unwrap() as usize;
                    for b in [&mut x, &mut y] {
                        mask_remainder_padding(b, count, weight);
                    }
                }
                assert!(x == y, "`{name}` {f} differs ({} vs {} bytes)", x.len(), y.len());
            }
            compared += 1;
        }
    }
    compared
}

/// Zero the bytes after each remainder weight of an `inverted_index.dat` with `count` lists.
fn mask_remainder_padding(b: &mut [u8], count: usize, weight: usize) {
    let header = if weight == 1 { 32 } else { 24 };
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    for k in 0..count {
        let h = k * header;
        let (start, ids_len, chunks) = (u64_at(b, h), u32_at(b, h + 12), u32_at(b, h + 16));
        let end = if k + 1 < count { u64_at(b, h + header) } else { b.len() };
        let mut e = start + ids_len + chunks * (8 + 128 * weight);
        while e < end {
            b[e + 4 + weight..e + 8].fill(0);
            e += 8;
        }
    }
}

/// Every file under `segments/*/payload_index/` and `segments/*/vector_index*/`, with its bytes; Gridstore journals (of the
/// mutable geo and text indexes) are left out: Qdrant replays and truncates them on open.
fn index_tree(shard: &Path) -> BTreeMap<String, Vec<u8>> {
    let st = FsStorage::new(shard).unwrap();
    let mut out = BTreeMap::new();
    for e in st.list_dir("segments").unwrap().into_iter().filter(|e| e.kind == EntryKind::Dir) {
        let seg = format!("segments/{}", e.name);
        for d in st.list_dir(&seg).unwrap() {
            if d.kind != EntryKind::Dir || !(d.name == "payload_index" || d.name.starts_with("vector_index")) {
                continue;
            }
            let dir = format!("{seg}/{}", d.name);
            for f in files_under(&st, &dir).into_iter().filter(|f| !f.ends_with("tracker_journal.dat")) {
                let p = format!("{dir}/{f}");
                out.insert(p.clone(), st.read_all(&p).unwrap().to_vec());
            }
        }
    }
    out
}

fn optimized_filters() -> Value {
    let mut f = filters().as_array().unwrap().clone();
    f.extend(
        json!([
            {"must": [{"key": "kd", "match": {"value": "d3"}}]},
            {"must": [{"key": "kd", "match": {"any": ["d1", "d12", "nope"]}}]},
            {"must": [{"key": "kp", "match": {"value": "pre5"}}]},
            {"must": [{"key": "kp", "match": {"value": "x"}}]},
            {"must": [{"key": "ou", "match": {"value": "00000000-0000-0000-0000-000000000162"}}]},
            {"must": [{"key": "ou", "match": {"except": ["00000000-0000-0000-0000-000000000001"]}}]},
            {"must": [{"key": "big", "match": {"value": "key-77"}}]},
            {"must": [{"key": "big", "match": {"value": ""}}]},
            {"must": [{"key": "big", "match": {"value": "ÿ"}}]},
            {"must": [{"key": "big", "match": {"any": ["ключ-8", "key-9", "key-10"]}}]},
            {"must": [{"key": "bigi", "match": {"value": -5}}]},
            {"must": [{"key": "bigi", "match": {"any": [-999999992081i64, -7, 3]}}]},
            {"must": [{"key": "fl", "range": {"gte": 0.0, "lte": 0.0}}]},
            {"must": [{"key": "fl", "range": {"gt": 5.5}}]},
            {"must": [{"key": "none", "match": {"value": "a"}}]},
            {"must": [{"key": "none", "is_empty": true}]}
        ])
        .as_array()
        .unwrap()
        .iter()
        .cloned(),
    );
    Value::Array(f)
}

/// Switch the map and numeric sub-indexes of every optimized segment to Qdrant's on-disk
/// layout (`is_on_disk: true`), where a lookup evaluates the perfect-hash function.
fn switch_to_on_disk(shard: &Path) -> usize {
    let st = FsStorage::new(shard).unwrap();
    let seg = optimized_segment(&st);
    let mut cfg = PayloadIndexConfig::read(&st, &seg).unwrap();
    let mut switched = 0;
    for types in cfg.indexed_types.values_mut() {
        for t in types.iter_mut() {
            if t.mutability == IndexMutability::Immutable
                && t.index_type.dir_suffix() != "null"
                && t.index_type.dir_suffix() != "bool"
            {
                t.storage_type =
                    IndexStorageType::Mmap(qdrant_edge_wasm::format::payload_index::MmapOptions { is_on_disk: true });
                switched += 1;
            }
        }
    }
    qdrant_edge_wasm::format::segment_write::write_payload_index_config(&st, &seg, &cfg).unwrap();
    switched
}

#[test]
fn qdrant_reads_our_optimized_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    run_py(&["make_optimized", plain.to_str().unwrap(), "301", "0"]);
    let ours = tmp.path().join("ours");
    copy_shard(&plain, &ours);
    let mut shard = EdgeShard::load(std::sync::Arc::new(FsStorage::new(&ours).unwrap()), "").unwrap();
    assert!(shard.optimize().unwrap(), "nothing optimized");
    // an index created on an optimized segment is built in the immutable formats too
    for op in qdrant_edge_wasm::api::updates::parse_update(
        "create_index",
        &json!({"field_name": "extra", "field_schema": "keyword"}),
    )
    .unwrap()
    {
        shard.update(op).unwrap();
    }
    shard.flush().unwrap();
    let our_sparse = our_sparse_scores(&shard);
    shard.close().unwrap();
    drop(shard);
    {
        let st = FsStorage::new(&ours).unwrap();
        let cfg = PayloadIndexConfig::read(&st, &optimized_segment(&st)).unwrap();
        let state = read_segment_state(&st, &optimized_segment(&st)).unwrap();
        for (name, c) in &state.config.sparse_vector_data {
            assert_eq!(
                c.index.index_type,
                qdrant_edge_wasm::format::segment_meta::SparseIndexType::ImmutableRam,
                "sparse `{name}`"
            );
            assert!(st.exists(&format!("{}/vector_index-{name}/version.info", optimized_segment(&st))).unwrap());
        }
        for f in ["k", "n", "f", "dt", "u", "b", "kp", "bigi", "g", "t", "tp", "ts", "extra"] {
            assert!(
                cfg.indexed_types[f].iter().all(|t| t.mutability == IndexMutability::Immutable),
                "`{f}`: {:?}",
                cfg.indexed_types[f]
            );
        }
    }
    let fl = optimized_filters();
    run_py_json("apply", &plain, &json!([{"create_index": ["extra", "keyword"]}]), tmp.path(), "ops.json");
    let want = run_py_json("counts", &plain, &fl, tmp.path(), "f.json");
    assert!(want["schema"]["extra"]["points"].as_u64() > Some(0), "{}", want["schema"]);
    let want_scores = run_py(&["text_scores", plain.to_str().unwrap()]);
    // sparse answers depend on the optimized index (float16 / uint8 weights): compare with
    // qdrant-edge-py's own optimization of the same data
    let theirs_opt = tmp.path().join("theirs_opt");
    run_py(&["make_optimized", theirs_opt.to_str().unwrap(), "301", "1"]);
    let want_sparse = run_py(&["sparse_scores", theirs_opt.to_str().unwrap()]);
    assert!(want_sparse.as_array().unwrap().iter().all(|r| !r.as_array().unwrap().is_empty()), "{want_sparse}");
    assert!(want_scores.as_array().unwrap().iter().all(|r| !r.as_array().unwrap().is_empty()), "{want_scores}");
    assert!(want["counts"].as_array().unwrap().iter().filter(|c| c.as_u64() > Some(0)).count() > 40, "{want}");
    for (name, on_disk) in [("heap", false), ("on_disk", true)] {
        let dir = tmp.path().join(name);
        copy_shard(&ours, &dir);
        if on_disk {
            assert!(switch_to_on_disk(&dir) >= 12);
        }
        let before = index_tree(&dir);
        let got = run_py_json("counts", &dir, &fl, tmp.path(), "f.json");
        let scores = run_py(&["text_scores", dir.to_str().unwrap()]);
        let sparse = run_py(&["sparse_scores", dir.to_str().unwrap()]);
        assert_eq!(sparse, want_sparse, "{name}: sparse answers");
        let after = index_tree(&dir);
        assert_eq!(scores, want_scores, "{name}: BM25 answers");
        let changed: Vec<&String> =
            before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
        assert!(changed.is_empty(), "{name}: qdrant-edge-py rewrote (rebuilt) index files: {changed:?}");
        assert_eq!(got["total"], want["total"], "{name}");
        assert_eq!(got["schema"], want["schema"], "{name}: payload schema");
        for (i, (g, w)) in got["counts"].as_array().unwrap().iter().zip(want["counts"].as_array().unwrap()).enumerate()
        {
            assert_eq!(g, w, "{name}: count of filter {}", fl[i]);
        }
    }
    // and our engine answers from the same quantized index weights
    let (ours_v, want_v) = (our_sparse.as_array().unwrap(), want_sparse.as_array().unwrap());
    assert_eq!(ours_v.len(), want_v.len());
    for (k, (a, b)) in ours_v.iter().zip(want_v).enumerate() {
        let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
        assert_eq!(a.len(), b.len(), "sparse query {k}: number of matches");
        for (x, y) in a.iter().zip(b) {
            let (sx, sy) = (x[1].as_f64().unwrap(), y[1].as_f64().unwrap());
            assert!((sx - sy).abs() <= 2e-5, "sparse query {k}: ours {x} vs qdrant-edge-py {y}");
            if (sx - sy).abs() > 1e-9 {
                continue; // a tie broken differently by rounding noise
            }
            assert_eq!(x[0], y[0], "sparse query {k}");
        }
    }
    // negative control: with the on-disk layout a damaged bucket array changes the answers,
    // so the on-disk run above did evaluate our functions
    let neg = tmp.path().join("neg");
    copy_shard(&ours, &neg);
    switch_to_on_disk(&neg);
    let st = FsStorage::new(&neg).unwrap();
    let seg = optimized_segment(&st);
    let vtp = format!("{seg}/payload_index/{}-map/values_to_points.bin", field_dir_name("big"));
    let mut b = st.read_all(&vtp).unwrap().to_vec();
    let m = ParsedMap::parse(&b, &vtp).unwrap();
    let (start, count) = (m.buckets_pos as usize, m.buckets.len());
    b[start..start + 8 * count].rotate_left(8);
    std::fs::write(neg.join(&vtp), &b).unwrap();
    let got = run_py_json("counts", &neg, &fl, tmp.path(), "f.json");
    assert_ne!(got["counts"], want["counts"], "a damaged bucket array changed no answer");
}

/// Our answers to the queries of `field_index_roundtrip.py sparse_scores`, in its shape.
fn our_sparse_scores(shard: &EdgeShard) -> Value {
    let mut out = Vec::new();
    for name in ["s32", "s16", "s8", "sidf"] {
        for (indices, values) in
            [(vec![1000, 1001, 5], vec![1.0, 0.5, 2.0]), (vec![3, 77, 500, 999], vec![1.0, 0.5, 2.0, -1.0])]
        {
            let body = json!({"query": {"indices": indices, "values": values}, "using": name, "limit": 10000});
            let r = qdrant_edge_wasm::api::dispatch(shard, "query", &body).unwrap();
            let mut hits: Vec<(i64, f64)> = r["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["id"].as_i64().unwrap(), (p["score"].as_f64().unwrap() * 1e5).round() / 1e5))
                .collect();
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            out.push(Value::Array(hits.into_iter().map(|(id, s)| json!([id, s])).collect()));
        }
    }
    Value::Array(out)
}
