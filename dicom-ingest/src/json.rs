//! DICOM JSON (PS3.18 F.2) of an instance's data set, written once at ingest so that WADO-RS
//! `/metadata` is answered from the database without opening a blob.
//!
//! Our own encoder rather than dicom-json's, for two rules of F.2 that it does not follow:
//! IS and DS values are JSON numbers (F.2.3.1), and large binary values are not inlined but
//! referenced by a `BulkDataURI` (F.2.6). Binary values up to [`INLINE_BINARY_LIMIT`] bytes
//! are written as `InlineBinary` (base64); larger ones, and Pixel Data always, become
//! `BulkDataURI`s relative to the server root
//! (`/dicomweb/studies/{s}/series/{se}/instances/{i}/bulkdata/{path}`), which the API makes
//! absolute when it answers. `{path}` names the element: its tag, or for a nested element
//! `TAG.ITEM.TAG…` with 0-based item indexes.
//!
//! A value that does not parse as its VR says (an IS of `"12a"`) is kept as the string sent,
//! so nothing received is lost from the metadata.

use base64::Engine;
use dicom_core::header::Header;
use dicom_core::value::Value as DicomValue;
use dicom_core::{Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use serde_json::{json, Map, Value};

/// Binary values at most this long are inlined (base64); longer ones are bulk data.
pub const INLINE_BINARY_LIMIT: usize = 1024;

/// Where the instance lives, for bulk data URIs.
pub struct InstanceUris<'a> {
    pub study: &'a str,
    pub series: &'a str,
    pub instance: &'a str,
}

impl InstanceUris<'_> {
    fn bulk(&self, path: &str) -> String {
        format!(
            "/dicomweb/studies/{}/series/{}/instances/{}/bulkdata/{path}",
            self.study, self.series, self.instance
        )
    }
}

/// The data set (read up to, not including, Pixel Data) as a DICOM JSON object. When the
/// instance has pixel data, `pixel_data` gives its tag and VR and it is written as a bulk
/// data reference.
pub fn dataset_json(
    object: &InMemDicomObject,
    uris: &InstanceUris<'_>,
    transfer_syntax: &str,
    pixel_data: Option<(Tag, VR)>,
) -> Value {
    let mut out = encode_object(object, uris, "");
    out.insert("00020010".into(), json!({"vr": "UI", "Value": [transfer_syntax]}));
    if let Some((tag, vr)) = pixel_data {
        let key = tag_key(tag);
        let uri = uris.bulk(&key);
        out.insert(key, json!({"vr": vr.to_string(), "BulkDataURI": uri}));
    }
    Value::Object(out)
}

fn tag_key(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

fn encode_object(object: &InMemDicomObject, uris: &InstanceUris<'_>, prefix: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for element in object.iter() {
        let tag = element.tag();
        // Group lengths are encoding details, not attributes (F.2: not included).
        if tag.element() == 0 {
            continue;
        }
        let key = tag_key(tag);
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        out.insert(key, encode_element(element, uris, &path));
    }
    out
}

fn trim_value(s: &str) -> &str {
    s.trim_end_matches(['\0', ' ']).trim_start_matches(' ')
}

fn encode_element(element: &InMemElement, uris: &InstanceUris<'_>, path: &str) -> Value {
    let vr = element.vr();
    let mut out = Map::new();
    out.insert("vr".into(), Value::String(vr.to_string().into()));
    match element.value() {
        DicomValue::Sequence(seq) => {
            let items: Vec<Value> = seq
                .items()
                .iter()
                .enumerate()
                .map(|(i, item)| Value::Object(encode_object(item, uris, &format!("{path}.{i}"))))
                .collect();
            if !items.is_empty() {
                out.insert("Value".into(), Value::Array(items));
            }
        }
        DicomValue::PixelSequence(_) => {
            out.insert("BulkDataURI".into(), Value::String(uris.bulk(path)));
        }
        DicomValue::Primitive(p) => {
            if p.multiplicity() == 0 {
                return Value::Object(out);
            }
            match vr {
                VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN => {
                    let bytes = p.to_bytes();
                    if bytes.len() <= INLINE_BINARY_LIMIT {
                        out.insert(
                            "InlineBinary".into(),
                            Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)),
                        );
                    } else {
                        out.insert("BulkDataURI".into(), Value::String(uris.bulk(path)));
                    }
                }
                _ => {
                    if let Some(values) = encode_values(vr, p) {
                        out.insert("Value".into(), Value::Array(values));
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// The `Value` array of a primitive element, or `None` when it is empty.
fn encode_values(vr: VR, p: &dicom_core::PrimitiveValue) -> Option<Vec<Value>> {
    let strings = || -> Vec<String> {
        match vr {
            // Text VRs whose value is one string, backslashes included.
            VR::LT | VR::ST | VR::UT | VR::UR => vec![trim_value(&p.to_str()).trim_end().to_string()],
            _ => p.to_multi_str().iter().map(|s| trim_value(s).to_string()).collect(),
        }
    };
    let values: Vec<Value> = match vr {
        VR::PN => strings()
            .into_iter()
            .map(|name| {
                let mut groups = Map::new();
                for (label, part) in ["Alphabetic", "Ideographic", "Phonetic"].iter().zip(name.split('=')) {
                    if !part.is_empty() {
                        groups.insert((*label).into(), Value::String(part.to_string()));
                    }
                }
                Value::Object(groups)
            })
            .collect(),
        VR::IS => strings()
            .into_iter()
            .map(|s| match s.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) if s.is_empty() => Value::Null,
                Err(_) => Value::String(s),
            })
            .collect(),
        VR::DS => strings()
            .into_iter()
            .map(|s| match s.parse::<f64>() {
                Ok(n) if n.is_finite() => json!(n),
                _ if s.is_empty() => Value::Null,
                _ => Value::String(s),
            })
            .collect(),
        VR::US | VR::UL | VR::UV => p.to_multi_int::<u64>().ok()?.into_iter().map(|n| json!(n)).collect(),
        VR::SS | VR::SL | VR::SV => p.to_multi_int::<i64>().ok()?.into_iter().map(|n| json!(n)).collect(),
        VR::FL | VR::FD => p
            .to_multi_float64()
            .ok()?
            .into_iter()
            .map(|f| {
                if f.is_finite() {
                    json!(f)
                } else {
                    Value::String(f.to_string())
                }
            })
            .collect(),
        VR::AT => match p {
            dicom_core::PrimitiveValue::Tags(tags) => tags.iter().map(|t| Value::String(tag_key(*t))).collect(),
            _ => strings().into_iter().map(Value::String).collect(),
        },
        _ => strings()
            .into_iter()
            .map(|s| if s.is_empty() { Value::Null } else { Value::String(s) })
            .collect(),
    };
    (!values.is_empty()).then_some(values)
}

/// The tag key (`GGGGEEEE`, upper-case hex) for a keyword (`StudyDescription`) or a tag given
/// in hex, as QIDO-RS `includefield` and matching keys name attributes.
pub fn tag_key_of(name: &str) -> Option<String> {
    use dicom_core::dictionary::DataDictionary;
    let name = name.trim();
    if name.len() == 8 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(name.to_ascii_uppercase());
    }
    dicom_dictionary_std::StandardDataDictionary
        .by_name(name)
        .and_then(|entry| match entry.tag {
            dicom_core::dictionary::TagRange::Single(tag) => Some(tag_key(tag)),
            _ => None,
        })
}

/// Why a bulk data value cannot be given.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BulkDataError {
    #[error("no such bulk data element")]
    NotFound,
    #[error("the stored object cannot be read: {0}")]
    Unreadable(String),
}

/// The value bytes of the element a bulk data path names (see the module docs) in a stored
/// Part-10 object. Encapsulated pixel data gives its fragments, in order, concatenated.
pub fn bulk_value(bytes: &[u8], path: &str) -> Result<Vec<u8>, BulkDataError> {
    let object = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(bytes)
        .map_err(|e| BulkDataError::Unreadable(e.to_string()))?;
    let parse_tag = |t: &str| -> Result<Tag, BulkDataError> {
        if t.len() != 8 {
            return Err(BulkDataError::NotFound);
        }
        let group = u16::from_str_radix(&t[..4], 16).map_err(|_| BulkDataError::NotFound)?;
        let element = u16::from_str_radix(&t[4..], 16).map_err(|_| BulkDataError::NotFound)?;
        Ok(Tag(group, element))
    };
    let mut parts = path.split('.');
    let mut current: &InMemDicomObject = &object;
    loop {
        let tag = parse_tag(parts.next().ok_or(BulkDataError::NotFound)?)?;
        let element = current.get(tag).ok_or(BulkDataError::NotFound)?;
        match parts.next() {
            None => {
                return match element.value() {
                    DicomValue::Primitive(p) => Ok(p.to_bytes().into_owned()),
                    DicomValue::PixelSequence(seq) => Ok(seq.fragments().concat()),
                    DicomValue::Sequence(_) => Err(BulkDataError::NotFound),
                };
            }
            Some(index) => {
                let index: usize = index.parse().map_err(|_| BulkDataError::NotFound)?;
                current = element
                    .items()
                    .and_then(|items| items.get(index))
                    .ok_or(BulkDataError::NotFound)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{dicom_value, DataElement, PrimitiveValue};
    use dicom_dictionary_std::tags;

    fn uris() -> InstanceUris<'static> {
        InstanceUris {
            study: "1.2",
            series: "1.2.3",
            instance: "1.2.3.4",
        }
    }

    #[test]
    fn numbers_are_numbers_names_are_groups_and_large_binaries_are_bulk_data() {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from(" 12 "),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            dicom_value!(Strs, ["0.5", "0.75"]),
        ));
        obj.put(DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from("Wang^Fang=王^芳"),
        ));
        obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512_u16)));
        obj.put(DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            dicom_value!(Strs, ["ORIGINAL", "PRIMARY"]),
        ));
        obj.put(DataElement::new(
            Tag(0x6000, 0x3000),
            VR::OW,
            PrimitiveValue::U16(vec![0u16; 4096].into()),
        ));
        obj.put(DataElement::new(
            Tag(0x0009, 0x1010),
            VR::OB,
            PrimitiveValue::U8(vec![1, 2, 3].into()),
        ));
        obj.put(DataElement::new(
            tags::SLICE_THICKNESS,
            VR::DS,
            PrimitiveValue::from("abc"),
        ));
        obj.put(DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, PrimitiveValue::Empty));
        let json = dataset_json(&obj, &uris(), "1.2.840.10008.1.2.1", Some((tags::PIXEL_DATA, VR::OW)));
        assert_eq!(json["00200013"], json!({"vr": "IS", "Value": [12]}));
        assert_eq!(json["00280030"], json!({"vr": "DS", "Value": [0.5, 0.75]}));
        assert_eq!(
            json["00100010"],
            json!({"vr": "PN", "Value": [{"Alphabetic": "Wang^Fang", "Ideographic": "王^芳"}]})
        );
        assert_eq!(json["00280010"], json!({"vr": "US", "Value": [512]}));
        assert_eq!(json["00080008"], json!({"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]}));
        assert_eq!(
            json["60003000"]["BulkDataURI"],
            "/dicomweb/studies/1.2/series/1.2.3/instances/1.2.3.4/bulkdata/60003000"
        );
        assert_eq!(json["00091010"], json!({"vr": "OB", "InlineBinary": "AQID"}));
        assert_eq!(json["00180050"], json!({"vr": "DS", "Value": ["abc"]}), "kept as sent");
        assert_eq!(json["00081030"], json!({"vr": "LO"}));
        assert_eq!(json["00020010"]["Value"][0], "1.2.840.10008.1.2.1");
        assert_eq!(json["7FE00010"]["vr"], "OW");
        assert!(json["7FE00010"]["BulkDataURI"]
            .as_str()
            .unwrap()
            .ends_with("/bulkdata/7FE00010"));
    }

    #[test]
    fn sequences_nest_and_their_bulk_data_paths_name_the_item() {
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::CODE_VALUE,
            VR::SH,
            PrimitiveValue::from("T-D3000"),
        ));
        item.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(vec![7u8; 5000].into()),
        ));
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            DicomValue::new_sequence(vec![InMemDicomObject::new_empty(), item], dicom_core::Length::UNDEFINED),
        ));
        let json = dataset_json(&obj, &uris(), "1.2.840.10008.1.2", None);
        let seq = &json["00082218"];
        assert_eq!(seq["vr"], "SQ");
        assert_eq!(seq["Value"][0], json!({}));
        assert_eq!(seq["Value"][1]["00080100"]["Value"][0], "T-D3000");
        assert!(seq["Value"][1]["7FE00010"]["BulkDataURI"]
            .as_str()
            .unwrap()
            .ends_with("/bulkdata/00082218.1.7FE00010"));
        assert!(json.get("7FE00010").is_none());
    }

    #[test]
    fn keywords_and_hex_tags_name_attributes() {
        assert_eq!(tag_key_of("StudyDescription").as_deref(), Some("00081030"));
        assert_eq!(tag_key_of("0020000d").as_deref(), Some("0020000D"));
        assert_eq!(tag_key_of("NoSuchKeyword"), None);
    }

    #[test]
    fn bulk_values_are_found_by_path_in_the_stored_object() {
        let bytes = crate::synthetic_ct(&crate::CtSpec::default());
        let pixels = bulk_value(&bytes, "7FE00010").unwrap();
        assert_eq!(pixels.len(), 512 * 512 * 2);
        assert_eq!(
            &bytes[bytes.len() - pixels.len()..],
            &pixels[..],
            "the pixel data as stored"
        );
        assert_eq!(bulk_value(&bytes, "60003000"), Err(BulkDataError::NotFound));
        assert_eq!(bulk_value(&bytes, "7FE00010.0.00080100"), Err(BulkDataError::NotFound));
        assert_eq!(bulk_value(&bytes, "zz"), Err(BulkDataError::NotFound));
        assert!(matches!(
            bulk_value(b"junk", "7FE00010"),
            Err(BulkDataError::Unreadable(_))
        ));
    }
}
