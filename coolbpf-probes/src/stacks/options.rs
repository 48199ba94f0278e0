//! The options every probe that takes stacks shares: how user stacks are walked, and
//! how they are named.

use coolbpf_core::{Error, Result};

use crate::options::OptionSpec;

/// The option of every probe that names stacks: DWARF (inlined frames, source lines) or
/// symbol tables only.
pub(crate) const DEBUG_INFO: OptionSpec = OptionSpec {
    name: "debug_info",
    help: "read DWARF for inlined frames and source lines (true or false; false names \
           frames from symbol tables only, far cheaper on large binaries)",
    default: "true",
};

/// How user stacks are walked (`unwind=cfi|fp`).
pub(crate) const UNWIND: OptionSpec = OptionSpec {
    name: "unwind",
    help: "how user stacks are walked: cfi (CFI tables in the kernel, frame pointers where \
           a file has none) or fp (frame pointers only, as perf's default)",
    default: "cfi",
};

/// How user stacks are walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnwindMode {
    /// By CFI tables compiled from each file's `.eh_frame`, in the kernel
    /// (`coolbpf/unwind.bpf.h`), with frame-pointer steps where no table covers the pc.
    #[default]
    Cfi,
    /// By frame pointers only (`bpf_get_stack`): code built without them shows its
    /// innermost frame and then stops or goes astray.
    FramePointers,
}

impl std::str::FromStr for UnwindMode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "cfi" => Ok(Self::Cfi),
            "fp" => Ok(Self::FramePointers),
            other => Err(Error::InvalidArgument(format!(
                "option unwind={other}: {}",
                UNWIND.help
            ))),
        }
    }
}
