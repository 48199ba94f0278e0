//! Syscall numbers to names for the architecture coolbpf was built for.

use std::borrow::Cow;

#[cfg(target_arch = "x86_64")]
#[path = "x86_64_names.rs"]
mod table;

#[cfg(not(target_arch = "x86_64"))]
mod table {
    /// No generated table for this architecture yet: numbers are shown as `syscall_N`.
    pub(super) const NAMES: &[&str] = &[];
}

/// The name of syscall `number`, or `syscall_N` when this architecture's table does not
/// know it.
pub fn syscall_name(number: u32) -> Cow<'static, str> {
    match table::NAMES.get(number as usize) {
        Some(name) if !name.is_empty() => Cow::Borrowed(name),
        _ => Cow::Owned(format!("syscall_{number}")),
    }
}

/// The number of syscall `name`, if this architecture's table knows it.
pub fn syscall_number(name: &str) -> Option<u32> {
    table::NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u32)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn matches_libc_numbers() {
        assert_eq!(syscall_name(libc::SYS_getppid as u32), "getppid");
        assert_eq!(syscall_name(libc::SYS_read as u32), "read");
        assert_eq!(syscall_number("openat"), Some(libc::SYS_openat as u32));
        assert_eq!(syscall_name(100_000), "syscall_100000");
    }
}
