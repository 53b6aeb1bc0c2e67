//! Password login and logout.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use medledger_commands::identity;
use medledger_domain::identity::ClientKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{ApiJson, Authenticated, CommandResponse, RequestMeta};
use super::problem::{ApiError, Problem};
use super::AppState;

/// The clients a person logs in from.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoginClient {
    Pc,
    Mobile,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
    pub client: LoginClient,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account_id: Uuid,
    pub session_id: Uuid,
    /// Global position of the last event written.
    pub position: u64,
}

#[derive(Serialize, ToSchema)]
pub struct PositionResponse {
    pub position: u64,
}

/// Log in with login name and password. Every attempt is recorded.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, body = Problem, description = "invalid_credentials or account_disabled"),
        (status = 400, body = Problem), (status = 422, body = Problem)
    ))]
pub async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<CommandResponse<LoginResponse>, ApiError> {
    let client = match req.client {
        LoginClient::Pc => ClientKind::Pc,
        LoginClient::Mobile => ClientKind::Mobile,
    };
    let ok = identity::login(
        &state.app,
        &req.login,
        req.password,
        client,
        &meta.metadata(None, client),
    )
    .await?;
    Ok(CommandResponse {
        status: StatusCode::OK,
        position: ok.position,
        body: LoginResponse {
            token: ok.token,
            expires_at: ok.expires_at,
            account_id: ok.account_id,
            session_id: ok.session_id,
            position: ok.position,
        },
    })
}

/// End the current session; its token stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", security(("bearer" = [])),
    responses((status = 200, body = PositionResponse), (status = 401, body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    meta: RequestMeta,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position = identity::logout(
        &state.app,
        &principal,
        &meta.metadata(Some(&principal), principal.client),
    )
    .await?;
    Ok(CommandResponse {
        status: StatusCode::OK,
        position,
        body: PositionResponse { position },
    })
}
