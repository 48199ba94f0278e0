//! The stacks layer: what every probe that takes stacks shares, so that none of them
//! takes, names or reports stacks its own way.
//!
//! - [`symbolizer`]: the symbolizer stacks are named with (a bounded cache, DWARF when
//!   the probe's `debug_info` option says so), behind the one resolver,
//!   [`coolbpf_symbolize::profile::StackResolver`].
//! - [`stack_record`] and [`profile_from_records`]: between symbolized stacks and the data
//!   model's [`StackSample`](coolbpf_core::StackSample) records, both ways;
//!   [`emit_interval`], what a plugin emits for the stacks of one interval.
//! - [`python`]: CPython frames, registered per process with any BPF object that
//!   includes `coolbpf/python.bpf.h`.

pub mod python;
mod records;

pub use records::{profile_from_records, stack_from_record, stack_record};

use coolbpf_core::Record;
use coolbpf_symbolize::profile::{Profile, StackResolver};
use coolbpf_symbolize::Symbolizer;

use crate::options::OptionSpec;

/// Heap bytes a probe's symbolizer may keep in parsed files and DWARF units: enough for
/// the hot binaries of a machine, small next to what it profiles.
pub const SYMBOLIZER_CACHE_BYTES: usize = 32 << 20;

/// The option of every probe that names stacks: DWARF (inlined frames, source lines) or
/// symbol tables only.
pub(crate) const DEBUG_INFO: OptionSpec = OptionSpec {
    name: "debug_info",
    help: "read DWARF for inlined frames and source lines (true or false; false names \
           frames from symbol tables only, far cheaper on large binaries)",
    default: "true",
};

/// The symbolizer of the probes that take stacks: a bounded cache, and DWARF only when
/// `debug_info` is asked for.
pub fn symbolizer(debug_info: bool) -> Symbolizer {
    Symbolizer::builder()
        .cache_bytes(SYMBOLIZER_CACHE_BYTES)
        .dwarf(debug_info)
        .build()
}

/// Names the stacks of one interval's `profile` (user addresses now, while the processes
/// run; kernel addresses from what the resolver keeps) and appends them to `out` as stack
/// records of `probe`, stamped `ts_ns`. User locations are then forgotten: memory stays
/// bounded, and a reused pid is never named after the process that had it before.
pub fn emit_interval(
    resolver: &mut StackResolver,
    probe: &str,
    profile: &Profile,
    ts_ns: u64,
    out: &mut Vec<Record>,
) {
    if profile.is_empty() {
        return;
    }
    resolver.resolve_user(profile);
    resolver.resolve_kernel(profile);
    let stacks = resolver.stacks(profile);
    out.extend(
        stacks
            .iter()
            .map(|stack| Record::Stack(stack_record(probe, stack, ts_ns))),
    );
    resolver.forget_processes();
}
