//! Receiving instances into a hospital's studies, on both backends: stored
//! byte for byte, duplicates counted, conflicts kept aside, bad objects
//! refused without writing, patient data sealed and forgettable.

use bytes::Bytes;
use medledger_api::platform::Platform;
use medledger_commands::codec::Metadata;
use medledger_commands::crypto::MasterKey;
use medledger_commands::store::{AppendRequest, ExpectedVersion, Guard};
use medledger_dicom_ingest::ingest::{
    blake3_digest, ingest, receive_command, sha256_digest, study_stream, IngestError, Ingested, Outcome,
};
use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_domain::identity::Tenant;
use medledger_domain::imaging::study::{Arrival, StoredObject, Study, StudyState};
use medledger_domain::Decider;
use medledger_tests::{system_clock, Backend};
use uuid::Uuid;

medledger_tests::on_both_backends!(
    an_instance_is_stored_as_received_and_recorded_once,
    a_different_object_under_the_same_uid_is_kept_aside,
    a_bad_object_is_refused_without_writing,
    a_forgotten_patient_reads_as_erased,
    many_arrivals_fill_one_study_at_once,
    an_instance_kept_under_its_sha256_is_still_told_from_a_conflict,
);

fn hospital() -> Tenant {
    Tenant {
        alliance_id: Some(Uuid::from_u128(1)),
        hospital_id: Some(Uuid::from_u128(2)),
    }
}

async fn platform(b: &Backend) -> Platform {
    Platform::open(&b.config(&MasterKey::generate()), system_clock())
        .await
        .unwrap()
}

/// One instance received by the test hospital, as the platform receives it.
async fn receive(p: &Platform, bytes: Vec<u8>, arrival: Arrival) -> Result<Ingested, IngestError> {
    ingest(
        &p.app,
        &p.blobs,
        &hospital(),
        Bytes::from(bytes),
        arrival,
        &Metadata::system(),
    )
    .await
}

fn ct(instance: u32) -> Vec<u8> {
    synthetic_ct(&CtSpec {
        instance_index: instance,
        rows: 64,
        columns: 64,
        private_tags: true,
        ..CtSpec::default()
    })
}

async fn an_instance_is_stored_as_received_and_recorded_once(b: &Backend) {
    let p = platform(b).await;
    let bytes = ct(0);
    let first = receive(&p, bytes.clone(), Arrival::StowRs).await.unwrap();
    assert_eq!(first.outcome, Outcome::Stored);
    assert_eq!(first.metadata.modality.as_deref(), Some("CT"));
    let stored = p.blobs.get(&first.blob_key).await.unwrap().unwrap();
    assert_eq!(
        stored.as_ref(),
        bytes.as_slice(),
        "kept byte for byte, private tags included"
    );

    let again = receive(&p, bytes.clone(), Arrival::CStore).await.unwrap();
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(again.blob_key, first.blob_key);
    let stream = study_stream(Uuid::from_u128(2), &first.metadata.study_instance_uid);
    let events: Vec<String> = p
        .app
        .store
        .read_stream(&stream, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(events, vec!["InstanceStored", "InstanceDuplicateIgnored"]);

    // Patient data is sealed in the log, readable through the codec.
    let raw = p.app.store.read_all_raw(0, 10).await.unwrap();
    let patient_id = first.metadata.patient_id.clone();
    assert!(!raw[0].payload.contains(&patient_id), "Patient ID stored in clear");
    let name = first.metadata.patient_name.clone().unwrap();
    assert!(!raw[0].payload.contains(&name), "patient name stored in clear");
    let opened = p
        .app
        .codec
        .open(p.app.store.read_all(0, 10).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        opened[0].payload["patient"]["patient_id"]["$pii"]["value"],
        patient_id.as_str()
    );

    // A second instance of the same study joins the same stream.
    let second = receive(&p, ct(1), Arrival::StowRs).await.unwrap();
    assert_eq!(second.outcome, Outcome::Stored);
    assert_eq!(p.app.store.read_stream(&stream, 0).await.unwrap().len(), 3);
}

async fn a_different_object_under_the_same_uid_is_kept_aside(b: &Backend) {
    let p = platform(b).await;
    let original = ct(0);
    let mut altered = original.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xFF; // one pixel byte differs
    let first = receive(&p, original.clone(), Arrival::StowRs).await.unwrap();
    let second = receive(&p, altered.clone(), Arrival::StowRs).await.unwrap();
    assert_eq!(second.outcome, Outcome::Conflict);
    assert_ne!(second.blob_key, first.blob_key);
    assert_eq!(
        p.blobs.get(&first.blob_key).await.unwrap().unwrap().as_ref(),
        original.as_slice(),
        "the first stays"
    );
    assert_eq!(
        p.blobs.get(&second.blob_key).await.unwrap().unwrap().as_ref(),
        altered.as_slice(),
        "the newcomer is kept aside"
    );
    let stream = study_stream(Uuid::from_u128(2), &first.metadata.study_instance_uid);
    let conflict = p.app.store.read_stream(&stream, 0).await.unwrap().pop().unwrap();
    assert_eq!(conflict.event_type, "InstanceConflictRecorded");
    assert_eq!(conflict.payload["received"]["blob_key"], second.blob_key.as_str());
}

async fn a_bad_object_is_refused_without_writing(b: &Backend) {
    let p = platform(b).await;
    let mut truncated = ct(0);
    truncated.truncate(truncated.len() / 2);
    for (bytes, code) in [
        (b"not a dicom file at all".to_vec(), "not_dicom"),
        (truncated, "truncated"),
        (
            synthetic_ct(&CtSpec {
                rows: 16,
                columns: 16,
                omitted: vec![medledger_dicom_ingest::tags::PATIENT_ID],
                ..CtSpec::default()
            }),
            "missing_patient_id",
        ),
    ] {
        match receive(&p, bytes, Arrival::StowRs).await {
            Err(IngestError::Rejected(r)) => assert_eq!(r.code, code, "{r}"),
            other => panic!("expected {code}, got {other:?}"),
        }
    }
    assert_eq!(p.app.store.head_position().await.unwrap(), 0);
    let outside = ingest(
        &p.app,
        &p.blobs,
        &Tenant::PLATFORM,
        Bytes::from(ct(0)),
        Arrival::StowRs,
        &Metadata::system(),
    )
    .await;
    assert!(matches!(outside, Err(IngestError::Failed(_))));
    assert_eq!(p.app.store.head_position().await.unwrap(), 0);
}

async fn a_forgotten_patient_reads_as_erased(b: &Backend) {
    let p = platform(b).await;
    let first = receive(&p, ct(0), Arrival::StowRs).await.unwrap();
    let subject = p
        .app
        .codec
        .keys()
        .pseudonym(&format!("patient/{}", Uuid::from_u128(2)), &first.metadata.patient_id);
    medledger_commands::administration::forget_subject(&p.app, subject, "patient request", &Metadata::system())
        .await
        .unwrap();
    let opened = p
        .app
        .codec
        .open(p.app.store.read_all(0, 10).await.unwrap())
        .await
        .unwrap();
    assert_eq!(opened[0].payload["patient"]["patient_id"]["$pii"]["erased"], true);
    assert_eq!(opened[0].payload["patient"]["name"]["$pii"]["erased"], true);
    assert_eq!(
        medledger_commands::verify::verify(p.app.store.as_ref())
            .await
            .unwrap()
            .failure,
        None
    );
}

/// Four senders fill one study at the same time, each also re-sending an
/// instance another one sends: every instance is stored exactly once.
async fn many_arrivals_fill_one_study_at_once(b: &Backend) {
    let p = std::sync::Arc::new(platform(b).await);
    let tasks: Vec<_> = (0..4u32)
        .map(|t| {
            let p = p.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..25u32 {
                    for instance in [t * 25 + i, (t * 25 + i + 25) % 100] {
                        let r = receive(&p, ct(instance), Arrival::CStore)
                            .await
                            .unwrap_or_else(|e| panic!("instance {instance}: {e}"));
                        outcomes.push(r.outcome);
                    }
                }
                outcomes
            })
        })
        .collect();
    let mut stored = 0;
    let mut duplicates = 0;
    for t in tasks {
        for o in t.await.unwrap() {
            match o {
                Outcome::Stored => stored += 1,
                Outcome::Duplicate => duplicates += 1,
                Outcome::Conflict => panic!("same bytes are never a conflict"),
            }
        }
    }
    assert_eq!((stored, duplicates), (100, 100));
    let meta = medledger_dicom_ingest::inspect(&ct(0)).unwrap();
    let events = p
        .app
        .store
        .read_stream(&study_stream(Uuid::from_u128(2), &meta.study_instance_uid), 0)
        .await
        .unwrap();
    assert_eq!(events.iter().filter(|e| e.event_type == "InstanceStored").count(), 100);
    assert_eq!(
        medledger_commands::verify::verify(p.app.store.as_ref())
            .await
            .unwrap()
            .failure,
        None
    );
}

/// History from before BLAKE3: an instance recorded by schema 1 of `InstanceStored` (a bare
/// SHA-256 in `object.sha256`, the guard's owner naming it the same way). Sent again, it is a
/// duplicate, not a conflict, and leaves no second copy; different bytes are a conflict.
async fn an_instance_kept_under_its_sha256_is_still_told_from_a_conflict(b: &Backend) {
    let p = platform(b).await;
    let hospital_id = Uuid::from_u128(2);
    let bytes = ct(0);
    let meta = medledger_dicom_ingest::inspect(&bytes).unwrap();
    let sha = sha256_digest(&bytes);
    let stream = study_stream(hospital_id, &meta.study_instance_uid);
    let kept_key = format!(
        "hospitals/{hospital_id}/studies/legacy/{}_{}.dcm",
        meta.sop_instance_uid,
        sha.hex()
    );
    p.blobs.put(&kept_key, Bytes::from(bytes.clone())).await.unwrap();
    let subject = p
        .app
        .codec
        .keys()
        .pseudonym(&format!("patient/{hospital_id}"), &meta.patient_id);
    let object = StoredObject {
        blob_key: kept_key.clone(),
        size: bytes.len() as u64,
        digest: sha.clone(),
    };
    let command = receive_command(hospital_id, subject, &meta, object, Arrival::CStore);
    let system = Metadata::system();
    let ctx = p.app.ctx(&system);
    let events = Study::decide(&StudyState::default(), command, &ctx).unwrap();
    let mut written = p.app.codec.prepare(&events, &system, ctx.now).await.unwrap();
    // As schema 1 wrote it.
    let v1 = &mut written[0];
    v1.schema_version = 1;
    let recorded = v1.payload["object"].as_object_mut().unwrap();
    recorded.remove("digest");
    recorded.insert("sha256".into(), sha.hex().into());
    let owner = format!("{stream}#{}#{}", sha.hex(), Uuid::now_v7());
    p.app
        .append(
            AppendRequest::stream(&stream, ExpectedVersion::Any, written).with_guard(Guard::Claim {
                scope: "sop-instance".into(),
                key: format!("{hospital_id}/{}", meta.sop_instance_uid),
                owner,
            }),
        )
        .await
        .unwrap();

    let again = receive(&p, bytes.clone(), Arrival::StowRs).await.unwrap();
    assert_eq!(
        again.outcome,
        Outcome::Duplicate,
        "the same bytes, digested the kept way"
    );
    assert_eq!(again.blob_key, kept_key, "the answer names the kept object");
    let blake3_key = format!(
        "hospitals/{hospital_id}/studies/{}/{}/{}_{}.dcm",
        meta.study_instance_uid,
        meta.series_instance_uid,
        meta.sop_instance_uid,
        blake3_digest(&bytes).hex()
    );
    assert!(!p.blobs.exists(&blake3_key).await.unwrap(), "no second copy is left");

    let mut altered = bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xFF;
    let other = receive(&p, altered.clone(), Arrival::StowRs).await.unwrap();
    assert_eq!(other.outcome, Outcome::Conflict);
    assert_eq!(
        p.blobs.get(&other.blob_key).await.unwrap().unwrap().as_ref(),
        altered.as_slice(),
        "the newcomer is kept aside"
    );
    let log = p.app.store.read_stream(&stream, 0).await.unwrap();
    let types: Vec<_> = log.iter().map(|e| (e.event_type.as_str(), e.schema_version)).collect();
    assert_eq!(
        types,
        vec![
            ("InstanceStored", 1),
            ("InstanceDuplicateIgnored", 2),
            ("InstanceConflictRecorded", 2)
        ]
    );
    assert_eq!(log[1].payload["digest"], sha.as_str());
    assert_eq!(log[2].payload["kept_digest"], sha.as_str());
    // The study reads whole, schema 1 lifted: the kept object and its digest.
    let (study, _) = p.app.load::<Study>(&stream).await.unwrap();
    assert_eq!(study.instances.get(&meta.sop_instance_uid), Some(&sha));
    assert_eq!(study.objects.get(&meta.sop_instance_uid), Some(&kept_key));
    assert_eq!((study.duplicates, study.conflicts), (1, 1));
}
