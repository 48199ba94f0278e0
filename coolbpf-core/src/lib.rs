//! coolbpf-core: load and attach BPF programs, stream and aggregate what they see.
//!
//! The pieces, bottom up:
//!
//! - [`Environment`] prepares the host once (tracefs, bpffs, memlock) and turns missing
//!   privileges into errors that name the capability.
//! - [`Features`] says what this kernel really can do, found by loading and attaching
//!   tiny programs, cached per process and serializable.
//! - [`ObjectBuilder`] opens a BPF object from embedded bytes or a `.bpf.o` path, sets
//!   globals before load, and yields a [`BpfObject`] that owns its programs, maps and
//!   [`Attachment`]s: dropping it detaches everything.
//! - [`AttachTarget`] describes where a program goes (tracepoint, raw_tp, tp_btf,
//!   perf_event, uprobe, USDT, kprobe, fentry) as plain data.
//! - [`stream::EventStream`] consumes ring buffers and perf buffers on framework threads and delivers
//!   decoded events through bounded channels or callbacks, counting every loss.
//! - [`MapView`] reads counters and histograms (summing per-CPU values) and drains
//!   hash maps, with batch operations where the kernel has them.
//! - [`Plugin`], [`Runtime`] and [`Sink`] run many probes side by side, each on its own
//!   interval, isolating failures, and hand [`Record`]s to sinks.
//!
//! # Example: load your own object and read its ring buffer
//!
//! ```no_run
//! use coolbpf_core::{AttachTarget, Environment, ObjectBuilder, stream::{Delivery, EventStream}};
//! use std::time::Duration;
//!
//! # fn main() -> coolbpf_core::Result<()> {
//! Environment::prepare()?;
//! let mut object = ObjectBuilder::from_path("hello.bpf.o").load()?;
//! object.attach("handle_exec", &AttachTarget::tracepoint("sched", "sched_process_exec"))?;
//! let stream = EventStream::ring_buffer_raw(&object, "events", Delivery::channel(1024))?;
//! while let Ok(event) = stream.receiver().expect("channel").recv_timeout(Duration::from_secs(1)) {
//!     println!("{} bytes", event.len());
//! }
//! println!("lost: {}", stream.losses()?.total());
//! # Ok(()) }
//! ```

pub mod attach;
pub mod decode;
pub mod environment;
pub mod error;
pub mod features;
pub mod histogram;
pub mod map;
pub mod object;
pub mod plugin;
pub mod record;
pub mod runtime;
pub mod sink;
pub mod stream;
pub mod sys;
pub mod testing;

pub use attach::{AttachTarget, Attachment, PerfEventConfig, PerfEventScope};
pub use environment::{Environment, EnvironmentReport};
pub use error::{Error, ErrorKind, Result};
pub use features::{Feature, Features};
pub use histogram::{Bucket, Histogram, Layout};
pub use map::MapView;
pub use object::{BpfObject, GlobalValue, ObjectBuilder};
pub use plugin::{Emitter, Plugin, PluginContext};
pub use record::{Event, FieldValue, LabelValue, Labels, Metric, MetricValue, Record, StackSample};
pub use runtime::{PluginId, PluginInfo, PluginStatus, Runtime};
pub use sink::Sink;
pub use sys::perf_event::{PerfEventKind, Sampling};
