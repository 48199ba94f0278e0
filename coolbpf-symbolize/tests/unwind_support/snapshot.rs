//! A process blocked in a system call, as a core-like snapshot: its pc and sp from
//! `/proc/PID/syscall`, its memory through `/proc/PID/mem`; and gdb's backtrace of it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child started with its stdin a pipe nobody writes to: it blocks on its first read.
pub struct Blocked {
    pub child: Child,
}

impl Blocked {
    pub fn start(binary: &Path) -> Self {
        let child = Command::new(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the program");
        Self { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the process sits in read(2) (syscall 0) and returns its (sp, pc).
    pub fn wait_in_read(&self) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(format!("/proc/{}/syscall", self.pid()))
                .expect("read /proc/PID/syscall");
            let fields: Vec<&str> = text.split_whitespace().collect();
            // "NR ARG1 .. ARG6 SP PC" while blocked in a syscall.
            if fields.len() == 9 && fields[0] == "0" {
                let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
                return (hex(fields[7]), hex(fields[8]));
            }
            assert!(Instant::now() < deadline, "never blocked in read: {text}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the process (ptrace), takes its user registers (ip, sp, bp), and lets it go:
    /// `/proc/PID/syscall` gives sp and pc but no rbp, which an rbp-based CFA needs.
    pub fn registers(&self) -> (u64, u64, u64) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: plain ptrace calls on our own child; `regs` is a properly sized,
        // writable user_regs_struct for PTRACE_GETREGS.
        unsafe {
            assert_eq!(libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0), 0, "attach");
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &raw mut status, 0), pid);
            let mut regs: libc::user_regs_struct = std::mem::zeroed();
            let got = libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &raw mut regs);
            assert_eq!(libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0), 0, "detach");
            assert_eq!(got, 0, "getregs");
            (regs.rip, regs.rsp, regs.rbp)
        }
    }

    /// A reader of 8 bytes of its memory.
    pub fn memory(&self) -> impl FnMut(u64) -> Option<u64> {
        let mem = File::open(format!("/proc/{}/mem", self.pid())).expect("open /proc/PID/mem");
        move |addr| {
            let mut word = [0; 8];
            mem.read_exact_at(&mut word, addr).ok()?;
            Some(u64::from_ne_bytes(word))
        }
    }

    /// gdb's backtrace: each frame's pc (the pc, then return addresses) and function.
    pub fn gdb_backtrace(&self) -> Vec<(u64, String)> {
        let output = Command::new("gdb")
            .args(["-nx", "-batch", "-p", &self.pid().to_string()])
            .args(["-ex", "set backtrace past-main on", "-ex", "bt"])
            .output()
            .expect("run gdb");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut frames = Vec::new();
        for line in text.lines().filter(|l| l.starts_with('#')) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "#0  0x00007f.. in __GI___libc_read (fd=0, ...) at ..." ; frame 0 may omit
            // the address when it is at a line's start: "#1  main () at x.c:3".
            let (pc, name) = match fields.get(1) {
                Some(addr) if addr.starts_with("0x") => (
                    u64::from_str_radix(&addr[2..], 16).unwrap(),
                    fields.get(3).copied().unwrap_or("?"),
                ),
                _ => (0, fields.get(1).copied().unwrap_or("?")),
            };
            frames.push((pc, name.to_owned()));
        }
        frames
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
