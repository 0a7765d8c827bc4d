//! Snapshots on a live shard: the manifest a device sends for a partial snapshot, and applying
//! full or partial snapshots atomically (see `crate::snapshot::apply` for the protocol).

use std::io::Read;
use std::sync::Arc;

use super::EdgeShard;
use crate::error::{Error, Result};
use crate::snapshot::apply::{commit, ApplyOptions, ApplyReport, Plan, SnapshotApply, SnapshotKind, Staged};
use crate::snapshot::manifest::{shard_manifest, SnapshotManifest};
use crate::storage::Storage;

/// Chunk size used when the archive comes from a reader.
const READ_CHUNK: usize = 256 * 1024;

impl EdgeShard {
    /// The shard's manifest (§12.6): the body of `POST …/snapshot/partial/create`. Operations
    /// not yet flushed are flushed first, so the manifest describes every acknowledged update.
    pub fn snapshot_manifest(&mut self) -> Result<SnapshotManifest> {
        self.check_open()?;
        if !self.dirty.is_empty() && self.failed.is_none() {
            self.flush()?;
        }
        shard_manifest(&*self.storage, &self.root)
    }

    /// Start applying a snapshot; feed it with [`SnapshotApply::push`] and finish it with
    /// [`finish_snapshot_apply`](Self::finish_snapshot_apply). The shard keeps answering reads
    /// (and taking writes) meanwhile; the staged files are invisible until the commit.
    pub fn begin_snapshot_apply(&self, options: ApplyOptions) -> Result<SnapshotApply> {
        self.check_writable()?;
        SnapshotApply::begin(self.storage.clone(), &self.root, options)
    }

    /// Check the staged snapshot, commit it and reload the shard from the result. A full
    /// snapshot replaces the shard; a partial one is merged with Qdrant's rules. Until the
    /// commit, any error leaves the shard exactly as it was (the staged files are removed).
    pub fn finish_snapshot_apply(&mut self, apply: SnapshotApply) -> Result<ApplyReport> {
        if apply.root() != self.root {
            return Err(Error::invalid("this snapshot apply was started for another shard"));
        }
        if let Err(e) = self.check_writable() {
            apply.abort()?;
            return Err(e);
        }
        // Acknowledged operations go into the segments first; the snapshot's WAL replaces ours.
        if let Err(e) = self.flush() {
            let _ = apply.abort();
            return Err(e);
        }
        let staged = apply.stage()?;
        let local = match shard_manifest(&*self.storage, &self.root) {
            Ok(m) => m,
            Err(e) => {
                staged.discard()?;
                return Err(e);
            }
        };
        let (plan, report) = prepare(staged, &local)?;
        // Release what refers to the old files, then commit and roll forward.
        let storage = self.storage.clone();
        let root = self.root.clone();
        self.wal = None;
        self.segments.clear();
        self.points.clear();
        self.visible.clear();
        self.postings.clear();
        self.overlay.clear();
        let committed = commit(&*storage, &root, &plan).and_then(|_| EdgeShard::load(storage.clone(), &root));
        match committed {
            Ok(shard) => {
                *self = shard;
                Ok(report)
            }
            Err(e) => {
                // Committed but not completed: the next load finishes it.
                self.failed = Some(format!("snapshot apply interrupted: {e}"));
                self.mark_closed();
                Err(e)
            }
        }
    }

    /// Apply a snapshot read from `reader` (full or partial). See
    /// [`begin_snapshot_apply`](Self::begin_snapshot_apply).
    pub fn update_from_snapshot<R: Read>(&mut self, reader: R, options: ApplyOptions) -> Result<ApplyReport> {
        let mut apply = self.begin_snapshot_apply(options)?;
        if let Err(e) = pump(reader, &mut apply) {
            apply.abort()?;
            return Err(e);
        }
        self.finish_snapshot_apply(apply)
    }

    /// Restore a snapshot into `root` (absent or empty) and load the shard: qdrant-edge's
    /// `unpack_snapshot` followed by `load`, atomic like an apply.
    pub fn unpack_snapshot<R: Read>(
        storage: Arc<dyn Storage>,
        root: &str,
        reader: R,
        options: ApplyOptions,
    ) -> Result<(EdgeShard, ApplyReport)> {
        if storage.is_dir(root)? && !storage.list_dir(root)?.is_empty() {
            return Err(Error::invalid_field(
                "target",
                format!("`{root}` is not empty; a snapshot is unpacked into an empty directory"),
            ));
        }
        let mut apply = SnapshotApply::begin(storage.clone(), root, options)?;
        if let Err(e) = pump(reader, &mut apply) {
            apply.abort()?;
            return Err(e);
        }
        Self::finish_unpack(apply)
    }

    /// Finish a [`SnapshotApply`] started with [`SnapshotApply::begin`] on an empty directory.
    pub fn finish_unpack(apply: SnapshotApply) -> Result<(EdgeShard, ApplyReport)> {
        let storage_root = apply.root().to_string();
        let staged = apply.stage()?;
        let storage = staged.storage.clone();
        let (plan, report) = prepare(staged, &SnapshotManifest::new())?;
        commit(&*storage, &storage_root, &plan)?;
        Ok((EdgeShard::load(storage, &storage_root)?, report))
    }
}

/// The checked merge plan of a staged snapshot against the local manifest `local`, and its
/// report. The result is loaded through a read-only view first: a snapshot that does not give a
/// loadable shard is refused. A full snapshot of other vectors replaces the shard's identity
/// too, so a local `edge_config.json` that no longer describes it is dropped (the config then
/// comes from the segments, as for a freshly restored server snapshot). On error the staging
/// directory is removed.
fn prepare(staged: Staged, local: &SnapshotManifest) -> Result<(Plan, ApplyReport)> {
    let prepared = (|| {
        let mut plan = staged.plan(local)?;
        let report = staged.report(&plan, local)?;
        let preview = EdgeShard::load_unrecovered(staged.view(&plan), &staged.root)
            .map_err(|e| Error::invalid(format!("the snapshot does not give a loadable shard: {e}")))?;
        let cfg_name = crate::format::names::EDGE_CONFIG_FILE;
        let brings_config = plan.move_files.iter().any(|(_, to)| to == cfg_name);
        if staged.kind == SnapshotKind::Full && !brings_config && !preview.segments.is_empty() {
            if let Some(cfg) = &preview.edge_config {
                let stored = super::collect_vector_kinds(&preview.segments, None)?;
                if super::config_vector_kinds(cfg) != stored {
                    plan.delete_files.push(cfg_name.to_string());
                }
            }
        }
        Ok::<_, Error>((plan, report))
    })();
    if prepared.is_err() {
        staged.discard()?;
    }
    prepared
}

fn pump<R: Read>(mut reader: R, apply: &mut SnapshotApply) -> Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::invalid(format!("reading the snapshot: {e}"))),
        };
        apply.push(&buf[..n])?;
    }
}
