//! Decoding fixed-layout event payloads without `unsafe`: bounds-checked reads of
//! native-endian integers and NUL-terminated strings at known offsets.

use crate::error::{Error, Result};

/// Decodes one event payload into a typed value.
pub trait Decode: Sized {
    /// Decodes `bytes`, failing (not panicking) when the payload is too short.
    fn decode(bytes: &[u8]) -> Result<Self>;
}

/// A bounds-checked reader over a payload.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, which must hold at least `min_len` bytes.
    pub fn new(bytes: &'a [u8], min_len: usize, what: &str) -> Result<Self> {
        if bytes.len() < min_len {
            return Err(Error::Decode(format!(
                "{what}: payload has {} bytes, expected at least {min_len}",
                bytes.len()
            )));
        }
        Ok(Self { bytes })
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn array<const N: usize>(&self, offset: usize) -> Result<[u8; N]> {
        self.bytes
            .get(offset..offset + N)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                Error::Decode(format!(
                    "read of {N} bytes at {offset} past the end ({})",
                    self.bytes.len()
                ))
            })
    }

    /// A u32 at `offset`.
    pub fn u32(&self, offset: usize) -> Result<u32> {
        self.array(offset).map(u32::from_ne_bytes)
    }

    /// An i32 at `offset`.
    pub fn i32(&self, offset: usize) -> Result<i32> {
        self.array(offset).map(i32::from_ne_bytes)
    }

    /// A u64 at `offset`.
    pub fn u64(&self, offset: usize) -> Result<u64> {
        self.array(offset).map(u64::from_ne_bytes)
    }

    /// The bytes `offset..offset + len`.
    pub fn bytes(&self, offset: usize, len: usize) -> Result<&'a [u8]> {
        self.bytes.get(offset..offset + len).ok_or_else(|| {
            Error::Decode(format!(
                "read of {len} bytes at {offset} past the end ({})",
                self.bytes.len()
            ))
        })
    }

    /// A NUL-terminated string in the field `offset..offset + len` (lossy UTF-8).
    pub fn c_str(&self, offset: usize, len: usize) -> Result<String> {
        Ok(c_string(self.bytes(offset, len)?))
    }
}

/// The text before the first NUL (all of it if none), lossy UTF-8.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Splits a NUL-separated argument block (as in `/proc/PID/cmdline`) into strings,
/// ignoring the trailing NUL.
pub fn split_nul_separated(bytes: &[u8]) -> Vec<String> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// `value` as `size` bytes in native byte order (sizes 1, 2, 4 and 8), or `None` when it
/// does not fit: below the signed minimum or above the unsigned maximum of that size, so
/// that both `-1` and `0xffff_ffff` fit 4 bytes.
pub fn int_ne_bytes(value: i128, size: usize) -> Option<Vec<u8>> {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return None;
    }
    let bits = 8 * size as u32;
    let fits = value >= -(1i128 << (bits - 1)) && value < (1i128 << bits);
    // The low `size` bytes: first in little-endian order, last in big-endian order.
    fits.then(|| {
        if cfg!(target_endian = "little") {
            value.to_le_bytes()[..size].to_vec()
        } else {
            value.to_be_bytes()[16 - size..].to_vec()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_fit_their_size_signed_or_unsigned() {
        assert_eq!(int_ne_bytes(-1, 4), Some(vec![0xff; 4]));
        assert_eq!(int_ne_bytes(0xffff_ffff, 4), Some(vec![0xff; 4]));
        assert_eq!(int_ne_bytes(7, 2), Some(7u16.to_ne_bytes().to_vec()));
        assert_eq!(int_ne_bytes(1 << 32, 4), None);
        assert_eq!(int_ne_bytes(-129, 1), None);
        assert_eq!(int_ne_bytes(1, 3), None);
    }

    #[test]
    fn reads_are_bounds_checked() {
        let bytes = [1u8, 0, 0, 0, b'h', b'i', 0, b'x'];
        let r = Reader::new(&bytes, 4, "test").unwrap();
        assert_eq!(r.u32(0).unwrap(), u32::from_ne_bytes([1, 0, 0, 0]));
        assert_eq!(r.c_str(4, 4).unwrap(), "hi");
        assert!(r.u64(4).is_err());
        assert!(Reader::new(&bytes, 9, "test").is_err());
    }

    #[test]
    fn nul_separated_args() {
        assert_eq!(
            split_nul_separated(b"/bin/true\0x\0"),
            vec!["/bin/true", "x"]
        );
        assert_eq!(split_nul_separated(b"a\0\0b"), vec!["a", "", "b"]);
        assert!(split_nul_separated(b"").is_empty());
    }
}
