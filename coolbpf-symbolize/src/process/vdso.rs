//! The vdso: an ELF image the kernel maps into each process and that exists in no file.
//! Its bytes are copied out of the process's memory into a temporary file, so the same
//! ELF path serves it as serves any other object.
//!
//! Every 64-bit process of one kernel has the same vdso, and symbolizing it is frequent
//! (`clock_gettime` is on many hot stacks), so one file per distinct image is kept for
//! the life of this process: the symbolizer, whose cache is keyed by inode, then parses
//! it once instead of holding a new copy after every call. The file is unlinked as soon
//! as it is written and reached through `/proc/self/fd/N`, so nothing is left behind.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::process::maps::MapsEntry;

/// A vdso is two to four pages; anything much larger is not one, and reading it would
/// only waste memory.
const MAX_VDSO_SIZE: u64 = 1 << 20;

/// Distinct images kept: one per ABI (64-bit, x32, 32-bit) and some slack.
const MAX_IMAGES: usize = 8;

/// The images seen so far, each with its unlinked file.
static IMAGES: Mutex<Vec<(Vec<u8>, Arc<File>)>> = Mutex::new(Vec::new());

/// A vdso image in a file. The path names the file only while this is alive: it is a
/// descriptor's path, and the number could be reused once the descriptor is closed.
#[derive(Debug)]
pub(crate) struct VdsoFile {
    /// Held so that the descriptor, and so the path, stays valid.
    _file: Arc<File>,
    path: PathBuf,
}

impl VdsoFile {
    fn new(file: Arc<File>) -> Self {
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Self { _file: file, path }
    }

    /// The path to open it by.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A new file no one else can have opened (a fresh name, `O_EXCL`, mode 0600), already
/// unlinked.
fn create_unlinked() -> std::io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("coolbpf-vdso-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            // A name left behind by a crashed process with our pid: take the next one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// A file holding `image`, reusing the one made for an identical image.
fn file_for(image: Vec<u8>) -> std::io::Result<VdsoFile> {
    let mut images = IMAGES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, file)) = images.iter().find(|(known, _)| *known == image) {
        return Ok(VdsoFile::new(Arc::clone(file)));
    }
    let mut file = create_unlinked()?;
    file.write_all(&image)?;
    let file = Arc::new(file);
    if images.len() >= MAX_IMAGES {
        // Only our reference goes: a caller still using the file keeps its own.
        images.remove(0);
    }
    images.push((image, Arc::clone(&file)));
    Ok(VdsoFile::new(file))
}

/// Copies the vdso of process `pid` (its `[vdso]` mapping, `entry`) into a file; the
/// error is the reason, for [`Unknown::Unreadable`](crate::Unknown).
pub(crate) fn dump(pid: u32, entry: &MapsEntry) -> Result<VdsoFile, String> {
    let size = entry.end - entry.start;
    if size == 0 || size > MAX_VDSO_SIZE {
        return Err(format!(
            "[vdso] mapping of {size} bytes is not a vdso image"
        ));
    }
    let mem_path = format!("/proc/{pid}/mem");
    let mem = File::open(&mem_path).map_err(|e| format!("{mem_path}: {e}"))?;
    let mut image = vec![0; size as usize];
    mem.read_exact_at(&mut image, entry.start)
        .map_err(|e| format!("{mem_path} at {:#x}: {e}", entry.start))?;
    file_for(image).map_err(|e| format!("temporary file for the vdso: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_share_one_file_and_leave_nothing_behind() {
        let image = b"\x7fELF not really, but bytes".to_vec();
        let first = file_for(image.clone()).unwrap();
        let second = file_for(image.clone()).unwrap();
        assert_eq!(first.path(), second.path(), "one descriptor");
        assert_eq!(std::fs::read(first.path()).unwrap(), image);
        let other = file_for(b"another image".to_vec()).unwrap();
        assert_ne!(first.path(), other.path());
        assert_eq!(std::fs::read(other.path()).unwrap(), b"another image");
        let leftovers = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&format!("coolbpf-vdso-{}-", std::process::id()))
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
