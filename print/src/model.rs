//! The plain input model. Nothing here depends on other MedLedger crates: the caller
//! (API or worker) maps its own read model onto these structs.

/// A final diagnostic report as it should appear on paper.
///
/// All times are pre-formatted strings (e.g. `2024-05-01 10:32`): the caller decides
/// the hospital's time zone and format, the printer only lays them out.
#[derive(Debug, Clone, Default)]
pub struct ReportDocument {
    /// Hospital name shown in the page header, e.g. `某某市第一人民医院`.
    pub hospital_name: String,
    /// Optional hospital logo, PNG or JPEG bytes. Invalid bytes are an error
    /// ([`crate::PrintError::InvalidImage`]), never silently dropped: the logo is
    /// configured once per hospital and a broken one must be noticed.
    pub hospital_logo: Option<Vec<u8>>,
    /// Report title, e.g. `医学影像诊断报告`. [`LayoutOptions::title_text`] overrides it.
    pub title: String,
    /// Patient and examination details shown as a grid below the title.
    pub patient: PatientBlock,
    /// The body in print order: text sections (findings, impression, the template's
    /// structured fields, …) and where the key images go. A text section whose text is
    /// blank is omitted entirely (heading included); a section with an empty heading is
    /// printed as plain text (e.g. a template's lead text).
    pub sections: Vec<Section>,
    /// Critical (危急值) result: a red badge next to the title. Sections marked
    /// [`Section::alert`] get a red heading.
    pub critical: bool,
    /// Key images, laid out in a grid of three columns where a [`SectionContent::KeyImages`]
    /// section stands. Empty → that section is omitted.
    pub key_images: Vec<KeyImage>,
    /// Signatures (报告医生, 审核医生, ...). Empty → the signature row is omitted.
    pub signatures: Vec<Signature>,
    /// URL encoded in the verification QR code. `None` or blank → no QR code.
    pub verification_url: Option<String>,
    /// Printed time shown in the footer of every page.
    pub printed_at: String,
    /// Footer text (e.g. `本报告仅供临床参考`). [`LayoutOptions::footer_text`] overrides it.
    pub footer_text: String,
    /// Options coming from the report template.
    pub layout: LayoutOptions,
}

/// One section of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The heading (e.g. `影像所见`); empty: no heading bar.
    pub heading: String,
    pub content: SectionContent,
    /// Printed as an alert: red heading bar (e.g. the impression of a critical report).
    pub alert: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionContent {
    /// Paragraphs separated by `\n`.
    Text(String),
    /// The document's key images.
    KeyImages,
}

impl Section {
    pub fn text(heading: impl Into<String>, text: impl Into<String>) -> Self {
        Section {
            heading: heading.into(),
            content: SectionContent::Text(text.into()),
            alert: false,
        }
    }

    pub fn key_images(heading: impl Into<String>) -> Self {
        Section {
            heading: heading.into(),
            content: SectionContent::KeyImages,
            alert: false,
        }
    }
}

/// An entry of the patient block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientField {
    Name,
    Sex,
    Age,
    PatientId,
    AccessionNumber,
    StudyDate,
    Modality,
    BodyPart,
    ExamItem,
    Department,
    ReferringPhysician,
}

impl PatientField {
    /// The standard patient block, in order.
    pub const STANDARD: [PatientField; 10] = [
        PatientField::Name,
        PatientField::Sex,
        PatientField::Age,
        PatientField::PatientId,
        PatientField::AccessionNumber,
        PatientField::StudyDate,
        PatientField::Modality,
        PatientField::BodyPart,
        PatientField::Department,
        PatientField::ReferringPhysician,
    ];
}

/// The patient block. Empty standard fields are printed as `—` so that the grid keeps
/// its shape; empty `extra` fields are left out.
#[derive(Debug, Clone, Default)]
pub struct PatientBlock {
    pub name: String,
    pub sex: String,
    pub age: String,
    pub patient_id: String,
    pub accession_number: String,
    pub study_date: String,
    pub modality: String,
    pub body_part: String,
    /// 检查项目 (e.g. the study description `胸部CT平扫`).
    pub exam_item: String,
    pub department: String,
    pub referring_physician: String,
    /// Additional `(label, value)` pairs appended to the grid (e.g. `床号`).
    pub extra: Vec<(String, String)>,
}

/// One key image: PNG or JPEG bytes and a caption printed below it.
#[derive(Debug, Clone, Default)]
pub struct KeyImage {
    pub data: Vec<u8>,
    pub caption: String,
}

/// One signature line.
#[derive(Debug, Clone, Default)]
pub struct Signature {
    /// Role label, e.g. `报告医生` or `审核医生`.
    pub role: String,
    pub name: String,
    /// When the doctor signed, pre-formatted.
    pub at: String,
}

/// Layout options coming from the report template.
#[derive(Debug, Clone)]
pub struct LayoutOptions {
    /// Overrides [`ReportDocument::title`] when set.
    pub title_text: Option<String>,
    /// A sub-line under the hospital name (e.g. `放射科 Department of Radiology`).
    pub header_text: Option<String>,
    /// Overrides [`ReportDocument::footer_text`] when set.
    pub footer_text: Option<String>,
    pub show_hospital_name: bool,
    pub show_logo: bool,
    pub show_patient_block: bool,
    /// The patient-block entries in order; empty means [`PatientField::STANDARD`]. Labels
    /// come from [`Labels`].
    pub patient_fields: Vec<PatientField>,
    pub show_signatures: bool,
    pub show_qr_code: bool,
    /// Patient-block and fixed labels.
    pub labels: Labels,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        Self {
            title_text: None,
            header_text: None,
            footer_text: None,
            show_hospital_name: true,
            show_logo: true,
            show_patient_block: true,
            patient_fields: Vec::new(),
            show_signatures: true,
            show_qr_code: true,
            labels: Labels::default(),
        }
    }
}

/// Every fixed string printed on the report, so a template can relabel or translate
/// (section headings come with the [`Section`]s).
#[derive(Debug, Clone)]
pub struct Labels {
    pub name: String,
    pub sex: String,
    pub age: String,
    pub patient_id: String,
    pub accession_number: String,
    pub study_date: String,
    pub modality: String,
    pub body_part: String,
    pub exam_item: String,
    pub department: String,
    pub referring_physician: String,
    pub critical_badge: String,
    pub qr_caption: String,
    /// `{page}` and `{pages}` are replaced.
    pub page_number: String,
    /// Prefix of the printed time in the footer.
    pub printed_at: String,
    /// Marker after the patient line on continuation pages.
    pub continued: String,
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            name: "姓名".into(),
            sex: "性别".into(),
            age: "年龄".into(),
            patient_id: "患者ID".into(),
            accession_number: "检查号".into(),
            study_date: "检查日期".into(),
            modality: "检查类型".into(),
            body_part: "检查部位".into(),
            exam_item: "检查项目".into(),
            department: "申请科室".into(),
            referring_physician: "申请医生".into(),
            critical_badge: "危急值".into(),
            qr_caption: "扫码核验报告真伪".into(),
            page_number: "第 {page} 页 / 共 {pages} 页".into(),
            printed_at: "打印时间：".into(),
            continued: "（续）".into(),
        }
    }
}
