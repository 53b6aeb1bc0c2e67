//! The relay: publishes committed events to the bus in global order, at least
//! once, and seals the ledger at intervals.
//!
//! The relay keeps its own checkpoint in the store. The bus is transport, not
//! truth: whatever it lost is published again from the log, and consumers
//! fill any gap from the store.
//!
//! With PostgreSQL several nodes may run; only the one holding the relay's
//! advisory lock relays and seals, the others wait to take over.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::watch;

use crate::db::Db;
use crate::store::hashing::{seal_step, GENESIS};
use crate::store::{EventStore, RecordedEvent, Seal, StoreError};

pub const RELAY_CHECKPOINT: &str = "relay";
const BATCH: u32 = 2000;
const POLL: Duration = Duration::from_millis(50);
/// Once nothing new has come for this long, what is pending is sealed. Not at
/// once: a seal is a durable write, and under steady one-by-one traffic (a
/// modality sending over one association) the relay is caught up after nearly
/// every commit; sealing at each would cost an fsync per event.
const QUIET: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
#[error("publish failed: {0}")]
pub struct PublishError(pub String);

/// Where the relay sends events (in-process bus or JetStream).
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publish in order; return only when the bus has accepted them all.
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), PublishError>;
}

/// Hold leadership of `name` for as long as the returned guard lives.
/// SQLite has one process, so it leads at once.
pub async fn lead(db: &Db, name: &str, shutdown: &mut watch::Receiver<bool>) -> Option<Leadership> {
    match db {
        Db::Sqlite { .. } => Some(Leadership(None)),
        Db::Postgres(pool) => loop {
            if *shutdown.borrow() {
                return None;
            }
            if let Ok(mut conn) = pool.acquire().await {
                let got: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                    .bind(name)
                    .fetch_one(&mut *conn)
                    .await;
                if let Ok(true) = got {
                    return Some(Leadership(Some(conn.detach())));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        },
    }
}

/// Leadership lasts while this connection (holding the advisory lock) lives.
pub struct Leadership(#[allow(dead_code)] Option<sqlx::PgConnection>);

pub struct Relay {
    pub store: Arc<dyn EventStore>,
    pub publisher: Arc<dyn Publisher>,
    /// Write a seal after this many events (and at least every second while
    /// events come, and a quarter of a second after they stop).
    pub seal_every: u64,
}

impl Relay {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let db = self.store.db();
        let Some(_leader) = lead(&db, "medledger-relay", &mut shutdown).await else {
            return;
        };
        tracing::info!("relay is leading");
        let mut sealer = match Sealer::resume(self.store.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "relay cannot read seals");
                return;
            }
        };
        let appended = self.store.appended();
        let mut position = self.store.checkpoint(RELAY_CHECKPOINT).await.unwrap_or(0);
        let mut saved = Saved {
            position,
            at: std::time::Instant::now(),
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let notified = appended.notified();
            let batch = match self.store.read_all(position, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "relay cannot read the store");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if batch.is_empty() {
                saved.save(self.store.as_ref(), position, sealer.quiet()).await;
                if let Err(e) = sealer.seal_if_due(self.store.as_ref(), self.seal_every, true).await {
                    tracing::warn!(error = %e, "sealing failed");
                }
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            match self.publisher.publish(&batch).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    position = batch.last().map(|e| e.global_position).unwrap_or(position);
                    saved.save(self.store.as_ref(), position, false).await;
                    metrics::gauge!("medledger_relay_position").set(position as f64);
                    for e in &batch {
                        sealer.fold(e.global_position, &e.hash);
                    }
                    if let Err(e) = sealer.seal_if_due(self.store.as_ref(), self.seal_every, false).await {
                        tracing::warn!(error = %e, "sealing failed");
                    }
                }
                Err(e) => {
                    // Commands keep succeeding; we publish again when the bus returns.
                    tracing::warn!(error = %e, retry_in = ?backoff, "bus unavailable");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // What was published is recorded and sealed before stopping, without waiting.
        saved.save(self.store.as_ref(), position, true).await;
        if let Err(e) = sealer.seal_if_due(self.store.as_ref(), 1, true).await {
            tracing::warn!(error = %e, "sealing at shutdown failed");
        }
    }
}

/// The relay's checkpoint as last saved. It is saved at most once a second
/// while events come, and once they stop (like seals): losing it only
/// means events are published again (the bus is at-least-once, projections
/// apply by position), and a save per batch was one more use of the SQLite
/// writer per commit under one-by-one traffic.
struct Saved {
    position: u64,
    at: std::time::Instant,
}

impl Saved {
    async fn save(&mut self, store: &dyn EventStore, position: u64, now: bool) {
        if position <= self.position || !(now || self.at.elapsed() >= Duration::from_secs(1)) {
            return;
        }
        match store.save_checkpoint(RELAY_CHECKPOINT, position).await {
            Ok(()) => {
                self.position = position;
                self.at = std::time::Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "relay checkpoint not saved"),
        }
    }
}

/// The running hash over event hashes in global order.
struct Sealer {
    position: u64,
    running: String,
    sealed_position: u64,
    sealed_at: std::time::Instant,
    /// When the last event was folded in.
    folded_at: std::time::Instant,
}

impl Sealer {
    /// Start from the last seal and fold what the relay already published.
    async fn resume(store: &dyn EventStore) -> Result<Self, StoreError> {
        let last = store.seals().await?.pop();
        let (position, running) = last
            .map(|s| (s.position, s.running_hash))
            .unwrap_or((0, GENESIS.to_string()));
        let mut s = Sealer {
            position,
            running,
            sealed_position: position,
            sealed_at: std::time::Instant::now(),
            folded_at: std::time::Instant::now(),
        };
        let published = store.checkpoint(RELAY_CHECKPOINT).await?;
        while s.position < published {
            let batch = store.read_all_raw(s.position, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for e in batch.iter().take_while(|e| e.global_position <= published) {
                s.fold(e.global_position, &e.hash);
            }
        }
        Ok(s)
    }

    fn fold(&mut self, position: u64, hash: &str) {
        if position == self.position + 1 {
            self.running = seal_step(&self.running, position, hash);
            self.position = position;
            self.folded_at = std::time::Instant::now();
        }
    }

    /// Nothing new for [`QUIET`].
    fn quiet(&self) -> bool {
        self.folded_at.elapsed() >= QUIET
    }

    /// Seal after `every` events, at least every second while events come,
    /// and once the relay has been `idle` (caught up) for [`QUIET`].
    async fn seal_if_due(&mut self, store: &dyn EventStore, every: u64, idle: bool) -> Result<(), StoreError> {
        let pending = self.position - self.sealed_position;
        let quiet = idle && self.quiet();
        let due = pending >= every || (pending > 0 && (quiet || self.sealed_at.elapsed() >= Duration::from_secs(1)));
        if due {
            store
                .write_seal(&Seal {
                    position: self.position,
                    running_hash: self.running.clone(),
                    sealed_at: Utc::now(),
                })
                .await?;
            self.sealed_position = self.position;
            self.sealed_at = std::time::Instant::now();
        }
        Ok(())
    }
}
