//! The study aggregate (stream `study-<hospital_id>.<study_instance_uid>`):
//! the instances a hospital received for one study.
//!
//! Rules:
//! - The same SOP Instance UID with the same content (the digest of the bytes
//!   as received, see [`ContentDigest`]) again is a duplicate: counted, not
//!   stored twice.
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
    pub digest: ContentDigest,
}

/// The digest of an object's bytes as received, named by its algorithm: `blake3:<hex>`
/// for objects stored since schema version 2 of the instance events, `sha256:<hex>` for
/// those stored before (version 1 recorded a bare SHA-256 in a `sha256` field; the
/// upcasters name it). Two digests say the same content only under the same algorithm.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentDigest(String);

impl ContentDigest {
    pub const BLAKE3: &'static str = "blake3";
    pub const SHA256: &'static str = "sha256";

    pub fn new(algorithm: &str, hex: &str) -> Self {
        ContentDigest(format!("{algorithm}:{hex}"))
    }

    /// Reads a digest as written (`algorithm:hex`); a bare 64-digit hex string is a
    /// SHA-256, as version 1 wrote it.
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once(':') {
            Some((algorithm, hex)) if !algorithm.is_empty() && is_hex(hex) => Some(ContentDigest(text.to_string())),
            None if text.len() == 64 && is_hex(text) => Some(ContentDigest::new(Self::SHA256, text)),
            _ => None,
        }
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or_default()
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
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
        /// The whole data set as DICOM JSON (PS3.18 F.2), sealed with the patient's key:
        /// WADO-RS `/metadata` is answered from it, and forgetting the patient erases it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dataset: Option<PersonalData>,
    },
    InstanceDuplicateIgnored {
        sop_instance_uid: String,
        digest: ContentDigest,
        arrival: Arrival,
    },
    InstanceConflictRecorded {
        sop_instance_uid: String,
        kept_digest: ContentDigest,
        /// The differing object, kept aside for review.
        received: StoredObject,
        arrival: Arrival,
    },
    /// Shown to a colleague of the same hospital (a notification entry for them).
    StudyShared {
        hospital_id: Uuid,
        study_instance_uid: String,
        shared_with: Uuid,
        shared_by: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Hidden from lists and retrieval by an administrator; restorable.
    StudyDeleted {
        hospital_id: Uuid,
        study_instance_uid: String,
        deleted_by: Uuid,
        reason: String,
    },
    StudyRestored {
        hospital_id: Uuid,
        study_instance_uid: String,
        restored_by: Uuid,
    },
    /// Every object of the study was moved to the archive tier (`blob_prefix` + key).
    StudyArchived {
        hospital_id: Uuid,
        study_instance_uid: String,
        archived_by: Uuid,
        blob_prefix: String,
        objects: u64,
        bytes: u64,
    },
    /// The study's objects were brought back from the archive tier.
    StudyRetrieved {
        hospital_id: Uuid,
        study_instance_uid: String,
        retrieved_by: Uuid,
        objects: u64,
        bytes: u64,
    },
    /// The patient was forgotten: every object of the study (and its renders) was deleted
    /// from the object store.
    StudyObjectsErased {
        hospital_id: Uuid,
        study_instance_uid: String,
        patient_subject: Uuid,
        objects: u64,
    },
}

crate::event_catalog!(
    StudyEvent,
    "imaging",
    [
        InstanceStored = 2,
        InstanceDuplicateIgnored = 2,
        InstanceConflictRecorded = 2,
        StudyShared = 1,
        StudyDeleted = 1,
        StudyRestored = 1,
        StudyArchived = 1,
        StudyRetrieved = 1,
        StudyObjectsErased = 1
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
        dataset: Option<PersonalData>,
    },
    Share {
        shared_with: Uuid,
        note: Option<String>,
    },
    Delete {
        reason: String,
    },
    Restore,
    /// The objects were copied to the archive tier under `blob_prefix`.
    Archive {
        blob_prefix: String,
    },
    /// The objects were copied back from the archive tier.
    Retrieve,
    /// The patient was forgotten and the objects deleted.
    EraseObjects {
        patient_subject: Uuid,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StudyError {
    #[error("the instance belongs to study {actual}, not {expected}")]
    WrongStudy { expected: String, actual: String },
    #[error("no such study")]
    NoSuchStudy,
    #[error("the study is deleted")]
    Deleted,
    #[error("the study is not deleted")]
    NotDeleted,
    #[error("the study is archived; retrieve it first")]
    Archived,
    #[error("the study is not archived")]
    NotArchived,
    #[error("the study's objects were erased with its patient")]
    Erased,
    #[error("a study cannot be shared with the person sharing it")]
    ShareWithSelf,
    #[error("the note is longer than 500 characters")]
    NoteTooLong,
    #[error("a reason of 1 to 500 characters is required")]
    ReasonRequired,
    #[error("this action needs an authenticated actor")]
    NoActor,
    /// The kept instance's digest uses another algorithm: the caller digests the arrival
    /// the same way and asks again (a duplicate must never look like a conflict).
    #[error("the kept instance was digested with {kept}, the arrival with {received}")]
    DigestsNotComparable { kept: String, received: String },
}

/// What a study holds: each instance's content hash and object, how much is stored, and
/// where it is in its life (deleted, archived, erased).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StudyState {
    pub hospital_id: Option<Uuid>,
    pub study_instance_uid: Option<String>,
    /// SOP Instance UID → content hash of the instance kept.
    pub instances: BTreeMap<String, ContentDigest>,
    /// SOP Instance UID → blob key of the instance kept (hot tier).
    pub objects: BTreeMap<String, String>,
    pub stored_bytes: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub deleted: bool,
    /// The archive prefix while the study is archived.
    pub archived: Option<String>,
    pub erased: bool,
}

impl StudyState {
    /// A state that knows only one instance: enough to decide an arrival of that SOP
    /// Instance UID (new, duplicate or conflict) without loading the whole study.
    pub fn knowing(study_instance_uid: &str, sop_instance_uid: &str, digest: Option<ContentDigest>) -> Self {
        let mut s = StudyState {
            study_instance_uid: Some(study_instance_uid.to_string()),
            ..Default::default()
        };
        if let Some(digest) = digest {
            s.instances.insert(sop_instance_uid.to_string(), digest);
        }
        s
    }
}

pub struct Study;

const MAX_TEXT: usize = 500;

impl Decider for Study {
    type State = StudyState;
    type Command = StudyCommand;
    type Event = StudyEvent;
    type Error = StudyError;

    fn decide(s: &StudyState, c: StudyCommand, ctx: &Ctx) -> Result<Vec<StudyEvent>, StudyError> {
        if let StudyCommand::ReceiveInstance {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            patient,
            attributes,
            object,
            arrival,
            dataset,
        } = c
        {
            if let Some(existing) = &s.study_instance_uid {
                if *existing != study_instance_uid {
                    return Err(StudyError::WrongStudy {
                        expected: existing.clone(),
                        actual: study_instance_uid,
                    });
                }
            }
            return Ok(vec![match s.instances.get(&sop_instance_uid) {
                None => StudyEvent::InstanceStored {
                    hospital_id,
                    study_instance_uid,
                    sop_instance_uid,
                    patient,
                    attributes,
                    object,
                    arrival,
                    dataset,
                },
                Some(kept) if kept.algorithm() != object.digest.algorithm() => {
                    return Err(StudyError::DigestsNotComparable {
                        kept: kept.algorithm().to_string(),
                        received: object.digest.algorithm().to_string(),
                    })
                }
                Some(kept) if *kept == object.digest => StudyEvent::InstanceDuplicateIgnored {
                    sop_instance_uid,
                    digest: object.digest,
                    arrival,
                },
                Some(kept) => StudyEvent::InstanceConflictRecorded {
                    sop_instance_uid,
                    kept_digest: kept.clone(),
                    received: object,
                    arrival,
                },
            }]);
        }
        // Every other command acts on a study that exists.
        let (Some(hospital_id), Some(study_instance_uid)) = (s.hospital_id, s.study_instance_uid.clone()) else {
            return Err(StudyError::NoSuchStudy);
        };
        let actor = ctx.actor.ok_or(StudyError::NoActor)?;
        let reason_ok = |r: &str| !r.trim().is_empty() && r.chars().count() <= MAX_TEXT;
        let event = match c {
            StudyCommand::ReceiveInstance { .. } => return Err(StudyError::NoSuchStudy),
            StudyCommand::Share { shared_with, note } => {
                if s.deleted {
                    return Err(StudyError::Deleted);
                }
                if shared_with == actor {
                    return Err(StudyError::ShareWithSelf);
                }
                if note.as_ref().is_some_and(|n| n.chars().count() > MAX_TEXT) {
                    return Err(StudyError::NoteTooLong);
                }
                StudyEvent::StudyShared {
                    hospital_id,
                    study_instance_uid,
                    shared_with,
                    shared_by: actor,
                    note: note.filter(|n| !n.trim().is_empty()),
                }
            }
            StudyCommand::Delete { reason } => {
                if s.deleted {
                    return Err(StudyError::Deleted);
                }
                if !reason_ok(&reason) {
                    return Err(StudyError::ReasonRequired);
                }
                StudyEvent::StudyDeleted {
                    hospital_id,
                    study_instance_uid,
                    deleted_by: actor,
                    reason,
                }
            }
            StudyCommand::Restore => {
                if !s.deleted {
                    return Err(StudyError::NotDeleted);
                }
                StudyEvent::StudyRestored {
                    hospital_id,
                    study_instance_uid,
                    restored_by: actor,
                }
            }
            StudyCommand::Archive { blob_prefix } => {
                if s.erased {
                    return Err(StudyError::Erased);
                }
                if s.archived.is_some() {
                    return Err(StudyError::Archived);
                }
                StudyEvent::StudyArchived {
                    hospital_id,
                    study_instance_uid,
                    archived_by: actor,
                    blob_prefix,
                    objects: s.objects.len() as u64,
                    bytes: s.stored_bytes,
                }
            }
            StudyCommand::Retrieve => {
                if s.archived.is_none() {
                    return Err(StudyError::NotArchived);
                }
                StudyEvent::StudyRetrieved {
                    hospital_id,
                    study_instance_uid,
                    retrieved_by: actor,
                    objects: s.objects.len() as u64,
                    bytes: s.stored_bytes,
                }
            }
            StudyCommand::EraseObjects { patient_subject } => {
                if s.erased {
                    return Ok(vec![]);
                }
                StudyEvent::StudyObjectsErased {
                    hospital_id,
                    study_instance_uid,
                    patient_subject,
                    objects: s.objects.len() as u64,
                }
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut s: StudyState, e: &StudyEvent) -> StudyState {
        match e {
            StudyEvent::InstanceStored {
                hospital_id,
                study_instance_uid,
                sop_instance_uid,
                object,
                ..
            } => {
                s.hospital_id = Some(*hospital_id);
                s.study_instance_uid = Some(study_instance_uid.clone());
                s.instances.insert(sop_instance_uid.clone(), object.digest.clone());
                s.objects.insert(sop_instance_uid.clone(), object.blob_key.clone());
                s.stored_bytes += object.size;
            }
            StudyEvent::InstanceDuplicateIgnored { .. } => s.duplicates += 1,
            StudyEvent::InstanceConflictRecorded { .. } => s.conflicts += 1,
            StudyEvent::StudyShared { .. } => {}
            StudyEvent::StudyDeleted { .. } => s.deleted = true,
            StudyEvent::StudyRestored { .. } => s.deleted = false,
            StudyEvent::StudyArchived { blob_prefix, .. } => s.archived = Some(blob_prefix.clone()),
            StudyEvent::StudyRetrieved { .. } => s.archived = None,
            StudyEvent::StudyObjectsErased { .. } => s.erased = true,
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    const H: Uuid = Uuid::from_u128(2);

    fn b3(hex: &str) -> ContentDigest {
        ContentDigest::new(ContentDigest::BLAKE3, hex)
    }

    fn receive(sop: &str, sha: &str) -> StudyCommand {
        receive_digest(sop, b3(sha))
    }

    fn receive_digest(sop: &str, digest: ContentDigest) -> StudyCommand {
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
                blob_key: format!("k/{}", digest.hex()),
                size: 10,
                digest,
            },
            arrival: Arrival::StowRs,
            dataset: None,
        }
    }

    fn stored(sop: &str, sha: &str) -> StudyEvent {
        stored_digest(sop, b3(sha))
    }

    fn stored_digest(sop: &str, digest: ContentDigest) -> StudyEvent {
        let StudyCommand::ReceiveInstance {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            patient,
            attributes,
            object,
            arrival,
            dataset,
        } = receive_digest(sop, digest)
        else {
            unreachable!()
        };
        StudyEvent::InstanceStored {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            patient,
            attributes,
            object,
            arrival,
            dataset,
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
                digest: b3("aa"),
                arrival: Arrival::StowRs,
            }]);
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(receive("1.2.3.1", "bb"), &ctx)
            .then(&[StudyEvent::InstanceConflictRecorded {
                sop_instance_uid: "1.2.3.1".into(),
                kept_digest: b3("aa"),
                received: StoredObject {
                    blob_key: "k/bb".into(),
                    size: 10,
                    digest: b3("bb"),
                },
                arrival: Arrival::StowRs,
            }]);
        let state = Study::fold(&[stored("1.2.3.1", "aa"), stored("1.2.3.2", "cc")]);
        assert_eq!((state.instances.len(), state.stored_bytes), (2, 20));
    }

    #[test]
    fn a_state_knowing_one_instance_decides_its_arrival_like_the_whole_study() {
        let ctx = Ctx::at(chrono::Utc::now());
        let whole = Study::fold(&[stored("1.2.3.1", "aa"), stored("1.2.3.2", "cc")]);
        for (sop, sha) in [("1.2.3.1", "aa"), ("1.2.3.1", "bb"), ("1.2.3.9", "dd")] {
            let known = whole.instances.get(sop).cloned();
            let small = StudyState::knowing("1.2.3", sop, known);
            assert_eq!(
                Study::decide(&small, receive(sop, sha), &ctx),
                Study::decide(&whole, receive(sop, sha), &ctx)
            );
        }
    }

    #[test]
    fn digests_of_different_algorithms_are_never_compared() {
        let ctx = Ctx::at(chrono::Utc::now());
        let sha = |hex: &str| ContentDigest::new(ContentDigest::SHA256, hex);
        let kept_before = [stored_digest("1.2.3.1", sha("aa"))];
        given::<Study>(&kept_before)
            .when(receive("1.2.3.1", "aa"), &ctx)
            .then_error(StudyError::DigestsNotComparable {
                kept: "sha256".into(),
                received: "blake3".into(),
            });
        // Digested the kept way, the same content is a duplicate and other content a conflict.
        given::<Study>(&kept_before)
            .when(receive_digest("1.2.3.1", sha("aa")), &ctx)
            .then(&[StudyEvent::InstanceDuplicateIgnored {
                sop_instance_uid: "1.2.3.1".into(),
                digest: sha("aa"),
                arrival: Arrival::StowRs,
            }]);
        let conflict = Study::decide(&Study::fold(&kept_before), receive_digest("1.2.3.1", sha("bb")), &ctx);
        assert!(matches!(
            conflict.as_deref(),
            Ok([StudyEvent::InstanceConflictRecorded { .. }])
        ));
    }

    #[test]
    fn a_digest_reads_as_written_and_a_bare_sha256_as_version_1_wrote_it() {
        let hex = "ab".repeat(32);
        let bare = ContentDigest::parse(&hex).expect("a bare SHA-256");
        assert_eq!((bare.algorithm(), bare.hex()), ("sha256", hex.as_str()));
        let named = ContentDigest::parse(&format!("blake3:{hex}")).expect("a named digest");
        assert_eq!((named.algorithm(), named.hex()), ("blake3", hex.as_str()));
        for bad in ["", "abc", "blake3:", ":ab", "blake3:xyz", &"g".repeat(64)] {
            assert_eq!(ContentDigest::parse(bad), None, "{bad:?}");
        }
    }

    const ADMIN: Uuid = Uuid::from_u128(77);
    const COLLEAGUE: Uuid = Uuid::from_u128(78);

    fn ctx() -> Ctx {
        Ctx::at(chrono::Utc::now()).with_actor(ADMIN)
    }

    #[test]
    fn lifecycle_commands_need_a_study_and_an_actor() {
        given::<Study>(&[])
            .when(StudyCommand::Restore, &ctx())
            .then_error(StudyError::NoSuchStudy);
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(StudyCommand::Restore, &Ctx::at(chrono::Utc::now()))
            .then_error(StudyError::NoActor);
    }

    #[test]
    fn a_study_is_shared_with_a_colleague_not_with_oneself() {
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(
                StudyCommand::Share {
                    shared_with: COLLEAGUE,
                    note: Some("please look at the left lung".into()),
                },
                &ctx(),
            )
            .then(&[StudyEvent::StudyShared {
                hospital_id: H,
                study_instance_uid: "1.2.3".into(),
                shared_with: COLLEAGUE,
                shared_by: ADMIN,
                note: Some("please look at the left lung".into()),
            }]);
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(
                StudyCommand::Share {
                    shared_with: ADMIN,
                    note: None,
                },
                &ctx(),
            )
            .then_error(StudyError::ShareWithSelf);
    }

    #[test]
    fn delete_needs_a_reason_and_restore_needs_a_deleted_study() {
        let deleted = StudyEvent::StudyDeleted {
            hospital_id: H,
            study_instance_uid: "1.2.3".into(),
            deleted_by: ADMIN,
            reason: "wrong patient".into(),
        };
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(StudyCommand::Delete { reason: " ".into() }, &ctx())
            .then_error(StudyError::ReasonRequired);
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(
                StudyCommand::Delete {
                    reason: "wrong patient".into(),
                },
                &ctx(),
            )
            .then(std::slice::from_ref(&deleted));
        given::<Study>(&[stored("1.2.3.1", "aa"), deleted.clone()])
            .when(StudyCommand::Delete { reason: "again".into() }, &ctx())
            .then_error(StudyError::Deleted);
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(StudyCommand::Restore, &ctx())
            .then_error(StudyError::NotDeleted);
        given::<Study>(&[stored("1.2.3.1", "aa"), deleted])
            .when(StudyCommand::Restore, &ctx())
            .then(&[StudyEvent::StudyRestored {
                hospital_id: H,
                study_instance_uid: "1.2.3".into(),
                restored_by: ADMIN,
            }]);
    }

    #[test]
    fn archive_and_retrieve_alternate_and_count_the_objects() {
        let archived = StudyEvent::StudyArchived {
            hospital_id: H,
            study_instance_uid: "1.2.3".into(),
            archived_by: ADMIN,
            blob_prefix: "archive/".into(),
            objects: 2,
            bytes: 20,
        };
        let history = [stored("1.2.3.1", "aa"), stored("1.2.3.2", "bb")];
        given::<Study>(&history)
            .when(StudyCommand::Retrieve, &ctx())
            .then_error(StudyError::NotArchived);
        given::<Study>(&history)
            .when(
                StudyCommand::Archive {
                    blob_prefix: "archive/".into(),
                },
                &ctx(),
            )
            .then(std::slice::from_ref(&archived));
        let mut with_archive = history.to_vec();
        with_archive.push(archived);
        given::<Study>(&with_archive)
            .when(
                StudyCommand::Archive {
                    blob_prefix: "archive/".into(),
                },
                &ctx(),
            )
            .then_error(StudyError::Archived);
        given::<Study>(&with_archive)
            .when(StudyCommand::Retrieve, &ctx())
            .then(&[StudyEvent::StudyRetrieved {
                hospital_id: H,
                study_instance_uid: "1.2.3".into(),
                retrieved_by: ADMIN,
                objects: 2,
                bytes: 20,
            }]);
    }

    #[test]
    fn erasing_objects_happens_once() {
        let erased = StudyEvent::StudyObjectsErased {
            hospital_id: H,
            study_instance_uid: "1.2.3".into(),
            patient_subject: Uuid::from_u128(9),
            objects: 1,
        };
        let erase = StudyCommand::EraseObjects {
            patient_subject: Uuid::from_u128(9),
        };
        given::<Study>(&[stored("1.2.3.1", "aa")])
            .when(erase.clone(), &ctx())
            .then(std::slice::from_ref(&erased));
        given::<Study>(&[stored("1.2.3.1", "aa"), erased])
            .when(erase, &ctx())
            .then(&[]);
    }
}
