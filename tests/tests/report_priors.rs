//! Priors across the alliance, on both deployments: a report's priors list the
//! patient's studies in its own hospital and — only where the other hospital
//! has allowed it — in the other hospitals of the same alliance, matched on
//! Patient ID and birth date. Each prior names its hospital; another hospital's
//! reports appear only when final and shared with reports; another alliance's
//! studies never; withdrawing the grant or forgetting the patient ends the match.

use std::collections::BTreeMap;

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::{small_ct as study, stow_all};
use medledger_tests::org::Org;
use medledger_tests::reports::{draft, finalize, settings as share};
use medledger_tests::{system_clock, Deployment, TestServer};
use serde_json::{json, Value};
use uuid::Uuid;

medledger_tests::on_both_deployments!(priors_cross_the_alliance_only_where_the_other_hospital_allows_it);

/// A user of `hospital` with one built-in role; their token.
async fn user(s: &TestServer, o: &Org, hospital: Uuid, admin: &str, name: &str, role: &str) -> String {
    let role = Org::role(s, hospital, admin, role).await;
    o.add_user(s, hospital, admin, name, vec![role]).await.0
}

/// The report's priors by Study Instance UID.
async fn priors(s: &TestServer, token: &str, report: &str, position: u64) -> BTreeMap<String, Value> {
    let r = s
        .get(
            &format!("/api/v1/reports/{report}/priors?min_position={position}"),
            Some(token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["study_instance_uid"].as_str().unwrap().to_string(), p.clone()))
        .collect()
}

async fn priors_cross_the_alliance_only_where_the_other_hospital_allows_it(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    // H1 and H2 are in alliance A1, H3 in A2; the same patient was seen in all three.
    let tech1 = user(&s, &o, o.h1, &o.h1_admin, "tech1", "technician").await;
    let tech2 = user(&s, &o, o.h2, &o.h2_admin, "tech2", "technician").await;
    let doc2 = user(&s, &o, o.h2, &o.h2_admin, "doc2", "reviewer").await;
    let tech3 = user(&s, &o, o.h3, &o.h3_admin, "tech3", "technician").await;
    let doc3 = user(&s, &o, o.h3, &o.h3_admin, "doc3", "reviewer").await;
    let (h1_study, h2_final, h2_draft, h2_other_patient, h3_study) = (
        study(1, 0, 0),
        study(2, 0, 0),
        study(2, 0, 1),
        study(2, 1, 0),
        study(3, 0, 0),
    );
    stow_all(&s, &tech1, vec![synthetic_ct(&h1_study)]).await;
    stow_all(
        &s,
        &tech2,
        vec![
            synthetic_ct(&h2_final),
            synthetic_ct(&h2_draft),
            synthetic_ct(&h2_other_patient),
        ],
    )
    .await;
    stow_all(&s, &tech3, vec![synthetic_ct(&h3_study)]).await;

    // H2 and H3 report their studies (self-review allowed, to keep the cast small).
    share(&s, &o.h2_admin, json!({"allow_self_review": true})).await;
    share(&s, &o.h3_admin, json!({"allow_self_review": true})).await;
    let (h2_report, v) = draft(&s, &doc2, &h2_final, "仁济：右肺小结节。").await;
    finalize(&s, &doc2, &h2_report, v).await;
    draft(&s, &doc2, &h2_draft, "仁济：草稿，未审核。").await;
    let (h3_report, v) = draft(&s, &doc3, &h3_study, "华西：不应出现。").await;
    finalize(&s, &doc3, &h3_report, v).await;
    // H3 shares everything, but with its own alliance only.
    share(&s, &o.h3_admin, json!({"prior_sharing": "studies_and_reports"})).await;

    let (h1_report, _) = draft(&s, &o.u1_token, &h1_study, "瑞金：当前检查。").await;
    let uid = |c: &CtSpec| c.study_instance_uid();

    // Nothing is shared yet: only the hospital's own study, marked as such.
    let head = s.head().await;
    let seen = priors(&s, &o.u1_token, &h1_report, head).await;
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), vec![uid(&h1_study)]);
    let own = &seen[&uid(&h1_study)];
    assert_eq!(own["hospital_id"], o.h1.to_string());
    assert_eq!(own["hospital_name"], "瑞金医院");
    assert_eq!(own["own_hospital"], true);
    assert_eq!(own["report_id"], h1_report.as_str());

    // Only H2's administrators decide for H2; bad values are refused, nothing written.
    s.post(
        "/api/v1/report-settings",
        Some(&o.u1_token),
        json!({"prior_sharing": "studies"}),
    )
    .await
    .assert_problem(403, "forbidden");
    s.post(
        "/api/v1/report-settings",
        Some(&o.h2_admin),
        json!({"prior_sharing": "everything"}),
    )
    .await
    .assert_problem(422, "invalid_body");
    assert_eq!(
        s.get("/api/v1/report-settings", Some(&doc2)).await.body["prior_sharing"],
        "none"
    );

    // H2 shares its studies: the patient's two H2 studies appear, named, without reports.
    let at = share(&s, &o.h2_admin, json!({"prior_sharing": "studies"})).await;
    assert_eq!(
        s.get("/api/v1/report-settings", Some(&doc2)).await.body,
        json!({"allow_self_review": true, "prior_sharing": "studies"})
    );
    let seen = priors(&s, &o.u1_token, &h1_report, at).await;
    let mut expected = vec![uid(&h1_study), uid(&h2_final), uid(&h2_draft)];
    expected.sort();
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        expected,
        "not H2's other patient, not H3"
    );
    for h2 in [&h2_final, &h2_draft] {
        let p = &seen[&uid(h2)];
        assert_eq!(p["hospital_id"], o.h2.to_string());
        assert_eq!(p["hospital_name"], "仁济医院");
        assert_eq!(p["own_hospital"], false);
        assert!(p["report_id"].is_null() && p["shared_report"].is_null(), "{p}");
    }

    // With reports: the final report's text comes along; the draft stays H2's own.
    let at = share(&s, &o.h2_admin, json!({"prior_sharing": "studies_and_reports"})).await;
    let seen = priors(&s, &o.u1_token, &h1_report, at).await;
    let final_prior = &seen[&uid(&h2_final)];
    assert_eq!(final_prior["report_id"], h2_report.as_str());
    assert_eq!(final_prior["report_status"], "final");
    assert_eq!(final_prior["shared_report"]["impression"], "仁济：右肺小结节。");
    assert_eq!(final_prior["shared_report"]["findings"], "仁济：右肺小结节。（所见）");
    let draft_prior = &seen[&uid(&h2_draft)];
    assert!(
        draft_prior["report_id"].is_null() && draft_prior["shared_report"].is_null(),
        "{draft_prior}"
    );
    assert!(!seen.contains_key(&uid(&h3_study)), "another alliance never");
    // H2's report itself stays closed to H1: its shared text is compared with H1's report,
    // never opened by id (see prior_comparison.rs for the diff and the images).
    s.get(&format!("/api/v1/reports/{h2_report}"), Some(&o.u1_token))
        .await
        .assert_problem(404, "not_found");
    s.get(
        &format!("/api/v1/reports/{h2_report}/diff?against={h1_report}"),
        Some(&o.u1_token),
    )
    .await
    .assert_problem(404, "not_found");
    // Sharing is one-way: H1 has not shared, so H2 sees none of H1's studies.
    let h2_seen = priors(&s, &doc2, &h2_report, at).await;
    assert!(
        h2_seen.values().all(|p| p["hospital_id"] == o.h2.to_string()),
        "{h2_seen:?}"
    );
    assert!(!h2_seen.contains_key(&uid(&h1_study)));
    // Other hospitals still cannot read H1's report or its priors.
    s.get(&format!("/api/v1/reports/{h1_report}/priors"), Some(&o.h2_admin))
        .await
        .assert_problem(404, "not_found");

    // Withdrawn: gone at once.
    let at = share(&s, &o.h2_admin, json!({"prior_sharing": "none"})).await;
    let seen = priors(&s, &o.u1_token, &h1_report, at).await;
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), vec![uid(&h1_study)]);

    // Shared again, then the patient is forgotten in H2: the match is gone with the key.
    share(&s, &o.h2_admin, json!({"prior_sharing": "studies_and_reports"})).await;
    let forgotten = s
        .post(
            "/api/v1/admin/forget-patient",
            Some(&o.operator),
            json!({"hospital_id": o.h2, "patient_id": h2_final.patient_id(), "reason": "患者要求删除"}),
        )
        .await;
    assert_eq!(forgotten.status, 200, "{}", forgotten.body);
    let seen = priors(&s, &o.u1_token, &h1_report, s.head().await).await;
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        vec![uid(&h1_study)],
        "a forgotten patient is matched by nobody"
    );
    s.stop().await;
}
