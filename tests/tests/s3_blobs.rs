//! Blobs on an S3-compatible object store (moto's server, a real HTTP S3 API on loopback):
//! the blob store's contract (put, overwrite, get, exists, copy, delete, delete by prefix,
//! key prefixes kept apart, readers never see half an object, a large object in one PUT),
//! checked on the local folder and in memory too, and a whole study's life with the
//! platform's blobs on S3 on both deployments — STOW-RS, WADO-RS retrieval, the series
//! thumbnail, archive and retrieve, forgetting the patient — looking into the bucket itself.

use bytes::Bytes;
use medledger_commands::blobs::{BlobError, BlobStore};
use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::{retrieve, stow_all};
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::s3::S3Bucket;
use medledger_tests::{system_clock, Deployment, TestServer, OPERATOR_PASSWORD};
use serde_json::json;

medledger_tests::on_both_deployments!(a_study_lives_and_is_forgotten_with_its_objects_on_s3);

/// What every blob store must do.
async fn contract(store: &BlobStore) {
    let key = "hospitals/h1/logo.png";
    assert!(!store.exists(key).await.unwrap());
    assert_eq!(store.get(key).await.unwrap(), None);
    store.put(key, Bytes::from_static(b"first")).await.unwrap();
    assert!(store.exists(key).await.unwrap());
    assert_eq!(store.get(key).await.unwrap().unwrap(), "first");
    store.put(key, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(store.get(key).await.unwrap().unwrap(), "second");

    // Copy (the archive tier), then delete the original.
    store.copy(key, "archive/hospitals/h1/logo.png").await.unwrap();
    store.delete(key).await.unwrap();
    assert!(!store.exists(key).await.unwrap());
    assert_eq!(
        store.get("archive/hospitals/h1/logo.png").await.unwrap().unwrap(),
        "second"
    );
    store.delete(key).await.unwrap();
    store.delete("never/was").await.unwrap();

    // Delete by prefix: everything under `prefix/`, nothing that merely starts alike.
    for k in [
        "hospitals/h1/instances/1.2.3/a.dcm",
        "hospitals/h1/instances/1.2.3/conflicts/b.dcm",
        "hospitals/h1/instances/1.2.34/c.dcm",
    ] {
        store.put(k, Bytes::from_static(b"x")).await.unwrap();
    }
    assert_eq!(store.delete_prefix("hospitals/h1/instances/1.2.3").await.unwrap(), 2);
    assert!(!store.exists("hospitals/h1/instances/1.2.3/a.dcm").await.unwrap());
    assert!(store.exists("hospitals/h1/instances/1.2.34/c.dcm").await.unwrap());
    assert_eq!(store.delete_prefix("hospitals/h1/instances/1.2.3").await.unwrap(), 0);
    // More keys than one listing page of a small store.
    for i in 0..30 {
        store
            .put(&format!("renders/h1/9.9/{i}.jpg"), Bytes::from_static(b"r"))
            .await
            .unwrap();
    }
    assert_eq!(store.delete_prefix("renders/h1/9.9").await.unwrap(), 30);

    // A large object (12 MiB, above every client's multipart threshold) in one piece.
    let large = Bytes::from((0..12 * 1024 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    store.put("large/object", large.clone()).await.unwrap();
    assert_eq!(store.get("large/object").await.unwrap().unwrap(), large);

    // Readers see the old object or the whole new one, never a part.
    let key = "big/object";
    let (old, new) = (Bytes::from(vec![1u8; 512 * 1024]), Bytes::from(vec![2u8; 512 * 1024]));
    store.put(key, old.clone()).await.unwrap();
    let reader = {
        let store = store.clone();
        let (old, new) = (old.clone(), new.clone());
        tokio::spawn(async move {
            for _ in 0..40 {
                let seen = store.get(key).await.unwrap().expect("never missing");
                assert!(seen == old || seen == new, "saw a partial object");
            }
        })
    };
    for _ in 0..10 {
        store.put(key, new.clone()).await.unwrap();
        store.put(key, old.clone()).await.unwrap();
    }
    reader.await.unwrap();

    // Bad keys touch nothing.
    assert!(matches!(
        store.put("../outside", Bytes::from_static(b"x")).await,
        Err(BlobError::InvalidKey { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_blob_store_contract_holds_on_s3_local_and_memory() {
    medledger_tests::init_logs();
    contract(&BlobStore::memory()).await;
    let dir = tempfile::tempdir().unwrap();
    contract(&BlobStore::local(dir.path()).unwrap()).await;
    let Some(bucket) = S3Bucket::create().await else { return };
    let store = bucket.store("medledger/contract");
    contract(&store).await;

    // A prefix is a separate store: the other sees none of its keys; the bucket holds them
    // under the prefix.
    let other = bucket.store("elsewhere");
    store.put("qr/a.svg", Bytes::from_static(b"<svg/>")).await.unwrap();
    assert!(!other.exists("qr/a.svg").await.unwrap());
    assert!(bucket.keys().await.contains(&"medledger/contract/qr/a.svg".to_string()));
    assert!(bucket.keys().await.iter().all(|k| k.starts_with("medledger/contract/")));
}

async fn a_study_lives_and_is_forgotten_with_its_objects_on_s3(d: &Deployment) {
    let Some(bucket) = S3Bucket::create().await else { return };
    let mut config = d.config();
    bucket.apply(&mut config, "site-a");
    let s = TestServer::start(&config, system_clock()).await;
    let o = Org::build(&s).await;
    let login = format!("tech.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": login, "name": "技师", "password": PASSWORD, "roles": [o.h1_roles["technician"]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (tech, _) = s.login(&login, PASSWORD).await;
    let specs: Vec<CtSpec> = (0..3)
        .map(|i| CtSpec {
            seed: 21,
            patient_index: 5,
            instance_index: i,
            rows: 32,
            columns: 32,
            ..CtSpec::default()
        })
        .collect();
    stow_all(&s, &tech, specs.iter().map(synthetic_ct).collect()).await;
    let study = specs[0].study_instance_uid();
    let wado = format!("/dicomweb/studies/{study}");

    // The objects are in the bucket, under the prefix, byte for byte.
    let objects: Vec<String> = s
        .app()
        .load::<medledger_domain::imaging::study::Study>(&format!("study-{}.{study}", o.h1))
        .await
        .unwrap()
        .0
        .objects
        .values()
        .cloned()
        .collect();
    assert_eq!(objects.len(), 3);
    let keys = bucket.keys().await;
    for key in &objects {
        assert!(keys.contains(&format!("site-a/{key}")), "{key} in {keys:?}");
    }
    let (status, parts) = retrieve(&s, &o.u1_token, &format!("{wado}?min_position={}", s.head().await)).await;
    assert_eq!(status, 200);
    let mut sent: Vec<Vec<u8>> = specs.iter().map(synthetic_ct).collect();
    let mut got = parts.clone();
    sent.sort();
    got.sort();
    assert_eq!(got, sent, "WADO-RS gives back the bytes as stored in S3");

    // The series thumbnail worker keeps its render in the bucket too.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !bucket.keys().await.iter().any(|k| k.starts_with("site-a/renders/")) {
        assert!(tokio::time::Instant::now() < deadline, "no thumbnail in the bucket");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Archive: copies to the archive tier, then the hot copies go; retrieve brings them back.
    let r = s
        .post(
            &format!("/api/v1/studies/{study}/archive"),
            Some(&o.h1_admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let keys = bucket.keys().await;
    for key in &objects {
        assert!(!keys.contains(&format!("site-a/{key}")), "{key} left the hot tier");
        assert!(keys.contains(&format!("site-a/archive/{key}")), "{key} archived");
    }
    s.get(&format!("{wado}?min_position={}", s.head().await), Some(&o.u1_token))
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
    let keys = bucket.keys().await;
    for key in &objects {
        assert!(keys.contains(&format!("site-a/{key}")), "{key} back");
        assert!(
            !keys.contains(&format!("site-a/archive/{key}")),
            "{key} archive copy gone"
        );
    }
    let (status, parts) = retrieve(&s, &o.u1_token, &format!("{wado}?min_position={}", s.head().await)).await;
    assert_eq!((status, parts.len()), (200, 3));

    // Forgetting the patient empties the bucket of their instances and renders.
    let (operator, _) = s.login("operator", OPERATOR_PASSWORD).await;
    let r = s
        .post(
            "/api/v1/admin/forget-patient",
            Some(&operator),
            json!({"hospital_id": o.h1, "patient_id": specs[0].patient_id(), "reason": "patient request"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let left: Vec<String> = bucket
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains("/instances/") || k.contains("/renders/"))
        .collect();
    assert!(left.is_empty(), "left in the bucket: {left:?}");
    s.get(&format!("{wado}?min_position={}", s.head().await), Some(&o.u1_token))
        .await
        .assert_problem(410, "study_erased");
    s.stop().await;
}
