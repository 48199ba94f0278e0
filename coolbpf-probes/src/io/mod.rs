//! Block IO probes, on the `block` tracepoints.
//!
//! | probe | what it shows | hook |
//! |---|---|---|

use crate::registry::ProbeInfo;

/// The IO probes' registry entries.
pub const PROBES: &[ProbeInfo] = &[];
