//! Compiling a file's CFI sections into spans: every row of every FDE, `.eh_frame` first,
//! `.debug_frame` where `.eh_frame` does not reach, PLT sections where neither does.

use gimli::{
    BaseAddresses, CieOrFde, DebugFrame, EhFrame, EndianSlice, LittleEndian, UnwindContext,
    UnwindSection,
};
use object::{Architecture, Object, ObjectSection};

use super::error::UnwindError;
use super::plt::uncovered_section_rule;
use super::row::{CfaRule, RbpRule};
use super::rules::convert;
use super::spans::{Coverage, Span};
use super::CompileStats;

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// FDEs whose rows are not evaluated beyond this many (a hostile FDE can advance the
/// location one byte at a time over gigabytes; real ones have a few dozen rows).
const MAX_ROWS_PER_FDE: usize = 1 << 16;

/// The spans of every CFI source in `object`, and what was counted on the way.
pub(crate) fn compile(
    object: &object::File<'_>,
    what: &str,
) -> Result<(Coverage, CompileStats), UnwindError> {
    if object.architecture() != Architecture::X86_64 {
        return Err(UnwindError::UnsupportedArchitecture {
            what: what.to_owned(),
            architecture: format!("{:?}", object.architecture()),
        });
    }
    let mut coverage = Coverage::default();
    let mut stats = CompileStats::default();
    let address = |name: &str| object.section_by_name(name).map(|s| s.address());
    if let Some(section) = object.section_by_name(".eh_frame") {
        let data = section_bytes(&section, what, ".eh_frame")?;
        let mut bases = BaseAddresses::default().set_eh_frame(section.address());
        if let Some(text) = address(".text") {
            bases = bases.set_text(text);
        }
        if let Some(got) = address(".got") {
            bases = bases.set_got(got);
        }
        let eh_frame = EhFrame::new(data, LittleEndian);
        add_section(
            &eh_frame,
            &bases,
            (what, ".eh_frame"),
            &mut coverage,
            &mut stats,
        )?;
    }
    if let Some(section) = object.section_by_name(".debug_frame") {
        let data = section_bytes(&section, what, ".debug_frame")?;
        let mut debug_frame = DebugFrame::new(data, LittleEndian);
        debug_frame.set_address_size(8);
        add_section(
            &debug_frame,
            &BaseAddresses::default(),
            (what, ".debug_frame"),
            &mut coverage,
            &mut stats,
        )?;
    }
    for section in object.sections() {
        let Some(cfa) = section.name().ok().and_then(uncovered_section_rule) else {
            continue;
        };
        let (start, size) = (section.address(), section.size());
        // What FDEs already cover is not "overlap" here: the section is only a fallback.
        let covered = coverage.fill_gaps(Span {
            start,
            end: start.saturating_add(size),
            cfa,
            rbp: RbpRule::Unchanged,
        });
        if covered < size {
            stats.plt_sections_without_fde += 1;
        }
    }
    Ok((coverage, stats))
}

/// A section's bytes (decompressed when the section is compressed).
fn section_bytes<'a>(
    section: &object::Section<'a, '_>,
    what: &str,
    name: &'static str,
) -> Result<&'a [u8], UnwindError> {
    let data = section.data().map_err(|e| UnwindError::Section {
        what: what.to_owned(),
        section: name,
        reason: e.to_string(),
    })?;
    Ok(data)
}

/// Adds every FDE's rows of one section; an FDE that does not parse or evaluate is
/// skipped and counted, a broken entry structure is an error.
fn add_section<'a, S>(
    section: &S,
    bases: &BaseAddresses,
    (what, name): (&str, &'static str),
    coverage: &mut Coverage,
    stats: &mut CompileStats,
) -> Result<(), UnwindError>
where
    S: UnwindSection<Slice<'a>>,
    S::Offset: gimli::UnwindOffset<usize>,
{
    let mut entries = section.entries(bases);
    let mut context = Box::new(UnwindContext::new());
    let mut spans = Vec::new();
    loop {
        let entry = entries.next().map_err(|e| UnwindError::Section {
            what: what.to_owned(),
            section: name,
            reason: e.to_string(),
        })?;
        let Some(CieOrFde::Fde(partial)) = entry else {
            if entry.is_none() {
                break;
            }
            continue;
        };
        let Ok(fde) = partial.parse(S::cie_from_offset) else {
            stats.skipped_fdes += 1;
            continue;
        };
        stats.fdes += 1;
        spans.clear();
        match fde_spans(section, bases, &mut context, &fde, &mut spans) {
            Ok(()) => {
                for span in spans.drain(..) {
                    if span.cfa == CfaRule::Unsupported || span.rbp == RbpRule::Unsupported {
                        stats.unsupported_rows += 1;
                    }
                    coverage.fill(span);
                }
            }
            Err(()) => stats.skipped_fdes += 1,
        }
    }
    Ok(())
}

/// The rows of one FDE as spans, or `Err` when its instructions do not evaluate.
fn fde_spans<'a, S>(
    section: &S,
    bases: &BaseAddresses,
    context: &mut UnwindContext<usize>,
    fde: &gimli::FrameDescriptionEntry<Slice<'a>>,
    out: &mut Vec<Span>,
) -> Result<(), ()>
where
    S: UnwindSection<Slice<'a>>,
{
    let mut table = fde.rows(section, bases, context).map_err(drop)?;
    while let Some(row) = table.next_row().map_err(drop)? {
        if out.len() >= MAX_ROWS_PER_FDE {
            return Err(());
        }
        let (cfa, rbp) = convert(row, section);
        out.push(Span {
            start: row.start_address(),
            end: row.end_address(),
            cfa,
            rbp,
        });
    }
    Ok(())
}
