//! Projections: rebuilds equal live read models, version bumps rebuild,
//! a lossy bus is repaired from the store, projections that follow together
//! fail alone, several nodes share the work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use medledger_api::platform::Platform;
use medledger_commands::args;
use medledger_commands::codec::Metadata;
use medledger_commands::db::{Db, DbTx};
use medledger_commands::identity;
use medledger_commands::relay::{PublishError, Publisher, Relay};
use medledger_commands::store::RecordedEvent;
use medledger_domain::identity::ClientKind;
use medledger_projections::bus::in_process::InProcessBus;
use medledger_projections::bus::{Bus, BusError, Delivery};
use medledger_projections::{read_models, Projection, ProjectionError, Runner};
use medledger_tests::{dump, system_clock, Backend, Deployment, TestServer, OPERATOR_PASSWORD};
use serde_json::json;

medledger_tests::on_both_backends!(
    a_rebuilt_read_model_equals_the_live_one,
    a_version_bump_rebuilds_the_read_model,
    a_lossy_bus_is_repaired_from_the_store,
    projections_following_together_fail_alone,
);

async fn login_traffic(platform: &Platform, n: usize) {
    for i in 0..n {
        let password = if i % 3 == 0 {
            "wrong-Pass-1".to_string()
        } else {
            OPERATOR_PASSWORD.to_string()
        };
        let _ = identity::login(
            &platform.app,
            "operator",
            password,
            ClientKind::Mobile,
            &Metadata::system(),
        )
        .await;
    }
}

async fn started(b: &Backend) -> Platform {
    let mut p = opened(b).await;
    p.start().await.unwrap();
    p
}

/// Open without running its relay and projections (the test runs its own).
async fn opened(b: &Backend) -> Platform {
    let config = b.config(&medledger_commands::crypto::MasterKey::generate());
    let p = Platform::open(&config, system_clock()).await.unwrap();
    identity::bootstrap_operator(&p.app, Some(OPERATOR_PASSWORD.into()))
        .await
        .unwrap();
    p
}

async fn wait_all(platform: &Platform) {
    let head = platform.app.store.head_position().await.unwrap();
    let status = platform.runner.status();
    for name in status.names() {
        assert!(
            status.wait_for(name, head, Duration::from_secs(20)).await,
            "{name} did not reach {head}"
        );
    }
}

async fn a_rebuilt_read_model_equals_the_live_one(b: &Backend) {
    let platform = started(b).await;
    login_traffic(&platform, 12).await;
    wait_all(&platform).await;
    let db = platform.app.store.read_models();
    let live_accounts = dump(&db, "rm_accounts", "account_id").await;
    let live_audit = dump(&db, "rm_audit_log", "position").await;
    assert_eq!(
        live_audit.len() as u64,
        platform.app.store.head_position().await.unwrap()
    );
    assert!(live_accounts[0].contains("operator"));

    let n = platform.runner.rebuild("accounts").await.unwrap();
    assert!(n > 0);
    platform.runner.rebuild("audit_log").await.unwrap();
    assert_eq!(dump(&db, "rm_accounts", "account_id").await, live_accounts);
    assert_eq!(dump(&db, "rm_audit_log", "position").await, live_audit);
    assert!(matches!(
        platform.runner.rebuild("no_such_projection").await,
        Err(ProjectionError::Unknown(_))
    ));
    platform.shutdown().await;
}

/// A database made before read models had a file of their own: the log's file
/// held them too. Opened now, its log keeps every event, migration 0011 drops the
/// old read-model tables beside it, and the read models are rebuilt in their own
/// file from position 0, equal to what a live platform built.
#[tokio::test]
async fn a_database_from_before_the_split_rebuilds_its_read_models_apart() {
    use medledger_commands::store::sqlite::{read_models_path, MIGRATOR};
    use sqlx::ConnectOptions;

    let master = medledger_commands::crypto::MasterKey::generate();
    let live_dir = tempfile::tempdir().unwrap();
    let mut live_config = medledger_api::config::Config::embedded(live_dir.path().to_path_buf());
    live_config.master_key = Some(master.to_base64());
    let mut live = Platform::open(&live_config, system_clock()).await.unwrap();
    identity::bootstrap_operator(&live.app, Some(OPERATOR_PASSWORD.into()))
        .await
        .unwrap();
    live.start().await.unwrap();
    login_traffic(&live, 9).await;
    wait_all(&live).await;
    let models = live.app.store.read_models();
    let accounts = dump(&models, "rm_accounts", "account_id").await;
    let audit = dump(&models, "rm_audit_log", "position").await;
    let head = live.app.store.head_position().await.unwrap();
    assert_eq!(audit.len() as u64, head);
    drop(models);
    live.shutdown().await;

    // The old layout: the log's migrations up to 0010, the live log's rows, and
    // read models (with their checkpoints) in the same file.
    let old_dir = tempfile::tempdir().unwrap();
    let old_log = old_dir.path().join("medledger.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&old_log)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let before_split = sqlx::migrate::Migrator {
        migrations: MIGRATOR
            .migrations
            .iter()
            .filter(|m| m.version <= 10)
            .cloned()
            .collect(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before_split.run(&mut conn).await.unwrap();
    let live_log = live_dir.path().join("medledger.db");
    let live_models = read_models_path(&live_log);
    sqlx::query("ATTACH DATABASE $1 AS live")
        .bind(live_log.display().to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("ATTACH DATABASE $1 AS live_models")
        .bind(live_models.display().to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    for (schema, table) in [
        ("live", "events"),
        ("live", "streams"),
        ("live", "guards"),
        ("live", "seals"),
        ("live", "subject_keys"),
        ("live_models", "rm_accounts"),
        ("live_models", "rm_audit_log"),
        ("live_models", "projection_checkpoints"),
    ] {
        sqlx::query(&format!("INSERT INTO main.{table} SELECT * FROM {schema}.{table}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    assert!(!read_models_path(&old_log).exists());

    let config = medledger_api::config::Config {
        data_dir: old_dir.path().to_path_buf(),
        ..live_config
    };
    let mut upgraded = Platform::open(&config, system_clock()).await.unwrap();
    let left: i64 = upgraded
        .app
        .store
        .db()
        .fetch_optional(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'rm_%' OR name = 'projection_checkpoints'",
            &[],
        )
        .await
        .unwrap()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(left, 0, "the log's file keeps no read model");
    assert_eq!(
        upgraded.app.store.head_position().await.unwrap(),
        head,
        "every event kept"
    );
    upgraded.start().await.unwrap();
    wait_all(&upgraded).await;
    let models = upgraded.app.store.read_models();
    assert_eq!(dump(&models, "rm_accounts", "account_id").await, accounts);
    assert_eq!(dump(&models, "rm_audit_log", "position").await, audit);
    drop(models);
    upgraded.shutdown().await;
}

/// Counts events per type; its version is chosen by the test.
struct Counter(u32);

#[async_trait]
impl Projection for Counter {
    fn name(&self) -> &'static str {
        "test_counter"
    }
    fn version(&self) -> u32 {
        self.0
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["LoginFailed", "LoginSucceeded"]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["test_counter"]
    }
    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        tx.execute(
            "INSERT INTO test_counter (event_type, n) VALUES ($1, $2) \
             ON CONFLICT (event_type) DO UPDATE SET n = test_counter.n + $2",
            &args![e.event_type.as_str(), 1i64 + (self.0 as i64 - 1) * 100],
        )
        .await?;
        Ok(())
    }
}

async fn counts(db: &Db) -> Vec<(String, i64)> {
    db.fetch_all("SELECT event_type, n FROM test_counter ORDER BY event_type", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String>(0).unwrap(), r.get::<i64>(1).unwrap()))
        .collect()
}

async fn a_version_bump_rebuilds_the_read_model(b: &Backend) {
    let platform = started(b).await;
    login_traffic(&platform, 6).await;
    let store = platform.app.store.clone();
    let db = store.read_models();
    db.execute(
        "CREATE TABLE IF NOT EXISTS test_counter (event_type TEXT PRIMARY KEY, n BIGINT NOT NULL)",
        &[],
    )
    .await
    .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let v1 = Runner::new(
        store.clone(),
        platform.app.codec.clone(),
        bus.clone(),
        vec![Arc::new(Counter(1))],
    );
    v1.prepare().await.unwrap();
    v1.catch_up_all().await.unwrap();
    let before = counts(&db).await;
    assert!(before.contains(&("LoginFailed".to_string(), 2)), "{before:?}");
    // Version 2 counts differently; preparing it must clear and replay.
    let v2 = Runner::new(
        store.clone(),
        platform.app.codec.clone(),
        bus,
        vec![Arc::new(Counter(2))],
    );
    v2.prepare().await.unwrap();
    v2.catch_up_all().await.unwrap();
    let after = counts(&db).await;
    assert!(after.contains(&("LoginFailed".to_string(), 202)), "{after:?}");
    platform.shutdown().await;
}

/// The real in-process bus, but every other publish is lost if `lossy`.
struct LossyBus {
    inner: InProcessBus,
    publishes: AtomicU64,
    lossy: bool,
}

#[async_trait]
impl Publisher for LossyBus {
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), PublishError> {
        if self.publishes.fetch_add(1, Ordering::SeqCst) % 2 == 1 && self.lossy {
            return Ok(());
        }
        self.inner.publish(events).await
    }
}

#[async_trait]
impl Bus for LossyBus {
    async fn subscribe(&self, consumer: &str) -> Result<futures::stream::BoxStream<'static, Delivery>, BusError> {
        self.inner.subscribe(consumer).await
    }
    async fn subscribe_ephemeral(&self) -> Result<futures::stream::BoxStream<'static, Delivery>, BusError> {
        self.inner.subscribe_ephemeral().await
    }
    async fn healthy(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "lossy"
    }
}

/// A runner of the test's own projections, fed by its own relay through a
/// bus that may lose every other publish.
struct Following {
    runner: Runner,
    bus: Arc<LossyBus>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Following {
    async fn start(platform: &Platform, projections: Vec<Arc<dyn Projection>>, together: bool, lossy: bool) -> Self {
        let store = platform.app.store.clone();
        let db = store.read_models();
        for table in [
            "test_counter (event_type TEXT PRIMARY KEY, n BIGINT NOT NULL)",
            "test_flaky (position BIGINT PRIMARY KEY)",
        ] {
            db.execute(&format!("CREATE TABLE IF NOT EXISTS {table}"), &[])
                .await
                .unwrap();
        }
        let bus = Arc::new(LossyBus {
            inner: InProcessBus::new(),
            publishes: AtomicU64::new(0),
            lossy,
        });
        let runner =
            Runner::new(store.clone(), platform.app.codec.clone(), bus.clone(), projections).together(together);
        runner.prepare().await.unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut tasks = runner.spawn(rx.clone());
        tasks.push(tokio::spawn(
            Relay {
                store,
                publisher: bus.clone(),
                seal_every: 1000,
            }
            .run(rx),
        ));
        // Give the followers their subscriptions before the test writes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Following {
            runner,
            bus,
            stop,
            tasks,
        }
    }

    async fn reached(&self, name: &str, position: u64) -> bool {
        self.runner
            .status()
            .wait_for(name, position, Duration::from_secs(20))
            .await
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

/// Login traffic in ten bursts (on a lossy bus, half the publishes are dropped).
async fn bursts_of_logins(platform: &Platform) -> u64 {
    for _ in 0..10 {
        login_traffic(platform, 3).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    platform.app.store.head_position().await.unwrap()
}

async fn login_events(platform: &Platform) -> i64 {
    platform
        .app
        .store
        .read_all(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type.starts_with("Login"))
        .count() as i64
}

async fn a_lossy_bus_is_repaired_from_the_store(b: &Backend) {
    let platform = opened(b).await;
    let db = platform.app.store.read_models();
    let following = Following::start(&platform, vec![Arc::new(Counter(1))], false, true).await;
    let head = bursts_of_logins(&platform).await;
    assert!(following.reached("test_counter", head).await);
    assert!(
        following.bus.publishes.load(Ordering::SeqCst) >= 2,
        "the relay published through the lossy bus"
    );
    let total: i64 = counts(&db).await.iter().map(|c| c.1).sum();
    assert_eq!(
        total,
        login_events(&platform).await,
        "every login event counted exactly once"
    );
    // Batches it does not read move its position without a transaction; the
    // checkpoint row (what other processes wait on) follows within a second or so.
    let started = std::time::Instant::now();
    loop {
        let row = db
            .fetch_optional(
                "SELECT position FROM projection_checkpoints WHERE name = $1",
                &args!["test_counter"],
            )
            .await
            .unwrap()
            .unwrap();
        if row.get::<i64>(0).unwrap() as u64 >= head {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "checkpoint row stayed behind {head}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    following.stop().await;
    platform.shutdown().await;
}

/// Records the position of every login event, after which it fails while
/// `broken` is set (with a real database error: on PostgreSQL that aborts
/// the whole transaction unless its savepoint is rolled back).
struct Flaky {
    broken: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl Projection for Flaky {
    fn name(&self) -> &'static str {
        "test_flaky"
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["LoginFailed", "LoginSucceeded"]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["test_flaky"]
    }
    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        tx.execute(
            "INSERT INTO test_flaky (position) VALUES ($1)",
            &args![e.global_position as i64],
        )
        .await?;
        if self.broken.load(Ordering::SeqCst) {
            tx.execute("INSERT INTO no_such_table (x) VALUES (1)", &[]).await?;
        }
        Ok(())
    }
}

/// Projections that follow the bus together apply each delivery in one
/// transaction; one that fails is rolled back alone (to its savepoint: nothing
/// it wrote remains) while the others go on, and it catches up from the store
/// once it works again. The bus loses nothing here, so the first failure
/// happens inside the shared transaction.
async fn projections_following_together_fail_alone(b: &Backend) {
    let platform = opened(b).await;
    let db = platform.app.store.read_models();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let following = Following::start(
        &platform,
        vec![Arc::new(Counter(1)), Arc::new(Flaky { broken: broken.clone() })],
        true,
        false,
    )
    .await;
    let head = bursts_of_logins(&platform).await;
    let logins = login_events(&platform).await;
    assert!(
        following.reached("test_counter", head).await,
        "the working projection went on"
    );
    let total: i64 = counts(&db).await.iter().map(|c| c.1).sum();
    assert_eq!(total, logins, "every login event counted exactly once");
    assert!(following.runner.status().position("test_flaky") < head);
    let partial = db.fetch_all("SELECT position FROM test_flaky", &[]).await.unwrap();
    assert!(partial.is_empty(), "a failed apply left {} rows", partial.len());

    broken.store(false, Ordering::SeqCst);
    assert!(
        following.reached("test_flaky", head).await,
        "the mended projection caught up"
    );
    let rows = db.fetch_all("SELECT position FROM test_flaky", &[]).await.unwrap();
    assert_eq!(rows.len() as i64, logins, "every login event recorded exactly once");
    following.stop().await;
    platform.shutdown().await;
}

/// Two `serve` processes on one PostgreSQL and one JetStream: sessions work
/// across nodes, revocation is immediate everywhere, and projections shared
/// through durable consumers apply every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_the_store_the_bus_and_the_projections() {
    medledger_tests::init_logs();
    let Some(d) = Deployment::postgres_nats().await else {
        return;
    };
    let config = d.config();
    let a = TestServer::start(&config, system_clock()).await;
    let b = TestServer::start(&config, system_clock()).await;
    let (token, position) = a.login("operator", OPERATOR_PASSWORD).await;
    let me = b
        .get(&format!("/api/v1/me?min_position={position}"), Some(&token))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.post(
            "/api/v1/auth/login",
            None,
            json!({"login": "operator", "password": "bad-Pass-1", "client": "pc"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    let head = a.head().await;
    for node in [&a, &b] {
        for name in ["accounts", "audit_log"] {
            assert!(node.running.status.wait_for(name, head, Duration::from_secs(20)).await);
        }
    }
    let view = read_models::accounts::get(
        &a.app().store.read_models(),
        me.body["account_id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        view.failed_logins, 6,
        "each failure counted once, whichever node saw it"
    );
    let rows = a
        .app()
        .store
        .read_models()
        .fetch_one_i64("SELECT COUNT(*) FROM rm_audit_log")
        .await;
    assert_eq!(rows as u64, head, "no event applied twice");

    let out = b.post("/api/v1/auth/logout", Some(&token), json!({})).await;
    assert_eq!(out.status, 200);
    a.get("/api/v1/me", Some(&token))
        .await
        .assert_problem(401, "session_expired");
    a.stop().await;
    b.stop().await;
    d.cleanup().await;
}

trait FetchOne {
    async fn fetch_one_i64(&self, sql: &str) -> i64;
}

impl FetchOne for Db {
    async fn fetch_one_i64(&self, sql: &str) -> i64 {
        self.fetch_optional(sql, &[])
            .await
            .unwrap()
            .unwrap()
            .get::<i64>(0)
            .unwrap()
    }
}

/// A disabled user's token stops working on a node that had it cached:
/// the invalidation travels as an event over JetStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_reaches_a_second_node_that_cached_the_session() {
    medledger_tests::init_logs();
    let Some(d) = Deployment::postgres_nats().await else {
        return;
    };
    let config = d.config();
    let a = TestServer::start(&config, system_clock()).await;
    let b = TestServer::start(&config, system_clock()).await;
    let o = medledger_tests::org::Org::build(&a).await;
    // B authenticates the user once and caches the session.
    assert_eq!(b.get("/api/v1/me", Some(&o.u1_token)).await.status, 200);
    assert_eq!(b.get("/api/v1/me", Some(&o.u1_token)).await.status, 200);
    assert!(!b.app().auth.is_empty(), "B holds the session in its cache");
    let disabled = a
        .post(&format!("/api/v1/users/{}/disable", o.u1), Some(&o.h1_admin), json!({}))
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    let started = std::time::Instant::now();
    let mut refused = None;
    while started.elapsed() < Duration::from_secs(5) {
        let r = b.get("/api/v1/me", Some(&o.u1_token)).await;
        if r.status == 401 {
            refused = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = refused.expect("node B refused the revoked session");
    eprintln!("revocation reached node B after {after:?}");
    assert!(after < Duration::from_secs(2), "took {after:?}");
    a.stop().await;
    b.stop().await;
    d.cleanup().await;
}
