//! Attach targets as data, and the RAII [`Attachment`] each one yields.
//!
//! An [`AttachTarget`] says where a program goes; [`crate::BpfObject::attach`] turns it
//! into kernel links that the object owns. Targets also parse from a compact text form
//! (the same one the CLI and the bindings accept):
//!
//! | text | target |
//! |---|---|
//! | `tracepoint:sched:sched_switch` | classic tracepoint (perf event + BPF) |
//! | `raw_tp:sched_switch` | raw tracepoint |
//! | `section` | wherever the program's `SEC()` says (tp_btf, fentry, ...) |
//! | `perf_event:cpu-clock:99hz` / `perf_event:cycles:100000` | sampling on every online CPU |
//! | `uprobe:/usr/bin/bash:readline` / `uretprobe:libc.so.6:malloc` | user function entry/return |
//! | `uprobe:malloc@libc` | symbol in a library found on the standard library paths |
//! | `uprobe:/bin/x:0x1234` | a file offset |
//! | `usdt:/path/to/bin:provider:name` | a USDT probe point |
//! | `kprobe:vfs_read` / `kretprobe:vfs_read` | kernel function (where kprobes exist) |

use std::fmt;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libbpf_rs::{Link, ProgramMut, TracepointCategory, UprobeOpts};

use crate::error::{Error, Result};
use crate::sys::perf_event::{self, PerfEventKind, Sampling};

/// What a perf event counts or samples on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfEventScope {
    /// Every online CPU, all tasks.
    AllCpus,
    /// One process (its threads, on any CPU).
    Pid(i32),
}

/// A sampling perf event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfEventConfig {
    /// The event (software cpu-clock, hardware cycles...).
    pub kind: PerfEventKind,
    /// How often it fires.
    pub sampling: Sampling,
    /// Which CPUs or task.
    pub scope: PerfEventScope,
}

/// Where a BPF program is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachTarget {
    /// Where the program's `SEC()` name says (required for tp_btf, fentry/fexit, lsm).
    FromSection,
    /// A classic tracepoint, e.g. `sched`/`sched_switch`.
    Tracepoint {
        /// Tracepoint category (directory under tracefs `events/`).
        category: String,
        /// Tracepoint name.
        name: String,
    },
    /// A raw tracepoint, e.g. `sched_switch`.
    RawTracepoint {
        /// Raw tracepoint name.
        name: String,
    },
    /// A sampling perf event, one per CPU (or one for a pid).
    PerfEvent(PerfEventConfig),
    /// A uprobe or uretprobe.
    Uprobe {
        /// The ELF file (executable or library). Relative library names (`libc.so.6`)
        /// are searched on the standard library paths.
        binary: PathBuf,
        /// Function symbol; `None` means `offset` is a file offset.
        symbol: Option<String>,
        /// Offset within the symbol, or the file offset when `symbol` is `None`.
        offset: usize,
        /// Only this process (`None`: every process mapping the file).
        pid: Option<i32>,
        /// Fire on return instead of entry.
        retprobe: bool,
        /// The value `bpf_get_attach_cookie()` returns in the program (kernels since
        /// 5.15), so that one program can serve many functions and tell them apart.
        cookie: u64,
    },
    /// A USDT probe point.
    Usdt {
        /// The ELF file holding the `.note.stapsdt` entry.
        binary: PathBuf,
        /// USDT provider.
        provider: String,
        /// USDT probe name.
        name: String,
        /// Only this process (`None`: all).
        pid: Option<i32>,
    },
    /// A kprobe or kretprobe (kernels built with `CONFIG_KPROBES`).
    Kprobe {
        /// Kernel function name.
        function: String,
        /// Fire on return instead of entry.
        retprobe: bool,
    },
}

impl AttachTarget {
    /// A classic tracepoint.
    pub fn tracepoint(category: &str, name: &str) -> Self {
        Self::Tracepoint {
            category: category.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A raw tracepoint.
    pub fn raw_tracepoint(name: &str) -> Self {
        Self::RawTracepoint {
            name: name.to_owned(),
        }
    }

    /// A uprobe on `symbol` in `binary`, for all processes.
    pub fn uprobe(binary: impl Into<PathBuf>, symbol: &str) -> Self {
        Self::Uprobe {
            binary: binary.into(),
            symbol: Some(symbol.to_owned()),
            offset: 0,
            pid: None,
            retprobe: false,
            cookie: 0,
        }
    }

    /// Attaches `program` here, returning the kernel links created.
    pub(crate) fn attach(&self, program: &ProgramMut<'_>) -> Result<Vec<Attachment>> {
        let context = || {
            format!(
                "cannot attach {} to {self}",
                program.name().to_string_lossy()
            )
        };
        let wrap = |result: libbpf_rs::Result<Link>| {
            result
                .map(|link| vec![Attachment::new(link, self)])
                .map_err(|e| Error::bpf(context(), e))
        };
        match self {
            Self::FromSection => wrap(program.attach()),
            Self::Tracepoint { category, name } => {
                crate::environment::Environment::prepare()?;
                wrap(program.attach_tracepoint(TracepointCategory::Custom(category.clone()), name))
            }
            Self::RawTracepoint { name } => wrap(program.attach_raw_tracepoint(name)),
            Self::PerfEvent(config) => attach_perf_event(program, config, self),
            Self::Uprobe {
                binary,
                symbol,
                offset,
                pid,
                retprobe,
                cookie,
            } => {
                let binary = resolve_library(binary)?;
                let opts = UprobeOpts {
                    retprobe: *retprobe,
                    cookie: *cookie,
                    func_name: symbol.clone(),
                    ..Default::default()
                };
                wrap(program.attach_uprobe_with_opts(pid.unwrap_or(-1), binary, *offset, opts))
            }
            Self::Usdt {
                binary,
                provider,
                name,
                pid,
            } => {
                let binary = resolve_library(binary)?;
                wrap(program.attach_usdt(pid.unwrap_or(-1), binary, provider, name))
            }
            Self::Kprobe { function, retprobe } => wrap(program.attach_kprobe(*retprobe, function)),
        }
    }
}

fn attach_perf_event(
    program: &ProgramMut<'_>,
    config: &PerfEventConfig,
    target: &AttachTarget,
) -> Result<Vec<Attachment>> {
    let placements: Vec<(i32, i32)> = match config.scope {
        PerfEventScope::AllCpus => perf_event::online_cpus()?
            .into_iter()
            .map(|cpu| (-1, cpu as i32))
            .collect(),
        PerfEventScope::Pid(pid) => vec![(pid, -1)],
    };
    let mut attachments = Vec::with_capacity(placements.len());
    for (pid, cpu) in placements {
        let fd = perf_event::open_sampling(config.kind, config.sampling, pid, cpu)?;
        // libbpf's perf link takes ownership of the event fd and closes it on detach;
        // until the attach succeeds the fd is still ours and is closed by `fd`'s drop.
        let link = program.attach_perf_event(fd.as_raw_fd()).map_err(|e| {
            Error::bpf(
                format!(
                    "cannot attach {} to {target} (cpu {cpu})",
                    program.name().to_string_lossy()
                ),
                e,
            )
        })?;
        let _owned_by_link = fd.into_raw_fd();
        attachments.push(Attachment::new(link, target));
    }
    Ok(attachments)
}

/// Standard places a bare library name (`libc.so.6`, `libc`) is looked up.
const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// Resolves a bare library name to a path: `libc.so.6` as is, `libc` or `c` to the first
/// `libc.so*` found. Paths with a `/` are used as given. Only ELF files qualify: `libc.so`
/// itself is often a GNU ld linker script (text), which cannot be probed.
fn resolve_library(binary: &Path) -> Result<PathBuf> {
    let text = binary.to_string_lossy();
    if text.contains('/') {
        return Ok(binary.to_path_buf());
    }
    let stem = if text.starts_with("lib") {
        text.to_string()
    } else {
        format!("lib{text}")
    };
    let prefix = format!("{stem}.so");
    for dir in LIBRARY_DIRS {
        let exact = Path::new(dir).join(text.as_ref());
        if is_elf(&exact) {
            return Ok(exact);
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut matches: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .filter(|p| is_elf(p))
            .collect();
        matches.sort();
        if let Some(first) = matches.into_iter().next() {
            return Ok(first);
        }
    }
    Err(Error::NotFound {
        what: "library",
        name: text.into_owned(),
        known: Vec::new(),
    })
}

/// Whether `path` is a regular file starting with the ELF magic.
fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

impl fmt::Display for AttachTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromSection => f.write_str("section"),
            Self::Tracepoint { category, name } => write!(f, "tracepoint:{category}:{name}"),
            Self::RawTracepoint { name } => write!(f, "raw_tp:{name}"),
            Self::PerfEvent(c) => write!(f, "perf_event:{}:{}", c.kind, c.sampling),
            Self::Uprobe {
                binary,
                symbol,
                offset,
                retprobe,
                ..
            } => {
                let kind = if *retprobe { "uretprobe" } else { "uprobe" };
                match symbol {
                    Some(symbol) if *offset == 0 => {
                        write!(f, "{kind}:{}:{symbol}", binary.display())
                    }
                    Some(symbol) => write!(f, "{kind}:{}:{symbol}+{offset:#x}", binary.display()),
                    None => write!(f, "{kind}:{}:{offset:#x}", binary.display()),
                }
            }
            Self::Usdt {
                binary,
                provider,
                name,
                ..
            } => {
                write!(f, "usdt:{}:{provider}:{name}", binary.display())
            }
            Self::Kprobe { function, retprobe } => {
                write!(
                    f,
                    "{}:{function}",
                    if *retprobe { "kretprobe" } else { "kprobe" }
                )
            }
        }
    }
}

impl FromStr for AttachTarget {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidArgument(format!("attach target {text:?}: {why}"));
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        match kind {
            "section" if rest.is_empty() => Ok(Self::FromSection),
            "tracepoint" | "tp" => {
                let (category, name) = rest.split_once(':').ok_or_else(|| bad("expected tracepoint:CATEGORY:NAME"))?;
                Ok(Self::tracepoint(category, name))
            }
            "raw_tp" | "raw_tracepoint" if !rest.is_empty() => Ok(Self::raw_tracepoint(rest)),
            "perf_event" => {
                let (event, rate) = rest.split_once(':').ok_or_else(|| bad("expected perf_event:EVENT:RATE (e.g. cpu-clock:99hz)"))?;
                Ok(Self::PerfEvent(PerfEventConfig {
                    kind: event.parse()?,
                    sampling: rate.parse()?,
                    scope: PerfEventScope::AllCpus,
                }))
            }
            "uprobe" | "uretprobe" => parse_uprobe(rest, kind == "uretprobe").ok_or_else(|| {
                bad("expected uprobe:BINARY:SYMBOL, uprobe:BINARY:0xOFFSET or uprobe:SYMBOL@LIBRARY")
            }),
            "usdt" => {
                let mut parts = rest.rsplitn(3, ':');
                let (name, provider, binary) = (parts.next(), parts.next(), parts.next());
                match (binary, provider, name) {
                    (Some(binary), Some(provider), Some(name)) if !binary.is_empty() => Ok(Self::Usdt {
                        binary: binary.into(),
                        provider: provider.to_owned(),
                        name: name.to_owned(),
                        pid: None,
                    }),
                    _ => Err(bad("expected usdt:BINARY:PROVIDER:NAME")),
                }
            }
            "kprobe" | "kretprobe" if !rest.is_empty() => {
                Ok(Self::Kprobe { function: rest.to_owned(), retprobe: kind == "kretprobe" })
            }
            _ => Err(bad(
                "unknown kind; expected one of section, tracepoint, raw_tp, perf_event, uprobe, uretprobe, usdt, kprobe, kretprobe",
            )),
        }
    }
}

fn parse_uprobe(rest: &str, retprobe: bool) -> Option<AttachTarget> {
    let (binary, location) = match rest.rsplit_once(':') {
        Some((binary, location)) if !binary.is_empty() => (PathBuf::from(binary), location),
        _ => {
            // SYMBOL@LIBRARY
            let (symbol, library) = rest.split_once('@')?;
            (PathBuf::from(library), symbol)
        }
    };
    if location.is_empty() {
        return None;
    }
    let (symbol, offset) = match location.strip_prefix("0x") {
        Some(hex) => (None, usize::from_str_radix(hex, 16).ok()?),
        None => match location.split_once('+') {
            Some((symbol, off)) => {
                let off = off
                    .strip_prefix("0x")
                    .map_or_else(|| off.parse().ok(), |h| usize::from_str_radix(h, 16).ok())?;
                (Some(symbol.to_owned()), off)
            }
            None => (Some(location.to_owned()), 0),
        },
    };
    Some(AttachTarget::Uprobe {
        binary,
        symbol,
        offset,
        pid: None,
        retprobe,
        cookie: 0,
    })
}

/// One live kernel attachment. Dropping it detaches the program.
#[derive(Debug)]
pub struct Attachment {
    link: Link,
    target: String,
}

impl Attachment {
    fn new(link: Link, target: &AttachTarget) -> Self {
        Self {
            link,
            target: target.to_string(),
        }
    }

    /// The target, in text form.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The underlying libbpf link.
    pub fn link(&self) -> &Link {
        &self.link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for text in [
            "tracepoint:sched:sched_switch",
            "raw_tp:sys_enter",
            "section",
            "uprobe:/usr/bin/bash:readline",
            "uretprobe:/lib/libc.so.6:malloc",
            "uprobe:/bin/x:0x1234",
            "uprobe:/bin/x:main+0x10",
            "usdt:/usr/bin/python3:python:function__entry",
            "kprobe:vfs_read",
            "kretprobe:vfs_read",
            "perf_event:cpu-clock:99hz",
        ] {
            let target: AttachTarget = text.parse().unwrap();
            assert_eq!(target.to_string(), text);
        }
    }

    #[test]
    fn symbol_at_library_form() {
        let target: AttachTarget = "uprobe:malloc@libc".parse().unwrap();
        let AttachTarget::Uprobe { binary, symbol, .. } = target else {
            panic!("not a uprobe")
        };
        assert_eq!(binary, PathBuf::from("libc"));
        assert_eq!(symbol.as_deref(), Some("malloc"));
    }

    #[test]
    fn bad_forms_are_errors() {
        for text in [
            "",
            "tracepoint:nocolon",
            "bogus:x",
            "uprobe:",
            "usdt:a:b",
            "perf_event:cpu-clock",
        ] {
            let err = text.parse::<AttachTarget>().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{text}");
        }
    }

    #[test]
    fn libc_resolves_on_this_system() {
        if Path::new("/lib/x86_64-linux-gnu/libc.so.6").exists() {
            let path = resolve_library(Path::new("libc")).unwrap();
            assert!(
                path.to_string_lossy().contains("libc.so"),
                "{}",
                path.display()
            );
        }
        assert!(resolve_library(Path::new("surely-no-such-lib")).is_err());
    }
}
