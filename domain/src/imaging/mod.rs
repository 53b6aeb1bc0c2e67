//! Imaging: studies and the instances received into them.
//!
//! - [`study`]: the study aggregate — every instance received, deduplicated
//!   by SOP Instance UID, with conflicts recorded rather than overwritten;
//!   sharing with a colleague, soft delete and restore, archive and retrieve,
//!   and the erasure of its objects when its patient is forgotten.
//! - [`settings`]: a hospital's imaging settings — the storage plan its
//!   uploads are billed by, and the DICOM peers allowed to send to it.
//! - [`worklist_columns`]: which worklist columns each user sees, in order.

pub mod settings;
pub mod study;
pub mod worklist_columns;
