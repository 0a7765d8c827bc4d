//! Binary quantized vectors: our approximate searches against qdrant-edge-py 0.9.0.
//!
//! `tests/corpus/binary_quant_oracle.py make` writes a shard with one vector per binary
//! quantization case: one bit / two bits / one and a half bits; query encodings default,
//! binary, scalar 4 bits and scalar 8 bits; Cosine, Dot, Euclid and Manhattan; float32, float16
//! and uint8; dimensions that leave padding in the words (16 to 130); three of them max-sim
//! multivectors of 1-3 inner vectors. 3000 points are optimized into one segment (HNSW graphs,
//! immutable `quantized.data` / `quantized.offsets.data`); then `late` upserts (new ids and
//! overwrites) and deletions stay in the appendable segment (mutable `quantized_data/` /
//! `quantized_offsets_data/`, whose two-bit encodings were calibrated on the empty segment and
//! whose `uint8` bits skip the −127 shift, §6.2). Some points lack some vectors; a keyword index
//! on `g` serves the filters. One more vector, uint8 Cosine with scalar int8 quantization,
//! checks that such queries are normalised before scalar encoding, as Qdrant does; its scores
//! may differ from Qdrant's SIMD kernels in the last bit, so for it scores within the tolerance
//! count as ties (order and choice at the limit not compared).
//!
//! For every vector, 12 queries × 16 parameter sets (default rescoring, `rescore` false/true,
//! `oversampling` 2, 3 and 4 (40 candidates: the top-k collector's selection path), `ignore`, `hnsw_ef` 16, filters matching ~25 % of the points (graph
//! walk with the filter) and ~1.5 % (plain scan of the matches)), `exact: false`, limit 10, go
//! through qdrant-edge-py on a fresh load and through our engine on the same directory. The
//! answers must be equal id for id, in order, with the same score at every position (1e-5
//! relative): equal scores included, which needs the walk, the plain scan and the shard's merge
//! of the segments' lists to keep Qdrant's tie rules. Unrescored binary scores are small
//! integers (or multiples of 1/15, 1/255), so ties are everywhere. (The scalar int8 vector
//! alone compares runs of nearly equal scores as sets, the last one up to the choice at the
//! limit.)
//!
//! 1. `…_one_segment` (`late` = 0).
//! 2. `…_with_appendable_segment` (`late` = 240): equal scores from the two segments meet in the
//!    shard's merge, which takes the segments' lists in qdrant-edge's order into its
//!    fixed-length queue, so the heap leaves them where Qdrant's does.
//! 3. Negative control in both: the unrescored requests answered by our engine with
//!    `quantization.ignore` (original vectors) must differ from Qdrant's for at least 95 %.
//! 4. `our_writes_keep_the_mutable_binary_storage`: on a shard made with `late` = 240, our engine
//!    applies `binary_quant_oracle.py ops` (new ids, overwrites of ids in the appendable and in
//!    the optimized segment, some points lacking some vectors, multivectors growing and
//!    shrinking; flush; then deletions; flush, close) and qdrant-edge-py applies the same
//!    updates to a copy (`apply`). In the appendable segment, every live point's quantized
//!    record (multivectors: offset count and inner records) must be byte-equal between the two
//!    copies (internal ids may differ: Qdrant takes a batch in hash order); each copy's record
//!    counts (`status.dat`) must follow Qdrant's rule (a record only for a point written with the
//!    vector; deletions write none), and the multivectors' inner-record counts must be equal.
//!    Then the searches of (2) on our copy — answered by our engine before closing, after a
//!    reload, and by qdrant-edge-py — must agree as strictly as in (2).
//! 5. `segments_we_create_carry_the_mutable_binary_storage`: a shard created by our engine with
//!    the config of `make` (read from a shard qdrant-edge-py created) has, per binary vector,
//!    the same `quantized.config.json` and `quantized.meta.json` bytes as qdrant-edge-py's; after
//!    the same upserts on both, every point's quantized record is byte-equal and the searches on
//!    our files agree as in (2).
//! 6. `damaged_binary_quantized_files_never_panic`: truncations and bit flips in the binary
//!    quantized files (meta, config, `quantized.data`, `quantized.offsets.data`, the chunked
//!    directories) give a load error or answers, never a panic.
//!
//! The interpreter is `QEW_PYTHON` or `.venv/bin/python`; without `qdrant_edge` the test FAILS.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::oracle_query as our_answer;
use common::ranked::{quantized_agreement, Agreement};
use qdrant_edge_wasm::api::{dispatch, updates::parse_update};
use qdrant_edge_wasm::format::id_tracker::IdTracker;
use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{EntryKind, FsStorage, Storage};
use qdrant_edge_wasm::types::PointId;
use serde_json::{json, Value};

const N: usize = 3000;

type Answer = Vec<(u64, f64)>;

fn run_py(args: &[&str]) -> Value {
    common::run_oracle_script("binary_quant_oracle.py", args)
}

fn param_sets() -> Vec<(Value, Value)> {
    let q = |v: Value| json!({"quantization": v});
    vec![
        (json!({}), Value::Null),
        (q(json!({"rescore": false})), Value::Null),
        (q(json!({"rescore": true})), Value::Null),
        (q(json!({"rescore": false, "oversampling": 2.0})), Value::Null),
        (q(json!({"rescore": true, "oversampling": 3.0})), Value::Null),
        (q(json!({"ignore": true})), Value::Null),
        (json!({"hnsw_ef": 16, "quantization": {"rescore": false}}), Value::Null),
        (q(json!({"rescore": false})), json!({"g": "a"})),
        (json!({}), json!({"g": "b"})),
        (q(json!({"rescore": false})), json!({"g": "rare"})),
        (q(json!({"rescore": true, "oversampling": 2.0})), json!({"g": "rare"})),
        (q(json!({"rescore": false})), json!({"g": "b"})),
        (q(json!({"rescore": true})), json!({"g": "a"})),
        (json!({}), json!({"g": "a"})),
        // 40 candidates: the top-k collector's selection path (k >= 32)
        (q(json!({"rescore": false, "oversampling": 4.0})), json!({"g": "rare"})),
        (q(json!({"rescore": true, "oversampling": 4.0})), json!({"g": "rare"})),
    ]
}

/// Make a shard (`late` later upserts kept in an appendable segment), run every request through
/// qdrant-edge-py and our engine and compare (module docs).
fn run_oracle(late: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shard");
    let made = run_py(&["make", dir.to_str().unwrap(), &N.to_string(), &late.to_string()]);
    let names: Vec<String> = made["vectors"].as_object().unwrap().keys().cloned().collect();
    assert!(names.len() >= 15 && made["multi"].as_array().unwrap().len() >= 3);

    // The storage forms: immutable in the optimized segment, mutable in the appendable one.
    let st = FsStorage::new(&dir).unwrap();
    let (opt, app) = common::optimized_and_appendable(&st);
    for name in &names {
        let cfg = st.read_all(&format!("{opt}/vector_storage-{name}/quantized.config.json")).unwrap();
        let cfg: Value = serde_json::from_slice(&cfg).unwrap();
        if made["scalar"].as_array().unwrap().contains(&json!(name)) {
            assert!(cfg.pointer("/quantization_config/scalar").is_some(), "{name}: {cfg}");
            continue;
        }
        assert!(cfg.pointer("/quantization_config/binary").is_some(), "{name}: {cfg}");
        assert!(st.is_file(&format!("{opt}/vector_storage-{name}/quantized.data")).unwrap(), "{name}");
        let status = st.read_all(&format!("{app}/vector_storage-{name}/quantized_data/status.dat")).unwrap();
        let len = u64::from_le_bytes(status[..8].try_into().unwrap());
        if made["multi"].as_array().unwrap().contains(&json!(name)) {
            assert!(st.is_file(&format!("{opt}/vector_storage-{name}/quantized.offsets.data")).unwrap(), "{name}");
            assert!(st.is_dir(&format!("{app}/vector_storage-{name}/quantized_offsets_data")).unwrap(), "{name}");
        }
        if late > 0 {
            assert!(len > 100, "{name}: the appendable segment holds {len} quantized records");
        } else {
            assert_eq!(len, 0, "{name}: the appendable segment is empty");
        }
    }

    let reqs = common::oracle_requests(&made, &names, &param_sets());
    let theirs = common::oracle_answers("binary_quant_oracle.py", tmp.path(), &dir, &reqs);
    let shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
    let (mismatches, exact) = compare_all(&made, &reqs, &theirs, &shard, true);
    assert!(
        mismatches.is_empty(),
        "{} of {} binary-quantized searches differ between Qdrant and our engine:\n{}",
        mismatches.len(),
        reqs.len(),
        mismatches.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(exact * 2 > reqs.len(), "only {exact} answers equal id for id");
}

/// Our answers against Qdrant's (module docs): the mismatches and the number of answers equal
/// id for id; `control`: also run (and assert) the negative control.
fn compare_all(
    made: &Value,
    reqs: &[Value],
    theirs: &[Answer],
    shard: &EdgeShard,
    control: bool,
) -> (Vec<String>, usize) {
    let mut mismatches = Vec::new();
    let (mut exact, mut tie_orders, mut boundary) = (0, 0, 0);
    let mut unrescored = 0;
    let mut control_same = 0;
    for (r, a) in reqs.iter().zip(theirs) {
        assert!(!a.is_empty(), "Qdrant found nothing for {r}");
        let b = our_answer(shard, r);
        let rescored = r["params"].pointer("/quantization/ignore") == Some(&json!(true))
            || r["params"].pointer("/quantization/rescore") != Some(&json!(false));
        // Scalar scores: Qdrant's SIMD kernels may round the last bit differently, so nearly
        // equal scores are ties whose order and choice (at the limit) are not compared.
        let scalar = made["scalar"].as_array().unwrap().contains(&r["using"]);
        let relaxed = scalar;
        match quantized_agreement(a, &b, relaxed, scalar) {
            Agreement::Exactly => exact += 1,
            Agreement::UpToTieOrder if scalar => tie_orders += 1,
            Agreement::UpToBoundaryChoice if scalar => boundary += 1,
            _ => mismatches
                .push(format!("{} {} filter {}: qdrant {a:?}\n   ours   {b:?}", r["using"], r["params"], r["filter"])),
        }
        // Negative control: the same request scored with the original vectors.
        if control && !rescored {
            unrescored += 1;
            let mut c = r.clone();
            c["params"]["quantization"] = json!({"ignore": true});
            if quantized_agreement(a, &our_answer(shard, &c), relaxed, scalar) != Agreement::No {
                control_same += 1;
            }
        }
    }
    eprintln!(
        "{} requests: {exact} equal, {tie_orders} equal up to the order of equal scores, {boundary} up to the \
         choice among the last equal scores, {} differ",
        reqs.len(),
        mismatches.len()
    );
    if control {
        eprintln!(
            "negative control: {control_same} of {unrescored} unrescored answers also equal without quantization"
        );
        assert!(
            control_same * 20 < unrescored,
            "{control_same} of {unrescored} answers do not depend on the quantized data"
        );
    }
    (mismatches, exact)
}

#[test]
fn binary_quantized_searches_match_qdrant_one_segment() {
    run_oracle(0);
}

#[test]
fn binary_quantized_searches_match_qdrant_with_appendable_segment() {
    run_oracle(240);
}

/// A chunked directory (§1.12) read straight from its files: `(len, record size, records)`.
struct Chunked {
    len: u64,
    record: usize,
    per_chunk: u64,
    chunks: Vec<Vec<u8>>,
}

impl Chunked {
    fn open(dir: &Path, elem: usize) -> Chunked {
        let cfg: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let status = std::fs::read(dir.join("status.dat")).unwrap();
        let len = u64::from_le_bytes(status[..8].try_into().unwrap());
        let record = cfg["dim"].as_u64().unwrap() as usize * elem;
        let per_chunk = cfg["chunk_size_vectors"].as_u64().unwrap();
        let mut chunks = Vec::new();
        while let Ok(c) = std::fs::read(dir.join(format!("chunk_{}.mmap", chunks.len()))) {
            chunks.push(c);
        }
        Chunked { len, record, per_chunk, chunks }
    }

    /// Record `k`, `None` past the end.
    fn get(&self, k: u64) -> Option<&[u8]> {
        if k >= self.len {
            return None;
        }
        let off = (k % self.per_chunk) as usize * self.record;
        Some(&self.chunks[(k / self.per_chunk) as usize][off..off + self.record])
    }
}

/// What the appendable segment of `dir` stores for `name`.
struct Stored {
    /// Per live point id, its quantized record (multivectors: the offset's count and the inner
    /// records); `None`: the point lacks the vector.
    by_id: BTreeMap<u64, Option<Vec<u8>>>,
    /// Records (multivectors: offsets).
    points: u64,
    /// Inner records of multivectors (= `points` otherwise).
    inner: u64,
    /// One past the largest internal id of a live point with the vector.
    live_bound: u64,
}

fn quantized_by_id(dir: &Path, name: &str, multi: bool) -> Stored {
    let st = FsStorage::new(dir).unwrap();
    let (_, app) = common::optimized_and_appendable(&st);
    Stored::read(dir, &app, name, multi)
}

impl Stored {
    /// `app`: the appendable segment's directory, relative to `dir`.
    fn read(dir: &Path, app: &str, name: &str, multi: bool) -> Stored {
        let st = FsStorage::new(dir).unwrap();
        let tracker = IdTracker::open(&st, app, true).unwrap();
        let shard = EdgeShard::load(Arc::new(FsStorage::new(dir).unwrap()), "").unwrap();
        let vdir = dir.join(app).join(format!("vector_storage-{name}"));
        let records = Chunked::open(&vdir.join("quantized_data"), 1);
        let offsets = multi.then(|| Chunked::open(&vdir.join("quantized_offsets_data"), 8));
        let mut out = BTreeMap::new();
        let mut max_with_vector: Option<u32> = None;
        for (id, internal) in tracker.iter_live() {
            let PointId::Num(id) = id else { panic!("uuid ids are not used here") };
            let got = dispatch(&shard, "retrieve", &json!({"ids": [id], "with_vector": [name], "with_payload": false}))
                .unwrap();
            let has = got.as_array().map(|a| a.len() == 1).unwrap() && !got[0]["vector"][name].is_null();
            if !has {
                out.insert(id, None);
                continue;
            }
            max_with_vector = max_with_vector.max(Some(internal));
            // A record past the end reads as the bytes "missing".
            let missing = b"missing".to_vec();
            let bytes = match &offsets {
                None => records.get(u64::from(internal)).map_or(missing, |r| r.to_vec()),
                Some(o) => match o.get(u64::from(internal)) {
                    None => missing,
                    Some(off) => {
                        let start = u32::from_le_bytes(off[..4].try_into().unwrap());
                        let count = u32::from_le_bytes(off[4..].try_into().unwrap());
                        let mut b = count.to_le_bytes().to_vec();
                        for k in start..start + count {
                            b.extend_from_slice(records.get(u64::from(k)).unwrap_or(b"missing"));
                        }
                        b
                    }
                },
            };
            out.insert(id, Some(bytes));
        }
        let points = offsets.as_ref().map_or(records.len, |o| o.len);
        let live_bound = max_with_vector.map_or(0, |i| u64::from(i) + 1);
        Stored { by_id: out, points, inner: records.len, live_bound }
    }
}

#[test]
fn our_writes_keep_the_mutable_binary_storage() {
    let late = 240;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shard");
    let made = run_py(&["make", dir.to_str().unwrap(), &N.to_string(), &late.to_string()]);
    let names: Vec<String> = made["vectors"].as_object().unwrap().keys().cloned().collect();
    let multi: Vec<String> = made["multi"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    let scalar: Vec<Value> = made["scalar"].as_array().unwrap().clone();
    let binary: Vec<&String> = names.iter().filter(|n| !scalar.contains(&json!(n))).collect();
    let ops = run_py(&["ops", &N.to_string(), &late.to_string()]);
    let ops_file = tmp.path().join("ops.json");
    std::fs::write(&ops_file, serde_json::to_vec(&ops).unwrap()).unwrap();
    let theirs_dir = tmp.path().join("theirs");
    common::copy_dir_sparse(&dir, &theirs_dir).unwrap();

    // Record counts before the updates.
    let before: BTreeMap<&String, Stored> =
        binary.iter().map(|n| (*n, quantized_by_id(&dir, n, multi.contains(n)))).collect();

    // Our engine and qdrant-edge-py (on the copy) apply the upserts, flush; the deletions, flush.
    let mut shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
    let mut problems = Vec::new();
    for (phase, cmd, body) in [
        ("upserts", "upsert", json!({"points": ops["upserts"]})),
        ("deletes", "delete", json!({"points": ops["deletes"]})),
    ] {
        for op in parse_update(cmd, &body).unwrap() {
            shard.update(op).unwrap();
        }
        shard.flush().unwrap();
        run_py(&["apply", theirs_dir.to_str().unwrap(), ops_file.to_str().unwrap(), phase]);
        // Byte for byte, per point id; record counts by Qdrant's rule: a record (offset) at the
        // internal id of every point written with the vector, nothing otherwise (deletions
        // write nothing).
        for name in &binary {
            let m = multi.contains(name);
            let ours = quantized_by_id(&dir, name, m);
            let qdrant = quantized_by_id(&theirs_dir, name, m);
            let b = &before[name];
            assert_eq!(
                ours.by_id.keys().collect::<Vec<_>>(),
                qdrant.by_id.keys().collect::<Vec<_>>(),
                "{phase} {name}: live ids"
            );
            let differ: Vec<u64> =
                ours.by_id.iter().filter(|(id, r)| qdrant.by_id[*id] != **r).map(|(id, _)| *id).collect();
            let with = ours.by_id.values().filter(|r| r.is_some()).count();
            eprintln!(
                "{phase} {name}: {} live points ({with} with the vector), {} records differ from qdrant-edge-py's; \
                 records {} -> ours {} / qdrant {}, inner {} -> ours {} / qdrant {}",
                ours.by_id.len(),
                differ.len(),
                b.points,
                ours.points,
                qdrant.points,
                b.inner,
                ours.inner,
                qdrant.inner
            );
            if !differ.is_empty() {
                problems.push(format!(
                    "{phase} {name}: {} points' records differ from qdrant-edge-py's, e.g. ids {:?}",
                    differ.len(),
                    &differ[..3.min(differ.len())]
                ));
            }
            if m && ours.inner != qdrant.inner {
                problems.push(format!("{phase} {name}: {} inner records, qdrant-edge-py {}", ours.inner, qdrant.inner));
            }
            for (who, s) in [("ours", &ours), ("qdrant-edge-py", &qdrant)] {
                // After the upserts: exactly up to the last live point with the vector. The
                // deletions only remove points.
                let ok = if phase == "upserts" {
                    s.points == b.points.max(s.live_bound)
                } else {
                    s.points >= b.points.max(s.live_bound)
                };
                if !ok {
                    problems.push(format!(
                        "{phase} {name} {who}: {} records, expected max({}, {})",
                        s.points, b.points, s.live_bound
                    ));
                }
            }
        }
    }

    // Searches: our engine before closing, after a reload, qdrant-edge-py on our files.
    let reqs = common::oracle_requests(&made, &names, &param_sets());
    let before_close: Vec<Answer> = reqs.iter().map(|r| our_answer(&shard, r)).collect();
    shard.close().unwrap();
    drop(shard);
    let theirs = common::oracle_answers("binary_quant_oracle.py", tmp.path(), &dir, &reqs);
    let reloaded = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
    let (mismatches, exact) = compare_all(&made, &reqs, &theirs, &reloaded, false);
    let stale = reqs.iter().zip(&before_close).filter(|(r, a)| our_answer(&reloaded, r) != **a).count();
    eprintln!("{stale} of {} answers before closing differ from the reloaded shard's", reqs.len());
    if stale > 0 {
        problems.push(format!("{stale} answers before closing differ from the reloaded shard's"));
    }
    if !mismatches.is_empty() {
        problems.push(format!(
            "{} of {} searches on our files differ between qdrant-edge-py and our engine:\n{}",
            mismatches.len(),
            reqs.len(),
            mismatches.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(exact * 2 > reqs.len(), "only {exact} answers equal id for id");
}

#[test]
fn segments_we_create_carry_the_mutable_binary_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let theirs_dir = tmp.path().join("theirs");
    let dir = tmp.path().join("ours");
    run_py(&["create", theirs_dir.to_str().unwrap()]);
    let config: EdgeConfig =
        serde_json::from_slice(&std::fs::read(theirs_dir.join("edge_config.json")).unwrap()).unwrap();
    let mut shard = EdgeShard::create(Arc::new(FsStorage::new(&dir).unwrap()), "", config).unwrap();
    // Queries from `make`; upserts from `ops` (all ids are new here).
    let made = run_py(&["make", tmp.path().join("made").to_str().unwrap(), "40", "0"]);
    let ops = run_py(&["ops", "200", "20"]);
    let ops_file = tmp.path().join("ops.json");
    std::fs::write(&ops_file, serde_json::to_vec(&ops).unwrap()).unwrap();

    let seg = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d.join("segments")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(v.len(), 1, "one segment in {}", d.display());
        v.pop().unwrap()
    };
    let names: Vec<String> = made["vectors"].as_object().unwrap().keys().cloned().collect();
    let multi: Vec<String> = made["multi"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    let scalar: Vec<Value> = made["scalar"].as_array().unwrap().clone();
    let binary: Vec<&String> = names.iter().filter(|n| !scalar.contains(&json!(n))).collect();
    let mut problems = Vec::new();
    for name in &binary {
        for f in ["quantized.config.json", "quantized.meta.json"] {
            let read = |d: &Path| std::fs::read(seg(d).join(format!("vector_storage-{name}")).join(f)).ok();
            let (a, b) = (read(&dir), read(&theirs_dir));
            if a != b {
                problems.push(format!(
                    "{name}/{f}: ours {:?}\n   qdrant-edge-py {:?}",
                    a.map(|x| String::from_utf8_lossy(&x[..x.len().min(300)]).into_owned()),
                    b.map(|x| String::from_utf8_lossy(&x[..x.len().min(300)]).into_owned())
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    for op in parse_update("upsert", &json!({"points": ops["upserts"]})).unwrap() {
        shard.update(op).unwrap();
    }
    shard.flush().unwrap();
    run_py(&["apply", theirs_dir.to_str().unwrap(), ops_file.to_str().unwrap(), "upserts"]);
    let by_id = |d: &Path, name: &str, m: bool| {
        let app = format!("segments/{}", seg(d).file_name().unwrap().to_str().unwrap());
        Stored::read(d, &app, name, m)
    };
    for name in &binary {
        let m = multi.contains(name);
        let ours = by_id(&dir, name, m);
        let qdrant = by_id(&theirs_dir, name, m);
        assert_eq!(ours.by_id.keys().collect::<Vec<_>>(), qdrant.by_id.keys().collect::<Vec<_>>(), "{name}: ids");
        let differ = ours.by_id.iter().filter(|(id, r)| qdrant.by_id[*id] != **r).count();
        eprintln!(
            "{name}: {} points, {differ} records differ; records ours {} / qdrant {}, inner {} / {}",
            ours.by_id.len(),
            ours.points,
            qdrant.points,
            ours.inner,
            qdrant.inner
        );
        if differ > 0 || (m && ours.inner != qdrant.inner) || ours.points != ours.live_bound {
            problems.push(format!("{name}: {differ} records differ"));
        }
    }
    shard.close().unwrap();
    drop(shard);
    // (no point has the group "rare" here)
    let reqs: Vec<Value> = common::oracle_requests(&made, &names, &param_sets())
        .into_iter()
        .filter(|r| r["filter"]["g"] != json!("rare"))
        .collect();
    let theirs = common::oracle_answers("binary_quant_oracle.py", tmp.path(), &dir, &reqs);
    let reloaded = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
    let (mismatches, exact) = compare_all(&made, &reqs, &theirs, &reloaded, false);
    if !mismatches.is_empty() {
        problems.push(format!(
            "{} of {} searches on our files differ:\n{}",
            mismatches.len(),
            reqs.len(),
            mismatches.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(exact * 2 > reqs.len(), "only {exact} answers equal id for id");
}

/// One way of damaging a file.
type Damage = Box<dyn Fn(&Path)>;

/// Copy `src` (a file) aside, run `f`, put it back.
fn with_damaged(path: &Path, damage: impl FnOnce(&Path), f: impl FnOnce()) {
    let saved = path.with_extension("saved");
    std::fs::copy(path, &saved).unwrap();
    damage(path);
    f();
    std::fs::rename(&saved, path).unwrap();
}

#[test]
fn damaged_binary_quantized_files_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shard");
    let made = run_py(&["make", dir.to_str().unwrap(), "600"]);
    let st = FsStorage::new(&dir).unwrap();
    let (opt, app) = common::optimized_and_appendable(&st);
    let names = ["b2c8", "h15e4", "u1d", "l1m4", "m2d8", "mu15"];
    let mut targets = Vec::new();
    for name in names {
        for f in ["quantized.meta.json", "quantized.config.json", "quantized.data", "quantized.offsets.data"] {
            if name.starts_with('m') || !f.contains("offsets") {
                targets.push(format!("{opt}/vector_storage-{name}/{f}"));
            }
        }
        if name.starts_with('m') {
            for f in ["config.json", "status.dat", "chunk_0.mmap"] {
                targets.push(format!("{app}/vector_storage-{name}/quantized_offsets_data/{f}"));
            }
        }
        for f in [
            "quantized.meta.json",
            "quantized.config.json",
            "quantized_data/config.json",
            "quantized_data/status.dat",
            "quantized_data/chunk_0.mmap",
        ] {
            targets.push(format!("{app}/vector_storage-{name}/{f}"));
        }
    }
    let mut mutations = 0;
    let mut load_errors = 0;
    let mut query_errors = 0;
    for t in &targets {
        let path = dir.join(t);
        let len = std::fs::metadata(&path).unwrap().len();
        let using = t.split("vector_storage-").nth(1).unwrap().split('/').next().unwrap();
        let vector = made["queries"][using][0].clone();
        // Truncations, then bit flips in the first 4 KiB (the valid records of the chunk).
        let mut damages: Vec<Damage> = Vec::new();
        for cut in [0, 7, len / 2, len.saturating_sub(1)] {
            if cut < len {
                damages.push(Box::new(move |p: &Path| {
                    std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(cut).unwrap();
                }));
            }
        }
        let span = len.min(4096);
        for k in 0..16u64 {
            let pos = (k * span / 16 + (k % 3)) as usize;
            if (pos as u64) < len {
                damages.push(Box::new(move |p: &Path| {
                    use std::io::{Read, Seek, SeekFrom, Write};
                    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(p).unwrap();
                    let mut b = [0u8];
                    f.seek(SeekFrom::Start(pos as u64)).unwrap();
                    f.read_exact(&mut b).unwrap();
                    f.seek(SeekFrom::Start(pos as u64)).unwrap();
                    f.write_all(&[b[0] ^ [0x01, 0x80, 0xff][(k % 3) as usize]]).unwrap();
                }));
            }
        }
        for d in damages {
            mutations += 1;
            with_damaged(&path, d, || {
                let loaded = std::panic::catch_unwind(|| EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), ""))
                    .unwrap_or_else(|_| panic!("loading with a damaged {t} panicked"));
                let Ok(shard) = loaded else {
                    load_errors += 1;
                    return;
                };
                for (params, filter) in param_sets() {
                    let r = json!({"using": using, "vector": vector, "limit": 10, "params": params, "filter": filter});
                    let mut body = json!({"query": r["vector"], "using": using, "limit": 10, "params": r["params"]});
                    if let Some(g) = filter.get("g") {
                        body["filter"] = json!({"must": [{"key": "g", "match": {"value": g}}]});
                    }
                    let res =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&shard, "query", &body)))
                            .unwrap_or_else(|_| panic!("a query on `{using}` panicked with a damaged {t}"));
                    if res.is_err() {
                        query_errors += 1;
                    }
                }
            });
        }
    }
    eprintln!("{mutations} damaged copies, {load_errors} refused at load, {query_errors} query errors");
    assert!(mutations > 500 && load_errors > 0);
}

#[test]
fn ranked_agreement_rules() {
    common::ranked::self_test();
}

/// A TurboQuant storage in the appendable segment, which our writes cannot keep in step: the
/// flush removes it (records first, config last) and qdrant-edge-py, loading the shard,
/// rebuilds it from all the vectors and finds the points we wrote, quantized or rescored.
/// Without the removal it fails ("quantized vectors 64..103 are not readable").
#[test]
fn our_writes_drop_a_turbo_storage_qdrant_then_rebuilds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shard");
    run_py(&["make_turbo", dir.to_str().unwrap()]);
    let st = FsStorage::new(&dir).unwrap();
    let seg = st.list_dir("segments").unwrap().into_iter().find(|e| e.kind == EntryKind::Dir).unwrap().name;
    let vdir = format!("segments/{seg}/vector_storage-t");
    let records = |st: &FsStorage| {
        let status = st.read_all(&format!("{vdir}/quantized_data/status.dat")).unwrap();
        u64::from_le_bytes(status[..8].try_into().unwrap())
    };
    assert_eq!(records(&st), 100, "qdrant-edge-py keeps a record per point");

    let new: Vec<(u64, Vec<f32>)> =
        (100..103u64).map(|id| (id, (0..32).map(|i| ((id * 31 + i) as f32 * 0.37).sin()).collect())).collect();
    let mut shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
    let points: Vec<Value> = new.iter().map(|(id, v)| json!({"id": id, "vector": {"t": v}})).collect();
    for op in parse_update("upsert", &json!({ "points": points })).unwrap() {
        shard.update(op).unwrap();
    }
    shard.close().unwrap();
    for f in ["quantized.config.json", "quantized.meta.json", "quantized_data"] {
        assert!(!st.exists(&format!("{vdir}/{f}")).unwrap(), "{f} left behind");
    }

    let mut reqs = Vec::new();
    for (_, v) in &new {
        for rescore in [false, true] {
            reqs.push(json!({"using": "t", "vector": v, "limit": 3, "filter": null,
                             "params": {"quantization": {"rescore": rescore}}}));
        }
    }
    let theirs = common::oracle_answers("binary_quant_oracle.py", tmp.path(), &dir, &reqs);
    for (k, a) in theirs.iter().enumerate() {
        assert_eq!(a.first().map(|p| p.0), Some(new[k / 2].0), "request {k}: qdrant-edge-py answers {a:?}");
    }
    assert_eq!(records(&st), 103, "qdrant-edge-py rebuilt the storage from every vector");
}
