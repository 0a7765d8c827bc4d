//! Multivector storage (spec §5.5): always the chunked layout, whatever `storage_type` says.
//!
//! | Path | Content |
//! |---|---|
//! | `vectors/` | chunked dir (§1.12), record = one inner vector of `dim` elements |
//! | `offsets/` | chunked dir with `dim = 1` and 12-byte records, one per point |
//! | `deleted/` | dynamic flags (§1.10), bit *k* = point *k* has no multivector |
//!
//! Offset record (LE): `offset: u32` (first inner vector), `count: u32`, `capacity: u32`
//! (reserved slots, ≥ `count`). Point *k* = inner vectors `[offset, offset + count)`.
//!
//! Missing directory and the `Empty` storage type read as an empty storage; `GraphInline`,
//! `Memory` and `turbo*` are unsupported. Memory placement as for [`super::dense`].

use crate::error::{Error, FormatError};
use crate::format::chunked::ChunkedVectors;
use crate::format::dense::{check_supported, RowRef};
use crate::format::flags::{read_flags_dir, Flags};
use crate::format::names;
use crate::format::segment_meta::{VectorDataConfig, VectorStorageType};
use crate::storage::{join, Memory, Storage};
use crate::types::Datatype;

const OFFSET_RECORD: usize = 12;

#[derive(Debug, Clone)]
struct Parts {
    vectors: ChunkedVectors,
    offsets: ChunkedVectors,
}

/// A multivector storage of one segment.
#[derive(Debug, Clone)]
pub struct MultiVectorStorage {
    dir: String,
    dim: u64,
    datatype: Datatype,
    parts: Option<Parts>,
    deleted: Flags,
}

impl MultiVectorStorage {
    pub fn open<S: Storage + ?Sized>(
        storage: &S,
        segment_dir: &str,
        name: &str,
        cfg: &VectorDataConfig,
        memory: Memory,
    ) -> Result<MultiVectorStorage, Error> {
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        if cfg.multivector_config.is_none() {
            return Err(Error::Internal(format!("{dir}: not a multivector config")));
        }
        let elem = check_supported(&dir, cfg)?;
        if cfg.size == 0 {
            return Err(FormatError::corrupt(&dir, "vector size 0").into());
        }
        let mut s = MultiVectorStorage {
            dir: dir.clone(),
            dim: cfg.size,
            datatype: cfg.datatype(),
            parts: None,
            deleted: Flags::empty(),
        };
        if cfg.storage_type == VectorStorageType::Empty || !storage.is_dir(&dir)? {
            return Ok(s);
        }
        let vectors = ChunkedVectors::open(storage, &join(&dir, "vectors"), elem, Some(cfg.size), memory)?;
        let offsets = ChunkedVectors::open(storage, &join(&dir, "offsets"), OFFSET_RECORD, Some(1), memory)?;
        s.deleted = read_flags_dir(storage, &join(&dir, "deleted"))?;
        s.parts = Some(Parts { vectors, offsets });
        Ok(s)
    }

    pub fn dim(&self) -> u64 {
        self.dim
    }
    pub fn datatype(&self) -> Datatype {
        self.datatype
    }
    /// Number of points with an offsets record.
    pub fn len(&self) -> u64 {
        self.parts.as_ref().map_or(0, |p| p.offsets.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_deleted(&self, i: u32) -> bool {
        u64::from(i) >= self.len() || self.deleted.get(u64::from(i))
    }

    /// `(offset, count)` of point `i`'s inner vectors, validated against `vectors/`.
    fn span(&self, p: &Parts, i: u32) -> Result<Option<(u64, u64)>, Error> {
        let Some(rec) = p.offsets.record(u64::from(i))? else { return Ok(None) };
        let offset = u64::from(u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]));
        let count = u64::from(u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]));
        if offset + count > p.vectors.len() {
            return Err(FormatError::corrupt(
                join(p.offsets.dir(), "chunk"),
                format!("point {i}: inner vectors {offset}..{} pass the {} stored", offset + count, p.vectors.len()),
            )
            .into());
        }
        Ok(Some((offset, count)))
    }

    /// The number of inner vectors of point `i`; `None` if deleted or out of range.
    pub fn inner_count(&self, i: u32) -> Result<Option<u64>, Error> {
        let Some(p) = &self.parts else { return Ok(None) };
        if self.is_deleted(i) {
            return Ok(None);
        }
        Ok(self.span(p, i)?.map(|(_, count)| count))
    }

    /// Call `f` for each inner vector of point `i`; `Ok(false)` if the point has none.
    pub fn for_each_inner(&self, i: u32, mut f: impl FnMut(RowRef<'_>)) -> Result<bool, Error> {
        let Some(p) = &self.parts else { return Ok(false) };
        if self.is_deleted(i) {
            return Ok(false);
        }
        let Some((offset, count)) = self.span(p, i)? else { return Ok(false) };
        for k in offset..offset + count {
            let rec = p
                .vectors
                .record(k)?
                .ok_or_else(|| FormatError::corrupt(&self.dir, format!("inner vector {k} missing")))?;
            f(RowRef::new(self.datatype, &rec));
        }
        Ok(true)
    }

    /// The multivector of point `i` as `f32` rows; `None` if deleted or out of range.
    pub fn get(&self, i: u32) -> Result<Option<Vec<Vec<f32>>>, Error> {
        let mut out = Vec::new();
        let present = self.for_each_inner(i, |r| out.push(r.to_f32()))?;
        Ok(present.then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::chunked::tests::write_chunked;
    use crate::storage::MemoryStorage;

    fn off(o: u32, c: u32) -> Vec<u8> {
        [o, c, c].iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_offsets_and_inner_vectors() {
        let st = MemoryStorage::new();
        let cfg: VectorDataConfig = serde_json::from_str(
            r#"{"size":2,"distance":"Cosine","storage_type":"InRamMmap","index":{"type":"plain","options":{}},"quantization_config":null,"multivector_config":{"comparator":"max_sim"}}"#,
        )
        .unwrap();
        let inner: Vec<Vec<u8>> =
            (0..5).map(|i| [i as f32, 1.0f32].iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
        write_chunked(&st, "s/vector_storage-m/vectors", 2, 4, 4, &inner);
        write_chunked(&st, "s/vector_storage-m/offsets", 1, 12, 100, &[off(0, 2), off(2, 3), off(5, 0)]);
        for mem in [Memory::Pinned, Memory::Cold] {
            let m = MultiVectorStorage::open(&st, "s", "m", &cfg, mem).unwrap();
            assert_eq!(m.len(), 3);
            assert_eq!(m.get(0).unwrap(), Some(vec![vec![0.0, 1.0], vec![1.0, 1.0]]));
            assert_eq!(m.get(1).unwrap(), Some(vec![vec![2.0, 1.0], vec![3.0, 1.0], vec![4.0, 1.0]]));
            assert_eq!(m.get(2).unwrap(), Some(vec![]));
            assert_eq!(m.get(3).unwrap(), None);
        }
        // an offset pointing past the inner vectors is corruption
        write_chunked(&st, "s/vector_storage-m/offsets", 1, 12, 100, &[off(4, 2)]);
        let m = MultiVectorStorage::open(&st, "s", "m", &cfg, Memory::Pinned).unwrap();
        assert_eq!(m.get(0).unwrap_err().kind(), ErrorKind::Corrupted);
        // missing dir ⇒ empty
        let m = MultiVectorStorage::open(&st, "s", "zz", &cfg, Memory::Pinned).unwrap();
        assert_eq!(m.get(0).unwrap(), None);
    }
}
