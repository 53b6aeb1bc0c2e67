//! The series thumbnail worker on both deployments: a series stored by STOW-RS gets its
//! thumbnail rendered into the object store without any thumbnail request, once however
//! many instances it has; the series and study thumbnail endpoints then answer from the
//! cache (nothing decoded on the request path); after a restart the worker catches up from
//! its checkpoint and skips deleted and archived studies; forgetting the patient erases the
//! thumbnail.

use std::time::Duration;

use medledger_api::series_thumbnails::{kept_series_thumbnail, CHECKPOINT};
use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::stow_all;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, TestServer, OPERATOR_PASSWORD};
use serde_json::json;
use uuid::Uuid;

medledger_tests::on_both_deployments!(series_thumbnails_are_rendered_when_a_series_arrives);

fn spec(patient: u32, study: u32, instance: u32) -> CtSpec {
    CtSpec {
        seed: 11,
        patient_index: patient,
        study_index: study,
        instance_index: instance,
        rows: 64,
        columns: 64,
        ..CtSpec::default()
    }
}

async fn technician(s: &TestServer, o: &Org) -> String {
    let login = format!("tech.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": login, "name": "技师", "password": PASSWORD, "roles": [o.h1_roles["technician"]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    s.login(&login, PASSWORD).await.0
}

/// The series thumbnail's object key and whether it is kept.
async fn thumbnail(s: &TestServer, hospital: Uuid, first: &CtSpec) -> (String, bool) {
    kept_series_thumbnail(
        &s.app().store.read_models(),
        &s.running.blobs,
        hospital,
        &first.study_instance_uid(),
        &first.series_instance_uid(),
    )
    .await
    .unwrap()
    .expect("the series is in the instances read model")
}

/// Polls (without any thumbnail request) until the worker has kept the series' thumbnail.
async fn wait_for_thumbnail(s: &TestServer, hospital: Uuid, first: &CtSpec) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (key, kept) = thumbnail(s, hospital, first).await;
        if kept {
            return key;
        }
        assert!(tokio::time::Instant::now() < deadline, "no series thumbnail after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until the worker's checkpoint has passed `position`.
async fn wait_for_checkpoint(s: &TestServer, position: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.app().store.checkpoint(CHECKPOINT).await.unwrap() < position {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not reach {position}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_image(s: &TestServer, token: &str, path: &str) -> Vec<u8> {
    let r = s.http.get(s.url(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(r.headers()["content-type"], "image/jpeg", "{path}");
    r.bytes().await.unwrap().to_vec()
}

async fn series_thumbnails_are_rendered_when_a_series_arrives(d: &Deployment) {
    // First life: the worker is off. One study stays, one is deleted, one archived.
    let mut config = d.config();
    config.series_thumbnails = false;
    let s = TestServer::start(&config, system_clock()).await;
    let o = Org::build(&s).await;
    let tech = technician(&s, &o).await;
    let kept: Vec<CtSpec> = (0..3).map(|i| spec(1, 1, i)).collect();
    let deleted = spec(1, 2, 0);
    let archived = spec(1, 3, 0);
    stow_all(
        &s,
        &tech,
        kept.iter().chain([&deleted, &archived]).map(synthetic_ct).collect(),
    )
    .await;
    for (study, action, body) in [
        (&deleted, "delete", json!({"reason": "wrong patient"})),
        (&archived, "archive", json!({})),
    ] {
        let r = s
            .post(
                &format!("/api/v1/studies/{}/{action}", study.study_instance_uid()),
                Some(&o.h1_admin),
                body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let head = s.head().await;
    let _ = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    assert!(!thumbnail(&s, o.h1, &kept[0]).await.1, "nothing rendered yet");
    s.stop().await;

    // Second life: the worker catches up from its checkpoint.
    config.series_thumbnails = true;
    let s = TestServer::start(&config, system_clock()).await;
    wait_for_thumbnail(&s, o.h1, &kept[0]).await;
    wait_for_checkpoint(&s, head).await;
    assert!(!thumbnail(&s, o.h1, &deleted).await.1, "a deleted study is skipped");
    assert!(!thumbnail(&s, o.h1, &archived).await.1, "an archived study is skipped");
    assert_eq!(s.running.thumbnails.rendered(), 1);

    // A series arriving now: seven instances in one request, one render, no request.
    let (tech, _) = s.login(&format!("tech.{}", o.suffix), PASSWORD).await;
    let (doctor, _) = s.login(&o.u1_login, PASSWORD).await;
    let series: Vec<CtSpec> = (0..7).map(|i| spec(2, 4, i)).collect();
    stow_all(&s, &tech, series.iter().map(synthetic_ct).collect()).await;
    let key = wait_for_thumbnail(&s, o.h1, &series[0]).await;
    assert_eq!(s.running.renders.decodes(), 0, "nothing decoded on the request path");
    assert_eq!(
        s.running.renders.background_decodes(),
        2,
        "one render per series (the caught-up one and this one)"
    );
    let stored = s.running.blobs.get(&key).await.unwrap().unwrap();

    // The endpoints answer from the cache: the series and the study (its first series).
    let study = series[0].study_instance_uid();
    let from_series = get_image(
        &s,
        &doctor,
        &format!(
            "/dicomweb/studies/{study}/series/{}/thumbnail",
            series[0].series_instance_uid()
        ),
    )
    .await;
    let from_study = get_image(&s, &doctor, &format!("/dicomweb/studies/{study}/thumbnail")).await;
    assert_eq!(from_series, stored.to_vec());
    assert_eq!(from_study, stored.to_vec());
    let image = image::load_from_memory(&from_series).unwrap();
    assert_eq!((image.width(), image.height()), (128, 128));
    assert_eq!(s.running.renders.decodes(), 0, "answered from the cache");
    let metrics = s.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap();
    for line in [
        "medledger_series_thumbnails_total{outcome=\"rendered\"}",
        "medledger_render_decodes_total{origin=\"background\"}",
    ] {
        assert!(text.contains(line), "/metrics shows {line}");
    }

    // Deleted and archived studies answer like retrieval, not from the cache.
    let r = s
        .get(
            &format!("/dicomweb/studies/{}/thumbnail", deleted.study_instance_uid()),
            Some(&doctor),
        )
        .await;
    r.assert_problem(404, "not_found");
    let r = s
        .get(
            &format!("/dicomweb/studies/{}/thumbnail", archived.study_instance_uid()),
            Some(&doctor),
        )
        .await;
    r.assert_problem(409, "study_archived");

    // Forgetting the patient erases the thumbnails with the instances.
    let (operator, _) = s.login("operator", OPERATOR_PASSWORD).await;
    let r = s
        .post(
            "/api/v1/admin/forget-patient",
            Some(&operator),
            json!({"hospital_id": o.h1, "patient_id": series[0].patient_id(), "reason": "patient request"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!s.running.blobs.exists(&key).await.unwrap(), "the thumbnail is erased");
    wait_for_checkpoint(&s, s.head().await).await;
    assert!(!s.running.blobs.exists(&key).await.unwrap(), "and stays erased");
    let r = s
        .get(
            &format!("/dicomweb/studies/{study}/thumbnail?min_position={}", s.head().await),
            Some(&doctor),
        )
        .await;
    r.assert_problem(410, "study_erased");
    assert!(
        thumbnail(&s, o.h1, &kept[0]).await.1,
        "another patient's thumbnail stays"
    );
    s.stop().await;
}
