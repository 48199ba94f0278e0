//! Opening the file behind a mapping the way the process sees it, not the way we do: the
//! process may live in another mount namespace (a container), or the file may have been
//! deleted or replaced since it was mapped.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::elf::ElfFile;
use crate::process::maps::{MapsEntry, Pathname};

/// The paths that may reach a mapping's file, best first:
/// 1. `/proc/PID/map_files/START-END`: the very inode mapped, in any namespace, even
///    deleted (needs CAP_SYS_ADMIN, which a profiler has);
/// 2. `/proc/PID/root/PATH`: the path resolved in the process's mount namespace;
/// 3. `PATH` itself, for when `/proc/PID/root` cannot be followed.
///
/// The last two are skipped for deleted files, whose path names nothing or another file.
fn candidates(pid: u32, entry: &MapsEntry) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(format!(
        "/proc/{pid}/map_files/{}",
        entry.map_files_name()
    ))];
    if let Pathname::File {
        path,
        deleted: false,
    } = &entry.pathname
    {
        paths.push(PathBuf::from(format!("/proc/{pid}/root{path}")));
        paths.push(PathBuf::from(path));
    }
    paths
}

/// Opens the ELF file behind `entry` (its [`ElfFile::path`] is the path that reached it,
/// to hand on to [`Symbolizer::symbolize_elf`](crate::Symbolizer)), or says why not:
/// every path tried, with its error.
pub(crate) fn open_mapped(pid: u32, entry: &MapsEntry) -> Result<ElfFile, String> {
    let mut failures = Vec::new();
    for path in candidates(pid, entry) {
        // A path (not map_files, which is the mapped inode by construction) may name a
        // different file than the one mapped: another container's, or a newer version
        // installed over it. The inode tells them apart; the device number does not
        // reliably (btrfs subvolumes report different ones through stat and maps).
        let by_path = !path.starts_with(format!("/proc/{pid}/map_files"));
        if by_path && entry.inode != 0 {
            match std::fs::metadata(&path) {
                Ok(meta) if meta.ino() != entry.inode => {
                    failures.push(format!(
                        "{}: not the mapped file (inode differs)",
                        path.display()
                    ));
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    failures.push(format!("{}: {e}", path.display()));
                    continue;
                }
            }
        }
        match ElfFile::open(&path) {
            Ok(elf) => return Ok(elf),
            // A file that is there but is not ELF will not become ELF by another path.
            Err(e @ crate::Error::Malformed { .. }) => return Err(e.to_string()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(failures.join("; "))
}
