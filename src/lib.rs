//! coolbpf: embeddable eBPF observability.
//!
//! This facade re-exports [`coolbpf_core`] (loading, attaching, streaming, aggregation,
//! the plugin runtime) and [`coolbpf_probes`] (the probe catalogue). Depend on this crate.

pub use coolbpf_core::*;
pub use coolbpf_probes as probes;
