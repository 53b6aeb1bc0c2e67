//! Registering accounts (the operator at first start, administrators and
//! users through the organization use cases).

use super::*;
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

pub(super) async fn load_account(app: &App, account_id: Uuid) -> Result<(Account, u64), Error> {
    let (state, version) = app.load::<AccountDecider>(&account_stream(account_id)).await?;
    let account = state
        .account
        .ok_or_else(|| Error::rejected(Kind::NotFound, "account_not_found", "no such account"))?;
    Ok((account, version))
}
