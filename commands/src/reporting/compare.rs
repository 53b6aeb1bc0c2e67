//! Comparison (对比): a report beside the patient's priors — the hospital's own studies and
//! reports, and what the other hospitals of the alliance share — and field-level diffs of two
//! reports.
//!
//! Another hospital's data is only ever reached in the context of one of the caller's own
//! reports ([`PriorContext`]), and the rule of [`medledger_domain::reporting::priors`] is
//! decided afresh for every request, from streams: the other hospital's (which alliance), its
//! reporting settings' (what it shares, so withdrawing takes effect at once) and each study's
//! opening event (the patient as received, opened with the patient's key, so a forgotten
//! patient matches nobody). Which studies to ask about is the read models' answer (the
//! priors search); whether they may be shown is this module's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use medledger_domain::identity::Tenant;
use medledger_domain::imaging::study::StudyEvent;
use medledger_domain::pii::PersonalData;
use medledger_domain::reporting::priors::{
    may_compare, PatientKey, PriorAccess, PriorCase, PriorRefusal, PriorUse, PriorViews, RecordPriorView,
};
use medledger_domain::reporting::report::{Report, ReportContent, ReportDecider, ReportStatus};
use medledger_domain::reporting::settings::{PriorSharing, ReportingSettingsDecider};
use medledger_domain::reporting::StudyRef;
use serde::Serialize;
use uuid::Uuid;

use super::{hospital_profile, not_found, report_stream, settings_stream, study_stream, visible_report};
use crate::app::App;
use crate::authorization::Action;
use crate::codec::{decode, Metadata};
use crate::error::Error;
use crate::identity::Principal;

/// The trail of looks at a study from other hospitals.
pub fn prior_views_stream(study: &StudyRef) -> String {
    format!("priorviews-{}.{}", study.hospital_id, study.study_instance_uid)
}

/// The patient a study's opening event names, opened with the patient's key (`None` when the
/// study is unknown, lacks a Patient ID or birth date, or its patient was forgotten). Every
/// study stream opens with an `InstanceStored` (the study refuses anything else before its
/// first instance), and the worklist keeps that instance's patient too: the priors search and
/// this check compare the same values.
async fn study_patient(app: &App, study: &StudyRef) -> Result<Option<PatientKey>, Error> {
    let head = app
        .store
        .read_stream_head(&study_stream(study.hospital_id, &study.study_instance_uid), 1)
        .await?;
    for e in app.codec.open(head).await? {
        if let StudyEvent::InstanceStored { patient, .. } = decode::<StudyEvent>(&e)? {
            return Ok(PatientKey::new(
                patient.patient_id.value(),
                patient.birth_date.as_ref().and_then(PersonalData::value),
            ));
        }
    }
    Ok(None)
}

/// One of the caller's own reports, as the context in which other hospitals' studies and
/// reports may be seen: its patient is the one they must be of.
#[derive(Clone, Debug)]
pub struct PriorContext {
    pub report: Report,
    /// The report's (the caller's) hospital and alliance.
    pub tenant: Tenant,
    patient: Option<PatientKey>,
}

/// The caller's report `report_id` as a comparison context (404 unless it is a report of the
/// caller's hospital they may read).
pub async fn prior_context(app: &App, p: &Principal, report_id: Uuid) -> Result<PriorContext, Error> {
    let (report, tenant) = visible_report(app, p, report_id, Action::ViewReports).await?;
    PriorContext::of(app, report, tenant).await
}

impl PriorContext {
    async fn of(app: &App, report: Report, tenant: Tenant) -> Result<PriorContext, Error> {
        let patient = study_patient(app, &report.study).await?;
        Ok(PriorContext {
            report,
            tenant,
            patient,
        })
    }

    /// The report's patient as the alliance match looks for them.
    pub fn patient(&self) -> Option<&PatientKey> {
        self.patient.as_ref()
    }

    /// May `study` (of another hospital) be shown beside the report for `wanted`? The
    /// sharing it is seen under, or why not.
    pub async fn check(
        &self,
        app: &App,
        study: &StudyRef,
        wanted: PriorUse,
    ) -> Result<Result<PriorSharing, PriorRefusal>, Error> {
        if study.hospital_id == self.report.study.hospital_id {
            return Ok(Err(PriorRefusal::OwnHospital));
        }
        let profile = hospital_profile(app, study.hospital_id).await?;
        let (settings, _) = app
            .load::<ReportingSettingsDecider>(&settings_stream(study.hospital_id))
            .await?;
        let patient = match settings.prior_sharing {
            PriorSharing::None => None,
            _ => study_patient(app, study).await?,
        };
        let case = PriorCase {
            report_hospital: self.report.study.hospital_id,
            report_alliance: self.tenant.alliance_id,
            report_patient: self.patient.as_ref(),
            hospital: study.hospital_id,
            alliance: Some(profile.alliance_id),
            sharing: settings.prior_sharing,
            patient: patient.as_ref(),
        };
        Ok(may_compare(&case, wanted).map(|()| settings.prior_sharing))
    }

    /// [`PriorContext::check`], a refusal answered as not found.
    pub async fn grant(&self, app: &App, study: &StudyRef, wanted: PriorUse) -> Result<PriorSharing, Error> {
        self.check(app, study, wanted).await?.map_err(|refusal| {
            tracing::debug!(%refusal, study = %study.study_instance_uid, "not a prior of the report");
            not_found()
        })
    }

    /// Report `report_id` if it is a final report of another hospital shared with its
    /// reports, of this report's patient; `None` for anything else (a draft, not shared,
    /// another patient's, another alliance's, the caller's own hospital's).
    async fn shared_final(&self, app: &App, report_id: Uuid) -> Result<Option<Report>, Error> {
        let (state, _) = app.load::<ReportDecider>(&report_stream(report_id)).await?;
        let Some(r) = state.report.filter(|r| r.status == ReportStatus::Final) else {
            return Ok(None);
        };
        Ok(self.check(app, &r.study, PriorUse::ReportText).await?.ok().map(|_| r))
    }

    /// The text of [`PriorContext::shared_final`]: what a prior carries of another hospital's
    /// report, since that report cannot be opened by id.
    pub async fn shared_report(&self, app: &App, report_id: Uuid) -> Result<Option<SharedReport>, Error> {
        Ok(self.shared_final(app, report_id).await?.map(SharedReport::from))
    }

    /// Record that the caller looked at `study` (another hospital's, already granted) as a
    /// prior of this report (`PriorStudyViewed` on the study's trail).
    pub async fn record_view(
        &self,
        app: &App,
        study: &StudyRef,
        access: PriorAccess,
        metadata: &Metadata,
    ) -> Result<u64, Error> {
        let command = RecordPriorView {
            study: study.clone(),
            report_id: self.report.id,
            viewer_hospital: self.report.study.hospital_id,
            access,
        };
        let r = app
            .record::<PriorViews>(&prior_views_stream(study), command, metadata)
            .await?;
        Ok(r.position())
    }
}

/// The text of a final report another hospital of the caller's alliance shows
/// as a prior (对比): what the priors of a report carry for studies outside its
/// hospital, since those reports cannot be opened by id.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SharedReport {
    pub report_id: Uuid,
    pub findings: String,
    pub impression: String,
    pub recommendations: String,
    pub critical: bool,
    pub fields: BTreeMap<String, String>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

impl From<Report> for SharedReport {
    fn from(r: Report) -> Self {
        SharedReport {
            report_id: r.id,
            findings: r.content.findings,
            impression: r.content.impression,
            recommendations: r.content.recommendations,
            critical: r.content.critical,
            fields: r.content.fields,
            reviewed_at: r.reviewed_at,
        }
    }
}

/// One field's text diff between two reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FieldDiff {
    pub field: String,
    pub before: String,
    pub after: String,
    /// Word-level changes: `equal`, `delete` or `insert` runs of text.
    pub changes: Vec<DiffRun>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DiffRun {
    pub op: &'static str,
    pub text: String,
}

fn content_fields(c: &ReportContent) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("findings".to_string(), c.findings.clone());
    m.insert("impression".to_string(), c.impression.clone());
    m.insert("recommendations".to_string(), c.recommendations.clone());
    m.insert("critical".to_string(), c.critical.to_string());
    m.insert("key_images".to_string(), c.key_images.join("\n"));
    for (k, v) in &c.fields {
        m.insert(format!("fields.{k}"), v.clone());
    }
    m
}

/// Field-level text diff of two report contents (only fields that differ).
pub fn diff_contents(before: &ReportContent, after: &ReportContent) -> Vec<FieldDiff> {
    let (a, b) = (content_fields(before), content_fields(after));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let empty = String::new();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k).unwrap_or(&empty), b.get(k).unwrap_or(&empty));
            if x == y {
                return None;
            }
            let diff = similar::TextDiff::from_chars(x.as_str(), y.as_str());
            let mut changes: Vec<DiffRun> = Vec::new();
            for c in diff.iter_all_changes() {
                let op = match c.tag() {
                    similar::ChangeTag::Equal => "equal",
                    similar::ChangeTag::Delete => "delete",
                    similar::ChangeTag::Insert => "insert",
                };
                match changes.last_mut() {
                    Some(last) if last.op == op => last.text.push_str(c.value()),
                    _ => changes.push(DiffRun {
                        op,
                        text: c.value().to_string(),
                    }),
                }
            }
            Some(FieldDiff {
                field: k.clone(),
                before: x.clone(),
                after: y.clone(),
                changes,
            })
        })
        .collect()
}

/// One side of a diff: which report, of which study in which hospital, where it stands.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ComparedReport {
    pub report_id: Uuid,
    pub study: StudyRef,
    pub hospital_name: String,
    /// A report of the caller's hospital (`false`: another hospital's shared final report).
    pub own_hospital: bool,
    pub status: ReportStatus,
    /// The content version compared.
    pub version: u64,
    pub reviewed_at: Option<DateTime<Utc>>,
}

/// Two reports side by side: both reports' facts and what differs between their texts.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReportDiff {
    /// The report compared against (`against`, e.g. a prior's).
    pub before: ComparedReport,
    /// The caller's report.
    pub after: ComparedReport,
    /// The fields that differ, from `before` to `after`.
    pub fields: Vec<FieldDiff>,
}

async fn compared(app: &App, p: &Principal, r: &Report) -> Result<ComparedReport, Error> {
    let hospital = hospital_profile(app, r.study.hospital_id).await?;
    Ok(ComparedReport {
        report_id: r.id,
        study: r.study.clone(),
        hospital_name: hospital.name.as_str().to_string(),
        own_hospital: p.tenant.hospital_id == Some(r.study.hospital_id),
        status: r.status,
        version: r.version,
        reviewed_at: r.reviewed_at,
    })
}

/// Diff report `before` against the caller's report `after`: `before` is another report of
/// the caller's hospital, or another hospital's final report shared with its reports as a
/// prior of `after`'s patient (the same rule as the priors list), whose reading is recorded
/// on that study's trail (`PriorStudyViewed`, `report_text`); anything else is 404.
pub async fn diff_reports(
    app: &App,
    p: &Principal,
    before: Uuid,
    after: Uuid,
    metadata: &Metadata,
) -> Result<ReportDiff, Error> {
    let (mine, tenant) = visible_report(app, p, after, Action::ViewReports).await?;
    let theirs = match visible_report(app, p, before, Action::ViewReports).await {
        Ok((r, _)) => r,
        Err(e) if e.classify().1 == "not_found" => {
            let context = PriorContext::of(app, mine.clone(), tenant).await?;
            let theirs = context.shared_final(app, before).await?.ok_or(e)?;
            context
                .record_view(app, &theirs.study, PriorAccess::ReportText, metadata)
                .await?;
            theirs
        }
        Err(e) => return Err(e),
    };
    Ok(ReportDiff {
        before: compared(app, p, &theirs).await?,
        after: compared(app, p, &mine).await?,
        fields: diff_contents(&theirs.content, &mine.content),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_name_only_changed_fields_with_their_runs() {
        let before = ReportContent {
            findings: "双肺纹理清晰。".into(),
            impression: "未见异常".into(),
            ..Default::default()
        };
        let mut after = before.clone();
        after.findings = "双肺纹理增粗。".into();
        after.fields.insert("nodule".into(), "5mm".into());
        let d = diff_contents(&before, &after);
        assert_eq!(
            d.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
            vec!["fields.nodule", "findings"]
        );
        let findings = &d[1];
        assert_eq!(
            findings.changes,
            vec![
                DiffRun {
                    op: "equal",
                    text: "双肺纹理".into()
                },
                DiffRun {
                    op: "delete",
                    text: "清晰".into()
                },
                DiffRun {
                    op: "insert",
                    text: "增粗".into()
                },
                DiffRun {
                    op: "equal",
                    text: "。".into()
                },
            ]
        );
    }
}
