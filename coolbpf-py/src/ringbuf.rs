//! `coolbpf.RingBuffer`: one ring buffer's events, read from Python in batches of bytes.
//!
//! The stream's thread copies each payload into one growing arena (the bytes of every
//! event back to back, and where each ends) under a mutex; `read` takes the arena whole
//! and builds its list of `bytes` from it. Per event that is one copy and no allocation
//! on the stream's thread, where a channel of owned buffers would cost an allocation, a
//! free and a hand-off each: what is left is the `bytes` objects Python needs anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use coolbpf_core::stream::{Delivery, EventStream, Losses};
use coolbpf_core::{BpfObject, Error, Result};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::convert::{seconds, to_py};
use crate::errors::IntoPy;
use crate::wait_sliced;

/// Events back to back.
#[derive(Debug, Default)]
struct Arena {
    data: Vec<u8>,
    /// Where each event ends in `data`.
    ends: Vec<usize>,
}

impl Arena {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, payload: &[u8]) {
        self.data.extend_from_slice(payload);
        self.ends.push(self.data.len());
    }

    fn events(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.data[start..self.ends[i]]
        })
    }

    /// Moves the first `count` events out (the rest stay, in order).
    fn split_front(&mut self, count: usize) -> Self {
        let cut = self.ends[count - 1];
        let front = Self {
            data: self.data.drain(..cut).collect(),
            ends: self.ends.drain(..count).collect(),
        };
        for end in &mut self.ends {
            *end -= cut;
        }
        front
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }
}

#[derive(Debug, Default)]
struct QueueState {
    arena: Arena,
    /// The arena the last read handed back, reused so that it need not grow again.
    spare: Arena,
    /// The stream stopped: nothing more will arrive.
    closed: bool,
}

/// The events waiting for Python, at most `capacity`.
#[derive(Debug)]
struct EventQueue {
    state: Mutex<QueueState>,
    arrived: Condvar,
    capacity: usize,
    /// Events that found the queue full.
    overflow: AtomicU64,
}

impl EventQueue {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            arrived: Condvar::new(),
            capacity,
            overflow: AtomicU64::new(0),
        }
    }

    /// A panic while holding the lock cannot leave the arena half-updated in a way a
    /// reader could misread (an event's bytes go in before its end), so a poisoned
    /// lock is still usable.
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, payload: &[u8]) {
        let mut state = self.lock();
        if state.arena.len() >= self.capacity {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.arena.push(payload);
        drop(state);
        self.arrived.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_all();
    }

    /// Up to `max` events, waiting up to `wait` for the first; `None` when none came in
    /// time, an empty arena when the stream stopped and nothing is left.
    fn take(&self, max: usize, wait: Duration) -> Option<Arena> {
        let state = self.lock();
        let (mut state, _) = self
            .arrived
            .wait_timeout_while(state, wait, |s| s.arena.len() == 0 && !s.closed)
            .unwrap_or_else(PoisonError::into_inner);
        if state.arena.len() == 0 {
            return state.closed.then(Arena::default);
        }
        if state.arena.len() > max {
            return Some(state.arena.split_front(max));
        }
        let spare = std::mem::take(&mut state.spare);
        Some(std::mem::replace(&mut state.arena, spare))
    }

    /// Hands an arena back for reuse.
    fn recycle(&self, mut arena: Arena) {
        arena.clear();
        self.lock().spare = arena;
    }
}

/// Events of one ring buffer, read in batches of raw bytes.
#[pyclass(module = "coolbpf._native", name = "RingBuffer")]
pub struct PyRingBuffer {
    map: String,
    queue: Arc<EventQueue>,
    stream: Mutex<Option<EventStream<()>>>,
}

impl PyRingBuffer {
    /// Consumes ring buffer `map` of `object` on a framework thread into a queue of
    /// `capacity` events.
    pub(crate) fn open(object: &BpfObject, map: &str, capacity: usize) -> Result<Self> {
        let queue = Arc::new(EventQueue::new(capacity));
        let sink = Arc::clone(&queue);
        let decode = move |payload: &[u8]| {
            sink.push(payload);
            Ok(())
        };
        let stream = EventStream::ring_buffer(object, map, decode, Delivery::callback(|()| {}))?;
        Ok(Self {
            map: map.to_owned(),
            queue,
            stream: Mutex::new(Some(stream)),
        })
    }

    fn stream(&self) -> MutexGuard<'_, Option<EventStream<()>>> {
        self.stream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream's counts, with the queue's overflow moved from delivered to lost.
    fn counted_losses(&self) -> Result<Losses> {
        let guard = self.stream();
        let stream = guard.as_ref().ok_or(Error::Closed("ring buffer"))?;
        let mut losses = stream.losses()?;
        // The stream counts an event delivered once the queue saw it; one the full
        // queue turned away never reached Python.
        let overflow = self.queue.overflow.load(Ordering::Relaxed);
        losses.delivered = losses.delivered.saturating_sub(overflow);
        losses.channel_overflow += overflow;
        Ok(losses)
    }
}

#[pymethods]
impl PyRingBuffer {
    /// The ring buffer map's name.
    #[getter]
    fn map(&self) -> &str {
        &self.map
    }

    /// Waits up to `timeout` seconds (`None`: until one arrives) for an event, then
    /// returns it with every other event queued, at most `max` in all, as a list of
    /// bytes. An empty list: nothing arrived in time (or the stream stopped and is empty).
    #[pyo3(signature = (max=65_536, timeout=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let timeout = seconds(timeout, "timeout")?;
        if max == 0 {
            return Ok(PyList::empty(py));
        }
        let queue = &self.queue;
        let Some(batch) = wait_sliced(py, timeout, |slice| Ok(queue.take(max, slice)))? else {
            return Ok(PyList::empty(py));
        };
        let list = PyList::new(py, batch.events().map(|event| PyBytes::new(py, event)));
        self.queue.recycle(batch);
        list
    }

    /// Events waiting to be read.
    #[getter]
    fn pending(&self) -> usize {
        self.queue.lock().arena.len()
    }

    /// Delivered and lost counts so far: a dict with `received`, `delivered`,
    /// `channel_overflow`, `decode_errors`, `kernel` (per source) and `total_lost`.
    fn losses<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let losses = self.counted_losses().py_err()?;
        let value = to_py(py, &losses)?;
        value.set_item("total_lost", losses.total())?;
        Ok(value)
    }

    /// Drains what the kernel holds and stops the consumer thread; queued events stay
    /// readable.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            let stopped = match self.stream().as_mut() {
                Some(stream) => stream.stop(),
                None => Ok(()),
            };
            self.queue.close();
            stopped
        })
        .py_err()
    }

    fn __repr__(&self) -> String {
        format!("<coolbpf.RingBuffer {:?}>", self.map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(events: &[&[u8]]) -> EventQueue {
        let queue = EventQueue::new(3);
        for event in events {
            queue.push(event);
        }
        queue
    }

    #[test]
    fn events_come_back_in_order_and_whole() {
        let queue = filled(&[b"ab", b"", b"cde"]);
        let batch = queue.take(10, Duration::ZERO).unwrap();
        let events: Vec<&[u8]> = batch.events().collect();
        assert_eq!(events, [&b"ab"[..], b"", b"cde"]);
        queue.recycle(batch);
        assert!(
            queue.take(10, Duration::ZERO).is_none(),
            "empty, still open"
        );
    }

    #[test]
    fn a_smaller_batch_leaves_the_rest_in_order() {
        let queue = filled(&[b"one", b"two", b"three"]);
        let front = queue.take(2, Duration::ZERO).unwrap();
        assert_eq!(front.events().collect::<Vec<_>>(), [b"one", b"two"]);
        let rest = queue.take(2, Duration::ZERO).unwrap();
        assert_eq!(rest.events().collect::<Vec<_>>(), [&b"three"[..]]);
    }

    #[test]
    fn a_full_queue_counts_what_it_turns_away() {
        let queue = filled(&[b"1", b"2", b"3", b"4", b"5"]);
        assert_eq!(queue.overflow.load(Ordering::Relaxed), 2);
        assert_eq!(queue.take(10, Duration::ZERO).unwrap().len(), 3);
    }

    #[test]
    fn a_closed_queue_drains_then_reads_empty() {
        let queue = filled(&[b"x"]);
        queue.close();
        assert_eq!(queue.take(10, Duration::from_secs(5)).unwrap().len(), 1);
        let started = std::time::Instant::now();
        assert_eq!(queue.take(10, Duration::from_secs(5)).unwrap().len(), 0);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no wait once closed"
        );
    }

    #[test]
    fn a_waiting_reader_wakes_when_an_event_arrives() {
        let queue = Arc::new(EventQueue::new(8));
        let producer = Arc::clone(&queue);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            producer.push(b"late");
        });
        let batch = queue.take(8, Duration::from_secs(10)).unwrap();
        assert_eq!(batch.events().collect::<Vec<_>>(), [b"late"]);
        thread.join().unwrap();
    }
}
