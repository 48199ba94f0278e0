//! The DWARF sections of one file: borrowed from its mapping, or decompressed once into
//! the heap (SHF_COMPRESSED zlib/zstd, and GNU `.zdebug_*`). Strings are referred to by
//! [`StrRef`] (file, section and offset) so that parsed units hold no borrowed data.
//!
//! One binary's DWARF may span several files: the binary (or its debug file), a dwz
//! supplementary file, and split DWARF's `.dwo` files or `.dwp` package. Each gets a
//! [`FileId`], so that a string anywhere in them is one 8-byte [`StrRef`].

use std::borrow::Cow;
use std::convert::Infallible;
use std::num::NonZeroU64;
use std::sync::Arc;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, SectionId, Unit};
use object::{CompressionFormat, Object, ObjectSection};

use crate::elf::bytes::{c_str_at, offset_within};
use crate::elf::ElfFile;
use crate::error::{Error, Result};

/// The reader every parse uses: a slice of a mapping or of a decompressed buffer.
pub(crate) type Slice<'a> = EndianSlice<'a, RunTimeEndian>;

/// The sections symbolization reads, in the order of [`DwarfSections::sections`]. A split
/// DWARF file has the `.dwo` spelling of some of them (and the unit index, in a package).
const WANTED: [SectionId; 11] = [
    SectionId::DebugAbbrev,
    SectionId::DebugAddr,
    SectionId::DebugAranges,
    SectionId::DebugInfo,
    SectionId::DebugLine,
    SectionId::DebugLineStr,
    SectionId::DebugRanges,
    SectionId::DebugRngLists,
    SectionId::DebugStr,
    SectionId::DebugStrOffsets,
    SectionId::DebugCuIndex,
];

/// Indexes of sections in [`WANTED`].
const INFO: usize = 3;
const LINE_STR: usize = 5;
const STR: usize = 8;
const CU_INDEX: usize = 10;

/// Bits of a [`StrRef`] holding the offset (a terabyte: no string section is larger);
/// the section index (plus one) is in the [`SECTION_BITS`] above them, the file above
/// those.
const OFFSET_BITS: u32 = 40;
const SECTION_BITS: u32 = 4;
const FILE_SHIFT: u32 = OFFSET_BITS + SECTION_BITS;

/// Which of a binary's DWARF files a string is in.
pub(crate) type FileId = u32;

/// The binary, or its separate debug file.
pub(crate) const MAIN_FILE: FileId = 0;
/// The dwz supplementary file (`.gnu_debugaltlink`).
pub(crate) const SUP_FILE: FileId = 1;
/// The split DWARF package, `BINARY.dwp`.
pub(crate) const PACKAGE_FILE: FileId = 2;
/// The first loose `.dwo` file; the one of skeleton unit `n` (in `.debug_info` order)
/// is `FIRST_DWO_FILE + n`.
pub(crate) const FIRST_DWO_FILE: FileId = 3;
/// One past the largest file id a [`StrRef`] can hold: a binary with more skeleton units
/// than that keeps the names of the rest from the symbol table.
pub(crate) const FILE_LIMIT: FileId = 1 << (64 - FILE_SHIFT);

/// A string in one of the sections of one of the files: which and where, packed into 8
/// bytes (and never zero, so that an `Option<StrRef>` is 8 bytes too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StrRef(NonZeroU64);

impl StrRef {
    fn new(file: FileId, section: usize, offset: u64) -> Option<Self> {
        let section = u64::try_from(section).ok()?.checked_add(1)?;
        if offset >> OFFSET_BITS != 0 || section >> SECTION_BITS != 0 || file >= FILE_LIMIT {
            return None;
        }
        let packed = (u64::from(file) << FILE_SHIFT) | (section << OFFSET_BITS) | offset;
        NonZeroU64::new(packed).map(Self)
    }

    /// The file the string is in.
    pub(crate) fn file(self) -> FileId {
        (self.0.get() >> FILE_SHIFT) as FileId
    }

    fn section(self) -> usize {
        (((self.0.get() >> OFFSET_BITS) & ((1 << SECTION_BITS) - 1)) as usize).wrapping_sub(1)
    }

    fn offset(self) -> u64 {
        self.0.get() & ((1 << OFFSET_BITS) - 1)
    }
}

/// How a file names its DWARF sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `.debug_info` and the rest: a linked file, a debug file, a dwz supplementary file.
    Linked,
    /// `.debug_info.dwo` and the rest: a split DWARF `.dwo` file or `.dwp` package.
    Split,
}

/// Where one section's bytes are.
#[derive(Debug)]
enum SectionBytes {
    Missing,
    /// A range of the mapped file.
    Mapped {
        start: usize,
        len: usize,
    },
    /// Decompressed into the heap.
    Owned(Box<[u8]>),
}

/// The DWARF sections of one ELF file.
#[derive(Debug)]
pub(crate) struct DwarfSections {
    file: Arc<ElfFile>,
    endian: RunTimeEndian,
    sections: Vec<SectionBytes>,
    /// What this file's [`StrRef`]s say they are in.
    id: FileId,
    flavor: Flavor,
}

impl DwarfSections {
    /// Loads the sections of `file`, whose strings are known as file `id`; `None` when
    /// it has no `.debug_info` (or `.debug_info.dwo`).
    pub(crate) fn load(file: Arc<ElfFile>, flavor: Flavor, id: FileId) -> Result<Option<Self>> {
        let (endian, sections) = {
            let object = file.object()?;
            let endian = if object.is_little_endian() {
                RunTimeEndian::Little
            } else {
                RunTimeEndian::Big
            };
            let mut sections = Vec::with_capacity(WANTED.len());
            for id in WANTED {
                sections.push(load_section(&file, &object, id, flavor)?);
            }
            (endian, sections)
        };
        let this = Self {
            file,
            endian,
            sections,
            id,
            flavor,
        };
        Ok((!this.bytes(INFO).is_empty()).then_some(this))
    }

    /// A gimli view of the sections. Cheap (a few slices); built once per batch. A split
    /// file's still needs [`gimli::Dwarf::make_dwo`] with the skeleton's file.
    pub(crate) fn dwarf(&self) -> gimli::Dwarf<Slice<'_>> {
        self.view(|i| self.bytes(i))
    }

    /// A gimli view of one unit of a `.dwp` package, the one with id `id`: each section
    /// cut down to the unit's part of it by the package's index, `.debug_str` (which the
    /// units share) whole, and sections the index does not give the unit empty. (gimli's
    /// `DwarfPackage` wants every section an index may list loaded, location lists and
    /// macros included, which symbolization never reads; decompressing those would cost
    /// more than the rest.) Still needs [`gimli::Dwarf::make_dwo`].
    pub(crate) fn package_unit(&self, id: gimli::DwoId) -> Option<gimli::Dwarf<Slice<'_>>> {
        let index = gimli::DebugCuIndex::new(self.bytes(CU_INDEX), self.endian)
            .index()
            .ok()?;
        let row = index.find(id.0)?;
        let mut parts: [&[u8]; WANTED.len()] = [&[]; WANTED.len()];
        parts[STR] = self.bytes(STR);
        for part in index.sections(row).ok()? {
            let Some(i) = WANTED.iter().position(|w| *w == part.section.section_id()) else {
                continue;
            };
            let start = usize::try_from(part.offset).ok()?;
            let end = start.checked_add(usize::try_from(part.size).ok()?)?;
            parts[i] = self.bytes(i).get(start..end)?;
        }
        Some(self.view(|i| parts[i]))
    }

    /// A gimli view of the sections `part` gives by their index in [`WANTED`], for a
    /// linked file or a split one as this file is.
    fn view<'a>(&self, part: impl Fn(usize) -> &'a [u8]) -> gimli::Dwarf<Slice<'a>> {
        let load = |id: SectionId| {
            let bytes = WANTED.iter().position(|w| *w == id).map_or(&[][..], &part);
            Ok::<_, Infallible>(EndianSlice::new(bytes, self.endian))
        };
        let mut dwarf = match gimli::Dwarf::load(load) {
            Ok(dwarf) => dwarf,
            Err(never) => match never {},
        };
        if self.flavor == Flavor::Split {
            dwarf.file_type = gimli::DwarfFileType::Dwo;
        }
        dwarf
    }

    /// The bytes of the string `s` refers to (empty when out of bounds). `s` must be a
    /// string of this file.
    pub(crate) fn string(&self, s: StrRef) -> &[u8] {
        let offset = usize::try_from(s.offset()).unwrap_or(usize::MAX);
        c_str_at(self.bytes(s.section()), offset)
    }

    /// The [`StrRef`] of the string at `offset` in `.debug_str`.
    pub(crate) fn strp(&self, offset: u64) -> Option<StrRef> {
        StrRef::new(self.id, STR, offset)
    }

    /// The [`StrRef`] of a string attribute, without reading the string: strings in
    /// `.debug_str` are many, and measuring each while parsing a unit would cost more
    /// than the rest of the parse.
    pub(crate) fn attr_str_ref(
        &self,
        dwarf: &gimli::Dwarf<Slice<'_>>,
        unit: &Unit<Slice<'_>>,
        value: AttributeValue<Slice<'_>>,
    ) -> Option<StrRef> {
        match value {
            AttributeValue::DebugStrRef(offset) => self.strp(offset.0 as u64),
            AttributeValue::DebugLineStrRef(offset) => {
                StrRef::new(self.id, LINE_STR, offset.0 as u64)
            }
            AttributeValue::DebugStrOffsetsIndex(index) => {
                self.strp(dwarf.string_offset(unit, index).ok()?.0 as u64)
            }
            AttributeValue::String(s) => self.str_ref(s),
            _ => None,
        }
    }

    /// The [`StrRef`] of a string gimli returned, found by which section holds it.
    pub(crate) fn str_ref(&self, s: Slice<'_>) -> Option<StrRef> {
        let s = s.slice();
        (0..self.sections.len())
            .find_map(|i| StrRef::new(self.id, i, offset_within(self.bytes(i), s)? as u64))
    }

    /// Drops the mapped file's pages from the resident set.
    pub(crate) fn release_pages(&self) {
        self.file.release_pages();
    }

    /// Heap bytes held by decompressed sections.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.sections
            .iter()
            .map(|s| match s {
                SectionBytes::Owned(bytes) => bytes.len(),
                _ => 0,
            })
            .sum()
    }

    fn bytes(&self, index: usize) -> &[u8] {
        match self.sections.get(index) {
            Some(SectionBytes::Mapped { start, len }) => self
                .file
                .data()
                .get(*start..start.saturating_add(*len))
                .unwrap_or_default(),
            Some(SectionBytes::Owned(bytes)) => bytes,
            Some(SectionBytes::Missing) | None => &[],
        }
    }
}

fn load_section(
    file: &ElfFile,
    object: &object::File<'_>,
    id: SectionId,
    flavor: Flavor,
) -> Result<SectionBytes> {
    let name = match flavor {
        Flavor::Linked => Some(id.name()),
        Flavor::Split => id.dwo_name(),
    };
    // `section_by_name` also finds the GNU `.zdebug_*` spelling.
    let Some(section) = name.and_then(|name| object.section_by_name(name)) else {
        return Ok(SectionBytes::Missing);
    };
    if let Ok(range) = section.compressed_file_range() {
        let claimed = range.uncompressed_size;
        if range.format != CompressionFormat::None
            && !plausible_size(range.compressed_size, claimed)
        {
            let (name, compressed) = (name.unwrap_or_default(), range.compressed_size);
            return Err(Error::malformed(
                file.path(),
                format!("{name}: {compressed} compressed bytes cannot hold the {claimed} claimed"),
            ));
        }
    }
    let data = section.uncompressed_data().map_err(|e| {
        let name = name.unwrap_or_default();
        Error::malformed(file.path(), format!("cannot decompress {name}: {e}"))
    })?;
    Ok(match data {
        Cow::Borrowed(slice) => match offset_within(file.data(), slice) {
            Some(start) => SectionBytes::Mapped {
                start,
                len: slice.len(),
            },
            None => SectionBytes::Owned(slice.into()),
        },
        Cow::Owned(vec) => SectionBytes::Owned(vec.into_boxed_slice()),
    })
}

/// How many times its compressed size a section may claim to be: deflate cannot do more
/// than about 1032, and real DWARF stays near 10.
const MAX_COMPRESSION_RATIO: u64 = 1024;

/// Decompressed bytes any section may claim, whatever its compressed size.
const ALWAYS_PLAUSIBLE: u64 = 16 << 20;

/// Whether `compressed` bytes may hold the `uncompressed` their header claims. The
/// claim is allocated (and, for zstd, zero-filled) before anything is decoded: a few
/// bytes of header must not cost gigabytes.
fn plausible_size(compressed: u64, uncompressed: u64) -> bool {
    uncompressed <= ALWAYS_PLAUSIBLE.max(compressed.saturating_mul(MAX_COMPRESSION_RATIO))
}

#[cfg(test)]
mod tests {
    #[test]
    fn decompression_bombs_are_implausible() {
        use super::plausible_size;
        assert!(plausible_size(0, 16 << 20));
        assert!(plausible_size(100 << 20, 1 << 30));
        assert!(plausible_size(1 << 20, 1 << 30));
        // A 23 KB zstd .debug_info claiming 6 GiB, which ruzstd would zero-fill first.
        assert!(!plausible_size(4640, 6 << 30));
        assert!(plausible_size(u64::MAX, u64::MAX), "saturates, no overflow");
    }

    use super::*;

    #[test]
    fn section_indexes_name_the_wanted_sections() {
        assert_eq!(WANTED[INFO], SectionId::DebugInfo);
        assert_eq!(WANTED[LINE_STR], SectionId::DebugLineStr);
        assert_eq!(WANTED[STR], SectionId::DebugStr);
        assert_eq!(WANTED[CU_INDEX], SectionId::DebugCuIndex);
        assert!(WANTED.len() < 1 << SECTION_BITS);
    }

    #[test]
    fn string_refs_keep_file_section_and_offset() {
        let s = StrRef::new(FILE_LIMIT - 1, STR, (1 << OFFSET_BITS) - 1).unwrap();
        assert_eq!(
            (s.file(), s.section(), s.offset()),
            (FILE_LIMIT - 1, STR, (1 << OFFSET_BITS) - 1)
        );
        let s = StrRef::new(MAIN_FILE, 0, 0).unwrap();
        assert_eq!((s.file(), s.section(), s.offset()), (MAIN_FILE, 0, 0));
        assert_eq!(StrRef::new(FILE_LIMIT, STR, 0), None);
        assert_eq!(StrRef::new(MAIN_FILE, STR, 1 << OFFSET_BITS), None);
        assert_eq!(StrRef::new(MAIN_FILE, (1 << SECTION_BITS) - 1, 0), None);
    }
}
