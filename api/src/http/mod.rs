//! The HTTP server: one route group per file, one error type
//! ([`problem::ApiError`]), one state ([`AppState`]).

pub mod audit;
pub mod auth;
pub mod dicomweb;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod imaging;
pub mod me;
pub mod openapi;
pub mod operation_log;
pub mod organization;
pub mod problem;
pub mod rendering;
pub mod report_pdf;
pub mod reports;
pub mod studies;
pub mod users;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;
use medledger_commands::blobs::BlobStore;
use medledger_commands::identity::Notifier;
use medledger_commands::App;
use medledger_projections::bus::Bus;
use medledger_projections::Status;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use problem::ApiError;

/// Largest accepted request body of the JSON API.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub status: Status,
    pub bus: Arc<dyn Bus>,
    pub metrics: PrometheusHandle,
    pub notifier: Arc<dyn Notifier>,
    pub blobs: BlobStore,
    /// The platform's public base URL (what QR codes point at by default).
    pub public_url: String,
    /// Thumbnails and `variant=thumbnail` renders (memory, then the object store).
    pub renders: Arc<medledger_dicom_ingest::render_cache::RenderCache>,
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/qr-tickets", post(auth::issue_ticket))
        .route("/auth/qr-tickets/{id}/confirm", post(auth::confirm_ticket))
        .route("/auth/qr-tickets/{id}/redeem", post(auth::redeem_ticket))
        .route("/auth/password-resets", post(auth::request_reset))
        .route("/auth/password-resets/confirm", post(auth::confirm_reset))
        .route("/me", get(me::me))
        .route("/me/password", post(me::change_password))
        .route("/me/phone", post(me::bind_phone))
        .route("/me/sessions", get(me::sessions))
        .route("/me/sessions/{id}/revoke", post(me::revoke_session))
        .route("/audit/events", get(audit::list_events))
        .route("/operation-log", get(operation_log::list))
        .route("/permissions", get(organization::permissions))
        .route(
            "/alliances",
            post(organization::create_alliance).get(organization::list_alliances),
        )
        .route("/alliances/{id}/hospitals", post(organization::register_hospital))
        .route("/hospitals", get(organization::list_hospitals))
        .route("/hospitals/{id}", get(organization::get_hospital))
        .route("/hospitals/{id}/profile", post(organization::update_profile))
        .route(
            "/hospitals/{id}/logo",
            post(organization::upload_logo)
                .get(organization::get_logo)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/hospitals/{id}/qr.png", get(organization::qr_png))
        .route("/hospitals/{id}/qr.svg", get(organization::qr_svg))
        .route(
            "/hospitals/{id}/departments",
            post(organization::create_department).get(organization::list_departments),
        )
        .route(
            "/hospitals/{id}/roles",
            post(organization::define_role).get(organization::list_roles),
        )
        .route("/roles/{id}/permissions", post(organization::change_role_permissions))
        .route("/hospitals/{id}/users", post(users::create_user))
        .route("/users", get(users::search))
        .route("/users/{id}", get(users::get_user))
        .route("/users/{id}/disable", post(users::disable))
        .route("/users/{id}/enable", post(users::enable))
        .route("/users/{id}/unfreeze", post(users::unfreeze))
        .route("/users/{id}/roles", post(users::assign_roles))
        .route("/studies", get(studies::list))
        .route("/studies/{study}/share", post(imaging::share))
        .route("/studies/{study}/delete", post(imaging::delete))
        .route("/studies/{study}/restore", post(imaging::restore))
        .route("/studies/{study}/archive", post(imaging::archive))
        .route("/studies/{study}/retrieve", post(imaging::retrieve))
        .route(
            "/me/worklist-columns",
            get(imaging::get_columns).put(imaging::put_columns),
        )
        .route("/me/notifications", get(imaging::notifications))
        .route("/storage/usage", get(imaging::usage))
        .route("/storage/uploads", get(imaging::uploads))
        .route("/hospitals/{id}/storage-plan", put(imaging::set_storage_plan))
        .route(
            "/hospitals/{id}/dicom-peers",
            get(imaging::list_peers).post(imaging::register_peer),
        )
        .route("/hospitals/{id}/dicom-peers/{ae_title}", delete(imaging::remove_peer))
        .route("/admin/forget-patient", post(imaging::forget_patient))
        .route("/studies/{study_uid}/report", post(reports::open_study_report))
        .route("/reports", get(reports::list))
        .route("/reports/{id}", get(reports::get))
        .route("/reports/{id}/history", get(reports::history))
        .route("/reports/{id}/lock", post(reports::acquire_lock))
        .route("/reports/{id}/lock/heartbeat", post(reports::heartbeat))
        .route("/reports/{id}/lock/release", post(reports::release_lock))
        .route("/reports/{id}/lock/break", post(reports::break_lock))
        .route("/reports/{id}/save", post(reports::save))
        .route("/reports/{id}/submit", post(reports::submit))
        .route("/reports/{id}/review", post(reports::review))
        .route("/reports/{id}/send-back", post(reports::send_back))
        .route("/reports/{id}/amend", post(reports::amend))
        .route("/reports/{id}/print", post(reports::print))
        .route("/reports/{id}/phrases", post(reports::insert_phrase))
        .route("/reports/{id}/priors", get(reports::priors))
        .route("/reports/{id}/diff", get(reports::diff))
        .route(
            "/report-templates",
            post(reports::create_template).get(reports::list_templates),
        )
        .route(
            "/report-templates/{id}",
            get(reports::get_template).post(reports::update_template),
        )
        .route("/report-templates/{id}/retire", post(reports::retire_template))
        .route("/knowledge", post(reports::create_entry).get(reports::search_knowledge))
        .route("/knowledge/{id}", post(reports::update_entry))
        .route("/knowledge/{id}/retire", post(reports::retire_entry))
        .route(
            "/report-settings",
            get(reports::get_settings).post(reports::change_settings),
        );
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/openapi.json", get(openapi::document))
        .route("/verify/reports/{id}", get(report_pdf::verify))
        .nest("/api/v1", api)
        .route(
            "/dicomweb/studies",
            post(dicomweb::stow)
                .get(dicomweb::search_studies)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/dicomweb/studies/{study}", get(dicomweb::retrieve))
        .route("/dicomweb/studies/{study}/metadata", get(dicomweb::metadata))
        .route(
            "/dicomweb/studies/{study}/series/{series}/metadata",
            get(dicomweb::metadata),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata",
            get(dicomweb::metadata),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}",
            get(dicomweb::bulkdata),
        )
        .route("/dicomweb/studies/{study}/series", get(dicomweb::search_series))
        .route(
            "/dicomweb/studies/{study}/instances",
            get(dicomweb::search_study_instances),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances",
            get(dicomweb::search_series),
        )
        .route("/dicomweb/studies/{study}/series/{series}", get(dicomweb::retrieve))
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}",
            get(dicomweb::retrieve),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            get(rendering::frames),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(rendering::rendered),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            get(rendering::rendered),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            get(rendering::thumbnail),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/thumbnail",
            get(rendering::thumbnail),
        )
        .route("/dicomweb/studies/{study}/thumbnail", get(rendering::thumbnail))
        // The priors of one of the caller's reports, read-only: the same handlers, with the
        // studies other hospitals of the alliance share (see `dicomweb::Source`).
        .route("/dicomweb/reports/{report}/priors/studies", get(dicomweb::search_studies))
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}",
            get(dicomweb::retrieve),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/metadata",
            get(dicomweb::metadata),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series",
            get(dicomweb::search_series),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/instances",
            get(dicomweb::search_study_instances),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/thumbnail",
            get(rendering::thumbnail),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}",
            get(dicomweb::retrieve),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/metadata",
            get(dicomweb::metadata),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances",
            get(dicomweb::search_series),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/thumbnail",
            get(rendering::thumbnail),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}",
            get(dicomweb::retrieve),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/metadata",
            get(dicomweb::metadata),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}",
            get(dicomweb::bulkdata),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            get(rendering::frames),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(rendering::rendered),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            get(rendering::rendered),
        )
        .route(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            get(rendering::thumbnail),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this resource does not support that method",
            )
        })
        .layer(from_fn_with_state(state.clone(), idempotency::idempotency))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn(track))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Request counts and latencies per route and status.
async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("medledger_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("medledger_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
