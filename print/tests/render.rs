//! End-to-end tests: render reports and read the text back with `pdftotext`
//! (Debian `poppler-utils`). Without the tool the extraction tests are skipped,
//! except under `CI=true`, where a missing tool is a failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use medledger_print::{
    render, render_pdf, FontConfig, KeyImage, PatientBlock, PatientField, PrintError, ReportDocument, Section,
    Signature,
};

/// A PNG made in memory: a grey "scan" (radial gradient) or a coloured logo.
fn png(w: u32, h: u32, logo: bool) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().unwrap();
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let dx = x as f32 / w as f32 - 0.5;
                let dy = y as f32 / h as f32 - 0.5;
                let r = (dx * dx + dy * dy).sqrt();
                if logo {
                    let cross = dx.abs() < 0.1 && dy.abs() < 0.3 || dy.abs() < 0.1 && dx.abs() < 0.3;
                    let px = if cross {
                        [255, 255, 255]
                    } else if r < 0.48 {
                        [0x1f, 0x6f, 0xa8]
                    } else {
                        [255, 255, 255]
                    };
                    data.extend_from_slice(&px);
                } else {
                    let v = if r < 0.42 {
                        (200.0 - r * 300.0 + ((x * 7 + y * 13) % 23) as f32) as u8
                    } else {
                        0
                    };
                    data.extend_from_slice(&[v, v, v]);
                }
            }
        }
        wr.write_image_data(&data).unwrap();
    }
    out
}

/// 影像所见, 诊断意见, 建议 and the key images, as the API lays out a report without a template.
fn standard_sections(findings: &str, impression: &str, recommendations: &str) -> Vec<Section> {
    vec![
        Section::text("影像所见", findings),
        Section::text("诊断意见", impression),
        Section::text("建议", recommendations),
        Section::key_images("关键图像"),
    ]
}

fn set_findings(doc: &mut ReportDocument, findings: String) {
    doc.sections[0] = Section::text("影像所见", findings);
}

fn sample() -> ReportDocument {
    ReportDocument {
        hospital_name: "北京协和示范医院".into(),
        hospital_logo: Some(png(64, 64, true)),
        title: "医学影像诊断报告".into(),
        patient: PatientBlock {
            name: "张三".into(),
            sex: "男".into(),
            age: "45岁".into(),
            patient_id: "P20240501-0042".into(),
            accession_number: "ACC-778899".into(),
            study_date: "2024-05-01".into(),
            modality: "CT".into(),
            body_part: "胸部 Chest".into(),
            exam_item: "胸部CT平扫".into(),
            department: "呼吸内科".into(),
            referring_physician: "李四".into(),
            extra: vec![("门诊号".into(), "MZ-55120".into())],
        },
        sections: standard_sections(
            "胸廓对称，气管居中。右肺上叶尖段见一磨玻璃结节，大小约 8 mm × 6 mm，边界清楚（Lung-RADS 2）。\
             双肺门不大，纵隔内未见肿大淋巴结。心影大小形态未见异常，双侧胸腔未见积液。\n\
             Incidental finding: small hiatal hernia, no acute abnormality.",
            "1. 右肺上叶磨玻璃结节，建议随访。\n2. 余胸部CT平扫未见明显异常。",
            "建议 12 个月后低剂量 CT 复查。",
        ),
        critical: false,
        key_images: vec![
            KeyImage {
                data: png(256, 256, false),
                caption: "轴位 肺窗 Se3 Im45".into(),
            },
            KeyImage {
                data: png(320, 240, false),
                caption: "冠状位重建".into(),
            },
        ],
        signatures: vec![
            Signature {
                role: "报告医生".into(),
                name: "王五".into(),
                at: "2024-05-01 10:32".into(),
            },
            Signature {
                role: "审核医生".into(),
                name: "赵六".into(),
                at: "2024-05-01 11:05".into(),
            },
        ],
        verification_url: Some("https://medledger.example/verify/rpt_01HXYZ9K2M".into()),
        printed_at: "2024-05-02 09:15".into(),
        footer_text: "本报告仅供临床参考，请结合临床。".into(),
        layout: Default::default(),
    }
}

fn fonts() -> FontConfig {
    let fonts = FontConfig::from_env();
    assert!(
        fonts.candidates.iter().any(|(p, _)| p.is_file()),
        "no CJK font installed: apt-get install fonts-wqy-microhei (or set MEDLEDGER_CJK_FONT)"
    );
    fonts
}

/// Text of the PDF via `pdftotext`, or `None` (test skipped) when the tool is missing
/// outside CI.
fn pdftotext(pdf: &[u8], name: &str) -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("{name}.pdf"));
    std::fs::File::create(&path).unwrap().write_all(pdf).unwrap();
    match Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "pdftotext failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).unwrap())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "pdftotext (poppler-utils) is required in CI"
            );
            eprintln!("skipping text extraction: pdftotext not installed");
            None
        }
        Err(e) => panic!("pdftotext: {e}"),
    }
}

/// Text without the spaces pdftotext inserts between glyph runs.
fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn chinese_and_latin_text_can_be_extracted() {
    let doc = sample();
    let r = render(&doc, &fonts()).unwrap();
    assert!(r.pdf.starts_with(b"%PDF-"));
    // One page with the default font (WenQuanYi Micro Hei); wider Latin fallbacks may push
    // the signature row onto a second page.
    assert!(r.pages <= 2, "{} pages", r.pages);
    // Fonts are subset: far smaller than the 5 MB CJK font.
    assert!(r.pdf.len() < 400_000, "PDF is {} bytes", r.pdf.len());
    let Some(text) = pdftotext(&r.pdf, "basic") else { return };
    let flat = squash(&text);
    for needle in &[
        "北京协和示范医院",
        "医学影像诊断报告",
        "张三",
        "P20240501-0042",
        "ACC-778899",
        "影像所见",
        "右肺上叶尖段见一磨玻璃结节",
        "Lung-RADS2",
        "Incidentalfinding:smallhiatalhernia",
        "诊断意见",
        "建议12个月后低剂量CT复查",
        "关键图像",
        "冠状位重建",
        "报告医生",
        "王五",
        "2024-05-0111:05",
        "扫码核验报告真伪",
        &format!("第1页/共{}页", r.pages),
        "打印时间：2024-05-0209:15",
        "本报告仅供临床参考",
        "门诊号",
    ] {
        assert!(flat.contains(&squash(needle)), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn long_text_flows_over_several_pages() {
    let mut doc = sample();
    let para = "右肺上叶尖段见一磨玻璃结节，边界清楚，周围未见毛刺及胸膜牵拉征象。The nodule is stable compared with the prior study dated 2023-05-01. ";
    let mut findings = (1..=40)
        .map(|i| format!("第{i}段：{}", para.repeat(2)))
        .collect::<Vec<_>>()
        .join("\n");
    findings.push_str("\n末段标记 END-OF-FINDINGS");
    set_findings(&mut doc, findings);
    let r = render(&doc, &fonts()).unwrap();
    assert!(r.pages >= 3, "expected several pages, got {}", r.pages);
    let Some(text) = pdftotext(&r.pdf, "long") else { return };
    let flat = squash(&text);
    assert_eq!(text.matches('\u{c}').count(), r.pages, "one form feed per page");
    assert!(flat.contains("末段标记END-OF-FINDINGS"));
    assert!(flat.contains(&format!("第1页/共{}页", r.pages)));
    assert!(flat.contains(&format!("第{0}页/共{0}页", r.pages)));
    // Continuation pages repeat who the report is about.
    assert!(flat.matches("P20240501-0042").count() >= r.pages);
    assert!(flat.contains("（续）"));
    // Every paragraph made it, in order.
    let mut at = 0;
    for i in 1..=40 {
        let needle = format!("第{i}段：");
        let pos = flat[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle} missing or out of order"));
        at += pos;
    }
}

#[test]
fn empty_optional_sections_are_omitted() {
    let mut doc = sample();
    doc.sections[2] = Section::text("建议", "  ");
    doc.key_images.clear();
    doc.verification_url = None;
    let pdf = render_pdf(&doc, &fonts()).unwrap();
    let Some(text) = pdftotext(&pdf, "omitted") else { return };
    let flat = squash(&text);
    assert!(flat.contains("诊断意见"));
    assert!(
        !flat.contains("建议：") && !flat.contains("关键图像") && !flat.contains("扫码核验"),
        "{text}"
    );
    // "建议" as a heading is gone; the word only remains inside the impression text.
    assert_eq!(flat.matches("建议").count(), 1, "{text}");
}

#[test]
fn template_can_hide_blocks_and_relabel() {
    let mut doc = sample();
    doc.layout.title_text = Some("CT检查报告单".into());
    doc.layout.header_text = Some("放射科 Department of Radiology".into());
    doc.sections = vec![
        Section::text("", "检查技术：64排螺旋CT平扫"),
        Section::text("诊断结论", "右肺上叶磨玻璃结节。"),
        Section::text("检查所见", "胸廓对称，气管居中。"),
    ];
    doc.layout.show_patient_block = false;
    let pdf = render_pdf(&doc, &fonts()).unwrap();
    let Some(text) = pdftotext(&pdf, "template") else {
        return;
    };
    let flat = squash(&text);
    assert!(flat.contains("CT检查报告单") && flat.contains("DepartmentofRadiology") && flat.contains("检查所见"));
    assert!(
        !flat.contains("关键图像") && !flat.contains("门诊号") && !flat.contains("影像所见"),
        "{text}"
    );
    // The sections come in the template's order, the lead text first.
    let at = |needle: &str| flat.find(needle).unwrap_or_else(|| panic!("{needle} missing:\n{text}"));
    assert!(
        at("检查技术") < at("诊断结论") && at("诊断结论") < at("检查所见"),
        "{text}"
    );
}

#[test]
fn template_chooses_the_patient_entries_and_can_leave_out_the_hospital_name() {
    let mut doc = sample();
    doc.layout.show_hospital_name = false;
    doc.layout.header_text = Some("影像科".into());
    doc.layout.patient_fields = vec![PatientField::PatientId, PatientField::Name, PatientField::ExamItem];
    doc.layout.labels.name = "患者姓名".into();
    doc.layout.show_qr_code = false;
    let pdf = render_pdf(&doc, &fonts()).unwrap();
    let Some(text) = pdftotext(&pdf, "patient-entries") else {
        return;
    };
    let flat = squash(&text);
    assert!(!flat.contains("北京协和示范医院"), "{text}");
    assert!(flat.contains("影像科") && flat.contains("患者姓名") && flat.contains("检查项目胸部CT平扫"));
    assert!(flat.find("患者ID").unwrap() < flat.find("患者姓名").unwrap(), "{text}");
    for gone in ["性别", "检查号", "申请医生", "扫码核验"] {
        assert!(!flat.contains(gone), "{gone} is not chosen:\n{text}");
    }
}

#[test]
fn critical_report_shows_badge() {
    let mut doc = sample();
    doc.critical = true;
    let pdf = render_pdf(&doc, &fonts()).unwrap();
    let Some(text) = pdftotext(&pdf, "critical") else {
        return;
    };
    assert!(squash(&text).contains("危急值"));
}

#[test]
fn invalid_logo_is_a_clear_error() {
    let mut doc = sample();
    doc.hospital_logo = Some(b"definitely not an image".to_vec());
    let err = render_pdf(&doc, &fonts()).unwrap_err();
    assert_eq!(err.code(), "invalid_image");
    assert!(err.to_string().contains("hospital_logo"), "{err}");

    // A PNG signature with a broken body fails too, naming the image.
    let mut doc = sample();
    doc.key_images[1].data = png(32, 32, false)[..40].to_vec();
    let err = render_pdf(&doc, &fonts()).unwrap_err();
    assert_eq!(err.code(), "invalid_image");
    assert!(err.to_string().contains("key_images[1]"), "{err}");
}

#[test]
fn missing_font_is_cjk_font_missing() {
    let fonts = FontConfig::from_path("/nonexistent/medledger/NoSuchFont.ttc", 0);
    let err = render_pdf(&sample(), &fonts).unwrap_err();
    assert!(matches!(err, PrintError::CjkFontMissing { .. }));
    assert_eq!(err.code(), "cjk_font_missing");
    assert!(err.to_string().starts_with("cjk_font_missing"), "{err}");
}

#[test]
fn latin_only_font_is_rejected() {
    let dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    if !std::path::Path::new(dejavu).is_file() {
        return;
    }
    let err = render_pdf(&sample(), &FontConfig::from_path(dejavu, 0)).unwrap_err();
    assert_eq!(err.code(), "font_invalid", "{err}");
}

#[test]
fn env_value_selects_a_collection_face() {
    let c = FontConfig::from_env_value(Some("/x/NotoSansCJK-Regular.ttc#2"));
    assert_eq!(c, FontConfig::from_path("/x/NotoSansCJK-Regular.ttc", 2));
    assert_eq!(
        FontConfig::from_env_value(Some("/x/a.ttf")),
        FontConfig::from_path("/x/a.ttf", 0)
    );
    assert_eq!(FontConfig::from_env_value(Some("  ")), FontConfig::default());
    assert_eq!(FontConfig::from_env_value(None), FontConfig::default());
}

/// Writes a sample to `$MEDLEDGER_PRINT_SAMPLE_DIR` for looking at (no-op otherwise).
#[test]
fn write_samples_when_asked() {
    let Ok(dir) = std::env::var("MEDLEDGER_PRINT_SAMPLE_DIR") else {
        return;
    };
    let mut doc = sample();
    std::fs::write(format!("{dir}/sample.pdf"), render_pdf(&doc, &fonts()).unwrap()).unwrap();
    doc.critical = true;
    doc.layout.header_text = Some("放射科 Department of Radiology".into());
    doc.key_images.push(KeyImage {
        data: png(200, 300, false),
        caption: "矢状位 Sagittal MPR，层厚 1 mm，显示结节与叶间裂关系".into(),
    });
    doc.key_images.push(KeyImage {
        data: png(300, 200, false),
        caption: "".into(),
    });
    let findings = (1..=14)
        .map(|i| format!("第{i}段：右肺上叶尖段见一磨玻璃结节，大小约 8 mm × 6 mm，边界清楚。"))
        .collect::<Vec<_>>()
        .join("\n");
    set_findings(&mut doc, findings);
    std::fs::write(format!("{dir}/long.pdf"), render_pdf(&doc, &fonts()).unwrap()).unwrap();
}

/// The QR code is drawn as vector modules: rasterise the page with `pdftoppm` and
/// decode it back to the verification URL.
#[test]
fn qr_code_decodes_to_the_verification_url() {
    let doc = sample();
    let r = render(&doc, &fonts()).unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("qr.pdf");
    std::fs::write(&path, &r.pdf).unwrap();
    // The QR code sits with the signatures at the end of the report.
    let last = r.pages.to_string();
    let prefix = dir.join("qr-page");
    let status = match Command::new("pdftoppm")
        .args(["-gray", "-png", "-r", "150", "-f", &last, "-l", &last, "-singlefile"])
        .arg(&path)
        .arg(&prefix)
        .status()
    {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "pdftoppm (poppler-utils) is required in CI"
            );
            eprintln!("skipping QR check: pdftoppm not installed");
            return;
        }
        Err(e) => panic!("pdftoppm: {e}"),
    };
    assert!(status.success());
    let png_data = std::fs::read(prefix.with_extension("png")).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_data)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[(y * w + x) * channels]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code on the page");
    assert_eq!(grids[0].decode().unwrap().1, doc.verification_url.unwrap());
}

/// JPEG key images and logos are embedded too. The JPEG is made by `pdftoppm -jpeg`
/// from a rendered page, so no binary fixture lives in the repository.
#[test]
fn jpeg_images_are_embedded() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("for-jpeg.pdf");
    std::fs::write(&path, render_pdf(&sample(), &fonts()).unwrap()).unwrap();
    let prefix = dir.join("for-jpeg");
    match Command::new("pdftoppm")
        .args(["-jpeg", "-r", "20", "-singlefile"])
        .arg(&path)
        .arg(&prefix)
        .status()
    {
        Ok(s) => assert!(s.success()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "pdftoppm (poppler-utils) is required in CI"
            );
            return;
        }
        Err(e) => panic!("pdftoppm: {e}"),
    }
    let jpeg = std::fs::read(prefix.with_extension("jpg")).unwrap();
    assert!(jpeg.starts_with(&[0xff, 0xd8, 0xff]));
    let mut doc = sample();
    doc.hospital_logo = Some(jpeg.clone());
    doc.key_images = vec![KeyImage {
        data: jpeg.clone(),
        caption: "JPEG 关键图像".into(),
    }];
    let pdf = render_pdf(&doc, &fonts()).unwrap();
    assert!(
        pdf.windows(b"/DCTDecode".len()).any(|w| w == b"/DCTDecode"),
        "JPEG passed through as DCT"
    );
    let Some(text) = pdftotext(&pdf, "jpeg") else { return };
    assert!(squash(&text).contains("JPEG关键图像"));

    // A truncated JPEG is reported, not printed as garbage.
    doc.key_images[0].data = jpeg[..jpeg.len() / 3].to_vec();
    match render_pdf(&doc, &fonts()) {
        Err(e) => assert_eq!(e.code(), "invalid_image", "{e}"),
        // zune-jpeg may decode a truncated baseline JPEG partially; that is acceptable.
        Ok(pdf) => assert!(pdf.starts_with(b"%PDF-")),
    }
}

/// `DroidSansFallbackFull.ttf` (Debian `fonts-droid-fallback`) has CJK glyphs but no Latin
/// letters or digits: those must come from the Latin fallback font, not print as tofu.
/// Skipped when that optional package is not installed.
#[test]
fn latin_falls_back_when_the_cjk_font_lacks_it() {
    let droid = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf";
    if !std::path::Path::new(droid).is_file()
        || !std::path::Path::new(medledger_print::DEFAULT_FALLBACK_FONTS[0].0).is_file()
    {
        eprintln!("skipping: fonts-droid-fallback or fonts-dejavu-core not installed");
        return;
    }
    let pdf = render_pdf(&sample(), &FontConfig::from_path(droid, 0)).unwrap();
    let Some(text) = pdftotext(&pdf, "droid") else { return };
    let flat = squash(&text);
    assert!(
        flat.contains("P20240501-0042") && flat.contains("Incidentalfinding") && flat.contains("张三"),
        "{text}"
    );
}
