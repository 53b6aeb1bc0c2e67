//! The worklist (检查列表) over HTTP: a hospital's studies, filtered,
//! searched and keyset-paginated.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use medledger_commands::authorization::{authorize, Action};
use medledger_projections::read_models::worklist::{self, WorklistFilter, WorklistPage};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ApiQuery, Authenticated, MinPosition};
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StudyParams {
    /// Study date from (YYYYMMDD or YYYY-MM-DD, inclusive).
    pub from: Option<String>,
    /// Study date to (inclusive).
    pub to: Option<String>,
    /// Device type: CT, MR, DR, US, OP, …
    pub modality: Option<String>,
    /// `received`, `preliminary`, `reviewed`, `printed`.
    pub status: Option<String>,
    /// Keyword: part of the patient name, patient ID or accession number.
    pub q: Option<String>,
    /// `desc` (newest first, default) or `asc`.
    pub order: Option<String>,
    pub cursor: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<u32>,
    /// `true`: list the soft-deleted studies instead (administrators).
    pub deleted: Option<bool>,
    pub min_position: Option<u64>,
}

/// A worklist page with the caller's columns (in display order).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct StudyList {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub page: WorklistPage,
    pub columns: Vec<String>,
}

fn bad(detail: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", detail.to_string())
}

/// `YYYYMMDD` from `YYYYMMDD` or `YYYY-MM-DD`.
fn dicom_date(s: &str) -> Result<String, ApiError> {
    let d: String = s.chars().filter(|c| *c != '-').collect();
    let ok = d.len() == 8
        && d.chars().all(|c| c.is_ascii_digit())
        && chrono::NaiveDate::parse_from_str(&d, "%Y%m%d").is_ok();
    if ok {
        Ok(d)
    } else {
        Err(bad("dates are YYYYMMDD or YYYY-MM-DD"))
    }
}

/// The caller's hospital's studies.
#[utoipa::path(get, path = "/api/v1/studies", security(("bearer" = [])), params(StudyParams),
    responses((status = 200, body = StudyList), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    min: MinPosition,
    ApiQuery(params): ApiQuery<StudyParams>,
) -> Result<Json<StudyList>, ApiError> {
    let deleted = params.deleted.unwrap_or(false);
    // The deleted studies are the administrators' (who restore them); the rest the doctors'.
    let action = if deleted {
        Action::ManageStudies
    } else {
        Action::ViewStudies
    };
    authorize(&p, action, &p.tenant)?;
    if matches!(params.limit, Some(0) | Some(201..)) {
        return Err(bad("limit must be 1 to 200"));
    }
    let ascending = match params.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(bad("order is asc or desc")),
    };
    if let Some(s) = &params.status {
        if !["received", "preliminary", "reviewed", "printed"].contains(&s.as_str()) {
            return Err(bad("status is received, preliminary, reviewed or printed"));
        }
    }
    if params.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(bad("q has at most 100 characters"));
    }
    let filter = WorklistFilter {
        hospital_id: p.tenant.hospital_id,
        alliance_id: None,
        date_from: params.from.as_deref().map(dicom_date).transpose()?,
        date_to: params.to.as_deref().map(dicom_date).transpose()?,
        modality: params.modality,
        status: params.status,
        query: params.q,
        ascending,
        deleted,
        cursor: params.cursor,
        limit: params.limit.unwrap_or(50),
    };
    min.wait(&state, worklist::NAME).await?;
    min.wait(&state, medledger_projections::read_models::imaging_settings::NAME)
        .await?;
    let db = state.app.store.read_models();
    let page = worklist::list(&db, &filter).await?;
    let columns = medledger_projections::read_models::imaging_settings::worklist_columns(&db, p.account_id).await?;
    Ok(Json(StudyList { page, columns }))
}
