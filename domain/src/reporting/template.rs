//! The report template aggregate (stream `report-template-<id>`): what a
//! hospital's reports of one study type (modality + body part + exam item)
//! look like — the structured fields shown with their default text, the
//! default findings and impression, and the print layout (title, header,
//! body, footer; hospital name and logo, patient block, signature block) —
//! and which departments use it. Administrators create, update and retire
//! templates; a retired template is kept (reports name it) but not offered.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::report::ReportContent;
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

/// How the printed report is laid out: the template's title, header, body
/// and footer. Every part left out of a template falls back to the standard
/// report (hospital name and logo shown, the standard patient block, the
/// structured fields, findings, impression, recommendations and key images,
/// signatures and the verification QR code).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrintLayout {
    /// The title printed under the header (e.g. `CT检查报告单`).
    pub title: String,
    /// A line under the hospital name (e.g. `放射科 Department of Radiology`).
    pub header: String,
    /// Lead text printed at the top of the body, before the sections, without a
    /// heading (e.g. the examination technique: `检查方法：64排螺旋CT平扫`).
    pub body: String,
    /// Footer text on every page (e.g. `本报告仅供临床参考`).
    pub footer: String,
    pub show_hospital_name: bool,
    pub show_logo: bool,
    /// The patient block is printed at all.
    pub patient_block: bool,
    /// Which patient-block entries, in order; empty means the standard set.
    pub patient_fields: Vec<PatientItem>,
    /// Which sections the body shows, in order, with their headings; empty
    /// means [`BodySection::standard`].
    pub sections: Vec<BodySection>,
    /// The signatures of the preliminary author and the reviewer.
    pub signature_block: bool,
    /// Role label of the preliminary author's signature; empty means `报告医生`.
    pub preliminary_signature_label: String,
    /// Role label of the reviewer's signature; empty means `审核医生`.
    pub review_signature_label: String,
    /// The verification QR code next to the signatures.
    pub show_qr_code: bool,
}

impl Default for PrintLayout {
    fn default() -> Self {
        PrintLayout {
            title: String::new(),
            header: String::new(),
            body: String::new(),
            footer: String::new(),
            show_hospital_name: true,
            show_logo: true,
            patient_block: true,
            patient_fields: Vec::new(),
            sections: Vec::new(),
            signature_block: true,
            preliminary_signature_label: String::new(),
            review_signature_label: String::new(),
            show_qr_code: true,
        }
    }
}

/// An entry of the printed patient block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientField {
    Name,
    Sex,
    Age,
    PatientId,
    AccessionNumber,
    StudyDate,
    Modality,
    BodyPart,
    /// 检查项目: the study's description.
    ExamItem,
    Department,
    ReferringPhysician,
}

/// A patient-block entry with an optional label of the hospital's own
/// (empty: the standard label, e.g. `姓名`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientItem {
    pub field: PatientField,
    #[serde(default)]
    pub label: String,
}

/// One section of the printed body. `label` is the printed heading; empty
/// means the standard one (`影像所见`, `诊断意见`, `建议`, `关键图像`, or the
/// template field's own label).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BodySection {
    Findings {
        #[serde(default)]
        label: String,
    },
    Impression {
        #[serde(default)]
        label: String,
    },
    Recommendations {
        #[serde(default)]
        label: String,
    },
    /// One structured field of the template.
    Field {
        key: String,
        #[serde(default)]
        label: String,
    },
    /// The structured fields not placed by a [`BodySection::Field`]: each as a
    /// section of its own when `label` is empty, else listed as `label：value`
    /// lines under the heading `label`.
    Fields {
        #[serde(default)]
        label: String,
    },
    KeyImages {
        #[serde(default)]
        label: String,
    },
}

impl BodySection {
    /// The body of a report whose template does not choose: structured
    /// fields, findings, impression, recommendations, key images.
    pub fn standard() -> Vec<BodySection> {
        let label = String::new();
        vec![
            BodySection::Fields { label: label.clone() },
            BodySection::Findings { label: label.clone() },
            BodySection::Impression { label: label.clone() },
            BodySection::Recommendations { label: label.clone() },
            BodySection::KeyImages { label },
        ]
    }

    fn label(&self) -> &str {
        match self {
            BodySection::Findings { label }
            | BodySection::Impression { label }
            | BodySection::Recommendations { label }
            | BodySection::Field { label, .. }
            | BodySection::Fields { label }
            | BodySection::KeyImages { label } => label,
        }
    }

    /// What makes two sections the same (each may be placed once).
    fn identity(&self) -> String {
        match self {
            BodySection::Field { key, .. } => format!("field:{key}"),
            other => format!("{:?}", std::mem::discriminant(other)),
        }
    }
}

/// A section of the printed body with its heading and text, in print order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrintedSection {
    /// Empty: printed without a heading (the template's lead text).
    pub heading: String,
    #[serde(flatten)]
    pub body: PrintedBody,
    /// Printed as an alert (the impression of a critical report).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub alert: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrintedBody {
    Text {
        text: String,
    },
    /// The report's key images go here.
    KeyImages,
}

impl PrintLayout {
    /// The report's body as printed with this layout: the lead text, then the
    /// chosen sections in order with their headings. Blank sections are left
    /// out (a heading without text helps nobody); the key-image section is
    /// kept only when the report has key images. `fields` are the template's
    /// structured fields (their labels and order).
    pub fn arrange(&self, fields: &[TemplateField], content: &ReportContent) -> Vec<PrintedSection> {
        let text = |heading: &str, fallback: &str, text: &str, alert: bool| PrintedSection {
            heading: if heading.trim().is_empty() { fallback } else { heading }
                .trim()
                .to_string(),
            body: PrintedBody::Text {
                text: text.trim().to_string(),
            },
            alert,
        };
        let sections = if self.sections.is_empty() {
            BodySection::standard()
        } else {
            self.sections.clone()
        };
        let label_of = |key: &str| {
            fields
                .iter()
                .find(|f| f.key == key)
                .map_or(key.to_string(), |f| f.label.clone())
        };
        let placed: Vec<&str> = sections
            .iter()
            .filter_map(|s| match s {
                BodySection::Field { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        // Template fields in the template's order, then values under keys the
        // template does not (or no longer) define, by key.
        let mut rest: Vec<(String, &String)> = fields
            .iter()
            .filter(|f| !placed.contains(&f.key.as_str()))
            .filter_map(|f| content.fields.get(&f.key).map(|v| (f.label.clone(), v)))
            .collect();
        rest.extend(
            content
                .fields
                .iter()
                .filter(|(k, _)| !placed.contains(&k.as_str()) && !fields.iter().any(|f| &f.key == *k))
                .map(|(k, v)| (k.clone(), v)),
        );

        let mut out = vec![text("", "", &self.body, false)];
        for s in &sections {
            match s {
                BodySection::Findings { label } => out.push(text(label, "影像所见", &content.findings, false)),
                BodySection::Impression { label } => {
                    out.push(text(label, "诊断意见", &content.impression, content.critical))
                }
                BodySection::Recommendations { label } => {
                    out.push(text(label, "建议", &content.recommendations, false))
                }
                BodySection::Field { key, label } => {
                    let value = content.fields.get(key).map(String::as_str).unwrap_or_default();
                    out.push(text(label, &label_of(key), value, false))
                }
                BodySection::Fields { label } if label.trim().is_empty() => {
                    for (l, v) in &rest {
                        out.push(text(l, l, v, false));
                    }
                }
                BodySection::Fields { label } => {
                    let lines: Vec<String> = rest
                        .iter()
                        .filter(|(_, v)| !v.trim().is_empty())
                        .map(|(l, v)| format!("{l}：{}", v.trim()))
                        .collect();
                    out.push(text(label, label, &lines.join("\n"), false))
                }
                BodySection::KeyImages { label } if !content.key_images.is_empty() => out.push(PrintedSection {
                    heading: if label.trim().is_empty() {
                        "关键图像"
                    } else {
                        label.trim()
                    }
                    .to_string(),
                    body: PrintedBody::KeyImages,
                    alert: false,
                }),
                BodySection::KeyImages { .. } => {}
            }
        }
        out.retain(|s| !matches!(&s.body, PrintedBody::Text { text } if text.is_empty()));
        out
    }
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
        if !within(&l.preliminary_signature_label, 20) || !within(&l.review_signature_label, 20) {
            return bad("signature labels have at most 20 characters");
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &l.patient_fields {
            if !seen.insert(p.field) {
                return bad("a patient-block entry appears once");
            }
            if !within(&p.label, 20) {
                return bad("patient-block labels have at most 20 characters");
            }
        }
        if l.sections.len() > 30 {
            return bad("a layout has at most 30 sections");
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &l.sections {
            if !seen.insert(s.identity()) {
                return bad("a section appears once in a layout");
            }
            if !within(s.label(), 50) {
                return bad("section headings have at most 50 characters");
            }
            if let BodySection::Field { key, .. } = s {
                if !keys.contains(key.as_str()) {
                    return bad("a field section names one of the template's fields");
                }
            }
        }
        self.departments.sort();
        self.departments.dedup();
        Ok(self)
    }
}

/// Schema 2 of `ReportTemplateCreated`/`Updated`: printing follows the whole
/// layout, `show_hospital_name` included (schema 1 always printed the name;
/// its payloads are lifted to `true`, see `commands::codec`).
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
        ReportTemplateCreated = 2,
        ReportTemplateUpdated = 2,
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

    fn decide_spec(spec: TemplateSpec) -> Result<Vec<ReportTemplateEvent>, TemplateError> {
        given::<ReportTemplateDecider>(&[])
            .when(
                ReportTemplateCommand::Create {
                    template_id: Uuid::from_u128(1),
                    hospital_id: Uuid::from_u128(2),
                    spec,
                },
                &Ctx::at(chrono::Utc::now()),
            )
            .outcome()
    }

    #[test]
    fn a_layout_places_each_section_and_patient_entry_once_and_names_only_its_own_fields() {
        let field = |key: &str| BodySection::Field {
            key: key.into(),
            label: String::new(),
        };
        let mut ok = spec();
        ok.layout.sections = vec![
            BodySection::Impression {
                label: "诊断结论".into(),
            },
            field("nodule_size"),
            BodySection::Findings { label: String::new() },
        ];
        ok.layout.patient_fields = vec![
            PatientItem {
                field: PatientField::Name,
                label: "患者姓名".into(),
            },
            PatientItem {
                field: PatientField::PatientId,
                label: String::new(),
            },
        ];
        assert!(decide_spec(ok.clone()).is_ok());

        let mut twice = ok.clone();
        twice
            .layout
            .sections
            .push(BodySection::Impression { label: String::new() });
        assert!(matches!(decide_spec(twice), Err(TemplateError::Invalid(m)) if m.contains("once")));
        let mut field_twice = ok.clone();
        field_twice.layout.sections.push(field("nodule_size"));
        assert!(matches!(decide_spec(field_twice), Err(TemplateError::Invalid(_))));
        let mut unknown = ok.clone();
        unknown.layout.sections.push(field("no_such_field"));
        assert!(matches!(decide_spec(unknown), Err(TemplateError::Invalid(m)) if m.contains("template's fields")));
        let mut patient_twice = ok.clone();
        patient_twice.layout.patient_fields.push(PatientItem {
            field: PatientField::Name,
            label: String::new(),
        });
        assert!(matches!(decide_spec(patient_twice), Err(TemplateError::Invalid(_))));
        let mut long_label = ok;
        long_label.layout.review_signature_label = "审".repeat(21);
        assert!(matches!(decide_spec(long_label), Err(TemplateError::Invalid(_))));
    }

    #[test]
    fn layout_parts_left_out_print_the_standard_report() {
        let l: PrintLayout = serde_json::from_value(serde_json::json!({"title": "CT检查报告单"})).unwrap();
        assert_eq!(l.title, "CT检查报告单");
        assert!(l.show_hospital_name && l.show_logo && l.patient_block && l.signature_block && l.show_qr_code);
        assert!(l.sections.is_empty() && l.patient_fields.is_empty());
        let section: BodySection =
            serde_json::from_value(serde_json::json!({"kind": "field", "key": "nodule_size"})).unwrap();
        assert_eq!(
            section,
            BodySection::Field {
                key: "nodule_size".into(),
                label: String::new()
            }
        );
        assert!(serde_json::from_value::<BodySection>(serde_json::json!({"kind": "signature"})).is_err());
        assert!(serde_json::from_value::<PatientItem>(serde_json::json!({"field": "id_card"})).is_err());
    }

    fn fields() -> Vec<TemplateField> {
        vec![
            TemplateField {
                key: "method".into(),
                label: "检查方法".into(),
                default_text: String::new(),
            },
            TemplateField {
                key: "nodule".into(),
                label: "结节".into(),
                default_text: String::new(),
            },
        ]
    }

    fn content() -> ReportContent {
        ReportContent {
            findings: "双肺纹理清晰。".into(),
            impression: "未见异常。".into(),
            recommendations: "  ".into(),
            critical: true,
            fields: [("nodule", "8mm"), ("method", "平扫"), ("legacy", "旧值")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            key_images: vec![],
        }
    }

    fn headings(s: &[PrintedSection]) -> Vec<&str> {
        s.iter().map(|s| s.heading.as_str()).collect()
    }

    #[test]
    fn the_standard_body_prints_fields_then_findings_impression_and_leaves_blank_sections_out() {
        let printed = PrintLayout::default().arrange(&fields(), &content());
        // Template fields in template order, then unknown keys by key; no recommendations
        // (blank) and no key-image section (none chosen).
        assert_eq!(
            headings(&printed),
            vec!["检查方法", "结节", "legacy", "影像所见", "诊断意见"]
        );
        let impression = &printed[4];
        assert!(impression.alert, "a critical report's impression is an alert");
        assert!(!printed[3].alert);
    }

    #[test]
    fn a_template_orders_relabels_and_chooses_the_sections() {
        let layout = PrintLayout {
            body: "检查技术：64排螺旋CT".into(),
            sections: vec![
                BodySection::Impression {
                    label: "诊断结论".into(),
                },
                BodySection::Field {
                    key: "nodule".into(),
                    label: String::new(),
                },
                BodySection::Findings {
                    label: "检查所见".into(),
                },
                BodySection::Fields { label: "其他".into() },
                BodySection::KeyImages { label: String::new() },
            ],
            ..PrintLayout::default()
        };
        let mut c = content();
        c.key_images = vec!["1.2.3".into()];
        let printed = layout.arrange(&fields(), &c);
        assert_eq!(
            headings(&printed),
            vec!["", "诊断结论", "结节", "检查所见", "其他", "关键图像"]
        );
        assert_eq!(
            printed[0].body,
            PrintedBody::Text {
                text: "检查技术：64排螺旋CT".into()
            }
        );
        assert_eq!(
            printed[4].body,
            PrintedBody::Text {
                text: "检查方法：平扫\nlegacy：旧值".into()
            },
            "fields not placed on their own are listed under the block's heading"
        );
        assert_eq!(printed[5].body, PrintedBody::KeyImages);

        // Sections a template leaves out are not printed.
        let only = PrintLayout {
            sections: vec![BodySection::Impression { label: String::new() }],
            ..PrintLayout::default()
        };
        assert_eq!(headings(&only.arrange(&fields(), &c)), vec!["诊断意见"]);
    }
}
