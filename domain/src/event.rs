//! What every domain event enum provides so the store can file it.
//!
//! Event enums are serialized internally tagged (`{"type": "LoginFailed", ...}`);
//! the store keeps the tag as the envelope's `event_type` and the rest as the
//! payload. The schema version of each type lives here too: when a payload's
//! shape changes, its version goes up and the application layer registers an
//! upcaster that lifts old payloads on read. History is never rewritten.

use serde::{de::DeserializeOwned, Serialize};

/// One event type's registry entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTypeInfo {
    pub context: &'static str,
    pub event_type: &'static str,
    pub schema_version: u32,
}

pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    /// The bounded context the events belong to (used in bus subjects).
    const CONTEXT: &'static str;

    /// Every event type of this enum with its current schema version.
    fn catalog() -> &'static [EventTypeInfo];

    /// The type name of this event (the serde tag).
    fn event_type(&self) -> &'static str;

    fn schema_version(&self) -> u32 {
        let t = self.event_type();
        Self::catalog()
            .iter()
            .find(|i| i.event_type == t)
            .map(|i| i.schema_version)
            .unwrap_or(1)
    }
}

/// Declares an event enum's catalog: `event_catalog!(Enum, "context", [A = 1, B = 2])`.
#[macro_export]
macro_rules! event_catalog {
    ($enum:ident, $context:literal, [$($variant:ident = $version:literal),+ $(,)?]) => {
        impl $crate::event::DomainEvent for $enum {
            const CONTEXT: &'static str = $context;

            fn catalog() -> &'static [$crate::event::EventTypeInfo] {
                &[$($crate::event::EventTypeInfo {
                    context: $context,
                    event_type: stringify!($variant),
                    schema_version: $version,
                }),+]
            }

            fn event_type(&self) -> &'static str {
                match self {
                    $($enum::$variant { .. } => stringify!($variant)),+
                }
            }
        }
    };
}
