//! Network probes: TCP connections, their states, round trips, retransmits, resets and
//! drops, IPv4 and IPv6, on the `tcp`, `sock` and `skb` tracepoints.
//!
//! | probe | what it shows | hook |
//! |---|---|---|

use crate::registry::ProbeInfo;

/// The network probes' registry entries.
pub const PROBES: &[ProbeInfo] = &[];
