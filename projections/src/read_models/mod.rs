//! Read models, one module each; each owns its `rm_*` tables.

pub mod accounts;
pub mod audit_log;
pub mod imaging_settings;
pub mod instances;
pub mod organization;
pub mod reports;
pub mod sessions;
pub mod sharing;
pub mod storage;
pub mod worklist;

use std::sync::Arc;

use medledger_commands::db::DbRow;
use medledger_commands::store::RecordedEvent;
use uuid::Uuid;

use crate::runner::Projection;

/// Every projection of the platform.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(audit_log::AuditLog),
        Arc::new(accounts::Accounts),
        Arc::new(organization::Organization),
        Arc::new(sessions::Sessions),
        Arc::new(worklist::Worklist),
        Arc::new(instances::Instances),
        Arc::new(storage::Storage),
        Arc::new(sharing::Sharing),
        Arc::new(imaging_settings::ImagingSettings),
        Arc::new(reports::Reports),
    ]
}

/// Uuids are stored as text on both backends.
fn uuid_at(row: &DbRow, index: usize) -> Result<Uuid, sqlx::Error> {
    let s: String = row.get(index)?;
    s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn opt_uuid_at(row: &DbRow, index: usize) -> Result<Option<Uuid>, sqlx::Error> {
    let s: Option<String> = row.get(index)?;
    s.map(|s| s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// A JSON document stored as text (e.g. a list of role ids).
fn json_at<T: serde::de::DeserializeOwned>(row: &DbRow, index: usize) -> Result<T, sqlx::Error> {
    let s: String = row.get(index)?;
    serde_json::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A batch in log order, split for bulk writing: runs of consecutive events
/// that a projection writes together, and every other event on its own.
/// Applying the runs in order gives the same rows as applying one event at a
/// time, as long as a run's events commute with each other (counters and
/// inserts do; a deletion or an erasure ends a run).
pub(crate) enum Run<'a> {
    Bulk(&'a [RecordedEvent]),
    One(&'a RecordedEvent),
}

pub(crate) fn runs<'a>(events: &'a [RecordedEvent], bulk: impl Fn(&RecordedEvent) -> bool) -> Vec<Run<'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, e) in events.iter().enumerate() {
        if !bulk(e) {
            if start < i {
                out.push(Run::Bulk(&events[start..i]));
            }
            out.push(Run::One(e));
            start = i + 1;
        }
    }
    if start < events.len() {
        out.push(Run::Bulk(&events[start..]));
    }
    out
}
