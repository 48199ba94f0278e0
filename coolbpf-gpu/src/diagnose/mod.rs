//! `coolbpf gpu diagnose`: is one process bound by its CPU side or its GPU side?
//!
//! Over one interval it traces the process's CUDA calls (the `cuda` probe's tracer),
//! reads every thread's scheduler counters before and after (`/proc/PID/task/*/schedstat`:
//! time on a CPU, time waiting for one), and, where NVML is present, samples the GPU's
//! busy percent. For each thread it reports time on CPU, time inside CUDA sync calls
//! (wall time, clipped to the interval, calls still blocked at the end included) and time
//! blocked elsewhere; for the process, the launch rate and the gaps between launches. The
//! busiest CUDA thread decides the [`Verdict`]: GPU-bound (waits in syncs), launch-bound
//! (on CPU, launching), blocked on I/O or locks, CPU contention, or mixed.

mod threads;
mod verdict;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coolbpf_core::{Environment, Event, FieldValue, Record, Result};
use coolbpf_probes::sched::monotonic_ns;

pub use threads::{parse_schedstat, snapshot, SchedCounters};
pub use verdict::{classify, Bound, Observation, ThreadTime, Verdict};

use crate::calls::CallRecord;
use crate::cuda::{CudaTracer, Function, OnCall, Role, TraceConfig};
use crate::sync::lock;

/// What to diagnose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnoseConfig {
    /// The process.
    pub pid: u32,
    /// How long to watch it.
    pub duration: Duration,
    /// CUDA libraries to trace instead of those the process maps.
    pub libraries: Vec<PathBuf>,
}

/// One thread over the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadReport {
    /// Thread id.
    pub tid: u32,
    /// Its name.
    pub comm: String,
    /// How it spent the interval.
    pub time: ThreadTime,
    /// Its CUDA calls.
    pub cuda_calls: u64,
    /// Its launches.
    pub launches: u64,
    /// The sync call it waited in most.
    pub top_sync: Option<&'static str>,
}

/// The diagnosis of one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The process.
    pub pid: u32,
    /// The interval, ns.
    pub interval_ns: u64,
    /// Every thread, busiest CUDA thread first.
    pub threads: Vec<ThreadReport>,
    /// Launches by the whole process.
    pub launches: u64,
    /// The median and largest gap between launches of the busiest thread, ms.
    pub launch_gap_ms: Option<(f64, f64)>,
    /// The GPU's busy percent over the interval (mean of NVML samples), when known.
    pub gpu_busy: Option<u32>,
    /// What bounds the process.
    pub verdict: Verdict,
}

/// Per-thread tallies of the calls seen in the interval.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    launch_ts: Vec<u64>,
    sync_ns: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct Window {
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    tallies: Mutex<BTreeMap<u32, Tally>>,
    /// Calls counted while still in flight at the end: their return must not count again.
    counted: Mutex<HashSet<(u32, u16, u64)>>,
}

impl Window {
    fn add(&self, function: &'static Function, record: &CallRecord) {
        let (start, end) = (
            self.start_ns.load(Ordering::Acquire),
            self.end_ns.load(Ordering::Acquire),
        );
        if record.entry_ns < start && record.return_ns.is_none_or(|r| r < start) {
            return;
        }
        if record.entry_ns > end
            || lock(&self.counted).contains(&(record.tid, record.function, record.entry_ns))
        {
            return;
        }
        let mut tallies = lock(&self.tallies);
        let tally = tallies.entry(record.tid).or_default();
        tally.calls += 1;
        if function.is_launch() {
            tally.launch_ts.push(record.entry_ns);
        }
        if function.role == Role::Sync {
            let from = record.entry_ns.max(start);
            let to = record.return_ns.unwrap_or(end).min(end);
            *tally.sync_ns.entry(function.name).or_default() += to.saturating_sub(from);
        }
    }
}

/// Watches process `config.pid` for `config.duration` and says what bounds it;
/// `progress` is called about every half second with the time elapsed, and stops the
/// interval early when it returns `false`.
pub fn diagnose(
    config: &DiagnoseConfig,
    mut progress: impl FnMut(Duration) -> bool,
) -> Result<Diagnosis> {
    Environment::require_process(config.pid)?;
    let window = Arc::new(Window {
        end_ns: AtomicU64::new(u64::MAX),
        ..Window::default()
    });
    let shared = Arc::clone(&window);
    let on_call: OnCall = Box::new(move |function, record| {
        if let Some(function) = function {
            shared.add(function, record);
        }
    });
    let trace = TraceConfig {
        pid: Some(config.pid),
        libraries: config.libraries.clone(),
        watch: Vec::new(),
        buffer_kb: 8192,
        // The gaps between launches need each launch's time.
        launch_events: true,
        recent_launches: false,
    };
    let mut tracer = CudaTracer::start(&trace, on_call)?;
    let gpus = crate::nvml::Gpus::open().ok();
    let before = snapshot(config.pid);
    let start_ns = monotonic_ns();
    window.start_ns.store(start_ns, Ordering::Release);
    let started = Instant::now();
    let mut busy = Vec::new();
    while started.elapsed() < config.duration {
        std::thread::sleep(
            config
                .duration
                .saturating_sub(started.elapsed())
                .min(Duration::from_millis(500)),
        );
        if let Some(gpus) = &gpus {
            busy.extend(gpu_busy(gpus, config.pid));
        }
        if !progress(started.elapsed()) {
            break;
        }
    }
    let end_ns = monotonic_ns();
    window.end_ns.store(end_ns, Ordering::Release);
    let after = snapshot(config.pid);
    for call in tracer.in_flight()? {
        if let Some(function) = crate::cuda::functions::by_id(call.function) {
            window.add(function, &call);
            lock(&window.counted).insert((call.tid, call.function, call.entry_ns));
        }
    }
    tracer.stop()?;
    let interval_ns = end_ns.saturating_sub(start_ns);
    let tallies = std::mem::take(&mut *lock(&window.tallies));
    Ok(report(
        config.pid,
        interval_ns,
        &before,
        &after,
        &tallies,
        mean(&busy),
    ))
}

fn report(
    pid: u32,
    interval_ns: u64,
    before: &BTreeMap<u32, (String, SchedCounters)>,
    after: &BTreeMap<u32, (String, SchedCounters)>,
    tallies: &BTreeMap<u32, Tally>,
    gpu_busy: Option<u32>,
) -> Diagnosis {
    let empty = Tally::default();
    let mut threads: Vec<(ThreadReport, &Tally)> = after
        .iter()
        .map(|(tid, (comm, end))| {
            let start = before.get(tid).map(|(_, c)| *c).unwrap_or_default();
            let tally = tallies.get(tid).unwrap_or(&empty);
            let in_sync: u64 = tally.sync_ns.values().sum();
            let time = ThreadTime::split(
                interval_ns,
                end.on_cpu_ns
                    .saturating_sub(start.on_cpu_ns)
                    .min(interval_ns),
                end.runq_ns.saturating_sub(start.runq_ns).min(interval_ns),
                in_sync.min(interval_ns),
            );
            let top_sync = tally
                .sync_ns
                .iter()
                .max_by_key(|(_, ns)| **ns)
                .map(|(f, _)| *f);
            let report = ThreadReport {
                tid: *tid,
                comm: comm.clone(),
                time,
                cuda_calls: tally.calls,
                launches: tally.launch_ts.len() as u64,
                top_sync,
            };
            (report, tally)
        })
        .collect();
    // The busiest CUDA thread first; without CUDA calls, the main thread.
    threads.sort_by_key(|(t, _)| (std::cmp::Reverse(t.cuda_calls), t.tid != pid, t.tid));
    let launches = threads.iter().map(|(t, _)| t.launches).sum();
    let launch_gap_ms = threads
        .first()
        .and_then(|(_, tally)| gaps(&tally.launch_ts));
    let verdict = match threads.first() {
        Some((main, _)) => classify(&Observation {
            name: &main.comm,
            thread: main.time,
            interval_ns,
            launches: main.launches,
            calls: main.cuda_calls,
            gap_ms: launch_gap_ms.map(|(median, _)| median),
            gpu_busy,
            sync_function: main.top_sync,
        }),
        None => Verdict {
            bound: Bound::NoCuda,
            summary: format!("process {pid} ended before the interval did"),
        },
    };
    Diagnosis {
        pid,
        interval_ns,
        threads: threads.into_iter().map(|(t, _)| t).collect(),
        launches,
        launch_gap_ms,
        gpu_busy,
        verdict,
    }
}

/// The median and largest gap between consecutive launches, ms.
fn gaps(launch_ts: &[u64]) -> Option<(f64, f64)> {
    let mut ts = launch_ts.to_vec();
    ts.sort_unstable();
    let mut gaps: Vec<u64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    Some((ms(gaps[gaps.len() / 2]), ms(gaps[gaps.len() - 1])))
}

/// The busy percent of the GPU the process runs on (any GPU with a sample of it), else
/// of the busiest GPU.
fn gpu_busy(gpus: &crate::nvml::Gpus, pid: u32) -> Option<u32> {
    let indices: Vec<u32> = gpus.gpus().iter().map(|g| g.index).collect();
    let own = indices
        .iter()
        .copied()
        .find(|i| matches!(gpus.process_utilization(*i, pid, None), Ok(Some(_))));
    match own {
        Some(i) => gpus.utilization(i).ok().map(|u| u.gpu_percent),
        None => indices
            .iter()
            .filter_map(|i| gpus.utilization(*i).ok().map(|u| u.gpu_percent))
            .max(),
    }
}

fn mean(samples: &[u32]) -> Option<u32> {
    (!samples.is_empty()).then(|| {
        let sum: u64 = samples.iter().map(|s| u64::from(*s)).sum();
        (sum / samples.len() as u64) as u32
    })
}

impl Diagnosis {
    /// As records of probe `gpu`: one event (`report: verdict`) with the verdict and the
    /// process's numbers, then one (`report: thread`) per thread.
    pub fn to_records(&self) -> Vec<Record> {
        let ts = monotonic_ns();
        let ms = |ns: u64| FieldValue::Float(ns as f64 / 1e6);
        let mut verdict = Event::new("gpu", ts)
            .with("report", FieldValue::Str("verdict".into()))
            .with("pid", FieldValue::UInt(self.pid.into()))
            .with("interval_ms", ms(self.interval_ns))
            .with("bound", FieldValue::Str(self.verdict.bound.name().into()))
            .with("verdict", FieldValue::Str(self.verdict.summary.clone()))
            .with("launches", FieldValue::UInt(self.launches));
        if let Some((median, max)) = self.launch_gap_ms {
            verdict = verdict
                .with("launch_gap_median_ms", FieldValue::Float(median))
                .with("launch_gap_max_ms", FieldValue::Float(max));
        }
        if let Some(busy) = self.gpu_busy {
            verdict = verdict.with("gpu_busy_percent", FieldValue::UInt(busy.into()));
        }
        let mut out = vec![Record::Event(verdict)];
        for t in &self.threads {
            let event = Event::new("gpu", ts)
                .with("report", FieldValue::Str("thread".into()))
                .with("pid", FieldValue::UInt(self.pid.into()))
                .with("tid", FieldValue::UInt(t.tid.into()))
                .with("comm", FieldValue::Str(t.comm.clone()))
                .with("on_cpu_ms", ms(t.time.on_cpu_ns))
                .with("runq_ms", ms(t.time.runq_ns))
                .with("in_cuda_sync_ms", ms(t.time.in_sync_ns))
                .with("blocked_elsewhere_ms", ms(t.time.elsewhere_ns))
                .with("cuda_calls", FieldValue::UInt(t.cuda_calls))
                .with("launches", FieldValue::UInt(t.launches));
            out.push(Record::Event(event));
        }
        out
    }

    /// For people: the verdict, then a table of threads.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let pct = |ns: u64| ns as f64 * 100.0 / self.interval_ns.max(1) as f64;
        let mut out = format!(
            "{}\n\nprocess {} over {:.1} s: {} launches",
            self.verdict.summary,
            self.pid,
            self.interval_ns as f64 / 1e9,
            self.launches
        );
        if let Some((median, max)) = self.launch_gap_ms {
            let _ = write!(out, ", gaps median {median:.3} ms, max {max:.3} ms");
        }
        if let Some(busy) = self.gpu_busy {
            let _ = write!(out, ", GPU busy {busy}%");
        }
        let _ = writeln!(
            out,
            "\n\n{:>8} {:<16} {:>7} {:>7} {:>9} {:>10} {:>8} {:>8}",
            "TID", "COMM", "ON-CPU", "RUNQ", "CUDA-SYNC", "ELSEWHERE", "CALLS", "LAUNCHES"
        );
        for t in &self.threads {
            let _ = writeln!(
                out,
                "{:>8} {:<16} {:>6.1}% {:>6.1}% {:>8.1}% {:>9.1}% {:>8} {:>8}",
                t.tid,
                t.comm,
                pct(t.time.on_cpu_ns),
                pct(t.time.runq_ns),
                pct(t.time.in_sync_ns),
                pct(t.time.elsewhere_ns),
                t.cuda_calls,
                t.launches
            );
        }
        out
    }
}
