//! Storage accounting: bytes, instances and studies per hospital (and so per alliance), and
//! one upload-log row per arrival with its billing unit, billing subject (the hospital),
//! resource package and storage validity, taken from the hospital's storage plan in force
//! when the object arrived.
//!
//! A hospital without a plan is billed by [`DEFAULT_PLAN`]. Conflicting copies kept aside
//! count as stored bytes (they are stored) but not as instances. Erasing a forgotten
//! patient's objects gives their bytes back.

use async_trait::async_trait;
use chrono::{DateTime, Months, Utc};
use medledger_commands::args;
use medledger_commands::codec::{decode, metadata_of};
use medledger_commands::db::{Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::imaging::settings::ImagingSettingsEvent;
use medledger_domain::imaging::study::{Arrival, StudyEvent};
use serde::Serialize;
use uuid::Uuid;

use super::{opt_uuid_at, uuid_at};
use crate::runner::{Projection, ProjectionError};

pub struct Storage;

pub const NAME: &str = "storage";

/// Billing unit, resource package and validity (months) without a plan.
pub const DEFAULT_PLAN: (&str, &str, u32) = ("hospital", "standard", 120);

#[async_trait]
impl Projection for Storage {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "StoragePlanSet",
            "InstanceStored",
            "InstanceConflictRecorded",
            "StudyObjectsErased",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_storage_plans",
            "rm_storage_usage",
            "rm_storage_studies",
            "rm_upload_log",
        ]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if e.event_type == "StoragePlanSet" {
            if let ImagingSettingsEvent::StoragePlanSet {
                hospital_id,
                billing_unit,
                resource_package,
                validity_months,
            } = decode(e)?
            {
                tx.execute(
                    "INSERT INTO rm_storage_plans (hospital_id, billing_unit, resource_package, validity_months) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (hospital_id) DO UPDATE SET billing_unit = excluded.billing_unit, \
                     resource_package = excluded.resource_package, validity_months = excluded.validity_months",
                    &args![hospital_id, billing_unit, resource_package, validity_months as i64],
                )
                .await?;
            }
            return Ok(());
        }
        let study_key = e.stream_id.strip_prefix("study-").unwrap_or(&e.stream_id).to_string();
        let alliance = metadata_of(e).and_then(|m| m.tenant.alliance_id);
        match decode::<StudyEvent>(e)? {
            StudyEvent::InstanceStored {
                hospital_id,
                study_instance_uid,
                sop_instance_uid,
                object,
                arrival,
                ..
            } => {
                self.arrival(tx, e, hospital_id, alliance, &study_key, object.size, true)
                    .await?;
                self.log(
                    tx,
                    e,
                    hospital_id,
                    alliance,
                    &study_instance_uid,
                    &sop_instance_uid,
                    object.size,
                    arrival,
                )
                .await?;
            }
            StudyEvent::InstanceConflictRecorded {
                sop_instance_uid,
                received,
                arrival,
                ..
            } => {
                let Some(hospital_id) = metadata_of(e).and_then(|m| m.tenant.hospital_id) else {
                    return Ok(());
                };
                let study = study_key
                    .split_once('.')
                    .map(|(_, s)| s.to_string())
                    .unwrap_or_default();
                self.arrival(tx, e, hospital_id, alliance, &study_key, received.size, false)
                    .await?;
                self.log(
                    tx,
                    e,
                    hospital_id,
                    alliance,
                    &study,
                    &sop_instance_uid,
                    received.size,
                    arrival,
                )
                .await?;
            }
            StudyEvent::StudyObjectsErased { hospital_id, .. } => {
                let row = tx
                    .fetch_optional(
                        "SELECT bytes, instances FROM rm_storage_studies WHERE study_key = $1",
                        &args![study_key.clone()],
                    )
                    .await?;
                if let Some(r) = row {
                    let (bytes, instances): (i64, i64) = (r.get(0)?, r.get(1)?);
                    tx.execute(
                        "UPDATE rm_storage_usage SET bytes = bytes - $2, instances = instances - $3, studies = studies - 1 \
                         WHERE hospital_id = $1",
                        &args![hospital_id, bytes, instances],
                    )
                    .await?;
                    tx.execute("DELETE FROM rm_storage_studies WHERE study_key = $1", &args![study_key])
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Storage {
    #[allow(clippy::too_many_arguments)]
    async fn arrival(
        &self,
        tx: &mut DbTx,
        _e: &RecordedEvent,
        hospital_id: Uuid,
        alliance: Option<Uuid>,
        study_key: &str,
        size: u64,
        counts_as_instance: bool,
    ) -> Result<(), ProjectionError> {
        let instance = i64::from(counts_as_instance);
        let new_study = tx
            .fetch_optional(
                "SELECT 1 FROM rm_storage_studies WHERE study_key = $1",
                &args![study_key.to_string()],
            )
            .await?
            .is_none();
        tx.execute(
            "INSERT INTO rm_storage_studies (study_key, hospital_id, bytes, instances) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (study_key) DO UPDATE SET bytes = rm_storage_studies.bytes + excluded.bytes, \
             instances = rm_storage_studies.instances + excluded.instances",
            &args![study_key.to_string(), hospital_id, size as i64, instance],
        )
        .await?;
        tx.execute(
            "INSERT INTO rm_storage_usage (hospital_id, alliance_id, bytes, instances, studies) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (hospital_id) DO UPDATE SET bytes = rm_storage_usage.bytes + excluded.bytes, \
             instances = rm_storage_usage.instances + excluded.instances, studies = rm_storage_usage.studies + excluded.studies, \
             alliance_id = COALESCE(rm_storage_usage.alliance_id, excluded.alliance_id)",
            &args![hospital_id, alliance, size as i64, instance, i64::from(new_study)],
        )
        .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn log(
        &self,
        tx: &mut DbTx,
        e: &RecordedEvent,
        hospital_id: Uuid,
        alliance: Option<Uuid>,
        study: &str,
        sop: &str,
        size: u64,
        arrival: Arrival,
    ) -> Result<(), ProjectionError> {
        let plan = tx
            .fetch_optional(
                "SELECT billing_unit, resource_package, validity_months FROM rm_storage_plans WHERE hospital_id = $1",
                &args![hospital_id],
            )
            .await?;
        let (unit, package, months) = match plan {
            Some(r) => (r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)? as u32),
            None => (DEFAULT_PLAN.0.to_string(), DEFAULT_PLAN.1.to_string(), DEFAULT_PLAN.2),
        };
        let valid_until = e
            .recorded_at
            .date_naive()
            .checked_add_months(Months::new(months))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let arrival = serde_json::to_value(arrival)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        tx.execute(
            "INSERT INTO rm_upload_log (position, hospital_id, alliance_id, study_instance_uid, sop_instance_uid, size_bytes, \
             arrival, billing_unit, billing_subject, resource_package, valid_until, uploaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (position) DO NOTHING",
            &args![
                e.global_position as i64,
                hospital_id,
                alliance,
                study.to_string(),
                sop.to_string(),
                size as i64,
                arrival,
                unit,
                hospital_id.to_string(),
                package,
                valid_until,
                e.recorded_at
            ],
        )
        .await?;
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct StorageUsage {
    pub hospital_id: Uuid,
    pub alliance_id: Option<Uuid>,
    pub bytes: i64,
    pub instances: i64,
    pub studies: i64,
}

/// Usage of one hospital, or of every hospital of an alliance (`hospital_id` `None`).
pub async fn usage(
    db: &Db,
    alliance: Option<Uuid>,
    hospital: Option<Uuid>,
) -> Result<Vec<StorageUsage>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT hospital_id, alliance_id, bytes, instances, studies FROM rm_storage_usage \
             WHERE ($1 IS NULL OR alliance_id = $2) AND ($3 IS NULL OR hospital_id = $4) ORDER BY hospital_id",
            &args![alliance, alliance, hospital, hospital],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StorageUsage {
                hospital_id: uuid_at(r, 0)?,
                alliance_id: opt_uuid_at(r, 1)?,
                bytes: r.get(2)?,
                instances: r.get(3)?,
                studies: r.get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct UploadEntry {
    pub position: i64,
    pub hospital_id: Uuid,
    pub study_instance_uid: String,
    pub sop_instance_uid: String,
    pub size_bytes: i64,
    pub arrival: String,
    pub billing_unit: String,
    pub billing_subject: String,
    pub resource_package: String,
    /// Storage validity (YYYY-MM-DD).
    pub valid_until: String,
    pub uploaded_at: DateTime<Utc>,
}

/// Upload-log entries after `after` (a position cursor), oldest first.
pub async fn uploads(
    db: &Db,
    alliance: Option<Uuid>,
    hospital: Option<Uuid>,
    after: i64,
    limit: u32,
) -> Result<Vec<UploadEntry>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT position, hospital_id, study_instance_uid, sop_instance_uid, size_bytes, arrival, billing_unit, \
             billing_subject, resource_package, valid_until, uploaded_at FROM rm_upload_log \
             WHERE ($1 IS NULL OR alliance_id = $2) AND ($3 IS NULL OR hospital_id = $4) AND position > $5 \
             ORDER BY position LIMIT $6",
            &args![alliance, alliance, hospital, hospital, after, limit as i64],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UploadEntry {
                position: r.get(0)?,
                hospital_id: uuid_at(r, 1)?,
                study_instance_uid: r.get(2)?,
                sop_instance_uid: r.get(3)?,
                size_bytes: r.get(4)?,
                arrival: r.get(5)?,
                billing_unit: r.get(6)?,
                billing_subject: r.get(7)?,
                resource_package: r.get(8)?,
                valid_until: r.get(9)?,
                uploaded_at: r.time(10)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}
