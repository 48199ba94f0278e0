//! Transport benchmark: events per second delivered through coolbpf-core's ring buffer
//! streams, against a hand-written libbpf-rs consumer of the same BPF program, in the
//! same run.
//!
//! `benches/bpf/transport.bpf.c` emits one 64-byte event (with a sequence number) per
//! `getppid` of one thread into a ring buffer large enough to hold a whole run, so that no
//! event is lost and every variant moves the same events. This thread makes the syscalls;
//! the consumers are:
//!
//! - `raw libbpf-rs`: a thread polling a `libbpf_rs::RingBuffer` whose callback reads the
//!   sequence number, as a user of plain libbpf-rs would write it;
//! - `core callback`: `EventStream` decoding the sequence number, `Delivery::callback`;
//! - `core channel`: the same with `Delivery::channel` and a reader thread;
//! - `core channel, Bytes`: `EventStream::raw` (each payload copied into `Bytes`) with
//!   `Delivery::channel` and a reader thread.
//!
//! Every consumer ends in the same per-event work: count, check the sequence number is the
//! next one, note the time of the first and last event.
//!
//! Two modes, each run for every variant, interleaved over several rounds (the order
//! rotates each round so no variant always runs first):
//!
//! - `live`: the consumer runs while the producer makes its syscalls; the time is from the
//!   first syscall to the last event reaching the consumer. This is end-to-end throughput
//!   as a tracing tool sees it, and is bounded by the producer when the consumer keeps up.
//! - `drain`: the producer fills the ring first, then the consumer starts; the time is from
//!   the first event reaching the consumer to the last. This is the consumer's own
//!   throughput, with nothing else running.
//!
//! Every run is accounted: `delivered + lost == produced`, where `produced` is the BPF
//! program's own count and `lost` sums the kernel's reserve failures and the stream's
//! channel overflow and decode errors. The rate without any BPF attached is measured
//! each round as the producer's ceiling.
//!
//! A harness binary rather than criterion: one sample is a whole run (load, attach,
//! produce, deliver, account), criterion's many-iteration sampling would take minutes
//! per variant, and the result wanted is a ratio between variants measured side by side.
//!
//! Run with `sudo cargo bench --bench transport` (about 35 s on 2 vCPUs). Without
//! `--bench` (as `cargo test --benches` runs it) it does one short round as a smoke test.
//! Without root or BPF it prints why and exits successfully. Other arguments select runs
//! by substring of "MODE VARIANT" (`cargo bench --bench transport -- drain`). Results,
//! and what bounds them, are in BENCHMARKS.md.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coolbpf::stream::{Delivery, EventStream, KernelLosses};
use coolbpf::{BpfObject, Environment};
use crossbeam_channel::{Receiver, Sender};
use libbpf_rs::{MapCore, MapHandle, RingBufferBuilder};
use transport_workload::{
    current_tid, decode_seq, getppid_times, median, sequence, RECORD_BYTES, RING_BYTES,
};

#[path = "transport_workload/mod.rs"]
mod transport_workload;

/// Events (producer syscalls) per run.
const EVENTS: u64 = 800_000;
/// Rounds; every variant runs once per mode per round.
const ROUNDS: usize = 5;
/// Events and rounds of the smoke test that runs without `--bench`.
const SMOKE_EVENTS: u64 = 20_000;
const SMOKE_ROUNDS: usize = 1;
/// Channel capacity of the channel variants: a whole run, so the channel never
/// overflows and what is measured is transport, not the drop policy for full channels.
/// Its memory is allocated when the stream is created, before any timing starts.
const CHANNEL_CAPACITY: usize = 1 << 20;
const _: () = assert!(EVENTS * RECORD_BYTES <= RING_BYTES as u64);
const _: () = assert!(EVENTS <= CHANNEL_CAPACITY as u64);
/// How long a run may take before it is reported as incomplete.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Who consumes the ring buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Raw,
    CoreCallback,
    CoreChannel,
    CoreChannelBytes,
}

impl Variant {
    const ALL: [Self; 4] = [
        Self::Raw,
        Self::CoreCallback,
        Self::CoreChannel,
        Self::CoreChannelBytes,
    ];

    fn is_core(self) -> bool {
        self != Self::Raw
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Raw => "raw libbpf-rs",
            Self::CoreCallback => "core callback",
            Self::CoreChannel => "core channel",
            Self::CoreChannelBytes => "core channel, Bytes",
        })
    }
}

/// When the consumer starts relative to the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Live,
    Drain,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Live => "live",
            Self::Drain => "drain",
        })
    }
}

/// What the consumer side publishes; written by one thread, read after it is done.
#[derive(Debug, Default)]
struct Tally {
    seen: AtomicU64,
    out_of_order: AtomicU64,
    malformed: AtomicU64,
}

/// Times of the first and the last expected event.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: Instant,
    last: Instant,
}

/// The per-event work every variant does, on whatever thread delivers events.
struct Counter {
    seen: u64,
    next_seq: u64,
    first: Option<Instant>,
    expected: u64,
    tally: Arc<Tally>,
    done: Sender<Span>,
}

impl Counter {
    fn new(expected: u64) -> (Self, Arc<Tally>, Receiver<Span>) {
        let tally = Arc::new(Tally::default());
        let (done, done_rx) = crossbeam_channel::bounded(1);
        let counter = Self {
            seen: 0,
            next_seq: 0,
            first: None,
            expected,
            tally: Arc::clone(&tally),
            done,
        };
        (counter, tally, done_rx)
    }

    #[inline]
    fn record(&mut self, seq: u64) {
        self.seen += 1;
        // Single writer: a plain store, no locked instruction on the per-event path.
        self.tally.seen.store(self.seen, Ordering::Relaxed);
        if seq != self.next_seq {
            self.tally.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
        self.next_seq = seq + 1;
        if self.seen == 1 {
            self.first = Some(Instant::now());
        }
        if self.seen == self.expected {
            let last = Instant::now();
            // The receiver waits for exactly this one message.
            let _ = self.done.try_send(Span {
                first: self.first.unwrap_or(last),
                last,
            });
        }
    }

    fn malformed(&self) {
        self.tally.malformed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The hand-written libbpf-rs consumer: a thread polling a `RingBuffer`.
struct RawConsumer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<libbpf_rs::Result<()>>,
}

impl RawConsumer {
    /// Starts the thread, which sets the ring buffer up and polls it. Like
    /// `EventStream::new`, this returns without waiting for the setup; its errors are
    /// reported by [`stop`](Self::stop).
    fn start(map: MapHandle, mut counter: Counter) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("raw-ringbuf".into())
            .spawn(move || {
                let mut builder = RingBufferBuilder::new();
                builder.add(&map, move |payload: &[u8]| {
                    match sequence(payload) {
                        Some(seq) => counter.record(seq),
                        None => counter.malformed(),
                    }
                    0
                })?;
                let ring = builder.build()?;
                while !thread_stop.load(Ordering::Relaxed) {
                    ring.poll(Duration::from_millis(50))?;
                }
                ring.consume()
            })
            .map_err(|err| format!("cannot start the raw consumer thread: {err}"))?;
        Ok(Self { stop, thread })
    }

    fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("raw consumer: {err}")),
            Err(_) => Err("raw consumer panicked".into()),
        }
    }
}

/// A running consumer of any variant.
enum Consumer {
    Raw(RawConsumer),
    Core {
        stream: StreamKind,
        /// The channel variants' reader thread.
        reader: Option<JoinHandle<()>>,
    },
}

enum StreamKind {
    Seq(EventStream<u64>),
    Bytes(EventStream<Bytes>),
}

impl StreamKind {
    fn stop(&mut self) -> coolbpf::Result<coolbpf::stream::Losses> {
        match self {
            Self::Seq(stream) => {
                stream.stop()?;
                stream.losses()
            }
            Self::Bytes(stream) => {
                stream.stop()?;
                stream.losses()
            }
        }
    }
}

/// Drains `receiver` into `counter` on a new thread until the stream's sender is gone.
fn reader<T: Send + 'static>(
    receiver: Receiver<T>,
    mut counter: Counter,
    sequence_of: fn(&T) -> Option<u64>,
) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("channel-reader".into())
        .spawn(move || {
            for item in receiver {
                match sequence_of(&item) {
                    Some(seq) => counter.record(seq),
                    None => counter.malformed(),
                }
            }
        })
        .map_err(|err| format!("cannot start the reader thread: {err}"))
}

impl Consumer {
    fn start(variant: Variant, object: &BpfObject, counter: Counter) -> Result<Self, String> {
        let core = |err: coolbpf::Error| format!("{variant}: {err}");
        match variant {
            Variant::Raw => {
                // Straight from libbpf-rs: the object's map, its fd duplicated for the thread.
                let map = object
                    .as_libbpf()
                    .maps()
                    .find(|map| map.name() == "events")
                    .ok_or("the object has no map `events`")?;
                let handle = MapHandle::try_from(&map).map_err(|err| err.to_string())?;
                RawConsumer::start(handle, counter).map(Self::Raw)
            }
            Variant::CoreCallback => {
                let mut counter = counter;
                let stream = EventStream::ring_buffer(
                    object,
                    "events",
                    decode_seq,
                    Delivery::callback(move |seq| counter.record(seq)),
                )
                .map_err(core)?;
                Ok(Self::Core {
                    stream: StreamKind::Seq(stream),
                    reader: None,
                })
            }
            Variant::CoreChannel => {
                let stream = EventStream::ring_buffer(
                    object,
                    "events",
                    decode_seq,
                    Delivery::channel(CHANNEL_CAPACITY),
                )
                .map_err(core)?;
                let receiver = stream.receiver().cloned().ok_or("no receiver")?;
                let reader = reader(receiver, counter, |seq: &u64| Some(*seq))?;
                Ok(Self::Core {
                    stream: StreamKind::Seq(stream),
                    reader: Some(reader),
                })
            }
            Variant::CoreChannelBytes => {
                let stream = EventStream::ring_buffer_raw(
                    object,
                    "events",
                    Delivery::channel(CHANNEL_CAPACITY),
                )
                .map_err(core)?;
                let receiver = stream.receiver().cloned().ok_or("no receiver")?;
                let reader = reader(receiver, counter, |bytes: &Bytes| sequence(bytes))?;
                Ok(Self::Core {
                    stream: StreamKind::Bytes(stream),
                    reader: Some(reader),
                })
            }
        }
    }

    /// Stops the consumer after it drained the ring; returns the events the stream
    /// itself dropped (channel overflow, decode errors), zero for the raw consumer.
    fn stop(self) -> Result<u64, String> {
        match self {
            Self::Raw(raw) => raw.stop().map(|()| 0),
            Self::Core { mut stream, reader } => {
                let losses = stream.stop().map_err(|err| err.to_string())?;
                // Stopping the stream drops its sender, which ends the reader's loop.
                drop(stream);
                if let Some(reader) = reader {
                    reader.join().map_err(|_| "reader thread panicked")?;
                }
                Ok(losses.channel_overflow + losses.decode_errors)
            }
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
struct Run {
    round: usize,
    variant: Variant,
    mode: Mode,
    produced: u64,
    delivered: u64,
    lost: u64,
    /// Events out of sequence or too short to read (must be zero).
    anomalies: u64,
    wall: Duration,
    /// How long the producer's syscalls took.
    produce: Duration,
    /// Times the consumer's threads blocked (in poll waiting for a wake-up, or a reader
    /// on an empty channel): their voluntary context switches.
    consumer_sleeps: u64,
    complete: bool,
}

impl Run {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64()
    }

    fn accounted(&self) -> bool {
        self.delivered + self.lost == self.produced && self.anomalies == 0
    }
}

/// Voluntary context switches of every thread of this process but `except`: the
/// consumer's threads, since the producer (`except`) is the only other one.
fn voluntary_switches_except(except: u32) -> Result<u64, String> {
    let tasks =
        std::fs::read_dir("/proc/self/task").map_err(|err| format!("/proc/self/task: {err}"))?;
    let mut total = 0;
    for task in tasks {
        let task = task.map_err(|err| format!("/proc/self/task: {err}"))?;
        if task.file_name().to_str() == Some(except.to_string().as_str()) {
            continue;
        }
        // A thread can end between listing and reading; it switches no more.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

fn measure(round: usize, variant: Variant, mode: Mode, events: u64) -> Result<Run, String> {
    let mut object = transport_workload::load()?;
    let (counter, tally, done) = Counter::new(events);
    let (consumer, produce, span) = match mode {
        Mode::Live => {
            let consumer = Consumer::start(variant, &object, counter)?;
            let start = Instant::now();
            getppid_times(events);
            let produce = start.elapsed();
            let span = done.recv_timeout(RUN_TIMEOUT).ok().map(|span| Span {
                first: start,
                last: span.last,
            });
            (consumer, produce, span)
        }
        Mode::Drain => {
            let start = Instant::now();
            getppid_times(events);
            let produce = start.elapsed();
            let consumer = Consumer::start(variant, &object, counter)?;
            (consumer, produce, done.recv_timeout(RUN_TIMEOUT).ok())
        }
    };
    // Read while the consumer's threads still exist; they are idle once all arrived.
    let consumer_sleeps = voluntary_switches_except(current_tid())?;
    object.detach_all();
    let stream_lost = consumer.stop()?;
    let produced = object
        .global_u64("produced")
        .map_err(|err| err.to_string())?;
    let kernel = KernelLosses::read(&object).map_err(|err| err.to_string())?;
    Ok(Run {
        round,
        variant,
        mode,
        produced,
        delivered: tally.seen.load(Ordering::Relaxed),
        lost: kernel.total() + stream_lost,
        anomalies: tally.out_of_order.load(Ordering::Relaxed)
            + tally.malformed.load(Ordering::Relaxed),
        wall: span.map_or(RUN_TIMEOUT, |span| span.last - span.first),
        produce,
        consumer_sleeps,
        complete: span.is_some(),
    })
}

/// The producer's syscall rate with no BPF program attached.
fn baseline_rate(events: u64) -> f64 {
    let start = Instant::now();
    getppid_times(events);
    events as f64 / start.elapsed().as_secs_f64()
}

fn millions(rate: f64) -> String {
    format!("{:.2} M/s", rate / 1e6)
}

/// `median (min–max)` of `values`, each formatted by `show`.
fn spread(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{} ({}–{})",
        show(median(values.to_vec())),
        show(min),
        show(max)
    )
}

fn report(runs: &[Run], baselines: &[f64], rounds: usize) {
    println!(
        "| mode | variant | produced | delivered | lost | wall (median) \
         | delivered/s: median (min–max) | producer syscalls/s (median) \
         | consumer sleeps per 1k events (median) | core/raw: median (min–max) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mode in [Mode::Live, Mode::Drain] {
        let raw: Vec<&Run> = runs
            .iter()
            .filter(|r| r.mode == mode && r.variant == Variant::Raw)
            .collect();
        for variant in Variant::ALL {
            let of: Vec<&Run> = runs
                .iter()
                .filter(|r| r.mode == mode && r.variant == variant)
                .collect();
            if of.is_empty() {
                continue;
            }
            let sum = |f: fn(&Run) -> u64| of.iter().map(|r| f(r)).sum::<u64>();
            let per_run = |f: fn(&Run) -> f64| median(of.iter().map(|r| f(r)).collect());
            // Each core run against the raw run of the same round.
            let ratios: Vec<f64> = of
                .iter()
                .filter_map(|c| {
                    let r = raw.iter().find(|r| r.round == c.round)?;
                    Some(c.rate() / r.rate())
                })
                .collect();
            let ratio = if !variant.is_core() {
                "1 (reference)".to_owned()
            } else if ratios.is_empty() {
                "- (raw not run)".to_owned()
            } else {
                spread(&ratios, |ratio| format!("{ratio:.2}x"))
            };
            let rates: Vec<f64> = of.iter().map(|r| r.rate()).collect();
            println!(
                "| {mode} | {variant} | {} | {} | {} | {:.1} ms | {} | {} | {:.1} | {ratio} |",
                sum(|r| r.produced),
                sum(|r| r.delivered),
                sum(|r| r.lost),
                per_run(|r| r.wall.as_secs_f64() * 1e3),
                spread(&rates, |rate| format!("{:.2}", rate / 1e6)) + " M/s",
                millions(per_run(|r| r.produced as f64 / r.produce.as_secs_f64())),
                per_run(|r| r.consumer_sleeps as f64 * 1e3 / r.delivered.max(1) as f64),
            );
        }
    }
    println!();
    println!(
        "Producer without BPF attached: {} getppid/s (median of {rounds}). \
         produced/delivered/lost are sums over {rounds} rounds of {} events.",
        millions(median(baselines.to_vec())),
        runs.first().map_or(0, |r| r.produced),
    );
}

fn main() {
    if let Err(err) = Environment::prepare() {
        println!("skipping the transport benchmark: BPF unavailable: {err}");
        return;
    }
    // cargo bench passes --bench; cargo test runs the binary without it. Other arguments
    // select runs by substring of "MODE VARIANT" (`-- drain`, `-- "live core"`).
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|arg| arg == "--bench");
    let filters: Vec<&String> = args.iter().filter(|arg| !arg.starts_with('-')).collect();
    let (events, rounds) = if full {
        (EVENTS, ROUNDS)
    } else {
        (SMOKE_EVENTS, SMOKE_ROUNDS)
    };
    let mut runs = Vec::new();
    let mut baselines = Vec::new();
    let mut failures = Vec::new();
    for round in 0..rounds {
        baselines.push(baseline_rate(events));
        for mode in [Mode::Live, Mode::Drain] {
            for offset in 0..Variant::ALL.len() {
                let variant = Variant::ALL[(round + offset) % Variant::ALL.len()];
                let name = format!("{mode} {variant}");
                if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                    continue;
                }
                match measure(round, variant, mode, events) {
                    Ok(run) => {
                        eprintln!(
                            "round {round} {name:26} {:>8} delivered {:>6} lost {:>8.1} ms {:>11} \
                             {:>7} consumer sleeps",
                            run.delivered,
                            run.lost,
                            run.wall.as_secs_f64() * 1e3,
                            millions(run.rate()),
                            run.consumer_sleeps,
                        );
                        if !run.accounted() || !run.complete {
                            failures.push(format!("round {round} {name}: {run:?}"));
                        }
                        runs.push(run);
                    }
                    Err(err) => failures.push(format!("round {round} {name}: {err}")),
                }
            }
        }
    }
    report(&runs, &baselines, rounds);
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
}
