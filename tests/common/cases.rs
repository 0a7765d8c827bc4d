//! The differential corpus's cases (`cases.json`) and the comparator that checks an answer
//! against a recorded one (rules in `tests/differential.rs`'s module docs).

use std::path::Path;

use serde_json::Value;

pub const COMMANDS: [&str; 7] = ["query", "search", "scroll", "count", "facet", "retrieve", "info"];
// -------------------------------------------------------------------------------------------
// comparison

pub fn num_close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    a == b || (a - b).abs() <= abs.max(rel * a.abs().max(b.abs()))
}

/// First difference between two JSON values, numbers compared with tolerance.
pub fn value_diff(e: &Value, g: &Value, path: &str) -> Option<String> {
    match (e, g) {
        (Value::Number(a), Value::Number(b)) => {
            let same = match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ if (a.is_f64() || b.is_f64()) => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => num_close(x, y, 1e-5, 1e-6),
                    _ => false,
                },
                _ => false,
            };
            (!same).then(|| format!("{path}: {a} != {b}"))
        }
        (Value::Object(a), Value::Object(b)) => {
            if a.len() != b.len() || a.keys().any(|k| !b.contains_key(k)) {
                let ka: Vec<_> = a.keys().collect();
                let kb: Vec<_> = b.keys().collect();
                return Some(format!("{path}: keys {ka:?} != {kb:?}"));
            }
            a.iter().find_map(|(k, v)| value_diff(v, &b[k], &format!("{path}.{k}")))
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{path}: length {} != {}", a.len(), b.len()));
            }
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| value_diff(x, y, &format!("{path}[{i}]")))
        }
        _ => (e != g).then(|| format!("{path}: {} != {}", short(e, 200), short(g, 200))),
    }
}

pub fn score_of(p: &Value) -> Option<f64> {
    p.get("score").and_then(Value::as_f64)
}

/// [start, end) ranges of equal scores (1e-6 relative).
pub fn tie_runs(scores: &[f64]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < scores.len() {
        let mut j = i + 1;
        while j < scores.len() && num_close(scores[i], scores[j], 1e-6, 1e-9) {
            j += 1;
        }
        runs.push((i, j));
        i = j;
    }
    runs
}

pub fn without_score(p: &Value) -> Value {
    let mut p = p.clone();
    if let Some(o) = p.as_object_mut() {
        o.remove("score");
    }
    p
}

/// Scored points: ids in order up to permutations inside equal-score runs.
pub fn scored_diff(e: &Value, g: &Value, ties_start: bool, ties_end: bool, path: &str) -> Option<String> {
    let (Some(e), Some(g)) = (e.as_array(), g.as_array()) else {
        return Some(format!("{path}: expected an array of scored points, got {}", short(g, 200)));
    };
    if e.len() != g.len() {
        return Some(format!("{path}: {} points expected, got {}", e.len(), g.len()));
    }
    let mut scores = Vec::with_capacity(e.len());
    for (i, p) in e.iter().enumerate() {
        match score_of(p) {
            Some(s) => scores.push(s),
            None => return Some(format!("{path}[{i}]: expected point has no score")),
        }
    }
    let runs = tie_runs(&scores);
    for (ri, &(a, b)) in runs.iter().enumerate() {
        let lenient = (ri == 0 && ties_start) || (ri + 1 == runs.len() && ties_end);
        for k in a..b {
            let Some(gs) = score_of(&g[k]) else {
                return Some(format!("{path}[{k}]: no score in {}", short(&g[k], 200)));
            };
            if !num_close(scores[k], gs, 1e-5, 1e-6) {
                return Some(format!("{path}[{k}].score: {} != {gs} (id {} vs {})", scores[k], e[k]["id"], g[k]["id"]));
            }
        }
        for (k, ek) in e.iter().enumerate().take(b).skip(a) {
            let id = &ek["id"];
            match g[a..b].iter().find(|p| &p["id"] == id) {
                Some(gp) => {
                    if let Some(d) = value_diff(&without_score(ek), &without_score(gp), &format!("{path}[{k}]")) {
                        return Some(d);
                    }
                }
                None if lenient => {}
                None => {
                    let got: Vec<&Value> = g[a..b].iter().map(|p| &p["id"]).collect();
                    return Some(format!("{path}[{k}]: id {id} expected in tie run {a}..{b}, got ids {got:?}"));
                }
            }
        }
    }
    None
}

pub fn result_diff(case: &Case, expected: &Value, got: &Value) -> Option<String> {
    let (ts, te) = (case.ties_at_start, case.ties_at_end);
    match case.command.as_str() {
        "query" => {
            let keys_ok = got.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("points"));
            if !keys_ok {
                return Some(format!("query result must be {{\"points\": [...]}}, got {}", short(got, 200)));
            }
            scored_diff(&expected["points"], &got["points"], ts, te, "$.points")
        }
        "search" => scored_diff(expected, got, ts, te, "$"),
        "facet" => value_diff(&without_zero_hits(expected), got, "$"),
        _ => value_diff(expected, got, "$"),
    }
}

/// Known divergence: qdrant-edge 0.9.0's exact facet also lists values that only deleted points
/// had (they linger in immutable field indexes), with count 0. We list values with count > 0.
/// Only zero-count hits are dropped from the expectation; every counted hit must match.
pub fn without_zero_hits(expected: &Value) -> Value {
    let mut e = expected.clone();
    if let Some(hits) = e.get_mut("hits").and_then(Value::as_array_mut) {
        hits.retain(|h| h.get("count").and_then(Value::as_u64) != Some(0));
    }
    e
}

pub fn short(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} chars)", &s[..cut], s.len())
}

// -------------------------------------------------------------------------------------------
// corpus

pub struct Case {
    pub name: String,
    pub shard: String,
    pub command: String,
    pub body: Value,
    pub expected: Value,
    pub edge_expected: Option<Value>,
    pub approximate: bool,
    pub ties_at_start: bool,
    pub ties_at_end: bool,
}

pub fn parse_case(i: usize, v: &Value) -> Result<Case, String> {
    let s = |k: &str| {
        v.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("case #{i}: missing string `{k}`"))
    };
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let command = s("command")?;
    if !COMMANDS.contains(&command.as_str()) {
        return Err(format!("case #{i}: unknown command `{command}`"));
    }
    Ok(Case {
        name: s("name")?,
        shard: s("shard")?,
        command,
        body: v.get("body").cloned().ok_or_else(|| format!("case #{i}: missing `body`"))?,
        expected: v.get("expected").cloned().ok_or_else(|| format!("case #{i}: missing `expected`"))?,
        edge_expected: v.get("edge_expected").cloned(),
        approximate: flag("approximate"),
        ties_at_start: flag("ties_at_start"),
        ties_at_end: flag("ties_at_end"),
    })
}

pub fn load_cases(dir: &Path) -> Vec<Case> {
    let path = dir.join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "differential corpus missing: cannot read {} ({e}).\nGenerate it from the crate root with:\n    {}\n",
            path.display(),
            super::GENERATOR
        )
    });
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
    let arr = json.as_array().unwrap_or_else(|| panic!("{}: expected a JSON array of cases", path.display()));
    let cases: Vec<Case> = arr
        .iter()
        .enumerate()
        .map(|(i, v)| parse_case(i, v))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!cases.is_empty(), "{}: no cases; regenerate with {}", path.display(), super::GENERATOR);
    cases
}
