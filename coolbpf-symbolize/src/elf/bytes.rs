//! Byte buffers that parsed data can point into by offset instead of by reference, so
//! that tables built once stay free of lifetimes and strings are never copied.

use std::sync::Arc;

use crate::elf::ElfFile;

/// Where bytes live: a mapped file, or a buffer we own (a decompressed section).
#[derive(Debug, Clone)]
pub(crate) enum Bytes {
    /// A whole mapped file.
    File(Arc<ElfFile>),
    /// A heap buffer.
    Owned(Arc<[u8]>),
}

impl Bytes {
    /// All of the bytes.
    pub(crate) fn get(&self) -> &[u8] {
        match self {
            Self::File(file) => file.data(),
            Self::Owned(bytes) => bytes,
        }
    }

    /// Heap bytes this buffer holds (a mapping holds none).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::File(_) => 0,
            Self::Owned(bytes) => bytes.len(),
        }
    }
}

/// The offset of `inner` within `outer`, when `inner` is a subslice of it.
pub(crate) fn offset_within(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start.checked_add(inner.len())? <= outer.len()).then_some(start)
}

/// The bytes at `offset` up to (not including) the next NUL, or to the end.
pub(crate) fn c_str_at(bytes: &[u8], offset: usize) -> &[u8] {
    let tail = bytes.get(offset..).unwrap_or_default();
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    &tail[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_subslices_only() {
        let outer = b"hello\0world\0";
        assert_eq!(offset_within(outer, &outer[6..11]), Some(6));
        assert_eq!(offset_within(&outer[6..], outer), None);
        assert_eq!(offset_within(outer, b"elsewhere"), None);
    }

    #[test]
    fn c_strings_stop_at_nul_or_end() {
        let bytes = b"abc\0de";
        assert_eq!(c_str_at(bytes, 0), b"abc");
        assert_eq!(c_str_at(bytes, 4), b"de");
        assert_eq!(c_str_at(bytes, 99), b"");
    }
}
