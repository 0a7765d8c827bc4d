//! CBOR, as Qdrant writes it with `serde_cbor` 0.11 (spec §1.4): WAL records and a few index
//! blobs. Decoding goes through `ciborium` into a dynamic value and then into JSON, because
//! every consumer here (WAL records, filters, payloads) works on JSON shapes.
//!
//! What the writer produces and how each item maps to JSON:
//!
//! | CBOR (major type / head)                  | JSON                                          |
//! |-------------------------------------------|-----------------------------------------------|
//! | 0 unsigned int, 1 negative int            | number (must fit `u64` or `i64`, else error)  |
//! | 2 byte string, exactly 16 bytes           | hyphenated UUID string (RFC byte order)       |
//! | 2 byte string, any other length           | error (Qdrant never writes one outside raw-vector ops) |
//! | 3 text string (definite or indefinite)    | string                                        |
//! | 4 array (definite or indefinite `0x9F`)   | array                                         |
//! | 5 map (definite or indefinite `0xBF`)     | object; keys must be text, no duplicates      |
//! | 6 tag                                     | error (Qdrant writes none)                    |
//! | 7: `0xF4`/`0xF5` false/true, `0xF6`/`0xF7` null/undefined | bool / null                   |
//! | 7: `0xF9` half, `0xFA` single, `0xFB` double | number (f16 and f32 widen to f64 exactly); NaN and ±inf are errors |
//!
//! `serde_cbor` writes floats in the shortest lossless width, so vectors are mostly half
//! floats; the top-level WAL record map is indefinite-length because of `#[serde(flatten)]`.
//! Point ids appear as 16-byte byte strings in some operations and as text in others; both end
//! up as the same hyphenated string here.
//!
//! Hostile input: nesting deeper than [`MAX_DEPTH`] containers is rejected (this is also
//! `serde_cbor`'s own limit, so Qdrant cannot read deeper records either); lengths are never
//! trusted for preallocation (ciborium reads strings in chunks and grows arrays as items
//! arrive); bytes left after the top-level item are an error (as in `serde_cbor::from_slice`).
//!
//! [`encode_json`] is the inverse used by writers: definite lengths, shortest integer heads and
//! shortest lossless float widths, UUIDs as text (Qdrant accepts both forms on read).

use serde_json::{Map, Number, Value as Json};

use crate::error::FormatError;

pub use ciborium::Value as CborValue;

/// Maximum nesting of arrays/maps (and tags) in one CBOR item, as in `serde_cbor`.
pub const MAX_DEPTH: usize = 128;

/// Decode one CBOR item spanning all of `bytes` into ciborium's dynamic value.
///
/// Use this when byte strings must be seen as bytes (raw-vector WAL operations); otherwise use
/// [`decode_to_json`].
pub fn decode_value(bytes: &[u8], file: &str) -> Result<CborValue, FormatError> {
    let mut rest: &[u8] = bytes;
    let value: CborValue = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH).map_err(|e| {
        let msg = match e {
            ciborium::de::Error::Io(e) => format!("CBOR truncated: {e}"),
            ciborium::de::Error::Syntax(off) => format!("CBOR syntax error at byte {off}"),
            ciborium::de::Error::Semantic(off, m) => match off {
                Some(off) => format!("CBOR error at byte {off}: {m}"),
                None => format!("CBOR error: {m}"),
            },
            ciborium::de::Error::RecursionLimitExceeded => {
                format!("CBOR nested deeper than {MAX_DEPTH} levels")
            }
        };
        FormatError::corrupt(file, msg)
    })?;
    if !rest.is_empty() {
        return Err(FormatError::corrupt(file, format!("{} trailing bytes after the CBOR item", rest.len())));
    }
    Ok(value)
}

/// Decode one CBOR item spanning all of `bytes` into JSON (see the module table).
pub fn decode_to_json(bytes: &[u8], file: &str) -> Result<Json, FormatError> {
    let value = decode_value(bytes, file)?;
    value_to_json(&value, file)
}

/// Convert a decoded CBOR value into JSON (see the module table).
///
/// Recursion is bounded because `value` came from [`decode_value`] (at most [`MAX_DEPTH`]
/// levels); a hand-built deeper value is rejected as well.
pub fn value_to_json(value: &CborValue, file: &str) -> Result<Json, FormatError> {
    to_json(value, file, 0)
}

fn to_json(value: &CborValue, file: &str, depth: usize) -> Result<Json, FormatError> {
    let err = |m: String| FormatError::corrupt(file, m);
    Ok(match value {
        CborValue::Null => Json::Null,
        CborValue::Bool(b) => Json::Bool(*b),
        CborValue::Integer(i) => {
            let i = i128::from(*i);
            if let Ok(u) = u64::try_from(i) {
                Json::Number(Number::from(u))
            } else if let Ok(s) = i64::try_from(i) {
                Json::Number(Number::from(s))
            } else {
                return Err(err(format!("CBOR integer {i} does not fit in 64 bits")));
            }
        }
        CborValue::Float(f) => match Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => return Err(err(format!("CBOR float {f} is not finite"))),
        },
        CborValue::Text(s) => Json::String(s.clone()),
        CborValue::Bytes(b) => match <[u8; 16]>::try_from(b.as_slice()) {
            Ok(raw) => Json::String(uuid::Uuid::from_bytes(raw).hyphenated().to_string()),
            Err(_) => {
                return Err(err(format!("CBOR byte string of {} bytes where only 16-byte UUIDs are expected", b.len())))
            }
        },
        CborValue::Tag(tag, _) => return Err(err(format!("unexpected CBOR tag {tag}"))),
        CborValue::Array(items) => {
            let depth = deeper(depth, file)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(to_json(item, file, depth)?);
            }
            Json::Array(out)
        }
        CborValue::Map(entries) => {
            let depth = deeper(depth, file)?;
            let mut out = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let CborValue::Text(key) = k else {
                    return Err(err(format!("CBOR map key is not a text string: {k:?}")));
                };
                let v = to_json(v, file, depth)?;
                if out.insert(key.clone(), v).is_some() {
                    return Err(err(format!("duplicate CBOR map key \"{key}\"")));
                }
            }
            Json::Object(out)
        }
        other => return Err(err(format!("unsupported CBOR value {other:?}"))),
    })
}

fn deeper(depth: usize, file: &str) -> Result<usize, FormatError> {
    if depth >= MAX_DEPTH {
        Err(FormatError::corrupt(file, format!("CBOR nested deeper than {MAX_DEPTH} levels")))
    } else {
        Ok(depth + 1)
    }
}

// ---- encoding ---------------------------------------------------------------------------

/// Encode JSON as CBOR the way `serde_cbor` would encode the same `serde_json::Value`:
/// definite lengths, shortest integer heads, floats in the shortest lossless width
/// (half → single → double). Strings (including UUIDs) stay text.
///
/// Recursion follows the JSON value's depth; values built by `serde_json` from text are
/// limited to 128 levels by its parser.
pub fn encode_json(value: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Append the CBOR encoding of `value` to `out` (see [`encode_json`]).
pub fn encode_into(value: &Json, out: &mut Vec<u8>) {
    match value {
        Json::Null => out.push(0xF6),
        Json::Bool(false) => out.push(0xF4),
        Json::Bool(true) => out.push(0xF5),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                head(out, 0, u);
            } else if let Some(i) = n.as_i64() {
                // negative: major type 1 carries -1 - i
                head(out, 1, (-1 - i128::from(i)) as u64);
            } else {
                encode_f64(n.as_f64().unwrap_or(0.0), out);
            }
        }
        Json::String(s) => {
            head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Json::Array(items) => {
            head(out, 4, items.len() as u64);
            for item in items {
                encode_into(item, out);
            }
        }
        Json::Object(map) => {
            head(out, 5, map.len() as u64);
            for (k, v) in map {
                head(out, 3, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                encode_into(v, out);
            }
        }
    }
}

/// Append a float in the shortest lossless width, as `serde_cbor` does.
pub fn encode_f64(f: f64, out: &mut Vec<u8>) {
    let h = half::f16::from_f64(f);
    if f.is_nan() {
        out.extend_from_slice(&[0xF9, 0x7E, 0x00]);
    } else if f64::from(h) == f {
        out.push(0xF9);
        out.extend_from_slice(&h.to_bits().to_be_bytes());
    } else if f64::from(f as f32) == f {
        out.push(0xFA);
        out.extend_from_slice(&(f as f32).to_bits().to_be_bytes());
    } else {
        out.push(0xFB);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    }
}

/// Append a CBOR head (major type `major`, argument `arg`) in its shortest form.
pub fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= u64::from(u8::MAX) {
        out.push(m | 24);
        out.push(arg as u8);
    } else if arg <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "wal/open-1";

    fn text(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        head(&mut v, 3, s.len() as u64);
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn half_single_double_floats() {
        // [h 0.25, h -1.5, s 0.1f32, d 0.1, h 65504 (f16 max), h 5.960464477539063e-8 (subnormal)]
        let mut b = vec![0x86];
        b.extend_from_slice(&[0xF9, 0x34, 0x00]);
        b.extend_from_slice(&[0xF9, 0xBE, 0x00]);
        b.extend_from_slice(&[0xFA, 0x3D, 0xCC, 0xCC, 0xCD]);
        b.extend_from_slice(&[0xFB, 0x3F, 0xB9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A]);
        b.extend_from_slice(&[0xF9, 0x7B, 0xFF]);
        b.extend_from_slice(&[0xF9, 0x00, 0x01]);
        let v = decode_to_json(&b, F).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a[0].as_f64(), Some(0.25));
        assert_eq!(a[1].as_f64(), Some(-1.5));
        assert_eq!(a[2].as_f64(), Some(f64::from(0.1f32)));
        assert_eq!(a[3].as_f64(), Some(0.1));
        assert_eq!(a[4].as_f64(), Some(65504.0));
        assert_eq!(a[5].as_f64(), Some(2f64.powi(-24)));
        // an integral half float stays a float in JSON
        assert!(decode_to_json(&[0xF9, 0x3C, 0x00], F).unwrap().is_f64());
    }

    #[test]
    fn non_finite_floats_are_errors() {
        for b in [&[0xF9, 0x7E, 0x00][..], &[0xF9, 0x7C, 0x00], &[0xF9, 0xFC, 0x00], &[0xFA, 0x7F, 0xC0, 0, 0]] {
            let e = decode_to_json(b, F).unwrap_err();
            assert_eq!(e.file, F);
            assert!(e.message.contains("not finite"), "{e}");
        }
    }

    #[test]
    fn indefinite_maps_arrays_strings() {
        // {_ "a": [_ 1, 2], "b": (_ "x" "y") }
        let mut b = vec![0xBF];
        b.extend(text("a"));
        b.extend_from_slice(&[0x9F, 0x01, 0x02, 0xFF]);
        b.extend(text("b"));
        b.push(0x7F);
        b.extend(text("x"));
        b.extend(text("y"));
        b.push(0xFF);
        b.push(0xFF);
        assert_eq!(decode_to_json(&b, F).unwrap(), json!({"a": [1, 2], "b": "xy"}));
        // missing break
        assert!(decode_to_json(&b[..b.len() - 1], F).is_err());
    }

    #[test]
    fn uuid_bytes_and_text_give_the_same_string() {
        let u = "12345678-1234-5678-1234-567812345678";
        let mut b = vec![0x82, 0x50];
        b.extend_from_slice(&uuid::Uuid::parse_str(u).unwrap().into_bytes());
        b.extend(text(u));
        assert_eq!(decode_to_json(&b, F).unwrap(), json!([u, u]));
        // other byte-string lengths are rejected
        let e = decode_to_json(&[0x43, 1, 2, 3], F).unwrap_err();
        assert!(e.message.contains("3 bytes"), "{e}");
    }

    #[test]
    fn integers_and_ranges() {
        assert_eq!(
            decode_to_json(&[0x1B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], F).unwrap(),
            json!(u64::MAX)
        );
        assert_eq!(
            decode_to_json(&[0x3B, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], F).unwrap(),
            json!(i64::MIN)
        );
        // -2^64 does not fit
        assert!(decode_to_json(&[0x3B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], F).is_err());
        assert_eq!(decode_to_json(&[0x38, 0x63], F).unwrap(), json!(-100));
    }

    #[test]
    fn keys_tags_duplicates_trailing() {
        // integer key
        assert!(decode_to_json(&[0xA1, 0x01, 0x02], F).unwrap_err().message.contains("key"));
        // duplicate key
        let mut b = vec![0xA2];
        b.extend(text("k"));
        b.push(0x01);
        b.extend(text("k"));
        b.push(0x02);
        assert!(decode_to_json(&b, F).unwrap_err().message.contains("duplicate"));
        // tag 0 (date string)
        let mut b = vec![0xC0];
        b.extend(text("2020-01-01"));
        assert!(decode_to_json(&b, F).unwrap_err().message.contains("tag"));
        // trailing data
        assert!(decode_to_json(&[0x01, 0x02], F).unwrap_err().message.contains("trailing"));
        // empty input, truncated head, break at top level, invalid UTF-8
        assert!(decode_to_json(&[], F).is_err());
        assert!(decode_to_json(&[0x19, 0x01], F).is_err());
        assert!(decode_to_json(&[0xFF], F).is_err());
        assert!(decode_to_json(&[0x62, 0xC3, 0x28], F).is_err());
        // undefined reads as null
        assert_eq!(decode_to_json(&[0xF7], F).unwrap(), Json::Null);
    }

    #[test]
    fn depth_limit() {
        let nest = |n: usize| {
            let mut b = vec![0x81; n];
            b.push(0x00);
            b
        };
        assert!(decode_to_json(&nest(MAX_DEPTH), F).is_ok());
        let e = decode_to_json(&nest(MAX_DEPTH + 1), F).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
        // very deep input must fail cleanly, not overflow the stack
        let mut b = vec![0x9F; 1_000_000];
        b.push(0x00);
        assert!(decode_to_json(&b, F).is_err());
        let b = vec![0xBF; 1_000_000];
        assert!(decode_to_json(&b, F).is_err());
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // array / byte string / text claiming 2^63 items but ending at once
        for h in [0x9B, 0x5B, 0x7B, 0xBB] {
            let b = [h, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
            assert!(decode_to_json(&b, F).is_err());
        }
    }

    #[test]
    fn encode_roundtrip_and_widths() {
        let v = json!({"a": [0.25, 0.1, 1.0e300, -3, 18446744073709551615u64, i64::MIN], "b": null,
                        "c": {"d": true, "e": "text"}, "": []});
        let b = encode_json(&v);
        assert_eq!(decode_to_json(&b, F).unwrap(), v);
        let mut f = Vec::new();
        encode_f64(0.25, &mut f);
        assert_eq!(f, [0xF9, 0x34, 0x00]);
        f.clear();
        encode_f64(f64::from(0.1f32), &mut f);
        assert_eq!(f[0], 0xFA);
        f.clear();
        encode_f64(0.1, &mut f);
        assert_eq!(f[0], 0xFB);
        let mut h = Vec::new();
        head(&mut h, 0, 24);
        head(&mut h, 0, 256);
        head(&mut h, 0, 65536);
        head(&mut h, 0, 1 << 32);
        assert_eq!(h, [0x18, 24, 0x19, 1, 0, 0x1A, 0, 1, 0, 0, 0x1B, 0, 0, 0, 1, 0, 0, 0, 0]);
    }
}
