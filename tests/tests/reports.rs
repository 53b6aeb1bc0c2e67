//! Diagnostic reports through the HTTP API, on both backends: the edit lock
//! (two users racing, 30-minute expiry on the injected clock, an
//! administrator breaking it), stale saves, permissions for review, `as_of`
//! views folded from the log, and the worklist status following the report.

use std::sync::Arc;

use medledger_commands::clock::{Clock, FakeClock};
use medledger_commands::crypto::MasterKey;
use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::stow_all;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{fake_clock, Backend, TestServer};
use serde_json::{json, Value};

medledger_tests::on_both_backends!(
    two_users_race_for_the_lock_and_one_is_told_who_holds_it,
    an_idle_lock_expires_after_30_minutes_and_an_admin_breaks_a_held_one,
    a_report_goes_through_review_and_print_with_history_and_the_worklist_following,
);

struct Setup {
    s: TestServer,
    clock: Arc<FakeClock>,
    o: Org,
    study: String,
    u2: String,
    u2_id: String,
    reviewer: String,
}

async fn user(s: &TestServer, o: &Org, login: &str, role: &str) -> (String, String) {
    let login = format!("{login}.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": login, "name": login, "password": PASSWORD, "roles": [o.h1_roles[role]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    (s.login(&login, PASSWORD).await.0, id)
}

async fn setup(b: &Backend) -> Setup {
    let clock = fake_clock("2026-03-01T09:00:00Z");
    let s = TestServer::start(&b.config(&MasterKey::generate()), clock.clone() as Arc<dyn Clock>).await;
    let o = Org::build(&s).await;
    let (tech, _) = user(&s, &o, "tech", "technician").await;
    let (u2, u2_id) = user(&s, &o, "li", "doctor").await;
    let (reviewer, _) = user(&s, &o, "zhao", "reviewer").await;
    stow_all(
        &s,
        &tech,
        vec![synthetic_ct(&CtSpec {
            rows: 16,
            columns: 16,
            ..CtSpec::default()
        })],
    )
    .await;
    let head = s.head().await;
    let list = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let study = list.body["items"][0]["study_instance_uid"]
        .as_str()
        .expect("the study is listed")
        .to_string();
    Setup {
        s,
        clock,
        o,
        study,
        u2,
        u2_id,
        reviewer,
    }
}

fn report_id(r: &Value) -> String {
    r["report"]["id"].as_str().expect("a report id").to_string()
}

async fn two_users_race_for_the_lock_and_one_is_told_who_holds_it(b: &Backend) {
    let t = setup(b).await;
    let path = format!("/api/v1/studies/{}/report", t.study);
    let (a, c) = tokio::join!(
        t.s.post(&path, Some(&t.o.u1_token), json!({})),
        t.s.post(&path, Some(&t.u2), json!({}))
    );
    let (winner, loser, winner_id) = match (a.status, c.status) {
        (201, 409) => (a, c, t.o.u1.to_string()),
        (409, 201) => (c, a, t.u2_id.clone()),
        other => panic!("one wins, one is refused; got {other:?}: {} / {}", a.body, c.body),
    };
    loser.assert_problem(409, "report_locked");
    assert_eq!(loser.body["holder"], winner_id.as_str(), "{}", loser.body);
    assert!(loser.body["holder_login"].is_string(), "{}", loser.body);
    assert_eq!(loser.body["since"], "2026-03-01T09:00:00Z");
    assert_eq!(winner.body["report"]["lock"]["holder"], winner_id.as_str());
    // Still one report for the study.
    let id = report_id(&winner.body);
    let again =
        t.s.post(&format!("/api/v1/reports/{id}/lock"), Some(&t.o.u1_token), json!({}))
            .await;
    if winner_id == t.o.u1.to_string() {
        assert_eq!(again.status, 200, "the holder reopens: {}", again.body);
    } else {
        again.assert_problem(409, "report_locked");
    }
    // Another hospital cannot even see it.
    t.s.get(&format!("/api/v1/reports/{id}"), Some(&t.o.h2_admin))
        .await
        .assert_problem(404, "not_found");
    t.s.stop().await;
}

async fn an_idle_lock_expires_after_30_minutes_and_an_admin_breaks_a_held_one(b: &Backend) {
    let t = setup(b).await;
    let (s, o) = (&t.s, &t.o);
    let opened = s
        .post(
            &format!("/api/v1/studies/{}/report", t.study),
            Some(&o.u1_token),
            json!({}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let id = report_id(&opened.body);
    let lock = format!("/api/v1/reports/{id}/lock");

    t.clock.advance(chrono::Duration::minutes(29));
    s.post(&lock, Some(&t.u2), json!({}))
        .await
        .assert_problem(409, "report_locked");
    // A heartbeat counts as activity: 20 more minutes are not 30 idle ones.
    let hb = s
        .post(
            &format!("/api/v1/reports/{id}/lock/heartbeat"),
            Some(&o.u1_token),
            json!({}),
        )
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    t.clock.advance(chrono::Duration::minutes(20));
    let refused = s.post(&lock, Some(&t.u2), json!({})).await;
    refused.assert_problem(409, "report_locked");
    assert_eq!(refused.body["expires_at"], "2026-03-01T09:59:00Z");
    // Ten more: 30 minutes without activity, the lock is free.
    t.clock.advance(chrono::Duration::minutes(10));
    let taken = s.post(&lock, Some(&t.u2), json!({})).await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    assert_eq!(taken.body["report"]["lock"]["holder"], t.u2_id.as_str());
    let history = s.get(&format!("/api/v1/reports/{id}/history"), Some(&o.u1_token)).await;
    let events: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "ReportCreated",
            "ReportLockAcquired",
            "ReportLockHeartbeat",
            "ReportLockExpired",
            "ReportLockAcquired"
        ]
    );
    // The former holder's save is refused, never applied: the lock is someone else's now.
    let late = s
        .post(
            &format!("/api/v1/reports/{id}/save"),
            Some(&o.u1_token),
            json!({"version": 1, "findings": "late"}),
        )
        .await;
    late.assert_problem(409, "report_locked");
    assert_eq!(late.body["holder"], t.u2_id.as_str());

    // Breaking a lock is for hospital administrators only, and audited.
    s.post(
        &format!("/api/v1/reports/{id}/lock/break"),
        Some(&o.u1_token),
        json!({}),
    )
    .await
    .assert_problem(403, "forbidden");
    let broken = s
        .post(
            &format!("/api/v1/reports/{id}/lock/break"),
            Some(&o.h1_admin),
            json!({}),
        )
        .await;
    assert_eq!(broken.status, 200, "{}", broken.body);
    assert!(broken.body["report"]["lock"].is_null());
    let history = s.get(&format!("/api/v1/reports/{id}/history"), Some(&o.u1_token)).await;
    let last = history.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "ReportLockBroken");
    let reopened = s.post(&lock, Some(&o.u1_token), json!({})).await;
    assert_eq!(reopened.status, 200, "{}", reopened.body);
    t.s.stop().await;
}

async fn worklist_row(s: &TestServer, token: &str, study: &str, position: u64) -> Value {
    let r = s
        .get(&format!("/api/v1/studies?min_position={position}"), Some(token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["study_instance_uid"] == study)
        .cloned()
        .expect("the study is in the worklist")
}

async fn a_report_goes_through_review_and_print_with_history_and_the_worklist_following(b: &Backend) {
    let t = setup(b).await;
    let (s, o) = (&t.s, &t.o);
    let opened = s
        .post(
            &format!("/api/v1/studies/{}/report", t.study),
            Some(&o.u1_token),
            json!({}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let id = report_id(&opened.body);
    let save = format!("/api/v1/reports/{id}/save");

    t.clock.advance(chrono::Duration::minutes(5));
    let v2 = s
        .post(
            &save,
            Some(&o.u1_token),
            json!({"version": 1, "findings": "双肺纹理清晰。", "impression": "未见异常。",
                   "fields": {"nodule": "无"}}),
        )
        .await;
    assert_eq!(v2.status, 200, "{}", v2.body);
    assert_eq!(v2.body["report"]["version"], 2);
    let between = "2026-03-01T09:07:00Z";
    t.clock.advance(chrono::Duration::minutes(5));
    let v3 = s
        .post(
            &save,
            Some(&o.u1_token),
            json!({"version": 2, "findings": "左肺上叶见 5mm 结节。", "impression": "左肺上叶小结节。",
                   "critical": false, "key_images": [CtSpec::default().sop_instance_uid(), "1.2.3.4.5"]}),
        )
        .await;
    assert_eq!(v3.status, 200, "{}", v3.body);
    // A save from a stale copy is refused, never a silent overwrite.
    let stale = s
        .post(&save, Some(&o.u1_token), json!({"version": 2, "findings": "旧的"}))
        .await;
    stale.assert_problem(409, "stale_report_version");
    assert_eq!(stale.body["current_version"], 3);
    // Bad input: nothing written.
    s.post(
        &save,
        Some(&o.u1_token),
        json!({"version": 3, "key_images": ["not a uid"]}),
    )
    .await
    .assert_problem(422, "invalid_report_content");
    s.post(&save, Some(&o.u1_token), json!({"version": "three"}))
        .await
        .assert_problem(422, "invalid_body");

    // as_of: the report exactly as it stood between the two saves.
    let old = s
        .get(&format!("/api/v1/reports/{id}?as_of={between}"), Some(&o.u1_token))
        .await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(old.body["version"], 2);
    assert_eq!(old.body["content"]["findings"], "双肺纹理清晰。");
    assert_eq!(old.body["content"]["fields"]["nodule"], "无");
    s.get(
        &format!("/api/v1/reports/{id}?as_of=2026-03-01T08:00:00Z"),
        Some(&o.u1_token),
    )
    .await
    .assert_problem(404, "report_not_yet_created");
    s.get(&format!("/api/v1/reports/{id}?as_of=yesterday"), Some(&o.u1_token))
        .await
        .assert_problem(400, "invalid_query");

    // Preliminary (初诊) by the author; the lock goes with it.
    let submitted = s
        .post(
            &format!("/api/v1/reports/{id}/submit"),
            Some(&o.u1_token),
            json!({"version": 3}),
        )
        .await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    assert_eq!(submitted.body["report"]["status"], "preliminary");
    assert!(submitted.body["report"]["lock"].is_null());
    let row = worklist_row(s, &o.u1_token, &t.study, submitted.body["position"].as_u64().unwrap()).await;
    assert_eq!(row["status"], "preliminary");

    // Review needs report.review: doctors are refused.
    s.post(
        &format!("/api/v1/reports/{id}/review"),
        Some(&t.u2),
        json!({"version": 3}),
    )
    .await
    .assert_problem(403, "forbidden");
    // Printing a report that is not final is refused.
    s.post(
        &format!("/api/v1/reports/{id}/print"),
        Some(&o.u1_token),
        json!({"copies": 1}),
    )
    .await
    .assert_problem(409, "report_wrong_status");
    let reviewed = s
        .post(
            &format!("/api/v1/reports/{id}/review"),
            Some(&t.reviewer),
            json!({"version": 3}),
        )
        .await;
    assert_eq!(reviewed.status, 200, "{}", reviewed.body);
    assert_eq!(reviewed.body["report"]["status"], "final");
    let row = worklist_row(s, &o.u1_token, &t.study, reviewed.body["position"].as_u64().unwrap()).await;
    assert_eq!(row["status"], "reviewed");

    t.clock.advance(chrono::Duration::minutes(1));
    let printed = s
        .post(
            &format!("/api/v1/reports/{id}/print"),
            Some(&o.u1_token),
            json!({"copies": 2}),
        )
        .await;
    assert_eq!(printed.status, 200, "{}", printed.body);
    assert_eq!(printed.body["copies"], 2);
    assert_eq!(printed.body["print_count"], 1);
    assert_eq!(printed.body["at"], "2026-03-01T09:11:00Z");
    let row = worklist_row(s, &o.u1_token, &t.study, printed.body["position"].as_u64().unwrap()).await;
    assert_eq!(row["status"], "printed");
    assert_eq!(row["printed_at"], "2026-03-01T09:11:00Z");

    // The printed page: a PDF with the hospital, the patient and the Chinese findings.
    let pdf = s
        .http
        .post(s.url(&format!("/api/v1/reports/{id}/print")))
        .bearer_auth(&o.u1_token)
        .header("accept", "application/pdf")
        .json(&json!({"copies": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    if let Ok(sample) = std::env::var("MEDLEDGER_REPORT_PDF_SAMPLE") {
        std::fs::write(sample, &bytes).unwrap();
    }
    match pdf_text(&bytes) {
        Some(text) => {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            for expected in [
                "瑞金医院",
                "左肺上叶见5mm结节",
                "左肺上叶小结节",
                "P00000000",
                "影像所见",
                "诊断意见",
                "第1页",
            ] {
                assert!(
                    compact.contains(expected),
                    "{expected:?} missing from the PDF text:\n{text}"
                );
            }
        }
        None => assert!(
            !medledger_tests::in_ci(),
            "pdftotext (poppler-utils) is needed under CI"
        ),
    }
    // The QR code's URL: public, no personal data, says whether the paper is the final word.
    let verified = s.get(&format!("/verify/reports/{id}?version=3"), None).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["valid"], true);
    assert_eq!(verified.body["status"], "final");
    assert_eq!(verified.body["hospital_name"], "瑞金医院");
    assert!(!verified.body.to_string().contains("P00000000"), "no patient data");
    let stale = s.get(&format!("/verify/reports/{id}?version=2"), None).await;
    assert_eq!(stale.body["valid"], false);
    s.get(&format!("/verify/reports/{}", uuid::Uuid::new_v4()), None)
        .await
        .assert_problem(404, "not_found");
    let history = s.get(&format!("/api/v1/reports/{id}"), Some(&o.u1_token)).await;
    assert_eq!(
        history.body["prints"].as_array().map(|p| p.len()),
        Some(2),
        "{}",
        history.body
    );

    // Lists per user follow the report.
    let mine = s
        .get(
            &format!(
                "/api/v1/reports?view=reviewed_by_me&min_position={}",
                printed.body["position"]
            ),
            Some(&t.reviewer),
        )
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["items"][0]["report_id"], id.as_str());
    assert_eq!(mine.body["items"][0]["print_count"], 2);
    let history = s.get(&format!("/api/v1/reports/{id}/history"), Some(&o.u1_token)).await;
    let saved = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["event"] == "ReportSaved" && h["version"] == 3)
        .cloned()
        .unwrap();
    assert_eq!(
        saved["changed"],
        json!(["findings", "impression", "fields.nodule", "key_images"])
    );
    assert_eq!(saved["by"], o.u1.to_string());
    t.s.stop().await;
}

/// The text of a PDF by poppler's pdftotext, or `None` when it is not installed.
fn pdf_text(pdf: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
