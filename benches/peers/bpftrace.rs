//! bpftrace as a peer process for the benchmarks: a script started, waited for until its
//! BEGIN probe has run (so every probe is attached; the script must print `ready` there),
//! and stopped with SIGINT, returning what it printed.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where bpftrace is looked for.
pub fn find() -> Option<PathBuf> {
    ["/usr/bin/bpftrace", "/usr/local/bin/bpftrace"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A running bpftrace whose probes are attached.
pub struct Bpftrace {
    process: Child,
    lines: mpsc::Receiver<String>,
}

impl Bpftrace {
    /// Starts `script` and waits (up to a minute) until it printed `ready`.
    pub fn start(bpftrace: &Path, script: &str) -> io::Result<Self> {
        let mut process = Command::new(bpftrace)
            .args(["-B", "line", "-e", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (sender, lines) = mpsc::channel();
        let stdout = process.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let peer = Self { process, lines };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match peer.lines.recv_timeout(left) {
                Ok(line) if line == "ready" => return Ok(peer),
                Ok(_) => {}
                Err(why) => return Err(peer.fail(&format!("bpftrace not ready: {why}"))),
            }
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Interrupts it (it prints its maps and exits); returns the lines it printed after
    /// `ready`.
    pub fn stop(mut self) -> io::Result<Vec<String>> {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.process.id() as libc::pid_t, libc::SIGINT) };
        let status = self.process.wait()?;
        let output: Vec<String> = self.lines.iter().collect();
        if !status.success() {
            return Err(io::Error::other(format!(
                "bpftrace: {status}: {}",
                output.join("\n")
            )));
        }
        Ok(output)
    }

    fn fail(mut self, what: &str) -> io::Error {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.process.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        io::Error::other(format!("{what}: {stderr}"))
    }
}
