//! One ELF file ready for lookups: its merged symbol table and its DWARF (its own, or a
//! separate debug file's), turning an address into frames.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::debuginfo::{find_debug_file, find_sup_file, has_dwarf, mini_debuginfo};
use crate::dwarf::{DwarfFiles, DwarfInfo, Func, PathKey, Row, UnitData, UnitHit};
use crate::elf::bytes::Bytes;
use crate::elf::names::{Memo, NameKey, Names};
use crate::elf::symbols::{self, Table};
use crate::elf::symtab::{SymbolHit, SymbolTable};
use crate::elf::ElfFile;
use crate::error::Result;
use crate::frame::{Frame, Symbolized, Unknown};

/// A parsed unit, or why it could not be parsed (cached either way).
pub(crate) type UnitEntry = std::result::Result<Arc<UnitData>, Arc<str>>;

/// What an unknown function is called, as llvm-symbolizer and addr2line write it.
const UNKNOWN_NAME: &[u8] = b"??";

/// An opened ELF file with everything needed to symbolize its addresses.
#[derive(Debug)]
pub(crate) struct ElfResolver {
    /// Distinguishes this file's units in the cache from another file's.
    id: u64,
    path: PathBuf,
    main: Arc<ElfFile>,
    symtab: SymbolTable,
    dwarf: Option<DwarfInfo>,
    /// Why DWARF that exists could not be used (a section that does not decompress).
    dwarf_error: Option<String>,
    names: Memo<NameKey, Arc<Names>>,
    paths: Memo<PathKey, Arc<str>>,
}

impl ElfResolver {
    /// Opens `path`, finds its debug information (looking in `debug_dirs` for separate
    /// debug files) and reads its symbol tables. DWARF is not parsed yet, and not used at
    /// all without `use_dwarf` (a stripped binary's separate debug file still lends its
    /// symbol table).
    pub(crate) fn open(
        id: u64,
        path: &Path,
        debug_dirs: &[PathBuf],
        use_dwarf: bool,
    ) -> Result<Self> {
        let main = Arc::new(ElfFile::open(path)?);
        let debug = if has_dwarf(&main) {
            Some(main.clone())
        } else {
            find_debug_file(&main, debug_dirs).map(Arc::new)
        };
        let files = debug.clone().filter(|_| use_dwarf).map(|debug| DwarfFiles {
            sup: find_sup_file(&debug, debug_dirs).map(Arc::new),
            binaries: binary_paths(path, &debug),
            debug,
        });
        let (dwarf, dwarf_error) = match files.map(DwarfInfo::load) {
            Some(Ok(dwarf)) => (dwarf, None),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (None, None),
        };
        let symtab = symbol_table(&main, debug.as_ref());
        let path = path.to_path_buf();
        let (names, paths) = (Memo::default(), Memo::default());
        Ok(Self {
            id,
            path,
            main,
            symtab,
            dwarf,
            dwarf_error,
            names,
            paths,
        })
    }

    /// Says how many addresses are about to be looked up (see [`SymbolTable::prepare`]).
    pub(crate) fn prepare(&self, lookups: usize) {
        self.symtab.prepare(lookups);
    }

    /// Drops the pages of the mapped files from the resident set once DWARF units of at
    /// least `min_parsed` bytes were parsed since the last time: parsed units hold what
    /// lookups need.
    pub(crate) fn release_pages(&self, min_parsed: u64) {
        if self
            .dwarf
            .as_ref()
            .is_some_and(|d| d.release_pages(min_parsed))
        {
            self.main.release_pages();
        }
    }

    /// The id given at [`open`](Self::open).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The DWARF, if the file (or its debug file) has any.
    pub(crate) fn dwarf(&self) -> Option<&DwarfInfo> {
        self.dwarf.as_ref()
    }

    /// Heap bytes held (parsed units are accounted for separately).
    pub(crate) fn heap_bytes(&self) -> usize {
        size_of::<Self>()
            + self.symtab.heap_bytes()
            + self.dwarf.as_ref().map_or(0, DwarfInfo::heap_bytes)
            + self.names.heap_bytes()
            + self.paths.heap_bytes()
    }

    /// The frames at `addr`. `unit` is the DWARF unit covering it, if any; `hit` is
    /// scratch space reused across calls.
    pub(crate) fn frames(
        &self,
        addr: u64,
        unit: Option<&UnitEntry>,
        hit: &mut UnitHit,
    ) -> Symbolized {
        let symbol = self.symtab.lookup(addr);
        hit.row = None;
        hit.chain.clear();
        let data = match unit {
            Some(Ok(data)) => {
                data.lookup(addr, hit);
                Some(&**data)
            }
            Some(Err(_)) | None => None,
        };
        if hit.chain.is_empty() {
            if symbol.is_none() && hit.row.is_none() {
                return Symbolized::Unknown(self.unknown(addr, unit));
            }
            let (name, offset) = self.symbol_name(symbol, addr, 0);
            let mut frame = self.frame(&name, offset, hit.row, data, false);
            if frame.file.is_none() {
                // Without DWARF, a local symbol's source file is still known from the
                // symbol table (as llvm-symbolizer reports it too).
                let file = symbol.and_then(|s| s.file);
                frame.file = file.map(|f| String::from_utf8_lossy(f).into_owned());
            }
            return Symbolized::Frames(vec![frame]);
        }
        let mut frames = Vec::with_capacity(hit.chain.len());
        let mut inner: Option<Func> = None;
        for (depth, &(func, begin)) in hit.chain.iter().enumerate().rev() {
            // The innermost frame is where the line table puts the address; each outer
            // one is where the frame inside it was inlined.
            let location = match inner {
                None => hit.row,
                Some(callee) => Some(Row {
                    line: callee.call_line,
                    file: callee.call_file,
                    column: callee.call_column,
                }),
            };
            // The outermost frame is named by the symbol table when a symbol covers the
            // address (as llvm-symbolizer does): it tells GCC's clones such as
            // `f.cold` or `f.constprop.0` apart, and names functions that DWARF from
            // -gline-tables-only only knows by their short name.
            let (name, offset) = match symbol {
                Some(_) if depth == 0 => self.symbol_name(symbol, addr, begin),
                _ => (self.func_name(&func), addr.saturating_sub(begin)),
            };
            frames.push(self.frame(&name, offset, location, data, depth != 0));
            inner = Some(func);
        }
        Symbolized::Frames(frames)
    }

    fn func_name(&self, func: &Func) -> Arc<Names> {
        match (func.name, &self.dwarf) {
            (Some(name), Some(dwarf)) => self.names.get(NameKey::Dwarf(name), || {
                Arc::new(Names::new(dwarf.string(name)))
            }),
            _ => Arc::new(Names::new(UNKNOWN_NAME)),
        }
    }

    /// A frame named `names` at `location` (a file of `unit`'s line table, a line and
    /// a column; 0 for unknown).
    fn frame(
        &self,
        names: &Names,
        offset: u64,
        location: Option<Row>,
        unit: Option<&UnitData>,
        inlined: bool,
    ) -> Frame {
        let file = location
            .zip(unit)
            .and_then(|(l, u)| u.file(l.file))
            .zip(self.dwarf.as_ref());
        Frame {
            function: names.function().to_owned(),
            raw_name: names.raw().to_owned(),
            offset,
            file: file.map(|(key, dwarf)| {
                let path = self
                    .paths
                    .get(key, || key.render(|s| dwarf.string(s)).into());
                path.to_string()
            }),
            line: location.map(|l| l.line).filter(|&l| l != 0),
            column: location.map(|l| u32::from(l.column)).filter(|&c| c != 0),
            inlined,
        }
    }

    /// The symbol's name and the offset of `addr` in it, or `??` and the offset from
    /// `fallback_start` when no symbol covers it.
    fn symbol_name(
        &self,
        symbol: Option<SymbolHit<'_>>,
        addr: u64,
        fallback_start: u64,
    ) -> (Arc<Names>, u64) {
        match symbol {
            Some(s) => {
                let names = self
                    .names
                    .get(NameKey::Symbol(s.start), || Arc::new(Names::new(s.name)));
                (names, addr.saturating_sub(s.start))
            }
            None => (
                Arc::new(Names::new(UNKNOWN_NAME)),
                addr.saturating_sub(fallback_start),
            ),
        }
    }

    /// Why nothing covers `addr`.
    fn unknown(&self, addr: u64, unit: Option<&UnitEntry>) -> Unknown {
        if let Some(Err(why)) = unit {
            return Unknown::Unreadable(why.to_string());
        }
        if self.symtab.is_empty() && self.dwarf.is_none() {
            return match &self.dwarf_error {
                Some(why) => Unknown::Unreadable(why.clone()),
                None => Unknown::NoSymbols(self.path.display().to_string()),
            };
        }
        let segments = self.main.segments();
        let mapped = segments
            .iter()
            .any(|s| addr.wrapping_sub(s.vaddr) < s.file_size);
        if segments.is_empty() || mapped {
            Unknown::NoSymbol
        } else {
            Unknown::Unmapped
        }
    }
}

/// Where split DWARF files of the binary at `path` may be next to: the path as given
/// (LLVM names the package after it), the file it resolves to, and the debug file.
fn binary_paths(path: &Path, debug: &ElfFile) -> Vec<PathBuf> {
    let mut paths = vec![path.to_path_buf()];
    for other in [
        std::fs::canonicalize(path).ok(),
        Some(debug.path().to_path_buf()),
    ]
    .into_iter()
    .flatten()
    {
        if !paths.contains(&other) {
            paths.push(other);
        }
    }
    paths
}

/// The merged symbol table: the binary's `.symtab`, else the debug file's, else the
/// one in `.gnu_debugdata`; and `.dynsym` in any case (MiniDebugInfo leaves out what
/// `.dynsym` has).
fn symbol_table(main: &Arc<ElfFile>, debug: Option<&Arc<ElfFile>>) -> SymbolTable {
    let main_bytes = Bytes::File(main.clone());
    let mut sources = Vec::new();
    if symbols::count(main.data(), Table::Static) > 0 {
        sources.push((main_bytes.clone(), Table::Static));
    } else if let Some(debug) = debug.filter(|d| symbols::count(d.data(), Table::Static) > 0) {
        sources.push((Bytes::File(debug.clone()), Table::Static));
    } else if let Some(mini) = mini_debuginfo(main) {
        sources.push((Bytes::Owned(mini), Table::Static));
    }
    sources.push((main_bytes, Table::Dynamic));
    SymbolTable::new(sources)
}
