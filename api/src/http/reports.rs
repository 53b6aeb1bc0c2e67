//! Diagnostic reports over HTTP: open a study's report, edit it under the
//! single-editor lock, submit, review, send back, amend, record prints;
//! history and `as_of` views; the patient's priors and report diffs;
//! report templates, the knowledge base and the hospital's reporting
//! settings. Commands go through `commands::reporting`; lists come from the
//! `reports` read model.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use medledger_commands::authorization::{authorize, Action};
use medledger_commands::reporting::{
    self as rep, HistoryEntry, PrintDocument, ReportDiff, ReportOutcome, SharedReport,
};
use medledger_domain::reporting::knowledge::EntrySpec;
use medledger_domain::reporting::priors::{PriorAccess, PriorUse};
use medledger_domain::reporting::report::{Report, ReportContent};
use medledger_domain::reporting::settings::{PriorSharing, ReportingSettings};
use medledger_domain::reporting::template::{ReportTemplate, TemplateSpec};
use medledger_domain::reporting::StudyRef;
use medledger_projections::read_models::reports::{
    self as rm, KnowledgeFilter, KnowledgeRow, PriorStudy, ReportFilter, ReportPage, ReportView, TemplateRow,
};
use medledger_projections::read_models::{accounts, worklist};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{done, PositionResponse};
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, CommandResponse, MinPosition, RequestMeta};
use super::problem::{ApiError, Problem};
use super::AppState;

fn bad_query(detail: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", detail.to_string())
}

/// A page of a list: pass `next_cursor` back as `cursor` for the next one; the last
/// page has none.
#[derive(Serialize, ToSchema)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Cursors are opaque to clients: the last row's sort key, as base64url JSON.
fn cursor_of<K: Serialize>(key: &K) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// The sort key in a cursor this API gave out; anything else is 400 `invalid_query`.
fn key_of<K: serde::de::DeserializeOwned>(cursor: Option<&str>) -> Result<Option<K>, ApiError> {
    use base64::Engine;
    cursor
        .map(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|json| serde_json::from_slice(&json).ok())
                .ok_or_else(|| bad_query("cursor is not one this API gave out"))
        })
        .transpose()
}

fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        Some(0) | Some(201..) => Err(bad_query("limit must be 1 to 200")),
        other => Ok(other.unwrap_or(50)),
    }
}

fn page<T: Serialize, K: Serialize>(slice: rm::Slice<T>, key: impl Fn(&T) -> K) -> Page<T> {
    let next_cursor = slice
        .more
        .then(|| slice.items.last().map(|last| cursor_of(&key(last))))
        .flatten();
    Page {
        items: slice.items,
        next_cursor,
    }
}

/// A report command's answer: the report as it now stands.
#[derive(Serialize, ToSchema)]
pub struct ReportResponse {
    #[schema(value_type = Object)]
    pub report: Report,
    /// True when this request created the report.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    pub position: u64,
}

fn answer(o: ReportOutcome, created: bool) -> CommandResponse<ReportResponse> {
    CommandResponse {
        status: if created { StatusCode::CREATED } else { StatusCode::OK },
        position: o.position,
        body: ReportResponse {
            report: o.report,
            created,
            position: o.position,
        },
    }
}

/// A refused lock names its holder: add their display name when the
/// directory knows it.
async fn name_holder(state: &AppState, e: medledger_commands::Error) -> ApiError {
    let mut api = ApiError::from(e);
    if api.code != "report_locked" {
        return api;
    }
    let holder = api
        .extra
        .as_ref()
        .and_then(|x| x.get("holder"))
        .and_then(|h| h.as_str())
        .and_then(|h| h.parse::<Uuid>().ok());
    if let Some(h) = holder {
        if let Ok(Some(view)) = accounts::get(&state.app.store.read_models(), h).await {
            if let Some(obj) = api.extra.as_mut().and_then(|x| x.as_object_mut()) {
                obj.insert("holder_name".into(), serde_json::json!(view.display_name));
                obj.insert("holder_login".into(), serde_json::json!(view.login));
            }
        }
    }
    api
}

type Answer = Result<CommandResponse<ReportResponse>, ApiError>;

async fn respond(state: &AppState, r: Result<ReportOutcome, medledger_commands::Error>) -> Answer {
    match r {
        Ok(o) => Ok(answer(o, false)),
        Err(e) => Err(name_holder(state, e).await),
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct OpenReport {
    /// The template to start a new report from (ignored when the report exists).
    pub template_id: Option<Uuid>,
}

/// Open the study's report for editing: create it the first time (201),
/// otherwise take its edit lock (200). 409 `report_locked` names the holder.
#[utoipa::path(post, path = "/api/v1/studies/{study_uid}/report", security(("bearer" = [])), request_body = OpenReport,
    params(("study_uid" = String, Path)),
    responses((status = 201, body = ReportResponse), (status = 200, body = ReportResponse), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn open_study_report(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(study_uid): ApiPath<String>,
    ApiJson(body): ApiJson<OpenReport>,
) -> Answer {
    let m = meta.metadata(Some(&p), p.client);
    match rep::open_study_report(&state.app, &p, &study_uid, body.template_id, &m).await {
        Ok((o, created)) => Ok(answer(o, created)),
        Err(e) => Err(name_holder(&state, e).await),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `all` (default), `my_drafts`, `awaiting_my_review`, `reviewed_by_me`.
    pub view: Option<String>,
    /// `draft`, `preliminary` or `final`.
    pub status: Option<String>,
    pub critical: Option<bool>,
    pub study: Option<String>,
    pub cursor: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<u32>,
    pub min_position: Option<u64>,
}

/// The caller's hospital's reports, most recently changed first.
#[utoipa::path(get, path = "/api/v1/reports", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<ReportPage>, ApiError> {
    authorize(&p, Action::ViewReports, &p.tenant)?;
    let hospital_id = p.tenant.hospital_id.ok_or_else(ApiError::not_found)?;
    let view = match q.view.as_deref() {
        None | Some("all") => ReportView::All,
        Some("my_drafts") => ReportView::MyDrafts,
        Some("awaiting_my_review") => ReportView::AwaitingMyReview,
        Some("reviewed_by_me") => ReportView::ReviewedByMe,
        Some(_) => {
            return Err(bad_query(
                "view is all, my_drafts, awaiting_my_review or reviewed_by_me",
            ))
        }
    };
    if let Some(s) = &q.status {
        if !["draft", "preliminary", "final"].contains(&s.as_str()) {
            return Err(bad_query("status is draft, preliminary or final"));
        }
    }
    let limit = check_limit(q.limit)?;
    if let Some(c) = &q.cursor {
        let ok = c
            .split_once('|')
            .is_some_and(|(t, id)| DateTime::parse_from_rfc3339(t).is_ok() && id.parse::<Uuid>().is_ok());
        if !ok {
            return Err(bad_query("cursor is not one this API gave out"));
        }
    }
    let filter = ReportFilter {
        hospital_id,
        user: p.account_id,
        view,
        status: q.status,
        critical: q.critical,
        study_instance_uid: q.study,
        cursor: q.cursor,
        limit,
    };
    min.wait(&state, rm::NAME).await?;
    Ok(Json(rm::list(&state.app.store.read_models(), &filter).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AsOf {
    /// RFC 3339 time: the report exactly as it stood then, folded from its events.
    pub as_of: Option<String>,
}

/// A report now, or as it stood at `as_of`.
#[utoipa::path(get, path = "/api/v1/reports/{id}", security(("bearer" = [])), params(("id" = Uuid, Path), AsOf),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<AsOf>,
) -> Result<Json<Report>, ApiError> {
    let as_of = q
        .as_of
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.to_utc())
                .map_err(|_| bad_query("as_of is an RFC 3339 time, e.g. 2026-03-01T09:30:00Z"))
        })
        .transpose()?;
    Ok(Json(rep::get_report(&state.app, &p, id, as_of).await?))
}

/// Every step of a report: who, when, what changed.
#[utoipa::path(get, path = "/api/v1/reports/{id}/history", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)))]
pub async fn history(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    Ok(Json(rep::history(&state.app, &p, id).await?))
}

macro_rules! lock_command {
    ($name:ident, $path:literal, $doc:literal, $f:path) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, security(("bearer" = [])), params(("id" = Uuid, Path)),
            responses((status = 200, body = ReportResponse), (status = 403, body = Problem), (status = 404, body = Problem),
                      (status = 409, body = Problem)))]
        pub async fn $name(
            State(state): State<AppState>,
            Authenticated(p): Authenticated,
            meta: RequestMeta,
            ApiPath(id): ApiPath<Uuid>,
        ) -> Answer {
            let m = meta.metadata(Some(&p), p.client);
            respond(&state, $f(&state.app, &p, id, &m).await).await
        }
    };
}

lock_command!(
    acquire_lock,
    "/api/v1/reports/{id}/lock",
    "Open for editing: take the edit lock (the holder extends it).",
    rep::acquire_lock
);
lock_command!(
    heartbeat,
    "/api/v1/reports/{id}/lock/heartbeat",
    "The editor is still there: the lock's 30 idle minutes restart.",
    rep::heartbeat
);
lock_command!(
    release_lock,
    "/api/v1/reports/{id}/lock/release",
    "The holder lets go of the lock.",
    rep::release_lock
);
lock_command!(
    break_lock,
    "/api/v1/reports/{id}/lock/break",
    "Hospital administrator: take the lock away from its holder (audited).",
    rep::break_lock
);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveReport {
    /// The content version the client edited.
    pub version: u64,
    #[serde(default)]
    pub findings: String,
    #[serde(default)]
    pub impression: String,
    #[serde(default)]
    pub recommendations: String,
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: std::collections::BTreeMap<String, String>,
    /// Key images by SOP Instance UID.
    #[serde(default)]
    pub key_images: Vec<String>,
    /// Save and close: releases the lock.
    #[serde(default)]
    pub close: bool,
}

/// Save the report (needs the lock). A stale `version` is 409 `stale_report_version`.
#[utoipa::path(post, path = "/api/v1/reports/{id}/save", security(("bearer" = [])), request_body = SaveReport,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportResponse), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn save(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(b): ApiJson<SaveReport>,
) -> Answer {
    let m = meta.metadata(Some(&p), p.client);
    let content = ReportContent {
        findings: b.findings,
        impression: b.impression,
        recommendations: b.recommendations,
        critical: b.critical,
        fields: b.fields,
        key_images: b.key_images,
    };
    respond(
        &state,
        rep::save(&state.app, &p, id, b.version, content, b.close, &m).await,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionBody {
    /// The content version the caller read.
    pub version: u64,
}

/// Submit the preliminary report (初诊; needs `report.preliminary`).
#[utoipa::path(post, path = "/api/v1/reports/{id}/submit", security(("bearer" = [])), request_body = VersionBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportResponse), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn submit(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(b): ApiJson<VersionBody>,
) -> Answer {
    let m = meta.metadata(Some(&p), p.client);
    respond(&state, rep::submit_preliminary(&state.app, &p, id, b.version, &m).await).await
}

/// Review (审核) into a final report (needs `report.review`; not the
/// preliminary author unless the hospital allows self-review).
#[utoipa::path(post, path = "/api/v1/reports/{id}/review", security(("bearer" = [])), request_body = VersionBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportResponse), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
pub async fn review(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(b): ApiJson<VersionBody>,
) -> Answer {
    let m = meta.metadata(Some(&p), p.client);
    respond(&state, rep::review(&state.app, &p, id, b.version, &m).await).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// 1–500 characters.
    pub reason: String,
}

/// Reviewer: send a preliminary report back to draft with a reason.
#[utoipa::path(post, path = "/api/v1/reports/{id}/send-back", security(("bearer" = [])), request_body = ReasonBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportResponse), (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn send_back(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(b): ApiJson<ReasonBody>,
) -> Answer {
    let m = meta.metadata(Some(&p), p.client);
    respond(&state, rep::send_back(&state.app, &p, id, &b.reason, &m).await).await
}

/// Reviewer: reopen a final report for correction; the final version stays
/// on record as superseded.
#[utoipa::path(post, path = "/api/v1/reports/{id}/amend", security(("bearer" = [])), request_body = ReasonBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportResponse), (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn amend(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(b): ApiJson<ReasonBody>,
) -> Answer {
    let m = meta.metadata(Some(&p), p.client);
    respond(&state, rep::amend(&state.app, &p, id, &b.reason, &m).await).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrintBody {
    /// 1–50 (default 1).
    pub copies: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Printed {
    pub report_id: Uuid,
    pub copies: u32,
    pub printed_by: Uuid,
    pub at: DateTime<Utc>,
    /// How many prints the report has had, this one included.
    pub print_count: usize,
    /// What the PDF renderer lays out.
    #[schema(value_type = Object)]
    pub document: PrintDocument,
    pub position: u64,
}

/// Record a print of a final report (needs `report.print`).
#[utoipa::path(post, path = "/api/v1/reports/{id}/print", security(("bearer" = [])), request_body = PrintBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Printed), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn print(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(b): ApiJson<PrintBody>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let wants_pdf = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/pdf"));
    let m = meta.metadata(Some(&p), p.client);
    let o = rep::print(&state.app, &p, id, b.copies.unwrap_or(1), &m).await?;
    let last = o.report.prints.last().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_error",
            "the print was not recorded",
        )
    })?;
    if wants_pdf {
        let pdf = super::report_pdf::render(&state, &p, id, last.at).await?;
        let mut response = (StatusCode::OK, pdf).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/pdf"),
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&o.position.to_string()) {
            headers.insert("x-event-position", v);
        }
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("inline; filename=\"report-{id}.pdf\"")) {
            headers.insert(axum::http::header::CONTENT_DISPOSITION, v);
        }
        return Ok(response);
    }
    let document = rep::printable(&state.app, &p, id).await?;
    Ok(CommandResponse {
        status: StatusCode::OK,
        position: o.position,
        body: Printed {
            report_id: id,
            copies: last.copies,
            printed_by: last.printed_by,
            at: last.at,
            print_count: o.report.prints.len(),
            document,
            position: o.position,
        },
    }
    .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertPhrase {
    pub entry_id: Uuid,
    /// The content version the client edited.
    pub version: u64,
}

/// Insert a knowledge-base entry's text; the answer holds the merged report.
#[utoipa::path(post, path = "/api/v1/reports/{id}/phrases", security(("bearer" = [])), request_body = InsertPhrase,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn insert_phrase(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(b): ApiJson<InsertPhrase>,
) -> Answer {
    let m = meta.metadata(Some(&p), p.client);
    respond(
        &state,
        rep::insert_phrase(&state.app, &p, id, b.entry_id, b.version, &m).await,
    )
    .await
}

/// A prior study and, for a study another hospital of the alliance shares with
/// its reports, the text of its final report (those reports cannot be opened by id).
#[derive(Serialize, ToSchema)]
pub struct Prior {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub study: PriorStudy,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub shared_report: Option<SharedReport>,
    /// The study under the DICOMweb root it is served from: `/dicomweb/studies/{uid}` for the
    /// hospital's own, `/dicomweb/reports/{id}/priors/studies/{uid}` for another hospital's.
    pub retrieve_url: String,
}

/// The studies other hospitals of the alliance share as priors of the context report's
/// patient, newest first: found by the priors search (same Patient ID and birth date in the
/// worklist), each confirmed from the streams ([`rep::PriorContext::check`]: what they do not
/// share now is not named), with the text of its final report when shared with reports.
pub(super) async fn shared_priors(state: &AppState, context: &rep::PriorContext) -> Result<Vec<Prior>, ApiError> {
    let (Some(alliance_id), Some(patient)) = (context.tenant.alliance_id, context.patient()) else {
        return Ok(vec![]);
    };
    let who = rm::AlliancePatient {
        alliance_id,
        hospital_id: context.report.study.hospital_id,
        patient_id: patient.patient_id().to_string(),
        birth_date: patient.birth_date().to_string(),
    };
    let root = super::dicomweb::prior_root(&state.public_url, context.report.id);
    let mut shared = Vec::new();
    for mut study in rm::alliance_priors(&state.app.store.read_models(), &who).await? {
        let at = StudyRef {
            hospital_id: study.hospital_id,
            study_instance_uid: study.study_instance_uid.clone(),
        };
        let Ok(sharing) = context.check(&state.app, &at, PriorUse::Study).await? else {
            continue;
        };
        let shared_report = match (sharing, study.report_id) {
            (PriorSharing::StudiesAndReports, Some(r)) => context.shared_report(&state.app, r).await?,
            _ => None,
        };
        if shared_report.is_none() {
            (study.report_id, study.report_status, study.reviewed_at) = (None, None, None);
        }
        let retrieve_url = format!("{root}/studies/{}", study.study_instance_uid);
        shared.push(Prior {
            study,
            shared_report,
            retrieve_url,
        });
    }
    Ok(shared)
}

/// The patient's studies with their reports (compare 对比): in this hospital, and in the
/// other hospitals of the alliance that share their studies as priors (same Patient ID and
/// birth date). Each names its hospital and where its images are served; other hospitals'
/// reports only when final and shared.
#[utoipa::path(get, path = "/api/v1/reports/{id}/priors", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Prior>), (status = 404, body = Problem)))]
pub async fn priors(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<Prior>>, ApiError> {
    let context = rep::prior_context(&state.app, &p, id).await?;
    let Some(subject) = context.report.patient_subject else {
        return Ok(Json(vec![]));
    };
    min.wait(&state, rm::NAME).await?;
    min.wait(&state, worklist::NAME).await?;
    let own_root = format!("{}/dicomweb", state.public_url.trim_end_matches('/'));
    let mut all: Vec<Prior> = rm::priors(
        &state.app.store.read_models(),
        context.report.study.hospital_id,
        subject,
    )
    .await?
    .into_iter()
    .map(|study| Prior {
        retrieve_url: format!("{own_root}/studies/{}", study.study_instance_uid),
        study,
        shared_report: None,
    })
    .collect();
    let shared = shared_priors(&state, &context).await?;
    // Another hospital's report text handed out is a look at its study, on its trail.
    let metadata = meta.metadata(Some(&p), p.client);
    for prior in shared.iter().filter(|prior| prior.shared_report.is_some()) {
        let study = StudyRef {
            hospital_id: prior.study.hospital_id,
            study_instance_uid: prior.study.study_instance_uid.clone(),
        };
        context
            .record_view(&state.app, &study, PriorAccess::ReportText, &metadata)
            .await?;
    }
    all.extend(shared);
    Ok(Json(all))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    /// The report to compare against: another report of the caller's hospital, or another
    /// hospital's final report shared as a prior of this report's patient.
    pub against: Uuid,
}

/// Field-level text diff from `against` to this report, with both reports' study, hospital,
/// status and sign-off time.
#[utoipa::path(get, path = "/api/v1/reports/{id}/diff", security(("bearer" = [])), params(("id" = Uuid, Path), DiffParams),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn diff(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DiffParams>,
) -> Result<Json<ReportDiff>, ApiError> {
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(Json(rep::diff_reports(&state.app, &p, q.against, id, &metadata).await?))
}

// ---- templates ------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct CreatedId {
    pub id: Uuid,
    pub position: u64,
}

fn created(id: Uuid, position: u64) -> CommandResponse<CreatedId> {
    CommandResponse {
        status: StatusCode::CREATED,
        position,
        body: CreatedId { id, position },
    }
}

/// Hospital administrator: a report template for a study type.
#[utoipa::path(post, path = "/api/v1/report-templates", security(("bearer" = [])), request_body = Object,
    responses((status = 201, body = CreatedId), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_template(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(spec): ApiJson<TemplateSpec>,
) -> Result<CommandResponse<CreatedId>, ApiError> {
    let m = meta.metadata(Some(&p), p.client);
    let (id, position) = rep::create_template(&state.app, &p, spec, &m).await?;
    Ok(created(id, position))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TemplateParams {
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub department: Option<Uuid>,
    #[serde(default)]
    pub include_retired: bool,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<u32>,
    pub min_position: Option<u64>,
}

/// The caller's hospital's templates by name (for a study type and department), a page at a time.
#[utoipa::path(get, path = "/api/v1/report-templates", security(("bearer" = [])), params(TemplateParams),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_templates(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiQuery(q): ApiQuery<TemplateParams>,
) -> Result<Json<Page<TemplateRow>>, ApiError> {
    authorize(&p, Action::ViewReports, &p.tenant)?;
    let hospital_id = p.tenant.hospital_id.ok_or_else(ApiError::not_found)?;
    let filter = rm::TemplateFilter {
        hospital_id,
        modality: q.modality,
        body_part: q.body_part,
        department: q.department,
        include_retired: q.include_retired,
        after: key_of(q.cursor.as_deref())?,
        limit: check_limit(q.limit)?,
    };
    min.wait(&state, rm::NAME).await?;
    let slice = rm::templates(&state.app.store.read_models(), &filter).await?;
    Ok(Json(page(slice, |t| (t.spec.name.clone(), t.template_id))))
}

/// One template, from its stream.
#[utoipa::path(get, path = "/api/v1/report-templates/{id}", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_template(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ReportTemplate>, ApiError> {
    Ok(Json(rep::get_template(&state.app, &p, id).await?))
}

/// Hospital administrator: replace a template's definition.
#[utoipa::path(post, path = "/api/v1/report-templates/{id}", security(("bearer" = [])), request_body = Object,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_template(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(spec): ApiJson<TemplateSpec>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let m = meta.metadata(Some(&p), p.client);
    Ok(done(rep::update_template(&state.app, &p, id, spec, &m).await?))
}

/// Hospital administrator: retire a template (kept, no longer offered).
#[utoipa::path(post, path = "/api/v1/report-templates/{id}/retire", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn retire_template(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let m = meta.metadata(Some(&p), p.client);
    Ok(done(rep::retire_template(&state.app, &p, id, &m).await?))
}

// ---- knowledge base -------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// A personal entry (default) or, for administrators, hospital-wide.
    #[serde(default = "yes")]
    pub personal: bool,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub spec: EntrySpec,
}

fn yes() -> bool {
    true
}

/// A knowledge-base entry: personal, or hospital-wide (administrators).
#[utoipa::path(post, path = "/api/v1/knowledge", security(("bearer" = [])), request_body = NewEntry,
    responses((status = 201, body = CreatedId), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_entry(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(b): ApiJson<NewEntry>,
) -> Result<CommandResponse<CreatedId>, ApiError> {
    let m = meta.metadata(Some(&p), p.client);
    let (id, position) = rep::create_entry(&state.app, &p, b.personal, b.spec, &m).await?;
    Ok(created(id, position))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeParams {
    /// Text in the title, findings, impression or tags.
    pub q: Option<String>,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub tag: Option<String>,
    /// `personal`, `hospital` or both (default).
    pub scope: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<u32>,
    pub min_position: Option<u64>,
}

/// Search the hospital's entries and the caller's own, most used first, a page at a time.
#[utoipa::path(get, path = "/api/v1/knowledge", security(("bearer" = [])), params(KnowledgeParams),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn search_knowledge(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiQuery(q): ApiQuery<KnowledgeParams>,
) -> Result<Json<Page<KnowledgeRow>>, ApiError> {
    authorize(&p, Action::ViewReports, &p.tenant)?;
    let hospital_id = p.tenant.hospital_id.ok_or_else(ApiError::not_found)?;
    let personal = match q.scope.as_deref() {
        None => None,
        Some("personal") => Some(true),
        Some("hospital") => Some(false),
        Some(_) => return Err(bad_query("scope is personal or hospital")),
    };
    if q.q.as_ref().is_some_and(|s| s.chars().count() > 100) {
        return Err(bad_query("q has at most 100 characters"));
    }
    let filter = KnowledgeFilter {
        hospital_id,
        user: p.account_id,
        personal,
        query: q.q,
        modality: q.modality,
        body_part: q.body_part,
        tag: q.tag,
        after: key_of(q.cursor.as_deref())?,
        limit: check_limit(q.limit)?,
    };
    min.wait(&state, rm::NAME).await?;
    let slice = rm::search_knowledge(&state.app.store.read_models(), &filter).await?;
    Ok(Json(page(slice, |e| (e.usage_count, e.title.clone(), e.entry_id))))
}

/// Update an entry (its owner, or administrators for hospital-wide ones).
#[utoipa::path(post, path = "/api/v1/knowledge/{id}", security(("bearer" = [])), request_body = Object,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn update_entry(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(spec): ApiJson<EntrySpec>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let m = meta.metadata(Some(&p), p.client);
    Ok(done(rep::update_entry(&state.app, &p, id, spec, &m).await?))
}

/// Retire an entry.
#[utoipa::path(post, path = "/api/v1/knowledge/{id}/retire", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn retire_entry(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let m = meta.metadata(Some(&p), p.client);
    Ok(done(rep::retire_entry(&state.app, &p, id, &m).await?))
}

// ---- settings -------------------------------------------------------------

/// The caller's hospital's reporting settings.
#[utoipa::path(get, path = "/api/v1/report-settings", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 403, body = Problem)))]
pub async fn get_settings(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<Json<ReportingSettings>, ApiError> {
    Ok(Json(rep::reporting_settings(&state.app, &p).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// May the preliminary author review their own report? (default false)
    pub allow_self_review: Option<bool>,
    /// What the other hospitals of the alliance may see of this hospital's studies as a
    /// patient's priors: `none` (default), `studies`, `studies_and_reports` (final reports).
    #[schema(value_type = Option<String>)]
    pub prior_sharing: Option<PriorSharing>,
}

/// Hospital administrator: change the reporting settings (the ones given; the others stay).
#[utoipa::path(post, path = "/api/v1/report-settings", security(("bearer" = [])), request_body = SettingsBody,
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn change_settings(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(b): ApiJson<SettingsBody>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let m = meta.metadata(Some(&p), p.client);
    Ok(done(
        rep::change_reporting_settings(&state.app, &p, b.allow_self_review, b.prior_sharing, &m).await?,
    ))
}
