//! The bus carries committed events from the relay to projections. It is
//! transport, never truth: it may duplicate, and whatever it loses the
//! runner reads again from the store.

pub mod in_process;
pub mod nats;

use async_trait::async_trait;
use futures::stream::BoxStream;
use medledger_commands::relay::Publisher;
use medledger_commands::store::RecordedEvent;

/// Some events off the bus, in the order the bus had them.
pub struct Delivery {
    pub events: Vec<RecordedEvent>,
    /// The bus skipped something (e.g. a slow in-process subscriber lagged):
    /// the runner must catch up from the store.
    pub gap: bool,
    pub(crate) acks: Vec<async_nats::jetstream::Message>,
}

impl Delivery {
    /// Take `other`'s events and acknowledgements into this delivery (the
    /// runner applies what is already waiting in one transaction).
    pub fn absorb(&mut self, mut other: Delivery) {
        self.events.append(&mut other.events);
        self.gap |= other.gap;
        self.acks.append(&mut other.acks);
    }

    /// Tell the bus these events are done with.
    pub async fn ack(self) {
        let acks = self.acks.iter().map(|m| m.ack());
        for r in futures::future::join_all(acks).await {
            if let Err(e) = r {
                tracing::debug!(error = %e, "ack failed; the message will be delivered again");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bus: {0}")]
pub struct BusError(pub String);

#[async_trait]
pub trait Bus: Publisher {
    /// A durable subscription named `consumer`: several processes using the
    /// same name share its work.
    async fn subscribe(&self, consumer: &str) -> Result<BoxStream<'static, Delivery>, BusError>;

    /// A subscription of this process alone, from now on, without
    /// acknowledgements (caches that every node must keep fresh).
    async fn subscribe_ephemeral(&self) -> Result<BoxStream<'static, Delivery>, BusError>;

    /// Is the bus reachable right now?
    async fn healthy(&self) -> bool;

    fn kind(&self) -> &'static str;
}
