//! Every identity and organization endpoint, called by the wrong people:
//! anonymous callers (401), principals of another alliance or another
//! hospital (404 — existence is never revealed across tenants) and lower
//! roles (403). Nothing they send is written.

use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, Reply, TestServer};
use serde_json::{json, Value};

medledger_tests::on_both_deployments!(every_endpoint_refuses_the_wrong_callers_and_writes_nothing);

struct Call {
    method: &'static str,
    path: String,
    body: Value,
    /// (caller, expected status, expected code)
    refusals: Vec<(&'static str, u16, &'static str)>,
}

async fn send(s: &TestServer, method: &str, path: &str, token: Option<&str>, body: &Value) -> Reply {
    let url = s.url(path);
    let mut r = match method {
        "GET" => s.http.get(url),
        _ => s.http.post(url).json(body),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    Reply::from(r.send().await.unwrap()).await
}

async fn every_endpoint_refuses_the_wrong_callers_and_writes_nothing(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let doctor_role = o.h1_roles["doctor"].as_str().unwrap().to_string();
    let (h1, a1, u1) = (o.h1, o.a1, o.u1);
    let person = json!({"login": format!("new.{}", o.suffix), "name": "新人", "password": PASSWORD});
    let tokens = |who: &str| -> Option<String> {
        match who {
            "anonymous" => None,
            "operator" => Some(o.operator.clone()),
            "a1" => Some(o.a1_admin.clone()),
            "a2" => Some(o.a2_admin.clone()),
            "h1" => Some(o.h1_admin.clone()),
            "h2" => Some(o.h2_admin.clone()),
            "h3" => Some(o.h3_admin.clone()),
            "u1" => Some(o.u1_token.clone()),
            other => panic!("unknown caller {other}"),
        }
    };
    let anon = ("anonymous", 401, "unauthenticated");
    let other_alliance = ("h3", 404, "not_found");
    let other_alliance_admin = ("a2", 404, "not_found");
    let other_hospital = ("h2", 404, "not_found");
    let lower = ("u1", 403, "forbidden");
    let alliance_admin_below = ("a1", 403, "forbidden");
    let operator_below = ("operator", 403, "forbidden");
    let hospital_manage = vec![
        anon,
        other_alliance,
        other_alliance_admin,
        other_hospital,
        lower,
        alliance_admin_below,
        operator_below,
    ];
    let hospital_read = vec![anon, other_alliance, other_alliance_admin, other_hospital];
    let user_manage = vec![
        anon,
        other_alliance,
        other_hospital,
        lower,
        alliance_admin_below,
        operator_below,
    ];

    let calls = vec![
        Call {
            method: "POST",
            path: "/api/v1/alliances".into(),
            body: json!({"name": "新医联体", "admin": person}),
            refusals: vec![anon, ("a1", 403, "forbidden"), ("h1", 403, "forbidden"), lower],
        },
        Call {
            method: "GET",
            path: "/api/v1/alliances".into(),
            body: json!({}),
            refusals: vec![anon],
        },
        Call {
            method: "POST",
            path: format!("/api/v1/alliances/{a1}/hospitals"),
            body: json!({"name": "新医院", "code": format!("NEW{}", o.suffix), "admin": person}),
            refusals: vec![
                anon,
                other_alliance_admin,
                other_alliance,
                ("h1", 403, "forbidden"),
                lower,
                operator_below,
            ],
        },
        Call {
            method: "GET",
            path: "/api/v1/hospitals".into(),
            body: json!({}),
            refusals: vec![anon],
        },
        Call {
            method: "GET",
            path: format!("/api/v1/hospitals/{h1}"),
            body: json!({}),
            refusals: hospital_read.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/hospitals/{h1}/profile"),
            body: json!({"name": "改名", "address": "x"}),
            refusals: hospital_manage.clone(),
        },
        Call {
            method: "GET",
            path: format!("/api/v1/hospitals/{h1}/qr.png"),
            body: json!({}),
            refusals: hospital_read.clone(),
        },
        Call {
            method: "GET",
            path: format!("/api/v1/hospitals/{h1}/qr.svg"),
            body: json!({}),
            refusals: hospital_read.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/hospitals/{h1}/departments"),
            body: json!({"name": "新科室"}),
            refusals: hospital_manage.clone(),
        },
        Call {
            method: "GET",
            path: format!("/api/v1/hospitals/{h1}/departments"),
            body: json!({}),
            refusals: hospital_read.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/hospitals/{h1}/roles"),
            body: json!({"name": "新角色", "permissions": ["stats.view"]}),
            refusals: hospital_manage.clone(),
        },
        Call {
            method: "GET",
            path: format!("/api/v1/hospitals/{h1}/roles"),
            body: json!({}),
            refusals: hospital_read.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/roles/{doctor_role}/permissions"),
            body: json!({"permissions": ["admin.users"]}),
            refusals: hospital_manage.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/hospitals/{h1}/users"),
            body: person.clone(),
            refusals: hospital_manage.clone(),
        },
        Call {
            method: "GET",
            path: format!("/api/v1/users/{u1}"),
            body: json!({}),
            refusals: hospital_read.clone(),
        },
        Call {
            method: "GET",
            path: format!("/api/v1/users?hospital={h1}"),
            body: json!({}),
            refusals: vec![anon, other_hospital, other_alliance],
        },
        Call {
            method: "POST",
            path: format!("/api/v1/users/{u1}/disable"),
            body: json!({}),
            refusals: user_manage.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/users/{u1}/enable"),
            body: json!({}),
            refusals: user_manage.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/users/{u1}/unfreeze"),
            body: json!({}),
            refusals: user_manage.clone(),
        },
        Call {
            method: "POST",
            path: format!("/api/v1/users/{u1}/roles"),
            body: json!({"roles": []}),
            refusals: user_manage.clone(),
        },
        Call {
            method: "GET",
            path: "/api/v1/operation-log".into(),
            body: json!({}),
            refusals: vec![anon, lower],
        },
        Call {
            method: "GET",
            path: "/api/v1/audit/events".into(),
            body: json!({}),
            refusals: vec![anon, ("a1", 403, "forbidden"), ("h1", 403, "forbidden"), lower],
        },
        Call {
            method: "GET",
            path: "/api/v1/permissions".into(),
            body: json!({}),
            refusals: vec![anon],
        },
        Call {
            method: "GET",
            path: "/api/v1/me".into(),
            body: json!({}),
            refusals: vec![anon],
        },
        Call {
            method: "GET",
            path: "/api/v1/me/sessions".into(),
            body: json!({}),
            refusals: vec![anon],
        },
        Call {
            method: "POST",
            path: "/api/v1/me/password".into(),
            body: json!({"current_password": PASSWORD, "new_password": "Another-Pass-9"}),
            refusals: vec![anon],
        },
        Call {
            method: "POST",
            path: "/api/v1/me/phone".into(),
            body: json!({"phone": "13800000000"}),
            refusals: vec![anon],
        },
        Call {
            method: "POST",
            path: format!("/api/v1/me/sessions/{}/revoke", uuid::Uuid::now_v7()),
            body: json!({}),
            refusals: vec![anon],
        },
        Call {
            method: "POST",
            path: format!("/api/v1/auth/qr-tickets/{}/confirm", uuid::Uuid::now_v7()),
            body: json!({"secret": "x"}),
            refusals: vec![anon],
        },
        Call {
            method: "POST",
            path: "/api/v1/auth/logout".into(),
            body: json!({}),
            refusals: vec![anon],
        },
    ];

    let head = s.head().await;
    let mut checked = 0;
    for call in &calls {
        for (who, status, code) in &call.refusals {
            let r = send(&s, call.method, &call.path, tokens(who).as_deref(), &call.body).await;
            assert_eq!(
                (r.status, r.body["code"].as_str().unwrap_or("")),
                (*status, *code),
                "{} {} as {who}: {}",
                call.method,
                call.path,
                r.body
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "the matrix covers {checked} refusals");
    assert_eq!(s.head().await, head, "no refused call wrote anything");

    // Delegation never grows privileges: a user allowed to manage users may
    // only grant roles whose permissions they hold.
    let delegate = s
        .post(
            &format!("/api/v1/hospitals/{h1}/roles"),
            Some(&o.h1_admin),
            json!({"name": "人事", "permissions": ["admin.users"]}),
        )
        .await;
    let r = s
        .post(
            &format!("/api/v1/users/{u1}/roles"),
            Some(&o.h1_admin),
            json!({"roles": [delegate.body["id"]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let grant = s
        .post(
            &format!("/api/v1/hospitals/{h1}/users"),
            Some(&o.u1_token),
            json!({"login": format!("esc.{}", o.suffix), "name": "提权", "password": PASSWORD, "roles": [o.h1_roles["reviewer"]]}),
        )
        .await;
    grant.assert_problem(403, "cannot_grant_more_than_own");
    let plain = s
        .post(
            &format!("/api/v1/hospitals/{h1}/users"),
            Some(&o.u1_token),
            json!({"login": format!("plain.{}", o.suffix), "name": "普通", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        plain.status, 201,
        "a delegated user manager may add plain users: {}",
        plain.body
    );
    s.stop().await;
}
