//! A third-party DICOMweb client — the Python `dicomweb-client` with pydicom,
//! installed from PyPI by the test script — stores, searches and retrieves
//! against a running MedLedger: STOW-RS, QIDO-RS (study, series, instance),
//! WADO-RS instance and metadata (parsed back into a pydicom dataset); and,
//! given nothing but the prior root of a report, finds and opens another
//! hospital's shared study of the report's patient.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::{small_ct, stow_all};
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::reports::{draft, settings};
use medledger_tests::{in_ci, system_clock, Deployment, TestServer};
use serde_json::{json, Value};

medledger_tests::on_both_deployments!(
    dicomweb_client_stores_finds_and_retrieves,
    dicomweb_client_opens_a_shared_prior_through_the_reports_root,
);

/// The test server's public base URL, which the URLs in its answers start with.
const PUBLIC: &str = "https://medledger.test";

fn client_available() -> bool {
    let available = std::process::Command::new("python3")
        .args(["-c", "import dicomweb_client, pydicom"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !in_ci(),
            "the Python dicomweb-client is needed under CI (pip install dicomweb-client)"
        );
        eprintln!("SKIPPED: python3 with dicomweb-client is not installed");
    }
    available
}

/// Runs `tests/python/<script>` with `args`; what it printed, as JSON.
async fn python(script: &str, args: Vec<String>) -> Value {
    let script = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .args(&args)
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
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn dicomweb_client_stores_finds_and_retrieves(d: &Deployment) {
    if !client_available() {
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
    let mut args = vec![s.base.clone(), token];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let seen = python("dicomweb_client_check.py", args).await;
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

/// H2 shares its studies; H1's doctor, working on the report of the patient H2 also saw,
/// points the client at that report's prior root and opens H2's study like any other.
async fn dicomweb_client_opens_a_shared_prior_through_the_reports_root(d: &Deployment) {
    if !client_available() {
        return;
    }
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let (current, prior) = (small_ct(1, 3, 0), small_ct(2, 3, 0));
    for (hospital, admin, login, study) in [
        (o.h1, &o.h1_admin, "tech1", &current),
        (o.h2, &o.h2_admin, "tech2", &prior),
    ] {
        let role = Org::role(&s, hospital, admin, "technician").await;
        let (tech, _) = o.add_user(&s, hospital, admin, login, vec![role]).await;
        stow_all(&s, &tech, vec![synthetic_ct(study)]).await;
    }
    settings(&s, &o.h2_admin, json!({"prior_sharing": "studies"})).await;
    let (report, _) = draft(&s, &o.u1_token, &current, "对比前片。").await;
    // The client cannot ask to read its writes: wait until the priors are searchable.
    let head = s.head().await;
    let priors = s
        .get(
            &format!("/api/v1/reports/{report}/priors?min_position={head}"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(priors.status, 200, "{}", priors.body);
    let root = format!("{}/dicomweb/reports/{report}/priors", s.base);
    let args = vec![root, o.u1_token.clone(), PUBLIC.to_string()];
    let seen = python("dicomweb_client_priors.py", args).await;
    assert_eq!(seen["studies"], json!([prior.study_instance_uid()]), "{seen}");
    assert_eq!(
        seen["retrieve_url"],
        format!(
            "{PUBLIC}/dicomweb/reports/{report}/priors/studies/{}",
            prior.study_instance_uid()
        )
    );
    assert_eq!(seen["series"], 1);
    assert_eq!(seen["instances"], 1);
    assert_eq!(seen["metadata"], 1);
    assert_eq!(seen["metadata_patient_id"], prior.patient_id());
    assert_eq!(seen["retrieved_sop"], prior.sop_instance_uid());
    assert_eq!(seen["frame_bytes"], 16 * 16 * 2);
    assert_eq!(seen["rendered_png"], true);
    assert_eq!(seen["bulk_pixels_equal"], true);
    s.stop().await;
}
