//! # MedLedger API
//!
//! The `medledger` binary and its HTTP server:
//!
//! - [`config`]: the one configuration struct (flags and `MEDLEDGER_*`);
//! - [`platform`]: assembling store, keys, bus, relay and projections;
//! - [`http`]: routes (one group per file), problem+json errors, idempotency,
//!   read-your-writes, metrics and the OpenAPI document;
//! - [`server`]: starting and stopping it all;
//! - [`series_thumbnails`]: the worker that renders each series' thumbnail when it arrives;
//! - [`import`]: `medledger import` of a folder of DICOM files;
//! - [`bench`]: `medledger bench`; [`bench_logins`]: `medledger bench-logins`.
//!
//! Handlers never touch SQL directly for decisions: commands go to the
//! application layer, queries to read models.

pub mod bench;
pub mod bench_ingest;
pub mod bench_logins;
pub mod config;
pub mod http;
pub mod import;
pub mod platform;
pub mod series_thumbnails;
pub mod server;
pub mod telemetry;
