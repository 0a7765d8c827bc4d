//! Shards whose vectors qdrant-edge-py inlined into the HNSW graph (`inline_storage` with
//! scalar or binary quantization: storage type `GraphInline`, `links_comp_vec.bin`), see
//! `tests/corpus/inline_storage_oracle.py`.
//!
//! * They load, and `retrieve` returns qdrant-edge-py's vectors (read from the graph file).
//! * Every search (default params, `hnsw_ef`, `rescore`, `oversampling`, `ignore`, `exact`,
//!   ACORN, with and without a filter) gives qdrant-edge-py's ids and scores, equal scores in
//!   any order; the approximate ones come from Qdrant's inline-vector walk.
//! * Damaged copies of `links_comp_vec.bin` never panic.

mod common;

use std::sync::Arc;

use common::ranked::{agreement, Run, Ties};
use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage, OpenMode, Storage};
use serde_json::{json, Value};

type Answer = Vec<(Value, f64)>;

fn answer(v: &Value, named: bool) -> Answer {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            if named {
                (p["id"].clone(), p["score"].as_f64().unwrap())
            } else {
                (p[0].clone(), p[1].as_f64().unwrap())
            }
        })
        .collect()
}

/// Equal scores in order (relative 1e-5), the same ids within each run of nearly equal scores;
/// the last run, which the limit may cut, may hold other ids of the same score.
fn same(a: &Answer, b: &Answer) -> bool {
    let keyed = |x: &Answer| x.iter().map(|(id, s)| (id.to_string(), *s)).collect::<Vec<_>>();
    agreement(&keyed(a), &keyed(b), Ties::strict(1e-5).runs(Run::Close).cut_last_run()).is_same()
}

#[test]
fn graph_inline_shards_load_and_answer_as_qdrant() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::run_oracle_script("inline_storage_oracle.py", &["run", tmp.path().to_str().unwrap()]);
    let searches = out["searches"].as_array().unwrap();
    for (name, want) in out["shards"].as_object().unwrap() {
        let dir = tmp.path().join(name);
        let seg_json = std::fs::read_dir(dir.join("segments"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path().join("segment.json")).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(seg_json.contains("GraphInline"), "{name}: qdrant-edge-py inlined the vectors");
        let shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();

        let recs = dispatch(&shard, "retrieve", &json!({"ids": out["ids"], "with_vector": true})).unwrap();
        let mut got: Vec<(Value, Value)> =
            recs.as_array().unwrap().iter().map(|r| (r["id"].clone(), r["vector"].clone())).collect();
        got.sort_by_key(|(id, _)| id.as_u64());
        let expected: Vec<(Value, Value)> =
            want["records"].as_array().unwrap().iter().map(|r| (r[0].clone(), r[1].clone())).collect();
        assert_eq!(got, expected, "{name}: retrieved vectors");

        let mut differ = Vec::new();
        for (i, (body, w)) in searches.iter().zip(want["searches"].as_array().unwrap()).enumerate() {
            let ours = answer(&dispatch(&shard, "search", body).unwrap(), true);
            let theirs = answer(w, false);
            if !same(&ours, &theirs) {
                differ.push(format!(
                    "{name} #{i} params {} filter {}:\n  ours   {ours:?}\n  theirs {theirs:?}",
                    body["params"],
                    body.get("filter").unwrap_or(&Value::Null)
                ));
            }
        }
        assert!(differ.is_empty(), "{} of {} searches differ:\n{}", differ.len(), searches.len(), differ.join("\n"));
    }
}

#[test]
fn damaged_inline_graph_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::run_oracle_script("inline_storage_oracle.py", &["run", tmp.path().to_str().unwrap()]);
    let body = &out["searches"][1];
    let src = tmp.path().join("scalar_cosine");
    let base = MemoryStorage::new();
    common::copy_dir_to_storage(&src, &base).unwrap();
    let seg = base
        .list_dir("segments")
        .unwrap()
        .into_iter()
        .map(|e| format!("segments/{}", e.name))
        .find(|d| base.is_file(&format!("{d}/vector_index/links_comp_vec.bin")).unwrap())
        .unwrap();
    let file = format!("{seg}/vector_index/links_comp_vec.bin");
    let bytes = base.read_all(&file).unwrap().to_vec();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for cut in [0, 40, 79, 80, 200, bytes.len() / 2, bytes.len() - 8, bytes.len() - 1] {
        cases.push(bytes[..cut].to_vec());
    }
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..150 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut b = bytes.clone();
        let at = (rng % b.len() as u64) as usize;
        b[at] ^= 1 << (rng >> 60 & 7);
        cases.push(b);
    }
    let (mut refused, mut answered) = (0, 0);
    for b in cases {
        let st = base.deep_clone();
        st.remove_file(&file).unwrap();
        let f = st.open(&file, OpenMode::CreateNew).unwrap();
        f.write_at(0, &b).unwrap();
        f.sync().unwrap();
        match EdgeShard::load(Arc::new(st), "") {
            Err(_) => refused += 1,
            Ok(shard) => {
                let _ = dispatch(&shard, "search", body);
                let _ = dispatch(&shard, "retrieve", &json!({"ids": [1, 2, 3], "with_vector": true}));
                answered += 1;
            }
        }
    }
    assert!(refused > 0 && answered > 0, "refused {refused}, answered {answered}");
}
