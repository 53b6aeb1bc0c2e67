//! Password login: every attempt is recorded; a success starts a session.

use super::*;
#[derive(Clone, Debug)]
pub struct LoginSuccess {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub position: u64,
}

pub(super) fn invalid_credentials() -> Error {
    Error::rejected(
        Kind::Unauthenticated,
        "invalid_credentials",
        "login name or password is wrong",
    )
}

/// Record a login attempt on the account and, when it succeeds, start a
/// session; `extra` streams (e.g. a redeemed QR ticket) commit with it.
pub(super) async fn attempt_login(
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

pub(super) fn frozen(until: DateTime<Utc>) -> Error {
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
