//! The WAL reader and record decoder on WALs written by qdrant-edge-py 0.9.0 (and on the
//! server fixtures' snapshot WALs).
//!
//! Corpus: `tests/corpus/make_wal_shards.py` writes `$QEW_CORPUS/wal/<name>/` (a shard left
//! behind by a process that exited without flush or close) and `<name>.expected.json` (what
//! the script did). `QEW_CORPUS` defaults to `<crate>/target/corpus`. The fixture test reads
//! `$QEW_CORPUS/fixtures/*/wal` (unpacked server snapshots, see scripts/test.sh).

use std::path::PathBuf;

use qdrant_edge_wasm::format::wal::{
    encode_entry, entry_size, read_segment, read_wal, SegmentKind, SegmentRole, WalContents, SEGMENT_HEADER_LEN,
};
use qdrant_edge_wasm::operations::{decode_entry, encode_record, PointsSelector, UpdateMode, UpdateOperation};
mod common;

use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage, OpenMode};
use qdrant_edge_wasm::{PointId, Storage, VectorValue};
use serde_json::Value;

fn corpus() -> PathBuf {
    std::env::var_os("QEW_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/corpus"))
}

/// The shard directory and its expected.json; panics (fails the test) if the corpus is missing.
fn shard(name: &str) -> (FsStorage, Value) {
    let dir = corpus().join("wal").join(name);
    let exp = corpus().join("wal").join(format!("{name}.expected.json"));
    assert!(
        dir.is_dir() && exp.is_file(),
        "WAL corpus missing at {} — run `.venv/bin/python tests/corpus/make_wal_shards.py` \
         (or scripts/test.sh) first",
        dir.display()
    );
    let expected: Value = serde_json::from_slice(&std::fs::read(exp).unwrap()).unwrap();
    (FsStorage::new(&dir).unwrap(), expected)
}

fn id_json(id: &PointId) -> Value {
    id.to_json()
}

fn ids_of(op: &UpdateOperation) -> Option<Vec<Value>> {
    op.point_ids().map(|ids| ids.iter().map(id_json).collect())
}

/// Check one decoded operation against the script's record of it.
fn check_op(i: usize, op: &UpdateOperation, exp: &Value) {
    let ctx = format!("op {i}: {op:?}\nexpected {exp}");
    let kind = exp["kind"].as_str().unwrap();
    // delete_vectors_by_filter is recorded as delete_vectors + filter
    let got_kind = match op.kind() {
        "delete_vectors_by_filter" => "delete_vectors",
        k => k,
    };
    assert_eq!(got_kind, kind, "{ctx}");
    if let Some(ids) = exp.get("ids") {
        assert_eq!(ids_of(op).as_ref(), Some(ids.as_array().unwrap()), "{ctx}");
    }
    let has_filter = exp.get("filter").and_then(Value::as_bool).unwrap_or(false);
    match op {
        UpdateOperation::UpsertPoints(points) | UpdateOperation::UpsertConditional { points, .. } => {
            if let Some(names) = exp.get("vector_names") {
                let got: Vec<Vec<&str>> =
                    points.iter().map(|p| p.vectors.keys().map(String::as_str).collect()).collect();
                let want: Vec<Vec<&str>> = names
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect())
                    .collect();
                assert_eq!(got, want, "{ctx}");
            }
            if let Some(v) = exp.get("vector_1") {
                let got: serde_json::Map<String, Value> =
                    points[0].vectors.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
                // f32 values printed as JSON differ from the Python floats only by f32 rounding
                for (name, want) in v.as_object().unwrap() {
                    let g = &got[name];
                    assert_close(g, want, &ctx);
                }
                assert_eq!(got.len(), v.as_object().unwrap().len(), "{ctx}");
            }
            if let Some(p) = exp.get("payload_1") {
                assert_eq!(points[0].payload.as_ref().map(|p| Value::Object(p.clone())).as_ref(), Some(p), "{ctx}");
            }
            if let UpdateOperation::UpsertConditional { update_mode, condition, .. } = op {
                let want: UpdateMode = serde_json::from_value(exp["update_mode"].clone()).unwrap();
                assert_eq!(*update_mode, Some(want), "{ctx}");
                assert!(condition.get("must").is_some(), "{ctx}");
            }
        }
        UpdateOperation::SetPayload { payload, selector, key }
        | UpdateOperation::OverwritePayload { payload, selector, key } => {
            assert_eq!(&Value::Object(payload.clone()), &exp["payload"], "{ctx}");
            assert_eq!(key.as_deref(), exp["key"].as_str(), "{ctx}");
            assert_eq!(matches!(selector, PointsSelector::Filter(_)), has_filter, "{ctx}");
        }
        UpdateOperation::DeletePayload { keys, selector } => {
            assert_eq!(serde_json::json!(keys), exp["keys"], "{ctx}");
            assert_eq!(matches!(selector, PointsSelector::Filter(_)), has_filter, "{ctx}");
        }
        UpdateOperation::ClearPayload(selector) => {
            assert_eq!(matches!(selector, PointsSelector::Filter(_)), has_filter, "{ctx}");
        }
        UpdateOperation::DeleteVectors { selector, names } => {
            assert_eq!(serde_json::json!(names), exp["names"], "{ctx}");
            assert_eq!(matches!(selector, PointsSelector::Filter(_)), has_filter, "{ctx}");
        }
        UpdateOperation::UpdateVectors { points, update_filter } => {
            let got: Vec<Vec<&str>> = points.iter().map(|p| p.1.keys().map(String::as_str).collect()).collect();
            let want: Vec<Vec<&str>> = exp["vector_names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect())
                .collect();
            assert_eq!(got, want, "{ctx}");
            assert_eq!(update_filter.is_some(), exp["update_filter"].as_bool().unwrap(), "{ctx}");
        }
        UpdateOperation::DeleteByFilter(f) => assert!(f.get("must").is_some(), "{ctx}"),
        UpdateOperation::CreateIndex { field_name, field_schema } => {
            assert_eq!(Some(field_name.as_str()), exp["field_name"].as_str(), "{ctx}");
            match exp["field_schema"].as_str().unwrap() {
                "object" => assert!(field_schema.as_ref().is_some_and(Value::is_object), "{ctx}"),
                s => assert_eq!(field_schema.as_ref().and_then(Value::as_str), Some(s), "{ctx}"),
            }
        }
        UpdateOperation::DeleteIndex(name) => assert_eq!(Some(name.as_str()), exp["field_name"].as_str(), "{ctx}"),
        UpdateOperation::CreateVectorName { name, config } => {
            assert_eq!(Some(name.as_str()), exp["name"].as_str(), "{ctx}");
            assert!(config.get("dense").is_some() || config.get("sparse").is_some(), "{ctx}");
        }
        UpdateOperation::DeleteVectorName { name } => assert_eq!(Some(name.as_str()), exp["name"].as_str(), "{ctx}"),
        UpdateOperation::DeletePoints(_) | UpdateOperation::SyncPoints { .. } => {}
    }
}

fn assert_close(got: &Value, want: &Value, ctx: &str) {
    match (got, want) {
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{ctx}");
            for (g, w) in g.iter().zip(w) {
                assert_close(g, w, ctx);
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(g.len(), w.len(), "{ctx}");
            for (k, w) in w {
                assert_close(&g[k], w, ctx);
            }
        }
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert_eq!(g as f32, w as f32, "{ctx}");
        }
        _ => assert_eq!(got, want, "{ctx}"),
    }
}

/// Re-frame every entry with our encoder and compare with the bytes on disk: checks the CRC
/// chain, the padding and the framing byte for byte.
fn check_framing(storage: &dyn Storage, path: &str, entries: &[bytes::Bytes]) {
    let seg = read_segment(storage, path).unwrap();
    assert_eq!(seg.entries.len(), entries.len());
    let file = storage.open_slice(path).unwrap();
    let mut off = SEGMENT_HEADER_LEN;
    let mut crc = seg.seed;
    for e in entries {
        let (framed, next) = encode_entry(crc, e);
        let on_disk = file.read_range(off, framed.len() as u64).unwrap();
        assert_eq!(&on_disk[..], &framed[..], "{path} at {off}");
        assert_eq!(framed.len() as u64, entry_size(e.len() as u64).unwrap());
        off += framed.len() as u64;
        crc = next;
    }
    assert_eq!((off, crc), (seg.end_offset, seg.last_crc));
    // what follows the last entry is the zero tail of the preallocated file
    let tail = file.read_range(off, 16.min(file.len() - off)).unwrap();
    assert!(tail.iter().all(|b| *b == 0), "{path}: non-zero bytes after the last entry");
}

fn decode_all(w: &WalContents, file: &str) -> Vec<UpdateOperation> {
    w.entries
        .iter()
        .map(|e| {
            let (op, tag) = decode_entry(e, file).unwrap_or_else(|err| panic!("entry {}: {err}", e.index));
            assert_eq!(tag, None, "edge never writes clock tags");
            op
        })
        .collect()
}

#[test]
fn all_ops_shard_decodes_every_operation() {
    let (fs, expected) = shard("all_ops");
    let w = read_wal(&fs, "wal").unwrap().expect("wal dir exists");
    let ops_exp = expected["ops"].as_array().unwrap();
    assert_eq!(w.first_index, 0);
    assert_eq!(w.physical_first_index, 0);
    assert_eq!(w.ack_index, None, "nothing was flushed");
    assert_eq!(w.next_index, expected["next_index"].as_u64().unwrap());
    assert_eq!(w.entries.len(), ops_exp.len());
    assert_eq!(w.entries.iter().map(|e| e.index).collect::<Vec<_>>(), (0..ops_exp.len() as u64).collect::<Vec<_>>());

    // open-1 holds the entries, open-2 is the preallocated spare
    let roles: Vec<(&str, SegmentRole)> = w.segments.iter().map(|s| (s.file_name.as_str(), s.role)).collect();
    assert_eq!(roles, [("open-1", SegmentRole::Active), ("open-2", SegmentRole::Spare)]);
    assert_eq!(w.segments[0].capacity, 32 * 1024 * 1024);
    assert_ne!(w.segments[0].seed, w.segments[1].seed, "seeds are random per segment");
    let data: Vec<bytes::Bytes> = w.entries.iter().map(|e| e.data.clone()).collect();
    check_framing(&fs, "wal/open-1", &data);

    let ops = decode_all(&w, "wal/open-1");
    for (i, (op, exp)) in ops.iter().zip(ops_exp).enumerate() {
        check_op(i, op, exp);
    }

    // specific facts about how Qdrant logged them
    let UpdateOperation::UpsertPoints(points) = &ops[1] else { panic!() };
    assert_eq!(points[3].id, PointId::Num(u64::MAX));
    assert_eq!(points[2].vectors[""], VectorValue::Dense(vec![0.0, 1.0, 0.0, 0.0]), "plain list = default vector");
    let VectorValue::Sparse(sp) = &points[0].vectors["sp"] else { panic!() };
    assert_eq!(sp.indices, [10, 3], "sparse vectors are logged unsorted, as given");
    let VectorValue::Dense(d) = &points[0].vectors[""] else { panic!() };
    assert_eq!(d[2], 0.1f32, "single-precision float element");

    // our re-encoding of each operation decodes to the same operation
    for (i, op) in ops.iter().enumerate() {
        let e = qdrant_edge_wasm::format::wal::WalEntry { index: i as u64, data: encode_record(op, None).into() };
        assert_eq!(&decode_entry(&e, "re-encoded").unwrap().0, op, "op {i}");
    }
}

#[test]
fn flushed_shard_starts_at_the_ack_index() {
    let (fs, expected) = shard("flushed");
    let w = read_wal(&fs, "wal").unwrap().unwrap();
    let n = expected["next_index"].as_u64().unwrap();
    let raw: Value = serde_json::from_slice(&fs.read_all("wal/first-index").unwrap()).unwrap();
    let ack = raw["ack_index"].as_u64().unwrap();
    assert!(ack > 0 && ack < n, "flush after 3 ops should ack one of them, got {ack}");
    assert_eq!(w.ack_index, Some(ack));
    assert_eq!(w.first_index, ack);
    assert_eq!(w.next_index, n);
    assert_eq!(w.entries.first().map(|e| e.index), Some(ack));
    assert_eq!(w.entries.len() as u64, n - ack);
    let ops = decode_all(&w, "wal/open-1");
    for (op, exp) in ops.iter().zip(&expected["ops"].as_array().unwrap()[ack as usize..]) {
        check_op(0, op, exp);
    }
}

#[test]
fn rollover_shard_has_a_closed_segment() {
    let (fs, expected) = shard("rollover");
    let w = read_wal(&fs, "wal").unwrap().unwrap();
    let n = expected["next_index"].as_u64().unwrap();
    assert_eq!((w.first_index, w.next_index, w.entries.len() as u64), (0, n, n));
    let closed: Vec<_> = w.segments.iter().filter(|s| s.role == SegmentRole::Closed).collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].kind, SegmentKind::Closed { start: 0 });
    let active = w.segments.iter().find(|s| s.role == SegmentRole::Active).unwrap();
    assert!(matches!(active.kind, SegmentKind::Open { .. }));
    assert_eq!(active.start_index, closed[0].entry_count);
    assert!(closed[0].entry_count > 0 && active.entry_count > 0);
    assert_eq!(closed[0].entry_count + active.entry_count, n);
    for (i, op) in decode_all(&w, "wal").iter().enumerate() {
        let UpdateOperation::UpsertPoints(p) = op else { panic!("{op:?}") };
        assert_eq!(p[0].id, PointId::Num(i as u64));
        let payload = p[0].payload.as_ref().unwrap();
        assert_eq!(payload["i"], i as u64);
        assert_eq!(payload["blob"].as_str().unwrap().len(), 3 * 1024 * 1024);
    }
    let closed_data: Vec<bytes::Bytes> =
        w.entries[..closed[0].entry_count as usize].iter().map(|e| e.data.clone()).collect();
    check_framing(&fs, "wal/closed-0", &closed_data);
}

/// Copy `wal/` of a shard into memory: only the used part of each segment is copied and the
/// file is cut 4 KiB after it (the rest of a segment is zeros and reads the same).
fn copy_wal(fs: &FsStorage) -> (MemoryStorage, Vec<(String, Vec<u8>)>) {
    let mem = MemoryStorage::new();
    mem.create_dir_all("wal").unwrap();
    let mut files = Vec::new();
    for e in fs.list_dir("wal").unwrap() {
        let path = format!("wal/{}", e.name);
        let f = fs.open_slice(&path).unwrap();
        let keep = if e.name.starts_with("open-") || e.name.starts_with("closed-") {
            let seg = read_segment(fs, &path).unwrap();
            (seg.end_offset + 4096).min(f.len()) & !7
        } else {
            f.len()
        };
        let bytes = f.read_range(0, keep).unwrap().to_vec();
        let m = mem.open(&path, OpenMode::Create).unwrap();
        m.write_at(0, &bytes).unwrap();
        files.push((path, bytes));
    }
    (mem, files)
}

fn put(mem: &MemoryStorage, path: &str, bytes: &[u8]) {
    let f = mem.open(path, OpenMode::Create).unwrap();
    f.set_len(0).unwrap();
    f.write_at(0, bytes).unwrap();
}

#[test]
fn truncated_and_bit_flipped_copies_stop_at_the_damage() {
    let (fs, _) = shard("all_ops");
    let original = read_wal(&fs, "wal").unwrap().unwrap();
    let (mem, files) = copy_wal(&fs);
    let (path, bytes) = files.iter().find(|(p, _)| p == "wal/open-1").unwrap();
    // in-memory copy reads the same
    assert_eq!(read_wal(&mem, "wal").unwrap().unwrap().entries, original.entries);

    // entry k occupies [starts[k], starts[k+1])
    let mut starts = vec![SEGMENT_HEADER_LEN];
    for e in &original.entries {
        starts.push(starts.last().unwrap() + entry_size(e.data.len() as u64).unwrap());
    }
    let entry_at = |off: u64| starts.windows(2).position(|w| off >= w[0] && off < w[1]);
    let end = *starts.last().unwrap();

    // truncation at every byte of the used region: the entries that still fit whole survive
    for cut in 0..=end {
        put(&mem, path, &bytes[..cut as usize]);
        match read_wal(&mem, "wal") {
            Ok(Some(w)) => {
                let whole = starts.iter().skip(1).filter(|s| **s <= cut & !7).count();
                assert_eq!(w.entries.len(), whole, "cut at {cut}");
                assert_eq!(&w.entries[..], &original.entries[..whole], "cut at {cut}");
            }
            Ok(None) => panic!("directory vanished"),
            Err(e) => assert!(cut < SEGMENT_HEADER_LEN, "cut at {cut}: {e}"),
        }
    }

    // one flipped bit anywhere: header damage is an error, entry damage ends the log there
    for off in 0..end {
        let mut b = bytes.clone();
        b[off as usize] ^= 1 << (off % 8);
        put(&mem, path, &b);
        match read_wal(&mem, "wal") {
            Ok(Some(w)) => {
                assert!(off >= 4, "flip at {off} in magic/version must be an error");
                let keep = if off < SEGMENT_HEADER_LEN { 0 } else { entry_at(off).unwrap() };
                assert_eq!(w.entries.len(), keep, "flip at {off}");
                assert_eq!(&w.entries[..], &original.entries[..keep], "flip at {off}");
                for e in &w.entries {
                    decode_entry(e, path).unwrap();
                }
            }
            Ok(None) => panic!("directory vanished"),
            Err(e) => assert!(off < 4, "flip at {off}: {e}"),
        }
    }
    put(&mem, path, bytes);
}

#[test]
fn damaged_records_with_valid_crcs_never_panic() {
    // Corrupt the record bytes but recompute the CRCs, so the damage reaches the decoder.
    let (fs, _) = shard("all_ops");
    let w = read_wal(&fs, "wal").unwrap().unwrap();
    let mut errors = 0usize;
    let mut decoded = 0usize;
    for e in &w.entries {
        let data = &e.data;
        for off in 0..data.len() {
            for mask in [0x01u8, 0x20, 0x80, 0xFF] {
                let mut d = data.to_vec();
                d[off] ^= mask;
                let entry = qdrant_edge_wasm::format::wal::WalEntry { index: e.index, data: d.into() };
                match decode_entry(&entry, "wal/open-1") {
                    Ok(_) => decoded += 1,
                    Err(err) => {
                        assert_eq!(err.file, "wal/open-1");
                        assert!(err.message.contains(&format!("entry {}", e.index)), "{err}");
                        errors += 1;
                    }
                }
            }
        }
        for cut in 0..data.len() {
            let entry = qdrant_edge_wasm::format::wal::WalEntry { index: e.index, data: data.slice(..cut) };
            assert!(decode_entry(&entry, "wal/open-1").is_err(), "entry {} cut at {cut} decoded", e.index);
        }
    }
    assert!(errors > 0 && decoded > 0, "errors {errors}, decoded {decoded}");

    // and through the reader: flip a data byte and re-frame the whole segment
    let (mem, files) = copy_wal(&fs);
    let (path, bytes) = files.iter().find(|(p, _)| p == "wal/open-1").unwrap();
    let seg = read_segment(&mem, path).unwrap();
    let mut out = bytes[..SEGMENT_HEADER_LEN as usize].to_vec();
    let mut crc = seg.seed;
    for (i, e) in seg.entries.iter().enumerate() {
        let mut d = e.to_vec();
        if i == 1 {
            d[0] = 0xA5; // the record map loses its indefinite-length head
        }
        let (framed, next) = encode_entry(crc, &d);
        out.extend_from_slice(&framed);
        crc = next;
    }
    put(&mem, path, &out);
    let w2 = read_wal(&mem, "wal").unwrap().unwrap();
    assert_eq!(w2.entries.len(), w.entries.len(), "CRCs recomputed: all entries valid");
    assert!(decode_entry(&w2.entries[0], path).is_ok());
    assert!(decode_entry(&w2.entries[1], path).is_err());
}

#[test]
fn fixture_snapshot_wals_are_empty_closed_segments() {
    let dir = corpus().join("fixtures");
    assert!(
        dir.is_dir(),
        "fixtures missing at {} — unpack the server snapshots first (scripts/test.sh)",
        dir.display()
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let shard_dir = entry.unwrap().path();
        if !shard_dir.join("wal").is_dir() {
            continue;
        }
        let fs = FsStorage::new(&shard_dir).unwrap();
        let w = read_wal(&fs, "wal").unwrap().unwrap();
        assert_eq!(w.segments.len(), 1, "{}", shard_dir.display());
        let s = &w.segments[0];
        let SegmentKind::Closed { start } = s.kind else { panic!("{s:?}") };
        assert_eq!(s.role, SegmentRole::Closed);
        assert_eq!((s.entry_count, s.end_offset, s.capacity), (0, 8, 32 * 1024 * 1024));
        assert!(start > 0);
        // new operations continue after the source's last op
        assert_eq!((w.physical_first_index, w.first_index, w.next_index, w.ack_index), (start, start, start, None));
        assert!(w.entries.is_empty());
        seen += 1;
    }
    assert!(seen > 0, "no fixture shard with a wal/ under {}", dir.display());
}

/// qdrant-edge keeps acknowledged operations in its WAL (the newest closed WAL segment stays).
/// Replaying them on load must not copy points out of the segments that already hold them at
/// that version (Qdrant's `>=` version gate): a shard qdrant-edge-py flushed loads with nothing in
/// the overlay, while the shard that died after its last flush replays exactly the points it
/// upserted since.
#[cfg(feature = "testing")]
#[test]
fn replay_skips_operations_the_segments_hold() {
    use qdrant_edge_wasm::shard::EdgeShard;
    use std::sync::Arc;
    let dir = corpus().join("shards");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).expect("corpus shards") {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let st = MemoryStorage::new();
        common::copy_dir_to_storage(&path, &st).unwrap();
        let shard = EdgeShard::load(Arc::new(st), "").unwrap();
        let n = shard.overlay_point_count();
        if name == "wal_replay" {
            assert!(n > 0, "{name}: the operations after the crash are not replayed");
        } else {
            assert_eq!(n, 0, "{name}: {n} points copied into the overlay by replaying persisted operations");
        }
        seen += 1;
    }
    assert!(seen >= 5, "too few corpus shards: {seen}");
}
