//! Imaging over HTTP beyond DICOMweb: sharing a study with a colleague, soft delete and
//! restore, archive and retrieve, each user's worklist columns and notifications, storage
//! usage and the upload log, a hospital's storage plan and DICOM peers, and forgetting a
//! patient (which erases their objects).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use medledger_commands::authorization::{authorize, Action};
use medledger_commands::imaging as cmd;
use medledger_domain::identity::Tenant;
use medledger_projections::read_models::{imaging_settings, sharing, storage, worklist};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{done, PositionResponse};
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, CommandResponse, MinPosition, RequestMeta};
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    /// The colleague (an active doctor of the same hospital).
    pub user_id: Uuid,
    pub note: Option<String>,
}

/// Show a study to a colleague; they find it in their notifications.
#[utoipa::path(post, path = "/api/v1/studies/{study}/share", security(("bearer" = [])), request_body = ShareBody,
    params(("study" = String, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn share(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(study): ApiPath<String>,
    ApiJson(body): ApiJson<ShareBody>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let metadata = meta.metadata(Some(&p), p.client);
    let position = cmd::share_study(&state.app, &p, &study, body.user_id, body.note, &metadata).await?;
    Ok(done(position))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Why (1–500 characters; kept in the audit trail).
    pub reason: String,
}

/// Soft-delete a study (administrators): hidden from the worklist and DICOMweb until restored.
#[utoipa::path(post, path = "/api/v1/studies/{study}/delete", security(("bearer" = [])), request_body = DeleteBody,
    params(("study" = String, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(study): ApiPath<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(
        cmd::delete_study(&state.app, &p, &study, body.reason, &metadata).await?,
    ))
}

/// Restore a soft-deleted study (administrators).
#[utoipa::path(post, path = "/api/v1/studies/{study}/restore", security(("bearer" = [])), params(("study" = String, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn restore(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(study): ApiPath<String>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(cmd::restore_study(&state.app, &p, &study, &metadata).await?))
}

/// Move a study's objects to the archive tier (administrators). Retrieval answers 409
/// `study_archived` until it is retrieved.
#[utoipa::path(post, path = "/api/v1/studies/{study}/archive", security(("bearer" = [])), params(("study" = String, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn archive(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(study): ApiPath<String>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(
        cmd::archive_study(&state.app, &state.blobs, &p, &study, &metadata).await?,
    ))
}

/// Bring an archived study back (administrators); recorded as a retrieval.
#[utoipa::path(post, path = "/api/v1/studies/{study}/retrieve", security(("bearer" = [])), params(("study" = String, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retrieve(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(study): ApiPath<String>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(
        cmd::retrieve_study(&state.app, &state.blobs, &p, &study, &metadata).await?,
    ))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// Column names in display order (see the worklist's `columns`).
    pub columns: Vec<String>,
}

/// The caller's worklist columns (the defaults until they choose).
#[utoipa::path(get, path = "/api/v1/me/worklist-columns", security(("bearer" = [])),
    responses((status = 200, body = Columns), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn get_columns(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
) -> Result<Json<Columns>, ApiError> {
    authorize(&p, Action::ViewStudies, &p.tenant)?;
    min.wait(&state, imaging_settings::NAME).await?;
    let columns = imaging_settings::worklist_columns(&state.app.store.read_models(), p.account_id).await?;
    Ok(Json(Columns { columns }))
}

/// Choose which worklist columns the caller sees, in order.
#[utoipa::path(put, path = "/api/v1/me/worklist-columns", security(("bearer" = [])), request_body = Columns,
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_columns(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(body): ApiJson<Columns>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(
        cmd::choose_worklist_columns(&state.app, &p, body.columns, &metadata).await?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct Notifications {
    pub items: Vec<sharing::Notification>,
}

/// The caller's newest notifications (studies shared with them).
#[utoipa::path(get, path = "/api/v1/me/notifications", security(("bearer" = [])),
    responses((status = 200, body = Notifications), (status = 401, body = Problem)))]
pub async fn notifications(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
) -> Result<Json<Notifications>, ApiError> {
    min.wait(&state, sharing::NAME).await?;
    let items = sharing::notifications(&state.app.store.read_models(), p.account_id, 100).await?;
    Ok(Json(Notifications { items }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StorageParams {
    /// One hospital (default: the caller's own, or every hospital of the caller's alliance).
    pub hospital_id: Option<Uuid>,
    /// Upload log: entries after this position (cursor).
    pub after: Option<i64>,
    /// Upload log: 1–1000 entries (default 100).
    pub limit: Option<u32>,
    pub min_position: Option<u64>,
}

/// The scope a caller may see storage of: (alliance, hospital) filters.
async fn storage_scope(
    state: &AppState,
    p: &medledger_commands::identity::Principal,
    hospital: Option<Uuid>,
) -> Result<(Option<Uuid>, Option<Uuid>), ApiError> {
    let target = match hospital.or(p.tenant.hospital_id) {
        Some(h) => hospital_target(state, h).await?,
        None => p.tenant,
    };
    authorize(p, Action::ViewStorage, &target)?;
    Ok((target.alliance_id, target.hospital_id))
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub hospitals: Vec<storage::StorageUsage>,
    pub total_bytes: i64,
    pub total_instances: i64,
    pub total_studies: i64,
}

/// Storage used per hospital, with totals (a hospital's administrators see their hospital,
/// an alliance's administrators every hospital of the alliance, the operator everything).
#[utoipa::path(get, path = "/api/v1/storage/usage", security(("bearer" = [])), params(StorageParams),
    responses((status = 200, body = Usage), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn usage(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiQuery(params): ApiQuery<StorageParams>,
) -> Result<Json<Usage>, ApiError> {
    let (alliance, hospital) = storage_scope(&state, &p, params.hospital_id).await?;
    min.wait(&state, storage::NAME).await?;
    let hospitals = storage::usage(&state.app.store.read_models(), alliance, hospital).await?;
    Ok(Json(Usage {
        total_bytes: hospitals.iter().map(|h| h.bytes).sum(),
        total_instances: hospitals.iter().map(|h| h.instances).sum(),
        total_studies: hospitals.iter().map(|h| h.studies).sum(),
        hospitals,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Uploads {
    pub items: Vec<storage::UploadEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// The upload log: one entry per arrival, with billing unit, subject, package and validity.
#[utoipa::path(get, path = "/api/v1/storage/uploads", security(("bearer" = [])), params(StorageParams),
    responses((status = 200, body = Uploads), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn uploads(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiQuery(params): ApiQuery<StorageParams>,
) -> Result<Json<Uploads>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit is 1 to 1000",
        ));
    }
    let (alliance, hospital) = storage_scope(&state, &p, params.hospital_id).await?;
    min.wait(&state, storage::NAME).await?;
    let items = storage::uploads(
        &state.app.store.read_models(),
        alliance,
        hospital,
        params.after.unwrap_or(0),
        limit,
    )
    .await?;
    let next_after = (items.len() == limit as usize)
        .then(|| items.last().map(|i| i.position))
        .flatten();
    Ok(Json(Uploads { items, next_after }))
}

async fn hospital_target(state: &AppState, id: Uuid) -> Result<Tenant, ApiError> {
    let view = medledger_projections::read_models::organization::get_hospital(&state.app.store.read_models(), id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Tenant {
        alliance_id: Some(view.alliance_id),
        hospital_id: Some(id),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoragePlanBody {
    pub billing_unit: String,
    pub resource_package: String,
    /// How long uploads are kept, 1–600 months.
    pub validity_months: u32,
}

/// Set the hospital's storage plan (its administrators).
#[utoipa::path(put, path = "/api/v1/hospitals/{id}/storage-plan", security(("bearer" = [])), request_body = StoragePlanBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_storage_plan(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<StoragePlanBody>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let target = hospital_target(&state, id).await?;
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(
        cmd::set_storage_plan(
            &state.app,
            &p,
            &target,
            body.billing_unit,
            body.resource_package,
            body.validity_months,
            &metadata,
        )
        .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerBody {
    /// The calling AE title the modality or PACS uses (1–16 characters).
    pub ae_title: String,
    pub description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Peers {
    pub items: Vec<imaging_settings::DicomPeer>,
}

/// The hospital's DICOM peers (calling AE titles allowed to send to it).
#[utoipa::path(get, path = "/api/v1/hospitals/{id}/dicom-peers", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Peers), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_peers(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Peers>, ApiError> {
    let target = hospital_target(&state, id).await?;
    authorize(&p, Action::ConfigureImaging, &target)?;
    min.wait(&state, imaging_settings::NAME).await?;
    let items = imaging_settings::dicom_peers(&state.app.store.read_models(), Some(id)).await?;
    Ok(Json(Peers { items }))
}

/// Register a DICOM peer for the hospital; it may associate from the next association on.
#[utoipa::path(post, path = "/api/v1/hospitals/{id}/dicom-peers", security(("bearer" = [])), request_body = PeerBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_peer(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PeerBody>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let target = hospital_target(&state, id).await?;
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(
        cmd::register_dicom_peer(&state.app, &p, &target, &body.ae_title, body.description, &metadata).await?,
    ))
}

/// Remove a DICOM peer; its next association is rejected.
#[utoipa::path(delete, path = "/api/v1/hospitals/{id}/dicom-peers/{ae_title}", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("ae_title" = String, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_peer(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath((id, ae)): ApiPath<(Uuid, String)>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let target = hospital_target(&state, id).await?;
    let metadata = meta.metadata(Some(&p), p.client);
    Ok(done(
        cmd::remove_dicom_peer(&state.app, &p, &target, &ae, &metadata).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetPatientBody {
    pub hospital_id: Uuid,
    /// The Patient ID (0010,0020) as the hospital's modalities send it.
    pub patient_id: String,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ForgottenPatient {
    pub subject_id: Uuid,
    /// Studies whose objects were erased.
    pub studies: usize,
    pub position: u64,
}

/// Forget a patient (the platform operator): their key is destroyed, so every sealed
/// attribute becomes unreadable, and every object of their studies (instances, conflicting
/// copies, archive copies, renders and thumbnails) is deleted from the object store, each
/// study recording `StudyObjectsErased`. Safe to repeat.
#[utoipa::path(post, path = "/api/v1/admin/forget-patient", security(("bearer" = [])), request_body = ForgetPatientBody,
    responses((status = 200, body = ForgottenPatient), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn forget_patient(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(body): ApiJson<ForgetPatientBody>,
) -> Result<CommandResponse<ForgottenPatient>, ApiError> {
    authorize(&p, Action::ForgetSubject, &Tenant::PLATFORM)?;
    let patient_id = body.patient_id.trim();
    if patient_id.is_empty() || body.reason.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "patient_id and reason are required",
        ));
    }
    let subject = state
        .app
        .codec
        .keys()
        .pseudonym(&format!("patient/{}", body.hospital_id), patient_id);
    let metadata = meta.metadata(Some(&p), p.client);
    let mut position =
        medledger_commands::administration::forget_subject(&state.app, subject, body.reason.trim(), &metadata).await?;
    // The worklist knows the patient's studies; wait until it has seen everything so far.
    let head = state
        .app
        .store
        .head_position()
        .await
        .map_err(medledger_commands::Error::from)?;
    if !state
        .status
        .wait_for(worklist::NAME, head, std::time::Duration::from_secs(10))
        .await
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "projection_lagging",
            "the worklist is behind; the key is destroyed, repeat to erase the objects",
        ));
    }
    let studies = worklist::studies_of_subject(&state.app.store.read_models(), subject).await?;
    position = position.max(cmd::erase_patient_objects(&state.app, &state.blobs, subject, &studies, &metadata).await?);
    Ok(CommandResponse {
        status: StatusCode::OK,
        position,
        body: ForgottenPatient {
            subject_id: subject,
            studies: studies.len(),
            position,
        },
    })
}
