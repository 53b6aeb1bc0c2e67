//! The account aggregate (stream `account-<id>`): registration, every login
//! attempt, freezing and thawing, disabling, passwords, phone and roles.
//!
//! Rules decided here:
//! - **10 failed password attempts in one calendar day** (the hospital's time
//!   zone) freeze the account until the next local midnight; a frozen account
//!   cannot log in even with the right password; the first attempt after the
//!   freeze ends records the thaw; an administrator may unfreeze earlier.
//!   Counting restarts each day and after every thaw.
//! - A disabled account cannot log in.
//! - A new password may not equal any of the last five (the application layer
//!   compares the candidate against [`Account::password_history`] and says so
//!   in the command).
//! - Freezing, disabling and password changes bump the account's *session
//!   generation*: every session started before is void at once.
//!
//! The decider receives the *result* of password verification (argon2id runs
//! in the application layer, off the async executor) and records the attempt.
//! A failed attempt is not an error: it is an event that the handler then
//! reports to the caller.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{AccountRole, ClientKind, LoginName, Tenant};
use crate::decider::{Ctx, Decider};
use crate::organization::TimeZone;
use crate::pii::PersonalData;

/// Failed attempts in one local day that freeze an account.
pub const FREEZE_AFTER_FAILURES: u32 = 10;
/// How many previous passwords a new one may not repeat.
pub const PASSWORD_HISTORY: usize = 5;

// Registration carries the whole account; the other events are small. Events
// are short-lived values on their way to or from the store, so the size
// difference costs nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccountEvent {
    AccountRegistered {
        account_id: Uuid,
        login: LoginName,
        display_name: PersonalData,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<PersonalData>,
        role: AccountRole,
        tenant: Tenant,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        department_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roles: Vec<Uuid>,
        #[serde(default)]
        time_zone: TimeZone,
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
        /// The calendar day of the attempt in the account's time zone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_date: Option<NaiveDate>,
    },
    AccountFrozen {
        account_id: Uuid,
        until: DateTime<Utc>,
        failed_attempts: u32,
    },
    AccountUnfrozen {
        account_id: Uuid,
        /// The administrator who unfroze it; `None` when it thawed by itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Uuid>,
    },
    AccountDisabled {
        account_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Uuid>,
    },
    AccountEnabled {
        account_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Uuid>,
    },
    PasswordChanged {
        account_id: Uuid,
        password_hash: String,
        reason: PasswordChange,
    },
    PhoneBound {
        account_id: Uuid,
        phone: PersonalData,
    },
    RolesAssigned {
        account_id: Uuid,
        roles: Vec<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Uuid>,
    },
}

crate::event_catalog!(
    AccountEvent,
    "identity",
    [
        AccountRegistered = 1,
        LoginSucceeded = 1,
        LoginFailed = 1,
        AccountFrozen = 1,
        AccountUnfrozen = 1,
        AccountDisabled = 1,
        AccountEnabled = 1,
        PasswordChanged = 1,
        PhoneBound = 1,
        RolesAssigned = 1,
    ]
);

/// Why a login attempt failed (stable codes, also used in problem responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    UnknownLogin,
    WrongPassword,
    AccountDisabled,
    AccountFrozen,
}

/// How a password came to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordChange {
    /// The owner changed it while logged in.
    Change,
    /// Through a forgot-password code.
    Reset,
    /// The owner set their first own password (e.g. before a first QR login).
    Initial,
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum AccountCommand {
    Register {
        account_id: Uuid,
        login: LoginName,
        display_name: PersonalData,
        phone: Option<PersonalData>,
        role: AccountRole,
        tenant: Tenant,
        department_id: Option<Uuid>,
        title: Option<String>,
        roles: Vec<Uuid>,
        time_zone: TimeZone,
        password_hash: String,
    },
    /// Record a login attempt whose password check has already been made.
    RecordLoginAttempt {
        password_matches: bool,
        session_id: Uuid,
        client: ClientKind,
    },
    Unfreeze,
    Disable,
    Enable,
    ChangePassword {
        password_hash: String,
        /// The candidate equals one of the last [`PASSWORD_HISTORY`] passwords.
        reused: bool,
        reason: PasswordChange,
    },
    BindPhone {
        phone: PersonalData,
    },
    AssignRoles {
        roles: Vec<Uuid>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already registered")]
    AlreadyRegistered,
    #[error("no such account")]
    NotRegistered,
    #[error("the account is not frozen")]
    NotFrozen,
    #[error("the account is already disabled")]
    AlreadyDisabled,
    #[error("the account is not disabled")]
    NotDisabled,
    #[error("the new password equals one of the last {PASSWORD_HISTORY}")]
    PasswordReused,
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
    pub phone: Option<PersonalData>,
    pub role: AccountRole,
    pub tenant: Tenant,
    pub department_id: Option<Uuid>,
    pub title: Option<String>,
    pub roles: Vec<Uuid>,
    pub time_zone: TimeZone,
    pub password_hash: String,
    /// The current and previous password hashes, newest first.
    pub password_history: VecDeque<String>,
    /// The owner has chosen their own password (not one handed out).
    pub password_chosen_by_owner: bool,
    pub disabled: bool,
    pub frozen_until: Option<DateTime<Utc>>,
    /// Failed password attempts on one local day.
    pub failures: Option<(NaiveDate, u32)>,
    /// Sessions started under an older generation are void.
    pub session_generation: u32,
}

impl Account {
    /// Frozen at `now`? Returns when it thaws.
    pub fn frozen_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.frozen_until.filter(|until| now < *until)
    }

    pub fn local_date(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.time_zone.0).date_naive()
    }

    /// The next local midnight after `now`, in UTC.
    pub fn next_local_midnight(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let tomorrow = self.local_date(now) + Duration::days(1);
        let midnight = tomorrow.and_hms_opt(0, 0, 0).expect("midnight exists");
        self.time_zone
            .0
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now + Duration::days(1))
    }

    fn failures_on(&self, day: NaiveDate) -> u32 {
        match self.failures {
            Some((d, n)) if d == day => n,
            _ => 0,
        }
    }
}

pub struct AccountDecider;

impl Decider for AccountDecider {
    type State = AccountState;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(state: &AccountState, command: AccountCommand, ctx: &Ctx) -> Result<Vec<AccountEvent>, AccountError> {
        if let AccountCommand::Register {
            account_id,
            login,
            display_name,
            phone,
            role,
            tenant,
            department_id,
            title,
            roles,
            time_zone,
            password_hash,
        } = command
        {
            if state.account.is_some() {
                return Err(AccountError::AlreadyRegistered);
            }
            return Ok(vec![AccountEvent::AccountRegistered {
                account_id,
                login,
                display_name,
                phone,
                role,
                tenant,
                department_id,
                title,
                roles,
                time_zone,
                password_hash,
                registered_by: ctx.actor,
            }]);
        }
        let account = state.account.as_ref().ok_or(AccountError::NotRegistered)?;
        let id = account.id;
        let now = ctx.now;
        match command {
            AccountCommand::Register { .. } => unreachable!("handled above"),
            AccountCommand::RecordLoginAttempt {
                password_matches,
                session_id,
                client,
            } => {
                let mut events = Vec::new();
                let mut failures_today = account.failures_on(account.local_date(now));
                // A freeze that has run out thaws when the next attempt arrives.
                if account.frozen_until.is_some() && account.frozen_at(now).is_none() {
                    events.push(AccountEvent::AccountUnfrozen {
                        account_id: id,
                        by: None,
                    });
                    failures_today = 0;
                }
                let failed = |reason| AccountEvent::LoginFailed {
                    account_id: Some(id),
                    login: account.login.to_string(),
                    reason,
                    client,
                    local_date: Some(account.local_date(now)),
                };
                if account.disabled {
                    events.push(failed(LoginFailure::AccountDisabled));
                } else if account.frozen_at(now).is_some() {
                    events.push(failed(LoginFailure::AccountFrozen));
                } else if !password_matches {
                    events.push(failed(LoginFailure::WrongPassword));
                    if failures_today + 1 >= FREEZE_AFTER_FAILURES {
                        events.push(AccountEvent::AccountFrozen {
                            account_id: id,
                            until: account.next_local_midnight(now),
                            failed_attempts: failures_today + 1,
                        });
                    }
                } else {
                    events.push(AccountEvent::LoginSucceeded {
                        account_id: id,
                        session_id,
                        client,
                    });
                }
                Ok(events)
            }
            AccountCommand::Unfreeze => {
                if account.frozen_at(now).is_none() {
                    return Err(AccountError::NotFrozen);
                }
                Ok(vec![AccountEvent::AccountUnfrozen {
                    account_id: id,
                    by: ctx.actor,
                }])
            }
            AccountCommand::Disable => {
                if account.disabled {
                    return Err(AccountError::AlreadyDisabled);
                }
                Ok(vec![AccountEvent::AccountDisabled {
                    account_id: id,
                    by: ctx.actor,
                }])
            }
            AccountCommand::Enable => {
                if !account.disabled {
                    return Err(AccountError::NotDisabled);
                }
                Ok(vec![AccountEvent::AccountEnabled {
                    account_id: id,
                    by: ctx.actor,
                }])
            }
            AccountCommand::ChangePassword {
                password_hash,
                reused,
                reason,
            } => {
                if reused {
                    return Err(AccountError::PasswordReused);
                }
                Ok(vec![AccountEvent::PasswordChanged {
                    account_id: id,
                    password_hash,
                    reason,
                }])
            }
            AccountCommand::BindPhone { phone } => Ok(vec![AccountEvent::PhoneBound { account_id: id, phone }]),
            AccountCommand::AssignRoles { roles } => {
                if roles == account.roles {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::RolesAssigned {
                    account_id: id,
                    roles,
                    by: ctx.actor,
                }])
            }
        }
    }

    fn evolve(mut state: AccountState, event: &AccountEvent) -> AccountState {
        if let AccountEvent::AccountRegistered {
            account_id,
            login,
            display_name,
            phone,
            role,
            tenant,
            department_id,
            title,
            roles,
            time_zone,
            password_hash,
            ..
        } = event
        {
            state.account = Some(Account {
                id: *account_id,
                login: login.clone(),
                display_name: display_name.clone(),
                phone: phone.clone(),
                role: *role,
                tenant: *tenant,
                department_id: *department_id,
                title: title.clone(),
                roles: roles.clone(),
                time_zone: *time_zone,
                password_hash: password_hash.clone(),
                password_history: VecDeque::from([password_hash.clone()]),
                password_chosen_by_owner: false,
                disabled: false,
                frozen_until: None,
                failures: None,
                session_generation: 0,
            });
            return state;
        }
        let Some(a) = state.account.as_mut() else {
            return state;
        };
        match event {
            AccountEvent::AccountRegistered { .. } | AccountEvent::LoginSucceeded { .. } => {}
            AccountEvent::LoginFailed {
                reason: LoginFailure::WrongPassword,
                local_date: Some(day),
                ..
            } => {
                let n = a.failures_on(*day);
                a.failures = Some((*day, n + 1));
            }
            AccountEvent::LoginFailed { .. } => {}
            AccountEvent::AccountFrozen { until, .. } => {
                a.frozen_until = Some(*until);
                a.session_generation += 1;
            }
            AccountEvent::AccountUnfrozen { .. } => {
                a.frozen_until = None;
                a.failures = None;
            }
            AccountEvent::AccountDisabled { .. } => {
                a.disabled = true;
                a.session_generation += 1;
            }
            AccountEvent::AccountEnabled { .. } => a.disabled = false,
            AccountEvent::PasswordChanged { password_hash, .. } => {
                a.password_hash = password_hash.clone();
                a.password_history.push_front(password_hash.clone());
                a.password_history.truncate(PASSWORD_HISTORY);
                a.password_chosen_by_owner = true;
                a.session_generation += 1;
            }
            AccountEvent::PhoneBound { phone, .. } => a.phone = Some(phone.clone()),
            AccountEvent::RolesAssigned { roles, .. } => a.roles = roles.clone(),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    const ID: Uuid = Uuid::from_u128(1);

    fn at(rfc3339: &str) -> Ctx {
        Ctx::at(DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc))
    }

    fn registered() -> AccountEvent {
        AccountEvent::AccountRegistered {
            account_id: ID,
            login: LoginName::parse("dr.wang").unwrap(),
            display_name: PersonalData::new(ID, "王医生"),
            phone: None,
            role: AccountRole::User,
            tenant: Tenant::PLATFORM,
            department_id: None,
            title: None,
            roles: vec![],
            time_zone: TimeZone::DEFAULT,
            password_hash: "$argon2id$h0".into(),
            registered_by: None,
        }
    }

    fn attempt(ok: bool) -> AccountCommand {
        AccountCommand::RecordLoginAttempt {
            password_matches: ok,
            session_id: Uuid::from_u128(9),
            client: ClientKind::Pc,
        }
    }

    /// Run commands in order, feeding each outcome back into the history.
    fn replay(
        history: &mut Vec<AccountEvent>,
        ctx: &Ctx,
        c: AccountCommand,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        let out = AccountDecider::decide(&AccountDecider::fold(history.iter()), c, ctx)?;
        history.extend(out.clone());
        Ok(out)
    }

    fn failed(day: &str) -> AccountEvent {
        AccountEvent::LoginFailed {
            account_id: Some(ID),
            login: "dr.wang".into(),
            reason: LoginFailure::WrongPassword,
            client: ClientKind::Pc,
            local_date: Some(day.parse().unwrap()),
        }
    }

    #[test]
    fn the_tenth_failure_of_a_local_day_freezes_until_local_midnight() {
        // 2026-11-28 10:00 in Shanghai is 02:00 UTC.
        let ctx = at("2026-11-28T02:00:00Z");
        let history: Vec<_> = std::iter::once(registered())
            .chain((0..9).map(|_| failed("2026-11-28")))
            .collect();
        given::<AccountDecider>(&history).when(attempt(false), &ctx).then(&[
            failed("2026-11-28"),
            AccountEvent::AccountFrozen {
                account_id: ID,
                until: DateTime::parse_from_rfc3339("2026-11-28T16:00:00Z").unwrap().to_utc(),
                failed_attempts: 10,
            },
        ]);
    }

    #[test]
    fn failures_of_an_earlier_local_day_do_not_count() {
        // 23:30 UTC on the 27th is already the 28th in Shanghai: yesterday's 9 are gone.
        let ctx = at("2026-11-28T16:30:00Z");
        let history: Vec<_> = std::iter::once(registered())
            .chain((0..9).map(|_| failed("2026-11-28")))
            .collect();
        given::<AccountDecider>(&history)
            .when(attempt(false), &ctx)
            .then(&[failed("2026-11-29")]);
    }

    #[test]
    fn a_frozen_account_refuses_the_right_password_and_thaws_next_day() {
        let mut h = vec![registered()];
        let morning = at("2026-11-28T02:00:00Z");
        for _ in 0..10 {
            replay(&mut h, &morning, attempt(false)).unwrap();
        }
        assert!(matches!(h.last(), Some(AccountEvent::AccountFrozen { .. })));
        let refused = replay(&mut h, &at("2026-11-28T15:59:59Z"), attempt(true)).unwrap();
        assert!(matches!(
            refused.as_slice(),
            [AccountEvent::LoginFailed {
                reason: LoginFailure::AccountFrozen,
                ..
            }]
        ));
        // Local midnight has passed: the attempt records the thaw and succeeds.
        let next_day = replay(&mut h, &at("2026-11-28T16:00:00Z"), attempt(true)).unwrap();
        assert_eq!(
            next_day,
            vec![
                AccountEvent::AccountUnfrozen {
                    account_id: ID,
                    by: None
                },
                AccountEvent::LoginSucceeded {
                    account_id: ID,
                    session_id: Uuid::from_u128(9),
                    client: ClientKind::Pc
                }
            ]
        );
    }

    #[test]
    fn an_administrator_unfreezes_early_and_counting_restarts() {
        let mut h = vec![registered()];
        let morning = at("2026-11-28T02:00:00Z");
        for _ in 0..10 {
            replay(&mut h, &morning, attempt(false)).unwrap();
        }
        let admin = morning.clone().with_actor(Uuid::from_u128(77));
        assert_eq!(
            replay(&mut h, &admin, AccountCommand::Unfreeze).unwrap(),
            vec![AccountEvent::AccountUnfrozen {
                account_id: ID,
                by: Some(Uuid::from_u128(77))
            }]
        );
        assert_eq!(
            replay(&mut h, &admin, AccountCommand::Unfreeze),
            Err(AccountError::NotFrozen)
        );
        // Nine more failures the same day do not freeze again.
        for _ in 0..9 {
            let out = replay(&mut h, &morning, attempt(false)).unwrap();
            assert_eq!(out.len(), 1);
        }
        let state = AccountDecider::fold(h.iter());
        assert!(state.account.unwrap().frozen_at(morning.now).is_none());
    }

    #[test]
    fn a_disabled_account_cannot_log_in_and_its_sessions_are_void() {
        let ctx = at("2026-11-28T02:00:00Z");
        let disabled = AccountEvent::AccountDisabled {
            account_id: ID,
            by: None,
        };
        given::<AccountDecider>(&[registered(), disabled.clone()])
            .when(attempt(true), &ctx)
            .then(&[AccountEvent::LoginFailed {
                account_id: Some(ID),
                login: "dr.wang".into(),
                reason: LoginFailure::AccountDisabled,
                client: ClientKind::Pc,
                local_date: Some("2026-11-28".parse().unwrap()),
            }]);
        given::<AccountDecider>(&[registered(), disabled.clone()])
            .when(AccountCommand::Disable, &ctx)
            .then_error(AccountError::AlreadyDisabled);
        let before = AccountDecider::fold([registered()].iter()).account.unwrap();
        let after = AccountDecider::fold([registered(), disabled].iter()).account.unwrap();
        assert_eq!(after.session_generation, before.session_generation + 1);
    }

    #[test]
    fn a_reused_password_is_refused_and_history_keeps_five() {
        let ctx = at("2026-11-28T02:00:00Z");
        given::<AccountDecider>(&[registered()])
            .when(
                AccountCommand::ChangePassword {
                    password_hash: "h".into(),
                    reused: true,
                    reason: PasswordChange::Change,
                },
                &ctx,
            )
            .then_error(AccountError::PasswordReused);
        let mut h = vec![registered()];
        for i in 1..=6 {
            h.push(AccountEvent::PasswordChanged {
                account_id: ID,
                password_hash: format!("$argon2id$h{i}"),
                reason: PasswordChange::Change,
            });
        }
        let a = AccountDecider::fold(h.iter()).account.unwrap();
        assert_eq!(
            a.password_history,
            VecDeque::from(
                [
                    "$argon2id$h6",
                    "$argon2id$h5",
                    "$argon2id$h4",
                    "$argon2id$h3",
                    "$argon2id$h2"
                ]
                .map(String::from)
            )
        );
        assert!(a.password_chosen_by_owner);
    }

    #[test]
    fn attempts_against_an_unregistered_account_are_refused() {
        given::<AccountDecider>(&[])
            .when(attempt(true), &at("2026-11-28T02:00:00Z"))
            .then_error(AccountError::NotRegistered);
    }
}
