//! # MedLedger projections
//!
//! Everything the query side reads is built here from the log:
//!
//! - [`bus`]: the in-process bus (embedded default) and NATS JetStream;
//! - [`runner`]: catch-up from the store, following the bus, gap filling,
//!   checkpoints written in the same transaction as the read-model change,
//!   rebuilds on version bumps and on demand;
//! - [`read_models`]: one module per read model, each owning its tables.
//!
//! A read model is never consulted to make a decision; it only answers queries.

pub mod bus;
pub mod read_models;
pub mod runner;

pub use runner::{Projection, ProjectionError, Runner, Status};
