//! The report aggregate (stream `report-<id>`): the diagnostic report of one
//! study. One report per study — a study with several requested procedures
//! still gets one report; the application layer guarantees the uniqueness
//! with a guard on (hospital, Study Instance UID).
//!
//! Rules decided here:
//! - **Single editor.** Editing needs the edit lock. Opening for edit takes
//!   it; a second user is refused ([`ReportError::Locked`], naming the holder
//!   and since when). The lock ends on save-and-close, on the holder's
//!   preliminary submit, review or send-back, on the holder's release, when
//!   a hospital administrator breaks it, or after [`LOCK_IDLE_MINUTES`]
//!   without activity (acquire, heartbeat, save, phrase insertion). Expiry is
//!   decided lazily: the next command that meets an idle lock records
//!   `ReportLockExpired` before doing its own work.
//! - **No silent overwrite.** Every save and phrase insertion names the
//!   content version the client edited; any other version is refused
//!   ([`ReportError::StaleVersion`]).
//! - **Workflow.** draft → preliminary (初诊) → final (审核) → printed (any
//!   number of prints, final reports only). A reviewer may send a
//!   preliminary report back to draft with a reason. The reviewer must not
//!   be the preliminary author unless the hospital allows self-review (the
//!   command says so). Amending a final report returns it to draft and keeps
//!   the previous final version, visible as superseded.
//!
//! Who may do each step (report.edit, report.preliminary, report.review,
//! report.print, hospital administrator for breaking locks) is checked by
//! the application layer before the decider runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{within, StudyRef};
use crate::decider::{Ctx, Decider};
use crate::pii::SubjectId;

/// Minutes without activity after which an edit lock is free.
pub const LOCK_IDLE_MINUTES: i64 = 30;
/// Most copies one print may record.
pub const MAX_COPIES: u32 = 50;

const MAX_LONG_TEXT: usize = 20_000;
const MAX_SHORT_TEXT: usize = 5_000;
const MAX_FIELDS: usize = 100;
const MAX_FIELD_KEY: usize = 64;
const MAX_FIELD_VALUE: usize = 2_000;
const MAX_KEY_IMAGES: usize = 100;
const MAX_REASON: usize = 500;

/// What a report says. The whole content is recorded with every save, so
/// any past version can be shown exactly as it was.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportContent {
    /// 影像所见
    #[serde(default)]
    pub findings: String,
    /// 诊断意见
    #[serde(default)]
    pub impression: String,
    #[serde(default)]
    pub recommendations: String,
    /// A critical finding (危急值) that needs immediate attention.
    #[serde(default)]
    pub critical: bool,
    /// Structured fields of the template, by field key.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Key images by SOP Instance UID.
    #[serde(default)]
    pub key_images: Vec<String>,
}

impl ReportContent {
    /// Names of the fields that differ from `before` (stable order).
    pub fn changed_fields(&self, before: &ReportContent) -> Vec<String> {
        let mut out = Vec::new();
        if self.findings != before.findings {
            out.push("findings".to_string());
        }
        if self.impression != before.impression {
            out.push("impression".to_string());
        }
        if self.recommendations != before.recommendations {
            out.push("recommendations".to_string());
        }
        if self.critical != before.critical {
            out.push("critical".to_string());
        }
        let keys: std::collections::BTreeSet<&String> = self.fields.keys().chain(before.fields.keys()).collect();
        for k in keys {
            if self.fields.get(k) != before.fields.get(k) {
                out.push(format!("fields.{k}"));
            }
        }
        if self.key_images != before.key_images {
            out.push("key_images".to_string());
        }
        out
    }

    fn check(&self) -> Result<(), ReportError> {
        let bad = |what: &str| Err(ReportError::InvalidContent(what.to_string()));
        if !within(&self.findings, MAX_LONG_TEXT) {
            return bad("findings have at most 20000 characters");
        }
        if !within(&self.impression, MAX_LONG_TEXT) {
            return bad("the impression has at most 20000 characters");
        }
        if !within(&self.recommendations, MAX_SHORT_TEXT) {
            return bad("recommendations have at most 5000 characters");
        }
        if self.fields.len() > MAX_FIELDS {
            return bad("a report has at most 100 structured fields");
        }
        for (k, v) in &self.fields {
            let key_ok = !k.is_empty()
                && k.len() <= MAX_FIELD_KEY
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !key_ok {
                return bad("field keys are 1-64 characters of letters, digits, '_', '-' and '.'");
            }
            if !within(v, MAX_FIELD_VALUE) {
                return bad("a field value has at most 2000 characters");
            }
        }
        if self.key_images.len() > MAX_KEY_IMAGES {
            return bad("a report has at most 100 key images");
        }
        for uid in &self.key_images {
            if !is_uid(uid) {
                return bad("key images are SOP Instance UIDs (digits and dots, at most 64 characters)");
            }
        }
        Ok(())
    }
}

/// A DICOM UID: 1-64 characters of digits and dots, no empty component.
pub fn is_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.')
            .all(|c| !c.is_empty() && c.chars().all(|d| d.is_ascii_digit()))
}

/// Why a lock ended without being broken or expiring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockRelease {
    /// The holder let go.
    Released,
    /// Saved and closed the editor.
    SavedAndClosed,
    /// Submitted the preliminary report.
    Submitted,
    /// Reviewed (signed off) the report.
    Reviewed,
    /// Sent the report back to draft.
    SentBack,
}

/// The report's workflow state. Printing does not change it: a final report
/// stays final however many times it is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    #[default]
    Draft,
    Preliminary,
    Final,
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReportEvent {
    ReportCreated {
        report_id: Uuid,
        study: StudyRef,
        /// The patient (data subject) the study belongs to; no name is copied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_subject: Option<SubjectId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template_id: Option<Uuid>,
        /// The template's default text (content version 1).
        content: ReportContent,
        created_by: Uuid,
        at: DateTime<Utc>,
    },
    ReportLockAcquired {
        report_id: Uuid,
        holder: Uuid,
        at: DateTime<Utc>,
    },
    /// The holder is still there: the lock's idle time restarts.
    ReportLockHeartbeat {
        report_id: Uuid,
        holder: Uuid,
        at: DateTime<Utc>,
    },
    ReportLockReleased {
        report_id: Uuid,
        holder: Uuid,
        reason: LockRelease,
    },
    /// Recorded by the first command that finds the lock idle too long.
    ReportLockExpired {
        report_id: Uuid,
        holder: Uuid,
        last_activity: DateTime<Utc>,
    },
    /// A hospital administrator took the lock away (audited).
    ReportLockBroken {
        report_id: Uuid,
        holder: Uuid,
        since: DateTime<Utc>,
        broken_by: Uuid,
    },
    ReportSaved {
        report_id: Uuid,
        /// The new content version.
        version: u64,
        content: ReportContent,
        /// Which fields differ from the previous version.
        changed: Vec<String>,
        saved_by: Uuid,
        at: DateTime<Utc>,
    },
    /// A knowledge-base entry's text inserted into the report (a new version).
    KnowledgePhraseInserted {
        report_id: Uuid,
        entry_id: Uuid,
        version: u64,
        content: ReportContent,
        changed: Vec<String>,
        inserted_by: Uuid,
        at: DateTime<Utc>,
    },
    ReportPreliminarySubmitted {
        report_id: Uuid,
        study: StudyRef,
        version: u64,
        author: Uuid,
        at: DateTime<Utc>,
    },
    ReportSentBack {
        report_id: Uuid,
        study: StudyRef,
        version: u64,
        reviewer: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    ReportReviewed {
        report_id: Uuid,
        study: StudyRef,
        version: u64,
        reviewer: Uuid,
        /// The final version this one replaces, when the report was amended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supersedes: Option<u64>,
        at: DateTime<Utc>,
    },
    /// A final report reopened for correction; the final version stays on
    /// record as superseded once the amended report is reviewed.
    ReportAmendmentStarted {
        report_id: Uuid,
        study: StudyRef,
        final_version: u64,
        amended_by: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    ReportPrinted {
        report_id: Uuid,
        study: StudyRef,
        version: u64,
        copies: u32,
        printed_by: Uuid,
        at: DateTime<Utc>,
    },
}

crate::event_catalog!(
    ReportEvent,
    "reporting",
    [
        ReportCreated = 1,
        ReportLockAcquired = 1,
        ReportLockHeartbeat = 1,
        ReportLockReleased = 1,
        ReportLockExpired = 1,
        ReportLockBroken = 1,
        ReportSaved = 1,
        KnowledgePhraseInserted = 1,
        ReportPreliminarySubmitted = 1,
        ReportSentBack = 1,
        ReportReviewed = 1,
        ReportAmendmentStarted = 1,
        ReportPrinted = 1,
    ]
);

#[derive(Clone, Debug, PartialEq)]
pub enum ReportCommand {
    /// Create the study's report and open it for editing (takes the lock).
    Create {
        report_id: Uuid,
        study: StudyRef,
        patient_subject: Option<SubjectId>,
        template_id: Option<Uuid>,
        content: ReportContent,
    },
    /// Open for editing: take the lock (or extend it when already held).
    AcquireLock,
    Heartbeat,
    ReleaseLock,
    /// Hospital administrator: take a live lock away from its holder.
    BreakLock,
    Save {
        expected_version: u64,
        content: ReportContent,
        /// Save and close the editor (releases the lock).
        close: bool,
    },
    InsertPhrase {
        expected_version: u64,
        entry_id: Uuid,
        findings: String,
        impression: String,
    },
    SubmitPreliminary {
        expected_version: u64,
    },
    Review {
        expected_version: u64,
        /// The hospital allows a preliminary author to review their own report.
        allow_self_review: bool,
    },
    SendBack {
        reason: String,
    },
    Amend {
        reason: String,
    },
    Print {
        copies: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("this study already has a report")]
    AlreadyExists,
    #[error("no such report")]
    NotFound,
    #[error("the report is being edited by {holder} since {since}")]
    Locked {
        holder: Uuid,
        since: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    #[error("you do not hold this report's edit lock; open the report for editing first")]
    NotLockHolder,
    #[error("nobody holds this report's edit lock")]
    NotLocked,
    #[error("the report changed since you opened it: you edited version {expected}, it is at version {current}")]
    StaleVersion { expected: u64, current: u64 },
    #[error("the report is {actual:?}; this needs a {needed} report")]
    WrongStatus { needed: &'static str, actual: ReportStatus },
    #[error("the preliminary author may not review their own report in this hospital")]
    SelfReview,
    #[error("a report needs findings or an impression before it is submitted")]
    Empty,
    #[error("{0}")]
    InvalidContent(String),
    #[error("a reason of 1 to 500 characters is required")]
    InvalidReason,
    #[error("copies must be 1 to 50")]
    InvalidCopies,
}

/// The single editor, while the lock lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportLock {
    pub holder: Uuid,
    pub since: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
}

impl ReportLock {
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.last_activity + Duration::minutes(LOCK_IDLE_MINUTES)
    }

    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at()
    }
}

/// A final version replaced by an amendment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SupersededFinal {
    pub version: u64,
    pub content: ReportContent,
    pub reviewer: Uuid,
    pub reviewed_at: DateTime<Utc>,
    pub superseded_at: DateTime<Utc>,
    pub amended_by: Uuid,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Print {
    pub version: u64,
    pub copies: u32,
    pub printed_by: Uuid,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SendBack {
    pub reviewer: Uuid,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A report as its events make it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub id: Uuid,
    pub study: StudyRef,
    pub patient_subject: Option<SubjectId>,
    pub template_id: Option<Uuid>,
    pub status: ReportStatus,
    /// Content version: 1 at creation, +1 with every save or insertion.
    pub version: u64,
    pub content: ReportContent,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub preliminary_by: Option<Uuid>,
    pub preliminary_at: Option<DateTime<Utc>>,
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The final version while the report is final (or being amended).
    pub final_version: Option<u64>,
    /// Set while an amendment of a final report is in progress.
    pub amending: Option<u64>,
    pub sent_back: Option<SendBack>,
    pub lock: Option<ReportLock>,
    pub prints: Vec<Print>,
    pub superseded: Vec<SupersededFinal>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportState {
    pub report: Option<Report>,
}

pub struct ReportDecider;

fn live_lock(r: &Report, now: DateTime<Utc>) -> Option<&ReportLock> {
    r.lock.as_ref().filter(|l| l.is_live(now))
}

/// `ReportLockExpired` if the recorded lock has been idle too long.
fn expiry(r: &Report, now: DateTime<Utc>) -> Option<ReportEvent> {
    r.lock
        .as_ref()
        .filter(|l| !l.is_live(now))
        .map(|l| ReportEvent::ReportLockExpired {
            report_id: r.id,
            holder: l.holder,
            last_activity: l.last_activity,
        })
}

/// Refuse if someone other than `actor` holds a live lock.
fn not_locked_by_other(r: &Report, actor: Uuid, now: DateTime<Utc>) -> Result<(), ReportError> {
    match live_lock(r, now) {
        Some(l) if l.holder != actor => Err(ReportError::Locked {
            holder: l.holder,
            since: l.since,
            expires_at: l.expires_at(),
        }),
        _ => Ok(()),
    }
}

/// The actor must hold a live lock.
fn held_by(r: &Report, actor: Uuid, now: DateTime<Utc>) -> Result<(), ReportError> {
    not_locked_by_other(r, actor, now)?;
    match live_lock(r, now) {
        Some(_) => Ok(()),
        None => Err(ReportError::NotLockHolder),
    }
}

fn check_version(r: &Report, expected: u64) -> Result<(), ReportError> {
    if expected != r.version {
        return Err(ReportError::StaleVersion {
            expected,
            current: r.version,
        });
    }
    Ok(())
}

fn editable(r: &Report) -> Result<(), ReportError> {
    match r.status {
        ReportStatus::Draft | ReportStatus::Preliminary => Ok(()),
        actual => Err(ReportError::WrongStatus {
            needed: "draft or preliminary",
            actual,
        }),
    }
}

fn check_reason(reason: &str) -> Result<String, ReportError> {
    let r = reason.trim();
    if r.is_empty() || !within(r, MAX_REASON) {
        return Err(ReportError::InvalidReason);
    }
    Ok(r.to_string())
}

/// The events that end the actor's own lock (and, first, any expiry).
fn end_own_lock(r: &Report, actor: Uuid, now: DateTime<Utc>, reason: LockRelease) -> Vec<ReportEvent> {
    match &r.lock {
        Some(l) if l.holder == actor && l.is_live(now) => vec![ReportEvent::ReportLockReleased {
            report_id: r.id,
            holder: actor,
            reason,
        }],
        _ => expiry(r, now).into_iter().collect(),
    }
}

/// Appends text to a field, separated by a line break when both have text.
pub fn merge_text(current: &str, insert: &str) -> String {
    let insert = insert.trim();
    match (current.trim_end().is_empty(), insert.is_empty()) {
        (_, true) => current.to_string(),
        (true, false) => insert.to_string(),
        (false, false) => format!("{}\n{insert}", current.trim_end()),
    }
}

impl Decider for ReportDecider {
    type State = ReportState;
    type Command = ReportCommand;
    type Event = ReportEvent;
    type Error = ReportError;

    fn decide(s: &ReportState, c: ReportCommand, ctx: &Ctx) -> Result<Vec<ReportEvent>, ReportError> {
        let now = ctx.now;
        let actor = ctx.actor.unwrap_or_default();
        if let ReportCommand::Create {
            report_id,
            study,
            patient_subject,
            template_id,
            content,
        } = c
        {
            if s.report.is_some() {
                return Err(ReportError::AlreadyExists);
            }
            content.check()?;
            return Ok(vec![
                ReportEvent::ReportCreated {
                    report_id,
                    study,
                    patient_subject,
                    template_id,
                    content,
                    created_by: actor,
                    at: now,
                },
                ReportEvent::ReportLockAcquired {
                    report_id,
                    holder: actor,
                    at: now,
                },
            ]);
        }
        let r = s.report.as_ref().ok_or(ReportError::NotFound)?;
        let id = r.id;
        match c {
            ReportCommand::Create { .. } => Err(ReportError::AlreadyExists),
            ReportCommand::AcquireLock => {
                editable(r)?;
                not_locked_by_other(r, actor, now)?;
                if live_lock(r, now).is_some() {
                    return Ok(vec![ReportEvent::ReportLockHeartbeat {
                        report_id: id,
                        holder: actor,
                        at: now,
                    }]);
                }
                let mut events: Vec<_> = expiry(r, now).into_iter().collect();
                events.push(ReportEvent::ReportLockAcquired {
                    report_id: id,
                    holder: actor,
                    at: now,
                });
                Ok(events)
            }
            ReportCommand::Heartbeat => {
                held_by(r, actor, now)?;
                Ok(vec![ReportEvent::ReportLockHeartbeat {
                    report_id: id,
                    holder: actor,
                    at: now,
                }])
            }
            ReportCommand::ReleaseLock => {
                held_by(r, actor, now)?;
                Ok(vec![ReportEvent::ReportLockReleased {
                    report_id: id,
                    holder: actor,
                    reason: LockRelease::Released,
                }])
            }
            ReportCommand::BreakLock => match &r.lock {
                None => Err(ReportError::NotLocked),
                Some(l) if !l.is_live(now) => Ok(expiry(r, now).into_iter().collect()),
                Some(l) => Ok(vec![ReportEvent::ReportLockBroken {
                    report_id: id,
                    holder: l.holder,
                    since: l.since,
                    broken_by: actor,
                }]),
            },
            ReportCommand::Save {
                expected_version,
                content,
                close,
            } => {
                editable(r)?;
                held_by(r, actor, now)?;
                check_version(r, expected_version)?;
                content.check()?;
                let changed = content.changed_fields(&r.content);
                let mut events = Vec::new();
                if changed.is_empty() {
                    if !close {
                        events.push(ReportEvent::ReportLockHeartbeat {
                            report_id: id,
                            holder: actor,
                            at: now,
                        });
                    }
                } else {
                    events.push(ReportEvent::ReportSaved {
                        report_id: id,
                        version: r.version + 1,
                        content,
                        changed,
                        saved_by: actor,
                        at: now,
                    });
                }
                if close {
                    events.push(ReportEvent::ReportLockReleased {
                        report_id: id,
                        holder: actor,
                        reason: LockRelease::SavedAndClosed,
                    });
                }
                Ok(events)
            }
            ReportCommand::InsertPhrase {
                expected_version,
                entry_id,
                findings,
                impression,
            } => {
                editable(r)?;
                held_by(r, actor, now)?;
                check_version(r, expected_version)?;
                let mut content = r.content.clone();
                content.findings = merge_text(&content.findings, &findings);
                content.impression = merge_text(&content.impression, &impression);
                content.check()?;
                let changed = content.changed_fields(&r.content);
                Ok(vec![ReportEvent::KnowledgePhraseInserted {
                    report_id: id,
                    entry_id,
                    version: r.version + 1,
                    content,
                    changed,
                    inserted_by: actor,
                    at: now,
                }])
            }
            ReportCommand::SubmitPreliminary { expected_version } => {
                if r.status != ReportStatus::Draft {
                    return Err(ReportError::WrongStatus {
                        needed: "draft",
                        actual: r.status,
                    });
                }
                not_locked_by_other(r, actor, now)?;
                check_version(r, expected_version)?;
                if r.content.findings.trim().is_empty() && r.content.impression.trim().is_empty() {
                    return Err(ReportError::Empty);
                }
                let mut events = end_own_lock(r, actor, now, LockRelease::Submitted);
                events.push(ReportEvent::ReportPreliminarySubmitted {
                    report_id: id,
                    study: r.study.clone(),
                    version: r.version,
                    author: actor,
                    at: now,
                });
                Ok(events)
            }
            ReportCommand::Review {
                expected_version,
                allow_self_review,
            } => {
                if r.status != ReportStatus::Preliminary {
                    return Err(ReportError::WrongStatus {
                        needed: "preliminary",
                        actual: r.status,
                    });
                }
                if !allow_self_review && r.preliminary_by == Some(actor) {
                    return Err(ReportError::SelfReview);
                }
                not_locked_by_other(r, actor, now)?;
                check_version(r, expected_version)?;
                let mut events = end_own_lock(r, actor, now, LockRelease::Reviewed);
                events.push(ReportEvent::ReportReviewed {
                    report_id: id,
                    study: r.study.clone(),
                    version: r.version,
                    reviewer: actor,
                    supersedes: r.amending,
                    at: now,
                });
                Ok(events)
            }
            ReportCommand::SendBack { reason } => {
                if r.status != ReportStatus::Preliminary {
                    return Err(ReportError::WrongStatus {
                        needed: "preliminary",
                        actual: r.status,
                    });
                }
                let reason = check_reason(&reason)?;
                not_locked_by_other(r, actor, now)?;
                let mut events = end_own_lock(r, actor, now, LockRelease::SentBack);
                events.push(ReportEvent::ReportSentBack {
                    report_id: id,
                    study: r.study.clone(),
                    version: r.version,
                    reviewer: actor,
                    reason,
                    at: now,
                });
                Ok(events)
            }
            ReportCommand::Amend { reason } => {
                let final_version = match (r.status, r.final_version) {
                    (ReportStatus::Final, Some(v)) => v,
                    (actual, _) => {
                        return Err(ReportError::WrongStatus {
                            needed: "final",
                            actual,
                        })
                    }
                };
                let reason = check_reason(&reason)?;
                let mut events: Vec<_> = expiry(r, now).into_iter().collect();
                events.push(ReportEvent::ReportAmendmentStarted {
                    report_id: id,
                    study: r.study.clone(),
                    final_version,
                    amended_by: actor,
                    reason,
                    at: now,
                });
                events.push(ReportEvent::ReportLockAcquired {
                    report_id: id,
                    holder: actor,
                    at: now,
                });
                Ok(events)
            }
            ReportCommand::Print { copies } => {
                if r.status != ReportStatus::Final {
                    return Err(ReportError::WrongStatus {
                        needed: "final",
                        actual: r.status,
                    });
                }
                if copies == 0 || copies > MAX_COPIES {
                    return Err(ReportError::InvalidCopies);
                }
                Ok(vec![ReportEvent::ReportPrinted {
                    report_id: id,
                    study: r.study.clone(),
                    version: r.version,
                    copies,
                    printed_by: actor,
                    at: now,
                }])
            }
        }
    }

    fn evolve(mut s: ReportState, e: &ReportEvent) -> ReportState {
        if let ReportEvent::ReportCreated {
            report_id,
            study,
            patient_subject,
            template_id,
            content,
            created_by,
            at,
        } = e
        {
            s.report = Some(Report {
                id: *report_id,
                study: study.clone(),
                patient_subject: *patient_subject,
                template_id: *template_id,
                status: ReportStatus::Draft,
                version: 1,
                content: content.clone(),
                created_by: *created_by,
                created_at: *at,
                updated_at: *at,
                preliminary_by: None,
                preliminary_at: None,
                reviewed_by: None,
                reviewed_at: None,
                final_version: None,
                amending: None,
                sent_back: None,
                lock: None,
                prints: vec![],
                superseded: vec![],
            });
            return s;
        }
        let Some(r) = s.report.as_mut() else {
            return s;
        };
        match e {
            ReportEvent::ReportCreated { .. } => {}
            ReportEvent::ReportLockAcquired { holder, at, .. } => {
                r.lock = Some(ReportLock {
                    holder: *holder,
                    since: *at,
                    last_activity: *at,
                })
            }
            ReportEvent::ReportLockHeartbeat { at, .. } => {
                if let Some(l) = r.lock.as_mut() {
                    l.last_activity = *at;
                }
            }
            ReportEvent::ReportLockReleased { .. }
            | ReportEvent::ReportLockExpired { .. }
            | ReportEvent::ReportLockBroken { .. } => r.lock = None,
            ReportEvent::ReportSaved {
                version, content, at, ..
            }
            | ReportEvent::KnowledgePhraseInserted {
                version, content, at, ..
            } => {
                r.version = *version;
                r.content = content.clone();
                r.updated_at = *at;
                if let Some(l) = r.lock.as_mut() {
                    l.last_activity = *at;
                }
            }
            ReportEvent::ReportPreliminarySubmitted { author, at, .. } => {
                r.status = ReportStatus::Preliminary;
                r.preliminary_by = Some(*author);
                r.preliminary_at = Some(*at);
                r.sent_back = None;
                r.updated_at = *at;
            }
            ReportEvent::ReportSentBack {
                reviewer, reason, at, ..
            } => {
                r.status = ReportStatus::Draft;
                r.sent_back = Some(SendBack {
                    reviewer: *reviewer,
                    reason: reason.clone(),
                    at: *at,
                });
                r.updated_at = *at;
            }
            ReportEvent::ReportReviewed {
                version, reviewer, at, ..
            } => {
                r.status = ReportStatus::Final;
                r.reviewed_by = Some(*reviewer);
                r.reviewed_at = Some(*at);
                r.final_version = Some(*version);
                r.amending = None;
                r.updated_at = *at;
            }
            ReportEvent::ReportAmendmentStarted {
                final_version,
                amended_by,
                reason,
                at,
                ..
            } => {
                r.superseded.push(SupersededFinal {
                    version: *final_version,
                    content: r.content.clone(),
                    reviewer: r.reviewed_by.unwrap_or_default(),
                    reviewed_at: r.reviewed_at.unwrap_or(*at),
                    superseded_at: *at,
                    amended_by: *amended_by,
                    reason: reason.clone(),
                });
                r.status = ReportStatus::Draft;
                r.amending = Some(*final_version);
                r.final_version = None;
                r.preliminary_by = None;
                r.preliminary_at = None;
                r.reviewed_by = None;
                r.reviewed_at = None;
                r.updated_at = *at;
            }
            ReportEvent::ReportPrinted {
                version,
                copies,
                printed_by,
                at,
                ..
            } => r.prints.push(Print {
                version: *version,
                copies: *copies,
                printed_by: *printed_by,
                at: *at,
            }),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;
    use chrono::TimeZone;

    const R: Uuid = Uuid::from_u128(100);
    const DOC: Uuid = Uuid::from_u128(1);
    const DOC2: Uuid = Uuid::from_u128(2);
    const REVIEWER: Uuid = Uuid::from_u128(3);
    const ADMIN: Uuid = Uuid::from_u128(4);

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn at(minutes: i64, who: Uuid) -> Ctx {
        Ctx::at(t(minutes)).with_actor(who)
    }

    fn study() -> StudyRef {
        StudyRef {
            hospital_id: Uuid::from_u128(9),
            study_instance_uid: "1.2.3".into(),
        }
    }

    fn content(findings: &str, impression: &str) -> ReportContent {
        ReportContent {
            findings: findings.into(),
            impression: impression.into(),
            ..Default::default()
        }
    }

    fn acquired(m: i64, holder: Uuid) -> ReportEvent {
        ReportEvent::ReportLockAcquired {
            report_id: R,
            holder,
            at: t(m),
        }
    }

    fn heartbeat(m: i64, holder: Uuid) -> ReportEvent {
        ReportEvent::ReportLockHeartbeat {
            report_id: R,
            holder,
            at: t(m),
        }
    }

    fn released(holder: Uuid, reason: LockRelease) -> ReportEvent {
        ReportEvent::ReportLockReleased {
            report_id: R,
            holder,
            reason,
        }
    }

    fn create() -> ReportCommand {
        ReportCommand::Create {
            report_id: R,
            study: study(),
            patient_subject: None,
            template_id: None,
            content: ReportContent::default(),
        }
    }

    fn created() -> Vec<ReportEvent> {
        vec![
            ReportEvent::ReportCreated {
                report_id: R,
                study: study(),
                patient_subject: None,
                template_id: None,
                content: ReportContent::default(),
                created_by: DOC,
                at: t(0),
            },
            acquired(0, DOC),
        ]
    }

    fn saved(m: i64, version: u64, findings: &str) -> ReportEvent {
        ReportEvent::ReportSaved {
            report_id: R,
            version,
            content: content(findings, "正常"),
            changed: vec!["findings".into(), "impression".into()],
            saved_by: DOC,
            at: t(m),
        }
    }

    fn submitted(m: i64, version: u64, author: Uuid) -> ReportEvent {
        ReportEvent::ReportPreliminarySubmitted {
            report_id: R,
            study: study(),
            version,
            author,
            at: t(m),
        }
    }

    fn reviewed_event(m: i64, version: u64, reviewer: Uuid, supersedes: Option<u64>) -> ReportEvent {
        ReportEvent::ReportReviewed {
            report_id: R,
            study: study(),
            version,
            reviewer,
            supersedes,
            at: t(m),
        }
    }

    fn preliminary() -> Vec<ReportEvent> {
        let mut h = created();
        h.push(saved(5, 2, "双肺纹理清晰"));
        h.push(released(DOC, LockRelease::Submitted));
        h.push(submitted(6, 2, DOC));
        h
    }

    fn reviewed() -> Vec<ReportEvent> {
        let mut h = preliminary();
        h.push(reviewed_event(10, 2, REVIEWER, None));
        h
    }

    fn save(version: u64, c: ReportContent, close: bool) -> ReportCommand {
        ReportCommand::Save {
            expected_version: version,
            content: c,
            close,
        }
    }

    fn locked_by_doc(until: i64) -> ReportError {
        ReportError::Locked {
            holder: DOC,
            since: t(0),
            expires_at: t(until),
        }
    }

    #[test]
    fn creating_a_report_opens_it_for_its_creator() {
        given::<ReportDecider>(&[]).when(create(), &at(0, DOC)).then(&created());
        given::<ReportDecider>(&created())
            .when(create(), &at(1, DOC))
            .then_error(ReportError::AlreadyExists);
        given::<ReportDecider>(&[])
            .when(ReportCommand::AcquireLock, &at(0, DOC))
            .then_error(ReportError::NotFound);
    }

    #[test]
    fn second_editor_cannot_take_a_held_lock() {
        given::<ReportDecider>(&created())
            .when(ReportCommand::AcquireLock, &at(29, DOC2))
            .then_error(locked_by_doc(30));
        // The holder reopening extends its own lock.
        given::<ReportDecider>(&created())
            .when(ReportCommand::AcquireLock, &at(3, DOC))
            .then(&[heartbeat(3, DOC)]);
    }

    #[test]
    fn heartbeats_and_saves_keep_the_lock_alive() {
        let mut h = created();
        h.push(heartbeat(20, DOC));
        // 45 minutes after acquiring, but only 25 after the heartbeat: still held.
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(45, DOC2))
            .then_error(locked_by_doc(50));
        h.push(saved(40, 2, "x"));
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(69, DOC2))
            .then_error(locked_by_doc(70));
        given::<ReportDecider>(&h)
            .when(ReportCommand::Heartbeat, &at(69, DOC2))
            .then_error(locked_by_doc(70));
        given::<ReportDecider>(&h)
            .when(ReportCommand::Heartbeat, &at(69, DOC))
            .then(&[heartbeat(69, DOC)]);
    }

    #[test]
    fn an_idle_lock_expires_after_30_minutes_and_the_expiry_is_recorded_first() {
        let mut h = created();
        h.push(heartbeat(5, DOC));
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(35, DOC2))
            .then(&[
                ReportEvent::ReportLockExpired {
                    report_id: R,
                    holder: DOC,
                    last_activity: t(5),
                },
                acquired(35, DOC2),
            ]);
        // One minute earlier it is still held.
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(34, DOC2))
            .then_error(locked_by_doc(35));
        // The former holder cannot save or heartbeat on an expired lock.
        given::<ReportDecider>(&h)
            .when(ReportCommand::Heartbeat, &at(35, DOC))
            .then_error(ReportError::NotLockHolder);
        given::<ReportDecider>(&h)
            .when(save(1, content("a", "b"), false), &at(36, DOC))
            .then_error(ReportError::NotLockHolder);
    }

    #[test]
    fn the_holder_releases_and_others_cannot() {
        given::<ReportDecider>(&created())
            .when(ReportCommand::ReleaseLock, &at(1, DOC2))
            .then_error(locked_by_doc(30));
        given::<ReportDecider>(&created())
            .when(ReportCommand::ReleaseLock, &at(1, DOC))
            .then(&[released(DOC, LockRelease::Released)]);
        let mut h = created();
        h.push(released(DOC, LockRelease::Released));
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(2, DOC2))
            .then(&[acquired(2, DOC2)]);
        given::<ReportDecider>(&h)
            .when(ReportCommand::ReleaseLock, &at(2, DOC))
            .then_error(ReportError::NotLockHolder);
    }

    #[test]
    fn an_administrator_breaks_a_live_lock() {
        given::<ReportDecider>(&created())
            .when(ReportCommand::BreakLock, &at(10, ADMIN))
            .then(&[ReportEvent::ReportLockBroken {
                report_id: R,
                holder: DOC,
                since: t(0),
                broken_by: ADMIN,
            }]);
        // An idle lock is recorded as expired rather than broken.
        given::<ReportDecider>(&created())
            .when(ReportCommand::BreakLock, &at(31, ADMIN))
            .then(&[ReportEvent::ReportLockExpired {
                report_id: R,
                holder: DOC,
                last_activity: t(0),
            }]);
        let mut h = created();
        h.push(ReportEvent::ReportLockBroken {
            report_id: R,
            holder: DOC,
            since: t(0),
            broken_by: ADMIN,
        });
        given::<ReportDecider>(&h)
            .when(ReportCommand::BreakLock, &at(11, ADMIN))
            .then_error(ReportError::NotLocked);
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(11, DOC2))
            .then(&[acquired(11, DOC2)]);
    }

    #[test]
    fn a_stale_save_is_refused_never_overwritten() {
        let mut h = created();
        h.push(saved(5, 2, "first"));
        given::<ReportDecider>(&h)
            .when(save(1, content("second", ""), false), &at(6, DOC))
            .then_error(ReportError::StaleVersion {
                expected: 1,
                current: 2,
            });
        given::<ReportDecider>(&h)
            .when(save(2, content("second", "正常"), true), &at(6, DOC))
            .then(&[
                ReportEvent::ReportSaved {
                    report_id: R,
                    version: 3,
                    content: content("second", "正常"),
                    changed: vec!["findings".into()],
                    saved_by: DOC,
                    at: t(6),
                },
                released(DOC, LockRelease::SavedAndClosed),
            ]);
        // An unchanged save only shows the holder is there.
        given::<ReportDecider>(&h)
            .when(save(2, content("first", "正常"), false), &at(6, DOC))
            .then(&[heartbeat(6, DOC)]);
    }

    #[test]
    fn bad_content_is_refused() {
        let mut bad = content("a", "b");
        bad.key_images = vec!["1.2.x".into()];
        assert!(matches!(
            given::<ReportDecider>(&created())
                .when(save(1, bad, false), &at(1, DOC))
                .outcome(),
            Err(ReportError::InvalidContent(_))
        ));
        let mut bad = content("a", "b");
        bad.fields.insert("bad key!".into(), "v".into());
        assert!(matches!(
            given::<ReportDecider>(&created())
                .when(save(1, bad, false), &at(1, DOC))
                .outcome(),
            Err(ReportError::InvalidContent(_))
        ));
        let mut good = content("a", "b");
        good.fields.insert("nodule_size".into(), "5mm".into());
        good.key_images = vec!["1.2.840.10008.1".into()];
        assert!(given::<ReportDecider>(&created())
            .when(save(1, good, false), &at(1, DOC))
            .outcome()
            .is_ok());
    }

    #[test]
    fn preliminary_needs_a_draft_with_text() {
        given::<ReportDecider>(&created())
            .when(ReportCommand::SubmitPreliminary { expected_version: 1 }, &at(1, DOC))
            .then_error(ReportError::Empty);
        let mut h = created();
        h.push(saved(5, 2, "双肺纹理清晰"));
        given::<ReportDecider>(&h)
            .when(ReportCommand::SubmitPreliminary { expected_version: 2 }, &at(6, DOC))
            .then(&[released(DOC, LockRelease::Submitted), submitted(6, 2, DOC)]);
        given::<ReportDecider>(&h)
            .when(ReportCommand::SubmitPreliminary { expected_version: 1 }, &at(6, DOC))
            .then_error(ReportError::StaleVersion {
                expected: 1,
                current: 2,
            });
        // Someone else's live lock blocks the submit.
        given::<ReportDecider>(&h)
            .when(ReportCommand::SubmitPreliminary { expected_version: 2 }, &at(6, DOC2))
            .then_error(ReportError::Locked {
                holder: DOC,
                since: t(0),
                expires_at: t(35),
            });
        given::<ReportDecider>(&preliminary())
            .when(ReportCommand::SubmitPreliminary { expected_version: 2 }, &at(7, DOC))
            .then_error(ReportError::WrongStatus {
                needed: "draft",
                actual: ReportStatus::Preliminary,
            });
    }

    #[test]
    fn the_reviewer_must_not_be_the_preliminary_author_unless_allowed() {
        let review = |allow| ReportCommand::Review {
            expected_version: 2,
            allow_self_review: allow,
        };
        given::<ReportDecider>(&preliminary())
            .when(review(false), &at(8, DOC))
            .then_error(ReportError::SelfReview);
        given::<ReportDecider>(&preliminary())
            .when(review(true), &at(8, DOC))
            .then(&[reviewed_event(8, 2, DOC, None)]);
        given::<ReportDecider>(&preliminary())
            .when(review(false), &at(10, REVIEWER))
            .then(&[reviewed_event(10, 2, REVIEWER, None)]);
        given::<ReportDecider>(&created())
            .when(review(false), &at(10, REVIEWER))
            .then_error(ReportError::WrongStatus {
                needed: "preliminary",
                actual: ReportStatus::Draft,
            });
        let r = ReportDecider::fold(&reviewed()).report.unwrap();
        assert_eq!(
            (r.status, r.reviewed_by, r.final_version, r.reviewed_at),
            (ReportStatus::Final, Some(REVIEWER), Some(2), Some(t(10)))
        );
    }

    #[test]
    fn a_reviewer_sends_a_report_back_with_a_reason() {
        given::<ReportDecider>(&preliminary())
            .when(ReportCommand::SendBack { reason: "  ".into() }, &at(8, REVIEWER))
            .then_error(ReportError::InvalidReason);
        let sent = ReportEvent::ReportSentBack {
            report_id: R,
            study: study(),
            version: 2,
            reviewer: REVIEWER,
            reason: "请补充纵隔描述".into(),
            at: t(8),
        };
        given::<ReportDecider>(&preliminary())
            .when(
                ReportCommand::SendBack {
                    reason: " 请补充纵隔描述 ".into(),
                },
                &at(8, REVIEWER),
            )
            .then(std::slice::from_ref(&sent));
        let mut h = preliminary();
        h.push(sent);
        let r = ReportDecider::fold(&h).report.unwrap();
        assert_eq!(r.status, ReportStatus::Draft);
        assert_eq!(r.sent_back.map(|b| b.reason), Some("请补充纵隔描述".to_string()));
        // Back in draft: the author reopens, edits and submits again.
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(9, DOC))
            .then(&[acquired(9, DOC)]);
        given::<ReportDecider>(&h)
            .when(ReportCommand::SubmitPreliminary { expected_version: 2 }, &at(9, DOC))
            .then(&[submitted(9, 2, DOC)]);
    }

    #[test]
    fn amending_a_final_report_keeps_the_previous_final_as_superseded() {
        let amend = ReportCommand::Amend {
            reason: "左肺结节漏报".into(),
        };
        assert!(matches!(
            given::<ReportDecider>(&preliminary())
                .when(amend.clone(), &at(11, REVIEWER))
                .outcome(),
            Err(ReportError::WrongStatus { needed: "final", .. })
        ));
        let started = ReportEvent::ReportAmendmentStarted {
            report_id: R,
            study: study(),
            final_version: 2,
            amended_by: REVIEWER,
            reason: "左肺结节漏报".into(),
            at: t(20),
        };
        given::<ReportDecider>(&reviewed())
            .when(amend, &at(20, REVIEWER))
            .then(&[started.clone(), acquired(20, REVIEWER)]);
        let mut h = reviewed();
        h.push(started);
        h.push(acquired(20, REVIEWER));
        h.push(ReportEvent::ReportSaved {
            report_id: R,
            version: 3,
            content: content("双肺纹理清晰，左肺上叶结节 5mm", "左肺结节"),
            changed: vec!["findings".into(), "impression".into()],
            saved_by: REVIEWER,
            at: t(21),
        });
        let r = ReportDecider::fold(&h).report.unwrap();
        assert_eq!(r.status, ReportStatus::Draft);
        assert_eq!(r.superseded.len(), 1);
        assert_eq!(r.superseded[0].version, 2);
        assert_eq!(r.superseded[0].content.findings, "双肺纹理清晰");
        assert_eq!(r.superseded[0].reviewer, REVIEWER);
        // The amended report goes through preliminary and review again, and
        // its review names the version it supersedes.
        h.push(released(REVIEWER, LockRelease::Submitted));
        h.push(submitted(22, 3, REVIEWER));
        given::<ReportDecider>(&h)
            .when(
                ReportCommand::Review {
                    expected_version: 3,
                    allow_self_review: false,
                },
                &at(23, DOC2),
            )
            .then(&[reviewed_event(23, 3, DOC2, Some(2))]);
    }

    #[test]
    fn only_final_reports_are_printed_any_number_of_times() {
        assert!(matches!(
            given::<ReportDecider>(&preliminary())
                .when(ReportCommand::Print { copies: 1 }, &at(11, DOC))
                .outcome(),
            Err(ReportError::WrongStatus { needed: "final", .. })
        ));
        given::<ReportDecider>(&reviewed())
            .when(ReportCommand::Print { copies: 0 }, &at(11, DOC))
            .then_error(ReportError::InvalidCopies);
        let print = |m: i64, copies| ReportEvent::ReportPrinted {
            report_id: R,
            study: study(),
            version: 2,
            copies,
            printed_by: DOC,
            at: t(m),
        };
        given::<ReportDecider>(&reviewed())
            .when(ReportCommand::Print { copies: 2 }, &at(11, DOC))
            .then(&[print(11, 2)]);
        let mut h = reviewed();
        h.push(print(11, 2));
        given::<ReportDecider>(&h)
            .when(ReportCommand::Print { copies: 1 }, &at(12, DOC))
            .then(&[print(12, 1)]);
        h.push(print(12, 1));
        let r = ReportDecider::fold(&h).report.unwrap();
        assert_eq!((r.status, r.prints.len()), (ReportStatus::Final, 2));
        // A final report is not edited in place.
        given::<ReportDecider>(&h)
            .when(ReportCommand::AcquireLock, &at(13, DOC))
            .then_error(ReportError::WrongStatus {
                needed: "draft or preliminary",
                actual: ReportStatus::Final,
            });
    }

    #[test]
    fn inserting_a_phrase_merges_its_text_into_a_new_version() {
        let mut h = created();
        h.push(saved(5, 2, "双肺纹理清晰"));
        let insert = |version| ReportCommand::InsertPhrase {
            expected_version: version,
            entry_id: Uuid::from_u128(77),
            findings: "心影不大。".into(),
            impression: "".into(),
        };
        given::<ReportDecider>(&h)
            .when(insert(2), &at(6, DOC))
            .then(&[ReportEvent::KnowledgePhraseInserted {
                report_id: R,
                entry_id: Uuid::from_u128(77),
                version: 3,
                content: content("双肺纹理清晰\n心影不大。", "正常"),
                changed: vec!["findings".into()],
                inserted_by: DOC,
                at: t(6),
            }]);
        given::<ReportDecider>(&h)
            .when(insert(1), &at(6, DOC))
            .then_error(ReportError::StaleVersion {
                expected: 1,
                current: 2,
            });
        given::<ReportDecider>(&h)
            .when(insert(2), &at(6, DOC2))
            .then_error(locked_by_doc(35));
    }
}
