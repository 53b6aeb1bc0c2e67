//! The one configuration struct. Flags and `MEDLEDGER_*` environment
//! variables; with none, the embedded default (SQLite, in-process bus, blobs
//! and keys under `./medledger-data`, HTTP on 127.0.0.1:8080).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Where the embedded default keeps its SQLite file, blobs and keys.
    #[arg(long, env = "MEDLEDGER_DATA_DIR", default_value = "./medledger-data")]
    pub data_dir: PathBuf,

    /// `postgres://…` switches the store and read models to PostgreSQL.
    #[arg(long, env = "MEDLEDGER_DATABASE_URL")]
    pub database_url: Option<String>,

    /// `nats://…` switches the bus to NATS JetStream.
    #[arg(long, env = "MEDLEDGER_NATS_URL")]
    pub nats_url: Option<String>,

    /// JetStream stream name.
    #[arg(long, env = "MEDLEDGER_NATS_STREAM", default_value = "MEDLEDGER")]
    pub nats_stream: String,

    /// Subject prefix of published events.
    #[arg(long, env = "MEDLEDGER_NATS_SUBJECT_PREFIX", default_value = "medledger")]
    pub nats_subject_prefix: String,

    /// Base64 of 32 bytes. Default: generated once into `<data-dir>/keys/master.key`.
    #[arg(long, env = "MEDLEDGER_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// PostgreSQL pool size per process.
    #[arg(long, env = "MEDLEDGER_DATABASE_POOL", default_value_t = 24)]
    pub database_pool: u32,

    /// Where DICOM objects, logos and renders are kept: `s3://bucket/prefix` for an
    /// S3-compatible object store (endpoint, region and credentials from the standard `AWS_*`
    /// variables), a folder path or `file:///path`; default `<data-dir>/blobs`.
    #[arg(long, env = "MEDLEDGER_BLOB_STORE")]
    pub blob_store: Option<String>,

    /// Object store options (`aws_endpoint`, `aws_access_key_id`, …) that override the `AWS_*`
    /// environment; set by tests and embedders, not a flag.
    #[arg(skip)]
    pub blob_store_options: Vec<(String, String)>,

    /// Render each series' thumbnail in the background when it arrives (after a quiet period),
    /// so the first request is answered from the cache.
    #[arg(long, env = "MEDLEDGER_SERIES_THUMBNAILS", default_value_t = true, action = clap::ArgAction::Set)]
    pub series_thumbnails: bool,

    /// Milliseconds without a new instance in a series before its thumbnail is rendered.
    #[arg(long, env = "MEDLEDGER_SERIES_THUMBNAIL_QUIET_MS", default_value_t = 2000)]
    pub series_thumbnail_quiet_ms: u64,
}

#[derive(Args, Clone, Debug)]
pub struct ServeConfig {
    #[command(flatten)]
    pub platform: Config,

    #[arg(long, env = "MEDLEDGER_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Where the DICOM C-STORE/C-ECHO SCP listens.
    #[arg(long, env = "MEDLEDGER_DICOM_ADDR", default_value = "127.0.0.1:11112")]
    pub dicom_addr: SocketAddr,

    /// The SCP's own AE title.
    #[arg(long, env = "MEDLEDGER_DICOM_AE_TITLE", default_value = "MEDLEDGER")]
    pub dicom_ae_title: String,

    /// Modalities and PACS allowed to send: `CALLING_AE=HOSPITAL_ID`, repeated
    /// or comma-separated. Others are rejected at association.
    #[arg(
        long = "dicom-calling-ae",
        env = "MEDLEDGER_DICOM_CALLING_AES",
        value_delimiter = ','
    )]
    pub dicom_calling_aes: Vec<String>,

    /// The public base URL clients reach the platform at (QR codes point here).
    #[arg(long, env = "MEDLEDGER_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,

    /// Password of the first operator account (otherwise generated and printed once).
    #[arg(long, env = "MEDLEDGER_BOOTSTRAP_PASSWORD", hide_env_values = true)]
    pub bootstrap_password: Option<String>,

    /// `pretty` or `json` logs.
    #[arg(long, env = "MEDLEDGER_LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
}

impl Config {
    /// The embedded default rooted at `data_dir` (used by tests and tools).
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            database_url: None,
            nats_url: None,
            nats_stream: "MEDLEDGER".into(),
            nats_subject_prefix: "medledger".into(),
            master_key: None,
            database_pool: 24,
            blob_store: None,
            blob_store_options: vec![],
            series_thumbnails: true,
            series_thumbnail_quiet_ms: 2000,
        }
    }
}
