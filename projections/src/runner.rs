//! The projection runner.
//!
//! Each projection has a checkpoint row; every batch of events is applied
//! and the checkpoint moved in **one transaction**, so at-least-once delivery
//! gives an exactly-once effect. On PostgreSQL the checkpoint row is locked
//! (`FOR UPDATE`) so several processes can share a projection safely.
//!
//! Positions are dense, so a gap in what the bus delivers is visible
//! (`first > checkpoint + 1`) and is filled from the store in the same
//! transaction. A version bump clears the projection's tables and replays.
//!
//! On SQLite one task follows the bus for all projections and applies each
//! delivery to all of them in one transaction (a savepoint each), since they
//! all take turns on the one writer; on PostgreSQL each projection has its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use medledger_commands::args;
use medledger_commands::codec::EventCodec;
use medledger_commands::db::{Arg, Db, DbTx};
use medledger_commands::store::{EventStore, RecordedEvent, StoreError};
use tokio::sync::watch;

use crate::bus::Bus;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Codec(#[from] medledger_commands::codec::CodecError),
    #[error("unknown projection {0}")]
    Unknown(String),
    #[error("the gap is too large to fill in one transaction")]
    NeedsCatchUp,
}

/// A read model fed by the log.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Bump to rebuild the read model from the log on next start.
    fn version(&self) -> u32;
    /// Event types it wants; empty means all.
    fn event_types(&self) -> &'static [&'static str];
    /// The tables it alone owns (cleared on rebuild).
    fn tables(&self) -> &'static [&'static str];

    /// Does `apply` read payloads? If not, the runner skips decrypting and
    /// upcasting them (the audit log indexes envelopes only).
    fn needs_payload(&self) -> bool {
        true
    }

    /// Apply one (opened: decrypted, upcast) event.
    async fn apply(&self, tx: &mut DbTx, event: &RecordedEvent) -> Result<(), ProjectionError>;

    /// Apply several; override for bulk writes.
    async fn apply_batch(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        for e in events {
            self.apply(tx, e).await?;
        }
        Ok(())
    }
}

/// Where each projection stands, for read-your-writes waits, lag and readiness.
#[derive(Clone)]
pub struct Status {
    db: Db,
    positions: Arc<HashMap<&'static str, watch::Sender<u64>>>,
}

impl Status {
    fn new(db: Db, names: &[&'static str]) -> Self {
        Status {
            db,
            positions: Arc::new(names.iter().map(|n| (*n, watch::channel(0).0)).collect()),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.positions.keys().copied().collect();
        v.sort();
        v
    }

    /// The last position this process knows the projection has applied.
    pub fn position(&self, name: &str) -> u64 {
        self.positions.get(name).map(|s| *s.borrow()).unwrap_or(0)
    }

    fn advance(&self, name: &str, position: u64) {
        if let Some(s) = self.positions.get(name) {
            s.send_if_modified(|p| {
                let moved = position > *p;
                if moved {
                    *p = position;
                }
                moved
            });
            metrics::gauge!("medledger_projection_position", "projection" => name.to_string()).set(position as f64);
        }
    }

    /// Wait until `name` has applied `position` (another process may be the
    /// one applying it, so the checkpoint row is polled too). False on timeout.
    pub async fn wait_for(&self, name: &str, position: u64, timeout: Duration) -> bool {
        let Some(sender) = self.positions.get(name) else {
            return false;
        };
        let mut rx = sender.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if *rx.borrow_and_update() >= position {
                return true;
            }
            if let Ok(Some(row)) = self
                .db
                .fetch_optional(
                    "SELECT position FROM projection_checkpoints WHERE name = $1",
                    &args![name],
                )
                .await
            {
                if let Ok(p) = row.get::<i64>(0) {
                    self.advance(name, p as u64);
                    if p as u64 >= position {
                        return true;
                    }
                }
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

#[derive(Clone)]
pub struct Runner {
    store: Arc<dyn EventStore>,
    codec: EventCodec,
    bus: Arc<dyn Bus>,
    projections: Vec<Arc<dyn Projection>>,
    status: Status,
    /// One follower applies each delivery to every projection in one
    /// transaction (see [`Runner::spawn`]).
    together: bool,
}

const CATCH_UP_BATCH: u32 = 10_000;
const MAX_GAP: u64 = 20_000;
/// At most this many events from waiting deliveries are applied together.
const COALESCE_EVENTS: usize = 5_000;

impl Runner {
    pub fn new(
        store: Arc<dyn EventStore>,
        codec: EventCodec,
        bus: Arc<dyn Bus>,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Self {
        let names: Vec<_> = projections.iter().map(|p| p.name()).collect();
        let status = Status::new(store.read_models(), &names);
        let together = !store.read_models().is_postgres();
        Runner {
            store,
            codec,
            bus,
            projections,
            status,
            together,
        }
    }

    /// Follow the bus with one task for all projections (`true`, the default
    /// on SQLite) or one task each (`false`, the default on PostgreSQL).
    pub fn together(mut self, together: bool) -> Self {
        self.together = together;
        self
    }

    pub fn status(&self) -> Status {
        self.status.clone()
    }

    fn projection(&self, name: &str) -> Result<Arc<dyn Projection>, ProjectionError> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_string()))
    }

    /// Create missing checkpoints; rebuild projections whose version changed.
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        let db = self.store.read_models();
        for p in &self.projections {
            db.execute(
                "INSERT INTO projection_checkpoints (name, version, position) VALUES ($1, $2, 0) ON CONFLICT (name) DO NOTHING",
                &args![p.name(), p.version()],
            )
            .await?;
            let row = db
                .fetch_optional(
                    "SELECT version, position FROM projection_checkpoints WHERE name = $1",
                    &args![p.name()],
                )
                .await?
                .ok_or_else(|| ProjectionError::Unknown(p.name().into()))?;
            let version: i64 = row.get(0)?;
            if version != p.version() as i64 {
                tracing::info!(
                    projection = p.name(),
                    from = version,
                    to = p.version(),
                    "version changed: rebuilding"
                );
                self.clear(p.as_ref()).await?;
            } else {
                self.status.advance(p.name(), row.get::<i64>(1)? as u64);
            }
        }
        Ok(())
    }

    async fn clear(&self, p: &dyn Projection) -> Result<(), ProjectionError> {
        let mut tx = self.store.read_models().begin().await?;
        lock_checkpoint(&mut tx, p.name()).await?;
        for t in p.tables() {
            tx.execute(&format!("DELETE FROM {t}"), &[]).await?;
        }
        tx.execute(
            "UPDATE projection_checkpoints SET version = $2, position = 0 WHERE name = $1",
            &args![p.name(), p.version()],
        )
        .await?;
        tx.commit().await?;
        if let Some(s) = self.status.positions.get(p.name()) {
            s.send_replace(0);
        }
        Ok(())
    }

    /// Clear a projection and replay the whole log into it. Returns the
    /// number of events read.
    pub async fn rebuild(&self, name: &str) -> Result<u64, ProjectionError> {
        let p = self.projection(name)?;
        self.clear(p.as_ref()).await?;
        self.catch_up(p.as_ref()).await
    }

    /// Apply everything after the checkpoint, in batches, reading the next
    /// batch while the current one is applied. Returns events read.
    pub async fn catch_up(&self, p: &dyn Projection) -> Result<u64, ProjectionError> {
        let mut read = 0;
        let from = self.checkpoint(p.name()).await?;
        let mut batch = self.read_for(p, from).await?;
        while let Some(last) = batch.last().map(|e| e.global_position) {
            read += batch.len() as u64;
            let (applied, next) =
                tokio::join!(self.apply_events(p, std::mem::take(&mut batch)), self.read_for(p, last));
            applied?;
            batch = next?;
        }
        Ok(read)
    }

    /// The next catch-up batch; payloads are left unparsed (null) for
    /// projections that only read envelopes.
    async fn read_for(&self, p: &dyn Projection, after: u64) -> Result<Vec<RecordedEvent>, ProjectionError> {
        if p.needs_payload() {
            return Ok(self.store.read_all(after, CATCH_UP_BATCH).await?);
        }
        self.store
            .read_all_raw(after, CATCH_UP_BATCH)
            .await?
            .into_iter()
            .map(|mut raw| {
                raw.payload = "null".into();
                raw.parse().map_err(ProjectionError::from)
            })
            .collect()
    }

    /// Catch every projection up (used at start and by `replay`).
    pub async fn catch_up_all(&self) -> Result<(), ProjectionError> {
        for p in &self.projections {
            self.catch_up(p.as_ref()).await?;
        }
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<u64, ProjectionError> {
        let row = self
            .store
            .read_models()
            .fetch_optional(
                "SELECT position FROM projection_checkpoints WHERE name = $1",
                &args![name],
            )
            .await?;
        Ok(match row {
            Some(r) => r.get::<i64>(0)? as u64,
            None => 0,
        })
    }

    /// Apply events (from the bus or the store) exactly once, filling gaps.
    ///
    /// Payloads are opened (keys read, decrypted, upcast) and gaps read from
    /// the store *before* the transaction: a transaction that waited for a
    /// second pooled connection could starve the PostgreSQL pool when every
    /// projection holds one, and on SQLite it would hold the one writer longer.
    async fn apply_events(&self, p: &dyn Projection, events: Vec<RecordedEvent>) -> Result<(), ProjectionError> {
        let Some(last) = events.iter().map(|e| e.global_position).max() else {
            return Ok(());
        };
        if self.skip_unwanted(p, &events, last) {
            return Ok(());
        }
        // Everything wanted up to `known` is applied (by this process or another).
        let known = self.status.position(p.name());
        let mut events: Vec<RecordedEvent> = events.into_iter().filter(|e| e.global_position > known).collect();
        events.sort_by_key(|e| e.global_position);
        events.dedup_by_key(|e| e.global_position);
        let mut from = known;
        for _ in 0..3 {
            let positions: Vec<u64> = events.iter().map(|e| e.global_position).collect();
            let ready = self.open_for(&[p], std::mem::take(&mut events)).await?;
            let mut tx = self.store.read_models().begin().await?;
            let started = std::time::Instant::now();
            let delivery = Delivery {
                positions: &positions,
                events: &ready,
                last,
            };
            let base = match self.apply_within(&mut tx, p, from, &delivery).await? {
                Applied::Through(position) => {
                    tx.commit().await?;
                    self.applied(p, position, started.elapsed());
                    return Ok(());
                }
                Applied::Gap { base } => base,
            };
            // The bus skipped something: read exactly (base, last] from the store.
            drop(tx);
            if last - base > MAX_GAP {
                return Err(ProjectionError::NeedsCatchUp);
            }
            metrics::counter!("medledger_projection_gaps_filled_total", "projection" => p.name()).increment(1);
            events = self.store.read_all(base, (last - base) as u32).await?;
            from = base;
        }
        Err(ProjectionError::NeedsCatchUp)
    }

    /// Inside `tx`: lock `p`'s checkpoint and, if `positions` (every position
    /// delivered, sorted) follow on from it, apply the events of `events` it
    /// reads and move the checkpoint to `last`. Events at or below `from` are
    /// known to be applied already.
    async fn apply_within(
        &self,
        tx: &mut DbTx,
        p: &dyn Projection,
        from: u64,
        delivery: &Delivery<'_>,
    ) -> Result<Applied, ProjectionError> {
        let base = lock_checkpoint(tx, p.name()).await?.max(from);
        let applied = self.apply_rows(tx, p, base, delivery).await?;
        if let Applied::Through(position) = applied {
            if position > base {
                save_checkpoints(tx, &[p.name()], position).await?;
            }
        }
        Ok(applied)
    }

    /// The rows of `events` past `base` that `p` reads, if the delivery follows on
    /// from `base`; the caller moves the checkpoint.
    async fn apply_rows(
        &self,
        tx: &mut DbTx,
        p: &dyn Projection,
        base: u64,
        delivery: &Delivery<'_>,
    ) -> Result<Applied, ProjectionError> {
        let Delivery {
            positions,
            events,
            last,
        } = *delivery;
        if last <= base {
            return Ok(Applied::Through(base));
        }
        let contiguous = positions
            .iter()
            .filter(|&&g| g > base)
            .enumerate()
            .all(|(i, &g)| g == base + 1 + i as u64);
        if !contiguous {
            return Ok(Applied::Gap { base });
        }
        let mine: Vec<RecordedEvent> = events
            .iter()
            .filter(|e| e.global_position > base && reads(p, e))
            .cloned()
            .collect();
        if !mine.is_empty() {
            p.apply_batch(tx, &mine).await?;
        }
        Ok(Applied::Through(last))
    }

    /// After the commit that took `p` to `position`; `took` is its share of the transaction.
    fn applied(&self, p: &dyn Projection, position: u64, took: Duration) {
        metrics::histogram!("medledger_projection_apply_seconds", "projection" => p.name()).record(took.as_secs_f64());
        self.status.advance(p.name(), position);
    }

    /// Apply one delivery to several projections in **one transaction**: on
    /// SQLite, one use of the one writer and one commit per delivery instead of
    /// one per read model, and each event opened once for all of them.
    ///
    /// Every statement is a round trip to the connection's thread while the
    /// writer is held, so the transaction reads all the checkpoints in one
    /// statement and moves them in one, and applies without savepoints. Should a
    /// projection fail, the whole transaction is rolled back and the delivery
    /// applied again with each projection in its own savepoint: the one that
    /// fails is rolled back alone and then caught up on its own from the store,
    /// the others keep what they applied. A projection that finds a gap writes
    /// nothing and is caught up on its own too.
    async fn apply_together(
        &self,
        ps: &[Arc<dyn Projection>],
        events: Vec<RecordedEvent>,
    ) -> Result<(), ProjectionError> {
        let Some(last) = events.iter().map(|e| e.global_position).max() else {
            return Ok(());
        };
        let due: Vec<&dyn Projection> = ps
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| !self.skip_unwanted(*p, &events, last))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let known = due.iter().map(|p| self.status.position(p.name())).min().unwrap_or(0);
        let mut events: Vec<RecordedEvent> = events.into_iter().filter(|e| e.global_position > known).collect();
        events.sort_by_key(|e| e.global_position);
        events.dedup_by_key(|e| e.global_position);
        let positions: Vec<u64> = events.iter().map(|e| e.global_position).collect();
        let events = self.open_for(&due, events).await?;

        let delivery = Delivery {
            positions: &positions,
            events: &events,
            last,
        };
        let apart = match self.apply_shared(&due, &delivery, false).await? {
            Some(apart) => apart,
            // With savepoints a failing projection is set apart, so this always answers.
            None => self.apply_shared(&due, &delivery, true).await?.unwrap_or_default(),
        };
        let mut outcome = Ok(());
        for p in apart {
            if let Err(e) = self.catch_up(p).await {
                outcome = Err(e);
            }
        }
        outcome
    }

    /// One transaction applying `delivery` to `due`; returns the projections to
    /// catch up on their own. Without `savepoints`, a projection that fails
    /// rolls everything back and `None` is returned.
    async fn apply_shared<'p>(
        &self,
        due: &[&'p dyn Projection],
        delivery: &Delivery<'_>,
        savepoints: bool,
    ) -> Result<Option<Vec<&'p dyn Projection>>, ProjectionError> {
        let mut apart = Vec::new();
        let mut done = Vec::new();
        let mut tx = self.store.read_models().begin().await?;
        let names: Vec<&str> = due.iter().map(|p| p.name()).collect();
        let bases = lock_checkpoints(&mut tx, &names).await?;
        for (p, stored) in due.iter().copied().zip(bases) {
            let started = std::time::Instant::now();
            let base = stored.max(self.status.position(p.name()));
            if savepoints {
                tx.execute("SAVEPOINT projection", &[]).await?;
            }
            let applied = self.apply_rows(&mut tx, p, base, delivery).await;
            match applied {
                Ok(Applied::Through(position)) => done.push((p, base, position, started.elapsed())),
                Ok(Applied::Gap { .. }) => apart.push(p),
                Err(e) if savepoints => {
                    tracing::warn!(projection = p.name(), error = %e, "apply failed; catching this projection up alone");
                    tx.execute("ROLLBACK TO SAVEPOINT projection", &[]).await?;
                    apart.push(p);
                }
                Err(e) => {
                    tracing::debug!(projection = p.name(), error = %e, "apply failed; applying again in savepoints");
                    drop(tx); // rolled back
                    return Ok(None);
                }
            }
            if savepoints {
                tx.execute("RELEASE SAVEPOINT projection", &[]).await?;
            }
        }
        let moved: Vec<&str> = done
            .iter()
            .filter(|(_, base, position, _)| position > base)
            .map(|(p, ..)| p.name())
            .collect();
        save_checkpoints(&mut tx, &moved, delivery.last).await?;
        tx.commit().await?;
        for (p, _, position, took) in done {
            self.applied(p, position, took);
        }
        Ok(Some(apart))
    }

    /// `events` with those that any of `due` reads the payload of opened.
    async fn open_for(
        &self,
        due: &[&dyn Projection],
        events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, ProjectionError> {
        let readers: Vec<&dyn Projection> = due.iter().copied().filter(|p| p.needs_payload()).collect();
        let (to_open, mut rest): (Vec<_>, Vec<_>) =
            events.into_iter().partition(|e| readers.iter().any(|p| reads(*p, e)));
        if to_open.is_empty() {
            return Ok(rest);
        }
        let mut opened = self.codec.open(to_open).await?;
        if !rest.is_empty() {
            opened.append(&mut rest);
            opened.sort_by_key(|e| e.global_position);
        }
        Ok(opened)
    }

    /// Events that follow on from what this process knows the projection has
    /// applied, none of which it reads, need no transaction: its position moves
    /// in memory (so read-your-writes waits return) and the checkpoint row is
    /// written later by [`Runner::flush_checkpoints`] or the next real batch.
    /// Under ingest most projections read none of the arriving events, and a
    /// commit each would queue behind the one SQLite writer for nothing.
    fn skip_unwanted(&self, p: &dyn Projection, events: &[RecordedEvent], last: u64) -> bool {
        let wanted = p.event_types();
        if wanted.is_empty() {
            return false;
        }
        let known = self.status.position(p.name());
        let mut newer: Vec<&RecordedEvent> = events.iter().filter(|e| e.global_position > known).collect();
        newer.sort_by_key(|e| e.global_position);
        newer.dedup_by_key(|e| e.global_position);
        let follows_on = newer
            .iter()
            .enumerate()
            .all(|(i, e)| e.global_position == known + 1 + i as u64);
        if !follows_on || newer.iter().any(|e| wanted.contains(&e.event_type.as_str())) {
            return false;
        }
        self.status.advance(p.name(), last);
        true
    }

    /// Write the positions [`Runner::skip_unwanted`] moved in memory, in one
    /// transaction. `flushed` holds the last position this caller wrote for
    /// each projection (nothing is written while they stand still).
    async fn flush_checkpoints(
        &self,
        ps: &[Arc<dyn Projection>],
        flushed: &mut HashMap<&'static str, u64>,
    ) -> Result<(), ProjectionError> {
        let moved: Vec<(&'static str, u64)> = ps
            .iter()
            .map(|p| (p.name(), self.status.position(p.name())))
            .filter(|(name, position)| *position > flushed.get(name).copied().unwrap_or(0))
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        // Like every checkpoint, it commits without waiting for the disk: if lost, the
        // skipped events are looked at again.
        let mut tx = self.store.read_models().begin().await?;
        for (name, position) in &moved {
            tx.execute(
                "UPDATE projection_checkpoints SET position = $2 WHERE name = $1 AND position < $2",
                &args![*name, *position as i64],
            )
            .await?;
        }
        tx.commit().await?;
        flushed.extend(moved);
        Ok(())
    }

    /// Catch up, then follow the bus. On PostgreSQL, one task per projection:
    /// each works on its own pooled connection, and several processes may
    /// share the work. On SQLite, one task for all of them, applying each
    /// delivery in one transaction ([`Runner::apply_together`]): there is only
    /// one writer to take turns on.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let groups: Vec<Vec<Arc<dyn Projection>>> = if self.together {
            vec![self.projections.clone()]
        } else {
            self.projections.iter().map(|p| vec![p.clone()]).collect()
        };
        groups
            .into_iter()
            .filter(|ps| !ps.is_empty())
            .map(|ps| {
                let runner = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { runner.follow(ps, shutdown).await })
            })
            .collect()
    }

    /// Apply a delivery to the projections one task follows.
    async fn deliver(&self, ps: &[Arc<dyn Projection>], events: Vec<RecordedEvent>) -> Result<(), ProjectionError> {
        match ps {
            [p] => match self.apply_events(p.as_ref(), events).await {
                Err(ProjectionError::NeedsCatchUp) => self.catch_up(p.as_ref()).await.map(|_| ()),
                other => other,
            },
            _ => self.apply_together(ps, events).await,
        }
    }

    /// Catch every one of `ps` up; the last error, if any.
    async fn catch_up_each(&self, ps: &[Arc<dyn Projection>]) -> Result<(), ProjectionError> {
        let mut outcome = Ok(());
        for p in ps {
            if let Err(e) = self.catch_up(p.as_ref()).await {
                tracing::warn!(projection = p.name(), error = %e, "catch-up failed");
                outcome = Err(e);
            }
        }
        outcome
    }

    async fn follow(&self, ps: Vec<Arc<dyn Projection>>, mut shutdown: watch::Receiver<bool>) {
        let consumer = match ps.as_slice() {
            [p] => format!("projection-{}", p.name()),
            _ => "projections".to_string(),
        };
        let mut flushed = HashMap::new();
        let mut flushed_at = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Subscribe first, then catch up: nothing falls between the two.
            let mut sub = match self.bus.subscribe(&consumer).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(consumer, error = %e, "bus subscription failed; polling the store");
                    None
                }
            };
            let _ = self.catch_up_each(&ps).await;
            // Without a bus, poll the store often; with one, rarely (a safety net).
            let poll = if sub.is_some() {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(100)
            };
            let resubscribe_at = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                let next = async {
                    match sub.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    delivery = next => match delivery {
                        Some(mut d) => {
                            // Whatever else is already waiting goes into the same
                            // transaction: under load one commit (and one fsync)
                            // serves many deliveries instead of one each.
                            if let Some(s) = sub.as_mut() {
                                while d.events.len() < COALESCE_EVENTS {
                                    match s.next().now_or_never() {
                                        Some(Some(more)) => d.absorb(more),
                                        _ => break,
                                    }
                                }
                            }
                            let outcome = if d.gap {
                                self.catch_up_each(&ps).await
                            } else {
                                self.deliver(&ps, std::mem::take(&mut d.events)).await
                            };
                            match outcome {
                                Ok(()) => d.ack().await,
                                Err(e) => tracing::warn!(consumer, error = %e, "apply failed; will retry"),
                            }
                            // Other processes read the checkpoint rows: keep them
                            // within a second of what was skipped in memory.
                            if flushed_at.elapsed() >= Duration::from_secs(1) {
                                if let Err(e) = self.flush_checkpoints(&ps, &mut flushed).await {
                                    tracing::warn!(consumer, error = %e, "checkpoint flush failed");
                                }
                                flushed_at = tokio::time::Instant::now();
                            }
                        }
                        None => break, // the subscription ended: subscribe again
                    },
                    _ = tokio::time::sleep(poll) => {
                        if let Err(e) = self.flush_checkpoints(&ps, &mut flushed).await {
                            tracing::warn!(consumer, error = %e, "checkpoint flush failed");
                        }
                        let _ = self.catch_up_each(&ps).await;
                        if sub.is_none() && tokio::time::Instant::now() >= resubscribe_at {
                            break;
                        }
                    }
                    _ = shutdown.changed() => {
                        let _ = self.flush_checkpoints(&ps, &mut flushed).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Does `p` read events of `e`'s type? (No types listed means all.)
fn reads(p: &dyn Projection, e: &RecordedEvent) -> bool {
    let wanted = p.event_types();
    wanted.is_empty() || wanted.contains(&e.event_type.as_str())
}

/// One delivery, sorted, as the projections apply it.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    positions: &'a [u64],
    events: &'a [RecordedEvent],
    last: u64,
}

/// What [`Runner::apply_rows`] did.
enum Applied {
    /// The projection now stands at this position.
    Through(u64),
    /// The delivery does not follow on from `base`: nothing was applied.
    Gap { base: u64 },
}

async fn lock_checkpoint(tx: &mut DbTx, name: &str) -> Result<u64, ProjectionError> {
    Ok(lock_checkpoints(tx, &[name])
        .await?
        .first()
        .copied()
        .unwrap_or_default())
}

/// The checkpoints of `names`, in their order, in one statement (locked on PostgreSQL).
async fn lock_checkpoints(tx: &mut DbTx, names: &[&str]) -> Result<Vec<u64>, ProjectionError> {
    let list = (1..=names.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT name, position FROM projection_checkpoints WHERE name IN ({list}){lock}");
    let args: Vec<Arg> = names.iter().map(|n| Arg::from(*n)).collect();
    let mut found = HashMap::new();
    for row in tx.fetch_all(&sql, &args).await? {
        found.insert(row.get::<String>(0)?, row.get::<i64>(1)? as u64);
    }
    names
        .iter()
        .map(|n| {
            found
                .get(*n)
                .copied()
                .ok_or_else(|| ProjectionError::Unknown(n.to_string()))
        })
        .collect()
}

/// Moves the checkpoints of `names` to `position`, in one statement.
async fn save_checkpoints(tx: &mut DbTx, names: &[&str], position: u64) -> Result<(), ProjectionError> {
    if names.is_empty() {
        return Ok(());
    }
    let list = (2..names.len() + 2)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("UPDATE projection_checkpoints SET position = $1 WHERE name IN ({list})");
    let mut args = vec![Arg::I64(position as i64)];
    args.extend(names.iter().map(|n| Arg::from(*n)));
    tx.execute(&sql, &args).await?;
    Ok(())
}
