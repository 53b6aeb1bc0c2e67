//! Every stored instance of a hospital, for DICOMweb retrieval (where is
//! the object, which transfer syntax) and series/instance-level queries.
//! Each row also keeps the instance's data set as DICOM JSON (the decrypted copy of the
//! sealed event field) for WADO-RS `/metadata`; it is erased when the patient is forgotten.
//! `study_state` follows the study's life: `online`, `deleted`, `archived`, `erased`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::decode;
use medledger_commands::db::{Arg, Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::administration::AdministrationEvent;
use medledger_domain::imaging::study::StudyEvent;
use serde::Serialize;
use uuid::Uuid;

use super::{runs, Run};
use crate::runner::{Projection, ProjectionError};

pub struct Instances;

pub const NAME: &str = "instances";

#[async_trait]
impl Projection for Instances {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        2
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "InstanceStored",
            "StudyDeleted",
            "StudyRestored",
            "StudyArchived",
            "StudyRetrieved",
            "StudyObjectsErased",
            "SubjectForgotten",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_instances"]
    }

    /// Stored instances go in multi-row inserts, a run at a time.
    async fn apply_batch(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        for run in runs(events, |e| e.event_type == "InstanceStored") {
            match run {
                Run::Bulk(stored_run) => stored(tx, stored_run).await?,
                Run::One(e) => self.apply(tx, e).await?,
            }
        }
        Ok(())
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if e.event_type == "SubjectForgotten" {
            if let AdministrationEvent::SubjectForgotten { subject_id, .. } = decode(e)? {
                tx.execute(
                    "UPDATE rm_instances SET metadata = NULL WHERE patient_subject = $1",
                    &args![subject_id],
                )
                .await?;
            }
            return Ok(());
        }
        let update = match decode::<StudyEvent>(e)? {
            StudyEvent::InstanceStored { .. } => return stored(tx, std::slice::from_ref(e)).await,
            StudyEvent::StudyDeleted {
                hospital_id,
                study_instance_uid,
                ..
            } => ("deleted = TRUE", hospital_id, study_instance_uid),
            StudyEvent::StudyRestored {
                hospital_id,
                study_instance_uid,
                ..
            } => ("deleted = FALSE", hospital_id, study_instance_uid),
            StudyEvent::StudyArchived {
                hospital_id,
                study_instance_uid,
                ..
            } => ("storage_tier = 'archived'", hospital_id, study_instance_uid),
            StudyEvent::StudyRetrieved {
                hospital_id,
                study_instance_uid,
                ..
            } => ("storage_tier = 'online'", hospital_id, study_instance_uid),
            StudyEvent::StudyObjectsErased {
                hospital_id,
                study_instance_uid,
                ..
            } => ("erased = TRUE, metadata = NULL", hospital_id, study_instance_uid),
            _ => return Ok(()),
        };
        let (set, hospital, study) = update;
        tx.execute(
            &format!("UPDATE rm_instances SET {set} WHERE hospital_id = $1 AND study_instance_uid = $2"),
            &args![hospital, study],
        )
        .await?;
        Ok(())
    }
}

/// One row per stored instance (a copy already there is left as it is).
async fn stored(tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
    let mut rows = Vec::with_capacity(events.len() * 19);
    for e in events {
        let StudyEvent::InstanceStored {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            patient,
            attributes: a,
            object,
            dataset,
            ..
        } = decode::<StudyEvent>(e)?
        else {
            continue;
        };
        let metadata = dataset.as_ref().and_then(|d| d.value()).map(str::to_string);
        rows.extend([
            Arg::from(format!("{hospital_id}.{sop_instance_uid}")),
            Arg::from(hospital_id),
            Arg::from(study_instance_uid),
            Arg::from(a.series_instance_uid),
            Arg::from(sop_instance_uid),
            Arg::from(a.sop_class_uid),
            Arg::from(a.transfer_syntax_uid),
            Arg::from(a.modality),
            Arg::from(a.series_number.map(i64::from)),
            Arg::from(a.series_description),
            Arg::from(a.instance_number.map(i64::from)),
            Arg::from(a.rows.map(i64::from)),
            Arg::from(a.columns.map(i64::from)),
            Arg::from(a.number_of_frames as i64),
            Arg::from(object.blob_key),
            Arg::from(object.size),
            Arg::from(e.recorded_at),
            Arg::from(metadata),
            Arg::from(patient.patient_id.subject()),
        ]);
    }
    tx.insert_rows(
        "INSERT INTO rm_instances (instance_key, hospital_id, study_instance_uid, series_instance_uid, sop_instance_uid, \
         sop_class_uid, transfer_syntax_uid, modality, series_number, series_description, instance_number, rows_count, \
         columns_count, number_of_frames, blob_key, size_bytes, received_at, metadata, patient_subject)",
        19,
        &rows,
        "ON CONFLICT (instance_key) DO NOTHING",
    )
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InstanceView {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub number_of_frames: i64,
    pub blob_key: String,
    pub size_bytes: i64,
    pub received_at: DateTime<Utc>,
    pub deleted: bool,
    /// `online` or `archived`.
    pub storage_tier: String,
    /// The objects were erased with their patient.
    pub erased: bool,
}

/// `columns` of a hospital's instances of a study (optionally one series, one instance),
/// in series and instance order, at most `limit`.
async fn select_instances(
    db: &Db,
    columns: &str,
    (hospital_id, study, series, sop): (Uuid, &str, Option<&str>, Option<&str>),
    limit: u32,
) -> Result<Vec<medledger_commands::db::DbRow>, ProjectionError> {
    let mut sql = format!("SELECT {columns} FROM rm_instances WHERE hospital_id = $1 AND study_instance_uid = $2");
    let mut args = vec![Arg::from(hospital_id), Arg::from(study)];
    if let Some(s) = series {
        args.push(Arg::from(s));
        sql.push_str(&format!(" AND series_instance_uid = ${}", args.len()));
    }
    if let Some(i) = sop {
        args.push(Arg::from(i));
        sql.push_str(&format!(" AND sop_instance_uid = ${}", args.len()));
    }
    args.push(Arg::from(limit as i64));
    sql.push_str(&format!(
        " ORDER BY series_number, series_instance_uid, instance_number, sop_instance_uid LIMIT ${}",
        args.len()
    ));
    Ok(db.fetch_all(&sql, &args).await?)
}

/// A hospital's instances of a study, optionally of one series or one
/// instance, ordered by series and instance number. At most `limit`.
pub async fn find(
    db: &Db,
    hospital_id: Uuid,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
    limit: u32,
) -> Result<Vec<InstanceView>, ProjectionError> {
    let rows = select_instances(
        db,
        "study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid, transfer_syntax_uid, modality, \
         series_number, series_description, instance_number, rows_count, columns_count, number_of_frames, blob_key, \
         size_bytes, received_at, deleted, storage_tier, erased",
        (hospital_id, study, series, sop),
        limit,
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InstanceView {
                study_instance_uid: r.get(0)?,
                series_instance_uid: r.get(1)?,
                sop_instance_uid: r.get(2)?,
                sop_class_uid: r.get(3)?,
                transfer_syntax_uid: r.get(4)?,
                modality: r.get(5)?,
                series_number: r.get(6)?,
                series_description: r.get(7)?,
                instance_number: r.get(8)?,
                rows: r.get(9)?,
                columns: r.get(10)?,
                number_of_frames: r.get(11)?,
                blob_key: r.get(12)?,
                size_bytes: r.get(13)?,
                received_at: r.time(14)?,
                deleted: r.get(15)?,
                storage_tier: r.get(16)?,
                erased: r.get(17)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

/// The series of a study with their instance counts (QIDO-RS series level).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesView {
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instances: i64,
}

pub async fn series_of(db: &Db, hospital_id: Uuid, study: &str) -> Result<Vec<SeriesView>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT series_instance_uid, MIN(modality), MIN(series_number), MIN(series_description), COUNT(*) \
             FROM rm_instances WHERE hospital_id = $1 AND study_instance_uid = $2 AND deleted = FALSE \
             GROUP BY series_instance_uid ORDER BY MIN(series_number), series_instance_uid",
            &[Arg::from(hospital_id), Arg::from(study)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(SeriesView {
                series_instance_uid: r.get(0)?,
                modality: r.get(1)?,
                series_number: r.get(2)?,
                series_description: r.get(3)?,
                instances: r.get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

/// The stored DICOM JSON of a hospital's instances of a study (optionally one series or
/// one instance), in series and instance order, with the study's availability. `None`
/// entries are instances whose metadata was erased with their patient.
pub async fn metadata(
    db: &Db,
    hospital_id: Uuid,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
    limit: u32,
) -> Result<Vec<(Option<String>, bool, String, bool)>, ProjectionError> {
    let rows = select_instances(
        db,
        "metadata, deleted, storage_tier, erased",
        (hospital_id, study, series, sop),
        limit,
    )
    .await?;
    rows.iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}
