//! BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`) streams.

use bytes::Bytes;
use crossbeam_channel::Receiver;
use libbpf_rs::{MapType, RingBufferBuilder};

use super::consumer::{consume_until_stopped, StreamHandle, ThreadParts};
use super::{Delivery, Losses};
use crate::error::{Error, Result};
use crate::BpfObject;

/// Consumes one ring buffer map on a framework thread.
///
/// Dropping the stream (or calling [`stop`](Self::stop)) drains the ring buffer and joins
/// the thread; events still in the channel stay readable from [`receiver`](Self::receiver).
pub struct RingBufStream<T: Send + 'static> {
    handle: StreamHandle<T>,
}

impl RingBufStream<Bytes> {
    /// Delivers every payload as raw bytes.
    pub fn raw(object: &BpfObject, map: &str, delivery: Delivery<Bytes>) -> Result<Self> {
        Self::new(
            object,
            map,
            |payload| Ok(Bytes::copy_from_slice(payload)),
            delivery,
        )
    }
}

impl<T: Send + 'static> RingBufStream<T> {
    /// Decodes every payload of ring buffer `map` with `decode` and delivers it.
    /// A payload `decode` rejects is counted in [`Losses::decode_errors`].
    pub fn new(
        object: &BpfObject,
        map: &str,
        decode: impl FnMut(&[u8]) -> Result<T> + Send + 'static,
        delivery: Delivery<T>,
    ) -> Result<Self> {
        let view = object.map(map)?;
        if view.map_type() != MapType::RingBuf {
            return Err(Error::InvalidArgument(format!(
                "map {map} is a {:?}, not a ring buffer",
                view.map_type()
            )));
        }
        let name = format!("coolbpf-rb-{map}");
        let handle = StreamHandle::spawn(
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
                        // -EINVAL here is a callback asking to stop (it panicked): the
                        // handle reports the panic itself.
                        return Err(Error::io(
                            "ring buffer consume",
                            std::io::Error::from_raw_os_error(-ret),
                        ));
                    }
                    Ok(())
                })
            },
        )?;
        Ok(Self { handle })
    }

    /// The channel to read events from (`None` with callback delivery).
    pub fn receiver(&self) -> Option<&Receiver<T>> {
        self.handle.receiver()
    }

    /// Delivered and lost counts so far (reads the object's kernel-side loss map).
    pub fn losses(&self) -> Result<Losses> {
        self.handle.losses()
    }

    /// Whether the consumer thread is still running.
    pub fn is_running(&self) -> bool {
        self.handle.is_running()
    }

    /// Drains the ring buffer and stops the consumer thread. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.handle.stop()
    }
}
