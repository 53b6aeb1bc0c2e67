//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "MedLedger API", description = "Event-sourced platform for medical imaging networks."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::auth::login,
        super::auth::logout,
        super::me::me,
        super::audit::list_events,
    ),
    components(schemas(
        super::problem::Problem,
        super::auth::LoginRequest,
        super::auth::LoginClient,
        super::auth::LoginResponse,
        super::auth::PositionResponse,
        super::me::MeResponse,
        super::audit::AuditEventsResponse,
    )),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
