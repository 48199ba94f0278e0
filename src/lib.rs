#![doc = include_str!("../README.md")]

pub use coolbpf_core::*;
pub use coolbpf_gpu as gpu;
pub use coolbpf_gpu::CATALOGUE;
pub use coolbpf_probes as probes;
