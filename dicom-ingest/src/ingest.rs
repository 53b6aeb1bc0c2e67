//! Storing a received instance: validate it, keep its bytes exactly as
//! received, and record it in its study.
//!
//! The object goes to the blob store first, under a content-addressed key
//! (`hospitals/<hospital>/instances/<SOP Instance UID>/<sha256>.dcm`), then
//! the study records the event. So a duplicate writes nothing new, a
//! conflicting object is kept aside under its own key, and a crash between
//! the two steps leaves at most an unreferenced blob, never an event that
//! points at nothing. One event per instance: the study stream stays the
//! single place that decides duplicates and conflicts, and group commit
//! keeps many concurrent instances cheap.

use bytes::Bytes;
use medledger_commands::blobs::BlobStore;
use medledger_commands::codec::Metadata;
use medledger_commands::store::{Guard, StoreError};
use medledger_commands::{App, Error, Kind};
use medledger_domain::identity::Tenant;
use medledger_domain::imaging::study::{
    Arrival, InstanceAttributes, PatientAttributes, StoredObject, Study, StudyCommand, StudyEvent,
};
use medledger_domain::pii::PersonalData;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::parse::{inspect, InstanceMetadata, Rejection};

/// What happened to a received instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// Same SOP Instance UID, same bytes: counted, not stored again.
    Duplicate,
    /// Same SOP Instance UID, different bytes: the first stays, this one is kept aside.
    Conflict,
}

#[derive(Clone, Debug)]
pub struct Ingested {
    pub outcome: Outcome,
    pub metadata: InstanceMetadata,
    pub blob_key: String,
    pub position: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The instance itself is refused (with a per-instance reason code).
    #[error("{0}")]
    Rejected(Rejection),
    #[error(transparent)]
    Failed(#[from] Error),
}

pub fn study_stream(hospital_id: Uuid, study_instance_uid: &str) -> String {
    format!("study-{hospital_id}.{study_instance_uid}")
}

/// Validate, store and record one received Part-10 object for `hospital`.
pub async fn ingest(
    app: &App,
    blobs: &BlobStore,
    hospital: &Tenant,
    bytes: Bytes,
    arrival: Arrival,
    metadata: &Metadata,
) -> Result<Ingested, IngestError> {
    let hospital_id = hospital
        .hospital_id
        .ok_or_else(|| Error::rejected(Kind::Forbidden, "hospital_required", "instances belong to a hospital"))?;
    let meta = inspect(&bytes).map_err(IngestError::Rejected)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let blob_key = format!(
        "hospitals/{hospital_id}/instances/{}/{sha256}.dcm",
        meta.sop_instance_uid
    );
    let size = bytes.len() as u64;
    let stored = blobs.exists(&blob_key).await.map_err(blob_error)?;
    if !stored {
        blobs.put(&blob_key, bytes).await.map_err(blob_error)?;
    }
    let subject = app
        .codec
        .keys()
        .pseudonym(&format!("patient/{hospital_id}"), &meta.patient_id);
    let pii = |v: &Option<String>| v.as_ref().map(|v| PersonalData::new(subject, v.clone()));
    let command = StudyCommand::ReceiveInstance {
        hospital_id,
        study_instance_uid: meta.study_instance_uid.clone(),
        sop_instance_uid: meta.sop_instance_uid.clone(),
        patient: PatientAttributes {
            patient_id: PersonalData::new(subject, meta.patient_id.clone()),
            name: pii(&meta.patient_name),
            birth_date: pii(&meta.patient_birth_date),
            sex: meta.patient_sex.clone(),
        },
        attributes: InstanceAttributes {
            series_instance_uid: meta.series_instance_uid.clone(),
            sop_class_uid: meta.sop_class_uid.clone(),
            transfer_syntax_uid: meta.transfer_syntax_uid.clone(),
            modality: meta.modality.clone(),
            body_part: meta.body_part_examined.clone(),
            study_date: meta.study_date.clone(),
            study_time: meta.study_time.clone(),
            study_description: meta.study_description.clone(),
            series_description: meta.series_description.clone(),
            accession_number: meta.accession_number.clone(),
            referring_physician: meta.referring_physician_name.clone(),
            institution: meta.institution_name.clone(),
            series_number: meta.series_number,
            instance_number: meta.instance_number,
            number_of_frames: meta.number_of_frames,
            rows: meta.rows,
            columns: meta.columns,
        },
        object: StoredObject {
            blob_key: blob_key.clone(),
            size,
            sha256,
        },
        arrival,
    };
    let stream = study_stream(hospital_id, &meta.study_instance_uid);
    let mut meta_for_events = metadata.clone();
    meta_for_events.tenant = *hospital;
    // The SOP Instance UID is unique per hospital across studies too.
    let guard = Guard::Claim {
        scope: "sop-instance".into(),
        key: format!("{hospital_id}/{}", meta.sop_instance_uid),
        owner: stream.clone(),
    };
    let executed = app
        .execute::<Study>(&stream, command, &meta_for_events, vec![guard])
        .await
        .map_err(|e| match e {
            Error::Store(StoreError::GuardTaken { .. }) => Error::rejected(
                Kind::Conflict,
                "instance_in_other_study",
                "this SOP Instance UID was already received in another study",
            ),
            other => other,
        })?;
    let outcome = match executed.events.first() {
        Some(StudyEvent::InstanceStored { .. }) => Outcome::Stored,
        Some(StudyEvent::InstanceDuplicateIgnored { .. }) => Outcome::Duplicate,
        Some(StudyEvent::InstanceConflictRecorded { .. }) => Outcome::Conflict,
        None => return Err(Error::Internal("the study decided nothing".into()).into()),
    };
    Ok(Ingested {
        outcome,
        metadata: meta,
        blob_key,
        position: executed.position(),
    })
}

fn blob_error(e: medledger_commands::blobs::BlobError) -> Error {
    Error::rejected(Kind::Unavailable, "blob_store_unavailable", e.to_string())
}
