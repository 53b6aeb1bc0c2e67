//! Reports through the HTTP API, for the reporting suites: open and save a draft, take it
//! to final, change a hospital's reporting settings.

use medledger_dicom_ingest::CtSpec;
use serde_json::{json, Value};

use crate::TestServer;

/// Opens the study's report (creating it) and saves findings and impression; its id and
/// content version.
pub async fn draft(s: &TestServer, token: &str, spec: &CtSpec, impression: &str) -> (String, u64) {
    let opened = s
        .post(
            &format!("/api/v1/studies/{}/report", spec.study_instance_uid()),
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let id = opened.body["report"]["id"].as_str().unwrap().to_string();
    let saved = s
        .post(
            &format!("/api/v1/reports/{id}/save"),
            Some(token),
            json!({"version": 1, "findings": format!("{impression}（所见）"), "impression": impression}),
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    (id, 2)
}

/// Submits and reviews the report (the hospital must allow self-review); the head position.
pub async fn finalize(s: &TestServer, token: &str, id: &str, version: u64) -> u64 {
    for step in ["submit", "review"] {
        let r = s
            .post(
                &format!("/api/v1/reports/{id}/{step}"),
                Some(token),
                json!({"version": version}),
            )
            .await;
        assert_eq!(r.status, 200, "{step}: {}", r.body);
    }
    s.head().await
}

/// `POST /api/v1/report-settings` as a hospital administrator; the position it wrote.
pub async fn settings(s: &TestServer, admin: &str, body: Value) -> u64 {
    let r = s.post("/api/v1/report-settings", Some(admin), body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["position"].as_u64().unwrap()
}
