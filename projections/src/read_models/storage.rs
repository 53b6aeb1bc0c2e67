//! Storage accounting: bytes, instances and studies per hospital (and so per alliance), and
//! one upload-log row per arrival with its billing unit, billing subject (the hospital),
//! resource package and storage validity, taken from the hospital's storage plan in force
//! when the object arrived.
//!
//! A hospital without a plan is billed by [`DEFAULT_PLAN`]. Conflicting copies kept aside
//! count as stored bytes (they are stored) but not as instances. Erasing a forgotten
//! patient's objects gives their bytes back.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Months, Utc};
use medledger_commands::args;
use medledger_commands::codec::{decode, metadata_of};
use medledger_commands::db::{Arg, Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::imaging::settings::ImagingSettingsEvent;
use medledger_domain::imaging::study::{Arrival, StudyEvent};
use serde::Serialize;
use uuid::Uuid;

use super::{opt_uuid_at, runs, uuid_at, Run};
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

    /// Arrivals are written a run at a time: one upsert per study and per
    /// hospital, the upload log in multi-row inserts. Per instance, the two
    /// totals are hot rows every arrival would otherwise update.
    async fn apply_batch(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        for run in runs(events, is_arrival) {
            match run {
                Run::Bulk(arrivals) => self.arrivals(tx, arrivals).await?,
                Run::One(e) => self.apply(tx, e).await?,
            }
        }
        Ok(())
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
        if is_arrival(e) {
            return self.arrivals(tx, std::slice::from_ref(e)).await;
        }
        let study_key = e.stream_id.strip_prefix("study-").unwrap_or(&e.stream_id).to_string();
        if let StudyEvent::StudyObjectsErased { hospital_id, .. } = decode::<StudyEvent>(e)? {
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
        Ok(())
    }
}

/// A stored instance or a conflicting copy kept aside: both are billed stored bytes.
fn is_arrival(e: &RecordedEvent) -> bool {
    matches!(e.event_type.as_str(), "InstanceStored" | "InstanceConflictRecorded")
}

/// One stored object, as the upload log and the totals see it.
struct Upload {
    position: i64,
    at: DateTime<Utc>,
    hospital_id: Uuid,
    alliance: Option<Uuid>,
    study_key: String,
    study: String,
    sop: String,
    size: i64,
    /// A conflicting copy kept aside is stored bytes but not an instance.
    instance: bool,
    arrival: String,
}

impl Upload {
    fn of(e: &RecordedEvent) -> Result<Option<Upload>, ProjectionError> {
        let study_key = e.stream_id.strip_prefix("study-").unwrap_or(&e.stream_id).to_string();
        let meta = metadata_of(e);
        let alliance = meta.as_ref().and_then(|m| m.tenant.alliance_id);
        let arrival_text = |a: Arrival| {
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let upload = |hospital_id, study, sop, size: u64, instance, arrival| Upload {
            position: e.global_position as i64,
            at: e.recorded_at,
            hospital_id,
            alliance,
            study_key: study_key.clone(),
            study,
            sop,
            size: size as i64,
            instance,
            arrival: arrival_text(arrival),
        };
        Ok(match decode::<StudyEvent>(e)? {
            StudyEvent::InstanceStored {
                hospital_id,
                study_instance_uid,
                sop_instance_uid,
                object,
                arrival,
                ..
            } => Some(upload(
                hospital_id,
                study_instance_uid,
                sop_instance_uid,
                object.size,
                true,
                arrival,
            )),
            StudyEvent::InstanceConflictRecorded {
                sop_instance_uid,
                received,
                arrival,
                ..
            } => meta.and_then(|m| m.tenant.hospital_id).map(|hospital_id| {
                let study = study_key
                    .split_once('.')
                    .map(|(_, s)| s.to_string())
                    .unwrap_or_default();
                upload(hospital_id, study, sop_instance_uid, received.size, false, arrival)
            }),
            _ => None,
        })
    }
}

impl Storage {
    /// Arrivals (stored instances and conflicting copies) in log order: the
    /// study and hospital totals once per study and hospital, then the upload log.
    async fn arrivals(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let mut uploads = Vec::with_capacity(events.len());
        for e in events {
            uploads.extend(Upload::of(e)?);
        }
        // Totals per study, in first-arrival order, grouped by hospital.
        let mut studies: Vec<(String, Uuid, i64, i64)> = Vec::new();
        let mut study_index: HashMap<&str, usize> = HashMap::new();
        for u in &uploads {
            let i = *study_index.entry(&u.study_key).or_insert_with(|| {
                studies.push((u.study_key.clone(), u.hospital_id, 0, 0));
                studies.len() - 1
            });
            studies[i].2 += u.size;
            studies[i].3 += i64::from(u.instance);
        }
        let mut hospitals: Vec<(Uuid, Option<Uuid>)> = Vec::new();
        for u in &uploads {
            if !hospitals.iter().any(|(h, _)| *h == u.hospital_id) {
                hospitals.push((u.hospital_id, u.alliance));
            }
        }
        for (hospital_id, alliance) in hospitals {
            let mine: Vec<&(String, Uuid, i64, i64)> = studies.iter().filter(|s| s.1 == hospital_id).collect();
            // Rows that are new count as new studies of the hospital.
            let keys: Vec<Arg> = mine
                .iter()
                .flat_map(|s| [Arg::from(&s.0), Arg::from(hospital_id), Arg::I64(0), Arg::I64(0)])
                .collect();
            let new_studies = tx
                .insert_rows(STUDY_HEAD, 4, &keys, "ON CONFLICT (study_key) DO NOTHING")
                .await?;
            let totals: Vec<Arg> = mine
                .iter()
                .flat_map(|s| [Arg::from(&s.0), Arg::from(hospital_id), Arg::I64(s.2), Arg::I64(s.3)])
                .collect();
            tx.insert_rows(
                STUDY_HEAD,
                4,
                &totals,
                "ON CONFLICT (study_key) DO UPDATE SET bytes = rm_storage_studies.bytes + excluded.bytes, \
                 instances = rm_storage_studies.instances + excluded.instances",
            )
            .await?;
            let (bytes, instances) = mine.iter().fold((0, 0), |(b, n), s| (b + s.2, n + s.3));
            tx.execute(
                "INSERT INTO rm_storage_usage (hospital_id, alliance_id, bytes, instances, studies) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (hospital_id) DO UPDATE SET bytes = rm_storage_usage.bytes + excluded.bytes, \
                 instances = rm_storage_usage.instances + excluded.instances, studies = rm_storage_usage.studies + excluded.studies, \
                 alliance_id = COALESCE(rm_storage_usage.alliance_id, excluded.alliance_id)",
                &args![hospital_id, alliance, bytes, instances, new_studies as i64],
            )
            .await?;
            self.log(tx, hospital_id, uploads.iter().filter(|u| u.hospital_id == hospital_id))
                .await?;
        }
        Ok(())
    }

    /// Upload-log rows of one hospital's arrivals, billed by its plan.
    async fn log<'a>(
        &self,
        tx: &mut DbTx,
        hospital_id: Uuid,
        uploads: impl Iterator<Item = &'a Upload>,
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
        let mut rows = Vec::new();
        for u in uploads {
            let valid_until =
                u.at.date_naive()
                    .checked_add_months(Months::new(months))
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_default();
            rows.extend([
                Arg::I64(u.position),
                Arg::from(hospital_id),
                Arg::from(u.alliance),
                Arg::from(&u.study),
                Arg::from(&u.sop),
                Arg::I64(u.size),
                Arg::from(&u.arrival),
                Arg::from(&unit),
                Arg::from(hospital_id.to_string()),
                Arg::from(&package),
                Arg::from(valid_until),
                Arg::from(u.at),
            ]);
        }
        tx.insert_rows(
            "INSERT INTO rm_upload_log (position, hospital_id, alliance_id, study_instance_uid, sop_instance_uid, size_bytes, \
             arrival, billing_unit, billing_subject, resource_package, valid_until, uploaded_at)",
            12,
            &rows,
            "ON CONFLICT (position) DO NOTHING",
        )
        .await?;
        Ok(())
    }
}

const STUDY_HEAD: &str = "INSERT INTO rm_storage_studies (study_key, hospital_id, bytes, instances)";

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
