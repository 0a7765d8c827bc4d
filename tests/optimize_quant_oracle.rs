//! Binary and scalar int8 quantized storages that our `optimize` writes into optimized segments, against
//! qdrant-edge-py 0.9.0.
//!
//! `tests/corpus/binary_quant_oracle.py raw` writes a shard whose points all stay in the
//! appendable segment (the cases of `binary_quant_oracle.py make`: one bit / two bits / one and
//! a half bits; query encodings default, binary, scalar 4 and 8 bits; Cosine, Dot, Euclid,
//! Manhattan; float32, float16, uint8; max-sim multivectors; some points lack some vectors,
//! some points deleted; indexing threshold 64 kB). Two copies: ours, optimized by our engine,
//! and theirs, optimized by qdrant-edge-py.
//!
//! 1. Per quantized vector, in the optimized segment: `quantized.config.json` and
//!    `quantized.meta.json` (with the two-bit and scalar-query `vector_stats`) byte-equal to
//!    Qdrant's; every live point's record in `quantized.data` (multivectors: its offset's count
//!    and its inner records via `quantized.offsets.data`) byte-equal to Qdrant's record for the
//!    same point id; the same file sizes.
//! 2. qdrant-edge-py, loading our optimized shard, answers the requests of
//!    `binary_quant_oracle.rs` (unrescored, rescored, oversampled, filtered) exactly as our
//!    engine does on the same files (ids in order, scores to 1e-5 relative; equal scores
//!    included), and the unrescored answers depend on the quantized data (negative control).
//!
//!    Filtered requests walk the graphs our optimize built with a filter; there the two engines
//!    may keep different points among equal scores at the limit (and, when a filter's
//!    cardinality equals the graph's `full_scan_threshold`, Qdrant decides between the graph and
//!    a plain scan by random sampling, we by counting): measured at N = 1600, 26 of 2508
//!    requests (15 in the order of equal scores only), all filtered; at N = 1500 some with
//!    `quantization.ignore` (original vectors, so not about the quantized files). Filtered answers must agree up to the order of equal scores except
//!    for at most 2 %; unfiltered ones must agree exactly.
//!
//! `raw` adds four scalar int8 vectors to the one of `make` (uint8 Cosine quantile 0.99,
//! float32 Euclid without quantile, float16 Dot quantile 0.95, Manhattan quantile 0.9, Cosine
//! multivectors quantile 0.99): their files are compared as the binary ones (Qdrant's
//! calibration is deterministic up to 5000 vectors), their answers as in
//! `binary_quant_oracle.rs` (scores within 1e-5 count as ties: Qdrant's SIMD kernels may round
//! the last bit differently).
//!
//! The interpreter is `QEW_PYTHON` or `.venv/bin/python`; without `qdrant_edge` the test FAILS.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::oracle_query as our_answer;
use common::ranked::{quantized_agreement, Agreement};
use qdrant_edge_wasm::format::id_tracker::IdTracker;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{FsStorage, Storage};
use qdrant_edge_wasm::types::PointId;
use serde_json::{json, Value};

const N: usize = 1600;

fn run_py(args: &[&str]) -> Value {
    common::run_oracle_script("binary_quant_oracle.py", args)
}

/// Per live point id of the optimized segment of `dir`: its record of `name` (multivectors: the
/// offset's count then the inner records); plus the file sizes (data, offsets).
fn records_by_id(dir: &Path, name: &str, multi: bool) -> (BTreeMap<u64, Vec<u8>>, (usize, usize)) {
    let st = FsStorage::new(dir).unwrap();
    let seg = common::optimized_segment(&st);
    let tracker = IdTracker::open(&st, &seg, false).unwrap();
    let vdir = dir.join(&seg).join(format!("vector_storage-{name}"));
    let data = std::fs::read(vdir.join("quantized.data")).unwrap();
    let meta: Value = serde_json::from_slice(&std::fs::read(vdir.join("quantized.meta.json")).unwrap()).unwrap();
    let count = meta["vector_parameters"]["count"].as_u64().unwrap() as usize;
    assert!(count > 0 && data.len() % count == 0, "{name}: {} bytes for {count} records", data.len());
    let record = data.len() / count;
    let offsets = multi.then(|| std::fs::read(vdir.join("quantized.offsets.data")).unwrap());
    let mut out = BTreeMap::new();
    for (id, internal) in tracker.iter_live() {
        let PointId::Num(id) = id else { panic!("uuid ids are not used here") };
        let i = internal as usize;
        let bytes = match &offsets {
            None => data[i * record..(i + 1) * record].to_vec(),
            Some(o) => {
                let start = u32::from_le_bytes(o[8 * i..8 * i + 4].try_into().unwrap()) as usize;
                let n = u32::from_le_bytes(o[8 * i + 4..8 * i + 8].try_into().unwrap()) as usize;
                let mut b = (n as u32).to_le_bytes().to_vec();
                b.extend_from_slice(&data[start * record..(start + n) * record]);
                b
            }
        };
        out.insert(id, bytes);
    }
    (out, (data.len(), offsets.map_or(0, |o| o.len())))
}

fn param_sets() -> Vec<(Value, Value)> {
    let q = |v: Value| json!({"quantization": v});
    vec![
        (json!({}), Value::Null),
        (q(json!({"rescore": false})), Value::Null),
        (q(json!({"rescore": true})), Value::Null),
        (q(json!({"rescore": false, "oversampling": 2.0})), Value::Null),
        (json!({"hnsw_ef": 16, "quantization": {"rescore": false}}), Value::Null),
        (q(json!({"rescore": false})), json!({"g": "a"})),
        (q(json!({"rescore": false})), json!({"g": "rare"})),
        (q(json!({"rescore": true, "oversampling": 2.0})), json!({"g": "rare"})),
        (q(json!({"rescore": false, "oversampling": 4.0})), json!({"g": "rare"})),
        (q(json!({"ignore": true})), json!({"g": "rare"})),
        (q(json!({"ignore": true})), json!({"g": "a"})),
    ]
}

#[test]
fn optimize_writes_qdrants_quantized_storages() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    eprintln!("shard copies in {}", tmp.path().display());
    let theirs = tmp.path().join("theirs");
    let made = run_py(&["raw", ours.to_str().unwrap(), &N.to_string()]);
    common::copy_dir_sparse(&ours, &theirs).unwrap();
    let names: Vec<String> = made["vectors"].as_object().unwrap().keys().cloned().collect();
    let multi: Vec<String> = made["multi"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    let scalar: Vec<Value> = made["scalar"].as_array().unwrap().clone();
    let binary: Vec<&String> = names.iter().filter(|n| !scalar.contains(&json!(n))).collect();
    assert!(binary.len() >= 14 && multi.len() >= 4 && scalar.len() >= 5);

    let mut shard = EdgeShard::load(Arc::new(FsStorage::new(&ours).unwrap()), "").unwrap();
    assert!(shard.optimize().unwrap(), "nothing optimized");
    shard.close().unwrap();
    drop(shard);
    run_py(&["optimize", theirs.to_str().unwrap()]);

    // 1. Files.
    let (st, th) = (FsStorage::new(&ours).unwrap(), FsStorage::new(&theirs).unwrap());
    let (seg, their_seg) = (common::optimized_segment(&st), common::optimized_segment(&th));
    let mut problems = Vec::new();
    for name in &names {
        for f in ["quantized.config.json", "quantized.meta.json"] {
            let a = st.read_all(&format!("{seg}/vector_storage-{name}/{f}")).ok().map(|b| b.to_vec());
            let b = th.read_all(&format!("{their_seg}/vector_storage-{name}/{f}")).ok().map(|b| b.to_vec());
            if a != b {
                let show = |x: Option<Vec<u8>>| x.map(|x| String::from_utf8_lossy(&x[..x.len().min(400)]).into_owned());
                problems.push(format!("{name}/{f}:\n   ours   {:?}\n   qdrant {:?}", show(a), show(b)));
            }
        }
        let m = multi.contains(name);
        let (a, sizes_a) = records_by_id(&ours, name, m);
        let (b, sizes_b) = records_by_id(&theirs, name, m);
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{name}: live ids");
        let differ: Vec<u64> = a.iter().filter(|(id, r)| b[*id] != **r).map(|(id, _)| *id).collect();
        eprintln!(
            "{name}: {} points, {} records differ; file sizes ours {sizes_a:?}, qdrant {sizes_b:?}",
            a.len(),
            differ.len()
        );
        if !differ.is_empty() || sizes_a != sizes_b {
            problems.push(format!(
                "{name}: {} of {} records differ (e.g. ids {:?}); sizes ours {sizes_a:?}, qdrant {sizes_b:?}",
                differ.len(),
                a.len(),
                &differ[..differ.len().min(3)]
            ));
        }
    }
    // The segment configs carry the same quantization configs.
    let cfg: Value = serde_json::from_slice(&st.read_all(&format!("{seg}/segment.json")).unwrap()).unwrap();
    let their_cfg: Value = serde_json::from_slice(&th.read_all(&format!("{their_seg}/segment.json")).unwrap()).unwrap();
    for name in &names {
        let q = |c: &Value| c["config"]["vector_data"][name.as_str()]["quantization_config"].clone();
        if q(&cfg) != q(&their_cfg) {
            problems.push(format!("{name}: segment.json quantization_config {} vs {}", q(&cfg), q(&their_cfg)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // 2. qdrant-edge-py searches our files as our engine does.
    let reqs = common::oracle_requests(&made, &names, &param_sets());
    let theirs_answers = common::oracle_answers("binary_quant_oracle.py", tmp.path(), &ours, &reqs);
    let shard = EdgeShard::load(Arc::new(FsStorage::new(&ours).unwrap()), "").unwrap();
    let (mut exact, mut mismatches, mut filtered_tie_orders) = (0, Vec::new(), 0);
    let (mut filtered_differ, mut filtered_total) = (Vec::new(), 0);
    let (mut unrescored, mut control_same) = (0, 0);
    for (r, a) in reqs.iter().zip(&theirs_answers) {
        assert!(!a.is_empty(), "Qdrant found nothing for {r}");
        let b = our_answer(&shard, r);
        let is_scalar = scalar.contains(&r["using"]);
        let filtered = !r["filter"].is_null();
        filtered_total += usize::from(filtered);
        match quantized_agreement(a, &b, is_scalar, is_scalar) {
            Agreement::Exactly => exact += 1,
            Agreement::UpToTieOrder | Agreement::UpToBoundaryChoice if is_scalar => {}
            // Known, not about the quantized files (module docs): the order of equal scores in
            // filtered graph walks over graphs our optimize built.
            Agreement::UpToTieOrder if filtered => filtered_tie_orders += 1,
            _ if filtered => filtered_differ
                .push(format!("{} {} filter {}: qdrant {a:?}\n   ours   {b:?}", r["using"], r["params"], r["filter"])),
            _ => mismatches
                .push(format!("{} {} filter {}: qdrant {a:?}\n   ours   {b:?}", r["using"], r["params"], r["filter"])),
        }
        let rescored = r["params"].pointer("/quantization/rescore") != Some(&json!(false));
        if !rescored && !is_scalar {
            unrescored += 1;
            let mut c = r.clone();
            c["params"]["quantization"] = json!({"ignore": true});
            if quantized_agreement(a, &our_answer(&shard, &c), false, false) != Agreement::No {
                control_same += 1;
            }
        }
    }
    for m in &filtered_differ {
        eprintln!("filtered, differs: {m}");
    }
    eprintln!(
        "{} requests on our optimized shard: {exact} equal id for id, {filtered_tie_orders} filtered ones equal up to \
         the order of equal scores, {} filtered ones differ, {} unfiltered ones differ; negative control: {control_same} \
         of {unrescored} unrescored answers also equal without quantization",
        reqs.len(),
        filtered_differ.len(),
        mismatches.len()
    );
    if std::env::var_os("QEW_KEEP").is_some() {
        let _ = tmp.keep();
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} searches differ:\n{}",
        mismatches.len(),
        reqs.len(),
        mismatches.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        filtered_differ.len() * 50 <= filtered_total,
        "{} of {filtered_total} filtered searches differ (more than 2 %)",
        filtered_differ.len()
    );
    assert!(exact * 2 > reqs.len(), "only {exact} answers equal id for id");
    assert!(
        control_same * 20 < unrescored,
        "{control_same} of {unrescored} answers do not depend on the quantized data"
    );
}
