//! Python `str` objects as CPython stores them: compact strings whose characters follow
//! the header, one, two or four bytes each (PEP 393). Code object names and file names
//! are always compact (they are created ready, never by the legacy `Py_UNICODE` API).

use super::error::PythonError;
use super::memory::Memory;
use super::offsets::Offsets;

/// The longest string read: names and paths, not data.
const MAX_CHARS: u64 = 4096;

/// The fields of `PyASCIIObject.state` used here (bit positions, identical in 3.10 to
/// 3.13): `kind` (3 bits from bit 2), `compact` (bit 5), `ascii` (bit 6).
const KIND_SHIFT: u32 = 2;
const COMPACT_BIT: u32 = 1 << 5;
const ASCII_BIT: u32 = 1 << 6;

/// Reads the `str` at `addr`.
pub fn read_str(memory: &Memory, offsets: &Offsets, addr: u64) -> Result<String, PythonError> {
    if addr == 0 {
        return Err(PythonError::malformed("str", "NULL pointer"));
    }
    let length = memory.u64(addr + u64::from(offsets.unicode_length))?;
    let state = memory.u32(addr + u64::from(offsets.unicode_state))?;
    if length > MAX_CHARS {
        return Err(PythonError::malformed(
            "str",
            format!("{length} characters at {addr:#x}: not a name"),
        ));
    }
    if state & COMPACT_BIT == 0 {
        return Err(PythonError::malformed(
            "str",
            format!("legacy (non-compact) string at {addr:#x}"),
        ));
    }
    let kind = (state >> KIND_SHIFT) & 0b111;
    let ascii = state & ASCII_BIT != 0;
    let data = addr
        + u64::from(if ascii {
            offsets.unicode_ascii_data
        } else {
            offsets.unicode_compact_data
        });
    // `length` is at most MAX_CHARS, so this fits.
    let length = length as usize;
    let bytes = match kind {
        1 | 2 | 4 => memory.bytes(data, length * kind as usize)?,
        _ => {
            return Err(PythonError::malformed(
                "str",
                format!("kind {kind} at {addr:#x}"),
            ))
        }
    };
    decode(&bytes, kind, ascii)
}

/// Characters of `kind` bytes each (1: Latin-1 or ASCII, 2: UCS-2, 4: UCS-4).
fn decode(bytes: &[u8], kind: u32, ascii: bool) -> Result<String, PythonError> {
    match kind {
        1 if ascii => {
            if !bytes.is_ascii() {
                return Err(PythonError::malformed("str", "non-ASCII byte in ASCII str"));
            }
            Ok(bytes.iter().map(|&b| char::from(b)).collect())
        }
        1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        2 => Ok(bytes
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .map(|u| char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()),
        _ => Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .map(|u| char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_kind() {
        assert_eq!(decode(b"fib", 1, true).unwrap(), "fib");
        assert_eq!(decode(&[0xe9, b't', 0xe9], 1, false).unwrap(), "été");
        let ucs2: Vec<u8> = "Ωmega".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(decode(&ucs2, 2, false).unwrap(), "Ωmega");
        let ucs4: Vec<u8> = "𝔣ib"
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        assert_eq!(decode(&ucs4, 4, false).unwrap(), "𝔣ib");
        assert!(decode(&[0xff], 1, true).is_err());
    }
}
