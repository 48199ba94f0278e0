//! The kernel as a source: `/proc/kallsyms` for function + offset (modules and BPF
//! programs included), and a vmlinux with DWARF, when given, for lines and inlines.

mod kallsyms;
mod subset;
mod vmlinux;

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::frame::Symbolized;
use crate::normalize::distinct::Distinct;
use crate::source::Kernel;
use crate::symbolizer::Symbolizer;

use kallsyms::Kallsyms;

/// Where the running kernel lists its symbols.
const PROC_KALLSYMS: &str = "/proc/kallsyms";

/// Symbolizes kernel addresses (see [`Source::Kernel`](crate::Source::Kernel)).
pub(crate) fn symbolize(
    symbolizer: &Symbolizer,
    kernel: &Kernel,
    addrs: &[u64],
) -> Result<Vec<Symbolized>> {
    if addrs.is_empty() {
        return Ok(Vec::new());
    }
    let path = kernel
        .kallsyms
        .clone()
        .unwrap_or_else(|| PathBuf::from(PROC_KALLSYMS));
    // Without a vmlinux to refine against, only the lines that decide these addresses
    // are parsed (a vmlinux check needs the whole list).
    let only = kernel.vmlinux.is_none().then_some(addrs);
    let kallsyms = read(&path, only)?;
    let distinct = Distinct::new(addrs);
    let mut results = Vec::with_capacity(distinct.addrs().len());
    let mut core = Vec::new();
    for (index, &addr) in distinct.addrs().iter().enumerate() {
        let (found, in_core) = kallsyms.symbolize(addr);
        results.push(found);
        if in_core {
            core.push((index, addr));
        }
    }
    if let (Some(vmlinux), false) = (&kernel.vmlinux, core.is_empty()) {
        // Only this machine's kallsyms describes the running kernel; a kallsyms file from
        // elsewhere goes with whatever vmlinux its owner names.
        let check_running = kernel.kallsyms.is_none();
        vmlinux::refine(
            symbolizer,
            &kallsyms,
            vmlinux,
            check_running,
            &core,
            &mut results,
        )?;
    }
    Ok(distinct.spread(addrs, &results))
}

/// Reads and parses a kallsyms file (only the lines that decide `only`, when given),
/// refusing one whose addresses the kernel hid.
fn read(path: &Path, only: Option<&[u64]>) -> Result<Kallsyms> {
    // Streamed when only some addresses are asked about: the whole list (5 MB here) is
    // never held, only the deciding lines.
    let kallsyms = if let Some(addrs) = only {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let lines = subset::deciding_lines(io::BufReader::new(file), addrs)
            .map_err(|e| Error::io(path, e))?;
        Kallsyms::parse(&lines)
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Kallsyms::parse(&String::from_utf8_lossy(&bytes))
    };
    if kallsyms.is_restricted() {
        let why = "every address reads as 0: the kernel hides them (kernel.kptr_restrict); \
                   run as root (CAP_SYSLOG) with kptr_restrict at most 1, or \
                   `sysctl kernel.kptr_restrict=0`";
        return Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::PermissionDenied, why),
        ));
    }
    if kallsyms.is_empty() {
        return Err(Error::malformed(
            path,
            "no symbols in kallsyms format (ADDRESS TYPE NAME)",
        ));
    }
    Ok(kallsyms)
}
