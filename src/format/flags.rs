//! Persisted flag sets (spec §1.8, §1.10, §1.11): deleted flags of vector storages and id
//! trackers, in four encodings. All decode into a [`Flags`] value where positions at or beyond
//! the logical length (or beyond the stored bytes) read as `false`.
//!
//! **Bit vector** (§1.8): bit *i* is bit `i % 8` (LSB first) of byte `i / 8`.
//!
//! **Dynamic flags directory** (§1.10):
//!
//! | File | Offset | Width | Field |
//! |---|---|---|---|
//! | `status.dat` | 0 | u64 LE | `len`, number of logical flags |
//! | | 8 | u64 LE | `current_file_id`: 0 ⇒ `flags_a.dat`, 1 (legacy) ⇒ `flags_b.dat` |
//! | `flags_a.dat` / `flags_b.dat` | 0 | `ceil(len/8)` bytes used | bit vector (file ≥ 1 MiB, rest unused) |
//!
//! A missing directory, a missing `status.dat` or a missing flags file mean "no flag set"
//! (Qdrant creates them zero-filled). A directory holding `compact_flags.dat` instead is the
//! compact mode: that file is a `QBMK` bitmask. Both kinds present is corruption.
//!
//! **`QBMK` compact bitmask** (§1.11):
//!
//! | Offset | Width | Field |
//! |---|---|---|
//! | 0 | 4 | magic `QBMK` |
//! | 4 | u32 LE | version = 1 |
//! | 8 | u64 LE | logical_len (bits, ≤ 2^32) |
//! | 16 | u32 LE | encoding: 0 Dense, 1 RoaringOnes, 2 RoaringZeros |
//! | 20 | u32 | reserved |
//! | 24 | u64 LE | payload_len |
//! | 32 | payload_len | Dense: bit-vector words; Roaring*: portable Roaring bitmap |
//!
//! Roaring (RoaringFormatSpec): cookie u32 `12346` (no runs) followed by a u32 container
//! count, or cookie u16 `12347` + u16 `count-1` followed by a run-flag bitset of
//! `ceil(count/8)` bytes; then per container `{key u16, cardinality-1 u16}`; then (always for
//! 12346, for 12347 only when count ≥ 4) one u32 offset per container; then the containers:
//! run = `u16 n` + n × `{start u16, length-1 u16}`, array (cardinality ≤ 4096) = u16 values,
//! bitmap = 8192 bytes.
//!
//! **`deleted.dat`** of immutable dense storages (§5.4): `drop` + 4 zero bytes, then a bit vector.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::{Error, FormatError};
use crate::format::le::{bit, Reader};
use crate::storage::{join, EntryKind, Storage, StorageErrorKind};

/// A decoded flag set. Out-of-range positions are `false`.
#[derive(Debug, Clone)]
pub struct Flags {
    len: u64,
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Bits(Bytes),
    /// Positions listed are `!default`; all other positions are `default`.
    Roaring {
        containers: BTreeMap<u16, Container>,
        listed_value: bool,
    },
}

#[derive(Debug, Clone)]
enum Container {
    Array(Vec<u16>),
    Bitmap(Box<[u8]>),
    Runs(Vec<(u16, u16)>),
}

impl Container {
    fn contains(&self, low: u16) -> bool {
        match self {
            Container::Array(v) => v.binary_search(&low).is_ok(),
            Container::Bitmap(b) => bit(b, u64::from(low)),
            Container::Runs(r) => {
                // runs sorted by start; find the last run starting at or before `low`
                let i = r.partition_point(|&(s, _)| s <= low);
                i > 0 && {
                    let (s, l) = r[i - 1];
                    u32::from(low) <= u32::from(s) + u32::from(l)
                }
            }
        }
    }
}

impl Flags {
    /// No flag set.
    pub fn empty() -> Flags {
        Flags { len: 0, repr: Repr::Bits(Bytes::new()) }
    }

    /// A raw bit vector with `len` logical flags (`u64::MAX` = bounded only by the bytes).
    pub fn from_bits(bits: Bytes, len: u64) -> Flags {
        Flags { len, repr: Repr::Bits(bits) }
    }

    /// Logical number of flags (bits beyond it read `false`).
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: u64) -> bool {
        if i >= self.len {
            return false;
        }
        match &self.repr {
            Repr::Bits(b) => bit(b, i),
            Repr::Roaring { containers, listed_value } => {
                let Ok(i32_) = u32::try_from(i) else { return !listed_value };
                let listed = containers.get(&((i32_ >> 16) as u16)).is_some_and(|c| c.contains(i32_ as u16));
                if listed {
                    *listed_value
                } else {
                    !listed_value
                }
            }
        }
    }

    /// Number of `true` positions below `len` (linear; for tests and statistics).
    pub fn count_ones(&self) -> u64 {
        match &self.repr {
            Repr::Bits(b) => {
                let n_bytes = usize::try_from(self.len.div_ceil(8)).unwrap_or(usize::MAX).min(b.len());
                let mut c: u64 = b[..n_bytes].iter().map(|x| u64::from(x.count_ones())).sum();
                // subtract bits of the last byte past len
                if n_bytes as u64 * 8 > self.len {
                    for i in self.len..n_bytes as u64 * 8 {
                        if bit(b, i) {
                            c -= 1;
                        }
                    }
                }
                c
            }
            Repr::Roaring { .. } => (0..self.len).filter(|&i| self.get(i)).count() as u64,
        }
    }
}

/// Read a plain bit-vector file (e.g. `id_tracker.deleted`). Missing file ⇒ `None`.
pub fn read_bit_file<S: Storage + ?Sized>(storage: &S, path: &str) -> Result<Option<Flags>, Error> {
    match storage.read_all(path) {
        Ok(b) => Ok(Some(Flags::from_bits(b, u64::MAX))),
        Err(e) if e.kind == StorageErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Read a `deleted.dat` file of an immutable dense storage: `drop` + 4 pad bytes + bits.
pub fn read_drop_file<S: Storage + ?Sized>(storage: &S, path: &str) -> Result<Flags, Error> {
    let b = storage.read_all(path)?;
    parse_drop_file(b, path).map_err(Into::into)
}

pub fn parse_drop_file(b: Bytes, path: &str) -> Result<Flags, FormatError> {
    if b.len() < 8 {
        return Err(FormatError::corrupt(
            path,
            format!("deleted flags file is {} bytes, shorter than its 8-byte header", b.len()),
        ));
    }
    if &b[..4] != b"drop" {
        return Err(FormatError::corrupt(path, "deleted flags file does not start with `drop`"));
    }
    Ok(Flags::from_bits(b.slice(8..), u64::MAX))
}

pub const STATUS_FILE: &str = "status.dat";
pub const FLAGS_FILE: &str = "flags_a.dat";
pub const FLAGS_FILE_LEGACY: &str = "flags_b.dat";
pub const COMPACT_FLAGS_FILE: &str = "compact_flags.dat";

/// Open a flags directory (dynamic or compact mode). A missing directory is an empty set.
pub fn read_flags_dir<S: Storage + ?Sized>(storage: &S, dir: &str) -> Result<Flags, Error> {
    match storage.entry_kind(dir)? {
        None => return Ok(Flags::empty()),
        Some(EntryKind::File) => {
            return Err(FormatError::corrupt(dir, "expected a flags directory, found a file").into())
        }
        Some(EntryKind::Dir) => {}
    }
    let status_path = join(dir, STATUS_FILE);
    let compact_path = join(dir, COMPACT_FLAGS_FILE);
    let has_dynamic = storage.exists(&status_path)? || storage.exists(&join(dir, FLAGS_FILE))?;
    let has_compact = storage.exists(&compact_path)?;
    if has_dynamic && has_compact {
        return Err(FormatError::corrupt(
            dir,
            "flags directory holds both dynamic (status.dat) and compact (compact_flags.dat) flags",
        )
        .into());
    }
    if has_compact {
        let b = storage.read_all(&compact_path)?;
        return parse_qbmk(&b, &compact_path).map_err(Into::into);
    }
    if !storage.exists(&status_path)? {
        return Ok(Flags::empty());
    }
    let status = storage.read_all(&status_path)?;
    let mut r = Reader::new(&status, &status_path);
    let len = r.u64()?;
    let file_id = r.u64()?;
    let flags_path = match file_id {
        0 => join(dir, FLAGS_FILE),
        1 => join(dir, FLAGS_FILE_LEGACY),
        n => return Err(FormatError::corrupt(&status_path, format!("current_file_id is {n}, expected 0 or 1")).into()),
    };
    if len == 0 {
        return Ok(Flags::empty());
    }
    let slice = match storage.open_slice(&flags_path) {
        Ok(s) => s,
        Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(Flags::empty()),
        Err(e) => return Err(e.into()),
    };
    // only the bytes that hold logical flags are read (the file is at least 1 MiB)
    let need = len.div_ceil(8).min(slice.len());
    let bits = slice.read_range(0, need)?;
    Ok(Flags::from_bits(bits, len))
}

const QBMK_HEADER: usize = 32;
const QBMK_MAX_LEN: u64 = 1 << 32;

/// Decode a `QBMK` compact bitmask.
pub fn parse_qbmk(b: &[u8], file: &str) -> Result<Flags, FormatError> {
    let mut r = Reader::new(b, file);
    let magic = r.bytes(4)?;
    if magic != b"QBMK" {
        return Err(FormatError::corrupt(file, "bad magic, expected `QBMK`"));
    }
    let version = r.u32()?;
    if version != 1 {
        return Err(FormatError::unsupported(file, format!("QBMK version {version} (only 1 is known)")));
    }
    let logical_len = r.u64()?;
    if logical_len > QBMK_MAX_LEN {
        return Err(FormatError::corrupt(file, format!("logical length {logical_len} exceeds 2^32")));
    }
    let encoding = r.u32()?;
    let _reserved = r.u32()?;
    let payload_len = r.u64()?;
    let avail = (b.len() - QBMK_HEADER) as u64;
    if payload_len != avail {
        return Err(FormatError::corrupt(
            file,
            format!("payload length {payload_len} but {avail} bytes follow the header"),
        ));
    }
    let payload = &b[QBMK_HEADER..];
    match encoding {
        0 => {
            let expect = logical_len.div_ceil(64) * 8;
            if payload_len != expect {
                return Err(FormatError::corrupt(
                    file,
                    format!("dense payload is {payload_len} bytes, expected {expect} for {logical_len} bits"),
                ));
            }
            Ok(Flags::from_bits(Bytes::copy_from_slice(payload), logical_len))
        }
        1 | 2 => {
            let containers = parse_roaring(payload, file)?;
            Ok(Flags { len: logical_len, repr: Repr::Roaring { containers, listed_value: encoding == 1 } })
        }
        e => Err(FormatError::corrupt(file, format!("unknown bitmask encoding {e}"))),
    }
}

const COOKIE_NO_RUNS: u32 = 12346;
const COOKIE_RUNS: u16 = 12347;

fn parse_roaring(p: &[u8], file: &str) -> Result<BTreeMap<u16, Container>, FormatError> {
    let mut r = Reader::new(p, file);
    let first = r.u32()?;
    let (count, run_flags): (usize, Option<&[u8]>) = if first == COOKIE_NO_RUNS {
        let n = r.u32()?;
        if n > 65536 {
            return Err(FormatError::corrupt(file, format!("roaring container count {n} exceeds 65536")));
        }
        (n as usize, None)
    } else if (first & 0xFFFF) as u16 == COOKIE_RUNS {
        let n = (first >> 16) as usize + 1;
        let flags = r.bytes(n.div_ceil(8))?;
        (n, Some(flags))
    } else {
        return Err(FormatError::corrupt(file, format!("unknown roaring cookie {first:#x}")));
    };
    let mut heads = Vec::with_capacity(count);
    for _ in 0..count {
        let key = r.u16()?;
        let card = u32::from(r.u16()?) + 1;
        heads.push((key, card));
    }
    if run_flags.is_none() || count >= 4 {
        // offsets: redundant with sequential layout; checked for consistency below
        r.bytes(count * 4)?;
    }
    let mut out = BTreeMap::new();
    let mut prev_key: Option<u16> = None;
    for (i, &(key, card)) in heads.iter().enumerate() {
        if prev_key.is_some_and(|k| k >= key) {
            return Err(FormatError::corrupt(file, "roaring container keys are not strictly increasing"));
        }
        prev_key = Some(key);
        let is_run = run_flags.is_some_and(|f| bit(f, i as u64));
        let c = if is_run {
            let n = r.u16()? as usize;
            let mut runs = Vec::with_capacity(n);
            for _ in 0..n {
                let s = r.u16()?;
                let l = r.u16()?;
                if u32::from(s) + u32::from(l) > 0xFFFF {
                    return Err(FormatError::corrupt(file, "roaring run passes the end of its container"));
                }
                runs.push((s, l));
            }
            if runs.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(FormatError::corrupt(file, "roaring runs are not sorted"));
            }
            Container::Runs(runs)
        } else if card <= 4096 {
            let mut v = Vec::with_capacity(card as usize);
            for _ in 0..card {
                v.push(r.u16()?);
            }
            if v.windows(2).any(|w| w[0] >= w[1]) {
                return Err(FormatError::corrupt(file, "roaring array container is not strictly sorted"));
            }
            Container::Array(v)
        } else {
            Container::Bitmap(r.bytes(8192)?.to_vec().into_boxed_slice())
        };
        out.insert(key, c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::storage::{MemoryStorage, OpenMode};

    fn put(st: &MemoryStorage, path: &str, data: &[u8]) {
        st.create_dir_all(crate::storage::parent(path)).unwrap();
        let f = st.open(path, OpenMode::Create).unwrap();
        f.set_len(0).unwrap();
        f.write_at(0, data).unwrap();
    }

    fn status(len: u64, id: u64) -> Vec<u8> {
        let mut v = len.to_le_bytes().to_vec();
        v.extend_from_slice(&id.to_le_bytes());
        v
    }

    #[test]
    fn dynamic_flags() {
        let st = MemoryStorage::new();
        // missing dir ⇒ empty
        assert!(!read_flags_dir(&st, "d").unwrap().get(0));
        put(&st, "d/status.dat", &status(10, 0));
        let f = st.open("d/flags_a.dat", OpenMode::Create).unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_at(0, &[0b1000_0101, 0b1111_1111]).unwrap();
        let fl = read_flags_dir(&st, "d").unwrap();
        assert_eq!(fl.len(), 10);
        let got: Vec<bool> = (0..12).map(|i| fl.get(i)).collect();
        assert_eq!(got, [true, false, true, false, false, false, false, true, true, true, false, false]);
        assert_eq!(fl.count_ones(), 5);
        // legacy file id
        put(&st, "d/status.dat", &status(3, 1));
        put(&st, "d/flags_b.dat", &[0b010]);
        let fl = read_flags_dir(&st, "d").unwrap();
        assert!(!fl.get(0) && fl.get(1));
        // bad file id, short status
        put(&st, "d/status.dat", &status(3, 7));
        assert_eq!(read_flags_dir(&st, "d").unwrap_err().kind(), ErrorKind::Corrupted);
        put(&st, "d/status.dat", &[1, 0, 0]);
        assert_eq!(read_flags_dir(&st, "d").unwrap_err().kind(), ErrorKind::Corrupted);
        // both modes
        put(&st, "d/status.dat", &status(3, 0));
        put(&st, "d/compact_flags.dat", b"QBMK");
        assert_eq!(read_flags_dir(&st, "d").unwrap_err().kind(), ErrorKind::Corrupted);
    }

    fn qbmk(len: u64, enc: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = b"QBMK".to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&enc.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn qbmk_real_examples() {
        // all-present index: 3920 bits, RoaringOnes, nothing set (observed on the server)
        let empty = qbmk(3920, 1, &[0x3a, 0x30, 0, 0, 0, 0, 0, 0]);
        let f = parse_qbmk(&empty, "m").unwrap();
        assert!((0..3920).all(|i| !f.get(i)));
        // 10 ids set
        let mut p = 12346u32.to_le_bytes().to_vec();
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&9u16.to_le_bytes());
        p.extend_from_slice(&16u32.to_le_bytes());
        let ids = [3u16, 7, 8, 100, 200, 300, 1000, 2000, 3000, 3919];
        for i in ids {
            p.extend_from_slice(&i.to_le_bytes());
        }
        let f = parse_qbmk(&qbmk(3920, 1, &p), "m").unwrap();
        assert_eq!((0..3920).filter(|&i| f.get(i)).collect::<Vec<_>>(), ids.map(u64::from).to_vec());
        // zeros polarity inverts
        let f = parse_qbmk(&qbmk(3920, 2, &p), "m").unwrap();
        assert!(!f.get(3) && f.get(4) && !f.get(3919) && !f.get(3920));
        // dense
        let f = parse_qbmk(&qbmk(72, 0, &[1, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x01]), "m").unwrap();
        assert!(f.get(0) && !f.get(1) && f.get(71));
        assert!(!f.get(120)); // set in the payload but beyond len
    }

    #[test]
    fn roaring_runs_and_bitmaps() {
        // cookie with runs: 2 containers, first is a run container, second an array
        let mut p = Vec::new();
        p.extend_from_slice(&(12347u32 | (1 << 16)).to_le_bytes());
        p.push(0b01); // run flags
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&(20u16 - 1).to_le_bytes());
        p.extend_from_slice(&1u16.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        // count < 4 with runs: no offsets
        p.extend_from_slice(&1u16.to_le_bytes()); // one run
        p.extend_from_slice(&10u16.to_le_bytes());
        p.extend_from_slice(&19u16.to_le_bytes()); // 10..=29
        p.extend_from_slice(&5u16.to_le_bytes()); // array: 65536+5
        let f = parse_qbmk(&qbmk(1 << 20, 1, &p), "m").unwrap();
        assert!(!f.get(9) && f.get(10) && f.get(29) && !f.get(30) && f.get(65541) && !f.get(65540));
        // bitmap container (cardinality 4097)
        let mut p = 12346u32.to_le_bytes().to_vec();
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&4096u16.to_le_bytes());
        p.extend_from_slice(&16u32.to_le_bytes());
        let mut bm = vec![0u8; 8192];
        bm[1] = 0b10; // bit 9
        p.extend_from_slice(&bm);
        let f = parse_qbmk(&qbmk(100, 1, &p), "m").unwrap();
        assert!(f.get(9) && !f.get(8));
    }

    #[test]
    fn qbmk_corruption_is_an_error() {
        let good = qbmk(70, 0, &[0u8; 16]);
        assert!(parse_qbmk(&good, "m").is_ok());
        for cut in 0..good.len() {
            assert!(parse_qbmk(&good[..cut], "m").is_err(), "cut {cut}");
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(parse_qbmk(&bad, "m").is_err());
        let mut bad = good.clone();
        bad[16] = 9;
        assert!(parse_qbmk(&bad, "m").is_err());
        let mut bad = good.clone();
        bad[4] = 2;
        assert!(parse_qbmk(&bad, "m").unwrap_err().unsupported);
        assert!(parse_qbmk(&qbmk(1 << 40, 0, &[]), "m").is_err());
        // roaring garbage in every byte position: never panics
        let mut p = 12346u32.to_le_bytes().to_vec();
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&[0, 0, 2, 0, 16, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
        for i in 0..p.len() {
            for x in [0u8, 0xff, 0x3b] {
                let mut q = p.clone();
                q[i] = x;
                let _ = parse_qbmk(&qbmk(100, 1, &q), "m");
            }
            let _ = parse_qbmk(&qbmk(100, 1, &p[..i]), "m");
        }
    }

    #[test]
    fn drop_file() {
        let mut d = b"drop\0\0\0\0".to_vec();
        d.push(0b100);
        let f = parse_drop_file(Bytes::from(d), "x").unwrap();
        assert!(f.get(2) && !f.get(0) && !f.get(1000));
        assert!(parse_drop_file(Bytes::from_static(b"dro"), "x").is_err());
        assert!(parse_drop_file(Bytes::from_static(b"data\0\0\0\0"), "x").is_err());
    }
}
