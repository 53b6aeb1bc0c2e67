//! # medledger-print — final diagnostic report → A4 PDF
//!
//! [`render_pdf`] takes a plain [`ReportDocument`] (no dependency on the other MedLedger
//! crates) and returns the bytes of a PDF a hospital can hand to a patient.
//!
//! ## Layout (A4, 595 × 842 pt, 48 pt side margins)
//!
//! * **Header, every page:** hospital logo (scaled to 42 pt high), hospital name and the
//!   template's header line (each can be switched off), over a double navy rule. Pages 2…
//!   repeat the patient's name, patient ID and accession number with `（续）` so loose
//!   pages can be matched.
//! * **Title** centred, with a red `危急值` badge for critical results.
//! * **Patient block:** a ruled grid, three label/value pairs per row, the entries and
//!   their order chosen by the template ([`LayoutOptions::patient_fields`]); long values
//!   wrap and the row grows; the last cell of a short row spans the rest of the row.
//! * **Sections** in the order of [`ReportDocument::sections`] (the template's: 影像所见,
//!   诊断意见, 建议, structured fields, …): bold heading on a tinted bar (red for an
//!   alert), 10.5 pt body on a 17.5 pt leading; a section without a heading is plain text. Text is wrapped by `wrap.rs` (breaks between CJK
//!   characters and at spaces, keeps Latin words whole, basic 禁则 for punctuation) and
//!   flows onto new pages line by line; a heading is never left alone at a page bottom.
//!   A blank section is omitted entirely (heading included), as is any block switched
//!   off in [`LayoutOptions`].
//! * **Key images** where their section stands: three-column grid, each image fitted into a black 120 pt box with
//!   its caption (max. three lines) below; rows move to the next page as a whole.
//! * **Signatures** (role, name, time; two per row) with the **verification QR code** on
//!   the right, drawn as vector rectangles from the `qrcode` matrix (sharp at any zoom,
//!   no PNG round trip), kept together on one page.
//! * **Footer, every page:** footer text (left), `第 i 页 / 共 N 页` (centre), printed time
//!   (right). Pages are laid out first as drawing operations, so `N` is known.
//!
//! ## Why krilla
//!
//! [`krilla`](https://docs.rs/krilla) (0.8, by the typst authors; it is the PDF back end
//! of typst itself) builds from crates.io alone, is pure Rust, **subsets TrueType/CFF
//! fonts** (only the glyphs used are embedded: the sample report with two key images is
//! ~80 KB instead of carrying the 5 MB CJK font), writes a `ToUnicode` map (text can be
//! searched and extracted), opens a face **inside a `.ttc` collection** by index, and
//! embeds PNG/JPEG images (JPEG passed through as DCT). Alternatives considered:
//! `printpdf` 0.7 always embeds the entire font (its maintainer in printpdf#189 — a
//! 5–20 MB PDF per CJK report); later printpdf releases are a rewrite around the azul
//! HTML layout engine with a much larger dependency tree, and subsetting was reported
//! switched off in 0.9 (printpdf#250); `genpdf` is unmaintained and pinned to printpdf
//! 0.5; a typst-based pipeline would pull in a full typesetting compiler (and the build
//! time on our 2-core CI) for one fixed layout. krilla gives us drawing primitives only,
//! so line breaking and pagination live here (`wrap.rs`, `layout.rs`), measured with
//! `ttf-parser` (already in the tree through krilla's shaper).
//!
//! ## Fonts
//!
//! The CJK font draws everything it has glyphs for, its Latin letters included, so a
//! report looks uniform; characters it lacks are drawn with the first Latin fallback
//! that has them (Debian `fonts-dejavu-core`, [`DEFAULT_FALLBACK_FONTS`]) — needed for
//! `DroidSansFallbackFull.ttf`, which has no Latin at all. Bold is synthesised by
//! stroking the glyph outline (WenQuanYi Micro Hei has no bold face). No font is shipped
//! in the repository and nothing is downloaded: [`FontConfig::from_env`] reads
//! `MEDLEDGER_CJK_FONT` (`path` or `path#face` for a `.ttc`), else tries the Debian paths
//! in [`DEFAULT_CJK_FONTS`] — first `fonts-wqy-microhei`, the package the project installs.
//! No font found → [`PrintError::CjkFontMissing`] (`cjk_font_missing`), never a panic.

mod font;
mod layout;
mod model;
mod wrap;

use std::sync::Arc;

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::TextDirection;
use krilla::Document;

pub use font::{FontConfig, CJK_FONT_ENV, DEFAULT_CJK_FONTS, DEFAULT_FALLBACK_FONTS};
pub use model::{
    KeyImage, Labels, LayoutOptions, PatientBlock, PatientField, ReportDocument, Section, SectionContent, Signature,
};

use layout::{ImageSlots, Layouter, Op, Rgb};

/// Why a report could not be printed. [`PrintError::code`] gives a stable identifier for
/// API error bodies and logs.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("cjk_font_missing: no CJK font found (set MEDLEDGER_CJK_FONT or install fonts-wqy-microhei); searched: {}", searched.join(", "))]
    CjkFontMissing { searched: Vec<String> },
    #[error("font_invalid: {path}: {reason}")]
    FontInvalid { path: String, reason: String },
    #[error("invalid_image: {what}: {reason}")]
    InvalidImage { what: String, reason: String },
    #[error("pdf_write_failed: {0}")]
    Pdf(String),
}

impl PrintError {
    /// Stable machine-readable code, e.g. `cjk_font_missing`.
    pub fn code(&self) -> &'static str {
        match self {
            PrintError::CjkFontMissing { .. } => "cjk_font_missing",
            PrintError::FontInvalid { .. } => "font_invalid",
            PrintError::InvalidImage { .. } => "invalid_image",
            PrintError::Pdf(_) => "pdf_write_failed",
        }
    }
}

/// A rendered report and its page count.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    pub pdf: Vec<u8>,
    pub pages: usize,
}

/// Renders `doc` to PDF bytes with the CJK font located by `fonts`
/// (usually [`FontConfig::from_env`]).
pub fn render_pdf(doc: &ReportDocument, fonts: &FontConfig) -> Result<Vec<u8>, PrintError> {
    render(doc, fonts).map(|r| r.pdf)
}

/// Like [`render_pdf`], also returning the number of pages.
pub fn render(doc: &ReportDocument, fonts: &FontConfig) -> Result<RenderedReport, PrintError> {
    let font = fonts.load()?;

    // Decode image headers up front so bad bytes fail with a named culprit.
    let mut images: Vec<Image> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut slots = ImageSlots {
        logo: None,
        key_images: Vec::new(),
    };
    if doc.layout.show_logo {
        if let Some(bytes) = doc.hospital_logo.as_ref() {
            let img = decode_image(bytes, "hospital_logo")?;
            slots.logo = Some((images.len(), img.size()));
            images.push(img);
            labels.push("hospital_logo".into());
        }
    }
    if doc.sections.iter().any(|s| s.content == SectionContent::KeyImages) {
        for (i, k) in doc.key_images.iter().enumerate() {
            let what = format!("key_images[{i}]");
            let img = decode_image(&k.data, &what)?;
            slots.key_images.push((images.len(), img.size()));
            images.push(img);
            labels.push(what);
        }
    }

    let pages = Layouter::new(&font, doc, &slots).run();
    let total = pages.len();

    let mut document = Document::new();
    let title = doc.layout.title_text.as_deref().unwrap_or(&doc.title);
    document.set_metadata(
        Metadata::new()
            .title(format!("{} - {}", title.trim(), doc.patient.name.trim()))
            .language("zh-CN".into())
            .creator("MedLedger".into())
            .producer("medledger-print".into()),
    );
    let footer = doc
        .layout
        .footer_text
        .as_deref()
        .unwrap_or(&doc.footer_text)
        .trim()
        .to_string();
    for (i, page) in pages.iter().enumerate() {
        let mut p =
            document.start_page_with(PageSettings::from_wh(layout::PAGE_W, layout::PAGE_H).expect("A4 is valid"));
        let mut s = p.surface();
        for op in &page.ops {
            draw(&mut s, &font, &images, op);
        }
        for op in footer_ops(&font, doc, &footer, i + 1, total) {
            draw(&mut s, &font, &images, &op);
        }
        s.finish();
        p.finish();
    }
    let pdf = document.finish().map_err(|e| match e {
        // Image bodies are decoded lazily by krilla; a truncated image surfaces here.
        krilla::error::KrillaError::Image(img, _, reason) => {
            let what = images
                .iter()
                .position(|i| *i == img)
                .map(|i| labels[i].clone())
                .unwrap_or_default();
            PrintError::InvalidImage { what, reason }
        }
        other => PrintError::Pdf(format!("{other:?}")),
    })?;
    Ok(RenderedReport { pdf, pages: total })
}

fn decode_image(bytes: &[u8], what: &str) -> Result<Image, PrintError> {
    let invalid = |reason: String| PrintError::InvalidImage {
        what: what.to_string(),
        reason,
    };
    let data: krilla::Data = Arc::new(bytes.to_vec()).into();
    let img = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Image::from_png(data, true).map_err(invalid)?
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Image::from_jpeg(data, true).map_err(invalid)?
    } else {
        return Err(invalid("not a PNG or JPEG image".into()));
    };
    let (w, h) = img.size();
    if w == 0 || h == 0 {
        return Err(invalid("image has no pixels".into()));
    }
    Ok(img)
}

fn footer_ops(font: &font::LoadedFont, doc: &ReportDocument, footer: &str, page: usize, pages: usize) -> Vec<Op> {
    use layout::{CONTENT_W, FOOTER_RULE_Y, FOOTER_TEXT_Y, MARGIN_X, MUTED, PAGE_W, RULE};
    const SIZE: f32 = 8.5;
    let l = &doc.layout.labels;
    let number = l
        .page_number
        .replace("{page}", &page.to_string())
        .replace("{pages}", &pages.to_string());
    let printed = if doc.printed_at.trim().is_empty() {
        String::new()
    } else {
        format!("{}{}", l.printed_at, doc.printed_at.trim())
    };
    let w = |s: &str| font.width(s, SIZE);
    let nw = w(&number);
    let pw = w(&printed);
    let side = (CONTENT_W - nw) / 2.0 - 12.0;
    let footer = wrap::ellipsize(footer, side, &w);
    let y = FOOTER_TEXT_Y;
    let text = |x: f32, t: String| Op::Text {
        x,
        y,
        size: SIZE,
        bold: false,
        color: MUTED,
        text: t,
    };
    let mut ops = vec![Op::Line {
        x1: MARGIN_X,
        y1: FOOTER_RULE_Y,
        x2: PAGE_W - MARGIN_X,
        y2: FOOTER_RULE_Y,
        color: RULE,
        width: 0.6,
    }];
    ops.push(text((PAGE_W - nw) / 2.0, number));
    if !footer.is_empty() {
        ops.push(text(MARGIN_X, footer));
    }
    if !printed.is_empty() {
        ops.push(text(
            PAGE_W - MARGIN_X - pw.min(side),
            wrap::ellipsize(&printed, side, &w),
        ));
    }
    ops
}

fn color(c: Rgb) -> rgb::Color {
    rgb::Color::new(c.0, c.1, c.2)
}

fn fill(c: Rgb) -> Fill {
    Fill {
        paint: color(c).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

fn stroke(c: Rgb, width: f32) -> Stroke {
    Stroke {
        paint: color(c).into(),
        width,
        ..Default::default()
    }
}

fn draw(s: &mut krilla::surface::Surface<'_>, font: &font::LoadedFont, images: &[Image], op: &Op) {
    match op {
        Op::Text {
            x,
            y,
            size,
            bold,
            color: c,
            text,
        } => {
            s.set_fill(Some(fill(*c)));
            // Synthetic bold: fill plus a thin outline stroke in the same colour.
            s.set_stroke(bold.then(|| stroke(*c, size * 0.035)));
            let mut x = *x;
            for (face, run) in font.runs(text) {
                s.draw_text(
                    Point::from_xy(x, *y),
                    font.krilla(face),
                    *size,
                    run,
                    false,
                    TextDirection::Auto,
                );
                x += font.width(run, *size);
            }
            s.set_stroke(None);
        }
        Op::Rect {
            x,
            y,
            w,
            h,
            fill: f,
            stroke: st,
        } => {
            let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) else {
                return;
            };
            let mut pb = PathBuilder::new();
            pb.push_rect(rect);
            let Some(path) = pb.finish() else { return };
            s.set_fill(f.map(fill));
            s.set_stroke(st.map(|(c, w)| stroke(c, w)));
            s.draw_path(&path);
            s.set_stroke(None);
        }
        Op::Line {
            x1,
            y1,
            x2,
            y2,
            color: c,
            width,
        } => {
            let mut pb = PathBuilder::new();
            pb.move_to(*x1, *y1);
            pb.line_to(*x2, *y2);
            let Some(path) = pb.finish() else { return };
            s.set_fill(None);
            s.set_stroke(Some(stroke(*c, *width)));
            s.draw_path(&path);
            s.set_stroke(None);
        }
        Op::Image { index, x, y, w, h } => {
            let (Some(img), Some(size)) = (images.get(*index), Size::from_wh(*w, *h)) else {
                return;
            };
            s.push_transform(&Transform::from_translate(*x, *y));
            s.draw_image(img.clone(), size);
            s.pop();
        }
        Op::Modules { rects } => {
            let mut pb = PathBuilder::new();
            for (x, y, w, h) in rects {
                if let Some(r) = Rect::from_xywh(*x, *y, *w, *h) {
                    pb.push_rect(r);
                }
            }
            let Some(path) = pb.finish() else { return };
            s.set_fill(Some(fill(layout::BLACK)));
            s.set_stroke(None);
            s.draw_path(&path);
        }
    }
}
