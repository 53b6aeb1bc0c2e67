//! A third-party DICOMweb client — the Python `dicomweb-client` with pydicom,
//! installed from PyPI by the test script — stores, searches and retrieves
//! against a running MedLedger: STOW-RS, QIDO-RS (study, series, instance),
//! WADO-RS instance and metadata (parsed back into a pydicom dataset).

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{in_ci, system_clock, Deployment, TestServer};
use serde_json::json;

medledger_tests::on_both_deployments!(dicomweb_client_stores_finds_and_retrieves);

fn client_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import dicomweb_client, pydicom"])
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn dicomweb_client_stores_finds_and_retrieves(d: &Deployment) {
    if !client_available() {
        assert!(
            !in_ci(),
            "the Python dicomweb-client is needed under CI (pip install dicomweb-client)"
        );
        eprintln!("SKIPPED: python3 with dicomweb-client is not installed");
        return;
    }
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let login = format!("tech.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": login, "name": "技师", "password": PASSWORD,
                   "roles": [o.h1_roles["technician"], o.h1_roles["doctor"]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (token, _) = s.login(&login, PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..3 {
        let path = dir.path().join(format!("ct{i}.dcm"));
        std::fs::write(
            &path,
            synthetic_ct(&CtSpec {
                patient_index: 12,
                study_index: 1,
                series_index: i / 2,
                instance_index: i,
                rows: 32,
                columns: 32,
                ..CtSpec::default()
            }),
        )
        .unwrap();
        files.push(path);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/dicomweb_client_check.py");
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(&base)
            .arg(&token)
            .args(&files)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "dicomweb-client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["stored"], 3);
    assert_eq!(seen["studies"], 1);
    assert_eq!(seen["series"], 2);
    assert_eq!(seen["instances"], 3);
    assert_eq!(seen["metadata"], 3);
    assert_eq!(seen["metadata_patient_id"], "P00000012");
    assert!(seen["metadata_instance_number"].is_i64());
    assert_eq!(seen["retrieved_pixels_equal"], true);
    s.stop().await;
}
