//! A hospital's reporting rules (stream `reporting-settings-<hospital_id>`),
//! set by its administrators. Today one rule: may the preliminary author
//! also review (sign off) their own report? Default: no.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReportingSettingsEvent {
    ReportingSettingsChanged {
        hospital_id: Uuid,
        allow_self_review: bool,
        changed_by: Uuid,
    },
}

crate::event_catalog!(ReportingSettingsEvent, "reporting", [ReportingSettingsChanged = 1]);

#[derive(Clone, Debug, PartialEq)]
pub enum ReportingSettingsCommand {
    Change { hospital_id: Uuid, allow_self_review: bool },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportingSettingsError {}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportingSettings {
    pub allow_self_review: bool,
}

pub struct ReportingSettingsDecider;

impl Decider for ReportingSettingsDecider {
    type State = ReportingSettings;
    type Command = ReportingSettingsCommand;
    type Event = ReportingSettingsEvent;
    type Error = ReportingSettingsError;

    fn decide(
        s: &ReportingSettings,
        c: ReportingSettingsCommand,
        ctx: &Ctx,
    ) -> Result<Vec<ReportingSettingsEvent>, ReportingSettingsError> {
        let ReportingSettingsCommand::Change {
            hospital_id,
            allow_self_review,
        } = c;
        if s.allow_self_review == allow_self_review {
            return Ok(vec![]);
        }
        Ok(vec![ReportingSettingsEvent::ReportingSettingsChanged {
            hospital_id,
            allow_self_review,
            changed_by: ctx.actor.unwrap_or_default(),
        }])
    }

    fn evolve(mut s: ReportingSettings, e: &ReportingSettingsEvent) -> ReportingSettings {
        let ReportingSettingsEvent::ReportingSettingsChanged { allow_self_review, .. } = e;
        s.allow_self_review = *allow_self_review;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    #[test]
    fn self_review_is_off_by_default_and_unchanged_settings_write_nothing() {
        let ctx = Ctx::at(chrono::Utc::now()).with_actor(Uuid::from_u128(1));
        let change = |allow| ReportingSettingsCommand::Change {
            hospital_id: Uuid::from_u128(2),
            allow_self_review: allow,
        };
        assert!(!ReportingSettingsDecider::fold(&[]).allow_self_review);
        given::<ReportingSettingsDecider>(&[])
            .when(change(false), &ctx)
            .then(&[]);
        given::<ReportingSettingsDecider>(&[]).when(change(true), &ctx).then(&[
            ReportingSettingsEvent::ReportingSettingsChanged {
                hospital_id: Uuid::from_u128(2),
                allow_self_review: true,
                changed_by: Uuid::from_u128(1),
            },
        ]);
    }
}
