//! A file namespace over a pool of flat "slot" files plus a metadata journal: the OPFS
//! backend's core, kept platform-independent so it is tested natively.
//!
//! OPFS gives synchronous positional I/O only through `FileSystemSyncAccessHandle`s, which
//! can be acquired only asynchronously, and directories can only be changed asynchronously.
//! So the backend acquires, at open (and at the async edges, to keep spares), one handle per
//! slot file; each virtual file lives in one slot, and the directory tree lives in a journal:
//!
//! ```text
//! journal file:  "QEWPOOL1", u64 generation, 16 zero bytes, then records
//! record:        u32 payload length, u32 CRC-32C of the payload, payload
//! payload:       1 mkdir-all(path) | 2 create(slot u32, path) | 3 rename(from, to) |
//!                4 remove(path: a file, or a directory with everything under it)
//!                (strings: u32 length + UTF-8)
//! ```
//!
//! Each namespace change is one record, appended and flushed before it takes effect, so a
//! directory rename is atomic. Opening replays the valid prefix (a torn last record is dropped
//! and cut off). When the journal passes [`COMPACT_AT`] bytes, the current tree is written to
//! the other journal file and made current by writing its header (generation + 1) last.
//! A reused slot is emptied and flushed before its `create` record is written, so a crash never
//! shows old bytes under a new name. Handles name a slot and its generation: a handle to a
//! removed file fails instead of reaching whatever file reuses the slot.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{components, Capabilities, DirEntry, EntryKind, OpenMode, Storage, StorageFile, StorageResult};
use crate::error::{StorageError, StorageErrorKind};

/// Journal size that triggers a compaction.
pub const COMPACT_AT: u64 = 1 << 20;
const MAGIC: &[u8; 8] = b"QEWPOOL1";
const HEADER: u64 = 32;
const MAX_RECORD: u32 = 1 << 20;

/// One flat file of the pool (an OPFS sync access handle, or memory in tests).
#[allow(clippy::len_without_is_empty)]
pub trait Slot: Send + Sync + fmt::Debug {
    fn len(&self) -> StorageResult<u64>;
    /// Read exactly `buf.len()` bytes at `offset` (the caller checked the length).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()>;
    /// Write at `offset`, extending with zeros if needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()>;
    fn truncate(&self, len: u64) -> StorageResult<()>;
    fn flush(&self) -> StorageResult<()>;
    /// Release the underlying handle (no-op where there is none).
    fn close(&self) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Dir,
    File(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Mkdir(String),
    Create(u32, String),
    Rename(String, String),
    Remove(String),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Op {
    fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        match self {
            Op::Mkdir(a) => {
                p.push(1);
                put_str(&mut p, a);
            }
            Op::Create(slot, a) => {
                p.push(2);
                p.extend_from_slice(&slot.to_le_bytes());
                put_str(&mut p, a);
            }
            Op::Rename(a, b) => {
                p.push(3);
                put_str(&mut p, a);
                put_str(&mut p, b);
            }
            Op::Remove(a) => {
                p.push(4);
                put_str(&mut p, a);
            }
        }
        let mut r = Vec::with_capacity(8 + p.len());
        r.extend_from_slice(&(p.len() as u32).to_le_bytes());
        r.extend_from_slice(&crc32c::crc32c(&p).to_le_bytes());
        r.extend_from_slice(&p);
        r
    }

    fn decode(p: &[u8]) -> Option<Op> {
        let mut pos = 1;
        let u32_at = |pos: &mut usize| -> Option<u32> {
            let v = u32::from_le_bytes(p.get(*pos..*pos + 4)?.try_into().ok()?);
            *pos += 4;
            Some(v)
        };
        let string = |pos: &mut usize| -> Option<String> {
            let n = u32_at(pos)? as usize;
            let s = std::str::from_utf8(p.get(*pos..*pos + n)?).ok()?.to_string();
            *pos += n;
            Some(s)
        };
        let op = match *p.first()? {
            1 => Op::Mkdir(string(&mut pos)?),
            2 => {
                let slot = u32_at(&mut pos)?;
                Op::Create(slot, string(&mut pos)?)
            }
            3 => {
                let a = string(&mut pos)?;
                Op::Rename(a, string(&mut pos)?)
            }
            4 => Op::Remove(string(&mut pos)?),
            _ => return None,
        };
        (pos == p.len()).then_some(op)
    }
}

fn err(op: &'static str, path: &str, kind: StorageErrorKind, msg: &str) -> StorageError {
    StorageError::new(op, path, kind, msg)
}

fn key(path: &str) -> StorageResult<String> {
    Ok(components(path)?.join("/"))
}

fn parent_key(k: &str) -> Option<&str> {
    k.rfind('/').map(|i| &k[..i])
}

struct Pool {
    journals: [Box<dyn Slot>; 2],
    active: usize,
    generation: u64,
    journal_len: u64,
    tree: BTreeMap<String, Entry>,
    slots: Vec<Box<dyn Slot>>,
    /// Bumped whenever a slot's file goes away (handles check it).
    gens: Vec<u64>,
    free: Vec<u32>,
    failed: Option<String>,
    compact_at: u64,
}

impl Pool {
    fn check_parent(&self, op: &'static str, k: &str) -> StorageResult<()> {
        if let Some(p) = parent_key(k) {
            match self.tree.get(p) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(err(op, k, StorageErrorKind::NotADirectory, "parent is a file")),
                None => return Err(err(op, k, StorageErrorKind::NotFound, "parent directory missing")),
            }
        }
        Ok(())
    }

    fn check_ok(&self, op: &'static str, path: &str) -> StorageResult<()> {
        match &self.failed {
            None => Ok(()),
            Some(f) => Err(err(op, path, StorageErrorKind::PreviousIo, &format!("an earlier failure: {f}"))),
        }
    }

    /// Apply a (validated or replayed) operation to the in-memory tree. Returns the slots it
    /// freed.
    fn apply(&mut self, op: &Op) -> Vec<u32> {
        let mut freed = Vec::new();
        match op {
            Op::Mkdir(path) => {
                let mut cur = String::new();
                for c in path.split('/').filter(|c| !c.is_empty()) {
                    if !cur.is_empty() {
                        cur.push('/');
                    }
                    cur.push_str(c);
                    self.tree.entry(cur.clone()).or_insert(Entry::Dir);
                }
            }
            Op::Create(slot, path) => {
                if let Some(Entry::File(old)) = self.tree.insert(path.clone(), Entry::File(*slot)) {
                    freed.push(old);
                }
            }
            Op::Rename(from, to) => {
                let Some(node) = self.tree.remove(from) else { return freed };
                if let Some(Entry::File(old)) = self.tree.insert(to.clone(), node) {
                    if Entry::File(old) != node {
                        freed.push(old);
                    }
                }
                for (k, v) in self.take_under(from) {
                    self.tree.insert(format!("{to}/{}", &k[from.len() + 1..]), v);
                }
            }
            Op::Remove(path) => {
                if let Some(Entry::File(s)) = self.tree.remove(path) {
                    freed.push(s);
                }
                for (_, v) in self.take_under(path) {
                    if let Entry::File(s) = v {
                        freed.push(s);
                    }
                }
            }
        }
        freed
    }

    /// Remove and return every entry below directory `dir`.
    fn take_under(&mut self, dir: &str) -> Vec<(String, Entry)> {
        let prefix = format!("{dir}/");
        let keys: Vec<String> = self
            .tree
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter().filter_map(|k| self.tree.remove(&k).map(|v| (k, v))).collect()
    }

    fn release(&mut self, freed: Vec<u32>) {
        for s in freed {
            self.gens[s as usize] += 1;
            // best effort: a reused slot is emptied again before use
            let _ = self.slots[s as usize].truncate(0);
            self.free.push(s);
        }
    }

    /// Append `op` to the journal (durably), then apply it.
    fn log(&mut self, op: Op) -> StorageResult<()> {
        let rec = op.encode();
        let j = &self.journals[self.active];
        let r = j.write_at(self.journal_len, &rec).and_then(|_| j.flush());
        if let Err(e) = r {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.journal_len += rec.len() as u64;
        let freed = self.apply(&op);
        self.release(freed);
        if self.journal_len > self.compact_at {
            self.compact()?;
        }
        Ok(())
    }

    /// Write the tree to the other journal and switch to it (its header goes last).
    fn compact(&mut self) -> StorageResult<()> {
        let next = 1 - self.active;
        let mut body = Vec::new();
        for (k, v) in &self.tree {
            let op = match v {
                Entry::Dir => Op::Mkdir(k.clone()),
                Entry::File(s) => Op::Create(*s, k.clone()),
            };
            body.extend_from_slice(&op.encode());
        }
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(self.generation + 1).to_le_bytes());
        header.resize(HEADER as usize, 0);
        let j = &self.journals[next];
        let r = (|| {
            j.truncate(0)?;
            j.write_at(HEADER, &body)?;
            j.flush()?;
            j.write_at(0, &header)?;
            j.flush()
        })();
        if let Err(e) = r {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.active = next;
        self.generation += 1;
        self.journal_len = HEADER + body.len() as u64;
        Ok(())
    }

    fn take_slot(&mut self, path: &str) -> StorageResult<u32> {
        let Some(s) = self.free.pop() else {
            return Err(err(
                "open",
                path,
                StorageErrorKind::StorageFull,
                "no spare file in the pool (the backend adds spares between calls; reopen or retry the call)",
            ));
        };
        let slot = &self.slots[s as usize];
        if let Err(e) = slot.truncate(0).and_then(|_| slot.flush()) {
            self.free.push(s);
            return Err(e);
        }
        Ok(s)
    }
}

/// The pooled storage (see the module docs).
#[derive(Clone)]
pub struct PoolStorage {
    pool: Arc<Mutex<Pool>>,
}

impl fmt::Debug for PoolStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.pool.lock();
        write!(f, "PoolStorage({} entries, {} slots, {} free)", p.tree.len(), p.slots.len(), p.free.len())
    }
}

fn read_header(j: &dyn Slot) -> Option<u64> {
    if j.len().ok()? < HEADER {
        return None;
    }
    let mut h = [0u8; HEADER as usize];
    j.read_at(0, &mut h).ok()?;
    (&h[..8] == MAGIC).then(|| u64::from_le_bytes(h[8..16].try_into().unwrap()))
}

impl PoolStorage {
    /// Open a pool: two journal files (empty ones start a new pool) and the slot files, in
    /// slot order. Replays the newest valid journal.
    pub fn open(journals: [Box<dyn Slot>; 2], slots: Vec<Box<dyn Slot>>) -> StorageResult<PoolStorage> {
        let gens = [read_header(&*journals[0]), read_header(&*journals[1])];
        let (active, generation) = match gens {
            [None, None] => {
                let mut header = Vec::new();
                header.extend_from_slice(MAGIC);
                header.extend_from_slice(&1u64.to_le_bytes());
                header.resize(HEADER as usize, 0);
                journals[0].truncate(0)?;
                journals[0].write_at(0, &header)?;
                journals[0].flush()?;
                (0, 1)
            }
            [Some(a), None] => (0, a),
            [None, Some(b)] => (1, b),
            [Some(a), Some(b)] => {
                if a >= b {
                    (0, a)
                } else {
                    (1, b)
                }
            }
        };
        let n = slots.len();
        let mut pool = Pool {
            journals,
            active,
            generation,
            journal_len: HEADER,
            tree: BTreeMap::new(),
            slots,
            gens: vec![0; n],
            free: Vec::new(),
            failed: None,
            compact_at: COMPACT_AT,
        };
        // replay the valid prefix
        let j = &pool.journals[active];
        let len = j.len()?;
        let mut pos = HEADER;
        let mut ops = Vec::new();
        while pos + 8 <= len {
            let mut h = [0u8; 8];
            j.read_at(pos, &mut h)?;
            let plen = u32::from_le_bytes(h[..4].try_into().unwrap());
            let crc = u32::from_le_bytes(h[4..].try_into().unwrap());
            if plen == 0 || plen > MAX_RECORD || pos + 8 + u64::from(plen) > len {
                break;
            }
            let mut p = vec![0u8; plen as usize];
            j.read_at(pos + 8, &mut p)?;
            if crc32c::crc32c(&p) != crc {
                break;
            }
            let Some(op) = Op::decode(&p) else { break };
            ops.push(op);
            pos += 8 + u64::from(plen);
        }
        if pos < len {
            j.truncate(pos)?;
            j.flush()?;
        }
        pool.journal_len = pos;
        for op in &ops {
            if let Op::Create(s, path) = op {
                if *s as usize >= n {
                    return Err(err(
                        "open",
                        path,
                        StorageErrorKind::Other,
                        &format!("the journal names slot {s}, the pool has {n}"),
                    ));
                }
            }
            pool.apply(op);
        }
        let used: std::collections::BTreeSet<u32> =
            pool.tree.values().filter_map(|e| if let Entry::File(s) = e { Some(*s) } else { None }).collect();
        pool.free = (0..n as u32).rev().filter(|s| !used.contains(s)).collect();
        Ok(PoolStorage { pool: Arc::new(Mutex::new(pool)) })
    }

    /// Add spare slot files (acquired by the caller) to the pool.
    pub fn add_slots(&self, more: Vec<Box<dyn Slot>>) {
        let mut p = self.pool.lock();
        for s in more {
            let i = p.slots.len() as u32;
            p.slots.push(s);
            p.gens.push(0);
            p.free.insert(0, i);
        }
    }

    /// Number of slot files (the next new one is named by this number).
    pub fn slot_count(&self) -> usize {
        self.pool.lock().slots.len()
    }

    /// Number of unused slot files.
    pub fn free_slots(&self) -> usize {
        self.pool.lock().free.len()
    }

    /// Release every slot and journal handle; later calls fail with `PreviousIo`.
    pub fn close_slots(&self) {
        let mut p = self.pool.lock();
        p.failed.get_or_insert_with(|| "the storage was closed".to_string());
        for s in p.slots.iter().chain(p.journals.iter()) {
            s.close();
        }
    }

    /// Number of files in the namespace.
    pub fn file_count(&self) -> usize {
        self.pool.lock().tree.values().filter(|e| matches!(e, Entry::File(_))).count()
    }
}

struct PoolFile {
    pool: Arc<Mutex<Pool>>,
    slot: u32,
    gen: u64,
    path: String,
    writable: bool,
}

impl fmt::Debug for PoolFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolFile({} in slot {})", self.path, self.slot)
    }
}

impl PoolFile {
    fn with<T>(&self, op: &'static str, f: impl FnOnce(&dyn Slot) -> StorageResult<T>) -> StorageResult<T> {
        let p = self.pool.lock();
        p.check_ok(op, &self.path)?;
        if p.gens[self.slot as usize] != self.gen {
            return Err(err(op, &self.path, StorageErrorKind::NotFound, "the file was removed"));
        }
        f(&*p.slots[self.slot as usize])
    }

    fn writable(&self, op: &'static str) -> StorageResult<()> {
        if self.writable {
            Ok(())
        } else {
            Err(err(op, &self.path, StorageErrorKind::Unsupported, "file opened read-only"))
        }
    }
}

impl StorageFile for PoolFile {
    fn len(&self) -> StorageResult<u64> {
        self.with("len", |s| s.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        self.with("read", |s| {
            let len = s.len()?;
            if offset.checked_add(buf.len() as u64).is_none_or(|e| e > len) {
                return Err(err("read", &self.path, StorageErrorKind::UnexpectedEof, "read past end of file"));
            }
            s.read_at(offset, buf)
        })
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        self.writable("write")?;
        if offset.checked_add(data.len() as u64).is_none() {
            return Err(err("write", &self.path, StorageErrorKind::InvalidPath, "offset overflow"));
        }
        self.with("write", |s| s.write_at(offset, data))
    }

    fn set_len(&self, len: u64) -> StorageResult<()> {
        self.writable("set_len")?;
        self.with("set_len", |s| s.truncate(len))
    }

    fn sync(&self) -> StorageResult<()> {
        self.with("sync", |s| s.flush())
    }
}

impl Storage for PoolStorage {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
        let k = key(path)?;
        if k.is_empty() {
            return Err(err("open", path, StorageErrorKind::IsADirectory, "root is a directory"));
        }
        let mut p = self.pool.lock();
        p.check_ok("open", path)?;
        let slot = match (p.tree.get(&k).copied(), mode) {
            (Some(Entry::Dir), _) => return Err(err("open", path, StorageErrorKind::IsADirectory, "is a directory")),
            (Some(Entry::File(_)), OpenMode::CreateNew) => {
                return Err(err("open", path, StorageErrorKind::AlreadyExists, "file exists"))
            }
            (Some(Entry::File(s)), _) => s,
            (None, OpenMode::Read | OpenMode::ReadWrite) => {
                return Err(err("open", path, StorageErrorKind::NotFound, "no such file"))
            }
            (None, OpenMode::Create | OpenMode::CreateNew) => {
                p.check_parent("open", &k)?;
                let s = p.take_slot(path)?;
                if let Err(e) = p.log(Op::Create(s, k.clone())) {
                    p.free.push(s);
                    return Err(e);
                }
                s
            }
        };
        let gen = p.gens[slot as usize];
        Ok(Arc::new(PoolFile { pool: self.pool.clone(), slot, gen, path: k, writable: mode.writable() }))
    }

    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>> {
        let k = key(path)?;
        let p = self.pool.lock();
        p.check_ok("list", path)?;
        if !k.is_empty() {
            match p.tree.get(&k) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(err("list", path, StorageErrorKind::NotADirectory, "is a file")),
                None => return Err(err("list", path, StorageErrorKind::NotFound, "no such directory")),
            }
        }
        let prefix = if k.is_empty() { String::new() } else { format!("{k}/") };
        let mut out = Vec::new();
        for (name, e) in p.tree.range(prefix.clone()..) {
            let Some(rest) = name.strip_prefix(&prefix) else { break };
            if rest.contains('/') {
                continue;
            }
            let kind = match e {
                Entry::Dir => EntryKind::Dir,
                Entry::File(_) => EntryKind::File,
            };
            out.push(DirEntry { name: rest.to_string(), kind });
        }
        Ok(out)
    }

    fn create_dir_all(&self, path: &str) -> StorageResult<()> {
        let comps = components(path)?;
        let mut p = self.pool.lock();
        p.check_ok("create_dir", path)?;
        let mut cur = String::new();
        let mut missing = false;
        for c in &comps {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            match p.tree.get(&cur) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => {
                    return Err(err("create_dir", path, StorageErrorKind::NotADirectory, "a file is in the way"))
                }
                None => missing = true,
            }
        }
        if missing {
            p.log(Op::Mkdir(comps.join("/")))?;
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> StorageResult<()> {
        let (kf, kt) = (key(from)?, key(to)?);
        if kf.is_empty() || kt.is_empty() {
            return Err(err("rename", from, StorageErrorKind::InvalidPath, "cannot rename the root"));
        }
        let mut p = self.pool.lock();
        p.check_ok("rename", from)?;
        let node = *p.tree.get(&kf).ok_or_else(|| err("rename", from, StorageErrorKind::NotFound, "no such entry"))?;
        p.check_parent("rename", &kt)?;
        match (node, p.tree.get(&kt)) {
            (_, None) => {}
            (Entry::File(_), Some(Entry::File(_))) => {}
            (Entry::File(_), Some(Entry::Dir)) => {
                return Err(err("rename", to, StorageErrorKind::IsADirectory, "target is a directory"))
            }
            (Entry::Dir, Some(_)) => return Err(err("rename", to, StorageErrorKind::AlreadyExists, "target exists")),
        }
        if kf == kt {
            return Ok(());
        }
        if node == Entry::Dir && kt.starts_with(&format!("{kf}/")) {
            return Err(err("rename", to, StorageErrorKind::InvalidPath, "cannot move a directory into itself"));
        }
        p.log(Op::Rename(kf, kt))
    }

    fn remove_file(&self, path: &str) -> StorageResult<()> {
        let k = key(path)?;
        let mut p = self.pool.lock();
        p.check_ok("remove_file", path)?;
        match p.tree.get(&k) {
            Some(Entry::File(_)) => p.log(Op::Remove(k)),
            Some(Entry::Dir) => Err(err("remove_file", path, StorageErrorKind::IsADirectory, "is a directory")),
            None => Err(err("remove_file", path, StorageErrorKind::NotFound, "no such file")),
        }
    }

    fn remove_dir_all(&self, path: &str) -> StorageResult<()> {
        let k = key(path)?;
        let mut p = self.pool.lock();
        p.check_ok("remove_dir", path)?;
        if k.is_empty() {
            let top: Vec<String> = p.tree.keys().filter(|x| !x.contains('/')).cloned().collect();
            for t in top {
                p.log(Op::Remove(t))?;
            }
            return Ok(());
        }
        match p.tree.get(&k) {
            Some(Entry::Dir) => p.log(Op::Remove(k)),
            Some(Entry::File(_)) => Err(err("remove_dir", path, StorageErrorKind::NotADirectory, "is a file")),
            None => Err(err("remove_dir", path, StorageErrorKind::NotFound, "no such directory")),
        }
    }

    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>> {
        let k = key(path)?;
        if k.is_empty() {
            return Ok(Some(EntryKind::Dir));
        }
        Ok(self.pool.lock().tree.get(&k).map(|e| match e {
            Entry::Dir => EntryKind::Dir,
            Entry::File(_) => EntryKind::File,
        }))
    }

    fn sync_dir(&self, path: &str) -> StorageResult<()> {
        // every namespace change was flushed to the journal before it took effect
        key(path)?;
        self.pool.lock().check_ok("sync_dir", path)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { sparse_files: false, durable_sync: true, persistent: true }
    }
}

/// An in-memory [`Slot`] (tests, and the reference for the OPFS slots).
#[derive(Debug, Default, Clone)]
pub struct MemSlot(Arc<Mutex<Vec<u8>>>);

impl MemSlot {
    pub fn new() -> MemSlot {
        MemSlot::default()
    }
    /// The bytes as stored (for crash simulations).
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().clone()
    }
    pub fn from_bytes(b: Vec<u8>) -> MemSlot {
        MemSlot(Arc::new(Mutex::new(b)))
    }
}

impl Slot for MemSlot {
    fn len(&self) -> StorageResult<u64> {
        Ok(self.0.lock().len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        let d = self.0.lock();
        let end = offset as usize + buf.len();
        if end > d.len() {
            return Err(err("read", "slot", StorageErrorKind::UnexpectedEof, "past the end"));
        }
        buf.copy_from_slice(&d[offset as usize..end]);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        let mut d = self.0.lock();
        let end = offset as usize + data.len();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn truncate(&self, len: u64) -> StorageResult<()> {
        self.0.lock().resize(len as usize, 0);
        Ok(())
    }
    fn flush(&self) -> StorageResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(slots: usize) -> (PoolStorage, [MemSlot; 2], Vec<MemSlot>) {
        let j = [MemSlot::new(), MemSlot::new()];
        let s: Vec<MemSlot> = (0..slots).map(|_| MemSlot::new()).collect();
        let p = PoolStorage::open(
            [Box::new(j[0].clone()), Box::new(j[1].clone())],
            s.iter().map(|x| Box::new(x.clone()) as Box<dyn Slot>).collect(),
        )
        .unwrap();
        (p, j, s)
    }

    /// Reopen from copies of the bytes (a crash: nothing in memory survives).
    fn reopen(j: &[MemSlot; 2], s: &[MemSlot]) -> PoolStorage {
        PoolStorage::open(
            [Box::new(MemSlot::from_bytes(j[0].bytes())), Box::new(MemSlot::from_bytes(j[1].bytes()))],
            s.iter().map(|x| Box::new(MemSlot::from_bytes(x.bytes())) as Box<dyn Slot>).collect(),
        )
        .unwrap()
    }

    fn dump(st: &PoolStorage) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(d) = stack.pop() {
            for e in st.list_dir(&d).unwrap() {
                let p = if d.is_empty() { e.name.clone() } else { format!("{d}/{}", e.name) };
                match e.kind {
                    EntryKind::Dir => {
                        out.push((p.clone(), None));
                        stack.push(p);
                    }
                    EntryKind::File => out.push((p.clone(), Some(st.read_all(&p).unwrap().to_vec()))),
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn pool_storage_conforms() {
        let passed = super::super::conformance::run_all(|| fresh(400).0).unwrap();
        assert_eq!(passed.len(), super::super::conformance::checks::<PoolStorage>().len());
    }

    #[test]
    fn reopens_after_every_operation_with_compaction_and_a_torn_tail() {
        let (st, j, s) = fresh(64);
        st.pool.lock().compact_at = 8192;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let names = ["a/x", "a/y", "b/z", "a/c/w", "top"];
        let mut compactions = 0;
        let mut last_gen = 1;
        for round in 0..3000 {
            let n = names[rnd(5) as usize];
            let _ = st.create_dir_all(crate::storage::parent(n));
            match rnd(6) {
                0 | 1 => {
                    if let Ok(f) = st.open(n, OpenMode::Create) {
                        f.write_at(rnd(100), &[round as u8; 37]).unwrap();
                    }
                }
                2 => {
                    let _ = st.remove_file(n);
                }
                3 => {
                    let _ = st.rename(n, names[rnd(5) as usize]);
                }
                4 => {
                    let _ = st.rename("a", "tmp").and_then(|_| st.rename("tmp", "a"));
                }
                _ => {
                    let _ = st.remove_dir_all("a/c");
                }
            }
            let gen = st.pool.lock().generation;
            if gen != last_gen {
                compactions += 1;
                last_gen = gen;
            }
            if round % 97 == 0 {
                assert_eq!(dump(&reopen(&j, &s)), dump(&st), "round {round}");
            }
        }
        assert!(compactions > 0, "the journal never compacted");
        // a torn last record is dropped: the state before it comes back
        let before = dump(&st);
        st.create_dir_all("late/dir").unwrap();
        let active = st.pool.lock().active;
        let jb = [MemSlot::from_bytes(j[0].bytes()), MemSlot::from_bytes(j[1].bytes())];
        let len = jb[active].bytes().len();
        jb[active].truncate(len as u64 - 3).unwrap();
        let back = reopen(&jb, &s);
        assert_eq!(dump(&back), before);
        // and the journal keeps working after the cut
        back.create_dir_all("after").unwrap();
        assert!(back.exists("after").unwrap());
    }

    #[test]
    fn stale_handles_and_exhaustion_fail_cleanly() {
        let (st, _, _) = fresh(2);
        let f = st.open("f", OpenMode::Create).unwrap();
        f.write_at(0, b"abc").unwrap();
        st.remove_file("f").unwrap();
        let g = st.open("g", OpenMode::Create).unwrap();
        g.write_at(0, b"new").unwrap();
        assert_eq!(f.write_at(0, b"zzz").unwrap_err().kind, StorageErrorKind::NotFound);
        assert_eq!(&st.read_all("g").unwrap()[..], b"new");
        st.open("h", OpenMode::Create).unwrap();
        let e = st.open("i", OpenMode::Create).unwrap_err();
        assert_eq!(e.kind, StorageErrorKind::StorageFull);
        assert!(!st.exists("i").unwrap());
        st.add_slots(vec![Box::new(MemSlot::new())]);
        st.open("i", OpenMode::Create).unwrap();
        assert_eq!(st.free_slots(), 0);
    }
}
