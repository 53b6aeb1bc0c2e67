//! Logging in and out: password login, QR-scan login, forgot password.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use medledger_commands::identity;
use medledger_domain::identity::ClientKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use base64::Engine;

use super::extract::{ApiJson, ApiPath, Authenticated, CommandResponse, RequestMeta};
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

/// The answer of a command whose only news is where its events landed.
pub fn done(position: u64) -> CommandResponse<PositionResponse> {
    CommandResponse {
        status: StatusCode::OK,
        position,
        body: PositionResponse { position },
    }
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
    Ok(done(position))
}

// ---------------------------------------------------------------- QR-scan login

#[derive(Serialize, ToSchema)]
pub struct TicketResponse {
    pub ticket_id: Uuid,
    /// Shown only to the PC client that asked; the QR code carries it to the phone.
    pub secret: String,
    pub expires_at: DateTime<Utc>,
    /// What the QR code encodes.
    pub qr_payload: String,
    /// The QR code as a PNG, base64-encoded.
    pub qr_png_base64: String,
    /// The QR code as SVG.
    pub qr_svg: String,
    pub position: u64,
}

/// A PC client asks for a QR login ticket (valid 2 minutes, single use).
#[utoipa::path(post, path = "/api/v1/auth/qr-tickets",
    responses((status = 201, body = TicketResponse)))]
pub async fn issue_ticket(
    State(state): State<AppState>,
    meta: RequestMeta,
) -> Result<CommandResponse<TicketResponse>, ApiError> {
    let t = identity::issue_login_ticket(&state.app, &meta.metadata(None, ClientKind::Pc)).await?;
    let payload = t.qr_payload();
    let qr = |e: medledger_commands::media::QrError| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e.to_string())
    };
    let png = medledger_commands::media::qr_png(&payload, 6).map_err(qr)?;
    let svg = medledger_commands::media::qr_svg(&payload).map_err(qr)?;
    Ok(CommandResponse {
        status: StatusCode::CREATED,
        position: t.position,
        body: TicketResponse {
            ticket_id: t.ticket_id,
            secret: t.secret,
            expires_at: t.expires_at,
            qr_payload: payload,
            qr_png_base64: base64::engine::general_purpose::STANDARD.encode(png),
            qr_svg: svg,
            position: t.position,
        },
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketSecret {
    pub secret: String,
}

/// A logged-in mobile client confirms a ticket it scanned.
#[utoipa::path(post, path = "/api/v1/auth/qr-tickets/{id}/confirm", security(("bearer" = [])), request_body = TicketSecret,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 410, body = Problem)))]
pub async fn confirm_ticket(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<TicketSecret>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position =
        identity::confirm_login_ticket(&state.app, &p, id, &body.secret, &meta.metadata(Some(&p), p.client)).await?;
    Ok(done(position))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    pub secret: String,
    /// Long-poll: wait up to this many seconds (0–25) for the confirmation.
    #[serde(default)]
    pub wait_seconds: u32,
}

#[derive(Serialize, ToSchema)]
pub struct RedeemResponse {
    /// `pending` or `logged_in`.
    pub status: String,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginResponse>,
}

/// The PC client polls (or long-polls) its ticket; once confirmed, it gets
/// its own session, once.
#[utoipa::path(post, path = "/api/v1/auth/qr-tickets/{id}/redeem", request_body = RedeemRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RedeemResponse, description = "logged in"), (status = 202, body = RedeemResponse, description = "pending"),
              (status = 404, body = Problem), (status = 410, body = Problem, description = "ticket_expired or ticket_used")))]
pub async fn redeem_ticket(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RedeemRequest>,
) -> Result<CommandResponse<RedeemResponse>, ApiError> {
    if body.wait_seconds > 25 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "wait_seconds is at most 25",
        ));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(body.wait_seconds as u64);
    let metadata = meta.metadata(None, ClientKind::Pc);
    loop {
        match identity::redeem_login_ticket(&state.app, id, &body.secret, ClientKind::Pc, &metadata).await? {
            identity::TicketPoll::LoggedIn(ok) => {
                return Ok(CommandResponse {
                    status: StatusCode::OK,
                    position: ok.position,
                    body: RedeemResponse {
                        status: "logged_in".into(),
                        expires_at: ok.expires_at,
                        login: Some(LoginResponse {
                            token: ok.token,
                            expires_at: ok.expires_at,
                            account_id: ok.account_id,
                            session_id: ok.session_id,
                            position: ok.position,
                        }),
                    },
                })
            }
            identity::TicketPoll::Pending { expires_at } => {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(CommandResponse {
                        status: StatusCode::ACCEPTED,
                        position: 0,
                        body: RedeemResponse {
                            status: "pending".into(),
                            expires_at,
                            login: None,
                        },
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

// ---------------------------------------------------------------- forgot password

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub login: String,
}

#[derive(Serialize, ToSchema)]
pub struct ResetRequested {
    /// Always `sent_if_account_exists`: the answer never reveals accounts.
    pub status: String,
}

/// Send a password reset code (valid 10 minutes, 5 tries) to the account's
/// notification channel.
#[utoipa::path(post, path = "/api/v1/auth/password-resets", request_body = ResetRequest,
    responses((status = 202, body = ResetRequested)))]
pub async fn request_reset(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<(StatusCode, axum::Json<ResetRequested>), ApiError> {
    identity::request_password_reset(
        &state.app,
        state.notifier.as_ref(),
        &body.login,
        &meta.metadata(None, ClientKind::Api),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ResetRequested {
            status: "sent_if_account_exists".into(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    pub login: String,
    pub code: String,
    pub new_password: String,
}

/// Set a new password with a reset code. It may not equal any of the last 5;
/// every session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-resets/confirm", request_body = ResetConfirm,
    responses((status = 200, body = PositionResponse),
              (status = 410, body = Problem, description = "reset_code_expired or reset_code_dead"),
              (status = 422, body = Problem, description = "reset_code_invalid, weak_password, password_reused")))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position = identity::reset_password(
        &state.app,
        &body.login,
        &body.code,
        &body.new_password,
        &meta.metadata(None, ClientKind::Api),
    )
    .await?;
    Ok(done(position))
}
