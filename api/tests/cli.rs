//! The `medledger` binary's maintenance commands, run as a process.

use std::process::Command;

use chrono::Utc;
use medledger_commands::store::sqlite::SqliteEventStore;
use medledger_commands::store::{AppendRequest, EventStore, ExpectedVersion, NewEvent};
use serde_json::json;

fn medledger(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medledger"))
        .args(args)
        .env("MEDLEDGER_LOG", "error")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn verify_names_the_first_tampered_event_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, out) = medledger(&["migrate", "--data-dir", data]);
    assert_eq!(code, 0, "{out}");

    let store = SqliteEventStore::open(&dir.path().join("medledger.db")).await.unwrap();
    for i in 0..5u64 {
        let e = NewEvent::new(
            "TestHappened",
            1,
            json!({"n": i}),
            json!({"client": "system"}),
            Utc::now(),
        );
        store
            .append(AppendRequest::stream("thing-1", ExpectedVersion::Any, vec![e]))
            .await
            .unwrap();
    }
    let (code, out) = medledger(&["verify", "--data-dir", data]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 5 events in 1 streams"), "{out}");

    let victim = store.read_all(2, 1).await.unwrap().remove(0);
    store
        .db()
        .execute("UPDATE events SET payload = '{\"n\":9}' WHERE global_position = 3", &[])
        .await
        .unwrap();
    let (code, out) = medledger(&["verify", "--data-dir", data]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&victim.event_id.to_string()),
        "the report names the event: {out}"
    );
    assert!(out.contains("global position 3"), "{out}");
}

#[tokio::test]
async fn replay_and_forget_subject_run_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, out) = medledger(&["replay", "--data-dir", data]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("rebuilt accounts") && out.contains("rebuilt audit_log"),
        "{out}"
    );
    let subject = uuid::Uuid::now_v7().to_string();
    let (code, out) = medledger(&["forget-subject", &subject, "--data-dir", data]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("forgotten"), "{out}");
    let (code, out) = medledger(&["forget-subject", "not-a-uuid", "--data-dir", data]);
    assert_ne!(code, 0, "{out}");
    let (code, out) = medledger(&["verify", "--data-dir", data]);
    assert_eq!(code, 0, "{out}");
}
