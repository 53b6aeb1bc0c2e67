//! What an account does to itself: password and phone.

use super::*;
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
pub(super) async fn set_password(
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
