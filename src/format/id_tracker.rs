//! ID trackers (spec §4.1–4.4): external point id ↔ internal row id, and per-row versions.
//!
//! **Detection** (§4.1): appendable segment ⇒ mutable; else `id_tracker.i2e` ⇒ disk-resident;
//! else `id_tracker.mappings` ⇒ immutable; else mutable. No tracker files at all ⇒ empty.
//!
//! **Mutable** (`mutable_id_tracker.mappings`, append-only log, no header):
//!
//! | Type byte | Meaning | After the type byte | Size |
//! |---|---|---|---|
//! | `0x01` | insert numeric | `ext u64 LE`, `internal u32 LE` | 13 |
//! | `0x02` | insert UUID | 16 bytes RFC order, `internal u32 LE` | 21 |
//! | `0x03` | delete numeric | `ext u64 LE` | 9 |
//! | `0x04` | delete UUID | 16 bytes RFC order | 17 |
//!
//! A truncated last record is ignored; any other type byte is corruption.
//! `mutable_id_tracker.versions`: `u64 LE` version of internal id *i* at `8i`; a trailing
//! partial entry is ignored.
//!
//! **Immutable** (`id_tracker.mappings`): `count u64 LE`, then `count` entries
//! `{kind u8 (0 numeric, 1 UUID), ext (u64 LE | 16 bytes RFC order), internal u32 LE}`.
//! `id_tracker.deleted`: bit vector (bit *i* = internal *i* deleted; bits past the file are not
//! set). `id_tracker.versions`: `u64 LE` per internal id.
//!
//! **Disk-resident** (`id_tracker.i2e` / `.e2i` / `.is_uuid`, format version 2):
//!
//! | File | Offset | Width | Field |
//! |---|---|---|---|
//! | `i2e` | 0 | u64 LE | magic `0x5144_5F49_3245_0001` |
//! | | 8 | u32 LE | version = 2 |
//! | | 16 | u64 LE | `total` internal ids |
//! | | 32 | 16 × total | `u128 LE` per internal id: numeric id, or `Uuid::as_u128` (bytes reversed vs RFC) |
//! | `is_uuid` | | | `QBMK` bitmask, bit set ⇔ the i2e slot is a UUID |
//! | `e2i` | 0 | u64 LE | magic `0x5144_5F45_3249_0001` |
//! | | 8 | u32 LE | version = 2 |
//! | | 16, 24 | u64 LE ×2 | `num_count`, `uuid_count` (live entries) |
//! | | 32, 36 | u32 LE ×2 | entries per numeric / UUID sparse-index block |
//! | | 48 | … | A: numeric block index, B (16-aligned): UUID block index, C: `num_count × {u64 key, u32 internal}`, D (16-aligned): `uuid_count × {u128 key, u32 internal}` |
//!
//! plus the immutable tracker's `id_tracker.versions` and `id_tracker.deleted`.
//!
//! A point is live iff it has a mapping, is not deleted, and has a version entry (§3.4: a
//! mapping without a version is an interrupted write and is dropped, as Qdrant does on load).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::{Error, FormatError};
use crate::format::flags::{parse_qbmk, read_bit_file, Flags};
use crate::format::le::Reader;
use crate::storage::{join, Storage, StorageErrorKind};
use crate::types::PointId;

pub const MUTABLE_MAPPINGS: &str = "mutable_id_tracker.mappings";
pub const MUTABLE_VERSIONS: &str = "mutable_id_tracker.versions";
pub const IMMUTABLE_MAPPINGS: &str = "id_tracker.mappings";
pub const IMMUTABLE_VERSIONS: &str = "id_tracker.versions";
pub const IMMUTABLE_DELETED: &str = "id_tracker.deleted";
pub const DISK_I2E: &str = "id_tracker.i2e";
pub const DISK_E2I: &str = "id_tracker.e2i";
pub const DISK_IS_UUID: &str = "id_tracker.is_uuid";

const I2E_MAGIC: u64 = 0x5144_5F49_3245_0001;
const E2I_MAGIC: u64 = 0x5144_5F45_3249_0001;

/// Which on-disk tracker a segment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerKind {
    Mutable,
    Immutable,
    Disk,
}

/// A loaded id tracker (read-only view of the segment's live points).
#[derive(Debug, Clone)]
pub struct IdTracker {
    kind: TrackerKind,
    /// Live points only, sorted by Qdrant's point-id order.
    live: BTreeMap<PointId, u32>,
    /// internal → external, live points only.
    external: Vec<Option<PointId>>,
    versions: Vec<u64>,
    total: u64,
}

fn read_opt<S: Storage + ?Sized>(storage: &S, path: &str) -> Result<Option<Bytes>, Error> {
    match storage.read_all(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind == StorageErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn parse_versions(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
}

impl IdTracker {
    /// Detect the tracker kind (§4.1) and load it.
    pub fn open<S: Storage + ?Sized>(storage: &S, segment_dir: &str, appendable: bool) -> Result<IdTracker, Error> {
        if appendable {
            return Self::open_mutable(storage, segment_dir);
        }
        if storage.is_file(&join(segment_dir, DISK_I2E))? {
            return Self::open_disk(storage, segment_dir);
        }
        if storage.is_file(&join(segment_dir, IMMUTABLE_MAPPINGS))? {
            return Self::open_immutable(storage, segment_dir);
        }
        Self::open_mutable(storage, segment_dir)
    }

    pub fn kind(&self) -> TrackerKind {
        self.kind
    }

    /// Build from candidate (ext, internal) mappings: keep those not deleted and with a version.
    fn finish(
        kind: TrackerKind,
        pairs: impl Iterator<Item = (PointId, u32)>,
        deleted: impl Fn(u32) -> bool,
        versions: Vec<u64>,
        total: u64,
    ) -> IdTracker {
        let mut live = BTreeMap::new();
        let mut external = Vec::new();
        for (ext, i) in pairs {
            if deleted(i) || (i as usize) >= versions.len() {
                continue;
            }
            if let Some(prev) = live.insert(ext, i) {
                // the same external id twice: the later mapping wins; the earlier row is dropped
                if let Some(slot) = external.get_mut(prev as usize) {
                    *slot = None;
                }
            }
            if external.len() <= i as usize {
                external.resize(i as usize + 1, None);
            }
            if let Some(other) = external[i as usize].replace(ext) {
                // one row claimed by two external ids: the later claim wins
                if other != ext {
                    live.remove(&other);
                }
            }
        }
        IdTracker { kind, live, external, versions, total }
    }

    fn open_mutable<S: Storage + ?Sized>(storage: &S, dir: &str) -> Result<IdTracker, Error> {
        let mpath = join(dir, MUTABLE_MAPPINGS);
        let log = read_opt(storage, &mpath)?.unwrap_or_default();
        let versions = read_opt(storage, &join(dir, MUTABLE_VERSIONS))?.map(|b| parse_versions(&b)).unwrap_or_default();

        let mut fwd: BTreeMap<PointId, u32> = BTreeMap::new();
        let mut rev: BTreeMap<u32, PointId> = BTreeMap::new();
        let mut total: u64 = 0;
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
                    .into());
                }
            };
            if log.len() - pos < size {
                break; // torn last record (crash during append)
            }
            let rec = &log[pos + 1..pos + size];
            let mut r = Reader::new(rec, &mpath);
            let ext = if t == 1 || t == 3 {
                PointId::Num(r.u64()?)
            } else {
                let b: [u8; 16] = r.bytes(16)?.try_into().map_err(|_| FormatError::corrupt(&mpath, "uuid"))?;
                PointId::Uuid(uuid::Uuid::from_bytes(b))
            };
            if t <= 2 {
                let i = r.u32()?;
                total = total.max(u64::from(i) + 1);
                if let Some(old) = fwd.insert(ext, i) {
                    if old != i {
                        rev.remove(&old);
                    }
                }
                if let Some(other) = rev.insert(i, ext) {
                    if other != ext && fwd.get(&other) == Some(&i) {
                        fwd.remove(&other);
                    }
                }
            } else if let Some(i) = fwd.remove(&ext) {
                rev.remove(&i);
            }
            pos += size;
        }
        let t = Self::finish(TrackerKind::Mutable, fwd.into_iter(), |_| false, versions, total);
        Ok(t)
    }

    fn load_versions_deleted<S: Storage + ?Sized>(storage: &S, dir: &str) -> Result<(Vec<u64>, Flags), Error> {
        let versions =
            read_opt(storage, &join(dir, IMMUTABLE_VERSIONS))?.map(|b| parse_versions(&b)).unwrap_or_default();
        let deleted = read_bit_file(storage, &join(dir, IMMUTABLE_DELETED))?.unwrap_or_else(Flags::empty);
        Ok((versions, deleted))
    }

    fn open_immutable<S: Storage + ?Sized>(storage: &S, dir: &str) -> Result<IdTracker, Error> {
        let mpath = join(dir, IMMUTABLE_MAPPINGS);
        let b = storage.read_all(&mpath)?;
        let mut r = Reader::new(&b, &mpath);
        let count = r.u64()?;
        if count > (r.remaining() / 13) as u64 {
            return Err(FormatError::corrupt(&mpath, format!("{count} entries cannot fit in {} bytes", b.len())).into());
        }
        let mut pairs = Vec::with_capacity(count as usize);
        let mut seen = vec![false; count as usize];
        for n in 0..count {
            let kind = r.u8()?;
            let ext = match kind {
                0 => PointId::Num(r.u64()?),
                1 => {
                    let u: [u8; 16] = r.bytes(16)?.try_into().map_err(|_| FormatError::corrupt(&mpath, "uuid"))?;
                    PointId::Uuid(uuid::Uuid::from_bytes(u))
                }
                k => return Err(FormatError::corrupt(&mpath, format!("entry {n}: unknown id kind {k}")).into()),
            };
            let i = r.u32()?;
            if u64::from(i) >= count {
                return Err(FormatError::corrupt(&mpath, format!("entry {n}: internal id {i} ≥ count {count}")).into());
            }
            if std::mem::replace(&mut seen[i as usize], true) {
                return Err(FormatError::corrupt(&mpath, format!("entry {n}: internal id {i} mapped twice")).into());
            }
            pairs.push((ext, i));
        }
        if !r.is_empty() {
            return Err(FormatError::corrupt(
                &mpath,
                format!("{} trailing bytes after {count} entries", r.remaining()),
            )
            .into());
        }
        let (mut versions, deleted) = Self::load_versions_deleted(storage, dir)?;
        versions.truncate(count as usize);
        Ok(Self::finish(TrackerKind::Immutable, pairs.into_iter(), |i| deleted.get(u64::from(i)), versions, count))
    }

    fn open_disk<S: Storage + ?Sized>(storage: &S, dir: &str) -> Result<IdTracker, Error> {
        // i2e: the full internal → external table
        let ipath = join(dir, DISK_I2E);
        let i2e = storage.read_all(&ipath)?;
        let mut r = Reader::new(&i2e, &ipath);
        if r.u64()? != I2E_MAGIC {
            return Err(FormatError::corrupt(&ipath, "bad magic").into());
        }
        let v = r.u32()?;
        if v != 2 {
            return Err(FormatError::unsupported(&ipath, format!("disk id tracker format version {v}")).into());
        }
        r.u32()?;
        let total = r.u64()?;
        r.u64()?;
        if total > (r.remaining() / 16) as u64 {
            return Err(
                FormatError::corrupt(&ipath, format!("{total} entries cannot fit in {} bytes", i2e.len())).into()
            );
        }
        let upath = join(dir, DISK_IS_UUID);
        let is_uuid = parse_qbmk(&storage.read_all(&upath)?, &upath)?;
        let mut i2e_ids = Vec::with_capacity(total as usize);
        for i in 0..total {
            let raw = u128::from_le_bytes(r.bytes(16)?.try_into().map_err(|_| FormatError::corrupt(&ipath, "u128"))?);
            i2e_ids.push(if is_uuid.get(i) {
                PointId::Uuid(uuid::Uuid::from_u128(raw))
            } else {
                PointId::Num(
                    u64::try_from(raw)
                        .map_err(|_| FormatError::corrupt(&ipath, format!("numeric id of internal {i} exceeds u64")))?,
                )
            });
        }

        // e2i: live entries; each must agree with i2e
        let epath = join(dir, DISK_E2I);
        let e2i = storage.read_all(&epath)?;
        let mut r = Reader::new(&e2i, &epath);
        if r.u64()? != E2I_MAGIC {
            return Err(FormatError::corrupt(&epath, "bad magic").into());
        }
        let v = r.u32()?;
        if v != 2 {
            return Err(FormatError::unsupported(&epath, format!("disk id tracker format version {v}")).into());
        }
        r.u32()?;
        let num_count = r.u64()?;
        let uuid_count = r.u64()?;
        let num_block = u64::from(r.u32()?);
        let uuid_block = u64::from(r.u32()?);
        if num_block == 0 || uuid_block == 0 {
            return Err(FormatError::corrupt(&epath, "zero block size").into());
        }
        let align16 = |x: u64| x.div_ceil(16) * 16;
        let len = e2i.len() as u64;
        let a = 48u64;
        let b = num_count.div_ceil(num_block).checked_mul(8).and_then(|s| s.checked_add(a)).map(align16);
        let c = b.and_then(|b| uuid_count.div_ceil(uuid_block).checked_mul(16).and_then(|s| s.checked_add(b)));
        let d = c.and_then(|c| num_count.checked_mul(12).and_then(|s| s.checked_add(c))).map(align16);
        let end = d.and_then(|d| uuid_count.checked_mul(20).and_then(|s| s.checked_add(d)));
        let (Some(c), Some(d), Some(end)) = (c, d, end) else {
            return Err(FormatError::corrupt(&epath, "section sizes overflow").into());
        };
        if end > len {
            return Err(FormatError::corrupt(&epath, format!("sections need {end} bytes, file has {len}")).into());
        }
        let mut pairs = Vec::with_capacity((num_count + uuid_count) as usize);
        let check = |ext: PointId, i: u32| -> Result<(PointId, u32), Error> {
            match i2e_ids.get(i as usize) {
                Some(e) if *e == ext => Ok((ext, i)),
                _ => Err(FormatError::corrupt(&epath, format!("entry {ext} → {i} disagrees with {DISK_I2E}")).into()),
            }
        };
        let mut r = Reader::new(&e2i[c as usize..], &epath);
        for _ in 0..num_count {
            let k = r.u64()?;
            let i = r.u32()?;
            pairs.push(check(PointId::Num(k), i)?);
        }
        let mut r = Reader::new(&e2i[d as usize..], &epath);
        for _ in 0..uuid_count {
            let k = u128::from_le_bytes(r.bytes(16)?.try_into().map_err(|_| FormatError::corrupt(&epath, "u128"))?);
            let i = r.u32()?;
            pairs.push(check(PointId::Uuid(uuid::Uuid::from_u128(k)), i)?);
        }
        let (mut versions, deleted) = Self::load_versions_deleted(storage, dir)?;
        versions.truncate(usize::try_from(total).unwrap_or(usize::MAX));
        Ok(Self::finish(TrackerKind::Disk, pairs.into_iter(), |i| deleted.get(u64::from(i)), versions, total))
    }

    /// Internal id of a live point.
    pub fn internal_id(&self, id: PointId) -> Option<u32> {
        self.live.get(&id).copied()
    }

    /// External id of a live internal id.
    pub fn external_id(&self, internal: u32) -> Option<PointId> {
        self.external.get(internal as usize).copied().flatten()
    }

    /// Stored version of an internal id (present for deleted rows too; only meaningful for
    /// live ones).
    pub fn version(&self, internal: u32) -> Option<u64> {
        self.versions.get(internal as usize).copied()
    }

    /// Live points in point-id order.
    pub fn iter_live(&self) -> impl Iterator<Item = (PointId, u32)> + '_ {
        self.live.iter().map(|(&e, &i)| (e, i))
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Number of internal ids the segment has allocated (live or not).
    pub fn total_point_count(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::chunked::tests::put;
    use crate::storage::MemoryStorage;

    const U: &str = "12345678-1234-5678-1234-567812345678";

    fn ins(ext: u64, i: u32) -> Vec<u8> {
        let mut v = vec![1];
        v.extend(ext.to_le_bytes());
        v.extend(i.to_le_bytes());
        v
    }

    /// The real log of spec §4.2.
    fn spec_log() -> Vec<u8> {
        let mut log = Vec::new();
        log.extend(ins(4, 0));
        log.push(2);
        log.extend(uuid::Uuid::parse_str(U).unwrap().as_bytes());
        log.extend(1u32.to_le_bytes());
        log.extend(ins(2, 2));
        log.extend(ins(1, 3));
        log.extend(ins(5, 4));
        log.extend(ins(3, 5));
        log.push(3);
        log.extend(3u64.to_le_bytes());
        log
    }

    fn versions(v: &[u64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn mutable_log_replay() {
        let st = MemoryStorage::new();
        let log = spec_log();
        assert_eq!(&log[13..17], &[0x02, 0x12, 0x34, 0x56]); // RFC byte order
        put(&st, "s/mutable_id_tracker.mappings", &log);
        put(&st, "s/mutable_id_tracker.versions", &versions(&[10, 11, 12, 13, 14, 15]));
        let t = IdTracker::open(&st, "s", true).unwrap();
        assert_eq!(t.kind(), TrackerKind::Mutable);
        let u = PointId::Uuid(uuid::Uuid::parse_str(U).unwrap());
        let live: Vec<_> = t.iter_live().collect();
        assert_eq!(
            live,
            vec![(PointId::Num(1), 3), (PointId::Num(2), 2), (PointId::Num(4), 0), (PointId::Num(5), 4), (u, 1)]
        );
        assert_eq!(t.internal_id(PointId::Num(3)), None);
        assert_eq!(t.external_id(5), None);
        assert_eq!(t.external_id(1), Some(u));
        assert_eq!(t.version(1), Some(11));
        assert_eq!(t.total_point_count(), 6);

        // versions file shorter than the mappings: the point without a version is not present;
        // a trailing partial version entry is ignored
        let mut v = versions(&[10, 11, 12, 13]);
        v.extend([1, 2, 3]);
        put(&st, "s/mutable_id_tracker.versions", &v);
        let t = IdTracker::open(&st, "s", true).unwrap();
        assert_eq!(t.internal_id(PointId::Num(5)), None);
        assert_eq!(t.live_count(), 4);

        // torn last record ignored
        let mut torn = log.clone();
        torn.extend(&ins(9, 6)[..7]);
        put(&st, "s/mutable_id_tracker.mappings", &torn);
        put(&st, "s/mutable_id_tracker.versions", &versions(&[1; 7]));
        assert_eq!(IdTracker::open(&st, "s", true).unwrap().live_count(), 5);
        // unknown type byte
        let mut bad = log.clone();
        bad[13] = 7;
        put(&st, "s/mutable_id_tracker.mappings", &bad);
        assert_eq!(IdTracker::open(&st, "s", true).unwrap_err().kind(), ErrorKind::Corrupted);
        // re-insert moves an id; re-use of an internal id drops the old owner
        let mut log = ins(7, 0);
        log.extend(ins(7, 1));
        log.extend(ins(8, 1));
        put(&st, "s/mutable_id_tracker.mappings", &log);
        let t = IdTracker::open(&st, "s", true).unwrap();
        assert_eq!(t.iter_live().collect::<Vec<_>>(), vec![(PointId::Num(8), 1)]);
        // no files at all ⇒ empty
        let t = IdTracker::open(&st, "empty", false).unwrap();
        assert_eq!((t.live_count(), t.total_point_count()), (0, 0));
    }

    fn immutable_bytes(entries: &[(PointId, u32)]) -> Vec<u8> {
        let mut b = (entries.len() as u64).to_le_bytes().to_vec();
        for (e, i) in entries {
            match e {
                PointId::Num(n) => {
                    b.push(0);
                    b.extend(n.to_le_bytes());
                }
                PointId::Uuid(u) => {
                    b.push(1);
                    b.extend(u.as_bytes());
                }
            }
            b.extend(i.to_le_bytes());
        }
        b
    }

    #[test]
    fn immutable_tracker() {
        let st = MemoryStorage::new();
        let u = PointId::Uuid(uuid::Uuid::parse_str(U).unwrap());
        let m = immutable_bytes(&[(PointId::Num(4), 0), (PointId::Num(5), 1), (u, 2), (PointId::Num(9), 3)]);
        assert_eq!(&m[..22], &[4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        put(&st, "s/id_tracker.mappings", &m);
        put(&st, "s/id_tracker.versions", &versions(&[3, 4, 5, 6]));
        put(&st, "s/id_tracker.deleted", &[0b0010, 0, 0, 0, 0, 0, 0, 0]);
        let t = IdTracker::open(&st, "s", false).unwrap();
        assert_eq!(t.kind(), TrackerKind::Immutable);
        assert_eq!(t.iter_live().collect::<Vec<_>>(), vec![(PointId::Num(4), 0), (PointId::Num(9), 3), (u, 2)]);
        assert_eq!(t.total_point_count(), 4);
        assert_eq!(t.version(3), Some(6));
        // two entries claiming the same row
        let dup = immutable_bytes(&[(PointId::Num(4), 0), (PointId::Num(5), 0)]);
        put(&st, "s/id_tracker.mappings", &dup);
        assert_eq!(IdTracker::open(&st, "s", false).unwrap_err().kind(), ErrorKind::Corrupted);
        // truncations: always an error, never a panic
        for cut in 0..m.len() {
            put(&st, "s/id_tracker.mappings", &m[..cut]);
            assert_eq!(IdTracker::open(&st, "s", false).unwrap_err().kind(), ErrorKind::Corrupted, "cut {cut}");
        }
        // bit flips: error or a consistent result
        for i in 0..m.len() {
            for b in 0..8 {
                let mut x = m.clone();
                x[i] ^= 1 << b;
                put(&st, "s/id_tracker.mappings", &x);
                let _ = IdTracker::open(&st, "s", false);
            }
        }
    }

    #[test]
    fn disk_tracker() {
        let st = MemoryStorage::new();
        let u = uuid::Uuid::parse_str(U).unwrap();
        // i2e: 3 internal ids: 0 → 7, 1 → uuid, 2 → 9 (deleted)
        let mut i2e = I2E_MAGIC.to_le_bytes().to_vec();
        i2e.extend(2u32.to_le_bytes());
        i2e.extend([0; 4]);
        i2e.extend(3u64.to_le_bytes());
        i2e.extend([0; 8]);
        i2e.extend(7u128.to_le_bytes());
        i2e.extend(u.as_u128().to_le_bytes());
        i2e.extend(9u128.to_le_bytes());
        assert_eq!(&i2e[48..52], &[0x78, 0x56, 0x34, 0x12]); // reversed byte order
        put(&st, "s/id_tracker.i2e", &i2e);
        let mut qb = b"QBMK".to_vec();
        qb.extend(1u32.to_le_bytes());
        qb.extend(3u64.to_le_bytes());
        qb.extend(0u32.to_le_bytes());
        qb.extend(0u32.to_le_bytes());
        qb.extend(8u64.to_le_bytes());
        qb.extend([0b010, 0, 0, 0, 0, 0, 0, 0]);
        put(&st, "s/id_tracker.is_uuid", &qb);
        let mut e2i = E2I_MAGIC.to_le_bytes().to_vec();
        e2i.extend(2u32.to_le_bytes());
        e2i.extend([0; 4]);
        e2i.extend(1u64.to_le_bytes());
        e2i.extend(1u64.to_le_bytes());
        e2i.extend(1365u32.to_le_bytes());
        e2i.extend(819u32.to_le_bytes());
        e2i.extend([0; 8]);
        e2i.extend(7u64.to_le_bytes()); // A at 48
        e2i.extend([0; 8]); // pad to 64
        e2i.extend(u.as_u128().to_le_bytes()); // B at 64
        e2i.extend(7u64.to_le_bytes()); // C at 80
        e2i.extend(0u32.to_le_bytes());
        e2i.extend([0; 4]); // pad to 96
        e2i.extend(u.as_u128().to_le_bytes()); // D at 96
        e2i.extend(1u32.to_le_bytes());
        put(&st, "s/id_tracker.e2i", &e2i);
        put(&st, "s/id_tracker.versions", &versions(&[5, 6, 7]));
        let t = IdTracker::open(&st, "s", false).unwrap();
        assert_eq!(t.kind(), TrackerKind::Disk);
        assert_eq!(t.iter_live().collect::<Vec<_>>(), vec![(PointId::Num(7), 0), (PointId::Uuid(u), 1)]);
        assert_eq!(t.total_point_count(), 3);
        for cut in [0, 10, 40, e2i.len() - 1] {
            put(&st, "s/id_tracker.e2i", &e2i[..cut]);
            assert_eq!(IdTracker::open(&st, "s", false).unwrap_err().kind(), ErrorKind::Corrupted);
        }
        // e2i disagreeing with i2e
        let mut bad = e2i.clone();
        bad[80] = 8;
        put(&st, "s/id_tracker.e2i", &bad);
        assert_eq!(IdTracker::open(&st, "s", false).unwrap_err().kind(), ErrorKind::Corrupted);
    }
}
