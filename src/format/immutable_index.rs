//! Qdrant's immutable payload indexes: what a non-appendable (optimized) segment holds for an
//! indexed field. Written once from the segment's payloads, never updated (a delete only
//! touches the id tracker). Layouts in `docs/research/immutable-indexes.md`, every one checked
//! on files qdrant-edge 0.9.0 wrote; the tests here and in `tests/immutable_index.rs` rebuild
//! qdrant-edge's own files byte for byte.
//!
//! **Input.** The points of the segment that are live and have a non-empty payload, ascending
//! internal id (Qdrant's builder walks the payload storage, which holds nothing for `{}`).
//! Values are extracted as for the mutable indexes ([`super::field_index_write`]).
//!
//! **Sub-indexes written here** (recorded `{"mutability":"immutable","storage_type":{"mmap":
//! {"is_on_disk":X}}}`, `X` true for the map and numeric ones when the schema says `on_disk:
//! true` or `memory: cold|cached`, else false; bool and null always false):
//!
//! * `-map` (keyword, integer lookup, uuid): `values_to_points.bin` (persisted hash map,
//!   [`super::fmph`]; key → ascending ids), `point_to_values.bin` (per point its distinct
//!   values, first occurrence first), `deleted.bin` (points without a value),
//!   `mmap_field_index_config.json`, and `prefix_index.bin` for a keyword schema with
//!   `"prefix": true`.
//! * `-numeric` (integer range, float, datetime): `data.bin` (distinct `(value, id)` pairs
//!   sorted), its block-index sidecar, `point_to_values.bin` (values as extracted),
//!   `deleted.bin`, the cardinality histogram (`histogram_config.json`,
//!   `histogram_borders.bin`), `mmap_field_index_config.json`.
//! * `-bool`, `-null`: the same flags directories as the mutable ones, one entry per visited
//!   point.
//!
//! * `-map` (geo): `point_to_values.bin` (`f64 lon`, `f64 lat` per value), `deleted.bin`, the
//!   geohash tables `points_map.bin` + `points_map_ids.bin` (full 12-character hash → points)
//!   and `counts_per_hash.bin` (every prefix → points and values under it) with their
//!   block-index sidecars, `mmap_field_index_stats.json`.
//! * `-text`: `vocab.dat` (token → token id, ids in order of first appearance),
//!   `postings.dat` (per token its points, BitPacker4x-compressed, with token positions under
//!   phrase matching), `point_to_tokens_count.dat`, `deleted_points.dat`, and with BM25
//!   scoring `point_to_doc_len.dat` (exact lengths in a zstd frame of raw blocks) and
//!   `term_frequencies.dat`.
//!
//! ```text
//! point_to_values.bin:  u64 4096, u64 n, zeros to 4096, n × {u64 start (absolute), u64 count},
//!                       the values back to back (keyword: u32 length + UTF-8; i64 / f64; u128)
//! deleted.bin:          bit i set ⇔ point i has no value; ⌈n/8⌉ rounded up to 8 bytes
//! block-index sidecar:  "QdrntSBI" u32 1, u32 16, u32 1024, u32 0, u64 elements,
//!                       then every 1024th 16-byte element
//! data.bin:             {value (8 bytes), u32 id, u32 0} per pair
//! histogram_borders.bin: u64 count, per border {value, u32 id, u64 left, u64 right}
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde_json::Value;

use crate::error::{Error, FormatError};
use crate::format::field_index_write::{
    classify_null, delete_field_index, flag_dirs, flatten, geo_value, parse_schema, payload_index_dir, sub_index_dir,
    uuid_value, value_to_integer, Kind, TextSpec, ARRAY_BOUNDARY_TOKEN,
};
use crate::format::fmph::{self, Key, KeyType};
use crate::format::payload_index::{FullPayloadIndexType, IndexMutability, IndexStorageType, MmapOptions};
use crate::format::segment_write::FlagsWriter;
use crate::query::filter::parse_datetime;
use crate::query::json_path::JsonPath;
use crate::query::text::TextKind;
use crate::storage::{join, Storage};
use crate::types::Payload;

type Result<T> = std::result::Result<T, Error>;

const PTV_HEADER: u64 = 4096;
const SBI_ELEMENTS_PER_BLOCK: u64 = 1024;
const HISTOGRAM_MAX_BUCKET: u64 = 10_000;
const HISTOGRAM_PRECISION: f64 = 0.01;
const PREFIX_BLOCK_BYTES: usize = 4096;

/// Whether the schema places the index on disk (`on_disk: true`, `memory: cold|cached`).
fn on_disk(schema: &Value) -> bool {
    let Some(o) = schema.as_object() else { return false };
    o.get("on_disk").and_then(Value::as_bool).unwrap_or(false)
        || matches!(o.get("memory").and_then(Value::as_str), Some("cold") | Some("cached"))
}

fn wants_prefix(schema: &Value) -> bool {
    schema.get("prefix").and_then(Value::as_bool).unwrap_or(false)
}

fn immutable_type(kind: Kind, disk: bool) -> FullPayloadIndexType {
    let is_on_disk = disk && !matches!(kind, Kind::Bool | Kind::Null);
    FullPayloadIndexType {
        index_type: kind.index_type(),
        mutability: IndexMutability::Immutable,
        storage_type: IndexStorageType::Mmap(MmapOptions { is_on_disk }),
    }
}

/// Build the index of `field` for the non-appendable segment at `segment_dir` from `points`
/// (live points, ascending internal id; points with an empty payload are skipped as Qdrant's
/// builder never sees them). Any earlier files of the field are removed first. Files only: the
/// caller records the returned `indexed_types` with
/// [`config_set_field`](super::field_index_write::config_set_field).
pub fn build_optimized_field_index<I>(
    storage: &dyn Storage,
    segment_dir: &str,
    field: &str,
    schema: &Value,
    points: I,
) -> Result<Vec<FullPayloadIndexType>>
where
    I: IntoIterator<Item = (u32, Payload)>,
{
    let parsed = parse_schema(field, schema)?;
    let points = points.into_iter().filter(|(_, p)| !p.is_empty());
    let path = JsonPath::parse(field)
        .ok_or_else(|| Error::invalid_field("field", format!("`{field}` is not a valid payload path")))?;
    let points: Vec<(u32, Payload)> = points.collect();
    let mut last = None;
    for (id, _) in &points {
        if last.is_some_and(|l| l >= *id) {
            return Err(Error::Internal(format!("index build of `{field}`: internal ids not ascending at {id}")));
        }
        last = Some(*id);
    }
    let values: Vec<(u32, Vec<&Value>)> = points.iter().map(|(id, p)| (*id, path.value_get(p))).collect();
    let n = last.map_or(0, |l| l + 1);
    delete_field_index(storage, segment_dir, field)?;
    storage.create_dir_all(&payload_index_dir(segment_dir))?;
    let disk = on_disk(schema);
    let mut types = Vec::with_capacity(parsed.kinds.len());
    for &kind in &parsed.kinds {
        let dir = sub_index_dir(segment_dir, field, kind.suffix());
        storage.create_dir_all(&dir)?;
        let files = match kind {
            Kind::Keyword => {
                let per: Vec<(u32, Vec<MapValue>)> = values
                    .iter()
                    .map(|(id, v)| (*id, flatten(v, |x| x.as_str().map(|s| MapValue::Str(s.to_string())))))
                    .collect();
                map_index_files(n, &per, KeyType::Str, wants_prefix(schema))?
            }
            Kind::IntMap => {
                let per: Vec<_> = values
                    .iter()
                    .map(|(id, v)| (*id, flatten(v, |x| value_to_integer(x).map(MapValue::I64))))
                    .collect();
                map_index_files(n, &per, KeyType::I64, false)?
            }
            Kind::Uuid => {
                let per: Vec<_> =
                    values.iter().map(|(id, v)| (*id, flatten(v, |x| uuid_value(x).map(MapValue::U128)))).collect();
                map_index_files(n, &per, KeyType::U128, false)?
            }
            Kind::Int => {
                let per: Vec<_> = values.iter().map(|(id, v)| (*id, flatten(v, value_to_integer))).collect();
                numeric_index_files(n, &per)
            }
            Kind::Datetime => {
                let per: Vec<_> =
                    values.iter().map(|(id, v)| (*id, flatten(v, |x| x.as_str().and_then(parse_datetime)))).collect();
                numeric_index_files(n, &per)
            }
            Kind::Float => {
                let per: Vec<_> = values.iter().map(|(id, v)| (*id, flatten(v, Value::as_f64))).collect();
                numeric_index_files(n, &per)
            }
            Kind::Bool | Kind::Null => {
                let (a, b) = flag_dirs(kind);
                let mut fa = FlagsWriter::create(storage, &join(&dir, a))?;
                let mut fb = FlagsWriter::create(storage, &join(&dir, b))?;
                for (id, v) in &values {
                    let (x, y) = if kind == Kind::Bool {
                        let b = flatten(v, Value::as_bool);
                        (b.contains(&true), b.contains(&false))
                    } else {
                        classify_null(v)
                    };
                    fa.set(u64::from(*id), x)?;
                    fb.set(u64::from(*id), y)?;
                }
                fa.flush()?;
                fb.flush()?;
                Vec::new()
            }
            Kind::Geo => {
                let per: Vec<_> = values.iter().map(|(id, v)| (*id, flatten(v, geo_value))).collect();
                geo_index_files(&per)
            }
            Kind::Text => {
                let spec = parsed
                    .text
                    .as_ref()
                    .ok_or_else(|| Error::Internal(format!("text index of `{field}` without text settings")))?;
                let per: Vec<_> =
                    values.iter().map(|(id, v)| (*id, flatten(v, |x| x.as_str().map(str::to_string)))).collect();
                text_index_files(spec, &per)?
            }
        };
        for (name, data) in files {
            crate::storage::write_file(storage, &join(&dir, name), &data)?;
        }
        storage.sync_dir(&dir)?;
        types.push(immutable_type(kind, disk));
    }
    storage.sync_dir(&payload_index_dir(segment_dir))?;
    Ok(types)
}

// ---- common blocks ----------------------------------------------------------------------------

/// `point_to_values.bin` for points `0..n`; `values(i)` = the encoded values of point i and
/// their number.
fn point_to_values(n: u32, mut values: impl FnMut(u32) -> (Vec<u8>, u64)) -> Vec<u8> {
    let mut out = Vec::with_capacity(PTV_HEADER as usize + 16 * n as usize);
    out.extend_from_slice(&PTV_HEADER.to_le_bytes());
    out.extend_from_slice(&u64::from(n).to_le_bytes());
    out.resize(PTV_HEADER as usize, 0);
    let mut body = Vec::new();
    let base = PTV_HEADER + 16 * u64::from(n);
    for i in 0..n {
        let (bytes, count) = values(i);
        out.extend_from_slice(&(base + body.len() as u64).to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&body);
    out
}

/// The "no value" bitmap over `0..n`: ⌈n/8⌉ bytes rounded up to a multiple of 8.
fn no_value_bitmap(n: u32, empty: impl Fn(u32) -> bool) -> Vec<u8> {
    let mut out = vec![0u8; (n as usize).div_ceil(8).div_ceil(8) * 8];
    for i in 0..n {
        if empty(i) {
            out[i as usize / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// The sorted-block sidecar of an array of 16-byte elements.
fn block_index(elements: &[u8]) -> Vec<u8> {
    let count = (elements.len() / 16) as u64;
    let mut out = Vec::with_capacity(32 + 16 * count.div_ceil(SBI_ELEMENTS_PER_BLOCK) as usize);
    out.extend_from_slice(b"QdrntSBI");
    for x in [1u32, 16, SBI_ELEMENTS_PER_BLOCK as u32, 0] {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(&count.to_le_bytes());
    for k in (0..count).step_by(SBI_ELEMENTS_PER_BLOCK as usize) {
        out.extend_from_slice(&elements[16 * k as usize..16 * k as usize + 16]);
    }
    out
}

type Files = Vec<(&'static str, Vec<u8>)>;

// ---- map index --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum MapValue {
    Str(String),
    I64(i64),
    U128(u128),
}

impl MapValue {
    fn key(&self) -> Key<'_> {
        match self {
            MapValue::Str(s) => Key::Str(s.as_bytes()),
            MapValue::I64(x) => Key::I64(*x),
            MapValue::U128(x) => Key::U128(*x),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MapValue::Str(s) => {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            MapValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MapValue::U128(x) => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

fn map_index_files(n: u32, per: &[(u32, Vec<MapValue>)], key_type: KeyType, prefix: bool) -> Result<Files> {
    // distinct values per point, first occurrence first
    let per: Vec<(u32, Vec<MapValue>)> = per
        .iter()
        .map(|(id, vals)| {
            let mut seen = BTreeSet::new();
            (*id, vals.iter().filter(|v| seen.insert(*v)).cloned().collect())
        })
        .collect();
    let mut by_value: BTreeMap<&MapValue, Vec<u32>> = BTreeMap::new();
    for (id, vals) in &per {
        for v in vals {
            by_value.entry(v).or_default().push(*id);
        }
    }
    let entries: Vec<(Key<'_>, &[u32])> = by_value.iter().map(|(v, ids)| (v.key(), ids.as_slice())).collect();
    let vtp = fmph::write_map(key_type, &entries).map_err(|e| Error::Internal(format!("values_to_points: {e}")))?;
    let mut slot: Vec<Option<&Vec<MapValue>>> = vec![None; n as usize];
    for (id, vals) in &per {
        slot[*id as usize] = Some(vals);
    }
    let ptv = point_to_values(n, |i| {
        let mut b = Vec::new();
        let vals = slot[i as usize].map_or(&[][..], |v| v.as_slice());
        for v in vals {
            v.encode(&mut b);
        }
        (b, vals.len() as u64)
    });
    let deleted = no_value_bitmap(n, |i| slot[i as usize].is_none_or(|v| v.is_empty()));
    let pairs: usize = per.iter().map(|(_, v)| v.len()).sum();
    let mut files: Files = vec![
        ("values_to_points.bin", vtp),
        ("point_to_values.bin", ptv),
        ("deleted.bin", deleted),
        ("mmap_field_index_config.json", format!("{{\"total_key_value_pairs\":{pairs}}}").into_bytes()),
    ];
    if prefix {
        let keys: Vec<(&[u8], u64)> = by_value
            .iter()
            .map(|(v, ids)| match v {
                MapValue::Str(s) => Ok((s.as_bytes(), ids.len() as u64)),
                other => Err(Error::Internal(format!("prefix index over non-string {other:?}"))),
            })
            .collect::<Result<_>>()?;
        files.push(("prefix_index.bin", prefix_index(&keys)));
    }
    Ok(files)
}

/// `prefix_index.bin`: the keys in byte order with their id counts, front-coded in blocks.
fn prefix_index(keys: &[(&[u8], u64)]) -> Vec<u8> {
    struct Block {
        bytes: Vec<u8>,
        keys: u32,
        first: Vec<u8>,
        ids: u64,
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut prev: &[u8] = &[];
    for &(key, ids) in keys {
        if blocks.last().is_none_or(|b| b.bytes.len() >= PREFIX_BLOCK_BYTES) {
            blocks.push(Block { bytes: Vec::new(), keys: 0, first: key.to_vec(), ids: 0 });
            prev = &[];
        }
        let b = blocks.last_mut().expect("a block");
        let shared = prev.iter().zip(key).take_while(|(a, b)| a == b).count();
        b.bytes.extend_from_slice(&(shared as u32).to_le_bytes());
        b.bytes.extend_from_slice(&((key.len() - shared) as u32).to_le_bytes());
        b.bytes.extend_from_slice(&(ids as u32).to_le_bytes());
        b.bytes.extend_from_slice(&key[shared..]);
        b.keys += 1;
        b.ids += ids;
        prev = key;
    }
    let mut index = Vec::new();
    for b in &blocks {
        for x in [b.bytes.len() as u32, b.keys, b.first.len() as u32, 0] {
            index.extend_from_slice(&x.to_le_bytes());
        }
        index.extend_from_slice(&b.ids.to_le_bytes());
        index.extend_from_slice(&b.first);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"QdrPrfx\0");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    out.extend_from_slice(&(blocks.len() as u64).to_le_bytes());
    out.extend_from_slice(&(index.len() as u64).to_le_bytes());
    out.extend_from_slice(&index);
    for b in &blocks {
        out.extend_from_slice(&b.bytes);
    }
    out
}

// ---- numeric index ----------------------------------------------------------------------------

/// A numeric index value: `i64` (integer, datetime µs) or `f64` (float).
trait NumValue: Copy + std::fmt::Debug {
    /// Qdrant's order (floats: IEEE, so -0.0 == 0.0).
    fn order(&self, other: &Self) -> Ordering;
    fn bytes(&self) -> [u8; 8];
    /// Whether `p` is strictly closer to `l` than to `r` (the histogram's split rule).
    fn closer_to_left(p: Self, l: Self, r: Self) -> bool;
}

impl NumValue for i64 {
    fn order(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
    fn bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn closer_to_left(p: i64, l: i64, r: i64) -> bool {
        // the distance as Qdrant computes it: the unsigned difference read as i64
        (p.abs_diff(l) as i64) < (p.abs_diff(r) as i64)
    }
}

impl NumValue for f64 {
    fn order(&self, other: &Self) -> Ordering {
        self.partial_cmp(other).unwrap_or_else(|| self.total_cmp(other))
    }
    fn bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn closer_to_left(p: f64, l: f64, r: f64) -> bool {
        let d = |a: f64, b: f64| if a > b { a - b } else { b - a };
        d(p, l) < d(p, r)
    }
}

#[derive(Debug, Clone, Copy)]
struct Pair<T> {
    value: T,
    id: u32,
}

impl<T: NumValue> PartialEq for Pair<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T: NumValue> Eq for Pair<T> {}
impl<T: NumValue> PartialOrd for Pair<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: NumValue> Ord for Pair<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value.order(&other.value).then(self.id.cmp(&other.id))
    }
}

/// Qdrant's cardinality histogram: borders with the pair counts of the buckets on each side.
struct Histogram<T: NumValue> {
    total: u64,
    borders: BTreeMap<Pair<T>, (u64, u64)>,
}

impl<T: NumValue> Histogram<T> {
    fn new() -> Self {
        Histogram { total: 0, borders: BTreeMap::new() }
    }

    fn bucket_limit(&self) -> u64 {
        ((self.total as f64 * HISTOGRAM_PRECISION) as u64).clamp(10, HISTOGRAM_MAX_BUCKET)
    }

    fn before(&self, k: &Pair<T>) -> Option<(Pair<T>, (u64, u64))> {
        self.borders.range(..*k).next_back().map(|(k, v)| (*k, *v))
    }
    fn after(&self, k: &Pair<T>) -> Option<(Pair<T>, (u64, u64))> {
        self.borders.range((Bound::Excluded(*k), Bound::Unbounded)).next().map(|(k, v)| (*k, *v))
    }

    /// Insert `p`; `all` is the set of every pair inserted so far, `p` included.
    fn insert(&mut self, p: Pair<T>, all: &BTreeSet<Pair<T>>) {
        self.total += 1;
        if self.borders.len() < 2 {
            self.borders.insert(p, (0, 0));
            return;
        }
        let limit = self.bucket_limit();
        let mut l = self.borders.range(..=p).next_back().map(|(k, v)| (*k, *v));
        let mut r = self.after(&p);
        let mut ll = l.and_then(|(k, _)| self.before(&k));
        let mut rr = r.and_then(|(k, _)| self.after(&k));
        let mut remove = None;
        let mut create = None;
        match (&mut l, &mut r) {
            (None, Some(r)) => {
                let c = r.1 .1 + 1;
                if c > limit {
                    create = Some((p, (0, 0)));
                } else {
                    if let Some(rr) = &mut rr {
                        rr.1 .0 = c;
                    }
                    remove = Some(r.0);
                    create = Some((p, (0, c)));
                }
            }
            (Some(l), None) => {
                let c = l.1 .0 + 1;
                if c > limit {
                    create = Some((p, (0, 0)));
                } else {
                    if let Some(ll) = &mut ll {
                        ll.1 .1 = c;
                    }
                    remove = Some(l.0);
                    create = Some((p, (c, 0)));
                }
            }
            (Some(l), Some(r)) => {
                let c = l.1 .1 + 1;
                if c <= limit {
                    l.1 .1 = c;
                    r.1 .0 = c;
                } else if T::closer_to_left(p.value, l.0.value, r.0.value) {
                    let next = *all.range((Bound::Excluded(l.0), Bound::Unbounded)).next().expect("p follows l");
                    let mut counts = (l.1 .0 + 1, l.1 .1);
                    match &mut ll {
                        Some(ll) if l.1 .0 < limit => {
                            ll.1 .1 = counts.0;
                            remove = Some(l.0);
                        }
                        _ => {
                            counts.0 = 0;
                            l.1 .1 = 0;
                        }
                    }
                    create = Some((next, counts));
                } else {
                    let prev = *all.range(..r.0).next_back().expect("p precedes r");
                    let mut counts = (r.1 .0, r.1 .1 + 1);
                    match &mut rr {
                        Some(rr) if r.1 .1 < limit => {
                            rr.1 .0 = counts.1;
                            remove = Some(r.0);
                        }
                        _ => {
                            counts.1 = 0;
                            r.1 .0 = 0;
                        }
                    }
                    create = Some((prev, counts));
                }
            }
            (None, None) => unreachable!("two or more borders"),
        }
        for (k, v) in [l, r, ll, rr].into_iter().flatten() {
            self.borders.insert(k, v);
        }
        if let Some(k) = remove {
            self.borders.remove(&k);
        }
        if let Some((k, v)) = create {
            self.borders.insert(k, v);
        }
    }

    fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 28 * self.borders.len());
        out.extend_from_slice(&(self.borders.len() as u64).to_le_bytes());
        for (k, (left, right)) in &self.borders {
            out.extend_from_slice(&k.value.bytes());
            out.extend_from_slice(&k.id.to_le_bytes());
            out.extend_from_slice(&left.to_le_bytes());
            out.extend_from_slice(&right.to_le_bytes());
        }
        out
    }
}

fn numeric_index_files<T: NumValue>(n: u32, per: &[(u32, Vec<T>)]) -> Files {
    let mut all: BTreeSet<Pair<T>> = BTreeSet::new();
    let mut hist = Histogram::new();
    for (id, vals) in per {
        for &value in vals {
            let p = Pair { value, id: *id };
            if all.insert(p) {
                hist.insert(p, &all);
            }
        }
    }
    let mut data = Vec::with_capacity(16 * all.len());
    for p in &all {
        data.extend_from_slice(&p.value.bytes());
        data.extend_from_slice(&p.id.to_le_bytes());
        data.extend_from_slice(&[0; 4]);
    }
    let mut slot: Vec<Option<&Vec<T>>> = vec![None; n as usize];
    for (id, vals) in per {
        slot[*id as usize] = Some(vals);
    }
    let ptv = point_to_values(n, |i| {
        let vals = slot[i as usize].map_or(&[][..], |v| v.as_slice());
        (vals.iter().flat_map(|v| v.bytes()).collect(), vals.len() as u64)
    });
    let deleted = no_value_bitmap(n, |i| slot[i as usize].is_none_or(|v| v.is_empty()));
    let max_values = per.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    vec![
        ("data_block_index.bin", block_index(&data)),
        ("data.bin", data),
        ("point_to_values.bin", ptv),
        ("deleted.bin", deleted),
        (
            "histogram_config.json",
            format!(
                "{{\"max_bucket_size\":{HISTOGRAM_MAX_BUCKET},\"precision\":{HISTOGRAM_PRECISION},\"total_count\":{}}}",
                all.len()
            )
            .into_bytes(),
        ),
        ("histogram_borders.bin", hist.serialize()),
        ("mmap_field_index_config.json", format!("{{\"max_values_per_point\":{max_values}}}").into_bytes()),
    ]
}

// ---- geo index --------------------------------------------------------------------------------

/// Qdrant's packed geohash of a point, full length (12 characters = 60 bits, then the length in
/// the low 4 bits). Each coordinate is scaled into [1, 2) (multiply, then add: two roundings)
/// and the top 32 bits of its f64 mantissa are interleaved, longitude in the odd positions.
fn geohash12(lon: f64, lat: f64) -> u64 {
    let bits = |x: f64| ((x.to_bits() >> 20) & 0xFFFF_FFFF) as u32;
    let lat32 = bits(lat * 0.005_555_555_555_555_556 + 1.5);
    let lon32 = bits(lon * 0.002_777_777_777_777_778 + 1.5);
    let mut h = 0u64;
    for i in 0..32 {
        h |= u64::from((lat32 >> i) & 1) << (2 * i);
        h |= u64::from((lon32 >> i) & 1) << (2 * i + 1);
    }
    (h & !0xF) | 12
}

/// The prefix of length `k` (0..=12) of a packed hash.
fn geohash_prefix(h: u64, k: u32) -> u64 {
    if k == 0 {
        return 0;
    }
    let keep = !0u64 << (64 - 5 * k);
    (h & keep) | u64::from(k)
}

fn geo_index_files(per: &[(u32, Vec<(f64, f64)>)]) -> Files {
    let per: Vec<&(u32, Vec<(f64, f64)>)> = per.iter().filter(|(_, v)| !v.is_empty()).collect();
    let n = per.last().map_or(0, |(id, _)| id + 1);
    let mut slot: Vec<Option<&Vec<(f64, f64)>>> = vec![None; n as usize];
    let mut points_map: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    // prefix -> (points, values)
    let mut counts: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    for (id, vals) in &per {
        slot[*id as usize] = Some(vals);
        let hashes: Vec<u64> = vals.iter().map(|&(lon, lat)| geohash12(lon, lat)).collect();
        let mut seen = BTreeSet::new();
        for &h in &hashes {
            points_map.entry(h).or_default().insert(*id);
            for k in 0..=12 {
                let p = geohash_prefix(h, k);
                let c = counts.entry(p).or_default();
                c.1 += 1;
                if seen.insert(p) {
                    c.0 += 1;
                }
            }
        }
    }
    let ptv = point_to_values(n, |i| {
        let vals = slot[i as usize].map_or(&[][..], |v| v.as_slice());
        (
            vals.iter().flat_map(|(lon, lat)| lon.to_le_bytes().into_iter().chain(lat.to_le_bytes())).collect(),
            vals.len() as u64,
        )
    });
    let deleted = no_value_bitmap(n, |i| slot[i as usize].is_none());
    let mut pm = Vec::with_capacity(16 * points_map.len());
    let mut ids = Vec::new();
    for (h, set) in &points_map {
        let start = (ids.len() / 4) as u32;
        for id in set {
            ids.extend_from_slice(&id.to_le_bytes());
        }
        pm.extend_from_slice(&h.to_le_bytes());
        pm.extend_from_slice(&start.to_le_bytes());
        pm.extend_from_slice(&((ids.len() / 4) as u32).to_le_bytes());
    }
    let mut cph = Vec::with_capacity(16 * counts.len());
    for (h, (points, values)) in &counts {
        cph.extend_from_slice(&h.to_le_bytes());
        cph.extend_from_slice(&points.to_le_bytes());
        cph.extend_from_slice(&values.to_le_bytes());
    }
    let total: usize = per.iter().map(|(_, v)| v.len()).sum();
    let max = per.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    vec![
        ("point_to_values.bin", ptv),
        ("deleted.bin", deleted),
        ("points_map_block_index.bin", block_index(&pm)),
        ("points_map.bin", pm),
        ("points_map_ids.bin", ids),
        ("counts_per_hash_block_index.bin", block_index(&cph)),
        ("counts_per_hash.bin", cph),
        (
            "mmap_field_index_stats.json",
            format!("{{\"points_values_count\":{total},\"max_values_per_point\":{max}}}").into_bytes(),
        ),
    ]
}

// ---- full-text index --------------------------------------------------------------------------

/// Bits needed for `x` (0 for 0).
fn bit_width(x: u32) -> u32 {
    u32::BITS - x.leading_zeros()
}

/// BitPacker4x: 128 numbers of `width` bits; number k goes to lane k % 4 at position k / 4,
/// each lane an LSB-first stream of `width` u32 words; word w of lane j at byte 16w + 4j.
pub(crate) fn pack4x(numbers: &[u32], width: u32, out: &mut Vec<u8>) {
    debug_assert_eq!(numbers.len(), 128);
    let mut words = vec![0u32; 4 * width as usize];
    if width > 0 {
        for (k, &x) in numbers.iter().enumerate() {
            let (lane, pos) = (k % 4, (k / 4) as u32);
            let bit = pos * width;
            let (w, off) = ((bit / 32) as usize, bit % 32);
            words[4 * w + lane] |= x << off;
            if off + width > 32 {
                words[4 * (w + 1) + lane] |= x >> (32 - off);
            }
        }
    }
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Qdrant's stored document length for BM25 totals: exact below 8192 tokens, then rounded
/// down to 13 significant bits, saturating at 134,201,344.
pub(crate) fn round_doc_len(len: u32) -> u32 {
    if len < 1 << 12 {
        return len;
    }
    let exponent = bit_width(len) - 12;
    if exponent > 15 {
        return 0x1FFF << 14;
    }
    len & !((1u32 << (exponent - 1)) - 1)
}

/// A zstd frame holding `content` in raw (stored) blocks: any zstd decoder reads it.
fn zstd_raw_frame(content: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 128 * 1024;
    let mut out = Vec::with_capacity(content.len() + 16 + 3 * content.len().div_ceil(BLOCK));
    out.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD]);
    out.push(0xE0); // single segment, 8-byte content size, no checksum
    out.extend_from_slice(&(content.len() as u64).to_le_bytes());
    if content.is_empty() {
        out.extend_from_slice(&[1, 0, 0]); // last, raw, 0 bytes
    }
    let mut chunks = content.chunks(BLOCK).peekable();
    while let Some(c) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        let header = last | ((c.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(c);
    }
    out
}

/// One document of the text index: its token stream (token ids) and exact length.
struct Document {
    id: u32,
    stream: Vec<u32>,
    len: u32,
}

fn text_index_files(spec: &TextSpec, per: &[(u32, Vec<String>)]) -> Result<Files> {
    let phrase = spec.params.phrase_matching;
    let mut vocab: Vec<String> = Vec::new();
    let mut token_ids: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut docs: Vec<Document> = Vec::new();
    for (id, strings) in per {
        if strings.is_empty() {
            continue;
        }
        let mut tokens: Vec<String> = Vec::new();
        let mut boundaries = 0u32;
        for (i, s) in strings.iter().enumerate() {
            if phrase && strings.len() > 1 && i > 0 {
                tokens.push(ARRAY_BOUNDARY_TOKEN.to_string());
                boundaries += 1;
            }
            tokens.extend(spec.params.tokenize(TextKind::Document, s));
        }
        let len = tokens.len() as u32 - boundaries;
        if len == 0 {
            tokens.clear();
        }
        let stream = tokens
            .into_iter()
            .map(|t| {
                *token_ids.entry(t.clone()).or_insert_with(|| {
                    vocab.push(t);
                    (vocab.len() - 1) as u32
                })
            })
            .collect();
        docs.push(Document { id: *id, stream, len });
    }
    let n = docs.last().map_or(0, |d| d.id + 1);
    // postings: token -> (point, positions)
    let mut postings: Vec<Vec<(u32, Vec<u32>)>> = vec![Vec::new(); vocab.len()];
    let mut counts = vec![0u64; n as usize];
    for d in &docs {
        let mut seen: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (pos, &t) in d.stream.iter().enumerate() {
            seen.entry(t).or_default().push(pos as u32);
        }
        counts[d.id as usize] = seen.len() as u64;
        for (t, positions) in seen {
            postings[t as usize].push((d.id, positions));
        }
    }
    let total_tokens: u64 = if spec.scoring { docs.iter().map(|d| u64::from(round_doc_len(d.len))).sum() } else { 0 };

    let mut headers = Vec::with_capacity(24 * postings.len());
    let mut bodies = Vec::new();
    let base = 40 + 24 * postings.len() as u64;
    for list in &postings {
        let ids: Vec<u32> = list.iter().map(|(id, _)| *id).collect();
        let chunks = ids.len() / 128;
        let rem = ids.len() % 128;
        // var-size data: positions, and each id's offset into it
        let mut var = Vec::new();
        let mut offsets = Vec::with_capacity(ids.len());
        if phrase {
            for (_, positions) in list {
                offsets.push(var.len() as u32);
                for p in positions {
                    var.extend_from_slice(&p.to_le_bytes());
                }
            }
        }
        let mut id_data = Vec::new();
        let mut chunk_records = Vec::new();
        for c in 0..chunks {
            let block = &ids[128 * c..128 * c + 128];
            let deltas: Vec<u32> =
                block.iter().enumerate().map(|(k, &x)| if k == 0 { 0 } else { x - block[k - 1] }).collect();
            let width = deltas.iter().map(|&d| bit_width(d)).max().unwrap_or(0);
            chunk_records.extend_from_slice(&block[0].to_le_bytes());
            chunk_records.extend_from_slice(&(id_data.len() as u32).to_le_bytes());
            if phrase {
                for o in &offsets[128 * c..128 * c + 128] {
                    chunk_records.extend_from_slice(&o.to_le_bytes());
                }
            }
            pack4x(&deltas, width, &mut id_data);
        }
        let align = (4 - (id_data.len() + var.len()) % 4) % 4;
        let start = base + bodies.len() as u64;
        headers.extend_from_slice(&start.to_le_bytes());
        headers.extend_from_slice(&(chunks as u32).to_le_bytes());
        headers.extend_from_slice(&(id_data.len() as u32).to_le_bytes());
        headers.push(align as u8);
        headers.push(rem as u8);
        headers.extend_from_slice(&[0, 0]);
        headers.extend_from_slice(&(var.len() as u32).to_le_bytes());
        bodies.extend_from_slice(&ids.last().copied().unwrap_or(0).to_le_bytes());
        bodies.extend_from_slice(&chunk_records);
        bodies.extend_from_slice(&id_data);
        bodies.extend_from_slice(&var);
        bodies.resize(bodies.len() + align, 0);
        for k in 128 * chunks..ids.len() {
            bodies.extend_from_slice(&ids[k].to_le_bytes());
            if phrase {
                bodies.extend_from_slice(&offsets[k].to_le_bytes());
            }
        }
    }
    let mut post = Vec::with_capacity(base as usize + bodies.len());
    post.extend_from_slice(&(postings.len() as u64).to_le_bytes());
    post.extend_from_slice(&total_tokens.to_le_bytes());
    post.resize(40, 0);
    post.extend_from_slice(&headers);
    post.extend_from_slice(&bodies);

    let ids_of_token: Vec<[u32; 1]> = (0..vocab.len() as u32).map(|t| [t]).collect();
    let mut order: Vec<usize> = (0..vocab.len()).collect();
    order.sort_by(|&a, &b| vocab[a].as_bytes().cmp(vocab[b].as_bytes()));
    let entries: Vec<(Key<'_>, &[u32])> =
        order.iter().map(|&t| (Key::Str(vocab[t].as_bytes()), &ids_of_token[t][..])).collect();
    let vocab_file = fmph::write_map(KeyType::Str, &entries).map_err(|e| Error::Internal(format!("vocab: {e}")))?;

    let ptc: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
    let deleted = no_value_bitmap(n, |i| counts[i as usize] == 0);
    let mut files: Files = vec![
        ("vocab.dat", vocab_file),
        ("postings.dat", post),
        ("point_to_tokens_count.dat", ptc),
        ("deleted_points.dat", deleted),
    ];
    if spec.scoring {
        let mut lens = vec![0u32; n as usize];
        for d in &docs {
            lens[d.id as usize] = d.len;
        }
        let mut planes = Vec::with_capacity(4 * lens.len());
        for byte in 0..4 {
            planes.extend(lens.iter().map(|l| l.to_le_bytes()[byte]));
        }
        let mut doc_len = Vec::with_capacity(64 + planes.len() + 32);
        doc_len.extend_from_slice(b"QDRANTDL");
        doc_len.extend_from_slice(&1u32.to_le_bytes());
        doc_len.extend_from_slice(&1u32.to_le_bytes());
        doc_len.extend_from_slice(&u64::from(n).to_le_bytes());
        doc_len.resize(64, 0);
        doc_len.extend_from_slice(&zstd_raw_frame(&planes));
        files.push(("point_to_doc_len.dat", doc_len));
        files.push(("term_frequencies.dat", term_frequencies(&postings)));
    }
    Ok(files)
}

/// `term_frequencies.dat`: per token its posting list's frequencies minus one, full blocks of
/// 128 BitPacker4x-packed (own width each, located by `blocks + 1` offsets), then the
/// remainder as one width byte and an LSB-first bit stream.
fn term_frequencies(postings: &[Vec<(u32, Vec<u32>)>]) -> Vec<u8> {
    let mut headers = Vec::with_capacity(12 * postings.len());
    let mut data = Vec::new();
    for list in postings {
        let freqs: Vec<u32> = list.iter().map(|(_, positions)| positions.len() as u32 - 1).collect();
        headers.extend_from_slice(&(data.len() as u64).to_le_bytes());
        headers.extend_from_slice(&(freqs.len() as u32).to_le_bytes());
        let blocks = freqs.len() / 128;
        let mut packed = Vec::new();
        let mut offsets = vec![0u32];
        for b in 0..blocks {
            let block = &freqs[128 * b..128 * b + 128];
            let width = block.iter().map(|&f| bit_width(f)).max().unwrap_or(0);
            pack4x(block, width, &mut packed);
            offsets.push(packed.len() as u32);
        }
        for o in offsets {
            data.extend_from_slice(&o.to_le_bytes());
        }
        data.extend_from_slice(&packed);
        let rest = &freqs[128 * blocks..];
        let width = rest.iter().map(|&f| bit_width(f)).max().unwrap_or(0);
        data.push(width as u8);
        let mut bits = vec![0u8; (rest.len() * width as usize).div_ceil(8)];
        for (k, &f) in rest.iter().enumerate() {
            for b in 0..width as usize {
                if (f >> b) & 1 == 1 {
                    let pos = k * width as usize + b;
                    bits[pos / 8] |= 1 << (pos % 8);
                }
            }
        }
        data.extend_from_slice(&bits);
    }
    let mut out = Vec::with_capacity(8 + headers.len() + data.len());
    out.extend_from_slice(&(postings.len() as u64).to_le_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(&data);
    out
}

/// Check a `point_to_values.bin` header against the point count (used by tests and readers).
/// The postings a map index stores in `<dir>/values_to_points.bin`: every value with its
/// ascending, distinct point ids. `None` when the file is absent.
pub enum MapPostings {
    Str(Vec<(String, Vec<u32>)>),
    Int(Vec<(i64, Vec<u32>)>),
    Uuid(Vec<(u128, Vec<u32>)>),
}

/// Read a map index's `values_to_points.bin` (keys of `key_type`); ids at or past
/// `point_count`, a key of another type or a non-UTF-8 keyword are `Corrupted`.
pub fn read_map_postings<S: Storage + ?Sized>(
    storage: &S,
    dir: &str,
    key_type: KeyType,
    point_count: u64,
) -> Result<Option<MapPostings>> {
    let file = join(dir, "values_to_points.bin");
    if !storage.is_file(&file)? {
        return Ok(None);
    }
    let map = fmph::ParsedMap::parse(&storage.read_all(&file)?, &file)?;
    let bad = |m: String| -> Error { FormatError::corrupt(&file, m).into() };
    if map.key_type != key_type {
        return Err(bad(format!("key type {:?} where {key_type:?} was expected", map.key_type)));
    }
    let (mut strs, mut ints, mut uuids) = (Vec::new(), Vec::new(), Vec::new());
    for (stored, mut ids) in map.entries {
        if ids.iter().any(|&i| u64::from(i) >= point_count) {
            return Err(bad(format!("a point id past the segment's {point_count} points")));
        }
        ids.sort_unstable();
        ids.dedup();
        match fmph::parsed_key(map.key_type, &stored) {
            Key::Str(b) => {
                strs.push((String::from_utf8(b.to_vec()).map_err(|_| bad("a key is not UTF-8".into()))?, ids))
            }
            Key::I64(k) => ints.push((k, ids)),
            Key::U128(k) => uuids.push((k, ids)),
        }
    }
    Ok(Some(match key_type {
        KeyType::Str => MapPostings::Str(strs),
        KeyType::I64 => MapPostings::Int(ints),
        KeyType::U128 => MapPostings::Uuid(uuids),
    }))
}

/// A numeric index's `<dir>/data.bin`: its distinct `(value bits, point id)` pairs in value
/// order, the value as the index stores it (`i64` for integer and datetime µs, `f64` bits for
/// float). `None` when the file is absent. A partial pair, an id at or past `point_count`, or
/// values out of order (compared as `f64` when `float`) are `Corrupted`.
pub fn read_numeric_pairs<S: Storage + ?Sized>(
    storage: &S,
    dir: &str,
    float: bool,
    point_count: u64,
) -> Result<Option<Vec<(u64, u32)>>> {
    let file = join(dir, "data.bin");
    if !storage.is_file(&file)? {
        return Ok(None);
    }
    let b = storage.read_all(&file)?;
    let bad = |m: String| -> Error { FormatError::corrupt(&file, m).into() };
    if b.len() % 16 != 0 {
        return Err(bad(format!("{} bytes, not whole 16-byte pairs", b.len())));
    }
    let pairs: Vec<(u64, u32)> = b
        .chunks_exact(16)
        .map(|c| (u64::from_le_bytes(c[..8].try_into().unwrap()), u32::from_le_bytes(c[8..12].try_into().unwrap())))
        .collect();
    if pairs.iter().any(|p| u64::from(p.1) >= point_count) {
        return Err(bad(format!("a point id past the segment's {point_count} points")));
    }
    let ordered = if float {
        pairs.iter().all(|p| !f64::from_bits(p.0).is_nan())
            && pairs.windows(2).all(|w| f64::from_bits(w[0].0) <= f64::from_bits(w[1].0))
    } else {
        pairs.windows(2).all(|w| (w[0].0 as i64) <= (w[1].0 as i64))
    };
    if !ordered {
        return Err(bad("values out of order".into()));
    }
    Ok(Some(pairs))
}

/// BitPacker4x unpacking, the inverse of [`pack4x`]: 128 numbers of `width` bits from
/// `16 × width` bytes.
fn unpack4x(bytes: &[u8], width: u32) -> [u32; 128] {
    let mut out = [0u32; 128];
    if width == 0 {
        return out;
    }
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    let mask = if width == 32 { u32::MAX } else { (1u32 << width) - 1 };
    for (k, x) in out.iter_mut().enumerate() {
        let (lane, pos) = (k % 4, (k / 4) as u32);
        let bit = pos * width;
        let (w, off) = ((bit / 32) as usize, bit % 32);
        let mut v = word(4 * w + lane) >> off;
        if off + width > 32 {
            v |= word(4 * (w + 1) + lane) << (32 - off);
        }
        *x = v & mask;
    }
    out
}

/// One token's posting list: its points, ascending, and under phrase matching each point's
/// positions of the token in the point's token stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenList {
    pub ids: Vec<u32>,
    pub positions: Option<Positions>,
}

/// The positions of a [`TokenList`]'s points, ascending per point: those of `ids[k]` are
/// `pos[starts[k]..starts[k + 1]]` (`starts` has one more entry than `ids`, the first 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Positions {
    pub starts: Vec<u32>,
    pub pos: Vec<u32>,
}

impl Default for Positions {
    fn default() -> Self {
        Positions { starts: vec![0], pos: Vec::new() }
    }
}

impl TokenList {
    /// Append point `id` (above every listed one) with its positions (`Some` under phrase
    /// matching).
    pub fn push(&mut self, id: u32, positions: Option<&[u32]>) {
        self.ids.push(id);
        if let Some(p) = positions {
            let list = self.positions.get_or_insert_with(Positions::default);
            list.pos.extend_from_slice(p);
            list.starts.push(list.pos.len() as u32);
        }
    }

    /// The positions of point `id` (empty when it is not listed or no positions are kept).
    pub fn positions_of(&self, id: u32) -> &[u32] {
        match (&self.positions, self.ids.binary_search(&id)) {
            (Some(p), Ok(k)) => &p.pos[p.starts[k] as usize..p.starts[k + 1] as usize],
            _ => &[],
        }
    }
}

/// The posting lists of a full-text index's `postings.dat` (layout above [`text_index_files`]),
/// in token-id order: each list's point ids, ascending, and with `phrase` (`phrase_matching`:
/// every id carries an offset into the list's positions) each id's token positions. Every
/// offset and length is checked against the file; ids must ascend strictly, stay below
/// `point_count`, and end at the list's recorded last id; each id's positions must be whole
/// `u32`s, at least one, ascending.
fn parse_text_postings(b: &[u8], phrase: bool, point_count: u64) -> std::result::Result<Vec<TokenList>, String> {
    use crate::format::le::{u32_at, u64_at};
    if b.len() < 40 {
        return Err(format!("{} bytes, shorter than the 40-byte header", b.len()));
    }
    let count = u64_at(b, 0);
    let headers_end = count.checked_mul(24).and_then(|h| h.checked_add(40));
    if headers_end.is_none_or(|e| e > b.len() as u64) {
        return Err(format!("{count} list headers do not fit in {} bytes", b.len()));
    }
    let per_id: u64 = if phrase { 4 } else { 0 };
    let mut lists = Vec::with_capacity(count as usize);
    for t in 0..count as usize {
        let h = 40 + 24 * t;
        let start = u64_at(b, h);
        let chunks = u64::from(u32_at(b, h + 8));
        let id_bytes = u64::from(u32_at(b, h + 12));
        let (align, rem) = (u64::from(b[h + 16]), u64::from(b[h + 17]));
        let var = u64::from(u32_at(b, h + 20));
        let record = 8 + 128 * per_id;
        let records_at = start.checked_add(4);
        let ids_at = records_at.and_then(|r| r.checked_add(chunks * record));
        let rem_at = ids_at.and_then(|i| i.checked_add(id_bytes + var + align));
        let end = rem_at.and_then(|r| r.checked_add(rem * (4 + per_id)));
        let (Some(records_at), Some(ids_at), Some(rem_at), Some(end)) = (records_at, ids_at, rem_at, end) else {
            return Err(format!("list {t} overflows"));
        };
        if end > b.len() as u64 || rem >= 128 {
            return Err(format!("list {t} ({chunks} chunks, {rem} more ids) runs past the file's {} bytes", b.len()));
        }
        let (records_at, ids_at, rem_at) = (records_at as usize, ids_at as usize, rem_at as usize);
        let last_id = u32_at(b, start as usize);
        let mut ids: Vec<u32> = Vec::with_capacity((chunks * 128 + rem) as usize);
        let mut offsets: Vec<u32> = Vec::new();
        for c in 0..chunks as usize {
            let r = records_at + c * record as usize;
            let first = u32_at(b, r);
            let off = u64::from(u32_at(b, r + 4));
            let next = if c + 1 < chunks as usize { u64::from(u32_at(b, r + record as usize + 4)) } else { id_bytes };
            let width = next.checked_sub(off).filter(|w| w % 16 == 0 && *w <= 16 * 32 && next <= id_bytes);
            let Some(width) = width else {
                return Err(format!("list {t} chunk {c}: packed ids at {off}..{next} of {id_bytes} bytes"));
            };
            let at = ids_at + off as usize;
            let deltas = unpack4x(&b[at..at + width as usize], (width / 16) as u32);
            let mut x = first;
            ids.push(x);
            for &d in &deltas[1..] {
                x = x.checked_add(d).ok_or_else(|| format!("list {t} chunk {c}: an id past u32"))?;
                ids.push(x);
            }
            if phrase {
                offsets.extend((0..128).map(|k| u32_at(b, r + 8 + 4 * k)));
            }
        }
        for k in 0..rem as usize {
            let at = rem_at + k * (4 + per_id) as usize;
            ids.push(u32_at(b, at));
            if phrase {
                offsets.push(u32_at(b, at + 4));
            }
        }
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("list {t}: ids not strictly ascending"));
        }
        if let Some(&last) = ids.last() {
            if last != last_id || u64::from(last) >= point_count {
                return Err(format!(
                    "list {t}: last id {last} (recorded {last_id}) against the segment's {point_count} points"
                ));
            }
        }
        let positions = if phrase {
            let var_at = ids_at + id_bytes as usize;
            let mut list = Positions::default();
            for k in 0..offsets.len() {
                let (from, to) = (offsets[k] as u64, offsets.get(k + 1).map_or(var, |&o| u64::from(o)));
                if from >= to || to > var || from % 4 != 0 || to % 4 != 0 {
                    return Err(format!("list {t}: positions of id {} at {from}..{to} of {var} bytes", ids[k]));
                }
                let first = list.pos.len();
                list.pos.extend((from..to).step_by(4).map(|o| u32_at(b, var_at + o as usize)));
                if list.pos[first..].windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("list {t}: positions of id {} not ascending", ids[k]));
                }
                list.starts.push(list.pos.len() as u32);
            }
            Some(list)
        } else {
            None
        };
        lists.push(TokenList { ids, positions });
    }
    Ok(lists)
}

/// Every token with its posting list.
pub type TokenPostings = Vec<(String, TokenList)>;

/// Per point holding values (ascending id): its `(lon, lat)` values.
pub type GeoValues = Vec<(u32, Vec<(f64, f64)>)>;

/// The postings of a full-text index directory (`vocab.dat` + `postings.dat`): every token
/// with its posting list (positions with `phrase`). `None` when the files are absent (a mutable
/// index).
pub fn read_text_postings<S: Storage + ?Sized>(
    storage: &S,
    dir: &str,
    phrase: bool,
    point_count: u64,
) -> Result<Option<TokenPostings>> {
    let (vocab_file, post_file) = (join(dir, "vocab.dat"), join(dir, "postings.dat"));
    if !storage.is_file(&vocab_file)? || !storage.is_file(&post_file)? {
        return Ok(None);
    }
    let mut lists: Vec<Option<TokenList>> = parse_text_postings(&storage.read_all(&post_file)?, phrase, point_count)
        .map_err(|m| Error::from(FormatError::corrupt(&post_file, m)))?
        .into_iter()
        .map(Some)
        .collect();
    let map = fmph::ParsedMap::parse(&storage.read_all(&vocab_file)?, &vocab_file)?;
    let bad = |m: String| -> Error { FormatError::corrupt(&vocab_file, m).into() };
    if map.key_type != KeyType::Str {
        return Err(bad(format!("key type {:?} where tokens were expected", map.key_type)));
    }
    let mut out = Vec::with_capacity(map.entries.len());
    for (stored, ids) in map.entries {
        let (&[token_id], Key::Str(token)) = (ids.as_slice(), fmph::parsed_key(KeyType::Str, &stored)) else {
            return Err(bad("a token without exactly one token id".into()));
        };
        let token = String::from_utf8(token.to_vec()).map_err(|_| bad("a token is not UTF-8".into()))?;
        let list = lists
            .get_mut(token_id as usize)
            .and_then(Option::take)
            .ok_or_else(|| bad(format!("token id {token_id} has no posting list of its own")))?;
        out.push((token, list));
    }
    Ok(Some(out))
}

/// What a full-text index with BM25 scoring counted when it was built: the statistics Qdrant
/// keeps for the index's life (a later delete only hides the point from scoring).
#[derive(Debug, Clone, PartialEq)]
pub struct TextBuildStats {
    /// Points holding at least one token at build (non-zero `point_to_tokens_count.dat`).
    pub documents: usize,
    /// Entries of `point_to_tokens_count.dat`: up to the last point holding a token.
    pub points: usize,
    /// The sum of the documents' stored (rounded) lengths: `postings.dat`'s header.
    pub total_tokens: u64,
    /// Per token: its token id and the length of its posting list.
    pub tokens: std::collections::HashMap<String, (u32, usize)>,
}

/// The build statistics of the full-text index in `dir` (`vocab.dat`, `postings.dat`'s list
/// headers and total, `point_to_tokens_count.dat`), without decoding any posting list. `None`
/// when one of the files is absent; sizes that do not fit the files are `Corrupted`.
pub fn read_text_build_stats<S: Storage + ?Sized>(storage: &S, dir: &str) -> Result<Option<TextBuildStats>> {
    use crate::format::le::{u32_at, u64_at};
    let (vocab_file, post_file, count_file) =
        (join(dir, "vocab.dat"), join(dir, "postings.dat"), join(dir, "point_to_tokens_count.dat"));
    for f in [&vocab_file, &post_file, &count_file] {
        if !storage.is_file(f)? {
            return Ok(None);
        }
    }
    let counts = storage.read_all(&count_file)?;
    if counts.len() % 8 != 0 {
        return Err(FormatError::corrupt(&count_file, format!("{} bytes, not whole u64 counts", counts.len())).into());
    }
    let documents = counts.chunks_exact(8).filter(|c| c.iter().any(|&b| b != 0)).count();
    let b = storage.read_all(&post_file)?;
    let bad_post = |m: String| -> Error { FormatError::corrupt(&post_file, m).into() };
    if b.len() < 40 {
        return Err(bad_post(format!("{} bytes, shorter than the 40-byte header", b.len())));
    }
    let count = u64_at(&b, 0);
    let total_tokens = u64_at(&b, 8);
    if count.checked_mul(24).and_then(|h| h.checked_add(40)).is_none_or(|e| e > b.len() as u64) {
        return Err(bad_post(format!("{count} list headers do not fit in {} bytes", b.len())));
    }
    let lens: Vec<usize> = (0..count as usize)
        .map(|t| {
            let h = 40 + 24 * t;
            u32_at(&b, h + 8) as usize * 128 + b[h + 17] as usize
        })
        .collect();
    let map = fmph::ParsedMap::parse(&storage.read_all(&vocab_file)?, &vocab_file)?;
    let bad = |m: String| -> Error { FormatError::corrupt(&vocab_file, m).into() };
    if map.key_type != KeyType::Str {
        return Err(bad(format!("key type {:?} where tokens were expected", map.key_type)));
    }
    if map.entries.len() != lens.len() {
        return Err(bad(format!("{} tokens for {} posting lists", map.entries.len(), lens.len())));
    }
    let mut tokens = std::collections::HashMap::with_capacity(lens.len());
    for (stored, ids) in map.entries {
        let (&[token_id], Key::Str(token)) = (ids.as_slice(), fmph::parsed_key(KeyType::Str, &stored)) else {
            return Err(bad("a token without exactly one token id".into()));
        };
        let token = String::from_utf8(token.to_vec()).map_err(|_| bad("a token is not UTF-8".into()))?;
        let len =
            *lens.get(token_id as usize).ok_or_else(|| bad(format!("token id {token_id} has no posting list")))?;
        if tokens.insert(token, (token_id, len)).is_some() {
            return Err(bad("a token appears twice".into()));
        }
    }
    Ok(Some(TextBuildStats { documents, points: counts.len() / 8, total_tokens, tokens }))
}

/// What BM25 scores with, read from a full-text index's files: per token its token id and
/// its `(point, term frequency)` list (ascending points), and per point its exact document
/// length (0 for a point without tokens): the sum of its term frequencies, the array
/// separator of a phrase index left out, which is the length Qdrant records in
/// `point_to_doc_len.dat` (a zstd frame this reader has no need to decode).
#[derive(Debug, Clone, PartialEq)]
pub struct TextScoringData {
    pub tokens: Vec<TokenFrequencies>,
    pub lens: Vec<u32>,
}

/// One token of a [`TextScoringData`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFrequencies {
    pub token: String,
    pub token_id: u32,
    /// `(point, term frequency)`, ascending points.
    pub postings: Vec<(u32, u32)>,
}

/// [`TextScoringData`] from `vocab.dat`, `postings.dat` and `term_frequencies.dat` in `dir`.
/// `None` when a file is absent. Anything that does not fit is `Corrupted`.
pub fn read_text_scoring<S: Storage + ?Sized>(
    storage: &S,
    dir: &str,
    phrase: bool,
    point_count: u64,
) -> Result<Option<TextScoringData>> {
    let files = ["vocab.dat", "postings.dat", "term_frequencies.dat"].map(|f| join(dir, f));
    for f in &files {
        if !storage.is_file(f)? {
            return Ok(None);
        }
    }
    let [vocab_file, post_file, tf_file] = files;
    let lists = parse_text_postings(&storage.read_all(&post_file)?, phrase, point_count)
        .map_err(|m| Error::from(FormatError::corrupt(&post_file, m)))?;
    let sizes: Vec<usize> = lists.iter().map(|l| l.ids.len()).collect();
    let tfs = parse_term_frequencies(&storage.read_all(&tf_file)?, &sizes)
        .map_err(|m| Error::from(FormatError::corrupt(&tf_file, m)))?;
    let map = fmph::ParsedMap::parse(&storage.read_all(&vocab_file)?, &vocab_file)?;
    let bad = |m: String| -> Error { FormatError::corrupt(&vocab_file, m).into() };
    if map.key_type != KeyType::Str || map.entries.len() != lists.len() {
        return Err(bad(format!("{} tokens for {} posting lists", map.entries.len(), lists.len())));
    }
    let mut lists: Vec<Option<(TokenList, Vec<u32>)>> = lists.into_iter().zip(tfs).map(Some).collect();
    let mut tokens = Vec::with_capacity(lists.len());
    let mut lens = vec![0u32; point_count as usize];
    for (stored, ids) in map.entries {
        let (&[token_id], Key::Str(token)) = (ids.as_slice(), fmph::parsed_key(KeyType::Str, &stored)) else {
            return Err(bad("a token without exactly one token id".into()));
        };
        let token = String::from_utf8(token.to_vec()).map_err(|_| bad("a token is not UTF-8".into()))?;
        let (list, tf) = lists
            .get_mut(token_id as usize)
            .and_then(Option::take)
            .ok_or_else(|| bad(format!("token id {token_id} has no posting list of its own")))?;
        if token != ARRAY_BOUNDARY_TOKEN {
            for (&id, &f) in list.ids.iter().zip(&tf) {
                lens[id as usize] = lens[id as usize].saturating_add(f);
            }
        }
        tokens.push(TokenFrequencies { token, token_id, postings: list.ids.into_iter().zip(tf).collect() });
    }
    Ok(Some(TextScoringData { tokens, lens }))
}

/// `term_frequencies.dat`: `u64` token count, per token `{u64 offset into the data, u32
/// entries}`, then per token its frequencies minus one: the byte offsets (`u32`, from 0) of its
/// full blocks of 128 and their end, the BitPacker4x blocks (width = block bytes / 16), then
/// the rest as a width byte and its values bit-packed LSB first.
fn parse_term_frequencies(b: &[u8], sizes: &[usize]) -> std::result::Result<Vec<Vec<u32>>, String> {
    use crate::format::le::{u32_at, u64_at};
    if b.len() < 8 {
        return Err(format!("{} bytes, shorter than the 8-byte header", b.len()));
    }
    let count = u64_at(b, 0);
    if count != sizes.len() as u64 {
        return Err(format!("{count} frequency lists for {} posting lists", sizes.len()));
    }
    let data = 8 + 12 * sizes.len();
    if data > b.len() {
        return Err(format!("{count} list headers do not fit in {} bytes", b.len()));
    }
    let mut out = Vec::with_capacity(sizes.len());
    for (t, &size) in sizes.iter().enumerate() {
        let h = 8 + 12 * t;
        let (offset, n) = (u64_at(b, h), u32_at(b, h + 8) as usize);
        if n != size {
            return Err(format!("token {t}: {n} frequencies for {size} points"));
        }
        let start = usize::try_from(offset).ok().and_then(|o| o.checked_add(data)).filter(|&s| s <= b.len());
        let Some(start) = start else { return Err(format!("token {t}: offset {offset} past the file")) };
        let blocks = n / 128;
        let packed = start + 4 * (blocks + 1);
        if packed > b.len() {
            return Err(format!("token {t}: block offsets past the file"));
        }
        let offs: Vec<usize> = (0..=blocks).map(|k| u32_at(b, start + 4 * k) as usize).collect();
        let mut f = Vec::with_capacity(n);
        for k in 0..blocks {
            let (lo, hi) = (offs[k], offs[k + 1]);
            if hi < lo || (hi - lo) % 16 != 0 || (hi - lo) / 16 > 32 || packed + hi > b.len() {
                return Err(format!("token {t}: block {k} spans bytes {lo}..{hi}"));
            }
            f.extend(unpack4x(&b[packed + lo..packed + hi], ((hi - lo) / 16) as u32).iter().map(|x| x + 1));
        }
        let tail = packed + offs[blocks];
        let rest = n - 128 * blocks;
        let width = *b.get(tail).ok_or_else(|| format!("token {t}: no width for the last values"))? as usize;
        let bits = tail + 1;
        if width > 32 || bits + (rest * width).div_ceil(8) > b.len() {
            return Err(format!("token {t}: {rest} values of {width} bits past the file"));
        }
        for k in 0..rest {
            let mut v = 0u64;
            for j in 0..width {
                let pos = k * width + j;
                v |= u64::from((b[bits + pos / 8] >> (pos % 8)) & 1) << j;
            }
            f.push(v as u32 + 1);
        }
        out.push(f);
    }
    Ok(out)
}

/// A geo index's `<dir>/point_to_values.bin`: per point (ascending id) its `(lon, lat)` values.
/// `None` when the file is absent. Ranges outside the file or ids at or past `point_count` are
/// `Corrupted`.
pub fn read_geo_values<S: Storage + ?Sized>(storage: &S, dir: &str, point_count: u64) -> Result<Option<GeoValues>> {
    use crate::format::le::u64_at;
    let file = join(dir, "point_to_values.bin");
    if !storage.is_file(&file)? {
        return Ok(None);
    }
    let b = storage.read_all(&file)?;
    let n = point_to_values_count(&b, &file)?;
    let bad = |m: String| -> Error { FormatError::corrupt(&file, m).into() };
    let table_end = n.checked_mul(16).and_then(|t| t.checked_add(PTV_HEADER));
    if n > point_count || table_end.is_none_or(|e| e > b.len() as u64) {
        return Err(bad(format!("{n} points (segment has {point_count}) in {} bytes", b.len())));
    }
    let mut out = Vec::new();
    for i in 0..n as usize {
        let at = PTV_HEADER as usize + 16 * i;
        let (start, count) = (u64_at(&b, at), u64_at(&b, at + 8));
        if count == 0 {
            continue;
        }
        let end = count.checked_mul(16).and_then(|c| c.checked_add(start));
        if start < PTV_HEADER || end.is_none_or(|e| e > b.len() as u64) {
            return Err(bad(format!("point {i}: {count} values at {start} past the file's end")));
        }
        let vals = (0..count as usize)
            .map(|k| {
                let v = start as usize + 16 * k;
                (f64::from_bits(u64_at(&b, v)), f64::from_bits(u64_at(&b, v + 8)))
            })
            .collect();
        out.push((i as u32, vals));
    }
    Ok(Some(out))
}

/// A bool index's `trues/` and `falses/` flags directories: the ids holding `false` and those
/// holding `true`, ascending. `None` when `dir` is absent. Flags past `point_count` name no
/// point of the segment and are ignored.
pub fn read_bool_postings<S: Storage + ?Sized>(
    storage: &S,
    dir: &str,
    point_count: u64,
) -> Result<Option<[Vec<u32>; 2]>> {
    use crate::format::field_index_write::{FALSES_DIR, TRUES_DIR};
    if storage.entry_kind(dir)? != Some(crate::storage::EntryKind::Dir) {
        return Ok(None);
    }
    let ids = |sub: &str| -> Result<Vec<u32>> {
        let flags = crate::format::flags::read_flags_dir(storage, &join(dir, sub))?;
        Ok((0..flags.len().min(point_count)).filter(|&i| flags.get(i)).map(|i| i as u32).collect())
    };
    Ok(Some([ids(FALSES_DIR)?, ids(TRUES_DIR)?]))
}

pub fn point_to_values_count(b: &[u8], path: &str) -> std::result::Result<u64, FormatError> {
    if b.len() < PTV_HEADER as usize || crate::format::le::u64_at(b, 0) != PTV_HEADER {
        return Err(FormatError::corrupt(path, "not a point_to_values file"));
    }
    Ok(crate::format::le::u64_at(b, 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;
    use serde_json::json;

    #[test]
    fn empty_numeric_index() {
        let files = numeric_index_files::<i64>(0, &[]);
        let get = |n: &str| files.iter().find(|(k, _)| *k == n).unwrap().1.clone();
        assert_eq!(get("data.bin").len(), 0);
        assert_eq!(get("data_block_index.bin").len(), 32);
        assert_eq!(get("histogram_borders.bin"), vec![0; 8]);
        assert_eq!(get("point_to_values.bin").len(), 4096);
        assert_eq!(get("deleted.bin").len(), 0);
        assert_eq!(get("histogram_config.json"), br#"{"max_bucket_size":10000,"precision":0.01,"total_count":0}"#);
    }

    #[test]
    fn histogram_borders_stay_sorted_and_count_every_pair() {
        let per: Vec<(u32, Vec<f64>)> = (0..3000u32).map(|i| (i, vec![((i * 7919) % 1000) as f64 / 3.0])).collect();
        let mut all = BTreeSet::new();
        let mut h = Histogram::new();
        for (id, v) in &per {
            let p = Pair { value: v[0], id: *id };
            assert!(all.insert(p));
            h.insert(p, &all);
        }
        assert_eq!(h.total, 3000);
        assert!(h.borders.len() > 10, "{} borders", h.borders.len());
        // the bucket counts between consecutive borders agree from both sides
        let b: Vec<_> = h.borders.values().collect();
        for w in b.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
    }

    #[test]
    fn optimized_index_records_immutable_types() {
        let st = MemoryStorage::new();
        let pts = |v: Value| v.as_object().unwrap().clone();
        let points = vec![(0, pts(json!({"k": "a"}))), (1, pts(json!({}))), (3, pts(json!({"k": ["b", "a", "b"]})))];
        let types =
            build_optimized_field_index(&st, "seg", "k", &json!({"type": "keyword", "on_disk": true}), points.clone())
                .unwrap();
        let v = serde_json::to_value(&types).unwrap();
        assert_eq!(
            v,
            json!([
                {"index_type": "keyword_index", "mutability": "immutable", "storage_type": {"mmap": {"is_on_disk": true}}},
                {"index_type": "null_index", "mutability": "immutable", "storage_type": {"mmap": {"is_on_disk": false}}}
            ])
        );
        let dir = sub_index_dir("seg", "k", "map");
        let ptv = st.read_all(&join(&dir, "point_to_values.bin")).unwrap();
        assert_eq!(point_to_values_count(&ptv, "p").unwrap(), 4);
        assert_eq!(st.read_all(&join(&dir, "deleted.bin")).unwrap().to_vec(), vec![0b0110, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            &st.read_all(&join(&dir, "mmap_field_index_config.json")).unwrap()[..],
            br#"{"total_key_value_pairs":3}"#
        );
        let m = fmph::ParsedMap::parse(&st.read_all(&join(&dir, "values_to_points.bin")).unwrap(), "v").unwrap();
        assert_eq!(m.entries, vec![(b"a\xff".to_vec(), vec![0, 3]), (b"b\xff".to_vec(), vec![3])]);
        let types = build_optimized_field_index(&st, "seg", "g", &json!("geo"), points).unwrap();
        assert_eq!(types[0].mutability, IndexMutability::Immutable);
    }
}

#[cfg(test)]
mod reader_tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::query::text::TextParams;
    use crate::storage::MemoryStorage;
    use serde_json::json;

    const WORDS: [&str; 7] = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"];

    /// 700 points, most with text (some as arrays, some empty), a geo point (some two, some an
    /// out-of-range one) and a bool (some both values, some none).
    fn points() -> Vec<(u32, Payload)> {
        (0..700u32)
            .filter(|i| i % 11 != 5)
            .map(|i| {
                let w = |k: u32| WORDS[(k % 7) as usize];
                let text = match i % 4 {
                    0 => json!(format!("{} {} {}", w(i), w(i / 3), w(i * i))),
                    1 => json!([w(i), format!("{} {}", w(i + 1), w(i))]),
                    2 => json!(format!("{}", w(i / 5))),
                    _ => json!(null),
                };
                let geo = match i % 5 {
                    0 => json!({"lon": (i % 360) as f64 - 180.0, "lat": (i % 90) as f64 * 0.5}),
                    1 => json!([{"lon": 1.5, "lat": -2.25}, {"lon": -70.0, "lat": i as f64 / 10.0}]),
                    2 => json!({"lon": 10.0, "lat": 95.0}),
                    _ => json!("nowhere"),
                };
                let flag = match i % 3 {
                    0 => json!(i % 2 == 0),
                    1 => json!([true, false]),
                    _ => json!(7),
                };
                (i, json!({"t": text, "g": geo, "b": flag}).as_object().unwrap().clone())
            })
            .collect()
    }

    fn built(field: &str, schema: Value) -> (MemoryStorage, String) {
        let st = MemoryStorage::new();
        build_optimized_field_index(&st, "seg", field, &schema, points()).unwrap();
        let suffix = match schema.get("type").and_then(Value::as_str).unwrap_or(schema.as_str().unwrap_or("")) {
            "text" => "text",
            "geo" => "map",
            _ => "bool",
        };
        let dir = sub_index_dir("seg", field, suffix);
        (st, dir)
    }

    #[test]
    fn text_postings_read_back_with_and_without_positions() {
        for phrase in [false, true] {
            let schema = json!({"type": "text", "tokenizer": "word", "phrase_matching": phrase});
            let (st, dir) = built("t", schema.clone());
            let tp = TextParams::from_schema(&schema);
            // token -> point -> positions in the point's stream (strings one position apart)
            let mut want: BTreeMap<String, BTreeMap<u32, Vec<u32>>> = BTreeMap::new();
            for (id, p) in points() {
                let path = JsonPath::parse("t").unwrap();
                let vals = path.value_get(&p);
                let mut at = 0u32;
                for (i, s) in crate::query::filter::flat(&vals, Value::as_str).into_iter().enumerate() {
                    at += u32::from(i > 0);
                    for t in tp.tokenize(TextKind::Document, s) {
                        want.entry(t).or_default().entry(id).or_default().push(at);
                        at += 1;
                    }
                }
            }
            assert!(want.values().any(|ids| ids.len() > 128), "a list spans full chunks");
            assert!(want.values().any(|ids| ids.values().any(|p| p.len() > 1)), "a token twice in a point");
            let got: BTreeMap<String, TokenList> = read_text_postings(&st, &dir, phrase, 700)
                .unwrap()
                .expect("files present")
                .into_iter()
                .filter(|(t, _)| t != ARRAY_BOUNDARY_TOKEN)
                .collect();
            let ids: BTreeMap<&String, Vec<u32>> = want.iter().map(|(t, m)| (t, m.keys().copied().collect())).collect();
            assert_eq!(got.iter().map(|(t, l)| (t, l.ids.clone())).collect::<BTreeMap<_, _>>(), ids);
            for (t, list) in &got {
                assert_eq!(list.positions.is_some(), phrase, "{t}");
                for &id in &list.ids {
                    let expected: &[u32] = if phrase { &want[t][&id] } else { &[] };
                    assert_eq!(list.positions_of(id), expected, "token {t} point {id}");
                }
            }
            // Reading with the wrong position layout or too few points fails cleanly.
            let err = read_text_postings(&st, &dir, !phrase, 700).expect_err("wrong layout");
            assert_eq!(err.kind(), ErrorKind::Corrupted);
            let err = read_text_postings(&st, &dir, phrase, 600).expect_err("ids past the points");
            assert_eq!(err.kind(), ErrorKind::Corrupted);
        }
        assert_eq!(read_text_postings(&MemoryStorage::new(), "none", false, 9).unwrap(), None);
    }

    #[test]
    fn damaged_text_postings_are_corrupted_never_a_panic() {
        let (st, dir) = built("t", json!({"type": "text", "phrase_matching": true}));
        let file = join(&dir, "postings.dat");
        let good = st.read_all(&file).unwrap().to_vec();
        let mut cases: Vec<Vec<u8>> = (0..good.len()).step_by(7).map(|n| good[..n].to_vec()).collect();
        for at in (0..good.len()).step_by(5) {
            let mut b = good.clone();
            b[at] ^= 0xA5;
            cases.push(b);
        }
        let mut corrupted = 0;
        for bytes in cases {
            crate::storage::write_file(&st, &file, &bytes).unwrap();
            match read_text_postings(&st, &dir, true, 700) {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
                    corrupted += 1;
                }
            }
        }
        assert!(corrupted > good.len() / 7, "only {corrupted} damaged files detected");
    }

    /// The document tokens of a test point's `t`, as the text index takes them.
    fn doc_tokens(tp: &TextParams, p: &Payload) -> Vec<String> {
        let path = JsonPath::parse("t").unwrap();
        let vals = path.value_get(p);
        crate::query::filter::flat(&vals, Value::as_str)
            .into_iter()
            .flat_map(|s| tp.tokenize(TextKind::Document, s))
            .collect()
    }

    #[test]
    fn text_build_stats_read_back() {
        for phrase in [false, true] {
            let schema = json!({"type": "text", "phrase_matching": phrase, "scoring": true});
            let (st, dir) = built("t", schema.clone());
            let tp = TextParams::from_schema(&schema);
            let (mut documents, mut total) = (0usize, 0u64);
            let mut df: BTreeMap<String, usize> = BTreeMap::new();
            for (_, p) in points() {
                let tokens = doc_tokens(&tp, &p);
                if tokens.is_empty() {
                    continue;
                }
                documents += 1;
                total += tokens.len() as u64;
                for t in tokens.into_iter().collect::<BTreeSet<_>>() {
                    *df.entry(t).or_default() += 1;
                }
            }
            let got = read_text_build_stats(&st, &dir).unwrap().expect("files present");
            assert_eq!((got.documents, got.total_tokens), (documents, total), "phrase {phrase}");
            let got_df: BTreeMap<String, usize> = got
                .tokens
                .iter()
                .filter(|(t, _)| *t != ARRAY_BOUNDARY_TOKEN)
                .map(|(t, (_, n))| (t.clone(), *n))
                .collect();
            assert_eq!(got_df, df, "phrase {phrase}");
            let mut ids: Vec<u32> = got.tokens.values().map(|x| x.0).collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..got.tokens.len() as u32).collect::<Vec<_>>(), "token ids are 0..n");
        }
        assert_eq!(read_text_build_stats(&MemoryStorage::new(), "none").unwrap(), None);
        // Damaged: a count file that is not whole u64s, a postings header past the file.
        let (st, dir) = built("t", json!({"type": "text", "scoring": true}));
        let counts = join(&dir, "point_to_tokens_count.dat");
        let good = st.read_all(&counts).unwrap().to_vec();
        crate::storage::write_file(&st, &counts, &good[..good.len() - 3]).unwrap();
        assert_eq!(read_text_build_stats(&st, &dir).unwrap_err().kind(), ErrorKind::Corrupted);
        crate::storage::write_file(&st, &counts, &good).unwrap();
        let post = join(&dir, "postings.dat");
        let mut bytes = st.read_all(&post).unwrap().to_vec();
        bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        crate::storage::write_file(&st, &post, &bytes).unwrap();
        assert_eq!(read_text_build_stats(&st, &dir).unwrap_err().kind(), ErrorKind::Corrupted);
        crate::storage::write_file(&st, &post, &bytes[..30]).unwrap();
        assert_eq!(read_text_build_stats(&st, &dir).unwrap_err().kind(), ErrorKind::Corrupted);
    }

    #[test]
    fn text_scoring_data_read_back() {
        for phrase in [false, true] {
            let schema = json!({"type": "text", "phrase_matching": phrase, "scoring": true});
            let (st, dir) = built("t", schema.clone());
            let tp = TextParams::from_schema(&schema);
            let mut lens = vec![0u32; 700];
            let mut want: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
            for (id, p) in points() {
                let tokens = doc_tokens(&tp, &p);
                lens[id as usize] = tokens.len() as u32;
                let mut tf: BTreeMap<String, u32> = BTreeMap::new();
                for t in tokens {
                    *tf.entry(t).or_default() += 1;
                }
                for (t, f) in tf {
                    want.entry(t).or_default().push((id, f));
                }
            }
            assert!(want.values().any(|l| l.len() > 128 && l.iter().any(|x| x.1 > 1)), "full blocks, tf > 1");
            let data = read_text_scoring(&st, &dir, phrase, 700).unwrap().expect("files present");
            assert_eq!(data.lens, lens);
            let got: BTreeMap<String, Vec<(u32, u32)>> = data
                .tokens
                .into_iter()
                .filter(|t| t.token != ARRAY_BOUNDARY_TOKEN)
                .map(|t| (t.token, t.postings))
                .collect();
            assert_eq!(got, want, "phrase {phrase}");
        }
        // Damaged frequency and length files are `Corrupted`, never a panic.
        let (st, dir) = built("t", json!({"type": "text", "scoring": true}));
        for file in ["term_frequencies.dat"] {
            let path = join(&dir, file);
            let good = st.read_all(&path).unwrap().to_vec();
            let mut corrupted = 0;
            let mut cases: Vec<Vec<u8>> = (0..good.len()).step_by(11).map(|n| good[..n].to_vec()).collect();
            for at in (0..good.len().min(4000)).step_by(3) {
                let mut b = good.clone();
                b[at] ^= 0x5A;
                cases.push(b);
            }
            for bytes in cases {
                crate::storage::write_file(&st, &path, &bytes).unwrap();
                if let Err(e) = read_text_scoring(&st, &dir, false, 700) {
                    assert_eq!(e.kind(), ErrorKind::Corrupted, "{file}: {e}");
                    corrupted += 1;
                }
            }
            assert!(corrupted > good.len() / 11, "{file}: only {corrupted} damaged files detected");
            crate::storage::write_file(&st, &path, &good).unwrap();
        }
    }

    #[test]
    fn geo_values_read_back() {
        let (st, dir) = built("g", json!("geo"));
        let want: Vec<(u32, Vec<(f64, f64)>)> = points()
            .into_iter()
            .filter_map(|(id, p)| {
                let v = &p["g"];
                let all: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                let pts: Vec<(f64, f64)> = all.into_iter().filter_map(geo_value).collect();
                (!pts.is_empty()).then_some((id, pts))
            })
            .collect();
        assert!(want.iter().any(|(_, p)| p.len() == 2));
        assert_eq!(read_geo_values(&st, &dir, 700).unwrap(), Some(want));
        assert_eq!(read_geo_values(&st, &dir, 10).unwrap_err().kind(), ErrorKind::Corrupted);
        let file = join(&dir, "point_to_values.bin");
        let good = st.read_all(&file).unwrap().to_vec();
        crate::storage::write_file(&st, &file, &good[..good.len() - 3]).unwrap();
        assert_eq!(read_geo_values(&st, &dir, 700).unwrap_err().kind(), ErrorKind::Corrupted);
    }

    #[test]
    fn bool_postings_read_back() {
        let (st, dir) = built("b", json!("bool"));
        let mut want: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        for (id, p) in points() {
            let all: Vec<&Value> = match &p["b"] {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for b in [false, true] {
                if all.iter().any(|v| v.as_bool() == Some(b)) {
                    want[b as usize].push(id);
                }
            }
        }
        assert!(!want[0].is_empty() && !want[1].is_empty());
        assert_eq!(read_bool_postings(&st, &dir, 700).unwrap(), Some(want));
        assert_eq!(read_bool_postings(&st, "seg/none", 700).unwrap(), None);
    }
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    fn unpack4x(block: &[u8], width: u32) -> Vec<u32> {
        let mut out = vec![0u32; 128];
        for (k, o) in out.iter_mut().enumerate() {
            let (lane, pos) = (k % 4, (k / 4) as u32);
            for b in 0..width {
                let bit = pos * width + b;
                let word = u32::from_le_bytes(block[16 * (bit / 32) as usize + 4 * lane..][..4].try_into().unwrap());
                *o |= ((word >> (bit % 32)) & 1) << b;
            }
        }
        out
    }

    #[test]
    fn pack4x_round_trips_every_width() {
        for width in 0..=32u32 {
            let max = if width == 32 { u32::MAX } else { (1u32 << width).wrapping_sub(1) };
            let nums: Vec<u32> = (0..128u32).map(|k| k.wrapping_mul(2_654_435_761) & max).collect();
            let mut out = Vec::new();
            pack4x(&nums, width, &mut out);
            assert_eq!(out.len(), 16 * width as usize);
            assert_eq!(unpack4x(&out, width), nums, "width {width}");
            // the reader's word-wise unpacking agrees with this bit-by-bit reference
            assert_eq!(super::unpack4x(&out, width).to_vec(), nums, "reader, width {width}");
        }
    }

    #[test]
    fn doc_len_rounding() {
        for len in [0, 1, 4095, 4096, 8191] {
            assert_eq!(round_doc_len(len), len);
        }
        assert_eq!(round_doc_len(8192), 8192);
        assert_eq!(round_doc_len(8193), 8192);
        assert_eq!(round_doc_len(16_383), 16_382);
        assert_eq!(round_doc_len(u32::MAX), 134_201_344);
        for len in (8192..2_000_000).step_by(977) {
            let r = round_doc_len(len);
            assert!(r <= len && (len - r) as f64 / len as f64 <= 1.0 / 4096.0, "{len} -> {r}");
        }
    }

    #[test]
    fn zstd_raw_frames_decode() {
        for size in [0usize, 1, 1000, 128 * 1024, 128 * 1024 + 1, 300_000] {
            let content: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let frame = zstd_raw_frame(&content);
            let mut src = &frame[..];
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut src).unwrap();
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut dec, &mut out).unwrap();
            assert_eq!(out, content, "size {size}");
        }
    }

    #[test]
    fn geohash_prefixes() {
        let h = geohash12(2.35, 48.85);
        assert_eq!(h & 0xF, 12);
        assert_eq!(geohash_prefix(h, 12), h);
        assert_eq!(geohash_prefix(h, 0), 0);
        assert_eq!(geohash_prefix(h, 1) >> 59, h >> 59);
        // the scaling trick maps +90 / +180 onto the same cell as -90 / -180, as Qdrant does
        assert_eq!(geohash12(180.0, 90.0), geohash12(-180.0, -90.0));
    }
}
