//! The caller's own account.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use medledger_projections::read_models::accounts;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{Authenticated, MinPosition};
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
    #[schema(value_type = String)]
    pub role: medledger_domain::identity::AccountRole,
    #[schema(value_type = Object)]
    pub tenant: medledger_domain::identity::Tenant,
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
    let view = accounts::get(&state.app.store.db(), p.account_id).await?;
    Ok(Json(MeResponse {
        account_id: p.account_id,
        session_id: p.session_id,
        login: view.as_ref().map(|v| v.login.clone()),
        display_name: view.as_ref().and_then(|v| v.display_name.clone()),
        display_name_erased: view.as_ref().map(|v| v.display_name_erased).unwrap_or(false),
        role: p.role,
        tenant: p.tenant,
        client: p.client,
        last_login_at: view.and_then(|v| v.last_login_at),
    }))
}
