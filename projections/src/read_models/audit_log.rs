//! The audit log: every event, indexed by stream, type, actor, tenant and
//! time, for auditors. Payloads are not copied here; queries read them from
//! the log and open them, so erased personal data stays erased.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::codec::{metadata_of, EventCodec};
use medledger_commands::db::{Arg, Db, DbTx};
use medledger_commands::store::{RawEvent, RecordedEvent};
use serde::Serialize;

use crate::runner::{Projection, ProjectionError};

pub struct AuditLog;

pub const NAME: &str = "audit_log";

const COLUMNS: usize = 9;

#[async_trait]
impl Projection for AuditLog {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_audit_log"]
    }

    fn needs_payload(&self) -> bool {
        false
    }

    async fn apply(&self, tx: &mut DbTx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(event)).await
    }

    async fn apply_batch(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let mut args = Vec::with_capacity(events.len() * COLUMNS);
        for r in events.iter().map(Row::of) {
            args.extend([
                Arg::I64(r.position),
                Arg::from(r.event_id),
                Arg::from(r.stream_id),
                Arg::from(r.event_type),
                Arg::from(r.actor),
                Arg::from(r.alliance_id),
                Arg::from(r.hospital_id),
                Arg::from(r.client),
                Arg::from(r.recorded_at),
            ]);
        }
        tx.insert_rows(
            "INSERT INTO rm_audit_log (position, event_id, stream_id, event_type, actor, alliance_id, hospital_id, client, recorded_at)",
            COLUMNS,
            &args,
            "ON CONFLICT (position) DO NOTHING",
        )
        .await?;
        Ok(())
    }
}

/// One `rm_audit_log` row, taken from an event's envelope.
struct Row {
    position: i64,
    event_id: String,
    stream_id: String,
    event_type: String,
    actor: Option<String>,
    alliance_id: Option<String>,
    hospital_id: Option<String>,
    client: Option<String>,
    recorded_at: DateTime<Utc>,
}

impl Row {
    fn of(e: &RecordedEvent) -> Row {
        let meta = metadata_of(e);
        Row {
            position: e.global_position as i64,
            event_id: e.event_id.to_string(),
            stream_id: e.stream_id.clone(),
            event_type: e.event_type.clone(),
            actor: meta.as_ref().and_then(|m| m.actor).map(|u| u.to_string()),
            alliance_id: meta.as_ref().and_then(|m| m.tenant.alliance_id).map(|u| u.to_string()),
            hospital_id: meta.as_ref().and_then(|m| m.tenant.hospital_id).map(|u| u.to_string()),
            client: meta.as_ref().map(|m| m.client.as_str().to_string()),
            recorded_at: e.recorded_at,
        }
    }
}

/// Filters of an audit-log query. All are optional and combine with AND.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alliance: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hospital: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Return entries older than this position (the previous page's cursor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    pub limit: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub position: u64,
    pub event_id: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub hash: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_cursor: Option<u64>,
}

/// Newest first, cursor-paginated.
pub async fn query(db: &Db, codec: &EventCodec, q: &AuditQuery) -> Result<AuditPage, ProjectionError> {
    let mut sql = String::from(
        "SELECT e.global_position, e.event_id, e.stream_id, e.stream_version, e.event_type, e.schema_version, \
         e.payload, e.metadata, e.recorded_at, e.hash \
         FROM rm_audit_log a JOIN events e ON e.global_position = a.position WHERE 1 = 1",
    );
    let mut args: Vec<Arg> = Vec::new();
    let mut cond = |sql: &mut String, clause: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(s) = &q.stream {
        cond(&mut sql, " AND a.stream_id = ?", s.into());
    }
    if let Some(t) = &q.event_type {
        cond(&mut sql, " AND a.event_type = ?", t.into());
    }
    if let Some(a) = q.actor {
        cond(&mut sql, " AND a.actor = ?", a.into());
    }
    if let Some(a) = q.alliance {
        cond(&mut sql, " AND a.alliance_id = ?", a.into());
    }
    if let Some(h) = q.hospital {
        cond(&mut sql, " AND a.hospital_id = ?", h.into());
    }
    if let Some(f) = q.from {
        cond(&mut sql, " AND a.recorded_at >= ?", f.into());
    }
    if let Some(t) = q.to {
        cond(&mut sql, " AND a.recorded_at < ?", t.into());
    }
    if let Some(b) = q.before {
        cond(&mut sql, " AND a.position < ?", b.into());
    }
    let limit = q.limit.clamp(1, 500);
    cond(&mut sql, " ORDER BY a.position DESC LIMIT ?", (limit as i64 + 1).into());
    let rows = db.fetch_all(&sql, &args).await?;
    let mut raw = Vec::with_capacity(rows.len());
    for r in &rows {
        raw.push(RawEvent {
            global_position: r.get::<i64>(0)? as u64,
            event_id: if db.is_postgres() {
                r.get::<uuid::Uuid>(1)?.to_string()
            } else {
                r.get::<String>(1)?
            },
            stream_id: r.get(2)?,
            stream_version: r.get::<i64>(3)? as u64,
            event_type: r.get(4)?,
            schema_version: if db.is_postgres() {
                r.get::<i32>(5)? as u32
            } else {
                r.get::<i64>(5)? as u32
            },
            payload: r.get(6)?,
            metadata: r.get(7)?,
            recorded_at: r.time(8)?,
            hash: r.get(9)?,
        });
    }
    let more = raw.len() > limit as usize;
    raw.truncate(limit as usize);
    let events = raw.into_iter().map(RawEvent::parse).collect::<Result<Vec<_>, _>>()?;
    let opened = codec.open(events).await?;
    let next_cursor = if more {
        opened.last().map(|e| e.global_position)
    } else {
        None
    };
    Ok(AuditPage {
        items: opened
            .into_iter()
            .map(|e| AuditEntry {
                position: e.global_position,
                event_id: e.event_id.to_string(),
                stream_id: e.stream_id,
                stream_version: e.stream_version,
                event_type: e.event_type,
                schema_version: e.schema_version,
                recorded_at: e.recorded_at,
                payload: e.payload,
                metadata: e.metadata,
                hash: e.hash,
            })
            .collect(),
        next_cursor,
    })
}
