//! pprof output: a gzipped `perftools.profiles.Profile` (profile.proto), as `go tool
//! pprof` reads it.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::proto::Writer;
use super::stack::SymbolizedProfile;
use super::tables::Tables;

/// A kind of value and its unit, e.g. `samples`/`count` or `cpu`/`nanoseconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueType {
    /// What is measured (`samples`, `cpu`, `off-cpu`, ...).
    pub kind: String,
    /// Its unit (`count`, `nanoseconds`, `bytes`, ...).
    pub unit: String,
}

impl ValueType {
    /// A value type.
    pub fn new(kind: impl Into<String>, unit: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            unit: unit.into(),
        }
    }
}

/// The sampling period: how much of [`kind`](Self::kind) one sample stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// What the period measures (e.g. `cpu`/`nanoseconds`).
    pub kind: ValueType,
    /// How much of it one sample stands for (e.g. 10,000,000 ns at 100 Hz).
    pub value: i64,
}

/// What a pprof file says about its values and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PprofOptions {
    /// What a stack's weight is (default `samples`/`count`).
    pub sample_type: ValueType,
    /// The sampling period. When set, each sample carries a second value, weight ×
    /// period, of the period's type (as Go's CPU profiles have `samples`/`count` and
    /// `cpu`/`nanoseconds`); pprof shows the last value type by default.
    pub period: Option<Period>,
    /// When the profile was taken, ns since the Unix epoch (0: unknown).
    pub time_nanos: i64,
    /// How long it covers, in ns (0: unknown).
    pub duration_nanos: i64,
}

impl Default for PprofOptions {
    fn default() -> Self {
        Self {
            sample_type: ValueType::new("samples", "count"),
            period: None,
            time_nanos: 0,
            duration_nanos: 0,
        }
    }
}

impl PprofOptions {
    /// Options for an on-CPU profile sampled at `frequency_hz`: weights are sample
    /// counts, and each sample also stands for `1e9 / frequency_hz` ns of CPU time.
    pub fn cpu(frequency_hz: u64) -> Self {
        let period = (frequency_hz > 0).then(|| Period {
            kind: ValueType::new("cpu", "nanoseconds"),
            value: i64::try_from(1_000_000_000 / frequency_hz).unwrap_or(i64::MAX),
        });
        Self {
            period,
            ..Self::default()
        }
    }

    /// Options for an off-CPU profile: weights are microseconds off CPU.
    pub fn off_cpu() -> Self {
        Self {
            sample_type: ValueType::new("off-cpu", "microseconds"),
            ..Self::default()
        }
    }

    /// These options for a profile taken at `at` (wall clock) over `duration`. A time
    /// before the Unix epoch stays unknown (0); a duration too long for i64 ns saturates.
    #[must_use]
    pub fn taken(mut self, at: SystemTime, duration: Duration) -> Self {
        self.time_nanos = at
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|since| i64::try_from(since.as_nanos()).ok())
            .unwrap_or(0);
        self.duration_nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        self
    }
}

/// A mapped binary in an address space, for pprof's mapping table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapping {
    /// First address of the mapping.
    pub memory_start: u64,
    /// One past its last address.
    pub memory_limit: u64,
    /// File offset of `memory_start`.
    pub file_offset: u64,
    /// The binary's path (or a name such as `[vdso]`).
    pub filename: String,
    /// Its build id, hex, when known.
    pub build_id: Option<String>,
}

impl SymbolizedProfile {
    /// The profile as an uncompressed profile.proto message (what
    /// [`to_pprof`](Self::to_pprof) gzips).
    ///
    /// Each stack is one sample, its locations leaf first (kernel, then user), labelled
    /// with `pid` and `tid` (numbers; pprof ignores a numeric label of 0, so the idle
    /// task's pid 0 shows only its comm) and `comm` (a string). A location carries one line
    /// per frame of its inline chain, innermost first; an unknown location carries no
    /// line, so pprof shows its address. Locations inside an [added
    /// mapping](Self::add_mapping) of their address space refer to it.
    pub fn pprof_protobuf(&self, options: &PprofOptions) -> Vec<u8> {
        let mut tables = Tables::new(self.mappings());
        let samples = tables.samples(self.stacks(), options);
        let mut out = Writer::new();
        let value_types = std::iter::once(&options.sample_type)
            .chain(options.period.as_ref().map(|p| &p.kind))
            .map(|t| (tables.string(&t.kind), tables.string(&t.unit)))
            .collect::<Vec<_>>();
        for (kind, unit) in value_types {
            out.message(1, |m| {
                m.int64(1, kind);
                m.int64(2, unit);
            });
        }
        for sample in &samples {
            out.message(2, |m| sample.encode(m));
        }
        if let Some(period) = &options.period {
            let (kind, unit) = (
                tables.string(&period.kind.kind),
                tables.string(&period.kind.unit),
            );
            out.message(11, |m| {
                m.int64(1, kind);
                m.int64(2, unit);
            });
            out.int64(12, period.value);
        }
        tables.encode(&mut out);
        out.int64(9, options.time_nanos);
        out.int64(10, options.duration_nanos);
        out.finish()
    }

    /// Writes the gzipped pprof profile to `out`.
    pub fn write_pprof(&self, options: &PprofOptions, out: impl Write) -> io::Result<()> {
        let mut gz = GzEncoder::new(out, Compression::default());
        gz.write_all(&self.pprof_protobuf(options))?;
        gz.finish()?.flush()
    }

    /// The gzipped pprof profile, ready for `go tool pprof`.
    pub fn to_pprof(&self, options: &PprofOptions) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_pprof(options, &mut bytes)
            .expect("writing to a Vec cannot fail");
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_stamps_the_wall_time_and_duration() {
        let at = UNIX_EPOCH + Duration::from_secs(5);
        let options = PprofOptions::cpu(99).taken(at, Duration::from_millis(1500));
        assert_eq!(options.time_nanos, 5_000_000_000);
        assert_eq!(options.duration_nanos, 1_500_000_000);
        assert_eq!(options.period, PprofOptions::cpu(99).period);
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            PprofOptions::off_cpu()
                .taken(before_epoch, Duration::MAX)
                .time_nanos,
            0
        );
        assert_eq!(
            PprofOptions::off_cpu()
                .taken(at, Duration::MAX)
                .duration_nanos,
            i64::MAX
        );
        assert_eq!(
            PprofOptions::off_cpu().sample_type,
            ValueType::new("off-cpu", "microseconds")
        );
    }
}
