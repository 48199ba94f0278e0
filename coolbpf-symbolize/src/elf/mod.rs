//! ELF files: mapping them, their identity (build id), and the segment arithmetic that
//! turns file offsets into link-time virtual addresses and back.

pub(crate) mod bytes;
mod names;
pub(crate) mod resolver;
mod symbols;
pub(crate) mod symtab;

use std::fs::File;
use std::io;
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
    /// Maps and parses the file at `path`, which must be a regular file (or a link to
    /// one).
    pub fn open(path: &Path) -> Result<Self> {
        // Paths come from the files being read too (`.gnu_debugaltlink`, split DWARF's
        // `.dwo` names): opening a FIFO would block for good, and opening a device can
        // act (a watchdog starts counting). ELF files are regular files.
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            let why = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(Error::io(path, why));
        }
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
            // A malformed segment can claim to end past the address space.
            .and_then(|s| s.vaddr.checked_add(offset - s.file_offset))
    }

    /// The file offset of link-time virtual address `vaddr`, if a segment holds it.
    pub fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.file_size)
            .and_then(|s| s.file_offset.checked_add(vaddr - s.vaddr))
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
    fn only_regular_files_are_opened() {
        // A device and a directory; a FIFO takes the same path (and would block in open).
        for path in ["/dev/null", "/"] {
            let err = ElfFile::open(Path::new(path)).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{path}: {err}");
        }
    }

    #[test]
    fn malformed_segments_do_not_overflow() {
        let elf = ElfFile {
            path: PathBuf::new(),
            map: memmap2::MmapMut::map_anon(1)
                .unwrap()
                .make_read_only()
                .unwrap(),
            segments: vec![Segment {
                file_offset: 0x1000,
                file_size: u64::MAX,
                vaddr: u64::MAX - 1,
            }],
            build_id: None,
        };
        assert_eq!(elf.file_offset_to_vaddr(0x1001), Some(u64::MAX));
        assert_eq!(elf.file_offset_to_vaddr(0x1002), None);
        assert_eq!(elf.vaddr_to_file_offset(u64::MAX), Some(0x1001));
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
