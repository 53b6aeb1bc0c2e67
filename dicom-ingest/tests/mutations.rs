//! Mutation fuzzing on the stable toolchain: thousands of seeded corruptions of real
//! instances (bit flips, hostile lengths, truncation, spliced and inserted bytes) go
//! through everything ingest and retrieval do with untrusted bytes — `inspect` (structure
//! walk and metadata, DICOM JSON), bulk data lookup, and the renderer — and none may
//! panic. A failing case names its seed, so it replays exactly.
//!
//! `cargo fuzz` (libFuzzer) needs a nightly toolchain that this project's machines do not
//! have; this test is the stable, always-on part of that work.

use medledger_dicom_ingest::render::{Instance, RenderOptions};
use medledger_dicom_ingest::{inspect, json, synthetic_ct, CtSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Cases per run; `MEDLEDGER_FUZZ_CASES` runs longer (e.g. a million, locally).
fn cases() -> u64 {
    std::env::var("MEDLEDGER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn mutate(mut bytes: Vec<u8>, rng: &mut StdRng) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..=4) {
        let len = bytes.len().max(1);
        match rng.gen_range(0..6) {
            // A few random bytes.
            0 => {
                for _ in 0..rng.gen_range(1..8) {
                    let i = rng.gen_range(0..len);
                    if let Some(b) = bytes.get_mut(i) {
                        *b = rng.gen();
                    }
                }
            }
            // A hostile 32-bit length (or tag) somewhere after the preamble.
            1 if len > 140 => {
                let i = rng.gen_range(132..len - 4);
                let v: u32 = [0xFFFF_FFFF, 0xFFFF_FFFE, 0x7FFF_FFFF, 0x0001_0000, rng.gen()][rng.gen_range(0..5)];
                bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            // Truncation.
            2 => bytes.truncate(rng.gen_range(0..len)),
            // A chunk repeated (nested sequences and items grow).
            3 if len > 200 => {
                let start = rng.gen_range(132..len - 50);
                let chunk = bytes[start..start + rng.gen_range(1..50)].to_vec();
                let at = rng.gen_range(132..bytes.len());
                for (k, b) in chunk.iter().enumerate() {
                    bytes.insert(at + k, *b);
                }
            }
            // Random bytes inserted.
            4 => {
                let at = rng.gen_range(0..len);
                for _ in 0..rng.gen_range(1..16) {
                    bytes.insert(at.min(bytes.len()), rng.gen());
                }
            }
            // A bogus VR: two random capital letters over a plausible VR position.
            _ if len > 140 => {
                let i = rng.gen_range(132..len - 2);
                bytes[i] = rng.gen_range(b'A'..=b'Z');
                bytes[i + 1] = rng.gen_range(b'A'..=b'Z');
            }
            _ => {}
        }
    }
    bytes
}

#[test]
fn corrupted_instances_are_refused_or_handled_never_a_panic() {
    let seeds = [
        synthetic_ct(&CtSpec {
            rows: 16,
            columns: 16,
            ..CtSpec::default()
        }),
        synthetic_ct(&CtSpec {
            rows: 8,
            columns: 8,
            private_tags: true,
            ..CtSpec::default()
        }),
    ];
    let (mut accepted, mut refused) = (0u32, 0u32);
    for case in 0..cases() {
        let mut rng = StdRng::seed_from_u64(case);
        let input = mutate(seeds[(case % 2) as usize].clone(), &mut rng);
        let outcome = std::panic::catch_unwind(|| {
            let ok = inspect(&input).is_ok();
            if ok {
                let _ = json::bulk_value(&input, "7FE00010");
                if let Ok(instance) = Instance::open(&input) {
                    let _ = instance.render(1, &RenderOptions::default());
                }
            }
            ok
        });
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("case {case} panicked (replay with StdRng::seed_from_u64({case}))"),
        }
    }
    // Both paths were exercised: some corruptions are harmless (pixel bytes), most are not.
    assert!(accepted > 0 && refused > 0, "accepted {accepted}, refused {refused}");
}
