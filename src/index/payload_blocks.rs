//! Payload blocks: the groups of points that get extra HNSW links in `optimize`.
//!
//! Qdrant adds links inside every large group of points that share an indexed payload value,
//! so that a filtered search on that value finds a connected graph among its points even when
//! the main graph, seen through the filter, falls apart. For each indexed field (in name order,
//! unless its schema says `enable_hnsw: false`) and each of its index kinds, a block is:
//!
//! * keyword, integer (lookup), uuid: the points holding one value, when there are more than
//!   the full-scan threshold of them (integer and uuid: at least as many);
//! * bool: the points holding `true`, and those holding `false`, when more than the threshold;
//! * integer (range), float, datetime: a window of consecutive values: the sorted values are cut
//!   into runs of half the threshold (scaled by the values per point), and each block is two
//!   neighbouring runs, so blocks overlap by half.
//!
//! Text, geo, null and nested indexes give no blocks here (Qdrant builds some for text tokens
//! and geohashes). The graph builder ([`super::hnsw_build::add_payload_links`]) drops blocks
//! that are too large to need their own links or too small to be searched through a graph.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::query::filter::{flat, parse_datetime, parse_uuid, value_to_integer, IndexKind};
use crate::query::json_path::JsonPath;
use crate::types::Payload;

/// One field's groups, before a threshold picks the blocks.
enum Groups {
    /// Points per distinct value; `inclusive`: a value with exactly the threshold counts.
    Values { lists: Vec<Vec<u32>>, inclusive: bool },
    /// (value, point) sorted by value, and the number of points with a value.
    Sorted { pairs: Vec<(f64, u32)>, points: usize },
}

/// The indexed fields of a new segment, ready to cut into blocks for any threshold.
pub struct PayloadBlocks {
    groups: Vec<Groups>,
}

impl PayloadBlocks {
    /// `fields`: path → schema JSON (a bare type name or a params object) and its index kinds,
    /// as the shard keeps them; `payloads[i]` is the payload of the new segment's point `i`.
    pub fn new(fields: &BTreeMap<String, (Value, Vec<IndexKind>)>, payloads: &[Arc<Payload>]) -> PayloadBlocks {
        let mut groups = Vec::new();
        for (path, (schema, kinds)) in fields {
            if schema.get("enable_hnsw").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(jp) = JsonPath::parse(path) else { continue };
            for kind in kinds {
                if let Some(g) = field_groups(&jp, kind, payloads) {
                    groups.push(g);
                }
            }
        }
        PayloadBlocks { groups }
    }

    /// The blocks for `threshold` points, in field order, each a sorted list of point ids.
    pub fn blocks(&self, threshold: usize) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        for g in &self.groups {
            match g {
                Groups::Values { lists, inclusive } => {
                    for l in lists {
                        if l.len() > threshold || (*inclusive && l.len() == threshold) {
                            out.push(l.clone());
                        }
                    }
                }
                Groups::Sorted { pairs, points } => {
                    if *points == 0 {
                        continue;
                    }
                    let per_point = pairs.len() as f64 / *points as f64;
                    let run = (((threshold as f64 * per_point) as usize) / 2).max(1);
                    let runs: Vec<&[(f64, u32)]> = pairs.chunks(run).collect();
                    for w in runs.windows(2) {
                        let mut ids: Vec<u32> = w.iter().flat_map(|r| r.iter().map(|p| p.1)).collect();
                        ids.sort_unstable();
                        ids.dedup();
                        out.push(ids);
                    }
                }
            }
        }
        out
    }
}

fn field_groups(path: &JsonPath, kind: &IndexKind, payloads: &[Arc<Payload>]) -> Option<Groups> {
    fn by_value<K: std::hash::Hash + Eq + Ord>(
        payloads: &[Arc<Payload>],
        path: &JsonPath,
        get: impl Fn(&Value) -> Option<K>,
        inclusive: bool,
    ) -> Groups {
        let mut m: HashMap<K, Vec<u32>> = HashMap::new();
        for (i, p) in payloads.iter().enumerate() {
            let mut vals = flat(&path.value_get(p), &get);
            vals.sort_unstable();
            vals.dedup();
            for v in vals {
                m.entry(v).or_default().push(i as u32);
            }
        }
        // Largest first, then by value, so builds repeat exactly.
        let mut lists: Vec<(K, Vec<u32>)> = m.into_iter().collect();
        lists.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        Groups::Values { lists: lists.into_iter().map(|(_, l)| l).collect(), inclusive }
    }
    fn sorted(payloads: &[Arc<Payload>], path: &JsonPath, get: impl Fn(&Value) -> Option<f64>) -> Groups {
        let mut pairs = Vec::new();
        let mut points = 0;
        for (i, p) in payloads.iter().enumerate() {
            let vals = flat(&path.value_get(p), &get);
            points += usize::from(!vals.is_empty());
            pairs.extend(vals.into_iter().filter(|v| !v.is_nan()).map(|v| (v, i as u32)));
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Groups::Sorted { pairs, points }
    }
    Some(match kind {
        IndexKind::Keyword => by_value(payloads, path, |v| v.as_str().map(str::to_string), false),
        IndexKind::IntMap => by_value(payloads, path, value_to_integer, true),
        IndexKind::Uuid => by_value(payloads, path, |v| v.as_str().and_then(parse_uuid), true),
        IndexKind::Bool => by_value(payloads, path, Value::as_bool, false),
        IndexKind::IntRange => sorted(payloads, path, |v| value_to_integer(v).map(|i| i as f64)),
        IndexKind::Float => sorted(payloads, path, Value::as_f64),
        IndexKind::Datetime => sorted(payloads, path, |v| v.as_str().and_then(parse_datetime).map(|t| t as f64)),
        IndexKind::Geo | IndexKind::Text(_) | IndexKind::Null => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payloads(values: &[Value]) -> Vec<Arc<Payload>> {
        values.iter().map(|v| Arc::new(v.as_object().unwrap().clone())).collect()
    }

    #[test]
    fn value_blocks_follow_the_threshold_rules() {
        let mut vals = Vec::new();
        for i in 0..40 {
            let k = if i < 20 {
                "a"
            } else if i < 30 {
                "b"
            } else {
                "c"
            };
            vals.push(json!({"k": k, "n": i % 4, "f": i as f64 / 4.0, "b": i % 2 == 0}));
        }
        let p = payloads(&vals);
        let mut fields = BTreeMap::new();
        fields.insert("k".to_string(), (json!("keyword"), vec![IndexKind::Keyword]));
        let blocks = PayloadBlocks::new(&fields, &p).blocks(10);
        // keyword: strictly more than the threshold: "a" (20) only, not "b" (10)
        assert_eq!(blocks, vec![(0..20).collect::<Vec<u32>>()]);
        fields.insert("n".to_string(), (json!("integer"), vec![IndexKind::IntMap]));
        let blocks = PayloadBlocks::new(&fields, &p).blocks(10);
        // integer lookup: at least the threshold: four values of 10 points
        assert_eq!(blocks.len(), 1 + 4);
        fields.insert("f".to_string(), (json!({"type": "float", "enable_hnsw": false}), vec![IndexKind::Float]));
        assert_eq!(PayloadBlocks::new(&fields, &p).blocks(10).len(), 5, "enable_hnsw: false");
        fields.insert("f".to_string(), (json!("float"), vec![IndexKind::Float]));
        let blocks = PayloadBlocks::new(&fields, &p).blocks(10);
        // 40 values in runs of 5: 8 runs, 7 overlapping windows of 10 points
        let ranges: Vec<&Vec<u32>> = blocks[..7].iter().collect();
        assert_eq!(ranges.len(), 7);
        assert!(ranges.iter().all(|b| b.len() == 10));
        assert_eq!(*ranges[0], (0..10).collect::<Vec<u32>>());
        assert_eq!(*ranges[1], (5..15).collect::<Vec<u32>>());
    }
}
