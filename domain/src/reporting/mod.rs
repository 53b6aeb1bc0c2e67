//! Reporting: the diagnostic report (报告) of a study, its templates and the
//! phrases doctors insert into it.
//!
//! - [`report`]: one report per study (a study with several requested
//!   procedures still gets one report), written under a single-editor lock,
//!   submitted as preliminary (初诊), reviewed into a final report (审核),
//!   printed any number of times, amended with the previous final kept as
//!   superseded.
//! - [`template`]: report templates per study type (modality + body part +
//!   exam item), with print layout and department scope.
//! - [`knowledge`]: hospital-wide and personal knowledge-base phrases (知识库词条).
//! - [`settings`]: a hospital's reporting rules (may a preliminary author
//!   review their own report? what does the alliance see of its studies?).
//! - [`priors`]: when another hospital's study (and its final report) may be
//!   shown beside one of a hospital's own reports, and the trail of those looks.
//!
//! Nothing here reads the clock: lock expiry (30 minutes without activity)
//! is decided from `Ctx::now` when the next command arrives.

pub mod knowledge;
pub mod priors;
pub mod report;
pub mod settings;
pub mod template;

/// A study as the reporting context refers to it: never by patient name,
/// always by hospital and Study Instance UID.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StudyRef {
    pub hospital_id: uuid::Uuid,
    pub study_instance_uid: String,
}

/// Checks a free-text field's length in characters.
pub(crate) fn within(s: &str, max: usize) -> bool {
    s.chars().count() <= max
}
