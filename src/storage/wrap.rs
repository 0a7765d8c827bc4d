//! Wrappers around any [`Storage`]: read-only access and fault injection.
//!
//! [`FaultStorage`] counts mutating operations (writes, `set_len`, syncs, creations, renames,
//! removals) and fails the Nth one, optionally tearing that write (only a prefix lands). After
//! the first injected failure every later operation fails with `PreviousIo`, as a real backend
//! that lost its device would behave; tests then reopen the inner storage as the "restarted"
//! machine.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{Capabilities, DirEntry, EntryKind, OpenMode, Storage, StorageFile, StorageResult};
use crate::error::{StorageError, StorageErrorKind};

/// Refuses every mutation.
#[derive(Debug, Clone)]
pub struct ReadOnlyStorage<S>(pub S);

fn read_only(op: &'static str, path: &str) -> StorageError {
    StorageError::new(op, path, StorageErrorKind::Unsupported, "storage is read-only")
}

#[derive(Debug)]
struct ReadOnlyFile(Arc<dyn StorageFile>, String);

impl StorageFile for ReadOnlyFile {
    fn len(&self) -> StorageResult<u64> {
        self.0.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        self.0.read_at(offset, buf)
    }
    fn write_at(&self, _: u64, _: &[u8]) -> StorageResult<()> {
        Err(read_only("write", &self.1))
    }
    fn set_len(&self, _: u64) -> StorageResult<()> {
        Err(read_only("set_len", &self.1))
    }
    fn sync(&self) -> StorageResult<()> {
        Ok(())
    }
}

impl<S: Storage> Storage for ReadOnlyStorage<S> {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
        if mode != OpenMode::Read {
            return Err(read_only("open", path));
        }
        Ok(Arc::new(ReadOnlyFile(self.0.open(path, mode)?, path.to_string())))
    }
    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>> {
        self.0.list_dir(path)
    }
    fn create_dir_all(&self, path: &str) -> StorageResult<()> {
        Err(read_only("create_dir", path))
    }
    fn rename(&self, from: &str, _: &str) -> StorageResult<()> {
        Err(read_only("rename", from))
    }
    fn remove_file(&self, path: &str) -> StorageResult<()> {
        Err(read_only("remove_file", path))
    }
    fn remove_dir_all(&self, path: &str) -> StorageResult<()> {
        Err(read_only("remove_dir", path))
    }
    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>> {
        self.0.entry_kind(path)
    }
    fn sync_dir(&self, _: &str) -> StorageResult<()> {
        Ok(())
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

#[derive(Debug)]
struct FaultState {
    /// Mutating operations seen so far.
    ops: AtomicU64,
    /// Fail the operation with this 0-based index (u64::MAX = never).
    fail_at: AtomicU64,
    /// Tear the failing write: write the first half of the data before failing.
    tear: AtomicBool,
    failed: AtomicBool,
}

/// Fault-injecting wrapper: fails the Nth mutating operation, then every later call.
#[derive(Clone)]
pub struct FaultStorage<S> {
    inner: S,
    state: Arc<FaultState>,
}

impl<S> fmt::Debug for FaultStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStorage(ops {})", self.state.ops.load(Ordering::SeqCst))
    }
}

impl<S: Storage> FaultStorage<S> {
    pub fn new(inner: S) -> Self {
        FaultStorage {
            inner,
            state: Arc::new(FaultState {
                ops: AtomicU64::new(0),
                fail_at: AtomicU64::new(u64::MAX),
                tear: AtomicBool::new(false),
                failed: AtomicBool::new(false),
            }),
        }
    }
    /// Fail the mutating operation with 0-based index `n`; `tear` writes half of a failing write.
    pub fn fail_at(&self, n: u64, tear: bool) {
        self.state.fail_at.store(n, Ordering::SeqCst);
        self.state.tear.store(tear, Ordering::SeqCst);
    }
    pub fn ops(&self) -> u64 {
        self.state.ops.load(Ordering::SeqCst)
    }
    pub fn has_failed(&self) -> bool {
        self.state.failed.load(Ordering::SeqCst)
    }
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl FaultState {
    fn check_alive(&self, op: &'static str, path: &str) -> StorageResult<()> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(StorageError::new(op, path, StorageErrorKind::PreviousIo, "an earlier operation failed"));
        }
        Ok(())
    }
    /// Count a mutating op; `Err` if this is the one to fail.
    fn step(&self, op: &'static str, path: &str) -> StorageResult<bool> {
        self.check_alive(op, path)?;
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if n == self.fail_at.load(Ordering::SeqCst) {
            self.failed.store(true, Ordering::SeqCst);
            return Ok(true);
        }
        Ok(false)
    }
}

fn injected(op: &'static str, path: &str) -> StorageError {
    StorageError::new(op, path, StorageErrorKind::StorageFull, "injected fault")
}

#[derive(Debug)]
struct FaultFile {
    inner: Arc<dyn StorageFile>,
    state: Arc<FaultState>,
    path: String,
}

impl StorageFile for FaultFile {
    fn len(&self) -> StorageResult<u64> {
        self.state.check_alive("len", &self.path)?;
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        self.state.check_alive("read", &self.path)?;
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        if self.state.step("write", &self.path)? {
            if self.state.tear.load(Ordering::SeqCst) && data.len() > 1 {
                let _ = self.inner.write_at(offset, &data[..data.len() / 2]);
            }
            return Err(injected("write", &self.path));
        }
        self.inner.write_at(offset, data)
    }
    fn set_len(&self, len: u64) -> StorageResult<()> {
        if self.state.step("set_len", &self.path)? {
            return Err(injected("set_len", &self.path));
        }
        self.inner.set_len(len)
    }
    fn sync(&self) -> StorageResult<()> {
        if self.state.step("sync", &self.path)? {
            return Err(injected("sync", &self.path));
        }
        self.inner.sync()
    }
}

impl<S: Storage> Storage for FaultStorage<S> {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
        if mode == OpenMode::Read {
            self.state.check_alive("open", path)?;
        } else if self.state.step("open", path)? {
            return Err(injected("open", path));
        }
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(FaultFile { inner, state: self.state.clone(), path: path.to_string() }))
    }
    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>> {
        self.state.check_alive("list", path)?;
        self.inner.list_dir(path)
    }
    fn create_dir_all(&self, path: &str) -> StorageResult<()> {
        if self.state.step("create_dir", path)? {
            return Err(injected("create_dir", path));
        }
        self.inner.create_dir_all(path)
    }
    fn rename(&self, from: &str, to: &str) -> StorageResult<()> {
        if self.state.step("rename", from)? {
            return Err(injected("rename", from));
        }
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &str) -> StorageResult<()> {
        if self.state.step("remove_file", path)? {
            return Err(injected("remove_file", path));
        }
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &str) -> StorageResult<()> {
        if self.state.step("remove_dir", path)? {
            return Err(injected("remove_dir", path));
        }
        self.inner.remove_dir_all(path)
    }
    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>> {
        self.state.check_alive("stat", path)?;
        self.inner.entry_kind(path)
    }
    fn sync_dir(&self, path: &str) -> StorageResult<()> {
        if self.state.step("sync_dir", path)? {
            return Err(injected("sync_dir", path));
        }
        self.inner.sync_dir(path)
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
