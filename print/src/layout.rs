//! Page layout: turns a [`ReportDocument`] into a list of pages of drawing operations.
//! Nothing is drawn here, so the total page count is known before the footers
//! (`第 i 页 / 共 N 页`) are rendered.

use crate::font::LoadedFont;
use crate::model::{PatientField, ReportDocument, SectionContent};
use crate::wrap::{ellipsize, wrap};

pub(crate) type Rgb = (u8, u8, u8);

pub(crate) const NAVY: Rgb = (0x1f, 0x3a, 0x5f);
pub(crate) const INK: Rgb = (0x1c, 0x1c, 0x1c);
pub(crate) const MUTED: Rgb = (0x5f, 0x66, 0x70);
pub(crate) const RULE: Rgb = (0xc3, 0xcb, 0xd6);
pub(crate) const TINT: Rgb = (0xed, 0xf1, 0xf6);
pub(crate) const RED: Rgb = (0xc0, 0x1f, 0x2a);
pub(crate) const RED_TINT: Rgb = (0xfb, 0xea, 0xea);
pub(crate) const WHITE: Rgb = (0xff, 0xff, 0xff);
pub(crate) const BLACK: Rgb = (0, 0, 0);

/// A4 in PostScript points.
pub(crate) const PAGE_W: f32 = 595.28;
pub(crate) const PAGE_H: f32 = 841.89;
pub(crate) const MARGIN_X: f32 = 48.0;
const TOP: f32 = 34.0;
const HEADER_H: f32 = 50.0;
/// Baseline of the footer text and the rule above it.
pub(crate) const FOOTER_RULE_Y: f32 = PAGE_H - 44.0;
pub(crate) const FOOTER_TEXT_Y: f32 = PAGE_H - 30.0;
const CONTENT_BOTTOM: f32 = FOOTER_RULE_Y - 12.0;
pub(crate) const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;

const BODY_SIZE: f32 = 10.5;
const BODY_LEADING: f32 = 17.5;
const SECTION_INDENT: f32 = 10.0;
const PARAGRAPH_GAP: f32 = 4.0;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `y` is the baseline.
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: Rgb,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Rgb>,
        stroke: Option<(Rgb, f32)>,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        color: Rgb,
        width: f32,
    },
    /// Index into the decoded images handed to the renderer (0 = logo when present).
    Image {
        index: usize,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
    /// Dark modules as `(x, y, w, h)` rectangles.
    Modules { rects: Vec<(f32, f32, f32, f32)> },
}

/// Label, wrapped value lines, cell width.
type GridCell = (String, Vec<String>, f32);

#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) ops: Vec<Op>,
}

/// Pixel size of each decoded image, same indices as [`Op::Image`].
pub(crate) struct ImageSlots {
    pub(crate) logo: Option<(usize, (u32, u32))>,
    pub(crate) key_images: Vec<(usize, (u32, u32))>,
}

pub(crate) struct Layouter<'a> {
    font: &'a LoadedFont,
    doc: &'a ReportDocument,
    images: &'a ImageSlots,
    pub(crate) pages: Vec<Page>,
    y: f32,
}

impl<'a> Layouter<'a> {
    pub(crate) fn new(font: &'a LoadedFont, doc: &'a ReportDocument, images: &'a ImageSlots) -> Self {
        Self {
            font,
            doc,
            images,
            pages: Vec::new(),
            y: 0.0,
        }
    }

    fn w(&self, text: &str, size: f32) -> f32 {
        self.font.width(text, size)
    }

    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        // 0.5 pt of slack absorbs rounding between our advances and the shaper's.
        wrap(text, max - 0.5, &|s| self.font.width(s, size))
    }

    fn ellipsize(&self, text: &str, size: f32, max: f32) -> String {
        ellipsize(text, max, &|s| self.font.width(s, size))
    }

    fn push(&mut self, op: Op) {
        self.pages.last_mut().expect("a page is open").ops.push(op);
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, color: Rgb, text: impl Into<String>) {
        let text = text.into();
        if !text.is_empty() {
            self.push(Op::Text {
                x,
                y,
                size,
                bold,
                color,
                text,
            });
        }
    }

    fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, color: Rgb, width: f32) {
        self.push(Op::Line {
            x1,
            y1,
            x2,
            y2,
            color,
            width,
        });
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Option<Rgb>, stroke: Option<(Rgb, f32)>) {
        self.push(Op::Rect {
            x,
            y,
            w,
            h,
            fill,
            stroke,
        });
    }

    /// Starts a new page with the running header; continuation pages also repeat the
    /// patient's identity so that loose pages can be matched.
    fn new_page(&mut self) {
        self.pages.push(Page::default());
        self.header();
        self.y = TOP + HEADER_H + 14.0;
        if self.pages.len() > 1 {
            let d = self.doc;
            let l = &d.layout.labels;
            let who = format!(
                "{}  ·  {} {}  ·  {} {}  {}",
                d.patient.name,
                l.patient_id,
                d.patient.patient_id,
                l.accession_number,
                d.patient.accession_number,
                l.continued
            );
            let who = self.ellipsize(&who, 9.0, CONTENT_W);
            self.text(MARGIN_X, self.y + 4.0, 9.0, false, MUTED, who);
            self.y += 18.0;
        }
    }

    fn header(&mut self) {
        let d = self.doc;
        let mut x = MARGIN_X;
        if let Some((index, (pw, ph))) = self.images.logo {
            let h = 42.0;
            let w = (h * pw as f32 / ph.max(1) as f32).min(120.0);
            let h = w * ph as f32 / pw.max(1) as f32;
            self.push(Op::Image {
                index,
                x,
                y: TOP + (42.0 - h) / 2.0,
                w,
                h,
            });
            x += w + 12.0;
        }
        let max = PAGE_W - MARGIN_X - x;
        let name = Some(d.hospital_name.trim())
            .filter(|n| d.layout.show_hospital_name && !n.is_empty())
            .map(|n| self.ellipsize(n, 17.0, max));
        let sub = d.layout.header_text.as_deref().map(str::trim).filter(|s| !s.is_empty());
        match (name, sub) {
            (Some(name), Some(sub)) => {
                self.text(x, TOP + 19.0, 17.0, true, NAVY, name);
                let sub = self.ellipsize(sub, 9.5, max);
                self.text(x, TOP + 36.0, 9.5, false, MUTED, sub);
            }
            (Some(name), None) => self.text(x, TOP + 27.0, 17.0, true, NAVY, name),
            // Without the hospital name the header line takes its place, a size smaller.
            (None, Some(sub)) => {
                let sub = self.ellipsize(sub, 13.0, max);
                self.text(x, TOP + 26.0, 13.0, true, NAVY, sub);
            }
            (None, None) => {}
        }
        let y = TOP + HEADER_H;
        self.line(MARGIN_X, y, PAGE_W - MARGIN_X, y, NAVY, 1.4);
        self.line(MARGIN_X, y + 2.5, PAGE_W - MARGIN_X, y + 2.5, NAVY, 0.4);
    }

    /// Makes room for `h` points, breaking the page when needed.
    fn ensure(&mut self, h: f32) {
        if self.y + h > CONTENT_BOTTOM {
            self.new_page();
        }
    }

    pub(crate) fn run(mut self) -> Vec<Page> {
        let d = self.doc;
        let o = &d.layout;
        self.new_page();
        self.title();
        if o.show_patient_block {
            self.patient_grid();
        }
        for s in &d.sections {
            match &s.content {
                SectionContent::Text(text) => self.section(&s.heading, text, s.alert),
                SectionContent::KeyImages if !self.images.key_images.is_empty() => self.key_images(&s.heading),
                SectionContent::KeyImages => {}
            }
        }
        self.signatures_and_qr();
        self.pages
    }

    fn title(&mut self) {
        let d = self.doc;
        let title = d.layout.title_text.as_deref().unwrap_or(&d.title).trim().to_string();
        let size = 19.0;
        let badge = d.critical.then(|| d.layout.labels.critical_badge.clone());
        let badge_w = badge.as_ref().map(|b| self.w(b, 10.0) + 14.0).unwrap_or(0.0);
        let title = self.ellipsize(&title, size, CONTENT_W - 2.0 * badge_w - 16.0);
        let tw = self.w(&title, size);
        let x = (PAGE_W - tw) / 2.0;
        let base = self.y + 20.0;
        self.text(x, base, size, true, INK, title.clone());
        if let Some(b) = badge {
            let bx = x + tw + 10.0;
            self.rect(bx, base - 14.0, badge_w, 18.0, Some(RED), None);
            self.text(bx + 7.0, base - 1.5, 10.0, true, WHITE, b);
        }
        self.y += 36.0;
    }

    fn patient_grid(&mut self) {
        let d = self.doc;
        let p = &d.patient;
        let l = &d.layout.labels;
        let dash = |v: &str| {
            if v.trim().is_empty() {
                "—".to_string()
            } else {
                v.trim().to_string()
            }
        };
        let chosen: &[PatientField] = if d.layout.patient_fields.is_empty() {
            &PatientField::STANDARD
        } else {
            &d.layout.patient_fields
        };
        let mut fields: Vec<(String, String)> = chosen
            .iter()
            .map(|f| match f {
                PatientField::Name => (l.name.clone(), dash(&p.name)),
                PatientField::Sex => (l.sex.clone(), dash(&p.sex)),
                PatientField::Age => (l.age.clone(), dash(&p.age)),
                PatientField::PatientId => (l.patient_id.clone(), dash(&p.patient_id)),
                PatientField::AccessionNumber => (l.accession_number.clone(), dash(&p.accession_number)),
                PatientField::StudyDate => (l.study_date.clone(), dash(&p.study_date)),
                PatientField::Modality => (l.modality.clone(), dash(&p.modality)),
                PatientField::BodyPart => (l.body_part.clone(), dash(&p.body_part)),
                PatientField::ExamItem => (l.exam_item.clone(), dash(&p.exam_item)),
                PatientField::Department => (l.department.clone(), dash(&p.department)),
                PatientField::ReferringPhysician => (l.referring_physician.clone(), dash(&p.referring_physician)),
            })
            .collect();
        fields.extend(
            p.extra
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string())),
        );

        const COLS: usize = 3;
        const LABEL_W: f32 = 58.0;
        const SIZE: f32 = 9.5;
        const LEADING: f32 = 13.0;
        const PAD_Y: f32 = 6.0;
        let col_w = CONTENT_W / COLS as f32;
        // Wrap every value first so the whole grid can be kept on one page.
        let rows: Vec<(Vec<GridCell>, f32)> = fields
            .chunks(COLS)
            .map(|row| {
                let cells: Vec<GridCell> = row
                    .iter()
                    .enumerate()
                    .map(|(i, (label, value))| {
                        // The last cell of a short row spans the remaining columns.
                        let span = if i + 1 == row.len() { COLS - i } else { 1 };
                        let cw = col_w * span as f32;
                        (label.clone(), self.wrap(value, SIZE, cw - LABEL_W - 12.0), cw)
                    })
                    .collect();
                let lines = cells.iter().map(|c| c.1.len()).max().unwrap_or(1).max(1);
                (cells, lines as f32 * LEADING + 2.0 * PAD_Y)
            })
            .collect();
        let total: f32 = rows.iter().map(|r| r.1).sum();
        self.ensure(total);
        let x0 = MARGIN_X;
        let top = self.y;
        let mut y = top;
        for (i, (cells, h)) in rows.iter().enumerate() {
            let mut x = x0;
            for (label, vals, cw) in cells {
                self.rect(x, y, LABEL_W, *h, Some(TINT), None);
                let lab = self.ellipsize(label, SIZE, LABEL_W - 10.0);
                self.text(x + 7.0, y + PAD_Y + 9.5, SIZE, false, MUTED, lab);
                for (j, v) in vals.iter().enumerate() {
                    self.text(
                        x + LABEL_W + 7.0,
                        y + PAD_Y + 9.5 + j as f32 * LEADING,
                        SIZE,
                        false,
                        INK,
                        v.clone(),
                    );
                }
                self.line(x + LABEL_W, y, x + LABEL_W, y + h, RULE, 0.5);
                if x > x0 {
                    self.line(x, y, x, y + h, RULE, 0.5);
                }
                x += cw;
            }
            y += h;
            if i + 1 < rows.len() {
                self.line(x0, y, x0 + CONTENT_W, y, RULE, 0.5);
            }
        }
        self.rect(x0, top, CONTENT_W, y - top, None, Some((RULE, 0.8)));
        self.y = y + 18.0;
    }

    fn section_heading(&mut self, label: &str, alert: bool) {
        let (bar, bg, fg) = if alert {
            (RED, RED_TINT, RED)
        } else {
            (NAVY, TINT, NAVY)
        };
        self.rect(MARGIN_X, self.y, CONTENT_W, 21.0, Some(bg), None);
        self.rect(MARGIN_X, self.y, 3.5, 21.0, Some(bar), None);
        self.text(MARGIN_X + 11.0, self.y + 15.0, 11.5, true, fg, label.to_string());
        self.y += 29.0;
    }

    /// A titled block of wrapped text; blank text omits the whole section, an empty
    /// title prints the text alone. Each `\n` starts a paragraph, set off by a small gap;
    /// blank lines give a larger one.
    fn section(&mut self, label: &str, body: &str, alert: bool) {
        if body.trim().is_empty() {
            return;
        }
        let width = CONTENT_W - 2.0 * SECTION_INDENT;
        let paragraphs: Vec<Vec<String>> = body
            .trim()
            .replace("\r\n", "\n")
            .split('\n')
            .map(|p| {
                if p.trim().is_empty() {
                    Vec::new()
                } else {
                    self.wrap(p.trim(), BODY_SIZE, width)
                }
            })
            .collect();
        // Keep the heading with at least two lines of its text.
        let first_lines = paragraphs.iter().flatten().take(2).count();
        let heading = !label.trim().is_empty();
        self.ensure(if heading { 29.0 } else { 0.0 } + BODY_LEADING * first_lines as f32);
        if heading {
            self.section_heading(label.trim(), alert);
        }
        for (i, lines) in paragraphs.iter().enumerate() {
            if i > 0 {
                self.y += if lines.is_empty() {
                    BODY_LEADING * 0.6
                } else {
                    PARAGRAPH_GAP
                };
            }
            for (j, line) in lines.iter().enumerate() {
                // Widow/orphan control: never leave the first line of a paragraph alone
                // at the bottom of a page, nor carry its last line alone to the next one.
                let left = lines.len() - j;
                let keep = if (j == 0 && left >= 2) || (j > 0 && left == 2) {
                    2.0
                } else {
                    1.0
                };
                self.ensure(BODY_LEADING * keep);
                self.text(
                    MARGIN_X + SECTION_INDENT,
                    self.y + 12.0,
                    BODY_SIZE,
                    false,
                    INK,
                    line.clone(),
                );
                self.y += BODY_LEADING;
            }
        }
        self.y += 12.0;
    }

    fn key_images(&mut self, heading: &str) {
        const COLS: usize = 3;
        const GAP: f32 = 12.0;
        const BOX_H: f32 = 120.0;
        const CAP_SIZE: f32 = 8.5;
        const CAP_LEADING: f32 = 11.5;
        let d = self.doc;
        let cell_w = (CONTENT_W - 2.0 * SECTION_INDENT - GAP * (COLS - 1) as f32) / COLS as f32;
        let slots: Vec<_> = self.images.key_images.clone();
        let mut first = true;
        for (row_i, row) in slots.chunks(COLS).enumerate() {
            let captions: Vec<Vec<String>> = row
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    let cap = &d.key_images[row_i * COLS + i].caption;
                    let mut c = self.wrap(cap.trim(), CAP_SIZE, cell_w);
                    if c.len() > 3 {
                        c.truncate(3);
                        let last = format!("{}…", c[2]);
                        c[2] = self.ellipsize(&last, CAP_SIZE, cell_w);
                    }
                    c.retain(|s| !s.is_empty());
                    c
                })
                .collect();
            let cap_lines = captions.iter().map(Vec::len).max().unwrap_or(0);
            let row_h = BOX_H
                + if cap_lines > 0 {
                    6.0 + cap_lines as f32 * CAP_LEADING
                } else {
                    0.0
                }
                + 10.0;
            if first {
                self.ensure(29.0 + row_h);
                if !heading.trim().is_empty() {
                    self.section_heading(heading.trim(), false);
                }
                first = false;
            } else {
                self.ensure(row_h);
            }
            let mut x = MARGIN_X + SECTION_INDENT;
            for ((index, (pw, ph)), caps) in row.iter().zip(&captions) {
                let y = self.y;
                self.rect(x, y, cell_w, BOX_H, Some(BLACK), None);
                let scale = (cell_w / *pw as f32).min(BOX_H / *ph as f32);
                let (w, h) = (*pw as f32 * scale, *ph as f32 * scale);
                self.push(Op::Image {
                    index: *index,
                    x: x + (cell_w - w) / 2.0,
                    y: y + (BOX_H - h) / 2.0,
                    w,
                    h,
                });
                self.rect(x, y, cell_w, BOX_H, None, Some((RULE, 0.6)));
                for (i, c) in caps.iter().enumerate() {
                    let cx = x + (cell_w - self.w(c, CAP_SIZE)) / 2.0;
                    self.text(
                        cx,
                        y + BOX_H + 6.0 + 8.5 + i as f32 * CAP_LEADING,
                        CAP_SIZE,
                        false,
                        MUTED,
                        c.clone(),
                    );
                }
                x += cell_w + GAP;
            }
            self.y += row_h;
        }
    }

    fn signatures_and_qr(&mut self) {
        let d = self.doc;
        let o = &d.layout;
        let sigs: Vec<_> = if o.show_signatures {
            d.signatures
                .iter()
                .filter(|s| !(s.name.trim().is_empty() && s.role.trim().is_empty()))
                .collect()
        } else {
            Vec::new()
        };
        let url = d
            .verification_url
            .as_deref()
            .map(str::trim)
            .filter(|u| o.show_qr_code && !u.is_empty());
        let qr = url.and_then(|u| qrcode::QrCode::new(u.as_bytes()).ok().map(|q| (u, q)));
        if sigs.is_empty() && qr.is_none() {
            return;
        }

        const QR_SIZE: f32 = 74.0;
        const QR_COL_W: f32 = 120.0;
        const SIG_H: f32 = 50.0;
        let sig_area_w = if qr.is_some() {
            CONTENT_W - QR_COL_W - 10.0
        } else {
            CONTENT_W
        };
        let sig_cols = 2usize;
        let sig_w = sig_area_w / sig_cols as f32;
        let sig_rows = sigs.len().div_ceil(sig_cols);
        let url_lines = qr
            .as_ref()
            .map(|(u, _)| self.wrap(u, 6.5, QR_COL_W))
            .unwrap_or_default();
        let url_lines: Vec<String> = url_lines.into_iter().take(2).collect();
        let qr_h = if qr.is_some() {
            QR_SIZE + 12.0 + url_lines.len() as f32 * 8.5
        } else {
            0.0
        };
        let block_h = (sig_rows as f32 * SIG_H).max(qr_h) + 10.0;
        self.ensure(block_h + 8.0);
        self.y += 2.0;
        self.line(MARGIN_X, self.y, PAGE_W - MARGIN_X, self.y, RULE, 0.8);
        let top = self.y + 12.0;

        for (i, s) in sigs.iter().enumerate() {
            let x = MARGIN_X + SECTION_INDENT + (i % sig_cols) as f32 * sig_w;
            let y = top + (i / sig_cols) as f32 * SIG_H;
            let role = format!("{}：", s.role.trim());
            let rw = self.w(&role, 10.0);
            self.text(x, y + 14.0, 10.0, false, MUTED, role);
            let name = self.ellipsize(s.name.trim(), 13.0, sig_w - rw - 16.0);
            self.text(x + rw + 2.0, y + 14.5, 13.0, true, INK, name);
            self.line(x + rw, y + 19.5, x + sig_w - 16.0, y + 19.5, RULE, 0.5);
            let at = self.ellipsize(s.at.trim(), 8.5, sig_w - rw - 16.0);
            self.text(x + rw + 2.0, y + 31.0, 8.5, false, MUTED, at);
        }

        if let Some((_, code)) = qr {
            let colx = PAGE_W - MARGIN_X - QR_COL_W;
            let qx = colx + (QR_COL_W - QR_SIZE) / 2.0;
            let n = code.width();
            let quiet = 1.0;
            let module = QR_SIZE / (n as f32 + 2.0 * quiet);
            let mut rects = Vec::new();
            let colors = code.to_colors();
            for row in 0..n {
                let mut col = 0;
                while col < n {
                    if colors[row * n + col] == qrcode::Color::Dark {
                        let start = col;
                        while col < n && colors[row * n + col] == qrcode::Color::Dark {
                            col += 1;
                        }
                        rects.push((
                            qx + (quiet + start as f32) * module,
                            top + (quiet + row as f32) * module,
                            (col - start) as f32 * module,
                            // A hair of overlap avoids white seams between rows in viewers.
                            module + 0.05,
                        ));
                    } else {
                        col += 1;
                    }
                }
            }
            self.push(Op::Modules { rects });
            let cap = &o.labels.qr_caption;
            let cw = self.w(cap, 8.0);
            self.text(
                colx + (QR_COL_W - cw) / 2.0,
                top + QR_SIZE + 9.0,
                8.0,
                false,
                MUTED,
                cap.clone(),
            );
            for (i, l) in url_lines.iter().enumerate() {
                let lw = self.w(l, 6.5);
                self.text(
                    colx + (QR_COL_W - lw) / 2.0,
                    top + QR_SIZE + 19.0 + i as f32 * 8.5,
                    6.5,
                    false,
                    MUTED,
                    l.clone(),
                );
            }
        }
        self.y = top + block_h;
    }
}
