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
