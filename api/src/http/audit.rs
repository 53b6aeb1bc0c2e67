//! The audit log: every event, filtered and paginated, for auditors. Looking
//! is itself recorded (`AuditLogViewed`).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use medledger_commands::administration::record_audit_view;
use medledger_commands::authorization::{authorize, Action};
use medledger_projections::read_models::audit_log::{self, AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{ApiQuery, Authenticated, CommandResponse, MinPosition, RequestMeta};
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this stream (e.g. `account-…`).
    pub stream: Option<String>,
    /// Only this event type (e.g. `LoginFailed`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events by this actor (account id).
    pub actor: Option<Uuid>,
    /// Only events of this hospital.
    pub hospital: Option<Uuid>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
    /// Wait until this position is reflected.
    pub min_position: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventsResponse {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<u64>,
    /// Position of the `AuditLogViewed` event this query wrote.
    pub position: u64,
}

/// List events, newest first (platform operators only).
#[utoipa::path(get, path = "/api/v1/audit/events", security(("bearer" = [])), params(AuditParams),
    responses((status = 200, body = AuditEventsResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_events(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    meta: RequestMeta,
    min: MinPosition,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<CommandResponse<AuditEventsResponse>, ApiError> {
    authorize(&principal, Action::ReadAuditLog, &principal.tenant)?;
    if let (Some(f), Some(t)) = (params.from, params.to) {
        if f > t {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "`from` is after `to`",
            ));
        }
    }
    if matches!(params.limit, Some(0) | Some(501..)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit must be 1 to 500",
        ));
    }
    min.wait(&state, audit_log::NAME).await?;
    let query = AuditQuery {
        stream: params.stream,
        event_type: params.event_type,
        actor: params.actor,
        hospital: params.hospital,
        from: params.from,
        to: params.to,
        before: params.cursor,
        limit: params.limit.unwrap_or(50),
        ..Default::default()
    };
    let page = audit_log::query(&state.app.store.read_models(), &state.app.codec, &query).await?;
    let filters = serde_json::to_value(&query).unwrap_or_default();
    let position = record_audit_view(
        &state.app,
        &principal,
        Action::ReadAuditLog,
        filters,
        page.items.len() as u32,
        &meta.metadata(Some(&principal), principal.client),
    )
    .await?;
    Ok(CommandResponse {
        status: StatusCode::OK,
        position,
        body: AuditEventsResponse {
            items: page.items,
            next_cursor: page.next_cursor,
            position,
        },
    })
}
