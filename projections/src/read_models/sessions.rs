//! Sessions per account, for "where am I logged in" and for administrators:
//! client, method, start, last activity, expiry, and how it ended.
//!
//! Never consulted to authenticate a request: the session aggregate is.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use medledger_commands::args;
use medledger_commands::codec::decode;
use medledger_commands::db::{Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::identity::session::{SessionEvent, ABSOLUTE_LIFETIME_HOURS, IDLE_MINUTES};
use serde::Serialize;
use uuid::Uuid;

use super::uuid_at;
use crate::runner::{Projection, ProjectionError};

pub struct Sessions;

pub const NAME: &str = "sessions";

#[async_trait]
impl Projection for Sessions {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["SessionStarted", "SessionTouched", "SessionEnded"]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_sessions"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        match decode::<SessionEvent>(e)? {
            SessionEvent::SessionStarted {
                session_id,
                account_id,
                client,
                expires_at,
                started_at,
                method,
                ..
            } => {
                // Sessions recorded before `started_at` existed lived exactly the absolute lifetime.
                let started_at = started_at.unwrap_or(expires_at - Duration::hours(ABSOLUTE_LIFETIME_HOURS));
                tx.execute(
                    "INSERT INTO rm_sessions (session_id, account_id, client, method, started_at, last_active_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT (session_id) DO NOTHING",
                    &args![session_id, account_id, client.as_str(), method, started_at, expires_at],
                )
                .await?;
            }
            SessionEvent::SessionTouched { session_id, at } => {
                tx.execute(
                    "UPDATE rm_sessions SET last_active_at = $2 WHERE session_id = $1 AND last_active_at < $2",
                    &args![session_id, at],
                )
                .await?;
            }
            SessionEvent::SessionEnded { session_id, reason } => {
                tx.execute(
                    "UPDATE rm_sessions SET ended_at = $2, end_reason = $3 WHERE session_id = $1 AND ended_at IS NULL",
                    &args![session_id, e.recorded_at, reason],
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SessionView {
    pub session_id: Uuid,
    pub account_id: Uuid,
    /// `pc`, `mobile`, …
    pub client: String,
    /// `password` or `qr`; absent on sessions recorded before it was.
    pub method: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended (`logout`, …).
    pub end_reason: Option<String>,
}

impl SessionView {
    /// Not ended, not past its absolute lifetime, not idle too long at `now`.
    /// (A session voided by a newer session generation still looks active
    /// here; the session aggregate is the authority.)
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && now < self.expires_at && now < self.last_active_at + Duration::minutes(IDLE_MINUTES)
    }
}

/// An account's sessions, newest first; ended ones only if asked for.
/// Sessions that expired without an end event are not "ended": see
/// [`SessionView::is_active_at`].
pub async fn list_for_account(
    db: &Db,
    account_id: Uuid,
    include_ended: bool,
) -> Result<Vec<SessionView>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT session_id, account_id, client, method, started_at, last_active_at, expires_at, ended_at, end_reason \
             FROM rm_sessions WHERE account_id = $1 AND ($2 OR ended_at IS NULL) \
             ORDER BY started_at DESC, session_id DESC",
            &args![account_id, include_ended],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(SessionView {
                session_id: uuid_at(r, 0)?,
                account_id: uuid_at(r, 1)?,
                client: r.get(2)?,
                method: r.get(3)?,
                started_at: r.time(4)?,
                last_active_at: r.time(5)?,
                expires_at: r.time(6)?,
                ended_at: r.opt_time(7)?,
                end_reason: r.get(8)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use medledger_domain::event::DomainEvent;

    #[test]
    fn the_projection_listens_to_every_session_event() {
        let wanted: Vec<&str> = SessionEvent::catalog().iter().map(|i| i.event_type).collect();
        assert_eq!(Sessions.event_types(), wanted.as_slice());
    }

    #[test]
    fn a_session_is_active_until_it_ends_expires_or_idles() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap();
        let s = SessionView {
            session_id: Uuid::from_u128(1),
            account_id: Uuid::from_u128(2),
            client: "pc".into(),
            method: Some("password".into()),
            started_at: t0,
            last_active_at: t0 + Duration::hours(11),
            expires_at: t0 + Duration::hours(12),
            ended_at: None,
            end_reason: None,
        };
        assert!(s.is_active_at(t0 + Duration::hours(11) + Duration::minutes(59)));
        assert!(!s.is_active_at(t0 + Duration::hours(12)), "past its absolute lifetime");
        let idle = SessionView {
            last_active_at: t0,
            ..s.clone()
        };
        assert!(
            !idle.is_active_at(t0 + Duration::minutes(IDLE_MINUTES)),
            "idle too long"
        );
        let ended = SessionView {
            ended_at: Some(t0),
            end_reason: Some("logout".into()),
            ..s
        };
        assert!(!ended.is_active_at(t0));
    }
}
