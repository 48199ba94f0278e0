//! A USDT probe point of this process, to detect USDT support end to end.
//!
//! A USDT probe is a `nop` in the code plus an ELF note (`.note.stapsdt`) that gives its
//! address, provider, name and where its arguments live, in the format of SystemTap's
//! `sys/sdt.h`. libbpf reads the note and hangs a uprobe on the `nop`.

use std::path::PathBuf;

/// The provider of the probe point below.
pub(super) const PROVIDER: &str = "coolbpf";
/// The name of the probe point below.
pub(super) const NAME: &str = "feature_probe";
/// What the probe passes as its one argument; the BPF side must read exactly this back.
pub(super) const ARGUMENT: u64 = 0xc001_bf00_0000_0042;

/// How `sys/sdt.h` spells a register in an argument spec: `%rax` on x86-64 (what the
/// assembler's AT&T syntax takes), `x0` on arm64.
#[cfg(target_arch = "x86_64")]
macro_rules! register_prefix {
    () => {
        "%"
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! register_prefix {
    () => {
        ""
    };
}

/// Emits a `sys/sdt.h` (version 3) probe point `$provider:$name` with one 8-byte argument
/// held in a register. The note has no semaphore and no `.stapsdt.base` section, which
/// libbpf only uses to undo prelinking.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! stapsdt_probe {
    ($provider:literal, $name:literal, $argument:expr) => {
        // SAFETY: the code part is a single `nop`; the rest only emits data into a
        // separate non-allocated note section, so no register, memory or flag changes.
        unsafe {
            std::arch::asm!(
                "990: nop",
                ".pushsection .note.stapsdt, \"\", \"note\"",
                ".balign 4",
                // namesz, descsz, type 3 (NT_STAPSDT)
                ".4byte 992f-991f, 994f-993f, 3",
                "991: .asciz \"stapsdt\"",
                "992: .balign 4",
                // the probe's address, the .stapsdt.base address (none) and the semaphore (none)
                "993: .8byte 990b",
                ".8byte 0",
                ".8byte 0",
                concat!(".asciz \"", $provider, "\""),
                concat!(".asciz \"", $name, "\""),
                // size@location: an 8-byte value in the register the compiler chose
                concat!(".asciz \"8@", register_prefix!(), "{argument}\""),
                "994: .balign 4",
                ".popsection",
                argument = in(reg) $argument,
                options(nomem, nostack, preserves_flags),
            );
        }
    };
}

/// Passes the probe point (on other architectures nothing is emitted and the USDT probe
/// reports that it cannot run).
#[inline(never)]
pub(super) fn fire() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    // The literals are PROVIDER and NAME: the assembler takes no constants.
    stapsdt_probe!("coolbpf", "feature_probe", std::hint::black_box(ARGUMENT));
}

/// The file holding the probe point; an error on architectures without an emitter.
pub(super) fn location() -> Result<PathBuf, String> {
    if cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))) {
        return Err(format!("no USDT emitter for {}", std::env::consts::ARCH));
    }
    super::uprobe::locate(fire as *const () as usize).map(|(path, _)| path)
}
