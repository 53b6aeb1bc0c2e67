//! The account directory: who exists, their role and tenant, their display
//! name (decrypted for search; erased when the subject is forgotten), and
//! their last login.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::decode;
use medledger_commands::db::{Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::administration::AdministrationEvent;
use medledger_domain::identity::account::AccountEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::runner::{Projection, ProjectionError};

pub struct Accounts;

pub const NAME: &str = "accounts";

#[async_trait]
impl Projection for Accounts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["AccountRegistered", "LoginSucceeded", "LoginFailed", "SubjectForgotten"]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_accounts"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if e.event_type == "SubjectForgotten" {
            if let AdministrationEvent::SubjectForgotten { subject_id, .. } = decode(e)? {
                tx.execute(
                    "UPDATE rm_accounts SET display_name = NULL, display_name_erased = TRUE WHERE account_id = $1",
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
                role,
                tenant,
                ..
            } => {
                tx.execute(
                    "INSERT INTO rm_accounts (account_id, login, display_name, display_name_erased, role, alliance_id, hospital_id, registered_at, failed_logins) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) ON CONFLICT (account_id) DO NOTHING",
                    &args![
                        account_id,
                        login.as_str(),
                        display_name.value(),
                        display_name.is_erased(),
                        serde_json::to_value(role).ok().and_then(|v| v.as_str().map(String::from)),
                        tenant.alliance_id,
                        tenant.hospital_id,
                        e.recorded_at
                    ],
                )
                .await?;
            }
            AccountEvent::LoginSucceeded { account_id, .. } => {
                tx.execute(
                    "UPDATE rm_accounts SET last_login_at = $2 WHERE account_id = $1",
                    &args![account_id, e.recorded_at],
                )
                .await?;
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
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AccountView {
    pub account_id: Uuid,
    pub login: String,
    /// `None` once the subject has been forgotten.
    pub display_name: Option<String>,
    pub display_name_erased: bool,
    pub role: String,
    pub alliance_id: Option<String>,
    pub hospital_id: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub failed_logins: i64,
}

pub async fn get(db: &Db, account_id: Uuid) -> Result<Option<AccountView>, ProjectionError> {
    let Some(r) = db
        .fetch_optional(
            "SELECT account_id, login, display_name, display_name_erased, role, alliance_id, hospital_id, registered_at, last_login_at, failed_logins \
             FROM rm_accounts WHERE account_id = $1",
            &args![account_id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(AccountView {
        account_id,
        login: r.get(1)?,
        display_name: r.get(2)?,
        display_name_erased: r.get(3)?,
        role: r.get(4)?,
        alliance_id: r.get(5)?,
        hospital_id: r.get(6)?,
        registered_at: r.time(7)?,
        last_login_at: r.opt_time(8)?,
        failed_logins: r.get(9)?,
    }))
}
