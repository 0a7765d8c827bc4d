//! The incremental tar driver: bytes in, storage writes out, nothing buffered but one header.
//!
//! Entry grammar (what Qdrant's `tar` 0.4 builder writes, §12.2):
//!
//! ```text
//! archive  := entry* zero-block zero-block zero-pad*      (outer archive)
//!           | entry* (EOF | zero-block zero-pad*)          (nested segment tar)
//! entry    := meta* header data pad
//! meta     := 'L' long name | 'K' long link | 'x' PAX | 'g' global PAX   (header + content + pad)
//! header   := 512 bytes (see header.rs); 'S' headers may be followed by extension blocks
//! data     := `size` bytes; for 'S' the data regions of the sparse map, concatenated
//! pad      := zeros up to the next multiple of 512
//! ```
//!
//! The data of `segments/<id>.tar` (Regular layout) is fed to a nested [`TarStream`] that writes
//! under `segments/<id>/`.

use std::sync::Arc;

use super::header::{
    self, checksum_ok, cstr, dialect, header_path, is_zero_block, sparse_pairs, Dialect, BLOCK, EXT_ISEXT, EXT_PAIRS,
    OFF_ISEXT, OFF_REALSIZE, OFF_SPARSE,
};
use super::{corrupt, invalid, Ctx, Placement};
use crate::error::Result;
use crate::storage::StorageFile;

/// Largest PAX extended header we accept.
const MAX_PAX: u64 = 64 * 1024;

/// A sparse entry whose map is still being read (extension blocks).
struct PendingSparse {
    path: String,
    data_size: u64,
    real_size: u64,
    map: Vec<(u64, u64)>,
}

enum St {
    /// Collecting a 512-byte header into `hdr`.
    Header,
    /// Collecting a GNU sparse extension block into `hdr`.
    SparseExt(Box<PendingSparse>),
    /// Content of a meta entry ('L', 'K', 'x', 'g').
    Meta { kind: u8, remaining: u64, pad: u64, buf: Vec<u8> },
    /// File data: `regions` are (offset, len) in the file, fed in order.
    Data { file: Arc<dyn StorageFile>, regions: Vec<(u64, u64)>, idx: usize, pos: u64, remaining: u64, pad: u64 },
    /// Data of a nested segment tar.
    Nested { inner: Box<TarStream>, remaining: u64, pad: u64 },
    /// Padding after data.
    Pad { remaining: u64 },
    /// After the first end-of-archive block: only zeros may follow. `zeros` counts them,
    /// including the first block.
    End { zeros: u64 },
}

pub(crate) struct TarStream {
    /// `None` for the outer archive, `Some(id)` inside `segments/<id>.tar`.
    nested: Option<String>,
    hdr: Box<[u8; BLOCK]>,
    fill: usize,
    st: St,
    long_name: Option<Vec<u8>>,
    long_link: bool,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
    /// Name of the entry being read (for errors).
    entry: String,
    /// Tar bytes consumed.
    offset: u64,
}

fn pad_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// How many of `data`'s bytes to consume when `n` are wanted.
fn take(data: &[u8], n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(data.len())
}

fn label_of(nested: &Option<String>, name: &str) -> String {
    match nested {
        Some(id) => format!("segments/{id}.tar/{name}"),
        None => name.to_string(),
    }
}

impl TarStream {
    pub(crate) fn new(nested: Option<String>) -> TarStream {
        TarStream {
            nested,
            hdr: Box::new([0u8; BLOCK]),
            fill: 0,
            st: St::Header,
            long_name: None,
            long_link: false,
            pax_path: None,
            pax_size: None,
            entry: String::new(),
            offset: 0,
        }
    }

    /// Archive-level name for error messages.
    fn label(&self, name: &str) -> String {
        label_of(&self.nested, name)
    }

    fn here(&self) -> String {
        if self.entry.is_empty() {
            self.label(&format!("<header at byte {}>", self.offset))
        } else {
            self.label(&self.entry)
        }
    }

    /// Bytes this stream (and a nested one) holds in memory.
    pub(crate) fn buffered_bytes(&self) -> usize {
        let own = BLOCK
            + self.long_name.as_ref().map_or(0, Vec::capacity)
            + self.pax_path.as_ref().map_or(0, Vec::capacity)
            + self.entry.capacity();
        own + match &self.st {
            St::SparseExt(p) => p.map.capacity() * 16 + p.path.capacity(),
            St::Meta { buf, .. } => buf.capacity(),
            St::Data { regions, .. } => regions.capacity() * 16,
            St::Nested { inner, .. } => inner.buffered_bytes(),
            _ => 0,
        }
    }

    /// Feed tar bytes.
    pub(crate) fn feed(&mut self, ctx: &mut Ctx, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let before = data.len();
            self.step(ctx, &mut data)?;
            self.offset += (before - data.len()) as u64;
        }
        Ok(())
    }

    fn step(&mut self, ctx: &mut Ctx, data: &mut &[u8]) -> Result<()> {
        match &mut self.st {
            St::Header | St::SparseExt(_) => {
                let n = (BLOCK - self.fill).min(data.len());
                self.hdr[self.fill..self.fill + n].copy_from_slice(&data[..n]);
                self.fill += n;
                *data = &data[n..];
                if self.fill == BLOCK {
                    self.fill = 0;
                    match std::mem::replace(&mut self.st, St::Header) {
                        St::SparseExt(p) => self.on_sparse_ext(ctx, p)?,
                        _ => self.on_header(ctx)?,
                    }
                }
            }
            St::Meta { remaining, pad, buf, .. } => {
                let k = take(data, *remaining);
                buf.extend_from_slice(&data[..k]);
                *remaining -= k as u64;
                *data = &data[k..];
                if *remaining == 0 {
                    let pad = *pad;
                    if let St::Meta { kind, buf, .. } = std::mem::replace(&mut self.st, St::Pad { remaining: pad }) {
                        self.on_meta(ctx, kind, buf)?;
                    }
                }
            }
            St::Data { file, regions, idx, pos, remaining, pad } => {
                let k = take(data, *remaining);
                let mut chunk = &data[..k];
                while !chunk.is_empty() {
                    let Some(&(off, len)) = regions.get(*idx) else {
                        return Err(corrupt(&label_of(&self.nested, &self.entry), "data beyond the sparse map"));
                    };
                    let avail = len - *pos;
                    if avail == 0 {
                        *idx += 1;
                        *pos = 0;
                        continue;
                    }
                    let n = take(chunk, avail);
                    file.write_at(off + *pos, &chunk[..n])?;
                    *pos += n as u64;
                    chunk = &chunk[n..];
                }
                *remaining -= k as u64;
                *data = &data[k..];
                if *remaining == 0 {
                    file.sync()?;
                    let pad = *pad;
                    self.st = St::Pad { remaining: pad };
                }
            }
            St::Nested { inner, remaining, pad } => {
                let k = take(data, *remaining);
                inner.feed(ctx, &data[..k])?;
                *remaining -= k as u64;
                *data = &data[k..];
                if *remaining == 0 {
                    inner.finish_nested()?;
                    let pad = *pad;
                    self.st = St::Pad { remaining: pad };
                }
            }
            St::Pad { remaining } => {
                let k = take(data, *remaining);
                *remaining -= k as u64;
                *data = &data[k..];
                if *remaining == 0 {
                    self.st = St::Header;
                    self.entry.clear();
                }
            }
            St::End { zeros } => {
                if let Some(i) = data.iter().position(|&b| b != 0) {
                    let at = self.offset + i as u64;
                    return Err(corrupt(
                        &self.label("<end of archive>"),
                        format!("trailing garbage: non-zero byte at tar offset {at} after the end-of-archive blocks"),
                    ));
                }
                *zeros += data.len() as u64;
                *data = &[];
            }
        }
        Ok(())
    }

    /// The stream ended (end of input for the outer archive). Checks that it ended cleanly.
    pub(crate) fn finish_outer(&self) -> Result<()> {
        match &self.st {
            St::End { zeros } if *zeros >= 2 * BLOCK as u64 => Ok(()),
            St::End { .. } => Err(corrupt(
                &self.label("<end of archive>"),
                "truncated archive: only one of the two end-of-archive blocks",
            )),
            St::Header | St::Pad { remaining: 0 } if self.fill == 0 && self.pending_meta().is_none() => Err(corrupt(
                &self.label("<end of archive>"),
                format!("truncated archive: no end-of-archive blocks after {} bytes", self.offset),
            )),
            _ => Err(self.truncated()),
        }
    }

    /// The nested tar's bytes are all consumed: EOF at a header boundary is a valid end
    /// (Qdrant's nested tars have no end blocks).
    fn finish_nested(&self) -> Result<()> {
        match &self.st {
            St::End { .. } => Ok(()),
            St::Header | St::Pad { remaining: 0 } if self.fill == 0 && self.pending_meta().is_none() => Ok(()),
            _ => Err(self.truncated()),
        }
    }

    fn pending_meta(&self) -> Option<&'static str> {
        if self.long_name.is_some() {
            Some("GNU long name")
        } else if self.pax_path.is_some() || self.pax_size.is_some() {
            Some("PAX header")
        } else if self.long_link {
            Some("GNU long link")
        } else {
            None
        }
    }

    fn truncated(&self) -> crate::error::Error {
        let what = match &self.st {
            St::Header if self.fill > 0 => format!("inside a header ({} of 512 bytes)", self.fill),
            St::Header => format!("after a {} header with no entry", self.pending_meta().unwrap_or("meta")),
            St::SparseExt(_) => "inside a sparse extension block".to_string(),
            St::Meta { remaining, .. } => format!("inside a meta entry, {remaining} bytes missing"),
            St::Data { remaining, .. } => format!("inside the data, {remaining} bytes missing"),
            St::Nested { remaining, .. } => format!("inside the nested tar, {remaining} bytes missing"),
            St::Pad { remaining } => format!("inside the padding, {remaining} bytes missing"),
            St::End { .. } => "at the end".to_string(),
        };
        corrupt(&self.here(), format!("truncated archive: ends {what}"))
    }

    // ---------------------------------------------------------------------------------------

    fn on_header(&mut self, ctx: &mut Ctx) -> Result<()> {
        let h: &[u8; BLOCK] = &self.hdr;
        if is_zero_block(h) {
            if let Some(m) = self.pending_meta() {
                return Err(corrupt(&self.here(), format!("end-of-archive block right after a {m} header")));
            }
            self.st = St::End { zeros: BLOCK as u64 };
            return Ok(());
        }
        let raw_name = String::from_utf8_lossy(cstr(&h[..100])).into_owned();
        self.entry = raw_name;
        match checksum_ok(h) {
            Ok(true) => {}
            Ok(false) => return Err(corrupt(&self.here(), "header checksum mismatch")),
            Err(e) => return Err(corrupt(&self.here(), format!("header checksum field: {e}"))),
        }
        let kind = h[156];
        let size = header::number(&h[124..136]).map_err(|e| corrupt(&self.here(), format!("size field: {e}")))?;
        let dialect = dialect(h);

        // meta entries
        if matches!(kind, b'L' | b'K' | b'x' | b'g') {
            let max = match kind {
                b'L' | b'K' => ctx.limits.max_path_len as u64 + 1,
                _ => MAX_PAX,
            };
            if size > max {
                return Err(invalid(
                    &self.here(),
                    format!("meta entry of type '{}' too large ({size} bytes)", kind as char),
                ));
            }
            if kind == b'L' && self.long_name.is_some() {
                return Err(corrupt(&self.here(), "two GNU long-name headers in a row"));
            }
            let pad = pad_of(size);
            if size == 0 {
                self.st = St::Pad { remaining: pad };
                self.on_meta(ctx, kind, Vec::new())?;
            } else {
                self.st = St::Meta { kind, remaining: size, pad, buf: Vec::with_capacity(size as usize) };
            }
            return Ok(());
        }

        // a real entry: resolve its path
        let path_bytes = match (self.long_name.take(), self.pax_path.take()) {
            (_, Some(p)) => p,
            (Some(p), None) => p,
            (None, None) => header_path(h),
        };
        let size = self.pax_size.take().unwrap_or(size);
        self.long_link = false;
        let path = String::from_utf8(path_bytes)
            .map_err(|e| corrupt(&self.here(), format!("entry path is not UTF-8: {e}")))?;
        self.entry = path.clone();
        let here = self.here();

        match kind {
            b'5' => {
                if size != 0 {
                    return Err(corrupt(&here, format!("directory entry with {size} data bytes")));
                }
                ctx.directory(self.nested.as_deref(), &here, &path)?;
                self.entry.clear();
                Ok(())
            }
            b'0' | b'\0' => {
                if path.ends_with('/') {
                    return Err(corrupt(&here, "regular-file entry whose name ends with '/'"));
                }
                let pad = pad_of(size);
                match ctx.place_file(self.nested.as_deref(), &here, &path, size, size)? {
                    Placement::NestedTar(id) => {
                        self.st = St::Nested { inner: Box::new(TarStream::new(Some(id))), remaining: size, pad };
                        if size == 0 {
                            return Err(corrupt(&here, "empty nested segment tar"));
                        }
                    }
                    Placement::Skip => self.st = St::Pad { remaining: size + pad },
                    Placement::File(file) => {
                        if size == 0 {
                            file.sync()?;
                            self.st = St::Pad { remaining: 0 };
                        } else {
                            self.st = St::Data { file, regions: vec![(0, size)], idx: 0, pos: 0, remaining: size, pad };
                        }
                    }
                }
                Ok(())
            }
            b'S' => {
                if dialect != Dialect::Gnu {
                    return Err(corrupt(&here, "GNU sparse entry in a non-GNU header"));
                }
                let real_size = header::number(&h[OFF_REALSIZE..OFF_REALSIZE + 12])
                    .map_err(|e| corrupt(&here, format!("sparse realsize: {e}")))?;
                let mut map = Vec::new();
                sparse_pairs(h, OFF_SPARSE, 4, &mut map).map_err(|e| corrupt(&here, e))?;
                let p = Box::new(PendingSparse { path, data_size: size, real_size, map });
                if h[OFF_ISEXT] != 0 {
                    self.st = St::SparseExt(p);
                    Ok(())
                } else {
                    self.start_sparse(ctx, *p)
                }
            }
            b'1' => Err(invalid(&here, "hard links are not allowed in a snapshot")),
            b'2' => Err(invalid(&here, "symbolic links are not allowed in a snapshot")),
            b'3' | b'4' => Err(invalid(&here, "device entries are not allowed in a snapshot")),
            b'6' => Err(invalid(&here, "FIFO entries are not allowed in a snapshot")),
            k => Err(invalid(
                &here,
                format!(
                    "entry type {} is not allowed in a snapshot",
                    if k.is_ascii_graphic() { format!("'{}'", k as char) } else { format!("0x{k:02x}") }
                ),
            )),
        }
    }

    fn on_sparse_ext(&mut self, ctx: &mut Ctx, mut p: Box<PendingSparse>) -> Result<()> {
        let here = self.label(&p.path);
        sparse_pairs(&self.hdr[..], 0, EXT_PAIRS, &mut p.map).map_err(|e| corrupt(&here, e))?;
        if p.map.len() > ctx.limits.max_sparse_regions {
            return Err(invalid(&here, format!("sparse map has more than {} regions", ctx.limits.max_sparse_regions)));
        }
        if self.hdr[EXT_ISEXT] != 0 {
            self.st = St::SparseExt(p);
            Ok(())
        } else {
            self.start_sparse(ctx, *p)
        }
    }

    fn start_sparse(&mut self, ctx: &mut Ctx, p: PendingSparse) -> Result<()> {
        let here = self.label(&p.path);
        // validate the map: ascending, non-overlapping, inside the real size, summing to size
        let mut end = 0u64;
        let mut sum = 0u64;
        for &(off, len) in &p.map {
            if off < end {
                return Err(corrupt(&here, format!("sparse map overlaps or goes backwards at offset {off}")));
            }
            let e = off
                .checked_add(len)
                .ok_or_else(|| corrupt(&here, format!("sparse region ({off}, {len}) overflows")))?;
            if e > p.real_size {
                return Err(corrupt(
                    &here,
                    format!("sparse region ({off}, {len}) ends past the real size {}", p.real_size),
                ));
            }
            end = e;
            sum = sum.checked_add(len).ok_or_else(|| corrupt(&here, "sparse map sizes overflow"))?;
        }
        if sum != p.data_size {
            return Err(corrupt(
                &here,
                format!("sparse map covers {sum} bytes but the header says {} data bytes", p.data_size),
            ));
        }
        let path = p.path.clone();
        let file = match ctx.place_file(self.nested.as_deref(), &here, &path, p.real_size, p.data_size)? {
            Placement::File(f) => f,
            Placement::Skip => {
                self.st = St::Pad { remaining: p.data_size + pad_of(p.data_size) };
                return Ok(());
            }
            Placement::NestedTar(_) => return Err(invalid(&here, "a nested segment tar cannot be a sparse entry")),
        };
        file.set_len(p.real_size)?;
        ctx.sparse_skipped += p.real_size - p.data_size;
        let pad = pad_of(p.data_size);
        if p.data_size == 0 {
            file.sync()?;
            self.st = St::Pad { remaining: pad };
        } else {
            let regions: Vec<(u64, u64)> = p.map.into_iter().filter(|&(_, l)| l > 0).collect();
            self.st = St::Data { file, regions, idx: 0, pos: 0, remaining: p.data_size, pad };
        }
        Ok(())
    }

    fn on_meta(&mut self, _ctx: &mut Ctx, kind: u8, buf: Vec<u8>) -> Result<()> {
        let here = self.here();
        match kind {
            b'L' => {
                let name = cstr(&buf).to_vec();
                if name.is_empty() {
                    return Err(corrupt(&here, "empty GNU long name"));
                }
                self.long_name = Some(name);
            }
            b'K' => self.long_link = true,
            b'x' => {
                for (key, value) in parse_pax(&buf).map_err(|e| corrupt(&here, format!("PAX header: {e}")))? {
                    match key {
                        "path" => self.pax_path = Some(value.to_vec()),
                        "size" => {
                            let s = std::str::from_utf8(value)
                                .ok()
                                .and_then(|s| s.parse::<u64>().ok())
                                .ok_or_else(|| corrupt(&here, "PAX size is not a number"))?;
                            self.pax_size = Some(s);
                        }
                        k if k.starts_with("GNU.sparse") => {
                            return Err(crate::error::Error::Format(crate::error::FormatError::unsupported(
                                here.clone(),
                                "PAX GNU sparse formats 0.x/1.0 are not supported (Qdrant writes old-GNU 'S' entries)",
                            )))
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                // 'g': global PAX header, validated and ignored
                parse_pax(&buf).map_err(|e| corrupt(&here, format!("global PAX header: {e}")))?;
            }
        }
        Ok(())
    }
}

/// PAX records: `"<len> <key>=<value>\n"`, `len` counting the whole record.
fn parse_pax(mut buf: &[u8]) -> Result<Vec<(&str, &[u8])>, String> {
    let mut out = Vec::new();
    // trailing NUL padding is tolerated
    while let Some((&0, rest)) = buf.split_last() {
        buf = rest;
    }
    while !buf.is_empty() {
        let sp = buf.iter().position(|&b| b == b' ').ok_or("record without a length")?;
        let len: usize =
            std::str::from_utf8(&buf[..sp]).ok().and_then(|s| s.parse().ok()).ok_or("bad record length")?;
        if len <= sp + 1 || len > buf.len() || buf[len - 1] != b'\n' {
            return Err("record length out of range".into());
        }
        let rec = &buf[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=').ok_or("record without '='")?;
        let key = std::str::from_utf8(&rec[..eq]).map_err(|_| "non-UTF-8 key")?;
        out.push((key, &rec[eq + 1..]));
        buf = &buf[len..];
    }
    Ok(out)
}
