//! Enumerates the kernel's BPF objects by id, system wide: how leak tests and the
//! `features` report see what is loaded, independently of libbpf's bookkeeping.

use libbpf_rs::libbpf_sys as sys;

/// Which kind of BPF object to enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpfObjectKind {
    /// Loaded programs.
    Program,
    /// Created maps.
    Map,
    /// Links (attachments).
    Link,
}

/// All ids of `kind` currently alive in the kernel, ascending.
pub fn ids(kind: BpfObjectKind) -> Vec<u32> {
    let next = match kind {
        BpfObjectKind::Program => sys::bpf_prog_get_next_id,
        BpfObjectKind::Map => sys::bpf_map_get_next_id,
        BpfObjectKind::Link => sys::bpf_link_get_next_id,
    };
    let mut ids = Vec::new();
    let mut current = 0u32;
    loop {
        let mut following = 0u32;
        // SAFETY: `following` is a valid, writable u32 for the duration of the call;
        // the function only writes the next id into it.
        let ret = unsafe { next(current, &raw mut following) };
        if ret != 0 {
            // ENOENT marks the end; anything else (EPERM) also ends what we can see.
            return ids;
        }
        ids.push(following);
        current = following;
    }
}

/// Number of open file descriptors of this process.
pub fn open_fd_count() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}
