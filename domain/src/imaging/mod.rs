//! Imaging: studies and the instances received into them.
//!
//! - [`study`]: the study aggregate — every instance received, deduplicated
//!   by SOP Instance UID, with conflicts recorded rather than overwritten.
//!
//! Worklist status, storage accounting, sharing, soft delete and archiving
//! extend this context next.

pub mod study;
