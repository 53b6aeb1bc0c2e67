//! Writes the seed corpus of the `cargo fuzz` targets (`dicom-ingest/fuzz`) from our own
//! generator: synthetic instances only, never patient data.
//!
//! ```sh
//! cargo run -p medledger-dicom-ingest --example fuzz_seeds -- dicom-ingest/fuzz/corpus/seeds
//! ```
//!
//! Small images (8 to 32 pixels a side) keep executions fast; the set covers every
//! photometric interpretation and bit depth the generator writes, multi-frame objects,
//! private tags, an object without Pixel Data, and encapsulated Pixel Data: real baseline
//! JPEG, RLE and JPEG-LS frames, and JPEG-LS / JPEG 2000 / JPEG lossless transfer syntaxes
//! carrying fragments their decoders must refuse gracefully. (No JPEG 2000 encoder is at
//! hand: the `render` target reaches OpenJPEG only through mutated headers.)

use std::path::PathBuf;

use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use medledger_dicom_ingest::generate::{pixel_data, rle_lossless_frame};
use medledger_dicom_ingest::{synthetic_ct, synthetic_encapsulated, tags, CtSpec, ImageSpec, Pattern, Photometric};

fn spec(index: u32, side: u16, image: ImageSpec) -> CtSpec {
    CtSpec {
        seed: 0xF0221,
        instance_index: index,
        rows: side,
        columns: side,
        image,
        ..CtSpec::default()
    }
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "dicom-ingest/fuzz/corpus/seeds".into()),
    );
    std::fs::create_dir_all(&dir).expect("corpus folder");
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();

    let mut index = 0;
    let mut next = || {
        index += 1;
        index
    };
    for (name, photometric, bits, signed) in [
        ("mono2-16", Photometric::Monochrome2, 16, false),
        ("mono2-16-signed", Photometric::Monochrome2, 16, true),
        ("mono1-8", Photometric::Monochrome1, 8, false),
        ("rgb", Photometric::Rgb, 8, false),
        ("ybr-full", Photometric::YbrFull, 8, false),
        ("palette", Photometric::PaletteColor, 8, false),
    ] {
        for (side, frames, pattern) in [(8, 1, Pattern::Disc), (16, 3, Pattern::Gradient)] {
            let image = ImageSpec {
                photometric,
                bits_allocated: bits,
                signed,
                frames,
                pattern,
            };
            seeds.push((
                format!("native-{name}-{side}px-{frames}f"),
                synthetic_ct(&spec(next(), side, image)),
            ));
        }
    }
    let mut private = spec(next(), 8, ImageSpec::default());
    private.private_tags = true;
    seeds.push(("native-private-tags".into(), synthetic_ct(&private)));
    let mut no_pixels = spec(next(), 8, ImageSpec::default());
    no_pixels.omitted = vec![tags::PIXEL_DATA];
    seeds.push(("no-pixel-data".into(), synthetic_ct(&no_pixels)));

    // Baseline JPEG (8-bit grey and RGB), one and two frames.
    let grey: Vec<u8> = (0..32 * 32).map(|i| (i % 32 * 8) as u8).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode(&grey, 32, 32, image::ExtendedColorType::L8)
        .expect("JPEG");
    let grey_spec = spec(
        next(),
        32,
        ImageSpec {
            bits_allocated: 8,
            ..ImageSpec::default()
        },
    );
    seeds.push((
        "jpeg-baseline-grey".into(),
        synthetic_encapsulated(&grey_spec, "1.2.840.10008.1.2.4.50", &[vec![jpeg.clone()]]),
    ));
    seeds.push((
        "jpeg-baseline-grey-2f-split".into(),
        synthetic_encapsulated(
            &spec(next(), 32, grey_spec.image.clone()),
            "1.2.840.10008.1.2.4.50",
            &[
                vec![jpeg[..jpeg.len() / 2].to_vec(), jpeg[jpeg.len() / 2..].to_vec()],
                vec![jpeg.clone()],
            ],
        ),
    ));
    let rgb: Vec<u8> = (0..16 * 16 * 3).map(|i| (i * 7 % 256) as u8).collect();
    let mut jpeg_rgb = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg_rgb, 90)
        .encode(&rgb, 16, 16, image::ExtendedColorType::Rgb8)
        .expect("JPEG");
    let rgb_spec = spec(
        next(),
        16,
        ImageSpec {
            photometric: Photometric::Rgb,
            bits_allocated: 8,
            ..ImageSpec::default()
        },
    );
    seeds.push((
        "jpeg-baseline-rgb".into(),
        synthetic_encapsulated(&rgb_spec, "1.2.840.10008.1.2.4.50", &[vec![jpeg_rgb]]),
    ));

    // RLE Lossless, 8 and 16 bits.
    seeds.push((
        "rle-8".into(),
        synthetic_encapsulated(
            &spec(next(), 32, grey_spec.image.clone()),
            "1.2.840.10008.1.2.5",
            &[vec![rle_lossless_frame(&grey, 8)]],
        ),
    ));
    let rle16_spec = spec(next(), 16, ImageSpec::default());
    let samples16 = pixel_data(&rle16_spec);
    seeds.push((
        "rle-16".into(),
        synthetic_encapsulated(
            &rle16_spec,
            "1.2.840.10008.1.2.5",
            &[vec![rle_lossless_frame(&samples16, 16)]],
        ),
    ));

    // JPEG-LS (CharLS through dicom-pixeldata's transcoder), 8 and 16 bits.
    for (name, image) in [
        ("jpeg-ls-8", grey_spec.image.clone()),
        ("jpeg-ls-16", ImageSpec::default()),
    ] {
        let native = synthetic_ct(&spec(next(), 16, image));
        let mut object = dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Always)
            .from_reader(&native[..])
            .expect("a generated instance");
        let jpeg_ls = TransferSyntaxRegistry
            .get("1.2.840.10008.1.2.4.80")
            .expect("JPEG-LS lossless");
        object.transcode(jpeg_ls).expect("CharLS encodes");
        let mut bytes = Vec::new();
        object.write_all(&mut bytes).expect("written");
        seeds.push((name.into(), bytes));
    }

    // Transfer syntaxes whose decoders must refuse what is not their codestream.
    for (name, ts) in [
        ("jpeg-ls", "1.2.840.10008.1.2.4.80"),
        ("jpeg-2000", "1.2.840.10008.1.2.4.90"),
        ("jpeg-lossless", "1.2.840.10008.1.2.4.70"),
        ("jpeg-extended", "1.2.840.10008.1.2.4.51"),
    ] {
        seeds.push((
            format!("{name}-foreign-fragment"),
            synthetic_encapsulated(&spec(next(), 32, grey_spec.image.clone()), ts, &[vec![jpeg.clone()]]),
        ));
    }

    for (name, bytes) in &seeds {
        std::fs::write(dir.join(format!("{name}.dcm")), bytes).expect("write seed");
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
}
