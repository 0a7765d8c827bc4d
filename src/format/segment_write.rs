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
        dt => Err(FormatError::unsupported(dir, format!("writing vector datatype {dt:?} (TurboQuant) is not supported"))
            .into()),
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
        let flags = create_sized(storage, &flags_path, flags_file_size(len))?;
        let flags_len = flags.len()?;
        let used = len.div_ceil(8).min(flags_len);
        let mut bits = vec![0u8; to_usize(len.div_ceil(8), &flags_path)?];
        flags.read_at(0, &mut bits[..to_usize(used, &flags_path)?])?;
        if len % 8 != 0 {
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
            self.bits.resize(new_bytes, 0);
            // the bytes between the old and the new length are rewritten (cleared) on flush
            let from = to_usize(self.len / 8, &self.dir)?.min(old_bytes);
            self.mark_dirty(from, new_bytes);
            self.len = new_len;
        }
        let byte = to_usize(i / 8, &self.dir)?;
        let mask = 1u8 << (i % 8);
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
/// `put(k, record)` writes record `k` straight into its chunk (creating every missing chunk up
/// to it, each preallocated to `chunk_size_bytes`) and raises `len` to `k + 1`; `flush` syncs
/// the touched chunks and then writes `status.dat` (last).
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
    pub fn create(
        storage: &'s dyn Storage,
        dir: &str,
        dim: u64,
        elem_size: u64,
    ) -> Result<ChunkedVectorsWriter<'s>> {
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
        let off = (k % self.config.chunk_size_vectors).checked_mul(self.record_size).ok_or_else(|| overflow(&self.dir))?;
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
        f.read_at(off, &mut buf)?;
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
        if k > u64::from(u32::MAX) * 64 {
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
        let f = &self.chunks[chunk];
        f.write_at(off, record)?;
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
        Ok(DenseVectorWriter { dir, dim: cfg.size, datatype: cfg.datatype(), vectors, deleted, sticky: Sticky::default() })
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
        Ok(DenseVectorWriter { dir, dim: cfg.size, datatype: cfg.datatype(), vectors, deleted, sticky: Sticky::default() })
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
        self.sticky.check(&self.dir)?;
        let r = self.flush_inner();
        self.sticky.guard(r)
    }

    fn flush_inner(&mut self) -> Result<()> {
        if !self.pending_mappings.is_empty() {
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
        }
        if !self.pending_versions.is_empty() {
            let path = join(&self.dir, MUTABLE_VERSIONS);
            let existed = self.storage.is_file(&path)?;
            let f = self.storage.open(&path, OpenMode::Create)?;
            let len = f.len()?;
            if len % VERSION_ENTRY != 0 {
                f.set_len(len - len % VERSION_ENTRY)?;
            }
            // coalesce runs of consecutive internal ids into one write each
            let mut run_start: Option<u32> = None;
            let mut buf: Vec<u8> = Vec::new();
            let mut prev: Option<u32> = None;
            for (&i, &v) in &self.pending_versions {
                if prev.is_some_and(|p| p.checked_add(1) != Some(i)) {
                    if let Some(s) = run_start {
                        f.write_at(u64::from(s) * VERSION_ENTRY, &buf)?;
                    }
                    buf.clear();
                    run_start = None;
                }
                run_start.get_or_insert(i);
                buf.extend_from_slice(&v.to_le_bytes());
                prev = Some(i);
            }
            if let Some(s) = run_start {
                f.write_at(u64::from(s) * VERSION_ENTRY, &buf)?;
            }
            f.sync()?;
            if !existed {
                self.storage.sync_dir(&self.dir)?;
            }
            self.pending_versions.clear();
        }
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
