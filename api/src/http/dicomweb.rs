//! DICOMweb over HTTP.
//!
//! STOW-RS: `POST /dicomweb/studies` with a `multipart/related; type="application/dicom"`
//! body; every part is validated and stored on its own, and the answer is the PS3.18
//! response dataset (DICOM JSON): ReferencedSOPSequence for what was stored (or was already
//! there, byte for byte), FailedSOPSequence with a FailureReason for the rest — 200 when all
//! succeeded, 202 when some failed, 409 when none succeeded.
//!
//! QIDO-RS and WADO-RS (here and in [`super::rendering`]) read from one of two roots, chosen
//! by the [`Source`] every read handler takes:
//! - `/dicomweb`: the caller's own hospital's studies;
//! - `/dicomweb/reports/{report}/priors`: read-only, the studies other hospitals of the
//!   alliance share as priors of the patient of `report` (one of the caller's own reports).
//!   A standard DICOMweb client given this root finds the priors with QIDO-RS and opens them
//!   with the usual paths; the URLs it is answered (RetrieveURL, BulkDataURI) stay under it.

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use medledger_commands::authorization::{authorize, Action};
use medledger_commands::identity::Principal;
use medledger_commands::reporting::{self as rep, PriorContext};
use medledger_dicom_ingest::ingest::{ingest, IngestError, Outcome};
use medledger_domain::imaging::study::Arrival;
use medledger_domain::reporting::priors::{PriorAccess, PriorUse};
use medledger_domain::reporting::StudyRef;
use medledger_projections::read_models::{instances, reports, worklist};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::extract::{Authenticated, MinPosition, RequestMeta};
use super::problem::ApiError;
use super::AppState;

/// The read-only DICOMweb root of the priors of one of the caller's reports.
pub fn prior_root(public_url: &str, report_id: Uuid) -> String {
    format!(
        "{}/dicomweb/reports/{report_id}/priors",
        public_url.trim_end_matches('/')
    )
}

/// Where a DICOMweb read looks, decided before its handler runs.
///
/// - Under `/dicomweb`: the caller's own hospital; `study.view` (403 without it, whatever the
///   path names).
/// - Under `/dicomweb/reports/{report}/priors`: `study.view`, and `report` a report of the
///   caller's hospital they may read (404 otherwise); the study the path names is found among
///   the hospitals of the alliance that share it, and granted by
///   [`PriorContext::check`] from the streams at this request (404 unless it is the same
///   patient's, in a hospital sharing its studies now).
pub struct Source {
    pub principal: Principal,
    /// The root the answer's URLs are under: `{public}/dicomweb` or the prior root.
    pub root: String,
    /// The hospital holding the study the path names (always the caller's own under
    /// `/dicomweb`; none for the study search under a prior root).
    hospital: Option<Uuid>,
    /// The caller's report, under a prior root.
    prior: Option<PriorContext>,
}

impl FromRequestParts<AppState> for Source {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        authorize(&principal, Action::ViewStudies, &principal.tenant)?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        let Some(report) = param("report") else {
            return Ok(Source {
                root: format!("{}/dicomweb", state.public_url.trim_end_matches('/')),
                hospital: principal.tenant.hospital_id,
                prior: None,
                principal,
            });
        };
        // A malformed id names no report (as every path id of the API).
        let report: Uuid = report.parse().map_err(|_| ApiError::not_found())?;
        let context = rep::prior_context(&state.app, &principal, report).await?;
        let hospital = match param("study") {
            Some(uid) => {
                let min = MinPosition::from_request_parts(parts, state).await?;
                Some(prior_holder(state, &context, &min, &uid).await?)
            }
            None => None,
        };
        Ok(Source {
            root: prior_root(&state.public_url, report),
            hospital,
            prior: Some(context),
            principal,
        })
    }
}

/// The hospital whose copy of study `uid` is a prior of the context's report: the first of the
/// alliance's sharing hospitals holding it that the streams grant; 404 when none does.
async fn prior_holder(
    state: &AppState,
    context: &PriorContext,
    min: &MinPosition,
    uid: &str,
) -> Result<Uuid, ApiError> {
    let alliance = context.tenant.alliance_id.ok_or_else(ApiError::not_found)?;
    min.wait(state, reports::NAME).await?;
    min.wait(state, worklist::NAME).await?;
    let own = context.report.study.hospital_id;
    for hospital in reports::prior_holders(&state.app.store.read_models(), alliance, own, uid).await? {
        let study = StudyRef {
            hospital_id: hospital,
            study_instance_uid: uid.to_string(),
        };
        if context.check(&state.app, &study, PriorUse::Study).await?.is_ok() {
            return Ok(hospital);
        }
    }
    Err(ApiError::not_found())
}

impl Source {
    /// The hospital holding the study the path names.
    pub fn hospital(&self) -> Result<Uuid, ApiError> {
        self.hospital.ok_or_else(ApiError::not_found)
    }

    /// Under a prior root, record that the caller looked at `uid` of `hospital`
    /// (`PriorStudyViewed`) before anything of it is answered; nothing for the caller's own
    /// studies.
    pub async fn record(
        &self,
        state: &AppState,
        meta: &RequestMeta,
        hospital: Uuid,
        uid: &str,
        access: PriorAccess,
    ) -> Result<(), ApiError> {
        let Some(context) = &self.prior else {
            return Ok(());
        };
        let study = StudyRef {
            hospital_id: hospital,
            study_instance_uid: uid.to_string(),
        };
        let metadata = meta.metadata(Some(&self.principal), self.principal.client);
        context.record_view(&state.app, &study, access, &metadata).await?;
        Ok(())
    }
}

/// One part may be this large (the parser's own cap), a request this large.
const PART_LIMIT: u64 = 512 * 1024 * 1024;
const REQUEST_LIMIT: u64 = 4 * 1024 * 1024 * 1024;

/// PS3.4 status codes used as FailureReason (0008,1197).
const PROCESSING_FAILURE: u16 = 0x0110;
const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;
const OUT_OF_RESOURCES: u16 = 0xA700;
const CANNOT_UNDERSTAND: u16 = 0xC000;

fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("multipart/related") {
        return None;
    }
    let mut boundary = None;
    for p in parts {
        let (k, v) = p.split_once('=')?;
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "boundary" => boundary = Some(v.to_string()),
            "type" if !v.eq_ignore_ascii_case("application/dicom") => return None,
            _ => {}
        }
    }
    boundary
}

/// `response` with `status`, typed as DICOM JSON (PS3.18 F.2).
fn dicom_json(status: StatusCode, mut response: Response) -> Response {
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/dicom+json"));
    response
}

fn ui(v: &str) -> Value {
    json!({"vr": "UI", "Value": [v]})
}

fn failed(sop_class: Option<&str>, sop_instance: Option<&str>, reason: u16) -> Value {
    let mut item = Map::new();
    if let Some(c) = sop_class {
        item.insert("00081150".into(), ui(c));
    }
    if let Some(i) = sop_instance {
        item.insert("00081155".into(), ui(i));
    }
    item.insert("00081197".into(), json!({"vr": "US", "Value": [reason]}));
    Value::Object(item)
}

/// How long STOW-RS waits for its instances to be searchable before answering.
const STORED_VISIBLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Parts of one STOW-RS request stored at once. With 16 (8 before) a group commit
/// gathers 12–14 instances instead of 8–9 under four clients (docs/architecture.md).
const IN_FLIGHT: usize = 16;

/// Adds one part's outcome to the STOW-RS response.
fn answer(
    outcome: Result<Result<medledger_dicom_ingest::ingest::Ingested, IngestError>, tokio::task::JoinError>,
    base: &str,
    referenced: &mut Vec<Value>,
    failures: &mut Vec<Value>,
    studies: &mut std::collections::BTreeSet<String>,
    position: &mut u64,
) {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "an instance's ingest task failed");
            failures.push(failed(None, None, PROCESSING_FAILURE));
            return;
        }
    };
    match outcome {
        Ok(done) if done.outcome != Outcome::Conflict => {
            *position = (*position).max(done.position);
            let m = &done.metadata;
            studies.insert(m.study_instance_uid.clone());
            referenced.push(json!({
                "00081150": ui(&m.sop_class_uid),
                "00081155": ui(&m.sop_instance_uid),
                "00081190": {"vr": "UR", "Value": [format!(
                    "{base}/dicomweb/studies/{}/series/{}/instances/{}",
                    m.study_instance_uid, m.series_instance_uid, m.sop_instance_uid
                )]},
            }));
        }
        Ok(conflict) => failures.push(failed(
            Some(&conflict.metadata.sop_class_uid),
            Some(&conflict.metadata.sop_instance_uid),
            DUPLICATE_SOP_INSTANCE,
        )),
        Err(IngestError::Rejected(r)) => failures.push(failed(
            None,
            None,
            if r.code == "too_large" {
                OUT_OF_RESOURCES
            } else {
                CANNOT_UNDERSTAND
            },
        )),
        Err(IngestError::Failed(e)) => {
            let (_, code) = e.classify();
            tracing::warn!(error = %e, code, "an instance could not be stored");
            let reason = if code == "instance_in_other_study" {
                DUPLICATE_SOP_INSTANCE
            } else {
                PROCESSING_FAILURE
            };
            failures.push(failed(None, None, reason));
        }
    }
}

/// Store instances (STOW-RS).
#[utoipa::path(post, path = "/dicomweb/studies", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "multipart/related; type=\"application/dicom\""),
    responses((status = 200, description = "all stored", content_type = "application/dicom+json"),
              (status = 202, description = "some failed"), (status = 409, description = "none stored"),
              (status = 401, body = super::problem::Problem), (status = 403, body = super::problem::Problem),
              (status = 415, body = super::problem::Problem)))]
pub async fn stow(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    meta: RequestMeta,
    request: Request,
) -> Result<Response, ApiError> {
    authorize(&p, Action::UploadStudies, &p.tenant)?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let boundary = boundary(&content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/related; type=\"application/dicom\"",
        )
    })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(REQUEST_LIMIT)
            .per_field(PART_LIMIT),
    );
    let body = request
        .into_body()
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let mut parts = multer::Multipart::with_constraints(body, boundary, constraints);
    let metadata = meta.metadata(Some(&p), p.client);
    let base = state.public_url.trim_end_matches('/').to_string();
    let (mut referenced, mut failures, mut studies) = (Vec::new(), Vec::new(), std::collections::BTreeSet::new());
    let mut in_flight = std::collections::VecDeque::new();
    let mut position = 0u64;
    loop {
        let field = match parts.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(multer::Error::FieldSizeExceeded { .. }) => {
                failures.push(failed(None, None, OUT_OF_RESOURCES));
                break;
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_multipart",
                    format!("the multipart body could not be read: {e}"),
                ))
            }
        };
        let is_dicom = field
            .content_type()
            .map(|m| m.essence_str().eq_ignore_ascii_case("application/dicom"))
            .unwrap_or(false);
        let bytes = match part_bytes(field).await {
            Ok(b) => b,
            Err(_) => {
                failures.push(failed(None, None, OUT_OF_RESOURCES));
                break;
            }
        };
        if !is_dicom {
            failures.push(failed(None, None, CANNOT_UNDERSTAND));
            continue;
        }
        // Parts are stored concurrently (up to IN_FLIGHT at once, answered in order), so
        // one request's blob writes and appends overlap and share commits.
        let (app, blobs, tenant, meta) = (state.app.clone(), state.blobs.clone(), p.tenant, metadata.clone());
        in_flight.push_back(tokio::spawn(async move {
            ingest(&app, &blobs, &tenant, bytes, Arrival::StowRs, &meta).await
        }));
        if in_flight.len() >= IN_FLIGHT {
            if let Some(next) = in_flight.pop_front() {
                answer(
                    next.await,
                    &base,
                    &mut referenced,
                    &mut failures,
                    &mut studies,
                    &mut position,
                );
            }
        }
    }
    while let Some(next) = in_flight.pop_front() {
        answer(
            next.await,
            &base,
            &mut referenced,
            &mut failures,
            &mut studies,
            &mut position,
        );
    }
    // Answer once what was stored can be found: a client that searches or reads right
    // after STOW-RS (as viewers do) sees it. The instances are stored either way; if the
    // read models are slow the answer goes out after the wait.
    if position > 0 {
        let waited = std::time::Instant::now();
        for projection in [
            medledger_projections::read_models::instances::NAME,
            medledger_projections::read_models::worklist::NAME,
        ] {
            if !state.status.wait_for(projection, position, STORED_VISIBLE_WAIT).await {
                tracing::warn!(
                    projection,
                    position,
                    "STOW-RS answered before the read models caught up"
                );
            }
        }
        metrics::histogram!("medledger_ingest_phase_seconds", "phase" => "visible")
            .record(waited.elapsed().as_secs_f64());
    }
    let mut body = Map::new();
    if studies.len() == 1 {
        let study = studies.iter().next().expect("one study");
        body.insert(
            "00081190".into(),
            json!({"vr": "UR", "Value": [format!("{base}/dicomweb/studies/{study}")]}),
        );
    }
    let status = match (referenced.is_empty(), failures.is_empty()) {
        (_, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, false) => StatusCode::CONFLICT,
    };
    if !referenced.is_empty() {
        body.insert("00081199".into(), json!({"vr": "SQ", "Value": referenced}));
    }
    if !failures.is_empty() {
        body.insert("00081198".into(), json!({"vr": "SQ", "Value": failures}));
    }
    Ok(dicom_json(status, axum::Json(Value::Object(body)).into_response()))
}

/// A part's bytes in one buffer, copied once at its final size (multer's `Field::bytes`
/// grows its buffer from empty as chunks come, copying a 525 KB instance about twice).
async fn part_bytes(mut field: multer::Field<'_>) -> Result<bytes::Bytes, multer::Error> {
    let mut chunks = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        chunks.push(chunk);
    }
    if chunks.len() == 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    let mut whole = bytes::BytesMut::with_capacity(chunks.iter().map(|c| c.len()).sum());
    for chunk in chunks {
        whole.extend_from_slice(&chunk);
    }
    Ok(whole.freeze())
}

#[cfg(test)]
mod tests {
    use super::boundary;

    #[test]
    fn only_dicom_multipart_related_bodies_are_accepted() {
        assert_eq!(
            boundary("multipart/related; type=\"application/dicom\"; boundary=abc123").as_deref(),
            Some("abc123")
        );
        assert_eq!(boundary("Multipart/Related; boundary=\"q q\"").as_deref(), Some("q q"));
        assert_eq!(
            boundary("multipart/related; type=\"application/dicom+xml\"; boundary=x"),
            None
        );
        assert_eq!(boundary("multipart/form-data; boundary=x"), None);
        assert_eq!(boundary("application/dicom"), None);
    }
}

/// WADO-RS path parameters: study, optionally series and instance.
#[derive(serde::Deserialize)]
pub struct StudyPath {
    study: String,
    series: Option<String>,
    instance: Option<String>,
}

/// A study, series or instance can hold at most this many instances per
/// retrieval (larger studies page with series-level requests).
const RETRIEVE_LIMIT: u32 = 10_000;

/// Retrieve instances (WADO-RS): the stored objects exactly as received, as
/// `multipart/related; type="application/dicom"`, streamed one part at a
/// time from the blob store.
#[utoipa::path(get, path = "/dicomweb/studies/{study}/series/{series}/instances/{instance}", security(("bearer" = [])),
    params(("study" = String, Path), ("series" = String, Path), ("instance" = String, Path)),
    responses((status = 200, description = "multipart/related; type=\"application/dicom\""),
              (status = 401, body = super::problem::Problem), (status = 403, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem), (status = 406, body = super::problem::Problem)))]
pub async fn retrieve(
    State(state): State<AppState>,
    source: Source,
    meta: RequestMeta,
    min: MinPosition,
    headers: axum::http::HeaderMap,
    super::extract::ApiPath(path): super::extract::ApiPath<StudyPath>,
) -> Result<Response, ApiError> {
    min.wait(&state, instances::NAME).await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let acceptable = accept.split(',').any(|a| {
        let a = a.trim().to_ascii_lowercase();
        let wants_dicom = a.contains("type=\"application/dicom\"")
            || a.contains("type=application/dicom;")
            || a.ends_with("type=application/dicom");
        a.starts_with("*/*") || (a.starts_with("multipart/related") && (!a.contains("type=") || wants_dicom))
    });
    if !acceptable {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "instances are served as multipart/related; type=\"application/dicom\"",
        ));
    }
    let hospital = source.hospital()?;
    let found = instances::find(
        &state.app.store.read_models(),
        hospital,
        &path.study,
        path.series.as_deref(),
        path.instance.as_deref(),
        RETRIEVE_LIMIT,
    )
    .await?;
    available(found.iter().map(|i| (i.deleted, i.storage_tier.as_str(), i.erased)))?;
    if path.series.is_none() {
        source
            .record(&state, &meta, hospital, &path.study, PriorAccess::Retrieve)
            .await?;
    }
    let boundary = format!("medledger-{}", uuid::Uuid::new_v4().simple());
    let content_type = format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let blobs = state.blobs.clone();
    let closing = format!("--{boundary}--\r\n");
    let parts = futures::stream::iter(found).then(move |instance| {
        let blobs = blobs.clone();
        let boundary = boundary.clone();
        async move {
            let bytes = blobs
                .get(&instance.blob_key)
                .await
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::other(format!("blob {} is missing", instance.blob_key)))?;
            let mut part = format!(
                "--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={}\r\nContent-Length: {}\r\n\r\n",
                instance.transfer_syntax_uid,
                bytes.len()
            )
            .into_bytes();
            part.extend_from_slice(&bytes);
            part.extend_from_slice(b"\r\n");
            Ok::<_, std::io::Error>(bytes::Bytes::from(part))
        }
    });
    let body = parts.chain(futures::stream::once(async move { Ok(bytes::Bytes::from(closing)) }));
    let mut response = Response::new(axum::body::Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).map_err(|_| ApiError::not_found())?,
    );
    Ok(response)
}

/// An `includefield` value as a tag key, or `all`.
fn include_key(f: &str) -> Option<String> {
    if f == "all" {
        return Some("all".into());
    }
    medledger_dicom_ingest::json::tag_key_of(f)
}

/// Copy the attributes `include` names (or all but binary ones for `all`) from an instance's
/// stored DICOM JSON into a QIDO result, keeping what the result has.
fn add_included(target: &mut Value, instance_json: Option<&str>, include: &[String]) {
    let Some(source) = instance_json.and_then(|j| serde_json::from_str::<Map<String, Value>>(j).ok()) else {
        return;
    };
    let Some(target) = target.as_object_mut() else {
        return;
    };
    let all = include.iter().any(|i| i == "all");
    for (key, value) in source {
        let binary = value.get("BulkDataURI").is_some() || value.get("InlineBinary").is_some();
        let wanted = if all { !binary } else { include.contains(&key) };
        if wanted {
            target.entry(key).or_insert(value);
        }
    }
}

/// QIDO-RS study keys by keyword or tag.
fn qido_key(k: &str) -> &str {
    match k {
        "00100020" => "PatientID",
        "00100010" => "PatientName",
        "00080020" => "StudyDate",
        "00080061" => "ModalitiesInStudy",
        "00080050" => "AccessionNumber",
        "0020000D" | "0020000d" => "StudyInstanceUID",
        other => other,
    }
}

fn pn(v: &Option<String>) -> Value {
    match v {
        Some(name) => json!({"vr": "PN", "Value": [{"Alphabetic": name}]}),
        None => json!({"vr": "PN"}),
    }
}

fn text(vr: &str, v: &Option<String>) -> Value {
    match v {
        Some(s) => json!({"vr": vr, "Value": [s]}),
        None => json!({"vr": vr}),
    }
}

/// QIDO-RS study matching keys, `includefield`, `limit` and `offset` (the hospital is the
/// caller's to set).
fn study_query(raw: Option<&str>) -> Result<(worklist::StudyQuery, Vec<String>), ApiError> {
    let bad = |d: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", d.to_string());
    let mut q = worklist::StudyQuery {
        limit: 100,
        ..Default::default()
    };
    let mut include: Vec<String> = Vec::new();
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| bad("the query string is malformed"))?;
    for (k, v) in pairs {
        let v = v.trim().to_string();
        match qido_key(&k) {
            "PatientID" => q.patient_id = Some(v),
            "PatientName" => q.patient_name = Some(v),
            "ModalitiesInStudy" => q.modality = Some(v),
            "AccessionNumber" => q.accession_number = Some(v),
            "StudyInstanceUID" => q
                .study_instance_uids
                .extend(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty())),
            "StudyDate" => {
                let (from, to) = match v.split_once('-') {
                    Some((a, b)) => (a.to_string(), b.to_string()),
                    None => (v.clone(), v.clone()),
                };
                let check = |d: &str| d.is_empty() || (d.len() == 8 && d.chars().all(|c| c.is_ascii_digit()));
                if !check(&from) || !check(&to) || (from.is_empty() && to.is_empty()) {
                    return Err(bad("StudyDate is YYYYMMDD or a range YYYYMMDD-YYYYMMDD"));
                }
                q.date_from = (!from.is_empty()).then_some(from);
                q.date_to = (!to.is_empty()).then_some(to);
            }
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad("limit is 1 to 1000"))?
            }
            "offset" => {
                q.offset = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| bad("offset is 0 to 100000"))?
            }
            "includefield" => {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    include.push(include_key(f).ok_or_else(|| bad("includefield names an unknown attribute"))?);
                }
            }
            // Return keys and matching options we do not support are ignored, as PS3.18 allows.
            _ => {}
        }
    }
    Ok((q, include))
}

/// The shared priors of the context's report that match `q`, newest first, a page of them:
/// the priors list's studies, searched in each hospital that holds some.
async fn prior_studies(
    state: &AppState,
    context: &PriorContext,
    q: worklist::StudyQuery,
) -> Result<Vec<worklist::StudyMatch>, ApiError> {
    let mut by_hospital: std::collections::BTreeMap<Uuid, Vec<String>> = Default::default();
    for prior in super::reports::shared_priors(state, context).await? {
        let uid = prior.study.study_instance_uid;
        if q.study_instance_uids.is_empty() || q.study_instance_uids.contains(&uid) {
            by_hospital.entry(prior.study.hospital_id).or_default().push(uid);
        }
    }
    let db = state.app.store.read_models();
    let mut found = Vec::new();
    for (hospital_id, uids) in by_hospital {
        let in_hospital = worklist::StudyQuery {
            hospital_id,
            limit: uids.len() as u32,
            offset: 0,
            study_instance_uids: uids,
            ..q.clone()
        };
        found.extend(worklist::match_studies(&db, &in_hospital).await?);
    }
    let newest_first = |m: &worklist::StudyMatch| {
        let r = &m.row;
        (
            worklist::sortable_datetime(r.study_date.as_deref(), r.study_time.as_deref()),
            r.hospital_id,
            r.study_instance_uid.clone(),
        )
    };
    found.sort_by_key(|m| std::cmp::Reverse(newest_first(m)));
    Ok(found
        .into_iter()
        .skip(q.offset as usize)
        .take(q.limit as usize)
        .collect())
}

/// Search studies (QIDO-RS): `PatientID`, `PatientName` (wildcards `*`/`?`,
/// case-insensitive), `StudyDate` (`YYYYMMDD`, `A-B`, `A-`, `-B`),
/// `ModalitiesInStudy`, `AccessionNumber`, `StudyInstanceUID` (repeated or
/// comma-separated), `limit`, `offset`. Answers DICOM JSON (PS3.18 F.2;
/// IS values as numbers).
#[utoipa::path(get, path = "/dicomweb/studies", security(("bearer" = [])),
    responses((status = 200, description = "application/dicom+json"), (status = 204, description = "no match"),
              (status = 400, body = super::problem::Problem), (status = 401, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem)))]
pub async fn search_studies(
    State(state): State<AppState>,
    source: Source,
    meta: RequestMeta,
    min: MinPosition,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    min.wait(&state, worklist::NAME).await?;
    min.wait(&state, instances::NAME).await?;
    let (mut q, include) = study_query(raw.as_deref())?;
    let db = state.app.store.read_models();
    let found = match &source.prior {
        None => {
            q.hospital_id = source.hospital()?;
            worklist::match_studies(&db, &q).await?
        }
        Some(context) => {
            min.wait(&state, reports::NAME).await?;
            prior_studies(&state, context, q).await?
        }
    };
    if found.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    for m in &found {
        source
            .record(
                &state,
                &meta,
                m.row.hospital_id,
                &m.row.study_instance_uid,
                PriorAccess::Search,
            )
            .await?;
    }
    let root = &source.root;
    let mut studies: Vec<Value> = found
        .iter()
        .map(|m| {
            let r = &m.row;
            json!({
                "00080020": text("DA", &r.study_date),
                "00080030": text("TM", &r.study_time),
                "00080050": text("SH", &r.accession_number),
                "00080061": {"vr": "CS", "Value": r.modalities},
                "00080090": pn(&r.referring_physician),
                "00081030": text("LO", &r.study_description),
                "00081190": {"vr": "UR", "Value": [format!("{root}/studies/{}", r.study_instance_uid)]},
                "00100010": pn(&r.patient_name),
                "00100020": text("LO", &r.patient_id),
                "00100030": text("DA", &m.patient_birth_date),
                "00100040": text("CS", &r.patient_sex),
                "0020000D": ui(&r.study_instance_uid),
                "00201208": {"vr": "IS", "Value": [r.instance_count]},
            })
        })
        .collect();
    if !include.is_empty() {
        for (study, m) in studies.iter_mut().zip(&found) {
            let first = instances::metadata(&db, m.row.hospital_id, &m.row.study_instance_uid, None, None, 1).await?;
            add_included(study, first.first().and_then(|f| f.0.as_deref()), &include);
        }
    }
    Ok(dicom_json(
        StatusCode::OK,
        axum::Json(Value::Array(studies)).into_response(),
    ))
}

fn is(v: Option<i64>) -> Value {
    match v {
        Some(n) => json!({"vr": "IS", "Value": [n]}),
        None => json!({"vr": "IS"}),
    }
}

/// QIDO-RS series and instance levels: `/dicomweb/studies/{study}/series`
/// and `/dicomweb/studies/{study}/series/{series}/instances`.
#[utoipa::path(get, path = "/dicomweb/studies/{study}/series", security(("bearer" = [])),
    params(("study" = String, Path)),
    responses((status = 200, description = "application/dicom+json"), (status = 204, description = "no match"),
              (status = 401, body = super::problem::Problem), (status = 403, body = super::problem::Problem)))]
pub async fn search_series(
    State(state): State<AppState>,
    source: Source,
    meta: RequestMeta,
    min: MinPosition,
    super::extract::ApiPath(path): super::extract::ApiPath<StudyPath>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let instance_level = path.series.is_some();
    qido_level(state, source, meta, min, path, raw, instance_level).await
}

/// QIDO-RS instances of a whole study: `/dicomweb/studies/{study}/instances`.
#[utoipa::path(get, path = "/dicomweb/studies/{study}/instances", security(("bearer" = [])),
    params(("study" = String, Path)),
    responses((status = 200, description = "application/dicom+json"), (status = 204, description = "no match"),
              (status = 401, body = super::problem::Problem), (status = 403, body = super::problem::Problem)))]
pub async fn search_study_instances(
    State(state): State<AppState>,
    source: Source,
    meta: RequestMeta,
    min: MinPosition,
    super::extract::ApiPath(path): super::extract::ApiPath<StudyPath>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    qido_level(state, source, meta, min, path, raw, true).await
}

async fn qido_level(
    state: AppState,
    source: Source,
    meta: RequestMeta,
    min: MinPosition,
    path: StudyPath,
    raw: Option<String>,
    instance_level: bool,
) -> Result<Response, ApiError> {
    min.wait(&state, instances::NAME).await?;
    let hospital = source.hospital()?;
    let bad = |d: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", d.to_string());
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|_| bad("the query string is malformed"))?;
    // Matching keys (tag key → accepted values), includefield, limit and offset.
    let mut matching: Vec<(String, Vec<String>)> = Vec::new();
    let mut include: Vec<String> = Vec::new();
    let (mut limit, mut offset) = (RETRIEVE_LIMIT as usize, 0usize);
    for (k, v) in pairs {
        let v = v.trim().to_string();
        match k.as_str() {
            "includefield" => {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    include.push(include_key(f).ok_or_else(|| bad("includefield names an unknown attribute"))?);
                }
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=RETRIEVE_LIMIT as usize).contains(n))
                    .ok_or_else(|| bad("limit is 1 to 10000"))?
            }
            "offset" => offset = v.parse().map_err(|_| bad("offset is a number"))?,
            "fuzzymatching" | "min_position" => {}
            key => {
                let tag = medledger_dicom_ingest::json::tag_key_of(key)
                    .ok_or_else(|| bad("a matching key names an unknown attribute"))?;
                matching.push((tag, v.split(',').map(|s| s.trim().to_string()).collect()));
            }
        }
    }
    let root = &source.root;
    let db = state.app.store.read_models();
    let mut items: Vec<Value> = match instance_level {
        false => instances::series_of(&db, hospital, &path.study)
            .await?
            .into_iter()
            .map(|s| {
                json!({
                    "0020000D": ui(&path.study),
                    "0020000E": ui(&s.series_instance_uid),
                    "00080060": text("CS", &s.modality),
                    "0008103E": text("LO", &s.series_description),
                    "00200011": is(s.series_number),
                    "00201209": {"vr": "IS", "Value": [s.instances]},
                    "00081190": {"vr": "UR", "Value": [format!("{root}/studies/{}/series/{}", path.study, s.series_instance_uid)]},
                })
            })
            .collect(),
        true => instances::find(
            &db,
            hospital,
            &path.study,
            path.series.as_deref(),
            None,
            RETRIEVE_LIMIT,
        )
        .await?
        .into_iter()
        .filter(|i| !i.deleted)
        .map(|i| {
            json!({
                "0020000D": ui(&i.study_instance_uid),
                "0020000E": ui(&i.series_instance_uid),
                "00080016": ui(&i.sop_class_uid),
                "00080018": ui(&i.sop_instance_uid),
                "00020010": ui(&i.transfer_syntax_uid),
                "00200013": is(i.instance_number),
                "00280008": is(Some(i.number_of_frames)),
                "00280010": {"vr": "US", "Value": i.rows.into_iter().collect::<Vec<_>>()},
                "00280011": {"vr": "US", "Value": i.columns.into_iter().collect::<Vec<_>>()},
                "00081190": {"vr": "UR", "Value": [format!(
                    "{root}/studies/{}/series/{}/instances/{}",
                    i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid
                )]},
            })
        })
        .collect(),
    };
    // Single-value and list matching on the attributes each level returns (case-sensitive,
    // as PS3.4 C.2.2.2 says for UIDs, codes and numbers).
    items.retain(|item| {
        matching.iter().all(|(tag, accepted)| {
            let first = item.get(tag).and_then(|a| a.get("Value")).and_then(|v| v.get(0));
            let actual = match first {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return false,
            };
            accepted.contains(&actual)
        })
    });
    let mut items: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    if !include.is_empty() {
        for item in &mut items {
            let series = item["0020000E"]["Value"][0].as_str().unwrap_or_default().to_string();
            let sop = item
                .get("00080018")
                .and_then(|s| s["Value"][0].as_str())
                .map(str::to_string);
            let first = instances::metadata(&db, hospital, &path.study, Some(&series), sop.as_deref(), 1).await?;
            add_included(item, first.first().and_then(|f| f.0.as_deref()), &include);
        }
    }
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if path.series.is_none() {
        source
            .record(&state, &meta, hospital, &path.study, PriorAccess::Contents)
            .await?;
    }
    Ok(dicom_json(
        StatusCode::OK,
        axum::Json(Value::Array(items)).into_response(),
    ))
}

/// Can the instances found be served? Nothing found or a deleted study: 404; objects erased
/// with their patient: 410 `study_erased`; archived: 409 `study_archived` (retrieve first).
pub(super) fn available<'a>(found: impl Iterator<Item = (bool, &'a str, bool)>) -> Result<(), ApiError> {
    let mut any = false;
    for (deleted, tier, erased) in found {
        any = true;
        if deleted {
            return Err(ApiError::not_found());
        }
        if erased {
            return Err(ApiError::new(
                StatusCode::GONE,
                "study_erased",
                "the study's objects were erased with its patient",
            ));
        }
        if tier != "online" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "study_archived",
                "the study is archived; retrieve it first",
            ));
        }
    }
    if any {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// Retrieve metadata (WADO-RS): the DICOM JSON of every instance of a study, series or
/// instance, answered from the database (kept at ingest; no object is opened). Pixel data
/// and large binary values are `BulkDataURI`s to `…/bulkdata/{path}`.
#[utoipa::path(get, path = "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata", security(("bearer" = [])),
    params(("study" = String, Path), ("series" = String, Path), ("instance" = String, Path)),
    responses((status = 200, description = "application/dicom+json"),
              (status = 401, body = super::problem::Problem), (status = 403, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem),
              (status = 410, body = super::problem::Problem)))]
pub async fn metadata(
    State(state): State<AppState>,
    source: Source,
    meta: RequestMeta,
    min: MinPosition,
    super::extract::ApiPath(path): super::extract::ApiPath<StudyPath>,
) -> Result<Response, ApiError> {
    min.wait(&state, instances::NAME).await?;
    let hospital = source.hospital()?;
    let found = instances::metadata(
        &state.app.store.read_models(),
        hospital,
        &path.study,
        path.series.as_deref(),
        path.instance.as_deref(),
        RETRIEVE_LIMIT,
    )
    .await?;
    // Metadata lives in the database: archived studies keep answering it.
    available(
        found
            .iter()
            .map(|(_, deleted, _, erased)| (*deleted, "online", *erased)),
    )?;
    // Stored URIs are relative to `/dicomweb/`: they name the same paths under the root served.
    let absolute = format!("\"BulkDataURI\":\"{}/", source.root);
    let mut body = String::with_capacity(
        found
            .iter()
            .map(|f| f.0.as_ref().map_or(0, String::len) + 1)
            .sum::<usize>()
            + 2,
    );
    body.push('[');
    for (i, (json, ..)) in found.iter().enumerate() {
        let Some(json) = json else {
            return Err(ApiError::new(
                StatusCode::GONE,
                "study_erased",
                "the study's metadata was erased with its patient",
            ));
        };
        if i > 0 {
            body.push(',');
        }
        body.push_str(&json.replace("\"BulkDataURI\":\"/dicomweb/", &absolute));
    }
    body.push(']');
    if path.series.is_none() {
        source
            .record(&state, &meta, hospital, &path.study, PriorAccess::Metadata)
            .await?;
    }
    Ok(dicom_json(StatusCode::OK, Response::new(axum::body::Body::from(body))))
}

/// WADO-RS bulk data path: the instance and the element's path.
#[derive(serde::Deserialize)]
pub struct BulkPath {
    study: String,
    series: String,
    instance: String,
    path: String,
}

/// Retrieve bulk data (WADO-RS): the value of the element a `BulkDataURI` names, as
/// `multipart/related; type="application/octet-stream"` (one part).
#[utoipa::path(get, path = "/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}", security(("bearer" = [])),
    params(("study" = String, Path), ("series" = String, Path), ("instance" = String, Path), ("path" = String, Path)),
    responses((status = 200, description = "multipart/related; type=\"application/octet-stream\""),
              (status = 401, body = super::problem::Problem), (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem), (status = 410, body = super::problem::Problem)))]
pub async fn bulkdata(
    State(state): State<AppState>,
    source: Source,
    min: MinPosition,
    super::extract::ApiPath(path): super::extract::ApiPath<BulkPath>,
) -> Result<Response, ApiError> {
    min.wait(&state, instances::NAME).await?;
    let hospital = source.hospital()?;
    let found = instances::find(
        &state.app.store.read_models(),
        hospital,
        &path.study,
        Some(&path.series),
        Some(&path.instance),
        1,
    )
    .await?;
    available(found.iter().map(|i| (i.deleted, i.storage_tier.as_str(), i.erased)))?;
    let instance = &found[0];
    let bytes = state
        .blobs
        .get(&instance.blob_key)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "blob_store_unavailable", e.to_string()))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "blob_missing",
                "the stored object is missing",
            )
        })?;
    let element = path.path.clone();
    let value = tokio::task::spawn_blocking(move || medledger_dicom_ingest::json::bulk_value(&bytes, &element))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e.to_string()))?
        .map_err(|e| match e {
            medledger_dicom_ingest::json::BulkDataError::NotFound => ApiError::not_found(),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", other.to_string()),
        })?;
    let boundary = format!("medledger-{}", uuid::Uuid::new_v4().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        value.len()
    )
    .into_bytes();
    body.extend_from_slice(&value);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!(
            "multipart/related; type=\"application/octet-stream\"; boundary={boundary}"
        ))
        .map_err(|_| ApiError::not_found())?,
    );
    Ok(response)
}
