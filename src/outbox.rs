//! The durable outbox: local updates waiting to be sent to a Qdrant server.
//!
//! An app that writes to its local shard and wants the same writes on the server (dual write)
//! records each update here *before* the shard applies it; a sender (the JS facade) reads the
//! pending entries, sends them as REST requests, and acknowledges what the server accepted.
//!
//! # Guarantees
//! - Every update acknowledged to the caller is in the outbox (it is appended and synced
//!   before the shard applies the update), so it reaches the server even across crashes.
//! - No entry exists for an update the shard did not apply: a request the shard refuses is
//!   retracted, and after a crash between the append and the WAL write the unapplied last
//!   entry is dropped at [`Outbox::open`] (the operation number recorded with it is compared
//!   with the shard's WAL).
//! - Delivery is at least once (an entry sent but not yet acknowledged when the app stops is
//!   sent again); every update kind is idempotent, so the server's state is the same.
//! - A batch (`update` = `POST /points/batch`) is recorded as one entry per operation, applied
//!   one at a time as Qdrant does, so a batch that fails half way leaves exactly its applied
//!   prefix in the outbox.
//!
//! # Format (`outbox.qew` in the shard's root; not a Qdrant file, Qdrant ignores it)
//! An 8-byte magic `QEWOBX01`, then records: `u32 len` (of what follows the checksum),
//! `u32 crc32c` (of that), `u8 kind`, `u64 seq`, `u64 op_num`, then for kind 1 the JSON
//! `{"command": ..., "body": ...}`. Kinds: 1 an update (`op_num` is the number the shard's
//! WAL gives it), 2 "settled" (every earlier entry is known applied: written before a snapshot
//! apply changes the shard's operation numbers), 3 "acknowledged up to `seq`". A torn or
//! corrupt tail is cut at open. When nothing is pending and the file passes 1 MiB, or half of
//! it is acknowledged, it is rewritten (pending entries, then a settled marker) through a
//! temporary file and a rename.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::updates::parse_update;
use crate::error::{Error, FormatError, Result};
use crate::operations::UpdateOperation;
use crate::shard::EdgeShard;
use crate::storage::{join, OpenMode, Storage, StorageFile};

/// The outbox's file name in the shard's root directory.
pub const OUTBOX_FILE: &str = "outbox.qew";
const MAGIC: &[u8; 8] = b"QEWOBX01";
const HEAD: usize = 4 + 4 + 1 + 8 + 8;
const KIND_OP: u8 = 1;
const KIND_SETTLED: u8 = 2;
const KIND_ACK: u8 = 3;
const COMPACT_AT: u64 = 1 << 20;
/// Largest record accepted when reading back (a corrupt length must not allocate gigabytes).
const MAX_RECORD: u32 = 1 << 30;

/// One pending update.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Position in the outbox (increasing, never reused).
    pub seq: u64,
    /// The local operation number the shard gave it.
    pub op_num: u64,
    /// The single update command (`upsert`, `delete`, `set_payload`, ..., `create_index`,
    /// `delete_index`).
    pub command: String,
    /// Its REST body.
    pub body: Value,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    op_num: u64,
    offset: u64,
    len: u64,
}

/// The outbox of one shard (see the module docs).
pub struct Outbox {
    storage: Arc<dyn Storage>,
    path: String,
    file: Arc<dyn StorageFile>,
    len: u64,
    next_seq: u64,
    acked: u64,
    /// Entries after `acked`, in order.
    pending: Vec<Slot>,
    /// Records in the file (for the compaction rule).
    entries_in_file: u64,
    failed: Option<String>,
}

/// Where [`Outbox::record`] appended, to [`retract`](Outbox::retract) a refused update.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    len: u64,
}

fn corrupt(path: &str, message: impl Into<String>) -> Error {
    FormatError::corrupt(path, message).into()
}

fn encode(kind: u8, seq: u64, op_num: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(17 + payload.len());
    body.push(kind);
    body.extend(seq.to_le_bytes());
    body.extend(op_num.to_le_bytes());
    body.extend(payload);
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(crc32c::crc32c(&body).to_le_bytes());
    out.extend(body);
    out
}

impl Outbox {
    /// Whether the shard at `root` has an outbox.
    pub fn exists(storage: &dyn Storage, root: &str) -> Result<bool> {
        Ok(storage.is_file(&join(root, OUTBOX_FILE))?)
    }

    /// Create an empty outbox for the shard at `root` (it must not have one).
    pub fn create(storage: Arc<dyn Storage>, root: &str) -> Result<Outbox> {
        let path = join(root, OUTBOX_FILE);
        storage.write_atomic(&path, MAGIC)?;
        Self::open_file(storage, path)
    }

    fn open_file(storage: Arc<dyn Storage>, path: String) -> Result<Outbox> {
        let file = storage.open(&path, OpenMode::ReadWrite)?;
        Ok(Outbox {
            storage,
            path,
            file,
            len: MAGIC.len() as u64,
            next_seq: 1,
            acked: 0,
            pending: Vec::new(),
            entries_in_file: 0,
            failed: None,
        })
    }

    /// Open the outbox of `shard`: read it, cut a torn tail, and drop a last entry whose
    /// update the shard never made durable (a crash between the append and the WAL).
    pub fn open(shard: &mut EdgeShard) -> Result<Outbox> {
        let storage = shard.storage().clone();
        let path = join(shard.root(), OUTBOX_FILE);
        let mut ob = Self::open_file(storage, path)?;
        let size = ob.file.len()?;
        let mut magic = [0u8; 8];
        if size < 8 {
            return Err(corrupt(&ob.path, "the outbox is shorter than its header"));
        }
        ob.file.read_at(0, &mut magic)?;
        if &magic != MAGIC {
            return Err(corrupt(&ob.path, "not an outbox (bad magic)"));
        }
        let mut at = 8u64;
        // Whether the last update record may be unapplied (no settled marker after it).
        let mut last_unsettled: Option<Slot> = None;
        let mut ops: Vec<Slot> = Vec::new();
        let mut max_seq = 0u64;
        let mut records = 0u64;
        while at + 8 <= size {
            let mut h = [0u8; 8];
            ob.file.read_at(at, &mut h)?;
            let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
            if !(17..=MAX_RECORD).contains(&len) || at + 8 + len as u64 > size {
                break;
            }
            let mut body = vec![0u8; len as usize];
            ob.file.read_at(at + 8, &mut body)?;
            if crc32c::crc32c(&body) != crc {
                break;
            }
            let kind = body[0];
            let seq = u64::from_le_bytes(body[1..9].try_into().expect("8 bytes"));
            let op_num = u64::from_le_bytes(body[9..17].try_into().expect("8 bytes"));
            let rec_len = 8 + len as u64;
            match kind {
                KIND_OP => {
                    if seq <= max_seq {
                        return Err(corrupt(&ob.path, format!("entry {seq} after entry {max_seq}")));
                    }
                    max_seq = seq;
                    let slot = Slot { seq, op_num, offset: at, len: rec_len };
                    ops.push(slot);
                    last_unsettled = Some(slot);
                }
                KIND_SETTLED => last_unsettled = None,
                KIND_ACK => ob.acked = ob.acked.max(seq),
                other => return Err(corrupt(&ob.path, format!("unknown record kind {other}"))),
            }
            records += 1;
            at += rec_len;
        }
        let mut end = at;
        if let Some(last) = last_unsettled {
            if shard.next_op_num()? <= last.op_num {
                // Recorded, but the shard never logged it: the update was not acknowledged.
                ops.pop();
                end = last.offset;
                records -= 1;
            }
        }
        if end < size {
            ob.file.set_len(end)?;
            ob.file.sync()?;
        }
        ob.len = end;
        ob.next_seq = max_seq.max(ob.acked) + 1;
        ob.entries_in_file = records;
        ob.pending = ops.into_iter().filter(|s| s.seq > ob.acked).collect();
        Ok(ob)
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(m) => Err(Error::Internal(format!("the outbox failed earlier ({m}); reopen the shard"))),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.failed.get_or_insert_with(|| e.to_string());
        e
    }

    fn append(&mut self, rec: &[u8]) -> Result<()> {
        let r = self.file.write_at(self.len, rec).and_then(|_| self.file.sync());
        if let Err(e) = r {
            // The tail may hold part of the record: cut it, or refuse further use.
            if self.file.set_len(self.len).and_then(|_| self.file.sync()).is_err() {
                return Err(self.fail(e.into()));
            }
            return Err(e.into());
        }
        self.len += rec.len() as u64;
        self.entries_in_file += 1;
        Ok(())
    }

    /// Append the update `command` / `body` that the shard is about to apply as operation
    /// `op_num`; durable when this returns.
    pub fn record(&mut self, op_num: u64, command: &str, body: &Value) -> Result<Mark> {
        self.check()?;
        let payload = serde_json::to_vec(&json!({"command": command, "body": body}))
            .map_err(|e| Error::Internal(format!("outbox entry: {e}")))?;
        if payload.len() as u64 + 17 > MAX_RECORD as u64 {
            return Err(Error::invalid("the update is too large for the outbox (1 GiB)"));
        }
        let mark = Mark { len: self.len };
        let seq = self.next_seq;
        self.append(&encode(KIND_OP, seq, op_num, &payload))?;
        self.next_seq += 1;
        self.pending.push(Slot { seq, op_num, offset: mark.len, len: self.len - mark.len });
        Ok(mark)
    }

    /// Remove the entry appended at `mark` (its update was refused).
    pub fn retract(&mut self, mark: Mark) -> Result<()> {
        if let Some(p) = self.pending.last() {
            if p.offset == mark.len {
                self.pending.pop();
                self.next_seq -= 1;
            }
        }
        let r = self.file.set_len(mark.len).and_then(|_| self.file.sync());
        if let Err(e) = r {
            // The entry may stay; a reopen drops it (its operation number was never logged).
            return Err(self.fail(e.into()));
        }
        self.len = mark.len;
        self.entries_in_file = self.entries_in_file.saturating_sub(1);
        Ok(())
    }

    /// Record that every entry so far is applied (before the shard's operation numbers change,
    /// i.e. before a snapshot apply commits).
    pub fn settle(&mut self) -> Result<()> {
        self.check()?;
        let rec = encode(KIND_SETTLED, 0, 0, &[]);
        self.append(&rec)
    }

    /// Entries not yet acknowledged.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The highest acknowledged sequence number (0: none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Up to `max` pending entries (and at most about `max_bytes` of JSON, at least one), oldest
    /// first.
    pub fn pending(&self, max: usize, max_bytes: u64) -> Result<Vec<OutboxEntry>> {
        self.check()?;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for s in self.pending.iter().take(max) {
            if !out.is_empty() && bytes + s.len > max_bytes {
                break;
            }
            bytes += s.len;
            let mut buf = vec![0u8; s.len as usize];
            self.file.read_at(s.offset, &mut buf)?;
            let v: Value = serde_json::from_slice(&buf[HEAD..])
                .map_err(|e| corrupt(&self.path, format!("entry {}: {e}", s.seq)))?;
            let command = v.get("command").and_then(Value::as_str).unwrap_or_default().to_string();
            let body = v.get("body").cloned().unwrap_or(Value::Null);
            out.push(OutboxEntry { seq: s.seq, op_num: s.op_num, command, body });
        }
        Ok(out)
    }

    /// Acknowledge every entry up to and including `seq` (the server has them).
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        self.check()?;
        if seq <= self.acked {
            return Ok(());
        }
        if seq >= self.next_seq {
            return Err(Error::invalid(format!("outbox entry {seq} does not exist")));
        }
        self.append(&encode(KIND_ACK, seq, 0, &[]))?;
        self.acked = seq;
        self.pending.retain(|s| s.seq > seq);
        if self.len > COMPACT_AT && (self.pending.is_empty() || self.pending.len() as u64 * 2 < self.entries_in_file) {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrite the file with only the pending entries (and a settled marker: every entry is
    /// applied, since this runs between updates).
    fn compact(&mut self) -> Result<()> {
        let tmp = format!("{}.tmp", self.path);
        let mut data = MAGIC.to_vec();
        let mut slots = Vec::with_capacity(self.pending.len());
        // keep the acknowledged position so sequence numbers never repeat
        data.extend(encode(KIND_ACK, self.acked, 0, &[]));
        for s in &self.pending {
            let mut buf = vec![0u8; s.len as usize];
            self.file.read_at(s.offset, &mut buf)?;
            slots.push(Slot { offset: data.len() as u64, ..*s });
            data.extend(buf);
        }
        data.extend(encode(KIND_SETTLED, 0, 0, &[]));
        let written = (|| -> Result<()> {
            let f = self.storage.open(&tmp, OpenMode::Create)?;
            f.set_len(0)?;
            f.write_at(0, &data)?;
            f.sync()?;
            drop(f);
            self.storage.rename(&tmp, &self.path)?;
            self.storage.sync_dir(crate::storage::parent(&self.path))?;
            Ok(())
        })();
        if let Err(e) = written {
            // Before the rename the old file is intact; after it, our handle is stale.
            return Err(self.fail(e));
        }
        self.file = self.storage.open(&self.path, OpenMode::ReadWrite).map_err(|e| self.fail(e.into()))?;
        self.len = data.len() as u64;
        self.entries_in_file = slots.len() as u64 + 2;
        self.pending = slots;
        Ok(())
    }
}

/// The single commands of an update request: a batch (`update`) is split into its operations
/// (as `(command, body)` with the keys of `POST /points/batch`); every other command is one.
/// Each comes with its parsed operation, so a malformed request is refused before anything is
/// recorded or applied.
pub fn split_update(command: &str, body: &Value) -> Result<Vec<(String, Value, UpdateOperation)>> {
    let single = |cmd: &str, b: &Value| -> Result<UpdateOperation> {
        let mut ops = match cmd {
            "delete_index" => {
                let field = b
                    .as_str()
                    .or_else(|| b.get("field_name").and_then(Value::as_str))
                    .ok_or_else(|| Error::invalid_field("field_name", "the field to drop the index of"))?;
                vec![UpdateOperation::DeleteIndex(field.to_string())]
            }
            _ => parse_update(cmd, b)?,
        };
        match (ops.pop(), ops.is_empty()) {
            (Some(op), true) => Ok(op),
            _ => Err(Error::Internal(format!("`{cmd}` did not parse to one operation"))),
        }
    };
    if command != "update" {
        let op = single(command, body)?;
        let body = match command {
            // the REST route takes the field in the path; keep a uniform body
            "delete_index" if body.is_string() => json!({"field_name": body}),
            _ => body.clone(),
        };
        return Ok(vec![(command.to_string(), body, op)]);
    }
    // Validate the whole batch first (its errors name `operations[i]`), then split it.
    let ops = parse_update("batch", body)?;
    let items = body.get("operations").and_then(Value::as_array).cloned().unwrap_or_default();
    if items.len() != ops.len() {
        return Err(Error::Internal("a batch did not parse to one operation per item".into()));
    }
    Ok(items
        .into_iter()
        .zip(ops)
        .map(|(item, op)| {
            let (k, v) =
                item.as_object().and_then(|o| o.iter().next()).map(|(k, v)| (k.clone(), v.clone())).unwrap_or_default();
            (k, v, op)
        })
        .collect())
}

/// [`crate::api::dispatch_update`] with every applied operation recorded in `outbox` first
/// (see the module docs). Returns the same JSON.
pub fn update_recorded(shard: &mut EdgeShard, outbox: &mut Outbox, command: &str, body: &Value) -> Result<Value> {
    let parts = split_update(command, body)?;
    let mut results = Vec::with_capacity(parts.len());
    for (cmd, b, op) in parts {
        let op_num = shard.next_op_num()?;
        let mark = outbox.record(op_num, &cmd, &b)?;
        match shard.update(op) {
            Ok(n) => results.push(json!({"operation_id": n, "status": "completed"})),
            Err(e) => {
                // Refused before logging (nothing applied), or the shard failed: either way the
                // caller gets an error for this operation, so it must not reach the server.
                // If the WAL did log it, a reload replays it; the reopened outbox then keeps
                // the entry (its op_num is below the WAL's next index).
                if shard.next_op_num().map(|n| n <= op_num).unwrap_or(true) {
                    outbox.retract(mark)?;
                }
                return Err(e);
            }
        }
    }
    if command == "update" {
        Ok(Value::Array(results))
    } else {
        Ok(results.pop().unwrap_or_else(|| json!({"operation_id": null, "status": "completed"})))
    }
}
