//! The syscall layer: thin wrappers that keep libc out of the logic above them,
//! with parsers that take text so they can be unit-tested.
pub mod bpf_ids;
pub mod caps;
pub mod mount;
pub mod perf_event;
pub mod poll;
pub mod prog_info;
pub mod rlimit;
