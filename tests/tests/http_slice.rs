//! The end-to-end slice over HTTP, on the embedded deployment and on
//! PostgreSQL + NATS JetStream.

use std::sync::Arc;

use medledger_commands::codec::Metadata;
use medledger_commands::identity;
use medledger_commands::store::{AppendRequest, ExpectedVersion};
use medledger_commands::App;
use medledger_domain::identity::{AccountRole, LoginName, Tenant};
use medledger_domain::organization::TimeZone;
use medledger_tests::{fake_clock, system_clock, Deployment, TestServer, OPERATOR_PASSWORD};
use serde_json::json;
use uuid::Uuid;

medledger_tests::on_both_deployments!(
    the_operator_logs_in_reads_me_and_the_audit_log,
    audit_log_filters_and_cursor_pagination,
    every_login_attempt_is_an_event_and_bad_input_writes_nothing,
    missing_or_invalid_tokens_are_refused,
    logout_revokes_the_token_at_once,
    non_operators_are_refused_the_audit_log,
    an_idempotency_key_replays_the_first_response,
    a_forgotten_subject_reads_as_erased,
    queries_wait_for_their_position_or_answer_503,
    health_metrics_and_openapi,
);

/// Register an account through the command layer (the organization API
/// creates users only inside hospitals; this puts one at any level).
async fn register(app: &App, login: &str, password: &str, role: AccountRole, display: &str) -> Uuid {
    let login = LoginName::parse(login).unwrap();
    let account = identity::NewAccount {
        account_id: Uuid::now_v7(),
        password: identity::password_policy(password, &login).unwrap(),
        login,
        display_name: display.into(),
        phone: None,
        role,
        tenant: Tenant {
            alliance_id: Some(Uuid::from_u128(1)),
            hospital_id: Some(Uuid::from_u128(2)),
        },
        department_id: None,
        title: None,
        roles: vec![],
        time_zone: TimeZone::DEFAULT,
    };
    let id = account.account_id;
    let (stream, events, guard) = identity::account_registration(app, account, &Metadata::system())
        .await
        .unwrap();
    app.append(AppendRequest::stream(stream, ExpectedVersion::NoStream, events).with_guard(guard))
        .await
        .unwrap();
    id
}

async fn the_operator_logs_in_reads_me_and_the_audit_log(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let (token, position) = s.login("operator", OPERATOR_PASSWORD).await;
    let me = s
        .get(&format!("/api/v1/me?min_position={position}"), Some(&token))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["login"], "operator");
    assert_eq!(me.body["display_name"], "Platform Operator");
    assert_eq!(me.body["role"], "platform_operator");
    assert!(me.body["last_login_at"].is_string());

    let audit = s
        .get(&format!("/api/v1/audit/events?min_position={position}"), Some(&token))
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let types: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["SessionStarted", "LoginSucceeded", "AccountRegistered"]);
    let login_event = &audit.body["items"][1];
    assert_eq!(login_event["metadata"]["client"], "pc");
    assert_eq!(login_event["metadata"]["ip"], "127.0.0.1");
    // The operator's display name is personal data: stored encrypted, shown opened.
    assert_eq!(
        audit.body["items"][2]["payload"]["display_name"]["$pii"]["value"],
        "Platform Operator"
    );

    // Looking was recorded, with who looked and how.
    let view_position = audit.body["position"].as_u64().unwrap();
    assert_eq!(
        audit.header("x-event-position"),
        Some(view_position.to_string().as_str())
    );
    let views = s
        .get(
            &format!("/api/v1/audit/events?type=AuditLogViewed&min_position={view_position}"),
            Some(&token),
        )
        .await;
    let first_view = &views.body["items"][0];
    assert_eq!(first_view["position"], view_position);
    assert_eq!(first_view["payload"]["viewer"], me.body["account_id"]);
    assert_eq!(first_view["payload"]["returned"], 3);
    assert_eq!(first_view["metadata"]["actor"], me.body["account_id"]);
    s.stop().await;
}

async fn audit_log_filters_and_cursor_pagination(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let (token, _) = s.login("operator", OPERATOR_PASSWORD).await;
    for _ in 0..3 {
        s.post(
            "/api/v1/auth/login",
            None,
            json!({"login": "operator", "password": "wrong-Pass-1", "client": "mobile"}),
        )
        .await;
    }
    let (_, position) = s.login("operator", OPERATOR_PASSWORD).await;
    let failed = s
        .get(
            &format!("/api/v1/audit/events?type=LoginFailed&min_position={position}"),
            Some(&token),
        )
        .await;
    let items = failed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items
        .iter()
        .all(|i| i["payload"]["reason"] == "wrong_password" && i["payload"]["client"] == "mobile"));

    let me = s.get("/api/v1/me", Some(&token)).await;
    let account = me.body["account_id"].as_str().unwrap();
    let by_stream = s
        .get(&format!("/api/v1/audit/events?stream=account-{account}"), Some(&token))
        .await;
    assert_eq!(
        by_stream.body["items"].as_array().unwrap().len(),
        6,
        "registered + 2 successes + 3 failures"
    );
    let by_actor = s
        .get(&format!("/api/v1/audit/events?actor={account}"), Some(&token))
        .await;
    assert!(by_actor.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["metadata"]["actor"] == account));
    let future = s
        .get("/api/v1/audit/events?from=2999-01-01T00:00:00Z", Some(&token))
        .await;
    assert_eq!(future.body["items"].as_array().unwrap().len(), 0);
    let past = s
        .get("/api/v1/audit/events?to=2000-01-01T00:00:00Z", Some(&token))
        .await;
    assert_eq!(past.body["items"].as_array().unwrap().len(), 0);

    // Walk every page of size 2: strictly descending, nothing missed or repeated.
    let head = s.head().await;
    let mut cursor: Option<u64> = None;
    let mut seen = Vec::new();
    loop {
        let q = match cursor {
            Some(c) => format!("/api/v1/audit/events?limit=2&cursor={c}&min_position={head}"),
            None => format!("/api/v1/audit/events?limit=2&min_position={head}"),
        };
        let page = s.get(&q, Some(&token)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for i in page.body["items"].as_array().unwrap() {
            seen.push(i["position"].as_u64().unwrap());
        }
        match page.body["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (1..=head).rev().collect::<Vec<_>>());

    for bad in [
        "limit=0",
        "limit=501",
        "cursor=-1",
        "from=yesterday",
        "actor=nobody",
        "colour=red",
    ] {
        let r = s.get(&format!("/api/v1/audit/events?{bad}"), Some(&token)).await;
        r.assert_problem(400, "invalid_query");
    }
    s.stop().await;
}

async fn every_login_attempt_is_an_event_and_bad_input_writes_nothing(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let login = s.url("/api/v1/auth/login");
    let before = s.head().await;

    let raw = |body: &'static str, ctype: &'static str| {
        let http = s.http.clone();
        let login = login.clone();
        async move {
            medledger_tests::Reply::from(
                http.post(login)
                    .header("content-type", ctype)
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    raw("{\"login\": \"operator\",", "application/json")
        .await
        .assert_problem(400, "malformed_json");
    raw(
        "{\"login\": 7, \"password\": \"x\", \"client\": \"pc\"}",
        "application/json",
    )
    .await
    .assert_problem(422, "invalid_body");
    raw(
        "{\"login\": \"operator\", \"password\": \"x\", \"client\": \"tv\"}",
        "application/json",
    )
    .await
    .assert_problem(422, "invalid_body");
    raw(
        "{\"login\": \"operator\", \"password\": \"x\", \"client\": \"pc\", \"admin\": true}",
        "application/json",
    )
    .await
    .assert_problem(422, "invalid_body");
    raw("{\"login\": \"operator\"}", "application/json")
        .await
        .assert_problem(422, "invalid_body");
    raw("login=operator", "text/plain")
        .await
        .assert_problem(415, "unsupported_media_type");
    let huge = format!(
        "{{\"login\": \"operator\", \"password\": \"{}\", \"client\": \"pc\"}}",
        "x".repeat(100_000)
    );
    medledger_tests::Reply::from(
        s.http
            .post(&login)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await
    .assert_problem(413, "payload_too_large");
    assert_eq!(s.head().await, before, "refused input must write nothing");

    // A wrong password and an unknown login name answer alike, and both are recorded.
    let wrong = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "operator", "password": "nope-Nope-1", "client": "pc"}),
        )
        .await;
    wrong.assert_problem(401, "invalid_credentials");
    let unknown = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "nobody", "password": "nope-Nope-1", "client": "mobile"}),
        )
        .await;
    unknown.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    assert_eq!(s.head().await, before + 2);
    let recorded = s.app().store.read_all(before, 10).await.unwrap();
    assert_eq!(recorded[0].event_type, "LoginFailed");
    assert_eq!(recorded[0].payload["reason"], "wrong_password");
    assert_eq!(recorded[0].metadata["ip"], "127.0.0.1");
    assert_eq!(recorded[1].payload["reason"], "unknown_login");
    assert_eq!(recorded[1].payload["login"], "nobody");
    assert_eq!(recorded[1].metadata["client"], "mobile");
    s.stop().await;
}

async fn missing_or_invalid_tokens_are_refused(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let before = s.head().await;
    for path in ["/api/v1/me", "/api/v1/audit/events"] {
        s.get(path, None).await.assert_problem(401, "unauthenticated");
        s.get(path, Some("mlt_forged-token"))
            .await
            .assert_problem(401, "unauthenticated");
        let r = medledger_tests::Reply::from(
            s.http
                .get(s.url(path))
                .header("authorization", "Basic b3A6cHc=")
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_problem(401, "unauthenticated");
    }
    s.post("/api/v1/auth/logout", None, json!({}))
        .await
        .assert_problem(401, "unauthenticated");
    s.get("/api/v1/nothing-here", None)
        .await
        .assert_problem(404, "not_found");
    let r = medledger_tests::Reply::from(s.http.delete(s.url("/api/v1/me")).send().await.unwrap()).await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(s.head().await, before);
    s.stop().await;
}

async fn logout_revokes_the_token_at_once(d: &Deployment) {
    let clock = fake_clock("2026-11-28T08:00:00Z");
    let s = TestServer::start(&d.config(), clock.clone()).await;
    let (token, _) = s.login("operator", OPERATOR_PASSWORD).await;
    assert_eq!(s.get("/api/v1/me", Some(&token)).await.status, 200);
    let out = s.post("/api/v1/auth/logout", Some(&token), json!({})).await;
    assert_eq!(out.status, 200);
    assert!(out.body["position"].as_u64().unwrap() > 0);
    s.get("/api/v1/me", Some(&token))
        .await
        .assert_problem(401, "session_expired");
    s.post("/api/v1/auth/logout", Some(&token), json!({}))
        .await
        .assert_problem(401, "session_expired");

    // A session in use lives 12 hours at most (decided from the injected clock)…
    let (token, _) = s.login("operator", OPERATOR_PASSWORD).await;
    for _ in 0..6 {
        clock.advance(chrono::Duration::minutes(119));
        assert_eq!(
            s.get("/api/v1/me", Some(&token)).await.status,
            200,
            "activity keeps it alive"
        );
    }
    clock.advance(chrono::Duration::minutes(6));
    s.get("/api/v1/me", Some(&token))
        .await
        .assert_problem(401, "session_expired");
    // …and one left alone ends after two idle hours.
    let (token, _) = s.login("operator", OPERATOR_PASSWORD).await;
    clock.advance(chrono::Duration::minutes(119));
    assert_eq!(s.get("/api/v1/me", Some(&token)).await.status, 200);
    clock.advance(chrono::Duration::minutes(120));
    s.get("/api/v1/me", Some(&token))
        .await
        .assert_problem(401, "session_expired");
    s.stop().await;
}

async fn non_operators_are_refused_the_audit_log(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    for role in [AccountRole::HospitalAdministrator, AccountRole::User] {
        let login = format!("user{}", Uuid::new_v4().simple());
        register(s.app(), &login, "Doctor-Pass-1", role, "Li Si").await;
        let (token, position) = s.login(&login, "Doctor-Pass-1").await;
        let me = s
            .get(&format!("/api/v1/me?min_position={position}"), Some(&token))
            .await;
        assert_eq!(me.body["tenant"]["hospital_id"], Uuid::from_u128(2).to_string());
        let before = s.head().await;
        s.get("/api/v1/audit/events", Some(&token))
            .await
            .assert_problem(403, "forbidden");
        assert_eq!(s.head().await, before, "a refused look is not a look");
    }
    s.stop().await;
}

async fn an_idempotency_key_replays_the_first_response(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let send = |key: &'static str, password: &'static str| {
        let http = s.http.clone();
        let url = s.url("/api/v1/auth/login");
        async move {
            medledger_tests::Reply::from(
                http.post(url)
                    .header("idempotency-key", key)
                    .json(&json!({"login": "operator", "password": password, "client": "pc"}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let first = send("login-1", OPERATOR_PASSWORD).await;
    assert_eq!(first.status, 200);
    let head = s.head().await;
    let again = send("login-1", OPERATOR_PASSWORD).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "the same response, token included");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("x-event-position"), first.header("x-event-position"));
    assert_eq!(s.head().await, head, "no second event");
    send("login-1", "another-Pass-1")
        .await
        .assert_problem(422, "idempotency_key_reused");
    assert_eq!(s.head().await, head);
    // A failed attempt is replayed too, without recording it twice.
    let failed = send("login-2", "wrong-Pass-1").await;
    failed.assert_problem(401, "invalid_credentials");
    send("login-2", "wrong-Pass-1")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(s.head().await, head + 1);
    s.stop().await;
}

async fn a_forgotten_subject_reads_as_erased(d: &Deployment) {
    let config = d.config();
    let s = TestServer::start(&config, system_clock()).await;
    let login = format!("zhang{}", Uuid::new_v4().simple());
    let id = register(s.app(), &login, "Patient-Pass-1", AccountRole::User, "张三").await;
    let (token, position) = s.login(&login, "Patient-Pass-1").await;
    let me = s
        .get(&format!("/api/v1/me?min_position={position}"), Some(&token))
        .await;
    assert_eq!(me.body["display_name"], "张三");

    let forgot =
        medledger_commands::administration::forget_subject(s.app(), id, "erasure request", &Metadata::system())
            .await
            .unwrap();
    let me = s.get(&format!("/api/v1/me?min_position={forgot}"), Some(&token)).await;
    assert_eq!(me.body["display_name"], serde_json::Value::Null);
    assert_eq!(me.body["display_name_erased"], true);

    let (op, _) = s.login("operator", OPERATOR_PASSWORD).await;
    let audit = s
        .get(
            &format!("/api/v1/audit/events?stream=account-{id}&type=AccountRegistered"),
            Some(&op),
        )
        .await;
    assert_eq!(
        audit.body["items"][0]["payload"]["display_name"]["$pii"]["erased"],
        true
    );

    let report = medledger_commands::verify::verify(s.app().store.as_ref())
        .await
        .unwrap();
    assert_eq!(report.failure, None);

    // A replay from the log cannot bring the name back.
    let platform = medledger_api::platform::Platform::open(&config, system_clock())
        .await
        .unwrap();
    platform.runner.prepare().await.unwrap();
    platform.runner.rebuild("accounts").await.unwrap();
    let view = medledger_projections::read_models::accounts::get(&s.app().store.read_models(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((view.display_name, view.display_name_erased), (None, true));
    s.stop().await;
}

async fn queries_wait_for_their_position_or_answer_503(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let (token, position) = s.login("operator", OPERATOR_PASSWORD).await;
    let ok = medledger_tests::Reply::from(
        s.http
            .get(s.url("/api/v1/me"))
            .bearer_auth(&token)
            .header("x-min-position", position.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200);
    let far = s.head().await + 1000;
    let started = std::time::Instant::now();
    let late = s.get(&format!("/api/v1/me?min_position={far}"), Some(&token)).await;
    late.assert_problem(503, "projection_lagging");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "the wait is bounded, not skipped"
    );
    s.get("/api/v1/me?min_position=soon", Some(&token))
        .await
        .assert_problem(400, "invalid_min_position");
    s.stop().await;
}

async fn health_metrics_and_openapi(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    assert_eq!(s.get("/healthz", None).await.status, 200);
    let ready = s.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["store"], "ok");
    assert_eq!(ready.body["bus"]["status"], "ok");
    let expected_bus = if d.nats.is_some() {
        "nats-jetstream"
    } else {
        "in-process"
    };
    assert_eq!(ready.body["bus"]["kind"], expected_bus);
    s.login("operator", OPERATOR_PASSWORD).await;
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "medledger_http_requests_total",
        "medledger_http_request_duration_seconds",
        "medledger_events_appended_total",
        "medledger_relay_lag_events",
        "medledger_projection_lag_events{projection=\"audit_log\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let doc = s.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/audit/events",
        "/readyz",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} missing from OpenAPI");
    }
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());
    let rid = s.get("/healthz", None).await;
    assert!(rid.header("x-request-id").is_some());
    s.stop().await;
}

#[allow(dead_code)]
fn _assert_send(_: Arc<TestServer>) {}
