//! coolbpf-gpu: the GPU side of coolbpf, seen from outside the process.
//!
//! Everything here works without CUPTI and without touching the traced program: uprobes on
//! the CUDA and NCCL libraries it already loads, kernel tracepoints for the driver's log,
//! and NVML (loaded at run time) for the device's own counters. Every probe is a registry
//! entry in [`CATALOGUE`], which also holds the CPU-side probes of `coolbpf-probes`; the
//! `coolbpf` command, the Python module and the C API all offer that catalogue.
//!
//! | probe | what it shows | hook |
//! |---|---|---|
//! | [`cuda`] | CUDA calls: launches per kernel name with the CPU stacks that launch them, device memory, copies, sync waits, errors | `uprobe:libcudart`, `uprobe:libcuda` |
//! | [`nccl`] | NCCL collectives per communicator and rank; the rank stuck behind the others | `uprobe:libnccl` |
//! | [`hang`] (`gpuhang`) | calls entered and not returned past a threshold, events polled not ready | the `cuda` uprobes |
//! | [`driver`] (`gpudriver`) | ioctls on `/dev/nvidia*` in flight past a threshold, device users' threads stuck in D state, the kernel's hung tasks; each with its kernel stack and the Xid 79/119/120 lines before it | `raw_syscalls:sys_enter`/`sys_exit`, `sched:sched_process_hang`, `/proc` |
//! | [`xid`] | the NVIDIA driver's Xid errors, with meaning, action, GPU and victim, past ones too | `printk:console`, `/dev/kmsg` |
//! | [`nvml`] | the device's own counters: utilization, memory, power, clocks, PCIe/NVLink, ECC, GPM | NVML (dlopened) |
//!
//! Beside the probes, [`diagnose`] answers "CPU side or GPU side?" for one process over an
//! interval (`coolbpf gpu diagnose`).
//!
//! How it is layered, bottom up: [`library`] finds the files to probe; [`calls`] is the one
//! BPF object that traces calls of any user-space function (one entry, one return and
//! one sleepable program, told apart by attach cookies; launches counted in the kernel);
//! [`cuda`] and [`nccl`] read those calls per library; [`hang`] and [`diagnose`] build on
//! the CUDA tracer; [`stacks`] names every user stack they report. [`driver`] needs no
//! library: it watches the device files' ioctls and the threads of the processes that
//! have them open, and joins [`xid`]'s lines to what it finds.
//!
//! Without a GPU or a driver every probe still builds, and `coolbpf list` says why one is
//! unavailable (no CUDA library found, no NVML) instead of failing later.
//!
//! # Example: list the whole catalogue
//!
//! ```
//! for probe in coolbpf_gpu::CATALOGUE.probes() {
//!     println!("{:<12} {}", probe.name, probe.description);
//! }
//! assert!(coolbpf_gpu::CATALOGUE.find("syscount").is_ok());
//! ```

pub mod calls;
pub mod catalogue;
pub mod cuda;
pub mod diagnose;
pub mod driver;
pub mod hang;
pub mod library;
pub mod libwatch;
pub mod nccl;
pub mod nvml;
pub mod stacks;
mod sync;
pub mod xid;

pub use catalogue::{CATALOGUE, GPU_PROBES};
