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
        super::auth::issue_ticket,
        super::auth::confirm_ticket,
        super::auth::redeem_ticket,
        super::auth::request_reset,
        super::auth::confirm_reset,
        super::me::me,
        super::me::change_password,
        super::me::bind_phone,
        super::me::sessions,
        super::me::revoke_session,
        super::audit::list_events,
        super::operation_log::list,
        super::organization::permissions,
        super::organization::create_alliance,
        super::organization::list_alliances,
        super::organization::register_hospital,
        super::organization::list_hospitals,
        super::organization::get_hospital,
        super::organization::update_profile,
        super::organization::upload_logo,
        super::organization::get_logo,
        super::organization::qr_png,
        super::organization::qr_svg,
        super::organization::create_department,
        super::organization::list_departments,
        super::organization::define_role,
        super::organization::list_roles,
        super::organization::change_role_permissions,
        super::users::create_user,
        super::users::search,
        super::users::get_user,
        super::users::disable,
        super::users::enable,
        super::users::unfreeze,
        super::users::assign_roles,
        super::dicomweb::stow,
        super::dicomweb::retrieve,
        super::dicomweb::search_studies,
        super::dicomweb::search_series,
        super::rendering::frames,
        super::rendering::rendered,
        super::rendering::thumbnail,
        super::studies::list,
    ),
    components(schemas(
        super::problem::Problem,
        super::auth::LoginRequest,
        super::auth::LoginClient,
        super::auth::LoginResponse,
        super::auth::PositionResponse,
        super::me::MeResponse,
        super::audit::AuditEventsResponse,
        super::auth::TicketResponse,
        super::auth::TicketSecret,
        super::auth::RedeemRequest,
        super::auth::RedeemResponse,
        super::auth::ResetRequest,
        super::auth::ResetRequested,
        super::auth::ResetConfirm,
        super::me::ChangePassword,
        super::me::BindPhone,
        super::me::SessionsResponse,
        super::operation_log::Operation,
        super::operation_log::OperationLogResponse,
        super::organization::PersonBody,
        super::organization::Created,
        super::organization::CreateAlliance,
        super::organization::RegisterHospital,
        super::organization::HospitalProfileBody,
        super::organization::CreateDepartment,
        super::organization::DefineRole,
        super::organization::RolePermissions,
        super::organization::PermissionInfo,
        super::users::CreateUser,
        super::users::AssignRoles,
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
