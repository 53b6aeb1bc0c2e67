//! Frames and rendered images of a stored instance (WADO-RS `/frames`, `/rendered`,
//! `/thumbnail`).
//!
//! [`Instance::open`] parses the stored Part-10 bytes once; then
//! - [`Instance::frame`] gives frame N as stored: native pixel data as raw little-endian frame
//!   bytes (`application/octet-stream`), encapsulated pixel data as the frame's compressed
//!   fragment(s) with the media type PS3.18 names for its transfer syntax (`image/jpeg`,
//!   `image/jls`, `image/jp2`, `image/jpx`, …);
//! - [`Instance::render`] decodes frame N (dicom-pixeldata: native, deflate, RLE, JPEG
//!   baseline / extended 8-bit / lossless, JPEG-LS via CharLS, JPEG 2000 via OpenJPEG; 12-bit
//!   JPEG extended via libjpeg-turbo, see [`jpeg12`]) and
//!   turns it into an 8-bit JPEG or PNG: modality rescale, VOI window (from the data set or
//!   the request; LINEAR, LINEAR_EXACT and SIGMOID), MONOCHROME1 inverted, RGB, YBR_FULL,
//!   YBR_FULL_422 and PALETTE COLOR turned into RGB, 8/16-bit signed or unsigned samples,
//!   fitted into a viewport keeping the aspect ratio.
//!
//! Frame numbers are 1-based, as in DICOMweb. Every failure is a [`RenderError`] with a
//! stable [`code`](RenderError::code); nothing here panics on hostile input (sizes are
//! checked before any allocation they imply, outputs are capped at [`MAX_DIMENSION`]).
//!
//! Known gaps: modality LUT and VOI LUT *sequences* are not applied (rescale and window are);
//! segmented palettes are refused; video transfer syntaxes are `unsupported_transfer_syntax`.

use std::borrow::Cow;
use std::io::Cursor;

use dicom_core::value::Value as DicomValue;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use image::{DynamicImage, GrayImage, ImageEncoder, RgbImage};

mod jpeg12;

/// Largest width or height of a rendered image (and of a requested viewport).
pub const MAX_DIMENSION: u32 = 4096;
/// Largest number of pixels of a decoded frame (64 Mpx: a 8192×8192 slide tile).
const MAX_FRAME_PIXELS: u64 = 64 * 1024 * 1024;

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";
const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Why a frame could not be served or rendered. Codes are stable API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("frame {frame} does not exist (the instance has {frames})")]
    FrameOutOfRange { frame: u32, frames: u32 },
    #[error("transfer syntax {0} cannot be decoded here")]
    UnsupportedTransferSyntax(String),
    #[error("not an image: {0}")]
    NotAnImage(String),
    #[error("pixel data could not be decoded: {0}")]
    DecodeFailed(String),
    #[error("invalid rendering parameter: {0}")]
    InvalidParameter(String),
}

impl RenderError {
    pub fn code(&self) -> &'static str {
        match self {
            RenderError::FrameOutOfRange { .. } => "frame_out_of_range",
            RenderError::UnsupportedTransferSyntax(_) => "unsupported_transfer_syntax",
            RenderError::NotAnImage(_) => "not_an_image",
            RenderError::DecodeFailed(_) => "decode_failed",
            RenderError::InvalidParameter(_) => "invalid_parameter",
        }
    }
}

/// A VOI window (PS3.3 C.11.2.1.2), in modality units (after rescale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VoiFunction {
    #[default]
    Linear,
    LinearExact,
    Sigmoid,
}

impl Window {
    /// Parses PS3.18 `window=center,width,function` (function `linear`, `linear-exact` or
    /// `sigmoid`, case-insensitive). Width must be at least 1 (linear) or above 0.
    pub fn parse(value: &str) -> Result<Window, RenderError> {
        let bad = || {
            RenderError::InvalidParameter(format!(
                "window is center,width,function (e.g. 40,400,linear); got {value:?}"
            ))
        };
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(bad());
        }
        let center: f64 = parts[0].parse().map_err(|_| bad())?;
        let width: f64 = parts[1].parse().map_err(|_| bad())?;
        let function = match parts[2].to_ascii_lowercase().as_str() {
            "linear" => VoiFunction::Linear,
            "linear-exact" | "linear_exact" => VoiFunction::LinearExact,
            "sigmoid" => VoiFunction::Sigmoid,
            _ => return Err(bad()),
        };
        let window = Window {
            center,
            width,
            function,
        };
        window.check().map_err(|_| bad())?;
        Ok(window)
    }

    fn check(&self) -> Result<(), RenderError> {
        let ok = self.center.is_finite()
            && self.width.is_finite()
            && match self.function {
                VoiFunction::Linear => self.width >= 1.0,
                _ => self.width > 0.0,
            };
        if ok {
            Ok(())
        } else {
            Err(RenderError::InvalidParameter(format!(
                "window width {} is not valid",
                self.width
            )))
        }
    }

    /// Maps a modality value to 0..=255.
    fn apply(&self, x: f64) -> u8 {
        let (c, w) = (self.center, self.width);
        let y = match self.function {
            VoiFunction::Linear => {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    255.0
                } else {
                    ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
                }
            }
            VoiFunction::LinearExact => {
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    255.0
                } else {
                    (x - c) / w * 255.0 + 127.5
                }
            }
            VoiFunction::Sigmoid => 255.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        };
        y.round().clamp(0.0, 255.0) as u8
    }
}

/// Output encoding of a rendered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Format {
    #[default]
    Jpeg,
    Png,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
        }
    }
}

/// How to render a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Overrides the data set's window (grayscale only).
    pub window: Option<Window>,
    /// Fit into this box keeping the aspect ratio (each side 1..=[`MAX_DIMENSION`]).
    pub viewport: Option<(u32, u32)>,
    pub format: Format,
    /// JPEG quality 1..=100.
    pub quality: u8,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            window: None,
            viewport: None,
            format: Format::Jpeg,
            quality: 90,
        }
    }
}

impl RenderOptions {
    /// A stable text of these options, for cache keys.
    pub fn cache_key(&self) -> String {
        let window = match self.window {
            Some(w) => format!("{},{},{:?}", w.center, w.width, w.function),
            None => "default".into(),
        };
        let viewport = match self.viewport {
            Some((w, h)) => format!("{w}x{h}"),
            None => "full".into(),
        };
        format!("w={window};v={viewport};f={:?};q={}", self.format, self.quality)
    }
}

/// A frame as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    /// e.g. `application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1` or
    /// `image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50`.
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A rendered frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// Image attributes read from the data set.
#[derive(Debug, Clone)]
struct Attributes {
    rows: u32,
    columns: u32,
    samples: u16,
    bits_allocated: u16,
    bits_stored: u16,
    high_bit: u16,
    signed: bool,
    planar: bool,
    photometric: String,
    frames: u32,
    slope: f64,
    intercept: f64,
    window: Option<Window>,
}

/// A parsed stored instance.
pub struct Instance {
    object: DefaultDicomObject,
    transfer_syntax: String,
    attrs: Attributes,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("transfer_syntax", &self.transfer_syntax)
            .field("attrs", &self.attrs)
            .finish()
    }
}

impl Instance {
    /// Parses stored Part-10 bytes (128-byte preamble, `DICM`, meta group, data set).
    pub fn open(bytes: &[u8]) -> Result<Instance, RenderError> {
        let object = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Always)
            .from_reader(bytes)
            .map_err(|e| RenderError::DecodeFailed(format!("unreadable data set: {e}")))?;
        let transfer_syntax = object
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_string();
        let attrs = attributes(&object)?;
        Ok(Instance {
            object,
            transfer_syntax,
            attrs,
        })
    }

    pub fn transfer_syntax(&self) -> &str {
        &self.transfer_syntax
    }

    pub fn number_of_frames(&self) -> u32 {
        self.attrs.frames
    }

    pub fn rows(&self) -> u32 {
        self.attrs.rows
    }

    pub fn columns(&self) -> u32 {
        self.attrs.columns
    }

    fn check_frame(&self, frame: u32) -> Result<(), RenderError> {
        if frame == 0 || frame > self.attrs.frames {
            return Err(RenderError::FrameOutOfRange {
                frame,
                frames: self.attrs.frames,
            });
        }
        Ok(())
    }

    fn pixel_value(&self) -> Result<&DicomValue<dicom_object::InMemDicomObject, Vec<u8>>, RenderError> {
        self.object
            .get(tags::PIXEL_DATA)
            .map(|e| e.value())
            .ok_or_else(|| RenderError::NotAnImage("no Pixel Data".into()))
    }

    /// Bytes of one native frame (bits allocated ≥ 8), samples as stored.
    fn native_frame_len(&self) -> Result<usize, RenderError> {
        let a = &self.attrs;
        let bytes_per_sample = u64::from(a.bits_allocated.div_ceil(8));
        let samples_per_pixel = if a.photometric.starts_with("YBR_FULL_422") || a.photometric == "YBR_PARTIAL_422" {
            2 // two luma and one Cb, one Cr per pair of pixels
        } else {
            u64::from(a.samples)
        };
        if a.bits_allocated == 1 {
            return Ok((u64::from(a.rows) * u64::from(a.columns)).div_ceil(8) as usize);
        }
        Ok((u64::from(a.rows) * u64::from(a.columns) * samples_per_pixel * bytes_per_sample) as usize)
    }

    /// Frame `frame` (1-based) as stored (see the module docs).
    pub fn frame(&self, frame: u32) -> Result<StoredFrame, RenderError> {
        self.check_frame(frame)?;
        let index = (frame - 1) as usize;
        match self.pixel_value()? {
            DicomValue::Primitive(p) => {
                let data = p.to_bytes();
                let len = self.native_frame_len()?;
                if self.attrs.bits_allocated == 1 && self.attrs.frames > 1 {
                    return Err(RenderError::UnsupportedTransferSyntax(
                        "multi-frame 1-bit frames are not byte aligned".into(),
                    ));
                }
                let start = index * len;
                let bytes = data
                    .get(start..start + len)
                    .ok_or_else(|| RenderError::DecodeFailed(format!("pixel data ends before frame {frame}")))?;
                Ok(StoredFrame {
                    media_type: format!("application/octet-stream; transfer-syntax={EXPLICIT_VR_LE}"),
                    bytes: bytes.to_vec(),
                })
            }
            DicomValue::PixelSequence(seq) => {
                let fragments = seq.fragments();
                let offsets = seq.offset_table();
                let ranges = frame_fragments(fragments, offsets, self.attrs.frames, &self.transfer_syntax)?;
                let range = ranges
                    .get(index)
                    .cloned()
                    .ok_or_else(|| RenderError::DecodeFailed(format!("no fragments for frame {frame}")))?;
                let bytes: Vec<u8> = fragments[range].iter().flatten().copied().collect();
                Ok(StoredFrame {
                    media_type: compressed_media_type(&self.transfer_syntax)?,
                    bytes,
                })
            }
            DicomValue::Sequence(_) => Err(RenderError::NotAnImage("Pixel Data is a sequence".into())),
        }
    }

    /// Frame `frame` (1-based) decoded by dicom-pixeldata, once what its decoders do not check
    /// has been: an RLE frame's header and segments ([`check_rle_frame`]), the dimensions
    /// JPEG, JPEG-LS and JPEG 2000 codestreams declare ([`check_codestream`]).
    fn decode_frame(&self, frame: u32) -> Result<dicom_pixeldata::DecodedPixelData<'_>, RenderError> {
        if let DicomValue::PixelSequence(seq) = self.pixel_value()? {
            if self.transfer_syntax == RLE {
                if let Some(fragment) = seq.fragments().get((frame - 1) as usize) {
                    check_rle_frame(fragment, &self.attrs)?;
                }
            } else {
                // The decoders start a frame at some fragment's first byte: every fragment that
                // opens a codestream is checked.
                for fragment in seq.fragments() {
                    check_codestream(fragment, &self.transfer_syntax, &self.attrs)?;
                }
            }
        }
        self.object
            .decode_pixel_data_frame(frame - 1)
            .map_err(|e| decode_error(&self.transfer_syntax, e))
    }

    /// Frame `frame` (1-based) in native form whatever the transfer syntax: compressed frames
    /// are decoded (colour comes out as interleaved RGB), native frames are served as stored.
    /// For clients that ask for `application/octet-stream` frames of a compressed instance.
    pub fn frame_native(&self, frame: u32) -> Result<StoredFrame, RenderError> {
        self.check_frame(frame)?;
        if matches!(self.pixel_value()?, DicomValue::Primitive(_)) {
            return self.frame(frame);
        }
        if let Some(bytes) = self.decode_jpeg_12_bit(frame)? {
            return Ok(StoredFrame {
                media_type: format!("application/octet-stream; transfer-syntax={EXPLICIT_VR_LE}"),
                bytes,
            });
        }
        let ts = self.transfer_syntax.as_str();
        match TransferSyntaxRegistry.get(ts) {
            Some(t) if t.can_decode_all() => {}
            _ => return Err(RenderError::UnsupportedTransferSyntax(ts.to_string())),
        }
        let decoded = self.decode_frame(frame)?;
        Ok(StoredFrame {
            media_type: format!("application/octet-stream; transfer-syntax={EXPLICIT_VR_LE}"),
            bytes: decoded.into_data(),
        })
    }

    /// Frame `frame` (1-based) decoded by libjpeg-turbo when it is a JPEG of more than 8-bit
    /// sample precision (12-bit extended DCT, whatever the transfer syntax claims of baseline or
    /// extended), as native little-endian 16-bit samples (colour interleaved RGB); None for any
    /// other frame, which dicom-pixeldata decodes.
    fn decode_jpeg_12_bit(&self, frame: u32) -> Result<Option<Vec<u8>>, RenderError> {
        if !matches!(self.transfer_syntax.as_str(), JPEG_BASELINE | JPEG_EXTENDED) {
            return Ok(None);
        }
        let codestream = self.frame(frame)?.bytes;
        if jpeg12::sample_precision(&codestream).is_none_or(|p| p <= 8) {
            return Ok(None);
        }
        let a = &self.attrs;
        let decoded = jpeg12::decode(&codestream, (a.columns, a.rows))
            .map_err(|e| RenderError::DecodeFailed(format!("12-bit JPEG frame {frame}: {e}")))?;
        if u16::from(decoded.components) != a.samples {
            return Err(RenderError::DecodeFailed(format!(
                "12-bit JPEG frame {frame} has {} components, the data set says {} samples per pixel",
                decoded.components, a.samples
            )));
        }
        if a.bits_allocated != 16 {
            return Err(RenderError::DecodeFailed(format!(
                "12-bit JPEG samples in {} bits allocated",
                a.bits_allocated
            )));
        }
        Ok(Some(decoded.samples.iter().flat_map(|s| s.to_le_bytes()).collect()))
    }

    /// Frame `frame` (1-based) decoded and turned into 8-bit grey or RGB pixels, before the
    /// viewport is applied.
    pub fn display_image(&self, frame: u32, window: Option<Window>) -> Result<DynamicImage, RenderError> {
        self.check_frame(frame)?;
        if let Some(w) = window {
            w.check()?;
        }
        let a = &self.attrs;
        let ts = self.transfer_syntax.as_str();
        let native = matches!(ts, EXPLICIT_VR_LE | IMPLICIT_VR_LE | EXPLICIT_VR_BE | DEFLATED_LE);
        if !native {
            match TransferSyntaxRegistry.get(ts) {
                Some(t) if t.can_decode_all() => {}
                _ => return Err(RenderError::UnsupportedTransferSyntax(ts.to_string())),
            }
        }
        let jpeg_12_bit = self.decode_jpeg_12_bit(frame)?;
        // Decoded samples of the frame (interleaved), and how to read them.
        let (data, photometric, planar): (Cow<'_, [u8]>, String, bool) =
            if let Some(samples_decoded_by_libjpeg_turbo) = jpeg_12_bit {
                // Grey, or RGB converted from YCbCr.
                let photometric = if a.samples == 3 {
                    "RGB".into()
                } else {
                    a.photometric.clone()
                };
                (Cow::Owned(samples_decoded_by_libjpeg_turbo), photometric, false)
            } else if native && (a.photometric.ends_with("_422") || a.bits_allocated == 1) {
                (Cow::Owned(self.frame(frame)?.bytes), a.photometric.clone(), a.planar)
            } else {
                let decoded = self.decode_frame(frame)?;
                let photometric = if native {
                    a.photometric.clone()
                } else if a.samples == 3 {
                    // Codecs give RGB, except RLE which keeps the stored colour space.
                    if ts == RLE {
                        a.photometric.clone()
                    } else {
                        "RGB".to_string()
                    }
                } else {
                    a.photometric.clone()
                };
                let planar = native && a.planar;
                (Cow::Owned(decoded.into_data()), photometric, planar)
            };
        let (w, h) = (a.columns, a.rows);
        let pixels = (w as usize) * (h as usize);
        match photometric.as_str() {
            "MONOCHROME1" | "MONOCHROME2" => {
                let values = if a.bits_allocated == 1 {
                    data.iter()
                        .flat_map(|b| (0..8).map(move |bit| f64::from((b >> bit) & 1)))
                        .take(pixels)
                        .collect::<Vec<f64>>()
                } else {
                    samples(&data, a, pixels)?
                        .into_iter()
                        .map(|v| v as f64 * a.slope + a.intercept)
                        .collect()
                };
                let window = window.or(a.window).unwrap_or_else(|| min_max_window(&values));
                let invert = photometric == "MONOCHROME1";
                let grey: Vec<u8> = values
                    .iter()
                    .map(|v| {
                        let g = window.apply(*v);
                        if invert {
                            255 - g
                        } else {
                            g
                        }
                    })
                    .collect();
                GrayImage::from_raw(w, h, grey)
                    .map(DynamicImage::ImageLuma8)
                    .ok_or_else(|| RenderError::DecodeFailed("frame size mismatch".into()))
            }
            "PALETTE COLOR" => {
                let indices = samples(&data, a, pixels)?;
                let luts = [
                    palette(
                        &self.object,
                        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    )?,
                    palette(
                        &self.object,
                        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    )?,
                    palette(
                        &self.object,
                        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    )?,
                ];
                let mut rgb = Vec::with_capacity(pixels * 3);
                for i in indices {
                    for lut in &luts {
                        rgb.push(lut.lookup(i));
                    }
                }
                RgbImage::from_raw(w, h, rgb)
                    .map(DynamicImage::ImageRgb8)
                    .ok_or_else(|| RenderError::DecodeFailed("frame size mismatch".into()))
            }
            "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_RCT" | "YBR_ICT" => {
                let mut rgb = colour_samples(&data, a, pixels, &photometric, planar)?;
                if photometric == "YBR_FULL" || photometric == "YBR_FULL_422" {
                    for px in rgb.chunks_exact_mut(3) {
                        let [r, g, b] = ybr_to_rgb(px[0], px[1], px[2]);
                        px.copy_from_slice(&[r, g, b]);
                    }
                }
                RgbImage::from_raw(w, h, rgb)
                    .map(DynamicImage::ImageRgb8)
                    .ok_or_else(|| RenderError::DecodeFailed("frame size mismatch".into()))
            }
            other => Err(RenderError::NotAnImage(format!(
                "photometric interpretation {other:?} is not rendered"
            ))),
        }
    }

    /// Renders frame `frame` (1-based) to JPEG or PNG.
    pub fn render(&self, frame: u32, options: &RenderOptions) -> Result<Rendered, RenderError> {
        let image = self.display_image(frame, options.window)?;
        let image = fit(image, options.viewport)?;
        encode(&image, options.format, options.quality)
    }
}

/// Can dicom-transfer-syntax-registry 0.10 decode this RLE Lossless frame (PS3.5 Annex G)
/// without panicking? It reads the header's segment count as a vector size and its offsets
/// without bounds, and indexes each decoded segment up to rows × columns without checking its
/// length (found by `cargo fuzz`, target `render`). So: a 64-byte header of 1 to 15 ordered
/// offsets inside the fragment, and every segment the frame needs decoding to at least one
/// byte per pixel.
fn check_rle_frame(fragment: &[u8], a: &Attributes) -> Result<(), RenderError> {
    let bad = |why: &str| RenderError::DecodeFailed(format!("RLE frame: {why}"));
    let header = fragment
        .get(..64)
        .ok_or_else(|| bad("shorter than its 64-byte header"))?;
    let word = |i: usize| {
        let bytes = [header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]];
        u32::from_le_bytes(bytes) as usize
    };
    let segments = word(0);
    if !(1..=15).contains(&segments) {
        return Err(bad("the header names 1 to 15 segments"));
    }
    let mut offsets: Vec<usize> = (1..=segments).map(word).collect();
    offsets.push(fragment.len());
    if offsets[0] < 64 || offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(bad("segment offsets out of order or outside the fragment"));
    }
    let needed = usize::from(a.samples) * usize::from(a.bits_allocated / 8);
    if needed > segments {
        return Err(bad("fewer segments than samples and bytes per sample"));
    }
    let pixels = a.rows as usize * a.columns as usize;
    for s in 0..needed {
        if packbits_len(&fragment[offsets[s]..offsets[s + 1]]) < pixels {
            return Err(bad("a segment decodes to fewer bytes than the frame has pixels"));
        }
    }
    Ok(())
}

/// Does a compressed codestream declare no more than the frame the data set describes?
/// dicom-pixeldata 0.10's adapters let the codec allocate what the codestream declares (up to
/// 65535 × 65535 samples) and copy the result into a buffer sized by Rows × Columns × Samples
/// per Pixel without checking (a JPEG larger than its data set said made the JPEG adapter
/// panic, found by `cargo fuzz`; the JPEG 2000 adapter writes one component too many the same
/// way). Fragments that do not open a codestream are continuations and pass.
fn check_codestream(fragment: &[u8], ts: &str, a: &Attributes) -> Result<(), RenderError> {
    let too_big = || {
        RenderError::DecodeFailed(format!(
            "the compressed frame declares more than Rows × Columns × Samples per Pixel ({} × {} × {})",
            a.rows, a.columns, a.samples
        ))
    };
    let pixels = u64::from(a.rows) * u64::from(a.columns);
    let budget = pixels * u64::from(a.samples) * u64::from(a.bits_allocated.div_ceil(8).max(1));
    let bytes_per = |precision: u8| if precision > 8 { 2u64 } else { 1 };
    match ts {
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => {
            if !fragment.starts_with(&[0xFF, 0xD8]) {
                return Ok(());
            }
            let mut decoder = jpeg_decoder::Decoder::new(fragment);
            // A header jpeg-decoder cannot read, it cannot decode either: that is its error.
            if decoder.read_info().is_err() {
                return Ok(());
            }
            let Some(info) = decoder.info() else { return Ok(()) };
            let declared = u64::from(info.width) * u64::from(info.height) * info.pixel_format.pixel_bytes() as u64;
            if declared > budget {
                return Err(too_big());
            }
        }
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => {
            if !fragment.starts_with(&[0xFF, 0xD8]) {
                return Ok(());
            }
            // SOF55 (FFF7): Lf, P, Y, X, Nf.
            let Some(at) = fragment.windows(2).position(|w| w == [0xFF, 0xF7]) else {
                return Ok(());
            };
            let Some(sof) = fragment.get(at + 4..at + 10) else {
                return Err(too_big());
            };
            let (precision, height, width, components) = (
                sof[0],
                u16::from_be_bytes([sof[1], sof[2]]),
                u16::from_be_bytes([sof[3], sof[4]]),
                sof[5],
            );
            let declared = u64::from(width) * u64::from(height) * u64::from(components) * bytes_per(precision);
            if declared > budget {
                return Err(too_big());
            }
        }
        "1.2.840.10008.1.2.4.90"
        | "1.2.840.10008.1.2.4.91"
        | "1.2.840.10008.1.2.4.201"
        | "1.2.840.10008.1.2.4.202"
        | "1.2.840.10008.1.2.4.203" => {
            let jp2 = fragment.starts_with(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' ']);
            if !jp2 && !fragment.starts_with(&[0xFF, 0x4F]) {
                return Ok(());
            }
            // SIZ (FF51) right after SOC: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz,
            // XTOsiz, YTOsiz, Csiz, then per component Ssiz, XRsiz, YRsiz.
            let Some(at) = fragment.windows(4).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) else {
                return Err(RenderError::DecodeFailed(
                    "a JPEG 2000 codestream without its SIZ marker".into(),
                ));
            };
            let siz = &fragment[at + 4..];
            let word = |i: usize| {
                siz.get(i..i + 4)
                    .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            };
            let (Some(x), Some(y), Some(x0), Some(y0), Some(c)) = (
                word(4),
                word(8),
                word(12),
                word(16),
                siz.get(36..38).map(|b| u16::from_be_bytes([b[0], b[1]])),
            ) else {
                return Err(too_big());
            };
            // The adapter writes each component's samples at Samples per Pixel × Bits
            // Allocated strides: fewer components and no more samples than the frame has.
            let area = x.saturating_sub(x0) * y.saturating_sub(y0);
            if c > a.samples || area > pixels {
                return Err(too_big());
            }
        }
        _ => {}
    }
    Ok(())
}

/// How many bytes a PackBits segment decodes to, read the way dicom-transfer-syntax-registry
/// reads it (a literal run may be cut short by the segment's end).
fn packbits_len(segment: &[u8]) -> usize {
    let (mut at, mut out) = (0, 0);
    while at < segment.len() {
        let h = segment[at] as i8;
        at += 1;
        match h {
            -127..=-1 => {
                if at >= segment.len() {
                    break;
                }
                out += (1 - h as isize) as usize;
                at += 1;
            }
            0.. => {
                let n = h as usize + 1;
                out += n.min(segment.len() - at);
                at += n;
            }
            -128 => {}
        }
    }
    out
}

/// Fits `image` into the viewport (keeping aspect), and always within [`MAX_DIMENSION`].
pub fn fit(image: DynamicImage, viewport: Option<(u32, u32)>) -> Result<DynamicImage, RenderError> {
    let (vw, vh) = viewport.unwrap_or((MAX_DIMENSION, MAX_DIMENSION));
    if vw == 0 || vh == 0 || vw > MAX_DIMENSION || vh > MAX_DIMENSION {
        return Err(RenderError::InvalidParameter(format!(
            "viewport sides are 1 to {MAX_DIMENSION}"
        )));
    }
    let (w, h) = (image.width(), image.height());
    if viewport.is_none() && w <= vw && h <= vh {
        return Ok(image);
    }
    let scale = (f64::from(vw) / f64::from(w)).min(f64::from(vh) / f64::from(h));
    let nw = ((f64::from(w) * scale).round() as u32).clamp(1, vw);
    let nh = ((f64::from(h) * scale).round() as u32).clamp(1, vh);
    if (nw, nh) == (w, h) {
        return Ok(image);
    }
    Ok(image.resize_exact(nw, nh, image::imageops::FilterType::Triangle))
}

/// Encodes an 8-bit grey or RGB image.
pub fn encode(image: &DynamicImage, format: Format, quality: u8) -> Result<Rendered, RenderError> {
    let mut out = Cursor::new(Vec::new());
    let (w, h) = (image.width(), image.height());
    let (bytes, colour) = match image {
        DynamicImage::ImageLuma8(g) => (g.as_raw().as_slice(), image::ExtendedColorType::L8),
        DynamicImage::ImageRgb8(c) => (c.as_raw().as_slice(), image::ExtendedColorType::Rgb8),
        _ => return Err(RenderError::DecodeFailed("unexpected pixel layout".into())),
    };
    let result = match format {
        Format::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
            .write_image(bytes, w, h, colour),
        Format::Png => image::codecs::png::PngEncoder::new(&mut out).write_image(bytes, w, h, colour),
    };
    result.map_err(|e| RenderError::DecodeFailed(format!("encoding failed: {e}")))?;
    Ok(Rendered {
        format,
        width: w,
        height: h,
        bytes: out.into_inner(),
    })
}

fn decode_error(ts: &str, e: dicom_pixeldata::Error) -> RenderError {
    let text = e.to_string();
    if text.to_ascii_lowercase().contains("unsupported transfer syntax") {
        RenderError::UnsupportedTransferSyntax(ts.to_string())
    } else {
        // Include the cause chain: "decode failed: <codec reason>".
        let mut detail = text;
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        RenderError::DecodeFailed(detail)
    }
}

fn element_str(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_string())
        .filter(|s| !s.is_empty())
}

fn element_u16(obj: &DefaultDicomObject, tag: Tag) -> Option<u16> {
    obj.get(tag).and_then(|e| e.to_int::<u16>().ok())
}

fn element_f64s(obj: &DefaultDicomObject, tag: Tag) -> Vec<f64> {
    obj.get(tag).and_then(|e| e.to_multi_float64().ok()).unwrap_or_default()
}

fn attributes(obj: &DefaultDicomObject) -> Result<Attributes, RenderError> {
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(RenderError::NotAnImage("no Pixel Data".into()));
    }
    let rows = element_u16(obj, tags::ROWS).ok_or_else(|| RenderError::NotAnImage("no Rows".into()))?;
    let columns = element_u16(obj, tags::COLUMNS).ok_or_else(|| RenderError::NotAnImage("no Columns".into()))?;
    if rows == 0 || columns == 0 {
        return Err(RenderError::NotAnImage("zero rows or columns".into()));
    }
    if u64::from(rows) * u64::from(columns) > MAX_FRAME_PIXELS {
        return Err(RenderError::DecodeFailed("frame is too large to render".into()));
    }
    let samples = element_u16(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_allocated =
        element_u16(obj, tags::BITS_ALLOCATED).ok_or_else(|| RenderError::NotAnImage("no Bits Allocated".into()))?;
    if !matches!(bits_allocated, 1 | 8 | 16 | 32) || !matches!(samples, 1 | 3) {
        return Err(RenderError::NotAnImage(format!(
            "{samples} samples of {bits_allocated} bits are not an image we render"
        )));
    }
    let bits_stored = element_u16(obj, tags::BITS_STORED)
        .unwrap_or(bits_allocated)
        .clamp(1, bits_allocated);
    let high_bit = element_u16(obj, tags::HIGH_BIT)
        .unwrap_or(bits_stored - 1)
        .clamp(bits_stored - 1, bits_allocated - 1);
    let photometric = element_str(obj, tags::PHOTOMETRIC_INTERPRETATION)
        .unwrap_or_else(|| if samples == 3 { "RGB" } else { "MONOCHROME2" }.to_string());
    let frames = element_str(obj, tags::NUMBER_OF_FRAMES)
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let slope = element_f64s(obj, tags::RESCALE_SLOPE)
        .first()
        .copied()
        .filter(|v| v.is_finite() && *v != 0.0);
    let intercept = element_f64s(obj, tags::RESCALE_INTERCEPT)
        .first()
        .copied()
        .filter(|v| v.is_finite());
    let function = match element_str(obj, tags::VOILUT_FUNCTION).as_deref() {
        Some("SIGMOID") => VoiFunction::Sigmoid,
        Some("LINEAR_EXACT") => VoiFunction::LinearExact,
        _ => VoiFunction::Linear,
    };
    let window = match (
        element_f64s(obj, tags::WINDOW_CENTER).first(),
        element_f64s(obj, tags::WINDOW_WIDTH).first(),
    ) {
        (Some(c), Some(w)) => Some(Window {
            center: *c,
            width: *w,
            function,
        })
        .filter(|w| w.check().is_ok()),
        _ => None,
    };
    Ok(Attributes {
        rows: rows.into(),
        columns: columns.into(),
        samples,
        bits_allocated,
        bits_stored,
        high_bit,
        signed: element_u16(obj, tags::PIXEL_REPRESENTATION) == Some(1),
        planar: element_u16(obj, tags::PLANAR_CONFIGURATION) == Some(1),
        photometric,
        frames,
        slope: slope.unwrap_or(1.0),
        intercept: intercept.unwrap_or(0.0),
        window,
    })
}

/// Stored values of a single-sample frame: masked to Bits Stored, shifted by High Bit,
/// sign-extended when Pixel Representation is 1.
fn samples(data: &[u8], a: &Attributes, pixels: usize) -> Result<Vec<i64>, RenderError> {
    let bytes = usize::from(a.bits_allocated.div_ceil(8));
    if data.len() < pixels * bytes {
        return Err(RenderError::DecodeFailed(format!(
            "frame has {} bytes, {} expected",
            data.len(),
            pixels * bytes
        )));
    }
    let shift = u32::from(a.high_bit + 1 - a.bits_stored);
    let bits = u32::from(a.bits_stored);
    let mask: u64 = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    Ok(data[..pixels * bytes]
        .chunks_exact(bytes)
        .map(|c| {
            let raw: u64 = match bytes {
                1 => u64::from(c[0]),
                2 => u64::from(u16::from_le_bytes([c[0], c[1]])),
                _ => u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            };
            let v = (raw >> shift) & mask;
            if a.signed && bits < 64 && v & (1 << (bits - 1)) != 0 {
                v as i64 - (1i64 << bits)
            } else {
                v as i64
            }
        })
        .collect())
}

/// 8-bit interleaved RGB/YBR triplets of a three-sample frame (planar or 4:2:2 expanded,
/// 16-bit samples scaled down).
fn colour_samples(
    data: &[u8],
    a: &Attributes,
    pixels: usize,
    photometric: &str,
    planar: bool,
) -> Result<Vec<u8>, RenderError> {
    let short = || RenderError::DecodeFailed("colour frame is shorter than its size".into());
    if photometric == "YBR_FULL_422" && a.bits_allocated == 8 {
        // Y1 Y2 Cb Cr per pair of pixels (row by row).
        let w = a.columns as usize;
        let mut out = Vec::with_capacity(pixels * 3);
        for row in data.chunks(w.div_ceil(2) * 4).take(a.rows as usize) {
            for x in 0..w {
                let pair = &row.get((x / 2) * 4..(x / 2) * 4 + 4).ok_or_else(short)?;
                out.extend_from_slice(&[pair[x % 2], pair[2], pair[3]]);
            }
        }
        if out.len() != pixels * 3 {
            return Err(short());
        }
        return Ok(out);
    }
    let bytes = usize::from(a.bits_allocated.div_ceil(8));
    let need = pixels * 3 * bytes;
    let data = data.get(..need).ok_or_else(short)?;
    let sample = |i: usize| -> u8 {
        if bytes == 1 {
            data[i]
        } else {
            let v = u16::from_le_bytes([data[i * 2], data[i * 2 + 1]]);
            (u32::from(v) >> a.bits_stored.saturating_sub(8).min(8)) as u8
        }
    };
    let mut out = Vec::with_capacity(pixels * 3);
    for p in 0..pixels {
        for s in 0..3 {
            let i = if planar { s * pixels + p } else { p * 3 + s };
            out.push(sample(i));
        }
    }
    Ok(out)
}

/// YCbCr full range to RGB (PS3.3 C.7.6.3.1.2).
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
    let r = y + 1.402 * cr;
    let g = y - 0.344_136 * cb - 0.714_136 * cr;
    let b = y + 1.772 * cb;
    [r, g, b].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// A window spanning the frame's values (when the data set gives none).
fn min_max_window(values: &[f64]) -> Window {
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return Window {
            center: 0.5,
            width: 1.0,
            function: VoiFunction::Linear,
        };
    }
    Window {
        center: (lo + hi) / 2.0 + 0.5,
        width: (hi - lo + 1.0).max(1.0),
        function: VoiFunction::Linear,
    }
}

/// One palette colour lookup table, as 8-bit outputs.
struct Palette {
    first: i64,
    entries: Vec<u8>,
}

impl Palette {
    fn lookup(&self, index: i64) -> u8 {
        let i = (index - self.first).clamp(0, self.entries.len() as i64 - 1);
        self.entries[i as usize]
    }
}

fn palette(obj: &DefaultDicomObject, descriptor: Tag, data: Tag) -> Result<Palette, RenderError> {
    let bad = |what: &str| RenderError::NotAnImage(format!("palette colour lookup table: {what}"));
    let d: Vec<i64> = obj
        .get(descriptor)
        .and_then(|e| e.to_multi_int::<i64>().ok())
        .ok_or_else(|| bad("no descriptor"))?;
    if d.len() != 3 {
        return Err(bad("descriptor is not 3 values"));
    }
    let count = if d[0] == 0 { 65536 } else { d[0] as usize };
    let first = if d[1] < 0 { d[1] + 65536 } else { d[1] };
    let bits = d[2];
    let raw = obj
        .get(data)
        .and_then(|e| e.to_bytes().ok())
        .ok_or_else(|| bad("no data (segmented palettes are not supported)"))?;
    let entries: Vec<u8> = if bits == 16 && raw.len() >= count * 2 {
        raw.chunks_exact(2).take(count).map(|c| c[1]).collect()
    } else if bits == 8 && raw.len() >= count * 2 {
        raw.chunks_exact(2).take(count).map(|c| c[0]).collect()
    } else if bits == 8 && raw.len() >= count {
        raw[..count].to_vec()
    } else {
        return Err(bad("data shorter than the descriptor says"));
    };
    Ok(Palette { first, entries })
}

/// The media type PS3.18 (Table 8.7.3-5) gives frames of an encapsulated transfer syntax.
fn compressed_media_type(ts: &str) -> Result<String, RenderError> {
    let kind = match ts {
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => {
            "image/jpeg"
        }
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => "image/jphc",
        "1.2.840.10008.1.2.4.110" | "1.2.840.10008.1.2.4.111" | "1.2.840.10008.1.2.4.112" => "image/jxl",
        RLE => "application/octet-stream",
        _ if ts.starts_with("1.2.840.10008.1.2.4.10") => {
            return Err(RenderError::UnsupportedTransferSyntax(format!(
                "{ts} (video): retrieve the instance instead"
            )))
        }
        _ => "application/octet-stream",
    };
    Ok(format!("{kind}; transfer-syntax={ts}"))
}

/// Which fragments make each frame: the basic offset table when present, one fragment per
/// frame when the counts match, everything for a single frame, else frame starts found by
/// their codestream markers (JPEG SOI `FFD8`, JPEG 2000 SOC `FF4F`).
fn frame_fragments(
    fragments: &[Vec<u8>],
    offsets: &[u32],
    frames: u32,
    ts: &str,
) -> Result<Vec<std::ops::Range<usize>>, RenderError> {
    let frames = frames as usize;
    if fragments.is_empty() {
        return Err(RenderError::DecodeFailed(
            "encapsulated pixel data has no fragments".into(),
        ));
    }
    if frames == 1 {
        return Ok(std::iter::once(0..fragments.len()).collect());
    }
    if fragments.len() == frames {
        return Ok((0..frames).map(|i| i..i + 1).collect());
    }
    let mut starts: Vec<usize> = Vec::new();
    if offsets.len() == frames {
        // Offsets count bytes from the first fragment's item header (8 bytes each).
        let mut position = 0u64;
        let mut at = Vec::with_capacity(fragments.len());
        for f in fragments {
            at.push(position);
            position += 8 + f.len() as u64;
        }
        for o in offsets {
            let i = at
                .iter()
                .position(|p| *p == u64::from(*o))
                .ok_or_else(|| RenderError::DecodeFailed("basic offset table points between fragments".into()))?;
            starts.push(i);
        }
    } else {
        let marker: &[u8] = if ts.starts_with("1.2.840.10008.1.2.4.9") || ts.starts_with("1.2.840.10008.1.2.4.20") {
            &[0xFF, 0x4F]
        } else {
            &[0xFF, 0xD8]
        };
        starts = fragments
            .iter()
            .enumerate()
            .filter(|(_, f)| f.starts_with(marker))
            .map(|(i, _)| i)
            .collect();
    }
    if starts.len() != frames || starts.first() != Some(&0) || starts.windows(2).any(|w| w[0] >= w[1]) {
        return Err(RenderError::DecodeFailed(format!(
            "cannot tell which of {} fragments make each of {frames} frames",
            fragments.len()
        )));
    }
    let mut ranges = Vec::with_capacity(frames);
    for (k, s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(fragments.len());
        ranges.push(*s..end);
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parsing_and_linear_function() {
        let w = Window::parse("40,400,linear").unwrap();
        assert_eq!((w.center, w.width, w.function), (40.0, 400.0, VoiFunction::Linear));
        assert_eq!(Window::parse(" 40 , 400 , LINEAR ").unwrap(), w);
        for bad in [
            "40,400",
            "a,400,linear",
            "40,0,linear",
            "40,400,cubic",
            "",
            "40,NaN,linear",
            "40,inf,linear",
        ] {
            assert_eq!(Window::parse(bad).unwrap_err().code(), "invalid_parameter", "{bad}");
        }
        // PS3.3 C.11.2.1.2.1 with c=40 w=400: x <= -160.5 → 0, x > 239.5 → 255.
        assert_eq!(w.apply(-161.0), 0);
        assert_eq!(w.apply(240.0), 255);
        assert_eq!(w.apply(40.0), 128); // ((40-39.5)/399+0.5)*255 = 127.82
        assert_eq!(w.apply(-60.0), 64); // ((-99.5)/399+0.5)*255 = 63.9
    }

    #[test]
    fn frames_by_offset_table_and_markers() {
        let f = |b: &[u8]| b.to_vec();
        let fragments = vec![f(&[0xFF, 0xD8, 1, 2]), f(&[3, 4]), f(&[0xFF, 0xD8, 5, 6])];
        let ts = "1.2.840.10008.1.2.4.50";
        assert_eq!(frame_fragments(&fragments, &[], 2, ts).unwrap(), vec![0..2, 2..3]);
        assert_eq!(frame_fragments(&fragments, &[0, 22], 2, ts).unwrap(), vec![0..2, 2..3]);
        assert_eq!(
            frame_fragments(&fragments, &[], 1, ts).unwrap(),
            std::iter::once(0..3).collect::<Vec<_>>()
        );
        assert_eq!(frame_fragments(&fragments, &[], 3, ts).unwrap(), vec![0..1, 1..2, 2..3]);
        assert_eq!(
            frame_fragments(&fragments, &[0, 3], 2, ts).unwrap_err().code(),
            "decode_failed"
        );
        assert_eq!(
            frame_fragments(&fragments, &[], 4, ts).unwrap_err().code(),
            "decode_failed"
        );
    }
}
