//! What the kernel knows about one loaded program (`BPF_OBJ_GET_INFO_BY_FD`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use libbpf_rs::libbpf_sys as sys;

/// How many runs of program `fd` the kernel skipped and counted (`recursion_misses`).
///
/// The kernel counts a raw_tp or tp_btf program whose hook fires again inside it on the
/// same CPU, and trampoline programs that would recurse; it does not count the classic
/// tracepoint and perf-event runs it skips. Kernels before 5.12 count nothing and
/// report 0.
pub fn recursion_misses(fd: BorrowedFd<'_>) -> io::Result<u64> {
    info(fd).map(|info| info.recursion_misses)
}

/// Program `fd`'s accumulated run time in ns and its run count, as the kernel accounts
/// them while `kernel.bpf_stats_enabled` is 1 (both stay 0 otherwise).
pub fn run_time(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    info(fd).map(|info| (info.run_time_ns, info.run_cnt))
}

fn info(fd: BorrowedFd<'_>) -> io::Result<sys::bpf_prog_info> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = u32::try_from(size_of::<sys::bpf_prog_info>())
        .expect("bpf_prog_info is a few hundred bytes");
    // SAFETY: `info` is a writable bpf_prog_info and `len` says how many bytes of it the
    // kernel may fill; both live for the whole call. All pointer fields of `info` are
    // zero, so the kernel copies no arrays out.
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &raw mut info, &raw mut len) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(info)
}
