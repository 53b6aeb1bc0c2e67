//! The department aggregate (stream `department-<id>`): a unit of a hospital.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::Name;
use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DepartmentEvent {
    DepartmentCreated {
        department_id: Uuid,
        hospital_id: Uuid,
        name: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
    DepartmentUpdated {
        department_id: Uuid,
        name: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
}

crate::event_catalog!(
    DepartmentEvent,
    "organization",
    [DepartmentCreated = 1, DepartmentUpdated = 1]
);

#[derive(Clone, Debug, PartialEq)]
pub enum DepartmentCommand {
    Create {
        department_id: Uuid,
        hospital_id: Uuid,
        name: Name,
        phone: Option<String>,
    },
    Update {
        name: Name,
        phone: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DepartmentError {
    #[error("the department already exists")]
    AlreadyExists,
    #[error("no such department")]
    NotFound,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DepartmentInfo {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub name: Name,
    pub phone: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DepartmentState {
    pub department: Option<DepartmentInfo>,
}

pub struct Department;

impl Decider for Department {
    type State = DepartmentState;
    type Command = DepartmentCommand;
    type Event = DepartmentEvent;
    type Error = DepartmentError;

    fn decide(s: &DepartmentState, c: DepartmentCommand, _: &Ctx) -> Result<Vec<DepartmentEvent>, DepartmentError> {
        match c {
            DepartmentCommand::Create {
                department_id,
                hospital_id,
                name,
                phone,
            } => {
                if s.department.is_some() {
                    return Err(DepartmentError::AlreadyExists);
                }
                Ok(vec![DepartmentEvent::DepartmentCreated {
                    department_id,
                    hospital_id,
                    name,
                    phone,
                }])
            }
            DepartmentCommand::Update { name, phone } => {
                let d = s.department.as_ref().ok_or(DepartmentError::NotFound)?;
                Ok(vec![DepartmentEvent::DepartmentUpdated {
                    department_id: d.id,
                    name,
                    phone,
                }])
            }
        }
    }

    fn evolve(mut s: DepartmentState, e: &DepartmentEvent) -> DepartmentState {
        match e {
            DepartmentEvent::DepartmentCreated {
                department_id,
                hospital_id,
                name,
                phone,
            } => {
                s.department = Some(DepartmentInfo {
                    id: *department_id,
                    hospital_id: *hospital_id,
                    name: name.clone(),
                    phone: phone.clone(),
                })
            }
            DepartmentEvent::DepartmentUpdated { name, phone, .. } => {
                if let Some(d) = s.department.as_mut() {
                    d.name = name.clone();
                    d.phone = phone.clone();
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    #[test]
    fn only_an_existing_department_is_updated() {
        let ctx = Ctx::at(chrono::Utc::now());
        given::<Department>(&[])
            .when(
                DepartmentCommand::Update {
                    name: Name::parse("放射科").unwrap(),
                    phone: None,
                },
                &ctx,
            )
            .then_error(DepartmentError::NotFound);
    }
}
