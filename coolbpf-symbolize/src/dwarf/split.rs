//! Split DWARF (`-gsplit-dwarf`, rustc's `-C split-debuginfo`): a skeleton unit in the
//! binary keeps the line table, and its functions and inlined calls are in a split unit
//! in a `.dwo` file or a `.dwp` package.
//!
//! The package is `BINARY.dwp` next to the binary, where LLVM looks for it. A `.dwo` is
//! the file the skeleton names (`DW_AT_dwo_name`, GNU's `DW_AT_GNU_dwo_name` before
//! DWARF 5) relative to its compilation directory; failing that, the same name next to
//! the binary, where a build tree moved or copied with its binary leaves it (blazesym
//! and addr2line do not read loose `.dwo` files at all). Either way the split unit must
//! carry the skeleton's id, so a stale file from an older build is passed over. What is
//! not found is no error: the skeleton's lines and the symbol table's names remain.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use gimli::{DwoId, Unit, UnitType};

use crate::dwarf::sections::{
    DwarfSections, FileId, Flavor, Slice, FILE_LIMIT, FIRST_DWO_FILE, PACKAGE_FILE,
};
use crate::elf::ElfFile;

/// What a skeleton unit's `.dwo` turned out to be: its sections, or none found.
type Slot = OnceLock<Option<Box<DwarfSections>>>;

/// A skeleton's split unit, ready to parse.
pub(crate) struct SplitUnit<'a> {
    /// The split file's sections as gimli sees them, completed by the skeleton's file.
    pub(crate) dwarf: gimli::Dwarf<Slice<'a>>,
    /// The split unit, with the skeleton's address and range bases.
    pub(crate) unit: Unit<Slice<'a>>,
    /// Where its strings are.
    pub(crate) sections: &'a DwarfSections,
}

/// The split DWARF files of one binary, each opened when a unit first needs it.
#[derive(Debug)]
pub(crate) struct SplitFiles {
    /// Where the binary is: the paths a package is named after and loose files may be
    /// next to (the binary as given, the file it resolves to, its debug file).
    binaries: Vec<PathBuf>,
    package: OnceLock<Option<DwarfSections>>,
    /// One slot per unit of the skeleton's file, by position: what that unit's `.dwo`
    /// turned out to be. Slots never move, so strings can be borrowed from them.
    loose: OnceLock<Box<[Slot]>>,
    /// Heap bytes of the files loaded so far.
    loaded_bytes: AtomicUsize,
    /// Files parsed from since their pages were last released: a binary may have
    /// thousands of `.dwo` files, of which a batch touches a few.
    touched: Mutex<Vec<FileId>>,
}

impl SplitFiles {
    /// Split files of the binary at `binaries` (see [`SplitFiles::binaries`]).
    pub(crate) fn new(binaries: Vec<PathBuf>) -> Self {
        Self {
            binaries,
            package: OnceLock::new(),
            loose: OnceLock::new(),
            loaded_bytes: AtomicUsize::new(0),
            touched: Mutex::new(Vec::new()),
        }
    }

    /// The split unit of `skeleton`, which is unit number `slot` of the `units` units of
    /// `parent`: from the package if it has it, else from the unit's `.dwo`.
    pub(crate) fn find<'a>(
        &'a self,
        parent: &gimli::Dwarf<Slice<'a>>,
        skeleton: &Unit<Slice<'a>>,
        slot: usize,
        units: usize,
    ) -> Option<SplitUnit<'a>> {
        let id = skeleton.dwo_id?;
        if let Some(found) = self.in_package(parent, skeleton, id) {
            return Some(found);
        }
        let file = u32::try_from(slot)
            .ok()
            .and_then(|s| s.checked_add(FIRST_DWO_FILE))
            .filter(|&f| f < FILE_LIMIT)?;
        let slots = self
            .loose
            .get_or_init(|| (0..units).map(|_| OnceLock::new()).collect());
        let sections = slots
            .get(slot)?
            .get_or_init(|| {
                let loaded = self.load_dwo(parent, skeleton, id, file)?;
                self.count(&loaded);
                Some(Box::new(loaded))
            })
            .as_deref()?;
        let mut dwarf = sections.dwarf();
        dwarf.make_dwo(parent);
        let unit = split_unit(&dwarf, id, skeleton)?;
        self.touch(file);
        Some(SplitUnit {
            dwarf,
            unit,
            sections,
        })
    }

    /// The sections of split file `file`, if it was loaded.
    pub(crate) fn sections(&self, file: FileId) -> Option<&DwarfSections> {
        if file == PACKAGE_FILE {
            return self.package.get()?.as_ref();
        }
        let slot = usize::try_from(file.checked_sub(FIRST_DWO_FILE)?).ok()?;
        self.loose.get()?.get(slot)?.get()?.as_deref()
    }

    /// Drops the pages of the split files parsed from since the last time from the
    /// resident set.
    pub(crate) fn release_pages(&self) {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        for file in touched.drain(..) {
            if let Some(sections) = self.sections(file) {
                sections.release_pages();
            }
        }
    }

    /// Heap bytes held: decompressed sections, and the slots.
    pub(crate) fn heap_bytes(&self) -> usize {
        let slots = self.loose.get().map_or(0, |s| s.len() * size_of::<Slot>());
        slots + self.loaded_bytes.load(Ordering::Relaxed)
    }

    fn count(&self, loaded: &DwarfSections) {
        let bytes = loaded.heap_bytes() + size_of::<DwarfSections>();
        self.loaded_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn touch(&self, file: FileId) {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        if !touched.contains(&file) {
            touched.push(file);
        }
    }

    fn in_package<'a>(
        &'a self,
        parent: &gimli::Dwarf<Slice<'a>>,
        skeleton: &Unit<Slice<'a>>,
        id: DwoId,
    ) -> Option<SplitUnit<'a>> {
        let sections = self
            .package
            .get_or_init(|| {
                let found = self.binaries.iter().find_map(|binary| {
                    let mut name = binary.clone().into_os_string();
                    name.push(".dwp");
                    open(Path::new(&name), PACKAGE_FILE)
                });
                if let Some(package) = &found {
                    self.count(package);
                }
                found
            })
            .as_ref()?;
        let mut dwarf = sections.package_unit(id)?;
        dwarf.make_dwo(parent);
        let unit = split_unit(&dwarf, id, skeleton)?;
        self.touch(PACKAGE_FILE);
        Some(SplitUnit {
            dwarf,
            unit,
            sections,
        })
    }

    /// The first `.dwo` candidate holding the split unit `id`, loaded as file `file`.
    fn load_dwo<'a>(
        &self,
        parent: &gimli::Dwarf<Slice<'a>>,
        skeleton: &Unit<Slice<'a>>,
        id: DwoId,
        file: FileId,
    ) -> Option<DwarfSections> {
        let name = parent
            .attr_string(skeleton, skeleton.dwo_name().ok()??)
            .ok()?;
        let comp_dir = skeleton.comp_dir.map(|d| d.slice());
        candidates(name.slice(), comp_dir, &self.binaries)
            .iter()
            .filter_map(|path| open(path, file))
            .find(|sections| {
                let mut dwarf = sections.dwarf();
                dwarf.make_dwo(parent);
                split_unit(&dwarf, id, skeleton).is_some()
            })
    }
}

/// The split DWARF sections of the file at `path`, known as file `id`.
fn open(path: &Path, id: FileId) -> Option<DwarfSections> {
    let file = ElfFile::open(path).ok()?;
    DwarfSections::load(Arc::new(file), Flavor::Split, id)
        .ok()
        .flatten()
}

/// Where the `.dwo` file `name` of a unit compiled in `comp_dir` may be, best first: as
/// the unit says (as LLVM looks, relative names against the compilation directory), then
/// next to each of `binaries`, by the relative name and by the file name alone.
fn candidates(name: &[u8], comp_dir: Option<&[u8]>, binaries: &[PathBuf]) -> Vec<PathBuf> {
    let name = Path::new(OsStr::from_bytes(name));
    if name.as_os_str().is_empty() {
        return Vec::new();
    }
    let mut out = vec![match comp_dir {
        Some(dir) if name.is_relative() => Path::new(OsStr::from_bytes(dir)).join(name),
        _ => name.to_path_buf(),
    }];
    for dir in binaries.iter().filter_map(|b| b.parent()) {
        if name.is_relative() {
            out.push(dir.join(name));
        }
        if let Some(file) = name.file_name() {
            out.push(dir.join(file));
        }
    }
    let mut seen = Vec::with_capacity(out.len());
    out.retain(|path| {
        let new = !seen.contains(path);
        if new {
            seen.push(path.clone());
        }
        new
    });
    out
}

/// The unit of `dwarf` (a `.dwo` file, or one unit's part of a package) whose id is
/// `id`, with the skeleton's address and range bases.
fn split_unit<'a>(
    dwarf: &gimli::Dwarf<Slice<'a>>,
    id: DwoId,
    skeleton: &Unit<Slice<'a>>,
) -> Option<Unit<Slice<'a>>> {
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        let maybe = match header.type_() {
            UnitType::SplitCompilation(found) => found == id,
            // GNU split DWARF (version 4) has the id in the root DIE.
            UnitType::Compilation => true,
            _ => false,
        };
        if !maybe {
            continue;
        }
        let Ok(mut unit) = dwarf.unit(header) else {
            continue;
        };
        if unit.dwo_id == Some(id) {
            unit.copy_relocated_attributes(skeleton);
            return Some(unit);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dwo_files_are_looked_for_in_the_comp_dir_then_next_to_the_binary() {
        let binaries = [PathBuf::from("/opt/app/bin/prog")];
        assert_eq!(
            candidates(b"obj/a.dwo", Some(b"/build"), &binaries),
            [
                PathBuf::from("/build/obj/a.dwo"),
                PathBuf::from("/opt/app/bin/obj/a.dwo"),
                PathBuf::from("/opt/app/bin/a.dwo"),
            ]
        );
        assert_eq!(
            candidates(b"/build/a.dwo", Some(b"/elsewhere"), &binaries),
            [
                PathBuf::from("/build/a.dwo"),
                PathBuf::from("/opt/app/bin/a.dwo"),
            ]
        );
        assert_eq!(
            candidates(b"a.dwo", None, &binaries),
            [PathBuf::from("a.dwo"), PathBuf::from("/opt/app/bin/a.dwo")]
        );
        assert!(candidates(b"", Some(b"/build"), &binaries).is_empty());
    }
}
