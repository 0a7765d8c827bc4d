//! Blobstore reader (spec §7.1–7.5, §1.5, §1.6): the key → blob store behind payload storage,
//! sparse vector storage and mutable field indexes. Keys are internal ids (`u32`).
//!
//! `config.json`: `{"mode":"mutable"|"append_only","page_size_bytes":P,"block_size_bytes":B,
//! "region_size_blocks":R,"compression":"LZ4"|"None"}` (`mode` missing ⇒ mutable, `compression`
//! missing ⇒ LZ4).
//!
//! **Gridstore** (`mutable`):
//!
//! | File | Offset | Width | Content |
//! |---|---|---|---|
//! | `tracker.dat` | 0 | u32 LE | `next_pointer_offset` (1 + highest key ever written) |
//! | | 4 + 16k | 16 | slot of key *k*: `u32 discriminant` (0 None, 1 Some), `u32 page_id`, `u32 block_offset`, `u32 length` |
//! | `tracker_journal.dat` | | | entries: `u32 len`, `u32 crc32c(payload)`, payload = len/20 × (`u32 key` + 16-byte slot) |
//! | `page_<n>.dat` | | P each | value bytes; a value starts at `block_offset × B` of page `page_id` and may continue at offset 0 of the next pages |
//!
//! Slots past the file or past `next_pointer_offset`, `discriminant == 0` and `length == 0` all
//! mean "no value". The journal (edge only) is overlaid in order over `tracker.dat`, stopping
//! at the first entry that is short, empty, not a multiple of 20 or fails its CRC-32C.
//! `bitmask.dat` and `gaps.dat` are allocation helpers and are not read.
//!
//! **Logstore** (`append_only`): `log_tracker.dat` = 16-byte slots without header (key *k* at
//! `16k`, a trailing partial slot ignored; `Some` with length 0 is an empty value),
//! `log_page_<n>.dat` = values back to back, `block_offset` is a byte offset, values never
//! span pages. The zstd-compressed `compacted_tracker.dat` is not supported.
//!
//! Values are LZ4 blocks with a `u32 LE` uncompressed-size prefix when `compression` is `LZ4`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, FormatError};
use crate::format::le::Reader;
use crate::format::segment_meta::parse_json;
use crate::storage::{join, EntryKind, FileSlice, Storage, StorageErrorKind};
use crate::types::Payload;

pub const CONFIG_FILE: &str = "config.json";
pub const TRACKER_FILE: &str = "tracker.dat";
pub const JOURNAL_FILE: &str = "tracker_journal.dat";
pub const LOG_TRACKER_FILE: &str = "log_tracker.dat";
pub const COMPACTED_TRACKER_FILE: &str = "compacted_tracker.dat";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Mutable,
    AppendOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Compression {
    None,
    #[default]
    LZ4,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlobstoreConfig {
    #[serde(default)]
    pub mode: Mode,
    pub page_size_bytes: u64,
    /// Gridstore only.
    #[serde(default)]
    pub block_size_bytes: Option<u64>,
    #[serde(default)]
    pub region_size_blocks: Option<u64>,
    #[serde(default)]
    pub compression: Compression,
}

/// Where a value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValuePointer {
    pub page_id: u32,
    /// Blocks (Gridstore) or bytes (Logstore).
    pub offset: u32,
    pub length: u32,
}

/// An opened Gridstore or Logstore.
#[derive(Debug, Clone)]
pub struct Gridstore {
    dir: String,
    config: BlobstoreConfig,
    /// Byte size of one offset unit (block size, or 1 for Logstore).
    unit: u64,
    slots: Vec<Option<ValuePointer>>,
    /// Journal entries that fall past `slots`.
    extra: BTreeMap<u32, Option<ValuePointer>>,
    pages: Vec<FileSlice>,
}

fn slot(r: &mut Reader<'_>, key: u64, append_only: bool) -> Result<Option<ValuePointer>, FormatError> {
    let disc = r.u32()?;
    let page_id = r.u32()?;
    let offset = r.u32()?;
    let length = r.u32()?;
    match disc {
        0 => Ok(None),
        1 if length == 0 && !append_only => Ok(None),
        1 => Ok(Some(ValuePointer { page_id, offset, length })),
        d => Err(FormatError::corrupt(r.file, format!("slot of key {key}: discriminant {d}, expected 0 or 1"))),
    }
}

impl Gridstore {
    pub fn open<S: Storage + ?Sized>(storage: &S, dir: &str) -> Result<Gridstore, Error> {
        let cfg_path = join(dir, CONFIG_FILE);
        let config: BlobstoreConfig = parse_json(&storage.read_all(&cfg_path)?, &cfg_path)?;
        if config.page_size_bytes == 0 {
            return Err(FormatError::corrupt(&cfg_path, "page_size_bytes must be positive").into());
        }
        match config.mode {
            Mode::Mutable => Self::open_grid(storage, dir, config),
            Mode::AppendOnly => Self::open_log(storage, dir, config),
        }
    }

    fn list_pages<S: Storage + ?Sized>(storage: &S, dir: &str, prefix: &str) -> Result<Vec<FileSlice>, Error> {
        let mut ids = Vec::new();
        for e in storage.list_dir(dir)? {
            if e.kind != EntryKind::File {
                continue;
            }
            if let Some(n) = e.name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".dat")) {
                let id: u32 = n
                    .parse()
                    .map_err(|_| FormatError::corrupt(join(dir, &e.name), "page file name has no decimal id"))?;
                ids.push(id);
            }
        }
        ids.sort_unstable();
        if ids.iter().enumerate().any(|(i, &id)| id as usize != i) {
            return Err(FormatError::corrupt(dir, format!("page ids are not contiguous from 0: {ids:?}")).into());
        }
        ids.iter().map(|id| Ok(storage.open_slice(&join(dir, &format!("{prefix}{id}.dat")))?)).collect()
    }

    fn open_grid<S: Storage + ?Sized>(storage: &S, dir: &str, config: BlobstoreConfig) -> Result<Gridstore, Error> {
        let cfg_path = join(dir, CONFIG_FILE);
        let block = config.block_size_bytes.unwrap_or(0);
        let region = config.region_size_blocks.unwrap_or(0);
        let region_bytes = block.checked_mul(region).unwrap_or(0);
        if block == 0
            || region == 0
            || region > 65535
            || region_bytes == 0
            || config.page_size_bytes % region_bytes != 0
        {
            return Err(FormatError::corrupt(
                &cfg_path,
                "block_size_bytes and region_size_blocks must be positive, region ≤ 65535, page size a multiple of block × region",
            )
            .into());
        }
        let tpath = join(dir, TRACKER_FILE);
        let tracker = storage.read_all(&tpath)?;
        let mut r = Reader::new(&tracker, &tpath);
        let next = u64::from(r.u32()?);
        let in_file = (tracker.len() as u64 - 4) / 16;
        let n = next.min(in_file);
        let mut slots = Vec::with_capacity(n as usize);
        for k in 0..n {
            slots.push(slot(&mut r, k, false)?);
        }
        let mut gs =
            Gridstore { dir: dir.to_string(), config, unit: block, slots, extra: BTreeMap::new(), pages: Vec::new() };
        gs.apply_journal(storage)?;
        gs.pages = Self::list_pages(storage, dir, "page_")?;
        Ok(gs)
    }

    fn apply_journal<S: Storage + ?Sized>(&mut self, storage: &S) -> Result<(), Error> {
        let jpath = join(&self.dir, JOURNAL_FILE);
        let journal = match storage.read_all(&jpath) {
            Ok(b) => b,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut pos = 0usize;
        while journal.len() - pos >= 8 {
            let len = u32::from_le_bytes([journal[pos], journal[pos + 1], journal[pos + 2], journal[pos + 3]]) as usize;
            let crc = u32::from_le_bytes([journal[pos + 4], journal[pos + 5], journal[pos + 6], journal[pos + 7]]);
            if len == 0 || len % 20 != 0 || journal.len() - pos - 8 < len {
                break;
            }
            let payload = &journal[pos + 8..pos + 8 + len];
            if crc32c::crc32c(payload) != crc {
                break;
            }
            let mut r = Reader::new(payload, &jpath);
            while !r.is_empty() {
                let key = r.u32()?;
                let p = slot(&mut r, u64::from(key), false)?;
                match self.slots.get_mut(key as usize) {
                    Some(s) => *s = p,
                    None => {
                        self.extra.insert(key, p);
                    }
                }
            }
            pos += 8 + len;
        }
        Ok(())
    }

    fn open_log<S: Storage + ?Sized>(storage: &S, dir: &str, config: BlobstoreConfig) -> Result<Gridstore, Error> {
        if storage.exists(&join(dir, COMPACTED_TRACKER_FILE))? {
            return Err(FormatError::unsupported(
                join(dir, COMPACTED_TRACKER_FILE),
                "compacted (zstd) Logstore tracker is not supported",
            )
            .into());
        }
        let tpath = join(dir, LOG_TRACKER_FILE);
        let tracker = match storage.read_all(&tpath) {
            Ok(b) => b,
            Err(e) if e.kind == StorageErrorKind::NotFound => bytes::Bytes::new(),
            Err(e) => return Err(e.into()),
        };
        let n = tracker.len() / 16;
        let mut r = Reader::new(&tracker, &tpath);
        let mut slots = Vec::with_capacity(n);
        for k in 0..n {
            slots.push(slot(&mut r, k as u64, true)?);
        }
        let pages = Self::list_pages(storage, dir, "log_page_")?;
        Ok(Gridstore { dir: dir.to_string(), config, unit: 1, slots, extra: BTreeMap::new(), pages })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }
    pub fn config(&self) -> &BlobstoreConfig {
        &self.config
    }

    /// Number of key slots (one past the highest key that can hold a value).
    pub fn key_bound(&self) -> u64 {
        let last_extra = self.extra.keys().next_back().map_or(0, |&k| u64::from(k) + 1);
        (self.slots.len() as u64).max(last_extra)
    }

    pub fn pointer(&self, key: u32) -> Option<ValuePointer> {
        match self.slots.get(key as usize) {
            Some(p) => *p,
            None => self.extra.get(&key).copied().flatten(),
        }
    }

    /// Keys that hold a value, ascending.
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        let a = self.slots.iter().enumerate().filter(|(_, p)| p.is_some()).map(|(k, _)| k as u32);
        let b = self.extra.iter().filter(|(_, p)| p.is_some()).map(|(&k, _)| k);
        a.chain(b)
    }

    /// The stored (still compressed) bytes of `key`.
    pub fn get_raw(&self, key: u32) -> Result<Option<Vec<u8>>, Error> {
        let Some(p) = self.pointer(key) else { return Ok(None) };
        let page_size = self.config.page_size_bytes;
        let mut start = u64::from(p.offset) * self.unit;
        let mut page = p.page_id as usize;
        let mut left = u64::from(p.length);
        let bad = |m: String| -> Error {
            FormatError::corrupt(join(&self.dir, TRACKER_FILE), format!("key {key}: {m}")).into()
        };
        if self.config.mode == Mode::AppendOnly {
            // Logstore: the value lies inside one page file (a page may exceed its soft capacity)
            let slice = self.pages.get(page).ok_or_else(|| bad(format!("page {page} does not exist")))?;
            if start.checked_add(left).is_none_or(|end| end > slice.len()) {
                return Err(bad(format!("value {start}+{left} passes the end of page {page} ({} bytes)", slice.len())));
            }
            return Ok(Some(slice.read_range(start, left)?.to_vec()));
        }
        if start >= page_size && left > 0 {
            return Err(bad(format!("value starts at byte {start}, past the page size {page_size}")));
        }
        let mut out = Vec::with_capacity(left.min(1 << 26) as usize);
        while left > 0 {
            let slice = self.pages.get(page).ok_or_else(|| bad(format!("page {page} does not exist")))?;
            let here = (page_size - start).min(left);
            if slice.len() < start + here {
                return Err(bad(format!("page {page} is {} bytes, value needs {}", slice.len(), start + here)));
            }
            out.extend_from_slice(&slice.read_range(start, here)?);
            left -= here;
            start = 0;
            page += 1;
        }
        Ok(Some(out))
    }

    /// The value of `key`, decompressed.
    pub fn get(&self, key: u32) -> Result<Option<Vec<u8>>, Error> {
        let Some(raw) = self.get_raw(key)? else { return Ok(None) };
        match self.config.compression {
            Compression::None => Ok(Some(raw)),
            Compression::LZ4 => decompress_lz4(&raw).map(Some).map_err(|m| {
                FormatError::corrupt(
                    join(&self.dir, &format!("page_{}.dat", self.pointer(key).map_or(0, |p| p.page_id))),
                    format!("key {key}: {m}"),
                )
                .into()
            }),
        }
    }
}

/// LZ4 block with a `u32 LE` uncompressed-size prefix (`lz4_flex::compress_prepend_size`).
pub fn decompress_lz4(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() < 4 {
        return Err(format!("LZ4 value of {} bytes lacks its size prefix", data.len()));
    }
    let size = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    // an LZ4 block expands at most ~255×; refuse absurd sizes before allocating
    if size > (data.len() - 4).saturating_mul(255).saturating_add(64) {
        return Err(format!("LZ4 size prefix {size} is impossible for {} compressed bytes", data.len() - 4));
    }
    let out = lz4_flex::block::decompress(&data[4..], size).map_err(|e| format!("LZ4 decode failed: {e}"))?;
    if out.len() != size {
        return Err(format!("LZ4 value decoded to {} bytes, prefix says {size}", out.len()));
    }
    Ok(out)
}

/// The payload of internal id `internal` from a payload Gridstore: absent ⇒ `{}`.
pub fn read_payload(gs: &Gridstore, internal: u32) -> Result<Payload, Error> {
    let Some(bytes) = gs.get(internal)? else { return Ok(Payload::new()) };
    let file = || join(gs.dir(), TRACKER_FILE);
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(FormatError::corrupt(
            file(),
            format!("payload of key {internal} is not a JSON object but {}", json_kind(&other)),
        )
        .into()),
        Err(e) => Err(FormatError::corrupt(file(), format!("payload of key {internal} is not valid JSON: {e}")).into()),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::chunked::tests::put;
    use crate::storage::{MemoryStorage, OpenMode};

    pub(crate) const GRID_CFG: &str =
        r#"{"mode":"mutable","page_size_bytes":1024,"block_size_bytes":16,"region_size_blocks":8,"compression":"LZ4"}"#;

    fn slot_bytes(p: Option<(u32, u32, u32)>) -> Vec<u8> {
        let (d, (a, b, c)) = match p {
            Some(t) => (1u32, t),
            None => (0, (0, 0, 0)),
        };
        [d, a, b, c].iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Build a gridstore in `dir` holding `values` (key order) with 16-byte blocks, 1 KiB pages.
    pub(crate) fn write_grid(st: &MemoryStorage, dir: &str, cfg: &str, values: &[Option<Vec<u8>>]) {
        put(st, &format!("{dir}/config.json"), cfg.as_bytes());
        let lz4 = cfg.contains("LZ4");
        let mut tracker = (values.len() as u32).to_le_bytes().to_vec();
        let mut pos = 0u64; // global byte position over pages
        let page = st.open(&format!("{dir}/page_0.dat"), OpenMode::Create).unwrap();
        page.set_len(1024).unwrap();
        let mut pages = vec![page];
        for v in values {
            match v {
                None => tracker.extend(slot_bytes(None)),
                Some(v) => {
                    let stored = if lz4 { lz4_flex::compress_prepend_size(v) } else { v.clone() };
                    let (pid, off) = ((pos / 1024) as u32, ((pos % 1024) / 16) as u32);
                    tracker.extend(slot_bytes(Some((pid, off, stored.len() as u32))));
                    let mut written = 0usize;
                    while written < stored.len() {
                        let p = (pos / 1024) as usize;
                        while pages.len() <= p {
                            let f = st.open(&format!("{dir}/page_{}.dat", pages.len()), OpenMode::Create).unwrap();
                            f.set_len(1024).unwrap();
                            pages.push(f);
                        }
                        let in_page = (1024 - pos % 1024) as usize;
                        let n = in_page.min(stored.len() - written);
                        pages[p].write_at(pos % 1024, &stored[written..written + n]).unwrap();
                        written += n;
                        pos += n as u64;
                    }
                    pos = pos.div_ceil(16) * 16;
                }
            }
        }
        let t = st.open(&format!("{dir}/tracker.dat"), OpenMode::Create).unwrap();
        t.set_len(0).unwrap();
        t.set_len(4096).unwrap();
        t.write_at(0, &tracker).unwrap();
    }

    #[test]
    fn values_payloads_and_spanning() {
        let st = MemoryStorage::new();
        let mut x = 0x2545_f491_u32;
        let big: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect(); // incompressible, so the stored value spans pages
        let vals = vec![
            Some(br#"{"k":"a4","n":4}"#.to_vec()),
            None,
            Some(br#"[1,2]"#.to_vec()),
            Some(big.clone()),
            Some(b"not json".to_vec()),
        ];
        write_grid(&st, "p", GRID_CFG, &vals);
        let gs = Gridstore::open(&st, "p").unwrap();
        assert_eq!(gs.get(0).unwrap().unwrap(), vals[0].clone().unwrap());
        assert_eq!(gs.get(1).unwrap(), None);
        assert_eq!(gs.get(3).unwrap().unwrap(), big);
        assert!(gs.pointer(3).unwrap().length > 1024, "value must span pages for this test");
        assert_eq!(gs.get(99).unwrap(), None);
        assert_eq!(gs.keys().collect::<Vec<_>>(), vec![0, 2, 3, 4]);
        let p = read_payload(&gs, 0).unwrap();
        assert_eq!(serde_json::Value::Object(p), serde_json::json!({"k":"a4","n":4}));
        assert!(read_payload(&gs, 1).unwrap().is_empty());
        assert_eq!(read_payload(&gs, 2).unwrap_err().kind(), ErrorKind::Corrupted);
        assert_eq!(read_payload(&gs, 4).unwrap_err().kind(), ErrorKind::Corrupted);
    }

    #[test]
    fn journal_overlays_tracker() {
        let st = MemoryStorage::new();
        let vals = vec![Some(b"{\"a\":1}".to_vec()), Some(b"{\"b\":2}".to_vec())];
        write_grid(&st, "p", GRID_CFG, &vals);
        let gs = Gridstore::open(&st, "p").unwrap();
        let p1 = gs.pointer(1).unwrap();
        // journal: key 0 deleted, key 7 points at key 1's bytes; then a corrupt entry
        let mut payload = 0u32.to_le_bytes().to_vec();
        payload.extend(slot_bytes(None));
        payload.extend(7u32.to_le_bytes());
        payload.extend(slot_bytes(Some((p1.page_id, p1.offset, p1.length))));
        let mut j = (payload.len() as u32).to_le_bytes().to_vec();
        j.extend(crc32c::crc32c(&payload).to_le_bytes());
        j.extend(&payload);
        let mut bad_payload = 1u32.to_le_bytes().to_vec();
        bad_payload.extend(slot_bytes(None));
        j.extend((bad_payload.len() as u32).to_le_bytes());
        j.extend((crc32c::crc32c(&bad_payload) ^ 1).to_le_bytes());
        j.extend(&bad_payload);
        put(&st, "p/tracker_journal.dat", &j);
        let gs = Gridstore::open(&st, "p").unwrap();
        assert_eq!(gs.get(0).unwrap(), None);
        assert_eq!(gs.get(1).unwrap().unwrap(), b"{\"b\":2}"); // CRC-failing entry ignored
        assert_eq!(gs.get(7).unwrap().unwrap(), b"{\"b\":2}");
        assert_eq!(gs.key_bound(), 8);
        // a torn journal entry is ignored
        put(&st, "p/tracker_journal.dat", &j[..j.len() - 10]);
        assert!(Gridstore::open(&st, "p").unwrap().get(7).unwrap().is_some());
        put(&st, "p/tracker_journal.dat", &j[..47]);
        assert!(Gridstore::open(&st, "p").unwrap().get(7).unwrap().is_none());
        put(&st, "p/tracker_journal.dat", &j[..20]);
        assert!(Gridstore::open(&st, "p").unwrap().get(0).unwrap().is_some());
    }

    #[test]
    fn corruption_is_reported() {
        let st = MemoryStorage::new();
        write_grid(&st, "p", GRID_CFG, &[Some(b"{\"a\":1}".to_vec())]);
        let t = st.open("p/tracker.dat", OpenMode::ReadWrite).unwrap();
        // bad discriminant
        t.write_at(4, &5u32.to_le_bytes()).unwrap();
        assert_eq!(Gridstore::open(&st, "p").unwrap_err().kind(), ErrorKind::Corrupted);
        // pointer to a missing page
        t.write_at(4, &[1, 0, 0, 0, 9, 0, 0, 0]).unwrap();
        assert_eq!(Gridstore::open(&st, "p").unwrap().get(0).unwrap_err().kind(), ErrorKind::Corrupted);
        // offset past page size
        t.write_at(4, &[1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]).unwrap();
        assert_eq!(Gridstore::open(&st, "p").unwrap().get(0).unwrap_err().kind(), ErrorKind::Corrupted);
        // LZ4 garbage: every bit flip of the value either decodes or errors, never panics
        write_grid(&st, "q", GRID_CFG, &[Some(br#"{"key":"value value value value","n":[1,2,3,4,5,6,7,8]}"#.to_vec())]);
        let len = Gridstore::open(&st, "q").unwrap().pointer(0).unwrap().length as u64;
        let pg = st.open("q/page_0.dat", OpenMode::ReadWrite).unwrap();
        let mut orig = vec![0u8; len as usize];
        pg.read_at(0, &mut orig).unwrap();
        for i in 0..len as usize {
            for b in 0..8 {
                let mut m = orig.clone();
                m[i] ^= 1 << b;
                pg.write_at(0, &m).unwrap();
                let gs = Gridstore::open(&st, "q").unwrap();
                let _ = read_payload(&gs, 0);
            }
        }
        assert!(decompress_lz4(&[0xff, 0xff, 0xff, 0xff, 0]).unwrap_err().contains("impossible"));
        // tracker truncated to less than its header
        put(&st, "p/tracker.dat", &[1, 0]);
        assert_eq!(Gridstore::open(&st, "p").unwrap_err().kind(), ErrorKind::Corrupted);
        // bad config
        put(&st, "p/config.json", br#"{"page_size_bytes":1000,"block_size_bytes":16,"region_size_blocks":8}"#);
        assert_eq!(Gridstore::open(&st, "p").unwrap_err().kind(), ErrorKind::Corrupted);
        put(&st, "p/config.json", br#"{"mode":"sideways","page_size_bytes":1024}"#);
        assert_eq!(Gridstore::open(&st, "p").unwrap_err().kind(), ErrorKind::Corrupted);
    }

    #[test]
    fn logstore() {
        let st = MemoryStorage::new();
        put(&st, "l/config.json", br#"{"mode":"append_only","page_size_bytes":64,"compression":"None"}"#);
        put(&st, "l/log_page_0.dat", b"helloworld");
        put(&st, "l/log_page_1.dat", b"xyz");
        let mut t = Vec::new();
        t.extend(slot_bytes(Some((0, 0, 5))));
        t.extend(slot_bytes(Some((0, 5, 5))));
        t.extend(slot_bytes(Some((1, 0, 0)))); // empty value
        t.extend(slot_bytes(None));
        t.extend(slot_bytes(Some((1, 1, 2))));
        t.extend([1, 2, 3]); // torn slot
        put(&st, "l/log_tracker.dat", &t);
        let gs = Gridstore::open(&st, "l").unwrap();
        assert_eq!(gs.get(0).unwrap().unwrap(), b"hello");
        assert_eq!(gs.get(1).unwrap().unwrap(), b"world");
        assert_eq!(gs.get(2).unwrap().unwrap(), b"");
        assert_eq!(gs.get(3).unwrap(), None);
        assert_eq!(gs.get(4).unwrap().unwrap(), b"yz");
        assert_eq!(gs.get(5).unwrap(), None);
        put(&st, "l/compacted_tracker.dat", b"QDRANTCT");
        assert_eq!(Gridstore::open(&st, "l").unwrap_err().kind(), ErrorKind::Unsupported);
    }
}
