//! Studies shown to colleagues, and each user's notifications (a study shared with them).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::decode;
use medledger_commands::db::{Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::imaging::study::StudyEvent;
use serde::Serialize;
use uuid::Uuid;

use super::uuid_at;
use crate::runner::{Projection, ProjectionError};

pub struct Sharing;

pub const NAME: &str = "sharing";

#[async_trait]
impl Projection for Sharing {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["StudyShared"]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_study_shares", "rm_notifications"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if let StudyEvent::StudyShared {
            hospital_id,
            study_instance_uid,
            shared_with,
            shared_by,
            note,
        } = decode(e)?
        {
            tx.execute(
                "INSERT INTO rm_study_shares (share_id, hospital_id, study_instance_uid, shared_with, shared_by, note, shared_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (share_id) DO NOTHING",
                &args![
                    e.event_id,
                    hospital_id,
                    study_instance_uid.clone(),
                    shared_with,
                    shared_by,
                    note.clone(),
                    e.recorded_at
                ],
            )
            .await?;
            let body = serde_json::json!({
                "study_instance_uid": study_instance_uid,
                "shared_by": shared_by,
                "note": note,
            });
            tx.execute(
                "INSERT INTO rm_notifications (notification_id, user_id, kind, body, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (notification_id) DO NOTHING",
                &args![e.event_id, shared_with, "study_shared", body.to_string(), e.recorded_at],
            )
            .await?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub kind: String,
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A user's newest notifications first.
pub async fn notifications(db: &Db, user: Uuid, limit: u32) -> Result<Vec<Notification>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT notification_id, kind, body, created_at FROM rm_notifications WHERE user_id = $1 \
             ORDER BY created_at DESC, notification_id DESC LIMIT $2",
            &args![user, limit as i64],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let body: String = r.get(2)?;
            Ok(Notification {
                id: uuid_at(r, 0)?,
                kind: r.get(1)?,
                body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                created_at: r.time(3)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}
