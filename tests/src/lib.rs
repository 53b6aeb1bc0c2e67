//! Test harness shared by MedLedger's end-to-end and conformance suites.
//!
//! Backends are real: SQLite in a temporary folder, PostgreSQL in a fresh
//! database per test (dropped afterwards), NATS JetStream with a fresh stream
//! per test (deleted afterwards), an S3-compatible object store (moto) with a fresh
//! bucket per test ([`s3`]). Without `CI=true`, suites whose service is unreachable say so
//! and skip; with `CI=true` they fail.

use std::sync::Arc;

pub mod dicomweb;
pub mod org;
pub mod reports;
pub mod s3;

use medledger_api::config::Config;
use medledger_commands::clock::{Clock, FakeClock, SystemClock};
use medledger_commands::crypto::MasterKey;
use medledger_commands::store::postgres::PgEventStore;
use medledger_commands::store::sqlite::SqliteEventStore;
use medledger_commands::store::EventStore;
use uuid::Uuid;

/// Every row of `table` in `order`, each as one text (for comparing read models).
pub async fn dump(db: &medledger_commands::db::Db, table: &str, order: &str) -> Vec<String> {
    let sql = if db.is_postgres() {
        format!("SELECT CAST(row_to_json(t) AS TEXT) FROM (SELECT * FROM {table} ORDER BY {order}) t")
    } else {
        // SQLite: every column, as text, in order.
        let cols: Vec<String> = db
            .fetch_all(&format!("SELECT name FROM pragma_table_info('{table}')"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String>(0).unwrap())
            .collect();
        let concat = cols
            .iter()
            .map(|c| format!("COALESCE(CAST({c} AS TEXT), 'NULL')"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        format!("SELECT {concat} FROM {table} ORDER BY {order}")
    };
    db.fetch_all(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>(0).unwrap())
        .collect()
}

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

pub fn pg_admin_url() -> String {
    std::env::var("MEDLEDGER_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_string())
}

pub fn nats_url() -> String {
    std::env::var("MEDLEDGER_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS.to_string())
}

/// A service is missing: fail in CI, skip (loudly) elsewhere.
fn unavailable(what: &str, err: &dyn std::fmt::Display) {
    if in_ci() {
        panic!("{what} is unreachable but CI=true requires it: {err}");
    }
    eprintln!("SKIPPED: {what} is unreachable ({err}); set CI=true to make this a failure");
}

/// A fresh PostgreSQL database, dropped when this value is dropped.
pub struct PgDatabase {
    pub url: String,
    name: String,
    admin: String,
    /// Where the test's nodes keep their files (objects, keys): removed with it.
    files: tempfile::TempDir,
}

impl PgDatabase {
    pub async fn create() -> Option<PgDatabase> {
        let admin = pg_admin_url();
        let mut conn = match <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                unavailable("PostgreSQL", &e);
                return None;
            }
        };
        let name = format!("medledger_test_{}", Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(PgDatabase {
            url: format!("{base}/{name}"),
            name,
            admin,
            files: tempfile::tempdir().expect("a temporary folder"),
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs outside async: use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A unique JetStream stream and subject prefix, deleted on [`NatsStream::cleanup`].
pub struct NatsStream {
    pub url: String,
    pub stream: String,
    pub prefix: String,
}

impl NatsStream {
    pub async fn create() -> Option<NatsStream> {
        let url = nats_url();
        match tokio::time::timeout(std::time::Duration::from_secs(5), async_nats::connect(&url)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                unavailable("NATS", &e);
                return None;
            }
            Err(e) => {
                unavailable("NATS", &e);
                return None;
            }
        }
        let id = Uuid::new_v4().simple().to_string();
        Some(NatsStream {
            url,
            stream: format!("MEDLEDGER_TEST_{id}"),
            prefix: format!("mltest{id}"),
        })
    }

    pub async fn cleanup(&self) {
        if let Ok(c) = async_nats::connect(&self.url).await {
            let _ = async_nats::jetstream::new(c).delete_stream(&self.stream).await;
        }
    }

    pub fn apply(&self, config: &mut Config) {
        config.nats_url = Some(self.url.clone());
        config.nats_stream = self.stream.clone();
        config.nats_subject_prefix = self.prefix.clone();
    }
}

/// One configured backend a test runs against.
pub enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    pub async fn postgres() -> Option<Backend> {
        PgDatabase::create().await.map(Backend::Postgres)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Backend::Sqlite(dir) => Arc::new(SqliteEventStore::open(&dir.path().join("medledger.db")).await.unwrap()),
            Backend::Postgres(db) => Arc::new(PgEventStore::connect(&db.url, 24).await.unwrap()),
        }
    }

    /// Platform configuration for this backend (fixed master key so several
    /// nodes of one test share it).
    pub fn config(&self, master_key: &MasterKey) -> Config {
        let dir = match self {
            Backend::Sqlite(d) => d.path().to_path_buf(),
            Backend::Postgres(db) => db.files.path().join(format!("node-{}", Uuid::new_v4())),
        };
        let mut c = Config::embedded(dir);
        c.master_key = Some(master_key.to_base64());
        if let Backend::Postgres(db) = self {
            c.database_url = Some(db.url.clone());
            c.database_pool = 10;
        }
        c
    }
}

pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

pub fn fake_clock(rfc3339: &str) -> Arc<FakeClock> {
    Arc::new(FakeClock::at(
        chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc(),
    ))
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MEDLEDGER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// Generate one test per backend from `async fn name(&Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::init_logs();
                    let backend = $crate::Backend::sqlite();
                    super::$name(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::init_logs();
                    let Some(backend) = $crate::Backend::postgres().await else { return };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

/// A whole deployment: a store backend and, optionally, JetStream.
pub struct Deployment {
    pub backend: Backend,
    pub nats: Option<NatsStream>,
    pub master_key: MasterKey,
}

impl Deployment {
    /// SQLite and the in-process bus.
    pub fn embedded() -> Deployment {
        Deployment {
            backend: Backend::sqlite(),
            nats: None,
            master_key: MasterKey::generate(),
        }
    }

    /// PostgreSQL and NATS JetStream (None when skipped outside CI).
    pub async fn postgres_nats() -> Option<Deployment> {
        let backend = Backend::postgres().await?;
        let nats = NatsStream::create().await?;
        Some(Deployment {
            backend,
            nats: Some(nats),
            master_key: MasterKey::generate(),
        })
    }

    pub fn config(&self) -> Config {
        let mut c = self.backend.config(&self.master_key);
        if let Some(n) = &self.nats {
            n.apply(&mut c);
        }
        c
    }

    pub async fn cleanup(self) {
        if let Some(n) = &self.nats {
            n.cleanup().await;
        }
    }
}

/// Generate one test per deployment from `async fn name(&Deployment)`.
#[macro_export]
macro_rules! on_both_deployments {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::init_logs();
                    let d = $crate::Deployment::embedded();
                    super::$name(&d).await;
                    d.cleanup().await;
                }
            )*
        }
        mod postgres_nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::init_logs();
                    let Some(d) = $crate::Deployment::postgres_nats().await else { return };
                    super::$name(&d).await;
                    d.cleanup().await;
                }
            )*
        }
    };
}

pub const OPERATOR_PASSWORD: &str = "Platform-Pass-2026!";

/// A running `medledger serve` on a free loopback port.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub running: medledger_api::server::RunningServer,
}

impl TestServer {
    pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> TestServer {
        let options = medledger_api::server::HttpOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            public_url: "https://medledger.test".into(),
            bootstrap_password: Some(OPERATOR_PASSWORD.to_string()),
            stop_on_signal: false,
        };
        let running = medledger_api::server::start(config, options, clock)
            .await
            .expect("server starts");
        TestServer {
            base: format!("http://{}", running.addr),
            http: reqwest::Client::new(),
            running,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn app(&self) -> &medledger_commands::App {
        &self.running.app
    }

    pub async fn head(&self) -> u64 {
        self.app().store.head_position().await.unwrap()
    }

    /// POST JSON; returns status, headers and the parsed body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: serde_json::Value) -> Reply {
        let mut r = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        Reply::from(r.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        Reply::from(r.send().await.unwrap()).await
    }

    /// Log in and return (token, position).
    pub async fn login(&self, login: &str, password: &str) -> (String, u64) {
        let r = self
            .post(
                "/api/v1/auth/login",
                None,
                serde_json::json!({"login": login, "password": password, "client": "pc"}),
            )
            .await;
        assert_eq!(r.status, 200, "login failed: {}", r.body);
        (
            r.body["token"].as_str().unwrap().to_string(),
            r.body["position"].as_u64().unwrap(),
        )
    }

    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Reply { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert a problem+json answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["code"], code, "unexpected problem: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
    }
}
