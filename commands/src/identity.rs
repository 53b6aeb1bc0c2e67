//! Identity use cases: bootstrapping the platform operator, password login,
//! bearer-token authentication, logout.
//!
//! Uniqueness and lookups that decisions depend on go through guards written
//! with the append (`login` → account stream, `session-token` → session
//! stream), never through read models.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use medledger_domain::identity::account::{AccountCommand, AccountDecider, AccountEvent, LoginFailure};
use medledger_domain::identity::session::{Session, SessionCommand};
use medledger_domain::identity::{AccountRole, ClientKind, LoginName, Tenant};
use medledger_domain::pii::PersonalData;
use medledger_domain::Decider;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::App;
use crate::codec::Metadata;
use crate::error::{Error, Kind};
use crate::store::{AppendRequest, ExpectedVersion, Guard, StoreError};

pub const LOGIN_SCOPE: &str = "login";
pub const TOKEN_SCOPE: &str = "session-token";
pub const OPERATOR_LOGIN: &str = "operator";
/// Absolute lifetime of a session.
pub const SESSION_LIFETIME_HOURS: i64 = 12;
/// Attempts for login names that match no account are filed here.
pub const UNKNOWN_LOGIN_STREAM: &str = "loginattempt-unknown";

pub fn account_stream(id: Uuid) -> String {
    format!("account-{id}")
}

pub fn session_stream(id: Uuid) -> String {
    format!("session-{id}")
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub role: AccountRole,
    pub tenant: Tenant,
    pub client: ClientKind,
}

fn argon2() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// argon2id, computed on the blocking pool so logins never stall the executor.
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(e.to_string()))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

pub async fn verify_password(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
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

pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("mlt_{}", URL_SAFE_NO_PAD.encode(b))
}

/// A strong random password for bootstrap accounts.
pub fn generate_password() -> String {
    let mut b = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("Ml-{}9", URL_SAFE_NO_PAD.encode(b))
}

/// Create the platform operator unless it exists. Returns the password when
/// this call created the account and generated it.
pub async fn bootstrap_operator(app: &App, password: Option<String>) -> Result<Option<String>, Error> {
    if app.store.guard_owner(LOGIN_SCOPE, OPERATOR_LOGIN).await?.is_some() {
        return Ok(None);
    }
    let generated = password.is_none();
    let password = password.unwrap_or_else(generate_password);
    let account_id = Uuid::now_v7();
    let stream = account_stream(account_id);
    let command = AccountCommand::Register {
        account_id,
        login: LoginName::parse(OPERATOR_LOGIN).expect("valid login"),
        display_name: PersonalData::new(account_id, "Platform Operator"),
        role: AccountRole::PlatformOperator,
        tenant: Tenant::PLATFORM,
        password_hash: hash_password(password.clone()).await?,
    };
    let guard = Guard::Claim {
        scope: LOGIN_SCOPE.into(),
        key: OPERATOR_LOGIN.into(),
        owner: stream.clone(),
    };
    match app
        .execute::<AccountDecider>(&stream, command, &Metadata::system(), vec![guard])
        .await
    {
        Ok(_) => Ok(generated.then_some(password)),
        // Another node bootstrapped at the same moment.
        Err(Error::Store(StoreError::GuardTaken { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Clone, Debug)]
pub struct LoginSuccess {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub position: u64,
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
    let failed = |code: &'static str, msg: &str| Error::rejected(Kind::Unauthenticated, code, msg.to_string());
    let owner = match LoginName::parse(login_raw) {
        Ok(l) => app.store.guard_owner(LOGIN_SCOPE, l.as_str()).await?,
        Err(_) => None,
    };
    let Some(stream) = owner else {
        let _ = verify_password(dummy_hash(), password).await;
        let attempt = AccountEvent::LoginFailed {
            account_id: None,
            login: login_raw.chars().take(64).collect(),
            reason: LoginFailure::UnknownLogin,
            client,
        };
        let new = app.codec.prepare(&[attempt], metadata, app.clock.now()).await?;
        app.store
            .append(AppendRequest::stream(UNKNOWN_LOGIN_STREAM, ExpectedVersion::Any, new))
            .await?;
        return Err(failed("invalid_credentials", "login name or password is wrong"));
    };

    for _ in 0..5 {
        let (state, version) = app.load::<AccountDecider>(&stream).await?;
        let Some(account) = state.account.clone() else {
            return Err(Error::Internal(format!("guard points at empty stream {stream}")));
        };
        let matches = verify_password(account.password_hash.clone(), password.clone()).await;
        let session_id = Uuid::now_v7();
        let ctx = app.ctx(metadata);
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
        let account_append = AppendRequest::stream(&stream, ExpectedVersion::from_loaded(version), new);
        let outcome = match events.first() {
            Some(AccountEvent::LoginSucceeded { .. }) => {
                let token = new_token();
                let token_hash = token_sha256(&token);
                let expires_at = ctx.now + Duration::hours(SESSION_LIFETIME_HOURS);
                let session_events = Session::decide(
                    &Default::default(),
                    SessionCommand::Start {
                        session_id,
                        account_id: account.id,
                        role: account.role,
                        tenant: account.tenant,
                        client,
                        token_sha256: token_hash.clone(),
                        expires_at,
                    },
                    &ctx,
                )?;
                let mut session_meta = meta.clone();
                session_meta.actor = Some(account.id);
                session_meta.actor_role = Some(account.role);
                let new_session = app.codec.prepare(&session_events, &session_meta, ctx.now).await?;
                let request = account_append
                    .and_stream(session_stream(session_id), ExpectedVersion::NoStream, new_session)
                    .with_guard(Guard::Claim {
                        scope: TOKEN_SCOPE.into(),
                        key: token_hash,
                        owner: session_stream(session_id),
                    });
                app.store.append(request).await.map(|r| {
                    Ok(LoginSuccess {
                        token,
                        expires_at,
                        account_id: account.id,
                        session_id,
                        position: r.last_position,
                    })
                })
            }
            Some(AccountEvent::LoginFailed { reason, .. }) => {
                let reason = *reason;
                app.store.append(account_append).await.map(|_| {
                    Err(match reason {
                        LoginFailure::AccountDisabled => failed("account_disabled", "this account is disabled"),
                        _ => failed("invalid_credentials", "login name or password is wrong"),
                    })
                })
            }
            _ => return Err(Error::Internal("login decided nothing".into())),
        };
        match outcome {
            Ok(result) => return result,
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

/// The principal behind a bearer token, decided from the session's own stream.
pub async fn authenticate(app: &App, token: &str) -> Result<Principal, Error> {
    let Some(stream) = app.store.guard_owner(TOKEN_SCOPE, &token_sha256(token)).await? else {
        return Err(Error::unauthenticated());
    };
    let (state, _) = app.load::<Session>(&stream).await?;
    let now = app.clock.now();
    let s = state.active_at(now).ok_or_else(|| {
        Error::rejected(
            Kind::Unauthenticated,
            "session_expired",
            "the session has ended or expired",
        )
    })?;
    Ok(Principal {
        account_id: s.account_id,
        session_id: s.session_id,
        role: s.role,
        tenant: s.tenant,
        client: s.client,
    })
}

/// End the caller's session.
pub async fn logout(app: &App, principal: &Principal, metadata: &Metadata) -> Result<u64, Error> {
    let r = app
        .execute::<Session>(
            &session_stream(principal.session_id),
            SessionCommand::End {
                reason: "logout".into(),
            },
            metadata,
            vec![],
        )
        .await?;
    Ok(r.position())
}
