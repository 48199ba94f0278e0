//! What ring-buffer and perf-buffer streams share: per-payload handling, the consumer
//! thread's poll loop, and the caller's handle on it.

use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::delivery::{Deliverer, Delivery};
use super::loss::{KernelLossReader, Losses, StreamCounters};
use crate::error::{Error, Result};
use crate::map::MapView;
use crate::sys::poll::{self, Waker};
use crate::BpfObject;

/// Upper bound on one sleep; the waker normally ends it much sooner.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// A payload decoder.
pub(crate) type DecodeFn<T> = Box<dyn FnMut(&[u8]) -> Result<T> + Send>;

/// Runs on the consumer thread: decodes payloads and delivers them.
pub(crate) struct PayloadHandler<T> {
    decode: DecodeFn<T>,
    deliverer: Deliverer<T>,
    counters: Arc<StreamCounters>,
    /// Set when the caller's callback panicked: the stream stops instead of unwinding
    /// into libbpf's C code.
    failure: Arc<Mutex<Option<String>>>,
}

impl<T> PayloadHandler<T> {
    /// The counters this handler updates.
    pub(crate) fn counters(&self) -> &Arc<StreamCounters> {
        &self.counters
    }

    /// Handles one payload; returns false when the stream must stop.
    pub(crate) fn handle(&mut self, payload: &[u8]) -> bool {
        self.counters.add_received();
        let outcome = catch_unwind(AssertUnwindSafe(|| match (self.decode)(payload) {
            Ok(item) => self.deliverer.deliver(item),
            Err(_) => {
                self.counters.add_decode_error();
            }
        }));
        match outcome {
            Ok(()) => true,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                *self
                    .failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message);
                false
            }
        }
    }
}

/// Map `name` of `object`, which must be of type `kind` (called `what` in the error).
pub(crate) fn buffer_map(
    object: &BpfObject,
    name: &str,
    kind: libbpf_rs::MapType,
    what: &str,
) -> Result<MapView> {
    let view = object.map(name)?;
    if view.map_type() == kind {
        Ok(view)
    } else {
        Err(Error::InvalidArgument(format!(
            "map {name} is a {:?}, not {what}",
            view.map_type()
        )))
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".to_owned())
}

/// A stream of decoded events from a ring buffer or a perf buffer, consumed on a
/// framework thread.
///
/// Made by [`EventStream::ring_buffer`] or [`EventStream::perf_buffer`] (and their
/// `_raw` forms that deliver `Bytes`). Stopping it, or dropping it, drains what the
/// kernel already holds and joins the thread; events still in the channel stay readable
/// from [`receiver`](Self::receiver) after that.
pub struct EventStream<T> {
    receiver: Option<Receiver<T>>,
    counters: Arc<StreamCounters>,
    failure: Arc<Mutex<Option<String>>>,
    kernel_losses: KernelLossReader,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<Result<()>>>,
}

/// Everything the consumer thread needs besides its kernel buffer.
pub(crate) struct ThreadParts<T> {
    pub(crate) handler: PayloadHandler<T>,
    pub(crate) waker: Arc<Waker>,
}

/// The consumer loop both buffer kinds share: sleep until the buffer's epoll fd has data
/// or the waker fires, consume, and on stop consume once more so that everything the
/// kernel committed before the stop is accounted for.
pub(crate) fn consume_until_stopped(
    epoll_fd: RawFd,
    waker: &Waker,
    mut consume: impl FnMut() -> Result<()>,
) -> Result<()> {
    loop {
        let ready = poll::wait(epoll_fd, waker, MAX_SLEEP)
            .map_err(|e| Error::io("waiting for the event buffer", e))?;
        if ready.data {
            consume()?;
        }
        if ready.woken {
            return consume();
        }
    }
}

impl<T: Send + 'static> EventStream<T> {
    /// Sets up counters and delivery, then starts `body` on a named thread. `body` gets
    /// the handler and the stop flag and must poll until the flag is set, then drain.
    pub(crate) fn spawn(
        object: &BpfObject,
        thread_name: String,
        decode: DecodeFn<T>,
        delivery: Delivery<T>,
        body: impl FnOnce(ThreadParts<T>) -> Result<()> + Send + 'static,
    ) -> Result<Self> {
        let counters = Arc::new(StreamCounters::default());
        let failure = Arc::new(Mutex::new(None));
        let waker =
            Arc::new(Waker::new().map_err(|e| Error::io("cannot create the stream's waker", e))?);
        let (deliverer, receiver) = delivery.into_parts(Arc::clone(&counters));
        let handler = PayloadHandler {
            decode,
            deliverer,
            counters: Arc::clone(&counters),
            failure: Arc::clone(&failure),
        };
        let kernel_losses = KernelLossReader::new(object)?;
        let parts = ThreadParts {
            handler,
            waker: Arc::clone(&waker),
        };
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || body(parts))
            .map_err(|e| Error::io("cannot start the stream's consumer thread", e))?;
        Ok(Self {
            receiver,
            counters,
            failure,
            kernel_losses,
            waker,
            thread: Some(thread),
        })
    }

    /// The channel to read events from (`None` with callback delivery).
    pub fn receiver(&self) -> Option<&Receiver<T>> {
        self.receiver.as_ref()
    }

    /// Delivered and lost counts so far (reads the object's kernel-side loss map).
    pub fn losses(&self) -> Result<Losses> {
        Ok(Losses::snapshot(&self.counters, self.kernel_losses.read()?))
    }

    /// Whether the consumer thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Drains what the kernel holds, then stops the consumer thread. Idempotent. Reports
    /// a consume error, or a panic of the caller's callback (which stops the stream).
    pub fn stop(&mut self) -> Result<()> {
        self.waker.wake();
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let result = thread.join().map_err(|panic| Error::Plugin {
            plugin: "stream".into(),
            reason: panic_message(panic.as_ref()),
        })?;
        if let Some(message) = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return Err(Error::Plugin {
                plugin: "stream callback".into(),
                reason: message,
            });
        }
        result
    }
}

impl<T> Drop for EventStream<T> {
    fn drop(&mut self) {
        self.waker.wake();
        if let Some(thread) = self.thread.take() {
            // Errors were the caller's to collect with stop(); dropping just joins.
            let _ = thread.join();
        }
    }
}
