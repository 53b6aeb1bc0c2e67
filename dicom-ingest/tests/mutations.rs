//! Mutation fuzzing on the stable toolchain: thousands of seeded corruptions of real
//! instances (bit flips, hostile lengths, truncation, spliced and inserted bytes) go
//! through everything ingest and retrieval do with untrusted bytes — `inspect` (structure
//! walk and metadata, DICOM JSON), bulk data lookup, and the renderer — and none may
//! panic. A failing case names its seed, so it replays exactly.
//!
//! This test is the stable, always-on part of that work; the coverage-guided part is the
//! `cargo fuzz` (libFuzzer) targets in `dicom-ingest/fuzz` (run on the stable toolchain with
//! `RUSTC_BOOTSTRAP=1`, see its README), kept out of the normal test run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use medledger_dicom_ingest::render::{Instance, RenderOptions};
use medledger_dicom_ingest::{inspect, json, synthetic_ct, CtSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Records the largest single allocation of this test binary: a hostile length that is
/// believed shows up here even when the machine has the memory to satisfy it.
struct LargestAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a size is recorded.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// The inputs here are a few KB and their images 16×16: nothing legitimate comes near this.
const ALLOCATION_LIMIT: usize = 64 * 1024 * 1024;

#[track_caller]
fn assert_no_large_allocation(what: &str) {
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < ALLOCATION_LIMIT,
        "{what}: an allocation of {largest} bytes (a declared length was believed)"
    );
}

/// Everything ingest and retrieval do with untrusted bytes; true when ingest accepts them.
fn ingest_and_retrieve(input: &[u8]) -> bool {
    let ok = inspect(input).is_ok();
    if ok {
        let _ = json::bulk_value(input, "7FE00010");
        if let Ok(instance) = Instance::open(input) {
            let _ = instance.render(1, &RenderOptions::default());
        }
    }
    ok
}

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
        let outcome = std::panic::catch_unwind(|| ingest_and_retrieve(&input));
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("case {case} panicked (replay with StdRng::seed_from_u64({case}))"),
        }
        assert_no_large_allocation(&format!("case {case} (replay with StdRng::seed_from_u64({case}))"));
    }
    // Both paths were exercised: some corruptions are harmless (pixel bytes), most are not.
    assert!(accepted > 0 && refused > 0, "accepted {accepted}, refused {refused}");
}

/// What `cargo fuzz` found (dicom-ingest/fuzz), rebuilt from the generator, stays fixed.
#[test]
fn fuzzer_findings_are_refused_without_large_allocations() {
    // `inspect`: Study ID's VR turned from SH into SL. dicom-parser read nothing from the
    // 2-byte SL, took its bytes for the next header and allocated the 540 MB it declared.
    let mut sl = synthetic_ct(&CtSpec {
        rows: 8,
        columns: 8,
        private_tags: true,
        ..CtSpec::default()
    });
    let at = sl
        .windows(6)
        .position(|w| w == [0x20, 0x00, 0x10, 0x00, b'S', b'H'])
        .unwrap();
    sl[at + 5] = b'L';
    assert!(!ingest_and_retrieve(&sl), "refused");
    assert_no_large_allocation("Study ID as a 2-byte SL");
}
