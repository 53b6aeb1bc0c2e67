//! # MedLedger application layer
//!
//! Commands come in, events go out. This crate owns:
//!
//! - [`store`]: the event store trait and its SQLite and PostgreSQL
//!   implementations (group commit, optimistic concurrency, guards, hash chain);
//! - [`app`]: load → decide → append → retry, for every aggregate;
//! - [`codec`]: event tags, metadata, upcasting, and [`crypto`] for personal data;
//! - [`authorization`]: the one place that says who may do what;
//! - [`relay`]: publishing the log to the bus and sealing it; [`verify`]: checking it;
//! - [`blobs`]: logos and other files kept under validated keys;
//! - [`media`]: logo checks and QR codes;
//! - use cases per bounded context ([`identity`], [`organization`],
//!   [`reporting`], [`administration`]).
//!
//! It never reads a read model to decide anything, and it knows nothing of HTTP.

pub mod administration;
pub mod app;
pub mod authorization;
pub mod blobs;
pub mod clock;
pub mod codec;
pub mod crypto;
pub mod db;
pub mod error;
pub mod identity;
pub mod imaging;
pub mod media;
pub mod organization;
pub mod relay;
pub mod reporting;
pub mod store;
pub mod verify;

pub use app::App;
pub use error::{Error, Kind};
