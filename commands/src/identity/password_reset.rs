//! Forgot password: codes through a pluggable notifier.

use super::*;
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

pub(super) fn reset_code_hash(reset_id: Uuid, code: &str) -> String {
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

pub(super) async fn stored_code_hash(app: &App, stream: &str) -> Result<String, Error> {
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
