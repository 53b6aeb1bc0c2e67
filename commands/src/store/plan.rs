//! Planning a group commit: given what the database holds for the streams,
//! event ids and guards a batch touches, decide each request's outcome and
//! the rows to write. Pure and backend-independent, so both stores share one
//! set of rules (expected versions, idempotency by event id, guards, hashes).

use std::collections::HashMap;

use uuid::Uuid;

use super::hashing::{event_hash, GENESIS};
use super::{AppendRequest, AppendResult, ExpectedVersion, Guard, RecordedEvent, StoreError};

#[derive(Clone, Debug)]
pub struct StreamHead {
    pub version: u64,
    pub last_hash: String,
}

/// Where an already-stored event sits (for idempotent re-appends).
#[derive(Clone, Debug)]
pub struct StoredEventRef {
    pub stream_id: String,
    pub stream_version: u64,
    pub global_position: u64,
}

/// What the database holds for everything a batch touches.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The last committed global position.
    pub head_position: u64,
    pub streams: HashMap<String, StreamHead>,
    pub existing: HashMap<Uuid, StoredEventRef>,
    pub guards: HashMap<(String, String), String>,
}

/// What to write, and each request's outcome.
#[derive(Debug, Default)]
pub struct Plan {
    pub rows: Vec<(RecordedEvent, String, String)>,
    /// Streams whose head changed, with their new head.
    pub heads: HashMap<String, StreamHead>,
    /// Guard keys whose owner changed: `Some(owner)` claimed, `None` released.
    pub guards: HashMap<(String, String), Option<String>>,
    pub outcomes: Vec<Result<AppendResult, StoreError>>,
    pub head_position: u64,
}

impl Snapshot {
    /// The stream ids, event ids and guard keys a batch needs loaded.
    pub fn keys(requests: &[AppendRequest]) -> (Vec<String>, Vec<Uuid>, Vec<(String, String)>) {
        let mut streams = Vec::new();
        let mut ids = Vec::new();
        let mut guards = Vec::new();
        for r in requests {
            for s in &r.streams {
                streams.push(s.stream_id.clone());
                ids.extend(s.events.iter().map(|e| e.event_id));
            }
            for g in &r.guards {
                let k = match g {
                    Guard::Claim { scope, key, .. } | Guard::Release { scope, key } => (scope.clone(), key.clone()),
                };
                guards.push(k);
            }
        }
        streams.sort();
        streams.dedup();
        guards.sort();
        guards.dedup();
        (streams, ids, guards)
    }
}

pub fn plan(mut snap: Snapshot, requests: &[AppendRequest]) -> Plan {
    let mut plan = Plan {
        head_position: snap.head_position,
        ..Default::default()
    };
    for request in requests {
        let outcome = plan_one(&mut snap, &mut plan, request);
        plan.outcomes.push(outcome);
    }
    plan
}

fn plan_one(snap: &mut Snapshot, plan: &mut Plan, request: &AppendRequest) -> Result<AppendResult, StoreError> {
    if request.event_count() == 0 {
        return Err(StoreError::InvalidRequest("no events".into()));
    }
    for s in &request.streams {
        super::validate_stream_id(&s.stream_id)?;
    }
    // Idempotency: all events known → the first result; some known → refuse.
    let ids: Vec<Uuid> = request
        .streams
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.event_id))
        .collect();
    let known: Vec<&StoredEventRef> = ids.iter().filter_map(|id| snap.existing.get(id)).collect();
    if known.len() == ids.len() {
        let first = known.iter().map(|k| k.global_position).min().unwrap_or(0);
        let last = known.iter().map(|k| k.global_position).max().unwrap_or(0);
        let mut versions: HashMap<&str, u64> = HashMap::new();
        for k in &known {
            let v = versions.entry(&k.stream_id).or_default();
            *v = (*v).max(k.stream_version);
        }
        return Ok(AppendResult {
            first_position: first,
            last_position: last,
            stream_versions: request
                .streams
                .iter()
                .map(|s| {
                    (
                        s.stream_id.clone(),
                        versions.get(s.stream_id.as_str()).copied().unwrap_or(0),
                    )
                })
                .collect(),
        });
    }
    if let Some(id) = ids.iter().find(|id| snap.existing.contains_key(id)) {
        return Err(StoreError::DuplicateEventMismatch(*id));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(StoreError::DuplicateEventMismatch(*dup));
    }
    // Expected versions (a stream named twice in one request is refused).
    let mut names = std::collections::HashSet::new();
    for s in &request.streams {
        if !names.insert(s.stream_id.as_str()) {
            return Err(StoreError::InvalidRequest(format!(
                "stream {} named twice in one append",
                s.stream_id
            )));
        }
        let actual = snap.streams.get(&s.stream_id).map(|h| h.version).unwrap_or(0);
        let ok = match s.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        };
        if !ok {
            return Err(StoreError::WrongExpectedVersion {
                stream_id: s.stream_id.clone(),
                expected: s.expected,
                actual,
            });
        }
    }
    // Guards, applied to a scratch copy so a refused request changes nothing.
    let mut guard_changes: Vec<((String, String), Option<String>)> = Vec::new();
    for g in &request.guards {
        match g {
            Guard::Claim { scope, key, owner } => {
                let k = (scope.clone(), key.clone());
                let current = guard_changes
                    .iter()
                    .rev()
                    .find(|(gk, _)| *gk == k)
                    .map(|(_, o)| o.clone())
                    .unwrap_or_else(|| snap.guards.get(&k).cloned());
                match current {
                    Some(o) if &o != owner => {
                        return Err(StoreError::GuardTaken {
                            scope: scope.clone(),
                            key: key.clone(),
                        })
                    }
                    _ => guard_changes.push((k, Some(owner.clone()))),
                }
            }
            Guard::Release { scope, key } => {
                guard_changes.push(((scope.clone(), key.clone()), None));
            }
        }
    }
    // Accepted: assign positions, versions and hashes.
    let first_position = plan.head_position + 1;
    let mut stream_versions = Vec::new();
    for s in &request.streams {
        let head = snap.streams.entry(s.stream_id.clone()).or_insert(StreamHead {
            version: 0,
            last_hash: GENESIS.to_string(),
        });
        for e in &s.events {
            plan.head_position += 1;
            head.version += 1;
            let payload = e.payload.to_string();
            let metadata = e.metadata.to_string();
            let hash = event_hash(
                &head.last_hash,
                &e.event_id.to_string(),
                &s.stream_id,
                head.version,
                &e.event_type,
                e.schema_version,
                e.recorded_at,
                &payload,
                &metadata,
            );
            head.last_hash = hash.clone();
            snap.existing.insert(
                e.event_id,
                StoredEventRef {
                    stream_id: s.stream_id.clone(),
                    stream_version: head.version,
                    global_position: plan.head_position,
                },
            );
            plan.rows.push((
                RecordedEvent {
                    global_position: plan.head_position,
                    event_id: e.event_id,
                    stream_id: s.stream_id.clone(),
                    stream_version: head.version,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    payload: e.payload.clone(),
                    metadata: e.metadata.clone(),
                    recorded_at: e.recorded_at,
                    hash,
                },
                payload,
                metadata,
            ));
        }
        plan.heads.insert(s.stream_id.clone(), head.clone());
        stream_versions.push((s.stream_id.clone(), head.version));
    }
    for (k, owner) in guard_changes {
        match &owner {
            Some(o) => snap.guards.insert(k.clone(), o.clone()),
            None => snap.guards.remove(&k),
        };
        plan.guards.insert(k, owner);
    }
    Ok(AppendResult {
        first_position,
        last_position: plan.head_position,
        stream_versions,
    })
}
