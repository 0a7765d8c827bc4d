//! The JS bindings under Node.js (wasm-bindgen-test's default environment): the memory
//! backend end to end, typed errors, a clear error where IndexedDB does not exist, and the
//! `"fs"` storage (Node's file system through `pkg-template/nodefs.js`): the storage
//! conformance battery, and a shard that survives close and reopen and refuses a second
//! opener.
//!
//! Run: `cargo test --target wasm32-unknown-unknown --test web_node`.
#![cfg(all(target_arch = "wasm32", target_os = "unknown"))]

use js_sys::Reflect;
use qdrant_edge_wasm::storage::conformance;
use qdrant_edge_wasm::web::nodefs::{set_fs_host, FsHost, NodeFsStorage};
use qdrant_edge_wasm::web::Shard;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

#[wasm_bindgen(module = "/pkg-template/nodefs.js")]
extern "C" {
    #[wasm_bindgen(js_name = createFsHost)]
    fn create_fs_host() -> FsHost;
}

#[wasm_bindgen(
    inline_js = "export function scratch(tag) { const os = process.getBuiltinModule('node:os'); const fs = process.getBuiltinModule('node:fs'); return fs.mkdtempSync(os.tmpdir() + '/qew-' + tag + '-'); }
export function rmrf(p) { process.getBuiltinModule('node:fs').rmSync(p, { recursive: true, force: true }); }
export function exists(p) { return process.getBuiltinModule('node:fs').existsSync(p); }"
)]
extern "C" {
    fn scratch(tag: &str) -> String;
    fn rmrf(path: &str);
    fn exists(path: &str) -> bool;
}

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

#[wasm_bindgen_test]
fn node_fs_storage_conforms() {
    set_fs_host(create_fs_host());
    let base = scratch("conf");
    let mut n = 0;
    let passed = conformance::run_all(|| {
        n += 1;
        NodeFsStorage::new(&format!("{base}/{n}")).unwrap()
    })
    .unwrap();
    assert_eq!(passed.len(), conformance::checks::<NodeFsStorage>().len());
    rmrf(&base);
}

#[wasm_bindgen_test]
async fn shard_on_node_fs_survives_close_and_reopen() {
    set_fs_host(create_fs_host());
    let base = scratch("shard");
    let dir = format!("{base}/my shard");
    let cfg = json!({"vectors": {"v": {"size": 3, "distance": "Dot"}}});
    let e = Shard::open("fs".into(), dir.clone(), JsValue::NULL).await.err().unwrap();
    assert_eq!(code(&e), "not_found");
    let mut s = Shard::open("fs".into(), dir.clone(), js(&cfg)).await.unwrap();
    assert_eq!(s.storage(), "fs");
    let pts: Vec<Value> = (0..40).map(|i| json!({"id": i, "vector": {"v": [i as f64, 1.0, 0.5]}})).collect();
    s.update("upsert".into(), js(&json!({ "points": pts }))).await.unwrap();
    // one writer per directory
    let e = Shard::open("fs".into(), dir.clone(), JsValue::NULL).await.err().unwrap();
    assert_eq!(code(&e), "io");
    s.update("delete".into(), js(&json!({"points": [0, 1]}))).await.unwrap();
    s.optimize().await.unwrap();
    s.close().await.unwrap();
    assert!(exists(&format!("{dir}/segments")), "a Qdrant shard directory on disk");
    assert!(!exists(&format!("{dir}/.qdrant-edge-wasm.lock")), "close releases the lock");
    let mut s = Shard::open("fs".into(), dir.clone(), JsValue::NULL).await.unwrap();
    assert_eq!(rust(s.read("count", js(&json!({"exact": true}))).unwrap())["count"], json!(38));
    let got = rust(s.read("query", js(&json!({"query": [1.0, 0.0, 0.0], "limit": 2, "using": "v"}))).unwrap());
    assert_eq!(got["points"][0]["id"], json!(39));
    s.close().await.unwrap();
    Shard::destroy("fs".into(), dir.clone()).await.unwrap();
    assert!(!exists(&dir));
    rmrf(&base);
}

/// u64 ids and integers past 2^53 cross the boundary as `BigInt`s, both ways, without losing
/// digits; smaller integers stay numbers; a payload key `__proto__` stays an own key.
#[wasm_bindgen_test]
async fn large_integers_are_bigints_and_proto_keys_stay_data() {
    use qdrant_edge_wasm::web::json_to_js;
    let cfg = json!({"vectors": {"v": {"size": 2, "distance": "Dot"}}});
    let mut s = Shard::open("memory".into(), "big".into(), js(&cfg)).await.unwrap();
    let body = json!({"points": [
        {"id": u64::MAX, "vector": {"v": [1.0, 0.0]}, "payload": {"big": 9007199254740993u64, "neg": -9007199254740993i64, "small": 7, "__proto__": {"polluted": true}}},
        {"id": 3, "vector": {"v": [0.0, 1.0]}}
    ]});
    let req = json_to_js(&body);
    let id = Reflect::get(&js_sys::Array::from(&Reflect::get(&req, &"points".into()).unwrap()).get(0), &"id".into())
        .unwrap();
    assert!(id.is_bigint(), "u64::MAX is sent as a BigInt");
    s.update("upsert".into(), req).await.unwrap();
    let got = s.read("retrieve", json_to_js(&json!({"ids": [u64::MAX, 3], "with_payload": true}))).unwrap();
    let first = js_sys::Array::from(&got).get(0);
    assert!(Reflect::get(&first, &"id".into()).unwrap().is_bigint());
    let payload = Reflect::get(&first, &"payload".into()).unwrap();
    assert!(Reflect::get(&payload, &"big".into()).unwrap().is_bigint());
    assert_eq!(Reflect::get(&payload, &"small".into()).unwrap().as_f64(), Some(7.0));
    let own = js_sys::Object::get_own_property_descriptor(&js_sys::Object::from(payload.clone()), &"__proto__".into());
    assert!(!own.is_undefined(), "__proto__ is an own data property");
    assert!(Reflect::get(&payload, &"polluted".into()).unwrap().is_undefined(), "not the prototype");
    let back = rust(got);
    assert_eq!(back[0]["id"], json!(u64::MAX));
    assert_eq!(back[0]["payload"]["big"], json!(9007199254740993u64));
    assert_eq!(back[0]["payload"]["neg"], json!(-9007199254740993i64));
    assert_eq!(back[1]["id"], json!(3));
    s.close().await.unwrap();
}

/// The simd128 distance kernels (this is a wasm32 build with +simd128) equal their scalar
/// references, f32 bit for bit.
#[wasm_bindgen_test]
fn simd128_kernels_equal_the_scalar_references() {
    assert!(cfg!(target_feature = "simd128"), "wasm builds enable simd128 (.cargo/config.toml)");
    let n = qdrant_edge_wasm::spaces::simd::check_against_scalar().unwrap();
    assert!(n > 1500, "{n} checks");
}
