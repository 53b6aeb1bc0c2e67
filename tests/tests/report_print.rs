//! The printed report follows its template, on both deployments: two templates
//! give the same kind of report visibly different PDFs (title, header, patient
//! block, sections and their order and headings, structured fields, footer,
//! signatures, QR code), and a long report runs over pages with a continuation
//! header and page numbers. The PDFs are read back with poppler's `pdftotext`.
//!
//! Set `MEDLEDGER_REPORT_PDF_SAMPLE_DIR` to keep the PDFs for looking at.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::stow_all;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, TestServer};
use serde_json::{json, Value};

medledger_tests::on_both_deployments!(two_templates_print_the_same_kind_of_report_differently);

fn study(index: u32) -> CtSpec {
    CtSpec {
        study_index: index,
        rows: 16,
        columns: 16,
        ..CtSpec::default()
    }
}

async fn user(s: &TestServer, o: &Org, name: &str, role: &str) -> String {
    let login = format!("{name}.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": login, "name": name, "password": PASSWORD, "roles": [o.h1_roles[role]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    s.login(&login, PASSWORD).await.0
}

async fn template(s: &TestServer, o: &Org, spec: Value) -> String {
    let r = s.post("/api/v1/report-templates", Some(&o.h1_admin), spec).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// Writes, submits, reviews and prints the study's report; the PDF bytes.
async fn final_pdf(
    s: &TestServer,
    doctor: &str,
    reviewer: &str,
    study_uid: &str,
    template_id: &str,
    content: Value,
) -> Vec<u8> {
    let opened = s
        .post(
            &format!("/api/v1/studies/{study_uid}/report"),
            Some(doctor),
            json!({"template_id": template_id}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let id = opened.body["report"]["id"].as_str().unwrap().to_string();
    let mut body = content;
    body["version"] = json!(1);
    let saved = s.post(&format!("/api/v1/reports/{id}/save"), Some(doctor), body).await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let submitted = s
        .post(
            &format!("/api/v1/reports/{id}/submit"),
            Some(doctor),
            json!({"version": 2}),
        )
        .await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    let reviewed = s
        .post(
            &format!("/api/v1/reports/{id}/review"),
            Some(reviewer),
            json!({"version": 2}),
        )
        .await;
    assert_eq!(reviewed.status, 200, "{}", reviewed.body);
    let pdf = s
        .http
        .post(s.url(&format!("/api/v1/reports/{id}/print")))
        .bearer_auth(doctor)
        .header("accept", "application/pdf")
        .json(&json!({"copies": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    pdf.bytes().await.unwrap().to_vec()
}

/// The text of each page (poppler's `pdftotext`, spaces removed), or `None` when
/// poppler is not installed outside CI.
fn pages(pdf: &[u8], name: &str) -> Option<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    if let Ok(keep) = std::env::var("MEDLEDGER_REPORT_PDF_SAMPLE_DIR") {
        std::fs::write(std::path::Path::new(&keep).join(format!("{name}.pdf")), pdf).unwrap();
    }
    let out = match std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            assert!(
                !medledger_tests::in_ci(),
                "pdftotext (poppler-utils) is needed under CI"
            );
            return None;
        }
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut pages: Vec<String> = text
        .split('\u{c}')
        .map(|p| p.chars().filter(|c| !c.is_whitespace()).collect())
        .collect();
    if pages.last().is_some_and(String::is_empty) {
        pages.pop();
    }
    Some(pages)
}

/// `needles` appear in `text` in this order.
fn in_order(text: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match text[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!("{n:?} missing or out of order in:\n{text}"),
        }
    }
}

fn absent(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(!text.contains(n), "{n:?} must not be printed:\n{text}");
    }
}

async fn two_templates_print_the_same_kind_of_report_differently(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let tech = user(&s, &o, "tech", "technician").await;
    let reviewer = user(&s, &o, "zhao", "reviewer").await;
    stow_all(
        &s,
        &tech,
        vec![
            synthetic_ct(&study(0)),
            synthetic_ct(&study(1)),
            synthetic_ct(&study(2)),
        ],
    )
    .await;
    let head = s.head().await;
    let _ = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    let fields = json!([
        {"key": "method", "label": "检查方法", "default_text": "平扫"},
        {"key": "nodule", "label": "结节大小", "default_text": "无"}
    ]);
    // The standard layout with a title, header line, footer and signature labels of its own.
    let standard = template(
        &s,
        &o,
        json!({
            "name": "胸部CT标准",
            "study_type": {"modality": "CT", "body_part": "CHEST"},
            "fields": fields,
            "layout": {"title": "胸部CT诊断报告单", "header": "放射科 Department of Radiology",
                       "footer": "甲版页脚：本报告仅供临床参考",
                       "preliminary_signature_label": "报告医师", "review_signature_label": "审核医师"}
        }),
    )
    .await;
    // An outpatient short form: no hospital name, its own patient entries, the impression
    // first, one structured field, a lead text, no signatures and no QR code.
    let outpatient = template(
        &s,
        &o,
        json!({
            "name": "门诊简版",
            "study_type": {"modality": "CT", "body_part": "CHEST"},
            "fields": fields,
            "layout": {
                "title": "CT检查报告（门诊）",
                "header": "影像科",
                "body": "检查技术：低剂量螺旋CT",
                "footer": "乙版页脚",
                "show_hospital_name": false,
                "patient_fields": [{"field": "patient_id", "label": "门诊号"}, {"field": "name"},
                                   {"field": "exam_item"}],
                "sections": [{"kind": "impression", "label": "诊断结论"},
                             {"kind": "field", "key": "nodule", "label": "结节"},
                             {"kind": "findings", "label": "检查所见"}],
                "signature_block": false,
                "show_qr_code": false
            }
        }),
    )
    .await;
    // A layout naming a field the template does not have is refused, nothing written.
    let r = s
        .post(
            "/api/v1/report-templates",
            Some(&o.h1_admin),
            json!({"name": "坏模板", "study_type": {}, "layout": {"sections": [{"kind": "field", "key": "x"}]}}),
        )
        .await;
    r.assert_problem(422, "invalid_template");
    let r = s
        .post(
            "/api/v1/report-templates",
            Some(&o.h1_admin),
            json!({"name": "坏模板", "study_type": {}, "layout": {"sections": [{"kind": "signature"}]}}),
        )
        .await;
    r.assert_problem(422, "invalid_body");

    let content = json!({
        "findings": "右肺上叶尖段见磨玻璃结节，边界清楚。",
        "impression": "右肺上叶磨玻璃结节，建议随访。",
        "fields": {"method": "平扫", "nodule": "8mm"}
    });
    let a = final_pdf(
        &s,
        &o.u1_token,
        &reviewer,
        &study(0).study_instance_uid(),
        &standard,
        content.clone(),
    )
    .await;
    let b = final_pdf(
        &s,
        &o.u1_token,
        &reviewer,
        &study(1).study_instance_uid(),
        &outpatient,
        content,
    )
    .await;
    let Some(a) = pages(&a, "template-standard") else {
        return s.stop().await;
    };
    let b = pages(&b, "template-outpatient").unwrap();
    assert_eq!((a.len(), b.len()), (1, 1), "one page each");
    let (a, b) = (&a[0], &b[0]);

    in_order(
        a,
        &[
            "瑞金医院",
            "DepartmentofRadiology",
            "胸部CT诊断报告单",
            "姓名",
            "性别",
            "检查号",
            "检查方法",
            "平扫",
            "结节大小",
            "8mm",
            "影像所见",
            "右肺上叶尖段见磨玻璃结节",
            "诊断意见",
            "右肺上叶磨玻璃结节，建议随访。",
            "报告医师",
            "审核医师",
            "扫码核验报告真伪",
        ],
    );
    assert!(a.contains("甲版页脚") && a.contains("第1页/共1页"), "{a}");

    in_order(
        b,
        &[
            "影像科",
            "CT检查报告（门诊）",
            "门诊号",
            "P00000000",
            "姓名",
            "检查项目",
            "检查技术：低剂量螺旋CT",
            "诊断结论",
            "右肺上叶磨玻璃结节，建议随访。",
            "结节",
            "8mm",
            "检查所见",
            "右肺上叶尖段见磨玻璃结节",
        ],
    );
    assert!(b.contains("乙版页脚") && b.contains("第1页/共1页"), "{b}");
    absent(
        b,
        &[
            "瑞金医院",
            "性别",
            "检查号",
            "影像所见",
            "诊断意见",
            "检查方法",
            "报告医",
            "审核医",
            "扫码核验",
        ],
    );

    // A long report: later pages carry the continuation header and every page its number.
    let long: Vec<String> = (1..=45)
        .map(|i| format!("第{i}段：右肺上叶尖段见磨玻璃结节，边界清楚，周围未见毛刺及胸膜牵拉征象，建议随访复查。"))
        .collect();
    let pdf = final_pdf(
        &s,
        &o.u1_token,
        &reviewer,
        &study(2).study_instance_uid(),
        &standard,
        json!({"findings": long.join("\n"), "impression": "末段诊断。", "fields": {"method": "平扫"}}),
    )
    .await;
    let long_pages = pages(&pdf, "template-long").unwrap();
    let n = long_pages.len();
    assert!(n >= 2, "{n} pages");
    for (i, page) in long_pages.iter().enumerate() {
        assert!(
            page.contains(&format!("第{}页/共{n}页", i + 1)),
            "page {}: {page}",
            i + 1
        );
        assert!(page.contains("瑞金医院"), "the header on every page");
        if i > 0 {
            in_order(page, &["Synthetic", "P00000000", "（续）"]);
        } else {
            assert!(!page.contains("（续）"));
        }
    }
    in_order(
        &long_pages.concat(),
        &["第1段", "第45段", "诊断意见", "末段诊断。", "审核医师"],
    );
    s.stop().await;
}
