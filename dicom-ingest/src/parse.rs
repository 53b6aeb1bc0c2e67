//! Inspecting a received Part-10 file: is it a whole, acceptable DICOM instance, and what does
//! it say about patient, study, series and instance?
//!
//! [`inspect`] works in two passes over the bytes as received and never re-encodes them:
//!
//! 1. **Structure walk** (ours, no allocation): every element header of the file meta group
//!    and of the whole data set — nested sequences, items and pixel data fragments included —
//!    is decoded with dicom-rs's own header decoders for the file's transfer syntax, and every
//!    declared length is checked against the bytes that remain and against its enclosing item.
//!    This is how we detect truncation anywhere, Pixel Data included, and it is the memory
//!    guard: dicom-rs 0.10 allocates and zero-fills a value's declared length *before*
//!    reading it, so a hostile 4 GiB length would cost 4 GiB. dicom-rs only sees files whose
//!    every length fits inside the file, whose sequences nest at most
//!    [`MAX_SEQUENCE_DEPTH`] deep, and which are at most [`MAX_OBJECT_BYTES`] long.
//!    Binary values (US, SS, OW, UL, SL, FL, OF, OL, AT, FD, OD, SV, UV, OV) must be a whole
//!    number of values long (PS3.5 §7.1.1): dicom-parser 0.10 reads `length / size` values and
//!    leaves the rest unread, so a 2-byte SL would make it read the following bytes as a
//!    header — with a length taken from attribute values, which our walk never checked
//!    (found by `cargo fuzz`: a 1.4 KB file made it allocate 540 MB).
//! 2. **Metadata read**: dicom-object reads the file meta group and the data set up to (not
//!    including) Pixel Data, and the indexed attributes are taken from it once.
//!
//! It never stores anything and never decodes pixels.

use dicom_core::header::{DataElementHeader, Header, SequenceItemHeader};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::decode::DecodeFrom;
use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde::{Deserialize, Serialize};

/// Largest instance accepted: 512 MiB. The whole instance is held in memory while it is
/// inspected and stored, so this bounds one instance's footprint; multi-frame objects larger
/// than this (long cine loops, whole-slide images) are rejected as `too_large`.
pub const MAX_OBJECT_BYTES: usize = 512 * 1024 * 1024;

/// Deepest sequence nesting accepted. Real objects (structured reports included) stay well
/// below it; the cap keeps hostile nesting from exhausting the stack.
pub const MAX_SEQUENCE_DEPTH: usize = 32;

/// Longest UID the standard allows.
const MAX_UID_LEN: usize = 64;

/// Item Delimitation Item: not an attribute, so the dictionary has no constant for it.
const ITEM_DELIMITATION: Tag = Tag(0xFFFE, 0xE00D);

/// What a received instance says about itself, extracted once at ingest for indexing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceMetadata {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub patient_id: String,
    pub patient_name: Option<String>,
    pub patient_sex: Option<String>,
    /// DICOM DA (`YYYYMMDD`) as sent.
    pub patient_birth_date: Option<String>,
    pub modality: Option<String>,
    pub body_part_examined: Option<String>,
    /// DICOM DA as sent.
    pub study_date: Option<String>,
    /// DICOM TM as sent.
    pub study_time: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub institution_name: Option<String>,
    /// 1 when the instance does not say (single-frame objects usually do not).
    pub number_of_frames: u32,
    pub rows: Option<u16>,
    pub columns: Option<u16>,
    pub bits_allocated: Option<u16>,
    pub photometric_interpretation: Option<String>,
    /// The data set as DICOM JSON (PS3.18 F.2), pixel data and large binaries as bulk data
    /// URIs relative to the server root: what WADO-RS `/metadata` answers.
    #[serde(default)]
    pub dicom_json: String,
}

/// Why an instance was refused: a stable machine `code` and a human `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// One of `not_dicom`, `truncated`, `missing_study_uid`, `missing_series_uid`,
    /// `missing_sop_instance_uid`, `missing_sop_class_uid`, `missing_patient_id`,
    /// `too_large`, `malformed`.
    pub code: &'static str,
    pub reason: String,
}

impl Rejection {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Rejection {
            code,
            reason: reason.into(),
        }
    }

    fn truncated(reason: impl Into<String>) -> Self {
        Rejection::new("truncated", reason)
    }

    fn malformed(reason: impl Into<String>) -> Self {
        Rejection::new("malformed", reason)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl std::error::Error for Rejection {}

/// Checks a received Part-10 file (128-byte preamble, `DICM`, file meta group, data set) and
/// extracts its metadata, or says why it must be refused.
pub fn inspect(bytes: &[u8]) -> Result<InstanceMetadata, Rejection> {
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(Rejection::new(
            "too_large",
            format!("{} bytes exceeds the {} byte limit", bytes.len(), MAX_OBJECT_BYTES),
        ));
    }
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(Rejection::new("not_dicom", "no DICM prefix after a 128-byte preamble"));
    }
    let structure = walk(bytes)?;
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(bytes)
        .map_err(|e| Rejection::malformed(format!("unreadable data set: {e}")))?;
    let mut metadata = extract(&object)?;
    let uris = crate::json::InstanceUris {
        study: &metadata.study_instance_uid,
        series: &metadata.series_instance_uid,
        instance: &metadata.sop_instance_uid,
    };
    metadata.dicom_json =
        crate::json::dataset_json(&object, &uris, &metadata.transfer_syntax_uid, structure.pixel_data).to_string();
    if metadata.rows.is_some() && metadata.columns.is_some() && !structure.has_pixel_data {
        return Err(Rejection::truncated(
            "image attributes present but the data set ends before Pixel Data",
        ));
    }
    Ok(metadata)
}

/// What the structure walk learned about the whole object.
struct Structure {
    has_pixel_data: bool,
    /// Tag and VR of the top-level pixel data element, when there is one.
    pixel_data: Option<(Tag, VR)>,
}

/// Pass 1: walk every element header of the meta group and the data set, checking lengths.
fn walk(bytes: &[u8]) -> Result<Structure, Rejection> {
    let meta_decoder = dicom_encoding::decode::file_header_decoder();
    let mut walker = Walker {
        bytes,
        pos: 132,
        decoder: Box::new(meta_decoder),
        has_pixel_data: false,
        pixel_data: None,
    };

    // The file meta group, the way dicom-object reads it: group length first, then elements
    // until that many bytes are consumed.
    let group_length_header = walker.header()?;
    if group_length_header.tag() != tags::FILE_META_INFORMATION_GROUP_LENGTH || group_length_header.len.0 != 4 {
        return Err(Rejection::malformed(
            "file meta group does not start with its group length",
        ));
    }
    let group_length = u32::from_le_bytes(
        walker
            .take(group_length_header.tag(), 4, None)?
            .try_into()
            .unwrap_or([0; 4]),
    );
    let mut consumed: u32 = 0;
    let mut transfer_syntax = None;
    while consumed < group_length {
        let start = walker.pos;
        let header = walker.header()?;
        let Some(len) = header.len.get() else {
            return Err(Rejection::malformed(format!(
                "file meta element {} has undefined length",
                header.tag()
            )));
        };
        let value = walker.take(header.tag(), len, None)?;
        if header.tag() == tags::TRANSFER_SYNTAX_UID {
            transfer_syntax = Some(trim(&String::from_utf8_lossy(value)).to_owned());
        }
        consumed = consumed.saturating_add((walker.pos - start) as u32);
    }
    let uid = transfer_syntax.ok_or_else(|| Rejection::malformed("file meta group has no Transfer Syntax UID"))?;
    let ts = TransferSyntaxRegistry
        .get(&uid)
        .ok_or_else(|| Rejection::malformed(format!("unknown transfer syntax {uid}")))?;
    if matches!(ts.codec(), Codec::Dataset(_)) {
        return Err(Rejection::malformed(format!(
            "transfer syntax {uid} compresses the whole data set; not supported"
        )));
    }
    walker.decoder = ts
        .decoder_for::<&[u8]>()
        .ok_or_else(|| Rejection::malformed(format!("transfer syntax {uid} not supported")))?;
    walker.dataset(None, 0)?;
    Ok(Structure {
        has_pixel_data: walker.has_pixel_data,
        pixel_data: walker.pixel_data,
    })
}

/// A cursor over the received bytes that decodes headers and skips values, mirroring how
/// dicom-parser's data set reader tokenizes (so both agree on where every header is).
struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
    decoder: Box<dyn DecodeFrom<&'a [u8]> + 'a>,
    has_pixel_data: bool,
    pixel_data: Option<(Tag, VR)>,
}

impl<'a> Walker<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn header(&mut self) -> Result<DataElementHeader, Rejection> {
        let mut source: &'a [u8] = &self.bytes[self.pos..];
        let (header, read) = self
            .decoder
            .decode_header(&mut source)
            .map_err(|e| self.header_error(e))?;
        self.pos += read;
        Ok(header)
    }

    fn item_header(&mut self) -> Result<SequenceItemHeader, Rejection> {
        let mut source: &'a [u8] = &self.bytes[self.pos..];
        let header = self
            .decoder
            .decode_item_header(&mut source)
            .map_err(|e| self.header_error(e))?;
        self.pos = self.bytes.len() - source.len();
        Ok(header)
    }

    fn header_error(&self, error: dicom_encoding::decode::Error) -> Rejection {
        if self.remaining() < 12 {
            Rejection::truncated(format!("object ends inside an element header at byte {}", self.pos))
        } else {
            Rejection::malformed(format!("bad element header at byte {}: {error}", self.pos))
        }
    }

    /// Consumes a value of `len` bytes that must fit in the file and before `end`.
    fn take(&mut self, tag: Tag, len: u32, end: Option<usize>) -> Result<&'a [u8], Rejection> {
        let len = len as usize;
        if len > self.remaining() {
            return Err(Rejection::truncated(format!(
                "element {tag} declares {len} bytes but only {} remain",
                self.remaining()
            )));
        }
        if end.is_some_and(|end| self.pos + len > end) {
            return Err(Rejection::malformed(format!(
                "element {tag} runs past the end of its item"
            )));
        }
        let value = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(value)
    }

    /// The end of a defined-length container starting here, checked against the file.
    fn container_end(&self, what: &str, len: u32, outer: Option<usize>) -> Result<usize, Rejection> {
        let len = len as usize;
        if len > self.remaining() {
            return Err(Rejection::truncated(format!(
                "{what} declares {len} bytes but only {} remain",
                self.remaining()
            )));
        }
        let end = self.pos + len;
        if outer.is_some_and(|outer| end > outer) {
            return Err(Rejection::malformed(format!(
                "{what} runs past the end of its container"
            )));
        }
        Ok(end)
    }

    /// A data set: the root (`end` = None, depth 0), or an item's content.
    fn dataset(&mut self, end: Option<usize>, depth: usize) -> Result<(), Rejection> {
        loop {
            match end {
                Some(end) if self.pos == end => return Ok(()),
                Some(_) => {}
                None if self.pos == self.bytes.len() => {
                    return if depth == 0 {
                        Ok(())
                    } else {
                        Err(Rejection::truncated("object ends inside a sequence item"))
                    };
                }
                None => {}
            }
            let header = self.header()?;
            let tag = header.tag();
            if depth == 0 && [tags::PIXEL_DATA, tags::FLOAT_PIXEL_DATA, tags::DOUBLE_FLOAT_PIXEL_DATA].contains(&tag) {
                self.has_pixel_data = true;
                self.pixel_data = Some((tag, header.vr()));
            }
            if tag == ITEM_DELIMITATION {
                match (depth, end) {
                    // dicom-parser ignores a stray delimiter at the root; so do we.
                    (0, _) => continue,
                    (_, None) => return Ok(()),
                    (_, Some(_)) => return Err(Rejection::malformed("item delimiter inside a defined-length item")),
                }
            }
            if tag.group() == 0xFFFE {
                return Err(Rejection::malformed(format!(
                    "item tag {tag} where an attribute was expected"
                )));
            }
            if header.vr() == VR::SQ || (header.len.is_undefined() && !header.is_encapsulated_pixeldata()) {
                self.sequence(tag, header.len.get(), end, depth + 1)?;
            } else if header.is_encapsulated_pixeldata() {
                self.fragments()?;
            } else {
                if let Some(size) = binary_value_size(header.vr()) {
                    if header.len.0 % size != 0 {
                        return Err(Rejection::malformed(format!(
                            "element {tag} ({}) is {} bytes long, not a multiple of {size}",
                            header.vr(),
                            header.len.0
                        )));
                    }
                }
                self.take(tag, header.len.0, end)?;
            }
        }
    }

    /// A sequence's items; `len` None means undefined length (ends with a delimiter).
    fn sequence(&mut self, tag: Tag, len: Option<u32>, outer: Option<usize>, depth: usize) -> Result<(), Rejection> {
        if depth > MAX_SEQUENCE_DEPTH {
            return Err(Rejection::malformed(format!(
                "sequences nested deeper than {MAX_SEQUENCE_DEPTH}"
            )));
        }
        let end = match len {
            Some(len) => Some(self.container_end(&format!("sequence {tag}"), len, outer)?),
            None => None,
        };
        loop {
            match end {
                Some(end) if self.pos == end => return Ok(()),
                None if self.pos == self.bytes.len() => {
                    return Err(Rejection::truncated(format!("object ends inside sequence {tag}")));
                }
                _ => {}
            }
            match self.item_header()? {
                SequenceItemHeader::Item { len } => match len.get() {
                    Some(len) => {
                        let item_end = self.container_end(&format!("item of {tag}"), len, end.or(outer))?;
                        self.dataset(Some(item_end), depth)?;
                    }
                    None => self.dataset(None, depth)?,
                },
                SequenceItemHeader::SequenceDelimiter if end.is_none() => return Ok(()),
                other => {
                    return Err(Rejection::malformed(format!("unexpected {other:?} in sequence {tag}")));
                }
            }
        }
    }

    /// Encapsulated pixel data: defined-length fragments up to a sequence delimiter.
    fn fragments(&mut self) -> Result<(), Rejection> {
        loop {
            if self.pos == self.bytes.len() {
                return Err(Rejection::truncated("object ends inside encapsulated Pixel Data"));
            }
            match self.item_header()? {
                SequenceItemHeader::Item { len } => match len.get() {
                    Some(len) => {
                        self.take(tags::PIXEL_DATA, len, None)?;
                    }
                    None => return Err(Rejection::malformed("pixel data fragment of undefined length")),
                },
                SequenceItemHeader::SequenceDelimiter => return Ok(()),
                SequenceItemHeader::ItemDelimiter => {
                    return Err(Rejection::malformed("item delimiter among pixel data fragments"));
                }
            }
        }
    }
}

/// The size of one value of a binary VR (the value length must be a multiple of it).
fn binary_value_size(vr: VR) -> Option<u32> {
    match vr {
        VR::SS | VR::US | VR::OW => Some(2),
        VR::SL | VR::UL | VR::FL | VR::OF | VR::OL | VR::AT => Some(4),
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => Some(8),
        _ => None,
    }
}

/// Pass 2: the indexed attributes, read once from the object up to Pixel Data.
fn extract(object: &DefaultDicomObject) -> Result<InstanceMetadata, Rejection> {
    let text = |tag: Tag| -> Option<String> {
        let value = object.get(tag)?.to_str().ok()?;
        let value = trim(&value);
        (!value.is_empty()).then(|| value.to_owned())
    };
    let int = |tag: Tag| -> Option<i32> { object.get(tag)?.to_int::<i32>().ok() };
    let short = |tag: Tag| -> Option<u16> { object.get(tag)?.to_int::<u16>().ok() };
    let required_uid = |tag: Tag, code: &'static str, name: &str| -> Result<String, Rejection> {
        let uid = text(tag).ok_or_else(|| Rejection::new(code, format!("{name} is missing")))?;
        if !is_valid_uid(&uid) {
            return Err(Rejection::new(code, format!("{name} {uid:?} is not a valid UID")));
        }
        Ok(uid)
    };

    Ok(InstanceMetadata {
        sop_class_uid: required_uid(tags::SOP_CLASS_UID, "missing_sop_class_uid", "SOP Class UID")?,
        sop_instance_uid: required_uid(tags::SOP_INSTANCE_UID, "missing_sop_instance_uid", "SOP Instance UID")?,
        study_instance_uid: required_uid(tags::STUDY_INSTANCE_UID, "missing_study_uid", "Study Instance UID")?,
        series_instance_uid: required_uid(tags::SERIES_INSTANCE_UID, "missing_series_uid", "Series Instance UID")?,
        transfer_syntax_uid: trim(object.meta().transfer_syntax()).to_owned(),
        patient_id: text(tags::PATIENT_ID)
            .ok_or_else(|| Rejection::new("missing_patient_id", "Patient ID is missing"))?,
        patient_name: text(tags::PATIENT_NAME),
        patient_sex: text(tags::PATIENT_SEX),
        patient_birth_date: text(tags::PATIENT_BIRTH_DATE),
        modality: text(tags::MODALITY),
        body_part_examined: text(tags::BODY_PART_EXAMINED),
        study_date: text(tags::STUDY_DATE),
        study_time: text(tags::STUDY_TIME),
        study_description: text(tags::STUDY_DESCRIPTION),
        series_description: text(tags::SERIES_DESCRIPTION),
        series_number: int(tags::SERIES_NUMBER),
        instance_number: int(tags::INSTANCE_NUMBER),
        accession_number: text(tags::ACCESSION_NUMBER),
        referring_physician_name: text(tags::REFERRING_PHYSICIAN_NAME),
        institution_name: text(tags::INSTITUTION_NAME),
        number_of_frames: object
            .get(tags::NUMBER_OF_FRAMES)
            .and_then(|e| e.to_int::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1),
        rows: short(tags::ROWS),
        columns: short(tags::COLUMNS),
        bits_allocated: short(tags::BITS_ALLOCATED),
        photometric_interpretation: text(tags::PHOTOMETRIC_INTERPRETATION),
        dicom_json: String::new(),
    })
}

/// DICOM pads values with spaces (text) or NULs (UIDs); neither is part of the value.
fn trim(value: &str) -> &str {
    value.trim_matches(|c: char| c == ' ' || c == '\0')
}

/// A UID: at most 64 characters, digits and dots, no empty component.
fn is_valid_uid(uid: &str) -> bool {
    uid.len() <= MAX_UID_LEN
        && uid
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{part10_file, synthetic_ct, write_header, CtSpec, DataSet};
    use dicom_dictionary_std::uids;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::time::{Duration, Instant};

    fn ct() -> Vec<u8> {
        synthetic_ct(&CtSpec::default())
    }

    fn code(bytes: &[u8]) -> &'static str {
        inspect(bytes).expect_err("must be rejected").code
    }

    /// A minimal valid data set, to which tests append hostile elements.
    fn minimal_dataset() -> DataSet {
        let spec = CtSpec::default();
        let mut ds = DataSet::default();
        ds.text(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE);
        ds.text(tags::SOP_INSTANCE_UID, VR::UI, &spec.sop_instance_uid());
        ds.text(tags::PATIENT_ID, VR::LO, "P1");
        ds.text(tags::STUDY_INSTANCE_UID, VR::UI, &spec.study_instance_uid());
        ds.text(tags::SERIES_INSTANCE_UID, VR::UI, &spec.series_instance_uid());
        ds
    }

    fn file(dataset: &[u8]) -> Vec<u8> {
        let spec = CtSpec::default();
        part10_file(
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            &spec.sop_instance_uid(),
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            dataset,
        )
    }

    #[test]
    fn generated_ct_inspects_to_its_metadata() {
        let spec = CtSpec {
            patient_index: 3,
            study_index: 2,
            series_index: 1,
            instance_index: 7,
            ..CtSpec::default()
        };
        let metadata = inspect(&synthetic_ct(&spec)).expect("valid instance");
        assert_eq!(
            metadata,
            InstanceMetadata {
                sop_class_uid: uids::CT_IMAGE_STORAGE.to_owned(),
                sop_instance_uid: spec.sop_instance_uid(),
                study_instance_uid: spec.study_instance_uid(),
                series_instance_uid: spec.series_instance_uid(),
                transfer_syntax_uid: uids::EXPLICIT_VR_LITTLE_ENDIAN.to_owned(),
                patient_id: "P00000003".to_owned(),
                patient_name: Some("Synthetic^Patient0003".to_owned()),
                patient_sex: Some("M".to_owned()),
                patient_birth_date: Some("19430615".to_owned()),
                modality: Some("CT".to_owned()),
                body_part_examined: Some("CHEST".to_owned()),
                study_date: Some("20240303".to_owned()),
                study_time: Some("093015".to_owned()),
                study_description: Some("CT CHEST WITH CONTRAST".to_owned()),
                series_description: Some("AXIAL 1.25MM #2".to_owned()),
                series_number: Some(2),
                instance_number: Some(8),
                accession_number: Some("A000003002".to_owned()),
                referring_physician_name: Some("Chen^Wei^^Dr".to_owned()),
                institution_name: Some("Riverside General Hospital".to_owned()),
                number_of_frames: 1,
                rows: Some(512),
                columns: Some(512),
                bits_allocated: Some(16),
                photometric_interpretation: Some("MONOCHROME2".to_owned()),
                dicom_json: metadata.dicom_json.clone(),
            }
        );
        let json: serde_json::Value = serde_json::from_str(&metadata.dicom_json).unwrap();
        assert_eq!(json["00100020"]["Value"][0], "P00000003");
        assert_eq!(json["00200013"]["Value"][0], 8, "IS as a number");
        assert_eq!(json["7FE00010"]["vr"], "OW");
        assert_eq!(
            json["7FE00010"]["BulkDataURI"],
            format!(
                "/dicomweb/studies/{}/series/{}/instances/{}/bulkdata/7FE00010",
                spec.study_instance_uid(),
                spec.series_instance_uid(),
                spec.sop_instance_uid()
            )
        );
    }

    #[test]
    fn private_tags_and_odd_length_values_are_accepted() {
        let metadata = inspect(&synthetic_ct(&CtSpec {
            private_tags: true,
            ..CtSpec::default()
        }))
        .unwrap();
        assert_eq!(metadata.modality.as_deref(), Some("CT"));
    }

    #[test]
    fn anything_without_a_part10_prefix_is_not_dicom() {
        let mut rng = StdRng::seed_from_u64(7);
        let random: Vec<u8> = (0..4096).map(|_| rng.gen()).collect();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";
        assert_eq!(code(&random), "not_dicom");
        assert_eq!(code(&[]), "not_dicom");
        assert_eq!(code(png), "not_dicom");
        assert_eq!(code(&ct()[..131]), "not_dicom");
    }

    #[test]
    fn truncated_files_are_rejected_wherever_they_are_cut() {
        let bytes = ct();
        let pixel_start = bytes.len() - 512 * 512 * 2;
        for cut in [
            132,
            140,
            150,
            200,
            300,
            500,
            700,
            900,
            pixel_start - 3,
            pixel_start + 1,
            bytes.len() - 1,
        ] {
            let rejected = code(&bytes[..cut]);
            assert!(
                ["truncated", "malformed"].contains(&rejected),
                "cut at {cut}: {rejected}"
            );
        }
        assert_eq!(code(&bytes[..pixel_start + 1000]), "truncated");
        assert_eq!(code(&bytes[..bytes.len() - 2]), "truncated");
    }

    #[test]
    fn image_cut_exactly_before_pixel_data_is_truncated() {
        let bytes = ct();
        let pixel_header_start = bytes.len() - 512 * 512 * 2 - 12;
        assert_eq!(code(&bytes[..pixel_header_start]), "truncated");
    }

    #[test]
    fn each_missing_identifier_has_its_own_code() {
        for (tag, expected) in [
            (tags::STUDY_INSTANCE_UID, "missing_study_uid"),
            (tags::SERIES_INSTANCE_UID, "missing_series_uid"),
            (tags::SOP_INSTANCE_UID, "missing_sop_instance_uid"),
            (tags::SOP_CLASS_UID, "missing_sop_class_uid"),
            (tags::PATIENT_ID, "missing_patient_id"),
        ] {
            let bytes = synthetic_ct(&CtSpec {
                omitted: vec![tag],
                ..CtSpec::default()
            });
            assert_eq!(code(&bytes), expected, "omitting {tag}");
        }
    }

    #[test]
    fn invalid_uids_are_refused() {
        for bad in ["1.2..3", "1.2.abc", ".1.2", "1.2.", &format!("1.{}", "2".repeat(64))] {
            let mut ds = minimal_dataset();
            ds.text(tags::STUDY_INSTANCE_UID, VR::UI, bad);
            assert_eq!(code(&file(&ds.encode())), "missing_study_uid", "uid {bad}");
        }
        assert!(is_valid_uid("1.2.840.10008.5.1.4.1.1.2"));
    }

    #[test]
    fn blank_patient_id_counts_as_missing() {
        let mut ds = minimal_dataset();
        ds.text(tags::PATIENT_ID, VR::LO, "   ");
        assert_eq!(code(&file(&ds.encode())), "missing_patient_id");
    }

    #[test]
    fn huge_declared_length_is_refused_without_allocating_it() {
        for tag in [tags::PATIENT_NAME, tags::PIXEL_DATA, tags::IMAGE_COMMENTS] {
            for vr in [VR::PN, VR::OB, VR::UT, VR::UN] {
                let mut dataset = minimal_dataset().encode();
                if vr == VR::PN {
                    // short-form length: the largest it can claim
                    write_header(&mut dataset, tag, vr, 0xFFFE);
                } else {
                    write_header(&mut dataset, tag, vr, 0xFFFF_FFF0);
                }
                dataset.extend_from_slice(b"short");
                let started = Instant::now();
                let rejected = code(&file(&dataset));
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "{tag} {vr:?} took {:?}",
                    started.elapsed()
                );
                assert_eq!(rejected, "truncated", "{tag} {vr:?}");
            }
        }
    }

    #[test]
    fn huge_length_inside_a_sequence_item_is_refused() {
        let mut dataset = minimal_dataset().encode();
        write_header(&mut dataset, tags::REFERENCED_IMAGE_SEQUENCE, VR::SQ, 0xFFFF_FFFF);
        dataset.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]); // item, undefined
        write_header(&mut dataset, tags::REFERENCED_SOP_CLASS_UID, VR::OB, 0xFFFF_FFF0);
        assert_eq!(code(&file(&dataset)), "truncated");
    }

    #[test]
    fn huge_meta_element_is_refused() {
        let mut bytes = ct();
        // Transfer Syntax UID is the 4th meta element; make its (short) length claim 0xFFFF.
        let at = bytes.windows(4).position(|w| w == [0x02, 0x00, 0x10, 0x00]).unwrap();
        bytes[at + 6..at + 8].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert!(["truncated", "malformed"].contains(&code(&bytes)));
    }

    fn nested_sequences(levels: usize) -> Vec<u8> {
        let mut dataset = minimal_dataset().encode();
        for _ in 0..levels {
            write_header(&mut dataset, tags::REFERENCED_IMAGE_SEQUENCE, VR::SQ, 0xFFFF_FFFF);
            dataset.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        for _ in 0..levels {
            dataset.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]); // item delimiter
            dataset.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]); // sequence delimiter
        }
        file(&dataset)
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        assert_eq!(code(&nested_sequences(200)), "malformed");
        assert_eq!(code(&nested_sequences(100_000)), "malformed");
    }

    #[test]
    fn nesting_within_the_cap_is_accepted() {
        let metadata = inspect(&nested_sequences(MAX_SEQUENCE_DEPTH)).expect("within the cap");
        assert_eq!(metadata.patient_id, "P1");
        assert_eq!(code(&nested_sequences(MAX_SEQUENCE_DEPTH + 1)), "malformed");
    }

    #[test]
    fn bogus_vr_does_not_crash() {
        let mut bytes = ct();
        let at = bytes.windows(2).position(|w| w == b"PN").unwrap();
        bytes[at..at + 2].copy_from_slice(b"ZZ");
        let _ = inspect(&bytes);
    }

    /// Found by `cargo fuzz` (target `inspect`): a generated instance whose Study ID VR was
    /// changed from SH to SL. dicom-parser read no value out of the 2-byte SL, took its bytes
    /// for the next header and allocated the 540 MB length it found there.
    #[test]
    fn a_binary_value_that_is_not_whole_values_long_is_refused_before_dicom_rs_misreads_it() {
        let mut bytes = synthetic_ct(&CtSpec {
            rows: 8,
            columns: 8,
            ..CtSpec::default()
        });
        let study_id = [0x20, 0x00, 0x10, 0x00, b'S', b'H'];
        let at = bytes.windows(6).position(|w| w == study_id).unwrap();
        bytes[at + 5] = b'L';
        let rejection = inspect(&bytes).unwrap_err();
        assert_eq!(rejection.code, "malformed");
        assert!(rejection.reason.contains("(0020,0010)"), "{}", rejection.reason);

        let with = |vr: VR, len: usize| {
            let mut ds = minimal_dataset();
            ds.raw(Tag(0x0019, 0x1001), vr, vec![0; len]);
            inspect(&file(&ds.encode()))
        };
        for (vr, size) in [
            (VR::US, 2),
            (VR::SS, 2),
            (VR::OW, 2),
            (VR::UL, 4),
            (VR::SL, 4),
            (VR::FL, 4),
            (VR::OF, 4),
            (VR::OL, 4),
            (VR::AT, 4),
            (VR::FD, 8),
            (VR::OD, 8),
            (VR::SV, 8),
            (VR::UV, 8),
            (VR::OV, 8),
        ] {
            for whole in [0, size, 3 * size] {
                assert!(with(vr, whole).is_ok(), "{vr:?} of {whole} bytes");
            }
            for partial in (1..3 * size).filter(|n| n % size != 0) {
                assert_eq!(with(vr, partial).unwrap_err().code, "malformed", "{vr:?} of {partial}");
            }
        }
    }

    #[test]
    fn too_large_objects_are_refused_before_parsing() {
        let bytes = vec![0u8; MAX_OBJECT_BYTES + 1];
        assert_eq!(code(&bytes), "too_large");
    }

    #[test]
    fn random_corruption_never_panics() {
        let original = synthetic_ct(&CtSpec {
            rows: 64,
            columns: 64,
            private_tags: true,
            ..CtSpec::default()
        });
        let header_end = original.len() - 64 * 64 * 2;
        let mut rng = StdRng::seed_from_u64(0x5EED);
        let started = Instant::now();
        let mut accepted = 0;
        for _ in 0..4000 {
            let mut bytes = original.clone();
            let flips = rng.gen_range(1..=8);
            for _ in 0..flips {
                // mostly hit the header region, where structure lives
                let at = if rng.gen_bool(0.9) {
                    rng.gen_range(0..header_end)
                } else {
                    rng.gen_range(0..bytes.len())
                };
                bytes[at] = rng.gen();
            }
            if rng.gen_bool(0.3) {
                bytes.truncate(rng.gen_range(0..bytes.len()));
            }
            if inspect(&bytes).is_ok() {
                accepted += 1;
            }
        }
        // Some corrupted files still parse, so the loop reaches dicom-rs, not only our walk.
        assert!(accepted > 100, "only {accepted} accepted");
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
