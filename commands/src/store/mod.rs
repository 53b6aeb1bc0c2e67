//! The event store: the one source of truth.
//!
//! Two implementations pass one conformance suite: [`sqlite::SqliteEventStore`]
//! (the embedded default, one file in WAL mode) and
//! [`postgres::PgEventStore`] (production). Both append through a
//! group-commit writer ([`writer`]): concurrent append requests are planned
//! together ([`plan`]) and committed in one transaction, each request keeping
//! its own all-or-nothing outcome.
//!
//! Global positions are dense (1, 2, 3, …) and assigned in commit order:
//! SQLite has one writer; PostgreSQL appenders serialize on a single counter
//! row that is locked first and released at commit, so a reader can never see
//! position *n + 1* before *n* has committed (the sequence-gap trap).

pub mod hashing;
pub mod plan;
pub mod postgres;
pub mod sqlite;
pub mod writer;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// An event about to be appended.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    pub metadata: Value,
    /// When it happened (from the injected clock), truncated to microseconds.
    pub recorded_at: DateTime<Utc>,
}

impl NewEvent {
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u32,
        payload: Value,
        metadata: Value,
        recorded_at: DateTime<Utc>,
    ) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version,
            payload,
            metadata,
            recorded_at: recorded_at.trunc_subsecs(6),
        }
    }
}

/// An event as stored, with its place in the stream and in the whole log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub global_position: u64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    /// Hex SHA-256 over the event's content and its predecessor's hash.
    pub hash: String,
}

impl RecordedEvent {
    /// The stream's category: the part of the stream id before the first `-`.
    pub fn category(&self) -> &str {
        self.stream_id
            .split_once('-')
            .map(|(c, _)| c)
            .unwrap_or(&self.stream_id)
    }
}

/// What the writer expects a stream's version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(u64),
}

impl ExpectedVersion {
    /// The expectation matching a stream loaded at `version` (0 = empty).
    pub fn from_loaded(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StreamAppend {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// A uniqueness claim checked and written in the same transaction as the append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    /// `key` in `scope` must be free or already owned by `owner`.
    Claim { scope: String, key: String, owner: String },
    /// Free `key` in `scope`.
    Release { scope: String, key: String },
}

/// One atomic append: several streams and guards commit together or not at all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub guards: Vec<Guard>,
}

impl AppendRequest {
    pub fn stream(stream_id: impl Into<String>, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        AppendRequest {
            streams: vec![StreamAppend {
                stream_id: stream_id.into(),
                expected,
                events,
            }],
            guards: vec![],
        }
    }

    pub fn and_stream(
        mut self,
        stream_id: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        self.streams.push(StreamAppend {
            stream_id: stream_id.into(),
            expected,
            events,
        });
        self
    }

    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guards.push(guard);
        self
    }

    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppendResult {
    pub first_position: u64,
    pub last_position: u64,
    /// Each stream's version after the append.
    pub stream_versions: Vec<(String, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream_id}: expected version {expected:?}, found {actual}")]
    WrongExpectedVersion {
        stream_id: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("{scope} '{key}' is already taken")]
    GuardTaken { scope: String, key: String },
    #[error("event {0} was appended before with different companions")]
    DuplicateEventMismatch(Uuid),
    #[error("an append request must hold at least one event and valid stream ids")]
    InvalidRequest(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::WrongExpectedVersion { .. })
    }
}

/// A global seal: the running hash over all event hashes up to `position`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    pub position: u64,
    pub running_hash: String,
    pub sealed_at: DateTime<Utc>,
}

/// A stored event exactly as its columns hold it (for verification).
#[derive(Clone, Debug)]
pub struct RawEvent {
    pub global_position: u64,
    pub event_id: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: String,
    pub metadata: String,
    pub recorded_at: DateTime<Utc>,
    pub hash: String,
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Append atomically. Idempotent by event id: re-appending the same events
    /// returns the first result and writes nothing.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError>;

    /// A stream's events with version > `after_version`, in version order.
    async fn read_stream(&self, stream_id: &str, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// A stream's first `limit` events, in version order (what its opening event says,
    /// without reading a long stream whole).
    async fn read_stream_head(&self, stream_id: &str, limit: u32) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events with position > `after`, in global order.
    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The same, as stored, for verification.
    async fn read_all_raw(&self, after: u64, limit: u32) -> Result<Vec<RawEvent>, StoreError>;

    /// The last committed global position (0 when empty).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// Who owns `key` in `scope`, if anyone.
    async fn guard_owner(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError>;

    async fn seals(&self) -> Result<Vec<Seal>, StoreError>;
    async fn write_seal(&self, seal: &Seal) -> Result<(), StoreError>;

    async fn checkpoint(&self, name: &str) -> Result<u64, StoreError>;
    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError>;

    /// Wakes when this process appended something (other processes are polled).
    fn appended(&self) -> std::sync::Arc<tokio::sync::Notify>;

    /// The database the log lives in, for the side tables written durably beside
    /// it: subject keys, idempotency records, the notification outbox.
    fn db(&self) -> crate::db::Db;

    /// The database read models and their checkpoints live in. On PostgreSQL it is
    /// the log's; on SQLite a file of its own with its own writer, whose readers
    /// see the log's tables as well.
    fn read_models(&self) -> crate::db::Db;
}

/// A stream id is `<category>-<id>`; categories are lower-case words.
pub fn validate_stream_id(id: &str) -> Result<(), StoreError> {
    let ok = match id.split_once('-') {
        Some((cat, rest)) => {
            !cat.is_empty()
                && cat.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !rest.is_empty()
                && id.len() <= 200
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidRequest(format!("bad stream id '{id}'")))
    }
}
