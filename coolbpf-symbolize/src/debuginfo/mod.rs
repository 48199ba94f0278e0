//! Finding debug information that is not in the binary itself: a separate debug file
//! (named by `.gnu_debuglink` or found by build id under the debug directories), its dwz
//! supplementary file (`.gnu_debugaltlink`), and the MiniDebugInfo symbol table in
//! `.gnu_debugdata`. (Split DWARF files are found by the units that need them.)

mod altlink;
mod debugdata;
mod debuglink;

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

use crate::elf::ElfFile;

pub(crate) use altlink::find_sup_file;
pub(crate) use debugdata::mini_debuginfo;

/// The separate debug file of `binary`, if one with DWARF can be found: first by its
/// `.gnu_debuglink` (the CRC must match) next to the binary, in its `.debug/`
/// subdirectory, and under each of `dirs` followed by the binary's directory; then by
/// build id as `DIR/.build-id/xx/rest.debug` under each of `dirs`.
pub(crate) fn find_debug_file(binary: &ElfFile, dirs: &[PathBuf]) -> Option<ElfFile> {
    let object = binary.object().ok()?;
    if let Ok(Some((name, crc))) = object.gnu_debuglink() {
        for candidate in debuglink::candidates(binary.path(), name, dirs) {
            if is_same_file(&candidate, binary.path()) {
                continue;
            }
            if debuglink::file_crc32(&candidate).ok() != Some(crc) {
                continue;
            }
            if let Some(file) = open_with_dwarf(&candidate) {
                return Some(file);
            }
        }
    }
    let id = binary.build_id()?;
    dirs.iter()
        .filter_map(|dir| debuglink::build_id_path(dir, id))
        .find_map(|candidate| {
            let file = open_with_dwarf(&candidate)?;
            // A stale file under the right name would give wrong answers: the ids must agree.
            (file.build_id() == Some(id)).then_some(file)
        })
}

/// Whether the file has DWARF (`.debug_info`, or its `.zdebug_info` spelling).
pub(crate) fn has_dwarf(file: &ElfFile) -> bool {
    file.object()
        .ok()
        .and_then(|o| o.section_by_name(".debug_info").map(|s| s.size() > 0))
        .unwrap_or(false)
}

fn open_with_dwarf(path: &Path) -> Option<ElfFile> {
    let file = ElfFile::open(path).ok()?;
    has_dwarf(&file).then_some(file)
}

fn is_same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
