//! [`ProfileFileSink`]: one profile file per interval, from any probe's stack records.

use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use coolbpf_core::{Error, Record, Result, Sink, StackSample};
use coolbpf_symbolize::profile::{FlameGraphOptions, PprofOptions, SymbolizedProfile};

use crate::stacks::profile_from_records;

/// A profile file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFormat {
    /// Folded stacks (`comm;root;...;leaf count` lines), as flamegraph.pl and speedscope
    /// read them.
    Folded,
    /// pprof: gzipped profile.proto, as `go tool pprof` reads it.
    Pprof,
    /// A flame graph SVG.
    Svg,
}

impl ProfileFormat {
    /// The file extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Folded => "folded",
            Self::Pprof => "pb.gz",
            Self::Svg => "svg",
        }
    }

    /// Writes `profile` in this format. An empty profile gives an empty folded file, an
    /// empty pprof profile, and inferno's "no samples" SVG.
    pub fn write(
        self,
        profile: &SymbolizedProfile,
        pprof: &PprofOptions,
        flamegraph: &FlameGraphOptions,
        out: impl Write,
    ) -> io::Result<()> {
        match self {
            Self::Folded => profile.write_folded(out),
            Self::Pprof => profile.write_pprof(pprof, out),
            Self::Svg => match profile.write_flamegraph(flamegraph, out) {
                // inferno has written an SVG saying there were no samples: a valid file
                // for an interval in which nothing ran.
                Err(err)
                    if err.kind() == io::ErrorKind::InvalidData && profile.total_weight() == 0 =>
                {
                    Ok(())
                }
                other => other,
            },
        }
    }
}

impl fmt::Display for ProfileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Folded => "folded",
            Self::Pprof => "pprof",
            Self::Svg => "svg",
        })
    }
}

impl FromStr for ProfileFormat {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "folded" => Ok(Self::Folded),
            "pprof" => Ok(Self::Pprof),
            "svg" => Ok(Self::Svg),
            _ => Err(Error::InvalidArgument(format!(
                "profile format {text:?}: expected folded, pprof or svg"
            ))),
        }
    }
}

/// Writes the stack records of each collected batch to a file of its own in `dir`:
/// `PROBE-SEQ-UNIXSECONDS.EXT` (e.g. `profile-00003-1764031500.svg`).
///
/// The runtime flushes sinks after every collected batch, and a stack probe's batch is
/// one interval's profile, so this makes one file per interval. Records other than
/// stacks are ignored; a batch without stacks writes no file. Files are written under a
/// temporary name and renamed, so a reader never sees half a profile.
///
/// ```no_run
/// use coolbpf_core::Runtime;
/// use coolbpf_probes::profile::{ProfileConfig, ProfileFileSink, ProfileFormat, ProfilePlugin};
///
/// # fn main() -> coolbpf_core::Result<()> {
/// let sink = ProfileFileSink::new("/var/tmp/profiles", ProfileFormat::Svg)?;
/// let mut runtime = Runtime::builder().sink(Box::new(sink)).build()?;
/// runtime.add(Box::new(ProfilePlugin::new(ProfileConfig::default())))?;
/// runtime.start_all()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ProfileFileSink {
    dir: PathBuf,
    format: ProfileFormat,
    pprof: PprofOptions,
    flamegraph: FlameGraphOptions,
    probe: Option<String>,
    pending: Vec<StackSample>,
    sequence: u64,
    written: Vec<PathBuf>,
}

impl ProfileFileSink {
    /// Writes `format` files into `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>, format: ProfileFormat) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        Ok(Self {
            dir,
            format,
            pprof: PprofOptions::default(),
            flamegraph: FlameGraphOptions::default(),
            probe: None,
            pending: Vec::new(),
            sequence: 0,
            written: Vec::new(),
        })
    }

    /// How pprof files describe their values (e.g. `PprofOptions::cpu(99)` for an on-CPU
    /// profile at 99 Hz); the time and duration fields are filled in per file.
    #[must_use]
    pub fn pprof_options(mut self, options: PprofOptions) -> Self {
        self.pprof = options;
        self
    }

    /// How flame graphs are titled.
    #[must_use]
    pub fn flamegraph_options(mut self, options: FlameGraphOptions) -> Self {
        self.flamegraph = options;
        self
    }

    /// Keeps only the stacks of probe `probe` (when several stack probes share a runtime).
    #[must_use]
    pub fn only_probe(mut self, probe: &str) -> Self {
        self.probe = Some(probe.to_owned());
        self
    }

    /// The files written so far, oldest first.
    pub fn written(&self) -> &[PathBuf] {
        &self.written
    }

    fn write_pending(&mut self) -> Result<()> {
        let records = std::mem::take(&mut self.pending);
        let probe = records.first().map_or("stacks", |r| r.probe.as_str());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{}-{:05}-{}.{}",
            file_safe(probe),
            self.sequence,
            now.as_secs(),
            self.format.extension()
        );
        self.sequence += 1;
        let path = self.dir.join(name);
        let profile = profile_from_records(&records);
        let pprof = PprofOptions {
            time_nanos: i64::try_from(now.as_nanos()).unwrap_or(i64::MAX),
            ..self.pprof.clone()
        };
        write_atomically(&path, |out| {
            self.format.write(&profile, &pprof, &self.flamegraph, out)
        })?;
        self.written.push(path);
        Ok(())
    }
}

impl Sink for ProfileFileSink {
    fn write(&mut self, record: &Record) -> Result<()> {
        if let Record::Stack(stack) = record {
            if self.probe.as_deref().is_none_or(|p| p == stack.probe) {
                self.pending.push(stack.clone());
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.write_pending()
    }
}

/// A probe name as a file name part: anything but `[A-Za-z0-9_-]` becomes `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `path` through a temporary file in the same directory, renamed into place.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<fs::File>) -> io::Result<()>,
) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let result = fs::File::create(&temporary).and_then(|file| {
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        fs::rename(&temporary, path)
    });
    result.map_err(|e| {
        // Best effort: a leftover temporary file is only clutter.
        let _ = fs::remove_file(&temporary);
        Error::io(format!("write {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(probe: &str, frames: &[&str], weight: u64) -> Record {
        Record::Stack(StackSample {
            probe: probe.into(),
            pid: 1,
            tid: 1,
            comm: "burn".into(),
            kernel_ips: vec![],
            user_ips: vec![],
            frames: frames.iter().map(|&f| f.to_owned()).collect(),
            weight,
            ts_ns: 0,
        })
    }

    fn metric() -> Record {
        coolbpf_core::Metric::counter("profile", "samples_total", coolbpf_core::labels! {}, 1)
            .into()
    }

    #[test]
    fn one_file_per_flushed_batch_with_stacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ProfileFileSink::new(dir.path(), ProfileFormat::Folded).unwrap();
        sink.write(&stack("profile", &["main", "spin"], 3)).unwrap();
        sink.write(&stack("profile", &["main", "spin"], 2)).unwrap();
        sink.write(&metric()).unwrap();
        sink.flush().unwrap();
        sink.write(&metric()).unwrap();
        sink.flush().unwrap();
        sink.write(&stack("profile", &["main", "other"], 1))
            .unwrap();
        sink.flush().unwrap();
        let written = sink.written().to_vec();
        assert_eq!(written.len(), 2);
        assert_eq!(
            fs::read_to_string(&written[0]).unwrap(),
            "burn;main;spin 5\n"
        );
        assert_eq!(
            fs::read_to_string(&written[1]).unwrap(),
            "burn;main;other 1\n"
        );
        let name = written[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("profile-00000-") && name.ends_with(".folded"),
            "{name}"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary files left"
        );
    }

    #[test]
    fn svg_and_pprof_files_are_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        for format in [ProfileFormat::Svg, ProfileFormat::Pprof] {
            let mut sink = ProfileFileSink::new(dir.path(), format)
                .unwrap()
                .only_probe("profile");
            sink.write(&stack("offcpu", &["main", "sleep"], 9)).unwrap();
            sink.flush().unwrap();
            assert!(
                sink.written().is_empty(),
                "other probes' stacks are ignored"
            );
            sink.write(&stack("profile", &["main", "spin"], 3)).unwrap();
            sink.flush().unwrap();
            let bytes = fs::read(&sink.written()[0]).unwrap();
            match format {
                ProfileFormat::Svg => assert!(String::from_utf8_lossy(&bytes).contains("spin")),
                _ => assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip"),
            }
        }
    }

    #[test]
    fn formats_parse_and_bad_dirs_are_errors() {
        assert_eq!("svg".parse::<ProfileFormat>().unwrap(), ProfileFormat::Svg);
        assert_eq!(ProfileFormat::Pprof.to_string(), "pprof");
        assert!("json".parse::<ProfileFormat>().is_err());
        let err = ProfileFileSink::new("/proc/self/status/x", ProfileFormat::Folded).unwrap_err();
        assert!(err.to_string().contains("/proc/self/status/x"), "{err}");
        assert_eq!(file_safe("a/b c"), "a_b_c");
    }
}
