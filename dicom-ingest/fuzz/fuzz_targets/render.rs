//! Retrieval's decoding of stored objects: for an object that ingest accepted, open it
//! (`render::Instance`), take frames as stored and as native samples, and render them
//! (default window and an explicit one, full size and a thumbnail, JPEG and PNG) — every
//! transfer syntax dicom-pixeldata decodes, including the OpenJPEG and CharLS C decoders.
//! No panic, hang or unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medledger_dicom_ingest::inspect;
use medledger_dicom_ingest::render::{Format, Instance, RenderOptions, Window};

fuzz_target!(|data: &[u8]| {
    if inspect(data).is_err() {
        return;
    }
    let Ok(instance) = Instance::open(data) else { return };
    let frames = instance.number_of_frames().clamp(1, 3);
    let window = Window::parse("40,400,linear").ok();
    for frame in 1..=frames {
        let _ = instance.frame(frame);
        let _ = instance.frame_native(frame);
        let _ = instance.render(frame, &RenderOptions::default());
        let _ = instance.render(
            frame,
            &RenderOptions {
                window,
                viewport: Some((64, 64)),
                format: Format::Png,
                quality: 75,
            },
        );
    }
    // One past the last frame is an error, never a panic.
    let _ = instance.render(instance.number_of_frames() + 1, &RenderOptions::default());
});
