//! One way to reach the database for everything that is not the event log
//! itself: read models and their checkpoints
//! ([`EventStore::read_models`](crate::store::EventStore::read_models)), and the
//! side tables written durably beside the log — keys, idempotency records
//! ([`EventStore::db`](crate::store::EventStore::db)). On PostgreSQL both are the
//! same database; on SQLite they are two files, each with its one writer.
//!
//! SQL is written once with `$1, $2, …` placeholders in the subset both
//! backends share (`INSERT … ON CONFLICT … DO UPDATE`, `LIMIT`, plain types).
//! Uuids are stored as text, timestamps as `TIMESTAMPTZ` on PostgreSQL and
//! fixed-width RFC 3339 text on SQLite (so they sort as text).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use std::sync::Arc;
use std::time::Instant;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Clone, Debug)]
pub enum Db {
    /// One writer connection (all writes serialize there) and a reader pool.
    Sqlite {
        writer: SqliteWriter,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// The one SQLite connection every write goes through, shared behind a lock.
///
/// It is not a one-connection pool: a pool connection, when dropped, goes back
/// through a spawned task that pings the connection first, so the next writer
/// waited for that task to be scheduled as well as for the ping. Here the next
/// writer takes the connection the moment the last one lets go.
///
/// Each use says what it writes: `durable` writes (events, keys, seals) must
/// survive a power cut once they return and commit with `synchronous = FULL`;
/// the rest (read models, checkpoints) can be applied again and commit with
/// `NORMAL`. The mode is only set when it changes. How long each kind of user
/// waits for the connection and holds it is measured
/// (`medledger_sqlite_writer_{wait,held}_seconds{by}`).
#[derive(Clone)]
pub struct SqliteWriter(Arc<Mutex<WriterState>>);

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

struct WriterState {
    /// `None` once closed.
    conn: Option<SqliteConnection>,
    /// The `synchronous` setting last applied (`None`: unknown).
    durable: Option<bool>,
    /// A transaction was begun and neither committed nor rolled back (its
    /// user was dropped or failed): the next user rolls it back first.
    in_tx: bool,
}

/// The writer connection, held until dropped.
pub struct WriterGuard {
    state: OwnedMutexGuard<WriterState>,
    writer: SqliteWriter,
    by: &'static str,
    since: Instant,
}

impl SqliteWriter {
    pub async fn connect(options: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let conn = options.connect().await?;
        Ok(SqliteWriter(Arc::new(Mutex::new(WriterState {
            conn: Some(conn),
            durable: None,
            in_tx: false,
        }))))
    }

    /// Wait for the connection; `by` names the user in the metrics.
    pub async fn lock(&self, durable: bool, by: &'static str) -> Result<WriterGuard, sqlx::Error> {
        let waited = Instant::now();
        let mut state = self.0.clone().lock_owned().await;
        metrics::histogram!("medledger_sqlite_writer_wait_seconds", "by" => by).record(waited.elapsed().as_secs_f64());
        let WriterState {
            conn,
            durable: mode,
            in_tx,
        } = &mut *state;
        let conn = conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        if *in_tx {
            rollback(conn).await?;
            *in_tx = false;
        }
        if *mode != Some(durable) {
            *mode = None;
            let pragma = if durable {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            sqlx::query(pragma).execute(&mut *conn).await?;
            *mode = Some(durable);
        }
        Ok(WriterGuard {
            state,
            writer: self.clone(),
            by,
            since: Instant::now(),
        })
    }

    /// Close the connection once its current user lets go (later uses fail
    /// with [`sqlx::Error::PoolClosed`]).
    pub async fn close(&self) {
        if let Some(conn) = self.0.lock().await.conn.take() {
            let _ = conn.close().await;
        }
    }
}

impl WriterGuard {
    /// `BEGIN IMMEDIATE`: the write lock up front (see [`Db::begin`]).
    pub async fn begin(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut **self).await?;
        self.state.in_tx = true;
        Ok(())
    }

    /// Commit what [`WriterGuard::begin`] began; on failure it is rolled back.
    pub async fn commit(&mut self) -> Result<(), sqlx::Error> {
        match sqlx::query("COMMIT").execute(&mut **self).await {
            Ok(_) => {
                self.state.in_tx = false;
                Ok(())
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    /// `BEGIN IMMEDIATE; …`: begin and run `query`'s statements (which follow the
    /// `BEGIN IMMEDIATE` it starts with) in one round trip; their rows.
    pub async fn begin_fetching<'q>(
        &mut self,
        query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        // Counted as begun before it is: if it fails before `BEGIN` took, the
        // rollback finds no transaction, which is fine.
        self.state.in_tx = true;
        query.fetch_all(&mut **self).await
    }

    /// Roll back an open transaction (if that fails too, the next user retries).
    pub async fn rollback(&mut self) {
        if rollback(self).await.is_ok() {
            self.state.in_tx = false;
        }
    }
}

/// `ROLLBACK`, where "no transaction is active" is success: SQLite itself rolls a
/// transaction back on some errors (a full disk, an interrupted statement), and a
/// transaction counted as begun may never have begun.
async fn rollback(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    match sqlx::query("ROLLBACK").execute(conn).await {
        Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => Ok(()),
        other => other.map(|_| ()),
    }
}

impl std::ops::Deref for WriterGuard {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        // `lock` hands out a guard only while the connection is open, and `close`
        // cannot take it while a guard is held.
        self.state
            .conn
            .as_ref()
            .expect("the writer is open while a guard is held")
    }
}

impl std::ops::DerefMut for WriterGuard {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.state
            .conn
            .as_mut()
            .expect("the writer is open while a guard is held")
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        metrics::histogram!("medledger_sqlite_writer_held_seconds", "by" => self.by)
            .record(self.since.elapsed().as_secs_f64());
        if self.state.in_tx {
            // Abandoned inside a transaction (an error, or its task was dropped):
            // release SQLite's write lock now rather than at the next write, which
            // another process sharing the file may be waiting for.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let writer = self.writer.clone();
                runtime.spawn(async move {
                    let _ = writer.lock(false, "rollback").await;
                });
            }
        }
    }
}

/// A bound value.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Null,
    I64(i64),
    F64(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    Time(DateTime<Utc>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<u64> for Arg {
    fn from(v: u64) -> Self {
        Arg::I64(v as i64)
    }
}
impl From<u32> for Arg {
    fn from(v: u32) -> Self {
        Arg::I64(v as i64)
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::F64(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<uuid::Uuid> for Arg {
    fn from(v: uuid::Uuid) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(v)
    }
}
impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Arg::Null)
    }
}

/// `args![a, b, c]` builds an array of [`Arg`]s.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$($crate::db::Arg::from($a)),*] };
}

/// A value decodable from both backends.
pub trait Column:
    for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}
impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

pub enum DbRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl DbRow {
    pub fn get<T: Column>(&self, index: usize) -> Result<T, sqlx::Error> {
        match self {
            DbRow::Sqlite(r) => r.try_get(index),
            DbRow::Postgres(r) => r.try_get(index),
        }
    }

    /// A timestamp column (TIMESTAMPTZ or RFC 3339 text).
    pub fn time(&self, index: usize) -> Result<DateTime<Utc>, sqlx::Error> {
        match self {
            DbRow::Sqlite(r) => {
                let s: String = r.try_get(index)?;
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))
            }
            DbRow::Postgres(r) => r.try_get(index),
        }
    }

    pub fn opt_time(&self, index: usize) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        match self {
            DbRow::Sqlite(r) => {
                let s: Option<String> = r.try_get(index)?;
                s.map(|s| {
                    DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
                })
                .transpose()
            }
            DbRow::Postgres(r) => r.try_get(index),
        }
    }
}

macro_rules! bind_all {
    ($q:expr, $args:expr, $time:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Null => q.bind(None::<String>),
                Arg::I64(v) => q.bind(*v),
                Arg::F64(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::Bytes(v) => q.bind(v.as_slice()),
                Arg::Time(t) => $time(q, t),
            };
        }
        q
    }};
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn sqlite_query<'q>(sql: &'q str, args: &'q [Arg]) -> SqliteQuery<'q> {
    let q = match anonymous_placeholders(sql) {
        Some(rewritten) => sqlx::query(rewritten),
        None => sqlx::query(sql),
    };
    bind_all!(q, args, |q: SqliteQuery<'q>, t: &DateTime<Utc>| q
        .bind(crate::store::hashing::timestamp_text(*t)))
}

/// `$1, $2, … $n`, each once and in order, rewritten to `?`: sqlx resolves
/// named SQLite parameters one lookup at a time, which is quadratic in their
/// number (a 9,000-parameter insert spent most of its time there). Other
/// shapes are left as written. The rewritten text is leaked once per
/// distinct statement and cached (statements are a small fixed set).
fn anonymous_placeholders(sql: &str) -> Option<&'static str> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<&'static str>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
        return *hit;
    }
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1u32;
    let mut chars = sql.char_indices().peekable();
    let mut in_quote = false;
    let mut sequential = true;
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            in_quote = !in_quote;
        }
        if c == '$' && !in_quote {
            let mut digits = String::new();
            while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            if digits.parse::<u32>().ok() == Some(expected) {
                expected += 1;
                out.push('?');
                continue;
            }
            sequential = false;
            break;
        }
        out.push(c);
    }
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    if guard.len() >= 10_000 {
        return None; // never leak without bound: leave unusual statements named
    }
    let result = (sequential && expected > 1).then(|| &*Box::leak(out.into_boxed_str()));
    guard.insert(sql.to_string(), result);
    result
}

fn pg_query<'q>(sql: &'q str, args: &'q [Arg]) -> PgQuery<'q> {
    bind_all!(sqlx::query(sql), args, |q: PgQuery<'q>, t: &DateTime<Utc>| q.bind(*t))
}

impl Db {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// One statement, durable when it returns (keys, idempotency records, checkpoints).
    pub async fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Db::Sqlite { writer, .. } => {
                let mut conn = writer.lock(true, "durable statement").await?;
                sqlite_query(sql, args).execute(&mut *conn).await?.rows_affected()
            }
            Db::Postgres(p) => pg_query(sql, args).execute(p).await?.rows_affected(),
        })
    }

    pub async fn fetch_all(&self, sql: &str, args: &[Arg]) -> Result<Vec<DbRow>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite { reader, .. } => sqlite_query(sql, args)
                .fetch_all(reader)
                .await?
                .into_iter()
                .map(DbRow::Sqlite)
                .collect(),
            Db::Postgres(p) => pg_query(sql, args)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(DbRow::Postgres)
                .collect(),
        })
    }

    pub async fn fetch_optional(&self, sql: &str, args: &[Arg]) -> Result<Option<DbRow>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite { reader, .. } => sqlite_query(sql, args).fetch_optional(reader).await?.map(DbRow::Sqlite),
            Db::Postgres(p) => pg_query(sql, args).fetch_optional(p).await?.map(DbRow::Postgres),
        })
    }

    /// A write transaction for read models (the projection runner's).
    ///
    /// On PostgreSQL it commits with `synchronous_commit = off`. On SQLite it
    /// commits without waiting for the disk (`synchronous = NORMAL`
    /// in WAL mode: atomic and consistent, and made durable when the file's
    /// write-ahead log is next checkpointed, or by the next durable write on the
    /// same file). A read model can always be
    /// rebuilt from the log, and its checkpoint commits with it, so a power cut
    /// loses at most some applied batches, which are applied again; events are
    /// durable before any projection sees them, so a read model is never ahead
    /// of the log. [`Db::execute`] sets `synchronous = FULL` before each write on
    /// the same writer connection. This keeps one fsync per event commit and
    /// none per projection batch.
    ///
    /// It also takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads before it
    /// writes fails at once with "database is locked" if another connection
    /// (a second process on the same file, such as `medledger replay`) has
    /// committed in between, because the busy timeout cannot help a stale
    /// read snapshot.
    pub async fn begin(&self) -> Result<DbTx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite { writer, .. } => {
                let mut conn = writer.lock(false, "read models").await?;
                conn.begin().await?;
                DbTx::Sqlite(conn)
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                // The same bargain on PostgreSQL: the commit does not wait for the WAL
                // flush (consistent, never corrupt; a crash can lose the last moments
                // of read-model batches, which are applied again from the checkpoint).
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
                DbTx::Postgres(tx)
            }
        })
    }

    /// Is the database answering?
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.fetch_optional("SELECT 1", &[]).await.map(|_| ())
    }
}

pub enum DbTx {
    /// The writer, inside `BEGIN IMMEDIATE` (dropped uncommitted: rolled back).
    Sqlite(WriterGuard),
    Postgres(Transaction<'static, Postgres>),
}

impl DbTx {
    pub fn is_postgres(&self) -> bool {
        matches!(self, DbTx::Postgres(_))
    }

    pub async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            DbTx::Sqlite(t) => sqlite_query(sql, args).execute(&mut **t).await?.rows_affected(),
            DbTx::Postgres(t) => pg_query(sql, args).execute(&mut **t).await?.rows_affected(),
        })
    }

    pub async fn fetch_all(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<DbRow>, sqlx::Error> {
        Ok(match self {
            DbTx::Sqlite(t) => sqlite_query(sql, args)
                .fetch_all(&mut **t)
                .await?
                .into_iter()
                .map(DbRow::Sqlite)
                .collect(),
            DbTx::Postgres(t) => pg_query(sql, args)
                .fetch_all(&mut **t)
                .await?
                .into_iter()
                .map(DbRow::Postgres)
                .collect(),
        })
    }

    pub async fn fetch_optional(&mut self, sql: &str, args: &[Arg]) -> Result<Option<DbRow>, sqlx::Error> {
        Ok(match self {
            DbTx::Sqlite(t) => sqlite_query(sql, args)
                .fetch_optional(&mut **t)
                .await?
                .map(DbRow::Sqlite),
            DbTx::Postgres(t) => pg_query(sql, args).fetch_optional(&mut **t).await?.map(DbRow::Postgres),
        })
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            DbTx::Sqlite(mut t) => t.commit().await,
            DbTx::Postgres(t) => t.commit().await,
        }
    }

    /// Insert many rows with few statements: `{head} VALUES (…), (…) {tail}`,
    /// `args` holding `width` values per row, row after row.
    ///
    /// Rows go in chunks whose sizes are powers of two (at most
    /// [`MAX_ROWS_PER_INSERT`]), so a table has a handful of statement shapes:
    /// each is prepared once by PostgreSQL and rewritten once for SQLite,
    /// whatever the batch sizes. Returns the rows affected.
    pub async fn insert_rows(
        &mut self,
        head: &str,
        width: usize,
        args: &[Arg],
        tail: &str,
    ) -> Result<u64, sqlx::Error> {
        if width == 0 || !args.len().is_multiple_of(width) {
            return Err(sqlx::Error::Protocol(format!(
                "insert_rows: {} values are not whole rows of {width}",
                args.len()
            )));
        }
        let mut affected = 0;
        let mut rest = args;
        while !rest.is_empty() {
            let rows = (rest.len() / width).min(MAX_ROWS_PER_INSERT);
            let chunk = 1usize << rows.ilog2();
            let (now, later) = rest.split_at(chunk * width);
            affected += self.execute(values_statement(head, width, chunk, tail), now).await?;
            rest = later;
        }
        Ok(affected)
    }
}

/// The largest chunk [`DbTx::insert_rows`] sends in one statement.
pub const MAX_ROWS_PER_INSERT: usize = 256;

/// `{head} VALUES ($1, …, $width), … {tail}` for `rows` rows, built once per shape.
fn values_statement(head: &str, width: usize, rows: usize, tail: &str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Shapes = HashMap<(String, usize, usize, String), &'static str>;
    static CACHE: OnceLock<Mutex<Shapes>> = OnceLock::new();
    let key = (head.to_string(), width, rows, tail.to_string());
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cache.entry(key).or_insert_with(|| {
        let mut sql = String::with_capacity(head.len() + tail.len() + rows * width * 6);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", r * width + c + 1));
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        Box::leak(sql.into_boxed_str())
    })
}

#[cfg(test)]
mod tests {
    use super::anonymous_placeholders;

    #[test]
    fn sequential_placeholders_become_anonymous() {
        assert_eq!(
            anonymous_placeholders("SELECT a FROM t WHERE x = $1 AND y = $2"),
            Some("SELECT a FROM t WHERE x = ? AND y = ?")
        );
        assert_eq!(
            anonymous_placeholders("UPDATE t SET n = n + $2 WHERE id = $1"),
            None,
            "out of order stays named"
        );
        assert_eq!(anonymous_placeholders("SELECT $1, $1"), None, "reused stays named");
        assert_eq!(anonymous_placeholders("SELECT 1"), None);
        assert_eq!(anonymous_placeholders("SELECT '$1', $1"), Some("SELECT '$1', ?"));
    }

    /// Two processes on one SQLite file (the server and `medledger replay`,
    /// say): a read-then-write transaction must wait for the other writer,
    /// not fail with "database is locked", and must not lose its update.
    #[tokio::test]
    async fn sqlite_write_transactions_on_one_file_wait_for_each_other() {
        use crate::store::sqlite::SqliteEventStore;
        use crate::store::EventStore;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("medledger.db");
        let a = SqliteEventStore::open(&path).await.unwrap().db();
        let b = SqliteEventStore::open(&path).await.unwrap().db();
        a.execute("CREATE TABLE counter (n INTEGER NOT NULL)", &[])
            .await
            .unwrap();
        a.execute("INSERT INTO counter (n) VALUES (0)", &[]).await.unwrap();

        let mut tx = a.begin().await.unwrap();
        let n: i64 = tx
            .fetch_optional("SELECT n FROM counter", &[])
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        let other = tokio::spawn(async move {
            let mut tx = b.begin().await?;
            tx.execute("UPDATE counter SET n = n + 1", &[]).await?;
            tx.commit().await
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        tx.execute("UPDATE counter SET n = $1", &[super::Arg::I64(n + 1)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        other.await.unwrap().unwrap();

        let n: i64 = a
            .fetch_optional("SELECT n FROM counter", &[])
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, 2, "both updates kept");
    }

    /// The writer does not checkpoint the write-ahead log on commit; the store's
    /// checkpointer copies it into the database file beside it.
    #[tokio::test]
    async fn sqlite_log_is_checkpointed_beside_the_writer() {
        use crate::store::sqlite::SqliteEventStore;
        use crate::store::EventStore;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("medledger.db");
        let store = SqliteEventStore::open(&path).await.unwrap();
        let db = store.db();
        db.execute("CREATE TABLE blobs (b BLOB)", &[]).await.unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        for _ in 0..16 {
            db.execute(
                "INSERT INTO blobs (b) VALUES ($1)",
                &[super::Arg::Bytes(vec![7; 256 * 1024])],
            )
            .await
            .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("medledger.db-wal")).unwrap().len();
        assert!(wal > 4 << 20, "the writes are in the log ({wal} bytes)");
        let started = std::time::Instant::now();
        while size() < before + (4 << 20) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "never checkpointed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        drop(store);
    }

    /// A transaction that ended behind the writer's back (SQLite rolls back by
    /// itself on a full disk or an I/O error) does not wedge the writer: the
    /// `ROLLBACK` that finds no transaction counts as done, and the next user
    /// goes ahead. Before, that `ROLLBACK` failed, and with it every later use.
    #[tokio::test]
    async fn a_transaction_ended_behind_the_writers_back_does_not_wedge_it() {
        use crate::store::sqlite::SqliteEventStore;
        use crate::store::EventStore;

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(&dir.path().join("medledger.db")).await.unwrap();
        let db = store.read_models();
        db.execute("CREATE TABLE t (n INTEGER)", &[]).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO t (n) VALUES (1)", &[]).await.unwrap();
        tx.execute("ROLLBACK", &[]).await.unwrap();
        assert!(tx.commit().await.is_err(), "nothing left to commit");
        db.execute("INSERT INTO t (n) VALUES (2)", &[]).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO t (n) VALUES (3)", &[]).await.unwrap();
        tx.execute("ROLLBACK", &[]).await.unwrap();
        drop(tx);
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO t (n) VALUES (4)", &[]).await.unwrap();
        tx.commit().await.unwrap();
        let rows: Vec<i64> = db
            .fetch_all("SELECT n FROM t ORDER BY n", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(rows, vec![2, 4]);
    }

    /// Read-model transactions relax `synchronous` on the shared SQLite writer;
    /// every durable write sets it back first.
    #[tokio::test]
    async fn sqlite_read_model_transactions_relax_sync_and_durable_writes_restore_it() {
        use crate::store::sqlite::SqliteEventStore;
        use crate::store::EventStore;

        let dir = tempfile::tempdir().unwrap();
        let db = SqliteEventStore::open(&dir.path().join("medledger.db"))
            .await
            .unwrap()
            .db();
        let super::Db::Sqlite { writer, .. } = &db else {
            unreachable!()
        };
        // Read the writer's setting as it is, without taking it as a user would.
        let mode = || async {
            let mut state = writer.0.lock().await;
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(state.conn.as_mut().unwrap())
                .await
                .unwrap()
        };
        db.execute("CREATE TABLE t (n INTEGER)", &[]).await.unwrap();
        assert_eq!(mode().await, 2, "FULL");
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO t (n) VALUES (1)", &[]).await.unwrap();
        let inside: i64 = tx
            .fetch_optional("PRAGMA synchronous", &[])
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(inside, 1, "NORMAL inside a read-model transaction");
        tx.commit().await.unwrap();
        db.execute("INSERT INTO t (n) VALUES (2)", &[]).await.unwrap();
        assert_eq!(mode().await, 2, "FULL again for a durable write");
    }
}
