//! JavaScript bindings (wasm-bindgen), built for `wasm32-unknown-unknown` only.
//!
//! One class, [`Shard`], exposes the EdgeShard API with Qdrant's REST-shaped JSON: a body that
//! works against a Qdrant server's `POST /collections/{c}/points/query` works for
//! `shard.read("query", body)`, and `read` / `update` return the JSON a server puts in
//! `result`. Errors are JS `Error`s with `name = "QdrantEdgeError"` and a stable `code`
//! (`invalid_argument`, `not_found`, `corrupted`, `unsupported`, `io`, `shard_closed`,
//! `internal`).
//!
//! Backends: `"memory"` (nothing persists) and `"idb"` (IndexedDB, [`idb`]): updates,
//! `flush`, `optimize`, `close` and snapshot application commit to IndexedDB before their
//! promise resolves. The JS/TS facade in `pkg-template/` runs this in a dedicated Worker.

pub mod idb;

use std::sync::Arc;

use js_sys::{Reflect, Uint8Array};
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::api::{dispatch, dispatch_update, report_json};
use crate::error::Error;
use crate::format::segment_meta::EdgeConfig;
use crate::shard::EdgeShard;
use crate::snapshot::apply::{ApplyOptions, SnapshotApply};
use crate::storage::{MemoryStorage, Storage};

use idb::IdbBackend;

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
    if v.is_undefined() || v.is_null() {
        return Ok(Value::Null);
    }
    serde_wasm_bindgen::from_value(v).map_err(|e| js_error("invalid_argument", &format!("request body: {e}")))
}

fn to_js_value(v: &Value) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error("internal", &format!("response: {e}")))
}

enum Backend {
    Memory,
    Idb(IdbBackend),
}

impl Backend {
    async fn open(kind: &str, name: &str) -> Result<(Backend, MemoryStorage), JsValue> {
        match kind {
            "memory" => Ok((Backend::Memory, MemoryStorage::new())),
            "idb" => {
                let b = IdbBackend::open(name).await.map_err(io_error)?;
                let st = b.storage();
                Ok((Backend::Idb(b), st))
            }
            other => Err(js_error(
                "invalid_argument",
                &format!("unknown storage `{other}` (expected \"memory\" or \"idb\")"),
            )),
        }
    }

    async fn commit(&self) -> Result<(), JsValue> {
        match self {
            Backend::Memory => Ok(()),
            Backend::Idb(b) => b.commit().await.map_err(io_error),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Idb(_) => "idb",
        }
    }
}

/// An EdgeShard on a browser storage backend.
#[wasm_bindgen]
pub struct Shard {
    shard: Option<EdgeShard>,
    backend: Backend,
}

#[wasm_bindgen]
impl Shard {
    /// Open the shard `name` on `storage` (`"memory"` or `"idb"`). With `config` (the shape of
    /// `edge_config.json`), a shard that does not exist yet is created and an existing one
    /// must be compatible; without it the shard must exist.
    pub async fn open(storage: String, name: String, config: JsValue) -> Result<Shard, JsValue> {
        let config = from_js(config)?;
        let (backend, st) = Backend::open(&storage, &name).await?;
        let st: Arc<dyn Storage> = Arc::new(st);
        let exists = st.exists(crate::format::names::SEGMENTS_DIR).map_err(|e| to_js(e.into()))?;
        let shard = if config.is_null() {
            if !exists {
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
        }
        .map_err(to_js)?;
        let this = Shard { shard: Some(shard), backend };
        this.backend.commit().await?;
        Ok(this)
    }

    /// Start restoring a full or partial snapshot into a new, empty shard `name`: push the
    /// archive's bytes, then `finish()` (see [`Restore`]).
    pub async fn restore(storage: String, name: String, sha256: Option<String>) -> Result<Restore, JsValue> {
        let (backend, st) = Backend::open(&storage, &name).await?;
        let st: Arc<dyn Storage> = Arc::new(st);
        if st.exists(crate::format::names::SEGMENTS_DIR).map_err(|e| to_js(e.into()))? {
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
        let body = from_js(body)?;
        let out = dispatch(self.shard()?, command, &body).map_err(to_js)?;
        to_js_value(&out)
    }

    /// An update (`upsert`, `update` = `/points/batch`, `delete`, `set_payload`,
    /// `overwrite_payload`, `delete_payload`, `clear_payload`, `update_vectors`,
    /// `delete_vectors`, `create_index`, `delete_index`); resolves once it is durable.
    pub async fn update(&mut self, command: String, body: JsValue) -> Result<JsValue, JsValue> {
        let body = from_js(body)?;
        let out = dispatch_update(self.shard_mut()?, &command, &body).map_err(to_js)?;
        self.backend.commit().await?;
        to_js_value(&out)
    }

    pub async fn flush(&mut self) -> Result<(), JsValue> {
        self.shard_mut()?.flush().map_err(to_js)?;
        self.backend.commit().await
    }

    /// Run the optimizers; resolves to whether any segment changed.
    pub async fn optimize(&mut self) -> Result<bool, JsValue> {
        let changed = self.shard_mut()?.optimize().map_err(to_js)?;
        self.backend.commit().await?;
        Ok(changed)
    }

    /// The shard's snapshot manifest (what a server needs for a partial snapshot).
    #[wasm_bindgen(js_name = snapshotManifest)]
    pub async fn snapshot_manifest(&mut self) -> Result<JsValue, JsValue> {
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
        Ok(SnapshotUpload { apply: Some(apply) })
    }

    /// Finish a snapshot apply started with `beginSnapshot`; resolves to the apply report.
    #[wasm_bindgen(js_name = finishSnapshot)]
    pub async fn finish_snapshot(&mut self, upload: &mut SnapshotUpload) -> Result<JsValue, JsValue> {
        let apply = upload.apply.take().ok_or_else(|| js_error("invalid_argument", "this upload was finished"))?;
        let report = self.shard_mut()?.finish_snapshot_apply(apply).map_err(to_js)?;
        self.backend.commit().await?;
        to_js_value(&report_json(&report))
    }

    /// Flush, commit and release the shard; later calls fail with `shard_closed`.
    pub async fn close(&mut self) -> Result<(), JsValue> {
        if let Some(mut s) = self.shard.take() {
            s.close().map_err(to_js)?;
        }
        self.backend.commit().await?;
        if let Backend::Idb(b) = &self.backend {
            b.close();
        }
        Ok(())
    }

    /// Delete every byte of shard `name` on `storage` (IndexedDB: the database).
    pub async fn destroy(storage: String, name: String) -> Result<(), JsValue> {
        match storage.as_str() {
            "memory" => Ok(()),
            "idb" => IdbBackend::destroy(&name).await.map_err(io_error),
            other => Err(js_error("invalid_argument", &format!("unknown storage `{other}`"))),
        }
    }
}

/// An archive being pushed into a shard (see [`Shard::begin_snapshot`]).
#[wasm_bindgen]
pub struct SnapshotUpload {
    apply: Option<SnapshotApply>,
}

#[wasm_bindgen]
impl SnapshotUpload {
    /// Push the next bytes of the archive (any chunk size).
    pub fn push(&mut self, chunk: &Uint8Array) -> Result<(), JsValue> {
        let apply = self.apply.as_mut().ok_or_else(|| js_error("invalid_argument", "this upload was finished"))?;
        apply.push(&chunk.to_vec()).map_err(to_js)
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> f64 {
        self.apply.as_ref().map_or(0.0, |a| a.archive_bytes() as f64)
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
    backend: Option<Backend>,
}

#[wasm_bindgen]
impl Restore {
    pub fn push(&mut self, chunk: &Uint8Array) -> Result<(), JsValue> {
        let apply = self.apply.as_mut().ok_or_else(|| js_error("invalid_argument", "this restore was finished"))?;
        apply.push(&chunk.to_vec()).map_err(to_js)
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> f64 {
        self.apply.as_ref().map_or(0.0, |a| a.archive_bytes() as f64)
    }

    /// Give up: remove what was staged; nothing was committed, so no shard is left behind.
    pub fn abort(&mut self) -> Result<(), JsValue> {
        if let Some(Backend::Idb(b)) = self.backend.take() {
            b.close();
        }
        match self.apply.take() {
            Some(a) => a.abort().map_err(to_js),
            None => Ok(()),
        }
    }

    /// Check, commit and open the restored shard.
    pub async fn finish(&mut self) -> Result<Shard, JsValue> {
        let apply = self.apply.take().ok_or_else(|| js_error("invalid_argument", "this restore was finished"))?;
        let backend = self.backend.take().ok_or_else(|| js_error("invalid_argument", "this restore was finished"))?;
        let (shard, _report) = EdgeShard::finish_unpack(apply).map_err(to_js)?;
        let this = Shard { shard: Some(shard), backend };
        this.backend.commit().await?;
        Ok(this)
    }
}
