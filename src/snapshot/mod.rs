//! Streaming, push-style unpacker for Qdrant shard snapshots (§12 of the format reference).
//!
//! ```text
//! let mut u = SnapshotUnpacker::new(storage, "restore-tmp", Limits::default())?;
//! for chunk in download { u.push(&chunk)?; }      // any chunk sizes, e.g. fetch() chunks
//! u.verify_sha256(published_checksum)?;           // optional, before committing
//! let report = u.finish()?;                        // §12.5 restore-in-place; a loadable shard
//! ```
//!
//! Input: a tar stream, optionally gzip-compressed (detected from the first two bytes
//! `1f 8b`; decoded with `flate2`'s pure-Rust backend, the CRC-32 and length trailer are
//! checked, a stream cut short or followed by other bytes is an error).
//!
//! Memory does not grow with the archive: file data goes straight from the pushed chunk (or the
//! gzip decoder's 32 KiB output buffer) into [`StorageFile::write_at`]. Sparse entries become one
//! `set_len(realsize)` plus positional writes of their data regions: holes are never inflated.
//! What the unpacker keeps is one 512-byte header, a long name (≤ `max_path_len`), a sparse map
//! (≤ `max_sparse_regions` pairs) and the set of paths written (for duplicate detection, bounded
//! by `max_entries`); see [`SnapshotUnpacker::buffered_bytes`].
//!
//! Tar encoding (§12.2) — byte layout of a header in `header.rs`:
//!
//! | entry type            | handling                                                          |
//! |-----------------------|-------------------------------------------------------------------|
//! | `'0'`, `'\0'`         | regular file; `segments/<id>.tar` at top level is a nested tar     |
//! | `'S'` (old GNU sparse)| `set_len(realsize)`, then the map's data regions in order          |
//! | `'5'`                 | directory (parents of files are created implicitly anyway)         |
//! | `'L'` / `'K'`         | GNU long name / long link of the next entry                        |
//! | `'x'` / `'g'`         | PAX `path` / `size` honoured; `GNU.sparse.*` is `Unsupported`      |
//! | anything else         | `InvalidArgument` (links, devices, FIFOs, contiguous files, ...)   |
//!
//! The outer archive must end with two zero blocks (only zero bytes may follow: record
//! padding); a nested `<id>.tar` may end at EOF on a header boundary (Qdrant never finishes it).
//!
//! Accepted paths (relative; `.` components dropped; absolute paths and `..` rejected):
//! `segments/`, `segments/<id>/...` (Streamable), `segments/<id>.tar` (Regular/Ancient),
//! `wal/`, `wal/<file>`, and the top-level files in [`TOP_LEVEL_FILES`]. A directory entry for
//! the root itself (`./`, as `tar -C <shard> -cf x.tar .` writes it) is accepted, and
//! `temp_segments/...` (the optimizer's scratch directory of a live shard directory archived by
//! hand) is read and dropped. `<id>` must not be
//! empty or contain a `.` (Qdrant's `restore_snapshot_in_place` rejects such directories).
//! A path written twice, a file where a directory is needed (or the reverse), and a segment
//! present both as a directory and as a `.tar` are `InvalidArgument`. The target directory must
//! be empty or absent, so nothing is overwritten. Structural damage (bad checksum, bad numbers,
//! a sparse map that overlaps or leaves the real size, truncation, trailing garbage) is
//! `Corrupted`, naming the entry.
//!
//! On error the unpacker is poisoned; the target holds a partial tree that the caller should
//! remove ([`SnapshotUnpacker::abort`]). The atomic swap into place is the caller's business.

pub mod apply;
mod header;
pub mod manifest;
mod restore;
mod tar;

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, FormatError, Result};
use crate::storage::{components, join, EntryKind, OpenMode, Storage, StorageFile};

pub use apply::{ApplyOptions, ApplyReport, SnapshotApply, SnapshotKind};
pub use manifest::{FileVersion, SegmentManifest, SnapshotManifest};
pub use restore::SegmentLayout;

/// Top-level files a shard snapshot may carry (§2.1).
pub const TOP_LEVEL_FILES: [&str; 7] = [
    "edge_config.json",
    "newest_clocks.json",
    "oldest_clocks.json",
    "applied_seq.json",
    "replica_state.json",
    "shard_config.json",
    "segments_manifest.json",
];

/// Resource limits for one archive. Exceeding one is `InvalidArgument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file (its real size; for a sparse entry the size with holes).
    pub max_entry_size: u64,
    /// Sum of the data bytes written (holes of sparse entries not counted).
    pub max_total_bytes: u64,
    /// Number of entries (files and directories, nested tars' entries included).
    pub max_entries: u64,
    /// Longest entry path in bytes.
    pub max_path_len: usize,
    /// Most regions in one sparse map.
    pub max_sparse_regions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entry_size: 64 << 30,
            max_total_bytes: 1 << 40,
            max_entries: 1_000_000,
            max_path_len: 4096,
            max_sparse_regions: 65_536,
        }
    }
}

/// One restored segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub id: String,
    pub layout: SegmentLayout,
}

/// What [`SnapshotUnpacker::finish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// Segments in name order, with the layout each came in.
    pub segments: Vec<SegmentReport>,
    /// File entries written (nested tars' files included, nested tars themselves not).
    pub files: u64,
    /// Directory entries in the archive.
    pub dirs: u64,
    /// All entries (files, directories, nested tars).
    pub entries: u64,
    /// Bytes pushed (compressed if the input was gzip).
    pub archive_bytes: u64,
    /// Bytes of the (decompressed) outer tar stream.
    pub tar_bytes: u64,
    /// File data bytes written.
    pub data_bytes: u64,
    /// Sum of the real sizes of all files.
    pub apparent_bytes: u64,
    /// Hole bytes of sparse entries that were not written (`set_len` only).
    pub sparse_bytes_skipped: u64,
    /// The input was gzip-compressed.
    pub gzip: bool,
    /// SHA-256 of the pushed bytes, lowercase hex.
    pub sha256: String,
}

// ---- shared context ----------------------------------------------------------------------

pub(crate) fn corrupt(entry: &str, msg: impl Into<String>) -> Error {
    Error::Format(FormatError::corrupt(entry, msg))
}

pub(crate) fn invalid(entry: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("snapshot entry `{entry}`: {msg}"))
}

/// Where a file entry goes.
pub(crate) enum Placement {
    File(Arc<dyn StorageFile>),
    /// An entry the shard does not keep (under `temp_segments/`): its data is read and dropped.
    Skip,
    /// `segments/<id>.tar`: feed its data to a nested stream.
    NestedTar(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentSource {
    Dir,
    Tar,
}

pub(crate) struct Ctx {
    storage: Arc<dyn Storage>,
    target: String,
    limits: Limits,
    /// Relative (to `target`) paths of files / directories created.
    files: HashSet<String>,
    dirs: HashSet<String>,
    segments: BTreeMap<String, SegmentSource>,
    entries: u64,
    file_count: u64,
    dir_count: u64,
    data_bytes: u64,
    apparent_bytes: u64,
    sparse_skipped: u64,
}

fn valid_segment_id(id: &str) -> bool {
    !id.is_empty() && !id.contains('.') && components(id).is_ok_and(|c| c.len() == 1)
}

impl Ctx {
    fn bytes_held(&self) -> usize {
        let set = |s: &HashSet<String>| s.iter().map(|x| x.capacity() + 24).sum::<usize>();
        set(&self.files) + set(&self.dirs) + self.segments.keys().map(|k| k.capacity() + 32).sum::<usize>()
    }

    /// Normalised components of an archive path.
    fn split<'p>(&self, here: &str, path: &'p str) -> Result<Vec<&'p str>> {
        if path.len() > self.limits.max_path_len {
            return Err(invalid(here, format!("path longer than {} bytes", self.limits.max_path_len)));
        }
        if path.starts_with('/') {
            return Err(invalid(here, "absolute path"));
        }
        let mut out = Vec::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(invalid(here, "path with a `..` component")),
                c if c.contains('\\') || c.contains('\0') => return Err(invalid(here, "backslash or NUL in the path")),
                c => out.push(c),
            }
        }
        if out.is_empty() {
            return Err(invalid(here, "empty path"));
        }
        Ok(out)
    }

    fn register_segment(&mut self, here: &str, id: &str, src: SegmentSource) -> Result<()> {
        if !valid_segment_id(id) {
            return Err(invalid(here, format!("`{id}` is not a valid segment directory name")));
        }
        match (self.segments.get(id), src) {
            (None, _) => {
                self.segments.insert(id.to_string(), src);
                Ok(())
            }
            (Some(SegmentSource::Dir), SegmentSource::Dir) => Ok(()),
            (Some(SegmentSource::Tar), SegmentSource::Tar) => Err(invalid(here, "duplicate segment tar")),
            _ => Err(invalid(here, format!("segment `{id}` appears both as a directory and as a .tar"))),
        }
    }

    fn count_entry(&mut self, here: &str) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(invalid(here, format!("more than {} entries", self.limits.max_entries)));
        }
        Ok(())
    }

    /// Make sure the directory `rel` (relative to the target) exists, refusing to go through a
    /// file that the archive created.
    fn ensure_dir(&mut self, here: &str, rel: &str) -> Result<()> {
        if rel.is_empty() || self.dirs.contains(rel) {
            return Ok(());
        }
        let mut prefix = String::new();
        for c in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            if self.files.contains(&prefix) {
                return Err(invalid(
                    here,
                    format!("`{prefix}` is a file in this archive but is needed as a directory"),
                ));
            }
        }
        self.storage.create_dir_all(&join(&self.target, rel))?;
        let mut prefix = String::new();
        for c in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            self.dirs.insert(prefix.clone());
        }
        Ok(())
    }

    /// Map an archive path to a path relative to the target, applying the policy.
    /// Returns `(relative path, nested tar id)`.
    fn resolve(
        &mut self,
        nested: Option<&str>,
        here: &str,
        path: &str,
        is_dir: bool,
    ) -> Result<(String, Option<String>)> {
        let comps = self.split(here, path)?;
        if let Some(id) = nested {
            let mut rel = format!("segments/{id}");
            for c in &comps {
                rel.push('/');
                rel.push_str(c);
            }
            return Ok((rel, None));
        }
        let rel = comps.join("/");
        match comps.as_slice() {
            ["temp_segments", ..] => Ok((String::new(), None)),
            [f] if !is_dir && TOP_LEVEL_FILES.contains(f) => Ok((rel, None)),
            ["wal"] | ["segments"] if is_dir => Ok((rel, None)),
            ["wal", _] if !is_dir => Ok((rel, None)),
            ["segments", x] if !is_dir => match x.strip_suffix(".tar") {
                Some(id) => {
                    self.register_segment(here, id, SegmentSource::Tar)?;
                    Ok((format!("segments/{id}"), Some(id.to_string())))
                }
                None => Err(invalid(here, "a file directly under segments/ must be a `<segment id>.tar`")),
            },
            ["segments", id, ..] => {
                self.register_segment(here, id, SegmentSource::Dir)?;
                Ok((rel, None))
            }
            _ => Err(invalid(
                here,
                "entry outside segments/, wal/ and the known top-level files (edge_config.json, \
                 newest_clocks.json, oldest_clocks.json, applied_seq.json, replica_state.json, \
                 shard_config.json, segments_manifest.json)",
            )),
        }
    }

    pub(crate) fn directory(&mut self, nested: Option<&str>, here: &str, path: &str) -> Result<()> {
        self.count_entry(here)?;
        // The archive's root (`./`, as `tar -C <shard> -cf x.tar .` writes it) is the target.
        if is_root(path) {
            return Ok(());
        }
        let (rel, _) = self.resolve(nested, here, path, true)?;
        if rel.is_empty() {
            return Ok(());
        }
        if self.files.contains(&rel) {
            return Err(invalid(here, "directory entry where the archive already has a file"));
        }
        self.ensure_dir(here, &rel)?;
        self.dir_count += 1;
        Ok(())
    }

    pub(crate) fn place_file(
        &mut self,
        nested: Option<&str>,
        here: &str,
        path: &str,
        real_size: u64,
        data_size: u64,
    ) -> Result<Placement> {
        self.count_entry(here)?;
        let (rel, tar_id) = self.resolve(nested, here, path, false)?;
        if rel.is_empty() {
            return Ok(Placement::Skip);
        }
        if self.files.contains(&rel) {
            return Err(invalid(here, "duplicate entry"));
        }
        if let Some(id) = tar_id {
            if self.dirs.contains(&rel) {
                return Err(invalid(here, format!("segment `{id}` appears both as a directory and as a .tar")));
            }
            self.ensure_dir(here, &rel)?;
            return Ok(Placement::NestedTar(id));
        }
        if self.dirs.contains(&rel) {
            return Err(invalid(here, "file entry where the archive already has a directory"));
        }
        if real_size > self.limits.max_entry_size {
            return Err(invalid(
                here,
                format!("entry of {real_size} bytes exceeds the limit of {}", self.limits.max_entry_size),
            ));
        }
        let total = self.data_bytes.checked_add(data_size).filter(|&t| t <= self.limits.max_total_bytes);
        let Some(total) = total else {
            return Err(invalid(
                here,
                format!("archive exceeds the limit of {} data bytes", self.limits.max_total_bytes),
            ));
        };
        let parent = crate::storage::parent(&rel).to_string();
        self.ensure_dir(here, &parent)?;
        let file = self.storage.open(&join(&self.target, &rel), OpenMode::CreateNew)?;
        self.files.insert(rel);
        self.file_count += 1;
        self.data_bytes = total;
        self.apparent_bytes = self.apparent_bytes.saturating_add(real_size);
        Ok(Placement::File(file))
    }
}

/// Whether an archive path names the archive's root (`.`, `./`, `./.`, ...).
fn is_root(path: &str) -> bool {
    !path.starts_with('/') && path.split('/').all(|c| c.is_empty() || c == ".")
}

// ---- the public driver -------------------------------------------------------------------

/// The tar side of the pipeline; an `io::Write` so the gzip decoder can push into it.
struct Driver {
    ctx: Ctx,
    tar: tar::TarStream,
    tar_bytes: u64,
    /// The typed error behind an `io::Error` handed to the gzip decoder.
    error: Option<Error>,
}

impl std::io::Write for Driver {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.tar.feed(&mut self.ctx, buf) {
            Ok(()) => {
                self.tar_bytes += buf.len() as u64;
                Ok(buf.len())
            }
            Err(e) => {
                self.error = Some(e);
                Err(std::io::Error::other("tar stream rejected"))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Input {
    /// Waiting for two bytes to tell gzip from tar.
    Sniff(Box<Driver>, Vec<u8>),
    Plain(Box<Driver>),
    Gzip(Box<flate2::write::GzDecoder<Driver>>),
    Failed(String),
}

/// Push-style snapshot unpacker. See the module docs.
pub struct SnapshotUnpacker {
    storage: Arc<dyn Storage>,
    target: String,
    input: Input,
    hasher: Sha256,
    archive_bytes: u64,
}

impl std::fmt::Debug for SnapshotUnpacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotUnpacker({} bytes pushed)", self.archive_bytes)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl SnapshotUnpacker {
    /// Unpack into `target_dir` of `storage`, which must be absent (it is created) or empty.
    pub fn new(storage: Arc<dyn Storage>, target_dir: &str, limits: Limits) -> Result<SnapshotUnpacker> {
        let target = components(target_dir)
            .map_err(|e| Error::invalid_field("target_dir", format!("`{target_dir}`: {}", e.message)))?
            .join("/");
        match storage.entry_kind(&target)? {
            None => storage.create_dir_all(&target)?,
            Some(EntryKind::File) => {
                return Err(Error::invalid_field("target_dir", format!("`{target_dir}` is a file")))
            }
            Some(EntryKind::Dir) => {
                if !storage.list_dir(&target)?.is_empty() {
                    return Err(Error::invalid_field(
                        "target_dir",
                        format!("`{target_dir}` is not empty; a snapshot is unpacked into an empty directory"),
                    ));
                }
            }
        }
        let ctx = Ctx {
            storage: storage.clone(),
            target: target.clone(),
            limits,
            files: HashSet::new(),
            dirs: HashSet::new(),
            segments: BTreeMap::new(),
            entries: 0,
            file_count: 0,
            dir_count: 0,
            data_bytes: 0,
            apparent_bytes: 0,
            sparse_skipped: 0,
        };
        let driver = Driver { ctx, tar: tar::TarStream::new(None), tar_bytes: 0, error: None };
        Ok(SnapshotUnpacker {
            storage,
            target,
            input: Input::Sniff(Box::new(driver), Vec::with_capacity(2)),
            hasher: Sha256::new(),
            archive_bytes: 0,
        })
    }

    /// Feed the next bytes of the archive (any size, including empty).
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if let Input::Failed(why) = &self.input {
            return Err(Error::invalid(format!("the snapshot unpacker already failed: {why}")));
        }
        self.hasher.update(chunk);
        self.archive_bytes += chunk.len() as u64;
        let r = self.push_inner(chunk);
        if let Err(e) = &r {
            self.input = Input::Failed(e.to_string());
        }
        r
    }

    fn push_inner(&mut self, chunk: &[u8]) -> Result<()> {
        match &mut self.input {
            Input::Sniff(_, head) => {
                let need = 2 - head.len();
                let k = need.min(chunk.len());
                head.extend_from_slice(&chunk[..k]);
                if head.len() < 2 {
                    return Ok(());
                }
                let Input::Sniff(driver, head) = std::mem::replace(&mut self.input, Input::Failed(String::new()))
                else {
                    return Err(Error::Internal("snapshot unpacker state".into()));
                };
                self.input = if head[..] == GZIP_MAGIC {
                    Input::Gzip(Box::new(flate2::write::GzDecoder::new(*driver)))
                } else {
                    Input::Plain(driver)
                };
                self.push_inner(&head)?;
                self.push_inner(&chunk[k..])
            }
            Input::Plain(d) => {
                d.tar.feed(&mut d.ctx, chunk)?;
                d.tar_bytes += chunk.len() as u64;
                Ok(())
            }
            Input::Gzip(dec) => {
                let mut rest = chunk;
                while !rest.is_empty() {
                    match dec.write(rest) {
                        Ok(0) => {
                            return Err(corrupt("<gzip>", "trailing data after the end of the gzip stream"));
                        }
                        Ok(n) => rest = &rest[n..],
                        Err(e) => {
                            return Err(dec
                                .get_mut()
                                .error
                                .take()
                                .unwrap_or_else(|| corrupt("<gzip>", format!("corrupt gzip stream: {e}"))))
                        }
                    }
                }
                Ok(())
            }
            Input::Failed(_) => Err(Error::Internal("snapshot unpacker state".into())),
        }
    }

    /// SHA-256 of every byte pushed so far, lowercase hex (the archive as transferred, i.e.
    /// the compressed bytes for a gzip stream).
    pub fn sha256_hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }

    /// Compare [`sha256_hex`](Self::sha256_hex) with a published checksum (hex, any case).
    pub fn verify_sha256(&self, expected_hex: &str) -> Result<()> {
        let got = self.sha256_hex();
        if got.eq_ignore_ascii_case(expected_hex.trim()) {
            Ok(())
        } else {
            Err(Error::invalid_field("checksum", format!("snapshot SHA-256 is {got}, expected {expected_hex}")))
        }
    }

    /// Bytes pushed so far.
    pub fn archive_bytes(&self) -> u64 {
        self.archive_bytes
    }

    /// Memory the unpacker itself holds: header and name buffers, sparse maps, the set of
    /// written paths, and for gzip input the decoder's fixed buffers (32 KiB output buffer and
    /// the 32 KiB inflate window, counted as a constant).
    pub fn buffered_bytes(&self) -> usize {
        const GZIP_FIXED: usize = 32 * 1024 + 32 * 1024 + 11 * 1024;
        match &self.input {
            Input::Sniff(d, h) => d.tar.buffered_bytes() + d.ctx.bytes_held() + h.capacity(),
            Input::Plain(d) => d.tar.buffered_bytes() + d.ctx.bytes_held(),
            Input::Gzip(g) => {
                let d = g.get_ref();
                d.tar.buffered_bytes() + d.ctx.bytes_held() + GZIP_FIXED
            }
            Input::Failed(_) => 0,
        }
    }

    /// End of input: check the archive ended cleanly, apply §12.5 restore-in-place to every
    /// segment, and report.
    pub fn finish(self) -> Result<UnpackReport> {
        let sha256 = self.sha256_hex();
        let (driver, gzip) = match self.input {
            Input::Failed(why) => return Err(Error::invalid(format!("the snapshot unpacker already failed: {why}"))),
            Input::Sniff(_, h) if h.is_empty() => return Err(corrupt("<archive>", "empty snapshot archive")),
            Input::Sniff(..) => return Err(corrupt("<archive>", "truncated archive: 1 byte")),
            Input::Plain(d) => (*d, false),
            Input::Gzip(mut dec) => {
                if let Err(e) = dec.try_finish() {
                    return Err(dec
                        .get_mut()
                        .error
                        .take()
                        .unwrap_or_else(|| corrupt("<gzip>", format!("gzip stream truncated or corrupt: {e}"))));
                }
                let d = dec.finish().map_err(|e| corrupt("<gzip>", format!("gzip stream: {e}")))?;
                (d, true)
            }
        };
        if let Some(e) = driver.error {
            return Err(e);
        }
        driver.tar.finish_outer()?;
        let ctx = driver.ctx;
        let segments = restore::restore_segments(&ctx)?;
        Ok(UnpackReport {
            segments,
            files: ctx.file_count,
            dirs: ctx.dir_count,
            entries: ctx.entries,
            archive_bytes: self.archive_bytes,
            tar_bytes: driver.tar_bytes,
            data_bytes: ctx.data_bytes,
            apparent_bytes: ctx.apparent_bytes,
            sparse_bytes_skipped: ctx.sparse_skipped,
            gzip,
            sha256,
        })
    }

    /// Give up: remove the target directory and everything unpacked so far.
    pub fn abort(self) -> Result<()> {
        let SnapshotUnpacker { storage, target, input, .. } = self;
        drop(input);
        if storage.exists(&target)? {
            storage.remove_dir_all(&target)?;
        }
        Ok(())
    }

    /// The target directory (normalised).
    pub fn target_dir(&self) -> &str {
        &self.target
    }
}

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}
