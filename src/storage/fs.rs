//! `std::fs` backend: the same code natively and under WASI (`wasm32-wasip1`, `wasm32-wasip2`).
//!
//! Positional I/O uses `pread`/`pwrite` on unix. WASI's positional `FileExt` is not stable in
//! std, so there (and on other targets) a file handle keeps a mutex around seek+read/write.
//! `set_len` uses `ftruncate`, which leaves holes on file systems that support them.
//! `sync` is `fsync` (`File::sync_all`); `sync_dir` fsyncs the directory where the platform
//! allows opening one (unix); elsewhere it is a no-op.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{components, Capabilities, DirEntry, EntryKind, OpenMode, Storage, StorageFile, StorageResult};
use crate::error::{StorageError, StorageErrorKind};

/// Largest single read or write handed to the OS on the seek-based (WASI) path.
#[cfg(not(unix))]
const IO_CHUNK: usize = 4 << 20;

/// A directory on a real file system used as the storage root.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Use `root` (created if missing) as the namespace root.
    pub fn new(root: impl AsRef<Path>) -> StorageResult<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(|e| StorageError::from_io("create_dir", root.display().to_string(), &e))?;
        Ok(FsStorage { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> StorageResult<PathBuf> {
        let mut p = self.root.clone();
        for c in components(path)? {
            p.push(c);
        }
        Ok(p)
    }
}

#[derive(Debug)]
struct FsFile {
    #[cfg(unix)]
    file: File,
    #[cfg(not(unix))]
    file: parking_lot::Mutex<File>,
    path: String,
}

impl FsFile {
    fn io(&self, op: &'static str, e: std::io::Error) -> StorageError {
        StorageError::from_io(op, &self.path, &e)
    }
}

impl StorageFile for FsFile {
    fn len(&self) -> StorageResult<u64> {
        #[cfg(unix)]
        let m = self.file.metadata();
        #[cfg(not(unix))]
        let m = self.file.lock().metadata();
        m.map(|m| m.len()).map_err(|e| self.io("len", e))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.read_exact_at(buf, offset).map_err(|e| self.io("read", e))
        }
        #[cfg(not(unix))]
        {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = self.file.lock();
            f.seek(SeekFrom::Start(offset)).map_err(|e| self.io("read", e))?;
            // WASI hosts may refuse one huge read ("Out of memory"): read in bounded pieces.
            for piece in buf.chunks_mut(IO_CHUNK) {
                f.read_exact(piece).map_err(|e| self.io("read", e))?;
            }
            Ok(())
        }
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.write_all_at(data, offset).map_err(|e| self.io("write", e))
        }
        #[cfg(not(unix))]
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = self.file.lock();
            f.seek(SeekFrom::Start(offset)).map_err(|e| self.io("write", e))?;
            for piece in data.chunks(IO_CHUNK) {
                f.write_all(piece).map_err(|e| self.io("write", e))?;
            }
            Ok(())
        }
    }

    fn set_len(&self, len: u64) -> StorageResult<()> {
        #[cfg(unix)]
        let r = self.file.set_len(len);
        #[cfg(not(unix))]
        let r = self.file.lock().set_len(len);
        r.map_err(|e| self.io("set_len", e))
    }

    fn sync(&self) -> StorageResult<()> {
        #[cfg(unix)]
        let r = self.file.sync_all();
        #[cfg(not(unix))]
        let r = self.file.lock().sync_all();
        r.map_err(|e| self.io("sync", e))
    }
}

impl Storage for FsStorage {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
        let p = self.resolve(path)?;
        let mut o = OpenOptions::new();
        o.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                o.write(true);
            }
            OpenMode::Create => {
                o.write(true).create(true);
            }
            OpenMode::CreateNew => {
                o.write(true).create_new(true);
            }
        }
        let file = o.open(&p).map_err(|e| StorageError::from_io("open", path, &e))?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(StorageError::new("open", path, StorageErrorKind::IsADirectory, "is a directory"));
        }
        #[cfg(not(unix))]
        let file = parking_lot::Mutex::new(file);
        Ok(Arc::new(FsFile { file, path: path.to_string() }))
    }

    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>> {
        let p = self.resolve(path)?;
        let rd = fs::read_dir(&p).map_err(|e| StorageError::from_io("list", path, &e))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| StorageError::from_io("list", path, &e))?;
            let ft = e.file_type().map_err(|e| StorageError::from_io("list", path, &e))?;
            let kind = if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                EntryKind::File
            } else {
                continue; // symlinks and specials are not part of a shard
            };
            let Ok(name) = e.file_name().into_string() else { continue };
            out.push(DirEntry { name, kind });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn create_dir_all(&self, path: &str) -> StorageResult<()> {
        let p = self.resolve(path)?;
        fs::create_dir_all(&p).map_err(|e| StorageError::from_io("create_dir", path, &e))
    }

    fn rename(&self, from: &str, to: &str) -> StorageResult<()> {
        let (a, b) = (self.resolve(from)?, self.resolve(to)?);
        if a.is_dir() && b.exists() {
            return Err(StorageError::new("rename", to, StorageErrorKind::AlreadyExists, "target exists"));
        }
        if a.is_file() && b.is_dir() {
            return Err(StorageError::new("rename", to, StorageErrorKind::IsADirectory, "target is a directory"));
        }
        fs::rename(&a, &b).map_err(|e| StorageError::from_io("rename", from, &e))
    }

    fn remove_file(&self, path: &str) -> StorageResult<()> {
        let p = self.resolve(path)?;
        if p.is_dir() {
            return Err(StorageError::new("remove_file", path, StorageErrorKind::IsADirectory, "is a directory"));
        }
        fs::remove_file(&p).map_err(|e| StorageError::from_io("remove_file", path, &e))
    }

    fn remove_dir_all(&self, path: &str) -> StorageResult<()> {
        let p = self.resolve(path)?;
        if p.is_file() {
            return Err(StorageError::new("remove_dir", path, StorageErrorKind::NotADirectory, "is a file"));
        }
        if components(path)?.is_empty() {
            // Clear the root's content but keep the root itself.
            for e in self.list_dir("")? {
                match e.kind {
                    EntryKind::Dir => self.remove_dir_all(&e.name)?,
                    EntryKind::File => self.remove_file(&e.name)?,
                }
            }
            return Ok(());
        }
        fs::remove_dir_all(&p).map_err(|e| StorageError::from_io("remove_dir", path, &e))
    }

    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>> {
        let p = self.resolve(path)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(m) if m.is_file() => Ok(Some(EntryKind::File)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::from_io("stat", path, &e)),
        }
    }

    fn sync_dir(&self, path: &str) -> StorageResult<()> {
        let p = self.resolve(path)?;
        #[cfg(unix)]
        {
            let d = File::open(&p).map_err(|e| StorageError::from_io("sync_dir", path, &e))?;
            d.sync_all().map_err(|e| StorageError::from_io("sync_dir", path, &e))?;
        }
        #[cfg(not(unix))]
        let _ = p;
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { sparse_files: true, durable_sync: cfg!(unix), persistent: true }
    }
}
