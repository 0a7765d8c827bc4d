//! Writers for the components of an appendable segment (spec §1.8, §1.10, §1.12, §3.1–3.4,
//! §4.2, §4.3, §5.2–5.6): id trackers, dynamic flags, chunked vectors, dense / multi / sparse
//! vector storages, `segment.json`, `version.info`, `payload_index/config.json`, and the
//! directory of a brand-new appendable segment. Gridstore values (payload, sparse `store/`)
//! are written elsewhere; [`encode_stored_sparse`] produces the sparse store's values.
//!
//! Every writer works through a [`Storage`] with relative paths, never `std::fs`. It keeps its
//! pending changes in memory and writes them in Qdrant's order on `flush`, each file synced
//! before the next one is touched. After a storage error a writer is *sticky-failed*: every
//! later call returns a `PreviousIo` storage error, so nothing half-applied is flushed.
//!
//! Byte layouts written (all integers little-endian; `usize` fields are u64):
//!
//! | File | Offset | Width | Content |
//! |---|---|---|---|
//! | `mutable_id_tracker.mappings` | append | 13/21/9/17 | `0x01 ext u64, internal u32` / `0x02 uuid[16] (RFC order), internal u32` / `0x03 ext u64` / `0x04 uuid[16]` |
//! | `mutable_id_tracker.versions` | 8·i | u64 | version of internal id *i* (random-access writes; a torn tail is cut first) |
//! | `id_tracker.deleted` | i/8 | bit i%8 | bit set ⇔ internal *i* deleted (in place) |
//! | `id_tracker.versions` | 8·i | u64 | version of internal *i* (in place, never extended) |
//! | flags `status.dat` | 0, 8 | u64, u64 | `len` (logical flags), `current_file_id` = 0 |
//! | flags `flags_a.dat` | i/8 | bit i%8 | flag *i*; file size `max(1 MiB, next_pow2(ceil(len/8)))` |
//! | chunked `config.json` | | JSON | `{"chunk_size_bytes":B,"chunk_size_vectors":V,"dim":D}`, `V = floor(32 MiB / (D·elem))`, `B = V·D·elem` |
//! | chunked `status.dat` | 0 | u64 | number of records |
//! | chunked `chunk_<n>.mmap` | (k mod V)·D·elem | D·elem | record *k*, `n = k / V`; each chunk preallocated to `B` bytes |
//! | multivector `offsets/` record | 0, 4, 8 | u32 ×3 | `offset`, `count`, `capacity` of a point's inner vectors |
//! | sparse value (bincode) | 0 | u64 | `n1` = packed index bytes, then `n1` bytes delta-packed indices, u64 `n2`, `n2` × f32 |
//! | `version.info` | 0 | 5 | ASCII `0.6.0`, no newline, written atomically |
//! | `segment.json` | | JSON | `{"initial_version":…,"version":…,"config":…}` written atomically |
//!
//! Element encodings (§5.2): `float32` f32 LE, `float16` binary16 LE rounded to nearest,
//! `uint8` Rust `as u8` (saturating, NaN → 0). Values passed to the vector writers are already
//! preprocessed (Cosine normalisation is the caller's job).
//!
//! Absent vectors follow qdrant-edge 0.9.0 (verified on its bytes): a dense row past the end is
//! filled with the *default vector* (every element 1.0, i.e. `0000803f`, `003c`, `01`) and
//! flagged deleted; a multivector past the end gets one all-zero inner vector (`count = 1`)
//! and is flagged deleted; an existing row is only flagged. A sparse vector past the end
//! gets its deleted flag and no store value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use half::f16;

use crate::error::{Error, FormatError, StorageError, StorageErrorKind};
use crate::format::chunked::{ChunkedConfig, ChunkedVectors};
use crate::format::flags::{COMPACT_FLAGS_FILE, FLAGS_FILE, FLAGS_FILE_LEGACY, STATUS_FILE as FLAGS_STATUS_FILE};
use crate::format::gridstore::Gridstore;
use crate::format::id_tracker::{
    DISK_I2E, IMMUTABLE_DELETED, IMMUTABLE_MAPPINGS, IMMUTABLE_VERSIONS, MUTABLE_MAPPINGS, MUTABLE_VERSIONS,
};
use crate::format::names;
use crate::format::payload_index::PayloadIndexConfig;
use crate::format::segment_meta::{SegmentConfig, SegmentState, SparseVectorStorageType, VectorDataConfig};
use crate::storage::{join, EntryKind, Memory, OpenMode, Storage, StorageFile};
use crate::types::{Datatype, PointId, SparseVector};

type Result<T> = std::result::Result<T, Error>;

/// Qdrant's production chunk size for chunked vector directories.
pub const CHUNK_SIZE_BYTES: u64 = 32 * 1024 * 1024;
/// Minimum size of a dynamic flags file (release builds of Qdrant).
pub const FLAGS_MIN_FILE_BYTES: u64 = 1024 * 1024;
/// Version Qdrant writes for a deleted internal id before the delete's op number.
pub const DELETED_POINT_VERSION: u64 = 0;
/// Size of one multivector offsets record.
pub const MULTIVECTOR_OFFSET_SIZE: u64 = 12;

/// Gridstore defaults used by a new segment's payload storage and sparse `store/`.
const GRID_PAGE_SIZE: u64 = 32 * 1024 * 1024;
const GRID_BLOCK_SIZE: u64 = 128;
const GRID_REGION_BLOCKS: u64 = 8192;
const GRID_TRACKER_SIZE: u64 = 1024 * 1024;

const VERSION_ENTRY: u64 = 8;

// ---- shared helpers ---------------------------------------------------------------------------

/// Sticky failure state: the first storage (or mid-flush format) error poisons the writer.
#[derive(Debug, Default)]
struct Sticky {
    failed: Option<String>,
}

impl Sticky {
    fn check(&self, what: &str) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(first) => Err(StorageError::new(
                "write",
                what,
                StorageErrorKind::PreviousIo,
                format!("an earlier error made this writer unusable: {first}"),
            )
            .into()),
        }
    }

    /// Record `r`'s error if it is one that leaves files in an unknown state.
    fn guard<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if matches!(e, Error::Storage(_) | Error::Format(_) | Error::Internal(_)) && self.failed.is_none() {
                self.failed = Some(e.to_string());
            }
        }
        r
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::Internal(format!("{what}: {v} does not fit in memory")))
}

fn overflow(what: &str) -> Error {
    Error::invalid(format!("{what}: size or offset overflows"))
}

/// `create_and_ensure_length`: create (or open) `path` and make it exactly `len` bytes.
fn create_sized(storage: &dyn Storage, path: &str, len: u64) -> Result<Arc<dyn StorageFile>> {
    let f = storage.open(path, OpenMode::Create)?;
    if f.len()? != len {
        f.set_len(len)?;
    }
    Ok(f)
}

/// Writes that adjoin one another gathered into one `write_at`: a flush writes each point's
/// records at consecutive offsets, and on OPFS every `write_at` is a call on a sync access
/// handle with a fixed cost (100 000 of them for 50 000 points took over a minute there).
/// Writers push their records here and [`drain`](Self::drain) it before anything reads the
/// files or syncs them; a write that does not continue the run drains it first, so the
/// files see the writes in the order they were made.
#[derive(Debug, Default)]
pub(crate) struct WriteRun {
    /// The writer's index of the file the run goes to.
    file: usize,
    /// Offset in that file of `buf[0]`.
    at: u64,
    buf: Vec<u8>,
}

impl WriteRun {
    /// Largest run held before it is written out.
    const MAX: usize = 4 << 20;

    /// Write `data` at `at` of `files[file]`, now or with the adjoining writes around it.
    pub(crate) fn push(&mut self, files: &[Arc<dyn StorageFile>], file: usize, at: u64, data: &[u8]) -> Result<()> {
        let adjoins = !self.buf.is_empty() && self.file == file && self.at + self.buf.len() as u64 == at;
        if !adjoins || self.buf.len() + data.len() > Self::MAX {
            self.drain(files)?;
            if data.len() >= Self::MAX {
                return write_file(files, file, at, data);
            }
            self.file = file;
            self.at = at;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The bytes of the run at `at..at + out.len()` of file `file`, if the run holds all of them.
    pub(crate) fn read(&self, file: usize, at: u64, out: &mut [u8]) -> bool {
        if self.buf.is_empty() || self.file != file || at < self.at {
            return false;
        }
        let start = (at - self.at) as usize;
        match self.buf.get(start..start + out.len()) {
            Some(b) => {
                out.copy_from_slice(b);
                true
            }
            None => false,
        }
    }

    /// Write out what the run holds.
    pub(crate) fn drain(&mut self, files: &[Arc<dyn StorageFile>]) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = write_file(files, self.file, self.at, &self.buf);
        // emptied either way: a failed write is not retried (the writer is failed by then)
        self.buf.clear();
        r
    }
}

fn write_file(files: &[Arc<dyn StorageFile>], file: usize, at: u64, data: &[u8]) -> Result<()> {
    let f = files.get(file).ok_or_else(|| Error::Internal(format!("write to file {file} of {}", files.len())))?;
    Ok(f.write_at(at, data)?)
}

/// Create a small file holding exactly `data` and sync it.
fn create_with(storage: &dyn Storage, path: &str, data: &[u8]) -> Result<Arc<dyn StorageFile>> {
    let f = storage.open(path, OpenMode::Create)?;
    f.set_len(0)?;
    f.write_at(0, data)?;
    f.sync()?;
    Ok(f)
}

fn read_u64_at(f: &dyn StorageFile, off: u64) -> Result<u64> {
    let mut b = [0u8; 8];
    f.read_at(off, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Encode stored-form values (already preprocessed) as the row bytes of `datatype`.
fn encode_elems(datatype: Datatype, v: &[f32]) -> Vec<u8> {
    match datatype {
        Datatype::Float16 => v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
        Datatype::Uint8 => v.iter().map(|&x| x as u8).collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn elem_size(dir: &str, datatype: Datatype) -> Result<u64> {
    match datatype {
        Datatype::Float32 => Ok(4),
        Datatype::Float16 => Ok(2),
        Datatype::Uint8 => Ok(1),
        dt => {
            Err(FormatError::unsupported(dir, format!("writing vector datatype {dt:?} (TurboQuant) is not supported"))
                .into())
        }
    }
}

fn check_vector_name(name: &str) -> Result<()> {
    if name.contains('/') || name.contains('\\') || name.contains('\0') || name.contains("..") {
        return Err(Error::invalid_field("vector_name", format!("`{name}` is not a valid directory suffix")));
    }
    Ok(())
}

// ---- dynamic flags (§1.10) --------------------------------------------------------------------

/// Size of `flags_a.dat` for `len` flags: `max(1 MiB, next_power_of_two(ceil(len / 8)))`.
pub fn flags_file_size(len: u64) -> u64 {
    let bytes = len.div_ceil(8);
    bytes.checked_next_power_of_two().unwrap_or(u64::MAX).max(FLAGS_MIN_FILE_BYTES)
}

/// Writer of a dynamic flags directory (`status.dat` + `flags_a.dat`).
///
/// `set` grows the logical length to cover the position (as Qdrant's buffered flags do, for
/// `true` and `false` alike). `flush` resizes `flags_a.dat` when the bits outgrow it, writes
/// the changed bytes (including every byte between the old and new length, so stale bits of
/// an interrupted flush are cleared), syncs it, then writes and syncs `status.dat`.
#[derive(Debug)]
pub struct FlagsWriter<'s> {
    _storage: std::marker::PhantomData<&'s dyn Storage>,
    dir: String,
    len: u64,
    persisted_len: u64,
    bits: Vec<u8>,
    flags: Arc<dyn StorageFile>,
    flags_len: u64,
    status: Arc<dyn StorageFile>,
    /// Dirty byte range `[lo, hi)`.
    dirty: Option<(usize, usize)>,
    sticky: Sticky,
}

/// Highest flag position accepted (internal ids are `u32`).
const MAX_FLAG: u64 = u32::MAX as u64;

impl<'s> FlagsWriter<'s> {
    /// Create a fresh flags directory (as Qdrant creates one): `status.dat` = 16 zero bytes,
    /// `flags_a.dat` = 1 MiB of zeros. Fails if the directory already holds flags.
    pub fn create(storage: &'s dyn Storage, dir: &str) -> Result<FlagsWriter<'s>> {
        let status_path = join(dir, FLAGS_STATUS_FILE);
        if storage.exists(&status_path)?
            || storage.exists(&join(dir, FLAGS_FILE))?
            || storage.exists(&join(dir, COMPACT_FLAGS_FILE))?
        {
            return Err(Error::invalid(format!("{dir}: flags already exist")));
        }
        Self::open(storage, dir)
    }

    /// Open the flags directory at `dir`, creating it when no flags exist there yet. A legacy
    /// `current_file_id = 1` is migrated (flags_b → flags_a) as Qdrant does on open. The compact
    /// (`compact_flags.dat`) mode is refused as unsupported.
    pub fn open(storage: &'s dyn Storage, dir: &str) -> Result<FlagsWriter<'s>> {
        if storage.entry_kind(dir)? == Some(EntryKind::File) {
            return Err(FormatError::corrupt(dir, "expected a flags directory, found a file").into());
        }
        let status_path = join(dir, FLAGS_STATUS_FILE);
        let flags_path = join(dir, FLAGS_FILE);
        if storage.exists(&join(dir, COMPACT_FLAGS_FILE))? {
            if storage.exists(&status_path)? || storage.exists(&flags_path)? {
                return Err(FormatError::corrupt(dir, "flags directory holds both dynamic and compact flags").into());
            }
            return Err(FormatError::unsupported(dir, "writing compact (QBMK) flags is not supported").into());
        }
        storage.create_dir_all(dir)?;
        let mut created = false;
        let status = if storage.exists(&status_path)? {
            storage.open(&status_path, OpenMode::ReadWrite)?
        } else {
            created = true;
            create_sized(storage, &status_path, 16)?
        };
        let status_len = status.len()?;
        if status_len < 16 {
            return Err(FormatError::corrupt(
                &status_path,
                format!("{status_len} bytes, shorter than its 16-byte status record"),
            )
            .into());
        }
        let len = read_u64_at(&*status, 0)?;
        let file_id = read_u64_at(&*status, 8)?;
        if len > MAX_FLAG + 1 {
            return Err(FormatError::corrupt(&status_path, format!("flag count {len} exceeds 2^32")).into());
        }
        match file_id {
            0 => {}
            1 => {
                // legacy layout: the live flags are in flags_b.dat; copy them to flags_a.dat
                let legacy = storage.read_all(&join(dir, FLAGS_FILE_LEGACY))?;
                let a = storage.open(&flags_path, OpenMode::Create)?;
                a.set_len(0)?;
                a.write_at(0, &legacy)?;
                a.sync()?;
                status.write_at(8, &0u64.to_le_bytes())?;
                status.sync()?;
            }
            n => {
                return Err(
                    FormatError::corrupt(&status_path, format!("current_file_id is {n}, expected 0 or 1")).into()
                )
            }
        }
        if !storage.exists(&flags_path)? {
            created = true;
        }
        // Qdrant sizes the flags file to exactly `file_size_for(len)` whenever it opens it
        let flags = storage.open(&flags_path, OpenMode::Create)?;
        let prior_len = flags.len()?;
        let flags_len = flags_file_size(len);
        if prior_len != flags_len {
            flags.set_len(flags_len)?;
        }
        // only the stored bytes holding logical flags are read (a file shorter than `len`
        // needs is zeros past its end, and is not allocated up front)
        let used = len.div_ceil(8).min(prior_len);
        let mut bits = vec![0u8; to_usize(used, &flags_path)?];
        flags.read_at(0, &mut bits)?;
        if len % 8 != 0 && used == len.div_ceil(8) {
            if let Some(last) = bits.last_mut() {
                *last &= (1u8 << (len % 8)) - 1; // stale bits past len are not flags
            }
        }
        if created {
            flags.sync()?;
            status.sync()?;
            storage.sync_dir(dir)?;
        }
        Ok(FlagsWriter {
            _storage: std::marker::PhantomData,
            dir: dir.to_string(),
            len,
            persisted_len: len,
            bits,
            flags,
            flags_len,
            status,
            dirty: None,
            sticky: Sticky::default(),
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }
    /// Logical number of flags.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Flag `i`; positions at or past `len` are `false`.
    pub fn get(&self, i: u64) -> bool {
        i < self.len && crate::format::le::bit(&self.bits, i)
    }
    /// Number of set flags.
    pub fn count_ones(&self) -> u64 {
        self.bits.iter().map(|b| u64::from(b.count_ones())).sum()
    }
    /// Highest set position.
    pub fn last_one(&self) -> Option<u64> {
        let (i, b) = self.bits.iter().enumerate().rev().find(|(_, b)| **b != 0)?;
        Some(i as u64 * 8 + u64::from(7 - b.leading_zeros()))
    }

    fn mark_dirty(&mut self, lo: usize, hi: usize) {
        self.dirty = Some(match self.dirty {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }

    /// Set flag `i` to `value`, growing the length to `i + 1` if needed. Returns the previous
    /// value.
    pub fn set(&mut self, i: u64, value: bool) -> Result<bool> {
        self.sticky.check(&self.dir)?;
        if i > MAX_FLAG {
            return Err(Error::invalid(format!("{}: flag position {i} exceeds u32", self.dir)));
        }
        if i >= self.len {
            let old_bytes = self.bits.len();
            let new_len = i + 1;
            let new_bytes = to_usize(new_len.div_ceil(8), &self.dir)?;
            self.bits.resize(new_bytes.max(old_bytes), 0);
            // the bytes between the old and the new length are rewritten (cleared) on flush
            let from = to_usize(self.len / 8, &self.dir)?.min(old_bytes);
            self.mark_dirty(from, new_bytes);
            self.len = new_len;
        }
        let byte = to_usize(i / 8, &self.dir)?;
        let mask = 1u8 << (i % 8);
        if byte >= self.bits.len() {
            self.bits.resize(byte + 1, 0); // positions below len that the file never held
        }
        let Some(b) = self.bits.get_mut(byte) else {
            return Err(Error::Internal(format!("{}: flag byte {byte} missing", self.dir)));
        };
        let prev = *b & mask != 0;
        if prev != value {
            if value {
                *b |= mask;
            } else {
                *b &= !mask;
            }
            self.mark_dirty(byte, byte + 1);
        }
        Ok(prev)
    }

    /// Whether `flush` has anything to write.
    pub fn is_dirty(&self) -> bool {
        self.dirty.is_some() || self.len != self.persisted_len
    }

    /// Write the changed bits (resizing `flags_a.dat` first if needed), sync, then write and
    /// sync `status.dat`.
    pub fn flush(&mut self) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let r = self.flush_inner();
        self.sticky.guard(r)
    }

    fn flush_inner(&mut self) -> Result<()> {
        if !self.is_dirty() {
            return Ok(());
        }
        let need = self.len.div_ceil(8);
        if need > self.flags_len {
            let size = flags_file_size(self.len);
            self.flags.set_len(size)?;
            self.flags_len = size;
        }
        if let Some((lo, hi)) = self.dirty {
            let hi = hi.min(self.bits.len());
            if lo < hi {
                self.flags.write_at(lo as u64, &self.bits[lo..hi])?;
            }
        }
        self.flags.sync()?;
        let mut status = [0u8; 16];
        status[..8].copy_from_slice(&self.len.to_le_bytes());
        self.status.write_at(0, &status)?;
        self.status.sync()?;
        self.dirty = None;
        self.persisted_len = self.len;
        Ok(())
    }
}

// ---- chunked vectors (§1.12) ------------------------------------------------------------------

/// Writer of a chunked vectors directory.
///
/// `put(k, record)` writes record `k` into its chunk (creating every missing chunk up to it,
/// each preallocated to `chunk_size_bytes`), records at consecutive offsets in one write
/// ([`WriteRun`]), and raises `len` to `k + 1`; `flush` writes what is pending, syncs the
/// touched chunks and then writes `status.dat` (last).
#[derive(Debug)]
pub struct ChunkedVectorsWriter<'s> {
    storage: &'s dyn Storage,
    dir: String,
    config: ChunkedConfig,
    record_size: u64,
    len: u64,
    persisted_len: u64,
    status_exists: bool,
    chunks: Vec<Arc<dyn StorageFile>>,
    dirty_chunks: BTreeSet<usize>,
    created_chunk: bool,
    /// Records put and not yet written to their chunk.
    run: WriteRun,
    sticky: Sticky,
}

/// Qdrant's chunk sizing for records of `record_size` bytes:
/// `(chunk_size_bytes, chunk_size_vectors)`.
pub fn chunk_sizing(record_size: u64) -> Option<(u64, u64)> {
    if record_size == 0 {
        return None;
    }
    let vectors = CHUNK_SIZE_BYTES / record_size;
    if vectors == 0 {
        return None;
    }
    Some((vectors * record_size, vectors))
}

impl<'s> ChunkedVectorsWriter<'s> {
    /// Create a new chunked directory for records of `dim` elements of `elem_size` bytes:
    /// `status.dat` (8 zero bytes) and `config.json` (atomically), no chunk yet. Fails if
    /// `config.json` already exists.
    pub fn create(storage: &'s dyn Storage, dir: &str, dim: u64, elem_size: u64) -> Result<ChunkedVectorsWriter<'s>> {
        let record_size = dim.checked_mul(elem_size).ok_or_else(|| overflow(dir))?;
        let Some((chunk_size_bytes, chunk_size_vectors)) = chunk_sizing(record_size) else {
            return Err(Error::invalid(format!(
                "{dir}: a record of {dim} × {elem_size} bytes cannot be stored in 32 MiB chunks"
            )));
        };
        let cfg_path = join(dir, crate::format::chunked::CONFIG_FILE);
        if storage.exists(&cfg_path)? {
            return Err(Error::invalid(format!("{dir}: chunked vectors already exist")));
        }
        storage.create_dir_all(dir)?;
        let status_path = join(dir, crate::format::chunked::STATUS_FILE);
        create_with(storage, &status_path, &0u64.to_le_bytes())?;
        let json = format!(
            r#"{{"chunk_size_bytes":{chunk_size_bytes},"chunk_size_vectors":{chunk_size_vectors},"dim":{dim}}}"#
        );
        storage.write_atomic(&cfg_path, json.as_bytes())?;
        storage.sync_dir(dir)?;
        Ok(ChunkedVectorsWriter {
            storage,
            dir: dir.to_string(),
            config: ChunkedConfig { chunk_size_bytes, chunk_size_vectors, dim },
            record_size,
            len: 0,
            persisted_len: 0,
            status_exists: true,
            chunks: Vec::new(),
            dirty_chunks: BTreeSet::new(),
            created_chunk: false,
            run: WriteRun::default(),
            sticky: Sticky::default(),
        })
    }

    /// Open an existing chunked directory (validated by the reader: config, status, chunk
    /// files). `expected_dim` must match `config.json` when given.
    pub fn open(
        storage: &'s dyn Storage,
        dir: &str,
        elem_size: u64,
        expected_dim: Option<u64>,
    ) -> Result<ChunkedVectorsWriter<'s>> {
        let reader = ChunkedVectors::open(storage, dir, to_usize(elem_size, dir)?, expected_dim, Memory::Cold)?;
        let config = *reader.config();
        let record_size = reader.record_size() as u64;
        let len = reader.len();
        drop(reader);
        let mut n = 0u64;
        for e in storage.list_dir(dir)? {
            if e.kind == EntryKind::File
                && e.name.strip_prefix("chunk_").and_then(|r| r.strip_suffix(".mmap")).is_some()
            {
                n += 1; // the reader checked the ids are 0..n
            }
        }
        let mut chunks = Vec::new();
        for c in 0..n {
            chunks.push(storage.open(&join(dir, &format!("chunk_{c}.mmap")), OpenMode::ReadWrite)?);
        }
        let status_exists = storage.exists(&join(dir, crate::format::chunked::STATUS_FILE))?;
        Ok(ChunkedVectorsWriter {
            storage,
            dir: dir.to_string(),
            config,
            record_size,
            len,
            persisted_len: len,
            status_exists,
            chunks,
            dirty_chunks: BTreeSet::new(),
            created_chunk: false,
            run: WriteRun::default(),
            sticky: Sticky::default(),
        })
    }

    /// Open when `config.json` exists, else create.
    pub fn open_or_create(
        storage: &'s dyn Storage,
        dir: &str,
        dim: u64,
        elem_size: u64,
    ) -> Result<ChunkedVectorsWriter<'s>> {
        if storage.exists(&join(dir, crate::format::chunked::CONFIG_FILE))? {
            Self::open(storage, dir, elem_size, Some(dim))
        } else {
            Self::create(storage, dir, dim, elem_size)
        }
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }
    pub fn config(&self) -> &ChunkedConfig {
        &self.config
    }
    /// Number of records (including unflushed ones).
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn dim(&self) -> u64 {
        self.config.dim
    }
    pub fn record_size(&self) -> u64 {
        self.record_size
    }
    /// Number of chunk files.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    fn locate(&self, k: u64) -> Result<(usize, u64)> {
        let chunk = to_usize(k / self.config.chunk_size_vectors, &self.dir)?;
        let off =
            (k % self.config.chunk_size_vectors).checked_mul(self.record_size).ok_or_else(|| overflow(&self.dir))?;
        Ok((chunk, off))
    }

    /// Record `k` (`None` past the end).
    pub fn get(&self, k: u64) -> Result<Option<Vec<u8>>> {
        self.sticky.check(&self.dir)?;
        if k >= self.len {
            return Ok(None);
        }
        let (chunk, off) = self.locate(k)?;
        let Some(f) = self.chunks.get(chunk) else {
            return Err(FormatError::corrupt(&self.dir, format!("record {k} lives in missing chunk {chunk}")).into());
        };
        let mut buf = vec![0u8; to_usize(self.record_size, &self.dir)?];
        if !self.run.read(chunk, off, &mut buf) {
            f.read_at(off, &mut buf)?;
        }
        Ok(Some(buf))
    }

    /// Write record `k` (`k < len` overwrites, `k >= len` appends; a gap reads as zeros).
    pub fn put(&mut self, k: u64, record: &[u8]) -> Result<()> {
        self.sticky.check(&self.dir)?;
        if record.len() as u64 != self.record_size {
            return Err(Error::invalid(format!(
                "{}: record of {} bytes, expected {}",
                self.dir,
                record.len(),
                self.record_size
            )));
        }
        if k > u64::from(u32::MAX) {
            return Err(Error::invalid(format!("{}: record index {k} is out of range", self.dir)));
        }
        let r = self.put_inner(k, record);
        self.sticky.guard(r)
    }

    fn put_inner(&mut self, k: u64, record: &[u8]) -> Result<()> {
        let (chunk, off) = self.locate(k)?;
        while self.chunks.len() <= chunk {
            let path = join(&self.dir, &format!("chunk_{}.mmap", self.chunks.len()));
            let f = create_sized(self.storage, &path, self.config.chunk_size_bytes)?;
            self.chunks.push(f);
            self.created_chunk = true;
        }
        self.run.push(&self.chunks, chunk, off, record)?;
        self.dirty_chunks.insert(chunk);
        self.len = self.len.max(k + 1);
        Ok(())
    }

    /// Sync the touched chunks, then write and sync `status.dat`.
    pub fn flush(&mut self) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let r = self.flush_inner();
        self.sticky.guard(r)
    }

    fn flush_inner(&mut self) -> Result<()> {
        self.run.drain(&self.chunks)?;
        for &c in &self.dirty_chunks {
            if let Some(f) = self.chunks.get(c) {
                f.sync()?;
            }
        }
        self.dirty_chunks.clear();
        if self.len != self.persisted_len || !self.status_exists {
            let path = join(&self.dir, crate::format::chunked::STATUS_FILE);
            let f = self.storage.open(&path, OpenMode::Create)?;
            f.write_at(0, &self.len.to_le_bytes())?;
            f.sync()?;
            self.persisted_len = self.len;
            if !self.status_exists {
                self.status_exists = true;
                self.created_chunk = true;
            }
        }
        if self.created_chunk {
            self.storage.sync_dir(&self.dir)?;
            self.created_chunk = false;
        }
        Ok(())
    }
}

// ---- dense vectors (§5.3) ---------------------------------------------------------------------

fn check_dense_cfg(dir: &str, cfg: &VectorDataConfig, multi: bool) -> Result<u64> {
    if cfg.multivector_config.is_some() != multi {
        return Err(Error::invalid(format!(
            "{dir}: {} config given to the {} writer",
            if multi { "a dense" } else { "a multivector" },
            if multi { "multivector" } else { "dense" }
        )));
    }
    if !cfg.storage_type.is_chunked() {
        return Err(FormatError::unsupported(
            dir,
            format!("writing storage type {:?} (only appendable chunked storages are written)", cfg.storage_type),
        )
        .into());
    }
    if cfg.size == 0 {
        return Err(Error::invalid(format!("{dir}: vector size 0")));
    }
    elem_size(dir, cfg.datatype())
}

/// Writer of an appendable dense vector storage `vector_storage[-<name>]/` (`vectors/` +
/// `deleted/`).
#[derive(Debug)]
pub struct DenseVectorWriter<'s> {
    dir: String,
    dim: u64,
    datatype: Datatype,
    vectors: ChunkedVectorsWriter<'s>,
    deleted: FlagsWriter<'s>,
    sticky: Sticky,
}

impl<'s> DenseVectorWriter<'s> {
    /// Create the storage of vector `name` in `segment_dir` (`vectors/` then `deleted/`).
    pub fn create(
        storage: &'s dyn Storage,
        segment_dir: &str,
        name: &str,
        cfg: &VectorDataConfig,
    ) -> Result<DenseVectorWriter<'s>> {
        check_vector_name(name)?;
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        let elem = check_dense_cfg(&dir, cfg, false)?;
        storage.create_dir_all(&dir)?;
        let vectors = ChunkedVectorsWriter::create(storage, &join(&dir, "vectors"), cfg.size, elem)?;
        let deleted = FlagsWriter::create(storage, &join(&dir, "deleted"))?;
        storage.sync_dir(&dir)?;
        Ok(DenseVectorWriter {
            dir,
            dim: cfg.size,
            datatype: cfg.datatype(),
            vectors,
            deleted,
            sticky: Sticky::default(),
        })
    }

    /// Open the existing storage of vector `name`.
    pub fn open(
        storage: &'s dyn Storage,
        segment_dir: &str,
        name: &str,
        cfg: &VectorDataConfig,
    ) -> Result<DenseVectorWriter<'s>> {
        check_vector_name(name)?;
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        let elem = check_dense_cfg(&dir, cfg, false)?;
        let vectors = ChunkedVectorsWriter::open(storage, &join(&dir, "vectors"), elem, Some(cfg.size))?;
        let deleted = FlagsWriter::open(storage, &join(&dir, "deleted"))?;
        Ok(DenseVectorWriter {
            dir,
            dim: cfg.size,
            datatype: cfg.datatype(),
            vectors,
            deleted,
            sticky: Sticky::default(),
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }
    /// Number of rows.
    pub fn len(&self) -> u64 {
        self.vectors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
    pub fn is_deleted(&self, internal: u32) -> bool {
        self.deleted.get(u64::from(internal))
    }
    pub fn vectors(&self) -> &ChunkedVectorsWriter<'s> {
        &self.vectors
    }
    pub fn deleted(&self) -> &FlagsWriter<'s> {
        &self.deleted
    }

    /// Store the vector of `internal` (already preprocessed stored values), or mark it absent:
    /// a row past the end is filled with Qdrant's default vector (all 1.0) first.
    pub fn put(&mut self, internal: u32, value: Option<&[f32]>) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let key = u64::from(internal);
        let r = match value {
            Some(v) => {
                if v.len() as u64 != self.dim {
                    return Err(Error::invalid(format!(
                        "{}: vector of {} elements, expected {}",
                        self.dir,
                        v.len(),
                        self.dim
                    )));
                }
                self.vectors.put(key, &encode_elems(self.datatype, v)).and_then(|_| {
                    // Qdrant clears the flag only for rows that exist (always true after put)
                    if key < self.vectors.len() {
                        self.deleted.set(key, false)?;
                    }
                    Ok(())
                })
            }
            None => (|| {
                if key >= self.vectors.len() {
                    let ones = vec![1.0f32; to_usize(self.dim, &self.dir)?];
                    self.vectors.put(key, &encode_elems(self.datatype, &ones))?;
                }
                self.deleted.set(key, true)?;
                Ok(())
            })(),
        };
        self.sticky.guard(r)
    }

    /// Flush `vectors/` then `deleted/` (Qdrant's order).
    pub fn flush(&mut self) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let r = self.vectors.flush().and_then(|_| self.deleted.flush());
        self.sticky.guard(r)
    }
}

// ---- multivectors (§5.5) ----------------------------------------------------------------------

/// One `offsets/` record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MultiVectorOffset {
    pub offset: u32,
    pub count: u32,
    pub capacity: u32,
}

impl MultiVectorOffset {
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.offset.to_le_bytes());
        b[4..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..].copy_from_slice(&self.capacity.to_le_bytes());
        b
    }
    pub fn from_bytes(b: &[u8]) -> Option<MultiVectorOffset> {
        let u = |i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        Some(MultiVectorOffset { offset: u(0)?, count: u(4)?, capacity: u(8)? })
    }
}

/// Writer of an appendable multivector storage (`vectors/` + `offsets/` + `deleted/`).
///
/// A new multivector of a point reuses the point's slot when it fits its `capacity`
/// (offset kept, `count` updated); otherwise it is appended at the end of `vectors/` with
/// `capacity = count`, as Qdrant does.
#[derive(Debug)]
pub struct MultiVectorWriter<'s> {
    dir: String,
    dim: u64,
    datatype: Datatype,
    vectors: ChunkedVectorsWriter<'s>,
    offsets: ChunkedVectorsWriter<'s>,
    deleted: FlagsWriter<'s>,
    sticky: Sticky,
}

impl<'s> MultiVectorWriter<'s> {
    /// Create the storage of multivector `name` (`vectors/`, `offsets/`, `deleted/`).
    pub fn create(
        storage: &'s dyn Storage,
        segment_dir: &str,
        name: &str,
        cfg: &VectorDataConfig,
    ) -> Result<MultiVectorWriter<'s>> {
        check_vector_name(name)?;
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        let elem = check_dense_cfg(&dir, cfg, true)?;
        storage.create_dir_all(&dir)?;
        let vectors = ChunkedVectorsWriter::create(storage, &join(&dir, "vectors"), cfg.size, elem)?;
        let offsets = ChunkedVectorsWriter::create(storage, &join(&dir, "offsets"), 1, MULTIVECTOR_OFFSET_SIZE)?;
        let deleted = FlagsWriter::create(storage, &join(&dir, "deleted"))?;
        storage.sync_dir(&dir)?;
        Ok(MultiVectorWriter {
            dir,
            dim: cfg.size,
            datatype: cfg.datatype(),
            vectors,
            offsets,
            deleted,
            sticky: Sticky::default(),
        })
    }

    /// Open the existing storage of multivector `name`.
    pub fn open(
        storage: &'s dyn Storage,
        segment_dir: &str,
        name: &str,
        cfg: &VectorDataConfig,
    ) -> Result<MultiVectorWriter<'s>> {
        check_vector_name(name)?;
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        let elem = check_dense_cfg(&dir, cfg, true)?;
        let vectors = ChunkedVectorsWriter::open(storage, &join(&dir, "vectors"), elem, Some(cfg.size))?;
        let offsets = ChunkedVectorsWriter::open(storage, &join(&dir, "offsets"), MULTIVECTOR_OFFSET_SIZE, Some(1))?;
        let deleted = FlagsWriter::open(storage, &join(&dir, "deleted"))?;
        Ok(MultiVectorWriter {
            dir,
            dim: cfg.size,
            datatype: cfg.datatype(),
            vectors,
            offsets,
            deleted,
            sticky: Sticky::default(),
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }
    /// Number of points with an offsets record.
    pub fn len(&self) -> u64 {
        self.offsets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
    /// Number of stored inner vectors.
    pub fn inner_len(&self) -> u64 {
        self.vectors.len()
    }
    pub fn is_deleted(&self, internal: u32) -> bool {
        self.deleted.get(u64::from(internal))
    }
    pub fn deleted(&self) -> &FlagsWriter<'s> {
        &self.deleted
    }

    /// The offsets record of `internal` (`None` past the end).
    pub fn offset(&self, internal: u32) -> Result<Option<MultiVectorOffset>> {
        match self.offsets.get(u64::from(internal))? {
            None => Ok(None),
            Some(b) => MultiVectorOffset::from_bytes(&b)
                .map(Some)
                .ok_or_else(|| Error::Internal(format!("{}: short offsets record", self.dir))),
        }
    }

    fn insert(&mut self, internal: u32, inner: &[Vec<f32>]) -> Result<()> {
        let key = u64::from(internal);
        let count = u32::try_from(inner.len()).map_err(|_| overflow(&self.dir))?;
        let mut slot = self.offset(internal)?.unwrap_or_default();
        if count > slot.capacity {
            let at = u32::try_from(self.vectors.len())
                .map_err(|_| Error::invalid(format!("{}: more than 2^32 inner vectors", self.dir)))?;
            if at.checked_add(count).is_none() {
                return Err(overflow(&self.dir));
            }
            slot = MultiVectorOffset { offset: at, count, capacity: count };
        } else {
            slot.count = count;
        }
        for (j, v) in inner.iter().enumerate() {
            self.vectors.put(u64::from(slot.offset) + j as u64, &encode_elems(self.datatype, v))?;
        }
        self.offsets.put(key, &slot.to_bytes())?;
        // Qdrant clears the flag unless the inner-vector count does not exceed the key
        if self.vectors.len() > key {
            self.deleted.set(key, false)?;
        }
        Ok(())
    }

    /// Store the multivector of `internal` (already preprocessed inner vectors), or mark it
    /// absent: a point past the end first gets Qdrant's placeholder (one all-zero inner
    /// vector).
    pub fn put(&mut self, internal: u32, value: Option<&[Vec<f32>]>) -> Result<()> {
        self.sticky.check(&self.dir)?;
        if let Some(mv) = value {
            if mv.is_empty() {
                return Err(Error::invalid(format!("{}: a multivector needs at least one inner vector", self.dir)));
            }
            if let Some(bad) = mv.iter().find(|v| v.len() as u64 != self.dim) {
                return Err(Error::invalid(format!(
                    "{}: inner vector of {} elements, expected {}",
                    self.dir,
                    bad.len(),
                    self.dim
                )));
            }
        }
        let r = match value {
            Some(mv) => self.insert(internal, mv),
            None => (|| {
                if u64::from(internal) >= self.offsets.len() {
                    let placeholder = vec![vec![0.0f32; to_usize(self.dim, &self.dir)?]];
                    self.insert(internal, &placeholder)?;
                }
                self.deleted.set(u64::from(internal), true)?;
                Ok(())
            })(),
        };
        self.sticky.guard(r)
    }

    /// Flush `vectors/`, `offsets/`, `deleted/` (Qdrant's order).
    pub fn flush(&mut self) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let r = self.vectors.flush().and_then(|_| self.offsets.flush()).and_then(|_| self.deleted.flush());
        self.sticky.guard(r)
    }
}

// ---- sparse vectors (§5.6, §1.9) --------------------------------------------------------------

/// Delta-pack a sorted `u64` sequence (§1.9): `[6 bits: B-8]` then each delta in `B` bits,
/// LSB first, `B = max(8, bit_length(max delta))`; empty input ⇒ no bytes.
pub fn delta_pack(sorted: &[u64]) -> Vec<u8> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut deltas = Vec::with_capacity(sorted.len());
    let mut prev = 0u64;
    for &x in sorted {
        deltas.push(x.wrapping_sub(prev));
        prev = x;
    }
    let max = deltas.iter().copied().max().unwrap_or(0);
    let bits = (64 - max.leading_zeros()).max(8);
    let mut out = Vec::with_capacity((6 + deltas.len() * bits as usize).div_ceil(8));
    let mut acc: u128 = 0;
    let mut n: u32 = 0;
    let mut push = |v: u64, width: u32, out: &mut Vec<u8>| {
        acc |= u128::from(v) << n;
        n += width;
        while n >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    };
    push(u64::from(bits - 8), 6, &mut out);
    for d in deltas {
        push(d, bits, &mut out);
    }
    if n > 0 {
        out.push(acc as u8);
    }
    out
}

/// The bincode `StoredSparseVector` of `v` (§5.6): indices sorted (weights permuted alongside)
/// and delta-packed; the value the sparse `store/` Gridstore holds. Pairs are taken up to the
/// shorter of `indices` / `values` (callers validate equal lengths).
pub fn encode_stored_sparse(v: &SparseVector) -> Vec<u8> {
    let mut pairs: Vec<(u32, f32)> = v.indices.iter().copied().zip(v.values.iter().copied()).collect();
    pairs.sort_by_key(|p| p.0);
    let idx: Vec<u64> = pairs.iter().map(|p| u64::from(p.0)).collect();
    let packed = delta_pack(&idx);
    let mut out = Vec::with_capacity(16 + packed.len() + 4 * pairs.len());
    out.extend_from_slice(&(packed.len() as u64).to_le_bytes());
    out.extend_from_slice(&packed);
    out.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
    for (_, w) in &pairs {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// What the sparse `store/` Gridstore must do for one [`SparseDeletedFlags::put`].
#[derive(Debug, Clone, PartialEq)]
pub enum SparseStoreOp {
    /// Store this value (from [`encode_stored_sparse`]) under the internal id.
    Put(Vec<u8>),
    /// Remove the internal id's value, if any.
    Delete,
}

/// The `deleted/` flags of a sparse vector storage, with Qdrant's bookkeeping: the storage's
/// `next_point_offset` is `max(last set flag + 1, store key bound)`; a present vector clears
/// its flag only for ids below it; an absent vector sets its flag. The Gridstore writer applies
/// the returned [`SparseStoreOp`]; Qdrant flushes these flags before the store.
#[derive(Debug)]
pub struct SparseDeletedFlags<'s> {
    flags: FlagsWriter<'s>,
    next_point_offset: u64,
}

impl<'s> SparseDeletedFlags<'s> {
    /// Create the `deleted/` flags of a new sparse storage (`store/` is created separately).
    pub fn create(storage: &'s dyn Storage, vector_storage_dir: &str) -> Result<SparseDeletedFlags<'s>> {
        let flags = FlagsWriter::create(storage, &join(vector_storage_dir, "deleted"))?;
        Ok(SparseDeletedFlags { flags, next_point_offset: 0 })
    }

    /// Open the flags of sparse vector `name`; the store's key bound is read from its
    /// Gridstore (`store/`, absent ⇒ 0).
    pub fn open(storage: &'s dyn Storage, segment_dir: &str, name: &str) -> Result<SparseDeletedFlags<'s>> {
        check_vector_name(name)?;
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        let store = join(&dir, "store");
        let bound = if storage.is_dir(&store)? { Gridstore::open(storage, &store)?.key_bound() } else { 0 };
        Self::open_with_bound(storage, &dir, bound)
    }

    /// Open with a known store key bound (one past the highest key the store tracks).
    pub fn open_with_bound(
        storage: &'s dyn Storage,
        vector_storage_dir: &str,
        store_key_bound: u64,
    ) -> Result<SparseDeletedFlags<'s>> {
        let flags = FlagsWriter::open(storage, &join(vector_storage_dir, "deleted"))?;
        let next_point_offset = flags.last_one().map_or(0, |i| i + 1).max(store_key_bound);
        Ok(SparseDeletedFlags { flags, next_point_offset })
    }

    /// One past the highest internal id the storage covers.
    pub fn next_point_offset(&self) -> u64 {
        self.next_point_offset
    }
    pub fn is_deleted(&self, internal: u32) -> bool {
        self.flags.get(u64::from(internal))
    }
    pub fn flags(&self) -> &FlagsWriter<'s> {
        &self.flags
    }

    /// Record the sparse vector of `internal` (`None` = absent) and return what the store must
    /// do.
    pub fn put(&mut self, internal: u32, value: Option<&SparseVector>) -> Result<SparseStoreOp> {
        let key = u64::from(internal);
        let op = match value {
            Some(v) => {
                if key < self.next_point_offset {
                    self.flags.set(key, false)?;
                }
                SparseStoreOp::Put(encode_stored_sparse(v))
            }
            None => {
                self.flags.set(key, true)?;
                SparseStoreOp::Delete
            }
        };
        self.next_point_offset = self.next_point_offset.max(key + 1);
        Ok(op)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.flags.flush()
    }
}

// ---- mutable id tracker (§4.2) ----------------------------------------------------------------

/// Writer of the mutable id tracker (`mutable_id_tracker.mappings` + `.versions`).
///
/// `open` replays the existing log (a torn final record is ignored and cut off on the next
/// flush, before appending). `flush` appends the pending records, syncs, then writes the
/// pending versions at `8 × internal` (cutting a partial trailing entry first) and syncs —
/// mappings before versions, as Qdrant does. No file is created until there is something to
/// write.
#[derive(Debug)]
pub struct MutableIdTrackerWriter<'s> {
    storage: &'s dyn Storage,
    dir: String,
    fwd: BTreeMap<PointId, u32>,
    rev: Vec<Option<PointId>>,
    versions: Vec<u64>,
    /// Length of the complete records in the mappings file.
    mappings_len: u64,
    pending_mappings: Vec<u8>,
    pending_versions: BTreeMap<u32, u64>,
    sticky: Sticky,
}

fn encode_mapping(out: &mut Vec<u8>, ext: PointId, internal: Option<u32>) {
    match (ext, internal) {
        (PointId::Num(n), Some(i)) => {
            out.push(0x01);
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&i.to_le_bytes());
        }
        (PointId::Uuid(u), Some(i)) => {
            out.push(0x02);
            out.extend_from_slice(u.as_bytes());
            out.extend_from_slice(&i.to_le_bytes());
        }
        (PointId::Num(n), None) => {
            out.push(0x03);
            out.extend_from_slice(&n.to_le_bytes());
        }
        (PointId::Uuid(u), None) => {
            out.push(0x04);
            out.extend_from_slice(u.as_bytes());
        }
    }
}

impl<'s> MutableIdTrackerWriter<'s> {
    /// Open the tracker of the segment at `segment_dir` (no files ⇒ empty).
    pub fn open(storage: &'s dyn Storage, segment_dir: &str) -> Result<MutableIdTrackerWriter<'s>> {
        if !storage.is_dir(segment_dir)? {
            return Err(
                StorageError::new("open", segment_dir, StorageErrorKind::NotFound, "no segment directory").into()
            );
        }
        let mut w = MutableIdTrackerWriter {
            storage,
            dir: segment_dir.to_string(),
            fwd: BTreeMap::new(),
            rev: Vec::new(),
            versions: Vec::new(),
            mappings_len: 0,
            pending_mappings: Vec::new(),
            pending_versions: BTreeMap::new(),
            sticky: Sticky::default(),
        };
        let mpath = join(segment_dir, MUTABLE_MAPPINGS);
        if storage.is_file(&mpath)? {
            let log = storage.read_all(&mpath)?;
            let mut pos = 0usize;
            while pos < log.len() {
                let t = log[pos];
                let size = match t {
                    1 => 13,
                    2 => 21,
                    3 => 9,
                    4 => 17,
                    other => {
                        return Err(FormatError::corrupt(
                            &mpath,
                            format!("unknown record type {other:#04x} at offset {pos}"),
                        )
                        .into())
                    }
                };
                let Some(rec) = log.get(pos + 1..pos + size) else { break }; // torn tail
                let ext = if t == 1 || t == 3 {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&rec[..8]);
                    PointId::Num(u64::from_le_bytes(b))
                } else {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&rec[..16]);
                    PointId::Uuid(uuid::Uuid::from_bytes(b))
                };
                if t <= 2 {
                    let o = if t == 1 { 8 } else { 16 };
                    let i = u32::from_le_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
                    w.link(ext, i)?;
                } else {
                    w.unlink(ext);
                }
                pos += size;
            }
            w.mappings_len = pos as u64;
        }
        let vpath = join(segment_dir, MUTABLE_VERSIONS);
        if storage.is_file(&vpath)? {
            let b = storage.read_all(&vpath)?;
            w.versions = b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
        }
        Ok(w)
    }

    /// Qdrant's `set_link` (without deferred points).
    fn link(&mut self, ext: PointId, i: u32) -> Result<()> {
        let iu = to_usize(u64::from(i), &self.dir)?;
        if self.rev.len() <= iu {
            self.rev.resize(iu + 1, None);
        }
        if let Some(prior) = self.fwd.insert(ext, i) {
            if prior != i {
                if let Some(slot) = self.rev.get_mut(prior as usize) {
                    *slot = None;
                }
            }
        }
        if let Some(other) = self.rev[iu] {
            if other != ext && self.fwd.get(&other) == Some(&i) {
                self.fwd.remove(&other);
            }
        }
        self.rev[iu] = Some(ext);
        Ok(())
    }

    fn unlink(&mut self, ext: PointId) -> Option<u32> {
        let i = self.fwd.remove(&ext)?;
        if let Some(slot) = self.rev.get_mut(i as usize) {
            *slot = None;
        }
        Some(i)
    }

    /// Map `ext` to `internal` (replacing an earlier mapping of either).
    pub fn insert(&mut self, ext: PointId, internal: u32) -> Result<()> {
        self.sticky.check(&self.dir)?;
        self.link(ext, internal)?;
        encode_mapping(&mut self.pending_mappings, ext, Some(internal));
        Ok(())
    }

    /// Remove the mapping of `ext` (a delete record is logged even if it is unknown, as Qdrant
    /// does). A mapped internal id gets version 0 ([`DELETED_POINT_VERSION`]); set the delete's
    /// op number with [`Self::set_version`] afterwards. Returns the unmapped internal id.
    pub fn delete(&mut self, ext: PointId) -> Result<Option<u32>> {
        self.sticky.check(&self.dir)?;
        let i = self.unlink(ext);
        encode_mapping(&mut self.pending_mappings, ext, None);
        if let Some(i) = i {
            self.set_version(i, DELETED_POINT_VERSION)?;
        }
        Ok(i)
    }

    /// Set the version of `internal` (the versions array grows with zeros).
    pub fn set_version(&mut self, internal: u32, version: u64) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let iu = to_usize(u64::from(internal), &self.dir)?;
        if self.versions.len() <= iu {
            self.versions.resize(iu + 1, 0);
        }
        self.versions[iu] = version;
        self.pending_versions.insert(internal, version);
        Ok(())
    }

    pub fn internal_id(&self, ext: PointId) -> Option<u32> {
        self.fwd.get(&ext).copied()
    }
    pub fn external_id(&self, internal: u32) -> Option<PointId> {
        self.rev.get(internal as usize).copied().flatten()
    }
    pub fn version(&self, internal: u32) -> Option<u64> {
        self.versions.get(internal as usize).copied()
    }
    /// Number of internal ids referenced by mappings (the next fresh internal id).
    pub fn total_point_count(&self) -> u64 {
        self.rev.len() as u64
    }
    /// Mapped points (a mapping without a version is counted too).
    pub fn mapped_count(&self) -> usize {
        self.fwd.len()
    }
    pub fn is_dirty(&self) -> bool {
        !self.pending_mappings.is_empty() || !self.pending_versions.is_empty()
    }

    /// Append the pending mapping records (synced), then write the pending versions (synced).
    pub fn flush(&mut self) -> Result<()> {
        self.flush_mappings()?;
        self.flush_versions()
    }

    /// First step of a segment flush (§3.4: mappings → vector/payload data → versions):
    /// cut a torn tail, append the pending records, sync.
    pub fn flush_mappings(&mut self) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let r = self.flush_mappings_inner();
        self.sticky.guard(r)
    }

    /// Last id-tracker step of a segment flush: write the pending versions at `8 × internal`
    /// (a partial trailing entry is cut first), sync.
    pub fn flush_versions(&mut self) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let r = self.flush_versions_inner();
        self.sticky.guard(r)
    }

    fn flush_mappings_inner(&mut self) -> Result<()> {
        if self.pending_mappings.is_empty() {
            return Ok(());
        }
        let path = join(&self.dir, MUTABLE_MAPPINGS);
        let existed = self.storage.is_file(&path)?;
        let f = self.storage.open(&path, OpenMode::Create)?;
        let len = f.len()?;
        if len < self.mappings_len {
            return Err(FormatError::corrupt(
                &path,
                format!("file is {len} bytes, shorter than the {} bytes already persisted", self.mappings_len),
            )
            .into());
        }
        if len > self.mappings_len {
            // torn record of an interrupted write: cut it before appending
            f.set_len(self.mappings_len)?;
        }
        f.write_at(self.mappings_len, &self.pending_mappings)?;
        f.sync()?;
        if !existed {
            self.storage.sync_dir(&self.dir)?;
        }
        self.mappings_len += self.pending_mappings.len() as u64;
        self.pending_mappings.clear();
        Ok(())
    }

    fn flush_versions_inner(&mut self) -> Result<()> {
        if self.pending_versions.is_empty() {
            return Ok(());
        }
        let path = join(&self.dir, MUTABLE_VERSIONS);
        let existed = self.storage.is_file(&path)?;
        let f = self.storage.open(&path, OpenMode::Create)?;
        let len = f.len()?;
        if len % VERSION_ENTRY != 0 {
            f.set_len(len - len % VERSION_ENTRY)?;
        }
        // one write per run of consecutive internal ids
        let mut run: Option<(u32, Vec<u8>)> = None;
        for (&i, &v) in &self.pending_versions {
            if let Some((start, buf)) = &mut run {
                if u64::from(*start) + (buf.len() as u64 / VERSION_ENTRY) == u64::from(i) {
                    buf.extend_from_slice(&v.to_le_bytes());
                    continue;
                }
                f.write_at(u64::from(*start) * VERSION_ENTRY, buf)?;
            }
            run = Some((i, v.to_le_bytes().to_vec()));
        }
        if let Some((start, buf)) = run {
            f.write_at(u64::from(start) * VERSION_ENTRY, &buf)?;
        }
        f.sync()?;
        if !existed {
            self.storage.sync_dir(&self.dir)?;
        }
        self.pending_versions.clear();
        Ok(())
    }
}

// ---- immutable id tracker (§4.3) --------------------------------------------------------------

/// In-place updater of an optimized segment's tracker: `id_tracker.deleted` bits and
/// `id_tracker.versions` entries (shared by the immutable and the disk-resident tracker).
/// Internal ids must be below the tracker's count; the files are never extended.
#[derive(Debug)]
pub struct ImmutableIdTrackerUpdater<'s> {
    storage: &'s dyn Storage,
    dir: String,
    count: u64,
    deleted: Vec<u8>,
    pending_deleted: BTreeSet<usize>,
    pending_versions: BTreeMap<u32, u64>,
    sticky: Sticky,
}

impl<'s> ImmutableIdTrackerUpdater<'s> {
    pub fn open(storage: &'s dyn Storage, segment_dir: &str) -> Result<ImmutableIdTrackerUpdater<'s>> {
        let i2e = join(segment_dir, DISK_I2E);
        let count = if storage.is_file(&i2e)? {
            let f = storage.open(&i2e, OpenMode::Read)?;
            if f.len()? < 32 {
                return Err(FormatError::corrupt(&i2e, "shorter than its 32-byte header").into());
            }
            read_u64_at(&*f, 16)?
        } else {
            let m = join(segment_dir, IMMUTABLE_MAPPINGS);
            let f = storage.open(&m, OpenMode::Read)?;
            let len = f.len()?;
            if len < 8 {
                return Err(FormatError::corrupt(&m, "shorter than its 8-byte count").into());
            }
            let count = read_u64_at(&*f, 0)?;
            if count > (len - 8) / 13 {
                return Err(FormatError::corrupt(&m, format!("{count} entries cannot fit in {len} bytes")).into());
            }
            count
        };
        if count > u64::from(u32::MAX) + 1 {
            return Err(FormatError::corrupt(segment_dir, format!("tracker count {count} exceeds 2^32")).into());
        }
        let dpath = join(segment_dir, IMMUTABLE_DELETED);
        let deleted = storage.read_all(&dpath)?;
        if (deleted.len() as u64) < count.div_ceil(8) {
            return Err(FormatError::corrupt(
                &dpath,
                format!("{} bytes cannot hold {count} deleted flags", deleted.len()),
            )
            .into());
        }
        let vpath = join(segment_dir, IMMUTABLE_VERSIONS);
        let vlen = storage.open(&vpath, OpenMode::Read)?.len()?;
        if vlen < count.checked_mul(VERSION_ENTRY).ok_or_else(|| overflow(&vpath))? {
            return Err(FormatError::corrupt(&vpath, format!("{vlen} bytes cannot hold {count} versions")).into());
        }
        Ok(ImmutableIdTrackerUpdater {
            storage,
            dir: segment_dir.to_string(),
            count,
            deleted: deleted.to_vec(),
            pending_deleted: BTreeSet::new(),
            pending_versions: BTreeMap::new(),
            sticky: Sticky::default(),
        })
    }

    /// Number of internal ids.
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn is_deleted(&self, internal: u32) -> bool {
        u64::from(internal) >= self.count || crate::format::le::bit(&self.deleted, u64::from(internal))
    }

    fn check_id(&self, internal: u32) -> Result<()> {
        if u64::from(internal) >= self.count {
            return Err(Error::invalid(format!(
                "{}: internal id {internal} is not below the tracker's {} ids",
                self.dir, self.count
            )));
        }
        Ok(())
    }

    /// Mark `internal` deleted; returns whether it already was.
    pub fn mark_deleted(&mut self, internal: u32) -> Result<bool> {
        self.sticky.check(&self.dir)?;
        self.check_id(internal)?;
        let byte = internal as usize / 8;
        let mask = 1u8 << (internal % 8);
        let Some(b) = self.deleted.get_mut(byte) else {
            return Err(Error::Internal(format!("{}: deleted byte {byte} missing", self.dir)));
        };
        let prev = *b & mask != 0;
        if !prev {
            *b |= mask;
            self.pending_deleted.insert(byte);
        }
        Ok(prev)
    }

    pub fn set_version(&mut self, internal: u32, version: u64) -> Result<()> {
        self.sticky.check(&self.dir)?;
        self.check_id(internal)?;
        self.pending_versions.insert(internal, version);
        Ok(())
    }

    /// Write the changed `deleted` bytes (synced), then the versions (synced).
    pub fn flush(&mut self) -> Result<()> {
        self.sticky.check(&self.dir)?;
        let r = self.flush_inner();
        self.sticky.guard(r)
    }

    fn flush_inner(&mut self) -> Result<()> {
        if !self.pending_deleted.is_empty() {
            let f = self.storage.open(&join(&self.dir, IMMUTABLE_DELETED), OpenMode::ReadWrite)?;
            for &byte in &self.pending_deleted {
                if let Some(b) = self.deleted.get(byte) {
                    f.write_at(byte as u64, &[*b])?;
                }
            }
            f.sync()?;
            self.pending_deleted.clear();
        }
        if !self.pending_versions.is_empty() {
            let f = self.storage.open(&join(&self.dir, IMMUTABLE_VERSIONS), OpenMode::ReadWrite)?;
            for (&i, &v) in &self.pending_versions {
                f.write_at(u64::from(i) * VERSION_ENTRY, &v.to_le_bytes())?;
            }
            f.sync()?;
            self.pending_versions.clear();
        }
        Ok(())
    }
}

// ---- segment metadata (§3.2, §3.3, §8.1) ------------------------------------------------------

/// Write `<segment_dir>/segment.json` atomically (compact JSON, Qdrant's field order).
pub fn write_segment_state(storage: &dyn Storage, segment_dir: &str, state: &SegmentState) -> Result<()> {
    let json = serde_json::to_vec(state).map_err(|e| Error::Internal(format!("segment.json: {e}")))?;
    storage.write_atomic(&join(segment_dir, names::SEGMENT_STATE_FILE), &json)?;
    Ok(())
}

/// Write `<segment_dir>/version.info` (`0.6.0`) atomically.
pub fn write_version_info(storage: &dyn Storage, segment_dir: &str) -> Result<()> {
    storage.write_atomic(&join(segment_dir, names::VERSION_FILE), names::SEGMENT_FORMAT_VERSION.as_bytes())?;
    Ok(())
}

/// Write `<segment_dir>/payload_index/config.json` atomically (creating the directory).
pub fn write_payload_index_config(storage: &dyn Storage, segment_dir: &str, config: &PayloadIndexConfig) -> Result<()> {
    let dir = join(segment_dir, names::PAYLOAD_INDEX_DIR);
    storage.create_dir_all(&dir)?;
    let json = serde_json::to_vec(config).map_err(|e| Error::Internal(format!("payload index config: {e}")))?;
    storage.write_atomic(&join(&dir, names::PAYLOAD_INDEX_CONFIG_FILE), &json)?;
    Ok(())
}

/// Create an empty mutable Gridstore as Qdrant does (bitmask, gaps, tracker, first page, then
/// `config.json`): `bitmask.dat` = one bit per 128-byte block of a 32 MiB page (32768 zero
/// bytes); `gaps.dat` = per 8192-block region `{max, leading, trailing}: u16` all 8192;
/// `tracker.dat` = 1 MiB of zeros; `page_0.dat` = 32 MiB of zeros.
fn create_empty_gridstore(storage: &dyn Storage, dir: &str, compression: &str) -> Result<()> {
    storage.create_dir_all(dir)?;
    let blocks = GRID_PAGE_SIZE / GRID_BLOCK_SIZE;
    create_sized(storage, &join(dir, "bitmask.dat"), blocks / 8)?.sync()?;
    let regions = blocks / GRID_REGION_BLOCKS;
    let free = (GRID_REGION_BLOCKS as u16).to_le_bytes();
    let gaps: Vec<u8> = (0..regions * 3).flat_map(|_| free).collect();
    create_with(storage, &join(dir, "gaps.dat"), &gaps)?;
    create_sized(storage, &join(dir, "tracker.dat"), GRID_TRACKER_SIZE)?.sync()?;
    create_sized(storage, &join(dir, "page_0.dat"), GRID_PAGE_SIZE)?.sync()?;
    let cfg = format!(
        r#"{{"mode":"mutable","page_size_bytes":{GRID_PAGE_SIZE},"block_size_bytes":{GRID_BLOCK_SIZE},"region_size_blocks":{GRID_REGION_BLOCKS},"compression":"{compression}"}}"#
    );
    storage.write_atomic(&join(dir, "config.json"), cfg.as_bytes())?;
    Ok(())
}

/// Create the directory qdrant-edge creates for a new appendable segment
/// `<segments_dir>/<uuid>/` and return its path. In Qdrant's order: `payload_storage/` (empty
/// Gridstore, LZ4), each dense vector storage (`vectors/` [+ `offsets/`] + `deleted/`), each
/// sparse storage (`store/` Gridstore without compression + `deleted/`),
/// `payload_index/config.json` (`{"indexed_fields":{}}`), an empty `vector_index-<sparse>/`
/// per sparse vector, `segment.json` (`version: null`), and `version.info` last. No id
/// tracker files (the mutable tracker creates them on its first flush) and no chunk files.
pub fn create_appendable_segment(
    storage: &dyn Storage,
    segments_dir: &str,
    uuid: &str,
    config: &SegmentConfig,
) -> Result<String> {
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(Error::invalid_field("uuid", format!("`{uuid}` is not a UUID")));
    }
    if !config.is_appendable() {
        return Err(Error::invalid("the segment config is not appendable (plain index and chunked storages only)"));
    }
    let dir = join(segments_dir, uuid);
    // check everything before creating anything
    for (name, cfg) in &config.vector_data {
        check_vector_name(name)?;
        let vdir = join(&dir, &names::vector_storage_dir(name));
        check_dense_cfg(&vdir, cfg, cfg.multivector_config.is_some())?;
    }
    for (name, cfg) in &config.sparse_vector_data {
        check_vector_name(name)?;
        if cfg.storage_type != SparseVectorStorageType::Mmap {
            return Err(FormatError::unsupported(
                join(&dir, &names::vector_storage_dir(name)),
                format!("writing sparse storage type {:?}", cfg.storage_type),
            )
            .into());
        }
    }
    if storage.exists(&dir)? {
        return Err(Error::invalid(format!("{dir} already exists")));
    }
    storage.create_dir_all(&dir)?;

    create_empty_gridstore(storage, &join(&dir, names::PAYLOAD_STORAGE_DIR), "LZ4")?;
    for (name, cfg) in &config.vector_data {
        if cfg.multivector_config.is_some() {
            MultiVectorWriter::create(storage, &dir, name, cfg)?;
        } else {
            DenseVectorWriter::create(storage, &dir, name, cfg)?;
        }
        // Qdrant creates an appendable segment's binary quantization with it (mutable, empty).
        crate::format::binary_quantized_write::create_mutable_binary_storage(storage, &dir, name, cfg)?;
    }
    for name in config.sparse_vector_data.keys() {
        let vdir = join(&dir, &names::vector_storage_dir(name));
        create_empty_gridstore(storage, &join(&vdir, "store"), "None")?;
        SparseDeletedFlags::create(storage, &vdir)?;
        storage.sync_dir(&vdir)?;
    }
    write_payload_index_config(storage, &dir, &PayloadIndexConfig::default())?;
    for name in config.sparse_vector_data.keys() {
        storage.create_dir_all(&join(&dir, &names::vector_index_dir(name)))?;
    }
    storage.sync_dir(&dir)?;
    let state = SegmentState { initial_version: None, version: None, config: config.clone() };
    write_segment_state(storage, &dir, &state)?;
    // version.info last: a segment directory without it is incomplete
    write_version_info(storage, &dir)?;
    storage.sync_dir(segments_dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::dense::DenseVectorStorage;
    use crate::format::flags::read_flags_dir;
    use crate::format::id_tracker::IdTracker;
    use crate::format::multivector::MultiVectorStorage;
    use crate::format::segment_meta::{read_segment_state, read_version_info};
    use crate::format::sparse::decode_stored_sparse;
    use crate::storage::{DirEntry, MemoryStorage, StorageResult};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    fn put_file(st: &dyn Storage, path: &str, data: &[u8]) {
        st.create_dir_all(crate::storage::parent(path)).unwrap();
        let f = st.open(path, OpenMode::Create).unwrap();
        f.set_len(0).unwrap();
        f.write_at(0, data).unwrap();
    }

    fn file_len(st: &dyn Storage, path: &str) -> u64 {
        st.open(path, OpenMode::Read).unwrap().len().unwrap()
    }

    /// Every file under `dir` with its size, relative to `dir`; directories end with `/`.
    fn listing(st: &dyn Storage, dir: &str) -> Vec<(String, u64)> {
        fn walk(st: &dyn Storage, root: &str, rel: &str, out: &mut Vec<(String, u64)>) {
            for DirEntry { name, kind } in st.list_dir(&join(root, rel)).unwrap() {
                let r = join(rel, &name);
                match kind {
                    EntryKind::File => out.push((r.clone(), file_len(st, &join(root, &r)))),
                    EntryKind::Dir => {
                        out.push((format!("{r}/"), 0));
                        walk(st, root, &r, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(st, dir, "", &mut out);
        out.sort();
        out
    }

    /// A storage whose next mutating file operations (write/set_len/sync) can be made to fail
    /// once; later operations succeed again, so only a writer's own stickiness refuses them.
    #[derive(Debug, Default)]
    struct FailOnce {
        inner: MemoryStorage,
        ops: Arc<AtomicU64>,
        fail_at: Arc<AtomicU64>,
        fired: Arc<AtomicBool>,
    }
    #[derive(Debug)]
    struct FailOnceFile {
        inner: Arc<dyn StorageFile>,
        ops: Arc<AtomicU64>,
        fail_at: Arc<AtomicU64>,
        fired: Arc<AtomicBool>,
    }
    impl FailOnceFile {
        fn step(&self) -> StorageResult<()> {
            if self.ops.fetch_add(1, Ordering::SeqCst) == self.fail_at.load(Ordering::SeqCst) {
                self.fired.store(true, Ordering::SeqCst);
                return Err(StorageError::new("write", "x", StorageErrorKind::StorageFull, "injected once"));
            }
            Ok(())
        }
    }
    impl StorageFile for FailOnceFile {
        fn len(&self) -> StorageResult<u64> {
            self.inner.len()
        }
        fn read_at(&self, o: u64, b: &mut [u8]) -> StorageResult<()> {
            self.inner.read_at(o, b)
        }
        fn write_at(&self, o: u64, d: &[u8]) -> StorageResult<()> {
            self.step()?;
            self.inner.write_at(o, d)
        }
        fn set_len(&self, l: u64) -> StorageResult<()> {
            self.step()?;
            self.inner.set_len(l)
        }
        fn sync(&self) -> StorageResult<()> {
            self.step()?;
            self.inner.sync()
        }
    }
    impl Storage for FailOnce {
        fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
            Ok(Arc::new(FailOnceFile {
                inner: self.inner.open(path, mode)?,
                ops: self.ops.clone(),
                fail_at: self.fail_at.clone(),
                fired: self.fired.clone(),
            }))
        }
        fn list_dir(&self, p: &str) -> StorageResult<Vec<DirEntry>> {
            self.inner.list_dir(p)
        }
        fn create_dir_all(&self, p: &str) -> StorageResult<()> {
            self.inner.create_dir_all(p)
        }
        fn rename(&self, a: &str, b: &str) -> StorageResult<()> {
            self.inner.rename(a, b)
        }
        fn remove_file(&self, p: &str) -> StorageResult<()> {
            self.inner.remove_file(p)
        }
        fn remove_dir_all(&self, p: &str) -> StorageResult<()> {
            self.inner.remove_dir_all(p)
        }
        fn entry_kind(&self, p: &str) -> StorageResult<Option<EntryKind>> {
            self.inner.entry_kind(p)
        }
        fn sync_dir(&self, p: &str) -> StorageResult<()> {
            self.inner.sync_dir(p)
        }
        fn capabilities(&self) -> crate::storage::Capabilities {
            self.inner.capabilities()
        }
    }
    impl FailOnce {
        fn new() -> FailOnce {
            let f = FailOnce::default();
            f.fail_at.store(u64::MAX, Ordering::SeqCst);
            f
        }
        /// Fail the `n`-th (0-based) mutating file op from now on, once.
        fn arm(&self, n: u64) {
            self.fired.store(false, Ordering::SeqCst);
            self.fail_at.store(self.ops.load(Ordering::SeqCst) + n, Ordering::SeqCst);
        }
        fn fired(&self) -> bool {
            self.fired.load(Ordering::SeqCst)
        }
    }

    fn dense_cfg(dim: u64, dt: &str, multi: bool) -> VectorDataConfig {
        let mut j = format!(
            r#"{{"size":{dim},"distance":"Dot","storage_type":"InRamChunkedMmap","index":{{"type":"plain","options":{{}}}},"quantization_config":null,"datatype":"{dt}""#
        );
        if multi {
            j.push_str(r#","multivector_config":{"comparator":"max_sim"}"#);
        }
        j.push('}');
        serde_json::from_str(&j).unwrap()
    }

    // ---- flags -------------------------------------------------------------------------------

    #[test]
    fn flags_create_set_flush_reopen() {
        let st = MemoryStorage::new();
        let mut f = FlagsWriter::create(&st, "d").unwrap();
        assert_eq!(file_len(&st, "d/status.dat"), 16);
        assert_eq!(file_len(&st, "d/flags_a.dat"), 1 << 20);
        assert_eq!(&st.read_all("d/status.dat").unwrap()[..], &[0u8; 16]);
        assert!(FlagsWriter::create(&st, "d").is_err());
        for i in [0u64, 3, 9, 64, 65] {
            f.set(i, true).unwrap();
        }
        assert!(f.set(3, false).unwrap());
        f.set(70, false).unwrap(); // a false set also grows the length (Qdrant's buffered flags)
        assert_eq!(f.len(), 71);
        // nothing visible before flush
        assert!(read_flags_dir(&st, "d").unwrap().is_empty());
        f.flush().unwrap();
        let r = read_flags_dir(&st, "d").unwrap();
        assert_eq!(r.len(), 71);
        assert_eq!((0..80).filter(|&i| r.get(i)).collect::<Vec<_>>(), vec![0, 9, 64, 65]);
        let status = st.read_all("d/status.dat").unwrap();
        assert_eq!(&status[..], &[71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&st.read_all("d/flags_a.dat").unwrap()[..9], &[0x01, 0x02, 0, 0, 0, 0, 0, 0, 0x03]);
        // reopen sees the same; last_one / count
        let f = FlagsWriter::open(&st, "d").unwrap();
        assert_eq!((f.len(), f.count_ones(), f.last_one()), (71, 4, Some(65)));
        assert!(f.get(9) && !f.get(3) && !f.get(1000));
        // growing past 1 MiB of bits resizes to the next power of two
        let mut f = FlagsWriter::open(&st, "d").unwrap();
        f.set(8 * (1 << 20) + 5, true).unwrap();
        f.flush().unwrap();
        assert_eq!(file_len(&st, "d/flags_a.dat"), 2 << 20);
        let r = read_flags_dir(&st, "d").unwrap();
        assert!(r.get(8 * (1 << 20) + 5) && r.get(65) && !r.get(66));
        assert_eq!(flags_file_size(0), 1 << 20);
        assert_eq!(flags_file_size(8 * (1 << 20) + 1), 2 << 20);
        assert_eq!(flags_file_size(3 * 8 * (1 << 20)), 4 << 20);
    }

    #[test]
    fn flags_stale_bits_legacy_and_compact() {
        let st = MemoryStorage::new();
        // status says 10 flags; the file has garbage past the length (interrupted flush)
        let mut status = 10u64.to_le_bytes().to_vec();
        status.extend(0u64.to_le_bytes());
        put_file(&st, "d/status.dat", &status);
        put_file(&st, "d/flags_a.dat", &[0b0000_0001, 0b1111_1110, 0xff, 0xff]);
        let mut f = FlagsWriter::open(&st, "d").unwrap();
        assert_eq!(file_len(&st, "d/flags_a.dat"), 1 << 20); // sized on open, as Qdrant does
        assert!(f.get(0) && !f.get(10) && f.count_ones() == 2 && f.last_one() == Some(9));
        f.set(20, true).unwrap();
        f.flush().unwrap();
        let r = read_flags_dir(&st, "d").unwrap();
        let set: Vec<u64> = (0..32).filter(|&i| r.get(i)).collect();
        assert_eq!(set, vec![0, 9, 20]); // stale 10..20 cleared
                                         // a status claiming more flags than the file holds: missing bytes read as unset
        let st2 = MemoryStorage::new();
        let mut status = 100u64.to_le_bytes().to_vec();
        status.extend(0u64.to_le_bytes());
        put_file(&st2, "s/status.dat", &status);
        put_file(&st2, "s/flags_a.dat", &[0x80]);
        std::mem::drop(f);
        let mut f = FlagsWriter::open(&st2, "s").unwrap();
        assert!(f.get(7) && !f.get(8) && !f.get(99));
        f.set(50, true).unwrap();
        f.flush().unwrap();
        let r = read_flags_dir(&st2, "s").unwrap();
        assert_eq!((0..100).filter(|&i| r.get(i)).collect::<Vec<_>>(), vec![7, 50]);
        // legacy current_file_id = 1: flags_b is migrated into flags_a
        let st = MemoryStorage::new();
        let mut status = 3u64.to_le_bytes().to_vec();
        status.extend(1u64.to_le_bytes());
        put_file(&st, "l/status.dat", &status);
        put_file(&st, "l/flags_b.dat", &[0b010]);
        let f = FlagsWriter::open(&st, "l").unwrap();
        assert!(f.get(1) && !f.get(0));
        assert_eq!(&st.read_all("l/status.dat").unwrap()[8..], &[0; 8]);
        assert!(read_flags_dir(&st, "l").unwrap().get(1));
        // bad file id, short status, compact mode
        let mut status = 3u64.to_le_bytes().to_vec();
        status.extend(7u64.to_le_bytes());
        put_file(&st, "b/status.dat", &status);
        assert_eq!(FlagsWriter::open(&st, "b").unwrap_err().kind(), ErrorKind::Corrupted);
        put_file(&st, "b/status.dat", &[1, 2, 3]);
        assert_eq!(FlagsWriter::open(&st, "b").unwrap_err().kind(), ErrorKind::Corrupted);
        put_file(&st, "c/compact_flags.dat", b"QBMK");
        assert_eq!(FlagsWriter::open(&st, "c").unwrap_err().kind(), ErrorKind::Unsupported);
        let mut f = FlagsWriter::create(&st, "e").unwrap();
        assert_eq!(f.set(u64::from(u32::MAX) + 1, true).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn writers_are_sticky_after_a_storage_error() {
        let st = FailOnce::new();
        // flags: the first write of flush fails; the writer refuses everything afterwards
        let mut f = FlagsWriter::create(&st, "d").unwrap();
        f.set(3, true).unwrap();
        st.arm(0);
        assert_eq!(f.flush().unwrap_err().kind(), ErrorKind::Io);
        assert!(st.fired());
        assert_eq!(f.set(4, true).unwrap_err().kind(), ErrorKind::ShardClosed);
        assert_eq!(f.flush().unwrap_err().kind(), ErrorKind::ShardClosed);
        let mut f = FlagsWriter::open(&st, "d").unwrap(); // the storage itself works again
        f.set(3, true).unwrap();
        f.flush().unwrap();
        assert!(read_flags_dir(&st.inner, "d").unwrap().get(3));

        // chunked: preallocating the first chunk fails
        let mut c = ChunkedVectorsWriter::create(&st, "v", 2, 4).unwrap();
        st.arm(0);
        assert_eq!(c.put(0, &[0u8; 8]).unwrap_err().kind(), ErrorKind::Io);
        let e = c.put(0, &[0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ShardClosed, "{e}");
        assert_eq!(c.flush().unwrap_err().kind(), ErrorKind::ShardClosed);
        assert_eq!(c.get(0).unwrap_err().kind(), ErrorKind::ShardClosed);
        // invalid arguments do not poison a writer
        let mut c = ChunkedVectorsWriter::open(&st, "v", 4, Some(2)).unwrap();
        assert_eq!(c.put(1, &[1u8; 3]).unwrap_err().kind(), ErrorKind::InvalidArgument);
        c.put(1, &[1u8; 8]).unwrap();
        c.flush().unwrap();

        // dense: a failure inside the deleted-flags flush poisons the whole storage writer
        let cfg = dense_cfg(2, "float32", false);
        let mut d = DenseVectorWriter::create(&st, "seg", "x", &cfg).unwrap();
        d.put(0, Some(&[1.0, 2.0])).unwrap();
        st.arm(3); // 0 chunk sync, 1 status write, 2 status sync, 3 flags write
        assert_eq!(d.flush().unwrap_err().kind(), ErrorKind::Io);
        assert_eq!(d.put(1, Some(&[1.0, 2.0])).unwrap_err().kind(), ErrorKind::ShardClosed);
        assert_eq!(d.flush().unwrap_err().kind(), ErrorKind::ShardClosed);

        // mutable tracker: versions write fails after the mappings were synced
        st.create_dir_all("s").unwrap();
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        t.insert(PointId::Num(1), 0).unwrap();
        t.set_version(0, 5).unwrap();
        st.arm(2); // 0 mappings write, 1 mappings sync, 2 versions write
        assert_eq!(t.flush().unwrap_err().kind(), ErrorKind::Io);
        assert_eq!(t.insert(PointId::Num(2), 1).unwrap_err().kind(), ErrorKind::ShardClosed);
        assert_eq!(t.flush().unwrap_err().kind(), ErrorKind::ShardClosed);
        // on disk: a mapping without a version, i.e. an interrupted write (not live)
        assert_eq!(IdTracker::open(&st.inner, "s", true).unwrap().live_count(), 0);
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        assert_eq!(t.internal_id(PointId::Num(1)), Some(0));
        t.set_version(0, 5).unwrap();
        t.flush().unwrap();
        assert_eq!(IdTracker::open(&st.inner, "s", true).unwrap().internal_id(PointId::Num(1)), Some(0));

        // a torn append (half a record landed) is cut on the next flush
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        t.insert(PointId::Num(2), 1).unwrap();
        t.set_version(1, 6).unwrap();
        {
            let f = st.inner.open("s/mutable_id_tracker.mappings", OpenMode::ReadWrite).unwrap();
            f.write_at(13, &[1, 2, 0, 0, 0]).unwrap(); // a torn record another flush left behind
        }
        let mut t2 = MutableIdTrackerWriter::open(&st, "s").unwrap();
        t2.insert(PointId::Num(3), 1).unwrap();
        t2.set_version(1, 7).unwrap();
        t2.flush().unwrap();
        assert_eq!(file_len(&st.inner, "s/mutable_id_tracker.mappings"), 26);
        let r = IdTracker::open(&st.inner, "s", true).unwrap();
        assert_eq!(r.internal_id(PointId::Num(3)), Some(1));
        drop(t);
    }

    // ---- chunked -----------------------------------------------------------------------------

    #[test]
    fn chunked_config_sizing_matches_qdrant() {
        let st = MemoryStorage::new();
        for (dim, elem, json) in [
            (4, 4, r#"{"chunk_size_bytes":33554432,"chunk_size_vectors":2097152,"dim":4}"#),
            (48, 4, r#"{"chunk_size_bytes":33554304,"chunk_size_vectors":174762,"dim":48}"#),
            (3, 2, r#"{"chunk_size_bytes":33554430,"chunk_size_vectors":5592405,"dim":3}"#),
            (12, 2, r#"{"chunk_size_bytes":33554424,"chunk_size_vectors":1398101,"dim":12}"#),
            (5, 1, r#"{"chunk_size_bytes":33554430,"chunk_size_vectors":6710886,"dim":5}"#),
            (1, 12, r#"{"chunk_size_bytes":33554424,"chunk_size_vectors":2796202,"dim":1}"#),
        ] {
            let dir = format!("c{dim}_{elem}");
            let mut w = ChunkedVectorsWriter::create(&st, &dir, dim, elem).unwrap();
            assert_eq!(&st.read_all(&format!("{dir}/config.json")).unwrap()[..], json.as_bytes());
            assert_eq!(&st.read_all(&format!("{dir}/status.dat")).unwrap()[..], &[0u8; 8]);
            assert_eq!(w.chunk_count(), 0);
            w.put(0, &vec![7u8; (dim * elem) as usize]).unwrap();
            w.flush().unwrap();
            let chunk_bytes = serde_json::from_str::<serde_json::Value>(json).unwrap()["chunk_size_bytes"].as_u64();
            assert_eq!(Some(file_len(&st, &format!("{dir}/chunk_0.mmap"))), chunk_bytes);
        }
        assert!(ChunkedVectorsWriter::create(&st, "c4_4", 4, 4).is_err());
        assert_eq!(
            ChunkedVectorsWriter::create(&st, "huge", 1 << 24, 4).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(chunk_sizing(0).is_none());
    }

    #[test]
    fn chunked_put_across_chunks_flush_and_reopen() {
        let st = MemoryStorage::new();
        // a small-chunk directory (as Qdrant's test builds make): 3 records of 2 × u16 per chunk
        put_file(&st, "v/config.json", br#"{"chunk_size_bytes":12,"chunk_size_vectors":3,"dim":2}"#);
        let mut w = ChunkedVectorsWriter::open(&st, "v", 2, Some(2)).unwrap();
        assert!(w.is_empty());
        let rec = |i: u8| vec![i, 0, i, 1];
        for i in 0..7u8 {
            w.put(u64::from(i), &rec(i)).unwrap();
        }
        assert_eq!((w.len(), w.chunk_count()), (7, 3));
        // chunks are preallocated; status is written only by flush
        assert_eq!(file_len(&st, "v/chunk_2.mmap"), 12);
        assert!(!st.exists("v/status.dat").unwrap());
        w.flush().unwrap();
        let r = ChunkedVectors::open(&st, "v", 2, Some(2), Memory::Pinned).unwrap();
        assert_eq!(r.len(), 7);
        for i in 0..7u8 {
            assert_eq!(&r.record(u64::from(i)).unwrap().unwrap()[..], &rec(i)[..]);
        }
        // reopen: overwrite one, append with a gap (the gap reads as zeros)
        let mut w = ChunkedVectorsWriter::open(&st, "v", 2, Some(2)).unwrap();
        assert_eq!(w.get(4).unwrap(), Some(rec(4)));
        w.put(4, &rec(40)).unwrap();
        w.put(10, &rec(10)).unwrap();
        assert_eq!(w.get(11).unwrap(), None);
        w.flush().unwrap();
        let r = ChunkedVectors::open(&st, "v", 2, Some(2), Memory::Cold).unwrap();
        assert_eq!(r.len(), 11);
        assert_eq!(&r.record(4).unwrap().unwrap()[..], &rec(40)[..]);
        assert_eq!(&r.record(8).unwrap().unwrap()[..], &[0, 0, 0, 0]);
        assert_eq!(&r.record(10).unwrap().unwrap()[..], &rec(10)[..]);
        assert_eq!(&st.read_all("v/status.dat").unwrap()[..], &11u64.to_le_bytes());
        // wrong dim / record size
        assert_eq!(ChunkedVectorsWriter::open(&st, "v", 2, Some(3)).unwrap_err().kind(), ErrorKind::Corrupted);
        let mut w = ChunkedVectorsWriter::open(&st, "v", 2, Some(2)).unwrap();
        assert_eq!(w.put(0, &[1, 2]).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    // ---- dense / multi -----------------------------------------------------------------------

    #[test]
    fn dense_writer_all_datatypes() {
        let st = MemoryStorage::new();
        for (dt, dtype) in [("float32", Datatype::Float32), ("float16", Datatype::Float16), ("uint8", Datatype::Uint8)]
        {
            let cfg = dense_cfg(3, dt, false);
            let mut w = DenseVectorWriter::create(&st, "seg", dt, &cfg).unwrap();
            w.put(0, Some(&[0.5, -1.25, 300.7])).unwrap();
            w.put(1, None).unwrap(); // absent: default row + deleted
            w.put(2, Some(&[1.0, 2.0, 3.0])).unwrap();
            w.put(2, None).unwrap(); // existing row: only flagged
            w.flush().unwrap();
            let r = DenseVectorStorage::open(&st, "seg", dt, &cfg, Memory::Pinned).unwrap();
            assert_eq!(r.len(), 3);
            let want0: Vec<f32> = match dtype {
                Datatype::Float16 => vec![0.5, -1.25, f16::from_f32(300.7).to_f32()],
                Datatype::Uint8 => vec![0.0, 0.0, 255.0],
                _ => vec![0.5, -1.25, 300.7],
            };
            assert_eq!(r.get(0).unwrap(), Some(want0), "{dt}");
            assert_eq!(r.get(1).unwrap(), None);
            assert_eq!(r.get(2).unwrap(), None);
            // raw bytes of the absent row = Qdrant's default vector of ones
            let chunk = st.read_all(&format!("seg/vector_storage-{dt}/vectors/chunk_0.mmap")).unwrap();
            let rs = 3 * elem_size("x", dtype).unwrap() as usize;
            assert_eq!(&chunk[rs..2 * rs], &encode_elems(dtype, &[1.0; 3])[..]);
            assert_eq!(&chunk[2 * rs..3 * rs], &encode_elems(dtype, &[1.0, 2.0, 3.0])[..]);
            let flags = read_flags_dir(&st, &format!("seg/vector_storage-{dt}/deleted")).unwrap();
            assert_eq!((flags.len(), flags.get(0), flags.get(1), flags.get(2)), (3, false, true, true));
            // reopen and revive row 2
            let mut w = DenseVectorWriter::open(&st, "seg", dt, &cfg).unwrap();
            assert!(w.is_deleted(2));
            w.put(2, Some(&[4.0, 5.0, 6.0])).unwrap();
            assert_eq!(w.put(3, Some(&[1.0])).unwrap_err().kind(), ErrorKind::InvalidArgument);
            w.flush().unwrap();
            let r = DenseVectorStorage::open(&st, "seg", dt, &cfg, Memory::Cold).unwrap();
            assert_eq!(r.get(2).unwrap(), Some(vec![4.0, 5.0, 6.0]));
        }
        assert_eq!(encode_elems(Datatype::Uint8, &[-3.0, 4.7, f32::NAN, 1e9]), vec![0, 4, 0, 255]);
        let mc = dense_cfg(2, "float32", true);
        assert_eq!(DenseVectorWriter::create(&st, "seg", "m", &mc).unwrap_err().kind(), ErrorKind::InvalidArgument);
        let t4 = dense_cfg(2, "turbo4", false);
        assert_eq!(DenseVectorWriter::create(&st, "seg", "t", &t4).unwrap_err().kind(), ErrorKind::Unsupported);
        assert_eq!(
            DenseVectorWriter::create(&st, "seg", "../x", &dense_cfg(2, "float32", false)).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn multivector_writer_reuses_capacity() {
        let st = MemoryStorage::new();
        let cfg = dense_cfg(2, "float32", true);
        let mut w = MultiVectorWriter::create(&st, "s", "m", &cfg).unwrap();
        let mv = |n: usize, base: f32| (0..n).map(|i| vec![base + i as f32, -1.0]).collect::<Vec<_>>();
        w.put(0, Some(&mv(3, 0.0))).unwrap();
        w.put(1, None).unwrap(); // placeholder: one zero inner vector, deleted
        w.put(2, Some(&mv(1, 10.0))).unwrap();
        w.flush().unwrap();
        assert_eq!(w.offset(0).unwrap(), Some(MultiVectorOffset { offset: 0, count: 3, capacity: 3 }));
        assert_eq!(w.offset(1).unwrap(), Some(MultiVectorOffset { offset: 3, count: 1, capacity: 1 }));
        assert_eq!(w.offset(2).unwrap(), Some(MultiVectorOffset { offset: 4, count: 1, capacity: 1 }));
        let r = MultiVectorStorage::open(&st, "s", "m", &cfg, Memory::Pinned).unwrap();
        assert_eq!(r.get(0).unwrap(), Some(mv(3, 0.0)));
        assert_eq!(r.get(1).unwrap(), None);
        assert_eq!(r.get(2).unwrap(), Some(mv(1, 10.0)));
        let inner = st.read_all("s/vector_storage-m/vectors/chunk_0.mmap").unwrap();
        assert_eq!(&inner[24..32], &[0u8; 8]); // the placeholder
                                               // reopen: smaller fits the slot, larger moves to the end
        let mut w = MultiVectorWriter::open(&st, "s", "m", &cfg).unwrap();
        w.put(0, Some(&mv(2, 20.0))).unwrap();
        w.put(2, Some(&mv(4, 30.0))).unwrap();
        w.put(1, Some(&mv(1, 40.0))).unwrap(); // fits the placeholder slot
        w.put(3, Some(&mv(2, 50.0))).unwrap();
        assert_eq!(w.put(4, Some(&[])).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(w.put(4, Some(&[vec![1.0]])).unwrap_err().kind(), ErrorKind::InvalidArgument);
        w.flush().unwrap();
        assert_eq!(w.offset(0).unwrap(), Some(MultiVectorOffset { offset: 0, count: 2, capacity: 3 }));
        assert_eq!(w.offset(1).unwrap(), Some(MultiVectorOffset { offset: 3, count: 1, capacity: 1 }));
        assert_eq!(w.offset(2).unwrap(), Some(MultiVectorOffset { offset: 5, count: 4, capacity: 4 }));
        assert_eq!(w.offset(3).unwrap(), Some(MultiVectorOffset { offset: 9, count: 2, capacity: 2 }));
        assert_eq!(w.inner_len(), 11);
        let r = MultiVectorStorage::open(&st, "s", "m", &cfg, Memory::Cold).unwrap();
        assert_eq!(r.get(0).unwrap(), Some(mv(2, 20.0)));
        assert_eq!(r.get(1).unwrap(), Some(mv(1, 40.0)));
        assert_eq!(r.get(2).unwrap(), Some(mv(4, 30.0)));
        assert_eq!(r.get(3).unwrap(), Some(mv(2, 50.0)));
        let offs = st.read_all("s/vector_storage-m/offsets/chunk_0.mmap").unwrap();
        assert_eq!(&offs[..12], &[0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    }

    // ---- sparse ------------------------------------------------------------------------------

    #[test]
    fn sparse_encoding_matches_real_bytes() {
        // spec §5.6: indices [2, 9, 93], weights [0.6354, 0.2908, 0.7922]
        let real: [u8; 32] = [
            0x04, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xc0, 0x01, 0x15, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x67, 0xa8, 0x22, 0x3f, 0x90,
            0xe6, 0x94, 0x3e, 0x9f, 0xcc, 0x4a, 0x3f,
        ];
        let v = decode_stored_sparse(&real, "x").unwrap();
        assert_eq!(encode_stored_sparse(&v), real.to_vec());
        // unsorted input is sorted with its weights
        let u = SparseVector { indices: vec![93, 2, 9], values: vec![v.values[2], v.values[0], v.values[1]] };
        assert_eq!(encode_stored_sparse(&u), real.to_vec());
        // empty: zero index bytes, zero weights
        let e = encode_stored_sparse(&SparseVector { indices: vec![], values: vec![] });
        assert_eq!(e, vec![0u8; 16]);
        assert_eq!(decode_stored_sparse(&e, "x").unwrap().indices, Vec::<u32>::new());
        // wide deltas and the u32 maximum round-trip
        for idx in [vec![0u32], vec![255], vec![256], vec![1, 1000, 70_000, u32::MAX], vec![5, 6, 7]] {
            let s = SparseVector { indices: idx.clone(), values: idx.iter().map(|&i| i as f32 * 0.5).collect() };
            let d = decode_stored_sparse(&encode_stored_sparse(&s), "x").unwrap();
            assert_eq!(d, s);
        }
        // B = 10 (header 2), deltas 1000 and 5: 2 | 1000 << 6 | 5 << 16 = 0x05FA02
        assert_eq!(delta_pack(&[1000, 1005]), vec![0x02, 0xfa, 0x05, 0x00]);
        assert_eq!(crate::format::sparse::delta_unpack(&delta_pack(&[1000, 1005])).unwrap(), vec![1000, 1005]);
        assert_eq!(delta_pack(&[]), Vec::<u8>::new());
    }

    #[test]
    fn sparse_flags_follow_next_point_offset() {
        let st = MemoryStorage::new();
        st.create_dir_all("s/vector_storage-sp").unwrap();
        let mut f = SparseDeletedFlags::create(&st, "s/vector_storage-sp").unwrap();
        let v = SparseVector { indices: vec![1], values: vec![0.5] };
        // present at a fresh id: no flag change
        assert!(matches!(f.put(0, Some(&v)).unwrap(), SparseStoreOp::Put(_)));
        assert_eq!(f.flags().len(), 0);
        assert_eq!(f.put(1, None).unwrap(), SparseStoreOp::Delete);
        assert_eq!(f.put(0, Some(&v)).unwrap(), SparseStoreOp::Put(encode_stored_sparse(&v)));
        assert_eq!((f.flags().len(), f.is_deleted(1), f.next_point_offset()), (2, true, 2));
        f.flush().unwrap();
        // reopen: next_point_offset from the last set flag (no store here)
        let f = SparseDeletedFlags::open(&st, "s", "sp").unwrap();
        assert_eq!(f.next_point_offset(), 2);
        let f = SparseDeletedFlags::open_with_bound(&st, "s/vector_storage-sp", 7).unwrap();
        assert_eq!(f.next_point_offset(), 7);
    }

    // ---- id trackers -------------------------------------------------------------------------

    const U: &str = "12345678-1234-5678-1234-567812345678";

    #[test]
    fn mutable_tracker_writes_the_spec_log() {
        let st = MemoryStorage::new();
        assert_eq!(MutableIdTrackerWriter::open(&st, "s").unwrap_err().kind(), ErrorKind::NotFound);
        st.create_dir_all("s").unwrap();
        let u = PointId::Uuid(uuid::Uuid::parse_str(U).unwrap());
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        for (ext, i) in [(PointId::Num(4), 0), (u, 1), (PointId::Num(2), 2), (PointId::Num(1), 3)] {
            t.insert(ext, i).unwrap();
            t.set_version(i, 10 + u64::from(i)).unwrap();
        }
        t.insert(PointId::Num(5), 4).unwrap();
        t.insert(PointId::Num(3), 5).unwrap();
        t.set_version(4, 14).unwrap();
        t.set_version(5, 15).unwrap();
        assert_eq!(t.delete(PointId::Num(3)).unwrap(), Some(5));
        assert_eq!(t.version(5), Some(0));
        t.set_version(5, 16).unwrap();
        assert!(!st.exists("s/mutable_id_tracker.mappings").unwrap()); // nothing before flush
        t.flush().unwrap();
        let log = st.read_all("s/mutable_id_tracker.mappings").unwrap();
        let mut want = Vec::new();
        want.extend([1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        want.push(2);
        want.extend(uuid::Uuid::parse_str(U).unwrap().as_bytes());
        want.extend([1, 0, 0, 0]);
        want.extend([1, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        want.extend([1, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        want.extend([1, 5, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]);
        want.extend([1, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]);
        want.extend([3, 3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&log[..], &want[..]);
        let vers: Vec<u8> = [10u64, 11, 12, 13, 14, 16].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(&st.read_all("s/mutable_id_tracker.versions").unwrap()[..], &vers[..]);
        let r = IdTracker::open(&st, "s", true).unwrap();
        assert_eq!(r.live_count(), 5);
        assert_eq!(r.internal_id(u), Some(1));
        assert_eq!(r.internal_id(PointId::Num(3)), None);

        // reopen: replayed state; a torn tail is cut before the next append; a partial
        // versions entry is cut before writing
        let mut torn = log.to_vec();
        torn.extend([1, 9, 0, 0]);
        put_file(&st, "s/mutable_id_tracker.mappings", &torn);
        let mut v = vers.clone();
        v.extend([7, 7, 7]);
        put_file(&st, "s/mutable_id_tracker.versions", &v);
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        assert_eq!((t.total_point_count(), t.mapped_count()), (6, 5));
        assert_eq!(t.internal_id(PointId::Num(5)), Some(4));
        assert_eq!(t.external_id(1), Some(u));
        assert_eq!(t.external_id(5), None);
        assert_eq!(t.version(5), Some(16));
        t.insert(PointId::Num(9), 6).unwrap();
        t.set_version(6, 17).unwrap();
        assert_eq!(t.delete(PointId::Num(777)).unwrap(), None); // logged anyway
        t.flush().unwrap();
        let log2 = st.read_all("s/mutable_id_tracker.mappings").unwrap();
        assert_eq!(&log2[..log.len()], &log[..]);
        assert_eq!(&log2[log.len()..], &[1, 9, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 3, 0x09, 0x03, 0, 0, 0, 0, 0, 0]);
        let v2 = st.read_all("s/mutable_id_tracker.versions").unwrap();
        assert_eq!(v2.len(), 56);
        assert_eq!(&v2[48..], &17u64.to_le_bytes());
        let r = IdTracker::open(&st, "s", true).unwrap();
        assert_eq!(r.internal_id(PointId::Num(9)), Some(6));
        assert_eq!(r.version(6), Some(17));
        // a mappings file shorter than what was read is an error, not silent loss
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        put_file(&st, "s/mutable_id_tracker.mappings", &log[..10]);
        t.insert(PointId::Num(10), 7).unwrap();
        assert_eq!(t.flush().unwrap_err().kind(), ErrorKind::Corrupted);
        // unknown record type
        put_file(&st, "s/mutable_id_tracker.mappings", &[7, 0, 0]);
        assert_eq!(MutableIdTrackerWriter::open(&st, "s").unwrap_err().kind(), ErrorKind::Corrupted);
    }

    #[test]
    fn mutable_tracker_versions_with_gaps() {
        let st = MemoryStorage::new();
        st.create_dir_all("s").unwrap();
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        for (i, v) in [(0u32, 1u64), (1, 2), (5, 6), (6, 7), (9, 10)] {
            t.set_version(i, v).unwrap();
        }
        t.flush().unwrap();
        let b = st.read_all("s/mutable_id_tracker.versions").unwrap();
        let want: Vec<u8> = [1u64, 2, 0, 0, 0, 6, 7, 0, 0, 10].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(&b[..], &want[..]);
        assert!(!st.exists("s/mutable_id_tracker.mappings").unwrap()); // no mapping ⇒ no file
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        assert_eq!((t.version(6), t.version(7), t.version(10)), (Some(7), Some(0), None));
        t.set_version(3, 4).unwrap();
        t.flush().unwrap();
        assert_eq!(&st.read_all("s/mutable_id_tracker.versions").unwrap()[24..32], &4u64.to_le_bytes());
    }

    #[test]
    fn mutable_tracker_relinks_like_qdrant() {
        let st = MemoryStorage::new();
        st.create_dir_all("s").unwrap();
        let mut t = MutableIdTrackerWriter::open(&st, "s").unwrap();
        t.insert(PointId::Num(7), 0).unwrap();
        t.insert(PointId::Num(7), 1).unwrap(); // moves: slot 0 tombstoned
        t.insert(PointId::Num(8), 1).unwrap(); // reuse of slot 1 drops 7
        for i in 0..2 {
            t.set_version(i, 1).unwrap();
        }
        assert_eq!((t.internal_id(PointId::Num(7)), t.internal_id(PointId::Num(8))), (None, Some(1)));
        t.flush().unwrap();
        let r = IdTracker::open(&st, "s", true).unwrap();
        assert_eq!(r.iter_live().collect::<Vec<_>>(), vec![(PointId::Num(8), 1)]);
    }

    fn immutable_files(st: &MemoryStorage, n: u32) {
        let mut m = u64::from(n).to_le_bytes().to_vec();
        for i in 0..n {
            m.push(0);
            m.extend((u64::from(i) + 100).to_le_bytes());
            m.extend(i.to_le_bytes());
        }
        put_file(st, "o/id_tracker.mappings", &m);
        put_file(st, "o/id_tracker.deleted", &vec![0u8; (u64::from(n).div_ceil(8).div_ceil(8) * 8) as usize]);
        let v: Vec<u8> = (0..n).flat_map(|i| (u64::from(i) + 1).to_le_bytes()).collect();
        put_file(st, "o/id_tracker.versions", &v);
    }

    #[test]
    fn immutable_tracker_updates_in_place() {
        let st = MemoryStorage::new();
        immutable_files(&st, 20);
        let mut u = ImmutableIdTrackerUpdater::open(&st, "o").unwrap();
        assert_eq!(u.count(), 20);
        assert!(!u.mark_deleted(0).unwrap());
        assert!(u.mark_deleted(0).unwrap());
        u.mark_deleted(1).unwrap();
        u.mark_deleted(17).unwrap();
        u.set_version(17, 99).unwrap();
        assert_eq!(u.mark_deleted(20).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(u.set_version(20, 1).unwrap_err().kind(), ErrorKind::InvalidArgument);
        u.flush().unwrap();
        let d = st.read_all("o/id_tracker.deleted").unwrap();
        assert_eq!(&d[..], &[0x03, 0, 0x02, 0, 0, 0, 0, 0]); // the spec's "first byte 0x03" after two deletes
        assert_eq!(file_len(&st, "o/id_tracker.versions"), 160);
        let r = IdTracker::open(&st, "o", false).unwrap();
        assert_eq!(r.live_count(), 17);
        assert_eq!(r.internal_id(PointId::Num(117)), None);
        assert_eq!(r.version(17), Some(99));
        assert_eq!(r.internal_id(PointId::Num(102)), Some(2));
        // too-short files are corruption
        put_file(&st, "o/id_tracker.deleted", &[0u8; 2]);
        assert_eq!(ImmutableIdTrackerUpdater::open(&st, "o").unwrap_err().kind(), ErrorKind::Corrupted);
        immutable_files(&st, 20);
        put_file(&st, "o/id_tracker.versions", &[0u8; 100]);
        assert_eq!(ImmutableIdTrackerUpdater::open(&st, "o").unwrap_err().kind(), ErrorKind::Corrupted);
        put_file(&st, "o/id_tracker.mappings", &[5, 0, 0]);
        assert_eq!(ImmutableIdTrackerUpdater::open(&st, "o").unwrap_err().kind(), ErrorKind::Corrupted);
        assert_eq!(ImmutableIdTrackerUpdater::open(&st, "none").unwrap_err().kind(), ErrorKind::NotFound);
    }

    // ---- segment -----------------------------------------------------------------------------

    /// The segment qdrant-edge 0.9.0 created for this config (listing of a real empty segment).
    const EDGE_CONFIG: &str = r#"{"vector_data":{"d":{"size":4,"distance":"Cosine","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},"quantization_config":null},"h":{"size":3,"distance":"Cosine","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},"quantization_config":null,"datatype":"float16"},"m":{"size":2,"distance":"Cosine","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},"quantization_config":null,"multivector_config":{"comparator":"max_sim"}},"u":{"size":5,"distance":"Dot","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},"quantization_config":null,"datatype":"uint8"}},"sparse_vector_data":{"s":{"index":{"full_scan_threshold":null,"index_type":"MutableRam"},"storage_type":"mmap"}},"payload_storage_type":{"type":"mmap"}}"#;

    #[test]
    fn new_appendable_segment_matches_qdrant_edge() {
        let st = MemoryStorage::new();
        let cfg: SegmentConfig = serde_json::from_str(EDGE_CONFIG).unwrap();
        let uuid = "adb8ac16-4e40-4be5-acb9-e792b447af64";
        let dir = create_appendable_segment(&st, "segments", uuid, &cfg).unwrap();
        assert_eq!(dir, format!("segments/{uuid}"));
        let got = listing(&st, &dir);
        let flags = |v: &str| {
            vec![
                (format!("{v}/deleted/"), 0),
                (format!("{v}/deleted/flags_a.dat"), 1 << 20),
                (format!("{v}/deleted/status.dat"), 16),
            ]
        };
        let chunked = |v: &str, sub: &str| {
            vec![
                (format!("{v}/{sub}/"), 0),
                (format!("{v}/{sub}/config.json"), 66),
                (format!("{v}/{sub}/status.dat"), 8),
            ]
        };
        let grid = |d: &str, cfg_len: u64| {
            vec![
                (format!("{d}/"), 0),
                (format!("{d}/bitmask.dat"), 32768),
                (format!("{d}/config.json"), cfg_len),
                (format!("{d}/gaps.dat"), 192),
                (format!("{d}/page_0.dat"), 33554432),
                (format!("{d}/tracker.dat"), 1 << 20),
            ]
        };
        let mut want: Vec<(String, u64)> = vec![
            ("payload_index/".into(), 0),
            ("payload_index/config.json".into(), 21),
            ("segment.json".into(), 0),
            ("vector_index-s/".into(), 0),
            ("version.info".into(), 5),
        ];
        want.extend(grid("payload_storage", 114));
        for v in ["d", "h", "u"] {
            let vs = format!("vector_storage-{v}");
            want.push((format!("{vs}/"), 0));
            want.extend(flags(&vs));
            want.extend(chunked(&vs, "vectors"));
        }
        want.push(("vector_storage-m/".into(), 0));
        want.extend(flags("vector_storage-m"));
        want.extend(chunked("vector_storage-m", "offsets"));
        want.extend(chunked("vector_storage-m", "vectors"));
        want.push(("vector_storage-s/".into(), 0));
        want.extend(flags("vector_storage-s"));
        want.extend(grid("vector_storage-s/store", 115));
        want.sort();
        let got: Vec<(String, u64)> =
            got.into_iter().map(|(p, l)| if p == "segment.json" { (p, 0) } else { (p, l) }).collect();
        assert_eq!(got, want);
        // contents
        assert_eq!(read_version_info(&st, &dir).unwrap(), "0.6.0");
        let state = read_segment_state(&st, &dir).unwrap();
        assert_eq!((state.initial_version, state.version), (None, None));
        assert_eq!(state.config, cfg);
        let sj = st.read_all(&format!("{dir}/segment.json")).unwrap();
        assert!(sj.starts_with(br#"{"initial_version":null,"version":null,"config":{"vector_data":{"d":{"size":4,"#));
        assert_eq!(&st.read_all(&format!("{dir}/payload_index/config.json")).unwrap()[..], br#"{"indexed_fields":{}}"#);
        assert_eq!(
            &st.read_all(&format!("{dir}/payload_storage/config.json")).unwrap()[..],
            br#"{"mode":"mutable","page_size_bytes":33554432,"block_size_bytes":128,"region_size_blocks":8192,"compression":"LZ4"}"#
        );
        assert_eq!(
            &st.read_all(&format!("{dir}/vector_storage-m/offsets/config.json")).unwrap()[..],
            br#"{"chunk_size_bytes":33554424,"chunk_size_vectors":2796202,"dim":1}"#
        );
        let gaps = st.read_all(&format!("{dir}/payload_storage/gaps.dat")).unwrap();
        assert!(gaps.chunks(2).all(|c| c == [0x00, 0x20]));
        // our readers open it as an empty segment
        let seg = crate::segment::Segment::open(&st, &dir, Default::default()).unwrap();
        let _ = seg;
        let t = IdTracker::open(&st, &dir, true).unwrap();
        assert_eq!(t.total_point_count(), 0);
        // refusals
        assert_eq!(
            create_appendable_segment(&st, "segments", uuid, &cfg).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            create_appendable_segment(&st, "segments", "not-a-uuid", &cfg).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let mut bad = cfg.clone();
        bad.vector_data.get_mut("d").unwrap().storage_type = crate::format::segment_meta::VectorStorageType::InRamMmap;
        let other = "0b8c6b7e-1b47-4e55-9d4c-0123456789ab";
        assert_eq!(
            create_appendable_segment(&st, "segments", other, &bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(!st.exists(&format!("segments/{other}")).unwrap());
    }

    #[test]
    fn segment_state_and_version_round_trip() {
        let st = MemoryStorage::new();
        st.create_dir_all("s").unwrap();
        let cfg: SegmentConfig = serde_json::from_str(EDGE_CONFIG).unwrap();
        let state = SegmentState { initial_version: None, version: Some(42), config: cfg };
        write_segment_state(&st, "s", &state).unwrap();
        assert_eq!(read_segment_state(&st, "s").unwrap(), state);
        assert!(!st.exists("s/segment.json.tmp").unwrap());
        write_version_info(&st, "s").unwrap();
        assert_eq!(&st.read_all("s/version.info").unwrap()[..], b"0.6.0");
        let mut pic = PayloadIndexConfig::default();
        pic.indexed_fields.insert("k".into(), serde_json::json!("keyword"));
        write_payload_index_config(&st, "s", &pic).unwrap();
        assert_eq!(&st.read_all("s/payload_index/config.json").unwrap()[..], br#"{"indexed_fields":{"k":"keyword"}}"#);
    }
}
