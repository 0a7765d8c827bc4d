//! §12.5 `restore_snapshot_in_place`, on the storage trait, for every entry of `segments/`.
//!
//! The nested `<id>.tar` of the Regular layout was already streamed into `segments/<id>/`
//! (Qdrant unpacks it there too, then deletes the `.tar`), so what remains is the directory
//! shuffle:
//!
//! * from a `.tar`, with `snapshot/` inside (Regular): drop `snapshot/db_backup/` and
//!   `snapshot/payload_index_db_backup/`, hoist `snapshot/files/*` into `snapshot/`, then hoist
//!   `snapshot/*` into `segments/<id>/`;
//! * from a `.tar` without `snapshot/` (Ancient): nothing;
//! * a directory (Streamable): drop the two backup directories, hoist `files/*` if present.
//!
//! "Hoist" renames the child directory to a hidden temporary name first, so an entry that is
//! itself called `files` (or `snapshot`) cannot collide with its own source, then moves every
//! entry up: files by rename (replacing), directories by rename or, when the destination
//! directory exists, by merging recursively. A file meeting a directory is `Corrupted`.

use crate::error::Result;
use crate::storage::{join, EntryKind, Storage};

use super::{corrupt, Ctx, SegmentReport, SegmentSource};

const DB_BACKUP: &str = "db_backup";
const PAYLOAD_DB_BACKUP: &str = "payload_index_db_backup";
const FILES: &str = "files";
const SNAPSHOT: &str = "snapshot";

/// How a segment arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentLayout {
    /// `segments/<id>/files/...` (streamed snapshots).
    Streamable,
    /// `segments/<id>/` holding the final files directly (no `files/`).
    Direct,
    /// `segments/<id>.tar` with `snapshot/files/...` (stored snapshots).
    Regular,
    /// `segments/<id>.tar` with the files at its root (legacy).
    Ancient,
}

pub(crate) fn restore_segments(ctx: &Ctx) -> Result<Vec<SegmentReport>> {
    let st = &*ctx.storage;
    let root = join(&ctx.target, "segments");
    if !st.is_dir(&root)? {
        // A shard without segments; Qdrant would fail to list the directory. Create it so the
        // result is at least a well-formed (empty) shard directory.
        st.create_dir_all(&root)?;
    }
    let mut out = Vec::new();
    for e in st.list_dir(&root)? {
        if e.name.starts_with('.') {
            continue;
        }
        let dir = join(&root, &e.name);
        if e.kind != EntryKind::Dir || e.name.contains('.') {
            return Err(corrupt(&format!("segments/{}", e.name), "expected either a directory or a .tar file"));
        }
        let layout = match ctx.segments.get(&e.name) {
            Some(SegmentSource::Tar) => {
                if st.is_dir(&join(&dir, SNAPSHOT))? {
                    let snap = join(&dir, SNAPSHOT);
                    drop_backups(st, &snap)?;
                    if st.is_dir(&join(&snap, FILES))? {
                        hoist(st, &snap, FILES)?;
                    }
                    hoist(st, &dir, SNAPSHOT)?;
                    SegmentLayout::Regular
                } else {
                    SegmentLayout::Ancient
                }
            }
            _ => {
                drop_backups(st, &dir)?;
                if st.is_dir(&join(&dir, FILES))? {
                    hoist(st, &dir, FILES)?;
                    SegmentLayout::Streamable
                } else {
                    SegmentLayout::Direct
                }
            }
        };
        st.sync_dir(&dir)?;
        out.push(SegmentReport { id: e.name, layout });
    }
    st.sync_dir(&root)?;
    st.sync_dir(&ctx.target)?;
    Ok(out)
}

fn drop_backups(st: &dyn Storage, dir: &str) -> Result<()> {
    for b in [DB_BACKUP, PAYLOAD_DB_BACKUP] {
        let p = join(dir, b);
        if st.is_dir(&p)? {
            st.remove_dir_all(&p)?;
        }
    }
    Ok(())
}

/// Move the content of `parent/child` into `parent` and remove `parent/child`.
fn hoist(st: &dyn Storage, parent: &str, child: &str) -> Result<()> {
    let tmp = join(parent, &format!(".{child}.restore-tmp"));
    if st.exists(&tmp)? {
        return Err(corrupt(&tmp, "the archive holds a name reserved for restoring"));
    }
    st.rename(&join(parent, child), &tmp)?;
    move_all(st, &tmp, parent)?;
    st.remove_dir_all(&tmp)?;
    Ok(())
}

fn move_all(st: &dyn Storage, src: &str, dst: &str) -> Result<()> {
    for e in st.list_dir(src)? {
        let s = join(src, &e.name);
        let d = join(dst, &e.name);
        match (e.kind, st.entry_kind(&d)?) {
            (EntryKind::Dir, Some(EntryKind::Dir)) => {
                move_all(st, &s, &d)?;
                st.remove_dir_all(&s)?;
            }
            (_, None) | (EntryKind::File, Some(EntryKind::File)) => st.rename(&s, &d)?,
            (EntryKind::Dir, Some(EntryKind::File)) | (EntryKind::File, Some(EntryKind::Dir)) => {
                return Err(corrupt(&d, format!("cannot move `{s}` here: a file and a directory of the same name")))
            }
        }
    }
    Ok(())
}
