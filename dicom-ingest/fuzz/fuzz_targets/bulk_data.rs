//! WADO-RS bulk data: for an object that ingest accepted, every `BulkDataURI` its metadata
//! names is looked up in the stored bytes (`json::bulk_value`), plus a few paths a client may
//! make up. No panic, hang or unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medledger_dicom_ingest::{inspect, json};

/// Every BulkDataURI's path (after `/bulkdata/`) in a DICOM JSON value.
fn bulk_paths(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "BulkDataURI" {
                    if let Some(path) = v.as_str().and_then(|u| u.rsplit_once("/bulkdata/")) {
                        out.push(path.1.to_string());
                    }
                } else {
                    bulk_paths(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| bulk_paths(i, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(metadata) = inspect(data) else { return };
    let json: serde_json::Value = serde_json::from_str(&metadata.dicom_json).expect("JSON");
    let mut paths = vec![
        "7FE00010".to_string(),
        "7FE00008".into(),
        "00091002".into(),
        "00082218.0.7FE00010".into(),
        "7FE00010.0.00080100".into(),
        "FFFFFFFF".into(),
    ];
    bulk_paths(&json, &mut paths);
    for path in paths.iter().take(64) {
        let _ = json::bulk_value(data, path);
    }
});
