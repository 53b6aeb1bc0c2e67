//! Personal data: a value tied to the data subject it describes.
//!
//! In memory a [`PersonalData`] holds plaintext. The application layer seals
//! every such value with the subject's own key before an event is stored, and
//! opens it on read; when the subject is forgotten its key is destroyed and the
//! value reads back as erased. The wire shape is one JSON object so the store
//! can find these values anywhere in a payload:
//!
//! - plaintext: `{"$pii": {"subject": "<uuid>", "value": "Zhang San"}}`
//! - erased:    `{"$pii": {"subject": "<uuid>", "erased": true}}`
//! - sealed (stored form, produced by the store only):
//!   `{"$pii": {"subject": "<uuid>", "key_id": "...", "nonce": "...", "ciphertext": "..."}}`

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The person personal data is about: the key that encrypts it is theirs.
pub type SubjectId = Uuid;

/// The JSON key that marks a personal-data value in a payload.
pub const PII_MARKER: &str = "$pii";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonalData {
    subject: SubjectId,
    value: Option<String>,
}

impl PersonalData {
    pub fn new(subject: SubjectId, value: impl Into<String>) -> Self {
        PersonalData {
            subject,
            value: Some(value.into()),
        }
    }

    pub fn erased(subject: SubjectId) -> Self {
        PersonalData { subject, value: None }
    }

    pub fn subject(&self) -> SubjectId {
        self.subject
    }

    /// The plaintext, or `None` once the subject has been forgotten.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    pub fn is_erased(&self) -> bool {
        self.value.is_none()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "$pii")]
    pii: WireInner,
}

#[derive(Serialize, Deserialize)]
struct WireInner {
    subject: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    erased: bool,
}

impl Serialize for PersonalData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            pii: WireInner {
                subject: self.subject,
                value: self.value.clone(),
                erased: self.value.is_none(),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PersonalData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        match (w.pii.value, w.pii.erased) {
            (Some(v), false) => Ok(PersonalData::new(w.pii.subject, v)),
            (None, true) => Ok(PersonalData::erased(w.pii.subject)),
            _ => Err(serde::de::Error::custom(
                "personal data must be either a value or erased (sealed data must be opened first)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_round_trips_and_marks_erasure() {
        let s = Uuid::nil();
        let v = serde_json::to_value(PersonalData::new(s, "Zhang San")).unwrap();
        assert_eq!(v["$pii"]["value"], "Zhang San");
        let back: PersonalData = serde_json::from_value(v).unwrap();
        assert_eq!(back.value(), Some("Zhang San"));

        let e = serde_json::to_value(PersonalData::erased(s)).unwrap();
        assert_eq!(e["$pii"]["erased"], true);
        assert!(serde_json::from_value::<PersonalData>(e).unwrap().is_erased());
    }

    #[test]
    fn sealed_form_is_not_mistaken_for_plaintext() {
        let sealed =
            serde_json::json!({"$pii": {"subject": Uuid::nil(), "key_id": "k", "nonce": "n", "ciphertext": "c"}});
        assert!(serde_json::from_value::<PersonalData>(sealed).is_err());
    }
}
