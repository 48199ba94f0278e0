//! `.gnu_debuglink` and build-id lookups: where a debug file may be, and its CRC.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::elf::build_id_hex;

/// Where the debug file `name` of `binary` may be, in the order GDB looks.
pub(crate) fn candidates(binary: &Path, name: &[u8], dirs: &[PathBuf]) -> Vec<PathBuf> {
    let name = Path::new(OsStr::from_bytes(name));
    // The link names a file, not a path: anything else could point anywhere.
    if !matches!(
        name.components().collect::<Vec<_>>().as_slice(),
        [Component::Normal(_)]
    ) {
        return Vec::new();
    }
    // The directory of the real file: a symlinked binary has its debug file next to
    // the target.
    let real = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let Some(dir) = real.parent() else {
        return Vec::new();
    };
    let mut out = vec![dir.join(name), dir.join(".debug").join(name)];
    let relative = dir.strip_prefix("/").unwrap_or(dir);
    out.extend(dirs.iter().map(|root| root.join(relative).join(name)));
    out
}

/// `ROOT/.build-id/xx/rest.debug` for build id `id`.
pub(crate) fn build_id_path(root: &Path, id: &[u8]) -> Option<PathBuf> {
    let hex = build_id_hex(id);
    let (head, rest) = (hex.get(..2)?, hex.get(2..)?);
    if rest.is_empty() {
        return None;
    }
    Some(
        root.join(".build-id")
            .join(head)
            .join(format!("{rest}.debug")),
    )
}

/// The CRC-32 (the zlib polynomial, as `.gnu_debuglink` uses) of a whole file. Read
/// through a buffer rather than mapped, so that checking a large debug file does not
/// count its pages in our resident set.
pub(crate) fn file_crc32(path: &Path) -> io::Result<u32> {
    let mut file = File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => hasher.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        let path = std::env::temp_dir().join(format!("coolbpf-crc-{}", std::process::id()));
        std::fs::write(&path, b"123456789").unwrap();
        let crc = file_crc32(&path);
        std::fs::remove_file(&path).unwrap();
        // The CRC-32/ISO-HDLC check value, which GNU's debuglink CRC is.
        assert_eq!(crc.unwrap(), 0xcbf4_3926);
    }

    #[test]
    fn build_id_paths_split_the_first_byte() {
        let path = build_id_path(Path::new("/usr/lib/debug"), &[0xab, 0xcd, 0xef]).unwrap();
        assert_eq!(path, Path::new("/usr/lib/debug/.build-id/ab/cdef.debug"));
        assert_eq!(build_id_path(Path::new("/d"), &[0xab]), None);
    }

    #[test]
    fn debuglink_names_cannot_escape_the_search_dirs() {
        let dirs = [PathBuf::from("/usr/lib/debug")];
        assert!(candidates(Path::new("/bin/true"), b"../../etc/passwd", &dirs).is_empty());
        assert!(candidates(Path::new("/bin/true"), b"/etc/passwd", &dirs).is_empty());
        let found = candidates(Path::new("/no/such/dir/prog"), b"prog.debug", &dirs);
        assert_eq!(
            found,
            [
                PathBuf::from("/no/such/dir/prog.debug"),
                PathBuf::from("/no/such/dir/.debug/prog.debug"),
                PathBuf::from("/usr/lib/debug/no/such/dir/prog.debug"),
            ]
        );
    }
}
