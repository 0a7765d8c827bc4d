//! Gridstore writer (spec §7.1–7.3, §7.5, §1.5, §1.6): creates, updates and flushes the mutable
//! Blobstore used by payload storage (`payload_storage/`, LZ4), sparse vector storage (`store/`,
//! uncompressed) and mutable field indexes, laid out exactly as Qdrant Edge 0.9.0 lays it out.
//! Reading goes through [`crate::format::gridstore`]; this module adds the allocation state.
//!
//! Files (all integers little-endian):
//!
//! | File | Offset | Width | Content |
//! |---|---|---|---|
//! | `config.json` | | | `{"mode":"mutable","page_size_bytes":P,"block_size_bytes":B,"region_size_blocks":R,"compression":"LZ4"\|"None"}`, written last at creation (atomic replace) |
//! | `tracker.dat` | 0 | u32 | `next_pointer_offset` = 1 + highest key ever put |
//! | | 4 + 16k | 16 | slot of key *k*: `u32 discriminant` (0 None, 1 Some), `u32 page_id`, `u32 block_offset`, `u32 length` (stored bytes) |
//! | | | | created at 1 MiB; grown to the next power of two of the end of a slot that does not fit |
//! | `tracker_journal.dat` | | | entries appended by each flush *before* the tracker is written: `u32 len`, `u32 crc32c(payload)`, payload = len/20 records of `u32 key` + 16-byte slot; at most 2^20 records per entry |
//! | `page_<n>.dat` | | P | value bytes; a value starts at `block_offset × B` of page `page_id` and runs on at offset 0 of the following pages |
//! | `bitmask.dat` | | P/B/8 per page | bit *i* (bit `i % 8` of byte `i / 8`) = block *i* of the concatenated pages is used |
//! | `gaps.dat` | 6r | 6 | region *r* (R blocks): `u16 max` free run, `u16 leading` free blocks, `u16 trailing` free blocks |
//!
//! Allocation (§7.3), as Qdrant does it: a value needs `ceil(stored_len / B)` consecutive
//! blocks. The region gaps pick the first window of regions that can hold them (one region whose
//! `max` fits, else the fewest consecutive regions whose middle ones are entirely free and whose
//! edge runs add up, else one region more); inside that window the first free run of the bitmask
//! wins. When nothing fits, enough pages to cover the missing blocks beyond the trailing free run
//! are appended. A value is never placed over blocks of a pointer that is still persisted: replaced
//! and deleted values are freed only after the tracker that stops pointing at them is durable.
//!
//! Flush order (Qdrant's): new page files → bitmask and gaps (newly used blocks) → page bytes →
//! journal entry (synced; this is the commit point) → tracker slots and header (synced) → the
//! journal is removed once it is past 20480 bytes → blocks of replaced values are freed in the
//! bitmask and gaps (synced). Opening replays a journal onto `tracker.dat`, syncs it and removes
//! the journal, as Qdrant's writable open does; a torn journal tail is ignored.
//!
//! Deviations from Qdrant 0.9.0, both on the safe side: a value put and then deleted before a
//! flush also frees the blocks of the value persisted before it (Qdrant leaks those blocks), and
//! opening covers page files that a crashed flush created but did not yet add to the bitmask
//! (Qdrant refuses to open such a store).
//!
//! Values put since the last flush are kept in memory (compressed) and written at flush; `get`
//! sees them. After any storage error the writer refuses every further call (sticky failure), so
//! nothing half-applied is flushed later; reopen the store to continue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, FormatError, StorageError, StorageErrorKind};
use crate::format::gridstore::{
    decompress_lz4, BlobstoreConfig, Compression, Gridstore, Mode, ValuePointer, CONFIG_FILE, JOURNAL_FILE,
    TRACKER_FILE,
};
use crate::format::segment_meta::parse_json;
use crate::format::segment_write::WriteRun;
use crate::storage::{join, EntryKind, OpenMode, Storage, StorageFile};

pub const BITMASK_FILE: &str = "bitmask.dat";
pub const GAPS_FILE: &str = "gaps.dat";
/// Size of a new `tracker.dat`.
pub const TRACKER_INITIAL_SIZE: u64 = 1 << 20;
/// A journal longer than this is removed after a flush (1024 records).
pub const JOURNAL_MAX_SIZE: u64 = 1024 * RECORD as u64;

const HEADER: u64 = 4;
const SLOT: u64 = 16;
const RECORD: usize = 20;
const GAP: u64 = 6;
const JOURNAL_MAX_ENTRY_RECORDS: usize = 1 << 20;
/// Granularity (bytes of `bitmask.dat`) at which changed bitmask bytes are rewritten.
const DIRTY_CHUNK: u64 = 4096;

/// File name of page `id`.
pub fn page_file(id: u32) -> String {
    format!("page_{id}.dat")
}

/// Geometry and compression of a Gridstore (`config.json`, §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridstoreConfig {
    pub page_size_bytes: u64,
    pub block_size_bytes: u64,
    pub region_size_blocks: u64,
    pub compression: Compression,
}

impl GridstoreConfig {
    /// Payload storage: 32 MiB pages, 128-byte blocks, 8192 blocks per region, LZ4.
    pub fn payload() -> Self {
        GridstoreConfig {
            page_size_bytes: 32 << 20,
            block_size_bytes: 128,
            region_size_blocks: 8192,
            compression: Compression::LZ4,
        }
    }

    /// Sparse vector `store/`: the payload geometry, uncompressed.
    pub fn sparse_vectors() -> Self {
        GridstoreConfig { compression: Compression::None, ..Self::payload() }
    }

    /// The geometry of a parsed `config.json`; `file` names it in errors.
    pub fn from_blobstore(config: &BlobstoreConfig, file: &str) -> Result<Self, Error> {
        if config.mode != Mode::Mutable {
            return Err(FormatError::unsupported(file, "append-only (Logstore) blobstores cannot be written").into());
        }
        let c = GridstoreConfig {
            page_size_bytes: config.page_size_bytes,
            block_size_bytes: config.block_size_bytes.unwrap_or(0),
            region_size_blocks: config.region_size_blocks.unwrap_or(0),
            compression: config.compression,
        };
        c.validate().map_err(|m| FormatError::corrupt(file, m))?;
        Ok(c)
    }

    /// Qdrant's constraints, plus whole bitmask bytes per page and `u32` block offsets.
    pub fn validate(&self) -> Result<(), String> {
        let (p, b, r) = (self.page_size_bytes, self.block_size_bytes, self.region_size_blocks);
        if b == 0 || r == 0 || p == 0 {
            return Err(format!("page ({p}), block ({b}) and region ({r}) sizes must be positive"));
        }
        if r > u64::from(u16::MAX) {
            return Err(format!("region_size_blocks {r} does not fit the 16-bit gap counters"));
        }
        let region_bytes = b.checked_mul(r).ok_or("block × region size overflows")?;
        if p % region_bytes != 0 {
            return Err(format!("page_size_bytes {p} is not a multiple of block × region size {region_bytes}"));
        }
        let blocks = p / b;
        if blocks % 8 != 0 {
            return Err(format!("{blocks} blocks per page do not fill whole bitmask bytes"));
        }
        if blocks > 1 << 32 {
            return Err(format!("{blocks} blocks per page exceed the u32 block offsets"));
        }
        Ok(())
    }

    /// The `config.json` Qdrant writes for this geometry.
    pub fn to_json(&self) -> String {
        let compression = match self.compression {
            Compression::None => "None",
            Compression::LZ4 => "LZ4",
        };
        format!(
            r#"{{"mode":"mutable","page_size_bytes":{},"block_size_bytes":{},"region_size_blocks":{},"compression":"{compression}"}}"#,
            self.page_size_bytes, self.block_size_bytes, self.region_size_blocks
        )
    }

    pub fn blocks_per_page(&self) -> u64 {
        self.page_size_bytes / self.block_size_bytes
    }

    fn bitmask_bytes_per_page(&self) -> u64 {
        self.blocks_per_page() / 8
    }

    fn regions_per_page(&self) -> u64 {
        self.blocks_per_page() / self.region_size_blocks
    }

    /// Blocks a stored value of `len` bytes occupies.
    fn blocks_for(&self, len: u32) -> u64 {
        u64::from(len).div_ceil(self.block_size_bytes)
    }
}

/// Free-run summary of one region (`gaps.dat` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RegionGaps {
    max: u16,
    leading: u16,
    trailing: u16,
}

impl RegionGaps {
    fn all_free(blocks: u64) -> Self {
        let b = blocks as u16; // validated ≤ 65535
        RegionGaps { max: b, leading: b, trailing: b }
    }
    fn encode(self) -> [u8; 6] {
        let [a, b] = self.max.to_le_bytes();
        let [c, d] = self.leading.to_le_bytes();
        let [e, f] = self.trailing.to_le_bytes();
        [a, b, c, d, e, f]
    }
    fn decode(b: &[u8]) -> Option<Self> {
        match b {
            [a, b, c, d, e, f] => Some(RegionGaps {
                max: u16::from_le_bytes([*a, *b]),
                leading: u16::from_le_bytes([*c, *d]),
                trailing: u16::from_le_bytes([*e, *f]),
            }),
            _ => None,
        }
    }
}

fn encode_slot(p: Option<ValuePointer>) -> [u8; 16] {
    let (d, v) = match p {
        Some(v) => (1u32, [v.page_id, v.offset, v.length]),
        None => (0, [0, 0, 0]),
    };
    let mut out = [0u8; 16];
    for (i, x) in [d, v[0], v[1], v[2]].into_iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// A value put since the last flush.
#[derive(Debug, Clone)]
struct PendingValue {
    pointer: ValuePointer,
    /// Stored (compressed) bytes.
    data: Vec<u8>,
}

/// Writable Gridstore. See the module docs for the layout and the flush protocol.
#[derive(Debug)]
pub struct GridstoreWriter {
    dir: String,
    config: GridstoreConfig,
    /// Persisted live slots (what `tracker.dat` says), by key.
    slots: BTreeMap<u32, ValuePointer>,
    /// In memory: 1 + highest key ever put (persisted at flush).
    next_pointer_offset: u32,
    /// Byte length of `tracker.dat`.
    tracker_len: u64,
    /// Puts (`Some`) and deletes (`None`) since the last flush.
    pending: BTreeMap<u32, Option<PendingValue>>,
    /// Blocks of values put and replaced again before a flush: freed at the next flush.
    to_free: Vec<ValuePointer>,
    /// In-memory `bitmask.dat` (logical pages, including pages not yet created).
    bitmask: Vec<u8>,
    /// `DIRTY_CHUNK`-sized chunks of `bitmask` to rewrite.
    dirty_bits: BTreeSet<u64>,
    gaps: Vec<RegionGaps>,
    dirty_gaps: BTreeSet<u64>,
    /// Open page files (pages created on storage).
    pages: Vec<Arc<dyn StorageFile>>,
    /// Bytes of `journal` written by this writer (0 = no journal file).
    journal_len: u64,
    failed: AtomicBool,
}

impl GridstoreWriter {
    // ---- creation and opening ---------------------------------------------------------

    /// A new, empty store in `dir`, laid out as Qdrant creates one: `bitmask.dat` and `gaps.dat`
    /// for one page, `tracker.dat` of 1 MiB with header 0, `page_0.dat` preallocated, and
    /// `config.json` last. Refuses a directory that already holds a `config.json`.
    pub fn create(storage: &dyn Storage, dir: &str, config: GridstoreConfig) -> Result<Self, Error> {
        config.validate().map_err(|m| Error::invalid(format!("Gridstore config: {m}")))?;
        let cfg_path = join(dir, CONFIG_FILE);
        if storage.exists(&cfg_path)? {
            return Err(Error::invalid(format!("{cfg_path} already exists: a Gridstore is there")));
        }
        storage.create_dir_all(dir)?;
        // leftovers of an interrupted creation would be taken for pages or a journal
        for e in storage.list_dir(dir)? {
            let stray_page = e.name.starts_with("page_") && e.name.ends_with(".dat");
            if e.kind == EntryKind::File && (stray_page || e.name == JOURNAL_FILE) {
                storage.remove_file(&join(dir, &e.name))?;
            }
        }
        let fresh = |name: &str, len: u64| -> Result<Arc<dyn StorageFile>, Error> {
            let f = storage.open(&join(dir, name), OpenMode::Create)?;
            f.set_len(0)?;
            f.set_len(len)?;
            Ok(f)
        };
        let bitmask = vec![0u8; usize::try_from(config.bitmask_bytes_per_page()).map_err(|_| too_big(dir))?];
        let bm = fresh(BITMASK_FILE, bitmask.len() as u64)?;
        let gaps = vec![RegionGaps::all_free(config.region_size_blocks); config.regions_per_page() as usize];
        let gp = fresh(GAPS_FILE, 0)?;
        gp.write_at(0, &gaps.iter().flat_map(|g| g.encode()).collect::<Vec<u8>>())?;
        let tr = fresh(TRACKER_FILE, TRACKER_INITIAL_SIZE)?;
        tr.write_at(0, &0u32.to_le_bytes())?;
        let page = fresh(&page_file(0), config.page_size_bytes)?;
        for f in [&bm, &gp, &tr, &page] {
            f.sync()?;
        }
        storage.write_atomic(&cfg_path, config.to_json().as_bytes())?;
        Ok(GridstoreWriter {
            dir: dir.to_string(),
            config,
            slots: BTreeMap::new(),
            next_pointer_offset: 0,
            tracker_len: TRACKER_INITIAL_SIZE,
            pending: BTreeMap::new(),
            to_free: Vec::new(),
            bitmask,
            dirty_bits: BTreeSet::new(),
            gaps,
            dirty_gaps: BTreeSet::new(),
            pages: vec![page],
            journal_len: 0,
            failed: AtomicBool::new(false),
        })
    }

    /// An existing store (written by Qdrant or by this writer). A `tracker_journal.dat` is
    /// replayed onto `tracker.dat` (synced) and removed, as Qdrant's writable open does. The
    /// number of pages must match `bitmask.dat`; the region gaps are recomputed from the bitmask
    /// (a stale or mis-sized `gaps.dat` is rewritten), and blocks of live values missing from
    /// the bitmask are marked used. Page files past the end of the bitmask (a flush crashed
    /// between creating them and covering them) are covered as free pages.
    pub fn open(storage: &dyn Storage, dir: &str) -> Result<Self, Error> {
        let cfg_path = join(dir, CONFIG_FILE);
        let raw_cfg: BlobstoreConfig = parse_json(&storage.read_all(&cfg_path)?, &cfg_path)?;
        let config = GridstoreConfig::from_blobstore(&raw_cfg, &cfg_path)?;
        // tracker slots with the journal overlaid, validated by the reader
        let view = Gridstore::open(storage, dir)?;
        let tpath = join(dir, TRACKER_FILE);
        let tracker = storage.open(&tpath, OpenMode::ReadWrite)?;
        let tracker_len = tracker.len()?;
        let mut head = [0u8; 4];
        tracker.read_at(0, &mut head)?;
        let header = u32::from_le_bytes(head);
        let bound = view.key_bound();
        let slots: BTreeMap<u32, ValuePointer> = view.keys().filter_map(|k| Some((k, view.pointer(k)?))).collect();
        let next_pointer_offset =
            header.max(u32::try_from(bound).map_err(|_| FormatError::corrupt(&tpath, "more than 2^32 - 1 keys"))?);

        // pages: contiguous from 0 (checked by the reader), as many as the bitmask covers
        let mut n_pages = 0u32;
        while storage.is_file(&join(dir, &page_file(n_pages)))? {
            n_pages = n_pages.checked_add(1).ok_or_else(|| too_big(dir))?;
        }
        let bpath = join(dir, BITMASK_FILE);
        let mut bitmask = storage.read_all(&bpath)?.to_vec();
        let per_page = config.bitmask_bytes_per_page();
        let want = u64::from(n_pages) * per_page;
        let have = bitmask.len() as u64;
        if have < want && have % per_page == 0 && have > 0 {
            // a flush crashed between creating page files and covering them: they hold nothing
            // a tracker can point to, so cover them as free pages (Qdrant refuses such a store)
            let bm = storage.open(&bpath, OpenMode::ReadWrite)?;
            bm.set_len(want)?;
            bm.sync()?;
            bitmask.resize(usize::try_from(want).map_err(|_| too_big(dir))?, 0);
        }
        if bitmask.len() as u64 != want || n_pages == 0 {
            return Err(FormatError::corrupt(
                &bpath,
                format!("{} bytes, but {n_pages} page files need {per_page} bitmask bytes each", bitmask.len()),
            )
            .into());
        }
        let mut pages = Vec::with_capacity(n_pages as usize);
        for id in 0..n_pages {
            pages.push(storage.open(&join(dir, &page_file(id)), OpenMode::ReadWrite)?);
        }

        let mut w = GridstoreWriter {
            dir: dir.to_string(),
            config,
            slots,
            next_pointer_offset,
            tracker_len,
            pending: BTreeMap::new(),
            to_free: Vec::new(),
            bitmask,
            dirty_bits: BTreeSet::new(),
            gaps: Vec::new(),
            dirty_gaps: BTreeSet::new(),
            pages,
            journal_len: 0,
            failed: AtomicBool::new(false),
        };

        // live values must lie inside the pages and be marked used
        let total = w.total_blocks();
        let bpp = config.blocks_per_page();
        let mut unmarked = Vec::new();
        for (key, p) in &w.slots {
            let start = u64::from(p.page_id) * bpp + u64::from(p.offset);
            let end = start.saturating_add(config.blocks_for(p.length));
            if u64::from(p.offset) >= bpp || end > total {
                return Err(FormatError::corrupt(
                    &tpath,
                    format!(
                        "key {key}: value at page {} block {} ({} bytes) lies outside the {} pages",
                        p.page_id, p.offset, p.length, n_pages
                    ),
                )
                .into());
            }
            if (start..end).any(|b| !w.bit(b)) {
                unmarked.push((start, end - start));
            }
        }
        for (start, n) in unmarked {
            w.set_bits(start, n, true);
        }

        // gaps: derived from the bitmask; repair the file where it disagrees
        let regions = total / config.region_size_blocks;
        w.gaps = (0..regions).map(|r| w.compute_gaps(r)).collect();
        let gpath = join(dir, GAPS_FILE);
        let on_disk = match storage.read_all(&gpath) {
            Ok(b) => Some(b),
            Err(e) if e.kind == StorageErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        match on_disk {
            Some(b) if b.len() as u64 == regions * GAP => {
                for (r, (g, disk)) in w.gaps.iter().zip(b.chunks_exact(GAP as usize)).enumerate() {
                    if RegionGaps::decode(disk) != Some(*g) {
                        w.dirty_gaps.insert(r as u64);
                    }
                }
            }
            _ => {
                let all: Vec<u8> = w.gaps.iter().flat_map(|g| g.encode()).collect();
                storage.write_atomic(&gpath, &all)?;
            }
        }

        // replay the journal as Qdrant's writable open does
        let jpath = join(dir, JOURNAL_FILE);
        if storage.is_file(&jpath)? {
            let raw = storage.read_all(&tpath)?;
            let in_file = (raw.len() as u64).saturating_sub(HEADER) / SLOT;
            let mut changed: Vec<(u32, Option<ValuePointer>)> = Vec::new();
            for key in 0..bound.min(in_file) as u32 {
                let p = w.slots.get(&key).copied();
                let off = (HEADER + SLOT * u64::from(key)) as usize;
                if raw.get(off..off + SLOT as usize) != Some(&encode_slot(p)[..]) {
                    changed.push((key, p));
                }
            }
            // live keys past the end of the file
            changed.extend(w.slots.range(in_file.min(u64::from(u32::MAX)) as u32..).map(|(k, p)| (*k, Some(*p))));
            w.write_slots(&tracker, &changed)?;
            tracker.write_at(0, &w.next_pointer_offset.to_le_bytes())?;
            tracker.sync()?;
            storage.remove_file(&jpath)?;
        }
        Ok(w)
    }

    // ---- reads ------------------------------------------------------------------------

    pub fn dir(&self) -> &str {
        &self.dir
    }
    pub fn config(&self) -> &GridstoreConfig {
        &self.config
    }
    /// 1 + highest key ever put (including puts not yet flushed).
    pub fn next_pointer_offset(&self) -> u32 {
        self.next_pointer_offset
    }
    /// True after a storage error: every call fails until the store is reopened.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
    /// Puts or deletes not yet flushed.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
    /// Number of pages (including pages that the next flush creates).
    pub fn page_count(&self) -> u32 {
        (self.bitmask.len() as u64 / self.config.bitmask_bytes_per_page()) as u32
    }

    /// Where the value of `key` lives (pending puts and deletes included).
    pub fn pointer(&self, key: u32) -> Option<ValuePointer> {
        match self.pending.get(&key) {
            Some(p) => p.as_ref().map(|v| v.pointer),
            None => self.slots.get(&key).copied(),
        }
    }

    /// Keys holding a value, ascending (pending puts and deletes included).
    pub fn keys(&self) -> Vec<u32> {
        let mut out: BTreeSet<u32> = self.slots.keys().copied().collect();
        for (k, p) in &self.pending {
            if p.is_some() {
                out.insert(*k);
            } else {
                out.remove(k);
            }
        }
        out.into_iter().collect()
    }

    /// The value of `key`, decompressed; sees puts and deletes not yet flushed.
    pub fn get(&self, key: u32) -> Result<Option<Vec<u8>>, Error> {
        self.check_alive()?;
        let stored = match self.pending.get(&key) {
            Some(None) => return Ok(None),
            Some(Some(v)) => v.data.clone(),
            None => match self.slots.get(&key).copied() {
                None => return Ok(None),
                Some(p) => self.sticky(self.read_stored(key, p))?,
            },
        };
        match self.config.compression {
            Compression::None => Ok(Some(stored)),
            Compression::LZ4 => decompress_lz4(&stored).map(Some).map_err(|m| {
                let page = self.pointer(key).map_or(0, |p| p.page_id);
                FormatError::corrupt(join(&self.dir, &page_file(page)), format!("key {key}: {m}")).into()
            }),
        }
    }

    fn read_stored(&self, key: u32, p: ValuePointer) -> Result<Vec<u8>, Error> {
        let page_size = self.config.page_size_bytes;
        let mut start = u64::from(p.offset) * self.config.block_size_bytes;
        let mut page = p.page_id as usize;
        let mut left = u64::from(p.length);
        let mut out = Vec::with_capacity(p.length as usize);
        while left > 0 {
            let file = self.pages.get(page).ok_or_else(|| {
                FormatError::corrupt(join(&self.dir, TRACKER_FILE), format!("key {key}: page {page} does not exist"))
            })?;
            let here = (page_size - start).min(left);
            let at = out.len();
            out.resize(at + here as usize, 0);
            file.read_at(start, &mut out[at..])?;
            left -= here;
            start = 0;
            page += 1;
        }
        Ok(out)
    }

    // ---- updates ----------------------------------------------------------------------

    /// Store `value` (uncompressed bytes; compressed per the config) under `key`. The bytes go
    /// to storage at the next [`flush`](Self::flush); blocks are allocated now.
    pub fn put(&mut self, key: u32, value: &[u8]) -> Result<(), Error> {
        self.check_alive()?;
        if key == u32::MAX {
            return Err(Error::invalid("Gridstore key u32::MAX cannot be stored (next_pointer_offset would overflow)"));
        }
        let data = match self.config.compression {
            Compression::LZ4 => lz4_flex::block::compress_prepend_size(value),
            Compression::None => value.to_vec(),
        };
        if data.is_empty() {
            return Err(Error::invalid(
                "an empty value cannot be stored in a Gridstore (a zero-length slot reads as absent)",
            ));
        }
        let length = u32::try_from(data.len())
            .map_err(|_| Error::invalid(format!("value of {} stored bytes exceeds the u32 slot length", data.len())))?;
        let n = self.config.blocks_for(length);
        let start = self.allocate(n)?;
        let bpp = self.config.blocks_per_page();
        let pointer = ValuePointer { page_id: (start / bpp) as u32, offset: (start % bpp) as u32, length };
        self.set_bits(start, n, true);
        if let Some(Some(prev)) = self.pending.insert(key, Some(PendingValue { pointer, data })) {
            self.to_free.push(prev.pointer);
        }
        self.next_pointer_offset = self.next_pointer_offset.max(key + 1);
        Ok(())
    }

    /// Remove the value of `key` (a no-op if it has none).
    pub fn delete(&mut self, key: u32) -> Result<(), Error> {
        self.check_alive()?;
        match self.pending.get(&key) {
            Some(Some(_)) => {
                if let Some(Some(prev)) = self.pending.insert(key, None) {
                    self.to_free.push(prev.pointer);
                }
            }
            Some(None) => {}
            None => {
                if self.slots.contains_key(&key) {
                    self.pending.insert(key, None);
                }
            }
        }
        Ok(())
    }

    /// Persist everything put and deleted so far, in Qdrant's order (module docs). Any error
    /// leaves the writer failed.
    pub fn flush(&mut self, storage: &dyn Storage) -> Result<(), Error> {
        self.check_alive()?;
        let r = self.flush_inner(storage);
        if r.is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
        r
    }

    fn flush_inner(&mut self, storage: &dyn Storage) -> Result<(), Error> {
        let logical_pages = self.page_count();
        if self.pending.is_empty()
            && self.to_free.is_empty()
            && self.dirty_bits.is_empty()
            && self.dirty_gaps.is_empty()
            && self.pages.len() as u32 == logical_pages
        {
            return Ok(());
        }
        let dir = self.dir.clone();
        // 1. page files for pages allocated since the last flush
        if (self.pages.len() as u32) < logical_pages {
            for id in self.pages.len() as u32..logical_pages {
                let f = storage.open(&join(&dir, &page_file(id)), OpenMode::Create)?;
                f.set_len(0)?;
                f.set_len(self.config.page_size_bytes)?;
                f.sync()?;
                self.pages.push(f);
            }
            storage.sync_dir(&dir)?;
        }
        // 2. bitmask and gaps with the newly used blocks
        self.write_bitmask(storage)?;
        // 3. value bytes; values in consecutive blocks go out in one write, each padded with
        // zeros to the end of its last block (bytes of its own blocks that no reader uses)
        let mut touched = BTreeSet::new();
        let mut run = WriteRun::default();
        let zeros = vec![0u8; self.config.block_size_bytes as usize];
        for v in self.pending.values().flatten() {
            let mut page = v.pointer.page_id as usize;
            let mut at = u64::from(v.pointer.offset) * self.config.block_size_bytes;
            let mut rest: &[u8] = &v.data;
            while !rest.is_empty() {
                let here = ((self.config.page_size_bytes - at) as usize).min(rest.len());
                if page >= self.pages.len() {
                    return Err(Error::Internal(format!("page {page} missing")));
                }
                run.push(&self.pages, page, at, &rest[..here])?;
                touched.insert(page);
                rest = &rest[here..];
                if rest.is_empty() {
                    let end = at + here as u64;
                    let pad = end.next_multiple_of(self.config.block_size_bytes).min(self.config.page_size_bytes) - end;
                    run.push(&self.pages, page, end, &zeros[..pad as usize])?;
                }
                at = 0;
                page += 1;
            }
        }
        run.drain(&self.pages)?;
        for page in touched {
            if let Some(f) = self.pages.get(page) {
                f.sync()?;
            }
        }
        // 4. journal (commit point), 5. tracker
        let changes: Vec<(u32, Option<ValuePointer>)> =
            self.pending.iter().map(|(k, v)| (*k, v.as_ref().map(|v| v.pointer))).collect();
        let tracker = storage.open(&join(&dir, TRACKER_FILE), OpenMode::ReadWrite)?;
        if !changes.is_empty() {
            self.journal_append(storage, &changes)?;
        }
        let mut freed: Vec<ValuePointer> = std::mem::take(&mut self.to_free);
        for (key, new) in &changes {
            if let Some(old) = self.slots.get(key) {
                if Some(*old) != *new {
                    freed.push(*old);
                }
            }
        }
        self.write_slots(&tracker, &changes)?;
        tracker.write_at(0, &self.next_pointer_offset.to_le_bytes())?;
        tracker.sync()?;
        for (key, new) in changes {
            match new {
                Some(p) => self.slots.insert(key, p),
                None => self.slots.remove(&key),
            };
        }
        self.pending.clear();
        // 6. a long journal is not needed once the tracker is durable
        if self.journal_len > JOURNAL_MAX_SIZE {
            storage.remove_file(&join(&dir, JOURNAL_FILE))?;
            self.journal_len = 0;
        }
        // 7. free the blocks of replaced and deleted values
        if !freed.is_empty() {
            let bpp = self.config.blocks_per_page();
            for p in freed {
                let start = u64::from(p.page_id) * bpp + u64::from(p.offset);
                self.set_bits(start, self.config.blocks_for(p.length), false);
            }
        }
        self.write_bitmask(storage)
    }

    // ---- storage helpers --------------------------------------------------------------

    /// Append one journal entry per 2^20 records, sync, and sync the directory for a new file.
    fn journal_append(&mut self, storage: &dyn Storage, changes: &[(u32, Option<ValuePointer>)]) -> Result<(), Error> {
        let mut buf = Vec::with_capacity(changes.len() * RECORD + 8);
        for chunk in changes.chunks(JOURNAL_MAX_ENTRY_RECORDS) {
            let mut payload = Vec::with_capacity(chunk.len() * RECORD);
            for (key, p) in chunk {
                payload.extend_from_slice(&key.to_le_bytes());
                payload.extend_from_slice(&encode_slot(*p));
            }
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
            buf.extend_from_slice(&payload);
        }
        let jpath = join(&self.dir, JOURNAL_FILE);
        let f = storage.open(&jpath, OpenMode::Create)?;
        let len = f.len()?;
        if len > self.journal_len {
            // a failed append left a partial entry behind; replay would stop there
            f.set_len(self.journal_len)?;
        } else if len < self.journal_len {
            return Err(FormatError::corrupt(
                &jpath,
                format!("journal is {len} bytes, {} were written by this writer", self.journal_len),
            )
            .into());
        }
        f.write_at(self.journal_len, &buf)?;
        f.sync()?;
        if self.journal_len == 0 {
            storage.sync_dir(&self.dir)?;
        }
        self.journal_len += buf.len() as u64;
        Ok(())
    }

    /// Write tracker slots (ascending keys, runs coalesced), growing the file to the next power
    /// of two that holds a `Some` slot. `None` slots past the end are already `None`.
    fn write_slots(
        &mut self,
        tracker: &Arc<dyn StorageFile>,
        changes: &[(u32, Option<ValuePointer>)],
    ) -> Result<(), Error> {
        let slot_end = |k: u32| HEADER + SLOT * (u64::from(k) + 1);
        if let Some(end) = changes.iter().filter(|(_, p)| p.is_some()).map(|(k, _)| slot_end(*k)).max() {
            if end > self.tracker_len {
                let new_len = end.next_power_of_two();
                tracker.set_len(new_len)?;
                self.tracker_len = new_len;
            }
        }
        let mut run: Option<(u32, Vec<u8>)> = None;
        let flush_run = |run: &mut Option<(u32, Vec<u8>)>| -> Result<(), Error> {
            if let Some((first, bytes)) = run.take() {
                tracker.write_at(HEADER + SLOT * u64::from(first), &bytes)?;
            }
            Ok(())
        };
        for (key, p) in changes {
            if slot_end(*key) > self.tracker_len {
                continue; // a None slot past the file
            }
            match &mut run {
                Some((first, bytes)) if u64::from(*first) + bytes.len() as u64 / SLOT == u64::from(*key) => {
                    bytes.extend_from_slice(&encode_slot(*p));
                }
                _ => {
                    flush_run(&mut run)?;
                    run = Some((*key, encode_slot(*p).to_vec()));
                }
            }
        }
        flush_run(&mut run)
    }

    /// Grow `bitmask.dat` / `gaps.dat` to the logical pages, write changed parts, sync.
    fn write_bitmask(&mut self, storage: &dyn Storage) -> Result<(), Error> {
        if self.dirty_bits.is_empty() && self.dirty_gaps.is_empty() {
            return Ok(());
        }
        let bm = storage.open(&join(&self.dir, BITMASK_FILE), OpenMode::ReadWrite)?;
        let want = self.bitmask.len() as u64;
        if bm.len()? < want {
            bm.set_len(want)?;
        }
        for (start, end) in runs(&self.dirty_bits) {
            let a = (start * DIRTY_CHUNK).min(want) as usize;
            let b = (end * DIRTY_CHUNK).min(want) as usize;
            bm.write_at(a as u64, &self.bitmask[a..b])?;
        }
        bm.sync()?;
        let gp = storage.open(&join(&self.dir, GAPS_FILE), OpenMode::ReadWrite)?;
        for (start, end) in runs(&self.dirty_gaps) {
            let bytes: Vec<u8> = self
                .gaps
                .get(start as usize..end as usize)
                .unwrap_or_default()
                .iter()
                .flat_map(|g| g.encode())
                .collect();
            gp.write_at(start * GAP, &bytes)?;
        }
        gp.sync()?;
        self.dirty_bits.clear();
        self.dirty_gaps.clear();
        Ok(())
    }

    fn check_alive(&self) -> Result<(), Error> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(StorageError::new(
                "gridstore",
                self.dir.clone(),
                StorageErrorKind::PreviousIo,
                "an earlier storage error left this Gridstore writer unusable; reopen the store",
            )
            .into());
        }
        Ok(())
    }

    /// Mark the writer failed on a storage error.
    fn sticky<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        if let Err(Error::Storage(_)) = &r {
            self.failed.store(true, Ordering::SeqCst);
        }
        r
    }

    // ---- allocation -------------------------------------------------------------------

    fn total_blocks(&self) -> u64 {
        self.bitmask.len() as u64 * 8
    }

    fn bit(&self, i: u64) -> bool {
        self.bitmask.get((i / 8) as usize).is_some_and(|b| b >> (i % 8) & 1 == 1)
    }

    /// Set `n` blocks from `start` used or free and refresh the gaps of the regions touched.
    fn set_bits(&mut self, start: u64, n: u64, used: bool) {
        let end = start.saturating_add(n).min(self.total_blocks());
        if start >= end {
            return;
        }
        let mut i = start;
        while i < end {
            let byte = (i / 8) as usize;
            if i % 8 == 0 && i + 8 <= end {
                self.bitmask[byte] = if used { 0xff } else { 0 };
                i += 8;
            } else {
                let m = 1u8 << (i % 8);
                if used {
                    self.bitmask[byte] |= m;
                } else {
                    self.bitmask[byte] &= !m;
                }
                i += 1;
            }
        }
        let (first_byte, last_byte) = (start / 8, (end - 1) / 8);
        self.dirty_bits.extend(first_byte / DIRTY_CHUNK..=last_byte / DIRTY_CHUNK);
        let r = self.config.region_size_blocks;
        for region in start / r..=(end - 1) / r {
            let g = self.compute_gaps(region);
            if let Some(slot) = self.gaps.get_mut(region as usize) {
                *slot = g;
            }
            self.dirty_gaps.insert(region);
        }
    }

    /// Longest, leading and trailing free runs of region `r`, from the bitmask.
    fn compute_gaps(&self, r: u64) -> RegionGaps {
        let len = self.config.region_size_blocks;
        let base = r * len;
        let (mut max, mut cur, mut leading) = (0u64, 0u64, None);
        let mut i = 0;
        while i < len {
            if (base + i) % 8 == 0 && i + 8 <= len {
                match self.bitmask.get(((base + i) / 8) as usize).copied().unwrap_or(0xff) {
                    0 => {
                        cur += 8;
                        max = max.max(cur);
                        i += 8;
                        continue;
                    }
                    0xff => {
                        leading.get_or_insert(i);
                        cur = 0;
                        i += 8;
                        continue;
                    }
                    _ => {}
                }
            }
            if self.bit(base + i) {
                leading.get_or_insert(i);
                cur = 0;
            } else {
                cur += 1;
                max = max.max(cur);
            }
            i += 1;
        }
        // all values ≤ region_size_blocks ≤ 65535
        RegionGaps { max: max as u16, leading: leading.unwrap_or(len) as u16, trailing: cur as u16 }
    }

    /// First block of a free run of `n` blocks, appending pages when none fits (§7.3).
    fn allocate(&mut self, n: u64) -> Result<u64, Error> {
        if let Some(b) = self.find_free(n) {
            return Ok(b);
        }
        let missing = n.saturating_sub(self.trailing_free_blocks());
        let bytes = missing.checked_mul(self.config.block_size_bytes).ok_or_else(|| too_big(&self.dir))?;
        let new_pages = bytes.div_ceil(self.config.page_size_bytes);
        for _ in 0..new_pages {
            self.add_page()?;
        }
        self.find_free(n)
            .ok_or_else(|| Error::Internal(format!("{}: no free run of {n} blocks after adding pages", self.dir)))
    }

    fn add_page(&mut self) -> Result<(), Error> {
        if u64::from(self.page_count()) >= u64::from(u32::MAX) {
            return Err(too_big(&self.dir));
        }
        let add = usize::try_from(self.config.bitmask_bytes_per_page()).map_err(|_| too_big(&self.dir))?;
        self.bitmask.resize(self.bitmask.len().checked_add(add).ok_or_else(|| too_big(&self.dir))?, 0);
        for _ in 0..self.config.regions_per_page() {
            self.dirty_gaps.insert(self.gaps.len() as u64);
            self.gaps.push(RegionGaps::all_free(self.config.region_size_blocks));
        }
        Ok(())
    }

    /// Free blocks at the end of the last page: trailing runs of the last regions while they
    /// are entirely free, plus the trailing run of the first one that is not.
    fn trailing_free_blocks(&self) -> u64 {
        let mut sum = 0;
        for g in self.gaps.iter().rev() {
            sum += u64::from(g.trailing);
            if u64::from(g.trailing) != self.config.region_size_blocks {
                break;
            }
        }
        sum
    }

    /// Qdrant's search: a window of regions from the gaps, then the first free run inside it.
    fn find_free(&self, n: u64) -> Option<u64> {
        let r = self.config.region_size_blocks;
        let (first, last) = self.fitting_regions(n)?;
        let from = first * r;
        let to = (last * r).min(self.total_blocks());
        if from >= to {
            return None;
        }
        self.first_free_run(from, to, n)
    }

    /// Range of regions `[first, last)` that can hold `n` consecutive free blocks.
    fn fitting_regions(&self, n: u64) -> Option<(u64, u64)> {
        let gaps = &self.gaps;
        let r = self.config.region_size_blocks;
        if gaps.len() == 1 {
            return (u64::from(gaps[0].max) >= n).then_some((0, 1));
        }
        let needed = n.div_ceil(r).max(1);
        let found = if needed == 1 {
            gaps.iter().position(|g| u64::from(g.max) >= n).map(|i| (i as u64, i as u64 + 1))
        } else {
            self.merged_gap(needed, n)
        };
        found.or_else(|| self.merged_gap(needed + 1, n))
    }

    /// First window of `w ≥ 2` regions whose middle regions are free and whose outer runs add
    /// up to `n`.
    fn merged_gap(&self, w: u64, n: u64) -> Option<(u64, u64)> {
        let r = self.config.region_size_blocks;
        let w = usize::try_from(w).ok()?;
        if w < 2 {
            return None;
        }
        self.gaps.windows(w).enumerate().find_map(|(i, win)| {
            let (head, tail) = (win.first()?, win.last()?);
            let middle = win.get(1..w - 1)?;
            if middle.iter().any(|g| u64::from(g.max) != r) {
                return None;
            }
            let merged = u64::from(head.trailing) + u64::from(tail.leading) + (w as u64 - 2) * r;
            (merged >= n).then_some((i as u64, (i + w) as u64))
        })
    }

    /// First run of `n` free blocks in `[from, to)`.
    fn first_free_run(&self, from: u64, to: u64, n: u64) -> Option<u64> {
        let (mut run_start, mut run) = (from, 0u64);
        let mut i = from;
        while i < to {
            if i % 8 == 0 && i + 8 <= to {
                match self.bitmask.get((i / 8) as usize).copied() {
                    Some(0) => {
                        if run == 0 {
                            run_start = i;
                        }
                        run += 8;
                        if run >= n {
                            return Some(run_start);
                        }
                        i += 8;
                        continue;
                    }
                    Some(0xff) => {
                        run = 0;
                        i += 8;
                        continue;
                    }
                    _ => {}
                }
            }
            if self.bit(i) {
                run = 0;
            } else {
                if run == 0 {
                    run_start = i;
                }
                run += 1;
                if run >= n {
                    return Some(run_start);
                }
            }
            i += 1;
        }
        None
    }
}

/// Maximal runs `[start, end)` of consecutive numbers in a set.
fn runs(set: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &x in set {
        match out.last_mut() {
            Some((_, end)) if *end == x => *end += 1,
            _ => out.push((x, x + 1)),
        }
    }
    out
}

fn too_big(dir: &str) -> Error {
    Error::Unsupported(format!("{dir}: Gridstore grows past the sizes this platform can address"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::error::ErrorKind;
    use crate::format::chunked::tests::put as put_file;
    use crate::format::gridstore::read_payload;
    use crate::storage::wrap::FaultStorage;
    use crate::storage::MemoryStorage;

    /// 1 KiB pages of 64 blocks of 16 bytes, 4 regions of 16 blocks per page.
    fn small(compression: Compression) -> GridstoreConfig {
        GridstoreConfig { page_size_bytes: 1024, block_size_bytes: 16, region_size_blocks: 16, compression }
    }

    fn file(st: &MemoryStorage, path: &str) -> Vec<u8> {
        st.read_all(path).unwrap().to_vec()
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Bytes that LZ4 cannot shrink much.
    fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len).map(|_| rng(seed) as u8).collect()
    }

    /// Independent check of the files in `dir`: live values (through the reader) do not
    /// overlap, `bitmask.dat` marks exactly (or, if `!exact`, at least) their blocks, every
    /// `gaps.dat` entry equals a naive recount of its region, and pages match the bitmask.
    fn check_files(st: &MemoryStorage, dir: &str, exact: bool) {
        let cfg: BlobstoreConfig = parse_json(&file(st, &format!("{dir}/config.json")), "c").unwrap();
        let (p, b, r) = (cfg.page_size_bytes, cfg.block_size_bytes.unwrap(), cfg.region_size_blocks.unwrap());
        let bpp = p / b;
        let gs = Gridstore::open(st, dir).unwrap();
        let bitmask = file(st, &format!("{dir}/bitmask.dat"));
        let total = bitmask.len() as u64 * 8;
        let pages = st.list_dir(dir).unwrap().iter().filter(|e| e.name.starts_with("page_")).count() as u64;
        assert_eq!(pages * bpp, total, "page files vs bitmask");
        let mut live = vec![false; total as usize];
        for k in gs.keys() {
            let ptr = gs.pointer(k).unwrap();
            let start = u64::from(ptr.page_id) * bpp + u64::from(ptr.offset);
            for blk in start..start + u64::from(ptr.length).div_ceil(b) {
                assert!(!live[blk as usize], "key {k} overlaps another value at block {blk}");
                live[blk as usize] = true;
            }
        }
        for (i, l) in live.iter().enumerate() {
            let used = bitmask[i / 8] >> (i % 8) & 1 == 1;
            if exact {
                assert_eq!(used, *l, "block {i}: bitmask {used}, live {l}");
            } else {
                assert!(used || !l, "live block {i} is free in the bitmask");
            }
        }
        let gaps = file(st, &format!("{dir}/gaps.dat"));
        assert_eq!(gaps.len() as u64, total / r * 6);
        for reg in 0..total / r {
            let bits: Vec<bool> =
                (reg * r..(reg + 1) * r).map(|i| bitmask[(i / 8) as usize] >> (i % 8) & 1 == 1).collect();
            let leading = bits.iter().take_while(|u| !**u).count() as u16;
            let trailing = bits.iter().rev().take_while(|u| !**u).count() as u16;
            let max = bits.split(|u| *u).map(|s| s.len()).max().unwrap_or(0) as u16;
            let e = &gaps[(reg * 6) as usize..(reg * 6 + 6) as usize];
            let got =
                [u16::from_le_bytes([e[0], e[1]]), u16::from_le_bytes([e[2], e[3]]), u16::from_le_bytes([e[4], e[5]])];
            assert_eq!(got, [max, leading, trailing], "gaps of region {reg}");
        }
    }

    #[test]
    fn create_lays_out_files_as_qdrant() {
        let st = MemoryStorage::new();
        let w = GridstoreWriter::create(&st, "seg/payload_storage", GridstoreConfig::payload()).unwrap();
        assert_eq!(
            file(&st, "seg/payload_storage/config.json"),
            br#"{"mode":"mutable","page_size_bytes":33554432,"block_size_bytes":128,"region_size_blocks":8192,"compression":"LZ4"}"#
        );
        let t = file(&st, "seg/payload_storage/tracker.dat");
        assert_eq!(t.len(), 1 << 20);
        assert!(t.iter().all(|b| *b == 0));
        let len = |p: &str| st.open(p, OpenMode::Read).unwrap().len().unwrap();
        assert_eq!(len("seg/payload_storage/page_0.dat"), 32 << 20);
        assert_eq!(file(&st, "seg/payload_storage/bitmask.dat"), vec![0u8; 32768]);
        assert_eq!(file(&st, "seg/payload_storage/gaps.dat"), [0x00, 0x20, 0x00, 0x20, 0x00, 0x20].repeat(32));
        assert!(!st.exists("seg/payload_storage/tracker_journal.dat").unwrap());
        let names: Vec<String> = st.list_dir("seg/payload_storage").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["bitmask.dat", "config.json", "gaps.dat", "page_0.dat", "tracker.dat"]);
        // preallocation costs no stored bytes
        assert!(st.stored_bytes() < 200_000, "{} bytes stored", st.stored_bytes());
        assert_eq!(w.keys(), Vec::<u32>::new());
        assert_eq!(Gridstore::open(&st, "seg/payload_storage").unwrap().key_bound(), 0);
        check_files(&st, "seg/payload_storage", true);
        let sparse = GridstoreWriter::create(&st, "sp", GridstoreConfig::sparse_vectors()).unwrap();
        assert_eq!(sparse.config().compression, Compression::None);
        assert!(file(&st, "sp/config.json").ends_with(br#""compression":"None"}"#));
        // a second create over an existing store is refused
        let e = GridstoreWriter::create(&st, "sp", GridstoreConfig::sparse_vectors()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let bad = GridstoreConfig { page_size_bytes: 1000, ..small(Compression::None) };
        assert_eq!(GridstoreWriter::create(&st, "bad", bad).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn put_get_delete_overwrite_and_reopen() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "p", small(Compression::LZ4)).unwrap();
        let json = |i: u32| format!(r#"{{"i":{i},"name":"point {i}","tags":["a","b"]}}"#).into_bytes();
        for i in 0..10 {
            w.put(i, &json(i)).unwrap();
        }
        assert_eq!(w.get(3).unwrap().unwrap(), json(3));
        assert_eq!(w.get(10).unwrap(), None);
        assert_eq!(w.next_pointer_offset(), 10);
        // nothing reached storage before the flush
        assert_eq!(Gridstore::open(&st, "p").unwrap().key_bound(), 0);
        w.flush(&st).unwrap();
        assert!(!w.has_pending());
        let gs = Gridstore::open(&st, "p").unwrap();
        for i in 0..10 {
            assert_eq!(gs.get(i).unwrap().unwrap(), json(i));
            assert_eq!(read_payload(&gs, i).unwrap()["i"], i);
        }
        // first fit inside the first region (16 blocks) that can hold a value: a value does not
        // straddle a region boundary while a single region has room for it
        let mut next = 0u64;
        for i in 0..10 {
            let p = gs.pointer(i).unwrap();
            let blocks = u64::from(p.length).div_ceil(16);
            if next / 16 != (next + blocks - 1) / 16 {
                next = next.div_ceil(16) * 16;
            }
            assert_eq!(u64::from(p.page_id) * 64 + u64::from(p.offset), next, "key {i}");
            next += blocks;
        }
        check_files(&st, "p", true);

        w.put(3, br#"{"replaced":true,"long":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#).unwrap();
        w.delete(5).unwrap();
        w.delete(42).unwrap(); // no value: no-op
        w.put(12, b"{}").unwrap();
        assert_eq!(w.get(5).unwrap(), None);
        assert_eq!(w.get(12).unwrap().unwrap(), b"{}");
        assert_eq!(w.keys(), [0, 1, 2, 3, 4, 6, 7, 8, 9, 12]);
        // the old value of 3 is still on storage until the flush
        assert_eq!(Gridstore::open(&st, "p").unwrap().get(3).unwrap().unwrap(), json(3));
        w.flush(&st).unwrap();
        check_files(&st, "p", true);

        let w2 = GridstoreWriter::open(&st, "p").unwrap();
        assert_eq!(w2.keys(), w.keys());
        assert_eq!(w2.next_pointer_offset(), 13);
        for k in 0..14 {
            assert_eq!(w2.get(k).unwrap(), w.get(k).unwrap(), "key {k}");
        }
        let gs = Gridstore::open(&st, "p").unwrap();
        assert_eq!(read_payload(&gs, 3).unwrap()["replaced"], true);
        assert_eq!(gs.get(5).unwrap(), None);
        assert_eq!(&file(&st, "p/tracker.dat")[..4], &13u32.to_le_bytes());
    }

    #[test]
    fn values_span_blocks_and_pages() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "s", small(Compression::None)).unwrap();
        let mut seed = 7u64;
        let a = noise(&mut seed, 640); // blocks 0..40 of page 0
        let b = noise(&mut seed, 640); // 40 blocks: no window of 3 regions on page 0
        let c = noise(&mut seed, 3000); // 188 blocks: more than two pages
        w.put(0, &a).unwrap();
        w.put(1, &b).unwrap();
        // 24 trailing free blocks, 16 missing → one page; window regions 2..5 → blocks 40..80
        assert_eq!(w.page_count(), 2);
        assert_eq!(w.pointer(0), Some(ValuePointer { page_id: 0, offset: 0, length: 640 }));
        assert_eq!(w.pointer(1), Some(ValuePointer { page_id: 0, offset: 40, length: 640 }));
        w.put(2, &c).unwrap();
        // 48 trailing free on page 1, 140 missing → 3 pages more; window regions 5..17
        assert_eq!(w.pointer(2), Some(ValuePointer { page_id: 1, offset: 16, length: 3000 }));
        assert_eq!(w.page_count(), 5);
        assert_eq!(w.get(1).unwrap().unwrap(), b);
        w.flush(&st).unwrap();
        for id in 0..5 {
            assert_eq!(st.open(&format!("s/page_{id}.dat"), OpenMode::Read).unwrap().len().unwrap(), 1024);
        }
        assert!(!st.exists("s/page_5.dat").unwrap());
        assert_eq!(file(&st, "s/bitmask.dat").len(), 40);
        let gs = Gridstore::open(&st, "s").unwrap();
        assert_eq!(gs.get(0).unwrap().unwrap(), a);
        assert_eq!(gs.get(1).unwrap().unwrap(), b);
        assert_eq!(gs.get(2).unwrap().unwrap(), c);
        // the raw bytes sit where the pointers say
        assert_eq!(&file(&st, "s/page_0.dat")[640..1024], &b[..384]);
        assert_eq!(&file(&st, "s/page_1.dat")[..256], &b[384..]);
        assert_eq!(&file(&st, "s/page_1.dat")[256..1024], &c[..768]);
        assert_eq!(&file(&st, "s/page_4.dat")[..184], &c[2816..]);
        check_files(&st, "s", true);
        let w = GridstoreWriter::open(&st, "s").unwrap();
        assert_eq!(w.get(2).unwrap().unwrap(), c);
        assert_eq!(w.page_count(), 5);
    }

    #[test]
    fn replaced_blocks_are_reused_only_after_the_flush() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "r", small(Compression::None)).unwrap();
        w.put(0, &[1; 40]).unwrap(); // blocks 0..3
        w.flush(&st).unwrap();
        w.put(0, &[2; 40]).unwrap(); // old blocks still persisted: 3..6
        assert_eq!(w.pointer(0).unwrap().offset, 3);
        w.put(0, &[3; 40]).unwrap(); // 6..9 (3..6 freed at the flush only)
        assert_eq!(w.pointer(0).unwrap().offset, 6);
        w.put(1, &[4; 16]).unwrap();
        assert_eq!(w.pointer(1).unwrap().offset, 9);
        w.flush(&st).unwrap();
        check_files(&st, "r", true);
        assert_eq!(file(&st, "r/bitmask.dat")[..2], [0b1100_0000, 0b0000_0011]);
        w.put(2, &[5; 48]).unwrap(); // first fit: blocks 0..3
        assert_eq!(w.pointer(2).unwrap().offset, 0);
        // put then delete before a flush frees both the new and the persisted blocks
        w.delete(0).unwrap();
        w.put(1, &[6; 16]).unwrap();
        w.delete(1).unwrap();
        w.flush(&st).unwrap();
        check_files(&st, "r", true);
        assert_eq!(file(&st, "r/bitmask.dat")[..2], [0b0000_0111, 0]);
        assert_eq!(GridstoreWriter::open(&st, "r").unwrap().keys(), [2]);
    }

    #[test]
    fn random_operations_keep_bitmask_and_gaps_exact() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "x", small(Compression::LZ4)).unwrap();
        let mut model: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..40 {
            for _ in 0..(rng(&mut seed) % 30) {
                let key = (rng(&mut seed) % 60) as u32;
                if rng(&mut seed) % 4 == 0 {
                    w.delete(key).unwrap();
                    model.remove(&key);
                } else {
                    let len = (rng(&mut seed) % 700) as usize;
                    let v = if rng(&mut seed) % 2 == 0 { noise(&mut seed, len) } else { vec![b'a'; len] };
                    w.put(key, &v).unwrap();
                    model.insert(key, v);
                }
            }
            for k in 0..61 {
                assert_eq!(w.get(k).unwrap().as_ref(), model.get(&k), "round {round} key {k} (pending)");
            }
            w.flush(&st).unwrap();
            check_files(&st, "x", true);
            let gs = Gridstore::open(&st, "x").unwrap();
            for k in 0..61 {
                assert_eq!(gs.get(k).unwrap().as_ref(), model.get(&k), "round {round} key {k} (reader)");
            }
            if round % 7 == 3 {
                w = GridstoreWriter::open(&st, "x").unwrap();
            }
        }
        assert!(w.page_count() > 1);
    }

    #[test]
    fn journal_entries_precede_tracker_and_long_journals_are_removed() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "j", small(Compression::None)).unwrap();
        w.put(1, b"one").unwrap();
        w.put(0, b"zero").unwrap();
        w.flush(&st).unwrap();
        let j = file(&st, "j/tracker_journal.dat");
        assert_eq!(j.len(), 8 + 40);
        assert_eq!(j[..4], 40u32.to_le_bytes());
        assert_eq!(j[4..8], crc32c::crc32c(&j[8..]).to_le_bytes());
        // records ascending by key: key 0 → (page 0, block 1, 4 bytes), key 1 → block 0
        assert_eq!(
            j[8..28],
            [[0u32, 1, 0, 1, 4], [0; 5]].concat()[..5].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()[..]
        );
        assert_eq!(&j[28..32], &1u32.to_le_bytes());
        assert_eq!(&j[32..48], &encode_slot(Some(ValuePointer { page_id: 0, offset: 0, length: 3 })));
        // a delete journals a zero slot
        w.delete(1).unwrap();
        w.flush(&st).unwrap();
        let j = file(&st, "j/tracker_journal.dat");
        assert_eq!(j.len(), 48 + 28);
        assert_eq!(
            &j[48..56],
            &[20, 0, 0, 0].iter().chain(&crc32c::crc32c(&j[56..]).to_le_bytes()).copied().collect::<Vec<u8>>()[..]
        );
        assert_eq!(&j[56..76], &[&1u32.to_le_bytes()[..], &[0; 16]].concat()[..]);
        // 76 + 8 + 20 × 1000 = 20084 ≤ 20480: kept
        for k in 0..1000 {
            w.put(k, &[k as u8; 5]).unwrap();
        }
        w.flush(&st).unwrap();
        assert_eq!(file(&st, "j/tracker_journal.dat").len(), 20084);
        // + 8 + 20 × 20 = 20492 > 20480: removed after the flush
        for k in 0..20 {
            w.delete(k).unwrap();
        }
        w.flush(&st).unwrap();
        assert!(!st.exists("j/tracker_journal.dat").unwrap());
        // and started again by the next flush
        w.put(5000, b"x").unwrap();
        w.flush(&st).unwrap();
        assert_eq!(file(&st, "j/tracker_journal.dat").len(), 28);
        check_files(&st, "j", true);
        // opening replays and removes it
        let w = GridstoreWriter::open(&st, "j").unwrap();
        assert!(!st.exists("j/tracker_journal.dat").unwrap());
        assert_eq!(w.get(5000).unwrap().unwrap(), b"x");
        assert_eq!(w.get(10).unwrap(), None);
        assert_eq!(w.get(999).unwrap().unwrap(), [231u8; 5]);
    }

    #[test]
    fn open_replays_journal_and_ignores_a_torn_tail() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "t", small(Compression::LZ4)).unwrap();
        w.put(0, br#"{"a":1}"#).unwrap();
        w.put(1, br#"{"b":2}"#).unwrap();
        w.flush(&st).unwrap();
        let p0 = w.pointer(0).unwrap();
        let p1 = w.pointer(1).unwrap();
        // simulate a torn tracker write: slots and header lost, journal intact
        let t = st.open("t/tracker.dat", OpenMode::ReadWrite).unwrap();
        t.write_at(0, &[0u8; 4 + 32]).unwrap();
        // then: a valid entry deleting key 1, an entry with a bad CRC putting key 0 elsewhere,
        // a valid entry after it (never reached) and a short tail
        let entry = |recs: &[(u32, Option<ValuePointer>)], bad_crc: bool| {
            let payload: Vec<u8> =
                recs.iter().flat_map(|(k, p)| [&k.to_le_bytes()[..], &encode_slot(*p)].concat()).collect();
            let crc = crc32c::crc32c(&payload) ^ u32::from(bad_crc);
            [&(payload.len() as u32).to_le_bytes()[..], &crc.to_le_bytes(), &payload].concat()
        };
        let mut j = file(&st, "t/tracker_journal.dat");
        j.extend(entry(&[(1, None)], false));
        j.extend(entry(&[(0, Some(ValuePointer { page_id: 0, offset: 40, length: 9 }))], true));
        j.extend(entry(&[(0, None)], false));
        j.extend([40, 0, 0, 0, 1, 2]);
        put_file(&st, "t/tracker_journal.dat", &j);
        let w = GridstoreWriter::open(&st, "t").unwrap();
        assert_eq!(w.get(0).unwrap().unwrap(), br#"{"a":1}"#);
        assert_eq!(w.get(1).unwrap(), None);
        assert_eq!(w.next_pointer_offset(), 2);
        assert!(!st.exists("t/tracker_journal.dat").unwrap());
        let t = file(&st, "t/tracker.dat");
        assert_eq!(t[..4], 2u32.to_le_bytes());
        assert_eq!(t[4..20], encode_slot(Some(p0)));
        assert_eq!(t[20..36], [0; 16]);
        // the blocks of the deleted value stay marked (leaked, as after a Qdrant crash)
        check_files(&st, "t", false);
        let bm = file(&st, "t/bitmask.dat");
        assert_eq!(bm[(p1.offset / 8) as usize] >> (p1.offset % 8) & 1, 1);
    }

    #[test]
    fn tracker_grows_to_the_next_power_of_two() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "g", small(Compression::None)).unwrap();
        w.put(70_000, b"far").unwrap();
        w.put(3, b"near").unwrap();
        w.flush(&st).unwrap();
        let t = file(&st, "g/tracker.dat");
        assert_eq!(t.len(), 2 << 20);
        assert_eq!(t[..4], 70_001u32.to_le_bytes());
        let gs = Gridstore::open(&st, "g").unwrap();
        assert_eq!(gs.get(70_000).unwrap().unwrap(), b"far");
        assert_eq!(gs.get(3).unwrap().unwrap(), b"near");
        assert_eq!(gs.key_bound(), 70_001);
        let w = GridstoreWriter::open(&st, "g").unwrap();
        assert_eq!(w.keys(), [3, 70_000]);
    }

    #[test]
    fn bad_input_and_bad_calls_are_typed_errors() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "b", small(Compression::None)).unwrap();
        assert_eq!(w.put(0, b"").unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(w.put(u32::MAX, b"x").unwrap_err().kind(), ErrorKind::InvalidArgument);
        w.put(0, &[9; 100]).unwrap();
        w.flush(&st).unwrap();
        drop(GridstoreWriter::open(&st, "b").unwrap()); // replays and removes the journal
        assert!(!st.exists("b/tracker_journal.dat").unwrap());
        // append-only stores are not writable
        put_file(&st, "l/config.json", br#"{"mode":"append_only","page_size_bytes":64,"compression":"None"}"#);
        assert_eq!(GridstoreWriter::open(&st, "l").unwrap_err().kind(), ErrorKind::Unsupported);
        // missing store
        assert_eq!(GridstoreWriter::open(&st, "nope").unwrap_err().kind(), ErrorKind::NotFound);
        // bitmask that does not match the pages
        let bm = file(&st, "b/bitmask.dat");
        put_file(&st, "b/bitmask.dat", &bm[..4]);
        assert_eq!(GridstoreWriter::open(&st, "b").unwrap_err().kind(), ErrorKind::Corrupted);
        put_file(&st, "b/bitmask.dat", &bm);
        // a value pointing past the pages
        let t = st.open("b/tracker.dat", OpenMode::ReadWrite).unwrap();
        t.write_at(4, &encode_slot(Some(ValuePointer { page_id: 3, offset: 0, length: 10 }))).unwrap();
        let e = GridstoreWriter::open(&st, "b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert!(e.to_string().contains("tracker.dat"), "{e}");
        t.write_at(4, &encode_slot(Some(ValuePointer { page_id: 0, offset: 60, length: 100 }))).unwrap();
        assert_eq!(GridstoreWriter::open(&st, "b").unwrap_err().kind(), ErrorKind::Corrupted);
        // bad config geometry
        t.write_at(4, &encode_slot(Some(ValuePointer { page_id: 0, offset: 0, length: 100 }))).unwrap();
        let cfg = file(&st, "b/config.json");
        put_file(&st, "b/config.json", br#"{"page_size_bytes":1000,"block_size_bytes":16,"region_size_blocks":16}"#);
        assert_eq!(GridstoreWriter::open(&st, "b").unwrap_err().kind(), ErrorKind::Corrupted);
        put_file(&st, "b/config.json", &cfg);
        assert_eq!(GridstoreWriter::open(&st, "b").unwrap().get(0).unwrap().unwrap(), [9; 100]);
        // corrupt LZ4 bytes: a typed error naming the page
        let mut w = GridstoreWriter::create(&st, "z", small(Compression::LZ4)).unwrap();
        w.put(0, br#"{"k":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}"#).unwrap();
        w.flush(&st).unwrap();
        st.open("z/page_0.dat", OpenMode::ReadWrite).unwrap().write_at(0, &[0xff, 0xff, 0, 0]).unwrap();
        let w = GridstoreWriter::open(&st, "z").unwrap();
        let e = w.get(0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert!(e.to_string().contains("page_0.dat"), "{e}");
        assert!(!w.is_failed());
    }

    #[test]
    fn stale_or_missized_gaps_are_repaired() {
        let st = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&st, "q", small(Compression::None)).unwrap();
        w.put(0, &[1; 100]).unwrap();
        w.put(1, &[1; 2000]).unwrap();
        w.flush(&st).unwrap();
        let good = file(&st, "q/gaps.dat");
        // stale content: rewritten at the next flush
        put_file(&st, "q/gaps.dat", &vec![0u8; good.len()]);
        let mut w = GridstoreWriter::open(&st, "q").unwrap();
        assert!(w.has_pending() || !w.dirty_gaps.is_empty());
        w.flush(&st).unwrap();
        assert_eq!(file(&st, "q/gaps.dat"), good);
        // wrong length: rewritten at open
        put_file(&st, "q/gaps.dat", &good[..6]);
        let mut w = GridstoreWriter::open(&st, "q").unwrap();
        assert_eq!(file(&st, "q/gaps.dat"), good);
        w.put(2, &[3; 30]).unwrap();
        w.flush(&st).unwrap();
        check_files(&st, "q", true);
        // a live value missing from the bitmask is marked used again
        let mut bm = file(&st, "q/bitmask.dat");
        bm[0] = 0;
        put_file(&st, "q/bitmask.dat", &bm);
        let mut w = GridstoreWriter::open(&st, "q").unwrap();
        w.flush(&st).unwrap();
        check_files(&st, "q", true);
    }

    /// Fail every mutating storage operation of a flush in turn (whole and torn writes): the
    /// writer refuses further calls, and the store reopens with either all or none of the
    /// flush's changes, live values never overlapping and always marked used.
    #[test]
    fn a_failed_flush_is_sticky_and_leaves_a_consistent_store() {
        let base = MemoryStorage::new();
        let mut w = GridstoreWriter::create(&base, "c", small(Compression::LZ4)).unwrap();
        let old: Vec<Vec<u8>> = (0..8u32).map(|i| format!(r#"{{"old":{i}}}"#).into_bytes()).collect();
        for (i, v) in old.iter().enumerate() {
            w.put(i as u32, v).unwrap();
        }
        w.flush(&base).unwrap();
        let mut seed = 3u64;
        let big = noise(&mut seed, 1500);
        let change = |w: &mut GridstoreWriter| {
            w.put(1, br#"{"new":1}"#).unwrap();
            w.delete(2).unwrap();
            w.put(3, &big).unwrap(); // spans into new pages
            w.put(9, br#"{"new":9}"#).unwrap();
        };
        let new_of = |k: u32| -> Option<Vec<u8>> {
            match k {
                1 => Some(br#"{"new":1}"#.to_vec()),
                2 => None,
                3 => Some(big.clone()),
                9 => Some(br#"{"new":9}"#.to_vec()),
                k => old.get(k as usize).cloned(),
            }
        };
        // count the operations of a clean flush
        let probe = FaultStorage::new(base.deep_clone());
        let mut w = GridstoreWriter::open(&probe, "c").unwrap();
        change(&mut w);
        let before = probe.ops();
        w.flush(&probe).unwrap();
        let n_ops = probe.ops() - before;
        assert!(n_ops > 10, "{n_ops}");
        let (mut saw_old, mut saw_new) = (false, false);
        for n in 0..n_ops {
            for tear in [false, true] {
                let disk = base.deep_clone();
                let fs = FaultStorage::new(disk.clone());
                let mut w = GridstoreWriter::open(&fs, "c").unwrap();
                change(&mut w);
                fs.fail_at(fs.ops() + n, tear);
                assert!(w.flush(&fs).is_err(), "op {n}");
                assert!(w.is_failed());
                assert_eq!(w.get(0).unwrap_err().kind(), ErrorKind::ShardClosed);
                assert_eq!(w.put(0, b"{}").unwrap_err().kind(), ErrorKind::ShardClosed);
                assert!(w.flush(&disk).is_err());
                // restart on what reached the disk
                let r = GridstoreWriter::open(&disk, "c").unwrap();
                let is_new = r.get(2).unwrap().is_none();
                for k in 0..10 {
                    let want = if is_new { new_of(k) } else { old.get(k as usize).cloned() };
                    assert_eq!(r.get(k).unwrap(), want, "op {n} tear {tear} key {k} new {is_new}");
                }
                saw_old |= !is_new;
                saw_new |= is_new;
                check_files(&disk, "c", false);
                // and it keeps working
                let mut r = r;
                r.put(20, b"{}").unwrap();
                r.flush(&disk).unwrap();
                check_files(&disk, "c", false);
            }
        }
        assert!(saw_old && saw_new);
    }
}
