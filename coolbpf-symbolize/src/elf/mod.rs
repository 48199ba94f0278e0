//! ELF files: mapping them, their identity (build id), and the segment arithmetic that
//! turns file offsets into link-time virtual addresses and back.

pub(crate) mod bytes;
mod names;
pub(crate) mod resolver;
mod symbols;
pub(crate) mod symtab;

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use object::{Object, ObjectSegment};

use crate::error::{Error, Result};

/// A loadable segment: where its bytes sit in the file and in the linked image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// File offset of the segment's first byte.
    pub file_offset: u64,
    /// Bytes of the segment in the file.
    pub file_size: u64,
    /// Link-time virtual address of the segment's first byte.
    pub vaddr: u64,
}

/// A memory-mapped ELF file with its loadable segments and build id.
#[derive(Debug)]
pub struct ElfFile {
    path: PathBuf,
    map: Mmap,
    segments: Vec<Segment>,
    build_id: Option<Vec<u8>>,
}

impl ElfFile {
    /// Maps and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only and private. A file truncated or rewritten
        // underneath us could change the bytes we read (or fault on truncation); this is
        // the accepted risk every mmap-based symbolizer takes, and binaries in use are
        // replaced by rename, not rewritten in place.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (segments, build_id) = {
            let object = object::File::parse(&*map).map_err(|e| Error::malformed(path, e))?;
            let segments = object
                .segments()
                .map(|s| {
                    let (file_offset, file_size) = s.file_range();
                    Segment {
                        file_offset,
                        file_size,
                        vaddr: s.address(),
                    }
                })
                .collect();
            let build_id = object.build_id().ok().flatten().map(<[u8]>::to_vec);
            (segments, build_id)
        };
        Ok(Self {
            path: path.to_path_buf(),
            map,
            segments,
            build_id,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file's bytes.
    pub fn data(&self) -> &[u8] {
        &self.map
    }

    /// Drops the file's pages from this process's resident set. They stay in the page
    /// cache: what is read again later is mapped again on access, at the cost of a minor
    /// fault. Parsed DWARF keeps what lookups need, so after parsing, the pages it came
    /// from only inflate the resident set.
    pub(crate) fn release_pages(&self) {
        // SAFETY: the mapping is private and never written, so MADV_DONTNEED discards
        // nothing: later reads fault the same bytes back in from the file. The mapping
        // itself stays, so no slice into it is invalidated.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    /// The parsed object (cheap: it only reads headers).
    pub fn object(&self) -> Result<object::File<'_>> {
        object::File::parse(&*self.map).map_err(|e| Error::malformed(&self.path, e))
    }

    /// The GNU build id, if the file has one.
    pub fn build_id(&self) -> Option<&[u8]> {
        self.build_id.as_deref()
    }

    /// Loadable segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The link-time virtual address of file offset `offset`, if a segment maps it.
    pub fn file_offset_to_vaddr(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| offset >= s.file_offset && offset - s.file_offset < s.file_size)
            .map(|s| s.vaddr + (offset - s.file_offset))
    }

    /// The file offset of link-time virtual address `vaddr`, if a segment holds it.
    pub fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.file_size)
            .map(|s| s.file_offset + (vaddr - s.vaddr))
    }
}

/// A build id as lowercase hex.
pub fn build_id_hex(id: &[u8]) -> String {
    use std::fmt::Write;
    id.iter()
        .fold(String::with_capacity(id.len() * 2), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_executable_round_trips_offsets() {
        let exe = std::env::current_exe().unwrap();
        let elf = ElfFile::open(&exe).unwrap();
        let text = elf
            .segments()
            .iter()
            .find(|s| s.file_size > 0 && s.file_offset > 0)
            .unwrap();
        let offset = text.file_offset + 16;
        let vaddr = elf.file_offset_to_vaddr(offset).unwrap();
        assert_eq!(elf.vaddr_to_file_offset(vaddr), Some(offset));
    }

    #[test]
    fn non_elf_is_malformed_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("coolbpf-sym-{}", std::process::id()));
        std::fs::write(&dir, b"definitely not an ELF file").unwrap();
        let err = ElfFile::open(&dir).unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
    }
}
