//! A hospital's reporting rules (stream `reporting-settings-<hospital_id>`),
//! set by its administrators:
//!
//! - may the preliminary author also review (sign off) their own report?
//!   Default: no.
//! - may the hospital's studies be shown to the other hospitals of its
//!   alliance as a patient's priors (对比影像), and with their final reports?
//!   Default: no ([`PriorSharing::None`]). This is the hospital's explicit
//!   grant; without it no other hospital learns that the patient was seen
//!   here.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};

/// What a hospital lets the other hospitals of its alliance see of a patient's
/// studies when they compare a report with its priors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorSharing {
    /// Nothing: the hospital's studies are never shown outside it.
    #[default]
    None,
    /// The studies (date, modality, body part, description), not their reports.
    Studies,
    /// The studies and the text of their final (reviewed) reports. Drafts and
    /// preliminary reports are never shown outside the hospital.
    StudiesAndReports,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReportingSettingsEvent {
    ReportingSettingsChanged {
        hospital_id: Uuid,
        allow_self_review: bool,
        changed_by: Uuid,
    },
    /// The hospital changed what its alliance may see of its studies as priors.
    PriorSharingChanged {
        hospital_id: Uuid,
        /// The alliance the grant is for (the hospital's own).
        alliance_id: Uuid,
        sharing: PriorSharing,
        changed_by: Uuid,
    },
}

crate::event_catalog!(
    ReportingSettingsEvent,
    "reporting",
    [ReportingSettingsChanged = 1, PriorSharingChanged = 1]
);

#[derive(Clone, Debug, PartialEq)]
pub enum ReportingSettingsCommand {
    /// Change the settings given; `None` keeps a setting as it is.
    Change {
        hospital_id: Uuid,
        alliance_id: Uuid,
        allow_self_review: Option<bool>,
        prior_sharing: Option<PriorSharing>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportingSettingsError {}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportingSettings {
    pub allow_self_review: bool,
    /// What the alliance's other hospitals may see of this hospital's studies as priors.
    pub prior_sharing: PriorSharing,
}

pub struct ReportingSettingsDecider;

impl Decider for ReportingSettingsDecider {
    type State = ReportingSettings;
    type Command = ReportingSettingsCommand;
    type Event = ReportingSettingsEvent;
    type Error = ReportingSettingsError;

    /// Only what changes is recorded; the settings given together are changed together.
    fn decide(
        s: &ReportingSettings,
        c: ReportingSettingsCommand,
        ctx: &Ctx,
    ) -> Result<Vec<ReportingSettingsEvent>, ReportingSettingsError> {
        let ReportingSettingsCommand::Change {
            hospital_id,
            alliance_id,
            allow_self_review,
            prior_sharing,
        } = c;
        let changed_by = ctx.actor.unwrap_or_default();
        let mut events = Vec::new();
        if let Some(allow) = allow_self_review.filter(|a| *a != s.allow_self_review) {
            events.push(ReportingSettingsEvent::ReportingSettingsChanged {
                hospital_id,
                allow_self_review: allow,
                changed_by,
            });
        }
        if let Some(sharing) = prior_sharing.filter(|p| *p != s.prior_sharing) {
            events.push(ReportingSettingsEvent::PriorSharingChanged {
                hospital_id,
                alliance_id,
                sharing,
                changed_by,
            });
        }
        Ok(events)
    }

    fn evolve(mut s: ReportingSettings, e: &ReportingSettingsEvent) -> ReportingSettings {
        match e {
            ReportingSettingsEvent::ReportingSettingsChanged { allow_self_review, .. } => {
                s.allow_self_review = *allow_self_review
            }
            ReportingSettingsEvent::PriorSharingChanged { sharing, .. } => s.prior_sharing = *sharing,
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    const HOSPITAL: Uuid = Uuid::from_u128(2);
    const ALLIANCE: Uuid = Uuid::from_u128(3);

    fn change(allow_self_review: Option<bool>, prior_sharing: Option<PriorSharing>) -> ReportingSettingsCommand {
        ReportingSettingsCommand::Change {
            hospital_id: HOSPITAL,
            alliance_id: ALLIANCE,
            allow_self_review,
            prior_sharing,
        }
    }

    fn sharing(s: PriorSharing) -> ReportingSettingsEvent {
        ReportingSettingsEvent::PriorSharingChanged {
            hospital_id: HOSPITAL,
            alliance_id: ALLIANCE,
            sharing: s,
            changed_by: Uuid::from_u128(1),
        }
    }

    fn ctx() -> Ctx {
        Ctx::at(chrono::Utc::now()).with_actor(Uuid::from_u128(1))
    }

    #[test]
    fn self_review_is_off_by_default_and_unchanged_settings_write_nothing() {
        assert!(!ReportingSettingsDecider::fold(&[]).allow_self_review);
        given::<ReportingSettingsDecider>(&[])
            .when(change(Some(false), None), &ctx())
            .then(&[]);
        given::<ReportingSettingsDecider>(&[])
            .when(change(Some(true), None), &ctx())
            .then(&[ReportingSettingsEvent::ReportingSettingsChanged {
                hospital_id: HOSPITAL,
                allow_self_review: true,
                changed_by: Uuid::from_u128(1),
            }]);
    }

    #[test]
    fn studies_are_not_shared_with_the_alliance_until_the_hospital_says_so() {
        assert_eq!(ReportingSettingsDecider::fold(&[]).prior_sharing, PriorSharing::None);
        given::<ReportingSettingsDecider>(&[])
            .when(change(None, Some(PriorSharing::None)), &ctx())
            .then(&[]);
        given::<ReportingSettingsDecider>(&[])
            .when(change(None, Some(PriorSharing::StudiesAndReports)), &ctx())
            .then(&[sharing(PriorSharing::StudiesAndReports)]);
        // Withdrawing the grant is recorded the same way.
        given::<ReportingSettingsDecider>(&[sharing(PriorSharing::Studies)])
            .when(change(None, Some(PriorSharing::None)), &ctx())
            .then(&[sharing(PriorSharing::None)]);
        given::<ReportingSettingsDecider>(&[sharing(PriorSharing::Studies)])
            .when(change(None, Some(PriorSharing::Studies)), &ctx())
            .then(&[]);
        let s = ReportingSettingsDecider::fold(&[sharing(PriorSharing::Studies)]);
        assert_eq!(s.prior_sharing, PriorSharing::Studies);
        assert!(!s.allow_self_review, "one setting does not move the other");
    }

    #[test]
    fn settings_given_together_change_together_and_a_change_of_nothing_writes_nothing() {
        given::<ReportingSettingsDecider>(&[])
            .when(change(Some(true), Some(PriorSharing::Studies)), &ctx())
            .then(&[
                ReportingSettingsEvent::ReportingSettingsChanged {
                    hospital_id: HOSPITAL,
                    allow_self_review: true,
                    changed_by: Uuid::from_u128(1),
                },
                sharing(PriorSharing::Studies),
            ]);
        given::<ReportingSettingsDecider>(&[sharing(PriorSharing::Studies)])
            .when(change(None, None), &ctx())
            .then(&[]);
    }
}
