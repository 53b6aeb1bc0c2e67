//! Identity use cases: accounts and passwords, password and QR-scan login,
//! bearer-token authentication (cached, invalidated by events), sessions,
//! forgot-password codes.
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

// ---------------------------------------------------------------- passwords

fn argon2() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// argon2id work runs on the blocking pool, never on the async executor,
/// and at most this many at once (all cores but one), so a burst of logins —
/// or a password-guessing attack — queues behind itself instead of starving
/// every other request of CPU.
fn kdf_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

async fn kdf<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    let _permit = kdf_permits()
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(e.to_string()))
}

/// argon2id with the OWASP parameters (see [`kdf`] for where it runs).
pub async fn hash_password(password: String) -> Result<String, Error> {
    kdf(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(e.to_string()))
    })
    .await?
}

pub async fn verify_password(hash: String, password: String) -> bool {
    kdf(move || verify_blocking(&hash, &password)).await.unwrap_or(false)
}

fn verify_blocking(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Does `password` equal any of these previous hashes?
async fn reuses_history(history: Vec<String>, password: String) -> bool {
    kdf(move || history.iter().any(|h| verify_blocking(h, &password)))
        .await
        .unwrap_or(true)
}

/// A hash to verify against when the login name is unknown, so that the
/// answer takes as long as for a real account.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy_hash() -> String {
    DUMMY_HASH
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(b"not a password of anyone", &salt)
                .expect("hashing works")
                .to_string()
        })
        .clone()
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub fn token_sha256(token: &str) -> String {
    sha256_hex(token)
}

fn random_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

/// A strong random password for bootstrap accounts.
pub fn generate_password() -> String {
    let mut b = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("Ml-{}9", URL_SAFE_NO_PAD.encode(b))
}

/// Parse a password against the policy, as a problem with a stable code.
pub fn password_policy(raw: &str, login: &LoginName) -> Result<Password, Error> {
    Password::parse(raw, login).map_err(|e| Error::rejected(Kind::Invalid, "weak_password", e.to_string()))
}

// ---------------------------------------------------------------- accounts

/// Everything needed to register an account.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub account_id: Uuid,
    pub login: LoginName,
    pub display_name: String,
    pub phone: Option<PhoneNumber>,
    pub role: AccountRole,
    pub tenant: Tenant,
    pub department_id: Option<Uuid>,
    pub title: Option<String>,
    pub roles: Vec<Uuid>,
    pub time_zone: TimeZone,
    pub password: Password,
}

/// The stream, events and login guard that register an account, for callers
/// that append them together with other streams.
pub async fn account_registration(
    app: &App,
    account: NewAccount,
    metadata: &Metadata,
) -> Result<(String, Vec<NewEvent>, Guard), Error> {
    let id = account.account_id;
    let stream = account_stream(id);
    let ctx = app.ctx(metadata);
    let events = AccountDecider::decide(
        &AccountState::default(),
        AccountCommand::Register {
            account_id: id,
            login: account.login.clone(),
            display_name: PersonalData::new(id, account.display_name),
            phone: account.phone.map(|p| PersonalData::new(id, p.as_str())),
            role: account.role,
            tenant: account.tenant,
            department_id: account.department_id,
            title: account.title,
            roles: account.roles,
            time_zone: account.time_zone,
            password_hash: hash_password(account.password.expose().to_string()).await?,
        },
        &ctx,
    )?;
    let mut meta = metadata.clone();
    meta.tenant = account.tenant;
    let new = app.codec.prepare(&events, &meta, ctx.now).await?;
    let guard = Guard::Claim {
        scope: LOGIN_SCOPE.into(),
        key: account.login.as_str().to_string(),
        owner: stream.clone(),
    };
    Ok((stream, new, guard))
}

/// Map a taken login guard to the problem users expect.
pub fn login_taken(e: Error) -> Error {
    match e {
        Error::Store(StoreError::GuardTaken { scope, key }) if scope == LOGIN_SCOPE => Error::rejected(
            Kind::Conflict,
            "login_taken",
            format!("the login name '{key}' is already taken"),
        ),
        other => other,
    }
}

/// Create the platform operator unless it exists. Returns the password when
/// this call created the account and generated it.
pub async fn bootstrap_operator(app: &App, password: Option<String>) -> Result<Option<String>, Error> {
    if app.store.guard_owner(LOGIN_SCOPE, OPERATOR_LOGIN).await?.is_some() {
        return Ok(None);
    }
    let generated = password.is_none();
    let password = password.unwrap_or_else(generate_password);
    let login = LoginName::parse(OPERATOR_LOGIN).expect("valid login");
    let account = NewAccount {
        account_id: Uuid::now_v7(),
        login: login.clone(),
        display_name: "Platform Operator".into(),
        phone: None,
        role: AccountRole::PlatformOperator,
        tenant: Tenant::PLATFORM,
        department_id: None,
        title: None,
        roles: vec![],
        time_zone: TimeZone::DEFAULT,
        password: password_policy(&password, &login)?,
    };
    let (stream, events, guard) = account_registration(app, account, &Metadata::system()).await?;
    match app
        .append(AppendRequest::stream(stream, ExpectedVersion::NoStream, events).with_guard(guard))
        .await
    {
        Ok(_) => Ok(generated.then_some(password)),
        // Another node bootstrapped at the same moment.
        Err(StoreError::GuardTaken { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn load_account(app: &App, account_id: Uuid) -> Result<(Account, u64), Error> {
    let (state, version) = app.load::<AccountDecider>(&account_stream(account_id)).await?;
    let account = state
        .account
        .ok_or_else(|| Error::rejected(Kind::NotFound, "account_not_found", "no such account"))?;
    Ok((account, version))
}

// ---------------------------------------------------------------- login

#[derive(Clone, Debug)]
pub struct LoginSuccess {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub position: u64,
}

fn invalid_credentials() -> Error {
    Error::rejected(
        Kind::Unauthenticated,
        "invalid_credentials",
        "login name or password is wrong",
    )
}

/// Record a login attempt on the account and, when it succeeds, start a
/// session; `extra` streams (e.g. a redeemed QR ticket) commit with it.
async fn attempt_login(
    app: &App,
    account_id: Uuid,
    check_password: Option<String>,
    client: ClientKind,
    method: &str,
    metadata: &Metadata,
    extra: impl Fn(Uuid) -> Result<Option<(String, ExpectedVersion, Vec<NewEvent>)>, Error>,
) -> Result<LoginSuccess, Error> {
    let stream = account_stream(account_id);
    for _ in 0..5 {
        let (account, version) = load_account(app, account_id).await?;
        let matches = match &check_password {
            Some(p) => verify_password(account.password_hash.clone(), p.clone()).await,
            None => true,
        };
        let session_id = Uuid::now_v7();
        let ctx = app.ctx(metadata);
        let state = AccountState {
            account: Some(account.clone()),
        };
        let events = AccountDecider::decide(
            &state,
            AccountCommand::RecordLoginAttempt {
                password_matches: matches,
                session_id,
                client,
            },
            &ctx,
        )?;
        let mut meta = metadata.clone();
        meta.tenant = account.tenant;
        let new = app.codec.prepare(&events, &meta, ctx.now).await?;
        let mut request = AppendRequest::stream(&stream, ExpectedVersion::from_loaded(version), new);
        let failure = events.iter().find_map(|e| match e {
            AccountEvent::LoginFailed { reason, .. } => Some(*reason),
            _ => None,
        });
        let frozen_until = events
            .iter()
            .find_map(|e| match e {
                AccountEvent::AccountFrozen { until, .. } => Some(*until),
                _ => None,
            })
            .or_else(|| account.frozen_at(ctx.now));
        let mut success = None;
        if failure.is_none() {
            let token = random_secret("mlt_");
            let token_hash = token_sha256(&token);
            let session_events = Session::decide(
                &Default::default(),
                SessionCommand::Start {
                    session_id,
                    account_id,
                    role: account.role,
                    tenant: account.tenant,
                    client,
                    token_sha256: token_hash.clone(),
                    generation: account.session_generation,
                    method: method.to_string(),
                },
                &ctx,
            )?;
            let expires_at = match &session_events[0] {
                medledger_domain::identity::session::SessionEvent::SessionStarted { expires_at, .. } => *expires_at,
                _ => unreachable!("a start starts"),
            };
            let mut session_meta = meta.clone();
            session_meta.actor = Some(account_id);
            session_meta.actor_role = Some(account.role);
            let new_session = app.codec.prepare(&session_events, &session_meta, ctx.now).await?;
            request = request
                .and_stream(session_stream(session_id), ExpectedVersion::NoStream, new_session)
                .with_guard(Guard::Claim {
                    scope: TOKEN_SCOPE.into(),
                    key: token_hash,
                    owner: session_stream(session_id),
                });
            if let Some((s, expected, events)) = extra(session_id)? {
                request = request.and_stream(s, expected, events);
            }
            success = Some((token, expires_at));
        }
        match app.append(request).await {
            Ok(r) => {
                let froze_now = events.iter().any(|e| matches!(e, AccountEvent::AccountFrozen { .. }));
                return match (success, failure) {
                    (Some((token, expires_at)), None) => Ok(LoginSuccess {
                        token,
                        expires_at,
                        account_id,
                        session_id,
                        position: r.last_position,
                    }),
                    (_, Some(LoginFailure::AccountFrozen)) => Err(frozen(frozen_until.unwrap_or(ctx.now))),
                    (_, Some(LoginFailure::WrongPassword)) if froze_now => Err(frozen(frozen_until.unwrap_or(ctx.now))),
                    (_, Some(LoginFailure::AccountDisabled)) => Err(Error::rejected(
                        Kind::Unauthenticated,
                        "account_disabled",
                        "this account is disabled",
                    )),
                    _ => Err(invalid_credentials()),
                };
            }
            Err(StoreError::WrongExpectedVersion { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::rejected(
        Kind::Conflict,
        "concurrent_modification",
        "too many simultaneous logins for this account; try again",
    ))
}

fn frozen(until: DateTime<Utc>) -> Error {
    Error::rejected(
        Kind::Unauthenticated,
        "account_frozen",
        format!(
            "this account is frozen after too many failed logins until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    )
}

/// Check a password and record the attempt. Every attempt is an event: a
/// failure is recorded and *then* reported as an error.
pub async fn login(
    app: &App,
    login_raw: &str,
    password: String,
    client: ClientKind,
    metadata: &Metadata,
) -> Result<LoginSuccess, Error> {
    let owner = match LoginName::parse(login_raw) {
        Ok(l) => app.store.guard_owner(LOGIN_SCOPE, l.as_str()).await?,
        Err(_) => None,
    };
    let Some(account_id) = owner
        .as_deref()
        .and_then(|s| s.strip_prefix("account-"))
        .and_then(|s| s.parse().ok())
    else {
        let _ = verify_password(dummy_hash(), password).await;
        let attempt = AccountEvent::LoginFailed {
            account_id: None,
            login: login_raw.chars().take(64).collect(),
            reason: LoginFailure::UnknownLogin,
            client,
            local_date: None,
        };
        let new = app.codec.prepare(&[attempt], metadata, app.clock.now()).await?;
        app.append(AppendRequest::stream(UNKNOWN_LOGIN_STREAM, ExpectedVersion::Any, new))
            .await?;
        return Err(invalid_credentials());
    };
    attempt_login(app, account_id, Some(password), client, "password", metadata, |_| {
        Ok(None)
    })
    .await
}

// ---------------------------------------------------------------- authentication

/// Token → principal lookups, cached; entries are dropped when events say
/// the session or account changed (see [`AuthCache::invalidate_for`]).
#[derive(Clone)]
pub struct AuthCache {
    cache: moka::sync::Cache<String, Arc<CachedSession>>,
}

#[derive(Debug)]
struct CachedSession {
    principal: Principal,
    valid_until: DateTime<Utc>,
    touch_after: DateTime<Utc>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(StdDuration::from_secs(60))
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl AuthCache {
    /// Does an event of this type end or change sessions?
    pub fn is_revoking(event_type: &str) -> bool {
        matches!(
            event_type,
            "SessionEnded"
                | "AccountFrozen"
                | "AccountDisabled"
                | "PasswordChanged"
                | "RolesAssigned"
                | "RolePermissionsChanged"
        )
    }

    /// Forget what an event makes stale. Returns true if it was relevant.
    pub fn invalidate_for(&self, event_type: &str, payload: &serde_json::Value) -> bool {
        let id = |k: &str| {
            payload
                .get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok())
        };
        match event_type {
            "SessionEnded" => {
                if let Some(s) = id("session_id") {
                    let _ = self
                        .cache
                        .invalidate_entries_if(move |_, v| v.principal.session_id == s);
                }
                true
            }
            "AccountFrozen" | "AccountDisabled" | "PasswordChanged" | "RolesAssigned" => {
                if let Some(a) = id("account_id") {
                    let _ = self
                        .cache
                        .invalidate_entries_if(move |_, v| v.principal.account_id == a);
                }
                true
            }
            "RolePermissionsChanged" => {
                self.clear();
                true
            }
            _ => false,
        }
    }

    /// Drop everything (e.g. after the bus skipped events).
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn session_gone() -> Error {
    Error::rejected(
        Kind::Unauthenticated,
        "session_expired",
        "the session has ended or expired",
    )
}

/// The principal behind a bearer token. Decided from the session's and the
/// account's own streams; cached until an event invalidates it.
pub async fn authenticate(app: &App, token: &str) -> Result<Principal, Error> {
    let cache = &app.auth;
    let key = token_sha256(token);
    let now = app.clock.now();
    if let Some(hit) = cache.cache.get(&key) {
        if now < hit.valid_until && now < hit.touch_after {
            return Ok(hit.principal.clone());
        }
        cache.cache.invalidate(&key);
    }
    let Some(stream) = app.store.guard_owner(TOKEN_SCOPE, &key).await? else {
        return Err(Error::unauthenticated());
    };
    let (state, _) = app.load::<Session>(&stream).await?;
    let s = state.active_at(now).ok_or_else(session_gone)?.clone();
    let (account, _) = load_account(app, s.account_id).await?;
    if account.disabled || account.frozen_at(now).is_some() || account.session_generation != s.generation {
        return Err(session_gone());
    }
    if s.wants_touch(now) {
        let meta = Metadata {
            actor: Some(s.account_id),
            actor_role: Some(s.role),
            tenant: s.tenant,
            client: s.client,
            ..Metadata::system()
        };
        // Losing this race to a concurrent request's touch is harmless.
        match app
            .execute::<Session>(&stream, SessionCommand::Touch, &meta, vec![])
            .await
        {
            Ok(_) | Err(Error::Rejected { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let principal = Principal {
        account_id: s.account_id,
        session_id: s.session_id,
        role: account.role,
        tenant: account.tenant,
        client: s.client,
        permissions: permissions_of(app, &account).await?,
    };
    let touch_after =
        now.max(s.last_active) + chrono::Duration::minutes(medledger_domain::identity::session::TOUCH_EVERY_MINUTES);
    cache.cache.insert(
        key,
        Arc::new(CachedSession {
            principal: principal.clone(),
            valid_until: s.expires_at.min(s.idle_deadline().max(now)),
            touch_after,
        }),
    );
    Ok(principal)
}

/// The permissions an account holds: its roles', and every `admin.*` one for
/// a hospital administrator.
pub async fn permissions_of(app: &App, account: &Account) -> Result<BTreeSet<Permission>, Error> {
    let mut out = BTreeSet::new();
    if account.role == AccountRole::HospitalAdministrator {
        out.extend(Permission::ADMIN);
    }
    for role_id in &account.roles {
        let (state, _) = app.load::<Role>(&format!("role-{role_id}")).await?;
        if let Some(r) = state.role {
            if Some(r.hospital_id) == account.tenant.hospital_id {
                out.extend(r.permissions);
            }
        }
    }
    Ok(out)
}

/// End the caller's session.
pub async fn logout(app: &App, principal: &Principal, metadata: &Metadata) -> Result<u64, Error> {
    end_session(app, principal, principal.session_id, "logout", metadata).await
}

/// End one of the caller's own sessions.
pub async fn end_session(
    app: &App,
    principal: &Principal,
    session_id: Uuid,
    reason: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let stream = session_stream(session_id);
    let (state, _) = app.load::<Session>(&stream).await?;
    let owner = match &state {
        medledger_domain::identity::session::SessionState::Active(s)
        | medledger_domain::identity::session::SessionState::Ended(s) => Some(s.account_id),
        _ => None,
    };
    if owner != Some(principal.account_id) {
        return Err(Error::rejected(Kind::NotFound, "session_not_found", "no such session"));
    }
    let r = app
        .execute::<Session>(&stream, SessionCommand::End { reason: reason.into() }, metadata, vec![])
        .await?;
    Ok(r.position())
}

// ---------------------------------------------------------------- own account

/// Change the caller's password: the current one must be right, the new one
/// must meet the policy and differ from the last five. Every session of the
/// account ends.
pub async fn change_password(
    app: &App,
    principal: &Principal,
    current: String,
    new: String,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let (account, _) = load_account(app, principal.account_id).await?;
    if !verify_password(account.password_hash.clone(), current).await {
        return Err(Error::rejected(
            Kind::Forbidden,
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let reason = if account.password_chosen_by_owner {
        PasswordChange::Change
    } else {
        PasswordChange::Initial
    };
    set_password(app, principal.account_id, &new, reason, metadata, None).await
}

/// Policy, history, hash, append (with `extra` streams in the same commit).
async fn set_password(
    app: &App,
    account_id: Uuid,
    new: &str,
    reason: PasswordChange,
    metadata: &Metadata,
    extra: Option<(String, ExpectedVersion, Vec<NewEvent>)>,
) -> Result<u64, Error> {
    let (account, version) = load_account(app, account_id).await?;
    let password = password_policy(new, &account.login)?;
    let reused = reuses_history(account.password_history.iter().cloned().collect(), new.to_string()).await;
    let hash = hash_password(password.expose().to_string()).await?;
    let ctx = app.ctx(metadata);
    let events = AccountDecider::decide(
        &AccountState { account: Some(account) },
        AccountCommand::ChangePassword {
            password_hash: hash,
            reused,
            reason,
        },
        &ctx,
    )?;
    let new_events = app.codec.prepare(&events, metadata, ctx.now).await?;
    let mut request = AppendRequest::stream(
        account_stream(account_id),
        ExpectedVersion::from_loaded(version),
        new_events,
    );
    if let Some((s, e, ev)) = extra {
        request = request.and_stream(s, e, ev);
    }
    Ok(app.append(request).await?.last_position)
}

pub async fn bind_phone(
    app: &App,
    principal: &Principal,
    phone: PhoneNumber,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let id = principal.account_id;
    let r = app
        .execute::<AccountDecider>(
            &account_stream(id),
            AccountCommand::BindPhone {
                phone: PersonalData::new(id, phone.as_str()),
            },
            metadata,
            vec![],
        )
        .await?;
    Ok(r.position())
}

// ---------------------------------------------------------------- QR-scan login

#[derive(Clone, Debug)]
pub struct IssuedTicket {
    pub ticket_id: Uuid,
    pub secret: String,
    pub expires_at: DateTime<Utc>,
    pub position: u64,
}

impl IssuedTicket {
    /// What the QR code encodes.
    pub fn qr_payload(&self) -> String {
        format!("medledger-login:{}:{}", self.ticket_id, self.secret)
    }
}

pub async fn issue_login_ticket(app: &App, metadata: &Metadata) -> Result<IssuedTicket, Error> {
    let ticket_id = Uuid::now_v7();
    let secret = random_secret("");
    let r = app
        .execute::<LoginTicket>(
            &ticket_stream(ticket_id),
            LoginTicketCommand::Issue {
                ticket_id,
                secret_sha256: sha256_hex(&secret),
            },
            metadata,
            vec![],
        )
        .await?;
    let expires_at = match r.events.first() {
        Some(medledger_domain::identity::login_ticket::LoginTicketEvent::LoginTicketIssued { expires_at, .. }) => {
            *expires_at
        }
        _ => return Err(Error::Internal("ticket not issued".into())),
    };
    Ok(IssuedTicket {
        ticket_id,
        secret,
        expires_at,
        position: r.position(),
    })
}

/// Load a ticket, checking its secret in constant time. A wrong secret
/// looks like a missing ticket.
async fn load_ticket(app: &App, ticket_id: Uuid, secret: &str) -> Result<(LoginTicketState, u64), Error> {
    let stream = ticket_stream(ticket_id);
    let raw = app.store.read_stream(&stream, 0).await?;
    let stored = raw
        .first()
        .and_then(|e| e.payload.get("secret_sha256"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let given = sha256_hex(secret);
    let ok = stored
        .map(|s| s.len() == given.len() && s.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
        .unwrap_or(false);
    if !ok {
        return Err(Error::rejected(
            Kind::NotFound,
            "ticket_not_found",
            "no such login ticket",
        ));
    }
    app.load::<LoginTicket>(&stream).await
}

/// A logged-in mobile client confirms a ticket it scanned. The account must
/// have a bound phone and a password of its own choosing first.
pub async fn confirm_login_ticket(
    app: &App,
    principal: &Principal,
    ticket_id: Uuid,
    secret: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    if principal.client != ClientKind::Mobile {
        return Err(Error::rejected(
            Kind::Forbidden,
            "mobile_client_required",
            "login tickets are confirmed from a logged-in mobile client",
        ));
    }
    load_ticket(app, ticket_id, secret).await?;
    let (account, _) = load_account(app, principal.account_id).await?;
    if account.phone.is_none() {
        return Err(Error::rejected(
            Kind::Conflict,
            "phone_binding_required",
            "bind a phone number before the first QR login",
        ));
    }
    if !account.password_chosen_by_owner {
        return Err(Error::rejected(
            Kind::Conflict,
            "initial_password_required",
            "set your own password before the first QR login",
        ));
    }
    let r = app
        .execute::<LoginTicket>(
            &ticket_stream(ticket_id),
            LoginTicketCommand::Confirm {
                account_id: principal.account_id,
                by_session: principal.session_id,
            },
            metadata,
            vec![],
        )
        .await?;
    Ok(r.position())
}

/// What the PC client learns when it polls its ticket.
#[derive(Clone, Debug)]
pub enum TicketPoll {
    Pending { expires_at: DateTime<Utc> },
    LoggedIn(LoginSuccess),
}

/// Redeem a confirmed ticket for a session (once), or say it is pending.
pub async fn redeem_login_ticket(
    app: &App,
    ticket_id: Uuid,
    secret: &str,
    client: ClientKind,
    metadata: &Metadata,
) -> Result<TicketPoll, Error> {
    let (state, version) = load_ticket(app, ticket_id, secret).await?;
    let ctx = app.ctx(metadata);
    let account_id = match &state {
        LoginTicketState::Issued { expires_at, .. } if ctx.now < *expires_at => {
            return Ok(TicketPoll::Pending {
                expires_at: *expires_at,
            })
        }
        LoginTicketState::Confirmed { account_id, .. } => *account_id,
        _ => Uuid::nil(),
    };
    // Let the decider say why (expired, used) if it cannot be redeemed.
    LoginTicket::decide(
        &state,
        LoginTicketCommand::Redeem {
            session_id: Uuid::nil(),
        },
        &ctx,
    )?;
    let app2 = app.clone();
    let meta = metadata.clone();
    let extra = move |session_id: Uuid| -> Result<Option<(String, ExpectedVersion, Vec<NewEvent>)>, Error> {
        let events = LoginTicket::decide(&state, LoginTicketCommand::Redeem { session_id }, &app2.ctx(&meta))?;
        let (event_type, payload) = crate::codec::encode(&events[0]);
        let schema = medledger_domain::DomainEvent::schema_version(&events[0]);
        let meta_json = serde_json::to_value(&meta).expect("metadata serializes");
        Ok(Some((
            ticket_stream(ticket_id),
            ExpectedVersion::from_loaded(version),
            vec![NewEvent::new(event_type, schema, payload, meta_json, app2.clock.now())],
        )))
    };
    let ok = attempt_login(app, account_id, None, client, "qr", metadata, extra).await?;
    Ok(TicketPoll::LoggedIn(ok))
}

// ---------------------------------------------------------------- forgot password

/// Where reset codes and other messages go. The embedded default writes
/// them to the log and to the in-site outbox table.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + 'static {
    fn channel(&self) -> &'static str;
    async fn send(&self, account_id: Uuid, subject: &str, body: &str) -> Result<(), Error>;
}

/// The embedded default notifier: `notification_outbox` plus a log line.
pub struct OutboxNotifier {
    pub db: crate::db::Db,
    pub clock: Arc<dyn crate::clock::Clock>,
}

#[async_trait::async_trait]
impl Notifier for OutboxNotifier {
    fn channel(&self) -> &'static str {
        "outbox"
    }

    async fn send(&self, account_id: Uuid, subject: &str, body: &str) -> Result<(), Error> {
        tracing::info!(%account_id, subject, body, "notification (outbox)");
        self.db
            .execute(
                "INSERT INTO notification_outbox (id, account_id, channel, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &crate::args![Uuid::now_v7(), account_id, "outbox", subject, body, self.clock.now()],
            )
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(())
    }
}

fn reset_code_hash(reset_id: Uuid, code: &str) -> String {
    sha256_hex(&format!("{reset_id}:{code}"))
}

/// Send a reset code if the login exists. The answer is the same either way
/// (no account enumeration); the request itself is recorded only for real accounts.
pub async fn request_password_reset(
    app: &App,
    notifier: &dyn Notifier,
    login_raw: &str,
    metadata: &Metadata,
) -> Result<(), Error> {
    let Ok(login) = LoginName::parse(login_raw) else {
        return Ok(());
    };
    let Some(owner) = app.store.guard_owner(LOGIN_SCOPE, login.as_str()).await? else {
        return Ok(());
    };
    let Some(account_id) = owner.strip_prefix("account-").and_then(|s| s.parse::<Uuid>().ok()) else {
        return Ok(());
    };
    let reset_id = Uuid::now_v7();
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
    let ctx = app.ctx(metadata);
    let events = PasswordReset::decide(
        &PasswordResetState::None,
        PasswordResetCommand::Issue {
            reset_id,
            account_id,
            code_sha256: reset_code_hash(reset_id, &code),
            channel: notifier.channel().into(),
        },
        &ctx,
    )?;
    let new = app.codec.prepare(&events, metadata, ctx.now).await?;
    // The newest code replaces any earlier one.
    let request = AppendRequest::stream(reset_stream(reset_id), ExpectedVersion::NoStream, new)
        .with_guard(Guard::Release {
            scope: RESET_SCOPE.into(),
            key: account_id.to_string(),
        })
        .with_guard(Guard::Claim {
            scope: RESET_SCOPE.into(),
            key: account_id.to_string(),
            owner: reset_stream(reset_id),
        });
    app.append(request).await?;
    notifier
        .send(
            account_id,
            "MedLedger password reset",
            &format!(
                "Your MedLedger password reset code is {code}. It expires in {} minutes.",
                medledger_domain::identity::password_reset::CODE_LIFETIME_MINUTES
            ),
        )
        .await
}

/// Set a new password with a reset code. Returns the last event's position.
pub async fn reset_password(
    app: &App,
    login_raw: &str,
    code: &str,
    new_password: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let no_code = || Error::rejected(Kind::Invalid, "reset_code_invalid", "the reset code is wrong");
    let login = LoginName::parse(login_raw).map_err(|_| no_code())?;
    let account_id = app
        .store
        .guard_owner(LOGIN_SCOPE, login.as_str())
        .await?
        .and_then(|o| o.strip_prefix("account-").and_then(|s| s.parse::<Uuid>().ok()))
        .ok_or_else(no_code)?;
    let stream = app
        .store
        .guard_owner(RESET_SCOPE, &account_id.to_string())
        .await?
        .ok_or_else(no_code)?;
    // Check the new password before spending a try of the code.
    password_policy(new_password, &login)?;
    let (state, version) = app.load::<PasswordReset>(&stream).await?;
    let reset_id = match &state {
        PasswordResetState::Open { id, .. } => *id,
        _ => Uuid::nil(),
    };
    let matches = code.len() == 6 && reset_code_hash(reset_id, code) == stored_code_hash(app, &stream).await?;
    let ctx = app.ctx(metadata);
    let events = PasswordReset::decide(&state, PasswordResetCommand::Try { code_matches: matches }, &ctx)?;
    let new = app.codec.prepare(&events, metadata, ctx.now).await?;
    if !matches {
        app.append(AppendRequest::stream(
            &stream,
            ExpectedVersion::from_loaded(version),
            new,
        ))
        .await?;
        let killed = events
            .iter()
            .any(|e| matches!(e, PasswordResetEvent::ResetCodeKilled { .. }));
        return Err(if killed {
            Error::rejected(Kind::Gone, "reset_code_dead", "too many wrong codes: request a new one")
        } else {
            no_code()
        });
    }
    set_password(
        app,
        account_id,
        new_password,
        PasswordChange::Reset,
        metadata,
        Some((stream, ExpectedVersion::from_loaded(version), new)),
    )
    .await
}

async fn stored_code_hash(app: &App, stream: &str) -> Result<String, Error> {
    Ok(app
        .store
        .read_stream(stream, 0)
        .await?
        .first()
        .and_then(|e| e.payload.get("code_sha256"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string())
}
