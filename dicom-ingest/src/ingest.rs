//! Storing a received instance: validate it, keep its bytes exactly as
//! received, and record it in its study.
//!
//! The object goes to the blob store first, under a content-addressed key
//! (`hospitals/<hospital>/studies/<Study UID>/<Series UID>/<SOP UID>_<BLAKE3>.dcm`:
//! one folder per series, not per instance, so an arrival creates no directory
//! and costs the local store two fsyncs instead of four), then
//! the study records the event. So a duplicate writes nothing new, a
//! conflicting object is kept aside under its own key, and a crash between
//! the two steps leaves at most an unreferenced blob, never an event that
//! points at nothing. One event per instance: the study stream stays the
//! single place that decides duplicates and conflicts, and group commit
//! keeps many concurrent instances cheap.
//!
//! The content digest is BLAKE3: it names the blob and tells a duplicate from a
//! conflict, and it is computed for every byte received. On this platform's
//! 2-core machine it digests a 525 KB CT slice in about 0.1 ms against SHA-256's
//! 0.4 ms (with SHA-NI). Instances stored before kept a SHA-256; an arrival of
//! one of those SOP Instance UIDs is digested with SHA-256 too, so it is compared
//! like with like.

use bytes::Bytes;
use medledger_commands::blobs::BlobStore;
use medledger_commands::codec::Metadata;
use medledger_commands::store::{AppendRequest, ExpectedVersion, Guard, StoreError};
use medledger_commands::{App, Error, Kind};
use medledger_domain::identity::Tenant;
use medledger_domain::imaging::study::{
    Arrival, ContentDigest, InstanceAttributes, PatientAttributes, StoredObject, Study, StudyCommand, StudyError,
    StudyEvent, StudyState,
};
use medledger_domain::pii::PersonalData;
use medledger_domain::Decider;
use sha2::Digest;
use std::time::Instant;
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
    /// Where the bytes are: this arrival's object, or for a duplicate the kept one.
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

pub use medledger_commands::imaging::study_stream;

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
    let started = Instant::now();
    // Parsing and digesting take the CPU for about half a millisecond: on the blocking
    // pool, so the runtime's workers stay free to drive the store's writer and the
    // read models (a transaction awaits the writer thread once per statement).
    let examined = bytes.clone();
    let (meta, digest) =
        tokio::task::spawn_blocking(move || inspect(&examined).map(|meta| (meta, blake3_digest(&examined))))
            .await
            .map_err(|e| Error::Internal(format!("inspecting an instance failed: {e}")))?
            .map_err(IngestError::Rejected)?;
    let started = phase_done("inspect", started);
    let blob_key = format!(
        "hospitals/{hospital_id}/studies/{}/{}/{}_{}.dcm",
        meta.study_instance_uid,
        meta.series_instance_uid,
        meta.sop_instance_uid,
        digest.hex()
    );
    let size = bytes.len() as u64;
    let stored = blobs.exists(&blob_key).await.map_err(blob_error)?;
    if !stored {
        blobs.put(&blob_key, bytes.clone()).await.map_err(blob_error)?;
    }
    let started = phase_done("blob", started);
    let subject = app
        .codec
        .keys()
        .pseudonym(&format!("patient/{hospital_id}"), &meta.patient_id);
    let object = StoredObject {
        blob_key: blob_key.clone(),
        size,
        digest: digest.clone(),
    };
    let mut command = receive_command(hospital_id, subject, &meta, object, arrival);
    let stream = study_stream(hospital_id, &meta.study_instance_uid);
    let mut meta_for_events = metadata.clone();
    meta_for_events.tenant = *hospital;
    let sop_key = format!("{hospital_id}/{}", meta.sop_instance_uid);
    // Many associations may fill one study at once: appends do not wait for
    // each other (any stream version), and an arrival does not load the study.
    // What must be decided exactly — is this SOP Instance UID new? — is decided
    // by its guard: a new instance claims it with an owner naming the study
    // stream, the content hash and this attempt, so of two racing arrivals one
    // stores and the other, finding the key taken, learns the kept hash from
    // the owner and is answered as a duplicate or a conflict by the same
    // decider, on a state that knows just that instance.
    let mut state = StudyState::knowing(&meta.study_instance_uid, &meta.sop_instance_uid, None);
    for _ in 0..8 {
        let ctx = app.ctx(&meta_for_events);
        let events = match Study::decide(&state, command.clone(), &ctx) {
            // The kept instance was digested another way (before BLAKE3): digest this
            // arrival that way too and decide again.
            Err(StudyError::DigestsNotComparable { kept, .. }) if kept == ContentDigest::SHA256 => {
                if let StudyCommand::ReceiveInstance { object, .. } = &mut command {
                    object.digest = sha256_digest(&bytes);
                }
                Study::decide(&state, command.clone(), &ctx).map_err(Error::from)?
            }
            decided => decided.map_err(Error::from)?,
        };
        let outcome = match events.first() {
            Some(StudyEvent::InstanceStored { .. }) => Outcome::Stored,
            Some(StudyEvent::InstanceDuplicateIgnored { .. }) => Outcome::Duplicate,
            Some(StudyEvent::InstanceConflictRecorded { .. }) => Outcome::Conflict,
            _ => return Err(Error::Internal("the study decided nothing".into()).into()),
        };
        let new = app
            .codec
            .prepare(&events, &meta_for_events, ctx.now)
            .await
            .map_err(Error::from)?;
        let mut request = AppendRequest::stream(&stream, ExpectedVersion::Any, new);
        if outcome == Outcome::Stored {
            request = request.with_guard(Guard::Claim {
                scope: "sop-instance".into(),
                key: sop_key.clone(),
                owner: format!("{stream}#{digest}#{}", Uuid::now_v7()),
            });
        }
        match app.append(request).await {
            Ok(r) => {
                phase_done("record", started);
                let mut blob_key = blob_key;
                let named_otherwise = matches!(events.first(),
                    Some(StudyEvent::InstanceDuplicateIgnored { digest: kept, .. }) if *kept != digest);
                if named_otherwise {
                    // A duplicate of an instance kept under its SHA-256 name: the copy just
                    // written under the BLAKE3 name is referenced by no event. The answer
                    // names the kept object.
                    if let Err(e) = blobs.delete(&blob_key).await {
                        tracing::warn!(blob_key, error = %e, "an unreferenced duplicate could not be deleted");
                    }
                    let (study, _) = app.load::<Study>(&stream).await?;
                    if let Some(kept) = study.objects.get(&meta.sop_instance_uid) {
                        blob_key = kept.clone();
                    }
                }
                return Ok(Ingested {
                    outcome,
                    metadata: meta,
                    blob_key,
                    position: r.last_position,
                });
            }
            Err(StoreError::GuardTaken { .. }) => {
                let owner = app
                    .store
                    .guard_owner("sop-instance", &sop_key)
                    .await
                    .map_err(Error::from)?
                    .unwrap_or_default();
                let mut parts = owner.splitn(3, '#');
                let (owner_stream, kept) = (parts.next().unwrap_or_default(), parts.next());
                if owner_stream != stream {
                    return Err(Error::rejected(
                        Kind::Conflict,
                        "instance_in_other_study",
                        "this SOP Instance UID was already received in another study",
                    )
                    .into());
                }
                state = match kept.and_then(ContentDigest::parse) {
                    // The owner names the kept content: decide on just that.
                    Some(kept) => StudyState::knowing(&meta.study_instance_uid, &meta.sop_instance_uid, Some(kept)),
                    // An owner written before hashes were named: read the study.
                    _ => app.load::<Study>(&stream).await?.0,
                };
            }
            Err(e) => return Err(Error::from(e).into()),
        }
    }
    Err(Error::rejected(
        Kind::Conflict,
        "concurrent_modification",
        "the study kept changing under this instance; send it again",
    )
    .into())
}

/// The command recording an arrival: the patient's attributes sealed under `subject`.
pub fn receive_command(
    hospital_id: Uuid,
    subject: Uuid,
    meta: &InstanceMetadata,
    object: StoredObject,
    arrival: Arrival,
) -> StudyCommand {
    let pii = |v: &Option<String>| v.as_ref().map(|v| PersonalData::new(subject, v.clone()));
    StudyCommand::ReceiveInstance {
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
        object,
        arrival,
        dataset: (!meta.dicom_json.is_empty()).then(|| PersonalData::new(subject, meta.dicom_json.clone())),
    }
}

/// The digest objects are stored under.
pub fn blake3_digest(bytes: &[u8]) -> ContentDigest {
    ContentDigest::new(ContentDigest::BLAKE3, blake3::hash(bytes).to_hex().as_str())
}

/// The digest instances stored before BLAKE3 were kept under.
pub fn sha256_digest(bytes: &[u8]) -> ContentDigest {
    ContentDigest::new(ContentDigest::SHA256, &hex::encode(sha2::Sha256::digest(bytes)))
}

fn blob_error(e: medledger_commands::blobs::BlobError) -> Error {
    Error::rejected(Kind::Unavailable, "blob_store_unavailable", e.to_string())
}

/// Time spent in one step of [`ingest`] (`medledger_ingest_phase_seconds`:
/// inspect = parse and hash, blob = object store write, record = decide, seal
/// and append), so a slow ingest shows where it waits.
fn phase_done(phase: &'static str, started: Instant) -> Instant {
    let now = Instant::now();
    metrics::histogram!("medledger_ingest_phase_seconds", "phase" => phase).record((now - started).as_secs_f64());
    now
}
