//! Tamper evidence: the per-stream hash chain and the global running seal.
//!
//! An event's hash is SHA-256 over its predecessor's hash (in its stream) and
//! its stored content, each field length-prefixed so no two different events
//! share an encoding. Payloads are hashed as stored, i.e. with personal data
//! already encrypted: forgetting a subject never breaks a chain.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// The hash before a stream's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    prev_hash: &str,
    event_id: &str,
    stream_id: &str,
    stream_version: u64,
    event_type: &str,
    schema_version: u32,
    recorded_at: DateTime<Utc>,
    payload: &str,
    metadata: &str,
) -> String {
    let mut h = Sha256::new();
    let version = stream_version.to_string();
    let schema = schema_version.to_string();
    let at = timestamp_text(recorded_at);
    for field in [
        "medledger-event-v1",
        prev_hash,
        event_id,
        stream_id,
        &version,
        event_type,
        &schema,
        &at,
        payload,
        metadata,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The running seal after folding one more event into it.
pub fn seal_step(running: &str, position: u64, event_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(running.as_bytes());
    h.update(position.to_be_bytes());
    h.update(event_hash.as_bytes());
    hex::encode(h.finalize())
}

/// The canonical text of a timestamp inside hashes: RFC 3339, microseconds, `Z`.
pub fn timestamp_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_hash() {
        let t = DateTime::parse_from_rfc3339("2026-11-28T08:00:00Z").unwrap().to_utc();
        let base = event_hash(GENESIS, "e", "s-1", 1, "T", 1, t, "{}", "{}");
        assert_ne!(base, event_hash(GENESIS, "e", "s-1", 2, "T", 1, t, "{}", "{}"));
        assert_ne!(base, event_hash(GENESIS, "e", "s-1", 1, "T", 1, t, "{ }", "{}"));
        // Field boundaries matter: moving a character between fields changes it.
        assert_ne!(
            event_hash(GENESIS, "ab", "c", 1, "T", 1, t, "{}", "{}"),
            event_hash(GENESIS, "a", "bc", 1, "T", 1, t, "{}", "{}")
        );
    }
}
