//! The session aggregate (stream `session-<id>`): a bearer session from its
//! start to its end. The token itself is never stored, only its SHA-256.
//!
//! A session carries a snapshot of who it authenticates (account, level,
//! tenant) and the account's *session generation* at its start: freezing,
//! disabling or a password change bump the generation and void every older
//! session at once. Sessions end after [`ABSOLUTE_LIFETIME_HOURS`], or after
//! [`IDLE_MINUTES`] without activity; activity is recorded at most every
//! [`TOUCH_EVERY_MINUTES`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{AccountRole, ClientKind, Tenant};
use crate::decider::{Ctx, Decider};

pub const ABSOLUTE_LIFETIME_HOURS: i64 = 12;
pub const IDLE_MINUTES: i64 = 120;
pub const TOUCH_EVERY_MINUTES: i64 = 5;

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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<DateTime<Utc>>,
        #[serde(default)]
        generation: u32,
        /// How it was started: `password` or `qr`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
    },
    SessionTouched {
        session_id: Uuid,
        at: DateTime<Utc>,
    },
    SessionEnded {
        session_id: Uuid,
        reason: String,
    },
}

crate::event_catalog!(
    SessionEvent,
    "identity",
    [SessionStarted = 1, SessionTouched = 1, SessionEnded = 1]
);

#[derive(Clone, Debug, PartialEq)]
pub enum SessionCommand {
    Start {
        session_id: Uuid,
        account_id: Uuid,
        role: AccountRole,
        tenant: Tenant,
        client: ClientKind,
        token_sha256: String,
        generation: u32,
        method: String,
    },
    /// Record activity (idle expiry counts from the last one).
    Touch,
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
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_active: DateTime<Utc>,
    pub generation: u32,
}

impl ActiveSession {
    pub fn idle_deadline(&self) -> DateTime<Utc> {
        self.last_active + Duration::minutes(IDLE_MINUTES)
    }

    /// Is it time to record activity again?
    pub fn wants_touch(&self, now: DateTime<Utc>) -> bool {
        now - self.last_active >= Duration::minutes(TOUCH_EVERY_MINUTES)
    }
}

impl SessionState {
    /// The session if it authenticates requests at `now` (not ended, not
    /// past its absolute lifetime, not idle too long).
    pub fn active_at(&self, now: DateTime<Utc>) -> Option<&ActiveSession> {
        match self {
            SessionState::Active(s) if now < s.expires_at && now < s.idle_deadline() => Some(s),
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

    fn decide(state: &SessionState, command: SessionCommand, ctx: &Ctx) -> Result<Vec<SessionEvent>, SessionError> {
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
                    generation,
                    method,
                },
            ) => Ok(vec![SessionEvent::SessionStarted {
                session_id,
                account_id,
                role,
                tenant,
                client,
                token_sha256,
                expires_at: ctx.now + Duration::hours(ABSOLUTE_LIFETIME_HOURS),
                started_at: Some(ctx.now),
                generation,
                method: Some(method),
            }]),
            (_, SessionCommand::Start { .. }) => Err(SessionError::AlreadyStarted),
            (SessionState::NotStarted, _) => Err(SessionError::NotStarted),
            (SessionState::Ended(_), _) => Err(SessionError::AlreadyEnded),
            (SessionState::Active(s), SessionCommand::Touch) => Ok(vec![SessionEvent::SessionTouched {
                session_id: s.session_id,
                at: ctx.now,
            }]),
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
                    started_at,
                    generation,
                    ..
                },
            ) => {
                let started = started_at.unwrap_or(*expires_at - Duration::hours(ABSOLUTE_LIFETIME_HOURS));
                SessionState::Active(ActiveSession {
                    session_id: *session_id,
                    account_id: *account_id,
                    role: *role,
                    tenant: *tenant,
                    client: *client,
                    started_at: started,
                    expires_at: *expires_at,
                    last_active: started,
                    generation: *generation,
                })
            }
            (SessionState::Active(mut s), SessionEvent::SessionTouched { at, .. }) => {
                s.last_active = s.last_active.max(*at);
                SessionState::Active(s)
            }
            (SessionState::Active(s), SessionEvent::SessionEnded { .. }) => SessionState::Ended(s),
            (other, _) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;
    use chrono::TimeZone;

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
            started_at: Some(t0()),
            generation: 0,
            method: Some("password".into()),
        }
    }

    #[test]
    fn a_session_authenticates_until_it_expires_or_idles() {
        let state = Session::fold(&[started()]);
        assert!(state.active_at(t0()).is_some());
        assert!(state
            .active_at(t0() + Duration::minutes(IDLE_MINUTES) - Duration::seconds(1))
            .is_some());
        assert!(
            state.active_at(t0() + Duration::minutes(IDLE_MINUTES)).is_none(),
            "idle too long"
        );
        // Activity keeps it alive, but never past the absolute lifetime.
        let mut history = vec![started()];
        for h in 1..12 {
            history.push(SessionEvent::SessionTouched {
                session_id: Uuid::from_u128(7),
                at: t0() + Duration::hours(h),
            });
        }
        let busy = Session::fold(&history);
        assert!(busy
            .active_at(t0() + Duration::hours(11) + Duration::minutes(59))
            .is_some());
        assert!(busy.active_at(t0() + Duration::hours(12)).is_none());
    }

    #[test]
    fn an_ended_session_cannot_end_again_nor_authenticate() {
        let ended = SessionEvent::SessionEnded {
            session_id: Uuid::from_u128(7),
            reason: "logout".into(),
        };
        let end = SessionCommand::End {
            reason: "logout".into(),
        };
        given::<Session>(&[started()])
            .when(end.clone(), &Ctx::at(t0()))
            .then(std::slice::from_ref(&ended));
        given::<Session>(&[started(), ended.clone()])
            .when(end, &Ctx::at(t0()))
            .then_error(SessionError::AlreadyEnded);
        given::<Session>(&[])
            .when(SessionCommand::Touch, &Ctx::at(t0()))
            .then_error(SessionError::NotStarted);
        assert!(Session::fold(&[started(), ended]).active_at(t0()).is_none());
    }
}
