//! The account directory: who exists, their level, tenant, department, title
//! and roles, whether they are disabled or frozen, their last login, and
//! their name and phone (decrypted for search; erased when the subject is
//! forgotten, and then also removed from the search text).
//!
//! It answers directory queries (one account, a filtered page of accounts);
//! it never decides whether someone may log in: the account aggregate does.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::decode;
use medledger_commands::db::{Arg, Db, DbRow, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::administration::AdministrationEvent;
use medledger_domain::identity::account::AccountEvent;
use serde::Serialize;
use uuid::Uuid;

use super::{json_at, opt_uuid_at, uuid_at};
use crate::runner::{Projection, ProjectionError};

pub struct Accounts;

pub const NAME: &str = "accounts";

#[async_trait]
impl Projection for Accounts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        2
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "AccountRegistered",
            "LoginSucceeded",
            "LoginFailed",
            "AccountFrozen",
            "AccountUnfrozen",
            "AccountDisabled",
            "AccountEnabled",
            "PasswordChanged",
            "PhoneBound",
            "RolesAssigned",
            "SubjectForgotten",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_accounts"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if e.event_type == "SubjectForgotten" {
            if let AdministrationEvent::SubjectForgotten { subject_id, .. } = decode(e)? {
                // SET expressions read the row as it was before the update.
                tx.execute(
                    "UPDATE rm_accounts SET display_name = NULL, display_name_erased = TRUE, \
                     phone = NULL, phone_erased = CASE WHEN phone IS NULL THEN phone_erased ELSE TRUE END, \
                     search_text = login WHERE account_id = $1",
                    &args![subject_id],
                )
                .await?;
            }
            return Ok(());
        }
        match decode::<AccountEvent>(e)? {
            AccountEvent::AccountRegistered {
                account_id,
                login,
                display_name,
                phone,
                role,
                tenant,
                department_id,
                title,
                roles,
                ..
            } => {
                let phone_value = phone.as_ref().and_then(|p| p.value());
                tx.execute(
                    "INSERT INTO rm_accounts (account_id, login, display_name, display_name_erased, phone, phone_erased, \
                     role, alliance_id, hospital_id, department_id, title, roles, status, registered_at, failed_logins, \
                     search_text) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active', $13, 0, $14) \
                     ON CONFLICT (account_id) DO NOTHING",
                    &args![
                        account_id,
                        login.as_str(),
                        display_name.value(),
                        display_name.is_erased(),
                        phone_value,
                        phone.as_ref().is_some_and(|p| p.is_erased()),
                        serde_json::to_value(role).ok().and_then(|v| v.as_str().map(String::from)),
                        tenant.alliance_id,
                        tenant.hospital_id,
                        department_id,
                        title,
                        roles_json(&roles),
                        e.recorded_at,
                        search_text(login.as_str(), display_name.value(), phone_value)
                    ],
                )
                .await?;
            }
            AccountEvent::LoginSucceeded { account_id, .. } => {
                set(tx, account_id, "last_login_at = $2", e.recorded_at).await?;
            }
            AccountEvent::LoginFailed {
                account_id: Some(account_id),
                ..
            } => {
                tx.execute(
                    "UPDATE rm_accounts SET failed_logins = failed_logins + 1 WHERE account_id = $1",
                    &args![account_id],
                )
                .await?;
            }
            AccountEvent::LoginFailed { account_id: None, .. } => {}
            AccountEvent::AccountFrozen { account_id, until, .. } => {
                set(tx, account_id, "frozen_until = $2", until).await?;
            }
            AccountEvent::AccountUnfrozen { account_id, .. } => {
                tx.execute(
                    "UPDATE rm_accounts SET frozen_until = NULL WHERE account_id = $1",
                    &args![account_id],
                )
                .await?;
            }
            AccountEvent::AccountDisabled { account_id, .. } => {
                set(tx, account_id, "status = $2", AccountStatus::Disabled.as_str()).await?;
            }
            AccountEvent::AccountEnabled { account_id, .. } => {
                set(tx, account_id, "status = $2", AccountStatus::Active.as_str()).await?;
            }
            AccountEvent::PasswordChanged { account_id, .. } => {
                set(tx, account_id, "password_changed_at = $2", e.recorded_at).await?;
            }
            AccountEvent::PhoneBound { account_id, phone } => {
                let Some(row) = tx
                    .fetch_optional(
                        "SELECT login, display_name FROM rm_accounts WHERE account_id = $1",
                        &args![account_id],
                    )
                    .await?
                else {
                    return Ok(());
                };
                let (login, display_name): (String, Option<String>) = (row.get(0)?, row.get(1)?);
                tx.execute(
                    "UPDATE rm_accounts SET phone = $2, phone_erased = $3, search_text = $4 WHERE account_id = $1",
                    &args![
                        account_id,
                        phone.value(),
                        phone.is_erased(),
                        search_text(&login, display_name.as_deref(), phone.value())
                    ],
                )
                .await?;
            }
            AccountEvent::RolesAssigned { account_id, roles, .. } => {
                set(tx, account_id, "roles = $2", roles_json(&roles)).await?;
            }
        }
        Ok(())
    }
}

/// `UPDATE rm_accounts SET <assignment using $2> WHERE account_id = $1`.
async fn set(tx: &mut DbTx, account_id: Uuid, assignment: &str, value: impl Into<Arg>) -> Result<u64, sqlx::Error> {
    tx.execute(
        &format!("UPDATE rm_accounts SET {assignment} WHERE account_id = $1"),
        &args![account_id, value.into()],
    )
    .await
}

fn roles_json(roles: &[Uuid]) -> String {
    serde_json::to_string(roles).expect("uuids serialize")
}

/// What the fuzzy search looks in: login, name and phone, lower-cased,
/// without the parts that are erased.
fn search_text(login: &str, display_name: Option<&str>, phone: Option<&str>) -> String {
    [Some(login), display_name, phone]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A `LIKE` pattern matching `query` anywhere, with `\` as the escape.
fn contains_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Whether an account may log in at all (freezing is separate and temporary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Result<Self, sqlx::Error> {
        match s {
            "active" => Ok(AccountStatus::Active),
            "disabled" => Ok(AccountStatus::Disabled),
            other => Err(sqlx::Error::Decode(format!("unknown account status {other:?}").into())),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AccountView {
    pub account_id: Uuid,
    pub login: String,
    /// `None` once the subject has been forgotten.
    pub display_name: Option<String>,
    pub display_name_erased: bool,
    /// `None` when never bound or once the subject has been forgotten.
    pub phone: Option<String>,
    pub phone_erased: bool,
    /// The level: `platform_operator`, `alliance_administrator`, …
    pub role: String,
    pub alliance_id: Option<Uuid>,
    pub hospital_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub title: Option<String>,
    /// The hospital roles (permission sets) assigned, by id.
    pub roles: Vec<Uuid>,
    pub status: AccountStatus,
    /// When the last freeze ends. A freeze that has run out stays here until
    /// the next login attempt records the thaw: compare with the clock.
    pub frozen_until: Option<DateTime<Utc>>,
    pub registered_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub password_changed_at: Option<DateTime<Utc>>,
    /// Failed login attempts since registration.
    pub failed_logins: i64,
}

const VIEW_COLUMNS: &str = "account_id, login, display_name, display_name_erased, phone, phone_erased, role, \
     alliance_id, hospital_id, department_id, title, roles, status, frozen_until, registered_at, last_login_at, \
     password_changed_at, failed_logins";

fn view(r: &DbRow) -> Result<AccountView, sqlx::Error> {
    Ok(AccountView {
        account_id: uuid_at(r, 0)?,
        login: r.get(1)?,
        display_name: r.get(2)?,
        display_name_erased: r.get(3)?,
        phone: r.get(4)?,
        phone_erased: r.get(5)?,
        role: r.get(6)?,
        alliance_id: opt_uuid_at(r, 7)?,
        hospital_id: opt_uuid_at(r, 8)?,
        department_id: opt_uuid_at(r, 9)?,
        title: r.get(10)?,
        roles: json_at(r, 11)?,
        status: AccountStatus::parse(&r.get::<String>(12)?)?,
        frozen_until: r.opt_time(13)?,
        registered_at: r.time(14)?,
        last_login_at: r.opt_time(15)?,
        password_changed_at: r.opt_time(16)?,
        failed_logins: r.get(17)?,
    })
}

pub async fn get(db: &Db, account_id: Uuid) -> Result<Option<AccountView>, ProjectionError> {
    let row = db
        .fetch_optional(
            &format!("SELECT {VIEW_COLUMNS} FROM rm_accounts WHERE account_id = $1"),
            &args![account_id],
        )
        .await?;
    Ok(row.as_ref().map(view).transpose()?)
}

/// Filters of a directory search; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    pub alliance_id: Option<Uuid>,
    pub hospital_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    /// Case-insensitive substring of the login, the name or the phone.
    pub query: Option<String>,
    /// The previous page's `next_cursor`.
    pub after: Option<String>,
    /// Clamped to 1..=200.
    pub limit: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UserPage {
    pub items: Vec<AccountView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub const MAX_PAGE: u32 = 200;

/// Accounts other than platform operators, by login, a page at a time.
pub async fn search(db: &Db, filter: &UserFilter) -> Result<UserPage, ProjectionError> {
    let mut sql = format!("SELECT {VIEW_COLUMNS} FROM rm_accounts WHERE role <> 'platform_operator'");
    let mut args: Vec<Arg> = Vec::new();
    let mut cond = |sql: &mut String, clause: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(a) = filter.alliance_id {
        cond(&mut sql, " AND alliance_id = ?", a.into());
    }
    if let Some(h) = filter.hospital_id {
        cond(&mut sql, " AND hospital_id = ?", h.into());
    }
    if let Some(d) = filter.department_id {
        cond(&mut sql, " AND department_id = ?", d.into());
    }
    if let Some(q) = filter.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        cond(
            &mut sql,
            " AND search_text LIKE ? ESCAPE '\\'",
            contains_pattern(&q.to_lowercase()).into(),
        );
    }
    if let Some(after) = &filter.after {
        cond(&mut sql, " AND login > ?", after.into());
    }
    let limit = filter.limit.clamp(1, MAX_PAGE);
    cond(&mut sql, " ORDER BY login LIMIT ?", (limit as i64 + 1).into());
    let rows = db.fetch_all(&sql, &args).await?;
    let mut items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|v| v.login.clone())
    } else {
        None
    };
    Ok(UserPage { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_domain::event::DomainEvent;

    #[test]
    fn the_projection_listens_to_every_account_event() {
        let mut wanted: Vec<&str> = AccountEvent::catalog().iter().map(|i| i.event_type).collect();
        wanted.push("SubjectForgotten");
        assert_eq!(Accounts.event_types(), wanted.as_slice());
    }

    #[test]
    fn search_text_is_lower_cased_and_leaves_out_erased_parts() {
        assert_eq!(
            search_text("dr.wang", Some("Wang Fang"), Some("+8613800138000")),
            "dr.wang wang fang +8613800138000"
        );
        assert_eq!(search_text("dr.wang", None, Some("+86138")), "dr.wang +86138");
        assert_eq!(search_text("dr.wang", None, None), "dr.wang");
        assert_eq!(search_text("li", Some("ÉMILE 李"), None), "li émile 李");
    }

    #[test]
    fn like_wildcards_in_a_query_match_only_themselves() {
        assert_eq!(contains_pattern("wang"), "%wang%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
