//! Per-user worklist columns and per-hospital DICOM peers (calling AE titles).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::{decode, metadata_of};
use medledger_commands::db::{Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::imaging::settings::ImagingSettingsEvent;
use medledger_domain::imaging::worklist_columns::{WorklistColumnsEvent, DEFAULT_COLUMNS};
use serde::Serialize;
use uuid::Uuid;

use super::{opt_uuid_at, uuid_at};
use crate::runner::{Projection, ProjectionError};

pub struct ImagingSettings;

pub const NAME: &str = "imaging_settings";

#[async_trait]
impl Projection for ImagingSettings {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["WorklistColumnsChosen", "DicomPeerRegistered", "DicomPeerRemoved"]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_worklist_columns", "rm_dicom_peers"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if e.event_type == "WorklistColumnsChosen" {
            let WorklistColumnsEvent::WorklistColumnsChosen { user_id, columns } = decode(e)?;
            let columns = serde_json::to_string(&columns).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "INSERT INTO rm_worklist_columns (user_id, columns) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET columns = excluded.columns",
                &args![user_id, columns],
            )
            .await?;
            return Ok(());
        }
        match decode::<ImagingSettingsEvent>(e)? {
            ImagingSettingsEvent::DicomPeerRegistered {
                hospital_id,
                ae_title,
                description,
            } => {
                let alliance = metadata_of(e).and_then(|m| m.tenant.alliance_id);
                tx.execute(
                    "INSERT INTO rm_dicom_peers (ae_title, hospital_id, alliance_id, description, registered_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ae_title) DO UPDATE SET hospital_id = excluded.hospital_id, \
                     alliance_id = excluded.alliance_id, description = excluded.description",
                    &args![ae_title, hospital_id, alliance, description, e.recorded_at],
                )
                .await?;
            }
            ImagingSettingsEvent::DicomPeerRemoved { hospital_id, ae_title } => {
                tx.execute(
                    "DELETE FROM rm_dicom_peers WHERE ae_title = $1 AND hospital_id = $2",
                    &args![ae_title, hospital_id],
                )
                .await?;
            }
            ImagingSettingsEvent::StoragePlanSet { .. } => {}
        }
        Ok(())
    }
}

/// The user's worklist columns, or the defaults.
pub async fn worklist_columns(db: &Db, user: Uuid) -> Result<Vec<String>, ProjectionError> {
    let row = db
        .fetch_optional(
            "SELECT columns FROM rm_worklist_columns WHERE user_id = $1",
            &args![user],
        )
        .await?;
    let chosen: Option<Vec<String>> = match row {
        Some(r) => serde_json::from_str(&r.get::<String>(0)?).ok(),
        None => None,
    };
    Ok(chosen.unwrap_or_else(|| DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect()))
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DicomPeer {
    pub ae_title: String,
    pub hospital_id: Uuid,
    pub alliance_id: Option<Uuid>,
    pub description: Option<String>,
    pub registered_at: DateTime<Utc>,
}

/// Every registered peer (`hospital` `None`) or one hospital's.
pub async fn dicom_peers(db: &Db, hospital: Option<Uuid>) -> Result<Vec<DicomPeer>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT ae_title, hospital_id, alliance_id, description, registered_at FROM rm_dicom_peers \
             WHERE ($1 IS NULL OR hospital_id = $2) ORDER BY ae_title",
            &args![hospital, hospital],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DicomPeer {
                ae_title: r.get(0)?,
                hospital_id: uuid_at(r, 1)?,
                alliance_id: opt_uuid_at(r, 2)?,
                description: r.get(3)?,
                registered_at: r.time(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}
