//! File offsets to frames: the step that a process address and a normalized address
//! share once each has been reduced to (file, offset).

use object::{Object, ObjectSection};

use crate::elf::ElfFile;
use crate::frame::{Symbolized, Unknown};
use crate::symbolizer::Symbolizer;

/// Symbolizes `offsets` into `elf`: each becomes the link-time virtual address its
/// segment gives it, and those go through [`Symbolizer::symbolize_elf`] in one call.
/// Never fails as a whole: what cannot be resolved comes back as [`Symbolized::Unknown`].
pub(crate) fn symbolize_offsets(
    symbolizer: &Symbolizer,
    elf: &ElfFile,
    offsets: &[u64],
) -> Vec<Symbolized> {
    if is_separate_debug_file(elf) {
        let why = format!(
            "{} is a separate debug file: its program headers do not say where file \
             offsets lie; the binary itself is needed",
            elf.path().display()
        );
        return vec![Symbolized::Unknown(Unknown::Unreadable(why)); offsets.len()];
    }
    let vaddrs: Vec<Option<u64>> = offsets
        .iter()
        .map(|&o| elf.file_offset_to_vaddr(o))
        .collect();
    let known: Vec<u64> = vaddrs.iter().flatten().copied().collect();
    let resolved = if known.is_empty() {
        Vec::new()
    } else {
        match symbolizer.symbolize_elf(elf.path(), &known) {
            Ok(resolved) if resolved.len() == known.len() => resolved,
            Ok(resolved) => {
                let why = format!("{} results for {} addresses", resolved.len(), known.len());
                vec![Symbolized::Unknown(Unknown::Unreadable(why)); known.len()]
            }
            // One unreadable file spoils its own addresses, not the whole batch.
            Err(e) => vec![Symbolized::Unknown(Unknown::Unreadable(e.to_string())); known.len()],
        }
    };
    let mut resolved = resolved.into_iter();
    vaddrs
        .iter()
        .map(|vaddr| match vaddr {
            Some(_) => resolved
                .next()
                .unwrap_or(Symbolized::Unknown(Unknown::NoSymbol)),
            // Mapped, but outside every segment with file bytes (a section header table,
            // padding between segments).
            None => Symbolized::Unknown(Unknown::Unmapped),
        })
        .collect()
}

/// Whether `elf` is a separate debug file (`objcopy --only-keep-debug`, a distribution's
/// `.debug` file): its code sections keep their addresses but no bytes, and its program
/// headers no longer give the original file offsets, so it cannot place an offset into
/// the binary; only the binary can.
fn is_separate_debug_file(elf: &ElfFile) -> bool {
    let segments = elf.segments();
    let no_code = elf.object().is_ok_and(|object| {
        object
            .section_by_name(".text")
            .is_some_and(|text| text.file_range().is_none())
    });
    no_code || (!segments.is_empty() && segments.iter().all(|s| s.file_size == 0))
}
