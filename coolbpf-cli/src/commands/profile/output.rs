//! Where `coolbpf profile` writes, and in which format.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use coolbpf_core::{Error, Metric, Record, Result, StackSample};
use coolbpf_probes::profile::ProfileFormat;
use coolbpf_symbolize::profile::{FlameGraphOptions, PprofOptions, SymbolizedProfile};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Folded stacks, one `comm;root;...;leaf count` line per stack.
    Folded,
    /// pprof (gzipped profile.proto) for `go tool pprof`.
    Pprof,
    /// A flame graph SVG.
    Svg,
    /// JSON lines: one `{"kind":"stacks"}` record per stack, then the loss counters.
    Json,
}

/// Everything a profile is written with.
pub struct Rendered<'a> {
    /// The profile.
    pub profile: &'a SymbolizedProfile,
    /// Its stacks as records (for JSON).
    pub records: Vec<StackSample>,
    /// Counters to append to JSON output (losses).
    pub metrics: Vec<Metric>,
    /// pprof's value types and period.
    pub pprof: PprofOptions,
    /// The flame graph's title and unit.
    pub flamegraph: FlameGraphOptions,
}

/// The output file (created before profiling, so a bad path fails at once) or stdout.
pub struct Output {
    path: Option<PathBuf>,
    file: Option<File>,
}

impl Output {
    /// Opens `path`, or takes stdout. Binary pprof is not written to a terminal.
    pub fn open(path: Option<&Path>, format: OutputFormat) -> Result<Self> {
        let Some(path) = path else {
            // SAFETY: isatty only inspects the descriptor number.
            let terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
            if terminal && format == OutputFormat::Pprof {
                return Err(Error::InvalidArgument(
                    "--format pprof is binary: write it with -o FILE or redirect stdout".into(),
                ));
            }
            return Ok(Self {
                path: None,
                file: None,
            });
        };
        let file = File::create(path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            file: Some(file),
        })
    }

    /// Writes `rendered` in `format`.
    pub fn write(self, format: OutputFormat, rendered: &Rendered<'_>) -> Result<()> {
        let target = self
            .path
            .as_ref()
            .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
        let result = if let Some(file) = self.file {
            let mut out = BufWriter::new(file);
            write_format(format, rendered, &mut out).and_then(|()| out.flush())
        } else {
            let mut out = BufWriter::new(io::stdout().lock());
            write_format(format, rendered, &mut out).and_then(|()| out.flush())
        };
        result.map_err(|e| Error::io(format!("write the profile to {target}"), e))
    }
}

fn write_format(
    format: OutputFormat,
    rendered: &Rendered<'_>,
    out: &mut impl Write,
) -> io::Result<()> {
    let file_format = match format {
        OutputFormat::Folded => ProfileFormat::Folded,
        OutputFormat::Pprof => ProfileFormat::Pprof,
        OutputFormat::Svg => ProfileFormat::Svg,
        OutputFormat::Json => {
            let stacks = rendered.records.iter().cloned().map(Record::Stack);
            let metrics = rendered.metrics.iter().cloned().map(Record::Metric);
            for record in stacks.chain(metrics) {
                serde_json::to_writer(&mut *out, &record)?;
                out.write_all(b"\n")?;
            }
            return Ok(());
        }
    };
    file_format.write(rendered.profile, &rendered.pprof, &rendered.flamegraph, out)
}
