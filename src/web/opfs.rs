//! The OPFS backend: a [`PoolStorage`] whose slot and journal files are OPFS files opened with
//! `FileSystemSyncAccessHandle`s (dedicated Worker only). Everything asynchronous happens here,
//! at open and in [`OpfsBackend::reserve`]; the engine's calls are synchronous.
//!
//! Layout in the origin's OPFS: `qdrant-edge/<name>/journal-0`, `journal-1`, and slot files
//! `s0`, `s1`, … (see [`crate::storage::pool`]). A sync access handle is exclusive, so a second
//! tab (or worker) opening the same shard fails at open with `io` ("open elsewhere"); it never
//! writes.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions, FileSystemGetFileOptions,
    FileSystemReadWriteOptions, FileSystemRemoveOptions, FileSystemSyncAccessHandle, StorageManager,
};

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::pool::{PoolStorage, Slot};
use crate::storage::StorageResult;

const ROOT_DIR: &str = "qdrant-edge";

fn js_msg(e: &JsValue) -> (String, String) {
    let name = Reflect::get(e, &"name".into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
    let msg = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    (name, msg)
}

fn storage_error(op: &'static str, path: &str, e: JsValue) -> StorageError {
    let (name, msg) = js_msg(&e);
    let kind = match name.as_str() {
        "QuotaExceededError" => StorageErrorKind::StorageFull,
        "NotFoundError" => StorageErrorKind::NotFound,
        _ => StorageErrorKind::Other,
    };
    StorageError::new(op, path, kind, format!("OPFS {name}: {msg}"))
}

fn open_error(context: &str, e: JsValue) -> String {
    let (name, msg) = js_msg(&e);
    if name == "NoModificationAllowedError" || name == "InvalidStateError" {
        return format!("OPFS {context}: the shard is open in another tab or worker ({name}: {msg})");
    }
    format!("OPFS {context}: {name}: {msg}")
}

/// One OPFS file behind its sync access handle.
#[derive(Debug)]
struct SahSlot {
    name: String,
    handle: SendSah,
}

/// `FileSystemSyncAccessHandle` is a JS object; wasm32-unknown-unknown (built without the
/// `atomics` feature) runs on one thread, so sharing it across "threads" cannot happen.
#[derive(Debug)]
struct SendSah(FileSystemSyncAccessHandle);
// SAFETY: see the type's docs: no second thread exists on this target.
unsafe impl Send for SendSah {}
// SAFETY: as above.
unsafe impl Sync for SendSah {}

fn at(offset: u64) -> FileSystemReadWriteOptions {
    let o = FileSystemReadWriteOptions::new();
    o.set_at(offset as f64);
    o
}

impl Slot for SahSlot {
    fn len(&self) -> StorageResult<u64> {
        self.handle.0.get_size().map(|n| n as u64).map_err(|e| storage_error("len", &self.name, e))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let n = self
                .handle
                .0
                .read_with_u8_array_and_options(&mut buf[done..], &at(offset + done as u64))
                .map_err(|e| storage_error("read", &self.name, e))? as usize;
            if n == 0 {
                return Err(StorageError::new("read", &self.name, StorageErrorKind::UnexpectedEof, "short read"));
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        let mut done = 0usize;
        while done < data.len() {
            let n = self
                .handle
                .0
                .write_with_u8_array_and_options(&data[done..], &at(offset + done as u64))
                .map_err(|e| storage_error("write", &self.name, e))? as usize;
            if n == 0 {
                return Err(StorageError::new("write", &self.name, StorageErrorKind::StorageFull, "short write"));
            }
            done += n;
        }
        Ok(())
    }

    fn truncate(&self, len: u64) -> StorageResult<()> {
        self.handle.0.truncate_with_f64(len as f64).map_err(|e| storage_error("set_len", &self.name, e))
    }

    fn flush(&self) -> StorageResult<()> {
        self.handle.0.flush().map_err(|e| storage_error("sync", &self.name, e))
    }

    fn close(&self) {
        self.handle.0.close();
    }
}

async fn storage_manager() -> Result<StorageManager, String> {
    let global = js_sys::global();
    let navigator = Reflect::get(&global, &"navigator".into()).map_err(|e| open_error("navigator", e))?;
    let storage = Reflect::get(&navigator, &"storage".into()).map_err(|e| open_error("navigator.storage", e))?;
    storage.dyn_into::<StorageManager>().map_err(|_| "OPFS is not available in this context".to_string())
}

async fn shard_dir(name: &str, create: bool) -> Result<FileSystemDirectoryHandle, String> {
    let root: FileSystemDirectoryHandle = JsFuture::from(storage_manager().await?.get_directory())
        .await
        .map_err(|e| open_error("getDirectory", e))?
        .unchecked_into();
    let opts = FileSystemGetDirectoryOptions::new();
    opts.set_create(create);
    let top: FileSystemDirectoryHandle = JsFuture::from(root.get_directory_handle_with_options(ROOT_DIR, &opts))
        .await
        .map_err(|e| open_error("directory", e))?
        .unchecked_into();
    Ok(JsFuture::from(top.get_directory_handle_with_options(name, &opts))
        .await
        .map_err(|e| open_error(&format!("shard `{name}`"), e))?
        .unchecked_into())
}

async fn open_slot(dir: &FileSystemDirectoryHandle, file: &str, create: bool) -> Result<Box<dyn Slot>, String> {
    let opts = FileSystemGetFileOptions::new();
    opts.set_create(create);
    let fh: FileSystemFileHandle = JsFuture::from(dir.get_file_handle_with_options(file, &opts))
        .await
        .map_err(|e| open_error(file, e))?
        .unchecked_into();
    // createSyncAccessHandle exists only in dedicated workers
    if !Reflect::has(&fh, &"createSyncAccessHandle".into()).unwrap_or(false) {
        return Err("OPFS sync access handles exist only in a dedicated Worker".to_string());
    }
    let sah: FileSystemSyncAccessHandle =
        JsFuture::from(fh.create_sync_access_handle()).await.map_err(|e| open_error(file, e))?.unchecked_into();
    Ok(Box::new(SahSlot { name: file.to_string(), handle: SendSah(sah) }))
}

/// Does `dir` hold an entry `name`?
async fn has_file(dir: &FileSystemDirectoryHandle, name: &str) -> bool {
    let opts = FileSystemGetFileOptions::new();
    opts.set_create(false);
    JsFuture::from(dir.get_file_handle_with_options(name, &opts)).await.is_ok()
}

/// An open OPFS shard directory (clones share the handles).
#[derive(Clone)]
pub struct OpfsBackend {
    dir: FileSystemDirectoryHandle,
    storage: PoolStorage,
}

/// Spare slots kept before ordinary calls and before calls that write many files.
pub const SPARES_SMALL: usize = 64;

impl OpfsBackend {
    /// Open (creating if needed) the OPFS directory of shard `name` and acquire its handles.
    pub async fn open(name: &str) -> Result<OpfsBackend, String> {
        let dir = shard_dir(name, true).await?;
        let journals = [open_slot(&dir, "journal-0", true).await?, open_slot(&dir, "journal-1", true).await?];
        let mut slots = Vec::new();
        while has_file(&dir, &format!("s{}", slots.len())).await {
            slots.push(open_slot(&dir, &format!("s{}", slots.len()), false).await?);
        }
        let storage = PoolStorage::open(journals, slots).map_err(|e| e.to_string())?;
        let this = OpfsBackend { dir, storage };
        this.reserve(SPARES_SMALL).await?;
        Ok(this)
    }

    pub fn storage(&self) -> PoolStorage {
        self.storage.clone()
    }

    /// Make sure at least `spares` unused slot files exist (call before a synchronous call
    /// that may create files: an optimize or a snapshot apply needs many).
    pub async fn reserve(&self, spares: usize) -> Result<(), String> {
        let have = self.storage.free_slots();
        if have >= spares {
            return Ok(());
        }
        let start = self.storage.slot_count();
        let mut more = Vec::new();
        for i in start..start + (spares - have) {
            more.push(open_slot(&self.dir, &format!("s{i}"), true).await?);
        }
        self.storage.add_slots(more);
        Ok(())
    }

    /// Delete shard `name`'s OPFS directory (it must not be open).
    pub async fn destroy(name: &str) -> Result<(), String> {
        let root: FileSystemDirectoryHandle = JsFuture::from(storage_manager().await?.get_directory())
            .await
            .map_err(|e| open_error("getDirectory", e))?
            .unchecked_into();
        let opts = FileSystemGetDirectoryOptions::new();
        opts.set_create(true);
        let top: FileSystemDirectoryHandle = JsFuture::from(root.get_directory_handle_with_options(ROOT_DIR, &opts))
            .await
            .map_err(|e| open_error("directory", e))?
            .unchecked_into();
        let rm = FileSystemRemoveOptions::new();
        rm.set_recursive(true);
        match JsFuture::from(top.remove_entry_with_options(name, &rm)).await {
            Ok(_) => Ok(()),
            Err(e) if js_msg(&e).0 == "NotFoundError" => Ok(()),
            Err(e) => Err(open_error(&format!("remove `{name}`"), e)),
        }
    }

    /// Close every handle (the files stay); later calls on the storage fail.
    pub fn close(&self) {
        self.storage.close_slots();
    }
}
