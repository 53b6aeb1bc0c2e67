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
    /// What the pixels are: photometric interpretation, bits, sign, frames, pattern. The
    /// default is the CT above (MONOCHROME2, 16 bits allocated, 12 stored, one frame, disc).
    pub image: ImageSpec,
}

/// Photometric interpretations [`synthetic_ct`] can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Photometric {
    #[default]
    Monochrome2,
    Monochrome1,
    /// 8-bit RGB, interleaved (planar configuration 0).
    Rgb,
    /// 8-bit YCbCr full range, interleaved: the RGB gradient converted per PS3.3 C.7.6.3.1.2.
    YbrFull,
    /// 8-bit indices into 256-entry 16-bit red/green/blue palettes (red rises with the index,
    /// green falls, blue is 0).
    PaletteColor,
}

/// The pixel pattern of a generated instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    /// A body-like disc with a ripple (the CT look; monochrome only).
    #[default]
    Disc,
    /// A horizontal ramp from the lowest to the highest stored value
    /// ([`ImageSpec::gradient_value`]); odd frames (0-based) run right to left. Colour images
    /// carry the ramp in red, a vertical ramp in green and 128 in blue.
    Gradient,
}

/// The pixel side of a [`CtSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    pub photometric: Photometric,
    /// 8 or 16 for monochrome (16 bits allocated store 12 bits unsigned, 16 signed); colour
    /// and palette images are always 8.
    pub bits_allocated: u16,
    /// Pixel Representation 1 (two's complement samples); monochrome only.
    pub signed: bool,
    /// Number of Frames; written only when more than 1.
    pub frames: u32,
    pub pattern: Pattern,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            photometric: Photometric::Monochrome2,
            bits_allocated: 16,
            signed: false,
            frames: 1,
            pattern: Pattern::Disc,
        }
    }
}

impl ImageSpec {
    fn is_colour(&self) -> bool {
        matches!(self.photometric, Photometric::Rgb | Photometric::YbrFull)
    }

    fn bits_allocated(&self) -> u16 {
        if self.is_colour() || self.photometric == Photometric::PaletteColor || self.bits_allocated == 8 {
            8
        } else {
            16
        }
    }

    /// (bits stored, lowest stored value, highest stored value) of the monochrome samples.
    pub fn stored_range(&self) -> (u16, i32, i32) {
        match (self.bits_allocated(), self.signed) {
            (8, false) => (8, 0, 255),
            (8, true) => (8, -128, 127),
            (_, false) => (12, 0, 4095),
            (_, true) => (16, -2048, 2047),
        }
    }

    /// The stored value of column `x` (of `columns`) in `frame` (0-based) of a
    /// [`Pattern::Gradient`] monochrome or palette image.
    pub fn gradient_value(&self, x: u32, columns: u32, frame: u32) -> i32 {
        let (_, low, high) = if self.photometric == Photometric::PaletteColor {
            (8, 0, 255)
        } else {
            self.stored_range()
        };
        let x = if frame % 2 == 1 { columns - 1 - x } else { x };
        let span = i64::from(high - low);
        low + (i64::from(x) * span / i64::from(columns.max(2) - 1)) as i32
    }

    /// The (R, G, B) a [`Pattern::Gradient`] colour image shows at (`x`, `y`) of `frame`.
    pub fn gradient_rgb(&self, x: u32, y: u32, columns: u32, rows: u32, frame: u32) -> [u8; 3] {
        let x = if frame % 2 == 1 { columns - 1 - x } else { x };
        let r = (x * 255 / (columns.max(2) - 1)) as u8;
        let g = (y * 255 / (rows.max(2) - 1)) as u8;
        [r, g, 128]
    }
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
            image: ImageSpec::default(),
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
    let mut ds = dataset(spec);
    let vr = if spec.image.bits_allocated() == 8 {
        VR::OB
    } else {
        VR::OW
    };
    ds.raw(tags::PIXEL_DATA, vr, pixel_data(spec));
    ds.omit(&spec.omitted);
    part10_file(
        uids::CT_IMAGE_STORAGE,
        &spec.sop_instance_uid(),
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
        &ds.encode(),
    )
}

/// The native pixel data [`synthetic_ct`] writes for `spec` (all frames, little endian).
pub fn pixel_data(spec: &CtSpec) -> Vec<u8> {
    let frames = spec.image.frames.max(1);
    let mut out = Vec::new();
    for frame in 0..frames {
        out.extend_from_slice(&frame_pixels(spec, frame));
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// The same instance as [`synthetic_ct`] but with encapsulated Pixel Data under
/// `transfer_syntax`: an empty basic offset table and, per frame, the given fragments (each
/// padded to even length). For building compressed test inputs from our own encoders.
pub fn synthetic_encapsulated(spec: &CtSpec, transfer_syntax: &str, frames: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut ds = dataset(spec);
    if frames.len() > 1 {
        ds.text(tags::NUMBER_OF_FRAMES, VR::IS, &frames.len().to_string());
    }
    ds.omit(&spec.omitted);
    let mut out = ds.encode();
    // Pixel Data, undefined length, OB.
    out.extend_from_slice(&tags::PIXEL_DATA.group().to_le_bytes());
    out.extend_from_slice(&tags::PIXEL_DATA.element().to_le_bytes());
    out.extend_from_slice(b"OB\0\0");
    out.extend_from_slice(&u32::MAX.to_le_bytes());
    let item = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&0xFFFEu16.to_le_bytes());
        out.extend_from_slice(&0xE000u16.to_le_bytes());
        let padded = bytes.len() + bytes.len() % 2;
        out.extend_from_slice(&(padded as u32).to_le_bytes());
        out.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            out.push(0);
        }
    };
    item(&mut out, &[]);
    for fragment in frames.iter().flatten() {
        item(&mut out, fragment);
    }
    out.extend_from_slice(&0xFFFEu16.to_le_bytes());
    out.extend_from_slice(&0xE0DDu16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    part10_file(uids::CT_IMAGE_STORAGE, &spec.sop_instance_uid(), transfer_syntax, &out)
}

/// One frame of native samples (8- or 16-bit little endian, one sample per pixel) as an RLE
/// Lossless fragment (PS3.5 Annex G): the 64-byte header, then one PackBits segment per byte
/// of a sample, most significant first, written as literal runs. For building RLE test inputs
/// with [`synthetic_encapsulated`].
pub fn rle_lossless_frame(samples: &[u8], bits_allocated: u16) -> Vec<u8> {
    let bytes_per_sample = usize::from(bits_allocated.div_ceil(8)).max(1);
    let segments: Vec<Vec<u8>> = (0..bytes_per_sample)
        .rev()
        .map(|byte| {
            let plane: Vec<u8> = samples.chunks(bytes_per_sample).map(|s| s[byte]).collect();
            let mut segment = Vec::with_capacity(plane.len() + plane.len() / 128 + 2);
            for run in plane.chunks(128) {
                segment.push((run.len() - 1) as u8);
                segment.extend_from_slice(run);
            }
            if segment.len() % 2 == 1 {
                segment.push(0x80); // a no-op run pads the segment to even length
            }
            segment
        })
        .collect();
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut offset = 64u32;
    for (i, segment) in segments.iter().enumerate() {
        out[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
        offset += segment.len() as u32;
    }
    out.extend(segments.concat());
    out
}

/// The data set of `spec` without Pixel Data and before omissions.
fn dataset(spec: &CtSpec) -> DataSet {
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
    let image = &spec.image;
    let colour = image.is_colour();
    ds.u16(tags::SAMPLES_PER_PIXEL, if colour { 3 } else { 1 });
    let photometric = match image.photometric {
        Photometric::Monochrome2 => "MONOCHROME2",
        Photometric::Monochrome1 => "MONOCHROME1",
        Photometric::Rgb => "RGB",
        Photometric::YbrFull => "YBR_FULL",
        Photometric::PaletteColor => "PALETTE COLOR",
    };
    ds.text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric);
    if colour {
        ds.u16(tags::PLANAR_CONFIGURATION, 0);
    }
    if image.frames > 1 {
        ds.text(tags::NUMBER_OF_FRAMES, VR::IS, &image.frames.to_string());
    }
    ds.u16(tags::ROWS, spec.rows);
    ds.u16(tags::COLUMNS, spec.columns);
    ds.text(tags::PIXEL_SPACING, VR::DS, "0.976562\\0.976562");
    let bits = image.bits_allocated();
    let stored = if colour || image.photometric == Photometric::PaletteColor {
        8
    } else {
        image.stored_range().0
    };
    ds.u16(tags::BITS_ALLOCATED, bits);
    ds.u16(tags::BITS_STORED, stored);
    ds.u16(tags::HIGH_BIT, stored - 1);
    ds.u16(tags::PIXEL_REPRESENTATION, u16::from(image.signed && !colour));
    match image.photometric {
        Photometric::Monochrome1 | Photometric::Monochrome2 => {
            ds.text(tags::WINDOW_CENTER, VR::DS, "40");
            ds.text(tags::WINDOW_WIDTH, VR::DS, "400");
            ds.text(tags::RESCALE_INTERCEPT, VR::DS, "-1024");
            ds.text(tags::RESCALE_SLOPE, VR::DS, "1");
            ds.text(tags::RESCALE_TYPE, VR::LO, "HU");
        }
        Photometric::PaletteColor => {
            let descriptor: Vec<u8> = [256u16, 0, 16].iter().flat_map(|v| v.to_le_bytes()).collect();
            ds.raw(
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                VR::US,
                descriptor.clone(),
            );
            ds.raw(
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                VR::US,
                descriptor.clone(),
            );
            ds.raw(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, VR::US, descriptor);
            let lut = |f: fn(u16) -> u16| -> Vec<u8> { (0..256u16).flat_map(|i| f(i).to_le_bytes()).collect() };
            ds.raw(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, VR::OW, lut(|i| i * 257));
            ds.raw(
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                VR::OW,
                lut(|i| (255 - i) * 257),
            );
            ds.raw(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, VR::OW, lut(|_| 0));
        }
        Photometric::Rgb | Photometric::YbrFull => {}
    }
    if spec.private_tags {
        ds.text(PRIVATE_CREATOR, VR::LO, "MEDLEDGER SYNTHETIC");
        // 13 characters: stored as 14 with the trailing space pad.
        ds.text(PRIVATE_NOTE, VR::LO, "odd length 13");
        // 3 bytes: stored as 4 with a trailing zero pad.
        ds.raw(PRIVATE_BLOB, VR::OB, vec![0xCA, 0xFE, 0x01, 0x00]);
    }
    ds
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

/// One frame's native pixels (little endian).
fn frame_pixels(spec: &CtSpec, frame: u32) -> Vec<u8> {
    let image = &spec.image;
    let (rows, columns) = (u32::from(spec.rows), u32::from(spec.columns));
    if image.pattern == Pattern::Disc && !image.is_colour() && image.photometric != Photometric::PaletteColor {
        let disc = pixel_pattern(&CtSpec {
            instance_index: spec.instance_index.wrapping_add(frame),
            ..spec.clone()
        });
        if image.bits_allocated() == 16 && !image.signed {
            return disc;
        }
        // Same picture in the other sample formats: disc values are 0..=1127.
        let (_, low, high) = image.stored_range();
        return disc
            .chunks_exact(2)
            .flat_map(|c| {
                let v = i32::from(u16::from_le_bytes([c[0], c[1]]));
                let v = (low + v * (high - low) / 1127).clamp(low, high);
                sample_bytes(v, image.bits_allocated())
            })
            .collect();
    }
    let mut out = Vec::with_capacity((rows * columns * 3) as usize);
    for y in 0..rows {
        for x in 0..columns {
            match image.photometric {
                Photometric::Rgb => out.extend_from_slice(&image.gradient_rgb(x, y, columns, rows, frame)),
                Photometric::YbrFull => {
                    let [r, g, b] = image.gradient_rgb(x, y, columns, rows, frame).map(f64::from);
                    let yy = 0.299 * r + 0.587 * g + 0.114 * b;
                    let cb = -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0;
                    let cr = 0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0;
                    out.extend([yy, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8));
                }
                _ => out.extend(sample_bytes(
                    image.gradient_value(x, columns, frame),
                    image.bits_allocated(),
                )),
            }
        }
    }
    out
}

fn sample_bytes(v: i32, bits_allocated: u16) -> Vec<u8> {
    if bits_allocated == 8 {
        vec![v as u8]
    } else {
        (v as u16).to_le_bytes().to_vec()
    }
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
