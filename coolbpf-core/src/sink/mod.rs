//! Where [`Record`]s go: the [`Sink`] trait and the sinks every user needs.
//!
//! - [`JsonLinesSink`]: one JSON record per line, the `coolbpf --json` contract.
//! - [`TextSink`]: tables and bar charts for people.
//! - [`MemorySink`]: keeps records in memory behind a shared handle (tests, bindings).
//! - [`ChannelSink`]: forwards records to a channel the caller polls.

pub mod json;
pub mod text;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam_channel::{Sender, TrySendError};

use crate::error::{Error, Result};
use crate::record::Record;

pub use json::JsonLinesSink;
pub use text::TextSink;

/// A destination for records.
///
/// The runtime calls a sink from one thread only: [`write`](Self::write) for each record,
/// and [`flush`](Self::flush) after each collected batch and whenever it has caught up,
/// so a sink may buffer freely in between.
pub trait Sink: Send {
    /// Consumes one record.
    fn write(&mut self, record: &Record) -> Result<()>;

    /// Pushes out anything buffered.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A sink that keeps every record in memory.
///
/// Clones share the same storage: give one clone to the runtime and read through another.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<Record>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared storage itself, for callers that want to hold the lock.
    pub fn shared(&self) -> Arc<Mutex<Vec<Record>>> {
        Arc::clone(&self.records)
    }

    /// A copy of the records received so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().clone()
    }

    /// Removes and returns the records received so far.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.lock())
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A panic elsewhere while holding the lock cannot leave a `Vec` half-updated, so a
    /// poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for MemorySink {
    fn write(&mut self, record: &Record) -> Result<()> {
        self.lock().push(record.clone());
        Ok(())
    }
}

/// A sink that forwards records to a channel, for callers that poll (the C and Python
/// bindings' polling model).
///
/// It never blocks the runtime: when the channel is full the record is dropped and `write`
/// returns an error, which the runtime counts in its sink errors.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    sender: Sender<Record>,
}

impl ChannelSink {
    /// Forwards to `sender`.
    pub fn new(sender: Sender<Record>) -> Self {
        Self { sender }
    }
}

impl Sink for ChannelSink {
    fn write(&mut self, record: &Record) -> Result<()> {
        match self.sender.try_send(record.clone()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::io(
                "channel sink",
                io::Error::new(io::ErrorKind::WouldBlock, "channel full, record dropped"),
            )),
            Err(TrySendError::Disconnected(_)) => Err(Error::Closed("channel sink receiver")),
        }
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
    fn memory_sink_clones_share_storage() {
        let reader = MemorySink::new();
        let mut writer = reader.clone();
        writer.write(&record(1)).unwrap();
        writer.write(&record(2)).unwrap();
        assert_eq!(reader.len(), 2);
        assert_eq!(reader.take(), vec![record(1), record(2)]);
        assert!(reader.is_empty());
    }

    #[test]
    fn channel_sink_reports_full_and_closed() {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let mut sink = ChannelSink::new(sender);
        sink.write(&record(1)).unwrap();
        assert!(sink.write(&record(2)).is_err());
        assert_eq!(receiver.try_recv().unwrap(), record(1));
        drop(receiver);
        assert!(matches!(sink.write(&record(3)), Err(Error::Closed(_))));
    }
}
