#![doc = include_str!("../README.md")]

pub use coolbpf_core::*;
pub use coolbpf_probes as probes;
