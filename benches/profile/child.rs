//! The profiler as a process of its own (this binary again), so that its CPU time and
//! peak RSS are its own: started, it prints `ready EVENT`; when its stdin closes (or its
//! time is up) it stops, prints a summary line and exits.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use coolbpf::probes::profile::{Measured, Profile, ProfileConfig, ProfileSession, Profiler};
use coolbpf::probes::stacks::UnwindMode;

use crate::measure::{reap, Usage};
use crate::FREQUENCY;

/// Makes this binary the profiler child; the value is its time limit in seconds.
pub const ENV: &str = "COOLBPF_BENCH_PROFILER";
/// How to symbolize: `none` (sampling and aggregation only), `symtab` (symbol tables
/// only, `coolbpf profile --symbols-only`) or `dwarf` (the default).
const SYMBOLIZE_ENV: &str = "COOLBPF_BENCH_SYMBOLIZE";
/// A cgroup v2 directory to profile instead of the whole machine.
const CGROUP_ENV: &str = "COOLBPF_BENCH_CGROUP";

/// How the child symbolizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symbolize {
    /// Not at all: sample and aggregate only.
    None,
    /// From symbol tables only (`coolbpf profile --symbols-only`).
    SymbolTables,
    /// With DWARF where binaries have it (`coolbpf profile`).
    DebugInfo,
}

impl Symbolize {
    fn env_value(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SymbolTables => "symtab",
            Self::DebugInfo => "dwarf",
        }
    }
}

/// What the child does.
#[derive(Debug, Clone)]
pub struct Mode {
    /// How it symbolizes.
    pub symbolize: Symbolize,
    /// Only this cgroup.
    pub cgroup: Option<PathBuf>,
}

/// The child's main: profiles, ticking every second like `coolbpf profile`.
pub fn main(limit: &str) -> io::Result<()> {
    let limit = Duration::from_secs_f64(limit.parse().map_err(io::Error::other)?);
    let symbolize = std::env::var(SYMBOLIZE_ENV).unwrap_or_default();
    let config = ProfileConfig {
        frequency: FREQUENCY,
        cgroup: std::env::var_os(CGROUP_ENV).map(PathBuf::from),
        debug_info: symbolize != Symbolize::SymbolTables.env_value(),
        unwind: if crate::without_frame_pointers() {
            UnwindMode::Cfi
        } else {
            UnwindMode::FramePointers
        },
        ..ProfileConfig::default()
    };
    let started = Instant::now();
    let running = || started.elapsed() < limit && !stdin_closed(Duration::from_secs(1));
    if symbolize == Symbolize::None.env_value() {
        let mut profiler = Profiler::start(&config).map_err(io::Error::other)?;
        announce(&profiler.event().to_string())?;
        let mut all = Profile::new();
        while running() {
            all.extend(profiler.take_profile().map_err(io::Error::other)?.samples());
        }
        profiler.stop().map_err(io::Error::other)?;
        all.extend(profiler.take_profile().map_err(io::Error::other)?.samples());
        let unwind = profiler.unwind_stats().map_or_else(String::new, |u| {
            format!(
                " unwind: {} processes, {} files, compiled in {} ms",
                u.processes,
                u.files,
                u.compile_time.as_millis()
            )
        });
        println!(
            "samples {} stacks {} (not symbolized){unwind}",
            all.total_weight(),
            all.len()
        );
        return Ok(());
    }
    let mut session = ProfileSession::start(&config).map_err(io::Error::other)?;
    let Measured::OnCpu { event, .. } = session.measured() else {
        return Err(io::Error::other(
            "an on-CPU session measures on-CPU samples",
        ));
    };
    announce(&event.to_string())?;
    while running() {
        session.tick().map_err(io::Error::other)?;
    }
    let unwind = session
        .profiler()
        .and_then(Profiler::unwind_stats)
        .map_or_else(String::new, |u| {
            format!(
                " unwind: {} processes, {} files, {} rows, compiled in {} ms",
                u.processes,
                u.files,
                u.rows_used,
                u.compile_time.as_millis()
            )
        });
    let result = session.finish().map_err(io::Error::other)?;
    let folded = result.profile.folded();
    println!(
        "samples {} lost {} stacks {} folded_bytes {}{unwind}",
        result.samples,
        result.losses.kernel.ringbuf_reserve,
        result.profile.stacks().len(),
        folded.len()
    );
    Ok(())
}

fn announce(event: &str) -> io::Result<()> {
    println!("ready {event}");
    io::stdout().flush()
}

/// Waits up to `timeout` for stdin to close (or to get a line); true when it did.
fn stdin_closed(timeout: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_millis().try_into().unwrap_or(i32::MAX);
    // SAFETY: fd is one live, initialised pollfd.
    unsafe { libc::poll(&raw mut fd, 1, millis) > 0 }
}

/// A profiler child that is sampling.
pub struct ProfilerChild {
    child: Child,
    started: Instant,
    stdout: BufReader<ChildStdout>,
    /// The event it samples on.
    pub event: String,
}

impl ProfilerChild {
    /// Starts one that stops by itself after `seconds`, and waits until it samples.
    pub fn start(seconds: u64, mode: &Mode) -> io::Result<Self> {
        let started = Instant::now();
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(ENV, seconds.to_string())
            .env(SYMBOLIZE_ENV, mode.symbolize.env_value())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(cgroup) = &mode.cgroup {
            command.env(CGROUP_ENV, cgroup);
        }
        let mut child = command.spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let event = line
            .strip_prefix("ready ")
            .ok_or_else(|| io::Error::other(format!("profiler child did not start: {line:?}")))?
            .trim()
            .to_owned();
        Ok(Self {
            child,
            started,
            stdout,
            event,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the profile now (closing its stdin); returns its usage and summary line.
    pub fn stop(mut self) -> io::Result<(Usage, String)> {
        drop(self.child.stdin.take());
        let mut summary = String::new();
        self.stdout.read_line(&mut summary)?;
        Ok((reap(&self.child, self.started)?, summary.trim().to_owned()))
    }

    /// Lets it run out its time, then reaps it.
    pub fn wait(self, duration: Duration) -> io::Result<(Usage, String)> {
        std::thread::sleep(duration.saturating_sub(self.started.elapsed()));
        self.stop()
    }
}

/// A cgroup v2 directory for the workload, removed when dropped.
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates one under the cgroup v2 mount, if there is one.
    pub fn create() -> Option<Self> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let mount = mounts.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
        })?;
        let path = mount.join(format!("coolbpf-bench-{}", std::process::id()));
        std::fs::create_dir(&path).ok()?;
        Some(Self { path })
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves process `pid` (all its threads) into it.
    pub fn adopt(&self, pid: u32) -> io::Result<()> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Empty once the workload has exited; best effort otherwise.
        let _ = std::fs::remove_dir(&self.path);
    }
}
