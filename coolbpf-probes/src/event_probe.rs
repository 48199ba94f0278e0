//! What the ring-buffer event probes ([`execsnoop`](crate::execsnoop),
//! [`runqslower`](crate::runqslower), [`nosched`](crate::nosched)) share: a loaded
//! object whose `events` ring buffer streams decoded events ([`EventProbe`]), and the
//! runtime plugin that runs one ([`EventPlugin`]).

use coolbpf_core::stream::{Delivery, EventStream, Losses};
use coolbpf_core::{BpfObject, MapView, Plugin, PluginContext, Record, Result};
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
    pub(crate) fn start(
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
    pub(crate) fn map(&self, name: &str) -> Result<MapView> {
        self.object.map(name)
    }
}

/// An event probe [`EventPlugin`] can run: how it starts, how its events become records,
/// and what it adds every interval.
pub trait EventSource: Sized + Send + 'static {
    /// The probe's name in the registry and in its records.
    const NAME: &'static str;
    /// How it is configured.
    type Config: Default + Send;
    /// What it streams.
    type Event: Send + 'static;

    /// Loads and attaches it; events arrive by `delivery`.
    fn start(config: &Self::Config, delivery: Delivery<Self::Event>) -> Result<Self>;

    /// What turns each event into a record, on the stream's thread.
    fn recorder() -> Box<dyn FnMut(Self::Event) -> Record + Send>;

    /// The records of one collect: counters and losses.
    fn collect(&self, out: &mut Vec<Record>) -> Result<()>;

    /// Detaches and drains.
    fn stop(&mut self) -> Result<()>;
}

/// An [`EventSource`] as a runtime plugin: each event is emitted as it arrives, and
/// every interval adds what the source collects.
pub struct EventPlugin<S: EventSource> {
    config: S::Config,
    running: Option<S>,
}

impl<S: EventSource> EventPlugin<S> {
    /// A plugin that will run with `config`.
    pub fn new(config: S::Config) -> Self {
        Self {
            config,
            running: None,
        }
    }
}

impl<S: EventSource> Default for EventPlugin<S> {
    fn default() -> Self {
        Self::new(S::Config::default())
    }
}

impl<S: EventSource> Plugin for EventPlugin<S> {
    fn name(&self) -> &str {
        S::NAME
    }

    fn start(&mut self, ctx: &PluginContext) -> Result<()> {
        let emitter = ctx.emitter();
        let mut record = S::recorder();
        let delivery = Delivery::callback(move |event| {
            // A full runtime channel is counted by the emitter itself.
            emitter.emit(record(event));
        });
        self.running = Some(S::start(&self.config, delivery)?);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        match &self.running {
            Some(running) => running.collect(out),
            None => Ok(()),
        }
    }

    fn stop(&mut self) -> Result<()> {
        match self.running.take() {
            Some(mut running) => running.stop(),
            None => Ok(()),
        }
    }
}
