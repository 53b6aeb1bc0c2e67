//! Organization use cases: alliances, hospitals (with their built-in roles
//! and administrator), departments, roles and hospital users.
//!
//! Each level's administrators are created by the level directly above:
//! the operator creates alliances and their administrators, an alliance
//! administrator adds hospitals and theirs, a hospital administrator adds
//! departments, roles and users. Every check goes through
//! [`crate::authorization::authorize`].

use std::collections::BTreeSet;

use medledger_domain::identity::account::{AccountCommand, AccountDecider};
use medledger_domain::identity::{AccountRole, LoginName, Tenant};
use medledger_domain::organization::alliance::{Alliance, AllianceCommand};
use medledger_domain::organization::department::{Department, DepartmentCommand};
use medledger_domain::organization::hospital::{Hospital, HospitalCommand, HospitalProfile};
use medledger_domain::organization::permission::builtin_roles;
use medledger_domain::organization::role::{Role, RoleCommand};
use medledger_domain::organization::{Name, Permission, PhoneNumber, TimeZone};
use medledger_domain::Decider;
use uuid::Uuid;

use crate::app::App;
use crate::authorization::{authorize, Action};
use crate::codec::Metadata;
use crate::error::{Error, Kind};
use crate::identity::{account_registration, login_taken, password_policy, NewAccount, Principal};
use crate::store::{AppendRequest, ExpectedVersion, Guard, StoreError};

pub fn alliance_stream(id: Uuid) -> String {
    format!("alliance-{id}")
}
pub fn hospital_stream(id: Uuid) -> String {
    format!("hospital-{id}")
}
pub fn department_stream(id: Uuid) -> String {
    format!("department-{id}")
}
pub fn role_stream(id: Uuid) -> String {
    format!("role-{id}")
}

/// An administrator (or user) account to create.
#[derive(Clone, Debug)]
pub struct PersonSpec {
    pub login: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub password: String,
}

fn not_found() -> Error {
    Error::rejected(Kind::NotFound, "not_found", "no such resource")
}

fn person(spec: &PersonSpec, role: AccountRole, tenant: Tenant, time_zone: TimeZone) -> Result<NewAccount, Error> {
    let login = LoginName::parse(&spec.login)?;
    let display_name = Name::parse(&spec.display_name)?;
    let phone = spec.phone.as_deref().map(PhoneNumber::parse).transpose()?;
    Ok(NewAccount {
        account_id: Uuid::now_v7(),
        password: password_policy(&spec.password, &login)?,
        login,
        display_name: display_name.as_str().to_string(),
        phone,
        role,
        tenant,
        department_id: None,
        title: None,
        roles: vec![],
        time_zone,
    })
}

fn guard_conflict(e: StoreError, scope: &str, code: &'static str, what: &str) -> Error {
    match e {
        StoreError::GuardTaken { scope: s, .. } if s == scope => {
            Error::rejected(Kind::Conflict, code, format!("{what} already exists"))
        }
        other => login_taken(other.into()),
    }
}

/// Operator: a new alliance and its administrator, in one commit.
pub async fn create_alliance(
    app: &App,
    p: &Principal,
    name: &str,
    admin: &PersonSpec,
    metadata: &Metadata,
) -> Result<(Uuid, Uuid, u64), Error> {
    authorize(p, Action::CreateAlliance, &Tenant::PLATFORM)?;
    let name = Name::parse(name)?;
    let alliance_id = Uuid::now_v7();
    let tenant = Tenant {
        alliance_id: Some(alliance_id),
        hospital_id: None,
    };
    let account = person(admin, AccountRole::AllianceAdministrator, tenant, TimeZone::DEFAULT)?;
    let account_id = account.account_id;
    let ctx = app.ctx(metadata);
    let events = Alliance::decide(
        &Default::default(),
        AllianceCommand::Create {
            alliance_id,
            name: name.clone(),
        },
        &ctx,
    )?;
    let mut meta = metadata.clone();
    meta.tenant = tenant;
    let new = app.codec.prepare(&events, &meta, ctx.now).await?;
    let (stream, account_events, login_guard) = account_registration(app, account, metadata).await?;
    let request = AppendRequest::stream(alliance_stream(alliance_id), ExpectedVersion::NoStream, new)
        .and_stream(stream, ExpectedVersion::NoStream, account_events)
        .with_guard(login_guard)
        .with_guard(Guard::Claim {
            scope: "alliance-name".into(),
            key: name.as_str().to_lowercase(),
            owner: alliance_stream(alliance_id),
        });
    let r = app
        .append(request)
        .await
        .map_err(|e| guard_conflict(e, "alliance-name", "alliance_exists", "an alliance with this name"))?;
    Ok((alliance_id, account_id, r.last_position))
}

#[derive(Clone, Debug)]
pub struct HospitalSpec {
    pub name: String,
    pub code: String,
    pub address: String,
    pub time_zone: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RegisteredHospital {
    pub hospital_id: Uuid,
    pub admin_id: Uuid,
    /// Built-in roles by name.
    pub roles: Vec<(String, Uuid)>,
    pub position: u64,
}

/// Alliance administrator: a new hospital with its built-in roles and its
/// administrator, in one commit.
pub async fn register_hospital(
    app: &App,
    p: &Principal,
    alliance_id: Uuid,
    spec: &HospitalSpec,
    admin: &PersonSpec,
    metadata: &Metadata,
) -> Result<RegisteredHospital, Error> {
    let alliance_tenant = Tenant {
        alliance_id: Some(alliance_id),
        hospital_id: None,
    };
    authorize(p, Action::RegisterHospital, &alliance_tenant)?;
    let (alliance, _) = app.load::<Alliance>(&alliance_stream(alliance_id)).await?;
    if alliance.alliance.is_none() {
        return Err(not_found());
    }
    let name = Name::parse(&spec.name)?;
    let code = medledger_domain::organization::HospitalCode::parse(&spec.code)?;
    let time_zone = match &spec.time_zone {
        Some(tz) => TimeZone::parse(tz)?,
        None => TimeZone::DEFAULT,
    };
    let hospital_id = Uuid::now_v7();
    let tenant = Tenant {
        alliance_id: Some(alliance_id),
        hospital_id: Some(hospital_id),
    };
    let ctx = app.ctx(metadata);
    let mut meta = metadata.clone();
    meta.tenant = tenant;
    let events = Hospital::decide(
        &Default::default(),
        HospitalCommand::Register {
            hospital_id,
            alliance_id,
            name,
            code: code.clone(),
            address: spec.address.clone(),
            time_zone,
        },
        &ctx,
    )?;
    let mut request = AppendRequest::stream(
        hospital_stream(hospital_id),
        ExpectedVersion::NoStream,
        app.codec.prepare(&events, &meta, ctx.now).await?,
    )
    .with_guard(Guard::Claim {
        scope: "hospital-code".into(),
        key: code.as_str().to_string(),
        owner: hospital_stream(hospital_id),
    });
    let mut roles = Vec::new();
    for (role_name, permissions) in builtin_roles() {
        let role_id = Uuid::now_v7();
        let events = Role::decide(
            &Default::default(),
            RoleCommand::Define {
                role_id,
                hospital_id,
                name: Name::parse(role_name)?,
                permissions: permissions.into_iter().collect(),
                builtin: true,
            },
            &ctx,
        )?;
        request = request
            .and_stream(
                role_stream(role_id),
                ExpectedVersion::NoStream,
                app.codec.prepare(&events, &meta, ctx.now).await?,
            )
            .with_guard(Guard::Claim {
                scope: "role-name".into(),
                key: format!("{hospital_id}/{role_name}"),
                owner: role_stream(role_id),
            });
        roles.push((role_name.to_string(), role_id));
    }
    let account = person(admin, AccountRole::HospitalAdministrator, tenant, time_zone)?;
    let admin_id = account.account_id;
    let (stream, account_events, login_guard) = account_registration(app, account, metadata).await?;
    request = request
        .and_stream(stream, ExpectedVersion::NoStream, account_events)
        .with_guard(login_guard);
    let r = app
        .append(request)
        .await
        .map_err(|e| guard_conflict(e, "hospital-code", "hospital_code_taken", "a hospital with this code"))?;
    Ok(RegisteredHospital {
        hospital_id,
        admin_id,
        roles,
        position: r.last_position,
    })
}

/// A hospital's profile, if it exists and `p` may see it.
pub async fn load_hospital(app: &App, p: &Principal, hospital_id: Uuid) -> Result<(HospitalProfile, Tenant), Error> {
    let (state, _) = app.load::<Hospital>(&hospital_stream(hospital_id)).await?;
    let h = state.hospital.ok_or_else(not_found)?;
    let tenant = Tenant {
        alliance_id: Some(h.alliance_id),
        hospital_id: Some(h.id),
    };
    if !crate::authorization::visible(p, &tenant) {
        return Err(not_found());
    }
    Ok((h, tenant))
}

async fn hospital_command(
    app: &App,
    p: &Principal,
    hospital_id: Uuid,
    action: Action,
    command: HospitalCommand,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let (_, tenant) = load_hospital(app, p, hospital_id).await?;
    authorize(p, action, &tenant)?;
    let r = app
        .execute::<Hospital>(&hospital_stream(hospital_id), command, metadata, vec![])
        .await?;
    Ok(r.position())
}

pub async fn update_hospital_profile(
    app: &App,
    p: &Principal,
    hospital_id: Uuid,
    name: &str,
    address: &str,
    qr_url: Option<String>,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let command = HospitalCommand::UpdateProfile {
        name: Name::parse(name)?,
        address: address.to_string(),
        qr_url,
    };
    hospital_command(app, p, hospital_id, Action::EditHospital, command, metadata).await
}

/// Validate and store a logo image, then record it.
pub async fn change_hospital_logo(
    app: &App,
    blobs: &crate::blobs::BlobStore,
    p: &Principal,
    hospital_id: Uuid,
    bytes: bytes::Bytes,
    declared_type: Option<&str>,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let (_, tenant) = load_hospital(app, p, hospital_id).await?;
    authorize(p, Action::EditHospital, &tenant)?;
    let image = crate::media::validate_logo(&bytes, declared_type)
        .map_err(|e| Error::rejected(Kind::Invalid, e.code(), e.to_string()))?;
    let ext = if image.content_type == "image/png" {
        "png"
    } else {
        "jpg"
    };
    let key = format!("hospitals/{hospital_id}/logo-{}.{ext}", image.sha256);
    let size = bytes.len() as u64;
    blobs
        .put(&key, bytes)
        .await
        .map_err(|e| Error::Internal(format!("storing the logo: {e}")))?;
    let command = HospitalCommand::ChangeLogo {
        blob_key: key,
        content_type: image.content_type.to_string(),
        size,
        sha256: image.sha256.clone(),
        width: image.width,
        height: image.height,
    };
    hospital_command(app, p, hospital_id, Action::EditHospital, command, metadata).await
}

/// Hospital administrator: a department (names are unique per hospital).
pub async fn create_department(
    app: &App,
    p: &Principal,
    hospital_id: Uuid,
    name: &str,
    phone: Option<&str>,
    metadata: &Metadata,
) -> Result<(Uuid, u64), Error> {
    let (_, tenant) = load_hospital(app, p, hospital_id).await?;
    authorize(p, Action::ManageDepartments, &tenant)?;
    let name = Name::parse(name)?;
    let phone = phone.map(PhoneNumber::parse).transpose()?;
    let department_id = Uuid::now_v7();
    let mut meta = metadata.clone();
    meta.tenant = tenant;
    let r = app
        .execute::<Department>(
            &department_stream(department_id),
            DepartmentCommand::Create {
                department_id,
                hospital_id,
                name: name.clone(),
                phone: phone.map(|p| p.as_str().to_string()),
            },
            &meta,
            vec![Guard::Claim {
                scope: "department-name".into(),
                key: format!("{hospital_id}/{}", name.as_str().to_lowercase()),
                owner: department_stream(department_id),
            }],
        )
        .await
        .map_err(|e| match e {
            Error::Store(s) => guard_conflict(s, "department-name", "department_exists", "a department with this name"),
            other => other,
        })?;
    Ok((department_id, r.position()))
}

fn parse_permissions(names: &[String]) -> Result<BTreeSet<Permission>, Error> {
    names
        .iter()
        .map(|n| {
            Permission::parse(n).ok_or_else(|| {
                Error::rejected(
                    Kind::Invalid,
                    "unknown_permission",
                    format!("'{n}' is not a permission"),
                )
            })
        })
        .collect()
}

/// Hospital administrator: a custom role.
pub async fn define_role(
    app: &App,
    p: &Principal,
    hospital_id: Uuid,
    name: &str,
    permissions: &[String],
    metadata: &Metadata,
) -> Result<(Uuid, u64), Error> {
    let (_, tenant) = load_hospital(app, p, hospital_id).await?;
    authorize(p, Action::ManageRoles, &tenant)?;
    let name = Name::parse(name)?;
    let permissions = parse_permissions(permissions)?;
    let role_id = Uuid::now_v7();
    let mut meta = metadata.clone();
    meta.tenant = tenant;
    let r = app
        .execute::<Role>(
            &role_stream(role_id),
            RoleCommand::Define {
                role_id,
                hospital_id,
                name: name.clone(),
                permissions,
                builtin: false,
            },
            &meta,
            vec![Guard::Claim {
                scope: "role-name".into(),
                key: format!("{hospital_id}/{}", name.as_str().to_lowercase()),
                owner: role_stream(role_id),
            }],
        )
        .await
        .map_err(|e| match e {
            Error::Store(s) => guard_conflict(s, "role-name", "role_exists", "a role with this name"),
            other => other,
        })?;
    Ok((role_id, r.position()))
}

/// A role of the principal's visible tenant, with its tenant.
async fn load_role(app: &App, p: &Principal, role_id: Uuid) -> Result<(BTreeSet<Permission>, Uuid, Tenant), Error> {
    let (state, _) = app.load::<Role>(&role_stream(role_id)).await?;
    let role = state.role.ok_or_else(not_found)?;
    let (_, tenant) = load_hospital(app, p, role.hospital_id).await?;
    Ok((role.permissions, role.hospital_id, tenant))
}

pub async fn change_role_permissions(
    app: &App,
    p: &Principal,
    role_id: Uuid,
    permissions: &[String],
    metadata: &Metadata,
) -> Result<u64, Error> {
    let (_, _, tenant) = load_role(app, p, role_id).await?;
    authorize(p, Action::ManageRoles, &tenant)?;
    let permissions = parse_permissions(permissions)?;
    let mut meta = metadata.clone();
    meta.tenant = tenant;
    let r = app
        .execute::<Role>(
            &role_stream(role_id),
            RoleCommand::ChangePermissions { permissions },
            &meta,
            vec![],
        )
        .await?;
    Ok(r.position())
}

#[derive(Clone, Debug)]
pub struct UserSpec {
    pub person: PersonSpec,
    pub department_id: Option<Uuid>,
    pub title: Option<String>,
    pub roles: Vec<Uuid>,
}

/// Roles must belong to the hospital; a delegated user manager (not the
/// hospital administrator) may only grant what they hold themselves.
async fn check_roles(app: &App, p: &Principal, hospital_id: Uuid, roles: &[Uuid]) -> Result<(), Error> {
    for role_id in roles {
        let unknown = || {
            Error::rejected(
                Kind::Invalid,
                "unknown_role",
                format!("role {role_id} is not a role of this hospital"),
            )
        };
        let (state, _) = app.load::<Role>(&role_stream(*role_id)).await?;
        let role = state.role.ok_or_else(unknown)?;
        if role.hospital_id != hospital_id {
            return Err(unknown());
        }
        if p.role != AccountRole::HospitalAdministrator && !role.permissions.is_subset(&p.permissions) {
            return Err(Error::rejected(
                Kind::Forbidden,
                "cannot_grant_more_than_own",
                "you may only grant roles whose permissions you hold",
            ));
        }
    }
    Ok(())
}

/// Hospital administrator: a user (doctor, technician, …) of the hospital.
pub async fn create_user(
    app: &App,
    p: &Principal,
    hospital_id: Uuid,
    spec: &UserSpec,
    metadata: &Metadata,
) -> Result<(Uuid, u64), Error> {
    let (hospital, tenant) = load_hospital(app, p, hospital_id).await?;
    authorize(p, Action::ManageUsers, &tenant)?;
    if let Some(d) = spec.department_id {
        let (state, _) = app.load::<Department>(&department_stream(d)).await?;
        if state.department.map(|d| d.hospital_id) != Some(hospital_id) {
            return Err(Error::rejected(
                Kind::Invalid,
                "unknown_department",
                format!("department {d} is not a department of this hospital"),
            ));
        }
    }
    let mut roles = spec.roles.clone();
    roles.sort();
    roles.dedup();
    check_roles(app, p, hospital_id, &roles).await?;
    let title = match spec.title.as_deref().map(str::trim) {
        Some(t) if t.chars().count() > 50 => {
            return Err(Error::rejected(
                Kind::Invalid,
                "invalid_title",
                "a title has at most 50 characters",
            ))
        }
        Some("") | None => None,
        Some(t) => Some(t.to_string()),
    };
    let mut account = person(&spec.person, AccountRole::User, tenant, hospital.time_zone)?;
    account.department_id = spec.department_id;
    account.title = title;
    account.roles = roles;
    let account_id = account.account_id;
    let (stream, events, guard) = account_registration(app, account, metadata).await?;
    let r = app
        .append(AppendRequest::stream(stream, ExpectedVersion::NoStream, events).with_guard(guard))
        .await
        .map_err(|e| login_taken(e.into()))?;
    Ok((account_id, r.last_position))
}

/// A user account that `p` may manage (same hospital, ordinary user level).
async fn managed_user(app: &App, p: &Principal, account_id: Uuid) -> Result<Tenant, Error> {
    let (state, _) = app
        .load::<AccountDecider>(&crate::identity::account_stream(account_id))
        .await?;
    let account = state.account.ok_or_else(not_found)?;
    authorize(p, Action::ManageUsers, &account.tenant)?;
    if account.role != AccountRole::User {
        return Err(Error::rejected(
            Kind::Forbidden,
            "not_your_level",
            "administrators are managed by the level above",
        ));
    }
    Ok(account.tenant)
}

/// Disable, enable or unfreeze a user, or assign its roles.
pub async fn manage_user(
    app: &App,
    p: &Principal,
    account_id: Uuid,
    command: AccountCommand,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let tenant = managed_user(app, p, account_id).await?;
    if let AccountCommand::AssignRoles { roles } = &command {
        check_roles(app, p, tenant.hospital_id.unwrap_or_default(), roles).await?;
    }
    if !matches!(
        command,
        AccountCommand::Disable
            | AccountCommand::Enable
            | AccountCommand::Unfreeze
            | AccountCommand::AssignRoles { .. }
    ) {
        return Err(Error::forbidden());
    }
    let r = app
        .execute::<AccountDecider>(&crate::identity::account_stream(account_id), command, metadata, vec![])
        .await?;
    Ok(r.position())
}
