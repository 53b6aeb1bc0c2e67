//! The report template aggregate (stream `report-template-<id>`): what a
//! hospital's reports of one study type (modality + body part + exam item)
//! look like — the structured fields shown with their default text, the
//! default findings and impression, and the print layout (title, header,
//! body, footer; hospital name and logo, patient block, signature block) —
//! and which departments use it. Administrators create, update and retire
//! templates; a retired template is kept (reports name it) but not offered.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::within;
use crate::decider::{Ctx, Decider};

/// The study type a template is for. Empty parts match any value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyType {
    #[serde(default)]
    pub modality: String,
    #[serde(default)]
    pub body_part: String,
    #[serde(default)]
    pub exam_item: String,
}

/// One structured field of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateField {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub default_text: String,
}

/// How the printed report is laid out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintLayout {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub header: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub footer: String,
    #[serde(default)]
    pub show_hospital_name: bool,
    #[serde(default)]
    pub show_logo: bool,
    #[serde(default)]
    pub patient_block: bool,
    #[serde(default)]
    pub signature_block: bool,
}

/// Everything an administrator writes into a template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub name: String,
    pub study_type: StudyType,
    #[serde(default)]
    pub fields: Vec<TemplateField>,
    #[serde(default)]
    pub default_findings: String,
    #[serde(default)]
    pub default_impression: String,
    #[serde(default)]
    pub layout: PrintLayout,
    /// Departments that use it; empty means the whole hospital.
    #[serde(default)]
    pub departments: Vec<Uuid>,
}

impl TemplateSpec {
    fn check(mut self) -> Result<TemplateSpec, TemplateError> {
        let bad = |what: &str| Err(TemplateError::Invalid(what.to_string()));
        self.name = self.name.trim().to_string();
        if self.name.is_empty() || !within(&self.name, 100) {
            return bad("a template name has 1 to 100 characters");
        }
        let st = &mut self.study_type;
        st.modality = st.modality.trim().to_uppercase();
        st.body_part = st.body_part.trim().to_uppercase();
        st.exam_item = st.exam_item.trim().to_string();
        if !within(&st.modality, 16) || !within(&st.body_part, 64) || !within(&st.exam_item, 100) {
            return bad("modality (16), body part (64) and exam item (100 characters) are too long");
        }
        if self.fields.len() > 100 {
            return bad("a template has at most 100 fields");
        }
        let mut keys = std::collections::BTreeSet::new();
        for f in &self.fields {
            let key_ok = !f.key.is_empty()
                && f.key.len() <= 64
                && f.key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !key_ok {
                return bad("field keys are 1-64 characters of letters, digits, '_', '-' and '.'");
            }
            if !keys.insert(f.key.as_str()) {
                return bad("field keys are unique within a template");
            }
            if f.label.trim().is_empty() || !within(&f.label, 100) || !within(&f.default_text, 2_000) {
                return bad("a field needs a label of at most 100 characters and default text of at most 2000");
            }
        }
        if !within(&self.default_findings, 20_000) || !within(&self.default_impression, 20_000) {
            return bad("default texts have at most 20000 characters");
        }
        let l = &self.layout;
        if [&l.title, &l.header, &l.body, &l.footer]
            .iter()
            .any(|t| !within(t, 5_000))
        {
            return bad("layout parts have at most 5000 characters");
        }
        self.departments.sort();
        self.departments.dedup();
        Ok(self)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReportTemplateEvent {
    ReportTemplateCreated {
        template_id: Uuid,
        hospital_id: Uuid,
        spec: TemplateSpec,
    },
    ReportTemplateUpdated {
        template_id: Uuid,
        hospital_id: Uuid,
        spec: TemplateSpec,
    },
    ReportTemplateRetired {
        template_id: Uuid,
        hospital_id: Uuid,
    },
}

crate::event_catalog!(
    ReportTemplateEvent,
    "reporting",
    [
        ReportTemplateCreated = 1,
        ReportTemplateUpdated = 1,
        ReportTemplateRetired = 1
    ]
);

#[derive(Clone, Debug, PartialEq)]
pub enum ReportTemplateCommand {
    Create {
        template_id: Uuid,
        hospital_id: Uuid,
        spec: TemplateSpec,
    },
    Update {
        spec: TemplateSpec,
    },
    Retire,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template already exists")]
    AlreadyExists,
    #[error("no such template")]
    NotFound,
    #[error("the template is retired")]
    Retired,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportTemplate {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub spec: TemplateSpec,
    pub retired: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportTemplateState {
    pub template: Option<ReportTemplate>,
}

pub struct ReportTemplateDecider;

impl Decider for ReportTemplateDecider {
    type State = ReportTemplateState;
    type Command = ReportTemplateCommand;
    type Event = ReportTemplateEvent;
    type Error = TemplateError;

    fn decide(
        s: &ReportTemplateState,
        c: ReportTemplateCommand,
        _: &Ctx,
    ) -> Result<Vec<ReportTemplateEvent>, TemplateError> {
        match c {
            ReportTemplateCommand::Create {
                template_id,
                hospital_id,
                spec,
            } => {
                if s.template.is_some() {
                    return Err(TemplateError::AlreadyExists);
                }
                Ok(vec![ReportTemplateEvent::ReportTemplateCreated {
                    template_id,
                    hospital_id,
                    spec: spec.check()?,
                }])
            }
            ReportTemplateCommand::Update { spec } => {
                let t = s.template.as_ref().ok_or(TemplateError::NotFound)?;
                if t.retired {
                    return Err(TemplateError::Retired);
                }
                let spec = spec.check()?;
                if spec == t.spec {
                    return Ok(vec![]);
                }
                Ok(vec![ReportTemplateEvent::ReportTemplateUpdated {
                    template_id: t.id,
                    hospital_id: t.hospital_id,
                    spec,
                }])
            }
            ReportTemplateCommand::Retire => {
                let t = s.template.as_ref().ok_or(TemplateError::NotFound)?;
                if t.retired {
                    return Ok(vec![]);
                }
                Ok(vec![ReportTemplateEvent::ReportTemplateRetired {
                    template_id: t.id,
                    hospital_id: t.hospital_id,
                }])
            }
        }
    }

    fn evolve(mut s: ReportTemplateState, e: &ReportTemplateEvent) -> ReportTemplateState {
        match e {
            ReportTemplateEvent::ReportTemplateCreated {
                template_id,
                hospital_id,
                spec,
            } => {
                s.template = Some(ReportTemplate {
                    id: *template_id,
                    hospital_id: *hospital_id,
                    spec: spec.clone(),
                    retired: false,
                })
            }
            ReportTemplateEvent::ReportTemplateUpdated { spec, .. } => {
                if let Some(t) = s.template.as_mut() {
                    t.spec = spec.clone();
                }
            }
            ReportTemplateEvent::ReportTemplateRetired { .. } => {
                if let Some(t) = s.template.as_mut() {
                    t.retired = true;
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

    fn spec() -> TemplateSpec {
        TemplateSpec {
            name: " 胸部CT平扫 ".into(),
            study_type: StudyType {
                modality: "ct".into(),
                body_part: "chest".into(),
                exam_item: "胸部平扫".into(),
            },
            fields: vec![TemplateField {
                key: "nodule_size".into(),
                label: "结节大小".into(),
                default_text: "无".into(),
            }],
            default_findings: "双肺纹理清晰。".into(),
            default_impression: "胸部CT平扫未见异常。".into(),
            layout: PrintLayout {
                title: "CT检查报告单".into(),
                show_hospital_name: true,
                show_logo: true,
                patient_block: true,
                signature_block: true,
                ..Default::default()
            },
            departments: vec![],
        }
    }

    fn created() -> ReportTemplateEvent {
        let mut s = spec();
        s.name = "胸部CT平扫".into();
        s.study_type.modality = "CT".into();
        s.study_type.body_part = "CHEST".into();
        ReportTemplateEvent::ReportTemplateCreated {
            template_id: Uuid::from_u128(1),
            hospital_id: Uuid::from_u128(2),
            spec: s,
        }
    }

    #[test]
    fn a_template_is_normalized_checked_and_retired_once() {
        let ctx = Ctx::at(chrono::Utc::now());
        given::<ReportTemplateDecider>(&[])
            .when(
                ReportTemplateCommand::Create {
                    template_id: Uuid::from_u128(1),
                    hospital_id: Uuid::from_u128(2),
                    spec: spec(),
                },
                &ctx,
            )
            .then(&[created()]);
        let mut dup = spec();
        dup.fields.push(dup.fields[0].clone());
        assert!(matches!(
            given::<ReportTemplateDecider>(&[created()])
                .when(ReportTemplateCommand::Update { spec: dup }, &ctx)
                .outcome(),
            Err(TemplateError::Invalid(_))
        ));
        given::<ReportTemplateDecider>(&[created()])
            .when(ReportTemplateCommand::Update { spec: spec() }, &ctx)
            .then(&[]);
        let retired = ReportTemplateEvent::ReportTemplateRetired {
            template_id: Uuid::from_u128(1),
            hospital_id: Uuid::from_u128(2),
        };
        given::<ReportTemplateDecider>(&[created()])
            .when(ReportTemplateCommand::Retire, &ctx)
            .then(std::slice::from_ref(&retired));
        given::<ReportTemplateDecider>(&[created(), retired.clone()])
            .when(ReportTemplateCommand::Retire, &ctx)
            .then(&[]);
        given::<ReportTemplateDecider>(&[created(), retired])
            .when(ReportTemplateCommand::Update { spec: spec() }, &ctx)
            .then_error(TemplateError::Retired);
        given::<ReportTemplateDecider>(&[])
            .when(ReportTemplateCommand::Retire, &ctx)
            .then_error(TemplateError::NotFound);
    }
}
