//! The organization tree over HTTP: alliances, hospitals (profile, logo, QR
//! code), departments and roles. Lists come from the `organization` read
//! model; every command goes through `commands::organization`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use medledger_commands::authorization::{authorize, Action};
use medledger_commands::organization::{self as org, HospitalSpec, PersonSpec};
use medledger_domain::identity::Tenant;
use medledger_domain::organization::Permission;
use medledger_projections::read_models::organization as rm;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{done, PositionResponse};
use super::extract::{ApiJson, ApiPath, Authenticated, CommandResponse, MinPosition, RequestMeta};
use super::problem::{ApiError, Problem};
use super::AppState;

/// Request bodies of logo uploads may be this large (the image itself at most 512 KiB).
pub const LOGO_BODY_LIMIT: usize = 1024 * 1024;

/// An account to create with its organization unit.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonBody {
    pub login: String,
    pub name: String,
    pub phone: Option<String>,
    /// The initial password (policy-checked); the person changes it later.
    pub password: String,
}

impl From<PersonBody> for PersonSpec {
    fn from(b: PersonBody) -> Self {
        PersonSpec {
            login: b.login,
            display_name: b.name,
            phone: b.phone,
            password: b.password,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_account_id: Option<Uuid>,
    /// Built-in roles created with a hospital, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub roles: Option<std::collections::BTreeMap<String, Uuid>>,
    pub position: u64,
}

fn created(id: Uuid, position: u64) -> CommandResponse<Created> {
    CommandResponse {
        status: StatusCode::CREATED,
        position,
        body: Created {
            id,
            admin_account_id: None,
            roles: None,
            position,
        },
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlliance {
    pub name: String,
    pub admin: PersonBody,
}

/// Platform operator: create an alliance (医联体) and its administrator.
#[utoipa::path(post, path = "/api/v1/alliances", security(("bearer" = [])), request_body = CreateAlliance,
    responses((status = 201, body = Created), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_alliance(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiJson(body): ApiJson<CreateAlliance>,
) -> Result<CommandResponse<Created>, ApiError> {
    let (id, admin, position) = org::create_alliance(
        &state.app,
        &p,
        &body.name,
        &body.admin.into(),
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    let mut r = created(id, position);
    r.body.admin_account_id = Some(admin);
    Ok(r)
}

/// Alliances the caller can see.
#[utoipa::path(get, path = "/api/v1/alliances", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem)))]
pub async fn list_alliances(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
) -> Result<Json<Vec<rm::AllianceView>>, ApiError> {
    min.wait(&state, rm::NAME).await?;
    let only = match p.role {
        medledger_domain::identity::AccountRole::PlatformOperator => None,
        _ => Some(p.tenant.alliance_id.ok_or_else(ApiError::not_found)?),
    };
    Ok(Json(rm::list_alliances(&state.app.store.read_models(), only).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterHospital {
    pub name: String,
    pub code: String,
    #[serde(default)]
    pub address: String,
    /// IANA time zone (default Asia/Shanghai): "calendar day" rules use it.
    pub time_zone: Option<String>,
    pub admin: PersonBody,
}

/// Alliance administrator: add a hospital, its built-in roles and its administrator.
#[utoipa::path(post, path = "/api/v1/alliances/{id}/hospitals", security(("bearer" = [])), request_body = RegisterHospital,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = Created), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_hospital(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(alliance_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RegisterHospital>,
) -> Result<CommandResponse<Created>, ApiError> {
    let spec = HospitalSpec {
        name: body.name,
        code: body.code,
        address: body.address,
        time_zone: body.time_zone,
    };
    let h = org::register_hospital(
        &state.app,
        &p,
        alliance_id,
        &spec,
        &body.admin.into(),
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    let mut r = created(h.hospital_id, h.position);
    r.body.admin_account_id = Some(h.admin_id);
    r.body.roles = Some(h.roles.into_iter().collect());
    Ok(r)
}

/// Hospitals the caller can see.
#[utoipa::path(get, path = "/api/v1/hospitals", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem)))]
pub async fn list_hospitals(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
) -> Result<Json<Vec<rm::HospitalView>>, ApiError> {
    min.wait(&state, rm::NAME).await?;
    use medledger_domain::identity::AccountRole::*;
    let (alliance, only) = match p.role {
        PlatformOperator => (None, None),
        AllianceAdministrator => (Some(p.tenant.alliance_id.ok_or_else(ApiError::not_found)?), None),
        _ => (None, Some(p.tenant.hospital_id.ok_or_else(ApiError::not_found)?)),
    };
    Ok(Json(
        rm::list_hospitals(&state.app.store.read_models(), alliance, only).await?,
    ))
}

fn hospital_tenant(h: &rm::HospitalView) -> Tenant {
    Tenant {
        alliance_id: Some(h.alliance_id),
        hospital_id: Some(h.hospital_id),
    }
}

/// A hospital the caller may see, from the read model.
async fn visible_hospital(
    state: &AppState,
    p: &medledger_commands::identity::Principal,
    id: Uuid,
) -> Result<rm::HospitalView, ApiError> {
    let h = rm::get_hospital(&state.app.store.read_models(), id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    authorize(p, Action::ViewDirectory, &hospital_tenant(&h))?;
    Ok(h)
}

/// One hospital's profile.
#[utoipa::path(get, path = "/api/v1/hospitals/{id}", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_hospital(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<rm::HospitalView>, ApiError> {
    min.wait(&state, rm::NAME).await?;
    Ok(Json(visible_hospital(&state, &p, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HospitalProfileBody {
    pub name: String,
    #[serde(default)]
    pub address: String,
    /// What the hospital's QR code encodes (http/https URL).
    pub qr_url: Option<String>,
}

/// Edit the hospital profile.
#[utoipa::path(post, path = "/api/v1/hospitals/{id}/profile", security(("bearer" = [])), request_body = HospitalProfileBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_profile(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<HospitalProfileBody>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position = org::update_hospital_profile(
        &state.app,
        &p,
        id,
        &body.name,
        &body.address,
        body.qr_url,
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    Ok(done(position))
}

/// A raw request body of at most [`LOGO_BODY_LIMIT`] bytes. A larger body is
/// still read to its end (up to 16 MiB) before the 413 answer, so the client
/// finishes sending and reads the problem instead of a reset connection.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        use futures::StreamExt;
        const DRAIN_AT_MOST: usize = 16 * 1024 * 1024;
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is too large",
            )
        };
        let mut stream = req.into_body().into_data_stream();
        let mut kept = Vec::new();
        let mut seen = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the body could not be read"))?;
            seen += chunk.len();
            if seen > DRAIN_AT_MOST {
                return Err(too_large());
            }
            if seen <= LOGO_BODY_LIMIT {
                kept.extend_from_slice(&chunk);
            }
        }
        if seen > LOGO_BODY_LIMIT {
            return Err(too_large());
        }
        Ok(RawBody(Bytes::from(kept)))
    }
}

/// Upload the hospital logo: the body is the image (PNG or JPEG, ≤ 512 KiB).
#[utoipa::path(post, path = "/api/v1/hospitals/{id}/logo", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "image/png"),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem, description = "logo_too_large, logo_unsupported_type, …")))]
pub async fn upload_logo(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    headers: axum::http::HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let position = org::change_hospital_logo(
        &state.app,
        &state.blobs,
        &p,
        id,
        bytes,
        declared,
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    Ok(done(position))
}

/// The hospital logo image.
#[utoipa::path(get, path = "/api/v1/hospitals/{id}/logo", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, description = "the image"), (status = 404, body = Problem)))]
pub async fn get_logo(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    min.wait(&state, rm::NAME).await?;
    let h = visible_hospital(&state, &p, id).await?;
    let logo = h.logo.ok_or_else(ApiError::not_found)?;
    let bytes = state
        .blobs
        .get(&logo.blob_key)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "blob_unavailable", e.to_string()))?
        .ok_or_else(ApiError::not_found)?;
    Ok(([(header::CONTENT_TYPE, logo.content_type)], bytes).into_response())
}

async fn qr_target(
    state: &AppState,
    p: &medledger_commands::identity::Principal,
    id: Uuid,
) -> Result<String, ApiError> {
    let h = visible_hospital(state, p, id).await?;
    Ok(h.qr_url
        .unwrap_or_else(|| format!("{}/h/{}", state.public_url.trim_end_matches('/'), h.code)))
}

fn qr_error(e: medledger_commands::media::QrError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
}

/// The hospital's QR code as PNG (encodes its QR URL).
#[utoipa::path(get, path = "/api/v1/hospitals/{id}/qr.png", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "image/png", description = "PNG"), (status = 404, body = Problem)))]
pub async fn qr_png(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    min.wait(&state, rm::NAME).await?;
    let png = medledger_commands::media::qr_png(&qr_target(&state, &p, id).await?, 8).map_err(qr_error)?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// The hospital's QR code as SVG.
#[utoipa::path(get, path = "/api/v1/hospitals/{id}/qr.svg", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "image/svg+xml", description = "SVG"), (status = 404, body = Problem)))]
pub async fn qr_svg(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    min.wait(&state, rm::NAME).await?;
    let svg = medledger_commands::media::qr_svg(&qr_target(&state, &p, id).await?).map_err(qr_error)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDepartment {
    pub name: String,
    pub phone: Option<String>,
}

/// Hospital administrator: add a department.
#[utoipa::path(post, path = "/api/v1/hospitals/{id}/departments", security(("bearer" = [])), request_body = CreateDepartment,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = Created), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_department(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateDepartment>,
) -> Result<CommandResponse<Created>, ApiError> {
    let (dep, position) = org::create_department(
        &state.app,
        &p,
        id,
        &body.name,
        body.phone.as_deref(),
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    Ok(created(dep, position))
}

/// A hospital's departments.
#[utoipa::path(get, path = "/api/v1/hospitals/{id}/departments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)))]
pub async fn list_departments(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<rm::DepartmentView>>, ApiError> {
    min.wait(&state, rm::NAME).await?;
    visible_hospital(&state, &p, id).await?;
    Ok(Json(rm::list_departments(&state.app.store.read_models(), id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineRole {
    pub name: String,
    /// Permission names from `GET /api/v1/permissions`.
    pub permissions: Vec<String>,
}

/// Hospital administrator: define a custom role.
#[utoipa::path(post, path = "/api/v1/hospitals/{id}/roles", security(("bearer" = [])), request_body = DefineRole,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = Created), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn define_role(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DefineRole>,
) -> Result<CommandResponse<Created>, ApiError> {
    let (role, position) = org::define_role(
        &state.app,
        &p,
        id,
        &body.name,
        &body.permissions,
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    Ok(created(role, position))
}

/// A hospital's roles.
#[utoipa::path(get, path = "/api/v1/hospitals/{id}/roles", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)))]
pub async fn list_roles(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<rm::RoleView>>, ApiError> {
    min.wait(&state, rm::NAME).await?;
    visible_hospital(&state, &p, id).await?;
    Ok(Json(rm::list_roles(&state.app.store.read_models(), id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePermissions {
    pub permissions: Vec<String>,
}

/// Hospital administrator: change a role's permissions.
#[utoipa::path(post, path = "/api/v1/roles/{id}/permissions", security(("bearer" = [])), request_body = RolePermissions,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PositionResponse), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn change_role_permissions(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RolePermissions>,
) -> Result<CommandResponse<PositionResponse>, ApiError> {
    let position = org::change_role_permissions(
        &state.app,
        &p,
        id,
        &body.permissions,
        &meta.metadata(Some(&p), p.client),
    )
    .await?;
    Ok(done(position))
}

#[derive(Serialize, ToSchema)]
pub struct PermissionInfo {
    pub name: String,
}

/// The closed list of permissions a role may hold.
#[utoipa::path(get, path = "/api/v1/permissions", security(("bearer" = [])),
    responses((status = 200, body = Vec<PermissionInfo>)))]
pub async fn permissions(_caller: Authenticated) -> Json<Vec<PermissionInfo>> {
    Json(
        Permission::ALL
            .iter()
            .map(|p| PermissionInfo { name: p.name().into() })
            .collect(),
    )
}
