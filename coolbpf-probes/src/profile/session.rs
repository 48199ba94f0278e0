//! [`ProfileSession`]: one profile over a whole run, symbolized as it goes.
//!
//! User addresses can only be symbolized while their process is alive (its
//! `/proc/PID/maps` says which file an address belongs to), so every
//! [`tick`](ProfileSession::tick) resolves the user addresses that arrived since the last
//! one: a process that exits during the run still gets its names. Kernel addresses are
//! resolved once, at [`finish`](ProfileSession::finish), which reads the kernel's symbol
//! list once per run instead of once per tick. Samples are kept aggregated (memory grows
//! with distinct stacks, not with samples).

use std::time::Duration;

use coolbpf_core::stream::Losses;
use coolbpf_core::{PerfEventKind, Result, StackSample};
use coolbpf_symbolize::profile::{FlameGraphOptions, SymbolizeFailure, SymbolizedProfile};
use coolbpf_symbolize::{Profile, Symbolizer};

use super::resolve::StackResolver;
use super::{stack_record, ProfileConfig, Profiler, NAME};

/// Heap bytes a profiler's symbolizer may keep in parsed files and DWARF units: enough
/// for the hot binaries of a machine, small next to what it profiles.
pub const SYMBOLIZER_CACHE_BYTES: usize = 32 << 20;

/// The symbolizer of the profilers (on- and off-CPU): a bounded cache, and DWARF only
/// when `debug_info` is asked for.
pub fn symbolizer(debug_info: bool) -> Symbolizer {
    Symbolizer::builder()
        .cache_bytes(SYMBOLIZER_CACHE_BYTES)
        .dwarf(debug_info)
        .build()
}

/// A running profiler, its resolver and every sample so far.
#[derive(Debug)]
pub struct ProfileSession {
    profiler: Profiler,
    resolver: StackResolver,
    samples: Profile,
}

/// What a finished session produced.
#[derive(Debug)]
pub struct SessionResult {
    /// Every sample, symbolized.
    pub profile: SymbolizedProfile,
    /// Samples received.
    pub samples: u64,
    /// Kernel monotonic time (ns) of the last sample, 0 if there was none.
    pub last_sample_ns: u64,
    /// Delivered and lost counts.
    pub losses: Losses,
    /// Address spaces that could not be symbolized (their addresses are `[unknown]`).
    pub failures: Vec<SymbolizeFailure>,
}

impl SessionResult {
    /// The profile's stacks as the data model's stack records (probe `profile`, stamped
    /// with the last sample's time).
    pub fn stack_records(&self) -> Vec<StackSample> {
        self.profile
            .stacks()
            .iter()
            .map(|stack| stack_record(NAME, stack, self.last_sample_ns))
            .collect()
    }

    /// The flame graph labels of this profile of `scope` (`all CPUs`, `pid 42`), sampled
    /// on `event` at `frequency` Hz for `elapsed`.
    pub fn flame_graph(
        &self,
        scope: &str,
        frequency: u64,
        event: PerfEventKind,
        elapsed: Duration,
    ) -> FlameGraphOptions {
        FlameGraphOptions {
            title: "coolbpf profile".into(),
            subtitle: Some(format!(
                "{} samples of {scope} at {frequency} Hz ({event}) over {:.1} s",
                self.samples,
                elapsed.as_secs_f64()
            )),
            count_name: "samples".into(),
        }
    }
}

impl ProfileSession {
    /// Starts the profiler.
    pub fn start(config: &ProfileConfig) -> Result<Self> {
        Ok(Self {
            profiler: Profiler::start(config)?,
            resolver: StackResolver::new(symbolizer(config.debug_info)),
            samples: Profile::new(),
        })
    }

    /// The profiler.
    pub fn profiler(&self) -> &Profiler {
        &self.profiler
    }

    /// Follows new threads (pid mode) and resolves the user addresses of the samples
    /// that arrived since the last tick. Call it about every second.
    pub fn tick(&mut self) -> Result<()> {
        self.profiler.follow_threads()?;
        self.profiler.refresh_unwinding()?;
        self.absorb()
    }

    /// Stops the profiler, symbolizes what is left, and returns the whole profile.
    pub fn finish(mut self) -> Result<SessionResult> {
        self.profiler.stop()?;
        self.absorb()?;
        self.resolver.resolve_kernel(&self.samples);
        let stacks = self.resolver.stacks(&self.samples);
        Ok(SessionResult {
            profile: SymbolizedProfile::from_stacks(stacks),
            samples: self.profiler.sample_count(),
            last_sample_ns: self.profiler.last_sample_ns(),
            losses: self.profiler.losses()?,
            failures: self.resolver.failures().to_vec(),
        })
    }

    fn absorb(&mut self) -> Result<()> {
        let fresh = self.profiler.take_profile()?;
        if !fresh.is_empty() {
            self.resolver.resolve_user(&fresh);
            self.samples.extend(fresh.samples());
        }
        Ok(())
    }
}
