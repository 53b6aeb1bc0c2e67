//! 12-bit JPEG (ISO 10918-1 extended sequential DCT with 12-bit sample precision, DICOM
//! 1.2.840.10008.1.2.4.51 "process 2 & 4"), which the pure-Rust decoders dicom-pixeldata uses
//! refuse. Decoded by libjpeg-turbo 3.x's TurboJPEG API (`tj3Decompress12`), linked statically
//! from the source turbojpeg-sys bundles.
//!
//! This is the only `unsafe` code of the crate: a handle that is always destroyed, input and
//! output buffers whose sizes are checked before libjpeg-turbo sees them, and libjpeg-turbo's
//! own limits (pixels, memory) set before the header is read. Errors (libjpeg's `longjmp`)
//! stay inside the C library and come back as a return code. Warnings, such as a truncated
//! entropy-coded segment, are failures too: a medical image is shown whole or not at all.

use std::ffi::{c_int, CStr};

use turbojpeg_sys as tj;

/// A decoded frame: samples as decoded (0..=4095 for 12-bit), one per pixel for greyscale,
/// interleaved RGB for colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decoded {
    pub width: u32,
    pub height: u32,
    /// 1 (greyscale) or 3 (RGB, converted from YCbCr when the codestream says so).
    pub components: u8,
    pub samples: Vec<u16>,
}

/// Largest working memory libjpeg-turbo may allocate for one frame, in MB (a 64 Mpx 12-bit
/// colour frame needs about 400 MB of output alone; the output is allocated by us).
const MAX_MEMORY_MB: c_int = 256;

/// The sample precision of a JPEG codestream: P of the first SOF marker, or None when no
/// frame header comes before the first scan (or the bytes are not JPEG).
pub(super) fn sample_precision(jpeg: &[u8]) -> Option<u8> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while *jpeg.get(i)? != 0xFF {
            i += 1;
        }
        while *jpeg.get(i)? == 0xFF {
            i += 1;
        }
        let marker = *jpeg.get(i)?;
        i += 1;
        match marker {
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): Lf (2 bytes), then P.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => return jpeg.get(i + 2).copied(),
            0xDA | 0xD9 => return None,
            // Standalone markers: TEM, RST0..7.
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let length = u16::from_be_bytes([*jpeg.get(i)?, *jpeg.get(i + 1)?]);
                i += usize::from(length);
            }
        }
    }
}

/// A TurboJPEG decompressor, destroyed on drop.
struct Handle(tj::tjhandle);

impl Handle {
    fn new() -> Result<Handle, String> {
        // SAFETY: tj3Init has no preconditions; it returns null on failure.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if handle.is_null() {
            return Err("libjpeg-turbo could not create a decompressor".into());
        }
        Ok(Handle(handle))
    }

    fn set(&self, param: tj::TJPARAM, value: c_int) -> Result<(), String> {
        // SAFETY: self.0 is a live handle.
        if unsafe { tj::tj3Set(self.0, param as c_int, value) } != 0 {
            return Err(self.error());
        }
        Ok(())
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: self.0 is a live handle.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }

    /// The message of the last error on this handle.
    fn error(&self) -> String {
        // SAFETY: self.0 is a live handle; tj3GetErrorStr returns a NUL-terminated string
        // owned by the handle (or by the library), valid until the next call on it.
        let message = unsafe { tj::tj3GetErrorStr(self.0) };
        if message.is_null() {
            return "libjpeg-turbo failed".into();
        }
        // SAFETY: non-null and NUL-terminated (above); copied out at once.
        unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: self.0 came from tj3Init and is destroyed exactly once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

/// Decodes a 9–12-bit DCT JPEG codestream (one frame) that must be `expected` (width,
/// height) pixels, as its data set says: a codestream declaring anything else is refused
/// after its header is read, before anything its size implies is allocated.
pub(super) fn decode(jpeg: &[u8], expected: (u32, u32)) -> Result<Decoded, String> {
    let handle = Handle::new()?;
    handle.set(tj::TJPARAM_TJPARAM_STOPONWARNING, 1)?;
    let pixels = u64::from(expected.0) * u64::from(expected.1);
    handle.set(
        tj::TJPARAM_TJPARAM_MAXPIXELS,
        c_int::try_from(pixels.max(1)).unwrap_or(c_int::MAX),
    )?;
    handle.set(tj::TJPARAM_TJPARAM_MAXMEMORY, MAX_MEMORY_MB)?;
    // Progressive 12-bit JPEG is legal (DICOM retired it); bound its scans as libjpeg-turbo's
    // own tools do against scan-flooding inputs.
    handle.set(tj::TJPARAM_TJPARAM_SCANLIMIT, 500)?;
    // SAFETY: the pointer and length describe `jpeg`, borrowed for the call.
    if unsafe { tj::tj3DecompressHeader(handle.0, jpeg.as_ptr(), jpeg.len() as tj::size_t) } != 0 {
        return Err(handle.error());
    }
    let precision = handle.get(tj::TJPARAM_TJPARAM_PRECISION);
    if !(9..=12).contains(&precision) || handle.get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1 {
        return Err(format!("not a 9 to 12-bit DCT JPEG (precision {precision})"));
    }
    let (width, height) = (
        handle.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        handle.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(format!("JPEG frame of {width}×{height} pixels"));
    };
    if (width, height) != expected {
        return Err(format!(
            "the codestream declares {width}×{height} pixels, the data set {}×{}",
            expected.0, expected.1
        ));
    }
    let (format, components) = match handle.get(tj::TJPARAM_TJPARAM_COLORSPACE) as tj::TJCS {
        tj::TJCS_TJCS_GRAY => (tj::TJPF_TJPF_GRAY, 1u8),
        tj::TJCS_TJCS_RGB | tj::TJCS_TJCS_YCbCr => (tj::TJPF_TJPF_RGB, 3u8),
        other => {
            return Err(format!(
                "JPEG colour space {other} (CMYK/YCCK) is not an image we render"
            ))
        }
    };
    let len = width as usize * height as usize * usize::from(components);
    let mut buffer: Vec<i16> = vec![0; len];
    // SAFETY: `buffer` holds width × height × components samples, which is what a pitch of 0
    // (unpadded rows) with this pixel format writes; `jpeg` is borrowed for the call.
    let status = unsafe {
        tj::tj3Decompress12(
            handle.0,
            jpeg.as_ptr(),
            jpeg.len() as tj::size_t,
            buffer.as_mut_ptr(),
            0,
            format as c_int,
        )
    };
    if status != 0 {
        return Err(handle.error());
    }
    let max = (1i16 << precision) - 1;
    Ok(Decoded {
        width,
        height,
        components,
        samples: buffer.into_iter().map(|s| s.clamp(0, max) as u16).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_is_read_from_the_frame_header() {
        // SOI, APP0 (length 4), SOF1 with P = 12, then SOS.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xFF, 0xC1, 0x00, 0x0B, 12, 0, 1, 0, 1, 1, 1, 0x11,
            0, 0xFF, 0xDA,
        ];
        assert_eq!(sample_precision(&jpeg), Some(12));
        let mut eight = jpeg;
        eight[13] = 8;
        assert_eq!(sample_precision(&eight), Some(8));
        // No frame header before the scan, truncated, or not JPEG at all.
        assert_eq!(sample_precision(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
        assert_eq!(sample_precision(&jpeg[..12]), None);
        assert_eq!(sample_precision(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF]), None);
        assert_eq!(sample_precision(b"not a jpeg"), None);
        assert_eq!(sample_precision(&[]), None);
    }

    /// A 12-bit JPEG made by libjpeg-turbo's own encoder (dcmtk makes no 12-bit colour).
    fn encode_12_bit(
        samples: &[i16],
        width: c_int,
        height: c_int,
        format: tj::TJPF,
        subsampling: tj::TJSAMP,
    ) -> Vec<u8> {
        // SAFETY: a compressor handle used and destroyed here; `samples` holds width × height
        // pixels of `format`; libjpeg-turbo allocates the output, which is copied then freed.
        unsafe {
            let handle = tj::tj3Init(tj::TJINIT_TJINIT_COMPRESS as c_int);
            assert!(!handle.is_null());
            assert_eq!(tj::tj3Set(handle, tj::TJPARAM_TJPARAM_PRECISION as c_int, 12), 0);
            assert_eq!(tj::tj3Set(handle, tj::TJPARAM_TJPARAM_QUALITY as c_int, 95), 0);
            assert_eq!(tj::tj3Set(handle, tj::TJPARAM_TJPARAM_SUBSAMP as c_int, subsampling), 0);
            let mut out: *mut u8 = std::ptr::null_mut();
            let mut size: tj::size_t = 0;
            let status = tj::tj3Compress12(handle, samples.as_ptr(), width, 0, height, format, &mut out, &mut size);
            assert_eq!(status, 0);
            let jpeg = std::slice::from_raw_parts(out, size as usize).to_vec();
            tj::tj3Free(out.cast());
            tj::tj3Destroy(handle);
            jpeg
        }
    }

    #[test]
    fn twelve_bit_grey_and_colour_round_trip() {
        let (w, h) = (37usize, 21usize);
        let grey: Vec<i16> = (0..w * h).map(|i| ((i % w) * 4095 / (w - 1)) as i16).collect();
        let jpeg = encode_12_bit(
            &grey,
            w as c_int,
            h as c_int,
            tj::TJPF_TJPF_GRAY,
            tj::TJSAMP_TJSAMP_GRAY,
        );
        assert_eq!(sample_precision(&jpeg), Some(12));
        let decoded = decode(&jpeg, (37, 21)).unwrap();
        assert_eq!((decoded.width, decoded.height, decoded.components), (37, 21, 1));
        let worst = decoded
            .samples
            .iter()
            .zip(&grey)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max();
        assert!(worst.unwrap() <= 16, "{worst:?}");

        // Colour: stored as YCbCr 4:4:4, decoded to interleaved RGB.
        let rgb: Vec<i16> = (0..w * h)
            .flat_map(|i| {
                [
                    ((i % w) * 4095 / (w - 1)) as i16,
                    ((i / w) * 4095 / (h - 1)) as i16,
                    2048,
                ]
            })
            .collect();
        let jpeg = encode_12_bit(&rgb, w as c_int, h as c_int, tj::TJPF_TJPF_RGB, tj::TJSAMP_TJSAMP_444);
        let decoded = decode(&jpeg, (37, 21)).unwrap();
        assert_eq!((decoded.width, decoded.height, decoded.components), (37, 21, 3));
        assert_eq!(decoded.samples.len(), w * h * 3);
        let worst = decoded
            .samples
            .iter()
            .zip(&rgb)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max();
        assert!(worst.unwrap() <= 32, "{worst:?}");

        // A codestream larger or smaller than its data set says is refused before decoding.
        for expected in [(10, 10), (37, 20), (38, 21)] {
            let e = decode(&jpeg, expected).unwrap_err();
            assert!(e.contains("pixels"), "{expected:?}: {e}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        for bytes in [
            &b""[..],
            &[0xFF, 0xD8],
            &[
                0xFF, 0xD8, 0xFF, 0xC1, 0x00, 0x0B, 12, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0,
            ],
            b"\xFF\xD8 not really",
        ] {
            assert!(decode(bytes, (1, 1)).is_err(), "{bytes:?}");
        }
    }
}
