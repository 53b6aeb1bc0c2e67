//! Hospital users over HTTP: create, find (directory), disable/enable,
//! unfreeze, assign roles.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use medledger_commands::authorization::{authorize, Action};
use medledger_commands::organization::{self as org, PersonSpec, UserSpec};
use medledger_domain::identity::account::AccountCommand;
use medledger_domain::identity::{AccountRole, Tenant};
use medledger_projections::read_models::accounts;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{done, PositionResponse};
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, CommandResponse, MinPosition, RequestMeta};
use super::organization::Created;
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub login: String,
    pub name: String,
    pub phone: Option<String>,
    pub department_id: Option<Uuid>,
    /// Professional title (主任医师, …).
    pub title: Option<String>,
    #[serde(default)]
    pub roles: Vec<Uuid>,
    /// The initial password (policy-checked).
    pub password: String,
}

/// Hospital administrator: add a user (doctor, technician, …).
#[utoipa::path(post, path = "/api/v1/hospitals/{id}/users", security(("bearer" = [])), request_body = CreateUser,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = Created), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "login_taken"),
              (status = 422, body = Problem, description = "weak_password, unknown_department, unknown_role, …")))]
pub async fn create_user(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(hospital_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<CommandResponse<Created>, ApiError> {
    let spec = UserSpec {
        person: PersonSpec {
            login: body.login,
            display_name: body.name,
            phone: body.phone,
            password: body.password,
        },
        department_id: body.department_id,
        title: body.title,
        roles: body.roles,
    };
    let (id, position) =
        org::create_user(&state.app, &p, hospital_id, &spec, &meta.metadata(Some(&p), p.client)).await?;
    Ok(CommandResponse {
        status: StatusCode::CREATED,
        position,
        body: Created {
            id,
            admin_account_id: None,
            roles: None,
            position,
        },
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Fuzzy: part of a name, login or phone number.
    pub q: Option<String>,
    pub hospital: Option<Uuid>,
    pub department: Option<Uuid>,
    pub cursor: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<u32>,
    pub min_position: Option<u64>,
}

/// Find people in the directory (scoped to what the caller may see).
#[utoipa::path(get, path = "/api/v1/users", security(("bearer" = [])), params(SearchParams),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<accounts::UserPage>, ApiError> {
    if matches!(params.limit, Some(0) | Some(201..)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit must be 1 to 200",
        ));
    }
    if params.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "q has at most 100 characters",
        ));
    }
    let mut filter = accounts::UserFilter {
        alliance_id: None,
        hospital_id: params.hospital,
        department_id: params.department,
        query: params.q,
        after: params.cursor,
        limit: params.limit.unwrap_or(50),
    };
    match p.role {
        AccountRole::PlatformOperator => {}
        AccountRole::AllianceAdministrator => filter.alliance_id = p.tenant.alliance_id,
        _ => {
            if params.hospital.is_some_and(|h| Some(h) != p.tenant.hospital_id) {
                return Err(ApiError::not_found());
            }
            filter.hospital_id = p.tenant.hospital_id;
        }
    }
    let scope = Tenant {
        alliance_id: filter.alliance_id.or(p.tenant.alliance_id),
        hospital_id: filter.hospital_id,
    };
    authorize(&p, Action::ViewDirectory, &scope)?;
    min.wait(&state, accounts::NAME).await?;
    Ok(Json(accounts::search(&state.app.store.read_models(), &filter).await?))
}

/// One person of the directory.
#[utoipa::path(get, path = "/api/v1/users/{id}", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<accounts::AccountView>, ApiError> {
    min.wait(&state, accounts::NAME).await?;
    let view = accounts::get(&state.app.store.read_models(), id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let tenant = Tenant {
        alliance_id: view.alliance_id,
        hospital_id: view.hospital_id,
    };
    if view.role == "platform_operator" && p.role != AccountRole::PlatformOperator {
        return Err(ApiError::not_found());
    }
    authorize(&p, Action::ViewDirectory, &tenant)?;
    Ok(Json(view))
}

async fn manage(
    state: &AppState,
    p: &medledger_commands::identity::Principal,
    meta: &RequestMeta,
    id: Uuid,
    command: AccountCommand,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position = org::manage_user(&state.app, p, id, command, &meta.metadata(Some(p), p.client)).await?;
    Ok(done(position))
}

/// Disable a user: their sessions end at once and they cannot log in.
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn disable(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    manage(&state, &p, &meta, id, AccountCommand::Disable).await
}

/// Enable a disabled user again.
#[utoipa::path(post, path = "/api/v1/users/{id}/enable", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn enable(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    manage(&state, &p, &meta, id, AccountCommand::Enable).await
}

/// Unfreeze a user frozen after too many failed logins, before the next day.
#[utoipa::path(post, path = "/api/v1/users/{id}/unfreeze", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn unfreeze(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    manage(&state, &p, &meta, id, AccountCommand::Unfreeze).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRoles {
    pub roles: Vec<Uuid>,
}

/// Replace a user's roles.
#[utoipa::path(post, path = "/api/v1/users/{id}/roles", security(("bearer" = [])), request_body = AssignRoles,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn assign_roles(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AssignRoles>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let mut roles = body.roles;
    roles.sort();
    roles.dedup();
    manage(&state, &p, &meta, id, AccountCommand::AssignRoles { roles }).await
}
