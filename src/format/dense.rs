//! Dense vector storages (spec §5.1–5.4), one per vector name in `vector_storage[-<name>]/`.
//!
//! Appendable (`ChunkedMmap`, `InRamChunkedMmap`):
//!
//! | Path | Content |
//! |---|---|
//! | `vectors/` | chunked directory (§1.12, see [`super::chunked`]), record = `dim` elements |
//! | `deleted/` | dynamic flags (§1.10, see [`super::flags`]), bit *k* = row *k* has no vector |
//!
//! Immutable (`Mmap`, `InRamMmap`):
//!
//! | File | Offset | Width | Content |
//! |---|---|---|---|
//! | `matrix.dat` | 0 | 4 | ASCII `data` |
//! | | 4 | N × dim × elem | rows, row-major, no padding (f32 rows are unaligned) |
//! | `deleted.dat` | 0 | 8 | ASCII `drop` + 4 zero bytes |
//! | | 8 | … | bit vector, bit *k* = row *k* deleted; bits past the file ⇒ not deleted |
//!
//! Elements (§5.2): `float32` f32 LE, `float16` IEEE binary16 LE, `uint8` one byte. Row *k*
//! belongs to internal id *k*. `N = (len(matrix.dat) - 4) / (dim × elem)`.
//!
//! A vector listed in `segment.json` whose directory is missing (server 1.19 after
//! `create_vector_name`) and the `Empty` storage type read as an empty storage (§0.3).
//! `GraphInline` (edge, `inline_storage`) vectors are read from the graph's
//! `links_comp_vec.bin` records into RAM; legacy `Memory` and the `turbo*` datatypes are refused
//! as unsupported.
//!
//! Memory placement: `Pinned` and `Cached` read all rows into RAM at open (`Cached` has no
//! page cache of its own yet, so it behaves like `Pinned`); `Cold` reads each row on access.

use bytes::Bytes;

use crate::error::{Error, FormatError};
use crate::format::chunked::ChunkedVectors;
use crate::format::flags::{read_drop_file, read_flags_dir, Flags};
use crate::format::names;
use crate::format::segment_meta::{VectorDataConfig, VectorStorageType};
use crate::storage::{join, FileSlice, Memory, Storage};
use crate::types::Datatype;

/// Rows are handed out as the crate-wide [`RowRef`].
pub use crate::types::RowRef;

/// Check the storage type and datatype of a vector config against what this crate reads.
pub(crate) fn check_supported(dir: &str, cfg: &VectorDataConfig) -> Result<usize, Error> {
    if cfg.storage_type == VectorStorageType::Memory {
        return Err(FormatError::unsupported(dir, "legacy storage type Memory (RocksDB) is not supported").into());
    }
    let dt = cfg.datatype();
    dt.size().ok_or_else(|| {
        FormatError::unsupported(dir, format!("vector datatype {dt:?} (TurboQuant) is not supported")).into()
    })
}

#[derive(Debug, Clone)]
enum Rows {
    Empty,
    Chunked(ChunkedVectors),
    Matrix { data: MatrixData, rows: u64 },
}

#[derive(Debug, Clone)]
enum MatrixData {
    Ram(Bytes),
    Lazy(FileSlice),
}

/// A dense vector storage of one segment.
#[derive(Debug, Clone)]
pub struct DenseVectorStorage {
    dim: u64,
    datatype: Datatype,
    row_size: usize,
    rows: Rows,
    deleted: Flags,
}

/// Alignment of the first row of a matrix held in RAM.
const CACHE_LINE: usize = 64;

impl DenseVectorStorage {
    /// Open the storage of vector `name` of the segment at `segment_dir`.
    pub fn open<S: Storage + ?Sized>(
        storage: &S,
        segment_dir: &str,
        name: &str,
        cfg: &VectorDataConfig,
        memory: Memory,
    ) -> Result<DenseVectorStorage, Error> {
        let dir = join(segment_dir, &names::vector_storage_dir(name));
        if cfg.multivector_config.is_some() {
            return Err(Error::Internal(format!("{dir}: multivector storage must be opened with MultiVectorStorage")));
        }
        let elem = check_supported(&dir, cfg)?;
        let row_size = cfg
            .size
            .checked_mul(elem as u64)
            .and_then(|r| usize::try_from(r).ok())
            .filter(|&r| r > 0)
            .ok_or_else(|| FormatError::corrupt(&dir, format!("invalid vector size {}", cfg.size)))?;
        let empty = DenseVectorStorage {
            dim: cfg.size,
            datatype: cfg.datatype(),
            row_size,
            rows: Rows::Empty,
            deleted: Flags::empty(),
        };
        if cfg.storage_type == VectorStorageType::GraphInline {
            // The original vectors live only in the graph's `links_comp_vec.bin` records.
            let index_dir = join(segment_dir, &names::vector_index_dir(name));
            let graph = crate::format::hnsw::HnswGraph::open(storage, &index_dir)?
                .ok_or_else(|| FormatError::corrupt(&index_dir, "GraphInline vectors without an HNSW graph"))?;
            let base = match graph.inline_layouts() {
                Some((base, _)) if base.size == row_size => base,
                Some((base, _)) => {
                    return Err(FormatError::corrupt(
                        &index_dir,
                        format!("inlined vectors of {} bytes, the config needs {row_size}", base.size),
                    )
                    .into())
                }
                None => {
                    return Err(FormatError::corrupt(
                        &index_dir,
                        "GraphInline storage but the graph inlines no vectors",
                    )
                    .into())
                }
            };
            let rows = graph.point_count;
            let mut data = Vec::with_capacity(rows.saturating_mul(base.size).min(1 << 30));
            for p in 0..rows as u32 {
                let v = graph
                    .base_vector(p)
                    .ok_or_else(|| FormatError::corrupt(&index_dir, format!("point {p}: no inlined vector")))?;
                data.extend_from_slice(v);
            }
            let deleted = if storage.is_dir(&join(&dir, "deleted"))? {
                read_flags_dir(storage, &join(&dir, "deleted"))?
            } else {
                Flags::empty()
            };
            let rows = Rows::Matrix { data: MatrixData::Ram(Bytes::from(data)), rows: rows as u64 };
            return Ok(DenseVectorStorage { rows, deleted, ..empty });
        }
        if cfg.storage_type == VectorStorageType::Empty || !storage.is_dir(&dir)? {
            return Ok(empty);
        }
        if cfg.storage_type.is_chunked() {
            let vectors = ChunkedVectors::open(storage, &join(&dir, "vectors"), elem, Some(cfg.size), memory)?;
            let deleted = read_flags_dir(storage, &join(&dir, "deleted"))?;
            Ok(DenseVectorStorage { rows: Rows::Chunked(vectors), deleted, ..empty })
        } else {
            let path = join(&dir, "matrix.dat");
            let slice = storage.open_slice(&path)?;
            if slice.len() < 4 {
                return Err(FormatError::corrupt(
                    &path,
                    format!("{} bytes, shorter than the `data` header", slice.len()),
                )
                .into());
            }
            let magic = slice.read_range(0, 4)?;
            if &magic[..] != b"data" {
                return Err(FormatError::corrupt(&path, "does not start with `data`").into());
            }
            let body = slice.slice(4, slice.len() - 4);
            let rows = body.len() / row_size as u64;
            // Held rows start on a cache line: after the 4-byte header a 1536-byte row of
            // 384 f32 would touch 25 lines instead of 24 (random rows are read whole per score).
            let data = match memory {
                Memory::Cold => MatrixData::Lazy(body),
                Memory::Cached | Memory::Pinned => {
                    MatrixData::Ram(body.read_range_aligned(0, rows * row_size as u64, CACHE_LINE)?)
                }
            };
            let deleted = read_drop_file(storage, &join(&dir, "deleted.dat"))?;
            Ok(DenseVectorStorage { rows: Rows::Matrix { data, rows }, deleted, ..empty })
        }
    }

    pub fn dim(&self) -> u64 {
        self.dim
    }
    pub fn datatype(&self) -> Datatype {
        self.datatype
    }
    /// Number of stored rows (some may be deleted).
    pub fn len(&self) -> u64 {
        match &self.rows {
            Rows::Empty => 0,
            Rows::Chunked(c) => c.len(),
            Rows::Matrix { rows, .. } => *rows,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if row `i` holds no vector (deleted flag, or beyond the stored rows).
    pub fn is_deleted(&self, i: u32) -> bool {
        u64::from(i) >= self.len() || self.deleted.get(u64::from(i))
    }

    fn row_bytes(&self, i: u32) -> Result<Option<Bytes>, Error> {
        if self.is_deleted(i) {
            return Ok(None);
        }
        let i = u64::from(i);
        match &self.rows {
            Rows::Empty => Ok(None),
            Rows::Chunked(c) => c.record(i),
            Rows::Matrix { data, .. } => {
                let start = i * self.row_size as u64;
                match data {
                    MatrixData::Ram(b) => {
                        let s = start as usize;
                        Ok(b.get(s..s + self.row_size).map(|_| b.slice(s..s + self.row_size)))
                    }
                    MatrixData::Lazy(f) => Ok(Some(f.read_range(start, self.row_size as u64)?)),
                }
            }
        }
    }

    /// Call `f` with the raw bytes of row `i`; `None` if the row has no vector.
    pub fn with_row<R>(&self, i: u32, f: impl FnOnce(RowRef<'_>) -> R) -> Result<Option<R>, Error> {
        if self.is_deleted(i) {
            return Ok(None);
        }
        // Pinned data is borrowed in place; lazy data is read into a buffer first.
        match &self.rows {
            Rows::Matrix { data: MatrixData::Ram(b), .. } => {
                let s = i as usize * self.row_size;
                Ok(b.get(s..s + self.row_size).map(|row| f(RowRef::new(self.datatype, row))))
            }
            Rows::Chunked(c) => c.with_record(u64::from(i), |row| f(RowRef::new(self.datatype, row))),
            _ => Ok(self.row_bytes(i)?.map(|b| f(RowRef::new(self.datatype, &b)))),
        }
    }

    /// Whether the rows are held in RAM as one matrix, so [`ram_row`](Self::ram_row) answers
    /// for every row.
    #[inline]
    pub fn holds_rows_in_ram(&self) -> bool {
        matches!(&self.rows, Rows::Matrix { data: MatrixData::Ram(_), .. })
    }

    /// Row `i` borrowed in place when the rows are held in RAM as one matrix (optimized
    /// segments); `None` if it has no vector or lives elsewhere (use [`with_row`](Self::with_row)).
    #[inline]
    pub fn ram_row(&self, i: u32) -> Option<RowRef<'_>> {
        if self.is_deleted(i) {
            return None;
        }
        match &self.rows {
            Rows::Matrix { data: MatrixData::Ram(b), .. } => {
                let s = i as usize * self.row_size;
                b.get(s..s + self.row_size).map(|row| RowRef::new(self.datatype, row))
            }
            _ => None,
        }
    }

    /// The vector of row `i` as `f32`; `None` if deleted or out of range.
    pub fn get(&self, i: u32) -> Result<Option<Vec<f32>>, Error> {
        self.with_row(i, |r| r.to_f32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::chunked::tests::{put, write_chunked};
    use crate::storage::MemoryStorage;

    fn cfg(json: &str) -> VectorDataConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn chunked_f32_with_deleted() {
        let st = MemoryStorage::new();
        let c = cfg(
            r#"{"size":2,"distance":"Dot","storage_type":"InRamChunkedMmap","index":{"type":"plain","options":{}},"quantization_config":null}"#,
        );
        let recs: Vec<Vec<u8>> =
            (0..3).map(|i| [i as f32, -0.5f32].iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
        write_chunked(&st, "seg/vector_storage-v/vectors", 2, 4, 2, &recs);
        let mut status = 3u64.to_le_bytes().to_vec();
        status.extend_from_slice(&0u64.to_le_bytes());
        put(&st, "seg/vector_storage-v/deleted/status.dat", &status);
        put(&st, "seg/vector_storage-v/deleted/flags_a.dat", &[0b010]);
        for mem in [Memory::Pinned, Memory::Cold, Memory::Cached] {
            let s = DenseVectorStorage::open(&st, "seg", "v", &c, mem).unwrap();
            assert_eq!(s.len(), 3);
            assert_eq!(s.get(0).unwrap(), Some(vec![0.0, -0.5]));
            assert_eq!(s.get(1).unwrap(), None);
            assert!(s.is_deleted(1));
            assert_eq!(s.get(2).unwrap(), Some(vec![2.0, -0.5]));
            assert_eq!(s.get(3).unwrap(), None);
            assert_eq!(s.with_row(2, |r| matches!(r, RowRef::F32(b) if b.len() == 8)).unwrap(), Some(true));
        }
        // a missing directory is an empty storage
        let s = DenseVectorStorage::open(&st, "seg", "other", &c, Memory::Pinned).unwrap();
        assert!(s.is_empty() && s.get(0).unwrap().is_none());
    }

    #[test]
    fn matrix_f16_u8() {
        let st = MemoryStorage::new();
        let c16 = cfg(
            r#"{"size":3,"distance":"Euclid","storage_type":"InRamMmap","index":{"type":"plain","options":{}},"quantization_config":null,"datatype":"float16"}"#,
        );
        let mut m = b"data".to_vec();
        for x in [1.5f32, -2.0, 0.25, 3.0, 4.0, 5.0] {
            m.extend_from_slice(&half::f16::from_f32(x).to_le_bytes());
        }
        m.push(7); // trailing partial row is ignored
        put(&st, "s/vector_storage/matrix.dat", &m);
        put(&st, "s/vector_storage/deleted.dat", b"drop\0\0\0\0\x02");
        for mem in [Memory::Pinned, Memory::Cold] {
            let s = DenseVectorStorage::open(&st, "s", "", &c16, mem).unwrap();
            assert_eq!(s.len(), 2);
            assert_eq!(s.get(0).unwrap(), Some(vec![1.5, -2.0, 0.25]));
            assert_eq!(s.get(1).unwrap(), None);
        }
        let cu8 = cfg(
            r#"{"size":3,"distance":"Dot","storage_type":"Mmap","index":{"type":"plain","options":{}},"quantization_config":null,"datatype":"uint8"}"#,
        );
        put(&st, "u/vector_storage-b/matrix.dat", b"data\x01\x02\xff");
        put(&st, "u/vector_storage-b/deleted.dat", b"drop\0\0\0\0");
        let s = DenseVectorStorage::open(&st, "u", "b", &cu8, Memory::Cold).unwrap();
        assert_eq!(s.get(0).unwrap(), Some(vec![1.0, 2.0, 255.0]));
        // corruption
        put(&st, "u/vector_storage-b/matrix.dat", b"dat");
        assert_eq!(
            DenseVectorStorage::open(&st, "u", "b", &cu8, Memory::Cold).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        put(&st, "u/vector_storage-b/matrix.dat", b"DATA\x01\x02\x03");
        assert_eq!(
            DenseVectorStorage::open(&st, "u", "b", &cu8, Memory::Cold).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        put(&st, "u/vector_storage-b/matrix.dat", b"data\x01\x02\x03");
        st.remove_file("u/vector_storage-b/deleted.dat").unwrap();
        assert_eq!(
            DenseVectorStorage::open(&st, "u", "b", &cu8, Memory::Cold).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn unsupported_kinds() {
        let st = MemoryStorage::new();
        // GraphInline reads the graph's inlined vectors: without a graph it is damage.
        let gi = cfg(
            r#"{"size":3,"distance":"Dot","storage_type":"GraphInline","index":{"type":"plain","options":{}},"quantization_config":null}"#,
        );
        assert_eq!(
            DenseVectorStorage::open(&st, "s", "v", &gi, Memory::Pinned).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        for j in [
            r#"{"size":3,"distance":"Dot","storage_type":"Memory","index":{"type":"plain","options":{}},"quantization_config":null}"#,
            r#"{"size":3,"distance":"Dot","storage_type":"Mmap","index":{"type":"plain","options":{}},"quantization_config":null,"datatype":"turbo4"}"#,
        ] {
            let e = DenseVectorStorage::open(&st, "s", "v", &cfg(j), Memory::Pinned).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{j}");
        }
        let c = cfg(
            r#"{"size":3,"distance":"Dot","storage_type":"Empty","index":{"type":"plain","options":{}},"quantization_config":null}"#,
        );
        assert!(DenseVectorStorage::open(&st, "s", "v", &c, Memory::Pinned).unwrap().is_empty());
    }
}
