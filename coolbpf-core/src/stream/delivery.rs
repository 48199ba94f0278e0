//! How decoded events reach the caller.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::loss::StreamCounters;

/// How a stream hands events over.
pub enum Delivery<T> {
    /// A bounded channel of this capacity; when it is full, events are dropped and
    /// counted as `channel_overflow` rather than stalling the consumer (which would
    /// make the kernel drop them instead, less visibly).
    Channel {
        /// Channel capacity in events.
        capacity: usize,
    },
    /// A callback run on the stream's thread for every event.
    Callback(Box<dyn FnMut(T) + Send>),
}

impl<T> Delivery<T> {
    /// A bounded channel of `capacity` events.
    pub fn channel(capacity: usize) -> Self {
        Self::Channel { capacity }
    }

    /// A callback.
    pub fn callback(callback: impl FnMut(T) + Send + 'static) -> Self {
        Self::Callback(Box::new(callback))
    }

    /// Splits into the consumer-side deliverer and the caller-side receiver.
    pub(crate) fn into_parts(
        self,
        counters: Arc<StreamCounters>,
    ) -> (Deliverer<T>, Option<Receiver<T>>) {
        match self {
            Self::Channel { capacity } => {
                let (sender, receiver) = crossbeam_channel::bounded(capacity.max(1));
                (
                    Deliverer {
                        target: Target::Channel(sender),
                        counters,
                    },
                    Some(receiver),
                )
            }
            Self::Callback(callback) => (
                Deliverer {
                    target: Target::Callback(callback),
                    counters,
                },
                None,
            ),
        }
    }
}

impl<T> std::fmt::Debug for Delivery<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Channel { capacity } => write!(f, "Delivery::Channel({capacity})"),
            Self::Callback(_) => f.write_str("Delivery::Callback"),
        }
    }
}

enum Target<T> {
    Channel(Sender<T>),
    Callback(Box<dyn FnMut(T) + Send>),
}

/// The consumer thread's end of a [`Delivery`].
pub(crate) struct Deliverer<T> {
    target: Target<T>,
    counters: Arc<StreamCounters>,
}

impl<T> Deliverer<T> {
    /// Hands one event over, counting it as delivered or as lost.
    pub(crate) fn deliver(&mut self, item: T) {
        match &mut self.target {
            Target::Channel(sender) => match sender.try_send(item) {
                Ok(()) => self.counters.add_delivered(),
                // Full, or nobody is reading any more: either way the event is lost.
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.counters.add_channel_overflow();
                }
            },
            Target::Callback(callback) => {
                callback(item);
                self.counters.add_delivered();
            }
        }
    }
}
