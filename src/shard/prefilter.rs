//! Filters answered per segment from in-memory payload postings, and the visible-point bit sets.
//!
//! Qdrant answers a condition on an indexed field from the field's payload index instead of
//! reading payloads, and estimates a filter's cardinality from the same indexes to pick plain or
//! graph search. Here the shard keeps for every segment, per indexed field and index kind,
//! postings made on first use (value → sorted internal ids, or the values sorted for ranges):
//! read from the segment's immutable index files where it has them (map, numeric, bool,
//! full-text and geo indexes of optimized segments), else built from the segment's stored
//! payloads. A segment's stored payloads and index files never change while it is loaded
//! (updates go to the overlay and a flush reloads the segments), so the postings stay valid for
//! the segment's life; creating or deleting a field's index drops them (full-text postings
//! depend on the field's tokenizer settings).
//!
//! [`EdgeShard::segment_candidates`] turns a filter into the set of a segment's internal ids
//! that can pass it:
//! * a condition some index serves (the first index kind of the field that serves the condition,
//!   the same choice the per-point checker in [`crate::query::filter`] makes) and that the
//!   postings answer (`match` value/any on keyword, integer, uuid and bool indexes, `range` on
//!   integer, datetime and float indexes, `text`/`text_any` on full-text indexes, a radius,
//!   bounding box or polygon alone on geo indexes, `phrase` on full-text indexes with phrase
//!   matching, from the tokens' positions), and `has_id`, give their exact set;
//! * `must` intersects, a non-empty `should` unites, `must_not` complements an exact set;
//! * anything else (`except`, `prefix`, nested, `min_should`, `values_count`, unindexed fields,
//!   full-text conditions under tokenizer settings not reproduced here …) is unknown: the set
//!   becomes a superset and each candidate is checked on its payload.
//!
//! The set is also intersected with the segment's *visible* points: live in the segment and the
//! winning copy of their id in the shard (an overlay change or a newer copy elsewhere hides it).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::{EdgeShard, Loc, PointRef};
use crate::error::Result;
use crate::format::immutable_index::TokenList;
use crate::query::filter::{
    flat, float_range_to_int, parse_datetime, parse_uuid, value_to_integer, AnyVariants, Condition, FieldCondition,
    Filter, IndexKind, Match, Range, RangeInterface, ValueVariant,
};
use crate::query::geo::{GeoBoundingBox, GeoPoint, GeoPolygon, GeoRadius};
use crate::query::json_path::JsonPath;
use crate::query::text::{TextKind, TextParams};
use crate::segment::Segment;
use crate::storage::Storage;
use crate::types::PointId;

/// A set of internal ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Bits {
    words: Vec<u64>,
}

impl Bits {
    pub fn new(n: usize) -> Bits {
        Bits { words: vec![0; n.div_ceil(64)] }
    }

    /// `0..n`.
    pub fn full(n: usize) -> Bits {
        let mut b = Bits { words: vec![u64::MAX; n.div_ceil(64)] };
        b.trim(n);
        b
    }

    fn trim(&mut self, n: usize) {
        if n % 64 != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << (n % 64)) - 1;
            }
        }
    }

    #[inline]
    pub fn get(&self, i: u32) -> bool {
        self.words.get(i as usize / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    pub fn set(&mut self, i: u32) {
        let w = i as usize / 64;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (i % 64);
    }

    pub fn unset(&mut self, i: u32) {
        if let Some(w) = self.words.get_mut(i as usize / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    pub fn and_with(&mut self, o: &Bits) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= o.words.get(i).copied().unwrap_or(0);
        }
    }

    pub fn or_with(&mut self, o: &Bits) {
        if o.words.len() > self.words.len() {
            self.words.resize(o.words.len(), 0);
        }
        for (w, x) in self.words.iter_mut().zip(&o.words) {
            *w |= x;
        }
    }

    /// The complement within `0..n`.
    pub fn not_within(&self, n: usize) -> Bits {
        let mut out = Bits { words: vec![0; n.div_ceil(64)] };
        for (i, w) in out.words.iter_mut().enumerate() {
            *w = !self.words.get(i).copied().unwrap_or(0);
        }
        out.trim(n);
        out
    }

    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let t = w.trailing_zeros();
                w &= w - 1;
                Some(wi as u32 * 64 + t)
            })
        })
    }

    fn from_ids(ids: &[u32]) -> Bits {
        let mut b = Bits::default();
        for &i in ids {
            b.set(i);
        }
        b
    }
}

/// Postings of one field under one index kind, over a segment's live internal ids.
#[derive(Debug)]
pub(crate) enum Postings {
    Str(HashMap<String, Vec<u32>>),
    Int(HashMap<i64, Vec<u32>>),
    Uuid(HashMap<u128, Vec<u32>>),
    Bool([Vec<u32>; 2]),
    /// (value, internal id) sorted by value: integer and datetime (µs) ranges.
    SortedInt(Vec<(i64, u32)>),
    /// (value, internal id) sorted by value: float ranges.
    SortedFloat(Vec<(f64, u32)>),
    /// Full-text token → the points holding it (tokens of all the point's strings), with the
    /// token's positions under phrase matching.
    Text(HashMap<String, TokenList>),
    /// Per point holding geo values: its internal id and the values.
    Geo(Vec<(u32, Vec<GeoPoint>)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PostingKind {
    Keyword,
    IntMap,
    Uuid,
    Bool,
    IntRange,
    Datetime,
    Float,
    Text,
    Geo,
}

/// Per segment: postings built on first use.
#[derive(Debug, Default)]
pub(crate) struct PostingCache {
    map: parking_lot::Mutex<HashMap<(JsonPath, PostingKind), Arc<Postings>>>,
    /// The documents BM25 text queries score, per field ([`super::bm25`]).
    pub(crate) bm25: parking_lot::Mutex<HashMap<JsonPath, Arc<super::bm25::SegmentDocs>>>,
}

impl PostingCache {
    /// Forget every posting (a field's index was created or deleted: text postings depend on
    /// the tokenizer of the field's current schema).
    pub(crate) fn clear(&self) {
        self.map.lock().clear();
        self.bm25.lock().clear();
    }
}

/// The full-text tokens of a point's values under `tp`, as the text index's checker sees them
/// (every string value, tokenized as a document), each with its positions in the point's token
/// stream: the strings' tokens in order, one position left free between two strings (where
/// Qdrant's phrase index puts its separator token), so no phrase spans two strings.
fn token_positions(tp: &TextParams, vals: &[&Value]) -> std::collections::BTreeMap<String, Vec<u32>> {
    let mut out: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    let mut at = 0u32;
    for (i, s) in flat(vals, Value::as_str).into_iter().enumerate() {
        at += u32::from(i > 0);
        for t in tp.tokenize(TextKind::Document, s) {
            out.entry(t).or_default().push(at);
            at += 1;
        }
    }
    out
}

fn build_postings(seg: &Segment, path: &JsonPath, kind: PostingKind, text: Option<&TextParams>) -> Result<Postings> {
    let mut str_map: HashMap<String, Vec<u32>> = HashMap::new();
    let mut int_map: HashMap<i64, Vec<u32>> = HashMap::new();
    let mut uuid_map: HashMap<u128, Vec<u32>> = HashMap::new();
    let mut bools: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut ints: Vec<(i64, u32)> = Vec::new();
    let mut floats: Vec<(f64, u32)> = Vec::new();
    let mut docs: Vec<(u32, std::collections::BTreeMap<String, Vec<u32>>)> = Vec::new();
    let mut geo: Vec<(u32, Vec<GeoPoint>)> = Vec::new();
    if kind == PostingKind::Text && text.is_none() {
        return Err(crate::error::Error::Internal(format!("text postings of `{path}` without a text index")));
    }
    for (_, internal) in seg.id_tracker.iter_live() {
        let payload = seg.payload(internal)?;
        let vals = path.value_get(&payload);
        if vals.is_empty() {
            continue;
        }
        match kind {
            PostingKind::Keyword => {
                for s in flat(&vals, Value::as_str) {
                    str_map.entry(s.to_string()).or_default().push(internal);
                }
            }
            PostingKind::IntMap => {
                for i in flat(&vals, value_to_integer) {
                    int_map.entry(i).or_default().push(internal);
                }
            }
            PostingKind::Uuid => {
                for u in flat(&vals, |v| v.as_str().and_then(parse_uuid)) {
                    uuid_map.entry(u).or_default().push(internal);
                }
            }
            PostingKind::Bool => {
                for b in flat(&vals, Value::as_bool) {
                    bools[b as usize].push(internal);
                }
            }
            PostingKind::IntRange => ints.extend(flat(&vals, value_to_integer).into_iter().map(|v| (v, internal))),
            PostingKind::Datetime => {
                ints.extend(flat(&vals, |v| v.as_str().and_then(parse_datetime)).into_iter().map(|v| (v, internal)))
            }
            PostingKind::Float => floats.extend(flat(&vals, Value::as_f64).into_iter().map(|v| (v, internal))),
            PostingKind::Text => {
                let tokens = text.map(|tp| token_positions(tp, &vals)).unwrap_or_default();
                if !tokens.is_empty() {
                    docs.push((internal, tokens));
                }
            }
            PostingKind::Geo => {
                // As the payload rules read them: each value, or each element of an array.
                let pts = flat(&vals, GeoPoint::from_payload);
                if !pts.is_empty() {
                    geo.push((internal, pts));
                }
            }
        }
    }
    let tidy = |v: &mut Vec<u32>| {
        v.sort_unstable();
        v.dedup();
    };
    Ok(match kind {
        PostingKind::Keyword => {
            str_map.values_mut().for_each(tidy);
            Postings::Str(str_map)
        }
        PostingKind::IntMap => {
            int_map.values_mut().for_each(tidy);
            Postings::Int(int_map)
        }
        PostingKind::Uuid => {
            uuid_map.values_mut().for_each(tidy);
            Postings::Uuid(uuid_map)
        }
        PostingKind::Bool => {
            bools.iter_mut().for_each(tidy);
            Postings::Bool(bools)
        }
        PostingKind::IntRange | PostingKind::Datetime => {
            ints.sort_unstable();
            Postings::SortedInt(ints)
        }
        PostingKind::Float => {
            floats.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            Postings::SortedFloat(floats)
        }
        PostingKind::Text => {
            docs.sort_unstable_by_key(|d| d.0);
            let phrase = text.is_some_and(|tp| tp.phrase_matching);
            let mut map: HashMap<String, TokenList> = HashMap::new();
            for (id, tokens) in docs {
                for (t, at) in tokens {
                    map.entry(t).or_default().push(id, phrase.then_some(&at[..]));
                }
            }
            Postings::Text(map)
        }
        PostingKind::Geo => {
            geo.sort_unstable_by_key(|g| g.0);
            Postings::Geo(geo)
        }
    })
}

/// The postings of `path` for `kind` read from the segment's immutable payload-index files
/// (an optimized segment whose `payload_index/config.json` lists the matching immutable index):
/// a map index's `values_to_points.bin` (value → ascending ids), a numeric index's `data.bin`
/// (sorted distinct `(value, id)` pairs), a bool index's `trues`/`falses` flags, a full-text
/// index's `vocab.dat` + `postings.dat` (token → ids; only when the segment's schema for the
/// field has the tokenizer settings `text` of the current one, all of them reproduced here), or
/// a geo index's `point_to_values.bin`. `None` when the segment has no such files (appendable
/// segments, an index created after the segment was written): the caller builds the postings
/// from the stored payloads instead. Damaged files are `Corrupted` (the readers in
/// `format::immutable_index` check them).
fn index_file_postings(
    st: &dyn Storage,
    seg: &Segment,
    path: &JsonPath,
    kind: PostingKind,
    text: Option<&TextParams>,
) -> Result<Option<Postings>> {
    use crate::format::field_index_write::ARRAY_BOUNDARY_TOKEN;
    use crate::format::fmph::KeyType;
    use crate::format::immutable_index::{
        read_bool_postings, read_geo_values, read_map_postings, read_numeric_pairs, read_text_postings, MapPostings,
    };
    use crate::format::payload_index::{IndexMutability, PayloadIndexType as T};
    if seg.appendable {
        return Ok(None);
    }
    let want = match kind {
        PostingKind::Keyword => T::KeywordIndex,
        PostingKind::IntMap => T::IntMapIndex,
        PostingKind::Uuid => T::UuidMapIndex,
        PostingKind::IntRange => T::IntIndex,
        PostingKind::Datetime => T::DatetimeIndex,
        PostingKind::Float => T::FloatIndex,
        PostingKind::Bool => T::BoolIndex,
        PostingKind::Text => T::FullTextIndex,
        PostingKind::Geo => T::GeoIndex,
    };
    let found = seg.payload_index.indexed_types.iter().find(|(k, types)| {
        JsonPath::parse(k).as_ref() == Some(path)
            && types.iter().any(|t| t.index_type == want && t.mutability == IndexMutability::Immutable)
    });
    let Some((field, _)) = found else { return Ok(None) };
    let dir = crate::format::field_index_write::sub_index_dir(&seg.dir, field, want.dir_suffix());
    let n = seg.id_tracker.total_point_count();
    Ok(match kind {
        PostingKind::Bool => return Ok(read_bool_postings(st, &dir, n)?.map(Postings::Bool)),
        PostingKind::Geo => {
            return Ok(read_geo_values(st, &dir, n)?.map(|v| {
                Postings::Geo(
                    v.into_iter()
                        .map(|(id, pts)| (id, pts.into_iter().map(|(lon, lat)| GeoPoint { lon, lat }).collect()))
                        .collect(),
                )
            }))
        }
        PostingKind::Text => {
            let built_with = seg.payload_index.indexed_fields.get(field.as_str()).map(TextParams::from_schema);
            let Some(tp) = text.filter(|tp| tp.unsupported.is_empty() && built_with.as_ref() == Some(*tp)) else {
                return Ok(None);
            };
            return Ok(read_text_postings(st, &dir, tp.phrase_matching, n)?.map(|v| {
                // The phrase index's separator between array elements is no query's token.
                Postings::Text(v.into_iter().filter(|(t, _)| t != ARRAY_BOUNDARY_TOKEN).collect())
            }));
        }
        PostingKind::Keyword => read_map_postings(st, &dir, KeyType::Str, n)?,
        PostingKind::IntMap => read_map_postings(st, &dir, KeyType::I64, n)?,
        PostingKind::Uuid => read_map_postings(st, &dir, KeyType::U128, n)?,
        PostingKind::Float => {
            return Ok(read_numeric_pairs(st, &dir, true, n)?
                .map(|v| Postings::SortedFloat(v.into_iter().map(|(x, i)| (f64::from_bits(x), i)).collect())))
        }
        _ => {
            return Ok(read_numeric_pairs(st, &dir, false, n)?
                .map(|v| Postings::SortedInt(v.into_iter().map(|(x, i)| (x as i64, i)).collect())))
        }
    }
    .map(|m| match m {
        MapPostings::Str(v) => Postings::Str(v.into_iter().collect()),
        MapPostings::Int(v) => Postings::Int(v.into_iter().collect()),
        MapPostings::Uuid(v) => Postings::Uuid(v.into_iter().collect()),
    }))
}

/// What is known of the points of a segment passing a (sub)filter.
pub(crate) enum Pre {
    Exact(Bits),
    Superset(Bits),
    Unknown,
}

/// Whether an index kind serves a condition, and if so the set when the postings answer it.
enum Served {
    No,
    /// Served, but not answerable from postings: the payload check decides.
    Opaque,
    With(PostingKind, Query),
}

enum Query {
    Strs(Vec<String>),
    Ints(Vec<i64>),
    Uuids(Vec<u128>),
    Bool(bool),
    IntRange(Range<i64>),
    FloatRange(Range<f64>),
    /// Full-text query tokens: all of them (`text`) or any (`text_any`).
    Tokens {
        tokens: Vec<String>,
        all: bool,
    },
    /// A phrase's tokens, answered from the tokens' positions (the postings of a field whose
    /// index has `phrase_matching` always carry them: built and read with the field's setting);
    /// `None` on an index without `phrase_matching`, where no point matches.
    Phrase(Option<Vec<String>>),
    Geo {
        radius: Option<GeoRadius>,
        bbox: Option<GeoBoundingBox>,
        polygon: Option<GeoPolygon>,
    },
}

fn serve(kind: &IndexKind, fc: &FieldCondition) -> Served {
    let m = fc.r#match.as_ref();
    match kind {
        IndexKind::Keyword => match m {
            Some(Match::Value(ValueVariant::String(k))) => {
                Served::With(PostingKind::Keyword, Query::Strs(vec![k.clone()]))
            }
            Some(Match::Any(AnyVariants::Strings(l))) => Served::With(PostingKind::Keyword, Query::Strs(l.clone())),
            Some(Match::Except(AnyVariants::Strings(_)) | Match::Prefix(_) | Match::Substring(_)) => Served::Opaque,
            _ => Served::No,
        },
        IndexKind::IntMap => match m {
            Some(Match::Value(ValueVariant::Integer(k))) => Served::With(PostingKind::IntMap, Query::Ints(vec![*k])),
            Some(Match::Any(AnyVariants::Integers(l))) => Served::With(PostingKind::IntMap, Query::Ints(l.clone())),
            Some(Match::Except(AnyVariants::Integers(_))) => Served::Opaque,
            _ => Served::No,
        },
        IndexKind::Uuid => {
            let list = |l: &[String]| l.iter().map(|s| parse_uuid(s)).collect::<Option<Vec<u128>>>();
            match m {
                Some(Match::Value(ValueVariant::String(k))) => match parse_uuid(k) {
                    Some(u) => Served::With(PostingKind::Uuid, Query::Uuids(vec![u])),
                    None => Served::No,
                },
                Some(Match::Any(AnyVariants::Strings(l))) => match list(l) {
                    Some(l) => Served::With(PostingKind::Uuid, Query::Uuids(l)),
                    None => Served::No,
                },
                Some(Match::Except(AnyVariants::Strings(l))) => match list(l) {
                    Some(_) => Served::Opaque,
                    None => Served::No,
                },
                _ => Served::No,
            }
        }
        IndexKind::Bool => match m {
            Some(Match::Value(ValueVariant::Bool(b))) => Served::With(PostingKind::Bool, Query::Bool(*b)),
            _ => Served::No,
        },
        IndexKind::IntRange | IndexKind::Datetime => {
            let Some(r) = fc.range.as_ref() else { return Served::No };
            let r = match r {
                RangeInterface::Float(r) => float_range_to_int(r),
                RangeInterface::DateTime(r) => RangeInterface::datetime_micros(r),
            };
            let pk = if *kind == IndexKind::IntRange { PostingKind::IntRange } else { PostingKind::Datetime };
            Served::With(pk, Query::IntRange(r))
        }
        IndexKind::Float => {
            let Some(r) = fc.range.as_ref() else { return Served::No };
            let r = match r {
                RangeInterface::Float(r) => *r,
                RangeInterface::DateTime(r) => RangeInterface::datetime_micros(r).map(|m| m as u128 as f64),
            };
            Served::With(PostingKind::Float, Query::FloatRange(r))
        }
        IndexKind::Geo => {
            // Only a condition made of geo shapes alone (the payload rules OR every part).
            let geo = fc.geo_radius.is_some() || fc.geo_bounding_box.is_some() || fc.geo_polygon.is_some();
            let other = m.is_some() || fc.range.is_some() || fc.values_count.is_some();
            if geo && !other && fc.is_empty.is_none() && fc.is_null.is_none() {
                Served::With(
                    PostingKind::Geo,
                    Query::Geo { radius: fc.geo_radius, bbox: fc.geo_bounding_box, polygon: fc.geo_polygon.clone() },
                )
            } else {
                Served::No
            }
        }
        IndexKind::Text(tp) => match m {
            // Tokenizer settings we do not reproduce: only the payload check can try.
            Some(Match::Text(_) | Match::TextAny(_) | Match::Phrase(_)) if !tp.unsupported.is_empty() => Served::Opaque,
            Some(Match::Text(q)) => {
                Served::With(PostingKind::Text, Query::Tokens { tokens: tp.tokenize(TextKind::Query, q), all: true })
            }
            Some(Match::TextAny(q)) => {
                Served::With(PostingKind::Text, Query::Tokens { tokens: tp.tokenize(TextKind::Query, q), all: false })
            }
            Some(Match::Phrase(q)) => Served::With(
                PostingKind::Text,
                Query::Phrase(tp.phrase_matching.then(|| tp.tokenize(TextKind::Phrase, q))),
            ),
            _ => Served::No,
        },
        IndexKind::Null => {
            if fc.is_empty.is_some() || fc.is_null.is_some() {
                Served::Opaque
            } else {
                Served::No
            }
        }
    }
}

/// The members of sorted `(value, id)` pairs whose value passes a range check made of a
/// monotone lower part and a monotone upper part.
fn sorted_range<T: Copy>(sorted: &[(T, u32)], lower_ok: impl Fn(T) -> bool, upper_ok: impl Fn(T) -> bool) -> Bits {
    let lo = sorted.partition_point(|&(v, _)| !lower_ok(v));
    let hi = sorted.partition_point(|&(v, _)| upper_ok(v));
    let mut b = Bits::default();
    if lo < hi {
        for &(_, id) in &sorted[lo..hi] {
            b.set(id);
        }
    }
    b
}

fn answer(p: &Postings, q: &Query) -> Bits {
    let mut out = Bits::default();
    match (p, q) {
        (Postings::Str(m), Query::Strs(l)) => {
            l.iter().filter_map(|k| m.get(k)).for_each(|ids| out.or_with(&Bits::from_ids(ids)))
        }
        (Postings::Int(m), Query::Ints(l)) => {
            l.iter().filter_map(|k| m.get(k)).for_each(|ids| out.or_with(&Bits::from_ids(ids)))
        }
        (Postings::Uuid(m), Query::Uuids(l)) => {
            l.iter().filter_map(|k| m.get(k)).for_each(|ids| out.or_with(&Bits::from_ids(ids)))
        }
        (Postings::Bool(b), Query::Bool(v)) => out = Bits::from_ids(&b[*v as usize]),
        (Postings::SortedInt(s), Query::IntRange(r)) => {
            out = sorted_range(
                s,
                |v| r.gt.is_none_or(|b| v > b) && r.gte.is_none_or(|b| v >= b),
                |v| r.lt.is_none_or(|b| v < b) && r.lte.is_none_or(|b| v <= b),
            )
        }
        (Postings::SortedFloat(s), Query::FloatRange(r)) => {
            out = sorted_range(
                s,
                |v| r.gt.is_none_or(|b| v > b) && r.gte.is_none_or(|b| v >= b),
                |v| r.lt.is_none_or(|b| v < b) && r.lte.is_none_or(|b| v <= b),
            )
        }
        (Postings::Text(m), Query::Tokens { tokens, all: false }) => {
            tokens.iter().filter_map(|t| m.get(t)).for_each(|l| out.or_with(&Bits::from_ids(&l.ids)))
        }
        (Postings::Text(m), Query::Tokens { tokens, all: true } | Query::Phrase(Some(tokens))) => {
            // All of the tokens; an empty query matches nothing.
            let mut lists = Vec::with_capacity(tokens.len());
            for t in tokens {
                match m.get(t) {
                    Some(l) => lists.push(l),
                    None => return Bits::default(),
                }
            }
            let mut by_len = lists.clone();
            by_len.sort_by_key(|l| l.ids.len());
            if let Some((first, rest)) = by_len.split_first() {
                out = Bits::from_ids(&first.ids);
                for l in rest {
                    out.and_with(&Bits::from_ids(&l.ids));
                }
            }
            if matches!(q, Query::Phrase(_)) {
                // The tokens at consecutive positions of one point.
                let phrase_at = |id: u32| {
                    lists[0].positions_of(id).iter().any(|&p| {
                        lists.iter().enumerate().skip(1).all(|(k, l)| {
                            p.checked_add(k as u32).is_some_and(|x| l.positions_of(id).binary_search(&x).is_ok())
                        })
                    })
                };
                let mut exact = Bits::default();
                for id in out.iter().filter(|&id| phrase_at(id)) {
                    exact.set(id);
                }
                out = exact;
            }
        }
        (Postings::Geo(points), Query::Geo { radius, bbox, polygon }) => {
            let hit = |p: &GeoPoint| {
                radius.as_ref().is_some_and(|g| g.contains(p))
                    || bbox.as_ref().is_some_and(|g| g.contains(p))
                    || polygon.as_ref().is_some_and(|g| g.contains(p))
            };
            for (id, pts) in points {
                if pts.iter().any(hit) {
                    out.set(*id);
                }
            }
        }
        _ => {}
    }
    out
}

/// A full-text condition's estimate the way Qdrant's text index makes it from posting lengths
/// (here: the visible points of each token's posting list, out of the visible points holding
/// any token). All tokens: one token is exact, several multiply their shares, at most the
/// shortest list; any token: one is exact, several unite as independent events, at least the
/// longest list; a phrase: the all-tokens estimate divided by the phrase length squared.
fn text_estimate(m: &HashMap<String, TokenList>, q: &Query, visible: &Bits) -> Estimate {
    let (tokens, all, phrase_len) = match q {
        Query::Tokens { tokens, all } => (tokens, *all, None),
        Query::Phrase(Some(tokens)) => (tokens, true, Some(tokens.len())),
        _ => return Estimate::exact(0),
    };
    let mut distinct: Vec<&String> = tokens.iter().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let lens: Vec<Option<usize>> = distinct.iter().map(|t| m.get(*t).map(|l| visible_count(&l.ids, visible))).collect();
    let docs = visible_holders(m.values().map(|l| &l.ids[..]), visible);
    let est = if all {
        match lens.iter().copied().collect::<Option<Vec<usize>>>() {
            None => Estimate::exact(0),
            Some(l) if l.is_empty() || docs == 0 => Estimate::exact(0),
            Some(l) if l.len() == 1 => Estimate::exact(l[0]),
            Some(l) => {
                // Not `Estimate::all_of`: Qdrant's text index claims no minimum and truncates.
                let frac: f64 = l.iter().map(|&x| x as f64 / docs as f64).product();
                Estimate { min: 0, exp: (frac * docs as f64) as usize, max: l.iter().copied().min().unwrap_or(0) }
            }
        }
    } else {
        // Qdrant's any-of: at least the longest list, independent events, at most the sum.
        let l: Vec<Estimate> = lens.into_iter().flatten().map(Estimate::exact).collect();
        match l.len() {
            0 => Estimate::exact(0),
            1 => l[0],
            _ => Estimate::any_of(&l, docs),
        }
    };
    match phrase_len {
        Some(0) => Estimate::exact(0),
        Some(k) => Estimate { min: est.min / (k * k), exp: est.exp / (k * k), max: est.max / (k * k) },
        None => est,
    }
}

/// `match any` over a value → ids map: each listed value's visible count, united as
/// independent events over the visible points holding any value.
fn any_estimate<K: std::hash::Hash + Eq>(m: &HashMap<K, Vec<u32>>, keys: &[K], visible: &Bits) -> Estimate {
    let each: Vec<Estimate> =
        keys.iter().map(|k| Estimate::exact(m.get(k).map_or(0, |ids| visible_count(ids, visible)))).collect();
    Estimate::any_of(&each, visible_holders(m.values().map(Vec::as_slice), visible))
}

/// How many of `ids` are visible.
fn visible_count(ids: &[u32], visible: &Bits) -> usize {
    ids.iter().filter(|&&i| visible.get(i)).count()
}

/// How many visible points are in any of `lists`.
fn visible_holders<'a>(lists: impl Iterator<Item = &'a [u32]>, visible: &Bits) -> usize {
    let mut any = Bits::default();
    for ids in lists {
        any.or_with(&Bits::from_ids(ids));
    }
    any.and_with(visible);
    any.count()
}

/// A cardinality estimate (`min <= exp <= max` points), combined the way Qdrant combines the
/// estimates of its payload indexes. A condition the postings answer is exact; any other is
/// unknown (`0`, half the points, all of them), which is what Qdrant assumes for a field
/// without an index; full-text conditions are estimated from posting lengths as Qdrant's text
/// index does ([`text_estimate`]). (Qdrant estimates geo and range conditions from geohash
/// counts and histograms; ours counts them exactly.) `must` multiplies the
/// probabilities, `should` unites them as independent events, `must_not` inverts each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Estimate {
    pub min: usize,
    pub exp: usize,
    pub max: usize,
}

impl Estimate {
    pub fn exact(n: usize) -> Estimate {
        Estimate { min: n, exp: n, max: n }
    }

    pub fn unknown(total: usize) -> Estimate {
        Estimate { min: 0, exp: total / 2, max: total }
    }

    fn inverted(self, total: usize) -> Estimate {
        Estimate {
            min: total.saturating_sub(self.max),
            exp: total.saturating_sub(self.exp),
            max: total.saturating_sub(self.min),
        }
    }

    /// All of `parts` at once: the overlap that must remain, the product of the
    /// probabilities, the smallest part.
    fn all_of(parts: &[Estimate], total: usize) -> Estimate {
        let t = total as i64;
        let min = parts.iter().fold(t, |acc, p| (acc + p.min as i64 - t).max(0)) as usize;
        let max = parts.iter().map(|p| p.max).min().unwrap_or(total);
        let exp = if total == 0 {
            0
        } else {
            let prob: f64 = parts.iter().map(|p| p.exp as f64 / total as f64).product();
            (prob * total as f64).round() as usize
        };
        Estimate { min, exp, max }
    }

    /// Any of `parts`: the largest part, independent events, the sum capped at `total`.
    fn any_of(parts: &[Estimate], total: usize) -> Estimate {
        let exp = if total == 0 {
            0
        } else {
            let miss: f64 = parts.iter().map(|p| 1.0 - p.exp as f64 / total as f64).product();
            ((1.0 - miss) * total as f64).round() as usize
        };
        Estimate {
            min: parts.iter().map(|p| p.min).max().unwrap_or(0),
            exp,
            max: parts.iter().map(|p| p.max).sum::<usize>().min(total),
        }
    }

    /// At least `k` of `parts`: any of the intersections of `k` of them.
    fn at_least(parts: &[Estimate], k: usize, total: usize) -> Estimate {
        if k > parts.len() {
            return Estimate::exact(0);
        }
        let mut groups = Vec::new();
        let mut pick: Vec<usize> = (0..k).collect();
        loop {
            let chosen: Vec<Estimate> = pick.iter().map(|&i| parts[i]).collect();
            groups.push(Estimate::all_of(&chosen, total));
            // Next combination in lexicographic order.
            let Some(i) = (0..k).rev().find(|&i| pick[i] < parts.len() - k + i) else { break };
            pick[i] += 1;
            for j in i + 1..k {
                pick[j] = pick[j - 1] + 1;
            }
        }
        Estimate::any_of(&groups, total)
    }
}

/// Candidates of a segment for a search or count: the visible points, narrowed by the filter.
pub(crate) struct Candidates {
    pub bits: Bits,
    /// Whether each candidate must still be checked against the filter on its payload.
    pub check: bool,
}

impl EdgeShard {
    /// Points of segment `seg` that are live there and the winning copy of their id.
    pub(crate) fn visible_bits(&self, seg: u32) -> Bits {
        self.visible.get(seg as usize).cloned().unwrap_or_default()
    }

    /// The candidates of segment `seg` for `filter` (module docs).
    pub(crate) fn segment_candidates(&self, seg: u32, filter: Option<&Filter>) -> Result<Candidates> {
        let mut bits = self.visible_bits(seg);
        let Some(f) = filter else { return Ok(Candidates { bits, check: false }) };
        let n = self.segments[seg as usize].id_tracker.total_point_count() as usize;
        let check = match self.eval_filter(seg, f, n)? {
            Pre::Exact(b) => {
                bits.and_with(&b);
                false
            }
            Pre::Superset(b) => {
                bits.and_with(&b);
                true
            }
            Pre::Unknown => true,
        };
        Ok(Candidates { bits, check })
    }

    /// Call `f` for every visible point passing `filter`: segment by segment over the
    /// candidates, then the points changed in the overlay.
    pub(crate) fn visit_matching(
        &self,
        filter: Option<&Filter>,
        mut f: impl FnMut(PointId, PointRef) -> Result<()>,
    ) -> Result<()> {
        for si in 0..self.segments.len() as u32 {
            let c = self.segment_candidates(si, filter)?;
            for internal in c.bits.iter() {
                if let Some((id, r)) = self.segment_point(si, internal, filter, c.check)? {
                    f(id, r)?;
                }
            }
        }
        self.visit_overlay(filter, f)
    }

    /// Like [`visit_matching`](Self::visit_matching), but only counting: `add(n)` per batch, a
    /// segment whose postings answer the filter is counted without visiting its points.
    pub(crate) fn visit_matching_counted(&self, filter: Option<&Filter>, mut add: impl FnMut(usize)) -> Result<()> {
        for si in 0..self.segments.len() as u32 {
            let c = self.segment_candidates(si, filter)?;
            if !c.check {
                add(c.bits.count());
                continue;
            }
            for internal in c.bits.iter() {
                if self.segment_point(si, internal, filter, true)?.is_some() {
                    add(1);
                }
            }
        }
        self.visit_overlay(filter, |_, _| {
            add(1);
            Ok(())
        })
    }

    /// The visible point behind a candidate, if it passes the filter (checked when `check`).
    pub(crate) fn segment_point(
        &self,
        seg: u32,
        internal: u32,
        filter: Option<&Filter>,
        check: bool,
    ) -> Result<Option<(PointId, PointRef)>> {
        let tracker = &self.segments[seg as usize].id_tracker;
        let (Some(id), Some(version)) = (tracker.external_id(internal), tracker.version(internal)) else {
            return Ok(None);
        };
        let r = PointRef { loc: Loc::Segment { seg, internal }, version };
        if check {
            if let Some(f) = filter {
                let ctx = self.point_context(id, r.loc)?;
                if !f.check(&ctx, &self.filter_ctx) {
                    return Ok(None);
                }
            }
        }
        Ok(Some((id, r)))
    }

    /// The points whose winning copy is in the overlay and that pass `filter`.
    pub(crate) fn visit_overlay(
        &self,
        filter: Option<&Filter>,
        mut f: impl FnMut(PointId, PointRef) -> Result<()>,
    ) -> Result<()> {
        for (idx, o) in self.overlay.iter().enumerate() {
            let Some(r) = self.points.get(&o.id) else { continue };
            if r.loc != Loc::Overlay(idx) {
                continue;
            }
            if let Some(flt) = filter {
                let ctx = self.point_context(o.id, r.loc)?;
                if !flt.check(&ctx, &self.filter_ctx) {
                    continue;
                }
            }
            f(o.id, *r)?;
        }
        Ok(())
    }

    /// The postings of a segment's field: from its immutable index files where it has them,
    /// else built from its payloads; kept for the segment's life.
    fn postings(&self, seg: u32, path: &JsonPath, kind: PostingKind) -> Result<Arc<Postings>> {
        let segment = &self.segments[seg as usize];
        let text = self.filter_ctx.text_params(path);
        let make = || -> Result<Postings> {
            match index_file_postings(&*self.storage, segment, path, kind, text)? {
                Some(p) => Ok(p),
                None => build_postings(segment, path, kind, text),
            }
        };
        let Some(cache) = self.postings.get(seg as usize) else {
            return Ok(Arc::new(make()?));
        };
        let key = (path.clone(), kind);
        if let Some(p) = cache.map.lock().get(&key) {
            return Ok(p.clone());
        }
        let built = Arc::new(make()?);
        cache.map.lock().insert(key, built.clone());
        Ok(built)
    }

    fn eval_filter(&self, seg: u32, f: &Filter, n: usize) -> Result<Pre> {
        let mut acc: Option<Bits> = None;
        let mut exact = true;
        let mut and = |p: Pre, acc: &mut Option<Bits>| match p {
            Pre::Exact(b) => match acc {
                Some(a) => a.and_with(&b),
                None => *acc = Some(b),
            },
            Pre::Superset(b) => {
                exact = false;
                match acc {
                    Some(a) => a.and_with(&b),
                    None => *acc = Some(b),
                }
            }
            Pre::Unknown => exact = false,
        };
        if let Some(should) = &f.should {
            // An empty `should` constrains nothing at the point level.
            if !should.is_empty() {
                let mut union = Bits::default();
                let mut part_exact = true;
                let mut known = true;
                for c in should {
                    match self.eval_condition(seg, c, n)? {
                        Pre::Exact(b) => union.or_with(&b),
                        Pre::Superset(b) => {
                            part_exact = false;
                            union.or_with(&b);
                        }
                        Pre::Unknown => {
                            known = false;
                            break;
                        }
                    }
                }
                let part = match (known, part_exact) {
                    (false, _) => Pre::Unknown,
                    (true, true) => Pre::Exact(union),
                    (true, false) => Pre::Superset(union),
                };
                and(part, &mut acc);
            }
        }
        if f.min_should.is_some() {
            and(Pre::Unknown, &mut acc);
        }
        for c in f.must.iter().flatten() {
            let p = self.eval_condition(seg, c, n)?;
            and(p, &mut acc);
        }
        for c in f.must_not.iter().flatten() {
            let p = match self.eval_condition(seg, c, n)? {
                Pre::Exact(b) => Pre::Exact(b.not_within(n)),
                _ => Pre::Unknown,
            };
            and(p, &mut acc);
        }
        Ok(match (acc, exact) {
            (None, true) => Pre::Exact(Bits::full(n)),
            (None, false) => Pre::Unknown,
            (Some(b), true) => Pre::Exact(b),
            (Some(b), false) => Pre::Superset(b),
        })
    }

    pub(crate) fn eval_condition(&self, seg: u32, c: &Condition, n: usize) -> Result<Pre> {
        match c {
            Condition::Filter(f) => self.eval_filter(seg, f, n),
            Condition::Field(fc) => self.eval_field(seg, fc),
            Condition::HasId(ids) => {
                let tracker = &self.segments[seg as usize].id_tracker;
                let mut b = Bits::default();
                for id in ids {
                    if let Some(i) = tracker.internal_id(*id) {
                        b.set(i);
                    }
                }
                Ok(Pre::Exact(b))
            }
            _ => Ok(Pre::Unknown),
        }
    }

    fn eval_field(&self, seg: u32, fc: &FieldCondition) -> Result<Pre> {
        for kind in self.filter_ctx.indexes(&fc.key) {
            match serve(kind, fc) {
                Served::No => continue,
                Served::Opaque => return Ok(Pre::Unknown),
                Served::With(pk, q) => {
                    let p = self.postings(seg, &fc.key, pk)?;
                    return Ok(Pre::Exact(answer(&p, &q)));
                }
            }
        }
        Ok(Pre::Unknown)
    }

    /// Qdrant's kind of cardinality estimate of `filter` over segment `seg`'s `total` visible
    /// points (module [`Estimate`]).
    pub(crate) fn estimate_filter(&self, seg: u32, f: &Filter, total: usize) -> Result<Estimate> {
        let n = self.segments[seg as usize].id_tracker.total_point_count() as usize;
        let mut parts = Vec::new();
        if let Some(must) = f.must.as_ref().filter(|m| !m.is_empty()) {
            let each = must.iter().map(|c| self.estimate_condition(seg, c, total, n)).collect::<Result<Vec<_>>>()?;
            parts.push(Estimate::all_of(&each, total));
        }
        if let Some(should) = f.should.as_ref().filter(|s| !s.is_empty()) {
            let each = should.iter().map(|c| self.estimate_condition(seg, c, total, n)).collect::<Result<Vec<_>>>()?;
            parts.push(Estimate::any_of(&each, total));
        }
        if let Some(ms) = &f.min_should {
            let each =
                ms.conditions.iter().map(|c| self.estimate_condition(seg, c, total, n)).collect::<Result<Vec<_>>>()?;
            parts.push(Estimate::at_least(&each, usize::try_from(ms.min_count).unwrap_or(usize::MAX), total));
        }
        if let Some(not) = f.must_not.as_ref().filter(|m| !m.is_empty()) {
            let each = not
                .iter()
                .map(|c| Ok(self.estimate_condition(seg, c, total, n)?.inverted(total)))
                .collect::<Result<Vec<_>>>()?;
            parts.push(Estimate::all_of(&each, total));
        }
        Ok(Estimate::all_of(&parts, total))
    }

    pub(crate) fn estimate_condition(&self, seg: u32, c: &Condition, total: usize, n: usize) -> Result<Estimate> {
        let exact = match c {
            Condition::Filter(f) => return self.estimate_filter(seg, f, total),
            Condition::Field(fc) => return self.estimate_field(seg, fc, total),
            Condition::HasId(_) => match self.eval_condition(seg, c, n)? {
                Pre::Exact(mut b) => {
                    b.and_with(&self.visible_bits(seg));
                    Some(b.count())
                }
                _ => None,
            },
            _ => None,
        };
        Ok(match exact {
            Some(count) => Estimate::exact(count),
            None => Estimate::unknown(total),
        })
    }

    /// A field condition's estimate: exact where the postings answer it, except that a
    /// `match any` of several values is estimated the way Qdrant's map index does it: the
    /// values' exact counts united as independent events over the points that have a value.
    fn estimate_field(&self, seg: u32, fc: &FieldCondition, total: usize) -> Result<Estimate> {
        for kind in self.filter_ctx.indexes(&fc.key) {
            match serve(kind, fc) {
                Served::No => continue,
                Served::Opaque => return Ok(Estimate::unknown(total)),
                Served::With(pk, q) => {
                    let p = self.postings(seg, &fc.key, pk)?;
                    let visible = self.visible_bits(seg);
                    let any = match (&*p, &q) {
                        (Postings::Str(m), Query::Strs(l)) if l.len() > 1 => Some(any_estimate(m, l, &visible)),
                        (Postings::Int(m), Query::Ints(l)) if l.len() > 1 => Some(any_estimate(m, l, &visible)),
                        (Postings::Uuid(m), Query::Uuids(l)) if l.len() > 1 => Some(any_estimate(m, l, &visible)),
                        (Postings::Text(m), q) => Some(text_estimate(m, q, &visible)),
                        _ => None,
                    };
                    if let Some(e) = any {
                        return Ok(e);
                    }
                    let mut b = answer(&p, &q);
                    b.and_with(&visible);
                    return Ok(Estimate::exact(b.count()));
                }
            }
        }
        Ok(Estimate::unknown(total))
    }

    /// Test support: for every optimized segment and indexed field that has immutable index
    /// files, compare the postings read from them with the postings built from the segment's
    /// payloads, over the segment's live points. Returns how many (segment, field) postings
    /// were compared per index kind (`"Keyword"`, `"Text"`, `"Geo"` …), or the first difference.
    #[cfg(any(test, feature = "testing"))]
    pub fn check_index_postings(&self) -> std::result::Result<std::collections::BTreeMap<String, usize>, String> {
        use std::collections::BTreeMap;
        let kinds = [
            PostingKind::Keyword,
            PostingKind::IntMap,
            PostingKind::Uuid,
            PostingKind::IntRange,
            PostingKind::Datetime,
            PostingKind::Float,
            PostingKind::Bool,
            PostingKind::Text,
            PostingKind::Geo,
        ];
        let mut compared: BTreeMap<String, usize> = BTreeMap::new();
        for seg in &self.segments {
            let live: std::collections::HashSet<u32> = seg.id_tracker.iter_live().map(|(_, i)| i).collect();
            for field in seg.payload_index.indexed_types.keys() {
                let Some(path) = JsonPath::parse(field) else { continue };
                let text = self.filter_ctx.text_params(&path);
                for kind in kinds {
                    let err = |e: crate::error::Error| format!("{}/{field} {kind:?}: {e}", seg.dir);
                    let Some(from_files) = index_file_postings(&*self.storage, seg, &path, kind, text).map_err(err)?
                    else {
                        continue;
                    };
                    let built = build_postings(seg, &path, kind, text).map_err(err)?;
                    let norm = |p: &Postings| -> BTreeMap<String, Vec<u32>> {
                        let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
                        let mut add = |k: String, ids: &mut dyn Iterator<Item = u32>| {
                            let v = out.entry(k).or_default();
                            v.extend(ids.filter(|i| live.contains(i)));
                        };
                        match p {
                            Postings::Str(m) => m.iter().for_each(|(k, v)| add(k.clone(), &mut v.iter().copied())),
                            Postings::Int(m) => m.iter().for_each(|(k, v)| add(k.to_string(), &mut v.iter().copied())),
                            Postings::Uuid(m) => m.iter().for_each(|(k, v)| add(k.to_string(), &mut v.iter().copied())),
                            Postings::Bool(b) => {
                                b.iter().enumerate().for_each(|(k, v)| add(k.to_string(), &mut v.iter().copied()))
                            }
                            Postings::SortedInt(v) => {
                                v.iter().for_each(|(x, i)| add(x.to_string(), &mut [*i].into_iter()))
                            }
                            Postings::SortedFloat(v) => {
                                v.iter().for_each(|(x, i)| add(format!("{:?}", x.to_bits()), &mut [*i].into_iter()))
                            }
                            Postings::Text(m) => m.iter().for_each(|(k, l)| {
                                add(k.clone(), &mut l.ids.iter().copied());
                                // and each point's positions, in a key of their own
                                for &i in &l.ids {
                                    add(format!("{k} @{:?}", l.positions_of(i)), &mut [i].into_iter());
                                }
                            }),
                            Postings::Geo(v) => v.iter().for_each(|(i, pts)| {
                                for p in pts {
                                    add(format!("{:?}", (p.lon.to_bits(), p.lat.to_bits())), &mut [*i].into_iter())
                                }
                            }),
                        }
                        out.retain(|_, v| {
                            v.sort_unstable();
                            v.dedup();
                            !v.is_empty()
                        });
                        out
                    };
                    let (a, b) = (norm(&from_files), norm(&built));
                    if a != b {
                        let first = a.iter().zip(b.iter()).find(|(x, y)| x != y);
                        return Err(format!(
                            "{}/{field} {kind:?}: index files give {} values, payloads {}; first difference {first:?}",
                            seg.dir,
                            a.len(),
                            b.len()
                        ));
                    }
                    *compared.entry(format!("{kind:?}")).or_default() += 1;
                }
            }
        }
        Ok(compared)
    }

    /// Test support: the number of points whose winning copy is in the in-memory overlay.
    #[cfg(any(test, feature = "testing"))]
    pub fn overlay_point_count(&self) -> usize {
        self.points.values().filter(|r| matches!(r.loc, super::Loc::Overlay(_))).count()
    }

    /// Test support: for every segment, the candidates of `filter` against the per-point check
    /// of every visible point. Returns a description of the first disagreement.
    #[cfg(any(test, feature = "testing"))]
    pub fn check_candidates(&self, filter: &Filter) -> Result<Option<String>> {
        for seg in 0..self.segments.len() as u32 {
            let c = self.segment_candidates(seg, Some(filter))?;
            for internal in self.visible_bits(seg).iter() {
                let ext = self.segments[seg as usize].id_tracker.external_id(internal).expect("visible is live");
                let ctx = self.point_context(ext, Loc::Segment { seg, internal })?;
                let truth = filter.check(&ctx, &self.filter_ctx);
                let got = c.bits.get(internal);
                if (got != truth && !c.check) || (truth && !got) {
                    return Ok(Some(format!(
                        "segment {seg} point {ext:?}: payload check says {truth}, candidates say {got} (check={})",
                        c.check
                    )));
                }
            }
        }
        Ok(None)
    }
}
