//! `.gnu_debugdata` (MiniDebugInfo): an xz-compressed ELF file holding the symbols a
//! stripped binary left out of `.dynsym`, as Fedora and others ship.

use std::io::Read;
use std::sync::Arc;

use object::{Object, ObjectSection};
use xz2::read::XzDecoder;
use xz2::stream::Stream;

use crate::elf::ElfFile;

/// Decompressed bytes we accept: the embedded file is a symbol table, a few megabytes at
/// most. Decoding streams and stops here, so a decompression bomb costs at most this much.
const MAX_DECOMPRESSED: u64 = 64 << 20;

/// Memory the xz decoder itself may use (its dictionary); real MiniDebugInfo uses xz's
/// default presets (8 MiB dictionaries at most).
const DECODER_MEMLIMIT: u64 = 64 << 20;

/// The decompressed ELF file in `binary`'s `.gnu_debugdata`, if any.
///
/// liblzma's streaming decoder is used rather than a pure-Rust one that accumulates the
/// whole output before returning: with that, a 160 KB section of compressed zeros cost
/// 2 GB of memory (found by fuzzing).
pub(crate) fn mini_debuginfo(binary: &ElfFile) -> Option<Arc<[u8]>> {
    let object = binary.object().ok()?;
    let data = object.section_by_name(".gnu_debugdata")?.data().ok()?;
    let stream = Stream::new_stream_decoder(DECODER_MEMLIMIT, 0).ok()?;
    let mut out = Vec::new();
    XzDecoder::new_stream(data, stream)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .ok()?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return None;
    }
    Some(out.into())
}
