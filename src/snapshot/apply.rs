//! Applying a full or partial shard snapshot atomically (§12.6 merge plan).
//!
//! 1. **Stage.** The archive is streamed into `<shard>/.snapshot-staging-<uuid>/` and restored
//!    there (§12.5). Nothing outside the staging directory is touched, so the old shard keeps
//!    serving reads between pushes.
//! 2. **Check.** The staged segment manifests (`segment_manifest.json`, present in every
//!    segment of a partial snapshot and in none of a full one) are parsed and validated; every
//!    staged segment file of a partial snapshot must be listed in its manifest; the SHA-256 is
//!    checked when one was given. The merge plan is computed against the local manifest, and the
//!    shard that *would* result is loaded through [`MergedView`], a read-only view that resolves
//!    each path to the staged or the local file. A snapshot whose result does not load is
//!    rejected here, with the old shard untouched.
//! 3. **Commit.** The plan is written with `write_atomic` to `<shard>/.snapshot-apply.json`.
//!    That rename is the commit point.
//! 4. **Roll forward.** The plan's steps are idempotent (delete if present, move if the source
//!    is still there), so they are simply re-run by [`recover`] when a crash interrupts them;
//!    every shard load calls it. Without a plan file, a leftover staging directory is an
//!    uncommitted apply and is removed.
//!
//! Plan steps, in order (paths relative to the shard):
//! `delete_files` (local files the snapshot's manifest no longer lists, tracker journals),
//! `delete_dirs` (local segments the snapshot lacks), `move_files` (top-level files such as the
//! clocks), `replace_dirs` (`wal/`; for a full snapshot also `segments/`), `merge_dirs` (each
//! staged segment into its local directory: renamed whole when new, file by file otherwise).
//! Nothing a later step creates is ever removed by an earlier one, which is what makes re-running
//! the whole list safe.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FormatError, Result};
use crate::format::names;
use crate::storage::{
    join, Capabilities, DirEntry, EntryKind, OpenMode, Storage, StorageError, StorageErrorKind, StorageFile,
    StorageResult,
};

use super::manifest::{list_files_rec, SegmentManifest, SnapshotManifest, SEGMENT_MANIFEST_FILE};
use super::{Limits, SnapshotUnpacker, UnpackReport, TOP_LEVEL_FILES};

/// The commit record of an apply in progress.
pub const PLAN_FILE: &str = ".snapshot-apply.json";
/// Prefix of staging directories inside the shard.
pub const STAGING_PREFIX: &str = ".snapshot-staging-";

/// Full or partial snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// Replaces the shard.
    Full,
    /// Merged into the shard (§12.6).
    Partial,
}

/// Options of one apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// SHA-256 of the archive bytes as pushed (hex, as Qdrant publishes it); checked before
    /// anything is committed.
    pub sha256: Option<String>,
    /// Refuse a snapshot of the other kind.
    pub expect: Option<SnapshotKind>,
    pub limits: Limits,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub kind: SnapshotKind,
    pub unpack: UnpackReport,
    /// Segments that did not exist locally.
    pub segments_added: Vec<String>,
    /// Local segments the snapshot no longer has.
    pub segments_removed: Vec<String>,
    /// Segments updated in place (partial snapshots).
    pub segments_merged: Vec<String>,
    /// Segment files written from the archive.
    pub files_written: u64,
    /// Local files deleted because the snapshot no longer lists them.
    pub files_deleted: u64,
}

/// The commit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub staging: String,
    pub delete_files: Vec<String>,
    pub delete_dirs: Vec<String>,
    pub move_files: Vec<(String, String)>,
    pub replace_dirs: Vec<(String, String)>,
    pub merge_dirs: Vec<(String, String)>,
}

/// An apply being streamed. Feed it with [`push`](Self::push); the shard finishes it.
#[derive(Debug)]
pub struct SnapshotApply {
    storage: Arc<dyn Storage>,
    root: String,
    staging: String,
    unpacker: SnapshotUnpacker,
    options: ApplyOptions,
}

impl SnapshotApply {
    /// Start an apply into the shard at `root` (created if missing).
    pub fn begin(storage: Arc<dyn Storage>, root: &str, options: ApplyOptions) -> Result<SnapshotApply> {
        if !storage.is_dir(root)? {
            storage.create_dir_all(root)?;
        }
        let staging_name = format!("{STAGING_PREFIX}{}", crate::shard::new_uuid());
        let staging = join(root, &staging_name);
        let unpacker = SnapshotUnpacker::new(storage.clone(), &staging, options.limits)?;
        Ok(SnapshotApply { storage, root: root.to_string(), staging, unpacker, options })
    }

    /// The next bytes of the archive.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.unpacker.push(chunk)
    }

    /// Bytes pushed so far.
    pub fn archive_bytes(&self) -> u64 {
        self.unpacker.archive_bytes()
    }

    /// Bytes the apply holds in memory (bounded; see [`SnapshotUnpacker::buffered_bytes`]).
    pub fn buffered_bytes(&self) -> usize {
        self.unpacker.buffered_bytes()
    }

    /// Give up and remove the staging directory.
    pub fn abort(self) -> Result<()> {
        self.unpacker.abort()
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Finish unpacking and check the staged snapshot (steps 1–2 of the module docs).
    pub(crate) fn stage(self) -> Result<Staged> {
        let SnapshotApply { storage, root, staging, unpacker, options } = self;
        let staged = (|| {
            if let Some(want) = &options.sha256 {
                unpacker.verify_sha256(want)?;
            }
            let report = unpacker.finish()?;
            let manifest = read_staged_manifests(&*storage, &staging)?;
            let kind = if manifest.is_empty() { SnapshotKind::Full } else { SnapshotKind::Partial };
            if let Some(want) = options.expect {
                if want != kind {
                    return Err(Error::invalid(format!("expected a {want:?} snapshot, got a {kind:?} one")));
                }
            }
            Ok((report, manifest, kind))
        })();
        match staged {
            Ok((report, manifest, kind)) => Ok(Staged { storage, root, staging, kind, manifest, report }),
            Err(e) => {
                if storage.exists(&staging).unwrap_or(false) {
                    let _ = storage.remove_dir_all(&staging);
                }
                Err(e)
            }
        }
    }
}

/// A completely unpacked, checked, uncommitted snapshot.
#[derive(Debug)]
pub(crate) struct Staged {
    pub storage: Arc<dyn Storage>,
    pub root: String,
    pub staging: String,
    pub kind: SnapshotKind,
    /// The snapshot's manifest (empty for a full snapshot).
    pub manifest: SnapshotManifest,
    pub report: UnpackReport,
}

fn staging_rel(staging: &str, root: &str) -> String {
    if root.is_empty() {
        staging.to_string()
    } else {
        staging[root.len() + 1..].to_string()
    }
}

/// Read every `segments/<id>/segment_manifest.json` of the staged tree. Either every segment
/// has one (partial) or none has (full).
fn read_staged_manifests(st: &dyn Storage, staging: &str) -> Result<SnapshotManifest> {
    let seg_root = join(staging, names::SEGMENTS_DIR);
    let mut out = SnapshotManifest::new();
    let mut without = Vec::new();
    for e in st.list_dir(&seg_root)? {
        if e.kind != EntryKind::Dir {
            continue;
        }
        let dir = join(&seg_root, &e.name);
        let path = join(&dir, SEGMENT_MANIFEST_FILE);
        if !st.is_file(&path)? {
            without.push(e.name);
            continue;
        }
        let origin = format!("segments/{}/{SEGMENT_MANIFEST_FILE}", e.name);
        let bytes = st.read_all(&path)?;
        let m: SegmentManifest = serde_json::from_slice(&bytes)
            .map_err(|err| FormatError::corrupt(&origin, format!("not a segment manifest: {err}")))?;
        if m.segment_id != e.name {
            return Err(FormatError::corrupt(
                &origin,
                format!("the manifest names segment `{}`, not its own directory `{}`", m.segment_id, e.name),
            )
            .into());
        }
        m.validate(&origin)?;
        // Every file the archive carries for this segment must be one the manifest lists:
        // otherwise the merge could not tell which version it is.
        for f in list_files_rec(st, &dir)? {
            if matches!(f.as_str(), names::SEGMENT_STATE_FILE | names::VERSION_FILE | SEGMENT_MANIFEST_FILE) {
                continue;
            }
            if !m.file_versions.contains_key(&f) {
                return Err(FormatError::corrupt(
                    format!("segments/{}/{f}", e.name),
                    "file not listed in the segment's manifest",
                )
                .into());
            }
        }
        out.insert(e.name, m);
    }
    if !out.is_empty() && !without.is_empty() {
        return Err(FormatError::corrupt(
            format!("segments/{}", without[0]),
            "a partial snapshot segment without segment_manifest.json",
        )
        .into());
    }
    Ok(out)
}

impl Staged {
    /// Ids of the segments the snapshot brings.
    fn staged_segments(&self) -> Result<Vec<String>> {
        Ok(self
            .storage
            .list_dir(&join(&self.staging, names::SEGMENTS_DIR))?
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .map(|e| e.name)
            .collect())
    }

    /// The merge plan against the local shard, whose manifest is `local`.
    pub(crate) fn plan(&self, local: &SnapshotManifest) -> Result<Plan> {
        let st = &*self.storage;
        let stg = staging_rel(&self.staging, &self.root);
        let mut plan = Plan { staging: stg.clone(), ..Plan::default() };
        let staged_segments = self.staged_segments()?;
        match self.kind {
            SnapshotKind::Full => {
                plan.replace_dirs.push((format!("{stg}/{}", names::SEGMENTS_DIR), names::SEGMENTS_DIR.to_string()));
                // Local top-level state the snapshot does not bring is dropped (edge_config.json
                // stays: it describes the shard, not its data).
                for f in TOP_LEVEL_FILES {
                    if f == names::EDGE_CONFIG_FILE {
                        continue;
                    }
                    if !st.is_file(&join(&self.staging, f))? && st.is_file(&join(&self.root, f))? {
                        plan.delete_files.push(f.to_string());
                    }
                }
            }
            SnapshotKind::Partial => {
                for (id, lm) in local {
                    match self.manifest.get(id) {
                        None => plan.delete_dirs.push(format!("{}/{id}", names::SEGMENTS_DIR)),
                        Some(sm) => {
                            for f in lm.file_versions.keys() {
                                if !sm.file_versions.contains_key(f) {
                                    plan.delete_files.push(format!("{}/{id}/{f}", names::SEGMENTS_DIR));
                                }
                                if let Some(dir) = f.strip_suffix("tracker.dat") {
                                    if dir.is_empty() || dir.ends_with('/') {
                                        let j = format!("{}/{id}/{dir}tracker_journal.dat", names::SEGMENTS_DIR);
                                        if st.is_file(&join(&self.root, &j))? {
                                            plan.delete_files.push(j);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                for id in &staged_segments {
                    plan.merge_dirs
                        .push((format!("{stg}/{}/{id}", names::SEGMENTS_DIR), format!("{}/{id}", names::SEGMENTS_DIR)));
                }
            }
        }
        for f in TOP_LEVEL_FILES {
            if st.is_file(&join(&self.staging, f))? {
                plan.move_files.push((format!("{stg}/{f}"), f.to_string()));
            }
        }
        if st.is_dir(&join(&self.staging, names::WAL_DIR))? {
            plan.replace_dirs.push((format!("{stg}/{}", names::WAL_DIR), names::WAL_DIR.to_string()));
        } else {
            return Err(FormatError::corrupt("wal/", "the snapshot has no WAL directory").into());
        }
        plan.delete_files.sort();
        plan.delete_files.dedup();
        Ok(plan)
    }

    /// The report for `plan`.
    pub(crate) fn report(&self, plan: &Plan, local: &SnapshotManifest) -> Result<ApplyReport> {
        let st = &*self.storage;
        let staged_segments = self.staged_segments()?;
        let mut files_written = 0u64;
        for id in &staged_segments {
            files_written += list_files_rec(st, &join(&join(&self.staging, names::SEGMENTS_DIR), id))?
                .iter()
                .filter(|f| f.as_str() != SEGMENT_MANIFEST_FILE)
                .count() as u64;
        }
        let (added, merged): (Vec<String>, Vec<String>) =
            staged_segments.iter().cloned().partition(|id| !local.contains_key(id));
        let removed: Vec<String> = local.keys().filter(|id| !staged_segments.contains(id)).cloned().collect();
        Ok(ApplyReport {
            kind: self.kind,
            unpack: self.report.clone(),
            segments_added: added,
            segments_removed: removed,
            segments_merged: if self.kind == SnapshotKind::Partial { merged } else { Vec::new() },
            files_written,
            files_deleted: plan.delete_files.iter().filter(|f| f.starts_with("segments/")).count() as u64,
        })
    }

    /// A read-only view of the shard as it will be after `plan`.
    pub(crate) fn view(&self, plan: &Plan) -> Arc<dyn Storage> {
        Arc::new(MergedView::new(self.storage.clone(), &self.root, plan, self.kind))
    }

    /// Remove the staging directory (an uncommitted apply).
    pub(crate) fn discard(self) -> Result<()> {
        if self.storage.exists(&self.staging)? {
            self.storage.remove_dir_all(&self.staging)?;
        }
        Ok(())
    }
}

/// Write the commit record, then carry the plan out.
pub(crate) fn commit(storage: &dyn Storage, root: &str, plan: &Plan) -> Result<()> {
    let bytes = serde_json::to_vec(plan).map_err(|e| Error::Internal(format!("plan: {e}")))?;
    storage.write_atomic(&join(root, PLAN_FILE), &bytes)?;
    roll_forward(storage, root, plan)
}

/// Finish an interrupted apply (a plan file exists) or drop an uncommitted one (staging
/// directories without a plan). Returns whether a committed apply was completed.
pub fn recover(storage: &dyn Storage, root: &str) -> Result<bool> {
    if !storage.is_dir(root)? {
        return Ok(false);
    }
    let plan_path = join(root, PLAN_FILE);
    if storage.is_file(&plan_path)? {
        let bytes = storage.read_all(&plan_path)?;
        let plan: Plan = serde_json::from_slice(&bytes)
            .map_err(|e| FormatError::corrupt(PLAN_FILE, format!("snapshot apply record: {e}")))?;
        check_plan_paths(&plan)?;
        roll_forward(storage, root, &plan)?;
        return Ok(true);
    }
    let mut removed = false;
    for e in storage.list_dir(root)? {
        if e.name.starts_with(STAGING_PREFIX) || e.name == format!("{PLAN_FILE}.tmp") {
            let p = join(root, &e.name);
            match e.kind {
                EntryKind::Dir => storage.remove_dir_all(&p)?,
                EntryKind::File => storage.remove_file(&p)?,
            }
            removed = true;
        }
    }
    if removed {
        storage.sync_dir(root)?;
    }
    Ok(false)
}

/// A plan read back from storage names only plain relative paths inside the shard.
fn check_plan_paths(plan: &Plan) -> Result<()> {
    let ok = |p: &str| !p.is_empty() && !p.starts_with('/') && p.split('/').all(|c| !c.is_empty() && c != "..");
    let all = std::iter::once(plan.staging.as_str())
        .chain(plan.delete_files.iter().map(String::as_str))
        .chain(plan.delete_dirs.iter().map(String::as_str))
        .chain(
            plan.move_files
                .iter()
                .chain(&plan.replace_dirs)
                .chain(&plan.merge_dirs)
                .flat_map(|(a, b)| [a.as_str(), b.as_str()]),
        );
    for p in all {
        if !ok(p) {
            return Err(FormatError::corrupt(PLAN_FILE, format!("bad path `{p}` in the snapshot apply record")).into());
        }
    }
    if !plan.staging.starts_with(STAGING_PREFIX) {
        return Err(FormatError::corrupt(PLAN_FILE, "the staging directory is not a staging directory").into());
    }
    Ok(())
}

fn roll_forward(st: &dyn Storage, root: &str, plan: &Plan) -> Result<()> {
    let p = |rel: &str| join(root, rel);
    for f in &plan.delete_files {
        if st.is_file(&p(f))? {
            st.remove_file(&p(f))?;
        }
    }
    for d in &plan.delete_dirs {
        if st.is_dir(&p(d))? {
            st.remove_dir_all(&p(d))?;
        }
    }
    for (from, to) in &plan.move_files {
        if st.is_file(&p(from))? {
            st.rename(&p(from), &p(to))?;
        }
    }
    for (from, to) in &plan.replace_dirs {
        if st.is_dir(&p(from))? {
            if st.exists(&p(to))? {
                st.remove_dir_all(&p(to))?;
            }
            st.rename(&p(from), &p(to))?;
        }
    }
    if !plan.merge_dirs.is_empty() {
        st.create_dir_all(&p(names::SEGMENTS_DIR))?;
    }
    for (from, to) in &plan.merge_dirs {
        if st.is_dir(&p(from))? {
            merge_dir(st, &p(from), &p(to))?;
        }
    }
    // Make the moves durable before the record goes.
    for dir in [String::new(), names::SEGMENTS_DIR.to_string()] {
        if st.is_dir(&p(&dir))? {
            st.sync_dir(&p(&dir))?;
        }
    }
    let staging = p(&plan.staging);
    if st.exists(&staging)? {
        st.remove_dir_all(&staging)?;
    }
    let plan_path = p(PLAN_FILE);
    if st.is_file(&plan_path)? {
        st.remove_file(&plan_path)?;
    }
    st.sync_dir(root)?;
    Ok(())
}

/// Move everything under `from` into `to`: whole when `to` does not exist, else entry by entry
/// (files replace files). `from` is removed at the end.
fn merge_dir(st: &dyn Storage, from: &str, to: &str) -> Result<()> {
    match st.entry_kind(to)? {
        None => {
            st.rename(from, to)?;
            return Ok(());
        }
        Some(EntryKind::File) => st.remove_file(to)?,
        Some(EntryKind::Dir) => {}
    }
    if !st.is_dir(to)? {
        st.create_dir_all(to)?;
    }
    for e in st.list_dir(from)? {
        let (f, t) = (join(from, &e.name), join(to, &e.name));
        match e.kind {
            EntryKind::Dir => merge_dir(st, &f, &t)?,
            EntryKind::File => {
                if st.is_dir(&t)? {
                    st.remove_dir_all(&t)?;
                }
                st.rename(&f, &t)?;
            }
        }
    }
    st.sync_dir(to)?;
    st.remove_dir_all(from)?;
    Ok(())
}

// ---- the view of the result ------------------------------------------------------------------

/// Read-only view of a shard after a plan, before it is carried out: each path under the shard
/// resolves to the staged copy when the snapshot brings one, else to the local file unless the
/// plan deletes or replaces it.
#[derive(Debug)]
struct MergedView {
    base: Arc<dyn Storage>,
    root: String,
    staging: String,
    full: bool,
    hidden_files: BTreeSet<String>,
    hidden_dirs: Vec<String>,
}

impl MergedView {
    fn new(base: Arc<dyn Storage>, root: &str, plan: &Plan, kind: SnapshotKind) -> MergedView {
        let mut hidden_dirs: Vec<String> = plan.delete_dirs.clone();
        for (_, to) in &plan.replace_dirs {
            hidden_dirs.push(to.clone());
        }
        hidden_dirs.push(plan.staging.clone());
        MergedView {
            base,
            root: root.to_string(),
            staging: plan.staging.clone(),
            full: kind == SnapshotKind::Full,
            hidden_files: plan.delete_files.iter().cloned().chain([PLAN_FILE.to_string()]).collect(),
            hidden_dirs,
        }
    }

    /// Path relative to the shard root, or `None` for paths outside it.
    fn rel<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.root.is_empty() {
            Some(path)
        } else if path == self.root {
            Some("")
        } else {
            path.strip_prefix(self.root.as_str()).and_then(|r| r.strip_prefix('/'))
        }
    }

    fn local_hidden(&self, rel: &str) -> bool {
        if rel.is_empty() {
            return false;
        }
        if self.full && rel != names::EDGE_CONFIG_FILE && !rel.starts_with(STAGING_PREFIX) {
            // A full snapshot replaces everything but edge_config.json.
            return true;
        }
        self.hidden_files.contains(rel)
            || rel.starts_with(STAGING_PREFIX)
            || self.hidden_dirs.iter().any(|d| rel == d || rel.starts_with(&format!("{d}/")))
    }

    fn staged(&self, rel: &str) -> String {
        join(&join(&self.root, &self.staging), rel)
    }

    fn local(&self, rel: &str) -> String {
        join(&self.root, rel)
    }
}

fn read_only(path: &str) -> StorageError {
    StorageError::new("write", path, StorageErrorKind::Unsupported, "snapshot preview is read-only")
}

impl Storage for MergedView {
    fn open(&self, path: &str, mode: OpenMode) -> StorageResult<Arc<dyn StorageFile>> {
        if mode.writable() {
            return Err(read_only(path));
        }
        let Some(rel) = self.rel(path) else { return self.base.open(path, mode) };
        let s = self.staged(rel);
        if self.base.is_file(&s)? {
            return self.base.open(&s, mode);
        }
        if self.local_hidden(rel) {
            return Err(StorageError::new("open", path, StorageErrorKind::NotFound, "no such file"));
        }
        self.base.open(&self.local(rel), mode)
    }

    fn list_dir(&self, path: &str) -> StorageResult<Vec<DirEntry>> {
        let Some(rel) = self.rel(path) else { return self.base.list_dir(path) };
        let mut out: BTreeMap<String, EntryKind> = BTreeMap::new();
        let s = self.staged(rel);
        let mut found = false;
        if self.base.is_dir(&s)? {
            found = true;
            for e in self.base.list_dir(&s)? {
                out.insert(e.name, e.kind);
            }
        }
        let l = self.local(rel);
        if !self.local_hidden(rel) && self.base.is_dir(&l)? {
            found = true;
            for e in self.base.list_dir(&l)? {
                let child = if rel.is_empty() { e.name.clone() } else { format!("{rel}/{}", e.name) };
                if self.local_hidden(&child) {
                    continue;
                }
                out.entry(e.name).or_insert(e.kind);
            }
        }
        if !found {
            return Err(StorageError::new("list", path, StorageErrorKind::NotFound, "no such directory"));
        }
        Ok(out.into_iter().map(|(name, kind)| DirEntry { name, kind }).collect())
    }

    fn create_dir_all(&self, path: &str) -> StorageResult<()> {
        Err(read_only(path))
    }
    fn rename(&self, from: &str, _to: &str) -> StorageResult<()> {
        Err(read_only(from))
    }
    fn remove_file(&self, path: &str) -> StorageResult<()> {
        Err(read_only(path))
    }
    fn remove_dir_all(&self, path: &str) -> StorageResult<()> {
        Err(read_only(path))
    }

    fn entry_kind(&self, path: &str) -> StorageResult<Option<EntryKind>> {
        let Some(rel) = self.rel(path) else { return self.base.entry_kind(path) };
        if let Some(k) = self.base.entry_kind(&self.staged(rel))? {
            return Ok(Some(k));
        }
        if self.local_hidden(rel) {
            return Ok(None);
        }
        self.base.entry_kind(&self.local(rel))
    }

    fn sync_dir(&self, _path: &str) -> StorageResult<()> {
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        self.base.capabilities()
    }
}
