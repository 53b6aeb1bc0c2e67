//! NATS JetStream: one stream for the whole log, subjects
//! `<prefix>.<context>.<EventType>`, the event id as `Nats-Msg-Id` (the
//! server drops duplicates inside its window), one durable pull consumer per
//! projection shared by every process that runs it.
//!
//! JetStream may acknowledge before it fsyncs; that is why the relay keeps
//! its own checkpoint in the store and projections fill gaps from the store.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use medledger_commands::codec::context_of;
use medledger_commands::relay::{PublishError, Publisher};
use medledger_commands::store::RecordedEvent;

use super::{Bus, BusError, Delivery};

#[derive(Clone, Debug)]
pub struct NatsConfig {
    pub url: String,
    /// JetStream stream name (tests use a unique one each).
    pub stream: String,
    /// Subject prefix; events go to `<prefix>.<context>.<EventType>`.
    pub subject_prefix: String,
}

impl NatsConfig {
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            stream: "MEDLEDGER".into(),
            subject_prefix: "medledger".into(),
        }
    }
}

#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    config: NatsConfig,
}

impl NatsBus {
    /// Connect (retrying in the background if the server is down, so the
    /// platform starts and commands succeed without it) and make sure the
    /// stream exists once the server answers.
    pub async fn connect(config: NatsConfig) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("medledger")
            .retry_on_initial_connect()
            .connect(&config.url)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let js = jetstream::new(client.clone());
        let bus = NatsBus { client, js, config };
        if let Err(e) = bus.ensure_stream().await {
            tracing::warn!(error = %e, "JetStream stream not ready yet; will retry");
        }
        Ok(bus)
    }

    async fn ensure_stream(&self) -> Result<jetstream::stream::Stream, BusError> {
        self.js
            .get_or_create_stream(jetstream::stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![format!("{}.>", self.config.subject_prefix)],
                duplicate_window: Duration::from_secs(120),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError(e.to_string()))
    }

    /// Delete the stream (tests clean up after themselves).
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        self.js
            .delete_stream(&self.config.stream)
            .await
            .map(|_| ())
            .map_err(|e| BusError(e.to_string()))
    }

    pub fn subject_for(&self, e: &RecordedEvent) -> String {
        format!(
            "{}.{}.{}",
            self.config.subject_prefix,
            context_of(&e.event_type),
            e.event_type
        )
    }
}

#[async_trait]
impl Publisher for NatsBus {
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), PublishError> {
        let err = |e: &dyn std::fmt::Display| PublishError(e.to_string());
        // Pipeline the publishes (one connection keeps their order), then wait for every ack.
        let mut acks = Vec::with_capacity(events.len());
        for e in events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, e.event_id.to_string().as_str());
            let body = serde_json::to_vec(e).map_err(|x| err(&x))?;
            let ack = self
                .js
                .publish_with_headers(self.subject_for(e), headers, body.into())
                .await
                .map_err(|x| err(&x))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|x| err(&x))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn subscribe(&self, consumer: &str) -> Result<BoxStream<'static, Delivery>, BusError> {
        let stream = self.ensure_stream().await?;
        let consumer = stream
            .get_or_create_consumer(
                consumer,
                pull::Config {
                    durable_name: Some(consumer.to_string()),
                    ack_policy: AckPolicy::Explicit,
                    // A new consumer starts at the end: the runner has caught up from the store.
                    deliver_policy: DeliverPolicy::New,
                    filter_subject: format!("{}.>", self.config.subject_prefix),
                    max_ack_pending: 20_000,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BusError(e.to_string()))?;
        deliveries(consumer, true).await
    }

    async fn subscribe_ephemeral(&self) -> Result<BoxStream<'static, Delivery>, BusError> {
        let stream = self.ensure_stream().await?;
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: None,
                ack_policy: AckPolicy::None,
                deliver_policy: DeliverPolicy::New,
                filter_subject: format!("{}.>", self.config.subject_prefix),
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(|e| BusError(e.to_string()))?;
        deliveries(consumer, false).await
    }

    async fn healthy(&self) -> bool {
        matches!(self.client.connection_state(), async_nats::connection::State::Connected)
    }

    fn kind(&self) -> &'static str {
        "nats-jetstream"
    }
}

/// Messages of a pull consumer, in ready batches; `acked` says whether the
/// consumer expects acknowledgements.
async fn deliveries(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    acked: bool,
) -> Result<BoxStream<'static, Delivery>, BusError> {
    let messages = consumer.messages().await.map_err(|e| BusError(e.to_string()))?;
    Ok(messages
        .ready_chunks(1000)
        .map(move |chunk| {
            let mut d = Delivery {
                events: Vec::with_capacity(chunk.len()),
                gap: false,
                acks: Vec::with_capacity(chunk.len()),
            };
            for m in chunk {
                match m {
                    Ok(m) => match serde_json::from_slice::<RecordedEvent>(&m.payload) {
                        Ok(e) => {
                            d.events.push(e);
                            if acked {
                                d.acks.push(m);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "undecodable bus message; reading the store instead");
                            d.gap = true;
                            if acked {
                                d.acks.push(m);
                            }
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "bus delivery error; reading the store instead");
                        d.gap = true;
                    }
                }
            }
            d
        })
        .boxed())
}
