//! Finding a file by its GNU build id under debug directories, the layout distributions
//! use: `DIR/.build-id/xx/rest` (a link to the binary) and `DIR/.build-id/xx/rest.debug`
//! (its separate debug file).

use std::io;
use std::path::{Path, PathBuf};

use crate::elf::{build_id_hex, ElfFile};
use crate::error::{Error, Result};

/// A build id as given: validated and lowercased, so it can become a path safely.
pub(crate) fn parse_hex(build_id: &str) -> Result<String> {
    let valid = build_id.len() >= 4
        && build_id.len() % 2 == 0
        && build_id.bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(build_id.to_ascii_lowercase())
    } else {
        Err(Error::InvalidArgument(format!(
            "build id {build_id:?}: expected an even number (at least 4) of hex digits"
        )))
    }
}

/// Where `hex` would be under `dir`, with `suffix` (`""` or `".debug"`).
fn candidate(dir: &Path, hex: &str, suffix: &str) -> PathBuf {
    let (head, rest) = hex.split_at(2);
    dir.join(".build-id")
        .join(head)
        .join(format!("{rest}{suffix}"))
}

/// Opens the file with build id `build_id` under `debug_dirs`. The binary is preferred to
/// its debug file in every directory, since only the binary's program headers place file
/// offsets. A file whose build id differs (a stale link) is passed over.
pub(crate) fn open_by_build_id(build_id: &str, debug_dirs: &[PathBuf]) -> Result<ElfFile> {
    let hex = parse_hex(build_id)?;
    for suffix in ["", ".debug"] {
        for dir in debug_dirs {
            let path = candidate(dir, &hex, suffix);
            if !path.is_file() {
                continue;
            }
            let Ok(elf) = ElfFile::open(&path) else {
                continue;
            };
            if elf.build_id().is_none_or(|id| build_id_hex(id) == hex) {
                return Ok(elf);
            }
        }
    }
    let dirs: Vec<String> = debug_dirs.iter().map(|d| d.display().to_string()).collect();
    let first = debug_dirs
        .first()
        .map_or_else(|| PathBuf::from(".build-id"), |d| candidate(d, &hex, ""));
    Err(Error::io(
        first,
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no file with build id {hex} under [{}]/.build-id",
                dirs.join(", ")
            ),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_are_validated_before_becoming_paths() {
        assert_eq!(parse_hex("ABcd01").unwrap(), "abcd01");
        for bad in ["", "ab", "abc", "../../etc/passwd", "abcd/1", "zzzz"] {
            assert!(
                matches!(parse_hex(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        assert_eq!(
            candidate(Path::new("/usr/lib/debug"), "abcdef", ".debug"),
            Path::new("/usr/lib/debug/.build-id/ab/cdef.debug")
        );
    }

    #[test]
    fn missing_build_id_names_where_it_looked() {
        let err = open_by_build_id("00112233", &[PathBuf::from("/nonexistent-debug")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("00112233") && text.contains("/nonexistent-debug"),
            "{text}"
        );
    }
}
