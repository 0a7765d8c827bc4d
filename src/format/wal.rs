//! Qdrant's write-ahead log (spec §11; the `wal` crate inside edge 0.9.0 and server 1.19.0,
//! which are byte-identical): reading a WAL directory, plus the framing and CRC helpers a
//! writer needs.
//!
//! ## Directory (§11.1)
//!
//! | name             | what                                                               |
//! |------------------|--------------------------------------------------------------------|
//! | `open-<id>`      | active or spare (preallocated) segment; `<id>` is a creation counter |
//! | `closed-<start>` | sealed segment whose first entry has index `<start>` (decimal)     |
//! | `tmp-*`          | segment being created: ignored (Qdrant deletes it)                 |
//! | `first-index`    | JSON `{"ack_index": N}`                                            |
//! | anything else    | ignored, as are sub-directories                                    |
//!
//! `open-`/`closed-` names whose suffix is not a `u64` make the WAL unreadable (as in Qdrant).
//!
//! ## Segment file (§11.2), all integers little-endian
//!
//! | offset            | width     | field                                                    |
//! |-------------------|-----------|----------------------------------------------------------|
//! | 0                 | 3         | magic `"wal"`                                            |
//! | 3                 | 1         | format version, must be 0                                |
//! | 4                 | 4 (u32)   | CRC seed                                                 |
//! | 8, then per entry | 8 (u64)   | `len`                                                    |
//! |                   | `len`     | data (a CBOR record, see [`crate::operations`])          |
//! |                   | `pad`     | `(4 - len) mod 8` zero bytes (so the entry ends 8-aligned) |
//! |                   | 4 (u32)   | CRC: `crc32c_append(!reverse_bits(prev), len‖data‖pad)`  |
//!
//! `prev` is the seed for the first entry and the previous entry's CRC after that
//! ([`entry_crc`]). The usable capacity is the file length rounded down to a multiple of 8;
//! the rest of the file is zeros (preallocated, 32 MiB by default). Scanning stops, without
//! error, at the first entry whose stored CRC does not match (a zero CRC is the normal end),
//! whose frame would pass the capacity, or when fewer than 13 bytes remain: everything after
//! that point is treated as empty, exactly as Qdrant does after a crash.
//!
//! ## Assembling the log (§11.1, §11.3)
//!
//! Closed segments sorted by start must be contiguous (`start[k+1] = start[k] + len[k]`),
//! otherwise the WAL is corrupt (overlap or gap). Non-empty `open-*` segments follow in id
//! order (an older non-empty one is a segment whose rename to `closed-*` was not durable);
//! empty ones are spares. The physical first index is the first closed segment's start (0
//! without closed segments); the logical first index is
//! `clamp(ack_index, physical_first, last_index)` when `first-index` exists.
//!
//! Reading never writes: the repairs Qdrant performs on open (deleting `tmp-*`, renaming
//! stranded `open-*` segments) are left to the writer, which gets what it needs in
//! [`WalContents::segments`].

use bytes::Bytes;

use crate::error::{Error, FormatError};
use crate::storage::{join, EntryKind, FileSlice, Storage};

/// Magic bytes at the start of every segment file.
pub const MAGIC: &[u8; 3] = b"wal";
/// The only segment format version.
pub const FORMAT_VERSION: u8 = 0;
/// Length of the segment header (magic, version, seed).
pub const SEGMENT_HEADER_LEN: u64 = 8;
/// Length of an entry's length prefix.
pub const ENTRY_HEADER_LEN: u64 = 8;
/// Length of an entry's CRC.
pub const CRC_LEN: u64 = 4;
/// Qdrant's default segment capacity (`wal_options.segment_capacity`).
pub const DEFAULT_SEGMENT_CAPACITY: u64 = 32 * 1024 * 1024;
/// Name of the acknowledgement file inside the WAL directory.
pub const FIRST_INDEX_FILE: &str = "first-index";

/// Size of the read-ahead window used when scanning a segment.
const SCAN_CHUNK: u64 = 256 * 1024;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// Global entry index (= the operation number, spec §3.4).
    pub index: u64,
    /// The entry's bytes (a CBOR record).
    pub data: Bytes,
}

/// Which kind of segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// `closed-<start>`.
    Closed { start: u64 },
    /// `open-<id>`.
    Open { id: u64 },
}

/// The part a segment file plays in the assembled log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRole {
    /// A `closed-*` segment.
    Closed,
    /// An `open-*` segment that Qdrant would close on open (rename to `closed-<start_index>`):
    /// a non-empty one older than the active one (its earlier rename was not durable), or an
    /// empty one that was picked as active before a non-empty one was found.
    Stranded,
    /// The segment the next entry is appended to (`open-*`). Absent when the directory has no
    /// `open-*` file; a writer must then create one.
    Active,
    /// A preallocated, empty `open-*` segment kept for later.
    Spare,
}

/// What a writer needs to know about each segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSegmentInfo {
    /// File name inside the WAL directory.
    pub file_name: String,
    pub kind: SegmentKind,
    pub role: SegmentRole,
    /// Index of the segment's first entry in the assembled log (for spares: where they would
    /// start if they became active).
    pub start_index: u64,
    /// Number of valid entries.
    pub entry_count: u64,
    /// CRC seed from the header.
    pub seed: u32,
    /// CRC of the last valid entry (the seed if there is none): the `prev` of the next entry.
    pub last_crc: u32,
    /// Byte offset just after the last valid entry: where the next entry would be written.
    pub end_offset: u64,
    /// File length rounded down to a multiple of 8.
    pub capacity: u64,
}

/// A decoded WAL directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalContents {
    /// Logical start: the first index to replay (§11.3).
    pub first_index: u64,
    /// The index the next appended entry would get.
    pub next_index: u64,
    /// Entries from `first_index` to `next_index - 1`, in order.
    pub entries: Vec<WalEntry>,
    /// Index of the oldest entry physically present (0 without closed segments).
    pub physical_first_index: u64,
    /// `ack_index` of `first-index`, if the file exists.
    pub ack_index: Option<u64>,
    /// Every segment file, in log order: closed, stranded, active, then spares.
    pub segments: Vec<WalSegmentInfo>,
}

/// One segment file, scanned.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    pub seed: u32,
    /// File length rounded down to a multiple of 8.
    pub capacity: u64,
    /// Valid entries in order (the CRC chain holds up to the last one).
    pub entries: Vec<Bytes>,
    /// CRC of the last valid entry, or the seed.
    pub last_crc: u32,
    /// Offset just after the last valid entry.
    pub end_offset: u64,
}

/// Zero padding after an entry of `len` bytes: `(4 - len) mod 8`, so that
/// `8 + len + pad + 4` is a multiple of 8.
pub fn padding(len: u64) -> u64 {
    4u64.wrapping_sub(len) & 7
}

/// Total bytes an entry of `len` data bytes takes in a segment (length, data, padding, CRC);
/// `None` on overflow.
pub fn entry_size(len: u64) -> Option<u64> {
    ENTRY_HEADER_LEN.checked_add(len)?.checked_add(padding(len))?.checked_add(CRC_LEN)
}

/// The CRC of an entry: `framed` is the length prefix, the data and the padding; `prev` is the
/// segment seed for the first entry, else the previous entry's CRC.
pub fn entry_crc(prev: u32, framed: &[u8]) -> u32 {
    crc32c::crc32c_append(!prev.reverse_bits(), framed)
}

/// The 8-byte header of a new segment.
pub fn encode_segment_header(seed: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..3].copy_from_slice(MAGIC);
    h[3] = FORMAT_VERSION;
    h[4..].copy_from_slice(&seed.to_le_bytes());
    h
}

/// Frame one entry (length, data, padding, CRC) chained after `prev_crc`. Returns the bytes to
/// write at the segment's end offset and the new CRC (the next entry's `prev`).
pub fn encode_entry(prev_crc: u32, data: &[u8]) -> (Vec<u8>, u32) {
    let len = data.len() as u64;
    let pad = padding(len) as usize;
    let mut out = Vec::with_capacity(8 + data.len() + pad + 4);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + pad, 0);
    let crc = entry_crc(prev_crc, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    (out, crc)
}

/// Forward-only read-ahead over a segment file.
struct Window<'a> {
    file: &'a FileSlice,
    limit: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    fn new(file: &'a FileSlice, limit: u64) -> Self {
        Window { file, limit, start: 0, buf: Vec::new() }
    }

    /// Bytes `[off, off + len)`; the caller guarantees `off + len <= limit`.
    fn get(&mut self, off: u64, len: u64) -> Result<&[u8], Error> {
        let end = off.checked_add(len).filter(|e| *e <= self.limit).ok_or_else(|| {
            Error::Internal(format!("WAL scan read {len} bytes at {off} past the capacity {}", self.limit))
        })?;
        let have_end = self.start + self.buf.len() as u64;
        if off < self.start || end > have_end {
            let want = len.max(SCAN_CHUNK).min(self.limit - off);
            let want = usize::try_from(want)
                .map_err(|_| FormatError::unsupported(self.file.path(), "WAL entry larger than the address space"))?;
            self.buf.clear();
            self.buf.resize(want, 0);
            self.file.read_at(off, &mut self.buf)?;
            self.start = off;
        }
        // in range by construction: off >= start and end <= start + buf.len()
        let a = (off - self.start) as usize;
        let b = (end - self.start) as usize;
        self.buf.get(a..b).ok_or_else(|| Error::Internal("WAL scan window out of range".into()))
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Read one segment file: check the header and collect the entries whose CRC chain holds.
pub fn read_segment(storage: &dyn Storage, path: &str) -> Result<SegmentFile, Error> {
    let file = storage.open_slice(path)?;
    read_segment_slice(&file)
}

/// [`read_segment`] over an already opened file.
pub fn read_segment_slice(file: &FileSlice) -> Result<SegmentFile, Error> {
    let path = file.path();
    let capacity = file.len() & !7;
    if capacity < SEGMENT_HEADER_LEN {
        return Err(FormatError::corrupt(
            path,
            format!("WAL segment of {} bytes is shorter than its 8-byte header", file.len()),
        )
        .into());
    }
    let mut w = Window::new(file, capacity);
    let header = w.get(0, SEGMENT_HEADER_LEN)?;
    if &header[..3] != MAGIC {
        return Err(FormatError::corrupt(path, format!("bad WAL segment magic {:02x?}", &header[..3])).into());
    }
    if header[3] != FORMAT_VERSION {
        return Err(FormatError::unsupported(path, format!("WAL segment format version {}", header[3])).into());
    }
    let seed = le_u32(&header[4..8]);

    let mut crc = seed;
    let mut entries = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    // Mirrors Qdrant's scan: stop (no error) at the first entry that does not fit or whose CRC
    // does not match.
    while offset.saturating_add(ENTRY_HEADER_LEN + CRC_LEN) < capacity {
        let len = le_u64(w.get(offset, ENTRY_HEADER_LEN)?);
        let Some(framed_len) = len.checked_add(padding(len)).and_then(|p| p.checked_add(ENTRY_HEADER_LEN)) else {
            break;
        };
        match framed_len.checked_add(CRC_LEN).and_then(|t| t.checked_add(offset)) {
            Some(end) if end <= capacity => {}
            _ => break,
        }
        let frame = w.get(offset, framed_len + CRC_LEN)?;
        let (framed, stored) = frame.split_at(frame.len() - CRC_LEN as usize);
        let calc = entry_crc(crc, framed);
        if calc != le_u32(stored) {
            break;
        }
        // `8 + len <= framed.len()`, which fits in memory because it was just read
        let data = usize::try_from(len)
            .ok()
            .and_then(|l| framed.get(ENTRY_HEADER_LEN as usize..ENTRY_HEADER_LEN as usize + l))
            .ok_or_else(|| Error::Internal(format!("WAL entry at {offset} outside its frame")))?;
        entries.push(Bytes::copy_from_slice(data));
        crc = calc;
        offset += framed_len + CRC_LEN;
    }
    Ok(SegmentFile { seed, capacity, entries, last_crc: crc, end_offset: offset })
}

fn parse_first_index(storage: &dyn Storage, path: &str) -> Result<u64, Error> {
    let bytes = storage.read_all(path)?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| FormatError::corrupt(path, format!("invalid JSON: {e}")))?;
    v.get("ack_index")
        .and_then(|n| n.as_u64())
        .ok_or_else(|| FormatError::corrupt(path, "`ack_index` missing or not an unsigned integer").into())
}

struct Scanned {
    name: String,
    kind: SegmentKind,
    seg: SegmentFile,
}

/// Read the WAL directory `wal_dir` (e.g. `"wal"`).
///
/// Returns `Ok(None)` when nothing exists at `wal_dir` (a shard created with `wal_enabled:
/// false`: operation numbers then continue from the segments' versions). A directory without
/// segment files reads as an empty log starting at 0. Bad headers, unparsable segment names,
/// overlapping or non-contiguous closed segments and an unreadable `first-index` are errors;
/// a torn or corrupted tail inside a segment just ends that segment (see the module docs).
pub fn read_wal(storage: &dyn Storage, wal_dir: &str) -> Result<Option<WalContents>, Error> {
    match storage.entry_kind(wal_dir)? {
        None => return Ok(None),
        Some(EntryKind::File) => {
            return Err(FormatError::corrupt(wal_dir, "WAL path is a file, not a directory").into())
        }
        Some(EntryKind::Dir) => {}
    }

    let mut closed: Vec<Scanned> = Vec::new();
    let mut open: Vec<Scanned> = Vec::new();
    let mut has_first_index = false;
    for entry in storage.list_dir(wal_dir)? {
        if entry.kind != EntryKind::File {
            continue;
        }
        if entry.name == FIRST_INDEX_FILE {
            has_first_index = true;
            continue;
        }
        let path = join(wal_dir, &entry.name);
        let bad_name = || FormatError::corrupt(&path, "unexpected file name in the WAL directory");
        let kind = match entry.name.split_once('-') {
            Some(("open", id)) => SegmentKind::Open { id: id.parse().map_err(|_| bad_name())? },
            Some(("closed", start)) => SegmentKind::Closed { start: start.parse().map_err(|_| bad_name())? },
            _ => continue, // tmp-* and anything else
        };
        let seg = read_segment(storage, &path)?;
        let s = Scanned { name: entry.name, kind, seg };
        match kind {
            SegmentKind::Closed { .. } => closed.push(s),
            SegmentKind::Open { .. } => open.push(s),
        }
    }

    let start_of = |s: &Scanned| match s.kind {
        SegmentKind::Closed { start } => start,
        SegmentKind::Open { id } => id,
    };
    closed.sort_by_key(start_of);
    open.sort_by_key(start_of);

    // Closed segments must tile the index range without gaps or overlaps.
    let physical_first = closed.first().map_or(0, start_of);
    let mut next = physical_first;
    let mut segments: Vec<WalSegmentInfo> = Vec::new();
    let mut data: Vec<Bytes> = Vec::new();
    let info = |s: &Scanned, role: SegmentRole, start_index: u64| WalSegmentInfo {
        file_name: s.name.clone(),
        kind: s.kind,
        role,
        start_index,
        entry_count: s.seg.entries.len() as u64,
        seed: s.seg.seed,
        last_crc: s.seg.last_crc,
        end_offset: s.seg.end_offset,
        capacity: s.seg.capacity,
    };
    for s in closed {
        let start = start_of(&s);
        let path = join(wal_dir, &s.name);
        if start < next {
            return Err(FormatError::corrupt(
                path,
                format!("overlapping WAL segments: starts at {start} but entries up to {next} are already covered"),
            )
            .into());
        }
        if start > next {
            return Err(
                FormatError::corrupt(path, format!("missing WAL segment(s) for entries {next} to {start}")).into()
            );
        }
        segments.push(info(&s, SegmentRole::Closed, start));
        next = add_entries(next, s.seg.entries.len(), &path)?;
        data.extend(s.seg.entries);
    }

    // Open segments in id order: each non-empty one becomes active and strands the previous
    // active one; the first empty one is active until a non-empty one shows up; other empty
    // ones are spares.
    let mut active: Option<Scanned> = None;
    let mut spares: Vec<Scanned> = Vec::new();
    for s in open {
        if !s.seg.entries.is_empty() {
            if let Some(prev) = active.replace(s) {
                let path = join(wal_dir, &prev.name);
                segments.push(info(&prev, SegmentRole::Stranded, next));
                next = add_entries(next, prev.seg.entries.len(), &path)?;
                data.extend(prev.seg.entries);
            }
        } else if active.is_none() {
            active = Some(s);
        } else {
            spares.push(s);
        }
    }
    if let Some(a) = active {
        let path = join(wal_dir, &a.name);
        segments.push(info(&a, SegmentRole::Active, next));
        next = add_entries(next, a.seg.entries.len(), &path)?;
        data.extend(a.seg.entries);
    }
    for s in &spares {
        segments.push(info(s, SegmentRole::Spare, next));
    }

    let num_entries = next - physical_first;
    let last_index = physical_first + num_entries.saturating_sub(1);
    let ack_index =
        if has_first_index { Some(parse_first_index(storage, &join(wal_dir, FIRST_INDEX_FILE))?) } else { None };
    let first_index = match ack_index {
        Some(ack) => ack.max(physical_first).min(last_index),
        None => physical_first,
    };
    // first_index >= physical_first and <= max(physical_first, last_index) <= next
    let skip = usize::try_from(first_index - physical_first).unwrap_or(usize::MAX);
    let entries = data
        .into_iter()
        .enumerate()
        .skip(skip)
        .map(|(i, data)| WalEntry { index: physical_first + i as u64, data })
        .collect();

    Ok(Some(WalContents {
        first_index,
        next_index: next,
        entries,
        physical_first_index: physical_first,
        ack_index,
        segments,
    }))
}

fn add_entries(next: u64, n: usize, path: &str) -> Result<u64, Error> {
    next.checked_add(n as u64).ok_or_else(|| FormatError::corrupt(path, "WAL entry index overflows u64").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, OpenMode};

    fn write(st: &MemoryStorage, path: &str, bytes: &[u8], len: u64) {
        let f = st.open(path, OpenMode::Create).unwrap();
        f.set_len(0).unwrap();
        f.write_at(0, bytes).unwrap();
        f.set_len(len).unwrap();
    }

    fn segment(seed: u32, entries: &[&[u8]], capacity: u64) -> Vec<u8> {
        let mut out = encode_segment_header(seed).to_vec();
        let mut crc = seed;
        for e in entries {
            let (framed, c) = encode_entry(crc, e);
            out.extend_from_slice(&framed);
            crc = c;
        }
        assert!(out.len() as u64 <= capacity);
        out
    }

    #[test]
    fn padding_and_sizes() {
        assert_eq!(padding(0), 4);
        assert_eq!(padding(4), 0);
        assert_eq!(padding(5), 7);
        assert_eq!(padding(0x133), 1);
        for len in 0..40 {
            assert_eq!(entry_size(len).unwrap() % 8, 0);
        }
        assert_eq!(entry_size(u64::MAX), None);
    }

    #[test]
    fn crc_chain_formula() {
        let prev = 0x37a3_ac43u32;
        let framed = [1u8, 2, 3];
        assert_eq!(entry_crc(prev, &framed), crc32c::crc32c_append(!prev.reverse_bits(), &framed));
        // crc32c_append(0, x) == crc32c(x); with prev = !0 reversed the register starts at 0
        assert_eq!(entry_crc(u32::MAX, b"123456789"), crc32c::crc32c_append(0, b"123456789"));
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn roundtrip_and_tail_handling() {
        let st = MemoryStorage::new();
        st.create_dir_all("wal").unwrap();
        let seg = segment(7, &[b"a", b"", b"hello world"], 4096);
        write(&st, "wal/open-1", &seg, 4096);
        write(&st, "wal/open-2", &encode_segment_header(9), 4096);
        write(&st, "wal/tmp-xyz", b"garbage", 7);
        write(&st, "wal/other", b"garbage", 7);
        let c = read_wal(&st, "wal").unwrap().unwrap();
        assert_eq!((c.first_index, c.next_index, c.physical_first_index, c.ack_index), (0, 3, 0, None));
        let data: Vec<&[u8]> = c.entries.iter().map(|e| &e.data[..]).collect();
        assert_eq!(data, [&b"a"[..], b"", b"hello world"]);
        assert_eq!(c.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(c.segments.len(), 2);
        assert_eq!(c.segments[0].role, SegmentRole::Active);
        assert_eq!(c.segments[0].end_offset, seg.len() as u64);
        assert_eq!(c.segments[1].role, SegmentRole::Spare);
        assert_eq!(c.segments[1].start_index, 3);

        // a flipped data byte in the second entry ends the log after the first entry
        let mut bad = seg.clone();
        let second = 8 + entry_size(1).unwrap() as usize;
        bad[second + 8] ^= 0xFF; // padding byte of the empty entry
        write(&st, "wal/open-1", &bad, 4096);
        let c = read_wal(&st, "wal").unwrap().unwrap();
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.next_index, 1);

        // huge length prefix: stops cleanly
        let mut bad = seg.clone();
        bad[second..second + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        write(&st, "wal/open-1", &bad, 4096);
        assert_eq!(read_wal(&st, "wal").unwrap().unwrap().entries.len(), 1);

        // file cut in the middle of the third entry
        write(&st, "wal/open-1", &seg[..seg.len() - 3], (seg.len() - 3) as u64);
        assert_eq!(read_wal(&st, "wal").unwrap().unwrap().entries.len(), 2);
    }

    #[test]
    fn header_errors() {
        let st = MemoryStorage::new();
        st.create_dir_all("wal").unwrap();
        write(&st, "wal/open-1", b"wal", 3);
        let e = read_wal(&st, "wal").unwrap_err();
        assert!(matches!(&e, Error::Format(f) if f.file == "wal/open-1"), "{e}");
        write(&st, "wal/open-1", b"wax\0\0\0\0\0", 64);
        assert!(read_wal(&st, "wal").unwrap_err().to_string().contains("magic"));
        write(&st, "wal/open-1", b"wal\x01\0\0\0\0", 64);
        assert_eq!(read_wal(&st, "wal").unwrap_err().kind(), crate::ErrorKind::Unsupported);
        write(&st, "wal/open-1", &encode_segment_header(1), 64);
        write(&st, "wal/open-x", &encode_segment_header(1), 64);
        assert!(read_wal(&st, "wal").unwrap_err().to_string().contains("wal/open-x"));
    }

    #[test]
    fn missing_dir_and_empty_dir() {
        let st = MemoryStorage::new();
        assert!(read_wal(&st, "wal").unwrap().is_none());
        st.create_dir_all("wal").unwrap();
        let c = read_wal(&st, "wal").unwrap().unwrap();
        assert_eq!((c.first_index, c.next_index, c.entries.len()), (0, 0, 0));
    }

    #[test]
    fn closed_segments_contiguity_and_first_index() {
        let st = MemoryStorage::new();
        st.create_dir_all("wal").unwrap();
        write(&st, "wal/closed-10", &segment(1, &[b"x10", b"x11"], 256), 256);
        write(&st, "wal/closed-12", &segment(2, &[b"x12"], 256), 256);
        write(&st, "wal/open-5", &segment(3, &[b"x13", b"x14"], 256), 256);
        write(&st, "wal/open-6", &encode_segment_header(4), 256);
        let c = read_wal(&st, "wal").unwrap().unwrap();
        assert_eq!((c.physical_first_index, c.first_index, c.next_index), (10, 10, 15));
        let idx: Vec<(u64, &[u8])> = c.entries.iter().map(|e| (e.index, &e.data[..])).collect();
        assert_eq!(idx, [(10, &b"x10"[..]), (11, b"x11"), (12, b"x12"), (13, b"x13"), (14, b"x14")]);

        for (ack, first) in [(0u64, 10u64), (12, 12), (14, 14), (99, 14)] {
            st.write_atomic("wal/first-index", format!("{{\"ack_index\":{ack}}}").as_bytes()).unwrap();
            let c = read_wal(&st, "wal").unwrap().unwrap();
            assert_eq!((c.ack_index, c.first_index), (Some(ack), first));
            assert_eq!(c.entries.first().map(|e| e.index), Some(first));
            assert_eq!(c.entries.len() as u64, 15 - first);
        }
        st.write_atomic("wal/first-index", b"{\"ack\":1}").unwrap();
        assert!(read_wal(&st, "wal").unwrap_err().to_string().contains("first-index"));
        st.remove_file("wal/first-index").unwrap();

        // an empty last closed segment is fine (the open segment starts where it starts) ...
        write(&st, "wal/closed-12", &segment(2, &[], 256), 256);
        assert_eq!(read_wal(&st, "wal").unwrap().unwrap().next_index, 14);
        // ... but a short closed segment before another one leaves a gap
        write(&st, "wal/closed-12", &segment(2, &[b"x12"], 256), 256);
        write(&st, "wal/closed-10", &segment(1, &[b"x10"], 256), 256);
        assert!(read_wal(&st, "wal").unwrap_err().to_string().contains("missing"));
        // overlap
        write(&st, "wal/closed-10", &segment(1, &[b"x10", b"x11"], 256), 256);
        write(&st, "wal/closed-11", &segment(2, &[b"x11"], 256), 256);
        assert!(read_wal(&st, "wal").unwrap_err().to_string().contains("overlapping"));
    }

    #[test]
    fn stranded_open_segments() {
        let st = MemoryStorage::new();
        st.create_dir_all("wal").unwrap();
        write(&st, "wal/open-1", &encode_segment_header(1), 256);
        write(&st, "wal/open-2", &segment(2, &[b"a", b"b"], 256), 256);
        write(&st, "wal/open-3", &segment(3, &[b"c"], 256), 256);
        write(&st, "wal/open-4", &encode_segment_header(4), 256);
        let c = read_wal(&st, "wal").unwrap().unwrap();
        let roles: Vec<(&str, SegmentRole, u64)> =
            c.segments.iter().map(|s| (s.file_name.as_str(), s.role, s.start_index)).collect();
        assert_eq!(
            roles,
            [
                ("open-1", SegmentRole::Stranded, 0),
                ("open-2", SegmentRole::Stranded, 0),
                ("open-3", SegmentRole::Active, 2),
                ("open-4", SegmentRole::Spare, 3)
            ]
        );
        let data: Vec<&[u8]> = c.entries.iter().map(|e| &e.data[..]).collect();
        assert_eq!(data, [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn chain_depends_on_the_previous_crc() {
        // an entry copied from another segment (other seed) does not verify
        let a = segment(1, &[b"one", b"two"], 256);
        let b = segment(2, &[b"one", b"two"], 256);
        let mut mixed = a[..8 + entry_size(3).unwrap() as usize].to_vec();
        mixed.extend_from_slice(&b[8 + entry_size(3).unwrap() as usize..]);
        let st = MemoryStorage::new();
        st.create_dir_all("wal").unwrap();
        write(&st, "wal/open-1", &mixed, 256);
        let c = read_wal(&st, "wal").unwrap().unwrap();
        assert_eq!(c.entries.len(), 1);
    }
}
