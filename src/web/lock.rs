//! One writer per shard across tabs and workers: an exclusive Web Lock named
//! `qdrant-edge:<storage>:<name>`, requested with `ifAvailable` at open and held until the
//! shard is closed (or its worker ends). A second opener gets a clear error at once instead of
//! two copies writing over each other. Where the Web Locks API does not exist (Node), nothing
//! is locked: there, a process owns its shards.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A held lock; [`ShardLock::release`] (or the end of the worker) lets it go.
pub struct ShardLock {
    release: Function,
    /// Settles once the lock manager has really let the lock go.
    done: Promise,
}

impl ShardLock {
    /// Let the lock go and wait until another opener can take it.
    pub async fn release(&self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
        let _ = JsFuture::from(self.done.clone()).await;
    }
}

/// Take the lock of shard `name` on `storage`, or fail if another context holds it.
/// `Ok(None)`: this context has no Web Locks API.
pub async fn acquire(storage: &str, name: &str) -> Result<Option<ShardLock>, String> {
    let global = js_sys::global();
    let navigator = Reflect::get(&global, &"navigator".into()).unwrap_or(JsValue::UNDEFINED);
    if navigator.is_undefined() {
        return Ok(None);
    }
    let locks = Reflect::get(&navigator, &"locks".into()).unwrap_or(JsValue::UNDEFINED);
    if locks.is_undefined() || locks.is_null() {
        return Ok(None);
    }
    let request: Function = Reflect::get(&locks, &"request".into())
        .map_err(|_| "navigator.locks.request is missing".to_string())?
        .dyn_into()
        .map_err(|_| "navigator.locks.request is not a function".to_string())?;
    // `held` stays pending until release: the lock lives as long as it does.
    let mut release: Option<Function> = None;
    let held = Promise::new(&mut |resolve, _reject| release = Some(resolve));
    let release = release.ok_or("could not create the lock's promise")?;
    let mut granted_resolve: Option<Function> = None;
    let granted = Promise::new(&mut |resolve, _reject| granted_resolve = Some(resolve));
    let granted_resolve = granted_resolve.ok_or("could not create the lock's promise")?;
    let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
        let got = !lock.is_null() && !lock.is_undefined();
        let _ = granted_resolve.call1(&JsValue::UNDEFINED, &JsValue::from_bool(got));
        if got {
            held.into()
        } else {
            JsValue::UNDEFINED
        }
    });
    let options = Object::new();
    let _ = Reflect::set(&options, &"mode".into(), &"exclusive".into());
    let _ = Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE);
    let lock_name = format!("qdrant-edge:{storage}:{name}");
    let done: Promise = request
        .call3(&locks, &JsValue::from_str(&lock_name), &options, &callback)
        .map_err(|e| format!("Web Locks request failed: {e:?}"))?
        .dyn_into()
        .map_err(|_| "navigator.locks.request returned no promise".to_string())?;
    let got = JsFuture::from(granted).await.map_err(|e| format!("Web Locks request failed: {e:?}"))?;
    if got.as_bool() == Some(true) {
        Ok(Some(ShardLock { release, done }))
    } else {
        Err(format!("shard `{name}` ({storage}) is open in another tab or worker"))
    }
}
