//! The embedded event store: one SQLite file in WAL mode for the log, and a
//! second beside it for the read models.
//!
//! All writes to the log go through one connection ([`SqliteWriter`]), so
//! commit order is position order by construction; reads use a pool of
//! read-only connections that never block the writer.
//!
//! Read models live in their own file (`<log>.read-models.db`, see
//! [`read_models_path`]) with their own writer: SQLite has one write lock per
//! file, so applying read models and appending events no longer wait for each
//! other. Readers of that file see the log's tables too (it is attached as
//! `log`), so a query may join a read model with `events`. Its writer does not
//! attach the log: a read-model transaction cannot write the log by mistake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::Notify;

use super::plan::{plan, Snapshot, StoredEventRef, StreamHead};
use super::writer::{BatchCommitter, GroupCommitWriter};
use super::*;
use crate::db::{Db, SqliteWriter, WriterGuard};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
/// The read models' file has migrations of its own.
pub static READ_MODEL_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite-read-models");

/// Where the read models of the log at `log` live: `medledger.db` →
/// `medledger.read-models.db`, in the same folder.
pub fn read_models_path(log: &Path) -> PathBuf {
    log.with_extension("read-models.db")
}

#[derive(Clone)]
pub struct SqliteEventStore {
    writer_conn: SqliteWriter,
    reader: SqlitePool,
    writer: GroupCommitWriter,
    /// The read models' file: its own writer, and readers that see the log too.
    read_models: Db,
    appended: Arc<Notify>,
    /// While any clone lives, the checkpointers run.
    _alive: Arc<()>,
}

impl SqliteEventStore {
    /// Open (creating if needed) the store in `path` and apply migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_wal_limit(path, WAL_LIMIT).await
    }

    /// [`open`](Self::open), with the write-ahead log size past which the
    /// checkpointer waits for readers to move off the log so it starts over.
    pub async fn open_with_wal_limit(path: &Path, wal_limit: u64) -> Result<Self, StoreError> {
        let alive = Arc::new(());
        let (writer_conn, reader) = open_file(path, &MIGRATOR, &alive, wal_limit, None).await?;
        let models = read_models_path(path);
        let (models_writer, models_reader) =
            open_file(&models, &READ_MODEL_MIGRATOR, &alive, wal_limit, Some(path)).await?;
        let appended = Arc::new(Notify::new());
        let writer = GroupCommitWriter::spawn(
            SqliteCommitter {
                writer: writer_conn.clone(),
            },
            appended.clone(),
        );
        Ok(SqliteEventStore {
            writer_conn,
            reader,
            writer,
            read_models: Db::Sqlite {
                writer: models_writer,
                reader: models_reader,
            },
            appended,
            _alive: alive,
        })
    }
}

/// Open (creating if needed) one SQLite file in WAL mode, apply its migrations,
/// and start its checkpointer (until `alive` is dropped). Returns its one
/// writer and a pool of read-only connections; with `attach`, those readers
/// see that file's tables too (as schema `log`, found by unqualified names).
async fn open_file(
    path: &Path,
    migrator: &'static sqlx::migrate::Migrator,
    alive: &Arc<()>,
    wal_limit: u64,
    attach: Option<&Path>,
) -> Result<(SqliteWriter, SqlitePool), StoreError> {
    let url = format!("sqlite://{}", path.display());
    let opts = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        // Keep the write-ahead log file from staying large after a burst.
        .pragma("journal_size_limit", "67108864")
        .foreign_keys(true);
    // The writer never checkpoints on commit (`wal_autocheckpoint = 0`): a
    // checkpoint copies pages into the database and fsyncs it, and done by the
    // one writer it stalls every append and projection behind it (measured:
    // STOW-RS 576 → 725 instances/s without it). [`checkpointer`] does it beside.
    let writer = SqliteWriter::connect(&opts.clone().pragma("wal_autocheckpoint", "0")).await?;
    migrator
        .run(&mut *writer.lock(true, "migrations").await?)
        .await
        .map_err(|e| StoreError::Corrupt(format!("migration of {} failed: {e}", path.display())))?;
    let mut readers = SqlitePoolOptions::new().max_connections(8);
    if let Some(log) = attach {
        let log = log.display().to_string();
        readers = readers.after_connect(move |conn, _| {
            let log = log.clone();
            Box::pin(async move {
                // Opened read-only like the connection itself.
                sqlx::query("ATTACH DATABASE $1 AS log").bind(log).execute(conn).await?;
                Ok(())
            })
        });
    }
    let reader = readers.connect_with(opts.clone().read_only(true)).await?;
    tokio::spawn(checkpointer(opts, Arc::downgrade(alive), wal_limit));
    Ok((writer, reader))
}

/// How often the write-ahead log is checkpointed into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The write-ahead log size (bytes) past which a checkpoint waits for readers
/// (`TRUNCATE`): the same as `journal_size_limit`.
const WAL_LIMIT: u64 = 64 * 1024 * 1024;
/// Statistics for the query planner are refreshed every this many rounds (a minute).
const OPTIMIZE_EVERY_ROUNDS: u64 = 120;

/// Checkpoint the write-ahead log from a connection of its own, so the writer
/// never waits for it. `PASSIVE` takes no lock writers need: it copies what no
/// reader still uses and leaves the rest for the next round; the next writer
/// then starts the log over from the beginning.
///
/// Under sustained ingest that moment may never come: the log is only started
/// over when a writer begins while no reader still reads from it, and with the
/// writer busy and readers always at work the log grew without bound (8 GB
/// beside a 1.2 GB database in one benchmark run). So once the log passes
/// `wal_limit` bytes, the round is a `TRUNCATE` checkpoint: it holds writers
/// back for as long as readers need to move off the log (milliseconds, since
/// reads are short transactions and most pages were already copied by the
/// passive rounds; at most the busy timeout, 10 s, after which the round gives
/// up and writers go on), then empties it. Runs until the store (every clone)
/// is dropped.
async fn checkpointer(opts: SqliteConnectOptions, alive: std::sync::Weak<()>, wal_limit: u64) {
    let file = opts
        .get_filename()
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pool = match SqlitePoolOptions::new().max_connections(1).connect_with(opts).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "no SQLite checkpointer connection; the log is checkpointed on close only");
            return;
        }
    };
    let page_size = sqlx::query_scalar::<_, i64>("PRAGMA page_size")
        .fetch_one(&pool)
        .await
        .map(|p| p.max(512) as u64)
        .unwrap_or(4096);
    let mut last_error = None::<String>;
    let mut round: u64 = 0;
    while alive.strong_count() > 0 {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        // Now and then, refresh the query planner's statistics where tables have grown
        // (cheap when nothing changed; `analysis_limit` bounds the work when it did).
        if round.is_multiple_of(OPTIMIZE_EVERY_ROUNDS) {
            if let Err(e) = sqlx::query("PRAGMA analysis_limit = 1000; PRAGMA optimize")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "PRAGMA optimize failed");
            }
        }
        round += 1;
        let passive = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await;
        let outcome = match passive {
            Ok((_, frames, copied)) if (frames.max(0) as u64).saturating_mul(page_size) > wal_limit => {
                tracing::debug!(frames, "the write-ahead log passed its limit; truncating it");
                let started = std::time::Instant::now();
                let truncated = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await
                    .map(|_| ());
                // It first waits its turn at the write lock (writers go on meanwhile),
                // then holds writers back while readers still on the log finish: say
                // how long it took, and how much the passive round had left to copy.
                let took = started.elapsed();
                metrics::histogram!("medledger_sqlite_truncate_seconds", "file" => file.clone())
                    .record(took.as_secs_f64());
                if took > Duration::from_millis(250) {
                    tracing::info!(
                        file,
                        frames,
                        copied,
                        took_ms = took.as_millis() as u64,
                        "a truncating checkpoint was slow"
                    );
                }
                truncated
            }
            other => other.map(|_| ()),
        };
        match outcome {
            Ok(()) => last_error = None,
            Err(e) => {
                let e = e.to_string();
                if last_error.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
                }
                last_error = Some(e);
            }
        }
    }
    pool.close().await;
}

struct SqliteCommitter {
    writer: SqliteWriter,
}

#[async_trait]
impl BatchCommitter for SqliteCommitter {
    /// Three round trips to the connection's thread, whatever the batch: begin and read
    /// what the batch touches, write it, commit. Under load each round trip waits for
    /// the runtime to schedule this task again (measured: about 0.7 ms apiece under
    /// STOW-RS on 2 cores), and the writer is held all along, so the statements are
    /// sent together rather than one by one.
    async fn commit(&self, requests: &[AppendRequest]) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError> {
        let waited = std::time::Instant::now();
        let mut conn = self.writer.lock(true, "events").await?;
        metrics::histogram!("medledger_append_writer_wait_seconds").record(waited.elapsed().as_secs_f64());
        let committed = async {
            let snap = begin_and_read(&mut conn, requests).await?;
            let plan = plan(snap, requests);
            write(&mut conn, &plan).await?;
            let syncing = std::time::Instant::now();
            conn.commit().await?;
            metrics::histogram!("medledger_append_sync_seconds").record(syncing.elapsed().as_secs_f64());
            Ok(plan.outcomes)
        }
        .await;
        if committed.is_err() {
            // Never leave the one writer connection inside a transaction.
            conn.rollback().await;
        }
        committed
    }
}

/// Rows per statement (SQLite allows 32,766 bound values per statement).
const CHUNK: usize = 500;

/// `BEGIN IMMEDIATE`, then what the batch's plan depends on — the head position,
/// the heads of its streams, which of its event ids are stored already, the
/// owners of its guards — as one multi-statement query. Each row names what it
/// is in its first column.
async fn begin_and_read(conn: &mut WriterGuard, requests: &[AppendRequest]) -> Result<Snapshot, StoreError> {
    let (streams, ids, guards) = Snapshot::keys(requests);
    let mut q =
        QueryBuilder::<Sqlite>::new("BEGIN IMMEDIATE; SELECT 'head', COALESCE(MAX(global_position), 0) FROM events;");
    for chunk in streams.chunks(CHUNK) {
        q.push(" SELECT 'stream', stream_id, version, last_hash FROM streams WHERE stream_id IN (");
        push_list(&mut q, chunk.iter().map(String::as_str));
    }
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    for chunk in ids.chunks(CHUNK) {
        q.push(" SELECT 'event', event_id, stream_id, stream_version, global_position FROM events WHERE event_id IN (");
        push_list(&mut q, chunk.iter().map(String::as_str));
    }
    push_by_scope(
        &mut q,
        " SELECT 'guard', scope, key, owner FROM guards WHERE scope = ",
        guards.iter().map(|(s, k)| (s, k)),
    );
    let rows = conn.begin_fetching(q.build()).await?;
    let mut snap = Snapshot::default();
    for row in rows {
        match row.get::<&str, _>(0) {
            "head" => snap.head_position = row.get::<i64, _>(1) as u64,
            "stream" => {
                snap.streams.insert(
                    row.get(1),
                    StreamHead {
                        version: row.get::<i64, _>(2) as u64,
                        last_hash: row.get(3),
                    },
                );
            }
            "event" => {
                let id: String = row.get(1);
                snap.existing.insert(
                    uuid::Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    StoredEventRef {
                        stream_id: row.get(2),
                        stream_version: row.get::<i64, _>(3) as u64,
                        global_position: row.get::<i64, _>(4) as u64,
                    },
                );
            }
            "guard" => {
                snap.guards.insert((row.get(1), row.get(2)), row.get(3));
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unexpected row '{other}' reading a batch's snapshot"
                )))
            }
        }
    }
    Ok(snap)
}

/// The plan's events, stream heads and guards, as one multi-statement query.
async fn write(conn: &mut WriterGuard, plan: &super::plan::Plan) -> Result<(), StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new("");
    for chunk in plan.rows.chunks(CHUNK) {
        q.push(
            " INSERT INTO events (global_position, event_id, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, hash) ",
        );
        q.push_values(chunk, |mut b, (e, payload, metadata)| {
            b.push_bind(e.global_position as i64)
                .push_bind(e.event_id.to_string())
                .push_bind(&e.stream_id)
                .push_bind(e.stream_version as i64)
                .push_bind(&e.event_type)
                .push_bind(e.schema_version as i64)
                .push_bind(payload)
                .push_bind(metadata)
                .push_bind(hashing::timestamp_text(e.recorded_at))
                .push_bind(&e.hash);
        });
        q.push(";");
    }
    let heads: Vec<_> = plan.heads.iter().collect();
    for chunk in heads.chunks(CHUNK) {
        q.push(" INSERT INTO streams (stream_id, version, last_hash) ");
        q.push_values(chunk, |mut b, (stream_id, head)| {
            b.push_bind(*stream_id)
                .push_bind(head.version as i64)
                .push_bind(&head.last_hash);
        });
        q.push(" ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, last_hash = excluded.last_hash;");
    }
    let claimed: Vec<_> = plan
        .guards
        .iter()
        .filter_map(|((scope, key), owner)| Some((scope, key, owner.as_ref()?)))
        .collect();
    for chunk in claimed.chunks(CHUNK) {
        q.push(" INSERT INTO guards (scope, key, owner) ");
        q.push_values(chunk, |mut b, (scope, key, owner)| {
            b.push_bind(*scope).push_bind(*key).push_bind(*owner);
        });
        q.push(" ON CONFLICT (scope, key) DO UPDATE SET owner = excluded.owner;");
    }
    let released = plan
        .guards
        .iter()
        .filter(|(_, owner)| owner.is_none())
        .map(|((scope, key), _)| (scope, key));
    push_by_scope(&mut q, " DELETE FROM guards WHERE scope = ", released);
    if !q.sql().is_empty() {
        q.build().execute(&mut **conn).await?;
    }
    Ok(())
}

/// `?, ?, …);`: the rest of an `IN (` list.
fn push_list<'a>(q: &mut QueryBuilder<'a, Sqlite>, values: impl Iterator<Item = &'a str>) {
    let mut sep = q.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    q.push(");");
}

/// `{head} ? AND key IN (?, …);` for the guards' keys a scope at a time (a
/// batch's guards are nearly all of one scope), so each statement uses the
/// guards' key.
fn push_by_scope<'a>(
    q: &mut QueryBuilder<'a, Sqlite>,
    head: &str,
    guards: impl Iterator<Item = (&'a String, &'a String)>,
) {
    let mut scopes = BTreeMap::<_, Vec<_>>::new();
    for (scope, key) in guards {
        scopes.entry(scope).or_default().push(key);
    }
    for (scope, keys) in scopes {
        for chunk in keys.chunks(CHUNK) {
            q.push(head);
            q.push_bind(scope).push(" AND key IN (");
            push_list(q, chunk.iter().map(|key| key.as_str()));
        }
    }
}

const EVENT_COLUMNS: &str = "global_position, event_id, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, hash";

fn raw_from_row(row: &SqliteRow) -> Result<RawEvent, StoreError> {
    let at: String = row.get(8);
    Ok(RawEvent {
        global_position: row.get::<i64, _>(0) as u64,
        event_id: row.get(1),
        stream_id: row.get(2),
        stream_version: row.get::<i64, _>(3) as u64,
        event_type: row.get(4),
        schema_version: row.get::<i64, _>(5) as u32,
        payload: row.get(6),
        metadata: row.get(7),
        recorded_at: DateTime::parse_from_rfc3339(&at)
            .map_err(|e| StoreError::Corrupt(format!("recorded_at '{at}': {e}")))?
            .with_timezone(&Utc),
        hash: row.get(9),
    })
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.writer.append(request).await
    }

    async fn read_stream(&self, stream_id: &str, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        ))
        .bind(stream_id)
        .bind(after_version as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| raw_from_row(r)?.parse()).collect()
    }

    async fn read_stream_head(&self, stream_id: &str, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version LIMIT $2"
        ))
        .bind(stream_id)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| raw_from_row(r)?.parse()).collect()
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
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(raw_from_row).collect()
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(global_position), 0) FROM events")
                .fetch_one(&self.reader)
                .await? as u64,
        )
    }

    async fn guard_owner(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT owner FROM guards WHERE scope = $1 AND key = $2")
                .bind(scope)
                .bind(key)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn seals(&self) -> Result<Vec<Seal>, StoreError> {
        let rows = sqlx::query("SELECT position, running_hash, sealed_at FROM seals ORDER BY position")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let at: String = r.get(2);
                Ok(Seal {
                    position: r.get::<i64, _>(0) as u64,
                    running_hash: r.get(1),
                    sealed_at: DateTime::parse_from_rfc3339(&at)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?
                        .with_timezone(&Utc),
                })
            })
            .collect()
    }

    async fn write_seal(&self, seal: &Seal) -> Result<(), StoreError> {
        let mut conn = self.writer_conn.lock(true, "seals").await?;
        sqlx::query("INSERT INTO seals (position, running_hash, sealed_at) VALUES ($1, $2, $3) ON CONFLICT (position) DO NOTHING")
            .bind(seal.position as i64)
            .bind(&seal.running_hash)
            .bind(hashing::timestamp_text(seal.sealed_at))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT position FROM relay_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.reader)
                .await?
                .unwrap_or(0) as u64,
        )
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        // A lost relay checkpoint only means events are published again (the bus is
        // at-least-once and projections apply by position): no fsync of its own.
        let mut conn = self.writer_conn.lock(false, "relay checkpoints").await?;
        sqlx::query(
            "INSERT INTO relay_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = MAX(relay_checkpoints.position, excluded.position)",
        )
        .bind(name)
        .bind(position as i64)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    fn db(&self) -> Db {
        Db::Sqlite {
            writer: self.writer_conn.clone(),
            reader: self.reader.clone(),
        }
    }

    fn read_models(&self) -> Db {
        self.read_models.clone()
    }
}

impl RawEvent {
    /// Parse the stored text columns.
    pub fn parse(self) -> Result<RecordedEvent, StoreError> {
        Ok(RecordedEvent {
            global_position: self.global_position,
            event_id: uuid::Uuid::parse_str(&self.event_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| StoreError::Corrupt(format!("payload at {}: {e}", self.global_position)))?,
            metadata: serde_json::from_str(&self.metadata)
                .map_err(|e| StoreError::Corrupt(format!("metadata at {}: {e}", self.global_position)))?,
            recorded_at: self.recorded_at,
            hash: self.hash,
        })
    }
}
