//! Every stored instance of a hospital, for DICOMweb retrieval (where is
//! the object, which transfer syntax) and series/instance-level queries.
//! Holds no personal data: patient attributes live in the worklist.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::codec::decode;
use medledger_commands::db::{Arg, Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::imaging::study::StudyEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::runner::{Projection, ProjectionError};

pub struct Instances;

pub const NAME: &str = "instances";

#[async_trait]
impl Projection for Instances {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["InstanceStored"]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_instances"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if let StudyEvent::InstanceStored {
            hospital_id,
            study_instance_uid,
            sop_instance_uid,
            attributes: a,
            object,
            ..
        } = decode(e)?
        {
            tx.execute(
                "INSERT INTO rm_instances (instance_key, hospital_id, study_instance_uid, series_instance_uid, sop_instance_uid, \
                 sop_class_uid, transfer_syntax_uid, modality, series_number, series_description, instance_number, rows_count, \
                 columns_count, number_of_frames, blob_key, size_bytes, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 ON CONFLICT (instance_key) DO NOTHING",
                &[
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
                ],
            )
            .await?;
        }
        Ok(())
    }
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
    let mut sql = String::from(
        "SELECT study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid, transfer_syntax_uid, modality, \
         series_number, series_description, instance_number, rows_count, columns_count, number_of_frames, blob_key, \
         size_bytes, received_at FROM rm_instances WHERE hospital_id = $1 AND study_instance_uid = $2",
    );
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
    let rows = db.fetch_all(&sql, &args).await?;
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
             FROM rm_instances WHERE hospital_id = $1 AND study_instance_uid = $2 \
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
