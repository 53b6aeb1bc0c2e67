//! Organization: the tree platform → alliance (医联体) → hospital →
//! department, and the roles (named permission sets) each hospital defines.
//!
//! - [`alliance`], [`hospital`], [`department`], [`role`]: one aggregate each;
//! - [`permission`]: the closed list of permissions;
//! - [`values`]: names, codes, phone numbers, time zones — parsed at the edge.

pub mod alliance;
pub mod department;
pub mod hospital;
pub mod permission;
pub mod role;
pub mod values;

pub use permission::Permission;
pub use values::{HospitalCode, Name, PhoneNumber, TimeZone};
