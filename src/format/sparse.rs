//! Sparse vector storage (spec §5.6, §1.9, §1.3).
//!
//! | Path | Content |
//! |---|---|
//! | `vector_storage-<name>/store/` | Blobstore (§7, see [`super::gridstore`]), `"compression":"None"`, key = internal id |
//! | `vector_storage-<name>/deleted/` | dynamic flags (§1.10); bit set = the point has no sparse vector |
//!
//! A value is bincode `StoredSparseVector { indices: Vec<u8>, values: Vec<f32> }`:
//!
//! | Offset | Width | Content |
//! |---|---|---|
//! | 0 | u64 LE | `n1`, byte length of the packed indices |
//! | 8 | n1 | delta-packed sorted indices (below) |
//! | 8+n1 | u64 LE | `n2`, number of weights |
//! | 16+n1 | 4·n2 | f32 LE weights, in ascending-index order |
//!
//! Delta packing (§1.9), an LSB-first bit stream: `[6 bits: B-8]` then values of `B` bits each
//! while at least `B` unread bits remain; values are the deltas of the sorted indices (first
//! delta from 0). An empty sequence is zero bytes.
//!
//! A missing directory or storage type `empty` reads as "no sparse vectors".

use crate::error::{Error, FormatError};
use crate::format::flags::{read_flags_dir, Flags};
use crate::format::gridstore::Gridstore;
use crate::format::le::Reader;
use crate::format::names;
use crate::format::segment_meta::{SparseVectorDataConfig, SparseVectorStorageType};
use crate::storage::{join, Storage};
use crate::types::SparseVector;

/// Decode a delta-packed sorted `u64` sequence.
pub fn delta_unpack(data: &[u8]) -> Result<Vec<u64>, String> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let total_bits = data.len() as u64 * 8;
    let read = |pos: u64, n: u32| -> u64 {
        // n ≤ 64 bits starting at bit `pos`, LSB first
        let mut v: u64 = 0;
        for k in 0..u64::from(n) {
            let b = pos + k;
            if (data[(b / 8) as usize] >> (b % 8)) & 1 == 1 {
                v |= 1 << k;
            }
        }
        v
    };
    if total_bits < 6 {
        return Err("delta-packed sequence shorter than its header".into());
    }
    let bits = read(0, 6) as u32 + 8;
    if bits > 64 {
        return Err(format!("delta-packed sequence claims {bits} bits per value"));
    }
    let mut pos = 6u64;
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    while total_bits - pos >= u64::from(bits) {
        let d = read(pos, bits);
        acc = acc.checked_add(d).ok_or("delta-packed sequence overflows u64")?;
        out.push(acc);
        pos += u64::from(bits);
    }
    Ok(out)
}

/// Decode one bincode `StoredSparseVector`.
pub fn decode_stored_sparse(blob: &[u8], file: &str) -> Result<SparseVector, FormatError> {
    let mut r = Reader::new(blob, file);
    let n1 = r.usize64()?;
    let packed = r.bytes(n1)?;
    let n2 = r.usize64()?;
    if n2 > r.remaining() / 4 {
        return Err(FormatError::corrupt(
            file,
            format!("sparse vector claims {n2} weights, {} bytes left", r.remaining()),
        ));
    }
    let mut values = Vec::with_capacity(n2);
    for _ in 0..n2 {
        values.push(r.f32()?);
    }
    if !r.is_empty() {
        return Err(FormatError::corrupt(file, format!("{} trailing bytes after a sparse vector", r.remaining())));
    }
    let idx = delta_unpack(packed).map_err(|m| FormatError::corrupt(file, m))?;
    if idx.len() != values.len() {
        return Err(FormatError::corrupt(
            file,
            format!("sparse vector has {} indices and {} weights", idx.len(), values.len()),
        ));
    }
    let mut indices = Vec::with_capacity(idx.len());
    for i in idx {
        indices
            .push(u32::try_from(i).map_err(|_| FormatError::corrupt(file, format!("sparse index {i} exceeds u32")))?);
    }
    Ok(SparseVector { indices, values })
}

/// A sparse vector storage of one segment.
#[derive(Debug, Clone)]
pub struct SparseVectorStorage {
    store: Option<Gridstore>,
    deleted: Flags,
}

impl SparseVectorStorage {
    pub fn open<S: Storage + ?Sized>(
        storage: &S,
        segment_dir: &str,
        name: &str,
        cfg: &SparseVectorDataConfig,
    ) -> Result<SparseVectorStorage, Error> {
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        if cfg.storage_type == SparseVectorStorageType::Empty || !storage.is_dir(&dir)? {
            return Ok(SparseVectorStorage { store: None, deleted: Flags::empty() });
        }
        let store = Gridstore::open(storage, &join(&dir, "store"))?;
        let deleted = read_flags_dir(storage, &join(&dir, "deleted"))?;
        Ok(SparseVectorStorage { store: Some(store), deleted })
    }

    /// One past the highest internal id that can hold a vector.
    pub fn len(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.key_bound())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_deleted(&self, i: u32) -> bool {
        self.deleted.get(u64::from(i)) || self.store.as_ref().is_none_or(|s| s.pointer(i).is_none())
    }

    /// The sparse vector of internal id `i`; `None` if it has none.
    pub fn get(&self, i: u32) -> Result<Option<SparseVector>, Error> {
        let Some(store) = &self.store else { return Ok(None) };
        if self.deleted.get(u64::from(i)) {
            return Ok(None);
        }
        let Some(blob) = store.get(i)? else { return Ok(None) };
        let file = join(store.dir(), &format!("key {i}"));
        Ok(Some(decode_stored_sparse(&blob, &file)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::gridstore::tests::write_grid;
    use crate::storage::MemoryStorage;

    const REAL: [u8; 32] = [
        0x04, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xc0, 0x01, 0x15, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x67, 0xa8, 0x22, 0x3f, 0x90,
        0xe6, 0x94, 0x3e, 0x9f, 0xcc, 0x4a, 0x3f,
    ];

    #[test]
    fn real_value_from_the_spec() {
        let v = decode_stored_sparse(&REAL, "x").unwrap();
        assert_eq!(v.indices, vec![2, 9, 93]);
        assert!((v.values[0] - 0.6354).abs() < 1e-4 && (v.values[2] - 0.7922).abs() < 1e-4);
    }

    #[test]
    fn delta_unpack_wide_values() {
        assert_eq!(delta_unpack(&[]).unwrap(), Vec::<u64>::new());
        // B = 10: header value 2; values 1000, 5
        let mut bits: Vec<bool> = Vec::new();
        let mut push = |v: u64, n: u32| (0..n).for_each(|k| bits.push((v >> k) & 1 == 1));
        push(2, 6);
        push(1000, 10);
        push(5, 10);
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            if *b {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        assert_eq!(delta_unpack(&bytes).unwrap(), vec![1000, 1005]);
        assert!(delta_unpack(&[0xff]).is_err()); // 63+8 bits per value
    }

    #[test]
    fn truncations_and_flips_never_panic() {
        for cut in 0..REAL.len() {
            assert!(decode_stored_sparse(&REAL[..cut], "x").is_err(), "cut {cut}");
        }
        for i in 0..REAL.len() {
            for b in 0..8 {
                let mut m = REAL;
                m[i] ^= 1 << b;
                let _ = decode_stored_sparse(&m, "x");
            }
        }
        let mut m = REAL.to_vec();
        m[12] = 2; // 2 weights for 3 indices
        m.truncate(28);
        assert!(decode_stored_sparse(&m, "x").is_err());
    }

    #[test]
    fn storage() {
        let st = MemoryStorage::new();
        let cfg: SparseVectorDataConfig = serde_json::from_str(
            r#"{"index":{"full_scan_threshold":null,"index_type":"MutableRam"},"storage_type":"mmap"}"#,
        )
        .unwrap();
        write_grid(
            &st,
            "s/vector_storage-sp/store",
            r#"{"mode":"mutable","page_size_bytes":1024,"block_size_bytes":16,"region_size_blocks":8,"compression":"None"}"#,
            &[Some(REAL.to_vec()), None, Some(REAL.to_vec())],
        );
        let mut status = 3u64.to_le_bytes().to_vec();
        status.extend(0u64.to_le_bytes());
        crate::format::chunked::tests::put(&st, "s/vector_storage-sp/deleted/status.dat", &status);
        crate::format::chunked::tests::put(&st, "s/vector_storage-sp/deleted/flags_a.dat", &[0b100]);
        let s = SparseVectorStorage::open(&st, "s", "sp", &cfg).unwrap();
        assert_eq!(s.get(0).unwrap().unwrap().indices, vec![2, 9, 93]);
        assert_eq!(s.get(1).unwrap(), None);
        assert_eq!(s.get(2).unwrap(), None); // flagged deleted
        assert!(s.is_deleted(1) && s.is_deleted(2) && !s.is_deleted(0));
        let s = SparseVectorStorage::open(&st, "s", "nope", &cfg).unwrap();
        assert_eq!(s.get(0).unwrap(), None);
        write_grid(
            &st,
            "s/vector_storage-sp/store",
            r#"{"page_size_bytes":1024,"block_size_bytes":16,"region_size_blocks":8,"compression":"None"}"#,
            &[Some(vec![1, 2, 3])],
        );
        let s = SparseVectorStorage::open(&st, "s", "sp", &cfg).unwrap();
        assert_eq!(s.get(0).unwrap_err().kind(), ErrorKind::Corrupted);
    }
}
