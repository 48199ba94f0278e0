//! Loss accounting: nothing is dropped silently.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::map::MapView;
use crate::record::{Metric, Record};
use crate::{labels, BpfObject};

/// Name of the per-CPU loss-counter map defined by `coolbpf.bpf.h`.
pub const LOSS_MAP: &str = "coolbpf_losses";

/// Counters a consumer thread updates as it goes.
///
/// Only the consumer thread writes them, so an increment is a relaxed load and store: no
/// locked read-modify-write per event (two `lock incq` per event were most of the
/// consumer's own cost in the transport benchmark). Other threads read with relaxed loads.
#[derive(Debug, Default)]
pub(crate) struct StreamCounters {
    received: AtomicU64,
    delivered: AtomicU64,
    channel_overflow: AtomicU64,
    decode_errors: AtomicU64,
    perf_lost: AtomicU64,
}

impl StreamCounters {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn add_received(&self) {
        Self::bump(&self.received, 1);
    }

    pub(crate) fn add_delivered(&self) {
        Self::bump(&self.delivered, 1);
    }

    pub(crate) fn add_channel_overflow(&self) {
        Self::bump(&self.channel_overflow, 1);
    }

    pub(crate) fn add_decode_error(&self) {
        Self::bump(&self.decode_errors, 1);
    }

    pub(crate) fn add_perf_lost(&self, count: u64) {
        Self::bump(&self.perf_lost, count);
    }
}

/// The BPF-side loss counters of one object (`enum coolbpf_loss_slot`), summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KernelLosses {
    /// `bpf_ringbuf_reserve()` failures: the ring buffer was full.
    pub ringbuf_reserve: u64,
    /// Hash-map inserts that failed because the map was full.
    pub map_full: u64,
    /// Stack captures that failed.
    pub stack: u64,
    /// Payload reads (`bpf_probe_read*`) that failed. The event was still sent, with
    /// that field missing or truncated, so these are not counted in [`Self::total`].
    pub read: u64,
    /// `bpf_perf_event_output()` failures counted by `coolbpf_perf_output()`.
    pub perf_output: u64,
    /// User stacks cut at their frame limit with callers left (`coolbpf/unwind.bpf.h`).
    /// The samples were sent with their innermost frames, so these are not counted in
    /// [`Self::total`].
    pub stack_truncated: u64,
    /// Frame-pointer steps the CFI unwinder took where no table covered the pc or its
    /// rule was not followed. Not losses of events (and not in [`Self::total`]): a
    /// measure of how much of the unwinding was left to frame pointers.
    pub unwind_fallback: u64,
    /// Python stack walks (`coolbpf/python.bpf.h`) that stopped at their frame limit:
    /// the sample was sent with its innermost frames, so not counted in [`Self::total`].
    pub python_truncated: u64,
    /// Python stack walks whose user read faulted: the sample was sent with the frames
    /// read before the fault, so not counted in [`Self::total`].
    pub python_read_fault: u64,
    /// Runs of the object's programs that the kernel skipped and counted (the programs'
    /// `recursion_misses`): a raw_tp or tp_btf program whose hook fires again while it
    /// runs on that CPU, or a trampoline program that would recurse. The kernel does not
    /// count the classic-tracepoint and perf-event runs it skips while another tracing
    /// program or a `bpf()` map syscall holds the CPU (Linux 6.18 still does not), which
    /// is one reason coolbpf's probes prefer tp_btf and raw_tp hooks.
    pub program_misses: u64,
}

impl KernelLosses {
    /// Reads the object's `coolbpf_losses` map (all zero when the object has none) and
    /// its programs' skipped runs.
    pub fn read(object: &BpfObject) -> Result<Self> {
        KernelLossReader::new(object)?.read()
    }

    /// Events lost on the kernel side (read failures are not: those events were sent).
    pub fn total(&self) -> u64 {
        self.ringbuf_reserve + self.map_full + self.stack + self.perf_output + self.program_misses
    }

    /// [`Self::to_metrics`] as records, what a plugin's `collect` hands over.
    pub fn to_records(&self, probe: &str) -> Vec<Record> {
        self.to_metrics(probe)
            .into_iter()
            .map(Record::from)
            .collect()
    }

    /// These counters as `events_lost_total{source=...}` metrics of probe `core`.
    pub fn to_metrics(&self, probe: &str) -> Vec<Metric> {
        [
            ("ringbuf_reserve", self.ringbuf_reserve),
            ("map_full", self.map_full),
            ("stack", self.stack),
            ("read", self.read),
            ("perf_output", self.perf_output),
            ("stack_truncated", self.stack_truncated),
            ("unwind_fallback", self.unwind_fallback),
            ("python_truncated", self.python_truncated),
            ("python_read_fault", self.python_read_fault),
            ("program_misses", self.program_misses),
        ]
        .into_iter()
        .map(|(source, value)| loss_metric(probe, source, value))
        .collect()
    }
}

/// Where an object's kernel-side losses are read from: its loss map and its programs.
///
/// Holds its own fds, so a stream's consumer can keep reading losses without the object.
#[derive(Debug)]
pub(crate) struct KernelLossReader {
    loss_map: Option<MapView>,
    programs: Vec<OwnedFd>,
}

impl KernelLossReader {
    pub(crate) fn new(object: &BpfObject) -> Result<Self> {
        let loss_map = if object.has_map(LOSS_MAP) {
            Some(object.map(LOSS_MAP)?)
        } else {
            None
        };
        Ok(Self {
            loss_map,
            programs: object.program_fds()?,
        })
    }

    pub(crate) fn read(&self) -> Result<KernelLosses> {
        let slots = match &self.loss_map {
            Some(map) => map.array_counters()?,
            None => Vec::new(),
        };
        let slot = |i: usize| slots.get(i).copied().unwrap_or(0);
        let mut program_misses = 0;
        for program in &self.programs {
            program_misses += crate::sys::prog_info::recursion_misses(program.as_fd())
                .map_err(|e| Error::io("cannot read a program's skipped runs", e))?;
        }
        Ok(KernelLosses {
            ringbuf_reserve: slot(0),
            map_full: slot(1),
            stack: slot(2),
            read: slot(3),
            perf_output: slot(4),
            stack_truncated: slot(5),
            unwind_fallback: slot(6),
            python_truncated: slot(7),
            python_read_fault: slot(8),
            program_misses,
        })
    }
}

/// Everything a stream knows about what it delivered and what it lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Losses {
    /// Events read out of the kernel buffer.
    pub received: u64,
    /// Events handed to the caller.
    pub delivered: u64,
    /// Kernel-side losses of the object the stream belongs to.
    pub kernel: KernelLosses,
    /// Samples the kernel reported lost in the perf buffer (`PERF_RECORD_LOST`). These
    /// are the same losses as [`KernelLosses::perf_output`], seen later and only in part:
    /// the kernel writes a lost record only once the buffer has room again.
    pub perf_lost: u64,
    /// Events dropped because the delivery channel was full (or closed).
    pub channel_overflow: u64,
    /// Payloads that could not be decoded.
    pub decode_errors: u64,
}

impl Losses {
    pub(crate) fn snapshot(counters: &StreamCounters, kernel: KernelLosses) -> Self {
        Self {
            received: counters.received.load(Ordering::Relaxed),
            delivered: counters.delivered.load(Ordering::Relaxed),
            kernel,
            perf_lost: counters.perf_lost.load(Ordering::Relaxed),
            channel_overflow: counters.channel_overflow.load(Ordering::Relaxed),
            decode_errors: counters.decode_errors.load(Ordering::Relaxed),
        }
    }

    /// Adds `other`'s counts to these: the losses of a probe made of several objects,
    /// reported as one.
    pub fn add(&mut self, other: &Losses) {
        self.received += other.received;
        self.delivered += other.delivered;
        self.perf_lost += other.perf_lost;
        self.channel_overflow += other.channel_overflow;
        self.decode_errors += other.decode_errors;
        let (k, o) = (&mut self.kernel, &other.kernel);
        k.ringbuf_reserve += o.ringbuf_reserve;
        k.map_full += o.map_full;
        k.stack += o.stack;
        k.read += o.read;
        k.perf_output += o.perf_output;
        k.stack_truncated += o.stack_truncated;
        k.unwind_fallback += o.unwind_fallback;
        k.python_truncated += o.python_truncated;
        k.python_read_fault += o.python_read_fault;
        k.program_misses += o.program_misses;
    }

    /// Every loss, wherever it happened. Perf-buffer losses are seen twice (by the BPF
    /// side when `coolbpf_perf_output()` is used, and by the kernel's lost records), so
    /// the larger of the two counts is taken, never their sum.
    pub fn total(&self) -> u64 {
        let perf = self.kernel.perf_output.max(self.perf_lost);
        self.kernel.total() - self.kernel.perf_output
            + perf
            + self.channel_overflow
            + self.decode_errors
    }

    /// [`Self::to_metrics`] as records, what a plugin's `collect` hands over.
    pub fn to_records(&self, probe: &str) -> Vec<Record> {
        self.to_metrics(probe)
            .into_iter()
            .map(Record::from)
            .collect()
    }

    /// These counters as `events_lost_total{source=...}` metrics of probe `core`.
    pub fn to_metrics(&self, probe: &str) -> Vec<Metric> {
        let mut metrics = self.kernel.to_metrics(probe);
        for (source, value) in [
            ("perf_buffer", self.perf_lost),
            ("channel_overflow", self.channel_overflow),
            ("decode", self.decode_errors),
        ] {
            metrics.push(loss_metric(probe, source, value));
        }
        metrics
    }
}

fn loss_metric(probe: &str, source: &str, value: u64) -> Metric {
    Metric::counter(
        "core",
        "events_lost_total",
        labels! { "probe" => probe, "source" => source },
        value,
    )
}
