//! The production event store on PostgreSQL.
//!
//! Every append transaction first locks the single `position_counter` row and
//! only releases it at commit. Positions are therefore handed out in commit
//! order across all processes sharing the database, and `read_all` by
//! position can never skip an event that commits later with a smaller
//! position. The cost — one committer at a time — is paid back by the
//! group-commit writer, which puts many requests into each transaction.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};
use tokio::sync::Notify;
use uuid::Uuid;

use super::plan::{plan, Snapshot, StoredEventRef, StreamHead};
use super::writer::{BatchCommitter, GroupCommitWriter};
use super::*;
use crate::db::Db;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The channel a commit notifies so relays on other nodes wake at once.
pub const NOTIFY_CHANNEL: &str = "medledger_events";

#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
    writer: GroupCommitWriter,
    appended: Arc<Notify>,
}

impl PgEventStore {
    /// Connect, apply migrations (under sqlx's advisory lock, so several
    /// nodes may start at once) and start the writer.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        // Prepared statements are cached per connection; a generic plan made
        // while `events` was small would scan it forever after (`event_id =
        // ANY($1)`). Custom plans cost a little planning and keep index use.
        let options = PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Self::with_pool(pool).await
    }

    pub async fn with_pool(pool: PgPool) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Corrupt(format!("migration failed: {e}")))?;
        let appended = Arc::new(Notify::new());
        let writer = GroupCommitWriter::spawn(
            PgCommitter {
                pool: pool.clone(),
                conn: tokio::sync::Mutex::new(None),
            },
            appended.clone(),
        );
        Ok(PgEventStore { pool, writer, appended })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The group-commit writer's own connection, outside the pool: it never waits
/// for a pooled connection behind read-model and request traffic, and never pays
/// the pool's check on return (a ping) between batches. Opened with the pool's
/// options; after a failed batch it is kept if it still answers, else replaced
/// and the batch tried once more.
struct PgCommitter {
    pool: PgPool,
    conn: tokio::sync::Mutex<Option<PgConnection>>,
}

/// Everything the plan needs, read in one statement (after the lock, so with
/// a snapshot no other appender can have changed).
const READ_SNAPSHOT: &str = "SELECT \
    (SELECT COALESCE(json_agg(json_build_array(stream_id, version, last_hash)), '[]') \
       FROM streams WHERE stream_id = ANY($1))::text, \
    (SELECT COALESCE(json_agg(json_build_array(event_id, stream_id, stream_version, global_position)), '[]') \
       FROM events WHERE event_id = ANY($2))::text, \
    (SELECT COALESCE(json_agg(json_build_array(g.scope, g.key, g.owner)), '[]') \
       FROM guards g JOIN UNNEST($3::text[], $4::text[]) AS k(scope, key) ON g.scope = k.scope AND g.key = k.key)::text";

/// Every write of a batch in one statement: events, stream heads, guards,
/// the counter, and the notification other nodes' relays wait for.
const WRITE_BATCH: &str = "WITH \
    new_events AS (INSERT INTO events (global_position, event_id, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, hash) \
        SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::text[])), \
    heads AS (INSERT INTO streams (stream_id, version, last_hash) SELECT * FROM UNNEST($11::text[], $12::bigint[], $13::text[]) \
        ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, last_hash = excluded.last_hash), \
    claimed AS (INSERT INTO guards (scope, key, owner) SELECT * FROM UNNEST($14::text[], $15::text[], $16::text[]) \
        ON CONFLICT (scope, key) DO UPDATE SET owner = excluded.owner), \
    released AS (DELETE FROM guards g USING UNNEST($17::text[], $18::text[]) AS r(scope, key) \
        WHERE g.scope = r.scope AND g.key = r.key), \
    counter AS (UPDATE position_counter SET last_position = $19 WHERE id = 1 RETURNING last_position) \
    SELECT pg_notify($20, last_position::text) FROM counter";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("snapshot read: {e}"))
}

#[async_trait]
impl BatchCommitter for PgCommitter {
    /// Five round trips per batch: `BEGIN`, the counter lock, one read, one
    /// write, `COMMIT`.
    async fn commit(&self, requests: &[AppendRequest]) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError> {
        let waited = std::time::Instant::now();
        let mut slot = self.conn.lock().await;
        let conn = match &mut *slot {
            Some(conn) => conn,
            empty => empty.insert(self.pool.connect_options().connect().await?),
        };
        metrics::histogram!("medledger_append_writer_wait_seconds").record(waited.elapsed().as_secs_f64());
        let outcome = commit_on(conn, requests).await;
        if outcome.is_ok() || conn.ping().await.is_ok() {
            return outcome;
        }
        // The connection is gone (a restart, a failover, an administrator's
        // `pg_terminate_backend`): once more on a new one. Repeating is harmless
        // even if the lost commit went through, as every event id is appended at
        // most once: a request whose events are all there is answered with them.
        *slot = None;
        tracing::warn!(error = ?outcome.err(), "the event writer's connection was lost; reconnecting");
        let conn = slot.insert(self.pool.connect_options().connect().await?);
        let outcome = commit_on(conn, requests).await;
        if outcome.is_err() && conn.ping().await.is_err() {
            *slot = None;
        }
        outcome
    }
}

async fn commit_on(
    conn: &mut PgConnection,
    requests: &[AppendRequest],
) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError> {
    let mut tx = conn.begin().await?;
    // The lock comes first, alone: the next statement's snapshot then
    // already contains every earlier appender's commit.
    let head: i64 = sqlx::query_scalar("SELECT last_position FROM position_counter WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let outcomes = write_batch(&mut tx, requests, head as u64).await?;
    let syncing = std::time::Instant::now();
    tx.commit().await?;
    metrics::histogram!("medledger_append_sync_seconds").record(syncing.elapsed().as_secs_f64());
    Ok(outcomes)
}

async fn write_batch(
    conn: &mut sqlx::PgConnection,
    requests: &[AppendRequest],
    head: u64,
) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError> {
    let (streams, ids, guards) = Snapshot::keys(requests);
    let (scopes, keys): (Vec<String>, Vec<String>) = guards.into_iter().unzip();
    let row = sqlx::query(READ_SNAPSHOT)
        .bind(&streams)
        .bind(&ids)
        .bind(&scopes)
        .bind(&keys)
        .fetch_one(&mut *conn)
        .await?;
    let mut snap = Snapshot {
        head_position: head,
        ..Default::default()
    };
    let heads: Vec<(String, i64, String)> = serde_json::from_str(&row.get::<String, _>(0)).map_err(corrupt)?;
    for (stream_id, version, last_hash) in heads {
        snap.streams.insert(
            stream_id,
            StreamHead {
                version: version as u64,
                last_hash,
            },
        );
    }
    let existing: Vec<(Uuid, String, i64, i64)> = serde_json::from_str(&row.get::<String, _>(1)).map_err(corrupt)?;
    for (event_id, stream_id, version, position) in existing {
        snap.existing.insert(
            event_id,
            StoredEventRef {
                stream_id,
                stream_version: version as u64,
                global_position: position as u64,
            },
        );
    }
    let owners: Vec<(String, String, String)> = serde_json::from_str(&row.get::<String, _>(2)).map_err(corrupt)?;
    for (scope, key, owner) in owners {
        snap.guards.insert((scope, key), owner);
    }

    let plan = plan(snap, requests);
    if plan.rows.is_empty() {
        return Ok(plan.outcomes);
    }
    let n = plan.rows.len();
    let (mut positions, mut event_ids, mut stream_ids, mut versions, mut types) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut schemas, mut payloads, mut metadatas, mut times, mut hashes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (e, payload, metadata) in &plan.rows {
        positions.push(e.global_position as i64);
        event_ids.push(e.event_id);
        stream_ids.push(e.stream_id.as_str());
        versions.push(e.stream_version as i64);
        types.push(e.event_type.as_str());
        schemas.push(e.schema_version as i32);
        payloads.push(payload.as_str());
        metadatas.push(metadata.as_str());
        times.push(e.recorded_at);
        hashes.push(e.hash.as_str());
    }
    let (head_ids, heads): (Vec<&String>, Vec<&StreamHead>) = plan.heads.iter().unzip();
    let head_versions: Vec<i64> = heads.iter().map(|h| h.version as i64).collect();
    let head_hashes: Vec<&str> = heads.iter().map(|h| h.last_hash.as_str()).collect();
    let (mut claim_scopes, mut claim_keys, mut claim_owners) = (Vec::new(), Vec::new(), Vec::new());
    let (mut release_scopes, mut release_keys) = (Vec::new(), Vec::new());
    for ((scope, key), owner) in &plan.guards {
        match owner {
            Some(o) => {
                claim_scopes.push(scope.as_str());
                claim_keys.push(key.as_str());
                claim_owners.push(o.as_str());
            }
            None => {
                release_scopes.push(scope.as_str());
                release_keys.push(key.as_str());
            }
        }
    }
    sqlx::query(WRITE_BATCH)
        .bind(&positions)
        .bind(&event_ids)
        .bind(&stream_ids)
        .bind(&versions)
        .bind(&types)
        .bind(&schemas)
        .bind(&payloads)
        .bind(&metadatas)
        .bind(&times)
        .bind(&hashes)
        .bind(&head_ids)
        .bind(&head_versions)
        .bind(&head_hashes)
        .bind(&claim_scopes)
        .bind(&claim_keys)
        .bind(&claim_owners)
        .bind(&release_scopes)
        .bind(&release_keys)
        .bind(plan.head_position as i64)
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(plan.outcomes)
}

const EVENT_COLUMNS: &str = "global_position, event_id, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, hash";

fn raw_from_row(row: &PgRow) -> RawEvent {
    RawEvent {
        global_position: row.get::<i64, _>(0) as u64,
        event_id: row.get::<Uuid, _>(1).to_string(),
        stream_id: row.get(2),
        stream_version: row.get::<i64, _>(3) as u64,
        event_type: row.get(4),
        schema_version: row.get::<i32, _>(5) as u32,
        payload: row.get(6),
        metadata: row.get(7),
        recorded_at: row.get::<DateTime<Utc>, _>(8),
        hash: row.get(9),
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.writer.append(request).await
    }

    async fn read_stream(&self, stream_id: &str, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        ))
        .bind(stream_id)
        .bind(after_version as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| raw_from_row(r).parse()).collect()
    }

    async fn read_stream_head(&self, stream_id: &str, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version LIMIT $2"
        ))
        .bind(stream_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| raw_from_row(r).parse()).collect()
    }

    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_raw(after, limit)
            .await?
            .into_iter()
            .map(RawEvent::parse)
            .collect()
    }

    async fn read_all_raw(&self, after: u64, limit: u32) -> Result<Vec<RawEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
        ))
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(raw_from_row).collect())
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT last_position FROM position_counter WHERE id = 1")
                .fetch_one(&self.pool)
                .await? as u64,
        )
    }

    async fn guard_owner(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT owner FROM guards WHERE scope = $1 AND key = $2")
                .bind(scope)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn seals(&self) -> Result<Vec<Seal>, StoreError> {
        let rows = sqlx::query("SELECT position, running_hash, sealed_at FROM seals ORDER BY position")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Seal {
                position: r.get::<i64, _>(0) as u64,
                running_hash: r.get(1),
                sealed_at: r.get(2),
            })
            .collect())
    }

    async fn write_seal(&self, seal: &Seal) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO seals (position, running_hash, sealed_at) VALUES ($1, $2, $3) ON CONFLICT (position) DO NOTHING")
            .bind(seal.position as i64)
            .bind(&seal.running_hash)
            .bind(seal.sealed_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT position FROM relay_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0) as u64,
        )
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = GREATEST(relay_checkpoints.position, excluded.position)",
        )
        .bind(name)
        .bind(position as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    fn db(&self) -> Db {
        Db::Postgres(self.pool.clone())
    }

    fn read_models(&self) -> Db {
        self.db()
    }
}
