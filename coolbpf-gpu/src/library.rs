//! Finding the CUDA and NCCL libraries where they really are: mapped by a process
//! (`/proc/PID/maps`, through `/proc/PID/root` so containers work), statically linked
//! into its executable, in pip wheels (`site-packages/nvidia/*/lib`), under
//! `/usr/local/cuda*`, or on the system library paths.
//!
//! A uprobe is placed on a file (an inode), not on a process: a library found on the host
//! is traced in every process that maps that same file, including processes started after
//! the probe. Paths are deduplicated by the file they name, so that a symlink and its
//! target are not traced twice.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use coolbpf_core::{Environment, Error, Result};

/// Which library a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LibraryKind {
    /// The CUDA runtime (`libcudart.so.*`), or an executable that links it statically.
    Cudart,
    /// The CUDA driver API (`libcuda.so.*`, installed with the driver).
    Cuda,
    /// NCCL (`libnccl.so.*`).
    Nccl,
}

impl LibraryKind {
    /// The file name prefix that identifies it.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Cudart => "libcudart.so",
            Self::Cuda => "libcuda.so",
            Self::Nccl => "libnccl.so",
        }
    }

    /// Its name in records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cudart => "libcudart",
            Self::Cuda => "libcuda",
            Self::Nccl => "libnccl",
        }
    }

    /// The kind of a file called `file_name`, if it is one of ours.
    pub fn of_file_name(file_name: &str) -> Option<Self> {
        [Self::Cudart, Self::Cuda, Self::Nccl]
            .into_iter()
            .find(|kind| file_name.starts_with(kind.prefix()))
    }
}

/// One library file to trace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Library {
    /// What it is.
    pub kind: LibraryKind,
    /// Where it is, as a path this process can open.
    pub path: PathBuf,
}

/// The libraries process `pid` has mapped, read from `/proc/PID/maps`; its executable
/// counts as a static CUDA runtime when it defines `cudaLaunchKernel` itself.
pub fn in_process(pid: u32) -> Result<Vec<Library>> {
    Environment::require_process(pid)?;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| Error::io(format!("reading /proc/{pid}/maps"), e))?;
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut found: Vec<Library> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/'))
        .filter_map(|path| {
            let name = Path::new(path).file_name()?.to_str()?;
            let kind = LibraryKind::of_file_name(name)?;
            Some(Library {
                kind,
                path: root.join(path.trim_start_matches('/')),
            })
        })
        .collect();
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    if defines_symbol(&exe, "cudaLaunchKernel") {
        found.push(Library {
            kind: LibraryKind::Cudart,
            path: exe,
        });
    }
    Ok(dedup(found))
}

/// The libraries installed on this host: the system library paths, `/usr/local/cuda*`,
/// and the `nvidia/*/lib` folders of Python's site-packages (pip wheels).
pub fn on_host() -> Vec<Library> {
    let mut dirs: Vec<PathBuf> = [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
        "/usr/lib/wsl/lib",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for cuda in glob_dirs(Path::new("/usr/local"), |n| n.starts_with("cuda")) {
        dirs.push(cuda.join("lib64"));
        dirs.extend(glob_dirs(&cuda.join("targets"), |_| true).map(|t| t.join("lib")));
    }
    for site in site_packages() {
        dirs.extend(glob_dirs(&site.join("nvidia"), |_| true).map(|d| d.join("lib")));
    }
    in_dirs(&dirs)
}

/// The libraries of `kinds` that process `pid` has mapped ([`in_process`]), or, without a
/// pid, those installed on the host ([`on_host`]).
pub fn found(pid: Option<u32>, kinds: &[LibraryKind]) -> Result<Vec<Library>> {
    let all = match pid {
        Some(pid) => in_process(pid)?,
        None => on_host(),
    };
    Ok(all
        .into_iter()
        .filter(|l| kinds.contains(&l.kind))
        .collect())
}

/// A comma-separated list of paths (`--opt lib=...`); empty items are skipped.
pub fn path_list(text: &str) -> Vec<PathBuf> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The libraries directly inside `dirs`.
pub fn in_dirs(dirs: &[PathBuf]) -> Vec<Library> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(kind) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(LibraryKind::of_file_name)
            else {
                continue;
            };
            if is_elf(&path) {
                found.push(Library { kind, path });
            }
        }
    }
    dedup(found)
}

/// `paths` given by the user (`--opt lib=...`): each must be an ELF file; its kind comes
/// from its name, and a file of another name is taken as a program with the CUDA runtime
/// linked in.
pub fn given(paths: &[PathBuf]) -> Result<Vec<Library>> {
    let mut found = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(Error::NotFound {
                what: "library",
                name: path.display().to_string(),
                known: Vec::new(),
            });
        }
        if !is_elf(path) {
            return Err(Error::InvalidArgument(format!(
                "{}: not an ELF file (a library or a program is needed)",
                path.display()
            )));
        }
        let kind = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(LibraryKind::of_file_name)
            .unwrap_or(LibraryKind::Cudart);
        found.push(Library {
            kind,
            path: path.clone(),
        });
    }
    Ok(dedup(found))
}

/// Keeps one path per file (by device and inode), and the first of each.
fn dedup(libraries: Vec<Library>) -> Vec<Library> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = BTreeSet::new();
    libraries
        .into_iter()
        .filter(|lib| match fs::metadata(&lib.path) {
            Ok(meta) => seen.insert((meta.dev(), meta.ino())),
            Err(_) => false,
        })
        .collect()
}

fn glob_dirs(dir: &Path, keep: impl Fn(&str) -> bool) -> impl Iterator<Item = PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
}

/// Python's site-packages and dist-packages folders under the usual prefixes, and those
/// of the virtual environment in `VIRTUAL_ENV`.
fn site_packages() -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = ["/usr/lib", "/usr/local/lib", "/opt/conda/lib"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(PathBuf::from(venv).join("lib"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        prefixes.push(PathBuf::from(home).join(".local/lib"));
    }
    let mut sites = Vec::new();
    for prefix in prefixes {
        for python in glob_dirs(&prefix, |n| n.starts_with("python3")) {
            sites.push(python.join("site-packages"));
            sites.push(python.join("dist-packages"));
        }
    }
    sites
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Whether the ELF file at `path` defines function `symbol` (in `.dynsym` or `.symtab`;
/// a version suffix such as `@@libcudart.so.13` is ignored). A file that cannot be read
/// defines nothing.
pub fn defines_symbol(path: &Path, symbol: &str) -> bool {
    use object::{Object, ObjectSymbol};
    let Ok(elf) = coolbpf_symbolize::elf::ElfFile::open(path) else {
        return false;
    };
    let Ok(file) = elf.object() else {
        return false;
    };
    let defined = |sym: object::Symbol<'_, '_>| {
        sym.is_definition()
            && sym
                .name()
                .is_ok_and(|name| name.split('@').next() == Some(symbol))
    };
    file.dynamic_symbols().any(defined) || file.symbols().any(defined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_file_names() {
        assert_eq!(
            LibraryKind::of_file_name("libcudart.so.13"),
            Some(LibraryKind::Cudart)
        );
        assert_eq!(
            LibraryKind::of_file_name("libcuda.so.1"),
            Some(LibraryKind::Cuda)
        );
        assert_eq!(
            LibraryKind::of_file_name("libnccl.so.2"),
            Some(LibraryKind::Nccl)
        );
        assert_eq!(LibraryKind::of_file_name("libc.so.6"), None);
    }

    #[test]
    fn a_process_without_cuda_has_no_libraries() {
        let found = in_process(std::process::id()).unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn missing_processes_and_files_are_clear_errors() {
        let err = in_process(u32::MAX - 1).unwrap_err();
        assert!(err.to_string().contains("process"), "{err}");
        let err = given(&[PathBuf::from("/nonexistent/libcudart.so.12")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent"), "{err}");
        let err = given(&[PathBuf::from("/etc/hostname")]).unwrap_err();
        assert!(err.to_string().contains("not an ELF"), "{err}");
    }

    #[test]
    fn a_symlink_and_its_target_are_one_library() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("libcudart.so.12.9");
        fs::copy("/proc/self/exe", &real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("libcudart.so.12")).unwrap();
        let found = in_dirs(&[dir.path().to_path_buf()]);
        assert_eq!(found.len(), 1, "{found:?}");
    }
}
