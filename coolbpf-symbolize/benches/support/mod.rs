//! Helpers of the symbolizer benchmark: the corpus, the peers, addresses, statistics and
//! what `/proc/self/status` says about memory.

pub mod corpus;
pub mod peers;

use std::path::Path;
use std::time::Instant;

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// A small deterministic generator (SplitMix64): the same seed gives the same addresses
/// on every machine and run.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0); the bias is negligible for the sizes used here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The functions of an ELF file: (start, size) of each sized function symbol in an
/// executable section, sorted, without duplicates or overlaps.
pub fn functions(path: &Path) -> Vec<(u64, u64)> {
    let data = std::fs::read(path).expect("read the binary");
    let object = object::File::parse(&*data).expect("parse the binary");
    let mut functions: Vec<(u64, u64)> = object
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter(|s| {
            s.section_index()
                .and_then(|i| object.section_by_index(i).ok())
                .is_some_and(|section| section.kind() == SectionKind::Text)
        })
        .map(|s| (s.address(), s.size()))
        .collect();
    functions.sort_unstable();
    let mut end = 0;
    functions.retain(|&(start, size)| {
        let keep = start >= end;
        if keep {
            end = start + size;
        }
        keep
    });
    functions
}

/// `count` addresses inside `functions`, uniform over the bytes the functions cover
/// (so a function is picked in proportion to its size, as a sampling profiler would),
/// in random order.
pub fn random_addrs(functions: &[(u64, u64)], count: usize, seed: u64) -> Vec<u64> {
    let mut starts = Vec::with_capacity(functions.len());
    let mut total = 0;
    for &(_, size) in functions {
        starts.push(total);
        total += size;
    }
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let at = rng.below(total);
            let i = starts.partition_point(|&s| s <= at) - 1;
            functions[i].0 + (at - starts[i])
        })
        .collect()
}

/// Writes addresses for a child process to read.
pub fn write_addrs(path: &Path, addrs: &[u64]) {
    let bytes: Vec<u8> = addrs.iter().flat_map(|a| a.to_le_bytes()).collect();
    // Written aside and renamed, so a concurrent run never reads a partial file.
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&partial, bytes).expect("write the addresses");
    std::fs::rename(&partial, path).expect("rename the addresses");
}

/// Reads what [`write_addrs`] wrote.
pub fn read_addrs(path: &Path) -> Vec<u64> {
    std::fs::read(path)
        .expect("read the addresses")
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`, `RssAnon`, `RssFile`).
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or(0)
}

/// The median of `values` (the lower middle one for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(sorted.len() - 1) / 2]
}

/// The smallest and largest of `values`.
pub fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Wall-clock and CPU time (this process's, user and system, all threads) in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    /// Wall-clock seconds.
    pub wall: f64,
    /// CPU seconds: on a shared machine, what the work cost whatever else was running.
    pub cpu: f64,
}

/// Measures [`Times`] from its start.
pub struct Timer {
    wall: Instant,
    cpu: f64,
}

impl Timer {
    /// Starts measuring.
    pub fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: process_cpu_seconds(),
        }
    }

    /// The times since [`start`](Self::start).
    pub fn stop(&self) -> Times {
        Times {
            wall: self.wall.elapsed().as_secs_f64(),
            cpu: process_cpu_seconds() - self.cpu,
        }
    }
}

/// `CLOCK_PROCESS_CPUTIME_ID`: the process's CPU time, to the nanosecond.
fn process_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec`; the call only fills it in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}
