//! Reporting read models: the report list (per hospital and per user: my
//! drafts, waiting for my review, reviewed by me), report templates, the
//! knowledge base with usage counts, and what each hospital shares with its
//! alliance as priors (with the prior queries over the worklist). The report's content and history are
//! not copied here: they are folded from the report's own stream on demand.
//!
//! Also [`worklist_status`]: how report events move a study's status in the
//! worklist (received → preliminary → reviewed → printed).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::decode;
use medledger_commands::db::{Arg, Db, DbRow, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::reporting::knowledge::{EntryScope, KnowledgeEntryEvent};
use medledger_domain::reporting::report::ReportEvent;
use medledger_domain::reporting::settings::{PriorSharing, ReportingSettingsEvent};
use medledger_domain::reporting::template::{ReportTemplateEvent, TemplateSpec};
use serde::Serialize;
use uuid::Uuid;

use super::{json_at, opt_uuid_at, uuid_at};
use crate::runner::{Projection, ProjectionError};

pub struct Reports;

pub const NAME: &str = "reports";

const REPORT_EVENTS: &[&str] = &[
    "ReportCreated",
    "ReportLockAcquired",
    "ReportLockHeartbeat",
    "ReportLockReleased",
    "ReportLockExpired",
    "ReportLockBroken",
    "ReportSaved",
    "KnowledgePhraseInserted",
    "ReportPreliminarySubmitted",
    "ReportSentBack",
    "ReportReviewed",
    "ReportAmendmentStarted",
    "ReportPrinted",
    "ReportTemplateCreated",
    "ReportTemplateUpdated",
    "ReportTemplateRetired",
    "KnowledgeEntryCreated",
    "KnowledgeEntryUpdated",
    "KnowledgeEntryRetired",
    "PriorSharingChanged",
];

/// The worklist status and print time a report event gives its study:
/// `(study_key, status, printed_at)`. `None` for events that do not move it.
pub fn worklist_status(e: &RecordedEvent) -> Option<(String, &'static str, Option<DateTime<Utc>>)> {
    if !matches!(
        e.event_type.as_str(),
        "ReportPreliminarySubmitted" | "ReportSentBack" | "ReportReviewed" | "ReportAmendmentStarted" | "ReportPrinted"
    ) {
        return None;
    }
    let key = |s: &medledger_domain::reporting::StudyRef| format!("{}.{}", s.hospital_id, s.study_instance_uid);
    match decode::<ReportEvent>(e).ok()? {
        ReportEvent::ReportPreliminarySubmitted { study, .. } => Some((key(&study), "preliminary", None)),
        ReportEvent::ReportSentBack { study, .. } | ReportEvent::ReportAmendmentStarted { study, .. } => {
            Some((key(&study), "received", None))
        }
        ReportEvent::ReportReviewed { study, .. } => Some((key(&study), "reviewed", None)),
        ReportEvent::ReportPrinted { study, at, .. } => Some((key(&study), "printed", Some(at))),
        _ => None,
    }
}

#[async_trait]
impl Projection for Reports {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        REPORT_EVENTS
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_reports", "rm_report_templates", "rm_knowledge", "rm_prior_sharing"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        match e.event_type.as_str() {
            t if t.starts_with("ReportTemplate") => apply_template(tx, decode(e)?, e.recorded_at).await,
            t if t.starts_with("KnowledgeEntry") => apply_entry(tx, decode(e)?, e.recorded_at).await,
            "PriorSharingChanged" => apply_sharing(tx, decode(e)?, e.recorded_at).await,
            _ => {
                let event: ReportEvent = decode(e)?;
                if let ReportEvent::KnowledgePhraseInserted { entry_id, .. } = &event {
                    count_usage(tx, *entry_id).await?;
                }
                apply_report(tx, event, e.recorded_at).await
            }
        }
    }
}

async fn apply_report(tx: &mut DbTx, e: ReportEvent, at: DateTime<Utc>) -> Result<(), ProjectionError> {
    let none: Option<String> = None;
    let (sql, args): (&str, Vec<Arg>) = match e {
        ReportEvent::ReportCreated {
            report_id,
            study,
            patient_subject,
            template_id,
            content,
            created_by,
            ..
        } => (
            "INSERT INTO rm_reports (report_id, hospital_id, study_instance_uid, patient_subject, template_id, \
             critical, created_by, last_editor, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $8) \
             ON CONFLICT (report_id) DO NOTHING",
            args![
                report_id,
                study.hospital_id,
                study.study_instance_uid,
                patient_subject,
                template_id,
                content.critical,
                created_by,
                at
            ]
            .to_vec(),
        ),
        ReportEvent::ReportLockAcquired { report_id, holder, .. } => (
            "UPDATE rm_reports SET lock_holder = $2, lock_since = $3 WHERE report_id = $1",
            args![report_id, holder, at].to_vec(),
        ),
        ReportEvent::ReportLockHeartbeat { .. } => return Ok(()),
        ReportEvent::ReportLockReleased { report_id, .. }
        | ReportEvent::ReportLockExpired { report_id, .. }
        | ReportEvent::ReportLockBroken { report_id, .. } => (
            "UPDATE rm_reports SET lock_holder = NULL, lock_since = NULL WHERE report_id = $1",
            args![report_id].to_vec(),
        ),
        ReportEvent::ReportSaved {
            report_id,
            version,
            content,
            saved_by: by,
            ..
        }
        | ReportEvent::KnowledgePhraseInserted {
            report_id,
            version,
            content,
            inserted_by: by,
            ..
        } => (
            "UPDATE rm_reports SET version = $2, critical = $3, last_editor = $4, updated_at = $5 WHERE report_id = $1",
            args![report_id, version, content.critical, by, at].to_vec(),
        ),
        ReportEvent::ReportPreliminarySubmitted { report_id, author, .. } => (
            "UPDATE rm_reports SET status = 'preliminary', preliminary_by = $2, preliminary_at = $3, \
             sent_back_reason = NULL, updated_at = $3 WHERE report_id = $1",
            args![report_id, author, at].to_vec(),
        ),
        ReportEvent::ReportSentBack { report_id, reason, .. } => (
            "UPDATE rm_reports SET status = 'draft', sent_back_reason = $2, updated_at = $3 WHERE report_id = $1",
            args![report_id, reason, at].to_vec(),
        ),
        ReportEvent::ReportReviewed {
            report_id, reviewer, ..
        } => (
            "UPDATE rm_reports SET status = 'final', reviewed_by = $2, reviewed_at = $3, updated_at = $3 WHERE report_id = $1",
            args![report_id, reviewer, at].to_vec(),
        ),
        ReportEvent::ReportAmendmentStarted { report_id, .. } => (
            "UPDATE rm_reports SET status = 'draft', preliminary_by = $2, preliminary_at = NULL, reviewed_by = $2, \
             reviewed_at = NULL, updated_at = $3 WHERE report_id = $1",
            args![report_id, none, at].to_vec(),
        ),
        ReportEvent::ReportPrinted {
            report_id, at: printed, ..
        } => (
            "UPDATE rm_reports SET print_count = print_count + 1, printed_at = $2 WHERE report_id = $1",
            args![report_id, printed].to_vec(),
        ),
    };
    tx.execute(sql, &args).await?;
    Ok(())
}

async fn apply_template(tx: &mut DbTx, e: ReportTemplateEvent, at: DateTime<Utc>) -> Result<(), ProjectionError> {
    let upsert = |id: Uuid, hospital: Uuid, spec: &TemplateSpec| -> Result<Vec<Arg>, ProjectionError> {
        let departments = serde_json::to_string(&spec.departments).map_err(other)?;
        let body = serde_json::to_string(spec).map_err(other)?;
        Ok(args![
            id,
            hospital,
            spec.name.clone(),
            spec.study_type.modality.clone(),
            spec.study_type.body_part.clone(),
            spec.study_type.exam_item.clone(),
            departments,
            body,
            at
        ]
        .to_vec())
    };
    match e {
        ReportTemplateEvent::ReportTemplateCreated {
            template_id,
            hospital_id,
            spec,
        }
        | ReportTemplateEvent::ReportTemplateUpdated {
            template_id,
            hospital_id,
            spec,
        } => {
            tx.execute(
                "INSERT INTO rm_report_templates (template_id, hospital_id, name, modality, body_part, exam_item, \
                 departments, spec, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (template_id) DO UPDATE SET name = excluded.name, modality = excluded.modality, \
                 body_part = excluded.body_part, exam_item = excluded.exam_item, departments = excluded.departments, \
                 spec = excluded.spec, updated_at = excluded.updated_at",
                &upsert(template_id, hospital_id, &spec)?,
            )
            .await?;
        }
        ReportTemplateEvent::ReportTemplateRetired { template_id, .. } => {
            tx.execute(
                "UPDATE rm_report_templates SET retired = TRUE, updated_at = $2 WHERE template_id = $1",
                &args![template_id, at],
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_entry(tx: &mut DbTx, e: KnowledgeEntryEvent, at: DateTime<Utc>) -> Result<(), ProjectionError> {
    match e {
        KnowledgeEntryEvent::KnowledgeEntryCreated {
            entry_id,
            hospital_id,
            scope,
            spec,
        } => {
            let owner = match scope {
                EntryScope::Hospital => None,
                EntryScope::Personal { owner } => Some(owner),
            };
            let tags = serde_json::to_string(&spec.tags).map_err(other)?;
            tx.execute(
                "INSERT INTO rm_knowledge (entry_id, hospital_id, owner_id, title, findings, impression, tags, modality, \
                 body_part, search_text, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (entry_id) DO NOTHING",
                &args![
                    entry_id,
                    hospital_id,
                    owner,
                    spec.title.clone(),
                    spec.findings.clone(),
                    spec.impression.clone(),
                    tags,
                    spec.modality.clone(),
                    spec.body_part.clone(),
                    search_text(&spec),
                    at
                ],
            )
            .await?;
        }
        KnowledgeEntryEvent::KnowledgeEntryUpdated { entry_id, spec, .. } => {
            let tags = serde_json::to_string(&spec.tags).map_err(other)?;
            tx.execute(
                "UPDATE rm_knowledge SET title = $2, findings = $3, impression = $4, tags = $5, modality = $6, \
                 body_part = $7, search_text = $8, updated_at = $9 WHERE entry_id = $1",
                &args![
                    entry_id,
                    spec.title.clone(),
                    spec.findings.clone(),
                    spec.impression.clone(),
                    tags,
                    spec.modality.clone(),
                    spec.body_part.clone(),
                    search_text(&spec),
                    at
                ],
            )
            .await?;
        }
        KnowledgeEntryEvent::KnowledgeEntryRetired { entry_id, .. } => {
            tx.execute(
                "UPDATE rm_knowledge SET retired = TRUE, updated_at = $2 WHERE entry_id = $1",
                &args![entry_id, at],
            )
            .await?;
        }
    }
    Ok(())
}

/// What each hospital lets its alliance see of its studies as priors.
async fn apply_sharing(tx: &mut DbTx, e: ReportingSettingsEvent, at: DateTime<Utc>) -> Result<(), ProjectionError> {
    if let ReportingSettingsEvent::PriorSharingChanged {
        hospital_id,
        alliance_id,
        sharing,
        ..
    } = e
    {
        let sharing = match sharing {
            PriorSharing::None => "none",
            PriorSharing::Studies => "studies",
            PriorSharing::StudiesAndReports => "studies_and_reports",
        };
        tx.execute(
            "INSERT INTO rm_prior_sharing (hospital_id, alliance_id, sharing, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (hospital_id) DO UPDATE SET alliance_id = excluded.alliance_id, sharing = excluded.sharing, \
             updated_at = excluded.updated_at",
            &args![hospital_id, alliance_id, sharing, at],
        )
        .await?;
    }
    Ok(())
}

/// Usage counts follow insertions into reports.
async fn count_usage(tx: &mut DbTx, entry_id: Uuid) -> Result<(), ProjectionError> {
    tx.execute(
        "UPDATE rm_knowledge SET usage_count = usage_count + 1 WHERE entry_id = $1",
        &args![entry_id],
    )
    .await?;
    Ok(())
}

fn search_text(spec: &medledger_domain::reporting::knowledge::EntrySpec) -> String {
    format!(
        "{} {} {} {}",
        spec.title,
        spec.findings,
        spec.impression,
        spec.tags.join(" ")
    )
    .to_lowercase()
}

/// A failure that is not the database's (serialization, a bad cursor).
fn other(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Database(sqlx::Error::Protocol(e.to_string()))
}

fn like_escape(q: &str) -> String {
    q.to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Which of a hospital's reports a user wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportView {
    /// Every report of the hospital.
    #[default]
    All,
    /// Drafts the user created or last edited.
    MyDrafts,
    /// Preliminary reports someone else wrote, waiting for review.
    AwaitingMyReview,
    ReviewedByMe,
}

#[derive(Clone, Debug, Default)]
pub struct ReportFilter {
    pub hospital_id: Uuid,
    pub user: Uuid,
    pub view: ReportView,
    /// `draft`, `preliminary` or `final`.
    pub status: Option<String>,
    pub critical: Option<bool>,
    pub study_instance_uid: Option<String>,
    pub cursor: Option<String>,
    pub limit: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReportRow {
    pub report_id: Uuid,
    pub hospital_id: Uuid,
    pub study_instance_uid: String,
    pub status: String,
    pub version: i64,
    pub critical: bool,
    pub template_id: Option<Uuid>,
    pub created_by: Uuid,
    pub last_editor: Option<Uuid>,
    pub preliminary_by: Option<Uuid>,
    pub preliminary_at: Option<DateTime<Utc>>,
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub sent_back_reason: Option<String>,
    pub lock_holder: Option<Uuid>,
    pub lock_since: Option<DateTime<Utc>>,
    pub print_count: i64,
    pub printed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReportPage {
    pub items: Vec<ReportRow>,
    pub next_cursor: Option<String>,
}

const REPORT_COLUMNS: &str = "report_id, hospital_id, study_instance_uid, status, version, critical, template_id, \
     created_by, last_editor, preliminary_by, preliminary_at, reviewed_by, reviewed_at, sent_back_reason, lock_holder, \
     lock_since, print_count, printed_at, created_at, updated_at";

fn report_row(r: &DbRow) -> Result<ReportRow, sqlx::Error> {
    Ok(ReportRow {
        report_id: uuid_at(r, 0)?,
        hospital_id: uuid_at(r, 1)?,
        study_instance_uid: r.get(2)?,
        status: r.get(3)?,
        version: r.get(4)?,
        critical: r.get(5)?,
        template_id: opt_uuid_at(r, 6)?,
        created_by: uuid_at(r, 7)?,
        last_editor: opt_uuid_at(r, 8)?,
        preliminary_by: opt_uuid_at(r, 9)?,
        preliminary_at: r.opt_time(10)?,
        reviewed_by: opt_uuid_at(r, 11)?,
        reviewed_at: r.opt_time(12)?,
        sent_back_reason: r.get(13)?,
        lock_holder: opt_uuid_at(r, 14)?,
        lock_since: r.opt_time(15)?,
        print_count: r.get(16)?,
        printed_at: r.opt_time(17)?,
        created_at: r.time(18)?,
        updated_at: r.time(19)?,
    })
}

/// Builds `WHERE` clauses with numbered placeholders.
struct Query {
    sql: String,
    args: Vec<Arg>,
}

impl Query {
    fn new(sql: String) -> Self {
        Query { sql, args: vec![] }
    }
    fn and(&mut self, clause: &str, values: Vec<Arg>) {
        let mut clause = clause.to_string();
        for v in values {
            self.args.push(v);
            clause = clause.replacen('?', &format!("${}", self.args.len()), 1);
        }
        self.sql.push_str(&clause);
    }
}

/// A page of a hospital's reports, most recently changed first.
pub async fn list(db: &Db, f: &ReportFilter) -> Result<ReportPage, ProjectionError> {
    let mut q = Query::new(format!("SELECT {REPORT_COLUMNS} FROM rm_reports WHERE 1 = 1"));
    q.and(" AND hospital_id = ?", vec![f.hospital_id.into()]);
    match f.view {
        ReportView::All => {}
        ReportView::MyDrafts => q.and(
            " AND status = 'draft' AND (created_by = ? OR last_editor = ?)",
            vec![f.user.into(), f.user.into()],
        ),
        ReportView::AwaitingMyReview => q.and(
            " AND status = 'preliminary' AND preliminary_by <> ?",
            vec![f.user.into()],
        ),
        ReportView::ReviewedByMe => q.and(" AND reviewed_by = ?", vec![f.user.into()]),
    }
    if let Some(s) = &f.status {
        q.and(" AND status = ?", vec![s.into()]);
    }
    if let Some(c) = f.critical {
        q.and(" AND critical = ?", vec![c.into()]);
    }
    if let Some(uid) = &f.study_instance_uid {
        q.and(" AND study_instance_uid = ?", vec![uid.into()]);
    }
    if let Some((when, id)) = f.cursor.as_deref().and_then(|c| c.split_once('|')) {
        let when = DateTime::parse_from_rfc3339(when)
            .map_err(|e| other(format!("bad cursor: {e}")))?
            .to_utc();
        q.and(
            " AND (updated_at < ? OR (updated_at = ? AND report_id < ?))",
            vec![when.into(), when.into(), id.into()],
        );
    }
    let limit = f.limit.clamp(1, 200);
    q.and(
        " ORDER BY updated_at DESC, report_id DESC LIMIT ?",
        vec![(limit as i64 + 1).into()],
    );
    let rows = db.fetch_all(&q.sql, &q.args).await?;
    let mut items = rows.iter().map(report_row).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items
            .last()
            .map(|r| format!("{}|{}", r.updated_at.to_rfc3339(), r.report_id))
    } else {
        None
    };
    Ok(ReportPage { items, next_cursor })
}

/// A study of the patient, with its report if there is one and the caller may see it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PriorStudy {
    /// The hospital the study was done in.
    pub hospital_id: Uuid,
    pub hospital_name: Option<String>,
    /// The study is the report's own hospital's (`false`: another hospital of
    /// the alliance shares it).
    pub own_hospital: bool,
    pub study_instance_uid: String,
    pub study_date: Option<String>,
    pub modalities: Vec<String>,
    pub body_part: Option<String>,
    pub study_description: Option<String>,
    pub report_id: Option<Uuid>,
    pub report_status: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

const PRIOR_COLUMNS: &str = "w.hospital_id, h.name, w.study_instance_uid, w.study_date, w.modalities, w.body_part, \
     w.study_description, r.report_id, r.status, r.reviewed_at";

fn prior_row(r: &DbRow, own_hospital: bool) -> Result<PriorStudy, sqlx::Error> {
    let modalities: String = r.get(4)?;
    Ok(PriorStudy {
        hospital_id: uuid_at(r, 0)?,
        hospital_name: r.get(1)?,
        own_hospital,
        study_instance_uid: r.get(2)?,
        study_date: r.get(3)?,
        modalities: modalities
            .split(',')
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect(),
        body_part: r.get(5)?,
        study_description: r.get(6)?,
        report_id: opt_uuid_at(r, 7)?,
        report_status: r.get(8)?,
        reviewed_at: r.opt_time(9)?,
    })
}

/// The patient's studies in the hospital (newest first, soft-deleted ones
/// left out), with their reports.
pub async fn priors(db: &Db, hospital_id: Uuid, patient_subject: Uuid) -> Result<Vec<PriorStudy>, ProjectionError> {
    let rows = db
        .fetch_all(
            &format!(
                "SELECT {PRIOR_COLUMNS} FROM rm_worklist w LEFT JOIN rm_hospitals h ON h.hospital_id = w.hospital_id \
                 LEFT JOIN rm_reports r ON r.hospital_id = w.hospital_id AND r.study_instance_uid = w.study_instance_uid \
                 WHERE w.hospital_id = $1 AND w.patient_subject = $2 AND w.deleted = FALSE \
                 ORDER BY w.study_datetime DESC LIMIT 200"
            ),
            &args![hospital_id, patient_subject],
        )
        .await?;
    rows.iter()
        .map(|r| prior_row(r, true))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

/// Who the alliance match looks for: the patient's identifier and birth date as
/// the report's own study recorded them (decrypted, never stored by reporting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlliancePatient {
    pub alliance_id: Uuid,
    /// The report's hospital: its own studies are listed by [`priors`].
    pub hospital_id: Uuid,
    pub patient_id: String,
    /// `YYYYMMDD`.
    pub birth_date: String,
}

/// The same patient's studies in the other hospitals of the alliance that share
/// their studies as priors (newest first). The match is exact on Patient ID and
/// birth date, read from the worklist's decrypted copies — which forgetting a
/// patient erases, so a forgotten patient is matched by nobody. A hospital that
/// shares studies only (not reports) is listed without its reports; only final
/// reports are ever named.
pub async fn alliance_priors(db: &Db, who: &AlliancePatient) -> Result<Vec<PriorStudy>, ProjectionError> {
    let rows = db
        .fetch_all(
            &format!(
                "SELECT {PRIOR_COLUMNS}, s.sharing FROM rm_prior_sharing s \
                 JOIN rm_worklist w ON w.hospital_id = s.hospital_id AND w.alliance_id = s.alliance_id \
                 LEFT JOIN rm_hospitals h ON h.hospital_id = w.hospital_id \
                 LEFT JOIN rm_reports r ON r.hospital_id = w.hospital_id AND r.study_instance_uid = w.study_instance_uid \
                 AND r.status = 'final' \
                 WHERE s.alliance_id = $1 AND s.sharing <> 'none' AND s.hospital_id <> $2 \
                 AND w.patient_id = $3 AND w.patient_birth_date = $4 AND w.patient_erased = FALSE AND w.deleted = FALSE \
                 ORDER BY w.study_datetime DESC LIMIT 200"
            ),
            &args![who.alliance_id, who.hospital_id, who.patient_id.clone(), who.birth_date.clone()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let mut prior = prior_row(r, false)?;
            let sharing: String = r.get(10)?;
            if sharing != "studies_and_reports" {
                prior.report_id = None;
                prior.report_status = None;
                prior.reviewed_at = None;
            }
            Ok(prior)
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

/// The hospitals of the alliance, other than `except`, that share their studies as priors and
/// hold a study with this Study Instance UID, in the order they received it (deleted,
/// archived and erased studies too: serving them answers for that). The UID is meant to be
/// unique worldwide; a study copied to two hospitals names both. Candidates only: whether
/// each may be shown is decided from the streams.
pub async fn prior_holders(
    db: &Db,
    alliance_id: Uuid,
    except: Uuid,
    study_instance_uid: &str,
) -> Result<Vec<Uuid>, ProjectionError> {
    let sharing = db
        .fetch_all(
            "SELECT hospital_id FROM rm_prior_sharing WHERE alliance_id = $1 AND sharing <> 'none' AND hospital_id <> $2",
            &args![alliance_id, except],
        )
        .await?;
    if sharing.is_empty() {
        return Ok(vec![]);
    }
    // By primary key (`<hospital>.<Study Instance UID>`).
    let mut keys = Vec::with_capacity(sharing.len());
    for r in &sharing {
        keys.push(Arg::from(format!("{}.{study_instance_uid}", uuid_at(r, 0)?)));
    }
    let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let rows = db
        .fetch_all(
            &format!(
                "SELECT hospital_id FROM rm_worklist WHERE study_key IN ({}) ORDER BY received_at, study_key",
                placeholders.join(", ")
            ),
            &keys,
        )
        .await?;
    rows.iter()
        .map(|r| uuid_at(r, 0))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TemplateRow {
    pub template_id: Uuid,
    pub hospital_id: Uuid,
    pub retired: bool,
    pub updated_at: DateTime<Utc>,
    #[serde(flatten)]
    pub spec: TemplateSpec,
}

/// Rows of a keyset-paginated list and whether more follow; the caller
/// makes the next cursor from the last row's sort key.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl<T> Slice<T> {
    /// `rows` fetched with `LIMIT limit + 1`.
    fn of(mut rows: Vec<T>, limit: u32) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Slice { items: rows, more }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TemplateFilter {
    pub hospital_id: Uuid,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub department: Option<Uuid>,
    pub include_retired: bool,
    /// The sort key `(name, template_id)` of the last row of the previous page.
    pub after: Option<(String, Uuid)>,
    pub limit: u32,
}

/// A hospital's templates by name, optionally for one study type and department.
pub async fn templates(db: &Db, f: &TemplateFilter) -> Result<Slice<TemplateRow>, ProjectionError> {
    let mut q = Query::new(
        "SELECT template_id, hospital_id, retired, updated_at, spec FROM rm_report_templates WHERE 1 = 1".to_string(),
    );
    q.and(" AND hospital_id = ?", vec![f.hospital_id.into()]);
    if !f.include_retired {
        q.and(" AND retired = ?", vec![false.into()]);
    }
    if let Some(m) = &f.modality {
        q.and(" AND (modality = '' OR modality = ?)", vec![m.to_uppercase().into()]);
    }
    if let Some(b) = &f.body_part {
        q.and(" AND (body_part = '' OR body_part = ?)", vec![b.to_uppercase().into()]);
    }
    if let Some(d) = f.department {
        q.and(
            " AND (departments = '[]' OR departments LIKE ?)",
            vec![format!("%\"{d}\"%").into()],
        );
    }
    if let Some((name, id)) = &f.after {
        q.and(
            " AND (name > ? OR (name = ? AND template_id > ?))",
            vec![name.into(), name.into(), (*id).into()],
        );
    }
    let limit = f.limit.clamp(1, 200);
    q.and(" ORDER BY name, template_id LIMIT ?", vec![(limit as i64 + 1).into()]);
    let rows = db.fetch_all(&q.sql, &q.args).await?;
    rows.iter()
        .map(|r| {
            Ok(TemplateRow {
                template_id: uuid_at(r, 0)?,
                hospital_id: uuid_at(r, 1)?,
                retired: r.get(2)?,
                updated_at: r.time(3)?,
                spec: json_at(r, 4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map(|rows| Slice::of(rows, limit))
        .map_err(ProjectionError::from)
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KnowledgeRow {
    pub entry_id: Uuid,
    pub hospital_id: Uuid,
    /// `None` for hospital-wide entries.
    pub owner_id: Option<Uuid>,
    pub title: String,
    pub findings: String,
    pub impression: String,
    pub tags: Vec<String>,
    pub modality: String,
    pub body_part: String,
    pub usage_count: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct KnowledgeFilter {
    pub hospital_id: Uuid,
    /// The searching user: their personal entries are included.
    pub user: Uuid,
    /// Only the user's personal entries (`Some(true)`) or only hospital-wide ones (`Some(false)`).
    pub personal: Option<bool>,
    pub query: Option<String>,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub tag: Option<String>,
    /// The sort key `(usage_count, title, entry_id)` of the last row of the previous page.
    pub after: Option<(i64, String, Uuid)>,
    pub limit: u32,
}

/// Search the knowledge base: hospital-wide entries and the user's own, most used first
/// (then by title). Usage counts grow while someone pages: an entry whose count rises
/// past the cursor's is not shown again on later pages.
pub async fn search_knowledge(db: &Db, f: &KnowledgeFilter) -> Result<Slice<KnowledgeRow>, ProjectionError> {
    let mut q = Query::new(
        "SELECT entry_id, hospital_id, owner_id, title, findings, impression, tags, modality, body_part, usage_count, \
         updated_at FROM rm_knowledge WHERE retired = FALSE"
            .to_string(),
    );
    q.and(" AND hospital_id = ?", vec![f.hospital_id.into()]);
    match f.personal {
        None => q.and(" AND (owner_id IS NULL OR owner_id = ?)", vec![f.user.into()]),
        Some(true) => q.and(" AND owner_id = ?", vec![f.user.into()]),
        Some(false) => q.and(" AND owner_id IS NULL", vec![]),
    }
    if let Some(text) = f.query.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        q.and(
            " AND search_text LIKE ? ESCAPE '\\'",
            vec![format!("%{}%", like_escape(text)).into()],
        );
    }
    if let Some(m) = &f.modality {
        q.and(" AND (modality = '' OR modality = ?)", vec![m.to_uppercase().into()]);
    }
    if let Some(b) = &f.body_part {
        q.and(" AND (body_part = '' OR body_part = ?)", vec![b.to_uppercase().into()]);
    }
    if let Some(t) = &f.tag {
        let tag = serde_json::to_string(t).map_err(other)?;
        q.and(
            " AND tags LIKE ? ESCAPE '\\'",
            vec![format!("%{}%", like_escape(&tag)).into()],
        );
    }
    if let Some((count, title, id)) = &f.after {
        q.and(
            " AND (usage_count < ? OR (usage_count = ? AND (title > ? OR (title = ? AND entry_id > ?))))",
            vec![
                (*count).into(),
                (*count).into(),
                title.into(),
                title.into(),
                (*id).into(),
            ],
        );
    }
    let limit = f.limit.clamp(1, 200);
    q.and(
        " ORDER BY usage_count DESC, title, entry_id LIMIT ?",
        vec![(limit as i64 + 1).into()],
    );
    let rows = db.fetch_all(&q.sql, &q.args).await?;
    rows.iter()
        .map(|r| {
            Ok(KnowledgeRow {
                entry_id: uuid_at(r, 0)?,
                hospital_id: uuid_at(r, 1)?,
                owner_id: opt_uuid_at(r, 2)?,
                title: r.get(3)?,
                findings: r.get(4)?,
                impression: r.get(5)?,
                tags: json_at(r, 6)?,
                modality: r.get(7)?,
                body_part: r.get(8)?,
                usage_count: r.get(9)?,
                updated_at: r.time(10)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map(|rows| Slice::of(rows, limit))
        .map_err(ProjectionError::from)
}
