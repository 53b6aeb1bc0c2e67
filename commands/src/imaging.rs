//! Imaging use cases beyond arrival (which is `dicom-ingest`'s): sharing a study with a
//! colleague, soft delete and restore, archive and retrieve, erasing a forgotten patient's
//! objects, and a hospital's imaging settings (storage plan, DICOM peers).
//!
//! Moving objects and recording it are two steps that cannot share a transaction, so each
//! is ordered to stay safe when interrupted: archive copies every object to the archive
//! tier, records `StudyArchived`, and only then removes the hot copies (an interruption
//! leaves extra copies, never a study whose objects are nowhere); retrieve does the same in
//! the other direction. Erasure records `StudyObjectsErased` after deleting, and is safe to
//! run again.

use medledger_domain::identity::account::AccountDecider;
use medledger_domain::identity::{AccountRole, Tenant};
use medledger_domain::imaging::settings::{ae_title, ImagingSettings, ImagingSettingsCommand};
use medledger_domain::imaging::study::{Study, StudyCommand};
use medledger_domain::imaging::worklist_columns::{ChooseColumns, WorklistColumns};
use uuid::Uuid;

use crate::app::App;
use crate::authorization::{authorize, Action};
use crate::blobs::{BlobError, BlobStore};
use crate::codec::Metadata;
use crate::error::{Error, Kind};
use crate::identity::{account_stream, Principal};
use crate::store::Guard;

/// Where archived objects live: the same key under this prefix (a separate bucket tier in
/// S3 deployments, by lifecycle rule on the prefix).
pub const ARCHIVE_PREFIX: &str = "archive";

pub fn study_stream(hospital_id: Uuid, study_instance_uid: &str) -> String {
    format!("study-{hospital_id}.{study_instance_uid}")
}

pub fn settings_stream(hospital_id: Uuid) -> String {
    format!("imaging-settings-{hospital_id}")
}

/// Where a hospital's renders and thumbnails of an instance are cached.
pub fn render_prefix(hospital_id: Uuid, sop_instance_uid: &str) -> String {
    format!("renders/{hospital_id}/{sop_instance_uid}")
}

fn blob_error(e: BlobError) -> Error {
    Error::rejected(Kind::Unavailable, "blob_store_unavailable", e.to_string())
}

fn hospital_of(principal: &Principal) -> Result<Uuid, Error> {
    principal
        .tenant
        .hospital_id
        .ok_or_else(|| Error::rejected(Kind::NotFound, "not_found", "no such study"))
}

/// The study's state, or 404 when the hospital has no such study.
async fn existing_study(
    app: &App,
    hospital_id: Uuid,
    study_instance_uid: &str,
) -> Result<medledger_domain::imaging::study::StudyState, Error> {
    let (state, _) = app
        .load::<Study>(&study_stream(hospital_id, study_instance_uid))
        .await?;
    if state.hospital_id.is_none() {
        return Err(Error::rejected(Kind::NotFound, "not_found", "no such study"));
    }
    Ok(state)
}

/// Show a study to a colleague of the same hospital; they get a notification.
pub async fn share_study(
    app: &App,
    principal: &Principal,
    study_instance_uid: &str,
    colleague: Uuid,
    note: Option<String>,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ShareStudies, &principal.tenant)?;
    let hospital = hospital_of(principal)?;
    let (account, _) = app.load::<AccountDecider>(&account_stream(colleague)).await?;
    let colleague_ok = account
        .account
        .as_ref()
        .is_some_and(|a| a.tenant.hospital_id == Some(hospital) && a.role == AccountRole::User && !a.disabled);
    if !colleague_ok {
        return Err(Error::rejected(
            Kind::Invalid,
            "unknown_colleague",
            "studies are shared with an active doctor of the same hospital",
        ));
    }
    existing_study(app, hospital, study_instance_uid).await?;
    let r = app
        .execute::<Study>(
            &study_stream(hospital, study_instance_uid),
            StudyCommand::Share {
                shared_with: colleague,
                note,
            },
            metadata,
            vec![],
        )
        .await?;
    Ok(r.position())
}

/// Hide a study (administrators; audited by its event).
pub async fn delete_study(
    app: &App,
    principal: &Principal,
    study_instance_uid: &str,
    reason: String,
    metadata: &Metadata,
) -> Result<u64, Error> {
    lifecycle(
        app,
        principal,
        study_instance_uid,
        StudyCommand::Delete { reason },
        metadata,
    )
    .await
}

pub async fn restore_study(
    app: &App,
    principal: &Principal,
    study_instance_uid: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    lifecycle(app, principal, study_instance_uid, StudyCommand::Restore, metadata).await
}

async fn lifecycle(
    app: &App,
    principal: &Principal,
    study_instance_uid: &str,
    command: StudyCommand,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ManageStudies, &principal.tenant)?;
    let hospital = hospital_of(principal)?;
    existing_study(app, hospital, study_instance_uid).await?;
    let r = app
        .execute::<Study>(&study_stream(hospital, study_instance_uid), command, metadata, vec![])
        .await?;
    Ok(r.position())
}

/// Move a study's objects to the archive tier.
pub async fn archive_study(
    app: &App,
    blobs: &BlobStore,
    principal: &Principal,
    study_instance_uid: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ManageStudies, &principal.tenant)?;
    let hospital = hospital_of(principal)?;
    let state = existing_study(app, hospital, study_instance_uid).await?;
    if state.archived.is_some() {
        return Err(Error::rejected(
            Kind::Conflict,
            "study_archived",
            "the study is archived already",
        ));
    }
    for key in state.objects.values() {
        blobs
            .copy(key, &format!("{ARCHIVE_PREFIX}/{key}"))
            .await
            .map_err(blob_error)?;
    }
    let r = app
        .execute::<Study>(
            &study_stream(hospital, study_instance_uid),
            StudyCommand::Archive {
                blob_prefix: format!("{ARCHIVE_PREFIX}/"),
            },
            metadata,
            vec![],
        )
        .await?;
    for key in state.objects.values() {
        blobs.delete(key).await.map_err(blob_error)?;
    }
    Ok(r.position())
}

/// Bring an archived study's objects back to the hot tier.
pub async fn retrieve_study(
    app: &App,
    blobs: &BlobStore,
    principal: &Principal,
    study_instance_uid: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ManageStudies, &principal.tenant)?;
    let hospital = hospital_of(principal)?;
    let state = existing_study(app, hospital, study_instance_uid).await?;
    let Some(prefix) = state.archived.clone() else {
        return Err(Error::rejected(
            Kind::Conflict,
            "study_not_archived",
            "the study is not archived",
        ));
    };
    for key in state.objects.values() {
        blobs.copy(&format!("{prefix}{key}"), key).await.map_err(blob_error)?;
    }
    let r = app
        .execute::<Study>(
            &study_stream(hospital, study_instance_uid),
            StudyCommand::Retrieve,
            metadata,
            vec![],
        )
        .await?;
    for key in state.objects.values() {
        blobs.delete(&format!("{prefix}{key}")).await.map_err(blob_error)?;
    }
    Ok(r.position())
}

/// After a patient was forgotten: delete every object of each of their studies (both
/// tiers, conflicting copies kept aside, renders and thumbnails) and record it per study.
/// `studies` are the (hospital, Study Instance UID) pairs of the patient.
pub async fn erase_patient_objects(
    app: &App,
    blobs: &BlobStore,
    patient_subject: Uuid,
    studies: &[(Uuid, String)],
    metadata: &Metadata,
) -> Result<u64, Error> {
    let mut position = 0;
    for (hospital, uid) in studies {
        let (state, _) = app.load::<Study>(&study_stream(*hospital, uid)).await?;
        // Every object of the study, conflicting copies included, in both tiers.
        for prefix in [
            format!("hospitals/{hospital}/studies/{uid}"),
            format!("{ARCHIVE_PREFIX}/hospitals/{hospital}/studies/{uid}"),
        ] {
            blobs.delete_prefix(&prefix).await.map_err(blob_error)?;
        }
        for sop in state.objects.keys() {
            // Objects stored under the earlier per-instance layout.
            blobs
                .delete_prefix(&format!("hospitals/{hospital}/instances/{sop}"))
                .await
                .map_err(blob_error)?;
            blobs
                .delete_prefix(&format!("{ARCHIVE_PREFIX}/hospitals/{hospital}/instances/{sop}"))
                .await
                .map_err(blob_error)?;
            blobs
                .delete_prefix(&render_prefix(*hospital, sop))
                .await
                .map_err(blob_error)?;
        }
        let mut meta = metadata.clone();
        meta.tenant.hospital_id = Some(*hospital);
        let r = app
            .execute::<Study>(
                &study_stream(*hospital, uid),
                StudyCommand::EraseObjects { patient_subject },
                &meta,
                vec![],
            )
            .await?;
        position = position.max(r.position());
    }
    Ok(position)
}

/// Set the hospital's storage plan (billing unit, resource package, validity).
pub async fn set_storage_plan(
    app: &App,
    principal: &Principal,
    hospital: &Tenant,
    billing_unit: String,
    resource_package: String,
    validity_months: u32,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ConfigureImaging, hospital)?;
    let hospital_id = hospital.hospital_id.ok_or_else(Error::forbidden)?;
    let r = app
        .execute::<ImagingSettings>(
            &settings_stream(hospital_id),
            ImagingSettingsCommand::SetStoragePlan {
                hospital_id,
                billing_unit,
                resource_package,
                validity_months,
            },
            metadata,
            vec![],
        )
        .await?;
    Ok(r.position())
}

/// Allow a calling AE title to send studies to the hospital. A title belongs to one
/// hospital: a second hospital claiming it gets 409 `ae_title_taken`.
pub async fn register_dicom_peer(
    app: &App,
    principal: &Principal,
    hospital: &Tenant,
    title: &str,
    description: Option<String>,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ConfigureImaging, hospital)?;
    let hospital_id = hospital.hospital_id.ok_or_else(Error::forbidden)?;
    let ae = ae_title(title)?;
    let guard = Guard::Claim {
        scope: "dicom-ae".into(),
        key: ae.clone(),
        owner: hospital_id.to_string(),
    };
    match app
        .execute::<ImagingSettings>(
            &settings_stream(hospital_id),
            ImagingSettingsCommand::RegisterPeer {
                hospital_id,
                ae_title: ae,
                description,
            },
            metadata,
            vec![guard],
        )
        .await
    {
        Ok(r) => Ok(r.position()),
        Err(Error::Store(crate::store::StoreError::GuardTaken { .. })) => Err(Error::rejected(
            Kind::Conflict,
            "ae_title_taken",
            "this AE title is registered to another hospital",
        )),
        Err(e) => Err(e),
    }
}

pub async fn remove_dicom_peer(
    app: &App,
    principal: &Principal,
    hospital: &Tenant,
    title: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ConfigureImaging, hospital)?;
    let hospital_id = hospital.hospital_id.ok_or_else(Error::forbidden)?;
    let ae = ae_title(title)?;
    let guard = Guard::Release {
        scope: "dicom-ae".into(),
        key: ae.clone(),
    };
    let r = app
        .execute::<ImagingSettings>(
            &settings_stream(hospital_id),
            ImagingSettingsCommand::RemovePeer {
                hospital_id,
                ae_title: ae,
            },
            metadata,
            vec![guard],
        )
        .await?;
    Ok(r.position())
}

/// Save which worklist columns the user sees, in order.
pub async fn choose_worklist_columns(
    app: &App,
    principal: &Principal,
    columns: Vec<String>,
    metadata: &Metadata,
) -> Result<u64, Error> {
    authorize(principal, Action::ViewStudies, &principal.tenant)?;
    let r = app
        .execute::<WorklistColumns>(
            &format!("worklist-columns-{}", principal.account_id),
            ChooseColumns {
                user_id: principal.account_id,
                columns,
            },
            metadata,
            vec![],
        )
        .await?;
    Ok(r.position())
}
