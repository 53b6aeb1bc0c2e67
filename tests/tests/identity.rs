//! Identity and organization end to end, on the embedded deployment and on
//! PostgreSQL + NATS JetStream.

use base64::Engine;
use chrono::Duration;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{fake_clock, system_clock, Deployment, Reply, TestServer};
use serde_json::json;

medledger_tests::on_both_deployments!(
    the_organization_tree_is_built_level_by_level,
    the_tenth_failure_freezes_until_the_next_local_day,
    an_administrator_unfreezes_early,
    a_qr_login_is_confirmed_from_a_phone_and_used_once,
    a_reset_code_sets_a_new_password_unless_it_repeats_one_of_the_last_five,
    a_changed_password_ends_every_session_and_history_is_enforced,
    disabling_a_user_revokes_their_sessions_at_once,
    sessions_are_listed_and_revoked_by_their_owner,
    a_logo_is_checked_stored_and_served,
    bad_organization_input_is_refused_without_writing,
    the_operation_log_shows_each_admin_their_own_scope,
);

async fn the_organization_tree_is_built_level_by_level(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let head = s.head().await;
    let me = s
        .get(&format!("/api/v1/me?min_position={head}"), Some(&o.u1_token))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["tenant"]["hospital_id"], o.h1.to_string());
    assert_eq!(me.body["department_id"], o.d1.to_string());
    assert_eq!(me.body["title"], "主治医师");
    assert_eq!(me.body["phone"], "13912345678");
    let perms: Vec<&str> = me.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        perms.contains(&"report.preliminary") && !perms.contains(&"report.review"),
        "{perms:?}"
    );

    // Each level sees its own part of the tree.
    let alliances = s.get("/api/v1/alliances", Some(&o.operator)).await;
    assert!(alliances.body.as_array().unwrap().len() >= 2);
    let mine = s.get("/api/v1/alliances", Some(&o.a1_admin)).await;
    assert_eq!(mine.body.as_array().unwrap().len(), 1);
    let hospitals = s.get("/api/v1/hospitals", Some(&o.a1_admin)).await;
    let names: Vec<&str> = hospitals
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let own = s.get("/api/v1/hospitals", Some(&o.h1_admin)).await;
    assert_eq!(own.body.as_array().unwrap().len(), 1);
    let roles = s
        .get(&format!("/api/v1/hospitals/{}/roles", o.h1), Some(&o.h1_admin))
        .await;
    let role_names: Vec<&str> = roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for builtin in ["department_head", "doctor", "reviewer", "technician"] {
        assert!(role_names.contains(&builtin), "{role_names:?}");
    }
    let deps = s
        .get(&format!("/api/v1/hospitals/{}/departments", o.h1), Some(&o.u1_token))
        .await;
    assert_eq!(deps.body[0]["name"], "放射科");

    // A custom role, granted to the user, widens their permissions.
    let role = s
        .post(
            &format!("/api/v1/hospitals/{}/roles", o.h1),
            Some(&o.h1_admin),
            json!({"name": "质控员", "permissions": ["qc.manage", "stats.view"]}),
        )
        .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let r = s
        .post(
            &format!("/api/v1/users/{}/roles", o.u1),
            Some(&o.h1_admin),
            json!({"roles": [o.h1_roles["doctor"], role.body["id"]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = s.get("/api/v1/me", Some(&o.u1_token)).await;
    let perms: Vec<&str> = me.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(perms.contains(&"qc.manage"), "roles apply at once: {perms:?}");

    // Directory search: fuzzy on name, login and phone, scoped to the hospital.
    let pos = r.body["position"].as_u64().unwrap();
    for q in ["王医", "WANG", "1234567"] {
        let found = s
            .get(
                &format!("/api/v1/users?q={}&min_position={pos}", urlencode(q)),
                Some(&o.h1_admin),
            )
            .await;
        assert_eq!(found.status, 200, "{}", found.body);
        let logins: Vec<&str> = found.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["login"].as_str().unwrap())
            .collect();
        assert_eq!(logins, vec![o.u1_login.as_str()], "query {q}");
    }
    let other = s.get("/api/v1/users?q=wang", Some(&o.h2_admin)).await;
    assert_eq!(
        other.body["items"].as_array().unwrap().len(),
        0,
        "another hospital sees none of H1's staff"
    );
    let alliance_wide = s.get("/api/v1/users?q=wang", Some(&o.a1_admin)).await;
    assert_eq!(alliance_wide.body["items"].as_array().unwrap().len(), 1);
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn login_as(s: &TestServer, login: &str, password: &str) -> Reply {
    s.post(
        "/api/v1/auth/login",
        None,
        json!({"login": login, "password": password, "client": "pc"}),
    )
    .await
}

async fn the_tenth_failure_freezes_until_the_next_local_day(d: &Deployment) {
    // 10:00 in Shanghai.
    let clock = fake_clock("2026-11-28T02:00:00Z");
    let s = TestServer::start(&d.config(), clock.clone()).await;
    let o = Org::build(&s).await;
    for i in 1..=9 {
        login_as(&s, &o.u1_login, "Wrong-Pass-1")
            .await
            .assert_problem(401, "invalid_credentials");
        let _ = i;
    }
    let tenth = login_as(&s, &o.u1_login, "Wrong-Pass-1").await;
    tenth.assert_problem(401, "account_frozen");
    assert!(
        tenth.body["detail"].as_str().unwrap().contains("2026-11-28T16:00:00Z"),
        "{}",
        tenth.body
    );
    // The right password does not help, and the frozen account's sessions are void.
    login_as(&s, &o.u1_login, PASSWORD)
        .await
        .assert_problem(401, "account_frozen");
    s.get("/api/v1/me", Some(&o.u1_token))
        .await
        .assert_problem(401, "session_expired");
    // Just before local midnight: still frozen. At midnight: thawed.
    clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-28T15:59:59Z")
            .unwrap()
            .to_utc(),
    );
    login_as(&s, &o.u1_login, PASSWORD)
        .await
        .assert_problem(401, "account_frozen");
    clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-28T16:00:00Z")
            .unwrap()
            .to_utc(),
    );
    let ok = login_as(&s, &o.u1_login, PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let events: Vec<String> = s
        .app()
        .store
        .read_stream(&format!("account-{}", o.u1), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(events.iter().filter(|t| *t == "AccountFrozen").count(), 1);
    let thaw = events
        .iter()
        .position(|t| t == "AccountUnfrozen")
        .expect("the thaw is recorded");
    assert_eq!(events[thaw + 1], "LoginSucceeded");
    // Counting restarted: nine failures today do not freeze.
    for _ in 0..9 {
        login_as(&s, &o.u1_login, "Wrong-Pass-1")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    assert_eq!(login_as(&s, &o.u1_login, PASSWORD).await.status, 200);
    s.stop().await;
}

async fn an_administrator_unfreezes_early(d: &Deployment) {
    let clock = fake_clock("2026-11-28T02:00:00Z");
    let s = TestServer::start(&d.config(), clock.clone()).await;
    let o = Org::build(&s).await;
    s.post(
        &format!("/api/v1/users/{}/unfreeze", o.u1),
        Some(&o.h1_admin),
        json!({}),
    )
    .await
    .assert_problem(409, "account_not_frozen");
    for _ in 0..10 {
        login_as(&s, &o.u1_login, "Wrong-Pass-1").await;
    }
    login_as(&s, &o.u1_login, PASSWORD)
        .await
        .assert_problem(401, "account_frozen");
    // Another hospital's administrator cannot even see the account.
    s.post(
        &format!("/api/v1/users/{}/unfreeze", o.u1),
        Some(&o.h2_admin),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    let r = s
        .post(
            &format!("/api/v1/users/{}/unfreeze", o.u1),
            Some(&o.h1_admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(login_as(&s, &o.u1_login, PASSWORD).await.status, 200);
    let unfrozen = s
        .app()
        .store
        .read_stream(&format!("account-{}", o.u1), 0)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "AccountUnfrozen")
        .unwrap();
    let me = s.get("/api/v1/me", Some(&o.h1_admin)).await;
    assert_eq!(
        unfrozen.payload["by"], me.body["account_id"],
        "the unfreeze names its administrator"
    );
    s.stop().await;
}

async fn login_mobile(s: &TestServer, login: &str, password: &str) -> String {
    let r = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": login, "password": password, "client": "mobile"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["token"].as_str().unwrap().to_string()
}

async fn a_qr_login_is_confirmed_from_a_phone_and_used_once(d: &Deployment) {
    let clock = fake_clock("2026-11-28T02:00:00Z");
    let s = TestServer::start(&d.config(), clock.clone()).await;
    let o = Org::build(&s).await;
    let ticket = s.post("/api/v1/auth/qr-tickets", None, json!({})).await;
    assert_eq!(ticket.status, 201, "{}", ticket.body);
    let tid = ticket.body["ticket_id"].as_str().unwrap().to_string();
    let secret = ticket.body["secret"].as_str().unwrap().to_string();
    assert!(ticket.body["qr_svg"].as_str().unwrap().contains("<svg"));
    let png = base64::engine::general_purpose::STANDARD
        .decode(ticket.body["qr_png_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let pending = s
        .post(
            &format!("/api/v1/auth/qr-tickets/{tid}/redeem"),
            None,
            json!({"secret": secret}),
        )
        .await;
    assert_eq!(pending.status, 202);
    assert_eq!(pending.body["status"], "pending");

    // A PC session cannot confirm; the phone must be bound and the password the user's own.
    s.post(
        &format!("/api/v1/auth/qr-tickets/{tid}/confirm"),
        Some(&o.u1_token),
        json!({"secret": secret}),
    )
    .await
    .assert_problem(403, "mobile_client_required");
    let phone_token = login_mobile(&s, &o.u1_login, PASSWORD).await;
    s.post(
        &format!("/api/v1/auth/qr-tickets/{tid}/confirm"),
        Some(&phone_token),
        json!({"secret": "wrong"}),
    )
    .await
    .assert_problem(404, "ticket_not_found");
    let r = s
        .post(
            &format!("/api/v1/auth/qr-tickets/{tid}/confirm"),
            Some(&phone_token),
            json!({"secret": secret}),
        )
        .await;
    // The org fixture bound a phone at creation; the password is still the one handed out.
    r.assert_problem(409, "initial_password_required");
    let changed = s
        .post(
            "/api/v1/me/password",
            Some(&phone_token),
            json!({"current_password": PASSWORD, "new_password": "My-Own-Pass-7"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let phone_token = login_mobile(&s, &o.u1_login, "My-Own-Pass-7").await;

    // Long-poll from the PC while the phone confirms.
    let poll = {
        let http = s.http.clone();
        let url = s.url(&format!("/api/v1/auth/qr-tickets/{tid}/redeem"));
        let secret = secret.clone();
        tokio::spawn(async move {
            Reply::from(
                http.post(url)
                    .json(&json!({"secret": secret, "wait_seconds": 10}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let ok = s
        .post(
            &format!("/api/v1/auth/qr-tickets/{tid}/confirm"),
            Some(&phone_token),
            json!({"secret": secret}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let redeemed = poll.await.unwrap();
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
    assert_eq!(redeemed.body["status"], "logged_in");
    let pc_token = redeemed.body["login"]["token"].as_str().unwrap();
    let me = s.get("/api/v1/me", Some(pc_token)).await;
    assert_eq!(me.body["login"], o.u1_login.as_str());
    assert_eq!(me.body["client"], "pc");
    // Single use.
    s.post(
        &format!("/api/v1/auth/qr-tickets/{tid}/redeem"),
        None,
        json!({"secret": secret}),
    )
    .await
    .assert_problem(410, "ticket_used");
    // Two minutes and it is gone.
    let late = s.post("/api/v1/auth/qr-tickets", None, json!({})).await;
    let late_id = late.body["ticket_id"].as_str().unwrap();
    let late_secret = late.body["secret"].as_str().unwrap();
    clock.advance(Duration::seconds(120));
    s.post(
        &format!("/api/v1/auth/qr-tickets/{late_id}/confirm"),
        Some(&phone_token),
        json!({"secret": late_secret}),
    )
    .await
    .assert_problem(410, "ticket_expired");
    s.post(
        &format!("/api/v1/auth/qr-tickets/{late_id}/redeem"),
        None,
        json!({"secret": late_secret}),
    )
    .await
    .assert_problem(410, "ticket_expired");
    s.stop().await;
}

async fn outbox_code(s: &TestServer, account: uuid::Uuid) -> String {
    let rows = s
        .app()
        .store
        .db()
        .fetch_all(
            "SELECT body FROM notification_outbox WHERE account_id = $1 ORDER BY created_at DESC, id DESC",
            &medledger_commands::args![account],
        )
        .await
        .unwrap();
    let body: String = rows[0].get(0).unwrap();
    body.split_whitespace()
        .find(|w| w.trim_end_matches('.').len() == 6 && w.trim_end_matches('.').chars().all(|c| c.is_ascii_digit()))
        .unwrap()
        .trim_end_matches('.')
        .to_string()
}

async fn a_reset_code_sets_a_new_password_unless_it_repeats_one_of_the_last_five(d: &Deployment) {
    let clock = fake_clock("2026-11-28T02:00:00Z");
    let s = TestServer::start(&d.config(), clock.clone()).await;
    let o = Org::build(&s).await;
    let unknown = s
        .post("/api/v1/auth/password-resets", None, json!({"login": "nobody.here"}))
        .await;
    let known = s
        .post("/api/v1/auth/password-resets", None, json!({"login": o.u1_login}))
        .await;
    assert_eq!((unknown.status, known.status), (202, 202));
    assert_eq!(unknown.body, known.body, "the answer does not reveal accounts");
    let code = outbox_code(&s, o.u1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let confirm = |code: String, pw: &'static str| {
        let login = o.u1_login.clone();
        let s = &s;
        async move {
            s.post(
                "/api/v1/auth/password-resets/confirm",
                None,
                json!({"login": login, "code": code, "new_password": pw}),
            )
            .await
        }
    };
    // A weak or repeated password is refused without spending the code.
    confirm(code.clone(), "weak").await.assert_problem(422, "weak_password");
    confirm(code.clone(), PASSWORD)
        .await
        .assert_problem(422, "password_reused");
    let ok = confirm(code.clone(), "Reset-Pass-42").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    s.get("/api/v1/me", Some(&o.u1_token))
        .await
        .assert_problem(401, "session_expired");
    assert_eq!(login_as(&s, &o.u1_login, "Reset-Pass-42").await.status, 200);
    confirm(code.clone(), "Other-Pass-43")
        .await
        .assert_problem(410, "reset_code_dead");

    // Five wrong codes kill a code.
    s.post("/api/v1/auth/password-resets", None, json!({"login": o.u1_login}))
        .await;
    let code = outbox_code(&s, o.u1).await;
    for _ in 0..4 {
        confirm(wrong.into(), "Other-Pass-43")
            .await
            .assert_problem(422, "reset_code_invalid");
    }
    confirm(wrong.into(), "Other-Pass-43")
        .await
        .assert_problem(410, "reset_code_dead");
    confirm(code, "Other-Pass-43")
        .await
        .assert_problem(410, "reset_code_dead");
    // Ten minutes and a code expires.
    s.post("/api/v1/auth/password-resets", None, json!({"login": o.u1_login}))
        .await;
    let code = outbox_code(&s, o.u1).await;
    clock.advance(Duration::minutes(10));
    confirm(code, "Other-Pass-43")
        .await
        .assert_problem(410, "reset_code_expired");
    s.stop().await;
}

async fn a_changed_password_ends_every_session_and_history_is_enforced(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let change = |token: String, from: String, to: String| {
        let s = &s;
        async move {
            s.post(
                "/api/v1/me/password",
                Some(&token),
                json!({"current_password": from, "new_password": to}),
            )
            .await
        }
    };
    let second = login_as(&s, &o.u1_login, PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    change(o.u1_token.clone(), "Wrong-Pass-1".into(), "New-Pass-1".into())
        .await
        .assert_problem(403, "wrong_password");
    change(o.u1_token.clone(), PASSWORD.into(), format!("x{}X1!", o.u1_login))
        .await
        .assert_problem(422, "weak_password");
    let mut current = PASSWORD.to_string();
    let mut token = o.u1_token.clone();
    for i in 1..=5 {
        let next = format!("Rotation-{i}-Pass");
        let r = change(token.clone(), current.clone(), next.clone()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        s.get("/api/v1/me", Some(&token))
            .await
            .assert_problem(401, "session_expired");
        current = next;
        token = login_as(&s, &o.u1_login, &current).await.body["token"]
            .as_str()
            .unwrap()
            .to_string();
    }
    s.get("/api/v1/me", Some(&second))
        .await
        .assert_problem(401, "session_expired");
    // The last five (Rotation-1..5) are refused; the original (sixth back) is allowed again.
    for i in 1..=5 {
        change(token.clone(), current.clone(), format!("Rotation-{i}-Pass"))
            .await
            .assert_problem(422, "password_reused");
    }
    assert_eq!(change(token, current, PASSWORD.into()).await.status, 200);
    s.stop().await;
}

async fn disabling_a_user_revokes_their_sessions_at_once(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    assert_eq!(s.get("/api/v1/me", Some(&o.u1_token)).await.status, 200);
    let r = s
        .post(&format!("/api/v1/users/{}/disable", o.u1), Some(&o.h1_admin), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.get("/api/v1/me", Some(&o.u1_token))
        .await
        .assert_problem(401, "session_expired");
    login_as(&s, &o.u1_login, PASSWORD)
        .await
        .assert_problem(401, "account_disabled");
    s.post(&format!("/api/v1/users/{}/disable", o.u1), Some(&o.h1_admin), json!({}))
        .await
        .assert_problem(409, "account_already_disabled");
    let pos = s
        .post(&format!("/api/v1/users/{}/enable", o.u1), Some(&o.h1_admin), json!({}))
        .await;
    assert_eq!(pos.status, 200);
    assert_eq!(login_as(&s, &o.u1_login, PASSWORD).await.status, 200);
    let view = s
        .get(
            &format!("/api/v1/users/{}?min_position={}", o.u1, pos.body["position"]),
            Some(&o.h1_admin),
        )
        .await;
    assert_eq!(view.body["status"], "active");
    // Administrators are managed by the level above.
    let me = s.get("/api/v1/me", Some(&o.h1_admin)).await;
    s.post(
        &format!("/api/v1/users/{}/disable", me.body["account_id"].as_str().unwrap()),
        Some(&o.h1_admin),
        json!({}),
    )
    .await
    .assert_problem(403, "not_your_level");
    s.stop().await;
}

async fn sessions_are_listed_and_revoked_by_their_owner(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let phone = login_mobile(&s, &o.u1_login, PASSWORD).await;
    let head = s.head().await;
    let list = s
        .get(&format!("/api/v1/me/sessions?min_position={head}"), Some(&o.u1_token))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let phone_session = items.iter().find(|i| i["client"] == "mobile").unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Nobody else may end it.
    s.post(
        &format!("/api/v1/me/sessions/{phone_session}/revoke"),
        Some(&o.h1_admin),
        json!({}),
    )
    .await
    .assert_problem(404, "session_not_found");
    let r = s
        .post(
            &format!("/api/v1/me/sessions/{phone_session}/revoke"),
            Some(&o.u1_token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.get("/api/v1/me", Some(&phone))
        .await
        .assert_problem(401, "session_expired");
    assert_eq!(s.get("/api/v1/me", Some(&o.u1_token)).await.status, 200);
    let list = s
        .get(
            &format!("/api/v1/me/sessions?min_position={}", r.body["position"]),
            Some(&o.u1_token),
        )
        .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    s.stop().await;
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(&vec![128u8; (w * h) as usize]).unwrap();
    }
    out
}

async fn upload(s: &TestServer, token: &str, hospital: uuid::Uuid, body: Vec<u8>, ctype: &str) -> Reply {
    Reply::from(
        s.http
            .post(s.url(&format!("/api/v1/hospitals/{hospital}/logo")))
            .bearer_auth(token)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn a_logo_is_checked_stored_and_served(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let head = s.head().await;
    let big_noise: Vec<u8> = {
        let mut v = png_bytes(16, 16);
        v.resize(600 * 1024, 7);
        v
    };
    upload(&s, &o.h1_admin, o.h1, big_noise, "image/png")
        .await
        .assert_problem(422, "logo_too_large");
    upload(&s, &o.h1_admin, o.h1, vec![0u8; 2 * 1024 * 1024], "image/png")
        .await
        .assert_problem(413, "payload_too_large");
    upload(&s, &o.h1_admin, o.h1, b"GIF89a........".to_vec(), "image/gif")
        .await
        .assert_problem(422, "logo_unsupported_type");
    upload(&s, &o.h1_admin, o.h1, png_bytes(8, 8), "image/jpeg")
        .await
        .assert_problem(422, "logo_type_mismatch");
    upload(&s, &o.u1_token, o.h1, png_bytes(8, 8), "image/png")
        .await
        .assert_problem(403, "forbidden");
    upload(&s, &o.h2_admin, o.h1, png_bytes(8, 8), "image/png")
        .await
        .assert_problem(404, "not_found");
    assert_eq!(s.head().await, head, "refused uploads write nothing");
    let logo = png_bytes(120, 40);
    let r = upload(&s, &o.h1_admin, o.h1, logo.clone(), "image/png").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = s
        .http
        .get(s.url(&format!(
            "/api/v1/hospitals/{}/logo?min_position={}",
            o.h1, r.body["position"]
        )))
        .bearer_auth(&o.u1_token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), logo);

    // The QR code encodes the configured URL, as PNG and SVG.
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/profile", o.h1),
            Some(&o.h1_admin),
            json!({"name": "瑞金医院", "address": "上海市黄浦区瑞金二路197号", "qr_url": "https://rj.example/scan?h=1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let png = s
        .http
        .get(s.url(&format!(
            "/api/v1/hospitals/{}/qr.png?min_position={}",
            o.h1, r.body["position"]
        )))
        .bearer_auth(&o.h1_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    let decoded = decode_qr(&png.bytes().await.unwrap());
    assert_eq!(decoded, "https://rj.example/scan?h=1");
    let svg = s
        .http
        .get(s.url(&format!("/api/v1/hospitals/{}/qr.svg", o.h1)))
        .bearer_auth(&o.h1_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    s.post(
        &format!("/api/v1/hospitals/{}/profile", o.h1),
        Some(&o.h1_admin),
        json!({"name": "瑞金医院", "qr_url": "javascript:alert(1)"}),
    )
    .await
    .assert_problem(422, "invalid_qr_url");
    s.stop().await;
}

fn decode_qr(png_data: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_data));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    grids[0].decode().unwrap().1
}

async fn bad_organization_input_is_refused_without_writing(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let head = s.head().await;
    let user = |login: &str, password: &str| json!({"login": login, "name": "李四", "password": password});
    let users = format!("/api/v1/hospitals/{}/users", o.h1);
    s.post(&users, Some(&o.h1_admin), user("li.si", "short"))
        .await
        .assert_problem(422, "weak_password");
    s.post(&users, Some(&o.h1_admin), user("li.si", "alllowercase1"))
        .await
        .assert_problem(422, "weak_password");
    s.post(&users, Some(&o.h1_admin), user("x", PASSWORD))
        .await
        .assert_problem(422, "invalid_login_name");
    s.post(&users, Some(&o.h1_admin), user(&o.u1_login, PASSWORD))
        .await
        .assert_problem(409, "login_taken");
    let mut with_dep = user("li.si", PASSWORD);
    with_dep["department_id"] = json!(uuid::Uuid::now_v7());
    s.post(&users, Some(&o.h1_admin), with_dep)
        .await
        .assert_problem(422, "unknown_department");
    // A department of another hospital is unknown here too.
    let d3 = s
        .post(
            &format!("/api/v1/hospitals/{}/departments", o.h3),
            Some(&o.h3_admin),
            json!({"name": "眼科"}),
        )
        .await;
    let head = head.max(d3.body["position"].as_u64().unwrap());
    let mut foreign_dep = user("li.si", PASSWORD);
    foreign_dep["department_id"] = d3.body["id"].clone();
    s.post(&users, Some(&o.h1_admin), foreign_dep)
        .await
        .assert_problem(422, "unknown_department");
    let mut bad_role = user("li.si", PASSWORD);
    bad_role["roles"] = json!([uuid::Uuid::now_v7()]);
    s.post(&users, Some(&o.h1_admin), bad_role)
        .await
        .assert_problem(422, "unknown_role");
    let mut bad_phone = user("li.si", PASSWORD);
    bad_phone["phone"] = json!("call me maybe");
    s.post(&users, Some(&o.h1_admin), bad_phone)
        .await
        .assert_problem(422, "invalid_phone");
    s.post(
        &format!("/api/v1/hospitals/{}/departments", o.h1),
        Some(&o.h1_admin),
        json!({"name": " 放射科 "}),
    )
    .await
    .assert_problem(409, "department_exists");
    s.post(
        &format!("/api/v1/hospitals/{}/roles", o.h1),
        Some(&o.h1_admin),
        json!({"name": "超级", "permissions": ["admin.everything"]}),
    )
    .await
    .assert_problem(422, "unknown_permission");
    s.post(
        &format!("/api/v1/hospitals/{}/roles", o.h1),
        Some(&o.h1_admin),
        json!({"name": "空", "permissions": []}),
    )
    .await
    .assert_problem(422, "role_without_permissions");
    s.post(
        &format!("/api/v1/alliances/{}/hospitals", o.a1),
        Some(&o.a1_admin),
        json!({"name": "重复", "code": format!("RJ{}", o.suffix), "admin": {"login": format!("dup.{}", o.suffix), "name": "x", "password": PASSWORD}}),
    )
    .await
    .assert_problem(409, "hospital_code_taken");
    s.post(
        &format!("/api/v1/alliances/{}/hospitals", o.a1),
        Some(&o.a1_admin),
        json!({"name": "时区", "code": "TZ1", "time_zone": "Mars/Olympus", "admin": {"login": format!("tz.{}", o.suffix), "name": "x", "password": PASSWORD}}),
    )
    .await
    .assert_problem(422, "invalid_time_zone");
    assert_eq!(s.head().await, head, "nothing partial was written");
    s.stop().await;
}

async fn the_operation_log_shows_each_admin_their_own_scope(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let r = s
        .post(&format!("/api/v1/users/{}/disable", o.u1), Some(&o.h1_admin), json!({}))
        .await;
    let pos = r.body["position"].as_u64().unwrap();
    let log = s
        .get(
            &format!("/api/v1/operation-log?action=AccountDisabled&min_position={pos}"),
            Some(&o.h1_admin),
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    let item = &log.body["items"][0];
    let me = s.get("/api/v1/me", Some(&o.h1_admin)).await;
    assert_eq!(item["user"], me.body["account_id"]);
    assert_eq!(item["target"], format!("account-{}", o.u1));
    assert_eq!(item["ip"], "127.0.0.1");
    assert_eq!(item["client"], "pc");
    // H2's administrator sees nothing of H1; the alliance's administrator sees it.
    let other = s
        .get(
            &format!("/api/v1/operation-log?action=AccountDisabled&min_position={pos}"),
            Some(&o.h2_admin),
        )
        .await;
    assert_eq!(other.body["items"].as_array().unwrap().len(), 0);
    let alliance = s
        .get("/api/v1/operation-log?action=AccountDisabled", Some(&o.a1_admin))
        .await;
    assert_eq!(alliance.body["items"].as_array().unwrap().len(), 1);
    let outside = s
        .get("/api/v1/operation-log?action=AccountDisabled", Some(&o.a2_admin))
        .await;
    assert_eq!(outside.body["items"].as_array().unwrap().len(), 0);
    s.get("/api/v1/operation-log", Some(&o.u1_token))
        .await
        .assert_problem(401, "session_expired");
    s.stop().await;
}
