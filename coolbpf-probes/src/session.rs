//! [`ProbeSession`]: one registry probe, by name, run on its own runtime, with its records
//! taken by polling.
//!
//! This is the shape the C and Python bindings expose (an owned handle, explicit
//! `start`/`stop`, records pulled by the caller), kept here so both share one
//! implementation and every probe in the [registry](crate::registry) reaches them without
//! binding code of its own.
//!
//! Records travel from the probe's worker thread to the session through a bounded queue.
//! When the caller does not poll fast enough the queue fills; records that find it full
//! are dropped and counted in [`ProbeSession::records_dropped`], together with those the
//! runtime itself had to drop.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use coolbpf_probes::{ProbeOptions, ProbeSession, CATALOGUE};
//!
//! # fn main() -> coolbpf_core::Result<()> {
//! let options = ProbeOptions::new().with("per", "cpu");
//! let mut session = ProbeSession::open(CATALOGUE.find("runqlat")?, &options, Duration::from_secs(1))?;
//! session.start()?;
//! std::thread::sleep(Duration::from_secs(2));
//! session.stop()?;
//! for record in session.poll(Duration::ZERO)? {
//!     println!("{}", record.to_json());
//! }
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coolbpf_core::runtime::deadline_after;
use coolbpf_core::{Environment, Error, PluginId, PluginStatus, Record, Result, Runtime, Sink};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::{ProbeInfo, ProbeOptions};

/// Records a session holds for its caller before it starts dropping (and counting) them.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;

/// How long [`ProbeSession::stop`] waits for the final records to reach the queue.
const FINAL_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A registry probe on a runtime of its own, its records queued for the caller.
///
/// Dropping the session stops the probe and detaches everything it attached.
pub struct ProbeSession {
    probe: &'static ProbeInfo,
    runtime: Runtime,
    id: PluginId,
    records: Receiver<Record>,
    queue_dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for ProbeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSession")
            .field("probe", &self.probe.name)
            .field("status", &self.status())
            .field("queued", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl ProbeSession {
    /// Creates `probe` (found in a [`Catalogue`](crate::Catalogue)) with `options`,
    /// emitting its records every `interval` once started. Nothing touches the kernel
    /// yet: a bad option fails here ([`Error::InvalidArgument`]).
    pub fn open(
        probe: &'static ProbeInfo,
        options: &ProbeOptions,
        interval: Duration,
    ) -> Result<Self> {
        Self::with_capacity(probe, options, interval, DEFAULT_QUEUE_CAPACITY)
    }

    /// [`open`](Self::open) with a queue of `capacity` records.
    pub fn with_capacity(
        probe: &'static ProbeInfo,
        options: &ProbeOptions,
        interval: Duration,
        capacity: usize,
    ) -> Result<Self> {
        if interval.is_zero() {
            return Err(Error::InvalidArgument(
                "the record interval must be longer than zero".into(),
            ));
        }
        if capacity == 0 {
            return Err(Error::InvalidArgument(
                "the record queue needs room for at least one record".into(),
            ));
        }
        if let Some(pid) = options.pid {
            Environment::require_process(pid)?;
        }
        let plugin = probe.create(options)?;
        let (sender, records) = crossbeam_channel::bounded(capacity);
        let queue_dropped = Arc::new(AtomicU64::new(0));
        let sink = QueueSink {
            sender,
            dropped: Arc::clone(&queue_dropped),
        };
        let mut runtime = Runtime::builder()
            .interval(interval)
            .sink(Box::new(sink))
            .build()?;
        let id = runtime.add(plugin)?;
        Ok(Self {
            probe,
            runtime,
            id,
            records,
            queue_dropped,
        })
    }

    /// The probe's registry entry.
    pub fn probe(&self) -> &'static ProbeInfo {
        self.probe
    }

    /// Prepares the host ([`Environment::prepare`]), then loads and attaches the probe.
    /// Starting a running session does nothing; a stopped one starts again.
    pub fn start(&mut self) -> Result<()> {
        Environment::prepare()?;
        self.runtime.start_plugin(self.id)
    }

    /// Stops the probe: one last collect, whose records join the queue, then everything
    /// is detached. Queued records stay readable. Stopping a stopped session does nothing.
    pub fn stop(&mut self) -> Result<()> {
        self.runtime.stop_plugin(self.id)?;
        // The final collect went to the runtime's sink thread; wait until it is in the
        // queue, so that a poll right after this takes all of it. The queue never blocks
        // that thread (a full queue drops and counts), so this is quick.
        self.runtime.wait_delivered(FINAL_DELIVERY_TIMEOUT);
        Ok(())
    }

    /// Whether the probe runs.
    pub fn is_running(&self) -> bool {
        matches!(self.status(), PluginStatus::Running)
    }

    /// The probe's status.
    pub fn status(&self) -> PluginStatus {
        // The id came from this runtime, so it is known to it.
        self.runtime
            .status(self.id)
            .unwrap_or(PluginStatus::Stopped)
    }

    /// Waits up to `timeout` for a record, then returns it and every other record queued.
    ///
    /// An empty result means nothing arrived in time. A probe that failed while running
    /// ([`PluginStatus::Failed`]) is reported as [`Error::Plugin`] once its queued records
    /// were taken.
    pub fn poll(&self, timeout: Duration) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.poll_into(timeout, usize::MAX, &mut out)?;
        Ok(out)
    }

    /// Like [`poll`](Self::poll), but appends at most `max` records to `out` and returns
    /// how many it appended.
    pub fn poll_into(&self, timeout: Duration, max: usize, out: &mut Vec<Record>) -> Result<usize> {
        let before = out.len();
        if max == 0 {
            return Ok(0);
        }
        if let Ok(record) = self.records.try_recv() {
            out.push(record);
        } else {
            self.failure()?;
            let deadline = deadline_after(timeout);
            match self.records.recv_deadline(deadline) {
                Ok(record) => out.push(record),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    self.failure()?;
                    return Ok(0);
                }
            }
        }
        while out.len() - before < max {
            match self.records.try_recv() {
                Ok(record) => out.push(record),
                Err(_) => break,
            }
        }
        Ok(out.len() - before)
    }

    /// Records queued and not yet polled.
    pub fn queued(&self) -> usize {
        self.records.len()
    }

    /// Records lost on their way to the caller: the queue was full, or the runtime's own
    /// channel was.
    pub fn records_dropped(&self) -> u64 {
        self.queue_dropped.load(Ordering::Relaxed) + self.runtime.records_dropped()
    }

    fn failure(&self) -> Result<()> {
        match self.status() {
            PluginStatus::Failed { reason } => Err(Error::Plugin {
                plugin: self.probe.name.to_owned(),
                reason,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for ProbeSession {
    fn drop(&mut self) {
        // Errors were already reported through the status; a drop cannot return them.
        let _ = self.runtime.shutdown();
    }
}

/// The runtime's sink for a session: never blocks the runtime, counts what it drops.
struct QueueSink {
    sender: Sender<Record>,
    dropped: Arc<AtomicU64>,
}

impl Sink for QueueSink {
    fn write(&mut self, record: &Record) -> Result<()> {
        match self.sender.try_send(record.clone()) {
            Ok(()) => Ok(()),
            // The caller closed the session (the receiver is gone) or polls too slowly:
            // either way the record is lost, and counted.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CATALOGUE;

    fn probe(name: &str) -> &'static ProbeInfo {
        CATALOGUE.find(name).unwrap()
    }

    #[test]
    fn bad_option_is_invalid_argument() {
        let options = ProbeOptions::new().with("no_such_option", "1");
        let err =
            ProbeSession::open(probe("runqlat"), &options, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn missing_pid_is_not_found() {
        let options = ProbeOptions::new().with_pid(u32::MAX - 1);
        let err =
            ProbeSession::open(probe("syscount"), &options, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotFound {
                    what: "process",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn zero_interval_and_capacity_are_refused() {
        let options = ProbeOptions::new();
        assert!(ProbeSession::open(probe("runqlat"), &options, Duration::ZERO).is_err());
        assert!(
            ProbeSession::with_capacity(probe("runqlat"), &options, Duration::from_secs(1), 0)
                .is_err()
        );
    }

    #[test]
    fn full_queue_counts_drops() {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut sink = QueueSink {
            sender,
            dropped: Arc::clone(&dropped),
        };
        let record: Record =
            coolbpf_core::Metric::counter("t", "n", coolbpf_core::labels! {}, 1).into();
        for _ in 0..3 {
            sink.write(&record).unwrap();
        }
        assert_eq!(receiver.len(), 1);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }
}
