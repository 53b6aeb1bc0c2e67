//! Identity use cases: accounts and passwords, password and QR-scan login,
//! bearer-token authentication (cached, invalidated by events), sessions,
//! forgot-password codes.
//!
//! - [`passwords`]: argon2id (bounded, off the executor), policy, secrets;
//! - [`accounts`]: registering accounts; the operator's bootstrap;
//! - [`login`]: password login, every attempt recorded;
//! - [`authentication`]: bearer tokens, the event-invalidated cache, permissions;
//! - [`own_account`]: an account's own password and phone;
//! - [`qr_login`]: QR-scan login tickets;
//! - [`password_reset`]: forgot-password codes and the notifier.
//!
//! Uniqueness and lookups that decisions depend on go through guards written
//! with the append (`login` → account stream, `session-token` → session
//! stream, `password-reset` → the account's open reset), never through read
//! models.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use medledger_domain::identity::account::{
    Account, AccountCommand, AccountDecider, AccountEvent, AccountState, LoginFailure, PasswordChange,
};
use medledger_domain::identity::login_ticket::{LoginTicket, LoginTicketCommand, LoginTicketState};
use medledger_domain::identity::password_reset::{
    PasswordReset, PasswordResetCommand, PasswordResetEvent, PasswordResetState,
};
use medledger_domain::identity::session::{Session, SessionCommand};
use medledger_domain::identity::{AccountRole, ClientKind, LoginName, Password, Tenant};
use medledger_domain::organization::role::Role;
use medledger_domain::organization::{Permission, PhoneNumber, TimeZone};
use medledger_domain::pii::PersonalData;
use medledger_domain::Decider;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::App;
use crate::codec::Metadata;
use crate::error::{Error, Kind};
use crate::store::{AppendRequest, ExpectedVersion, Guard, NewEvent, StoreError};

pub const LOGIN_SCOPE: &str = "login";
pub const TOKEN_SCOPE: &str = "session-token";
pub const RESET_SCOPE: &str = "password-reset";
pub const OPERATOR_LOGIN: &str = "operator";
/// Attempts for login names that match no account are filed here.
pub const UNKNOWN_LOGIN_STREAM: &str = "loginattempt-unknown";

pub fn account_stream(id: Uuid) -> String {
    format!("account-{id}")
}

pub fn session_stream(id: Uuid) -> String {
    format!("session-{id}")
}

pub fn ticket_stream(id: Uuid) -> String {
    format!("loginticket-{id}")
}

pub fn reset_stream(id: Uuid) -> String {
    format!("passwordreset-{id}")
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub role: AccountRole,
    pub tenant: Tenant,
    pub client: ClientKind,
    /// Granted through the account's roles (and the administrator level).
    pub permissions: BTreeSet<Permission>,
}

impl Principal {
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

pub mod accounts;
pub mod authentication;
pub mod login;
pub mod own_account;
pub mod password_reset;
pub mod passwords;
pub mod qr_login;

pub use accounts::*;
pub use authentication::*;
pub use login::*;
pub use own_account::*;
pub use password_reset::*;
pub use passwords::*;
pub use qr_login::*;
