//! The knowledge-base entry aggregate (stream `knowledge-entry-<id>`): a
//! reusable report phrase (知识库词条) — title, findings text, impression
//! text, tags, modality and body part. Hospital-wide entries are kept by
//! administrators; personal entries by their owner. Inserting an entry into
//! a report is recorded on the report (`KnowledgePhraseInserted` with the
//! entry id), so usage can be counted.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::within;
use crate::decider::{Ctx, Decider};

/// What an entry says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySpec {
    pub title: String,
    #[serde(default)]
    pub findings: String,
    #[serde(default)]
    pub impression: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub modality: String,
    #[serde(default)]
    pub body_part: String,
}

impl EntrySpec {
    fn check(mut self) -> Result<EntrySpec, KnowledgeError> {
        let bad = |what: &str| Err(KnowledgeError::Invalid(what.to_string()));
        self.title = self.title.trim().to_string();
        if self.title.is_empty() || !within(&self.title, 100) {
            return bad("a title has 1 to 100 characters");
        }
        if self.findings.trim().is_empty() && self.impression.trim().is_empty() {
            return bad("an entry needs findings or impression text");
        }
        if !within(&self.findings, 5_000) || !within(&self.impression, 5_000) {
            return bad("entry texts have at most 5000 characters");
        }
        let mut tags: Vec<String> = self
            .tags
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        tags.sort();
        tags.dedup();
        if tags.len() > 20 || tags.iter().any(|t| !within(t, 30)) {
            return bad("at most 20 tags of at most 30 characters");
        }
        self.tags = tags;
        self.modality = self.modality.trim().to_uppercase();
        self.body_part = self.body_part.trim().to_uppercase();
        if !within(&self.modality, 16) || !within(&self.body_part, 64) {
            return bad("modality has at most 16 and body part at most 64 characters");
        }
        Ok(self)
    }
}

/// Hospital-wide, or one user's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum EntryScope {
    Hospital,
    Personal { owner: Uuid },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum KnowledgeEntryEvent {
    KnowledgeEntryCreated {
        entry_id: Uuid,
        hospital_id: Uuid,
        scope: EntryScope,
        spec: EntrySpec,
    },
    KnowledgeEntryUpdated {
        entry_id: Uuid,
        hospital_id: Uuid,
        spec: EntrySpec,
    },
    KnowledgeEntryRetired {
        entry_id: Uuid,
        hospital_id: Uuid,
    },
}

crate::event_catalog!(
    KnowledgeEntryEvent,
    "reporting",
    [
        KnowledgeEntryCreated = 1,
        KnowledgeEntryUpdated = 1,
        KnowledgeEntryRetired = 1
    ]
);

#[derive(Clone, Debug, PartialEq)]
pub enum KnowledgeEntryCommand {
    Create {
        entry_id: Uuid,
        hospital_id: Uuid,
        scope: EntryScope,
        spec: EntrySpec,
    },
    Update {
        spec: EntrySpec,
    },
    Retire,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KnowledgeError {
    #[error("the entry already exists")]
    AlreadyExists,
    #[error("no such knowledge-base entry")]
    NotFound,
    #[error("the entry is retired")]
    Retired,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KnowledgeEntry {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub scope: EntryScope,
    pub spec: EntrySpec,
    pub retired: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnowledgeEntryState {
    pub entry: Option<KnowledgeEntry>,
}

pub struct KnowledgeEntryDecider;

impl Decider for KnowledgeEntryDecider {
    type State = KnowledgeEntryState;
    type Command = KnowledgeEntryCommand;
    type Event = KnowledgeEntryEvent;
    type Error = KnowledgeError;

    fn decide(
        s: &KnowledgeEntryState,
        c: KnowledgeEntryCommand,
        _: &Ctx,
    ) -> Result<Vec<KnowledgeEntryEvent>, KnowledgeError> {
        match c {
            KnowledgeEntryCommand::Create {
                entry_id,
                hospital_id,
                scope,
                spec,
            } => {
                if s.entry.is_some() {
                    return Err(KnowledgeError::AlreadyExists);
                }
                Ok(vec![KnowledgeEntryEvent::KnowledgeEntryCreated {
                    entry_id,
                    hospital_id,
                    scope,
                    spec: spec.check()?,
                }])
            }
            KnowledgeEntryCommand::Update { spec } => {
                let e = s.entry.as_ref().ok_or(KnowledgeError::NotFound)?;
                if e.retired {
                    return Err(KnowledgeError::Retired);
                }
                let spec = spec.check()?;
                if spec == e.spec {
                    return Ok(vec![]);
                }
                Ok(vec![KnowledgeEntryEvent::KnowledgeEntryUpdated {
                    entry_id: e.id,
                    hospital_id: e.hospital_id,
                    spec,
                }])
            }
            KnowledgeEntryCommand::Retire => {
                let e = s.entry.as_ref().ok_or(KnowledgeError::NotFound)?;
                if e.retired {
                    return Ok(vec![]);
                }
                Ok(vec![KnowledgeEntryEvent::KnowledgeEntryRetired {
                    entry_id: e.id,
                    hospital_id: e.hospital_id,
                }])
            }
        }
    }

    fn evolve(mut s: KnowledgeEntryState, e: &KnowledgeEntryEvent) -> KnowledgeEntryState {
        match e {
            KnowledgeEntryEvent::KnowledgeEntryCreated {
                entry_id,
                hospital_id,
                scope,
                spec,
            } => {
                s.entry = Some(KnowledgeEntry {
                    id: *entry_id,
                    hospital_id: *hospital_id,
                    scope: *scope,
                    spec: spec.clone(),
                    retired: false,
                })
            }
            KnowledgeEntryEvent::KnowledgeEntryUpdated { spec, .. } => {
                if let Some(x) = s.entry.as_mut() {
                    x.spec = spec.clone();
                }
            }
            KnowledgeEntryEvent::KnowledgeEntryRetired { .. } => {
                if let Some(x) = s.entry.as_mut() {
                    x.retired = true;
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    fn spec() -> EntrySpec {
        EntrySpec {
            title: "正常胸片".into(),
            findings: "双肺纹理清晰，心影不大。".into(),
            impression: "胸部未见异常。".into(),
            tags: vec!["胸部".into(), " 正常 ".into(), "胸部".into()],
            modality: "dr".into(),
            body_part: "chest".into(),
        }
    }

    #[test]
    fn an_entry_needs_a_title_and_text_and_is_normalized() {
        let ctx = Ctx::at(chrono::Utc::now());
        let create = |spec| KnowledgeEntryCommand::Create {
            entry_id: Uuid::from_u128(1),
            hospital_id: Uuid::from_u128(2),
            scope: EntryScope::Personal {
                owner: Uuid::from_u128(3),
            },
            spec,
        };
        let events = given::<KnowledgeEntryDecider>(&[])
            .when(create(spec()), &ctx)
            .outcome()
            .unwrap();
        let KnowledgeEntryEvent::KnowledgeEntryCreated { spec: s, .. } = &events[0] else {
            panic!("expected a creation, got {events:?}");
        };
        assert_eq!(s.tags, vec!["正常".to_string(), "胸部".to_string()]);
        assert_eq!((s.modality.as_str(), s.body_part.as_str()), ("DR", "CHEST"));
        let mut empty = spec();
        empty.findings.clear();
        empty.impression = " ".into();
        assert!(matches!(
            given::<KnowledgeEntryDecider>(&[]).when(create(empty), &ctx).outcome(),
            Err(KnowledgeError::Invalid(_))
        ));
        let retired = KnowledgeEntryEvent::KnowledgeEntryRetired {
            entry_id: Uuid::from_u128(1),
            hospital_id: Uuid::from_u128(2),
        };
        given::<KnowledgeEntryDecider>(&[events[0].clone(), retired])
            .when(KnowledgeEntryCommand::Update { spec: spec() }, &ctx)
            .then_error(KnowledgeError::Retired);
    }
}
