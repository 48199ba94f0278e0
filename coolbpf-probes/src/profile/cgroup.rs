//! cgroup v2 directories to the ids `bpf_get_current_cgroup_id()` compares against.
//!
//! A cgroup v2 id is its kernfs node id. The kernel hands it out as the directory's file
//! handle (`name_to_handle_at`, 8 bytes: what systemd and bpftool use), and on 64-bit
//! kernels it is also the directory's inode number. The handle is asked for first; the
//! inode is the fallback where file handles are refused.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use coolbpf_core::{Error, Result};

/// The id of the cgroup v2 directory at `path` (e.g. `/sys/fs/cgroup/system.slice`, or
/// `/sys/fs/cgroup/unified/...` where v1 and v2 are mounted side by side).
pub fn cgroup_id(path: &Path) -> Result<u64> {
    let metadata =
        std::fs::metadata(path).map_err(|e| Error::io(format!("cgroup {}", path.display()), e))?;
    if !metadata.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "cgroup {}: not a directory",
            path.display()
        )));
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        Error::InvalidArgument(format!("cgroup {}: path contains NUL", path.display()))
    })?;
    if !is_cgroup2(&c_path) {
        return Err(Error::InvalidArgument(format!(
            "cgroup {}: not on a cgroup v2 file system (BPF sees v2 ids only; on hybrid \
             systems v2 is mounted at /sys/fs/cgroup/unified)",
            path.display()
        )));
    }
    Ok(handle_id(&c_path).unwrap_or_else(|| metadata.ino()))
}

fn is_cgroup2(path: &CString) -> bool {
    // SAFETY: statfs is plain old data; all-zero is a valid value for it.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and outlives the call; stats is a live, writable
    // statfs the kernel fills in.
    let ret = unsafe { libc::statfs(path.as_ptr(), &raw mut stats) };
    ret == 0 && stats.f_type == libc::CGROUP2_SUPER_MAGIC
}

/// `struct file_handle` with room for the 8-byte kernfs id.
#[repr(C)]
struct KernfsHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    id: [u8; 8],
}

/// The 8-byte file handle of a kernfs directory, as a u64.
fn handle_id(path: &CString) -> Option<u64> {
    let mut handle = KernfsHandle {
        handle_bytes: 8,
        handle_type: 0,
        id: [0; 8],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: KernfsHandle starts with file_handle's two header fields (same repr(C)
    // layout) followed by `handle_bytes` (8) bytes of room, which is all the kernel writes;
    // path is NUL-terminated; mount_id is a live int.
    let ret = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            path.as_ptr(),
            (&raw mut handle).cast::<libc::file_handle>(),
            &raw mut mount_id,
            0,
        )
    };
    (ret == 0 && handle.handle_bytes == 8).then(|| u64::from_ne_bytes(handle.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_cgroup_paths_are_clear_errors() {
        let err = cgroup_id(Path::new("/nonexistent/cgroup")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cgroup"), "{err}");
        let err = cgroup_id(Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("cgroup v2"), "{err}");
        let err = cgroup_id(Path::new("/proc/self/status")).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn v2_ids_are_inode_numbers_on_64_bit() {
        for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
            let path = Path::new(root);
            if let Ok(id) = cgroup_id(path) {
                assert_eq!(id, std::fs::metadata(path).unwrap().ino(), "{root}");
                return;
            }
        }
        eprintln!("skipping: no cgroup v2 mount found");
    }
}
