//! The alliance aggregate (stream `alliance-<id>`): a medical alliance
//! (医联体) created by the platform operator.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::Name;
use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AllianceEvent {
    AllianceCreated {
        alliance_id: Uuid,
        name: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_by: Option<Uuid>,
    },
}

crate::event_catalog!(AllianceEvent, "organization", [AllianceCreated = 1]);

#[derive(Clone, Debug, PartialEq)]
pub enum AllianceCommand {
    Create { alliance_id: Uuid, name: Name },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllianceError {
    #[error("the alliance already exists")]
    AlreadyExists,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllianceState {
    pub alliance: Option<(Uuid, Name)>,
}

pub struct Alliance;

impl Decider for Alliance {
    type State = AllianceState;
    type Command = AllianceCommand;
    type Event = AllianceEvent;
    type Error = AllianceError;

    fn decide(s: &AllianceState, c: AllianceCommand, ctx: &Ctx) -> Result<Vec<AllianceEvent>, AllianceError> {
        match c {
            AllianceCommand::Create { alliance_id, name } => {
                if s.alliance.is_some() {
                    return Err(AllianceError::AlreadyExists);
                }
                Ok(vec![AllianceEvent::AllianceCreated {
                    alliance_id,
                    name,
                    created_by: ctx.actor,
                }])
            }
        }
    }

    fn evolve(mut s: AllianceState, e: &AllianceEvent) -> AllianceState {
        match e {
            AllianceEvent::AllianceCreated { alliance_id, name, .. } => s.alliance = Some((*alliance_id, name.clone())),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    #[test]
    fn an_alliance_is_created_once() {
        let ctx = Ctx::at(chrono::Utc::now()).with_actor(Uuid::from_u128(9));
        let create = AllianceCommand::Create {
            alliance_id: Uuid::from_u128(1),
            name: Name::parse("华东医联体").unwrap(),
        };
        let created = AllianceEvent::AllianceCreated {
            alliance_id: Uuid::from_u128(1),
            name: Name::parse("华东医联体").unwrap(),
            created_by: Some(Uuid::from_u128(9)),
        };
        given::<Alliance>(&[])
            .when(create.clone(), &ctx)
            .then(std::slice::from_ref(&created));
        given::<Alliance>(&[created])
            .when(create, &ctx)
            .then_error(AllianceError::AlreadyExists);
    }
}
