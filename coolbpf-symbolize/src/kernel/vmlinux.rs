//! A vmlinux image with DWARF, for lines and inline chains of kernel addresses. The
//! running kernel sits at its link address plus a random KASLR slide; kallsyms, which
//! lists runtime addresses, tells the slide from one symbol both know.

use std::path::Path;

use object::{Object, ObjectSymbol};

use crate::elf::{build_id_hex, ElfFile};
use crate::error::{Error, Result};
use crate::frame::Symbolized;
use crate::kernel::kallsyms::Kallsyms;
use crate::symbolizer::Symbolizer;

/// Symbols at the start of kernel text in every x86_64 and arm64 kernel.
const ANCHORS: [&str; 2] = ["_text", "_stext"];

/// ELF note type of a GNU build id.
const NT_GNU_BUILD_ID: u32 = 3;

/// The KASLR slide: runtime address minus link address of an anchor symbol.
fn slide(kallsyms: &Kallsyms, vmlinux: &ElfFile) -> Result<u64> {
    let object = vmlinux.object()?;
    for anchor in ANCHORS {
        let linked = object
            .symbols()
            .find(|s| s.name() == Ok(anchor))
            .map(|s| s.address());
        if let (Some(runtime), Some(linked)) = (kallsyms.address_of(anchor), linked) {
            return Ok(runtime.wrapping_sub(linked));
        }
    }
    Err(Error::malformed(
        vmlinux.path(),
        "neither it nor kallsyms has `_text` or `_stext`, so the KASLR offset is unknown",
    ))
}

/// The build id of the running kernel, from the ELF notes it exports.
fn running_build_id() -> Option<Vec<u8>> {
    gnu_build_id(&std::fs::read("/sys/kernel/notes").ok()?)
}

/// The GNU build id in a sequence of ELF notes (native endian: the kernel's own).
fn gnu_build_id(notes: &[u8]) -> Option<Vec<u8>> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(notes.get(at..at + 4)?.try_into().ok()?))
    };
    let padded = |n: u32| (n as usize).checked_add(3).map(|n| n & !3);
    let mut at = 0;
    while at + 12 <= notes.len() {
        let (namesz, descsz, kind) = (word(at)?, word(at + 4)?, word(at + 8)?);
        let name_at = at + 12;
        let desc_at = name_at.checked_add(padded(namesz)?)?;
        let name = notes.get(name_at..name_at.checked_add(namesz as usize)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return notes
                .get(desc_at..desc_at.checked_add(descsz as usize)?)
                .map(<[u8]>::to_vec);
        }
        at = desc_at.checked_add(padded(descsz)?)?;
    }
    None
}

/// Replaces the kallsyms frames of core-kernel addresses with what `path`'s DWARF says,
/// where it says anything. `check_running`: the addresses come from this machine's kernel,
/// so a vmlinux of another build is refused rather than trusted to give wrong lines.
pub(crate) fn refine(
    symbolizer: &Symbolizer,
    kallsyms: &Kallsyms,
    path: &Path,
    check_running: bool,
    addrs: &[(usize, u64)],
    results: &mut [Symbolized],
) -> Result<()> {
    let vmlinux = ElfFile::open(path)?;
    if check_running {
        if let (Some(running), Some(file)) = (running_build_id(), vmlinux.build_id()) {
            if running != file {
                return Err(Error::InvalidArgument(format!(
                    "{}: build id {} is not the running kernel's ({})",
                    path.display(),
                    build_id_hex(file),
                    build_id_hex(&running)
                )));
            }
        }
    }
    let slide = slide(kallsyms, &vmlinux)?;
    let vaddrs: Vec<u64> = addrs
        .iter()
        .map(|&(_, addr)| addr.wrapping_sub(slide))
        .collect();
    let refined = symbolizer.symbolize_elf(path, &vaddrs)?;
    for (&(index, _), better) in addrs.iter().zip(refined) {
        if !better.frames().is_empty() {
            if let Some(slot) = results.get_mut(index) {
                *slot = better;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [name.len() as u32, desc.len() as u32, kind] {
            out.extend_from_slice(&word.to_ne_bytes());
        }
        for part in [name, desc] {
            out.extend_from_slice(part);
            out.resize(out.len().next_multiple_of(4), 0);
        }
        out
    }

    #[test]
    fn finds_the_gnu_build_id_among_other_notes() {
        let mut notes = note(b"Linux\0", 6, b"6.1.102");
        notes.extend(note(b"GNU\0", NT_GNU_BUILD_ID, &[0xab; 20]));
        assert_eq!(gnu_build_id(&notes), Some(vec![0xab; 20]));
    }

    #[test]
    fn truncated_or_hostile_notes_give_none() {
        let notes = note(b"GNU\0", NT_GNU_BUILD_ID, &[1; 20]);
        for cut in 0..notes.len() {
            assert_eq!(gnu_build_id(&notes[..cut]), None, "cut at {cut}");
        }
        let mut huge = Vec::new();
        for word in [u32::MAX, u32::MAX, NT_GNU_BUILD_ID] {
            huge.extend_from_slice(&word.to_ne_bytes());
        }
        assert_eq!(gnu_build_id(&huge), None);
    }
}
