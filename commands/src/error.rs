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

    /// The stable code and kind of this error.
    pub fn classify(&self) -> (Kind, &'static str) {
        match self {
            Error::Rejected { kind, code, .. } => (*kind, code),
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
    use medledger_domain::identity::session::SessionError;

    impl Rejection for AccountError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            match self {
                AccountError::AlreadyRegistered => (Kind::Conflict, "already_exists"),
                AccountError::NotRegistered => (Kind::NotFound, "account_not_found"),
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

    impl Rejection for ErasureError {
        fn kind_and_code(&self) -> (Kind, &'static str) {
            (Kind::Conflict, "subject_already_forgotten")
        }
    }
}
