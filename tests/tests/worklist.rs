//! The worklist: studies received over STOW-RS appear for the hospital's
//! doctors, filtered, searched and paginated; other hospitals see nothing;
//! a forgotten patient's name disappears from the list and its search.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::stow_all;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, TestServer};
use serde_json::json;

medledger_tests::on_both_deployments!(
    received_studies_are_listed_filtered_and_searched,
    keyword_search_finds_the_same_pages_by_candidates_and_by_the_time_index
);

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

/// On SQLite a keyword is searched two ways: the studies its trigram index finds, fetched
/// one by one and sorted, when they are few; along the hospital's time index otherwise.
/// With the number of candidates set to 0 (the time index whenever the trigram index finds
/// any), 3 (either, by keyword) and 1,000 (always the candidates), every keyword must give the same pages in the same order:
/// rare and common keywords, one common in another hospital but rare here, short ones (no
/// index), other filters with it, and LIKE characters taken literally. QIDO-RS PatientName
/// matching is checked the same way.
async fn keyword_search_finds_the_same_pages_by_candidates_and_by_the_time_index(d: &Deployment) {
    use medledger_projections::read_models::worklist::{
        list_with_keyword_candidates, match_studies_with_keyword_candidates, StudyQuery, WorklistFilter,
    };
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let technician = |hospital, admin: String, login: &'static str| {
        let (s, o) = (&s, &o);
        async move {
            let role = Org::role(s, hospital, &admin, "technician").await;
            o.add_user(s, hospital, &admin, login, vec![role]).await.0
        }
    };
    let tech1 = technician(o.h1, o.h1_admin.clone(), "kw.tech1").await;
    let tech2 = technician(o.h2, o.h2_admin.clone(), "kw.tech2").await;
    // Here: patients 1–6 and 105, one study each on days 1–7. Elsewhere: patients 100–109.
    let here: Vec<u32> = vec![1, 2, 3, 4, 5, 6, 105];
    stow_all(
        &s,
        &tech1,
        here.iter().enumerate().map(|(day, p)| ct(*p, day as u32, 0)).collect(),
    )
    .await;
    stow_all(&s, &tech2, (100..110).map(|p| ct(p, p % 28, 0)).collect()).await;
    let head = s.head().await;
    let all = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), here.len(), "{}", all.body);

    let db = s.app().store.read_models();
    let h1 = o.h1;
    let pages = |query: &str, modality: Option<&str>, ascending: bool, candidates: usize| {
        let db = db.clone();
        let (query, modality) = (query.to_string(), modality.map(str::to_string));
        async move {
            let mut pages = Vec::new();
            let mut cursor = None;
            loop {
                let filter = WorklistFilter {
                    hospital_id: Some(h1),
                    query: Some(query.clone()),
                    modality: modality.clone(),
                    ascending,
                    cursor: cursor.clone(),
                    limit: 2,
                    ..WorklistFilter::default()
                };
                let page = list_with_keyword_candidates(&db, &filter, candidates).await.unwrap();
                pages.push(
                    page.items
                        .iter()
                        .map(|r| r.patient_id.clone().unwrap_or_default())
                        .collect::<Vec<_>>(),
                );
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            pages
        }
    };
    let pid = |p: u32| {
        CtSpec {
            patient_index: p,
            ..CtSpec::default()
        }
        .patient_id()
    };
    let newest_first = |ps: &[u32]| -> Vec<String> {
        let mut days: Vec<(usize, u32)> = ps
            .iter()
            .map(|p| (here.iter().position(|h| h == p).unwrap(), *p))
            .collect();
        days.sort_by(|a, b| b.cmp(a));
        days.into_iter().map(|(_, p)| pid(p)).collect()
    };
    let cases: Vec<(String, Option<&str>, Vec<u32>)> = vec![
        // Every study here and elsewhere (the trigram index finds 17).
        ("patient".into(), None, here.clone()),
        // One patient, by name (either case) and by Patient ID.
        ("PATIENT0003".into(), None, vec![3]),
        (pid(4), None, vec![4]),
        // Common elsewhere (patients 100–109), one study here.
        ("patient010".into(), None, vec![105]),
        // Too short for the trigram index: the LIKE alone (patient 6 by its accession
        // number, A000006005).
        ("05".into(), None, vec![5, 6, 105]),
        // With another filter.
        ("patient".into(), Some("CT"), here.clone()),
        ("patient".into(), Some("MR"), vec![]),
        // LIKE's wildcards are plain characters; found nowhere.
        ("patient_".into(), None, vec![]),
        ("%".into(), None, vec![]),
        ("nobody".into(), None, vec![]),
    ];
    for (query, modality, expected) in cases {
        let expected = newest_first(&expected);
        for ascending in [false, true] {
            let mut want = expected.clone();
            if ascending {
                want.reverse();
            }
            for candidates in [0, 3, 1_000] {
                let got = pages(&query, modality, ascending, candidates).await;
                let flat: Vec<String> = got.iter().flatten().cloned().collect();
                assert_eq!(
                    flat, want,
                    "{query:?} {modality:?} ascending={ascending} candidates={candidates}"
                );
                assert!(got.iter().all(|p| p.len() <= 2), "{got:?}");
            }
        }
    }

    // QIDO-RS PatientName: its longest run without wildcards is looked up the same way.
    let names: Vec<(&str, Vec<u32>)> = vec![
        ("Synthetic^Patient0003", vec![3]),
        ("synthetic*", here.clone()),
        ("*patient010*", vec![105]),
        ("*PATIENT000?", vec![1, 2, 3, 4, 5, 6]),
        ("*05", vec![5, 105]),
        ("Zhang*", vec![]),
    ];
    for (name, expected) in names {
        for candidates in [0, 3, 1_000] {
            let query = StudyQuery {
                hospital_id: h1,
                patient_name: Some(name.into()),
                limit: 100,
                ..StudyQuery::default()
            };
            let found: Vec<String> = match_studies_with_keyword_candidates(&db, &query, candidates)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.row.patient_id.unwrap_or_default())
                .collect();
            assert_eq!(found, newest_first(&expected), "{name:?} candidates={candidates}");
        }
    }
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
