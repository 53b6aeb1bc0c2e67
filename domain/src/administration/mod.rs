//! Administration: audit-log views and the erasure of a data subject.
//!
//! Looking at history is itself history: every audit-log query is recorded
//! (`AuditLogViewed`, who looked at what). Forgetting a subject
//! (`SubjectForgotten`) is the event that accompanies the destruction of the
//! subject's key; the log keeps the ciphertext, nobody can read it again.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AdministrationEvent {
    AuditLogViewed {
        viewer: Uuid,
        /// The filters the viewer used, as given.
        filters: serde_json::Value,
        returned: u32,
    },
    SubjectForgotten {
        subject_id: Uuid,
        reason: String,
    },
}

crate::event_catalog!(
    AdministrationEvent,
    "administration",
    [AuditLogViewed = 1, SubjectForgotten = 1]
);

/// Audit-log views (stream `auditview-<viewer>`): each view appends one event.
pub struct AuditTrail;

#[derive(Clone, Debug, PartialEq)]
pub struct ViewAuditLog {
    pub filters: serde_json::Value,
    pub returned: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit-log views need an authenticated viewer")]
    AnonymousViewer,
}

impl Decider for AuditTrail {
    type State = ();
    type Command = ViewAuditLog;
    type Event = AdministrationEvent;
    type Error = AuditError;

    fn decide(_: &(), c: ViewAuditLog, ctx: &Ctx) -> Result<Vec<AdministrationEvent>, AuditError> {
        let viewer = ctx.actor.ok_or(AuditError::AnonymousViewer)?;
        Ok(vec![AdministrationEvent::AuditLogViewed {
            viewer,
            filters: c.filters,
            returned: c.returned,
        }])
    }

    fn evolve(_: (), _: &AdministrationEvent) {}
}

/// A data subject's erasure (stream `subject-<id>`): it happens once.
pub struct SubjectErasure;

#[derive(Clone, Debug, PartialEq)]
pub struct ForgetSubject {
    pub subject_id: Uuid,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErasureError {
    #[error("the subject has already been forgotten")]
    AlreadyForgotten,
}

impl Decider for SubjectErasure {
    /// Whether the subject has been forgotten.
    type State = bool;
    type Command = ForgetSubject;
    type Event = AdministrationEvent;
    type Error = ErasureError;

    fn decide(forgotten: &bool, c: ForgetSubject, _: &Ctx) -> Result<Vec<AdministrationEvent>, ErasureError> {
        if *forgotten {
            return Err(ErasureError::AlreadyForgotten);
        }
        Ok(vec![AdministrationEvent::SubjectForgotten {
            subject_id: c.subject_id,
            reason: c.reason,
        }])
    }

    fn evolve(forgotten: bool, e: &AdministrationEvent) -> bool {
        forgotten || matches!(e, AdministrationEvent::SubjectForgotten { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    #[test]
    fn a_subject_is_forgotten_once() {
        let now = chrono::Utc::now();
        let forget = ForgetSubject {
            subject_id: Uuid::from_u128(3),
            reason: "patient request".into(),
        };
        let forgotten = AdministrationEvent::SubjectForgotten {
            subject_id: Uuid::from_u128(3),
            reason: "patient request".into(),
        };
        given::<SubjectErasure>(&[])
            .when(forget.clone(), &Ctx::at(now))
            .then(std::slice::from_ref(&forgotten));
        given::<SubjectErasure>(&[forgotten])
            .when(forget, &Ctx::at(now))
            .then_error(ErasureError::AlreadyForgotten);
    }

    #[test]
    fn audit_views_name_their_viewer() {
        let now = chrono::Utc::now();
        let view = ViewAuditLog {
            filters: serde_json::json!({"type": "LoginFailed"}),
            returned: 3,
        };
        given::<AuditTrail>(&[])
            .when(view.clone(), &Ctx::at(now))
            .then_error(AuditError::AnonymousViewer);
        given::<AuditTrail>(&[])
            .when(view, &Ctx::at(now).with_actor(Uuid::from_u128(1)))
            .then(&[AdministrationEvent::AuditLogViewed {
                viewer: Uuid::from_u128(1),
                filters: serde_json::json!({"type": "LoginFailed"}),
                returned: 3,
            }]);
    }
}
