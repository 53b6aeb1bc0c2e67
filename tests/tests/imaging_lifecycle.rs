//! A study's life after arrival, through the HTTP API on both deployments:
//! WADO-RS metadata from the database (IS numbers, bulk data URIs that work),
//! QIDO-RS includefield and series/instance matching, sharing with a colleague
//! (notification), soft delete and restore, archive and retrieve, storage
//! accounting with the hospital's plan, worklist columns, DICOM peer
//! registration, and forgetting a patient erasing their objects; arrivals
//! written a run at a time give the same read models as a rebuild.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::{retrieve, stow_all};
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{dump, system_clock, Deployment, Reply, TestServer};
use serde_json::{json, Value};

medledger_tests::on_both_deployments!(
    metadata_comes_from_the_database_and_bulk_data_uris_resolve,
    studies_are_shared_deleted_restored_archived_and_retrieved,
    storage_is_accounted_by_plan_and_settings_are_validated,
    forgetting_a_patient_erases_their_objects,
    read_models_written_a_run_at_a_time_equal_a_rebuild,
);

fn spec(patient: u32, study: u32, series: u32, instance: u32) -> CtSpec {
    CtSpec {
        patient_index: patient,
        study_index: study,
        series_index: series,
        instance_index: instance,
        rows: 16,
        columns: 16,
        ..CtSpec::default()
    }
}

async fn user(s: &TestServer, o: &Org, name: &str, role: &str) -> (String, uuid::Uuid) {
    let login = format!("{name}.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": login, "name": name, "password": PASSWORD, "roles": [o.h1_roles[role]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().parse().unwrap();
    (s.login(&login, PASSWORD).await.0, id)
}

async fn send(s: &TestServer, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let mut r = s.http.request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    Reply::from(r.send().await.unwrap()).await
}

async fn metadata_comes_from_the_database_and_bulk_data_uris_resolve(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let (tech, _) = user(&s, &o, "tech", "technician").await;
    let specs = [spec(0, 0, 0, 0), spec(0, 0, 0, 1), spec(0, 0, 1, 0)];
    stow_all(&s, &tech, specs.iter().map(synthetic_ct).collect()).await;
    let study = specs[0].study_instance_uid();
    let series = specs[0].series_instance_uid();
    let head = s.head().await;

    // Study metadata: every instance, numbers as numbers, pixel data as a bulk data URI.
    let r = s
        .get(
            &format!("/dicomweb/studies/{study}/metadata?min_position={head}"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/dicom+json"));
    let all = r.body.as_array().unwrap();
    assert_eq!(all.len(), 3);
    let first = &all[0];
    assert_eq!(first["00200013"]["vr"], "IS");
    assert!(first["00200013"]["Value"][0].is_number(), "{}", first["00200013"]);
    assert!(
        first["00280030"]["Value"][0].is_number(),
        "DS as a number: {}",
        first["00280030"]
    );
    assert_eq!(first["00100020"]["Value"][0], "P00000000");
    let uri = first["7FE00010"]["BulkDataURI"].as_str().unwrap().to_string();
    assert!(uri.starts_with("https://medledger.test/dicomweb/studies/"), "{uri}");

    // The bulk data URI gives the pixel data exactly as stored.
    let path = uri.trim_start_matches("https://medledger.test");
    let raw = s.http.get(s.url(path)).bearer_auth(&o.u1_token).send().await.unwrap();
    assert_eq!(raw.status(), 200);
    let ctype = raw.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ctype.starts_with("multipart/related; type=\"application/octet-stream\""),
        "{ctype}"
    );
    let body = raw.bytes().await.unwrap();
    let sop = first["00080018"]["Value"][0].as_str().unwrap();
    let original = specs
        .iter()
        .map(synthetic_ct)
        .find(|b| b.windows(sop.len()).any(|w| w == sop.as_bytes()))
        .unwrap();
    let pixels = &original[original.len() - 16 * 16 * 2..];
    assert!(
        body.windows(pixels.len()).any(|w| w == pixels),
        "pixel bytes in the part"
    );
    let missing = s
        .get(
            &format!("{}/bulkdata/60003000", path.trim_end_matches("/bulkdata/7FE00010")),
            Some(&o.u1_token),
        )
        .await;
    missing.assert_problem(404, "not_found");

    // Series and instance metadata narrow it down; another hospital sees nothing.
    let r = s
        .get(
            &format!("/dicomweb/studies/{study}/series/{series}/metadata"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = s
        .get(
            &format!("/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    s.get(&format!("/dicomweb/studies/{study}/metadata"), Some(&o.h2_admin))
        .await
        .assert_problem(403, "forbidden");
    let r = s.get(&format!("/dicomweb/studies/{study}/metadata"), None).await;
    assert_eq!(r.status, 401);
    s.get("/dicomweb/studies/1.2.3.4/metadata", Some(&o.u1_token))
        .await
        .assert_problem(404, "not_found");

    // QIDO-RS: includefield brings attributes from the stored metadata; series and
    // instance levels match on their keys.
    let r = s
        .get(
            &format!("/dicomweb/studies?StudyInstanceUID={study}&includefield=InstitutionName,00180050"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0]["00080080"]["Value"][0], "Riverside General Hospital");
    assert!(r.body[0]["00180050"]["Value"][0].is_number());
    s.get("/dicomweb/studies?includefield=NoSuchThing", Some(&o.u1_token))
        .await
        .assert_problem(400, "invalid_query");
    let r = s
        .get(
            &format!("/dicomweb/studies/{study}/series?SeriesInstanceUID={series}"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let r = s
        .get(
            &format!("/dicomweb/studies/{study}/series?Modality=MR"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .get(
            &format!("/dicomweb/studies/{study}/series/{series}/instances?SOPInstanceUID={sop}&includefield=all"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["00080060"]["Value"][0], "CT", "all attributes included");
    assert!(r.body[0].get("7FE00010").is_none(), "but no bulk data");
    s.stop().await;
}

async fn studies_are_shared_deleted_restored_archived_and_retrieved(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let (tech, _) = user(&s, &o, "tech", "technician").await;
    let (colleague, colleague_id) = user(&s, &o, "colleague", "doctor").await;
    let instance = spec(3, 1, 0, 0);
    stow_all(&s, &tech, vec![synthetic_ct(&instance)]).await;
    let study = instance.study_instance_uid();
    let wado = format!("/dicomweb/studies/{study}");

    // Share: the colleague gets a notification; sharing with a stranger or oneself fails.
    let r = s
        .post(
            &format!("/api/v1/studies/{study}/share"),
            Some(&o.u1_token),
            json!({"user_id": colleague_id, "note": "请会诊"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let n = s
        .get(
            &format!("/api/v1/me/notifications?min_position={}", r.body["position"]),
            Some(&colleague),
        )
        .await;
    assert_eq!(n.body["items"][0]["kind"], "study_shared");
    assert_eq!(n.body["items"][0]["body"]["study_instance_uid"], study);
    assert_eq!(n.body["items"][0]["body"]["note"], "请会诊");
    s.post(
        &format!("/api/v1/studies/{study}/share"),
        Some(&o.u1_token),
        json!({"user_id": uuid::Uuid::new_v4()}),
    )
    .await
    .assert_problem(422, "unknown_colleague");
    s.post(
        &format!("/api/v1/studies/{study}/share"),
        Some(&o.u1_token),
        json!({"user_id": o.u1}),
    )
    .await
    .assert_problem(422, "share_with_self");
    s.post(
        &format!("/api/v1/studies/{study}/share"),
        Some(&tech),
        json!({"user_id": colleague_id}),
    )
    .await
    .assert_problem(403, "forbidden");
    s.post(
        "/api/v1/studies/1.2.3/share",
        Some(&o.u1_token),
        json!({"user_id": colleague_id}),
    )
    .await
    .assert_problem(404, "not_found");

    // Soft delete: administrators only, with a reason; hidden until restored.
    s.post(
        &format!("/api/v1/studies/{study}/delete"),
        Some(&o.u1_token),
        json!({"reason": "x"}),
    )
    .await
    .assert_problem(403, "forbidden");
    s.post(
        &format!("/api/v1/studies/{study}/delete"),
        Some(&o.h1_admin),
        json!({"reason": " "}),
    )
    .await
    .assert_problem(422, "reason_required");
    let r = s
        .post(
            &format!("/api/v1/studies/{study}/delete"),
            Some(&o.h1_admin),
            json!({"reason": "wrong patient"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["position"].as_u64().unwrap();
    let list = s
        .get(&format!("/api/v1/studies?min_position={at}"), Some(&o.u1_token))
        .await;
    assert!(list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["study_instance_uid"] != study));
    let deleted = s.get("/api/v1/studies?deleted=true", Some(&o.h1_admin)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["items"][0]["study_instance_uid"], study);
    s.get("/api/v1/studies?deleted=true", Some(&o.u1_token))
        .await
        .assert_problem(403, "forbidden");
    let at = s.head().await;
    assert_eq!(
        retrieve(&s, &o.u1_token, &format!("{wado}?min_position={at}")).await.0,
        404
    );
    s.post(
        &format!("/api/v1/studies/{study}/delete"),
        Some(&o.h1_admin),
        json!({"reason": "again"}),
    )
    .await
    .assert_problem(409, "study_deleted");
    let r = s
        .post(
            &format!("/api/v1/studies/{study}/restore"),
            Some(&o.h1_admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, parts) = retrieve(&s, &o.u1_token, &format!("{wado}?min_position={}", r.body["position"])).await;
    assert_eq!((status, parts.len()), (200, 1));
    s.post(
        &format!("/api/v1/studies/{study}/restore"),
        Some(&o.h1_admin),
        json!({}),
    )
    .await
    .assert_problem(409, "study_not_deleted");

    // Archive: objects move to the archive tier; retrieval says so; metadata still answers.
    let r = s
        .post(
            &format!("/api/v1/studies/{study}/archive"),
            Some(&o.h1_admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = s
        .get(
            &format!("/api/v1/studies?min_position={}", r.body["position"]),
            Some(&o.u1_token),
        )
        .await;
    let blobs = &s.running.blobs;
    let key = s
        .app()
        .load::<medledger_domain::imaging::study::Study>(&format!("study-{}.{study}", o.h1))
        .await
        .unwrap()
        .0
        .objects
        .values()
        .next()
        .unwrap()
        .clone();
    assert!(!blobs.exists(&key).await.unwrap());
    assert!(blobs.exists(&format!("archive/{key}")).await.unwrap());
    let r = s
        .get(&format!("{wado}?min_position={}", s.head().await), Some(&o.u1_token))
        .await;
    r.assert_problem(409, "study_archived");
    let m = s.get(&format!("{wado}/metadata"), Some(&o.u1_token)).await;
    assert_eq!(m.status, 200);
    let listed = s.get("/api/v1/studies", Some(&o.u1_token)).await;
    let row = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["study_instance_uid"] == study)
        .unwrap()
        .clone();
    assert_eq!(row["storage_tier"], "archived");
    s.post(
        &format!("/api/v1/studies/{study}/archive"),
        Some(&o.h1_admin),
        json!({}),
    )
    .await
    .assert_problem(409, "study_archived");
    let r = s
        .post(
            &format!("/api/v1/studies/{study}/retrieve"),
            Some(&o.h1_admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(blobs.exists(&key).await.unwrap());
    assert!(!blobs.exists(&format!("archive/{key}")).await.unwrap());
    let (status, parts) = retrieve(&s, &o.u1_token, &format!("{wado}?min_position={}", r.body["position"])).await;
    assert_eq!(status, 200);
    assert_eq!(parts[0], synthetic_ct(&instance), "the same bytes came back");
    s.post(
        &format!("/api/v1/studies/{study}/retrieve"),
        Some(&o.h1_admin),
        json!({}),
    )
    .await
    .assert_problem(409, "study_not_archived");
    s.post(
        &format!("/api/v1/studies/{study}/archive"),
        Some(&o.h2_admin),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    s.stop().await;
}

async fn storage_is_accounted_by_plan_and_settings_are_validated(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let (tech, _) = user(&s, &o, "tech", "technician").await;

    // The plan: hospital administrators set it, within bounds.
    let plan = format!("/api/v1/hospitals/{}/storage-plan", o.h1);
    let r = send(
        &s,
        reqwest::Method::PUT,
        &plan,
        &o.h1_admin,
        Some(json!({"billing_unit": "放射科", "resource_package": "云胶片 5TB", "validity_months": 24})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    send(
        &s,
        reqwest::Method::PUT,
        &plan,
        &o.h1_admin,
        Some(json!({"billing_unit": "x", "resource_package": "y", "validity_months": 0})),
    )
    .await
    .assert_problem(422, "invalid_storage_validity");
    send(
        &s,
        reqwest::Method::PUT,
        &plan,
        &o.u1_token,
        Some(json!({"billing_unit": "x", "resource_package": "y", "validity_months": 1})),
    )
    .await
    .assert_problem(403, "forbidden");
    send(
        &s,
        reqwest::Method::PUT,
        &plan,
        &o.h2_admin,
        Some(json!({"billing_unit": "x", "resource_package": "y", "validity_months": 1})),
    )
    .await
    .assert_problem(404, "not_found");

    let a = synthetic_ct(&spec(5, 1, 0, 0));
    let b = synthetic_ct(&spec(5, 1, 0, 1));
    let c = synthetic_ct(&spec(6, 2, 0, 0));
    let total = (a.len() + b.len() + c.len()) as i64;
    stow_all(&s, &tech, vec![a.clone(), b, c]).await;
    stow_all(&s, &tech, vec![a]).await; // a duplicate is not billed again
    let head = s.head().await;
    let usage = s
        .get(&format!("/api/v1/storage/usage?min_position={head}"), Some(&o.h1_admin))
        .await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert_eq!(usage.body["total_bytes"], total);
    assert_eq!(usage.body["total_instances"], 3);
    assert_eq!(usage.body["total_studies"], 2);
    let alliance = s.get("/api/v1/storage/usage", Some(&o.a1_admin)).await;
    assert_eq!(alliance.body["total_bytes"], total, "the alliance sees its hospitals");
    let other = s.get("/api/v1/storage/usage", Some(&o.a2_admin)).await;
    assert_eq!(other.body["total_bytes"], 0);
    s.get(
        &format!("/api/v1/storage/usage?hospital_id={}", o.h1),
        Some(&o.h2_admin),
    )
    .await
    .assert_problem(404, "not_found");
    s.get("/api/v1/storage/usage", Some(&o.u1_token))
        .await
        .assert_problem(403, "forbidden");
    let log = s.get("/api/v1/storage/uploads?limit=2", Some(&o.h1_admin)).await;
    assert_eq!(log.status, 200, "{}", log.body);
    let first = &log.body["items"][0];
    assert_eq!(first["billing_unit"], "放射科");
    assert_eq!(first["resource_package"], "云胶片 5TB");
    assert_eq!(first["billing_subject"], o.h1.to_string());
    assert_eq!(first["arrival"], "stow-rs");
    let uploaded: chrono::DateTime<chrono::Utc> = first["uploaded_at"].as_str().unwrap().parse().unwrap();
    let expected = uploaded
        .date_naive()
        .checked_add_months(chrono::Months::new(24))
        .unwrap();
    assert_eq!(first["valid_until"], expected.format("%Y-%m-%d").to_string());
    let after = log.body["next_after"].as_i64().unwrap();
    let rest = s
        .get(&format!("/api/v1/storage/uploads?after={after}"), Some(&o.h1_admin))
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    s.get("/api/v1/storage/uploads?limit=0", Some(&o.h1_admin))
        .await
        .assert_problem(400, "invalid_query");

    // Worklist columns: defaults, a saved choice returned with the list, bad choices refused.
    let cols = s.get("/api/v1/me/worklist-columns", Some(&o.u1_token)).await;
    assert_eq!(cols.body["columns"][0], "patient_name");
    let r = send(
        &s,
        reqwest::Method::PUT,
        "/api/v1/me/worklist-columns",
        &o.u1_token,
        Some(json!({"columns": ["study_date", "patient_name", "status"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = s
        .get(
            &format!("/api/v1/studies?min_position={}", r.body["position"]),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(list.body["columns"], json!(["study_date", "patient_name", "status"]));
    send(
        &s,
        reqwest::Method::PUT,
        "/api/v1/me/worklist-columns",
        &o.u1_token,
        Some(json!({"columns": ["status", "status"]})),
    )
    .await
    .assert_problem(422, "invalid_columns");
    send(
        &s,
        reqwest::Method::PUT,
        "/api/v1/me/worklist-columns",
        &o.u1_token,
        Some(json!({"columns": ["password_hash"]})),
    )
    .await
    .assert_problem(422, "invalid_columns");

    // DICOM peers: one hospital per AE title, normalised, validated.
    let peers = format!("/api/v1/hospitals/{}/dicom-peers", o.h1);
    let r = s
        .post(
            &peers,
            Some(&o.h1_admin),
            json!({"ae_title": "ct_room3", "description": "Siemens CT"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = s
        .get(
            &format!("{peers}?min_position={}", r.body["position"]),
            Some(&o.h1_admin),
        )
        .await;
    assert_eq!(listed.body["items"][0]["ae_title"], "CT_ROOM3");
    s.post(
        &format!("/api/v1/hospitals/{}/dicom-peers", o.h2),
        Some(&o.h2_admin),
        json!({"ae_title": "CT_ROOM3"}),
    )
    .await
    .assert_problem(409, "ae_title_taken");
    s.post(&peers, Some(&o.h1_admin), json!({"ae_title": "A\\B"}))
        .await
        .assert_problem(422, "invalid_ae_title");
    s.post(&peers, Some(&o.u1_token), json!({"ae_title": "X"}))
        .await
        .assert_problem(403, "forbidden");
    let r = send(
        &s,
        reqwest::Method::DELETE,
        &format!("{peers}/CT_ROOM3"),
        &o.h1_admin,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/dicom-peers", o.h2),
            Some(&o.h2_admin),
            json!({"ae_title": "CT_ROOM3"}),
        )
        .await;
    assert_eq!(r.status, 200, "freed for another hospital: {}", r.body);
    send(&s, reqwest::Method::DELETE, &format!("{peers}/NOPE"), &o.h1_admin, None)
        .await
        .assert_problem(404, "not_found");
    s.stop().await;
}

async fn forgetting_a_patient_erases_their_objects(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let (tech, _) = user(&s, &o, "tech", "technician").await;
    let (operator, _) = s.login("operator", medledger_tests::OPERATOR_PASSWORD).await;
    let forgotten = [spec(7, 1, 0, 0), spec(7, 2, 0, 0)];
    let kept = spec(8, 3, 0, 0);
    stow_all(&s, &tech, forgotten.iter().chain([&kept]).map(synthetic_ct).collect()).await;
    let keys = |st: &CtSpec| {
        let st = st.clone();
        let app = s.app().clone();
        let h1 = o.h1;
        async move {
            app.load::<medledger_domain::imaging::study::Study>(&format!("study-{h1}.{}", st.study_instance_uid()))
                .await
                .unwrap()
                .0
                .objects
                .values()
                .cloned()
                .collect::<Vec<_>>()
        }
    };
    let forgotten_keys = [keys(&forgotten[0]).await, keys(&forgotten[1]).await].concat();
    let kept_keys = keys(&kept).await;
    let body = json!({"hospital_id": o.h1, "patient_id": "P00000007", "reason": "patient request"});
    s.post("/api/v1/admin/forget-patient", Some(&o.h1_admin), body.clone())
        .await
        .assert_problem(403, "forbidden");
    let r = s
        .post("/api/v1/admin/forget-patient", Some(&operator), body.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["studies"], 2);
    for key in &forgotten_keys {
        assert!(!s.running.blobs.exists(key).await.unwrap(), "{key} deleted");
    }
    for key in &kept_keys {
        assert!(s.running.blobs.exists(key).await.unwrap(), "{key} kept");
    }
    let head = s.head().await;
    let _ = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    let study = forgotten[0].study_instance_uid();
    s.get(
        &format!("/dicomweb/studies/{study}?min_position={head}"),
        Some(&o.u1_token),
    )
    .await
    .assert_problem(410, "study_erased");
    s.get(&format!("/dicomweb/studies/{study}/metadata"), Some(&o.u1_token))
        .await
        .assert_problem(410, "study_erased");
    let (status, _) = retrieve(
        &s,
        &o.u1_token,
        &format!("/dicomweb/studies/{}", kept.study_instance_uid()),
    )
    .await;
    assert_eq!(status, 200);
    let usage = s
        .get(&format!("/api/v1/storage/usage?min_position={head}"), Some(&o.h1_admin))
        .await;
    assert_eq!(usage.body["total_studies"], 1, "erased studies no longer use storage");
    // Repeating is safe and erases nothing more.
    let again = s.post("/api/v1/admin/forget-patient", Some(&operator), body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    s.stop().await;
}

/// The same instance with another Modality (explicit VR little endian `CS` "CT").
fn with_modality(mut bytes: Vec<u8>, modality: &[u8; 2]) -> Vec<u8> {
    let element = [0x08, 0x00, 0x60, 0x00, b'C', b'S', 0x02, 0x00, b'C', b'T'];
    let at = bytes
        .windows(element.len())
        .position(|w| w == element)
        .expect("Modality CT");
    bytes[at + 8..at + 10].copy_from_slice(modality);
    bytes
}

/// The worklist, instance and storage read models write a run of arrivals
/// together (one upsert per study and hospital, multi-row inserts). Built
/// request by request while studies arrive, and rebuilt from the whole log in
/// large batches, they must hold the same rows, and the right totals: a study
/// arriving over several requests with two modalities, duplicates, a
/// conflicting copy, a plan change between arrivals, an erasure between two
/// arrivals of other studies.
async fn read_models_written_a_run_at_a_time_equal_a_rebuild(d: &Deployment) {
    use medledger_projections::read_models::{instances, storage, worklist};
    let config = d.config();
    let s = TestServer::start(&config, system_clock()).await;
    let o = Org::build(&s).await;
    let (tech, _) = user(&s, &o, "tech", "technician").await;
    let (operator, _) = s.login("operator", medledger_tests::OPERATOR_PASSWORD).await;
    let ct = |p, st, se, i| synthetic_ct(&spec(p, st, se, i));

    // One request: two studies, one of them in two series of two modalities.
    stow_all(
        &s,
        &tech,
        vec![
            ct(1, 1, 0, 0),
            ct(1, 1, 0, 1),
            with_modality(ct(1, 1, 1, 0), b"MR"),
            ct(2, 2, 0, 0),
        ],
    )
    .await;
    // The plan changes between arrivals; the next ones are billed by it.
    let r = send(
        &s,
        reqwest::Method::PUT,
        &format!("/api/v1/hospitals/{}/storage-plan", o.h1),
        &o.h1_admin,
        Some(json!({"billing_unit": "放射科", "resource_package": "云胶片", "validity_months": 6})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // More of study 1 and a new study, with a duplicate and a conflicting copy.
    let mut altered = ct(2, 2, 0, 0);
    let last = altered.len() - 1;
    altered[last] ^= 0xFF;
    for batch in [vec![ct(1, 1, 0, 2), ct(1, 1, 0, 0), ct(3, 3, 0, 0)], vec![altered]] {
        let body = medledger_tests::dicomweb::multipart(
            &batch.into_iter().map(|b| ("application/dicom", b)).collect::<Vec<_>>(),
        );
        let r =
            medledger_tests::dicomweb::stow(&s, Some(&tech), &medledger_tests::dicomweb::content_type(), body).await;
        assert!([200, 202, 409].contains(&r.status), "{}", r.body);
    }
    // Patient 2 is forgotten (their study erased), then study 4 arrives.
    let r = s
        .post(
            "/api/v1/admin/forget-patient",
            Some(&operator),
            json!({"hospital_id": o.h1, "patient_id": spec(2, 2, 0, 0).patient_id(), "reason": "patient request"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    stow_all(&s, &tech, vec![ct(4, 4, 0, 0), ct(4, 4, 0, 1)]).await;

    let head = s.head().await;
    let status = &s.running.status;
    for name in [worklist::NAME, instances::NAME, storage::NAME] {
        assert!(status.wait_for(name, head, std::time::Duration::from_secs(20)).await);
    }
    let db = s.app().store.read_models();
    let tables = [
        ("rm_worklist", "study_key"),
        ("rm_instances", "instance_key"),
        ("rm_storage_studies", "study_key"),
        ("rm_storage_usage", "hospital_id"),
        ("rm_upload_log", "position"),
    ];
    let mut live = Vec::new();
    for (table, order) in tables {
        live.push(dump(&db, table, order).await);
    }

    // What the rows must say, whichever way they were written.
    let list = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let study = |uid: String| {
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["study_instance_uid"] == uid.as_str())
            .cloned()
            .unwrap()
    };
    let one = study(spec(1, 1, 0, 0).study_instance_uid());
    assert_eq!(one["instance_count"], 4, "three requests, the duplicate not counted");
    let mut modalities: Vec<&str> = one["modalities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    modalities.sort();
    assert_eq!(modalities, ["CT", "MR"], "in arrival order: {}", one["modalities"]);
    let size: i64 = [ct(1, 1, 0, 0), ct(1, 1, 0, 1), ct(1, 1, 1, 0), ct(1, 1, 0, 2)]
        .iter()
        .map(|b| b.len() as i64)
        .sum();
    assert!(one["size_bytes"].as_i64().unwrap() >= size);
    assert_eq!(study(spec(4, 4, 0, 0).study_instance_uid())["instance_count"], 2);
    let usage = s
        .get(
            &format!("/api/v1/storage/usage?hospital_id={}", o.h1),
            Some(&o.h1_admin),
        )
        .await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert_eq!(usage.body["total_studies"], 3, "studies 1, 3 and 4; study 2 erased");
    assert_eq!(usage.body["total_instances"], 7);
    let uploads = s.get("/api/v1/storage/uploads?limit=100", Some(&o.h1_admin)).await;
    assert_eq!(uploads.status, 200, "{}", uploads.body);
    let rows = uploads.body["items"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "every stored instance and the conflicting copy");
    let packages: Vec<&str> = rows.iter().map(|r| r["resource_package"].as_str().unwrap()).collect();
    assert_eq!(packages.iter().filter(|p| **p == "云胶片").count(), 5, "{packages:?}");

    // A rebuild applies the whole log in large batches: the same rows.
    let platform = medledger_api::platform::Platform::open(&config, system_clock())
        .await
        .unwrap();
    platform.runner.prepare().await.unwrap();
    for name in [worklist::NAME, instances::NAME, storage::NAME] {
        platform.runner.rebuild(name).await.unwrap();
    }
    for ((table, order), before) in tables.into_iter().zip(live) {
        assert_eq!(dump(&db, table, order).await, before, "{table} rebuilt");
    }
    s.stop().await;
}
