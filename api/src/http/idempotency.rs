//! `Idempotency-Key` for POST commands: the same key with the same request
//! returns the first response and writes nothing new; the same key with a
//! different request is refused (422). Keys are scoped to the caller's
//! credentials and the path. A server error frees the key for a retry.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medledger_commands::args;
use sha2::{Digest, Sha256};

use super::extract::bearer;
use super::problem::ApiError;
use super::{AppState, BODY_LIMIT};

/// Response headers worth replaying.
const KEPT_HEADERS: [&str; 2] = ["content-type", "x-event-position"];

pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    match handle(state, key, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: AppState, key: HeaderValue, req: Request, next: Next) -> Result<Response, ApiError> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?
        .to_string();
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is too large",
        )
    })?;
    let credentials = bearer(&parts.headers).unwrap_or("anonymous");
    let scope = format!(
        "{}:{}",
        hex::encode(Sha256::digest(credentials.as_bytes())),
        parts.uri.path()
    );
    let request_hash = {
        let mut h = Sha256::new();
        h.update(parts.method.as_str());
        h.update([0]);
        h.update(parts.uri.to_string());
        h.update([0]);
        h.update(&bytes);
        hex::encode(h.finalize())
    };
    let db = state.app.store.db();
    let now = state.app.clock.now();
    let claimed = db
        .execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, key) DO NOTHING",
            &args![scope.as_str(), key.as_str(), request_hash.as_str(), now],
        )
        .await
        .map_err(store_down)?;
    if claimed == 0 {
        let row = db
            .fetch_optional(
                "SELECT request_hash, status, headers, body FROM idempotency_keys WHERE scope = $1 AND key = $2",
                &args![scope.as_str(), key.as_str()],
            )
            .await
            .map_err(store_down)?
            .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "idempotency_in_progress", "retry shortly"))?;
        let stored_hash: String = row.get(0).map_err(store_down)?;
        if stored_hash != request_hash {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            ));
        }
        let status: Option<i64> = row.get(1).map_err(store_down)?;
        let Some(status) = status else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "the first request with this Idempotency-Key is still running",
            ));
        };
        let headers: Option<String> = row.get(2).map_err(store_down)?;
        let body: Option<Vec<u8>> = row.get(3).map_err(store_down)?;
        let mut resp = Response::new(Body::from(body.unwrap_or_default()));
        *resp.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
        let saved: Vec<(String, String)> = headers.and_then(|h| serde_json::from_str(&h).ok()).unwrap_or_default();
        for (k, v) in saved {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(resp);
    }

    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    if resp.status().is_server_error() {
        let _ = db
            .execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2",
                &args![scope.as_str(), key.as_str()],
            )
            .await;
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let body = to_bytes(body, 16 * 1024 * 1024).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "response too large",
        )
    })?;
    let headers = kept(&parts.headers);
    db.execute(
        "UPDATE idempotency_keys SET status = $3, headers = $4, body = $5 WHERE scope = $1 AND key = $2",
        &args![
            scope.as_str(),
            key.as_str(),
            parts.status.as_u16() as i64,
            serde_json::to_string(&headers).unwrap_or_default(),
            body.to_vec()
        ],
    )
    .await
    .map_err(store_down)?;
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn kept(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HEADERS
        .iter()
        .filter_map(|k| {
            headers
                .get(*k)
                .and_then(|v| v.to_str().ok())
                .map(|v| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn store_down(e: sqlx::Error) -> ApiError {
    tracing::error!(error = %e, "idempotency store failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the service could not complete the request; try again",
    )
}
