//! Forgot-password codes (stream `passwordreset-<id>`).
//!
//! A code is sent through a notification channel; it lives
//! [`CODE_LIFETIME_MINUTES`] and [`MAX_WRONG_CODES`] wrong tries kill it.
//! Only the SHA-256 of the code (salted with the reset id) is stored.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};

pub const CODE_LIFETIME_MINUTES: i64 = 10;
pub const MAX_WRONG_CODES: u32 = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PasswordResetEvent {
    ResetCodeIssued {
        reset_id: Uuid,
        account_id: Uuid,
        code_sha256: String,
        expires_at: DateTime<Utc>,
        channel: String,
    },
    ResetCodeRejected {
        reset_id: Uuid,
        wrong_tries: u32,
    },
    ResetCodeKilled {
        reset_id: Uuid,
    },
    ResetCodeAccepted {
        reset_id: Uuid,
        account_id: Uuid,
    },
}

crate::event_catalog!(
    PasswordResetEvent,
    "identity",
    [
        ResetCodeIssued = 1,
        ResetCodeRejected = 1,
        ResetCodeKilled = 1,
        ResetCodeAccepted = 1
    ]
);

#[derive(Clone, Debug, PartialEq)]
pub enum PasswordResetCommand {
    Issue {
        reset_id: Uuid,
        account_id: Uuid,
        code_sha256: String,
        channel: String,
    },
    /// Try a code whose comparison has been made by the caller.
    Try { code_matches: bool },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordResetError {
    #[error("no such reset code")]
    NotFound,
    #[error("the reset code already exists")]
    AlreadyIssued,
    #[error("the reset code has expired")]
    Expired,
    #[error("the reset code is no longer valid")]
    Dead,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum PasswordResetState {
    #[default]
    None,
    Open {
        id: Uuid,
        account_id: Uuid,
        expires_at: DateTime<Utc>,
        wrong_tries: u32,
    },
    /// Used or killed.
    Closed,
}

pub struct PasswordReset;

impl Decider for PasswordReset {
    type State = PasswordResetState;
    type Command = PasswordResetCommand;
    type Event = PasswordResetEvent;
    type Error = PasswordResetError;

    fn decide(
        s: &PasswordResetState,
        c: PasswordResetCommand,
        ctx: &Ctx,
    ) -> Result<Vec<PasswordResetEvent>, PasswordResetError> {
        match (s, c) {
            (
                PasswordResetState::None,
                PasswordResetCommand::Issue {
                    reset_id,
                    account_id,
                    code_sha256,
                    channel,
                },
            ) => Ok(vec![PasswordResetEvent::ResetCodeIssued {
                reset_id,
                account_id,
                code_sha256,
                expires_at: ctx.now + Duration::minutes(CODE_LIFETIME_MINUTES),
                channel,
            }]),
            (_, PasswordResetCommand::Issue { .. }) => Err(PasswordResetError::AlreadyIssued),
            (PasswordResetState::None, _) => Err(PasswordResetError::NotFound),
            (PasswordResetState::Closed, _) => Err(PasswordResetError::Dead),
            (PasswordResetState::Open { expires_at, .. }, _) if ctx.now >= *expires_at => {
                Err(PasswordResetError::Expired)
            }
            (
                PasswordResetState::Open {
                    id,
                    account_id,
                    wrong_tries,
                    ..
                },
                PasswordResetCommand::Try { code_matches },
            ) => {
                if code_matches {
                    return Ok(vec![PasswordResetEvent::ResetCodeAccepted {
                        reset_id: *id,
                        account_id: *account_id,
                    }]);
                }
                let tries = wrong_tries + 1;
                let mut events = vec![PasswordResetEvent::ResetCodeRejected {
                    reset_id: *id,
                    wrong_tries: tries,
                }];
                if tries >= MAX_WRONG_CODES {
                    events.push(PasswordResetEvent::ResetCodeKilled { reset_id: *id });
                }
                Ok(events)
            }
        }
    }

    fn evolve(s: PasswordResetState, e: &PasswordResetEvent) -> PasswordResetState {
        match (s, e) {
            (
                _,
                PasswordResetEvent::ResetCodeIssued {
                    reset_id,
                    account_id,
                    expires_at,
                    ..
                },
            ) => PasswordResetState::Open {
                id: *reset_id,
                account_id: *account_id,
                expires_at: *expires_at,
                wrong_tries: 0,
            },
            (
                PasswordResetState::Open {
                    id,
                    account_id,
                    expires_at,
                    ..
                },
                PasswordResetEvent::ResetCodeRejected { wrong_tries, .. },
            ) => PasswordResetState::Open {
                id,
                account_id,
                expires_at,
                wrong_tries: *wrong_tries,
            },
            (_, PasswordResetEvent::ResetCodeKilled { .. } | PasswordResetEvent::ResetCodeAccepted { .. }) => {
                PasswordResetState::Closed
            }
            (other, _) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;
    use chrono::TimeZone;

    const R: Uuid = Uuid::from_u128(8);
    const A: Uuid = Uuid::from_u128(1);

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap()
    }
    fn issued() -> PasswordResetEvent {
        PasswordResetEvent::ResetCodeIssued {
            reset_id: R,
            account_id: A,
            code_sha256: "c".into(),
            expires_at: t0() + Duration::minutes(CODE_LIFETIME_MINUTES),
            channel: "outbox".into(),
        }
    }
    fn wrong() -> PasswordResetCommand {
        PasswordResetCommand::Try { code_matches: false }
    }

    #[test]
    fn the_fifth_wrong_code_kills_it() {
        let ctx = Ctx::at(t0());
        let mut history = vec![issued()];
        for n in 1..=4 {
            history.push(PasswordResetEvent::ResetCodeRejected {
                reset_id: R,
                wrong_tries: n,
            });
        }
        given::<PasswordReset>(&history).when(wrong(), &ctx).then(&[
            PasswordResetEvent::ResetCodeRejected {
                reset_id: R,
                wrong_tries: 5,
            },
            PasswordResetEvent::ResetCodeKilled { reset_id: R },
        ]);
        history.push(PasswordResetEvent::ResetCodeKilled { reset_id: R });
        given::<PasswordReset>(&history)
            .when(PasswordResetCommand::Try { code_matches: true }, &ctx)
            .then_error(PasswordResetError::Dead);
    }

    #[test]
    fn a_code_expires_after_ten_minutes_and_is_used_once() {
        given::<PasswordReset>(&[issued()])
            .when(
                PasswordResetCommand::Try { code_matches: true },
                &Ctx::at(t0() + Duration::minutes(CODE_LIFETIME_MINUTES)),
            )
            .then_error(PasswordResetError::Expired);
        let accepted = PasswordResetEvent::ResetCodeAccepted {
            reset_id: R,
            account_id: A,
        };
        given::<PasswordReset>(&[issued()])
            .when(PasswordResetCommand::Try { code_matches: true }, &Ctx::at(t0()))
            .then(std::slice::from_ref(&accepted));
        given::<PasswordReset>(&[issued(), accepted])
            .when(PasswordResetCommand::Try { code_matches: true }, &Ctx::at(t0()))
            .then_error(PasswordResetError::Dead);
    }
}
