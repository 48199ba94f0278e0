//! `hello_ringbuf`: load your own BPF C program and read its ring buffer.
//!
//! `examples/bpf/hello.bpf.c` is compiled by the facade crate's `build.rs` (with
//! `coolbpf_build::BpfBuilder`) into `$OUT_DIR/hello.bpf.o`, embedded here with
//! `include_bytes!`, loaded with [`ObjectBuilder`], attached to the
//! `sched:sched_process_exec` tracepoint, and its ring buffer is read by a
//! [`EventStream`] on a framework thread. The example runs `/bin/true` twice itself so
//! that there is something to see, prints every exec on the machine for a few seconds,
//! and ends with the loss counters: every event the program produced was either printed
//! or is counted there.
//!
//! Loading BPF needs root (`CAP_BPF` and `CAP_PERFMON`):
//!
//! ```text
//! sudo cargo run --example hello_ringbuf          # trace for 5 seconds
//! sudo cargo run --example hello_ringbuf -- 10    # trace for 10 seconds
//! ```
//!
//! `tests/examples.rs` runs this file's [`ExecTracer`] to check that it sees an exec.

use std::error::Error;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use coolbpf::decode::Reader;
use coolbpf::stream::{Delivery, EventStream, Losses};
use coolbpf::{AttachTarget, BpfObject, Environment, ObjectBuilder};
use crossbeam_channel::Receiver;

/// The compiled `hello.bpf.c`.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello.bpf.o"));

/// How long to trace when no argument is given.
const DEFAULT_SECONDS: u64 = 5;
/// Events the channel holds before the stream counts overflow (the printer keeps up).
const CHANNEL_CAPACITY: usize = 1024;

// Offsets in `struct hello_event` (hello.bpf.c).
const PID: usize = 0;
const PPID: usize = 4;
const COMM: usize = 8;
const COMM_LEN: usize = 16;
const FILENAME: usize = COMM + COMM_LEN;
const FILENAME_LEN: usize = 256;
const EVENT_SIZE: usize = FILENAME + FILENAME_LEN;

/// One successful exec, as `hello.bpf.c` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// The process id (tgid); an exec keeps the pid of the process that called it.
    pub pid: u32,
    /// The parent's process id.
    pub ppid: u32,
    /// The new program's task name.
    pub comm: String,
    /// The path given to `execve`.
    pub filename: String,
}

impl Exec {
    /// Decodes one ring buffer payload; a short payload is an error, not a panic.
    pub fn decode(payload: &[u8]) -> coolbpf::Result<Self> {
        let event = Reader::new(payload, EVENT_SIZE, "hello event")?;
        Ok(Self {
            pid: event.u32(PID)?,
            ppid: event.u32(PPID)?,
            comm: event.c_str(COMM, COMM_LEN)?,
            filename: event.c_str(FILENAME, FILENAME_LEN)?,
        })
    }
}

/// `hello.bpf.c` loaded, attached, and its ring buffer consumed into a channel.
pub struct ExecTracer {
    // Field order is drop order: the stream drains and stops before the object unloads.
    stream: EventStream<Exec>,
    object: BpfObject,
    events: Receiver<Exec>,
}

impl ExecTracer {
    /// Prepares the host, loads the program and starts tracing every exec.
    pub fn start() -> coolbpf::Result<Self> {
        // Fails with the missing capability named, rather than a bare EPERM from the load.
        Environment::prepare()?;
        let mut object = ObjectBuilder::from_bytes(OBJECT).load()?;
        let stream = EventStream::ring_buffer(
            &object,
            "events",
            Exec::decode,
            Delivery::channel(CHANNEL_CAPACITY),
        )?;
        // Attached after the stream exists, so that no event waits for a reader.
        object.attach(
            "handle_exec",
            &AttachTarget::tracepoint("sched", "sched_process_exec"),
        )?;
        // Not a runtime condition: only callback delivery has no receiver.
        let events = stream
            .receiver()
            .cloned()
            .expect("channel delivery has a receiver");
        Ok(Self {
            stream,
            object,
            events,
        })
    }

    /// The execs seen so far, in the order they happened; still readable after
    /// [`stop`](Self::stop).
    pub fn events(&self) -> &Receiver<Exec> {
        &self.events
    }

    /// Detaches, then drains what the ring buffer still holds into the channel, and
    /// returns the final delivered and lost counts.
    pub fn stop(&mut self) -> coolbpf::Result<Losses> {
        self.object.detach_all();
        self.stream.stop()?;
        self.stream.losses()
    }
}

fn print_exec(exec: &Exec) {
    println!(
        "{:>7} {:>7} {:<16} {}",
        exec.pid, exec.ppid, exec.comm, exec.filename
    );
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hello_ringbuf: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let seconds = match std::env::args().nth(1) {
        None => DEFAULT_SECONDS,
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: hello_ringbuf [SECONDS]; {arg:?} is not a number"))?,
    };
    // Without root, the error names the missing capability and how to get it.
    let mut tracer = ExecTracer::start().map_err(|err| format!("cannot trace execs: {err}"))?;
    println!("tracing execs for {seconds} s");
    println!("{:>7} {:>7} {:<16} FILENAME", "PID", "PPID", "COMM");
    for _ in 0..2 {
        Command::new("/bin/true")
            .status()
            .map_err(|err| format!("cannot run /bin/true: {err}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while let Ok(exec) = tracer.events().recv_deadline(deadline) {
        print_exec(&exec);
    }
    let losses = tracer.stop()?;
    // Events the kernel committed before the detach arrive during stop's drain.
    for exec in tracer.events().try_iter() {
        print_exec(&exec);
    }
    println!(
        "delivered {}; lost: ring buffer full {}, channel full {}, undecodable {}; \
         filename unreadable (sent empty) {}",
        losses.delivered,
        losses.kernel.ringbuf_reserve,
        losses.channel_overflow,
        losses.decode_errors,
        losses.kernel.read,
    );
    Ok(())
}
