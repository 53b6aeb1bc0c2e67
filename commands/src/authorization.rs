//! The one authorization path: every command and query asks here whether a
//! principal may act on a target in the organization tree.
//!
//! Two questions, in this order:
//! 1. **Visibility** — is the target inside the principal's part of the tree?
//!    If not, the answer is `not_found` (404): existence is never revealed
//!    across tenants.
//! 2. **Permission** — may the principal's level or roles do this? If not,
//!    `forbidden` (403).

use medledger_domain::identity::{AccountRole, Tenant};
use medledger_domain::organization::Permission;

use crate::error::{Error, Kind};
use crate::identity::Principal;

/// What a principal may want to do. The closed list grows with each context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the raw event log and its audit views.
    ReadAuditLog,
    /// Erase a data subject.
    ForgetSubject,
    CreateAlliance,
    /// Add a hospital (and its administrator) to an alliance.
    RegisterHospital,
    /// See organization units and people in the directory.
    ViewDirectory,
    /// Edit a hospital's profile, logo and QR code.
    EditHospital,
    ManageDepartments,
    ManageUsers,
    ManageRoles,
    /// The user operation log of a hospital or alliance.
    ViewOperationLog,
    /// Send DICOM instances into a hospital (STOW-RS, import).
    UploadStudies,
    /// See a hospital's studies (the worklist).
    ViewStudies,
    /// Show a study to a colleague (`study.share`).
    ShareStudies,
    /// Soft delete, restore, archive and retrieve studies (hospital administrators).
    ManageStudies,
    /// The hospital's storage plan and DICOM peers (hospital administrators).
    ConfigureImaging,
    /// Storage usage and the upload log: the operator, the alliance's administrators, the
    /// hospital's administrators.
    ViewStorage,
    /// Read reports, their history, priors and diffs.
    ViewReports,
    /// Open a report for editing (lock), save, insert phrases, release.
    EditReport,
    /// Submit a preliminary report (初诊).
    SubmitPreliminary,
    /// Review (sign off), send back or amend a report (审核).
    ReviewReport,
    /// Record a print of a final report.
    PrintReport,
    /// Take a report's edit lock away from its holder (audited).
    BreakReportLock,
    /// Define report templates, hospital-wide knowledge-base entries and
    /// the hospital's reporting settings.
    ManageTemplates,
}

/// May `principal` do `action` on objects of `target`?
pub fn authorize(principal: &Principal, action: Action, target: &Tenant) -> Result<(), Error> {
    // The platform itself is no secret; anything below it may be.
    if *target != Tenant::PLATFORM && !visible(principal, target) {
        return Err(Error::rejected(Kind::NotFound, "not_found", "no such resource"));
    }
    let level = principal.role;
    let hospital_admin_or = |p: Permission| level == AccountRole::HospitalAdministrator || principal.has(p);
    let in_hospital = principal.tenant.hospital_id.is_some();
    let allowed = match action {
        Action::ReadAuditLog | Action::ForgetSubject | Action::CreateAlliance => level == AccountRole::PlatformOperator,
        Action::RegisterHospital => level == AccountRole::AllianceAdministrator,
        Action::ViewDirectory => level != AccountRole::Patient,
        Action::EditHospital => hospital_admin_or(Permission::AdminHospital),
        Action::ManageDepartments => hospital_admin_or(Permission::AdminDepartments),
        Action::ManageUsers => hospital_admin_or(Permission::AdminUsers),
        Action::ManageRoles => hospital_admin_or(Permission::AdminRoles),
        Action::UploadStudies => principal.tenant.hospital_id.is_some() && principal.has(Permission::StudyUpload),
        Action::ViewStudies => principal.tenant.hospital_id.is_some() && principal.has(Permission::StudyView),
        Action::ShareStudies => principal.tenant.hospital_id.is_some() && principal.has(Permission::StudyShare),
        Action::ManageStudies | Action::ConfigureImaging => hospital_admin_or(Permission::AdminHospital),
        Action::ViewStorage => match level {
            AccountRole::PlatformOperator | AccountRole::AllianceAdministrator => true,
            _ => hospital_admin_or(Permission::AdminHospital),
        },
        Action::ViewReports => {
            principal.tenant.hospital_id.is_some()
                && (level == AccountRole::HospitalAdministrator
                    || principal.has(Permission::StudyView)
                    || principal.has(Permission::ReportEdit))
        }
        Action::EditReport => in_hospital && principal.has(Permission::ReportEdit),
        Action::SubmitPreliminary => in_hospital && principal.has(Permission::ReportPreliminary),
        Action::ReviewReport => in_hospital && principal.has(Permission::ReportReview),
        Action::PrintReport => in_hospital && principal.has(Permission::ReportPrint),
        Action::BreakReportLock | Action::ManageTemplates => in_hospital && level == AccountRole::HospitalAdministrator,
        Action::ViewOperationLog => match level {
            AccountRole::PlatformOperator | AccountRole::AllianceAdministrator => true,
            _ => hospital_admin_or(Permission::AdminAudit),
        },
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}

/// Is `target` inside the principal's own part of the organization tree?
pub fn visible(principal: &Principal, target: &Tenant) -> bool {
    let own = principal.tenant;
    match principal.role {
        AccountRole::PlatformOperator => true,
        AccountRole::AllianceAdministrator => own.alliance_id.is_some() && own.alliance_id == target.alliance_id,
        AccountRole::HospitalAdministrator | AccountRole::User | AccountRole::Patient => match target.hospital_id {
            Some(h) => own.hospital_id == Some(h),
            // An alliance-level object: visible to the alliance's hospitals.
            None => own.alliance_id.is_some() && own.alliance_id == target.alliance_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_domain::identity::ClientKind;
    use uuid::Uuid;

    fn principal(role: AccountRole, tenant: Tenant, permissions: &[Permission]) -> Principal {
        Principal {
            account_id: Uuid::nil(),
            session_id: Uuid::nil(),
            role,
            tenant,
            client: ClientKind::Pc,
            permissions: permissions.iter().copied().collect(),
        }
    }

    fn hospital(a: u128, h: u128) -> Tenant {
        Tenant {
            alliance_id: Some(Uuid::from_u128(a)),
            hospital_id: Some(Uuid::from_u128(h)),
        }
    }

    fn code(r: Result<(), Error>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(e) => e.classify().1,
        }
    }

    #[test]
    fn only_the_operator_reads_the_audit_log() {
        let h = hospital(1, 2);
        assert_eq!(
            code(authorize(
                &principal(AccountRole::PlatformOperator, Tenant::PLATFORM, &[]),
                Action::ReadAuditLog,
                &h
            )),
            "ok"
        );
        assert_eq!(
            code(authorize(
                &principal(AccountRole::HospitalAdministrator, h, &[]),
                Action::ReadAuditLog,
                &h
            )),
            "forbidden"
        );
    }

    #[test]
    fn other_tenants_see_nothing_and_lower_roles_are_forbidden() {
        let mine = hospital(1, 2);
        let sister = hospital(1, 3);
        let foreign = hospital(9, 4);
        let admin = principal(AccountRole::HospitalAdministrator, mine, &[]);
        assert_eq!(code(authorize(&admin, Action::ManageUsers, &mine)), "ok");
        assert_eq!(code(authorize(&admin, Action::ManageUsers, &sister)), "not_found");
        assert_eq!(code(authorize(&admin, Action::ManageUsers, &foreign)), "not_found");
        let doctor = principal(AccountRole::User, mine, &[Permission::ReportReview]);
        assert_eq!(code(authorize(&doctor, Action::ManageUsers, &mine)), "forbidden");
        assert_eq!(code(authorize(&doctor, Action::ViewDirectory, &mine)), "ok");
        let delegated = principal(AccountRole::User, mine, &[Permission::AdminUsers]);
        assert_eq!(code(authorize(&delegated, Action::ManageUsers, &mine)), "ok");
        assert_eq!(code(authorize(&delegated, Action::ManageRoles, &mine)), "forbidden");
        let alliance = principal(
            AccountRole::AllianceAdministrator,
            Tenant {
                alliance_id: Some(Uuid::from_u128(1)),
                hospital_id: None,
            },
            &[],
        );
        assert_eq!(code(authorize(&alliance, Action::RegisterHospital, &mine)), "ok");
        assert_eq!(
            code(authorize(&alliance, Action::ManageUsers, &mine)),
            "forbidden",
            "one level at a time"
        );
        assert_eq!(
            code(authorize(&alliance, Action::RegisterHospital, &foreign)),
            "not_found"
        );
        let operator = principal(AccountRole::PlatformOperator, Tenant::PLATFORM, &[]);
        assert_eq!(
            code(authorize(&operator, Action::CreateAlliance, &Tenant::PLATFORM)),
            "ok"
        );
        assert_eq!(code(authorize(&operator, Action::RegisterHospital, &mine)), "forbidden");
    }

    #[test]
    fn report_steps_follow_the_report_permissions() {
        let mine = hospital(1, 2);
        let doctor = principal(
            AccountRole::User,
            mine,
            &[
                Permission::StudyView,
                Permission::ReportEdit,
                Permission::ReportPreliminary,
                Permission::ReportPrint,
            ],
        );
        assert_eq!(code(authorize(&doctor, Action::EditReport, &mine)), "ok");
        assert_eq!(code(authorize(&doctor, Action::SubmitPreliminary, &mine)), "ok");
        assert_eq!(code(authorize(&doctor, Action::ReviewReport, &mine)), "forbidden");
        assert_eq!(code(authorize(&doctor, Action::BreakReportLock, &mine)), "forbidden");
        assert_eq!(
            code(authorize(&doctor, Action::ViewReports, &hospital(1, 3))),
            "not_found"
        );
        let reviewer = principal(AccountRole::User, mine, &[Permission::ReportReview]);
        assert_eq!(code(authorize(&reviewer, Action::ReviewReport, &mine)), "ok");
        let admin = principal(AccountRole::HospitalAdministrator, mine, &[]);
        assert_eq!(code(authorize(&admin, Action::BreakReportLock, &mine)), "ok");
        assert_eq!(code(authorize(&admin, Action::ManageTemplates, &mine)), "ok");
        assert_eq!(code(authorize(&admin, Action::ViewReports, &mine)), "ok");
    }
}
