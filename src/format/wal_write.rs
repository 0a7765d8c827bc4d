//! Writing Qdrant's write-ahead log (spec §11) through a [`Storage`]: creating a fresh WAL,
//! continuing one that Qdrant (or this writer) left behind, appending CRC-chained entries,
//! rotating full segments, and acknowledging flushed operations.
//!
//! The byte formats are the ones [`super::wal`] reads; this module only decides *where* bytes
//! go and in which order. Summary of what a writer produces (all integers little-endian):
//!
//! | file               | bytes                                                                   |
//! |--------------------|-------------------------------------------------------------------------|
//! | `tmp-open-<id>`    | transient: a segment being created (truncated, sized, header, synced)   |
//! | `open-<id>`        | `0..3` `"wal"`, `3` version `0`, `4..8` u32 seed, entries from 8, zeros to the capacity |
//! | `closed-<start>`   | a full `open-<id>` renamed; `<start>` = index of its first entry        |
//! | `first-index`      | JSON `{"ack_index":N}` (compact, as `serde_json::to_vec` writes it)     |
//!
//! Each entry at offset `o`: `o` u64 `len`, `o+8` data, `(4 - len) mod 8` zero bytes, then the
//! u32 CRC chained from the previous entry's CRC (the seed for the first), see
//! [`super::wal::encode_entry`].
//!
//! ## Behaviour, as qdrant-edge 0.9.0 (`src/wal`, `src/shard/wal.rs`)
//!
//! * A segment file is created as `tmp-open-<id>`, sized to `segment_capacity & !7`
//!   (preallocated, sparse where the backend can), given its header and a random seed, synced,
//!   then renamed to `open-<id>`; the directory is synced. Ids count up from 1.
//! * One active `open-*` segment takes appends; `max(segment_queue_len, 1)` empty spares wait
//!   behind it. A fresh WAL is therefore `open-1` (active) and `open-2` (spare).
//! * An entry that does not fit in the active segment retires it, if it holds entries: the next
//!   spare becomes active and the full one is renamed to `closed-<start>` (replacing an empty
//!   `closed-<start>` such as the one a restored snapshot carries, §11.3); then a new spare is
//!   created. If the entry still does not fit (it is larger than a whole segment), the
//!   (empty) active segment grows to exactly `8 + entry size` bytes.
//! * Opening an existing WAL deletes `tmp-*` files, renames stranded `open-*` segments (non-empty
//!   ones older than the active one, see [`SegmentRole::Stranded`]) to `closed-<start>`, and
//!   creates an active segment and spares if there are none. A torn or corrupted tail in the
//!   active segment is left in place and overwritten by the next append (its CRC chain is
//!   broken, so readers stop before it either way).
//! * `ack(n)` deletes closed segments wholly below `n` but always keeps the newest
//!   `retain_closed` closed segments (they carry the operation numbering), then writes
//!   `first-index` with `clamp(n, logical first, last index)` if that changed.
//!
//! Durability goes a little beyond Qdrant's (whose rotations flush asynchronously and never
//! sync the directory): a retired segment is synced before its rename and the rename is
//! followed by a directory sync, so a crash can never leave a `closed-*` file shorter than the
//! numbering of its successors assumes. Appends themselves are durable after [`WalWriter::sync`].
//!
//! A storage error makes the writer unusable ("sticky"): every later call fails and nothing
//! more is written. Reopening the directory (after a restart) continues from what is on disk.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::wal::{
    encode_entry, encode_segment_header, entry_size, read_wal, SegmentKind, SegmentRole, WalContents,
    DEFAULT_SEGMENT_CAPACITY, FIRST_INDEX_FILE, SEGMENT_HEADER_LEN,
};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::storage::{join, EntryKind, OpenMode, Storage, StorageFile};

/// WAL tuning, as Qdrant's `wal_options` (`edge_config.json`, §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WalOptions {
    /// Size of a new segment file in bytes (rounded down to a multiple of 8). Default 32 MiB.
    pub segment_capacity: u64,
    /// Number of preallocated spare segments; values below 1 mean 1. Default 0.
    pub segment_queue_len: u64,
    /// Closed segments kept by [`WalWriter::ack`]; values below 1 mean 1. Default 1.
    pub retain_closed: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_capacity: DEFAULT_SEGMENT_CAPACITY, segment_queue_len: 0, retain_closed: 1 }
    }
}

impl WalOptions {
    fn validate(&self) -> Result<(), Error> {
        if self.segment_capacity & !7 < SEGMENT_HEADER_LEN {
            return Err(Error::invalid_field(
                "wal_options.segment_capacity",
                format!("segment capacity {} is smaller than the 8-byte segment header", self.segment_capacity),
            ));
        }
        Ok(())
    }
    fn spares(&self) -> usize {
        usize::try_from(self.segment_queue_len.max(1)).unwrap_or(usize::MAX)
    }
    fn retain(&self) -> usize {
        usize::try_from(self.retain_closed.max(1)).unwrap_or(usize::MAX)
    }
}

/// The segment receiving appends.
#[derive(Debug)]
struct ActiveSegment {
    id: u64,
    file: Arc<dyn StorageFile>,
    start_index: u64,
    entries: u64,
    last_crc: u32,
    end_offset: u64,
    capacity: u64,
    /// Written (or resized) since the last file sync.
    dirty: bool,
}

/// A `closed-<start>` segment.
#[derive(Debug, Clone, Copy)]
struct ClosedSegment {
    start: u64,
    entries: u64,
}

/// An empty, preallocated `open-<id>` segment.
#[derive(Debug, Clone, Copy)]
struct SpareSegment {
    id: u64,
    seed: u32,
    capacity: u64,
}

/// Appends to a WAL directory in Qdrant's format. See the module docs.
#[derive(Debug)]
pub struct WalWriter {
    storage: Arc<dyn Storage>,
    dir: String,
    opts: WalOptions,
    closed: Vec<ClosedSegment>,
    active: ActiveSegment,
    spares: VecDeque<SpareSegment>,
    /// Id for the next segment file created.
    next_id: u64,
    /// The logical first index as persisted in `first-index` (`None` without the file).
    ack_first: Option<u64>,
    /// Directory entries changed since the last directory sync.
    dir_dirty: bool,
    /// Set by the first storage error; every later call fails with it.
    failed: Option<String>,
}

fn open_name(id: u64) -> String {
    format!("open-{id}")
}

fn closed_name(start: u64) -> String {
    format!("closed-{start}")
}

/// A CRC seed that differs between segments and runs (Qdrant uses a random one). Only its
/// distinctness matters: it keeps entries of one segment file from verifying in another.
fn new_seed(name: &str, salt: u64) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(name.as_bytes());
    h.write_u64(salt);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

impl WalWriter {
    /// Create a fresh WAL in `wal_dir` (created if missing; it must not hold segments yet):
    /// `open-1` active and the spare(s) `open-2`…, first operation index 0. No `first-index`
    /// is written until the first [`ack`](Self::ack), as in Qdrant.
    pub fn create(storage: Arc<dyn Storage>, wal_dir: &str, opts: WalOptions) -> Result<Self, Error> {
        opts.validate()?;
        storage.create_dir_all(wal_dir)?;
        let contents = read_wal(&*storage, wal_dir)?
            .ok_or_else(|| Error::Internal(format!("WAL directory `{wal_dir}` vanished after creation")))?;
        if !contents.segments.is_empty() {
            return Err(Error::invalid(format!(
                "cannot create a WAL in `{wal_dir}`: it already holds {} segment file(s)",
                contents.segments.len()
            )));
        }
        Self::from_contents(storage, wal_dir, opts, contents)
    }

    /// Continue the existing WAL in `wal_dir` (written by Qdrant or by this writer), repairing
    /// what Qdrant repairs on open (see the module docs). A directory without segments is
    /// initialised as by [`create`](Self::create); a WAL of only an empty `closed-<n>` (a
    /// restored snapshot) continues at `n`. A missing directory is `NotFound`.
    pub fn open(storage: Arc<dyn Storage>, wal_dir: &str, opts: WalOptions) -> Result<Self, Error> {
        opts.validate()?;
        let contents =
            read_wal(&*storage, wal_dir)?.ok_or_else(|| Error::NotFound(format!("WAL directory `{wal_dir}`")))?;
        Self::from_contents(storage, wal_dir, opts, contents)
    }

    /// [`open`](Self::open) with the directory already read: `contents` must be what
    /// [`read_wal`] just returned for `wal_dir` (a shard reads its WAL for replay first; this
    /// avoids scanning it twice). Nothing may have written to the directory in between.
    pub fn open_read(
        storage: Arc<dyn Storage>,
        wal_dir: &str,
        opts: WalOptions,
        contents: WalContents,
    ) -> Result<Self, Error> {
        opts.validate()?;
        Self::from_contents(storage, wal_dir, opts, contents)
    }

    fn from_contents(
        storage: Arc<dyn Storage>,
        wal_dir: &str,
        opts: WalOptions,
        contents: WalContents,
    ) -> Result<Self, Error> {
        let dir = wal_dir.to_string();
        let mut dir_dirty = false;

        // Leftovers of interrupted segment creations.
        for e in storage.list_dir(&dir)? {
            if e.kind == EntryKind::File && e.name.starts_with("tmp-") {
                storage.remove_file(&join(&dir, &e.name))?;
                dir_dirty = true;
            }
        }

        let mut closed: Vec<ClosedSegment> = Vec::new();
        let mut active_info = None;
        let mut spares = VecDeque::new();
        let mut max_id = 0u64;
        let mut renamed = false;
        for s in &contents.segments {
            if let SegmentKind::Open { id } = s.kind {
                max_id = max_id.max(id);
            }
            match (s.role, s.kind) {
                (SegmentRole::Closed, SegmentKind::Closed { start }) => {
                    push_closed(&mut closed, ClosedSegment { start, entries: s.entry_count })
                }
                (SegmentRole::Stranded, SegmentKind::Open { .. }) => {
                    // Its rename to closed-* did not survive: do it now (over an empty
                    // closed-<start> if there is one).
                    storage.rename(&join(&dir, &s.file_name), &join(&dir, &closed_name(s.start_index)))?;
                    renamed = true;
                    push_closed(&mut closed, ClosedSegment { start: s.start_index, entries: s.entry_count });
                }
                (SegmentRole::Active, SegmentKind::Open { id }) => active_info = Some((id, s.clone())),
                (SegmentRole::Spare, SegmentKind::Open { id }) => {
                    spares.push_back(SpareSegment { id, seed: s.seed, capacity: s.capacity })
                }
                (role, kind) => {
                    return Err(Error::Internal(format!(
                        "WAL reader reported {kind:?} `{}` with role {role:?}",
                        s.file_name
                    )))
                }
            }
        }
        if renamed {
            storage.sync_dir(&dir)?;
        }
        let next_index = contents.next_index;

        let mut next_id = bump(max_id)?;
        let ack_first = contents.ack_index.map(|_| contents.first_index);

        let active = match active_info {
            Some((id, s)) => {
                let file = storage.open(&join(&dir, &s.file_name), OpenMode::ReadWrite)?;
                ActiveSegment {
                    id,
                    file,
                    start_index: s.start_index,
                    entries: s.entry_count,
                    last_crc: s.last_crc,
                    end_offset: s.end_offset,
                    capacity: s.capacity,
                    dirty: false,
                }
            }
            None => {
                // no open-* file at all (read_wal makes the first empty one active)
                let spare = match spares.pop_front() {
                    Some(s) => s,
                    None => {
                        let s = create_segment_file(&*storage, &dir, &opts, next_id, next_index)?;
                        next_id = bump(next_id)?;
                        storage.sync_dir(&dir)?;
                        s
                    }
                };
                activate(&*storage, &dir, spare, next_index)?
            }
        };

        let mut w =
            WalWriter { storage, dir, opts, closed, active, spares, next_id, ack_first, dir_dirty, failed: None };
        w.fill_spares()?;
        debug_assert_eq!(w.next_index(), next_index);
        Ok(w)
    }

    /// Append one record; returns its operation index. Rotates or grows segments as needed.
    /// The entry is durable after the next [`sync`](Self::sync).
    pub fn append(&mut self, record: &[u8]) -> Result<u64, Error> {
        self.check_alive()?;
        let size = entry_size(record.len() as u64)
            .ok_or_else(|| Error::invalid(format!("WAL record of {} bytes is too large", record.len())))?;
        let r = self.append_inner(record, size);
        self.sticky(r)
    }

    fn append_inner(&mut self, record: &[u8], size: u64) -> Result<u64, Error> {
        if !self.fits(size)? {
            if self.active.entries > 0 {
                self.rotate()?;
            }
            if !self.fits(size)? {
                let required = self.active_end_after(size)?;
                self.active.file.set_len(required)?;
                self.active.capacity = required;
                self.active.dirty = true;
            }
        }
        let (framed, crc) = encode_entry(self.active.last_crc, record);
        let at = self.active.end_offset;
        self.active.dirty = true;
        self.active.file.write_at(at, &framed)?;
        let index = self.next_index();
        self.active.end_offset = at + framed.len() as u64;
        self.active.last_crc = crc;
        self.active.entries += 1;
        Ok(index)
    }

    fn active_end_after(&self, size: u64) -> Result<u64, Error> {
        self.active.end_offset.checked_add(size).ok_or_else(|| {
            Error::invalid(format!("WAL entry of {size} bytes at offset {} overflows u64", self.active.end_offset))
        })
    }

    fn fits(&self, size: u64) -> Result<bool, Error> {
        Ok(self.active_end_after(size)? <= self.active.capacity)
    }

    /// Make every appended entry durable: sync the active segment, and the directory if
    /// entries were created, renamed or removed since the last sync.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.check_alive()?;
        let r = self.sync_inner();
        self.sticky(r)
    }

    fn sync_inner(&mut self) -> Result<(), Error> {
        if self.active.dirty {
            self.active.file.sync()?;
            self.active.dirty = false;
        }
        if self.dir_dirty {
            self.storage.sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Index the next appended entry gets.
    pub fn next_index(&self) -> u64 {
        self.active.start_index + self.active.entries
    }

    /// The logical first index: where replay starts (`first-index`, clamped as Qdrant does;
    /// without the file, the oldest entry present).
    pub fn first_index(&self) -> u64 {
        self.ack_first.unwrap_or_else(|| self.physical_first_index())
    }

    /// Index of the oldest entry physically present (start of the oldest closed segment).
    pub fn physical_first_index(&self) -> u64 {
        self.closed.first().map_or(self.active.start_index, |c| c.start)
    }

    /// The WAL directory this writer appends to.
    pub fn wal_dir(&self) -> &str {
        &self.dir
    }

    pub fn options(&self) -> &WalOptions {
        &self.opts
    }

    /// Number of `closed-*` segments currently on storage.
    pub fn closed_segments(&self) -> usize {
        self.closed.len()
    }

    /// Whether a storage error made this writer unusable.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Acknowledge that operations up to `index` are persisted in the segments: delete closed
    /// segments wholly below `index` (keeping the newest `retain_closed`), then write
    /// `first-index` atomically with `clamp(index, first_index, last_index)` if that changed.
    pub fn ack(&mut self, index: u64) -> Result<(), Error> {
        self.check_alive()?;
        let r = self.ack_inner(index);
        self.sticky(r)
    }

    fn ack_inner(&mut self, until: u64) -> Result<(), Error> {
        self.prefix_truncate(until)?;
        let physical = self.physical_first_index();
        let entries = self.next_index().saturating_sub(physical);
        let last_index = physical + entries.saturating_sub(1);
        let new_first = until.max(self.ack_first.unwrap_or(physical)).min(last_index);
        if self.ack_first != Some(new_first) {
            let json = serde_json::to_vec(&serde_json::json!({ "ack_index": new_first }))
                .map_err(|e| Error::Internal(format!("encoding first-index: {e}")))?;
            // write_atomic syncs the directory, which also covers the removals above
            self.storage.write_atomic(&join(&self.dir, FIRST_INDEX_FILE), &json)?;
            self.dir_dirty = false;
            self.ack_first = Some(new_first);
        }
        Ok(())
    }

    fn prefix_truncate(&mut self, until: u64) -> Result<(), Error> {
        let Some(first) = self.closed.first() else { return Ok(()) };
        if until <= first.start {
            return Ok(());
        }
        let retain_from = self.closed.len().saturating_sub(self.opts.retain());
        let cut = if until >= self.active.start_index {
            retain_from
        } else {
            // the closed segment holding `until`; everything before it is wholly below
            let holding = self.closed.iter().position(|c| c.start <= until && until - c.start < c.entries);
            holding.unwrap_or(0).min(retain_from)
        };
        for _ in 0..cut {
            let Some(c) = self.closed.first().copied() else { break };
            self.storage.remove_file(&join(&self.dir, &closed_name(c.start)))?;
            self.dir_dirty = true;
            self.closed.remove(0);
        }
        Ok(())
    }

    /// Retire the (non-empty) active segment: the next spare becomes active, the old one is
    /// synced and renamed to `closed-<start>`, and a new spare is created.
    fn rotate(&mut self) -> Result<(), Error> {
        let spare = match self.spares.pop_front() {
            Some(s) => s,
            None => self.create_segment()?,
        };
        let start = self.active.start_index;
        let next_start = self.next_index();
        if self.active.dirty {
            self.active.file.sync()?;
            self.active.dirty = false;
        }
        self.storage.rename(&join(&self.dir, &open_name(self.active.id)), &join(&self.dir, &closed_name(start)))?;
        self.storage.sync_dir(&self.dir)?;
        push_closed(&mut self.closed, ClosedSegment { start, entries: self.active.entries });
        self.active = activate(&*self.storage, &self.dir, spare, next_start)?;
        self.fill_spares()
    }

    fn fill_spares(&mut self) -> Result<(), Error> {
        let mut created = false;
        while self.spares.len() < self.opts.spares() {
            let s = self.create_segment_file()?;
            self.spares.push_back(s);
            created = true;
        }
        if created {
            self.storage.sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Create one segment file and sync the directory.
    fn create_segment(&mut self) -> Result<SpareSegment, Error> {
        let s = self.create_segment_file()?;
        self.storage.sync_dir(&self.dir)?;
        self.dir_dirty = false;
        Ok(s)
    }

    fn create_segment_file(&mut self) -> Result<SpareSegment, Error> {
        let id = self.next_id;
        self.next_id = bump(id)?;
        let s = create_segment_file(&*self.storage, &self.dir, &self.opts, id, self.next_index())?;
        self.dir_dirty = true;
        Ok(s)
    }

    fn check_alive(&self) -> Result<(), Error> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(StorageError::new(
                "wal",
                self.dir.clone(),
                StorageErrorKind::PreviousIo,
                format!("the WAL writer stopped after an earlier storage error: {why}"),
            )
            .into()),
        }
    }

    /// Storage errors poison the writer; other errors (bad arguments) do not.
    fn sticky<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &r {
            if !matches!(e, Error::InvalidArgument { .. }) {
                self.failed = Some(e.to_string());
            }
        }
        r
    }
}

fn bump(id: u64) -> Result<u64, Error> {
    id.checked_add(1).ok_or_else(|| Error::Internal("WAL segment id counter overflows u64".into()))
}

/// Create `open-<id>` as Qdrant does: `tmp-open-<id>` emptied, sized to the capacity, given its
/// header, synced, then renamed. The caller syncs the directory.
fn create_segment_file(
    storage: &dyn Storage,
    dir: &str,
    opts: &WalOptions,
    id: u64,
    salt: u64,
) -> Result<SpareSegment, Error> {
    let name = open_name(id);
    let tmp = join(dir, &format!("tmp-{name}"));
    let capacity = opts.segment_capacity & !7;
    let seed = new_seed(&name, salt);
    let f = storage.open(&tmp, OpenMode::Create)?;
    f.set_len(0)?;
    f.set_len(capacity)?;
    f.write_at(0, &encode_segment_header(seed))?;
    f.sync()?;
    drop(f);
    storage.rename(&tmp, &join(dir, &name))?;
    Ok(SpareSegment { id, seed, capacity })
}

/// Open a spare for appending at `start_index`.
fn activate(storage: &dyn Storage, dir: &str, spare: SpareSegment, start_index: u64) -> Result<ActiveSegment, Error> {
    let file = storage.open(&join(dir, &open_name(spare.id)), OpenMode::ReadWrite)?;
    Ok(ActiveSegment {
        id: spare.id,
        file,
        start_index,
        entries: 0,
        last_crc: spare.seed,
        end_offset: SEGMENT_HEADER_LEN,
        capacity: spare.capacity,
        dirty: false,
    })
}

/// Add a closed segment; it replaces a previous empty one with the same start (same file name).
fn push_closed(closed: &mut Vec<ClosedSegment>, c: ClosedSegment) {
    if closed.last().is_some_and(|l| l.start == c.start && l.entries == 0) {
        closed.pop();
    }
    closed.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::wal::{entry_size, read_segment, ENTRY_HEADER_LEN};
    use crate::storage::wrap::FaultStorage;
    use crate::storage::MemoryStorage;

    fn opts(capacity: u64) -> WalOptions {
        WalOptions { segment_capacity: capacity, ..WalOptions::default() }
    }

    fn mem() -> (MemoryStorage, Arc<dyn Storage>) {
        let st = MemoryStorage::new();
        let dynst: Arc<dyn Storage> = Arc::new(st.clone());
        (st, dynst)
    }

    fn files(st: &dyn Storage, dir: &str) -> Vec<(String, u64)> {
        st.list_dir(dir)
            .unwrap()
            .into_iter()
            .map(|e| {
                let len = st.open(&join(dir, &e.name), OpenMode::Read).unwrap().len().unwrap();
                (e.name, len)
            })
            .collect()
    }

    fn names(st: &dyn Storage, dir: &str) -> Vec<String> {
        files(st, dir).into_iter().map(|(n, _)| n).collect()
    }

    /// (index, data) of every entry read_wal returns, after checking it agrees with the writer.
    fn read_back(st: &dyn Storage, w: Option<&WalWriter>) -> Vec<(u64, Vec<u8>)> {
        let c = read_wal(st, "wal").unwrap().unwrap();
        if let Some(w) = w {
            assert_eq!(c.next_index, w.next_index(), "next_index");
            assert_eq!(c.first_index, w.first_index(), "first_index");
            assert_eq!(c.physical_first_index, w.physical_first_index(), "physical_first_index");
        }
        c.entries.iter().map(|e| (e.index, e.data.to_vec())).collect()
    }

    fn record(i: u64) -> Vec<u8> {
        // lengths 0..=37 cover every padding
        let len = (i * 7 % 38) as usize;
        (0..len).map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8)).collect()
    }

    #[test]
    fn create_lays_out_open_1_and_a_spare() {
        let (st, d) = mem();
        let w = WalWriter::create(d.clone(), "wal", WalOptions::default()).unwrap();
        assert_eq!((w.next_index(), w.first_index()), (0, 0));
        assert_eq!(
            files(&st, "wal"),
            [("open-1".to_string(), DEFAULT_SEGMENT_CAPACITY), ("open-2".to_string(), DEFAULT_SEGMENT_CAPACITY)]
        );
        for n in ["open-1", "open-2"] {
            let seg = read_segment(&st, &format!("wal/{n}")).unwrap();
            assert!(seg.entries.is_empty());
            assert_eq!(seg.end_offset, 8);
        }
        // the memory backend keeps the preallocation sparse: one page per header
        assert_eq!(st.stored_bytes(), 2 * 4096);
        // a second create refuses the existing WAL; open accepts it
        drop(w);
        let e = WalWriter::create(d.clone(), "wal", WalOptions::default()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        let w = WalWriter::open(d.clone(), "wal", WalOptions::default()).unwrap();
        assert_eq!(names(&st, "wal"), ["open-1", "open-2"]);
        assert_eq!(w.next_index(), 0);
        // missing directory
        assert_eq!(
            WalWriter::open(d.clone(), "nope", WalOptions::default()).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
        // bad capacity
        assert!(WalWriter::create(d, "wal2", opts(7)).is_err());
    }

    #[test]
    fn append_reopen_append_continues_the_chain() {
        let (st, d) = mem();
        let mut w = WalWriter::create(d.clone(), "wal", WalOptions::default()).unwrap();
        let mut want = Vec::new();
        for i in 0..3 {
            assert_eq!(w.append(&record(i)).unwrap(), i);
            want.push((i, record(i)));
        }
        w.sync().unwrap();
        assert_eq!(read_back(&st, Some(&w)), want);
        drop(w);
        let contents = read_wal(&st, "wal").unwrap().unwrap();
        let mut w = WalWriter::open_read(d.clone(), "wal", WalOptions::default(), contents).unwrap();
        assert_eq!(w.next_index(), 3);
        for i in 3..6 {
            assert_eq!(w.append(&record(i)).unwrap(), i);
            want.push((i, record(i)));
        }
        w.sync().unwrap();
        assert_eq!(read_back(&st, Some(&w)), want);
        // all six in the one segment, back to back, chained from its seed
        let seg = read_segment(&st, "wal/open-1").unwrap();
        assert_eq!(seg.entries.len(), 6);
        let expected_end: u64 = 8 + (0..6).map(|i| entry_size(record(i).len() as u64).unwrap()).sum::<u64>();
        assert_eq!(seg.end_offset, expected_end);
        assert_eq!(names(&st, "wal"), ["open-1", "open-2"]);
    }

    #[test]
    fn rotation_across_small_segments() {
        let (st, d) = mem();
        let cap = 128;
        let mut w = WalWriter::create(d.clone(), "wal", opts(cap)).unwrap();
        let mut want = Vec::new();
        for i in 0..40 {
            assert_eq!(w.append(&record(i)).unwrap(), i);
            want.push((i, record(i)));
            assert_eq!(read_back(&st, Some(&w)), want);
        }
        assert!(w.closed_segments() > 5, "{}", w.closed_segments());
        // closed segments are contiguous and named by their first index; exactly one open
        // segment holds entries and one spare waits
        let c = read_wal(&st, "wal").unwrap().unwrap();
        let mut next = 0;
        for s in &c.segments {
            match s.role {
                SegmentRole::Closed => {
                    assert_eq!(s.file_name, format!("closed-{next}"));
                    assert!(s.entry_count > 0);
                    assert!(s.capacity == cap);
                    next += s.entry_count;
                }
                SegmentRole::Active => assert_eq!(s.start_index, next),
                SegmentRole::Spare => assert_eq!(s.entry_count, 0),
                SegmentRole::Stranded => panic!("stranded segment {s:?}"),
            }
        }
        assert_eq!(c.segments.iter().filter(|s| s.role == SegmentRole::Spare).count(), 1);
        // every closed segment was full: the next entry did not fit
        let closed: Vec<_> = c.segments.iter().filter(|s| s.role == SegmentRole::Closed).collect();
        for (k, s) in closed.iter().enumerate() {
            let next_rec = record(s.start_index + s.entry_count);
            assert!(s.end_offset + entry_size(next_rec.len() as u64).unwrap() > cap, "segment {k} was not full");
        }
        // reopen and keep rotating
        drop(w);
        let mut w = WalWriter::open(d.clone(), "wal", opts(cap)).unwrap();
        for i in 40..60 {
            assert_eq!(w.append(&record(i)).unwrap(), i);
            want.push((i, record(i)));
        }
        w.sync().unwrap();
        assert_eq!(read_back(&st, Some(&w)), want);
        // segment_queue_len keeps more spares
        let (st2, d2) = mem();
        let mut w = WalWriter::create(d2, "wal", WalOptions { segment_queue_len: 3, ..opts(cap) }).unwrap();
        assert_eq!(names(&st2, "wal"), ["open-1", "open-2", "open-3", "open-4"]);
        for i in 0..20 {
            w.append(&record(i)).unwrap();
        }
        let c = read_wal(&st2, "wal").unwrap().unwrap();
        assert_eq!(c.segments.iter().filter(|s| s.role == SegmentRole::Spare).count(), 3);
    }

    #[test]
    fn oversized_entries_grow_a_segment() {
        let (st, d) = mem();
        let cap = 64;
        let mut w = WalWriter::create(d.clone(), "wal", opts(cap)).unwrap();
        let big = vec![0xABu8; 1000];
        let big_size = entry_size(1000).unwrap();
        assert_eq!(big_size, 1016);
        // empty active segment: grows in place
        assert_eq!(w.append(&big).unwrap(), 0);
        assert_eq!(files(&st, "wal"), [("open-1".into(), 8 + big_size), ("open-2".into(), cap)]);
        // a small entry no longer fits: rotation
        assert_eq!(w.append(b"x").unwrap(), 1);
        // big entry after a non-empty segment: rotation, then the new segment grows
        assert_eq!(w.append(&big).unwrap(), 2);
        let f = files(&st, "wal");
        assert_eq!(
            f,
            [
                ("closed-0".into(), 8 + big_size),
                ("closed-1".into(), cap),
                ("open-3".into(), 8 + big_size),
                ("open-4".into(), cap)
            ]
        );
        let got = read_back(&st, Some(&w));
        assert_eq!(got, [(0, big.clone()), (1, b"x".to_vec()), (2, big.clone())]);
    }

    #[test]
    fn ack_removes_old_segments_and_writes_first_index() {
        for retain in [1u64, 2, 3] {
            let (st, d) = mem();
            let cap = 96;
            let o = WalOptions { retain_closed: retain, ..opts(cap) };
            let mut w = WalWriter::create(d.clone(), "wal", o.clone()).unwrap();
            for i in 0..40 {
                w.append(&[i as u8; 20]).unwrap(); // 40 bytes framed: 2 per segment
            }
            w.sync().unwrap();
            // 40 entries, 2 per segment: closed-0 .. closed-36, open with 38, 39
            assert_eq!(w.closed_segments(), 19);
            assert!(!st.exists("wal/first-index").unwrap());

            w.ack(9).unwrap();
            // closed-0..closed-6 hold entries 0..7 wholly below 9; closed-8 holds 9
            assert_eq!(w.physical_first_index(), 8);
            assert_eq!(w.first_index(), 9);
            assert_eq!(&st.read_all("wal/first-index").unwrap()[..], b"{\"ack_index\":9}");
            let got = read_back(&st, Some(&w));
            assert_eq!(got.first().map(|e| e.0), Some(9));
            assert_eq!(got.len(), 31);

            // ack inside the newest closed segment (closed-36): the retained ones stay
            w.ack(37).unwrap();
            assert_eq!(w.closed_segments() as u64, retain);
            assert_eq!(w.physical_first_index(), 38 - 2 * retain);
            read_back(&st, Some(&w));

            // ack into the open segment: keep only `retain` closed segments
            w.ack(39).unwrap();
            assert_eq!(w.closed_segments() as u64, retain);
            assert_eq!(w.physical_first_index(), 38 - 2 * retain);
            assert_eq!(&st.read_all("wal/first-index").unwrap()[..], b"{\"ack_index\":39}");
            read_back(&st, Some(&w));

            // beyond the last entry: clamped to the last index, nothing rewritten
            w.ack(1000).unwrap();
            assert_eq!(w.first_index(), 39);
            // an older ack never moves the start back
            w.ack(5).unwrap();
            assert_eq!(w.first_index(), 39);
            assert_eq!(&st.read_all("wal/first-index").unwrap()[..], b"{\"ack_index\":39}");

            // reopen: numbering and the acknowledged start survive
            drop(w);
            let mut w = WalWriter::open(d, "wal", o).unwrap();
            assert_eq!((w.next_index(), w.first_index()), (40, 39));
            assert_eq!(w.append(b"after").unwrap(), 40);
            let got = read_back(&st, Some(&w));
            assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), [39, 40]);
        }
    }

    #[test]
    fn ack_on_a_fresh_wal_writes_zero() {
        let (st, d) = mem();
        let mut w = WalWriter::create(d, "wal", WalOptions::default()).unwrap();
        w.ack(0).unwrap();
        assert_eq!(&st.read_all("wal/first-index").unwrap()[..], b"{\"ack_index\":0}");
        assert_eq!(names(&st, "wal"), ["first-index", "open-1", "open-2"]);
    }

    #[test]
    fn torn_last_entry_is_overwritten_on_reopen() {
        let (st, d) = mem();
        let mut w = WalWriter::create(d.clone(), "wal", opts(4096)).unwrap();
        for i in 0..3 {
            w.append(&record(i + 10)).unwrap();
        }
        let end = read_segment(&st, "wal/open-1").unwrap().end_offset;
        drop(w);
        // a fourth entry whose write was torn: length and part of the data, no CRC
        let f = st.open("wal/open-1", OpenMode::ReadWrite).unwrap();
        let mut torn = 500u64.to_le_bytes().to_vec();
        torn.extend_from_slice(&[0x5A; 200]);
        f.write_at(end, &torn).unwrap();
        // ... and garbage that looks like a CRC further on
        f.write_at(end + ENTRY_HEADER_LEN + 504, &[1, 2, 3, 4]).unwrap();

        let mut w = WalWriter::open(d.clone(), "wal", opts(4096)).unwrap();
        assert_eq!(w.next_index(), 3);
        assert_eq!(w.append(b"replacement").unwrap(), 3);
        assert_eq!(w.append(b"and one more").unwrap(), 4);
        w.sync().unwrap();
        let got = read_back(&st, Some(&w));
        assert_eq!(got.len(), 5);
        assert_eq!(got[3], (3, b"replacement".to_vec()));
        assert_eq!(got[4], (4, b"and one more".to_vec()));
        // the first new entry starts exactly where the torn one did
        let seg = read_segment(&st, "wal/open-1").unwrap();
        assert_eq!(seg.end_offset, end + entry_size(11).unwrap() + entry_size(12).unwrap());
    }

    #[test]
    fn restored_snapshot_wal_continues_numbering() {
        let (st, d) = mem();
        st.create_dir_all("wal").unwrap();
        let f = st.open("wal/closed-18", OpenMode::Create).unwrap();
        f.set_len(DEFAULT_SEGMENT_CAPACITY).unwrap();
        f.write_at(0, &encode_segment_header(0x1234_5678)).unwrap();
        drop(f);
        let cap = 64;
        let mut w = WalWriter::open(d.clone(), "wal", opts(cap)).unwrap();
        assert_eq!((w.next_index(), w.first_index(), w.physical_first_index()), (18, 18, 18));
        assert_eq!(names(&st, "wal"), ["closed-18", "open-1", "open-2"]);
        let mut want = Vec::new();
        for i in 18..26 {
            assert_eq!(w.append(&[i as u8; 20]).unwrap(), i);
            want.push((i, vec![i as u8; 20]));
        }
        w.sync().unwrap();
        assert_eq!(read_back(&st, Some(&w)), want);
        // the first rotation replaced the empty closed-18 with the full open-1
        let c = read_wal(&st, "wal").unwrap().unwrap();
        let closed: Vec<(&str, u64)> = c
            .segments
            .iter()
            .filter(|s| s.role == SegmentRole::Closed)
            .map(|s| (s.file_name.as_str(), s.entry_count))
            .collect();
        assert_eq!(closed[0], ("closed-18", 1));
        assert_eq!(w.closed_segments(), closed.len());
        let n = names(&st, "wal");
        assert_eq!(n.iter().filter(|n| n.starts_with("closed-")).count(), closed.len());
        assert_eq!(
            closed.iter().map(|c| c.1).sum::<u64>() + 18,
            c.segments.iter().find(|s| s.role == SegmentRole::Active).unwrap().start_index
        );

        // ack on the snapshot WAL before any append: clamp to 18
        let (st2, d2) = mem();
        st2.create_dir_all("wal").unwrap();
        let f = st2.open("wal/closed-18", OpenMode::Create).unwrap();
        f.write_at(0, &encode_segment_header(1)).unwrap();
        f.set_len(4096).unwrap();
        drop(f);
        let mut w = WalWriter::open(d2, "wal", WalOptions::default()).unwrap();
        w.ack(17).unwrap();
        assert_eq!(&st2.read_all("wal/first-index").unwrap()[..], b"{\"ack_index\":18}");
        assert_eq!(w.append(b"a").unwrap(), 18);
        read_back(&st2, Some(&w));
    }

    #[test]
    fn stranded_segments_and_tmp_files_are_repaired_on_open() {
        let (st, d) = mem();
        let cap = 256;
        let mut w = WalWriter::create(d.clone(), "wal", opts(cap)).unwrap();
        for i in 0..4 {
            w.append(&record(i)).unwrap();
        }
        drop(w);
        // simulate a rotation whose rename was lost: open-2 (the spare) receives entries
        // written by hand after open-1's, and a half-created segment is left behind
        let mut crc = read_segment(&st, "wal/open-2").unwrap().seed;
        let mut off = 8;
        let f = st.open("wal/open-2", OpenMode::ReadWrite).unwrap();
        for i in 4..6 {
            let (framed, c) = encode_entry(crc, &record(i));
            f.write_at(off, &framed).unwrap();
            off += framed.len() as u64;
            crc = c;
        }
        drop(f);
        st.open("wal/tmp-open-3", OpenMode::Create).unwrap().write_at(0, b"wal").unwrap();
        let c = read_wal(&st, "wal").unwrap().unwrap();
        assert_eq!(c.segments[0].role, SegmentRole::Stranded);

        let mut w = WalWriter::open(d.clone(), "wal", opts(cap)).unwrap();
        assert_eq!(w.next_index(), 6);
        assert_eq!(names(&st, "wal"), ["closed-0", "open-2", "open-3"]);
        assert_eq!(w.append(&record(6)).unwrap(), 6);
        let want: Vec<_> = (0..7).map(|i| (i, record(i))).collect();
        assert_eq!(read_back(&st, Some(&w)), want);
        let c = read_wal(&st, "wal").unwrap().unwrap();
        assert!(c.segments.iter().all(|s| s.role != SegmentRole::Stranded));
    }

    /// One scripted session: creates or opens, appends (with rotations), syncs, acks.
    /// Returns the (index, data) of every append that returned Ok, and the first error.
    fn session(st: Arc<dyn Storage>, create: bool, first: u64, n: u64) -> (Vec<(u64, Vec<u8>)>, Option<Error>) {
        let o = WalOptions { retain_closed: 1, ..opts(128) };
        let mut ok = Vec::new();
        let w = if create { WalWriter::create(st, "wal", o) } else { WalWriter::open(st, "wal", o) };
        let mut w = match w {
            Ok(w) => w,
            Err(e) => return (ok, Some(e)),
        };
        for i in first..first + n {
            let r = record(i);
            match w.append(&r) {
                Ok(idx) => ok.push((idx, r)),
                Err(e) => {
                    // sticky: nothing works afterwards
                    assert!(w.is_failed());
                    let again = w.append(b"late").unwrap_err();
                    assert_eq!(again.kind(), crate::ErrorKind::ShardClosed, "{again}");
                    // refused by the writer itself, not by the (also failed) storage
                    assert!(again.to_string().contains("stopped after an earlier storage error"), "{again}");
                    assert!(w.sync().is_err());
                    assert!(w.ack(0).is_err());
                    return (ok, Some(e));
                }
            }
            let extra = if i % 5 == 4 {
                w.sync()
            } else if i % 11 == 10 {
                w.ack(i - 3)
            } else {
                Ok(())
            };
            if let Err(e) = extra {
                assert!(w.is_failed());
                assert!(w.append(b"late").is_err());
                return (ok, Some(e));
            }
        }
        (ok, None)
    }

    #[test]
    fn fault_injection_never_leaves_an_unreadable_wal() {
        // count the mutating operations of a clean run
        let clean = FaultStorage::new(MemoryStorage::new());
        let (ok, err) = session(Arc::new(clean.clone()), true, 0, 40);
        assert!(err.is_none() && ok.len() == 40);
        let total = clean.ops();
        assert!(total > 50, "{total}");

        for tear in [false, true] {
            for n in 0..total {
                let inner = MemoryStorage::new();
                let fs = FaultStorage::new(inner.clone());
                fs.fail_at(n, tear);
                let (ok, err) = session(Arc::new(fs.clone()), true, 0, 40);
                assert!(err.is_some(), "op {n} did not fail");
                assert!(fs.has_failed());
                let ctx = format!("fault at op {n} (tear {tear})");

                // the disk as a restarted process finds it
                let Some(c) = read_wal(&inner, "wal").unwrap_or_else(|e| panic!("{ctx}: unreadable WAL: {e}")) else {
                    assert!(ok.is_empty(), "{ctx}");
                    continue;
                };
                assert_eq!(c.next_index, ok.len() as u64, "{ctx}");
                let got: Vec<(u64, Vec<u8>)> = c.entries.iter().map(|e| (e.index, e.data.to_vec())).collect();
                let want: Vec<(u64, Vec<u8>)> = ok.iter().filter(|e| e.0 >= c.first_index).cloned().collect();
                assert_eq!(got, want, "{ctx}");

                // a new writer continues where the failed one stopped
                let d: Arc<dyn Storage> = Arc::new(inner.clone());
                let next = ok.len() as u64;
                let (ok2, err2) = session(d, false, next, 15);
                assert!(err2.is_none(), "{ctx}: reopen failed: {err2:?}");
                assert_eq!(ok2.first().map(|e| e.0), Some(next), "{ctx}");
                let c = read_wal(&inner, "wal").unwrap().unwrap();
                assert_eq!(c.next_index, next + 15, "{ctx}");
                let all: Vec<_> = ok.iter().chain(ok2.iter()).filter(|e| e.0 >= c.first_index).cloned().collect();
                let got: Vec<(u64, Vec<u8>)> = c.entries.iter().map(|e| (e.index, e.data.to_vec())).collect();
                assert_eq!(got, all, "{ctx}");
                assert!(names(&inner, "wal").iter().all(|n| !n.starts_with("tmp-")), "{ctx}");
            }
        }
    }

    #[test]
    fn options_deserialize_from_edge_config() {
        let o: WalOptions =
            serde_json::from_str(r#"{"segment_capacity":4096,"segment_queue_len":0,"retain_closed":2}"#).unwrap();
        assert_eq!(o, WalOptions { segment_capacity: 4096, segment_queue_len: 0, retain_closed: 2 });
        let o: WalOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o, WalOptions::default());
    }
}
