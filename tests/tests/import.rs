//! `medledger import`: a folder tree of DICOM files into a hospital — stored,
//! duplicates counted, a conflicting copy kept aside, non-DICOM files (a
//! DICOMDIR index, a text file) and truncated files refused and listed —
//! on both deployments, then visible in the hospital's worklist.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::org::Org;
use medledger_tests::{system_clock, Deployment, TestServer};

medledger_tests::on_both_deployments!(a_folder_tree_is_imported_with_a_summary);

fn ct(instance: u32, seed: u64) -> Vec<u8> {
    synthetic_ct(&CtSpec {
        patient_index: 4,
        study_index: 9,
        instance_index: instance,
        rows: 16,
        columns: 16,
        seed,
        ..CtSpec::default()
    })
}

async fn a_folder_tree_is_imported_with_a_summary(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("PATIENT/STUDY/SERIES");
    std::fs::create_dir_all(&nested).unwrap();
    for i in 0..3 {
        std::fs::write(nested.join(format!("IM{i:04}")), ct(i, 0)).unwrap();
    }
    std::fs::write(dir.path().join("copy-of-IM0000.dcm"), ct(0, 0)).unwrap();
    let mut truncated = ct(3, 0);
    truncated.truncate(truncated.len() / 2);
    std::fs::write(nested.join("IM0003"), truncated).unwrap();
    std::fs::write(dir.path().join("DICOMDIR"), b"not an instance, an index").unwrap();
    std::fs::write(dir.path().join("README.TXT"), "burned by the modality").unwrap();

    let summary = medledger_api::import::import(s.app(), &s.running.blobs, dir.path(), o.h1, false)
        .await
        .unwrap();
    assert_eq!(summary.files, 7);
    assert_eq!((summary.stored, summary.duplicates, summary.conflicts), (3, 1, 0));
    assert_eq!(summary.refused["not_dicom"].len(), 2, "{:?}", summary.refused);
    assert_eq!(summary.refused["truncated"], vec![nested.join("IM0003")]);
    let report = medledger_api::import::report(&summary);
    assert!(report.starts_with("7 files: 3 stored"), "{report}");

    // The same tree again only finds duplicates; a different file under an imported SOP
    // Instance UID is a conflict kept aside.
    let again = medledger_api::import::import(s.app(), &s.running.blobs, &nested, o.h1, false)
        .await
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 3));
    let other = tempfile::tempdir().unwrap();
    let mut changed = ct(1, 0);
    let last = changed.len() - 1;
    changed[last] ^= 0xFF;
    std::fs::write(other.path().join("changed.dcm"), changed).unwrap();
    let conflict = medledger_api::import::import(s.app(), &s.running.blobs, other.path(), o.h1, false)
        .await
        .unwrap();
    assert_eq!(conflict.conflicts, 1);

    let head = s.head().await;
    let list = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["instance_count"], 3);
    assert!(
        medledger_api::import::import(s.app(), &s.running.blobs, dir.path(), uuid::Uuid::new_v4(), false)
            .await
            .is_err()
    );
    s.stop().await;
}
