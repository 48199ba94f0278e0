//! The equivalent bpftrace script as a peer process: started, waited for until its BEGIN
//! probe has run (so every probe is attached), and stopped with SIGINT.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// runqlat in bpftrace, with the rules of the probe's bpftrace comparison test
/// (coolbpf-probes/tests/runqlat.rs): a woken task, or one switched out still runnable
/// (prev_state 0, or reported preempted: TASK_REPORT_MAX), is queued; a queued task
/// switched in is one latency. As runqlat does by default, latencies go into one log2
/// histogram in microseconds, and every switch is counted.
pub const SCRIPT: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new {
    if (args->pid != 0) { @q[args->pid] = nsecs; }
}
tracepoint:sched:sched_switch {
    @sw = count();
    if (args->prev_pid != 0 && (args->prev_state == 0 || (args->prev_state & 256) != 0)) {
        @q[args->prev_pid] = nsecs;
    }
    $queued = @q[args->next_pid];
    if ($queued != 0) {
        @usecs = hist((nsecs - $queued) / 1000);
        delete(@q[args->next_pid]);
    }
}
END { clear(@q); }
"#;

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
    /// Starts [`SCRIPT`] and waits (up to a minute) until it printed `ready`.
    pub fn start(bpftrace: &Path) -> io::Result<Self> {
        let mut process = Command::new(bpftrace)
            .args(["-B", "line", "-e", SCRIPT])
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

    /// Interrupts it (it prints its maps and exits); returns the switches it counted.
    pub fn stop(mut self) -> io::Result<u64> {
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
        Ok(output
            .iter()
            .find_map(|line| line.strip_prefix("@sw: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
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
