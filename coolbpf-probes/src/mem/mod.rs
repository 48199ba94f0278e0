//! Memory probes: page faults, direct reclaim, OOM kills and outstanding allocations.
//!
//! | probe | what it shows | hook |
//! |---|---|---|

use crate::registry::ProbeInfo;

/// The memory probes' registry entries.
pub const PROBES: &[ProbeInfo] = &[];
