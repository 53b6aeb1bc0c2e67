//! Images the platform accepts or makes itself: hospital logos uploaded by
//! administrators, and QR codes printed on reports and download slips.
//!
//! A logo is checked from its bytes alone: the format comes from the magic
//! bytes and the dimensions from the header, never from what the client
//! claims, and no pixel is decoded (a hostile file cannot make us inflate a
//! decompression bomb). What passes is a [`LogoImage`]; a refusal is a
//! [`LogoError`] with a stable [`code`](LogoError::code).
//!
//! QR codes are rendered here as SVG or as 8-bit grayscale PNG, black on
//! white with the standard quiet zone of four modules.
//!
//! This module does no I/O; storing the bytes is [`crate::blobs`]'s job.

use qrcode::render::svg;
use qrcode::types::QrError as EncodeError;
use qrcode::{Color, EcLevel, QrCode};
use sha2::{Digest, Sha256};

/// The largest logo accepted, in bytes.
pub const MAX_LOGO_BYTES: usize = 512 * 1024;

/// The largest width or height of a logo, in pixels.
pub const MAX_LOGO_SIDE: u32 = 4096;

const PNG: &str = "image/png";
const JPEG: &str = "image/jpeg";
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// A logo that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoImage {
    /// `"image/png"` or `"image/jpeg"`, as detected from the bytes.
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogoError {
    #[error("the logo is empty")]
    Empty,
    #[error("the logo is {actual} bytes; at most {max} are accepted")]
    TooLarge { max: usize, actual: usize },
    #[error("only PNG and 8-bit baseline or progressive JPEG logos are accepted")]
    UnsupportedType,
    #[error("the logo was declared as {declared} but its bytes are {detected}")]
    TypeMismatch { declared: String, detected: &'static str },
    #[error("the logo's header is truncated or damaged")]
    Unreadable,
    #[error("the logo is {width}x{height} pixels; each side must be 1 to {max}")]
    BadDimensions { width: u32, height: u32, max: u32 },
}

impl LogoError {
    /// A stable, machine-readable name for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            LogoError::Empty => "logo_empty",
            LogoError::TooLarge { .. } => "logo_too_large",
            LogoError::UnsupportedType => "logo_unsupported_type",
            LogoError::TypeMismatch { .. } => "logo_type_mismatch",
            LogoError::Unreadable => "logo_unreadable",
            LogoError::BadDimensions { .. } => "logo_bad_dimensions",
        }
    }
}

/// Checks an uploaded logo.
///
/// `declared_content_type` is what the client said (a `Content-Type`, with
/// any parameters); it is never trusted, only compared: if given and not
/// blank, it must name the format the bytes are (`image/jpg` and
/// `image/pjpeg` count as JPEG, `image/x-png` as PNG). Only the header is
/// read, so a body damaged after the header is not caught here.
pub fn validate_logo(bytes: &[u8], declared_content_type: Option<&str>) -> Result<LogoImage, LogoError> {
    if bytes.is_empty() {
        return Err(LogoError::Empty);
    }
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(LogoError::TooLarge {
            max: MAX_LOGO_BYTES,
            actual: bytes.len(),
        });
    }
    let detected = if bytes.starts_with(&PNG_SIGNATURE) {
        PNG
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        JPEG
    } else {
        return Err(LogoError::UnsupportedType);
    };
    if let Some(declared) = declared_content_type {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let claimed = match essence.as_str() {
            "" => None,
            "image/png" | "image/x-png" => Some(PNG),
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(JPEG),
            _ => Some(""),
        };
        if claimed.is_some_and(|claimed| claimed != detected) {
            return Err(LogoError::TypeMismatch {
                declared: declared.trim().to_string(),
                detected,
            });
        }
    }
    let (width, height) = if detected == PNG {
        png_dimensions(bytes)?
    } else {
        jpeg_dimensions(bytes)?
    };
    let fits = |side: u32| (1..=MAX_LOGO_SIDE).contains(&side);
    if !fits(width) || !fits(height) {
        return Err(LogoError::BadDimensions {
            width,
            height,
            max: MAX_LOGO_SIDE,
        });
    }
    Ok(LogoImage {
        content_type: detected,
        width,
        height,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

/// Width and height from a PNG's IHDR chunk, which the format requires to
/// come first. The chunk's CRC and field values are checked, so a garbled
/// header is refused rather than read as a wrong size.
fn png_dimensions(bytes: &[u8]) -> Result<(u32, u32), LogoError> {
    // signature (8) + length (4) + "IHDR" (4) + data (13) + CRC (4)
    let ihdr = bytes.get(8..33).ok_or(LogoError::Unreadable)?;
    if ihdr[0..4] != 13u32.to_be_bytes() || &ihdr[4..8] != b"IHDR" {
        return Err(LogoError::Unreadable);
    }
    let crc = u32::from_be_bytes([ihdr[21], ihdr[22], ihdr[23], ihdr[24]]);
    if crc32(&ihdr[4..21]) != crc {
        return Err(LogoError::Unreadable);
    }
    let data = &ihdr[8..21];
    let width = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let height = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let (bit_depth, color_type) = (data[8], data[9]);
    let depth_fits_color = match color_type {
        0 => matches!(bit_depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(bit_depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(bit_depth, 8 | 16),
        _ => false,
    };
    // compression and filter method 0 are the only ones defined; interlace 0 or 1
    if !depth_fits_color || data[10] != 0 || data[11] != 0 || data[12] > 1 {
        return Err(LogoError::Unreadable);
    }
    Ok((width, height))
}

/// Width and height from a JPEG's frame header (SOF0 baseline or SOF2
/// progressive), walking the marker segments that precede it. Other coding
/// processes (lossless, arithmetic, hierarchical, 12-bit) are valid JPEG but
/// not displayed by browsers, so they are refused as unsupported.
fn jpeg_dimensions(bytes: &[u8]) -> Result<(u32, u32), LogoError> {
    let mut at = 2; // past SOI
    loop {
        if *bytes.get(at).ok_or(LogoError::Unreadable)? != 0xFF {
            return Err(LogoError::Unreadable);
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let marker = *bytes.get(at).ok_or(LogoError::Unreadable)?;
        at += 1;
        match marker {
            // TEM and RSTn stand alone, without a length.
            0x01 | 0xD0..=0xD7 => continue,
            // A stuffed zero, a second SOI, or the image ending or its scan
            // starting before any frame header: not a well-formed JPEG.
            0x00 | 0xD8 | 0xD9 | 0xDA => return Err(LogoError::Unreadable),
            _ => {}
        }
        let length = bytes.get(at..at + 2).ok_or(LogoError::Unreadable)?;
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        let segment = length
            .checked_sub(2)
            .and_then(|body| bytes.get(at + 2..at + 2 + body))
            .ok_or(LogoError::Unreadable)?;
        match marker {
            0xC0 | 0xC2 => return frame_dimensions(segment),
            // The other SOFn (DHT 0xC4, JPG 0xC8 and DAC 0xCC are not frames).
            0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Err(LogoError::UnsupportedType),
            _ => at += length,
        }
    }
}

/// Reads a SOF segment body: precision, height, width, components, then three
/// bytes per component.
fn frame_dimensions(segment: &[u8]) -> Result<(u32, u32), LogoError> {
    let [precision, h1, h0, w1, w0, components, ..] = *segment else {
        return Err(LogoError::Unreadable);
    };
    if components == 0 || segment.len() != 6 + 3 * usize::from(components) {
        return Err(LogoError::Unreadable);
    }
    if precision != 8 {
        return Err(LogoError::UnsupportedType);
    }
    let height = u32::from(u16::from_be_bytes([h1, h0]));
    let width = u32::from(u16::from_be_bytes([w1, w0]));
    Ok((width, height))
}

/// CRC-32 (ISO 3309, as PNG uses it). Bitwise: it only ever covers the 17
/// bytes of an IHDR chunk, so a table would not pay for itself.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The most bytes a QR code is made from.
pub const MAX_QR_DATA_BYTES: usize = 1024;

/// The largest module (one QR "pixel") of a PNG rendering, in pixels.
pub const MAX_QR_MODULE_PX: u32 = 32;

/// Light modules around the code, as the QR specification requires.
const QUIET_ZONE_MODULES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("QR data is {actual} bytes; at most {max} are accepted")]
    TooLong { max: usize, actual: usize },
    #[error("a QR module must be 1 to {max} pixels, not {actual}")]
    BadModuleSize { max: u32, actual: u32 },
    #[error("the data cannot be encoded as a QR code: {0}")]
    Unencodable(#[from] EncodeError),
    #[error("the QR code could not be written as PNG: {0}")]
    Png(#[from] png::EncodingError),
}

impl QrError {
    /// A stable, machine-readable name for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            QrError::TooLong { .. } => "qr_data_too_long",
            QrError::BadModuleSize { .. } => "qr_bad_module_size",
            QrError::Unencodable(_) => "qr_unencodable",
            QrError::Png(_) => "qr_png_failed",
        }
    }
}

/// Encodes `data` (as its UTF-8 bytes) at error-correction level M, which
/// survives a smudge or a fold of a printed slip and keeps codes small.
fn encode(data: &str) -> Result<QrCode, QrError> {
    if data.len() > MAX_QR_DATA_BYTES {
        return Err(QrError::TooLong {
            max: MAX_QR_DATA_BYTES,
            actual: data.len(),
        });
    }
    Ok(QrCode::with_error_correction_level(data, EcLevel::M)?)
}

/// `data` as a QR code in an SVG document, black on white with a quiet zone.
pub fn qr_svg(data: &str) -> Result<String, QrError> {
    let code = encode(data)?;
    Ok(code
        .render::<svg::Color>()
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .min_dimensions(256, 256)
        .build())
}

/// `data` as a QR code in an 8-bit grayscale PNG, black on white, each
/// module `module_px` pixels square, with a quiet zone of four modules: the
/// image is `(modules + 8) * module_px` pixels on each side.
pub fn qr_png(data: &str, module_px: u32) -> Result<Vec<u8>, QrError> {
    if !(1..=MAX_QR_MODULE_PX).contains(&module_px) {
        return Err(QrError::BadModuleSize {
            max: MAX_QR_MODULE_PX,
            actual: module_px,
        });
    }
    let code = encode(data)?;
    let modules = code.width();
    let px = module_px as usize;
    let side = (modules + 2 * QUIET_ZONE_MODULES) * px;
    let mut pixels = vec![0xFFu8; side * side];
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color != Color::Dark {
            continue;
        }
        let left = (i % modules + QUIET_ZONE_MODULES) * px;
        let top = (i / modules + QUIET_ZONE_MODULES) * px;
        for row in top..top + px {
            pixels[row * side + left..row * side + left + px].fill(0x00);
        }
    }

    let side = u32::try_from(side).expect("at most 185 modules of 32 px");
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A real PNG made by the `png` crate.
    fn png_bytes(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer
            .write_image_data(&vec![0x80; (width * height * 4) as usize])
            .unwrap();
        writer.finish().unwrap();
        out
    }

    /// Overwrites a PNG's IHDR width and height and fixes the CRC, to make
    /// headers the `png` encoder refuses to write.
    fn with_png_dimensions(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    const APP0_JFIF: &[u8] = b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0";

    fn sof(precision: u8, width: u16, height: u16) -> Vec<u8> {
        let mut body = vec![precision];
        body.extend_from_slice(&height.to_be_bytes());
        body.extend_from_slice(&width.to_be_bytes());
        body.push(3); // Y, Cb, Cr
        body.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        body
    }

    /// SOI + APP0 (JFIF) + the given segments + EOI.
    fn jpeg_with(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        out.extend(segment(0xE0, APP0_JFIF));
        for s in segments {
            out.extend_from_slice(s);
        }
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    fn jpeg_bytes(width: u16, height: u16) -> Vec<u8> {
        jpeg_with(&[segment(0xC0, &sof(8, width, height))])
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn png_logo_is_accepted_with_its_dimensions_and_digest() {
        let bytes = png_bytes(3, 2);
        let logo = validate_logo(&bytes, Some("image/png")).unwrap();
        assert_eq!(
            logo,
            LogoImage {
                content_type: "image/png",
                width: 3,
                height: 2,
                sha256: hex::encode(Sha256::digest(&bytes)),
            }
        );
        assert_eq!(logo.sha256.len(), 64);
        assert_eq!(validate_logo(&bytes, None).unwrap(), logo);
    }

    #[test]
    fn jpeg_logo_dimensions_come_from_the_baseline_frame_header() {
        let logo = validate_logo(&jpeg_bytes(640, 480), Some("image/jpeg")).unwrap();
        assert_eq!(logo.content_type, "image/jpeg");
        assert_eq!((logo.width, logo.height), (640, 480));
    }

    #[test]
    fn jpeg_frame_header_is_found_past_other_segments_and_fill_bytes() {
        let dqt = segment(0xDB, &[0; 65]);
        let mut progressive = vec![0xFF, 0xFF]; // fill bytes before the marker
        progressive.extend(segment(0xC2, &sof(8, 123, 45)));
        let bytes = jpeg_with(&[dqt, segment(0xFE, b"a comment"), progressive]);
        let logo = validate_logo(&bytes, None).unwrap();
        assert_eq!((logo.width, logo.height), (123, 45));
    }

    #[test]
    fn jpeg_coding_processes_browsers_do_not_show_are_unsupported() {
        let lossless = jpeg_with(&[segment(0xC3, &sof(8, 10, 10))]);
        assert_eq!(validate_logo(&lossless, None), Err(LogoError::UnsupportedType));
        let twelve_bit = jpeg_with(&[segment(0xC2, &sof(12, 10, 10))]);
        assert_eq!(validate_logo(&twelve_bit, None), Err(LogoError::UnsupportedType));
    }

    #[test]
    fn declared_type_may_differ_only_in_case_parameters_and_aliases() {
        let png = png_bytes(1, 1);
        let jpeg = jpeg_bytes(1, 1);
        assert!(validate_logo(&png, Some("IMAGE/PNG; charset=binary")).is_ok());
        assert!(validate_logo(&png, Some("image/x-png")).is_ok());
        assert!(validate_logo(&png, Some("  ")).is_ok());
        assert!(validate_logo(&jpeg, Some("image/jpg")).is_ok());
        assert!(validate_logo(&jpeg, Some("image/pjpeg")).is_ok());
    }

    #[test]
    fn declared_type_that_disagrees_with_the_bytes_is_refused() {
        let err = validate_logo(&png_bytes(4, 4), Some("image/jpeg")).unwrap_err();
        assert_eq!(
            err,
            LogoError::TypeMismatch {
                declared: "image/jpeg".into(),
                detected: "image/png",
            }
        );
        assert_eq!(err.code(), "logo_type_mismatch");
        for declared in ["image/gif", "application/octet-stream", "text/html"] {
            assert_eq!(
                validate_logo(&jpeg_bytes(4, 4), Some(declared)).unwrap_err().code(),
                "logo_type_mismatch",
                "{declared}"
            );
        }
    }

    #[test]
    fn empty_logo_is_refused() {
        assert_eq!(validate_logo(&[], Some("image/png")), Err(LogoError::Empty));
    }

    #[test]
    fn logo_over_512_kib_is_refused_and_the_limit_itself_is_accepted() {
        let mut at_limit = png_bytes(8, 8);
        at_limit.resize(MAX_LOGO_BYTES, 0); // trailing bytes after IEND
        assert!(validate_logo(&at_limit, None).is_ok());

        let mut over = at_limit;
        over.push(0);
        assert_eq!(
            validate_logo(&over, None),
            Err(LogoError::TooLarge {
                max: 512 * 1024,
                actual: 512 * 1024 + 1,
            })
        );
    }

    #[test]
    fn dimensions_of_zero_or_over_4096_are_refused() {
        let wide = png_bytes(4097, 1);
        assert_eq!(
            validate_logo(&wide, None),
            Err(LogoError::BadDimensions {
                width: 4097,
                height: 1,
                max: 4096,
            })
        );
        assert!(validate_logo(&png_bytes(4096, 1), None).is_ok());
        for (w, h) in [(0, 10), (10, 0), (u32::MAX, 1)] {
            let png = with_png_dimensions(png_bytes(1, 1), w, h);
            assert_eq!(
                validate_logo(&png, None).unwrap_err().code(),
                "logo_bad_dimensions",
                "{w}x{h}"
            );
        }
        for (w, h) in [(0, 10), (10, 0), (5000, 10), (10, 4097)] {
            assert_eq!(
                validate_logo(&jpeg_bytes(w, h), None).unwrap_err().code(),
                "logo_bad_dimensions",
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn bytes_that_are_neither_png_nor_jpeg_are_unsupported() {
        for bytes in [
            &b"GIF89a\x01\x00\x01\x00"[..],
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            b"\x00\x01\x02\x03 garbage",
            b"\x89PNG",
            b"\xFF\xD8",
        ] {
            assert_eq!(
                validate_logo(bytes, Some("image/png")),
                Err(LogoError::UnsupportedType),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn truncated_or_garbled_png_header_is_unreadable() {
        let good = png_bytes(2, 2);
        let mut flipped_width = good.clone();
        flipped_width[19] ^= 0x01; // CRC no longer matches
        let mut not_ihdr = good.clone();
        not_ihdr[12..16].copy_from_slice(b"IDAT");
        let mut bad_depth = good.clone();
        bad_depth[24] = 3;
        for bytes in [
            &good[..8],
            &good[..20],
            &good[..32],
            &flipped_width[..],
            &not_ihdr[..],
            &bad_depth[..],
        ] {
            assert_eq!(validate_logo(bytes, None), Err(LogoError::Unreadable));
        }
    }

    #[test]
    fn truncated_or_garbled_jpeg_header_is_unreadable() {
        let good = jpeg_bytes(100, 100);
        let sof_at = 2 + 4 + APP0_JFIF.len();
        let cases = [
            // cut inside APP0, inside the SOF length, inside the SOF body
            good[..10].to_vec(),
            good[..sof_at + 3].to_vec(),
            good[..sof_at + 8].to_vec(),
            // no frame header before the image ends or a scan starts
            jpeg_with(&[]),
            jpeg_with(&[segment(0xDA, &[1, 1, 0, 0, 63, 0])]),
            // a segment length that points past the end
            jpeg_with(&[vec![0xFF, 0xDB, 0xFF, 0xF0, 0, 0]]),
            // a segment length below its own two bytes
            jpeg_with(&[vec![0xFF, 0xDB, 0x00, 0x01]]),
            // not a marker where one must be
            jpeg_with(&[vec![0x12, 0x34]]),
            // a frame with no components, or a length not matching them
            jpeg_with(&[segment(0xC0, &[8, 0, 10, 0, 10, 0])]),
            jpeg_with(&[segment(0xC0, &[8, 0, 10, 0, 10, 3, 1, 0x11, 0])]),
        ];
        for bytes in cases {
            assert_eq!(validate_logo(&bytes, None), Err(LogoError::Unreadable), "{bytes:02x?}");
        }
    }

    #[test]
    fn every_logo_error_has_its_own_stable_code() {
        let errors = [
            LogoError::Empty,
            LogoError::TooLarge { max: 1, actual: 2 },
            LogoError::UnsupportedType,
            LogoError::TypeMismatch {
                declared: "x".into(),
                detected: PNG,
            },
            LogoError::Unreadable,
            LogoError::BadDimensions {
                width: 0,
                height: 0,
                max: 1,
            },
        ];
        let codes: Vec<_> = errors.iter().map(LogoError::code).collect();
        assert_eq!(
            codes,
            [
                "logo_empty",
                "logo_too_large",
                "logo_unsupported_type",
                "logo_type_mismatch",
                "logo_unreadable",
                "logo_bad_dimensions",
            ]
        );
    }

    /// Decodes a grayscale PNG into (side, pixels), checking it is square.
    fn decode_gray_png(bytes: &[u8]) -> (usize, Vec<u8>) {
        let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        assert_eq!(info.width, info.height);
        pixels.truncate(info.buffer_size());
        (info.width as usize, pixels)
    }

    /// Reads every QR code in a grayscale image.
    fn read_qr(side: usize, pixels: &[u8]) -> Vec<String> {
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| pixels[y * side + x]);
        image
            .detect_grids()
            .into_iter()
            .map(|grid| grid.decode().unwrap().1)
            .collect()
    }

    #[test]
    fn qr_png_is_a_square_grayscale_png_with_a_quiet_zone() {
        // Ten bytes at level M fit version 1: 21 modules.
        let png = qr_png("MEDLEDGER!", 4).unwrap();
        assert!(png.starts_with(&PNG_SIGNATURE));
        let (side, pixels) = decode_gray_png(&png);
        assert_eq!(side, (21 + 8) * 4);
        assert!(pixels.iter().all(|&p| p == 0x00 || p == 0xFF));
        // Four white modules all round, then the top-left finder pattern's
        // black corner.
        let quiet = 4 * 4;
        for i in 0..side {
            for j in 0..quiet {
                assert_eq!(pixels[j * side + i], 0xFF);
                assert_eq!(pixels[i * side + j], 0xFF);
                assert_eq!(pixels[(side - 1 - j) * side + i], 0xFF);
                assert_eq!(pixels[i * side + (side - 1 - j)], 0xFF);
            }
        }
        assert_eq!(pixels[quiet * side + quiet], 0x00);
    }

    #[test]
    fn qr_png_decodes_back_to_the_original_text() {
        let long = "https://medledger.example/d/".to_string() + &"x".repeat(900);
        for (data, module_px) in [
            ("https://medledger.example/d/0190a1b2c3d4", 4),
            ("患者 ID: 42 — réf. Ü", 3),
            (long.as_str(), 2),
        ] {
            let (side, pixels) = decode_gray_png(&qr_png(data, module_px).unwrap());
            assert_eq!(read_qr(side, &pixels), [data]);
        }
    }

    #[test]
    fn qr_svg_is_an_svg_document_black_on_white() {
        let svg = qr_svg("https://medledger.example/d/1").unwrap();
        assert!(svg.contains("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(r##"fill="#000000""##));
        assert!(svg.contains(r##"fill="#ffffff""##));
    }

    #[test]
    fn qr_data_over_1024_bytes_is_refused() {
        let at_limit = "a".repeat(MAX_QR_DATA_BYTES);
        assert!(qr_svg(&at_limit).is_ok());
        assert!(qr_png(&at_limit, 1).is_ok());

        let over = "a".repeat(MAX_QR_DATA_BYTES + 1);
        for err in [qr_svg(&over).unwrap_err(), qr_png(&over, 1).unwrap_err()] {
            assert!(matches!(
                err,
                QrError::TooLong {
                    max: 1024,
                    actual: 1025
                }
            ));
            assert_eq!(err.code(), "qr_data_too_long");
        }
        // Bytes, not characters: 342 three-byte characters are 1026 bytes.
        assert!(matches!(
            qr_png(&"患".repeat(342), 1),
            Err(QrError::TooLong { actual: 1026, .. })
        ));
    }

    #[test]
    fn qr_module_size_must_be_1_to_32_pixels() {
        for module_px in [0, MAX_QR_MODULE_PX + 1] {
            let err = qr_png("x", module_px).unwrap_err();
            assert_eq!(err.code(), "qr_bad_module_size", "{module_px}");
        }
        let (side, _) = decode_gray_png(&qr_png("x", MAX_QR_MODULE_PX).unwrap());
        assert_eq!(side, (21 + 8) * 32);
    }
}
