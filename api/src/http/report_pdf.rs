//! The printed report: a final report laid out by its template and rendered to PDF
//! (`medledger-print`). The template (through `commands::reporting::print_document`)
//! chooses the title, the header (hospital name, logo, header line), the patient-block
//! entries, the body's sections in order with their headings, the footer, the signature
//! block and the QR code; this module fills them: the hospital's name and logo, the
//! patient block from the worklist, the key images rendered from their instances, the
//! signatures of the preliminary author and the reviewer, and the verification URL.

use chrono::{DateTime, Utc};
use medledger_commands::identity::Principal;
use medledger_commands::reporting as rep;
use medledger_domain::reporting::template::{PatientField, PrintedBody};
use medledger_print::{
    KeyImage, PatientBlock, PatientField as PrintField, ReportDocument, Section, SectionContent, Signature,
};
use medledger_projections::read_models::{accounts, instances, organization, worklist};
use uuid::Uuid;

use super::problem::ApiError;
use super::AppState;

/// Key images on a printed page are rendered to fit this box.
const KEY_IMAGE_SIZE: u32 = 512;

fn local(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

async fn person(state: &AppState, id: Option<Uuid>) -> Result<String, ApiError> {
    let Some(id) = id else {
        return Ok(String::new());
    };
    Ok(accounts::get(&state.app.store.read_models(), id)
        .await?
        .and_then(|a| a.display_name)
        .unwrap_or_default())
}

/// The PDF of final report `id` as printed at `printed_at`.
pub async fn render(state: &AppState, p: &Principal, id: Uuid, printed_at: DateTime<Utc>) -> Result<Vec<u8>, ApiError> {
    let report = rep::get_report(&state.app, p, id, None).await?;
    // The template decides what is printed and where (commands::reporting::print_document).
    let layout = rep::printable(&state.app, p, id).await?;
    let db = state.app.store.read_models();
    let hospital = organization::get_hospital(&db, report.study.hospital_id).await?;
    // Times print in the hospital's own time zone.
    let tz: chrono_tz::Tz = hospital
        .as_ref()
        .and_then(|h| h.time_zone.parse().ok())
        .unwrap_or(chrono_tz::Asia::Shanghai);
    let logo = match hospital.as_ref().and_then(|h| h.logo.as_ref()) {
        Some(l) if layout.show_logo => state.blobs.get(&l.blob_key).await.ok().flatten().map(|b| b.to_vec()),
        _ => None,
    };
    let study = worklist::get_study(&db, report.study.hospital_id, &report.study.study_instance_uid).await?;
    let patient = match &study {
        Some((row, _)) => PatientBlock {
            name: row
                .patient_name
                .clone()
                .unwrap_or_default()
                .replace('^', " ")
                .trim()
                .to_string(),
            sex: match row.patient_sex.as_deref() {
                Some("M") => "男".into(),
                Some("F") => "女".into(),
                Some(other) => other.into(),
                None => String::new(),
            },
            age: row.patient_age.map(|a| format!("{a}岁")).unwrap_or_default(),
            patient_id: row.patient_id.clone().unwrap_or_default(),
            accession_number: row.accession_number.clone().unwrap_or_default(),
            study_date: row
                .study_date
                .as_deref()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok())
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            modality: row.modalities.join("/"),
            body_part: row.body_part.clone().unwrap_or_default(),
            exam_item: row.study_description.clone().unwrap_or_default(),
            department: String::new(),
            referring_physician: row
                .referring_physician
                .clone()
                .unwrap_or_default()
                .replace('^', " ")
                .trim()
                .to_string(),
            extra: vec![],
        },
        None => PatientBlock::default(),
    };
    // Key images: frame 1 of each referenced instance of the study, rendered; an image that
    // cannot be found or decoded is left out (and logged), never fatal to printing.
    let mut key_images = Vec::new();
    for sop in &report.content.key_images {
        let found = instances::find(
            &db,
            report.study.hospital_id,
            &report.study.study_instance_uid,
            None,
            Some(sop),
            1,
        )
        .await?;
        let Some(instance) = found.into_iter().next() else {
            tracing::info!(report = %id, sop, "key image not in the study; left out of the print");
            continue;
        };
        let Ok(Some(bytes)) = state.blobs.get(&instance.blob_key).await else {
            continue;
        };
        let options = medledger_dicom_ingest::render::RenderOptions {
            viewport: Some((KEY_IMAGE_SIZE, KEY_IMAGE_SIZE)),
            ..Default::default()
        };
        match medledger_dicom_ingest::render_cache::render_blocking(bytes, 1, options).await {
            Ok(r) => key_images.push(KeyImage {
                data: r.bytes,
                caption: [
                    instance.series_description.clone().unwrap_or_default(),
                    instance.instance_number.map(|n| format!("Im{n}")).unwrap_or_default(),
                ]
                .join(" ")
                .trim()
                .to_string(),
            }),
            Err(e) => tracing::warn!(report = %id, sop, error = %e, "key image not rendered"),
        }
    }
    let mut signatures = Vec::new();
    if layout.signature_block {
        if report.preliminary_by.is_some() {
            signatures.push(Signature {
                role: layout.preliminary_signature_label.clone(),
                name: person(state, report.preliminary_by).await?,
                at: report.preliminary_at.map(|t| local(t, tz)).unwrap_or_default(),
            });
        }
        signatures.push(Signature {
            role: layout.review_signature_label.clone(),
            name: person(state, report.reviewed_by).await?,
            at: report.reviewed_at.map(|t| local(t, tz)).unwrap_or_default(),
        });
    }
    let sections = layout
        .sections
        .iter()
        .map(|s| Section {
            heading: s.heading.clone(),
            content: match &s.body {
                PrintedBody::Text { text } => SectionContent::Text(text.clone()),
                PrintedBody::KeyImages => SectionContent::KeyImages,
            },
            alert: s.alert,
        })
        .collect();
    let mut labels = medledger_print::Labels::default();
    let patient_fields = layout
        .patient_fields
        .iter()
        .map(|item| {
            let (field, label) = match item.field {
                PatientField::Name => (PrintField::Name, &mut labels.name),
                PatientField::Sex => (PrintField::Sex, &mut labels.sex),
                PatientField::Age => (PrintField::Age, &mut labels.age),
                PatientField::PatientId => (PrintField::PatientId, &mut labels.patient_id),
                PatientField::AccessionNumber => (PrintField::AccessionNumber, &mut labels.accession_number),
                PatientField::StudyDate => (PrintField::StudyDate, &mut labels.study_date),
                PatientField::Modality => (PrintField::Modality, &mut labels.modality),
                PatientField::BodyPart => (PrintField::BodyPart, &mut labels.body_part),
                PatientField::ExamItem => (PrintField::ExamItem, &mut labels.exam_item),
                PatientField::Department => (PrintField::Department, &mut labels.department),
                PatientField::ReferringPhysician => (PrintField::ReferringPhysician, &mut labels.referring_physician),
            };
            if !item.label.trim().is_empty() {
                *label = item.label.trim().to_string();
            }
            field
        })
        .collect();
    let base = state.public_url.trim_end_matches('/');
    let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let document = ReportDocument {
        hospital_name: hospital.map(|h| h.name).unwrap_or_default(),
        hospital_logo: logo,
        title: layout.title.clone(),
        patient,
        sections,
        critical: report.content.critical,
        key_images,
        signatures,
        verification_url: Some(format!(
            "{base}/verify/reports/{id}?version={}",
            report.final_version.unwrap_or(report.version)
        )),
        printed_at: local(printed_at, tz),
        footer_text: non_empty(&layout.footer).unwrap_or_else(|| "本报告仅供临床参考".into()),
        layout: medledger_print::LayoutOptions {
            title_text: None,
            header_text: non_empty(&layout.header),
            footer_text: None,
            show_hospital_name: layout.show_hospital_name,
            show_logo: layout.show_logo,
            show_patient_block: layout.patient_block,
            patient_fields,
            show_signatures: layout.signature_block,
            show_qr_code: layout.show_qr_code,
            labels,
        },
    };
    let fonts = medledger_print::FontConfig::from_env();
    tokio::task::spawn_blocking(move || medledger_print::render_pdf(&document, &fonts))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                e.to_string(),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                e.code(),
                format!("the report could not be printed: {e}"),
            )
        })
}

/// What the QR code on a printed report leads to: is this report, at this version, the
/// hospital's final word? Public (whoever holds the paper may check it) and so it shows no
/// personal data: hospital, status, the final version and when it was signed off.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub report_id: Uuid,
    pub hospital_name: String,
    /// `draft`, `preliminary` or `final`.
    pub status: String,
    pub final_version: Option<u64>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub prints: usize,
    /// The version printed on the paper is the report's current final version.
    pub valid: bool,
    /// The printed version was replaced by an amended final report.
    pub superseded: bool,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct VerifyParams {
    /// The version printed on the paper.
    pub version: Option<u64>,
}

/// Verify a printed report (the target of its QR code). No authentication; no personal data.
#[utoipa::path(get, path = "/verify/reports/{id}", params(("id" = Uuid, Path), VerifyParams),
    responses((status = 200, body = Verification), (status = 404, body = super::problem::Problem)))]
pub async fn verify(
    axum::extract::State(state): axum::extract::State<AppState>,
    super::extract::ApiPath(id): super::extract::ApiPath<Uuid>,
    super::extract::ApiQuery(params): super::extract::ApiQuery<VerifyParams>,
) -> Result<axum::Json<Verification>, ApiError> {
    use medledger_domain::reporting::report::{ReportDecider, ReportStatus};
    let (state_of, _) = state
        .app
        .load::<ReportDecider>(&rep::report_stream(id))
        .await
        .map_err(ApiError::from)?;
    let report = state_of.report.ok_or_else(ApiError::not_found)?;
    let hospital = organization::get_hospital(&state.app.store.read_models(), report.study.hospital_id)
        .await?
        .map(|h| h.name)
        .unwrap_or_default();
    let status = match report.status {
        ReportStatus::Draft => "draft",
        ReportStatus::Preliminary => "preliminary",
        ReportStatus::Final => "final",
    };
    let printed = params.version;
    let superseded = printed.is_some_and(|v| report.superseded.iter().any(|s| s.version == v));
    let valid = report.status == ReportStatus::Final
        && report.final_version.is_some()
        && printed.is_none_or(|v| Some(v) == report.final_version);
    Ok(axum::Json(Verification {
        report_id: id,
        hospital_name: hospital,
        status: status.into(),
        final_version: report.final_version,
        reviewed_at: report.reviewed_at,
        prints: report.prints.len(),
        valid,
        superseded,
    }))
}
