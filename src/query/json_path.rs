//! JSON paths into payloads, with Qdrant's grammar and lookup rules.
//!
//! Grammar (whole string must match):
//!
//! ```text
//! path  := key item*
//! key   := raw | quoted
//! item  := "." raw | "." quoted | "[" digits "]" | "[]"
//! raw   := one or more chars that are alphanumeric (Unicode), '_' or '-'
//! quoted:= '"' any chars except '"' and '\' '"'      (no escapes)
//! ```
//!
//! Lookup (`value_get`): a key step only descends into an object, `[n]` only into the n-th
//! element of an array, `[]` into every element of an array. There is **no implicit array
//! flattening** on the way down: `a.b` does not see `{"a":[{"b":1}]}` — that needs `a[].b`.
//! The values reached at the end are returned as they are (a final array is one value; the
//! conditions decide whether to look inside it).
//!
//! Display quotes a key when it does not match `raw`; the string form is what Qdrant stores as
//! the key of `payload_index/config.json` `indexed_fields`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::types::Payload;

/// One step after the first key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathItem {
    /// `.key` or `."quoted key"`
    Key(String),
    /// `[n]`
    Index(u64),
    /// `[]`
    Wildcard,
}

/// A parsed payload path such as `country.cities[].name` or `a."b.c"[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath {
    pub first_key: String,
    pub rest: Vec<PathItem>,
}

/// The empty single-key path `""` (only useful as a placeholder).
impl Default for JsonPath {
    fn default() -> Self {
        JsonPath::key("")
    }
}

fn is_raw_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Whether `key` must be written in quotes (it is empty or has a char outside `raw`).
pub fn key_needs_quoting(key: &str) -> bool {
    key.is_empty() || !key.chars().all(is_raw_char)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn raw(&mut self) -> Option<String> {
        let rest = self.rest();
        let len: usize = rest.chars().take_while(|c| is_raw_char(*c)).map(char::len_utf8).sum();
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some(rest[..len].to_string())
    }

    fn quoted(&mut self) -> Option<String> {
        let rest = self.rest();
        let body = rest.strip_prefix('"')?;
        let end = body.find(['"', '\\'])?;
        if !body[end..].starts_with('"') {
            return None;
        }
        self.pos += 1 + end + 1;
        Some(body[..end].to_string())
    }

    fn key(&mut self) -> Option<String> {
        if self.rest().starts_with('"') {
            self.quoted()
        } else {
            self.raw()
        }
    }
}

impl JsonPath {
    /// Parse a path string; `None` when it does not follow the grammar.
    pub fn parse(s: &str) -> Option<JsonPath> {
        let mut p = Parser { s, pos: 0 };
        let first_key = p.key()?;
        let mut rest = Vec::new();
        while !p.rest().is_empty() {
            let r = p.rest();
            if r.starts_with('.') {
                p.pos += 1;
                rest.push(PathItem::Key(p.key()?));
            } else if r.starts_with("[]") {
                p.pos += 2;
                rest.push(PathItem::Wildcard);
            } else if let Some(after) = r.strip_prefix('[') {
                let digits: usize = after.chars().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 || !after[digits..].starts_with(']') {
                    return None;
                }
                let n: u64 = after[..digits].parse().ok()?;
                p.pos += 1 + digits + 1;
                rest.push(PathItem::Index(n));
            } else {
                return None;
            }
        }
        Some(JsonPath { first_key, rest })
    }

    /// A one-key path (the key is used verbatim, no parsing).
    pub fn key(key: impl Into<String>) -> JsonPath {
        JsonPath { first_key: key.into(), rest: Vec::new() }
    }

    /// Every value the path reaches in `payload` (see the module doc for the rules).
    pub fn value_get<'a>(&self, payload: &'a Payload) -> Vec<&'a Value> {
        let mut out = Vec::new();
        if let Some(v) = payload.get(&self.first_key) {
            walk(&self.rest, v, &mut out);
        }
        out
    }

    /// The path with a trailing `[]` (unless it already ends with one): how `nested` addresses
    /// the array of objects.
    pub fn array_key(&self) -> JsonPath {
        let mut p = self.clone();
        if p.rest.last() != Some(&PathItem::Wildcard) {
            p.rest.push(PathItem::Wildcard);
        }
        p
    }

    /// `self` with `prefix` removed, re-rooted at the next key (`a[].b.c` minus `a[]` = `b.c`).
    /// `None` unless `prefix` is a proper prefix followed by a key step.
    pub fn strip_prefix(&self, prefix: &JsonPath) -> Option<JsonPath> {
        if self.first_key != prefix.first_key || self.rest.len() <= prefix.rest.len() {
            return None;
        }
        if self.rest[..prefix.rest.len()] != prefix.rest[..] {
            return None;
        }
        match &self.rest[prefix.rest.len()] {
            PathItem::Key(k) => {
                Some(JsonPath { first_key: k.clone(), rest: self.rest[prefix.rest.len() + 1..].to_vec() })
            }
            _ => None,
        }
    }
}

fn walk<'a>(items: &[PathItem], v: &'a Value, out: &mut Vec<&'a Value>) {
    let Some((head, tail)) = items.split_first() else {
        out.push(v);
        return;
    };
    match (head, v) {
        (PathItem::Key(k), Value::Object(m)) => {
            if let Some(next) = m.get(k) {
                walk(tail, next, out);
            }
        }
        (PathItem::Index(i), Value::Array(a)) => {
            if let Some(next) = usize::try_from(*i).ok().and_then(|i| a.get(i)) {
                walk(tail, next, out);
            }
        }
        (PathItem::Wildcard, Value::Array(a)) => {
            for next in a {
                walk(tail, next, out);
            }
        }
        _ => {}
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn key(f: &mut fmt::Formatter<'_>, k: &str) -> fmt::Result {
            if key_needs_quoting(k) {
                write!(f, "\"{k}\"")
            } else {
                f.write_str(k)
            }
        }
        key(f, &self.first_key)?;
        for item in &self.rest {
            match item {
                PathItem::Key(k) => {
                    f.write_str(".")?;
                    key(f, k)?;
                }
                PathItem::Index(i) => write!(f, "[{i}]")?,
                PathItem::Wildcard => f.write_str("[]")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for JsonPath {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JsonPath::parse(s).ok_or_else(|| crate::Error::invalid(format!("invalid JSON path `{s}`")))
    }
}

impl Serialize for JsonPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JsonPath::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid JSON path `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> JsonPath {
        JsonPath::parse(s).unwrap_or_else(|| panic!("parse {s}"))
    }

    fn payload(v: Value) -> Payload {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn grammar() {
        assert_eq!(JsonPath::parse(""), None);
        assert_eq!(JsonPath::parse("a."), None);
        assert_eq!(JsonPath::parse("a..b"), None);
        assert_eq!(JsonPath::parse("a[x]"), None);
        assert_eq!(JsonPath::parse("[0]"), None);
        assert_eq!(JsonPath::parse("a b"), None);
        assert_eq!(JsonPath::parse("\"a\\\"b\""), None);
        let path = p("foo[1][50].bar-baz[].\"qux[.]quux\"");
        assert_eq!(path.first_key, "foo");
        assert_eq!(
            path.rest,
            vec![
                PathItem::Index(1),
                PathItem::Index(50),
                PathItem::Key("bar-baz".into()),
                PathItem::Wildcard,
                PathItem::Key("qux[.]quux".into()),
            ]
        );
        assert_eq!(path.to_string(), "foo[1][50].bar-baz[].\"qux[.]quux\"");
        assert_eq!(p("\"a.b\"").first_key, "a.b");
        assert_eq!(p("Müesli.x").first_key, "Müesli");
        assert_eq!(JsonPath::key("").to_string(), "\"\"");
    }

    #[test]
    fn lookup_has_no_implicit_flattening() {
        let pl = payload(json!({
            "a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}, 5],
            "o": {"x": {"y": "z"}},
            "a.b": "dotted",
        }));
        assert!(p("a.b").value_get(&pl).is_empty());
        assert_eq!(p("a[].b").value_get(&pl), vec![&json!(1), &json!([2, 3])]);
        assert_eq!(p("a[1].b[0]").value_get(&pl), vec![&json!(2)]);
        assert_eq!(p("a[9]").value_get(&pl), Vec::<&Value>::new());
        assert_eq!(p("a[]").value_get(&pl).len(), 4);
        assert_eq!(p("a").value_get(&pl).len(), 1);
        assert_eq!(p("o.x.y").value_get(&pl), vec![&json!("z")]);
        assert_eq!(p("\"a.b\"").value_get(&pl), vec![&json!("dotted")]);
        assert!(p("o[]").value_get(&pl).is_empty());
    }

    #[test]
    fn prefixes() {
        assert_eq!(p("a.b").array_key(), p("a.b[]"));
        assert_eq!(p("a[]").array_key(), p("a[]"));
        assert_eq!(p("a[].b.c").strip_prefix(&p("a[]")), Some(p("b.c")));
        assert_eq!(p("a[].b").strip_prefix(&p("a")), None);
        assert_eq!(p("a[]").strip_prefix(&p("a[]")), None);
        assert_eq!(p("x[].b").strip_prefix(&p("a[]")), None);
    }
}

// ---- payload selection and editing by path (with_payload include/exclude, set/delete payload) ----

/// Copy of `payload` holding only what `paths` reach, keeping the structure around them
/// (`a.b` → `{"a":{"b":…}}`, `a[].b` → `{"a":[{"b":…},…]}`). Unparsable paths select nothing.
pub fn select_include(payload: &Payload, paths: &[String]) -> Payload {
    let mut out = Payload::new();
    for p in paths {
        let Some(path) = JsonPath::parse(p) else { continue };
        let Some(v) = payload.get(&path.first_key) else { continue };
        if let Some(picked) = pick(&path.rest, v) {
            match out.get_mut(&path.first_key) {
                Some(existing) => merge_into(existing, picked),
                None => {
                    out.insert(path.first_key.clone(), picked);
                }
            }
        }
    }
    out
}

fn pick(items: &[PathItem], v: &Value) -> Option<Value> {
    let Some((head, tail)) = items.split_first() else { return Some(v.clone()) };
    match (head, v) {
        (PathItem::Key(k), Value::Object(m)) => {
            let inner = pick(tail, m.get(k)?)?;
            let mut o = serde_json::Map::new();
            o.insert(k.clone(), inner);
            Some(Value::Object(o))
        }
        (PathItem::Index(i), Value::Array(a)) => {
            let inner = pick(tail, a.get(usize::try_from(*i).ok()?)?)?;
            Some(Value::Array(vec![inner]))
        }
        // Every object element stays (as `{}` when the rest of the path is missing in it).
        (PathItem::Wildcard, Value::Array(a)) => Some(Value::Array(
            a.iter()
                .filter_map(|e| pick(tail, e).or_else(|| e.is_object().then(|| Value::Object(Default::default()))))
                .collect(),
        )),
        _ => None,
    }
}

/// Deep-merge `add` into `into` (objects merge key-wise, arrays element-wise).
fn merge_into(into: &mut Value, add: Value) {
    match (into, add) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(e) => merge_into(e, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (e, v) in a.iter_mut().zip(b) {
                merge_into(e, v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Copy of `payload` without what `paths` reach.
pub fn select_exclude(payload: &Payload, paths: &[String]) -> Payload {
    let mut out = payload.clone();
    for p in paths {
        remove_path(&mut out, p);
    }
    out
}

/// Remove the values `path` reaches (for `a[].b`, `b` in every element of `a`).
pub fn remove_path(payload: &mut Payload, path: &str) {
    let Some(path) = JsonPath::parse(path) else { return };
    if path.rest.is_empty() {
        payload.shift_remove(&path.first_key);
        return;
    }
    if let Some(v) = payload.get_mut(&path.first_key) {
        remove_in(&path.rest, v);
    }
}

fn remove_in(items: &[PathItem], v: &mut Value) {
    let Some((head, tail)) = items.split_first() else { return };
    match (head, v) {
        (PathItem::Key(k), Value::Object(m)) => {
            if tail.is_empty() {
                m.shift_remove(k);
            } else if let Some(next) = m.get_mut(k) {
                remove_in(tail, next);
            }
        }
        (PathItem::Index(i), Value::Array(a)) => {
            let Ok(i) = usize::try_from(*i) else { return };
            if tail.is_empty() {
                if i < a.len() {
                    a.remove(i);
                }
            } else if let Some(next) = a.get_mut(i) {
                remove_in(tail, next);
            }
        }
        (PathItem::Wildcard, Value::Array(a)) => {
            if tail.is_empty() {
                a.clear();
            } else {
                for e in a.iter_mut() {
                    remove_in(tail, e);
                }
            }
        }
        _ => {}
    }
}

/// `set_payload` with `key`: merge `values` into the object(s) `path` reaches, creating
/// missing objects along plain key steps and replacing non-object values.
pub fn set_at_path(payload: &mut Payload, path: &str, values: &Payload) {
    let Some(path) = JsonPath::parse(path) else { return };
    let slot = payload.entry(path.first_key.clone()).or_insert_with(|| Value::Object(Default::default()));
    set_in(&path.rest, slot, values);
}

fn set_in(items: &[PathItem], v: &mut Value, values: &Payload) {
    let Some((head, tail)) = items.split_first() else {
        if !v.is_object() {
            *v = Value::Object(Default::default());
        }
        if let Value::Object(m) = v {
            for (k, x) in values {
                m.insert(k.clone(), x.clone());
            }
        }
        return;
    };
    match head {
        PathItem::Key(k) => {
            if !v.is_object() {
                *v = Value::Object(Default::default());
            }
            if let Value::Object(m) = v {
                let next = m.entry(k.clone()).or_insert_with(|| Value::Object(Default::default()));
                set_in(tail, next, values);
            }
        }
        PathItem::Index(i) => {
            if let (Value::Array(a), Ok(i)) = (v, usize::try_from(*i)) {
                if let Some(next) = a.get_mut(i) {
                    set_in(tail, next, values);
                }
            }
        }
        PathItem::Wildcard => {
            if let Value::Array(a) = v {
                for e in a.iter_mut() {
                    set_in(tail, e, values);
                }
            }
        }
    }
}

#[cfg(test)]
mod edit_tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Payload {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn include_keeps_structure() {
        let p = obj(json!({"a": {"b": 1, "c": 2}, "l": [{"x": 1, "y": 2}, {"x": 3}], "z": 0}));
        assert_eq!(
            Value::Object(select_include(&p, &["a.b".into(), "l[].x".into()])),
            json!({"a": {"b": 1}, "l": [{"x": 1}, {"x": 3}]})
        );
        assert_eq!(
            Value::Object(select_include(&p, &["z".into(), "a".into()])),
            json!({"a": {"b": 1, "c": 2}, "z": 0})
        );
    }

    #[test]
    fn exclude_and_remove() {
        let p = obj(json!({"a": {"b": 1, "c": 2}, "l": [{"x": 1, "y": 2}, {"x": 3}]}));
        assert_eq!(
            Value::Object(select_exclude(&p, &["a.b".into(), "l[].x".into()])),
            json!({"a": {"c": 2}, "l": [{"y": 2}, {}]})
        );
    }

    #[test]
    fn set_at_nested_path() {
        let mut p = obj(json!({"a": {"b": 1}, "n": 5}));
        set_at_path(&mut p, "a", &obj(json!({"c": 2})));
        set_at_path(&mut p, "x.y", &obj(json!({"z": true})));
        set_at_path(&mut p, "n", &obj(json!({"k": 1})));
        assert_eq!(Value::Object(p), json!({"a": {"b": 1, "c": 2}, "n": {"k": 1}, "x": {"y": {"z": true}}}));
    }
}
