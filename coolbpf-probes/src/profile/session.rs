//! [`ProfileSession`]: one profile over a whole run, on-CPU or off-CPU, symbolized as it
//! goes. The one way every face (the `coolbpf profile` command, Python's
//! `coolbpf.Profiler`, C's `coolbpf_profile_*`) profiles.
//!
//! User addresses can only be symbolized while their process is alive (its
//! `/proc/PID/maps` says which file an address belongs to), so every
//! [`tick`](ProfileSession::tick) resolves the user addresses that arrived since the last
//! one: a process that exits during the run still gets its names. Kernel addresses are
//! resolved once, at [`finish`](ProfileSession::finish), which reads the kernel's symbol
//! list once per run instead of once per tick. Samples are kept aggregated (memory grows
//! with distinct stacks, not with samples).

use std::time::{Duration, SystemTime};

use coolbpf_core::stream::Losses;
use coolbpf_core::{Error, Features, PerfEventKind, Result, StackSample};
use coolbpf_symbolize::profile::{
    FlameGraphOptions, PprofOptions, StackResolver, SymbolizeFailure, SymbolizedProfile,
};
use coolbpf_symbolize::Profile;

use super::{ProfileConfig, Profiler, NAME};
use crate::offcpu::{self, OffCpu, OffCpuConfig};
use crate::registry::CATALOGUE;
use crate::sched::monotonic_ns;
use crate::stacks::{stack_record, symbolizer};

/// What a profile session measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileKind {
    /// On-CPU samples at a frequency: the `profile` probe. Weights are samples.
    OnCpu(ProfileConfig),
    /// Time off the CPU by stack: the `offcpu` probe. Weights are microseconds.
    OffCpu(OffCpuConfig),
}

impl From<&ProfileConfig> for ProfileKind {
    fn from(config: &ProfileConfig) -> Self {
        Self::OnCpu(config.clone())
    }
}

impl From<&OffCpuConfig> for ProfileKind {
    fn from(config: &OffCpuConfig) -> Self {
        Self::OffCpu(*config)
    }
}

/// What a finished profile measured, for the labels of its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// On-CPU samples at `frequency` Hz on `event`.
    OnCpu {
        /// Samples per second.
        frequency: u64,
        /// The perf event sampled.
        event: PerfEventKind,
    },
    /// Microseconds off the CPU.
    OffCpu,
}

/// The probe a session runs.
#[derive(Debug)]
enum Running {
    OnCpu(Box<Profiler>),
    OffCpu(Box<OffCpu>),
}

/// A running profile: its probe, its resolver and every sample so far.
#[derive(Debug)]
pub struct ProfileSession {
    running: Running,
    measured: Measured,
    resolver: StackResolver,
    samples: Profile,
}

/// What a finished session produced.
#[derive(Debug)]
pub struct SessionResult {
    /// Every sample, symbolized.
    pub profile: SymbolizedProfile,
    /// What was measured (which names the weights).
    pub measured: Measured,
    /// Samples received (on-CPU), or off-CPU spans counted.
    pub samples: u64,
    /// Kernel monotonic time (ns) of the last sample (on-CPU), or of the end (off-CPU);
    /// 0 if there was no sample.
    pub last_sample_ns: u64,
    /// Delivered and lost counts.
    pub losses: Losses,
    /// Address spaces that could not be symbolized (their addresses are `[unknown]`).
    pub failures: Vec<SymbolizeFailure>,
}

impl SessionResult {
    /// The probe whose stacks these are: `profile` or `offcpu`.
    pub fn probe(&self) -> &'static str {
        match self.measured {
            Measured::OnCpu { .. } => NAME,
            Measured::OffCpu => offcpu::NAME,
        }
    }

    /// The profile's stacks as the data model's stack records (of [`probe`](Self::probe),
    /// stamped with the last sample's time).
    pub fn stack_records(&self) -> Vec<StackSample> {
        self.profile
            .stacks()
            .iter()
            .map(|stack| stack_record(self.probe(), stack, self.last_sample_ns))
            .collect()
    }

    /// The pprof options of this profile, taken at `wall` (the wall clock at start) for
    /// `elapsed`.
    pub fn pprof(&self, wall: SystemTime, elapsed: Duration) -> PprofOptions {
        let options = match self.measured {
            Measured::OnCpu { frequency, .. } => PprofOptions::cpu(frequency),
            Measured::OffCpu => PprofOptions::off_cpu(),
        };
        options.taken(wall, elapsed)
    }

    /// The flame graph labels of this profile of `scope` (`all CPUs`, `pid 42`) over
    /// `elapsed`.
    pub fn flame_graph(&self, scope: &str, elapsed: Duration) -> FlameGraphOptions {
        let seconds = elapsed.as_secs_f64();
        match self.measured {
            Measured::OnCpu { frequency, event } => FlameGraphOptions {
                title: "coolbpf profile".into(),
                subtitle: Some(format!(
                    "{} samples of {scope} at {frequency} Hz ({event}) over {seconds:.1} s",
                    self.samples
                )),
                count_name: "samples".into(),
            },
            Measured::OffCpu => FlameGraphOptions {
                subtitle: Some(format!(
                    "{} off-CPU spans of {scope} over {seconds:.1} s",
                    self.samples
                )),
                ..FlameGraphOptions::off_cpu()
            },
        }
    }
}

impl ProfileSession {
    /// Starts the probe `kind` names (a [`ProfileConfig`] or an [`OffCpuConfig`]). A
    /// kernel that lacks what the probe needs is an [`Error::Unsupported`] saying what.
    pub fn start(kind: impl Into<ProfileKind>) -> Result<Self> {
        let kind = kind.into();
        let name = match kind {
            ProfileKind::OnCpu(_) => NAME,
            ProfileKind::OffCpu(_) => offcpu::NAME,
        };
        let availability = CATALOGUE.find(name)?.availability(Features::detect()?);
        if !availability.available {
            return Err(Error::Unsupported {
                feature: format!("the {name} probe"),
                reason: availability.reason.unwrap_or_default(),
            });
        }
        let (running, measured, debug_info) = match kind {
            ProfileKind::OnCpu(config) => {
                let profiler = Profiler::start(&config)?;
                let measured = Measured::OnCpu {
                    frequency: config.frequency,
                    event: profiler.event(),
                };
                (
                    Running::OnCpu(Box::new(profiler)),
                    measured,
                    config.debug_info,
                )
            }
            ProfileKind::OffCpu(config) => (
                Running::OffCpu(Box::new(OffCpu::start(&config)?)),
                Measured::OffCpu,
                config.debug_info,
            ),
        };
        Ok(Self {
            running,
            measured,
            resolver: StackResolver::new(symbolizer(debug_info)),
            samples: Profile::new(),
        })
    }

    /// What the session measures.
    pub fn measured(&self) -> Measured {
        self.measured
    }

    /// The on-CPU profiler (its perf events, cgroup); `None` off-CPU.
    pub fn profiler(&self) -> Option<&Profiler> {
        match &self.running {
            Running::OnCpu(profiler) => Some(profiler),
            Running::OffCpu(_) => None,
        }
    }

    /// Samples so far (on-CPU), or off-CPU spans counted so far.
    pub fn sample_count(&self) -> Result<u64> {
        match &self.running {
            Running::OnCpu(profiler) => Ok(profiler.sample_count()),
            Running::OffCpu(offcpu) => Ok(offcpu.counters()?.measured),
        }
    }

    /// Follows new threads (on-CPU, pid mode) and resolves the user addresses of the
    /// samples that arrived since the last tick. Call it about every second.
    pub fn tick(&mut self) -> Result<()> {
        if let Running::OnCpu(profiler) = &mut self.running {
            profiler.follow_threads()?;
            profiler.refresh_unwinding()?;
        }
        self.absorb()
    }

    /// Stops the probe, symbolizes what is left, and returns the whole profile.
    pub fn finish(mut self) -> Result<SessionResult> {
        match &mut self.running {
            Running::OnCpu(profiler) => profiler.stop()?,
            Running::OffCpu(offcpu) => offcpu.stop(),
        }
        self.absorb()?;
        self.resolver.resolve_kernel(&self.samples);
        let (samples, last_sample_ns, losses) = match &self.running {
            Running::OnCpu(profiler) => (
                profiler.sample_count(),
                profiler.last_sample_ns(),
                profiler.losses()?,
            ),
            Running::OffCpu(offcpu) => {
                let spans = offcpu.counters()?.measured;
                let losses = Losses {
                    received: spans,
                    delivered: spans,
                    kernel: offcpu.losses()?,
                    ..Losses::default()
                };
                (spans, monotonic_ns(), losses)
            }
        };
        Ok(SessionResult {
            profile: self.resolver.profile(&self.samples),
            measured: self.measured,
            samples,
            last_sample_ns,
            losses,
            failures: self.resolver.failures().to_vec(),
        })
    }

    fn absorb(&mut self) -> Result<()> {
        let fresh = match &mut self.running {
            Running::OnCpu(profiler) => profiler.take_profile()?,
            Running::OffCpu(offcpu) => offcpu.take()?,
        };
        if !fresh.is_empty() {
            self.resolver.resolve_user(&fresh);
            self.samples.extend(fresh.samples());
        }
        Ok(())
    }
}
