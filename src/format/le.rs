//! Little-endian decoding helpers with bounds checks that name the file.

use crate::error::FormatError;

/// A cursor over bytes of one file, for sequential decoding.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub file: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], file: &'a str) -> Self {
        Reader { buf, pos: 0, file }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.remaining() < n {
            return Err(FormatError::corrupt(
                self.file,
                format!("truncated: need {n} bytes at offset {}, {} left", self.pos, self.remaining()),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.bytes(2)?.try_into().unwrap()))
    }
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().unwrap()))
    }
    pub fn f32(&mut self) -> Result<f32, FormatError> {
        Ok(f32::from_le_bytes(self.bytes(4)?.try_into().unwrap()))
    }
    pub fn f64(&mut self) -> Result<f64, FormatError> {
        Ok(f64::from_le_bytes(self.bytes(8)?.try_into().unwrap()))
    }
    /// A 64-bit on-disk `usize`, checked to fit this target's `usize`.
    pub fn usize64(&mut self) -> Result<usize, FormatError> {
        let at = self.pos;
        let v = self.u64()?;
        usize::try_from(v)
            .map_err(|_| FormatError::corrupt(self.file, format!("length {v} at offset {at} does not fit in memory")))
    }
}

pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Bit `i` of a little-endian, LSB-first bit vector (Qdrant's `BitVec<u64, Lsb0>` image).
/// Bits beyond the buffer read as `false`.
pub fn bit(bits: &[u8], i: u64) -> bool {
    let byte = (i / 8) as usize;
    byte < bits.len() && (bits[byte] >> (i % 8)) & 1 == 1
}
