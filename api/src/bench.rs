//! `medledger bench`: how fast the event store appends, how far a projection
//! trails behind under load, and how fast a read model rebuilds — measured on
//! this machine, against scratch space that is thrown away afterwards.
//!
//! Each backend runs in its own scratch space: a temporary directory for
//! SQLite, a `medledger_bench_<random>` database on the PostgreSQL server and
//! a uniquely named JetStream stream. All of it is removed at the end, also
//! when a phase fails or the run is interrupted with Ctrl-C.
//!
//! Phases, per backend:
//! 1. appends of 1 event per request, `--writers` concurrent appenders, each
//!    on its own streams with real expected versions;
//! 2. the same with 100 events per request;
//! 3. a raw `INSERT` baseline into a table shaped like `events` (same columns
//!    and keys), single rows and 100-row statements, one commit each;
//! 4. projection lag (append acknowledged → read model updated) at half the
//!    1-event peak, through the relay and runner, on the in-process bus and
//!    on NATS JetStream;
//! 5. replay: fill the log, then time an in-place rebuild of `audit_log`.
//!
//! Every measurement stops after [`MEASURE_LIMIT`] and reports what it got.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use medledger_commands::codec::{EventCodec, Upcasters};
use medledger_commands::crypto::{KeyStore, MasterKey};
use medledger_commands::db::{Arg, Db, DbTx};
use medledger_commands::relay::{Publisher, Relay, RELAY_CHECKPOINT};
use medledger_commands::store::hashing::timestamp_text;
use medledger_commands::store::postgres::PgEventStore;
use medledger_commands::store::sqlite::SqliteEventStore;
use medledger_commands::store::{AppendRequest, AppendResult, EventStore, ExpectedVersion, NewEvent, RecordedEvent};
use medledger_projections::bus::in_process::InProcessBus;
use medledger_projections::bus::nats::{NatsBus, NatsConfig};
use medledger_projections::bus::Bus;
use medledger_projections::{read_models, Projection, ProjectionError, Runner, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, Postgres, QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

/// The longest any single measurement may run; it then stops and reports
/// what it measured so far.
const MEASURE_LIMIT: Duration = Duration::from_secs(60);
/// The longest filling the log for the replay phase may take (not a measurement).
const FILL_LIMIT: Duration = Duration::from_secs(120);
/// The lag phase appends for at most this long at its target rate.
const LAG_LOAD: Duration = Duration::from_secs(20);
/// After the lag load, how long to wait for the projection to apply the rest.
const LAG_DRAIN: Duration = Duration::from_secs(30);
/// How often the lag watcher looks at the runner's status (its resolution).
const WATCH_EVERY: Duration = Duration::from_micros(200);
/// Events per request in the batched measurements.
const BATCH: usize = 100;
/// Streams each appender cycles through.
const STREAMS_PER_WRITER: usize = 64;
/// Replay fill: requests of this many streams × [`BATCH`] events (= 1000).
const REPLAY_STREAMS_PER_REQUEST: usize = 10;
const FILL_TASKS: usize = 4;
/// PostgreSQL store pool size (the platform's default).
const STORE_POOL: u32 = 24;
const SEAL_EVERY: u64 = 10_000;
const BENCH_PROJECTION: &str = "bench_counter";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Measure append throughput, projection lag and replay speed.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// PostgreSQL server to run on. The bench creates its own
    /// `medledger_bench_<random>` database there and drops it at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,

    /// NATS server with JetStream (a uniquely named stream is created and deleted).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Backends to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub backends: Vec<Backend>,

    /// Concurrent appenders (and raw-INSERT connections on PostgreSQL).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub writers: u32,

    /// Events per append measurement.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,

    /// Events appended before timing the audit-log rebuild.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub replay_events: u64,

    /// Measure projection lag on the in-process bus only.
    #[arg(long)]
    pub skip_nats: bool,

    /// Skip the replay (rebuild) measurement.
    #[arg(long)]
    pub skip_replay: bool,
}

/// Run the benchmark and print one table per backend.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let run_id = Uuid::new_v4().simple().to_string()[..12].to_string();
    let mut backends = args.backends.clone();
    backends.dedup();
    if backends.is_empty() {
        bail!("no backend selected (--backends sqlite,postgres)");
    }

    println!("MedLedger bench — run {run_id}");
    println!("machine:  {}", machine());
    println!(
        "build:    {}",
        if cfg!(debug_assertions) {
            "DEBUG — numbers are not representative, use a release build"
        } else {
            "release"
        }
    );
    println!(
        "settings: {} writers, {} events per append measurement, {} replay events{}{}, {} s limit per measurement",
        args.writers,
        thousands(args.events),
        thousands(args.replay_events),
        if args.skip_nats { ", no NATS" } else { "" },
        if args.skip_replay { ", no replay" } else { "" },
        MEASURE_LIMIT.as_secs(),
    );
    let (payload, metadata) = EventGen::sizes();
    println!("events:   JSON payload ≈ {payload} B, metadata ≈ {metadata} B (generated while timing, for store and raw alike)");

    let mut failed = Vec::new();
    for backend in backends {
        let mut report = Report::new(backend);
        let outcome = run_backend(backend, &args, &run_id, &mut report).await;
        report.print(args.writers);
        if let Err(e) = outcome {
            println!("  {} FAILED: {e:#}", backend.label());
            let interrupted = e.downcast_ref::<Interrupted>().is_some();
            failed.push(backend.label());
            if interrupted {
                break;
            }
        }
    }
    println!();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("bench failed for {}", failed.join(", "))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

async fn run_backend(backend: Backend, args: &BenchArgs, run_id: &str, report: &mut Report) -> anyhow::Result<()> {
    let scratch = Scratch::create(backend, args, run_id).await?;
    report.details.push(scratch.describe());
    let nats = NatsStreams::default();
    let outcome = tokio::select! {
        r = measure_backend(&scratch, args, run_id, &nats, report) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Interrupted)),
    };
    if let Err(e) = nats.delete_all().await {
        report.failures.push(format!("cleanup: {e:#}"));
    }
    let removed = scratch.remove().await;
    match (outcome, removed) {
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(e)) => Err(e.context("cleanup failed")),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => {
            report.failures.push(format!("cleanup: {c:#}"));
            Err(e)
        }
    }
}

async fn measure_backend(
    scratch: &Scratch,
    args: &BenchArgs,
    run_id: &str,
    nats: &NatsStreams,
    report: &mut Report,
) -> anyhow::Result<()> {
    let ctx = Ctx::open(scratch, args).await?;
    report.details.extend(ctx.describe().await);
    let outcome = measure_all(&ctx, run_id, nats, report).await;
    ctx.close().await;
    outcome?;
    if report.failures.is_empty() {
        Ok(())
    } else {
        bail!("{} measurement(s) failed", report.failures.len())
    }
}

async fn measure_all(ctx: &Ctx, run_id: &str, nats: &NatsStreams, report: &mut Report) -> anyhow::Result<()> {
    let name = ctx.backend.label();

    progress(name, "append, 1 event per request");
    let one = store_throughput(ctx, 1, "one")
        .await
        .context("append, 1 event per request")?;
    report.store_one = Some(one.clone());

    progress(name, "append, 100 events per request");
    let hundred = store_throughput(ctx, BATCH, "hundred")
        .await
        .context("append, 100 events per request")?;
    report.store_batch = Some(hundred);

    create_raw_table(&ctx.db).await.context("creating bench_raw")?;
    let positions = Arc::new(AtomicI64::new(0));
    progress(name, "raw INSERT, 1 row per commit");
    report.raw_one = Some(
        raw_throughput(ctx, 1, &positions)
            .await
            .context("raw INSERT, 1 row per commit")?,
    );
    progress(name, "raw INSERT, 100 rows per commit");
    report.raw_batch = Some(
        raw_throughput(ctx, BATCH, &positions)
            .await
            .context("raw INSERT, 100 rows per commit")?,
    );

    ctx.db
        .execute(
            "CREATE TABLE IF NOT EXISTS bench_counter (id INT PRIMARY KEY, n BIGINT NOT NULL)",
            &[],
        )
        .await
        .context("creating bench_counter")?;
    let target = one.per_sec() / 2.0;

    progress(name, &format!("projection lag, in-process bus, {target:.0} events/s"));
    let lag = measure_lag(ctx, InProcessBus::new(), "lagmem", target).await;
    report.add_lag("in-process", lag);

    if !ctx.args.skip_nats {
        progress(name, &format!("projection lag, NATS JetStream, {target:.0} events/s"));
        let lag = nats_lag(ctx, run_id, nats, target).await;
        report.add_lag("nats-jetstream", lag);
    }

    if !ctx.args.skip_replay {
        progress(
            name,
            &format!(
                "replay: filling the log with {} events",
                thousands(ctx.args.replay_events)
            ),
        );
        match replay(ctx).await {
            Ok(r) => report.replay = Some(r),
            Err(e) => report.failures.push(format!("replay: {e:#}")),
        }
    }
    Ok(())
}

fn progress(backend: &str, what: &str) {
    eprintln!("[bench] {backend}: {what} …");
}

// ---------------------------------------------------------------------------
// Scratch space and the store under test

/// Where one backend's run lives; removed at the end.
enum Scratch {
    Sqlite {
        dir: PathBuf,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl Scratch {
    async fn create(backend: Backend, args: &BenchArgs, run_id: &str) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("medledger-bench-{run_id}"));
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                Ok(Scratch::Sqlite { dir })
            }
            Backend::Postgres => {
                let name = format!("medledger_bench_{run_id}");
                let url = with_database(&args.database_url, &name)?;
                let mut admin = PgConnection::connect(&args.database_url)
                    .await
                    .with_context(|| format!("connecting to {}", redact(&args.database_url)))?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .with_context(|| format!("creating database {name}"))?;
                let _ = admin.close().await;
                Ok(Scratch::Postgres {
                    admin_url: args.database_url.clone(),
                    name,
                    url,
                })
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Scratch::Sqlite { dir } => format!("scratch directory {}", dir.display()),
            Scratch::Postgres { name, url, .. } => {
                format!("scratch database {name} ({})", redact(url))
            }
        }
    }

    async fn remove(&self) -> anyhow::Result<()> {
        match self {
            Scratch::Sqlite { dir } => {
                std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
                eprintln!("[bench] removed {}", dir.display());
            }
            Scratch::Postgres { admin_url, name, .. } => {
                drop_database(admin_url, name).await?;
                eprintln!("[bench] dropped database {name}");
            }
        }
        Ok(())
    }
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {} to drop {name}", redact(admin_url)))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Whatever is still connected (a stopped relay's leadership
        // connection, an interrupted phase) must not keep the database alive.
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut admin)
        .await?;
        match sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt >= 10 => return Err(anyhow!(e).context(format!("dropping database {name}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    let _ = admin.close().await;
    Ok(())
}

/// The store under test and what the phases share.
struct Ctx {
    backend: Backend,
    args: BenchArgs,
    store: Arc<dyn EventStore>,
    codec: EventCodec,
    db: Db,
    /// The SQLite file, or the PostgreSQL URL of the scratch database.
    location: String,
}

impl Ctx {
    async fn open(scratch: &Scratch, args: &BenchArgs) -> anyhow::Result<Self> {
        let (backend, store, location): (Backend, Arc<dyn EventStore>, String) = match scratch {
            Scratch::Sqlite { dir } => {
                let path = dir.join("medledger.db");
                let store = SqliteEventStore::open(&path)
                    .await
                    .context("opening the SQLite store")?;
                (Backend::Sqlite, Arc::new(store), path.display().to_string())
            }
            Scratch::Postgres { url, .. } => {
                let store = PgEventStore::connect(url, STORE_POOL)
                    .await
                    .context("opening the PostgreSQL store")?;
                (Backend::Postgres, Arc::new(store), url.clone())
            }
        };
        let db = store.db();
        let codec = EventCodec::new(KeyStore::new(db.clone(), MasterKey::generate()), Upcasters::platform());
        Ok(Ctx {
            backend,
            args: args.clone(),
            store,
            codec,
            db,
            location,
        })
    }

    fn writers(&self) -> usize {
        self.args.writers as usize
    }

    /// Server version and durability settings, so numbers can be compared.
    async fn describe(&self) -> Vec<String> {
        let text = |sql: &'static str| async move {
            match self.db.fetch_optional(sql, &[]).await {
                Ok(Some(row)) => row.get::<String>(0).unwrap_or_else(|e| format!("? ({e})")),
                Ok(None) => "?".into(),
                Err(e) => format!("? ({e})"),
            }
        };
        match self.backend {
            Backend::Sqlite => vec![format!(
                "SQLite {}, WAL, synchronous=FULL, one writer connection (group commit)",
                text("SELECT sqlite_version()").await
            )],
            Backend::Postgres => vec![format!(
                "PostgreSQL {}, fsync={}, synchronous_commit={}, store pool {STORE_POOL}",
                text("SHOW server_version").await,
                text("SHOW fsync").await,
                text("SHOW synchronous_commit").await,
            )],
        }
    }

    async fn close(&self) {
        let close = async {
            match &self.db {
                Db::Sqlite { writer, reader } => {
                    writer.close().await;
                    reader.close().await;
                }
                Db::Postgres(pool) => pool.close().await,
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), close).await.is_err() {
            eprintln!("[bench] the store's connections did not close within 10 s");
        }
    }
}

// ---------------------------------------------------------------------------
// Generated events

const EVENT_TYPES: [&str; 4] = [
    "BenchStudyReceived",
    "BenchStudyViewed",
    "BenchReportSigned",
    "BenchStudyShared",
];
const MODALITIES: [&str; 6] = ["CT", "MR", "CR", "US", "MG", "PT"];
const BODY_PARTS: [&str; 6] = ["CHEST", "HEAD", "ABDOMEN", "KNEE", "SPINE", "PELVIS"];
const CLIENTS: [&str; 4] = ["pc", "api", "dicom", "system"];

/// Realistic-looking events: ~300-byte payloads, metadata as the platform writes it.
struct EventGen {
    rng: StdRng,
    tenants: Vec<Value>,
    actors: Vec<Uuid>,
    seq: u64,
}

impl EventGen {
    fn new() -> Self {
        let alliance = Uuid::new_v4();
        let mut tenants: Vec<Value> = (0..8)
            .map(|_| json!({"alliance_id": alliance, "hospital_id": Uuid::new_v4()}))
            .collect();
        tenants.push(json!({}));
        EventGen {
            rng: StdRng::from_entropy(),
            tenants,
            actors: (0..32).map(|_| Uuid::new_v4()).collect(),
            seq: 0,
        }
    }

    /// Average serialized payload and metadata sizes, in bytes.
    fn sizes() -> (usize, usize) {
        let sample = EventGen::new().events(1000);
        let n = sample.len().max(1);
        (
            sample.iter().map(|e| e.payload.to_string().len()).sum::<usize>() / n,
            sample.iter().map(|e| e.metadata.to_string().len()).sum::<usize>() / n,
        )
    }

    fn metadata(&mut self) -> Value {
        let actor = self.actors[self.rng.gen_range(0..self.actors.len())];
        let tenant = self.tenants[self.rng.gen_range(0..self.tenants.len())].clone();
        let client = CLIENTS[self.rng.gen_range(0..CLIENTS.len())];
        json!({"actor": actor, "tenant": tenant, "client": client, "correlation_id": Uuid::now_v7()})
    }

    fn payload(&mut self) -> Value {
        self.seq += 1;
        let r = &mut self.rng;
        let modality = MODALITIES[r.gen_range(0..MODALITIES.len())];
        let part = BODY_PARTS[r.gen_range(0..BODY_PARTS.len())];
        json!({
            "study_id": Uuid::new_v4(),
            "study_uid": format!("1.2.826.0.1.3680043.8.498.{}.{}", r.gen::<u32>(), r.gen::<u32>()),
            "accession_number": format!("ACC{:09}", self.seq),
            "patient_ref": format!("MRN{:08}", r.gen_range(0..100_000_000u32)),
            "modality": modality,
            "body_part": part,
            "description": format!("{modality} {part} standard protocol, follow-up"),
            "series_count": r.gen_range(1..12u32),
            "instance_count": r.gen_range(1..2500u32),
            "station": format!("{modality}-{:02}", r.gen_range(1..20u32)),
            "priority": if r.gen_bool(0.1) { "urgent" } else { "routine" },
        })
    }

    /// One request's events: one command's metadata, fresh payloads.
    fn events(&mut self, n: usize) -> Vec<NewEvent> {
        let metadata = self.metadata();
        let now = Utc::now();
        (0..n)
            .map(|_| {
                let event_type = EVENT_TYPES[self.rng.gen_range(0..EVENT_TYPES.len())];
                NewEvent::new(event_type, 1, self.payload(), metadata.clone(), now)
            })
            .collect()
    }
}

/// An appender's own streams, with the versions it expects them at.
struct OwnStreams {
    prefix: String,
    versions: Vec<u64>,
    next: usize,
}

impl OwnStreams {
    fn new(prefix: String, count: usize) -> Self {
        OwnStreams {
            prefix,
            versions: vec![0; count.max(1)],
            next: 0,
        }
    }

    /// Append to the next stream with `NoStream`/`Exact(v)` and check the
    /// version the store reports.
    async fn append(&mut self, store: &dyn EventStore, events: Vec<NewEvent>) -> anyhow::Result<AppendResult> {
        let s = self.next;
        self.next = (self.next + 1) % self.versions.len();
        let id = format!("{}-{s}", self.prefix);
        let n = events.len() as u64;
        let before = self.versions[s];
        let result = store
            .append(AppendRequest::stream(&id, ExpectedVersion::from_loaded(before), events))
            .await
            .with_context(|| format!("appending to {id}"))?;
        let now = result.stream_versions.first().map(|(_, v)| *v);
        if now != Some(before + n) {
            bail!("{id}: the store reports version {now:?} after appending {n} events at version {before}");
        }
        self.versions[s] = before + n;
        Ok(result)
    }
}

/// Task `w`'s share when `total` is split over `tasks`.
fn share(total: u64, tasks: usize, w: usize) -> u64 {
    let tasks = tasks as u64;
    let w = w as u64;
    total / tasks + u64::from(w < total % tasks)
}

/// Wait for every task; the first error aborts the rest.
async fn join_all<T: 'static>(mut set: JoinSet<anyhow::Result<T>>) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        out.push(joined.context("benchmark task failed")??);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Phases 1 and 2: append throughput through the store

#[derive(Clone, Debug)]
struct Rate {
    events: u64,
    elapsed: Duration,
    /// Stopped at the time limit before doing all the work.
    capped: bool,
    /// Who did the work, for the table.
    by: String,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

async fn store_throughput(ctx: &Ctx, per_request: usize, tag: &'static str) -> anyhow::Result<Rate> {
    let writers = ctx.writers();
    let requests = ctx.args.events.div_ceil(per_request as u64);

    // Not timed: one append per appender opens connections and warms caches.
    let mut warm = JoinSet::new();
    for w in 0..writers {
        let store = ctx.store.clone();
        warm.spawn(async move {
            let mut gen = EventGen::new();
            OwnStreams::new(format!("benchwarm-{tag}-{w}"), 1)
                .append(store.as_ref(), gen.events(per_request))
                .await
                .map(|_| ())
        });
    }
    join_all(warm).await.context("warm-up")?;

    let start = Instant::now();
    let deadline = start + MEASURE_LIMIT;
    let mut set = JoinSet::new();
    for w in 0..writers {
        let store = ctx.store.clone();
        let n = share(requests, writers, w);
        set.spawn(async move {
            let mut gen = EventGen::new();
            let mut streams = OwnStreams::new(format!("bench-{tag}-{w}"), STREAMS_PER_WRITER);
            let mut appended = 0u64;
            for _ in 0..n {
                if Instant::now() >= deadline {
                    return Ok((appended, true));
                }
                streams.append(store.as_ref(), gen.events(per_request)).await?;
                appended += per_request as u64;
            }
            Ok((appended, false))
        });
    }
    let done = join_all(set).await?;
    let elapsed = start.elapsed();
    Ok(Rate {
        events: done.iter().map(|(n, _)| n).sum(),
        elapsed,
        capped: done.iter().any(|(_, c)| *c),
        by: format!("{writers} writers"),
    })
}

// ---------------------------------------------------------------------------
// Phase 3: the raw INSERT baseline

async fn create_raw_table(db: &Db) -> Result<u64, sqlx::Error> {
    let sql = if db.is_postgres() {
        "CREATE TABLE IF NOT EXISTS bench_raw (
            position       BIGINT      PRIMARY KEY,
            event_id       UUID        NOT NULL UNIQUE,
            stream_id      TEXT        NOT NULL,
            version        BIGINT      NOT NULL,
            type           TEXT        NOT NULL,
            schema_version INT         NOT NULL,
            payload        TEXT        NOT NULL,
            metadata       TEXT        NOT NULL,
            recorded_at    TIMESTAMPTZ NOT NULL,
            hash           TEXT        NOT NULL,
            UNIQUE (stream_id, version))"
    } else {
        "CREATE TABLE IF NOT EXISTS bench_raw (
            position       INTEGER PRIMARY KEY,
            event_id       TEXT    NOT NULL UNIQUE,
            stream_id      TEXT    NOT NULL,
            version        INTEGER NOT NULL,
            type           TEXT    NOT NULL,
            schema_version INTEGER NOT NULL,
            payload        TEXT    NOT NULL,
            metadata       TEXT    NOT NULL,
            recorded_at    TEXT    NOT NULL,
            hash           TEXT    NOT NULL,
            UNIQUE (stream_id, version))"
    };
    db.execute(sql, &[]).await
}

/// A row shaped like `events`, ready to bind.
struct RawRow {
    position: i64,
    event_id: Uuid,
    stream_id: String,
    version: i64,
    event_type: String,
    payload: String,
    metadata: String,
    recorded_at: DateTime<Utc>,
    hash: String,
}

/// A writer's rows: its own streams, dense versions, positions from a shared counter.
struct RawRows {
    gen: EventGen,
    prefix: String,
    versions: Vec<i64>,
    next: usize,
    positions: Arc<AtomicI64>,
}

impl RawRows {
    fn new(prefix: String, positions: Arc<AtomicI64>) -> Self {
        RawRows {
            gen: EventGen::new(),
            prefix,
            versions: vec![0; STREAMS_PER_WRITER],
            next: 0,
            positions,
        }
    }

    fn rows(&mut self, n: usize) -> Vec<RawRow> {
        let s = self.next;
        self.next = (self.next + 1) % self.versions.len();
        let stream_id = format!("{}-{s}", self.prefix);
        self.gen
            .events(n)
            .into_iter()
            .map(|e| {
                self.versions[s] += 1;
                RawRow {
                    position: self.positions.fetch_add(1, Ordering::Relaxed) + 1,
                    event_id: e.event_id,
                    stream_id: stream_id.clone(),
                    version: self.versions[s],
                    event_type: e.event_type,
                    payload: e.payload.to_string(),
                    metadata: e.metadata.to_string(),
                    recorded_at: e.recorded_at,
                    // Same width as a SHA-256 hex digest; the store's hash chain is its own cost.
                    hash: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
                }
            })
            .collect()
    }
}

const RAW_INSERT: &str =
    "INSERT INTO bench_raw (position, event_id, stream_id, version, type, schema_version, payload, metadata, recorded_at, hash) ";

#[derive(Clone)]
enum RawPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl RawPool {
    async fn open(ctx: &Ctx) -> anyhow::Result<Self> {
        Ok(match ctx.backend {
            // As the store does it: one writer connection, WAL, synchronous=FULL.
            Backend::Sqlite => RawPool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        SqliteConnectOptions::from_str(&format!("sqlite://{}", ctx.location))?
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Full)
                            .busy_timeout(Duration::from_secs(10)),
                    )
                    .await?,
            ),
            Backend::Postgres => RawPool::Postgres(
                PgPoolOptions::new()
                    .max_connections(ctx.args.writers)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&ctx.location)
                    .await?,
            ),
        })
    }

    /// Concurrent connections used: one on SQLite, `--writers` on PostgreSQL.
    fn tasks(&self, writers: usize) -> usize {
        match self {
            RawPool::Sqlite(_) => 1,
            RawPool::Postgres(_) => writers,
        }
    }

    /// One statement, autocommitted: one commit for all `rows`.
    async fn insert(&self, rows: &[RawRow]) -> Result<(), sqlx::Error> {
        match self {
            RawPool::Sqlite(pool) => {
                let mut q = QueryBuilder::<Sqlite>::new(RAW_INSERT);
                q.push_values(rows, |mut b, r| {
                    b.push_bind(r.position)
                        .push_bind(r.event_id.to_string())
                        .push_bind(&r.stream_id)
                        .push_bind(r.version)
                        .push_bind(&r.event_type)
                        .push_bind(1i64)
                        .push_bind(&r.payload)
                        .push_bind(&r.metadata)
                        .push_bind(timestamp_text(r.recorded_at))
                        .push_bind(&r.hash);
                });
                q.build().execute(pool).await?;
            }
            RawPool::Postgres(pool) => {
                let mut q = QueryBuilder::<Postgres>::new(RAW_INSERT);
                q.push_values(rows, |mut b, r| {
                    b.push_bind(r.position)
                        .push_bind(r.event_id)
                        .push_bind(&r.stream_id)
                        .push_bind(r.version)
                        .push_bind(&r.event_type)
                        .push_bind(1i32)
                        .push_bind(&r.payload)
                        .push_bind(&r.metadata)
                        .push_bind(r.recorded_at)
                        .push_bind(&r.hash);
                });
                q.build().execute(pool).await?;
            }
        }
        Ok(())
    }

    async fn close(&self) {
        match self {
            RawPool::Sqlite(p) => p.close().await,
            RawPool::Postgres(p) => p.close().await,
        }
    }
}

async fn raw_throughput(ctx: &Ctx, per_commit: usize, positions: &Arc<AtomicI64>) -> anyhow::Result<Rate> {
    let pool = RawPool::open(ctx).await.context("connecting for raw inserts")?;
    let outcome = raw_measure(ctx, &pool, per_commit, positions).await;
    pool.close().await;
    outcome
}

async fn raw_measure(ctx: &Ctx, pool: &RawPool, per_commit: usize, positions: &Arc<AtomicI64>) -> anyhow::Result<Rate> {
    let tasks = pool.tasks(ctx.writers());
    let commits = ctx.args.events.div_ceil(per_commit as u64);

    // Not timed: open every connection and prepare the statement.
    let mut warm = JoinSet::new();
    for w in 0..tasks {
        let pool = pool.clone();
        let mut rows = RawRows::new(format!("benchwarm-raw{per_commit}-{w}"), positions.clone());
        warm.spawn(async move { pool.insert(&rows.rows(per_commit)).await.map_err(anyhow::Error::from) });
    }
    join_all(warm).await.context("warm-up")?;

    let start = Instant::now();
    let deadline = start + MEASURE_LIMIT;
    let mut set = JoinSet::new();
    for w in 0..tasks {
        let pool = pool.clone();
        let n = share(commits, tasks, w);
        let mut rows = RawRows::new(format!("bench-raw{per_commit}-{w}"), positions.clone());
        set.spawn(async move {
            let mut inserted = 0u64;
            for _ in 0..n {
                if Instant::now() >= deadline {
                    return Ok((inserted, true));
                }
                pool.insert(&rows.rows(per_commit)).await?;
                inserted += per_commit as u64;
            }
            Ok((inserted, false))
        });
    }
    let done = join_all(set).await?;
    let elapsed = start.elapsed();
    Ok(Rate {
        events: done.iter().map(|(n, _)| n).sum(),
        elapsed,
        capped: done.iter().any(|(_, c)| *c),
        by: if tasks == 1 {
            "1 connection".into()
        } else {
            format!("{tasks} connections")
        },
    })
}

// ---------------------------------------------------------------------------
// Phase 4: projection lag through relay, bus and runner

/// Counts every event in one row: as cheap as a projection gets, so the lag
/// measured is the pipeline's (relay, bus, runner, checkpoint transaction).
struct BenchCounter;

impl BenchCounter {
    async fn add(tx: &mut DbTx, n: usize) -> Result<(), ProjectionError> {
        tx.execute(
            "INSERT INTO bench_counter (id, n) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET n = bench_counter.n + excluded.n",
            &[Arg::from(n as i64)],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Projection for BenchCounter {
    fn name(&self) -> &'static str {
        BENCH_PROJECTION
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["bench_counter"]
    }

    async fn apply(&self, tx: &mut DbTx, _event: &RecordedEvent) -> Result<(), ProjectionError> {
        Self::add(tx, 1).await
    }

    async fn apply_batch(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        Self::add(tx, events.len()).await
    }
}

#[derive(Clone, Debug)]
struct Lag {
    target: f64,
    achieved: f64,
    events: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// Appended but not seen applied within [`LAG_DRAIN`] after the load.
    unresolved: usize,
    capped: bool,
    /// Did the pipeline warm up (relay leading, bus delivering) before the load?
    warm: bool,
    /// `None` when the counter moved by exactly the number of appended events.
    exactly_once: Option<String>,
}

/// JetStream streams this run created, deleted at the end whatever happens.
#[derive(Default)]
struct NatsStreams(Mutex<Vec<(String, NatsBus)>>);

impl NatsStreams {
    fn register(&self, name: String, bus: NatsBus) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((name, bus));
    }

    async fn delete_all(&self) -> anyhow::Result<()> {
        let streams = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        let mut errors = Vec::new();
        for (name, bus) in streams {
            match tokio::time::timeout(Duration::from_secs(10), bus.delete_stream()).await {
                Ok(Ok(())) => eprintln!("[bench] deleted JetStream stream {name}"),
                Ok(Err(e)) => errors.push(format!("deleting JetStream stream {name}: {e}")),
                Err(_) => errors.push(format!("deleting JetStream stream {name}: timed out")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(errors.join("; ")))
        }
    }
}

async fn nats_lag(ctx: &Ctx, run_id: &str, nats: &NatsStreams, target: f64) -> anyhow::Result<Lag> {
    let stream = format!("MEDLEDGER_BENCH_{}", run_id.to_uppercase());
    let bus = NatsBus::connect(NatsConfig {
        url: ctx.args.nats_url.clone(),
        stream: stream.clone(),
        subject_prefix: format!("medledger_bench_{run_id}"),
    })
    .await
    .with_context(|| format!("connecting to NATS at {}", ctx.args.nats_url))?;
    nats.register(stream, bus.clone());
    let reachable = async {
        while !bus.healthy().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), reachable).await.is_err() {
        bail!(
            "NATS at {} is not reachable (use --skip-nats to leave it out)",
            ctx.args.nats_url
        );
    }
    let outcome = measure_lag(ctx, bus, "lagnats", target).await;
    nats.delete_all().await?;
    outcome
}

/// Run relay and runner on `bus`, append 1-event requests at `target` events/s
/// and measure, per append, from its acknowledgement until the runner reports
/// the projection at that position.
async fn measure_lag<B: Bus + Clone>(ctx: &Ctx, bus: B, tag: &'static str, target: f64) -> anyhow::Result<Lag> {
    if !target.is_finite() || target <= 0.0 {
        bail!("no append rate to aim at ({target})");
    }
    // Start relay and projection at the head: the events of the earlier
    // phases are not part of this measurement.
    let head = ctx.store.head_position().await?;
    ctx.store.save_checkpoint(RELAY_CHECKPOINT, head).await?;
    ctx.db
        .execute(
            "INSERT INTO projection_checkpoints (name, version, position) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            &[
                Arg::from(BENCH_PROJECTION),
                Arg::from(BenchCounter.version()),
                Arg::from(head),
            ],
        )
        .await?;

    let projections: Vec<Arc<dyn Projection>> = vec![Arc::new(BenchCounter)];
    let runner = Runner::new(ctx.store.clone(), ctx.codec.clone(), Arc::new(bus.clone()), projections);
    runner.prepare().await?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let publisher: Arc<dyn Publisher> = Arc::new(bus);
    let relay = Relay {
        store: ctx.store.clone(),
        publisher,
        seal_every: SEAL_EVERY,
    };
    let mut tasks = vec![tokio::spawn(relay.run(shutdown_rx.clone()))];
    tasks.extend(runner.spawn(shutdown_rx));

    let outcome = drive_lag(ctx, &runner.status(), tag, target).await;

    let _ = shutdown.send(true);
    for mut task in tasks {
        if tokio::time::timeout(Duration::from_secs(10), &mut task).await.is_err() {
            task.abort();
            eprintln!("[bench] a relay/runner task did not stop within 10 s; aborted");
        }
    }
    outcome
}

async fn counter(db: &Db) -> anyhow::Result<i64> {
    Ok(
        match db
            .fetch_optional("SELECT n FROM bench_counter WHERE id = 1", &[])
            .await?
        {
            Some(row) => row.get::<i64>(0)?,
            None => 0,
        },
    )
}

/// Append single events until five in a row are projected quickly and
/// relayed: the relay leads, the runner has subscribed, caches are warm.
async fn warm_up(ctx: &Ctx, status: &Status, tag: &str) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gen = EventGen::new();
    let mut streams = OwnStreams::new(format!("benchwarm-{tag}"), 1);
    let mut fast = 0;
    while Instant::now() < deadline {
        let position = streams.append(ctx.store.as_ref(), gen.events(1)).await?.last_position;
        let t = Instant::now();
        let applied = status
            .wait_for(BENCH_PROJECTION, position, Duration::from_secs(5))
            .await;
        let took = t.elapsed();
        let mut relayed = false;
        for _ in 0..200 {
            if ctx.store.checkpoint(RELAY_CHECKPOINT).await? >= position {
                relayed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if applied && relayed && took < Duration::from_millis(250) {
            fast += 1;
            if fast >= 5 {
                return Ok(true);
            }
        } else {
            fast = 0;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(false)
}

async fn drive_lag(ctx: &Ctx, status: &Status, tag: &'static str, target: f64) -> anyhow::Result<Lag> {
    let warm = warm_up(ctx, status, tag).await?;
    let counter_before = counter(&ctx.db).await?;
    let head_before = ctx.store.head_position().await?;

    let total = ctx
        .args
        .events
        .min((target * LAG_LOAD.as_secs_f64()).ceil() as u64)
        .max(1);
    let writers = ctx.writers().min(total as usize);

    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let watcher = {
        let status = status.clone();
        tokio::task::spawn_blocking(move || watch_positions(status, seen_rx))
    };

    let start = Instant::now();
    let deadline = start + MEASURE_LIMIT;
    let mut set = JoinSet::new();
    for w in 0..writers {
        let store = ctx.store.clone();
        let seen = seen_tx.clone();
        set.spawn(async move {
            let mut gen = EventGen::new();
            let mut streams = OwnStreams::new(format!("bench-{tag}-{w}"), STREAMS_PER_WRITER);
            let mut appended = 0u64;
            let mut last = start;
            // Open loop: event k is due at start + k / target, whenever the
            // previous append of this task returned.
            let mut k = w as u64;
            while k < total {
                let due = start + Duration::from_secs_f64(k as f64 / target);
                if due >= deadline || Instant::now() >= deadline {
                    return Ok((appended, last, true));
                }
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                let position = streams.append(store.as_ref(), gen.events(1)).await?.last_position;
                last = Instant::now();
                let _ = seen.send((position, last));
                appended += 1;
                k += writers as u64;
            }
            Ok((appended, last, false))
        });
    }
    drop(seen_tx);
    let appended = join_all(set).await;
    // The watcher ends once every sender is gone and the rest is applied.
    let watched = watcher.await.context("lag watcher failed")?;
    let done = appended?;

    let events: u64 = done.iter().map(|(n, _, _)| n).sum();
    let last = done.iter().map(|(_, l, _)| *l).max().unwrap_or(start);
    let achieved = events as f64 / last.duration_since(start).as_secs_f64().max(1e-9);

    let head_after = ctx.store.head_position().await?;
    let caught_up = status.wait_for(BENCH_PROJECTION, head_after, LAG_DRAIN).await;
    let moved = counter(&ctx.db).await? - counter_before;
    let expected = (head_after - head_before) as i64;
    let exactly_once = if !caught_up {
        Some(format!("not caught up after {} s", LAG_DRAIN.as_secs()))
    } else if moved != expected {
        Some(format!("counted {moved} of {expected}"))
    } else {
        None
    };

    let h = &watched.histogram;
    let at = |q: f64| Duration::from_micros(if h.is_empty() { 0 } else { h.value_at_quantile(q) });
    Ok(Lag {
        target,
        achieved,
        events,
        p50: at(0.50),
        p99: at(0.99),
        max: Duration::from_micros(if h.is_empty() { 0 } else { h.max() }),
        unresolved: watched.unresolved,
        capped: done.iter().any(|(_, _, c)| *c),
        warm,
        exactly_once,
    })
}

struct Watched {
    /// Lags in microseconds.
    histogram: Histogram<u64>,
    unresolved: usize,
}

/// On its own thread: record, for every `(position, acknowledged at)`, the
/// time until the runner's status reaches that position. Polls every
/// [`WATCH_EVERY`] (cheap: an in-memory read), so lags are late by at most that.
fn watch_positions(status: Status, mut seen: mpsc::UnboundedReceiver<(u64, Instant)>) -> Watched {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
    let mut pending: BinaryHeap<Reverse<(u64, Instant)>> = BinaryHeap::new();
    let mut closed_at: Option<Instant> = None;
    loop {
        loop {
            match seen.try_recv() {
                Ok(p) => pending.push(Reverse(p)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        let applied = status.position(BENCH_PROJECTION);
        let now = Instant::now();
        while let Some(Reverse((position, acked))) = pending.peek() {
            if *position > applied {
                break;
            }
            let lag = now.saturating_duration_since(*acked).as_micros() as u64;
            histogram.saturating_record(lag.max(1));
            pending.pop();
        }
        if let Some(closed) = closed_at {
            if pending.is_empty() || closed.elapsed() >= LAG_DRAIN {
                break;
            }
        }
        std::thread::sleep(WATCH_EVERY);
    }
    Watched {
        histogram,
        unresolved: pending.len(),
    }
}

// ---------------------------------------------------------------------------
// Phase 5: replay

#[derive(Clone, Debug)]
struct Replay {
    fill: Rate,
    /// Events in the log when the rebuild started (all phases').
    log: u64,
    /// Events the rebuild read (all of the log unless capped).
    read: u64,
    elapsed: Duration,
    capped: bool,
    /// Rows in `rm_audit_log` afterwards.
    rows: i64,
}

async fn replay(ctx: &Ctx) -> anyhow::Result<Replay> {
    let fill = fill_log(ctx).await.context("filling the log")?;
    progress(ctx.backend.label(), "replay: rebuilding audit_log");

    let runner = Runner::new(
        ctx.store.clone(),
        ctx.codec.clone(),
        Arc::new(InProcessBus::new()),
        read_models::all(),
    );
    runner.prepare().await?;
    let log = ctx.store.head_position().await?;
    let start = Instant::now();
    let rebuilt = tokio::time::timeout(MEASURE_LIMIT, runner.rebuild(read_models::audit_log::NAME)).await;
    let elapsed = start.elapsed();
    let (read, capped) = match rebuilt {
        Ok(read) => (read?, false),
        // Stopped: the checkpoint says how far it got (it moves with each committed batch).
        Err(_) => {
            let row = ctx
                .db
                .fetch_optional(
                    "SELECT position FROM projection_checkpoints WHERE name = $1",
                    &[Arg::from(read_models::audit_log::NAME)],
                )
                .await?;
            let position = match row {
                Some(r) => r.get::<i64>(0)? as u64,
                None => 0,
            };
            (position, true)
        }
    };
    let rows = ctx
        .db
        .fetch_optional("SELECT COUNT(*) FROM rm_audit_log", &[])
        .await?
        .map(|r| r.get::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    Ok(Replay {
        fill,
        log,
        read,
        elapsed,
        capped,
        rows,
    })
}

/// Append `--replay-events` in requests of 1000 events over 10 new streams each.
async fn fill_log(ctx: &Ctx) -> anyhow::Result<Rate> {
    let per_request = REPLAY_STREAMS_PER_REQUEST * BATCH;
    let requests = ctx.args.replay_events.div_ceil(per_request as u64);
    let tasks = FILL_TASKS.min(ctx.writers()).max(1);
    let start = Instant::now();
    let deadline = start + FILL_LIMIT;
    let mut set = JoinSet::new();
    for w in 0..tasks {
        let store = ctx.store.clone();
        let n = share(requests, tasks, w);
        set.spawn(async move {
            let mut gen = EventGen::new();
            let mut appended = 0u64;
            for i in 0..n {
                if Instant::now() >= deadline {
                    return Ok((appended, true));
                }
                let mut request = AppendRequest::default();
                for s in 0..REPLAY_STREAMS_PER_REQUEST {
                    request = request.and_stream(
                        format!("bench-replay-{w}-{i}-{s}"),
                        ExpectedVersion::NoStream,
                        gen.events(BATCH),
                    );
                }
                store.append(request).await.context("appending a replay batch")?;
                appended += per_request as u64;
            }
            Ok::<_, anyhow::Error>((appended, false))
        });
    }
    let done = join_all(set).await?;
    Ok(Rate {
        events: done.iter().map(|(n, _)| n).sum(),
        elapsed: start.elapsed(),
        capped: done.iter().any(|(_, c)| *c),
        by: format!("{tasks} writers"),
    })
}

// ---------------------------------------------------------------------------
// Output

struct Report {
    backend: Backend,
    details: Vec<String>,
    store_one: Option<Rate>,
    store_batch: Option<Rate>,
    raw_one: Option<Rate>,
    raw_batch: Option<Rate>,
    lag: Vec<(&'static str, Result<Lag, String>)>,
    replay: Option<Replay>,
    failures: Vec<String>,
}

impl Report {
    fn new(backend: Backend) -> Self {
        Report {
            backend,
            details: vec![],
            store_one: None,
            store_batch: None,
            raw_one: None,
            raw_batch: None,
            lag: vec![],
            replay: None,
            failures: vec![],
        }
    }

    fn add_lag(&mut self, bus: &'static str, outcome: anyhow::Result<Lag>) {
        let outcome = outcome.map_err(|e| format!("{e:#}"));
        if let Err(e) = &outcome {
            self.failures.push(format!("projection lag ({bus}): {e}"));
        }
        self.lag.push((bus, outcome));
    }

    fn print(&self, writers: u32) {
        let title = format!("== {} ", self.backend.label());
        println!();
        println!("{title}{}", "=".repeat(78usize.saturating_sub(title.chars().count())));
        for d in &self.details {
            println!("{d}");
        }
        let mut capped = false;

        let mut rows = Vec::new();
        let mut throughput = |label: &str, rate: &Option<Rate>, raw: &Option<Rate>| {
            if let Some(r) = rate {
                capped |= r.capped;
                let ratio = match raw {
                    Some(raw) if raw.per_sec() > 0.0 => {
                        format!("{:.2}", r.per_sec() / raw.per_sec())
                    }
                    _ => String::new(),
                };
                rows.push(vec![
                    format!("{label}, {}{}", r.by, if r.capped { " *" } else { "" }),
                    thousands(r.events),
                    format!("{:.2}", r.elapsed.as_secs_f64()),
                    thousands(r.per_sec().round() as u64),
                    ratio,
                ]);
            }
        };
        throughput("store, 1 event/request", &self.store_one, &self.raw_one);
        throughput("store, 100 events/request", &self.store_batch, &self.raw_batch);
        throughput("raw INSERT, 1 row/commit", &self.raw_one, &None);
        throughput("raw INSERT, 100 rows/commit", &self.raw_batch, &None);
        if !rows.is_empty() {
            println!();
            println!("Append throughput (store: expected-version appends to own streams; raw: bench_raw, same columns and keys as events)");
            table(&["", "events", "seconds", "events/s", "store/raw"], &rows);
        }

        if !self.lag.is_empty() {
            println!();
            println!(
                "Projection lag: append acknowledged → bench_counter applied (1 event/request, {} paced writers, target = ½ of the 1-event peak)",
                writers
            );
            let mut rows = Vec::new();
            let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
            for (bus, outcome) in &self.lag {
                match outcome {
                    Ok(l) => {
                        capped |= l.capped;
                        let mut check = match &l.exactly_once {
                            None => "ok".to_string(),
                            Some(problem) => problem.clone(),
                        };
                        if l.unresolved > 0 {
                            check.push_str(&format!(", {} never seen applied", l.unresolved));
                        }
                        if !l.warm {
                            check.push_str(", did not warm up");
                        }
                        rows.push(vec![
                            format!("{bus}{}", if l.capped { " *" } else { "" }),
                            thousands(l.target.round() as u64),
                            thousands(l.achieved.round() as u64),
                            thousands(l.events),
                            ms(l.p50),
                            ms(l.p99),
                            ms(l.max),
                            check,
                        ]);
                    }
                    Err(e) => rows.push(vec![bus.to_string(), format!("FAILED: {e}")]),
                }
            }
            table(
                &[
                    "bus",
                    "target ev/s",
                    "achieved ev/s",
                    "events",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "exactly-once",
                ],
                &rows,
            );
            println!(
                "  (lag is observed by polling the runner's status every {} µs)",
                WATCH_EVERY.as_micros()
            );
        }

        if let Some(r) = &self.replay {
            capped |= r.capped || r.fill.capped;
            println!();
            println!("Replay: in-place rebuild of audit_log from the whole log");
            table(
                &["", "events", "seconds", "events/s"],
                &[
                    vec![
                        format!(
                            "fill, 1000 events/request, {}{}",
                            r.fill.by,
                            if r.fill.capped { " *" } else { "" }
                        ),
                        thousands(r.fill.events),
                        format!("{:.2}", r.fill.elapsed.as_secs_f64()),
                        thousands(r.fill.per_sec().round() as u64),
                    ],
                    vec![
                        format!("rebuild audit_log{}", if r.capped { " *" } else { "" }),
                        thousands(r.read),
                        format!("{:.2}", r.elapsed.as_secs_f64()),
                        thousands((r.read as f64 / r.elapsed.as_secs_f64().max(1e-9)).round() as u64),
                    ],
                ],
            );
            println!(
                "  (log held {} events, all phases; rm_audit_log has {} rows afterwards)",
                thousands(r.log),
                thousands(r.rows.max(0) as u64)
            );
        }

        if capped {
            println!(
                "* stopped at the time limit ({} s per measurement, {} s for the fill); rates are over what was done",
                MEASURE_LIMIT.as_secs(),
                FILL_LIMIT.as_secs()
            );
        }
        for f in &self.failures {
            println!("FAILED: {f}");
        }
    }
}

/// Print rows under headers: first column left-aligned, the others right-aligned.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        if row.len() < columns {
            continue; // a failure line spans the table
        }
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            if i == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        println!("{}", out.trim_end());
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        if row.len() < columns {
            println!("  {}", row.join("  "));
        } else {
            line(row);
        }
    }
}

fn thousands(n: u64) -> String {
    let mut groups = vec![];
    let mut rest = n;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let mut out = groups.pop().unwrap_or(0).to_string();
    while let Some(g) = groups.pop() {
        out.push_str(&format!(",{g:03}"));
    }
    out
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown".into());
    format!("{cpus} CPUs, {memory} RAM")
}

/// The same server URL with another database name (query parameters kept).
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| s.starts_with("postgres"))
        .ok_or_else(|| anyhow!("--database-url must be postgres://…, got '{}'", redact(url)))?;
    let (location, query) = match rest.split_once('?') {
        Some((l, q)) => (l, Some(q)),
        None => (rest, None),
    };
    let authority = location.split_once('/').map_or(location, |(a, _)| a);
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// The URL without its password, for printing.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_swapped_and_parameters_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "b").unwrap(),
            "postgresql://u:p@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5432", "b").unwrap(), "postgres://h:5432/b");
        assert!(with_database("mysql://h/db", "b").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?x=1"), "postgres://h/db?x=1");
    }

    #[test]
    fn shares_add_up() {
        for (total, tasks) in [(100, 16), (7, 3), (1, 16), (16, 16)] {
            let sum: u64 = (0..tasks).map(|w| share(total, tasks, w)).sum();
            assert_eq!(sum, total);
        }
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn generated_events_fit_the_store_and_the_audit_log() {
        let events = EventGen::new().events(3);
        assert_eq!(events.len(), 3);
        for e in &events {
            let meta: medledger_commands::codec::Metadata =
                serde_json::from_value(e.metadata.clone()).expect("metadata the audit log can read");
            assert!(meta.actor.is_some());
            assert!(e.payload.to_string().len() > 200);
        }
        medledger_commands::store::validate_stream_id("bench-one-3-17").unwrap();
        medledger_commands::store::validate_stream_id("benchwarm-lagmem-0").unwrap();
    }
}
