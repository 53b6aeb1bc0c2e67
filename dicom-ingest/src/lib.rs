//! # MedLedger DICOM ingest
//!
//! The separate pipeline through which modalities and PACS push studies in:
//! DICOM parsing and validation, blob storage, metadata extraction,
//! rendering, the C-STORE SCP, STOW-RS body parsing and folder import.
//!
//! It turns received instances into commands for the `imaging` context and
//! never writes read models itself.
//!
//! Built so far, the parsing and validation foundation:
//! - [`parse`]: [`inspect`] checks a received Part-10 file as sent (never
//!   re-encoded) and either extracts its [`InstanceMetadata`] once, reading
//!   only up to Pixel Data, or refuses it with a [`Rejection`] carrying a
//!   stable code. Hostile files (huge lengths, deep nesting, bogus VRs) are
//!   refused before any allocation they ask for.
//! - [`generate`]: [`synthetic_ct`] builds deterministic CT-like instances
//!   (512×512, 16-bit, ≈525 KB) for tests and load runs.
//!
//! - [`ingest`]: [`ingest::ingest`] stores a validated instance byte for byte
//!   under a content-addressed key and records it in its study (stored,
//!   duplicate, or conflict kept aside).
//! - [`scp`]: [`scp::serve`] is the DIMSE C-STORE (and C-ECHO) SCP for modalities and PACS.
//!
//! STOW-RS (in the API crate) and the SCP both end in [`ingest::ingest`].
//! - [`render`]: frames as stored and rendered JPEG/PNG images of a stored instance
//!   (WADO-RS `/frames`, `/rendered`, `/thumbnail`).
//!
//! Folder import is not built yet.

pub mod generate;
pub mod ingest;
pub mod json;
pub mod parse;
pub mod render;
pub mod render_cache;
pub mod scp;

/// DICOM tag constants (callers name tags, never numbers).
pub use dicom_dictionary_std::tags;
pub use generate::{synthetic_ct, synthetic_encapsulated, CtSpec, ImageSpec, Pattern, Photometric};
pub use parse::{inspect, InstanceMetadata, Rejection};
