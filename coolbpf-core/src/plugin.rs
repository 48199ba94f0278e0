//! The [`Plugin`] trait: one probe (or any other source of [`Record`]s) as the
//! [`Runtime`](crate::Runtime) drives it, and the [`Emitter`] it pushes asynchronous
//! records through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use crate::error::Result;
use crate::record::Record;

/// A unit of observation the runtime starts, collects from periodically, and stops.
///
/// Each plugin runs on its own worker thread, so it only needs to be [`Send`]. The runtime
/// calls, in order: [`start`](Self::start) once, [`collect`](Self::collect) every interval,
/// a final [`collect`](Self::collect) when asked to stop, then [`stop`](Self::stop). An
/// `Err` or a panic from any of them marks the plugin failed without disturbing the others.
pub trait Plugin: Send {
    /// The plugin's name, used in statuses, failure reports and thread names.
    fn name(&self) -> &str;

    /// Attaches probes and prepares state.
    ///
    /// A plugin that produces events asynchronously (a ring buffer callback, say) keeps a
    /// clone of [`PluginContext::emitter`] for them.
    fn start(&mut self, ctx: &PluginContext) -> Result<()>;

    /// Appends the plugin's periodic records (usually metrics) to `out`.
    ///
    /// Called every interval, and once more when the plugin is stopped so that nothing
    /// accumulated since the last tick is lost.
    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()>;

    /// Detaches probes and releases resources.
    ///
    /// Also called after a failed `start` or `collect`, so it must cope with a plugin that
    /// is only partly started.
    fn stop(&mut self) -> Result<()>;

    /// The plugin's preferred collection interval; `None` uses the runtime's default.
    fn interval(&self) -> Option<Duration> {
        None
    }
}

/// What a plugin is given when it starts.
#[derive(Debug)]
pub struct PluginContext {
    name: String,
    interval: Duration,
    emitter: Emitter,
}

impl PluginContext {
    pub(crate) fn new(name: String, interval: Duration, emitter: Emitter) -> Self {
        Self {
            name,
            interval,
            emitter,
        }
    }

    /// The plugin's name, as the runtime knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interval the runtime collects this plugin at.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A handle to push records into the runtime's sink path from any thread.
    pub fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }
}

/// What travels from plugins to the sink thread.
///
/// A collected batch travels whole so that sinks see the records of one interval together
/// (the text sink renders them as one table) and the channel is touched once per collect.
#[derive(Debug)]
pub(crate) enum Message {
    /// One record from an [`Emitter`].
    Record(Record),
    /// Everything one `collect` produced.
    Batch(Vec<Record>),
    /// No record: answered on the sender once everything queued before it reached the
    /// sinks.
    Delivered(Sender<()>),
}

impl Message {
    fn len(&self) -> u64 {
        match self {
            Self::Record(_) => 1,
            Self::Batch(records) => records.len() as u64,
            Self::Delivered(_) => 0,
        }
    }
}

/// A cloneable handle that pushes [`Record`]s to the runtime's sinks without blocking.
///
/// The path to the sinks is a bounded channel. When it is full (the sinks are slower than
/// the producers) or closed (the runtime shut down), the record is dropped and counted:
/// [`dropped`](Self::dropped) here, and the runtime reports the total as the counter
/// `core/events_lost_total{source="runtime_channel"}` at shutdown.
#[derive(Debug, Clone)]
pub struct Emitter {
    sender: Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl Emitter {
    /// An emitter feeding a new channel of `capacity` messages, and that channel's receiver.
    pub(crate) fn channel(capacity: usize) -> (Self, Receiver<Message>) {
        let (sender, receiver) = crossbeam_channel::bounded(capacity);
        (
            Self {
                sender,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            receiver,
        )
    }

    /// Queues `record` for the sinks; returns `false` (and counts it) when it was dropped.
    pub fn emit(&self, record: impl Into<Record>) -> bool {
        match self.sender.try_send(Message::Record(record.into())) {
            Ok(()) => true,
            Err(TrySendError::Full(message) | TrySendError::Disconnected(message)) => {
                self.count_dropped(&message);
                false
            }
        }
    }

    /// Records dropped so far by this emitter and every clone of it, runtime included.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues a collected batch, waiting for room until `deadline`.
    ///
    /// Periodic records are few and matter more than a flood of events, so the runtime
    /// waits a little for them instead of dropping at once; still never forever.
    pub(crate) fn send_batch(&self, batch: Vec<Record>, deadline: Instant) {
        if batch.is_empty() {
            return;
        }
        if let Err(err) = self.sender.send_deadline(Message::Batch(batch), deadline) {
            self.count_dropped(&err.into_inner());
        }
    }

    /// Queues a [`Message::Delivered`] marker, waiting for room until `deadline`; `Ok`
    /// carries where the answer comes, `Err(true)` says the sink thread is gone (so it
    /// delivered everything it ever will), `Err(false)` that the channel stayed full.
    pub(crate) fn send_delivered_marker(
        &self,
        deadline: Instant,
    ) -> std::result::Result<Receiver<()>, bool> {
        let (answer, answered) = crossbeam_channel::bounded(1);
        match self
            .sender
            .send_deadline(Message::Delivered(answer), deadline)
        {
            Ok(()) => Ok(answered),
            Err(SendTimeoutError::Disconnected(_)) => Err(true),
            Err(SendTimeoutError::Timeout(_)) => Err(false),
        }
    }

    fn count_dropped(&self, message: &Message) {
        self.dropped.fetch_add(message.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Metric;

    fn record(value: u64) -> Record {
        Metric::counter("test", "n", crate::labels! {}, value).into()
    }

    #[test]
    fn full_channel_drops_and_counts() {
        let (emitter, receiver) = Emitter::channel(2);
        let clone = emitter.clone();
        assert!(emitter.emit(record(1)));
        assert!(clone.emit(record(2)));
        assert!(!emitter.emit(record(3)));
        clone.send_batch(vec![record(4), record(5)], Instant::now());
        assert_eq!(emitter.dropped(), 3);
        assert_eq!(receiver.len(), 2);
    }

    #[test]
    fn closed_channel_counts_drops() {
        let (emitter, receiver) = Emitter::channel(4);
        drop(receiver);
        assert!(!emitter.emit(record(1)));
        assert_eq!(emitter.dropped(), 1);
    }
}
