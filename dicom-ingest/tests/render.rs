//! Rendering and frame extraction on real pixel values: generated instances (native and
//! encapsulated by our own encoders or by dcmtk / OpenJPEG tools when installed).

use std::path::Path;
use std::process::Command;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::file::ReadPreamble;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use image::{DynamicImage, GenericImageView};
use medledger_dicom_ingest::generate::{pixel_data, rle_lossless_frame};
use medledger_dicom_ingest::render::{Format, Instance, RenderError, RenderOptions, VoiFunction, Window};
use medledger_dicom_ingest::{synthetic_ct, synthetic_encapsulated, CtSpec, ImageSpec, Pattern, Photometric};

fn spec(image: ImageSpec, rows: u16, columns: u16) -> CtSpec {
    CtSpec {
        rows,
        columns,
        image,
        ..CtSpec::default()
    }
}

fn gradient(photometric: Photometric, bits_allocated: u16, signed: bool, frames: u32) -> ImageSpec {
    ImageSpec {
        photometric,
        bits_allocated,
        signed,
        frames,
        pattern: Pattern::Gradient,
    }
}

/// PS3.3 C.11.2.1.2.1, written out independently of the library.
fn linear(x: f64, c: f64, w: f64) -> u8 {
    if x <= c - 0.5 - (w - 1.0) / 2.0 {
        0
    } else if x > c - 0.5 + (w - 1.0) / 2.0 {
        255
    } else {
        (((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0).round() as u8
    }
}

fn grey(img: &DynamicImage, x: u32, y: u32) -> u8 {
    img.as_luma8().expect("grey image").get_pixel(x, y).0[0]
}

fn rgb(img: &DynamicImage, x: u32, y: u32) -> [u8; 3] {
    img.as_rgb8().expect("rgb image").get_pixel(x, y).0
}

#[test]
fn ct_gradient_with_its_own_window_and_rescale() {
    let image = gradient(Photometric::Monochrome2, 16, false, 1);
    let s = spec(image.clone(), 4, 256);
    let instance = Instance::open(&synthetic_ct(&s)).unwrap();
    assert_eq!(
        (instance.rows(), instance.columns(), instance.number_of_frames()),
        (4, 256, 1)
    );
    let shown = instance.display_image(1, None).unwrap();
    for x in [0u32, 10, 60, 64, 70, 80, 100, 255] {
        let stored = image.gradient_value(x, 256, 0);
        // Data set: slope 1, intercept -1024, window 40/400.
        let expected = linear(f64::from(stored) - 1024.0, 40.0, 400.0);
        assert_eq!(grey(&shown, x, 2), expected, "x={x} stored={stored}");
    }
    assert_eq!(grey(&shown, 0, 0), 0, "air is black");
    assert_eq!(grey(&shown, 255, 0), 255, "top of range is white");
    // Some pixel falls inside the window (a real ramp, not a threshold).
    assert!((0..256).any(|x| (1..255).contains(&grey(&shown, x, 0))));

    // A requested window replaces the data set's.
    let wide = Window::parse("1024,4096,linear").unwrap();
    let shown = instance.display_image(1, Some(wide)).unwrap();
    for x in [0u32, 128, 255] {
        let hu = f64::from(image.gradient_value(x, 256, 0)) - 1024.0;
        assert_eq!(grey(&shown, x, 1), linear(hu, 1024.0, 4096.0), "x={x}");
    }
    assert!((100..=140).contains(&grey(&shown, 128, 1)));
}

#[test]
fn monochrome1_is_inverted() {
    let m2 = Instance::open(&synthetic_ct(&spec(
        gradient(Photometric::Monochrome2, 16, false, 1),
        2,
        64,
    )))
    .unwrap();
    let m1 = Instance::open(&synthetic_ct(&spec(
        gradient(Photometric::Monochrome1, 16, false, 1),
        2,
        64,
    )))
    .unwrap();
    let w = Some(Window::parse("1024,4096,linear").unwrap());
    let (a, b) = (m2.display_image(1, w).unwrap(), m1.display_image(1, w).unwrap());
    for x in 0..64 {
        assert_eq!(grey(&a, x, 0), 255 - grey(&b, x, 0), "x={x}");
    }
    assert_eq!(grey(&b, 0, 0), 255, "lowest value is white in MONOCHROME1");
}

/// An in-memory data set built with dicom-object: signed 16-bit, slope 2, intercept -1000.
fn built(values: &[i16], rows: u16, columns: u16, extra: &[(dicom_core::Tag, VR, &str)]) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let text = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    obj.put(text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE));
    obj.put(text(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1234"));
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    obj.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(columns)));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16)));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    obj.put(text(tags::RESCALE_SLOPE, VR::DS, "2"));
    obj.put(text(tags::RESCALE_INTERCEPT, VR::DS, "-1000"));
    for (tag, vr, v) in extra {
        obj.put(text(*tag, *vr, v));
    }
    let words: Vec<u16> = values.iter().map(|v| *v as u16).collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(words.into()),
    ));
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

#[test]
fn rescale_and_signed_samples_are_applied_before_the_window() {
    // Stored -500, 0, 500, 1500 → modality -2000, -1000, 0, 2000.
    let bytes = built(&[-500, 0, 500, 1500], 2, 2, &[]);
    let instance = Instance::open(&bytes).unwrap();
    let w = Window::parse("0,4000,linear").unwrap();
    let shown = instance.display_image(1, Some(w)).unwrap();
    let expect = [-2000.0, -1000.0, 0.0, 2000.0].map(|m| linear(m, 0.0, 4000.0));
    assert_eq!(
        [
            grey(&shown, 0, 0),
            grey(&shown, 1, 0),
            grey(&shown, 0, 1),
            grey(&shown, 1, 1)
        ],
        expect
    );
    assert_eq!(expect, [0, 64, 128, 255], "hand-checked values");
    // Without a window in the data set or the request: the frame's own range.
    let auto = instance.display_image(1, None).unwrap();
    assert_eq!((grey(&auto, 0, 0), grey(&auto, 1, 1)), (0, 255));
    // The data set's window and VOI LUT function are used when present.
    let bytes = built(
        &[-500, 0, 500, 1500],
        2,
        2,
        &[
            (tags::WINDOW_CENTER, VR::DS, "0"),
            (tags::WINDOW_WIDTH, VR::DS, "2000"),
            (tags::VOILUT_FUNCTION, VR::CS, "SIGMOID"),
        ],
    );
    let shown = Instance::open(&bytes).unwrap().display_image(1, None).unwrap();
    let sigmoid = |x: f64| (255.0 / (1.0 + (-4.0 * x / 2000.0f64).exp())).round() as u8;
    assert_eq!(grey(&shown, 0, 1), 128);
    assert_eq!(grey(&shown, 1, 0), sigmoid(-1000.0));
    assert_eq!(grey(&shown, 1, 1), sigmoid(2000.0));
}

#[test]
fn eight_bit_signed_and_unsigned() {
    for signed in [false, true] {
        let image = gradient(Photometric::Monochrome2, 8, signed, 1);
        let instance = Instance::open(&synthetic_ct(&spec(image.clone(), 2, 256))).unwrap();
        // intercept -1024 from the CT header: modality = stored - 1024.
        let (lo, hi) = (
            f64::from(image.gradient_value(0, 256, 0)) - 1024.0,
            f64::from(image.gradient_value(255, 256, 0)) - 1024.0,
        );
        let w = Window {
            center: (lo + hi) / 2.0,
            width: hi - lo,
            function: VoiFunction::Linear,
        };
        let shown = instance.display_image(1, Some(w)).unwrap();
        for x in [0u32, 1, 77, 128, 200, 255] {
            let m = f64::from(image.gradient_value(x, 256, 0)) - 1024.0;
            assert_eq!(
                grey(&shown, x, 1),
                linear(m, w.center, w.width),
                "signed={signed} x={x}"
            );
        }
        assert_eq!(grey(&shown, 0, 0), 0);
        assert_eq!(grey(&shown, 255, 0), 255);
    }
}

#[test]
fn rgb_passes_through_and_ybr_full_is_converted() {
    let image = gradient(Photometric::Rgb, 8, false, 1);
    let instance = Instance::open(&synthetic_ct(&spec(image.clone(), 32, 64))).unwrap();
    let shown = instance
        .display_image(1, Some(Window::parse("0,1,linear").unwrap()))
        .unwrap();
    for (x, y) in [(0, 0), (63, 31), (20, 10), (40, 5)] {
        assert_eq!(
            rgb(&shown, x, y),
            image.gradient_rgb(x, y, 64, 32, 0),
            "window ignored for colour"
        );
    }
    let ybr = gradient(Photometric::YbrFull, 8, false, 1);
    let shown = Instance::open(&synthetic_ct(&spec(ybr.clone(), 32, 64)))
        .unwrap()
        .display_image(1, None)
        .unwrap();
    for (x, y) in [(0, 0), (63, 31), (20, 10), (40, 5)] {
        let got = rgb(&shown, x, y);
        let want = ybr.gradient_rgb(x, y, 64, 32, 0);
        for c in 0..3 {
            assert!(got[c].abs_diff(want[c]) <= 2, "({x},{y}) {got:?} vs {want:?}");
        }
    }
}

#[test]
fn palette_colour_looks_up_its_tables() {
    let image = gradient(Photometric::PaletteColor, 8, false, 1);
    let shown = Instance::open(&synthetic_ct(&spec(image.clone(), 2, 256)))
        .unwrap()
        .display_image(1, None)
        .unwrap();
    for x in [0u32, 1, 100, 255] {
        let i = image.gradient_value(x, 256, 0) as u8;
        assert_eq!(rgb(&shown, x, 1), [i, 255 - i, 0], "x={x}");
    }
}

#[test]
fn multi_frame_frames_differ_and_out_of_range_is_an_error() {
    let image = gradient(Photometric::Monochrome2, 16, false, 3);
    let s = spec(image.clone(), 2, 128);
    let bytes = synthetic_ct(&s);
    let instance = Instance::open(&bytes).unwrap();
    assert_eq!(instance.number_of_frames(), 3);
    let w = Some(Window::parse("1024,4096,linear").unwrap());
    let f1 = instance.display_image(1, w).unwrap();
    let f2 = instance.display_image(2, w).unwrap();
    let f3 = instance.display_image(3, w).unwrap();
    assert_ne!(f1.as_bytes(), f2.as_bytes());
    assert_eq!(f1.as_bytes(), f3.as_bytes());
    assert_eq!(grey(&f1, 0, 0), grey(&f2, 127, 0), "frame 2 runs the other way");
    assert_eq!(grey(&f1, 0, 0), 0);
    for bad in [0, 4] {
        assert_eq!(
            instance.display_image(bad, None).unwrap_err(),
            RenderError::FrameOutOfRange { frame: bad, frames: 3 }
        );
        assert_eq!(instance.frame(bad).unwrap_err().code(), "frame_out_of_range");
        assert_eq!(
            instance.render(bad, &RenderOptions::default()).unwrap_err().code(),
            "frame_out_of_range"
        );
    }
    // Frames as stored: raw little-endian slices of the pixel data.
    let all = pixel_data(&s);
    let frame_len = 2 * 128 * 2;
    for n in 1..=3u32 {
        let f = instance.frame(n).unwrap();
        assert_eq!(
            f.media_type,
            "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
        );
        assert_eq!(f.bytes, all[(n as usize - 1) * frame_len..n as usize * frame_len]);
    }
}

#[test]
fn rendered_jpeg_and_png_fit_the_viewport() {
    let image = gradient(Photometric::Monochrome2, 16, false, 1);
    let instance = Instance::open(&synthetic_ct(&spec(image, 256, 512))).unwrap();
    let w = Some(Window::parse("1024,4096,linear").unwrap());
    // PNG at full size is lossless: exactly the display pixels.
    let png = instance
        .render(
            1,
            &RenderOptions {
                window: w,
                format: Format::Png,
                ..RenderOptions::default()
            },
        )
        .unwrap();
    assert_eq!((png.width, png.height), (512, 256));
    let decoded = image::load_from_memory_with_format(&png.bytes, image::ImageFormat::Png).unwrap();
    assert_eq!(
        decoded.to_luma8().as_raw(),
        instance.display_image(1, w).unwrap().as_bytes()
    );
    // JPEG into a 128×128 viewport keeps the 2:1 aspect.
    let jpeg = instance
        .render(
            1,
            &RenderOptions {
                window: w,
                viewport: Some((128, 128)),
                quality: 80,
                ..RenderOptions::default()
            },
        )
        .unwrap();
    assert_eq!(&jpeg.bytes[..2], &[0xFF, 0xD8]);
    let decoded = image::load_from_memory_with_format(&jpeg.bytes, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(decoded.dimensions(), (128, 64));
    // Still a left-to-right ramp after scaling and compression.
    let g = decoded.to_luma8();
    assert!(g.get_pixel(2, 32).0[0] < 20 && g.get_pixel(125, 32).0[0] > 235);
    // Lower quality, smaller file.
    let small = instance
        .render(
            1,
            &RenderOptions {
                window: w,
                viewport: Some((128, 128)),
                quality: 10,
                ..RenderOptions::default()
            },
        )
        .unwrap();
    assert!(small.bytes.len() < jpeg.bytes.len());
    for bad in [(0, 10), (10, 0), (4097, 10)] {
        let e = instance
            .render(
                1,
                &RenderOptions {
                    viewport: Some(bad),
                    ..RenderOptions::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.code(), "invalid_parameter");
    }
}

#[test]
fn not_an_image_and_unsupported_transfer_syntax() {
    let no_pixels = synthetic_ct(&CtSpec {
        rows: 8,
        columns: 8,
        omitted: vec![tags::PIXEL_DATA],
        ..CtSpec::default()
    });
    assert_eq!(Instance::open(&no_pixels).unwrap_err().code(), "not_an_image");
    assert_eq!(Instance::open(b"garbage").unwrap_err().code(), "decode_failed");
    // MPEG-2 video: framed, but no decoder.
    let s = spec(gradient(Photometric::Monochrome2, 8, false, 1), 8, 8);
    let video = synthetic_encapsulated(&s, "1.2.840.10008.1.2.4.100", &[vec![vec![0, 0, 1, 0xB3]]]);
    let instance = Instance::open(&video).unwrap();
    assert_eq!(
        instance.render(1, &RenderOptions::default()).unwrap_err().code(),
        "unsupported_transfer_syntax"
    );
    assert_eq!(instance.frame(1).unwrap_err().code(), "unsupported_transfer_syntax");
    // A JPEG that is not one.
    let broken = synthetic_encapsulated(&s, "1.2.840.10008.1.2.4.50", &[vec![vec![0xFF, 0xD8, 0xFF, 0x00]]]);
    let e = Instance::open(&broken)
        .unwrap()
        .render(1, &RenderOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), "decode_failed", "{e}");
}

/// 8-bit grey gradient frames encoded as baseline JPEG by the `image` crate's encoder.
#[test]
fn jpeg_baseline_frames_decode_and_are_served_as_stored() {
    let image = gradient(Photometric::Monochrome2, 8, false, 2);
    let s = spec(image.clone(), 16, 128);
    let native = Instance::open(&synthetic_ct(&s)).unwrap();
    let w = Some(Window::parse("-896,256,linear").unwrap()); // stored 0..255 → modality -1024..-769
    let mut frames = Vec::new();
    for f in 1..=2 {
        let grey = native.frame(f).unwrap().bytes;
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
            .encode(&grey, 128, 16, image::ExtendedColorType::L8)
            .unwrap();
        frames.push(vec![jpeg]);
    }
    let encapsulated = synthetic_encapsulated(&s, "1.2.840.10008.1.2.4.50", &frames);
    let instance = Instance::open(&encapsulated).unwrap();
    assert_eq!(instance.number_of_frames(), 2);
    for f in 1..=2u32 {
        let stored = instance.frame(f).unwrap();
        assert_eq!(stored.media_type, "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50");
        assert_eq!(
            &stored.bytes[..stored.bytes.len() - 1],
            &frames[f as usize - 1][0][..stored.bytes.len() - 1]
        );
        let got = instance.display_image(f, w).unwrap();
        let want = native.display_image(f, w).unwrap();
        let worst = got
            .as_bytes()
            .iter()
            .zip(want.as_bytes())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 4, "frame {f}: JPEG q100 within 4 grey levels, got {worst}");
    }
    assert_eq!(instance.frame(3).unwrap_err().code(), "frame_out_of_range");
}

// ---- external encoders (dcmtk, OpenJPEG) ----

/// The path of an installed tool, or None (skip) — except under CI=true, where a missing
/// tool fails the test.
fn tool(name: &str) -> Option<String> {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is required under CI (apt-get install dcmtk libopenjp2-tools)"
        );
        eprintln!("skipping: {name} is not installed");
    }
    found
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Encodes `native` with a dcmtk tool and returns the encoded file.
fn dcmtk(tool_name: &str, flags: &[&str], native: &[u8], dir: &Path) -> Option<Vec<u8>> {
    let tool_path = tool(tool_name)?;
    let input = dir.join(format!("{tool_name}-in.dcm"));
    let output = dir.join(format!("{tool_name}-out.dcm"));
    std::fs::write(&input, native).unwrap();
    let mut args: Vec<&str> = flags.to_vec();
    args.push(input.to_str().unwrap());
    args.push(output.to_str().unwrap());
    run(&tool_path, &args);
    Some(std::fs::read(output).unwrap())
}

fn assert_same_display(a: &Instance, b: &Instance, frames: u32, window: Option<Window>) {
    for f in 1..=frames {
        assert_eq!(
            a.display_image(f, window).unwrap().as_bytes(),
            b.display_image(f, window).unwrap().as_bytes(),
            "frame {f} decodes losslessly"
        );
    }
}

#[test]
fn dcmtk_rle_jpeg_lossless_and_jpeg_ls_decode_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(gradient(Photometric::Monochrome2, 16, false, 2), 32, 64);
    let bytes = synthetic_ct(&s);
    let native = Instance::open(&bytes).unwrap();
    let w = Some(Window::parse("1024,4096,linear").unwrap());
    let cases: [(&str, &[&str], &str, &str); 4] = [
        ("dcmcrle", &[], "1.2.840.10008.1.2.5", "application/octet-stream"),
        ("dcmcjpeg", &["+e1"], "1.2.840.10008.1.2.4.70", "image/jpeg"),
        ("dcmcjpls", &["+el"], "1.2.840.10008.1.2.4.80", "image/jls"),
        ("dcmcjpls", &["+en", "+md", "2"], "1.2.840.10008.1.2.4.81", "image/jls"),
    ];
    for (name, flags, ts, media) in cases {
        let Some(encoded) = dcmtk(name, flags, &bytes, dir.path()) else {
            continue;
        };
        let instance = Instance::open(&encoded).unwrap();
        assert_eq!(instance.transfer_syntax(), ts, "{name} {flags:?}");
        if !ts.ends_with(".81") {
            // Decoded to native on request: the original frame bytes.
            for f in 1..=2 {
                assert_eq!(
                    instance.frame_native(f).unwrap(),
                    native.frame(f).unwrap(),
                    "{ts} frame {f}"
                );
            }
        }
        assert!(instance.frame(2).unwrap().media_type.starts_with(media));
        if ts.ends_with(".81") {
            // Near-lossless: every sample within the allowed error (2 stored values).
            for f in 1..=2 {
                let got = instance.display_image(f, w).unwrap();
                let want = native.display_image(f, w).unwrap();
                let worst = got
                    .as_bytes()
                    .iter()
                    .zip(want.as_bytes())
                    .map(|(a, b)| a.abs_diff(*b))
                    .max()
                    .unwrap();
                assert!(worst <= 1, "JPEG-LS near-lossless off by {worst}");
            }
        } else {
            assert_same_display(&native, &instance, 2, w);
        }
    }
    // RLE of colour (YBR_FULL kept by the RLE codec, converted by us).
    let colour = spec(gradient(Photometric::YbrFull, 8, false, 1), 16, 32);
    let colour_bytes = synthetic_ct(&colour);
    if let Some(encoded) = dcmtk("dcmcrle", &[], &colour_bytes, dir.path()) {
        assert_same_display(
            &Instance::open(&colour_bytes).unwrap(),
            &Instance::open(&encoded).unwrap(),
            1,
            None,
        );
    }
}

#[test]
fn dcmtk_jpeg_baseline_of_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let image = gradient(Photometric::Rgb, 8, false, 1);
    let s = spec(image.clone(), 32, 64);
    if let Some(encoded) = dcmtk("dcmcjpeg", &["+eb", "+q", "95"], &synthetic_ct(&s), dir.path()) {
        let instance = Instance::open(&encoded).unwrap();
        assert_eq!(instance.transfer_syntax(), "1.2.840.10008.1.2.4.50");
        let stored = instance.frame(1).unwrap();
        assert_eq!(&stored.bytes[..2], &[0xFF, 0xD8]);
        let shown = instance.display_image(1, None).unwrap();
        for (x, y) in [(0, 0), (63, 31), (32, 16)] {
            let got = rgb(&shown, x, y);
            let want = image.gradient_rgb(x, y, 64, 32, 0);
            for c in 0..3 {
                assert!(got[c].abs_diff(want[c]) <= 12, "({x},{y}) {got:?} vs {want:?}");
            }
        }
    }
}

/// The sample precision P of a JPEG codestream's first SOF marker, read independently of
/// the decoder.
fn jpeg_precision(jpeg: &[u8]) -> u8 {
    let at = jpeg
        .windows(2)
        .position(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF))
        .expect("a SOF marker");
    jpeg[at + 4]
}

/// 16-bit little-endian samples.
fn words(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(2)
        .map(|c| i32::from(u16::from_le_bytes([c[0], c[1]])))
        .collect()
}

/// Modality values (Rescale Slope and Intercept applied) of 16-bit unsigned samples: dcmtk's
/// lossy encoders re-map the stored values of a CT and move Rescale Intercept to match.
fn modality_values(part10: &[u8], samples: &[u8]) -> Vec<i32> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(part10)
        .unwrap();
    let number = |tag| obj.element(tag).unwrap().to_float64().unwrap();
    let (slope, intercept) = (number(tags::RESCALE_SLOPE), number(tags::RESCALE_INTERCEPT));
    words(samples)
        .into_iter()
        .map(|v| (f64::from(v) * slope + intercept).round() as i32)
        .collect()
}

/// (largest, mean) absolute difference of two sample lists of the same length.
fn error(a: &[i32], b: &[i32]) -> (i32, f64) {
    assert_eq!(a.len(), b.len());
    let diffs: Vec<i32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    (
        max,
        diffs.iter().map(|d| f64::from(*d)).sum::<f64>() / diffs.len() as f64,
    )
}

#[test]
fn dcmtk_12_bit_jpeg_extended_decodes_within_lossy_bounds_and_like_dcmtk() {
    let dir = tempfile::tempdir().unwrap();
    // A 12-bit CT (the disc with its ripple, 0..=4095 stored), three frames, sides that are
    // not multiples of the 8×8 block.
    let image = ImageSpec {
        frames: 3,
        ..ImageSpec::default()
    };
    let s = spec(image, 90, 100);
    let original = synthetic_ct(&s);
    let native = Instance::open(&original).unwrap();
    let Some(encoded) = dcmtk("dcmcjpeg", &["+ee"], &original, dir.path()) else {
        return;
    };
    let instance = Instance::open(&encoded).unwrap();
    assert_eq!(instance.transfer_syntax(), "1.2.840.10008.1.2.4.51");
    assert_eq!(instance.number_of_frames(), 3);
    // dcmtk's own decoder (IJG libjpeg 12-bit) of the same codestreams.
    let decompressed = dcmtk("dcmdjpeg", &[], &encoded, dir.path()).unwrap();
    let dcmtk_decoded = Instance::open(&decompressed).unwrap();
    let window = Some(Window::parse("40,400,linear").unwrap());
    for f in 1..=3 {
        let stored = instance.frame(f).unwrap();
        assert_eq!(stored.media_type, "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.51");
        assert_eq!(jpeg_precision(&stored.bytes), 12, "frame {f} is a 12-bit codestream");

        let ours = modality_values(&encoded, &instance.frame_native(f).unwrap().bytes);
        let truth = modality_values(&original, &native.frame(f).unwrap().bytes);
        assert_eq!(ours.len(), 90 * 100);
        let (lo, hi) = (truth.iter().min().unwrap(), truth.iter().max().unwrap());
        assert!(hi - lo > 255, "the source uses more than 8 bits ({lo}..={hi} HU)");
        let (max, mean) = error(&ours, &truth);
        eprintln!("frame {f}: against the original, max {max}, mean {mean:.3}");
        assert!(max <= 32 && mean <= 2.0, "frame {f}: max {max}, mean {mean}");

        let theirs = modality_values(&decompressed, &dcmtk_decoded.frame(f).unwrap().bytes);
        let (max, mean) = error(&ours, &theirs);
        eprintln!("frame {f}: against dcmdjpeg, max {max}, mean {mean:.3}");
        assert!(max <= 1 && mean <= 0.01, "frame {f}: max {max}, mean {mean}");

        // Rendered like dcmdjpeg's pixels (same window, same rescale).
        for w in [window, None] {
            let a = instance.display_image(f, w).unwrap();
            let b = dcmtk_decoded.display_image(f, w).unwrap();
            let worst = a
                .as_bytes()
                .iter()
                .zip(b.as_bytes())
                .map(|(x, y)| x.abs_diff(*y))
                .max()
                .unwrap();
            assert!(worst <= 1, "frame {f} window {w:?}: off by {worst}");
        }
    }
    let rendered = instance.render(2, &RenderOptions::default()).unwrap();
    assert_eq!((rendered.width, rendered.height), (100, 90));
    assert!(image::load_from_memory(&rendered.bytes).is_ok());
    assert_eq!(
        instance.frame_native(4).unwrap_err().code(),
        "frame_out_of_range",
        "frame numbers are still checked"
    );
}

#[test]
fn twelve_bit_frames_in_many_fragments_or_labelled_baseline_decode_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let image = ImageSpec {
        frames: 2,
        ..ImageSpec::default()
    };
    let s = spec(image, 64, 96);
    let original = synthetic_ct(&s);
    let Some(whole) = dcmtk("dcmcjpeg", &["+ee"], &original, dir.path()) else {
        return;
    };
    let whole = Instance::open(&whole).unwrap();
    // Fragments of at most 1 KB and an empty basic offset table: frames are found by their
    // SOI markers and their fragments joined.
    let split = dcmtk("dcmcjpeg", &["+ee", "+fs", "1", "-ot"], &original, dir.path()).unwrap();
    let split = Instance::open(&split).unwrap();
    // The same codestreams under the baseline transfer syntax (as some archives mislabel
    // them): the sample precision, not the label, picks the decoder.
    let codestreams: Vec<Vec<u8>> = (1..=2).map(|f| whole.frame(f).unwrap().bytes).collect();
    assert!(codestreams.iter().all(|c| c.len() > 1024), "each frame spans fragments");
    let baseline = synthetic_encapsulated(
        &s,
        "1.2.840.10008.1.2.4.50",
        &codestreams.iter().map(|c| vec![c.clone()]).collect::<Vec<_>>(),
    );
    let baseline = Instance::open(&baseline).unwrap();
    for f in 1..=2 {
        let want = whole.frame_native(f).unwrap();
        assert_eq!(split.frame_native(f).unwrap(), want, "frame {f} from fragments");
        assert_eq!(baseline.frame_native(f).unwrap(), want, "frame {f} labelled baseline");
        assert!(baseline.render(f, &RenderOptions::default()).is_ok());
    }
}

#[test]
fn truncated_12_bit_jpeg_is_decode_failed_not_a_partial_image() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(ImageSpec::default(), 64, 64);
    let Some(encoded) = dcmtk("dcmcjpeg", &["+ee"], &synthetic_ct(&s), dir.path()) else {
        return;
    };
    let codestream = Instance::open(&encoded).unwrap().frame(1).unwrap().bytes;
    assert_eq!(jpeg_precision(&codestream), 12);
    // A whole codestream whose data set says another size: refused, not cropped or padded.
    let smaller = spec(ImageSpec::default(), 32, 64);
    let mismatched = synthetic_encapsulated(&smaller, "1.2.840.10008.1.2.4.51", &[vec![codestream.clone()]]);
    let e = Instance::open(&mismatched)
        .unwrap()
        .render(1, &RenderOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), "decode_failed", "{e}");
    for cut in [codestream.len() / 2, 40, 3] {
        let broken = synthetic_encapsulated(&s, "1.2.840.10008.1.2.4.51", &[vec![codestream[..cut].to_vec()]]);
        let instance = Instance::open(&broken).unwrap();
        let e = instance.render(1, &RenderOptions::default()).unwrap_err();
        assert_eq!(e.code(), "decode_failed", "cut at {cut}: {e}");
    }
}

#[test]
fn corrupted_12_bit_jpeg_codestreams_are_refused_or_rendered_never_a_crash() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let s = spec(ImageSpec::default(), 48, 40);
    let Some(encoded) = dcmtk("dcmcjpeg", &["+ee"], &synthetic_ct(&s), dir.path()) else {
        return;
    };
    let codestream = Instance::open(&encoded).unwrap().frame(1).unwrap().bytes;
    let (mut rendered, mut refused) = (0, 0);
    for case in 0..3000u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(case);
        let mut bytes = codestream.clone();
        for _ in 0..rng.gen_range(1..=8) {
            let i = rng.gen_range(2..bytes.len());
            bytes[i] = rng.gen();
        }
        if rng.gen_bool(0.2) {
            bytes.truncate(rng.gen_range(2..bytes.len()));
        }
        let instance = Instance::open(&synthetic_encapsulated(&s, "1.2.840.10008.1.2.4.51", &[vec![bytes]])).unwrap();
        match instance.render(1, &RenderOptions::default()) {
            Ok(_) => rendered += 1,
            Err(e) => {
                assert!(matches!(e.code(), "decode_failed" | "not_an_image"), "case {case}: {e}");
                refused += 1;
            }
        }
    }
    assert!(rendered > 0 && refused > 0, "rendered {rendered}, refused {refused}");
}

#[test]
fn jpeg_2000_from_openjpeg_decodes_exactly() {
    let Some(opj) = tool("opj_compress") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = gradient(Photometric::Monochrome2, 16, false, 1);
    let s = spec(image, 32, 64);
    let bytes = synthetic_ct(&s);
    let native = Instance::open(&bytes).unwrap();
    // 16-bit PGM (big endian samples, maxval 4095) of the stored values.
    let raw = native.frame(1).unwrap().bytes;
    let mut pgm = b"P5\n64 32\n4095\n".to_vec();
    for c in raw.chunks_exact(2) {
        pgm.extend_from_slice(&[c[1], c[0]]);
    }
    let input = dir.path().join("in.pgm");
    let output = dir.path().join("out.j2k");
    std::fs::write(&input, pgm).unwrap();
    run(&opj, &["-i", input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
    let codestream = std::fs::read(&output).unwrap();
    assert_eq!(&codestream[..2], &[0xFF, 0x4F], "a J2K codestream");
    let encapsulated = synthetic_encapsulated(&s, "1.2.840.10008.1.2.4.90", &[vec![codestream.clone()]]);
    let instance = Instance::open(&encapsulated).unwrap();
    let stored = instance.frame(1).unwrap();
    assert_eq!(stored.media_type, "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90");
    assert_eq!(&stored.bytes[..codestream.len()], &codestream[..]);
    assert_same_display(&native, &instance, 1, Some(Window::parse("1024,4096,linear").unwrap()));
    assert_same_display(&native, &instance, 1, None);
}

/// Our own RLE encoding decodes to the samples it was made from, 8 and 16 bits.
#[test]
fn rle_frames_of_our_encoder_decode_exactly() {
    for bits in [8, 16] {
        let spec = spec(gradient(Photometric::Monochrome2, bits, false, 1), 16, 40);
        let native = pixel_data(&spec);
        let rle = synthetic_encapsulated(&spec, "1.2.840.10008.1.2.5", &[vec![rle_lossless_frame(&native, bits)]]);
        let decoded = Instance::open(&rle).unwrap().frame_native(1).unwrap();
        assert_eq!(decoded.bytes, native, "{bits} bits");
    }
}

/// Found by `cargo fuzz` (target `render`): dicom-transfer-syntax-registry 0.10 panicked on an
/// RLE segment that decodes to fewer bytes than the frame has pixels, and trusts the header's
/// segment count and offsets. Such frames are refused as `decode_failed`, never a panic.
#[test]
fn hostile_rle_frames_are_refused_not_panicked() {
    let spec = spec(gradient(Photometric::Monochrome2, 8, false, 1), 16, 16);
    let good = rle_lossless_frame(&pixel_data(&spec), 8);
    let word = |frame: &mut Vec<u8>, at: usize, value: u32| frame[at..at + 4].copy_from_slice(&value.to_le_bytes());
    let mut short_segment = rle_lossless_frame(&pixel_data(&spec)[..100], 8);
    short_segment.truncate(short_segment.len() & !1);
    let mut huge_count = good.clone();
    word(&mut huge_count, 0, u32::MAX);
    let mut no_segments = good.clone();
    word(&mut no_segments, 0, 0);
    let mut backwards = good.clone();
    word(&mut backwards, 0, 2);
    word(&mut backwards, 8, 64);
    word(&mut backwards, 4, 100);
    let mut beyond = good.clone();
    word(&mut beyond, 4, 1 << 30);
    for (name, frame) in [
        ("a segment shorter than the frame", short_segment),
        ("4 billion segments", huge_count),
        ("no segments", no_segments),
        ("offsets out of order", backwards),
        ("an offset beyond the fragment", beyond),
        ("no header", good[..40].to_vec()),
    ] {
        let bytes = synthetic_encapsulated(&spec, "1.2.840.10008.1.2.5", &[vec![frame]]);
        let instance = Instance::open(&bytes).unwrap();
        for outcome in [
            instance.frame_native(1).map(|_| ()),
            instance.render(1, &RenderOptions::default()).map(|_| ()),
        ] {
            assert!(
                matches!(outcome, Err(RenderError::DecodeFailed(_))),
                "{name}: {outcome:?}"
            );
        }
    }
    // The untouched frame still decodes.
    let bytes = synthetic_encapsulated(&spec, "1.2.840.10008.1.2.5", &[vec![good]]);
    assert!(Instance::open(&bytes)
        .unwrap()
        .render(1, &RenderOptions::default())
        .is_ok());
}

/// Found by `cargo fuzz` (target `render`): a JPEG frame larger than Rows × Columns made
/// dicom-pixeldata's JPEG adapter copy past its buffer and panic. Codestreams (JPEG, JPEG-LS,
/// JPEG 2000) declaring more than the data set describes are refused before decoding.
#[test]
fn compressed_frames_larger_than_their_data_set_are_refused_not_panicked() {
    let small = spec(gradient(Photometric::Monochrome2, 8, false, 1), 16, 16);
    let grey: Vec<u8> = (0..32 * 32).map(|i| (i % 251) as u8).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode(&grey, 32, 32, image::ExtendedColorType::L8)
        .unwrap();
    // JPEG-LS: SOI, SOF55 (precision 8, 64 × 64, one component), then nothing sensible.
    let jls = [
        &[0xFF, 0xD8, 0xFF, 0xF7, 0x00, 0x0B, 0x08, 0x00, 0x40, 0x00, 0x40, 0x01][..],
        &[0x01, 0x11, 0x00, 0xFF, 0xD9, 0x00][..],
    ]
    .concat();
    // JPEG 2000: SOC, SIZ (64 × 64, `components` components of 8 bits).
    let j2k = |components: u16| {
        let mut siz = vec![0xFF, 0x4F, 0xFF, 0x51];
        siz.extend_from_slice(&(38 + 3 * components).to_be_bytes());
        siz.extend_from_slice(&[0, 0]);
        for v in [64u32, 64, 0, 0, 64, 64, 0, 0] {
            siz.extend_from_slice(&v.to_be_bytes());
        }
        siz.extend_from_slice(&components.to_be_bytes());
        for _ in 0..components {
            siz.extend_from_slice(&[7, 1, 1]);
        }
        siz.extend_from_slice(&[0xFF, 0xD9]);
        siz
    };
    for (name, ts, frame) in [
        ("JPEG of 32 × 32", "1.2.840.10008.1.2.4.50", jpeg),
        ("JPEG-LS of 64 × 64", "1.2.840.10008.1.2.4.80", jls),
        ("JPEG 2000 of 64 × 64", "1.2.840.10008.1.2.4.90", j2k(1)),
    ] {
        let bytes = synthetic_encapsulated(&small, ts, &[vec![frame]]);
        let instance = Instance::open(&bytes).unwrap();
        for outcome in [
            instance.frame_native(1).map(|_| ()),
            instance.render(1, &RenderOptions::default()).map(|_| ()),
        ] {
            assert!(
                matches!(outcome, Err(RenderError::DecodeFailed(_))),
                "{name}: {outcome:?}"
            );
        }
    }
    // Three JPEG 2000 components where the data set has one sample per pixel.
    let big = spec(gradient(Photometric::Monochrome2, 8, false, 1), 64, 64);
    let bytes = synthetic_encapsulated(&big, "1.2.840.10008.1.2.4.90", &[vec![j2k(3)]]);
    let outcome = Instance::open(&bytes).unwrap().frame_native(1);
    assert!(matches!(outcome, Err(RenderError::DecodeFailed(_))), "{outcome:?}");
}
