//! JavaScript bindings (wasm-bindgen), built for `wasm32-unknown-unknown` only.
//!
//! One class, [`Shard`], exposes the EdgeShard API with Qdrant's REST-shaped JSON: a body that
//! works against a Qdrant server's `POST /collections/{c}/points/query` works for
//! `shard.read("query", body)`, and `read` / `update` return the JSON a server puts in
//! `result`. Errors are JS `Error`s with `name = "QdrantEdgeError"` and a stable `code`
//! (`invalid_argument`, `not_found`, `corrupted`, `unsupported`, `io`, `shard_closed`,
//! `internal`).
//!
//! Backends: `"memory"` (nothing persists), `"opfs"` (the origin private file system through
//! sync access handles, dedicated Worker only, [`opfs`]: every write is synchronous and each
//! acknowledged update is flushed) and `"idb"` (IndexedDB, [`idb`]: updates, `flush`,
//! `optimize`, `close` and snapshot application commit to IndexedDB before their promise
//! resolves). The JS/TS facade in `pkg-template/` runs this in a dedicated Worker.

pub mod idb;
pub mod lock;
pub mod nodefs;
pub mod opfs;

use std::sync::Arc;

use js_sys::{Reflect, Uint8Array};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::api::{dispatch, dispatch_update, report_json};
use crate::error::Error;
use crate::format::segment_meta::EdgeConfig;
use crate::outbox::{update_recorded, Outbox};
use crate::shard::EdgeShard;
use crate::snapshot::apply::{ApplyOptions, SnapshotApply};
use crate::storage::{MemoryStorage, Storage};

use idb::IdbBackend;
use nodefs::NodeFsStorage;
use opfs::{OpfsBackend, SPARES_SMALL};

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// A JS `Error` with `name = "QdrantEdgeError"` and `code`.
fn js_error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("QdrantEdgeError");
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn to_js(e: Error) -> JsValue {
    js_error(e.kind().code(), &e.to_string())
}

fn io_error(message: String) -> JsValue {
    js_error("io", &message)
}

fn from_js(v: JsValue) -> Result<Value, JsValue> {
    js_to_json(&v).map_err(|e| js_error("invalid_argument", &format!("request body: {e}")))
}

/// A request body as JSON: the value `serde_wasm_bindgen::from_value::<Value>` gives (null
/// and undefined are null; a safe integer is an integer and any other number a float, NaN and
/// infinities null; a `BigInt` is an integer if it fits `i64` or `u64`; arrays element by
/// element; a plain object by `Object.entries` and a `Map` by its entries, keys strings; bytes
/// and anything else are refused), and in addition a `Float64Array` or `Float32Array` is an
/// array of its numbers, copied out in one call. The package's engine (pkg-template/engine.js)
/// passes the number arrays of a body (vectors) as `Float64Array`s: a 384-number query vector
/// then costs one copy instead of several calls into JS per number (about 30 us per query
/// in Chromium).
pub fn js_to_json(v: &JsValue) -> Result<Value, String> {
    if v.loose_eq(&JsValue::NULL) {
        return Ok(Value::Null);
    }
    if let Some(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if v.is_bigint() {
        return match i64::try_from(v.clone()) {
            Ok(i) => Ok(Value::from(i)),
            Err(big) => match u64::try_from(big) {
                Ok(u) => Ok(Value::from(u)),
                Err(_) => Err("a BigInt outside i64::MIN..u64::MAX".into()),
            },
        };
    }
    if let Some(x) = v.as_f64() {
        return Ok(js_number(x));
    }
    if let Some(s) = v.as_string() {
        return Ok(Value::String(s));
    }
    if let Some(a) = v.dyn_ref::<js_sys::Array>() {
        return a.iter().map(|x| js_to_json(&x)).collect::<Result<Vec<_>, _>>().map(Value::Array);
    }
    if let Some(a) = v.dyn_ref::<js_sys::Float64Array>() {
        return Ok(Value::Array(a.to_vec().into_iter().map(js_number).collect()));
    }
    if let Some(a) = v.dyn_ref::<js_sys::Float32Array>() {
        return Ok(Value::Array(a.to_vec().into_iter().map(|x| js_number(f64::from(x))).collect()));
    }
    if v.is_instance_of::<Uint8Array>() || v.is_instance_of::<js_sys::ArrayBuffer>() {
        return Err("invalid type: byte array, expected any valid JSON value".into());
    }
    let is_map = v.is_instance_of::<js_sys::Map>();
    if v.is_object() && (is_map || !js_sys::Symbol::iterator().js_in(v)) {
        let mut out = serde_json::Map::new();
        let mut put = |k: JsValue, x: JsValue| -> Result<(), String> {
            let key = k.as_string().ok_or_else(|| format!("invalid type: {k:?}, expected a string key"))?;
            out.insert(key, js_to_json(&x)?);
            Ok(())
        };
        if is_map {
            let iter = js_sys::try_iter(v).map_err(|e| format!("{e:?}"))?.ok_or("a Map that is not iterable")?;
            for entry in iter {
                let entry: js_sys::Array = entry.map_err(|e| format!("{e:?}"))?.unchecked_into();
                put(entry.get(0), entry.get(1))?;
            }
        } else {
            for entry in js_sys::Object::entries(v.unchecked_ref()).iter() {
                let entry: js_sys::Array = entry.unchecked_into();
                put(entry.get(0), entry.get(1))?;
            }
        }
        return Ok(Value::Object(out));
    }
    Err(format!("invalid type: {v:?}, expected any valid JSON value"))
}

/// A JS number as `serde_wasm_bindgen` gives it to JSON: an integer when it is a safe integer
/// (`Number.isSafeInteger`), else a float (null when not finite).
fn js_number(x: f64) -> Value {
    if x.trunc() == x && x.abs() <= MAX_SAFE_INTEGER as f64 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn to_js_value(v: &Value) -> Result<JsValue, JsValue> {
    Ok(json_to_js(v))
}

/// Largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A JSON value as plain JS values (objects, arrays, numbers, strings). Integers beyond
/// `Number.MAX_SAFE_INTEGER` (u64 point ids, large payload integers) become `BigInt`s instead of
/// losing digits; requests may use `BigInt`s the same way.
pub fn json_to_js(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                if u <= MAX_SAFE_INTEGER {
                    JsValue::from_f64(u as f64)
                } else {
                    js_sys::BigInt::from(u).into()
                }
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() <= MAX_SAFE_INTEGER {
                    JsValue::from_f64(i as f64)
                } else {
                    js_sys::BigInt::from(i).into()
                }
            } else {
                JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => JsValue::from_str(s),
        Value::Array(a) => {
            // Vectors: numbers that stay plain JS numbers cross in one copy.
            if a.len() >= 8 {
                let plain: Option<Vec<f64>> = a.iter().map(plain_js_number).collect();
                if let Some(xs) = plain {
                    return js_sys::Array::from(&js_sys::Float64Array::from(&xs[..])).into();
                }
            }
            let arr = js_sys::Array::new_with_length(a.len() as u32);
            for (i, x) in a.iter().enumerate() {
                arr.set(i as u32, json_to_js(x));
            }
            arr.into()
        }
        Value::Object(o) => {
            let obj = js_sys::Object::new();
            for (k, x) in o {
                let key = JsValue::from_str(k);
                let value = json_to_js(x);
                if k == "__proto__" {
                    // an own property named __proto__, not the object's prototype
                    let d = js_sys::Object::new();
                    for (f, fv) in [
                        ("value", value),
                        ("writable", true.into()),
                        ("enumerable", true.into()),
                        ("configurable", true.into()),
                    ] {
                        let _ = Reflect::set(&d, &f.into(), &fv);
                    }
                    let _ = Reflect::define_property(&obj, &key, &d);
                } else {
                    let _ = Reflect::set(&obj, &key, &value);
                }
            }
            obj.into()
        }
    }
}

/// The JS number [`json_to_js`] makes of `v`, if `v` is a number that needs no `BigInt`.
fn plain_js_number(v: &Value) -> Option<f64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        (u <= MAX_SAFE_INTEGER).then_some(u as f64)
    } else if let Some(i) = n.as_i64() {
        (i.unsigned_abs() <= MAX_SAFE_INTEGER).then_some(i as f64)
    } else {
        n.as_f64()
    }
}

enum Backend {
    Memory,
    Idb(IdbBackend),
    Opfs(OpfsBackend),
    /// Node: a directory (`name` is its path), locked by the host.
    NodeFs(NodeFsStorage),
}

impl Backend {
    async fn open(kind: &str, name: &str) -> Result<(Backend, Arc<dyn Storage>), JsValue> {
        match kind {
            "memory" => Ok((Backend::Memory, Arc::new(MemoryStorage::new()))),
            "idb" => {
                let b = IdbBackend::open(name).await.map_err(io_error)?;
                let st = b.storage();
                Ok((Backend::Idb(b), Arc::new(st)))
            }
            "opfs" => {
                let b = OpfsBackend::open(name).await.map_err(io_error)?;
                let st = b.storage();
                Ok((Backend::Opfs(b), Arc::new(st)))
            }
            "fs" => {
                let st = NodeFsStorage::new(name).map_err(io_error)?;
                st.lock().map_err(io_error)?;
                Ok((Backend::NodeFs(st.clone()), Arc::new(st)))
            }
            other => Err(js_error(
                "invalid_argument",
                &format!("unknown storage `{other}` (expected \"memory\", \"opfs\", \"idb\" or \"fs\")"),
            )),
        }
    }

    /// Before a synchronous call that may create up to `files` files: OPFS acquires spare
    /// handles (asynchronously) so the call never runs out.
    async fn prepare(&self, files: usize) -> Result<(), JsValue> {
        match self {
            Backend::Opfs(b) => b.reserve(files.max(SPARES_SMALL)).await.map_err(io_error),
            _ => Ok(()),
        }
    }

    /// Spares for a call that rewrites segments (optimize, snapshot apply).
    fn many(&self) -> usize {
        match self {
            Backend::Opfs(b) => (2 * b.storage().file_count()).max(256),
            _ => 0,
        }
    }

    /// Refuse calls after a failed IndexedDB commit: memory may hold what was not committed.
    fn check(&self) -> Result<(), JsValue> {
        match self {
            Backend::Idb(b) => match b.failure() {
                Some(f) => Err(io_error(format!("an earlier IndexedDB commit failed, reopen the shard: {f}"))),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    async fn commit(&self) -> Result<(), JsValue> {
        match self {
            Backend::Memory | Backend::Opfs(_) | Backend::NodeFs(_) => Ok(()),
            Backend::Idb(b) => b.commit().await.map_err(io_error),
        }
    }

    fn close(&self) {
        match self {
            Backend::Memory => {}
            Backend::Idb(b) => b.close(),
            Backend::Opfs(b) => b.close(),
            Backend::NodeFs(st) => st.unlock(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Idb(_) => "idb",
            Backend::Opfs(_) => "opfs",
            Backend::NodeFs(_) => "fs",
        }
    }
}

/// A backend and the Web Lock that makes this context its only writer.
struct Held {
    backend: Backend,
    lock: Option<lock::ShardLock>,
}

impl Held {
    async fn open(kind: &str, name: &str) -> Result<(Held, Arc<dyn Storage>), JsValue> {
        // "fs" is locked by its host (a lock file: Node has no Web Locks)
        let lock =
            if kind == "memory" || kind == "fs" { None } else { lock::acquire(kind, name).await.map_err(io_error)? };
        match Backend::open(kind, name).await {
            Ok((backend, st)) => Ok((Held { backend, lock }, st)),
            Err(e) => {
                if let Some(l) = &lock {
                    l.release().await;
                }
                Err(e)
            }
        }
    }

    /// Release the backend's handles, then the lock.
    async fn close(&self) {
        self.backend.close();
        if let Some(l) = &self.lock {
            l.release().await;
        }
    }
}

impl std::ops::Deref for Held {
    type Target = Backend;
    fn deref(&self) -> &Backend {
        &self.backend
    }
}

/// An EdgeShard on a browser storage backend.
#[wasm_bindgen]
pub struct Shard {
    shard: Option<EdgeShard>,
    backend: Held,
    /// The durable outbox, once enabled ([`Shard::enable_outbox`]): every update is recorded
    /// in it before it is applied.
    outbox: Option<Outbox>,
}

#[wasm_bindgen]
impl Shard {
    /// Open the shard `name` on `storage` (`"memory"`, `"opfs"` or `"idb"`). With `config` (the shape of
    /// `edge_config.json`), a shard that does not exist yet is created and an existing one
    /// must be compatible; without it the shard must exist.
    pub async fn open(storage: String, name: String, config: JsValue) -> Result<Shard, JsValue> {
        let config = from_js(config)?;
        let (backend, st) = Held::open(&storage, &name).await?;
        let exists = st.exists(crate::format::names::SEGMENTS_DIR).map_err(|e| to_js(e.into()))?;
        let opened = if config.is_null() {
            if !exists {
                backend.close().await;
                return Err(js_error("not_found", &format!("shard `{name}` does not exist on {storage}")));
            }
            EdgeShard::load(st, "")
        } else {
            let cfg: EdgeConfig = crate::api::requests::parse(&config).map_err(to_js)?;
            if exists {
                EdgeShard::load_with_config(st, "", cfg)
            } else {
                EdgeShard::create(st, "", cfg)
            }
        };
        Shard::adopt(backend, opened).await
    }

    /// The shard `opened` on `backend`, committed; on failure the backend (and its lock) is
    /// released.
    async fn adopt(backend: Held, opened: crate::error::Result<EdgeShard>) -> Result<Shard, JsValue> {
        let opened = opened.and_then(|mut s| {
            let outbox = if Outbox::exists(&**s.storage(), s.root())? { Some(Outbox::open(&mut s)?) } else { None };
            Ok((s, outbox))
        });
        let (shard, outbox) = match opened {
            Ok(s) => s,
            Err(e) => {
                backend.close().await;
                return Err(to_js(e));
            }
        };
        let this = Shard { shard: Some(shard), backend, outbox };
        this.backend.commit().await?;
        Ok(this)
    }

    /// Start restoring a full or partial snapshot into a new, empty shard `name`: push the
    /// archive's bytes, then `finish()` (see [`Restore`]).
    pub async fn restore(storage: String, name: String, sha256: Option<String>) -> Result<Restore, JsValue> {
        let (backend, st) = Held::open(&storage, &name).await?;
        if st.exists(crate::format::names::SEGMENTS_DIR).map_err(|e| to_js(e.into()))? {
            backend.close().await;
            return Err(js_error("invalid_argument", &format!("shard `{name}` already exists on {storage}")));
        }
        let apply = SnapshotApply::begin(st, "", ApplyOptions { sha256, ..Default::default() }).map_err(to_js)?;
        Ok(Restore { apply: Some(apply), backend: Some(backend) })
    }

    fn shard(&self) -> Result<&EdgeShard, JsValue> {
        self.shard.as_ref().ok_or_else(|| js_error("shard_closed", "shard is closed"))
    }

    fn shard_mut(&mut self) -> Result<&mut EdgeShard, JsValue> {
        self.shard.as_mut().ok_or_else(|| js_error("shard_closed", "shard is closed"))
    }

    /// The backend's name (`"memory"` or `"idb"`).
    #[wasm_bindgen(getter)]
    pub fn storage(&self) -> String {
        self.backend.name().to_string()
    }

    /// A read: `info`, `query`, `query_batch`, `search`, `scroll`, `count`, `facet`,
    /// `retrieve`, with the REST body; returns the REST `result`.
    pub fn read(&self, command: &str, body: JsValue) -> Result<JsValue, JsValue> {
        self.backend.check()?;
        let body = from_js(body)?;
        let out = dispatch(self.shard()?, command, &body).map_err(to_js)?;
        to_js_value(&out)
    }

    /// An update (`upsert`, `update` = `/points/batch`, `delete`, `set_payload`,
    /// `overwrite_payload`, `delete_payload`, `clear_payload`, `update_vectors`,
    /// `delete_vectors`, `create_index`, `delete_index`); resolves once it is durable.
    pub async fn update(&mut self, command: String, body: JsValue) -> Result<JsValue, JsValue> {
        let body = from_js(body)?;
        self.backend.prepare(SPARES_SMALL).await?;
        let shard = self.shard.as_mut().ok_or_else(|| js_error("shard_closed", "shard is closed"))?;
        let out = match self.outbox.as_mut() {
            Some(ob) => update_recorded(shard, ob, &command, &body),
            None => dispatch_update(shard, &command, &body),
        };
        // Commit also after a refusal: a batch refused half way keeps its applied prefix.
        self.backend.commit().await?;
        to_js_value(&out.map_err(to_js)?)
    }

    /// Record every later update in the shard's durable outbox (it stays enabled across
    /// reopens), for a sender to replay on a Qdrant server. Idempotent.
    #[wasm_bindgen(js_name = enableOutbox)]
    pub async fn enable_outbox(&mut self) -> Result<(), JsValue> {
        if self.outbox.is_some() {
            return Ok(());
        }
        self.backend.prepare(SPARES_SMALL).await?;
        let shard = self.shard()?;
        let ob = Outbox::create(shard.storage().clone(), shard.root()).map_err(to_js)?;
        self.outbox = Some(ob);
        self.backend.commit().await
    }

    /// Up to `max` pending outbox entries (about `maxBytes` of JSON at most, at least one),
    /// oldest first: `[{seq, command, body}]` (empty without an outbox).
    #[wasm_bindgen(js_name = outboxPending)]
    pub fn outbox_pending(&self, max: u32, max_bytes: f64) -> Result<JsValue, JsValue> {
        self.shard()?;
        // never hand out an entry IndexedDB may not have committed
        self.backend.check()?;
        let entries = match &self.outbox {
            Some(ob) => ob.pending(max as usize, max_bytes.max(0.0) as u64).map_err(to_js)?,
            None => Vec::new(),
        };
        let v: Vec<Value> = entries
            .into_iter()
            .map(|e| serde_json::json!({"seq": e.seq, "command": e.command, "body": e.body}))
            .collect();
        to_js_value(&Value::Array(v))
    }

    /// Acknowledge outbox entries up to and including `seq` (the server has them); durable
    /// when the promise resolves.
    #[wasm_bindgen(js_name = outboxAck)]
    pub async fn outbox_ack(&mut self, seq: f64) -> Result<(), JsValue> {
        self.shard()?;
        self.backend.prepare(SPARES_SMALL).await?;
        let ob = self.outbox.as_mut().ok_or_else(|| js_error("invalid_argument", "the outbox is not enabled"))?;
        ob.ack(seq as u64).map_err(to_js)?;
        self.backend.commit().await
    }

    /// Testing: make the next IndexedDB commit fail (its transaction is aborted after the
    /// writes were issued).
    #[cfg(feature = "testing")]
    #[wasm_bindgen(js_name = abortNextCommit)]
    pub fn abort_next_commit(&self) {
        if let Backend::Idb(b) = &self.backend.backend {
            b.abort_next_commit();
        }
    }

    /// `{enabled, pending, acked}` of the outbox.
    #[wasm_bindgen(js_name = outboxStatus)]
    pub fn outbox_status(&self) -> Result<JsValue, JsValue> {
        self.shard()?;
        let v = match &self.outbox {
            Some(ob) => serde_json::json!({"enabled": true, "pending": ob.pending_count(), "acked": ob.acked()}),
            None => serde_json::json!({"enabled": false, "pending": 0, "acked": 0}),
        };
        to_js_value(&v)
    }

    pub async fn flush(&mut self) -> Result<(), JsValue> {
        self.backend.prepare(SPARES_SMALL).await?;
        self.shard_mut()?.flush().map_err(to_js)?;
        self.backend.commit().await
    }

    /// Run the optimizers; resolves to whether any segment changed.
    pub async fn optimize(&mut self) -> Result<bool, JsValue> {
        self.backend.prepare(self.backend.many()).await?;
        let changed = self.shard_mut()?.optimize().map_err(to_js)?;
        self.backend.commit().await?;
        Ok(changed)
    }

    /// The shard's snapshot manifest (what a server needs for a partial snapshot).
    #[wasm_bindgen(js_name = snapshotManifest)]
    pub async fn snapshot_manifest(&mut self) -> Result<JsValue, JsValue> {
        self.backend.prepare(SPARES_SMALL).await?;
        let m = self.shard_mut()?.snapshot_manifest().map_err(to_js)?;
        self.backend.commit().await?;
        let v = serde_json::to_value(m).map_err(|e| js_error("internal", &e.to_string()))?;
        to_js_value(&v)
    }

    /// Start applying a full or partial snapshot to this shard: push the archive's bytes, then
    /// `finish()`. The shard keeps answering until the apply commits.
    #[wasm_bindgen(js_name = beginSnapshot)]
    pub fn begin_snapshot(&self, sha256: Option<String>) -> Result<SnapshotUpload, JsValue> {
        let apply = self.shard()?.begin_snapshot_apply(ApplyOptions { sha256, ..Default::default() }).map_err(to_js)?;
        let spares = match &self.backend.backend {
            Backend::Opfs(b) => Some(b.clone()),
            _ => None,
        };
        Ok(SnapshotUpload { apply: Some(apply), spares })
    }

    /// Finish a snapshot apply started with `beginSnapshot`; resolves to the apply report.
    #[wasm_bindgen(js_name = finishSnapshot)]
    pub async fn finish_snapshot(&mut self, upload: &mut SnapshotUpload) -> Result<JsValue, JsValue> {
        let apply = upload.apply.take().ok_or_else(|| js_error("invalid_argument", "this upload was finished"))?;
        self.backend.prepare(self.backend.many()).await?;
        if let Some(ob) = self.outbox.as_mut() {
            // The apply changes the shard's operation numbers: every entry so far is applied.
            ob.settle().map_err(to_js)?;
        }
        let report = self.shard_mut()?.finish_snapshot_apply(apply).map_err(to_js)?;
        self.backend.commit().await?;
        to_js_value(&report_json(&report))
    }

    /// Flush, commit and release the shard (handles and the writer lock, even when the flush
    /// or the commit fails, whose error is then returned); later calls fail with
    /// `shard_closed`.
    pub async fn close(&mut self) -> Result<(), JsValue> {
        let Some(mut s) = self.shard.take() else { return Ok(()) };
        self.outbox = None;
        let flushed = s.close().map_err(to_js);
        drop(s);
        let committed = self.backend.commit().await;
        self.backend.close().await;
        flushed.and(committed)
    }

    /// Delete every byte of shard `name` on `storage` (IndexedDB: the database; OPFS: the
    /// shard's directory, which must not be open).
    pub async fn destroy(storage: String, name: String) -> Result<(), JsValue> {
        match storage.as_str() {
            "memory" => Ok(()),
            "idb" => IdbBackend::destroy(&name).await.map_err(io_error),
            "opfs" => OpfsBackend::destroy(&name).await.map_err(io_error),
            "fs" => {
                let st = NodeFsStorage::new(&name).map_err(io_error)?;
                st.lock().map_err(io_error)?;
                let r = st.remove_dir_all("").map_err(|e| to_js(e.into()));
                st.unlock();
                r?;
                nodefs::remove_root(&name).map_err(io_error)
            }
            other => Err(js_error("invalid_argument", &format!("unknown storage `{other}`"))),
        }
    }
}

/// An archive being pushed into a shard (see [`Shard::begin_snapshot`]).
#[wasm_bindgen]
pub struct SnapshotUpload {
    apply: Option<SnapshotApply>,
    /// OPFS: the backend that needs spare files before each chunk.
    spares: Option<OpfsBackend>,
}

/// Files one chunk of an archive can create: a tar entry takes at least 1 KiB.
fn files_in(chunk: &Uint8Array) -> usize {
    chunk.length() as usize / 1024 + 8
}

/// Push `chunk` into a transfer (`what` names it in errors), first acquiring OPFS spares.
async fn push_chunk(
    apply: &mut Option<SnapshotApply>,
    opfs: Option<&OpfsBackend>,
    chunk: &Uint8Array,
    what: &str,
) -> Result<(), JsValue> {
    if let Some(b) = opfs {
        b.reserve(files_in(chunk).max(SPARES_SMALL)).await.map_err(io_error)?;
    }
    let apply = apply.as_mut().ok_or_else(|| js_error("invalid_argument", &format!("this {what} was finished")))?;
    apply.push(&chunk.to_vec()).map_err(to_js)
}

fn received(apply: &Option<SnapshotApply>) -> f64 {
    apply.as_ref().map_or(0.0, |a| a.archive_bytes() as f64)
}

#[wasm_bindgen]
impl SnapshotUpload {
    /// Push the next bytes of the archive (any chunk size).
    pub async fn push(&mut self, chunk: Uint8Array) -> Result<(), JsValue> {
        push_chunk(&mut self.apply, self.spares.as_ref(), &chunk, "upload").await
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> f64 {
        received(&self.apply)
    }

    /// Give up: remove what was staged. The shard is unchanged; later pushes fail.
    pub fn abort(&mut self) -> Result<(), JsValue> {
        match self.apply.take() {
            Some(a) => a.abort().map_err(to_js),
            None => Ok(()),
        }
    }
}

/// A snapshot being restored into a new shard (see [`Shard::restore`]).
#[wasm_bindgen]
pub struct Restore {
    apply: Option<SnapshotApply>,
    backend: Option<Held>,
}

#[wasm_bindgen]
impl Restore {
    pub async fn push(&mut self, chunk: Uint8Array) -> Result<(), JsValue> {
        let opfs = match &self.backend {
            Some(Held { backend: Backend::Opfs(b), .. }) => Some(b),
            _ => None,
        };
        push_chunk(&mut self.apply, opfs, &chunk, "restore").await
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> f64 {
        received(&self.apply)
    }

    /// Give up: remove what was staged and release the storage (and its writer lock); nothing
    /// was committed, so no shard is left behind.
    pub async fn abort(&mut self) -> Result<(), JsValue> {
        let r = match self.apply.take() {
            Some(a) => a.abort().map_err(to_js),
            None => Ok(()),
        };
        if let Some(held) = self.backend.take() {
            held.close().await;
        }
        r
    }

    /// Check, commit and open the restored shard.
    pub async fn finish(&mut self) -> Result<Shard, JsValue> {
        let apply = self.apply.take().ok_or_else(|| js_error("invalid_argument", "this restore was finished"))?;
        let backend = self.backend.take().ok_or_else(|| js_error("invalid_argument", "this restore was finished"))?;
        backend.prepare(backend.many()).await?;
        Shard::adopt(backend, EdgeShard::finish_unpack(apply).map(|(shard, _report)| shard)).await
    }
}
