//! Report templates, the knowledge base, the self-review setting, priors and
//! diffs through the HTTP API on both backends.

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_tests::dicomweb::stow_all;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, TestServer};
use serde_json::{json, Value};

medledger_tests::on_both_deployments!(
    templates_phrases_self_review_priors_and_diffs,
    template_and_knowledge_lists_are_paged_by_cursor,
);

async fn user(s: &TestServer, o: &Org, name: &str, roles: &[&str]) -> String {
    let login = format!("{name}.{}", o.suffix);
    let roles: Vec<Value> = roles.iter().map(|r| o.h1_roles[*r].clone()).collect();
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": login, "name": name, "password": PASSWORD, "roles": roles}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    s.login(&login, PASSWORD).await.0
}

fn study(index: u32) -> CtSpec {
    CtSpec {
        study_index: index,
        rows: 16,
        columns: 16,
        ..CtSpec::default()
    }
}

async fn templates_phrases_self_review_priors_and_diffs(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let tech = user(&s, &o, "tech", &["technician"]).await;
    let senior = user(&s, &o, "senior", &["doctor", "reviewer"]).await;
    stow_all(&s, &tech, vec![synthetic_ct(&study(0)), synthetic_ct(&study(1))]).await;
    let head = s.head().await;
    let _ = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;

    // Templates: administrators define them per study type; others may not; bad input refused.
    let spec = json!({
        "name": "胸部CT平扫",
        "study_type": {"modality": "ct", "body_part": "chest", "exam_item": "平扫"},
        "fields": [{"key": "nodule", "label": "结节", "default_text": "无"}],
        "default_findings": "双肺纹理清晰。",
        "default_impression": "未见异常。",
        "layout": {"title": "胸部CT诊断报告", "footer": "仅供临床参考"}
    });
    s.post("/api/v1/report-templates", Some(&o.u1_token), spec.clone())
        .await
        .assert_problem(403, "forbidden");
    let mut bad = spec.clone();
    bad["name"] = json!("  ");
    let r = s.post("/api/v1/report-templates", Some(&o.h1_admin), bad).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = s.post("/api/v1/report-templates", Some(&o.h1_admin), spec).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let template = r.body["id"].as_str().unwrap().to_string();
    let listed = s
        .get(
            &format!(
                "/api/v1/report-templates?modality=CT&min_position={}",
                r.body["position"]
            ),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["items"][0]["template_id"], template.as_str());
    assert_eq!(
        listed.body["items"][0]["study_type"]["body_part"], "CHEST",
        "normalised"
    );

    // A report started from the template carries its defaults.
    let a = s
        .post(
            &format!("/api/v1/studies/{}/report", study(0).study_instance_uid()),
            Some(&senior),
            json!({"template_id": template}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let report_a = a.body["report"]["id"].as_str().unwrap().to_string();
    assert_eq!(a.body["report"]["content"]["findings"], "双肺纹理清晰。");
    assert_eq!(a.body["report"]["content"]["fields"]["nodule"], "无");

    // Knowledge base: a personal phrase, found by search, inserted (and counted).
    let r = s
        .post(
            "/api/v1/knowledge",
            Some(&senior),
            json!({"title": "磨玻璃结节", "findings": "右肺上叶见磨玻璃结节。", "impression": "建议3个月后复查。",
                   "tags": ["肺"], "modality": "CT"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let entry = r.body["id"].as_str().unwrap().to_string();
    let found = s
        .get(
            &format!("/api/v1/knowledge?q=磨玻璃&min_position={}", r.body["position"]),
            Some(&senior),
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["items"][0]["entry_id"], entry.as_str());
    let others = s.get("/api/v1/knowledge?q=磨玻璃", Some(&o.u1_token)).await;
    assert_eq!(
        others.body["items"].as_array().map(Vec::len),
        Some(0),
        "personal entries are personal"
    );
    let inserted = s
        .post(
            &format!("/api/v1/reports/{report_a}/phrases"),
            Some(&senior),
            json!({"entry_id": entry, "version": 1}),
        )
        .await;
    assert_eq!(inserted.status, 200, "{}", inserted.body);
    let findings = inserted.body["report"]["content"]["findings"].as_str().unwrap();
    assert!(
        findings.contains("双肺纹理清晰。") && findings.contains("右肺上叶见磨玻璃结节。"),
        "{findings}"
    );
    let counted = s
        .get(
            &format!("/api/v1/knowledge?q=磨玻璃&min_position={}", inserted.body["position"]),
            Some(&senior),
        )
        .await;
    assert_eq!(counted.body["items"][0]["usage_count"], 1);

    // Self-review is refused until the hospital allows it.
    let submitted = s
        .post(
            &format!("/api/v1/reports/{report_a}/submit"),
            Some(&senior),
            json!({"version": 2}),
        )
        .await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    let review = format!("/api/v1/reports/{report_a}/review");
    s.post(&review, Some(&senior), json!({"version": 2}))
        .await
        .assert_problem(403, "self_review_not_allowed");
    s.post(
        "/api/v1/report-settings",
        Some(&o.u1_token),
        json!({"allow_self_review": true}),
    )
    .await
    .assert_problem(403, "forbidden");
    let r = s
        .post(
            "/api/v1/report-settings",
            Some(&o.h1_admin),
            json!({"allow_self_review": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reviewed = s.post(&review, Some(&senior), json!({"version": 2})).await;
    assert_eq!(reviewed.status, 200, "{}", reviewed.body);
    assert_eq!(reviewed.body["report"]["status"], "final");

    // The same patient's later study: its report lists the prior and diffs against it.
    let b = s
        .post(
            &format!("/api/v1/studies/{}/report", study(1).study_instance_uid()),
            Some(&o.u1_token),
            json!({}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.body);
    let report_b = b.body["report"]["id"].as_str().unwrap().to_string();
    let saved = s
        .post(
            &format!("/api/v1/reports/{report_b}/save"),
            Some(&o.u1_token),
            json!({"version": 1, "findings": "右肺上叶磨玻璃结节较前缩小。", "impression": "较前好转。"}),
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let priors = s
        .get(
            &format!(
                "/api/v1/reports/{report_b}/priors?min_position={}",
                saved.body["position"]
            ),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(priors.status, 200, "{}", priors.body);
    let prior = priors
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["study_instance_uid"] == study(0).study_instance_uid())
        .cloned()
        .expect("the earlier study is a prior");
    assert_eq!(prior["report_id"], report_a.as_str());
    let diff = s
        .get(
            &format!("/api/v1/reports/{report_b}/diff?against={report_a}"),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    assert_eq!(diff.body["before"]["report_id"], report_a.as_str());
    assert_eq!(diff.body["after"]["report_id"], report_b.as_str());
    assert_eq!(diff.body["after"]["own_hospital"], true);
    let findings = diff.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "findings")
        .cloned()
        .expect("findings differ");
    assert_eq!(findings["after"], "右肺上叶磨玻璃结节较前缩小。");
    assert!(findings["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["op"] == "insert"));
    s.get(
        &format!("/api/v1/reports/{report_b}/diff?against={}", uuid::Uuid::new_v4()),
        Some(&o.u1_token),
    )
    .await
    .assert_problem(404, "not_found");
    s.get(&format!("/api/v1/reports/{report_b}/priors"), Some(&o.h2_admin))
        .await
        .assert_problem(404, "not_found");
    s.stop().await;
}

/// Follows `next_cursor` from `first` to the end; returns every page's items.
async fn all_pages(s: &TestServer, token: &str, first: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut url = first.to_string();
    loop {
        let r = s.get(&url, Some(token)).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        pages.push(r.body["items"].as_array().unwrap().clone());
        match r.body["next_cursor"].as_str() {
            Some(c) => url = format!("{first}&cursor={c}"),
            None => return pages,
        }
        assert!(pages.len() < 10, "the pages end");
    }
}

async fn template_and_knowledge_lists_are_paged_by_cursor(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    // Five templates (one retired); four hospital-wide phrases and one personal.
    for name in ["胸部CT", "头颅MR", "腹部CT", "膝关节MR", "乳腺钼靶"] {
        let r = s
            .post(
                "/api/v1/report-templates",
                Some(&o.h1_admin),
                json!({"name": name, "study_type": {"modality": "CT"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        if name == "乳腺钼靶" {
            let retired = s
                .post(
                    &format!("/api/v1/report-templates/{}/retire", r.body["id"].as_str().unwrap()),
                    Some(&o.h1_admin),
                    json!({}),
                )
                .await;
            assert_eq!(retired.status, 200, "{}", retired.body);
        }
    }
    for title in ["肺结节", "肝囊肿", "肾结石", "胆囊炎"] {
        let r = s
            .post(
                "/api/v1/knowledge",
                Some(&o.h1_admin),
                json!({"personal": false, "title": title, "findings": format!("{title}。")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = s
        .post(
            "/api/v1/knowledge",
            Some(&o.u1_token),
            json!({"title": "王医生的私人词条", "findings": "私人。"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let last = r.body["position"].as_u64().unwrap();

    let pages = all_pages(
        &s,
        &o.u1_token,
        &format!("/api/v1/report-templates?limit=2&min_position={last}"),
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
    let names: Vec<&str> = pages.iter().flatten().map(|t| t["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "by name, no repeats: {names:?}");
    assert!(!names.contains(&"乳腺钼靶"), "retired ones only on request");
    let with_retired = all_pages(&s, &o.u1_token, "/api/v1/report-templates?limit=3&include_retired=true").await;
    assert_eq!(with_retired.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2]);

    let pages = all_pages(&s, &o.u1_token, "/api/v1/knowledge?limit=3").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2]);
    let titles: Vec<&str> = pages.iter().flatten().map(|e| e["title"].as_str().unwrap()).collect();
    let mut unique = titles.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "every entry once: {titles:?}");
    let pages = all_pages(&s, &o.h1_admin, "/api/v1/knowledge?limit=3").await;
    let titles: Vec<&str> = pages.iter().flatten().map(|e| e["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles.len(),
        4,
        "another user's personal entry is not listed: {titles:?}"
    );
    let pages = all_pages(&s, &o.u1_token, "/api/v1/knowledge?limit=4&scope=personal").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![1]);
    // A page that is exactly full has no next cursor when nothing follows.
    let exact = s.get("/api/v1/knowledge?limit=4", Some(&o.h1_admin)).await;
    assert!(exact.body["next_cursor"].is_null(), "{}", exact.body);

    for bad in [
        "/api/v1/report-templates?cursor=not-a-cursor",
        "/api/v1/report-templates?cursor=WzEsMl0",
        "/api/v1/knowledge?cursor=%E6%BC%A2",
        "/api/v1/knowledge?cursor=WyJhIiwiYiJd",
        "/api/v1/knowledge?limit=0",
        "/api/v1/report-templates?limit=201",
    ] {
        s.get(bad, Some(&o.u1_token)).await.assert_problem(400, "invalid_query");
    }
    // No token, no hospital: refused.
    for path in ["/api/v1/report-templates", "/api/v1/knowledge"] {
        s.get(path, None).await.assert_problem(401, "unauthenticated");
        s.get(path, Some(&o.operator)).await.assert_problem(403, "forbidden");
    }
    // Another hospital's lists hold none of these.
    let other = s.get("/api/v1/report-templates", Some(&o.h2_admin)).await;
    assert_eq!(other.body["items"], json!([]), "{}", other.body);
    s.stop().await;
}
