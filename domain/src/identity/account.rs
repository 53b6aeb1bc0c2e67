//! The account aggregate (stream `account-<id>`): registration and every
//! login attempt against it, successful or not.
//!
//! The decider receives the *result* of password verification (argon2id runs
//! in the application layer, off the async executor) and records the attempt.
//! A failed attempt is not an error: it is an event (`LoginFailed`) that the
//! handler then reports to the caller.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{AccountRole, ClientKind, LoginName, Tenant};
use crate::decider::{Ctx, Decider};
use crate::pii::PersonalData;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccountEvent {
    AccountRegistered {
        account_id: Uuid,
        login: LoginName,
        display_name: PersonalData,
        role: AccountRole,
        tenant: Tenant,
        /// argon2id PHC string; never the password.
        password_hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registered_by: Option<Uuid>,
    },
    LoginSucceeded {
        account_id: Uuid,
        session_id: Uuid,
        client: ClientKind,
    },
    LoginFailed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account_id: Option<Uuid>,
        login: String,
        reason: LoginFailure,
        client: ClientKind,
    },
}

crate::event_catalog!(
    AccountEvent,
    "identity",
    [AccountRegistered = 1, LoginSucceeded = 1, LoginFailed = 1]
);

/// Why a login attempt failed (stable codes, also used in problem responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    UnknownLogin,
    WrongPassword,
    AccountDisabled,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AccountCommand {
    Register {
        account_id: Uuid,
        login: LoginName,
        display_name: PersonalData,
        role: AccountRole,
        tenant: Tenant,
        password_hash: String,
    },
    /// Record a login attempt whose password check has already been made.
    RecordLoginAttempt {
        password_matches: bool,
        session_id: Uuid,
        client: ClientKind,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already registered")]
    AlreadyRegistered,
    #[error("no such account")]
    NotRegistered,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountState {
    pub account: Option<Account>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: Uuid,
    pub login: LoginName,
    pub display_name: PersonalData,
    pub role: AccountRole,
    pub tenant: Tenant,
    pub password_hash: String,
    pub disabled: bool,
}

pub struct AccountDecider;

impl Decider for AccountDecider {
    type State = AccountState;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(state: &AccountState, command: AccountCommand, ctx: &Ctx) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Register {
                account_id,
                login,
                display_name,
                role,
                tenant,
                password_hash,
            } => {
                if state.account.is_some() {
                    return Err(AccountError::AlreadyRegistered);
                }
                Ok(vec![AccountEvent::AccountRegistered {
                    account_id,
                    login,
                    display_name,
                    role,
                    tenant,
                    password_hash,
                    registered_by: ctx.actor,
                }])
            }
            AccountCommand::RecordLoginAttempt {
                password_matches,
                session_id,
                client,
            } => {
                let account = state.account.as_ref().ok_or(AccountError::NotRegistered)?;
                let failure = if account.disabled {
                    Some(LoginFailure::AccountDisabled)
                } else if !password_matches {
                    Some(LoginFailure::WrongPassword)
                } else {
                    None
                };
                Ok(vec![match failure {
                    Some(reason) => AccountEvent::LoginFailed {
                        account_id: Some(account.id),
                        login: account.login.to_string(),
                        reason,
                        client,
                    },
                    None => AccountEvent::LoginSucceeded {
                        account_id: account.id,
                        session_id,
                        client,
                    },
                }])
            }
        }
    }

    fn evolve(mut state: AccountState, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::AccountRegistered {
                account_id,
                login,
                display_name,
                role,
                tenant,
                password_hash,
                ..
            } => {
                state.account = Some(Account {
                    id: *account_id,
                    login: login.clone(),
                    display_name: display_name.clone(),
                    role: *role,
                    tenant: *tenant,
                    password_hash: password_hash.clone(),
                    disabled: false,
                });
            }
            AccountEvent::LoginSucceeded { .. } | AccountEvent::LoginFailed { .. } => {}
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;
    use chrono::TimeZone;

    fn ctx() -> Ctx {
        Ctx::at(chrono::Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap())
    }

    fn registered() -> AccountEvent {
        let id = Uuid::from_u128(1);
        AccountEvent::AccountRegistered {
            account_id: id,
            login: LoginName::parse("operator").unwrap(),
            display_name: PersonalData::new(id, "Platform Operator"),
            role: AccountRole::PlatformOperator,
            tenant: Tenant::PLATFORM,
            password_hash: "$argon2id$...".into(),
            registered_by: None,
        }
    }

    #[test]
    fn an_account_registers_once() {
        let AccountEvent::AccountRegistered {
            account_id,
            login,
            display_name,
            role,
            tenant,
            password_hash,
            ..
        } = registered()
        else {
            unreachable!()
        };
        let register = AccountCommand::Register {
            account_id,
            login,
            display_name,
            role,
            tenant,
            password_hash,
        };
        given::<AccountDecider>(&[])
            .when(register.clone(), &ctx())
            .then(&[registered()]);
        given::<AccountDecider>(&[registered()])
            .when(register, &ctx())
            .then_error(AccountError::AlreadyRegistered);
    }

    #[test]
    fn a_wrong_password_is_recorded_as_a_failed_attempt() {
        given::<AccountDecider>(&[registered()])
            .when(
                AccountCommand::RecordLoginAttempt {
                    password_matches: false,
                    session_id: Uuid::from_u128(9),
                    client: ClientKind::Mobile,
                },
                &ctx(),
            )
            .then(&[AccountEvent::LoginFailed {
                account_id: Some(Uuid::from_u128(1)),
                login: "operator".into(),
                reason: LoginFailure::WrongPassword,
                client: ClientKind::Mobile,
            }]);
    }

    #[test]
    fn the_right_password_starts_a_session() {
        given::<AccountDecider>(&[registered()])
            .when(
                AccountCommand::RecordLoginAttempt {
                    password_matches: true,
                    session_id: Uuid::from_u128(9),
                    client: ClientKind::Pc,
                },
                &ctx(),
            )
            .then(&[AccountEvent::LoginSucceeded {
                account_id: Uuid::from_u128(1),
                session_id: Uuid::from_u128(9),
                client: ClientKind::Pc,
            }]);
    }

    #[test]
    fn attempts_against_an_unregistered_account_are_refused() {
        given::<AccountDecider>(&[])
            .when(
                AccountCommand::RecordLoginAttempt {
                    password_matches: true,
                    session_id: Uuid::from_u128(9),
                    client: ClientKind::Pc,
                },
                &ctx(),
            )
            .then_error(AccountError::NotRegistered);
    }
}
