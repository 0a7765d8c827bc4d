//! The reference backend: everything in RAM, files stored as sparse 4 KiB pages.
//!
//! Pages that were never written (or were written with zeros only by `set_len` growth) are not
//! stored, so a 32 MiB preallocated chunk with one vector costs one page. Open handles point at
//! the file node, so they keep working across renames, like POSIX. `sync` is a no-op: nothing
//! here outlives the process.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{components, Capabilities, DirEntry, EntryKind, OpenMode, Storage, StorageFile, StorageResult};
use crate::error::{StorageError, StorageErrorKind};

const PAGE: u64 = 4096;

#[derive(Default)]
struct SparseData {
    len: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
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
            self.pages.split_off(&first_gone);
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
                            data: RwLock::new(SparseData { len: d.len, pages: d.pages.clone() }),
                        }))
                    }
                };
                (k.clone(), n)
            })
            .collect();
        MemoryStorage { tree: Arc::new(Mutex::new(copy)) }
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
                let f = Arc::new(MemFile { data: RwLock::new(SparseData::default()) });
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
