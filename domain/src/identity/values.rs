//! Value types of identity, parsed at the edge so code past it cannot hold a
//! bad one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A login name: 3–64 characters of `a-z 0-9 . _ - @`, compared lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LoginName(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a login name has 3 to 64 characters: letters, digits, '.', '_', '-' or '@'")]
pub struct InvalidLoginName;

impl LoginName {
    pub fn parse(raw: &str) -> Result<Self, InvalidLoginName> {
        let s = raw.trim().to_lowercase();
        let ok_len = (3..=64).contains(&s.chars().count());
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if ok_len && ok_chars {
            Ok(LoginName(s))
        } else {
            Err(InvalidLoginName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LoginName {
    type Error = InvalidLoginName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        LoginName::parse(&s)
    }
}

impl From<LoginName> for String {
    fn from(l: LoginName) -> String {
        l.0
    }
}

impl std::fmt::Display for LoginName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which kind of client acted: recorded on every event and every login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Pc,
    Mobile,
    Api,
    Dicom,
    System,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Pc => "pc",
            ClientKind::Mobile => "mobile",
            ClientKind::Api => "api",
            ClientKind::Dicom => "dicom",
            ClientKind::System => "system",
        }
    }
}

/// The level of the organization tree an account belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    PlatformOperator,
    AllianceAdministrator,
    HospitalAdministrator,
    User,
    Patient,
}

/// Where an account or an event belongs in the organization tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tenant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alliance_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital_id: Option<Uuid>,
}

impl Tenant {
    /// The platform itself (the operator's level).
    pub const PLATFORM: Tenant = Tenant {
        alliance_id: None,
        hospital_id: None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_are_lower_cased_and_checked() {
        assert_eq!(LoginName::parse(" Dr.Wang ").unwrap().as_str(), "dr.wang");
        assert!(LoginName::parse("ab").is_err());
        assert!(LoginName::parse("has space").is_err());
        assert!(LoginName::parse("名字名字").is_err());
        assert!(LoginName::parse(&"a".repeat(65)).is_err());
    }
}

/// A password that meets the policy: at least 8 characters, at least three of
/// upper case, lower case, digits and symbols, not containing the login name.
/// It is never serialized: only its argon2id hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("a password has at least 8 characters")]
    TooShort,
    #[error("a password has at most 128 characters")]
    TooLong,
    #[error("a password mixes at least three of: upper case, lower case, digits, symbols")]
    TooFewClasses,
    #[error("a password must not contain the login name")]
    ContainsLogin,
}

impl Password {
    pub fn parse(raw: &str, login: &LoginName) -> Result<Self, PasswordPolicyError> {
        let n = raw.chars().count();
        if n < 8 {
            return Err(PasswordPolicyError::TooShort);
        }
        if n > 128 {
            return Err(PasswordPolicyError::TooLong);
        }
        let classes = [
            raw.chars().any(|c| c.is_uppercase()),
            raw.chars().any(|c| c.is_lowercase()),
            raw.chars().any(|c| c.is_ascii_digit()),
            raw.chars().any(|c| !c.is_alphanumeric()),
        ];
        if classes.iter().filter(|c| **c).count() < 3 {
            return Err(PasswordPolicyError::TooFewClasses);
        }
        if raw.to_lowercase().contains(login.as_str()) {
            return Err(PasswordPolicyError::ContainsLogin);
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn the_password_policy_is_enforced() {
        let login = LoginName::parse("dr.wang").unwrap();
        assert_eq!(Password::parse("Ab1!", &login), Err(PasswordPolicyError::TooShort));
        assert_eq!(
            Password::parse("abcdefgh1", &login),
            Err(PasswordPolicyError::TooFewClasses)
        );
        assert_eq!(
            Password::parse("xDR.WANGx1", &login),
            Err(PasswordPolicyError::ContainsLogin)
        );
        assert!(Password::parse("abcdefg1!", &login).is_ok());
        assert!(Password::parse("ABCDEFG1a", &login).is_ok());
        assert!(Password::parse("影像科Abc12", &login).is_ok());
        assert_eq!(
            Password::parse(&"Aa1!".repeat(33), &login),
            Err(PasswordPolicyError::TooLong)
        );
    }
}
