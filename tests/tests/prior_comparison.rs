//! Comparison with another hospital's priors, on both deployments: a doctor of H1 working on
//! the report of patient P opens the images of P's study in H2 through the read-only DICOMweb
//! root of that report (`/dicomweb/reports/{report}/priors`) and diffs the report against H2's
//! shared final report — only while H2 shares them, only for the same patient, only within
//! the alliance, each study-level look recorded as `PriorStudyViewed` on the study's trail.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::{fetch, retrieve, small_ct as study, stow_all};
use medledger_tests::org::Org;
use medledger_tests::reports::{draft, finalize, settings};
use medledger_tests::{system_clock, Deployment, TestServer};
use serde_json::{json, Value};

medledger_tests::on_both_deployments!(
    a_doctor_views_and_diffs_another_hospitals_shared_prior,
    another_hospitals_priors_are_refused_unless_shared_for_the_same_patient,
);

const PUBLIC: &str = "https://medledger.test";

/// A problem's status and code from a `GET`.
async fn problem(s: &TestServer, token: Option<&str>, path: &str) -> (u16, String) {
    let r = s.get(path, token).await;
    (r.status, r.body["code"].as_str().unwrap_or("").to_string())
}

/// The cast: H1 and H2 in alliance A1, H3 in A2; patient P seen in all three, another
/// patient in H2; H2's and H3's studies of P reported to final.
struct Cast {
    s: TestServer,
    o: Org,
    /// H1's report (a draft by H1's doctor `o.u1_token`) on P's study there.
    report: String,
    h1_study: CtSpec,
    /// H1's report on another patient's study (a patient H2 saw too): the context must be the
    /// prior's patient.
    other_report: String,
    h2_prior: CtSpec,
    h2_report: String,
    h2_other_patient: CtSpec,
    h3_prior: CtSpec,
    h3_report: String,
    /// An account of H1 that may edit reports but not view images.
    typist: String,
}

async fn cast(d: &Deployment) -> Cast {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let role = |h, admin: String, name: &'static str| {
        let s = &s;
        async move { Org::role(s, h, &admin, name).await }
    };
    let tech1 = role(o.h1, o.h1_admin.clone(), "technician").await;
    let (tech1, _) = o.add_user(&s, o.h1, &o.h1_admin, "tech1", vec![tech1]).await;
    let tech2 = role(o.h2, o.h2_admin.clone(), "technician").await;
    let (tech2, _) = o.add_user(&s, o.h2, &o.h2_admin, "tech2", vec![tech2]).await;
    let doc2 = role(o.h2, o.h2_admin.clone(), "reviewer").await;
    let (doc2, _) = o.add_user(&s, o.h2, &o.h2_admin, "doc2", vec![doc2]).await;
    let tech3 = role(o.h3, o.h3_admin.clone(), "technician").await;
    let (tech3, _) = o.add_user(&s, o.h3, &o.h3_admin, "tech3", vec![tech3]).await;
    let doc3 = role(o.h3, o.h3_admin.clone(), "reviewer").await;
    let (doc3, _) = o.add_user(&s, o.h3, &o.h3_admin, "doc3", vec![doc3]).await;
    let typing = s
        .post(
            &format!("/api/v1/hospitals/{}/roles", o.h1),
            Some(&o.h1_admin),
            json!({"name": "报告录入", "permissions": ["report.edit"]}),
        )
        .await;
    assert_eq!(typing.status, 201, "{}", typing.body);
    let (typist, _) = o
        .add_user(&s, o.h1, &o.h1_admin, "typist", vec![typing.body["id"].clone()])
        .await;

    let (h1_study, h1_other) = (study(1, 0, 0), study(1, 1, 0));
    let (h2_prior, h2_other_patient) = (study(2, 0, 0), study(2, 1, 5));
    let h3_prior = study(3, 0, 0);
    stow_all(&s, &tech1, vec![synthetic_ct(&h1_study), synthetic_ct(&h1_other)]).await;
    stow_all(
        &s,
        &tech2,
        vec![synthetic_ct(&h2_prior), synthetic_ct(&h2_other_patient)],
    )
    .await;
    stow_all(&s, &tech3, vec![synthetic_ct(&h3_prior)]).await;

    settings(&s, &o.h2_admin, json!({"allow_self_review": true})).await;
    settings(&s, &o.h3_admin, json!({"allow_self_review": true})).await;
    let (h2_report, v) = draft(&s, &doc2, &h2_prior, "仁济：右肺上叶结节 8mm。").await;
    finalize(&s, &doc2, &h2_report, v).await;
    let (h3_report, v) = draft(&s, &doc3, &h3_prior, "华西：不应出现。").await;
    finalize(&s, &doc3, &h3_report, v).await;
    // H3 shares everything, with its own alliance only.
    settings(&s, &o.h3_admin, json!({"prior_sharing": "studies_and_reports"})).await;
    let (report, _) = draft(&s, &o.u1_token, &h1_study, "瑞金：右肺上叶结节 6mm，较前缩小。").await;
    let (other_report, _) = draft(&s, &o.u1_token, &h1_other, "瑞金：另一位患者。").await;
    Cast {
        s,
        o,
        report,
        h1_study,
        other_report,
        h2_prior,
        h2_report,
        h2_other_patient,
        h3_prior,
        h3_report,
        typist,
    }
}

impl Cast {
    /// The prior root of `report`.
    fn root(&self, report: &str) -> String {
        format!("/dicomweb/reports/{report}/priors")
    }

    /// `spec`'s study under the prior root of the H1 report.
    fn prior(&self, spec: &CtSpec) -> String {
        format!("{}/studies/{}", self.root(&self.report), spec.study_instance_uid())
    }

    fn instance(&self, spec: &CtSpec) -> String {
        format!(
            "{}/series/{}/instances/{}",
            self.prior(spec),
            spec.series_instance_uid(),
            spec.sop_instance_uid()
        )
    }

    /// The `PriorStudyViewed` events of `spec`'s trail in H2 (oldest first), as the platform
    /// operator reads them in the audit log.
    async fn looks(&self, spec: &CtSpec) -> Vec<Value> {
        let head = self.s.head().await;
        let stream = format!("priorviews-{}.{}", self.o.h2, spec.study_instance_uid());
        let r = self
            .s
            .get(
                &format!("/api/v1/audit/events?stream={stream}&min_position={head}"),
                Some(&self.o.operator),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut items: Vec<Value> = r.body["items"].as_array().unwrap().clone();
        items.reverse();
        assert!(items.iter().all(|i| i["event_type"] == "PriorStudyViewed"), "{items:?}");
        items
    }
}

async fn a_doctor_views_and_diffs_another_hospitals_shared_prior(d: &Deployment) {
    let c = cast(d).await;
    let (s, o) = (&c.s, &c.o);
    let doctor = Some(o.u1_token.as_str());
    let uid = c.h2_prior.study_instance_uid();

    // H2 shares its studies (not its reports).
    let at = settings(s, &o.h2_admin, json!({"prior_sharing": "studies"})).await;

    // The priors list names where each study's images are served.
    let r = s
        .get(
            &format!("/api/v1/reports/{}/priors?min_position={at}", c.report),
            doctor,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed: Vec<&Value> = r.body.as_array().unwrap().iter().collect();
    let own = listed
        .iter()
        .find(|p| p["study_instance_uid"] == c.h1_study.study_instance_uid())
        .expect("the own study");
    assert_eq!(
        own["retrieve_url"],
        format!("{PUBLIC}/dicomweb/studies/{}", c.h1_study.study_instance_uid())
    );
    let shared = listed
        .iter()
        .find(|p| p["study_instance_uid"] == uid.as_str())
        .expect("H2's study of the patient");
    assert_eq!(shared["own_hospital"], false);
    assert_eq!(shared["retrieve_url"], format!("{PUBLIC}{}", c.prior(&c.h2_prior)));
    assert!(shared["report_id"].is_null(), "studies only: {shared}");

    // QIDO-RS at the prior root finds the patient's shared study, and only that.
    let found = s
        .get(&format!("{}/studies?min_position={at}", c.root(&c.report)), doctor)
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.header("content-type"), Some("application/dicom+json"));
    let studies = found.body.as_array().unwrap();
    assert_eq!(studies.len(), 1, "not H2's other patient, not H3's: {}", found.body);
    assert_eq!(studies[0]["0020000D"]["Value"][0], uid.as_str());
    assert_eq!(studies[0]["00100020"]["Value"][0], c.h2_prior.patient_id());
    assert_eq!(
        studies[0]["00081190"]["Value"][0],
        format!("{PUBLIC}{}", c.prior(&c.h2_prior))
    );
    let none = s
        .get(
            &format!(
                "{}/studies?StudyInstanceUID={}",
                c.root(&c.report),
                c.h2_other_patient.study_instance_uid()
            ),
            doctor,
        )
        .await;
    assert_eq!(none.status, 204, "{}", none.body);

    // Series, metadata (URIs under the same root), instance retrieval byte for byte.
    let series = s.get(&format!("{}/series", c.prior(&c.h2_prior)), doctor).await;
    assert_eq!(series.status, 200, "{}", series.body);
    assert_eq!(series.body[0]["0020000E"]["Value"][0], c.h2_prior.series_instance_uid());
    assert!(series.body[0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .starts_with(&format!("{PUBLIC}{}/series/", c.prior(&c.h2_prior))));
    let metadata = s.get(&format!("{}/metadata", c.prior(&c.h2_prior)), doctor).await;
    assert_eq!(metadata.status, 200, "{}", metadata.body);
    let dataset = &metadata.body[0];
    assert_eq!(dataset["00080018"]["Value"][0], c.h2_prior.sop_instance_uid());
    let pixels = dataset["7FE00010"]["BulkDataURI"].as_str().expect("pixel data by URI");
    assert!(
        pixels.starts_with(&format!("{PUBLIC}{}/", c.instance(&c.h2_prior))),
        "{pixels}"
    );
    let (status, _, bytes) = fetch(s, doctor, pixels.trim_start_matches(PUBLIC), None, None).await;
    assert_eq!(status, 200);
    assert!(bytes.len() > 16 * 16 * 2, "the pixel data part");
    let (status, parts) = retrieve(s, &o.u1_token, &c.instance(&c.h2_prior)).await;
    assert_eq!(status, 200);
    assert_eq!(
        parts,
        vec![synthetic_ct(&c.h2_prior)],
        "the object exactly as H2 stored it"
    );
    let (status, whole) = retrieve(s, &o.u1_token, &c.prior(&c.h2_prior)).await;
    assert_eq!((status, whole.len()), (200, 1));

    // Frames, renders and thumbnails for the viewer.
    let (status, ctype, jpeg) = fetch(
        s,
        doctor,
        &format!("{}/frames/1/rendered", c.instance(&c.h2_prior)),
        None,
        None,
    )
    .await;
    assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    let (status, ctype, png) = fetch(
        s,
        doctor,
        &format!("{}/rendered", c.instance(&c.h2_prior)),
        Some("image/png"),
        None,
    )
    .await;
    assert_eq!((status, ctype.as_str()), (200, "image/png"));
    let image = image::load_from_memory(&png).unwrap();
    assert_eq!((image.width(), image.height()), (16, 16));
    let (status, ctype, _) = fetch(s, doctor, &format!("{}/frames/1", c.instance(&c.h2_prior)), None, None).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("multipart/related"), "{ctype}");
    for thumbnail in [
        format!("{}/thumbnail", c.prior(&c.h2_prior)),
        format!(
            "{}/series/{}/thumbnail",
            c.prior(&c.h2_prior),
            c.h2_prior.series_instance_uid()
        ),
        format!("{}/thumbnail", c.instance(&c.h2_prior)),
    ] {
        let (status, ctype, _) = fetch(s, doctor, &thumbnail, None, None).await;
        assert_eq!((status, ctype.as_str()), (200, "image/jpeg"), "{thumbnail}");
    }

    // Every study-level look is on the study's trail: who, from which hospital, for which
    // report, how; frames, renders, thumbnails and instance-level requests are not.
    let looks = c.looks(&c.h2_prior).await;
    let how: Vec<&str> = looks.iter().map(|l| l["payload"]["access"].as_str().unwrap()).collect();
    assert_eq!(how, vec!["search", "contents", "metadata", "retrieve"]);
    for look in &looks {
        let p = &look["payload"];
        assert_eq!(p["viewer"], o.u1.to_string());
        assert_eq!(p["viewer_hospital"], o.h1.to_string());
        assert_eq!(p["report_id"], c.report.as_str());
        assert_eq!(p["study"]["hospital_id"], o.h2.to_string());
        assert_eq!(p["study"]["study_instance_uid"], uid.as_str());
        assert_eq!(look["metadata"]["actor"], o.u1.to_string());
    }

    // Studies only: the report's text is not compared.
    s.get(
        &format!("/api/v1/reports/{}/diff?against={}", c.report, c.h2_report),
        doctor,
    )
    .await
    .assert_problem(404, "not_found");

    // With reports: the diff names both reports and what changed between them.
    let at = settings(s, &o.h2_admin, json!({"prior_sharing": "studies_and_reports"})).await;
    let diff = s
        .get(
            &format!("/api/v1/reports/{}/diff?against={}", c.report, c.h2_report),
            doctor,
        )
        .await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    let before = &diff.body["before"];
    assert_eq!(before["report_id"], c.h2_report.as_str());
    assert_eq!(before["study"]["hospital_id"], o.h2.to_string());
    assert_eq!(before["study"]["study_instance_uid"], uid.as_str());
    assert_eq!(before["hospital_name"], "仁济医院");
    assert_eq!(before["own_hospital"], false);
    assert_eq!(before["status"], "final");
    assert!(before["reviewed_at"].is_string(), "{before}");
    let after = &diff.body["after"];
    assert_eq!(after["report_id"], c.report.as_str());
    assert_eq!(after["hospital_name"], "瑞金医院");
    assert_eq!(after["own_hospital"], true);
    assert_eq!(after["status"], "draft");
    assert!(after["reviewed_at"].is_null());
    let impression = diff.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "impression")
        .expect("the impressions differ");
    assert_eq!(impression["before"], "仁济：右肺上叶结节 8mm。");
    assert_eq!(impression["after"], "瑞金：右肺上叶结节 6mm，较前缩小。");
    assert!(impression["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["op"] == "equal"));
    // Reading H2's report text is on the study's trail too: diffed, and in the priors list.
    // The list reads the alliance's sharing from a read model: as of the change.
    let listed = s
        .get(
            &format!("/api/v1/reports/{}/priors?min_position={at}", c.report),
            doctor,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(
        listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["shared_report"]["report_id"] == c.h2_report.as_str()),
        "{}",
        listed.body
    );
    let looks = c.looks(&c.h2_prior).await;
    let how: Vec<&str> = looks.iter().map(|l| l["payload"]["access"].as_str().unwrap()).collect();
    assert_eq!(
        how,
        vec![
            "search",
            "contents",
            "metadata",
            "retrieve",
            "report_text",
            "report_text"
        ]
    );
    // Bad input is a problem, not a guess.
    s.get(&format!("/api/v1/reports/{}/diff?against=not-a-uuid", c.report), doctor)
        .await
        .assert_problem(400, "invalid_query");
    s.get(&format!("/api/v1/reports/{}/diff", c.report), doctor)
        .await
        .assert_problem(400, "invalid_query");

    // Like the own hospital's endpoints: archived 409 (metadata still answered), deleted 404.
    let lifecycle = |action: &'static str, body: Value| {
        let (s, admin, uid) = (s, o.h2_admin.clone(), uid.clone());
        async move {
            let r = s
                .post(&format!("/api/v1/studies/{uid}/{action}"), Some(&admin), body)
                .await;
            assert_eq!(r.status, 200, "{action}: {}", r.body);
            r.body["position"].as_u64().unwrap()
        }
    };
    let at = lifecycle("archive", json!({})).await;
    let rendered = format!("{}/rendered?min_position={at}", c.instance(&c.h2_prior));
    assert_eq!(problem(s, doctor, &rendered).await, (409, "study_archived".to_string()));
    let archived_metadata = s.get(&format!("{}/metadata", c.prior(&c.h2_prior)), doctor).await;
    assert_eq!(archived_metadata.status, 200, "{}", archived_metadata.body);
    let at = lifecycle("retrieve", json!({})).await;
    let at_delete = lifecycle("delete", json!({"reason": "重复检查"})).await;
    assert!(at_delete > at);
    for path in [
        format!("{}/metadata?min_position={at_delete}", c.prior(&c.h2_prior)),
        format!("{}/rendered?min_position={at_delete}", c.instance(&c.h2_prior)),
    ] {
        assert_eq!(
            problem(s, doctor, &path).await,
            (404, "not_found".to_string()),
            "{path}"
        );
    }
    let hidden = s
        .get(
            &format!("{}/studies?min_position={at_delete}", c.root(&c.report)),
            doctor,
        )
        .await;
    assert_eq!(hidden.status, 204, "{}", hidden.body);
    let at = lifecycle("restore", json!({})).await;
    let (status, _, _) = fetch(
        s,
        doctor,
        &format!("{}/rendered?min_position={at}", c.instance(&c.h2_prior)),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "restored");
    c.s.stop().await;
}

async fn another_hospitals_priors_are_refused_unless_shared_for_the_same_patient(d: &Deployment) {
    let c = cast(d).await;
    let (s, o) = (&c.s, &c.o);
    let doctor = Some(o.u1_token.as_str());
    let metadata = format!("{}/metadata", c.prior(&c.h2_prior));
    let rendered = format!("{}/rendered", c.instance(&c.h2_prior));
    let diff = format!("/api/v1/reports/{}/diff?against={}", c.report, c.h2_report);
    let not_found = (404, "not_found".to_string());

    // Everything refused below writes nothing.
    let head = s.head().await;

    // Not shared (the default): nothing of H2's, not even that it has the patient.
    for path in [&metadata, &rendered, &diff] {
        assert_eq!(problem(s, doctor, path).await, not_found, "{path}");
    }
    let found = s.get(&format!("{}/studies", c.root(&c.report)), doctor).await;
    assert_eq!(found.status, 204, "{}", found.body);
    assert_eq!(s.head().await, head, "refused calls wrote nothing");

    let at = settings(s, &o.h2_admin, json!({"prior_sharing": "studies_and_reports"})).await;
    let head = s.head().await;
    // Another patient's study in H2 stays closed, sharing or not.
    let other = format!(
        "{}/studies/{}",
        c.root(&c.report),
        c.h2_other_patient.study_instance_uid()
    );
    for path in [
        format!("{other}/metadata?min_position={at}"),
        format!("{other}/series"),
        format!(
            "{other}/series/{}/instances/{}/rendered",
            c.h2_other_patient.series_instance_uid(),
            c.h2_other_patient.sop_instance_uid()
        ),
    ] {
        assert_eq!(problem(s, doctor, &path).await, not_found, "{path}");
    }
    // Another alliance's shared study, by its UID and by its report: never.
    for path in [
        format!("{}/metadata", c.prior(&c.h3_prior)),
        format!("/api/v1/reports/{}/diff?against={}", c.report, c.h3_report),
    ] {
        assert_eq!(problem(s, doctor, &path).await, not_found, "{path}");
    }
    // The context must be the prior's patient: the same doctor, on another patient's report,
    // gets neither H2's images nor its report's text (the report id alone opens nothing).
    let wrong_context = format!(
        "{}/studies/{}/metadata",
        c.root(&c.other_report),
        c.h2_prior.study_instance_uid()
    );
    assert_eq!(problem(s, doctor, &wrong_context).await, not_found);
    let wrong_diff = format!("/api/v1/reports/{}/diff?against={}", c.other_report, c.h2_report);
    assert_eq!(problem(s, doctor, &wrong_diff).await, not_found);
    let priors = s
        .get(&format!("/api/v1/reports/{}/priors", c.other_report), doctor)
        .await;
    assert_eq!(priors.status, 200, "{}", priors.body);
    assert!(
        !priors.body.to_string().contains(&c.h2_prior.study_instance_uid()),
        "{}",
        priors.body
    );
    assert_eq!(s.head().await, head, "refused calls wrote nothing");
    // H1's report is H1's: other hospitals' doctors (H2's own included) find no such root.
    let doc2_role = Org::role(s, o.h2, &o.h2_admin, "doctor").await;
    let (doc2, _) = o.add_user(s, o.h2, &o.h2_admin, "li", vec![doc2_role]).await;
    let head = s.head().await;
    assert_eq!(problem(s, Some(&doc2), &metadata).await, not_found);
    // Without the imaging permission: 403, though the report and its priors list are open.
    assert_eq!(
        problem(s, Some(&c.typist), &metadata).await,
        (403, "forbidden".to_string())
    );
    assert_eq!(
        problem(s, Some(&c.typist), &format!("{}/studies", c.root(&c.report))).await,
        (403, "forbidden".to_string())
    );
    assert_eq!(s.head().await, head, "refused calls wrote nothing");
    let typed = s
        .get(&format!("/api/v1/reports/{}/priors", c.report), Some(&c.typist))
        .await;
    assert_eq!(typed.status, 200, "{}", typed.body);
    // That list carried H2's report text, and recorded it; the refusals below write nothing.
    let head = s.head().await;
    // No token: 401. A malformed or unknown report names no root.
    assert_eq!(problem(s, None, &metadata).await, (401, "unauthenticated".to_string()));
    for path in [
        format!(
            "/dicomweb/reports/not-a-uuid/priors/studies/{}/metadata",
            c.h2_prior.study_instance_uid()
        ),
        format!(
            "/dicomweb/reports/{}/priors/studies/{}/metadata",
            uuid::Uuid::now_v7(),
            c.h2_prior.study_instance_uid()
        ),
        format!("/dicomweb/reports/{}/priors/studies", uuid::Uuid::now_v7()),
    ] {
        assert_eq!(problem(s, doctor, &path).await, not_found, "{path}");
    }
    assert_eq!(s.head().await, head, "refused calls wrote nothing");

    // While shared, it opens; withdrawn, it is gone at once (no waiting for read models).
    let r = s.get(&metadata, doctor).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, _, _) = fetch(s, doctor, &rendered, None, None).await;
    assert_eq!(status, 200);
    let r = s.get(&diff, doctor).await;
    assert_eq!(r.status, 200, "{}", r.body);
    settings(s, &o.h2_admin, json!({"prior_sharing": "none"})).await;
    let head = s.head().await;
    for path in [&metadata, &rendered, &diff] {
        assert_eq!(problem(s, doctor, path).await, not_found, "{path} after withdrawal");
    }
    let found = s.get(&format!("{}/studies", c.root(&c.report)), doctor).await;
    assert_eq!(found.status, 204, "{}", found.body);
    assert_eq!(s.head().await, head, "refused calls wrote nothing");

    // Shared again, then the patient is forgotten in H2: they match nobody any more.
    settings(s, &o.h2_admin, json!({"prior_sharing": "studies_and_reports"})).await;
    let forgotten = s
        .post(
            "/api/v1/admin/forget-patient",
            Some(&o.operator),
            json!({"hospital_id": o.h2, "patient_id": c.h2_prior.patient_id(), "reason": "患者要求删除"}),
        )
        .await;
    assert_eq!(forgotten.status, 200, "{}", forgotten.body);
    let at = s.head().await;
    for path in [&metadata, &rendered, &diff] {
        assert_eq!(
            problem(s, doctor, path).await,
            not_found,
            "{path} of a forgotten patient"
        );
    }
    let found = s
        .get(&format!("{}/studies?min_position={at}", c.root(&c.report)), doctor)
        .await;
    assert_eq!(found.status, 204, "{}", found.body);
    let priors = s
        .get(
            &format!("/api/v1/reports/{}/priors?min_position={at}", c.report),
            doctor,
        )
        .await;
    assert_eq!(priors.status, 200, "{}", priors.body);
    assert!(
        priors
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["hospital_id"] == o.h1.to_string()),
        "{}",
        priors.body
    );
    let looks = c.looks(&c.h2_prior).await;
    let how: Vec<&str> = looks.iter().map(|l| l["payload"]["access"].as_str().unwrap()).collect();
    assert_eq!(
        how,
        vec!["report_text", "metadata", "report_text"],
        "what was served (the typist's priors list with H2's report, the metadata, the diff); nothing refused"
    );
    c.s.stop().await;
}
