//! Value types of the organization tree.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("a name has 1 to 100 characters")]
    Name,
    #[error("a hospital code has 2 to 32 letters, digits, '-' or '_'")]
    HospitalCode,
    #[error("a phone number has 5 to 20 digits, optionally a leading '+', spaces or '-'")]
    Phone,
    #[error("unknown time zone (use an IANA name such as Asia/Shanghai)")]
    TimeZone,
}

/// A display name of an organization unit or role: trimmed, 1–100 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let s = raw.trim();
        if (1..=100).contains(&s.chars().count()) && !s.chars().any(char::is_control) {
            Ok(Name(s.to_string()))
        } else {
            Err(ValueError::Name)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        Name::parse(&s)
    }
}
impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

/// A hospital's short code, unique on the platform (upper-cased).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HospitalCode(String);

impl HospitalCode {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let s = raw.trim().to_uppercase();
        if (2..=32).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            Ok(HospitalCode(s))
        } else {
            Err(ValueError::HospitalCode)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HospitalCode {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        HospitalCode::parse(&s)
    }
}
impl From<HospitalCode> for String {
    fn from(c: HospitalCode) -> String {
        c.0
    }
}

/// A phone number, normalized to `+` and digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let t = raw.trim();
        let (plus, rest) = match t.strip_prefix('+') {
            Some(r) => ("+", r),
            None => ("", t),
        };
        if !rest.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
            return Err(ValueError::Phone);
        }
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        if (5..=20).contains(&digits.len()) {
            Ok(PhoneNumber(format!("{plus}{digits}")))
        } else {
            Err(ValueError::Phone)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone; "calendar day" rules are decided in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    pub const DEFAULT: TimeZone = TimeZone(chrono_tz::Asia::Shanghai);

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map(TimeZone)
            .map_err(|_| ValueError::TimeZone)
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<String> for TimeZone {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        TimeZone::parse(&s)
    }
}
impl From<TimeZone> for String {
    fn from(t: TimeZone) -> String {
        t.0.name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parsed_at_the_edge() {
        assert_eq!(Name::parse("  放射科 ").unwrap().as_str(), "放射科");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(101)).is_err());
        assert_eq!(HospitalCode::parse("sh-rj01").unwrap().as_str(), "SH-RJ01");
        assert!(HospitalCode::parse("a").is_err());
        assert!(HospitalCode::parse("no spaces").is_err());
        assert_eq!(
            PhoneNumber::parse("+86 138-0013-8000").unwrap().as_str(),
            "+8613800138000"
        );
        assert!(PhoneNumber::parse("12").is_err());
        assert!(PhoneNumber::parse("call me").is_err());
        assert_eq!(String::from(TimeZone::parse("Asia/Shanghai").unwrap()), "Asia/Shanghai");
        assert!(TimeZone::parse("Mars/Olympus").is_err());
    }
}
