//! The embedded default: a broadcast channel inside one process.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use medledger_commands::relay::{PublishError, Publisher};
use medledger_commands::store::RecordedEvent;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::{Bus, BusError, Delivery};

#[derive(Clone)]
pub struct InProcessBus {
    tx: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        InProcessBus { tx }
    }
}

#[async_trait]
impl Publisher for InProcessBus {
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), PublishError> {
        // No subscriber yet is fine: they catch up from the store.
        let _ = self.tx.send(Arc::new(events.to_vec()));
        Ok(())
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn subscribe(&self, _consumer: &str) -> Result<BoxStream<'static, Delivery>, BusError> {
        Ok(BroadcastStream::new(self.tx.subscribe())
            .map(|r| match r {
                Ok(events) => Delivery {
                    events: events.as_ref().clone(),
                    gap: false,
                    acks: vec![],
                },
                Err(BroadcastStreamRecvError::Lagged(_)) => Delivery {
                    events: vec![],
                    gap: true,
                    acks: vec![],
                },
            })
            .boxed())
    }

    async fn subscribe_ephemeral(&self) -> Result<BoxStream<'static, Delivery>, BusError> {
        self.subscribe("ephemeral").await
    }

    async fn healthy(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }
}
