//! `medledger verify`: recompute every stream's hash chain and every global
//! seal, and name the first event that does not match.

use std::collections::HashMap;

use crate::store::hashing::{event_hash, seal_step, GENESIS};
use crate::store::{EventStore, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The event's content does not hash to its stored hash (or its chain).
    EventHash {
        position: u64,
        event_id: String,
        stream_id: String,
    },
    /// A stream skips or repeats a version.
    StreamVersion {
        position: u64,
        event_id: String,
        stream_id: String,
        expected: u64,
        found: u64,
    },
    /// Global positions must be dense.
    PositionGap { expected: u64, found: u64 },
    /// The running hash at a seal differs from the recomputed one.
    Seal { position: u64 },
    /// A seal names a position after the last event.
    SealBeyondLog { position: u64 },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::EventHash { position, event_id, stream_id } => write!(
                f,
                "event {event_id} (stream {stream_id}, global position {position}) does not match its hash"
            ),
            Failure::StreamVersion { position, event_id, stream_id, expected, found } => write!(
                f,
                "event {event_id} (stream {stream_id}, global position {position}) has version {found}, expected {expected}"
            ),
            Failure::PositionGap { expected, found } => {
                write!(f, "global position {expected} is missing (next is {found})")
            }
            Failure::Seal { position } => write!(f, "the seal at global position {position} does not match the log"),
            Failure::SealBeyondLog { position } => write!(f, "a seal names position {position}, beyond the log"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub streams: u64,
    pub seals: u64,
    pub failure: Option<Failure>,
}

pub async fn verify(store: &dyn EventStore) -> Result<Report, StoreError> {
    let seals = store.seals().await?;
    let mut next_seal = seals.iter().peekable();
    let mut heads: HashMap<String, (u64, String)> = HashMap::new();
    let mut running = GENESIS.to_string();
    let mut report = Report::default();
    let mut position = 0u64;
    loop {
        let batch = store.read_all_raw(position, 5000).await?;
        if batch.is_empty() {
            break;
        }
        for e in batch {
            if e.global_position != position + 1 {
                report.failure = Some(Failure::PositionGap {
                    expected: position + 1,
                    found: e.global_position,
                });
                return Ok(report);
            }
            position = e.global_position;
            let head = heads
                .entry(e.stream_id.clone())
                .or_insert_with(|| (0, GENESIS.to_string()));
            if e.stream_version != head.0 + 1 {
                report.failure = Some(Failure::StreamVersion {
                    position,
                    event_id: e.event_id,
                    stream_id: e.stream_id,
                    expected: head.0 + 1,
                    found: e.stream_version,
                });
                return Ok(report);
            }
            let h = event_hash(
                &head.1,
                &e.event_id,
                &e.stream_id,
                e.stream_version,
                &e.event_type,
                e.schema_version,
                e.recorded_at,
                &e.payload,
                &e.metadata,
            );
            if h != e.hash {
                report.failure = Some(Failure::EventHash {
                    position,
                    event_id: e.event_id,
                    stream_id: e.stream_id,
                });
                return Ok(report);
            }
            *head = (e.stream_version, h);
            running = seal_step(&running, position, &e.hash);
            report.events += 1;
            while let Some(seal) = next_seal.peek() {
                if seal.position > position {
                    break;
                }
                if seal.position == position && seal.running_hash != running {
                    report.failure = Some(Failure::Seal { position });
                    return Ok(report);
                }
                report.seals += 1;
                next_seal.next();
            }
        }
    }
    if let Some(seal) = next_seal.next() {
        report.failure = Some(Failure::SealBeyondLog {
            position: seal.position,
        });
    }
    report.streams = heads.len() as u64;
    Ok(report)
}
