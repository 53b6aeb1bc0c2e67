//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use medledger_commands::relay::RELAY_CHECKPOINT;
use serde_json::json;

use super::AppState;

/// Readiness fails when a projection is this far behind the log.
const MAX_READY_LAG: u64 = 10_000;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers, the bus is reachable and projections keep up.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.app.store.head_position().await;
    let bus = state.bus.healthy().await;
    let (head, store_ok) = match &store {
        Ok(h) => (*h, true),
        Err(_) => (0, false),
    };
    let mut lagging = false;
    let projections: serde_json::Map<String, serde_json::Value> = state
        .status
        .names()
        .into_iter()
        .map(|n| {
            let lag = head.saturating_sub(state.status.position(n));
            lagging |= lag > MAX_READY_LAG;
            (n.to_string(), json!({"lag": lag}))
        })
        .collect();
    let ready = store_ok && bus && !lagging;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "bus": {"kind": state.bus.kind(), "status": if bus { "ok" } else { "unreachable" }},
        "head_position": head,
        "projections": projections,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(head) = state.app.store.head_position().await {
        metrics::gauge!("medledger_log_head_position").set(head as f64);
        if let Ok(relayed) = state.app.store.checkpoint(RELAY_CHECKPOINT).await {
            metrics::gauge!("medledger_relay_lag_events").set(head.saturating_sub(relayed) as f64);
        }
        for n in state.status.names() {
            metrics::gauge!("medledger_projection_lag_events", "projection" => n)
                .set(head.saturating_sub(state.status.position(n)) as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
