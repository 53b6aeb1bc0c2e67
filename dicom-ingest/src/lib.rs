//! # MedLedger DICOM ingest
//!
//! The separate pipeline through which modalities and PACS push studies in:
//! DICOM parsing and validation, blob storage, metadata extraction,
//! rendering, the C-STORE SCP, STOW-RS body parsing and folder import.
//!
//! It turns received instances into commands for the `imaging` context and
//! never writes read models itself. Nothing is built here yet: this crate
//! holds the place the workspace layout gives it.
