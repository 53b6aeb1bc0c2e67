//! The application layer's one error type. Every rejection carries a stable
//! machine code; the HTTP layer maps [`Kind`] to a status once.

use crate::codec::CodecError;
use crate::crypto::CryptoError;
use crate::store::StoreError;

/// What sort of refusal, independent of transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invalid,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    /// It existed but is no longer usable (expired, used up).
    Gone,
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Rejected {
        kind: Kind,
        code: &'static str,
        message: String,
    },
    /// A refusal that carries structured facts for the client (e.g. who
    /// holds a lock and since when); they become extra problem members.
    #[error("{message}")]
    RejectedWith {
        kind: Kind,
        code: &'static str,
        message: String,
        details: serde_json::Value,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn rejected(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        Error::Rejected {
            kind,
            code,
            message: message.into(),
        }
    }

    pub fn forbidden() -> Self {
        Self::rejected(Kind::Forbidden, "forbidden", "you are not allowed to do this")
    }

    pub fn unauthenticated() -> Self {
        Self::rejected(
            Kind::Unauthenticated,
            "unauthenticated",
            "a valid bearer token is required",
        )
    }

    /// Structured facts of the refusal, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        match self {
            Error::RejectedWith { details, .. } => Some(details),
            _ => None,
        }
    }

    /// The stable code and kind of this error.
    pub fn classify(&self) -> (Kind, &'static str) {
        match self {
            Error::Rejected { kind, code, .. } | Error::RejectedWith { kind, code, .. } => (*kind, code),
            Error::Store(StoreError::WrongExpectedVersion { .. }) => (Kind::Conflict, "concurrent_modification"),
            Error::Store(StoreError::GuardTaken { .. }) => (Kind::Conflict, "already_exists"),
            Error::Store(StoreError::DuplicateEventMismatch(_)) => (Kind::Conflict, "duplicate_event"),
            Error::Store(StoreError::InvalidRequest(_)) => (Kind::Invalid, "invalid_request"),
            Error::Store(StoreError::WriterStopped) | Error::Store(StoreError::Database(_)) => {
                (Kind::Unavailable, "store_unavailable")
            }
            Error::Store(StoreError::Corrupt(_)) => (Kind::Unavailable, "store_corrupt"),
            Error::Crypto(CryptoError::SubjectForgotten(_)) => (Kind::Conflict, "subject_forgotten"),
            Error::Crypto(_) | Error::Codec(_) | Error::Internal(_) => (Kind::Unavailable, "internal_error"),
        }
    }
}

/// Domain errors name their own code and kind here, in one table.
pub trait Rejection: std::fmt::Display {
    fn kind_and_code(&self) -> (Kind, &'static str);
}

impl<T: Rejection> From<T> for Error {
    fn from(e: T) -> Self {
        let (kind, code) = e.kind_and_code();
        Error::rejected(kind, code, e.to_string())
    }
}

mod table {
    use super::{Kind, Rejection};
    use medledger_domain::administration::{AuditError, ErasureError};
    use medledger_domain::identity::account::AccountError;
    use medledger_domain::identity::login_ticket::LoginTicketError;
    use medledger_domain::identity::password_reset::PasswordResetError;
    use medledger_domain::identity::session::SessionError;
    use medledger_domain::identity::values::{InvalidLoginName, PasswordPolicyError};
    use medledger_domain::organization::alliance::AllianceError;
    use medledger_domain::organization::department::DepartmentError;
    use medledger_domain::organization::hospital::HospitalError;
    use medledger_domain::organization::role::RoleError;
    use medledger_domain::organization::values::ValueError;
    use medledger_domain::reporting::knowledge::KnowledgeError;
    use medledger_domain::reporting::priors::PriorViewError;
    use medledger_domain::reporting::report::ReportError;
    use medledger_domain::reporting::settings::ReportingSettingsError;
    use medledger_domain::reporting::template::TemplateError;

    impl Rejection for AccountError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                AccountError::AlreadyRegistered => (Kind::Conflict, "already_exists"),
                AccountError::NotRegistered => (Kind::NotFound, "account_not_found"),
                AccountError::NotFrozen => (Kind::Conflict, "account_not_frozen"),
                AccountError::AlreadyDisabled => (Kind::Conflict, "account_already_disabled"),
                AccountError::NotDisabled => (Kind::Conflict, "account_not_disabled"),
                AccountError::PasswordReused => (Kind::Invalid, "password_reused"),
            }
        }
    }

    impl Rejection for LoginTicketError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                LoginTicketError::NotFound => (Kind::NotFound, "ticket_not_found"),
                LoginTicketError::AlreadyIssued => (Kind::Conflict, "already_exists"),
                LoginTicketError::Expired => (Kind::Gone, "ticket_expired"),
                LoginTicketError::AlreadyConfirmed => (Kind::Conflict, "ticket_already_confirmed"),
                LoginTicketError::NotConfirmed => (Kind::Conflict, "ticket_not_confirmed"),
                LoginTicketError::AlreadyRedeemed => (Kind::Gone, "ticket_used"),
            }
        }
    }

    impl Rejection for PasswordResetError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                PasswordResetError::NotFound => (Kind::Invalid, "reset_code_invalid"),
                PasswordResetError::AlreadyIssued => (Kind::Conflict, "already_exists"),
                PasswordResetError::Expired => (Kind::Gone, "reset_code_expired"),
                PasswordResetError::Dead => (Kind::Gone, "reset_code_dead"),
            }
        }
    }

    impl Rejection for PasswordPolicyError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            (Kind::Invalid, "weak_password")
        }
    }

    impl Rejection for InvalidLoginName {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            (Kind::Invalid, "invalid_login_name")
        }
    }

    impl Rejection for ValueError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                ValueError::Name => (Kind::Invalid, "invalid_name"),
                ValueError::HospitalCode => (Kind::Invalid, "invalid_hospital_code"),
                ValueError::Phone => (Kind::Invalid, "invalid_phone"),
                ValueError::TimeZone => (Kind::Invalid, "invalid_time_zone"),
            }
        }
    }

    impl Rejection for AllianceError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            (Kind::Conflict, "already_exists")
        }
    }

    impl Rejection for HospitalError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                HospitalError::AlreadyExists => (Kind::Conflict, "already_exists"),
                HospitalError::NotFound => (Kind::NotFound, "not_found"),
                HospitalError::AddressTooLong => (Kind::Invalid, "invalid_address"),
                HospitalError::BadQrUrl => (Kind::Invalid, "invalid_qr_url"),
            }
        }
    }

    impl Rejection for DepartmentError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                DepartmentError::AlreadyExists => (Kind::Conflict, "already_exists"),
                DepartmentError::NotFound => (Kind::NotFound, "not_found"),
            }
        }
    }

    impl Rejection for medledger_domain::imaging::study::StudyError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            use medledger_domain::imaging::study::StudyError as E;
            match self {
                E::WrongStudy { .. } => (Kind::Conflict, "instance_in_other_study"),
                E::NoSuchStudy => (Kind::NotFound, "not_found"),
                E::Deleted => (Kind::Conflict, "study_deleted"),
                E::NotDeleted => (Kind::Conflict, "study_not_deleted"),
                E::Archived => (Kind::Conflict, "study_archived"),
                E::NotArchived => (Kind::Conflict, "study_not_archived"),
                E::Erased => (Kind::Gone, "study_erased"),
                E::ShareWithSelf => (Kind::Invalid, "share_with_self"),
                E::NoteTooLong => (Kind::Invalid, "note_too_long"),
                E::ReasonRequired => (Kind::Invalid, "reason_required"),
                E::NoActor => (Kind::Forbidden, "actor_required"),
                E::DigestsNotComparable { .. } => (Kind::Conflict, "digests_not_comparable"),
            }
        }
    }

    impl Rejection for medledger_domain::imaging::worklist_columns::WorklistColumnsError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            (Kind::Invalid, "invalid_columns")
        }
    }

    impl Rejection for medledger_domain::imaging::settings::ImagingSettingsError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            use medledger_domain::imaging::settings::ImagingSettingsError as E;
            match self {
                E::BadPlanText => (Kind::Invalid, "invalid_storage_plan"),
                E::BadValidity => (Kind::Invalid, "invalid_storage_validity"),
                E::BadAeTitle => (Kind::Invalid, "invalid_ae_title"),
                E::DescriptionTooLong => (Kind::Invalid, "description_too_long"),
                E::UnknownPeer => (Kind::NotFound, "not_found"),
            }
        }
    }

    impl Rejection for RoleError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                RoleError::AlreadyExists => (Kind::Conflict, "already_exists"),
                RoleError::NotFound => (Kind::NotFound, "not_found"),
                RoleError::NoPermissions => (Kind::Invalid, "role_without_permissions"),
            }
        }
    }

    impl Rejection for SessionError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                SessionError::AlreadyStarted => (Kind::Conflict, "session_exists"),
                SessionError::NotStarted => (Kind::NotFound, "session_not_found"),
                SessionError::AlreadyEnded => (Kind::Conflict, "session_ended"),
            }
        }
    }

    impl Rejection for AuditError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            (Kind::Unauthenticated, "unauthenticated")
        }
    }

    impl From<ReportError> for super::Error {
        fn from(e: ReportError) -> Self {
            let (kind, code) = match &e {
                ReportError::AlreadyExists => (Kind::Conflict, "report_exists"),
                ReportError::NotFound => (Kind::NotFound, "not_found"),
                ReportError::Locked {
                    holder,
                    since,
                    expires_at,
                } => {
                    return super::Error::RejectedWith {
                        kind: Kind::Conflict,
                        code: "report_locked",
                        message: e.to_string(),
                        details: serde_json::json!({
                            "holder": holder, "since": since, "expires_at": expires_at,
                        }),
                    }
                }
                ReportError::NotLockHolder => (Kind::Conflict, "report_lock_not_held"),
                ReportError::NotLocked => (Kind::Conflict, "report_not_locked"),
                ReportError::StaleVersion { expected, current } => {
                    return super::Error::RejectedWith {
                        kind: Kind::Conflict,
                        code: "stale_report_version",
                        message: e.to_string(),
                        details: serde_json::json!({"expected_version": expected, "current_version": current}),
                    }
                }
                ReportError::WrongStatus { .. } => (Kind::Conflict, "report_wrong_status"),
                ReportError::SelfReview => (Kind::Forbidden, "self_review_not_allowed"),
                ReportError::Empty => (Kind::Invalid, "report_empty"),
                ReportError::InvalidContent(_) => (Kind::Invalid, "invalid_report_content"),
                ReportError::InvalidReason => (Kind::Invalid, "invalid_reason"),
                ReportError::InvalidCopies => (Kind::Invalid, "invalid_copies"),
            };
            super::Error::rejected(kind, code, e.to_string())
        }
    }

    impl Rejection for TemplateError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                TemplateError::AlreadyExists => (Kind::Conflict, "already_exists"),
                TemplateError::NotFound => (Kind::NotFound, "not_found"),
                TemplateError::Retired => (Kind::Conflict, "template_retired"),
                TemplateError::Invalid(_) => (Kind::Invalid, "invalid_template"),
            }
        }
    }

    impl Rejection for KnowledgeError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                KnowledgeError::AlreadyExists => (Kind::Conflict, "already_exists"),
                KnowledgeError::NotFound => (Kind::NotFound, "not_found"),
                KnowledgeError::Retired => (Kind::Conflict, "knowledge_entry_retired"),
                KnowledgeError::Invalid(_) => (Kind::Invalid, "invalid_knowledge_entry"),
            }
        }
    }

    impl Rejection for ReportingSettingsError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match *self {}
        }
    }

    impl Rejection for PriorViewError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                PriorViewError::AnonymousViewer => (Kind::Unauthenticated, "unauthenticated"),
                PriorViewError::OwnStudy => (Kind::NotFound, "not_found"),
            }
        }
    }

    impl Rejection for ErasureError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            (Kind::Conflict, "subject_already_forgotten")
        }
    }
}
