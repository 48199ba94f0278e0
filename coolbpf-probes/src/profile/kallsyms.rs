//! The part of `/proc/kallsyms` that decides a set of kernel addresses.
//!
//! The kernel lists about 120,000 symbols; parsing them all into a symbol table takes
//! about 15 MB, more than the rest of a profiler. A kallsyms symbolizer names an address
//! after the nearest symbol at or below it, and ends that symbol where the next one
//! starts. So the lines at those two addresses (every alias included) decide the result,
//! and a file of just those lines gives the same names as the whole list. This module
//! writes that subset into a memory file, which the symbolizer then reads as its
//! kallsyms: one read of the kernel's list, and memory proportional to the addresses
//! asked about.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

/// A memory file holding the kallsyms lines that decide some addresses.
#[derive(Debug)]
pub(crate) struct KallsymsSubset {
    file: File,
}

impl KallsymsSubset {
    /// Reads `source` (kallsyms format) once and keeps the lines that decide `addrs`. A
    /// list whose addresses are all hidden (zero) is an error: the caller reads the
    /// original instead, whose refusal explains itself.
    pub(crate) fn new(source: &Path, addrs: &[u64]) -> io::Result<Self> {
        let mut text = Vec::new();
        File::open(source)?.read_to_end(&mut text)?;
        let lines = || text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        let mut known: Vec<u64> = lines().filter_map(address).collect();
        known.sort_unstable();
        known.dedup();
        if known.iter().all(|&a| a == 0) {
            // Hidden addresses (kptr_restrict): the symbolizer's own error for the real
            // file says why and what to do, so leave it to that.
            return Err(io::Error::other("kallsyms addresses are hidden"));
        }
        let mut keep = Vec::with_capacity(addrs.len() * 2);
        for &addr in addrs {
            // The nearest symbol at or below, and the one that ends it.
            let above = known.partition_point(|&k| k <= addr);
            keep.extend(above.checked_sub(1).map(|i| known[i]));
            keep.extend(known.get(above).copied());
        }
        keep.sort_unstable();
        keep.dedup();
        let mut file = memfd("coolbpf-kallsyms")?;
        for line in lines() {
            if address(line).is_some_and(|a| keep.binary_search(&a).is_ok()) {
                file.write_all(line)?;
                file.write_all(b"\n")?;
            }
        }
        Ok(Self { file })
    }

    /// A path the symbolizer can open to read the subset.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// The address at the start of a kallsyms line.
fn address(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let hex = std::str::from_utf8(line.get(..end)?).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

fn memfd(name: &str) -> io::Result<File> {
    let name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: name is NUL-terminated and outlives the call; flags are plain integers.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81000000 T startup_64
ffffffff81000100 t helper
ffffffff81000200 T schedule
ffffffff81000300 D some_data
ffffffffc0000000 t mod_fn\t[loop]
ffffffffc0000100 t mod_other\t[loop]
";

    fn subset(addrs: &[u64]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("kallsyms");
        std::fs::write(&source, KALLSYMS).unwrap();
        let subset = KallsymsSubset::new(&source, addrs).unwrap();
        std::fs::read_to_string(subset.path()).unwrap()
    }

    #[test]
    fn keeps_the_symbol_below_and_the_one_after() {
        assert_eq!(
            subset(&[0xffff_ffff_8100_0010]),
            "ffffffff81000000 T _stext\nffffffff81000000 T startup_64\nffffffff81000100 t helper\n"
        );
        assert_eq!(
            subset(&[0xffff_ffff_8100_0250, 0xffff_ffff_c000_0004]),
            "ffffffff81000200 T schedule\nffffffff81000300 D some_data\n\
             ffffffffc0000000 t mod_fn\t[loop]\nffffffffc0000100 t mod_other\t[loop]\n"
        );
        assert_eq!(
            subset(&[0x10]),
            "ffffffff81000000 T _stext\nffffffff81000000 T startup_64\n"
        );
        assert_eq!(subset(&[]), "");
    }

    #[test]
    fn names_match_the_whole_list() {
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
            return;
        };
        let addrs: Vec<u64> = text
            .lines()
            .filter(|l| l.contains(" T ") || l.contains(" t "))
            .step_by(997)
            .filter_map(|l| address(l.as_bytes()))
            .filter(|&a| a != 0)
            .map(|a| a + 3)
            .collect();
        if addrs.is_empty() {
            return; // addresses hidden (kptr_restrict): nothing to compare
        }
        let symbolizer = coolbpf_symbolize::Symbolizer::new();
        let whole = symbolizer
            .symbolize(&coolbpf_symbolize::Source::kernel(), &addrs)
            .unwrap();
        let subset = KallsymsSubset::new(Path::new("/proc/kallsyms"), &addrs).unwrap();
        let source = coolbpf_symbolize::Source::Kernel(coolbpf_symbolize::Kernel {
            kallsyms: Some(subset.path()),
            vmlinux: None,
        });
        let part = symbolizer.symbolize(&source, &addrs).unwrap();
        assert_eq!(whole, part);
    }
}
