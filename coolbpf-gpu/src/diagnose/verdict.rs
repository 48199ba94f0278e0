//! The CPU-or-GPU verdict: from one thread's split of an interval, the launch rate and
//! (when NVML is there) the GPU's own busy time, what bounds the process.

use serde::Serialize;

/// How one thread spent the interval, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ThreadTime {
    /// On a CPU.
    pub on_cpu_ns: u64,
    /// Runnable, waiting for a CPU.
    pub runq_ns: u64,
    /// Inside CUDA calls that wait for the device (the sync family), wall time.
    pub in_sync_ns: u64,
    /// Off CPU and not in a CUDA sync: I/O, locks, sleeps.
    pub elsewhere_ns: u64,
}

impl ThreadTime {
    /// The split of an interval of `interval_ns`: off-CPU time outside sync calls is what
    /// is left once on-CPU, run-queue and sync time are taken out (a sync that spins is
    /// on a CPU and in a sync at once, so the rest is clamped at zero).
    pub fn split(interval_ns: u64, on_cpu_ns: u64, runq_ns: u64, in_sync_ns: u64) -> Self {
        let accounted = on_cpu_ns.saturating_add(runq_ns).max(in_sync_ns);
        let off_cpu = interval_ns.saturating_sub(on_cpu_ns.saturating_add(runq_ns));
        Self {
            on_cpu_ns,
            runq_ns,
            in_sync_ns,
            elsewhere_ns: off_cpu
                .saturating_sub(in_sync_ns)
                .min(interval_ns.saturating_sub(accounted)),
        }
    }
}

/// What bounds the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The CPU waits on the GPU.
    Gpu,
    /// The GPU waits on the CPU to launch work.
    Launch,
    /// The thread is neither on a CPU nor waiting on the GPU.
    BlockedElsewhere,
    /// The thread waits for a CPU.
    CpuContention,
    /// No CUDA work was seen.
    NoCuda,
    /// Nothing dominates.
    Mixed,
}

impl Bound {
    /// Its name in records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gpu => "gpu",
            Self::Launch => "launch",
            Self::BlockedElsewhere => "blocked_elsewhere",
            Self::CpuContention => "cpu_contention",
            Self::NoCuda => "no_cuda",
            Self::Mixed => "mixed",
        }
    }
}

/// The verdict with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// What bounds the process.
    pub bound: Bound,
    /// One sentence with the numbers.
    pub summary: String,
}

/// Share of the interval above which one thing is said to bound the thread.
const DOMINANT: f64 = 0.5;
/// On-CPU share above which a launching thread is launch-bound.
const BUSY_CPU: f64 = 0.7;

/// What the verdict is made from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation<'a> {
    /// The busiest CUDA thread's name.
    pub name: &'a str,
    /// How it spent the interval.
    pub thread: ThreadTime,
    /// The interval, ns.
    pub interval_ns: u64,
    /// Its launches in the interval.
    pub launches: u64,
    /// All its CUDA calls in the interval.
    pub calls: u64,
    /// The median gap between its launches, ms.
    pub gap_ms: Option<f64>,
    /// The GPU's busy percent (NVML), when known.
    pub gpu_busy: Option<u32>,
    /// The sync call it waited in most.
    pub sync_function: Option<&'a str>,
}

/// The verdict for `observed`.
pub fn classify(observed: &Observation<'_>) -> Verdict {
    let Observation {
        name,
        thread,
        interval_ns,
        launches,
        calls,
        gap_ms,
        gpu_busy,
        sync_function,
    } = *observed;
    let share = |ns: u64| ns as f64 / interval_ns.max(1) as f64;
    let pct = |ns: u64| share(ns) * 100.0;
    let gpu = gpu_busy.map_or_else(String::new, |busy| format!("; GPU busy {busy}%"));
    let (bound, summary) = if calls == 0 {
        (
            Bound::NoCuda,
            format!(
                "no CUDA call seen in {:.1} s: not a CUDA program, or idle{gpu}",
                interval_ns as f64 / 1e9
            ),
        )
    } else if share(thread.in_sync_ns) >= DOMINANT {
        (
            Bound::Gpu,
            format!(
                "GPU-bound: thread {name} waits {:.0}% of the interval in {}{gpu}",
                pct(thread.in_sync_ns),
                sync_function.unwrap_or("CUDA sync calls")
            ),
        )
    } else if share(thread.on_cpu_ns + thread.runq_ns) >= BUSY_CPU
        && thread.on_cpu_ns >= thread.runq_ns
        && launches > 0
    {
        // Waiting for a CPU is still the CPU side: said, but not a different verdict.
        let every = gap_ms.map_or_else(String::new, |gap| format!(", launches every {gap:.2} ms"));
        let runq = if share(thread.runq_ns) >= 0.1 {
            format!(" (and {:.0}% waiting for a CPU)", pct(thread.runq_ns))
        } else {
            String::new()
        };
        (
            Bound::Launch,
            format!(
                "launch-bound: thread {name} is {:.0}% on CPU{runq}{every}{gpu}",
                pct(thread.on_cpu_ns)
            ),
        )
    } else if share(thread.elsewhere_ns) >= DOMINANT {
        (
            Bound::BlockedElsewhere,
            format!(
                "blocked on I/O or locks: thread {name} is off CPU outside CUDA {:.0}% of the interval{gpu}",
                pct(thread.elsewhere_ns)
            ),
        )
    } else if share(thread.runq_ns) >= DOMINANT {
        (
            Bound::CpuContention,
            format!(
                "CPU contention: thread {name} waits for a CPU {:.0}% of the interval{gpu}",
                pct(thread.runq_ns)
            ),
        )
    } else {
        (
            Bound::Mixed,
            format!(
                "mixed: thread {name} on CPU {:.0}%, in CUDA syncs {:.0}%, elsewhere {:.0}%{gpu}",
                pct(thread.on_cpu_ns),
                pct(thread.in_sync_ns),
                pct(thread.elsewhere_ns)
            ),
        )
    };
    Verdict { bound, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn observed(thread: ThreadTime, interval_ns: u64, launches: u64) -> Observation<'static> {
        Observation {
            name: "python3",
            thread,
            interval_ns,
            launches,
            calls: launches,
            ..Observation::default()
        }
    }

    #[test]
    fn the_three_shapes_of_the_issue() {
        let gpu = Observation {
            gpu_busy: Some(98),
            sync_function: Some("cudaStreamSynchronize"),
            ..observed(
                ThreadTime::split(10 * S, S / 2, 0, 92 * S / 10),
                10 * S,
                100,
            )
        };
        let v = classify(&gpu);
        assert_eq!(v.bound, Bound::Gpu);
        assert_eq!(
            v.summary,
            "GPU-bound: thread python3 waits 92% of the interval in cudaStreamSynchronize; GPU busy 98%"
        );

        let launch = Observation {
            gap_ms: Some(2.1),
            gpu_busy: Some(35),
            ..observed(ThreadTime::split(10 * S, 97 * S / 10, 0, 0), 10 * S, 4761)
        };
        let v = classify(&launch);
        assert_eq!(v.bound, Bound::Launch);
        assert_eq!(
            v.summary,
            "launch-bound: thread python3 is 97% on CPU, launches every 2.10 ms; GPU busy 35%"
        );

        let io = ThreadTime::split(10 * S, S / 10, 0, 0);
        assert_eq!(io.elsewhere_ns, 99 * S / 10);
        assert_eq!(
            classify(&observed(io, 10 * S, 10)).bound,
            Bound::BlockedElsewhere
        );
    }

    #[test]
    fn nothing_seen_and_nothing_dominant() {
        let t = ThreadTime::split(S, S / 3, 0, S / 3);
        assert_eq!(classify(&observed(t, S, 0)).bound, Bound::NoCuda);
        assert_eq!(classify(&observed(t, S, 5)).bound, Bound::Mixed);
        // A zero interval divides by one, never by zero.
        assert_eq!(
            classify(&observed(ThreadTime::default(), 0, 1)).bound,
            Bound::Mixed
        );
    }
}
