//! Reporting use cases: open a study's report (one per study), edit it under
//! the single-editor lock, submit, review, send back, amend, print; report
//! templates; knowledge-base entries; the hospital's reporting settings;
//! history and `as_of` views computed from the log; comparison with priors
//! and field-level diffs ([`compare`]).
//!
//! Every function authorizes through [`crate::authorization::authorize`]
//! against the report's hospital before anything is decided. Decisions read
//! only event streams: the report's own, its study's (does it exist, whose
//! is it), the template or entry being applied, and the hospital's
//! reporting settings.

use chrono::{DateTime, Utc};
use medledger_domain::identity::Tenant;
use medledger_domain::imaging::study::StudyEvent;
use medledger_domain::organization::hospital::{Hospital, HospitalProfile};
use medledger_domain::pii::SubjectId;
use medledger_domain::reporting::knowledge::{
    EntryScope, EntrySpec, KnowledgeEntry, KnowledgeEntryCommand, KnowledgeEntryDecider,
};
use medledger_domain::reporting::report::{
    is_uid, Report, ReportCommand, ReportContent, ReportDecider, ReportEvent, ReportState,
};
use medledger_domain::reporting::settings::{
    PriorSharing, ReportingSettings, ReportingSettingsCommand, ReportingSettingsDecider,
};
use medledger_domain::reporting::template::{
    PatientItem, PrintedSection, ReportTemplate, ReportTemplateCommand, ReportTemplateDecider, TemplateSpec,
};
use medledger_domain::reporting::StudyRef;
use medledger_domain::Decider;
use serde::Serialize;
use uuid::Uuid;

use crate::app::App;
use crate::authorization::{authorize, Action};
use crate::codec::{decode, metadata_of, Metadata};
use crate::error::{Error, Kind};
use crate::identity::Principal;
use crate::organization::hospital_stream;
use crate::store::{Guard, RecordedEvent, StoreError};

mod compare;
pub use compare::*;

pub fn report_stream(id: Uuid) -> String {
    format!("report-{id}")
}
pub fn template_stream(id: Uuid) -> String {
    format!("report-template-{id}")
}
pub fn knowledge_stream(id: Uuid) -> String {
    format!("knowledge-entry-{id}")
}
pub fn settings_stream(hospital_id: Uuid) -> String {
    format!("reporting-settings-{hospital_id}")
}
/// The imaging context's study stream (same naming as `dicom-ingest`).
fn study_stream(hospital_id: Uuid, study_instance_uid: &str) -> String {
    format!("study-{hospital_id}.{study_instance_uid}")
}

/// The guard that makes a study's report unique.
const REPORT_GUARD: &str = "study-report";

fn not_found() -> Error {
    Error::rejected(Kind::NotFound, "not_found", "no such resource")
}

/// The principal's own hospital (reporting is always done in one).
fn own_hospital(p: &Principal) -> Result<Uuid, Error> {
    p.tenant.hospital_id.ok_or_else(Error::forbidden)
}

/// A hospital, from its stream (404 if it does not exist).
async fn hospital_profile(app: &App, hospital_id: Uuid) -> Result<HospitalProfile, Error> {
    let (state, _) = app.load::<Hospital>(&hospital_stream(hospital_id)).await?;
    state.hospital.ok_or_else(not_found)
}

/// The tenant of a hospital, from its stream (404 if it does not exist).
async fn hospital_tenant(app: &App, hospital_id: Uuid) -> Result<Tenant, Error> {
    let h = hospital_profile(app, hospital_id).await?;
    Ok(Tenant {
        alliance_id: Some(h.alliance_id),
        hospital_id: Some(h.id),
    })
}

fn with_tenant(metadata: &Metadata, tenant: Tenant) -> Metadata {
    let mut m = metadata.clone();
    m.tenant = tenant;
    m
}

/// What reporting needs to know about a study, folded from its stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StudyFacts {
    pub patient_subject: Option<SubjectId>,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub study_description: Option<String>,
}

async fn study_facts(app: &App, hospital_id: Uuid, uid: &str) -> Result<Option<StudyFacts>, Error> {
    let recorded = app.store.read_stream(&study_stream(hospital_id, uid), 0).await?;
    if recorded.is_empty() {
        return Ok(None);
    }
    let mut facts = StudyFacts::default();
    for e in app.codec.open(recorded).await? {
        if let StudyEvent::InstanceStored {
            patient, attributes, ..
        } = decode::<StudyEvent>(&e)?
        {
            facts.patient_subject.get_or_insert(patient.patient_id.subject());
            if facts.modality.is_none() {
                facts.modality = attributes.modality;
            }
            if facts.body_part.is_none() {
                facts.body_part = attributes.body_part;
            }
            if facts.study_description.is_none() {
                facts.study_description = attributes.study_description;
            }
        }
    }
    Ok(facts.patient_subject.is_some().then_some(facts))
}

/// A report with its tenant, if `p` may see its hospital; 404 otherwise.
async fn visible_report(app: &App, p: &Principal, id: Uuid, action: Action) -> Result<(Report, Tenant), Error> {
    let (state, _) = app.load::<ReportDecider>(&report_stream(id)).await?;
    let report = state.report.ok_or_else(not_found)?;
    let tenant = hospital_tenant(app, report.study.hospital_id).await?;
    authorize(p, action, &tenant)?;
    Ok((report, tenant))
}

/// A report and the global position of the last event a command wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ReportOutcome {
    pub report: Report,
    pub position: u64,
}

async fn run(
    app: &App,
    p: &Principal,
    id: Uuid,
    action: Action,
    command: ReportCommand,
    metadata: &Metadata,
) -> Result<ReportOutcome, Error> {
    let (_, tenant) = visible_report(app, p, id, action).await?;
    let executed = app
        .execute::<ReportDecider>(&report_stream(id), command, &with_tenant(metadata, tenant), vec![])
        .await?;
    let (state, _) = app.load::<ReportDecider>(&report_stream(id)).await?;
    Ok(ReportOutcome {
        report: state.report.ok_or_else(not_found)?,
        position: executed.position(),
    })
}

/// The content a new report starts from: the template's defaults.
fn template_content(t: &ReportTemplate) -> ReportContent {
    ReportContent {
        findings: t.spec.default_findings.clone(),
        impression: t.spec.default_impression.clone(),
        fields: t
            .spec
            .fields
            .iter()
            .map(|f| (f.key.clone(), f.default_text.clone()))
            .collect(),
        ..Default::default()
    }
}

/// A template of `hospital_id` that is in use (not retired).
async fn usable_template(app: &App, hospital_id: Uuid, id: Uuid) -> Result<ReportTemplate, Error> {
    let (state, _) = app.load::<ReportTemplateDecider>(&template_stream(id)).await?;
    match state.template {
        Some(t) if t.hospital_id == hospital_id && !t.retired => Ok(t),
        _ => Err(Error::rejected(
            Kind::Invalid,
            "unknown_template",
            format!("template {id} is not an active template of this hospital"),
        )),
    }
}

/// Open the report of a study of the caller's hospital for editing:
/// create it (from a template, if given) the first time, otherwise take its
/// edit lock. Returns the report and whether it was created.
pub async fn open_study_report(
    app: &App,
    p: &Principal,
    study_instance_uid: &str,
    template_id: Option<Uuid>,
    metadata: &Metadata,
) -> Result<(ReportOutcome, bool), Error> {
    let hospital_id = own_hospital(p)?;
    let tenant = hospital_tenant(app, hospital_id).await?;
    authorize(p, Action::EditReport, &tenant)?;
    if !is_uid(study_instance_uid) {
        return Err(not_found());
    }
    let guard_key = format!("{hospital_id}/{study_instance_uid}");
    for _ in 0..3 {
        if let Some(owner) = app.store.guard_owner(REPORT_GUARD, &guard_key).await? {
            let id = owner
                .strip_prefix("report-")
                .and_then(|s| s.parse::<Uuid>().ok())
                .ok_or_else(|| Error::Internal(format!("report guard owned by {owner}")))?;
            let outcome = run(app, p, id, Action::EditReport, ReportCommand::AcquireLock, metadata).await?;
            return Ok((outcome, false));
        }
        let facts = study_facts(app, hospital_id, study_instance_uid)
            .await?
            .ok_or_else(not_found)?;
        let content = match template_id {
            Some(t) => template_content(&usable_template(app, hospital_id, t).await?),
            None => ReportContent::default(),
        };
        let report_id = Uuid::now_v7();
        let stream = report_stream(report_id);
        let created = app
            .execute::<ReportDecider>(
                &stream,
                ReportCommand::Create {
                    report_id,
                    study: StudyRef {
                        hospital_id,
                        study_instance_uid: study_instance_uid.to_string(),
                    },
                    patient_subject: facts.patient_subject,
                    template_id,
                    content,
                },
                &with_tenant(metadata, tenant),
                vec![Guard::Claim {
                    scope: REPORT_GUARD.into(),
                    key: guard_key.clone(),
                    owner: stream.clone(),
                }],
            )
            .await;
        match created {
            Ok(executed) => {
                let (state, _) = app.load::<ReportDecider>(&stream).await?;
                let report = state.report.ok_or_else(not_found)?;
                return Ok((
                    ReportOutcome {
                        report,
                        position: executed.position(),
                    },
                    true,
                ));
            }
            // Someone created it first: open theirs.
            Err(Error::Store(StoreError::GuardTaken { .. })) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::rejected(
        Kind::Conflict,
        "concurrent_modification",
        "the report kept changing under this command; try again",
    ))
}

pub async fn acquire_lock(app: &App, p: &Principal, id: Uuid, m: &Metadata) -> Result<ReportOutcome, Error> {
    run(app, p, id, Action::EditReport, ReportCommand::AcquireLock, m).await
}

pub async fn heartbeat(app: &App, p: &Principal, id: Uuid, m: &Metadata) -> Result<ReportOutcome, Error> {
    run(app, p, id, Action::EditReport, ReportCommand::Heartbeat, m).await
}

pub async fn release_lock(app: &App, p: &Principal, id: Uuid, m: &Metadata) -> Result<ReportOutcome, Error> {
    run(app, p, id, Action::EditReport, ReportCommand::ReleaseLock, m).await
}

/// Hospital administrator: break the lock (audited as `ReportLockBroken`).
pub async fn break_lock(app: &App, p: &Principal, id: Uuid, m: &Metadata) -> Result<ReportOutcome, Error> {
    run(app, p, id, Action::BreakReportLock, ReportCommand::BreakLock, m).await
}

pub async fn save(
    app: &App,
    p: &Principal,
    id: Uuid,
    expected_version: u64,
    content: ReportContent,
    close: bool,
    m: &Metadata,
) -> Result<ReportOutcome, Error> {
    let command = ReportCommand::Save {
        expected_version,
        content,
        close,
    };
    run(app, p, id, Action::EditReport, command, m).await
}

pub async fn submit_preliminary(
    app: &App,
    p: &Principal,
    id: Uuid,
    expected_version: u64,
    m: &Metadata,
) -> Result<ReportOutcome, Error> {
    let command = ReportCommand::SubmitPreliminary { expected_version };
    run(app, p, id, Action::SubmitPreliminary, command, m).await
}

/// Review (sign off); the hospital's settings say whether the preliminary
/// author may review their own report.
pub async fn review(
    app: &App,
    p: &Principal,
    id: Uuid,
    expected_version: u64,
    m: &Metadata,
) -> Result<ReportOutcome, Error> {
    let (report, _) = visible_report(app, p, id, Action::ReviewReport).await?;
    let (settings, _) = app
        .load::<ReportingSettingsDecider>(&settings_stream(report.study.hospital_id))
        .await?;
    let command = ReportCommand::Review {
        expected_version,
        allow_self_review: settings.allow_self_review,
    };
    run(app, p, id, Action::ReviewReport, command, m).await
}

pub async fn send_back(app: &App, p: &Principal, id: Uuid, reason: &str, m: &Metadata) -> Result<ReportOutcome, Error> {
    let command = ReportCommand::SendBack {
        reason: reason.to_string(),
    };
    run(app, p, id, Action::ReviewReport, command, m).await
}

pub async fn amend(app: &App, p: &Principal, id: Uuid, reason: &str, m: &Metadata) -> Result<ReportOutcome, Error> {
    let command = ReportCommand::Amend {
        reason: reason.to_string(),
    };
    run(app, p, id, Action::ReviewReport, command, m).await
}

/// Record a print of a final report.
pub async fn print(app: &App, p: &Principal, id: Uuid, copies: u32, m: &Metadata) -> Result<ReportOutcome, Error> {
    run(app, p, id, Action::PrintReport, ReportCommand::Print { copies }, m).await
}

/// Insert a knowledge-base entry (hospital-wide, or the caller's own) into
/// the report; the outcome holds the merged text.
pub async fn insert_phrase(
    app: &App,
    p: &Principal,
    id: Uuid,
    entry_id: Uuid,
    expected_version: u64,
    m: &Metadata,
) -> Result<ReportOutcome, Error> {
    let (report, _) = visible_report(app, p, id, Action::EditReport).await?;
    let entry = usable_entry(app, p, report.study.hospital_id, entry_id).await?;
    let command = ReportCommand::InsertPhrase {
        expected_version,
        entry_id,
        findings: entry.spec.findings,
        impression: entry.spec.impression,
    };
    run(app, p, id, Action::EditReport, command, m).await
}

/// A report as it stands now, or exactly as it stood at `as_of` (folded
/// from the report stream's events recorded up to then).
pub async fn get_report(app: &App, p: &Principal, id: Uuid, as_of: Option<DateTime<Utc>>) -> Result<Report, Error> {
    let (now, _) = visible_report(app, p, id, Action::ViewReports).await?;
    let Some(as_of) = as_of else {
        return Ok(now);
    };
    let events = report_events(app, id).await?;
    let state = events
        .iter()
        .filter(|(r, _)| r.recorded_at <= as_of)
        .fold(ReportState::default(), |s, (_, e)| ReportDecider::evolve(s, e));
    state.report.ok_or_else(|| {
        Error::rejected(
            Kind::NotFound,
            "report_not_yet_created",
            "the report did not exist at that time",
        )
    })
}

async fn report_events(app: &App, id: Uuid) -> Result<Vec<(RecordedEvent, ReportEvent)>, Error> {
    let recorded = app.store.read_stream(&report_stream(id), 0).await?;
    let opened = app.codec.open(recorded).await?;
    opened
        .into_iter()
        .map(|r| {
            let e = decode::<ReportEvent>(&r)?;
            Ok((r, e))
        })
        .collect()
}

/// One step of a report's history.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    /// Position in the report's stream.
    pub sequence: u64,
    pub event: String,
    pub at: DateTime<Utc>,
    pub by: Option<Uuid>,
    /// The content version after this step, when it made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<Uuid>,
}

/// Every step of a report: who did what when, and which fields changed.
pub async fn history(app: &App, p: &Principal, id: Uuid) -> Result<Vec<HistoryEntry>, Error> {
    visible_report(app, p, id, Action::ViewReports).await?;
    let events = report_events(app, id).await?;
    Ok(events
        .into_iter()
        .map(|(r, e)| {
            let mut h = HistoryEntry {
                sequence: r.stream_version,
                event: r.event_type.clone(),
                at: r.recorded_at,
                by: metadata_of(&r).and_then(|m| m.actor),
                version: None,
                changed: vec![],
                reason: None,
                entry_id: None,
            };
            match e {
                ReportEvent::ReportCreated { .. } => h.version = Some(1),
                ReportEvent::ReportSaved { version, changed, .. } => {
                    h.version = Some(version);
                    h.changed = changed;
                }
                ReportEvent::KnowledgePhraseInserted {
                    version,
                    changed,
                    entry_id,
                    ..
                } => {
                    h.version = Some(version);
                    h.changed = changed;
                    h.entry_id = Some(entry_id);
                }
                ReportEvent::ReportSentBack { reason, .. } | ReportEvent::ReportAmendmentStarted { reason, .. } => {
                    h.reason = Some(reason)
                }
                _ => {}
            }
            h
        })
        .collect())
}

/// What the PDF renderer receives: everything printed on the page, laid
/// out by the report's template (or the standard layout). Producing the PDF
/// bytes from it is the printing crate's job; this is the seam.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PrintDocument {
    pub report_id: Uuid,
    pub study: StudyRef,
    pub version: u64,
    pub template_id: Option<Uuid>,
    pub title: String,
    pub header: String,
    pub footer: String,
    pub show_hospital_name: bool,
    pub show_logo: bool,
    pub patient_block: bool,
    /// The patient-block entries in order (empty: the standard set).
    pub patient_fields: Vec<PatientItem>,
    /// The body in print order: the template's lead text, structured fields,
    /// findings, impression, … with their headings; blank sections left out.
    pub sections: Vec<PrintedSection>,
    pub signature_block: bool,
    pub preliminary_signature_label: String,
    pub review_signature_label: String,
    pub show_qr_code: bool,
    pub critical: bool,
    pub preliminary_by: Option<Uuid>,
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

/// Lay a report out for printing with its template (or the standard layout).
pub fn print_document(report: &Report, template: Option<&ReportTemplate>) -> PrintDocument {
    let layout = template.map(|t| t.spec.layout.clone()).unwrap_or_default();
    let fields = template.map(|t| t.spec.fields.as_slice()).unwrap_or_default();
    let or = |s: &str, standard: &str| {
        if s.trim().is_empty() {
            standard.to_string()
        } else {
            s.trim().to_string()
        }
    };
    PrintDocument {
        report_id: report.id,
        study: report.study.clone(),
        version: report.version,
        template_id: template.map(|t| t.id),
        title: or(&layout.title, "医学影像诊断报告"),
        sections: layout.arrange(fields, &report.content),
        preliminary_signature_label: or(&layout.preliminary_signature_label, "报告医生"),
        review_signature_label: or(&layout.review_signature_label, "审核医生"),
        header: layout.header,
        footer: layout.footer,
        show_hospital_name: layout.show_hospital_name,
        show_logo: layout.show_logo,
        patient_block: layout.patient_block,
        patient_fields: layout.patient_fields,
        signature_block: layout.signature_block,
        show_qr_code: layout.show_qr_code,
        critical: report.content.critical,
        preliminary_by: report.preliminary_by,
        reviewed_by: report.reviewed_by,
        reviewed_at: report.reviewed_at,
    }
}

/// The print layout of a report (its template's, if it still exists).
pub async fn printable(app: &App, p: &Principal, id: Uuid) -> Result<PrintDocument, Error> {
    let (report, _) = visible_report(app, p, id, Action::ViewReports).await?;
    let template = match report.template_id {
        Some(t) => app.load::<ReportTemplateDecider>(&template_stream(t)).await?.0.template,
        None => None,
    };
    Ok(print_document(&report, template.as_ref()))
}

// ---- templates ------------------------------------------------------------

/// Hospital administrator: a new report template.
pub async fn create_template(
    app: &App,
    p: &Principal,
    spec: TemplateSpec,
    metadata: &Metadata,
) -> Result<(Uuid, u64), Error> {
    let hospital_id = own_hospital(p)?;
    let tenant = hospital_tenant(app, hospital_id).await?;
    authorize(p, Action::ManageTemplates, &tenant)?;
    check_departments(app, hospital_id, &spec.departments).await?;
    let template_id = Uuid::now_v7();
    let r = app
        .execute::<ReportTemplateDecider>(
            &template_stream(template_id),
            ReportTemplateCommand::Create {
                template_id,
                hospital_id,
                spec,
            },
            &with_tenant(metadata, tenant),
            vec![],
        )
        .await?;
    Ok((template_id, r.position()))
}

async fn check_departments(app: &App, hospital_id: Uuid, departments: &[Uuid]) -> Result<(), Error> {
    use medledger_domain::organization::department::Department;
    for d in departments {
        let (state, _) = app
            .load::<Department>(&crate::organization::department_stream(*d))
            .await?;
        if state.department.map(|d| d.hospital_id) != Some(hospital_id) {
            return Err(Error::rejected(
                Kind::Invalid,
                "unknown_department",
                format!("department {d} is not a department of this hospital"),
            ));
        }
    }
    Ok(())
}

async fn template_command(
    app: &App,
    p: &Principal,
    id: Uuid,
    command: ReportTemplateCommand,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let (state, _) = app.load::<ReportTemplateDecider>(&template_stream(id)).await?;
    let t = state.template.ok_or_else(not_found)?;
    let tenant = hospital_tenant(app, t.hospital_id).await?;
    authorize(p, Action::ManageTemplates, &tenant)?;
    if let ReportTemplateCommand::Update { spec } = &command {
        check_departments(app, t.hospital_id, &spec.departments).await?;
    }
    let r = app
        .execute::<ReportTemplateDecider>(&template_stream(id), command, &with_tenant(metadata, tenant), vec![])
        .await?;
    Ok(r.position())
}

pub async fn update_template(
    app: &App,
    p: &Principal,
    id: Uuid,
    spec: TemplateSpec,
    m: &Metadata,
) -> Result<u64, Error> {
    template_command(app, p, id, ReportTemplateCommand::Update { spec }, m).await
}

pub async fn retire_template(app: &App, p: &Principal, id: Uuid, m: &Metadata) -> Result<u64, Error> {
    template_command(app, p, id, ReportTemplateCommand::Retire, m).await
}

pub async fn get_template(app: &App, p: &Principal, id: Uuid) -> Result<ReportTemplate, Error> {
    let (state, _) = app.load::<ReportTemplateDecider>(&template_stream(id)).await?;
    let t = state.template.ok_or_else(not_found)?;
    authorize(p, Action::ViewReports, &hospital_tenant(app, t.hospital_id).await?)?;
    Ok(t)
}

// ---- knowledge base -------------------------------------------------------

/// A hospital-wide entry (hospital administrator) or the caller's own.
pub async fn create_entry(
    app: &App,
    p: &Principal,
    personal: bool,
    spec: EntrySpec,
    metadata: &Metadata,
) -> Result<(Uuid, u64), Error> {
    let hospital_id = own_hospital(p)?;
    let tenant = hospital_tenant(app, hospital_id).await?;
    let scope = if personal {
        authorize(p, Action::EditReport, &tenant)?;
        EntryScope::Personal { owner: p.account_id }
    } else {
        authorize(p, Action::ManageTemplates, &tenant)?;
        EntryScope::Hospital
    };
    let entry_id = Uuid::now_v7();
    let r = app
        .execute::<KnowledgeEntryDecider>(
            &knowledge_stream(entry_id),
            KnowledgeEntryCommand::Create {
                entry_id,
                hospital_id,
                scope,
                spec,
            },
            &with_tenant(metadata, tenant),
            vec![],
        )
        .await?;
    Ok((entry_id, r.position()))
}

/// An entry `p` may use: hospital-wide of the report's hospital, or their own.
async fn usable_entry(app: &App, p: &Principal, hospital_id: Uuid, id: Uuid) -> Result<KnowledgeEntry, Error> {
    let (state, _) = app.load::<KnowledgeEntryDecider>(&knowledge_stream(id)).await?;
    let unknown = || {
        Error::rejected(
            Kind::Invalid,
            "unknown_knowledge_entry",
            format!("knowledge-base entry {id} is not available to you"),
        )
    };
    let e = state.entry.ok_or_else(unknown)?;
    let mine = match e.scope {
        EntryScope::Hospital => true,
        EntryScope::Personal { owner } => owner == p.account_id,
    };
    if e.hospital_id != hospital_id || !mine || e.retired {
        return Err(unknown());
    }
    Ok(e)
}

async fn entry_command(
    app: &App,
    p: &Principal,
    id: Uuid,
    command: KnowledgeEntryCommand,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let (state, _) = app.load::<KnowledgeEntryDecider>(&knowledge_stream(id)).await?;
    let e = state.entry.ok_or_else(not_found)?;
    let tenant = hospital_tenant(app, e.hospital_id).await?;
    match e.scope {
        EntryScope::Hospital => authorize(p, Action::ManageTemplates, &tenant)?,
        EntryScope::Personal { owner } => {
            authorize(p, Action::EditReport, &tenant)?;
            if owner != p.account_id {
                return Err(not_found());
            }
        }
    }
    let r = app
        .execute::<KnowledgeEntryDecider>(&knowledge_stream(id), command, &with_tenant(metadata, tenant), vec![])
        .await?;
    Ok(r.position())
}

pub async fn update_entry(app: &App, p: &Principal, id: Uuid, spec: EntrySpec, m: &Metadata) -> Result<u64, Error> {
    entry_command(app, p, id, KnowledgeEntryCommand::Update { spec }, m).await
}

pub async fn retire_entry(app: &App, p: &Principal, id: Uuid, m: &Metadata) -> Result<u64, Error> {
    entry_command(app, p, id, KnowledgeEntryCommand::Retire, m).await
}

// ---- settings -------------------------------------------------------------

pub async fn reporting_settings(app: &App, p: &Principal) -> Result<ReportingSettings, Error> {
    let hospital_id = own_hospital(p)?;
    authorize(p, Action::ViewReports, &hospital_tenant(app, hospital_id).await?)?;
    Ok(app
        .load::<ReportingSettingsDecider>(&settings_stream(hospital_id))
        .await?
        .0)
}

/// Hospital administrator: change the hospital's reporting settings (may
/// preliminary authors review their own reports? what may the alliance see of
/// its studies as priors?). `None` keeps a setting.
pub async fn change_reporting_settings(
    app: &App,
    p: &Principal,
    allow_self_review: Option<bool>,
    prior_sharing: Option<PriorSharing>,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let hospital_id = own_hospital(p)?;
    let tenant = hospital_tenant(app, hospital_id).await?;
    authorize(p, Action::ManageTemplates, &tenant)?;
    let alliance_id = tenant.alliance_id.ok_or_else(not_found)?;
    let r = app
        .execute::<ReportingSettingsDecider>(
            &settings_stream(hospital_id),
            ReportingSettingsCommand::Change {
                hospital_id,
                alliance_id,
                allow_self_review,
                prior_sharing,
            },
            &with_tenant(metadata, tenant),
            vec![],
        )
        .await?;
    Ok(r.position())
}
