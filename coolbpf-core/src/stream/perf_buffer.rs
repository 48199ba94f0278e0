//! Perf buffer (`BPF_MAP_TYPE_PERF_EVENT_ARRAY`) streams, for kernels without ring
//! buffers (before 5.8) or programs that use `bpf_perf_event_output`.

use std::sync::Arc;

use bytes::Bytes;
use libbpf_rs::{MapType, PerfBufferBuilder};

use super::consumer::{buffer_map, consume_until_stopped, EventStream, ThreadParts};
use super::Delivery;
use crate::error::{Error, Result};
use crate::BpfObject;

/// Per-CPU buffer size in pages (must be a power of two).
const DEFAULT_PAGES: usize = 64;

impl EventStream<Bytes> {
    /// Delivers every sample of perf event array `map` as raw bytes.
    pub fn perf_buffer_raw(
        object: &BpfObject,
        map: &str,
        delivery: Delivery<Bytes>,
    ) -> Result<Self> {
        Self::perf_buffer(
            object,
            map,
            |payload| Ok(Bytes::copy_from_slice(payload)),
            delivery,
        )
    }
}

impl<T: Send + 'static> EventStream<T> {
    /// Consumes perf event array `map`: decodes every sample and delivers it. Samples
    /// that did not fit are counted by the BPF side when it uses `coolbpf_perf_output()`,
    /// and reported late by the kernel as [`Losses::perf_lost`](super::Losses::perf_lost).
    pub fn perf_buffer(
        object: &BpfObject,
        map: &str,
        decode: impl FnMut(&[u8]) -> Result<T> + Send + 'static,
        delivery: Delivery<T>,
    ) -> Result<Self> {
        let view = buffer_map(object, map, MapType::PerfEventArray, "a perf event array")?;
        let name = format!("coolbpf-pb-{map}");
        Self::spawn(
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
                    .lost_cb(move |_cpu: i32, count: u64| counters.add_perf_lost(count))
                    .build()
                    .map_err(|e| Error::bpf("cannot set up the perf buffer consumer", e))?;
                consume_until_stopped(buffer.epoll_fd(), &waker, || {
                    buffer
                        .consume()
                        .map_err(|e| Error::bpf("perf buffer consume", e))
                })
            },
        )
    }
}
