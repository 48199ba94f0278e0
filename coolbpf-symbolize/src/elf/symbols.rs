//! Reading ELF symbol tables straight from their entries: no name is measured, checked
//! or copied (a name is the offset of its first byte), so listing a hundred thousand
//! symbols costs little more than reading their entries.

use object::elf;
use object::read::elf::{ElfFile, FileHeader, SectionHeader, Sym as _};
use object::{Endianness, FileKind};

/// Which table of an object to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `.symtab`.
    Static,
    /// `.dynsym`.
    Dynamic,
}

/// A symbol that may name code or data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) start: u64,
    pub(crate) size: u64,
    /// End address of the symbol's section: a size-0 symbol extends no further.
    pub(crate) section_end: u64,
    /// File offset of the name's first byte (it runs to a NUL).
    pub(crate) name_offset: u64,
    /// For a local symbol, the file offset of the name of the source file it came from
    /// (the `STT_FILE` symbol before it); 0 when unknown.
    pub(crate) file_offset: u64,
    /// Position in its table.
    pub(crate) index: u32,
}

/// How many entries `table` of the ELF file `data` has (0 when it does not parse).
pub(crate) fn count(data: &[u8], table: Table) -> usize {
    match FileKind::parse(data) {
        Ok(FileKind::Elf32) => count_in::<elf::FileHeader32<Endianness>>(data, table),
        Ok(FileKind::Elf64) => count_in::<elf::FileHeader64<Endianness>>(data, table),
        _ => 0,
    }
}

/// Calls `f` with each function, object and untyped symbol defined in a loaded
/// (SHF_ALLOC) section of `table` of the ELF file `data`: what llvm-symbolizer names
/// addresses by, less the symbols of sections that are not loaded. ARM mapping symbols
/// (`$a`, `$d`, `$x`) are left out: they mark code and data, they do not name them.
pub(crate) fn for_each(data: &[u8], table: Table, f: &mut dyn FnMut(Candidate)) {
    match FileKind::parse(data) {
        Ok(FileKind::Elf32) => read::<elf::FileHeader32<Endianness>>(data, table, f),
        Ok(FileKind::Elf64) => read::<elf::FileHeader64<Endianness>>(data, table, f),
        _ => None,
    };
}

fn count_in<Elf: FileHeader<Endian = Endianness>>(data: &[u8], table: Table) -> usize {
    ElfFile::<Elf>::parse(data).map_or(0, |file| match table {
        Table::Static => file.elf_symbol_table().symbols().len(),
        Table::Dynamic => file.elf_dynamic_symbol_table().symbols().len(),
    })
}

fn read<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    table: Table,
    f: &mut dyn FnMut(Candidate),
) -> Option<()> {
    let file = ElfFile::<Elf>::parse(data).ok()?;
    let endian = file.endian();
    let symbols = match table {
        Table::Static => file.elf_symbol_table(),
        Table::Dynamic => file.elf_dynamic_symbol_table(),
    };
    let sections = file.elf_section_table();
    let (strings_offset, strings_size) = sections
        .section(symbols.string_section())
        .ok()?
        .file_range(endian)?;
    // Where each section ends, if it is loaded at all: a section without SHF_ALLOC
    // (`.gnu.warning.*` in glibc, `.comment`, debug sections) has no run-time address,
    // and the symbols in it, at address 0 and up, would name the ELF header.
    let section_ends: Vec<Option<u64>> = sections
        .iter()
        .map(|s| {
            let alloc = s.sh_flags(endian).contains(elf::SHF_ALLOC);
            alloc.then(|| {
                s.sh_addr(endian)
                    .into()
                    .saturating_add(s.sh_size(endian).into())
            })
        })
        .collect();
    let machine = file.elf_header().e_machine(endian);
    let arm = machine == elf::EM_ARM || machine == elf::EM_AARCH64;
    // The local symbols of one object file follow the `STT_FILE` symbol naming its
    // source, which llvm-symbolizer reports as their file when DWARF has none.
    let mut source_file = 0;
    for (index, sym) in symbols.symbols().iter().enumerate() {
        let kind = sym.st_type();
        let name = u64::from(sym.st_name(endian));
        let name_offset = strings_offset.saturating_add(name);
        let named = name != 0 && name < strings_size;
        if kind == elf::STT_FILE {
            source_file = if named { name_offset } else { 0 };
            continue;
        }
        if ![
            elf::STT_NOTYPE,
            elf::STT_FUNC,
            elf::STT_OBJECT,
            elf::STT_GNU_IFUNC,
        ]
        .contains(&kind)
        {
            continue;
        }
        let section = sym.st_shndx(endian).0;
        if section == 0 || section >= elf::SHN_LORESERVE || !named {
            continue;
        }
        if arm && usize::try_from(name_offset).ok().and_then(|o| data.get(o)) == Some(&b'$') {
            continue;
        }
        let Some(&Some(section_end)) = section_ends.get(usize::from(section)) else {
            continue;
        };
        f(Candidate {
            start: sym.st_value(endian).into(),
            size: sym.st_size(endian).into(),
            section_end,
            name_offset,
            file_offset: if sym.st_bind() == elf::STB_LOCAL {
                source_file
            } else {
                0
            },
            index: u32::try_from(index).unwrap_or(u32::MAX),
        });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_same_symbols_as_object_does() {
        use object::{Object, ObjectSymbol, SymbolKind};
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut ours = Vec::new();
        for_each(&exe, Table::Static, &mut |c| ours.push(c));
        let object = object::File::parse(&*exe).unwrap();
        let functions: Vec<_> = object
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .collect();
        assert!(!functions.is_empty());
        for symbol in functions {
            let found = ours
                .iter()
                .find(|c| c.index as usize == symbol.index().0)
                .unwrap();
            assert_eq!((found.start, found.size), (symbol.address(), symbol.size()));
            let name = crate::elf::bytes::c_str_at(&exe, found.name_offset as usize);
            assert_eq!(name, symbol.name_bytes().unwrap());
        }
        assert!(count(&exe, Table::Static) >= object.symbols().count());
    }

    #[test]
    fn garbage_has_no_symbols() {
        assert_eq!(count(b"\x7fELF garbage", Table::Static), 0);
        for_each(b"\x7fELF garbage", Table::Dynamic, &mut |_| {
            panic!("no symbols expected")
        });
    }
}
