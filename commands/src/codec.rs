//! Between domain events and stored events: type tags, schema versions,
//! upcasting of old payloads, and sealing/opening of personal data.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use medledger_domain::event::{DomainEvent, EventTypeInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::{CryptoError, KeyStore};
use crate::store::{NewEvent, RecordedEvent};
use medledger_domain::identity::{AccountRole, ClientKind, Tenant};

/// Who did it, for whom, from where: stored with every event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_role: Option<AccountRole>,
    #[serde(default)]
    pub tenant: Tenant,
    pub client: ClientKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub correlation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
}

impl Metadata {
    /// Metadata for work the platform does on its own (bootstrap, CLI).
    pub fn system() -> Self {
        Metadata {
            actor: None,
            actor_role: None,
            tenant: Tenant::PLATFORM,
            client: ClientKind::System,
            ip: None,
            user_agent: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("event {event_type} v{version}: no upcaster to v{current}")]
    MissingUpcaster {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("event {event_type} does not decode: {message}")]
    Undecodable { event_type: String, message: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

type Upcast = fn(Value) -> Value;

/// Every event type of the platform, with its context and current version.
pub fn catalog() -> Vec<EventTypeInfo> {
    use medledger_domain::administration::AdministrationEvent;
    use medledger_domain::identity::account::AccountEvent;
    use medledger_domain::identity::login_ticket::LoginTicketEvent;
    use medledger_domain::identity::password_reset::PasswordResetEvent;
    use medledger_domain::identity::session::SessionEvent;
    use medledger_domain::imaging::study::StudyEvent;
    use medledger_domain::organization::alliance::AllianceEvent;
    use medledger_domain::organization::department::DepartmentEvent;
    use medledger_domain::organization::hospital::HospitalEvent;
    use medledger_domain::organization::role::RoleEvent;
    use medledger_domain::reporting::knowledge::KnowledgeEntryEvent;
    use medledger_domain::reporting::priors::PriorViewEvent;
    use medledger_domain::reporting::report::ReportEvent;
    use medledger_domain::reporting::settings::ReportingSettingsEvent;
    use medledger_domain::reporting::template::ReportTemplateEvent;
    [
        AccountEvent::catalog(),
        SessionEvent::catalog(),
        LoginTicketEvent::catalog(),
        PasswordResetEvent::catalog(),
        AllianceEvent::catalog(),
        HospitalEvent::catalog(),
        DepartmentEvent::catalog(),
        RoleEvent::catalog(),
        StudyEvent::catalog(),
        medledger_domain::imaging::settings::ImagingSettingsEvent::catalog(),
        medledger_domain::imaging::worklist_columns::WorklistColumnsEvent::catalog(),
        AdministrationEvent::catalog(),
        ReportEvent::catalog(),
        ReportTemplateEvent::catalog(),
        KnowledgeEntryEvent::catalog(),
        ReportingSettingsEvent::catalog(),
        PriorViewEvent::catalog(),
    ]
    .concat()
}

/// The bounded context an event type belongs to (`unknown` if none).
pub fn context_of(event_type: &str) -> &'static str {
    static MAP: std::sync::OnceLock<HashMap<&'static str, &'static str>> = std::sync::OnceLock::new();
    MAP.get_or_init(|| catalog().into_iter().map(|i| (i.event_type, i.context)).collect())
        .get(event_type)
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod catalog_tests {
    use super::*;

    #[test]
    fn every_event_type_has_one_context_and_a_unique_name() {
        let all = catalog();
        let mut names: Vec<_> = all.iter().map(|i| i.event_type).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "event type names are unique across contexts");
        for t in [
            "LoginTicketIssued",
            "ResetCodeIssued",
            "HospitalRegistered",
            "RoleDefined",
            "InstanceStored",
        ] {
            assert_ne!(context_of(t), "unknown", "{t} is catalogued");
        }
        assert_eq!(context_of("HospitalRegistered"), "organization");
    }

    #[test]
    fn a_template_of_schema_1_keeps_printing_the_hospital_name() {
        let mut e = RecordedEvent {
            global_position: 1,
            event_id: Uuid::nil(),
            stream_id: "report-template-1".into(),
            stream_version: 1,
            event_type: "ReportTemplateCreated".into(),
            schema_version: 1,
            payload: serde_json::json!({"type": "ReportTemplateCreated", "template_id": Uuid::nil(),
                "hospital_id": Uuid::nil(), "spec": {"name": "胸部CT", "study_type": {},
                "layout": {"title": "", "header": "", "body": "", "footer": "", "show_hospital_name": false,
                           "show_logo": false, "patient_block": true, "signature_block": false}}}),
            metadata: serde_json::json!({}),
            recorded_at: chrono::Utc::now(),
            hash: String::new(),
        };
        Upcasters::platform().upcast(&mut e).unwrap();
        assert_eq!(e.schema_version, 2);
        let event: medledger_domain::reporting::template::ReportTemplateEvent = decode(&e).unwrap();
        let medledger_domain::reporting::template::ReportTemplateEvent::ReportTemplateCreated { spec, .. } = event
        else {
            panic!("created");
        };
        assert!(spec.layout.show_hospital_name, "schema 1 always printed the name");
        assert!(
            !spec.layout.show_logo && !spec.layout.signature_block,
            "what schema 1 honoured stays"
        );
        assert!(
            spec.layout.show_qr_code && spec.layout.sections.is_empty(),
            "new parts: the standard"
        );
    }

    #[test]
    fn instance_events_of_schema_1_name_their_sha256() {
        use medledger_domain::imaging::study::{ContentDigest, StudyEvent};
        let hex = "ab".repeat(32);
        let sha = ContentDigest::new(ContentDigest::SHA256, &hex);
        let object = serde_json::json!({"blob_key": "k", "size": 3, "sha256": hex});
        let read = |event_type: &str, payload: Value| {
            let mut e = RecordedEvent {
                global_position: 1,
                event_id: Uuid::nil(),
                stream_id: "study-1".into(),
                stream_version: 1,
                event_type: event_type.into(),
                schema_version: 1,
                payload,
                metadata: serde_json::json!({}),
                recorded_at: chrono::Utc::now(),
                hash: String::new(),
            };
            Upcasters::platform().upcast(&mut e).unwrap();
            assert_eq!(e.schema_version, 2);
            decode::<StudyEvent>(&e).unwrap()
        };
        let StudyEvent::InstanceStored { object: stored, .. } = read(
            "InstanceStored",
            serde_json::json!({"type": "InstanceStored", "hospital_id": Uuid::nil(),
                "study_instance_uid": "1.2", "sop_instance_uid": "1.2.3",
                "patient": {"patient_id": {"$pii": {"subject": Uuid::nil(), "value": "P1"}}},
                "attributes": {"series_instance_uid": "1.2.4", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
                    "transfer_syntax_uid": "1.2.840.10008.1.2.1", "number_of_frames": 1},
                "object": object, "arrival": "stow-rs"}),
        ) else {
            panic!("stored")
        };
        assert_eq!(stored.digest, sha);
        assert_eq!(
            read(
                "InstanceDuplicateIgnored",
                serde_json::json!({"type": "InstanceDuplicateIgnored", "sop_instance_uid": "1.2.3",
                    "sha256": hex, "arrival": "c-store"})
            ),
            StudyEvent::InstanceDuplicateIgnored {
                sop_instance_uid: "1.2.3".into(),
                digest: sha.clone(),
                arrival: medledger_domain::imaging::study::Arrival::CStore,
            }
        );
        let StudyEvent::InstanceConflictRecorded {
            kept_digest, received, ..
        } = read(
            "InstanceConflictRecorded",
            serde_json::json!({"type": "InstanceConflictRecorded", "sop_instance_uid": "1.2.3",
                "kept_sha256": hex, "received": object, "arrival": "c-store"}),
        )
        else {
            panic!("conflict")
        };
        assert_eq!((kept_digest, received.digest), (sha.clone(), sha));
    }
}

/// Current schema versions and the steps that lift old payloads to them.
#[derive(Default, Clone)]
pub struct Upcasters {
    current: HashMap<String, u32>,
    steps: HashMap<(String, u32), Upcast>,
}

/// Moves a bare SHA-256 at `pointer`/`from` to `pointer`/`to`, named `sha256:<hex>`.
fn name_digest(v: &mut Value, pointer: &str, from: &str, to: &str) {
    if let Some(object) = v.pointer_mut(pointer).and_then(Value::as_object_mut) {
        if let Some(Value::String(hex)) = object.remove(from) {
            object.insert(to.into(), Value::String(format!("sha256:{hex}")));
        }
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event type MedLedger knows, at its current version, with the steps
    /// that lift older payloads.
    pub fn platform() -> Self {
        let mut u = Self::new();
        for info in catalog() {
            u.current.insert(info.event_type.to_string(), info.schema_version);
        }
        // Report templates, 1 → 2: printing did not honour `show_hospital_name` (the name
        // was always printed, and the flag defaulted to false); now it does, so a template
        // written then keeps printing the name.
        for t in ["ReportTemplateCreated", "ReportTemplateUpdated"] {
            u.add_step(t, 1, |mut v| {
                if let Some(layout) = v.pointer_mut("/spec/layout").and_then(Value::as_object_mut) {
                    layout.insert("show_hospital_name".into(), Value::Bool(true));
                }
                v
            });
        }
        // Instance events, 1 → 2: an object's content digest was a bare SHA-256 in a
        // `sha256` field; it is now named by its algorithm (`sha256:<hex>`, `blake3:<hex>`)
        // in a `digest` field, since new objects are digested with BLAKE3.
        u.add_step("InstanceStored", 1, |mut v| {
            name_digest(&mut v, "/object", "sha256", "digest");
            v
        });
        u.add_step("InstanceDuplicateIgnored", 1, |mut v| {
            name_digest(&mut v, "", "sha256", "digest");
            v
        });
        u.add_step("InstanceConflictRecorded", 1, |mut v| {
            name_digest(&mut v, "", "kept_sha256", "kept_digest");
            name_digest(&mut v, "/received", "sha256", "digest");
            v
        });
        u
    }

    pub fn register<E: DomainEvent>(&mut self) {
        for info in E::catalog() {
            self.current.insert(info.event_type.to_string(), info.schema_version);
        }
    }

    pub fn set_current(&mut self, event_type: &str, version: u32) {
        self.current.insert(event_type.to_string(), version);
    }

    /// Register the step from `from_version` to `from_version + 1`.
    pub fn add_step(&mut self, event_type: &str, from_version: u32, step: Upcast) {
        self.steps.insert((event_type.to_string(), from_version), step);
    }

    /// Lift an event's payload to the current version of its type.
    pub fn upcast(&self, e: &mut RecordedEvent) -> Result<(), CodecError> {
        let Some(&current) = self.current.get(&e.event_type) else {
            return Ok(()); // unknown types are passed through as written
        };
        while e.schema_version < current {
            let step = self
                .steps
                .get(&(e.event_type.clone(), e.schema_version))
                .ok_or_else(|| CodecError::MissingUpcaster {
                    event_type: e.event_type.clone(),
                    version: e.schema_version,
                    current,
                })?;
            e.payload = step(std::mem::take(&mut e.payload));
            e.schema_version += 1;
        }
        Ok(())
    }
}

/// Turns domain events into stored ones and back.
#[derive(Clone)]
pub struct EventCodec {
    keys: KeyStore,
    upcasters: std::sync::Arc<Upcasters>,
}

impl EventCodec {
    pub fn new(keys: KeyStore, upcasters: Upcasters) -> Self {
        EventCodec {
            keys,
            upcasters: std::sync::Arc::new(upcasters),
        }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Tag, version and seal domain events for appending.
    pub async fn prepare<E: DomainEvent>(
        &self,
        events: &[E],
        metadata: &Metadata,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEvent>, CodecError> {
        let meta = serde_json::to_value(metadata).expect("metadata serializes");
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let (event_type, mut payload) = encode(e);
            self.keys.seal(&mut payload, now).await?;
            out.push(NewEvent::new(
                event_type,
                e.schema_version(),
                payload,
                meta.clone(),
                now,
            ));
        }
        Ok(out)
    }

    /// Decrypt personal data and upcast payloads to their current versions.
    pub async fn open(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, CodecError> {
        {
            let mut payloads: Vec<&mut Value> = events.iter_mut().map(|e| &mut e.payload).collect();
            self.keys.open(&mut payloads).await?;
        }
        for e in &mut events {
            self.upcasters.upcast(e)?;
        }
        Ok(events)
    }
}

/// The serde tag and the payload without it.
pub fn encode<E: DomainEvent>(e: &E) -> (String, Value) {
    let mut v = serde_json::to_value(e).expect("domain events serialize");
    if let Value::Object(m) = &mut v {
        m.remove("type");
    }
    (e.event_type().to_string(), v)
}

/// A domain event from an opened stored event.
pub fn decode<E: DomainEvent>(e: &RecordedEvent) -> Result<E, CodecError> {
    let mut v = e.payload.clone();
    if let Value::Object(m) = &mut v {
        m.insert("type".into(), Value::String(e.event_type.clone()));
    }
    serde_json::from_value(v).map_err(|err| CodecError::Undecodable {
        event_type: e.event_type.clone(),
        message: err.to_string(),
    })
}

/// Typed metadata of a stored event (lenient: unknown shapes give `None`).
pub fn metadata_of(e: &RecordedEvent) -> Option<Metadata> {
    Metadata::deserialize(&e.metadata).ok()
}
