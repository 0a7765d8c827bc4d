//! The IndexedDB backend: the shard lives in a change-tracking [`MemoryStorage`]; opening
//! loads the persisted image asynchronously, and [`IdbBackend::commit`] writes what changed in
//! one `readwrite` transaction with `durability: "strict"`.
//!
//! Database `qdrant-edge:<name>`, version 1, two object stores:
//! * `meta`: key `"image"` → `{"next_id": n, "entries": [[path, null | [id, len]], …]}` (JSON
//!   text; `null` marks a directory);
//! * `pages`: key `[file id, page index]` → `Uint8Array` of [`IMAGE_PAGE`] bytes (pages that
//!   hold only zeros are not stored; removed files' pages are deleted by key range).
//!
//! A transaction is atomic, so the database always holds the state of one commit: what the
//! engine wrote after the last successful commit is lost when the page goes away. The facade
//! commits after every update before it resolves, so an acknowledged update is durable. A
//! failed commit poisons the backend (every later call fails): the in-memory state is ahead of
//! the database, and reopening returns to the last commit.

use std::cell::RefCell;

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction};

use crate::storage::{Changes, ImageEntry, MemoryStorage, IMAGE_PAGE};

const META: &str = "meta";
const PAGES: &str = "pages";
const IMAGE_KEY: &str = "image";

#[derive(Serialize, Deserialize)]
struct Image {
    next_id: u64,
    entries: Vec<(String, Option<(u64, u64)>)>,
}

fn js_err(context: &str, e: JsValue) -> String {
    let msg = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    format!("IndexedDB {context}: {msg}")
}

fn factory() -> Result<IdbFactory, String> {
    let global = js_sys::global();
    let idb = Reflect::get(&global, &JsValue::from_str("indexedDB")).map_err(|e| js_err("lookup", e))?;
    idb.dyn_into::<IdbFactory>().map_err(|_| "IndexedDB is not available in this context".to_string())
}

/// A promise settled by a request's success (its result) or error.
fn request_promise(req: &IdbRequest) -> Promise {
    let req = req.clone();
    Promise::new(&mut |resolve, reject| {
        let r = req.clone();
        let ok = Closure::once_into_js(move |_: JsValue| {
            let _ = resolve.call1(&JsValue::UNDEFINED, &r.result().unwrap_or(JsValue::UNDEFINED));
        });
        let r = req.clone();
        let fail = Closure::once_into_js(move |_: JsValue| {
            let e = r.error().ok().flatten().map(JsValue::from).unwrap_or_else(|| JsValue::from_str("request failed"));
            let _ = reject.call1(&JsValue::UNDEFINED, &e);
        });
        req.set_onsuccess(Some(ok.unchecked_ref()));
        req.set_onerror(Some(fail.unchecked_ref()));
    })
}

/// A promise settled when the transaction completes (or fails / aborts).
fn transaction_promise(tx: &IdbTransaction) -> Promise {
    let tx = tx.clone();
    Promise::new(&mut |resolve, reject| {
        let ok = Closure::once_into_js(move |_: JsValue| {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        });
        let reject2 = reject.clone();
        let t = tx.clone();
        let fail = Closure::once_into_js(move |_: JsValue| {
            let e = t.error().map(JsValue::from).unwrap_or_else(|| JsValue::from_str("transaction failed"));
            let _ = reject.call1(&JsValue::UNDEFINED, &e);
        });
        let abort = Closure::once_into_js(move |_: JsValue| {
            let _ = reject2.call1(&JsValue::UNDEFINED, &JsValue::from_str("transaction aborted"));
        });
        tx.set_oncomplete(Some(ok.unchecked_ref()));
        tx.set_onerror(Some(fail.unchecked_ref()));
        tx.set_onabort(Some(abort.unchecked_ref()));
    })
}

fn store(tx: &IdbTransaction, name: &str) -> Result<IdbObjectStore, String> {
    tx.object_store(name).map_err(|e| js_err("object store", e))
}

/// `db.transaction(stores, mode, {durability: "strict"})`.
fn transaction(db: &IdbDatabase, mode: &str) -> Result<IdbTransaction, String> {
    let stores = Array::of2(&JsValue::from_str(META), &JsValue::from_str(PAGES));
    let opts = Object::new();
    let _ = Reflect::set(&opts, &"durability".into(), &"strict".into());
    let f: js_sys::Function = Reflect::get(db, &"transaction".into())
        .map_err(|e| js_err("transaction", e))?
        .dyn_into()
        .map_err(|_| "IndexedDB: no transaction function".to_string())?;
    f.call3(db, &stores, &JsValue::from_str(mode), &opts)
        .map_err(|e| js_err("transaction", e))?
        .dyn_into()
        .map_err(|_| "IndexedDB: transaction() returned something else".to_string())
}

fn page_key(id: u64, page: u64) -> JsValue {
    Array::of2(&JsValue::from_f64(id as f64), &JsValue::from_f64(page as f64)).into()
}

/// An open IndexedDB database holding one shard.
pub struct IdbBackend {
    db: IdbDatabase,
    name: String,
    storage: MemoryStorage,
    failed: RefCell<Option<String>>,
    /// Testing: abort the next commit's transaction (as a quota error or a crash would).
    #[cfg(feature = "testing")]
    abort_next: std::cell::Cell<bool>,
}

impl IdbBackend {
    /// Open (creating if needed) the database of shard `name` and load its image.
    pub async fn open(name: &str) -> Result<IdbBackend, String> {
        let db_name = format!("qdrant-edge:{name}");
        let req: IdbOpenDbRequest = factory()?.open_with_u32(&db_name, 1).map_err(|e| js_err("open", e))?;
        let upgrade = Closure::<dyn FnMut(JsValue)>::new({
            let req = req.clone();
            move |_: JsValue| {
                if let Ok(db) = req.result().and_then(|r| r.dyn_into::<IdbDatabase>()) {
                    let names = db.object_store_names();
                    if !names.contains(META) {
                        let _ = db.create_object_store(META);
                    }
                    if !names.contains(PAGES) {
                        let _ = db.create_object_store(PAGES);
                    }
                }
            }
        });
        req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let db = JsFuture::from(request_promise(&req)).await.map_err(|e| js_err("open", e))?;
        drop(upgrade);
        let db: IdbDatabase = db.dyn_into().map_err(|_| "IndexedDB open returned no database".to_string())?;
        // Another context deletes or upgrades the database: let it (our later commits fail).
        let d = db.clone();
        let on_change = Closure::once_into_js(move |_: JsValue| d.close());
        db.set_onversionchange(Some(on_change.unchecked_ref()));

        let tx = transaction(&db, "readonly")?;
        let meta = store(&tx, META)?;
        let pages = store(&tx, PAGES)?;
        let image_req = meta.get(&JsValue::from_str(IMAGE_KEY)).map_err(|e| js_err("read", e))?;
        let keys_req = pages.get_all_keys().map_err(|e| js_err("read", e))?;
        let vals_req = pages.get_all().map_err(|e| js_err("read", e))?;
        let image = JsFuture::from(request_promise(&image_req)).await.map_err(|e| js_err("read", e))?;
        let keys: Array = JsFuture::from(request_promise(&keys_req)).await.map_err(|e| js_err("read", e))?.into();
        let vals: Array = JsFuture::from(request_promise(&vals_req)).await.map_err(|e| js_err("read", e))?.into();
        let storage = match image.as_string() {
            None => MemoryStorage::tracking(),
            Some(text) => {
                let image: Image =
                    serde_json::from_str(&text).map_err(|e| format!("IndexedDB image of `{name}` is corrupt: {e}"))?;
                let namespace = image
                    .entries
                    .into_iter()
                    .map(|(p, e)| (p, e.map_or(ImageEntry::Dir, |(id, len)| ImageEntry::File { id, len })))
                    .collect();
                let mut page_list = Vec::with_capacity(keys.length() as usize);
                for (k, v) in keys.iter().zip(vals.iter()) {
                    let k: Array = k.into();
                    let (id, page) = (k.get(0).as_f64().unwrap_or(-1.0), k.get(1).as_f64().unwrap_or(-1.0));
                    if id < 0.0 || page < 0.0 {
                        return Err(format!("IndexedDB `{name}`: malformed page key"));
                    }
                    let bytes =
                        v.dyn_into::<Uint8Array>().map_err(|_| format!("IndexedDB `{name}`: page is not bytes"))?;
                    page_list.push((id as u64, page as u64, bytes.to_vec()));
                }
                MemoryStorage::from_image(namespace, page_list, image.next_id).map_err(|e| e.to_string())?
            }
        };
        Ok(IdbBackend {
            db,
            name: name.to_string(),
            storage,
            failed: RefCell::new(None),
            #[cfg(feature = "testing")]
            abort_next: std::cell::Cell::new(false),
        })
    }

    /// The in-memory storage the engine works on.
    pub fn storage(&self) -> MemoryStorage {
        self.storage.clone()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The error that poisoned the backend, if any.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Write every change since the last commit in one durable transaction.
    pub async fn commit(&self) -> Result<(), String> {
        if let Some(f) = self.failure() {
            return Err(format!("an earlier IndexedDB commit failed, reopen the shard: {f}"));
        }
        let Some(changes) = self.storage.take_changes() else { return Ok(()) };
        let r = self.write(changes).await;
        if let Err(e) = &r {
            *self.failed.borrow_mut() = Some(e.clone());
        }
        r
    }

    async fn write(&self, c: Changes) -> Result<(), String> {
        let tx = transaction(&self.db, "readwrite")?;
        let done = transaction_promise(&tx);
        let meta = store(&tx, META)?;
        let pages = store(&tx, PAGES)?;
        let image = Image {
            next_id: c.next_id,
            entries: c
                .namespace
                .into_iter()
                .map(|(p, e)| {
                    (
                        p,
                        match e {
                            ImageEntry::Dir => None,
                            ImageEntry::File { id, len } => Some((id, len)),
                        },
                    )
                })
                .collect(),
        };
        let text = serde_json::to_string(&image).map_err(|e| e.to_string())?;
        meta.put_with_key(&JsValue::from_str(&text), &JsValue::from_str(IMAGE_KEY)).map_err(|e| js_err("write", e))?;
        for (id, page, bytes) in c.pages {
            match bytes {
                Some(b) => {
                    debug_assert_eq!(b.len() as u64, IMAGE_PAGE);
                    let arr = Uint8Array::from(b.as_slice());
                    pages.put_with_key(&arr, &page_key(id, page)).map_err(|e| js_err("write", e))?;
                }
                None => {
                    pages.delete(&page_key(id, page)).map_err(|e| js_err("write", e))?;
                }
            }
        }
        for id in c.removed_files {
            let range = IdbKeyRange::bound(&page_key(id, 0), &page_key(id, u64::MAX >> 11))
                .map_err(|e| js_err("key range", e))?;
            pages.delete(&range).map_err(|e| js_err("write", e))?;
        }
        #[cfg(feature = "testing")]
        if self.abort_next.replace(false) {
            tx.abort().map_err(|e| js_err("abort", e))?;
        }
        JsFuture::from(done).await.map_err(|e| js_err("commit", e))?;
        Ok(())
    }

    /// Testing: make the next commit fail by aborting its transaction after its writes.
    #[cfg(feature = "testing")]
    pub fn abort_next_commit(&self) {
        self.abort_next.set(true);
    }

    /// Close the connection (the data stays).
    pub fn close(&self) {
        self.db.close();
    }

    /// Delete the database of shard `name` (all its data). Every connection this module
    /// opens closes itself when a delete comes (`versionchange`), so an open shard does not
    /// block it; that shard's next commit then fails.
    pub async fn destroy(name: &str) -> Result<(), String> {
        let req = factory()?.delete_database(&format!("qdrant-edge:{name}")).map_err(|e| js_err("delete", e))?;
        JsFuture::from(request_promise(&req)).await.map_err(|e| js_err("delete", e))?;
        Ok(())
    }
}
