//! Read models, one module each; each owns its `rm_*` tables.

pub mod accounts;
pub mod audit_log;

use std::sync::Arc;

use crate::runner::Projection;

/// Every projection of the platform.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(audit_log::AuditLog), Arc::new(accounts::Accounts)]
}
