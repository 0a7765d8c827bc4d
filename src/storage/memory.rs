//! The reference backend: everything in RAM, files stored as sparse 4 KiB pages.
//!
//! Pages that were never written (or were written with zeros only by `set_len` growth) are not
//! stored, so a 32 MiB preallocated chunk with one vector costs one page. Open handles point at
//! the file node, so they keep working across renames, like POSIX. `sync` is a no-op: nothing
//! here outlives the process.
//!
//! **Change tracking** ([`MemoryStorage::tracking`], [`MemoryStorage::from_image`]): the same
//! backend can record which pages changed since the last [`MemoryStorage::take_changes`], so a
//! persistent store that cannot be written synchronously (IndexedDB) keeps the whole shard here
//! and commits, at the edges, the namespace plus the changed pages of [`IMAGE_PAGE`] bytes. A
//! file keeps its numeric id across renames; removed files are reported by id.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{components, Capabilities, DirEntry, EntryKind, OpenMode, Storage, StorageFile, StorageResult};
use crate::error::{StorageError, StorageErrorKind};

const PAGE: u64 = 4096;
/// Size of a page in a committed image ([`Changes`]): 16 memory pages.
pub const IMAGE_PAGE: u64 = 64 * 1024;
const PAGES_PER_IMAGE_PAGE: u64 = IMAGE_PAGE / PAGE;

#[derive(Default)]
struct SparseData {
    len: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
    /// Image pages changed since the last `take_changes` (`None`: not tracking).
    dirty: Option<BTreeSet<u64>>,
}

impl SparseData {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut out = 0usize;
        while out < buf.len() {
            let page = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = ((PAGE as usize) - in_page).min(buf.len() - out);
            match self.pages.get(&page) {
                Some(p) => buf[out..out + n].copy_from_slice(&p[in_page..in_page + n]),
                None => buf[out..out + n].fill(0),
            }
            out += n;
            pos += n as u64;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut pos = offset;
        let mut inp = 0usize;
        while inp < data.len() {
            let page = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = ((PAGE as usize) - in_page).min(data.len() - inp);
            let chunk = &data[inp..inp + n];
            if let Some(d) = &mut self.dirty {
                d.insert(page / PAGES_PER_IMAGE_PAGE);
            }
            match self.pages.get_mut(&page) {
                Some(p) => p[in_page..in_page + n].copy_from_slice(chunk),
                None if chunk.iter().all(|&b| b == 0) => {}
                None => {
                    let mut p = vec![0u8; PAGE as usize].into_boxed_slice();
                    p[in_page..in_page + n].copy_from_slice(chunk);
                    self.pages.insert(page, p);
                }
            }
            inp += n;
            pos += n as u64;
        }
        self.len = self.len.max(offset + data.len() as u64);
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            let first_gone = len.div_ceil(PAGE);
            let gone = self.pages.split_off(&first_gone);
            if let Some(d) = &mut self.dirty {
                d.extend(gone.keys().map(|p| p / PAGES_PER_IMAGE_PAGE));
                d.insert(len / PAGE / PAGES_PER_IMAGE_PAGE);
            }
            // zero the tail of the last kept page so later growth reads zeros
            if len % PAGE != 0 {
                if let Some(p) = self.pages.get_mut(&(len / PAGE)) {
                    p[(len % PAGE) as usize..].fill(0);
                }
            }
        }
        self.len = len;
    }
}

struct MemFile {
    /// Stable id (kept across renames), the key of the file's pages in an image.
    id: u64,
    data: RwLock<SparseData>,
}

#[derive(Clone)]
enum Node {
    File(Arc<MemFile>),
    Dir,
}

/// In-memory [`Storage`]. Cloning shares the same namespace.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    tree: Arc<Mutex<BTreeMap<String, Node>>>,
    track: Arc<Mutex<Option<Tracker>>>,
}

/// Tracking state: the next file id and the ids of the files the last image holds.
#[derive(Debug, Default, Clone)]
struct Tracker {
    next_id: u64,
    committed: BTreeSet<u64>,
}

/// One entry of an image's namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ImageEntry {
    Dir,
    File { id: u64, len: u64 },
}

/// What changed since the last [`MemoryStorage::take_changes`]: enough to bring a persisted
/// image up to date in one atomic commit (write the namespace, put or delete the pages, drop
/// every page of the removed files).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The whole namespace, sorted by path.
    pub namespace: Vec<(String, ImageEntry)>,
    /// Changed pages `(file id, page index, bytes)`; `None` bytes = the page holds only zeros
    /// now and its record goes. Bytes are [`IMAGE_PAGE`] long.
    pub pages: Vec<(u64, u64, Option<Vec<u8>>)>,
    /// Files of the previous image that no longer exist: all their pages go.
    pub removed_files: Vec<u64>,
    /// The id the next new file gets (persist it with the namespace).
    pub next_id: u64,
}

impl Changes {
    /// Whether committing would change nothing.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty() && self.removed_files.is_empty()
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never dump the data.
        write!(f, "MemoryStorage({} entries)", self.tree.lock().len())
    }
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes actually held in pages (for tests of sparseness and for benchmarks).
    pub fn stored_bytes(&self) -> u64 {
        self.tree
            .lock()
            .values()
            .map(|n| match n {
                Node::File(f) => f.data.read().pages.len() as u64 * PAGE,
                Node::Dir => 0,
            })
            .sum()
    }

    /// A deep copy of the namespace: the "disk image" for crash tests.
    pub fn deep_clone(&self) -> MemoryStorage {
        let tree = self.tree.lock();
        let copy = tree
            .iter()
            .map(|(k, v)| {
                let n = match v {
                    Node::Dir => Node::Dir,
                    Node::File(f) => {
                        let d = f.data.read();
                        Node::File(Arc::new(MemFile {
                            id: f.id,
                            data: RwLock::new(SparseData {
                                len: d.len,
                                pages: d.pages.clone(),
                                dirty: d.dirty.clone(),
                            }),
                        }))
                    }
                };
                (k.clone(), n)
            })
            .collect();
        MemoryStorage { tree: Arc::new(Mutex::new(copy)), track: Arc::new(Mutex::new(self.track.lock().clone())) }
    }

    /// An empty storage that tracks changes (see the module docs).
    pub fn tracking() -> Self {
        let s = Self::default();
        *s.track.lock() = Some(Tracker::default());
        s
    }

    /// A tracking storage holding a persisted image: its namespace, its pages
    /// `(file id, page index, bytes of at most IMAGE_PAGE)` and its next file id. Nothing is
    /// dirty afterwards. Fails on an inconsistent image (a file whose parent is missing, a
    /// page beyond its file's length, duplicate ids).
    pub fn from_image(
        namespace: Vec<(String, ImageEntry)>,
        pages: impl IntoIterator<Item = (u64, u64, Vec<u8>)>,
        next_id: u64,
    ) -> StorageResult<Self> {
        let bad = |m: String| err("open", "", StorageErrorKind::Other, &m);
        let mut tree = BTreeMap::new();
        let mut by_id: BTreeMap<u64, Arc<MemFile>> = BTreeMap::new();
        for (path, entry) in namespace {
            let k = key(&path)?;
            if k.is_empty() || tree.contains_key(&k) {
                return Err(bad(format!("image entry `{path}` is empty or repeated")));
            }
            if let Some(p) = parent_key(&k) {
                if !matches!(tree.get(p), Some(Node::Dir)) {
                    return Err(bad(format!("image entry `{path}` has no parent directory")));
                }
            }
            let node = match entry {
                ImageEntry::Dir => Node::Dir,
                ImageEntry::File { id, len } => {
                    if id >= next_id || by_id.contains_key(&id) {
                        return Err(bad(format!("image file id {id} of `{path}` is repeated or not below {next_id}")));
                    }
                    let f = Arc::new(MemFile {
                        id,
                        data: RwLock::new(SparseData { len, pages: BTreeMap::new(), dirty: Some(BTreeSet::new()) }),
                    });
                    by_id.insert(id, f.clone());
                    Node::File(f)
                }
            };
            tree.insert(k, node);
        }
        for (id, page, bytes) in pages {
            let Some(f) = by_id.get(&id) else { continue }; // pages of a file removed before a crash
            let mut d = f.data.write();
            if bytes.len() as u64 > IMAGE_PAGE || page.checked_mul(IMAGE_PAGE).is_none_or(|o| o >= d.len.max(1)) {
                return Err(bad(format!("image page {page} of file {id} does not fit its length {}", d.len)));
            }
            let len = d.len;
            let at = page * IMAGE_PAGE;
            let keep = (len - at).min(bytes.len() as u64) as usize;
            d.write(at, &bytes[..keep]);
            d.len = len;
            d.dirty = Some(BTreeSet::new());
        }
        let committed = by_id.keys().copied().collect();
        Ok(MemoryStorage {
            tree: Arc::new(Mutex::new(tree)),
            track: Arc::new(Mutex::new(Some(Tracker { next_id, committed }))),
        })
    }

    /// The changes since the last call (or since [`from_image`](Self::from_image) /
    /// [`tracking`](Self::tracking)), and forget them. `None` if this storage does not track.
    pub fn take_changes(&self) -> Option<Changes> {
        let tree = self.tree.lock();
        let mut track = self.track.lock();
        let t = track.as_mut()?;
        let mut out = Changes { next_id: t.next_id, ..Default::default() };
        let mut live = BTreeSet::new();
        for (path, node) in tree.iter() {
            match node {
                Node::Dir => out.namespace.push((path.clone(), ImageEntry::Dir)),
                Node::File(f) => {
                    let mut d = f.data.write();
                    out.namespace.push((path.clone(), ImageEntry::File { id: f.id, len: d.len }));
                    if !live.insert(f.id) {
                        continue; // hard links do not exist; defensive
                    }
                    let dirty = std::mem::take(d.dirty.get_or_insert_with(BTreeSet::new));
                    for ip in dirty {
                        let first = ip * PAGES_PER_IMAGE_PAGE;
                        let present: Vec<(u64, &Box<[u8]>)> =
                            d.pages.range(first..first + PAGES_PER_IMAGE_PAGE).map(|(k, v)| (*k, v)).collect();
                        if present.is_empty() || ip * IMAGE_PAGE >= d.len {
                            out.pages.push((f.id, ip, None));
                            continue;
                        }
                        let mut buf = vec![0u8; IMAGE_PAGE as usize];
                        for (k, v) in present {
                            let at = ((k - first) * PAGE) as usize;
                            buf[at..at + PAGE as usize].copy_from_slice(v);
                        }
                        out.pages.push((f.id, ip, Some(buf)));
                    }
                }
            }
        }
        out.removed_files = t.committed.difference(&live).copied().collect();
        t.committed = live;
        Some(out)
    }
}

fn key(path: &str) -> StorageResult<String> {
    Ok(components(path)?.join("/"))
}

fn parent_key(k: &str) -> Option<&str> {
    k.rfind('/').map(|i| &k[..i])
}

fn err(op: &'static str, path: &str, kind: StorageErrorKind, msg: &str) -> StorageError {
    StorageError::new(op, path, kind, msg)
}

fn check_parent(tree: &BTreeMap<String, Node>, op: &'static str, k: &str) -> StorageResult<()> {
    if let Some(p) = parent_key(k) {
        match tree.get(p) {
            Some(Node::Dir) => {}
            Some(Node::File(_)) => return Err(err(op, k, StorageErrorKind::NotADirectory, "parent is a file")),
            None => return Err(err(op, k, StorageErrorKind::NotFound, "parent directory missing")),
        }
    }
    Ok(())
}

#[derive(Debug)]
struct MemHandle {
    file: Arc<MemFile>,
    path: String,
    writable: bool,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemFile(len {})", self.data.read().len)
    }
}

impl MemHandle {
    fn check_writable(&self, op: &'static str) -> StorageResult<()> {
        if self.writable {
            Ok(())
        } else {
            Err(err(op, &self.path, StorageErrorKind::Unsupported, "file opened read-only"))
        }
    }
}

impl StorageFile for MemHandle {
    fn len(&self) -> StorageResult<u64> {
        Ok(self.file.data.read().len)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        let d = self.file.data.read();
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > d.len) {
            return Err(err("read", &self.path, StorageErrorKind::UnexpectedEof, "read past end of file"));
        }
        d.read(offset, buf);
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> StorageResult<()> {
        self.check_writable("write")?;
        if offset.checked_add(data.len() as u64).is_none() {
            return Err(err("write", &self.path, StorageErrorKind::InvalidPath, "offset overflow"));
        }
        self.file.data.write().write(offset, data);
        Ok(())
    }

    fn set_len(&self, len: u64) -> StorageResult<()> {
        self.check_writable("set_len")?;
        self.file.data.write().set_len(len);
        Ok(())
    }

    fn sync(&self) -> StorageResult<()> {
        Ok(())
    }
}

impl Storage for MemoryStorage {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
        let k = key(path)?;
        if k.is_empty() {
            return Err(err("open", path, StorageErrorKind::IsADirectory, "root is a directory"));
        }
        let mut tree = self.tree.lock();
        let file = match (tree.get(&k), mode) {
            (Some(Node::Dir), _) => return Err(err("open", path, StorageErrorKind::IsADirectory, "is a directory")),
            (Some(Node::File(_)), OpenMode::CreateNew) => {
                return Err(err("open", path, StorageErrorKind::AlreadyExists, "file exists"))
            }
            (Some(Node::File(f)), _) => f.clone(),
            (None, OpenMode::Read | OpenMode::ReadWrite) => {
                return Err(err("open", path, StorageErrorKind::NotFound, "no such file"))
            }
            (None, OpenMode::Create | OpenMode::CreateNew) => {
                check_parent(&tree, "open", &k)?;
                let mut track = self.track.lock();
                let (id, dirty) = match track.as_mut() {
                    Some(t) => {
                        t.next_id += 1;
                        (t.next_id - 1, Some(BTreeSet::new()))
                    }
                    None => (0, None),
                };
                let f = Arc::new(MemFile { id, data: RwLock::new(SparseData { dirty, ..SparseData::default() }) });
                tree.insert(k.clone(), Node::File(f.clone()));
                f
            }
        };
        Ok(Arc::new(MemHandle { file, path: k, writable: mode.writable() }))
    }

    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>> {
        let k = key(path)?;
        let tree = self.tree.lock();
        if !k.is_empty() {
            match tree.get(&k) {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => return Err(err("list", path, StorageErrorKind::NotADirectory, "is a file")),
                None => return Err(err("list", path, StorageErrorKind::NotFound, "no such directory")),
            }
        }
        let prefix = if k.is_empty() { String::new() } else { format!("{k}/") };
        let mut out = Vec::new();
        for (name, node) in tree.range(prefix.clone()..) {
            let Some(rest) = name.strip_prefix(&prefix) else { break };
            if rest.contains('/') {
                continue;
            }
            let kind = match node {
                Node::Dir => EntryKind::Dir,
                Node::File(_) => EntryKind::File,
            };
            out.push(DirEntry { name: rest.to_string(), kind });
        }
        Ok(out)
    }

    fn create_dir_all(&self, path: &str) -> StorageResult<()> {
        let comps = components(path)?;
        let mut tree = self.tree.lock();
        let mut cur = String::new();
        for c in comps {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            match tree.get(&cur) {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => {
                    return Err(err("create_dir", path, StorageErrorKind::NotADirectory, "a file is in the way"))
                }
                None => {
                    tree.insert(cur.clone(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> StorageResult<()> {
        let (kf, kt) = (key(from)?, key(to)?);
        if kf.is_empty() || kt.is_empty() {
            return Err(err("rename", from, StorageErrorKind::InvalidPath, "cannot rename the root"));
        }
        let mut tree = self.tree.lock();
        let node =
            tree.get(&kf).cloned().ok_or_else(|| err("rename", from, StorageErrorKind::NotFound, "no such entry"))?;
        check_parent(&tree, "rename", &kt)?;
        match (&node, tree.get(&kt)) {
            (_, None) => {}
            (Node::File(_), Some(Node::File(_))) => {}
            (Node::File(_), Some(Node::Dir)) => {
                return Err(err("rename", to, StorageErrorKind::IsADirectory, "target is a directory"))
            }
            (Node::Dir, Some(_)) => return Err(err("rename", to, StorageErrorKind::AlreadyExists, "target exists")),
        }
        if kf == kt {
            return Ok(());
        }
        if matches!(node, Node::Dir) && kt.starts_with(&format!("{kf}/")) {
            return Err(err("rename", to, StorageErrorKind::InvalidPath, "cannot move a directory into itself"));
        }
        let prefix = format!("{kf}/");
        let moved: Vec<(String, Node)> = tree
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tree.remove(&kf);
        tree.insert(kt.clone(), node);
        for (k, v) in moved {
            tree.remove(&k);
            tree.insert(format!("{kt}/{}", &k[prefix.len()..]), v);
        }
        Ok(())
    }

    fn remove_file(&self, path: &str) -> StorageResult<()> {
        let k = key(path)?;
        let mut tree = self.tree.lock();
        match tree.get(&k) {
            Some(Node::File(_)) => {
                tree.remove(&k);
                Ok(())
            }
            Some(Node::Dir) => Err(err("remove_file", path, StorageErrorKind::IsADirectory, "is a directory")),
            None => Err(err("remove_file", path, StorageErrorKind::NotFound, "no such file")),
        }
    }

    fn remove_dir_all(&self, path: &str) -> StorageResult<()> {
        let k = key(path)?;
        let mut tree = self.tree.lock();
        if k.is_empty() {
            tree.clear();
            return Ok(());
        }
        match tree.get(&k) {
            Some(Node::Dir) => {}
            Some(Node::File(_)) => return Err(err("remove_dir", path, StorageErrorKind::NotADirectory, "is a file")),
            None => return Err(err("remove_dir", path, StorageErrorKind::NotFound, "no such directory")),
        }
        let prefix = format!("{k}/");
        let gone: Vec<String> =
            tree.range(prefix.clone()..).take_while(|(x, _)| x.starts_with(&prefix)).map(|(x, _)| x.clone()).collect();
        for g in gone {
            tree.remove(&g);
        }
        tree.remove(&k);
        Ok(())
    }

    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>> {
        let k = key(path)?;
        if k.is_empty() {
            return Ok(Some(EntryKind::Dir));
        }
        Ok(self.tree.lock().get(&k).map(|n| match n {
            Node::Dir => EntryKind::Dir,
            Node::File(_) => EntryKind::File,
        }))
    }

    fn sync_dir(&self, path: &str) -> StorageResult<()> {
        key(path)?;
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { sparse_files: true, durable_sync: false, persistent: false }
    }
}

#[cfg(test)]
mod tracking_tests {
    use super::*;

    /// A persisted image as a key-value store would hold it.
    #[derive(Default)]
    struct Kv {
        namespace: Vec<(String, ImageEntry)>,
        pages: BTreeMap<(u64, u64), Vec<u8>>,
        next_id: u64,
    }

    impl Kv {
        fn commit(&mut self, c: Changes) {
            self.namespace = c.namespace;
            self.next_id = c.next_id;
            for (id, page, bytes) in c.pages {
                match bytes {
                    Some(b) => {
                        self.pages.insert((id, page), b);
                    }
                    None => {
                        self.pages.remove(&(id, page));
                    }
                }
            }
            for id in c.removed_files {
                self.pages.retain(|(f, _), _| *f != id);
            }
        }
        fn open(&self) -> MemoryStorage {
            MemoryStorage::from_image(
                self.namespace.clone(),
                self.pages.iter().map(|((f, p), b)| (*f, *p, b.clone())),
                self.next_id,
            )
            .unwrap()
        }
    }

    fn snapshot(st: &MemoryStorage) -> Vec<(String, Option<Vec<u8>>)> {
        let tree = st.tree.lock();
        tree.iter()
            .map(|(k, n)| match n {
                Node::Dir => (k.clone(), None),
                Node::File(f) => {
                    let d = f.data.read();
                    let mut b = vec![0u8; d.len as usize];
                    d.read(0, &mut b);
                    (k.clone(), Some(b))
                }
            })
            .collect()
    }

    #[test]
    fn committed_images_reopen_identically() {
        let mut kv = Kv::default();
        let mut st = MemoryStorage::tracking();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        st.create_dir_all("a/b").unwrap();
        let names = ["a/f1", "a/b/f2", "a/f3", "c/f4"];
        for round in 0..400 {
            let name = names[rnd(4) as usize];
            match rnd(8) {
                0..=3 => {
                    if let Some(p) = crate::storage::parent(name).split('/').next() {
                        let _ = st.create_dir_all(crate::storage::parent(name)).map(|_| p);
                    }
                    let f = st.open(name, OpenMode::Create).unwrap();
                    let at = rnd(300_000);
                    let len = 1 + rnd(90_000) as usize;
                    let byte = (round % 250) as u8 + 1;
                    f.write_at(at, &vec![byte; len]).unwrap();
                }
                4 => {
                    if let Ok(f) = st.open(name, OpenMode::ReadWrite) {
                        f.set_len(rnd(200_000)).unwrap();
                    }
                }
                5 => {
                    let _ = st.remove_file(name);
                }
                6 => {
                    let to = names[rnd(4) as usize];
                    let _ = st.rename(name, to);
                }
                _ => {
                    if rnd(3) == 0 {
                        let _ = st.rename("a/b", "c/b");
                        let _ = st.rename("c/b", "a/b");
                    }
                }
            }
            if rnd(5) == 0 {
                kv.commit(st.take_changes().unwrap());
                let reopened = kv.open();
                assert_eq!(snapshot(&reopened), snapshot(&st), "round {round}");
                // sometimes continue from the reopened image (a restart)
                if rnd(3) == 0 {
                    st = reopened;
                }
            }
        }
        kv.commit(st.take_changes().unwrap());
        assert_eq!(snapshot(&kv.open()), snapshot(&st));
        // nothing changed: an empty change set
        assert!(st.take_changes().unwrap().is_empty());
        assert!(MemoryStorage::new().take_changes().is_none());
    }
}
