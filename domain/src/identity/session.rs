//! The session aggregate (stream `session-<id>`): a bearer session from its
//! start to its end. The token itself is never stored, only its SHA-256.
//!
//! A session carries a snapshot of the principal it authenticates (account,
//! role, tenant) so a request is authorized from the session's own stream.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{AccountRole, ClientKind, Tenant};
use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionEvent {
    SessionStarted {
        session_id: Uuid,
        account_id: Uuid,
        role: AccountRole,
        tenant: Tenant,
        client: ClientKind,
        token_sha256: String,
        expires_at: DateTime<Utc>,
    },
    SessionEnded {
        session_id: Uuid,
        reason: String,
    },
}

crate::event_catalog!(SessionEvent, "identity", [SessionStarted = 1, SessionEnded = 1]);

#[derive(Clone, Debug, PartialEq)]
pub enum SessionCommand {
    Start {
        session_id: Uuid,
        account_id: Uuid,
        role: AccountRole,
        tenant: Tenant,
        client: ClientKind,
        token_sha256: String,
        expires_at: DateTime<Utc>,
    },
    End {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session has already started")]
    AlreadyStarted,
    #[error("no such session")]
    NotStarted,
    #[error("the session has already ended")]
    AlreadyEnded,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum SessionState {
    #[default]
    NotStarted,
    Active(ActiveSession),
    Ended(ActiveSession),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActiveSession {
    pub session_id: Uuid,
    pub account_id: Uuid,
    pub role: AccountRole,
    pub tenant: Tenant,
    pub client: ClientKind,
    pub expires_at: DateTime<Utc>,
}

impl SessionState {
    /// The session if it authenticates requests at `now`.
    pub fn active_at(&self, now: DateTime<Utc>) -> Option<&ActiveSession> {
        match self {
            SessionState::Active(s) if now < s.expires_at => Some(s),
            _ => None,
        }
    }
}

pub struct Session;

impl Decider for Session {
    type State = SessionState;
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;

    fn decide(state: &SessionState, command: SessionCommand, _ctx: &Ctx) -> Result<Vec<SessionEvent>, SessionError> {
        match (state, command) {
            (
                SessionState::NotStarted,
                SessionCommand::Start {
                    session_id,
                    account_id,
                    role,
                    tenant,
                    client,
                    token_sha256,
                    expires_at,
                },
            ) => Ok(vec![SessionEvent::SessionStarted {
                session_id,
                account_id,
                role,
                tenant,
                client,
                token_sha256,
                expires_at,
            }]),
            (_, SessionCommand::Start { .. }) => Err(SessionError::AlreadyStarted),
            (SessionState::NotStarted, SessionCommand::End { .. }) => Err(SessionError::NotStarted),
            (SessionState::Ended(_), SessionCommand::End { .. }) => Err(SessionError::AlreadyEnded),
            (SessionState::Active(s), SessionCommand::End { reason }) => Ok(vec![SessionEvent::SessionEnded {
                session_id: s.session_id,
                reason,
            }]),
        }
    }

    fn evolve(state: SessionState, event: &SessionEvent) -> SessionState {
        match (state, event) {
            (
                _,
                SessionEvent::SessionStarted {
                    session_id,
                    account_id,
                    role,
                    tenant,
                    client,
                    expires_at,
                    ..
                },
            ) => SessionState::Active(ActiveSession {
                session_id: *session_id,
                account_id: *account_id,
                role: *role,
                tenant: *tenant,
                client: *client,
                expires_at: *expires_at,
            }),
            (SessionState::Active(s), SessionEvent::SessionEnded { .. }) => SessionState::Ended(s),
            (other, SessionEvent::SessionEnded { .. }) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap()
    }

    fn started() -> SessionEvent {
        SessionEvent::SessionStarted {
            session_id: Uuid::from_u128(7),
            account_id: Uuid::from_u128(1),
            role: AccountRole::PlatformOperator,
            tenant: Tenant::PLATFORM,
            client: ClientKind::Pc,
            token_sha256: "ab".into(),
            expires_at: t0() + Duration::hours(12),
        }
    }

    #[test]
    fn a_session_authenticates_until_it_expires() {
        let state = Session::fold(&[started()]);
        assert!(state.active_at(t0()).is_some());
        assert!(state.active_at(t0() + Duration::hours(12)).is_none());
    }

    #[test]
    fn an_ended_session_cannot_end_again_nor_authenticate() {
        let ended = SessionEvent::SessionEnded {
            session_id: Uuid::from_u128(7),
            reason: "logout".into(),
        };
        given::<Session>(&[started()])
            .when(
                SessionCommand::End {
                    reason: "logout".into(),
                },
                &Ctx::at(t0()),
            )
            .then(std::slice::from_ref(&ended));
        given::<Session>(&[started(), ended.clone()])
            .when(
                SessionCommand::End {
                    reason: "logout".into(),
                },
                &Ctx::at(t0()),
            )
            .then_error(SessionError::AlreadyEnded);
        assert!(Session::fold(&[started(), ended]).active_at(t0()).is_none());
    }
}
