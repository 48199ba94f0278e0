//! dwz supplementary files. `dwz -m` moves what several debug files share into one file
//! that each names in `.gnu_debugaltlink`: a path (absolute, or relative to the naming
//! file's directory) and the file's build id. Distributions also install it by that
//! build id under the debug directories, where it is looked for next.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use object::Object;

use crate::debuginfo::{debuglink, has_dwarf};
use crate::elf::ElfFile;

/// The supplementary file `debug` names, if one with DWARF and the named build id is
/// found.
pub(crate) fn find_sup_file(debug: &ElfFile, dirs: &[PathBuf]) -> Option<ElfFile> {
    let object = debug.object().ok()?;
    let (name, id) = object.gnu_debugaltlink().ok()??;
    candidates(debug.path(), name, id, dirs)
        .iter()
        .find_map(|candidate| {
            let file = ElfFile::open(candidate).ok()?;
            // The build id is all that ties the two together: another build's file
            // would name the wrong DIEs and strings.
            (file.build_id() == Some(id) && has_dwarf(&file)).then_some(file)
        })
}

/// Where the supplementary file `name` with build id `id`, named by the file at `debug`,
/// may be.
fn candidates(debug: &Path, name: &[u8], id: &[u8], dirs: &[PathBuf]) -> Vec<PathBuf> {
    let name = Path::new(OsStr::from_bytes(name));
    let mut out = Vec::new();
    if name.is_absolute() {
        out.push(name.to_path_buf());
    } else if !name.as_os_str().is_empty() {
        // Relative to the real file: a symlinked debug file's link is relative to the
        // directory it was made in.
        let real = std::fs::canonicalize(debug).unwrap_or_else(|_| debug.to_path_buf());
        if let Some(dir) = real.parent() {
            out.push(dir.join(name));
        }
    }
    out.extend(
        dirs.iter()
            .filter_map(|dir| debuglink::build_id_path(dir, id)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_are_relative_to_the_debug_file_then_build_ids_are_tried() {
        let dirs = [PathBuf::from("/usr/lib/debug")];
        let found = candidates(
            Path::new("/no/such/dir/prog.debug"),
            b"../.dwz/common",
            &[0xab, 0xcd],
            &dirs,
        );
        assert_eq!(
            found,
            [
                PathBuf::from("/no/such/dir/../.dwz/common"),
                PathBuf::from("/usr/lib/debug/.build-id/ab/cd.debug"),
            ]
        );
        let absolute = candidates(Path::new("prog"), b"/usr/lib/debug/.dwz/x", &[1], &[]);
        assert_eq!(absolute, [PathBuf::from("/usr/lib/debug/.dwz/x")]);
    }
}
