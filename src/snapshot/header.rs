//! One 512-byte tar header block, decoded without trusting it.
//!
//! | offset | width | field (GNU / ustar)                                                      |
//! |-------:|------:|--------------------------------------------------------------------------|
//! | 0      | 100   | `name`, NUL-terminated unless it fills the field                         |
//! | 100    | 8     | `mode` (octal)                                                           |
//! | 108    | 8     | `uid`, 116 `gid` (octal, may be all NUL)                                 |
//! | 124    | 12    | `size`: data bytes that follow (octal, or GNU base-256 if bit 7 of byte 0)|
//! | 136    | 12    | `mtime`                                                                  |
//! | 148    | 8     | `chksum`: unsigned byte sum with this field read as 8 spaces (octal)     |
//! | 156    | 1     | `typeflag`                                                               |
//! | 157    | 100   | `linkname`                                                               |
//! | 257    | 6+2   | `magic`+`version`: `"ustar  \0"` (GNU) or `"ustar\0" "00"` (POSIX)      |
//! | 345    | 155   | POSIX only: `prefix` of the path                                         |
//! | 386    | 4×24  | GNU only: sparse map, 4 × (`offset` 12, `numbytes` 12), octal            |
//! | 482    | 1     | GNU only: `isextended` (another 512-byte block of pairs follows)         |
//! | 483    | 12    | GNU only: `realsize` of a sparse file                                    |
//!
//! GNU sparse extension block: 21 × (`offset` 12, `numbytes` 12) at 0..504, `isextended` at 504.
//! A pair whose 24 bytes are all NUL is an unused slot. Numeric fields are parsed leniently
//! (leading spaces, NUL or space terminators, an all-NUL field is 0) but strictly otherwise:
//! anything that is not an octal digit is an error, never a silent zero.

pub const BLOCK: usize = 512;

pub const OFF_SPARSE: usize = 386;
pub const OFF_ISEXT: usize = 482;
pub const OFF_REALSIZE: usize = 483;
pub const EXT_PAIRS: usize = 21;
pub const EXT_ISEXT: usize = 504;

/// Header dialect, from the magic field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Gnu,
    Ustar,
    /// Old V7 header (no magic).
    V7,
}

pub fn dialect(h: &[u8; BLOCK]) -> Dialect {
    match &h[257..265] {
        b"ustar  \0" => Dialect::Gnu,
        m if &m[..6] == b"ustar\0" => Dialect::Ustar,
        _ => Dialect::V7,
    }
}

pub fn is_zero_block(h: &[u8]) -> bool {
    h.iter().all(|&b| b == 0)
}

/// Parse a numeric field. `Err` carries a human-readable reason.
pub fn number(field: &[u8]) -> Result<u64, String> {
    let Some(&first) = field.first() else { return Ok(0) };
    if first & 0x80 != 0 {
        // GNU base-256: big-endian, first byte's low 7 bits are the top; 0xff marks a negative.
        if first == 0xff {
            return Err("negative base-256 number".into());
        }
        let mut v: u64 = u64::from(first & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|x| x.checked_add(u64::from(b)))
                .ok_or_else(|| "base-256 number overflows 64 bits".to_string())?;
        }
        return Ok(v);
    }
    let mut i = 0;
    while i < field.len() && field[i] == b' ' {
        i += 1;
    }
    let mut v: u64 = 0;
    while i < field.len() && (b'0'..=b'7').contains(&field[i]) {
        v = v
            .checked_mul(8)
            .and_then(|x| x.checked_add(u64::from(field[i] - b'0')))
            .ok_or_else(|| "octal number overflows 64 bits".to_string())?;
        i += 1;
    }
    // the rest must be terminators
    if field[i..].iter().any(|&b| b != 0 && b != b' ') {
        let shown = String::from_utf8_lossy(field).replace('\0', "\\0");
        return Err(format!("not an octal number: \"{shown}\""));
    }
    Ok(v)
}

/// Verify the header checksum (unsigned sum, or the historic signed sum).
pub fn checksum_ok(h: &[u8; BLOCK]) -> Result<bool, String> {
    let stored = number(&h[148..156])?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    Ok(stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed))
}

/// Bytes of a NUL-terminated field.
pub fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// The path a header names by itself (without GNU long-name / PAX overrides).
pub fn header_path(h: &[u8; BLOCK]) -> Vec<u8> {
    let name = cstr(&h[0..100]);
    if dialect(h) == Dialect::Ustar {
        let prefix = cstr(&h[345..500]);
        if !prefix.is_empty() {
            let mut p = prefix.to_vec();
            p.push(b'/');
            p.extend_from_slice(name);
            return p;
        }
    }
    name.to_vec()
}

/// Read `n` sparse pairs starting at `off`; unused (all-NUL) slots are skipped.
pub fn sparse_pairs(block: &[u8], off: usize, n: usize, out: &mut Vec<(u64, u64)>) -> Result<(), String> {
    for k in 0..n {
        let at = off + k * 24;
        let slot = &block[at..at + 24];
        if is_zero_block(slot) {
            continue;
        }
        let o = number(&slot[..12]).map_err(|e| format!("sparse offset: {e}"))?;
        let l = number(&slot[12..]).map_err(|e| format!("sparse length: {e}"))?;
        out.push((o, l));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(b"00000020000\0"), Ok(8192));
        assert_eq!(number(b"0016564\0"), Ok(0o16564));
        assert_eq!(number(b"\0\0\0\0\0\0\0\0"), Ok(0));
        assert_eq!(number(b"   644 \0"), Ok(0o644));
        assert!(number(b"0001x\0\0\0").is_err());
        assert!(number(b"00 1\0\0\0\0").is_err());
        assert!(number(b"77777777777777777777777").is_err());
        let mut b = [0u8; 12];
        b[0] = 0x80;
        b[11] = 5;
        b[10] = 1;
        assert_eq!(number(&b), Ok(261));
        b[0] = 0xff;
        assert!(number(&b).is_err());
        let big = [0x80u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(number(&big).is_err(), "2^80 does not fit");
    }
}
