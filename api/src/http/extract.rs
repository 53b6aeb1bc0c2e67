//! Request extractors: JSON bodies that fail as problems, the authenticated
//! principal, request metadata for events, and read-your-writes positions.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use medledger_commands::codec::Metadata;
use medledger_commands::identity::{self, Principal};
use medledger_domain::identity::ClientKind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::problem::ApiError;
use super::AppState;

/// `axum::Json`, but every rejection is a problem with a stable code.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    format!("the body does not have the expected shape: {}", e.body_text()),
                ),
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "the body is not valid JSON")
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the body is too large",
                ),
                other => ApiError::new(other.status(), "invalid_body", other.body_text()),
            }),
        }
    }
}

/// Who sent the request and from where; becomes each event's metadata.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Uuid,
}

impl RequestMeta {
    pub fn metadata(&self, principal: Option<&Principal>, client: ClientKind) -> Metadata {
        Metadata {
            actor: principal.map(|p| p.account_id),
            actor_role: principal.map(|p| p.role),
            tenant: principal.map(|p| p.tenant).unwrap_or_default(),
            client,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            correlation_id: self.request_id,
            causation_id: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(Uuid::now_v7);
        Ok(RequestMeta {
            ip,
            user_agent,
            request_id,
        })
    }
}

/// The caller, authenticated by `Authorization: Bearer <token>`.
pub struct Authenticated(pub Principal);

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        // Without the bus, other nodes' revocations cannot reach the cache:
        // decide every request from the streams until it is back.
        if !state.bus.healthy().await {
            state.app.auth.clear();
        }
        Ok(Authenticated(identity::authenticate(&state.app, token).await?))
    }
}

/// `min_position` (query) or `X-Min-Position` (header): the position a
/// client has seen in a command response and wants reflected in the answer.
pub struct MinPosition(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let bad = || {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_min_position",
                "min_position must be a non-negative integer",
            )
        };
        let from_query = parts
            .uri
            .query()
            .and_then(|q| url_param(q, "min_position").map(|v| v.parse::<u64>().map_err(|_| bad())));
        let from_header = parts
            .headers
            .get("x-min-position")
            .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(bad));
        match from_query.or(from_header) {
            Some(Ok(p)) => Ok(MinPosition(Some(p))),
            Some(Err(e)) => Err(e),
            None => Ok(MinPosition(None)),
        }
    }
}

fn url_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The longest a query waits for a projection before answering 503.
pub const READ_WAIT: Duration = Duration::from_secs(5);

impl MinPosition {
    /// Wait until `projection` has applied the requested position.
    pub async fn wait(&self, state: &AppState, projection: &str) -> Result<(), ApiError> {
        let Some(p) = self.0 else {
            return Ok(());
        };
        if state.status.wait_for(projection, p, READ_WAIT).await {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "projection_lagging",
                format!("the {projection} view has not reached position {p} yet; retry shortly"),
            )
            .with_extra(serde_json::json!({"projection": projection, "min_position": p})))
        }
    }
}

/// A command's answer: JSON body plus the `X-Event-Position` header.
pub struct CommandResponse<T: Serialize> {
    pub status: StatusCode,
    pub position: u64,
    pub body: T,
}

impl<T: Serialize> IntoResponse for CommandResponse<T> {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.position.to_string()) {
            r.headers_mut().insert("x-event-position", v);
        }
        r
    }
}

/// `axum::extract::Query`, with rejections as problems.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
    }
}

/// `axum::extract::Path`, with rejections as problems (a malformed id is a
/// 404: such a resource cannot exist).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|_| ApiError::not_found())
    }
}
