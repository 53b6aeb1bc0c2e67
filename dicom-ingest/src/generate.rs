//! Synthetic CT instances: our own generator of valid Part-10 files, for tests and load runs.
//!
//! Every instance is explicit VR little endian, CT Image Storage, 16-bit MONOCHROME2 with a
//! deterministic pixel pattern and the tags a modality really sends. UIDs are derived from the
//! spec's seed and indices under the `2.25` (UUID-derived) root, so the same spec always gives
//! the same bytes. It never reads a clock or a random source.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};

/// Private creator block used by [`CtSpec::private_tags`] (no dictionary constant exists for
/// private tags: the block number is ours to choose).
const PRIVATE_CREATOR: Tag = Tag(0x0009, 0x0010);
const PRIVATE_NOTE: Tag = Tag(0x0009, 0x1001);
const PRIVATE_BLOB: Tag = Tag(0x0009, 0x1002);

/// Implementation Class UID written into the file meta group of generated files.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.137038125896208395846217405524553541721";

/// What [`synthetic_ct`] builds: who, which study/series/instance, and the image size.
#[derive(Debug, Clone, PartialEq)]
pub struct CtSpec {
    /// Makes UIDs and pixels of one run distinct from another's.
    pub seed: u64,
    pub patient_index: u32,
    pub study_index: u32,
    pub series_index: u32,
    pub instance_index: u32,
    pub rows: u16,
    pub columns: u16,
    /// Adds a private block (creator, an odd-length LO padded with a space and an odd-length
    /// OB padded with a zero) so byte-for-byte preservation can be checked.
    pub private_tags: bool,
    /// Attributes left out of the data set, to build instances that must be rejected.
    pub omitted: Vec<Tag>,
}

impl Default for CtSpec {
    fn default() -> Self {
        CtSpec {
            seed: 1,
            patient_index: 0,
            study_index: 0,
            series_index: 0,
            instance_index: 0,
            rows: 512,
            columns: 512,
            private_tags: false,
            omitted: Vec::new(),
        }
    }
}

impl CtSpec {
    /// The Study Instance UID this spec's instances carry.
    pub fn study_instance_uid(&self) -> String {
        derived_uid(self.seed, 1, &[self.patient_index, self.study_index])
    }

    /// The Series Instance UID this spec's instances carry.
    pub fn series_instance_uid(&self) -> String {
        derived_uid(self.seed, 2, &[self.patient_index, self.study_index, self.series_index])
    }

    /// The SOP Instance UID of this spec's instance.
    pub fn sop_instance_uid(&self) -> String {
        derived_uid(
            self.seed,
            3,
            &[
                self.patient_index,
                self.study_index,
                self.series_index,
                self.instance_index,
            ],
        )
    }

    /// The Patient ID of this spec's patient.
    pub fn patient_id(&self) -> String {
        format!("P{:08}", self.patient_index)
    }
}

/// Builds the Part-10 file (preamble, `DICM`, file meta group, data set) for `spec`.
pub fn synthetic_ct(spec: &CtSpec) -> Vec<u8> {
    let sop_instance_uid = spec.sop_instance_uid();
    let study_day = 1 + (spec.study_index % 28);
    let slice_thickness = 1.25_f64;
    let z = -(f64::from(spec.instance_index) * slice_thickness);
    let sex = if spec.patient_index & 1 == 0 { "F" } else { "M" };

    let mut ds = DataSet::default();
    ds.text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    ds.text(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL");
    ds.text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
    ds.text(tags::SOP_INSTANCE_UID, VR::UI, &sop_instance_uid);
    ds.text(tags::STUDY_DATE, VR::DA, &format!("202403{study_day:02}"));
    ds.text(tags::SERIES_DATE, VR::DA, &format!("202403{study_day:02}"));
    ds.text(tags::STUDY_TIME, VR::TM, "093015");
    ds.text(tags::SERIES_TIME, VR::TM, "093342");
    ds.text(
        tags::ACCESSION_NUMBER,
        VR::SH,
        &format!("A{:06}{:03}", spec.patient_index, spec.study_index),
    );
    ds.text(tags::MODALITY, VR::CS, "CT");
    ds.text(tags::MANUFACTURER, VR::LO, "MedLedger Synthetic");
    ds.text(tags::INSTITUTION_NAME, VR::LO, "Riverside General Hospital");
    ds.text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "Chen^Wei^^Dr");
    ds.text(tags::STUDY_DESCRIPTION, VR::LO, "CT CHEST WITH CONTRAST");
    ds.text(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &format!("AXIAL 1.25MM #{}", spec.series_index + 1),
    );
    ds.text(
        tags::PATIENT_NAME,
        VR::PN,
        &format!("Synthetic^Patient{:04}", spec.patient_index),
    );
    ds.text(tags::PATIENT_ID, VR::LO, &spec.patient_id());
    ds.text(
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &format!("19{:02}0615", 40 + spec.patient_index % 50),
    );
    ds.text(tags::PATIENT_SEX, VR::CS, sex);
    ds.text(tags::BODY_PART_EXAMINED, VR::CS, "CHEST");
    ds.text(tags::SLICE_THICKNESS, VR::DS, "1.25");
    ds.text(tags::KVP, VR::DS, "120");
    ds.text(tags::STUDY_INSTANCE_UID, VR::UI, &spec.study_instance_uid());
    ds.text(tags::SERIES_INSTANCE_UID, VR::UI, &spec.series_instance_uid());
    ds.text(tags::STUDY_ID, VR::SH, &format!("{}", spec.study_index + 1));
    ds.text(tags::SERIES_NUMBER, VR::IS, &format!("{}", spec.series_index + 1));
    ds.text(tags::INSTANCE_NUMBER, VR::IS, &format!("{}", spec.instance_index + 1));
    ds.text(tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("-250\\-250\\{z}"));
    ds.text(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0");
    ds.text(tags::FRAME_OF_REFERENCE_UID, VR::UI, &spec.study_instance_uid());
    ds.text(tags::SLICE_LOCATION, VR::DS, &format!("{z}"));
    ds.u16(tags::SAMPLES_PER_PIXEL, 1);
    ds.text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    ds.u16(tags::ROWS, spec.rows);
    ds.u16(tags::COLUMNS, spec.columns);
    ds.text(tags::PIXEL_SPACING, VR::DS, "0.976562\\0.976562");
    ds.u16(tags::BITS_ALLOCATED, 16);
    ds.u16(tags::BITS_STORED, 12);
    ds.u16(tags::HIGH_BIT, 11);
    ds.u16(tags::PIXEL_REPRESENTATION, 0);
    ds.text(tags::WINDOW_CENTER, VR::DS, "40");
    ds.text(tags::WINDOW_WIDTH, VR::DS, "400");
    ds.text(tags::RESCALE_INTERCEPT, VR::DS, "-1024");
    ds.text(tags::RESCALE_SLOPE, VR::DS, "1");
    ds.text(tags::RESCALE_TYPE, VR::LO, "HU");
    if spec.private_tags {
        ds.text(PRIVATE_CREATOR, VR::LO, "MEDLEDGER SYNTHETIC");
        // 13 characters: stored as 14 with the trailing space pad.
        ds.text(PRIVATE_NOTE, VR::LO, "odd length 13");
        // 3 bytes: stored as 4 with a trailing zero pad.
        ds.raw(PRIVATE_BLOB, VR::OB, vec![0xCA, 0xFE, 0x01, 0x00]);
    }
    ds.raw(tags::PIXEL_DATA, VR::OW, pixel_pattern(spec));
    ds.omit(&spec.omitted);

    part10_file(
        uids::CT_IMAGE_STORAGE,
        &sop_instance_uid,
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
        &ds.encode(),
    )
}

/// Wraps an encoded data set in a Part-10 envelope: 128-byte zero preamble, `DICM`, and a
/// file meta group (explicit VR little endian, with its group length).
pub(crate) fn part10_file(
    sop_class_uid: &str,
    sop_instance_uid: &str,
    transfer_syntax: &str,
    dataset: &[u8],
) -> Vec<u8> {
    let mut meta = DataSet::default();
    meta.raw(tags::FILE_META_INFORMATION_VERSION, VR::OB, vec![0x00, 0x01]);
    meta.text(tags::MEDIA_STORAGE_SOP_CLASS_UID, VR::UI, sop_class_uid);
    meta.text(tags::MEDIA_STORAGE_SOP_INSTANCE_UID, VR::UI, sop_instance_uid);
    meta.text(tags::TRANSFER_SYNTAX_UID, VR::UI, transfer_syntax);
    meta.text(tags::IMPLEMENTATION_CLASS_UID, VR::UI, IMPLEMENTATION_CLASS_UID);
    meta.text(tags::IMPLEMENTATION_VERSION_NAME, VR::SH, "MEDLEDGER_01");
    let meta = meta.encode();

    let mut out = Vec::with_capacity(132 + 12 + meta.len() + dataset.len());
    out.extend_from_slice(&[0u8; 128]);
    out.extend_from_slice(b"DICM");
    let group_length = u32::try_from(meta.len()).expect("file meta group is a few hundred bytes");
    write_header(&mut out, tags::FILE_META_INFORMATION_GROUP_LENGTH, VR::UL, 4);
    out.extend_from_slice(&group_length.to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(dataset);
    out
}

/// A flat data set being assembled; encoded in ascending tag order as explicit VR little endian.
#[derive(Default)]
pub(crate) struct DataSet {
    elements: Vec<(Tag, VR, Vec<u8>)>,
}

impl DataSet {
    /// A text or UID value, padded to even length the way DICOM pads it (NUL for UI, space
    /// otherwise).
    pub(crate) fn text(&mut self, tag: Tag, vr: VR, value: &str) {
        let mut bytes = value.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(if vr == VR::UI { 0 } else { b' ' });
        }
        self.raw(tag, vr, bytes);
    }

    pub(crate) fn u16(&mut self, tag: Tag, value: u16) {
        self.raw(tag, VR::US, value.to_le_bytes().to_vec());
    }

    /// A value written exactly as given (no padding).
    pub(crate) fn raw(&mut self, tag: Tag, vr: VR, bytes: Vec<u8>) {
        self.elements.retain(|(t, _, _)| *t != tag);
        self.elements.push((tag, vr, bytes));
    }

    pub(crate) fn omit(&mut self, tags: &[Tag]) {
        self.elements.retain(|(t, _, _)| !tags.contains(t));
    }

    pub(crate) fn encode(mut self) -> Vec<u8> {
        self.elements.sort_by_key(|(tag, _, _)| *tag);
        let mut out = Vec::with_capacity(self.elements.iter().map(|(_, _, v)| v.len() + 12).sum());
        for (tag, vr, value) in &self.elements {
            let len = u32::try_from(value.len()).expect("generated values are far below 4 GiB");
            write_header(&mut out, *tag, *vr, len);
            out.extend_from_slice(value);
        }
        out
    }
}

/// Writes an explicit VR little endian element header (short or long length form by VR).
pub(crate) fn write_header(out: &mut Vec<u8>, tag: Tag, vr: VR, len: u32) {
    out.extend_from_slice(&tag.group().to_le_bytes());
    out.extend_from_slice(&tag.element().to_le_bytes());
    out.extend_from_slice(vr.to_string().as_bytes());
    if has_short_length(vr) {
        let short = u16::try_from(len).expect("short-form VRs carry at most 64 KiB");
        out.extend_from_slice(&short.to_le_bytes());
    } else {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
    }
}

fn has_short_length(vr: VR) -> bool {
    use VR::*;
    matches!(
        vr,
        AE | AS | AT | CS | DA | DS | DT | FL | FD | IS | LO | LT | PN | SH | SL | SS | ST | TM | UI | UL | US
    )
}

/// 16-bit little-endian pixels: a body-like disc of soft tissue (~40 HU once rescaled) with a
/// gentle ripple that moves with the slice, on air (0 → -1024 HU). 12 bits stored.
fn pixel_pattern(spec: &CtSpec) -> Vec<u8> {
    let (rows, columns) = (u32::from(spec.rows), u32::from(spec.columns));
    let (cy, cx) = (rows / 2, columns / 2);
    let radius_sq = u64::from(rows.min(columns) / 2 - rows.min(columns) / 16).pow(2);
    let phase = spec.instance_index.wrapping_add(spec.seed as u32);
    let mut out = Vec::with_capacity(rows as usize * columns as usize * 2);
    for y in 0..rows {
        for x in 0..columns {
            let dy = u64::from(y.abs_diff(cy));
            let dx = u64::from(x.abs_diff(cx));
            let value: u16 = if dy * dy + dx * dx <= radius_sq {
                let ripple = (x.wrapping_add(y).wrapping_add(phase) % 64) as u16;
                1064 + ripple
            } else {
                0
            };
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out
}

/// `2.25.<128-bit number>` derived from the seed, the kind of UID and the indices
/// (splitmix64 mixing; never zero, so never a leading-zero component). At most 44 characters.
fn derived_uid(seed: u64, kind: u64, indices: &[u32]) -> String {
    let mut state = splitmix(seed ^ kind.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for index in indices {
        state = splitmix(state ^ u64::from(*index));
    }
    let high = splitmix(state ^ 0xA5A5);
    let low = splitmix(high ^ 0x5A5A);
    let value = (u128::from(high) << 64 | u128::from(low)).max(1);
    format!("2.25.{value}")
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ct_is_about_525_kb() {
        let bytes = synthetic_ct(&CtSpec::default());
        let pixels = 512 * 512 * 2;
        assert!(bytes.len() > pixels, "len {}", bytes.len());
        assert!(bytes.len() < pixels + 4096, "len {}", bytes.len());
        assert!((520_000..530_000).contains(&bytes.len()), "len {}", bytes.len());
        assert_eq!(&bytes[128..132], b"DICM");
    }

    #[test]
    fn same_spec_gives_same_bytes_and_indices_give_distinct_uids() {
        let spec = CtSpec::default();
        assert_eq!(synthetic_ct(&spec), synthetic_ct(&spec));
        let next = CtSpec {
            instance_index: 1,
            ..CtSpec::default()
        };
        assert_ne!(spec.sop_instance_uid(), next.sop_instance_uid());
        assert_eq!(spec.series_instance_uid(), next.series_instance_uid());
        let other_seed = CtSpec {
            seed: 2,
            ..CtSpec::default()
        };
        assert_ne!(spec.study_instance_uid(), other_seed.study_instance_uid());
        assert!(spec.sop_instance_uid().len() <= 64);
    }

    #[test]
    fn private_block_adds_padded_odd_length_values() {
        let plain = synthetic_ct(&CtSpec::default());
        let private = synthetic_ct(&CtSpec {
            private_tags: true,
            ..CtSpec::default()
        });
        assert!(private.len() > plain.len());
        let needle = b"odd length 13 ";
        assert!(private.windows(needle.len()).any(|w| w == needle));
    }
}
