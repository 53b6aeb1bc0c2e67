//! The caller's own account: who am I, password, phone, sessions.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use medledger_commands::identity;
use medledger_domain::organization::PhoneNumber;
use medledger_projections::read_models::{accounts, sessions};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{done, PositionResponse};
use super::extract::{ApiJson, ApiPath, Authenticated, CommandResponse, MinPosition, RequestMeta};
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub login: Option<String>,
    /// `null` when erased (the subject was forgotten).
    pub display_name: Option<String>,
    pub display_name_erased: bool,
    pub phone: Option<String>,
    #[schema(value_type = String)]
    pub role: medledger_domain::identity::AccountRole,
    #[schema(value_type = Object)]
    pub tenant: medledger_domain::identity::Tenant,
    pub department_id: Option<Uuid>,
    pub title: Option<String>,
    /// Permission names granted through roles.
    pub permissions: Vec<String>,
    #[schema(value_type = String)]
    pub client: medledger_domain::identity::ClientKind,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Who am I? Accepts `min_position` to read one's own writes.
#[utoipa::path(get, path = "/api/v1/me", security(("bearer" = [])),
    params(("min_position" = Option<u64>, Query, description = "wait until this position is reflected")),
    responses((status = 200, body = MeResponse), (status = 401, body = Problem), (status = 503, body = Problem)))]
pub async fn me(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
) -> Result<Json<MeResponse>, ApiError> {
    min.wait(&state, accounts::NAME).await?;
    let view = accounts::get(&state.app.store.read_models(), p.account_id).await?;
    Ok(Json(MeResponse {
        account_id: p.account_id,
        session_id: p.session_id,
        login: view.as_ref().map(|v| v.login.clone()),
        display_name: view.as_ref().and_then(|v| v.display_name.clone()),
        display_name_erased: view.as_ref().map(|v| v.display_name_erased).unwrap_or(false),
        phone: view.as_ref().and_then(|v| v.phone.clone()),
        role: p.role,
        tenant: p.tenant,
        department_id: view.as_ref().and_then(|v| v.department_id),
        title: view.as_ref().and_then(|v| v.title.clone()),
        permissions: p.permissions.iter().map(|x| x.name().to_string()).collect(),
        client: p.client,
        last_login_at: view.and_then(|v| v.last_login_at),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Change my password. It must meet the policy and differ from the last 5;
/// every session of the account ends, this one included.
#[utoipa::path(post, path = "/api/v1/me/password", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem, description = "wrong_password"),
              (status = 422, body = Problem, description = "weak_password or password_reused")))]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position = identity::change_password(
        &state.app,
        &p,
        body.current_password,
        body.new_password,
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    Ok(done(position))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindPhone {
    pub phone: String,
}

/// Bind my phone number (needed before a first QR login).
#[utoipa::path(post, path = "/api/v1/me/phone", security(("bearer" = [])), request_body = BindPhone,
    responses((status = 200, body = PositionResponse), (status = 422, body = Problem)))]
pub async fn bind_phone(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(body): ApiJson<BindPhone>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let phone = PhoneNumber::parse(&body.phone).map_err(medledger_commands::Error::from)?;
    let position = identity::bind_phone(&state.app, &p, phone, &meta.metadata(Some(&p), p.client)).await?;
    Ok(done(position))
}

#[derive(Serialize, ToSchema)]
pub struct SessionsResponse {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<sessions::SessionView>,
    /// The session this request came with.
    pub current: Uuid,
}

/// My sessions that are still open, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", security(("bearer" = [])),
    params(("min_position" = Option<u64>, Query)),
    responses((status = 200, body = SessionsResponse), (status = 401, body = Problem)))]
pub async fn sessions(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
) -> Result<Json<SessionsResponse>, ApiError> {
    min.wait(&state, sessions::NAME).await?;
    let now = state.app.clock.now();
    let items = sessions::list_for_account(&state.app.store.read_models(), p.account_id, false)
        .await?
        .into_iter()
        .filter(|s| s.expires_at > now)
        .collect();
    Ok(Json(SessionsResponse {
        items,
        current: p.session_id,
    }))
}

/// End one of my sessions (e.g. a lost phone).
#[utoipa::path(post, path = "/api/v1/me/sessions/{id}/revoke", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position = identity::end_session(&state.app, &p, id, "revoked", &meta.metadata(Some(&p), p.client)).await?;
    Ok(done(position))
}
