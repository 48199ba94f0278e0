//! What the ring-buffer event probes ([`execsnoop`](crate::execsnoop),
//! [`runqslower`](crate::runqslower), [`nosched`](crate::nosched)) share: a loaded
//! object whose `events` ring buffer streams decoded events ([`EventProbe`]), and the
//! delivery that feeds their plugins.

use coolbpf_core::stream::{Delivery, EventStream, Losses};
use coolbpf_core::{BpfObject, MapView, PluginContext, Record, Result};
use crossbeam_channel::Receiver;

/// The ring buffer map every event probe sends its events through.
const EVENTS_MAP: &str = "events";

/// A loaded object whose `events` ring buffer streams events of type `E`; dropping it
/// stops the stream, then detaches and unloads.
pub struct EventProbe<E> {
    // Field order is drop order: the consumer stops (draining) before the object unloads.
    stream: EventStream<E>,
    object: BpfObject,
    programs: Vec<String>,
}

impl<E: Send + 'static> EventProbe<E> {
    /// Streams `object`'s events, decoded by `decode` and handed over by `delivery`, then
    /// attaches its programs with `attach` (which returns their names): the stream is
    /// ready before the first event can be produced.
    ///
    /// Public so that the probes of other crates (`coolbpf-gpu`) build on the same
    /// stream-then-attach order and loss accounting instead of a copy of it.
    pub fn start(
        mut object: BpfObject,
        decode: fn(&[u8]) -> Result<E>,
        delivery: Delivery<E>,
        attach: impl FnOnce(&mut BpfObject) -> Result<Vec<String>>,
    ) -> Result<Self> {
        let stream = EventStream::ring_buffer(&object, EVENTS_MAP, decode, delivery)?;
        let programs = attach(&mut object)?;
        Ok(Self {
            stream,
            object,
            programs,
        })
    }

    /// The object, to attach more of its programs while the stream runs (uprobes on a
    /// library found later).
    pub fn object_mut(&mut self) -> &mut BpfObject {
        &mut self.object
    }

    /// The programs attached.
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// The events channel (with channel delivery).
    pub fn receiver(&self) -> Option<&Receiver<E>> {
        self.stream.receiver()
    }

    /// Delivered and lost counts.
    pub fn losses(&self) -> Result<Losses> {
        self.stream.losses()
    }

    /// Detaches, then drains the ring buffer: events already produced are still delivered.
    pub fn stop(&mut self) -> Result<()> {
        self.object.detach_all();
        self.stream.stop()
    }

    /// One of the object's maps.
    pub fn map(&self, name: &str) -> Result<MapView> {
        self.object.map(name)
    }
}

/// A delivery that turns each event into a record with `record` (on the stream's thread)
/// and emits it through `ctx`'s emitter: how an event probe feeds its plugin.
pub fn emitting<E: Send + 'static>(
    ctx: &PluginContext,
    mut record: impl FnMut(E) -> Record + Send + 'static,
) -> Delivery<E> {
    let emitter = ctx.emitter();
    Delivery::callback(move |event| {
        // A full runtime channel is counted by the emitter itself.
        emitter.emit(record(event));
    })
}
