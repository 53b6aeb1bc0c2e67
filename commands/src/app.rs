//! The command side's entry point: load an aggregate from its own stream,
//! decide, append with optimistic concurrency, retry on conflict.

use std::sync::Arc;

use medledger_domain::decider::{Ctx, Decider};
use medledger_domain::event::DomainEvent;

use crate::clock::Clock;
use crate::codec::{decode, EventCodec, Metadata};
use crate::error::Error;
use crate::identity::AuthCache;
use crate::store::{AppendRequest, AppendResult, EventStore, ExpectedVersion, Guard, StoreError};

/// Everything a command handler needs.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn EventStore>,
    pub codec: EventCodec,
    pub clock: Arc<dyn Clock>,
    /// This process's token → principal cache; [`App::append`] drops what
    /// its own appends make stale, the bus does the same for other nodes.
    pub auth: AuthCache,
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Executed<E> {
    pub events: Vec<E>,
    /// `None` when the decision produced no events.
    pub append: Option<AppendResult>,
}

impl<E> Executed<E> {
    /// The global position of the last event written (0 if none).
    pub fn position(&self) -> u64 {
        self.append.as_ref().map(|a| a.last_position).unwrap_or(0)
    }
}

const MAX_ATTEMPTS: usize = 5;

impl App {
    pub fn new(store: Arc<dyn EventStore>, codec: EventCodec, clock: Arc<dyn Clock>) -> Self {
        App {
            store,
            codec,
            clock,
            auth: AuthCache::default(),
        }
    }

    /// Append, then forget cached sessions the new events revoke.
    pub async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let revoking: Vec<(String, serde_json::Value)> = request
            .streams
            .iter()
            .flat_map(|s| s.events.iter())
            .filter(|e| AuthCache::is_revoking(&e.event_type))
            .map(|e| (e.event_type.clone(), e.payload.clone()))
            .collect();
        let result = self.store.append(request).await?;
        for (event_type, payload) in revoking {
            self.auth.invalidate_for(&event_type, &payload);
        }
        Ok(result)
    }

    pub fn ctx(&self, metadata: &Metadata) -> Ctx {
        Ctx {
            now: self.clock.now(),
            actor: metadata.actor,
        }
    }

    /// Fold a stream into its decider's state; returns the state and version.
    pub async fn load<D>(&self, stream_id: &str) -> Result<(D::State, u64), Error>
    where
        D: Decider,
        D::Event: DomainEvent,
    {
        let recorded = self.store.read_stream(stream_id, 0).await?;
        let version = recorded.last().map(|e| e.stream_version).unwrap_or(0);
        let opened = self.codec.open(recorded).await?;
        let mut state = D::State::default();
        for e in &opened {
            state = D::evolve(state, &decode::<D::Event>(e)?);
        }
        Ok((state, version))
    }

    /// Decide and append for a decider whose decisions depend on no state (a trail of
    /// looks, such as audit-log views): nothing is loaded, however long the stream, and the
    /// events go after whatever it holds.
    pub async fn record<D>(
        &self,
        stream_id: &str,
        command: D::Command,
        metadata: &Metadata,
    ) -> Result<Executed<D::Event>, Error>
    where
        D: Decider<State = ()>,
        D::Event: DomainEvent,
        D::Error: Into<Error>,
    {
        let ctx = self.ctx(metadata);
        let events = D::decide(&(), command, &ctx).map_err(Into::into)?;
        if events.is_empty() {
            return Ok(Executed { events, append: None });
        }
        let new = self.codec.prepare(&events, metadata, ctx.now).await?;
        let appended = self
            .append(AppendRequest::stream(stream_id, ExpectedVersion::Any, new))
            .await?;
        Ok(Executed {
            events,
            append: Some(appended),
        })
    }

    /// Load, decide, append; on a concurrent modification, start over.
    pub async fn execute<D>(
        &self,
        stream_id: &str,
        command: D::Command,
        metadata: &Metadata,
        guards: Vec<Guard>,
    ) -> Result<Executed<D::Event>, Error>
    where
        D: Decider,
        D::Event: DomainEvent,
        D::Command: Clone,
        D::Error: Into<Error>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (state, version) = self.load::<D>(stream_id).await?;
            let ctx = self.ctx(metadata);
            let events = D::decide(&state, command.clone(), &ctx).map_err(Into::into)?;
            if events.is_empty() {
                return Ok(Executed { events, append: None });
            }
            let new = self.codec.prepare(&events, metadata, ctx.now).await?;
            let mut request = AppendRequest::stream(stream_id, ExpectedVersion::from_loaded(version), new);
            request.guards = guards.clone();
            match self.append(request).await {
                Ok(r) => {
                    return Ok(Executed {
                        events,
                        append: Some(r),
                    })
                }
                Err(e @ StoreError::WrongExpectedVersion { .. }) => {
                    tracing::debug!(error = %e, "conflict, retrying");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::rejected(
            crate::error::Kind::Conflict,
            "concurrent_modification",
            "the object kept changing under this command; try again",
        ))
    }
}
