//! The one authorization path: every command and query asks here whether a
//! principal may act, and on which tenant.

use medledger_domain::identity::{AccountRole, Tenant};

use crate::error::Error;
use crate::identity::Principal;

/// What a principal may want to do. The closed list grows with each context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read the raw event log and the audit views over it.
    AuditRead,
    /// Erase a data subject.
    SubjectForget,
}

/// May `principal` do `permission` on objects of `target`?
pub fn authorize(principal: &Principal, permission: Permission, target: &Tenant) -> Result<(), Error> {
    let allowed = match permission {
        Permission::AuditRead | Permission::SubjectForget => {
            principal.role == AccountRole::PlatformOperator && within(principal, target)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}

/// Is `target` inside the principal's own part of the organization tree?
fn within(principal: &Principal, target: &Tenant) -> bool {
    match principal.role {
        AccountRole::PlatformOperator => true,
        AccountRole::AllianceAdministrator => {
            principal.tenant.alliance_id.is_some() && principal.tenant.alliance_id == target.alliance_id
        }
        _ => principal.tenant.hospital_id.is_some() && principal.tenant.hospital_id == target.hospital_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_domain::identity::ClientKind;
    use uuid::Uuid;

    fn principal(role: AccountRole, tenant: Tenant) -> Principal {
        Principal {
            account_id: Uuid::nil(),
            session_id: Uuid::nil(),
            role,
            tenant,
            client: ClientKind::Pc,
        }
    }

    #[test]
    fn only_the_operator_reads_the_audit_log() {
        let h = Tenant {
            alliance_id: Some(Uuid::from_u128(1)),
            hospital_id: Some(Uuid::from_u128(2)),
        };
        assert!(authorize(
            &principal(AccountRole::PlatformOperator, Tenant::PLATFORM),
            Permission::AuditRead,
            &h
        )
        .is_ok());
        for role in [
            AccountRole::AllianceAdministrator,
            AccountRole::HospitalAdministrator,
            AccountRole::User,
            AccountRole::Patient,
        ] {
            assert!(authorize(&principal(role, h), Permission::AuditRead, &h).is_err());
        }
    }
}
