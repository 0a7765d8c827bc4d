//! Chunked vectors directory (spec §1.12): fixed-size records split over `chunk_<n>.mmap` files.
//!
//! | File | Content |
//! |---|---|
//! | `config.json` | `{"chunk_size_bytes":B,"chunk_size_vectors":V,"dim":D}` (+ `"populate"` from the server, ignored) |
//! | `status.dat` | offset 0, u64 LE: `len`, number of records stored (missing ⇒ 0) |
//! | `chunk_<n>.mmap` | `n` = 0, 1, … decimal, contiguous. Record `k` is in chunk `k / V` at byte `(k % V) * D * elem_size` |
//!
//! Only records `< len` are valid; a storage that never held a record has no chunk file. The
//! last chunk may be shorter than `B` (batch writers), but must cover its valid records; this is
//! checked at open. Records never straddle chunks.

use bytes::Bytes;
use serde::Deserialize;

use crate::error::{Error, FormatError};
use crate::format::le::Reader;
use crate::format::segment_meta::parse_json;
use crate::storage::{join, EntryKind, FileSlice, Memory, Storage, StorageErrorKind};

pub const CONFIG_FILE: &str = "config.json";
pub const STATUS_FILE: &str = "status.dat";

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ChunkedConfig {
    pub chunk_size_bytes: u64,
    pub chunk_size_vectors: u64,
    pub dim: u64,
}

#[derive(Debug, Clone)]
enum Chunk {
    Ram(Bytes),
    Lazy(FileSlice),
}

/// An opened chunked directory.
#[derive(Debug, Clone)]
pub struct ChunkedVectors {
    dir: String,
    config: ChunkedConfig,
    record_size: usize,
    len: u64,
    chunks: Vec<Chunk>,
}

impl ChunkedVectors {
    /// Open `dir` whose records are `dim` elements of `elem_size` bytes. `expected_dim` (when
    /// given) must equal the `dim` in `config.json`. `Memory::Pinned` and `Memory::Cached` read
    /// the valid part of every chunk at open; `Memory::Cold` reads each record on access.
    pub fn open<S: Storage + ?Sized>(
        storage: &S,
        dir: &str,
        elem_size: usize,
        expected_dim: Option<u64>,
        memory: Memory,
    ) -> Result<ChunkedVectors, Error> {
        let cfg_path = join(dir, CONFIG_FILE);
        let config: ChunkedConfig = parse_json(&storage.read_all(&cfg_path)?, &cfg_path)?;
        if config.dim == 0 || config.chunk_size_vectors == 0 {
            return Err(FormatError::corrupt(&cfg_path, "dim and chunk_size_vectors must be positive").into());
        }
        if let Some(d) = expected_dim {
            if d != config.dim {
                return Err(FormatError::corrupt(
                    &cfg_path,
                    format!("dim is {}, the segment config says {d}", config.dim),
                )
                .into());
            }
        }
        let record_size = config
            .dim
            .checked_mul(elem_size as u64)
            .and_then(|r| usize::try_from(r).ok())
            .ok_or_else(|| FormatError::corrupt(&cfg_path, "record size overflows"))?;
        let chunk_bytes = config
            .chunk_size_vectors
            .checked_mul(record_size as u64)
            .ok_or_else(|| FormatError::corrupt(&cfg_path, "chunk size overflows"))?;
        if chunk_bytes > config.chunk_size_bytes {
            return Err(FormatError::corrupt(
                &cfg_path,
                format!(
                    "chunk_size_bytes {} is smaller than chunk_size_vectors × record size = {chunk_bytes}",
                    config.chunk_size_bytes
                ),
            )
            .into());
        }

        let status_path = join(dir, STATUS_FILE);
        let len = match storage.read_all(&status_path) {
            Ok(b) => Reader::new(&b, &status_path).u64()?,
            Err(e) if e.kind == StorageErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };

        // enumerate chunk files
        let mut ids = Vec::new();
        for e in storage.list_dir(dir)? {
            if e.kind != EntryKind::File {
                continue;
            }
            if let Some(n) = e.name.strip_prefix("chunk_").and_then(|r| r.strip_suffix(".mmap")) {
                let id: u64 = n
                    .parse()
                    .map_err(|_| FormatError::corrupt(join(dir, &e.name), "chunk file name has no decimal id"))?;
                ids.push(id);
            }
        }
        ids.sort_unstable();
        if ids.iter().enumerate().any(|(i, &id)| id != i as u64) {
            return Err(FormatError::corrupt(dir, format!("chunk ids are not contiguous from 0: {ids:?}")).into());
        }
        let needed_chunks = len.div_ceil(config.chunk_size_vectors);
        if needed_chunks > ids.len() as u64 {
            return Err(FormatError::corrupt(
                &status_path,
                format!("{len} records need {needed_chunks} chunk files, found {}", ids.len()),
            )
            .into());
        }
        let mut chunks = Vec::with_capacity(needed_chunks as usize);
        for c in 0..needed_chunks {
            let path = join(dir, &format!("chunk_{c}.mmap"));
            let slice = storage.open_slice(&path)?;
            let first = c * config.chunk_size_vectors;
            let in_chunk = (len - first).min(config.chunk_size_vectors);
            let valid = in_chunk * record_size as u64;
            if slice.len() < valid {
                return Err(FormatError::corrupt(
                    &path,
                    format!("chunk is {} bytes, its {in_chunk} records need {valid}", slice.len()),
                )
                .into());
            }
            chunks.push(match memory {
                Memory::Cold => Chunk::Lazy(slice.slice(0, valid)),
                Memory::Cached | Memory::Pinned => Chunk::Ram(slice.read_range(0, valid)?),
            });
        }
        Ok(ChunkedVectors { dir: dir.to_string(), config, record_size, len, chunks })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }
    pub fn config(&self) -> &ChunkedConfig {
        &self.config
    }
    /// Number of records (`status.dat`).
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn dim(&self) -> u64 {
        self.config.dim
    }
    pub fn record_size(&self) -> usize {
        self.record_size
    }

    /// The bytes of record `k`; `None` if `k >= len`.
    /// Call `f` with record `k`'s bytes, borrowed from RAM when the chunk is pinned (no copy,
    /// no reference counting); `None` past the end.
    pub fn with_record<R>(&self, k: u64, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, Error> {
        if k >= self.len {
            return Ok(None);
        }
        let chunk = (k / self.config.chunk_size_vectors) as usize;
        let start = ((k % self.config.chunk_size_vectors) * self.record_size as u64) as usize;
        match self.chunks.get(chunk) {
            Some(Chunk::Ram(b)) => Ok(b.get(start..start + self.record_size).map(f)),
            _ => Ok(self.record(k)?.map(|b| f(&b))),
        }
    }

    pub fn record(&self, k: u64) -> Result<Option<Bytes>, Error> {
        if k >= self.len {
            return Ok(None);
        }
        let chunk = (k / self.config.chunk_size_vectors) as usize;
        let start = (k % self.config.chunk_size_vectors) * self.record_size as u64;
        let Some(c) = self.chunks.get(chunk) else {
            return Err(Error::Internal(format!("{}: chunk {chunk} not opened", self.dir)));
        };
        match c {
            Chunk::Ram(b) => {
                let s = start as usize;
                Ok(b.get(s..s + self.record_size).map(|_| b.slice(s..s + self.record_size)))
            }
            Chunk::Lazy(f) => Ok(Some(f.read_range(start, self.record_size as u64)?)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::storage::{MemoryStorage, OpenMode};

    pub(crate) fn put(st: &MemoryStorage, path: &str, data: &[u8]) {
        st.create_dir_all(crate::storage::parent(path)).unwrap();
        let f = st.open(path, OpenMode::Create).unwrap();
        f.set_len(0).unwrap();
        f.write_at(0, data).unwrap();
    }

    /// Write a chunked dir of `u32` records (`dim` each) with `per_chunk` records per chunk.
    pub(crate) fn write_chunked(
        st: &MemoryStorage,
        dir: &str,
        dim: u64,
        elem: u64,
        per_chunk: u64,
        records: &[Vec<u8>],
    ) {
        put(
            st,
            &format!("{dir}/config.json"),
            format!(
                r#"{{"chunk_size_bytes":{},"chunk_size_vectors":{per_chunk},"dim":{dim},"populate":true}}"#,
                per_chunk * dim * elem
            )
            .as_bytes(),
        );
        put(st, &format!("{dir}/status.dat"), &(records.len() as u64).to_le_bytes());
        for (c, group) in records.chunks(per_chunk as usize).enumerate() {
            let f = st.open(&format!("{dir}/chunk_{c}.mmap"), OpenMode::Create).unwrap();
            f.set_len(per_chunk * dim * elem).unwrap();
            f.write_at(0, &group.concat()).unwrap();
        }
    }

    #[test]
    fn records_across_chunks() {
        let st = MemoryStorage::new();
        let recs: Vec<Vec<u8>> = (0..7u8).map(|i| vec![i, i + 100]).collect();
        write_chunked(&st, "v", 2, 1, 3, &recs);
        for mem in [Memory::Pinned, Memory::Cold] {
            let c = ChunkedVectors::open(&st, "v", 1, Some(2), mem).unwrap();
            assert_eq!(c.len(), 7);
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(&c.record(i as u64).unwrap().unwrap()[..], &r[..]);
            }
            assert!(c.record(7).unwrap().is_none());
        }
        assert_eq!(
            ChunkedVectors::open(&st, "v", 1, Some(3), Memory::Pinned).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
    }

    #[test]
    fn empty_and_broken() {
        let st = MemoryStorage::new();
        write_chunked(&st, "v", 4, 4, 10, &[]);
        let c = ChunkedVectors::open(&st, "v", 4, None, Memory::Pinned).unwrap();
        assert!(c.is_empty());
        // status claims records but no chunk exists
        put(&st, "v/status.dat", &3u64.to_le_bytes());
        assert_eq!(ChunkedVectors::open(&st, "v", 4, None, Memory::Pinned).unwrap_err().kind(), ErrorKind::Corrupted);
        // short chunk
        put(&st, "v/chunk_0.mmap", &[0u8; 40]);
        assert_eq!(ChunkedVectors::open(&st, "v", 4, None, Memory::Cold).unwrap_err().kind(), ErrorKind::Corrupted);
        put(&st, "v/chunk_0.mmap", &[0u8; 48]);
        assert!(ChunkedVectors::open(&st, "v", 4, None, Memory::Cold).is_ok());
        // gap in chunk ids
        put(&st, "v/chunk_2.mmap", &[0u8; 4]);
        assert_eq!(ChunkedVectors::open(&st, "v", 4, None, Memory::Cold).unwrap_err().kind(), ErrorKind::Corrupted);
        st.remove_file("v/chunk_2.mmap").unwrap();
        // truncated status
        put(&st, "v/status.dat", &[3, 0, 0]);
        assert_eq!(ChunkedVectors::open(&st, "v", 4, None, Memory::Cold).unwrap_err().kind(), ErrorKind::Corrupted);
        // bad config
        put(&st, "v/config.json", br#"{"chunk_size_bytes":160,"chunk_size_vectors":10,"dim":0}"#);
        assert_eq!(ChunkedVectors::open(&st, "v", 4, None, Memory::Cold).unwrap_err().kind(), ErrorKind::Corrupted);
        put(&st, "v/config.json", br#"{"chunk_size_bytes":16,"chunk_size_vectors":10,"dim":4}"#);
        assert_eq!(ChunkedVectors::open(&st, "v", 4, None, Memory::Cold).unwrap_err().kind(), ErrorKind::Corrupted);
        put(&st, "v/config.json", br#"{"chunk_size_bytes":1,"chunk_size_vectors":18446744073709551615,"dim":4}"#);
        assert_eq!(ChunkedVectors::open(&st, "v", 4, None, Memory::Cold).unwrap_err().kind(), ErrorKind::Corrupted);
    }
}
