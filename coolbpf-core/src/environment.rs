//! Prepares the host for BPF once per process, and explains what it could not do.
//!
//! [`Environment::prepare`] checks privileges, raises `RLIMIT_MEMLOCK` where the kernel
//! still needs it, and mounts tracefs and bpffs when they are absent. Missing privileges
//! and an unusable memlock limit are errors; a filesystem that could not be mounted is
//! only recorded in the [`EnvironmentReport`], because most work does not need it
//! ([`Environment::tracefs`] turns it into an error for the work that does).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sys::caps::{self, CapSet, Capability};
use crate::sys::mount::{self, MountEntry};
use crate::sys::rlimit;

/// Where coolbpf mounts tracefs; libbpf also finds tracefs here.
const TRACEFS_PATH: &str = "/sys/kernel/tracing";
/// Where older systems reach tracefs, through debugfs; libbpf looks here too.
const TRACEFS_DEBUGFS_PATH: &str = "/sys/kernel/debug/tracing";
/// Where BPF objects are pinned by default.
const BPFFS_PATH: &str = "/sys/fs/bpf";

/// Prepares the host for BPF (see the [module docs](self)).
#[derive(Debug, Clone, Copy)]
pub struct Environment;

impl Environment {
    /// Whether process `pid` exists (as seen from this pid namespace's /proc).
    pub fn process_exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Fails with [`Error::NotFound`] (a "process") when process `pid` does not exist: what
    /// every pid filter checks before touching the kernel.
    pub fn require_process(pid: u32) -> Result<()> {
        if Self::process_exists(pid) {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "process",
                name: pid.to_string(),
                known: Vec::new(),
            })
        }
    }

    /// Prepares the host once per process and returns what was found and done.
    ///
    /// Later calls return the same report, or the same error, without redoing anything.
    /// Fails when the process lacks `CAP_BPF` + `CAP_PERFMON` (or `CAP_SYS_ADMIN`), or when
    /// a kernel older than 5.11 needs a higher `RLIMIT_MEMLOCK` that cannot be set.
    pub fn prepare() -> Result<&'static EnvironmentReport> {
        static PREPARED: OnceLock<Result<EnvironmentReport, PrepareError>> = OnceLock::new();
        PREPARED
            .get_or_init(prepare_once)
            .as_ref()
            .map_err(PrepareError::to_error)
    }

    /// The mounted tracefs directory, for work that needs it (classic tracepoints,
    /// reading event formats).
    ///
    /// Runs [`Self::prepare`] first; fails with [`Error::Unsupported`] saying why when
    /// tracefs is neither mounted nor mountable.
    pub fn tracefs() -> Result<PathBuf> {
        let tracefs = &Self::prepare()?.tracefs;
        if tracefs.available {
            Ok(tracefs.path.clone())
        } else {
            Err(Error::Unsupported {
                feature: "tracefs".to_owned(),
                reason: tracefs
                    .error
                    .clone()
                    .unwrap_or_else(|| "not mounted".to_owned()),
            })
        }
    }
}

/// What [`Environment::prepare`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentReport {
    /// The kernel release (`uname -r`).
    pub kernel_release: String,
    /// The BPF-relevant capabilities the process holds, e.g. `CAP_BPF`.
    pub capabilities: Vec<String>,
    /// tracefs, which classic tracepoints need.
    pub tracefs: MountState,
    /// bpffs, which pinning needs.
    pub bpffs: MountState,
    /// How locked memory is accounted.
    pub memlock: Memlock,
}

/// Whether a pseudo filesystem is mounted where coolbpf and libbpf look for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountState {
    /// Where it is mounted, or where mounting it was tried.
    pub path: PathBuf,
    /// Whether it is mounted there now.
    pub available: bool,
    /// Whether this process mounted it (it stays mounted: others may rely on it).
    pub mounted_by_us: bool,
    /// Why it is unavailable, and what that breaks.
    pub error: Option<String>,
}

/// How the kernel accounts the memory of BPF maps and programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Memlock {
    /// `RLIMIT_MEMLOCK` was already unlimited.
    Unlimited,
    /// `RLIMIT_MEMLOCK` was raised to unlimited.
    Raised,
    /// Raising the limit failed, but the kernel (5.11+) charges BPF memory to the memory
    /// cgroup instead, so the limit does not matter.
    MemcgAccounted,
}

impl fmt::Display for Memlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unlimited => "RLIMIT_MEMLOCK already unlimited",
            Self::Raised => "RLIMIT_MEMLOCK raised to unlimited",
            Self::MemcgAccounted => "memcg-accounted, no memlock needed",
        })
    }
}

/// A failure of [`prepare_once`], kept in a clonable form: [`Error`] wraps `io::Error`,
/// which is not `Clone`, yet every caller of [`Environment::prepare`] gets the error.
#[derive(Debug)]
enum PrepareError {
    MissingCapability {
        capability: &'static str,
        hint: String,
    },
    Io {
        context: String,
        errno: Option<i32>,
        kind: io::ErrorKind,
        message: String,
    },
}

impl PrepareError {
    fn io(context: impl Into<String>, err: &io::Error) -> Self {
        Self::Io {
            context: context.into(),
            errno: err.raw_os_error(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    fn to_error(&self) -> Error {
        match self {
            Self::MissingCapability { capability, hint } => Error::MissingCapability {
                capability,
                hint: hint.clone(),
            },
            Self::Io {
                context,
                errno,
                kind,
                message,
            } => {
                let source = match errno {
                    Some(errno) => io::Error::from_raw_os_error(*errno),
                    None => io::Error::new(*kind, message.clone()),
                };
                Error::io(context.clone(), source)
            }
        }
    }
}

fn prepare_once() -> Result<EnvironmentReport, PrepareError> {
    let release_path = "/proc/sys/kernel/osrelease";
    let kernel_release = std::fs::read_to_string(release_path)
        .map_err(|e| PrepareError::io(format!("reading {release_path}"), &e))?
        .trim()
        .to_owned();
    let effective = caps::effective()
        .map_err(|e| PrepareError::io("reading capabilities from /proc/self/status", &e))?;
    check_capabilities(effective, &kernel_release, unprivileged_bpf_disabled())?;
    let memlock = raise_memlock(&kernel_release)?;
    let mounts = mount::mounts()
        .map_err(|e| PrepareError::io("reading the mount table /proc/self/mounts", &e))?;
    Ok(EnvironmentReport {
        capabilities: effective.names().into_iter().map(str::to_owned).collect(),
        tracefs: ensure_mounted(
            &mounts,
            &Pseudo {
                fstype: "tracefs",
                source: "nodev",
                paths: &[TRACEFS_PATH, TRACEFS_DEBUGFS_PATH],
            },
            "classic tracepoints cannot be attached",
        ),
        bpffs: ensure_mounted(
            &mounts,
            &Pseudo {
                fstype: "bpf",
                source: "bpf",
                paths: &[BPFFS_PATH],
            },
            "BPF objects cannot be pinned",
        ),
        memlock,
        kernel_release,
    })
}

/// `(major, minor)` of a kernel release such as `6.18.44-fc-v669`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The value of `kernel.unprivileged_bpf_disabled`, when readable.
fn unprivileged_bpf_disabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Tracing with BPF needs `CAP_BPF` + `CAP_PERFMON` (kernel 5.8+) or `CAP_SYS_ADMIN`.
fn check_capabilities(
    effective: CapSet,
    kernel_release: &str,
    unprivileged_bpf_disabled: Option<u32>,
) -> Result<(), PrepareError> {
    if effective.contains(Capability::SysAdmin)
        || (effective.contains(Capability::Bpf) && effective.contains(Capability::Perfmon))
    {
        return Ok(());
    }
    let has_cap_bpf = kernel_version(kernel_release).is_none_or(|version| version >= (5, 8));
    let (capability, grant) = if !has_cap_bpf {
        (Capability::SysAdmin, "cap_sys_admin")
    } else if effective.contains(Capability::Bpf) {
        (Capability::Perfmon, "cap_bpf,cap_perfmon")
    } else {
        (Capability::Bpf, "cap_bpf,cap_perfmon")
    };
    let needed = if has_cap_bpf {
        "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)".to_owned()
    } else {
        format!("CAP_SYS_ADMIN (kernel {kernel_release} predates CAP_BPF)")
    };
    let held = match effective.names() {
        names if names.is_empty() => "none".to_owned(),
        names => names.join(", "),
    };
    let sysctl = match unprivileged_bpf_disabled {
        Some(value @ 1..) => {
            format!(" (kernel.unprivileged_bpf_disabled={value}: BPF without capabilities is off)")
        }
        _ => String::new(),
    };
    let hint = format!(
        "loading and attaching tracing programs needs {needed}; this process holds {held}. \
         Run as root, or grant them to the binary with `setcap {grant}+ep BINARY`{sysctl}"
    );
    Err(PrepareError::MissingCapability {
        capability: capability.name(),
        hint,
    })
}

/// Raises `RLIMIT_MEMLOCK` to unlimited where that matters (kernels before 5.11).
fn raise_memlock(kernel_release: &str) -> Result<Memlock, PrepareError> {
    let limit = rlimit::memlock().map_err(|e| PrepareError::io("reading RLIMIT_MEMLOCK", &e))?;
    if limit.is_unlimited() {
        return Ok(Memlock::Unlimited);
    }
    let Err(err) = rlimit::set_memlock_unlimited() else {
        return Ok(Memlock::Raised);
    };
    if kernel_version(kernel_release).is_some_and(|version| version >= (5, 11)) {
        return Ok(Memlock::MemcgAccounted);
    }
    let soft = limit
        .soft
        .map_or_else(|| "unlimited".to_owned(), |bytes| format!("{bytes} bytes"));
    let context = format!(
        "kernel {kernel_release} charges BPF memory to RLIMIT_MEMLOCK (now {soft}) and raising \
         it failed: run with CAP_SYS_RESOURCE (e.g. as root) or start coolbpf under \
         `ulimit -l unlimited`"
    );
    if err.raw_os_error() == Some(libc::EPERM) {
        return Err(PrepareError::MissingCapability {
            capability: Capability::SysResource.name(),
            hint: context,
        });
    }
    Err(PrepareError::io(context, &err))
}

/// A pseudo filesystem and where it may be mounted (the first path is where we mount it).
struct Pseudo {
    fstype: &'static str,
    source: &'static str,
    paths: &'static [&'static str],
}

/// Finds `fs` mounted at one of its paths, or mounts it at the first one.
fn ensure_mounted(mounts: &[MountEntry], fs: &Pseudo, consequence: &str) -> MountState {
    let mounted_at = |path: &str| {
        mounts
            .iter()
            .any(|entry| entry.fstype == fs.fstype && entry.target == Path::new(path))
    };
    if let Some(path) = fs.paths.iter().find(|path| mounted_at(path)) {
        return MountState {
            path: PathBuf::from(path),
            available: true,
            mounted_by_us: false,
            error: None,
        };
    }
    let path = PathBuf::from(fs.paths[0]);
    match mount::mount_pseudo(fs.source, &path, fs.fstype) {
        Ok(()) => MountState {
            path,
            available: true,
            mounted_by_us: true,
            error: None,
        },
        Err(err) => {
            let error = format!(
                "{fstype} is not mounted and `mount -t {fstype} {source} {path}` failed: \
                 {err}; {consequence}",
                fstype = fs.fstype,
                source = fs.source,
                path = path.display(),
            );
            MountState {
                path,
                available: false,
                mounted_by_us: false,
                error: Some(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(kernel_version("4.19"), Some((4, 19)));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn capabilities_root_and_cap_bpf_pass() {
        let root = CapSet(0x01ff_feff_ffff);
        assert!(check_capabilities(root, "6.18.44", Some(2)).is_ok());
        let bpf_perfmon = CapSet((1 << 38) | (1 << 39));
        assert!(check_capabilities(bpf_perfmon, "6.18.44", Some(2)).is_ok());
        let sys_admin = CapSet(1 << 21);
        assert!(check_capabilities(sys_admin, "4.19.0", None).is_ok());
    }

    #[test]
    fn missing_capability_names_it_and_the_fix() {
        let error = check_capabilities(CapSet(1 << 39), "6.18.44", Some(2))
            .unwrap_err()
            .to_error();
        let Error::MissingCapability { capability, hint } = &error else {
            panic!("unexpected {error:?}");
        };
        assert_eq!(*capability, "CAP_PERFMON");
        assert!(hint.contains("setcap cap_bpf,cap_perfmon+ep"), "{hint}");
        assert!(hint.contains("holds CAP_BPF"), "{hint}");
        assert!(hint.contains("unprivileged_bpf_disabled=2"), "{hint}");

        let error = check_capabilities(CapSet(0), "6.1.0", Some(0))
            .unwrap_err()
            .to_error();
        assert!(matches!(
            error,
            Error::MissingCapability {
                capability: "CAP_BPF",
                ..
            }
        ));
        assert!(
            !error.to_string().contains("unprivileged_bpf_disabled"),
            "{error}"
        );

        let error = check_capabilities(CapSet(1 << 39), "5.4.0", None)
            .unwrap_err()
            .to_error();
        assert!(matches!(
            error,
            Error::MissingCapability {
                capability: "CAP_SYS_ADMIN",
                ..
            }
        ));
        assert!(error.to_string().contains("predates CAP_BPF"), "{error}");
    }

    #[test]
    fn found_mounts_are_reused_not_remounted() {
        let mounts = mount::parse_mounts(
            "debugfs /sys/kernel/debug debugfs rw 0 0\n\
             tracefs /sys/kernel/debug/tracing tracefs rw 0 0\n",
        );
        let tracefs = Pseudo {
            fstype: "tracefs",
            source: "nodev",
            paths: &[TRACEFS_PATH, TRACEFS_DEBUGFS_PATH],
        };
        let state = ensure_mounted(&mounts, &tracefs, "unused");
        assert_eq!(state.path, Path::new(TRACEFS_DEBUGFS_PATH));
        assert!(state.available && !state.mounted_by_us && state.error.is_none());
    }

    #[test]
    fn cached_errors_come_back_identical() {
        let cached = PrepareError::io("reading x", &io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(cached.to_error().to_string(), cached.to_error().to_string());
        assert_eq!(cached.to_error().errno(), Some(libc::EACCES));
    }
}
