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
    // a build without simd128 (.cargo/config.toml enables it for every wasm target) fails here
    const { assert!(cfg!(target_feature = "simd128"), "wasm builds enable simd128 (.cargo/config.toml)") };
    let n = qdrant_edge_wasm::spaces::simd::check_against_scalar().unwrap();
    assert!(n > 1500, "{n} checks");
}

#[wasm_bindgen(inline_js = r#"
export function bodySamples() {
  const big = 2n ** 70n;
  const withProto = JSON.parse('{"__proto__": 1, "b": [1, 2]}');
  const holey = [1, 2, 3]; delete holey[1];
  return [
    null, undefined, true, false, 0, -0, 7, -7, 0.1, 1e21, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), NaN, Infinity, -Infinity,
    'text', '', 'ünï€😀', 5n, -5n, 2n ** 63n, 2n ** 64n - 1n,
    [], [1, 'a', null, undefined, true, [2, [3]]], holey,
    Array.from({ length: 384 }, (_, i) => Math.sin(i) / 3), Array.from({ length: 20 }, (_, i) => i - 10),
    { query: Array.from({ length: 16 }, (_, i) => i / 7), limit: 10, params: { hnsw_ef: 128, exact: false },
      filter: { must: [{ key: 'k', match: { any: ['x', 'y'] } }] }, nothing: undefined, zero: null },
    withProto, Object.assign(Object.create(null), { a: 1 }),
    new Map([['a', 1], ['b', [true, { c: 'd' }]]]), new Map([[1, 'non-string key']]),
    new Number(5), new String('ab'), new Date(0),
    new Uint8Array([1, 2]), new ArrayBuffer(4), new Set([1]), new Int32Array([1, 2]),
    () => 1, Symbol('s'), big, -big,
    { nested: [{ deep: [new Set([1])] }] },
  ];
}
export function typedSamples() {
  const xs = [0, -0, 1, -1, 0.1, 1 / 3, 2 ** 53 - 1, 2 ** 53, 1e-40, 3.4e38, NaN, Infinity, -Infinity, 123456789];
  return [new Float64Array(xs), new Float32Array(xs), new Float64Array(0)];
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = bodySamples)]
    fn body_samples() -> js_sys::Array;
    #[wasm_bindgen(js_name = typedSamples)]
    fn typed_samples() -> js_sys::Array;
}

/// The engine's own conversion of request bodies gives exactly the JSON serde-wasm-bindgen
/// gives, and refuses exactly what it refuses; typed float arrays read as the arrays of their
/// numbers (which serde-wasm-bindgen refuses).
#[wasm_bindgen_test]
fn request_bodies_convert_as_serde_wasm_bindgen_converts_them() {
    use qdrant_edge_wasm::web::js_to_json;
    let samples = body_samples();
    assert!(samples.length() > 40);
    let (mut ok, mut refused) = (0, 0);
    for (i, v) in samples.iter().enumerate() {
        let reference = serde_wasm_bindgen::from_value::<Value>(v.clone());
        let ours = js_to_json(&v);
        match (&reference, &ours) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "sample {i}");
                // same JSON text too: integer and float representations included
                assert_eq!(a.to_string(), b.to_string(), "sample {i}");
                ok += 1;
            }
            (Err(_), Err(_)) => refused += 1,
            _ => panic!("sample {i}: serde-wasm-bindgen {reference:?}, ours {ours:?}"),
        }
    }
    assert!(ok >= 25 && refused >= 8, "{ok} converted, {refused} refused");
    for (i, v) in typed_samples().iter().enumerate() {
        let plain = js_sys::Array::from(&v);
        let reference = serde_wasm_bindgen::from_value::<Value>(plain.into()).unwrap();
        assert_eq!(js_to_json(&v).unwrap().to_string(), reference.to_string(), "typed sample {i}");
        assert!(serde_wasm_bindgen::from_value::<Value>(v).is_err(), "typed sample {i}: the reference takes it as is");
    }
}

/// Results cross back with vectors as plain JS arrays of the same numbers (the packed path),
/// and with integers beyond 2^53 as BigInts (the element-wise path).
#[wasm_bindgen_test]
fn result_vectors_convert_to_plain_arrays() {
    use qdrant_edge_wasm::web::json_to_js;
    let v = json!([0.5, -0.25, 1, -3, 1e300, 0.1, 7.25, 9007199254740991u64, -9007199254740991i64]);
    let js_v = json_to_js(&v);
    assert!(js_sys::Array::is_array(&js_v));
    assert_eq!(rust(js_v.clone()), v);
    let a: js_sys::Array = js_v.unchecked_into();
    assert_eq!(a.length(), 9);
    let neg_zero: js_sys::Array = json_to_js(&json!([0.5, -0.0, 1, 2, 3, 4, 5, 6])).unchecked_into();
    assert!(neg_zero.get(1).as_f64().unwrap().is_sign_negative());
    let wide = json!([1, 2, 3, 4, 5, 6, 7, 8, 18446744073709551615u64]);
    let a: js_sys::Array = json_to_js(&wide).unchecked_into();
    assert!(a.get(8).is_bigint());
    assert_eq!(a.get(0).as_f64(), Some(1.0));
}
