//! Perf buffer (`BPF_MAP_TYPE_PERF_EVENT_ARRAY`) streams, for kernels without ring
//! buffers (before 5.8) or programs that use `bpf_perf_event_output`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::Receiver;
use libbpf_rs::{MapType, PerfBufferBuilder};

use super::consumer::{consume_until_stopped, StreamHandle, ThreadParts};
use super::{Delivery, Losses};
use crate::error::{Error, Result};
use crate::BpfObject;

/// Per-CPU buffer size in pages (must be a power of two).
const DEFAULT_PAGES: usize = 64;

/// Consumes one perf event array map on a framework thread.
pub struct PerfBufStream<T: Send + 'static> {
    handle: StreamHandle<T>,
}

impl PerfBufStream<Bytes> {
    /// Delivers every sample as raw bytes.
    pub fn raw(object: &BpfObject, map: &str, delivery: Delivery<Bytes>) -> Result<Self> {
        Self::new(
            object,
            map,
            |payload| Ok(Bytes::copy_from_slice(payload)),
            delivery,
        )
    }
}

impl<T: Send + 'static> PerfBufStream<T> {
    /// Decodes every sample of perf event array `map` and delivers it. Samples the
    /// kernel could not fit are reported by the kernel and counted in
    /// [`Losses::perf_lost`].
    pub fn new(
        object: &BpfObject,
        map: &str,
        decode: impl FnMut(&[u8]) -> Result<T> + Send + 'static,
        delivery: Delivery<T>,
    ) -> Result<Self> {
        let view = object.map(map)?;
        if view.map_type() != MapType::PerfEventArray {
            return Err(Error::InvalidArgument(format!(
                "map {map} is a {:?}, not a perf event array",
                view.map_type()
            )));
        }
        let name = format!("coolbpf-pb-{map}");
        let handle = StreamHandle::spawn(
            object,
            name,
            Box::new(decode),
            delivery,
            move |parts: ThreadParts<T>| {
                let ThreadParts { mut handler, waker } = parts;
                let counters = Arc::clone(handler.counters());
                let buffer = PerfBufferBuilder::new(view.handle())
                    .pages(DEFAULT_PAGES)
                    .sample_cb(move |_cpu: i32, payload: &[u8]| {
                        // A perf buffer callback cannot stop consumption; a panicking callback
                        // is recorded by the handler and reported when the stream stops.
                        handler.handle(payload);
                    })
                    .lost_cb(move |_cpu: i32, count: u64| {
                        counters.perf_lost.fetch_add(count, Ordering::Relaxed);
                    })
                    .build()
                    .map_err(|e| Error::bpf("cannot set up the perf buffer consumer", e))?;
                consume_until_stopped(buffer.epoll_fd(), &waker, || {
                    buffer
                        .consume()
                        .map_err(|e| Error::bpf("perf buffer consume", e))
                })
            },
        )?;
        Ok(Self { handle })
    }

    /// The channel to read events from (`None` with callback delivery).
    pub fn receiver(&self) -> Option<&Receiver<T>> {
        self.handle.receiver()
    }

    /// Delivered and lost counts so far.
    pub fn losses(&self) -> Result<Losses> {
        self.handle.losses()
    }

    /// Whether the consumer thread is still running.
    pub fn is_running(&self) -> bool {
        self.handle.is_running()
    }

    /// Drains the perf buffers and stops the consumer thread. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.handle.stop()
    }
}
