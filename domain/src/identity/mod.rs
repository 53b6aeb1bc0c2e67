//! Identity: who can log in, how, and the sessions that result.
//!
//! - [`account`]: an account's registration, password and every login attempt.
//! - [`session`]: a bearer session from its start to its end.
//! - [`login_ticket`]: QR-scan login tickets, confirmed from a phone.
//! - [`password_reset`]: forgot-password codes.
//! - [`values`]: parsed value types (login names, client kinds, roles, tenants).
//!
//! Password hashing and token generation are I/O-ish (randomness, CPU-heavy
//! work) and live in the application layer; deciders receive their results.

pub mod account;
pub mod login_ticket;
pub mod password_reset;
pub mod session;
pub mod values;

pub use values::{AccountRole, ClientKind, LoginName, Password, Tenant};
