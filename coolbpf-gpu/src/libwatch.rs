//! [`LibraryWatch`]: CUDA and NCCL libraries as processes open them (`opens.bpf.c`), so
//! that a host-wide tracer also follows libraries it did not find at start: a new
//! virtual environment's wheels, a container's CUDA, a program with the runtime linked in
//! statically that opens `/dev/nvidia*`.

use std::path::{Path, PathBuf};

use coolbpf_core::decode::Reader;
use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{ObjectBuilder, Result};
use coolbpf_probes::event_probe::EventProbe;

use crate::library::{self, Library, LibraryKind};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/opens.bpf.o"));

const PROGRAMS: [&str; 3] = ["opens_btf", "opens_raw", "opens_tp"];
const PATH: usize = 8;
const PATH_LEN: usize = 256;

/// A path a process opened, as `opens.bpf.c` sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The process.
    pub pid: u32,
    /// The path as passed to open (relative to its working directory when relative).
    pub path: String,
}

impl Opened {
    fn decode(bytes: &[u8]) -> Result<Self> {
        let r = Reader::new(bytes, PATH + PATH_LEN, "opened path")?;
        Ok(Self {
            pid: r.u32(0)?,
            path: r.c_str(PATH, PATH_LEN)?,
        })
    }

    /// The library this open names, as a path this process can open: a CUDA or NCCL
    /// library file, or for a device node the process's own executable when it has the
    /// CUDA runtime linked in. `None` for anything else (a failed open of a path the
    /// loader only tried, a device opened through a shared libcudart).
    pub fn library(&self) -> Option<Library> {
        let root = PathBuf::from(format!("/proc/{}/root", self.pid));
        if self.path.starts_with("/dev/nvidia") {
            let exe = PathBuf::from(format!("/proc/{}/exe", self.pid));
            return library::defines_symbol(&exe, "cudaLaunchKernel").then_some(Library {
                kind: LibraryKind::Cudart,
                path: exe,
            });
        }
        let path = Path::new(&self.path);
        let kind = LibraryKind::of_file_name(path.file_name()?.to_str()?)?;
        let inside = if path.is_absolute() {
            root.join(path.strip_prefix("/").ok()?)
        } else {
            PathBuf::from(format!("/proc/{}/cwd", self.pid)).join(path)
        };
        library::given(&[inside])
            .ok()?
            .into_iter()
            .next()
            .map(|found| Library { kind, ..found })
    }
}

/// The open watch, attached; dropping it detaches.
pub struct LibraryWatch {
    probe: EventProbe<Opened>,
}

impl LibraryWatch {
    /// Starts watching; each library opened is handed to `found` (on the watch's thread),
    /// once per open: deduplicating is the caller's.
    pub fn start(mut found: impl FnMut(Library) + Send + 'static) -> Result<Self> {
        let object = ObjectBuilder::from_bytes(OBJECT)
            .alternatives(&PROGRAMS)
            .load()?;
        let delivery = Delivery::callback(move |opened: Opened| {
            if let Some(library) = opened.library() {
                found(library);
            }
        });
        let probe = EventProbe::start(object, Opened::decode, delivery, |object| {
            Ok(vec![object.attach_chosen(&PROGRAMS)?])
        })?;
        Ok(Self { probe })
    }

    /// Opens delivered and lost.
    pub fn losses(&self) -> Result<Losses> {
        self.probe.losses()
    }

    /// Detaches, then delivers what is still in the ring buffer.
    pub fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_existing_library_files_count() {
        let me = std::process::id();
        let opened = |path: &str| Opened {
            pid: me,
            path: path.into(),
        };
        assert_eq!(opened("/nonexistent/libcudart.so.12").library(), None);
        assert_eq!(opened("/etc/hostname").library(), None);
        // This test binary opens no device and links no CUDA runtime.
        assert_eq!(opened("/dev/nvidia0").library(), None);
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libnccl.so.2");
        std::fs::copy("/proc/self/exe", &lib).unwrap();
        let found = opened(lib.to_str().unwrap()).library().unwrap();
        assert_eq!(found.kind, LibraryKind::Nccl);
        assert!(
            found.path.starts_with(format!("/proc/{me}/root")),
            "{found:?}"
        );
    }

    #[test]
    fn short_records_are_errors() {
        assert!(Opened::decode(&[0; 12]).is_err());
    }
}
