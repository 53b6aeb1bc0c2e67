//! # MedLedger domain
//!
//! The platform's rules, readable without SQL or HTTP. Every aggregate is a
//! *decider*: `decide(&State, Command, &Ctx) -> Result<Vec<Event>>` says what
//! happens, `evolve(State, &Event) -> State` folds history into state. Nothing
//! here does I/O, spawns tasks or reads the clock: [`Ctx`] carries `now`.
//!
//! Modules follow the bounded contexts of the design (the same names are used
//! in every crate):
//!
//! - [`identity`]: accounts, login attempts, freezing, passwords, sessions,
//!   QR-scan login tickets and forgot-password codes.
//! - [`organization`]: alliances, hospitals, departments, roles and permissions.
//! - [`imaging`]: studies and the instances received into them.
//! - [`reporting`]: diagnostic reports under a single-editor lock, their
//!   templates and knowledge-base phrases.
//! - [`administration`]: audit-log views and subject erasure ("forget").
//! - [`pii`]: personal data values that the store encrypts per data subject.
//!
//! Later contexts (consultation, rounds,
//! teaching, quality, ai, patient_archive, notification) get a module each.

pub mod administration;
pub mod decider;
pub mod event;
pub mod identity;
pub mod imaging;
pub mod organization;
pub mod pii;
pub mod reporting;

pub use decider::{Ctx, Decider};
pub use event::{DomainEvent, EventTypeInfo};
pub use pii::{PersonalData, SubjectId};
