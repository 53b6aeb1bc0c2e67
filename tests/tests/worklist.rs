//! The worklist: studies received over STOW-RS appear for the hospital's
//! doctors, filtered, searched and paginated; other hospitals see nothing;
//! a forgotten patient's name disappears from the list and its search.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::stow_all;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, TestServer};
use serde_json::json;

medledger_tests::on_both_deployments!(received_studies_are_listed_filtered_and_searched);

fn ct(patient: u32, study: u32, instance: u32) -> Vec<u8> {
    synthetic_ct(&CtSpec {
        patient_index: patient,
        study_index: study,
        instance_index: instance,
        rows: 32,
        columns: 32,
        ..CtSpec::default()
    })
}

async fn received_studies_are_listed_filtered_and_searched(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let tech_login = format!("tech.{}", o.suffix);
    s.post(
        &format!("/api/v1/hospitals/{}/users", o.h1),
        Some(&o.h1_admin),
        json!({"login": tech_login, "name": "技师", "password": PASSWORD, "roles": [o.h1_roles["technician"]]}),
    )
    .await;
    let (tech, _) = s.login(&tech_login, PASSWORD).await;
    // Patient 0: one study of two instances; patient 1: five single-instance studies.
    stow_all(&s, &tech, vec![ct(0, 0, 0), ct(0, 0, 1)]).await;
    stow_all(&s, &tech, (0..5).map(|st| ct(1, 10 + st, 0)).collect()).await;
    let head = s.head().await;

    let all = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    let items = all.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    let first = items
        .iter()
        .find(|i| i["instance_count"] == 2)
        .expect("the two-instance study is one row");
    assert_eq!(first["modalities"], json!(["CT"]));
    assert_eq!(first["status"], "received");
    assert!(first["patient_name"].is_string());
    assert!(first["patient_age"].is_u64());
    assert!(first["size_bytes"].as_i64().unwrap() > 0);

    // Keyword search on patient ID and name; modality filter; paging.
    let pid = first["patient_id"].as_str().unwrap();
    let by_id = s.get(&format!("/api/v1/studies?q={pid}"), Some(&o.u1_token)).await;
    assert_eq!(by_id.body["items"].as_array().unwrap().len(), 1);
    let mr = s.get("/api/v1/studies?modality=MR", Some(&o.u1_token)).await;
    assert_eq!(mr.body["items"].as_array().unwrap().len(), 0);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/studies?limit=2&cursor={}", urlencode(c)),
            None => "/api/v1/studies?limit=2".to_string(),
        };
        let page = s.get(&path, Some(&o.u1_token)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for i in page.body["items"].as_array().unwrap() {
            seen.push(i["study_instance_uid"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (6, 6), "every study once across pages");
    for bad in [
        "limit=0",
        "order=sideways",
        "from=yesterday",
        "status=lost",
        "colour=red",
    ] {
        s.get(&format!("/api/v1/studies?{bad}"), Some(&o.u1_token))
            .await
            .assert_problem(400, "invalid_query");
    }

    // QIDO-RS over the same studies (DICOM JSON).
    let qido = |query: String| {
        let s = &s;
        let token = o.u1_token.clone();
        async move {
            let r = s
                .http
                .get(s.url(&format!("/dicomweb/studies{query}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = if status == 200 {
                r.json().await.unwrap()
            } else {
                json!(null)
            };
            (status, body)
        }
    };
    let (status, studies) = qido(format!("?PatientID={pid}")).await;
    assert_eq!(status, 200);
    assert_eq!(studies.as_array().unwrap().len(), 1);
    let study = &studies[0];
    assert_eq!(study["00201208"]["Value"][0], 2, "IS as a number");
    assert_eq!(study["00080061"]["Value"], json!(["CT"]));
    assert_eq!(study["00100020"]["Value"][0], pid);
    let name = first["patient_name"].as_str().unwrap();
    let pattern = format!("{}*", &name[..name.len() - 1].to_lowercase());
    let (_, by_name) = qido(format!("?PatientName={}", urlencode(&pattern))).await;
    assert!(
        by_name
            .as_array()
            .unwrap()
            .iter()
            .any(|st| st["00100020"]["Value"][0] == pid),
        "wildcard, any case"
    );
    let uid = study["0020000D"]["Value"][0].as_str().unwrap().to_string();
    let (_, by_uid) = qido(format!("?StudyInstanceUID={uid}")).await;
    assert_eq!(by_uid.as_array().unwrap().len(), 1);
    let (_, by_uids) = qido(format!("?StudyInstanceUID={uid},1.2.3.4.5.6.7")).await;
    assert_eq!(by_uids.as_array().unwrap().len(), 1, "a list of UIDs");
    let accession = study["00080050"]["Value"][0].as_str().unwrap().to_string();
    let (_, by_accession) = qido(format!("?AccessionNumber={accession}")).await;
    assert_eq!(by_accession.as_array().unwrap().len(), 1);
    assert_eq!(by_accession[0]["0020000D"]["Value"][0], uid);
    let (_, by_both) = qido(format!("?PatientID={pid}&AccessionNumber={accession}")).await;
    assert_eq!(by_both.as_array().unwrap().len(), 1);
    assert_eq!(qido(format!("?PatientID={pid}&AccessionNumber=NOPE")).await.0, 204);
    let (_, paged) = qido("?limit=2&offset=4".to_string()).await;
    assert_eq!(paged.as_array().unwrap().len(), 2);
    assert_eq!(qido("?ModalitiesInStudy=MR".to_string()).await.0, 204);
    assert_eq!(qido("?StudyDate=19000101-19001231".to_string()).await.0, 204);
    let date = study["00080020"]["Value"][0].as_str().unwrap().to_string();
    assert_eq!(qido(format!("?StudyDate={date}-")).await.0, 200);
    assert_eq!(qido("?StudyDate=yesterday".to_string()).await.0, 400);

    // Forgetting the patient erases their name and ID from the list and its search.
    let name = first["patient_name"].as_str().unwrap().to_lowercase();
    let subject = s.app().codec.keys().pseudonym(&format!("patient/{}", o.h1), pid);
    let forgot = medledger_commands::administration::forget_subject(
        s.app(),
        subject,
        "patient request",
        &medledger_commands::codec::Metadata::system(),
    )
    .await
    .unwrap();
    let after = s
        .get(&format!("/api/v1/studies?min_position={forgot}"), Some(&o.u1_token))
        .await;
    let erased = after.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_count"] == 2)
        .unwrap();
    assert_eq!(
        (erased["patient_erased"].clone(), erased["patient_name"].clone()),
        (json!(true), json!(null))
    );
    assert_eq!(erased["patient_id"], json!(null));
    let by_name = s
        .get(&format!("/api/v1/studies?q={}", urlencode(&name)), Some(&o.u1_token))
        .await;
    assert!(by_name.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["instance_count"] != 2));

    // Other hospitals see none of it; administrators without study.view see nothing either.
    s.get("/api/v1/studies", Some(&o.h2_admin))
        .await
        .assert_problem(403, "forbidden");
    s.get("/api/v1/studies", None)
        .await
        .assert_problem(401, "unauthenticated");
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
