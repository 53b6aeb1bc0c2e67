//! The user operation log for administrators: who did what, to what, from
//! where — read from the audit-log projection, scoped to the caller's
//! hospital or alliance. Looking is recorded like any audit view.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use medledger_commands::administration::record_audit_view;
use medledger_commands::authorization::Action;
use medledger_domain::identity::AccountRole;
use medledger_projections::read_models::audit_log::{self, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{ApiQuery, Authenticated, CommandResponse, MinPosition, RequestMeta};
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OperationLogParams {
    /// Only this user's operations.
    pub user: Option<Uuid>,
    /// Only this action (event type, e.g. `AccountDisabled`).
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<u64>,
    pub limit: Option<u32>,
    pub min_position: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct Operation {
    pub position: u64,
    pub time: DateTime<Utc>,
    /// The acting account (absent for anonymous attempts and the system).
    pub user: Option<String>,
    pub action: String,
    /// The stream acted on (`account-…`, `hospital-…`).
    pub target: String,
    pub ip: Option<String>,
    pub client: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OperationLogResponse {
    pub items: Vec<Operation>,
    pub next_cursor: Option<u64>,
    /// Position of the `AuditLogViewed` event this query wrote.
    pub position: u64,
}

/// Operations in the caller's hospital (hospital administrators) or alliance
/// (alliance administrators), newest first.
#[utoipa::path(get, path = "/api/v1/operation-log", security(("bearer" = [])), params(OperationLogParams),
    responses((status = 200, body = OperationLogResponse), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    min: MinPosition,
    ApiQuery(params): ApiQuery<OperationLogParams>,
) -> Result<CommandResponse<OperationLogResponse>, ApiError> {
    medledger_commands::authorization::authorize(&p, Action::ViewOperationLog, &p.tenant)?;
    if matches!(params.limit, Some(0) | Some(501..)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit must be 1 to 500",
        ));
    }
    min.wait(&state, audit_log::NAME).await?;
    let (alliance, hospital) = match p.role {
        AccountRole::PlatformOperator => (None, None),
        AccountRole::AllianceAdministrator => (Some(p.tenant.alliance_id.ok_or_else(ApiError::not_found)?), None),
        _ => (None, Some(p.tenant.hospital_id.ok_or_else(ApiError::not_found)?)),
    };
    let query = AuditQuery {
        actor: params.user,
        event_type: params.action,
        alliance,
        hospital,
        from: params.from,
        to: params.to,
        before: params.cursor,
        limit: params.limit.unwrap_or(50),
        ..Default::default()
    };
    let page = audit_log::query(&state.app.store.read_models(), &state.app.codec, &query).await?;
    let mut filters = serde_json::to_value(&query).unwrap_or_default();
    filters["view"] = "operation_log".into();
    let position = record_audit_view(
        &state.app,
        &p,
        Action::ViewOperationLog,
        filters,
        page.items.len() as u32,
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    let items = page
        .items
        .into_iter()
        .map(|e| Operation {
            position: e.position,
            time: e.recorded_at,
            user: e.metadata.get("actor").and_then(|v| v.as_str()).map(String::from),
            action: e.event_type,
            target: e.stream_id,
            ip: e.metadata.get("ip").and_then(|v| v.as_str()).map(String::from),
            client: e.metadata.get("client").and_then(|v| v.as_str()).map(String::from),
        })
        .collect();
    Ok(CommandResponse {
        status: StatusCode::OK,
        position,
        body: OperationLogResponse {
            items,
            next_cursor: page.next_cursor,
            position,
        },
    })
}
