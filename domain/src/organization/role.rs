//! The role aggregate (stream `role-<id>`): a named set of permissions
//! defined by a hospital administrator.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::permission::Permission;
use super::values::Name;
use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RoleEvent {
    RoleDefined {
        role_id: Uuid,
        hospital_id: Uuid,
        name: Name,
        permissions: BTreeSet<Permission>,
        #[serde(default)]
        builtin: bool,
    },
    RolePermissionsChanged {
        role_id: Uuid,
        hospital_id: Uuid,
        permissions: BTreeSet<Permission>,
    },
}

crate::event_catalog!(RoleEvent, "organization", [RoleDefined = 1, RolePermissionsChanged = 1]);

#[derive(Clone, Debug, PartialEq)]
pub enum RoleCommand {
    Define {
        role_id: Uuid,
        hospital_id: Uuid,
        name: Name,
        permissions: BTreeSet<Permission>,
        builtin: bool,
    },
    ChangePermissions {
        permissions: BTreeSet<Permission>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("the role already exists")]
    AlreadyExists,
    #[error("no such role")]
    NotFound,
    #[error("a role needs at least one permission")]
    NoPermissions,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RoleInfo {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub name: Name,
    pub permissions: BTreeSet<Permission>,
    pub builtin: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleState {
    pub role: Option<RoleInfo>,
}

pub struct Role;

impl Decider for Role {
    type State = RoleState;
    type Command = RoleCommand;
    type Event = RoleEvent;
    type Error = RoleError;

    fn decide(s: &RoleState, c: RoleCommand, _: &Ctx) -> Result<Vec<RoleEvent>, RoleError> {
        match c {
            RoleCommand::Define {
                role_id,
                hospital_id,
                name,
                permissions,
                builtin,
            } => {
                if s.role.is_some() {
                    return Err(RoleError::AlreadyExists);
                }
                if permissions.is_empty() {
                    return Err(RoleError::NoPermissions);
                }
                Ok(vec![RoleEvent::RoleDefined {
                    role_id,
                    hospital_id,
                    name,
                    permissions,
                    builtin,
                }])
            }
            RoleCommand::ChangePermissions { permissions } => {
                let r = s.role.as_ref().ok_or(RoleError::NotFound)?;
                if permissions.is_empty() {
                    return Err(RoleError::NoPermissions);
                }
                if permissions == r.permissions {
                    return Ok(vec![]);
                }
                Ok(vec![RoleEvent::RolePermissionsChanged {
                    role_id: r.id,
                    hospital_id: r.hospital_id,
                    permissions,
                }])
            }
        }
    }

    fn evolve(mut s: RoleState, e: &RoleEvent) -> RoleState {
        match e {
            RoleEvent::RoleDefined {
                role_id,
                hospital_id,
                name,
                permissions,
                builtin,
            } => {
                s.role = Some(RoleInfo {
                    id: *role_id,
                    hospital_id: *hospital_id,
                    name: name.clone(),
                    permissions: permissions.clone(),
                    builtin: *builtin,
                })
            }
            RoleEvent::RolePermissionsChanged { permissions, .. } => {
                if let Some(r) = s.role.as_mut() {
                    r.permissions = permissions.clone();
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
    fn a_role_holds_at_least_one_permission_and_unchanged_sets_write_nothing() {
        let ctx = Ctx::at(chrono::Utc::now());
        let perms: BTreeSet<_> = [Permission::ReportReview].into();
        let defined = RoleEvent::RoleDefined {
            role_id: Uuid::from_u128(5),
            hospital_id: Uuid::from_u128(2),
            name: Name::parse("reviewer").unwrap(),
            permissions: perms.clone(),
            builtin: false,
        };
        given::<Role>(&[])
            .when(
                RoleCommand::Define {
                    role_id: Uuid::from_u128(5),
                    hospital_id: Uuid::from_u128(2),
                    name: Name::parse("empty").unwrap(),
                    permissions: BTreeSet::new(),
                    builtin: false,
                },
                &ctx,
            )
            .then_error(RoleError::NoPermissions);
        given::<Role>(std::slice::from_ref(&defined))
            .when(RoleCommand::ChangePermissions { permissions: perms }, &ctx)
            .then(&[]);
    }
}
