//! Event streams: ring buffers and perf buffers consumed on a framework thread.
//!
//! An [`EventStream`] owns one consumer thread that polls the kernel buffer, decodes each payload
//! into a `T` and hands it over by [`Delivery`]: a bounded channel the caller reads, or a
//! callback. Every event that does not reach the caller is counted in [`Losses`]: kernel
//! reserve failures (from the object's `coolbpf_losses` map), perf lost samples, channel
//! overflow and decode errors. Stopping (or dropping) a stream drains what the kernel
//! already holds before the thread exits, so `delivered + lost` accounts for every event
//! the BPF side produced.

mod consumer;
mod delivery;
mod loss;
mod perf_buffer;
mod ringbuf;

pub use consumer::EventStream;
pub use delivery::Delivery;
pub use loss::{KernelLosses, Losses};
