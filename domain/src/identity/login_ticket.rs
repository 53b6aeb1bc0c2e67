//! QR-scan login tickets (stream `loginticket-<id>`).
//!
//! A PC client asks for a ticket and shows it as a QR code; a mobile client
//! that is already logged in scans and confirms it; the PC client then
//! redeems it once for its own session. Tickets live
//! [`TICKET_LIFETIME_SECONDS`] and are single-use. Only the SHA-256 of the
//! ticket's secret is stored.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};

pub const TICKET_LIFETIME_SECONDS: i64 = 120;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LoginTicketEvent {
    LoginTicketIssued {
        ticket_id: Uuid,
        secret_sha256: String,
        expires_at: DateTime<Utc>,
    },
    LoginTicketConfirmed {
        ticket_id: Uuid,
        account_id: Uuid,
        /// The mobile session that confirmed it.
        by_session: Uuid,
    },
    LoginTicketRedeemed {
        ticket_id: Uuid,
        session_id: Uuid,
    },
}

crate::event_catalog!(
    LoginTicketEvent,
    "identity",
    [LoginTicketIssued = 1, LoginTicketConfirmed = 1, LoginTicketRedeemed = 1]
);

#[derive(Clone, Debug, PartialEq)]
pub enum LoginTicketCommand {
    Issue { ticket_id: Uuid, secret_sha256: String },
    Confirm { account_id: Uuid, by_session: Uuid },
    Redeem { session_id: Uuid },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginTicketError {
    #[error("no such login ticket")]
    NotFound,
    #[error("the login ticket already exists")]
    AlreadyIssued,
    #[error("the login ticket has expired")]
    Expired,
    #[error("the login ticket was already confirmed")]
    AlreadyConfirmed,
    #[error("the login ticket has not been confirmed yet")]
    NotConfirmed,
    #[error("the login ticket was already used")]
    AlreadyRedeemed,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum LoginTicketState {
    #[default]
    None,
    Issued {
        id: Uuid,
        expires_at: DateTime<Utc>,
    },
    Confirmed {
        id: Uuid,
        expires_at: DateTime<Utc>,
        account_id: Uuid,
    },
    Redeemed,
}

pub struct LoginTicket;

impl Decider for LoginTicket {
    type State = LoginTicketState;
    type Command = LoginTicketCommand;
    type Event = LoginTicketEvent;
    type Error = LoginTicketError;

    fn decide(
        s: &LoginTicketState,
        c: LoginTicketCommand,
        ctx: &Ctx,
    ) -> Result<Vec<LoginTicketEvent>, LoginTicketError> {
        use LoginTicketState as S;
        match (s, c) {
            (
                S::None,
                LoginTicketCommand::Issue {
                    ticket_id,
                    secret_sha256,
                },
            ) => Ok(vec![LoginTicketEvent::LoginTicketIssued {
                ticket_id,
                secret_sha256,
                expires_at: ctx.now + Duration::seconds(TICKET_LIFETIME_SECONDS),
            }]),
            (_, LoginTicketCommand::Issue { .. }) => Err(LoginTicketError::AlreadyIssued),
            (S::None, _) => Err(LoginTicketError::NotFound),
            (S::Redeemed, _) => Err(LoginTicketError::AlreadyRedeemed),
            (S::Issued { expires_at, .. } | S::Confirmed { expires_at, .. }, _) if ctx.now >= *expires_at => {
                Err(LoginTicketError::Expired)
            }
            (S::Issued { id, .. }, LoginTicketCommand::Confirm { account_id, by_session }) => {
                Ok(vec![LoginTicketEvent::LoginTicketConfirmed {
                    ticket_id: *id,
                    account_id,
                    by_session,
                }])
            }
            (S::Confirmed { .. }, LoginTicketCommand::Confirm { .. }) => Err(LoginTicketError::AlreadyConfirmed),
            (S::Issued { .. }, LoginTicketCommand::Redeem { .. }) => Err(LoginTicketError::NotConfirmed),
            (S::Confirmed { id, .. }, LoginTicketCommand::Redeem { session_id }) => {
                Ok(vec![LoginTicketEvent::LoginTicketRedeemed {
                    ticket_id: *id,
                    session_id,
                }])
            }
        }
    }

    fn evolve(s: LoginTicketState, e: &LoginTicketEvent) -> LoginTicketState {
        match (s, e) {
            (
                _,
                LoginTicketEvent::LoginTicketIssued {
                    ticket_id, expires_at, ..
                },
            ) => LoginTicketState::Issued {
                id: *ticket_id,
                expires_at: *expires_at,
            },
            (
                LoginTicketState::Issued { id, expires_at },
                LoginTicketEvent::LoginTicketConfirmed { account_id, .. },
            ) => LoginTicketState::Confirmed {
                id,
                expires_at,
                account_id: *account_id,
            },
            (_, LoginTicketEvent::LoginTicketRedeemed { .. }) => LoginTicketState::Redeemed,
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
    const T: Uuid = Uuid::from_u128(3);

    fn issued() -> LoginTicketEvent {
        LoginTicketEvent::LoginTicketIssued {
            ticket_id: T,
            secret_sha256: "s".into(),
            expires_at: t0() + Duration::seconds(TICKET_LIFETIME_SECONDS),
        }
    }
    fn confirmed() -> LoginTicketEvent {
        LoginTicketEvent::LoginTicketConfirmed {
            ticket_id: T,
            account_id: Uuid::from_u128(1),
            by_session: Uuid::from_u128(2),
        }
    }
    fn confirm() -> LoginTicketCommand {
        LoginTicketCommand::Confirm {
            account_id: Uuid::from_u128(1),
            by_session: Uuid::from_u128(2),
        }
    }
    fn redeem() -> LoginTicketCommand {
        LoginTicketCommand::Redeem {
            session_id: Uuid::from_u128(4),
        }
    }

    #[test]
    fn a_ticket_is_confirmed_then_redeemed_once() {
        let ctx = Ctx::at(t0() + Duration::seconds(30));
        given::<LoginTicket>(&[issued()])
            .when(confirm(), &ctx)
            .then(&[confirmed()]);
        given::<LoginTicket>(&[issued()])
            .when(redeem(), &ctx)
            .then_error(LoginTicketError::NotConfirmed);
        given::<LoginTicket>(&[issued(), confirmed()])
            .when(confirm(), &ctx)
            .then_error(LoginTicketError::AlreadyConfirmed);
        let redeemed = LoginTicketEvent::LoginTicketRedeemed {
            ticket_id: T,
            session_id: Uuid::from_u128(4),
        };
        given::<LoginTicket>(&[issued(), confirmed()])
            .when(redeem(), &ctx)
            .then(std::slice::from_ref(&redeemed));
        given::<LoginTicket>(&[issued(), confirmed(), redeemed])
            .when(redeem(), &ctx)
            .then_error(LoginTicketError::AlreadyRedeemed);
    }

    #[test]
    fn a_ticket_dies_after_two_minutes() {
        let late = Ctx::at(t0() + Duration::seconds(TICKET_LIFETIME_SECONDS));
        given::<LoginTicket>(&[issued()])
            .when(confirm(), &late)
            .then_error(LoginTicketError::Expired);
        given::<LoginTicket>(&[issued(), confirmed()])
            .when(redeem(), &late)
            .then_error(LoginTicketError::Expired);
    }
}
