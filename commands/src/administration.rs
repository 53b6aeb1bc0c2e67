//! Administration use cases: recording audit-log views, forgetting subjects.

use medledger_domain::administration::{AuditTrail, ForgetSubject, SubjectErasure, ViewAuditLog};
use uuid::Uuid;

use crate::app::App;
use crate::authorization::{authorize, Action};
use crate::codec::Metadata;
use crate::error::Error;
use crate::identity::Principal;

/// Record that `principal` looked at the audit log (or a view of it, as
/// `action` says) with `filters`.
pub async fn record_audit_view(
    app: &App,
    principal: &Principal,
    action: Action,
    filters: serde_json::Value,
    returned: u32,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, action, &principal.tenant)?;
    let stream = format!("auditview-{}", principal.account_id);
    let r = app
        .record::<AuditTrail>(&stream, ViewAuditLog { filters, returned }, metadata)
        .await?;
    Ok(r.position())
}

/// Forget a data subject: record it, then destroy the subject's key. Safe to
/// run again if the key destruction was interrupted.
pub async fn forget_subject(app: &App, subject_id: Uuid, reason: &str, metadata: &Metadata) -> Result<u64, Error> {
    let stream = format!("subject-{subject_id}");
    let position = match app
        .execute::<SubjectErasure>(
            &stream,
            ForgetSubject {
                subject_id,
                reason: reason.to_string(),
            },
            metadata,
            vec![],
        )
        .await
    {
        Ok(r) => r.position(),
        Err(Error::Rejected {
            code: "subject_already_forgotten",
            ..
        }) => 0,
        Err(e) => return Err(e),
    };
    app.codec.keys().destroy(subject_id, app.clock.now()).await?;
    Ok(position)
}
