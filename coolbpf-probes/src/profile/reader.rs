//! Reading the sample ring buffer: drained when the caller wants a profile, and by a
//! background thread only when the BPF side reports the ring a quarter full.
//!
//! The generic [`EventStream`](coolbpf_core::stream::EventStream) delivers events as they
//! are woken up for, which for a profiler means either a wake-up per sample (a context
//! switch of the profiler on some CPU for every sample) or samples left in the ring when a
//! profile is taken. The profiler needs neither: it wants every sample taken so far at
//! the moment it asks, and as few wake-ups as possible in between. So the ring is drained
//! synchronously by [`SampleReader::drain`], and the thread here only keeps it from
//! filling between two drains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use coolbpf_core::sys::poll::{self, Waker};
use coolbpf_core::{Error, MapView, Result};
use libbpf_rs::{RingBuffer, RingBufferBuilder};

use super::sample::RawSample;

/// Upper bound on one sleep of the background thread; the ring's wake-up or the stop
/// signal normally ends it sooner.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// What the ring buffer callback counts.
#[derive(Debug, Default)]
pub(crate) struct ReadCounters {
    /// Records read out of the ring.
    pub(crate) received: AtomicU64,
    /// Records that did not decode.
    pub(crate) decode_errors: AtomicU64,
}

/// The ring buffer, its background thread, and the counters of what was read.
pub(crate) struct SampleReader {
    ring: Arc<Mutex<RingBuffer<'static>>>,
    counters: Arc<ReadCounters>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl SampleReader {
    /// Reads ring buffer `map`, handing every decoded sample to `on_sample`.
    pub(crate) fn start(
        map: &MapView,
        mut on_sample: impl FnMut(RawSample) + Send + 'static,
    ) -> Result<Self> {
        let counters = Arc::new(ReadCounters::default());
        let seen = Arc::clone(&counters);
        let mut builder = RingBufferBuilder::new();
        builder
            .add(map.handle(), move |payload: &[u8]| {
                seen.received.fetch_add(1, Ordering::Relaxed);
                match RawSample::decode(payload) {
                    Ok(raw) => on_sample(raw),
                    Err(_) => {
                        seen.decode_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                0
            })
            .map_err(|e| Error::bpf("cannot read the profile ring buffer", e))?;
        let ring = builder
            .build()
            .map_err(|e| Error::bpf("cannot read the profile ring buffer", e))?;
        let epoll_fd = ring.epoll_fd();
        let ring = Arc::new(Mutex::new(ring));
        let waker =
            Arc::new(Waker::new().map_err(|e| Error::io("cannot create the profiler's waker", e))?);
        let thread = {
            let (ring, waker) = (Arc::clone(&ring), Arc::clone(&waker));
            std::thread::Builder::new()
                .name("coolbpf-profile".into())
                .spawn(move || -> Result<()> {
                    loop {
                        let ready = poll::wait(epoll_fd, &waker, MAX_SLEEP)
                            .map_err(|e| Error::io("waiting for profile samples", e))?;
                        if ready.woken {
                            return Ok(());
                        }
                        if ready.data {
                            consume(&lock(&ring))?;
                        }
                    }
                })
                .map_err(|e| Error::io("cannot start the profiler's reader thread", e))?
        };
        Ok(Self {
            ring,
            counters,
            waker,
            thread: Some(thread),
        })
    }

    /// Reads everything the ring holds now.
    pub(crate) fn drain(&self) -> Result<()> {
        consume(&lock(&self.ring))
    }

    /// What was read so far.
    pub(crate) fn counters(&self) -> &ReadCounters {
        &self.counters
    }

    /// Stops the background thread and drains what is left. Idempotent.
    pub(crate) fn stop(&mut self) -> Result<()> {
        self.waker.wake();
        let joined = match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::Plugin {
                    plugin: "profile".into(),
                    reason: "the ring buffer reader thread panicked".into(),
                })
            }),
            None => Ok(()),
        };
        self.drain()?;
        joined
    }
}

impl Drop for SampleReader {
    fn drop(&mut self) {
        self.waker.wake();
        if let Some(thread) = self.thread.take() {
            // Errors were the caller's to collect with stop(); dropping just joins.
            let _ = thread.join();
        }
    }
}

fn consume(ring: &RingBuffer<'static>) -> Result<()> {
    let ret = ring.consume_raw();
    if ret < 0 {
        return Err(Error::io(
            "reading the profile ring buffer",
            std::io::Error::from_raw_os_error(-ret),
        ));
    }
    Ok(())
}

/// The ring is only ever consumed under this lock; a panic cannot happen while it is held
/// (the callback neither panics nor unwinds into libbpf), so poisoning carries no meaning.
fn lock<'a>(ring: &'a Mutex<RingBuffer<'static>>) -> MutexGuard<'a, RingBuffer<'static>> {
    ring.lock().unwrap_or_else(PoisonError::into_inner)
}
