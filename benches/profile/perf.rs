//! The peer: `perf record -F 99 -a -g`, started disabled and enabled through its control
//! FIFO, so the workload starts only once perf is sampling.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{reap, Usage};

/// `perf` on PATH.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("perf"))
        .find(|p| p.is_file())
}

fn mkfifo(path: &Path) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: c_path is NUL-terminated and lives across the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A running `perf record`.
pub struct PerfRecord {
    child: Child,
    started: Instant,
    data: PathBuf,
}

impl PerfRecord {
    /// Starts `perf record -F FREQ -a --call-graph CALL_GRAPH -e EVENT` (`fp`, what `-g`
    /// means, or `dwarf`: 8 KiB of stack copied per sample, unwound at report time) into
    /// `dir/perf.data` and returns once perf has acknowledged enabling its events.
    pub fn start(
        perf: &Path,
        dir: &Path,
        event: &str,
        frequency: u64,
        call_graph: &str,
    ) -> io::Result<Self> {
        let (ctl, ack) = (dir.join("perf.ctl"), dir.join("perf.ack"));
        mkfifo(&ctl)?;
        mkfifo(&ack)?;
        let data = dir.join("perf.data");
        let control = format!("fifo:{},{}", ctl.display(), ack.display());
        let started = Instant::now();
        let mut child = Command::new(perf)
            .args([
                "record",
                "-F",
                &frequency.to_string(),
                "-a",
                "--call-graph",
                call_graph,
                "-e",
                event,
            ])
            .args(["-D", "-1", "--control", &control, "-o"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Opening the FIFO without blocking fails until perf has opened its end; perf may
        // also have died, which must not hang the benchmark.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ctl_file = loop {
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&ctl)
            {
                Ok(file) => break file,
                Err(_) if Instant::now() < deadline && child.try_wait()?.is_none() => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => {
                    let _ = child.kill();
                    return Err(err);
                }
            }
        };
        ctl_file.write_all(b"enable\n")?;
        let mut ack_file = File::open(&ack)?;
        let mut reply = [0u8; 4];
        ack_file.read_exact(&mut reply)?;
        Ok(Self {
            child,
            started,
            data,
        })
    }

    /// Stops perf (SIGINT, as Ctrl-C) and returns what it cost.
    pub fn stop(self) -> io::Result<(Usage, PathBuf)> {
        // SAFETY: kill has no memory arguments; the pid is our own child's.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        Ok((reap(&self.child, self.started)?, self.data))
    }
}

/// `perf report --stdio` of `data` (perf's symbolization), with what it cost.
pub fn report(perf: &Path, data: &Path) -> io::Result<Usage> {
    let started = Instant::now();
    let child = Command::new(perf)
        .args(["report", "--stdio", "--no-children", "-i"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    reap(&child, started)
}
