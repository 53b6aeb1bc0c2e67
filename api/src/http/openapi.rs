//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::path::{HttpMethod, Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
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
        super::dicomweb::search_study_instances,
        super::rendering::frames,
        super::rendering::rendered,
        super::rendering::thumbnail,
        super::studies::list,
        super::dicomweb::metadata,
        super::dicomweb::bulkdata,
        super::imaging::share,
        super::imaging::delete,
        super::imaging::restore,
        super::imaging::archive,
        super::imaging::retrieve,
        super::imaging::get_columns,
        super::imaging::put_columns,
        super::imaging::notifications,
        super::imaging::usage,
        super::imaging::uploads,
        super::imaging::set_storage_plan,
        super::imaging::list_peers,
        super::imaging::register_peer,
        super::imaging::remove_peer,
        super::imaging::forget_patient,
        super::reports::open_study_report,
        super::report_pdf::verify,
        super::reports::list,
        super::reports::get,
        super::reports::history,
        super::reports::acquire_lock,
        super::reports::heartbeat,
        super::reports::release_lock,
        super::reports::break_lock,
        super::reports::save,
        super::reports::submit,
        super::reports::review,
        super::reports::send_back,
        super::reports::amend,
        super::reports::print,
        super::reports::insert_phrase,
        super::reports::priors,
        super::reports::diff,
        super::reports::create_template,
        super::reports::list_templates,
        super::reports::get_template,
        super::reports::update_template,
        super::reports::retire_template,
        super::reports::create_entry,
        super::reports::search_knowledge,
        super::reports::update_entry,
        super::reports::retire_entry,
        super::reports::get_settings,
        super::reports::change_settings,
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
        super::reports::ReportResponse,
        super::reports::OpenReport,
        super::reports::SaveReport,
        super::reports::VersionBody,
        super::reports::ReasonBody,
        super::reports::PrintBody,
        super::reports::Printed,
        super::reports::InsertPhrase,
        super::reports::CreatedId,
        super::reports::NewEntry,
        super::reports::SettingsBody,
        super::reports::Prior,
    )),
    modifiers(&Bearer, &DicomwebRoutes)
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

const INSTANCE: &str = "/dicomweb/studies/{study}/series/{series}/instances/{instance}";

/// DICOMweb routes served by a handler documented under another of its routes:
/// (documented, also served at).
const DICOMWEB_SIBLINGS: &[(&str, &str)] = &[
    (INSTANCE, "/dicomweb/studies/{study}"),
    (INSTANCE, "/dicomweb/studies/{study}/series/{series}"),
    (
        "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata",
        "/dicomweb/studies/{study}/metadata",
    ),
    (
        "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata",
        "/dicomweb/studies/{study}/series/{series}/metadata",
    ),
    (
        "/dicomweb/studies/{study}/series",
        "/dicomweb/studies/{study}/series/{series}/instances",
    ),
    (
        "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered",
        "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
    ),
    (
        "/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail",
        "/dicomweb/studies/{study}/series/{series}/thumbnail",
    ),
    (
        "/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail",
        "/dicomweb/studies/{study}/thumbnail",
    ),
];

/// The own root's read operations again under the prior root of a report.
const PRIOR_ROOT: &str = "/dicomweb/reports/{report}/priors";

/// Documents every DICOMweb read route: the routes a handler serves besides the one it is
/// annotated with, and the read-only prior root (`/dicomweb/reports/{report}/priors/…`),
/// whose operations are those of `/dicomweb/…` for the studies other hospitals share.
struct DicomwebRoutes;

/// `{name}` segments of a path template, in order.
fn path_names(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// `operation` fitted to `path`: its path parameters exactly the path's, a unique id.
fn fitted(mut operation: Operation, path: &str) -> Operation {
    let names = path_names(path);
    let mut parameters = operation.parameters.take().unwrap_or_default();
    parameters.retain(|p| p.parameter_in != ParameterIn::Path || names.contains(&p.name.as_str()));
    for name in names.iter().rev() {
        if !parameters
            .iter()
            .any(|p| p.parameter_in == ParameterIn::Path && p.name == *name)
        {
            let mut p = Parameter::new(*name);
            p.parameter_in = ParameterIn::Path;
            p.schema = Some(ObjectBuilder::new().schema_type(Type::String).build().into());
            parameters.insert(0, p);
        }
    }
    operation.parameters = Some(parameters);
    let id: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    operation.operation_id = Some(format!("get{}", id.replace("__", "_").trim_end_matches('_')));
    operation
}

impl Modify for DicomwebRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let paths = &mut openapi.paths.paths;
        for (documented, also) in DICOMWEB_SIBLINGS {
            if let Some(get) = paths.get(*documented).and_then(|i| i.get.clone()) {
                paths.insert(also.to_string(), PathItem::new(HttpMethod::Get, fitted(get, also)));
            }
        }
        let own: Vec<(String, Operation)> = paths
            .iter()
            .filter(|(path, _)| path.starts_with("/dicomweb/studies"))
            .filter_map(|(path, item)| item.get.clone().map(|get| (path.clone(), get)))
            .collect();
        for (path, mut get) in own {
            let prior = path.replacen("/dicomweb", PRIOR_ROOT, 1);
            let mut report = Parameter::new("report");
            report.parameter_in = ParameterIn::Path;
            report.description = Some("one of the caller's reports: the priors are its patient's".into());
            report.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .build()
                    .into(),
            );
            get.parameters.get_or_insert_with(Vec::new).insert(0, report);
            get.summary = Some(format!(
                "Prior of a report (read-only): `{path}` for a study another hospital of the alliance shares"
            ));
            get.description = Some(format!(
                "As `GET {path}`, for the studies other hospitals of the caller's alliance share as \
                 priors (`prior_sharing` `studies` or `studies_and_reports`) of the patient of \
                 `report`, one of the caller's own reports: same Patient ID and birth date, decided \
                 at this request. Needs `study.view` (403) and the report (404); anything not shared \
                 with it is 404. Study-level requests are recorded as `PriorStudyViewed`."
            ));
            paths.insert(prior.clone(), PathItem::new(HttpMethod::Get, fitted(get, &prior)));
        }
    }
}

/// `GET /api/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dicomweb_read_route_is_documented_under_both_roots_with_its_own_parameters() {
        let doc = ApiDoc::openapi();
        let paths = &doc.paths.paths;
        let mut ids = std::collections::BTreeSet::new();
        for (_, item) in paths.iter().filter(|(p, _)| p.starts_with("/dicomweb")) {
            for op in [&item.get, &item.post, &item.put, &item.delete].into_iter().flatten() {
                let id = op.operation_id.clone().expect("an operation id");
                assert!(ids.insert(id.clone()), "operation id {id} twice");
            }
        }
        for (_, also) in DICOMWEB_SIBLINGS {
            let prior = also.replacen("/dicomweb", PRIOR_ROOT, 1);
            for path in [also.to_string(), prior] {
                let get = paths[&path].get.as_ref().unwrap_or_else(|| panic!("GET {path}"));
                let mut named: Vec<&str> = get
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Path)
                    .map(|p| p.name.as_str())
                    .collect();
                named.sort();
                let mut wanted = path_names(&path);
                wanted.sort();
                assert_eq!(named, wanted, "{path}");
            }
        }
        let search = paths["/dicomweb/reports/{report}/priors/studies"].get.as_ref().unwrap();
        assert!(search.description.as_deref().unwrap().contains("PriorStudyViewed"));
        let reads = paths.keys().filter(|p| p.starts_with("/dicomweb/studies")).count();
        let priors = paths.keys().filter(|p| p.starts_with(PRIOR_ROOT)).count();
        assert_eq!((reads, priors), (17, 17), "every read route under both roots");
        assert!(paths["/dicomweb/studies"].post.is_some(), "STOW-RS");
        assert!(
            paths[&format!("{PRIOR_ROOT}/studies")].post.is_none(),
            "the prior root is read-only"
        );
    }
}
