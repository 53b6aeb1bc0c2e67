//! Ingest's look at untrusted bytes: `inspect` (the structure walk, parsing up to Pixel Data,
//! metadata extraction and the DICOM JSON encoding of the data set). Whatever the input, it
//! refuses or accepts without panicking, hanging or allocating beyond the input's size, and
//! what it accepts carries DICOM JSON that parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medledger_dicom_ingest::inspect;

fuzz_target!(|data: &[u8]| {
    if let Ok(metadata) = inspect(data) {
        let json: serde_json::Value = serde_json::from_str(&metadata.dicom_json).expect("inspect's DICOM JSON is JSON");
        assert!(json.is_object(), "a data set is a JSON object");
        assert!(!metadata.sop_instance_uid.is_empty() && !metadata.study_instance_uid.is_empty());
    }
});
