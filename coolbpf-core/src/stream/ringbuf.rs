//! BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`) streams.

use bytes::Bytes;
use libbpf_rs::{MapType, RingBufferBuilder};

use super::consumer::{buffer_map, consume_until_stopped, EventStream, ThreadParts};
use super::Delivery;
use crate::error::{Error, Result};
use crate::BpfObject;

impl EventStream<Bytes> {
    /// Delivers every payload of ring buffer `map` as raw bytes.
    pub fn ring_buffer_raw(
        object: &BpfObject,
        map: &str,
        delivery: Delivery<Bytes>,
    ) -> Result<Self> {
        Self::ring_buffer(
            object,
            map,
            |payload| Ok(Bytes::copy_from_slice(payload)),
            delivery,
        )
    }
}

impl<T: Send + 'static> EventStream<T> {
    /// Consumes ring buffer `map`: decodes every payload with `decode` and delivers it.
    /// A payload `decode` rejects is counted in
    /// [`Losses::decode_errors`](super::Losses::decode_errors).
    pub fn ring_buffer(
        object: &BpfObject,
        map: &str,
        decode: impl FnMut(&[u8]) -> Result<T> + Send + 'static,
        delivery: Delivery<T>,
    ) -> Result<Self> {
        let view = buffer_map(object, map, MapType::RingBuf, "a ring buffer")?;
        let name = format!("coolbpf-rb-{map}");
        Self::spawn(
            object,
            name,
            Box::new(decode),
            delivery,
            move |parts: ThreadParts<T>| {
                let ThreadParts { mut handler, waker } = parts;
                let mut builder = RingBufferBuilder::new();
                builder
                    .add(
                        view.handle(),
                        move |payload: &[u8]| if handler.handle(payload) { 0 } else { -1 },
                    )
                    .map_err(|e| Error::bpf("cannot set up the ring buffer consumer", e))?;
                let ring = builder
                    .build()
                    .map_err(|e| Error::bpf("cannot set up the ring buffer consumer", e))?;
                consume_until_stopped(ring.epoll_fd(), &waker, || {
                    let ret = ring.consume_raw();
                    if ret < 0 {
                        // A callback that panicked asks libbpf to stop with -1; the stream
                        // reports the panic itself when stopped.
                        return Err(Error::io(
                            "ring buffer consume",
                            std::io::Error::from_raw_os_error(-ret),
                        ));
                    }
                    Ok(())
                })
            },
        )
    }
}
