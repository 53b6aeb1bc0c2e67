//! Priors across the alliance (对比): when a hospital may show another hospital's study —
//! its images, and the text of its final report — beside one of its own reports, and the
//! trail those looks leave.
//!
//! A study of another hospital is a prior of a report when, at the moment it is asked for:
//! - the study's hospital is in the report's alliance, and is not the report's own hospital
//!   (the own hospital's studies are the hospital's anyway);
//! - that hospital shares its studies as priors ([`PriorSharing::Studies`] or more), and for
//!   the text of its final reports, with its reports ([`PriorSharing::StudiesAndReports`]);
//! - the study is the same patient's as the report's own study: Patient ID and birth date
//!   both present and exactly equal ([`PatientKey`]). A forgotten patient has neither (their
//!   values are erased with their key), so they are nobody's prior.
//!
//! The access is always in the context of one of the caller's own reports: nothing here
//! lets anyone browse another hospital's studies by themselves.
//!
//! Every look at another hospital's images is recorded ([`PriorViewEvent::PriorStudyViewed`])
//! on the viewed study's own trail (stream `priorviews-<hospital_id>.<study_instance_uid>`),
//! so the hospital that shared it can be told who looked, from where, and for which report.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::settings::PriorSharing;
use super::StudyRef;
use crate::decider::{Ctx, Decider};

/// A patient as a study names them, for the alliance match: the Patient ID (0010,0020) and
/// birth date (0010,0030) exactly as received. There is no key without both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientKey {
    patient_id: String,
    birth_date: String,
}

impl PatientKey {
    /// The key of a study's patient; `None` when either value is missing or blank (an
    /// erased value is missing).
    pub fn new(patient_id: Option<&str>, birth_date: Option<&str>) -> Option<PatientKey> {
        match (patient_id, birth_date) {
            (Some(id), Some(birth)) if !id.trim().is_empty() && !birth.trim().is_empty() => Some(PatientKey {
                patient_id: id.to_string(),
                birth_date: birth.to_string(),
            }),
            _ => None,
        }
    }

    pub fn patient_id(&self) -> &str {
        &self.patient_id
    }

    pub fn birth_date(&self) -> &str {
        &self.birth_date
    }
}

/// What another hospital's study is wanted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorUse {
    /// The study: its attributes and images.
    Study,
    /// The text of its final report.
    ReportText,
}

/// The facts a prior is decided on, read afresh for each request.
#[derive(Clone, Debug, PartialEq)]
pub struct PriorCase<'a> {
    /// The hospital of the caller's report (the caller's own).
    pub report_hospital: Uuid,
    pub report_alliance: Option<Uuid>,
    /// The patient of the report's study.
    pub report_patient: Option<&'a PatientKey>,
    /// The other study's hospital, its alliance and what it shares now.
    pub hospital: Uuid,
    pub alliance: Option<Uuid>,
    pub sharing: PriorSharing,
    /// The patient of the other study.
    pub patient: Option<&'a PatientKey>,
}

/// Why a study is not a prior of the report. Callers answer every one of them the same way
/// (not found): nobody learns that a patient was seen elsewhere unless it is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PriorRefusal {
    #[error("the study is the report's own hospital's")]
    OwnHospital,
    #[error("the study's hospital is in another alliance")]
    OtherAlliance,
    #[error("the study's hospital does not share its studies")]
    NotShared,
    #[error("the study's hospital does not share its reports")]
    ReportsNotShared,
    #[error("the patient is unknown (no Patient ID or birth date, or forgotten)")]
    UnknownPatient,
    #[error("the study is another patient's")]
    OtherPatient,
}

/// May the study of `case` be shown beside the report, for `wanted`?
pub fn may_compare(case: &PriorCase<'_>, wanted: PriorUse) -> Result<(), PriorRefusal> {
    if case.hospital == case.report_hospital {
        return Err(PriorRefusal::OwnHospital);
    }
    if case.alliance.is_none() || case.alliance != case.report_alliance {
        return Err(PriorRefusal::OtherAlliance);
    }
    match (case.sharing, wanted) {
        (PriorSharing::None, _) => return Err(PriorRefusal::NotShared),
        (PriorSharing::Studies, PriorUse::ReportText) => return Err(PriorRefusal::ReportsNotShared),
        _ => {}
    }
    match (case.report_patient, case.patient) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(_), Some(_)) => Err(PriorRefusal::OtherPatient),
        _ => Err(PriorRefusal::UnknownPatient),
    }
}

/// How another hospital's study was looked at. Study-level requests are recorded (every way
/// into a study's series, instances and frames starts with one of them, since those need
/// the UIDs they answer); frames, renders and thumbnails are not, one by one. Reading the
/// text of its final report (in the priors list, or diffed) is recorded too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorAccess {
    /// QIDO-RS: found among the report's priors (its attributes, patient's included).
    Search,
    /// QIDO-RS: its series or instances listed.
    Contents,
    /// WADO-RS: its metadata (every instance's data set).
    Metadata,
    /// WADO-RS: its objects retrieved.
    Retrieve,
    /// The text of its final report read: in the report's priors list, or diffed against.
    ReportText,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PriorViewEvent {
    /// Someone of another hospital looked at the study as a prior of one of their reports.
    PriorStudyViewed {
        /// The study looked at (its hospital shares it).
        study: StudyRef,
        /// The viewer's report it was looked at for.
        report_id: Uuid,
        viewer: Uuid,
        viewer_hospital: Uuid,
        access: PriorAccess,
    },
}

crate::event_catalog!(PriorViewEvent, "reporting", [PriorStudyViewed = 1]);

/// Record a look at another hospital's study.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordPriorView {
    pub study: StudyRef,
    pub report_id: Uuid,
    pub viewer_hospital: Uuid,
    pub access: PriorAccess,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PriorViewError {
    #[error("a look at another hospital's study needs an authenticated viewer")]
    AnonymousViewer,
    #[error("a hospital's own study is not a prior from another hospital")]
    OwnStudy,
}

/// The trail of looks at one study from other hospitals (stream
/// `priorviews-<hospital_id>.<study_instance_uid>`): every look appends one event.
pub struct PriorViews;

impl Decider for PriorViews {
    type State = ();
    type Command = RecordPriorView;
    type Event = PriorViewEvent;
    type Error = PriorViewError;

    fn decide(_: &(), c: RecordPriorView, ctx: &Ctx) -> Result<Vec<PriorViewEvent>, PriorViewError> {
        let viewer = ctx.actor.ok_or(PriorViewError::AnonymousViewer)?;
        if c.viewer_hospital == c.study.hospital_id {
            return Err(PriorViewError::OwnStudy);
        }
        Ok(vec![PriorViewEvent::PriorStudyViewed {
            study: c.study,
            report_id: c.report_id,
            viewer,
            viewer_hospital: c.viewer_hospital,
            access: c.access,
        }])
    }

    fn evolve(_: (), _: &PriorViewEvent) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    const OWN: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);
    const ALLIANCE: Uuid = Uuid::from_u128(10);

    fn key(id: &str, birth: &str) -> PatientKey {
        PatientKey::new(Some(id), Some(birth)).unwrap()
    }

    fn case<'a>(own: &'a PatientKey, other: &'a PatientKey, sharing: PriorSharing) -> PriorCase<'a> {
        PriorCase {
            report_hospital: OWN,
            report_alliance: Some(ALLIANCE),
            report_patient: Some(own),
            hospital: OTHER,
            alliance: Some(ALLIANCE),
            sharing,
            patient: Some(other),
        }
    }

    #[test]
    fn a_patient_key_needs_both_values() {
        assert!(PatientKey::new(Some("P1"), Some("19800101")).is_some());
        assert_eq!(PatientKey::new(Some("P1"), None), None);
        assert_eq!(PatientKey::new(None, Some("19800101")), None);
        assert_eq!(PatientKey::new(Some("  "), Some("19800101")), None);
        assert_eq!(PatientKey::new(Some("P1"), Some("")), None);
    }

    #[test]
    fn the_same_patient_in_a_sharing_hospital_of_the_alliance_is_a_prior() {
        let p = key("110101198001011234", "19800101");
        let same = key("110101198001011234", "19800101");
        assert_eq!(
            may_compare(&case(&p, &same, PriorSharing::Studies), PriorUse::Study),
            Ok(())
        );
        assert_eq!(
            may_compare(&case(&p, &same, PriorSharing::StudiesAndReports), PriorUse::Study),
            Ok(())
        );
        assert_eq!(
            may_compare(&case(&p, &same, PriorSharing::StudiesAndReports), PriorUse::ReportText),
            Ok(())
        );
    }

    #[test]
    fn report_text_needs_the_reports_shared_too() {
        let p = key("P1", "19800101");
        assert_eq!(
            may_compare(&case(&p, &p, PriorSharing::Studies), PriorUse::ReportText),
            Err(PriorRefusal::ReportsNotShared)
        );
        for wanted in [PriorUse::Study, PriorUse::ReportText] {
            assert_eq!(
                may_compare(&case(&p, &p, PriorSharing::None), wanted),
                Err(PriorRefusal::NotShared)
            );
        }
    }

    #[test]
    fn another_patient_an_unknown_one_another_alliance_or_the_own_hospital_is_no_prior() {
        let p = key("P1", "19800101");
        let sharing = PriorSharing::StudiesAndReports;
        // Same ID, other birth date; same birth date, other ID.
        for other in [key("P1", "19800102"), key("P2", "19800101")] {
            assert_eq!(
                may_compare(&case(&p, &other, sharing), PriorUse::Study),
                Err(PriorRefusal::OtherPatient)
            );
        }
        // A forgotten (or incompletely recorded) patient on either side matches nobody.
        let mut c = case(&p, &p, sharing);
        c.patient = None;
        assert_eq!(may_compare(&c, PriorUse::Study), Err(PriorRefusal::UnknownPatient));
        let mut c = case(&p, &p, sharing);
        c.report_patient = None;
        assert_eq!(may_compare(&c, PriorUse::Study), Err(PriorRefusal::UnknownPatient));
        let mut c = case(&p, &p, sharing);
        c.alliance = Some(Uuid::from_u128(11));
        assert_eq!(may_compare(&c, PriorUse::Study), Err(PriorRefusal::OtherAlliance));
        let mut c = case(&p, &p, sharing);
        c.alliance = None;
        c.report_alliance = None;
        assert_eq!(
            may_compare(&c, PriorUse::Study),
            Err(PriorRefusal::OtherAlliance),
            "no alliance, no sharing"
        );
        let mut c = case(&p, &p, sharing);
        c.hospital = OWN;
        assert_eq!(may_compare(&c, PriorUse::Study), Err(PriorRefusal::OwnHospital));
    }

    #[test]
    fn every_look_names_its_viewer_and_is_of_another_hospitals_study() {
        let now = chrono::Utc::now();
        let look = RecordPriorView {
            study: StudyRef {
                hospital_id: OTHER,
                study_instance_uid: "1.2.3".into(),
            },
            report_id: Uuid::from_u128(7),
            viewer_hospital: OWN,
            access: PriorAccess::Metadata,
        };
        given::<PriorViews>(&[])
            .when(look.clone(), &Ctx::at(now))
            .then_error(PriorViewError::AnonymousViewer);
        given::<PriorViews>(&[])
            .when(
                RecordPriorView {
                    viewer_hospital: OTHER,
                    ..look.clone()
                },
                &Ctx::at(now).with_actor(Uuid::from_u128(5)),
            )
            .then_error(PriorViewError::OwnStudy);
        let viewed = PriorViewEvent::PriorStudyViewed {
            study: look.study.clone(),
            report_id: Uuid::from_u128(7),
            viewer: Uuid::from_u128(5),
            viewer_hospital: OWN,
            access: PriorAccess::Metadata,
        };
        given::<PriorViews>(&[])
            .when(look.clone(), &Ctx::at(now).with_actor(Uuid::from_u128(5)))
            .then(std::slice::from_ref(&viewed));
        // Looking again is recorded again: the trail is of looks, not of studies.
        given::<PriorViews>(std::slice::from_ref(&viewed))
            .when(look, &Ctx::at(now).with_actor(Uuid::from_u128(5)))
            .then(std::slice::from_ref(&viewed));
    }
}
