//! Which worklist columns a user sees, in which order (stream `worklist-columns-<user>`).
//!
//! Rules: 1 to 30 columns from the closed list [`COLUMNS`], each at most once. Choosing the
//! same list again records nothing. A user who never chose sees [`DEFAULT_COLUMNS`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};

/// Every column the worklist can show.
pub const COLUMNS: [&str; 19] = [
    "patient_name",
    "patient_id",
    "patient_sex",
    "patient_age",
    "modalities",
    "body_part",
    "study_description",
    "study_date",
    "study_time",
    "accession_number",
    "referring_physician",
    "institution",
    "status",
    "report_status",
    "printed_at",
    "instance_count",
    "size_bytes",
    "storage_tier",
    "received_at",
];

/// What a user sees before choosing.
pub const DEFAULT_COLUMNS: [&str; 10] = [
    "patient_name",
    "patient_id",
    "patient_sex",
    "patient_age",
    "modalities",
    "body_part",
    "study_description",
    "study_date",
    "status",
    "instance_count",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WorklistColumnsEvent {
    WorklistColumnsChosen { user_id: Uuid, columns: Vec<String> },
}

crate::event_catalog!(WorklistColumnsEvent, "imaging", [WorklistColumnsChosen = 1]);

#[derive(Clone, Debug, PartialEq)]
pub struct ChooseColumns {
    pub user_id: Uuid,
    pub columns: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorklistColumnsError {
    #[error("choose 1 to 30 columns")]
    Count,
    #[error("unknown column {0:?}")]
    Unknown(String),
    #[error("column {0:?} is listed twice")]
    Repeated(String),
}

pub struct WorklistColumns;

impl Decider for WorklistColumns {
    type State = Option<Vec<String>>;
    type Command = ChooseColumns;
    type Event = WorklistColumnsEvent;
    type Error = WorklistColumnsError;

    fn decide(s: &Self::State, c: ChooseColumns, _: &Ctx) -> Result<Vec<WorklistColumnsEvent>, WorklistColumnsError> {
        if c.columns.is_empty() || c.columns.len() > 30 {
            return Err(WorklistColumnsError::Count);
        }
        for (i, col) in c.columns.iter().enumerate() {
            if !COLUMNS.contains(&col.as_str()) {
                return Err(WorklistColumnsError::Unknown(col.clone()));
            }
            if c.columns[..i].contains(col) {
                return Err(WorklistColumnsError::Repeated(col.clone()));
            }
        }
        if s.as_ref() == Some(&c.columns) {
            return Ok(vec![]);
        }
        Ok(vec![WorklistColumnsEvent::WorklistColumnsChosen {
            user_id: c.user_id,
            columns: c.columns,
        }])
    }

    fn evolve(_: Self::State, e: &WorklistColumnsEvent) -> Self::State {
        let WorklistColumnsEvent::WorklistColumnsChosen { columns, .. } = e;
        Some(columns.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    const U: Uuid = Uuid::from_u128(3);

    fn choose(cols: &[&str]) -> ChooseColumns {
        ChooseColumns {
            user_id: U,
            columns: cols.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn columns_come_from_the_closed_list_once_each_and_in_the_order_chosen() {
        let ctx = Ctx::at(chrono::Utc::now());
        let chosen = WorklistColumnsEvent::WorklistColumnsChosen {
            user_id: U,
            columns: vec!["study_date".into(), "patient_name".into()],
        };
        given::<WorklistColumns>(&[])
            .when(choose(&["study_date", "patient_name"]), &ctx)
            .then(std::slice::from_ref(&chosen));
        given::<WorklistColumns>(&[chosen])
            .when(choose(&["study_date", "patient_name"]), &ctx)
            .then(&[]);
        given::<WorklistColumns>(&[])
            .when(choose(&[]), &ctx)
            .then_error(WorklistColumnsError::Count);
        given::<WorklistColumns>(&[])
            .when(choose(&["password"]), &ctx)
            .then_error(WorklistColumnsError::Unknown("password".into()));
        given::<WorklistColumns>(&[])
            .when(choose(&["status", "status"]), &ctx)
            .then_error(WorklistColumnsError::Repeated("status".into()));
        assert!(DEFAULT_COLUMNS.iter().all(|c| COLUMNS.contains(c)));
    }
}
