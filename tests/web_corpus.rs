//! A subset of the differential corpus in headless Chromium's dedicated worker: seven shards
//! (qdrant-edge-py's dense f32/f16/u8, multivector, sparse with IDF, payload operations and WAL
//! replay shards, and the Qdrant 1.19 server's `multi` shard with HNSW graphs and quantized
//! vectors) restored through the bindings into OPFS and into IndexedDB, each answering its
//! corpus cases (1,594 read requests with qdrant-edge-py's or the server's answers), compared
//! with the same tolerant rules as `tests/differential.rs`.
//!
//! It embeds `$QEW_CORPUS/web/bundle.bin`, written by `tests/corpus/web_bundle.py` after the
//! corpus generator (`scripts/test.sh` does both). Run:
//! `QEW_CORPUS=$PWD/target/corpus CHROMEDRIVER=/usr/bin/chromedriver cargo test --release
//! --target wasm32-unknown-unknown --test web_corpus`.
#![cfg(all(target_arch = "wasm32", target_os = "unknown"))]

#[allow(dead_code)]
#[path = "common/cases.rs"]
mod cases;

use cases::{parse_case, result_diff, short, Case};
use qdrant_edge_wasm::web::Shard;
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// For `cases::load_cases` (not used here: the cases come from the bundle).
#[allow(dead_code)]
const GENERATOR: &str = "tests/corpus/generate.py then tests/corpus/web_bundle.py";

static BUNDLE: &[u8] = include_bytes!(concat!(env!("QEW_CORPUS"), "/web/bundle.bin"));

struct Bundle {
    shards: Vec<(String, &'static [u8])>,
    cases: Vec<Case>,
}

fn bundle() -> Bundle {
    let mut at = 0usize;
    let mut take = |n: usize| {
        let s = &BUNDLE[at..at + n];
        at += n;
        s
    };
    let count = u32::from_le_bytes(take(4).try_into().unwrap());
    let mut shards = Vec::new();
    for _ in 0..count {
        let n = u32::from_le_bytes(take(4).try_into().unwrap()) as usize;
        let name = String::from_utf8(take(n).to_vec()).unwrap();
        let len = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
        shards.push((name, take(len)));
    }
    let len = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
    let json: Value = serde_json::from_slice(take(len)).unwrap();
    let cases = json.as_array().unwrap().iter().enumerate().map(|(i, v)| parse_case(i, v).unwrap()).collect();
    Bundle { shards, cases }
}

/// Requests as an app builds them: numbers, and `BigInt`s for integers past 2^53.
fn js(v: &Value) -> JsValue {
    qdrant_edge_wasm::web::json_to_js(v)
}

fn rust(v: JsValue) -> Value {
    serde_wasm_bindgen::from_value(v).unwrap()
}

async fn corpus_on(storage: &str) {
    let b = bundle();
    let mut compared = 0;
    let mut failures = Vec::new();
    for (shard, tar) in &b.shards {
        let name = format!("corpus-{}-{}", shard.replace('/', "-"), js_sys::Math::random().to_bits());
        let mut r = Shard::restore(storage.into(), name.clone(), None).await.unwrap();
        for chunk in tar.chunks(1 << 20) {
            r.push(js_sys::Uint8Array::from(chunk)).await.unwrap_or_else(|e| panic!("{shard}: {e:?}"));
        }
        let mut s = r.finish().await.unwrap_or_else(|e| panic!("{shard}: {e:?}"));
        for case in b.cases.iter().filter(|c| &c.shard == shard) {
            // the REST result, through JS values (as an app gets it)
            let got = match s.read(&case.command, js(&case.body)) {
                Ok(v) => rust(v),
                Err(e) => {
                    failures.push(format!("{}: error {e:?}", case.name));
                    continue;
                }
            };
            let diff = result_diff(case, &case.expected, &got);
            let edge_ok = case.edge_expected.as_ref().is_some_and(|ee| result_diff(case, ee, &got).is_none());
            if let Some(reason) = diff.filter(|_| !edge_ok) {
                failures.push(format!("{}: {reason}; got {}", case.name, short(&got, 300)));
            }
            compared += 1;
        }
        s.close().await.unwrap();
        Shard::destroy(storage.into(), name).await.unwrap();
    }
    assert!(
        failures.is_empty(),
        "{storage}: {} of {compared} cases differ:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    assert_eq!(compared, b.cases.len(), "every bundled case was asked");
    assert!(compared > 1000, "only {compared} cases");
}

#[wasm_bindgen_test]
async fn corpus_subset_on_indexeddb() {
    corpus_on("idb").await;
}

#[wasm_bindgen_test]
async fn corpus_subset_on_opfs() {
    corpus_on("opfs").await;
}
