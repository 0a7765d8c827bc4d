//! Full-text tokenization for `match: {text | text_any | phrase}`, following Qdrant's text index.
//!
//! Parameters come from a `text` payload-index schema (`{"type":"text","tokenizer":"word",
//! "min_token_len":2,"max_token_len":10,"lowercase":true,"phrase_matching":true,
//! "stopwords":{"custom":[...]}}`). Unindexed fields use the defaults (word tokenizer, lowercase).
//!
//! Token processing, in order: drop empty tokens → lowercase (if on) → drop stopwords → drop
//! tokens shorter than `min_token_len` chars → drop tokens longer than `max_token_len` chars.
//!
//! Tokenizers implemented: `word` (split on every non-alphanumeric char), `whitespace`
//! (split on Unicode whitespace), `prefix` (documents: every prefix of each word from
//! `min_token_len` (default 1) up to `max_token_len` chars; queries: each word truncated to
//! `max_token_len` chars, no stopwords). `multilingual` and `code` tokenizers, stemmers,
//! language stopword lists and ASCII folding are **not** implemented: [`TextParams::from_schema`]
//! reports them in [`TextParams::unsupported`] and tokenization falls back to the word rules.

use serde_json::Value;

/// The token Qdrant puts between the elements of an array in a phrase document; never a query
/// token.
const ARRAY_BOUNDARY: &str = "\u{0}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    Word,
    Whitespace,
    Prefix,
}

/// Tokenizer settings of a text index (or the defaults for unindexed fields).
#[derive(Debug, Clone, PartialEq)]
pub struct TextParams {
    pub tokenizer: TokenizerKind,
    pub lowercase: bool,
    pub min_token_len: Option<usize>,
    pub max_token_len: Option<usize>,
    pub phrase_matching: bool,
    /// Custom stopwords (already lowercased when `lowercase`).
    pub stopwords: Vec<String>,
    /// Settings present in the schema that this implementation does not reproduce.
    pub unsupported: Vec<String>,
}

impl Default for TextParams {
    fn default() -> Self {
        TextParams {
            tokenizer: TokenizerKind::Word,
            lowercase: true,
            min_token_len: None,
            max_token_len: None,
            phrase_matching: false,
            stopwords: Vec::new(),
            unsupported: Vec::new(),
        }
    }
}

/// Whether a token is produced for a document or a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Document,
    Query,
    Phrase,
}

impl TextParams {
    /// Read the tokenizer settings of a `text` schema object (a bare `"text"` gives defaults).
    pub fn from_schema(schema: &Value) -> TextParams {
        let mut p = TextParams::default();
        let Some(o) = schema.as_object() else { return p };
        match o.get("tokenizer").and_then(Value::as_str) {
            None | Some("word") => {}
            Some("whitespace") => p.tokenizer = TokenizerKind::Whitespace,
            Some("prefix") => p.tokenizer = TokenizerKind::Prefix,
            Some(other) => p.unsupported.push(format!("tokenizer `{other}`")),
        }
        let usize_of = |k: &str| o.get(k).and_then(Value::as_u64).and_then(|v| usize::try_from(v).ok());
        p.min_token_len = usize_of("min_token_len");
        p.max_token_len = usize_of("max_token_len");
        if let Some(b) = o.get("lowercase").and_then(Value::as_bool) {
            p.lowercase = b;
        }
        p.phrase_matching = o.get("phrase_matching").and_then(Value::as_bool).unwrap_or(false);
        if o.get("ascii_folding").and_then(Value::as_bool) == Some(true) {
            p.unsupported.push("ascii_folding".into());
        }
        match o.get("stemmer") {
            None | Some(Value::Null) => {}
            Some(_) => p.unsupported.push("stemmer".into()),
        }
        match o.get("stopwords") {
            None | Some(Value::Null) => {}
            Some(Value::Object(sw)) => {
                if let Some(Value::Array(words)) = sw.get("custom") {
                    for w in words.iter().filter_map(Value::as_str) {
                        p.stopwords.push(if p.lowercase { w.to_lowercase() } else { w.to_string() });
                    }
                }
                if sw.get("languages").is_some_and(|l| !l.is_null()) {
                    p.unsupported.push("stopword languages".into());
                }
            }
            Some(_) => p.unsupported.push("stopword languages".into()),
        }
        p
    }

    fn process(&self, token: &str, check_max: bool) -> Option<String> {
        if token.is_empty() {
            return None;
        }
        let t = if self.lowercase { token.to_lowercase() } else { token.to_string() };
        if self.stopwords.contains(&t) {
            return None;
        }
        let n = t.chars().count();
        if self.min_token_len.is_some_and(|m| n < m) || (check_max && self.max_token_len.is_some_and(|m| n > m)) {
            return None;
        }
        Some(t)
    }

    /// Tokens of `text` in order (duplicates kept).
    pub fn tokenize(&self, kind: TextKind, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let words: Box<dyn Iterator<Item = &str>> = match self.tokenizer {
            TokenizerKind::Whitespace => Box::new(text.split_whitespace()),
            TokenizerKind::Word | TokenizerKind::Prefix => Box::new(text.split(|c: char| !c.is_alphanumeric())),
        };
        match (self.tokenizer, kind) {
            (TokenizerKind::Prefix, TextKind::Query) => {
                let max = self.max_token_len.unwrap_or(usize::MAX);
                for w in words.filter(|w| !w.is_empty()) {
                    let w = if self.lowercase { w.to_lowercase() } else { w.to_string() };
                    if self.min_token_len.is_some_and(|m| w.chars().count() < m) {
                        continue;
                    }
                    out.push(truncate_chars(&w, max));
                }
            }
            (TokenizerKind::Prefix, _) => {
                let min = self.min_token_len.unwrap_or(1);
                let max = self.max_token_len.unwrap_or(usize::MAX);
                for w in words {
                    let Some(w) = self.process(w, false) else { continue };
                    let len = w.chars().count();
                    let mut n = min;
                    while n <= max {
                        if n >= len {
                            out.push(w.clone());
                            break;
                        }
                        out.push(truncate_chars(&w, n));
                        n += 1;
                    }
                }
            }
            _ => {
                for w in words {
                    if let Some(t) = self.process(w, true) {
                        out.push(t);
                    }
                }
            }
        }
        if kind != TextKind::Document {
            out.retain(|t| t != ARRAY_BOUNDARY);
        }
        out
    }
}

fn truncate_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// All query tokens occur among `doc` tokens (false for an empty query).
pub fn has_all(doc: &[String], query: &[String]) -> bool {
    !query.is_empty() && query.iter().all(|q| doc.contains(q))
}

/// Some query token occurs among `doc` tokens (false for an empty query).
pub fn has_any(doc: &[String], query: &[String]) -> bool {
    query.iter().any(|q| doc.contains(q))
}

/// `phrase` occurs as consecutive tokens of `doc` (false when either is empty).
pub fn has_phrase(doc: &[String], phrase: &[String]) -> bool {
    !doc.is_empty() && !phrase.is_empty() && doc.windows(phrase.len()).any(|w| w == phrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn word_tokenizer_defaults() {
        let p = TextParams::default();
        assert_eq!(
            p.tokenize(TextKind::Document, "Hello, world! Привет-Мир  x_y"),
            vec!["hello", "world", "привет", "мир", "x", "y"]
        );
        assert!(p.tokenize(TextKind::Query, " ,.; ").is_empty());
    }

    #[test]
    fn lengths_case_and_stopwords() {
        let p = TextParams::from_schema(&json!({"type":"text","min_token_len":2,"max_token_len":4,
            "lowercase":false,"stopwords":{"custom":["The"]}}));
        assert_eq!(p.tokenize(TextKind::Document, "The a Big elephant ok"), vec!["Big", "ok"]);
        assert!(p.unsupported.is_empty());
        let m = TextParams::from_schema(&json!({"type":"text","tokenizer":"multilingual"}));
        assert_eq!(m.unsupported, vec!["tokenizer `multilingual`".to_string()]);
    }

    #[test]
    fn whitespace_and_prefix() {
        let w = TextParams::from_schema(&json!({"type":"text","tokenizer":"whitespace"}));
        assert_eq!(w.tokenize(TextKind::Document, "Foo-bar baz"), vec!["foo-bar", "baz"]);
        let p = TextParams::from_schema(&json!({"type":"text","tokenizer":"prefix","max_token_len":3}));
        assert_eq!(p.tokenize(TextKind::Document, "hello, мир!"), vec!["h", "he", "hel", "м", "ми", "мир"]);
        assert_eq!(p.tokenize(TextKind::Query, "Hello"), vec!["hel"]);
    }

    #[test]
    fn matching_helpers() {
        let d: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let q = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_all(&d, &q(&["c", "a"])));
        assert!(!has_all(&d, &q(&[])));
        assert!(has_any(&d, &q(&["x", "b"])));
        assert!(has_phrase(&d, &q(&["b", "c"])));
        assert!(!has_phrase(&d, &q(&["c", "b"])));
    }
}
