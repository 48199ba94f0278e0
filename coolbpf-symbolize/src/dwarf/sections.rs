//! The DWARF sections of one file: borrowed from its mapping, or decompressed once into
//! the heap (SHF_COMPRESSED zlib/zstd, and GNU `.zdebug_*`). Strings are referred to by
//! [`StrRef`] (section and offset) so that parsed units hold no borrowed data.

use std::borrow::Cow;
use std::convert::Infallible;
use std::num::NonZeroU64;
use std::sync::Arc;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, SectionId, Unit};
use object::{Object, ObjectSection};

use crate::elf::bytes::{c_str_at, offset_within};
use crate::elf::ElfFile;
use crate::error::{Error, Result};

/// The reader every parse uses: a slice of a mapping or of a decompressed buffer.
pub(crate) type Slice<'a> = EndianSlice<'a, RunTimeEndian>;

/// The sections symbolization reads, in the order of [`DwarfSections::sections`].
const WANTED: [SectionId; 10] = [
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
];

/// Indexes of sections in [`WANTED`].
const INFO: usize = 3;
const LINE_STR: usize = 5;
const STR: usize = 8;

/// Bits of a [`StrRef`] holding the offset; the section index (plus one) is above them.
const OFFSET_BITS: u32 = 56;

/// A string in one of the sections: which one and where, packed into 8 bytes (and
/// never zero, so that an `Option<StrRef>` is 8 bytes too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StrRef(NonZeroU64);

impl StrRef {
    fn new(section: usize, offset: u64) -> Option<Self> {
        let section = u64::try_from(section).ok()?.checked_add(1)?;
        if offset >> OFFSET_BITS != 0 || section >> (64 - OFFSET_BITS) != 0 {
            return None;
        }
        NonZeroU64::new((section << OFFSET_BITS) | offset).map(Self)
    }

    fn section(self) -> usize {
        ((self.0.get() >> OFFSET_BITS) - 1) as usize
    }

    fn offset(self) -> u64 {
        self.0.get() & ((1 << OFFSET_BITS) - 1)
    }
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
}

impl DwarfSections {
    /// Loads the sections of `file`; `None` when it has no `.debug_info`.
    pub(crate) fn load(file: Arc<ElfFile>) -> Result<Option<Self>> {
        let (endian, sections) = {
            let object = file.object()?;
            let endian = if object.is_little_endian() {
                RunTimeEndian::Little
            } else {
                RunTimeEndian::Big
            };
            let mut sections = Vec::with_capacity(WANTED.len());
            for id in WANTED {
                sections.push(load_section(&file, &object, id)?);
            }
            (endian, sections)
        };
        let this = Self {
            file,
            endian,
            sections,
        };
        Ok((!this.bytes(INFO).is_empty()).then_some(this))
    }

    /// A gimli view of the sections. Cheap (a few slices); built once per batch.
    pub(crate) fn dwarf(&self) -> gimli::Dwarf<Slice<'_>> {
        let load = |id: SectionId| -> std::result::Result<Slice<'_>, Infallible> {
            let bytes = WANTED
                .iter()
                .position(|w| *w == id)
                .map_or(&[][..], |i| self.bytes(i));
            Ok(EndianSlice::new(bytes, self.endian))
        };
        match gimli::Dwarf::load(load) {
            Ok(dwarf) => dwarf,
            Err(never) => match never {},
        }
    }

    /// The bytes of the string `s` refers to (empty when out of bounds).
    pub(crate) fn string(&self, s: StrRef) -> &[u8] {
        let offset = usize::try_from(s.offset()).unwrap_or(usize::MAX);
        c_str_at(self.bytes(s.section()), offset)
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
            AttributeValue::DebugStrRef(offset) => StrRef::new(STR, offset.0 as u64),
            AttributeValue::DebugLineStrRef(offset) => StrRef::new(LINE_STR, offset.0 as u64),
            AttributeValue::DebugStrOffsetsIndex(index) => {
                StrRef::new(STR, dwarf.string_offset(unit, index).ok()?.0 as u64)
            }
            AttributeValue::String(s) => self.str_ref(s),
            _ => None,
        }
    }

    /// The [`StrRef`] of a string gimli returned, found by which section holds it.
    pub(crate) fn str_ref(&self, s: Slice<'_>) -> Option<StrRef> {
        let s = s.slice();
        (0..self.sections.len())
            .find_map(|i| StrRef::new(i, offset_within(self.bytes(i), s)? as u64))
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

fn load_section(file: &ElfFile, object: &object::File<'_>, id: SectionId) -> Result<SectionBytes> {
    // `section_by_name` also finds the GNU `.zdebug_*` spelling.
    let Some(section) = object.section_by_name(id.name()) else {
        return Ok(SectionBytes::Missing);
    };
    let data = section.uncompressed_data().map_err(|e| {
        Error::malformed(file.path(), format!("cannot decompress {}: {e}", id.name()))
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
