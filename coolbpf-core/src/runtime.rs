//! The plugin [`Runtime`]: runs [`Plugin`]s side by side, each on its own worker thread and
//! interval, isolates their failures, and hands what they produce to [`Sink`]s.
//!
//! ```text
//!  plugin A worker ──┐  collected batches, emitted records
//!  plugin B worker ──┼──── bounded channel ────> sink thread ──> every Sink
//!  ring buffer cb ───┘  (full: dropped and counted)
//! ```
//!
//! A plugin that returns an error or panics is stopped (its `stop` attempted), marked
//! [`PluginStatus::Failed`], and reported as the counter
//! `core/plugin_failures_total{plugin=NAME}`; the others keep running. At shutdown the
//! runtime reports the records it had to drop as `core/events_lost_total{source="runtime_channel"}`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use coolbpf_core::sink::JsonLinesSink;
//! use coolbpf_core::{labels, Metric, Plugin, PluginContext, PluginStatus, Record, Result, Runtime};
//!
//! /// Counts its own collections.
//! struct Ticks(u64);
//!
//! impl Plugin for Ticks {
//!     fn name(&self) -> &str {
//!         "ticks"
//!     }
//!     fn start(&mut self, _ctx: &PluginContext) -> Result<()> {
//!         Ok(())
//!     }
//!     fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
//!         self.0 += 1;
//!         out.push(Metric::counter("ticks", "ticks_total", labels! {}, self.0).into());
//!         Ok(())
//!     }
//!     fn stop(&mut self) -> Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let mut runtime = Runtime::builder()
//!     .interval(Duration::from_millis(10))
//!     .sink(Box::new(JsonLinesSink::stdout()))
//!     .build()?;
//! let ticks = runtime.add(Box::new(Ticks(0)))?;
//! runtime.start_all()?;
//! std::thread::sleep(Duration::from_millis(50));
//! // Final collect, plugin stop, sinks flushed; also what dropping the runtime does.
//! runtime.shutdown()?;
//! assert_eq!(runtime.status(ticks), Some(PluginStatus::Stopped));
//! # Ok(()) }
//! ```

use std::any::Any;
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};

use crate::error::{Error, Result};
use crate::labels;
use crate::plugin::{Emitter, Message, Plugin, PluginContext};
use crate::record::{Metric, Record};
use crate::sink::Sink;

/// Collection interval for plugins that do not ask for their own.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Messages (records or collected batches) the channel to the sinks holds.
const DEFAULT_CHANNEL_CAPACITY: usize = 4096;
/// How long a collected batch or a runtime report waits for room in a full channel.
const BATCH_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// While a flood keeps the channel busy, sinks are still flushed this often (in records).
const MAX_UNFLUSHED: usize = 1024;

/// Identifies a plugin within its [`Runtime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId(usize);

impl PluginId {
    /// The id as a number, for the C and Python bindings.
    pub fn index(self) -> usize {
        self.0
    }

    /// The id with number `index`; a runtime answers an id it never gave out with
    /// [`Error::NotFound`].
    pub fn from_index(index: usize) -> Self {
        Self(index)
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a plugin is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginStatus {
    /// Added, never started.
    Pending,
    /// Started and collecting.
    Running,
    /// Stopped on request, after its final collect.
    Stopped,
    /// Returned an error or panicked, and was stopped.
    Failed {
        /// What went wrong, naming the stage (start, collect, stop).
        reason: String,
    },
}

impl fmt::Display for PluginStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending => f.write_str("pending"),
            Self::Running => f.write_str("running"),
            Self::Stopped => f.write_str("stopped"),
            Self::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// A plugin as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Its id.
    pub id: PluginId,
    /// Its name.
    pub name: String,
    /// Its status now.
    pub status: PluginStatus,
}

/// Errors of one sink: the first, and how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// The sink's position in the order they were given to the builder.
    pub sink: usize,
    /// The first error's message.
    pub first: String,
    /// How many writes and flushes failed.
    pub count: u64,
}

/// Configures and builds a [`Runtime`].
pub struct RuntimeBuilder {
    interval: Duration,
    capacity: usize,
    sinks: Vec<Box<dyn Sink>>,
}

impl RuntimeBuilder {
    /// The collection interval of plugins that do not choose their own (default 1 s).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How many messages (emitted records or collected batches) may wait for the sinks
    /// before emitted records are dropped and counted (default 4096).
    #[must_use]
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Adds a sink; every record goes to every sink, in the order they were added.
    #[must_use]
    pub fn sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Starts the sink thread and returns the runtime, with no plugin yet.
    pub fn build(self) -> Result<Runtime> {
        if self.interval.is_zero() {
            return Err(Error::InvalidArgument(
                "runtime interval must be greater than zero".into(),
            ));
        }
        if self.capacity == 0 {
            return Err(Error::InvalidArgument(
                "runtime channel capacity must be greater than zero".into(),
            ));
        }
        let (emitter, records) = Emitter::channel(self.capacity);
        let sink_errors = Arc::new(Mutex::new(Vec::new()));
        let delivery = Delivery {
            sinks: self.sinks,
            errors: Arc::clone(&sink_errors),
            unflushed: 0,
        };
        let (done, done_rx) = crossbeam_channel::bounded::<()>(0);
        let thread = thread::Builder::new()
            .name("cb-sinks".into())
            .spawn(move || delivery.run(&records, &done_rx))
            .map_err(|err| Error::io("spawn the sink thread", err))?;
        Ok(Runtime {
            interval: self.interval,
            emitter,
            plugins: Vec::new(),
            sinks: Some(SinkThread { done, thread }),
            sink_errors,
        })
    }
}

/// Runs plugins and delivers their records to sinks.
///
/// An owned handle: plugins are added, then started and stopped explicitly, alone or all
/// together. [`shutdown`](Self::shutdown) (also run on drop) stops every plugin, delivers
/// what is left and flushes the sinks. Statuses stay readable after shutdown.
pub struct Runtime {
    interval: Duration,
    /// The runtime's own handle on the channel; plugins get clones.
    emitter: Emitter,
    plugins: Vec<Slot>,
    /// `None` once shut down.
    sinks: Option<SinkThread>,
    sink_errors: Arc<Mutex<Vec<SinkError>>>,
}

impl Runtime {
    /// A builder with the defaults: 1 s interval, 4096-message channel, no sink.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            interval: DEFAULT_INTERVAL,
            capacity: DEFAULT_CHANNEL_CAPACITY,
            sinks: Vec::new(),
        }
    }

    /// The default collection interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Adds a plugin, not started yet ([`PluginStatus::Pending`]).
    pub fn add(&mut self, plugin: Box<dyn Plugin>) -> Result<PluginId> {
        self.ensure_open()?;
        let interval = plugin.interval().unwrap_or(self.interval);
        if interval.is_zero() {
            return Err(Error::InvalidArgument(format!(
                "plugin {}: interval must be greater than zero",
                plugin.name()
            )));
        }
        let id = PluginId(self.plugins.len());
        self.plugins.push(Slot::new(plugin, interval));
        Ok(id)
    }

    /// Starts a plugin on its own worker thread and waits for its `start` to return.
    ///
    /// Starting a running plugin does nothing; a stopped or failed one is started again.
    /// When `start` fails or panics the plugin is marked failed and reported, and the
    /// error is returned too.
    pub fn start_plugin(&mut self, id: PluginId) -> Result<()> {
        self.ensure_open()?;
        let emitter = self.emitter.clone();
        self.slot_mut(id)?.start(emitter)
    }

    /// Stops a plugin: a final collect, then its `stop`, and waits for both.
    ///
    /// Returns the error if either fails (the plugin is then marked failed). A plugin that
    /// is not running is left as it is.
    pub fn stop_plugin(&mut self, id: PluginId) -> Result<()> {
        let slot = self.slot_mut(id)?;
        slot.signal_stop()
            .map_or(Ok(()), |worker| slot.join(worker))
    }

    /// Waits up to `timeout` until the sinks were handed every record emitted before this
    /// call, a plugin's final collect included: what lets a caller that reads a sink from
    /// another thread know that a stopped plugin's last records are there. Returns
    /// whether that point was reached in time (always, once the runtime shut down).
    pub fn wait_delivered(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        match self.emitter.send_delivered_marker(deadline) {
            Ok(answered) => answered.recv_deadline(deadline).is_ok(),
            Err(sink_thread_gone) => sink_thread_gone,
        }
    }

    /// Starts every plugin that is not running. One plugin's failure does not keep the
    /// others from starting; the first error is returned after all were tried.
    pub fn start_all(&mut self) -> Result<()> {
        self.ensure_open()?;
        let mut result = Ok(());
        for slot in &mut self.plugins {
            // `and` evaluates its argument, so every plugin is tried; the first error stays.
            result = result.and(slot.start(self.emitter.clone()));
        }
        result
    }

    /// Stops every running plugin, in parallel, and waits for them; returns the first error.
    pub fn stop_all(&mut self) -> Result<()> {
        // Signal them all before joining any, so slow final collects overlap.
        let stopping: Vec<(usize, JoinHandle<Exit>)> = self
            .plugins
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| slot.signal_stop().map(|worker| (index, worker)))
            .collect();
        let mut result = Ok(());
        for (index, worker) in stopping {
            result = result.and(self.plugins[index].join(worker));
        }
        result
    }

    /// Stops every plugin, reports the runtime's own losses, delivers everything queued
    /// and flushes the sinks. Idempotent; adding or starting plugins afterwards fails with
    /// [`Error::Closed`].
    pub fn shutdown(&mut self) -> Result<()> {
        let Some(sinks) = self.sinks.take() else {
            return Ok(());
        };
        let stopped = self.stop_all();
        let lost = Metric::counter(
            "core",
            "events_lost_total",
            labels! { "source" => "runtime_channel" },
            self.emitter.dropped(),
        );
        self.emitter
            .send_batch(vec![lost.into()], Instant::now() + BATCH_SEND_TIMEOUT);
        sinks.finish();
        stopped
    }

    /// The status of plugin `id`, or `None` for an id this runtime never gave out.
    pub fn status(&self, id: PluginId) -> Option<PluginStatus> {
        self.plugins.get(id.0).map(|slot| slot.shared.status())
    }

    /// Every plugin with its status, in the order they were added.
    pub fn statuses(&self) -> Vec<PluginInfo> {
        self.plugins
            .iter()
            .enumerate()
            .map(|(index, slot)| PluginInfo {
                id: PluginId(index),
                name: slot.shared.name.clone(),
                status: slot.shared.status(),
            })
            .collect()
    }

    /// Errors the sinks returned (or panics they raised), one entry per failing sink.
    pub fn sink_errors(&self) -> Vec<SinkError> {
        lock(&self.sink_errors).clone()
    }

    /// Records dropped so far because the channel to the sinks was full or closed.
    pub fn records_dropped(&self) -> u64 {
        self.emitter.dropped()
    }

    fn ensure_open(&self) -> Result<()> {
        if self.sinks.is_some() {
            Ok(())
        } else {
            Err(Error::Closed("runtime"))
        }
    }

    fn slot_mut(&mut self, id: PluginId) -> Result<&mut Slot> {
        self.plugins.get_mut(id.0).ok_or_else(|| Error::NotFound {
            what: "plugin",
            name: id.to_string(),
            known: Vec::new(),
        })
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("interval", &self.interval)
            .field("plugins", &self.statuses())
            .field("open", &self.sinks.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Nobody is left to return an error to; failures stay visible in the statuses and
        // the failure reports already delivered.
        let _ = self.shutdown();
    }
}

/// What the runtime and a plugin's worker share.
struct Shared {
    name: String,
    status: Mutex<PluginStatus>,
    /// Failures since the plugin was added, for the cumulative failure counter.
    failures: AtomicU64,
}

impl Shared {
    fn status(&self) -> PluginStatus {
        lock(&self.status).clone()
    }

    fn set_status(&self, status: PluginStatus) {
        *lock(&self.status) = status;
    }
}

/// One added plugin.
struct Slot {
    shared: Arc<Shared>,
    interval: Duration,
    state: State,
}

/// Who holds the plugin.
enum State {
    /// The runtime does: never started, or its worker was joined.
    Idle(Box<dyn Plugin>),
    /// Its worker does. Dropping `stop` tells the worker to stop, at once: the worker's
    /// receiver disconnects.
    Running {
        stop: Sender<()>,
        worker: JoinHandle<Exit>,
    },
    /// Nobody: its worker thread died outside the guarded calls or could not be spawned.
    Lost,
}

impl Slot {
    fn new(plugin: Box<dyn Plugin>, interval: Duration) -> Self {
        let shared = Shared {
            name: plugin.name().to_owned(),
            status: Mutex::new(PluginStatus::Pending),
            failures: AtomicU64::new(0),
        };
        Self {
            shared: Arc::new(shared),
            interval,
            state: State::Idle(plugin),
        }
    }

    fn start(&mut self, emitter: Emitter) -> Result<()> {
        if self.shared.status() == PluginStatus::Running {
            return Ok(());
        }
        // Not running but still held by a worker: it failed and is winding down.
        if let Some(worker) = self.signal_stop() {
            self.join(worker)?;
        }
        let plugin = match mem::replace(&mut self.state, State::Lost) {
            State::Idle(plugin) => plugin,
            State::Running { .. } | State::Lost => {
                return Err(self.error("the plugin was lost when its worker thread died"))
            }
        };
        let worker = Worker {
            plugin,
            shared: Arc::clone(&self.shared),
            emitter,
            interval: self.interval,
        };
        let (stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started) = crossbeam_channel::bounded(1);
        // Thread names cannot hold NUL; the kernel keeps the first 15 bytes.
        let thread_name = format!("cb-{}", self.shared.name.replace('\0', "?"));
        let spawned = thread::Builder::new()
            .name(thread_name)
            .spawn(move || worker.run(&stop_rx, &started_tx));
        let worker = match spawned {
            Ok(worker) => worker,
            Err(err) => {
                let reason = format!("cannot spawn its worker thread: {err}");
                self.shared.set_status(PluginStatus::Failed {
                    reason: reason.clone(),
                });
                return Err(self.error(&reason));
            }
        };
        self.state = State::Running { stop, worker };
        match started.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                // The worker already stopped the plugin and is returning it.
                if let Some(worker) = self.signal_stop() {
                    self.join(worker)?;
                }
                Err(err)
            }
            Err(_) => {
                let worker = self.signal_stop();
                worker.map_or(Ok(()), |worker| self.join(worker))?;
                Err(self.error("its worker thread exited before the plugin started"))
            }
        }
    }

    /// Tells a running worker to stop and hands back its thread to join.
    fn signal_stop(&mut self) -> Option<JoinHandle<Exit>> {
        match mem::replace(&mut self.state, State::Lost) {
            State::Running { stop, worker } => {
                drop(stop);
                Some(worker)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Waits for the worker, takes the plugin back, and returns how its requested stop went.
    fn join(&mut self, worker: JoinHandle<Exit>) -> Result<()> {
        match worker.join() {
            Ok(exit) => {
                self.state = State::Idle(exit.plugin);
                exit.stop_result
            }
            Err(payload) => {
                let reason = format!(
                    "worker thread panicked: {}",
                    panic_message(payload.as_ref())
                );
                self.shared.set_status(PluginStatus::Failed {
                    reason: reason.clone(),
                });
                Err(self.error(&reason))
            }
        }
    }

    fn error(&self, reason: &str) -> Error {
        Error::Plugin {
            plugin: self.shared.name.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// What a worker thread gives back.
struct Exit {
    plugin: Box<dyn Plugin>,
    /// How the final collect and `stop` went, when the runtime asked for them; `Ok` when
    /// the plugin had failed on its own (that failure was reported when it happened).
    stop_result: Result<()>,
}

/// A plugin on its worker thread.
struct Worker {
    plugin: Box<dyn Plugin>,
    shared: Arc<Shared>,
    emitter: Emitter,
    interval: Duration,
}

impl Worker {
    fn run(mut self, stop: &Receiver<()>, started: &Sender<Result<()>>) -> Exit {
        let ctx = PluginContext::new(
            self.shared.name.clone(),
            self.interval,
            self.emitter.clone(),
        );
        if let Err(reason) = self.guarded("start", |plugin| plugin.start(&ctx)) {
            let reason = self.fail(reason, true);
            // The runtime waits for this answer; it can only be gone if it is shutting down.
            let _ = started.send(Err(self.error(reason)));
            return self.exit(Ok(()));
        }
        self.shared.set_status(PluginStatus::Running);
        let _ = started.send(Ok(()));

        let mut tick = Instant::now() + self.interval;
        // Waiting on the stop channel, not sleeping, so a stop is seen at once.
        while let Err(RecvTimeoutError::Timeout) = stop.recv_deadline(tick) {
            if let Err(reason) = self.collect() {
                self.fail(reason, true);
                return self.exit(Ok(()));
            }
            tick += self.interval;
            let now = Instant::now();
            // After an overrun, restart the cadence instead of collecting back to back.
            if tick <= now {
                tick = now + self.interval;
            }
        }
        // Asked to stop: the runtime dropped its sender (or, equally, sent a message).
        let result = self.finish();
        self.exit(result)
    }

    /// The requested stop: a final collect, so nothing since the last tick is lost, then
    /// the plugin's `stop`.
    fn finish(&mut self) -> Result<()> {
        if let Err(reason) = self.collect() {
            let reason = self.fail(reason, true);
            return Err(self.error(reason));
        }
        if let Err(reason) = self.guarded("stop", |plugin| plugin.stop()) {
            let reason = self.fail(reason, false);
            return Err(self.error(reason));
        }
        self.shared.set_status(PluginStatus::Stopped);
        Ok(())
    }

    fn collect(&mut self) -> Result<(), String> {
        let mut records = Vec::new();
        let result = self.guarded("collect", |plugin| plugin.collect(&mut records));
        // Whatever was collected before a failure is still real data: deliver it.
        self.emitter
            .send_batch(records, Instant::now() + BATCH_SEND_TIMEOUT);
        result
    }

    /// Calls the plugin, turning an error or a panic into a reason naming `stage`.
    fn guarded(
        &mut self,
        stage: &str,
        call: impl FnOnce(&mut dyn Plugin) -> Result<()>,
    ) -> Result<(), String> {
        let plugin = self.plugin.as_mut();
        // The plugin is stopped and marked failed after a panic, never trusted to collect
        // again until restarted, so observing it half-updated is acceptable.
        match panic::catch_unwind(AssertUnwindSafe(|| call(plugin))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("{stage} failed: {err}")),
            Err(payload) => Err(format!(
                "{stage} panicked: {}",
                panic_message(payload.as_ref())
            )),
        }
    }

    /// Marks the plugin failed, after attempting its `stop` when `stop_it`, and reports the
    /// failure as a record. Returns the full reason.
    fn fail(&mut self, reason: String, stop_it: bool) -> String {
        let reason = match stop_it.then(|| self.guarded("stop", |plugin| plugin.stop())) {
            Some(Err(stop_reason)) => format!("{reason}; then {stop_reason}"),
            _ => reason,
        };
        let failures = self.shared.failures.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.set_status(PluginStatus::Failed {
            reason: reason.clone(),
        });
        let report = Metric::counter(
            "core",
            "plugin_failures_total",
            labels! { "plugin" => self.shared.name.as_str() },
            failures,
        );
        self.emitter
            .send_batch(vec![report.into()], Instant::now() + BATCH_SEND_TIMEOUT);
        reason
    }

    fn error(&self, reason: String) -> Error {
        Error::Plugin {
            plugin: self.shared.name.clone(),
            reason,
        }
    }

    fn exit(self, stop_result: Result<()>) -> Exit {
        Exit {
            plugin: self.plugin,
            stop_result,
        }
    }
}

/// The instant `timeout` from now, or one no wait reaches when that is past what
/// `Instant` can hold (`Duration::MAX` means "wait for as long as it takes").
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// The running sink thread.
struct SinkThread {
    /// Dropped to tell the thread to deliver what is queued and exit.
    done: Sender<()>,
    thread: JoinHandle<()>,
}

impl SinkThread {
    fn finish(self) {
        drop(self.done);
        // Every sink call on that thread is guarded, so it does not panic; there is no
        // other outcome to report.
        let _ = self.thread.join();
    }
}

/// The sink thread's state: the sinks and where their errors go.
struct Delivery {
    sinks: Vec<Box<dyn Sink>>,
    errors: Arc<Mutex<Vec<SinkError>>>,
    /// Records written since the last flush.
    unflushed: usize,
}

impl Delivery {
    fn run(mut self, records: &Receiver<Message>, done: &Receiver<()>) {
        loop {
            select! {
                recv(records) -> message => match message {
                    Ok(message) => self.deliver(message, records.is_empty()),
                    Err(_) => break,
                },
                recv(done) -> _ => break,
            }
        }
        // Deliver what was queued before shutdown, but not a flood that never ends.
        let queued = records.len();
        for message in records.try_iter().take(queued) {
            self.deliver(message, false);
        }
        self.flush();
    }

    /// Writes a message; flushes after a collected batch (so a batch stays together),
    /// when the channel is drained, or after many unflushed records.
    fn deliver(&mut self, message: Message, caught_up: bool) {
        let flush = match message {
            Message::Record(record) => {
                self.write(&record);
                caught_up || self.unflushed >= MAX_UNFLUSHED
            }
            Message::Batch(batch) => {
                for record in &batch {
                    self.write(record);
                }
                true
            }
            Message::Delivered(answer) => {
                self.flush();
                // The waiter may have given up; nothing to tell it then.
                let _ = answer.send(());
                return;
            }
        };
        if flush {
            self.flush();
        }
    }

    fn write(&mut self, record: &Record) {
        for (index, sink) in self.sinks.iter_mut().enumerate() {
            let result = panic::catch_unwind(AssertUnwindSafe(|| sink.write(record)));
            note_sink_result(&self.errors, index, "write", result);
        }
        self.unflushed += 1;
    }

    fn flush(&mut self) {
        for (index, sink) in self.sinks.iter_mut().enumerate() {
            let result = panic::catch_unwind(AssertUnwindSafe(|| sink.flush()));
            note_sink_result(&self.errors, index, "flush", result);
        }
        self.unflushed = 0;
    }
}

/// Keeps the first error of each sink and counts the rest: a broken sink fails on every
/// record, and one message says as much as a million.
fn note_sink_result(
    errors: &Mutex<Vec<SinkError>>,
    sink: usize,
    operation: &str,
    result: thread::Result<Result<()>>,
) {
    let message = match result {
        Ok(Ok(())) => return,
        Ok(Err(err)) => format!("{operation} failed: {err}"),
        Err(payload) => format!("{operation} panicked: {}", panic_message(payload.as_ref())),
    };
    let mut errors = lock(errors);
    match errors.iter_mut().find(|error| error.sink == sink) {
        Some(error) => error.count += 1,
        None => errors.push(SinkError {
            sink,
            first: message,
            count: 1,
        }),
    }
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Locks ignoring poison: the data behind these locks is replaced whole, never left
/// half-updated, and no guarded call runs while one is held.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_zero_interval_and_capacity() {
        let zero_interval = Runtime::builder().interval(Duration::ZERO).build();
        assert!(matches!(zero_interval, Err(Error::InvalidArgument(_))));
        let zero_capacity = Runtime::builder().channel_capacity(0).build();
        assert!(matches!(zero_capacity, Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn unknown_id_and_closed_runtime_are_errors() {
        let mut runtime = Runtime::builder().build().unwrap();
        assert!(matches!(
            runtime.start_plugin(PluginId(3)),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(runtime.status(PluginId(3)), None);
        runtime.shutdown().unwrap();
        runtime.shutdown().unwrap();
        assert!(matches!(runtime.start_all(), Err(Error::Closed(_))));
    }

    /// A sink slow enough that records are still on their way when a test looks.
    struct SlowSink(crate::sink::MemorySink);

    impl Sink for SlowSink {
        fn write(&mut self, record: &Record) -> Result<()> {
            thread::sleep(Duration::from_millis(1));
            self.0.write(record)
        }
    }

    #[test]
    fn wait_delivered_returns_once_earlier_records_reached_the_sinks() {
        let memory = crate::sink::MemorySink::new();
        let mut runtime = Runtime::builder()
            .sink(Box::new(SlowSink(memory.clone())))
            .build()
            .unwrap();
        for value in 0..50 {
            let record = Metric::counter("test", "n", crate::labels! {}, value);
            assert!(runtime.emitter.emit(record));
        }
        assert!(runtime.wait_delivered(Duration::from_secs(10)));
        assert_eq!(memory.records().len(), 50);
        runtime.shutdown().unwrap();
        assert!(
            runtime.wait_delivered(Duration::from_secs(1)),
            "nothing left to wait for"
        );
    }

    #[test]
    fn panic_messages_are_extracted() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&7_u8), "unknown panic payload");
    }

    #[test]
    fn handles_cross_threads() {
        // The bindings move the runtime behind a lock and hand emitters to callbacks.
        fn assert_send<T: Send>() {}
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send::<Runtime>();
        assert_send_sync::<Emitter>();
    }
}
