//! The closed list of permissions a role may hold. Adding one is a code
//! change, documented in `docs/events.md`; roles cannot invent their own.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "study.view")]
    StudyView,
    #[serde(rename = "study.share")]
    StudyShare,
    /// Send studies in (STOW-RS, folder import) on the hospital's behalf.
    #[serde(rename = "study.upload")]
    StudyUpload,
    #[serde(rename = "report.edit")]
    ReportEdit,
    #[serde(rename = "report.preliminary")]
    ReportPreliminary,
    #[serde(rename = "report.review")]
    ReportReview,
    #[serde(rename = "report.print")]
    ReportPrint,
    #[serde(rename = "consultation.create")]
    ConsultationCreate,
    #[serde(rename = "consultation.review")]
    ConsultationReview,
    #[serde(rename = "stats.view")]
    StatsView,
    #[serde(rename = "stats.download")]
    StatsDownload,
    #[serde(rename = "qc.manage")]
    QcManage,
    /// Manage the hospital's users (create, disable, unfreeze, assign roles).
    #[serde(rename = "admin.users")]
    AdminUsers,
    /// Define roles and their permissions.
    #[serde(rename = "admin.roles")]
    AdminRoles,
    /// Manage departments.
    #[serde(rename = "admin.departments")]
    AdminDepartments,
    /// Edit the hospital profile, logo and QR code.
    #[serde(rename = "admin.hospital")]
    AdminHospital,
    /// Read the hospital's user operation log.
    #[serde(rename = "admin.audit")]
    AdminAudit,
}

impl Permission {
    pub const ALL: [Permission; 17] = [
        Permission::StudyView,
        Permission::StudyShare,
        Permission::StudyUpload,
        Permission::ReportEdit,
        Permission::ReportPreliminary,
        Permission::ReportReview,
        Permission::ReportPrint,
        Permission::ConsultationCreate,
        Permission::ConsultationReview,
        Permission::StatsView,
        Permission::StatsDownload,
        Permission::QcManage,
        Permission::AdminUsers,
        Permission::AdminRoles,
        Permission::AdminDepartments,
        Permission::AdminHospital,
        Permission::AdminAudit,
    ];

    /// Every `admin.*` permission: what a hospital administrator holds.
    pub const ADMIN: [Permission; 5] = [
        Permission::AdminUsers,
        Permission::AdminRoles,
        Permission::AdminDepartments,
        Permission::AdminHospital,
        Permission::AdminAudit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::StudyView => "study.view",
            Permission::StudyShare => "study.share",
            Permission::StudyUpload => "study.upload",
            Permission::ReportEdit => "report.edit",
            Permission::ReportPreliminary => "report.preliminary",
            Permission::ReportReview => "report.review",
            Permission::ReportPrint => "report.print",
            Permission::ConsultationCreate => "consultation.create",
            Permission::ConsultationReview => "consultation.review",
            Permission::StatsView => "stats.view",
            Permission::StatsDownload => "stats.download",
            Permission::QcManage => "qc.manage",
            Permission::AdminUsers => "admin.users",
            Permission::AdminRoles => "admin.roles",
            Permission::AdminDepartments => "admin.departments",
            Permission::AdminHospital => "admin.hospital",
            Permission::AdminAudit => "admin.audit",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The roles every hospital starts with.
pub fn builtin_roles() -> Vec<(&'static str, Vec<Permission>)> {
    use Permission::*;
    vec![
        (
            "doctor",
            vec![
                StudyView,
                StudyShare,
                ReportEdit,
                ReportPreliminary,
                ReportPrint,
                ConsultationCreate,
            ],
        ),
        (
            "reviewer",
            vec![
                StudyView,
                StudyShare,
                ReportEdit,
                ReportPreliminary,
                ReportReview,
                ReportPrint,
                ConsultationCreate,
                ConsultationReview,
            ],
        ),
        ("technician", vec![StudyView, StudyUpload, QcManage]),
        (
            "department_head",
            vec![
                StudyView,
                StudyShare,
                ReportEdit,
                ReportPreliminary,
                ReportReview,
                ReportPrint,
                ConsultationCreate,
                ConsultationReview,
                StatsView,
                StatsDownload,
                QcManage,
                StudyUpload,
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json() {
        for p in Permission::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
            assert_eq!(Permission::parse(p.name()), Some(p));
        }
        assert_eq!(Permission::parse("admin.everything"), None);
    }
}
