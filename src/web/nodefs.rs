//! The `"fs"` storage for Node: a directory on the real file system, through a host object
//! that does synchronous, positional I/O with `node:fs` (`pkg-template/nodefs.js`,
//! registered with [`set_fs_host`]). Same semantics as the native [`crate::storage::FsStorage`]:
//! `sync` is `fsync`, `sync_dir` fsyncs the directory, renames are atomic, and the same
//! conformance battery runs on both.
//!
//! One writer per shard directory, also across processes: the host's `lock(dir)` (a lock file
//! holding the pid; a crashed holder's lock is taken over).

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{components, Capabilities, DirEntry, EntryKind, OpenMode, Storage, StorageFile, StorageResult};

/// The lock file the host keeps in a shard directory (hidden from listings).
const LOCK_FILE: &str = ".qdrant-edge-wasm.lock";

#[wasm_bindgen]
extern "C" {
    /// The object `createFsHost()` returns (`pkg-template/nodefs.js`).
    #[derive(Clone, Debug)]
    pub type FsHost;
    #[wasm_bindgen(method, catch)]
    fn open(this: &FsHost, path: &str, mode: &str) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &FsHost, fd: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn size(this: &FsHost, fd: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn read(this: &FsHost, fd: f64, buf: &mut [u8], pos: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn write(this: &FsHost, fd: f64, data: &[u8], pos: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn truncate(this: &FsHost, fd: f64, len: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn fsync(this: &FsHost, fd: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn list(this: &FsHost, path: &str) -> Result<Array, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn mkdirp(this: &FsHost, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn rename(this: &FsHost, from: &str, to: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn unlink(this: &FsHost, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn rmrf(this: &FsHost, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn kind(this: &FsHost, path: &str) -> Result<u32, JsValue>;
    #[wasm_bindgen(method, catch, js_name = syncDir)]
    fn sync_dir(this: &FsHost, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn lock(this: &FsHost, dir: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn unlock(this: &FsHost, dir: &str) -> Result<(), JsValue>;
}

thread_local! {
    static HOST: RefCell<Option<FsHost>> = const { RefCell::new(None) };
}

/// Register the file-system host for the `"fs"` storage (the Node entry does, at load).
#[wasm_bindgen(js_name = setFsHost)]
pub fn set_fs_host(host: FsHost) {
    HOST.with(|h| *h.borrow_mut() = Some(host));
}

fn host() -> Result<FsHost, String> {
    HOST.with(|h| h.borrow().clone())
        .ok_or_else(|| "the \"fs\" storage needs Node's file system (use the package's Node entry)".to_string())
}

/// The `code` of a node:fs error as a storage error kind.
fn error(op: &'static str, path: &str, e: JsValue) -> StorageError {
    let code = Reflect::get(&e, &"code".into()).ok().and_then(|c| c.as_string()).unwrap_or_default();
    let message =
        Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()).unwrap_or_else(|| format!("{e:?}"));
    let kind = match code.as_str() {
        "ENOENT" => StorageErrorKind::NotFound,
        "EEXIST" | "ENOTEMPTY" => StorageErrorKind::AlreadyExists,
        "ENOTDIR" => StorageErrorKind::NotADirectory,
        "EISDIR" => StorageErrorKind::IsADirectory,
        "ENOSPC" | "EDQUOT" | "EFBIG" => StorageErrorKind::StorageFull,
        _ => StorageErrorKind::Other,
    };
    StorageError::new(op, path, kind, message)
}

/// Remove the (emptied, unlocked) directory `root` itself.
pub fn remove_root(root: &str) -> Result<(), String> {
    host()?.rmrf(root).map_err(|e| error("remove_dir", root, e).to_string())
}

/// JS values are only touched from the one thread wasm32-unknown-unknown has.
struct SendHost(FsHost);
// SAFETY: wasm32-unknown-unknown is built without threads here; the value never leaves it.
unsafe impl Send for SendHost {}
// SAFETY: as above.
unsafe impl Sync for SendHost {}

/// A directory on Node's file system as a [`Storage`].
#[derive(Clone)]
pub struct NodeFsStorage {
    host: Arc<SendHost>,
    root: String,
}

impl fmt::Debug for NodeFsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeFsStorage({})", self.root)
    }
}

impl NodeFsStorage {
    /// `root` (an absolute directory path, created if missing) as the namespace root.
    pub fn new(root: &str) -> Result<NodeFsStorage, String> {
        let host = host()?;
        let root = root.trim_end_matches('/').to_string();
        let root = if root.is_empty() { "/".to_string() } else { root };
        host.mkdirp(&root).map_err(|e| error("create_dir", &root, e).to_string())?;
        Ok(NodeFsStorage { host: Arc::new(SendHost(host)), root })
    }

    /// Take the directory's writer lock.
    pub fn lock(&self) -> Result<(), String> {
        self.host.0.lock(&self.root).map_err(|e| error("lock", &self.root, e).message)
    }

    pub fn unlock(&self) {
        let _ = self.host.0.unlock(&self.root);
    }

    fn resolve(&self, path: &str) -> StorageResult<String> {
        let mut p = self.root.clone();
        for c in components(path)? {
            if !p.ends_with('/') {
                p.push('/');
            }
            p.push_str(c);
        }
        Ok(p)
    }

    fn kind_of(&self, full: &str, path: &str) -> StorageResult<Option<EntryKind>> {
        match self.host.0.kind(full).map_err(|e| error("stat", path, e))? {
            1 => Ok(Some(EntryKind::File)),
            2 => Ok(Some(EntryKind::Dir)),
            _ => Ok(None),
        }
    }
}

struct NodeFile {
    host: Arc<SendHost>,
    fd: f64,
    path: String,
}

impl fmt::Debug for NodeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeFile({})", self.path)
    }
}

impl Drop for NodeFile {
    fn drop(&mut self) {
        let _ = self.host.0.close(self.fd);
    }
}

impl StorageFile for NodeFile {
    fn len(&self) -> StorageResult<u64> {
        self.host.0.size(self.fd).map(|n| n as u64).map_err(|e| error("len", &self.path, e))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        // bounded pieces: one huge Uint8Array view is fine, but keep each call modest
        let mut done = 0usize;
        for piece in buf.chunks_mut(16 << 20) {
            let n = self
                .host
                .0
                .read(self.fd, piece, (offset + done as u64) as f64)
                .map_err(|e| error("read", &self.path, e))? as usize;
            if n < piece.len() {
                return Err(StorageError::new(
                    "read",
                    &self.path,
                    StorageErrorKind::UnexpectedEof,
                    "read past the end",
                ));
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        let mut done = 0usize;
        for piece in data.chunks(16 << 20) {
            self.host
                .0
                .write(self.fd, piece, (offset + done as u64) as f64)
                .map_err(|e| error("write", &self.path, e))?;
            done += piece.len();
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> StorageResult<()> {
        self.host.0.truncate(self.fd, len as f64).map_err(|e| error("set_len", &self.path, e))
    }

    fn sync(&self) -> StorageResult<()> {
        self.host.0.fsync(self.fd).map_err(|e| error("sync", &self.path, e))
    }
}

impl Storage for NodeFsStorage {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
        let full = self.resolve(path)?;
        let m = match mode {
            OpenMode::Read => "read",
            OpenMode::ReadWrite => "readwrite",
            OpenMode::Create => "create",
            OpenMode::CreateNew => "create_new",
        };
        let fd = self.host.0.open(&full, m).map_err(|e| error("open", path, e))?;
        Ok(Arc::new(NodeFile { host: self.host.clone(), fd, path: path.to_string() }))
    }

    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>> {
        let full = self.resolve(path)?;
        let root = components(path)?.is_empty();
        let arr = self.host.0.list(&full).map_err(|e| error("list", path, e))?;
        let mut out = Vec::with_capacity(arr.length() as usize);
        for item in arr.iter() {
            let pair = Array::from(&item);
            let Some(name) = pair.get(0).as_string() else { continue };
            if root && name == LOCK_FILE {
                continue;
            }
            let kind = if pair.get(1).as_bool() == Some(true) { EntryKind::Dir } else { EntryKind::File };
            out.push(DirEntry { name, kind });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn create_dir_all(&self, path: &str) -> StorageResult<()> {
        let full = self.resolve(path)?;
        self.host.0.mkdirp(&full).map_err(|e| error("create_dir", path, e))
    }

    fn rename(&self, from: &str, to: &str) -> StorageResult<()> {
        let (a, b) = (self.resolve(from)?, self.resolve(to)?);
        let (ka, kb) = (self.kind_of(&a, from)?, self.kind_of(&b, to)?);
        if ka == Some(EntryKind::Dir) && kb.is_some() {
            return Err(StorageError::new("rename", to, StorageErrorKind::AlreadyExists, "target exists"));
        }
        if ka == Some(EntryKind::File) && kb == Some(EntryKind::Dir) {
            return Err(StorageError::new("rename", to, StorageErrorKind::IsADirectory, "target is a directory"));
        }
        self.host.0.rename(&a, &b).map_err(|e| error("rename", from, e))
    }

    fn remove_file(&self, path: &str) -> StorageResult<()> {
        let full = self.resolve(path)?;
        if self.kind_of(&full, path)? == Some(EntryKind::Dir) {
            return Err(StorageError::new("remove_file", path, StorageErrorKind::IsADirectory, "is a directory"));
        }
        self.host.0.unlink(&full).map_err(|e| error("remove_file", path, e))
    }

    fn remove_dir_all(&self, path: &str) -> StorageResult<()> {
        let full = self.resolve(path)?;
        match self.kind_of(&full, path)? {
            Some(EntryKind::File) => {
                return Err(StorageError::new("remove_dir", path, StorageErrorKind::NotADirectory, "is a file"))
            }
            None => return Err(StorageError::new("remove_dir", path, StorageErrorKind::NotFound, "no such directory")),
            Some(EntryKind::Dir) => {}
        }
        if components(path)?.is_empty() {
            // Clear the root's content but keep the root (and its lock).
            for e in self.list_dir("")? {
                match e.kind {
                    EntryKind::Dir => self.remove_dir_all(&e.name)?,
                    EntryKind::File => self.remove_file(&e.name)?,
                }
            }
            return Ok(());
        }
        self.host.0.rmrf(&full).map_err(|e| error("remove_dir", path, e))
    }

    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>> {
        let full = self.resolve(path)?;
        self.kind_of(&full, path)
    }

    fn sync_dir(&self, path: &str) -> StorageResult<()> {
        let full = self.resolve(path)?;
        self.host.0.sync_dir(&full).map_err(|e| error("sync_dir", path, e))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { sparse_files: true, durable_sync: true, persistent: true }
    }
}
