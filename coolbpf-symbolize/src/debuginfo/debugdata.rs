//! `.gnu_debugdata` (MiniDebugInfo): an xz-compressed ELF file holding the symbols a
//! stripped binary left out of `.dynsym`, as Fedora and others ship.

use std::io::{self, Write};
use std::sync::Arc;

use object::{Object, ObjectSection};

use crate::elf::ElfFile;

/// Decompressed bytes we accept: the embedded file is a symbol table, a few megabytes
/// at most; the bound stops a decompression bomb.
const MAX_DECOMPRESSED: usize = 256 << 20;

/// The decompressed ELF file in `binary`'s `.gnu_debugdata`, if any.
pub(crate) fn mini_debuginfo(binary: &ElfFile) -> Option<Arc<[u8]>> {
    let object = binary.object().ok()?;
    let data = object.section_by_name(".gnu_debugdata")?.data().ok()?;
    let mut out = Bounded {
        buf: Vec::new(),
        limit: MAX_DECOMPRESSED,
    };
    lzma_rs::xz_decompress(&mut io::BufReader::new(data), &mut out).ok()?;
    Some(out.buf.into())
}

/// A `Vec` writer that fails past `limit` bytes.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            return Err(io::Error::other("decompressed .gnu_debugdata is too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
