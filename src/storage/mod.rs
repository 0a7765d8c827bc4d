//! The storage-backend trait that replaces mmap.
//!
//! A backend is a namespace of files and directories addressed by relative, `/`-separated
//! paths (`segments/<uuid>/segment.json`). It is **synchronous and positional**: every read
//! and write names its offset, so no cursor state is shared and the same calls map onto
//! `pread`/`pwrite` (native, WASI), `FileSystemSyncAccessHandle.read/write({at})` (OPFS, in a
//! dedicated Worker) and a page map (memory, IndexedDB). Anything asynchronous (acquiring
//! OPFS handles, loading IndexedDB pages, committing them) happens at open and at the commit
//! edge of a backend, never inside these calls.
//!
//! Contract (checked for every backend by [`conformance`]):
//! * `read_at` reads exactly `buf.len()` bytes or fails with `UnexpectedEof`; it never returns
//!   a short read.
//! * `write_at` past the end extends the file; the gap reads back as zeros.
//! * `set_len` grows (new bytes read as zeros, and backends that can keep holes do not store
//!   them: Qdrant preallocates 32 MiB chunk files that are mostly empty) or truncates.
//! * Writes are visible to every handle of the same file at once. They are durable only after
//!   `sync` on the file (and `sync_dir` on its directory for creations and renames), to the degree
//!   [`Capabilities::durable_sync`] promises.
//! * `rename` is atomic: a reader sees the old or the new entry, never neither. Renaming a file
//!   over an existing file replaces it; renaming a directory requires the target to be absent.
//!
//! Readers get [`FileSlice`]s: a shared handle plus a byte range. Slicing is free and nothing is
//! read until [`FileSlice::read_bytes`], so a page cache or a pinned copy can sit behind them
//! (see [`Memory`]).

mod memory;
pub use memory::{Changes, ImageEntry, MemoryStorage, IMAGE_PAGE};

#[cfg(feature = "fs")]
mod fs;
#[cfg(feature = "fs")]
pub use fs::FsStorage;

pub mod pool;
pub mod wrap;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;

pub use crate::error::{StorageError, StorageErrorKind};

pub type StorageResult<T> = Result<T, StorageError>;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Existing file, reads only.
    Read,
    /// Existing file, reads and writes.
    ReadWrite,
    /// Create if missing, reads and writes (existing content kept).
    Create,
    /// Create, failing with `AlreadyExists` if present.
    CreateNew,
}

impl OpenMode {
    pub fn writable(self) -> bool {
        !matches!(self, OpenMode::Read)
    }
}

/// One open file.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + Debug {
    /// Current length in bytes.
    fn len(&self) -> StorageResult<u64>;
    /// Fill `buf` from `offset`; a read that would pass the end fails with `UnexpectedEof`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()>;
    /// Write `data` at `offset`, extending the file if needed (a gap reads as zeros).
    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()>;
    /// Grow (zero-filled, sparse where possible) or truncate.
    fn set_len(&self, len: u64) -> StorageResult<()>;
    /// Make the file's content durable (as far as the backend can).
    fn sync(&self) -> StorageResult<()>;
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
}

/// What a backend promises. Reported in the README's backend table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Grown or preallocated regions cost no stored bytes.
    pub sparse_files: bool,
    /// `sync` puts data on persistent media (survives a process or power loss).
    pub durable_sync: bool,
    /// Data survives the end of the process at all.
    pub persistent: bool,
}

/// A namespace of files and directories.
pub trait Storage: Send + Sync + Debug {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>>;
    /// Entries of a directory, sorted by name.
    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>>;
    fn create_dir_all(&self, path: &str) -> StorageResult<()>;
    /// Atomic rename (see the module docs for replacement rules).
    fn rename(&self, from: &str, to: &str) -> StorageResult<()>;
    fn remove_file(&self, path: &str) -> StorageResult<()>;
    fn remove_dir_all(&self, path: &str) -> StorageResult<()>;
    /// `None` if nothing exists at `path`.
    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>>;
    /// Make creations, removals and renames inside `path` durable.
    fn sync_dir(&self, path: &str) -> StorageResult<()>;
    fn capabilities(&self) -> Capabilities;

    // ---- provided helpers -------------------------------------------------------------

    fn exists(&self, path: &str) -> StorageResult<bool> {
        Ok(self.entry_kind(path)?.is_some())
    }
    fn is_file(&self, path: &str) -> StorageResult<bool> {
        Ok(self.entry_kind(path)? == Some(EntryKind::File))
    }
    fn is_dir(&self, path: &str) -> StorageResult<bool> {
        Ok(self.entry_kind(path)? == Some(EntryKind::Dir))
    }
    /// Read a whole file.
    fn read_all(&self, path: &str) -> StorageResult<Bytes> {
        FileSlice::open(self, path)?.read_bytes()
    }
    /// Open a file for reading as a lazy slice.
    fn open_slice(&self, path: &str) -> StorageResult<FileSlice> {
        FileSlice::open(self, path)
    }
    /// Replace a file atomically: write `path.tmp`, sync, rename over `path`, sync the dir.
    fn write_atomic(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        let tmp = format!("{path}.tmp");
        {
            let f = self.open(&tmp, OpenMode::Create)?;
            f.set_len(0)?;
            f.write_at(0, data)?;
            f.sync()?;
        }
        self.rename(&tmp, path)?;
        self.sync_dir(parent(path))
    }
}

/// Create or replace the file at `path` with exactly `data`, then sync it (not atomic: for
/// files of a segment that becomes visible only later, e.g. through its `version.info`).
pub fn write_file<S: Storage + ?Sized>(st: &S, path: &str, data: &[u8]) -> StorageResult<()> {
    let f = st.open(path, OpenMode::Create)?;
    f.set_len(0)?;
    f.write_at(0, data)?;
    f.sync()
}

/// Parent directory of a relative path (`""` for top level).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Join two relative paths.
pub fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else if b.is_empty() {
        a.to_string()
    } else {
        format!("{}/{}", a.trim_end_matches('/'), b)
    }
}

/// Split and validate a relative path: no empty, `.` or `..` components, no absolute paths,
/// no backslashes or NULs. Backends call this on every path they are given.
pub fn components(path: &str) -> StorageResult<Vec<&str>> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |why: &str| StorageError::new("path", path, StorageErrorKind::InvalidPath, why);
    if path.starts_with('/') {
        return Err(bad("absolute path"));
    }
    let mut out = Vec::new();
    for c in path.trim_end_matches('/').split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(bad("empty, `.` or `..` component"));
        }
        if c.contains('\\') || c.contains('\0') {
            return Err(bad("backslash or NUL in path"));
        }
        out.push(c);
    }
    Ok(out)
}

/// A shared file handle plus a byte range: a lazy view. Cloning and slicing are free.
#[derive(Clone, Debug)]
pub struct FileSlice {
    file: Arc<dyn StorageFile>,
    path: Arc<str>,
    start: u64,
    len: u64,
}

impl FileSlice {
    pub fn open<S: Storage + ?Sized>(storage: &S, path: &str) -> StorageResult<FileSlice> {
        let file = storage.open(path, OpenMode::Read)?;
        Self::new(file, path)
    }

    pub fn new(file: Arc<dyn StorageFile>, path: &str) -> StorageResult<FileSlice> {
        let len = file.len()?;
        Ok(FileSlice { file, path: path.into(), start: 0, len })
    }

    /// An empty slice (for absent optional files).
    pub fn empty(path: &str) -> FileSlice {
        #[derive(Debug)]
        struct Empty;
        impl StorageFile for Empty {
            fn len(&self) -> StorageResult<u64> {
                Ok(0)
            }
            fn read_at(&self, _: u64, buf: &mut [u8]) -> StorageResult<()> {
                if buf.is_empty() {
                    Ok(())
                } else {
                    Err(StorageError::new("read", "", StorageErrorKind::UnexpectedEof, "empty file"))
                }
            }
            fn write_at(&self, _: u64, _: &[u8]) -> StorageResult<()> {
                Err(StorageError::new("write", "", StorageErrorKind::Unsupported, "read-only"))
            }
            fn set_len(&self, _: u64) -> StorageResult<()> {
                Err(StorageError::new("set_len", "", StorageErrorKind::Unsupported, "read-only"))
            }
            fn sync(&self) -> StorageResult<()> {
                Ok(())
            }
        }
        FileSlice { file: Arc::new(Empty), path: path.into(), start: 0, len: 0 }
    }

    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A sub-range, clamped to this slice.
    pub fn slice(&self, offset: u64, len: u64) -> FileSlice {
        let offset = offset.min(self.len);
        let len = len.min(self.len - offset);
        FileSlice { file: self.file.clone(), path: self.path.clone(), start: self.start + offset, len }
    }

    /// Read `buf.len()` bytes at `offset` within the slice.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(StorageError::new(
                "read",
                &*self.path,
                StorageErrorKind::UnexpectedEof,
                format!("read of {} bytes at {offset} past the end ({})", buf.len(), self.len),
            ));
        }
        self.file.read_at(self.start + offset, buf)
    }

    /// Read the whole slice.
    pub fn read_bytes(&self) -> StorageResult<Bytes> {
        let len = usize::try_from(self.len).map_err(|_| {
            StorageError::new("read", &*self.path, StorageErrorKind::Unsupported, "file larger than the address space")
        })?;
        let mut v = zeroed_buffer(len);
        self.read_at(0, &mut v)?;
        Ok(Bytes::from(v))
    }

    /// [`read_range`](Self::read_range) into memory whose first byte is aligned to `align`
    /// (a power of two) in the address space (the buffer is `align - 1` bytes longer).
    pub fn read_range_aligned(&self, offset: u64, len: u64, align: usize) -> StorageResult<Bytes> {
        debug_assert!(align.is_power_of_two());
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mut v = zeroed_buffer(len.saturating_add(align - 1));
        let pad = v.as_ptr().align_offset(align).min(align - 1);
        self.read_at(offset, &mut v[pad..pad + len])?;
        Ok(Bytes::from(v).slice(pad..pad + len))
    }

    /// Read a sub-range.
    pub fn read_range(&self, offset: u64, len: u64) -> StorageResult<Bytes> {
        self.read_range_aligned(offset, len, 1)
    }
}

/// A zeroed buffer of `len` bytes to read a component into. On native Linux a buffer of
/// [`HUGE_BUFFER`] bytes or more is advised to the kernel as wanting transparent huge pages
/// before any of it is touched, so the pages it faults in while the read fills it can be 2 MiB
/// ones. Pinned vector matrices and graph links are read this way and then accessed at random
/// rows: with 4 KiB pages nearly every row of a 100 000 × 384 f32 matrix (150 MiB) costs a TLB
/// miss. Qdrant reaches the same files through `mmap` of the page cache, which the kernel maps
/// with huge pages where its page cache holds large folios; under the common THP setting
/// `madvise`, anonymous memory gets them only when asked. Measured on the real-embedding
/// benchmark's ef 128 queries (BENCHMARKS.md): p50 0.65-0.68 ms without, 0.57-0.63 with.
/// Elsewhere (wasm, other systems) this is a plain zeroed `Vec`.
pub(crate) fn zeroed_buffer(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    if len >= HUGE_BUFFER {
        advise_huge_pages(&mut v);
    }
    v
}

/// The smallest buffer [`zeroed_buffer`] asks huge pages for: two 2 MiB pages.
const HUGE_BUFFER: usize = 4 << 20;

#[cfg(all(target_os = "linux", not(target_arch = "wasm32")))]
fn advise_huge_pages(v: &mut [u8]) {
    const HUGE: usize = 2 << 20;
    let start = v.as_mut_ptr() as usize;
    let first = start.next_multiple_of(HUGE);
    let end = (start + v.len()) / HUGE * HUGE;
    if end > first {
        // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE is advice only: it
        // changes neither the contents nor the validity of the mapping. Failure (no THP in
        // this kernel, or THP disabled) leaves the buffer as it was, so it is ignored.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(all(target_os = "linux", not(target_arch = "wasm32"))))]
fn advise_huge_pages(_: &mut [u8]) {}

/// Qdrant Edge's memory placement setting (`"cold"`, `"cached"`, `"pinned"`).
///
/// It is a placement hint and never changes file formats. Here it decides how a component's
/// [`FileSlice`]s are served:
/// * `Pinned`: the component is read whole at load and served from RAM (Qdrant's default for
///   id trackers and `InRam*` storages).
/// * `Cached`: reads go through the backend and the segment keeps the decoded pages it touched.
/// * `Cold`: every access reads through the backend; nothing is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Memory {
    Cold,
    Cached,
    #[default]
    Pinned,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_reads_start_on_the_boundary_with_the_right_bytes() {
        let st = MemoryStorage::new();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        st.write_atomic("f", &data).unwrap();
        let slice = st.open_slice("f").unwrap();
        for (offset, len, align) in [(4u64, 9_000u64, 64usize), (0, 0, 64), (1, 1, 4096), (3, 9_997, 8)] {
            let b = slice.read_range_aligned(offset, len, align).unwrap();
            assert_eq!(&b[..], &data[offset as usize..(offset + len) as usize]);
            if len > 0 {
                assert_eq!(b.as_ptr() as usize % align, 0, "offset {offset} align {align}");
            }
        }
        assert!(slice.read_range_aligned(5_000, 6_000, 64).is_err(), "a read past the end");
    }

    #[test]
    fn zeroed_buffers_are_zero_filled_at_every_size() {
        for len in [0, 1, 4095, HUGE_BUFFER - 1, HUGE_BUFFER, HUGE_BUFFER + (3 << 20) + 17] {
            let v = zeroed_buffer(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&b| b == 0), "{len}");
        }
    }

    /// The VmFlags of the mapping of this process that holds `addr` (Linux `/proc/self/smaps`).
    #[cfg(all(target_os = "linux", not(target_arch = "wasm32")))]
    fn vm_flags_at(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return Some(flags.trim().to_string());
                }
            }
        }
        None
    }

    #[cfg(all(target_os = "linux", not(target_arch = "wasm32")))]
    #[test]
    fn large_buffers_are_advised_huge_pages_where_the_kernel_has_them() {
        // A kernel built without transparent huge pages has no such directory and refuses the
        // advice; then only the contents can be checked (above).
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").is_dir() {
            return;
        }
        let big = zeroed_buffer(HUGE_BUFFER + (5 << 20));
        let inner = (big.as_ptr() as usize).next_multiple_of(2 << 20);
        let flags = vm_flags_at(inner).expect("the buffer's mapping in /proc/self/smaps");
        assert!(flags.split(' ').any(|f| f == "hg"), "no MADV_HUGEPAGE on the large buffer: VmFlags {flags}");
        // (Whether a small buffer's mapping carries the flag depends on what else the
        // allocator placed there, e.g. another test's freed large buffer, so it is not checked.)
    }
}
