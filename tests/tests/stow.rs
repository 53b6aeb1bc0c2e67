//! STOW-RS: instances sent over HTTP land in the hospital's studies, with
//! the PS3.18 response dataset, on both deployments.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::{multipart, stow};
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, TestServer};
use serde_json::json;

medledger_tests::on_both_deployments!(stored_duplicate_and_refused_parts_are_answered_per_instance);

fn ct(instance: u32) -> Vec<u8> {
    synthetic_ct(&CtSpec {
        instance_index: instance,
        rows: 64,
        columns: 64,
        ..CtSpec::default()
    })
}

async fn stored_duplicate_and_refused_parts_are_answered_per_instance(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let tech_login = format!("tech.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": tech_login, "name": "技师", "password": PASSWORD, "roles": [o.h1_roles["technician"]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (tech, _) = s.login(&tech_login, PASSWORD).await;
    let ctype = medledger_tests::dicomweb::content_type();

    let head = s.head().await;
    // Who may send: not anonymous, not a doctor without study.upload.
    stow(&s, None, &ctype, multipart(&[("application/dicom", ct(0))]))
        .await
        .assert_problem(401, "unauthenticated");
    stow(
        &s,
        Some(&o.u1_token),
        &ctype,
        multipart(&[("application/dicom", ct(0))]),
    )
    .await
    .assert_problem(403, "forbidden");
    stow(&s, Some(&tech), "application/dicom", ct(0))
        .await
        .assert_problem(415, "unsupported_media_type");
    assert_eq!(s.head().await, head, "refused requests write nothing");

    let body = multipart(&[
        ("application/dicom", ct(0)),
        ("application/dicom", ct(1)),
        ("application/dicom", b"this is not DICOM".to_vec()),
        ("application/octet-stream", ct(2)),
    ]);
    let r = stow(&s, Some(&tech), &ctype, body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/dicom+json"));
    let referenced = r.body["00081199"]["Value"].as_array().unwrap();
    assert_eq!(referenced.len(), 2);
    assert_eq!(
        referenced[0]["00081150"]["Value"][0], "1.2.840.10008.5.1.4.1.1.2",
        "CT Image Storage"
    );
    assert!(referenced[0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .starts_with("https://medledger.test/dicomweb/studies/"));
    let failed = r.body["00081198"]["Value"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|f| f["00081197"]["Value"][0] == 0xC000));
    assert!(
        r.body["00081190"]["Value"][0].is_string(),
        "one study: its retrieve URL"
    );

    // Sending the same instance again is fine (already stored, byte for byte).
    let again = stow(&s, Some(&tech), &ctype, multipart(&[("application/dicom", ct(0))])).await;
    assert_eq!(again.status, 200, "{}", again.body);
    // A different object under a stored UID is refused for the study.
    let mut altered = ct(1);
    let last = altered.len() - 1;
    altered[last] ^= 0xFF;
    let conflict = stow(&s, Some(&tech), &ctype, multipart(&[("application/dicom", altered)])).await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    assert_eq!(conflict.body["00081198"]["Value"][0]["00081197"]["Value"][0], 0x0111);

    // WADO-RS gives back exactly what was stored, at every level.
    let study = r.body["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (status, parts) =
        medledger_tests::dicomweb::retrieve(&s, &o.u1_token, &format!("/dicomweb/studies/{study}")).await;
    assert_eq!((status, parts.len()), (200, 2));
    assert!(parts.contains(&ct(0)) && parts.contains(&ct(1)), "byte for byte");
    let url = referenced[1]["00081190"]["Value"][0].as_str().unwrap();
    let instance_path = &url[url.find("/dicomweb/").unwrap()..];
    let (status, parts) = medledger_tests::dicomweb::retrieve(&s, &o.u1_token, instance_path).await;
    assert_eq!((status, parts.len()), (200, 1));
    let series_path = &instance_path[..instance_path.find("/instances/").unwrap()];
    let (status, parts) = medledger_tests::dicomweb::retrieve(&s, &o.u1_token, series_path).await;
    assert_eq!((status, parts.len()), (200, 2), "both instances share the series");
    // QIDO-RS series and instance levels.
    let series: serde_json::Value = s
        .http
        .get(s.url(&format!("/dicomweb/studies/{study}/series")))
        .bearer_auth(&o.u1_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(series.as_array().unwrap().len(), 1);
    assert_eq!(series[0]["00201209"]["Value"][0], 2, "two instances in the series");
    let series_uid = series[0]["0020000E"]["Value"][0].as_str().unwrap();
    let instances: serde_json::Value = s
        .http
        .get(s.url(&format!("/dicomweb/studies/{study}/series/{series_uid}/instances")))
        .bearer_auth(&o.u1_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(instances.as_array().unwrap().len(), 2);
    assert_eq!(instances[0]["00280010"]["Value"][0], 64, "rows");
    assert_eq!(
        s.http
            .get(s.url("/dicomweb/studies/1.2.3/series"))
            .bearer_auth(&o.u1_token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    let (status, _) = medledger_tests::dicomweb::retrieve(&s, &o.h2_admin, &format!("/dicomweb/studies/{study}")).await;
    assert_eq!(status, 403, "without study.view");
    let (status, _) = medledger_tests::dicomweb::retrieve(&s, &o.u1_token, "/dicomweb/studies/1.2.3.4").await;
    assert_eq!(status, 404);

    let types: Vec<String> = s
        .app()
        .store
        .read_all(head, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.stream_id.starts_with("study-"))
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        vec![
            "InstanceStored",
            "InstanceStored",
            "InstanceDuplicateIgnored",
            "InstanceConflictRecorded"
        ]
    );
    let stored = s.app().store.read_all(head, 1000).await.unwrap();
    let first = stored.iter().find(|e| e.event_type == "InstanceStored").unwrap();
    assert_eq!(first.metadata["tenant"]["hospital_id"], o.h1.to_string());
    assert_eq!(
        first.metadata["actor"],
        s.get("/api/v1/me", Some(&tech)).await.body["account_id"]
    );
    s.stop().await;
}
