//! Compile BPF C from build scripts against coolbpf's headers.
//!
//! coolbpf probes are plain BPF C objects compiled by clang and embedded into the Rust
//! crate that loads them. This crate is the build-time half: it finds clang, passes the
//! target architecture and include paths, and reports failures with the compiler's own
//! output and the package that fixes a missing tool or header.
//!
//! ```no_run
//! // In build.rs:
//! coolbpf_build::BpfBuilder::new("src/bpf/hello.bpf.c")
//!     .compile_to_out_dir()
//!     .expect("compile BPF");
//! // In the crate: include_bytes!(concat!(env!("OUT_DIR"), "/hello.bpf.o"))
//! ```
//!
//! Headers available to the BPF source:
//! - `vmlinux.h`: every kernel type, generated from BTF (`scripts/gen-vmlinux.sh`);
//! - `coolbpf/coolbpf.bpf.h`: the loss counters, the tgid filter, task identity and
//!   histogram slot helpers that the userspace core understands;
//! - `bpf/bpf_helpers.h` and friends from the libbpf coolbpf links (through cargo's
//!   `DEP_COOLBPF_INCLUDE`), or from the system (Debian: `libbpf-dev`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why compiling a BPF program failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No clang could be run.
    #[error("clang not found ({clang}): install it (Debian: apt-get install clang) or set CLANG")]
    ClangMissing {
        /// The clang command that was tried.
        clang: String,
    },
    /// libbpf's BPF-side headers are not installed.
    #[error(
        "bpf/bpf_helpers.h not found in {searched}: install libbpf's headers \
         (Debian: apt-get install libbpf-dev) or set COOLBPF_BPF_INCLUDE"
    )]
    LibbpfHeadersMissing {
        /// The include directories that were searched.
        searched: String,
    },
    /// clang ran and rejected the source.
    #[error("clang failed to compile {source_path}:\n{stderr}")]
    Compile {
        /// The BPF source file.
        source_path: PathBuf,
        /// What clang printed.
        stderr: String,
    },
    /// A required environment variable (set by cargo for build scripts) is absent.
    #[error("environment variable {0} is not set (is this running from a build script?)")]
    MissingEnv(&'static str),
    /// The source path has no usable file name.
    #[error("{0}: not a .bpf.c file name")]
    BadSourceName(PathBuf),
    /// The compiler could not be started.
    #[error("running {command}: {source}")]
    Io {
        /// The command that failed.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The directory holding `vmlinux.h` and `coolbpf/coolbpf.bpf.h`.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// Compiles one BPF C source file into a BPF ELF object.
#[derive(Debug, Clone)]
pub struct BpfBuilder {
    source: PathBuf,
    clang: String,
    include_dirs: Vec<PathBuf>,
    defines: Vec<String>,
}

impl BpfBuilder {
    /// A builder for `source`; clang is taken from `$CLANG` or `PATH`.
    ///
    /// libbpf's headers are taken from the libbpf being linked when cargo says where they
    /// are (`DEP_COOLBPF_INCLUDE` in crates depending on coolbpf-core, `DEP_BPF_INCLUDE`
    /// in crates depending on libbpf-sys), else from the system (`libbpf-dev`).
    pub fn new(source: impl Into<PathBuf>) -> Self {
        let mut include_dirs = vec![include_dir()];
        for linked in ["DEP_COOLBPF_INCLUDE", "DEP_BPF_INCLUDE"] {
            if let Some(dir) = env::var_os(linked) {
                include_dirs.push(PathBuf::from(dir));
                break;
            }
        }
        if let Ok(extra) = env::var("COOLBPF_BPF_INCLUDE") {
            include_dirs.extend(env::split_paths(&extra));
        }
        Self {
            source: source.into(),
            clang: env::var("CLANG").unwrap_or_else(|_| "clang".to_owned()),
            include_dirs,
            defines: Vec::new(),
        }
    }

    /// Adds an include directory searched before the system's.
    #[must_use]
    pub fn include(mut self, dir: impl Into<PathBuf>) -> Self {
        self.include_dirs.push(dir.into());
        self
    }

    /// Defines a preprocessor macro (`NAME` or `NAME=VALUE`).
    #[must_use]
    pub fn define(mut self, define: impl Into<String>) -> Self {
        self.defines.push(define.into());
        self
    }

    /// Compiles into `$OUT_DIR/<stem>.bpf.o` (for `foo.bpf.c` the stem is `foo`), prints
    /// the `cargo:rerun-if-changed` lines, and returns the object's path.
    pub fn compile_to_out_dir(&self) -> Result<PathBuf, BuildError> {
        let out_dir = env::var_os("OUT_DIR").ok_or(BuildError::MissingEnv("OUT_DIR"))?;
        let stem = self
            .source
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".bpf.c"))
            .ok_or_else(|| BuildError::BadSourceName(self.source.clone()))?;
        let output = Path::new(&out_dir).join(format!("{stem}.bpf.o"));
        println!("cargo:rerun-if-changed={}", self.source.display());
        println!("cargo:rerun-if-env-changed=CLANG");
        println!("cargo:rerun-if-env-changed=COOLBPF_BPF_INCLUDE");
        for dir in &self.include_dirs {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        self.compile(&output)?;
        Ok(output)
    }

    /// Compiles into `output`.
    pub fn compile(&self, output: &Path) -> Result<(), BuildError> {
        self.check_libbpf_headers()?;
        let mut command = Command::new(&self.clang);
        command
            .args([
                "-g",
                "-O2",
                "-target",
                "bpf",
                "-Wall",
                "-Wno-unused-function",
            ])
            .arg(format!("-D__TARGET_ARCH_{}", target_arch()));
        for dir in &self.include_dirs {
            command.arg("-I").arg(dir);
        }
        // `-target bpf` does not search the multiarch directory where Debian and Ubuntu
        // keep <asm/*.h>, which libbpf's usdt.bpf.h and linux/*.h headers include.
        let multiarch = PathBuf::from(format!("/usr/include/{}-linux-gnu", multiarch_arch()));
        if multiarch.is_dir() {
            command.arg("-idirafter").arg(multiarch);
        }
        for define in &self.defines {
            command.arg(format!("-D{define}"));
        }
        command.arg("-c").arg(&self.source).arg("-o").arg(output);
        let result = command.output().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BuildError::ClangMissing {
                    clang: self.clang.clone(),
                }
            } else {
                BuildError::Io {
                    command: self.clang.clone(),
                    source,
                }
            }
        })?;
        if result.status.success() {
            Ok(())
        } else {
            Err(BuildError::Compile {
                source_path: self.source.clone(),
                stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
            })
        }
    }

    /// Fails early, with the package to install, when libbpf's headers are nowhere.
    fn check_libbpf_headers(&self) -> Result<(), BuildError> {
        let system = [
            PathBuf::from("/usr/include"),
            PathBuf::from("/usr/local/include"),
        ];
        let candidates: Vec<&PathBuf> = self.include_dirs.iter().chain(system.iter()).collect();
        if candidates
            .iter()
            .any(|dir| dir.join("bpf/bpf_helpers.h").is_file())
        {
            return Ok(());
        }
        let searched = candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(BuildError::LibbpfHeadersMissing { searched })
    }
}

/// The architecture part of the Debian multiarch triple for the build target.
fn multiarch_arch() -> String {
    env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| env::consts::ARCH.to_owned())
}

/// The `__TARGET_ARCH_*` name libbpf's bpf_tracing.h expects for the build target.
fn target_arch() -> &'static str {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| env::consts::ARCH.to_owned());
    match arch.as_str() {
        "aarch64" => "arm64",
        "s390x" => "s390",
        "powerpc64" => "powerpc",
        "riscv64" => "riscv",
        "loongarch64" => "loongarch",
        _ => "x86",
    }
}
