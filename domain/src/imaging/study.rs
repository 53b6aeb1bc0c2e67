//! The study aggregate (stream `study-<hospital_id>.<study_instance_uid>`):
//! the instances a hospital received for one study.
//!
//! Rules:
//! - The same SOP Instance UID with the same content (SHA-256 of the bytes
//!   as received) again is a duplicate: counted, not stored twice.
//! - The same SOP Instance UID with *different* content is a conflict: the
//!   first instance stays the study's; the newcomer is kept aside (its own
//!   blob key) and recorded for review. Nothing is ever overwritten.
//!
//! Patient attributes are personal data, sealed per patient (the subject is
//! a keyed pseudonym of hospital and Patient ID, chosen by the caller).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};
use crate::pii::PersonalData;

/// How an instance arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    StowRs,
    CStore,
    FolderImport,
}

/// The patient as the instance describes them (personal data sealed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatientAttributes {
    pub patient_id: PersonalData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PersonalData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<PersonalData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
}

/// Study, series and instance attributes kept for the worklist and QIDO.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceAttributes {
    pub series_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax_uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referring_physician: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_number: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_number: Option<i32>,
    pub number_of_frames: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<u16>,
}

/// The stored object: where, how big, which content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    pub blob_key: String,
    pub size: u64,
    pub sha256: String,
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StudyEvent {
    InstanceStored {
        hospital_id: Uuid,
        study_instance_uid: String,
        sop_instance_uid: String,
        patient: PatientAttributes,
        attributes: InstanceAttributes,
        object: StoredObject,
        arrival: Arrival,
    },
    InstanceDuplicateIgnored {
        sop_instance_uid: String,
        sha256: String,
        arrival: Arrival,
    },
    InstanceConflictRecorded {
        sop_instance_uid: String,
        kept_sha256: String,
        /// The differing object, kept aside for review.
        received: StoredObject,
        arrival: Arrival,
    },
}

crate::event_catalog!(
    StudyEvent,
    "imaging",
    [
        InstanceStored = 1,
        InstanceDuplicateIgnored = 1,
        InstanceConflictRecorded = 1
    ]
);

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum StudyCommand {
    ReceiveInstance {
        hospital_id: Uuid,
        study_instance_uid: String,
        sop_instance_uid: String,
        patient: PatientAttributes,
        attributes: InstanceAttributes,
        object: StoredObject,
        arrival: Arrival,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StudyError {
    #[error("the instance belongs to study {actual}, not {expected}")]
    WrongStudy { expected: String, actual: String },
}

/// What a study holds: each instance's content hash, and how much is stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StudyState {
    pub study_instance_uid: Option<String>,
    pub instances: BTreeMap<String, String>,
    pub stored_bytes: u64,
    pub duplicates: u64,
    pub conflicts: u64,
}

pub struct Study;

impl Decider for Study {
    type State = StudyState;
    type Command = StudyCommand;
    type Event = StudyEvent;
    type Error = StudyError;

    fn decide(s: &StudyState, c: StudyCommand, _: &Ctx) -> Result<Vec<StudyEvent>, StudyError> {
        let StudyCommand::ReceiveInstance {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            patient,
            attributes,
            object,
            arrival,
        } = c;
        if let Some(existing) = &s.study_instance_uid {
            if *existing != study_instance_uid {
                return Err(StudyError::WrongStudy {
                    expected: existing.clone(),
                    actual: study_instance_uid,
                });
            }
        }
        Ok(vec![match s.instances.get(&sop_instance_uid) {
            None => StudyEvent::InstanceStored {
                hospital_id,
                study_instance_uid,
                sop_instance_uid,
                patient,
                attributes,
                object,
                arrival,
            },
            Some(kept) if *kept == object.sha256 => StudyEvent::InstanceDuplicateIgnored {
                sop_instance_uid,
                sha256: object.sha256,
                arrival,
            },
            Some(kept) => StudyEvent::InstanceConflictRecorded {
                sop_instance_uid,
                kept_sha256: kept.clone(),
                received: object,
                arrival,
            },
        }])
    }

    fn evolve(mut s: StudyState, e: &StudyEvent) -> StudyState {
        match e {
            StudyEvent::InstanceStored {
                study_instance_uid,
                sop_instance_uid,
                object,
                ..
            } => {
                s.study_instance_uid = Some(study_instance_uid.clone());
                s.instances.insert(sop_instance_uid.clone(), object.sha256.clone());
                s.stored_bytes += object.size;
            }
            StudyEvent::InstanceDuplicateIgnored { .. } => s.duplicates += 1,
            StudyEvent::InstanceConflictRecorded { .. } => s.conflicts += 1,
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    const H: Uuid = Uuid::from_u128(2);

    fn receive(sop: &str, sha: &str) -> StudyCommand {
        StudyCommand::ReceiveInstance {
            hospital_id: H,
            study_instance_uid: "1.2.3".into(),
            sop_instance_uid: sop.into(),
            patient: PatientAttributes {
                patient_id: PersonalData::new(Uuid::from_u128(9), "P001"),
                name: None,
                birth_date: None,
                sex: Some("F".into()),
            },
            attributes: InstanceAttributes::default(),
            object: StoredObject {
                blob_key: format!("k/{sha}"),
                size: 10,
                sha256: sha.into(),
            },
            arrival: Arrival::StowRs,
        }
    }

    fn stored(sop: &str, sha: &str) -> StudyEvent {
        let StudyCommand::ReceiveInstance {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            patient,
            attributes,
            object,
            arrival,
        } = receive(sop, sha);
        StudyEvent::InstanceStored {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            patient,
            attributes,
            object,
            arrival,
        }
    }

    #[test]
    fn a_new_instance_is_stored() {
        given::<Study>(&[])
            .when(receive("1.2.3.1", "aa"), &Ctx::at(chrono::Utc::now()))
            .then(&[stored("1.2.3.1", "aa")]);
    }

    #[test]
    fn the_same_content_again_is_a_duplicate_and_different_content_a_conflict() {
        let ctx = Ctx::at(chrono::Utc::now());
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(receive("1.2.3.1", "aa"), &ctx)
            .then(&[StudyEvent::InstanceDuplicateIgnored {
                sop_instance_uid: "1.2.3.1".into(),
                sha256: "aa".into(),
                arrival: Arrival::StowRs,
            }]);
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(receive("1.2.3.1", "bb"), &ctx)
            .then(&[StudyEvent::InstanceConflictRecorded {
                sop_instance_uid: "1.2.3.1".into(),
                kept_sha256: "aa".into(),
                received: StoredObject {
                    blob_key: "k/bb".into(),
                    size: 10,
                    sha256: "bb".into(),
                },
                arrival: Arrival::StowRs,
            }]);
        let state = Study::fold(&[stored("1.2.3.1", "aa"), stored("1.2.3.2", "cc")]);
        assert_eq!((state.instances.len(), state.stored_bytes), (2, 20));
    }
}
