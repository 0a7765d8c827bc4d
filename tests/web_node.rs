//! The JS bindings under Node.js (wasm-bindgen-test's default environment): the memory
//! backend end to end, typed errors, and a clear error where IndexedDB does not exist.
//!
//! Run: `cargo test --target wasm32-unknown-unknown --test web_node`.
#![cfg(all(target_arch = "wasm32", target_os = "unknown"))]

use js_sys::Reflect;
use qdrant_edge_wasm::web::Shard;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

fn js(v: &Value) -> JsValue {
    serde_wasm_bindgen::to_value(v).unwrap()
}

fn rust(v: JsValue) -> Value {
    serde_wasm_bindgen::from_value(v).unwrap()
}

fn code(e: &JsValue) -> String {
    Reflect::get(e, &"code".into()).unwrap().as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
async fn memory_shard_end_to_end() {
    let cfg = json!({"vectors": {"v": {"size": 3, "distance": "Dot"}}});
    let mut s = Shard::open("memory".into(), "m".into(), js(&cfg)).await.unwrap();
    let pts: Vec<Value> =
        (0..50).map(|i| json!({"id": i, "vector": {"v": [i as f64, 1.0, 0.0]}, "payload": {"i": i}})).collect();
    let r = rust(s.update("upsert".into(), js(&json!({ "points": pts }))).await.unwrap());
    assert_eq!(r["status"], json!("completed"));
    let got = rust(s.read("query", js(&json!({"query": [1.0, 0.0, 0.0], "using": "v", "limit": 3}))).unwrap());
    let ids: Vec<i64> = got["points"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![49, 48, 47]);
    let batch = json!({"operations": [
        {"delete": {"points": [49]}},
        {"set_payload": {"payload": {"x": true}, "points": [1]}}
    ]});
    let r = rust(s.update("update".into(), js(&batch)).await.unwrap());
    assert_eq!(r.as_array().unwrap().len(), 2);
    let one = rust(s.read("retrieve", js(&json!({"ids": [1, 49], "with_payload": true}))).unwrap());
    assert_eq!(one, json!([{"id": 1, "payload": {"i": 1, "x": true}}]));
    let facet = rust(s.read("count", js(&json!({"filter": {"must": [{"key": "i", "range": {"gte": 10}}]}}))).unwrap());
    assert_eq!(facet["count"], json!(39));
    let info = rust(s.read("info", JsValue::NULL).unwrap());
    assert_eq!(info["points_count"], json!(49));

    // typed errors
    let e = s.read("nope", JsValue::NULL).unwrap_err();
    assert_eq!(code(&e), "invalid_argument");
    assert_eq!(Reflect::get(&e, &"name".into()).unwrap().as_string().unwrap(), "QdrantEdgeError");
    let e = s.read("query", js(&json!({"query": [1.0], "using": "v"}))).unwrap_err();
    assert_eq!(code(&e), "invalid_argument");
    let e =
        s.update("upsert".into(), js(&json!({"points": [{"id": -1, "vector": {"v": [1, 2, 3]}}]}))).await.unwrap_err();
    assert_eq!(code(&e), "invalid_argument");
    s.close().await.unwrap();
    assert_eq!(code(&s.read("info", JsValue::NULL).unwrap_err()), "shard_closed");
}

#[wasm_bindgen_test]
async fn storage_errors_are_clear() {
    let e = Shard::open("idb".into(), "x".into(), JsValue::NULL).await.err().unwrap();
    assert_eq!(code(&e), "io", "Node has no IndexedDB");
    let e = Shard::open("opfs".into(), "x".into(), JsValue::NULL).await.err().unwrap();
    assert_eq!(code(&e), "io", "Node has no OPFS");
    let msg = Reflect::get(&e, &"message".into()).unwrap().as_string().unwrap();
    assert!(msg.contains("OPFS"), "{msg}");
    let e = Shard::open("floppy".into(), "x".into(), JsValue::NULL).await.err().unwrap();
    assert_eq!(code(&e), "invalid_argument");
    let e = Shard::open("memory".into(), "x".into(), JsValue::NULL).await.err().unwrap();
    assert_eq!(code(&e), "not_found", "a memory shard needs a config");
}
